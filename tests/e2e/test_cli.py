"""End-to-end tests of the `moat` command-line client: the real binary
against a real moatd started by the harness, HOME and XDG_CONFIG_HOME in
tmp_path, no terminal unless a test makes one (pty).

Covers: login with --ca-file and --password-stdin as the initial admin,
whoami, user create/list/show/disable/enable/roles, token create (printed
once) / list / revoke (the revoked token then gets 401), sshkey add of a
real ssh-keygen key from the default ~/.ssh/id_ed25519.pub, list and
remove (refused without a terminal unless --yes), secret set from stdin
and list (never the value), policy set from a YAML file, get, list and
delete, audit tail (filters, --json, --follow seeing a new event), a 403
as one clear line, logout revoking the stored token; trust on first use
answered "y" and "n" through a pty, refused without a terminal, and
--insecure-trust-fingerprint; a corrupt or group-readable config file
refused and left untouched; two remembered servers, `moat use`,
MOAT_SERVER, re-login revoking the replaced token; --help at every level;
and the token never printed except by `token create`.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import moat_harness as mh

SANITIZER = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
             "runtime error:")
MEMBER_PW = "violet umbrella 7 orbit"


@pytest.fixture
def moat_bin():
    exe = mh.binary("moat")
    if not exe.exists():
        pytest.skip(f"{exe} not built (set MOAT_BUILD_DIR)")
    return exe


class Cli:
    """Runs `moat` with its own HOME and XDG_CONFIG_HOME, without a
    controlling terminal (a new session), and keeps every output so tests
    can check a token never leaked."""

    def __init__(self, exe: Path, home: Path):
        self.exe = exe
        self.home = home
        self.xdg = home / ".config"
        home.mkdir(parents=True, exist_ok=True)
        self.outputs: list[str] = []

    @property
    def config_path(self) -> Path:
        return self.xdg / "moat" / "config.json"

    def config(self) -> dict:
        return json.loads(self.config_path.read_text())

    def env(self, extra=None) -> dict:
        e = mh.child_env({"HOME": str(self.home),
                          "XDG_CONFIG_HOME": str(self.xdg)})
        e.pop("MOAT_SERVER", None)
        if extra:
            e.update(extra)
        return e

    def run(self, *args, input=None, env=None, check=None, timeout=60):
        cp = subprocess.run([str(self.exe), *map(str, args)], input=input,
                            capture_output=True, text=True,
                            env=self.env(env), timeout=timeout,
                            start_new_session=True)
        for pat in SANITIZER:
            assert pat not in cp.stderr, cp.stderr
        self.outputs.append(cp.stdout + cp.stderr)
        if check is not None:
            assert cp.returncode == check, (args, cp.returncode, cp.stdout,
                                            cp.stderr)
        return cp

    def login(self, m, user="admin", pw=None, *extra, check=0):
        if pw is None:
            pw = admin_pw(m)
        return self.run("login", m.url, "--username", user,
                        "--password-stdin", "--ca-file", m.ca, *extra,
                        input=pw + "\n", check=check)


def admin_pw(m) -> str:
    return (m.data_dir / "initial-admin-password").read_text().strip()


def bearer(m, token, path="/api/v1/users/me"):
    return m.curl(path, headers={"Authorization": f"Bearer {token}"})


def one_error_line(cp, pattern):
    lines = [l for l in cp.stderr.splitlines() if l.strip()]
    assert lines and re.search(pattern, lines[0]), cp.stderr
    assert lines[0].startswith("moat"), cp.stderr
    return lines[0]


@pytest.fixture
def cli(moat_bin, tmp_path):
    return Cli(moat_bin, tmp_path / "home")


# ------------------------------------------------------------ the walk

def test_admin_walk(moatd, cli, tmp_path):
    m = moatd
    cp = cli.login(m)
    assert "Logged in to" in cp.stdout and "as admin" in cp.stdout
    # The config: 0600 in a 0700 directory, holding the token and the CA.
    st = os.stat(cli.config_path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cli.config_path.parent).st_mode) == 0o700
    cfg = cli.config()
    name = cfg["current"]
    srv = cfg["servers"][name]
    token = srv["token"]
    assert token.startswith("moat_")
    assert srv["trust"] == "ca" and "BEGIN CERTIFICATE" in srv["ca_pem"]
    assert srv["url"] == m.url and srv["username"] == "admin"
    assert re.fullmatch(r"cli-[a-z0-9-]+", srv["token_name"])
    assert bearer(m, token).status == 200
    # The login's session was ended at once: only the token remains.
    ev = [e for e in m.audit_events() if e.get("type") == "auth.logout"]
    assert ev, "the login session was not ended"

    cp = cli.run("whoami", check=0)
    assert "admin on " + m.url in cp.stdout and "owner" in cp.stdout
    me = json.loads(cli.run("whoami", "--json", check=0).stdout)
    assert me["username"] == "admin" and me["roles"] == ["owner"]

    # Users.
    cli.run("user", "create", "ann", "--role", "member", "--password-stdin",
            input=MEMBER_PW + "\n", check=0)
    users = json.loads(cli.run("user", "list", "--json", check=0).stdout)
    assert isinstance(users, list)
    assert {u["username"] for u in users} >= {"admin", "ann"}
    table = cli.run("user", "list", check=0).stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "ORG", "ROLES"]
    assert any(l.split()[0] == "ann" and "member" in l for l in table[1:])
    show = cli.run("user", "show", "ann", check=0).stdout
    assert re.search(r"^roles:\s+member$", show, re.M)
    cli.run("user", "roles", "ann", "member", "auditor", check=0)
    ann = json.loads(cli.run("user", "show", "ann", "--json",
                             check=0).stdout)
    assert sorted(ann["roles"]) == ["auditor", "member"]
    cp = cli.run("user", "disable", "ann", check=2)
    one_error_line(cp, r"no terminal.*--yes")
    assert not json.loads(cli.run("user", "show", "ann", "--json",
                                  check=0).stdout)["disabled"]
    cli.run("user", "disable", "ann", "--yes", check=0)
    assert json.loads(cli.run("user", "show", "ann", "--json",
                              check=0).stdout)["disabled"]
    cli.run("user", "enable", "ann", check=0)
    cp = cli.run("user", "show", "nobody", check=1)
    one_error_line(cp, r"^moat: server said 404 not_found: ")

    # Tokens: printed once (alone when piped), listed without values.
    cp = cli.run("token", "create", "ci", "--expires-in", "1d", check=0)
    ci = cp.stdout.strip()
    assert re.fullmatch(r"moat_[A-Za-z0-9_-]+", ci), cp.stdout
    assert bearer(m, ci).status == 200
    listed = cli.run("token", "list", "--json", check=0).stdout
    toks = json.loads(listed)
    assert {t["name"] for t in toks} >= {"ci", srv["token_name"]}
    assert ci not in listed and token not in listed
    assert "(this CLI)" in cli.run("token", "list", check=0).stdout
    exp = [t for t in toks if t["name"] == "ci"][0]["expires_at"]
    assert abs(exp - (time.time() + 86400)) < 300
    cli.run("token", "revoke", "ci", check=2)        # no terminal
    cli.run("token", "revoke", "ci", "--yes", check=0)
    assert bearer(m, ci).status == 401
    assert "ci" not in {t["name"] for t in json.loads(
        cli.run("token", "list", "--json", check=0).stdout)}

    # SSH keys: the default file is ~/.ssh/id_ed25519.pub.
    ssh = cli.home / ".ssh"
    ssh.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    "ann@laptop", "-f", str(ssh / "id_ed25519")],
                   check=True, capture_output=True)
    fp = subprocess.run(["ssh-keygen", "-lf", str(ssh / "id_ed25519.pub")],
                        check=True, capture_output=True,
                        text=True).stdout.split()[1]
    cp = cli.run("sshkey", "add", check=0)
    assert fp in cp.stdout
    keys = json.loads(cli.run("sshkey", "list", "--json", check=0).stdout)
    assert [(k["name"], k["fingerprint"]) for k in keys] == [
        ("ann@laptop", fp)]
    assert fp in cli.run("sshkey", "list", check=0).stdout
    # A private key is refused before anything is sent.
    cp = cli.run("sshkey", "add", ssh / "id_ed25519", check=1)
    one_error_line(cp, r"private key")
    cli.run("sshkey", "remove", "ann@laptop", check=2)
    cli.run("sshkey", "remove", keys[0]["id"], "--yes", check=0)
    assert json.loads(cli.run("sshkey", "list", "--json",
                              check=0).stdout) == []
    cli.run("sshkey", "add", ssh / "id_ed25519.pub", "--name", "work",
            check=0)

    # Secrets: the value from stdin, never shown.
    value = "s3cr3t-value-4ab9f1"
    cli.run("secret", "set", "db", "--env", "DB_PASSWORD",
            input=value + "\n", check=0)
    out = cli.run("secret", "list", "--json", check=0).stdout
    secrets = json.loads(out)
    assert [(s["name"], s.get("env")) for s in secrets] == [
        ("db", "DB_PASSWORD")]
    assert "value" not in secrets[0] and value not in out
    assert "db" in cli.run("secret", "list", check=0).stdout
    cli.run("secret", "set", "empty", input="", check=2)
    cli.run("secret", "rm", "db", "--yes", check=0)
    assert json.loads(cli.run("secret", "list", "--json",
                              check=0).stdout) == []

    # Policies: YAML in, JSON out.
    pfile = tmp_path / "git.yaml"
    pfile.write_text("mode: enforce\nallow:\n  - host: git.example.com\n"
                     "    ports: [443]\n")
    cli.run("policy", "set", "git", pfile, check=0)
    pol = json.loads(cli.run("policy", "get", "git", check=0).stdout)
    assert pol["name"] == "git" and pol["mode"] == "enforce"
    assert pol["allow"] == [{"host": "git.example.com", "ports": [443]}]
    jfile = tmp_path / "mon.json"
    jfile.write_text(json.dumps({"mode": "monitor", "deny": [
        {"cidr": "10.0.0.0/8"}]}))
    cli.run("policy", "set", "mon", jfile, check=0)
    names = {p["name"] for p in json.loads(
        cli.run("policy", "list", "--json", check=0).stdout)}
    assert names >= {"default", "git", "mon"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: sometimes\n")
    cp = cli.run("policy", "set", "bad", bad, check=1)
    one_error_line(cp, r"^moat: server said 400 ")
    cli.run("policy", "delete", "mon", "--yes", check=0)
    cli.run("policy", "get", "mon", check=1)

    # The audit trail shows all of it.
    def tail(*a):
        return cli.run("audit", "tail", *a, check=0).stdout
    text = mh.wait_until(lambda: (lambda t: "policy." in t and t)(
        tail("--limit", "200")), 10, what="audit events")
    for t in ("auth.login", "token.create", "user.create", "ssh_key",
              "secret", "policy"):
        assert t in text, (t, text)
    lines = tail("--type", "token.", "--json", "--limit", "100")
    evs = [json.loads(l) for l in lines.splitlines()]
    assert evs and all(e["type"].startswith("token.") for e in evs)
    assert [e["seq"] for e in evs] == sorted(e["seq"] for e in evs)
    last = evs[-1]["seq"]
    after = tail("--since", str(last), "--type", "token.", "--json")
    assert after.strip() == ""
    assert tail("--since", "1h", "--type", "user.create")

    # A 403 is one clear line (ann, a member, may not list users).
    ann_cli = Cli(cli.exe, tmp_path / "ann")
    ann_cli.login(m, "ann", MEMBER_PW)
    cp = ann_cli.run("user", "list", check=1)
    line = one_error_line(cp, r"^moat: server said 403 forbidden: ")
    assert len([l for l in cp.stderr.splitlines() if l.strip()]) == 1, \
        cp.stderr
    assert "users:read" in line

    # Logout revokes the stored token and forgets the server.
    cli.run("logout", check=0)
    assert bearer(m, token).status == 401
    cfg = cli.config()
    assert cfg["servers"] == {} and "current" not in cfg
    cp = cli.run("whoami", check=1)
    one_error_line(cp, r"not logged in")

    # No token was ever printed, except ci by token create.
    everything = "\n".join(cli.outputs + ann_cli.outputs)
    assert token not in everything
    assert ann_cli.config()["servers"][name]["token"] not in everything
    assert everything.count(ci) == 1
    # ...nor logged or audited by the server.
    assert token not in m.proc.stderr_text()
    assert token not in m.audit_path.read_text()


def test_audit_follow(moatd, cli):
    m = moatd
    cli.login(m)
    p = subprocess.Popen([str(cli.exe), "audit", "tail", "--follow",
                          "--type", "token.create", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=cli.env(), start_new_session=True)
    try:
        time.sleep(1.5)
        cli.run("token", "create", "followed", check=0)
        deadline = time.monotonic() + 15
        seen = []
        while time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if r:
                line = p.stdout.readline()
                if not line:
                    break
                seen.append(json.loads(line))
                if any(e["target"].get("name") == "followed" or
                       e.get("details", {}).get("name") == "followed"
                       for e in seen):
                    break
        assert any(e.get("details", {}).get("name") == "followed"
                   for e in seen), seen
        # Each event once, in order.
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(set(seqs))
    finally:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(10)
        err = p.stderr.read()
        for pat in SANITIZER:
            assert pat not in err, err


# ---------------------------------------------------------------- trust

def tls_fingerprint(m) -> str:
    out = subprocess.run(["openssl", "x509", "-in", str(m.secrets /
                          "tls.crt"), "-noout", "-fingerprint", "-sha256"],
                         check=True, capture_output=True,
                         text=True).stdout
    return out.strip().split("=", 1)[1]


def pty_login(cli, m, answer: str, pw: str, timeout=60):
    """moat login on a pseudo-terminal (its controlling terminal): answers
    the trust question with answer, then types the password. Returns (exit
    status, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(str(cli.exe), [str(cli.exe), "login", m.url,
                                     "--username", "admin"], cli.env())
        finally:
            os._exit(127)
    shown = b""
    steps = [(b"Trust this server? [y/N] ", answer.encode() + b"\n"),
             (b"Password for admin: ", pw.encode() + b"\n")]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                shown += data
            if steps and steps[0][0] in shown:
                os.write(fd, steps.pop(0)[1])
        done, status = 0, 0
        end = time.monotonic() + 10
        while done == 0 and time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            pytest.fail("moat login on a pty did not finish; it showed:\n"
                        + shown.decode("utf-8", "replace"))
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8",
                                                           "replace")


