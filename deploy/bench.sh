#!/usr/bin/env bash
# bench.sh: kvbench against a throwaway local cluster, run inside ../shared/peers/peers.sh so
# the bare gRPC echo ceiling, etcd and Redis are measured in the same minutes of this machine.
#   deploy/bench.sh                       single node (config/single.yaml), put and get
#   CONFIG=config/cluster3.yaml LEVELS="ONE QUORUM ALL" PEERS="echo etcd redis" deploy/bench.sh
# Requests are spread over every node of the config. Ports are moved so a running
# `make cluster` is not disturbed. The first kvbench run preloads every key (PRELOAD=0: not),
# so gets find values. At the end, a summary: each tunekv row with its ratio to the echo
# ceiling and to the peer doing the same job in the same run (QUORUM put / etcd put, QUORUM
# get / etcd get, ONE put / Redis SET+WAIT 1, ONE get / Redis GET), and each node's RSS.
# With TLS=1, two more copies of the cluster run: one with a tls section (deploy/certs.sh
# makes its certificates; kvbench connects with the client one) and a plaintext twin; each
# gets a preload and QUORUM puts, and a last row gives the TLS copy's as a ratio of the
# twin's, measured in the same run.
# Env: CONFIG PEERS (echo) LEVELS (keyspace default) DURATION (8) CONC (64) VALUE_BYTES (100)
#      KEYS (10000) PRELOAD (1) TLS (0)
set -u
cd "$(dirname "$0")/.." || exit 2
peers=../shared/peers/peers.sh
[ -x "$peers" ] || { echo "bench.sh: $peers is missing" >&2; exit 2; }
for peer in ${PEERS:-echo}; do
  case $peer in etcd) bin=etcd ;; redis) bin=redis-server ;; *) continue ;; esac
  command -v $bin >/dev/null ||
    { echo "bench.sh: PEERS names $peer but $bin is not installed (make bench installs it)" >&2; exit 2; }
done
CONFIG=${CONFIG:-config/single.yaml} LEVELS=${LEVELS:-default}
DURATION=${DURATION:-8} CONC=${CONC:-64} VALUE_BYTES=${VALUE_BYTES:-100} KEYS=${KEYS:-10000}
PRELOAD=${PRELOAD:-1} TLS=${TLS:-0}
work=$(mktemp -d /tmp/tunekv-bench.XXXXXX)
shift_ports=$((16000 + $$ % 1000))
# shifted CONFIG OFFSET: CONFIG with every 127.0.0.1:PORT moved by OFFSET.
shifted() {
  python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print(re.sub(r'127\.0\.0\.1:(\d+)', lambda m: '127.0.0.1:%d' % (int(m.group(1)) + int(sys.argv[2])), text), end='')
PY
}
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM $p 2>/dev/null; done; wait; rm -rf "$work"' EXIT
# start CONFIG DIR: every node of CONFIG, data and logs under DIR; returns once each serves.
start() {
  local id ids
  ids=$(sed -n '/^nodes:/,/^[a-z]/s/.*id: *\([A-Za-z0-9_.-]*\).*/\1/p' "$1")
  mkdir -p "$2"
  for id in $ids; do
    bin/kvnode --config "$1" --node "$id" --data-dir "$2/$id" 2>"$2/$id.log" &
    pids+=($!)
  done
  for id in $ids; do
    for _ in $(seq 50); do grep -q "serving on" "$2/$id.log" && break; sleep 0.1; done
  done
}
addrs_of() { sed -n 's/.*address: *"\{0,1\}\([0-9.]*:[0-9]*\).*/\1/p' "$1" | paste -sd, -; }
shifted "$CONFIG" "$shift_ports" >"$work/cluster.yaml"
start "$work/cluster.yaml" "$work"
addrs=$(addrs_of "$work/cluster.yaml")
cmd=""
pre=""; [ "$PRELOAD" = 1 ] && pre="--preload"
for level in $LEVELS; do
  lflag=""; [ "$level" = default ] || lflag="-c $level"
  for op in put get; do
    cmd="$cmd bin/kvbench -a $addrs --duration $DURATION --warmup 2 --concurrency $CONC"
    cmd="$cmd --value-bytes $VALUE_BYTES --keys $KEYS --mix $op=100 $lflag $pre"
    cmd="$cmd --json $work/$op-$level.json | tail -1 | sed 's/^/$level /';"
    pre=""
  done
