# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Surviving host loss (issue 15): what the failover of a dead dom0 and the watcher do, as plans.

Pure: the xen_info result of every dom0 and the VMs' inventory variables in, plain dicts out. The
order and the targets of a failover are the planner's (plan.failover_plan); who runs what is the
runs-once guard's (xen.runs_once_check); DRBD states are xen_info's (drbd.py's parser); a raid1 VM's legs are
raid1.py's (inventory_disks, restart_disks). The roles failover and watcher act on these plans with the modules
vm_restart and xen_domain; what a failover batch then did is judged here too, from the results the role registered
(batch_gate, batch_outcomes).
"""

from __future__ import annotations

from ansible_collections.sanless.xen.plugins.module_utils import diskexport, raid1
from ansible_collections.sanless.xen.plugins.module_utils.conventions import lv_path, vm_disk_lv
from ansible_collections.sanless.xen.plugins.module_utils.drbd import LINKED_CSTATES, promotion_problems
from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError, failover_plan, inputs_from_xen_info
from ansible_collections.sanless.xen.plugins.module_utils.xen import runs_once_check


def _meta(meta, key):
    meta = meta or {}
    return meta["xen_" + key] if "xen_" + key in meta else meta.get(key)


def drbd_resources(vm, meta):
    """[{"name", "minor"}] of a DRBD VM's disks: the resource of a disk is its LV, <vm>-<disk> (provision role)."""
    if _meta(meta, "storage_mode") != "drbd":
        return []
    out = []
    for disk in _meta(meta, "disks") or []:
        if isinstance(disk, dict) and disk.get("drbd_minor") is not None:
            out.append({"name": vm_disk_lv(vm, disk["name"]), "minor": int(disk["drbd_minor"])})
    return out


def _answered(result):
    return (isinstance(result, dict) and not result.get("failed") and not result.get("unreachable")
            and not result.get("skipped") and isinstance(result.get("domains"), list))


def replica_state(result, resources):
    """Why the DRBD disks of a VM on a dom0 (its xen_info result) cannot be made Primary there (empty: they can):
    drbd.promotion_problems of each."""
    minors = ((result or {}).get("drbd") or {}).get("minors") or {}
    problems = []
    for res in resources:
        problems.extend(promotion_problems(minors.get(str(res["minor"])), res["name"], res["minor"]) or [])
    return problems


def still_linked(result, resources):
    """The DRBD resources (of ``resources``) that a dom0's xen_info result shows still linked to their peer (cs:
    Connected or resyncing). Right after its peer died, DRBD still says so until its ping timeout runs out (seen in
    the lab: Connected, Secondary/Primary, seconds after the peer's power-off); a failover waits for that."""
    minors = ((result or {}).get("drbd") or {}).get("minors") or {}
    return [res for res in resources if (minors.get(str(res["minor"])) or {}).get("cstate") in LINKED_CSTATES]


def _lv_hosts(info, lv):
    """{dom0 that answered and holds an LV named lv: its VGs}."""
    out = {}
    for host, result in sorted(info.items()):
        if _answered(result):
            for row in result.get("lvs") or []:
                if isinstance(row, dict) and row.get("name") == lv:
                    out.setdefault(host, []).append(row.get("vg"))
    return out


def raid1_restart(vm, meta, info, dead_host, target):
    """How a raid1 VM of the dead dom0 starts on target: raid1.restart_disks of its legs as the inventory describes
    them (xen_home, xen_raid1_partner, xen_disks, xen_vg). Without xen_raid1_partner, the partner is the one dom0 that
    answered, other than its home, holding the LV of every mirrored disk (where provision put the legs), else the dead
    dom0 when it is not the home (its legs are left out either way); without xen_vg, the VG of the leg on target."""
    home = _meta(meta, "home")
    disks = [d for d in _meta(meta, "disks") or [] if isinstance(d, dict)]
    try:
        lvs = [vm_disk_lv(vm, d.get("name")) for d in disks]
    except ValueError as exc:
        return {"domain_disks": [], "left_out": [], "degraded": [], "arrays": [], "problems": [str(exc)], "fence": None}
    mirrored = [lv for lv, d in zip(lvs, disks) if raid1.is_mirrored(d)]
    partner = _meta(meta, "raid1_partner")
    if not partner and mirrored:
        holding = [h for h in _lv_hosts(info, mirrored[0]) if h != home
                   and all(h in _lv_hosts(info, lv) for lv in mirrored)]
        partner = holding[0] if len(holding) == 1 else (dead_host if dead_host != home else None)
    vg = _meta(meta, "vg") or next(iter(sorted(_lv_hosts(info, lvs[0] if lvs else "").get(target) or [])), None)
    problems = []
    if not partner:
        problems.append("its partner is unknown (no xen_raid1_partner, and no dom0 but its home holds its legs): set "
                        "xen_raid1_partner")
    if not vg:
        problems.append("its VG is unknown (no xen_vg, and %s has no LV of it): set xen_vg" % target)
    if problems:
        return {"domain_disks": [], "left_out": [], "degraded": [], "arrays": [], "problems": problems, "fence": None}
    try:
        legs = raid1.inventory_disks(vm, disks, home, partner, vg)
        out = raid1.restart_disks(legs, dead_host, target, info.get(target))
    except ValueError as exc:
        return {"domain_disks": [], "left_out": [], "degraded": [], "arrays": [], "problems": [str(exc)], "fence": None}
    out["fence"] = raid1_fence(vm, legs, info, dead_host, target, vg)
    return out


# md_mirror's array states in which md serves the array (degraded or not).
_MD_SERVING = ("clean", "degraded", "recovering", "resyncing")


def guest_md_outcome(vm, arrays, reached, started):
    """What md did in a raid1 guest the failover restarted on the legs that survived: md holds each degraded array
    inactive at boot, waiting for the leg that is gone, until md_mirror (state=running) starts it. reached: the
    guest's wait_for_connection result; started: the md_mirror loop result over arrays (None: not run).
    Returns {result (running, unreachable, failed), message, arrays: [{array, state, started}]}."""
    by_hand = "ansible %s -m sanless.xen.md_mirror -a 'array=ARRAY state=running'" % vm
    reached = reached or {}
    if reached.get("failed") or reached.get("unreachable") or reached.get("skipped") or not reached:
        return {"result": "unreachable", "arrays": [], "message": "%s did not answer (%s): md not started in it (%s); "
                "once it answers: %s" % (vm, reached.get("msg") or "not tried", ", ".join(arrays), by_hand)}
    results = dict((r.get("item"), r) for r in (started or {}).get("results") or [])
    out, problems = [], []
    for array in arrays:
        result = results.get(array) or {}
        state = (result.get("array") or {}).get("state")
        if result.get("failed") or result.get("unreachable") or result.get("skipped") or not result:
            problems.append("%s: %s" % (array, result.get("msg") or "not run"))
        elif state not in _MD_SERVING:
            problems.append("%s: md shows it %s" % (array, state))
        else:
            out.append({"array": array, "state": state, "started": bool(result.get("changed"))})
    if problems:
        return {"result": "failed", "arrays": out, "message": "md did not start in %s: %s; by hand: %s" % (
            vm, "; ".join(problems), by_hand)}
    return {"result": "running", "arrays": out, "message": "md runs %s in %s (%s)" % (
        ", ".join("%s %s" % (a["array"], a["state"]) for a in out), vm,
        "started by the failover" if any(a["started"] for a in out) else "already running")}


def fence_outcome(fence, result, error=None):
    """Whether a raid1 VM's storage fence (a failover restart's fence) held, from its holder's xen_info result read
    after it (diskexport.fence_check; None: not read) and the error of the disk_export run, if any: {result (fenced,
    failed, not needed, skipped), message, problems}."""
    if fence.get("skipped"):
        return {"result": "skipped", "message": fence["message"], "problems": list(fence["problems"])}
    if not fence["needed"]:
        return {"result": "not needed", "message": fence["message"], "problems": []}
    problems = (["stopping the exports failed: %s" % error] if error else []) + diskexport.fence_check(fence, result)
    if problems:
        return {"result": "failed", "problems": problems, "message": "NOT fenced: %s may still see %s's disks on %s (%s)" % (
            fence["importer"], fence["vm"], fence["holder"], "; ".join(problems))}
    return {"result": "fenced", "message": fence["message"], "problems": []}


def _batch_of(restarts, host, batch):
    return [r for r in restarts if r["batch"] == batch and r["to"] == host]


def _fence_failed(fences, vm):
    return (fences.get(vm) or {}).get("result") == "failed"


def _gated(restart):
    """Whether a restart starts only once the promote step passed for it: a DRBD disk to promote, raid1 legs to
    check."""
    return bool(restart.get("resources")) or restart.get("storage_mode") == "raid1"


def batch_gate(restarts, host, batch, fences, promoted=None):
    """Which restarts of a failover batch ``host`` promotes and which it starts. restarts: the plan's (``batch``
    0-based, as there); fences: {vm: fence_outcome} of the batch's fences so far (a VM whose fence failed does neither);
    promoted: the registered result of the promote step (vm_restart start=false looped over ``promote``), None before
    it ran. A gated restart (_gated) starts only on a passed loop result of its own: none when the step failed as a
    whole (no results). Returns {promote, start}, restarts in the plan's order."""
    fences = fences or {}
    mine = [r for r in _batch_of(restarts, host, batch) if not _fence_failed(fences, r["vm"])]
    # a loop result may lack 'failed', and has 'skipped' only when skipped
    passed = [r["item"]["vm"] for r in (promoted or {}).get("results") or []
              if not r.get("failed") and not r.get("skipped")]
    return {"promote": [r for r in mine if _gated(r)],
            "start": [r for r in mine if not _gated(r) or r["vm"] in passed]}


def batch_outcomes(restarts, host, batch, fences, promoted, waited, md):
    """The outcome of each restart of a failover batch on ``host``, for its journal and the report: refused by a fence
    that failed, refused because the promote step failed as a whole (its gated restarts) or for that VM, then started
    or failed for each start waited for. fences: {vm: fence_outcome}; promoted: the promote step's registered result;
    waited: the async_status loop result over the start jobs (each result's item is the job, whose item is the
    restart); md: {vm: guest_md_outcome} of the raid1 guests that started. Returns [{vm, from, to, batch (1-based),
    result (refused, started, failed), msg, fence}], a started or failed one with md and left_out too."""
    fences = fences or {}
    promoted = promoted or {}
    md = md or {}
    mine = _batch_of(restarts, host, batch)

    def outcome(restart, result, msg, **more):
        return dict({"vm": restart["vm"], "from": restart["from"], "to": host, "batch": batch + 1, "result": result,
                     "msg": msg}, **more)

    out = [outcome(r, "refused", "not started: " + fences[r["vm"]]["message"], fence=fences[r["vm"]])
           for r in mine if _fence_failed(fences, r["vm"])]
    if "results" not in promoted and promoted.get("failed"):
        out.extend(outcome(r, "refused", "not started: the promote step failed: %s" % promoted.get("msg", ""))
                   for r in mine if _gated(r) and not _fence_failed(fences, r["vm"]))
    out.extend(outcome(r["item"], "refused", r.get("msg", ""), fence=fences.get(r["item"]["vm"]))
               for r in promoted.get("results") or [] if r.get("failed"))
    for r in (waited or {}).get("results") or []:
        restart = r["item"]["item"]
        ok = bool(r.get("finished")) and not r.get("failed")
        guest_md = md.get(restart["vm"]) if ok else None
        if restart["vm"] in fences:
            fence = fences[restart["vm"]]
        elif restart.get("fence"):
            # fence.yml ran only for a needed fence: a skipped or unneeded one is judged without a read (a needed
            # one never read would count as failed)
            fence = fence_outcome(restart["fence"], None)
        else:
            fence = None
        out.append(outcome(restart, "started" if ok else "failed",
                           guest_md["message"] if guest_md else r.get("msg", "started" if ok else "did not finish"),
                           md=guest_md, left_out=restart.get("left_out", []), fence=fence))
    return out


def readd_outcome(vm, plan, health):
    """The watcher's re-add of a rebooted dom0's raid1 leg (the raid1 role's repair), judged by the pair read again at
    the end of the repair: plan, the repair's plan (raid1.repair_plan); health, the pair after it (raid1.pair_health).
    Returns {vm, result (re-added; healthy: nothing was left to do; failed), msg}."""
    if (health or {}).get("state") == "healthy":
        acted = any(disk.get("action") != "none" for disk in (plan or {}).get("disks") or [])
        return {"vm": vm, "result": "re-added" if acted else "healthy", "msg": ""}
    state = (health or {}).get("state") or "unknown"
    causes = [c.get("problem") for c in (health or {}).get("causes") or [] if c.get("problem")]
    return {"vm": vm, "result": "failed",
            "msg": "the pair is %s after the repair%s" % (state, (": " + "; ".join(causes)) if causes else "")}


def hosts_to_retry_readd(readd_plan, readd_outcomes):
    """The dom0s whose boot id the watcher's pass does not keep, so that the next pass sees their reboot again and
    tries their re-add again (and a failover meanwhile does not start a raid1 VM on their legs: legs_since_reboot):
    the rebooted dom0 (host) of each entry of ``readd_plan`` (watcher_actions' raid1_readd) whose VM's re-add failed
    in ``readd_outcomes`` (readd_outcome's dicts, or the role's for a repair that failed outright). A VM with no
    outcome (re-adds off, or not tried) retries nothing. Returns the hosts, sorted, each once."""
    failed = set(out["vm"] for out in readd_outcomes or [] if out["result"] == "failed")
    return sorted(set(entry["host"] for entry in readd_plan or [] if entry["vm"] in failed))


def raid1_fence(vm, disks, info, dead_host, target, vg):
    """The storage fence of a raid1 VM restarted on target: target stops exporting to the dead dom0 every disk of the
    VM it holds (raid1.held_legs: its legs, and the disks that are not mirrored when it is the home), as
    diskexport.fence_plan tells from target's storage facts, before the VM starts there. A dead dom0 that boots again
    then cannot log in to them: the stale config in its /etc/xen/auto fails (xl create: a disk is missing) instead of
    starting a second guest on the same legs. Returns fence_plan's dict with vm, disks (the names, for the disk_export
    role's disk_export_disks), vg, message (what the report says once done) and step (does, check, undo: for the
    journal)."""
    held = raid1.held_legs(disks, target)
    info = dict(info)
    info[dead_host] = {"unreachable": True, "msg": "confirmed dead"}
    fence = diskexport.fence_plan(target, dead_host, [lv_path(leg["vg"], leg["lv"]) for leg in held], info)
    names = [leg["disk"] for leg in held]
    fence.update(vm=vm, disks=names, vg=vg, message=(
        "%s no longer sees %s's disks on %s (%s)" % (dead_host, vm, target, ", ".join(names)) if fence["needed"] else
        "%s exports none of %s's disks to %s: nothing to fence" % (target, vm, dead_host)))
    fence["step"] = {
        "does": "%s takes %s off the exports of %s's disks it holds (%s)" % (
            target, ", ".join(fence["ids"]) or dead_host, vm, "; ".join(
                "%s: %s" % (e["address"], "removed" if not e["keep"] else "keeps " + ", ".join(e["keep"]))
                for e in fence["exports"] if e["remove"]) or "none exported to it"),
        "check": "%s's exports read again allow none of %s on %s" % (target, ", ".join(fence["ids"]) or "them",
                                                                     ", ".join(fence["devices"])),
        "undo": "ansible-playbook playbooks/raid1_repair.yml -e vm=%s once %s is back and the watcher disowned its "
                "stale config (it exports them to %s again)" % (vm, dead_host, dead_host)}
    return fence


def legs_since_reboot(vm, host, result, last_boot_id, legs_current=False):
    """Whether ``host``'s raid1 legs of ``vm`` may lack writes, judged by its boot ids: ``result``, its xen_info
    (boot_id now); ``last_boot_id``, the boot id the watcher's last pass there kept (watcher/boot_id; a pass keeps it
    only once the legs of that dom0 are re-added). A dom0 that rebooted since that pass had its legs out of the guest's
    mirror while it was down, and md in the guest, running elsewhere, wrote on without them: started alone, those legs
    would bring back old data as if it were current (their own superblocks still say the array was whole). Returns
    ``(problem, note)``: a problem refuses the degraded start (``legs_current``, the operator's word that the legs are
    current, makes it a note); a note only says what is not known."""
    now = (result or {}).get("boot_id")
    if not last_boot_id:
        return None, ("%s has no watcher pass on record (no watcher/boot_id): whether its legs of %s were re-added "
                      "after its last reboot is not known" % (host, vm))
    if not now or now == last_boot_id:
        return None, None
    problem = ("%s rebooted after the watcher's last pass there (boot id %s then, %s now) and no pass has re-added its "
               "legs since: md in %s may have written on without them, so they may lack acknowledged writes; let the "
               "watcher re-add them when the dead dom0 is back, or run again with -e legs_current=true if you know "
               "%s's legs are current" % (host, last_boot_id, now, vm, host))
    if legs_current:
        return None, "%s starts on %s's legs on the operator's word (legs_current=true): %s" % (vm, host, problem)
    return problem, None


def _batches(items, parallel):
    parallel = max(1, int(parallel))
    for index, item in enumerate(items):
        item["batch"] = index // parallel
    return items


def failover_actions(info, vm_meta, dead_host, parallel=2, confirmed_by="confirm_dead", unfenced=False,
                     last_boot_ids=None, legs_current=False):
    """The failover of ``dead_host``: which of its VMs restart where, in which order, and which are lost.

    ``info``: ``{dom0: xen_info result}`` (the dead dom0's is ignored: it is offline), ``vm_meta``: ``{vm:
    inventory variables}``, a DRBD VM's ``xen_restart_on`` being its pair (xen_home, xen_drbd_peer) when not set, a
    raid1 VM's the dom0s holding its legs (placement.vm_plan_vars).
    Its VMs are those whose xen_home it is, and the DRBD and raid1 VMs it shares with a survivor that run nowhere and
    that no survivor owns (migrated there: the ownership moved with them).
    The planner (plan.failover_plan) gives the order (xen_restart_order, then name) and the targets; a DRBD VM
    is restarted only where its disks are up and UpToDate with no peer Primary (the vm_restart module checks it
    again in the step that promotes); a raid1 VM is started degraded on the legs that are not on the dead dom0
    (``domain_disks``: its config there names only those; ``left_out``: the dead dom0's legs, for the repair), never
    when a disk has no leg left (raid1: false, its LV on the dead dom0) or a leg it needs is not present on the
    target (read in its disk_exports when xen_info returned them; vm_restart checks ``require_paths`` again in the
    step before the start); a raid1 VM's restart carries its storage fence (``fence``, raid1_fence: the target stops
    exporting the VM's disks it holds to the dead dom0 before the start, so that the dead dom0 cannot start the
    VM a second time from its stale /etc/xen/auto config when it boots), and the VM is not restarted when the fence
    cannot be done (the target's export state unknown, ...), unless ``unfenced`` (the operator's override: the restart
    goes ahead unfenced, said in notes and in the summary), and not when its target rebooted after the watcher's last
    pass there (``last_boot_ids``, ``{dom0: boot id}`` the watcher kept; legs_since_reboot: its legs may be stale)
    unless ``legs_current`` (the operator's word); a plain one is lost until its dom0 returns; a VM the
    runs-once guard blocks (it runs somewhere, a dom0 that did not answer may run it) or that another survivor owns
    is not restarted. Restarts are numbered into batches of ``parallel``. A DRBD VM whose disks on the survivor are
    still linked to the dead dom0 (DRBD has not noticed the death yet) is not restarted; it is listed in ``waiting``
    ({host, vm, name, minor}) for the failover role to wait for and plan again. Returns ``{"host", "refused",
    "restarts", "lost", "waiting", "guard", "notes", "summary"}``; a restart's ``fence`` is None for a VM that is not
    raid1.
    """
    vm_meta = dict(vm_meta or {})
    given = dict(vm_meta)
    if dead_host not in info:
        raise PlanError("dom0 %r to fail over is not one of %s" % (dead_host, ", ".join(sorted(info))))
    refused = None
    if _answered(info[dead_host]):
        running = [d["name"] for d in info[dead_host]["domains"] if not d.get("is_dom0")]
        refused = "%s answers (it runs %s): it is not dead; evacuate it instead" % (
            dead_host, ", ".join(running) or "no VM")
    model_info = dict(info)
    model_info[dead_host] = {"unreachable": True, "msg": "confirmed dead (%s)" % confirmed_by}
    guard = runs_once_check(model_info, vm_meta, dead=[dead_host])
    # A DRBD VM of the pair (dead, survivor), or a raid1 VM the dead dom0 may run, that runs nowhere and that no
    # survivor owns ran on the dead dom0 (a migration moves the ownership with the VM), whatever its xen_home says:
    # plan it from there.
    for name, meta in sorted(vm_meta.items()):
        mode = _meta(meta, "storage_mode")
        may_run = [_meta(meta, "home")] + ([_meta(meta, "drbd_peer")] if mode == "drbd" else [])
        if mode == "raid1":
            others = _meta(meta, "restart_on") or []
            may_run += [_meta(meta, "raid1_partner")] + ([others] if isinstance(others, str) else list(others))
        seen = guard["vms"].get(name) or {"active_on": [], "in_flight_on": [], "owned_on": []}
        if (mode in ("drbd", "raid1") and dead_host in may_run and may_run[0] != dead_host
                and not seen["active_on"] and not seen["in_flight_on"] and not seen["owned_on"]):
            vm_meta[name] = dict(meta, xen_home=dead_host)
            vm_meta[name].pop("home", None)
    try:
        hosts, vms, notes = inputs_from_xen_info(model_info, vm_meta)
        plan = failover_plan(hosts, vms, [dead_host])
    except PlanError as exc:
        refused = refused or "cannot plan: %s" % exc
        notes = []
        plan = {"restarts": [], "not_restarted": [], "lost_unprotected": []}
    restarts = []
    lost = []
    waiting = []
    for entry in plan["restarts"]:
        if entry["from"] != dead_host:
            continue
        name, target = entry["vm"], entry["to"]
        meta = vm_meta.get(name) or {}
        mode = _meta(meta, "storage_mode")
        resources = drbd_resources(name, meta)
        start = {"domain_disks": None, "left_out": [], "degraded": [], "arrays": [], "fence": None}
        why = []
        leg_note = None
        if mode is None:
            why.append("no xen_storage_mode: where its disks are is unknown")
        elif mode == "raid1":
            start = raid1_restart(name, given.get(name) or meta, info, dead_host, target)
            why.extend(start["problems"])
            fence = start["fence"]
            if fence and fence["problems"] and unfenced:
                fence["skipped"] = True
                fence["message"] = "UNFENCED (unfenced=true): %s may start %s a second time when it boots (%s)" % (
                    dead_host, name, "; ".join(fence["problems"]))
            elif fence and fence["problems"]:
                why.extend("storage fence: %s (run again with -e unfenced=true to start it unfenced)" % problem
                           for problem in fence["problems"])
            stale, note = legs_since_reboot(name, target, info.get(target), (last_boot_ids or {}).get(target),
                                            legs_current)
            why.extend([stale] if stale else [])
            leg_note = note
        elif mode == "drbd":
            if not resources:
                why.append("storage mode drbd without a drbd_minor on its disks")
            linked = still_linked(info.get(target), resources)
            if linked:
                waiting.extend({"host": target, "vm": name, "name": res["name"], "minor": res["minor"]} for res in linked)
                why.append("DRBD %s on %s still linked to %s: DRBD has not noticed its death yet (ping timeout)"
                           % (", ".join(res["name"] for res in linked), target, dead_host))
            else:
                why.extend(replica_state(info.get(target), resources))
        blocked = runs_once_check(model_info, vm_meta, dead=[dead_host], starting={name: target})["blocked"]
        why.extend(blocked.get(name, []))
        owners = [h for h in (guard["vms"].get(name) or {}).get("owned_on", []) if h != target]
        if owners:
            why.append("owned by %s (its config is there): it stopped there, not with %s" % (
                " and ".join(owners), dead_host))
        if why:
            lost.append({"vm": name, "from": dead_host, "reason": "not restarted on %s: %s" % (target, "; ".join(why))})
            continue
        if leg_note:
            notes.append(leg_note)
        if (start["fence"] or {}).get("skipped"):
            notes.append("%s starts on %s %s" % (name, target, start["fence"]["message"]))
        restarts.append({"vm": name, "from": dead_host, "to": target, "storage_mode": mode, "resources": resources,
                         "memory_mib": entry["memory_mib"], "order": entry["order"],
                         "domain_disks": start["domain_disks"], "left_out": start["left_out"],
                         "degraded": start["degraded"], "arrays": start["arrays"], "fence": start["fence"],
                         "require_paths": [d["target"] for d in start["domain_disks"] or []]})
    for entry in plan["not_restarted"]:
        if entry["from"] == dead_host:
            lost.append({"vm": entry["vm"], "from": dead_host,
                         "reason": entry["reason"] + ("; lost until %s returns" % dead_host
                                                      if "plain storage" in entry["reason"] else "")})
    for name in plan["lost_unprotected"]:
        if (vm_meta.get(name) and _meta(vm_meta[name], "home") == dead_host):
            lost.append({"vm": name, "from": dead_host, "reason": "unprotected (xen_protected: false): stays down"})
    _batches(restarts, parallel)
    summary = ["Failover of %s (%s)%s" % (dead_host, confirmed_by, ": REFUSED, " + refused if refused else "")]
    for item in restarts:
        summary.append("  restart %s on %s (batch %d%s%s)" % (
            item["vm"], item["to"], item["batch"] + 1,
            ", promote " + ", ".join(r["name"] for r in item["resources"]) if item["resources"] else "",
            ", DEGRADED without %s's leg%s of %s (re-add it with raid1_repair.yml once %s is back)" % (
                dead_host, "s" if len(item["left_out"]) > 1 else "", ", ".join(item["degraded"]), dead_host)
            if item["left_out"] else ""))
        fence = item["fence"]
        if fence and fence.get("skipped"):
            summary.append("    %s" % fence["message"])
        elif fence and fence["needed"]:
            summary.append("    first fence %s: %s, so that %s" % (dead_host, fence["step"]["does"], fence["message"]))
        elif fence:
            summary.append("    fence: %s" % fence["message"])
    for item in lost:
        summary.append("  LOST %s: %s" % (item["vm"], item["reason"]))
    if not restarts and not lost:
        summary.append("  nothing of %s to restart (the inventory names no VM whose xen_home it is)" % dead_host)
    return {"host": dead_host, "refused": refused, "restarts": restarts, "lost": lost, "waiting": waiting,
            "guard": guard, "notes": notes, "summary": summary}


def watcher_actions(info, vm_meta=None, last_boot_ids=None, parallel=4):
    """What the watcher does now: restart VMs that should run and do not, reconnect DRBD on rebooted dom0s,
    hand ownership back where a VM runs elsewhere, and report split brains (never resolved).

    Desired running: a VM whose config is in exactly one dom0's config dir (/etc/xen/auto), unless the inventory
    says ``xen_desired_state: stopped``; a VM with ``xen_desired_state: running`` and no config anywhere is
    reported. ``last_boot_ids``: ``{dom0: boot id}`` of the previous run; a dom0 whose boot id changed rebooted
    since, and its DRBD resources (of the inventory's DRBD VMs) that are not up are brought up (they connect
    and resync from the peer that kept running); a raid1 VM running on another dom0 that has a leg on it (its home
    or xen_raid1_partner) is listed in ``raid1_readd``: md in the guest lost that leg; the watcher role re-adds it with
    the raid1 role's repair (raid1_repair.yml by hand).
    Returns ``{"restarts", "reconnect", "disown", "raid1_readd", "problems", "rebooted", "boot_ids", "guard",
    "summary"}``; restarts are numbered into batches of ``parallel``.
    """
    vm_meta = dict(vm_meta or {})
    last_boot_ids = dict(last_boot_ids or {})
    guard = runs_once_check(info, vm_meta)
    answered = sorted(h for h, s in guard["hosts"].items() if s == "answered")
    unknown = guard["unknown_hosts"]
    boot_ids = dict((h, info[h].get("boot_id")) for h in answered)
    rebooted = sorted(h for h in answered if last_boot_ids.get(h) and boot_ids[h] and last_boot_ids[h] != boot_ids[h])
    restarts, disown, problems, reconnect = [], [], [], []
    for name in sorted(guard["vms"]):
        vm = guard["vms"][name]
        meta = vm_meta.get(name) or {}
        desired = _meta(meta, "desired_state")
        if desired == "stopped" or vm["in_flight_on"]:
            continue
        owners = vm["owned_on"]
        if vm["active_on"]:
            # ownership follows the VM: a config left where it does not run (a failed-over VM's old home)
            if len(vm["active_on"]) == 1 and vm["active_on"][0] in owners:
                for host in owners:
                    if host != vm["active_on"][0]:
                        disown.append({"vm": name, "host": host, "runs_on": vm["active_on"][0]})
            continue
        if not owners:
            if desired == "running":
                problems.append({"vm": name, "kind": "no_config",
                                 "message": "%s should run (xen_desired_state) but no dom0 has its config: provision it" % name})
            continue
        if len(owners) > 1:
            problems.append({"vm": name, "kind": "owned_twice",
                             "message": "%s is down and owned by %s: not restarted" % (name, " and ".join(owners))})
            continue
        owner = owners[0]
        mode = _meta(meta, "storage_mode")
        resources = drbd_resources(name, meta)
        blocked = list(runs_once_check(info, vm_meta, starting={name: owner})["blocked"].get(name, []))
        if mode == "plain" and unknown:
            # its disks are LVs of its owner: it cannot run on a dom0 that did not answer
            blocked = [r for r in blocked if "did not answer" not in r]
        blocked.extend(replica_state(info[owner], resources))
        if blocked:
            problems.append({"vm": name, "kind": "blocked", "message": "%s is down on %s and not restarted: %s" % (
                name, owner, "; ".join(blocked))})
            continue
        restarts.append({"vm": name, "to": owner, "storage_mode": mode, "resources": resources,
                         "order": _meta(meta, "restart_order")})
    restarts.sort(key=lambda r: (r["order"] is None, r["order"] or 0, r["vm"]))
    _batches(restarts, parallel)
    for name in sorted(vm_meta):
        for res in drbd_resources(name, vm_meta[name]):
            for host in (_meta(vm_meta[name], "home"), _meta(vm_meta[name], "drbd_peer")):
                if host not in answered:
                    continue
                state = ((info[host].get("drbd") or {}).get("minors") or {}).get(str(res["minor"]))
                if not state or state.get("unconfigured"):
                    if host in rebooted:
                        reconnect.append({"host": host, "vm": name, "resource": res["name"], "minor": res["minor"],
                                          "action": "up"})
                    else:
                        problems.append({"vm": name, "kind": "drbd_down", "message": "%s: DRBD %s (minor %d) is not up "
                                         "on %s (not rebooted since the last run: left alone)" % (
                                             name, res["name"], res["minor"], host)})
                elif state.get("cstate") == "StandAlone":
                    problems.append({"vm": name, "kind": "split_brain", "message": "%s: DRBD %s is StandAlone on %s "
                                     "(disk %s/%s): split brain or a refused connection; NOT resolved (no data is "
                                     "discarded): decide which copy to keep by hand" % (
                                         name, res["name"], host, state.get("disk"), state.get("peer_disk"))})
    readd = []
    for name in sorted(vm_meta):
        active = (guard["vms"].get(name) or {}).get("active_on") or []
        if _meta(vm_meta[name], "storage_mode") != "raid1" or len(active) != 1:
            continue
        for host in (_meta(vm_meta[name], "home"), _meta(vm_meta[name], "raid1_partner")):
            if host in rebooted and host != active[0]:
                readd.append({"vm": name, "host": host, "runs_on": active[0], "message": (
                    "%s runs on %s and %s rebooted: its leg on %s is out of the guest's mirror until it is re-added "
                    "(by this pass, or: ansible-playbook playbooks/raid1_repair.yml -e vm=%s)" % (
                        name, active[0], host, host, name))})
    unknown_text = ", unknown: " + ", ".join(unknown) if unknown else ""
    rebooted_text = ", rebooted: " + ", ".join(rebooted) if rebooted else ""
    summary = ["Watcher: %d dom0(s) answered%s%s" % (len(answered), unknown_text, rebooted_text)]
    summary.extend("  restart %s on %s (batch %d)" % (r["vm"], r["to"], r["batch"] + 1) for r in restarts)
    summary.extend("  drbd up %s on %s (rebooted)" % (r["resource"], r["host"]) for r in reconnect)
    summary.extend("  disown %s on %s (it runs on %s)" % (d["vm"], d["host"], d["runs_on"]) for d in disown)
    summary.extend("  RAID1 RE-ADD: %s" % r["message"] for r in readd)
    summary.extend("  %s: %s" % (p["kind"].upper(), p["message"]) for p in problems)
    summary.extend("  guard %s: %s" % (f["kind"], f["message"]) for f in guard["findings"] if f["severity"] != "info")
    if len(summary) == 1:
        summary.append("  nothing to do: every VM that should run runs once")
    return {"restarts": restarts, "reconnect": reconnect, "disown": disown, "raid1_readd": readd, "problems": problems,
            "rebooted": rebooted, "boot_ids": boot_ids, "guard": guard, "summary": summary}
