"""Network namespaces for scenarios that must not reach anything but
loopback: proves the harness's namespaces have only `lo` and no route out.
"""

import errno
import sys

import pytest

import moat_harness as mh

# TEST-NET-1 (RFC 5737): never routed on the Internet; in a namespace with
# only loopback there is no route at all.
TEST_NET = "192.0.2.1"

CONNECT_OUT = f"""
import errno, socket, sys, time
s = socket.socket()
s.settimeout(1)
t = time.monotonic()
try:
    s.connect(("{TEST_NET}", 80))
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), e.strerror,
          round(time.monotonic() - t, 3))
"""


@pytest.mark.netns
def test_run_in_netns_has_only_lo():
    cp = mh.run_in_netns(["ip", "-o", "link"])
    assert cp.returncode == 0, cp.stderr
    links = [line.split(":")[1].strip() for line in cp.stdout.splitlines()]
    assert links == ["lo"]
    assert "UP" in cp.stdout
    cp = mh.run_in_netns(["ip", "-o", "route"])
    assert cp.stdout.strip() == ""


@pytest.mark.netns
def test_run_in_netns_no_route_out():
    cp = mh.run_in_netns([sys.executable, "-c", CONNECT_OUT])
    assert cp.returncode == 0, cp.stderr
    name, *rest = cp.stdout.split()
    assert name == "ENETUNREACH", cp.stdout
    assert "Network is unreachable" in cp.stdout
    assert float(rest[-1]) < 0.5           # at once: no packet left


def test_netns_fixture_scenario(netns, procs):
    cp = netns.run(["ip", "-o", "link"])
    assert [l.split(":")[1].strip() for l in cp.stdout.splitlines()] == ["lo"]
    cp = netns.run([sys.executable, "-c", CONNECT_OUT])
    assert cp.stdout.startswith("ENETUNREACH"), cp.stdout
    assert "Network is unreachable" in cp.stdout

    # A server and a client, both inside the namespace.
    port = mh.free_port()
    srv = netns.start(procs, [sys.executable, "-m", "http.server", "--bind",
                              "127.0.0.1", str(port)], name="http-in-ns")
    mh.wait_for_port(port, proc=srv, netns=netns)
    r = mh.curl(f"http://127.0.0.1:{port}/", netns=netns)
    assert r.status == 200
    # The host's loopback is another network: nothing listens there.
    assert mh.connect_error("127.0.0.1", port) == errno.ECONNREFUSED
    # And nothing leaves the namespace.
    cp = netns.run(["curl", "-sS", "--max-time", "2",
                    f"http://{TEST_NET}/"])
    assert cp.returncode == 7, cp.stderr       # could not connect


def test_netns_deleted_after_use(tmp_path):
    if not mh.netns_available():
        pytest.skip("network namespaces unavailable")
    ns = mh.NetNS().create()
    try:
        cp = mh.subprocess.run(["ip", "netns", "list"], capture_output=True,
                               text=True)
        assert ns.name in cp.stdout
    finally:
        ns.delete()
    cp = mh.subprocess.run(["ip", "netns", "list"], capture_output=True,
                           text=True)
    assert ns.name not in cp.stdout
