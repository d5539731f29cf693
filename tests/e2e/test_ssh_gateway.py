"""The SSH gateway end to end with the real OpenSSH client: moatd with a
real Podman, real workspaces, keys made by ssh-keygen and registered
through the API, the gateway's host key pinned in a known_hosts file.

One moatd and one Podman service serve the module; tests use their own
users and workspaces so that they do not interfere.
"""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import moat_harness as mh
from test_recordings import asciinema_cat
from test_workspaces import Env, call, podman

MIB = 1024 * 1024


class SSHEnv(Env):
    """Env plus the gateway: a client key per user, known_hosts."""

    def __init__(self, m, run_dir, podman_sock, ssh_port, tmp):
        super().__init__(m, run_dir, podman_sock)
        self.ssh_port = ssh_port
        self.tmp = Path(tmp)
        host_pub = subprocess.run(
            ["ssh-keygen", "-y", "-f",
             str(m.secrets / "ssh-host-ed25519.key")],
            capture_output=True, text=True, check=True).stdout.strip()
        self.known_hosts = self.tmp / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{ssh_port} {host_pub}\n")
        self.keyn = 0
        # Home volumes are preallocated and each test keeps its workspace
        # until the module ends: a 256 MiB home (not the default 4 GiB)
        # keeps the module's disk use small.
        base = call(m, "GET", "/api/v1/templates/base", self.admin).json()
        body = {k: base[k] for k in (
            "image", "cpu", "memory_mb", "root_disk_mb", "env",
            "startup_script", "egress_policy", "idle_timeout", "ports",
            "forbid_sudo") if base.get(k) is not None}
        body["disk_mb"] = 256
        r = call(m, "PUT", "/api/v1/templates/base", self.admin, body)
        assert r.status == 200, r.text

    def keygen(self, kind="ed25519"):
        self.keyn += 1
        path = self.tmp / f"key{self.keyn}"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C",
                        f"test{self.keyn}", "-f", str(path)], check=True)
        return path

    def add_key(self, token, path, name=None):
        r = call(self.m, "POST", "/api/v1/ssh-keys", token, {
            "name": name or f"k{path.name}",
            "public_key": Path(str(path) + ".pub").read_text().strip()})
        assert r.status == 201, r.text
        return r.json()

    def ssh_args(self, key, login, *extra, batch=True, only=True):
        args = ["ssh", "-p", str(self.ssh_port),
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=20",
                "-F", "/dev/null"]
        if only:
            args += ["-o", "IdentitiesOnly=yes"]
        else:
            args += ["-o", "IdentityFile=/dev/null"]
        if batch:
            args += ["-o", "BatchMode=yes"]
        if key is not None:
            args += ["-i", str(key)]
        return args + list(extra) + [f"{login}@127.0.0.1"]

    def ssh(self, key, login, *cmd, extra=(), input=None, timeout=60,
            text=True):
        return subprocess.run(self.ssh_args(key, login, *extra) + list(cmd),
                              capture_output=True, input=input,
                              timeout=timeout, text=text)

    def user_with_ws(self, name="w", start=True):
        user, tok = self.user()
        key = self.keygen()
        self.add_key(tok, key)
        ws = self.create(tok, name, wait=start)
        return user, tok, key, ws

    def audit(self, pred, timeout=10):
        return mh.wait_until(
            lambda: [e for e in self.m.audit_events() if pred(e)],
            timeout, what="audit event")


def gateway_module(tmp_path_factory, podman_socket, name, *extra_args):
    """A test module's moatd with Podman workspaces and its SSH gateway on
    a free port (extra_args added): yields an SSHEnv; afterwards every
    workspace is deleted, moatd stopped and its sanitizer reports
    checked."""
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    tmp = tmp_path_factory.mktemp(name)
    data = tmp / "data"
    mh.moatd_init(data)
    run_dir = tmp / "run"
    procs = mh.ProcGroup(tmp / "logs")
    ssh_port = mh.free_port()
    m = mh.Moatd(procs, data, extra_args=[
        "--runtime-socket", podman_socket.socket,
        "--run-dir", str(run_dir),
        "--reconcile-interval", "300ms",
        "--ssh-listen", f"127.0.0.1:{ssh_port}",
        "--audit-fsync", "none",
        *extra_args,
    ]).start()
    m.wait_for_log("workspaces ready", timeout=30)
    e = SSHEnv(m, run_dir, podman_socket.socket, ssh_port, tmp)
    yield e
    e.delete_all()
    procs.stop_all()
    reports = procs.sanitizer_reports()
    assert not reports, reports[0][1]


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_socket, base_image):
    yield from gateway_module(
        tmp_path_factory, podman_socket, "sshgw",
        "--ssh-max-startups", "32", "--ssh-login-grace-time", "4s",
        "--max-workspaces-per-user", "4", "--max-running-per-user", "4")


