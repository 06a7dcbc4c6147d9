#!/bin/bash
# debootstrap.sh PACKAGE_LIST OUT_TARBALL
# A minbase bookworm tree with the listed packages, packed as a tarball so that a change
# of the configuration scripts does not download everything again.
set -euo pipefail
list=$1; out=$2
mirror=${SANLESS_LAB_MIRROR:-$(awk '/^URIs:/{print $2; exit} /^deb /{print $2; exit}' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1)}
[ -n "$mirror" ] || { echo "no Debian mirror found in apt sources; set SANLESS_LAB_MIRROR" >&2; exit 1; }
pkgs=$(grep -v '^#' "$list" | grep -v '^$' | paste -sd, -)
tree=$(mktemp -d "${out}.tree.XXXXXX")
trap 'rm -rf "$tree"' EXIT
debootstrap --variant=minbase --include="$pkgs" bookworm "$tree" "$mirror"
chroot "$tree" apt-get clean
tar -C "$tree" --numeric-owner -czf "$out.partial" .
mv "$out.partial" "$out"
