# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migrate role's preflight decision, as a pure function of what each dom0 reported."""

from __future__ import annotations

import zlib

from ansible_collections.sanless.xen.plugins.module_utils.conventions import (
    DEFAULT_EXTENT_BYTES, FIRST_MINOR, MINOR_SPREAD, drbd_port, is_address, meta_bytes,
)
from ansible_collections.sanless.xen.plugins.module_utils.plan import placement
from ansible_collections.sanless.xen.plugins.module_utils.xen import guest_type_migration_problems


def _facts(result):
    if not isinstance(result, dict) or result.get("unreachable") or result.get("failed") or "preflight" not in result:
        return None
    return result


# What a resumed plan takes of each disk of the journal, in storage modes drbd and shared (plain: below).
JOURNAL_DISK_KEYS = {"drbd": ("resource", "minor", "device"), "shared": ("owner", "vg", "lv", "path")}


def plan_migration(reports, addresses, vm, target=None, action="migrate", target_vgs=None):
    """reports: host -> registered result of live_migration step=preflight (or None).
    addresses: host -> address. target_vgs: host -> the VG for VM disks there (a per-dom0 xen_vg), else a
    disk goes in the VG of its name when it has room there, or in the one with most room.
    Returns the plan: source, target, addresses, disks (each with target_vg in plain mode),
    minors, ports, resume (bool), migration_id (when resuming), journal_hosts and rekey (a
    resume where one of the two hosts has no journal: both take the run's new secret) and
    problems (a list of messages; the migration must not start unless it is empty)."""
    target = target or None
    problems = []
    facts = {}
    unreachable = []
    for host in sorted(reports):
        result = _facts(reports[host])
        if result is None:
            unreachable.append(host)
        else:
            facts[host] = result
    plan = {"vm": vm, "action": action, "source": None, "target": None, "resume": False, "problems": problems,
            "disks": [], "minors": [], "ports": [], "migration_id": None, "journal_hosts": [], "rekey": False,
            "ended_on": {}, "skip": [],
            "addresses": dict(addresses), "unreachable": unreachable, "vm_memory_mib": None, "mode": "plain"}
    bad = sorted(h for h, a in addresses.items() if not is_address(a))
    if bad:
        # addresses reach DRBD configs and xl migrate's ssh: refuse before anything runs
        problems.extend("%s: invalid address %r (want a host name or an IP address)" % (h, addresses[h]) for h in bad)
        return plan
    journals = dict((h, r["journal"]) for h, r in facts.items() if r.get("journal"))
    if journals:
        ids = sorted(set(j["id"] for j in journals.values()))
        if len(ids) > 1:
            problems.append("%s has journals of different migrations (%s on %s): inspect them by hand" % (
                vm, ", ".join(ids), ", ".join(sorted(journals))))
            return plan
        journal = journals[sorted(journals)[0]]
        mode = journal.get("mode", "plain")
        if mode == "plain":
            # a journal's vg is its host's VG of the disk; source_vg and target_vg name both (older journals: one VG)
            disks = [{"vg": d.get("source_vg") or d["vg"], "lv": d.get("lv"), "size_bytes": d.get("size_bytes"),
                      "target_vg": d.get("target_vg") or d["vg"]} for d in journal["disks"]]
        else:
            disks = [dict((k, d.get(k)) for k in JOURNAL_DISK_KEYS[mode]) for d in journal["disks"]]
        with_minor = [d for d in journal["disks"] if "minor" in d]  # none in storage mode shared
        plan.update(resume=True, source=journal["source"], target=journal["target"], migration_id=journal["id"], mode=mode,
                    disks=disks,
                    minors=[d["minor"] for d in with_minor], ports=[d.get("port") for d in with_minor],
                    journal_hosts=sorted(journals))
        halves = (journal["source"], journal["target"])
        # what the host without a journal did with this migration: closed it (history), or never
        # started it (killed before its prepare there)
        ended = dict((h, facts[h]["preflight"].get("history", {}).get(journal["id"])) for h in halves
                     if h in facts and h not in journals)
        ended = dict((h, outcome) for h, outcome in ended.items() if outcome)
        plan["ended_on"] = ended
        # a host with neither journal nor history gets a new journal: both take the run's new secret
        plan["rekey"] = any(h not in journals and h not in ended for h in halves)
        if target and target != journal["target"]:
            problems.append("%s is in the middle of a migration %s -> %s (journal %s): rerun without target to "
                            "finish it, or with migrate_action=abort" % (vm, journal["source"], journal["target"], journal["id"]))
        if action == "migrate" and "aborted" in ended.values():
            problems.append("migration %s of %s was aborted on %s; %s still holds its half: run migrate_action=abort "
                            "to remove it" % (journal["id"], vm, ", ".join(sorted(ended)), ", ".join(sorted(journals))))
        for host in halves:
            if host not in unreachable:
                continue
            if action == "abort" and host == journal["target"] and journal["source"] not in unreachable:
                # the guest runs on the source's copy: the source rolls back alone; the target's half
                # stays (its journal) until it is back and an abort removes it
                plan["skip"] = [host]
                continue
            problems.append("%s: unreachable, and it holds half of the migration of %s" % (host, vm))
        return plan
    if action == "abort":
        problems.append("no migration of %s is in progress on any dom0: nothing to abort" % vm)
        return plan
    runs_on = sorted(h for h, r in facts.items() if r["preflight"]["runs_vm"])
    if not runs_on:
        problems.append("unknown VM %s: it runs on none of the dom0s (%s)%s" % (
            vm, ", ".join(sorted(facts)) or "none answered",
            "; unreachable: %s" % ", ".join(unreachable) if unreachable else ""))
        return plan
    if len(runs_on) > 1:
        problems.append("%s runs on several dom0s at once (%s): refusing to touch it" % (vm, ", ".join(runs_on)))
        return plan
    source = runs_on[0]
    src = facts[source]["preflight"]
    plan.update(source=source, vm_memory_mib=src["vm_memory_mib"])
    # the source's side here, the target's for each candidate (_target_problems)
    problems.extend(guest_type_migration_problems(vm, src["vm_type"], source, src["virt_caps"], None, None))
    on_shared = [d for d in src["disks"] if d.get("shared")]
    if on_shared:
        if len(on_shared) != len(src["disks"]):
            problems.append("%s: some disks of %s are on shared paths and some are not (%s): migrate needs one storage "
                            "mode" % (source, vm, ", ".join(d["pdev_path"] for d in src["disks"])))
            return plan
        return _plan_shared(plan, vm, source, src, facts, reports, unreachable, target, addresses)
    problems.extend(_source_vg_problems(vm, source, src))
    on_drbd = [d for d in src["disks"] if d.get("drbd")]
    if on_drbd:
        if len(on_drbd) != len(src["disks"]):
            problems.append("%s: some disks of %s are on DRBD and some are not (%s): migrate needs one storage mode"
                            % (source, vm, ", ".join(d["pdev_path"] for d in src["disks"])))
            return plan
        return _plan_drbd(plan, vm, source, src, facts, reports, unreachable, target, addresses)
    disks = []
    for disk in src["disks"]:
        if not disk.get("lv"):
            problems.append("%s: disk %s of %s is not an LV on this host; plain-mode migration needs local LVs"
                            % (source, disk.get("pdev_path"), vm))
        else:
            disks.append({"vg": disk["vg"], "lv": disk["lv"], "size_bytes": disk["size_bytes"]})
    if not disks and not problems:
        problems.append("%s has no disks to migrate" % vm)
    plan["disks"] = disks
    if target is not None:
        if _refuse_target(problems, vm, source, target, reports, unreachable):
            return plan
        candidates = [target]
    else:
        candidates = [h for h in facts if h != source]
    decision = _choose_target(vm, src, facts, candidates, disks, addresses, target_vgs)
    if decision["host"] is None:
        if not candidates:
            problems.append("no other dom0 to migrate %s to" % vm)
        for host in sorted(candidates):
            problems.extend(decision["verdicts"][host]["problems"])
        return plan
    chosen = decision["host"]
    for disk, vg in zip(disks, decision["verdicts"][chosen]["disk_vgs"]):
        disk["target_vg"] = vg
    plan["target"] = chosen
    dst = facts[chosen]["preflight"]
    used = set(src["used_minors"]) | set(dst["used_minors"])
    busy_ports = set(src["listening_ports"]) | set(dst["listening_ports"])
    minor = first_minor(vm)
    while len(plan["minors"]) < len(disks):
        if minor not in used and drbd_port(minor) not in busy_ports:
            plan["minors"].append(minor)
            plan["ports"].append(drbd_port(minor))
        minor = minor + 1 if minor < FIRST_MINOR + MINOR_SPREAD - 1 else FIRST_MINOR
    return plan


