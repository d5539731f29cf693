"""End-to-end tests of session recordings against a real moatd.

The SSH gateway that will record sessions is built separately; until it is
wired in, recordings are written by the test-only tool moat-recctl
(tests/e2e/helpers/recctl.c), which drives the same code the gateway calls
(asciicast.c, recstore.c) on moatd's data directory while moatd runs.

Covers: an auditor lists a recording and reads it as application/x-asciicast;
`asciinema cat` of what the API returned prints exactly the session's
output (characters split across packets, escape sequences, a resize);
security officers and admins may read it, a member gets 403 on both
routes, an unknown id 404; every read is an audit event
("recording.read") naming the recording; filters by user and workspace,
newest first, limit and the next cursor; a recording cut off by a crash
still reads; a tampered chunk is answered 500 "corrupt" (and audited as a
failure); and no file under the data directory holds the session text.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

import moat_harness as mh
from test_api import GOOD_PW, call, err, token_of

MARK = "Zq7-session-output-marker"
OUTPUT = ("$ echo h\u00e9llo w\u00f6rld \u20ac \U0001F600\r\n"
          "h\u00e9llo w\u00f6rld \u20ac \U0001F600\r\n"
          "\x1b[1;31m" + MARK + "\x1b[0m\r\n"
          "tab\there \"quoted\" back\\slash \x07bell\r\n"
          "\u4e2d\u6587 " * 20 + "\r\n$ exit\r\n")


def recctl() -> Path:
    p = mh.binary("moat-recctl")
    if not p.exists():
        pytest.skip("moat-recctl not built (MOAT_TESTS)")
    return p


def record(m, output: str | bytes, *args: str) -> str:
    data = output.encode() if isinstance(output, str) else output
    r = subprocess.run([str(recctl()), str(m.data_dir), *args], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=mh.child_env(), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    rec_id = r.stdout.decode().strip()
    assert len(rec_id) == 32, rec_id
    return rec_id


def asciinema_cat(path: Path) -> bytes:
    """`asciinema cat FILE`'s output. It opens /dev/tty, so it runs in a
    new session whose controlling terminal is a fresh pty; its stdout is
    a pipe, so the bytes are exactly what it wrote."""
    master, slave = pty.openpty()
    name = os.ttyname(slave)

    def ctty():
        os.setsid()
        os.close(os.open(name, os.O_RDWR))

    try:
        r = subprocess.run(["asciinema", "cat", str(path)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, preexec_fn=ctty,
                           timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def output_of(cast: bytes) -> str:
    """The "o" events' data of an asciicast, concatenated."""
    lines = cast.decode("utf-8").splitlines()
    return "".join(e[2] for e in map(json.loads, lines[1:]) if e[1] == "o")


class Env:
    def __init__(self, m):
        self.m = m
        pw = (m.data_dir / "initial-admin-password").read_text().strip()
        self.admin = token_of(m, "admin", pw)
        self.tokens = {}
        self.ids = {}
        for name, role in [("audrey", "auditor"), ("sofia",
                           "security-officer"), ("dev1", "member"),
                           ("dev2", "member")]:
            r = call(m, "POST", "/api/v1/users", self.admin,
                     {"username": name, "password": GOOD_PW, "role": role})
            assert r.status == 201, r.text
            self.tokens[name] = token_of(m, name, GOOD_PW)
            r = call(m, "GET", f"/api/v1/users/{name}", self.admin)
            assert r.status == 200, r.text
            self.ids[name] = r.json()["id"]

    def record(self, user, ws, output=OUTPUT, *extra):
        return record(self.m, output, "--user", user, "--user-id",
                      self.ids[user], "--owner", user, "--workspace", ws,
                      "--workspace-id", f"ws-{user}-{ws}", "--org",
                      "default", "--session", f"sess-{user}-{ws}", *extra)


@pytest.fixture
def env(moatd):
    return Env(moatd)


def events(m, type_):
    return [e for e in m.audit_events() if e.get("type") == type_]


