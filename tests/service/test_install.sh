#!/usr/bin/env bash
# `meson install` into a staging DESTDIR puts everything where a Debian
# admin looks for it: binaries, library with soname, header, pkg-config
# file, units, sysusers/tmpfiles entries, man pages, example config, bash
# completion.  Then, on that staged tree:
#  - an operator's dsd.conf survives installing again (an upgrade), and a
#    dsd.conf that was there before the first install is never replaced;
#  - one version everywhere: pkg-config, the header's macros, the library
#    (its file name, the version it announces to dsd, dsipc_version() when
#    it has one), dsd --version, dsctl --version and the Python package's
#    pyproject.toml;
#  - systemd-analyze verify accepts the installed units, run against the
#    staged dsd (skipped, with the reason printed, where it cannot run);
#  - the README's C example builds the way the README says, against the
#    installed .pc file and, before any install, the uninstalled one.
# Usage: test_install.sh BUILD_ROOT CONF_EXAMPLE README CC...
set -euo pipefail
build=$1
example=$2
readme=$3
shift 3
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

meson install -C "$build" --destdir "$stage" --no-rebuild --quiet >/dev/null
option() {
	meson introspect "$build" --buildoptions |
		python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))' "$1"
}
prefix=$(option prefix)
sysconfdir=$(option sysconfdir)
case $sysconfdir in
/*) ;;
*) sysconfdir=$prefix/$sysconfdir ;;
esac
conf=$stage$sysconfdir/dsd/dsd.conf

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
want "version header" "./${prefix#/}/include/dsipc-version.h"
want "bash completion for dsctl" "./${prefix#/}/share/bash-completion/completions/dsctl"

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

# -- the configuration survives installing again --
if cmp -s "$example" "$conf"; then
	echo "first install: $sysconfdir/dsd/dsd.conf is the example"
else
	echo "first install: $sysconfdir/dsd/dsd.conf is not the example"
	fail=1
fi
printf '\n# an operator was here\n[queue]\nmaxMessages = 1234\n' >>"$conf"
cp "$conf" "$stage/operator.conf"
meson install -C "$build" --destdir "$stage" --no-rebuild --quiet >/dev/null
if cmp -s "$stage/operator.conf" "$conf"; then
	echo "second install: the operator's dsd.conf is kept"
else
	echo "second install replaced the operator's dsd.conf:"
	diff "$stage/operator.conf" "$conf" || true
	fail=1
fi
cmp -s "$example" "$stage/${prefix#/}/share/doc/dsd/dsd.conf.example" ||
	{ echo "the installed example is not the pristine example"; fail=1; }
# A dsd.conf that exists before the very first install (another package,
# a configuration management tool) is not replaced either.
stage2=$stage/pre
mkdir -p "$stage2$sysconfdir/dsd"
echo '# written before dsd was installed' >"$stage2$sysconfdir/dsd/dsd.conf"
meson install -C "$build" --destdir "$stage2" --no-rebuild --quiet >/dev/null
if [ "$(cat "$stage2$sysconfdir/dsd/dsd.conf")" = '# written before dsd was installed' ]; then
	echo "first install over an existing dsd.conf: kept"
else
	echo "the first install replaced an existing dsd.conf"
	fail=1
fi

# -- one version everywhere --
project=$(meson introspect "$build" --projectinfo |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
libdir=$(dirname "$stage/$lib")
pcdir=$(cd "$stage" && find . -name libdsipc.pc -printf '%h\n' | head -1)
versions=("project (meson.build): $project")
check_version() { # what, version
	versions+=("$1: $2")
	if [ "$2" != "$project" ]; then
		echo "version mismatch: $1 says '$2', the project '$project'"
		fail=1
	fi
}
export PKG_CONFIG_PATH=$stage/$pcdir PKG_CONFIG_SYSROOT_DIR=$stage
check_version "pkg-config --modversion libdsipc" "$(pkg-config --modversion libdsipc)"
cat >"$stage/v.c" <<'EOF_C'
#include <stdio.h>
#include <dsipc.h>
int main(void)
{
	printf("%d.%d.%d\n", DSIPC_VERSION_MAJOR, DSIPC_VERSION_MINOR,
	       DSIPC_VERSION_PATCH);
	return 0;
}
EOF_C
# shellcheck disable=SC2046 # pkg-config's words are meant to split
if "$@" -o "$stage/v" "$stage/v.c" $(pkg-config --cflags --libs libdsipc) 2>"$stage/err"; then
	check_version "the header's DSIPC_VERSION_*" "$(LD_LIBRARY_PATH=$libdir "$stage/v")"
else
	echo "cannot build against the installed header and .pc:"
	cat "$stage/err"
	fail=1
fi
real=$(basename "$(realpath "$stage/$lib")")
check_version "the library's file name ($real)" "${real#libdsipc.so.}"
hello=$(grep -ao 'libdsipc/[0-9][0-9.]*[0-9]' "$stage/$lib" | head -1)
check_version "the version the library announces to dsd ($hello)" "${hello#libdsipc/}"
# dsipc_version(), where the library has one: a string, or a number in
# DSIPC_VERSION's form (major * 10000 + minor * 100 + patch).
if nm -D --defined-only "$stage/$lib" | grep -qw dsipc_version; then
	cat >"$stage/rv.c" <<'EOF_C'
#include <stdio.h>
#include <dsipc.h>
static void show_s(const char *s) { puts(s); }
static void show_n(long long n)
{
	printf("%lld.%lld.%lld\n", n / 10000, n / 100 % 100, n % 100);
}
#define SHOW(x) _Generic((x), const char *: show_s, char *: show_s, default: show_n)(x)
int main(void)
{
	SHOW(dsipc_version());
	return 0;
}
EOF_C
	# shellcheck disable=SC2046
	if "$@" -o "$stage/rv" "$stage/rv.c" $(pkg-config --cflags --libs libdsipc) 2>"$stage/err"; then
		check_version "dsipc_version()" "$(LD_LIBRARY_PATH=$libdir "$stage/rv")"
	else
		echo "dsipc_version() exists but this test cannot call it (update it):"
		cat "$stage/err"
		fail=1
	fi
else
	versions+=("dsipc_version(): not in this library")
fi
# The README's example, with the README's pkg-config line: installed, and
# from the build tree (PKG_CONFIG_PATH=build/meson-uninstalled).
awk '/^```c$/ { e = 1; next } e && /^```$/ { exit } e { print }' "$readme" >"$stage/app.c"
grep -q dsipc_connect "$stage/app.c" || { echo "no C example found in $readme"; fail=1; }
# shellcheck disable=SC2046
"$@" -o "$stage/app" "$stage/app.c" $(pkg-config --cflags --libs libdsipc) 2>"$stage/err" ||
	{ echo "the README's example does not build against the installed tree:"; cat "$stage/err"; fail=1; }
# shellcheck disable=SC2046
if (unset PKG_CONFIG_SYSROOT_DIR
	export PKG_CONFIG_PATH=$build/meson-uninstalled
	"$@" -o "$stage/app-uninstalled" "$stage/app.c" $(pkg-config --cflags --libs libdsipc)) 2>"$stage/err"; then
	echo "the README's example builds against the installed and the uninstalled tree"
else
	echo "the README's example does not build against the uninstalled tree:"
	cat "$stage/err"
	fail=1
fi
check_version "dsd --version" "$("$stage/${prefix#/}/sbin/dsd" --version | sed 's/^dsd //')"
check_version "dsctl --version" "$(LD_LIBRARY_PATH=$libdir "$stage/${prefix#/}/bin/dsctl" --version | sed 's/^dsctl //')"
# The Python package is versioned by hand in its pyproject.toml.
check_version "python/pyproject.toml" "$(sed -n 's/^version = "\(.*\)"$/\1/p' "$(dirname "$readme")/python/pyproject.toml")"
printf '  %s\n' "${versions[@]}"

# -- the installed units, as systemd reads them --
if ! command -v systemd-analyze >/dev/null; then
	echo "SKIPPED: systemd-analyze verify of the installed units (systemd-analyze is not installed)"
else
	# verify wants ExecStart='s binary at its path: a copy of each unit
	# names the staged dsd and config instead; man pages come from the
	# stage.
	mkdir -p "$stage/verify"
	for u in dsd.service dsd.socket; do
		f=$(cd "$stage" && find . -path "*/systemd/system/$u" | head -1)
		sed -e "s|^ExecStart=$prefix/sbin/dsd -c $sysconfdir/|ExecStart=$stage/${prefix#/}/sbin/dsd -c $stage$sysconfdir/|" \
			"$stage/$f" >"$stage/verify/$u"
	done
	grep -q "^ExecStart=$stage/" "$stage/verify/dsd.service" ||
		{ echo "the installed dsd.service does not run $prefix/sbin/dsd -c $sysconfdir/dsd/dsd.conf"; fail=1; }
	if out=$(cd "$stage/verify" && MANPATH="$stage/${prefix#/}/share/man" MANPAGER=cat \
		systemd-analyze verify ./dsd.service ./dsd.socket 2>&1) && [ -z "$out" ]; then
		echo "systemd-analyze verify: the installed dsd.service and dsd.socket"
	elif [[ $out == *"System has not been booted with systemd"* || $out == *"Failed to connect to bus"* ]]; then
		echo "SKIPPED: systemd-analyze verify cannot run here: $out"
	else
		echo "systemd-analyze verify refuses the installed units:"
		echo "$out"
		fail=1
	fi
	# The staged dsd accepts the configuration that was installed.
	"$stage/${prefix#/}/sbin/dsd" -n -c "$conf" >/dev/null ||
		{ echo "the installed dsd refuses the installed dsd.conf"; fail=1; }
fi

exit "$fail"