def _refuse_target(problems, vm, source, target, reports, unreachable):
    """Adds to problems why the given target cannot take vm at all (it is the source, not a dom0, did not
    answer); True when it did."""
    if target == source:
        problems.append("target = source: %s already runs on %s" % (vm, source))
    elif target not in reports:
        problems.append("unknown target %s: not a dom0 of the inventory (%s)" % (target, ", ".join(sorted(reports))))
    elif target in unreachable:
        problems.append("target %s did not answer the preflight" % target)
    else:
        return False
    return True


def first_minor(vm):
    """Where the search for free minors starts: spread by VM name, so that migrations of two VMs
    planned at the same moment (each from a preflight that cannot see the other) rarely pick the
    same minors. The hosts claim them under a host lock; a clash fails before any change."""
    return FIRST_MINOR + zlib.crc32(vm.encode("utf-8")) % MINOR_SPREAD


def _plan_drbd(plan, vm, source, src, facts, reports, unreachable, target, addresses):
    """Storage mode drbd: the disks already live on DRBD resources between the source and one
    peer; the target can only be that peer, and it must be the secondary, in sync."""
    problems = plan["problems"]
    plan["mode"] = "drbd"
    resources = [(d["drbd"], src["drbd_resources"][d["drbd"]]) for d in src["disks"]]
    peers = sorted(set(res["peer"]["name"] for _name, res in resources))
    if len(peers) != 1:
        problems.append("%s: the DRBD resources of %s have different peers (%s): no single host can take it"
                        % (source, vm, ", ".join(peers)))
        return plan
    peer = peers[0]
    if target is not None and target != peer:
        if target == source:
            problems.append("target = source: %s already runs on %s" % (vm, source))
        else:
            problems.append("%s is on DRBD with %s: the target can only be that peer (the secondary), not %s"
                            % (vm, peer, target))
        return plan
    if peer not in reports:
        problems.append("the DRBD peer of %s, %s, is not a dom0 of the inventory (%s)" % (vm, peer, ", ".join(sorted(reports))))
        return plan
    if peer in unreachable:
        problems.append("target %s (the DRBD peer of %s) did not answer the preflight" % (peer, vm))
        return plan
    dst = facts[peer]["preflight"]
    for name, res in resources:
        state = res["state"]
        # a resync still running is fine: the promote step waits for it
        if state.get("role") != "Primary" or state.get("cstate") not in ("Connected", "SyncSource", "PausedSyncS") or \
                state.get("disk") != "UpToDate":
            problems.append("%s: DRBD %s of %s must be Primary, connected to %s and UpToDate to migrate; it is "
                            "%s, %s, %s/%s" % (source, name, vm, peer, state.get("role"), state.get("cstate"),
                                               state.get("disk"), state.get("peer_disk")))
        theirs = dst.get("drbd_resources", {}).get(name)
        if theirs is None:
            problems.append("%s: has no DRBD resource %s (the peer of %s has it)" % (peer, name, source))
        elif theirs["state"].get("role") != "Secondary":
            problems.append("%s: DRBD %s is %s there, it must be Secondary" % (peer, name, theirs["state"].get("role")))
    problems.extend(_choose_target(vm, src, facts, [peer], [], addresses)["verdicts"][peer]["problems"])
    plan["target"] = peer
    plan["disks"] = [{"resource": name, "minor": res["minor"], "device": res["device"]} for name, res in resources]
    plan["minors"] = [res["minor"] for _name, res in resources]
    plan["ports"] = [res["peer"]["port"] for _name, res in resources]
    return plan


