#!/bin/sh
# meson install step: puts the example configuration in place as
# SYSCONFDIR/dsd/dsd.conf only when there is no such file yet (under
# $DESTDIR when one is given), so that installing again or upgrading never
# replaces what an operator wrote.  The pristine example is always
# installed next to the other documentation (dsd(8), FILES).
#
# usage: install-config.sh EXAMPLE CONF
set -eu

example=$1
conf=$2
target=${DESTDIR:-}$conf

if [ -n "${MESON_INSTALL_DRY_RUN:-}" ]; then
	exit 0
fi
if [ -e "$target" ] || [ -L "$target" ]; then
	[ -n "${MESON_INSTALL_QUIET:-}" ] ||
		echo "Keeping the existing $target (not replaced by the example)"
	exit 0
fi
mkdir -p "$(dirname "$target")"
cp "$example" "$target.new.$$"
chmod 0644 "$target.new.$$"
mv "$target.new.$$" "$target"
[ -n "${MESON_INSTALL_QUIET:-}" ] || echo "Installing the example configuration as $target"
