#!/usr/bin/env bash
# cluster5.sh: five nodes, N=3, so every node is a replica of only some keys. Writes sent to
# a node that is not a replica are forwarded to the first live replica; reads are coordinated
# wherever they arrive. With two of a key's three primaries stopped, sloppy quorum lets the
# other two nodes stand in for them as fallbacks that keep hints (DESIGN section 8), and hand
# them over when the primaries are back; keyspace "strict" turns that off. kvctl ring names
# the same primaries, and the same fallbacks standing in. Prints one line per test and
# "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
base=$((26000 + ($$ % 300) * 10))
declare -a addr pid
for i in 1 2 3 4 5; do addr[$i]=127.0.0.1:$((base + i)); pid[$i]=; done

{
  echo "cluster: { name: five, partitions: 64 }"
  echo "nodes:"
  for i in 1 2 3 4 5; do echo "  - { id: n$i, address: \"${addr[$i]}\", rack: r$i }"; done
  echo "keyspaces:"
  echo "  - { name: default, replication: { local: 3 }, read: QUORUM, write: QUORUM }"
  echo "  - { name: strict, replication: { local: 3 }, read: QUORUM, write: QUORUM, sloppy_quorum: false }"
} >"$work/five.yaml"

starts=0
# start_node I: starts nI on its data directory (kept across restarts) and waits for
# "serving on".
start_node() {
  local i=$1 log
  starts=$((starts + 1))
  log=$work/n$i.$starts.log
  "$KVNODE" --config "$work/five.yaml" --node "n$i" --data-dir "$work/n$i" >"$log" 2>&1 &
  pid[$i]=$!
  pids+=($!)
  for _ in $(seq 100); do grep -q "serving on" "$log" && return 0; sleep 0.1; done
  echo "kvnode n$i did not start:"; cat "$log"
  return 1
}
# stop_node I: SIGTERM, and waits for it to exit.
stop_node() { kill -TERM "${pid[$1]}"; wait "${pid[$1]}" 2>/dev/null; pid[$1]=; }
ctl() { local i=$1; shift; "$KVCTL" -a "${addr[$i]}" "$@"; }
# hints_for I PEER: pending hints nI keeps for PEER (`kvctl hints`).
hints_for() { ctl "$1" hints 2>/dev/null | awk -v p="$2" '$1 == p { print $3 }'; }

for i in 1 2 3 4 5; do start_node "$i"; done
# Nodes that started first saw the others refuse connections; wait until all see all up.
for i in 1 2 3 4 5; do
  for _ in $(seq 100); do
    ctl "$i" status 2>/dev/null | grep -q " down " || break
    sleep 0.1
  done
done

# 40 keys, each written at ALL through a node chosen round-robin: with N=3 of 5, some
# 2 in 5 of them reach a node that is not a replica and are forwarded.
errors=0
for k in $(seq 1 40); do
  ctl $((k % 5 + 1)) put default "key$k" "v$k" -c ALL >/dev/null 2>"$work/err" ||
    { errors=$((errors + 1)); cat "$work/err"; }
done
[ $errors = 0 ] && ok "40 puts at ALL through every node succeed" || fail "40 puts at ALL through every node succeed" "$errors failed"

wrong=0
for k in $(seq 1 40); do
  got=$(ctl $(((k + 2) % 5 + 1)) get default "key$k" -c QUORUM 2>&1)
  [ "$got" = "v$k" ] || wrong=$((wrong + 1))
done
[ $wrong = 0 ] && ok "each key reads back at QUORUM through another node" || fail "each key reads back at QUORUM through another node" "$wrong wrong"

# Placement: a forwarded write lands on the key's replicas only, so every key is held by
# exactly three nodes' own replicas, and every node holds some but not all keys.
misplaced=0
declare -A held holders
for k in $(seq 1 40); do
  copies=0
  for i in 1 2 3 4 5; do
    if [ "$(ctl "$i" get default "key$k" --local 2>/dev/null)" = "v$k" ]; then
      copies=$((copies + 1)); held[$i]=$((${held[$i]:-0} + 1)); holders[$k]+="$i "
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

