"""The bypass corpus: every way a hostile client inside a workspace might
try to ride moat-proxy somewhere its policy does not allow. Each row must be
refused (403, or 400 for a malformed request) and every 403 audited as an
egress.deny event; nothing may reach an origin it should not.

One network namespace with only loopback holds everything for the whole
module: moat-proxy, its DNS server, a recording origin on [::]:80 and
[::]:8080 (dual-stack, so it answers on 127.0.0.1, 0.0.0.0 and ::1 too: a
bypass that gets through shows up as a 200 and a logged connection), and
nginx with TLS on 127.0.0.2:443.
"""

from __future__ import annotations

import ssl
import time

import pytest

import moat_harness as mh
import proxy_fixtures as pf

pytestmark = pytest.mark.netns

NAMES = {
    "url.test": {"A": ["127.0.0.2"]},
    "tls.test": {"A": ["127.0.0.2"]},
    "other.test": {"A": ["127.0.0.2"]},
    "port.test": {"A": ["127.0.0.2"]},
    "denied.test": {"A": ["127.0.0.3"]},
    "private.test": {"A": ["10.0.0.1"]},
    "loopback.test": {"A": ["127.0.0.1"]},
    "zero.test": {"A": ["0.0.0.0"]},
    "meta.test": {"A": ["169.254.169.254"]},
    "mapped.test": {"AAAA": ["::ffff:127.0.0.1"]},
    "v6loop.test": {"AAAA": ["::1"]},
    "flip.test": {"A": ["127.0.0.2", "127.0.0.3"], "rotate": True},
}

HOST_RULES = ["url.test", "tls.test", "other.test", "port.test",
              "private.test", "loopback.test", "zero.test", "meta.test",
              "mapped.test", "v6loop.test", "flip.test"]

POLICY = {
    "name": "bypass",
    "mode": "enforce",
    "allow": [{"cidr": "127.0.0.2/32", "ports": [80, 443]},
              *({"host": h, "ports": [80, 443]} for h in HOST_RULES)],
    "deny": [{"url": "http://url.test/private/"}],
}


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory, test_ca_module):
    if not mh.netns_available():
        pytest.skip("network namespaces unavailable (needs root)")
    tmp = tmp_path_factory.mktemp("bypass")
    procs = mh.ProcGroup(tmp / "logs")
    ns = mh.NetNS().create()
    e = Env()
    e.procs, e.ns, e.tmp = procs, ns, tmp
    try:
        e.ca = test_ca_module
        cert = e.ca.issue("tls.test", dns=["tls.test", "other.test"],
                          server=True)
        www = tmp / "www"
        www.mkdir()
        (www / "index.html").write_text("tls origin\n")
        e.nginx = pf.Nginx(procs, ns, tmp, ["127.0.0.2:443 ssl"], www,
                           tls=(cert.cert, cert.key)).start()
        e.origin = pf.RecordingOrigin(procs, ns, tmp, [80, 8080]).start()
        e.dns = pf.DnsServer(procs, ns, tmp, NAMES).start()
        e.proxy = pf.MoatProxy(procs, ns, tmp, POLICY, dns=e.dns).start()
        yield e
    finally:
        procs.stop_all()
        ns.delete()
    reports = procs.sanitizer_reports()
    if reports:
        pytest.fail(f"sanitizer report in {reports[0][0]}'s stderr at "
                    f"exit:\n{reports[0][1]}", pytrace=False)


@pytest.fixture(scope="module")
def test_ca_module(tmp_path_factory):
    return mh.TestCA(tmp_path_factory.mktemp("ca"), "bypass CA")


