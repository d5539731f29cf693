"""End-to-end tests of workspace templates (/api/v1/templates) against a
real moatd, with curl.

Covers: the `base` template and the `localhost` registry that `moatd init`
creates; a template admin creating, reading, replacing and deleting
templates, with defaults filled in and the image made canonical; members
reading but not writing (403 and an access.denied event), as do auditors
not at all; every kind of bad body (image references of every broken shape,
a registry off the organization's allow-list, an unknown egress policy, bad
env names and reserved variables, sizes and ranges, an oversized script)
answered 400 with nothing stored; a policy named by a template refused
deletion; concurrent replacement; and the audit events of every write.
"""

from __future__ import annotations

import json
import threading

import pytest

import moat_harness as mh

GOOD_PW = "violet umbrella 7 orbit"
HEX64 = "0123456789abcdef" * 4
BASE_IMAGE = "localhost/moat/base:latest"
JSON = {"Content-Type": "application/json"}


def call(m, method, path, token=None, body=None, raw=None, headers=None):
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    elif raw is not None:
        data = raw
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return m.curl(path, method=method, headers=h, data=data)


def err(r, status, code=None):
    assert r.status == status, (r.status, r.text)
    e = r.json()["error"]
    assert set(e) == {"code", "message"}, e
    assert e["message"]
    if code is not None:
        assert e["code"] == code, e
    return e


def token_of(m, user, pw):
    r = call(m, "POST", "/api/v1/auth/login",
             body={"username": user, "password": pw})
    assert r.status == 200, r.text
    return r.json()["token"]


def wait_events(m, pred, what, n=1):
    return mh.wait_until(
        lambda: (lambda ev: ev if len(ev) >= n else None)(
            [e for e in m.audit_events() if pred(e)]), 10, what=what)


class Api:
    def __init__(self, m):
        self.m = m
        pw = (m.data_dir / "initial-admin-password").read_text().strip()
        self.admin = token_of(m, "admin", pw)

    def user(self, name, role):
        r = call(self.m, "POST", "/api/v1/users", self.admin,
                 {"username": name, "password": GOOD_PW, "role": role})
        assert r.status == 201, r.text
        return token_of(self.m, name, GOOD_PW)

    def templates(self, tok=None):
        r = call(self.m, "GET", "/api/v1/templates", tok or self.admin)
        assert r.status == 200, r.text
        return {t["name"]: t for t in r.json()["templates"]}

    def settings(self, **kw):
        r = call(self.m, "GET", "/api/v1/orgs/default/settings", self.admin)
        assert r.status == 200
        s = r.json()
        if kw:
            s = {k: v for k, v in s.items() if k in (
                "default_policy", "allow_sudo", "ssh", "registries")}
            s.update(kw)
            r = call(self.m, "PUT", "/api/v1/orgs/default/settings",
                     self.admin, s)
            assert r.status == 200, r.text
            s = r.json()
        return s


@pytest.fixture
def api(moatd):
    return Api(moatd)


def test_base_template_after_init(api):
    m = api.m
    member = api.user("mia", "member")
    base = api.templates(member)["base"]
    assert base["image"] == BASE_IMAGE
    assert base["org"] == "default"
    assert (base["cpu"], base["memory_mb"], base["disk_mb"],
            base["root_disk_mb"], base["idle_timeout"]) == (
                2000, 2048, 4096, 2048, 3600)
    assert base["env"] == {} and base["ports"] == []
    assert base["egress_policy"] is None and base["forbid_sudo"] is False
    assert "rev" not in base
    r = call(m, "GET", "/api/v1/templates/base", member)
    assert r.status == 200 and r.json() == base
    # init made it valid: "localhost" (only local images) is allowed.
    assert api.settings()["registries"] == ["localhost"]
    ev = [e for e in m.audit_events() if e.get("type") == "template.create"]
    assert ev and ev[0]["target"] == {"type": "template", "name": "base"}
    assert ev[0]["details"]["via"] == "moatd init"


