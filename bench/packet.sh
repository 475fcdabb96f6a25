#!/usr/bin/env bash
# Side-by-side bench of the packet data plane on one machine, in one run:
#   direct to one real server, kernel nftables DNAT (`numgen inc mod 2`, the
#   kernel peer, in the director's namespace), rvs NAT, rvs DR, rvs TUN
#   (`rvsd --dataplane packet`; the real servers decapsulate TUN in
#   userspace with the `tun_decap` example, this kernel having no tunnel
#   drivers), and the data plane's raw rate (64-byte frames from the
#   `frame_gen` example, in a namespace of its own, through one worker).
#
# Topology (the one rvs-testkit builds for the end-to-end tests, same
# names and documentation addresses, made here with `ip` because the
# shell drives wrk, iperf3, nginx and nft for minutes and needs the
# namespaces to outlive any one command):
#
#   switch ns: bridges lan (192.0.2.0/24) and priv (198.51.100.0/24)
#   client 192.0.2.10 (route 203.0.113.0/24 via 192.0.2.1)
#   director eth0 192.0.2.1 (lan), eth1 198.51.100.1 (priv)
#   rs0/rs1 eth0 192.0.2.21-22 (lan), eth1 198.51.100.21-22 (priv),
#     VIPs of DR and TUN on lo, replies from the private net via the director
#   gen 192.0.2.50 (lan): the raw-rate generator
#
#   VIP 203.0.113.10  rvs DR     (tcp 80 rr, tcp+udp 5210 sh, udp 9 raw rate)
#   VIP 203.0.113.11  rvs NAT    (tcp 80 rr, tcp+udp 5220 sh, to 198.51.100.2x)
#   VIP 203.0.113.12  rvs TUN    (tcp 80 rr, tcp+udp 5212 sh, IPIP to 192.0.2.2x)
#   VIP 203.0.113.13  nftables   (tcp 80 numgen, tcp+udp 5220 jhash, DNAT to 198.51.100.2x)
#
# Every veth end has `tso gso gro tx` off, for every peer alike: the packet
# plane needs it (AF_PACKET, no PACKET_VNET_HDR), and it slows the kernel
# paths too, so only like is compared with like.
#
#   bash bench/packet.sh           # RUNS=3 DUR=10 by default
#   RUNS=1 DUR=3 bash bench/packet.sh
#
# Other knobs: CONNS (wrk connections, 50), WORKERS (rvsd workers, 1),
# UDP_RATES (offered packets/s of the UDP sweep), UDP_STEP (seconds per
# step, 2), RAW_COUNT (frames per raw-rate run, 30 M), RAW_FLOWS (64),
# LABEL (a line put above the tables, e.g. that the machine was busy),
# PERF_RAW=1 (profile rvsd with `perf record` during the raw rate; the
# report goes to target/bench-packet/raw-RUN.profile.txt).
# XDP=1 builds rvsd with `--features xdp` and adds the peers `dr_xdp` and
# `nat_xdp`: rvs DR and NAT through the AF_XDP backend (`--backend af_xdp`,
# one worker: a veth has one receive queue; generic XDP, copy mode).
# ONLY="PEER ..." measures only those peers (of direct nft nat dr tun
# dr_xdp nat_xdp, and `raw` for the raw rate), e.g. ONLY="nft dr_xdp" for a
# quick check; such a partial run prints its table but leaves
# bench/RESULTS.md alone.
#
# Writes the medians and ratios into bench/RESULTS.md between
# `<!-- packet-bench:start -->` and `<!-- packet-bench:end -->`, and the raw
# figures to target/bench-packet/.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${RUNS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-1}
UDP_RATES=${UDP_RATES:-10000 20000 40000 80000 160000}
UDP_STEP=${UDP_STEP:-2}
RAW_COUNT=${RAW_COUNT:-30000000}
RAW_FLOWS=${RAW_FLOWS:-64}
LABEL=${LABEL:-}
XDP=${XDP:-0}
ONLY=${ONLY:-}
OUT=target/bench-packet
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

[ "$(id -u)" = 0 ] || { echo "bench/packet.sh needs root (network namespaces)" >&2; exit 1; }

