#!/usr/bin/env bash
# tls.sh: TLS, mutual TLS between nodes and bearer tokens on a real 3-node cluster (127.0.0.1
# only). Certificates come from deploy/certs.sh (a CA, one per node, a client one) and from a
# second run of it under another CA (an outsider with the same names). Checks: start-up errors
# for bad certificate files (exit 2, the sentence); a client without TLS, or without a client
# certificate, is refused; a peer batch (a replica write, a hint) from an outsider's
# certificate, from a client certificate that names no node, or from a node speaking for
# another node is refused and changes nothing on any node, while the same batch from the right
# node is taken; every token role's refusals, status and sentence exact; SIGHUP reload of a
# renewed certificate (new handshakes see its serial, the cluster keeps serving) and of a
# broken one (kept); a CA rotation by SIGHUP alone, in which a node's calls to its peers
# present the certificate it reloaded. Starts its nodes on ports of its own and stops each by pid. Prints one
# line per test and ends with "N passed, N failed"; exits 1 on failure.
. "$(dirname "$0")/lib.sh"
base=$((39000 + ($$ % 300) * 10))   # this run's ports: base+1 .. base+3
declare -a pid addr log
for i in 1 2 3; do addr[$i]=127.0.0.1:$((base + i)); pid[$i]=; done
certs=$work/certs other=$work/other

cat >"$work/cluster.yaml" <<YAML
cluster: { name: tls3, partitions: 16 }
nodes:
  - { id: n1, address: "${addr[1]}" }
  - { id: n2, address: "${addr[2]}" }
  - { id: n3, address: "${addr[3]}" }
keyspaces:
  - { name: default, replication: { local: 3 } }
  - { name: private, replication: { local: 3 } }
tls: { cert: "$certs/{node}.pem", key: "$certs/{node}.key", ca: "$certs/ca.pem" }
tokens:
  - { name: reader, secret_file: "$work/reader.token", read: [default] }
  - { name: writer, secret_file: "$work/writer.token", read: [default], write: [default] }
  - { name: ops, secret_file: "$work/ops.token", admin: true }
YAML
for t in reader writer ops; do openssl rand -hex 16 >"$work/$t.token"; done
reader=$(cat "$work/reader.token") writer=$(cat "$work/writer.token") ops=$(cat "$work/ops.token")
deploy/certs.sh "$work/cluster.yaml" "$certs" >/dev/null || { echo "certs.sh failed"; exit 1; }
deploy/certs.sh "$work/cluster.yaml" "$other" >/dev/null || { echo "certs.sh failed"; exit 1; }

# Every kvctl below (and lib.sh's wait_state) speaks TLS with the client certificate and,
# unless told otherwise, the admin token.
export TUNEKV_TLS_CA=$certs/ca.pem TUNEKV_TLS_CERT=$certs/client.pem TUNEKV_TLS_KEY=$certs/client.key
export TUNEKV_TOKEN=$ops
ctl() { local i=$1; shift; "$KVCTL" -a "${addr[$i]}" "$@"; }
# as TOKEN I ARGS...: kvctl on nI with that token.
as() { local t=$1 i=$2; shift 2; TUNEKV_TOKEN=$t "$KVCTL" -a "${addr[$i]}" "$@"; }
# raw CERT I ARGS...: raw_rpc to nI over TLS with certificate CERT (a path without .pem).
raw() { local c=$1 i=$2; shift 2; "$RAW" --tls-ca "$certs/ca.pem" --tls-cert "$c.pem" --tls-key "$c.key" "${addr[$i]}" "$@"; }

# wait_log I TEXT: waits (at most 10 s) until nI's log has a line containing TEXT.
wait_log() {
  for _ in $(seq 200); do grep -qF -- "$2" "${log[$1]}" && return 0; sleep 0.05; done
  return 1
}
conf=$work/cluster.yaml   # what start_node runs the nodes with
start_node() {
  local i=$1
  log[$i]=$work/n$i.log
  "$KVNODE" --config "$conf" --node "n$i" --data-dir "$work/d$i" >"${log[$i]}" 2>&1 &
  pid[$i]=$!
  pids+=($!)
  wait_log "$i" "serving on" || { echo "kvnode n$i did not start:"; cat "${log[$i]}"; return 1; }
}
# serial_of ADDR: the serial of the certificate a new TLS handshake with ADDR shows, in hex
# whole bytes as openssl and the node's log both print it (a serial may start with "0F").
serial_of() {
  openssl s_client -connect "$1" -CAfile "$certs/ca.pem" -cert "$certs/client.pem" \
    -key "$certs/client.key" </dev/null 2>/dev/null | openssl x509 -noout -serial | sed 's/^serial=//'
}
file_serial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }

