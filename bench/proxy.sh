#!/usr/bin/env bash
# Side-by-side bench of L4 proxies on one machine, in one run:
#   direct to a real server, rvs (rvsd proxy plane), HAProxy `mode tcp`,
#   nginx `stream`.
# Everything runs in a network namespace of its own (loopback only), so the
# client sysctls it needs (tcp_tw_reuse, a wide port range) touch nothing
# else. Real servers are nginx; iperf3 servers for the throughput test.
#
#   bash bench/proxy.sh            # RUNS=3 DUR=10 by default
#
# Writes the medians and ratios into bench/RESULTS.md between the markers
# `<!-- proxy-bench:start -->` and `<!-- proxy-bench:end -->`, and the raw
# figures to target/bench-proxy/.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${RUNS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-50}
IDLE=${IDLE:-2000}
OUT=target/bench-proxy
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

[ "$(id -u)" = 0 ] || { echo "bench/proxy.sh needs root (network namespace)" >&2; exit 1; }

need=()
for p in nginx haproxy wrk iperf3; do command -v "$p" >/dev/null || need+=("$p"); done
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release --locked -q -p rvsd
RVSD=$(pwd)/target/release/rvsd

NS=rvsbench$$
WORK=$(mktemp -d)
# nginx workers run unprivileged: they must be able to read the served file.
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ns() { ip netns exec "$NS" "$@"; }
ns ip link set lo up
ns sysctl -q -w net.ipv4.tcp_tw_reuse=1 "net.ipv4.ip_local_port_range=10000 65000"

# Waits until something listens on 127.0.0.1:$1 (bounded).
wait_port() {
  for _ in $(seq 100); do
    ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# ---- real servers -----------------------------------------------------------
head -c 128 /dev/zero | tr '\0' 'x' > "$WORK/index.html"
mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  server { listen 127.0.0.1:18081 reuseport; root $WORK; }
  server { listen 127.0.0.1:18082 reuseport; root $WORK; }
  server { listen 127.0.0.1:18083 reuseport; root $WORK; }
}
stream {
  upstream web { server 127.0.0.1:18081; server 127.0.0.1:18082; server 127.0.0.1:18083; }
  upstream perf { hash \$remote_addr; server 127.0.0.1:15201; server 127.0.0.1:15202; server 127.0.0.1:15203; }
  server { listen 127.0.0.1:18091 reuseport; proxy_pass web; }
  server { listen 127.0.0.1:15291 reuseport; proxy_pass perf; }
}
EOF
ns nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx/error.log"
for port in 15201 15202 15203; do
  ns iperf3 -s -p $port -D -I "$WORK/iperf$port.pid" >/dev/null
done

cat > "$WORK/haproxy.cfg" <<EOF
global
  maxconn 9000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend web
  bind 127.0.0.1:18090
  default_backend web
backend web
  balance roundrobin
  server s1 127.0.0.1:18081
  server s2 127.0.0.1:18082
  server s3 127.0.0.1:18083
frontend perf
  bind 127.0.0.1:15290
  default_backend perf
backend perf
  balance source
  server p1 127.0.0.1:15201
  server p2 127.0.0.1:15202
  server p3 127.0.0.1:15203
EOF
ns haproxy -D -f "$WORK/haproxy.cfg" -p "$WORK/haproxy.pid"

cat > "$WORK/rvsd.toml" <<EOF
[metrics]
enabled = false

[[service]]
protocol = "tcp"
address = "127.0.0.1:18092"
scheduler = "rr"

[[service.server]]
address = "127.0.0.1:18081"
[[service.server]]
address = "127.0.0.1:18082"
[[service.server]]
address = "127.0.0.1:18083"

# iperf3's control and data connections must reach one server.
[[service]]
protocol = "tcp"
address = "127.0.0.1:15292"
scheduler = "sh"

[[service.server]]
address = "127.0.0.1:15201"
[[service.server]]
address = "127.0.0.1:15202"
[[service.server]]
address = "127.0.0.1:15203"
EOF
# Started directly (not through a shell function) so that $! is rvsd itself.
ip netns exec "$NS" "$RVSD" --config "$WORK/rvsd.toml" --control "$WORK/rvsd.sock" > "$WORK/rvsd.log" 2>&1 &
RVSD_PID=$!
PIDS+=("$RVSD_PID")
for p in 18081 18090 18091 18092 15201 15290 15291 15292; do wait_port $p; done

