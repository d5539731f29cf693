"""moatd killed with SIGKILL in the middle of API writes: on restart the
store holds every write that was answered, nothing half-written, and the
audit chain still verifies (DESIGN.md section 8, invariant 7)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import moat_harness as mh

PW = "violet umbrella 7 orbit"


def api(m, method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return m.curl(path, method=method, headers=headers,
                  data=json.dumps(body) if body is not None else None,
                  timeout=5)


def test_sigkill_during_writes_then_restart(moatd):
    m = moatd
    pw = (m.data_dir / "initial-admin-password").read_text().strip()
    r = api(m, "POST", "/api/v1/auth/login", body={"username": "admin",
                                                   "password": pw})
    assert r.status == 200
    admin = api(m, "POST", "/api/v1/tokens", r.json()["token"],
                {"name": "crash"}).json()["token"]

    created, stop = [], threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            name = f"u{i}"
            i += 1
            try:
                r = api(m, "POST", "/api/v1/users", admin,
                        {"username": name, "password": PW,
                         "role": "member"})
            except mh.CurlError:
                break           # moatd is gone
            if r.status == 201:
                created.append(name)
    t = threading.Thread(target=writer)
    t.start()
    mh.wait_until(lambda: len(created) >= 5 or None, 30,
                  what="a few answered writes")
    m.proc.signal(signal.SIGKILL)
    m.proc.wait(10)
    stop.set()
    t.join(30)
    answered = list(created)

    m.start()   # same data directory, ports and flags
    r = api(m, "GET", "/api/v1/users", admin)
    assert r.status == 200, r.text
    names = {u["username"] for u in r.json()["users"]}
    # Every write that was answered survived the kill.
    assert set(answered) <= names
    # Each surviving user is whole: it can log in.
    r = api(m, "POST", "/api/v1/auth/login",
            body={"username": answered[-1], "password": PW})
    assert r.status == 200, r.text
    # The chain verifies (a line cut by the kill is recorded as recovered).
    m.stop()
    cp = subprocess.run([str(mh.binary("moat")), "audit", "verify",
                         str(m.audit_path), "--key",
                         str(m.secrets / "audit-signing.pub")],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
