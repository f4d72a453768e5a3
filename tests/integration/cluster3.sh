#!/usr/bin/env bash
# cluster3.sh: integration tests on a real 3-node cluster (127.0.0.1 only), driven by kvctl:
# replication, consistency levels with nodes down or stopped, failure detection (phi, as
# kvctl status shows it), the ring and each key's place on it (kvctl ring), siblings, deletes
# (with a context, and without: the coordinator reads, then deletes what it read), tombstone
# reaping, replication lag, durability across the cluster, clean shutdown. Starts its nodes
# (with --allow-fault-injection, so a test can cut one off with kvctl fault) on ports of its
# own and
# stops every process it started, by pid. Prints one line per test and ends with
# "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
base=$((25000 + ($$ % 300) * 10))   # this run's ports: base+1 .. base+3
declare -a pid addr
for i in 1 2 3; do addr[$i]=127.0.0.1:$((base + i)); pid[$i]=; done

cat >"$work/cluster.yaml" <<YAML
cluster:
  name: it3
  partitions: 64
  tombstone_grace_ms: 2000
nodes:
  - { id: n1, address: "${addr[1]}", region: local, rack: r1 }
  - { id: n2, address: "${addr[2]}", region: local, rack: r2 }
  - { id: n3, address: "${addr[3]}", region: local, rack: r3 }
keyspaces:
  - name: default
    replication: { local: 3 }
    read: QUORUM
    write: QUORUM
    handler: siblings
YAML

starts=0
# start_node I: starts nI on its data directory (kept across restarts), with the kvnode
# options in ${node_opts[I]}, and waits for "serving on".
declare -a node_opts
start_node() {
  local i=$1 log
  starts=$((starts + 1))
  log=$work/n$i.$starts.log
  last_log[$i]=$log
  # shellcheck disable=SC2086 # the options are words
  "$KVNODE" --config "$work/cluster.yaml" --node "n$i" --data-dir "$work/d$i" \
    --allow-fault-injection ${node_opts[$i]:-} >"$log" 2>&1 &
  pid[$i]=$!
  pids+=($!)
  for _ in $(seq 100); do
    grep -q "serving on" "$log" && return 0
    kill -0 "${pid[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "kvnode n$i did not start:"; cat "$log"
  return 1
}
declare -a last_log

# kill_node I SIGNAL: sends SIGNAL to nI and reaps it; sets node_rc to its exit status.
kill_node() {
  kill -"$2" "${pid[$1]}"
  wait "${pid[$1]}" 2>/dev/null; node_rc=$?
  pid[$1]=
}

# peer_line I PEER: PEER's line in `kvctl status` on nI: id, address, state, phi, "N ms ago".
peer_line() { "$KVCTL" -a "${addr[$1]}" status 2>/dev/null | awk -v p="$2" '/^replication lag/ { exit } $1 == p'; }

# wait_all_up: every node sees both others up (after a start or restart).
wait_all_up() {
  wait_state 1 up n2 n3 && wait_state 2 up n1 n3 && wait_state 3 up n1 n2 ||
    { echo "the nodes did not see each other up"; for i in 1 2 3; do "$KVCTL" -a "${addr[$i]}" status; done; return 1; }
}

ctl() { local i=$1; shift; "$KVCTL" -a "${addr[$i]}" "$@"; }
# get_sorted I KEY [ARGS]: the siblings of KEY through nI, sorted, on one line.
get_sorted() { local i=$1 k=$2; shift 2; ctl "$i" get default "$k" "$@" | sort | tr '\n' ' '; }
# context I KEY [ARGS]: the context of a get --json through nI.
context() {
  local i=$1 k=$2; shift 2
  ctl "$i" get default "$k" --json "$@" | python3 -c 'import sys,json; print(json.load(sys.stdin)["context"])'
}
# lag_writes I: N of "over N writes" in nI's status.
lag_writes() { ctl "$1" status | sed -n 's/.*over \([0-9]*\) writes.*/\1/p'; }

