# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Placement (module_utils/plan.placement) for roles: the provision role's choice of dom0.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.module_utils.plan import (
    PlanError, inputs_from_xen_info, judge_host, overcommit_check, placement, raid1_partner,
)
from ansible_collections.sanless.xen.plugins.module_utils.raid1 import restart_hosts as raid1_restart_hosts

# The VM variables the planner reads (plan.inputs_from_xen_info).
PLAN_VARS = ("xen_storage_mode", "xen_protected", "xen_restart_on", "xen_home", "xen_memory_mib", "xen_restart_order",
             "xen_anti_affinity", "xen_disk_bytes", "xen_drbd_peer", "xen_disks", "xen_vg", "xen_type", "xen_raid1_partner")


def _answered(info):
    return isinstance(info, dict) and isinstance(info.get("host"), dict) and not info.get("failed") \
        and not info.get("unreachable")


def _placement_host(host, info):
    """A dom0 as plan.placement reads it, from its xen_info result."""
    vgs = {}
    for vg in info.get("vgs") or []:
        lvs = dict((lv["name"], int(lv["size_bytes"])) for lv in info.get("lvs") or [] if lv.get("vg") == vg["name"])
        vgs[vg["name"]] = {"free_bytes": int(vg["free_bytes"]), "extent_bytes": vg.get("extent_size_bytes"), "lvs": lvs}
    return {"name": host, "memory_free_mib": int(info["host"].get("free_memory_mib") or 0), "vgs": vgs}


