"""The SSH gateway behind a real load balancer: HAProxy in TCP mode sends
a PROXY protocol header (v1 or v2), and moatd, told to expect one from
127.0.0.1/32 (`--ssh-proxy-protocol-from`), records the client's own
address in the audit chain instead of the balancer's.

The client (real OpenSSH) binds other loopback addresses (`ssh -b`) so the
three can be told apart: the balancer reaches moatd from 127.0.0.1, the
client comes from 127.0.0.3 through it or from 127.0.0.4 directly.
Covered: sessions and failed logins through HAProxy carry 127.0.0.3; a
connection from the balancer's network without a header is closed before
any SSH; a client outside it connects directly and a PROXY header it sends
itself is not believed.
"""
import socket
import subprocess

import pytest

import moat_harness as mh
from test_ssh_gateway import gateway_module

BALANCER_NET = "127.0.0.1/32"


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_socket, base_image):
    for e in gateway_module(tmp_path_factory, podman_socket, "sshpp",
                            "--ssh-proxy-protocol-from", BALANCER_NET):
        e.user_, e.tok_, e.key_, e.ws_ = e.user_with_ws("pp")
        yield e


def ssh_via(env, key, port, source, *cmd):
    """ssh from source to 127.0.0.1:port, the gateway's host key pinned
    for that port too."""
    host_line = env.known_hosts.read_text().splitlines()[0].split(" ", 1)[1]
    kh = env.tmp / f"known_hosts-{port}"
    kh.write_text(f"[127.0.0.1]:{port} {host_line}\n")
    args = ["ssh", "-F", "/dev/null", "-p", str(port), "-b", source,
            "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20",
            "-i", str(key), "pp@127.0.0.1", *cmd]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def raw_exchange(port, source, payload, wait=5):
    """Sends payload from source and reads until the gateway closes or
    wait seconds pass: (bytes received, whether the gateway closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait,
                                 source_address=(source, 0))
    got, closed = b"", False
    try:
        s.sendall(payload)
        while chunk := s.recv(4096):
            got += chunk
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    finally:
        s.close()
    return got, closed


def session_addrs(env, user):
    return [e["actor"].get("addr") for e in env.m.audit_events()
            if e.get("type") == "session.start" and
            e.get("actor", {}).get("user") == user]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_client_address_from_the_balancer(env, haproxy, version):
    hp = haproxy(env.ssh_port, send_proxy=version)
    before = len(session_addrs(env, env.user_))
    r = ssh_via(env, env.key_, hp.port, "127.0.0.3", "echo", "via-lb")
    assert r.returncode == 0, r.stderr + env.m.proc.tail(40)
    assert r.stdout == "via-lb\n"
    addrs = mh.wait_until(lambda: session_addrs(env, env.user_)[before:]
                          or None, 10, what="session.start")
    assert addrs == ["127.0.0.3"], addrs

    # A failed login through the balancer is audited with the client's
    # address too.
    stranger = env.keygen()
    r = ssh_via(env, stranger, hp.port, "127.0.0.3", "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr
    fp = subprocess.run(["ssh-keygen", "-lf", f"{stranger}.pub"],
                        capture_output=True, text=True).stdout.split()[1]
    ev = env.audit(lambda e: e.get("type") == "ssh.auth" and
                   e.get("outcome") == "denied" and
                   e.get("details", {}).get("fingerprint") == fp)
    assert ev[0]["actor"]["addr"] == "127.0.0.3"


def test_balancer_network_without_header_is_closed(env):
    # From 127.0.0.1 (the balancer's network) straight to the gateway: the
    # client's SSH banner is not a PROXY header, so no SSH happens.
    r = ssh_via(env, env.key_, env.ssh_port, "127.0.0.1", "true")
    assert r.returncode == 255, r.stdout
    assert "kex_exchange_identification" in r.stderr, r.stderr
    env.m.wait_for_log("bad PROXY header", timeout=10)


def test_direct_client_outside_the_balancer_network(env):
    before = len(session_addrs(env, env.user_))
    r = ssh_via(env, env.key_, env.ssh_port, "127.0.0.4", "echo", "direct")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "direct\n"
    addrs = mh.wait_until(lambda: session_addrs(env, env.user_)[before:]
                          or None, 10, what="session.start")
    assert addrs == ["127.0.0.4"], addrs

    # A PROXY header from a peer that is not a balancer is not believed:
    # it is where the SSH banner should be, so the gateway closes the
    # connection. Believed, it would be skipped and the banner after it
    # accepted: the gateway would wait for the key exchange instead, as it
    # does for the banner alone.
    banner = b"SSH-2.0-OpenSSH_9.2\r\n"
    got, closed = raw_exchange(env.ssh_port, "127.0.0.4", banner)
    assert got.startswith(b"SSH-2.0-") and not closed, (got, closed)
    got, closed = raw_exchange(
        env.ssh_port, "127.0.0.4",
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 22\r\n" + banner)
    assert closed, got
    assert not [e for e in env.m.audit_events()
                if "203.0.113.9" in str(e.get("actor", {}))]