def test_template_admin_lifecycle(api):
    m = api.m
    ta = api.user("tess", "template-admin")
    so = api.user("sol", "security-officer")
    r = call(m, "PUT", "/api/v1/policies/pypi", so, {"allow": [
        {"host": "pypi.example", "ports": [443]}]})
    assert r.status == 201, r.text

    body = {"name": "python", "image": "localhost/moat/base",
            "cpu": 4000, "memory_mb": 8192, "disk_mb": 20480,
            "root_disk_mb": 4096,
            "env": {"PIP_INDEX_URL": "https://pypi.example/simple",
                    "EDITOR": "vim"},
            "startup_script": "#!/bin/sh\npip install --user poetry\n",
            "egress_policy": "pypi", "idle_timeout": 7200,
            "ports": [8000, 8080], "forbid_sudo": True}
    r = call(m, "POST", "/api/v1/templates", ta, body)
    assert r.status == 201, r.text
    t = r.json()
    assert t["image"] == BASE_IMAGE
    for k in ("cpu", "memory_mb", "disk_mb", "root_disk_mb", "env",
              "startup_script", "egress_policy", "idle_timeout", "ports",
              "forbid_sudo", "name"):
        assert t[k] == body[k], k
    assert t["org"] == "default" and len(t["id"]) == 32
    assert call(m, "GET", "/api/v1/templates/python", ta).json() == t
    err(call(m, "POST", "/api/v1/templates", ta, body), 409, "exists")

    # PUT replaces: what is left out takes its default.
    r = call(m, "PUT", "/api/v1/templates/python", ta,
             {"image": "localhost/moat/base:v2", "cpu": 1000})
    assert r.status == 200, r.text
    t2 = r.json()
    assert t2["id"] == t["id"] and t2["created_at"] == t["created_at"]
    assert t2["image"] == "localhost/moat/base:v2" and t2["cpu"] == 1000
    assert t2["memory_mb"] == 2048 and t2["env"] == {}
    assert t2["egress_policy"] is None and t2["forbid_sudo"] is False
    assert call(m, "GET", "/api/v1/templates/python", ta).json() == t2
    err(call(m, "PUT", "/api/v1/templates/python", ta,
             {"name": "other", "image": "localhost/x"}), 400)
    err(call(m, "PUT", "/api/v1/templates/nosuch", ta,
             {"image": "localhost/x"}), 404)

    # A template names a policy: that policy cannot be deleted.
    r = call(m, "PUT", "/api/v1/templates/python", ta,
             dict(body, name="python"))
    assert r.status == 200, r.text
    e = err(call(m, "DELETE", "/api/v1/policies/pypi", so), 409)
    assert "python" in e["message"]

    assert call(m, "DELETE", "/api/v1/templates/python", ta).status == 204
    err(call(m, "GET", "/api/v1/templates/python", ta), 404)
    err(call(m, "DELETE", "/api/v1/templates/python", ta), 404)
    assert call(m, "DELETE", "/api/v1/policies/pypi", so).status == 204
    assert set(api.templates()) == {"base"}

    # Admins write templates too.
    r = call(m, "POST", "/api/v1/templates", api.admin,
             {"name": "plain", "image": "localhost/moat/base"})
    assert r.status == 201, r.text

    for typ, n in (("template.create", 2), ("template.update", 2),
                   ("template.delete", 1)):
        ev = wait_events(m, lambda e, typ=typ: e.get("type") == typ and
                         e["outcome"] == "success" and
                         e["actor"].get("user") in ("tess", "admin"),
                         typ, n)
        assert all(e["target"] == {"type": "template",
                                   "name": e["target"]["name"]} for e in ev)
    ev = [e for e in m.audit_events() if e.get("type") == "template.create"
          and e["actor"].get("user") == "tess"]
    assert ev[0]["target"]["name"] == "python"
    assert ev[0]["details"]["image"] == BASE_IMAGE
    assert ev[0]["details"]["egress_policy"] == "pypi"
    assert "startup_script" not in json.dumps(ev[0]["details"])
    # The 409 on a second create was audited as a failure.
    assert [e for e in m.audit_events() if e.get("type") == "template.create"
            and e["outcome"] == "failure"]


