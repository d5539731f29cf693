#!/usr/bin/env bash
# bench/proxy.sh - moat-proxy side by side with Squid and tinyproxy, in one
# run, inside a network namespace that has only loopback (nothing can leave
# the machine). Every proxy gets an allow-all-equivalent rule for 127.0.0.2,
# where nginx serves /small and /big (256 MiB) and a Python listener holds
# idle TCP connections. Measured, with the direct (no proxy) figures:
#   - plain HTTP requests/s, without and with keep-alive:
#       ab -X 127.0.0.1:PORT -n N -c C [-k] http://127.0.0.2/small
#     and the proxy's CPU time (user + system, all threads and children)
#     per request without keep-alive: other jobs on a shared machine move
#     it far less than requests/s
#   - bulk throughput of the 256 MiB download through a CONNECT tunnel:
#       curl -p -x http://127.0.0.1:PORT http://127.0.0.2/big
#   - resident memory per idle CONNECT tunnel at TUNNELS tunnels
#     ((RSS with the tunnels open - RSS before) / TUNNELS)
# Prints medians of ROUNDS rounds and ratios against Squid.
# Usage: bench/proxy.sh [BUILD_DIR] (default build/release).
# Environment: N (ab requests, 20000), C (ab concurrency, 32), ROUNDS (3),
# TUNNELS (2000), THREADS (moat-proxy --threads, 2), AUDIT (1: moat-proxy
# writes its audit chain, as Squid writes access.log), PROXIES (the proxies
# to run, default "moat-proxy squid tinyproxy").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
build=$(cd "$build" && pwd)

if [ "${MOAT_BENCH_IN_NETNS:-}" != 1 ]; then
  for t in ab curl nginx squid tinyproxy python3 openssl unshare ip; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing (run scripts/setup)" >&2; exit 1; }
  done
  [[ " ${PROXIES:-moat-proxy} " != *" moat-proxy "* ]] || [ -x "$build/moat-proxy" ] || { echo "bench: $build/moat-proxy not built (make build)" >&2; exit 1; }
  # Everything below runs in a fresh network namespace with only lo.
  exec unshare --net --fork -- env MOAT_BENCH_IN_NETNS=1 bash "$0" "$build"
fi

N=${N:-20000}
C=${C:-32}
ROUNDS=${ROUNDS:-3}
TUNNELS=${TUNNELS:-2000}
THREADS=${THREADS:-2}
AUDIT=${AUDIT:-1}
PROXIES=${PROXIES:-moat-proxy squid tinyproxy}
want() { [[ " $PROXIES " == *" $1 "* ]]; }
ip link set lo up
hard=$(ulimit -Hn); [ "$hard" = unlimited ] && hard=65536; ulimit -n $(( hard < 65536 ? hard : 65536 ))

