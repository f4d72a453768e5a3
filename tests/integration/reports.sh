#!/usr/bin/env bash
# reports.sh: kvbench's reports on a real 3-node cluster (127.0.0.1 only): the terminal table,
# JSON and the self-contained HTML file, rendered in headless Chromium to check its charts are
# there, for the load, staleness (PBS) and lag modes; the progress line (drawn only when asked
# for, so test output stays clean); usage and file errors with their sentences. Starts its
# nodes on ports of its own and stops every process it started, by pid. Prints one line per
# test and ends with "N passed, N failed"; exits 1 on failure.
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
  echo "  - { name: two, replication: { local: 2 }, read: ONE, write: ALL }"
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

# ---- staleness mode: measured vs predicted t-visibility ----------------------------------------
# n1's replica writes wait an exponential 5 ms on their way to n2 and n3.
"$KVCTL" -a "${addr[1]}" fault set n2,n3 --exp-delay-ms 5 >/dev/null
all="${addr[1]},${addr[2]},${addr[3]}"
html=$work/pbs.html json=$work/pbs.json
"$BENCH" staleness -a "${addr[1]},${addr[2]}" --replicas "$all" --trials 10 --calibration 20 \
  --times 0,5,50 --html "$html" --json "$json" >"$work/pbs.out" 2>"$work/pbs.err"
rc=$?
check "staleness: exits 0" "exit $rc: $(cat "$work/pbs.err")" [ "$rc" = 0 ]
check "staleness: measured and predicted side by side, with the RMSE" "$(cat "$work/pbs.out")" \
  grep -q "^RMSE [0-9.]* percentage points" "$work/pbs.out"
check "staleness: a row per t" "$(cat "$work/pbs.out")" \
  grep -qE '^ +50 +[01]\.[0-9]{4} +[01]\.[0-9]{4} ' "$work/pbs.out"
check "staleness: k-staleness for N=3 R=W=1 is 1/3 at k=1" "$(cat "$work/pbs.out")" \
  grep -q "k=1 0.3333 k=2 0.5556" "$work/pbs.out"
check "staleness: JSON has the points" "$(cat "$json")" grep -q '"points": \[{"t_ms": 0, ' "$json"
chromium_dom "$html" >"$work/pbs.dom"
check "staleness: Chromium renders three charts" "$(count '<svg' "$work/pbs.dom") svg elements" \
  [ "$(count '<svg' "$work/pbs.dom")" = 3 ]
# put and get latency (2), visibility lag of each replica (3), measured and predicted (2).
check "staleness: every chart slot is filled" "$(count '<path' "$work/pbs.dom") path elements" \
  [ "$(count '<path' "$work/pbs.dom")" = 7 ]
check "staleness: the prediction is labelled" "legend missing" \
  grep -q '>predicted (WARS)</text>' "$work/pbs.dom"
# R + W > N: every read sees the write, and the model says so too.
"$BENCH" staleness -a "${addr[1]},${addr[2]}" --replicas "$all" -w 2 -r 2 --trials 5 \
  --calibration 10 --times 0,1 >"$work/strict.out" 2>&1
check "staleness: R+W>N is always consistent, measured and predicted" "$(cat "$work/strict.out")" \
  grep -q "^RMSE 0.00 percentage points" "$work/strict.out"
check "staleness: ... every t at 1" "$(cat "$work/strict.out")" \
  grep -qE '^ +1 +1\.0000 +1\.0000 ' "$work/strict.out"
"$KVCTL" -a "${addr[1]}" fault clear >/dev/null
expect_exact "staleness: the reader must be a replica" 2 \
  "kvbench: staleness: the writer and the reader must be among --replicas (a tunekv write is coordinated by a replica); see kvbench -h" "" \
  "$BENCH" staleness -a "${addr[1]},${addr[3]}" --replicas "${addr[1]},${addr[2]}"
expect_exact "staleness: W over N" 2 \
  "kvbench: staleness: -w 3 and -r 1 must be at most N, the 2 replicas; see kvbench -h" "" \
  "$BENCH" staleness -a "${addr[1]},${addr[2]}" -w 3
expect_exact "staleness: times must increase" 2 \
  "kvbench: --times needs up to 64 increasing milliseconds T,T,.. from 0, not '5,1'; see kvbench -h" "" \
  "$BENCH" staleness -a "${addr[1]}" --times 5,1
expect_exact "staleness: three coordinators" 2 \
  "kvbench: staleness: -a needs WRITER or WRITER,READER, not 'a,b,c'; see kvbench -h" "" \
  "$BENCH" staleness -a a,b,c
