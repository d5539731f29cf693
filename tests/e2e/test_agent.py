"""moat-agent for real: PID 1 of a Podman container shaped like a workspace
(user namespace, --network none, capabilities dropped, /run a tmpfs, the
host-owned read-only directory at /run/moat and the agent's writable one at
/run/moat-agent), driven from the host through agent_client.c by the test
tool moat-agentctl, as moatd will:

- STATUS says sshd is up and the startup script finished; DIAL 22 gives
  sshd's banner; a refused port gives a clear error;
- a real `ssh` through `ProxyCommand moat-agentctl dial DIR 22`, pinning the
  workspace's own host key, logs in as the user (uid 1000) with the proxy
  and template variables set, and cannot read the host key;
- SECRETS writes /run/secrets/NAME (0400, the user's), env-marked ones reach
  a new login's environment, and names no longer sent disappear;
- the startup script's output and the agent's events are read back by LOG;
- idle time grows, ACTIVITY and an open DIAL reset it;
- 127.0.0.1:3128 inside is refused while the egress socket is absent and
  relayed to it once it exists;
- SIGTERM (podman stop) ends the workspace promptly with status 0, and a
  restart of the same container keeps one user entry;
- as root inside: the agent socket replaced by a symlink to another host
  socket, a FIFO or a regular file is refused by the client without touching
  the target; writes into /run/moat fail.

Needs podman (runc) and moat's default workspace image (the base_image
fixture builds it when missing, as make image does); skipped without
podman. Containers are named agent-test-* and removed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import moat_harness as mh

IMAGE = "localhost/moat/base:latest"
# Root inside maps to BASE on the host (a range of the `containers` user's
# subordinate ids); the host-side files are chowned to it.
BASE = 2180251647
USER = "dev"
# What the agent and sshd need, no more: CHOWN (passwd/shadow, home,
# secrets), SETUID and SETGID (sshd, the startup script), SYS_CHROOT (sshd's
# privilege separation), KILL (SIGTERM to the user's processes on stop),
# NET_BIND_SERVICE (port 22). sudo works with these too.
CAPS = "CHOWN,SETUID,SETGID,SYS_CHROOT,KILL,NET_BIND_SERVICE"

STARTUP = """#!/bin/bash
echo "startup ran as $(id -u) in $PWD with proxy $HTTP_PROXY"
echo "template says $GREETING"
"""


@pytest.fixture(autouse=True)
def _workspace_image(base_image):
    """Every test runs the agent in the default workspace image."""
    assert base_image == IMAGE, base_image


def podman(*args: str, check: bool = True, timeout: float = 60
           ) -> subprocess.CompletedProcess:
    cp = subprocess.run(["podman", *args], capture_output=True, text=True,
                        timeout=timeout)
    if check and cp.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {cp.stderr}")
    return cp


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        self.ro = root / "ro"
        self.agent = root / "agent"
        self.home = root / "home"
        self.name = f"agent-test-{os.getpid()}"
        self.ctl = mh.binary("moat-agentctl")
        self.key = root / "access"

    def ctl_run(self, *args: str, input: bytes | None = None,
                timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.ctl), args[0], str(self.agent),
                               *args[1:]], input=input, capture_output=True,
                              timeout=timeout)

    def status(self) -> dict[str, int]:
        cp = self.ctl_run("status")
        assert cp.returncode == 0, cp.stderr.decode()
        return {k: int(v) for k, v in
                (line.split("=") for line in cp.stdout.decode().split())}

    def log(self) -> str:
        cp = self.ctl_run("log")
        assert cp.returncode == 0, cp.stderr.decode()
        return cp.stdout.decode(errors="replace")

    def ssh(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(self.key),
             "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}",
             "-o", "HostKeyAlias=workspace", "-o", "LogLevel=ERROR",
             "-o", f"ProxyCommand={self.ctl} dial {self.agent} 22",
             f"{USER}@workspace", command],
            capture_output=True, text=True, timeout=30)

    def exec_root(self, command: str) -> subprocess.CompletedProcess:
        return podman("exec", self.name, "/bin/sh", "-c", command,
                      check=False)

    def wait_up(self, timeout: float = 20) -> dict[str, int]:
        last: dict[str, int] = {}

        def up():
            nonlocal last
            cp = self.ctl_run("status")
            if cp.returncode != 0:
                return False
            last = {k: int(v) for k, v in
                    (line.split("=") for line in cp.stdout.decode().split())}
            return last["sshd_up"] == 1 and last["startup"] != 1

        mh.wait_until(up, timeout=timeout, what="agent ready")
        return last


def _chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)
    for p in path.rglob("*"):
        os.chown(p, uid, uid, follow_symlinks=False)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    agent_bin = mh.binary("moat-agent")
    mh.binary("moat-agentctl")
    root = tmp_path_factory.mktemp("agent")
    w = Workspace(root)
    for d in (w.ro, w.agent, w.home):
        d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    "host", "-f", str(w.ro / "ssh_host_ed25519_key")],
                   check=True)
    hostpub = (w.ro / "ssh_host_ed25519_key.pub").read_text().split()
    (w.ro / "ssh_host_ed25519_key.pub").unlink()
    (root / "known_hosts").write_text(f"workspace {hostpub[0]} {hostpub[1]}\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    "access", "-f", str(w.key)], check=True)
    shutil.copy(root / "access.pub", w.ro / "authorized_keys")
    (w.ro / "agent.conf").write_text(
        f"# written by moatd\nuser={USER}\nuid=1000\nsudo=1\nstartup=1\n"
        "proxy_port=3128\nenv.GREETING=hello \"quoted\" \\world\n"
        "env.EDITOR=vim\n")
    (w.ro / "startup.sh").write_text(STARTUP)
    shutil.copy(agent_bin, w.ro / "moat-agent")
    _chown_tree(w.ro, BASE)
    _chown_tree(w.agent, BASE)
    _chown_tree(w.home, BASE)
    for d in (w.ro, w.agent):
        d.chmod(0o755)
    (w.ro / "ssh_host_ed25519_key").chmod(0o600)
    (w.ro / "moat-agent").chmod(0o755)

    podman("rm", "-f", w.name, check=False)
    podman("run", "-d", "--name", w.name, "--runtime", "runc",
           "--network", "none",
           "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
           f"--userns=auto:size=65536,uidmapping=0:{BASE}:65536,"
           f"gidmapping=0:{BASE}:65536",
           "--cap-drop", "ALL", "--cap-add", CAPS,
           "--tmpfs", "/run:size=16m", "--tmpfs", "/run/secrets:size=1m",
           "-v", f"{w.ro}:/run/moat:ro", "-v", f"{w.agent}:/run/moat-agent",
           "-v", f"{w.home}:/home/{USER}",
           "-e", "ASAN_OPTIONS=detect_leaks=0",
           "--entrypoint", "/run/moat/moat-agent", IMAGE)
    try:
        w.wait_up()
        yield w
    finally:
        logs = podman("logs", w.name, check=False)
        podman("rm", "-f", "-t", "0", w.name, check=False)
        text = logs.stdout + logs.stderr
        assert "AddressSanitizer" not in text and "runtime error" not in text, \
            text[-4000:]


def test_status_and_banner(ws):
    st = ws.wait_up()
    assert st["version"] == 1
    assert st["sshd_up"] == 1
    assert st["startup"] == 2 and st["startup_exit"] == 0
    cp = ws.ctl_run("dial", "22", input=b"")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith(b"SSH-2.0-OpenSSH"), cp.stdout
    cp = ws.ctl_run("dial", "2", input=b"")
    assert cp.returncode == 1
    assert b"refused" in cp.stderr


def test_ssh_login(ws):
    cp = ws.ssh("id -u; id -un; echo \"P=$HTTP_PROXY\"; echo \"N=$NO_PROXY\";"
                " echo \"G=$GREETING\"; pwd; cat /run/moat/ssh_host_ed25519_key"
                " >/dev/null 2>&1 && echo HOSTKEY-READABLE; exit 0")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0] == "1000" and lines[1] == USER
    assert "P=http://127.0.0.1:3128" in lines
    assert "N=localhost,127.0.0.1,::1" in lines
    assert 'G=hello "quoted" \\world' in lines
    assert f"/home/{USER}" in lines
    assert "HOSTKEY-READABLE" not in cp.stdout
    # The home was given to the user once, with the image's skeleton.
    st = (ws.home).stat()
    assert st.st_uid == BASE + 1000
    assert (ws.home / ".bashrc").exists()
    # sudo=1: passwordless sudo works (no-new-privileges is not set here).
    cp = ws.ssh("sudo -n id -u")
    assert cp.returncode == 0 and cp.stdout.strip() == "0", cp.stderr


def test_secrets(ws, tmp_path):
    (tmp_path / "tok").write_bytes(b"ghp_s3cr3t'\"$x")
    (tmp_path / "npmrc").write_bytes(b"//registry/:_auth=abc\nline2\n")
    (tmp_path / "multi").write_bytes(b"has\nnewline")
    cp = ws.ctl_run("secrets", f"gh-token:GITHUB_TOKEN@{tmp_path / 'tok'}",
                    f"npmrc@{tmp_path / 'npmrc'}",
                    f"multi:MULTI@{tmp_path / 'multi'}")
    assert cp.returncode == 0, cp.stderr
    cp = ws.exec_root("stat -c '%n %a %u %g %s' /run/secrets/* | sort")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == [
        "/run/secrets/gh-token 400 1000 1000 14",
        "/run/secrets/multi 400 1000 1000 11",
        "/run/secrets/npmrc 400 1000 1000 28",
    ]
    # A new login sees the env-marked secret (sshd was reloaded); the one
    # with a newline is a file only.
    cp = ws.ssh("printf '%s|%s' \"$GITHUB_TOKEN\" \"${MULTI-unset}\";"
                " cat /run/secrets/npmrc >/dev/null && echo OK")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("ghp_s3cr3t'\"$x|unset"), cp.stdout
    assert "OK" in cp.stdout
    # Another user of the workspace cannot read them.
    cp = ws.exec_root("su -s /bin/sh nobody -c 'cat /run/secrets/npmrc'")
    assert cp.returncode != 0
    # Replacing the set removes what is no longer sent.
    cp = ws.ctl_run("secrets", f"npmrc@{tmp_path / 'npmrc'}")
    assert cp.returncode == 0, cp.stderr
    cp = ws.exec_root("ls /run/secrets")
    assert cp.stdout.split() == ["npmrc"]
    cp = ws.ssh("echo \"T=${GITHUB_TOKEN-unset}\"")
    assert cp.stdout.strip() == "T=unset"
    # No value ever reaches the log.
    log = ws.log()
    assert "ghp_s3cr3t" not in log and "_auth=abc" not in log
    assert "secrets updated: 3 file(s), 1 variable(s)" in log
    # A bad request gets an ERR, not a crash.
    cp = ws.ctl_run("secrets", f"../x@{tmp_path / 'tok'}")
    assert cp.returncode != 0


def test_log(ws):
    log = ws.log()
    assert "startup: startup ran as 1000 in /home/dev with proxy " \
        "http://127.0.0.1:3128" in log
    assert 'startup: template says hello "quoted" \\world' in log
    assert "moat-agent: sshd started" in log
    assert "sshd: Server listening on 127.0.0.1 port 22" in log
    # Reading from an offset gives the rest.
    cp = ws.ctl_run("log", "10")
    assert cp.returncode == 0
    assert cp.stdout.decode() == log[10:len(cp.stdout) + 10]


def test_idle_and_activity(ws):
    cp = ws.ctl_run("activity")
    assert cp.returncode == 0, cp.stderr
    assert ws.status()["idle_seconds"] == 0
    time.sleep(2.2)
    st = ws.status()
    assert st["idle_seconds"] >= 2 and st["connections"] == 0
    # An open DIAL keeps the workspace active.
    p = subprocess.Popen([str(ws.ctl), "dial", str(ws.agent), "22"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert p.stdout.read(8) == b"SSH-2.0-"
        time.sleep(1.2)
        st = ws.status()
        assert st["idle_seconds"] == 0 and st["connections"] == 1
    finally:
        p.stdin.close()
        p.wait(timeout=10)
    mh.wait_until(lambda: ws.status()["connections"] == 0, timeout=10,
                  what="relay closed")


def _serve_egress(path: Path, seen: list[bytes], stop: threading.Event):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    os.chown(path, BASE, BASE)
    srv.listen(4)
    srv.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = srv.accept()
        except socket.timeout:
            continue
        with c:
            c.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            seen.append(data)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    srv.close()


def test_egress(ws):
    req = ("exec 3<>/dev/tcp/127.0.0.1/3128 || exit 9; "
           "printf 'GET http://example.test/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'"
           " >&3; timeout 5 cat <&3")
    cp = ws.ssh(req)
    assert cp.stdout == "", cp.stdout        # closed: no egress socket yet
    assert "egress connection refused" in ws.log()
    sock = ws.ro / "egress.sock"
    seen: list[bytes] = []
    stop = threading.Event()
    t = threading.Thread(target=_serve_egress, args=(sock, seen, stop))
    t.start()
    try:
        mh.wait_until(sock.exists, timeout=5, what="egress socket")
        cp = ws.ssh(req)
        assert cp.stdout.endswith("hi"), (cp.stdout, cp.stderr)
        assert seen and seen[0].startswith(b"GET http://example.test/ ")
    finally:
        stop.set()
        t.join()
        sock.unlink()


def test_stop_and_restart(ws):
    t = time.monotonic()
    podman("stop", "-t", "10", ws.name)
    assert time.monotonic() - t < 6
    state = podman("inspect", "-f", "{{.State.ExitCode}}", ws.name)
    assert state.stdout.strip() == "0"
    podman("start", ws.name)
    ws.wait_up()
    cp = ws.exec_root(f"grep -c '^{USER}:' /etc/passwd /etc/group /etc/shadow")
    assert cp.stdout.split() == ["/etc/passwd:1", "/etc/group:1",
                                 "/etc/shadow:1"], cp.stdout
    assert "entry for dev written" not in ws.log()
    assert ws.ssh("id -u").stdout.strip() == "1000"


def test_root_inside_cannot_steer_the_host(ws, tmp_path):
    # Writes into the host-owned directory fail.
    for cmd in ("echo x >> /run/moat/agent.conf",
                "touch /run/moat/new",
                "rm -f /run/moat/authorized_keys",
                "ln -s /etc/passwd /run/moat/egress.sock"):
        cp = ws.exec_root(cmd)
        assert cp.returncode != 0, cmd
        assert "Read-only file system" in cp.stderr, cp.stderr
    assert (ws.ro / "authorized_keys").exists()

    # Another host socket the workspace would like moatd to talk to.
    other = tmp_path / "other.sock"
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(str(other))
    lsock.listen(4)
    lsock.setblocking(False)
    try:
        for swap in (f"ln -s {other} /run/moat-agent/agent.sock",
                     "mkfifo /run/moat-agent/agent.sock",
                     "echo x > /run/moat-agent/agent.sock"):
            cp = ws.exec_root(f"rm -f /run/moat-agent/agent.sock && {swap}")
            assert cp.returncode == 0, cp.stderr
            cp = ws.ctl_run("status")
            assert cp.returncode == 3, (swap, cp.stderr)
            assert b"refused" in cp.stderr
            with pytest.raises(BlockingIOError):
                lsock.accept()
        assert os.path.islink(ws.agent / "agent.sock") is False
    finally:
        lsock.close()


@pytest.mark.parametrize("conf,message", [
    ("user=root\nuid=1000\n", "user root exists in the image as system uid 0"),
    ("user=Bad\n", "bad user name"),
    ("user=dev\nenv.X=a\tb\n", "bad environment entry"),
])
def test_bad_configuration_stops_the_workspace(tmp_path, conf, message):
    ro, agent = tmp_path / "ro", tmp_path / "agent"
    ro.mkdir()
    agent.mkdir()
    (ro / "agent.conf").write_text(conf)
    shutil.copy(mh.binary("moat-agent"), ro / "moat-agent")
    for p in (ro, agent, ro / "agent.conf", ro / "moat-agent"):
        os.chown(p, BASE, BASE)
    ro.chmod(0o755)
    name = f"agent-test-{os.getpid()}-conf"
    podman("rm", "-f", name, check=False)
    try:
        cp = podman("run", "--name", name, "--runtime", "runc",
                    "--network", "none", "--ulimit", "nofile=4096:4096",
                    "--ulimit", "nproc=4096:4096",
                    f"--userns=auto:size=65536,uidmapping=0:{BASE}:65536,"
                    f"gidmapping=0:{BASE}:65536",
                    "--cap-drop", "ALL", "--cap-add", CAPS,
                    "--tmpfs", "/run:size=16m",
                    "-v", f"{ro}:/run/moat:ro", "-v", f"{agent}:/run/moat-agent",
                    "-e", "ASAN_OPTIONS=detect_leaks=0",
                    "--entrypoint", "/run/moat/moat-agent", IMAGE,
                    check=False)
        assert cp.returncode == 2, cp.stdout + cp.stderr
        assert message in cp.stdout + cp.stderr
        assert "AddressSanitizer" not in cp.stderr
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