work=$(mktemp -d /tmp/moat-bench-proxy.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # host port
  for _ in $(seq 1 200); do
    python3 -c "import socket,sys; socket.create_connection(('$1',$2),0.2)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on $1:$2" >&2; exit 1
}
rss_kb() { # pid: VmRSS of the process and its descendants, kB
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
cpu_ticks() { # pid: utime + stime (+ waited-for children) of it and its children
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
    total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# --- origins: nginx on 127.0.0.2:80, an idle-connection holder on :9000
mkdir -p "$work/www" "$work/nginx"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/small"
truncate -s 256M "$work/www/big"
cat > "$work/nginx/nginx.conf" <<NGINX
user root;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.2:80 backlog=4096;
    root $work/www;
  }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
cat > "$work/hold.py" <<'PY'
import selectors, socket
sel = selectors.DefaultSelector()
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.2", 9000)); ls.listen(8192); ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            c, _ = ls.accept(); c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
        else:
            try:
                d = key.fileobj.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(key.fileobj); key.fileobj.close()
PY
python3 "$work/hold.py" &
pids+=($!)
wait_port 127.0.0.2 80
wait_port 127.0.0.2 9000

# --- the three proxies
m_port=$(free_port); s_port=$(free_port); t_port=$(free_port)
m_pid=; s_pid=; t_pid=

if want moat-proxy; then
cat > "$work/policy.yaml" <<YAML
name: bench
mode: enforce
allow:
  - cidr: 127.0.0.2/32
    ports: [80, 9000]
YAML
moat_args=(--policy "$work/policy.yaml" --listen "127.0.0.1:$m_port" --threads "$THREADS")
if [ "$AUDIT" = 1 ]; then
  openssl ecparam -genkey -name prime256v1 -out "$work/audit-key.pem" 2>/dev/null
  moat_args+=(--audit-file "$work/audit.log" --audit-key "$work/audit-key.pem")
fi
"$build/moat-proxy" "${moat_args[@]}" 2>"$work/moat-proxy.log" &
m_pid=$!; pids+=($m_pid)
fi

if want squid; then
mkdir -p "$work/squid"; chmod 777 "$work/squid"
cat > "$work/squid/squid.conf" <<SQUID
http_port 127.0.0.1:$s_port
visible_hostname bench
pid_filename $work/squid/squid.pid
cache_log $work/squid/cache.log
access_log stdio:$work/squid/access.log
coredump_dir $work/squid
cache deny all
cache_mem 0 MB
max_filedescriptors 16384
shutdown_lifetime 0 seconds
acl bench_dst dst 127.0.0.2/32
http_access allow bench_dst
http_access deny all
SQUID
squid -N -f "$work/squid/squid.conf" 2>"$work/squid/stderr.log" &
s_pid=$!; pids+=($s_pid)
fi

if want tinyproxy; then
mkdir -p "$work/tinyproxy"
cat > "$work/tinyproxy/tinyproxy.conf" <<TINY
Port $t_port
Listen 127.0.0.1
Timeout 600
MaxClients 8192
Allow 127.0.0.1
ConnectPort 80
ConnectPort 9000
LogFile "$work/tinyproxy/tinyproxy.log"
LogLevel Connect
PidFile "$work/tinyproxy/tinyproxy.pid"
TINY
tinyproxy -d -c "$work/tinyproxy/tinyproxy.conf" 2>"$work/tinyproxy/stderr.log" &
t_pid=$!; pids+=($t_pid)
fi

names=(direct)
for n in moat-proxy squid tinyproxy; do want $n && names+=($n); done
proxies=("${names[@]:1}")
declare -A port=([moat-proxy]=$m_port [squid]=$s_port [tinyproxy]=$t_port)
declare -A pid=([moat-proxy]=$m_pid [squid]=$s_pid [tinyproxy]=$t_pid)
for n in "${proxies[@]}"; do wait_port 127.0.0.1 "${port[$n]}"; done

# Each proxy must actually forward (and moat-proxy must deny what it should).
for n in "${proxies[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:${port[$n]}" http://127.0.0.2/small)
  [ "$code" = 200 ] || { echo "bench: $n answered $code for /small" >&2; cat "$work"/*.log "$work"/*/stderr.log >&2 || true; exit 1; }
done

ab_rps() { # name keepalive(0/1); the proxy's CPU us/request go to $work/cpu-NAME-K
  local args=(-q -n "$N" -c "$C") t0=0
  [ "$2" = 1 ] && args+=(-k)
  [ "$1" != direct ] && args+=(-X "127.0.0.1:${port[$1]}") && t0=$(cpu_ticks "${pid[$1]}")
  ab "${args[@]}" http://127.0.0.2/small 2>"$work/ab.err" | tee "$work/ab.out" |
    awk '/^Requests per second/ {print $4}'
  if [ "$1" != direct ]; then
    awk -v a="$t0" -v b="$(cpu_ticks "${pid[$1]}")" -v hz="$(getconf CLK_TCK)" -v n="$N" \
      'BEGIN {printf "%.1f\n", (b - a) / hz * 1e6 / n}' >> "$work/cpu-$1-$2"
  fi
  if ! grep -q '^Failed requests: *0' "$work/ab.out"; then
    grep -E '^(Failed|Non-2xx|Complete)' "$work/ab.out" | sed "s/^/  $1: /" >&2
  fi
}
tunnel_mbs() { # name: MiB/s of the 256 MiB download
  local args=(-s -o /dev/null -w '%{speed_download}' --max-time 120)
  [ "$1" != direct ] && args+=(-p -x "http://127.0.0.1:${port[$1]}")
  curl "${args[@]}" http://127.0.0.2/big | awk '{printf "%.1f\n", $1/1048576}'
}

declare -A rps rpsk mbs mem cpu
for n in moat-proxy squid tinyproxy; do rps[$n]=nan; rpsk[$n]=nan; mbs[$n]=nan; mem[$n]=nan; cpu[$n]=nan; done
cpu[direct]=-
for n in "${names[@]}"; do
  ab_rps "$n" 0 >/dev/null; tunnel_mbs "$n" >/dev/null   # warm-up
  rm -f "$work/cpu-$n-0" "$work/cpu-$n-1"
  r=(); k=(); t=()
  for _ in $(seq 1 "$ROUNDS"); do
    r+=("$(ab_rps "$n" 0)"); k+=("$(ab_rps "$n" 1)"); t+=("$(tunnel_mbs "$n")")
  done
  rps[$n]=$(printf '%s\n' "${r[@]}" | median)
  rpsk[$n]=$(printf '%s\n' "${k[@]}" | median)
  mbs[$n]=$(printf '%s\n' "${t[@]}" | median)
  c=""
  if [ -f "$work/cpu-$n-0" ]; then
    cpu[$n]=$(median < "$work/cpu-$n-0"); c="; CPU $(tr '\n' ' ' < "$work/cpu-$n-0")us/request"
  fi
  echo "bench: $n: ${r[*]} req/s; keep-alive ${k[*]} req/s; tunnel ${t[*]} MiB/s$c" >&2
done

# --- memory per idle CONNECT tunnel
cat > "$work/tunnels.py" <<'PY'
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.sendall(b"CONNECT 127.0.0.2:9000 HTTP/1.1\r\nHost: 127.0.0.2:9000\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(4096)
        if not c:
            sys.exit(f"tunnel {i}: closed after {buf!r}")
        buf += c
    if b" 200 " not in buf.split(b"\r\n")[0] + b" ":
        sys.exit(f"tunnel {i}: {buf.splitlines()[0]!r}")
    socks.append(s)
open(ready, "w").write("ok\n")
time.sleep(3600)
PY
for n in "${proxies[@]}"; do
  sleep 1
  before=$(rss_kb "${pid[$n]}")
  rm -f "$work/ready"
  python3 "$work/tunnels.py" "${port[$n]}" "$TUNNELS" "$work/ready" 2>"$work/tunnels.err" &
  tp=$!
  for _ in $(seq 1 1200); do [ -e "$work/ready" ] && break; kill -0 $tp 2>/dev/null || break; sleep 0.1; done
  if [ ! -e "$work/ready" ]; then
    echo "bench: $n: tunnels failed: $(cat "$work/tunnels.err")" >&2; mem[$n]=nan
  else
    sleep 2
    after=$(rss_kb "${pid[$n]}")
    mem[$n]=$(awk -v a="$after" -v b="$before" -v n="$TUNNELS" 'BEGIN {printf "%.2f", (a-b)/n}')
    echo "bench: $n: RSS ${before} kB -> ${after} kB with $TUNNELS tunnels" >&2
  fi
  kill $tp 2>/dev/null || true; wait $tp 2>/dev/null || true
done
mem[direct]=-

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b+0 == 0 || a == "nan" || b == "nan") print "-"; else printf "%.2f", a/b}'; }
printf '\n%-11s %12s %14s %12s %14s %12s\n' proxy "req/s" "req/s (k-a)" "tunnel MiB/s" "kB/idle tunnel" "CPU us/req"
for n in direct moat-proxy squid tinyproxy; do
  printf '%-11s %12s %14s %12s %14s %12s\n' "$n" "${rps[$n]}" "${rpsk[$n]}" "${mbs[$n]}" "${mem[$n]}" "${cpu[$n]}"
done
echo
echo "squid / moat-proxy: CPU per request $(ratio "${cpu[squid]}" "${cpu[moat-proxy]}") (moat-proxy does that many times less work per request)"
echo "moat-proxy / squid: req/s $(ratio "${rps[moat-proxy]}" "${rps[squid]}") (goal >= 2)," \
  "keep-alive req/s $(ratio "${rpsk[moat-proxy]}" "${rpsk[squid]}")," \
  "tunnel $(ratio "${mbs[moat-proxy]}" "${mbs[squid]}") (goal >= 1.3)," \
  "memory/tunnel $(ratio "${mem[moat-proxy]}" "${mem[squid]}") (goal <= 0.25)"
echo "moat-proxy tunnel / direct: $(ratio "${mbs[moat-proxy]}" "${mbs[direct]}") (stretch >= 0.85)"
echo "tinyproxy / squid: req/s $(ratio "${rps[tinyproxy]}" "${rps[squid]}")," \
  "tunnel $(ratio "${mbs[tinyproxy]}" "${mbs[squid]}")," \
  "memory/tunnel $(ratio "${mem[tinyproxy]}" "${mem[squid]}")"
