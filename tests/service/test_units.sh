#!/bin/bash
# The systemd files as systemd itself reads them:
#  - systemd-analyze verify accepts dsd.service and dsd.socket.  It wants
#    the ExecStart= binary to exist, so it checks a copy whose ExecStart=
#    names the dsd just built, and it resolves Documentation=man:... with
#    the man pages just built (MANPATH).  It does not look up User=/Group=
#    (systemd 252), so the dsd user need not exist on the build machine;
#    the user itself is checked by the next step.
#  - systemd-sysusers and systemd-tmpfiles, run on a scratch root, create
#    the dsd user and group and /run/dsd (0750 dsd:dsd) from our entries.
#  - the units agree with each other and with dsd's defaults: the socket
#    path, the runtime directory that must survive a stop, the config path.
#  - the shipped example configuration is accepted by dsd -n.
#
# usage: test_units.sh DSD SERVICE SOCKET SYSUSERS TMPFILES CONF_EXAMPLE MANPAGE...
set -u

if [ $# -lt 6 ]; then
	echo "usage: $0 DSD SERVICE SOCKET SYSUSERS TMPFILES CONF_EXAMPLE MANPAGE..." >&2
	exit 2
fi
dsd=$1 service=$2 socket=$3 sysusers=$4 tmpfiles=$5 example=$6
shift 6
failed=0

fail() {
	echo "FAIL: $*"
	failed=1
}

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool not installed"
		exit 77
	fi
done

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# The value of Key= in a unit file (the last one wins, as in systemd).
unit_get() {
	sed -n "s/^$2=//p" "$1" | tail -n 1
}

# -- systemd-analyze verify --
grep -q '@[a-z]*@' "$service" &&
	fail "$service has unsubstituted @variables@: $(grep '@[a-z]*@' "$service")"
exec_start=$(unit_get "$service" ExecStart)
case $exec_start in
/*/dsd\ -c\ /*/dsd/dsd.conf) ;;
*) fail "unexpected ExecStart=$exec_start" ;;
esac

mkdir -p "$tmp/units" "$tmp/man"
sed "s|^ExecStart=[^ ]*|ExecStart=$(realpath "$dsd")|" "$service" >"$tmp/units/dsd.service"
cp "$socket" "$tmp/units/dsd.socket"
for page in "$@"; do
	mkdir -p "$tmp/man/man${page##*.}"
	cp "$page" "$tmp/man/man${page##*.}/"
done
out=$(cd "$tmp/units" && MANPATH="$tmp/man" MANPAGER=cat \
	systemd-analyze verify ./dsd.service ./dsd.socket 2>&1)
rc=$?
[ $rc -eq 0 ] || fail "systemd-analyze verify exited with $rc"
if [ -n "$out" ]; then
	fail "systemd-analyze verify says:"$'\n'"$out"
elif [ $rc -eq 0 ]; then
	echo "systemd-analyze verify: dsd.service, dsd.socket"
fi

# -- sysusers.d and tmpfiles.d on a scratch root --
root=$tmp/root
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
cp "$sysusers" "$root/usr/lib/sysusers.d/dsd.conf"
cp "$tmpfiles" "$root/usr/lib/tmpfiles.d/dsd.conf"
systemd-sysusers --root="$root" >/dev/null 2>"$tmp/err" ||
	fail "systemd-sysusers failed: $(cat "$tmp/err")"
uid=$(awk -F: '$1 == "dsd" { print $3 }' "$root/etc/passwd" 2>/dev/null)
gid=$(awk -F: '$1 == "dsd" { print $4 }' "$root/etc/passwd" 2>/dev/null)
home=$(awk -F: '$1 == "dsd" { print $6 }' "$root/etc/passwd" 2>/dev/null)
ggid=$(awk -F: '$1 == "dsd" { print $3 }' "$root/etc/group" 2>/dev/null)
[ -n "$uid" ] || fail "sysusers did not create the user dsd"
[ -n "$ggid" ] && [ "$ggid" = "$gid" ] || # both must hold
	fail "sysusers did not make group dsd the user's group ($gid vs $ggid)"
[ "$home" = /var/lib/dsd ] || fail "dsd's home is '$home', not /var/lib/dsd"
systemd-tmpfiles --root="$root" --create >/dev/null 2>"$tmp/err" ||
	fail "systemd-tmpfiles failed: $(cat "$tmp/err")"
st=$(stat -c '%a %u %g' "$root/run/dsd" 2>/dev/null)
[ "$st" = "750 $uid $ggid" ] ||
	fail "/run/dsd from tmpfiles is '$st', want '750 $uid $ggid'"
echo "sysusers.d and tmpfiles.d: user dsd ($uid:$ggid), /run/dsd $st"

# -- the units against each other and against dsd --
listen=$(unit_get "$socket" ListenStream)
[ "$listen" = /run/dsd/dsd.sock ] ||
	fail "dsd.socket listens on '$listen', not on dsd's default socket /run/dsd/dsd.sock"
rundir=$(unit_get "$service" RuntimeDirectory)
[ "/run/$rundir" = "$(dirname "$listen")" ] ||
	fail "RuntimeDirectory=$rundir is not the directory of ListenStream=$listen"
[ "$(unit_get "$service" RuntimeDirectoryPreserve)" = yes ] ||
	fail "without RuntimeDirectoryPreserve=yes, stopping dsd.service deletes the socket dsd.socket listens on"
[ "$(unit_get "$socket" SocketMode)" = 0660 ] || fail "SocketMode is not 0660"
[ "$(unit_get "$socket" SocketGroup)" = dsd ] || fail "SocketGroup is not dsd"
[ "$(unit_get "$service" Type)" = notify ] || fail "Type is not notify"
for kv in User=dsd Group=dsd WorkingDirectory=/ CapabilityBoundingSet= \
	ProtectSystem=strict NoNewPrivileges=yes; do
	[ "$(unit_get "$service" "${kv%%=*}")" = "${kv#*=}" ] ||
		fail "dsd.service lacks $kv"
done
echo "units agree: $listen in /run/$rundir (preserved), mode 0660, group dsd"

# -- the example configuration --
if out=$("$dsd" -n -c "$example" 2>&1); then
	echo "dsd -n accepts $example"
else
	fail "dsd -n refuses $example: $out"
fi

exit $failed
