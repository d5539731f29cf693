"""End-to-end tests of `moatd serve` with real clients: curl, openssl
s_client, HAProxy in front (PROXY protocol), and moat audit verify."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time

import pytest

import moat_harness as mh


def metric_value(text: str, name: str, **labels) -> float | None:
    """The value of one sample in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def raw_exchange(port: int, data: bytes, source: str = "127.0.0.1",
                 timeout: float = 5.0) -> bytes:
    """Sends data from source over plain TCP and returns all bytes read
    until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return out


# ------------------------------------------------------------ basics

def test_healthz_and_readyz_over_tls(moatd):
    r = moatd.curl("/healthz")
    assert r.status == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["content-type"].startswith("application/json")
    r = moatd.curl("/readyz")
    assert r.status == 200 and r.json()["status"] == "ready"


def test_tls_below_1_2_is_refused(moatd):
    res = mh.openssl_s_client("127.0.0.1", moatd.port, "-tls1_1",
                              ca=moatd.ca)
    assert not res.handshake_ok
    res = mh.openssl_s_client("127.0.0.1", moatd.port, "-tls1_2",
                              ca=moatd.ca, verify_hostname="localhost")
    assert res.handshake_ok and res.verified


def test_unknown_route_and_error_shape(moatd):
    r = moatd.curl("/nope")
    assert r.status == 404
    assert set(r.json()["error"]) == {"code", "message"}


def test_api_requires_authentication_and_denials_are_audited(moatd):
    r = moatd.curl("/api/v1/users/me")
    assert r.status == 401
    assert r.json()["error"]["code"] == "unauthenticated"

    def denied():
        return [e for e in moatd.audit_events()
                if e.get("type") == "access.denied"]
    ev = mh.wait_until(denied, 10, what="access.denied audit event")[0]
    assert ev["outcome"] == "denied"
    assert ev["actor"]["addr"] == "127.0.0.1"
    assert ev["target"]["path"] == "/api/v1/users/me"


def test_access_log_line_per_request(moatd):
    moatd.curl("/healthz?token=supersecretvalue")
    line = moatd.wait_for_log(lambda d: d.get("component") == "access"
                              and d.get("path") == "/healthz")
    assert line["status"] == 200 and line["method"] == "GET"
    assert line["client"] == "127.0.0.1"
    # The query string (which may carry tokens) is never logged.
    assert "supersecretvalue" not in moatd.proc.stderr_text()


def test_metrics_on_separate_listener(moatd):
    for _ in range(3):
        moatd.curl("/healthz")
    r = mh.curl(moatd.metrics_url + "/metrics")
    assert r.status == 200
    v = metric_value(r.text, "moatd_http_requests_total", route="/healthz",
                     method="GET", code="200")
    assert v is not None and v >= 3
    assert metric_value(r.text, "moatd_http_request_duration_seconds_count",
                        route="/healthz") >= 3
    assert metric_value(r.text, "moatd_http_open_connections") is not None
    # Not on the public listener.
    assert moatd.curl("/metrics").status == 404


def test_bad_requests_get_4xx_and_server_survives(moatd):
    ctx_port = moatd.port
    # Speak TLS with openssl s_client carrying malformed requests.
    cases = [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\nab",
        b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 70000 +
        b"\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for req in cases:
        res = mh.openssl_s_client("127.0.0.1", ctx_port, "-quiet",
                                  "-ign_eof", ca=moatd.ca, input=req)
        m = re.search(r"HTTP/1\.1 (\d{3})", res.output)
        assert m, res.output[-500:]
        assert 400 <= int(m.group(1)) < 500
    assert moatd.curl("/healthz").status == 200
    assert moatd.proc.alive()


# ------------------------------------------------------------- mTLS

def mtls_moatd(moatd_factory, data_dir, *extra):
    return moatd_factory(data_dir=data_dir,
                         extra_args=("--client-ca",
                                     str(data_dir / "secrets" /
                                         "client-ca.crt"), *extra))


def test_mtls_accepts_the_ingress_certificate(moatd_factory, moatd_data):
    m = mtls_moatd(moatd_factory, moatd_data)
    pki = moatd_data / "pki"
    r = mh.curl(m.url + "/healthz", ca=m.ca, cert=pki / "ingress.crt",
                key=pki / "ingress.key")
    assert r.status == 200


def test_mtls_refuses_no_foreign_and_wrong_name_certificates(
        moatd_factory, moatd_data, test_ca):
    m = mtls_moatd(moatd_factory, moatd_data)
    pki = moatd_data / "pki"
    # No client certificate at all.
    with pytest.raises(mh.CurlError):
        mh.curl(m.url + "/healthz", ca=m.ca)
    # A certificate named "ingress" from another CA.
    rogue = test_ca("rogue CA").issue("ingress", dns=["ingress"], client=True)
    with pytest.raises(mh.CurlError):
        mh.curl(m.url + "/healthz", ca=m.ca, cert=rogue.cert, key=rogue.key)
    # A certificate of the right CA with another name (moatd's own).
    with pytest.raises(mh.CurlError):
        mh.curl(m.url + "/healthz", ca=m.ca, cert=pki / "moatd-client.crt",
                key=pki / "moatd-client.key")
    # The same with openssl s_client: no HTTP response comes back.
    res = mh.openssl_s_client("127.0.0.1", m.port, "-quiet", ca=m.ca,
                              cert=rogue.cert, key=rogue.key,
                              input=b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n")
    assert "HTTP/1.1 200" not in res.output
    res = mh.openssl_s_client("127.0.0.1", m.port, "-quiet", ca=m.ca,
                              input=b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n")
    assert "HTTP/1.1 200" not in res.output
    res = mh.openssl_s_client("127.0.0.1", m.port, "-quiet", ca=m.ca,
                              cert=pki / "ingress.crt",
                              key=pki / "ingress.key",
                              input=b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n")
    assert "HTTP/1.1 200" in res.output


def test_x_forwarded_for_only_from_the_ingress(moatd_factory, moatd_data,
                                               tmp_path):
    plain = moatd_factory()
    plain.curl("/api/v1/x", headers={"X-Forwarded-For": "198.51.100.7"})
    # A second moatd needs its own data directory (one audit collector each).
    data2 = tmp_path / "data2"
    mh.moatd_init(data2)
    m = mtls_moatd(moatd_factory, data2, "--audit-file",
                   str(data2 / "audit-mtls.log"))
    m.curl("/api/v1/y", headers={"X-Forwarded-For":
                                 "203.0.113.9, 198.51.100.8"})

    def addr_of(mo, path):
        for e in mo.audit_events():
            if e.get("type") == "access.denied" and \
                    e["target"]["path"] == path:
                return e["actor"]["addr"]
        return None
    assert mh.wait_until(lambda: addr_of(plain, "/api/v1/x"), 10) == \
        "127.0.0.1"
    assert mh.wait_until(lambda: addr_of(m, "/api/v1/y"), 10) == \
        "198.51.100.8"


# --------------------------------------------------- PROXY protocol

@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_through_haproxy(moatd_factory, haproxy, version):
    m = moatd_factory(extra_args=("--proxy-protocol-from", "127.0.0.1/32"),
                      ready="port")
    hp = haproxy(m.port, send_proxy=version)
    # The client speaks from 127.0.0.5; HAProxy (127.0.0.1) is the peer.
    r = mh.curl(f"https://127.0.0.1:{hp.port}/healthz", "--interface",
                "127.0.0.5", ca=m.ca)
    assert r.status == 200
    line = m.wait_for_log(lambda d: d.get("component") == "access"
                          and d.get("path") == "/healthz")
    assert line["client"] == "127.0.0.5"
    r = mh.curl(f"https://127.0.0.1:{hp.port}/api/v1/users", "--interface",
                "127.0.0.5", ca=m.ca)
    assert r.status == 401
    ev = mh.wait_until(lambda: [e for e in m.audit_events()
                                if e.get("type") == "access.denied"], 10)[0]
    assert ev["actor"]["addr"] == "127.0.0.5"


def test_proxy_header_from_unlisted_peer_or_missing_is_refused(
        moatd_factory):
    m = moatd_factory(extra_args=("--proxy-protocol-from", "127.0.0.1/32"),
                      ready="port")
    header = b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 443\r\n"
    # From 127.0.0.7, which is not a configured balancer: closed unanswered.
    out = raw_exchange(m.port, header + b"\x16\x03\x01\x00\x05hello",
                       source="127.0.0.7")
    assert out == b""
    # From the balancer address but without any header: refused too.
    with pytest.raises(mh.CurlError):
        mh.curl(m.url + "/healthz", ca=m.ca)
    m.wait_for_log(lambda d: "refused" in str(d.get("msg", "")).lower()
                   or "proxy" in str(d.get("msg", "")).lower())
    assert m.proc.alive()


# ------------------------------------------------------ TLS reload

def test_certificate_swapped_on_disk_is_served_without_restart(
        moatd, test_ca):
    before = mh.openssl_s_client("127.0.0.1", moatd.port, ca=moatd.ca)
    assert before.verified
    ca2 = test_ca("second CA")
    leaf = ca2.issue("localhost", dns=["localhost"], ips=["127.0.0.1"],
                     server=True)
    mh.secrets_swap(moatd.secrets, {"tls.crt": leaf.cert.read_bytes(),
                                    "tls.key": leaf.key.read_bytes()})

    def served_by_new():
        res = mh.openssl_s_client("127.0.0.1", moatd.port, ca=ca2.cert)
        return res.verified
    mh.wait_until(served_by_new, 15, what="new certificate served")
    # Same process, no restart.
    assert moatd.proc.alive()
    r = mh.curl(moatd.url + "/healthz", ca=ca2.cert)
    assert r.status == 200


def test_broken_certificate_files_keep_the_old_ones(moatd):
    mh.secrets_swap(moatd.secrets, {"tls.crt": b"not a certificate\n"})
    moatd.wait_for_log(lambda d: d.get("level") == "error" and
                       "TLS" in str(d.get("msg", "")), timeout=15)
    assert moatd.curl("/healthz").status == 200


# ------------------------------------------------- config and audit

def test_configuration_errors_name_the_key(moatd_data):
    exe = str(mh.binary("moatd"))
    cp = subprocess.run([exe, "--data-dir", str(moatd_data), "--lisen",
                         "127.0.0.1:1"], capture_output=True, text=True,
                        env=mh.child_env(), timeout=30)
    assert cp.returncode == 2 and "lisen" in cp.stderr
    cp = subprocess.run([exe, "--data-dir", str(moatd_data), "--threads",
                         "lots"], capture_output=True, text=True,
                        env=mh.child_env(), timeout=30)
    assert cp.returncode == 2 and "threads" in cp.stderr
    cfg = moatd_data / "moatd.yaml"
    cfg.write_text("listen: 127.0.0.1:1\nunknown-key: 3\n")
    cp = subprocess.run([exe, "--config", str(cfg), "--data-dir",
                         str(moatd_data)], capture_output=True, text=True,
                        env=mh.child_env(), timeout=30)
    assert cp.returncode == 2 and "unknown-key" in cp.stderr
    cp = subprocess.run([exe, "--data-dir", str(moatd_data / "missing")],
                        capture_output=True, text=True, env=mh.child_env(),
                        timeout=30)
    assert cp.returncode != 0 and "moatd init" in cp.stderr


def test_graceful_shutdown_leaves_a_verified_chain(moatd):
    moatd.curl("/api/v1/anything")
    moatd.proc.signal(signal.SIGTERM)
    assert moatd.proc.wait(15) == 0
    events = moatd.audit_events()
    types = [e["type"] for e in events]
    assert "moatd.start" in types and "moatd.stop" in types
    assert types[-1] == "audit.checkpoint"
    moat = str(mh.binary("moat"))
    pub = moatd.secrets / "audit-signing.pub"
    cp = subprocess.run([moat, "audit", "verify", str(moatd.audit_path),
                         "--key", str(pub)], capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert "signatures verified" in cp.stdout
    # Tamper with one record: verify names it.
    lines = moatd.audit_path.read_text().splitlines(keepends=True)
    idx = next(i for i, l in enumerate(lines) if "access.denied" in l)
    lines[idx] = lines[idx].replace("/api/v1/anything", "/api/v1/innocent")
    moatd.audit_path.write_text("".join(lines))
    cp = subprocess.run([moat, "audit", "verify", str(moatd.audit_path),
                         "--key", str(pub)], capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 1
    assert f"line {idx + 1}" in cp.stderr


def test_disk_below_audit_reserve_makes_moatd_not_ready(moatd_factory):
    # A reserve larger than any disk: the audit writer reports it, /readyz
    # says why, and the server itself stays up.
    m = moatd_factory(extra_args=("--audit-disk-reserve", "1000000G"))
    r = m.curl("/readyz")
    assert r.status == 503
    assert "audit" in " ".join(r.json()["reasons"])
    assert m.curl("/healthz").status == 200
    m.wait_for_log(lambda d: d.get("level") in ("warn", "error") and
                   d.get("component") == "audit")


def test_plain_listener_is_loopback_only(moatd_data):
    # The plain-HTTP listener exists for development and benchmarks; it
    # must never expose the API without TLS beyond the machine.
    exe = str(mh.binary("moatd"))
    port = mh.free_port()
    cp = subprocess.run([exe, "--data-dir", str(moatd_data), "--listen",
                         f"127.0.0.1:{mh.free_port()}", "--metrics-listen", "",
                         "--plain-listen", f"0.0.0.0:{port}"],
                        capture_output=True, text=True, env=mh.child_env(),
                        timeout=30)
    assert cp.returncode != 0
    assert "loopback" in cp.stderr