def placement_of_vm(infos, spec, reserve_mib=0):
    """Judge every dom0 for a VM of the provision role's spec and pick one (plan.placement).

    infos: dom0 -> xen_info result (or None). Returns host (the best fitting dom0, or ''), hosts (one entry per
    dom0: host, answered, running, disks_here, memory_free_mib, vg_free_bytes, vg_need_bytes, fits, shortfalls),
    secondary (the DRBD peer judged for the disks and their metadata, or the raid1 partner judged for the other
    legs; None in other modes) and, in storage mode raid1, partner ({host (empty when none fits), why}: the spec's
    raid1_partner, the dom0 holding the other legs already, or the one placement ranks first, never the home)."""
    try:
        return _placement_of_vm(infos, spec, int(reserve_mib or 0))
    except (PlanError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("placement of %s: %s" % (spec.get("name") if isinstance(spec, dict) else spec, exc))


def _placement_of_vm(infos, spec, reserve_mib):
    vm = spec["name"]
    disks = [{"lv": d["lv"], "size_bytes": int(d["size_bytes"]), "vg": spec["vg"]} for d in spec.get("disks") or []]
    drbd = spec.get("storage_mode") == "drbd"
    answered = [h for h in infos if _answered(infos[h])]
    running = [h for h in answered if any(d.get("name") == vm for d in infos[h].get("domains") or [])]
    hosts = [_placement_host(h, infos[h]) for h in answered]
    demand = {"name": vm, "memory_mib": int(spec["memory_mib"]), "vcpus": int(spec.get("vcpus") or 1),
              "type": spec.get("type") or "pv", "disks": disks, "drbd_meta": drbd, "running_on": running}
    # a drained dom0 (xen_info's drained mark) takes no VM that does not run there already
    drained = dict((h, ["%s: drained (%s): no new VM there until playbooks/undrain.yml" % (
        h, (infos[h]["drained"].get("reason") if isinstance(infos[h]["drained"], dict) else None) or "marked")])
        for h in answered if infos[h].get("drained") and h not in running)
    decision = placement(hosts, demand, exclude=drained, policy={"reserve_mib": reserve_mib})
    entries = []
    for host in infos:
        if host not in decision["verdicts"]:
            info = infos[host] if isinstance(infos[host], dict) else {}
            entries.append({"host": host, "answered": False, "running": False, "disks_here": 0, "memory_free_mib": 0,
                            "vg_free_bytes": 0, "vg_need_bytes": 0, "fits": False,
                            "shortfalls": ["%s: did not answer (%s)" % (host, info.get("msg", "unreachable"))]})
            continue
        verdict = decision["verdicts"][host]
        vg = next((h["vgs"].get(spec["vg"]) for h in hosts if h["name"] == host), None) or {}
        entries.append({"host": host, "answered": True, "running": host in running,
                        "disks_here": sum(1 for d in disks if d["lv"] in vg.get("lvs", {})),
                        "memory_free_mib": infos[host]["host"].get("free_memory_mib") or 0,
                        "vg_free_bytes": vg.get("free_bytes", 0), "vg_need_bytes": verdict["vg_need_bytes"],
                        "fits": verdict["fits"], "shortfalls": verdict["problems"]})
    secondary = None
    peer = spec.get("drbd_peer")
    if drbd and peer:
        if peer in answered:
            # the secondary holds the disks and their metadata, the domain runs on the primary
            secondary = judge_host(hosts[answered.index(peer)], dict(demand, memory=False))
        else:
            secondary = {"host": peer, "fits": False, "problems": ["%s: did not answer" % peer]}
    result = {"host": decision["host"] or "", "hosts": entries, "secondary": secondary}
    if spec.get("storage_mode") == "raid1":
        # the home: where the VM runs, else its xen_home, else the best dom0
        home = running[0] if running else spec.get("home") or decision["host"]
        holding = [e["host"] for e in entries if e["disks_here"]]
        partner = raid1_partner(hosts, demand, home, spec.get("raid1_partner") or None, holding)
        result["secondary"] = partner["verdict"] or (
            {"host": None, "fits": False, "problems": [partner["why"]]})
        result["partner"] = {"host": partner["host"] or "", "why": partner["why"]}
    return result


def raid1_new_leg(infos, vm, lvs, vg, guest_host, old_host, wanted=None):
    """The dom0 of a raid1 VM's new leg (a repair's replacement): plan.raid1_partner for the disks alone, never the
    guest's dom0 nor the dom0 of the leg it replaces; wanted (-e new_host=) is judged, not trusted.
    infos: dom0 -> xen_info result; lvs: the legs' LV names, sized as the guest's dom0 has them in vg.
    Returns {host ('' when none fits), why}."""
    answered = [h for h in infos if _answered(infos[h])]
    if guest_host not in answered:
        return {"host": "", "why": "the guest's dom0 %s did not answer" % guest_host}
    sizes = dict((lv["name"], int(lv["size_bytes"])) for lv in infos[guest_host].get("lvs") or [] if lv.get("vg") == vg)
    missing = [lv for lv in lvs if lv not in sizes]
    if missing:
        return {"host": "", "why": "%s has no LV %s in %s to size the new legs by" % (guest_host, ", ".join(missing), vg)}
    hosts = [_placement_host(h, infos[h]) for h in answered]
    demand = {"name": vm, "memory_mib": 0, "disks": [{"lv": lv, "size_bytes": sizes[lv], "vg": vg} for lv in lvs]}
    avoid = {old_host: ["%s: holds the leg being replaced" % old_host]} if old_host else {}
    try:
        chosen = raid1_partner(hosts, demand, guest_host, wanted or None, (), avoid)
    except (PlanError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("new raid1 leg of %s: %s" % (vm, exc))
    why = chosen["why"]
    if chosen["host"] is None and chosen["verdict"]:
        why = "%s (%s)" % (why, "; ".join(chosen["verdict"]["problems"]))
    return {"host": chosen["host"] or "", "why": why}


def raid1_leg_placement(hostvars, hosts, vm, lvs, vg, guest_host, old_host, wanted=None, register="raid1_info"):
    """Filter: raid1_new_leg from the xen_info results registered on each dom0."""
    return raid1_new_leg(dict((h, hostvars[h].get(register)) for h in hosts), vm, lvs, vg, guest_host, old_host,
                         wanted)


def provision_placement(hostvars, hosts, spec, reserve_mib=0, register="provision_info"):
    """Filter: placement_of_vm from the xen_info results the provision role registered on each dom0."""
    return placement_of_vm(dict((host, hostvars[host].get(register)) for host in hosts), spec, reserve_mib)


def vm_plan_vars(hostvars, vms):
    """{vm: the planner's variables of it} from hostvars (inventory hosts of the VM group)."""
    out = {}
    for vm in vms or []:
        hv = hostvars[vm]
        out[vm] = dict((key, hv[key]) for key in PLAN_VARS if key in hv)
        # a DRBD VM restarts on its peer (or its home) when xen_restart_on does not say otherwise
        if out[vm].get("xen_storage_mode") == "drbd" and not out[vm].get("xen_restart_on"):
            pair = [h for h in (out[vm].get("xen_home"), out[vm].get("xen_drbd_peer")) if h]
            if pair:
                out[vm]["xen_restart_on"] = pair
        # a raid1 VM restarts where its legs are: its home, its partner when every disk is mirrored, and the dom0s
        # of xen_restart_on (its legs are exported to them)
        if out[vm].get("xen_storage_mode") == "raid1":
            hosts = raid1_restart_hosts(out[vm].get("xen_home"), out[vm].get("xen_raid1_partner"),
                                        out[vm].get("xen_disks") or [], out[vm].get("xen_restart_on") or [])
            if hosts:
                out[vm]["xen_restart_on"] = hosts
    return out


def overcommit_of_vm(infos, vm_meta, spec, host, tolerate, up_to=None):
    """Would starting the provision role's VM ``spec`` on ``host`` leave the cluster tolerating fewer host
    failures than ``tolerate`` (xen_ha_tolerate)? plan.overcommit_check on the xen_info results, the exact planner.

    Returns ok, before, after (None: the VM does not fit at all), tolerate, changes (false when the VM runs
    already: nothing is added) and msg, which states the tolerance before and after."""
    vm = spec["name"]
    tolerate = int(tolerate)
    cap = tolerate + 1 if up_to is None else int(up_to)
    meta = dict((name, v) for name, v in (vm_meta or {}).items() if name != vm)
    try:
        hosts, vms, notes = inputs_from_xen_info(infos, meta)
    except PlanError as exc:
        return {"ok": False, "before": None, "after": None, "tolerate": tolerate, "changes": True, "notes": [],
                "msg": "cannot plan the provision of %s: %s" % (vm, exc)}
    if any(v["name"] == vm for v in vms):
        before = overcommit_check(hosts, vms, None, tolerate, up_to=cap)["before"]
        return {"ok": True, "before": before, "after": before, "tolerate": tolerate, "changes": False, "notes": notes,
                "msg": "%s runs already: the tolerated host failures stay %s" % (vm, _more(before, cap))}
    mode = spec.get("storage_mode") or "plain"
    if mode == "plain":
        restart_on = []
    elif mode == "drbd":
        restart_on = [h for h in (spec.get("drbd_peer"),) if h and h != host] or [spec.get("home")]
    else:
        restart_on = [h for h in spec.get("restart_on") or [] if h != host]
    new = {"name": vm, "host": host, "memory_mib": int(spec["memory_mib"]), "restart_on": [h for h in restart_on if h]}
    if (vm_meta or {}).get(vm, {}).get("xen_protected") is not None:
        new["protected"] = bool(vm_meta[vm]["xen_protected"])
    check = overcommit_check(hosts, vms, {"add_vms": [new]}, tolerate, up_to=cap)
    before, after = check["before"], check["after"]
    if after is None:
        msg = "provisioning %s on %s is impossible for the planner: %s" % (vm, host, check["reason"])
    else:
        msg = ("provisioning %s on %s: the cluster tolerates %s host failure(s) now and would tolerate %s after; "
               "xen_ha_tolerate is %d" % (vm, host, _more(before, cap), _more(after, cap), tolerate))
    return {"ok": check["ok"], "before": before, "after": after, "tolerate": tolerate, "changes": True,
            "notes": notes, "msg": msg}


def _more(value, cap):
    return "%s or more" % value if value is not None and value >= cap else str(value)


def provision_overcommit(hostvars, hosts, spec, host, tolerate, vms, register="provision_info"):
    """Filter: overcommit_of_vm from the xen_info results the provision role registered and the VMs' variables."""
    try:
        infos = dict((h, hostvars[h].get(register)) for h in hosts)
        return overcommit_of_vm(infos, vm_plan_vars(hostvars, vms), spec, host, tolerate)
    except (PlanError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("overcommit check of %s: %s" % (spec.get("name") if isinstance(spec, dict) else spec, exc))


class FilterModule(object):
    """sanless.xen placement filters."""

    def filters(self):
        return {"provision_placement": provision_placement, "provision_overcommit": provision_overcommit,
                "raid1_leg_placement": raid1_leg_placement}
