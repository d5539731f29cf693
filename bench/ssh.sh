#!/usr/bin/env bash
# bench/ssh.sh - the SSH gateway against OpenSSH, in one run on this
# machine: 1 GiB through the gateway into a workspace, directly to an
# OpenSSH sshd on loopback, and through OpenSSH ProxyJump (that sshd
# jumping to itself on its second loopback address); and session set-up time (`ssh ... true`, median of
# SETUP_ROUNDS) for each. Then CONC concurrent gateway sessions each moving
# 10 MiB with their checksums compared.
# Usage: bench/ssh.sh [BUILD_DIR] (default build/release).
# Environment: ROUNDS (3: throughput rounds, median), SETUP_ROUNDS (15),
# SIZE_MB (1024), CONC (50; 0 skips), CIPHER (unset: the client's default
# choice, chacha20-poly1305@openssh.com for OpenSSH 9).
#
# Every leg the client sees uses the same client cipher. The gateway picks
# the upstream leg's cipher itself (aes128-gcm@openssh.com first); the
# direct and ProxyJump paths use the client's choice on every leg.
#
# Sets up and removes: a Podman API service on a private socket (unless
# one answers), a moatd data directory in a temp dir, moatd (SSH gateway on
# a free port), one workspace, a throwaway sshd (own host key and
# authorized_keys, root login by key on 127.0.0.1 only).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
build=$(cd "$build" && pwd)
ROUNDS=${ROUNDS:-3}
SETUP_ROUNDS=${SETUP_ROUNDS:-15}
SIZE_MB=${SIZE_MB:-1024}
CONC=${CONC:-50}
for t in podman curl python3 ssh ssh-keygen /usr/sbin/sshd; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (run scripts/setup)" >&2; exit 1; }
done
[ -x "$build/moatd" ] && [ -x "$build/moat-agent" ] ||
  { echo "bench: $build lacks moatd or moat-agent (make build)" >&2; exit 1; }
[ -e /dev/loop-control ] || { echo "bench: no loop devices" >&2; exit 1; }

image=$("$root/scripts/image")
work=$(mktemp -d /tmp/moat-bench-ssh.XXXXXX)
chmod 0711 "$work"
sock=$work/podman.sock
mpid= spid=
started_service=0
cleanup() {
  set +e
  [ -n "$spid" ] && kill "$spid" 2>/dev/null
  if [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null && [ -s "$work/token" ]; then
    python3 "$work/api.py" cleanup 2>/dev/null ||
      echo "bench: could not delete the workspace" >&2
  fi
  [ -n "$mpid" ] && { kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null; }
  [ "$started_service" = 1 ] && "$root/scripts/podman-service" stop "$sock"
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
port=$(free_port); mport=$(free_port); gport=$(free_port); sport=$(free_port)
setsid "$build/moatd" --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --metrics-listen "127.0.0.1:$mport" --runtime-socket "$sock" \
  --run-dir "$work/run" --reconcile-interval 300ms \
  --ssh-listen "127.0.0.1:$gport" --audit-fsync batch \
  2>"$work/moatd.log" &
mpid=$!
for _ in $(seq 1 300); do
  grep -q '"workspaces ready"' "$work/moatd.log" 2>/dev/null && break
  kill -0 "$mpid" 2>/dev/null || { echo "bench: moatd exited:" >&2; tail -20 "$work/moatd.log" >&2; exit 1; }
  sleep 0.1
done

# Client key, registered for the admin; the workspace.
ssh-keygen -q -t ed25519 -N "" -f "$work/id" -C bench
cat > "$work/api.py" <<'PY'
# The API half of bench/ssh.sh (stdlib only).
import http.client, json, os, ssl, sys, time
W = os.environ["BENCH_WORK"]
PORT = int(os.environ["BENCH_PORT"])
CTX = ssl.create_default_context(cafile=W + "/data/secrets/ca.crt")


def call(method, path, token=None, body=None):
    c = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=120)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)


if sys.argv[1] == "setup":
    pw = open(W + "/data/initial-admin-password").read().strip()
    st, r = call("POST", "/api/v1/auth/login", body={"username": "admin",
                                                      "password": pw})
    assert st == 200, r
    tok = r["token"]
    open(W + "/token", "w").write(tok)
    st, r = call("POST", "/api/v1/ssh-keys", tok, {
        "name": "bench", "public_key": open(W + "/id.pub").read().strip()})
    assert st == 201, r
    st, r = call("POST", "/api/v1/workspaces", tok, {"name": "bench",
                                                     "template": "base"})
    assert st == 201, r
    for _ in range(1200):
        st, r = call("GET", "/api/v1/workspaces/admin/bench", tok)
        if r.get("state") == "running":
            break
        assert r.get("state") != "failed", r
        time.sleep(0.1)
    else:
        sys.exit("workspace did not start")
elif sys.argv[1] == "cleanup":
    tok = open(W + "/token").read().strip()
    call("DELETE", "/api/v1/workspaces/admin/bench", tok)
    for _ in range(600):
        st, r = call("GET", "/api/v1/workspaces/admin/bench", tok)
        if st == 404:
            break
        time.sleep(0.1)
PY
export BENCH_WORK=$work BENCH_PORT=$port
python3 "$work/api.py" setup

