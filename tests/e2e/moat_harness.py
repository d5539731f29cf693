"""moat_harness - what every end-to-end test of moat builds on.

Real binaries, real clients, loopback only. Standard library only (Python
3.11), so the suite runs with Debian's python3-pytest and nothing else.

Binaries come from $MOAT_BUILD_DIR (default build/asan, relative to the
repository root). The pytest fixtures that wrap these helpers live in
conftest.py; this module has no fixtures and can be imported by any test.

Main pieces:
  free_port(), wait_for_port()     ports on 127.0.0.1
  Proc, ProcGroup                  processes in their own process group, with
                                   logs in files, always killed at the end
  moatd_init(), Moatd              `moatd init` and a running moatd
  Haproxy                          a TCP balancer that sends PROXY headers
  NetNS, run_in_netns()            fresh network namespaces with only lo
  curl(), https_request(),         HTTP(S) clients returning
  openssl_s_client()               (status, headers, body) / handshake output
  secrets_swap()                   the Kubernetes ..data swap, for reloads
  TestCA                           extra CAs and certificates (openssl CLI)
  PodmanService, docker_api()      a private Podman API service on a unix
                                   socket, and raw calls to it
  Registry                         Debian's docker-registry on loopback with
                                   htpasswd auth, marked insecure for Podman
  ensure_base_image()              scripts/image: localhost/moat/base:latest
"""

from __future__ import annotations

import calendar
import errno
import http.client
import io
import itertools
import json
import os
import re
import shlex
import shutil
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]

# Proxy variables are removed from every child's environment: tests talk to
# loopback only and must never be routed through a proxy.
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",            # UndefinedBehaviorSanitizer
    "WARNING: ThreadSanitizer",
)


class HarnessError(Exception):
    """A helper could not do what was asked (process died, timeout...)."""


# ---------------------------------------------------------------- binaries

def build_dir() -> Path:
    """$MOAT_BUILD_DIR, or build/asan; relative paths are taken from the
    repository root."""
    d = Path(os.environ.get("MOAT_BUILD_DIR", "build/asan"))
    return d if d.is_absolute() else REPO_ROOT / d


def binary(name: str) -> Path:
    """Path of a built program (moatd, moat, ...); it may not exist."""
    return build_dir() / name


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without proxy variables, plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    if extra:
        env.update(extra)
    return env


# ------------------------------------------------------------------- ports

# Ports for servers under test come from below the kernel's ephemeral range
# (32768-60999 here), so a client's outgoing connection can never take a
# port between the moment it is chosen and the moment a server binds it.
# A port is handed out once per test run: two calls in a row (a server's
# listener and its metrics listener) never get the same one.
_PORT_LOW, _PORT_HIGH = 20000, 32000
_port_rng = random.Random(os.getpid() ^ time.time_ns())
_ports_given: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on host a moment ago, chosen at random
    below the ephemeral range (see above); port 0 as a last resort."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = _port_rng.randrange(_PORT_LOW, _PORT_HIGH)
        if port in _ports_given:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0,
                  proc: "Proc | None" = None,
                  netns: "NetNS | None" = None) -> None:
    """Waits until a TCP connect to host:port succeeds. Raises HarnessError
    on timeout, or at once when proc (the server expected to listen) has
    exited. With netns, the connect is tried inside that namespace."""
    deadline = time.monotonic() + timeout
    while True:
        if netns is not None:
            ok = netns.port_open(port, host)
        else:
            ok = port_open(port, host)
        if ok:
            return
        if proc is not None and not proc.alive():
            raise HarnessError(
                f"{proc.name} exited with {proc.returncode} before "
                f"listening on {host}:{port}\n{proc.tail()}")
        if time.monotonic() > deadline:
            extra = f"\n{proc.tail()}" if proc is not None else ""
            raise HarnessError(f"nothing listens on {host}:{port} after "
                               f"{timeout}s{extra}")
        time.sleep(0.05)


