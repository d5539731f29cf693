"""End-to-end test of `moatd backup` and `moatd restore`.

A backup is taken while moatd runs and keeps writing (users created in a
loop); moatd is stopped, the backup restored into a fresh data directory and
a new moatd started on it: the member logs in, their API token works, their
SSH key and personal secret are listed, and `moat audit verify` accepts the
restored chain with the restored public key. A backup with one changed file
is refused by restore, which names the file and leaves nothing behind.
With real Podman workspaces: a running workspace's home volume, written to
during the backup, is copied frozen (e2fsck finds it clean) and sparse, and
after the original installation is gone the restored moatd starts it again
with its files intact while a stopped one stays stopped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

import moat_harness as mh

from test_api import GOOD_PW, call, ssh_keygen, token_of


def run(*args, timeout=60):
    return subprocess.run([str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=mh.child_env())


def test_backup_while_running_and_restore(moatd_factory, moatd_data,
                                          tmp_path):
    m = moatd_factory()
    moatd = mh.binary("moatd")
    admin = token_of(m, "admin", (moatd_data / "initial-admin-password")
                     .read_text().strip())
    r = call(m, "POST", "/api/v1/users", admin,
             {"username": "nina", "password": GOOD_PW, "role": "member"})
    assert r.status == 201, r.text
    nina = token_of(m, "nina", GOOD_PW)
    r = call(m, "POST", "/api/v1/tokens", nina, {"name": "laptop"})
    assert r.status == 201, r.text
    api_token = r.json()["token"]
    pub, fp = ssh_keygen(tmp_path, "nina", "-t", "ed25519")
    r = call(m, "POST", "/api/v1/ssh-keys", nina, {"name": "laptop",
                                                   "public_key": pub})
    assert r.status == 201, r.text
    secret_value = "s3cr3t-value-for-backup-test"
    r = call(m, "PUT", "/api/v1/secrets/github", nina,
             {"value": secret_value})
    assert r.status == 201, r.text

    # moatd keeps writing (store and audit chain) while the backup runs.
    stop = threading.Event()
    made = []

    def writer():
        i = 0
        while not stop.is_set():
            rr = call(m, "POST", "/api/v1/users", admin,
                      {"username": f"bulk{i}", "password": GOOD_PW,
                       "role": "member"})
            if rr.status == 201:
                made.append(i)
            i += 1

    th = threading.Thread(target=writer)
    th.start()
    try:
        mh.wait_until(lambda: len(made) >= 2, 30, what="writes started")
        out = tmp_path / "backup"
        cp = run(moatd, "backup", "--data-dir", moatd_data, out)
        before_stop = len(made)
    finally:
        stop.set()
        th.join(60)
    assert cp.returncode == 0, cp.stderr
    assert "private keys" in cp.stdout
    # No key material on the terminal.
    for f in (moatd_data / "secrets").iterdir():
        if f.name.endswith((".pem", ".key")):
            body = f.read_text().splitlines()
            assert not any(line in cp.stdout + cp.stderr
                           for line in body[1:-1] if len(line) > 20)
    assert secret_value not in cp.stdout + cp.stderr
    assert (out.stat().st_mode & 0o777) == 0o700
    for f in out.rglob("*"):
        want = 0o700 if f.is_dir() else 0o600
        assert (f.stat().st_mode & 0o777) == want, f
    assert before_stop >= 2
    m.stop()

    # An existing target is refused.
    cp = run(moatd, "restore", out, "--data-dir", moatd_data)
    assert cp.returncode == 1 and "exists" in cp.stderr

    new = tmp_path / "restored"
    cp = run(moatd, "restore", out, "--data-dir", new)
    assert cp.returncode == 0, cp.stderr
    assert (new / "secrets" / "..data").is_symlink()
    assert (new / "secrets" / "tls.key").is_symlink()

    m2 = moatd_factory(data_dir=new)
    nina2 = token_of(m2, "nina", GOOD_PW)
    me = call(m2, "GET", "/api/v1/users/me", api_token)
    assert me.status == 200 and me.json()["auth"] == "token", me.text
    keys = call(m2, "GET", "/api/v1/ssh-keys", nina2).json()["ssh_keys"]
    assert [k["fingerprint"] for k in keys] == [fp]
    secrets = call(m2, "GET", "/api/v1/secrets", nina2).json()["secrets"]
    assert [s["name"] for s in secrets] == ["github"]
    # Users created by the writer before the backup started are there.
    admin2 = call(m2, "POST", "/api/v1/auth/login", body={
        "username": "admin", "password": (moatd_data /
                                          "initial-admin-password")
        .read_text().strip()}).json()["token"]
    names = {u["username"] for u in call(m2, "GET", "/api/v1/users",
                                         admin2).json()["users"]}
    assert "nina" in names and "bulk0" in names
    m2.stop()

    cp = run(mh.binary("moat"), "audit", "verify",
             new / "audit" / "audit.log", "--key",
             new / "secrets" / "audit-signing.pub")
    assert cp.returncode == 0, cp.stderr


def test_restore_refuses_a_tampered_backup(moatd_factory, moatd_data,
                                           tmp_path):
    m = moatd_factory()
    moatd = mh.binary("moatd")
    out = tmp_path / "backup"
    cp = run(moatd, "backup", "--data-dir", moatd_data, out)
    assert cp.returncode == 0, cp.stderr
    m.stop()
    # Backing up into an existing directory is refused.
    cp = run(moatd, "backup", "--data-dir", moatd_data, out)
    assert cp.returncode == 1 and "must not exist" in cp.stderr

    for name in ("secrets/keyring.json", "moatd.db", "audit/audit.log"):
        bad = tmp_path / "bad"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(out, bad)
        with open(bad / name, "ab") as f:
            f.write(b"x")
        new = tmp_path / "new"
        cp = run(moatd, "restore", bad, "--data-dir", new)
        assert cp.returncode == 1
        assert name in cp.stderr and "SHA-256" in cp.stderr, cp.stderr
        assert not new.exists()
        assert not list(tmp_path.glob("new.restore-*"))

    # A file slipped in that the manifest does not list.
    bad = tmp_path / "bad"
    shutil.rmtree(bad)
    shutil.copytree(out, bad)
    (bad / "secrets" / "extra.pem").write_text("x")
    cp = run(moatd, "restore", bad, "--data-dir", tmp_path / "new")
    assert cp.returncode == 1 and "secrets/extra.pem" in cp.stderr
    assert not (tmp_path / "new").exists()


def test_workspaces_backed_up_while_running_come_back_with_their_homes(
        tmp_path, podman_socket, base_image):
    """A backup taken while one workspace runs (and writes) and another is
    stopped; the original installation then disappears. The restored moatd
    starts the running one again with its home intact, and leaves the
    stopped one stopped."""
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    from test_workspaces import GOOD_PW as WS_PW, Env
    from test_workspaces import call as wcall
    from test_workspaces_crash import start_moatd

    sock = podman_socket.socket
    data = tmp_path / "data"
    mh.moatd_init(data)
    procs = mh.ProcGroup(tmp_path / "logs")
    live = []   # (moatd, token) whose workspaces a failure must delete
    try:
        m = start_moatd(procs, data, tmp_path / "run", sock)
        env = Env(m, tmp_path / "run", sock)
        owner, tok = env.user()
        live.append((m, tok))
        keep = env.create(tok, "keep")["id"]
        env.exec(keep, "sh", "-c", "head -c 3000000 /dev/urandom > ~/blob "
                 "&& sha256sum ~/blob > ~/blob.sum", user=owner)
        env.create(tok, "idle")
        assert env.action(tok, owner, "idle", "stop").status == 200
        env.wait_state(tok, owner, "idle", "stopped")

        # The running workspace keeps writing while its volume is copied.
        writer = subprocess.Popen(
            ["podman", "exec", "--user", owner, f"moat-{keep}", "sh", "-c",
             "i=0; while [ $i -lt 20000 ]; do echo line-$i >> ~/busy.log; "
             "i=$((i+1)); done"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        mh.wait_until(lambda: env.exec(keep, "test", "-s",
                                       f"/home/{owner}/busy.log",
                                       user=owner, check=False).returncode == 0,
                      60, interval=0.1, what="the writer started")
        out = tmp_path / "backup"
        cp = run(mh.binary("moatd"), "backup", "--data-dir", data, out,
                 timeout=180)
        assert writer.wait(180) == 0
        assert cp.returncode == 0, cp.stderr
        assert "2 home volumes, 1 of them in use and frozen" in cp.stdout, \
            cp.stdout
        img = out / "volumes" / f"{keep}.img"
        st = img.stat()
        assert st.st_size >= 64 << 20 and st.st_blocks * 512 < st.st_size // 4
        # Frozen while copied: the copy is a clean filesystem.
        fsck = subprocess.run(["e2fsck", "-fn", str(img)],
                              capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        # And thawed afterwards: the workspace writes on.
        env.exec(keep, "sh", "-c", "echo after > ~/after.txt", user=owner)

        # The original installation is lost.
        for name in ("keep", "idle"):
            assert env.action(tok, owner, name, "delete").status == 202
            env.wait_state(tok, owner, name, "gone")
        m.stop()

        new = tmp_path / "restored"
        cp = run(mh.binary("moatd"), "restore", out, "--data-dir", new,
                 timeout=180)
        assert cp.returncode == 0, cp.stderr
        assert "2 workspaces" in cp.stdout, cp.stdout
        m2 = start_moatd(procs, new, tmp_path / "run2", sock, name="moatd2")
        r = wcall(m2, "POST", "/api/v1/auth/login",
                  body={"username": owner, "password": WS_PW})
        assert r.status == 200, r.text
        tok2 = r.json()["token"]
        live.append((m2, tok2))
        env2 = Env.__new__(Env)
        env2.m, env2.run_dir = m2, tmp_path / "run2"
        ws = env2.wait_state(tok2, owner, "keep", "running")
        assert ws["id"] == keep
        out2 = env2.exec(keep, "sh", "-c", "cd && sha256sum -c blob.sum && "
                         "tail -n 1 busy.log", user=owner, check=False)
        assert "blob: OK" in out2.stdout, out2.stdout + out2.stderr
        assert re.match(r"line-\d+$", out2.stdout.splitlines()[-1])
        idle = wcall(m2, "GET", f"/api/v1/workspaces/{owner}/idle", tok2)
        assert idle.status == 200 and idle.json()["state"] == "stopped", \
            idle.text
        for name in ("keep", "idle"):
            assert env2.action(tok2, owner, name, "delete").status == 202
            env2.wait_state(tok2, owner, name, "gone")
        live.clear()
    finally:
        _delete_workspaces(live)
        procs.stop_all()
    reports = procs.sanitizer_reports()
    assert not reports, reports[0][1]


def _delete_workspaces(live):
    """After a failure: nothing of the test may stay running on the host."""
    from test_workspaces import call as wcall
    for m, tok in live:
        if not (m.proc and m.proc.alive()):
            continue
        try:
            for w in wcall(m, "GET", "/api/v1/workspaces", tok).json()[
                    "workspaces"]:
                wcall(m, "DELETE",
                      f"/api/v1/workspaces/{w['owner']}/{w['name']}", tok)
            mh.wait_until(lambda: wcall(m, "GET", "/api/v1/workspaces",
                                        tok).json()["workspaces"] == [],
                          60, what="cleanup")
        except Exception:   # the test has failed already; best effort
            pass
