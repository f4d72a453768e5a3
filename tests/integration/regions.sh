#!/usr/bin/env bash
# regions.sh: the six nodes of config/multiregion.yaml (east n1..n3, west n4..n6, replication
# {east: 3, west: 3}) on ports of their own, with their metrics. A write is sent once to the
# other region, whose forwarder relays it there (coordinator/coord.h): counted by the coordinator's
# tunekv_remote_region_writes_total and the forwarders' tunekv_relayed_writes_total. Then the
# regions are partitioned both ways with fault injection: EACH_QUORUM through an east node is
# refused (UNAVAILABLE) or times out (DEADLINE_EXCEEDED), never acknowledged, and the west
# replicas do not have it; LOCAL_QUORUM puts and gets work on both sides. Healed, EACH_QUORUM
# works again and the writes of the partition reach the other region. kvctl ring shows three
# primaries per region on three racks, and west down from east. Stops every process it
# started, by pid. Prints one line per test and "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
base=$((33000 + ($$ % 300) * 10))   # nodes on base+1 .. base+6, their metrics on base+1001 ..
shift_ports=$((base - 7000))
python3 - config/multiregion.yaml "$shift_ports" >"$work/cluster.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print(re.sub(r'127\.0\.0\.1:(\d+)', lambda m: '127.0.0.1:%d' % (int(m.group(1)) + int(sys.argv[2])), text), end='')
PY
declare -a addr maddr pid
for i in 1 2 3 4 5 6; do addr[$i]=127.0.0.1:$((base + i)) maddr[$i]=127.0.0.1:$((base + 1000 + i)); done
grep -q "\"${addr[6]}\", region: west" "$work/cluster.yaml" || { echo "regions.sh: unexpected config"; exit 1; }
east="n1,n2,n3" west="n4,n5,n6"