def wait_until(pred: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.05, what: str = "condition"):
    """Polls pred until it returns something true, and returns that."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------- processes

def tail_file(path: Path, lines: int = 40) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    text = data[-65536:].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


class Proc:
    """A command in its own process group (session), stdout and stderr in
    files under log_dir. Use through ProcGroup.start() so it is always
    stopped at the end of the test."""

    def __init__(self, args: Sequence[str | os.PathLike], name: str,
                 log_dir: Path, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None,
                 stdin: int | None = subprocess.DEVNULL,
                 check_sanitizer: bool = True):
        self.args = [str(a) for a in args]
        self.name = name
        self.log_dir = Path(log_dir)
        self.stdout_path = self.log_dir / f"{name}.stdout"
        self.stderr_path = self.log_dir / f"{name}.stderr"
        self.env = child_env(env)
        self.cwd = cwd
        self.stdin = stdin
        self.check_sanitizer = check_sanitizer
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Proc":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "wb") as out, \
                open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.args, stdout=out, stderr=err, stdin=self.stdin,
                env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Waits for exit; raises subprocess.TimeoutExpired."""
        assert self.popen is not None, "not started"
        return self.popen.wait(timeout)

    def signal(self, sig: int) -> None:
        """Sends sig to the process (not the group)."""
        if self.alive():
            os.kill(self.pid, sig)

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM to the whole group, up to timeout seconds to exit, then
        SIGKILL to the group (also reaping stragglers of an exited leader).
        Returns the exit status (negative: killed by that signal)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._killpg(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._killpg(signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return self.popen.returncode

    def stdout_text(self) -> str:
        return self.stdout_path.read_text("utf-8", "replace") \
            if self.stdout_path.exists() else ""

    def stderr_text(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace") \
            if self.stderr_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        """The last lines of stderr and stdout, labelled, for reports."""
        cmd = shlex.join(self.args)
        return (f"--- {self.name} (pid {self.popen.pid if self.popen else '-'}"
                f", exit {self.returncode}): {cmd}\n"
                f"--- stderr tail:\n{tail_file(self.stderr_path, lines)}\n"
                f"--- stdout tail:\n{tail_file(self.stdout_path, lines)}")

    def wait_for_output(self, pattern: str, timeout: float = 10.0,
                        stream: str = "stderr") -> re.Match:
        """Waits until a line of stream ("stderr"/"stdout") matches the
        regular expression pattern; returns the match."""
        rx = re.compile(pattern)
        path = self.stderr_path if stream == "stderr" else self.stdout_path

        def look():
            for line in tail_file(path, 100000).splitlines():
                m = rx.search(line)
                if m:
                    return m
            if not self.alive():
                raise HarnessError(f"{self.name} exited ({self.returncode}) "
                                   f"without printing /{pattern}/\n"
                                   f"{self.tail()}")
            return None
        return wait_until(look, timeout, what=f"/{pattern}/ from {self.name}")

    def sanitizer_report(self) -> str | None:
        """The first sanitizer report in stderr, or None."""
        if not self.check_sanitizer:
            return None
        text = self.stderr_text()
        for pat in SANITIZER_PATTERNS:
            i = text.find(pat)
            if i >= 0:
                return text[max(0, i - 200):i + 4000]
        return None


class ProcGroup:
    """Every process a test starts. stop_all() (run by the `procs`
    fixture's teardown, also when the test failed) stops them in reverse
    start order."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.procs: list[Proc] = []
        self._names: dict[str, int] = {}

    def _unique(self, name: str) -> str:
        n = self._names.get(name, 0) + 1
        self._names[name] = n
        return name if n == 1 else f"{name}-{n}"

    def start(self, args: Sequence[str | os.PathLike], name: str | None = None,
              **kw) -> Proc:
        """Starts args as a registered Proc. kw: env, cwd, stdin,
        check_sanitizer."""
        name = self._unique(name or Path(str(args[0])).name)
        p = Proc(args, name, self.log_dir, **kw)
        self.procs.append(p)
        return p.start()

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def tails(self, lines: int = 40) -> str:
        return "\n\n".join(p.tail(lines) for p in self.procs)

    def sanitizer_reports(self) -> list[tuple[str, str]]:
        out = []
        for p in self.procs:
            rep = p.sanitizer_report()
            if rep:
                out.append((p.name, rep))
        return out


# ------------------------------------------------------------ HTTP clients

class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage   # case-insensitive .get(), .get_all()
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class CurlError(HarnessError):
    """curl failed before an HTTP status (TLS refused, connection reset...).
    .rc is curl's exit code (35: TLS handshake, 7: refused, 28: timeout,
    56: receive failure), .stderr its message."""

    def __init__(self, rc: int, stderr: str, args: list[str]):
        super().__init__(f"curl exit {rc}: {stderr.strip()} "
                         f"({shlex.join(args)})")
        self.rc = rc
        self.stderr = stderr


def _parse_head(raw: bytes) -> tuple[int, http.client.HTTPMessage]:
    """Status and headers of the last response head curl -D wrote (it
    writes one per 1xx response or redirect followed)."""
    blocks = [b for b in re.split(rb"\r?\n\r?\n", raw) if b.strip()]
    if not blocks:
        return 0, http.client.parse_headers(io.BytesIO(b"\r\n"))
    head = blocks[-1].replace(b"\r\n", b"\n").split(b"\n", 1)
    status_line = head[0].decode("latin-1")
    m = re.match(r"HTTP/\S+\s+(\d{3})", status_line)
    status = int(m.group(1)) if m else 0
    rest = head[1] if len(head) > 1 else b""
    msg = http.client.parse_headers(io.BytesIO(rest + b"\n\n"))
    return status, msg


def curl(url: str, *extra: str, method: str | None = None,
         headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
         data: bytes | str | None = None,
         ca: str | os.PathLike | None = None,
         cert: str | os.PathLike | None = None,
         key: str | os.PathLike | None = None,
         timeout: float = 10.0, netns: "NetNS | None" = None) -> Response:
    """Runs the real curl against url and returns (status, headers, body).
    Never uses a proxy (--noproxy '*', proxy variables removed). ca: the
    only trusted CA file (--cacert); cert/key: a client certificate. extra
    is passed to curl as is (e.g. "--http1.1", "--resolve", "h:p:a").
    Raises CurlError when no HTTP response came back."""
    with tempfile.TemporaryDirectory(prefix="moat-curl-") as td:
        head, body = Path(td) / "head", Path(td) / "body"
        args = ["curl", "-sS", "--noproxy", "*", "-o", str(body), "-D",
                str(head), "-w", "%{http_code}", "--max-time", str(timeout)]
        if ca is not None:
            args += ["--cacert", str(ca)]
        if cert is not None:
            args += ["--cert", str(cert)]
        if key is not None:
            args += ["--key", str(key)]
        if method is not None:
            args += ["-X", method]
        hs = headers.items() if isinstance(headers, Mapping) else headers or ()
        for k, v in hs:
            args += ["-H", f"{k}: {v}"]
        stdin = None
        if data is not None:
            args += ["--data-binary", "@-"]
            stdin = data.encode() if isinstance(data, str) else data
        args += [*extra, url]
        cmd = netns.wrap(args) if netns is not None else args
        cp = subprocess.run(cmd, input=stdin, capture_output=True,
                            env=child_env(), timeout=timeout + 10)
        if cp.returncode != 0:
            raise CurlError(cp.returncode, cp.stderr.decode("utf-8",
                                                            "replace"), args)
        status, msg = _parse_head(head.read_bytes() if head.exists() else b"")
        return Response(status, msg, body.read_bytes() if body.exists()
                        else b"")


def ssl_client_context(ca: str | os.PathLike | None,
                       cert: str | os.PathLike | None = None,
                       key: str | os.PathLike | None = None
                       ) -> ssl.SSLContext:
    """A verifying client context trusting only ca (system store if None)."""
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def https_request(url: str, method: str = "GET", body: bytes | None = None,
                  headers: Mapping[str, str] | None = None,
                  ca: str | os.PathLike | None = None,
                  cert: str | os.PathLike | None = None,
                  key: str | os.PathLike | None = None,
                  timeout: float = 10.0,
                  context: ssl.SSLContext | None = None) -> Response:
    """One request with Python's http.client (no proxy, no subprocess);
    http:// or https:// (verifying against ca). Raises OSError/ssl.SSLError
    when the connection or handshake fails."""
    u = urllib.parse.urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    if u.scheme == "https":
        ctx = context or ssl_client_context(ca, cert, key)
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443,
                                           timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80,
                                          timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        return Response(r.status, r.msg, r.read())
    finally:
        conn.close()


class SClientResult(NamedTuple):
    returncode: int
    output: str         # stdout and stderr of s_client

    @property
    def verified(self) -> bool:
        """The server's certificate verified ("Verify return code: 0")."""
        return "Verify return code: 0 (ok)" in self.output

    @property
    def handshake_ok(self) -> bool:
        return self.returncode == 0 and "Cipher is (NONE)" not in self.output

    @property
    def protocol(self) -> str | None:
        """"TLSv1.3" etc. from the "New, TLSv1.3, Cipher is ..." line."""
        m = re.search(r"^(?:New|Reused), (\S+), Cipher is", self.output,
                      re.M)
        return m.group(1) if m else None

    def field(self, name: str) -> str | None:
        """A "Name: value" line of the session summary, e.g.
        field("Protocol") -> "TLSv1.3"."""
        m = re.search(rf"^\s*{re.escape(name)}\s*:\s*(.*)$", self.output,
                      re.M)
        return m.group(1).strip() if m else None


def openssl_s_client(host: str, port: int, *extra: str,
                     ca: str | os.PathLike | None = None,
                     cert: str | os.PathLike | None = None,
                     key: str | os.PathLike | None = None,
                     servername: str | None = None,
                     verify_hostname: str | None = None,
                     input: bytes = b"", timeout: float = 10.0,
                     netns: "NetNS | None" = None) -> SClientResult:
    """Runs `openssl s_client -connect host:port` with input on stdin (the
    client exits at its end). With ca the server must verify against it
    (-verify_return_error); extra is passed as is (e.g. "-tls1_2",
    "-alpn", "h2")."""
    hp = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    args = ["openssl", "s_client", "-connect", hp]
    if ca is not None:
        args += ["-CAfile", str(ca), "-verify_return_error"]
    if cert is not None:
        args += ["-cert", str(cert)]
    if key is not None:
        args += ["-key", str(key)]
    if servername is not None:
        args += ["-servername", servername]
    else:
        args += ["-noservername"]
    if verify_hostname is not None:
        args += ["-verify_hostname", verify_hostname]
    args += list(extra)
    cmd = netns.wrap(args) if netns is not None else args
    cp = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, env=child_env(),
                        timeout=timeout)
    return SClientResult(cp.returncode, cp.stdout.decode("utf-8", "replace"))


# ------------------------------------------------------------------- moatd

class InitUnsupported(HarnessError):
    """This moatd binary has no `init` subcommand yet."""


def moatd_init(data_dir: str | os.PathLike, *extra: str,
               check: bool = True) -> subprocess.CompletedProcess:
    """Runs `moatd init DATA_DIR [extra]`; returns the CompletedProcess
    (text stdout/stderr). Raises InitUnsupported when moatd only prints its
    usage, and (with check) HarnessError on any other failure."""
    exe = binary("moatd")
    if not exe.exists():
        raise InitUnsupported(f"{exe} is not built")
    cp = subprocess.run([str(exe), "init", str(data_dir), *extra],
                        capture_output=True, text=True, env=child_env(),
                        timeout=60)
    # The placeholder main.c prints a general usage line; the real
    # subcommand never prints usage when given a DIR, and prefixes its
    # errors with "moatd init:".
    if (cp.returncode != 0 and "usage" in cp.stderr.lower()
            and "moatd init:" not in cp.stderr):
        raise InitUnsupported("moatd init is not wired into main.c yet: "
                              + cp.stderr.strip())
    if check and cp.returncode != 0:
        raise HarnessError(f"moatd init failed ({cp.returncode}): "
                           f"{cp.stderr.strip()}")
    return cp


def parse_log_lines(text: str) -> list[dict]:
    """The JSON objects among the lines of text (others are skipped:
    sanitizer reports, stray prints)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if isinstance(v, dict):
            out.append(v)
    return out


class Moatd:
    """A running moatd:
        moatd --data-dir DIR --listen 127.0.0.1:PORT
              --metrics-listen 127.0.0.1:PORT2 [extra_args]
    start() waits until https://127.0.0.1:PORT/healthz answers 200 over
    TLS verified against DIR/secrets/ca.crt.

    ready chooses that check: "healthz" (default), "port" (TCP connect
    only: use it when every connection must carry a PROXY header or when
    /healthz is expected to fail), or a callable(moatd) -> bool. With
    client_cert=(crt, key) the healthz probe presents that certificate;
    when extra_args contains --client-ca and no client_cert is given, the
    data dir's pki/ingress.crt is used. exe replaces the moatd binary (the
    harness self-test runs a stand-in)."""

    def __init__(self, procs: ProcGroup, data_dir: str | os.PathLike, *,
                 extra_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None,
                 port: int | None = None, metrics_port: int | None = None,
                 ready: str | Callable[["Moatd"], bool] = "healthz",
                 ready_timeout: float = 30.0,
                 client_cert: tuple[str | os.PathLike,
                                    str | os.PathLike] | None = None,
                 netns: "NetNS | None" = None, name: str = "moatd",
                 exe: str | os.PathLike | None = None):
        self.procs = procs
        self.exe = Path(exe) if exe is not None else binary("moatd")
        self.stand_in = exe is not None
        self.data_dir = Path(data_dir)
        self.extra_args = [str(a) for a in extra_args]
        self.env = dict(env or {})
        self.port = port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.netns = netns
        self.name = name
        self.proc: Proc | None = None
        if client_cert is None and "--client-ca" in self.extra_args:
            client_cert = (self.pki / "ingress.crt", self.pki / "ingress.key")
        self.client_cert = client_cert

    # Where things are.
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def secrets(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    @property
    def ca(self) -> Path:
        return self.secrets / "ca.crt"

    @property
    def audit_path(self) -> Path:
        a = self.extra_args
        for i, v in enumerate(a):
            if v == "--audit-file" and i + 1 < len(a):
                return Path(a[i + 1])
            if v.startswith("--audit-file="):
                return Path(v.split("=", 1)[1])
        return self.data_dir / "audit" / "audit.log"

    def command(self) -> list[str]:
        # The SSH gateway's default port (2222) would clash between
        # moatds started side by side: a free port unless the test names
        # one (or "" to turn the gateway off).
        ssh = [] if self.stand_in or any(
            a == "--ssh-listen" or a.startswith("--ssh-listen=")
            for a in self.extra_args) else \
            ["--ssh-listen", f"127.0.0.1:{free_port()}"]
        return [str(self.exe), "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}",
                "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
                *ssh, *self.extra_args]

    def start(self) -> "Moatd":
        if not self.exe.exists():
            raise HarnessError(f"{self.exe} is not built")
        cmd = self.command()
        if self.netns is not None:
            cmd = self.netns.wrap(cmd)
        self.proc = self.procs.start(cmd, name=self.name, env=self.env)
        self.wait_ready()
        return self

    def healthz_ok(self) -> bool:
        cert, key = self.client_cert or (None, None)
        try:
            if self.netns is not None:
                r = curl(self.url + "/healthz", ca=self.ca, cert=cert,
                         key=key, timeout=2, netns=self.netns)
            else:
                r = https_request(self.url + "/healthz", ca=self.ca,
                                  cert=cert, key=key, timeout=2)
        except (OSError, ssl.SSLError, http.client.HTTPException,
                HarnessError):
            return False
        return r.status == 200

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if not self.proc.alive():
                raise HarnessError(f"{self.name} exited with "
                                   f"{self.proc.returncode} during startup"
                                   f"\n{self.proc.tail()}")
            if self.ready == "port":
                ok = (self.netns.port_open(self.port) if self.netns
                      else port_open(self.port))
            elif self.ready == "healthz":
                ok = self.healthz_ok()
            else:
                ok = self.ready(self)
            if ok:
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name} not ready after "
                                   f"{self.ready_timeout}s\n"
                                   f"{self.proc.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (then SIGKILL after timeout); returns the exit status."""
        return self.proc.stop(timeout) if self.proc else None

    def restart(self) -> "Moatd":
        """Stops and starts again on the same ports and flags."""
        self.stop()
        return self.start()

    def log_lines(self) -> list[dict]:
        """moatd's stderr as parsed JSON log lines."""
        return parse_log_lines(self.proc.stderr_text() if self.proc else "")

    def wait_for_log(self, match: str | Callable[[dict], bool],
                     timeout: float = 10.0) -> dict:
        """Waits for a log line whose "msg" contains match (or for which
        match(line) is true) and returns it."""
        pred = match if callable(match) else \
            (lambda d: match in str(d.get("msg", "")))

        def look():
            for d in self.log_lines():
                if pred(d):
                    return d
            if self.proc is not None and not self.proc.alive():
                raise HarnessError(f"{self.name} exited\n{self.proc.tail()}")
            return None
        return wait_until(look, timeout, what=f"log line {match!r}")

    def audit_events(self) -> list[dict]:
        """The audit log's JSON lines (empty when there is none yet)."""
        try:
            return parse_log_lines(self.audit_path.read_text("utf-8"))
        except FileNotFoundError:
            return []

    def request(self, path: str, method: str = "GET", **kw) -> Response:
        """https_request() to this moatd, trusting its CA (and presenting
        client_cert when set); kw as for https_request."""
        if self.client_cert and "cert" not in kw:
            kw["cert"], kw["key"] = self.client_cert
        return https_request(self.url + path, method, ca=self.ca, **kw)

    def curl(self, path: str, *extra: str, **kw) -> Response:
        """curl() to this moatd, trusting its CA (and presenting
        client_cert when set); kw as for curl."""
        if self.client_cert and "cert" not in kw:
            kw["cert"], kw["key"] = self.client_cert
        kw.setdefault("netns", self.netns)
        return curl(self.url + path, *extra, ca=self.ca, **kw)


# ----------------------------------------------------------------- haproxy

class Haproxy:
    """haproxy in TCP mode: `listen` on 127.0.0.1:port forwarding every
    connection to backend_host:backend_port, prefixed with a PROXY protocol
    header when send_proxy is "v1" (send-proxy) or "v2" (send-proxy-v2);
    None sends none."""

    def __init__(self, procs: ProcGroup, backend_port: int, *,
                 send_proxy: str | None = "v2",
                 backend_host: str = "127.0.0.1", port: int | None = None,
                 name: str = "haproxy", netns: "NetNS | None" = None):
        if send_proxy not in ("v1", "v2", None):
            raise ValueError("send_proxy must be 'v1', 'v2' or None")
        self.procs = procs
        self.backend = (backend_host, backend_port)
        self.send_proxy = send_proxy
        self.port = port or free_port()
        self.name = name
        self.netns = netns
        self.proc: Proc | None = None
        self.config_path = procs.log_dir / f"{name}-{self.port}.cfg"

    def config(self) -> str:
        opt = {"v1": " send-proxy", "v2": " send-proxy-v2", None: ""}[
            self.send_proxy]
        host, port = self.backend
        be = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return (
            "global\n"
            "    maxconn 1024\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 60s\n"
            "    timeout server 60s\n"
            f"listen {self.name}\n"
            f"    bind 127.0.0.1:{self.port}\n"
            f"    server backend {be}{opt}\n")

    def start(self) -> "Haproxy":
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        cmd = ["haproxy", "-f", str(self.config_path), "-db"]
        if self.netns is not None:
            cmd = self.netns.wrap(cmd)
        self.proc = self.procs.start(cmd, name=self.name,
                                     check_sanitizer=False)
        wait_for_port(self.port, proc=self.proc, netns=self.netns)
        return self

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


# ---------------------------------------------------- network namespaces

_netns_ok: bool | None = None


def netns_available() -> bool:
    """True when this process may create network namespaces (root, or
    CAP_SYS_ADMIN) and `unshare`/`ip` exist."""
    global _netns_ok
    if _netns_ok is None:
        if not (shutil.which("unshare") and shutil.which("ip")):
            _netns_ok = False
        else:
            try:
                cp = subprocess.run(["unshare", "--net", "--fork", "true"],
                                    capture_output=True, timeout=10)
                _netns_ok = cp.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _netns_ok = False
    return _netns_ok


def run_in_netns(cmd: Sequence[str] | str, *, timeout: float = 60.0,
                 input: bytes | str | None = None,
                 env: Mapping[str, str] | None = None,
                 check: bool = False) -> subprocess.CompletedProcess:
    """Runs cmd (argv list, or a shell string) in a fresh, throw-away
    network namespace that has only loopback (brought up), and returns the
    CompletedProcess (stdout/stderr as text). The namespace disappears when
    cmd exits. Use NetNS for a namespace shared by several processes."""
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else [str(c) for c in cmd]
    full = ["unshare", "--net", "--fork", "--", "sh", "-c",
            'ip link set lo up && exec "$@"', "sh", *argv]
    return subprocess.run(full, input=input, capture_output=True, text=True,
                          env=child_env(env), timeout=timeout, check=check)


_netns_seq = itertools.count(1)


class NetNS:
    """A named network namespace (`ip netns add`) with only loopback, up.
    Run whole server+client scenarios inside with wrap()/run()/start()
    (and the netns= arguments of curl, openssl_s_client, Moatd, Haproxy,
    wait_for_port). delete() (the fixture's teardown) removes it."""

    def __init__(self, name: str | None = None):
        self.name = name or f"moat-e2e-{os.getpid()}-{next(_netns_seq)}"
        self.created = False

    def create(self) -> "NetNS":
        subprocess.run(["ip", "netns", "add", self.name], check=True,
                       capture_output=True, timeout=10)
        self.created = True
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"],
                       check=True, capture_output=True, timeout=10)
        return self

    def wrap(self, args: Sequence[str | os.PathLike]) -> list[str]:
        """args prefixed so that they run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *[str(a) for a in args]]

    def run(self, args: Sequence[str | os.PathLike] | str, *,
            timeout: float = 60.0, input: bytes | str | None = None,
            env: Mapping[str, str] | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        """Runs args (argv list or shell string) inside; text output."""
        argv = ["sh", "-c", args] if isinstance(args, str) else args
        return subprocess.run(self.wrap(argv), input=input,
                              capture_output=True, text=True,
                              env=child_env(env), timeout=timeout,
                              check=check)

    def start(self, procs: ProcGroup, args: Sequence[str | os.PathLike],
              name: str | None = None, **kw) -> Proc:
        """A registered Proc running args inside the namespace."""
        return procs.start(self.wrap(args),
                           name=name or Path(str(args[0])).name, **kw)

    def port_open(self, port: int, host: str = "127.0.0.1") -> bool:
        code = ("import socket,sys\n"
                "try:\n"
                f"    socket.create_connection(({host!r}, {port}), 0.5)"
                ".close()\n"
                "except OSError:\n"
                "    sys.exit(1)\n")
        return self.run([sys.executable, "-c", code], timeout=10
                        ).returncode == 0

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "delete", self.name],
                           capture_output=True, timeout=10)
            self.created = False


# ------------------------------------------------------------- secret dirs

def _version_name() -> str:
    ns = time.time_ns()
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(ns // 10**9))
    return f"..{stamp}.{ns % 10**9:09d}"


_KEY_RE = re.compile(r"^[A-Za-z0-9._-]{1,253}$")


def secrets_swap(secrets_dir: str | os.PathLike,
                 files: Mapping[str, bytes | str], keep: bool = True) -> str:
    """Publishes a new version of a Kubernetes-style secret directory the
    way the kubelet does (and moatd_secrets_swap() in C): files go into a
    new ..TIMESTAMP directory (0700, files 0600), a ..data_tmp symlink to it
    is renamed over ..data, per-key links are added/removed, the previous
    version is deleted. With keep, keys not in files are carried over.
    Returns the new version's name."""
    d = Path(secrets_dir)
    for k in files:
        if not _KEY_RE.match(k) or k == "." or k.startswith(".."):
            raise ValueError(f"bad secret key name {k!r}")
    try:
        old = os.readlink(d / "..data")
    except FileNotFoundError:
        old = None
    content: dict[str, bytes] = {}
    if keep and old is not None:
        for e in (d / old).iterdir():
            if e.name not in files and _KEY_RE.match(e.name) \
                    and not e.name.startswith(".."):
                content[e.name] = e.read_bytes()
    for k, v in files.items():
        content[k] = v.encode() if isinstance(v, str) else v
    while True:
        ver = _version_name()
        try:
            os.mkdir(d / ver, 0o700)
            break
        except FileExistsError:
            continue
    os.chmod(d / ver, 0o700)
    for k, v in content.items():
        fd = os.open(d / ver / k,
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, v)
            os.fsync(fd)
        finally:
            os.close(fd)
    tmp = d / "..data_tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(ver, tmp)
    os.rename(tmp, d / "..data")
    for k in content:
        link = d / k
        target = f"..data/{k}"
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if not os.path.lexists(link):
            os.symlink(target, link)
        else:
            os.symlink(target, tmp)
            os.rename(tmp, link)
    for e in d.iterdir():
        if e.is_symlink() and e.name not in content \
                and os.readlink(e) == f"..data/{e.name}":
            e.unlink()
    if old is not None and old != ver:
        shutil.rmtree(d / old, ignore_errors=True)
    return ver


# ------------------------------------------------- extra CAs and certificates

@dataclass
class Cert:
    cert: Path
    key: Path


@dataclass
class TestCA:
    """An extra CA made with the openssl CLI (ECDSA P-256), for tests that
    need certificates moat did not issue: a second, untrusted CA; a client
    certificate with a wrong name; an expired certificate. Files go in
    directory; nothing is cached between tests."""
    directory: Path
    name: str = "test CA"
    cert: Path = field(init=False)
    key: Path = field(init=False)

    __test__ = False    # not a pytest test class

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-")
        self.cert = self.directory / f"{slug}.crt"
        self.key = self.directory / f"{slug}.key"
        _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key,
                 "-out", self.cert, "-days", "30", "-subj",
                 f"/CN={self.name}", "-addext",
                 "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext",
                 "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name: str, dns: Sequence[str] = (),
              ips: Sequence[str] = (), server: bool = False,
              client: bool = False, days: int = 30,
              not_before: str | None = None) -> Cert:
        """A leaf certificate for CN name with the given SANs and EKUs,
        valid days from now; for an expired one pass not_before, e.g.
        not_before="20200101000000Z", days=1."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
        crt = self.directory / f"{slug}.crt"
        key = self.directory / f"{slug}.key"
        csr = self.directory / f"{slug}.csr"
        ext = self.directory / f"{slug}.ext"
        lines = ["basicConstraints=critical,CA:FALSE",
                 "keyUsage=critical,digitalSignature"]
        eku = [e for e, on in (("serverAuth", server), ("clientAuth", client))
               if on]
        if eku:
            lines.append("extendedKeyUsage=" + ",".join(eku))
        san = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        if san:
            lines.append("subjectAltName=" + ",".join(san))
        ext.write_text("\n".join(lines) + "\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                 "-out", csr, "-subj", f"/CN={name}")
        if not_before is None:
            _openssl("x509", "-req", "-in", csr, "-CA", self.cert,
                     "-CAkey", self.key, "-set_serial",
                     str(int.from_bytes(os.urandom(15), "big")), "-days",
                     str(days), "-sha256", "-extfile", ext, "-out", crt)
        else:
            # openssl x509 cannot backdate; `openssl ca` can.
            self._ca_sign(csr, ext, crt, not_before, days)
        csr.unlink()
        return Cert(crt, key)

    def _ca_sign(self, csr: Path, ext: Path, crt: Path, not_before: str,
                 days: int) -> None:
        db = self.directory / "ca-db"
        db.mkdir(exist_ok=True)
        (db / "index.txt").write_text("")
        (db / "serial").write_text(os.urandom(8).hex().upper() + "\n")
        start = time.strptime(not_before, "%Y%m%d%H%M%SZ")
        end = time.gmtime(calendar.timegm(start) + days * 86400)
        cnf = db / "ca.cnf"
        cnf.write_text(
            "[ca]\ndefault_ca=d\n[d]\n"
            f"dir={db}\ndatabase=$dir/index.txt\nserial=$dir/serial\n"
            f"new_certs_dir={db}\ndefault_md=sha256\npolicy=p\n"
            "unique_subject=no\n[p]\ncommonName=supplied\n")
        _openssl("ca", "-batch", "-config", cnf, "-cert", self.cert,
                 "-keyfile", self.key, "-in", csr, "-out", crt,
                 "-startdate", not_before, "-enddate",
                 time.strftime("%Y%m%d%H%M%SZ", end), "-extfile", ext,
                 "-notext")


def _openssl(*args) -> None:
    cp = subprocess.run(["openssl", *[str(a) for a in args]],
                        capture_output=True, text=True, timeout=60)
    if cp.returncode != 0:
        raise HarnessError(f"openssl {args[0]} failed: {cp.stderr.strip()}")


# --------------------------------------------------------------- raw sockets

def connect_error(host: str, port: int, timeout: float = 1.0) -> int | None:
    """Tries a TCP connect; returns None on success or the errno of the
    failure (errno.ETIMEDOUT for a timeout)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            return None
        except socket.timeout:
            return errno.ETIMEDOUT
        except OSError as e:
            return e.errno


