"""The permission matrix: every route of the Core API, called as every role
and anonymously, against a real moatd.

The routes come from the OpenAPI document moatd serves (test_api.c checks
that it lists exactly the registered route table, each operation with its
x-moat-permission). The expected answer comes from the role table below,
written from the issue independently of src/moatd/rbac/rbac.c: anonymous
callers get 401 on every non-public route; a role without the permission
gets 403; everyone else gets past authorization (any status but 401/403).
Requests carry no body and point at things that do not exist, so a caller
who passes authorization changes nothing (400 or 404 for the most part).
"""

from __future__ import annotations

import json
import re

import pytest

import moat_harness as mh

ALL = {"users:read", "users:write", "orgs:read", "orgs:write", "audit:read",
       "settings:read", "settings:write", "policies:read", "policies:write",
       "templates:read", "templates:write", "workspaces:own",
       "workspaces:all", "recordings:read", "sessions:admin"}
ROLES = {
    "owner": ALL,
    "admin": ALL,
    "template-admin": {"templates:read", "templates:write", "policies:read"},
    "auditor": {"audit:read", "recordings:read"},
    "security-officer": {"settings:read", "settings:write", "policies:read",
                         "policies:write", "audit:read", "recordings:read"},
    "member": {"templates:read", "workspaces:own"},
}
PARAMS = {"username": "nobody-here", "owner": "nobody-here",
          "org": "default", "name": "no-such",
          "id": "0123456789abcdef0123456789abcdef"}
PW = "matrix passphrase 31 gamma"


def expected(role: str | None, perm: str) -> str:
    if perm == "public":
        return "ok"
    if role is None:
        return "401"
    if perm == "self" or perm in ROLES[role]:
        return "ok"
    return "403"


def outcome(status: int) -> str:
    return str(status) if status in (401, 403) else "ok"


def request(m, method, path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return m.request(path, method, headers=headers)


def test_every_route_as_every_role(moatd):
    m = moatd
    admin_pw = (m.data_dir / "initial-admin-password").read_text().strip()

    def token_for(user, pw):
        r = m.request("/api/v1/auth/login", "POST", body=json.dumps(
            {"username": user, "password": pw}).encode(),
            headers={"Content-Type": "application/json"})
        assert r.status == 200, r.text
        session = r.json()["token"]
        # An API token, so that calling logout below ends nothing.
        r = m.request("/api/v1/tokens", "POST", body=json.dumps(
            {"name": "matrix"}).encode(), headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {session}"})
        assert r.status == 201, r.text
        return r.json()["token"]

    tokens: dict[str | None, str | None] = {None: None}
    tokens["owner"] = token_for("admin", admin_pw)
    for i, role in enumerate(r for r in ROLES if r != "owner"):
        name = f"matrix{i}"
        r = m.request("/api/v1/users", "POST", body=json.dumps(
            {"username": name, "password": PW, "role": role}).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {tokens['owner']}"})
        assert r.status == 201, r.text
        tokens[role] = token_for(name, PW)

    doc = request(m, "GET", "/api/v1/openapi.json").json()
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            perm = op.get("x-moat-permission")
            assert perm in ALL | {"public", "self"}, (method, path, perm)
            url = re.sub(r"\{(\w+)\}", lambda g: PARAMS[g.group(1)], path)
            ops.append((method.upper(), path, url, perm))
    assert len(ops) >= 30

    mismatches = []
    calls = 0
    for method, path, url, perm in ops:
        for role, tok in tokens.items():
            r = request(m, method, url, tok)
            calls += 1
            got, want = outcome(r.status), expected(role, perm)
            if r.status >= 500 or got != want:
                mismatches.append(f"{method} {path} as {role or 'anonymous'}"
                                  f": {r.status} (want {want})")
            if r.status >= 400:
                assert set(r.json()["error"]) == {"code", "message"}
    assert not mismatches, "\n".join(mismatches)
    assert calls == len(ops) * 7

    # Every refusal was audited: one access.denied per 401 and 403.
    denials = sum(1 for method, path, url, perm in ops
                  for role in tokens if expected(role, perm) != "ok")
    mh.wait_until(lambda: len([e for e in m.audit_events()
                               if e.get("type") == "access.denied"])
                  >= denials, 10, what="every denial audited")
    # All roles still work: nothing above ended a session or token.
    for role, tok in tokens.items():
        if role is not None:
            assert request(m, "GET", "/api/v1/users/me", tok).status == 200
