#!/bin/bash
# make-busybox-initrd.sh ROOTFS OUT: the test domU's initramfs from the dom0 rootfs's own
# busybox and xen-blkfront (same kernel as the domU boots).
set -euo pipefail
root=$1; out=$2
here=$(cd "$(dirname "$0")" && pwd)
kver=$(ls "$root/lib/modules" | sort -V | tail -n1)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,lib/modules,lib64,lib/x86_64-linux-gnu,tmp}
cp "$root/bin/busybox" "$work/bin/busybox"
# busybox in Debian is dynamically linked against libc only
for lib in $(chroot "$root" ldd /bin/busybox | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  cp -L "$root$lib" "$work$lib"
done
ko=$(find "$root/lib/modules/$kver" -name 'xen-blkfront.ko*' | head -n1)
case "$ko" in
  *.xz) xz -dc "$ko" > "$work/lib/modules/xen-blkfront.ko" ;;
  *.zst) zstd -qdc "$ko" > "$work/lib/modules/xen-blkfront.ko" ;;
  *) cp "$ko" "$work/lib/modules/xen-blkfront.ko" ;;
esac
install -m 755 "$here/busybox-init.sh" "$work/init"
(cd "$work" && find . | cpio -o -H newc --quiet | gzip -9) > "$out"
