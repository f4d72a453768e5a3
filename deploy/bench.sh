#!/usr/bin/env bash
# bench.sh: kvbench against a throwaway local node, run inside ../shared/peers/peers.sh so the
# bare gRPC echo ceiling (and, with PEERS="echo etcd redis", etcd and Redis) is measured in
# the same minutes of this machine.
#   deploy/bench.sh                 single node, put=100 then get=100, 64 in flight
# Env: PEERS (echo) DURATION (8) CONC (64) VALUE_BYTES (100) KEYS (10000)
set -u
cd "$(dirname "$0")/.." || exit 2
peers=../shared/peers/peers.sh
[ -x "$peers" ] || { echo "bench.sh: $peers is missing" >&2; exit 2; }
DURATION=${DURATION:-8} CONC=${CONC:-64} VALUE_BYTES=${VALUE_BYTES:-100} KEYS=${KEYS:-10000}
work=$(mktemp -d /tmp/tunekv-bench.XXXXXX)
port=$((23000 + $$ % 1000))
sed "s/127.0.0.1:7001/127.0.0.1:$port/" config/single.yaml >"$work/single.yaml"
bin/kvnode --config "$work/single.yaml" --node n1 --data-dir "$work/n1" 2>"$work/n1.log" &
node=$!
trap 'kill -TERM $node 2>/dev/null; wait $node 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q "serving on" "$work/n1.log" && break; sleep 0.1; done
bench="bin/kvbench -a 127.0.0.1:$port --duration $DURATION --warmup 2 --concurrency $CONC"
bench="$bench --value-bytes $VALUE_BYTES --keys $KEYS"
cmd="$bench --mix put=100 --json $work/put.json | tail -1; $bench --mix get=100 --json $work/get.json | tail -1"
ONLY=${PEERS:-echo} DURATION=$DURATION CONC=$CONC TUNEKV_CMD="$cmd" "$peers"
