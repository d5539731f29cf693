"""moat-proxy with real clients: curl (plain HTTP and HTTPS through
CONNECT), git cloning from git-http-backend behind nginx, monitor mode,
policy reload from disk, and the audit chain.

Everything runs inside a network namespace that has only loopback: the
proxy, its DNS server (proxy_fixtures.DnsServer), nginx on 127.0.0.2 and
127.0.0.3, and the clients. Allowed destinations are loopback addresses a
policy allows explicitly with a cidr rule.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

import moat_harness as mh
import proxy_fixtures as pf

pytestmark = pytest.mark.netns

NAMES = {
    "allowed.test": {"A": ["127.0.0.2"]},
    "tls.test": {"A": ["127.0.0.2"]},
    "git.test": {"A": ["127.0.0.2"]},
    "denied.test": {"A": ["127.0.0.3"]},
}


def policy(mode: str = "enforce", allow_extra=(), deny=()) -> dict:
    return {
        "name": "e2e",
        "mode": mode,
        "allow": [
            {"host": "allowed.test", "ports": [80]},
            {"host": "tls.test", "ports": [443]},
            {"host": "git.test", "ports": [80]},
            {"cidr": "127.0.0.2/32", "ports": [80, 443]},
            *allow_extra,
        ],
        "deny": list(deny),
    }


class Env:
    """nginx (HTTP on 127.0.0.2:80 and 127.0.0.3:80, HTTPS on :443 of both
    with a certificate for tls.test, git-http-backend under /repo.git), the
    DNS server, and a started moat-proxy."""

    def __init__(self, procs, ns, tmp: Path, test_ca, pol: dict,
                 git: bool = False):
        self.tmp = tmp
        self.ca = test_ca("proxy e2e CA")
        self.cert = self.ca.issue("tls.test", dns=["tls.test"], server=True)
        root = tmp / "www"
        root.mkdir()
        (root / "index.html").write_text("hello from nginx\n")
        git_root = None
        if git:
            git_root = tmp / "git"
            git_root.mkdir()
            pf.make_git_repo(git_root, "repo")
        self.nginx = pf.Nginx(
            procs, ns, tmp,
            ["127.0.0.2:80", "127.0.0.3:80", "127.0.0.2:443 ssl",
             "127.0.0.3:443 ssl"], root,
            tls=(self.cert.cert, self.cert.key), git_root=git_root).start()
        self.dns = pf.DnsServer(procs, ns, tmp, NAMES).start()
        self.proxy = pf.MoatProxy(procs, ns, tmp, pol, dns=self.dns).start()

    def get(self, url: str, *extra: str, **kw) -> mh.Response:
        return pf.proxy_curl(self.proxy, url, *extra, **kw)

    def get_tls(self, url: str, *extra: str) -> mh.Response:
        return pf.proxy_curl(self.proxy, url, "--cacert", str(self.ca.cert),
                             *extra, tunnel=True)


@pytest.fixture
def env_factory(procs, netns, tmp_path, test_ca):
    def make(pol=None, git=False):
        return Env(procs, netns, tmp_path, test_ca, pol or policy(), git)
    return make


def one_line_reason(r: mh.Response, host: str) -> None:
    text = r.text.strip()
    assert "\n" not in text, f"reason is not one line: {text!r}"
    assert host in text, f"reason does not name {host}: {text!r}"
    assert "e2e" in text, f"reason does not name the policy: {text!r}"


def test_plain_http_allowed_and_denied(env_factory):
    env = env_factory()
    r = env.get("http://allowed.test/")
    assert r.status == 200, r
    assert r.text == "hello from nginx\n"
    r = env.get("http://denied.test/")
    assert r.status == 403, r
    one_line_reason(r, "denied.test")
    assert "hello" not in r.text
    # An explicitly allowed literal.
    r = env.get("http://127.0.0.2/")
    assert r.status == 200 and r.text == "hello from nginx\n"
    # A literal no rule allows (nginx does listen there).
    r = env.get("http://127.0.0.3/")
    assert r.status == 403, r
    # Prometheus: decisions by result, DNS and connect latency observed.
    m = pf._curl_ns(env.proxy.ns,
                    f"http://127.0.0.1:{env.proxy.metrics_port}/metrics")
    assert m.status == 200
    text = m.text
    assert "moat_proxy_decisions_total" in text
    vals = {}
    for line in text.splitlines():
        if line.startswith("moat_proxy_decisions_total{"):
            vals[line.split("}")[0]] = float(line.split()[-1])
    allowed = sum(v for k, v in vals.items() if "allow" in k)
    denied = sum(v for k, v in vals.items() if "deny" in k)
    assert allowed >= 2 and denied >= 2, vals
    assert float(re.search(r"^moat_proxy_dns_seconds_count (\S+)", text,
                           re.M).group(1)) >= 1
    # At least one upstream connect was timed. Not necessarily two: both
    # allowed requests go to 127.0.0.2:80, and when the second lands on the
    # loop thread that pooled the first one's upstream connection it reuses
    # that connection (test_proxy_keepalive.py checks the pool itself).
    assert float(re.search(r"^moat_proxy_connect_seconds_count (\S+)",
                           text, re.M).group(1)) >= 1


def test_https_connect_allowed_and_denied(env_factory):
    env = env_factory()
    r = env.get_tls("https://tls.test/")
    assert r.status == 200, r
    assert r.text == "hello from nginx\n"
    # A denied name: the CONNECT itself is answered 403, curl gets no TLS.
    try:
        r = env.get_tls("https://denied.test/", "-k")
        assert r.status == 403 and "hello" not in r.text, r
    except mh.CurlError as e:
        assert e.rc in (56, 7), e
    cp = env.proxy.ns.run(["curl", "-sS", "-k", "-x", env.proxy.proxy_url,
                           "--proxytunnel", "-w", "%{http_connect}", "-o",
                           "/dev/null", "--max-time", "5",
                           "https://denied.test/"])
    assert cp.stdout.strip() == "403", (cp.stdout, cp.stderr)
    # The raw answer to a denied CONNECT is a 403 with a one-line reason.
    a = pf.raw_exchange(env.proxy.ns, env.proxy.port,
                        b"CONNECT denied.test:443 HTTP/1.1\r\n"
                        b"Host: denied.test:443\r\n\r\n")
    assert a.status == 403, a
    assert "denied.test" in a.text and "e2e" in a.text, a
    assert "\n" not in a.text.strip(), a


def test_monitor_mode_lets_denied_through_and_audits(env_factory):
    env = env_factory(policy(mode="monitor"))
    r = env.get("http://denied.test/")
    assert r.status == 200, r
    assert r.text == "hello from nginx\n"
    evs = env.proxy.wait_events(
        lambda e: e.get("type") == "egress.monitor"
        and pf.ev_host(e) == "denied.test")
    assert evs, [e.get("type") for e in env.proxy.events()]
    f = pf.flat(evs[0])
    assert f.get("mode") == "monitor", f
    # An allowed request in a monitor policy is a plain allow.
    r = env.get("http://allowed.test/")
    assert r.status == 200
    assert env.proxy.wait_events(
        lambda e: pf.is_allow(e) and pf.ev_host(e) == "allowed.test")
    assert not [e for e in env.proxy.events() if pf.is_deny(e)]


def wait_status(env: Env, url: str, want: int, limit: float) -> float:
    """Seconds until a new request to url answers want (fails after
    limit)."""
    t0 = time.monotonic()
    while True:
        r = env.get(url)
        el = time.monotonic() - t0
        if r.status == want:
            return el
        assert el < limit, f"still {r.status} after {el:.2f}s"
        time.sleep(0.02)


def test_policy_change_on_disk_takes_effect_within_a_second(env_factory):
    env = env_factory()
    assert env.get("http://allowed.test/").status == 200
    # Renamed over (how config tools publish a file).
    env.proxy.set_policy(policy(deny=[{"host": "allowed.test"}]))
    el = wait_status(env, "http://allowed.test/", 403, 1.5)
    assert el <= 1.25, el
    # Rewritten in place (how an editor saves).
    time.sleep(0.05)
    env.proxy.set_policy(policy(), inplace=True)
    el = wait_status(env, "http://allowed.test/", 200, 1.5)
    assert el <= 1.25, el
    # A broken document is refused and the last good policy stays.
    env.proxy.policy_path.write_text("{ this is not a policy")
    time.sleep(1.2)
    assert env.proxy.proc.alive()
    assert env.get("http://allowed.test/").status == 200
    assert env.get("http://denied.test/").status == 403


FIELDS_DECISION = ("policy", "mode", "host", "port")


def field(ev: dict, *names):
    f = pf.flat(ev)
    for n in names:
        if n in f:
            return f[n]
    raise AssertionError(f"none of {names} in event {ev}")


def test_audit_chain_one_event_per_decision_and_verifies(env_factory,
                                                           procs):
    moat = mh.binary("moat")
    if not moat.exists():
        pytest.skip(f"{moat} not built")
    env = env_factory()
    p = env.proxy
    assert env.get("http://allowed.test/").status == 200
    assert env.get("http://denied.test/").status == 403
    assert env.get_tls("https://tls.test/").status == 200
    a = pf.raw_exchange(p.ns, p.port, b"CONNECT denied.test:443 HTTP/1.1\r\n"
                        b"Host: denied.test:443\r\n\r\n")
    assert a.status == 403
    assert p.wait_events(lambda e: pf.is_allow(e) or pf.is_deny(e), 4)
    assert p.stop() in (0, None), p.proc.tail()
    evs = p.events()
    decisions = [e for e in evs if pf.is_allow(e) or pf.is_deny(e)]
    got = sorted((e["type"], pf.ev_host(e), int(field(e, "port")))
                 for e in decisions)
    assert got == sorted([
        ("egress.allow", "allowed.test", 80),
        ("egress.allow", "tls.test", 443),
        ("egress.deny", "denied.test", 80),
        ("egress.deny", "denied.test", 443),
    ]), got
    for e in decisions:
        assert field(e, "policy") == "e2e", e
        assert field(e, "mode") == "enforce", e
        for k in ("workspace", "owner", "organization"):
            pf.flat(e).get(k)      # standalone: may be absent or null
        rule_or_reason = [pf.flat(e).get(k) for k in ("rule", "reason")]
        assert any(rule_or_reason), e
        if pf.is_allow(e):
            assert field(e, "address", "resolved", "resolved_address",
                         "addr") == "127.0.0.2", e
        else:
            assert e.get("outcome") in ("denied", "failure"), e
    closes = [e for e in evs if e.get("type") == "egress.close"]
    assert len(closes) == 2, [e.get("type") for e in evs]
    for e in closes:
        up = field(e, "bytes_up", "bytes_out", "bytes_sent", "tx_bytes")
        down = field(e, "bytes_down", "bytes_in", "bytes_received",
                     "rx_bytes")
        dur = field(e, "duration_s", "duration_ms", "duration_ns",
                    "duration")
        assert int(up) > 0 and int(down) > 0 and float(dur) >= 0, e
    cp = subprocess.run([str(moat), "audit", "verify", str(p.audit_path),
                         "--key", str(p.key_path)], capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    # And an edit is detected.
    lines = p.audit_path.read_text().splitlines(keepends=True)
    i = next(i for i, l in enumerate(lines) if "denied.test" in l)
    lines[i] = lines[i].replace("denied.test", "denied.tesu")
    p.audit_path.write_text("".join(lines))
    cp = subprocess.run([str(moat), "audit", "verify", str(p.audit_path),
                         "--key", str(p.key_path)], capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 1, cp.stdout + cp.stderr


def git_clone(env: Env, dest: Path) -> subprocess.CompletedProcess:
    return env.proxy.ns.run(
        ["git", "-c", f"http.proxy={env.proxy.proxy_url}", "clone", "-q",
         "http://git.test/repo.git", str(dest)],
        env={"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
             "HOME": str(env.tmp)}, timeout=60)


def test_git_clone_allowed_then_refused_after_policy_change(env_factory):
    env = env_factory(git=True)
    cp = git_clone(env, env.tmp / "clone1")
    assert cp.returncode == 0, cp.stderr
    assert (env.tmp / "clone1" / "README").read_text() == \
        "hello from the git origin\n"
    env.proxy.set_policy(policy(deny=[{"host": "git.test"}]))
    time.sleep(1.1)
    cp = git_clone(env, env.tmp / "clone2")
    assert cp.returncode != 0
    assert "403" in cp.stderr, cp.stderr
    assert not (env.tmp / "clone2" / "README").exists()
    assert env.proxy.wait_events(
        lambda e: pf.is_deny(e) and pf.ev_host(e) == "git.test")