# kvctl ring: each key's primaries are exactly the three nodes holding it, as every node says.
wrong=0 seen=
for k in $(seq 1 40); do
  want=$(sorted_words $(for i in ${holders[$k]}; do echo "n$i"; done))
  got=$(sorted_words $(ring_of $(((k + 1) % 5 + 1)) default "key$k" primaries))
  [ "$got" = "$want" ] || { wrong=$((wrong + 1)); seen="key$k: ring says '$got', get --local finds '$want'"; }
done
[ $wrong = 0 ] && ok "ring KEYSPACE KEY names as primaries exactly the nodes get --local finds each key on" ||
  fail "ring KEYSPACE KEY names as primaries exactly the nodes get --local finds each key on" "$wrong wrong, e.g. $seen"
whole=$(ctl 4 ring --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
good = d["partitions"] == 64 and [k["name"] for k in d["keyspaces"]] == ["default", "strict"]
for ks in d["keyspaces"]:
    good = good and len(ks["partitions"]) == 64 and ks["sloppy_quorum"] == (ks["name"] == "default")
    for p in ks["partitions"]:
        prim = [x["node"] for x in p["primaries"]]
        fb = [x["node"] for x in p["fallbacks"]]
        good = good and len(prim) == 3 and len(fb) == 2 and len(set(prim + fb)) == 5
        good = good and all(x["stand_in"] is None for x in p["primaries"]) and p["uses"] == prim
counts = [n["primary_partitions"]["default"] for n in d["nodes"]]
good = good and sum(counts) == 192 and min(counts) >= 1
print("ok" if good else "bad: %s" % counts)')
check "ring --json: 64 partitions per keyspace, 3 primaries and the 2 other nodes as fallbacks, 192 primary places" \
  "$whole" [ "$whole" = ok ]

# Siblings and contexts survive forwarding: two blind writes through two nodes, then one
# with the read context through a third.
ctl 1 put default sib a >/dev/null 2>&1
ctl 2 put default sib b >/dev/null 2>&1
got=$(ctl 3 get default sib -c ALL | sort | tr '\n' ' ')
[ "$got" = "a b " ] && ok "blind writes through two nodes give two siblings" || fail "blind writes through two nodes give two siblings" "got '$got'"
ctx=$(ctl 4 get default sib --json | python3 -c 'import sys,json; print(json.load(sys.stdin)["context"])')
ctl 5 put default sib c --context "$ctx" >/dev/null
got=$(ctl 1 get default sib -c ALL)
[ "$got" = c ] && ok "a write with the read context replaces both" || fail "a write with the read context replaces both" "got '$got'"

# Errors from the replica a write was forwarded to come back as they were.
out=$(ctl 1 put default "key1" v -w 4 2>&1); rc=$?
[ $rc = 3 ] && [ "$out" = "INVALID_ARGUMENT: w is 4 but keyspace 'default' has only N=3 replicas" ] &&
  ok "a bad request is refused with its sentence" || fail "a bad request is refused with its sentence" "rc $rc: $out"

# ---- sloppy quorum -----------------------------------------------------------------------

# Where each key of "strict" lives, as above.
declare -A sholders
for k in $(seq 1 40); do ctl $((k % 5 + 1)) put strict "skey$k" "s$k" -c ALL >/dev/null 2>&1; done
for k in $(seq 1 40); do
  for i in 1 2 3 4 5; do
    [ "$(ctl "$i" get strict "skey$k" --local 2>/dev/null)" = "s$k" ] && sholders[$k]+="$i "
  done
done
# Two nodes that are both primaries of some key of each keyspace: they are stopped.
has_both() { [[ " $1" == *" $2 "* && " $1" == *" $3 "* ]]; }
v1= v2= skey=
for k in $(seq 1 40); do
  read -r a b c <<<"${holders[$k]}"
  for pair in "$a $b" "$a $c" "$b $c"; do
    read -r x y <<<"$pair"
    for s in $(seq 1 40); do has_both "${sholders[$s]:-}" "$x" "$y" && { skey=skey$s; break; }; done
    [ -n "$skey" ] && { v1=$x v2=$y; break 2; }
  done
done
if [ -z "$v1" ]; then
  fail "two nodes hold keys of both keyspaces" "no pair found; holders: ${holders[*]}"
  summary
  exit 1
fi
keys=() survivor=()
for k in $(seq 1 40); do
  if has_both "${holders[$k]}" "$v1" "$v2"; then
    keys+=("$k")
    for i in ${holders[$k]}; do [ "$i" != "$v1" ] && [ "$i" != "$v2" ] && survivor[$k]=$i; done
  fi
done
up=()
for i in 1 2 3 4 5; do [ "$i" != "$v1" ] && [ "$i" != "$v2" ] && up+=("$i"); done
echo "     (stopping n$v1 and n$v2: two of the three primaries of ${#keys[@]} keys and of strict/$skey)"
stop_node "$v1"
stop_node "$v2"
seen=1
for i in "${up[@]}"; do wait_state "$i" down "n$v1" "n$v2" || seen=0; done
[ $seen = 1 ] && ok "the other three see both stopped nodes down" || fail "the other three see both stopped nodes down" "$(ctl "${up[0]}" status 2>&1)"

# kvctl ring on the survivor: both stopped primaries down, each stood in for by one of the two
# other nodes, so a request uses the survivor and both fallbacks; in strict, nobody stands in.
wrong=0 seen=
for k in "${keys[@]}"; do
  s=${survivor[$k]} others=()
  for i in "${up[@]}"; do [ "$i" != "$s" ] && others+=("n$i"); done
  down=$(sorted_words $(ring_of "$s" default "key$k" down))
  ins=$(ring_of "$s" default "key$k" stand_ins)
  standing=$(sorted_words $(sed 's/[^ ]*>//g' <<<"$ins"))
  uses=$(sorted_words $(ring_of "$s" default "key$k" uses))
  if [ "$down" != "$(sorted_words "n$v1" "n$v2")" ] || [ "$standing" != "$(sorted_words "${others[@]}")" ] ||
     [ "$uses" != "$(sorted_words "n$s" "${others[@]}")" ]; then
    wrong=$((wrong + 1)); seen="key$k: down '$down', stand-ins '$ins', uses '$uses'"
  fi
done
[ $wrong = 0 ] && ok "ring on the survivor: both stopped primaries down, the other two nodes stand in and are used" ||
  fail "ring on the survivor: both stopped primaries down, the other two nodes stand in and are used" "$wrong wrong, e.g. $seen"
k=${keys[0]}
check "ring (text) shows a stopped primary down and who stands in for it" "$(ctl "${survivor[$k]}" ring default "key$k")" \
  grep -qE "^n$v1 +local +r$v1 +down +n[0-9]\$" <(ctl "${survivor[$k]}" ring default "key$k")
check "ring (text) marks the stopped nodes down in the node table" "$(ctl "${up[0]}" ring | head -7)" \
  [ "$(ctl "${up[0]}" ring | awk -v a="n$v1" -v b="n$v2" '($1 == a || $1 == b) && $5 == "down"' | wc -l)" = 2 ]
s=${sholders[${skey#skey}]} live=
for i in $s; do [ "$i" != "$v1" ] && [ "$i" != "$v2" ] && live=n$i; done
expect_exact "strict (sloppy_quorum: false): ring names no stand-in for the stopped primaries" 0 "" "" \
  ring_of "${up[0]}" strict "$skey" stand_ins
expect_exact "... so a request uses only the live primary" 0 "$live" "" ring_of "${up[0]}" strict "$skey" uses

# QUORUM is 2: the surviving primary and a fallback standing in for a stopped one. Each put
# carries the context of a QUORUM read (answered the same way), so it replaces the old value.
errors=0
for k in "${keys[@]}"; do
  ctx=$(ctl "${survivor[$k]}" get default "key$k" --json 2>"$work/err" |
        python3 -c 'import sys,json; print(json.load(sys.stdin)["context"])' 2>>"$work/err") &&
    ctl "${survivor[$k]}" put default "key$k" "sloppy$k" -c QUORUM --context "$ctx" >/dev/null 2>>"$work/err" ||
    { errors=$((errors + 1)); cat "$work/err"; }
done
[ $errors = 0 ] && ok "QUORUM reads and puts with 2 of 3 primaries down succeed through fallbacks" ||
  fail "QUORUM reads and puts with 2 of 3 primaries down succeed through fallbacks" "$errors of ${#keys[@]} failed"

# Each write left one hint for each stopped primary, on the two nodes outside its preference
# list; the coordinators keep none (there would be more), since the fallbacks acknowledged.
want=$((2 * ${#keys[@]})) got=0
for i in "${up[@]}"; do
  for v in "$v1" "$v2"; do got=$((got + $(hints_for "$i" "n$v"))); done
done
[ "$got" = "$want" ] && ok "kvctl hints on the live nodes lists $want pending hints for the stopped ones" ||
  fail "kvctl hints on the live nodes lists $want pending hints for the stopped ones" "$got; $(for i in "${up[@]}"; do ctl "$i" hints; done)"

wrong=0 wrong_local=0 seen= seen_local=
for k in "${keys[@]}"; do
  for i in "${up[@]}"; do
    got=$(ctl "$i" get default "key$k" -c QUORUM 2>&1)
    [ "$got" = "sloppy$k" ] || { wrong=$((wrong + 1)); seen="n$i key$k: $got"; }
    # A fallback holds the key as a hint, which its local read shows.
    [ "$i" = "${survivor[$k]}" ] && continue
    got=$(ctl "$i" get default "key$k" --local 2>&1)
    [ "$got" = "sloppy$k" ] || { wrong_local=$((wrong_local + 1)); seen_local="n$i key$k: $got"; }
  done
done
[ $wrong = 0 ] && ok "QUORUM reads through every live node see the writes while the primaries are down" ||
  fail "QUORUM reads through every live node see the writes while the primaries are down" "$wrong wrong, e.g. $seen"
[ $wrong_local = 0 ] && ok "get --local on a fallback shows the hinted value" ||
  fail "get --local on a fallback shows the hinted value" "$wrong_local wrong, e.g. $seen_local"

# The fallbacks ring named are the nodes that kept the hints.
wrong=0 seen=
for k in "${keys[@]}"; do
  named=$(sorted_words $(ring_of "${survivor[$k]}" default "key$k" stand_ins | sed 's/[^ ]*>//g'))
  kept=()
  for i in "${up[@]}"; do
    [ "$i" != "${survivor[$k]}" ] && [ "$(ctl "$i" get default "key$k" --local 2>/dev/null)" = "sloppy$k" ] && kept+=("n$i")
  done
  [ "$named" = "$(sorted_words "${kept[@]}")" ] || { wrong=$((wrong + 1)); seen="key$k: ring '$named', hints on '${kept[*]}'"; }
done
[ $wrong = 0 ] && ok "the stand-ins ring names are the nodes that keep the key's hints" ||
  fail "the stand-ins ring names are the nodes that keep the key's hints" "$wrong wrong, e.g. $seen"

k=${keys[0]}
expect_exact "a put with --pw 2 counts no fallback: UNAVAILABLE" 3 \
  "UNAVAILABLE: QUORUM needs 2 of 3 primary replicas; 1 is alive" "" \
  ctl "${survivor[$k]}" put default "key$k" nope --pw 2
expect_exact "keyspace strict (sloppy_quorum: false) refuses the same put: UNAVAILABLE" 3 \
  "UNAVAILABLE: QUORUM needs 2 of 3 replicas; 1 is alive" "" \
  ctl "${up[0]}" put strict "$skey" nope -c QUORUM

# Back up: the fallbacks hand their hints over and delete them once acknowledged.
start_node "$v1"
start_node "$v2"
drained=0
for _ in $(seq 150); do
  pending=0
  for i in "${up[@]}"; do for v in "$v1" "$v2"; do pending=$((pending + $(hints_for "$i" "n$v"))); done; done
  [ "$pending" = 0 ] && { drained=1; break; }
  sleep 0.1
done
[ $drained = 1 ] && ok "the restarted primaries get their hints: none pending within 15 s" ||
  fail "the restarted primaries get their hints: none pending within 15 s" "$pending still pending"
missing=0 seen=
for k in "${keys[@]}"; do
  for v in "$v1" "$v2"; do
    got=$(ctl "$v" get default "key$k" --local 2>&1)
    [ "$got" = "sloppy$k" ] || { missing=$((missing + 1)); seen="n$v key$k: $got"; }
  done
done
[ $missing = 0 ] && ok "get --local on both restarted primaries returns every value written while they were down" ||
  fail "get --local on both restarted primaries returns every value written while they were down" "$missing missing, e.g. $seen"

for i in 1 2 3 4 5; do kill -TERM "${pid[$i]}"; done
clean=1
for i in 1 2 3 4 5; do wait "${pid[$i]}" || clean=0; done
pids=()
[ $clean = 1 ] && ok "SIGTERM stops all five cleanly" || fail "SIGTERM stops all five cleanly" "a node exited non-zero"

summary