@pytest.fixture(autouse=True)
def proxy_healthy(request, env):
    """Fails the test during which moat-proxy died or printed a sanitizer
    report, and restarts it for the next one."""
    yield
    p = env.proxy
    rep = p.proc.sanitizer_report()
    dead = not p.proc.alive()
    if dead or rep:
        tail = p.proc.tail()
        p.stop()
        env.proxy = pf.MoatProxy(env.procs, env.ns, env.tmp, POLICY,
                                 dns=env.dns,
                                 name=f"moat-proxy-{time.monotonic_ns()}"
                                 ).start()
        pytest.fail(f"moat-proxy {'died' if dead else 'sanitizer report'}"
                    f" during this test:\n{rep or tail}", pytrace=False)


def deny_count(env) -> int:
    return len([e for e in env.proxy.events() if pf.is_deny(e)])


def check_refused(env, ans: pf.RawAnswer, before_denies: int,
                  before_conns: int, ok=(400, 403)) -> None:
    assert ans.status in ok, f"not refused: {ans!r}"
    if ans.status == 403:
        assert "\n" not in ans.text.strip(), ans
        mh.wait_until(lambda: deny_count(env) > before_denies or None, 5,
                      what="an egress.deny audit event")
    conns = env.origin.conns()
    assert len(conns) == before_conns, \
        f"the origin saw a connection: {conns[before_conns:]}"


# --------------------------------------------- IP literals in every spelling

LITERALS = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback-short"),
    ("2130706433", "loopback-decimal"),
    ("0x7f000001", "loopback-hex"),
    ("0177.0.0.1", "loopback-octal"),
    ("0x7f.1", "loopback-hex-short"),
    ("127.0.0.1.", "loopback-trailing-dot"),
    ("[::1]", "v6-loopback"),
    ("[::ffff:127.0.0.1]", "v4-mapped-dotted"),
    ("[::ffff:7f00:1]", "v4-mapped-hex"),
    ("[0:0:0:0:0:ffff:127.0.0.1]", "v4-mapped-long"),
    ("[64:ff9b::7f00:1]", "nat64"),
    ("[2002:7f00:1::]", "6to4"),
    ("169.254.169.254", "metadata-v4"),
    ("[fd00:ec2::254]", "metadata-v6"),
    ("0.0.0.0", "this-host"),
    ("0", "zero"),
    ("10.0.0.1", "private-10"),
    ("100.64.0.1", "cgnat"),
    ("192.0.0.1", "ietf-192.0.0"),
    ("198.18.0.1", "benchmarking"),
    ("240.0.0.1", "reserved-240"),
    ("[fe80::1%25lo]", "link-local-zone"),
    ("[::ffff:169.254.169.254]", "metadata-mapped"),
    ("0251.0376.0251.0376", "metadata-octal"),
    ("2852039166", "metadata-decimal"),
]


@pytest.mark.parametrize("host", [h for h, _ in LITERALS],
                         ids=[i for _, i in LITERALS])
