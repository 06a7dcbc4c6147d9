# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The health of a raid1 VM's pair: each disk a RAID1 in the guest of two legs on two dom0s.

Pure: data in, verdict out. In: the legs of each disk (conventions.raid1_legs, with the guest's device of
each leg), the registered sanless.xen.xen_info result of every dom0 (with disk_exports: the storage facts of
diskexport.py) and the guest's md state of each disk (md.array_health, or None when the guest could not be
read). Out: per leg where it lives and whether its dom0, LV, export, the guest host's session and md agree
it is in the mirror; per disk and for the pair a state and, for a degraded one, its cause: the leg's dom0
down, its LV missing, its export missing, the session lost, or the leg failed in md.

Also pure: the layout a raid1 VM is provisioned with (layout), its legs read back from its domain config
(disks_from_config, with_missing_legs), the disks of a degraded restart on the surviving legs (restart_disks, the
failover of a dead dom0) and the repair plan (repair_plan). Not pure, at the end: the repair journal on the guest's
dom0 (RepairJournal, the VM's lock) and the identity of the controller run that holds it (controller_run).
"""

from __future__ import annotations

import os
import socket
import time

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import diskexport, livemigrate, xen

# Causes of a leg out of the mirror, most basic first: the first that holds is the leg's cause.
HOST_DOWN = "host_down"
LV_MISSING = "lv_missing"
EXPORT_MISSING = "export_missing"
SESSION_LOST = "session_lost"
FAILED_IN_MD = "failed_in_md"
MISSING_IN_MD = "missing_in_md"
# A leg md rebuilds: not a fault, the pair is recovering.
REBUILDING = "rebuilding"
# Import states of a working session: iSCSI's session state, AoE's aoe-stat state.
_SESSION_UP = ("LOGGED_IN", "up")
# States of a pair and of a disk, worst first.
STATES = ("split", "failed", "degraded", "recovering", "unknown", "healthy")


def _answered(result):
    return isinstance(result, dict) and isinstance(result.get("host"), dict) and not result.get("failed") \
        and not result.get("unreachable")


def _label(host):
    try:
        return conv.host_label(host)
    except ValueError:
        return host


def running_on(vm, results):
    """The dom0s (that answered) where the domain of vm runs."""
    return sorted(host for host, result in results.items() if _answered(result)
                  and any(d.get("name") == vm for d in result.get("domains") or []))


def _facts(result):
    return (result.get("disk_exports") or {}) if _answered(result) else {}


def _own_path(result, host, path):
    """The owner's view of its own leg: its shared path entry there, or None."""
    for shared in _facts(result).get("shared_paths") or []:
        if shared["path"] == path and shared["owner"] == _label(host):
            return shared
    return None


def leg_verdict(leg, guest_host, results, exports, md_leg):
    """One leg: {host, vg, lv, path, vdev, local (on the guest's dom0), host_up, lv_present, export (the owner's
    export row, or None), session (the guest host's import row, or None), md (the leg's md status: in_sync,
    rebuilding, spare, faulty, missing; None: md not read), ok, cause (None, or one of the causes above),
    problem (what to print)}."""
    host = leg["host"]
    owner = results.get(host)
    up = _answered(owner)
    local = guest_host is not None and _label(guest_host) == _label(host)
    own = _own_path(owner, host, leg["path"]) if up else None
    export = next((row for row in exports if row["host"] == host and row["path"] == leg["path"]), None)
    session = None
    if guest_host is not None and not local:
        session = next((row for row in diskexport.import_table(results.get(guest_host), guest_host)
                        if row["path"] == leg["path"]), None)
    verdict = dict(leg, local=local, host_up=up, lv_present=bool(own and own["present"]) if up else None,
                   export=export, session=session, md=md_leg, ok=True, cause=None, problem=None)
    where = "%s's leg %s" % (host, leg["path"])

    def fault(cause, problem):
        verdict.update(ok=False, cause=cause, problem=problem)
        return verdict

    if not up:
        return fault(HOST_DOWN, "%s: %s is down (did not answer)" % (where, host))
    if not verdict["lv_present"]:
        return fault(LV_MISSING, "%s: no LV %s/%s on %s" % (where, leg["vg"], leg["lv"], host))
    if guest_host is not None and not local:
        if export is None or not export["running"]:
            return fault(EXPORT_MISSING, "%s: %s does not export it%s" % (
                where, host, " (its vblade does not run)" if export else ""))
        if session is None or not session["present"] or session["state"] not in _SESSION_UP:
            if session is None:
                state = "no shared path"
            elif not session["present"]:
                state = "no device"
            else:
                state = "%s %s" % (session["transport"] or "no session", session["state"] or "gone")
            return fault(SESSION_LOST, "%s: %s lost its import (%s)" % (where, guest_host, state))
    if leg.get("attached") is False:
        return fault(MISSING_IN_MD, "%s: not attached to the guest (it was restarted without it)" % where)
    if md_leg == "faulty":
        return fault(FAILED_IN_MD, "%s: failed in the guest's md (faulty)" % where)
    if md_leg in ("missing", "spare"):
        return fault(MISSING_IN_MD, "%s: not in the guest's md mirror (%s)" % (where, md_leg))
    if md_leg == REBUILDING:
        verdict.update(ok=False, cause=REBUILDING, problem="%s: md rebuilds it" % where)
    return verdict


def _md_leg(array, vdev):
    """The md status of the leg the guest sees as vdev (xvdb, /dev/xvdb), 'missing' when md lacks it."""
    if array is None:
        return None
    name = os.path.basename(vdev or "")
    for leg in array["legs"]:
        if os.path.basename(leg["device"] or "") == name:
            return leg["status"]
    return "missing"


def disk_verdict(disk, guest_host, results, exports, array):
    """One disk: {disk, array (md state, None: not read), state, sync, legs: [leg_verdict], causes}."""
    legs = [leg_verdict(leg, guest_host, results, exports, _md_leg(array, leg.get("vdev"))) for leg in disk["legs"]]
    faults = [leg for leg in legs if not leg["ok"] and leg["cause"] != REBUILDING]
    in_mirror = [leg for leg in legs if leg["ok"] or leg["cause"] == REBUILDING]
    if array is not None and array["state"] == "failed":
        state = "failed"
    elif faults and not in_mirror:
        state = "failed"
    elif faults or (array is not None and array["degraded"] and array["state"] != "recovering"):
        state = "degraded"
    elif array is not None and array["state"] in ("recovering", "resyncing"):
        state = "recovering"
    elif array is None:
        state = "unknown"
    else:
        state = "healthy"
    causes = [{"host": leg["host"], "leg": leg["path"], "cause": leg["cause"], "problem": leg["problem"]}
              for leg in faults]
    if state == "degraded" and not causes:
        causes.append({"host": None, "leg": None, "cause": MISSING_IN_MD,
                       "problem": "md shows %s degraded (%s) with every leg in place" % (array["device"], array["map"])})
    return {"disk": disk["disk"], "array": array["state"] if array else None, "state": state,
            "sync": array["sync"] if array else None, "legs": legs, "causes": causes}


def pair_health(vm, disks, results, arrays=None):
    """The verdict of a raid1 VM: {vm, running_on, guest_host, state (split, failed, degraded, recovering, unknown,
    healthy: its worst disk's, or split when the guest runs on two dom0s), causes (every disk's), disks}.

    disks: [{"disk", "legs": [{host, vg, lv, path, vdev}]}]; results: dom0 -> registered xen_info result with
    disk_exports; arrays: disk -> md.array_health of its md array in the guest (a disk missing or None: not
    read)."""
    arrays = arrays or {}
    hosts = running_on(vm, results)
    guest_host = hosts[0] if len(hosts) == 1 else None
    exports = diskexport.export_table(results)
    verdicts = [disk_verdict(disk, guest_host, results, exports, arrays.get(disk["disk"])) for disk in disks]
    causes = [dict(cause, disk=d["disk"]) for d in verdicts for cause in d["causes"]]
    if len(hosts) > 1:
        state = "split"
        causes.insert(0, {"disk": None, "host": None, "leg": None, "cause": "split",
                          "problem": "%s runs on %s: both reach both legs, stop all but one now" % (vm, " and ".join(hosts))})
    elif not verdicts:
        state = "unknown"
    else:
        state = min((d["state"] for d in verdicts), key=STATES.index)
    return {"vm": vm, "running_on": hosts, "guest_host": guest_host, "state": state, "causes": causes,
            "disks": verdicts}


# --------------------------------------------------------------------------- provisioning layout (pure)


class Raid1Error(ValueError):
    """A raid1 VM's settings or state that the collection refuses to act on."""


def is_mirrored(disk):
    """A raid1 VM's disk has two legs unless it says raid1: false (a single LV on the home, the system disk)."""
    return disk.get("raid1", True) not in (False, "false", "no")


def mirrored_leg_devices(vms, default_vg="xenvg"):
    """vms: VM name -> its inventory variables. The LV devices (/dev/<vg>/<lv>) that are legs of a raid1 VM's
    mirrored disk, on whichever dom0 holds them: both legs of a disk have the same LV name and VG."""
    devices = set()
    for vm, vm_vars in vms.items():
        if (vm_vars or {}).get("xen_storage_mode") != "raid1":
            continue
        vg = vm_vars.get("xen_vg") or default_vg
        for disk in vm_vars.get("xen_disks") or []:
            if isinstance(disk, dict) and is_mirrored(disk):
                devices.add(conv.lv_path(vg, conv.vm_disk_lv(vm, disk.get("name"))))
    return devices


def restart_hosts(home, partner, disks, restart_on=()):
    """The dom0s that may run a raid1 VM, as the planner's restart_on: its home (it holds every disk), its partner
    when every disk is mirrored (it holds a leg of each) and restart_on (the other dom0s its legs are exported to);
    each once. Which of them can start it after a dom0 died is restart_disks' answer."""
    out = []
    restart_on = [restart_on] if isinstance(restart_on, str) else restart_on
    everything = all(is_mirrored(disk) for disk in disks or [] if isinstance(disk, dict))
    for host in [home] + ([partner] if everything else []) + list(restart_on or []):
        if host and host not in out:
            out.append(host)
    return out


def layout(vm, disks, home, partner, vg, restart_on=()):
    """How a raid1 VM is built: its LVs on each dom0, the exports, the guest config's disks and the md arrays.

    disks: the provision role's disks (name, lv, vdev, size_bytes, partner_vdev, raid1 (false: a single disk, an LV
    on the home only, the guest's system disk)). Every disk is reached on its shared path (conventions), the
    mirrored ones by two legs, home first. The home exports its LVs to the partner and to restart_on, the partner
    its legs to the home and to restart_on (every dom0 that may run the guest sees both legs).
    Returns {vm, home, partner, hosts_may_run, disks: [{name, lv, size_bytes, mirrored, md_name, array, legs:
    [{host, vg, lv, path, vdev}]}], lvs: {host: [{lv, size_bytes}]}, exports: [{from, to, disks}], domain_disks:
    [{target, vdev}], arrays: [{array, name, legs}] (md in the guest), health_disks (for pair_health)}."""
    if not home or not partner:
        raise Raid1Error("%s: a raid1 VM needs its home and a partner dom0 (xen_raid1_partner, or one placement "
                         "finds), got %r and %r" % (vm, home, partner))
    others = [h for h in restart_on or [] if h not in (home, partner)]
    out_disks, domain_disks, arrays, used = [], [], [], []
    lvs = {home: [], partner: []}
    for disk in disks:
        mirrored = is_mirrored(disk)
        vdevs = [disk.get("vdev")] + ([disk.get("partner_vdev")] if mirrored else [])
        for vdev in vdevs:
            if not isinstance(vdev, str) or not conv.VDEV_RE.match(vdev):
                raise Raid1Error("%s: disk %s needs %s (xvdb, xvdc, ...), got %r" % (
                    vm, disk.get("name"), "a vdev and a partner_vdev, one per leg" if mirrored else "a vdev", vdev))
            if vdev in used:
                raise Raid1Error("%s: vdev %s is used twice (each leg is a disk of its own in the guest)" % (vm, vdev))
            used.append(vdev)
        if mirrored:
            legs = conv.raid1_legs(vm, disk["name"], [home, partner], [vg, vg])
        else:
            legs = [conv.raid1_leg(vm, disk["name"], home, vg)]
        for leg, vdev in zip(legs, vdevs):
            leg["vdev"] = vdev
            lvs[leg["host"]].append({"lv": leg["lv"], "size_bytes": int(disk["size_bytes"])})
            domain_disks.append({"target": leg["path"], "vdev": vdev})
        entry = {"name": disk["name"], "lv": legs[0]["lv"], "size_bytes": int(disk["size_bytes"]), "mirrored": mirrored,
                 "md_name": None, "array": None, "legs": legs}
        if mirrored:
            entry["md_name"] = conv.md_array_name(disk["name"])
            entry["array"] = "/dev/md/%s" % entry["md_name"]
            arrays.append({"array": entry["array"], "name": entry["md_name"],
                           "legs": ["/dev/%s" % leg["vdev"] for leg in legs]})
        out_disks.append(entry)
    mirrored_names = [d["name"] for d in out_disks if d["mirrored"]]
    if not mirrored_names:
        raise Raid1Error("%s: storage mode raid1 with no mirrored disk (every disk has raid1: false)" % vm)
    exports = [{"from": home, "to": [partner] + others, "disks": [d["name"] for d in out_disks]},
               {"from": partner, "to": [home] + others, "disks": mirrored_names}]
    return {"vm": vm, "home": home, "partner": partner, "hosts_may_run": [home, partner] + others,
            "disks": out_disks, "lvs": lvs, "exports": exports, "domain_disks": domain_disks, "arrays": arrays,
            "health_disks": health_disks(out_disks)}


def inventory_disks(vm, disks, home, partner, vg):
    """A raid1 VM's disks and legs as its inventory describes them (xen_disks, xen_home, xen_raid1_partner, xen_vg):
    layout's disks, sizes left out."""
    disks = [dict(d, lv=conv.vm_disk_lv(vm, d.get("name")), size_bytes=0) for d in disks or []]
    return layout(vm, disks, home, partner, vg)["disks"]


def restart_disks(disks, dead, target, target_result=None):
    """The disks of a raid1 VM whose dom0 ``dead`` died, started again on ``target`` (the failover): each disk by its
    legs that are not on the dead dom0 (xl create fails on a phy device that is not there); md in the guest runs on
    the legs it finds, degraded. disks: inventory_disks (or layout's). target_result: target's xen_info result; with
    its disk_exports, each leg kept must be present among target's shared paths.
    Returns {domain_disks: [{target, vdev}], left_out: [{disk, host, path, vdev}], degraded: [disk], arrays: [the md
    array in the guest of each degraded disk, which md holds inactive until it is started], problems: [why it cannot
    start on target]}; a disk whose every leg is on the dead dom0 (not mirrored) is a problem."""
    out = {"domain_disks": [], "left_out": [], "degraded": [], "arrays": [], "problems": []}
    shared = None
    if _answered(target_result) and isinstance(target_result.get("disk_exports"), dict):
        shared = dict((entry["path"], entry) for entry in target_result["disk_exports"].get("shared_paths") or [])
    for disk in disks:
        kept = [leg for leg in disk["legs"] if _label(leg["host"]) != _label(dead)]
        gone = [leg for leg in disk["legs"] if _label(leg["host"]) == _label(dead)]
        if not kept:
            out["problems"].append("disk %s is not mirrored (raid1: false): its only LV %s/%s is on %s, which is dead; "
                                   "the VM cannot start without it (lost until %s returns)" % (
                                       disk["name"], gone[0]["vg"], gone[0]["lv"], dead, dead))
            continue
        for leg in kept:
            if shared is not None and not (shared.get(leg["path"]) or {}).get("present"):
                out["problems"].append("disk %s: %s's leg %s is not present on %s (export it there: playbooks/export.yml)"
                                       % (disk["name"], leg["host"], leg["path"], target))
            out["domain_disks"].append({"target": leg["path"], "vdev": leg["vdev"]})
        for leg in gone:
            out["left_out"].append({"disk": disk["name"], "host": leg["host"], "path": leg["path"], "vdev": leg["vdev"]})
        if gone:
            out["degraded"].append(disk["name"])
            out["arrays"].append(disk.get("array") or "/dev/md/%s" % conv.md_array_name(disk["name"]))
    return out


def held_legs(disks, host):
    """The legs of a raid1 VM's disks (inventory_disks, layout's or disks_from_config) that dom0 host holds: its leg
    of each mirrored disk and, on the home, the disks that are not mirrored; each with its disk's name (disk). What
    host exports to the VM's other dom0s (layout's exports), what the failover's storage fence stops exporting to a
    dead one and what the repair exports to it again."""
    return [dict(leg, disk=disk["name"]) for disk in disks for leg in disk["legs"] if _label(leg["host"]) == _label(host)]


def health_disks(disks):
    """The mirrored disks as pair_health reads them: [{disk, legs}]."""
    return [{"disk": d["name"], "legs": d["legs"]} for d in disks if len(d["legs"]) == conv.RAID1_LEGS]


def _disk_spec(spec):
    """(target, vdev) of one entry of a domain config's disk list ('phy:/dev/x,xvdb,w' or key=value forms)."""
    target = vdev = None
    positional = []
    for part in (spec or "").split(","):
        key, eq, value = part.strip().partition("=")
        if eq and key == "target":
            target = value
        elif eq and key == "vdev":
            vdev = value
        elif not eq:
            positional.append(key)
    if target is None and positional:
        target = positional.pop(0).rpartition(":")[2]
    elif positional and positional[0].startswith("/"):
        positional.pop(0)
    if vdev is None and positional:
        vdev = positional[0]
    return target, vdev


def disks_from_config(vm, disk_specs, dom0s):
    """A raid1 VM's disks as its domain config holds them now (the truth after a leg was replaced): each disk
    entry on a shared path of one of the VM's LVs, grouped by LV; the owner label of the path is mapped back to
    its dom0 of dom0s. Returns [{name, lv, mirrored, legs: [{host, vg, lv, path, vdev}]}] in config order."""
    by_label = dict((_label(h), h) for h in dom0s)
    prefix = conv.check_vm_name(vm) + "-"
    disks = {}
    order = []
    for spec in disk_specs or []:
        target, vdev = _disk_spec(spec if isinstance(spec, str) else "")
        parsed = conv.parse_shared_disk_path(target)
        if not parsed or not parsed["lv"].startswith(prefix):
            continue
        name = parsed["lv"][len(prefix):]
        if name not in disks:
            disks[name] = {"name": name, "lv": parsed["lv"], "legs": []}
            order.append(name)
        disks[name]["legs"].append({"host": by_label.get(parsed["owner"], parsed["owner"]), "vg": parsed["vg"],
                                    "lv": parsed["lv"], "path": target, "vdev": vdev})
    out = []
    for name in order:
        disk = disks[name]
        disk["mirrored"] = len(disk["legs"]) == conv.RAID1_LEGS
        disk["array"] = "/dev/md/%s" % conv.md_array_name(name) if disk["mirrored"] else None
        out.append(disk)
    return out


def with_missing_legs(disks, inventory):
    """A raid1 VM's disks as its config holds them (disks_from_config) with the leg the config lacks where the
    inventory (inventory_disks) names it: a VM the failover restarted degraded has a config with the surviving leg of
    each mirrored disk only. The leg added is marked attached: false (not in the guest; the repair attaches it before
    md re-adds it). A disk with both legs in the config, or whose one leg is none of the inventory's, stays as it is."""
    known = dict((d["name"], d) for d in inventory or [] if d.get("mirrored") and len(d["legs"]) == conv.RAID1_LEGS)
    out = []
    for disk in disks:
        mine = known.get(disk["name"])
        if len(disk["legs"]) == 1 and mine and disk["legs"][0]["path"] in [leg["path"] for leg in mine["legs"]]:
            legs = [disk["legs"][0] if leg["path"] == disk["legs"][0]["path"] else dict(leg, attached=False)
                    for leg in mine["legs"]]
            disk = dict(disk, legs=legs, mirrored=True, array="/dev/md/%s" % conv.md_array_name(disk["name"]))
        out.append(disk)
    return out


def config_with_legs(text, legs):
    """A domain config's text with legs ({path, vdev}) added to its disk list, as provision writes them (phy:,
    writable), unless a disk there names the leg's path already; the rest of the text kept as written."""
    config = xen.parse_domain_config(text)
    specs = config.get("disk") or []
    specs = specs if isinstance(specs, list) else [specs]
    have = [_disk_spec(spec)[0] for spec in specs if isinstance(spec, str)]
    added = [xen.disk_spec({"target": leg["path"], "vdev": leg["vdev"]}) for leg in legs if leg["path"] not in have]
    if not added:
        return text
    config["disk"] = list(specs) + added
    return xen.render_domain_config(config, template=text)


# --------------------------------------------------------------------------- repair plan (pure)

# Causes a leg comes back from by a re-add (its host answers, its LV is there): the export or session first when
# they are what is missing.
_READD_CAUSES = (FAILED_IN_MD, MISSING_IN_MD, SESSION_LOST, EXPORT_MISSING)


def repair_plan(health, replace=False, gone=(), new_host=None, new_host_why=None, used_vdevs=()):
    """What raid1_repair does for a VM, from pair_health (with the guest's md read).

    Per mirrored disk: none (healthy), wait (md rebuilds a leg), re_add (the leg is back: its host answers and its
    LV is there; re-export and re-import first when the export or session is missing), or replace (with replace,
    or when the leg's host is in gone (confirmed gone for good) or its LV is missing: a new leg on new_host). Only
    the leg on another dom0 than the guest's is replaced; a local leg that needs it is refused (move the guest first).
    A new leg is the disk's LV on new_host (conventions.raid1_leg), attached at the first vdev after used_vdevs (the
    guest's disks: a resumed run finds it in the journal's plan, never a second one).
    Returns {vm, guest_host, refused (None or why), disks: [{disk, action, leg (the leg acted on), old_host,
    new_host, new_leg ({host, vg, lv, path, vdev}, for replace), why}], reexport: [hosts whose legs are exported
    again], new_host, summary}."""
    vm = health["vm"]
    gone = set(gone or ())
    guest = health["guest_host"]
    plan = {"vm": vm, "guest_host": guest, "refused": None, "disks": [], "reexport": [], "new_host": None,
            "summary": []}
    if health["state"] == "split":
        plan["refused"] = health["causes"][0]["problem"]
    elif guest is None:
        plan["refused"] = "%s runs on no dom0 that answered: the repair works on the running guest" % vm
    elif any(d["array"] is None for d in health["disks"]):
        plan["refused"] = "the md state of %s could not be read in the guest: nothing is changed blind" % vm
    if plan["refused"]:
        plan["summary"] = ["raid1 repair of %s REFUSED: %s" % (vm, plan["refused"])]
        return plan
    for disk in health["disks"]:
        remote = [leg for leg in disk["legs"] if not leg["local"]]
        bad = [leg for leg in disk["legs"] if not leg["ok"] and leg["cause"] != REBUILDING]
        entry = {"disk": disk["disk"], "action": "none", "leg": None, "old_host": None, "new_host": None,
                 "new_leg": None, "why": None}
        if replace or bad:
            leg = bad[0] if bad else (remote[0] if remote else None)
            if leg is None or leg["local"]:
                plan["refused"] = ("%s: the leg to %s is the local one on %s, where the guest runs: move the guest "
                                   "first" % (disk["disk"], "replace" if replace else "repair", guest))
                break
            for other in disk["legs"]:
                if other is not leg and not other["ok"]:
                    plan["refused"] = ("%s: the other leg (%s) is not in the mirror either (%s): no up-to-date copy "
                                       "to rebuild from" % (disk["disk"], other["path"], other["cause"]))
            if plan["refused"]:
                break
            entry.update(leg=leg, old_host=leg["host"])
            if replace or leg["host"] in gone or leg["cause"] == LV_MISSING:
                entry.update(action="replace", new_host=new_host, why="replace=true" if replace else (
                    "%s is gone for good" % leg["host"] if leg["host"] in gone else leg["problem"]))
            elif leg["cause"] == HOST_DOWN:
                plan["refused"] = ("%s: wait until %s is back (then the leg is re-added, the bitmap copies only what "
                                   "changed), or replace the leg elsewhere with -e replace=true (or confirm %s gone)"
                                   % (leg["problem"], leg["host"], leg["host"]))
                break
            elif leg["cause"] in _READD_CAUSES:
                entry.update(action="re_add", why=leg["problem"])
                if leg["cause"] in (SESSION_LOST, EXPORT_MISSING) and leg["host"] not in plan["reexport"]:
                    plan["reexport"].append(leg["host"])
            else:
                plan["refused"] = "%s: cannot repair %s" % (disk["disk"], leg["problem"])
                break
        elif disk["state"] == "recovering":
            entry.update(action="wait", why="md rebuilds it")
        plan["disks"].append(entry)
    replacing = [d for d in plan["disks"] if d["action"] == "replace"]
    if not plan["refused"] and replacing:
        if not new_host:
            plan["refused"] = "no dom0 can take the new leg%s: %s" % ("s" if len(replacing) > 1 else "",
                                                                      new_host_why or "none answered with room")
        elif len(set(d["old_host"] for d in replacing)) > 1:
            plan["refused"] = "legs on several dom0s need a replacement: replace one dom0's legs per run"
        else:
            plan["new_host"] = new_host
            used = list(used_vdevs or ()) + [leg.get("vdev") for d in health["disks"] for leg in d["legs"]]
            for entry in replacing:
                old = entry["leg"]
                entry["new_leg"] = conv.raid1_leg(vm, entry["disk"], new_host, old["vg"])
                entry["new_leg"]["vdev"] = conv.free_vdev(used)
                used.append(entry["new_leg"]["vdev"])
    if plan["refused"]:
        plan["summary"] = ["raid1 repair of %s REFUSED: %s" % (vm, plan["refused"])]
        return plan
    plan["summary"] = ["raid1 repair of %s (runs on %s)" % (vm, guest)]
    for entry in plan["disks"]:
        if entry["action"] == "none":
            plan["summary"].append("  %s: healthy, nothing to do" % entry["disk"])
        elif entry["action"] == "wait":
            plan["summary"].append("  %s: md rebuilds a leg, wait for it" % entry["disk"])
        elif entry["action"] == "re_add":
            plan["summary"].append("  %s: re-add %s's leg (%s)" % (entry["disk"], entry["old_host"], entry["why"]))
        else:
            plan["summary"].append("  %s: replace %s's leg by a new one on %s (%s; new host: %s)" % (
                entry["disk"], entry["old_host"], new_host, entry["why"], new_host_why))
    return plan


def restore_exports(plan, disks, answered, gone=()):
    """What the repair exports again from the guest's dom0 (the undo of the failover's storage fence, which stopped its
    exports to the dead dom0): the disks it holds (held_legs) to each other dom0 holding a leg of a disk the repair
    re-adds or leaves as it is, that answered and is not gone; none when the repair is refused or replaces a leg (the
    new leg's dom0 is exported to by the replace). plan: repair_plan's; disks: the VM's (disks_from_config, with
    with_missing_legs). Returns [{to, disks: [names]}] (one entry per dom0; a second run changes nothing)."""
    guest = plan.get("guest_host")
    if plan.get("refused") or not guest or any(d["action"] == "replace" for d in plan["disks"]):
        return []
    names = [leg["disk"] for leg in held_legs(disks, guest)]
    hosts = []
    for disk in disks:
        for leg in disk["legs"]:
            host = leg["host"]
            if _label(host) != _label(guest) and host in answered and host not in gone and host not in hosts:
                hosts.append(host)
    return [{"to": host, "disks": names} for host in hosts] if names else []


# --------------------------------------------------------------------------- repair journal and its owner


def _proc_start(pid, proc="/proc"):
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22), None when it is gone."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (IOError, OSError, ValueError, IndexError):
        return None