# ---- 1. bad certificate files stop the start with a sentence and exit 2 -------------------
cfg=$work/cluster.yaml
bad_cfg() { sed "s|^tls: .*|tls: { cert: \"$1\", key: \"$2\", ca: \"$3\" }|" "$cfg" >"$work/bad.yaml"; }
bad_cfg "$work/missing.pem" "$certs/n1.key" "$certs/ca.pem"
expect_exact "1. a missing certificate file" 2 \
  "kvnode: $work/bad.yaml:9: tls.cert '$work/missing.pem' cannot be read: No such file or directory" "" \
  "$KVNODE" --config "$work/bad.yaml" --node n1 --data-dir "$work/bad"
bad_cfg "$certs/n1.pem" "$work" "$certs/ca.pem"
expect_exact "1. an unreadable key (a directory)" 2 \
  "kvnode: $work/bad.yaml:9: tls.key '$work' cannot be read: Is a directory" "" \
  "$KVNODE" --check-config "$work/bad.yaml" --node n1
bad_cfg "$certs/n1.pem" "$certs/ca.pem" "$certs/ca.pem"
expect_exact "1. a file that holds no key" 2 \
  "kvnode: $work/bad.yaml:9: tls.key '$certs/ca.pem' holds no PEM private key (an encrypted key cannot be used)" "" \
  "$KVNODE" --check-config "$work/bad.yaml" --node n1
bad_cfg "$certs/n1.pem" "$certs/n2.key" "$certs/ca.pem"
expect_exact "1. a key that does not match the certificate" 2 \
  "kvnode: $work/bad.yaml:9: tls.key '$certs/n2.key' does not match the certificate in tls.cert '$certs/n1.pem'" "" \
  "$KVNODE" --check-config "$work/bad.yaml" --node n1
bad_cfg "$other/n1.pem" "$other/n1.key" "$certs/ca.pem"
expect_exact "1. a certificate from another CA" 2 \
  "kvnode: $work/bad.yaml:9: tls.cert '$other/n1.pem' is not trusted by tls.ca '$certs/ca.pem': unable to get local issuer certificate" "" \
  "$KVNODE" --check-config "$work/bad.yaml" --node n1
bad_cfg "$certs/client.pem" "$certs/client.key" "$certs/ca.pem"
expect_exact "1. a certificate that does not name the node" 2 \
  "kvnode: $work/bad.yaml:9: tls.cert '$certs/client.pem' does not name node 'n1' in its subjectAltName; its peers would refuse it" "" \
  "$KVNODE" --check-config "$work/bad.yaml" --node n1
expect_exact "1. the good config checks" 0 \
  "kvnode: $cfg: ok: cluster tls3, 3 node(s) in 1 region(s), 2 keyspace(s), 16 partitions; node n2 at ${addr[2]}; tls (client_auth require), 3 token(s)" "" \
  "$KVNODE" --check-config "$cfg" --node n2

for i in 1 2 3; do start_node "$i" || exit 1; done
wait_state 1 up n2 n3 && wait_state 2 up n1 n3 && wait_state 3 up n1 n2 ||
  { echo "the nodes did not see each other up over TLS"; exit 1; }
ok "2. three nodes see each other up over mutual TLS"

# ---- 3. clients without TLS or without a client certificate are refused -------------------
as "$writer" 1 put default victim original -c ALL >/dev/null
out=$(TUNEKV_TLS_CA= TUNEKV_TLS_CERT= TUNEKV_TLS_KEY= as "$writer" 1 put default victim plain 2>&1); rc=$?
check "3. a plaintext client is refused (exit $rc: ${out:0:60})" "$out" \
  test "$rc" = 3 -a "${out:0:13}" = "UNAVAILABLE: "
out=$(TUNEKV_TLS_CERT= TUNEKV_TLS_KEY= as "$writer" 1 put default victim nocert 2>&1); rc=$?
check "3. a TLS client without a client certificate is refused (exit $rc)" "$out" \
  test "$rc" = 3 -a "${out:0:13}" = "UNAVAILABLE: "
out=$("$RAW" "${addr[2]}" --peer-write n1 default victim plain 2>/dev/null)
check "3. a plaintext peer batch is refused (${out:0:40})" "$out" test "${out:0:13}" = "UNAVAILABLE: "

# ---- 4. peer batches: only a node's certificate, speaking for itself ----------------------
out=$(raw "$other/n1" 2 --peer-write n1 default victim forged 2>/dev/null)
check "4. a replica write with a node certificate from another CA is refused (${out:0:40})" "$out" \
  test "${out:0:13}" = "UNAVAILABLE: "
out=$(raw "$other/n1" 2 --peer-write n1 default victim forged n3 2>/dev/null)
check "4. a hint with a certificate from another CA is refused (${out:0:40})" "$out" \
  test "${out:0:13}" = "UNAVAILABLE: "
