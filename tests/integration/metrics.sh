#!/usr/bin/env bash
# metrics.sh: kvnode's Prometheus endpoint (--metrics-addr) on a real 3-node cluster
# (127.0.0.1 only), scraped with curl: refusals of bad addresses with their sentences, the
# text format, request counts and latency histograms per operation and level moving with
# requests, replication lag per region, hints pending and delivered, read repairs, conflicts
# per handler, 404 and 405. Starts its nodes on ports of its own and stops every process it started, by pid.
# Prints one line per test and ends with "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
base=$((31000 + ($$ % 300) * 10))   # nodes on base+1 .. base+3, their metrics on base+5 .. base+7
declare -a pid addr maddr
for i in 1 2 3; do addr[$i]=127.0.0.1:$((base + i)) maddr[$i]=127.0.0.1:$((base + 4 + i)); done
{
  echo "cluster: { name: metrics, partitions: 64 }"
  echo "nodes:"
  for i in 1 2 3; do echo "  - { id: n$i, address: \"${addr[$i]}\", rack: r$i }"; done
  echo "keyspaces:"
  echo "  - { name: default, replication: { local: 3 }, read: QUORUM, write: QUORUM }"
} >"$work/cluster.yaml"

ctl() { local i=$1; shift; "$KVCTL" -a "${addr[$i]}" "$@"; }
# scrape I: node I's metrics text.
scrape() { curl -s "http://${maddr[$1]}/metrics"; }
# metric I LINE_PREFIX: the value of node I's sample whose line starts with LINE_PREFIX.
metric() { scrape "$1" | awk -v p="$2" 'index($0, p) == 1 { print $NF; exit }'; }
# wait_metric I PREFIX MIN: polls (up to 5 s) until the sample is at least MIN.
wait_metric() {
  for _ in $(seq 100); do
    [ "$(metric "$1" "$2" || echo 0)" -ge "$3" ] 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# ---- 1. bad addresses: exit 2 (usage) or 1 (cannot bind), and a sentence --------------------
nodeargs=(--config "$work/cluster.yaml" --node n1 --data-dir "$work/never")
expect_exact "1. --metrics-addr without a port" 2 "kvnode: --metrics-addr must be HOST:PORT, not 'nonsense'" "" \
  "$KVNODE" "${nodeargs[@]}" --metrics-addr nonsense
expect_exact "1. --metrics-addr with port 0" 2 "kvnode: --metrics-addr '127.0.0.1:0': the port must be 1 to 65535" "" \
  "$KVNODE" "${nodeargs[@]}" --metrics-addr 127.0.0.1:0
expect_exact "1. --metrics-addr with a port that is not a number" 2 \
  "kvnode: --metrics-addr '127.0.0.1:http': the port must be 1 to 65535" "" \
  "$KVNODE" "${nodeargs[@]}" --metrics-addr 127.0.0.1:http
expect "1. --metrics-addr naming a host that does not resolve" 2 \
  "kvnode: --metrics-addr 'no-such-host.invalid:9100': cannot resolve 'no-such-host.invalid' to an IPv4 address: " \
  "$KVNODE" "${nodeargs[@]}" --metrics-addr no-such-host.invalid:9100
expect "1. --metrics-addr on the node's own gRPC port cannot be bound" 1 \
  "cannot serve metrics on ${addr[1]}: Address already in use" \
  "$KVNODE" "${nodeargs[@]}" --metrics-addr "${addr[1]}"

# ---- start the cluster ------------------------------------------------------------------------
for i in 1 2 3; do
  "$KVNODE" --config "$work/cluster.yaml" --node "n$i" --data-dir "$work/n$i" \
    --metrics-addr "${maddr[$i]}" --allow-fault-injection >"$work/n$i.log" 2>&1 &
  pid[$i]=$!
  pids+=("${pid[$i]}")
done
for i in 1 2 3; do
  for _ in $(seq 100); do grep -q "serving on" "$work/n$i.log" && break; sleep 0.1; done
done
# QUORUM traffic below needs n1 to have heard its peers (a loaded machine takes a while).
wait_state 1 up n2 n3 || echo "n1 did not see n2 and n3 up within 10 s"
check "2. the node logs where its metrics are" "$(head -3 "$work/n1.log")" \
  grep -q "metrics at http://${maddr[1]}/metrics" "$work/n1.log"

# ---- 2. the text format -----------------------------------------------------------------------
scrape 1 >"$work/first.txt"
check "2. a scrape answers with every family" "$(head -c 300 "$work/first.txt")" \
  grep -q '^# TYPE tunekv_requests_total counter$' "$work/first.txt"
check "2. the read repair counter starts at 0" "$(grep read_repairs "$work/first.txt")" \
  grep -qx 'tunekv_read_repairs_total 0' "$work/first.txt"
check "2. the anti-entropy hook is there" "missing" \
  grep -qx 'tunekv_anti_entropy_repairs_total 0' "$work/first.txt"
check "2. writes sent to other regions: none in a one-region cluster" "missing" \
  grep -qx 'tunekv_remote_region_writes_total 0' "$work/first.txt"
check "2. replication lag has a histogram per region" "missing" \
  grep -q '^tunekv_replication_lag_seconds_bucket{region="local",le="+Inf"} ' "$work/first.txt"
check "2. hints per peer" "missing" grep -qx 'tunekv_hints_pending{peer="n2"} 0' "$work/first.txt"
check "2. served as Prometheus text" "wrong content type" \
  bash -c "curl -sI 'http://${maddr[1]}/metrics' | grep -qi '^content-type: text/plain; version=0.0.4'"

# ---- 3. counters move with requests ---------------------------------------------------------------
bin/kvbench -a "${addr[1]}" --ops 20 --concurrency 1 --mix put=100 -c QUORUM --keys 5 >/dev/null 2>&1
bin/kvbench -a "${addr[1]}" --ops 10 --concurrency 1 --mix get=100 -c ONE --keys 5 >/dev/null 2>&1
expect_exact "3. QUORUM puts counted" 0 20 "" metric 1 'tunekv_requests_total{op="put",level="QUORUM",outcome="ok"}'
expect_exact "3. ONE gets counted" 0 10 "" metric 1 'tunekv_requests_total{op="get",level="ONE",outcome="ok"}'
expect_exact "3. put latency histogram counts them" 0 20 "" \
  metric 1 'tunekv_request_duration_seconds_count{op="put",level="QUORUM"}'
expect_exact "3. ... and every put is at or below +Inf" 0 20 "" \
  metric 1 'tunekv_request_duration_seconds_bucket{op="put",level="QUORUM",le="+Inf"}'
expect_exact "3. siblings per read: one sample per get" 0 10 "" metric 1 'tunekv_siblings_per_read_count'
check "3. replication lag recorded for the region" "$(scrape 1 | grep 'lag_seconds_count')" \
  wait_metric 1 'tunekv_replication_lag_seconds_count{region="local"}' 1
expect_exact "3. n2 coordinated nothing" 0 "" "" metric 2 'tunekv_requests_total{op="put"'
ctl 1 put default k v -c BOGUS >/dev/null 2>&1
expect_exact "3. a request with an unknown level is an error under UNKNOWN" 0 1 "" \
  metric 1 'tunekv_requests_total{op="put",level="UNKNOWN",outcome="error"}'

# ---- 4. hints and read repair -------------------------------------------------------------------
ctl 1 fault set n3 --partition
ctl 1 put default stale v -c QUORUM >/dev/null
check "4. a write n3 missed is a hint pending for n3" "$(scrape 1 | grep hints_pending)" \
  wait_metric 1 'tunekv_hints_pending{peer="n3"}' 1
expect_exact "4. a QUORUM read through n2 sees the write" 0 v "" ctl 2 get default stale -c QUORUM
check "4. ... and repairs n3: n2's read repair counter moves" "$(scrape 2 | grep read_repairs)" \
  wait_metric 2 'tunekv_read_repairs_total' 1
ctl 1 fault clear
check "4. the hint is delivered once n3 is back" "$(scrape 1 | grep 'hints_.*n3')" \
  wait_metric 1 'tunekv_hints_delivered_total{peer="n3"}' 1

# ---- 4b. conflicts per handler -------------------------------------------------------------------
ctl 1 put default twice a >/dev/null
ctl 1 put default twice b >/dev/null   # no context: two siblings
expect_exact "4b. the default handler keeps both siblings" 0 "a
b" "" bash -c "'$KVCTL' -a '${addr[1]}' get default twice -c QUORUM | sort"
expect_exact "4b. ... and resolves nothing" 0 "" "" metric 1 'tunekv_conflicts_total{handler="lww"}'
expect_exact "4b. a get with the lww handler answers one" 0 b "" ctl 1 get default twice -c QUORUM -H lww
check "4b. n1 counts the conflict lww resolved" "$(scrape 1 | grep conflicts_total)" \
  wait_metric 1 'tunekv_conflicts_total{handler="lww"}' 1

# ---- 5. other paths and methods -------------------------------------------------------------------
expect_exact "5. another path is 404 with a sentence" 0 "404 not found; the metrics are at /metrics" "" \
  bash -c "curl -s -w '%{http_code} ' -o '$work/404.txt' 'http://${maddr[1]}/nope'; cat '$work/404.txt'"
expect_exact "5. POST is 405" 0 "405" "" \
  curl -s -o /dev/null -w '%{http_code}' -X POST "http://${maddr[1]}/metrics"

# ---- 6. stop cleanly -------------------------------------------------------------------------------
for i in 1 2 3; do
  kill -TERM "${pid[$i]}"
  wait "${pid[$i]}"; rc=$?
  check "6. SIGTERM stops n$i cleanly with its metrics endpoint" "exit $rc; $(tail -2 "$work/n$i.log")" \
    [ "$rc" = 0 ]
done

summary