t_start=$(date +%s%N)
# n1 keeps no hints until section 12, so the replicas that miss its writes stay behind for
# read repair (section 11) to find.
node_opts[1]="--hint-bytes-max 0"
for i in 1 2 3; do start_node "$i" || exit 1; done
wait_all_up || exit 1

# ---- 11. status shows each peer's state, phi and last heartbeat -------------------------
out=$(ctl 1 status)
if [[ "$(sed -n 2p <<<"$out")" =~ ^peer\ +address\ +state\ +phi\ +last\ heard$ ]]; then
  ok "11. status has the columns peer, address, state, phi, last heard"
else fail "11. status has the columns peer, address, state, phi, last heard" "$out"; fi
re="^n2 +${addr[2]} +up +[0-9]+\.[0-9] +[0-9]+ ms ago\$"
if [[ "$(peer_line 1 n2)" =~ $re ]]; then
  ok "11. a live peer's line: up, its phi and its heartbeat's age"
else fail "11. a live peer's line: up, its phi and its heartbeat's age" "'$(peer_line 1 n2)'"; fi
read -r _ _ _ phi age _ <<<"$(peer_line 1 n3)"
check "11. a live peer's phi is low ($phi) and its last heartbeat recent ($age ms)" \
  "phi $phi, age $age" awk -v p="$phi" -v a="$age" 'BEGIN { exit !(p < 3 && a < 400) }'

# ---- 1. replication: a put at ALL is on every replica ------------------------------------
ctl 1 put default rep1 "replicated value" -c ALL >/dev/null
expect_exact "1. ALL put through n1 is in n2's replica (get --local)" 0 "replicated value" "" ctl 2 get default rep1 --local
expect_exact "1. ALL put through n1 is in n3's replica (get --local)" 0 "replicated value" "" ctl 3 get default rep1 --local

# ---- 15. kvctl ring: the ring the config implies, as each node sees it ---------------------
ring_out=$(ctl 1 ring 2>&1)
check "15. ring: 64 partitions, 3 nodes, 1 keyspace, as n1 sees it" "$(head -3 <<<"$ring_out")" \
  [ "$(head -1 <<<"$ring_out")" = "ring as n1 sees it: 64 partitions, 3 nodes, 1 keyspace" ]
nodes_ok=1
for i in 1 2 3; do
  re="^n$i +${addr[$i]} +local +r$i +up +default 64\$"
  [[ "$(awk -v n="n$i" '$1 == n' <<<"$ring_out")" =~ $re ]] || nodes_ok=0
done
check "15. ring lists each node: address, region, rack, up, primary of all 64 partitions" \
  "$(sed -n 2,5p <<<"$ring_out")" [ $nodes_ok = 1 ]
# Every partition's primaries are the three nodes on their three racks; there is no fallback.
rows_ok=$(awk '$1 ~ /^[0-9]+$/ && $2 == "local" && NF == 6 && $6 == "-" {
  s = " " $3 " " $4 " " $5 " "; if (index(s, " n1/r1 ") && index(s, " n2/r2 ") && index(s, " n3/r3 ")) k++ }
  END { print k + 0 }' <<<"$ring_out")
check "15. ring has 64 partition rows, each with primaries n1/r1 n2/r2 n3/r3 (in ring order) and no fallback" \
  "$rows_ok good rows; $(sed -n 7,9p <<<"$ring_out")" [ "$rows_ok" = 64 ]
