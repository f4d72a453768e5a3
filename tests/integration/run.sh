#!/usr/bin/env bash
# run.sh: integration tests on real kvnode processes (127.0.0.1 only), driven by kvctl.
# Each test starts the nodes it needs on ports of its own and stops every process it started,
# by pid. Prints one line per test and ends with "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
port=$((21000 + ($$ % 400) * 10))   # this run's ports: $port and up

# single_config FILE PORT: a one-node cluster on 127.0.0.1:PORT.
single_config() {
  cat >"$1" <<YAML
cluster:
  name: it
  partitions: 64
nodes:
  - { id: n1, address: "127.0.0.1:$2", region: local, rack: r1 }
keyspaces:
  - name: default
    replication: { local: 1 }
    read: ONE
    write: ONE
    handler: siblings
YAML
}

# start_node CONFIG ID DIR LOG: starts kvnode, waits for its "serving" line; sets node_pid.
start_node() {
  "$KVNODE" --config "$1" --node "$2" --data-dir "$3" >"$4" 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  for _ in $(seq 100); do
    grep -q "serving on" "$4" && return 0
    kill -0 "$node_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "kvnode did not start:"; cat "$4"
  return 1
}

# stop_node PID: SIGTERM, then the exit status (0 is a clean shutdown).
stop_node() {
  kill -TERM "$1"
  wait "$1"
}

# ---- config errors: kvnode exits 2 with FILE:LINE and a sentence ----------------------
# bad_config NAME MESSAGE YAML: kvnode must refuse the file with exit 2 and that message.
bad_config() {
  printf '%s\n' "$3" >"$work/bad.yaml"
  expect "config: $1" 2 "kvnode: $work/bad.yaml:$2" "$KVNODE" --config "$work/bad.yaml" --node n1 --data-dir "$work/never"
}
node1='  - { id: n1, address: "127.0.0.1:7001" }'
ks='keyspaces:
  - { name: default, replication: { local: 1 } }'