def test_auditor_reads_and_asciinema_replays(env, tmp_path):
    m = env.m
    rec = env.record("dev1", "web", OUTPUT, "--packet", "5",
                     "--resize", "120x40")
    tok = env.tokens["audrey"]

    r = call(m, "GET", "/api/v1/recordings", tok)
    assert r.status == 200, r.text
    recs = r.json()["recordings"]
    assert [x["id"] for x in recs] == [rec]
    meta = recs[0]
    assert meta["user"] == "dev1" and meta["workspace"] == "web"
    assert meta["user_id"] == env.ids["dev1"]
    assert meta["client_addr"] == "127.0.0.1"
    assert meta["started_at"] and meta["ended_at"]
    assert meta["chunks"] >= 1 and meta["bytes"] > len(OUTPUT)
    assert "sealed" not in meta

    r = call(m, "GET", f"/api/v1/recordings/{rec}", tok)
    assert r.status == 200, r.text
    assert r.headers.get("Content-Type") == "application/x-asciicast"
    lines = r.body.decode("utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2
    assert (header["width"], header["height"]) == (80, 24)
    assert set(header["env"]) == {"TERM", "SHELL"}
    evs = [json.loads(x) for x in lines[1:]]
    assert all(isinstance(e[0], float) and e[1] in "or" for e in evs)
    assert ["r", "120x40"] in [e[1:] for e in evs]
    assert "".join(e[2] for e in evs if e[1] == "o") == OUTPUT

    cast = tmp_path / "session.cast"
    cast.write_bytes(r.body)
    assert asciinema_cat(cast) == OUTPUT.encode()

    # Reading it is audited, with the recording named.
    ev = mh.wait_until(lambda: [e for e in events(m, "recording.read")
                                if e["target"].get("id") == rec],
                       10, what="recording.read event")
    assert ev[0]["outcome"] == "success"
    assert ev[0]["actor"]["user"] == "audrey"
    assert ev[0]["details"]["user"] == "dev1"

    # Security officers and admins may; members may not (403 on both,
    # audited as access.denied); an unknown or malformed id is 404.
    for who in (env.tokens["sofia"], env.admin):
        r = call(m, "GET", f"/api/v1/recordings/{rec}", who)
        assert r.status == 200 and r.body.decode().count("\n") == len(lines)
    for path in ("/api/v1/recordings", f"/api/v1/recordings/{rec}"):
        err(call(m, "GET", path, env.tokens["dev1"]), 403, "forbidden")
    err(call(m, "GET", f"/api/v1/recordings/{rec}"), 401)
    err(call(m, "GET", "/api/v1/recordings/" + "0" * 32, tok), 404)
    # (an encoded slash is refused by the HTTP layer before routing)
    assert call(m, "GET", "/api/v1/recordings/..%2F..%2Fsecrets",
                tok).status in (400, 404)
    err(call(m, "GET", "/api/v1/recordings/not-an-id", tok), 404)
    mh.wait_until(lambda: [e for e in events(m, "access.denied")
                           if e["actor"].get("user") == "dev1"
                           and e["details"]["permission"] ==
                           "recordings:read"], 10, what="denial events")
    # Only the one successful read per reader was audited as a read.
    reads = [e for e in events(m, "recording.read")
             if e["target"].get("id") == rec]
    assert len(reads) == 3


def test_filters_order_and_paging(env):
    m = env.m
    tok = env.tokens["audrey"]
    a = env.record("dev1", "web", "one\r\n")
    b = env.record("dev2", "api", "two\r\n")
    c = env.record("dev1", "api", "three\r\n")

    def ids(query=""):
        r = call(m, "GET", "/api/v1/recordings" + query, tok)
        assert r.status == 200, r.text
        return [x["id"] for x in r.json()["recordings"]], r.json()

    assert ids()[0] == [c, b, a]                      # newest first
    assert ids("?user=dev1")[0] == [c, a]
    assert ids("?user=dev2")[0] == [b]
    assert ids("?user=nobody")[0] == []
    assert ids(f"?workspace=ws-dev1-api")[0] == [c]
    assert ids(f"?user=dev2&workspace=ws-dev1-api")[0] == []
    assert ids(f"?user=dev1&workspace=ws-dev1-web")[0] == [a]
    # An OWNER/NAME that is no workspace: nothing.
    assert ids("?workspace=dev1/web")[0] == []
    first, body = ids("?limit=2")
    assert first == [c, b] and body["next"] == b
    rest, body = ids(f"?limit=2&after={body['next']}")
    assert rest == [a] and "next" not in body
    for q in ("?limit=0", "?limit=501", "?limit=x", "?after=zz",
              "?workspace=a/b/c", "?workspace=has%20space"):
        err(call(m, "GET", "/api/v1/recordings" + q, tok), 400)


def test_crash_tamper_and_no_plaintext(env):
    m = env.m
    tok = env.tokens["audrey"]

    # A session process that died: no end recorded, the text reads.
    crashed = env.record("dev2", "web", OUTPUT, "--no-end")
    r = call(m, "GET", "/api/v1/recordings?user=dev2", tok)
    meta = r.json()["recordings"][0]
    assert meta["id"] == crashed and "ended_at" not in meta
    r = call(m, "GET", f"/api/v1/recordings/{crashed}", tok)
    assert r.status == 200, r.text
    assert output_of(r.body) == OUTPUT

    # No file under the data directory holds the session's text: not the
    # chunks, not the database or its WAL, not the logs.
    rec_dir = m.data_dir / "recordings" / crashed
    chunks = sorted(rec_dir.iterdir())
    assert chunks and all(p.name.endswith(".chunk") for p in chunks)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in chunks)
    assert rec_dir.stat().st_mode & 0o777 == 0o700
    needles = [MARK.encode(), "h\u00e9llo w\u00f6rld".encode(),
               b"back\\slash", b"back\\\\slash"]
    for p in m.data_dir.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for n in needles:
                assert n not in data, f"session text in {p}"

    # A chunk changed on disk: refused, and the failed read is audited.
    victim = chunks[-1]
    data = bytearray(victim.read_bytes())
    data[-3] = ord("A") if data[-3] != ord("A") else ord("B")
    victim.write_bytes(bytes(data))
    err(call(m, "GET", f"/api/v1/recordings/{crashed}", tok), 500,
        "corrupt")
    ev = mh.wait_until(lambda: [e for e in events(m, "recording.read")
                                if e["target"].get("id") == crashed
                                and e["outcome"] == "failure"], 10,
                       what="failed recording.read event")
    assert ev[0]["actor"]["user"] == "audrey"