same=$(python3 -c '
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
for d in (a, b):
    for n in d["nodes"]: n["up"] = None
a["node"] = b["node"] = None
print("same" if a == b else "different")' <(ctl 1 ring --json) <(ctl 3 ring --json))
check "15. ring --json on n1 and n3 describe the same ring" "$same" [ "$same" = same ]
json_ok=$(ctl 2 ring --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
parts = d["keyspaces"][0]["partitions"]
good = d["node"] == "n2" and d["partitions"] == 64 and len(parts) == 64
good = good and [p["partition"] for p in parts] == list(range(64))
for p in parts:
    ids = [x["node"] for x in p["primaries"]]
    good = good and sorted(ids) == ["n1", "n2", "n3"] and p["uses"] == ids and not p["fallbacks"]
    good = good and sorted(x["rack"] for x in p["primaries"]) == ["r1", "r2", "r3"]
good = good and all(n["up"] and n["primary_partitions"] == {"default": 64} for n in d["nodes"])
print("ok" if good else "bad")')
check "15. ring --json: 64 partitions, each with 3 primaries on 3 racks, all used, no fallback" \
  "$json_ok" [ "$json_ok" = ok ]
# rep1 was put at ALL (section 1): its primaries are the nodes whose own replica has it.
holders=
for i in 1 2 3; do [ "$(ctl "$i" get default rep1 --local 2>/dev/null)" = "replicated value" ] && holders+="n$i "; done
expect_exact "15. ring default rep1: its primaries are the nodes get --local finds it on" 0 \
  "$(sorted_words $holders)" "" sorted_words $(ring_of 1 default rep1 primaries)
expect_exact "15. ... a request uses all three, none down" 0 "$(ring_of 1 default rep1 primaries)" "" \
  ring_of 1 default rep1 uses
expect_exact "15. ... and n2 places it the same" 0 "$(ring_of 1 default rep1 primaries)" "" \
  ring_of 2 default rep1 primaries
out=$(ctl 2 ring default rep1)
# key_text_ok: $out is a header naming the partition, a line per primary (up, no stand-in), no
# fallbacks, and the nodes a request uses.
key_text_ok() {
  local re="^keyspace default, key rep1: partition [0-9]+ of 64, as n2 sees it \(sloppy quorum on\)\$"
  [[ "$(head -1 <<<"$out")" =~ $re ]] &&
    [ "$(sed -n 2p <<<"$out" | tr -s ' ')" = "primary region rack state stand-in" ] &&
    [ "$(grep -cE '^n[123] +local +r[123] +up +-$' <<<"$out")" = 3 ] &&
    [ "$(sed -n 6p <<<"$out")" = "fallbacks: none" ] &&
    [ "$(sed -n 7p <<<"$out")" = "uses now: $(ring_of 2 default rep1 uses)" ]
}
check "15. ring default rep1 (text): partition, primaries, no fallbacks, what a request uses" \
  "$out" key_text_ok
expect_exact "15. ring of an unknown keyspace is NOT_FOUND" 3 \
  "NOT_FOUND: keyspace 'nope' does not exist" "" ctl 1 ring nope k
expect_exact "15. ring of an empty key is INVALID_ARGUMENT" 3 "INVALID_ARGUMENT: key is empty" "" \
  ctl 1 ring default ""
expect_exact "15. ring of a key over key_bytes_max is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: key is 1025 bytes; keyspace 'default' allows at most 1024" "" \
  ctl 1 ring default "$(head -c 1025 /dev/zero | tr '\0' k)"
expect_exact "15. ring KEYSPACE without KEY is a usage error" 2 \
  "kvctl: ring: missing arguments; usage: kvctl ring [KEYSPACE KEY] [--json]" "" ctl 1 ring default
expect_exact "15. ring with three arguments is a usage error" 2 \
  "kvctl: ring: too many arguments; usage: kvctl ring [KEYSPACE KEY] [--json]" "" ctl 1 ring default k x
expect_exact "15. ring with an unknown flag is a usage error" 2 "kvctl: unknown option '--frob'" "" \
  ctl 1 ring --frob
expect_exact "15. ring with another command's option is a usage error" 2 \
  "kvctl: ring does not take --local" "" ctl 1 ring default k --local
expect_exact "15. ring with an empty KEYSPACE is a usage error" 2 \
  "kvctl: ring: KEYSPACE is empty; 'kvctl ring' alone shows every keyspace" "" ctl 1 ring "" k
expect_exact "15. usage errors are found before anything is sent (nothing listens)" 2 \
  "kvctl: ring: missing arguments; usage: kvctl ring [KEYSPACE KEY] [--json]" "" \
  "$KVCTL" -a 127.0.0.1:1 ring default

# ---- 6. every level name kvctl accepts -------------------------------------------------
for lvl in ONE TWO THREE QUORUM ALL ANY LOCAL_ONE LOCAL_QUORUM EACH_QUORUM quorum; do
  expect "6. put at $lvl is accepted" 0 "" ctl 1 put default lvl "v-$lvl" -c "$lvl"
done
for lvl in ONE TWO THREE QUORUM ALL LOCAL_ONE LOCAL_QUORUM EACH_QUORUM; do
  expect "6. get at $lvl is accepted" 0 "v-" ctl 1 get default lvl -c "$lvl"
done
expect_exact "6. get at ANY is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: ANY is a write level; reads need at least ONE" "" ctl 1 get default lvl -c ANY

# ---- 4. siblings across coordinators ------------------------------------------------------
ctl 1 put default sib a >/dev/null 2>&1
ctl 2 put default sib b >/dev/null 2>&1
expect_exact "4. puts without context through n1 and n2 give two siblings (QUORUM)" 0 "a b " "" get_sorted 3 sib -c QUORUM
expect_exact "4. ... also at ALL" 0 "a b " "" get_sorted 1 sib -c ALL
ctx=$(context 3 sib -c ALL)
ctl 3 put default sib c --context "$ctx" >/dev/null
expect_exact "4. a put through n3 with the read context leaves one value (ALL)" 0 "c" "" ctl 1 get default sib -c ALL

# ---- 5. deletes ----------------------------------------------------------------------------
ctl 1 put default del1 v1 >/dev/null
ctl 2 delete default del1 --context "$(context 1 del1)" >/dev/null
expect_exact "5. get after delete with the read context exits 1 (QUORUM)" 1 "kvctl: not found" "" ctl 3 get default del1 -c QUORUM
expect_exact "5. ... and at ALL" 1 "kvctl: not found" "" ctl 1 get default del1 -c ALL
old=$(ctl 1 put default del2 x1)
ctl 2 put default del2 x2 >/dev/null 2>&1        # concurrent with the context held in $old
ctl 1 delete default del2 --context "$old" >/dev/null 2>&1
expect_exact "5. delete with an old context keeps only the concurrent sibling (ALL)" 0 "x2" "" ctl 3 get default del2 -c ALL

# ---- 16. a delete without a context deletes what its read finds ----------------------------
# blind_delete NAME I KEY ARGS...: a delete without --context through nI exits 0 and prints
# nothing on stderr (no "concurrent version" left beside its tombstone).
blind_delete() {
  local name=$1 i=$2 k=$3 err rc
  shift 3
  err=$(ctl "$i" delete default "$k" "$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" = 0 ] && [ -z "$err" ]; then ok "$name"; else fail "$name" "exit $rc; stderr: '$err'"; fi
}
# wait_lag_writes I N: waits (up to 10 s) until nI counts N writes every replica acknowledged.
wait_lag_writes() {
  for _ in $(seq 200); do [ "$(lag_writes "$1")" -ge "$2" ] && return 0; sleep 0.05; done
  return 1
}
for lvl in ONE QUORUM ALL; do
  ctl 1 put default "blind-$lvl" v -c ALL >/dev/null
  n0=$(lag_writes 2)
  blind_delete "16. a delete at $lvl through n2 without a context leaves no concurrent version" \
    2 "blind-$lvl" -c "$lvl"
  wait_lag_writes 2 $((${n0:-0} + 1)) ||
    fail "16. every replica acknowledges the delete at $lvl" "n2 counts $(lag_writes 2) writes, was $n0"
  expect_exact "16. ... and a get at $lvl through n3 finds nothing" 1 "kvctl: not found" "" \
    ctl 3 get default "blind-$lvl" -c "$lvl"
done
ctl 1 put default blind-sib a >/dev/null 2>&1
ctl 2 put default blind-sib b >/dev/null 2>&1
expect_exact "16. puts without context through n1 and n2 give two siblings (ALL)" 0 "a b " "" \
  get_sorted 3 blind-sib -c ALL
blind_delete "16. a delete without a context through n3 (QUORUM) leaves no concurrent version" \
  3 blind-sib
expect_exact "16. ... and has removed both siblings (ALL through n1)" 1 "kvctl: not found" "" \
  ctl 1 get default blind-sib -c ALL
# A put the delete's read cannot see: n1 is cut off from both others and they from it (so not
# even anti-entropy brings it the put), n2 takes a put at ONE, then n1 a delete at ONE, which
# reads only n1's replica. Each side waits to see the other down first: a partition drops the
# batch in flight, whose end at its deadline (2 s) comes after the fault is cleared, so a
# partition too short to be seen would be seen later, in the middle of another section.
ctl 1 put default blind-conc old -c ALL >/dev/null
ctl 1 fault set n2,n3 --partition && ctl 2 fault set n1 --partition && ctl 3 fault set n1 --partition
wait_state 1 down n2 n3 && wait_state 2 down n1 && wait_state 3 down n1 ||
  fail "16. n1 and the others see each other down" "n1 sees n2 $(peer_state 1 n2), n3 $(peer_state 1 n3)"
expect "16. with n1 cut off, a put at ONE through n2" 0 "" ctl 2 put default blind-conc new -c ONE
blind_delete "16. ... then a delete at ONE through n1 without a context (it reads only n1)" \
  1 blind-conc -c ONE
for i in 1 2 3; do ctl "$i" fault clear; done
wait_all_up || exit 1
expect_exact "16. the put survives the delete, and the value the delete read is gone (ALL)" 0 \
  "new" "" ctl 3 get default blind-conc -c ALL

# ---- 8. replication lag is measured ------------------------------------------------------
n0=$(lag_writes 2)
for i in $(seq 10); do ctl 2 put default "lag$i" v -c QUORUM >/dev/null; done
n=$n0
for _ in $(seq 40); do n=$(lag_writes 2); [ "${n:-0}" -ge $((n0 + 10)) ] && break; sleep 0.05; done
check "8. status on the coordinator reports lag over the QUORUM writes (over $n writes, was $n0)" \
  "'over N writes' went from '$n0' to '$n' after 10 QUORUM writes; status: $(ctl 2 status | tail -1)" \
  test "${n:-0}" -gt 0 -a "${n:-0}" -ge $((n0 + 10))

# ---- 7. DEADLINE_EXCEEDED: a stopped replica never acknowledges --------------------------
kill -STOP "${pid[3]}"; t_stop=$(date +%s%N)
expect_exact "7. ALL put with n3 stopped is DEADLINE_EXCEEDED after --timeout 300" 3 \
  "DEADLINE_EXCEEDED: 2 of 3 replicas acknowledged within 300 ms; ALL needs 3" "" \
  ctl 1 put default stopped v -c ALL --timeout 300
# The stopped n3 keeps its connections open, so only silence tells: phi passes 8 about
# 660 ms after its last heartbeat.
if wait_state 1 down n3 && wait_state 2 down n3; then
  ms=$((($(date +%s%N) - t_stop) / 1000000))
  ok "7. n1 and n2 see the stopped n3 down by phi ($ms ms after SIGSTOP)"
else
  fail "7. n1 and n2 see the stopped n3 down by phi" \
    "n1 says '$(peer_state 1 n3)', n2 '$(peer_state 2 n3)' after 10 s"
fi
read -r _ _ _ phi age _ <<<"$(peer_line 1 n3)"
check "7. status shows the stopped peer's phi over 8 ($phi) and its silence ($age ms)" \
  "phi $phi, age $age" awk -v p="$phi" -v a="$age" 'BEGIN { exit !(p > 8 && a >= 500) }'
kill -CONT "${pid[3]}"
wait_all_up || exit 1

# ---- 9. durability across the cluster ------------------------------------------------------
ctl 2 put default durable "kept" -c QUORUM --durable >/dev/null
for i in 1 2 3; do kill_node "$i" KILL; done
for i in 1 2 3; do start_node "$i" || exit 1; done
wait_all_up || exit 1
expect_exact "9. a durable QUORUM put survives SIGKILL of all three (read at ALL)" 0 "kept" "" \
  ctl 1 get default durable -c ALL
expect_exact "9. ... as does a put at ALL from before" 0 "replicated value" "" ctl 3 get default rep1 -c ALL

# ---- 2. one node down: QUORUM works, ALL is refused at once --------------------------------
kill_node 3 KILL
t0=$(date +%s%N)
if wait_state 1 down n3 && wait_state 2 down n3; then
  ok "2. n1 and n2 see n3 down after SIGKILL ($((($(date +%s%N) - t0) / 1000000)) ms)"
else fail "2. n1 and n2 see n3 down after SIGKILL" "n1 says '$(peer_state 1 n3)', n2 '$(peer_state 2 n3)' after 10 s"; fi
expect "2. QUORUM put through n1 with n3 down" 0 "" ctl 1 put default q1 one -c QUORUM
expect "2. QUORUM put through n2 with n3 down" 0 "" ctl 2 put default q2 two -c QUORUM
expect_exact "2. QUORUM get through n2 of n1's put" 0 "one" "" ctl 2 get default q1 -c QUORUM
expect_exact "2. QUORUM get through n1 of n2's put" 0 "two" "" ctl 1 get default q2 -c QUORUM
expect_exact "2. ring on n1 shows n3 down" 0 down "" \
  awk '$1 == "n3" { print $5 }' <(ctl 1 ring)
expect_exact "2. ring default q1 on n1: n3 is a primary, believed down" 0 n3 "" ring_of 1 default q1 down
expect_exact "2. ... no node stands in for it (3 nodes, no fallback), so a request uses n1 and n2" 0 \
  "n1 n2" "" sorted_words $(ring_of 1 default q1 uses)
check "2. ... and the text says so: stand-in none" "$(ctl 1 ring default q1)" \
  grep -qE '^n3 +local +r3 +down +none$' <(ctl 1 ring default q1)
unavail_all="UNAVAILABLE: ALL needs 3 of 3 replicas; 2 are alive"
# Refused at once, before anything is sent: well inside a 10 s timeout, which a request that
# waited for the dead replica would run out (the bound is the deadline's, not a speed).
for i in 1 2; do
  for op in put get; do
    args=(default "q$i"); [ "$op" = put ] && args+=(x)
    expect_exact "2. ALL $op through n$i is UNAVAILABLE before its 10 s timeout" 3 "$unavail_all" \
      5000 ctl "$i" "$op" "${args[@]}" -c ALL --timeout 10000
  done
done

# ---- 3. two nodes down: ONE works, QUORUM is refused ---------------------------------------
kill_node 2 KILL
if wait_state 1 down n2 n3; then ok "3. n1 sees n2 and n3 down"
else fail "3. n1 sees n2 and n3 down" "n2 '$(peer_state 1 n2)', n3 '$(peer_state 1 n3)' after 10 s"; fi
expect "3. ONE put through n1 with n2 and n3 down" 0 "" ctl 1 put default solo alone -c ONE
expect_exact "3. ONE get through n1 with n2 and n3 down" 0 "alone" "" ctl 1 get default solo -c ONE
unavail_q="UNAVAILABLE: QUORUM needs 2 of 3 replicas; 1 is alive"
expect_exact "3. QUORUM put through n1 is UNAVAILABLE" 3 "$unavail_q" "" ctl 1 put default solo x -c QUORUM
expect_exact "3. QUORUM get through n1 is UNAVAILABLE" 3 "$unavail_q" "" ctl 1 get default solo -c QUORUM

# ---- 11. read repair: replicas that missed writes while down catch up through reads ------
for i in 2 3; do start_node "$i" || exit 1; done
wait_all_up || exit 1
expect "11. n3 missed q1 while it was down (--local)" 1 "not found" ctl 3 get default q1 --local
expect_exact "11. a QUORUM get of q1 through n1" 0 "one" "" ctl 1 get default q1 -c QUORUM
repaired=no
# The repair of a replica that was not among the first R answers goes out once every asked
# replica answered, after the reply: poll for it (10 s bounds a loaded machine).
for _ in $(seq 200); do
  [ "$(ctl 3 get default q1 --local 2>/dev/null)" = one ] && { repaired=yes; break; }
  sleep 0.05
done
check "11. ... repairs n3's replica (--local on n3)" "n3 still lacks q1 after 10 s" [ $repaired = yes ]
dropped=$(ctl 1 hints | awk '$1 == "n3" { print $6 }')
check "11. n1 (no room for hints) counts the hints it dropped for n3" "it says '$dropped'" \
  [ "${dropped:-0}" -gt 0 ]
expect_exact "11. an ALL get of solo (written at ONE with n2 and n3 down)" 0 "alone" "" \
  ctl 1 get default solo -c ALL
expect_exact "11. ... repairs n2 before answering (blocking)" 0 "alone" "" ctl 2 get default solo --local
expect_exact "11. ... and n3" 0 "alone" "" ctl 3 get default solo --local

# ---- 13. a delete missed by a replica (no hint kept) never brings the value back ----------
ctl 1 put default doomed "old value" -c ALL >/dev/null
kill_node 3 KILL
wait_state 1 down n3 || fail "13. n1 sees n3 down" "after 10 s"
doomed_ctx=$(context 1 doomed)
expect "13. delete through n1 with n3 down (n1 keeps no hint)" 0 "" \
  ctl 1 delete default doomed --context "$doomed_ctx"
start_node 3 || exit 1
wait_all_up || exit 1
expect_exact "13. n3 still has the old value (--local)" 0 "old value" "" ctl 3 get default doomed --local
expect "13. a QUORUM get through n3 finds nothing" 1 "not found" ctl 3 get default doomed -c QUORUM
expect "13. an ALL get finds nothing" 1 "not found" ctl 2 get default doomed -c ALL
expect "13. ... and the tombstone has replaced n3's old value (--local)" 1 "not found" \
  ctl 3 get default doomed --local

# ---- 12. hinted handoff: 10,000 writes while n3 is down reach it when it is back ----------
# hints_for I PEER: the hints nI keeps for PEER (kvctl hints).
hints_for() { ctl "$1" hints | awk -v p="$2" '$1 == p { print $3 }'; }
kill_node 1 TERM
node_opts[1]=
start_node 1 || exit 1
wait_all_up || exit 1
json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])" "$@"; }
kill_node 3 KILL
wait_state 1 down n3 && wait_state 2 down n3 || fail "12. n3 is seen down" "after 10 s"
bin/kvbench -a "${addr[1]},${addr[2]}" --ops 10000 --keys 10000 --sequential --mix put=100 \
  -c QUORUM --concurrency 32 --json "$work/hh-put.json" >"$work/hh-put.out" 2>&1
