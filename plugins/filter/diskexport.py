# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The disk_export role's plan, as a pure function of the inventory and of what each dom0 reported
(sanless.xen.xen_info with disk_exports=true), and the collection's disk names for roles.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.migration import host_address
from ansible_collections.sanless.xen.plugins.module_utils import aoe
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import diskexport, iscsi, raid1

TRANSPORTS = ("iscsi", "aoe")
BACKENDS = ("lio", "tgt")
STATES = ("present", "absent")


def _answered(result):
    return isinstance(result, dict) and not result.get("failed") and not result.get("unreachable") \
        and not result.get("skipped") and isinstance(result.get("disk_exports"), dict)


def _hosts(value):
    """-e to=hostb,hostc or a list."""
    if isinstance(value, str):
        value = value.split(",")
    return [str(h).strip() for h in value or [] if str(h).strip()]


def _pinned(values, index, what):
    """The slot or LUN asked for the disk number index (None: chosen by the plan or the module)."""
    value = values[index] if index < len(values or []) else None
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not str(value).isdigit():
        raise ValueError("%s %r of disk %d is not a number" % (what, value, index + 1))
    return int(value)


def _vm_disks(vm, vm_vars, default_vg, names=None):
    """[(vg, lv)] of the VM's xen_disks (those named in names, when given), with the collection's LV names;
    raises ValueError."""
    vg = vm_vars.get("xen_vg") or default_vg
    raw = vm_vars.get("xen_disks")
    if not isinstance(raw, list) or not raw:
        raise ValueError("VM %s has no xen_disks" % vm)
    known = [disk.get("name") for disk in raw if isinstance(disk, dict)]
    unknown = [name for name in names or [] if name not in known]
    if unknown:
        raise ValueError("VM %s has no disk %s (xen_disks: %s)" % (vm, ", ".join(map(str, unknown)), ", ".join(map(str, known))))
    disks = []
    for disk in raw:
        if not isinstance(disk, dict):
            raise ValueError("VM %s: each of xen_disks is a dict with a name, got %r" % (vm, disk))
        if names and disk.get("name") not in names:
            continue
        lv = conv.vm_disk_lv(vm, disk.get("name"))
        conv.shared_disk_path("owner", vg, lv)  # a VG and LV name the shared path can hold
        disks.append((vg, lv))
    return disks


def _link_transport(facts, path):
    """(transport, import entry) of what a dom0's shared path leads to, (None, None) when no import is there."""
    for shared in facts.get("shared_paths") or []:
        if shared["path"] == path and shared["present"]:
            for entry in facts.get("imports") or []:
                if diskexport.leads_to(shared, entry):
                    return entry["transport"], entry
    return None, None


def _request_problems(vm, vm_vars, dom0s, home, to, transport, state, backend, interface):
    problems = []
    if not conv.is_vm_name(vm):
        return ["invalid VM name %r: %s" % (vm, conv.VM_NAME_RULE)]
    if vm_vars is None:
        return ["unknown VM %s: not a host of the inventory's VM group" % vm]
    for name, value, allowed in (("transport", transport, TRANSPORTS), ("state", state, STATES),
                                 ("backend", backend, BACKENDS)):
        if value not in allowed:
            problems.append("%s must be %s, not %r" % (name, " or ".join(allowed), value))
    try:
        aoe.check_interface(interface)
    except ValueError as exc:
        problems.append(str(exc))
    if not home:
        problems.append("VM %s has no xen_home: the dom0 that holds (and exports) its disks" % vm)
    elif home not in dom0s:
        problems.append("xen_home %r of VM %s is not a dom0 (%s)" % (home, vm, ", ".join(dom0s)))
    if not to:
        problems.append("to: name the dom0s that import the disks of %s (-e to=hostb)" % vm)
    for host in to:
        if not conv.is_address(host):
            problems.append("invalid dom0 name %r in to: letters, digits, '.' and '-' (no spaces or shell "
                            "metacharacters)" % (host,))
        elif host not in dom0s:
            problems.append("unknown dom0 %s in to (dom0s: %s)" % (host, ", ".join(dom0s)))
        elif host == home:
            problems.append("to = home: %s holds the disks of %s, it does not import them" % (host, vm))
    if len(set(to)) != len(to):
        problems.append("to names a dom0 twice: %s" % ", ".join(to))
    return problems