# ------------------------------------------------- Podman and a registry

BASE_IMAGE = "localhost/moat/base:latest"
REGISTRIES_CONF_D = Path("/etc/containers/registries.conf.d")


def podman_available() -> bool:
    """True when podman is installed and this process is root (the tests
    use the host's root Podman storage and --userns=auto ranges)."""
    return shutil.which("podman") is not None and os.geteuid() == 0


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def docker_api(sock: str | os.PathLike, method: str, path: str,
               body: object = None, timeout: float = 30.0
               ) -> tuple[int, bytes]:
    """One Docker Engine API call over a unix socket: path like
    "/v1.41/containers/json?all=1"; body (JSON-encoded when not bytes).
    Returns (status, body bytes)."""
    conn = _UnixHTTPConnection(str(sock), timeout)
    try:
        headers = {}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class PodmanService:
    """`podman system service --time=0 unix://SOCKET` on a private socket in
    work_dir (root Podman storage, so images such as localhost/moat/base are
    shared with the host). Podman reads registries.conf(.d) when the
    service starts: write drop-ins (Registry does) before start().

    .socket is the path, .docker_host "unix://" + path (for DOCKER_HOST)."""

    def __init__(self, work_dir: str | os.PathLike):
        self.work_dir = Path(work_dir)
        self.socket = str(self.work_dir / "podman.sock")
        self.docker_host = "unix://" + self.socket
        self.proc: Proc | None = None

    def start(self, timeout: float = 30.0) -> "PodmanService":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc(["podman", "system", "service", "--time=0",
                          self.docker_host], "podman-service",
                         self.work_dir, check_sanitizer=False).start()

        def up():
            if not self.proc.alive():
                raise HarnessError(f"podman service exited\n"
                                   f"{self.proc.tail()}")
            try:
                return docker_api(self.socket, "GET", "/_ping",
                                  timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(up, timeout, what="podman service on " + self.socket)
        return self

    def api(self, method: str, path: str, body: object = None,
            timeout: float = 30.0) -> tuple[int, bytes]:
        return docker_api(self.socket, method, path, body, timeout)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=10)


