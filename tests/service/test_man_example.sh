#!/bin/bash
# libdsipc(3) against the library:
#  - every function the version script exports is documented ("*name*(");
#  - the example program compiles without warnings and links against the
#    library just built, so the page cannot drift from dsipc.h; run against
#    a socket nobody listens on, it must fail cleanly (exit 1, "cannot reach
#    dsd").
#
# usage: test_man_example.sh LIBDSIPC_3_SCD INCLUDE_DIRS LIBDSIPC_SO SYMFILE CC...
# (INCLUDE_DIRS: the header directories, separated by ':', the generated
# dsipc-version.h being in the build tree)
set -u

if [ $# -lt 5 ]; then
	echo "usage: $0 LIBDSIPC_3_SCD INCLUDE_DIR LIBDSIPC_SO SYMFILE CC..." >&2
	exit 2
fi
scd=$1 inc=$2 lib=$3 sym=$4
shift 4

exported=$(sed -n 's/^[[:space:]]*\(dsipc_[a-z0-9_]*\);.*/\1/p' "$sym")
if [ -z "$exported" ]; then
	echo "FAIL: no exported dsipc_ functions found in $sym"
	exit 1
fi
missing=0
for f in $exported; do
	if ! grep -qF "*$f*(" "$scd"; then
		echo "FAIL: $f is exported ($sym) but not documented in $scd"
		missing=1
	fi
done
[ $missing -eq 0 ] || exit 1
echo "all $(echo "$exported" | wc -w) exported functions are documented"

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# The first ``` block after "# EXAMPLES"; scdoc turns "\\" into "\".
awk '/^# EXAMPLES/ { e = 1 }
     e && /^```$/ { n++; next }
     e && n == 1 { print }' "$scd" | sed 's/\\\\/\\/g' >"$tmp/example.c"
if ! grep -q 'dsipc_connect' "$tmp/example.c"; then
	echo "FAIL: no example program found under EXAMPLES in $scd"
	exit 1
fi

libdir=$(dirname "$(realpath "$lib")")
incs=()
IFS=: read -ra dirs <<<"$inc"
for d in "${dirs[@]}"; do incs+=("-I$d"); done
if ! "$@" -std=gnu11 -Wall -Wextra -Werror "${incs[@]}" -o "$tmp/example" \
	"$tmp/example.c" -L"$libdir" -ldsipc 2>"$tmp/err"; then
	echo "FAIL: the example of $scd does not build:"
	cat "$tmp/err"
	exit 1
fi
echo "the example of $scd builds"

out=$(LD_LIBRARY_PATH=$libdir DSD_SOCKET=$tmp/none.sock timeout 10 "$tmp/example" 2>&1)
rc=$?
if [ $rc -ne 1 ] || [[ $out != *"cannot reach dsd"* ]]; then
	echo "FAIL: without dsd the example exited $rc saying: $out"
	exit 1
fi
echo "without dsd it fails cleanly: $out"
