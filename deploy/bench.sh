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
# Env: CONFIG PEERS (echo) LEVELS (keyspace default) DURATION (8) CONC (64) VALUE_BYTES (100)
#      KEYS (10000) PRELOAD (1)
set -u
cd "$(dirname "$0")/.." || exit 2
peers=../shared/peers/peers.sh
[ -x "$peers" ] || { echo "bench.sh: $peers is missing" >&2; exit 2; }
CONFIG=${CONFIG:-config/single.yaml} LEVELS=${LEVELS:-default}
DURATION=${DURATION:-8} CONC=${CONC:-64} VALUE_BYTES=${VALUE_BYTES:-100} KEYS=${KEYS:-10000}
PRELOAD=${PRELOAD:-1}
work=$(mktemp -d /tmp/tunekv-bench.XXXXXX)
shift_ports=$((16000 + $$ % 1000))
# Move every 127.0.0.1:PORT of the config by the same offset.
python3 - "$CONFIG" "$shift_ports" >"$work/cluster.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print(re.sub(r'127\.0\.0\.1:(\d+)', lambda m: '127.0.0.1:%d' % (int(m.group(1)) + int(sys.argv[2])), text), end='')
PY
ids=$(sed -n '/^nodes:/,/^[a-z]/s/.*id: *\([A-Za-z0-9_.-]*\).*/\1/p' "$work/cluster.yaml")
addrs=$(sed -n 's/.*address: *"\{0,1\}\([0-9.]*:[0-9]*\).*/\1/p' "$work/cluster.yaml" | paste -sd, -)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM $p 2>/dev/null; done; wait; rm -rf "$work"' EXIT
for id in $ids; do
  bin/kvnode --config "$work/cluster.yaml" --node "$id" --data-dir "$work/$id" 2>"$work/$id.log" &
  pids+=($!)
done
for id in $ids; do
  for _ in $(seq 50); do grep -q "serving on" "$work/$id.log" && break; sleep 0.1; done
done
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
PY