class Registry:
    """Debian's docker-registry (/usr/bin/docker-registry) on 127.0.0.1:PORT
    with a fresh storage directory and htpasswd (bcrypt) auth, no TLS.
    start() also writes a registries.conf.d drop-in marking 127.0.0.1:PORT
    insecure (Podman pulls through the API need it; the podman CLI is given
    --tls-verify=false), removed by stop().

    .host is "127.0.0.1:PORT"; .user and .password the one account."""

    def __init__(self, work_dir: str | os.PathLike, user: str = "moatreg",
                 password: str | None = None):
        self.work_dir = Path(work_dir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.user = user
        self.password = password or "pw-" + os.urandom(9).hex()
        self.dropin = REGISTRIES_CONF_D / f"moat-test-registry-{self.port}.conf"
        self.proc: Proc | None = None

    def start(self) -> "Registry":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        data = self.work_dir / "data"
        data.mkdir(exist_ok=True)
        htpasswd = self.work_dir / "htpasswd"
        subprocess.run(["htpasswd", "-Bbc", str(htpasswd), self.user,
                        self.password], check=True, capture_output=True,
                       timeout=30)
        cfg = self.work_dir / "config.yml"
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {data}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
            "auth:\n  htpasswd:\n    realm: moat-test\n"
            f"    path: {htpasswd}\n")
        REGISTRIES_CONF_D.mkdir(parents=True, exist_ok=True)
        self.dropin.write_text(
            "# moat test registry (tests/e2e), removed at the end\n"
            f"[[registry]]\nlocation = \"{self.host}\"\ninsecure = true\n")
        self.proc = Proc(["/usr/bin/docker-registry", "serve", str(cfg)],
                         "docker-registry", self.work_dir,
                         check_sanitizer=False).start()
        wait_for_port(self.port, proc=self.proc)
        return self

    def ref(self, path: str) -> str:
        """The full reference of path ("moat/x:latest") on this registry."""
        return f"{self.host}/{path}"

    def push(self, local_image: str, path: str) -> str:
        """podman push of local_image to path here; returns the reference."""
        ref = self.ref(path)
        cp = subprocess.run(
            ["podman", "push", "--tls-verify=false", "--creds",
             f"{self.user}:{self.password}", local_image, ref],
            capture_output=True, text=True, timeout=300)
        if cp.returncode != 0:
            raise HarnessError(f"podman push {ref} failed: "
                               f"{cp.stderr.strip()[-2000:]}")
        return ref

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        try:
            self.dropin.unlink()
        except FileNotFoundError:
            pass


def ensure_base_image() -> str:
    """Runs scripts/image (builds images/base only when its recipe changed,
    about a minute; imports only when Podman lacks it) and returns
    BASE_IMAGE."""
    cp = subprocess.run([str(REPO_ROOT / "scripts" / "image")],
                        capture_output=True, text=True, timeout=900)
    if cp.returncode != 0:
        raise HarnessError(f"scripts/image failed:\n{cp.stderr[-3000:]}")
    return BASE_IMAGE
