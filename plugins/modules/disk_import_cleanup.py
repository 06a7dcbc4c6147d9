#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_import_cleanup
short_description: Log out and flush a dom0's stale iSCSI and AoE imports of another dom0's disks
version_added: 0.1.0
description:
  - Finds, on the importing dom0, the imports of O(owner)'s disks that are stale, from what the dom0 reports
    (C(iscsiadm -m session -P 3), C(aoe-stat), the shared paths under C(/dev/sanless)) and what O(owner) exports
    (O(exports)), and removes them; for an import that was left when its export went away, or whose
    C(/dev/sanless) link was removed, which M(sanless.xen.iscsi_initiator) and M(sanless.xen.aoe_import) cannot
    name any more.
  - An import is stale when O(owner) no longer exports it to this dom0 (the target's LUN with this initiator in its
    ACL; the shelf.slot open to this dom0's MAC), or when no shared path leads to it. Without O(exports) (the owner
    did not answer) only the second holds; an unreachable exporter is never taken for a removed one.
  - Only the collection's imports are considered (iSCSI targets C(iqn.2026-12.xen.sanless:<owner>), AoE devices on
    O(owner)'s shelf among O(dom0s)).
  - Never removes an import, nor a link, that something uses, checked right before the change - a domain's disk
    (C(xl list -l)) that names it, its by-path link, its device or a link to its device number; a dm table on its
    device (C(dmsetup table)) or a holder of it in sysfs; a domain whose disk is a shared path of O(owner) that leads
    nowhere keeps every stale import of O(owner) (it may be using one of them). What is kept is returned in RV(kept)
    with its users, and warned about.
  - "iSCSI: a session whose LUNs are all stale and unused is logged out and its node record deleted (no login at
    boot); else each such LUN's disk is taken off this host (C(/sys/block/sdX/device/delete)) and the session stays.
    AoE: C(aoe-flush eX.Y). Then the links (and udev rules) of what was removed, the links of O(owner)'s disks that
    lead nowhere, and those of O(paths) go, unless a domain names them."
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  host:
    description: This dom0's name among O(dom0s) (its inventory name).
    type: str
    required: true
  owner:
    description: The exporting dom0 whose disks this dom0 imported.
    type: str
    required: true
  dom0s:
    description: Every dom0 of the cluster (an AoE shelf is the owner's place among them, as the exports have it).
    type: list
    elements: str
    required: true
  exports:
    description:
      - What O(owner) exports, as it reports it (M(sanless.xen.xen_info) with C(disk_exports=true), RV(sanless.xen.xen_info#module:disk_exports.exports)).
      - Omit it, or give V(null), when O(owner) did not answer; then only imports no shared path leads to are stale.
    type: list
    elements: dict
  paths:
    description:
      - Shared paths of O(owner)'s disks whose link and udev rule go too (the disks no longer imported here), unless
        a domain names them, or the link leads to a device (an import that is not stale stays, with its link).
    type: list
    elements: str
    default: []
notes:
  - Commands run with C(LANG=C), without a shell.
  - In check mode the module reports what it would remove; nothing changes.
requirements:
  - The Xen C(xl) toolstack; open-iscsi and aoetools where there are such imports.
seealso:
  - module: sanless.xen.iscsi_initiator
  - module: sanless.xen.aoe_import
  - module: sanless.xen.xen_info
"""

EXAMPLES = r"""
- name: Read what hosta exports
  sanless.xen.xen_info:
    disk_exports: true
  register: hosta_info
  delegate_to: hosta

- name: Remove hostb's imports of hosta's disks that hosta no longer exports, or that no link leads to
  sanless.xen.disk_import_cleanup:
    host: "{{ inventory_hostname }}"
    owner: hosta
    dom0s: "{{ groups['dom0'] }}"
    exports: "{{ hosta_info.disk_exports.exports }}"
  register: cleaned
"""

RETURN = r"""
removed:
  description: The stale imports removed (or that would be, in check mode), each as C(disk_exports.imports) has it, with
    C(owner), C(links) (the shared paths that led to it), C(reasons) (why it is stale) and C(action) (C(log out),
    C(remove LUN N (sdX)) or C(aoe-flush eX.Y)).
  returned: success
  type: list
  elements: dict
  sample: [{"transport": "aoe", "shelf": 1, "slot": 2, "device": "/dev/etherd/e1.2", "path": "/dev/etherd/e1.2",
            "state": "up", "owner": "hosta", "links": [], "reasons": ["hosta no longer exports it to hostb",
            "no shared path leads to it"], "action": "aoe-flush e1.2"}]
kept:
  description: Stale imports and dangling links kept because something uses them, each with C(users).
  returned: success
  type: list
  elements: dict
  sample: [{"transport": "iscsi", "target": "iqn.2026-12.xen.sanless:hosta", "lun": 0, "device": "/dev/sda",
            "owner": "hosta", "reasons": ["hosta no longer exports it to hostb"],
            "users": ["domain web05 uses it (/dev/sanless/hosta/xenvg/web05-disk)"]}]
links_removed:
  description: The shared paths whose link (and udev rule) went.
  returned: success
  type: list
  elements: str
  sample: ["/dev/sanless/hosta/xenvg/web05-disk"]
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["log out iqn.2026-12.xen.sanless:hosta at 10.77.0.11:3260", "delete node record"]
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: []
would_run:
  description: In check mode, the commands that would have changed the dom0.
  returned: success
  type: list
  elements: list
  sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import aoe, diskexport, dm, iscsi
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.files import read_text
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error
from ansible_collections.sanless.xen.plugins.module_utils.xen import Toolstack, XenParseError


def read_imports(runner):
    """(sessions (iscsi.parse_session_details), imports (iscsi_imports + aoe_imports), shared paths) of this dom0."""
    sessions = diskexport.iscsi_sessions(runner)
    imports = diskexport.iscsi_imports(sessions) + diskexport.aoe_imports(diskexport.aoe_devices(runner))
    return sessions, imports, diskexport.shared_paths()


def usage(runner):
    """(domain disks [(domain, pdev_path, MAJ:MIN or None)], dm tables) of this dom0, read now."""
    disks = [(domain["name"], disk["pdev_path"], diskexport.device_number(disk["pdev_path"]))
             for domain in Toolstack(runner, "xl").list_long() for disk in domain["disks"] if disk["pdev_path"]]
    return disks, dm.DeviceMapper(runner).tables()


def users_of(item, names, device, disks, tables):
    devno = diskexport.device_number(device) if device else None
    holders = diskexport.device_holders(device) if devno else []
    return diskexport.import_users(item, set(n for n in names if n), devno, holders, disks, tables)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            owner=dict(type="str", required=True),
            dom0s=dict(type="list", elements="str", required=True),
            exports=dict(type="list", elements="dict"),
            paths=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        owner = conv.host_label(p["owner"])
        for host in p["dom0s"]:
            conv.host_label(host)
        here = conv.host_label(p["host"])
        paths = []
        for path in p["paths"]:
            names = conv.parse_shared_disk_path(path)
            if names is None or names["owner"] != owner:
                raise ValueError("paths: %r is not a shared path of %s's disks (/dev/sanless/%s/VG/LV)"
                                 % (path, owner, owner))
            paths.append(names)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if owner == here:
        module.fail_json(msg="owner %s is this dom0: it imports none of its own disks" % owner)
    runner = CommandRunner(module)
    actions, removed, kept, links_removed = [], [], [], []
    try:
        sessions, imports, shared = read_imports(runner)
        initiator_text = read_text(iscsi.INITIATOR_NAME_FILE)
        initiator = iscsi.parse_initiatorname(initiator_text) if initiator_text else None
        stale, dangling = diskexport.stale_imports(imports, shared, p["dom0s"], here, owner, p["exports"], initiator,
                                                   list(diskexport.interface_macs().values()))
        before = sorted("%s %s" % (item["transport"], item["path"]) for item in stale) + \
            sorted("link %s" % s["path"] for s in dangling)
        disks, tables = usage(runner) if stale or dangling or paths else ([], {})
        removable = []
        for item in stale:
            users = users_of(item, [item["device"], item["path"]] + item["links"], item["device"], disks, tables)
            if users:
                kept.append(dict(item, users=users))
            else:
                removable.append(item)
        gone = set()
        for item in removable:
            if item["transport"] != "iscsi":
                item["action"] = "aoe-flush e%d.%d" % (item["shelf"], item["slot"])
                actions.append(item["action"])
                runner.run(aoe.aoe_flush_argv(item["shelf"], item["slot"]), changes_state=True)
                continue
            key = (item["target"], item["address"], item["port"])
            session = next(s for s in sessions if (s["target"], s["address"], s["port"]) == key)
            if key in gone:
                item["action"] = "log out"
            elif all(any((r["target"], r["address"], r["port"], r["lun"]) == key + (d["lun"],) for r in removable)
                     for d in session["disks"]):
                # every LUN of the session goes: the session too, and its node record (no login at boot)
                item["action"] = "log out"
                gone.add(key)
                actions.append("log out %s at %s:%d" % key)
                try:
                    iscsi.Iscsiadm(runner).log_out(session, ok_rcs=(0, iscsi.ISCSI_ERR_SESS_NOT_FOUND))
                except (IOError, OSError) as exc:
                    module.fail_json(msg="cannot take the disks of %s at %s:%d off this host: %s" % (key + (exc,)),
                                     cmds=runner.ran, actions=actions, removed=removed)
                actions.append("delete node record of %s at %s:%d" % key)
                runner.run(iscsi.iscsiadm_delete_argv(*key), changes_state=True,
                           ok_rcs=(0, iscsi.ISCSI_ERR_NO_OBJS_FOUND))
            else:
                disk = os.path.basename(item["device"])
                item["action"] = "remove LUN %d (%s)" % (item["lun"], disk)
                actions.append(item["action"] + " of %s" % item["target"])
                if not module.check_mode:
                    try:
                        iscsi.Iscsiadm(runner).remove_disk(disk)
                    except (IOError, OSError) as exc:
                        module.fail_json(msg="cannot take LUN %d (%s) off this host: %s" % (item["lun"], disk, exc),
                                         cmds=runner.ran, actions=actions, removed=removed)
        removed = removable
        # the links: of what went, those that lead nowhere, and the paths asked for, unless a domain names them
        links = dict((path, conv.parse_shared_disk_path(path)) for item in removed for path in item["links"])
        links.update((s["path"], s) for s in dangling)
        # a path asked for whose link leads to a device is an import that is not stale: it stays
        live = set(s["path"] for s in shared if s["present"])
        links.update((path, n) for n in paths for path in [conv.shared_disk_path(n["owner"], n["vg"], n["lv"])]
                     if path not in live)
        for path in sorted(links):
            users = users_of({"owner": None}, [path], None, disks, tables)
            if users:
                kept.append({"path": path, "owner": owner, "reasons": ["its link goes"], "users": users})
                continue
            done = iscsi.ensure_shared_path(owner, links[path]["vg"], links[path]["lv"], {}, None, module.check_mode,
                                            "absent")
            if done:
                links_removed.append(path)
                actions += done
    except CommandError as exc:
        fail_from_error(module, exc)
    except (ValueError, XenParseError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran, actions=actions)
    for item in kept:
        module.warn("kept the stale import %s of %s (%s): %s" % (item["path"], owner, "; ".join(item["reasons"]),
                                                                 "; ".join(item["users"])))
    result = {"changed": bool(actions), "removed": removed, "kept": kept, "links_removed": links_removed,
              "actions": actions, "cmds": runner.ran, "would_run": runner.would_run}
    if module._diff:
        header = "stale imports of %s's disks" % owner
        result["diff"] = {"before_header": header, "after_header": header, "before": "\n".join(before) + "\n",
                          "after": "\n".join(sorted("%s %s" % (k.get("transport", "link"), k["path"]) for k in kept))
                          + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