def _plan_shared(plan, vm, source, src, facts, reports, unreachable, target, addresses):
    """Storage mode shared: the disks are on their shared paths (/dev/sanless/<owner>/<vg>/<lv>); a target must
    reach every one of them (the owner itself, or a dom0 that imports them), no disk moves, no DRBD."""
    problems = plan["problems"]
    plan["mode"] = "shared"
    plan["disks"] = [dict(d["shared"], path=d["pdev_path"]) for d in src["disks"]]
    if target is not None and _refuse_target(problems, vm, source, target, reports, unreachable):
        return plan
    missing = {}
    for host in [target] if target is not None else sorted(h for h in facts if h != source):
        lacks = [d["path"] for d in plan["disks"] if d["path"] not in facts[host]["preflight"].get("shared_paths", [])]
        if lacks:
            missing[host] = "%s: lacks the import of %s (run playbooks/export.yml -e vm=%s -e to=%s first)" % (
                host, ", ".join(lacks), vm, host)
    candidates = [h for h in ([target] if target is not None else sorted(facts)) if h != source and h not in missing]
    decision = _choose_target(vm, src, facts, candidates, [], addresses)
    if decision["host"] is None:
        if not candidates and not missing:
            problems.append("no other dom0 to migrate %s to" % vm)
        problems.extend(missing[host] for host in sorted(missing))
        for host in sorted(candidates):
            problems.extend(decision["verdicts"][host]["problems"])
        return plan
    plan["target"] = decision["host"]
    return plan


