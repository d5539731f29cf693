"""Egress from inside real workspaces: moatd (--egress-proxy) pushes its
running workspaces and their policies to moat-proxy in control mode over
mutual TLS; moat-proxy makes one unix socket per workspace in its run
directory; the agent inside relays 127.0.0.1:3128 to it.

Every destination is on the host's loopback (nginx on 127.0.0.2) and
allowed by an explicit cidr rule; the workspaces have no network at all;
moat-proxy is given a resolver address where nothing answers and every
denied destination is an IP literal, so nothing here can make it resolve
or dial anything off the machine.
"""
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import moat_harness as mh
import proxy_fixtures as pf
from test_workspaces import Env, call, container_of, podman


class HostNS:
    """The host's own network namespace, in the shape proxy_fixtures.Nginx
    wants (its origins here live on the host's loopback)."""

    def start(self, procs, args, name=None, **kw):
        return procs.start(args, name=name or Path(str(args[0])).name, **kw)

    def port_open(self, port, host="127.0.0.1"):
        return mh.port_open(port, host)


class ControlProxy:
    """moat-proxy --control-listen with the data directory's moat-proxy
    certificate, auditing to moatd's collector."""

    def __init__(self, procs, data: Path, port: int):
        self.procs, self.data, self.port = procs, data, port
        self.dead_dns = mh.free_port()
        self.proc = None

    def start(self):
        pki = self.data / "pki"
        self.proc = self.procs.start([
            str(mh.binary("moat-proxy")),
            "--control-listen", f"127.0.0.1:{self.port}",
            "--tls-cert", str(pki / "moat-proxy.crt"),
            "--tls-key", str(pki / "moat-proxy.key"),
            "--client-ca", str(pki / "ca.crt"),
            "--audit-collector", str(self.data / "run" / "audit.sock"),
            "--resolver", f"127.0.0.1:{self.dead_dns}",
            "--dns-timeout", "500ms", "--connect-timeout", "2s",
            "--threads", "2", "--shutdown-grace", "1s",
            "--max-conns-per-workspace", "64"], name="moat-proxy")
        mh.wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self):
        return self.proc.stop(10)

    def state(self, cert="moatd-client"):
        """GET /v1/state with a certificate of the data directory's pki."""
        pki = self.data / "pki"
        return mh.curl(f"https://moat-proxy:{self.port}/v1/state",
                       "--connect-to", f"moat-proxy:{self.port}:127.0.0.1:"
                       f"{self.port}", ca=pki / "ca.crt",
                       cert=pki / f"{cert}.crt", key=pki / f"{cert}.key",
                       timeout=5)


