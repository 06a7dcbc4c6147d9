#!/bin/bash
# make demo: boot the lab (unless it runs), provision web01 on its home dom0, live-migrate it to
# the other dom0 with migrate.yml, and show vmlist and the guest's own data checksum before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv-newest/bin
lab() { "$bin/python" lab/labctl.py "$@"; }
console_sums() { lab ssh "$1" -- sh -c "cat /var/log/xen/console/guest-web01*.log 2>/dev/null | grep -o 'sha256=[0-9a-f]*' | tail -n1"; }
where() { for h in hosta hostb; do lab ssh "$h" -- xl list 2>/dev/null | grep -qw '^web01' && echo "$h"; done; true; }

if ! lab status | grep -q ' ok '; then
  echo "== booting the lab (2 Xen dom0s under QEMU)"
  lab up --hosts 2
fi
echo "== provisioning web01 (busybox guest writing a pattern and a heartbeat)"
"$bin/ansible-playbook" playbooks/provision.yml -e vm=web01
src=$(where)
for _ in $(seq 1 90); do [ -n "$(console_sums "$src")" ] && break; sleep 2; done
before=$(console_sums "$src")
echo "== vmlist before"
"$bin/ansible-playbook" playbooks/vmlist.yml | sed -n '/TASK \[Print/,/PLAY RECAP/p' | grep -v '^PLAY RECAP'
echo "== guest checksum on $src before: $before"
dst=$([ "$src" = hosta ] && echo hostb || echo hosta)
echo "== live-migrating web01 $src -> $dst"
time "$bin/ansible-playbook" playbooks/migrate.yml -e vm=web01 -e target="$dst"
echo "== vmlist after"
"$bin/ansible-playbook" playbooks/vmlist.yml | sed -n '/TASK \[Print/,/PLAY RECAP/p' | grep -v '^PLAY RECAP'
# the guest re-reads its pattern every 15 heartbeats: wait for a check made on the new host
n0=$(lab ssh "$dst" -- sh -c "grep -c SANLESS-CHECK /var/log/xen/console/guest-web01*.log 2>/dev/null | tail -n1" || true)
for _ in $(seq 1 60); do
  n=$(lab ssh "$dst" -- sh -c "cat /var/log/xen/console/guest-web01*.log | grep -c SANLESS-CHECK" || true)
  [ "${n:-0}" -gt "${n0:-0}" ] && break; sleep 2
done
after=$(console_sums "$dst")
echo "== guest checksum on $dst after:  $after"
if [ "$before" = "$after" ] && [ -n "$before" ]; then
  echo "== web01 moved $src -> $dst live; its data is identical ($after). make lab-down stops the lab."
else
  echo "== CHECKSUM MISMATCH: before $before after $after"; exit 1
fi