expect_exact "4. a replica write with a client certificate naming no node" 0 \
  "PERMISSION_DENIED: peer calls need a client certificate naming a node of cluster 'tls3'; this one names 'client'" "" \
  raw "$certs/client" 2 --peer-write n1 default victim forged
expect_exact "4. a hint with a client certificate naming no node" 0 \
  "PERMISSION_DENIED: peer calls need a client certificate naming a node of cluster 'tls3'; this one names 'client'" "" \
  raw "$certs/client" 2 --peer-write n1 default victim forged n3
expect_exact "4. a node speaking for another node" 0 \
  "PERMISSION_DENIED: the batch says it comes from 'n3', but its client certificate names node 'n1'" "" \
  raw "$certs/n1" 2 --peer-write n3 default victim forged
for i in 1 2 3; do
  expect_exact "4. the key is unchanged in n$i's replica" 0 original "" as "$reader" "$i" get default victim --local
done
expect_exact "4. n2's hints hold nothing for n3" 0 0 "" \
  sh -c "'$KVCTL' -a '${addr[2]}' hints | awk '\$1 == \"n3\" { print \$3 }'"
# The same batch from the node it names is taken: the refusals above were the certificates'.
expect_exact "4. the same replica write from n1 with n1's certificate is taken" 0 "OK; answer OK" "" \
  raw "$certs/n1" 2 --peer-write n1 default control from-n1
expect_exact "4. ... and is in n2's replica" 0 from-n1 "" as "$reader" 2 get default control --local

# ---- 5. tokens: each role, each refusal -------------------------------------------------
expect_exact "5. no token: UNAUTHENTICATED" 3 \
  "UNAUTHENTICATED: this cluster asks for a bearer token (kvctl --token or TUNEKV_TOKEN); none was sent" "" \
  as "" 1 put default victim x
expect_exact "5. an unknown token: UNAUTHENTICATED" 3 \
  "UNAUTHENTICATED: the bearer token is not one this cluster knows" "" \
  "$KVCTL" -a "${addr[1]}" --token "${reader}x" get default victim
expect_exact "5. read role: get" 0 original "" as "$reader" 1 get default victim
expect_exact "5. read role: no put" 3 "PERMISSION_DENIED: token 'reader' may not write keyspace 'default'" "" \
  as "$reader" 1 put default victim x
expect_exact "5. read role: no delete" 3 "PERMISSION_DENIED: token 'reader' may not write keyspace 'default'" "" \
  as "$reader" 1 delete default victim
expect_exact "5. read role: only its keyspaces" 3 "PERMISSION_DENIED: token 'reader' may not read keyspace 'private'" "" \
  as "$reader" 1 get private k
expect_exact "5. read role: no admin call" 3 "PERMISSION_DENIED: token 'reader' may not make admin calls" "" \
  as "$reader" 1 status
expect_exact "5. write role: no write to another keyspace" 3 \
  "PERMISSION_DENIED: token 'writer' may not write keyspace 'private'" "" as "$writer" 2 put private k v
expect_exact "5. write role: no admin call" 3 "PERMISSION_DENIED: token 'writer' may not make admin calls" "" \
  as "$writer" 2 hints
expect_exact "5. admin role: no data call" 3 "PERMISSION_DENIED: token 'ops' may not read keyspace 'default'" "" \
  as "$ops" 1 get default victim
for i in 1 2 3; do
  expect_exact "5. after the refusals the key is unchanged in n$i's replica" 0 original "" \
    as "$reader" "$i" get default victim --local
done
as "$writer" 3 put default written by-writer -c ALL >/dev/null
expect_exact "5. write role: a put, at ALL, through n3" 0 by-writer "" as "$reader" 1 get default written --local
out=$(ctl 1 status); rc=$?
check "5. admin role: status" "$out" test "$rc" = 0 -a "${out:0:8}" = "node n1 "
expect "5. kvbench with the write token over TLS" 0 "put" \
  bin/kvbench -a "${addr[1]},${addr[2]}" --ops 300 --mix put=50,get=50 --keys 50 --token "$writer" --no-progress
expect "5. kvbench with the read token: its puts fail" 3 "PERMISSION_DENIED" \
  bin/kvbench -a "${addr[1]}" --ops 20 --mix put=100 --token "$reader" --no-progress

# ---- 6. SIGHUP reloads a renewed certificate; a broken one is kept out ---------------------
old=$(serial_of "${addr[1]}")
check "6. n1 shows its first certificate ($old)" "$old vs $(file_serial "$certs/n1.pem")" \
  test "$old" = "$(file_serial "$certs/n1.pem")"