def _proc_argv(pid, proc="/proc"):
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            return handle.read().decode("utf-8", "replace").split("\0")
    except (IOError, OSError):
        return []


def _parent(pid, proc="/proc"):
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (IOError, OSError, ValueError, IndexError):
        return None


def controller_run(pid=None, proc="/proc", hostname=None):
    """The run a module started on the controller belongs to: the topmost ancestor process running
    ansible-playbook (its forks for the workers have the same argv), as {controller, pid, pid_start}; None when
    no ancestor runs ansible-playbook (ansible ad hoc, tests)."""
    found = None
    pid = os.getpid() if pid is None else pid
    while pid and pid > 1:
        if any(os.path.basename(arg).startswith("ansible-playbook") for arg in _proc_argv(pid, proc)[:2]):
            found = pid
        pid = _parent(pid, proc)
    if found is None:
        return None
    return {"controller": hostname or socket.gethostname(), "pid": found, "pid_start": _proc_start(found, proc)}


def run_alive(owner, proc="/proc", hostname=None):
    """True when the controller run owner (controller_run of another run) still lives: on this controller, its
    process is there with the same start time; an owner on another controller is taken as alive (unknown)."""
    if not isinstance(owner, dict) or not owner.get("pid"):
        return False
    if owner.get("controller") != (hostname or socket.gethostname()):
        return True
    return _proc_start(owner["pid"], proc) is not None and _proc_start(owner["pid"], proc) == owner.get("pid_start")


