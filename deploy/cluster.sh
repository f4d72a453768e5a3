#!/usr/bin/env bash
# cluster.sh: runs every node of a cluster config on this machine, in the foreground.
#   deploy/cluster.sh [CONFIG]        (default config/single.yaml)
# Each node keeps its data in data/<cluster>/<node id>; its log lines are prefixed with its
# id. Ctrl-C (or SIGTERM) stops every node cleanly and waits for them.
set -u
cd "$(dirname "$0")/.." || exit 2
config=${1:-config/single.yaml}
[ -x bin/kvnode ] || { echo "cluster.sh: bin/kvnode is missing; run 'make' first" >&2; exit 2; }
[ -r "$config" ] || { echo "cluster.sh: cannot read $config" >&2; exit 2; }
cluster=$(sed -n 's/^ *name: *\([A-Za-z0-9_.-]*\).*/\1/p' "$config" | head -1)
ids=$(sed -n '/^nodes:/,/^[a-z]/s/.*id: *\([A-Za-z0-9_.-]*\).*/\1/p' "$config")
[ -n "$ids" ] || { echo "cluster.sh: no nodes found in $config" >&2; exit 2; }

pids=()
stop() {
  trap - INT TERM
  echo "cluster.sh: stopping ${#pids[@]} node(s)"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  status=0
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  exit $status
}
trap stop INT TERM

for id in $ids; do
  mkdir -p "data/$cluster/$id"
  bin/kvnode --config "$config" --node "$id" --data-dir "data/$cluster/$id" \
    > >(sed -u "s/^/$id | /") 2>&1 &
  pids+=($!)
done
addrs=$(sed -n 's/.*address: *"\{0,1\}\([0-9.]*:[0-9]*\).*/\1/p' "$config" | paste -sd, -)
echo "cluster.sh: started $(echo $ids | wc -w) node(s) of $config ($addrs); Ctrl-C stops them"
# Wait for all; if one exits on its own, stop the rest too.
wait -n "${pids[@]}"
echo "cluster.sh: a node exited; stopping the others"
stop