errors=$(json_field "$work/hh-put.json" put errors)
check "12. 10,000 QUORUM puts through n1 and n2 with n3 down" "$errors errors" [ "$errors" = 0 ]
kept=$(( $(hints_for 1 n3) + $(hints_for 2 n3) ))
check "12. n1 and n2 keep one hint per key for n3 (kvctl hints)" "they keep $kept" [ "$kept" = 10000 ]
start_node 3 || exit 1
t0=$(date +%s%N)
drained=no
for _ in $(seq 300); do
  [ "$(hints_for 1 n3)" = 0 ] && [ "$(hints_for 2 n3)" = 0 ] && { drained=yes; break; }
  sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
check "12. the hints are handed to n3 and deleted within 30 s ($ms ms after its start)" \
  "n1 keeps $(hints_for 1 n3), n2 $(hints_for 2 n3)" [ $drained = yes ]
bin/kvbench -a "${addr[3]}" --ops 10000 --keys 10000 --sequential --mix get=100 --local \
  --json "$work/hh-get.json" >"$work/hh-get.out" 2>&1
missing=$(json_field "$work/hh-get.json" get not_found)
errors=$(json_field "$work/hh-get.json" get errors)
check "12. n3 holds every one of the 10,000 keys (gets --local on n3)" \
  "$missing missing, $errors errors" [ "$missing" = 0 ] && [ "$errors" = 0 ]