def same_run(a, b):
    keys = ("controller", "pid", "pid_start")
    return isinstance(a, dict) and isinstance(b, dict) and all(a.get(k) == b.get(k) for k in keys)


class RepairJournal(livemigrate.Journal):
    """The open repair of a raid1 VM on the guest's dom0 (conventions.raid1_journal_path): its plan, the steps
    done and the run that holds it (the VM's lock). The migrations' journal (load, save, mark) in the raid1 folder;
    closing it moves it to the history as VM-raid1-ID.json."""

    def __init__(self, vm, state_dir=conv.STATE_DIR):
        super(RepairJournal, self).__init__(vm, state_dir)
        self.state_dir = state_dir
        self.dir = conv.raid1_dir(state_dir)
        self.path = conv.raid1_journal_path(vm, state_dir)

    def load(self):
        try:
            return super(RepairJournal, self).load()
        except livemigrate.MigrationError as exc:
            raise Raid1Error(str(exc))

    def start(self, run_id, owner, plan):
        self.data = {"vm": self.vm, "id": run_id, "owner": owner, "plan": plan, "started_at": time.time(), "log": []}
        self.mark("opened")

    def events(self):
        return [entry["event"] for entry in (self.data or {}).get("log", [])]

    def close(self, outcome):
        """Record outcome, keep the journal in the history (history/VM-raid1-ID.json) and remove it here."""
        self.data["outcome"] = outcome
        self.mark(outcome)
        history = conv.raid1_history_path(self.vm, self.data["id"], self.state_dir)
        self.dir, path = os.path.dirname(history), self.path
        self.path = history
        self.save()
        os.unlink(path)
        return history
