#!/usr/bin/env bash
# bench/api.sh - authenticated Core API throughput: wrk with an API token
# against GET /api/v1/users/me and a list route (GET /api/v1/ssh-keys),
# reporting requests/s, p99 latency and moatd's resident memory.
# Usage: bench/api.sh [BUILD_DIR] (default build/release).
# Environment: DURATION (8s), CONNS (connection counts, "32 64"), THREADS (2),
# ROUNDS (3, median).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
build=$(cd "$build" && pwd)
DURATION=${DURATION:-8s}
CONNS=${CONNS:-32 64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}

work=$(mktemp -d /tmp/moat-bench-api.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$build/moatd" init "$work/data" >/dev/null 2>&1
ca="$work/data/secrets/ca.crt"
port=$(free_port); mport=$(free_port)
"$build/moatd" --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --metrics-listen "127.0.0.1:$mport" --audit-fsync batch --ssh-listen "" \
  2>"$work/moatd.log" &
mpid=$!; pids+=($mpid)
url="https://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS --noproxy '*' --cacert "$ca" "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

api() { curl -fsS --noproxy '*' --cacert "$ca" -H 'Content-Type: application/json' "$@"; }
pw=$(cat "$work/data/initial-admin-password")
jwt=$(api -X POST "$url/api/v1/auth/login" \
  -d "{\"username\":\"admin\",\"password\":\"$pw\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
token=$(api -X POST -H "Authorization: Bearer $jwt" "$url/api/v1/tokens" \
  -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
ssh-keygen -q -t ed25519 -N '' -f "$work/key" -C bench
api -X POST -H "Authorization: Bearer $token" "$url/api/v1/ssh-keys" \
  -d "{\"name\":\"bench\",\"public_key\":\"$(cat "$work/key.pub")\"}" >/dev/null
sleep 1
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$mpid/status)

run_wrk() {
  local out rps p99
  out=$(wrk -t"$THREADS" -c"$2" -d"$DURATION" --latency \
        -H "Authorization: Bearer $token" "$1")
  if grep -q "Non-2xx" <<<"$out"; then echo "bench: non-2xx answers from $1" >&2; exit 1; fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  p99=$(awk -v v="$p99" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v/1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v*1000 }
    else print v }')
  echo "$rps $p99"
}
median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

echo "bench/api.sh: wrk -t$THREADS -d$DURATION, API token, median of $ROUNDS rounds, $(nproc) cores"
printf '%-22s %6s %12s %10s\n' route conns 'requests/s' 'p99 ms'
for c in $CONNS; do
  for path in /api/v1/users/me /api/v1/ssh-keys; do
    : > "$work/rounds"
    for _ in $(seq 1 "$ROUNDS"); do run_wrk "$url$path" "$c" >> "$work/rounds"; done
    printf '%-22s %6s %12s %10s\n' "GET $path" "$c" "$(awk '{print $1}' "$work/rounds" | median)" \
      "$(awk '{print $2}' "$work/rounds" | median)"
  done
done
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$mpid/status)
awk -v a="$rss_idle" -v b="$rss_after" 'BEGIN { printf "moatd RSS: %.1f MB idle, %.1f MB after the load\n", a/1024, b/1024 }'