def test_trust_on_first_use_pty(moatd, cli):
    m = moatd
    fp_hex = tls_fingerprint(m)
    pw = admin_pw(m)
    # "n": nothing stored, nothing sent.
    rc, shown = pty_login(cli, m, "n", pw)
    assert rc == 1, shown
    assert "not trusted" in shown
    assert not cli.config_path.exists()
    logins = [e for e in m.audit_events() if e.get("type") == "auth.login"]
    assert logins == []
    # "y": the fingerprint shown is the certificate's; the password is not
    # echoed; the pin is stored and used from then on.
    rc, shown = pty_login(cli, m, "y", pw)
    assert rc == 0, shown
    assert fp_hex in shown
    assert pw not in shown
    assert "Logged in" in shown
    srv = cli.config()["servers"][cli.config()["current"]]
    assert srv["trust"] == "pin" and "ca_pem" not in srv
    assert srv["fingerprint"].startswith("SHA256:")
    cli.run("whoami", check=0)
    # Logging in again to the same, pinned server asks nothing (no
    # terminal here) and replaces the token, revoking the old one.
    old = srv["token"]
    cli.run("login", m.url, "--username", "admin", "--password-stdin",
            input=pw + "\n", check=0)
    new = cli.config()["servers"][cli.config()["current"]]["token"]
    assert new != old
    assert bearer(m, old).status == 401
    assert bearer(m, new).status == 200


