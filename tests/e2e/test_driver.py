"""End-to-end tests of the Docker driver (src/moatd/drivers/docker) against
a real Podman API service and a real registry, and of the scripts around it.

The driver is a C module without a program of its own: its cmocka test
(tests/unit/test_docker.c) holds the end-to-end cases and runs them when
MOAT_TEST_DOCKER_SOCK names a runtime socket. Here a private
`podman system service` (podman_socket) and Debian's docker-registry with
htpasswd auth (registry) are started, the default image is pushed to the
registry, and that binary is run with the environment pointing at them:
create/start/inspect/stats/stop/list/remove/absent, create twice ->
EXISTS, the container's own view of its isolation, a pull from the
registry after removing the local copy with progress, wrong or missing
credentials -> PERM, DOCKER_HOST tcp:// refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

import moat_harness as mh


def _run_unit(env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = mh.binary("test_docker")
    if not exe.exists():
        pytest.skip(f"{exe} not built (set MOAT_BUILD_DIR)")
    return subprocess.run([str(exe)], cwd=mh.REPO_ROOT / "tests" / "unit",
                          env=mh.child_env(env), capture_output=True,
                          text=True, timeout=300)


def _containers(podman_socket, prefix: str) -> list[str]:
    st, body = podman_socket.api("GET", "/v1.41/containers/json?all=1")
    assert st == 200
    return [n for c in json.loads(body) for n in c.get("Names", [])
            if n.lstrip("/").startswith(prefix)]


def _unique_image(tmp_path) -> str:
    """A one-layer image of random bytes, so that pulling it really
    downloads its layer (a copy of the base image would find its layers
    already present)."""
    src = tmp_path / "img"
    src.mkdir()
    (src / "payload").write_bytes(os.urandom(256 * 1024))
    tar = tmp_path / "img.tar"
    subprocess.run(["tar", "-C", str(src), "-cf", str(tar), "."],
                   check=True, timeout=60)
    name = f"localhost/moat/drvtest-src:{os.urandom(4).hex()}"
    subprocess.run(["podman", "import", str(tar), name], check=True,
                   capture_output=True, timeout=120)
    return name


def test_driver_against_podman_and_registry(podman_socket, registry,
                                            base_image, tmp_path):
    src = _unique_image(tmp_path)
    try:
        ref = registry.push(src, "moat/drvtest:latest")
    finally:
        subprocess.run(["podman", "rmi", src], capture_output=True,
                       timeout=60)
    try:
        cp = _run_unit({
            "MOAT_TEST_DOCKER_SOCK": podman_socket.socket,
            "MOAT_TEST_DOCKER_IMAGE": base_image,
            "MOAT_TEST_PULL_IMAGE": ref,
            "MOAT_TEST_PULL_USER": registry.user,
            "MOAT_TEST_PULL_PASS": registry.password,
        })
    finally:
        subprocess.run(["podman", "rmi", ref], capture_output=True,
                       timeout=60)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out[-6000:]
    for rep in mh.SANITIZER_PATTERNS:
        assert rep not in out, out[-6000:]
    # Every live case ran: none skipped.
    assert "SKIPPED" not in out, out[-4000:]
    assert re.search(r"PASSED\s*\] 3 test\(s\)", out), out[-4000:]
    # The wrong password never shows up, the pull reported progress.
    assert "wrong-password" not in out
    m = re.search(r"pull: (\d+) progress calls", out)
    assert m and int(m.group(1)) > 0, out[-4000:]
    # Nothing left behind.
    assert _containers(podman_socket, "moat-drvtest-") == []


def test_driver_refuses_tcp_docker_host():
    # The unit binary's test_driver_new_refusals sets DOCKER_HOST itself;
    # here the process starts with it, as moatd would.
    cp = _run_unit({"DOCKER_HOST": "tcp://127.0.0.1:2375"})
    assert cp.returncode == 0, (cp.stdout + cp.stderr)[-4000:]


def test_podman_service_script(tmp_path):
    if not mh.podman_available():
        pytest.skip("podman (as root) unavailable")
    script = mh.REPO_ROOT / "scripts" / "podman-service"
    sock = tmp_path / "svc" / "podman.sock"
    env = mh.child_env()
    env.pop("DOCKER_HOST", None)
    try:
        cp = subprocess.run([str(script), str(sock)], env=env,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        found = cp.stdout.strip()
        # Ours, or a service that already answered at a usual path.
        assert found in (str(sock), "/run/podman/podman.sock",
                         "/var/run/docker.sock")
        assert mh.docker_api(found, "GET", "/_ping")[0] == 200
        # A second call finds it without starting another.
        cp2 = subprocess.run([str(script), str(sock)], env=env,
                             capture_output=True, text=True, timeout=60)
        assert cp2.stdout.strip() == found
    finally:
        subprocess.run([str(script), "stop", str(sock)], env=env,
                       capture_output=True, timeout=60)
    assert not (tmp_path / "svc" / "podman.sock.pid").exists()
    bad = dict(env, DOCKER_HOST="tcp://127.0.0.1:2375")
    cp = subprocess.run([str(script), str(sock)], env=bad,
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0
    assert "unix://" in cp.stderr


def test_base_image_is_current_and_cached(base_image):
    root = mh.REPO_ROOT
    want = subprocess.run([str(root / "scripts" / "image"), "--hash"],
                          capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", want)
    label = subprocess.run(
        ["podman", "image", "inspect", "--format",
         '{{index .Labels "moat.recipe"}}', base_image],
        capture_output=True, text=True, timeout=60, check=True)
    assert label.stdout.strip() == want
    cache = os.environ.get("MOAT_IMAGE_CACHE", "/var/cache/moat/images")
    assert os.path.getsize(os.path.join(cache, f"base-{want}.tar")) > 0
    # Up to date: a second run neither builds nor imports.
    cp = subprocess.run([str(root / "scripts" / "image")],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and cp.stdout.strip() == base_image
    assert "building" not in cp.stderr and "importing" not in cp.stderr