class Eg:
    def __init__(self, env, proxy, origin_ports, tmp):
        self.env, self.proxy = env, proxy
        self.port, self.port2 = origin_ports
        self.tmp = tmp

    def policy(self, name, ports):
        r = call(self.env.m, "PUT", f"/api/v1/policies/{name}",
                 self.env.admin, {"name": name, "mode": "enforce",
                                  "allow": [{"cidr": "127.0.0.2/32",
                                             "ports": ports}]})
        assert r.status in (200, 201), r.text

    def sock(self, wid) -> Path:
        return self.env.run_dir / "ws" / wid / "ro" / "egress.sock"

    def wait_sock(self, wid, timeout=15):
        mh.wait_until(lambda: self.sock(wid).is_socket(), timeout,
                      interval=0.05, what=f"egress socket of {wid}")

    def curl_in(self, wid, user, url, *extra, proxy=True):
        """curl inside the workspace as user; (exit code, stdout). The
        workspace's environment names the proxy; proxy=False makes curl
        ignore it and try to connect directly."""
        args = ["exec", "--user", user]
        if not proxy:
            extra = ("--noproxy", "*", *extra)
        args += [container_of(wid), "curl", "-sS", "--max-time", "5",
                 *extra, url]
        r = podman(*args, check=False, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def status_in(self, wid, user, url):
        rc, out = self.curl_in(wid, user, url, "-o", "/dev/null", "-w",
                               "%{http_code}")
        return out.strip()[-3:] if rc == 0 else f"rc={rc}: {out}"

    def egress_events(self, wid):
        return [e for e in self.env.m.audit_events()
                if str(e.get("type", "")).startswith("egress.") and
                e.get("workspace") == wid]


@pytest.fixture(scope="module")
def eg(tmp_path_factory, podman_socket, base_image):
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    tmp = tmp_path_factory.mktemp("egress")
    data = tmp / "data"
    mh.moatd_init(data)
    run_dir = tmp / "run"
    procs = mh.ProcGroup(tmp / "logs")
    www = tmp / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from the origin\n")
    ports = (mh.free_port("127.0.0.2"), mh.free_port("127.0.0.2"))
    pf.Nginx(procs, HostNS(), tmp, [f"127.0.0.2:{p}" for p in ports],
             www).start()
    pport = mh.free_port()
    m = mh.Moatd(procs, data, extra_args=[
        "--runtime-socket", podman_socket.socket,
        "--run-dir", str(run_dir),
        "--reconcile-interval", "300ms",
        "--egress-proxy", f"https://127.0.0.1:{pport}",
        "--egress-sync-interval", "300ms",
    ]).start()
    m.wait_for_log("workspaces ready", timeout=30)
    proxy = ControlProxy(procs, data, pport).start()
    env = Env(m, run_dir, podman_socket.socket)
    e = Eg(env, proxy, ports, tmp)
    e.policy("default", list(ports))
    e.policy("narrow", [ports[1]])
    env.template("small", disk_mb=64)
    env.template("narrowed", disk_mb=64, egress_policy="narrow")
    yield e
    env.delete_all()
    procs.stop_all()
    reports = procs.sanitizer_reports()
    assert not reports, reports[0][1]


@pytest.fixture(scope="module")
def two(eg):
    """Two running workspaces: "wide" (org policy only) and "narrow" (its
    template narrows to the second origin port)."""
    o1, t1 = eg.env.user()
    o2, t2 = eg.env.user()
    w1 = eg.env.create(t1, "wide", template="small")
    w2 = eg.env.create(t2, "narrow", template="narrowed")
    eg.wait_sock(w1["id"])
    eg.wait_sock(w2["id"])
    return {"wide": (w1["id"], o1, t1), "narrow": (w2["id"], o2, t2)}


def origin(eg, port=None, path="/hello.txt"):
    return f"http://127.0.0.2:{port or eg.port}{path}"


# ------------------------------------------------------------------ tests

def test_allowed_denied_and_no_direct_path(eg, two):
    wid, owner, _ = two["wide"]
    rc, out = eg.curl_in(wid, owner, origin(eg))
    assert rc == 0 and out == "hello from the origin\n", out
    # Not allowed by any rule: the proxy answers 403 with the reason.
    rc, out = eg.curl_in(wid, owner, "http://127.0.0.3:%d/" % eg.port)
    assert rc == 0 and "denied by policy" in out, out
    assert eg.status_in(wid, owner, "http://127.0.0.3:%d/" % eg.port) == "403"
    # Without the proxy there is no way out: no network at all.
    rc, out = eg.curl_in(wid, owner, origin(eg), proxy=False)
    assert rc != 0, out
    # Every decision is in moatd's audit chain, with the workspace.
    evs = mh.wait_until(lambda: (lambda e: e if any(
        x["type"] == "egress.allow" for x in e) and any(
        x["type"] == "egress.deny" for x in e) else None)(
        eg.egress_events(wid)), 10, what="egress audit events")
    allow = [x for x in evs if x["type"] == "egress.allow"][0]
    assert allow["actor"]["user"] == owner
    assert allow["actor"]["org"] == "default"
    assert allow["target"]["address"] == "127.0.0.2"
    assert allow["details"]["policy"] == "default"
    # Sent by moat-proxy through the collector, which names the sender.
    assert allow["source"]["pid"] == eg.proxy.proc.pid


def test_template_policy_narrows_what_the_org_allows(eg, two):
    wid, owner, _ = two["narrow"]
    w1, o1, _ = two["wide"]
    # Both at once: the wide one may use the first port, the narrow not.
    assert eg.status_in(w1, o1, origin(eg)) == "200"
    assert eg.status_in(wid, owner, origin(eg)) == "403"
    assert eg.status_in(wid, owner, origin(eg, eg.port2)) == "200"
    rc, out = eg.curl_in(wid, owner, origin(eg))
    assert '"narrow"' in out, out
    st = eg.proxy.state()
    assert st.status == 200, st.text
    ws = {w["id"]: w for w in st.json()["workspaces"]}
    assert ws[wid]["effective"] == ["default", "narrow"]
    assert ws[w1]["effective"] == ["default"]
    assert ws[wid]["uid_count"] == 65536 and ws[wid]["socket"]


def test_policy_change_takes_effect_within_two_seconds(eg, two):
    wid, owner, _ = two["wide"]
    assert eg.status_in(wid, owner, origin(eg)) == "200"
    eg.policy("default", [eg.port2])
    t0 = time.monotonic()
    mh.wait_until(lambda: eg.status_in(wid, owner, origin(eg)) == "403",
                  10, interval=0.1, what="policy change applied")
    took = time.monotonic() - t0
    eg.policy("default", [eg.port, eg.port2])
    mh.wait_until(lambda: eg.status_in(wid, owner, origin(eg)) == "200",
                  10, interval=0.1, what="policy restored")
    assert took < 2.5, took


def test_only_moatd_certificate_may_push(eg, two):
    r = eg.proxy.state("moatd-client")
    assert r.status == 200
    # Another certificate of the same CA (the ingress's) is refused.
    with pytest.raises(mh.CurlError):
        eg.proxy.state("ingress")


def test_foreign_uid_is_refused_and_audited(eg, two):
    wid, _, _ = two["wide"]
    sock = eg.sock(wid)
    st = sock.stat()
    assert st.st_mode & 0o777 == 0o660 and st.st_uid >= 2**31
    # An unprivileged host uid cannot even open it.
    r = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534",
         "--clear-groups", "/usr/bin/python3", "-c",
         "import socket,sys; s=socket.socket(socket.AF_UNIX); "
         f"s.connect({str(sock)!r})"], capture_output=True, text=True,
        timeout=10)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    # Host root may open it, but its uid is outside the workspace's
    # range: the proxy closes the connection without an answer.
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(str(sock))
    try:
        s.sendall(b"GET " + origin(eg).encode() + b" HTTP/1.1\r\nHost: "
                  b"127.0.0.2\r\n\r\n")
    except OSError:
        pass
    try:
        got = s.recv(4096)
    except OSError:
        got = b""
    s.close()
    assert got == b"", got
    mh.wait_until(lambda: [e for e in eg.egress_events(wid)
                           if e["type"] == "egress.deny" and "outside" in
                           e.get("details", {}).get("reason", "") and
                           e["actor"].get("uid") == 0], 10,
                  what="refusal audited")


