#!/usr/bin/env bash
# manifests.sh: deploy/'s Containerfile, compose.yaml and k8s/ checked without a container
# runtime or a cluster (none is on these machines):
#   1. tests/deploy/manifests.mjs: the validators tests/deploy/package.json pins, installed
#      from npm into build/deploy-npm (again only when the lock file changes), and the files
#      checked against each other and against the programs.
#   2. the image's ENTRYPOINT and HEALTHCHECK as the Containerfile writes them, run here with
#      the image's environment (its paths mapped into this tree and a port of this run's in
#      place of 7001): the node starts and serves, the health check passes, a node that is
#      not there fails it, and SIGTERM to the entrypoint's process (PID 1 in a container)
#      stops kvnode cleanly, exit 0.
# Needs `make deb` first (the image must install what the package depends on). Prints one
# line per test and ends with "N passed, N failed".
. "$(dirname "$0")/../integration/lib.sh"
npmdir=build/deploy-npm
port=$((36000 + ($$ % 300) * 10))

if ! cmp -s tests/deploy/package-lock.json "$npmdir/package-lock.json" || [ ! -d "$npmdir/node_modules" ]; then
  rm -rf "$npmdir"
  mkdir -p "$npmdir"
  cp tests/deploy/package.json tests/deploy/package-lock.json "$npmdir/"
  if ! (cd "$npmdir" && npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1); then
    echo "npm ci failed: $(tail -5 "$work/npm.log")"
    rm -rf "$npmdir"
    exit 1
  fi
fi
cp tests/deploy/manifests.mjs "$npmdir/"
node "$npmdir/manifests.mjs" "$PWD" "$work/image.json" >"$work/manifests.out" 2>&1
node_rc=$?
grep -v ' passed, ' "$work/manifests.out"
if [[ "$(tail -1 "$work/manifests.out")" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
else
  fail "manifests.mjs" "it stopped (exit $node_rc) before its summary"
fi
[ -s "$work/image.json" ] || { echo "manifests.mjs wrote no image description (exit $node_rc)"; summary; exit 1; }

# ---- the image's entrypoint and health check, run here --------------------------------------
# image FIELD: a field of what manifests.mjs read from the Containerfile, one word a line.
image() { python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
v = eval("d" + sys.argv[2])
print("\n".join(v) if isinstance(v, list) else v)' "$work/image.json" "$1"; }
# Paths of the image mapped into this tree; the image's port moved to this run's.
mapped() { sed -e "s|/usr/bin/|$PWD/bin/|g" -e "s|/var/lib/tunekv|$work/data|g" \
  -e "s|/etc/tunekv/tunekv.conf|$PWD/deploy/tunekv.conf|g" -e "s|:7001|:$port|g"; }
mkdir -p "$work/data"
entry=()
while IFS= read -r w; do entry+=("$w"); done < <(image "['entrypoint']" | mapped)
env_args=()
for k in TUNEKV_NODE TUNEKV_CONFIG TUNEKV_LISTEN; do
  env_args+=("$k=$(image "['env']['$k']" | mapped)")
done
env -i PATH=/usr/bin:/bin "${env_args[@]}" "${entry[@]}" >"$work/entry.log" 2>&1 &
entry_pid=$!
pids+=($entry_pid)
for _ in $(seq 100); do grep -q "serving on" "$work/entry.log" && break; kill -0 $entry_pid 2>/dev/null || break; sleep 0.1; done
expect "image: the ENTRYPOINT starts kvnode with the image's environment" 0 \
  "(listening on 0.0.0.0:$port, cluster tunekv, data $work/data" cat "$work/entry.log"
health=()
while IFS= read -r w; do health+=("$w"); done < <(image "['health']" | mapped | sed "s|^kvctl$|$PWD/bin/kvctl|")
expect "image: the HEALTHCHECK passes on the running node" 0 "node n1 of cluster tunekv" "${health[@]}"
expect "image: ... and fails where no node listens" 3 "UNAVAILABLE" \
  "${health[@]/127.0.0.1:$port/127.0.0.1:$((port + 1))}"
check "image: the entrypoint's process is kvnode itself (exec: PID 1 gets the SIGTERM)" \
  "$(cat /proc/$entry_pid/comm 2>&1)" grep -qx kvnode /proc/$entry_pid/comm
kill -TERM $entry_pid
wait $entry_pid
rc=$?
check "image: SIGTERM stops it cleanly (exit 0)" "exit $rc: $(tail -2 "$work/entry.log")" \
  bash -c "[ $rc = 0 ] && grep -q 'stopped cleanly' '$work/entry.log'"
summary