done
if [ "$TLS" = 1 ]; then
  deploy/certs.sh "$work/cluster.yaml" "$work/certs" >/dev/null || exit 2
  { shifted "$work/cluster.yaml" 100
    printf 'tls: { cert: "%s/{node}.pem", key: "%s/{node}.key", ca: "%s/ca.pem" }\n' \
      "$work/certs" "$work/certs" "$work/certs"; } >"$work/tls.yaml"
  shifted "$work/cluster.yaml" 200 >"$work/twin.yaml"
  start "$work/tls.yaml" "$work/tls"
  start "$work/twin.yaml" "$work/twin"
  tls_flags="--tls-ca $work/certs/ca.pem --tls-cert $work/certs/client.pem"
  tls_flags="$tls_flags --tls-key $work/certs/client.key"
  # The same history on both fresh clusters (a preload, then QUORUM puts), one after the
  # other: the first copy's store has had every run above, which makes its puts slower.
  for twin in twin:"$(addrs_of "$work/twin.yaml")" TLS:"$(addrs_of "$work/tls.yaml") $tls_flags"; do
    cmd="$cmd bin/kvbench -a ${twin#*:} --duration $DURATION --warmup 2 --concurrency $CONC"
    cmd="$cmd --value-bytes $VALUE_BYTES --keys $KEYS --mix put=100 -c QUORUM --preload"
    cmd="$cmd --json $work/put-${twin%%:*}.json | tail -1 | sed 's/^/${twin%%:*} QUORUM /';"
  done
fi
ONLY=${PEERS:-echo} DURATION=$DURATION CONC=$CONC TUNEKV_CMD="$cmd" "$peers" | tee "$work/peers.out"
python3 - "$work" $LEVELS <<'PY'
import json, os, re, sys
work, levels = sys.argv[1], sys.argv[2:]
peers = {}
for line in open(os.path.join(work, "peers.out")):
    m = re.match(r"\| (.+?) +\| +(\d+) +\| +[\d.]+ +\| +([\d.]+) +\|", line)
    if m: peers[m.group(1)] = (float(m.group(2)), float(m.group(3)))
echo = peers.get("grpc echo (ceiling)", (0, 0))[0]
match = {("QUORUM", "put"): "etcd x3 put (raft+fsync)", ("QUORUM", "get"): "etcd x3 get (linearizable)",
         ("ONE", "put"): "redis x3 SET+WAIT 1", ("ONE", "get"): "redis x3 GET (primary)"}
print()
print(f"| {'operation':<22} | {'ops/s':>8} | {'p99 ms':>7} | {'vs echo':>7} | {'peer in the same run':<42} | rss MiB per node |")
print(f"|{'-'*24}|{'-'*10}|{'-'*9}|{'-'*9}|{'-'*44}|------------------|")
if echo: print(f"| {'gRPC echo (the limit)':<22} | {echo:>8.0f} | {peers['grpc echo (ceiling)'][1]:>7.2f} | {'1.00x':>7} | {'':<42} | |")
for level in levels:
    for op in ("put", "get"):
        path = os.path.join(work, f"{op}-{level}.json")
        if not os.path.exists(path): continue
        r = json.load(open(path))
        ops, p99 = r[op]["ops_per_sec"], r[op]["p99_ms"]
        ratio = f"{ops / echo:.2f}x" if echo else "-"
        peer = match.get((level, op))
        other = ""
        if peer and peer in peers and peers[peer][0] > 0:
            other = f"{peer.split(' (')[0]} {peers[peer][0]:.0f} (we are {ops / peers[peer][0]:.2f}x)"
        rss = " ".join(f"{n['rss_bytes'] / 2**20:.0f}" for n in r.get("nodes", []))
        print(f"| {level + ' ' + op:<22} | {ops:>8.0f} | {p99:>7.2f} | {ratio:>7} | {other:<42} | {rss} |")
tls = os.path.join(work, "put-TLS.json")
plain = os.path.join(work, "put-twin.json")
if os.path.exists(tls):
    r = json.load(open(tls))
    ops, p99 = r["put"]["ops_per_sec"], r["put"]["p99_ms"]
    ratio = f"{ops / echo:.2f}x" if echo else "-"
    other = ""
    if os.path.exists(plain):
        base = json.load(open(plain))["put"]["ops_per_sec"]
        other = f"a fresh plaintext twin {base:.0f} (TLS is {ops / base:.2f}x)"
    rss = " ".join(f"{n['rss_bytes'] / 2**20:.0f}" for n in r.get("nodes", []))
    print(f"| {'QUORUM put over TLS':<22} | {ops:>8.0f} | {p99:>7.2f} | {ratio:>7} | {other:<42} | {rss} |")
PY
