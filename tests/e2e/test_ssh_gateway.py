"""The SSH gateway end to end with the real OpenSSH client: moatd with a
real Podman, real workspaces, keys made by ssh-keygen and registered
through the API, the gateway's host key pinned in a known_hosts file.

One moatd and one Podman service serve the module; tests use their own
users and workspaces so that they do not interfere.
"""
import base64
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

    def ssh_args(self, key, login, *extra, batch=True):
        args = ["ssh", "-p", str(self.ssh_port),
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes",
                "-o", "ConnectTimeout=20",
                "-F", "/dev/null"]
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


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_socket, base_image):
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    tmp = tmp_path_factory.mktemp("sshgw")
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
        "--max-workspaces-per-user", "4",
        "--max-running-per-user", "4",
        "--audit-fsync", "none",
    ]).start()
    m.wait_for_log("workspaces ready", timeout=30)
    e = SSHEnv(m, run_dir, podman_socket.socket, ssh_port, tmp)
    yield e
    r = call(m, "GET", "/api/v1/workspaces?owner=*", e.admin)
    if r.status == 200:
        for w in r.json()["workspaces"]:
            e.action(e.admin, w["owner"], w["name"], "delete")
        mh.wait_until(lambda: call(m, "GET", "/api/v1/workspaces?owner=*",
                                   e.admin).json()["workspaces"] == [], 60,
                      what="every workspace deleted")
    procs.stop_all()
    reports = procs.sanitizer_reports()
    assert not reports, reports[0][1]


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
