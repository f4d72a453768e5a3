#!/usr/bin/env bash
# service.sh: kvnode as a service manager runs it, on a real 3-node cluster (127.0.0.1 only).
#   - sd_notify: with NOTIFY_SOCKET set, a node sends READY=1 once it serves and STOPPING=1
#     when SIGTERM stops it (received here on a unix datagram socket, as systemd would).
#   - the drain: SIGTERM to n3 while kvbench loads all three nodes and ackput writes new keys
#     at QUORUM through all three, writing down each acknowledged one. n3 must exit 0 (within
#     the unit's TimeoutStopSec), say it stopped cleanly, come back with the same incarnation
#     (store.c note 4: only a clean close keeps it), and every acknowledged key must read back
#     at QUORUM; once n1 and n2 have handed n3 the hints they kept while it was down, every
#     acknowledged key must be in n3's own replica too (get --local), none dropped.
# Waits for events (log lines, files growing, exits), never for a fixed time. Stops every
# process it started, by pid. Prints one line per test and ends with "N passed, N failed".
. "$(dirname "$0")/lib.sh"
ACKPUT=build/tools/ackput
KVBENCH=bin/kvbench
STOP_TIMEOUT_S=30     # deploy/tunekv.service's TimeoutStopSec
base=$((38000 + ($$ % 300) * 10))   # this run's ports: base+1 .. base+3
declare -a pid addr
for i in 1 2 3; do addr[$i]=127.0.0.1:$((base + i)); done
all=${addr[1]},${addr[2]},${addr[3]}

cat >"$work/cluster.yaml" <<YAML
cluster:
  name: svc
  partitions: 64
nodes:
  - { id: n1, address: "${addr[1]}", region: local, rack: r1 }
  - { id: n2, address: "${addr[2]}", region: local, rack: r2 }
  - { id: n3, address: "${addr[3]}", region: local, rack: r3 }
keyspaces:
  - name: default
    replication: { local: 3 }
    read: QUORUM
    write: QUORUM
YAML

# wait_for WHAT TRIES CMD...: polls CMD every 0.05 s until it succeeds, at most TRIES times.
wait_for() {
  local what=$1 tries=$2
  shift 2
  for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.05; done
  echo "gave up waiting for $what"
  return 1
}

# start_node I LOG: starts nI on its data directory (kept across restarts) with the
# environment in ${node_env[I]}, and waits for its "serving on" line.
declare -a node_env
start_node() {
  local i=$1 log=$2
  # shellcheck disable=SC2086 # the variables are words
  env ${node_env[$i]:-} "$KVNODE" --config "$work/cluster.yaml" --node "n$i" --data-dir "$work/d$i" \
    >"$log" 2>&1 &
  pid[$i]=$!
  pids+=($!)
  wait_for "n$i to serve" 200 grep -q "serving on" "$log" || { cat "$log"; return 1; }
}
incarnation() { grep -o 'incarnation [0-9a-f]*' "$1"; }
# acked_via FILE ADDR: how many of FILE's acknowledgements came through ADDR.
acked_via() { awk -v a="$2" '$2 == a' "$1" 2>/dev/null | wc -l; }
# What nI kept for n3 while it was down, as `kvctl hints` shows it: "PENDING DROPPED".
hints_for_n3() { "$KVCTL" -a "${addr[$1]}" hints 2>/dev/null | awk '$1 == "n3" { print $3, $6 }'; }
no_hints_for_n3() { [ "$(hints_for_n3 "$1")" = "0 0" ]; }

# ---- sd_notify: a listener where systemd's would be ---------------------------------------
python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening")
while True:
    print(s.recv(4096).decode().replace("\n", " "))
' "$work/notify.sock" >"$work/notify.log" 2>&1 &
pids+=($!)
wait_for "the notify listener" 100 grep -q listening "$work/notify.log" || exit 1
node_env[3]="NOTIFY_SOCKET=$work/notify.sock"

for i in 1 2 3; do start_node "$i" "$work/n$i.log" || exit 1; done
# Load starts once every node sees both peers up, so its refusals come from the stop only.
wait_state 1 up n2 n3 && wait_state 2 up n1 n3 && wait_state 3 up n1 n2 || { echo "peers never up"; exit 1; }
check "sd_notify: READY=1 once the node serves" "notifications: $(cat "$work/notify.log")" \
  wait_for READY 100 grep -q "^READY=1 STATUS=serving" "$work/notify.log"