deploy/certs.sh "$cfg" "$certs" n1 >/dev/null
new=$(file_serial "$certs/n1.pem")
kill -HUP "${pid[1]}"
check "6. n1 logs the reload of serial $new" "$(tail -3 "${log[1]}")" \
  wait_log 1 "SIGHUP: reloaded the certificate (serial $new,"
check "6. a new handshake sees the renewed certificate" "$(serial_of "${addr[1]}") vs $new" \
  test "$(serial_of "${addr[1]}")" = "$new"
as "$writer" 2 put default after-reload yes -c ALL >/dev/null
expect_exact "6. n1 serves on: an ALL put through n2 is in n1's replica" 0 yes "" \
  as "$reader" 1 get default after-reload --local
expect_exact "6. ... and a new client reads through n1" 0 yes "" as "$reader" 1 get default after-reload
cp "$certs/n1.key" "$work/n1.key.good"
cp "$certs/n2.key" "$certs/n1.key"
kill -HUP "${pid[1]}"
check "6. a reload with a key that does not match is refused and said so" "$(tail -3 "${log[1]}")" \
  wait_log 1 "SIGHUP: kept the certificate in use (serial $new,"
check "6. ... new handshakes still get the good certificate" "$(serial_of "${addr[1]}")" \
  test "$(serial_of "${addr[1]}")" = "$new"
cp "$work/n1.key.good" "$certs/n1.key"
expect_exact "6. ... and n1 serves" 0 yes "" as "$reader" 1 get default after-reload

for i in 1 2 3; do kill -TERM "${pid[$i]}"; done
rc_all=0
for i in 1 2 3; do wait "${pid[$i]}" || rc_all=1; done
check "7. the three nodes stop cleanly" "exit status" test "$rc_all" = 0

# ---- 8. a CA rotation by SIGHUP alone: calls to peers present the reloaded certificate -----
# Each node trusts a CA file of its own. All come to trust the old and the new CA ($other's),
# n2 takes a certificate of the new CA by SIGHUP, and n1 restarts trusting the new CA only:
# n2's calls reach n1 only if they present n2's new certificate; n3's, not renewed, cannot.
rot=$work/rot
mkdir -p "$rot"
sed "s|ca: \"$certs/ca.pem\"|ca: \"$rot/{node}-ca.pem\"|" "$work/cluster.yaml" >"$work/rot.yaml"
conf=$work/rot.yaml
for i in 1 2 3; do cp "$certs/ca.pem" "$rot/n$i-ca.pem"; done
for i in 1 2 3; do start_node "$i" || exit 1; done
both=$rot/both-ca.pem
cat "$certs/ca.pem" "$other/ca.pem" >"$both"
for i in 1 2 3; do cp "$both" "$rot/n$i-ca.pem"; kill -HUP "${pid[$i]}"; done
for i in 1 2 3; do
  check "8. n$i reloads trusting both CAs" "$(tail -3 "${log[$i]}")" wait_log "$i" "SIGHUP: reloaded"
done
cp "$other/n2.pem" "$certs/n2.pem"
cp "$other/n2.key" "$certs/n2.key"
kill -HUP "${pid[2]}"
check "8. n2 reloads a certificate of the new CA" "$(tail -3 "${log[2]}")" \
  wait_log 2 "SIGHUP: reloaded the certificate (serial $(file_serial "$other/n2.pem"),"
kill -TERM "${pid[1]}"
wait "${pid[1]}"
cp "$other/ca.pem" "$rot/n1-ca.pem"
cp "$other/n1.pem" "$certs/n1.pem"
cp "$other/n1.key" "$certs/n1.key"
start_node 1 || exit 1
export TUNEKV_TLS_CA=$both
check "8. n1, trusting only the new CA, is up for n2 (n2's new channel, new certificate)" \
  "$(peer_state 2 n1)" wait_state 2 up n1
out=$(as "$writer" 2 put default rotated yes -c ALL 2>&1); rc=$?
check "8. an ALL put through n2 is taken (exit $rc)" "$out" test "$rc" = 0
expect_exact "8. ... and is in n1's replica" 0 yes "" \
  env TUNEKV_TLS_CERT="$other/client.pem" TUNEKV_TLS_KEY="$other/client.key" \
  "$KVCTL" -a "${addr[1]}" --token "$reader" get default rotated --local
out=$(as "$writer" 3 put default unrotated no -c ALL 2>&1); rc=$?
check "8. n3, still on the old CA's certificate, cannot reach n1: its ALL put is UNAVAILABLE" \
  "exit $rc: $out" test "$rc" = 3 -a "${out:0:13}" = "UNAVAILABLE: "
for i in 1 2 3; do kill -TERM "${pid[$i]}"; done
rc_all=0
for i in 1 2 3; do wait "${pid[$i]}" || rc_all=1; done
check "8. the three nodes stop cleanly" "exit status" test "$rc_all" = 0
summary