def plan_export(infos, addresses, dom0s, vm, vm_vars, to, transport="iscsi", state="present", backend="lio",
                interface="xenbr0", slots=(), luns=(), default_vg="xenvg", owner=None, disk_names=None,
                mirrored_devices=(), mirror_replacement_timeout=None):
    """infos: dom0 -> registered xen_info result (disk_exports=true; home and the importers at least).
    addresses: dom0 -> storage address. dom0s: every dom0 of the inventory (the AoE shelf is the home's place
    among them). vm_vars: the VM's inventory variables (xen_home, xen_disks, xen_vg), None for an unknown VM.
    to: the importing dom0s. slots, luns: per disk, an AoE slot or iSCSI LUN asked for (else chosen).
    owner: the dom0 that holds and exports the LVs, when not the VM's xen_home (a raid1 VM's partner, which holds
    the other legs: the same LV names). disk_names: only these of xen_disks (a raid1 VM's mirrored disks).
    mirrored_devices: the LV devices that are legs of a mirror in a guest (raid1.mirrored_leg_devices);
    mirror_replacement_timeout: the iSCSI replacement timeout of a session that carries only such legs (None: the
    sessions are left as they are). A session carries every LUN the home maps to the importer, so any other disk on
    it keeps open-iscsi's default.

    Returns the plan: home, to, transport, state, backend, portal, target (iSCSI IQN), shelf (AoE), importers
    (dom0 -> initiator IQN or MAC), replacement_timeouts (iSCSI, present: dom0 -> its session's timeout), disks
    (each vg, lv, device, path, lun or slot (None: the module picks the lowest free one under the home's host lock),
    allowed (the initiators or MACs the export has after this run) and export (present: export with allowed; absent: remove it, no importer
    left; none: nothing exported)) and problems (the run must not change anything unless it is empty).
    With state absent, an importer that does not answer (a dead dom0) is taken off the exports all the same: its IDs
    are those on the disks' allow-lists that no dom0 that answered has (silent_ids), refused when another dom0 did
    not answer either (whose is whose cannot be told); nothing runs on it."""
    to = _hosts(to)
    dom0s = sorted(dom0s)
    home = owner or (vm_vars or {}).get("xen_home") or None
    plan = {"vm": vm, "home": home, "to": to, "transport": transport, "state": state, "backend": backend,
            "interface": interface, "portal": None, "target": None, "shelf": None, "importers": {}, "silent_ids": [],
            "disks": [], "replacement_timeouts": {}}
    plan["problems"] = problems = _request_problems(vm, vm_vars, dom0s, home, to, transport, state, backend, interface)
    if problems:
        return plan
    try:
        disks = _vm_disks(vm, vm_vars, default_vg, disk_names)
        pinned = [(_pinned(slots, i, "AoE slot"), _pinned(luns, i, "iSCSI LUN")) for i in range(len(disks))]
    except ValueError as exc:
        problems.append(str(exc))
        return plan
    silent = [h for h in [home] + to if not _answered(infos.get(h))]
    # a dom0 that does not answer (dead: the failover's storage fence) can still be taken off the exports
    gone = [h for h in silent if h != home] if state == "absent" else []
    problems.extend("%s did not answer (or ran xen_info without disk_exports): %s" % (
        h, (infos.get(h) or {}).get("msg", "no result")) for h in silent if h not in gone)
    if not conv.is_address(addresses.get(home)):
        problems.append("%s: invalid storage address %r (want a host name or an IP address)" % (home, addresses.get(home)))
    if problems:
        return plan
    facts = dict((h, infos[h]["disk_exports"] if h not in gone else {}) for h in [home] + to)
    plan["portal"] = addresses[home]
    if transport == "iscsi":
        plan["target"] = conv.target_iqn(home)
        plan["importers"] = dict((h, facts[h].get("initiator")) for h in to)
        lacking = "%s has no iSCSI initiator name (/etc/iscsi/initiatorname.iscsi: install open-iscsi)"
    else:
        plan["shelf"] = conv.aoe_shelf(home, dom0s)
        plan["importers"] = dict((h, (facts[h].get("macs") or {}).get(interface)) for h in to)
        lacking = "%%s has no interface %s to import over AoE from" % interface
        if state == "present" and interface not in (facts[home].get("macs") or {}):
            problems.append("%s has no interface %s to export over AoE on" % (home, interface))
    if state == "present":
        problems.extend(lacking % h for h in to if not plan["importers"][h])
    lvs = set((lv.get("vg"), lv.get("name")) for lv in infos[home].get("lvs") or [])
    exports = [e for e in facts[home].get("exports") or [] if e["transport"] == transport and
               (e.get("target") == plan["target"] if transport == "iscsi" else e["shelf"] == plan["shelf"])]
    if gone:
        # their IDs, told from the allow-lists of these disks' exports (diskexport.silent_importer_ids)
        devices = [conv.lv_path(vg, lv) for vg, lv in disks]
        plan["silent_ids"], problem = diskexport.silent_importer_ids(
            [e for e in exports if e["device"] in devices], infos, gone)
        if problem:
            problems.append(problem)
            return plan
    for (vg, lv), (slot, lun) in zip(disks, pinned):
        disk = _plan_disk(plan, facts, exports, vg, lv, slot if transport == "aoe" else lun)
        if state == "present" and (vg, lv) not in lvs:
            problems.append("%s: LV %s/%s does not exist" % (home, vg, lv))
        plan["disks"].append(disk)
    if transport == "iscsi" and state == "present" and mirror_replacement_timeout:
        plan["replacement_timeouts"] = replacement_timeouts(plan, exports, mirrored_devices, mirror_replacement_timeout)
    return plan