delivered=$(ctl 1 hints | awk '$1 == "n3" { print $5 }')
check "12. kvctl hints counts them delivered" "n1 says $delivered" [ "${delivered:-0}" -gt 0 ]

# ---- 14. tombstone reaping ------------------------------------------------------------------
# reaps I COUNT: COUNT (reaped, waiting or kept) from nI's tombstones line in kvctl status.
reaps() {
  ctl "$1" status | awk -v f="$2" '/^tombstones/ { for (i = 2; i <= NF; i++) if ($i ~ "^" f) { sub(",", "", $(i - 1)); print $(i - 1) } }'
}
# wait_reaps I COUNT N: waits up to 10 s for nI's COUNT to reach N.
wait_reaps() {
  for _ in $(seq 100); do [ "$(reaps "$1" "$2")" -ge "$3" ] && return 0; sleep 0.1; done
  return 1
}
reaped0=$(reaps 1 reaped)
kept0=$(reaps 1 kept)
ctl 1 put default reap1 v1 -c ALL >/dev/null
ctx1=$(context 1 reap1 -c ALL)
ctl 1 delete default reap1 --context "$ctx1" -c ALL >/dev/null
waiting=$(reaps 1 waiting)
check "14. a delete every primary acknowledged waits out the grace period on n1" \
  "$(ctl 1 status | grep '^tombstones')" [ "$waiting" -ge 1 ]
