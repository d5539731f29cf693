"""proxy_fixtures - what the moat-proxy end-to-end tests build on.

Everything here runs inside one network namespace that has only loopback
(moat_harness.NetNS): moat-proxy, its DNS server, the origins and the
clients. A proxy bug can never send a packet off the machine.

Pieces:
  ns_socket(ns)          a socket created inside the namespace (setns in a
                         short-lived thread), usable from the test thread
  raw_exchange()         bytes sent raw to the proxy, the answer parsed
  DnsServer              a tiny UDP DNS server (A/AAAA from a table; a name
                         whose answer rotates between lookups; a query log)
  RecordingOrigin        a dual-stack HTTP origin on [::]:PORTS that logs
                         every connection (with the local address it
                         arrived at) and every request's headers
  ScriptedOrigin         an HTTP/1.1 origin on ADDR:PORT that answers with
                         exact bytes chosen by the path (keep-alive,
                         EOF-delimited, chunked, and smuggling-shaped
                         responses), logging connections and requests
  Nginx                  nginx in the foreground: static files, TLS, and
                         git-http-backend behind fcgiwrap
  MoatProxy              moat-proxy --policy FILE --listen ... with its
                         policy file, audit chain and key
  proxy_curl()           curl -x through the proxy, inside the namespace

Run as a script, this module is the DNS server or the recording origin:
  python3 proxy_fixtures.py dns PORT TABLE.json LOG
  python3 proxy_fixtures.py origin LOG PORT [PORT...]
  python3 proxy_fixtures.py scripted LOG ADDR PORT
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

THIS = Path(__file__).resolve()

# ------------------------------------------------ sockets in a namespace

_CLONE_NEWNET = 0x40000000
_libc = None


def ns_socket(ns, family: int = socket.AF_INET,
              type_: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket that belongs to network namespace ns (a NetNS). It is
    created by a helper thread that entered the namespace with setns(2); a
    socket keeps its namespace for life, so the caller uses it from any
    thread."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    out: dict = {}

    def run():
        try:
            fd = os.open(f"/var/run/netns/{ns.name}", os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns: {os.strerror(e)}")
            finally:
                os.close(fd)
            out["s"] = socket.socket(family, type_)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            out["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["s"]


def ns_connect(ns, host: str, port: int, timeout: float = 5.0
               ) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = ns_socket(ns, family)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def read_head(s: socket.socket, limit: int = 65536) -> tuple[bytes, bytes]:
    """Reads until the end of a response head; returns (head, rest). An
    empty head means the peer closed (or reset) before answering."""
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < limit:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        buf += chunk
    head, sep, rest = buf.partition(b"\r\n\r\n")
    return (head + sep if sep else head), rest


def status_of(head: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(m.group(1)) if m else 0


class RawAnswer:
    def __init__(self, head: bytes, body: bytes):
        self.head = head
        self.body = body
        self.status = status_of(head)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"RawAnswer({self.status}, {self.head!r}, {self.body[:200]!r})"


def raw_exchange(ns, port: int, data: bytes, timeout: float = 5.0,
                 read_body: bool = True) -> RawAnswer:
    """Sends data to 127.0.0.1:port in ns, reads one response head and (with
    read_body) what follows until Content-Length or close."""
    with ns_connect(ns, "127.0.0.1", port, timeout) as s:
        s.sendall(data)
        head, rest = read_head(s)
        if read_body and head:
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            want = int(m.group(1)) if m else None
            while want is None or len(rest) < want:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                rest += chunk
            if want is not None:
                rest = rest[:want]
        return RawAnswer(head, rest)


# ------------------------------------------------------------ DNS server

def _dns_serve(port: int, table_path: str, log_path: str) -> None:
    """UDP DNS on 127.0.0.1:port. table: {"name": {"A": [..], "AAAA": [..],
    "rotate": true}}; with rotate, successive A (and AAAA) queries for that
    name get the next single address of the list, in turn. Unknown names:
    NXDOMAIN. One log line per query: "NAME TYPE -> ANSWER"."""
    table = {k.lower().rstrip("."): v for k, v in
             json.loads(Path(table_path).read_text()).items()}
    counters: dict[tuple[str, int], int] = {}
    log = open(log_path, "a", buffering=1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        pkt, peer = s.recvfrom(4096)
        if len(pkt) < 17:
            continue
        qid, flags, qd = pkt[0:2], pkt[2:4], int.from_bytes(pkt[4:6], "big")
        if qd != 1:
            continue
        i, labels = 12, []
        while i < len(pkt) and pkt[i] != 0:
            n = pkt[i]
            labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        i += 1
        if i + 4 > len(pkt):
            continue
        qtype = int.from_bytes(pkt[i:i + 2], "big")
        question = pkt[12:i + 4]
        name = ".".join(labels).lower()
        entry = table.get(name)
        answers: list[bytes] = []
        rcode = 3 if entry is None else 0
        kind = {1: "A", 28: "AAAA"}.get(qtype)
        addrs = list(entry.get(kind, [])) if entry and kind else []
        if addrs and entry.get("rotate"):
            k = counters.get((name, qtype), 0)
            counters[(name, qtype)] = k + 1
            addrs = [addrs[k % len(addrs)]]
        for a in addrs:
            fam = socket.AF_INET if qtype == 1 else socket.AF_INET6
            rdata = socket.inet_pton(fam, a)
            answers.append(b"\xc0\x0c" + qtype.to_bytes(2, "big") +
                           b"\x00\x01" + (0).to_bytes(4, "big") +
                           len(rdata).to_bytes(2, "big") + rdata)
        rd = flags[0] & 0x01
        hdr = (qid + bytes([0x84 | rd, 0x80 | rcode]) + b"\x00\x01" +
               len(answers).to_bytes(2, "big") + b"\x00\x00\x00\x00")
        s.sendto(hdr + question + b"".join(answers), peer)
        log.write(f"{name} {kind or qtype} -> "
                  f"{','.join(addrs) if entry else 'NXDOMAIN'}\n")


class DnsServer:
    """The DNS server above, started inside ns. queries() reads its log."""

    def __init__(self, procs, ns, workdir: Path,
                 table: Mapping[str, Mapping]):
        self.procs, self.ns = procs, ns
        self.workdir = Path(workdir)
        self.port = free_udp_port()
        self.table_path = self.workdir / "dns-table.json"
        self.log_path = self.workdir / "dns-queries.log"
        self.table_path.write_text(json.dumps(table))
        self.log_path.write_text("")
        self.proc = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "DnsServer":
        self.proc = self.ns.start(
            self.procs, [sys.executable, str(THIS), "dns", str(self.port),
                         str(self.table_path), str(self.log_path)],
            name="dns", check_sanitizer=False)
        probe = ("import socket,sys\n"
                 "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                 "s.settimeout(0.3)\n"
                 "q=b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00"
                 "\\x00\\x00\\x05probe\\x00\\x00\\x01\\x00\\x01'\n"
                 "for _ in range(30):\n"
                 f"    s.sendto(q,('127.0.0.1',{self.port}))\n"
                 "    try:\n"
                 "        s.recv(512); sys.exit(0)\n"
                 "    except OSError: pass\n"
                 "sys.exit(1)\n")
        cp = self.ns.run([sys.executable, "-c", probe], timeout=20)
        if cp.returncode != 0:
            raise RuntimeError(f"DNS server did not answer\n"
                               f"{self.proc.tail()}")
        return self

    def queries(self, name: str | None = None) -> list[str]:
        lines = [l for l in self.log_path.read_text().splitlines()
                 if not l.startswith("probe ")]
        if name is not None:
            lines = [l for l in lines if l.split(" ", 1)[0] == name]
        return lines


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------- recording origin

def _origin_serve(log_path: str, ports: Sequence[int]) -> None:
    import http.server
    import socketserver

    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)

    def write(rec: dict) -> None:
        with lock:
            log.write(json.dumps(rec) + "\n")

    def local_of(sock) -> tuple[str, int]:
        host, port = sock.getsockname()[:2]
        if host.startswith("::ffff:"):
            host = host[7:]
        return host, port

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            host, port = local_of(self.connection)
            write({"event": "conn", "local": host, "port": port})

        def _any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            host, port = local_of(self.connection)
            write({"event": "request", "local": host, "port": port,
                   "method": self.command, "path": self.path,
                   "headers": [[k, v] for k, v in self.headers.items()],
                   "body": body.decode("latin-1")})
            out = f"origin ok {host}:{port} {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

        def log_message(self, *a):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        address_family = socket.AF_INET6
        daemon_threads = True
        allow_reuse_address = True

        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                                   0)
            socketserver.TCPServer.server_bind(self)

    servers = [Server(("::", p), Handler) for p in ports]
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()


class RecordingOrigin:
    """An HTTP/1.1 origin on [::]:ports (dual-stack: it answers on every
    loopback address, 127.0.0.1 and ::1 included, so that a proxy that lets
    a bypass through gets a 200). Every connection and request is logged
    with the local address it arrived at."""

    def __init__(self, procs, ns, workdir: Path, ports: Sequence[int] = (80,)):
        self.procs, self.ns = procs, ns
        self.ports = list(ports)
        self.log_path = Path(workdir) / "origin.log"
        self.log_path.write_text("")

    def start(self) -> "RecordingOrigin":
        self.proc = self.ns.start(
            self.procs, [sys.executable, str(THIS), "origin",
                         str(self.log_path), *map(str, self.ports)],
            name="origin", check_sanitizer=False)
        import moat_harness as mh
        for p in self.ports:
            mh.wait_for_port(p, "127.0.0.2", proc=self.proc, netns=self.ns)
        self.log_path.write_text("")     # forget the readiness probes
        return self

    def records(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def conns(self, local: str | None = None) -> list[dict]:
        return [r for r in self.records() if r["event"] == "conn"
                and (local is None or r["local"] == local)]

    def requests(self, path_contains: str | None = None) -> list[dict]:
        return [r for r in self.records() if r["event"] == "request"
                and (path_contains is None or path_contains in r["path"])]


# ----------------------------------------------------- scripted origin

# The scripted origin's answers, by the first path segment. Each is the
# exact byte string the origin writes; "{path}" is replaced by the request's
# path. Answers marked close=True end with the origin closing its side.
SCRIPTED = {
    # Content-Length, keep-alive.
    "ok": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
           b"Content-Length: {len}\r\n\r\n{body}", False),
    # Neither Content-Length nor chunked: delimited by the origin's close.
    "eof": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
            b"{body}", True),
    # Chunked, split in two chunks with an extension and a trailer.
    "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nchunk\r\n{hexlen}\r\n{body}\r\n0\r\n"
                b"X-Trailer: t\r\n\r\n", False),
    # Content-Length and Transfer-Encoding both: a response that two
    # parsers can frame differently. What follows is a forged response.
    "clte": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED", False),
    # Two Content-Length fields that disagree.
    "dupcl": (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n"
              b"Content-Length: 52\r\n\r\nSMUGGLED"
              b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED",
              False),
    # Two Content-Length fields that agree: still refused.
    "samecl": (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n"
               b"Content-Length: 8\r\n\r\nSMUGGLED", False),
}


def _scripted_serve(log_path: str, addr: str, port: int) -> None:
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)
    conn_ids = iter(range(1, 1 << 30))

    def write(rec: dict) -> None:
        with lock:
            log.write(json.dumps(rec) + "\n")

    def serve(c: socket.socket, cid: int) -> None:
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        d = c.recv(65536)
                    except OSError:
                        return
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                parts = line.split(" ")
                path = parts[1] if len(parts) > 1 else "/"
                write({"event": "request", "conn": cid, "line": line,
                       "path": path, "head": head.decode("latin-1")})
                kind = path.strip("/").split("/")[0]
                tmpl, close = SCRIPTED.get(kind, SCRIPTED["ok"])
                body = f"scripted {path}\n".encode()
                out = (tmpl.replace(b"{len}", str(len(body)).encode())
                       .replace(b"{hexlen}", f"{len(body):x}".encode())
                       .replace(b"{body}", body))
                if line.startswith("HEAD "):
                    out = out.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
                c.sendall(out)
                if close:
                    return

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        cid = next(conn_ids)
        write({"event": "conn", "conn": cid})
        threading.Thread(target=serve, args=(c, cid), daemon=True).start()


class ScriptedOrigin:
    """An HTTP/1.1 origin on addr:port whose answers are exact bytes chosen
    by the path's first segment (SCRIPTED): how the proxy frames hostile or
    unusual responses is tested against bytes no real server library would
    write. Connections and requests are logged (each request with the id of
    the connection it came on)."""

    def __init__(self, procs, ns, workdir: Path, addr: str = "127.0.0.2",
                 port: int = 80):
        self.procs, self.ns = procs, ns
        self.addr, self.port = addr, port
        self.log_path = Path(workdir) / "scripted-origin.log"
        self.log_path.write_text("")

    def start(self) -> "ScriptedOrigin":
        self.proc = self.ns.start(
            self.procs, [sys.executable, str(THIS), "scripted",
                         str(self.log_path), self.addr, str(self.port)],
            name="scripted-origin", check_sanitizer=False)
        import moat_harness as mh
        mh.wait_for_port(self.port, self.addr, proc=self.proc, netns=self.ns)
        self.log_path.write_text("")     # forget the readiness probe
        return self

    def records(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def conns(self) -> list[dict]:
        return [r for r in self.records() if r["event"] == "conn"]

    def requests(self, path_contains: str | None = None) -> list[dict]:
        return [r for r in self.records() if r["event"] == "request"
                and (path_contains is None or path_contains in r["path"])]


# ----------------------------------------------------------------- nginx

class Nginx:
    """nginx in the foreground inside ns. listens: list of "ADDR:PORT" or
    "ADDR:PORT ssl"; root: a directory of static files; tls: (cert, key);
    git_root: a directory of bare repositories served by git-http-backend
    through fcgiwrap (also started) under /NAME.git/."""

    def __init__(self, procs, ns, workdir: Path, listens: Sequence[str],
                 root: Path, tls: tuple[Path, Path] | None = None,
                 git_root: Path | None = None, name: str = "nginx",
                 extra_http: str = ""):
        self.procs, self.ns = procs, ns
        self.dir = Path(workdir) / name
        self.listens = list(listens)
        self.root = Path(root)
        self.tls = tls
        self.git_root = git_root
        self.name = name
        self.extra_http = extra_http

    def config(self) -> str:
        d = self.dir
        lines = "".join(f"    listen {l};\n" for l in self.listens)
        tls = ""
        if self.tls:
            tls = (f"    ssl_certificate {self.tls[0]};\n"
                   f"    ssl_certificate_key {self.tls[1]};\n")
        git = ""
        if self.git_root:
            git = (
                "    location ~ ^/[^/]+\\.git(/.*)?$ {\n"
                "      client_max_body_size 0;\n"
                "      include /etc/nginx/fastcgi_params;\n"
                "      fastcgi_param SCRIPT_FILENAME "
                "/usr/lib/git-core/git-http-backend;\n"
                f"      fastcgi_param GIT_PROJECT_ROOT {self.git_root};\n"
                "      fastcgi_param GIT_HTTP_EXPORT_ALL 1;\n"
                "      fastcgi_param PATH_INFO $uri;\n"
                f"      fastcgi_pass unix:{d}/fcgiwrap.sock;\n"
                "    }\n")
        return (
            "user root;\n"
            "worker_processes 1;\n"
            f"pid {d}/nginx.pid;\n"
            f"error_log {d}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  access_log {d}/access.log;\n"
            f"  client_body_temp_path {d}/body;\n"
            f"  fastcgi_temp_path {d}/fastcgi;\n"
            f"  proxy_temp_path {d}/proxy;\n"
            f"  uwsgi_temp_path {d}/uwsgi;\n"
            f"  scgi_temp_path {d}/scgi;\n"
            "  default_type text/plain;\n"
            f"{self.extra_http}"
            "  server {\n"
            f"{lines}{tls}"
            f"    root {self.root};\n"
            f"{git}"
            "  }\n"
            "}\n")

    def start(self) -> "Nginx":
        import moat_harness as mh
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        if self.git_root:
            sock = self.dir / "fcgiwrap.sock"
            self.fcgi = self.ns.start(
                self.procs, ["fcgiwrap", "-c", "2", "-s", f"unix:{sock}"],
                name=f"{self.name}-fcgiwrap", check_sanitizer=False)
            mh.wait_until(sock.exists, 10, what="fcgiwrap socket")
        self.proc = self.ns.start(
            self.procs, ["nginx", "-p", str(self.dir), "-c", str(conf),
                         "-g", "daemon off;"],
            name=self.name, check_sanitizer=False)
        for l in self.listens:
            hp = l.split()[0]
            host, port = hp.rsplit(":", 1)
            mh.wait_for_port(int(port), host.strip("[]"), proc=self.proc,
                             netns=self.ns)
        return self


def make_git_repo(parent: Path, name: str = "repo") -> Path:
    """A bare repository parent/NAME.git with one commit holding README
    ("hello from the git origin")."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               GIT_CONFIG_NOSYSTEM="1", HOME=str(parent))
    work = parent / f"{name}-work"
    bare = parent / f"{name}.git"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True,
                   env=env)
    (work / "README").write_text("hello from the git origin\n")
    subprocess.run(["git", "-C", str(work), "add", "README"], check=True,
                   env=env)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", "first"],
                   check=True, env=env)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)],
                   check=True, env=env)
    subprocess.run(["git", "-C", str(bare), "update-server-info"],
                   check=True, env=env)
    return bare


