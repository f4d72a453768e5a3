#!/usr/bin/env bash
# cluster.sh: runs every node of a cluster config on this machine, in the foreground.
#   deploy/cluster.sh [CONFIG [KVNODE-FLAG...]]   (default config/single.yaml; the flags,
#                                                  e.g. --allow-fault-injection, go to every node)
# With TLS=1 in the environment the nodes run with TLS and mutual TLS between them: certificates
# for the config's nodes and a client (deploy/certs.sh) in data/<cluster>-certs/ (made once,
# kept), and a copy of the config with a tls section naming them in data/<cluster>-tls.yaml;
# the line it prints says how kvctl reaches them.
# Each node keeps its data in data/<cluster>/<node id>; its log lines are prefixed with its
# id. A node that dies is reported and the others keep serving; Ctrl-C (or SIGTERM) stops
# every node cleanly and waits for them.
set -u
cd "$(dirname "$0")/.." || exit 2
config=${1:-config/single.yaml}
[ -x bin/kvnode ] || { echo "cluster.sh: bin/kvnode is missing; run 'make' first" >&2; exit 2; }
[ -r "$config" ] || { echo "cluster.sh: cannot read $config" >&2; exit 2; }
cluster=$(sed -n 's/^ *name: *\([A-Za-z0-9_.-]*\).*/\1/p' "$config" | head -1)
ids=$(sed -n '/^nodes:/,/^[a-z]/s/.*id: *\([A-Za-z0-9_.-]*\).*/\1/p' "$config")
[ -n "$ids" ] || { echo "cluster.sh: no nodes found in $config" >&2; exit 2; }

if [ "${TLS:-}" = 1 ]; then
  if grep -q '^tls:' "$config"; then echo "cluster.sh: $config has a tls section already" >&2; exit 2; fi
  certs=data/$cluster-certs
  [ -s "$certs/ca.pem" ] || deploy/certs.sh "$config" "$certs" || exit 2
  tls_config=data/$cluster-tls.yaml
  { cat "$config"
    printf 'tls: { cert: "%s/{node}.pem", key: "%s/{node}.key", ca: "%s/ca.pem" }\n' \
      "$certs" "$certs" "$certs"; } >"$tls_config"
  config=$tls_config
  echo "cluster.sh: TLS on; for kvctl and kvbench: export TUNEKV_TLS_CA=$certs/ca.pem" \
    "TUNEKV_TLS_CERT=$certs/client.pem TUNEKV_TLS_KEY=$certs/client.key"
fi

pids=()
declare -A node_of
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
  bin/kvnode --config "$config" --node "$id" --data-dir "data/$cluster/$id" "${@:2}" \
    > >(sed -u "s/^/$id | /") 2>&1 &
  pids+=($!)
  node_of[$!]=$id
done
addrs=$(sed -n 's/.*address: *"\{0,1\}\([0-9.]*:[0-9]*\).*/\1/p' "$config" | paste -sd, -)
echo "cluster.sh: started $(echo $ids | wc -w) node(s) of $config ($addrs); Ctrl-C stops them"
# Run until Ctrl-C. A node that exits (killed on purpose, to watch the others carry on) is
# reported and the rest keep running.
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  done_pid=
  wait -n -p done_pid "${running[@]}"
  code=$?
  [ -n "$done_pid" ] || continue
  still=()
  for p in "${running[@]}"; do [ "$p" = "$done_pid" ] || still+=("$p"); done
  running=("${still[@]}")
  echo "cluster.sh: node ${node_of[$done_pid]} exited ($code); ${#running[@]} still running"
done
echo "cluster.sh: every node has exited"