# ------------------------------------------------------------------ tests

def test_exec_echo_and_exit_status(env):
    user, tok, key, ws = env.user_with_ws("echo")
    r = env.ssh(key, "echo", "echo", "hi")
    assert r.returncode == 0, r.stderr + env.m.proc.tail(80)
    assert r.stdout == "hi\n"
    r = env.ssh(key, "echo", "exit 7")
    assert r.returncode == 7, r.stderr
    # stdin, stdout and stderr each way, and the user inside
    r = env.ssh(key, "echo", "cat; echo err >&2; id -un", input="ping\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"ping\n{user}\n"
    assert "err" in r.stderr
    ev = env.audit(lambda e: e.get("type") == "session.start" and
                   e.get("actor", {}).get("user") == user)
    assert ev[0]["details"]["kind"] == "exec"
    assert ev[0]["actor"]["addr"] == "127.0.0.1"
    end = env.audit(lambda e: e.get("type") == "session.end" and
                    e.get("actor", {}).get("user") == user and
                    e["details"].get("exit_status") == 7)
    assert end[0]["details"]["command"] == "exit 7"
    # The environment allow-list: LANG, LC_*, COLORTERM pass; others not.
    r = env.ssh(key, "echo", "echo $LANG/$LC_TIME/$COLORTERM/${EDITOR:-none}",
                extra=("-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C COLORTERM=truecolor "
                       "EDITOR=evil"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "C.UTF-8/C/truecolor/none\n", r.stdout


# ----------------------------------------------------------------- helpers

HTTP_SERVER = (
    "perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"
    "\"127.0.0.1\",LocalPort=>{port},Listen=>64,ReuseAddr=>1) or die $!; "
    "while($c=$s->accept){{while(<$c>){{last if /^\\r?$/}} print $c "
    "\"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 11"
    "\\r\\n\\r\\nhello moat\\n\"; close $c}}'")


def start_http_in(env, ws, user, port=8000):
    """A tiny HTTP server on 127.0.0.1:port inside the workspace (the base
    image has perl, not python3)."""
    podman("exec", "-d", "--user", user, f"moat-{ws['id']}", "bash", "-c",
           HTTP_SERVER.format(port=port))

    def up():
        r = podman("exec", "--user", user, f"moat-{ws['id']}", "curl", "-s",
                   f"http://127.0.0.1:{port}/", check=False)
        return r.returncode == 0 and "hello moat" in r.stdout
    mh.wait_until(up, 15, what="http server in the workspace")


def settings_ssh(env, **switches):
    """Sets the organization's SSH switches; returns the previous ones."""
    cur = call(env.m, "GET", "/api/v1/orgs/default/settings", env.admin)
    assert cur.status == 200, cur.text
    doc = cur.json()
    for k in ("id", "rev", "created_at", "updated_at"):
        doc.pop(k, None)
    before = dict(doc["ssh"])
    doc["ssh"].update(switches)
    r = call(env.m, "PUT", "/api/v1/orgs/default/settings", env.admin, doc)
    assert r.status == 200, r.text
    return before


def sessions(env):
    r = call(env.m, "GET", "/api/v1/sessions", env.admin)
    assert r.status == 200, r.text
    return r.json()["sessions"]


def session_of(env, user, timeout=20):
    return mh.wait_until(
        lambda: [s for s in sessions(env) if s.get("user") == user and
                 s["authenticated"]], timeout, what=f"{user}'s session")[0]


def background_ssh(env, key, login, *cmd):
    return subprocess.Popen(env.ssh_args(key, login) + list(cmd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


# ------------------------------------------------------------ more tests

def test_wrong_key_refused_and_audited(env):
    user, tok, key, ws = env.user_with_ws("wk")
    stranger = env.keygen()
    r = env.ssh(stranger, "wk", "true")
    assert r.returncode == 255
    assert "Permission denied" in r.stderr
    fp = subprocess.run(["ssh-keygen", "-lf", str(stranger) + ".pub"],
                        capture_output=True, text=True).stdout.split()[1]
    ev = env.audit(lambda e: e.get("type") == "ssh.auth" and
                   e.get("outcome") == "denied" and
                   e.get("details", {}).get("fingerprint") == fp)
    assert ev[0]["actor"]["addr"] == "127.0.0.1"
    assert ev[0]["details"]["reason"] == "unknown key"


def test_agent_wrong_key_first_then_right_key(env, tmp_path):
    user, tok, key, ws = env.user_with_ws("agent")
    wrong = env.keygen()
    sock = tmp_path / "agent.sock"
    agent = subprocess.run(["ssh-agent", "-a", str(sock)],
                           capture_output=True, text=True, check=True)
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout).group(1))
    try:
        e = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        for k in (wrong, key):
            subprocess.run(["ssh-add", "-q", str(k)], env=e, check=True,
                           capture_output=True)
        args = env.ssh_args(None, "agent", only=False)
        r = subprocess.run(args + ["echo", "via-agent"], env=e,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "via-agent\n"
    finally:
        os.kill(pid, signal.SIGTERM)


def test_other_users_workspace_same_answer_as_none(env):
    alice, atok, akey, aws = env.user_with_ws("mine")
    bob, btok = env.user()
    bkey = env.keygen()
    env.add_key(btok, bkey)
    forbidden = env.ssh(bkey, f"{alice}.mine", "true")
    missing = env.ssh(bkey, f"{alice}.nosuch", "true")
    own_missing = env.ssh(bkey, "nosuch", "true")
    for r in (forbidden, missing, own_missing):
        assert r.returncode == 255
        assert "no such workspace, or you may not open it" in r.stderr
    said = [r.stderr.replace(login, "LOGIN") for r, login in (
        (forbidden, f"{alice}.mine"), (missing, f"{alice}.nosuch"),
        (own_missing, "nosuch"))]
    assert said[0] == said[1] == said[2]
    env.audit(lambda e: e.get("type") == "ssh.auth" and
              e.get("details", {}).get("user") == bob and
              "workspaces:all" in e["details"].get("reason", ""))


def test_admin_opens_other_users_workspace_audited_no_agent(env, tmp_path):
    owner, tok, key, ws = env.user_with_ws("shared")
    akey = env.keygen()
    env.add_key(env.admin, akey)
    sock = tmp_path / "a.sock"
    agent = subprocess.run(["ssh-agent", "-a", str(sock)],
                           capture_output=True, text=True, check=True)
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout).group(1))
    try:
        before = settings_ssh(env, agent_forwarding=True)
        e = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", "-q", str(akey)], env=e, check=True,
                       capture_output=True)
        r = subprocess.run(env.ssh_args(akey, f"{owner}.shared", "-A") +
                           ["id -un; echo sock=${SSH_AUTH_SOCK:-none}"],
                           env=e, capture_output=True, text=True, timeout=60)
    finally:
        settings_ssh(env, **before)
        os.kill(pid, signal.SIGTERM)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{owner}\nsock=none\n"
    ev = env.audit(lambda e: e.get("type") == "ssh.auth" and
                   e.get("outcome") == "success" and
                   e.get("details", {}).get("other_owner") == owner)
    assert ev[0]["actor"]["user"] == "admin"
    assert ev[0]["target"]["owner"] == owner
    env.audit(lambda e: e.get("type") == "ssh.request.denied" and
              e.get("actor", {}).get("user") == "admin" and
              e["details"].get("request") == "auth-agent-req")


def test_agent_forwarding_when_allowed(env, tmp_path):
    user, tok, key, ws = env.user_with_ws("fwdagent")
    sock = tmp_path / "b.sock"
    agent = subprocess.run(["ssh-agent", "-a", str(sock)],
                           capture_output=True, text=True, check=True)
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout).group(1))
    e = dict(os.environ, SSH_AUTH_SOCK=str(sock))
    subprocess.run(["ssh-add", "-q", str(key)], env=e, check=True,
                   capture_output=True)
    try:
        r = subprocess.run(env.ssh_args(key, "fwdagent", "-A") +
                           ["ssh-add -l"], env=e, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 or "agent" in r.stderr.lower() or \
            r.stdout == "", (r.stdout, r.stderr)   # off by default
        before = settings_ssh(env, agent_forwarding=True)
        try:
            r = subprocess.run(env.ssh_args(key, "fwdagent", "-A") +
                               ["ssh-add -l"], env=e, capture_output=True,
                               text=True, timeout=60)
        finally:
            settings_ssh(env, **before)
        assert r.returncode == 0, r.stderr
        assert "ED25519" in r.stdout
    finally:
        os.kill(pid, signal.SIGTERM)


def test_interactive_pty_resize_and_recording(env):
    import fcntl
    import pty
    import struct
    import termios
    user, tok, key, ws = env.user_with_ws("tty")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen(env.ssh_args(key, "tty", "-tt", "-q"),
                         stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True)
    os.close(slave)
    out = bytearray()

    def read_until(token, timeout=20):
        deadline = time.monotonic() + timeout
        while token.encode() not in out:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {token!r} in {bytes(out)!r}")
            import select
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    out.extend(os.read(master, 65536))
                except OSError:
                    break

    read_until("$ ")    # the prompt: ssh has put the terminal in raw mode
    os.write(master, b"stty size; echo mark-$((6*7))\r")
    read_until("mark-42")
    assert b"30 100" in out
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    os.kill(p.pid, signal.SIGWINCH)
    time.sleep(0.5)
    os.write(master, b"stty size; echo mark-$((7*7))\r")
    read_until("mark-49")
    assert b"40 120" in out
    os.write(master, b"printf 'caf\\303\\251 \\342\\234\\223\\n'; exit 3\r")
    assert p.wait(30) == 3
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            out.extend(chunk)
    except OSError:
        pass
    os.close(master)
    # The recording: the same bytes, with the resize.
    r = mh.wait_until(lambda: [x for x in call(
        env.m, "GET", f"/api/v1/recordings?user={user}",
        env.admin).json()["recordings"] if x.get("ended_at")], 20,
        what="recording ended")
    rid = r[0]["id"]
    assert r[0]["workspace"] == "tty"
    rec = call(env.m, "GET", f"/api/v1/recordings/{rid}", env.admin)
    assert rec.status == 200, rec.text
    lines = rec.text.splitlines()
    head = json.loads(lines[0])
    assert head["version"] == 2 and head["width"] == 100 and \
        head["height"] == 30
    events = [json.loads(x) for x in lines[1:]]
    assert ["r", "120x40"] in [[e[1], e[2]] for e in events]
    assert not [e for e in events if e[1] == "i"]   # input not recorded
    cast = env.tmp / f"{rid}.cast"
    cast.write_bytes(rec.body if hasattr(rec, "body")
                     else rec.text.encode())
    played = asciinema_cat(cast)
    assert played == bytes(out), (played[-200:], bytes(out)[-200:])
    assert "café ✓".encode() in played
    end = env.audit(lambda e: e.get("type") == "session.end" and
                    e.get("actor", {}).get("user") == user)
    assert end[0]["details"]["recording_id"] == rid
    assert end[0]["details"]["exit_status"] == 3


def test_sftp_and_scp_both_ways(env, tmp_path):
    user, tok, key, ws = env.user_with_ws("files")
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(3 * MIB + 17))
    opts = env.ssh_args(key, "files")[1:-1]
    opts = [o for o in opts if o not in ("-p", str(env.ssh_port))]
    batch = tmp_path / "batch"
    batch.write_text(f"put {src} up.bin\nget up.bin {tmp_path}/down.bin\n")
    r = subprocess.run(["sftp", "-P", str(env.ssh_port), "-b", str(batch)] +
                       opts + ["files@127.0.0.1"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()
    for legacy in ([], ["-O"]):
        tag = "o" if legacy else "s"
        r = subprocess.run(["scp", "-q", "-P", str(env.ssh_port)] + legacy +
                           opts + [str(src), f"files@127.0.0.1:scp-{tag}.bin"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["scp", "-q", "-P", str(env.ssh_port)] + legacy +
                           opts + [f"files@127.0.0.1:scp-{tag}.bin",
                                   str(tmp_path / f"back-{tag}.bin")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"back-{tag}.bin").read_bytes() == src.read_bytes()
    env.audit(lambda e: e.get("type") == "file_transfer.allowed" and
              e.get("actor", {}).get("user") == user and
              e["details"].get("protocol") == "scp")
    # Off: refused, the client says why, audited.
    before = settings_ssh(env, file_transfer=False)
    try:
        r = subprocess.run(["sftp", "-P", str(env.ssh_port), "-b",
                            str(batch)] + opts + ["files@127.0.0.1"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert "file transfer" in r.stderr
        r = subprocess.run(["scp", "-q", "-O", "-P", str(env.ssh_port)] +
                           opts + [str(src), "files@127.0.0.1:x.bin"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert "file transfer" in r.stderr
        # A plain command still works.
        assert env.ssh(key, "files", "echo ok").stdout == "ok\n"
    finally:
        settings_ssh(env, **before)
    ev = env.audit(lambda e: e.get("type") == "file_transfer.denied" and
                   e.get("actor", {}).get("user") == user)
    assert ev[0]["outcome"] == "denied"


def test_local_and_dynamic_port_forwarding(env):
    user, tok, key, ws = env.user_with_ws("fwd")
    start_http_in(env, ws, user)
    lport, dport = mh.free_port(), mh.free_port()
    p = subprocess.Popen(env.ssh_args(key, "fwd", "-N", "-L",
                                      f"{lport}:127.0.0.1:8000", "-D",
                                      str(dport)),
                         stderr=subprocess.PIPE, text=True)
    try:
        mh.wait_until(lambda: mh.port_open(lport) and mh.port_open(dport),
                      20, what="forwards listening")
        for _ in range(3):
            r = subprocess.run(["curl", "-s", "--max-time", "10",
                                f"http://127.0.0.1:{lport}/"],
                               capture_output=True, text=True)
            assert r.stdout == "hello moat\n", r
        r = subprocess.run(["curl", "-s", "--max-time", "10",
                            "--socks5-hostname", f"127.0.0.1:{dport}",
                            "http://localhost:8000/"],
                           capture_output=True, text=True)
        assert r.stdout == "hello moat\n", r
        # Not loopback inside the workspace: refused.
        r = subprocess.run(["curl", "-s", "--max-time", "10",
                            "--socks5-hostname", f"127.0.0.1:{dport}",
                            "http://10.1.2.3:80/"],
                           capture_output=True, text=True)
        assert r.returncode != 0
    finally:
        p.terminate()
        p.wait(10)
    env.audit(lambda e: e.get("type") == "port_forward.open" and
              e.get("actor", {}).get("user") == user and
              e["details"]["port"] == 8000)
    env.audit(lambda e: e.get("type") == "port_forward.close" and
              e.get("actor", {}).get("user") == user)
    env.audit(lambda e: e.get("type") == "port_forward.denied" and
              e.get("actor", {}).get("user") == user and
              e["details"]["host"] == "10.1.2.3")
    # Policy off: the forward is refused.
    before = settings_ssh(env, port_forwarding=False)
    try:
        p = subprocess.Popen(env.ssh_args(key, "fwd", "-N", "-L",
                                          f"{lport}:127.0.0.1:8000"),
                             stderr=subprocess.PIPE, text=True)
        mh.wait_until(lambda: mh.port_open(lport), 20, what="listening")
        r = subprocess.run(["curl", "-s", "--max-time", "10",
                            f"http://127.0.0.1:{lport}/"],
                           capture_output=True, text=True)
        assert r.stdout == ""
        p.terminate()
        _, err = p.communicate(timeout=10)
        assert "prohibited" in err
    finally:
        settings_ssh(env, **before)
    env.audit(lambda e: e.get("type") == "port_forward.denied" and
              e.get("actor", {}).get("user") == user and
              "turned off" in e["details"]["reason"])


def test_stopped_workspace_started_by_login(env):
    user, tok, key, ws = env.user_with_ws("sleepy")
    r = env.action(tok, user, "sleepy", "stop")
    assert r.status in (200, 202), r.text
    env.wait_state(tok, user, "sleepy", "stopped")
    r = env.ssh(key, "sleepy", "echo", "awake", timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "awake\n"
    assert re.search(r"moat: workspace sleepy is (starting|pending)",
                     r.stderr), r.stderr
    env.audit(lambda e: e.get("type") == "workspace.start" and
              e.get("actor", {}).get("user") == user)


def test_kill_one_session_process_others_live(env):
    user, tok, key, ws = env.user_with_ws("killer")
    a = background_ssh(env, key, "killer", "sleep 4; echo a-done")
    b = background_ssh(env, key, "killer", "sleep 4; echo b-done")
    live = mh.wait_until(lambda: len([s for s in sessions(env)
                                      if s.get("user") == user]) == 2 and
                         [s for s in sessions(env) if s.get("user") == user],
                         20, what="two sessions")
    os.kill(live[0]["pid"], signal.SIGKILL)
    outs = [a.communicate(timeout=30), b.communicate(timeout=30)]
    codes = sorted([a.returncode, b.returncode])
    assert codes[0] == 0 and codes[1] == 255, (codes, outs)
    assert sum("done" in o[0] for o in outs) == 1
    # moatd itself is fine.
    assert env.ssh(key, "killer", "echo", "still").stdout == "still\n"


def test_admin_ends_live_session(env):
    user, tok, key, ws = env.user_with_ws("ended")
    p = background_ssh(env, key, "ended", "sleep 60")
    s = session_of(env, user)
    assert s["workspace"] == "ended" and s["client_addr"] == "127.0.0.1"
    t0 = time.monotonic()
    r = call(env.m, "DELETE", f"/api/v1/sessions/{s['id']}", env.admin)
    assert r.status == 204, r.text
    out, err = p.communicate(timeout=15)
    assert time.monotonic() - t0 < 10
    assert p.returncode != 0
    assert "ended by an administrator" in err, err
    mh.wait_until(lambda: call(env.m, "DELETE", f"/api/v1/sessions/{s['id']}",
                               env.admin).status == 404, 10,
                  what="the session gone from the table")
    assert s["id"] not in [x["id"] for x in sessions(env)]
    # Members may not list or end sessions.
    assert call(env.m, "GET", "/api/v1/sessions", tok).status == 403
    env.audit(lambda e: e.get("type") == "ssh.session.end" and
              e.get("target", {}).get("id") == s["id"])


def test_disabled_user_session_closes_and_login_refused(env):
    user, tok, key, ws = env.user_with_ws("gone")
    p = background_ssh(env, key, "gone", "sleep 60")
    session_of(env, user)
    r = call(env.m, "POST", f"/api/v1/users/{user}/disable", env.admin)
    assert r.status == 200, r.text
    t0 = time.monotonic()
    out, err = p.communicate(timeout=20)
    assert time.monotonic() - t0 < 10
    assert p.returncode != 0
    r = env.ssh(key, "gone", "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr
    env.audit(lambda e: e.get("type") == "ssh.auth" and
              e.get("details", {}).get("reason") == "user disabled")


def test_deleted_key_ends_session(env):
    user, tok, key, ws = env.user_with_ws("revoke")
    p = background_ssh(env, key, "revoke", "sleep 60")
    session_of(env, user)
    keys = call(env.m, "GET", "/api/v1/ssh-keys", tok).json()["ssh_keys"]
    r = call(env.m, "DELETE", f"/api/v1/ssh-keys/{keys[0]['id']}", tok)
    assert r.status == 204, r.text
    p.communicate(timeout=20)
    assert p.returncode != 0


def test_concurrent_sessions_move_data_intact(env):
    n = int(os.environ.get("MOAT_SSH_CONCURRENCY", "20"))
    size = 10 * MIB
    user, tok, key, ws = env.user_with_ws("bulk")
    blobs = [os.urandom(size) for _ in range(n)]
    want = [hashlib.sha256(b).hexdigest() for b in blobs]
    got = [None] * n
    errs = []

    def one(i):
        try:
            r = subprocess.run(env.ssh_args(key, "bulk") + ["sha256sum"],
                               input=blobs[i], capture_output=True,
                               timeout=600)
            got[i] = r.stdout.decode().split()[0] if r.returncode == 0 \
                else r.stderr.decode()
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    assert got == want
    # And the other way: the workspace sends, the client checks.
    r = subprocess.run(env.ssh_args(key, "bulk") +
                       ["head -c 20000000 /dev/zero | tr '\\0' x"],
                       capture_output=True, timeout=300)
    assert r.returncode == 0 and r.stdout == b"x" * 20000000


def test_audit_disk_full_refuses_new_sessions(env, tmp_path):
    """A second moatd on the same data directory whose audit reserve can
    never be met: its gateway refuses sessions and says why."""
    user, tok, key, ws = env.user_with_ws("full")
    procs = mh.ProcGroup(tmp_path / "logs")
    port = mh.free_port()
    m2 = mh.Moatd(procs, env.m.data_dir, name="moatd-full", extra_args=[
        "--audit-file", str(tmp_path / "audit.log"),
        "--audit-collector", str(tmp_path / "audit.sock"),
        "--audit-disk-reserve", "1000000G",
        "--ssh-listen", f"127.0.0.1:{port}",
        "--run-dir", str(tmp_path / "run"),
        "--runtime-socket", str(tmp_path / "no-such.sock"),
    ], ready="port")
    try:
        m2.start()
        mh.wait_until(lambda: mh.port_open(port), 20, what="ssh port")
        args = env.ssh_args(key, "full")
        args[args.index("-p") + 1] = str(port)
        kh = tmp_path / "kh"
        kh.write_text(env.known_hosts.read_text().replace(
            f"]:{env.ssh_port} ", f"]:{port} "))
        args = [a if not a.startswith("UserKnownHostsFile=") else
                f"UserKnownHostsFile={kh}" for a in args]
        r = subprocess.run(args + ["true"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 255
        assert "audit log's disk is nearly full" in r.stderr, r.stderr
    finally:
        procs.stop_all()


def test_remote_forwarding_follows_policy(env, tmp_path):
    import functools
    import http.server
    user, tok, key, ws = env.user_with_ws("rfwd")
    (tmp_path / "hello.txt").write_text("from the laptop\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    hport = srv.server_address[1]
    try:
        r = env.ssh(key, "rfwd", "curl -s --max-time 10 "
                    "http://127.0.0.1:18080/hello.txt",
                    extra=("-o", "ExitOnForwardFailure=yes", "-R",
                           f"18080:127.0.0.1:{hport}"))
        assert r.returncode == 0, r.stderr
        assert r.stdout == "from the laptop\n"
        env.audit(lambda e: e.get("type") == "port_forward.open" and
                  e.get("actor", {}).get("user") == user and
                  e["details"].get("request") == "tcpip-forward")
        before = settings_ssh(env, port_forwarding=False)
        try:
            r = env.ssh(key, "rfwd", "true",
                        extra=("-o", "ExitOnForwardFailure=yes", "-R",
                               f"18080:127.0.0.1:{hport}"))
        finally:
            settings_ssh(env, **before)
        assert r.returncode == 255
        assert "remote port forwarding failed" in r.stderr
    finally:
        srv.shutdown()


def test_record_input_switch(env):
    user, tok, key, ws = env.user_with_ws("keys")
    before = settings_ssh(env, record_input=True)
    try:
        r = env.ssh(key, "keys", extra=("-tt",),
                    input="echo typed-$((1+1))\nexit\n")
        assert r.returncode == 0, r.stderr
    finally:
        settings_ssh(env, **before)
    rec = mh.wait_until(lambda: [x for x in call(
        env.m, "GET", f"/api/v1/recordings?user={user}",
        env.admin).json()["recordings"] if x.get("ended_at")], 20,
        what="recording ended")[0]
    text = call(env.m, "GET", f"/api/v1/recordings/{rec['id']}",
                env.admin).text
    events = [json.loads(x) for x in text.splitlines()[1:]]
    typed = "".join(e[2] for e in events if e[1] == "i")
    assert "echo typed-$((1+1))" in typed
    assert "typed-2" in "".join(e[2] for e in events if e[1] == "o")


def test_unauthenticated_limit_and_login_grace(env):
    user, tok, key, ws = env.user_with_ws("grace")
    held = []
    try:
        for _ in range(32):
            c = socket.create_connection(("127.0.0.1", env.ssh_port), 5)
            c.settimeout(10)
            assert c.recv(64).startswith(b"SSH-2.0-")
            held.append(c)
        # One too many: closed at once, before any banner.
        extra = socket.create_connection(("127.0.0.1", env.ssh_port), 5)
        extra.settimeout(5)
        assert extra.recv(64) == b""
        extra.close()
        t0 = time.monotonic()
        # The grace time (4 s) ends the silent ones.
        for c in held:
            try:
                while c.recv(4096):
                    pass
            except OSError:
                pass
        assert time.monotonic() - t0 < 15
    finally:
        for c in held:
            c.close()
    r = env.ssh(key, "grace", "echo", "in")
    assert r.returncode == 0 and r.stdout == "in\n", r.stderr
    env.audit(lambda e: e.get("type") == "ssh.auth" and
              e.get("details", {}).get("reason") == "login grace time over")
