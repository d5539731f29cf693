"""End-to-end tests of the Core API v1 against a real moatd, with curl.

Covers the walk of the README (log in with the initial admin password,
create a member, give them a token, an SSH key and a secret), sessions and
cookies, logout, wrong passwords and throttling by (account, address), TOTP
with oathtool, password change, members and auditors denied (403 + audit),
API tokens, SSH keys (a 1024-bit RSA key refused), secrets never returned,
egress policies (JSON and YAML) and settings, the audit route, bad input of
every kind answered 4xx with nothing changed, a live secrets-directory swap
seen in the JWKS, and a grep of the database, its WAL, the logs and the
audit file for every secret value and password used.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

import moat_harness as mh

JSON = {"Content-Type": "application/json"}
GOOD_PW = "violet umbrella 7 orbit"


def call(m, method, path, token=None, body=None, raw=None, headers=None,
         extra=(), cookie=None):
    """One request with curl; body is sent as JSON, raw as is."""
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    elif raw is not None:
        data = raw
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        h["Cookie"] = f"moat_session={cookie}"
    return m.curl(path, *extra, method=method, headers=h, data=data)


def err(r, status, code=None):
    """Asserts the error shape of DESIGN.md section 3."""
    assert r.status == status, (r.status, r.text)
    e = r.json()["error"]
    assert set(e) == {"code", "message"}, e
    assert e["message"]
    if code is not None:
        assert e["code"] == code, e
    return e


def login(m, user, pw, totp=None, extra=()):
    body = {"username": user, "password": pw}
    if totp is not None:
        body["totp"] = totp
    return call(m, "POST", "/api/v1/auth/login", body=body, extra=extra)


def token_of(m, user, pw):
    r = login(m, user, pw)
    assert r.status == 200, r.text
    return r.json()["token"]


def events(m, type_=None):
    return [e for e in m.audit_events()
            if type_ is None or e.get("type") == type_]


def wait_event(m, pred, what):
    return mh.wait_until(lambda: [e for e in m.audit_events() if pred(e)],
                         10, what=what)


class Api:
    def __init__(self, m):
        self.m = m
        self.admin_pw = (m.data_dir / "initial-admin-password").read_text(
        ).strip()
        self.admin = token_of(m, "admin", self.admin_pw)

    def user(self, name, role="member", pw=GOOD_PW):
        r = call(self.m, "POST", "/api/v1/users", self.admin,
                 {"username": name, "password": pw, "role": role})
        assert r.status == 201, r.text
        return token_of(self.m, name, pw)

    def users(self):
        r = call(self.m, "GET", "/api/v1/users", self.admin)
        assert r.status == 200
        return sorted(u["username"] for u in r.json()["users"])


@pytest.fixture
def api(moatd):
    return Api(moatd)


# ------------------------------------------------------------ sessions

def test_login_cookie_me_logout(api):
    m = api.m
    r = login(m, "admin", api.admin_pw)
    assert r.status == 200
    body = r.json()
    assert set(body) >= {"token", "expires_at"}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["expires_at"])
    cookie = r.headers.get("Set-Cookie")
    assert cookie.startswith("moat_session=" + body["token"] + ";")
    for attr in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attr in cookie
    assert r.headers.get("Cache-Control") == "no-store"

    me = call(m, "GET", "/api/v1/users/me", body["token"])
    assert me.status == 200
    j = me.json()
    assert j["username"] == "admin" and j["roles"] == ["owner"]
    assert "password_hash" not in me.text and "sealed" not in me.text
    # The cookie alone authenticates too.
    me = call(m, "GET", "/api/v1/users/me", cookie=body["token"])
    assert me.status == 200 and me.json()["auth"] == "session"

    out = call(m, "POST", "/api/v1/auth/logout", body["token"])
    assert out.status == 204
    assert "Max-Age=0" in out.headers.get("Set-Cookie")
    mh.wait_until(lambda: call(m, "GET", "/api/v1/users/me",
                               body["token"]).status == 401, 10,
                  what="logged-out session refused")
    # Other sessions live on.
    assert call(m, "GET", "/api/v1/users/me", api.admin).status == 200
    ev = wait_event(m, lambda e: e.get("type") == "auth.login"
                    and e["outcome"] == "success", "auth.login event")[0]
    assert ev["actor"]["addr"] == "127.0.0.1"
    assert ev["target"]["name"] == "admin"


def test_wrong_password_and_throttling_by_address(api):
    m = api.m
    api.user("bob")
    r = login(m, "bob", "not the password at all")
    e = err(r, 401, "invalid_credentials")
    # Unknown user: the very same answer.
    e2 = err(login(m, "nosuchuser", "not the password at all"), 401,
             "invalid_credentials")
    assert e == e2
    # Fail until throttled (5 free failures).
    statuses = []
    for _ in range(12):
        r = login(m, "bob", "still not the password")
        statuses.append(r.status)
        if r.status == 429:
            break
    assert statuses[-1] == 429, statuses
    assert statuses.count(401) >= 4
    err(r, 429, "throttled")
    assert int(r.headers.get("Retry-After")) >= 1
    # The right password from the same address waits too...
    err(login(m, "bob", GOOD_PW), 429, "throttled")
    # ...but bob from another address is not locked out by a stranger.
    r = login(m, "bob", GOOD_PW, extra=("--interface", "127.0.0.5"))
    assert r.status == 200, r.text
    fails = wait_event(m, lambda e: e.get("type") == "auth.login"
                       and e["outcome"] == "failure", "failures audited")
    assert len(fails) >= 6
    assert all(f["actor"]["addr"] == "127.0.0.1" for f in fails)
    # A password typed as a user name is never recorded.
    assert all(f["target"]["name"] in ("bob", "") for f in fails)
    ok = wait_event(m, lambda e: e.get("type") == "auth.login"
                    and e["outcome"] == "success"
                    and e["actor"]["addr"] == "127.0.0.5", "other address")
    assert ok


def oathtool(secret, at=None):
    args = ["oathtool", "--totp", "-b", secret]
    if at is not None:
        args += ["-N", time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                     time.gmtime(at))]
    return subprocess.run(args, capture_output=True, text=True, check=True,
                          timeout=10).stdout.strip()


def test_totp_enroll_confirm_login(api):
    m = api.m
    tok = api.user("carol")
    r = call(m, "POST", "/api/v1/users/me/totp", tok)
    assert r.status == 200, r.text
    uri = r.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/")
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)[
        "secret"][0]
    # Not enabled until confirmed: login still works without a code.
    assert login(m, "carol", GOOD_PW).status == 200
    err(call(m, "POST", "/api/v1/users/me/totp/confirm", tok,
             {"code": "12ab56"}), 400)
    wrong = "%06d" % ((int(oathtool(secret)) + 1) % 1000000)
    err(call(m, "POST", "/api/v1/users/me/totp/confirm", tok,
             {"code": wrong}), 400, "invalid_code")
    r = call(m, "POST", "/api/v1/users/me/totp/confirm", tok,
             {"code": oathtool(secret)})
    assert r.status == 200, r.text
    assert call(m, "GET", "/api/v1/users/me", tok).json()["totp_enabled"]

    err(login(m, "carol", GOOD_PW), 401, "totp_required")
    err(login(m, "carol", GOOD_PW, totp=wrong), 401, "invalid_credentials")
    err(login(m, "carol", "wrong password here", totp=oathtool(secret)),
        401, "invalid_credentials")
    # The confirming code was used; the next step's code is accepted.
    r = login(m, "carol", GOOD_PW, totp=oathtool(secret, time.time() + 30))
    assert r.status == 200, r.text
    # Enrolling again is refused while enabled.
    err(call(m, "POST", "/api/v1/users/me/totp", tok), 409)


def test_password_change(api):
    m = api.m
    tok = api.user("dave")
    other = token_of(m, "dave", GOOD_PW)
    new = "quantum lemonade 44 river"
    err(call(m, "PUT", "/api/v1/users/me/password", tok,
             {"current": "not my password", "new": new}), 403,
        "invalid_credentials")
    err(call(m, "PUT", "/api/v1/users/me/password", tok,
             {"current": GOOD_PW, "new": "short"}), 400, "weak_password")
    r = call(m, "PUT", "/api/v1/users/me/password", tok,
             {"current": GOOD_PW, "new": new})
    assert r.status == 204, r.text
    err(login(m, "dave", GOOD_PW), 401, "invalid_credentials")
    assert login(m, "dave", new).status == 200
    # This session lives on; the others end.
    assert call(m, "GET", "/api/v1/users/me", tok).status == 200
    mh.wait_until(lambda: call(m, "GET", "/api/v1/users/me",
                               other).status == 401, 10,
                  what="other sessions revoked")
    ev = wait_event(m, lambda e: e.get("type") == "user.password.change"
                    and e["outcome"] == "success", "password change event")
    assert new not in json.dumps(ev)


# --------------------------------------------------------- authorization

def test_member_is_denied_admin_routes_and_audited(api):
    m = api.m
    tok = api.user("erin")
    assert call(m, "GET", "/api/v1/users/me", tok).json()["roles"] == [
        "member"]
    for method, path, body in [
            ("GET", "/api/v1/users", None),
            ("POST", "/api/v1/users", {"username": "mallory",
                                       "password": GOOD_PW,
                                       "role": "owner"}),
            ("POST", "/api/v1/users/admin/disable", None),
            ("PUT", "/api/v1/users/erin/roles", {"roles": ["admin"]}),
            ("GET", "/api/v1/audit", None),
            ("PUT", "/api/v1/policies/open", {"allow": [
                {"host": "*.example.com", "ports": [443]}]}),
            ("PUT", "/api/v1/orgs/default/settings", {"allow_sudo": True})]:
        err(call(m, method, path, tok, body), 403, "forbidden")
    assert "mallory" not in api.users()
    ev = wait_event(m, lambda e: e.get("type") == "access.denied"
                    and e["actor"].get("user") == "erin", "denials")
    assert len(ev) >= 7
    assert {e["details"]["permission"] for e in ev} >= {
        "users:read", "users:write", "audit:read", "policies:write",
        "settings:write"}
    assert all(e["outcome"] == "denied" for e in ev)


def test_auditor_reads_audit_and_nothing_else(api):
    m = api.m
    tok = api.user("ivy", role="auditor")
    r = call(m, "GET", "/api/v1/audit?type=user.create&limit=5", tok)
    assert r.status == 200, r.text
    evs = r.json()["events"]
    assert evs and all(e["type"] == "user.create" for e in evs)
    assert any(e.get("target", {}).get("name") == "ivy" for e in evs)
    # Prefix, since (sequence), limit.
    r = call(m, "GET", "/api/v1/audit?type=auth.&limit=2", tok).json()
    assert 1 <= len(r["events"]) <= 2
    assert all(e["type"].startswith("auth.") for e in r["events"])
    last = call(m, "GET", "/api/v1/audit?limit=1", tok).json()["events"][0]
    r = call(m, "GET", f"/api/v1/audit?since={last['seq']}", tok).json()
    assert all(e["seq"] > last["seq"] for e in r["events"])
    r = call(m, "GET", "/api/v1/audit?since=2999-01-01T00:00:00Z",
             tok).json()
    assert r["events"] == []
    seqs = [e["seq"] for e in call(m, "GET", "/api/v1/audit?limit=50",
                                   tok).json()["events"]]
    assert seqs == sorted(seqs)
    err(call(m, "GET", "/api/v1/audit?limit=0", tok), 400)
    err(call(m, "GET", "/api/v1/audit?since=yesterday", tok), 400)
    # Nothing else.
    for method, path in [("GET", "/api/v1/users"),
                         ("GET", "/api/v1/policies"),
                         ("GET", "/api/v1/orgs/default/settings"),
                         ("GET", "/api/v1/orgs")]:
        err(call(m, method, path, tok), 403, "forbidden")
    # Self-service is allowed.
    assert call(m, "GET", "/api/v1/users/me", tok).status == 200


def test_disable_user_and_owner_rules(api):
    m = api.m
    tok = api.user("frank")
    adm = api.user("grace", role="admin")
    r = call(m, "POST", "/api/v1/users/frank/disable", adm)
    assert r.status == 200 and r.json()["disabled"] is True
    mh.wait_until(lambda: call(m, "GET", "/api/v1/users/me",
                               tok).status == 401, 10,
                  what="disabled user's session refused")
    err(login(m, "frank", GOOD_PW), 401, "invalid_credentials")
    assert call(m, "POST", "/api/v1/users/frank/enable", adm).status == 200
    assert login(m, "frank", GOOD_PW).status == 200
    # An admin neither disables an owner nor grants owner.
    err(call(m, "POST", "/api/v1/users/admin/disable", adm), 403)
    err(call(m, "PUT", "/api/v1/users/frank/roles", adm,
             {"roles": ["owner"]}), 403)
    err(call(m, "POST", "/api/v1/users", adm,
             {"username": "henry", "password": GOOD_PW, "role": "owner"}),
        403)
    r = call(m, "PUT", "/api/v1/users/frank/roles", adm,
             {"roles": ["member", "template-admin"]})
    assert r.status == 200 and r.json()["roles"] == ["template-admin",
                                                     "member"]
    # Nobody disables themselves or drops their own owner role.
    err(call(m, "POST", "/api/v1/users/admin/disable", api.admin), 409)
    err(call(m, "PUT", "/api/v1/users/admin/roles", api.admin,
             {"roles": ["admin"]}), 409)
    err(call(m, "GET", "/api/v1/users/nobody", api.admin), 404)


# ------------------------------------------------------- tokens, keys

def test_tokens_create_use_revoke(api):
    m = api.m
    tok = api.user("judy")
    r = call(m, "POST", "/api/v1/tokens", tok, {"name": "laptop",
                                                "expires_in": 3600})
    assert r.status == 201, r.text
    t = r.json()
    assert t["token"].startswith("moat_") and t["id"]
    me = call(m, "GET", "/api/v1/users/me", t["token"])
    assert me.status == 200 and me.json()["auth"] == "token"
    lst = call(m, "GET", "/api/v1/tokens", tok)
    assert lst.status == 200
    assert [x["name"] for x in lst.json()["tokens"]] == ["laptop"]
    assert t["token"] not in lst.text and '"hash"' not in lst.text
    err(call(m, "POST", "/api/v1/tokens", tok, {"name": "laptop"}), 409)
    err(call(m, "POST", "/api/v1/tokens", tok, {"name": "x",
                                                "roles": ["admin"]}), 403)
    err(call(m, "POST", "/api/v1/tokens", tok, {"name": "x",
                                                "expires_in": 5}), 400)
    # Another member cannot see or revoke it.
    other = api.user("ken")
    err(call(m, "DELETE", f"/api/v1/tokens/{t['id']}", other), 404)
    assert call(m, "DELETE", f"/api/v1/tokens/{t['id']}", tok).status == 204
    mh.wait_until(lambda: call(m, "GET", "/api/v1/users/me",
                               t["token"]).status == 401, 10,
                  what="revoked token refused")
    err(call(m, "DELETE", f"/api/v1/tokens/{t['id']}", tok), 404)
    ev = wait_event(m, lambda e: e.get("type") in ("token.create",
                                                   "token.revoke"),
                    "token events")
    assert t["token"] not in json.dumps(ev)


def ssh_keygen(tmp, name, *args):
    key = Path(tmp) / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test",
                    "-f", str(key), *args], check=True, timeout=60)
    pub = key.with_suffix(".pub").read_text().strip()
    fp = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                         str(key) + ".pub"], capture_output=True, text=True,
                        check=True).stdout.split()[1]
    return pub, fp


def test_ssh_keys(api, tmp_path):
    m = api.m
    tok = api.user("liam")
    pub, fp = ssh_keygen(tmp_path, "ed", "-t", "ed25519")
    r = call(m, "POST", "/api/v1/ssh-keys", tok, {"name": "laptop",
                                                  "public_key": pub})
    assert r.status == 201, r.text
    k = r.json()
    assert k["fingerprint"] == fp and k["type"] == "ssh-ed25519"
    lst = call(m, "GET", "/api/v1/ssh-keys", tok).json()["ssh_keys"]
    assert [x["fingerprint"] for x in lst] == [fp]
    # The same key again (any name, any user) and the same name again.
    err(call(m, "POST", "/api/v1/ssh-keys", tok, {"name": "again",
                                                  "public_key": pub}), 409)
    other = api.user("mia")
    err(call(m, "POST", "/api/v1/ssh-keys", other, {"name": "mine",
                                                    "public_key": pub}), 409)
    pub2, _ = ssh_keygen(tmp_path, "ec", "-t", "ecdsa", "-b", "256")
    err(call(m, "POST", "/api/v1/ssh-keys", tok, {"name": "laptop",
                                                  "public_key": pub2}), 409)
    # Weak and malformed keys.
    weak, _ = ssh_keygen(tmp_path, "rsa1024", "-t", "rsa", "-b", "1024")
    e = err(call(m, "POST", "/api/v1/ssh-keys", tok,
                 {"name": "old", "public_key": weak}), 400)
    assert "public_key" in e["message"]
    err(call(m, "POST", "/api/v1/ssh-keys", tok,
             {"name": "junk", "public_key": "ssh-ed25519 AAAA!!"}), 400)
    err(call(m, "POST", "/api/v1/ssh-keys", tok,
             {"name": "bad/name", "public_key": pub2}), 400)
    # Someone else cannot delete it; the owner can, once.
    err(call(m, "DELETE", f"/api/v1/ssh-keys/{k['id']}", other), 404)
    assert call(m, "DELETE", f"/api/v1/ssh-keys/{k['id']}", tok).status == 204
    err(call(m, "DELETE", f"/api/v1/ssh-keys/{k['id']}", tok), 404)
    assert call(m, "GET", "/api/v1/ssh-keys", tok).json()["ssh_keys"] == []


def test_secrets_are_write_only(api):
    m = api.m
    tok = api.user("nina")
    value = "ghp_e2eSecretValue0123456789"
    r = call(m, "PUT", "/api/v1/secrets/github", tok,
             {"value": value, "env": "GITHUB_TOKEN"})
    assert r.status == 201, r.text
    assert value not in r.text
    r = call(m, "PUT", "/api/v1/secrets/github", tok, {"value": value + "2"})
    assert r.status == 200 and "env" not in r.json()
    lst = call(m, "GET", "/api/v1/secrets", tok)
    assert lst.status == 200
    s = lst.json()["secrets"]
    assert [x["name"] for x in s] == ["github"]
    assert set(s[0]) <= {"name", "env", "created_at", "updated_at"}
    assert value not in lst.text and "sealed" not in lst.text
    # Another user sees nothing of it.
    other = api.user("omar")
    assert call(m, "GET", "/api/v1/secrets", other).json()["secrets"] == []
    err(call(m, "DELETE", "/api/v1/secrets/github", other), 404)
    for bad in ("GitHub", "a--b", "-x", "x" * 21):
        err(call(m, "PUT", f"/api/v1/secrets/{bad}", tok, {"value": "v"}),
            400)
    err(call(m, "PUT", "/api/v1/secrets/env", tok,
             {"value": "v", "env": "1BAD"}), 400)
    assert call(m, "DELETE", "/api/v1/secrets/github", tok).status == 204
    err(call(m, "DELETE", "/api/v1/secrets/github", tok), 404)
    ev = wait_event(m, lambda e: e.get("type") == "secret.put", "secret.put")
    assert value not in json.dumps(ev)


# ------------------------------------------------- policies, settings

def test_policies_and_settings(api):
    m = api.m
    so = api.user("pat", role="security-officer")
    pol = {"mode": "enforce", "allow": [
        {"host": "*.Example.COM.", "ports": [443]},
        {"cidr": "10.0.0.0/8", "ports": [80, 443]}]}
    r = call(m, "PUT", "/api/v1/policies/web", so, pol)
    assert r.status == 201, r.text
    assert r.json()["allow"][0]["host"] == "*.example.com"
    yaml = ("mode: monitor\nallow:\n  - url: http://mirror.example.net/"
            "debian/\n")
    r = call(m, "PUT", "/api/v1/policies/mirror", so, raw=yaml,
             headers={"Content-Type": "application/yaml"})
    assert r.status == 201, r.text
    assert r.json()["mode"] == "monitor"
    r = call(m, "PUT", "/api/v1/policies/web", so, dict(pol, mode="monitor"))
    assert r.status == 200
    names = sorted(p["name"] for p in call(m, "GET", "/api/v1/policies",
                                           so).json()["policies"])
    assert names == ["default", "mirror", "web"]
    assert call(m, "GET", "/api/v1/policies/web", so).json()["mode"] == \
        "monitor"
    e = err(call(m, "PUT", "/api/v1/policies/bad", so, {"allow": [
        {"host": "ok.example"}, {"host": "x.example", "ports": [0]}]}), 400)
    assert "allow[1].ports[0]" in e["message"]
    err(call(m, "PUT", "/api/v1/policies/web", so, dict(pol, name="other")),
        400)
    err(call(m, "GET", "/api/v1/policies/bad", so), 404)
    err(call(m, "DELETE", "/api/v1/policies/default", so), 409)

    r = call(m, "GET", "/api/v1/orgs/default/settings", so)
    assert r.status == 200 and r.json()["default_policy"] == "default"
    r = call(m, "PUT", "/api/v1/orgs/default/settings", so,
             {"default_policy": "web", "allow_sudo": False,
              "registries": ["localhost:5000"]})
    assert r.status == 200, r.text
    assert call(m, "GET", "/api/v1/orgs/default/settings",
                so).json()["default_policy"] == "web"
    err(call(m, "PUT", "/api/v1/orgs/default/settings", so,
             {"default_policy": "nosuch"}), 400)
    err(call(m, "PUT", "/api/v1/orgs/default/settings", so,
             {"ssh": {"teleport": True}}), 400)
    err(call(m, "DELETE", "/api/v1/policies/web", so), 409)
    assert call(m, "DELETE", "/api/v1/policies/mirror", so).status == 204
    # Another organization is invisible to an officer of this one.
    assert call(m, "POST", "/api/v1/orgs", api.admin,
                {"name": "acme"}).status == 201
    err(call(m, "GET", "/api/v1/orgs/acme/settings", so), 404)
    assert call(m, "GET", "/api/v1/orgs/acme/settings",
                api.admin).status == 200
    ev = wait_event(m, lambda e: e.get("type") == "policy.put",
                    "policy.put events")
    assert len(ev) >= 3


def test_orgs_and_memberships(api):
    m = api.m
    api.user("quinn")
    assert call(m, "POST", "/api/v1/orgs", api.admin,
                {"name": "acme"}).status == 201
    err(call(m, "POST", "/api/v1/orgs", api.admin, {"name": "acme"}), 409)
    err(call(m, "POST", "/api/v1/orgs", api.admin, {"name": "Acme!"}), 400)
    names = [o["name"] for o in call(m, "GET", "/api/v1/orgs",
                                     api.admin).json()["orgs"]]
    assert "default" in names and "acme" in names
    err(call(m, "GET", "/api/v1/orgs/acme/members/quinn", api.admin), 404)
    r = call(m, "PUT", "/api/v1/orgs/acme/members/quinn", api.admin,
             {"roles": ["auditor"]})
    assert r.status == 200, r.text
    r = call(m, "GET", "/api/v1/orgs/acme/members/quinn", api.admin)
    assert r.json()["roles"] == ["auditor"]
    assert call(m, "GET", "/api/v1/orgs/default/members/quinn",
                api.admin).json()["roles"] == ["member"]
    err(call(m, "GET", "/api/v1/orgs/nosuch/members/quinn", api.admin), 404)


def test_jwks_and_openapi_public(api):
    m = api.m
    r = call(m, "GET", "/api/v1/jwks.json")
    assert r.status == 200
    keys = r.json()["keys"]
    assert keys and all(k["kty"] == "EC" and "d" not in k for k in keys)
    r = call(m, "GET", "/api/v1/openapi.json")
    assert r.status == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert doc["paths"]["/api/v1/auth/login"]["post"][
        "x-moat-permission"] == "public"


def test_secrets_dir_swap_changes_jwks(api):
    m = api.m
    kid_before = {k["kid"] for k in call(m, "GET", "/api/v1/jwks.json"
                                         ).json()["keys"]}
    secrets = m.secrets
    files = {p.name: p.read_bytes() for p in secrets.iterdir()
             if p.is_file() and not p.name.startswith("..")}
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC",
                          "-pkeyopt", "ec_paramgen_curve:P-256"],
                         capture_output=True, check=True).stdout
    old_kid = files["jwt-signing.kid"].decode().strip()
    files[f"jwt-verify-{old_kid}.pem"] = files["jwt-signing.pem"]
    files["jwt-signing.pem"] = key
    files["jwt-signing.kid"] = b"rotated1"
    mh.secrets_swap(secrets, files)

    def swapped():
        kids = {k["kid"] for k in call(m, "GET", "/api/v1/jwks.json"
                                       ).json()["keys"]}
        return "rotated1" in kids and kids
    kids = mh.wait_until(swapped, 15, what="new JWT key in the JWKS")
    assert kid_before <= kids
    # New logins are signed by the new key; old tokens still verify.
    assert call(m, "GET", "/api/v1/users/me", api.admin).status == 200
    tok = token_of(m, "admin", api.admin_pw)
    import base64
    head = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
    assert head["kid"] == "rotated1"
    assert call(m, "GET", "/api/v1/users/me", tok).status == 200


# ------------------------------------------------------------ bad input

def test_bad_input_changes_nothing(api):
    m = api.m
    api.user("rita")
    before = api.users()
    create = "/api/v1/users"
    cases = [
        ("{", JSON, 400),
        ('{"username": "x"', JSON, 400),
        ("[]", JSON, 400),
        ('"str"', JSON, 400),
        ('{"username": 5, "password": "%s"}' % GOOD_PW, JSON, 400),
        ('{"username": "sam", "password": "%s", "role": ["member"]}'
         % GOOD_PW, JSON, 400),
        ('{"username": "sam", "password": "%s", "admin": true}' % GOOD_PW,
         JSON, 400),
        ('{"username": "sam", "username": "tom", "password": "%s"}'
         % GOOD_PW, JSON, 400),
        ('{"username": "Sam", "password": "%s"}' % GOOD_PW, JSON, 400),
        ('{"username": "root", "password": "%s"}' % GOOD_PW, JSON, 400),
        ('{"username": "sam--x", "password": "%s"}' % GOOD_PW, JSON, 400),
        ('{"username": "%s", "password": "%s"}' % ("s" * 21, GOOD_PW), JSON,
         400),
        ('{"username": "sam", "password": "%s", "role": "god"}' % GOOD_PW,
         JSON, 400),
        ('{"username": "sam", "password": "short"}', JSON, 400),
        ('{"username": "rita", "password": "%s"}' % GOOD_PW, JSON, 409),
        ('{"username": "sam", "password": "%s"}' % GOOD_PW,
         {"Content-Type": "text/plain"}, 415),
        ('{"username": "sam", "password": "%s"}' % GOOD_PW, {}, 415),
        ('{"username": "sam\\u0000", "password": "%s"}' % GOOD_PW, JSON,
         400),
        (b'{"username": "s\xffam", "password": "x"}', JSON, 400),
        ('{"username": "sam", "password": "%s", "x": %s}'
         % (GOOD_PW, "[" * 100 + "]" * 100), JSON, 400),
        ('{"username": "sam", "password": "%s", "pad": "%s"}'
         % (GOOD_PW, "x" * 70000), JSON, 413),
    ]
    for raw, headers, status in cases:
        r = call(m, "POST", create, api.admin, raw=raw, headers=headers)
        err(r, status)
    # Over the HTTP layer's limit too.
    r = call(m, "POST", create, api.admin, raw="x" * (2 << 20),
             headers=JSON)
    assert r.status == 413
    # Malformed bodies on other write routes.
    for method, path, raw in [
            ("POST", "/api/v1/tokens", '{"name": ""}'),
            ("POST", "/api/v1/tokens", '{"name": "n", "expires_in": "1"}'),
            ("POST", "/api/v1/tokens", '{"name": "n", "expires_in": 1.5}'),
            ("POST", "/api/v1/ssh-keys", '{"name": "k"}'),
            ("PUT", "/api/v1/secrets/ok", '{"value": 1}'),
            ("PUT", "/api/v1/secrets/ok", '{"value": "v", "other": 1}'),
            ("PUT", "/api/v1/users/rita/roles", '{"roles": "admin"}'),
            ("PUT", "/api/v1/users/rita/roles", '{"roles": ["boss"]}'),
            ("PUT", "/api/v1/policies/p", '{"allow": {}}'),
            ("PUT", "/api/v1/policies/p", '{"mode": "open"}'),
            ("PUT", "/api/v1/orgs/default/settings", '{"allow_sudo": 1}'),
            ("POST", "/api/v1/users/me/totp/confirm", '{"code": 123456}'),
            ("PUT", "/api/v1/users/me/password", '{"current": "x"}'),
            ("POST", "/api/v1/auth/logout", '{}'),
            ("POST", "/api/v1/users/rita/disable", '{"now": true}')]:
        r = call(m, method, path, api.admin, raw=raw, headers=JSON)
        err(r, 400)
    r = call(m, "PUT", "/api/v1/policies/p", api.admin,
             raw="allow: [unclosed\n", headers={
                 "Content-Type": "application/yaml"})
    err(r, 400)
    r = call(m, "PUT", "/api/v1/policies/p", api.admin,
             raw="a: &x 1\nb: *x\n", headers={
                 "Content-Type": "application/yaml"})
    err(r, 400)
    # Login's own shapes.
    err(call(m, "POST", "/api/v1/auth/login", raw="{}", headers=JSON), 400)
    err(call(m, "POST", "/api/v1/auth/login", raw='{"username": "a"}',
             headers=JSON), 400)
    err(call(m, "POST", "/api/v1/auth/login", raw="not json",
             headers=JSON), 400)
    # Odd paths and queries.
    err(call(m, "GET", "/api/v1/users?limit=-1", api.admin), 400)
    err(call(m, "GET", "/api/v1/users?limit=%zz", api.admin), 400)
    r = call(m, "GET", "/api/v1/users/%2e%2e", api.admin)
    assert r.status in (400, 404) and r.json()["error"]["code"]
    r = call(m, "DELETE", "/api/v1/ssh-keys/..%2f..", api.admin)
    assert 400 <= r.status < 500 and r.json()["error"]["code"]
    err(call(m, "GET", "/api/v1/policies/" + "p" * 300, api.admin), 404)
    assert api.users() == before
    assert call(m, "GET", "/api/v1/tokens", api.admin).json()["tokens"] == []
    assert [p["name"] for p in call(m, "GET", "/api/v1/policies",
                                    api.admin).json()["policies"]] == [
        "default"]
    # No 5xx was logged by the access log for any of it.
    lines = [d for d in m.log_lines() if d.get("component") == "access"]
    assert lines and all(int(d.get("status", 0)) < 500 for d in lines)


# ------------------------------------------------------ no plaintext

def test_no_secret_in_plaintext_anywhere(api, tmp_path):
    m = api.m
    secret_value = "PLAINTEXT-CANARY-7f3a9c1e5b"
    member_pw = "canary password 9d2e4f6a8b"
    new_pw = "canary changed 1c3e5a7b9d"
    tok = api.user("sue", pw=member_pw)
    assert call(m, "PUT", "/api/v1/secrets/canary", tok,
                {"value": secret_value, "env": "CANARY"}).status == 201
    assert call(m, "PUT", "/api/v1/secrets/deleted", tok,
                {"value": secret_value + "-gone"}).status == 201
    assert call(m, "DELETE", "/api/v1/secrets/deleted", tok).status == 204
    t = call(m, "POST", "/api/v1/tokens", tok, {"name": "ci"}).json()["token"]
    assert call(m, "PUT", "/api/v1/users/me/password", tok,
                {"current": member_pw, "new": new_pw}).status == 204
    enroll = call(m, "POST", "/api/v1/users/me/totp", tok).json()
    seed = urllib.parse.parse_qs(urllib.parse.urlsplit(
        enroll["otpauth_uri"]).query)["secret"][0]
    login(m, "sue", "typo " + new_pw)              # a failed login
    login(m, member_pw, new_pw)                     # password as user name
    needles = [secret_value, member_pw, new_pw, t, seed, api.admin_pw,
               secret_value + "-gone"]
    mh.wait_until(lambda: events(m, "user.totp.enroll"), 10,
                  what="audit written")
    m.stop()
    files = [m.data_dir / "moatd.db", m.audit_path]
    for extra in ("moatd.db-wal", "moatd.db-shm"):
        if (m.data_dir / extra).exists():
            files.append(m.data_dir / extra)
    files += [m.proc.stderr_path, m.proc.stdout_path]
    for f in files:
        data = Path(f).read_bytes()
        for n in needles:
            assert n.encode() not in data, f"{n!r} found in {f}"


def test_unknown_api_path(api):
    m = api.m
    # Anonymous: the same audited 401 as a real route, no hint.
    err(call(m, "GET", "/api/v1/no-such-thing"), 401, "unauthenticated")
    wait_event(m, lambda e: e.get("type") == "access.denied" and
               e.get("target", {}).get("path") == "/api/v1/no-such-thing",
               "access.denied for the unknown path")
    # With credentials: 404.
    err(call(m, "GET", "/api/v1/no-such-thing", api.admin), 404, "not_found")
