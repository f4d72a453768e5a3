#!/bin/bash
# layering.sh: the sans-IO rule of DESIGN section 3, read off the sources (`make layering`,
# run by `make test`).
#   usage: tests/layering.sh [ROOT]   (ROOT: the tree whose common/ and coordinator/ are read;
#                                      default the repository)
#
# The core (coordinator/) is driven by its events and nothing else, so kvnode/ can run it on
# real sockets and disks and tests/sim can run it from a seed. Under it, common/ is shared by
# the core, kvnode/ and the client library. The rules, checked on every .c and .h:
#   1. coordinator/ includes no <pthread.h> or <threads.h>, no <time.h> or <sys/time.h>;
#   2. coordinator/ calls no clock_gettime, gettimeofday, time, timespec_get, clock, rand,
#      random, rand_r, srand or srandom (a member call such as s->time(...) is not one);
#   3. neither includes a gRPC or RocksDB header, nor a file of kvnode/ or client/ (by path,
#      or by a name only those directories hold).
# Comments and string literals are not code: a rule broken only inside one is not broken.
# Only direct includes are read; what an allowed header of common/ includes in turn is not.
#
# Each violation prints as "FILE:LINE includes <h>: <why>" or "FILE:LINE calls f(): <why>".
# After the tree, the rules are tried on themselves in scratch copies of it: each planted
# violation (one or more per rule) must be reported at its line, so the check cannot pass by
# seeing nothing, and each planted line that breaks no rule (in common/, in a comment, a
# member's call) must add no report. Ends "N passed, N failed" (one per file read, one per
# planted line); exits 1 on any failure.
set -u
root=$(cd "${1:-$(dirname "$0")/..}" && pwd) || exit 2

# outside DIR SUB: the names in DIR/SUB that resolve only there. -Icommon -Icoordinator come
# first on the include path, so a name those directories also hold is theirs.
outside() {
  local f n
  for f in "$1/$2"/*; do
    [ -e "$f" ] || continue
    n=${f##*/}
    [ -e "$1/common/$n" ] || [ -e "$1/coordinator/$n" ] || printf '%s ' "$n"
  done
}

