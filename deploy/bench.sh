#!/usr/bin/env bash
# bench.sh: kvbench against a throwaway local cluster, run inside ../shared/peers/peers.sh so
# the bare gRPC echo ceiling, etcd and Redis are measured in the same minutes of this machine.
#   deploy/bench.sh                       single node (config/single.yaml), put and get
#   CONFIG=config/cluster3.yaml LEVELS="ONE QUORUM ALL" PEERS="echo etcd redis" deploy/bench.sh
# Requests are spread over every node of the config. Ports are moved so a running
# `make cluster` is not disturbed.
# Env: CONFIG PEERS (echo) LEVELS (keyspace default) DURATION (8) CONC (64) VALUE_BYTES (100)
#      KEYS (10000)
set -u
cd "$(dirname "$0")/.." || exit 2
peers=../shared/peers/peers.sh
[ -x "$peers" ] || { echo "bench.sh: $peers is missing" >&2; exit 2; }
CONFIG=${CONFIG:-config/single.yaml} LEVELS=${LEVELS:-default}
DURATION=${DURATION:-8} CONC=${CONC:-64} VALUE_BYTES=${VALUE_BYTES:-100} KEYS=${KEYS:-10000}
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
for level in $LEVELS; do
  lflag=""; [ "$level" = default ] || lflag="-c $level"
  for op in put get; do
    cmd="$cmd bin/kvbench -a $addrs --duration $DURATION --warmup 2 --concurrency $CONC"
    cmd="$cmd --value-bytes $VALUE_BYTES --keys $KEYS --mix $op=100 $lflag"
    cmd="$cmd --json $work/$op-$level.json | tail -1 | sed 's/^/$level /';"
  done
done
ONLY=${PEERS:-echo} DURATION=$DURATION CONC=$CONC TUNEKV_CMD="$cmd" "$peers"