need=()
declare -A PKG=([nginx]=nginx [wrk]=wrk [iperf3]=iperf3 [nft]=nftables [ethtool]=ethtool [curl]=curl)
for t in "${!PKG[@]}"; do command -v "$t" >/dev/null || need+=("${PKG[$t]}"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ "$XDP" = 1 ]; then
  cargo build --release --locked -q -p rvsd --bin rvsd --features xdp
else
  cargo build --release --locked -q -p rvsd --bin rvsd
fi
cargo build --release --locked -q -p rvs-testkit --example tun_decap --example frame_gen
TARGET=${CARGO_TARGET_DIR:-$(pwd)/target}
RVSD=$TARGET/release/rvsd
DECAP=$TARGET/release/examples/tun_decap
GEN=$TARGET/release/examples/frame_gen

P=pb$$
SW=$P-sw CL=$P-cl DIR=$P-dir GEN_NS=$P-gen
RS=("$P-rs0" "$P-rs1")
ALL_NS=("$CL" "$DIR" "${RS[@]}" "$GEN_NS" "$SW")
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  for f in "$WORK"/*.pid; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  sleep 0.2
  for n in "${ALL_NS[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }
# Stops a process started by this script, by PID, and waits (bounded).
stop_pid() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
offloads_off() { nsx "$1" ethtool -K "$2" tso off gso off gro off tx off >/dev/null 2>&1; }

# ---- topology ---------------------------------------------------------------
for n in "${ALL_NS[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
# Bridged frames skip netfilter in the switch (br_netfilter would run every
# frame of every peer through the hooks there; a real switch does not).
for k in iptables ip6tables arptables; do
  nsx "$SW" sysctl -q -w "net.bridge.bridge-nf-call-$k=0" 2>/dev/null || true
done
for br in lan priv; do
  ip -n "$SW" link add $br type bridge
  ip -n "$SW" link set $br up
done
veth() { # NS IF PORT BRIDGE
  ip -n "$1" link add "$2" type veth peer name "$3" netns "$SW"
  ip -n "$SW" link set "$3" master "$4" up
  ip -n "$1" link set "$2" up
  offloads_off "$1" "$2"
  offloads_off "$SW" "$3"
}
veth "$CL" eth0 c0 lan
ip -n "$CL" addr add 192.0.2.10/24 dev eth0
ip -n "$CL" route add 203.0.113.0/24 via 192.0.2.1
nsx "$CL" sysctl -q -w net.ipv4.tcp_tw_reuse=1 "net.ipv4.ip_local_port_range=10000 65000"
veth "$GEN_NS" eth0 g0 lan
ip -n "$GEN_NS" addr add 192.0.2.50/24 dev eth0
veth "$DIR" eth0 d0 lan
veth "$DIR" eth1 d1 priv
ip -n "$DIR" addr add 192.0.2.1/24 dev eth0
ip -n "$DIR" addr add 198.51.100.1/24 dev eth1
nsx "$DIR" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
  net.ipv4.conf.default.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0 \
  net.ipv4.conf.eth1.send_redirects=0
for i in 0 1; do
  n=${RS[$i]}
  veth "$n" eth0 "s${i}l" lan
  veth "$n" eth1 "s${i}p" priv
  ip -n "$n" addr add "192.0.2.2$((i + 1))/24" dev eth0
  ip -n "$n" addr add "198.51.100.2$((i + 1))/24" dev eth1
  ip -n "$n" addr add 203.0.113.10/32 dev lo
  ip -n "$n" addr add 203.0.113.12/32 dev lo
  nsx "$n" sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0 \
    net.ipv4.conf.lo.rp_filter=0
  ip -n "$n" rule add from 198.51.100.0/24 table 100
  ip -n "$n" route add default via 198.51.100.1 table 100
  # The raw-rate frames end here, dropped before the stack; so are the
  # IPIP packets once the userspace decapsulator (whose socket sees them
  # first) has taken them, or the kernel would answer each with an ICMP
  # protocol unreachable.
  nsx "$n" nft -f - <<'EOF'
table inet sink {
  chain pre {
    type filter hook prerouting priority raw
    udp dport 9 drop
    meta nfproto ipv4 ip protocol 4 drop
  }
}
EOF
done

# ---- real servers -----------------------------------------------------------
# nginx's workers run unprivileged: the document root must be readable.
chmod 755 "$WORK"
head -c 128 /dev/zero | tr '\0' 'x' > "$WORK/index.html"
chmod 644 "$WORK/index.html"
for i in 0 1; do
  d=$WORK/nginx$i
  mkdir -p "$d/logs"
  cat > "$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  server { listen 80 reuseport; root $WORK; }
}
EOF
  nsx "${RS[$i]}" nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log"
  ln -sf "$d/nginx.pid" "$WORK/nginx$i.pid"
  # One iperf3 server per path, each bound to the address its traffic
  # arrives at: an unbound UDP socket would answer from the address of the
  # main route (192.0.2.2x) rather than the VIP (DR, TUN) or the private
  # address whose policy route leads back through the director (NAT).
  for b in "192.0.2.2$((i + 1)):5201" "203.0.113.10:5210" "203.0.113.12:5212" "198.51.100.2$((i + 1)):5220"; do
    nsx "${RS[$i]}" iperf3 -s -B "${b%:*}" -p "${b#*:}" -D -I "$WORK/iperf$i-${b#*:}.pid" >/dev/null
  done
done

# Waits until a TCP connect from the client to $1:$2 succeeds (bounded).
wait_tcp() {
  for _ in $(seq 100); do
    nsx "$CL" timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from $1:$2" >&2
  return 1
}
wait_tcp 192.0.2.21 80
wait_tcp 192.0.2.22 80
wait_tcp 192.0.2.21 5201

# ---- peers ------------------------------------------------------------------
NFT_UP=$(cat <<'EOF'
table ip pbdnat {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr 203.0.113.13 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 198.51.100.21, 1 : 198.51.100.22 }
    # iperf3's control and data connections must reach one server.
    ip daddr 203.0.113.13 meta l4proto { tcp, udp } th dport 5220 dnat to jhash ip saddr mod 2 map { 0 : 198.51.100.21, 1 : 198.51.100.22 }
  }
}
EOF
)
nft_up() { nsx "$DIR" nft -f - <<<"$NFT_UP"; }
nft_down() { nsx "$DIR" nft delete table ip pbdnat; }

cat > "$WORK/rvs.rules" <<'EOF'
-A -t 203.0.113.10:80 -s rr
-a -t 203.0.113.10:80 -r 192.0.2.21:80 -g
-a -t 203.0.113.10:80 -r 192.0.2.22:80 -g
-A -t 203.0.113.10:5210 -s sh
-a -t 203.0.113.10:5210 -r 192.0.2.21:5210 -g
-a -t 203.0.113.10:5210 -r 192.0.2.22:5210 -g
-A -u 203.0.113.10:5210 -s sh
-a -u 203.0.113.10:5210 -r 192.0.2.21:5210 -g
-a -u 203.0.113.10:5210 -r 192.0.2.22:5210 -g
-A -u 203.0.113.10:9 -s rr
-a -u 203.0.113.10:9 -r 192.0.2.21:9 -g
-A -t 203.0.113.11:80 -s rr
-a -t 203.0.113.11:80 -r 198.51.100.21:80 -m
-a -t 203.0.113.11:80 -r 198.51.100.22:80 -m
-A -t 203.0.113.11:5220 -s sh
-a -t 203.0.113.11:5220 -r 198.51.100.21:5220 -m
-a -t 203.0.113.11:5220 -r 198.51.100.22:5220 -m
-A -u 203.0.113.11:5220 -s sh
-a -u 203.0.113.11:5220 -r 198.51.100.21:5220 -m
-a -u 203.0.113.11:5220 -r 198.51.100.22:5220 -m
-A -t 203.0.113.12:80 -s rr
-a -t 203.0.113.12:80 -r 192.0.2.21:80 -i
-a -t 203.0.113.12:80 -r 192.0.2.22:80 -i
-A -t 203.0.113.12:5212 -s sh
-a -t 203.0.113.12:5212 -r 192.0.2.21:5212 -i
-a -t 203.0.113.12:5212 -r 192.0.2.22:5212 -i
-A -u 203.0.113.12:5212 -s sh
-a -u 203.0.113.12:5212 -r 192.0.2.21:5212 -i
-a -u 203.0.113.12:5212 -r 192.0.2.22:5212 -i
EOF
RVSD_PID=
rvs_up() { # [BACKEND]
  local backend=${1:-af_packet} workers=$WORKERS
  # AF_XDP: one worker per receive queue, and a veth has one.
  [ "$backend" = af_xdp ] && workers=1
  # Started directly (not through a function of the shell) so that $! is
  # rvsd itself.
  ip netns exec "$DIR" "$RVSD" --dataplane packet --interface eth0,eth1 --workers "$workers" \
    --backend "$backend" --rules "$WORK/rvs.rules" --control "$WORK/rvsd.sock" --metrics 127.0.0.1:9180 \
    >> "$OUT/rvsd.log" 2>&1 &
  RVSD_PID=$!
  PIDS+=("$RVSD_PID")
  wait_tcp 203.0.113.10 80
  wait_tcp 203.0.113.11 80
}
rvs_down() { stop_pid "$RVSD_PID"; }
metrics() { nsx "$DIR" curl -s --max-time 5 http://127.0.0.1:9180/metrics || true; }

DECAP_PIDS=()
decap_up() {
  DECAP_PIDS=()
  for n in "${RS[@]}"; do
    ip netns exec "$n" "$DECAP" eth0 $((RUNS * DUR * 20 + 600)) > /dev/null 2>&1 &
    DECAP_PIDS+=($!)
    PIDS+=($!)
  done
  wait_tcp 203.0.113.12 80
}
decap_down() { for p in "${DECAP_PIDS[@]}"; do stop_pid "$p"; done; }

declare -A HOST=([direct]=192.0.2.21 [dr]=203.0.113.10 [nat]=203.0.113.11 [tun]=203.0.113.12 [nft]=203.0.113.13
  [dr_xdp]=203.0.113.10 [nat_xdp]=203.0.113.11)
declare -A PERF=([direct]=5201 [dr]=5210 [nat]=5220 [tun]=5212 [nft]=5220 [dr_xdp]=5210 [nat_xdp]=5220)

# ---- measurements -----------------------------------------------------------
BOUND=$((DUR + 30))
# One peer, one run: wrk keep-alive and connection-per-request, iperf3 TCP,
# the UDP sweep.
# Waits (at most 75 s) until the real servers hold no TIME_WAIT socket.
# A peer that follows another to the same server addresses (nftables DNAT
# and rvs NAT both reach 198.51.100.2x) would otherwise send SYNs onto the
# previous peer's TIME_WAIT sockets with the client's ports reused: the
# client's sequence numbers and timestamps are keyed on the VIP it talks
# to, so the server may refuse them (PAWS / old sequence) and the client
# retransmits after a second. That measured the previous peer, not this one.
settle() {
  local deadline=$((SECONDS + 75)) n
  while :; do
    n=0
    for r in "${RS[@]}"; do
      n=$((n + $(nsx "$r" ss -Htan state time-wait | wc -l)))
    done
    [ "$n" -eq 0 ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && { echo "settle: $n TIME_WAIT sockets left on the real servers" >&2; return 0; }
    sleep 1
  done
}

measure() {
  local peer=$1 run=$2 host=${HOST[$1]}
  settle
  nsx "$CL" timeout $BOUND wrk -t1 -c"$CONNS" -d"${DUR}s" --latency \
    "http://$host/index.html" > "$OUT/$peer-ka-$run.txt" || true
  nsx "$CL" timeout $BOUND wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H "Connection: close" \
    "http://$host/index.html" > "$OUT/$peer-close-$run.txt" || true
  # One connection: the latency one request adds at each crossing, with
  # no queueing to hide it.
  nsx "$CL" timeout $BOUND wrk -t1 -c1 -d"${DUR}s" --latency \
    "http://$host/index.html" > "$OUT/$peer-one-$run.txt" || true
  nsx "$CL" timeout $BOUND iperf3 -c "$host" -p "${PERF[$peer]}" -t "$DUR" -J > "$OUT/$peer-iperf-$run.json" || true
  for rate in $UDP_RATES; do
    nsx "$CL" timeout $((UDP_STEP + 20)) iperf3 -c "$host" -p "${PERF[$peer]}" -u -l 64 -b $((rate * 64 * 8)) \
      -t "$UDP_STEP" -J > "$OUT/$peer-udp$rate-$run.json" || true
    # Past a clear overload the higher rates only add time.
    python3 - "$OUT/$peer-udp$rate-$run.json" <<'PY' || break
import json, sys
try:
    s = json.load(open(sys.argv[1]))["end"]["sum"]
    sys.exit(1 if s["lost_percent"] > 20 else 0)
except Exception:
    sys.exit(1)
PY
  done
}

# CPU time of rvsd's worker threads: "USER SYSTEM" clock ticks.
worker_ticks() {
  local t u=0 k=0 f
  for t in /proc/"$RVSD_PID"/task/*; do
    grep -q '^rvs-packet' "$t/comm" 2>/dev/null || continue
    f=$(sed 's/.*) //' "$t/stat")
    u=$((u + $(echo "$f" | awk '{print $12}')))
    k=$((k + $(echo "$f" | awk '{print $13}')))
  done
  echo "$u $k"
}

# The raw rate: 64-byte UDP frames from the generator's namespace to the
# director's MAC, DR to rs0 by one worker; counted on the wire at rs0.
raw_rate() {
  local run=$1 mac rx0 rx1 drx0 drx1 m0 m1
  mac=$(nsx "$DIR" cat /sys/class/net/eth0/address)
  rx0=$(nsx "${RS[0]}" cat /sys/class/net/eth0/statistics/rx_packets)
  drx0=$(nsx "$DIR" cat /sys/class/net/eth0/statistics/rx_packets)
  m0=$(metrics)
  local g w0 w1
  w0=$(worker_ticks)
  local perf_pid=
  if [ -n "${PERF_RAW:-}" ] && command -v perf >/dev/null; then
    perf record -q -F 999 -g -p "$RVSD_PID" -o "$OUT/raw-$run.perf.data" -- sleep "$DUR" >/dev/null 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
  fi
  g=$(nsx "$GEN_NS" timeout $BOUND "$GEN" eth0 "$mac" 192.0.2.50 203.0.113.10 9 "$RAW_COUNT" "$DUR" "$RAW_FLOWS")
  sleep 1
  w1=$(worker_ticks)
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    perf report -i "$OUT/raw-$run.perf.data" --stdio --no-children --percent-limit 1 -g none \
      > "$OUT/raw-$run.profile.txt" 2>/dev/null || true
  fi
  rx1=$(nsx "${RS[0]}" cat /sys/class/net/eth0/statistics/rx_packets)
  drx1=$(nsx "$DIR" cat /sys/class/net/eth0/statistics/rx_packets)
  m1=$(metrics)
  python3 - "$run" "$g" "$rx0" "$rx1" "$drx0" "$drx1" <(echo "$m0") <(echo "$m1") \
    "$w0" "$w1" "$(getconf CLK_TCK)" >> "$OUT/raw.tsv" <<'PY'
import re, sys
run, g, rx0, rx1, drx0, drx1, m0, m1, w0, w1, hz = sys.argv[1:12]
(u0, k0), (u1, k1) = map(int, w0.split()), map(int, w1.split())
sent, secs = g.split()
def counters(path):
    c = {}
    for l in open(path):
        m = re.match(r'rvs_packet_(frames|drops)_total\{(?:kind|reason)="(\w+)"\} (\d+)', l)
        if m: c[m.group(2)] = int(m.group(3))
    return c
a, b = counters(m0), counters(m1)
d = {k: b.get(k, 0) - a.get(k, 0) for k in b}
got = int(rx1) - int(rx0)
print("\t".join(map(str, ["raw", run, sent, secs, int(drx1) - int(drx0), d.get("received", 0),
    d.get("transmitted", 0), d.get("rx_ring_full", 0), d.get("tx_ring_full", 0), got,
    (u1 - u0) / int(hz), (k1 - k0) / int(hz)])))
PY
}

: > "$OUT/raw.tsv"
: > "$OUT/rvsd.log"
PEERS=(direct nft nat dr tun)
[ "$XDP" = 1 ] && PEERS+=(dr_xdp nat_xdp)
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
if [ -n "$ONLY" ]; then
  for p in $ONLY; do
    [[ " ${PEERS[*]} raw " == *" $p "* ]] || { echo "ONLY: unknown peer $p (XDP=1 for dr_xdp nat_xdp)" >&2; exit 1; }
  done
  sel=()
  for p in "${PEERS[@]}"; do want "$p" && sel+=("$p"); done
  PEERS=("${sel[@]}")
fi
for run in $(seq "$RUNS"); do
  if want direct; then measure direct "$run"; fi
  if want nft; then
    nft_up
    measure nft "$run"
    nft_down
  fi
  if want nat || want dr || want tun || want raw; then
    rvs_up
    if want nat; then measure nat "$run"; fi
    if want dr; then measure dr "$run"; fi
    if want tun; then
      decap_up
      measure tun "$run"
      decap_down
    fi
    if want raw; then raw_rate "$run"; fi
    rvs_down
  fi
  if [ "$XDP" = 1 ] && { want dr_xdp || want nat_xdp; }; then
    rvs_up af_xdp
    if want nat_xdp; then measure nat_xdp "$run"; fi
    if want dr_xdp; then measure dr_xdp "$run"; fi
    rvs_down
  fi
  python3 - "$run" "$OUT" "$UDP_RATES" "${PEERS[@]}" >> "$OUT/raw.tsv" <<'PY'
import json, re, sys
run, out, rates, peers = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def wrk(path):
    try:
        t = open(path).read()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    except Exception:
        return [0.0, 0.0, 0.0, 1]
    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, t, re.M)
        v = float(m.group(1)); u = m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    if m: errs += sum(map(int, m.groups()))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    if m: errs += int(m.group(1))
    return [rps, pct(50), pct(99), errs]
for peer in peers:
    ka = wrk(f"{out}/{peer}-ka-{run}.txt")
    cl = wrk(f"{out}/{peer}-close-{run}.txt")
    try:
        gbps = json.load(open(f"{out}/{peer}-iperf-{run}.json"))["end"]["sum_received"]["bits_per_second"] / 1e9
    except Exception:
        gbps = 0.0
    # UDP: the highest offered rate with loss <= 0.1 %, and what arrived
    # (packets/s) and the loss at the highest rate tried.
    clean, top_rate, top_pps, top_loss = 0, 0, 0.0, 100.0
    for r in rates:
        try:
            s = json.load(open(f"{out}/{peer}-udp{r}-{run}.json"))["end"]["sum"]
        except Exception:
            continue
        pps = (s["packets"] - s["lost_packets"]) / s["seconds"]
        if s["lost_percent"] <= 0.1 and s["packets"] > 0:
            clean = int(r)
        top_rate, top_pps, top_loss = int(r), pps, s["lost_percent"]
    one = wrk(f"{out}/{peer}-one-{run}.txt")
    print("\t".join(map(str, [peer, run] + ka + cl + [gbps, clean, top_rate, top_pps, top_loss] + one)))
PY
done

# ---- report -----------------------------------------------------------------
python3 - "$OUT/raw.tsv" "$RUNS" "$DUR" "$CONNS" "$WORKERS" "$UDP_RATES" "$UDP_STEP" "$RAW_FLOWS" "$LABEL" \
  > "$OUT/section.md" <<'PY'
import statistics, sys, subprocess, datetime
path, runs, dur, conns, workers, rates, step, flows, label = sys.argv[1:10]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
data, raw = {}, []
for r in rows:
    if r[0] == "raw":
        raw.append([float(x) for x in r[2:]])
    else:
        data.setdefault(r[0], []).append([float(x) for x in r[2:]])
def med(peer, i): return statistics.median(x[i] for x in data[peer])
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
kernel = subprocess.getoutput("uname -r")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
env = f"RUNS={runs} DUR={dur}" + (f" WORKERS={workers}" if workers != "1" else "")
if label:
    print(f"**{label}**\n")
print(f"Command: `{env} bash bench/packet.sh` ({now}). wrk -t1 -c{conns} (and -c1 for the one-connection latency) with a 128-byte file from nginx on two real servers; "
      f"iperf3 single stream through a source hash (`sh`, nftables `jhash ip saddr`); UDP: iperf3 -u -l 64 offered at "
      f"{', '.join(rates.split())} packets/s, {step} s a step. rvsd `--dataplane packet --interface eth0,eth1 --workers {workers}` (AF_PACKET, TPACKET_V2 frame rings)"
      + ("; the AF_XDP rows: `--backend af_xdp --workers 1` (rvsd built with `--features xdp`; generic XDP, AF_XDP copy mode, one worker as a veth has one receive queue)." if any(p in data for p in ("dr_xdp", "nat_xdp")) else "."))
print(f"Machine: {subprocess.getoutput('nproc')} cores, {cpu}, kernel {kernel}; client, director and real servers share the cores. "
      f"Veth offloads: `tso gso gro tx` **off** on every veth end, for every peer. Medians of {runs} run(s).\n")
names = {"direct": "direct to one real server", "nft": "nftables DNAT `numgen inc mod 2`",
         "nat": "rvs NAT", "dr": "rvs DR", "tun": "rvs TUN (userspace decapsulator)",
         "dr_xdp": "rvs DR (AF_XDP)", "nat_xdp": "rvs NAT (AF_XDP)"}
print("| path | keep-alive req/s | p50 ms | p99 ms | new conn/request req/s | p50 ms | p99 ms | one connection: req/s | p50 ms | iperf3 Gbit/s | UDP 64 B: highest rate ≤ 0.1 % loss, pkt/s | at the top rate offered: received pkt/s (loss) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
errs = []
for p in ["direct", "nft", "nat", "dr", "tun", "dr_xdp", "nat_xdp"]:
    if p not in data: continue
    e = sum(x[3] + x[7] + x[16] for x in data[p])
    if e: errs.append(f"{names[p]}: {e:.0f} wrk errors")
    print(f"| {names[p]} | {med(p,0):.0f} | {med(p,1):.2f} | {med(p,2):.2f} | {med(p,4):.0f} | {med(p,5):.2f} | {med(p,6):.2f} | {med(p,13):.0f} | {med(p,14):.2f} | {med(p,8):.2f} | {med(p,9):.0f} | {med(p,11):.0f} ({med(p,12):.1f} %) |")
if errs:
    print("\nErrors: " + "; ".join(errs) + ".")
def ratio(a, b, i):
    d = med(b, i)
    return f"{med(a,i)/d:.2f}" if d else "—"
print("\n| ratio | keep-alive req/s | keep-alive p99 | new conn req/s | new conn p99 | one connection req/s | iperf3 | UDP zero-loss rate | UDP received at top rate |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in ["dr", "nat", "tun", "dr_xdp", "nat_xdp"]:
    if p not in data or "nft" not in data: continue
    print(f"| {names[p]} / nftables | {ratio(p,'nft',0)} | {ratio(p,'nft',2)} | {ratio(p,'nft',4)} | {ratio(p,'nft',6)} | {ratio(p,'nft',13)} | {ratio(p,'nft',8)} | {ratio(p,'nft',9)} | {ratio(p,'nft',11)} |")
if raw:
    m = lambda i: statistics.median(x[i] for x in raw)
    sent, secs, drx, rx, tx, rxfull, txfull, got, ucpu, kcpu = (m(i) for i in range(10))
    cpu = ucpu + kcpu
    print(f"\nRaw rate of the data plane (DR, one worker, UDP to 203.0.113.10:9, {flows} flows): the `frame_gen` example sends 64-byte "
          f"frames (60 + FCS) through an AF_PACKET TX ring (qdisc bypassed) from its own namespace to the director's MAC for up to {dur} s; "
          f"the frames are counted at the director's eth0, by rvsd, and on rs0's eth0; the worker thread's CPU time comes from "
          f"`/proc/PID/task/TID/stat`. Medians of {len(raw)} run(s):\n")
    print("| offered frames/s | director eth0 received/s | rvsd took from the ring/s | rvsd transmitted/s | delivered to rs0 frames/s | loss | RX ring full | TX ring full | worker CPU busy (user + system) | frames per worker CPU-second | per user CPU-second |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    loss = (sent - got) / sent * 100 if sent else 0
    busy = cpu / secs * 100 if secs else 0
    per_cpu = tx / cpu if cpu else 0
    print(f"| {sent/secs:,.0f} | {drx/secs:,.0f} | {rx/secs:,.0f} | {tx/secs:,.0f} | {got/secs:,.0f} | {loss:.1f} % | {rxfull:,.0f} | {txfull:,.0f} | {busy:.0f} % ({ucpu/secs*100:.0f} + {kcpu/secs*100:.0f}) | {per_cpu:,.0f} | {tx/ucpu if ucpu else 0:,.0f} |")
PY
if [ -z "$ONLY" ]; then
  write_results_section packet-bench "The packet data plane against nftables" <"$OUT/section.md"
else
  echo "ONLY=$ONLY: a partial run; bench/RESULTS.md left alone" >&2
fi
cat "$OUT/section.md"
