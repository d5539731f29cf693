#!/usr/bin/env bash
# bench/workspace-start.sh - time from the create call to SSH-ready for a
# moat workspace, side by side in the same run with a bare `podman run` of
# the same image (to its first output, and to sshd answering inside).
# Prints the medians and the ratios moat/bare.
# Usage: bench/workspace-start.sh [BUILD_DIR] (default build/release).
# Environment: ROUNDS (10; one unmeasured warm-up round comes first),
# PROFILE=1 (moatd at log level debug, its log kept in PROFILE_LOG,
# default /tmp/moat-bench-ws-moatd.log: each state and each runtime call
# with its duration, for a breakdown), BANNER_POLL=1 (see below).
#
# Per round, interleaved:
#   moat   POST /api/v1/workspaces, then the workspace's event stream (SSE,
#          ?since=0) until the state event "running" (moatd records it only
#          after reading sshd's banner through the agent socket). Cross-
#          check: right after "running", a DIAL of port 22 through the
#          agent socket (as the SSH gateway does) must read SSH-2.0-OpenSSH;
#          its time is reported too. BANNER_POLL=1 adds a poller that DIALs
#          every 20 ms from the moment POST answers (it competes with
#          moatd's own DIAL for sshd, which forks and re-executes for each
#          connection, so it tends to read its banner a little later).
#          The workspace is then deleted (not timed) and the stream read
#          until "deleted", then GET must answer 404.
#   bare   podman run --rm --network none --ulimit nofile --ulimit nproc
#          IMAGE echo ready, timed to its first output line.
#   sshd   the same, but the container generates one ed25519 host key,
#          starts sshd on 127.0.0.1:22 and prints "ready" once a connection
#          to port 22 reads the SSH-2.0-OpenSSH banner (polled inside the
#          container every 20 ms: no podman exec round trips in the figure).
# The ulimits are the ones moatd gives workspaces (65536 / 8192, capped at
# this host's hard limits).
#
# Sets up and removes: a Podman API service on a private socket (unless
# one already answers: scripts/podman-service), a moatd data directory and
# run directory in a temp dir, moatd itself, every workspace and container
# it created.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
build=$(cd "$build" && pwd)
ROUNDS=${ROUNDS:-10}
PROFILE=${PROFILE:-0}
for t in podman curl python3; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (run scripts/setup)" >&2; exit 1; }
done
[ -x "$build/moatd" ] && [ -x "$build/moat-agent" ] ||
  { echo "bench: $build lacks moatd or moat-agent (make build)" >&2; exit 1; }
[ -e /dev/loop-control ] || { echo "bench: no loop devices" >&2; exit 1; }

