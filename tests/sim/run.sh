#!/bin/bash
# run.sh: the simulator's suite for `make test` / `make sim`.
#   usage: tests/sim/run.sh KVSIM SEEDS      (SEEDS: A-B)
# 1. Replay: one seed run twice gives the same trace hash; another seed gives another.
# 2. Usage errors exit 2 with a sentence.
# 3. The campaign: every seed in SEEDS passes every checker (failing seeds are printed with
#    their sentence; `kvsim --seed S` replays one).
# Ends "N passed, N failed" (the replay and usage checks, plus one per seed).
set -u
kvsim=$1 seeds=$2
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

a=$("$kvsim" --seed 7 --steps 300 | tail -1)
b=$("$kvsim" --seed 7 --steps 300 | tail -1)
c=$("$kvsim" --seed 8 --steps 300 | tail -1)
case $a in
  trace\ ????????????????) ok ;;
  *) fail "the last line of a run is its trace: '$a'" ;;
esac
[ "$a" = "$b" ] && ok || fail "seed 7 twice gave two traces: $a, $b"
[ "$a" != "$c" ] && ok || fail "seeds 7 and 8 gave the same trace: $a"

usage() { # expected-stderr-fragment args...
  local want=$1; shift
  local err rc
  err=$("$kvsim" "$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" = 2 ] && grep -qF -- "$want" <<< "$err"; then ok
  else fail "kvsim $*: exit $rc, '$err'"; fi
}
usage "give --seed or --seeds"
usage "--seeds takes A-B with A <= B" --seeds 9-3
usage "--nodes takes 3 to 7" --seed 1 --nodes 9
usage "unknown option" --seed 1 --speed 3

out=$("$kvsim" --seeds "$seeds")
rc=$?
grep ': FAIL ' <<< "$out"
summary=$(tail -1 <<< "$out")
if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
  [ "$rc" = 0 ] || [ "${BASH_REMATCH[2]}" != 0 ] || fail "kvsim exited $rc with no failed seed"
else
  fail "kvsim --seeds $seeds ended with '$summary' (exit $rc)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