t0=$(date +%s%N)
wait_reaps 1 reaped $((reaped0 + 1))
ms=$((($(date +%s%N) - t0) / 1000000))
check "14. ... then every primary's record of it is reaped ($ms ms later; grace 2000 ms)" \
  "$(ctl 1 status | grep '^tombstones')" [ "$(reaps 1 reaped)" -gt "$reaped0" ]
ctl 1 put default reap1 v2 -c ALL >/dev/null
ctl 1 put default reap1 v3 --context "$ctx1" -c ALL >/dev/null
expect_exact "14. a context read before the delete does not cover a value written after the reap (both kept)" \
  0 "v2 v3 " "" get_sorted 1 reap1 -c ALL
ctl 1 put default reap2 w -c ALL >/dev/null
ctl 1 delete default reap2 --context "$(context 1 reap2 -c ALL)" -c ALL >/dev/null
kill_node 3 KILL
wait_reaps 1 kept $((kept0 + 1))
check "14. with n3 down when the grace period ends, the tombstone is kept (not reaped)" \
  "$(ctl 1 status | grep '^tombstones')" [ "$(reaps 1 kept)" -gt "$kept0" ]
start_node 3 || exit 1
wait_all_up || exit 1
expect "14. ... and n3 holds it when it is back (--local: not found, no old value)" 1 \
  "not found" ctl 3 get default reap2 --local