expect_exact "staleness: no -a" 2 "kvbench: staleness: -a WRITER[,READER] is required; see kvbench -h" "" \
  "$BENCH" staleness --trials 3
expect_exact "staleness: an unknown option" 2 "kvbench: staleness: unknown option '--ops'; see kvbench -h" "" \
  "$BENCH" staleness -a "${addr[1]}" --ops 3
expect_exact "staleness: --trials 0" 2 "kvbench: --trials needs a whole number from 1 to 1000000, not '0'; see kvbench -h" "" \
  "$BENCH" staleness -a "${addr[1]}" --trials 0
expect "staleness: a node that is down stops the run with the failure" 3 \
  " to 127.0.0.1:1 failed: UNAVAILABLE: failed to connect" \
  "$BENCH" staleness -a 127.0.0.1:1 --trials 1 --calibration 1 --timeout 100

# ---- lag mode: replication lag per replica and region -------------------------------------------
"$KVCTL" -a "${addr[1]}" fault set n2,n3 --delay-ms 5 >/dev/null
html=$work/lag.html json=$work/lag.json
"$BENCH" lag --config "$work/cluster.yaml" -a "${addr[1]}" -w 1 --writes 30 --rate 200 \
  --html "$html" --json "$json" >"$work/lag.out" 2>"$work/lag.err"
rc=$?
"$KVCTL" -a "${addr[1]}" fault clear >/dev/null
check "lag: exits 0" "exit $rc: $(cat "$work/lag.err")" [ "$rc" = 0 ]
check "lag: a row per replica" "$(cat "$work/lag.out")" grep -qE '^n3 +local +30 ' "$work/lag.out"
check "lag: the coordinator's own replica has it at the ack" "$(cat "$work/lag.out")" \
  grep -qE '^n1 +local +30 +0\.000 ' "$work/lag.out"
# The write to n2 leaves n1 with the acknowledgement (a link has a window of batches, so it
# waits for none in flight), and the probe's lag is a midpoint taken from when the client got
# that acknowledgement: it may come the ack's trip back plus half a probe short of the delay.
lag_p50=$(awk '$1 == "n2" { print $4; exit }' "$work/lag.out")
check "lag: n2 gets n1's writes the 5 ms delay late, within a ms" "n2 p50 ${lag_p50:-none} ms" \
  awk -v v="${lag_p50:-0}" 'BEGIN { exit !(v >= 4) }'
check "lag: a row per region" "$(cat "$work/lag.out")" grep -qE '^region +local +30 ' "$work/lag.out"
check "lag: JSON per replica and region" "$(cat "$json")" \
  grep -q '"regions": {"local": {"writes": 30, ' "$json"
chromium_dom "$html" >"$work/lag.dom"
check "lag: Chromium renders three charts" "$(count '<svg' "$work/lag.dom") svg elements" \
  [ "$(count '<svg' "$work/lag.dom")" = 3 ]
# put latency (1), lag of the region and of each replica (4).
check "lag: the lag chart has a line per region and replica" "$(count '<path' "$work/lag.dom") paths" \
  [ "$(count '<path' "$work/lag.dom")" = 5 ]
check "lag: the staleness slot says which mode fills it" "note missing" \
  grep -q 'filled by kvbench staleness' "$work/lag.dom"
# ---- lag mode: applied times (Admin.Applied) checked against the probes ---------------------
cp "$work/lag.out" "$work/lag-delay.out"
check "lag: an applied-time row per replica" "$(cat "$work/lag.out")" \
  grep -qE '^n2 +local +30 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[01]\.[0-9]{3}$' "$work/lag.out"
check "lag: ... and per region" "$(cat "$work/lag.out")" \
  grep -qE '^region +local +30 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[01]\.[0-9]{3}$' "$work/lag.out"
applied_p50=$(awk '/^applied lag/ { t = 1 } t && $1 == "n2" { print $4; exit }' "$work/lag.out")
check "lag: n2 applied n1's writes at least the 5 ms delay late, by its own clock" \
  "n2 applied p50 ${applied_p50:-none} ms" awk -v v="${applied_p50:-0}" 'BEGIN { exit !(v >= 4) }'
agree=$(sed -nE 's/^agreement ([0-9.]+): .* 0 writes without applied times$/\1/p' "$work/lag.out")
check "lag: applied times agree with the probes (>= 0.9), every write's known" \
  "agreement ${agree:-none}: $(grep '^agreement' "$work/lag.out")" \
  awk -v v="${agree:-0}" 'BEGIN { exit !(v >= 0.9) }'
