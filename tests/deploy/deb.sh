#!/usr/bin/env bash
# deb.sh: the Debian package of `make deb`, built and installed into a scratch root, never
# into this system: dpkg --root DIR --force-script-chrootless runs the maintainer scripts
# with DPKG_ROOT=DIR (postinst then makes the user with useradd --prefix DIR). The scratch
# root's dpkg database holds this system's entries for the package's dependencies only, so
# dpkg checks Depends against the versions installed here without --force-depends.
# Checks the package's fields and file list (owners and modes), the installed files, the
# tunekv user and /var/lib/tunekv, that the installed kvnode accepts the installed config,
# `systemd-analyze verify` on the unit (exit 0 and not a word of warning), the unit's
# settings, a reinstall (keeps an edited conffile, makes no second user), remove and purge,
# and that this system's passwd and group are untouched. Prints one line per test and ends
# with "N passed, N failed".
. "$(dirname "$0")/../integration/lib.sh"
R=$work/root

deb=$(make --no-print-directory -s deb 2>"$work/make.err" | tail -1)
if [ ! -f "$deb" ]; then
  echo "make deb failed: $(tail -5 "$work/make.err")"
  exit 1
fi
ok "make deb builds $(basename "$deb")"
host_sums=$(md5sum /etc/passwd /etc/group)

# ---- the package itself -----------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
check "Package is tunekv, Architecture is this machine's" "$(field Package) $(field Architecture)" \
  [ "$(field Package) $(field Architecture)" = "tunekv $(dpkg --print-architecture)" ]
depends=$(field Depends)
for lib in libgrpc29 librocksdb7.8 libprotobuf-c1 libcyaml1 libmicrohttpd12 adduser; do
  check "Depends names $lib" "Depends: $depends" grep -q "\b$lib\b" <<<"$depends"
done
expect_exact "conffiles: the config and /etc/default/tunekv" 0 "/etc/tunekv/tunekv.conf
/etc/default/tunekv" "" dpkg-deb -I "$deb" conffiles
expect_exact "contents: these files, owned by root, with these modes" 0 "drwxr-xr-x root/root ./
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/default/
-rw-r--r-- root/root ./etc/default/tunekv
drwxr-xr-x root/root ./etc/tunekv/
-rw-r--r-- root/root ./etc/tunekv/tunekv.conf
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/tunekv.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/kvbench
-rwxr-xr-x root/root ./usr/bin/kvctl
-rwxr-xr-x root/root ./usr/bin/kvnode
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/tunekv/
-rw-r--r-- root/root ./usr/share/doc/tunekv/README.md" "" \
  bash -c "dpkg-deb -c '$deb' | awk '{ print \$1, \$2, \$6 }'"
expect_exact "control: the maintainer scripts are executable" 0 "-rwxr-xr-x ./postinst
-rwxr-xr-x ./postrm
-rwxr-xr-x ./prerm" "" \
  bash -c "dpkg-deb --ctrl-tarfile '$deb' | tar -tvf - | awk '/(postinst|prerm|postrm)\$/ { print \$1, \$6 }' | sort -k2"

# ---- a scratch root ------------------------------------------------------------------------
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
: >"$R/etc/shadow"
: >"$R/etc/gshadow"
# This system's records of the packages tunekv depends on (their own dependencies dropped).
for p in $(sed 's/([^)]*)//g; s/|[^,]*//g; s/,/ /g' <<<"$depends"); do
  name=$(dpkg-query -W -f='${binary:Package}' "$p" 2>/dev/null) || continue
  dpkg-query -s "$p" | grep -vE '^(Pre-Depends|Depends|Recommends|Suggests|Breaks|Conflicts):'
  echo
  : >"$R/var/lib/dpkg/info/$name.list"
done >"$R/var/lib/dpkg/status"
# The systemd units the unit refers to (targets), for systemd-analyze verify --root.
mkdir -p "$R/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/"

dpkg_root() { dpkg --root="$R" --force-not-root --force-script-chrootless --log=/dev/null "$@"; }
expect "dpkg -i into the scratch root (Depends met by this system's packages)" 0 \
  "Setting up tunekv" dpkg_root -i "$deb"
expect "dpkg says it is installed" 0 "Status: install ok installed" dpkg --root="$R" -s tunekv

# ---- what it installed -------------------------------------------------------------------
tk_uid=$(awk -F: '$1 == "tunekv" { print $3 }' "$R/etc/passwd")
tk_gid=$(awk -F: '$1 == "tunekv" { print $3 }' "$R/etc/group")
expect_exact "postinst made a system user tunekv: its own group, no login, home the data" 0 \
  "tunekv:x:$tk_uid:$tk_gid:tunekv key-value store:/var/lib/tunekv:/usr/sbin/nologin" "" \
  grep '^tunekv:' "$R/etc/passwd"
