#!/usr/bin/env bash
# reports.sh: kvbench's reports on a real 3-node cluster (127.0.0.1 only): the terminal table,
# JSON and the self-contained HTML file, rendered in headless Chromium to check its charts are
# there; the progress line (drawn only when asked for, so test output stays clean); usage and
# file errors with their sentences. Starts its nodes on ports of its own and stops every
# process it started, by pid. Prints one line per test and ends with "N passed, N failed";
# exits 1 on failure.
. "$(dirname "$0")/lib.sh"
BENCH=bin/kvbench
base=$((30000 + ($$ % 300) * 10))   # this run's ports: base+1 .. base+3
declare -a addr
for i in 1 2 3; do addr[$i]=127.0.0.1:$((base + i)); done
{
  echo "cluster: { name: reports, partitions: 64 }"
  echo "nodes:"
  for i in 1 2 3; do echo "  - { id: n$i, address: \"${addr[$i]}\", rack: r$i }"; done
  echo "keyspaces:"
  echo "  - { name: default, replication: { local: 3 }, read: QUORUM, write: QUORUM }"
} >"$work/cluster.yaml"

for i in 1 2 3; do
  "$KVNODE" --config "$work/cluster.yaml" --node "n$i" --data-dir "$work/n$i" \
    --allow-fault-injection >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do grep -q "serving on" "$work/n$i.log" && break; sleep 0.1; done
done

# chromium_dom FILE: the DOM Chromium builds from FILE (headless, its own profile in $work).
chromium_dom() {
  chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/chromium" \
    --dump-dom "file://$1" 2>/dev/null
}
# count PATTERN FILE: how many times PATTERN occurs in FILE.
count() { grep -o "$1" "$2" | wc -l; }

# ---- load mode: table, JSON, HTML -------------------------------------------------------
html=$work/load.html json=$work/load.json
"$BENCH" -a "${addr[1]},${addr[2]}" --ops 400 --concurrency 8 -c ONE,QUORUM \
  --html "$html" --json "$json" >"$work/load.out" 2>"$work/load.err"
rc=$?
check "load: exits 0" "exit $rc: $(cat "$work/load.err")" [ "$rc" = 0 ]
check "load: a table row per level and operation" "$(cat "$work/load.out")" \
  grep -q '^QUORUM  *get ' "$work/load.out"
check "load: stderr stays clean when it is not a terminal" "$(cat -v "$work/load.err")" \
  [ ! -s "$work/load.err" ]
check "load: JSON has both levels" "$(cat "$json")" \
  grep -q '"levels": \[{"level": "ONE", "put": {' "$json"
check "load: the HTML loads nothing from outside" "$(grep -oE 'src=|href=|url\(|@import|<script|<link' "$html" | head -3)" \
  bash -c "! grep -qE 'src=|href=|url\(|@import|<script|<link' '$html'"
chromium_dom "$html" >"$work/load.dom"
check "load: Chromium renders three charts" "$(count '<svg' "$work/load.dom") svg elements" \
  [ "$(count '<svg' "$work/load.dom")" = 3 ]
check "load: a latency CDF line per level and operation" \
  "$(count '<path' "$work/load.dom") path elements" [ "$(count '<path' "$work/load.dom")" = 4 ]
check "load: the lines are labelled" "legend missing" grep -q '>get QUORUM</text>' "$work/load.dom"
check "load: empty slots say which mode fills them" "note missing" \
  grep -q 'filled by kvbench staleness' "$work/load.dom"
chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/chromium" \
  --window-size=820,1600 --screenshot="$work/load.png" "file://$html" >/dev/null 2>&1
check "load: Chromium draws it" "no screenshot" [ "$(stat -c %s "$work/load.png" 2>/dev/null || echo 0)" -gt 20000 ]

# ---- progress -----------------------------------------------------------------------------
"$BENCH" -a "${addr[1]}" --duration 0.6 --concurrency 4 --progress >/dev/null 2>"$work/progress.err"
check "progress: --progress draws the line on stderr and erases it" "$(cat -v "$work/progress.err")" \
  grep -q $'^\rkvbench: (keyspace default): .* done, 0 errors' "$work/progress.err"

# ---- errors ---------------------------------------------------------------------------------
expect_exact "load: an empty level name" 2 \
  "kvbench: -c needs LEVEL[,LEVEL..] with no empty name, not 'ONE,,ALL'; see kvbench -h" "" \
  "$BENCH" -a "${addr[1]}" --ops 1 -c ONE,,ALL
expect_exact "load: --html into a missing directory" 1 \
  "kvbench: cannot write $work/none/r.html: No such file or directory" "" \
  bash -c "'$BENCH' -a '${addr[1]}' --ops 1 --html '$work/none/r.html' >/dev/null"
expect_exact "load: --html needs a value" 2 "kvbench: option '--html' needs a value; see kvbench -h" "" \
  "$BENCH" -a "${addr[1]}" --ops 1 --html

summary