# ------------------------------------------------------------- moat-proxy

def audit_key(path: Path) -> Path:
    """An EC P-256 key made the way an operator would."""
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1",
                    "-out", str(path)], check=True, capture_output=True)
    os.chmod(path, 0o600)
    return path


class MoatProxy:
    """moat-proxy --policy FILE --listen 127.0.0.1:PORT inside ns, with
    --resolver (a DnsServer), an audit chain and key (audit=True), and
    extra flags. set_policy() rewrites the policy file (rename or in place).
    events() reads the audit chain."""

    def __init__(self, procs, ns, workdir: Path, policy: Mapping, *,
                 dns: DnsServer | None = None, hosts_file: Path | None = None,
                 audit: bool = True, extra: Sequence[str] = (),
                 name: str = "moat-proxy", exe: Path | None = None):
        import moat_harness as mh
        self.procs, self.ns = procs, ns
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.exe = Path(exe) if exe else mh.binary("moat-proxy")
        self.port = mh.free_port()
        self.metrics_port = mh.free_port()
        self.policy_path = self.dir / "policy.json"
        self.audit_path = self.dir / "audit.log" if audit else None
        self.key_path = audit_key(self.dir / "audit-key.pem") if audit \
            else None
        self.dns, self.hosts_file = dns, hosts_file
        self.extra = list(extra)
        self.name = name
        self.proc = None
        self.policy_path.write_text(json.dumps(policy, indent=1))

    def argv(self) -> list[str]:
        a = [str(self.exe), "--policy", str(self.policy_path), "--listen",
             f"127.0.0.1:{self.port}", "--metrics-listen",
             f"127.0.0.1:{self.metrics_port}"]
        if self.dns:
            a += ["--resolver", self.dns.addr]
        if self.hosts_file:
            a += ["--hosts-file", str(self.hosts_file)]
        if self.audit_path:
            a += ["--audit-file", str(self.audit_path), "--audit-key",
                  str(self.key_path)]
        return a + self.extra

    def start(self) -> "MoatProxy":
        import moat_harness as mh
        if not self.exe.exists():
            import pytest
            pytest.skip(f"{self.exe} not built")
        env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0"}
        self.proc = self.ns.start(self.procs, self.argv(), name=self.name,
                                  env=env)
        mh.wait_for_port(self.port, proc=self.proc, netns=self.ns)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, up to timeout seconds for a graceful exit (the audit
        chain's final checkpoint is written then), SIGKILL after."""
        return self.proc.stop(timeout) if self.proc else None

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_policy(self, doc: Mapping, inplace: bool = False) -> None:
        """Writes a new policy: by rename over the file (how config tools
        and Kubernetes publish), or rewriting it in place (an editor)."""
        text = json.dumps(doc, indent=1)
        if inplace:
            with open(self.policy_path, "w") as f:
                f.write(text)
        else:
            tmp = self.policy_path.with_suffix(".tmp")
            tmp.write_text(text)
            os.rename(tmp, self.policy_path)

    # audit
    def records(self) -> list[dict]:
        if not self.audit_path or not self.audit_path.exists():
            return []
        out = []
        for line in self.audit_path.read_text("utf-8", "replace"
                                              ).splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def events(self, prefix: str = "egress.") -> list[dict]:
        return [e for e in self.records()
                if str(e.get("type", "")).startswith(prefix)]

    def wait_events(self, pred: Callable[[dict], bool], count: int = 1,
                    timeout: float = 5.0) -> list[dict]:
        """Waits until at least count egress events satisfy pred."""
        deadline = time.monotonic() + timeout
        while True:
            got = [e for e in self.events() if pred(e)]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


def flat(ev: dict) -> dict:
    """An audit event with target and details merged into the top level
    (the tests look fields up by name wherever the proxy put them)."""
    out = dict(ev)
    for k in ("target", "details"):
        v = ev.get(k)
        if isinstance(v, dict):
            for kk, vv in v.items():
                out.setdefault(kk, vv)
    return out


def is_deny(ev: dict) -> bool:
    return ev.get("type") == "egress.deny"


def is_allow(ev: dict) -> bool:
    return ev.get("type") == "egress.allow"


def ev_host(ev: dict) -> str | None:
    f = flat(ev)
    for k in ("host", "requested_host", "dest_host"):
        if isinstance(f.get(k), str):
            return f[k]
    return None


def proxy_curl(proxy: MoatProxy, url: str, *extra: str,
               tunnel: bool = False, timeout: float = 10.0):
    """curl -x through the proxy inside its namespace; returns
    moat_harness.Response (raises CurlError without an HTTP answer)."""
    args = ["-x", proxy.proxy_url]
    if tunnel:
        args.append("--proxytunnel")
    return _curl_ns(proxy.ns, url, *args, *extra, timeout=timeout)


def _curl_ns(ns, url: str, *extra: str, timeout: float = 10.0):
    """moat_harness.curl without its --noproxy '*' (which would bypass -x)."""
    import tempfile
    import moat_harness as mh
    with tempfile.TemporaryDirectory(prefix="moat-pcurl-") as td:
        head, body = Path(td) / "head", Path(td) / "body"
        args = ["curl", "-sS", "-o", str(body), "-D", str(head), "-w",
                "%{http_code}", "--max-time", str(timeout), *extra, url]
        cp = subprocess.run(ns.wrap(args), capture_output=True,
                            env=mh.child_env(), timeout=timeout + 10)
        raw = head.read_bytes() if head.exists() else b""
        if cp.returncode != 0 and not raw:
            raise mh.CurlError(cp.returncode,
                               cp.stderr.decode("utf-8", "replace"), args)
        status, msg = mh._parse_head(raw)
        return mh.Response(status, msg, body.read_bytes() if body.exists()
                           else b"")


if __name__ == "__main__":
    if sys.argv[1] == "dns":
        _dns_serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "origin":
        _origin_serve(sys.argv[2], [int(p) for p in sys.argv[3:]])
    elif sys.argv[1] == "scripted":
        _scripted_serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: proxy_fixtures.py dns PORT TABLE LOG | "
                 "origin LOG PORT... | scripted LOG ADDR PORT")
