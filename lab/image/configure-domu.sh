#!/bin/bash
# configure-domu.sh ROOT KEYDIR: the small Debian PV guest (python3, mdadm, ssh) that Ansible
# logs into. Booted by the dom0 with its own kernel/initrd, root=/dev/xvda, identity from
# the guest command line (sanless.host=, sanless.addr=) like the dom0s.
set -euo pipefail
root=$1; keydir=$2
here=$(cd "$(dirname "$0")" && pwd)
install -d -m 700 "$root/root/.ssh"
install -m 600 "$keydir/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
rm -f "$root"/etc/ssh/ssh_host_*
echo 'root:sanless' | chroot "$root" chpasswd
echo "/dev/xvda / ext4 defaults,noatime 0 1" > "$root/etc/fstab"
: > "$root/etc/machine-id"
install -m 755 "$here/sanless-lab-firstboot" "$root/usr/local/sbin/sanless-lab-firstboot"
install -m 644 "$here/sanless-lab-firstboot.service" "$root/etc/systemd/system/"
ln -sf /etc/systemd/system/sanless-lab-firstboot.service \
  "$root/etc/systemd/system/multi-user.target.wants/sanless-lab-firstboot.service"
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer mdmonitor.service \
            mdcheck_start.timer mdcheck_continue.timer mdmonitor-oneshot.timer; do
  chroot "$root" systemctl disable "$unit" >/dev/null 2>&1 || true
done
chroot "$root" apt-get clean
