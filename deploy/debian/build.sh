#!/bin/sh
# build.sh: the tunekv Debian package, with dpkg-deb alone (no debhelper).
#   deploy/debian/build.sh OUTDIR     run from the repository root, with bin/ built
# Lays the package out under OUTDIR/deb/debian/tunekv (the programs stripped, the unit, the
# commented config and /etc/default/tunekv as conffiles, README as its documentation, the
# maintainer scripts of deploy/debian/), takes Depends from dpkg-shlibdeps, builds
# OUTDIR/tunekv_VERSION_ARCH.deb owned by root throughout, points OUTDIR/tunekv.deb at it
# and prints its path. VERSION is DEB_VERSION, else 0.1.0+gitCOUNT.HASH of HEAD; file times
# are HEAD's commit time (SOURCE_DATE_EPOCH), so the same commit gives the same package.
set -eu
umask 022
out=${1:-build}
base_version=0.1.0
if git rev-parse -q --verify HEAD >/dev/null 2>&1; then
  version=${DEB_VERSION:-$base_version+git$(git rev-list --count HEAD).$(git rev-parse --short=8 HEAD)}
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
else
  version=${DEB_VERSION:-$base_version}
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
fi
export SOURCE_DATE_EPOCH
arch=$(dpkg --print-architecture)
stage=$out/deb
pkg=$stage/debian/tunekv
rm -rf "$stage"
for d in DEBIAN usr/bin etc/tunekv etc/default lib/systemd/system usr/share/doc/tunekv; do
  install -d -m 0755 "$pkg/$d"
done
for p in kvnode kvctl kvbench; do install -m 0755 -s "bin/$p" "$pkg/usr/bin/$p"; done
install -m 0644 deploy/tunekv.conf "$pkg/etc/tunekv/tunekv.conf"
install -m 0644 deploy/tunekv.default "$pkg/etc/default/tunekv"
install -m 0644 deploy/tunekv.service "$pkg/lib/systemd/system/tunekv.service"
install -m 0644 README.md "$pkg/usr/share/doc/tunekv/README.md"
for f in postinst prerm postrm; do install -m 0755 "deploy/debian/$f" "$pkg/DEBIAN/$f"; done
install -m 0644 deploy/debian/conffiles "$pkg/DEBIAN/conffiles"

# dpkg-shlibdeps reads debian/control for the package's name; a stub will do.
printf 'Source: tunekv\n\nPackage: tunekv\nArchitecture: any\n' >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O debian/tunekv/usr/bin/kvnode \
  debian/tunekv/usr/bin/kvctl debian/tunekv/usr/bin/kvbench | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
  -e "s|@DEPENDS@|$depends|" deploy/debian/control.in >"$pkg/DEBIAN/control"
(cd "$pkg" && find . -type f ! -path './DEBIAN/*' | sed 's|^\./||' | LC_ALL=C sort |
  xargs md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"

deb=$out/tunekv_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
ln -sf "$(basename "$deb")" "$out/tunekv.deb"
echo "$deb"