def test_untrusted_without_terminal(moatd, cli):
    m = moatd
    pw = admin_pw(m)
    cp = cli.run("login", m.url, "--username", "admin", "--password-stdin",
                 input=pw + "\n", check=1)
    line = one_error_line(cp, r"not trusted.*no terminal")
    assert "--ca-file" in line and "SHA256:" in line
    assert not cli.config_path.exists()
    assert [e for e in m.audit_events()
            if e.get("type") == "auth.login"] == []
    wrong = "SHA256:" + "A" * 43
    cp = cli.run("login", m.url, "--username", "admin", "--password-stdin",
                 "--insecure-trust-fingerprint", wrong, input=pw + "\n",
                 check=1)
    one_error_line(cp, r"fingerprint")
    assert not cli.config_path.exists()
    cli.run("login", m.url, "--username", "admin", "--password-stdin",
            "--insecure-trust-fingerprint", tls_fingerprint(m),
            input=pw + "\n", check=0)
    assert cli.config()["servers"][cli.config()["current"]]["trust"] == \
        "pin"
    cli.run("whoami", check=0)
    # A wrong password: one line, exit 1, nothing stored.
    other = Cli(cli.exe, cli.home.parent / "other")
    cp = other.login(m, "admin", "not the password", check=1)
    one_error_line(cp, r"^moat: server said 401 invalid_credentials")
    assert not other.config_path.exists()


