#!/usr/bin/env bash
# certs.sh: a CA and certificates for the nodes of a cluster config, with the openssl CLI.
#   deploy/certs.sh CONFIG OUTDIR [NAME...]
# Writes into OUTDIR (made if missing; keys mode 600):
#   ca.pem, ca.key          the CA (kept when OUTDIR already has one, so a second run renews
#                           certificates under the same CA; delete them for a new CA)
#   ID.pem, ID.key          per node of CONFIG: subjectAltName DNS:ID (the name peers check)
#                           plus the host of its address (IP:127.0.0.1, or DNS:host), for
#                           server and client use
#   client.pem, client.key  a client certificate (SAN DNS:client; it names no node) for
#                           kvctl and kvbench
# With NAMEs (node ids, or "client") only those are (re)issued: a renewal, e.g. before a
# SIGHUP. Each new certificate has a fresh random serial. Keys are EC P-256, certificates SHA-256;
# the CA lives 10 years, the others DAYS days (default 825).
# Use the files with a tls section such as
#   tls: { cert: "OUTDIR/{node}.pem", key: "OUTDIR/{node}.key", ca: "OUTDIR/ca.pem" }
set -eu
[ $# -ge 2 ] || { echo "usage: deploy/certs.sh CONFIG OUTDIR [NAME...]" >&2; exit 2; }
config=$1 out=$2
shift 2
[ -r "$config" ] || { echo "certs.sh: cannot read $config" >&2; exit 2; }
command -v openssl >/dev/null || { echo "certs.sh: openssl is not installed" >&2; exit 2; }
days=${DAYS:-825}

# "ID HOST" per node, from the config's nodes list (the YAML read by python3's yaml module).
nodes=$(python3 - "$config" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1])) or {}
for n in doc.get("nodes") or []:
    host = str(n["address"]).rsplit(":", 1)[0].strip("[]")
    print(n["id"], host)
PY
) || { echo "certs.sh: cannot read the nodes of $config" >&2; exit 2; }
[ -n "$nodes" ] || { echo "certs.sh: $config has no nodes" >&2; exit 2; }

mkdir -p "$out"
umask 077
if [ ! -s "$out/ca.pem" ] || [ ! -s "$out/ca.key" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -days 3650 -subj "/CN=tunekv CA $(basename "$out")" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$out/ca.key" -out "$out/ca.pem" 2>/dev/null
  echo "certs.sh: made the CA $out/ca.pem"
fi

# issue NAME SAN USAGE: NAME.pem and NAME.key, signed by the CA. Written next to their final
# names and then moved, so a node reading them on SIGHUP never sees half a file.
issue() {
  local name=$1 san=$2 usage=$3 ext
  ext=$(mktemp)
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' \
    "$san" "$usage" >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$out/.$name.key" -out "$out/.$name.csr" 2>/dev/null
  openssl x509 -req -in "$out/.$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 -extfile "$ext" \
    -out "$out/.$name.pem" 2>/dev/null
  rm -f "$ext" "$out/.$name.csr"
  mv -f "$out/.$name.key" "$out/$name.key"
  mv -f "$out/.$name.pem" "$out/$name.pem"
  echo "certs.sh: $out/$name.pem ($san; $(openssl x509 -in "$out/$name.pem" -noout -serial))"
}

wanted() { [ ${#names[@]} -eq 0 ] && return 0; local w; for w in "${names[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
names=("$@")
while read -r id host; do
  wanted "$id" || continue
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san="DNS:$id,IP:$host"
  elif [ "$host" = "$id" ]; then san="DNS:$id"
  else san="DNS:$id,DNS:$host"; fi
  issue "$id" "$san" serverAuth,clientAuth
done <<<"$nodes"
if [ ${#names[@]} -eq 0 ] || wanted client; then issue client DNS:client clientAuth; fi