def test_members_read_but_do_not_write(api):
    m = api.m
    member = api.user("max", "member")
    auditor = api.user("ada", "auditor")
    assert "base" in api.templates(member)
    writes = [("POST", "/api/v1/templates",
               {"name": "mine", "image": "localhost/moat/base"}),
              ("PUT", "/api/v1/templates/base",
               {"image": "localhost/moat/base", "forbid_sudo": False}),
              ("DELETE", "/api/v1/templates/base", None)]
    for method, path, body in writes:
        e = err(call(m, method, path, member, body), 403, "forbidden")
        assert "templates:write" in e["message"]
    err(call(m, "GET", "/api/v1/templates", auditor), 403, "forbidden")
    err(call(m, "GET", "/api/v1/templates/base", auditor), 403)
    err(call(m, "GET", "/api/v1/templates"), 401)
    assert set(api.templates()) == {"base"}
    assert api.templates()["base"]["image"] == BASE_IMAGE
    ev = wait_events(m, lambda e: e.get("type") == "access.denied" and
                     e["actor"].get("user") == "max", "member denials", 3)
    assert {e["details"]["permission"] for e in ev} == {"templates:write"}
    assert all(e["outcome"] == "denied" for e in ev)
    assert not [e for e in m.audit_events()
                if e.get("type", "").startswith("template.")
                and e.get("actor", {}).get("user") == "max"]


BAD_IMAGES = [
    ("localhost/Moat/base", "lower case"),
    ("localhost/moat/base base", "spaces"),
    (" localhost/moat/base", "spaces"),
    ("localhost/moat/../base", "each part"),
    ("localhost/moat..base", "each part"),
    ("localhost/" + "a" * 250, "longer than 255"),
    ("localhost/moat/base:-bad", "tag"),
    ("localhost/moat/base:" + "t" * 129, "tag"),
    ("localhost/moat/base:a:b", "tag"),
    ("localhost/moat/base@sha256:" + HEX64[:63], "digest"),
    ("localhost/moat/base@sha256:" + HEX64 + "0", "digest"),
    ("localhost/moat/base@sha256:" + HEX64.upper(), "digest"),
    ("localhost/moat/base@md5:" + HEX64, "digest"),
    ("localhost/moat/base\t", "spaces"),
    ("", "empty"),
    ("localhost:0/x", "port"),
]


