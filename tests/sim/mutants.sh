#!/bin/bash
# mutants.sh: shows the simulator has teeth. Each patch in tests/sim/mutants/ plants one bug
# in the core; the simulator is rebuilt with it (in a scratch copy of the tree, reusing the
# objects of build/sim so only the patched file recompiles) and run over seeds 1-500 with
# --stop-at-first-fail, so a mutant costs only the seeds up to the first that catches it.
# Every mutant must be caught: "NAME: caught at seed S: <its FAIL sentence>".
#   usage: tests/sim/mutants.sh [BUILD]   (BUILD: the build directory holding sim/ and gen/)
#   MUTANTS="name ..." runs only those; MUTANT_SEEDS=A-B other seeds than 1-500; MUTANT_JOBS=N
#   how many build and run at once (default: one per core).
# Ends "N passed, N failed": a mutant passes when some seed catches it.
set -u
cd "$(dirname "$0")/../.."
build=${1:-build}
seeds=${MUTANT_SEEDS:-1-500}
scratch=$(mktemp -d /tmp/kvsim-mutants.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
jobs=${MUTANT_JOBS:-$(nproc)}

# try NAME PATCH: builds and runs one mutant in its own scratch tree; its one-line result goes
# to $scratch/NAME.result, starting "caught" when some seed caught it.
try() {
  local name=$1 patch=$2 tree="$scratch/$1" out first
  mkdir -p "$tree/build"
  cp -a Makefile common coordinator kvnode proto tests "$tree/"
  cp -a "$build/sim" "$build/gen" "$tree/build/"
  if ! patch -s -p1 -d "$tree" < "$patch"; then
    echo "mutant $name: the patch no longer applies" > "$scratch/$name.result"; return
  fi
  if ! make -s -C "$tree" build/kvsim > "$tree/make.log" 2>&1; then
    { echo "mutant $name: does not build"; tail -5 "$tree/make.log"; } > "$scratch/$name.result"
    return
  fi
  local rc caught summary
  out=$("$tree/build/kvsim" --seeds "$seeds" --stop-at-first-fail 2> /dev/null)
  rc=$?
  first=$(grep -m1 ': FAIL ' <<< "$out")
  caught=$(sed -n 's/^seed \([0-9]*\): FAIL \(.*\)$/caught at seed \1: \2/p' <<< "$first")
  summary=$(tail -1 <<< "$out")
  if [ "$(grep -c ': FAIL ' <<< "$out")" -gt 1 ]; then
    echo "mutant $name: kvsim --stop-at-first-fail went on past its first failing seed"
  elif [ -n "$caught" ] && [ "$rc" -ne 0 ]; then
    echo "caught mutant $name: $caught"
  elif [ -n "$caught" ]; then
    echo "mutant $name: kvsim printed a FAIL line but exited 0"
  elif [ "$rc" -eq 0 ]; then
    echo "mutant $name: NOT caught in seeds $seeds ($summary)"
  else
    echo "mutant $name: kvsim exited $rc with no FAIL line ('$summary')"
  fi > "$scratch/$name.result"
  rm -rf "$tree"
}

# The mutants run $jobs at a time (MUTANT_JOBS; default one per core), each in its own tree.
names=()
for patch in tests/sim/mutants/*.patch; do
  name=$(basename "$patch" .patch)
  [ -n "${MUTANTS:-}" ] && ! grep -qw -- "$name" <<< "$MUTANTS" && continue
  names+=("$name")
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  try "$name" "$patch" &
done
wait
passed=0 failed=0
for name in "${names[@]}"; do
  if grep -q '^caught ' "$scratch/$name.result"; then
    passed=$((passed + 1))
    sed 's/^caught mutant //' "$scratch/$name.result"
  else
    failed=$((failed + 1))
    cat "$scratch/$name.result"
  fi
done
echo "$passed passed, $failed failed"
