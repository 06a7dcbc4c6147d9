#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_backup
short_description: Back up a running VM's disks through consistent LVM snapshots, clean up after a killed backup, restore into a new VM
version_added: 0.1.0
description:
  - One dom0's part of C(playbooks/backup.yml) and C(playbooks/restore.yml) (docs/backup.md).
  - O(action=preflight) only reads this dom0 - whether O(vm) (and O(new_vm)) run here, open backup or restore journals.
  - O(action=backup) backs up O(vm), which must run on this dom0 on plain LVs, to O(dest) (C(HOST:/PATH) over ssh from
    this dom0, or C(/PATH) on this dom0; a gzip image per disk and a manifest in C(PATH/VM/ID/)) or into new LVs of
    O(dest_vg) on this dom0. Before anything changes it refuses a VM that does not run here or has an open migration,
    snapshots that do not fit in their VGs (all of a VG's disks together; the message has the free space), an existing
    LV with a snapshot's name, and an existing destination. It then journals the backup
    (C(STATE_DIR/backups/VM.json)), pauses the domain (C(xl pause)), takes a snapshot C(<lv>.bksnap) of every disk,
    and unpauses it in the same call whatever happened (the pause is measured, RV(pause_ms)); copies each snapshot
    with its SHA-256 checked at the destination; writes the manifest last; and removes the snapshots, also on failure.
  - With O(keep) above 0, once the manifest of the new backup is written, the VM's complete backups at that
    destination (those with their manifest) beyond the newest O(keep) are removed, never the one just made
    (RV(pruned)); incomplete ones are neither counted nor removed (the cleanup of a killed backup owns them).
  - A backup whose module was killed leaves its journal open; the next O(action=backup) or O(action=cleanup) of the VM
    first waits for a module still running for it (the VM's lock), then unpauses the domain if the journal's pause
    holds, removes the snapshots the journal names (and any other C(<VM-disk>.bksnap) snapshot of the VM's disks;
    nothing else) and the partial copies, and closes the journal.
  - O(action=restore) reads the manifest of O(backup), checks every image's SHA-256 before anything changes, creates
    the LVs of O(new_vm) (C(NEW-<disk>), the backup's sizes, fit-checked together; an existing LV, config or domain is
    never overwritten), writes each image, reads it back for its SHA-256, writes C(config_dir/NEW.cfg) (the backed-up
    config with the new name and disks, without uuid and vif MACs) and starts it only with O(start=true). A killed
    restore is journaled (C(STATE_DIR/restores/NEW.json)); its rerun rewrites the LVs it made.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
attributes:
  check_mode:
    support: full
    details:
      - Every refusal is checked; nothing is paused, snapshotted, copied or created (RV(would_run) lists commands that
        would change the dom0). What O(keep) would remove is not computed (RV(pruned) is empty).
  diff_mode:
    support: none
    details:
      - The change is a backup or new LVs; RV(disks) and RV(snapshots_removed) say it.
options:
  vm:
    description: The VM backed up (for O(action=restore), the VM the backup is of).
    type: str
    required: true
  action:
    description: What to do.
    type: str
    choices: [preflight, backup, cleanup, restore]
    default: backup
  dest:
    description:
      - Where backups go, C(HOST:/PATH) (another host, over root ssh from this dom0) or C(/PATH) on this dom0.
      - A backup lies in C(PATH/VM/ID/). Not with O(dest_vg).
    type: str
  dest_vg:
    description: A VG of this dom0 backups go into as LVs C(<lv>.bkYYYYmmddTHHMMSSZ), the manifest in C(STATE_DIR/backups/manifests/).
    type: str
  snapshot_size:
    description: Copy-on-write space of each snapshot, bytes with a unit or V(N%ORIGIN), as M(sanless.xen.lvm_volume) takes it.
    type: str
    default: 20%ORIGIN
  pause:
    description: Pause the domain around the snapshots, so that its disks are one point in time.
    type: bool
    default: true
  keep:
    description:
      - Retention (O(action=backup)) - how many complete backups of O(vm) stay at the destination once this one is
        written, this one counted; it is never removed. V(0) keeps all. Backup ids sort by time, the oldest go first.
      - A backup in a folder (C(PATH/VM/ID/)) is removed with C(rm -rf); a backup into O(dest_vg) by removing its
        LVs, then its manifest. One whose LV is open, is a snapshot or has snapshots is kept (RV(prune_skipped)).
    type: int
    default: 0
  backup:
    description: The backup to restore (its id, V(web01-20261204T060000Z)).
    type: str
  new_vm:
    description: The VM a restore makes; with O(action=preflight), reported too.
    type: str
  vg:
    description: The VG the restored disks go in (default each disk's VG in the backup).
    type: str
  start:
    description: Start the restored VM (C(xl create)).
    type: bool
    default: false
  config_dir:
    description: Where VM configs are.
    type: path
    default: /etc/xen/auto
  state_dir:
    description: Journals and history.
    type: path
    default: /var/lib/sanless-xen
  lock_dir:
    description: The VMs' locks.
    type: path
    default: /run/sanless-xen
  lock_timeout:
    description: Seconds to wait for the VM's lock (a module still running for it).
    type: int
    default: 1800
notes:
  - Commands run with C(LANG=C), as argv lists, without a shell; over ssh only with arguments that need no quoting.
requirements:
  - The xl toolstack, LVM2 with JSON reports; C(dd), C(sha256sum) on this dom0 and the backup host.
seealso:
  - module: sanless.xen.lvm_volume
"""

EXAMPLES = r"""
- name: Back up web01 to hostb
  sanless.xen.vm_backup:
    vm: web01
    dest: hostb:/srv/backups

- name: Back up web01 into LVs of backupvg, keeping its 7 newest backups there
  sanless.xen.vm_backup:
    vm: web01
    dest_vg: backupvg
    keep: 7

- name: Remove what a killed backup of web01 left
  sanless.xen.vm_backup:
    vm: web01
    action: cleanup

- name: Restore a backup of web01 as web01r (not started)
  sanless.xen.vm_backup:
    vm: web01
    action: restore
    backup: web01-20261204T060000Z
    new_vm: web01r
    dest: hostb:/srv/backups
"""

RETURN = r"""
runs_here:
  description: Whether O(vm) runs on this dom0 (O(action=preflight)).
  returned: action is preflight
  type: bool
new_vm_here:
  description: Whether O(new_vm) runs here or has a config here (O(action=preflight)).
  returned: action is preflight
  type: bool
open_journals:
  description: Open backup or restore journals of O(vm) and O(new_vm) here (O(action=preflight)).
  returned: action is preflight
  type: list
  elements: str
backup:
  description: The backup id.
  returned: action is backup or restore
  type: str
  sample: web01-20261204T060000Z
pause_ms:
  description: How long the domain was paused around the snapshots, from the start of C(xl pause) to the end of C(xl unpause).
  returned: action is backup
  type: int
  sample: 412
disks:
  description: Per disk the LV, size, SHA-256 of the raw image, bytes sent, snapshot fill at the end, seconds.
  returned: action is backup or restore
  type: list
  elements: dict
seconds:
  description: Duration of the backup.
  returned: action is backup
  type: float
manifest:
  description: Where the manifest was written.
  returned: action is backup
  type: str
snapshots_removed:
  description: The snapshots removed (VG/LV).
  returned: action is backup
  type: list
  elements: str
pruned:
  description:
    - The backups of O(vm) removed at the destination by O(keep), oldest first.
    - Always empty in check mode - what would be removed is not computed.
  returned: action is backup
  type: list
  elements: str
  sample: [web01-20261127T060000Z]
prune_skipped:
  description: Backups O(keep) would have removed but kept, each as its id and why it was kept.
  returned: action is backup
  type: list
  elements: str
  sample: ["web01-20261120T060000Z: LV backupvg/web01-disk.bk20261120T060000Z is open"]
cleanup:
  description: What the cleanup did (removed, refused, unpaused, journal, partial).
  returned: action is backup or cleanup
  type: dict
config_path:
  description: The restored VM's config.
  returned: action is restore
  type: str
cmds:
  description: The commands that ran.
  returned: always
  type: list
  elements: list
would_run:
  description: In check mode, the commands that would have changed the dom0.
  returned: always
  type: list
  elements: list
"""

import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import backup as bk
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.lvm import Lvm, LvmParseError, parse_snapshot_size
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error
from ansible_collections.sanless.xen.plugins.module_utils.xen import Toolstack, XenParseError


def check_params(params):
    """Refuse bad input before anything runs (ValueError): names, the backup id, the destination."""
    conv.check_vm_name(params["vm"])
    action = params["action"]
    if params["new_vm"] is not None:
        conv.check_vm_name(params["new_vm"])
    if action == "backup":
        parse_snapshot_size(params["snapshot_size"])
        bk.parse_dest(params["dest"], params["dest_vg"])
        bk.check_keep(params["keep"])
    if action == "restore":
        if not params["backup"] or not params["new_vm"]:
            raise ValueError("action=restore needs backup and new_vm")
        conv.check_backup_id(params["backup"], params["vm"])
        bk.parse_dest(params["dest"], params["dest_vg"])
        if params["vg"] is not None:
            bk.check_name(params["vg"], "VG name (vg)")


def preflight(ctx, vm, new_vm):
    domains = dict((d["name"], d) for d in ctx.xen.list())
    journals = []
    for name, folder in ((vm, "backups"), (new_vm, "restores")):
        if name and lm.Journal(name, ctx.state_dir, folder).load() is not None:
            journals.append("%s/%s.json" % (folder, name))
    new_here = bool(new_vm) and (new_vm in domains or os.path.exists(conv.auto_config_path(new_vm, ctx.config_dir)))
    return {"changed": False, "host": ctx.hostname, "runs_here": vm in domains, "new_vm_here": new_here,
            "open_journals": journals}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vm=dict(type="str", required=True),
            action=dict(type="str", default="backup", choices=["preflight", "backup", "cleanup", "restore"]),
            dest=dict(type="str"),
            dest_vg=dict(type="str"),
            snapshot_size=dict(type="str", default=bk.DEFAULT_SNAPSHOT_SIZE),
            pause=dict(type="bool", default=True),
            keep=dict(type="int", default=0),
            backup=dict(type="str"),
            new_vm=dict(type="str"),
            vg=dict(type="str"),
            start=dict(type="bool", default=False),
            config_dir=dict(type="path", default=conv.XEN_AUTO_DIR),
            state_dir=dict(type="path", default=conv.STATE_DIR),
            lock_dir=dict(type="path", default=conv.LOCK_DIR),
            lock_timeout=dict(type="int", default=1800),
        ),
        mutually_exclusive=[("dest", "dest_vg")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_params(params)
    except ValueError as exc:
        module.fail_json(msg="%s; nothing was changed" % exc)
    runner = CommandRunner(module)
    ctx = bk.Context(runner, Lvm(runner), Toolstack(runner, "xl"), params["state_dir"], params["lock_dir"],
                     params["config_dir"], socket.gethostname(), lock_timeout=params["lock_timeout"])
    vm, action = params["vm"], params["action"]
    try:
        if action == "preflight":
            result = preflight(ctx, vm, params["new_vm"])
        elif action == "cleanup":
            lock, _waited = bk.locked(ctx, vm)
            try:
                result = {"cleanup": bk.cleanup(ctx, vm)}
            finally:
                lock.release()
            result["changed"] = result["cleanup"]["changed"]
        elif action == "backup":
            result = bk.backup(ctx, vm, bk.parse_dest(params["dest"], params["dest_vg"]), params["snapshot_size"],
                               params["pause"], params["keep"])
        else:
            result = bk.restore(ctx, vm, params["backup"], params["new_vm"],
                                bk.parse_dest(params["dest"], params["dest_vg"]), params["vg"], params["start"])
    except CommandError as exc:
        fail_from_error(module, exc)
    except bk.BackupError as exc:
        module.fail_json(msg=exc.msg, cmds=runner.ran, **exc.details)
    except (ValueError, LvmParseError, XenParseError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)
    result["would_run"] = runner.would_run
    result["cmds"] = runner.ran
    module.exit_json(**result)


if __name__ == "__main__":
    main()
