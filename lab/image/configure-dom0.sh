#!/bin/bash
# configure-dom0.sh ROOT KEYDIR: turn a debootstrapped tree into the lab dom0 image tree.
# Identity (hostname, address, ssh host keys, iSCSI initiator name, machine-id) is made at
# first boot from the kernel command line, so every host boots from one read-only base.
set -euo pipefail
root=$1; keydir=$2
here=$(cd "$(dirname "$0")" && pwd)
kver=$(ls "$root/lib/modules" | sort -V | tail -n1)

# root ssh: the controller and every host share one lab key (xl migrate runs over ssh)
install -d -m 700 "$root/root/.ssh"
install -m 600 "$keydir/id_ed25519" "$root/root/.ssh/id_ed25519"
install -m 644 "$keydir/id_ed25519.pub" "$root/root/.ssh/id_ed25519.pub"
install -m 600 "$keydir/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
cat > "$root/root/.ssh/config" <<'CFG'
Host *
  StrictHostKeyChecking accept-new
  UserKnownHostsFile /root/.ssh/known_hosts
  LogLevel ERROR
CFG
chmod 600 "$root/root/.ssh/config"
rm -f "$root"/etc/ssh/ssh_host_*
echo 'root:sanless' | chroot "$root" chpasswd

echo "/dev/vda / ext4 defaults,noatime 0 1" > "$root/etc/fstab"
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
{
  echo "127.0.0.1 localhost"
  i=11; for letter in a b c d; do echo "10.77.0.$i host$letter"; i=$((i + 1)); done
  echo "10.77.0.1 controller"
} > "$root/etc/hosts"

install -m 755 "$here/sanless-lab-firstboot" "$root/usr/local/sbin/sanless-lab-firstboot"
install -m 644 "$here/sanless-lab-firstboot.service" "$root/etc/systemd/system/"
ln -sf /etc/systemd/system/sanless-lab-firstboot.service \
  "$root/etc/systemd/system/multi-user.target.wants/sanless-lab-firstboot.service"

# the dom0 console (hvc0) lands in the host's serial log; autologin helps debugging there
mkdir -p "$root/etc/systemd/system/serial-getty@hvc0.service.d"
cat > "$root/etc/systemd/system/serial-getty@hvc0.service.d/autologin.conf" <<'UNIT'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200 %I $TERM
UNIT

# services the collection starts itself (or that only slow a 2-core lab down)
for unit in tgt.service rtslib-fb-targetctl.service open-iscsi.service iscsid.service iscsid.socket \
            apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
            lvm2-monitor.service drbd.service mdmonitor.service mdcheck_start.timer \
            mdcheck_continue.timer mdmonitor-oneshot.timer xendomains.service; do
  chroot "$root" systemctl disable "$unit" >/dev/null 2>&1 || true
done
chroot "$root" systemctl mask xendomains.service >/dev/null 2>&1 || true

cat > "$root/etc/modules-load.d/sanless-lab.conf" <<'MODS'
xenfs
xen-evtchn
xen-gntdev
xen-gntalloc
xen-privcmd
xen-blkback
xen-netback
dm-mod
MODS
grep -q '^XENCONSOLED_ARGS=' "$root/etc/default/xen" \
  || echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"' >> "$root/etc/default/xen"
mkdir -p "$root/var/log/xen/console"
# dom0_mem is fixed on the Xen command line: ballooning dom0 only slows parallel creates
sed -i 's/^#\?autoballoon=.*/autoballoon="off"/' "$root/etc/xen/xl.conf"
grep -q '^autoballoon' "$root/etc/xen/xl.conf" || echo 'autoballoon="off"' >> "$root/etc/xen/xl.conf"
# LVM looks only at the data disk: never at DRBD devices, clones or guest contents
sed -i '/^devices {/a\	global_filter = [ "a|^/dev/vdb$|", "r|.*|" ]' "$root/etc/lvm/lvm.conf"

# test guests and the FPU self-test
install -d "$root/usr/local/share/sanless"
bash "$here/../guest/make-busybox-initrd.sh" "$root" "$root/usr/local/share/sanless/guest-busybox.img"
ln -sf "/boot/vmlinuz-$kver" "$root/usr/local/share/sanless/vmlinuz"
ln -sf "/boot/initrd.img-$kver" "$root/usr/local/share/sanless/initrd.img"
# the Debian domU boots the dom0's kernel with a small initrd (the dom0's own 40 MB
# MODULES=most initrd does not fit a 256 MiB PV guest)
conf="$root/tmp/domu-initramfs"
rm -rf "$conf"; cp -a "$root/etc/initramfs-tools" "$conf"
sed -i 's/^MODULES=.*/MODULES=list/; s/^COMPRESS=.*/COMPRESS=gzip/' "$conf/initramfs.conf"
printf 'xen-blkfront\nxen-netfront\next4\n' > "$conf/modules"
chroot "$root" mkinitramfs -d /tmp/domu-initramfs -o /usr/local/share/sanless/domu-initrd.img "$kver"
rm -rf "$conf"
# the lab boots this image's initrd, not a dom0's /boot: build it as the dom0 role leaves a dom0 (mdadm.conf
# AUTO -all, and update-initramfs), else its initramfs assembles a raid1 guest's array from the legs' LVs
# when a dom0 reboots (seen in the lab); the role then finds the line there and changes nothing
echo "AUTO -all" >> "$root/etc/mdadm/mdadm.conf"
chroot "$root" update-initramfs -u -k "$kver" >/dev/null
install -m 755 "$here/fpu-check.py" "$root/usr/local/sbin/sanless-fpu-check"
chroot "$root" apt-get clean
