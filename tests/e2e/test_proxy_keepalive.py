"""moat-proxy keep-alive for plain-HTTP forwarding, with real curl.

The client connection is kept after a response whose length the proxy
knew, and the next request on it is parsed and decided on its own; a
response delimited by the origin's close closes the client connection; a
response whose framing two parsers could read differently (Content-Length
with chunked, two Content-Length fields) is refused with 502 and none of
its bytes reach the client; idle upstream connections are reused only for
the same checked address.

One network namespace with only loopback holds moat-proxy, its DNS server
and proxy_fixtures.ScriptedOrigin on 127.0.0.2:80, whose answers are exact
bytes chosen by the request path.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import moat_harness as mh
import proxy_fixtures as pf

pytestmark = pytest.mark.netns

NAMES = {
    "ok.test": {"A": ["127.0.0.2"]},
    "raw.test": {"A": ["127.0.0.2"]},
    "denied.test": {"A": ["127.0.0.3"]},
}


def policy(extra_deny=()) -> dict:
    return {
        "name": "keepalive",
        "mode": "enforce",
        # Loopback is special-purpose: a host rule alone does not reach it,
        # so the origin's address is allowed explicitly as well.
        "allow": [{"host": "ok.test", "ports": [80]},
                  {"host": "raw.test", "ports": [80]},
                  {"cidr": "127.0.0.2/32", "ports": [80]}],
        "deny": list(extra_deny),
    }


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not mh.netns_available():
        pytest.skip("network namespaces unavailable (needs root)")
    tmp = tmp_path_factory.mktemp("keepalive")
    procs = mh.ProcGroup(tmp / "logs")
    ns = mh.NetNS().create()
    e = Env()
    e.procs, e.ns, e.tmp = procs, ns, tmp
    try:
        e.origin = pf.ScriptedOrigin(procs, ns, tmp, "127.0.0.2", 80).start()
        e.dns = pf.DnsServer(procs, ns, tmp, NAMES).start()
        e.proxy = pf.MoatProxy(procs, ns, tmp, policy(), dns=e.dns).start()
        yield e
    finally:
        procs.stop_all()
        ns.delete()
    reports = procs.sanitizer_reports()
    if reports:
        pytest.fail(f"sanitizer report in {reports[0][0]}'s stderr at "
                    f"exit:\n{reports[0][1]}", pytrace=False)


@pytest.fixture(autouse=True)
def proxy_healthy(env):
    """Fails the test during which moat-proxy died or printed a sanitizer
    report, and restarts it for the next one."""
    yield
    p = env.proxy
    rep = p.proc.sanitizer_report()
    dead = not p.proc.alive()
    if dead or rep:
        tail = p.proc.tail()
        p.stop()
        env.proxy = pf.MoatProxy(env.procs, env.ns, env.tmp, policy(),
                                 dns=env.dns,
                                 name=f"moat-proxy-{time.monotonic_ns()}"
                                 ).start()
        pytest.fail(f"moat-proxy {'died' if dead else 'sanitizer report'}"
                    f" during this test:\n{rep or tail}", pytrace=False)


class Transfer:
    def __init__(self, status: int, connects: int, head: str, body: bytes):
        self.status, self.connects = status, connects
        self.head, self.body = head, body

    def __repr__(self) -> str:
        return (f"Transfer({self.status}, connects={self.connects}, "
                f"{self.head!r}, {self.body[:200]!r})")


def curl_many(env, urls: list[str], *extra: str) -> list[Transfer]:
    """One curl process fetching urls in order through the proxy, so that
    curl reuses its proxy connection when the proxy keeps it. Returns one
    Transfer per URL: status, how many new connections curl opened for it
    (0: the previous connection was reused), response head and body."""
    with tempfile.TemporaryDirectory(prefix="moat-ka-") as td:
        args = ["curl", "-sS", "--max-time", "10", "-x",
                env.proxy.proxy_url, *extra]
        for i, u in enumerate(urls):
            if i > 0:
                args.append("--next")
                args += ["-x", env.proxy.proxy_url, *extra]
            args += ["-o", f"{td}/body{i}", "-D", f"{td}/head{i}", "-w",
                     "%{http_code} %{num_connects}\\n", u]
        cp = subprocess.run(env.ns.wrap(args), capture_output=True,
                            env=mh.child_env(), timeout=30)
        lines = cp.stdout.decode().split()
        out = []
        for i in range(len(urls)):
            head_p, body_p = Path(f"{td}/head{i}"), Path(f"{td}/body{i}")
            out.append(Transfer(
                int(lines[2 * i]) if len(lines) > 2 * i else 0,
                int(lines[2 * i + 1]) if len(lines) > 2 * i + 1 else -1,
                head_p.read_text("latin-1") if head_p.exists() else "",
                body_p.read_bytes() if body_p.exists() else b""))
        return out


def header(t: Transfer, name: str) -> str | None:
    m = re.search(rf"(?im)^{re.escape(name)}:\s*(.*?)\s*$", t.head)
    return m.group(1) if m else None


def events_for(env, path: str, type_: str) -> list[dict]:
    return [e for e in env.proxy.events() if e.get("type") == type_
            and path in str(pf.flat(e).get("url") or "")]


def closes_for(env, path_events: list[dict]) -> list[dict]:
    ids = {pf.flat(e).get("conn_id") for e in path_events}
    return [e for e in env.proxy.events() if e.get("type") == "egress.close"
            and pf.flat(e).get("conn_id") in ids]


def test_two_requests_on_one_client_connection(env):
    """Both forwarded on one client connection (curl reuses it), each
    audited as allowed and closed without error, and the upstream
    connection is reused for the second (same checked address)."""
    ts = curl_many(env, ["http://ok.test/ok/ka1", "http://ok.test/ok/ka2"])
    assert [t.status for t in ts] == [200, 200], ts
    assert ts[0].connects == 1 and ts[1].connects == 0, ts
    assert ts[0].body == b"scripted /ok/ka1\n", ts
    assert ts[1].body == b"scripted /ok/ka2\n", ts
    assert header(ts[0], "connection") != "close", ts[0]
    r1, r2 = env.origin.requests("/ok/ka1"), env.origin.requests("/ok/ka2")
    assert len(r1) == 1 and len(r2) == 1, (r1, r2)
    assert r1[0]["conn"] == r2[0]["conn"], "upstream connection not reused"
    for p in ("/ok/ka1", "/ok/ka2"):
        allows = env.proxy.wait_events(
            lambda e, p=p: pf.is_allow(e) and p in str(pf.flat(e).get("url")))
        assert len(allows) == 1, (p, allows)
        closes = []
        deadline = time.monotonic() + 5
        while not closes and time.monotonic() < deadline:
            closes = closes_for(env, allows)
            time.sleep(0.05)
        assert len(closes) == 1, (p, closes)
        assert pf.flat(closes[0]).get("error") is None, closes[0]
        assert pf.flat(closes[0]).get("bytes_down", 0) > 0, closes[0]


def test_eof_delimited_response_closes_client_connection(env):
    """Neither Content-Length nor chunked: the body ends with the origin's
    close, so the proxy says "Connection: close" and closes; curl needs a
    new connection for the next URL."""
    ts = curl_many(env, ["http://raw.test/eof/e1", "http://ok.test/ok/e2"])
    assert [t.status for t in ts] == [200, 200], ts
    assert ts[0].body == b"scripted /eof/e1\n", ts
    assert header(ts[0], "connection") == "close", ts[0]
    assert ts[0].connects == 1 and ts[1].connects == 1, ts
    assert ts[1].body == b"scripted /ok/e2\n", ts


def test_chunked_response_reencoded_and_kept(env):
    """A chunked answer (extension, trailer) reaches an HTTP/1.1 client
    chunked again with its body intact, and the connection is kept; an
    HTTP/1.0 client gets it decoded and delimited by the close."""
    ts = curl_many(env, ["http://raw.test/chunked/c1",
                         "http://ok.test/ok/c2"])
    assert [t.status for t in ts] == [200, 200], ts
    assert ts[0].body == b"chunkscripted /chunked/c1\n", ts
    assert (header(ts[0], "transfer-encoding") or "").lower() == "chunked"
    assert header(ts[0], "x-trailer") is None
    assert ts[1].connects == 0, ts
    t10 = curl_many(env, ["http://raw.test/chunked/c3"], "--http1.0")[0]
    assert t10.status == 200, t10
    assert t10.body == b"chunkscripted /chunked/c3\n", t10
    assert header(t10, "transfer-encoding") is None, t10
    assert header(t10, "connection") == "close", t10


@pytest.mark.parametrize("kind", ["clte", "dupcl", "samecl"])
def test_smuggling_shaped_response_refused(env, kind):
    """Content-Length with chunked, or two Content-Length fields: 502, and
    none of the origin's bytes (the forged second response) reach the
    client; the next request on the connection gets its own answer."""
    ts = curl_many(env, [f"http://raw.test/{kind}/s1",
                         f"http://ok.test/ok/{kind}-after"])
    assert ts[0].status == 502, ts
    assert b"SMUGGLED" not in ts[0].body, ts
    assert "SMUGGLED" not in ts[0].head, ts
    assert ts[1].status == 200, ts
    assert ts[1].body == f"scripted /ok/{kind}-after\n".encode(), ts
    assert b"SMUGGLED" not in ts[1].body, ts
    allows = env.proxy.wait_events(
        lambda e: pf.is_allow(e) and f"/{kind}/s1" in str(pf.flat(e).get("url")))
    assert len(allows) == 1, allows
    closes = []
    deadline = time.monotonic() + 5
    while not closes and time.monotonic() < deadline:
        closes = closes_for(env, allows)
        time.sleep(0.05)
    assert closes and pf.flat(closes[0]).get("error"), closes


def test_policy_rechecked_for_every_request_on_kept_connection(env):
    """An allowed request, then one to a host the policy denies, on the
    same client connection: the second is refused (403), audited, and
    never reaches an origin."""
    ts = curl_many(env, ["http://ok.test/ok/p1", "http://denied.test/ok/p2"])
    assert ts[0].status == 200, ts
    assert ts[1].status == 403, ts
    assert ts[1].connects == 0, ts
    assert env.origin.requests("/ok/p2") == []
    denies = env.proxy.wait_events(
        lambda e: pf.is_deny(e) and "/ok/p2" in str(pf.flat(e).get("url")))
    assert len(denies) == 1, denies


def test_policy_change_applies_to_next_request_on_kept_connection(env):
    """A URL rule added between two requests on one kept client connection
    (and with an idle pooled upstream connection to the same address)
    refuses the second request."""
    with pf.ns_connect(env.ns, "127.0.0.1", env.proxy.port) as s:
        s.sendall(b"GET http://ok.test/ok/pc1 HTTP/1.1\r\n"
                  b"Host: ok.test\r\n\r\n")
        head, rest = pf.read_head(s)
        assert pf.status_of(head) == 200, head
        try:
            env.proxy.set_policy(policy(
                extra_deny=[{"url": "http://ok.test/ok/pc2"}]))
            time.sleep(1.5)     # the proxy reloads within a second
            s.sendall(b"GET http://ok.test/ok/pc2 HTTP/1.1\r\n"
                      b"Host: ok.test\r\n\r\n")
            want = len(b"scripted /ok/pc1\n")
            while len(rest) < want:
                rest += s.recv(65536)
            head2, _ = pf.read_head(s)
            assert pf.status_of(head2) == 403, head2
        finally:
            env.proxy.set_policy(policy())
            time.sleep(1.5)
    assert env.origin.requests("/ok/pc2") == []
