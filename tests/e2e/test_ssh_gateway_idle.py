"""The SSH gateway's clocks end to end with the real OpenSSH client: the
keepalive sent to quiet clients (`--ssh-keepalive-interval`) and the idle
timeout (`--ssh-idle-timeout`), which ends a session without a byte either
way for that long but never one with an open port forward.

This module's moatd runs with a 1 s keepalive and a 3 s idle timeout
(test_ssh_gateway.py's has the defaults: 30 s, never). Timing bounds are
generous: the machine is small and shared, so the tests assert "well
after 3 s" and "well before 30 s" rather than exact times.
"""
import socket
import subprocess
import time

import pytest

import moat_harness as mh
from test_ssh_gateway import gateway_module, start_http_in
from test_workspaces import call, podman

KEEPALIVE_S = 1
IDLE_S = 3
IDLE_MSG = "moat: the session was idle too long"
# What OpenSSH's client (clientloop.c, debug1) logs for a server's global
# request, here the gateway's keepalive.
KEEPALIVE_SEEN = ("client_input_global_request: rtype keepalive@openssh.com "
                  "want_reply 1")

# Accepts connections, never writes, discards what it reads and closes a
# connection when its peer does (so that a tunnel's channel can end).
HOLD_SERVER = (
    "perl -MIO::Socket::INET -MIO::Select -e '$s=IO::Socket::INET->new("
    "LocalAddr=>\"127.0.0.1\",LocalPort=>{port},Listen=>64,ReuseAddr=>1) "
    "or die $!; $sel=IO::Select->new($s); while(1){{for $h ($sel->can_read)"
    "{{if($h==$s){{$sel->add($s->accept)}} elsif(!sysread($h,$b,4096))"
    "{{$sel->remove($h); close $h}}}}}}'")


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_socket, base_image):
    yield from gateway_module(
        tmp_path_factory, podman_socket, "sshidle",
        "--ssh-keepalive-interval", f"{KEEPALIVE_S}s",
        "--ssh-idle-timeout", f"{IDLE_S}s",
        "--max-workspaces-per-user", "4", "--max-running-per-user", "4")


# ----------------------------------------------------------------- helpers

# The client sends no keepalive of its own (-F /dev/null already leaves
# ServerAliveInterval at 0; said again so that no default can change it).
QUIET = ("-o", "ServerAliveInterval=0")


def spawn(env, key, login, *args, stdin=subprocess.DEVNULL, err=None):
    """A background ssh; stderr to the file err when given (read after it
    ends), else a pipe."""
    return subprocess.Popen(
        env.ssh_args(key, login, *QUIET) + list(args), stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=err.open("w") if err is not None else subprocess.PIPE,
        text=True)


def stop(p):
    if p.poll() is None:
        p.terminate()
    try:
        return p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.communicate(timeout=15)


def start_hold_in(ws, user, port=8001):
    """HOLD_SERVER on 127.0.0.1:port inside the workspace: a quiet
    tunnel's far end."""
    podman("exec", "-d", "--user", user, f"moat-{ws['id']}", "bash", "-c",
           HOLD_SERVER.format(port=port))

    def up():
        return podman("exec", "--user", user, f"moat-{ws['id']}", "bash",
                      "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}",
                      check=False).returncode == 0
    mh.wait_until(up, 15, what="hold server in the workspace")


def hold_forward(lport, timeout=20):
    """A connection through the client's -L listener (so an open
    direct-tcpip channel at the gateway) that then stays quiet."""
    c = mh.wait_until(lambda: _connect(lport), timeout, what="-L listening")
    c.settimeout(0.2)
    return c


def _connect(port):
    try:
        return socket.create_connection(("127.0.0.1", port), 1)
    except OSError:
        return None


def still_open(c):
    """True while the peer has not closed the connection (nothing is ever
    sent on it)."""
    try:
        return c.recv(1) != b""
    except socket.timeout:
        return True
    except OSError:
        return False


def curl(url, *extra):
    return subprocess.run(["curl", "-s", "--max-time", "15", *extra, url],
                          capture_output=True, text=True, timeout=30)


