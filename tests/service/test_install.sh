#!/usr/bin/env bash
# `meson install` into a staging DESTDIR puts everything where a Debian
# admin looks for it: binaries, library with soname, header, pkg-config
# file, units, sysusers/tmpfiles entries, man pages, example config.
# Usage: test_install.sh BUILD_ROOT
set -euo pipefail
build=$1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

meson install -C "$build" --destdir "$stage" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
	python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')

fail=0
want() {
	local what=$1 pattern=$2
	if ! (cd "$stage" && find . -path "$pattern" | grep -q .); then
		echo "missing from the install: $what ($pattern)"
		fail=1
	fi
}
want "dsd binary" "./${prefix#/}/sbin/dsd"
want "dsctl binary" "./${prefix#/}/bin/dsctl"
want "shared library with soname" "*/lib*/libdsipc.so.1"
want "development symlink" "*/lib*/libdsipc.so"
want "public header" "./${prefix#/}/include/dsipc.h"
want "libevent adapter header" "./${prefix#/}/include/dsipc-libevent.h"
want "pkg-config file" "*/pkgconfig/libdsipc.pc"
want "service unit" "*/systemd/system/dsd.service"
want "socket unit" "*/systemd/system/dsd.socket"
want "sysusers entry" "*/sysusers.d/dsd.conf"
want "tmpfiles entry" "*/tmpfiles.d/dsd.conf"
want "dsd(8)" "*/man8/dsd.8*"
want "dsctl(1)" "*/man1/dsctl.1*"
want "dsd.conf(5)" "*/man5/dsd.conf.5*"
want "libdsipc(3)" "*/man3/libdsipc.3*"
want "configuration file" "*/dsd/dsd.conf"
want "example configuration" "*/doc/dsd/dsd.conf.example"

# The library exports the API and nothing else.
lib=$(cd "$stage" && find . -name 'libdsipc.so.1' | head -1)
if [ -n "$lib" ]; then
	bad=$(nm -D --defined-only "$stage/$lib" | awk '$2 ~ /^[TDBR]$/ && $3 !~ /^dsipc_/ {print $3}')
	if [ -n "$bad" ]; then
		echo "libdsipc exports symbols outside the API: $bad"
		fail=1
	fi
	soname=$(objdump -p "$stage/$lib" | awk '/SONAME/ {print $2}')
	[ "$soname" = "libdsipc.so.1" ] || { echo "soname is '$soname'"; fail=1; }
fi
# The installed unit runs the installed binary.
unit=$(cd "$stage" && find . -name dsd.service | head -1)
grep -q "^ExecStart=$prefix/sbin/dsd " "$stage/$unit" || { echo "ExecStart does not point at $prefix/sbin/dsd"; fail=1; }

[ "$fail" = 0 ] && echo "install into DESTDIR: complete"
exit "$fail"
