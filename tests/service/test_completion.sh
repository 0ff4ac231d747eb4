#!/bin/bash
# dsctl's bash completion (tools/dsctl.bash-completion), run by bash as
# completion would: commands, each command's options (checked against the
# options `dsctl COMMAND --help` documents, so the two cannot drift apart),
# file names after -f and -s, command names after help.
#
# usage: test_completion.sh COMPLETION_FILE DSCTL
set -u
comp=$1 dsctl=$2
failed=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=/dev/null
source "$comp" || { echo "FAIL: $comp does not load"; exit 1; }
complete -p dsctl >/dev/null 2>&1 || { echo "FAIL: no completion registered for dsctl"; exit 1; }

# Words (blank or newline separated) sorted, on one line.
norm() {
	tr ' ' '\n' | grep -v '^$' | LC_ALL=C sort -u | paste -sd' ' -
}

# The words offered for a command line (the cursor at its end), sorted.
offered() {
	local line=$1
	read -ra COMP_WORDS <<<"$line"
	[[ $line == *' ' ]] && COMP_WORDS+=('')
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE=$line
	COMP_POINT=${#line}
	_dsctl
	printf '%s\n' "${COMPREPLY[@]}" | norm
}

expect() {
	local line=$1 want=$2 got
	got=$(offered "$line")
	if [[ $got != "$want" ]]; then
		echo "FAIL: '$line' offers '$got', want '$want'"
		failed=1
	fi
}

# The commands `dsctl --help` lists (a new command needs its completion).
commands=$("$dsctl" --help | awk '/^Commands:/ { c = 1; next } /^$/ { c = 0 } c && /^  [a-z]/ { print $1 }' | norm)
[[ $commands == *emit*status* ]] || { echo "FAIL: no commands in dsctl --help: '$commands'"; exit 1; }
expect 'dsctl ' "$commands"
expect 'dsctl -s /x ' "$commands"
expect 'dsctl st' 'status'
expect 'dsctl re' 'reload resume'
expect 'dsctl -s /run/dsd/dsd.sock su' 'subscribe'
expect 'dsctl -' '--help --socket --version -V -h -s'
expect 'dsctl help su' 'subscribe'
expect 'dsctl subscribe -n ' ''
expect 'dsctl emit news ' ''
: >"$tmp/data.json"
expect "dsctl emit -f $tmp/da" "$tmp/data.json"
expect "dsctl -s $tmp/da" "$tmp/data.json"

# Each command's options: what its --help documents, nothing more or less.
for cmd in $commands; do
	[ "$cmd" = help ] && continue
	documented=$({
		"$dsctl" "$cmd" --help |
			sed -n 's/^ *\(-[a-z]\), \(--[a-z-]*\).*/\1 \2/p; s/^ *\(--[a-z-]*\) .*/\1/p'
		echo --help
	} | norm)
	expect "dsctl $cmd -" "$documented"
done

[ $failed = 0 ] && echo "dsctl completion: commands, options of every command, files"
exit $failed
