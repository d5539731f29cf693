"""Fixtures of moat's end-to-end tests (the helpers are in moat_harness.py).

Fixtures:
  procs          ProcGroup: procs.start(argv, name=...) -> Proc; all stopped
                 at teardown; log tails attached to the report of a failed
                 test; a sanitizer report in any stderr fails the test.
  moatd_bin      Path of the built moatd (skips when not built).
  moatd_data     Path of a data directory made by the real `moatd init`
                 (skips while main.c does not dispatch `init`).
  moatd          a started Moatd on moatd_data; flags from
                 @pytest.mark.moatd_args("--threads", "2", ...).
  moatd_factory  callable(extra_args=(), data_dir=None, **Moatd kw) ->
                 started Moatd; several per test are fine.
  haproxy        callable(backend_port, send_proxy="v2", **kw) -> started
                 Haproxy.
  netns          NetNS: a fresh namespace with only lo (skips without
                 root); deleted at teardown.
  test_ca        callable(name="test CA") -> TestCA in tmp_path.

Session-scoped (root and podman; skipped otherwise):
  registry       a started Registry (docker-registry on loopback, htpasswd
                 auth, marked insecure for Podman); .host .user .password,
                 .push(local_image, "moat/x:tag") -> reference.
  podman_socket  a started PodmanService on a private socket (.socket,
                 .docker_host, .api(method, path, body)); it starts after
                 `registry` so that Podman sees the registry's drop-in.
  base_image     "localhost/moat/base:latest", built/imported by
                 scripts/image when the recipe changed.

Markers:
  netns          the test needs network namespaces; skipped without them.
  moatd_args(*flags)  extra flags for the `moatd` fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import moat_harness as mh


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "netns: needs network namespaces (root); skipped "
        "when they cannot be created")
    config.addinivalue_line(
        "markers", "moatd_args(*flags): extra command-line flags for the "
        "moatd fixture")


def pytest_runtest_setup(item):
    if item.get_closest_marker("netns") and not mh.netns_available():
        pytest.skip("network namespaces unavailable (needs root)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    # Processes are still running here (teardown comes later): attach the
    # tail of every log to the failure report.
    group = getattr(item, "_moat_procs", None)
    if rep.failed and group is not None and group.procs:
        rep.sections.append(("moat process logs (tail)", group.tails()))


@pytest.fixture
def procs(request, tmp_path):
    group = mh.ProcGroup(tmp_path / "logs")
    request.node._moat_procs = group
    yield group
    group.stop_all()
    reports = group.sanitizer_reports()
    if reports:
        name, text = reports[0]
        pytest.fail(f"sanitizer report in {name}'s stderr:\n{text}",
                    pytrace=False)


@pytest.fixture
def moatd_bin():
    exe = mh.binary("moatd")
    if not exe.exists():
        pytest.skip(f"{exe} not built (set MOAT_BUILD_DIR)")
    return exe


@pytest.fixture
def moatd_data(moatd_bin, tmp_path):
    data = tmp_path / "data"
    try:
        mh.moatd_init(data)
    except mh.InitUnsupported as e:
        pytest.skip(str(e))
    return data


@pytest.fixture
def moatd_factory(procs, moatd_data):
    def make(extra_args=(), data_dir=None, **kw) -> mh.Moatd:
        return mh.Moatd(procs, data_dir or moatd_data,
                        extra_args=extra_args, **kw).start()
    return make


@pytest.fixture
def moatd(request, moatd_factory):
    m = request.node.get_closest_marker("moatd_args")
    return moatd_factory(extra_args=tuple(m.args) if m else ())


@pytest.fixture
def haproxy(procs):
    def make(backend_port, send_proxy="v2", **kw) -> mh.Haproxy:
        return mh.Haproxy(procs, backend_port, send_proxy=send_proxy,
                          **kw).start()
    return make


@pytest.fixture
def netns(procs):
    # Depends on procs so that processes inside are stopped (procs'
    # teardown runs first) before the namespace is deleted.
    if not mh.netns_available():
        pytest.skip("network namespaces unavailable (needs root)")
    ns = mh.NetNS().create()
    yield ns
    procs.stop_all()
    ns.delete()


@pytest.fixture
def test_ca(tmp_path):
    n = 0

    def make(name="test CA") -> mh.TestCA:
        nonlocal n
        n += 1
        return mh.TestCA(tmp_path / f"ca{n}", name)
    return make


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    if not mh.podman_available():
        pytest.skip("podman (as root) unavailable")
    if not Path("/usr/bin/docker-registry").exists():
        pytest.skip("docker-registry not installed (scripts/setup)")
    reg = mh.Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def podman_socket(tmp_path_factory, registry):
    # Depends on registry: Podman reads registries.conf.d only when the
    # service starts.
    svc = mh.PodmanService(tmp_path_factory.mktemp("podman")).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def base_image():
    if not mh.podman_available():
        pytest.skip("podman (as root) unavailable")
    return mh.ensure_base_image()