inc_before=$(incarnation "$work/n3.log")

# ---- the drain: SIGTERM to n3 under load --------------------------------------------------
# kvbench keeps the three nodes busy with puts and gets over its own keys; ackput writes new
# keys through all three nodes and notes each acknowledgement (OUT lines: KEY ADDR).
"$KVBENCH" -a "$all" --duration 4 --concurrency 8 --mix put=70,get=30 --keys 2000 \
  --no-progress >"$work/bench.out" 2>&1 &
bench_pid=$!
pids+=($bench_pid)
"$ACKPUT" put "$all" k 4 8 "$work/acks" >"$work/ackput.out" 2>"$work/ackput.err" &
ackput_pid=$!
pids+=($ackput_pid)

# Stop n3 once it has acknowledged 500 writes of its own, so calls are in flight on it.
n3_acked_500() { [ "$(acked_via "$work/acks" "${addr[3]}")" -ge 500 ]; }
wait_for "n3 to acknowledge 500 writes" 400 n3_acked_500 || { cat "$work/ackput.out" "$work/ackput.err"; exit 1; }
t0=$(date +%s%N)
kill -TERM "${pid[3]}"
wait "${pid[3]}"; rc=$?
stop_ms=$((($(date +%s%N) - t0) / 1000000))
# Only what n3 acknowledged before it exited counts as its own (the file may still grow).
cp "$work/acks" "$work/acks.at-stop"
check "SIGTERM under load: n3 exits 0 ($stop_ms ms)" "exit $rc; log: $(tail -3 "$work/n3.log")" [ "$rc" = 0 ]
check "SIGTERM under load: within the unit's stop timeout (${STOP_TIMEOUT_S} s)" "took $stop_ms ms" \
  [ "$stop_ms" -lt $((STOP_TIMEOUT_S * 1000)) ]
check "SIGTERM under load: n3 logs that it stopped cleanly" "log: $(tail -3 "$work/n3.log")" \
  grep -q "stopped cleanly" "$work/n3.log"
check "sd_notify: STOPPING=1 when SIGTERM stops the node" "notifications: $(cat "$work/notify.log")" \
  grep -q "^STOPPING=1" "$work/notify.log"

# Back on the same data while the load goes on.
start_node 3 "$work/n3b.log" || exit 1
check "a clean stop keeps the incarnation (the store was closed, WAL synced)" \
  "$inc_before, then $(incarnation "$work/n3b.log")" [ "$inc_before" = "$(incarnation "$work/n3b.log")" ]
wait "$ackput_pid"; ackput_rc=$?
wait "$bench_pid"; bench_rc=$?
check "kvbench ran through the stop (exit 0, or 3 for requests refused while n3 was down)" \
  "exit $bench_rc: $(tail -3 "$work/bench.out")" [ "$bench_rc" = 0 -o "$bench_rc" = 3 ]
acked=$(wc -l <"$work/acks") acked3=$(acked_via "$work/acks.at-stop" "${addr[3]}")
check "ackput ran through the stop ($(head -1 "$work/ackput.out"))" "exit $ackput_rc" \
  [ "$ackput_rc" = 0 -a "$acked" -gt 0 ]

expect "every acknowledged write reads back at QUORUM" 0 \
  "ackput: $acked acknowledged, $acked read back, 0 missing, 0 wrong" \
  "$ACKPUT" check "${addr[1]}" "$work/acks" QUORUM
expect "every write n3 acknowledged before its stop is in its own replica" 0 \
  "ackput: $acked3 acknowledged, $acked3 read back, 0 missing, 0 wrong" \
  "$ACKPUT" check "${addr[3]}" "$work/acks.at-stop" local "${addr[3]}"
for i in 1 2; do
  if wait_for "n$i's hints for n3" 400 no_hints_for_n3 "$i" >/dev/null; then
    ok "n$i hands n3 every hint it kept (none pending, none dropped)"
  else
    fail "n$i hands n3 every hint it kept (none pending, none dropped)" \
      "pending and dropped: $(hints_for_n3 "$i")"
  fi
done
expect "then every acknowledged write is in n3's own replica" 0 \
  "ackput: $acked acknowledged, $acked read back, 0 missing, 0 wrong" \
  "$ACKPUT" check "${addr[3]}" "$work/acks" local

for i in 1 2 3; do kill -TERM "${pid[$i]}"; wait "${pid[$i]}"; done
summary