def replacement_timeouts(plan, exports, mirrored_devices, short):
    """Per importer, its session's replacement timeout: short when every LUN the target maps to it (those exported
    now included) is a mirrored leg, whose loss md in the guest rides out; else open-iscsi's default, which any
    other disk on the session (a system disk, say) needs to outlast a network blip."""
    timeouts = {}
    for host, initiator in plan["importers"].items():
        devices = set(e["device"] for e in exports if initiator in e["allowed"]) | \
            set(d["device"] for d in plan["disks"])
        timeouts[host] = short if devices <= set(mirrored_devices) else iscsi.OPEN_ISCSI_REPLACEMENT_TIMEOUT
    return timeouts


def _plan_disk(plan, facts, exports, vg, lv, wanted):
    """One disk's part of the plan (see plan_export); adds to plan["problems"]."""
    problems, transport, home = plan["problems"], plan["transport"], plan["home"]
    key = "lun" if transport == "iscsi" else "slot"
    device, path = conv.lv_path(vg, lv), conv.shared_disk_path(home, vg, lv)
    current = next((e for e in exports if e["device"] == device), None)
    disk = {"vg": vg, "lv": lv, "device": device, "path": path, "lun": None, "slot": None, "allowed": [],
            "export": "none"}
    where = "LUN %%d of %s" % plan["target"] if transport == "iscsi" else "e%d.%%d" % plan["shelf"]
    if plan["state"] == "absent":
        ids = set(i for i in plan["importers"].values() if i) | set(plan.get("silent_ids") or [])
        if current is not None:
            disk.update(allowed=sorted(set(current["allowed"]) - ids))
            disk.update(export="present" if disk["allowed"] else "absent")
            disk[key] = current[key]
        else:
            # nothing exported any more: an importer's own import says which LUN or slot it was
            seen = [entry for entry in (_link_transport(facts[h], path)[1] for h in plan["to"])
                    if entry and entry["transport"] == transport]
            disk[key] = seen[0][key] if seen else None
        return disk
    for host in plan["to"]:
        other, entry = _link_transport(facts[host], path)
        if other and other != transport:
            problems.append("%s already imports %s/%s over %s (%s): remove that import first (-e transport=%s "
                            "-e state=absent)" % (host, vg, lv, other, entry["device"], other))
    if current is not None:
        disk[key] = current[key]
        if wanted is not None and wanted != current[key]:
            problems.append("%s is already exported as %s, not %s" % (device, where % current[key], where % wanted))
    else:
        occupant = next((e for e in exports if e[key] == wanted), None) if wanted is not None else None
        if wanted == 0 and plan["backend"] == "tgt" and transport == "iscsi":
            problems.append("LUN 0 of a tgt target is its controller: ask for LUN 1 or more")
        elif occupant is not None:
            problems.append("%s is occupied: %s exports %s there" % (
                where % wanted, "vblade pid %s" % occupant["pid"] if occupant.get("pid") else
                occupant.get("unit") or occupant.get("backend") or transport, occupant["device"]))
        disk[key] = wanted
    disk.update(export="present", allowed=sorted(set(current["allowed"] if current else []) |
                                                 set(i for i in plan["importers"].values() if i)))
    return disk


def disk_export_plan(hostvars, dom0s, vm, to, transport="iscsi", state="present", backend="lio", interface="xenbr0",
                     slots=None, luns=None, vms=None, register="disk_export_info", default_vg="xenvg", owner=None,
                     disks=None, mirror_replacement_timeout=None):
    """Filter: plan_export from hostvars: each dom0's registered xen_info result (register) and storage address
    (xen_storage_address, else ansible_host, else its name), and the VM's variables when it is one of vms."""
    vm_vars = None
    if vm in (vms or []):
        vm_vars = dict((key, hostvars[vm].get(key)) for key in ("xen_home", "xen_disks", "xen_vg"))
    infos = dict((h, hostvars[h].get(register)) for h in dom0s)
    addresses = dict((h, hostvars[h].get("xen_storage_address") or host_address(hostvars, h)) for h in dom0s)
    mirrored = raid1.mirrored_leg_devices(dict((name, hostvars[name]) for name in vms or []), default_vg)
    return plan_export(infos, addresses, dom0s, vm, vm_vars, to, transport, state, backend, interface, slots or [],
                       luns or [], default_vg, owner or None, disks or None, mirrored,
                       int(mirror_replacement_timeout) if mirror_replacement_timeout else None)


def shared_disk_path(owner, vg, lv):
    """Filter: /dev/sanless/<owner>/<vg>/<lv>, the path of an exported LV on every dom0 (conventions)."""
    try:
        return conv.shared_disk_path(owner, vg, lv)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def vm_disk_lv(vm, disk):
    """Filter: the LV of a VM's disk, <vm>-<disk name> (conventions)."""
    try:
        return conv.vm_disk_lv(vm, disk)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    """sanless.xen disk export filters."""

    def filters(self):
        return {"disk_export_plan": disk_export_plan, "shared_disk_path": shared_disk_path, "vm_disk_lv": vm_disk_lv}
