# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Placement (module_utils/plan.placement) for roles: the provision role's choice of dom0.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError, judge_host, placement, raid1_partner


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


def provision_placement(hostvars, hosts, spec, reserve_mib=0, register="provision_info"):
    """Filter: placement_of_vm from the xen_info results the provision role registered on each dom0."""
    return placement_of_vm(dict((host, hostvars[host].get(register)) for host in hosts), spec, reserve_mib)


class FilterModule(object):
    """sanless.xen placement filters."""

    def filters(self):
        return {"provision_placement": provision_placement}