def _source_vg_problems(vm, source, src):
    """The source creates a DRBD metadata LV per plain disk in the disk's own VG."""
    need = {}
    for disk in src["disks"]:
        if disk.get("lv") and not disk.get("drbd"):
            extent = src.get("vg_extent_bytes", {}).get(disk["vg"]) or DEFAULT_EXTENT_BYTES
            need[disk["vg"]] = need.get(disk["vg"], 0) + meta_bytes(disk["size_bytes"], extent)
    return ["%s: VG %s needs %d bytes for the DRBD metadata of %s's disks, has %d free" % (
        source, vg, bytes_, vm, src["vgs"].get(vg, 0)) for vg, bytes_ in sorted(need.items()) if src["vgs"].get(vg, 0) < bytes_]


def _choose_target(vm, src, facts, candidates, disks, addresses, target_vgs=None):
    """plan.placement over the candidates (memory with Xen's overhead, VG space for the disks and their
    DRBD metadata, the ranking), with the migration's own refusals (_target_problems) added per host."""
    hosts = []
    for host in candidates:
        dst = facts[host]["preflight"]
        extents = dst.get("vg_extent_bytes") or {}
        hosts.append({"name": host, "memory_free_mib": dst["free_memory_mib"], "vg": (target_vgs or {}).get(host),
                      "vgs": dict((vg, {"free_bytes": free, "extent_bytes": extents.get(vg)}) for vg, free in dst["vgs"].items())})
    demand = {"name": vm, "memory_mib": src["vm_memory_mib"] or 0, "vcpus": src.get("vm_vcpus") or 1,
              "type": src.get("vm_type") or "pv", "disks": disks, "drbd_meta": True, "vg_strict": False}
    return placement(hosts, demand, check=lambda host, verdict: _target_problems(
        vm, src, host, facts[host]["preflight"], disks, addresses.get(host, host), verdict["disk_vgs"]))


