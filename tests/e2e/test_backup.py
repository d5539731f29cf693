"""End-to-end test of `moatd backup` and `moatd restore`.

A backup is taken while moatd runs and keeps writing (users created in a
loop); moatd is stopped, the backup restored into a fresh data directory and
a new moatd started on it: the member logs in, their API token works, their
SSH key and personal secret are listed, and `moat audit verify` accepts the
restored chain with the restored public key. A backup with one changed file
is refused by restore, which names the file and leaves nothing behind.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

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
