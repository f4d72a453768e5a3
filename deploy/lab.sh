#!/usr/bin/env bash
# lab.sh: the WAN lab on one machine (`make lab`). Starts the six nodes of config/multiregion.yaml
# (regions east and west, three nodes each, replication {east: 3, west: 3}) on ports of its own,
# injects a one-way delay with jitter between the regions through fault injection (--both-ways:
# a call's answer waits too, so a round trip between regions costs two delays), runs kvbench
# through an east node at each level, then `kvbench lag` for the replication lag per replica and
# per region, prints both with the writes the first node sent to the other region per put it
# coordinated (from its metrics), and stops everything it started.
# Env: DELAY_MS (40) JITTER_MS (5) DURATION (5 s per level) CONC (8) RATE (20 writes/s for lag)
#      LEVELS (LOCAL_ONE,LOCAL_QUORUM,QUORUM,EACH_QUORUM,ALL) OUT (where the JSON and HTML
#      reports go; default a new /tmp/tunekv-lab.XXXXXX, kept)
set -u
cd "$(dirname "$0")/.." || exit 2
DELAY_MS=${DELAY_MS:-40} JITTER_MS=${JITTER_MS:-5} DURATION=${DURATION:-5} CONC=${CONC:-8}
RATE=${RATE:-20} LEVELS=${LEVELS:-LOCAL_ONE,LOCAL_QUORUM,QUORUM,EACH_QUORUM,ALL}
OUT=${OUT:-$(mktemp -d /tmp/tunekv-lab.XXXXXX)}
mkdir -p "$OUT" || exit 2
work=$(mktemp -d /tmp/tunekv-labrun.XXXXXX)
shift_ports=$((18000 + $$ % 1000))
python3 - config/multiregion.yaml "$shift_ports" >"$work/cluster.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print(re.sub(r'127\.0\.0\.1:(\d+)', lambda m: '127.0.0.1:%d' % (int(m.group(1)) + int(sys.argv[2])), text), end='')
PY
ids=$(sed -n '/^nodes:/,/^[a-z]/s/.*id: *\([A-Za-z0-9_.-]*\).*/\1/p' "$work/cluster.yaml")
declare -A addr region
while read -r id a r; do addr[$id]=$a region[$id]=$r; done < <(
  sed -n 's/.*id: *\([A-Za-z0-9_.-]*\), *address: *"\([0-9.:]*\)", *region: *\([A-Za-z0-9_-]*\).*/\1 \2 \3/p' \
    "$work/cluster.yaml")
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM $p 2>/dev/null; done; wait; rm -rf "$work"' EXIT
first=$(echo "$ids" | head -1)
metrics=127.0.0.1:$((shift_ports + 7100))
for id in $ids; do
  extra=()
  [ "$id" = "$first" ] && extra=(--metrics-addr "$metrics")
  bin/kvnode --config "$work/cluster.yaml" --node "$id" --data-dir "$work/$id" \
    --allow-fault-injection "${extra[@]}" 2>"$work/$id.log" &
  pids+=($!)
done
for id in $ids; do
  for _ in $(seq 100); do grep -q "serving on" "$work/$id.log" && break; sleep 0.1; done
  grep -q "serving on" "$work/$id.log" || { echo "lab.sh: $id did not start:"; cat "$work/$id.log"; exit 1; }
done

# Every node delays its calls to the other region's nodes, and their answers (both ways).
for id in $ids; do
  others=$(for o in $ids; do [ "${region[$o]}" != "${region[$id]}" ] && echo "$o"; done | paste -sd, -)
  bin/kvctl -a "${addr[$id]}" fault set "$others" --delay-ms "$DELAY_MS" --jitter-ms "$JITTER_MS" \
    --both-ways || exit 1
done
echo "lab: 6 nodes, ${DELAY_MS} ms one way (+0..${JITTER_MS} ms jitter) between regions," \
  "requests through $first (${region[$first]}); reports in $OUT"
sleep 1 # let every peer hear every other through the delay
echo
bin/kvbench -a "${addr[$first]}" --duration "$DURATION" --warmup 1 --concurrency "$CONC" \
  --mix put=50,get=50 -c "$LEVELS" --json "$OUT/levels.json" --html "$OUT/levels.html" --no-progress
echo
bin/kvbench lag --config "$work/cluster.yaml" -a "${addr[$first]}" -c LOCAL_QUORUM \
  --rate "$RATE" --duration "$DURATION" --json "$OUT/lag.json" --html "$OUT/lag.html" --no-progress
echo
curl -s "http://$metrics/metrics" | awk -v node="$first" '
  /^tunekv_requests_total\{op="(put|delete)"/ { puts += $NF }
  /^tunekv_remote_region_writes_total / { remote = $NF }
  END { if (puts) printf "cross-region replica writes per put coordinated by %s: %.2f (%d writes, %d puts)\n", node, remote / puts, remote, puts }'