def test_bad_bodies_change_nothing(api):
    m = api.m
    ta = api.user("tom", "template-admin")
    before = api.templates()

    def ok(**kw):
        return dict({"name": "t1", "image": "localhost/moat/base"}, **kw)

    cases = [(ok(image=img), why) for img, why in BAD_IMAGES]
    cases += [
        # Registries off the allow-list: named in the message.
        (ok(image="debian:12"), "registry docker.io is not"),
        (ok(image="quay.io/team/tool"), "registry quay.io is not"),
        (ok(image="localhost:5000/moat/base"),
         "registry localhost:5000 is not"),
        (ok(egress_policy="nosuch"), "egress_policy: no policy"),
        (ok(egress_policy="Bad Name"), "egress_policy"),
        (ok(egress_policy=7), "egress_policy"),
        (ok(env={"1ABC": "x"}), "env: a variable name"),
        (ok(env={"A-B": "x"}), "env: a variable name"),
        (ok(env={"": "x"}), "env: a variable name"),
        (ok(env={"HTTP_PROXY": "http://evil:3128"}), "env.HTTP_PROXY"),
        (ok(env={"https_proxy": "x"}), "env.https_proxy"),
        (ok(env={"NO_PROXY": "*"}), "env.NO_PROXY"),
        (ok(env={"no_proxy": "*"}), "env.no_proxy"),
        (ok(env={"MOAT_AGENT": "x"}), "MOAT_"),
        (ok(env={"A": 1}), "env.A"),
        (ok(env={"A": "v" * 4097}), "longer than 4096"),
        (ok(env={f"V{i}": "x" for i in range(65)}), "more than 64"),
        (ok(env=["A=1"]), "env"),
        (ok(startup_script="x" * (64 * 1024 + 1)), "startup_script"),
        (ok(cpu=99), "cpu"), (ok(cpu=64001), "cpu"), (ok(cpu="2"), "cpu"),
        (ok(memory_mb=63), "memory_mb"), (ok(disk_mb=1048577), "disk_mb"),
        (ok(root_disk_mb=10), "root_disk_mb"),
        (ok(idle_timeout=30), "idle_timeout"),
        (ok(idle_timeout=604801), "idle_timeout"),
        (ok(ports=[0]), "ports[0]"), (ok(ports=[22, 70000]), "ports[1]"),
        (ok(ports=[22, 22]), "repeats"),
        (ok(ports=list(range(1, 34))), "ports"),
        (ok(forbid_sudo="no"), "forbid_sudo"),
        (ok(name="Upper"), "name"), (ok(name="a--b"), "name"),
        (ok(name="x" * 21), "name"),
        (ok(shell="zsh"), "unknown field"), (ok(id="x"), "unknown field"),
        (ok(org="acme"), "unknown field"),
        ({"image": "localhost/moat/base"}, "name"),
        ({"name": "t1"}, "image"),
    ]
    for body, why in cases:
        e = err(call(m, "POST", "/api/v1/templates", ta, body), 400,
                "invalid_request")
        assert why in e["message"], (body if len(json.dumps(body)) < 200
                                     else why, e)
        # The offending value is never echoed back.
        assert "evil" not in e["message"]
    # The same through PUT, on the base template.
    for body, why in cases[:len(BAD_IMAGES) + 3]:
        body = {k: v for k, v in body.items() if k != "name"}
        err(call(m, "PUT", "/api/v1/templates/base", ta, body), 400)
    # Malformed JSON, wrong content type, a body beyond the limit.
    err(call(m, "POST", "/api/v1/templates", ta, raw="{\"name\":",
             headers=JSON), 400)
    err(call(m, "POST", "/api/v1/templates", ta, raw=json.dumps(ok()),
             headers={"Content-Type": "text/plain"}), 415)
    r = call(m, "POST", "/api/v1/templates", ta,
             ok(startup_script="#" * (64 * 1024 + 1),
                env={f"V{i}": "v" * 4096 for i in range(64)}))
    # Within the 512 KiB body limit: refused for the script, not the size.
    assert "startup_script" in err(r, 400)["message"]
    r = call(m, "POST", "/api/v1/templates", ta,
             raw=json.dumps(ok(env={f"V{i}": "\u0001" * 4096
                                    for i in range(32)})), headers=JSON)
    err(r, 413, "too_large")
    assert api.templates() == before
    assert not [e for e in m.audit_events()
                if e.get("type") == "template.create"
                and e["outcome"] == "success"
                and e["actor"].get("user") == "tom"]

    # Limits at their edges are accepted: a 64 KiB script, 64 variables
    # of 4096 bytes, 32 ports.
    big = ok(name="edge", startup_script="#" * 64 * 1024,
             env={f"V{i}": "v" * 4096 for i in range(64)},
             ports=list(range(1000, 1032)), idle_timeout=0, cpu=100,
             memory_mb=262144, disk_mb=64, root_disk_mb=1048576)
    r = call(m, "POST", "/api/v1/templates", ta, big)
    assert r.status == 201, r.text
    got = call(m, "GET", "/api/v1/templates/edge", ta).json()
    assert len(got["startup_script"]) == 64 * 1024
    assert len(got["env"]) == 64 and len(got["ports"]) == 32


def test_registry_allow_list(api):
    m = api.m
    ta = api.user("tia", "template-admin")
    body = {"name": "deb", "image": "debian:12"}
    e = err(call(m, "POST", "/api/v1/templates", ta, body), 400)
    assert "docker.io" in e["message"]
    api.settings(registries=["localhost", "docker.io",
                             "registry.example:5000"])
    r = call(m, "POST", "/api/v1/templates", ta, body)
    assert r.status == 201, r.text
    assert r.json()["image"] == "docker.io/library/debian:12"
    r = call(m, "POST", "/api/v1/templates", ta,
             {"name": "pinned", "image": "registry.example:5000/team/tool"
              "@sha256:" + HEX64})
    assert r.status == 201, r.text
    assert r.json()["image"] == ("registry.example:5000/team/tool@sha256:"
                                 + HEX64)
    # Host and port must both match.
    e = err(call(m, "POST", "/api/v1/templates", ta,
                 {"name": "other", "image": "registry.example/team/tool"}),
            400)
    assert "registry.example is not" in e["message"]


def test_concurrent_replacements_all_answered(api):
    """Parallel PUTs of one template: each is applied whole or refused with
    409, never half of one and half of another."""
    m = api.m
    ta = api.user("tim", "template-admin")
    results = []

    def put(i):
        r = call(m, "PUT", "/api/v1/templates/base", ta,
                 {"image": BASE_IMAGE, "cpu": 1000 + i,
                  "memory_mb": 1000 + i})
        results.append(r.status)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {200, 409} and 200 in results, results
    base = api.templates()["base"]
    assert base["cpu"] == base["memory_mb"]