# The rules, as an awk program over the files of common/ and coordinator/ (named relative to
# the tree). It prints each violation, then a last line "files N bad M" (files read, files
# with a violation).
read -r -d '' rules <<'AWK'
BEGIN {
  n = split(kvnode, names, " ")
  for (i = 1; i <= n; i++) in_kvnode[names[i]] = 1
  n = split(client, names, " ")
  for (i = 1; i <= n; i++) in_client[names[i]] = 1
  clocks = "clock_gettime|gettimeofday|timespec_get|clock|time"
  rands = "rand_r|srandom|srand|random|rand"
  call_re = "(^|[^A-Za-z0-9_.])(" clocks "|" rands ")[ \t]*\\("
  files = 0; bad = 0
}
FNR == 1 {
  files++
  in_comment = 0
  core = FILENAME ~ /^coordinator\//
}
function report(what, why) {
  printf "%s:%d %s: %s\n", FILENAME, FNR, what, why
  if (!(FILENAME in flagged)) { flagged[FILENAME] = 1; bad++ }
}
# Splits the line into text (comments removed) and code (comments removed, the insides of
# string and character literals blanked); a block comment may run on over lines.
function strip(line,    i, c, d, q) {
  text = ""; code = ""; q = ""
  for (i = 1; i <= length(line); i++) {
    c = substr(line, i, 1); d = substr(line, i, 2)
    if (in_comment) {
      if (d == "*/") { in_comment = 0; i++ }
      continue
    }
    if (q != "") {
      text = text c
      if (c == "\\") { text = text substr(line, i + 1, 1); i++; code = code "  "; continue }
      if (c == q) { q = ""; code = code c } else code = code " "
      continue
    }
    if (d == "/*") { in_comment = 1; i++; text = text " "; code = code " "; continue }
    if (d == "//") break
    if (c == "\"" || c == "'") q = c
    text = text c; code = code c
  }
}
{
  strip($0)
  if (match(text, /^[ \t]*#[ \t]*include[ \t]*[<"][^>"]+[>"]/)) {
    inc = substr(text, RSTART, RLENGTH)
    sub(/^[ \t]*#[ \t]*include[ \t]*/, "", inc)
    name = substr(inc, 2, length(inc) - 2)
    base = name; sub(/.*\//, "", base)
    what = "includes " inc
    if (core && (name == "pthread.h" || name == "threads.h"))
      report(what, "the core takes no locks and starts no threads; kvnode/driver.c " \
                   "serializes it under the driver's one lock")
    else if (core && (name == "time.h" || name == "sys/time.h"))
      report(what, "the core reads no clock; the time comes in with each event " \
                   "(mono_us, wall_ms), so the simulator can drive it")
    else if (name ~ /grpc/)
      report(what, "gRPC lives only in kvnode/*_rpc.c and the client library, which turn " \
                   "its messages into plain structs at that edge")
    else if (name ~ /rocksdb/)
      report(what, "storage reaches the core only through the table of " \
                   "coordinator/storage.h, which kvnode/store.c serves from RocksDB")
    else if (name ~ /(^|\/)kvnode\// || (name !~ /\// && base in in_kvnode))
      report(what, "kvnode/ is the core's driver: it uses common/ and coordinator/, " \
                   "never the reverse")
    else if (name ~ /(^|\/)client\// || (name !~ /\// && base in in_client))
      report(what, "client/ is the client library: it uses common/, never the reverse")
    next
  }
  if (!core) next
  gsub(/->/, ".", code)
  rest = code
  while (match(rest, call_re)) {
    call = substr(rest, RSTART, RLENGTH)
    sub(/^[^A-Za-z_]/, "", call); sub(/[ \t]*\($/, "", call)
    if (call ~ /rand/)
      report("calls " call "()", "the core draws no randomness of its own; what varies " \
                                 "comes in with its events, so one seed replays a run")
    else
      report("calls " call "()", "the core reads no clock; the time comes in with each " \
                                 "event (mono_us, wall_ms), so the simulator can drive it")
    rest = substr(rest, RSTART + RLENGTH)
  }
}
END { printf "files %d bad %d\n", files, bad }
AWK

# scan DIR: the rules over DIR's common/ and coordinator/.
scan() {
  (cd "$1" && awk -v kvnode="$(outside . kvnode)" -v client="$(outside . client)" "$rules" \
     common/*.[ch] coordinator/*.[ch])
}

passed=0 failed=0
out=$(scan "$root")
last=$(tail -1 <<< "$out")
grep -v '^files ' <<< "$out"
if [[ $last =~ ^files\ ([0-9]+)\ bad\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]; then
  passed=$((passed + BASH_REMATCH[1] - BASH_REMATCH[2])) failed=$((failed + BASH_REMATCH[2]))
else
  failed=$((failed + 1)); echo "FAIL: no sources read under $root ('$last')"
fi

# The rules on themselves: each planted line must be reported at the line it was put on
# (the last of its file), with the word given; the rest of the copy is as the tree is.
scratch=$(mktemp -d /tmp/tunekv-layering.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
planted() { # file line expected-report-fragment
  local tree="$scratch/t$((passed + failed))" file=$1 line=$2 want=$3 got n
  mkdir -p "$tree"
  cp -r "$root/common" "$root/coordinator" "$root/kvnode" "$root/client" "$tree/"
  printf '%s\n' "$line" >> "$tree/$file"
  n=$(wc -l < "$tree/$file")
  got=$(scan "$tree" | grep -F -- "$file:$n $want")
  if [ -n "$got" ]; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL: planting '$line' in $file was not reported"; fi
  rm -rf "$tree"
}
planted coordinator/coord.c '#include <pthread.h>' 'includes <pthread.h>:'
planted coordinator/ring.h '#  include <sys/time.h>' 'includes <sys/time.h>:'
planted coordinator/coord_read.c '#include <grpc/grpc.h>' 'includes <grpc/grpc.h>:'
planted common/dvv.c '#include <rocksdb/c.h>' 'includes <rocksdb/c.h>:'
planted coordinator/node.c '#include "store.h"' 'includes "store.h": kvnode/'
planted common/config.c '#include "../kvnode/driver.h"' 'includes "../kvnode/driver.h":'
planted coordinator/hints.c '#include "tunekv.h"' 'includes "tunekv.h": client/'
planted coordinator/reaper.c 'static uint64_t now(void) { return (uint64_t)time(NULL); }' \
  'calls time():'
planted coordinator/aae.c 'static int pick(void) { return rand() % 3; }' 'calls rand():'
# And what must not be reported: allowed in common/, in a comment, or a member's call.
clean() { # file line
  local tree="$scratch/c$((passed + failed))" before
  mkdir -p "$tree"
  cp -r "$root/common" "$root/coordinator" "$root/kvnode" "$root/client" "$tree/"
  before=$(scan "$tree" | wc -l)
  printf '%s\n' "$2" >> "$tree/$1"
  if [ "$(scan "$tree" | wc -l)" = "$before" ]; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL: '$2' in $1 was reported, and breaks no rule"; fi
  rm -rf "$tree"
}
clean common/log.c '#include <time.h>'
clean coordinator/coord.c '/* not time(NULL): #include <pthread.h> */'
clean coordinator/coord.c 'static void f(kv_clock_t *c) { c->time(c); (void)"rand()"; }'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