ctl() { local i=$1; shift; "$KVCTL" -a "${addr[$i]}" "$@"; }
# metric I NAME: node I's sample of NAME (a counter without labels).
metric() { curl -s "http://${maddr[$1]}/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
relayed_west() { echo $(($(metric 4 tunekv_relayed_writes_total) + $(metric 5 tunekv_relayed_writes_total) + $(metric 6 tunekv_relayed_writes_total))); }
# has I KEY VALUE: node I's own replica (--local) holds KEY with VALUE.
has() { [ "$(ctl "$1" get default "$2" --local 2>/dev/null)" = "$3" ]; }
# eventually CMD...: polls CMD (up to 15 s).
eventually() {
  for _ in $(seq 150); do "$@" && return 0; sleep 0.1; done
  return 1
}
all_have() { local key=$1 value=$2 i; shift 2; for i in "$@"; do has "$i" "$key" "$value" || return 1; done; }

for i in 1 2 3 4 5 6; do
  "$KVNODE" --config "$work/cluster.yaml" --node "n$i" --data-dir "$work/n$i" \
    --metrics-addr "${maddr[$i]}" --allow-fault-injection >"$work/n$i.log" 2>&1 &
  pid[$i]=$!
  pids+=($!)
done
for i in 1 2 3 4 5 6; do
  for _ in $(seq 100); do grep -q "serving on" "$work/n$i.log" && break; sleep 0.1; done
  grep -q "serving on" "$work/n$i.log" || { echo "n$i did not start:"; cat "$work/n$i.log"; exit 1; }
done
for i in 1 4; do wait_state "$i" up n1 n2 n3 n4 n5 n6; done

# ---- 0. kvctl ring: three primaries per region on three racks ---------------------------------
rows=$(ctl 1 ring | awk '$1 ~ /^[0-9]+$/ && NF == 6 && $6 == "-" {
  s = " " $3 " " $4 " " $5 " "
  if ($2 == "east" && index(s, " n1/r1 ") && index(s, " n2/r2 ") && index(s, " n3/r3 ")) e++
  if ($2 == "west" && index(s, " n4/r1 ") && index(s, " n5/r2 ") && index(s, " n6/r3 ")) w++ }
  END { print e + 0, w + 0 }')
expect_exact "0. ring: each of 256 partitions has n1..n3 on racks r1..r3 in east and n4..n6 in west, no fallback" \
  0 "256 256" "" echo "$rows"
order=$(ctl 4 ring default fw1 --json | python3 -c '
import json, sys
p = json.load(sys.stdin)["primaries"]
east, west = p[:3], p[3:]
good = all(x["region"] == "east" for x in east) and all(x["region"] == "west" for x in west)
good = good and all(sorted(x["rack"] for x in g) == ["r1", "r2", "r3"] for g in (east, west))
print("ok" if good else " ".join(x["node"] + ":" + x["region"] + ":" + x["rack"] for x in p))')
expect_exact "0. ring default fw1 on n4: east's three primaries first (the keyspace's region order), each region on three racks" \
  0 ok "" echo "$order"

# ---- 1. a write goes once to the other region, and is relayed there ------------------------
errors=0
for k in $(seq 1 10); do ctl 1 put default "fw$k" "v$k" -c EACH_QUORUM >/dev/null 2>&1 || errors=$((errors + 1)); done
expect_exact "1. 10 EACH_QUORUM puts through n1 (east)" 0 0 "" echo "$errors"
expect_exact "1. n1 sent one write to west per put" 0 10 "" metric 1 tunekv_remote_region_writes_total
expect_exact "1. west's forwarders relayed each of them once" 0 10 "" relayed_west
check "1. every west replica has them" "$(for i in 4 5 6; do ctl $i get default fw10 --local 2>&1; done)" \
  eventually all_have fw10 v10 4 5 6
expect_exact "1. the east replicas relayed nothing" 0 0 "" metric 2 tunekv_relayed_writes_total
# applied_six KEY: n1 knows when each of the six replicas applied KEY (west's through its
# forwarder's outcomes), each at or after n1's own.
applied_six() {
  ctl 1 applied default "$1" >"$work/applied.out" 2>&1 &&
    [ "$(grep -cE '^n[1-6] [0-9]{13} [-+][0-9]+ ms$' "$work/applied.out")" = 6 ]
}
check "1. n1 knows each replica's applied time, west's through the forwarder" \
  "$(cat "$work/applied.out" 2>/dev/null)" eventually applied_six fw10

# ---- 2. west partitioned from east, both ways ---------------------------------------------------
for i in 1 2 3; do ctl "$i" fault set "$west" --partition >/dev/null; done
for i in 4 5 6; do ctl "$i" fault set "$east" --partition >/dev/null; done
# At once, before the failure detector has noticed: the forwarder never answers.
out=$(ctl 1 --timeout 500 put default eq1 partitioned -c EACH_QUORUM 2>&1); rc=$?
check "2. EACH_QUORUM through n1 right after the cut is not acknowledged (exit 3)" "exit $rc: $out" [ "$rc" = 3 ]
check "2. ... it is refused or times out: ${out%%:*}" "$out" \
  grep -qE '^(DEADLINE_EXCEEDED|UNAVAILABLE): ' <<< "$out"
check "2. n1 sees west down" "$(ctl 1 status 2>&1 | head -8)" wait_state 1 down n4 n5 n6
check "2. n4 sees east down" "$(ctl 4 status 2>&1 | head -8)" wait_state 4 down n1 n2 n3
expect_exact "2. ring default eq2 on n1: the west primaries are down" 0 "n4 n5 n6" "" \
  sorted_words $(ring_of 1 default eq2 down)
expect_exact "2. ... west has no spare node to stand in, so a request uses east's three only" 0 \
  "n1 n2 n3" "" sorted_words $(ring_of 1 default eq2 uses)
expect_exact "2. EACH_QUORUM through n1 once west is seen down is UNAVAILABLE" 3 \
  "UNAVAILABLE: EACH_QUORUM needs 4 of 6 replicas; 3 are alive" "" \
  ctl 1 put default eq2 partitioned -c EACH_QUORUM
for k in eq1 eq2; do
  for i in 4 5 6; do
    expect_exact "2. west replica n$i does not have $k (not falsely acknowledged)" 1 "kvctl: not found" "" \
      ctl "$i" get default "$k" --local
  done
done
expect_exact "2. an EACH_QUORUM read through n1 is refused as well" 3 \
  "UNAVAILABLE: EACH_QUORUM needs 4 of 6 replicas; 3 are alive" "" \
  ctl 1 get default fw1 -c EACH_QUORUM

# ---- 3. LOCAL_QUORUM keeps working on both sides -------------------------------------------------
expect "3. LOCAL_QUORUM put through n1 (east)" 0 "" ctl 1 put default east-k from-east -c LOCAL_QUORUM
expect_exact "3. LOCAL_QUORUM get through n2 (east) sees it" 0 from-east "" ctl 2 get default east-k -c LOCAL_QUORUM
expect "3. LOCAL_QUORUM put through n4 (west)" 0 "" ctl 4 put default west-k from-west -c LOCAL_QUORUM
expect_exact "3. LOCAL_QUORUM get through n5 (west) sees it" 0 from-west "" ctl 5 get default west-k -c LOCAL_QUORUM
expect_exact "3. ... while east has none of it" 1 "kvctl: not found" "" ctl 1 get default west-k -c LOCAL_QUORUM

# ---- 4. healed -----------------------------------------------------------------------------------
for i in 1 2 3 4 5 6; do ctl "$i" fault clear >/dev/null; done
check "4. n1 sees west up again" "$(ctl 1 status 2>&1 | head -8)" wait_state 1 up n4 n5 n6
check "4. n4 sees east up again" "$(ctl 4 status 2>&1 | head -8)" wait_state 4 up n1 n2 n3
expect_exact "4. ring default eq2 on n1 sees every primary up again" 0 "" "" ring_of 1 default eq2 down
remote=$(metric 4 tunekv_remote_region_writes_total) relayed=$(relayed_west)
expect "4. EACH_QUORUM put through n1 works again" 0 "" ctl 1 put default after healed -c EACH_QUORUM
expect_exact "4. EACH_QUORUM get through n4 (west) sees it" 0 healed "" ctl 4 get default after -c EACH_QUORUM
expect "4. EACH_QUORUM put through n4 (west) works" 0 "" ctl 4 put default after-w healed-w -c EACH_QUORUM
expect_exact "4. ... n4 sent east one write for it" 0 $((remote + 1)) "" metric 4 tunekv_remote_region_writes_total
expect_exact "4. ... and west relayed n1's one, not n4's" 0 "$((relayed + 1))" "" relayed_west
check "4. the partition's east write reaches every west replica" \
  "$(for i in 4 5 6; do ctl $i get default east-k --local 2>&1; done)" eventually all_have east-k from-east 4 5 6
check "4. the partition's west write reaches every east replica" \
  "$(for i in 1 2 3; do ctl $i get default west-k --local 2>&1; done)" eventually all_have west-k from-west 1 2 3
expect_exact "4. EACH_QUORUM get of the west write through n1" 0 from-west "" ctl 1 get default west-k -c EACH_QUORUM

# ---- 5. stop cleanly ---------------------------------------------------------------------------------
for i in 1 2 3 4 5 6; do
  kill -TERM "${pid[$i]}"
  wait "${pid[$i]}"; rc=$?
  check "5. SIGTERM stops n$i cleanly" "exit $rc; $(tail -2 "$work/n$i.log")" [ "$rc" = 0 ]
done

summary
