# lib.sh: the harness the integration suites share (sourced, not run). After sourcing:
#   KVNODE KVCTL RAW     the programs under test, run from the repository's root
#   work                 a temporary directory, removed at exit
#   pids                 append every process you start; at exit each is continued (in case
#                        a test stopped it) and killed, so a failing suite leaves nothing behind
#   ok NAME / fail NAME WHY / expect NAME RC TEXT CMD...   one line per test
#   expect_exact NAME RC TEXT MAX_MS CMD... / check NAME WHY CMD...
#   peer_state / wait_state   liveness as `kvctl status` reports it (the suite sets addr[I])
#   ring_of / sorted_words    a key's place as `kvctl ring KEYSPACE KEY --json` reports it
#   summary [EXTRA]      prints "N passed, N failed" and fails when any test failed
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
KVNODE=bin/kvnode KVCTL=bin/kvctl RAW=build/tools/raw_rpc
work=$(mktemp -d /tmp/tunekv-it.XXXXXX)
pids=()
passed=0 failed=0

cleanup() {
  for p in "${pids[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }

# expect NAME RC TEXT CMD...: CMD exits with RC and its output (stdout+stderr) contains TEXT.
expect() {
  local name=$1 want_rc=$2 want=$3 out rc
  shift 3
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want_rc" ]; then fail "$name" "exit $rc, wanted $want_rc; output: ${out:0:300}"
  elif [[ "$out" != *"$want"* ]]; then fail "$name" "output lacks '$want': ${out:0:300}"
  else ok "$name"; fi
}

# expect_exact NAME RC TEXT MAX_MS CMD...: CMD exits with RC, its whole output (stdout+stderr)
# is TEXT, and, unless MAX_MS is empty, it took less than MAX_MS milliseconds, kvctl's own
# process start included. The time taken is printed with the result either way.
expect_exact() {
  local name=$1 want_rc=$2 want=$3 max=$4 out rc t0 ms
  shift 4
  t0=$(date +%s%N)
  out=$("$@" 2>&1); rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  if [ "$rc" != "$want_rc" ]; then
    fail "$name ($ms ms)" "exit $rc, wanted $want_rc; output: ${out:0:300}"
  elif [ "$out" != "$want" ]; then fail "$name ($ms ms)" "output is '${out:0:300}', wanted '$want'"
  elif [ -n "$max" ] && [ "$ms" -ge "$max" ]; then
    fail "$name ($ms ms)" "took $ms ms, limit $max ms"
  else ok "$name ($ms ms)"; fi
}

# check NAME WHY CMD...: CMD (a test) succeeds; WHY says what was seen when it does not.
check() {
  local name=$1 why=$2
  shift 2
  if "$@"; then ok "$name"; else fail "$name" "$why"; fi
}

# Liveness as the nodes see it, for suites that set addr[I] to node nI's HOST:PORT.
# peer_state I PEER: "up" or "down" as `kvctl status` on nI reports PEER.
peer_state() { "$KVCTL" -a "${addr[$1]}" status 2>/dev/null | awk -v p="$2" '/^replication lag/ { exit } $1 == p { print $3 }'; }
# wait_state I STATE PEER...: polls until nI reports every PEER in STATE; gives up after 10 s
# (a bound for a loaded machine: phi takes about 660 ms to judge a silent peer down).
wait_state() {
  local i=$1 want=$2 p all
  shift 2
  for _ in $(seq 200); do
    all=1
    for p in "$@"; do [ "$(peer_state "$i" "$p")" = "$want" ] || all=0; done
    [ $all = 1 ] && return 0
    sleep 0.05
  done
  return 1
}

# ring_of I KEYSPACE KEY WHAT: node ids from `kvctl ring KEYSPACE KEY --json` on nI, one line,
# space-separated. WHAT: primaries (in order), down (the primaries nI believes down), stand_ins
# (each "PRIMARY>FALLBACK"), fallbacks, or uses (what a request would use now).
ring_of() {
  "$KVCTL" -a "${addr[$1]}" ring "$2" "$3" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = d["primaries"]
print(" ".join({"primaries": [x["node"] for x in p],
                "down": [x["node"] for x in p if not x["up"]],
                "stand_ins": [x["node"] + ">" + x["stand_in"] for x in p if x["stand_in"]],
                "fallbacks": [x["node"] for x in d["fallbacks"]],
                "uses": d["uses"]}[sys.argv[1]]))' "$4"
}
# sorted_words WORD...: the words sorted, on one line, space-separated.
sorted_words() { printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }

summary() {
  echo "$passed passed, $failed failed${1:+ $1}"
  [ "$failed" = 0 ]
}