@pytest.mark.parametrize("how", ["get", "connect"])
def test_ip_literal_spellings_refused(env, host, how):
    d0, c0 = deny_count(env), len(env.origin.conns())
    if how == "get":
        req = (f"GET http://{host}/literal HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: close\r\n\r\n").encode()
    else:
        req = (f"CONNECT {host}:80 HTTP/1.1\r\nHost: {host}:80\r\n\r\n"
               "GET /literal HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "\r\n").encode()
    ans = pf.raw_exchange(env.ns, env.proxy.port, req)
    check_refused(env, ans, d0, c0)


# ------------------------------ names allowed by host rules, special answers

SPECIAL_NAMES = ["private.test", "loopback.test", "zero.test", "meta.test",
                 "mapped.test", "v6loop.test"]


@pytest.mark.parametrize("name", SPECIAL_NAMES)
@pytest.mark.parametrize("how", ["get", "connect"])
def test_name_resolving_to_special_address_refused(env, name, how):
    d0, c0 = deny_count(env), len(env.origin.conns())
    if how == "get":
        req = (f"GET http://{name}/special HTTP/1.1\r\nHost: {name}\r\n"
               "Connection: close\r\n\r\n").encode()
    else:
        req = (f"CONNECT {name}:80 HTTP/1.1\r\nHost: {name}:80\r\n\r\n"
               "GET /special HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    ans = pf.raw_exchange(env.ns, env.proxy.port, req)
    check_refused(env, ans, d0, c0, ok=(403,))
    assert env.dns.queries(name), "the name was never resolved?"


def test_rebinding_name_connects_to_the_checked_address(env):
    """flip.test answers 127.0.0.2 and 127.0.0.3 in turn: a proxy that
    resolves once to check and again to connect reaches 127.0.0.3."""
    statuses = []
    for i in range(8):
        ans = pf.raw_exchange(
            env.ns, env.proxy.port,
            f"GET http://flip.test/rebind-{i} HTTP/1.1\r\nHost: flip.test"
            f"\r\nConnection: close\r\n\r\n".encode())
        statuses.append(ans.status)
        assert ans.status in (200, 403), ans
    assert 200 in statuses, statuses
    assert 403 in statuses, statuses    # the answers did change
    assert env.origin.conns("127.0.0.3") == []
    reqs = env.origin.requests("/rebind-")
    assert len(reqs) == statuses.count(200)
    assert {r["local"] for r in reqs} == {"127.0.0.2"}


# -------------------------------------------------------- CONNECT and SNI

@pytest.mark.parametrize("target", ["port.test:8080", "127.0.0.2:8080",
                                    "port.test:22", "127.0.0.2:0"],
                         ids=["name-8080", "literal-8080", "name-22",
                              "port-0"])
def test_connect_to_disallowed_port(env, target):
    d0, c0 = deny_count(env), len(env.origin.conns())
    q0 = len(env.dns.queries("port.test"))
    ans = pf.raw_exchange(env.ns, env.proxy.port,
                          f"CONNECT {target} HTTP/1.1\r\nHost: {target}"
                          "\r\n\r\n".encode())
    check_refused(env, ans, d0, c0)
    # No rule could allow the port: refused before any DNS lookup.
    assert len(env.dns.queries("port.test")) == q0, env.dns.queries()


def tunnel_tls(env, connect_host: str, sni: str) -> str:
    """CONNECT connect_host:443, then a TLS handshake with SNI sni
    (verifying the certificate for sni), GET /. Returns the body, or
    raises (OSError, ssl.SSLError, AssertionError)."""
    s = pf.ns_connect(env.ns, "127.0.0.1", env.proxy.port)
    try:
        s.sendall(f"CONNECT {connect_host}:443 HTTP/1.1\r\n"
                  f"Host: {connect_host}:443\r\n\r\n".encode())
        head, rest = pf.read_head(s)
        assert pf.status_of(head) == 200, head
        assert rest == b""
        ctx = ssl.create_default_context(cafile=str(env.ca.cert))
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            t.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                c = t.recv(65536)
                if not c:
                    break
                data += c
            return data.decode("latin-1")
    finally:
        s.close()


def test_sni_must_equal_connect_host(env):
    assert "tls origin" in tunnel_tls(env, "tls.test", "tls.test")
    d0 = deny_count(env)
    with pytest.raises((OSError, ssl.SSLError)):
        tunnel_tls(env, "tls.test", "other.test")
    assert mh.wait_until(lambda: deny_count(env) > d0 or None, 5,
                         what="an egress.deny for the SNI mismatch")
    ev = [e for e in env.proxy.events() if pf.is_deny(e)][-1]
    assert "other.test" in str(ev) or "sni" in str(ev).lower(), ev


# ------------------------------------------------ url rules and encodings

URL_PROBES = [
    ("/pub/%2e%2e/private/secret", "pct-dotdot-lower"),
    ("/pub/%2E%2E/private/secret", "pct-dotdot-upper"),
    ("/pub/.%2e/private/secret", "pct-dot-half"),
    ("/pub/%2e./private/secret", "pct-dot-half2"),
    ("/pub/..%2fprivate/secret", "pct-slash"),
    ("/pub%2f..%2fprivate%2fsecret", "pct-slash-all"),
    ("/private%2fsecret", "pct-slash-after-prefix"),
    ("/private%2Fsecret", "pct-slash-upper"),
    ("/pub/..\\private\\secret", "backslash"),
    ("/pub\\..\\private/secret", "backslash-segments"),
    ("/pub/%5c..%5cprivate/secret", "pct-backslash"),
    ("/pub/../private/secret", "dotdot"),
    ("/./private/secret", "dot"),
    ("/pub/./../private/secret", "dot-dotdot"),
    ("/%70rivate/secret", "pct-letter"),
    # Python's http.server (like nginx's merge_slashes) serves
    # //private/secret as /private/secret.
    ("//private/secret", "double-slash"),
    ("/pub//../private/secret", "double-slash-dotdot"),
]


@pytest.mark.parametrize("path", [p for p, _ in URL_PROBES],
                         ids=[i for _, i in URL_PROBES])
def test_url_rule_encoded_paths_refused(env, path):
    d0, c0 = deny_count(env), len(env.origin.conns())
    ans = pf.raw_exchange(env.ns, env.proxy.port,
                          f"GET http://url.test{path} HTTP/1.1\r\n"
                          "Host: url.test\r\nConnection: close\r\n\r\n"
                          .encode("latin-1"))
    check_refused(env, ans, d0, c0)


def test_double_encoded_path_forwarded_verbatim(env):
    """%252e is a literal "%2e" in a segment name, not a dot: forwarding it
    is fine as long as the proxy does not decode it into a traversal."""
    a = pf.raw_exchange(env.ns, env.proxy.port,
                        b"GET http://url.test/pub/%252e%252e/private/x "
                        b"HTTP/1.1\r\nHost: url.test\r\n"
                        b"Connection: close\r\n\r\n")
    assert a.status in (200, 400, 403), a
    if a.status == 200:
        assert env.origin.requests()[-1]["path"] == \
            "/pub/%252e%252e/private/x"


def test_url_rule_controls(env):
    """The url deny rule itself works, and the public path is served."""
    a = pf.raw_exchange(env.ns, env.proxy.port,
                        b"GET http://url.test/pub/file HTTP/1.1\r\n"
                        b"Host: url.test\r\nConnection: close\r\n\r\n")
    assert a.status == 200 and "origin ok 127.0.0.2:80 /pub/file" in a.text
    a = pf.raw_exchange(env.ns, env.proxy.port,
                        b"GET http://url.test/private/secret HTTP/1.1\r\n"
                        b"Host: url.test\r\nConnection: close\r\n\r\n")
    assert a.status == 403, a
    assert "url.test" in a.text and "bypass" in a.text, a


# -------------------------------------------------------- request shapes

SHAPES = [
    ("host-disagrees-loopback",
     "GET http://url.test/pub/host HTTP/1.1\r\nHost: 127.0.0.1\r\n"
     "Connection: close\r\n\r\n"),
    ("host-disagrees-name",
     "GET http://url.test/pub/host HTTP/1.1\r\nHost: denied.test\r\n"
     "Connection: close\r\n\r\n"),
    ("two-host-headers",
     "GET http://url.test/pub/host HTTP/1.1\r\nHost: url.test\r\n"
     "Host: denied.test\r\nConnection: close\r\n\r\n"),
    ("https-absolute-form",
     "GET https://tls.test/ HTTP/1.1\r\nHost: tls.test\r\n"
     "Connection: close\r\n\r\n"),
    ("userinfo-in-authority",
     "GET http://url.test@127.0.0.1/pub/x HTTP/1.1\r\nHost: url.test\r\n"
     "Connection: close\r\n\r\n"),
    ("origin-form-to-proxy",
     "GET /pub/x HTTP/1.1\r\nHost: url.test\r\nConnection: close\r\n\r\n"),
    ("upgrade-websocket",
     "GET http://url.test/pub/ws HTTP/1.1\r\nHost: url.test\r\n"
     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n"),
    ("upgrade-h2c",
     "GET http://url.test/pub/h2c HTTP/1.1\r\nHost: url.test\r\n"
     "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
     "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"),
]

# Smuggling shapes: each posts to an allowed URL whose path says "smuggle";
# the origin must never see it.
_P = "POST http://url.test/pub/smuggle HTTP/1.1\r\nHost: url.test\r\n"
SMUGGLING = [
    ("cl-and-te", _P + "Content-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-and-cl", _P + "Transfer-Encoding: chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n"),
    ("duplicate-cl-different", _P + "Content-Length: 5\r\n"
     "Content-Length: 6\r\n\r\nhello!"),
    ("duplicate-cl-same", _P + "Content-Length: 5\r\n"
     "Content-Length: 5\r\n\r\nhello"),
    ("cl-list", _P + "Content-Length: 5, 5\r\n\r\nhello"),
    ("cl-plus", _P + "Content-Length: +5\r\n\r\nhello"),
    ("cl-hex", _P + "Content-Length: 0x5\r\n\r\nhello"),
    ("cl-negative", _P + "Content-Length: -1\r\n\r\nhello"),
    ("obs-fold", _P + "X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ("obs-fold-te", _P + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("bare-lf", _P.replace("\r\n", "\n") + "Content-Length: 0\n\n"),
    ("bare-lf-mixed", _P + "X-A: 1\nContent-Length: 0\r\n\r\n"),
    ("space-before-colon-te", _P + "Transfer-Encoding : chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n"),
    ("space-before-colon-cl", _P + "Content-Length : 5\r\n\r\nhello"),
    ("tab-before-colon", _P + "Content-Length\t: 5\r\n\r\nhello"),
    ("te-gzip", _P + "Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n"),
    ("te-chunked-not-last", _P + "Transfer-Encoding: chunked, gzip\r\n"
     "\r\n0\r\n\r\n"),
    ("te-two-headers", _P + "Transfer-Encoding: chunked\r\n"
     "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
    ("te-xchunked", _P + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("raw", [r for _, r in SHAPES + SMUGGLING],
                         ids=[i for i, _ in SHAPES + SMUGGLING])
def test_request_shapes_refused(env, raw):
    d0, c0 = deny_count(env), len(env.origin.conns())
    ans = pf.raw_exchange(env.ns, env.proxy.port, raw.encode("latin-1"))
    check_refused(env, ans, d0, c0)
    if raw in dict(SMUGGLING).values():
        # Refused by the HTTP parser before any decision, and still audited.
        mh.wait_until(lambda: deny_count(env) > d0 or None, 5,
                      what="an egress.deny audit event for a smuggling shape")
    assert env.origin.requests("smuggle") == []
    assert env.origin.requests("/pub/ws") == []
    assert env.origin.requests("/pub/h2c") == []


def test_chunked_uppercase_is_still_chunked(env):
    """`CHUNKED` is chunked (case-insensitive): framing must not desync. The
    request is forwarded with its body, and a request hidden in the body is
    not taken as a second request."""
    hidden = ("GET http://denied.test/hidden HTTP/1.1\r\nHost: denied.test"
              "\r\n\r\n")
    body = f"{len(hidden):x}\r\n{hidden}\r\n0\r\n\r\n"
    a = pf.raw_exchange(env.ns, env.proxy.port,
                        ("POST http://url.test/pub/chunked HTTP/1.1\r\n"
                         "Host: url.test\r\nTransfer-Encoding: CHUNKED\r\n"
                         "Connection: close\r\n\r\n" + body).encode())
    assert a.status in (200, 400), a
    if a.status == 200:
        reqs = env.origin.requests("/pub/chunked")
        assert reqs and reqs[-1]["body"] == hidden
    assert env.origin.requests("/hidden") == []


def test_proxy_authorization_and_hop_by_hop_not_forwarded(env):
    a = pf.raw_exchange(env.ns, env.proxy.port,
                        b"GET http://url.test/pub/pa HTTP/1.1\r\n"
                        b"Host: url.test\r\n"
                        b"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"
                        b"Proxy-Connection: keep-alive\r\n"
                        b"Connection: close, X-Hop\r\nX-Hop: secret\r\n"
                        b"X-Keep: yes\r\n\r\n")
    assert a.status == 200, a
    reqs = env.origin.requests("/pub/pa")
    assert len(reqs) == 1
    names = {k.lower(): v for k, v in reqs[0]["headers"]}
    assert "proxy-authorization" not in names, names
    assert "proxy-connection" not in names, names
    assert "x-hop" not in names, names
    assert names.get("x-keep") == "yes", names
    assert reqs[0]["path"] == "/pub/pa"      # origin-form to the origin


def _read_response(s) -> bytes:
    head, rest = pf.read_head(s)
    if head:
        n = int(next((l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length")), b"0"))
        while len(rest) < n:
            c = s.recv(65536)
            if not c:
                break
            rest += c
    return head


def test_each_keepalive_request_decided_on_its_own(env):
    """Denied, allowed, denied on one client connection: each is decided
    by itself (the proxy may close the connection after a forwarded
    response; it must not forward a later request on the strength of an
    earlier decision)."""
    d0 = deny_count(env)
    with pf.ns_connect(env.ns, "127.0.0.1", env.proxy.port) as s:
        s.sendall(b"GET http://denied.test/ka1 HTTP/1.1\r\n"
                  b"Host: denied.test\r\n\r\n")
        assert pf.status_of(_read_response(s)) == 403
        s.sendall(b"GET http://url.test/pub/ka2 HTTP/1.1\r\n"
                  b"Host: url.test\r\n\r\n")
        assert pf.status_of(_read_response(s)) == 200
        try:
            s.sendall(b"GET http://denied.test/ka3 HTTP/1.1\r\n"
                      b"Host: denied.test\r\n\r\n")
            head = _read_response(s)
        except OSError:
            head = b""
        assert head == b"" or pf.status_of(head) == 403, head
    assert env.origin.requests("/ka1") == []
    assert env.origin.requests("/ka3") == []
    assert len(env.origin.requests("/pub/ka2")) == 1
    assert mh.wait_until(lambda: deny_count(env) > d0 or None, 5)


def test_name_no_rule_allows_is_not_resolved(env):
    """Point 5: a name that no rule could allow is refused before any DNS
    lookup (a lookup can carry data out)."""
    name = "exfil-c2VjcmV0.denied.test"
    # The cidr rule could allow any name on 80 and 443, so a CONNECT there
    # must resolve; no rule allows port 9443 for anything.
    ans = pf.raw_exchange(env.ns, env.proxy.port,
                          f"CONNECT {name}:443 HTTP/1.1\r\nHost: {name}:443"
                          "\r\n\r\n".encode())
    assert ans.status in (403, 502), ans
    q1 = len(env.dns.queries(name))
    ans = pf.raw_exchange(env.ns, env.proxy.port,
                          f"CONNECT {name}:9443 HTTP/1.1\r\n"
                          f"Host: {name}:9443\r\n\r\n".encode())
    assert ans.status == 403, ans
    assert len(env.dns.queries(name)) == q1, env.dns.queries(name)
    ans = pf.raw_exchange(env.ns, env.proxy.port,
                          f"GET http://{name}:9443/ HTTP/1.1\r\n"
                          f"Host: {name}:9443\r\nConnection: close\r\n\r\n"
                          .encode())
    assert ans.status == 403, ans
    assert len(env.dns.queries(name)) == q1, env.dns.queries(name)