# ---- measurements -----------------------------------------------------------
declare -A WEB=([direct]=18081 [rvs]=18092 [haproxy]=18090 [nginx]=18091)
declare -A PERF=([direct]=15201 [rvs]=15292 [haproxy]=15290 [nginx]=15291)
PEERS=(direct rvs haproxy nginx)
: > "$OUT/raw.tsv"
for run in $(seq "$RUNS"); do
  for peer in "${PEERS[@]}"; do
    port=${WEB[$peer]}
    ns wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port/index.html" > "$OUT/$peer-ka-$run.txt"
    ns wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H "Connection: close" "http://127.0.0.1:$port/index.html" > "$OUT/$peer-close-$run.txt"
    ns iperf3 -c 127.0.0.1 -p "${PERF[$peer]}" -t "$DUR" -J > "$OUT/$peer-iperf-$run.json"
    python3 - "$peer" "$run" "$OUT" >> "$OUT/raw.tsv" <<'PY'
import json, re, sys
peer, run, out = sys.argv[1:4]
def wrk(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, t, re.M)
        v = float(m.group(1)); u = m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    if bad:
        sys.exit(f"{path}: {bad.group(1)} responses were not 2xx; the figures would not measure the file")
    return rps, pct(50), pct(99)
ka = wrk(f"{out}/{peer}-ka-{run}.txt")
cl = wrk(f"{out}/{peer}-close-{run}.txt")
gbps = json.load(open(f"{out}/{peer}-iperf-{run}.json"))["end"]["sum_received"]["bits_per_second"] / 1e9
print("\t".join(map(str, [peer, run, ka[0], ka[1], ka[2], cl[0], cl[1], cl[2], gbps])))
PY
  done
done

# Resident memory of rvsd per idle proxied connection.
rss() { awk '/VmRSS/ {print $2}' "/proc/$RVSD_PID/status"; }
before=$(rss)
ip netns exec "$NS" python3 - "$IDLE" > "$OUT/idle.txt" <<'PY' &
import socket, sys, time
n = int(sys.argv[1]); socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", 18092)); socks.append(s)
print(len(socks), flush=True)
time.sleep(15)
PY
IDLE_PID=$!
PIDS+=("$IDLE_PID")
for _ in $(seq 200); do [ -s "$OUT/idle.txt" ] && break; sleep 0.05; done
sleep 2
after=$(rss)
kill "$IDLE_PID" 2>/dev/null || true
echo -e "idle\t$IDLE\t$before\t$after" >> "$OUT/raw.tsv"

# ---- report -----------------------------------------------------------------
python3 - "$OUT/raw.tsv" "$RUNS" "$DUR" "$CONNS" > "$OUT/section.md" <<'PY'
import statistics, sys, subprocess, platform
path, runs, dur, conns = sys.argv[1:5]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
idle = [r for r in rows if r[0] == "idle"][0]
data = {}
for r in rows:
    if r[0] == "idle": continue
    data.setdefault(r[0], []).append([float(x) for x in r[2:]])
def med(peer, i): return statistics.median(x[i] for x in data[peer])
cpu = [l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
print(f"Command: `bash bench/proxy.sh` (RUNS={runs} DUR={dur}s, wrk -t1 -c{conns}, 128-byte file, nginx real servers, all on loopback in one network namespace; veth offloads do not apply).")
print(f"Machine: {subprocess.getoutput('nproc')} cores, {cpu}; client, balancers and real servers share the cores. Medians of {runs} runs.\n")
print("| path | keep-alive req/s | p50 ms | p99 ms | new conn/request req/s | p50 ms | p99 ms | iperf3 Gbit/s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for p in ["direct", "rvs", "haproxy", "nginx"]:
    print(f"| {p} | {med(p,0):.0f} | {med(p,1):.2f} | {med(p,2):.2f} | {med(p,3):.0f} | {med(p,4):.2f} | {med(p,5):.2f} | {med(p,6):.2f} |")
print("\n| ratio | keep-alive req/s | new conn req/s | iperf3 |")
print("|---|---:|---:|---:|")
for peer in ["haproxy", "nginx"]:
    print(f"| rvs / {peer} | {med('rvs',0)/med(peer,0):.2f} | {med('rvs',3)/med(peer,3):.2f} | {med('rvs',6)/med(peer,6):.2f} |")
n, before, after = int(idle[1]), int(idle[2]), int(idle[3])
print(f"\nrvsd resident memory: {before} KiB before, {after} KiB with {n} idle proxied connections: {(after-before)*1024/n:.0f} bytes per connection.")
PY
write_results_section proxy-bench "The proxy data plane against HAProxy and nginx" <"$OUT/section.md"
cat "$OUT/section.md"
