# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest RAID1 (storage mode raid1) for roles: the layout the provision role builds, the legs a running VM's config
holds, the pair's health and the repair plan, all from module_utils/raid1.py.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.module_utils import md, raid1, xen


def raid1_layout(spec, home, partner, restart_on=None):
    """Filter: raid1.layout of the provision role's spec (name, vg, disks) on home and partner."""
    try:
        return raid1.layout(spec["name"], spec["disks"], home, partner, spec["vg"], restart_on or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("raid1 layout of %s: %s" % (spec.get("name") if isinstance(spec, dict) else spec, exc))


def raid1_config_disks(text, vm, dom0s, vm_vars=None, default_vg="xenvg"):
    """Filter: raid1.disks_from_config of a domain config file's text (slurped, decoded); with vm_vars (the VM's
    inventory variables), a leg the config lacks is added from the inventory, marked attached: false
    (raid1.with_missing_legs: a VM the failover restarted degraded), unless the inventory cannot tell its legs."""
    try:
        config = xen.parse_domain_config(text or "")
        disks = config.get("disk") or []
        disks = raid1.disks_from_config(vm, disks if isinstance(disks, list) else [disks], dom0s)
    except (xen.XenParseError, ValueError) as exc:
        raise AnsibleFilterError("the domain config of %s: %s" % (vm, exc))
    try:
        inventory = raid1_inventory_disks(vm_vars, vm, default_vg) if vm_vars else None
    except AnsibleFilterError:
        inventory = None  # no partner in the inventory (the placement chose it): the config's legs stand
    return raid1.with_missing_legs(disks, inventory) if inventory else disks


def raid1_config_with_legs(text, legs):
    """Filter: raid1.config_with_legs, a domain config's text with legs ({path, vdev}) added to its disks."""
    try:
        return raid1.config_with_legs(text or "", legs or [])
    except (xen.XenParseError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("cannot add the legs to the config: %s" % exc)


def _arrays(md_results):
    """disk -> md.array_health from registered md_mirror results (a loop's results, item.name the disk)."""
    arrays = {}
    for result in (md_results or {}).get("results") or []:
        if isinstance(result, dict) and not result.get("failed") and not result.get("skipped") \
                and not result.get("unreachable") and isinstance(result.get("array"), dict):
            disk = (result.get("item") or {}).get("name")
            if disk:
                arrays[disk] = result["array"]
    return arrays


def raid1_health(hostvars, dom0s, vm, disks, md_results=None, register="raid1_info"):
    """Filter: raid1.pair_health from the xen_info results (disk_exports) registered on dom0s and the md_mirror
    results read in the guest (md_results: a loop over disks, each item with its name)."""
    try:
        results = dict((h, hostvars[h].get(register)) for h in dom0s)
        return raid1.pair_health(vm, raid1.health_disks(disks), results, _arrays(md_results))
    except (KeyError, TypeError, ValueError, md.MdParseError) as exc:
        raise AnsibleFilterError("raid1 health of %s: %s" % (vm, exc))


def raid1_repair_plan(health, replace=False, gone=None, new_leg=None, used_vdevs=None):
    """Filter: raid1.repair_plan of a pair's health; new_leg: raid1_leg_placement's answer; used_vdevs: the vdevs
    of the guest's other disks."""
    if isinstance(gone, str):
        gone = [h.strip() for h in gone.split(",") if h.strip()]
    new_leg = new_leg or {}
    try:
        return raid1.repair_plan(health, bool(replace), gone or [], new_leg.get("host") or None, new_leg.get("why"),
                                 used_vdevs or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("raid1 repair plan: %s" % exc)


def raid1_status_lines(health):
    """Filter: a pair's health as lines to print: the state, each disk's legs (dom0, path, export, session, md)."""
    lines = ["%s: %s (runs on %s)" % (health["vm"], health["state"].upper(), " and ".join(health["running_on"]) or "no dom0")]
    for disk in health["disks"]:
        sync = disk["sync"]
        progress = ", %s %s%%" % (sync["action"], sync["percent"]) if sync else ""
        lines.append("  disk %s: %s, md %s%s" % (disk["disk"], disk["state"], disk["array"] or "not read", progress))
        for leg in disk["legs"]:
            export = "local" if leg["local"] else ("exported" if leg["export"] else "not exported")
            session = "" if leg["local"] or leg["session"] is None else ", session %s %s" % (
                leg["session"].get("transport"), leg["session"].get("state"))
            problem = "" if leg["ok"] else "  <- %s" % leg["problem"]
            lines.append("    %s %s: %s%s, md %s%s" % (leg["host"], leg["path"], export, session, leg["md"] or "?", problem))
    for cause in health["causes"]:
        lines.append("  CAUSE %s: %s" % (cause["cause"], cause["problem"]))
    return lines


def raid1_where(hostvars, dom0s, vm, register="raid1_info"):
    """Filter: where a raid1 VM is from the xen_info results registered on dom0s - {answered, down (dom0s that did not
    answer), running_on, guest_host (the one dom0 running it, else None), owner (the one dom0 that answered and holds its
    config, else None), config (its path there)}."""
    results = dict((h, hostvars[h].get(register)) for h in dom0s)
    answered = [h for h in dom0s if raid1._answered(results[h])]
    owners = [h for h in answered if vm in (results[h].get("config_files") or {})]
    running = raid1.running_on(vm, results)
    # the config where the guest runs is the one it runs with (a stale one may be left where it ran before a failover)
    guest = running[0] if len(running) == 1 else None
    owner = guest if guest in owners else (owners[0] if len(owners) == 1 else None)
    return {"answered": answered, "down": [h for h in dom0s if h not in answered], "running_on": running,
            "guest_host": running[0] if len(running) == 1 else None, "owner": owner, "owners": owners,
            "config": results[owner]["config_files"][vm] if owner else None}


def raid1_pairs(hostvars, dom0s, vms, register="xen_info_result", default_vg="xenvg"):
    """Filter: {vm: {state, hosts, causes}} of every raid1 VM of vms, judged on the xen_info results (disk_exports)
    registered on dom0s without reading md (vmlist's raid1 field): legs from the inventory."""
    pairs = {}
    results = dict((h, hostvars[h].get(register)) for h in dom0s)
    for vm in vms or []:
        vm_vars = hostvars[vm]
        if vm_vars.get("xen_storage_mode") != "raid1":
            continue
        try:
            disks = raid1_inventory_disks(vm_vars, vm, default_vg)
            health = raid1.pair_health(vm, raid1.health_disks(disks), results)
        except (AnsibleFilterError, KeyError, TypeError, ValueError) as exc:
            pairs[vm] = {"state": "unknown", "hosts": [], "causes": ["cannot judge: %s" % exc]}
            continue
        hosts = sorted(set(leg["host"] for d in disks for leg in d["legs"]))
        pairs[vm] = {"state": health["state"], "hosts": hosts, "causes": [c["problem"] for c in health["causes"]]}
    return pairs


def raid1_inventory_disks(vm_vars, vm, default_vg="xenvg"):
    """Filter: a raid1 VM's disks and legs as its inventory describes them (xen_home, xen_raid1_partner, xen_disks),
    for when no dom0 holding its config answers."""
    try:
        return raid1.inventory_disks(vm, vm_vars.get("xen_disks"), vm_vars.get("xen_home"), vm_vars.get("xen_raid1_partner"),
                                     vm_vars.get("xen_vg") or default_vg)
    except (AttributeError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("the raid1 disks of %s in the inventory: %s" % (vm, exc))


def raid1_restore_exports(plan, disks, answered, gone=None):
    """Filter: raid1.restore_exports, the exports the repair gives again from the guest's dom0 (the undo of the
    failover's storage fence)."""
    try:
        return raid1.restore_exports(plan, disks or [], answered or [], gone or [])
    except (AttributeError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("the exports to restore: %s" % exc)


class FilterModule(object):
    """sanless.xen guest RAID1 filters."""

    def filters(self):
        return {"raid1_layout": raid1_layout, "raid1_config_disks": raid1_config_disks, "raid1_health": raid1_health,
                "raid1_repair_plan": raid1_repair_plan, "raid1_status_lines": raid1_status_lines,
                "raid1_inventory_disks": raid1_inventory_disks, "raid1_where": raid1_where,
                "raid1_pairs": raid1_pairs, "raid1_config_with_legs": raid1_config_with_legs,
                "raid1_restore_exports": raid1_restore_exports}