image=$("$root/scripts/image")
work=$(mktemp -d /tmp/moat-bench-ws.XXXXXX)
chmod 0711 "$work"
sock=$work/podman.sock
mpid=
started_service=0
cleanup() {
  set +e
  # Workspaces first (moatd deletes them), then moatd, then the service.
  if [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null && [ -s "$work/token" ]; then
    python3 "$work/bench.py" cleanup 2>/dev/null ||
      echo "bench: could not delete every workspace (see podman ps -a --filter label=moat.managed=1)" >&2
  fi
  [ -n "$mpid" ] && { kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null; }
  for c in $(podman ps -a --filter name='^bench-ws-' --format '{{.Names}}' 2>/dev/null); do
    podman rm -f "$c" >/dev/null 2>&1
  done
  [ "$started_service" = 1 ] && "$root/scripts/podman-service" stop "$sock"
  # moatd unmounts its run directories; anything still mounted stays (and
  # is reported) rather than being deleted through.
  if grep -q " $work/" /proc/self/mounts; then
    echo "bench: mounts left under $work:" >&2; grep " $work/" /proc/self/mounts >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

got=$("$root/scripts/podman-service" "$sock")
[ "$got" = "$sock" ] && started_service=1
sock=$got

"$build/moatd" init "$work/data" >/dev/null 2>&1
port=$(free_port); mport=$(free_port)
level=info; [ "$PROFILE" = 1 ] && level=debug
# Its own session: a ^C reaches the script, whose cleanup then deletes the
# workspaces through moatd before stopping it.
setsid "$build/moatd" --data-dir "$work/data" --listen "127.0.0.1:$port" --ssh-listen "" \
  --metrics-listen "127.0.0.1:$mport" --runtime-socket "$sock" \
  --run-dir "$work/run" --reconcile-interval 300ms --log-level "$level" \
  2>"$work/moatd.log" &
mpid=$!
for _ in $(seq 1 300); do
  grep -q '"workspaces ready"' "$work/moatd.log" 2>/dev/null && break
  kill -0 "$mpid" 2>/dev/null || { echo "bench: moatd exited:" >&2; tail -20 "$work/moatd.log" >&2; exit 1; }
  sleep 0.1
done
grep -q '"workspaces ready"' "$work/moatd.log" ||
  { echo "bench: moatd has no workspaces:" >&2; tail -20 "$work/moatd.log" >&2; exit 1; }

nofile=$(python3 -c 'import resource as r; h=r.getrlimit(r.RLIMIT_NOFILE)[1]; print(65536 if h==r.RLIM_INFINITY else min(h,65536))')
nproc=$(python3 -c 'import resource as r; h=r.getrlimit(r.RLIMIT_NPROC)[1]; print(8192 if h==r.RLIM_INFINITY else min(h,8192))')

cat > "$work/bench.py" <<'PY'
# The timing half of bench/workspace-start.sh (stdlib only).
import http.client, json, os, socket, ssl, statistics, struct, subprocess
import sys, threading, time

W = os.environ["BENCH_WORK"]
PORT = int(os.environ["BENCH_PORT"])
IMAGE = os.environ["BENCH_IMAGE"]
ROUNDS = int(os.environ["ROUNDS"])
POLL = os.environ.get("BANNER_POLL") == "1"
with open("/proc/loadavg") as f:
    LOAD0 = " ".join(f.read().split()[:3])
ULIMITS = ["--ulimit", "nofile=%s:%s" % ((os.environ["BENCH_NOFILE"],) * 2),
           "--ulimit", "nproc=%s:%s" % ((os.environ["BENCH_NPROC"],) * 2)]
CTX = ssl.create_default_context(cafile=W + "/data/secrets/ca.crt")
now = time.monotonic


def conn():
    c = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=120)
    c.connect()
    return c


def call(c, method, path, token=None, body=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers=h)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


def token():
    with open(W + "/token") as f:
        return f.read().strip()


def agent_dial(agent_sock, port=22, timeout=2.0):
    """DIAL over the agent protocol (src/lib/agentproto.h), then read the
    first line the port sends. Returns it, or None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(agent_sock)
        body = bytes([3, 2]) + struct.pack(">H", 2) + struct.pack(">H", port)
        s.sendall(struct.pack(">I", len(body)) + body)
        hdr = b""
        while len(hdr) < 5:
            k = s.recv(5 - len(hdr))
            if not k:
                return None
            hdr += k
        if hdr[4] != 64:
            return None
        (n,) = struct.unpack(">I", hdr[:4])
        left = n - 1
        while left > 0:
            k = s.recv(left)
            if not k:
                return None
            left -= len(k)
        line = b""
        while b"\n" not in line and len(line) < 256:
            k = s.recv(256)
            if not k:
                break
            line += k
        return line.decode("ascii", "replace")
    except OSError:
        return None
    finally:
        s.close()


def sse_events(resp):
    """Yields (type, data) from a Server-Sent Events response."""
    typ, data = None, []
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        if line == "":
            if typ is not None or data:
                yield typ, "\n".join(data)
            typ, data = None, []
        elif line.startswith("event:"):
            typ = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def moat_round(i, tok, api):
    name = "bench%d" % i
    sse = conn()
    t0 = now()
    st, ws = call(api, "POST", "/api/v1/workspaces", tok,
                  {"name": name, "template": "base"})
    t_post = now()
    if st != 201:
        raise SystemExit("bench: create answered %d: %s" % (st, ws))
    agent_sock = "%s/run/ws/%s/agent/agent.sock" % (W, ws["id"])
    poll = {"trace": []}

    def poller():
        while not poll.get("stop"):
            ta = now()
            line = agent_dial(agent_sock)
            poll["trace"].append((ta - t0, now() - t0, (line or "")[:20]))
            if line and line.startswith("SSH-2.0-OpenSSH"):
                poll["t"] = now()
                return
            time.sleep(0.02)
    if POLL:
        th = threading.Thread(target=poller, daemon=True)
        th.start()
    sse.request("GET", "/api/v1/workspaces/admin/%s/events?since=0" % name,
                headers={"Authorization": "Bearer " + tok})
    resp = sse.getresponse()
    if resp.status != 200:
        raise SystemExit("bench: events answered %d" % resp.status)
    states = {}
    events = sse_events(resp)
    for typ, data in events:
        if typ != "state":
            continue
        s = json.loads(data)
        states.setdefault(s["state"], now() - t0)
        if s["state"] == "failed":
            raise SystemExit("bench: workspace failed: %s" % s.get("reason"))
        if s["state"] == "running":
            break
    t_run = now()
    # Cross-check: what a user's first connection sees right after
    # "running" (the SSH gateway dials exactly like this).
    check = agent_dial(agent_sock)
    t_dial = now()
    if not (check and check.startswith("SSH-2.0-OpenSSH")):
        raise SystemExit("bench: running, but no sshd banner through the "
                         "agent socket: %r" % check)
    if POLL:
        th.join(10)
        poll["stop"] = True
    # Delete (not timed) and wait until it is gone.
    st, _ = call(api, "DELETE", "/api/v1/workspaces/admin/" + name, tok)
    if st != 202:
        raise SystemExit("bench: delete answered %d" % st)
    for typ, data in events:
        if typ == "state" and json.loads(data)["state"] == "deleted":
            break
    sse.close()
    deadline = now() + 60
    while call(api, "GET", "/api/v1/workspaces/admin/" + name, tok)[0] != 404:
        if now() > deadline:
            raise SystemExit("bench: %s not gone after 60 s" % name)
        time.sleep(0.1)
    if POLL:
        print("  states %s; last dials of the poller (start, end, read) %s" % (
            {k: round(v, 3) for k, v in states.items()},
            [(round(a, 3), round(b, 3), l) for a, b, l in poll["trace"][-3:]]),
            file=sys.stderr)
    return {"ready": t_run - t0, "post": t_post - t0, "dial": t_dial - t0,
            "poll": poll.get("t", float("nan")) - t0, "states": states}


SSHD = ("ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key; "
        "mkdir -p /run/sshd; "
        "/usr/sbin/sshd -D -h /etc/ssh/ssh_host_ed25519_key 2>/dev/null & "
        "until read -t 1 l </dev/tcp/127.0.0.1/22 2>/dev/null && "
        "[[ $l == SSH-2.0-OpenSSH* ]]; do sleep 0.02; done; "
        "echo ready; kill $!")


def bare_round(i, kind):
    cmd = ["podman", "run", "--rm", "--name", "bench-ws-%s-%d" % (kind, i),
           "--network", "none", *ULIMITS, IMAGE]
    cmd += ["echo", "ready"] if kind == "bare" else ["bash", "-c", SSHD]
    t0 = now()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline()
    t = now() - t0
    p.stdout.read()
    err = p.stderr.read()
    p.wait()
    if line.strip() != b"ready":
        raise SystemExit("bench: %s: %r %s" % (" ".join(cmd), line, err[-500:]))
    return t


def cleanup():
    c = conn()
    tok = token()
    st, body = call(c, "GET", "/api/v1/workspaces?owner=*", tok)
    names = [w["name"] for w in (body or {}).get("workspaces", [])]
    for n in names:
        call(c, "DELETE", "/api/v1/workspaces/admin/" + n, tok)
    deadline = now() + 60
    while names:
        st, body = call(c, "GET", "/api/v1/workspaces?owner=*", tok)
        if st == 200 and not body.get("workspaces"):
            break
        if now() > deadline:
            sys.exit(1)
        time.sleep(0.2)


def med(xs):
    return statistics.median(xs)


def breakdown(path):
    """Medians of where moat's time goes, from moatd's debug log: one
    sequence per POST /api/v1/workspaces, the warm-up left out."""
    import datetime

    def ts(l):
        return datetime.datetime.fromisoformat(
            l["time"].replace("Z", "+00:00")).timestamp()
    logs = []
    with open(path) as f:
        for raw in f:
            try:
                logs.append(json.loads(raw))
            except ValueError:
                pass
    phases = {}
    order = []
    rounds = [i for i, l in enumerate(logs) if l.get("msg") == "request" and
              l.get("method") == "POST" and l.get("path") == "/api/v1/workspaces"]
    for i in rounds[1:]:
        t_req = ts(logs[i]) - logs[i].get("duration_ms", 0) / 1000
        marks = [("create call answered", ts(logs[i]))]
        for l in logs[i + 1:]:
            m, path = l.get("msg"), l.get("path", "")
            if m == "workspace state" and l.get("state") == "starting":
                marks.append(("reconciler picks it up (starting)", ts(l)))
            elif m == "runtime call" and path.startswith("/images/"):
                marks.append(("image inspect", ts(l)))
            elif m == "volume created":
                marks.append(("volume create (fallocate, mkfs, fscrypt)", ts(l)))
            elif m == "runtime call" and path.startswith("/containers/create"):
                marks.append(("volume attach, run dir", ts(l) - l["ms"] / 1000))
                marks.append(("container create", ts(l)))
            elif m == "runtime call" and path.endswith("/start"):
                marks.append(("container start", ts(l)))
            elif m == "workspace state" and l.get("state") == "running":
                marks.append(("agent, sshd, banner, secrets, save", ts(l)))
                break
        prev = t_req
        for label, t in marks:
            if label not in phases:
                order.append(label)
            phases.setdefault(label, []).append(t - prev)
            prev = t
    print("where moat's time goes (moatd log, median ms, %d rounds):"
          % len(rounds[1:]))
    for label in order:
        print("  %-44s %6.0f" % (label, 1000 * med(phases[label])))


def main():
    if sys.argv[1:] == ["cleanup"]:
        return cleanup()
    tok = token()
    api = conn()
    moat, bare, sshd = [], [], []
    for i in range(ROUNDS + 1):
        m = moat_round(i, tok, api)
        b = bare_round(i, "bare")
        s = bare_round(i, "sshd")
        tag = "warm-up" if i == 0 else "round %d" % i
        print("%-8s moat %.3f s (answered %.3f, starting %.3f, first DIAL "
              "banner %.3f%s)  bare %.3f s  bare+sshd %.3f s" % (
                  tag, m["ready"], m["post"], m["states"].get("starting", 0),
                  m["dial"], ", poller %.3f" % m["poll"] if POLL else "",
                  b, s), file=sys.stderr)
        if i > 0:
            moat.append(m)
            bare.append(b)
            sshd.append(s)
    mr = med([m["ready"] for m in moat])
    mb, ms = med(bare), med(sshd)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print("bench/workspace-start.sh: median of %d rounds, %d cores, image %s,"
          " load average %s (at the start %s)" % (
              ROUNDS, os.cpu_count(), IMAGE, load, LOAD0))
    print("%-44s %8s %8s %8s" % ("seconds", "median", "min", "max"))
    rows = [("moat: create -> running (SSE)", [m["ready"] for m in moat]),
            ("moat: create -> banner, DIAL after running",
             [m["dial"] for m in moat])]
    if POLL:
        rows.append(("moat: create -> banner, DIAL poller (20ms)",
                     [m["poll"] for m in moat]))
    rows += [("moat: create call answered", [m["post"] for m in moat]),
            ("bare podman run -> first output", bare),
            ("bare podman run + sshd -> banner", sshd)]
    for label, xs in rows:
        print("%-44s %8.3f %8.3f %8.3f" % (label, med(xs), min(xs), max(xs)))
    print("ratio moat/bare (first output)  %.2f   (goal <= 3)" % (mr / mb))
    print("ratio moat/bare+sshd            %.2f" % (mr / ms))
    print("moat median %.3f s              (goal <= 1 s): %s" % (
        mr, "met" if mr <= 1.0 else "NOT met"))
    if os.environ.get("PROFILE") == "1":
        breakdown(W + "/moatd.log")


main()
PY

export BENCH_WORK=$work BENCH_PORT=$port BENCH_IMAGE=$image ROUNDS PROFILE \
  BENCH_NOFILE=$nofile BENCH_NPROC=$nproc
pw=$(cat "$work/data/initial-admin-password")
(umask 077; curl -fsS --noproxy '*' --cacert "$work/data/secrets/ca.crt" \
  -H 'Content-Type: application/json' -X POST "https://127.0.0.1:$port/api/v1/auth/login" \
  -d "{\"username\":\"admin\",\"password\":\"$pw\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' > "$work/token")

python3 "$work/bench.py"
if [ "$PROFILE" = 1 ]; then
  cp "$work/moatd.log" "${PROFILE_LOG:-/tmp/moat-bench-ws-moatd.log}"
  echo "moatd log (debug) copied to ${PROFILE_LOG:-/tmp/moat-bench-ws-moatd.log}"
fi