check "lag: JSON has the applied-time lags and the agreement" "$(cat "$json")" \
  grep -qE '"applied": \{"replicas": \{"n1": \{"writes": 30, .*"agreement": (0\.9|1\.0)[0-9]*, "tolerance_ms": 1, "unknown": 0\}' "$json"
check "lag: the HTML table has both lags and the agreement" "$(grep -o '<th>[^<]*</th>' "$work/lag.dom" | tr '\n' ' ')" \
  grep -q '<th>probe p50 ms</th><th>probe p99 ms</th><th>applied p50 ms</th><th>applied p99 ms</th><th>agree</th>' "$work/lag.dom"
check "lag: the HTML says how they agree" "note missing" grep -q 'Agreement [01]\.[0-9]*: ' "$work/lag.dom"
# Keyspace two has N=2 on three nodes: writes n1 is not a replica of are forwarded to their
# first primary, which kvbench asks when n1 answers NOT_FOUND.
"$BENCH" lag --config "$work/cluster.yaml" -a "${addr[1]}" --keyspace two --writes 30 --rate 200 \
  >"$work/lag2.out" 2>"$work/lag2.err"
rc=$?
check "lag: through a node that is not a replica, exits 0" "exit $rc: $(cat "$work/lag2.err")" [ "$rc" = 0 ]
agree=$(sed -nE 's/^agreement ([0-9.]+): .* 0 writes without applied times$/\1/p' "$work/lag2.out")
check "lag: ... the primaries that coordinated give every write's applied times" \
  "$(grep '^agreement' "$work/lag2.out")" awk -v v="${agree:-0}" 'BEGIN { exit !(v >= 0.9) }'
# kvctl applied: the newest write of a key the node coordinated.
# The coordinator records the write once its slot finishes, just after the reply: poll for it.
"$KVCTL" -a "${addr[1]}" put default applied-k v -c ALL >/dev/null
for _ in $(seq 100); do
  "$KVCTL" -a "${addr[1]}" applied default applied-k >"$work/applied.out" 2>&1 && break
  sleep 0.05
done
check "applied: acked_ms, then each replica's applied_ms and lag" "$(cat "$work/applied.out")" \
  bash -c "grep -qE '^acked [0-9]{13}\$' '$work/applied.out' && [ \$(grep -cE '^n[123] [0-9]{13} [-+][0-9]+ ms\$' '$work/applied.out') = 3 ]"
expect_exact "applied: an unknown keyspace is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: keyspace 'nope' is not in this node's config" "" \
  "$KVCTL" -a "${addr[1]}" applied nope applied-k
expect_exact "applied: a key never written is NOT_FOUND" 3 \
  "NOT_FOUND: node n1 remembers no acknowledged write of that key in keyspace 'default': it keeps the last 4096 writes it coordinated, and a write sent to a node that is not a replica is coordinated by the first live primary" "" \
  "$KVCTL" -a "${addr[1]}" applied default never-written
expect_exact "applied: ... as is one another node coordinated" 3 \
  "NOT_FOUND: node n2 remembers no acknowledged write of that key in keyspace 'default': it keeps the last 4096 writes it coordinated, and a write sent to a node that is not a replica is coordinated by the first live primary" "" \
  "$KVCTL" -a "${addr[2]}" applied default applied-k
expect_exact "applied: KEYSPACE and KEY are needed" 2 \
  "kvctl: applied: missing arguments; usage: kvctl applied KEYSPACE KEY" "" \
  "$KVCTL" -a "${addr[1]}" applied default
expect_exact "lag: --config is required" 2 "kvbench: lag: --config FILE is required; see kvbench -h" "" \
  "$BENCH" lag -a "${addr[1]}" --writes 1
expect_exact "lag: -w and -c together" 2 "kvbench: lag: give -w or -c, not both; see kvbench -h" "" \
  "$BENCH" lag --config "$work/cluster.yaml" -a "${addr[1]}" --writes 1 -w 1 -c ONE
expect_exact "lag: an unknown keyspace" 2 \
  "kvbench: lag: keyspace 'nope' is not in $work/cluster.yaml; see kvbench -h" "" \
  "$BENCH" lag --config "$work/cluster.yaml" -a "${addr[1]}" --writes 1 --keyspace nope
expect_exact "lag: W over N" 2 \
  "kvbench: lag: -w 4 is more than keyspace 'default''s N=3; see kvbench -h" "" \
  "$BENCH" lag --config "$work/cluster.yaml" -a "${addr[1]}" --writes 1 -w 4
expect_exact "lag: neither --writes nor --duration" 2 \
  "kvbench: lag: give exactly one of --writes and --duration; see kvbench -h" "" \
  "$BENCH" lag --config "$work/cluster.yaml" -a "${addr[1]}"

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