def wait_alive(p, seconds):
    """Waits seconds; fails at once if the ssh process ends meanwhile."""
    try:
        out, err = p.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError(f"ssh ended after less than {seconds}s: status "
                         f"{p.returncode}\n{out}\n{err}")


# ------------------------------------------------------------------- tests

@pytest.mark.parametrize("kind", ["exec", "pty"])
def test_quiet_session_ended_after_idle_timeout(env, kind):
    user, tok, key, ws = env.user_with_ws(f"quiet{kind}")
    t0 = time.monotonic()
    if kind == "exec":
        p = spawn(env, key, f"quiet{kind}", "sleep 30")
    else:   # a login shell on a pty: a prompt, then nothing typed
        p = spawn(env, key, f"quiet{kind}", "-tt", stdin=subprocess.PIPE)
    try:
        # wait(), not communicate(): the pty session's stdin stays open.
        p.wait(timeout=25)
    except subprocess.TimeoutExpired:
        stop(p)
        raise AssertionError("a quiet session was not ended within 25 s "
                             f"(idle timeout {IDLE_S} s)") from None
    took = time.monotonic() - t0
    out, err = p.stdout.read(), p.stderr.read()
    if p.stdin is not None:
        p.stdin.close()
    assert took >= IDLE_S
    assert p.returncode == 255, (p.returncode, out, err)
    assert IDLE_MSG in err, (out, err)
    # The audit trail has the session's end (the command's exit status
    # never came: the gateway ended it).
    end = env.audit(lambda e: e.get("type") == "session.end" and
                    e.get("actor", {}).get("user") == user)[0]
    assert end["details"]["kind"] == ("exec" if kind == "exec" else "shell")
    if kind == "exec":
        assert end["details"]["command"] == "sleep 30"
    assert "exit_status" not in end["details"], end
    assert IDLE_S - 0.5 <= end["details"]["duration"] < 25, end
    # Gone from the live sessions.
    mh.wait_until(lambda: not [s for s in call(
        env.m, "GET", "/api/v1/sessions", env.admin).json()["sessions"]
        if s.get("user") == user], 10, what="session gone from the table")


def test_open_local_forward_keeps_quiet_session(env):
    user, tok, key, ws = env.user_with_ws("tunnel")
    start_http_in(env, ws, user, 8000)
    start_hold_in(ws, user, 8001)
    hport, lport = mh.free_port(), mh.free_port()
    p = spawn(env, key, "tunnel", "-N",
              "-L", f"{hport}:127.0.0.1:8000", "-L", f"{lport}:127.0.0.1:8001")
    held = None
    try:
        held = hold_forward(lport)
        # Well over the idle timeout without a byte either way.
        wait_alive(p, 3 * IDLE_S)
        assert still_open(held)
        # The forwards still work.
        r = curl(f"http://127.0.0.1:{hport}/")
        assert r.stdout == "hello moat\n", r
        # With the last forward closed the session is quiet and has no
        # open forward (the client's -L listeners are invisible to the
        # gateway): the idle timeout ends it.
        held.close()
        held = None
        t0 = time.monotonic()
        out, err = p.communicate(timeout=25)
        assert time.monotonic() - t0 >= IDLE_S - 0.5
        assert p.returncode == 255, (out, err)
    finally:
        if held is not None:
            held.close()
        stop(p)
    env.audit(lambda e: e.get("type") == "port_forward.close" and
              e.get("actor", {}).get("user") == user and
              e["details"].get("port") == 8001)


def test_quiet_forward_reported_as_activity(env):
    """A quiet tunnel is the workspace's activity too: the session's child
    reports its open forward (every 20 s) though no byte moves, which
    the parent passes to the workspace's idle clock; the sessions list
    shows it."""
    user, tok, key, ws = env.user_with_ws("ide")
    start_hold_in(ws, user, 8001)
    lport = mh.free_port()
    p = spawn(env, key, "ide", "-N", "-L", f"{lport}:127.0.0.1:8001")
    held = None
    try:
        held = hold_forward(lport)
        s = mh.wait_until(lambda: [x for x in call(
            env.m, "GET", "/api/v1/sessions", env.admin).json()["sessions"]
            if x.get("user") == user and x.get("forwards") == 1], 45,
            interval=0.5, what="the quiet forward reported")[0]
        assert s["bytes_in"] == 0 and s["bytes_out"] == 0, s
        assert p.poll() is None and still_open(held)
    finally:
        if held is not None:
            held.close()
        stop(p)


