"""Self-tests of the end-to-end harness (moat_harness.py, conftest.py).

They need no moat binary: they drive the harness against openssl s_server,
haproxy and small Python servers, so a broken helper shows up here rather
than as a confusing failure in a moat test.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import moat_harness as mh


def test_free_port_and_wait_for_port(procs):
    port = mh.free_port()
    assert 1024 <= port <= 65535
    assert not mh.port_open(port)
    with pytest.raises(mh.HarnessError, match="nothing listens"):
        mh.wait_for_port(port, timeout=0.3)
    srv = procs.start([sys.executable, "-m", "http.server", "--bind",
                       "127.0.0.1", str(port)], name="http")
    mh.wait_for_port(port, proc=srv)
    r = mh.curl(f"http://127.0.0.1:{port}/")
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("text/html")


def test_wait_for_port_notices_exit(procs):
    p = procs.start(["sh", "-c", "echo boom >&2; exit 3"], name="dies")
    with pytest.raises(mh.HarnessError, match="exited with 3") as ei:
        mh.wait_for_port(mh.free_port(), proc=p, timeout=10)
    assert "boom" in str(ei.value)


def test_proc_stop_kills_whole_group(procs, tmp_path):
    pidfile = tmp_path / "child.pid"
    # A shell that ignores SIGTERM with a child that does too: stop() must
    # escalate to SIGKILL and reach the child through the group.
    p = procs.start(["sh", "-c", f"trap '' TERM; sleep 600 & echo $! > "
                     f"{pidfile}; echo started; wait"], name="stubborn")
    p.wait_for_output("started", stream="stdout")
    child = int(pidfile.read_text())
    assert os.getpgid(child) == p.pid      # own process group
    assert os.getsid(p.pid) == p.pid       # own session
    t0 = time.monotonic()
    rc = p.stop(timeout=0.5)
    assert rc == -signal.SIGKILL
    assert time.monotonic() - t0 < 5
    mh.wait_until(lambda: not os.path.exists(f"/proc/{child}") or
                  open(f"/proc/{child}/stat").read().split()[2] == "Z",
                  timeout=5, what="child killed")


def test_proc_sigterm_and_logs(procs):
    p = procs.start([sys.executable, "-c",
                     "import sys,time; print('out line'); "
                     "print('{\"level\":\"info\",\"msg\":\"hi\"}', "
                     "file=sys.stderr, flush=True); time.sleep(600)"],
                    name="py")
    p.wait_for_output("hi")
    assert p.stop() == -signal.SIGTERM
    assert "out line" in p.stdout_text()
    assert mh.parse_log_lines(p.stderr_text()) == [
        {"level": "info", "msg": "hi"}]
    assert "out line" in p.tail() and "stderr tail" in p.tail()
    # Unique log names for repeated names.
    q = procs.start(["true"], name="py")
    assert q.name == "py-2"
    q.wait(5)


def test_sanitizer_report_detected(tmp_path):
    g = mh.ProcGroup(tmp_path)
    p = g.start(["sh", "-c", "echo '==1==ERROR: AddressSanitizer: "
                 "heap-use-after-free' >&2"], name="asan")
    p.wait(5)
    assert g.sanitizer_reports()[0][0] == "asan"
    g.stop_all()


def test_parse_log_lines_skips_noise():
    text = ('{"a": 1}\nnot json\n{broken\n[1,2]\n'
            '  {"msg": "x", "level": "warn"}\n')
    assert mh.parse_log_lines(text) == [{"a": 1},
                                         {"msg": "x", "level": "warn"}]


@pytest.fixture
def tls_server(procs, test_ca):
    """openssl s_server -www with a certificate of a fresh test CA,
    requiring a client certificate of the same CA."""
    ca = test_ca("harness CA")
    srv = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"],
                   server=True)
    client = ca.issue("ingress", dns=["ingress"], client=True)
    port = mh.free_port()
    p = procs.start(["openssl", "s_server", "-accept", f"127.0.0.1:{port}",
                     "-cert", srv.cert, "-key", srv.key, "-CAfile", ca.cert,
                     "-Verify", "1", "-verify_return_error", "-www"],
                    name="s_server", check_sanitizer=False)
    mh.wait_for_port(port, proc=p)
    return ca, client, port


def test_curl_and_https_request(tls_server, test_ca):
    ca, client, port = tls_server
    url = f"https://127.0.0.1:{port}/"
    r = mh.curl(url, ca=ca.cert, cert=client.cert, key=client.key)
    assert r.status == 200
    assert b"s_server" in r.body
    r = mh.curl(f"https://localhost:{port}/", "--http1.1", ca=ca.cert,
                cert=client.cert, key=client.key, headers={"X-A": "1"})
    assert r.status == 200
    r = mh.https_request(url, ca=ca.cert, cert=client.cert, key=client.key)
    assert r.status == 200 and b"s_server" in r.body
    # No client certificate: the handshake (or first read) fails.
    with pytest.raises(mh.CurlError) as ei:
        mh.curl(url, ca=ca.cert)
    assert ei.value.rc in (35, 56)
    # A server certificate of another CA is refused.
    other = test_ca("other CA")
    with pytest.raises(mh.CurlError) as ei:
        mh.curl(url, ca=other.cert, cert=client.cert, key=client.key)
    assert ei.value.rc == 60


def test_curl_never_uses_proxy(tls_server, monkeypatch):
    ca, client, port = tls_server
    # A proxy that does not exist: curl would fail if it used it.
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:1")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    r = mh.curl(f"https://127.0.0.1:{port}/", ca=ca.cert, cert=client.cert,
                key=client.key)
    assert r.status == 200


def test_openssl_s_client(tls_server, test_ca):
    ca, client, port = tls_server
    r = mh.openssl_s_client("127.0.0.1", port, ca=ca.cert, cert=client.cert,
                            key=client.key, verify_hostname="localhost",
                            input=b"GET / HTTP/1.0\r\n\r\n")
    assert r.returncode == 0, r.output
    assert r.verified
    assert r.protocol == "TLSv1.3"
    r12 = mh.openssl_s_client("127.0.0.1", port, "-tls1_2", ca=ca.cert,
                              cert=client.cert, key=client.key)
    assert r12.protocol == "TLSv1.2" and r12.verified
    assert r12.field("Protocol") == "TLSv1.2"
    wrong = mh.openssl_s_client("127.0.0.1", port, ca=ca.cert,
                                cert=client.cert, key=client.key,
                                verify_hostname="example.com")
    assert not wrong.verified
    untrusted = mh.openssl_s_client("127.0.0.1", port,
                                    ca=test_ca("x").cert)
    assert untrusted.returncode != 0 and not untrusted.verified


def test_test_ca_expired_cert(test_ca):
    ca = test_ca()
    old = ca.issue("old", dns=["old"], client=True,
                   not_before="20200101000000Z", days=1)
    cp = subprocess.run(["openssl", "verify", "-CAfile", str(ca.cert),
                         str(old.cert)], capture_output=True, text=True)
    assert cp.returncode != 0 and "expired" in cp.stdout + cp.stderr
    ok = ca.issue("fresh", dns=["fresh"], client=True)
    cp = subprocess.run(["openssl", "verify", "-CAfile", str(ca.cert),
                         "-purpose", "sslclient", str(ok.cert)],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr


class _Recorder:
    """A TCP server recording what each connection sent up to the end of an
    HTTP request head, and answering a minimal HTTP response. (haproxy also
    opens backend connections for wait_for_port's probe; those carry a
    PROXY header but no request.)"""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        data = b""
        try:
            with c:
                c.settimeout(5)
                while b"HTTP/1.1\r\n" not in data or \
                        not data.endswith(b"\r\n\r\n"):
                    chunk = c.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                self.received.append(data)
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass

    def requests(self) -> list[bytes]:
        return [d for d in self.received if b"GET /x " in d]

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("version", ["v1", "v2", None])
def test_haproxy_sends_proxy_header(haproxy, version):
    rec = _Recorder()
    try:
        hp = haproxy(rec.port, send_proxy=version)
        r = mh.curl(f"http://127.0.0.1:{hp.port}/x")
        assert r.status == 200 and r.body == b"ok"
        got = mh.wait_until(rec.requests, what="backend request")[0]
        if version == "v1":
            assert got.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ")
            line = got.split(b"\r\n", 1)[0].split()
            assert int(line[5]) == hp.port        # destination port
        elif version == "v2":
            assert got.startswith(b"\r\n\r\n\x00\r\nQUIT\n")
            assert got[12] == 0x21                # version 2, PROXY
            assert got[13] == 0x11                # TCP over IPv4
        else:
            assert got.startswith(b"GET /x HTTP/1.1\r\n")
    finally:
        rec.close()


def test_secrets_swap_python(tmp_path):
    d = tmp_path / "secrets"
    d.mkdir()
    v1 = mh.secrets_swap(d, {"a": b"1", "b": "2"})
    assert os.readlink(d / "..data") == v1
    assert os.readlink(d / "a") == "..data/a"
    assert (d / "a").read_bytes() == b"1"
    assert (d / v1 / "a").stat().st_mode & 0o7777 == 0o600
    assert (d / v1).stat().st_mode & 0o7777 == 0o700
    v2 = mh.secrets_swap(d, {"a": b"new", "c": b"3"})
    assert v2 != v1 and not (d / v1).exists()
    assert (d / "a").read_bytes() == b"new"
    assert (d / "b").read_bytes() == b"2"       # kept
    assert (d / "c").read_bytes() == b"3"
    mh.secrets_swap(d, {"only": b"x"}, keep=False)
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".."))\
        == ["only"]
    with pytest.raises(ValueError):
        mh.secrets_swap(d, {"../evil": b"x"})


# A stand-in for moatd with the same flags: HTTPS /healthz from the data
# dir's secrets, plain HTTP /metrics, JSON log lines on stderr, clean exit
# on SIGTERM. Lets the Moatd class be tested before moatd serves.
FAKE_MOATD = r'''#!/usr/bin/python3
import argparse, http.server, json, signal, ssl, sys, threading
p = argparse.ArgumentParser()
for f in ("--data-dir", "--listen", "--metrics-listen", "--client-ca"):
    p.add_argument(f)
a = p.parse_args()
def log(msg, **kw):
    print(json.dumps({"level": "info", "component": "fake", "msg": msg,
                      **kw}), file=sys.stderr, flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path in ("/healthz", "/metrics") else b"no"
        self.send_response(200 if body == b"ok" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        log("request", path=self.path)
def server(addr):
    host, port = addr.rsplit(":", 1)
    return http.server.ThreadingHTTPServer((host, int(port)), H)
sec = a.data_dir + "/secrets/"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sec + "tls.crt", sec + "tls.key")
if a.client_ca:
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(a.client_ca)
main = server(a.listen)
main.socket = ctx.wrap_socket(main.socket, server_side=True)
metrics = server(a.metrics_listen)
threading.Thread(target=metrics.serve_forever, daemon=True).start()
def term(*_):
    log("stopping")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
log("listening", addr=a.listen)
main.serve_forever()
'''


@pytest.fixture
def fake_moatd(tmp_path, test_ca):
    """A data dir with certificates of a test CA, and the stand-in."""
    ca = test_ca("fake moatd CA")
    srv = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"],
                   server=True)
    ing = ca.issue("ingress", dns=["ingress"], client=True)
    data = tmp_path / "data"
    (data / "secrets").mkdir(parents=True)
    (data / "pki").mkdir()
    mh.secrets_swap(data / "secrets", {
        "ca.crt": ca.cert.read_bytes(), "client-ca.crt": ca.cert.read_bytes(),
        "tls.crt": srv.cert.read_bytes() + ca.cert.read_bytes(),
        "tls.key": srv.key.read_bytes()})
    for n in ("crt", "key"):
        (data / "pki" / f"ingress.{n}").write_bytes(
            getattr(ing, "cert" if n == "crt" else "key").read_bytes())
    exe = tmp_path / "fake-moatd"
    exe.write_text(FAKE_MOATD)
    exe.chmod(0o755)
    return data, exe


def test_moatd_class_with_stand_in(procs, fake_moatd):
    data, exe = fake_moatd
    m = mh.Moatd(procs, data, exe=exe,
                 extra_args=["--client-ca", str(data / "secrets" /
                                                "client-ca.crt")]).start()
    assert m.url == f"https://127.0.0.1:{m.port}"
    assert m.metrics_url == f"http://127.0.0.1:{m.metrics_port}"
    assert m.ca == data / "secrets" / "ca.crt"
    assert m.audit_path == data / "audit" / "audit.log"
    assert m.client_cert[0] == data / "pki" / "ingress.crt"
    assert m.request("/healthz").status == 200
    r = m.curl("/nope")
    assert r.status == 404 and r.body == b"no"
    assert mh.https_request(m.metrics_url + "/metrics").body == b"ok"
    # The client certificate is required.
    with pytest.raises(mh.CurlError):
        mh.curl(m.url + "/healthz", ca=m.ca)
    assert m.wait_for_log("listening")["addr"] == f"127.0.0.1:{m.port}"
    m.wait_for_log(lambda d: d.get("path") == "/nope")
    assert all("msg" in d for d in m.log_lines())
    assert m.stop() == 0
    assert m.log_lines()[-1]["msg"] == "stopping"
    m.restart()
    assert m.request("/healthz").status == 200


def test_moatd_startup_failure_reports_log(procs, fake_moatd):
    data, exe = fake_moatd
    m = mh.Moatd(procs, data, exe=exe, extra_args=["--bogus-flag"],
                 ready_timeout=10)
    with pytest.raises(mh.HarnessError, match="exited with 2") as ei:
        m.start()
    assert "unrecognized arguments: --bogus-flag" in str(ei.value)


def test_moatd_audit_file_flag(procs, tmp_path):
    m = mh.Moatd(procs, tmp_path, extra_args=["--audit-file",
                                              str(tmp_path / "a.log")])
    assert m.audit_path == tmp_path / "a.log"
    assert m.audit_events() == []
    (tmp_path / "a.log").write_text('{"seq": 1}\n{"seq": 2}\n')
    assert [e["seq"] for e in m.audit_events()] == [1, 2]


def test_free_port_never_repeats_and_avoids_ephemeral_range():
    lo, hi = (int(x) for x in open(
        "/proc/sys/net/ipv4/ip_local_port_range").read().split())
    ports = [mh.free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    assert not any(lo <= p <= hi for p in ports)