# The throwaway sshd: root by key, loopback only.
ssh-keygen -q -t ed25519 -N "" -f "$work/sshd_host" -C bench-sshd
cp "$work/id.pub" "$work/authorized_keys"
chmod 600 "$work/authorized_keys"
mkdir -p /run/sshd
cat > "$work/sshd_config" <<EOF
ListenAddress 127.0.0.1:$sport
ListenAddress 127.0.0.2:$sport
HostKey $work/sshd_host
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
AuthenticationMethods publickey
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 200:30:400
AllowTcpForwarding yes
EOF
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
spid=$!
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$sport)))" && break
  sleep 0.05
done

gw_pub=$(ssh-keygen -y -f "$work/data/secrets/ssh-host-ed25519.key")
echo "[127.0.0.1]:$gport $gw_pub" > "$work/known_hosts"
echo "[127.0.0.1]:$sport $(cut -d' ' -f1,2 "$work/sshd_host.pub")" >> "$work/known_hosts"
echo "[127.0.0.2]:$sport $(cut -d' ' -f1,2 "$work/sshd_host.pub")" >> "$work/known_hosts"
common=(-F /dev/null -o "UserKnownHostsFile=$work/known_hosts"
  -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o IdentitiesOnly=yes -i "$work/id" -o LogLevel=ERROR)
[ -n "${CIPHER:-}" ] && common+=(-c "$CIPHER")
# ProxyJump's inner ssh takes the same options through a config file.
cat > "$work/ssh_config" <<EOF
Host *
  UserKnownHostsFile $work/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  IdentitiesOnly yes
  IdentityFile $work/id
  LogLevel ERROR
EOF
[ -n "${CIPHER:-}" ] && echo "  Ciphers $CIPHER" >> "$work/ssh_config"

gateway=(ssh "${common[@]}" -p "$gport" bench@127.0.0.1)
direct=(ssh "${common[@]}" -p "$sport" root@127.0.0.1)
# (127.0.0.2: OpenSSH refuses a jump whose target names the jump host.)
jump=(ssh -F "$work/ssh_config" -J "root@127.0.0.1:$sport" -p "$sport" root@127.0.0.2)
"${gateway[@]}" true && "${direct[@]}" true && "${jump[@]}" true ||
  { echo "bench: a path does not work" >&2; tail -n 20 "$work/moatd.log" "$work/sshd.log" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

throughput() {	# name cmd...: MiB/s for SIZE_MB of zeros, client to far side
  local t0 t1
  t0=$(now)
  head -c "${SIZE_MB}M" /dev/zero | "$@" 'cat > /dev/null'
  t1=$(now)
  python3 -c "print(round($SIZE_MB / ($t1 - $t0), 1))"
}
throughput_down() {	# far side to client
  local t0 t1
  t0=$(now)
  "$@" "head -c ${SIZE_MB}M /dev/zero" > /dev/null
  t1=$(now)
  python3 -c "print(round($SIZE_MB / ($t1 - $t0), 1))"
}
setup_ms() {
  local t0 t1
  for _ in $(seq 1 "$SETUP_ROUNDS"); do
    t0=$(now); "$@" true; t1=$(now)
    python3 -c "print(round(($t1 - $t0) * 1000, 1))"
  done | median
}

echo "bench/ssh.sh: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $SIZE_MB MiB, $ROUNDS rounds, $(ssh -V 2>&1)"
declare -A up down setup
for name in gateway direct jump; do
  declare -n cmd=$name
  ups=() downs=()
  for _ in $(seq 1 "$ROUNDS"); do
    ups+=("$(throughput "${cmd[@]}")")
    downs+=("$(throughput_down "${cmd[@]}")")
  done
  up[$name]=$(printf '%s\n' "${ups[@]}" | median)
  down[$name]=$(printf '%s\n' "${downs[@]}" | median)
  setup[$name]=$(setup_ms "${cmd[@]}")
  unset -n cmd
done
printf '\n| path | upload MiB/s | download MiB/s | set-up ms (median of %s) |\n|---|---:|---:|---:|\n' "$SETUP_ROUNDS"
for name in gateway direct jump; do
  printf '| %s | %s | %s | %s |\n' "$name" "${up[$name]}" "${down[$name]}" "${setup[$name]}"
done
python3 - "${up[gateway]}" "${up[jump]}" "${down[gateway]}" "${down[jump]}" "${setup[gateway]}" "${setup[jump]}" <<'PY'
import sys
gu, ju, gd, jd, gs, js = map(float, sys.argv[1:])
print(f"\ngateway/ProxyJump throughput: upload {gu/ju:.2f}x, download {gd/jd:.2f}x (goal >= 1, stretch 1.2)")
print(f"gateway/ProxyJump set-up time: {gs/js:.2f}x (goal <= 1)")
PY

if [ "$CONC" -gt 0 ]; then
  python3 - "$CONC" "${gateway[@]}" <<'PY'
import hashlib, os, subprocess, sys, threading, time
n = int(sys.argv[1]); cmd = sys.argv[2:]
blobs = [os.urandom(10 << 20) for _ in range(n)]
want = [hashlib.sha256(b).hexdigest() for b in blobs]
got = [None] * n
def one(i):
    r = subprocess.run(cmd + ["sha256sum"], input=blobs[i], capture_output=True)
    got[i] = r.stdout.decode().split()[0] if r.returncode == 0 else r.stderr.decode()
t0 = time.monotonic()
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.monotonic() - t0
ok = sum(g == w for g, w in zip(got, want))
print(f"\n{n} concurrent gateway sessions x 10 MiB: {ok}/{n} checksums intact, "
      f"{dt:.1f} s, {n * 10 / dt:.0f} MiB/s together")
sys.exit(0 if ok == n else 1)
PY
fi
