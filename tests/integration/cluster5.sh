#!/usr/bin/env bash
# cluster5.sh: five nodes, N=3, so every node is a replica of only some keys. Writes sent to
# a node that is not a replica are forwarded to the first live replica; reads are coordinated
# wherever they arrive. Prints one line per test and "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
base=$((26000 + ($$ % 300) * 10))
addr() { echo "127.0.0.1:$((base + $1))"; }

{
  echo "cluster: { name: five, partitions: 64 }"
  echo "nodes:"
  for i in 1 2 3 4 5; do echo "  - { id: n$i, address: \"$(addr $i)\", rack: r$i }"; done
  echo "keyspaces:"
  echo "  - { name: default, replication: { local: 3 }, read: QUORUM, write: QUORUM }"
} >"$work/five.yaml"
for i in 1 2 3 4 5; do
  "$KVNODE" --config "$work/five.yaml" --node "n$i" --data-dir "$work/n$i" >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3 4 5; do
  for _ in $(seq 100); do grep -q "serving on" "$work/n$i.log" && break; sleep 0.1; done
done
# Nodes that started first saw the others refuse connections; wait until all see all up.
for i in 1 2 3 4 5; do
  for _ in $(seq 100); do
    "$KVCTL" -a "$(addr $i)" status 2>/dev/null | grep -q " down " || break
    sleep 0.1
  done
done

# 40 keys, each written at ALL through a node chosen round-robin: with N=3 of 5, some
# 2 in 5 of them reach a node that is not a replica and are forwarded.
errors=0
for k in $(seq 1 40); do
  "$KVCTL" -a "$(addr $((k % 5 + 1)))" put default "key$k" "v$k" -c ALL >/dev/null 2>"$work/err" ||
    { errors=$((errors + 1)); cat "$work/err"; }
done
[ $errors = 0 ] && ok "40 puts at ALL through every node succeed" || fail "40 puts at ALL through every node succeed" "$errors failed"

wrong=0
for k in $(seq 1 40); do
  got=$("$KVCTL" -a "$(addr $(((k + 2) % 5 + 1)))" get default "key$k" -c QUORUM 2>&1)
  [ "$got" = "v$k" ] || wrong=$((wrong + 1))
done
[ $wrong = 0 ] && ok "each key reads back at QUORUM through another node" || fail "each key reads back at QUORUM through another node" "$wrong wrong"

# Placement: a forwarded write lands on the key's replicas only, so every key is held by
# exactly three nodes' own replicas, and every node holds some but not all keys.
misplaced=0
declare -A held
for k in $(seq 1 40); do
  copies=0
  for i in 1 2 3 4 5; do
    if [ "$("$KVCTL" -a "$(addr $i)" get default "key$k" --local 2>/dev/null)" = "v$k" ]; then
      copies=$((copies + 1)); held[$i]=$((${held[$i]:-0} + 1))
    fi
  done
  [ $copies = 3 ] || misplaced=$((misplaced + 1))
done
[ $misplaced = 0 ] && ok "every key is on exactly 3 of the 5 nodes" || fail "every key is on exactly 3 of the 5 nodes" "$misplaced keys elsewhere"
spread=1
for i in 1 2 3 4 5; do
  h=${held[$i]:-0}
  { [ "$h" -gt 0 ] && [ "$h" -lt 40 ]; } || spread=0
done
[ $spread = 1 ] && ok "every node holds some keys but not all" || fail "every node holds some keys but not all" "held: ${held[*]}"

# Siblings and contexts survive forwarding: two blind writes through two nodes, then one
# with the read context through a third.
"$KVCTL" -a "$(addr 1)" put default sib a >/dev/null 2>&1
"$KVCTL" -a "$(addr 2)" put default sib b >/dev/null 2>&1
got=$("$KVCTL" -a "$(addr 3)" get default sib -c ALL | sort | tr '\n' ' ')
[ "$got" = "a b " ] && ok "blind writes through two nodes give two siblings" || fail "blind writes through two nodes give two siblings" "got '$got'"
ctx=$("$KVCTL" -a "$(addr 4)" get default sib --json | python3 -c 'import sys,json; print(json.load(sys.stdin)["context"])')
"$KVCTL" -a "$(addr 5)" put default sib c --context "$ctx" >/dev/null
got=$("$KVCTL" -a "$(addr 1)" get default sib -c ALL)
[ "$got" = c ] && ok "a write with the read context replaces both" || fail "a write with the read context replaces both" "got '$got'"

# Errors from the replica a write was forwarded to come back as they were.
out=$("$KVCTL" -a "$(addr 1)" put default "key1" v -w 4 2>&1); rc=$?
[ $rc = 3 ] && [ "$out" = "INVALID_ARGUMENT: w is 4 but keyspace 'default' has only N=3 replicas" ] &&
  ok "a bad request is refused with its sentence" || fail "a bad request is refused with its sentence" "rc $rc: $out"

for p in "${pids[@]}"; do kill -TERM "$p"; done
clean=1
for p in "${pids[@]}"; do wait "$p" || clean=0; done
pids=()
[ $clean = 1 ] && ok "SIGTERM stops all five cleanly" || fail "SIGTERM stops all five cleanly" "a node exited non-zero"

summary
