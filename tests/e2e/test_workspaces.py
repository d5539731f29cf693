"""Workspaces end to end: moatd with a real Podman (its Docker Engine API
service), the real default image, real loop volumes with fscrypt, a real
registry with htpasswd auth.

One moatd serves the module (workspaces take a second or two each); each
test uses its own users so quotas and listings do not interfere. The
runtime is inspected with the podman CLI, the host with mount tables,
losetup and the files themselves.
"""
import base64
import json
import os
import re
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import moat_harness as mh

GOOD_PW = "correct horse battery staple 7"
MIB = 1024 * 1024


# ----------------------------------------------------------------- helpers

def call(m, method, path, token=None, body=None, timeout=30):
    extra = ["-X", method]
    if token:
        extra += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        extra += ["-H", "Content-Type: application/json",
                  "--data-binary", json.dumps(body)]
    return m.curl(path, *extra, timeout=timeout)


def podman(*args, check=True, timeout=60):
    return subprocess.run(["podman", *args], capture_output=True, text=True,
                          check=check, timeout=timeout)


def container_of(ws_id):
    return f"moat-{ws_id}"


def containers_labelled():
    out = podman("ps", "-a", "--filter", "label=moat.managed=1",
                 "--format", "{{.Names}}").stdout.split()
    return set(out)