reaped_all() { local t=0; for i in 1 2 3; do t=$((t + $(reaps "$i" reaped))); done; echo "$t"; }
before=$(reaped_all)
bin/kvbench -a "${addr[1]},${addr[2]},${addr[3]}" --ops 2000 --keys 50 --mix put=50,delete=50 \
  -c ALL --concurrency 8 --json "$work/reap.json" >"$work/reap.out" 2>&1
errors=$(( $(json_field "$work/reap.json" put errors) + $(json_field "$work/reap.json" delete errors) ))
deletes=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['delete']; print(round(d['ops_per_sec']))" "$work/reap.json")
check "14. kvbench puts and deletes 50 keys through all three nodes (deletes carry contexts)" \
  "$errors errors" [ "$errors" = 0 ] && [ "$deletes" -gt 0 ]
for _ in $(seq 100); do [ "$(reaped_all)" -gt "$before" ] && break; sleep 0.1; done # grace 2 s
after=$(reaped_all)
check "14. ... and the nodes reap the tombstones those deletes left ($((after - before)) keys)" \
  "reaped $before before, $after after" [ "$after" -gt "$before" ]

# ---- 10. clean shutdown ------------------------------------------------------------------
for i in 1 2 3; do
  log=${last_log[$i]}
  kill_node "$i" TERM
  if [ "$node_rc" = 0 ] && grep -q "stopped cleanly" "$log"; then ok "10. SIGTERM stops n$i cleanly (exit 0)"
  else fail "10. SIGTERM stops n$i cleanly (exit 0)" "exit $node_rc; log: $(tail -3 "$log")"; fi
done

summary "($((($(date +%s%N) - t_start) / 1000000)) ms)"