def test_proxy_and_moatd_restarts_resync(eg, two):
    wid, owner, _ = two["wide"]
    nid, nowner, _ = two["narrow"]
    eg.proxy.stop()
    assert not eg.sock(wid).exists()
    assert eg.status_in(wid, owner, origin(eg)) != "200"
    eg.proxy.start()
    # moatd's next check finds a proxy without its version and pushes.
    eg.wait_sock(wid, timeout=15)
    eg.wait_sock(nid, timeout=5)
    mh.wait_until(lambda: eg.status_in(wid, owner, origin(eg)) == "200",
                  10, interval=0.2, what="egress back after proxy restart")
    assert eg.status_in(nid, nowner, origin(eg)) == "403"
    # moatd restarted: the proxy keeps serving, and after the restart the
    # new moatd pushes the same set.
    eg.env.m.restart()
    assert eg.status_in(wid, owner, origin(eg)) == "200"
    eg.env.m.wait_for_log("workspaces ready", timeout=30)
    eg.policy("default", [eg.port2])
    mh.wait_until(lambda: eg.status_in(wid, owner, origin(eg)) == "403",
                  10, interval=0.1, what="new moatd pushes")
    eg.policy("default", [eg.port, eg.port2])
    mh.wait_until(lambda: eg.status_in(wid, owner, origin(eg)) == "200",
                  10, interval=0.1, what="policy restored")


def test_stopped_workspace_loses_its_socket(eg, two):
    wid, owner, tok = two["narrow"]
    r = eg.env.action(tok, owner, "narrow", "stop")
    assert r.status in (200, 202), r.text
    eg.env.wait_state(tok, owner, "narrow", "stopped")
    mh.wait_until(lambda: wid not in [w["id"] for w in
                                      eg.proxy.state().json()["workspaces"]],
                  10, what="proxy forgets the stopped workspace")
    assert not eg.sock(wid).exists()
