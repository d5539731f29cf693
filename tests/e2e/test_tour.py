"""The README's guided tour, run as a new user would: `scripts/dev-run`
(what `make run` calls) starts the whole platform - Podman's API service,
moat-proxy, moatd - on a fresh data directory, then each numbered step of
the tour's code block runs in bash with the real `moat` binary, the real
OpenSSH client, git and asciinema, and its output is checked.

The commands are taken from README.md itself, so the tour cannot drift from
what works. OpenSSH reads ~/.ssh from the password database, so an `ssh`
wrapper gives it the temporary home's key and config. Three substitutions adapt it to the test: the data directory
(.moat-dev) is a temporary one, PATH points at the build under test, and
the interactive session of step 9 is driven through a pty (`script`) that
types into it.

dev-run listens on the default ports (8443, 2112, 2222, 3129) and the tour's
git host on 127.0.0.2:9443, as a user's machine would; the test is skipped
when one of them is taken.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import moat_harness as mh
from test_workspaces_crash import installation_of

ROOT = Path(__file__).resolve().parents[2]
PORTS = [("127.0.0.1", 8443), ("127.0.0.1", 2112), ("127.0.0.1", 2222),
         ("127.0.0.1", 3129), ("127.0.0.2", 9443)]


def tour_steps() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    sec = text.split("## Guided tour", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", sec, re.S).group(1)
    steps, cur, num = [], [], 0
    for line in block.splitlines():
        m = re.match(r"# (\d+)\. ", line)
        if m:
            steps.append((num, "\n".join(cur)))
            cur, num = [], int(m.group(1))
        cur.append(line)
    steps.append((num, "\n".join(cur)))
    return steps


def port_free(host, port):
    s = socket.socket()
    # As the servers do: a connection in TIME_WAIT does not hold the port.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def platform(tmp_path, base_image):
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop devices")
    busy = [p for p in PORTS if not port_free(*p)]
    if busy:
        pytest.skip(f"ports in use: {busy}")
    build = mh.build_dir()
    data = tmp_path / "moat-dev"
    home = tmp_path / "home"
    home.mkdir()
    # OpenSSH finds ~/.ssh through the password database, not $HOME: a
    # wrapper first in PATH hands the real ssh the tour user's key and the
    # config file `moat config-ssh` writes, as a user's own ~ would.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "ssh").write_text(
        "#!/bin/sh\n"
        f"cfg={home}/.ssh/config\n"
        "[ -f \"$cfg\" ] || cfg=/dev/null\n"
        f"exec /usr/bin/ssh -F \"$cfg\" -i {home}/.ssh/id_ed25519 "
        "-o IdentitiesOnly=yes \"$@\"\n")
    (shim / "ssh").chmod(0o755)
    env = dict(os.environ, HOME=str(home), MOAT_DEV_DIR=str(data),
               XDG_CONFIG_HOME=str(home / ".config"),
               PATH=f"{shim}:{os.environ['PATH']}")
    env.pop("DOCKER_HOST", None)
    p = {"env": env, "data": data, "build": build, "home": home,
         "tmp": tmp_path, "runs": 0, "proc": None}

    def start():
        """`make run` (scripts/dev-run), in its own session as in a
        terminal; returns once it printed that moat is running."""
        p["runs"] += 1
        logf = tmp_path / f"dev-run-{p['runs']}.log"
        with open(logf, "w") as log:
            p["proc"] = proc = subprocess.Popen(
                [str(ROOT / "scripts" / "dev-run"), str(build)], cwd=ROOT,
                env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

        def ready():
            if proc.poll() is not None:
                raise mh.HarnessError("dev-run exited:\n" + logf.read_text())
            return "moat is running" in logf.read_text()
        mh.wait_until(ready, 240, interval=0.5, what="make run ready")
        return logf.read_text()

    def stop():
        """Ctrl-C: SIGINT to the whole process group, as a terminal does."""
        proc, p["proc"] = p["proc"], None
        if proc is None:
            return
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise
    p["start"], p["stop"] = start, stop
    try:
        p["banner"] = start()
        yield p
    finally:
        # Leave nothing behind: workspaces, the git host, the platform.
        if p["proc"] is not None:
            subprocess.run([str(build / "moat"), "ws", "delete", "lab",
                            "--yes", "--wait"], env=env, cwd=ROOT,
                           capture_output=True, timeout=120)
        subprocess.run([str(ROOT / "scripts" / "tour-git-host"), "stop",
                        str(data)], cwd=ROOT, capture_output=True)
        stop()
    left = subprocess.run(["pgrep", "-af", str(data)], capture_output=True,
                          text=True).stdout
    assert left == "", f"processes left behind:\n{left}"
    for line in (data / "logs" / "moatd.log").read_text().splitlines():
        assert "AddressSanitizer" not in line and "runtime error" not in line


def adapt(cmd: str, p) -> str:
    # /tmp/ first: the substituted paths below live under /tmp themselves.
    cmd = cmd.replace("/tmp/", f"{p['tmp']}/")
    cmd = cmd.replace("export PATH=$PWD/build/release:$PATH",
                      f"export PATH={p['build']}:$PATH")
    cmd = cmd.replace("scripts/tour-git-host start",
                      f"scripts/tour-git-host start {p['data']}")
    cmd = cmd.replace(".moat-dev", str(p["data"]))
    return cmd


def run(p, cmd, timeout=180):
    r = subprocess.run(["bash", "-c", "set -eo pipefail\n" + cmd], cwd=ROOT,
                       env=p["env"], capture_output=True, text=True,
                       timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"step failed ({r.returncode}):\n{cmd}\n{out}"
    return out


def test_readme_tour(platform):
    p = platform
    steps = dict(tour_steps())
    assert sorted(steps) == list(range(0, 11)), sorted(steps)
    prelude = adapt(steps[0], p) + "\n"

    out = run(p, prelude + adapt(steps[1], p))
    assert "admin" in out
    run(p, prelude + adapt(steps[2], p))
    out = run(p, prelude + adapt(steps[3], p))
    assert re.search(r"\blab\b.*\brunning\b", out), out
    out = run(p, prelude + adapt(steps[4], p))
    assert "uid=1000(admin)" in out and "\nlab\n" in out, out
    ifaces = re.findall(r"^\s*(\w+):", out, re.M)
    assert "lo" in ifaces and not [i for i in ifaces if i != "lo"], out
    assert "Linux lab" in out, out
    out = run(p, prelude + adapt(steps[5], p))
    assert "denied by policy" in out and "git.moat.test" in out, out
    run(p, prelude + adapt(steps[6], p))
    out = run(p, prelude + adapt(steps[7], p))
    assert "tour-ca" in out, out
    assert "Hello from a git host on loopback." in out, out
    assert "example.com" in out and "denied by policy" in out, out
    out = run(p, prelude + adapt(steps[8], p))
    assert "Hello from a git host on loopback." in out, out

    # Step 9: the interactive session, typed through a pty.
    s9 = adapt(steps[9], p)
    assert "\nmoat ssh lab\n" in s9 + "\n"
    typed = "echo tour-$((6*7))-recorded; exit\n"
    r = subprocess.run(["script", "-qefc", "moat ssh lab", "/dev/null"],
                       input=typed, cwd=ROOT, env=dict(
                           p["env"], PATH=f"{p['build']}:{p['env']['PATH']}"),
                       capture_output=True, text=True, timeout=120)
    assert "tour-42-recorded" in r.stdout, r.stdout + r.stderr
    rest = s9.replace("\nmoat ssh lab\n", "\n").replace(
        f"asciinema play {p['tmp']}/lab.cast",
        f"script -qec 'asciinema cat {p['tmp']}/lab.cast' /dev/null")
    out = mh.wait_until(lambda: _try(p, prelude + rest), 30, interval=1,
                        what="the recording")
    assert "tour-42-recorded" in out, out
    cast = (p["tmp"] / "lab.cast").read_text()
    assert cast.startswith('{"version":2') or cast.startswith(
        '{"version": 2'), cast[:200]

    out = run(p, prelude + adapt(steps[10], p))
    assert "ssh.session" in out or "session." in out, out
    assert re.search(r"verif|ok", out, re.I), out

    # make run itself: the banner names the password file and the first
    # commands; Ctrl-C leaves no process, container or mount behind; a
    # second make run reuses the data and brings the workspace back.
    banner = p["banner"]
    for want in ("initial-admin-password", "moat login", "moat ws create"):
        assert want in banner, banner
    inst = installation_of(p["data"])
    pgid = p["proc"].pid
    p["stop"]()
    assert subprocess.run(["pgrep", "-g", str(pgid)],
                          capture_output=True).returncode == 1, \
        subprocess.run(["ps", "-o", "pid,args", "-g", str(pgid)],
                       capture_output=True, text=True).stdout
    assert leftovers(p["data"], inst) == []

    banner = p["start"]()
    assert "moat is running" in banner
    out = run(p, prelude + "moat whoami")
    assert "admin" in out, out
    mh.wait_until(lambda: re.search(r"\blab\b.*\brunning\b", run(
        p, prelude + "moat ws list")), 60, interval=0.5,
        what="lab running again")
    out = run(p, prelude + "moat ssh lab -- cat hello/README")
    assert "Hello from a git host on loopback." in out, out


def leftovers(data: Path, inst: str) -> list:
    """Containers of this installation, mounts and loop devices under the
    data directory."""
    left = [("container", n) for n in subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=moat.installation={inst}",
         "--format", "{{.Names}}"], capture_output=True, text=True,
        check=True).stdout.split()]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4].startswith(str(data)):
            left.append(("mount", line.split()[4]))
    for line in subprocess.run(["losetup", "-a"], capture_output=True,
                               text=True).stdout.splitlines():
        if str(data) in line:
            left.append(("loop", line))
    return left


def _try(p, cmd):
    r = subprocess.run(["bash", "-c", "set -eo pipefail\n" + cmd], cwd=ROOT,
                       env=p["env"], capture_output=True, text=True,
                       timeout=60)
    out = r.stdout + r.stderr
    return out if r.returncode == 0 and "tour-42-recorded" in out else None