def agent_dial(agent_dir, port, timeout=5.0):
    """Speaks the agent protocol (src/lib/agentproto.h) the way moatd does:
    DIAL port; after OK the socket carries the port's bytes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(Path(agent_dir) / "agent.sock"))
    body = bytes([3, 2]) + struct.pack(">H", 2) + struct.pack(">H", port)
    s.sendall(struct.pack(">I", len(body)) + body)
    hdr = s.recv(5)
    assert len(hdr) == 5 and hdr[4] == 64, f"agent answered {hdr!r}"
    (n,) = struct.unpack(">I", hdr[:4])
    if n > 1:
        s.recv(n - 1)
    return s


class Env:
    def __init__(self, m, run_dir, podman_sock):
        self.m = m
        self.run_dir = Path(run_dir)
        self.podman_sock = podman_sock
        pw = (m.data_dir / "initial-admin-password").read_text().strip()
        r = call(m, "POST", "/api/v1/auth/login", body={
            "username": "admin", "password": pw})
        assert r.status == 200, r.text
        self.admin = r.json()["token"]
        self.n = 0

    def user(self, prefix="dev", role="member"):
        self.n += 1
        name = f"{prefix}{self.n}"
        r = call(self.m, "POST", "/api/v1/users", self.admin,
                 {"username": name, "password": GOOD_PW, "role": role})
        assert r.status == 201, r.text
        r = call(self.m, "POST", "/api/v1/auth/login", body={
            "username": name, "password": GOOD_PW})
        assert r.status == 200, r.text
        return name, r.json()["token"]

    def template(self, name, **fields):
        body = {"name": name, "image": "localhost/moat/base:latest"}
        body.update(fields)
        r = call(self.m, "POST", "/api/v1/templates", self.admin, body)
        assert r.status == 201, r.text
        return r.json()

    def get(self, token, owner, name):
        return call(self.m, "GET", f"/api/v1/workspaces/{owner}/{name}",
                    token)

    def wait_state(self, token, owner, name, want, timeout=90):
        last = {}

        def look():
            r = self.get(token, owner, name)
            if r.status == 404 and want == "gone":
                return True
            if r.status != 200:
                return None
            last.update(r.json())
            if want != "gone" and last.get("state") == "failed" and \
                    want != "failed":
                raise AssertionError(f"workspace failed: {last}\n"
                                     f"{self.m.proc.tail(60)}")
            return last if last.get("state") == want else None
        try:
            return mh.wait_until(look, timeout, interval=0.1,
                                 what=f"{owner}/{name} {want}")
        except mh.HarnessError as e:
            raise AssertionError(f"{e}; last seen {last}\n"
                                 f"{self.m.proc.tail(60)}") from None

    def create(self, token, name, template="base", owner=None, wait=True):
        body = {"name": name, "template": template}
        if owner:
            body["owner"] = owner
        r = call(self.m, "POST", "/api/v1/workspaces", token, body)
        assert r.status == 201, r.text
        ws = r.json()
        if wait:
            ws = self.wait_state(token, ws["owner"], name, "running")
        return ws

    def action(self, token, owner, name, what):
        method = "DELETE" if what == "delete" else "POST"
        path = f"/api/v1/workspaces/{owner}/{name}" + \
            ("" if what == "delete" else f"/{what}")
        return call(self.m, method, path, token)

    def delete_all(self):
        """Deletes every workspace through the API and waits until they
        are gone (module teardown: nothing is left behind)."""
        r = call(self.m, "GET", "/api/v1/workspaces?owner=*", self.admin)
        if r.status != 200:
            return
        for w in r.json()["workspaces"]:
            self.action(self.admin, w["owner"], w["name"], "delete")
        mh.wait_until(lambda: call(self.m, "GET",
                                   "/api/v1/workspaces?owner=*", self.admin)
                      .json()["workspaces"] == [], 60,
                      what="every workspace deleted")

    def agent_dir(self, ws_id):
        return self.run_dir / "ws" / ws_id / "agent"

    def exec(self, ws_id, *cmd, user=None, check=True):
        args = ["exec"]
        if user:
            args += ["--user", user]
        return podman(*args, container_of(ws_id), *cmd, check=check)

    def volume_image(self, ws_id):
        return self.m.data_dir / "volumes" / f"{ws_id}.img"


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_socket, base_image):
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    tmp = tmp_path_factory.mktemp("ws")
    data = tmp / "data"
    mh.moatd_init(data)
    run_dir = tmp / "run"
    procs = mh.ProcGroup(tmp / "logs")
    m = mh.Moatd(procs, data, extra_args=[
        "--runtime-socket", podman_socket.socket,
        "--run-dir", str(run_dir),
        "--reconcile-interval", "300ms",
        "--size-check-interval", "1s",
        "--max-workspaces-per-user", "3",
        "--max-running-per-user", "2",
    ]).start()
    m.wait_for_log("workspaces ready", timeout=30)
    e = Env(m, run_dir, podman_socket.socket)
    yield e
    # Leave nothing behind: delete every workspace through the API.
    e.delete_all()
    procs.stop_all()
    reports = procs.sanitizer_reports()
    assert not reports, reports[0][1]


# ------------------------------------------------------------------ tests

def test_lifecycle_home_persists_and_delete_removes_everything(env):
    owner, tok = env.user()
    ws = env.create(tok, "lab")
    wid = ws["id"]
    assert ws["state"] == "running" and ws["reason"] == ""
    assert "sealed" not in json.dumps(ws) and "PRIVATE" not in json.dumps(ws)
    # Ready means sshd answers on port 22 inside, through the agent socket.
    s = agent_dial(env.agent_dir(wid), 22)
    assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
    s.close()

    env.exec(wid, "sh", "-c", "echo persisted > ~/note.txt", user=owner)
    assert env.action(tok, owner, "lab", "stop").status == 200
    env.wait_state(tok, owner, "lab", "stopped")
    assert container_of(wid) not in containers_labelled()
    assert not (env.run_dir / "ws" / wid).exists()

    assert env.action(tok, owner, "lab", "start").status == 200
    env.wait_state(tok, owner, "lab", "running")
    out = env.exec(wid, "cat", f"/home/{owner}/note.txt", user=owner)
    assert out.stdout.strip() == "persisted"

    assert env.action(tok, owner, "lab", "restart").status == 200
    mh.wait_until(lambda: env.get(tok, owner, "lab").json()["state"] !=
                  "running", 30, interval=0.05, what="restart begins")
    env.wait_state(tok, owner, "lab", "running")
    out = env.exec(wid, "cat", f"/home/{owner}/note.txt", user=owner)
    assert out.stdout.strip() == "persisted"

    img = env.volume_image(wid)
    assert img.exists()
    db = sqlite3.connect(env.m.data_dir / "moatd.db")
    body = json.loads(db.execute(
        "select body from docs where coll = 'workspaces' and id = ?",
        (wid,)).fetchone()[0])
    db.close()
    sealed = body["sealed"]
    assert set(sealed) == {"access_key", "host_key", "volume_key"}
    assert all(v.startswith("v1.") for v in sealed.values())
    assert "PRIVATE KEY" not in json.dumps(body)
    assert env.action(tok, owner, "lab", "delete").status == 202
    env.wait_state(tok, owner, "lab", "gone")
    assert container_of(wid) not in containers_labelled()
    assert not img.exists()
    assert not (env.run_dir / "ws" / wid).exists()
    assert wid not in Path("/proc/self/mountinfo").read_text()
    losetup = subprocess.run(["losetup", "-a"], capture_output=True,
                             text=True).stdout
    assert wid not in losetup
    # The keys went with the record, and no copy of the wrapped keys stays
    # in the database files (crypto-shredding).
    db = sqlite3.connect(env.m.data_dir / "moatd.db")
    rows = db.execute("select count(*) from docs where id = ?",
                      (wid,)).fetchone()
    db.close()
    assert rows[0] == 0
    for f in env.m.data_dir.glob("moatd.db*"):
        data = f.read_bytes()
        for v in sealed.values():
            assert v.split(".")[2].encode() not in data, f.name
    types = [e["type"] for e in env.m.audit_events()
             if e.get("workspace") == wid or
             (e.get("target") or {}).get("id") == wid]
    for t in ("workspace.create", "workspace.started", "workspace.stop",
              "workspace.stopped", "workspace.start", "workspace.restart",
              "workspace.delete", "workspace.deleted"):
        assert t in types, (t, types)


def test_events_stream_states_and_clean_startup_output(env):
    owner, tok = env.user()
    env.template("chatty", startup_script=(
        "#!/bin/sh\necho \"hello-$((40+2)) from $(whoami)\"\n"
        "printf 'red\\033[31mALERT\\033[0m bell\\007 done\\n'\n"))
    r = call(env.m, "POST", "/api/v1/workspaces", tok,
             {"name": "talk", "template": "chatty"})
    assert r.status == 201, r.text
    url = env.m.url + f"/api/v1/workspaces/{owner}/talk/events"
    proc = subprocess.Popen(
        ["curl", "-sN", "--cacert", str(env.m.ca), "-H",
         f"Authorization: Bearer {tok}", "--max-time", "60", url],
        stdout=subprocess.PIPE)
    lines = []

    def reader():
        for raw in proc.stdout:
            lines.append(raw.decode("utf-8", "replace"))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        mh.wait_until(lambda: any("done" in x and "ALERT" in x for x in lines), 60,
                      what="startup output in the event stream")
    finally:
        proc.kill()
        t.join(5)
    text = "".join(lines)
    assert "event: state" in text and '"state":"running"' in text
    assert "hello-42 from " + owner in text
    # Escape sequences are removed whole, other control characters dropped.
    assert "redALERT bell done" in text
    assert "\x1b" not in text and "\x07" not in text and "\\u001b" not in text
    # Logs endpoint: the same output from offset 0.
    r = call(env.m, "GET", f"/api/v1/workspaces/{owner}/talk/logs?offset=0",
             tok)
    assert r.status == 200, r.text
    assert "hello-42" in r.json()["data"]
    assert "\x1b" not in r.json()["data"]
    st = call(env.m, "GET", f"/api/v1/workspaces/{owner}/talk/stats", tok)
    assert st.status == 200, st.text
    j = st.json()
    assert j["memory_bytes"] > 0 and j["disk_total"] > 0
    # The template's limits (2 GiB memory, 4 GiB home) are in force.
    assert j["memory_limit"] == 2048 * MIB
    assert 3500 * MIB < j["disk_total"] <= 4096 * MIB
    assert env.action(tok, owner, "talk", "delete").status == 202


def test_isolation_userns_network_caps_and_keys(env):
    owner, tok = env.user()
    env.template("iso", disk_mb=64)
    r = call(env.m, "PUT", "/api/v1/secrets/token-a", tok,
             {"value": "s3cr3t-value-xyz", "env": "TOKEN_A"})
    assert r.status in (200, 201), r.text
    ws = env.create(tok, "iso", template="iso")
    wid = ws["id"]
    uid_map = env.exec(wid, "cat", "/proc/self/uid_map").stdout.split()
    assert uid_map[0] == "0" and int(uid_map[1]) >= 2**31, uid_map
    # Only loopback.
    dev = env.exec(wid, "cat", "/proc/net/dev").stdout
    ifaces = [l.split(":")[0].strip() for l in dev.splitlines()[2:]]
    assert ifaces == ["lo"], ifaces
    # Capabilities of PID 1: nothing beyond the allowed set.
    allowed = {"cap_chown", "cap_setuid", "cap_setgid", "cap_sys_chroot",
               "cap_kill", "cap_net_bind_service"}
    eff = int(re.search(r"CapEff:\s*([0-9a-f]+)", env.exec(
        wid, "cat", "/proc/1/status").stdout).group(1), 16)
    names = subprocess.run(["capsh", f"--decode={eff:x}"],
                           capture_output=True, text=True).stdout
    got = set(names.strip().split("=", 1)[1].split(",")) if "=" in names \
        else set()
    assert got == allowed, (got - allowed, allowed - got)
    # no-new-privileges (sudo is not allowed by default).
    st = env.exec(wid, "cat", "/proc/1/status").stdout
    assert re.search(r"NoNewPrivs:\s*1", st), st
    # The volume key is in the kernel while the workspace runs.
    assert any(wid in l for l in _fscrypt_mounts()), "home not mounted"
    # The runtime's stored configuration holds no key and no secret.
    inspect = podman("inspect", container_of(wid)).stdout
    assert "PRIVATE KEY" not in inspect
    assert "s3cr3t-value-xyz" not in inspect
    # The secret arrived on tmpfs, readable by the user only.
    out = env.exec(wid, "sh", "-c", "cat /run/secrets/token-a; echo; "
                   "stat -c '%a %U' /run/secrets/token-a", user=owner).stdout
    assert out.split("\n")[0] == "s3cr3t-value-xyz"
    assert out.split("\n")[1] == f"400 {owner}"
    # A secret changed while the workspace runs arrives without a restart;
    # a deleted one disappears.
    r = call(env.m, "PUT", "/api/v1/secrets/token-a", tok,
             {"value": "rotated-value-2", "env": "TOKEN_A"})
    assert r.status == 200, r.text
    mh.wait_until(lambda: env.exec(wid, "cat", "/run/secrets/token-a",
                                   user=owner, check=False).stdout ==
                  "rotated-value-2", 15, what="the new secret value")
    r = call(env.m, "PUT", "/api/v1/secrets/later", tok, {"value": "x1"})
    assert r.status == 201, r.text
    mh.wait_until(lambda: env.exec(wid, "cat", "/run/secrets/later",
                                   user=owner, check=False).stdout == "x1",
                  15, what="a new secret")
    assert call(env.m, "DELETE", "/api/v1/secrets/later", tok).status == 204
    mh.wait_until(lambda: env.exec(wid, "test", "-e", "/run/secrets/later",
                                   check=False).returncode != 0, 15,
                  what="a deleted secret removed")
    # The workspace user cannot read sshd's host key.
    r = env.exec(wid, "cat", "/run/moat/ssh_host_ed25519_key", user=owner,
                 check=False)
    assert r.returncode != 0 and "PRIVATE" not in r.stdout
    # Re-created container, same user namespace range.
    env.action(tok, owner, "iso", "restart")
    mh.wait_until(lambda: env.get(tok, owner, "iso").json()["state"] !=
                  "running", 30, interval=0.05, what="restart begins")
    env.wait_state(tok, owner, "iso", "running")
    again = env.exec(wid, "cat", "/proc/self/uid_map").stdout.split()
    assert again == uid_map
    env.action(tok, owner, "iso", "delete")


def _fscrypt_mounts():
    return [l for l in Path("/proc/self/mountinfo").read_text().splitlines()
            if "/vol/" in l]


def test_home_is_encrypted_at_rest(env):
    owner, tok = env.user()
    ws = env.create(tok, "vault")
    wid = ws["id"]
    marker = "plaintext-marker-" + os.urandom(6).hex()
    env.exec(wid, "sh", "-c", f"echo {marker} > ~/{marker}.txt", user=owner)
    env.action(tok, owner, "vault", "stop")
    env.wait_state(tok, owner, "vault", "stopped")
    data = env.volume_image(wid).read_bytes()
    assert marker.encode() not in data
    # Mounted without the key, the host sees only encrypted names.
    mnt = Path(f"/tmp/moat-at-rest-{wid}")
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-o", "loop,ro", str(env.volume_image(wid)),
                    str(mnt)], check=True)
    try:
        names = os.listdir(mnt / "home")
        assert names and all(marker not in n for n in names), names
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        mnt.rmdir()
    env.action(tok, owner, "vault", "delete")


def test_member_cannot_create_for_someone_else_or_see_theirs(env):
    a, ta = env.user()
    b, tb = env.user()
    r = call(env.m, "POST", "/api/v1/workspaces", ta,
             {"name": "x", "template": "base", "owner": b})
    assert r.status == 403, r.text
    assert call(env.m, "GET", f"/api/v1/workspaces?owner={b}",
                ta).status == 403
    env.create(tb, "mine", wait=False)
    assert env.get(ta, b, "mine").status == 404
    assert env.action(ta, b, "mine", "delete").status == 404
    # An administrator may act for others.
    assert env.get(env.admin, b, "mine").status == 200
    r = call(env.m, "POST", "/api/v1/workspaces", env.admin,
             {"name": "given", "template": "base", "owner": a})
    assert r.status == 201, r.text
    assert r.json()["owner"] == a
    # Bad names and unknown templates change nothing.
    for body in ({"name": "Bad_Name", "template": "base"},
                 {"name": "-x", "template": "base"},
                 {"name": "ok", "template": "nope"},
                 {"name": "ok"}):
        r = call(env.m, "POST", "/api/v1/workspaces", ta, body)
        assert r.status == 400, (body, r.text)
    names = [w["name"] for w in call(env.m, "GET", "/api/v1/workspaces",
                                     ta).json()["workspaces"]]
    assert names == ["given"]
    env.action(env.admin, a, "given", "delete")
    env.action(tb, b, "mine", "delete")


def test_quotas_and_disabling_a_user_stops_workspaces(env):
    owner, tok = env.user()
    env.create(tok, "q1", wait=False)
    env.create(tok, "q2", wait=False)
    r = call(env.m, "POST", "/api/v1/workspaces", tok,
             {"name": "q3", "template": "base"})
    assert r.status == 409 and "running" in r.text, r.text
    env.wait_state(tok, owner, "q1", "running")
    env.wait_state(tok, owner, "q2", "running")
    r = call(env.m, "POST", f"/api/v1/users/{owner}/disable", env.admin)
    assert r.status == 200, r.text
    for n in ("q1", "q2"):
        env.wait_state(env.admin, owner, n, "stopped")
    for n in ("q1", "q2"):
        env.action(env.admin, owner, n, "delete")


def test_workspace_cannot_steer_the_host(env):
    owner, tok = env.user()
    env.template("small", root_disk_mb=64)
    ws = env.create(tok, "probe", template="small")
    wid = ws["id"]
    # The read-only directory cannot be written, even by root inside.
    r = env.exec(wid, "sh", "-c", "echo x > /run/moat/evil", check=False)
    assert r.returncode != 0
    r = env.exec(wid, "sh", "-c", "rm -f /run/moat/agent.conf", check=False)
    assert r.returncode != 0
    # Filling the writable shared directory is bounded by its own tmpfs.
    r = env.exec(wid, "sh", "-c", "dd if=/dev/zero of=/run/moat-agent/fill "
                 "bs=64k count=1000", check=False)
    assert r.returncode != 0
    used = os.statvfs(env.agent_dir(wid))
    assert used.f_blocks * used.f_frsize <= 2 * MIB
    env.exec(wid, "rm", "-f", "/run/moat-agent/fill")
    # Replace the agent socket with a symlink to a host socket: moatd does
    # not follow it.
    env.exec(wid, "sh", "-c", "mv /run/moat-agent/agent.sock "
             "/run/moat-agent/real.sock && ln -s "
             f"{env.podman_sock} /run/moat-agent/agent.sock")
    r = call(env.m, "GET", f"/api/v1/workspaces/{owner}/probe/logs", tok)
    assert r.status == 502, r.text
    assert any("symlink" in json.dumps(x) or "not a socket" in json.dumps(x)
               or "refus" in json.dumps(x)
               for x in env.m.log_lines()[-50:]) or r.status == 502
    env.exec(wid, "sh", "-c", "rm /run/moat-agent/agent.sock && mv "
             "/run/moat-agent/real.sock /run/moat-agent/agent.sock")
    assert call(env.m, "GET", f"/api/v1/workspaces/{owner}/probe/logs",
                tok).status == 200
    # Filling the writable root layer past the template's bound stops the
    # workspace, with the reason and an audit event.
    env.exec(wid, "sh", "-c", "dd if=/dev/zero of=/var/tmp/fill bs=1M "
             "count=100 2>/dev/null; sync", check=False)
    ws = env.wait_state(tok, owner, "probe", "stopped", timeout=60)
    assert "writable root" in ws["reason"], ws
    assert any(e["type"] == "workspace.disk_limit" and e.get("workspace") ==
               wid for e in env.m.audit_events())
    env.action(tok, owner, "probe", "delete")


def test_pull_from_registry_with_credentials(env, registry):
    owner, tok = env.user()
    remote = f"{registry.host}/moat/base:pulltest"
    podman("tag", "localhost/moat/base:latest", remote)
    podman("push", "--tls-verify=false", "--creds",
           f"{registry.user}:{registry.password}", remote, timeout=300)
    podman("rmi", remote)
    # The organization allows the registry; credentials for that host
    # only, in the Kubernetes dockerconfigjson layout.
    r = call(env.m, "GET", "/api/v1/orgs/default/settings", env.admin)
    settings = r.json()
    settings["registries"] = sorted(set(settings["registries"] +
                                        [registry.host]))
    for k in ("id", "rev", "created_at", "updated_at", "org"):
        settings.pop(k, None)
    r = call(env.m, "PUT", "/api/v1/orgs/default/settings", env.admin,
             settings)
    assert r.status == 200, r.text
    auth = base64.b64encode(
        f"{registry.user}:{registry.password}".encode()).decode()
    cfg = env.m.secrets / ".dockerconfigjson"
    cfg.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    cfg.chmod(0o600)
    try:
        env.template("remote", image=remote)
        ws = env.create(tok, "pulled", template="remote", wait=False)
        url = env.m.url + f"/api/v1/workspaces/{owner}/pulled/events?since=0"
        env.wait_state(tok, owner, "pulled", "running", timeout=180)
        r = subprocess.run(
            ["curl", "-sN", "--cacert", str(env.m.ca), "-H",
             f"Authorization: Bearer {tok}", "--max-time", "2", url],
            capture_output=True, text=True)
        assert "event: pull" in r.stdout, r.stdout[:2000]
        assert podman("image", "exists", remote, check=False).returncode == 0
        env.action(tok, owner, "pulled", "delete")
        env.wait_state(tok, owner, "pulled", "gone")
        assert ws["id"]
    finally:
        cfg.unlink()
        podman("rmi", "-f", remote, check=False)


def test_idle_workspace_is_stopped_and_audited(env):
    """No activity (no relayed byte, no activity report) for the template's
    idle timeout - 60 s, the shortest a template may set - stops the
    workspace, with the reason and an audit event. An open connection
    through the agent keeps another workspace running meanwhile."""
    owner, tok = env.user()
    env.template("sleepy", idle_timeout=60)
    idle = env.create(tok, "idle", template="sleepy")
    busy = env.create(tok, "busy", template="sleepy")
    # Keep one connection open to busy's sshd: an open relay is activity.
    s = agent_dial(env.agent_dir(busy["id"]), 22)
    assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
    t0 = time.monotonic()
    try:
        ws = env.wait_state(tok, owner, "idle", "stopped", timeout=120)
        waited = time.monotonic() - t0
        assert 40 < waited < 100, waited
        assert "without activity" in ws["reason"], ws
        assert ws["desired"] == "stopped"
        assert env.get(tok, owner, "busy").json()["state"] == "running"
    finally:
        s.close()
    assert any(e["type"] == "workspace.idle_stop" and
               e.get("workspace") == idle["id"]
               for e in env.m.audit_events())
    env.action(tok, owner, "idle", "delete")
    env.action(tok, owner, "busy", "delete")


def test_sudo_follows_the_organization_and_the_template(env):
    """sudo works inside only when the organization allows it and the
    template does not forbid it; otherwise no-new-privileges is set."""
    owner, tok = env.user()
    env.template("nosudo", forbid_sudo=True)
    r = call(env.m, "GET", "/api/v1/orgs/default/settings", env.admin)
    before = r.json()
    settings = {k: v for k, v in before.items()
                if k in ("default_policy", "allow_sudo", "ssh", "registries")}
    try:
        settings["allow_sudo"] = True
        r = call(env.m, "PUT", "/api/v1/orgs/default/settings", env.admin,
                 settings)
        assert r.status == 200, r.text
        a = env.create(tok, "sudoer")
        r = env.exec(a["id"], "sudo", "-n", "id", "-u", user=owner,
                     check=False)
        assert r.returncode == 0 and r.stdout.strip() == "0", r
        env.action(tok, owner, "sudoer", "delete")
        b = env.create(tok, "plain", template="nosudo")
        r = env.exec(b["id"], "sudo", "-n", "id", "-u", user=owner,
                     check=False)
        assert r.returncode != 0
        env.action(tok, owner, "plain", "delete")
    finally:
        settings["allow_sudo"] = bool(before.get("allow_sudo"))
        call(env.m, "PUT", "/api/v1/orgs/default/settings", env.admin,
             settings)
