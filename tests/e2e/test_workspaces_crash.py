"""moatd killed with SIGKILL in the middle of workspace operations, then
restarted: every workspace converges to its desired state and nothing is
left behind (containers, mounts, loop devices, volume images, run
directories). Two moatd processes on one store never double-create.

Real Podman, real loop volumes; the same helpers as test_workspaces.
"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import moat_harness as mh
from test_workspaces import Env, call, containers_labelled


def start_moatd(procs, data, run_dir, sock, name="moatd", extra=()):
    m = mh.Moatd(procs, data, name=name, extra_args=[
        "--runtime-socket", sock, "--run-dir", str(run_dir),
        "--reconcile-interval", "300ms", *extra]).start()
    m.wait_for_log("workspaces ready", timeout=30)
    return m


def installation_of(data_dir):
    """The installation id labelled on this data directory's containers."""
    db = sqlite3.connect(Path(data_dir) / "moatd.db")
    try:
        row = db.execute("select body from docs where coll = "
                         "'installation'").fetchone()
    finally:
        db.close()
    return json.loads(row[0])["installation"]


def host_leftovers(env, live_ids):
    """What exists on the host for workspace ids not in live_ids (the
    runtime is shared: only this installation's containers count)."""
    left = []
    inst = installation_of(env.m.data_dir)
    names = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=moat.installation={inst}",
         "--format", "{{.Names}}"], capture_output=True, text=True,
        check=True).stdout.split()
    for c in names:
        if c.removeprefix("moat-") not in live_ids:
            left.append(("container", c))
    vols = env.m.data_dir / "volumes"
    for f in vols.glob("*.img"):
        if f.stem not in live_ids:
            left.append(("volume", f.name))
    wsdir = env.run_dir / "ws"
    if wsdir.exists():
        for d in wsdir.iterdir():
            if d.name not in live_ids:
                left.append(("run dir", d.name))
    mounts = Path("/proc/self/mountinfo").read_text()
    for line in mounts.splitlines():
        mp = line.split()[4]
        if mp.startswith(str(env.run_dir)):
            parts = Path(mp).relative_to(env.run_dir).parts
            if len(parts) >= 2 and parts[1] not in live_ids:
                left.append(("mount", mp))
    loops = subprocess.run(["losetup", "-a"], capture_output=True,
                           text=True).stdout
    for line in loops.splitlines():
        if str(vols) in line and not any(i in line for i in live_ids):
            left.append(("loop", line))
    return left


@pytest.fixture
def crash_env(tmp_path, podman_socket, base_image):
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    data = tmp_path / "data"
    mh.moatd_init(data)
    procs = mh.ProcGroup(tmp_path / "logs")
    run_dir = tmp_path / "run"
    m = start_moatd(procs, data, run_dir, podman_socket.socket)
    env = Env(m, run_dir, podman_socket.socket)
    env.procs = procs
    yield env
    try:
        if env.m.proc and env.m.proc.alive():
            r = call(env.m, "GET", "/api/v1/workspaces?owner=*", env.admin)
            for w in r.json().get("workspaces", []):
                env.action(env.admin, w["owner"], w["name"], "delete")
            mh.wait_until(lambda: call(env.m, "GET",
                                       "/api/v1/workspaces?owner=*",
                                       env.admin).json()["workspaces"] == [],
                          60, what="cleanup")
    finally:
        procs.stop_all()


def kill_and_restart(env, delay):
    time.sleep(delay)
    env.m.proc.signal(signal.SIGKILL)
    env.m.proc.wait(10)
    env.m.start()
    env.m.wait_for_log("workspaces ready", timeout=30)


@pytest.mark.parametrize("delay", [0.0, 0.4, 1.0])
def test_kill9_during_create_start_stop_delete_converges(crash_env, delay):
    env = crash_env
    owner, tok = env.user()

    # create (the reconciler is starting it when moatd dies)
    r = call(env.m, "POST", "/api/v1/workspaces", tok,
             {"name": "crashy", "template": "base"})
    assert r.status == 201, r.text
    wid = r.json()["id"]
    kill_and_restart(env, delay)
    env.wait_state(tok, owner, "crashy", "running")
    assert host_leftovers(env, {wid}) == []

    # stop
    env.action(tok, owner, "crashy", "stop")
    kill_and_restart(env, delay)
    env.wait_state(tok, owner, "crashy", "stopped")
    assert f"moat-{wid}" not in containers_labelled()
    assert wid not in Path("/proc/self/mountinfo").read_text()

    # start
    env.action(tok, owner, "crashy", "start")
    kill_and_restart(env, delay)
    env.wait_state(tok, owner, "crashy", "running")

    # delete
    env.action(tok, owner, "crashy", "delete")
    kill_and_restart(env, delay)
    env.wait_state(tok, owner, "crashy", "gone")
    assert host_leftovers(env, set()) == []
    assert not any(e["type"] == "workspace.failed"
                   for e in env.m.audit_events()), [
        e for e in env.m.audit_events() if e["type"] == "workspace.failed"]


def test_orphans_are_removed(crash_env):
    """A container labelled as this installation's whose workspace the
    store does not know, and a stray run directory, are removed and
    audited; another installation's container is left alone."""
    env = crash_env
    owner, tok = env.user()
    ws = env.create(tok, "real")
    inst = subprocess.run(
        ["podman", "inspect", "--format",
         '{{index .Config.Labels "moat.installation"}}', f"moat-{ws['id']}"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", inst), inst
    fake, foreign = "ab" * 16, "cd" * 16
    for wid, label in ((fake, inst), (foreign, "ef" * 16)):
        subprocess.run(["podman", "create", "--name", f"moat-{wid}",
                        "--label", "moat.managed=1",
                        "--label", f"moat.workspace={wid}",
                        "--label", f"moat.installation={label}",
                        "localhost/moat/base:latest", "true"], check=True,
                       capture_output=True)
    (env.run_dir / "ws" / fake / "ro").mkdir(parents=True)
    try:
        mh.wait_until(lambda: f"moat-{fake}" not in containers_labelled() and
                      not (env.run_dir / "ws" / fake).exists(), 20,
                      what="orphans removed")
        assert any(e["type"] == "workspace.orphan_removed" and
                   e.get("workspace") == fake for e in env.m.audit_events())
        time.sleep(1)
        assert f"moat-{foreign}" in containers_labelled()
        assert env.get(tok, owner, "real").json()["state"] == "running"
    finally:
        subprocess.run(["podman", "rm", "-f", f"moat-{foreign}"],
                       capture_output=True)


def test_two_moatd_on_one_store_never_double_create(crash_env):
    env = crash_env
    # Each moatd keeps its own audit chain and collector socket.
    other = env.m.data_dir.parent / "second"
    other.mkdir()
    second = start_moatd(env.procs, env.m.data_dir, env.run_dir,
                         env.podman_sock, name="moatd-2", extra=(
                             "--audit-file", str(other / "audit.log"),
                             "--audit-collector", str(other / "audit.sock")))
    owner, tok = env.user()
    names = ["pa", "pb"]
    for i, n in enumerate(names):
        target = env.m if i % 2 == 0 else second
        r = call(target, "POST", "/api/v1/workspaces", tok,
                 {"name": n, "template": "base"})
        assert r.status == 201, r.text
    ids = set()
    for n in names:
        ws = env.wait_state(tok, owner, n, "running")
        ids.add(ws["id"])
    mine = {c for c in containers_labelled()
            if c.removeprefix("moat-") in ids}
    assert len(mine) == 2
    assert not any(e["type"] == "workspace.failed"
                   for e in env.m.audit_events())
    second.stop()