# --------------------------------------------------------------- config

def test_corrupt_or_exposed_config_untouched(moatd, cli):
    m = moatd
    cli.config_path.parent.mkdir(parents=True)
    garbage = b'{"version": 1, "servers": {"a": '
    cli.config_path.write_bytes(garbage)
    os.chmod(cli.config_path, 0o600)
    cp = cli.login(m, check=1)
    line = one_error_line(cp, r"corrupt")
    assert str(cli.config_path) in line
    assert cli.config_path.read_bytes() == garbage
    cli.run("whoami", check=1)
    cli.run("use", check=1)
    assert cli.config_path.read_bytes() == garbage
    # A readable-by-others config is refused, not fixed.
    cli.config_path.unlink()
    cli.login(m)
    before = cli.config_path.read_bytes()
    os.chmod(cli.config_path, 0o644)
    cp = cli.run("whoami", check=1)
    one_error_line(cp, r"chmod 600")
    cli.login(m, check=1)
    assert stat.S_IMODE(os.stat(cli.config_path).st_mode) == 0o644
    assert cli.config_path.read_bytes() == before
    os.chmod(cli.config_path, 0o600)
    cli.run("whoami", check=0)


def test_two_servers_and_use(moatd, cli):
    m = moatd
    cli.login(m, "admin", None, "--name", "one")
    cli.login(m, "admin", None, "--name", "two")
    cfg = cli.config()
    assert cfg["current"] == "two" and set(cfg["servers"]) == {"one", "two"}
    assert cfg["servers"]["one"]["token"] != cfg["servers"]["two"]["token"]
    table = cli.run("use", check=0).stdout.splitlines()
    assert re.match(r"^\*\s+two\s", [l for l in table if "two" in l][0])
    cli.run("use", "one", check=0)
    assert cli.config()["current"] == "one"
    cli.run("use", "three", check=1)
    assert cli.config()["current"] == "one"
    # MOAT_SERVER picks another one for a single command.
    cp = cli.run("whoami", env={"MOAT_SERVER": "two"}, check=0)
    assert "(server two)" in cp.stdout
    cp = cli.run("whoami", env={"MOAT_SERVER": "nine"}, check=1)
    one_error_line(cp, r"no server called 'nine'")
    # Logging out of one leaves the other.
    t_two = cli.config()["servers"]["two"]["token"]
    cli.run("logout", "two", check=0)
    assert bearer(m, t_two).status == 401
    assert set(cli.config()["servers"]) == {"one"}
    cli.run("whoami", check=0)
    # A server revoked behind the CLI's back: 401 explained, logout still
    # forgets it.
    t_one = cli.config()["servers"]["one"]
    r = m.curl("/api/v1/tokens/" + t_one["token_id"], method="DELETE",
               headers={"Authorization": f"Bearer {t_one['token']}"})
    assert r.status == 204
    cp = cli.run("whoami", check=1)
    assert "401" in cp.stderr and "moat login" in cp.stderr
    cli.run("logout", check=0)
    assert cli.config()["servers"] == {}


