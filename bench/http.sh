#!/usr/bin/env bash
# bench/http.sh - moatd's /healthz against nginx serving the same response,
# over plain HTTP and HTTPS with keep-alive, under wrk, in one run.
# Prints requests/s, p99 latency and the moatd/nginx ratio, and moatd's idle
# resident memory. Usage: bench/http.sh [BUILD_DIR] (default build/release).
# Environment: DURATION (default 10s), CONNS (default 64), THREADS (wrk, 2),
# ROUNDS (default 3; the median round is reported).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
build=$(cd "$build" && pwd)
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
for t in wrk nginx curl; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (run scripts/setup)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/moat-bench-http.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$build/moatd" init "$work/data" >/dev/null
ca="$work/data/secrets/ca.crt"
m_tls=$(free_port); m_plain=$(free_port); m_metrics=$(free_port)
n_tls=$(free_port); n_plain=$(free_port)

"$build/moatd" --data-dir "$work/data" --listen "127.0.0.1:$m_tls" \
  --plain-listen "127.0.0.1:$m_plain" --metrics-listen "127.0.0.1:$m_metrics" \
  --audit-fsync none --ssh-listen "" 2>"$work/moatd.log" &
mpid=$!; pids+=($mpid)

mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log $work/nginx/logs/access.log;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen 127.0.0.1:$n_plain;
    listen 127.0.0.1:$n_tls ssl;
    ssl_certificate $work/data/secrets/tls.crt;
    ssl_certificate_key $work/data/secrets/tls.key;
    keepalive_requests 100000;
    location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

for i in $(seq 1 100); do
  curl -fsS --noproxy '*' --cacert "$ca" "https://127.0.0.1:$m_tls/healthz" >/dev/null 2>&1 &&
  curl -fsS --noproxy '*' --cacert "$ca" "https://127.0.0.1:$n_tls/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 1
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$mpid/status)

# run_wrk URL -> "rps p99_ms"
run_wrk() {
  local out rps p99
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$1")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  # Normalise p99 to milliseconds.
  p99=$(awk -v v="$p99" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v/1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v*1000 }
    else print v }')
  echo "$rps $p99"
}

median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

declare -A RPS P99
for proto in http https; do
  for who in moatd nginx; do
    case "$who-$proto" in
      moatd-http) url="http://127.0.0.1:$m_plain/healthz" ;;
      moatd-https) url="https://127.0.0.1:$m_tls/healthz" ;;
      nginx-http) url="http://127.0.0.1:$n_plain/healthz" ;;
      nginx-https) url="https://127.0.0.1:$n_tls/healthz" ;;
    esac
    : > "$work/rounds"
    for r in $(seq 1 "$ROUNDS"); do run_wrk "$url" >> "$work/rounds"; done
    RPS[$who-$proto]=$(awk '{print $1}' "$work/rounds" | median)
    P99[$who-$proto]=$(awk '{print $2}' "$work/rounds" | median)
  done
done
rss_after_kb=$(awk '/VmRSS/ {print $2}' /proc/$mpid/status)

echo "bench/http.sh: wrk -t$THREADS -c$CONNS -d$DURATION, keep-alive, median of $ROUNDS rounds, $(nproc) cores"
printf '%-8s %-6s %12s %10s\n' server proto 'requests/s' 'p99 ms'
for proto in http https; do
  for who in moatd nginx; do
    printf '%-8s %-6s %12s %10s\n' "$who" "$proto" "${RPS[$who-$proto]}" "${P99[$who-$proto]}"
  done
done
for proto in http https; do
  awk -v a="${RPS[moatd-$proto]}" -v b="${RPS[nginx-$proto]}" -v p="$proto" \
    'BEGIN { printf "ratio moatd/nginx %-5s %.2f\n", p, a/b }'
done
awk -v k="$rss_kb" 'BEGIN { printf "moatd idle RSS: %.1f MB\n", k/1024 }'
awk -v k="$rss_after_kb" 'BEGIN { printf "moatd RSS after load: %.1f MB\n", k/1024 }'