bad_config "unknown field" "3: unknown field 'colour' in a node" "nodes:
$node1
  - { id: n2, address: \"127.0.0.1:7002\", colour: red }
$ks"
bad_config "duplicate node id" "3: node id 'n1' is used twice (first at line 2)" "nodes:
$node1
  - { id: n1, address: \"127.0.0.1:7002\" }
$ks"
bad_config "bad address" "2: address '127.0.0.1' has no port; write it as HOST:PORT" "nodes:
  - { id: n1, address: \"127.0.0.1\" }
$ks"
bad_config "port out of range" "2: address '127.0.0.1:70000' has port 70000; the port must be between 1 and 65535" "nodes:
  - { id: n1, address: \"127.0.0.1:70000\" }
$ks"
bad_config "partitions not a power of two" "2: partitions is 100; it must be a power of two between 1 and 65536" "cluster:
  partitions: 100
nodes:
$node1
$ks"
single_config "$work/ok.yaml" "$port"
expect "config: --node not in the file" 2 "kvnode: $work/ok.yaml:4: node 'n7' is not in the nodes list of this file" \
  "$KVNODE" --config "$work/ok.yaml" --node n7 --data-dir "$work/never"
expect "config: missing file" 2 "kvnode: $work/none.yaml:0: cannot open the file: No such file or directory" \
  "$KVNODE" --config "$work/none.yaml" --node n1
expect "usage: unknown flag exits 2" 2 "usage: kvnode" "$KVNODE" --bogus
if [ ! -e "$work/never" ]; then ok "a refused config creates no data directory"; else fail "a refused config creates no data directory" "$work/never exists"; fi

# ---- kvnode --check-config: the loader's verdict, without starting ---------------------
expect_exact "check-config: a good file, one line on stdout" 0 \
  "kvnode: $work/ok.yaml: ok: cluster it, 1 node(s) in 1 region(s), 1 keyspace(s), 64 partitions" "" \
  "$KVNODE" --check-config "$work/ok.yaml"
expect_exact "check-config --node: and that node" 0 \
  "kvnode: $work/ok.yaml: ok: cluster it, 1 node(s) in 1 region(s), 1 keyspace(s), 64 partitions; node n1 at 127.0.0.1:$port" "" \
  "$KVNODE" --check-config "$work/ok.yaml" --node n1 --data-dir "$work/never"
expect_exact "check-config: two regions" 0 \
  "kvnode: config/multiregion.yaml: ok: cluster multiregion, 6 node(s) in 2 region(s), 1 keyspace(s), 256 partitions" "" \
  "$KVNODE" --check-config config/multiregion.yaml
printf '%s\n' "cluster:" "  partitions: 100" "nodes:" "$node1" "$ks" >"$work/bad.yaml"
expect_exact "check-config: a bad line exits 2 with the loader's sentence" 2 \
  "kvnode: $work/bad.yaml:2: partitions is 100; it must be a power of two between 1 and 65536" "" \
  "$KVNODE" --check-config "$work/bad.yaml"
expect_exact "check-config: a node not in the file" 2 \
  "kvnode: $work/ok.yaml:4: node 'n7' is not in the nodes list of this file" "" \
  "$KVNODE" --check-config "$work/ok.yaml" --node n7
printf '%s\n' "nodes:" "$node1" "keyspaces:" \
  '  - { name: default, replication: { local: 1 }, handler: "plugin:/nonexistent/x.so" }' >"$work/plugin.yaml"
expect_exact "check-config: a plugin that does not load" 2 \
  "kvnode: $work/plugin.yaml:4: handler 'plugin:/nonexistent/x.so' cannot be loaded: /nonexistent/x.so: cannot open shared object file: No such file or directory" "" \
  "$KVNODE" --check-config "$work/plugin.yaml"
expect_exact "check-config: a missing file" 2 \
  "kvnode: $work/none.yaml:0: cannot open the file: No such file or directory" "" \
  "$KVNODE" --check-config "$work/none.yaml"
expect_exact "check-config with --config is a usage error" 2 \
  "kvnode: --check-config takes the file to check; leave out --config" "" \
  "$KVNODE" --config "$work/ok.yaml" --check-config "$work/ok.yaml"
if [ ! -e "$work/never" ]; then ok "check-config creates no data directory"; else fail "check-config creates no data directory" "$work/never exists"; fi
expect_exact "kvnode: bad --listen" 2 \
  "kvnode: --listen must be HOST:PORT with a port of 1 to 65535, not '127.0.0.1'" "" \
  "$KVNODE" --config "$work/ok.yaml" --node n1 --listen 127.0.0.1

# ---- usage errors: exit 2 and a sentence, before anything is sent ----------------------
expect "kvctl: unknown command" 2 "kvctl: unknown command 'frob'; 'kvctl -h' lists them" "$KVCTL" frob
expect "kvctl: missing arguments" 2 \
  "kvctl: get: missing arguments; usage: kvctl get KEYSPACE KEY [-c LEVEL] [-r N] [--pr N] [--local] [--read-repair MODE] [-H HANDLER] [--json]" \
  "$KVCTL" get default
expect_exact "kvctl: too many arguments, usage of a command without any" 2 \
  "kvctl: status: too many arguments; usage: kvctl status" "" "$KVCTL" status extra
expect "kvctl: option the command does not take" 2 "kvctl: get does not take --durable" \
  "$KVCTL" get default k --durable
expect "kvctl: -w 0" 2 "kvctl: -w needs a whole number from 1 up, not '0'" "$KVCTL" put default k v -w 0
expect "kvctl: bad --context" 2 "kvctl: --context is not valid base64" "$KVCTL" put default k v --context '!!!'
expect "kvctl: ring KEYSPACE without KEY" 2 \
  "kvctl: ring: missing arguments; usage: kvctl ring [KEYSPACE KEY] [--json]" "$KVCTL" ring default
expect "kvctl: nothing listening is UNAVAILABLE" 3 "UNAVAILABLE: failed to connect to all addresses" \
  "$KVCTL" -a 127.0.0.1:1 get default k
expect "kvnode: bad --threads" 2 "kvnode: --threads must be 1..64, not '0'" \
  "$KVNODE" --config config/single.yaml --node n1 --threads 0
expect "kvnode: bad --hint-rate" 2 "kvnode: --hint-rate must be 1..1000000, not '0'" \
  "$KVNODE" --config config/single.yaml --node n1 --hint-rate 0
expect "kvnode: bad --hint-bytes-max" 2 \
  "kvnode: --hint-bytes-max must be 0..1099511627776, not '-5'" \
  "$KVNODE" --config config/single.yaml --node n1 --hint-bytes-max -5
expect "kvbench: neither --ops nor --duration" 2 "kvbench: give exactly one of --ops and --duration; see kvbench -h" \
  bin/kvbench -a 127.0.0.1:1
expect "kvbench: bad --mix" 2 "kvbench: --mix needs OP=WEIGHT[,OP=WEIGHT] with OP put, get or delete" \
  bin/kvbench -a 127.0.0.1:1 --ops 10 --mix put=x

# ---- one node: round trips, bad input, siblings, shutdown ------------------------------
cfg=$work/single.yaml
single_config "$cfg" "$port"
addr=127.0.0.1:$port
start_node "$cfg" n1 "$work/d1" "$work/n1.log" || exit 1
pid1=$node_pid
ctl() { "$KVCTL" -a "$addr" "$@"; }

expect "put then get round-trips" 0 "hello" bash -c "'$KVCTL' -a $addr put default k1 hello >/dev/null && '$KVCTL' -a $addr get default k1"
expect "get of a missing key exits 1" 1 "" ctl get default nosuchkey
expect "binary value from stdin round-trips" 0 "" bash -c "head -c 5000 /dev/urandom > $work/v && '$KVCTL' -a $addr put default bin - < $work/v >/dev/null && '$KVCTL' -a $addr get default bin --json | python3 -c 'import sys,json,base64; d=json.load(sys.stdin); sys.exit(0 if base64.b64decode(d[\"siblings\"][0][\"value_b64\"])==open(\"$work/v\",\"rb\").read() else 1)'"
expect "empty key is INVALID_ARGUMENT" 3 "INVALID_ARGUMENT: key is empty" ctl put default "" v
long_key=$(head -c 1025 /dev/zero | tr '\0' k)
expect "key over the limit is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: key is 1025 bytes; keyspace 'default' allows at most 1024" ctl put default "$long_key" v
expect "value over the limit is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: value is 1048577 bytes; keyspace 'default' allows at most 1048576" \
  bash -c "head -c 1048577 /dev/zero | '$KVCTL' -a $addr put default big -"
expect "a value at the limit is accepted" 0 "" \
  bash -c "head -c 1048576 /dev/zero | '$KVCTL' -a $addr put default big -"
expect "unknown keyspace is NOT_FOUND" 3 "NOT_FOUND: keyspace 'nope' does not exist" ctl get nope k1
expect "unknown level is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: unknown consistency level 'QUORM'; use one of ONE, TWO, THREE, QUORUM, ALL, ANY, LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM" \
  ctl get default k1 -c QUORM
expect "unknown read repair mode is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: read_repair is 'sometimes'; use blocking or async" \
  ctl get default k1 --read-repair sometimes
expect "r larger than N is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: r is 2 but keyspace 'default' has only N=1 replicas" ctl get default k1 -r 2
expect "w larger than N is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: w is 4 but keyspace 'default' has only N=1 replicas" ctl put default k1 v -w 4
expect "a level N cannot meet is INVALID_ARGUMENT" 3 \
  "INVALID_ARGUMENT: level THREE needs 3 replicas but keyspace 'default' has N=1" ctl put default k1 v -c three
for lvl in one quorum all any local_one local_quorum each_quorum; do
  expect "level $lvl is accepted on puts" 0 "" ctl put default lv v -c "$lvl"
done
expect "malformed protobuf is INVALID_ARGUMENT" 0 \
  "INVALID_ARGUMENT: request is not a valid tunekv.PutRequest message" "$RAW" "$addr" /tunekv.KV/Put ffffffffffff
expect "malformed get is INVALID_ARGUMENT" 0 \
  "INVALID_ARGUMENT: request is not a valid tunekv.GetRequest message" "$RAW" "$addr" /tunekv.KV/Get 0a05ff
expect "the server keeps serving after malformed input" 0 "hello" ctl get default k1

# Siblings: two writes without context are concurrent; a write with the read context wins.
ctl put default s1 red >/dev/null
expect "a put beside a concurrent version says so" 0 \
  "kvctl: 's1' also has 1 concurrent version(s); 'get' shows them" ctl put default s1 blue
expect "two puts without context give two siblings" 0 "" bash -c \
  "[ \"\$('$KVCTL' -a $addr get default s1 | sort | tr '\n' ' ')\" = 'blue red ' ]"
ctx=$(ctl get default s1 --json | python3 -c 'import sys,json; print(json.load(sys.stdin)["context"])')
ctl put default s1 purple --context "$ctx" >/dev/null
expect "a put with the read context resolves the siblings" 0 "" bash -c \
  "[ \"\$('$KVCTL' -a $addr get default s1)\" = purple ]"

# Deletes are tombstones; a delete with an old context keeps the concurrent write.
ctl put default d1 v1 >/dev/null
ctl delete default d1 --context "$(ctl get default d1 --json | python3 -c 'import sys,json; print(json.load(sys.stdin)["context"])')" >/dev/null
expect "get after delete says not found" 1 "" ctl get default d1
old=$(ctl put default d2 first)
ctl put default d2 second >/dev/null 2>&1       # concurrent with the context held in $old
ctl delete default d2 --context "$old" >/dev/null 2>&1
expect "delete with an old context keeps the concurrent sibling" 0 "second" ctl get default d2
expect "... and only it" 0 "" bash -c "[ \"\$('$KVCTL' -a $addr get default d2 | wc -l)\" = 1 ]"

expect "a second node on a bound port exits 1" 1 "cannot listen on 127.0.0.1:$port" \
  "$KVNODE" --config "$cfg" --node n1 --data-dir "$work/other"
stop_node "$pid1"; rc=$?
if [ $rc = 0 ] && grep -q "stopped cleanly" "$work/n1.log"; then ok "SIGTERM stops the node cleanly (exit 0)"
else fail "SIGTERM stops the node cleanly (exit 0)" "exit $rc; log: $(tail -3 "$work/n1.log")"; fi

# ---- --listen: bound elsewhere than the file's address ---------------------------------
# As in a container: the file names the node (here 127.0.0.1:port+5, where nothing listens),
# the node listens on 0.0.0.0:port+6, and a client on 127.0.0.1 reaches it there.
single_config "$work/listen.yaml" $((port + 5))
JOURNAL_STREAM=0:0 "$KVNODE" --config "$work/listen.yaml" --node n1 --data-dir "$work/dl" \
  --listen 0.0.0.0:$((port + 6)) >"$work/nl.log" 2>&1 &
pidl=$!
pids+=("$pidl")
for _ in $(seq 100); do grep -q "serving on" "$work/nl.log" && break; sleep 0.1; done
expect "--listen: the serving line names both addresses" 0 \
  "serving on 127.0.0.1:$((port + 5)) (listening on 0.0.0.0:$((port + 6)), cluster it" cat "$work/nl.log"
expect "--listen: a client reaches the node on the address it listens on" 0 "there" bash -c \
  "'$KVCTL' -a 127.0.0.1:$((port + 6)) put default l1 there >/dev/null && '$KVCTL' -a 127.0.0.1:$((port + 6)) get default l1"
stop_node "$pidl"; rc=$?
check "--listen: SIGTERM still stops it cleanly" "exit $rc" [ "$rc" = 0 ]

# ---- the journal: under systemd, stderr is the journal stream JOURNAL_STREAM names -------
# The node then leaves the time to the journal and prefixes each line with its priority.
: >"$work/nj.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$work/nj.log") "$KVNODE" --config "$work/listen.yaml" --node n1 \
  --data-dir "$work/dl" >>"$work/nj.log" 2>&1 &
pidj=$!
pids+=("$pidj")
for _ in $(seq 100); do grep -q "serving on" "$work/nj.log" && break; sleep 0.1; done
stop_node "$pidj"; rc=$?
expect_exact "journal: priority prefixes and no timestamps when stderr is the journal" 0 \
  "<6>n1 INFO serving on
<6>n1 INFO Terminated: stopping (finishing in-flight calls)
<6>n1 INFO stopped cleanly" "" bash -c "sed -E 's/^(<6>n1 INFO serving on).*/\\1/' '$work/nj.log'; exit $rc"
check "journal: lines to a stderr that is not the journal stream keep their timestamps" \
  "$(head -1 "$work/nl.log")" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T.* n1 INFO serving on' "$work/nl.log"

# ---- durability: durable puts survive SIGKILL ------------------------------------------
start_node "$cfg" n1 "$work/d1" "$work/n1b.log" || exit 1
pid1=$node_pid
expect "data written before a clean shutdown is still there" 0 "hello" ctl get default k1
for i in $(seq 1 50); do ctl put default "dur$i" "value$i" --durable >/dev/null || echo "put $i failed"; done
kill -KILL "$pid1"; wait "$pid1" 2>/dev/null
start_node "$cfg" n1 "$work/d1" "$work/n1c.log" || exit 1
pid1=$node_pid
missing=0
for i in $(seq 1 50); do [ "$(ctl get default "dur$i")" = "value$i" ] || missing=$((missing + 1)); done
if [ $missing = 0 ]; then ok "50 durable puts survive SIGKILL and restart"
else fail "50 durable puts survive SIGKILL and restart" "$missing missing"; fi
inc() { grep -o 'incarnation [0-9a-f]*' "$1"; }
inc1=$(inc "$work/n1.log") inc1b=$(inc "$work/n1b.log") inc1c=$(inc "$work/n1c.log")
if [ -n "$inc1" ] && [ "$inc1" = "$inc1b" ]; then ok "the incarnation survives a clean restart"
else fail "the incarnation survives a clean restart" "$inc1 vs $inc1b"; fi
# After SIGKILL the node mints dots under a new incarnation (store.c note 4).
if [ -n "$inc1c" ] && [ "$inc1c" != "$inc1b" ]; then ok "the incarnation is new after SIGKILL"
else fail "the incarnation is new after SIGKILL" "$inc1b vs $inc1c"; fi
stop_node "$pid1" >/dev/null
start_node "$cfg" n1 "$work/fresh" "$work/n1d.log" || exit 1
inc3=$(grep -o 'incarnation [0-9a-f]*' "$work/n1d.log")
if [ "$inc3" != "$inc1" ]; then ok "a new data directory gets a new incarnation"; else fail "a new data directory gets a new incarnation" "$inc3"; fi
stop_node "$node_pid" >/dev/null

# ---- a ring too large for one answer ------------------------------------------------------
# 65,536 partitions in each of two keyspaces: twice the rows Admin.Ring answers with at once.
big_port=$((port + 7))
cat >"$work/big.yaml" <<YAML
cluster: { name: big, partitions: 65536 }
nodes:
  - { id: n1, address: "127.0.0.1:$big_port" }
keyspaces:
  - { name: a, replication: { local: 1 }, read: ONE, write: ONE }
  - { name: b, replication: { local: 1 }, read: ONE, write: ONE }
YAML
start_node "$work/big.yaml" n1 "$work/big" "$work/big.log" || exit 1
expect_exact "kvctl ring of 2 x 65536 partitions is RESOURCE_EXHAUSTED" 3 \
  "RESOURCE_EXHAUSTED: the ring has 65536 partitions in each of 2 keyspaces, more than the 65536 rows one answer holds; ask about one key" \
  "" "$KVCTL" -a "127.0.0.1:$big_port" ring
expect "... while one key of it is answered" 0 "partition " "$KVCTL" -a "127.0.0.1:$big_port" ring b k
stop_node "$node_pid" >/dev/null

summary