# ------------------------------------------------------------------ help

def test_help_everywhere(cli):
    top = cli.run("--help", check=0).stdout
    for group in ("login", "logout", "whoami", "use", "token", "user",
                  "sshkey", "secret", "policy", "audit"):
        assert group in top
        assert "usage: moat " in cli.run(group, "--help", check=0).stdout
        assert "usage: moat " in cli.run("help", group, check=0).stdout
    for group, subs in {"token": ("create", "list", "revoke"),
                        "user": ("create", "list", "show", "disable",
                                 "enable", "roles"),
                        "sshkey": ("add", "list", "remove"),
                        "secret": ("set", "list", "rm"),
                        "policy": ("list", "get", "set", "delete"),
                        "audit": ("tail", "verify")}.items():
        for sub in subs:
            cp = cli.run(group, sub, "--help", check=0)
            assert "usage: moat " + group in cp.stdout
    cp = cli.run("frobnicate", check=2)
    one_error_line(cp, r"unknown command 'frobnicate'")
    cp = cli.run("token", "frob", check=2)
    one_error_line(cp, r"unknown subcommand 'frob'")
    cp = cli.run("token", "create", "x", "--bogus", check=2)
    one_error_line(cp, r"unknown option '--bogus'")
    assert cli.run("--version", check=0).stdout.startswith("moat ")
    cli.run(check=2)