def test_remote_forward_keeps_quiet_session(env, tmp_path):
    import functools
    import http.server
    import threading
    user, tok, key, ws = env.user_with_ws("rtunnel")
    (tmp_path / "hello.txt").write_text("from the laptop\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    hport = srv.server_address[1]

    def fetch():
        return podman("exec", "--user", user, f"moat-{ws['id']}", "curl",
                      "-s", "--max-time", "10",
                      "http://127.0.0.1:18081/hello.txt",
                      check=False).stdout == "from the laptop\n"
    p = spawn(env, key, "rtunnel", "-N", "-o", "ExitOnForwardFailure=yes",
              "-R", f"18081:127.0.0.1:{hport}")
    try:
        mh.wait_until(fetch, 30, interval=0.5, what="-R listening")
        # An -R listener is an open forward: quiet, it is not cut.
        wait_alive(p, 3 * IDLE_S)
        assert fetch()
    finally:
        stop(p)
        srv.shutdown()


@pytest.mark.parametrize("way", ["output", "input"])
def test_busy_session_not_cut(env, way):
    user, tok, key, ws = env.user_with_ws(f"busy{way[0]}")
    login = f"busy{way[0]}"
    if way == "output":
        # A byte every second from the workspace, 2 x the idle timeout.
        p = spawn(env, key, login,
                  "for i in 1 2 3 4 5 6 7; do echo tick-$i; sleep 1; done; "
                  "echo done")
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, (out, err)
        assert out.split() == [f"tick-{i}" for i in range(1, 8)] + ["done"]
    else:
        # A line every second from the client, nothing back until EOF.
        p = spawn(env, key, login, "wc -l", stdin=subprocess.PIPE)
        for _ in range(7):
            time.sleep(1)
            assert p.poll() is None, stop(p)
            p.stdin.write("x\n")
            p.stdin.flush()
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, (out, err)
        assert out.strip() == "7"
    assert IDLE_MSG not in err


def test_keepalive_sent_to_quiet_client(env, tmp_path):
    user, tok, key, ws = env.user_with_ws("alive")
    # A quiet command: keepalives before the idle timeout ends it.
    err = tmp_path / "exec.err"
    p = spawn(env, key, "alive", "-v", "sleep 30", err=err)
    try:
        p.communicate(timeout=25)
    finally:
        stop(p)
    log = err.read_text()
    assert IDLE_MSG in log, log
    assert KEEPALIVE_SEEN in log, log
    # A quiet tunnel (never cut): one keepalive per interval. Counted over
    # 20 intervals: 19 or 20 are expected (the gateway looks every 250 ms
    # at most), at least 15 asked. One every other interval (libssh's pace
    # when asked once per interval) would be about 10; up to two per
    # interval are fine (see housekeeping() in gwsess.c).
    start_hold_in(ws, user, 8001)
    lport = mh.free_port()
    err = tmp_path / "fwd.err"
    p = spawn(env, key, "alive", "-v", "-N", "-L",
              f"{lport}:127.0.0.1:8001", err=err)
    try:
        held = hold_forward(lport)
        n0 = err.read_text().count(KEEPALIVE_SEEN)
        wait_alive(p, 20 * KEEPALIVE_S)
        n = err.read_text().count(KEEPALIVE_SEEN) - n0
        held.close()
    finally:
        stop(p)
    assert 15 <= n <= 42, (n, err.read_text())


def test_keepalive_answers_do_not_count_as_activity(env, tmp_path):
    """The client's answers to keepalives (and its own keepalives) are not
    bytes of a channel: a quiet session whose client also sends keepalives
    every second is still ended."""
    user, tok, key, ws = env.user_with_ws("chatty")
    p = subprocess.Popen(
        env.ssh_args(key, "chatty", "-o", "ServerAliveInterval=1") +
        ["sleep 30"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=25)
    finally:
        stop(p)
    assert p.returncode == 255 and IDLE_MSG in err, (out, err)