check "the user is a system one (uid below 1000)" "uid '$tk_uid'" [ -n "$tk_uid" -a "${tk_uid:-1000}" -lt 1000 ]
# stat_of PATH: "MODE UID:GID" of the installed file (tunekv's ids shown by name).
stat_of() { stat -c '%a %u:%g' "$R$1" | sed "s/ $tk_uid:$tk_gid\$/ tunekv:tunekv/"; }
for want in "/usr/bin/kvnode 755 0:0" "/usr/bin/kvctl 755 0:0" "/usr/bin/kvbench 755 0:0" \
    "/etc/tunekv 755 0:0" "/etc/tunekv/tunekv.conf 644 0:0" "/etc/default/tunekv 644 0:0" \
    "/lib/systemd/system/tunekv.service 644 0:0" "/usr/share/doc/tunekv/README.md 644 0:0" \
    "/var/lib/tunekv 750 tunekv:tunekv"; do
  path=${want%% *}
  expect_exact "installed: $want" 0 "${want#* }" "" stat_of "$path"
done
expect_exact "the installed kvnode accepts the installed config" 0 \
  "kvnode: $R/etc/tunekv/tunekv.conf: ok: cluster tunekv, 1 node(s) in 1 region(s), 1 keyspace(s), 256 partitions; node n1 at 127.0.0.1:7001" "" \
  "$R/usr/bin/kvnode" --check-config "$R/etc/tunekv/tunekv.conf" --node n1
expect "the installed kvctl runs" 0 "usage: kvctl" "$R/usr/bin/kvctl" -h
check "/etc/default/tunekv names node n1" "$(cat "$R/etc/default/tunekv")" grep -qx 'TUNEKV_NODE=n1' "$R/etc/default/tunekv"

# ---- the unit ------------------------------------------------------------------------------
expect_exact "systemd-analyze verify: the unit passes with no warning" 0 "" "" \
  systemd-analyze verify --root="$R" --man=no tunekv.service
unit=$R/lib/systemd/system/tunekv.service
for line in Type=notify Restart=on-failure RestartPreventExitStatus=2 User=tunekv \
    ProtectSystem=strict ReadWritePaths=/var/lib/tunekv NoNewPrivileges=yes \
    LimitNOFILE=65536 TimeoutStopSec=30s EnvironmentFile=-/etc/default/tunekv \
    "ExecStart=/usr/bin/kvnode --config /etc/tunekv/tunekv.conf --node \${TUNEKV_NODE} --data-dir /var/lib/tunekv \$TUNEKV_OPTS"; do
  check "unit: $line" "not in $unit" grep -qxF "$line" "$unit"
done

# ---- reinstall, remove, purge --------------------------------------------------------------
echo "# edited by the operator" >>"$R/etc/tunekv/tunekv.conf"
expect "reinstall" 0 "Setting up tunekv" dpkg_root -i "$deb"
check "a reinstall keeps an edited conffile" "$(tail -1 "$R/etc/tunekv/tunekv.conf")" \
  grep -qx "# edited by the operator" "$R/etc/tunekv/tunekv.conf"
expect_exact "a reinstall makes no second user or group" 0 "1 1" "" \
  bash -c "echo \$(grep -c '^tunekv:' '$R/etc/passwd') \$(grep -c '^tunekv:' '$R/etc/group')"
touch "$R/var/lib/tunekv/CURRENT"
expect "dpkg -r removes it" 0 "Removing tunekv" dpkg_root -r tunekv
check "remove: the programs and the unit are gone" "$(ls "$R/usr/bin" "$R/lib/systemd/system" 2>&1)" \
  [ ! -e "$R/usr/bin/kvnode" -a ! -e "$R/lib/systemd/system/tunekv.service" ]
check "remove: the conffiles and the data stay" "$(ls -a "$R/etc/tunekv" "$R/var/lib/tunekv" 2>&1)" \
  [ -f "$R/etc/tunekv/tunekv.conf" -a -f "$R/var/lib/tunekv/CURRENT" ]
expect "dpkg -P purges it" 0 "Purging configuration files for tunekv" dpkg_root -P tunekv
check "purge: the conffiles are gone" "$(ls -a "$R/etc/tunekv" "$R/etc/default" 2>&1)" \
  [ ! -e "$R/etc/tunekv/tunekv.conf" -a ! -e "$R/etc/default/tunekv" ]
check "purge: the data and the user are kept (not the package's to delete)" \
  "$(ls -a "$R/var/lib/tunekv" 2>&1); $(grep tunekv "$R/etc/passwd")" \
  bash -c "[ -f '$R/var/lib/tunekv/CURRENT' ] && grep -q '^tunekv:' '$R/etc/passwd'"
check "this system's passwd and group are untouched" "they changed" \
  [ "$host_sums" = "$(md5sum /etc/passwd /etc/group)" ]
summary