def _target_problems(vm, src, host, dst, disks, address, disk_vgs):
    """What refuses a target besides room (plan.placement judges memory and VG space)."""
    problems = []
    if dst["runs_vm"]:
        problems.append("%s: %s already runs there" % (host, vm))
    for disk, vg in zip(disks, disk_vgs):
        if vg is None:
            continue
        if vg != disk["vg"] and not src.get("config_present"):
            # xl migrate must send the config file with the disk's path there (-C); the domain's own has this one
            problems.append("%s: disk %s/%s would go in VG %s there, and %s has no /etc/xen/auto config on its "
                            "source to send with the disk's path there" % (host, disk["vg"], disk["lv"], vg, vm))
        extent = dst.get("vg_extent_bytes", {}).get(vg) or DEFAULT_EXTENT_BYTES
        if disk["size_bytes"] % extent:
            # lvcreate would round it up: a target LV larger than the DRBD device cannot take its table
            problems.append("%s: LV %s/%s is %d bytes, not a multiple of VG %s's extent size there (%d)"
                            % (host, disk["vg"], disk["lv"], disk["size_bytes"], vg, extent))
        if disk["lv"] in dst["lvs"].get(vg, []):
            problems.append("%s: LV %s/%s already exists there" % (host, vg, disk["lv"]))
    problems.extend(guest_type_migration_problems(vm, src["vm_type"], None, None, host, dst["virt_caps"]))
    if src["ssh_ok"].get(address) is False:
        problems.append("the source cannot ssh to %s (%s) as root: xl migrate needs it" % (host, address))
    return problems


def host_address(hostvars, host):
    """A dom0's address: ansible_host, or its inventory name (a dom0 reached by DNS name)."""
    return hostvars[host].get("ansible_host", host)


def migration_plan(hostvars, hosts, vm, target=None, action="migrate", register="sanless_preflight", target_vgs=None):
    """Filter: build the reports from hostvars and plan (see plan_migration). A dom0's VG for VM disks is its
    xen_vg host variable, unless target_vgs names another."""
    reports = dict((host, hostvars[host].get(register)) for host in hosts)
    addresses = dict((host, host_address(hostvars, host)) for host in hosts)
    vgs = dict((host, hostvars[host].get("xen_vg")) for host in hosts if hostvars[host].get("xen_vg"))
    vgs.update((host, vg) for host, vg in (target_vgs or {}).items() if vg)
    return plan_migration(reports, addresses, vm, target, action, vgs)


def migration_peers(hostvars, hosts, me, target=""):
    """Filter: the addresses of the other dom0s the preflight checks root ssh to: the target's alone when
    it names one of hosts (each handshake costs seconds on a busy dom0), else every other one's (the plan
    picks the target from them)."""
    if target and target in hosts:
        hosts = [target]
    return [host_address(hostvars, host) for host in hosts if host != me and is_address(host_address(hostvars, host))]


# What the migrate role registers, per action: (step, variable, the host that runs it).
SUMMARY_STEPS = {
    "migrate": (("prepare", "migrate_prepared", "source"), ("prepare", "migrate_prepared", "target"),
                ("promote", "migrate_promoted", "source"), ("promote", "migrate_promoted", "target"),
                ("finish", "migrate_finished", "source"), ("finish", "migrate_finished", "target")),
    "abort": (("abort", "migrate_demoted", "target"), ("abort", "migrate_rolled_back", "source"),
              ("abort", "migrate_target_rolled_back", "target")),
}
OUTCOMES = {"finished": "migrated", "aborted": "aborted"}


def _ran(result):
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def _failed(result):
    return _ran(result) and bool(result.get("failed") or result.get("unreachable"))


