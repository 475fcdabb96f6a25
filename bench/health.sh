#!/usr/bin/env bash
# CPU cost of health checking: rvsd with SERVERS real servers (loopback
# listeners this script starts), each with a TCP check every second, after
# a warm-up; rvsd's CPU time from /proc/PID/stat over RUNS windows of WINDOW
# seconds, reported as % of one core (median). Loopback only, no root.
#
#   bash bench/health.sh                 # SERVERS=1000 WARMUP=5 WINDOW=10 RUNS=3
#   RVSD=target/debug/rvsd WINDOW=2 bash bench/health.sh   # a quick check
#
# Writes the figures into bench/RESULTS.md between the markers
# `<!-- health-bench:start -->` and `<!-- health-bench:end -->`.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SERVERS=${SERVERS:-1000}
WARMUP=${WARMUP:-5}
WINDOW=${WINDOW:-10}
RUNS=${RUNS:-3}
if [ -z "${RVSD:-}" ]; then
  cargo build --release --locked -q -p rvsd
  RVSD=target/release/rvsd
fi
RVSD=$(cd "$(dirname "$RVSD")" && pwd)/$(basename "$RVSD")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((SERVERS + 512)) ] || {
  echo "bench/health.sh: needs more than $((SERVERS + 512)) file descriptors (ulimit -n)" >&2
  exit 1
}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The real servers: SERVERS listening sockets that accept and close, in one
# process that exits on its own after a bounded time.
LIFETIME=$((WARMUP + RUNS * WINDOW + 60))
python3 - "$SERVERS" "$WORK/servers" "$LIFETIME" <<'PY' &
import selectors, socket, sys, time
n, out, life = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
sel = selectors.DefaultSelector()
ports = []
for _ in range(n):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    ports.append(s.getsockname()[1])
v = socket.socket(); v.bind(("127.0.0.1", 0)); vip = v.getsockname()[1]; v.close()
with open(out + ".tmp", "w") as f:
    f.write(f"{vip}\n" + "".join(f"{p}\n" for p in ports))
import os; os.rename(out + ".tmp", out)
end = time.monotonic() + life
while time.monotonic() < end:
    for key, _ in sel.select(timeout=1):
        try:
            c, _ = key.fileobj.accept()
            c.close()
        except OSError:
            pass
PY
PIDS+=($!)
for _ in $(seq 100); do [ -f "$WORK/servers" ] && break; sleep 0.1; done
[ -f "$WORK/servers" ] || { echo "the listeners did not start" >&2; exit 1; }

VIP=$(head -1 "$WORK/servers")
{
  printf '[metrics]\nenabled = false\n[proxy]\nthreads = 1\n\n'
  printf '[[service]]\naddress = "127.0.0.1:%s"\nscheduler = "rr"\n' "$VIP"
  printf '[service.health]\ndelay_loop = 1\nconnect_timeout = 1\nretry = 0\nwarmup = 1\n'
  tail -n +2 "$WORK/servers" | while read -r p; do
    printf '[[service.server]]\naddress = "127.0.0.1:%s"\n[[service.server.check]]\ntype = "tcp"\n' "$p"
  done
} > "$WORK/rvsd.toml"

RUST_LOG=warn "$RVSD" --config "$WORK/rvsd.toml" --control "$WORK/rvsd.sock" 2> "$WORK/rvsd.log" &
RPID=$!
PIDS+=("$RPID")
sleep "$WARMUP"
kill -0 "$RPID" || { cat "$WORK/rvsd.log" >&2; exit 1; }
TCK=$(getconf CLK_TCK)
# utime and stime (fields 14 and 15; the command name has no space here).
ticks() { awk '{print $14, $15}' "/proc/$RPID/stat"; }
results=()
split=()
for _ in $(seq "$RUNS"); do
  read -r ua sa < <(ticks); t0=$(date +%s.%N)
  sleep "$WINDOW"
  read -r ub sb < <(ticks); t1=$(date +%s.%N)
  results+=("$(awk -v a=$((ua + sa)) -v b=$((ub + sb)) -v t0="$t0" -v t1="$t1" -v hz="$TCK" \
    'BEGIN { printf "%.2f", (b - a) / hz / (t1 - t0) * 100 }')")
  split+=("$(awk -v u=$((ub - ua)) -v s=$((sb - sa)) -v t0="$t0" -v t1="$t1" -v hz="$TCK" \
    'BEGIN { printf "%.2f/%.2f", u / hz / (t1 - t0) * 100, s / hz / (t1 - t0) * 100 }')")
done
# The floor: the same connects from a minimal client (python, nonblocking
# connect and close, one round over every server a second), to tell the
# kernel's cost of loopback handshakes from rvsd's own.
kill "$RPID"; wait "$RPID" 2>/dev/null || true
floor=$(python3 - "$WORK/servers" "$WINDOW" <<'PY'
import os, selectors, socket, sys, time
ports = [int(p) for p in open(sys.argv[1]).read().split()[1:]]
secs = max(2, int(float(sys.argv[2])))
sel = selectors.DefaultSelector()
t0, w0 = os.times(), time.monotonic()
for _ in range(secs):
    start = time.monotonic()
    for p in ports:
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", p))
        except BlockingIOError:
            pass
        sel.register(s, selectors.EVENT_WRITE)
    left = len(ports)
    while left:
        ready = sel.select(timeout=2)
        if not ready:
            break
        for k, _ in ready:
            sel.unregister(k.fileobj)
            k.fileobj.close()
            left -= 1
    time.sleep(max(0.0, 1 - (time.monotonic() - start)))
t1, w1 = os.times(), time.monotonic()
print(f"{100 * (t1.user - t0.user) / (w1 - w0):.2f}/{100 * (t1.system - t0.system) / (w1 - w0):.2f}")
PY
)
median=$(printf '%s\n' "${results[@]}" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
down=$(grep -c " down: " "$WORK/rvsd.log" || true)
cores=$(nproc)
load=$(cut -d' ' -f1 /proc/loadavg)
echo "rvsd CPU with $SERVERS TCP checks/s: ${results[*]} % of one core (median $median %; user/system ${split[*]}); servers reported down: $down"
echo "floor, a minimal client making the same connects: user/system $floor % of one core"

section=$(cat <<EOF2
rvsd with $SERVERS real servers on loopback, each with a TCP check every
second (\`delay_loop = 1\`, \`connect_timeout = 1\`, \`retry = 0\`, warm-up
spread over 1 s), measured after ${WARMUP} s over $RUNS windows of ${WINDOW} s
from /proc/PID/stat (utime + stime):

| windows (% of one core) | user/system per window | median | target |
|---|---|---|---|
| ${results[*]} | ${split[*]} | **$median %** | < 5 % |

On loopback the kernel runs both ends of each handshake (the listener's
SYN/ACK processing included) in rvsd's context, so the system part counts
work that a real server would do on its own host. For scale, a minimal
client (python, nonblocking connect and close, the same $SERVERS servers
once a second) costs user/system **$floor %** of one core: the system part
is the kernel's price of the handshakes, whoever makes them; rvsd's own
work is about its user part.

Indicative figures from a short run on a shared machine. Binary: \`$(basename "$(dirname "$RVSD")")/rvsd\`; $cores cores, load average $load
at the end; $(date -u +%Y-%m-%d). Command: \`SERVERS=$SERVERS WARMUP=$WARMUP WINDOW=$WINDOW RUNS=$RUNS bash bench/health.sh\`.
Servers reported down during the run: $down.
EOF2
)
printf '%s\n' "$section" | write_results_section health-bench "Health checking"
