"""End-to-end tests of `moat ssh`, `moat config-ssh`, `moat port-forward`,
`moat recording` and `moat session`: the real `moat` binary and the real
OpenSSH client against a real moatd with its SSH gateway and workspaces in
Podman (the fixture pattern of test_ssh_gateway.py).

Each CLI user has its own HOME and XDG_CONFIG_HOME. OpenSSH finds ~/.ssh
through the password database, not $HOME, so the tests hand ssh the
user's key through an ssh-agent (SSH_AUTH_SOCK) and name the config file
written by `moat config-ssh` with -F.

Covers: GET /api/v1/ssh/info (host, port, the public halves of both host
keys, for any logged-in user); `moat ssh WS -- CMD` printing the output and
passing the exit status, with moat's known_hosts file (0600) holding the
pinned keys, and strict checking proven by a wrong key making the same ssh
command fail; `moat config-ssh` writing a block that plain `ssh moat-WS`
uses even after a user's "Host *" section setting another user and
disabling checks, keeping the rest of the file byte for byte (Include
line, CRLF-free comments, a file without a final newline), idempotent,
--dry-run writing nothing, --remove giving back the original, a symlinked
config refused; `moat port-forward` to an HTTP server inside the
workspace checked with curl; an interactive session on a pty (driven by
`script -qc`) recorded by the gateway, listed by `moat recording list`
and fetched by `moat recording get` (stdout and -o FILE) and replayed by
`asciinema cat`; `moat session list` (table and --json) showing a live
session and `moat session end` closing it (refused without --yes when
there is no terminal, refused for members).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import moat_harness as mh
from test_cli import SANITIZER, Cli
from test_recordings import asciinema_cat
from test_ssh_gateway import start_http_in
from test_workspaces import GOOD_PW, Env, call


@pytest.fixture(scope="module")
def moat_bin():
    exe = mh.binary("moat")
    if not exe.exists():
        pytest.skip(f"{exe} not built (set MOAT_BUILD_DIR)")
    return exe


class User:
    """A member with a logged-in CLI, an SSH key held by an ssh-agent and
    registered with `moat sshkey add`, and a running workspace."""

    def __init__(self, env, moat_bin, ws):
        self.name, self.token = env.user(prefix="ssh")
        self.home = env.tmp / f"{self.name}-home"
        self.cli = Cli(moat_bin, self.home)
        self.cli.login(env.m, self.name, GOOD_PW)
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700)
        self.key = ssh / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        f"{self.name}@laptop", "-f", str(self.key)],
                       check=True)
        self.agent_sock = env.tmp / f"{self.name}-agent.sock"
        out = subprocess.run(["ssh-agent", "-a", str(self.agent_sock)],
                             capture_output=True, text=True, check=True)
        self.agent_pid = int(re.search(r"SSH_AGENT_PID=(\d+)",
                                       out.stdout).group(1))
        subprocess.run(["ssh-add", "-q", str(self.key)], check=True,
                       capture_output=True, env=self.env())
        self.cli.run("sshkey", "add", check=0)    # ~/.ssh/id_ed25519.pub
        self.ws = ws
        self.cli.run("ws", "create", ws, "--wait", check=0, timeout=180)
        self.ws_doc = env.get(self.token, self.name, ws).json()

    def env(self, extra=None):
        e = self.cli.env({"SSH_AUTH_SOCK": str(self.agent_sock)})
        if extra:
            e.update(extra)
        return e

    def moat(self, *args, check=None, timeout=90, input=None):
        return self.cli.run(*args, env={"SSH_AUTH_SOCK":
                                        str(self.agent_sock)},
                            check=check, timeout=timeout, input=input)

    def popen(self, *args, **kw):
        return subprocess.Popen([str(self.cli.exe), *args], env=self.env(),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True, **kw)

    def close(self):
        os.kill(self.agent_pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_socket, base_image, moat_bin):
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    tmp = tmp_path_factory.mktemp("clissh")
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
    ]).start()
    m.wait_for_log("workspaces ready", timeout=30)
    e = Env(m, run_dir, podman_socket.socket)
    e.tmp = tmp
    e.ssh_port = ssh_port
    e.admin_cli = Cli(moat_bin, tmp / "admin-home")
    e.admin_cli.login(m)
    e.users = []
    yield e
    for u in e.users:
        u.close()
    e.delete_all()
    procs.stop_all()
    reports = procs.sanitizer_reports()
    assert not reports, reports[0][1]


@pytest.fixture(scope="module")
def dev(env, moat_bin):
    """One member with the workspace "dev", shared by the tests."""
    u = User(env, moat_bin, "dev")
    env.users.append(u)
    return u


def host_pub(env, name):
    return subprocess.run(["ssh-keygen", "-y", "-f",
                           str(env.m.secrets / name)], capture_output=True,
                          text=True, check=True).stdout.split()[:2]


# ------------------------------------------------------------------ tests

def test_ssh_info_api(env, dev):
    r = call(env.m, "GET", "/api/v1/ssh/info", dev.token)
    assert r.status == 200, r.text
    info = r.json()
    assert info["host"] == "127.0.0.1" and info["port"] == env.ssh_port
    want = [" ".join(host_pub(env, "ssh-host-ed25519.key")),
            " ".join(host_pub(env, "ssh-host-ecdsa.key"))]
    assert info["host_keys"] == want
    assert want[1].startswith("ecdsa-sha2-nistp256 ")
    assert "PRIVATE" not in r.text
    assert call(env.m, "GET", "/api/v1/ssh/info").status == 401


def test_moat_ssh_runs_command_with_pinned_key(env, dev):
    r = dev.moat("ssh", "dev", "--", "echo", "hi")
    assert r.returncode == 0, r.stderr + env.m.proc.tail(40)
    assert r.stdout == "hi\n"
    # The pinned keys, in moat's own known_hosts file, 0600.
    kh = dev.cli.xdg / "moat" / "known_hosts"
    assert (kh.stat().st_mode & 0o777) == 0o600
    lines = kh.read_text().splitlines()
    pat = f"[127.0.0.1]:{env.ssh_port}"
    assert lines == [f"{pat} {' '.join(host_pub(env, n))}" for n in
                     ("ssh-host-ed25519.key", "ssh-host-ecdsa.key")]
    # ssh's exit status is moat's; stdin reaches the command.
    r = dev.moat("ssh", "dev", "--", "exit 7")
    assert r.returncode == 7, r.stderr
    r = dev.moat("ssh", "dev", "--", "cat; id -un", input="ping\n")
    assert r.stdout == f"ping\n{dev.name}\n", r.stderr
    # --dry-run: the command, with strict checking against that file.
    r = dev.moat("ssh", "dev", "--dry-run", "--", "echo", "dry", check=0)
    argv = r.stdout.strip()
    assert "StrictHostKeyChecking=yes" in argv
    assert f"UserKnownHostsFile=\"{kh}\"" in argv.replace("'", "")
    assert argv.endswith(f"-- 127.0.0.1 echo dry")
    # Strict checking is real: with another key in the file, the very
    # same ssh command is refused before anything runs.
    cmd = ["ssh", "-p", str(env.ssh_port), "-l", "dev",
           "-o", f"UserKnownHostsFile={kh}",
           "-o", "GlobalKnownHostsFile=/dev/null",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
           "--", "127.0.0.1", "echo", "reached"]
    ok = subprocess.run(cmd, capture_output=True, text=True,
                        env=dev.env(), timeout=60)
    assert ok.stdout == "reached\n", ok.stderr
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-f", str(env.tmp / "impostor")], check=True)
    del other
    fake = (env.tmp / "impostor.pub").read_text().split()[:2]
    kh.write_text(f"{pat} {' '.join(fake)}\n")
    bad = subprocess.run(cmd, capture_output=True, text=True,
                         env=dev.env(), timeout=60)
    assert bad.returncode == 255 and "reached" not in bad.stdout
    assert "Host key verification failed" in bad.stderr, bad.stderr
    # moat ssh writes the server's keys back.
    r = dev.moat("ssh", "dev", "--", "echo", "again")
    assert r.stdout == "again\n", r.stderr
    assert kh.read_text().splitlines() == lines


def test_moat_ssh_errors(env, dev):
    r = dev.moat("ssh", "nope", "--", "true")
    assert r.returncode == 255
    assert "no such workspace" in r.stderr, r.stderr
    r = dev.moat("ssh", "Bad_Name", check=2)
    assert r.stderr.startswith("moat ssh: 'Bad_Name' is not a workspace")
    r = dev.moat("ssh", "dev", "extra", check=2)
    r = dev.moat("port-forward", "dev", "80:http", check=2)
    # Another user's workspace: the gateway's answer, the same as none.
    r = dev.moat("ssh", "admin/dev", "--", "true")
    assert r.returncode == 255 and "no such workspace" in r.stderr


def test_config_ssh_then_plain_ssh(env, dev):
    cfg = dev.home / ".ssh" / "config"
    # A user's config: an Include, a "Host *" that would set another user
    # and turn checking off, another host, no newline at the end.
    original = ("# mine\nInclude /nonexistent/moat-test/*.conf\n"
                "ServerAliveInterval 15\n\n"
                "Host *\n    User nobody\n    StrictHostKeyChecking no\n"
                "    UserKnownHostsFile /dev/null\n"
                "Host other\n  HostName 192.0.2.1")
    cfg.write_text(original)
    cfg.chmod(0o600)
    r = dev.moat("config-ssh", "--dry-run", check=0)
    assert "Host moat-dev\n" in r.stdout
    assert cfg.read_text() == original          # nothing written
    r = dev.moat("config-ssh", check=0)
    assert r.stdout.startswith("Wrote 1 host entry to"), r.stdout
    text = cfg.read_text()
    begin = "# --- BEGIN moat (managed by moat config-ssh; edits here " \
        "are replaced) ---\n"
    assert text.startswith("# mine\nInclude /nonexistent/moat-test/*.conf\n"
                           "ServerAliveInterval 15\n\n" + begin)
    assert text.endswith("# --- END moat ---\nHost *\n    User nobody\n"
                         "    StrictHostKeyChecking no\n"
                         "    UserKnownHostsFile /dev/null\n"
                         "Host other\n  HostName 192.0.2.1")
    assert "Host moat-dev\n  HostName 127.0.0.1\n" \
        f"  Port {env.ssh_port}\n  User dev\n" in text
    assert (cfg.stat().st_mode & 0o777) == 0o600
    # Plain ssh with that file (ssh finds ~ through the password database,
    # hence -F): our entry wins over "Host *".
    r = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes",
                        "moat-dev", "echo", "ok"], capture_output=True,
                       text=True, env=dev.env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    g = subprocess.run(["ssh", "-F", str(cfg), "-G", "moat-dev"],
                       capture_output=True, text=True, check=True).stdout
    assert "stricthostkeychecking true" in g
    assert "user dev\n" in g
    # Idempotent: the same file, not even rewritten.
    st = cfg.stat()
    r = dev.moat("config-ssh", check=0)
    assert "is up to date" in r.stdout
    assert cfg.read_text() == text and cfg.stat().st_ino == st.st_ino
    # A second workspace: a second entry, the rest unchanged.
    dev.moat("ws", "create", "api", check=0)
    r = dev.moat("config-ssh", check=0)
    assert "moat-api moat-dev" in r.stdout
    text2 = cfg.read_text()
    assert "Host moat-api\n" in text2 and "Host moat-dev\n" in text2
    assert text2.endswith("Host other\n  HostName 192.0.2.1")
    # --remove gives back the file as it was.
    r = dev.moat("config-ssh", "--remove", check=0)
    assert cfg.read_text() == original
    dev.moat("ws", "delete", "api", "--yes", check=0)
    # A symbolic link is refused, the target untouched.
    real = dev.home / "dotfiles-ssh-config"
    real.write_text(original)
    real.chmod(0o600)
    cfg.unlink()
    cfg.symlink_to(real)
    r = dev.moat("config-ssh", check=1)
    assert "symbolic link" in r.stderr and str(cfg) in r.stderr
    assert real.read_text() == original and cfg.is_symlink()
    # --ssh-config names the real file.
    r = dev.moat("config-ssh", "--ssh-config", str(real), check=0)
    assert "Host moat-dev" in real.read_text()
    cfg.unlink()
    # A file others may write is refused.
    cfg.write_text(original)
    cfg.chmod(0o666)
    r = dev.moat("config-ssh", check=1)
    assert "writable by group or others" in r.stderr
    assert cfg.read_text() == original
    cfg.unlink()
    # No file and no ~/.ssh: both are created.
    (dev.home / ".ssh" / "id_ed25519").rename(env.tmp / "kept-key")
    (dev.home / ".ssh" / "id_ed25519.pub").rename(env.tmp / "kept-key.pub")
    (dev.home / ".ssh").rmdir()
    r = dev.moat("config-ssh", check=0)
    assert (dev.home / ".ssh").stat().st_mode & 0o777 == 0o700
    assert cfg.read_text().startswith(begin)


def test_port_forward(env, dev):
    start_http_in(env, dev.ws_doc, dev.name, port=8000)
    lport = mh.free_port()
    p = dev.popen("port-forward", "dev", f"{lport}:8000")
    try:
        mh.wait_until(lambda: mh.port_open(lport) or p.poll() is not None,
                      30, what="the local port listening")
        assert p.poll() is None, p.stderr.read()
        for _ in range(2):
            r = subprocess.run(["curl", "-s", "--max-time", "10",
                                f"http://127.0.0.1:{lport}/"],
                               capture_output=True, text=True)
            assert r.stdout == "hello moat\n", r
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert f"Forwarding 127.0.0.1:{lport} to port 8000 in workspace dev" \
        in err
    for pat in SANITIZER:
        assert pat not in err
    # Only on loopback here.
    r = dev.moat("port-forward", "dev", "9000:80", "--dry-run", check=0)
    assert "-N" in r.stdout and "127.0.0.1:9000:127.0.0.1:80" in r.stdout


def test_recording_of_pty_session(env, dev):
    # An interactive shell on a pty: script gives moat (and ssh) one.
    cmd = f"{dev.cli.exe} ssh dev"
    p = subprocess.Popen(["script", "-qec", cmd, "/dev/null"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dev.env(),
                         start_new_session=True)
    time.sleep(3)   # let the shell start: typed-ahead input is fine too
    out, err = p.communicate(b"echo mark-$((6*7))\nexit 3\n", timeout=60)
    assert b"mark-42" in out, (out, err)
    assert p.returncode == 3, (out, err)
    # The admin lists it ...
    def ended():
        r = env.admin_cli.run("recording", "list", "--user", dev.name,
                              "--json", check=0)
        return [x for x in json.loads(r.stdout) if x.get("ended_at")]
    recs = mh.wait_until(ended, 20, what="the recording ended")
    rid = recs[0]["id"]
    assert recs[0]["workspace"] == "dev" and recs[0]["owner"] == dev.name
    r = env.admin_cli.run("recording", "list", "--workspace",
                          f"{dev.name}/dev", check=0)
    assert rid in r.stdout and "ID" in r.stdout.splitlines()[0]
    r = env.admin_cli.run("recording", "list", "--workspace", "dev",
                          "--json", check=0)
    assert rid not in r.stdout    # "dev" alone is the admin's own
    # ... fetches it to stdout and to a file, and replays it.
    text = env.admin_cli.run("recording", "get", rid, check=0).stdout
    head = json.loads(text.splitlines()[0])
    assert head["version"] == 2
    cast = env.tmp / "sub" / "session.cast"
    cast.parent.mkdir()
    r = env.admin_cli.run("recording", "get", rid, "-o", cast, check=0)
    assert cast.read_text() == text
    assert (cast.stat().st_mode & 0o777) == 0o600
    assert sorted(x.name for x in cast.parent.iterdir()) == ["session.cast"]
    played = asciinema_cat(cast)
    assert b"mark-42" in played
    # A member may not read recordings; a bad id is a usage error.
    r = dev.moat("recording", "get", rid, check=1)
    assert "403" in r.stderr
    env.admin_cli.run("recording", "get", "not-an-id", check=2)
    r = env.admin_cli.run("recording", "get", "0" * 32, "-o",
                          env.tmp / "none.cast", check=1)
    assert "404" in r.stderr and not (env.tmp / "none.cast").exists()
    ev = mh.wait_until(lambda: [e for e in env.m.audit_events()
                                if e.get("type") == "recording.read"], 10,
                       what="recording.read audited")
    assert ev


def test_session_list_and_end(env, dev):
    p = dev.popen("ssh", "dev", "--", "sleep 60")
    try:
        def live():
            r = env.admin_cli.run("session", "list", "--json", check=0)
            return [s for s in json.loads(r.stdout)
                    if s.get("user") == dev.name and s["authenticated"]]
        s = mh.wait_until(live, 30, what="the live session")[0]
        r = env.admin_cli.run("session", "list", check=0)
        row = [l for l in r.stdout.splitlines() if s["id"] in l]
        assert row and f"{dev.name}/dev" in row[0] and dev.name in row[0]
        assert r.stdout.splitlines()[0].split()[:3] == \
            ["ID", "USER", "WORKSPACE"]
        # Members may not; without a terminal --yes is required.
        r = dev.moat("session", "list", check=1)
        assert "403" in r.stderr
        r = env.admin_cli.run("session", "end", s["id"], check=2)
        assert "--yes" in r.stderr
        assert p.poll() is None
        r = env.admin_cli.run("session", "end", "nosuch", "--yes", check=1)
        assert "no live session" in r.stderr
        t0 = time.monotonic()
        r = env.admin_cli.run("session", "end", s["id"], "--yes", check=0)
        assert r.stdout.startswith(f"Ended session {s['id']}")
        out, err = p.communicate(timeout=15)
        assert time.monotonic() - t0 < 10
        assert p.returncode != 0
        assert "ended by an administrator" in err, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    r = env.admin_cli.run("session", "list", "--json", check=0)
    assert s["id"] not in [x["id"] for x in json.loads(r.stdout)]


# ------------------------------------------- without workspaces or Podman

def test_help_everywhere(moat_bin, tmp_path):
    cli = Cli(moat_bin, tmp_path / "home")
    top = cli.run("--help", check=0).stdout
    for group in ("ssh", "port-forward", "config-ssh", "recording",
                  "session"):
        assert re.search(rf"^  {group} ", top, re.M), top
        assert "usage: moat " + group in cli.run(group, "--help",
                                                 check=0).stdout
        assert "usage: moat " + group in cli.run("help", group,
                                                 check=0).stdout
    for group, subs in {"recording": ("list", "get"),
                        "session": ("list", "end")}.items():
        for sub in subs:
            assert "usage: moat " + group in cli.run(group, sub, "--help",
                                                     check=0).stdout
    cli.run("recording", "frob", check=2)
    cli.run("session", check=2)
    # Not logged in: one clear line, nothing run.
    r = cli.run("ssh", "dev", "--", "true", check=1)
    assert len(r.stderr.strip().splitlines()) == 1


def test_gateway_address_setting_and_gateway_off(moatd_factory, moat_bin,
                                                 tmp_path):
    # ssh-public-address names what clients dial (here a wildcard: the
    # API's host); the gateway itself listens elsewhere.
    m = moatd_factory(extra_args=("--ssh-public-address", "0.0.0.0:2200"))
    cli = Cli(moat_bin, tmp_path / "a")
    cli.login(m)
    r = call(m, "GET", "/api/v1/ssh/info", admin_token(m))
    assert r.status == 200 and r.json()["host"] == "0.0.0.0" and \
        r.json()["port"] == 2200, r.text
    r = cli.run("ssh", "x", "--dry-run", "--", "true", check=0)
    assert re.search(r"^ssh -p 2200 -l x .* -- 127\.0\.0\.1 true$",
                     r.stdout), r.stdout
    r = cli.run("config-ssh", "--dry-run", check=0)
    assert "no workspaces yet" in r.stdout
    assert not (tmp_path / "a" / ".ssh").exists()
    m.stop()
    # No gateway: the API says so, and so does moat.
    m2 = moatd_factory(extra_args=("--ssh-listen", ""))
    cli2 = Cli(moat_bin, tmp_path / "b")
    cli2.login(m2)
    r = cli2.run("ssh", "x", "--", "true", check=1)
    assert "SSH gateway is turned off" in r.stderr, r.stderr
    r = cli2.run("config-ssh", check=1)
    assert "SSH gateway is turned off" in r.stderr


def admin_token(m):
    from test_cli import admin_pw
    r = call(m, "POST", "/api/v1/auth/login", body={
        "username": "admin", "password": admin_pw(m)})
    assert r.status == 200, r.text
    return r.json()["token"]