def _one_line(text, limit=300):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def summarize_migration(vm, action, plan, results, check_mode=False):
    """The outcome of one run of the migrate role, for its job artifacts (set_stats).

    ``results``: (step, host role, registered result) for each step variable the role registers.
    Returns vm, action, source, target, migration_id, mode, resumed, result (migrated, aborted,
    refused, failed, checked or incomplete), closed_earlier (a resumed migration that the killed
    run's last step had ended), failed_step, failed_host, msg, problems, seconds (first to last
    event of the source's journal), sync_seconds (the wait for the DRBD sync), xl_migrate_seconds and
    pause_ms (the longest pause of the guest by a table swap, on either side). Only figures and names: no journal, no secret, no config text."""
    plan = plan if isinstance(plan, dict) else {}
    hosts = {"source": plan.get("source"), "target": plan.get("target")}
    summary = {"vm": vm, "action": action, "source": hosts["source"], "target": hosts["target"],
               "migration_id": plan.get("migration_id"), "mode": plan.get("mode"), "resumed": bool(plan.get("resume")),
               "result": None, "closed_earlier": False, "failed_step": None, "failed_host": None, "msg": None,
               "problems": list(plan.get("problems") or []), "seconds": None, "sync_seconds": None,
               "xl_migrate_seconds": None, "pause_ms": None}
    journals = [r["journal"] for _s, _h, r in results if _ran(r) and isinstance(r.get("journal"), dict)]
    if summary["migration_id"] is None and journals:
        summary["migration_id"] = journals[0].get("id")
    # the source's journal as its last step left it: the migration's events with their times
    log = next((r["journal"].get("log") or [] for _s, who, r in reversed(results)
                if who == "source" and _ran(r) and isinstance(r.get("journal"), dict)), [])
    times = [e["at"] for e in log if isinstance(e.get("at"), (int, float))]
    if len(times) > 1:
        summary["seconds"] = round(max(times) - min(times), 1)
    migrated = [e.get("seconds") for e in log if e.get("event") == "migrated"]
    summary["xl_migrate_seconds"] = migrated[-1] if migrated else None
    # the guest's pauses by the engine (the dm table swaps), on either side: the longest
    pauses = [e["pause_ms"] for journal in journals for e in journal.get("log") or []
              if isinstance(e, dict) and isinstance(e.get("pause_ms"), (int, float))]
    summary["pause_ms"] = max(pauses) if pauses else None
    promoted = [r for step, who, r in results if step == "promote" and who == "source" and _ran(r)]
    summary["sync_seconds"] = promoted[0].get("sync_seconds") if promoted else None
    failed = [(step, who, r) for step, who, r in results if _failed(r)]
    # a resume's prepare or an abort's rollback that found the migration closed by the killed run's last step
    ended = [r["ended"] for step, _w, r in results if step in ("prepare", "abort") and _ran(r) and r.get("ended")]
    if not plan:
        summary.update(result="failed", msg="no migration plan was made")
    elif summary["problems"]:
        summary["result"] = "refused"
    elif failed:
        step, who, result = failed[0]
        summary.update(result="failed", failed_step=step, failed_host=hosts[who],
                       msg=_one_line(result.get("msg") or "%s failed on %s" % (step, hosts[who])))
    elif ended:
        summary.update(result=OUTCOMES.get(ended[0], ended[0]), closed_earlier=True)
    elif check_mode:
        summary["result"] = "checked"
    else:
        last = [(who, r) for step, who, r in results if step == ("finish" if action == "migrate" else "abort")]
        done = set(who for who, r in last if _ran(r))
        # an abort whose target did not answer rolls the source back alone (plan skip)
        need = set(["source"] if action == "abort" else ["source", "target"])
        summary["result"] = ("migrated" if action == "migrate" else "aborted") if need <= done else "incomplete"
    return summary


def migration_summary(hostvars, plan, vm, action="migrate", check_mode=False):
    """Filter: summarize_migration from what the migrate role registered on the source and target."""
    plan = plan if isinstance(plan, dict) else {}
    results = []
    for step, variable, who in SUMMARY_STEPS.get(action, ()):
        host = plan.get(who)
        results.append((step, who, hostvars[host].get(variable) if host and host in hostvars else None))
    return summarize_migration(vm, action, plan, results, check_mode)


class FilterModule(object):
    def filters(self):
        return {"migration_plan": migration_plan, "migration_peers": migration_peers,
                "migration_summary": migration_summary}
