"""End-to-end tests of `moat template` and `moat ws`: the real `moat`
binary against a real moatd running workspaces in Podman (the `env`
pattern of test_workspaces.py: podman_socket and base_image fixtures, moatd
started with --runtime-socket and --run-dir).

Covers: template create (every option, a startup script from a file) /
list (table and --json) / show / delete (refused without a terminal unless
--yes); ws create --wait reaching running, list, show (NAME and
OWNER/NAME, --json), logs (and logs --follow) holding the startup script's
output without escape sequences, stats, an `ws events` process started before the changes
that prints the state lines of the whole life and exits by itself once the
workspace is deleted; stop --wait, start --wait, restart --wait (which
waits for a real restart), delete --wait reaching gone; a template whose
image cannot be pulled making create --wait exit 1 with the reason; a
member's `ws create --owner other` failing with the API's 403 message, and
an administrator's succeeding.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import pytest

import moat_harness as mh
from test_cli import SANITIZER, Cli, admin_pw
from test_workspaces import Env, call

MEMBER_PW = "violet umbrella 7 orbit"

SCRIPT = ("#!/bin/sh\n"
          "echo \"hello-$((40+2)) from $(whoami)\"\n"
          "printf 'red\\033[31mALERT\\033[0m bell\\007 done\\n'\n")


@pytest.fixture(scope="module")
def moat_bin():
    exe = mh.binary("moat")
    if not exe.exists():
        pytest.skip(f"{exe} not built (set MOAT_BUILD_DIR)")
    return exe


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_socket, base_image, moat_bin):
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    tmp = tmp_path_factory.mktemp("cliws")
    data = tmp / "data"
    mh.moatd_init(data)
    run_dir = tmp / "run"
    procs = mh.ProcGroup(tmp / "logs")
    m = mh.Moatd(procs, data, extra_args=[
        "--runtime-socket", podman_socket.socket,
        "--run-dir", str(run_dir),
        "--reconcile-interval", "300ms",
        "--max-workspaces-per-user", "3",
        "--max-running-per-user", "2",
    ]).start()
    m.wait_for_log("workspaces ready", timeout=30)
    e = Env(m, run_dir, podman_socket.socket)
    e.tmp = tmp
    e.admin_cli = Cli(moat_bin, tmp / "admin-home")
    e.admin_cli.login(m)
    yield e
    e.delete_all()
    procs.stop_all()
    reports = procs.sanitizer_reports()
    assert not reports, reports[0][1]


def member(env, moat_bin):
    """A new member user, with their own logged-in CLI."""
    name, _tok = env.user(prefix="cli")
    cli = Cli(moat_bin, env.tmp / f"{name}-home")
    cli.login(env.m, name, "correct horse battery staple 7")
    return name, cli


def first_error(cp):
    lines = [l for l in cp.stderr.splitlines() if l.strip()]
    assert lines, cp
    return lines[0]


def no_controls(text):
    return not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)


class Events:
    """`moat ws events` (or another moat command) running in the
    background, its lines collected."""

    def __init__(self, cli, ref, args=("ws", "events")):
        self.proc = subprocess.Popen(
            [str(cli.exe), *args, ref], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=cli.env(),
            start_new_session=True)
        self.lines: list[str] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def text(self):
        return "".join(self.lines)

    def wait_for(self, needle, timeout=60):
        try:
            mh.wait_until(lambda: needle in self.text(), timeout,
                          what=f"{needle!r} in moat ws events")
        except mh.HarnessError as e:
            raise AssertionError(f"{e}; it printed:\n{self.text()}") \
                from None

    def finish(self, timeout=60):
        rc = self.proc.wait(timeout)
        self.t.join(5)
        err = self.proc.stderr.read()
        for pat in SANITIZER:
            assert pat not in err, err
        return rc, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# ------------------------------------------------------------------ tests

def test_templates(env, tmp_path):
    cli = env.admin_cli
    script = tmp_path / "start.sh"
    script.write_text(SCRIPT)
    cp = cli.run("template", "create", "clitmpl", "--image",
                 "localhost/moat/base", "--cpu", "1000", "--memory", "1024",
                 "--disk", "256", "--root-disk", "512", "--env", "FOO=bar=baz",
                 "--env", "EMPTY=", "--port", "8080", "--port", "3000",
                 "--idle-timeout", "2h", "--startup-script", script,
                 "--forbid-sudo", check=0)
    assert cp.stdout.strip() == ("Created template clitmpl (image "
                                 "localhost/moat/base:latest)")
    t = call(env.m, "GET", "/api/v1/templates/clitmpl", env.admin).json()
    assert t["cpu"] == 1000 and t["memory_mb"] == 1024
    assert t["disk_mb"] == 256 and t["root_disk_mb"] == 512
    assert t["env"] == {"FOO": "bar=baz", "EMPTY": ""}
    assert t["ports"] == [8080, 3000] and t["idle_timeout"] == 7200
    assert t["forbid_sudo"] is True and t["startup_script"] == SCRIPT

    table = cli.run("template", "list", check=0).stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "CPU", "MEMORY", "DISK",
                                "POLICY", "IDLE", "UPDATED"]
    row = [l for l in table[1:] if l.split()[0] == "clitmpl"][0].split()
    assert row[1:8] == ["localhost/moat/base:latest", "1000m", "1.0",
                        "GiB", "256.0", "MiB", "-"]
    assert row[8] == "2h"
    assert any(l.split()[0] == "base" for l in table[1:])
    listed = json.loads(cli.run("template", "list", "--json",
                                check=0).stdout)
    assert {x["name"] for x in listed} >= {"base", "clitmpl"}

    show = cli.run("template", "show", "clitmpl", check=0).stdout
    assert re.search(r"^image:\s+localhost/moat/base:latest$", show, re.M)
    assert re.search(r"^ports:\s+8080,3000$", show, re.M)
    assert re.search(r"^sudo:\s+forbidden$", show, re.M)
    assert re.search(r"^startup script: 3 lines$", show, re.M)
    # The script's escape characters are not sent to the terminal.
    assert "hello-$((40+2))" in show and no_controls(show)
    shown = json.loads(cli.run("template", "show", "clitmpl", "--json",
                               check=0).stdout)
    assert shown["startup_script"] == SCRIPT

    # Refusals: the server's message, one line, status 1.
    cp = cli.run("template", "create", "clitmpl", "--image",
                 "localhost/moat/base", check=1)
    assert re.match(r"moat: server said 409 ", first_error(cp)), cp.stderr
    cp = cli.run("template", "create", "evil", "--image",
                 "registry.example.com/x", check=1)
    assert "registry.example.com" in first_error(cp)
    cp = cli.run("template", "create", "bad", "--image", "localhost/x",
                 "--cpu", "5", check=1)
    assert "cpu" in first_error(cp)

    cli.run("template", "delete", "clitmpl", check=2)     # no terminal
    cp = cli.run("template", "delete", "clitmpl", "--yes", check=0)
    assert cp.stdout.strip() == "Deleted template clitmpl"
    cp = cli.run("template", "show", "clitmpl", check=1)
    assert first_error(cp).startswith("moat: server said 404 not_found")


def test_workspace_life(env, moat_bin):
    env.template("chatty", startup_script=SCRIPT)
    owner, cli = member(env, moat_bin)

    cp = cli.run("ws", "create", "lab", "--template", "chatty", "--wait",
                 check=0, timeout=120)
    out = cp.stdout
    assert out.splitlines()[0] == (f"Created workspace {owner}/lab "
                                   "(template chatty, state pending)")
    assert "STATE starting" in out and "STATE running" in out
    assert out.splitlines()[-1] == f"Workspace {owner}/lab is running"
    assert env.get(env.admin, owner, "lab").json()["state"] == "running"

    # The event stream of the whole life, from a second process.
    ev = Events(cli, "lab")
    try:
        ev.wait_for("STATE running")

        table = cli.run("ws", "list", check=0).stdout.splitlines()
        assert table[0].split() == ["NAME", "OWNER", "TEMPLATE", "STATE",
                                    "DESIRED", "REASON", "CREATED"]
        assert table[1].split()[:6] == ["lab", owner, "chatty", "running",
                                        "running", "-"]
        listed = json.loads(cli.run("ws", "list", "--json", check=0).stdout)
        assert [w["name"] for w in listed] == ["lab"]
        show = cli.run("ws", "show", "lab", check=0).stdout
        assert re.search(r"^state:\s+running \(desired running\)$", show,
                         re.M)
        assert re.search(rf"^owner:\s+{owner}$", show, re.M)
        assert re.search(r"^host key:\s+ssh-ed25519 ", show, re.M)
        doc = json.loads(cli.run("ws", "show", f"{owner}/lab", "--json",
                                 check=0).stdout)
        assert doc["name"] == "lab" and doc["template"] == "chatty"

        # Logs: the startup script's output, escape sequences removed.
        def logs():
            cp = cli.run("ws", "logs", "lab", check=0)
            return cp.stdout if "done" in cp.stdout else None
        text = mh.wait_until(logs, 30, interval=0.5, what="startup output")
        assert f"hello-42 from {owner}" in text
        assert "redALERT bell done" in text and no_controls(text)
        # Output lines carry the agent's time and source.
        ev.wait_for(f"startup: hello-42 from {owner}\n")
        # logs --follow keeps polling: it prints output and stays.
        follow = Events(cli, "lab", args=("ws", "logs", "--follow"))
        try:
            follow.wait_for("startup: redALERT bell done\n")
            assert follow.proc.poll() is None
            assert no_controls(follow.text())
        finally:
            follow.kill()

        st = cli.run("ws", "stats", "lab", check=0).stdout
        assert re.search(r"^memory:\s+[0-9.]+ [KMG]i?B", st, re.M), st
        assert re.search(r"^home disk:\s+.* of ", st, re.M), st
        assert json.loads(cli.run("ws", "stats", "lab", "--json",
                                  check=0).stdout)["memory_bytes"] > 0

        cp = cli.run("ws", "stop", "lab", "--wait", check=0, timeout=120)
        assert cp.stdout.splitlines()[0] == f"Stopping workspace {owner}/lab"
        assert "STATE stopping" in cp.stdout
        assert cp.stdout.splitlines()[-1] == f"Workspace {owner}/lab is stopped"
        # Only what followed the change: not the backlog's running.
        assert "STATE running" not in cp.stdout
        assert env.get(env.admin, owner, "lab").json()["state"] == "stopped"
        # Nothing to do: returns at once.
        cp = cli.run("ws", "stop", "lab", "--wait", check=0, timeout=30)
        assert cp.stdout.splitlines()[-1] == f"Workspace {owner}/lab is stopped"
        cp = cli.run("ws", "logs", "lab", check=1)
        assert "not running" in first_error(cp)

        cp = cli.run("ws", "start", f"{owner}/lab", "--wait", check=0,
                     timeout=120)
        assert "STATE starting" in cp.stdout and "STATE stopped" not in \
            cp.stdout
        assert cp.stdout.splitlines()[-1] == f"Workspace {owner}/lab is running"

        cp = cli.run("ws", "restart", "lab", "--wait", check=0, timeout=120)
        lines = cp.stdout.splitlines()
        assert "STATE stopping" in lines and "STATE starting" in lines
        assert lines.index("STATE starting") < lines.index("STATE running")
        assert lines[-1] == f"Workspace {owner}/lab is running"

        cli.run("ws", "delete", "lab", check=2)          # no terminal
        cp = cli.run("ws", "delete", "lab", "--wait", "--yes", check=0,
                     timeout=120)
        assert "STATE deleting" in cp.stdout
        assert cp.stdout.splitlines()[-1] == f"Deleted workspace {owner}/lab"
        assert env.get(env.admin, owner, "lab").status == 404

        # The events process ends by itself after the deletion.
        rc, err = ev.finish(30)
        assert rc == 0, err
    finally:
        ev.kill()
    text = ev.text()
    states = [l.split()[1].rstrip(":") for l in text.splitlines()
              if l.startswith("STATE ")]
    for s in ("pending", "starting", "running", "stopping", "stopped",
              "deleting", "deleted"):
        assert s in states, (s, states)
    assert states[-1] == "deleted"
    assert re.search(rf"^OUTPUT .*startup: hello-42 from {owner}$", text,
                     re.M), text
    assert re.search(r"^OUTPUT .*startup: redALERT bell done$", text, re.M)
    assert no_controls(text)
    cp = cli.run("ws", "show", "lab", check=1)
    assert first_error(cp).startswith("moat: server said 404 not_found")


def test_failure_is_reported(env, moat_bin):
    env.template("nopull", image="localhost/moat/does-not-exist:latest")
    owner, cli = member(env, moat_bin)
    cp = cli.run("ws", "create", "broken", "--template", "nopull", "--wait",
                 check=1, timeout=120)
    assert "STATE failed" in cp.stdout
    err = first_error(cp)
    assert err.startswith(f"moat ws create: workspace {owner}/broken "
                          "failed: "), cp.stderr
    assert env.get(env.admin, owner, "broken").json()["state"] == "failed"
    row = cli.run("ws", "list", check=0).stdout.splitlines()[1].split()
    assert row[:5] == ["broken", owner, "nopull", "failed", "running"]
    cli.run("ws", "delete", "broken", "--yes", "--wait", check=0,
            timeout=120)


def test_owner_rules(env, moat_bin):
    a, cli_a = member(env, moat_bin)
    b, cli_b = member(env, moat_bin)
    cp = cli_a.run("ws", "create", "x", "--owner", b, check=1)
    assert first_error(cp) == ("moat: server said 403 forbidden: only an "
                               "administrator may create a workspace for "
                               "someone else")
    cp = cli_a.run("ws", "list", "--owner", b, check=1)
    assert first_error(cp).startswith("moat: server said 403 forbidden")
    cp = cli_a.run("ws", "show", f"{b}/x", check=1)
    assert first_error(cp).startswith("moat: server said 404 not_found")
    cp = cli_a.run("ws", "create", "Bad_Name", check=1)
    assert first_error(cp).startswith("moat: server said 400 ")
    cp = cli_a.run("ws", "create", "y", "--template", "nope", check=1)
    assert "no such template" in first_error(cp)

    # An administrator may act for others.
    admin = env.admin_cli
    cp = admin.run("ws", "create", "given", "--owner", b, check=0)
    assert cp.stdout.startswith(f"Created workspace {b}/given ")
    assert [w["name"] for w in json.loads(cli_b.run(
        "ws", "list", "--json", check=0).stdout)] == ["given"]
    everyone = admin.run("ws", "list", "--all", check=0).stdout
    assert any(l.split()[:2] == ["given", b] for l in everyone.splitlines())
    mine = json.loads(admin.run("ws", "list", "--owner", b, "--json",
                                check=0).stdout)
    assert [w["owner"] for w in mine] == [b]
    admin.run("ws", "delete", f"{b}/given", "--yes", "--wait", check=0,
              timeout=120)
    assert env.get(env.admin, b, "given").status == 404
