#!/bin/bash
# The man pages against the code:
#  - every key the config parser accepts (config_keys(), printed by the
#    helper) is a definition term in its section of dsd.conf(5), and every
#    term documented there is a key the parser accepts;
#  - every built man page renders with man(1) and groff(1) without a
#    single warning.
#
# usage: test_man_keys.sh KEYS_HELPER DSD_CONF_5_SCD MANPAGE...
set -u

if [ $# -lt 3 ]; then
	echo "usage: $0 KEYS_HELPER DSD_CONF_5_SCD MANPAGE..." >&2
	exit 2
fi
helper=$1
scd=$2
shift 2
failed=0

fail() {
	echo "FAIL: $*"
	failed=1
}

keys=$("$helper") || {
	echo "FAIL: $helper did not run"
	exit 1
}
nkeys=$(printf '%s\n' "$keys" | grep -c .)
if [ "$nkeys" -lt 1 ]; then
	echo "FAIL: $helper printed no keys"
	exit 1
fi

# The terms of dsd.conf(5): "*key* ..." at the start of a line, listed as
# "section.key" by the "# [section]" heading above them.
documented=$(awk '
	/^# / {
		sec = ""
		if (match($0, /^# \[[A-Za-z]+\]$/))
			sec = substr($0, 4, length($0) - 4)
		next
	}
	sec != "" && match($0, /^\*[A-Za-z]+\*/) {
		print sec "." substr($0, 2, RLENGTH - 2)
	}' "$scd")

for k in $keys; do
	printf '%s\n' "$documented" | grep -qxF "$k" ||
		fail "config key $k is accepted by the parser but not documented in the [${k%%.*}] section of $scd"
done
for k in $documented; do
	printf '%s\n' "$keys" | grep -qxF "$k" ||
		fail "$scd documents $k, which the parser does not accept"
done
echo "checked $nkeys config keys against $scd"

export MANPAGER=cat PAGER=cat LC_ALL=C.UTF-8
for page in "$@"; do
	if [ ! -s "$page" ]; then
		fail "$page is missing or empty"
		continue
	fi
	# man(1) writes its warnings to stderr; the page itself is discarded.
	out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$out" ] || fail "man -l $page warns:"$'\n'"$out"
	out=$(groff -ww -z -man "$page" 2>&1)
	[ -z "$out" ] || fail "groff -ww -man $page warns:"$'\n'"$out"
	MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q '^NAME' ||
		fail "$page renders without a NAME section"
	echo "rendered $page"
done

exit $failed
