# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Failover and watcher plans (module_utils/recovery.py) on xen_info results gathered from the lab's recordings.

The recordings were made on one dom0 at a time; each cluster here is composed of them (fixture recorded_xen_info), a
recording of hosta standing for hostb where needed. One /proc/drbd text is DERIVED, not recorded, and says so:
the secondary whose primary lost power (WFConnection, Secondary/Unknown, UpToDate/DUnknown), made from
proc-drbd-uptodate-secondary.txt.
"""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.sanless.xen.plugins.filter.placement import vm_plan_vars
from ansible_collections.sanless.xen.plugins.module_utils import recovery
from ansible_collections.sanless.xen.plugins.module_utils.conventions import shared_disk_path
from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError
from ansible_collections.sanless.xen.plugins.module_utils.recovery import (
    drbd_resources, failover_actions, replica_state, watcher_actions,
)
from ansible_collections.sanless.xen.plugins.filter.recovery import failover_fence_check
from ansible_collections.sanless.xen.tests.unit.conftest import LAB_INITIATORS, LAB_MACS

GUEST = {"xen_memory_mib": 96}
META = {
    # fxm: DRBD on minor 90 between hostb (home) and hosta
    "fxm": dict(GUEST, xen_storage_mode="drbd", xen_home="hostb", xen_drbd_peer="hosta", xen_restart_order=1,
                xen_disks=[{"name": "disk", "size": "128M", "vdev": "xvda", "drbd_minor": 90}]),
    "plain1": dict(GUEST, xen_storage_mode="plain", xen_home="hostb"),
    "shared1": dict(GUEST, xen_storage_mode="shared", xen_home="hostb", xen_restart_on=["hosta"]),
    "shared2": dict(GUEST, xen_storage_mode="shared", xen_home="hostb", xen_restart_on=["hosta"], xen_restart_order=0),
}


@pytest.fixture
def peer_lost(fixture_text, tmp_path):
    """hosta's /proc/drbd when hostb, the primary of minor 90, lost power: DERIVED from proc-drbd-uptodate-secondary.txt."""
    text = fixture_text("drbd", "8.4.11", "proc-drbd-uptodate-secondary.txt").replace(
        "90: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate", "90: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown")
    assert "ds:UpToDate/DUnknown" in text
    return text


def with_drbd(result, text):
    from ansible_collections.sanless.xen.plugins.module_utils.drbd import parse_proc_drbd
    drbd = parse_proc_drbd(text)
    drbd["minors"] = dict((str(k), v) for k, v in drbd["minors"].items())
    return dict(result, drbd=drbd)


def test_failover_promotes_an_uptodate_peer_and_reports_plain_vms_lost(recorded_xen_info, peer_lost):
    info = {"hosta": with_drbd(recorded_xen_info("hosta", "xl-list.txt"), peer_lost),
            "hostb": {"unreachable": True, "msg": "No route to host"}}
    meta = vm_plan_vars(META, sorted(META))
    plan = failover_actions(info, meta, "hostb", parallel=2)
    assert plan["refused"] is None
    # priority order (xen_restart_order, then name) from the planner, two per batch
    assert [(r["vm"], r["to"], r["batch"]) for r in plan["restarts"]] == [
        ("shared2", "hosta", 0), ("fxm", "hosta", 0), ("shared1", "hosta", 1)]
    assert plan["restarts"][1]["resources"] == [{"name": "fxm-disk", "minor": 90}]
    assert plan["lost"] == [{"vm": "plain1", "from": "hostb",
                             "reason": "plain storage: no replica to restart from; lost until hostb returns"}]
    assert plan["guard"]["ok"] and plan["guard"]["hosts"]["hostb"] == "dead"
    assert plan["summary"][0] == "Failover of hostb (confirm_dead)"
    assert "  restart fxm on hosta (batch 1, promote fxm-disk)" in plan["summary"]


def test_failover_never_promotes_a_disk_that_is_not_uptodate(recorded_xen_info):
    # hosta's minor 90 Secondary, Inconsistent (recorded while a resync waited for its peer)
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt", "proc-drbd-wfconnection.txt"),
            "hostb": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars(META, ["fxm"]), "hostb")
    assert plan["restarts"] == []
    assert plan["lost"][0]["vm"] == "fxm"
    assert "fxm-disk: local disk Inconsistent, not UpToDate" in plan["lost"][0]["reason"]


def test_failover_is_refused_when_the_dom0_answers_and_checks_its_name(recorded_xen_info):
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt"),
            "hostb": recorded_xen_info("hostb", "xl-list-domu.txt")}
    plan = failover_actions(info, {}, "hostb")
    assert plan["refused"] == "hostb answers (it runs fxrec): it is not dead; evacuate it instead"
    assert "REFUSED" in plan["summary"][0]
    with pytest.raises(PlanError, match="hostc"):
        failover_actions(info, {}, "hostc")


def test_failover_leaves_what_another_unknown_dom0_may_run(recorded_xen_info, peer_lost):
    info = {"hosta": with_drbd(recorded_xen_info("hosta", "xl-list.txt"), peer_lost),
            "hostb": {"unreachable": True}, "hostc": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars(META, ["fxm"]), "hostb")
    assert plan["restarts"] == []
    assert "fxm may run on hostc, which did not answer" in plan["lost"][0]["reason"]


def test_watcher_restarts_what_should_run_on_its_owner(recorded_xen_info):
    # hosta owns fxrec (running) and plain1 (down); hostb owns shared1 (down) and runs nothing
    info = {"hosta": recorded_xen_info("hosta", "xl-list-domu.txt", configs=["fxrec", "plain1"], boot_id="a-1"),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", configs=["shared1"], boot_id="b-1")}
    plan = watcher_actions(info, META, {"hosta": "a-1", "hostb": "b-1"}, parallel=1)
    assert [(r["vm"], r["to"], r["batch"]) for r in plan["restarts"]] == [("plain1", "hosta", 0), ("shared1", "hostb", 1)]
    assert plan["rebooted"] == [] and plan["reconnect"] == [] and plan["disown"] == []
    # desired stopped in the inventory: left down
    meta = dict(META, plain1=dict(META["plain1"], xen_desired_state="stopped"))
    assert [r["vm"] for r in watcher_actions(info, meta)["restarts"]] == ["shared1"]


def test_watcher_after_a_reboot_brings_drbd_up_and_hands_back_ownership(recorded_xen_info):
    # hosta runs fxm (failed over there, owns it, Primary); hostb rebooted (new boot id), still has fxm's config,
    # and its minor 90 is not up (proc-drbd-fxr-down: no minor)
    info = {"hosta": recorded_xen_info("hosta", "xl-list-migrate-source-before.txt", "proc-drbd-primary-standalone-peer.txt",
                                       configs=["fxm"], boot_id="a-1"),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", "proc-drbd-fxr-down.txt", configs=["fxm"], boot_id="b-2")}
    plan = watcher_actions(info, META, {"hosta": "a-1", "hostb": "b-1"})
    assert plan["rebooted"] == ["hostb"]
    assert plan["reconnect"] == [{"host": "hostb", "vm": "fxm", "resource": "fxm-disk", "minor": 90, "action": "up"}]
    assert plan["disown"] == [{"vm": "fxm", "host": "hostb", "runs_on": "hosta"}]
    assert plan["restarts"] == []
    # without the reboot, the resource that is down is reported, not brought up
    plan = watcher_actions(info, META, {"hosta": "a-1", "hostb": "b-2"})
    assert plan["reconnect"] == [] and [p["kind"] for p in plan["problems"]] == ["drbd_down"]


def test_watcher_reports_split_brain_and_never_resolves_it(recorded_xen_info):
    # minor 200 StandAlone on hostb (recorded after drbdadm disconnect): a DRBD VM on it
    meta = {"sb1": dict(GUEST, xen_storage_mode="drbd", xen_home="hosta", xen_drbd_peer="hostb",
                        xen_disks=[{"name": "disk", "size": "8M", "vdev": "xvda", "drbd_minor": 200}])}
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt", "proc-drbd-wfconnection-200.txt", boot_id="a-1"),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", "proc-drbd-standalone.txt", boot_id="b-2")}
    plan = watcher_actions(info, meta, {"hostb": "b-1"})
    kinds = [(p["kind"], p["vm"]) for p in plan["problems"]]
    assert kinds == [("split_brain", "sb1")]
    assert "NOT resolved (no data is discarded)" in plan["problems"][0]["message"]
    assert plan["reconnect"] == []


def test_watcher_blocks_what_may_run_elsewhere(recorded_xen_info):
    # fxm down, owned by hostb, whose peer hosta did not answer: not started (hosta may run it)
    info = {"hosta": {"unreachable": True},
            "hostb": recorded_xen_info("hostb", "xl-list.txt", "proc-drbd-uptodate-secondary.txt", configs=["fxm", "plain1"])}
    plan = watcher_actions(info, META)
    assert [r["vm"] for r in plan["restarts"]] == ["plain1"]  # a plain VM's disks are its owner's
    blocked = [p for p in plan["problems"] if p["vm"] == "fxm"][0]
    assert "fxm may run on hosta, which did not answer" in blocked["message"]
    # owned twice and down: not restarted
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt", configs=["plain1"]),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", configs=["plain1"])}
    plan = watcher_actions(info, META)
    assert plan["restarts"] == []
    assert [p["kind"] for p in plan["problems"] if p["vm"] == "plain1"] == ["owned_twice"]
    # fxm's DRBD is up nowhere (no /proc/drbd in these recordings), and no dom0 rebooted: reported, left alone
    assert [p["kind"] for p in plan["problems"] if p["vm"] == "fxm"] == ["drbd_down", "drbd_down"]


def test_resources_and_replica_state():
    assert drbd_resources("fxm", META["fxm"]) == [{"name": "fxm-disk", "minor": 90}]
    assert drbd_resources("plain1", META["plain1"]) == []
    assert replica_state({"drbd": {"minors": {"90": {"role": "Primary"}}}}, [{"name": "r", "minor": 90}]) == []
    assert replica_state({}, [{"name": "r", "minor": 90}]) == ["r (minor 90) is not up"]


def test_failover_finds_a_drbd_vm_migrated_to_the_dead_dom0(recorded_xen_info, peer_lost):
    # fxm's xen_home is hosta, but it was migrated to hostb (hosta no longer owns it) before hostb died
    meta = vm_plan_vars({"fxm": dict(META["fxm"], xen_home="hosta", xen_drbd_peer="hostb")}, ["fxm"])
    info = {"hosta": with_drbd(recorded_xen_info("hosta", "xl-list.txt"), peer_lost),
            "hostb": {"unreachable": True}}
    plan = failover_actions(info, meta, "hostb")
    assert [(r["vm"], r["from"], r["to"]) for r in plan["restarts"]] == [("fxm", "hostb", "hosta")]
    # owned by hosta (stopped there by hand): it is hosta's, not the dead dom0's
    info["hosta"] = with_drbd(recorded_xen_info("hosta", "xl-list.txt", configs=["fxm"]), peer_lost)
    assert failover_actions(info, meta, "hostb")["restarts"] == []


RAID1 = {"r1": dict(GUEST, xen_storage_mode="raid1", xen_home="hosta", xen_raid1_partner="hostb",
                    xen_restart_on=["hostb"], xen_disks=[{"name": "data", "size": "8M", "vdev": "xvdb",
                                                          "partner_vdev": "xvdc"}])}


def test_a_raid1_vm_is_never_restarted_while_it_may_run_elsewhere(recorded_xen_info):
    # issue 13, item 6: both dom0s see both legs, so a raid1 VM restarts only when every dom0 answered and none
    # runs it. Down and owned by hosta, hostb silent: blocked (unlike a plain VM, whose disks are its owner's)
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt", configs=["r1"]), "hostb": {"unreachable": True}}
    plan = watcher_actions(info, RAID1)
    assert plan["restarts"] == []
    [blocked] = [p for p in plan["problems"] if p["vm"] == "r1"]
    assert blocked["kind"] == "blocked" and "r1 may run on hostb, which did not answer" in blocked["message"]
    # every dom0 answers and none runs it: restarted on its owner
    info["hostb"] = recorded_xen_info("hostb", "xl-list.txt")
    assert [(r["vm"], r["to"]) for r in watcher_actions(info, RAID1)["restarts"]] == [("r1", "hosta")]


# raid1 failover. hosta's storage facts are the lab's recorded ones (lab_storage_facts: hosta's own xenvg/rec0 and
# rec1 on their shared paths, hostb's rec2 and rec3 imported) with the LVs of the shared paths RENAMED (DERIVED, not
# recorded) to the raid1 VMs' legs.


@pytest.fixture
def hosta_with_legs(recorded_xen_info, lab_storage_facts):
    """legs(names, configs=()) -> hosta's xen_info (xl-list: no domU) with disk_exports whose shared paths' LVs are
    renamed by names ({recorded LV: new LV})."""
    facts = lab_storage_facts("hosta")

    def legs(names, configs=(), boot_id=None):
        exports = copy.deepcopy(facts)
        for entry in exports["shared_paths"]:
            if entry["lv"] in names:
                entry["lv"] = names[entry["lv"]]
                entry["path"] = shared_disk_path(entry["owner"], entry["vg"], entry["lv"])
        return dict(recorded_xen_info("hosta", "xl-list.txt", configs=configs, boot_id=boot_id), disk_exports=exports)
    return legs


R1 = dict(GUEST, xen_storage_mode="raid1", xen_home="hostb", xen_raid1_partner="hosta", xen_vg="xenvg",
          xen_disks=[{"name": "data", "size": "8M", "vdev": "xvdb", "partner_vdev": "xvdc"}])
R1_LEGS = {"hosta": shared_disk_path("hosta", "xenvg", "r1-data"), "hostb": shared_disk_path("hostb", "xenvg", "r1-data")}


def test_the_planner_restarts_a_raid1_vm_where_its_legs_are():
    # every disk mirrored: home and partner hold a leg of each; a system disk on the home only: the home alone
    assert vm_plan_vars({"r1": R1}, ["r1"])["r1"]["xen_restart_on"] == ["hostb", "hosta"]
    web07 = dict(R1, xen_home="hosta", xen_raid1_partner="hostb", xen_restart_on=["hostc"],
                 xen_disks=[{"name": "root", "size": "1G", "vdev": "xvda", "raid1": False}] + R1["xen_disks"])
    assert vm_plan_vars({"web07": web07}, ["web07"])["web07"]["xen_restart_on"] == ["hosta", "hostc"]


def test_failover_starts_a_raid1_vm_degraded_on_its_partner(hosta_with_legs):
    info = {"hosta": hosta_with_legs({"rec0": "r1-data"}), "hostb": {"unreachable": True, "msg": "No route to host"}}
    plan = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb")
    assert plan["refused"] is None and plan["lost"] == []
    [item] = plan["restarts"]
    assert (item["vm"], item["from"], item["to"], item["storage_mode"]) == ("r1", "hostb", "hosta", "raid1")
    # its config on hosta names hosta's leg only (xl create fails on a missing phy device); md runs degraded on it
    assert item["domain_disks"] == [{"target": R1_LEGS["hosta"], "vdev": "xvdc"}]
    assert item["require_paths"] == [R1_LEGS["hosta"]]
    assert item["left_out"] == [{"disk": "data", "host": "hostb", "path": R1_LEGS["hostb"], "vdev": "xvdb"}]
    assert item["degraded"] == ["data"] and item["arrays"] == ["/dev/md/data"] and item["resources"] == []
    assert ("  restart r1 on hosta (batch 1, DEGRADED without hostb's leg of data (re-add it with raid1_repair.yml "
            "once hostb is back))") in plan["summary"]


def test_failover_never_starts_a_raid1_vm_on_the_legs_of_a_dom0_that_rebooted_since_the_watcher_re_added_them(
        hosta_with_legs):
    # hosta rebooted (boot a-2) after the watcher's last pass there (a-1): while it was down the guest ran on hostb
    # and md wrote on hostb's leg alone; hosta's leg, whose superblock still says the array was whole, would bring
    # back old data. Not started; the operator's word (legs_current) starts it, said in the notes.
    info = {"hosta": hosta_with_legs({"rec0": "r1-data"}, boot_id="a-2"), "hostb": {"unreachable": True}}
    meta = vm_plan_vars({"r1": R1}, ["r1"])
    plan = failover_actions(info, meta, "hostb", last_boot_ids={"hosta": "a-1", "hostb": "b-1"})
    assert plan["restarts"] == []
    [lost] = plan["lost"]
    assert lost["vm"] == "r1" and lost["reason"] == (
        "not restarted on hosta: hosta rebooted after the watcher's last pass there (boot id a-1 then, a-2 now) and no "
        "pass has re-added its legs since: md in r1 may have written on without them, so they may lack acknowledged "
        "writes; let the watcher re-add them when the dead dom0 is back, or run again with -e legs_current=true if you "
        "know hosta's legs are current")
    plan = failover_actions(info, meta, "hostb", last_boot_ids={"hosta": "a-1"}, legs_current=True)
    assert [item["vm"] for item in plan["restarts"]] == ["r1"]
    assert any(note.startswith("r1 starts on hosta's legs on the operator's word (legs_current=true): hosta rebooted")
               for note in plan["notes"])
    # the pass kept a-2 (it re-added hosta's legs after that boot): started, nothing said
    plan = failover_actions(info, meta, "hostb", last_boot_ids={"hosta": "a-2"})
    assert [item["vm"] for item in plan["restarts"]] == ["r1"] and not any("watcher" in n for n in plan["notes"])
    # no pass on record on hosta: started, and the plan says what is not known
    plan = failover_actions(info, meta, "hostb", last_boot_ids={"hostb": "b-1"})
    assert [item["vm"] for item in plan["restarts"]] == ["r1"]
    assert ("hosta has no watcher pass on record (no watcher/boot_id): whether its legs of r1 were re-added after its "
            "last reboot is not known") in plan["notes"]


def test_failover_never_starts_a_raid1_vm_where_a_leg_is_missing(hosta_with_legs, recorded_xen_info):
    # hosta has no shared path of r1's leg (the recorded facts, nothing renamed): not started, why said
    info = {"hosta": hosta_with_legs({}), "hostb": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb")
    assert plan["restarts"] == []
    [lost] = plan["lost"]
    assert lost["vm"] == "r1" and ("disk data: hosta's leg %s is not present on hosta" % R1_LEGS["hosta"]) in lost["reason"]
    # xen_info without disk_exports: hosta's export state is unknown, so its exports to hostb cannot be removed (the
    # storage fence): refused, unless the operator starts it unfenced; vm_restart checks require_paths on hosta then
    info["hosta"] = recorded_xen_info("hosta", "xl-list.txt")
    plan = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb")
    assert plan["restarts"] == []
    assert ("storage fence: the export state of hosta is unknown (no storage facts): its exports to hostb cannot be "
            "removed (run again with -e unfenced=true to start it unfenced)") in plan["lost"][0]["reason"]
    plan = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb", unfenced=True)
    [item] = plan["restarts"]
    assert item["require_paths"] == [R1_LEGS["hosta"]]
    assert item["fence"]["skipped"] and item["fence"]["message"].startswith("UNFENCED (unfenced=true): hostb may start r1")
    assert "r1 starts on hosta " + item["fence"]["message"] in plan["notes"]


def test_a_raid1_vm_with_a_disk_only_on_the_dead_dom0_is_lost(hosta_with_legs):
    meta = {"r1": dict(R1, xen_restart_on=["hosta"], xen_disks=[{"name": "root", "size": "1G", "vdev": "xvda",
                                                                 "raid1": False}] + R1["xen_disks"])}
    info = {"hosta": hosta_with_legs({"rec0": "r1-data"}), "hostb": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars(meta, ["r1"]), "hostb")
    assert plan["restarts"] == []
    [lost] = plan["lost"]
    assert lost["reason"] == ("not restarted on hosta: disk root is not mirrored (raid1: false): its only LV "
                              "xenvg/r1-root is on hostb, which is dead; the VM cannot start without it (lost until "
                              "hostb returns)")
    # without xen_restart_on the planner knows it: no dom0 but its home holds every disk
    plan = failover_actions(info, vm_plan_vars(dict(meta, r1=dict(meta["r1"], xen_restart_on=[])), ["r1"]), "hostb")
    assert [(e["vm"], e["reason"]) for e in plan["lost"]] == [
        ("r1", "plain storage: no replica to restart from; lost until hostb returns")]


WEB07 = dict(GUEST, xen_storage_mode="raid1", xen_home="hosta", xen_raid1_partner="hostb", xen_vg="xenvg",
             xen_disks=[{"name": "root", "size": "1G", "vdev": "xvda", "raid1": False},
                        {"name": "data", "size": "256M", "vdev": "xvdb", "partner_vdev": "xvdc"}])


def test_a_raid1_vm_migrated_to_its_dead_partner_restarts_on_its_home(hosta_with_legs):
    # web07 (home hosta) ran on hostb: it runs nowhere and hosta does not own it (the migration moved its config)
    info = {"hosta": hosta_with_legs({"rec0": "web07-data", "rec1": "web07-root"}), "hostb": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars({"web07": WEB07}, ["web07"]), "hostb")
    [item] = plan["restarts"]
    assert (item["vm"], item["from"], item["to"]) == ("web07", "hostb", "hosta")
    assert item["domain_disks"] == [{"target": shared_disk_path("hosta", "xenvg", "web07-root"), "vdev": "xvda"},
                                    {"target": shared_disk_path("hosta", "xenvg", "web07-data"), "vdev": "xvdb"}]
    assert item["left_out"] == [{"disk": "data", "host": "hostb", "vdev": "xvdc",
                                 "path": shared_disk_path("hostb", "xenvg", "web07-data")}]
    # owned by hosta (stopped there): hosta's, not the dead dom0's
    info["hosta"] = hosta_with_legs({"rec0": "web07-data", "rec1": "web07-root"}, configs=["web07"])
    plan = failover_actions(info, vm_plan_vars({"web07": WEB07}, ["web07"]), "hostb")
    assert plan["restarts"] == [] and plan["lost"] == []


def test_a_raid1_vm_owned_by_a_survivor_is_not_failed_over(hosta_with_legs):
    # r1's home is the dead hostb, but hosta owns it (it was stopped there): never owned twice
    info = {"hosta": hosta_with_legs({"rec0": "r1-data"}, configs=["r1"]), "hostb": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb")
    # hosta is the target and owns it: its config there is rewritten, it is not owned twice
    assert [r["vm"] for r in plan["restarts"]] == ["r1"]
    info["hostc"] = dict(info["hosta"], disk_exports={"shared_paths": []})
    info["hosta"] = hosta_with_legs({"rec0": "r1-data"})
    meta = vm_plan_vars({"r1": dict(R1, xen_restart_on=["hosta"])}, ["r1"])
    plan = failover_actions(info, meta, "hostb")
    assert plan["restarts"] == []
    assert "owned by hostc (its config is there): it stopped there, not with hostb" in plan["lost"][0]["reason"]


def test_failover_finds_a_raid1_partner_that_is_not_in_the_inventory(hosta_with_legs):
    # no xen_raid1_partner (the placement chose it at provisioning): the one survivor holding the legs' LVs
    hosta = hosta_with_legs({"rec0": "r1-data"})
    hosta["lvs"] = [dict(hosta["lvs"][0], name="r1-data")]  # DERIVED: the recorded LV renamed to the leg
    meta = dict(R1, xen_restart_on=["hosta"])
    meta.pop("xen_raid1_partner")
    plan = failover_actions({"hosta": hosta, "hostb": {"unreachable": True}}, vm_plan_vars({"r1": meta}, ["r1"]), "hostb")
    assert [(r["vm"], r["to"], r["domain_disks"]) for r in plan["restarts"]] == [
        ("r1", "hosta", [{"target": R1_LEGS["hosta"], "vdev": "xvdc"}])]


def test_a_raid1_vm_is_not_failed_over_while_another_dom0_may_run_it(hosta_with_legs):
    info = {"hosta": hosta_with_legs({"rec0": "r1-data"}), "hostb": {"unreachable": True}, "hostc": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb")
    assert plan["restarts"] == []
    assert "r1 may run on hostc, which did not answer" in plan["lost"][0]["reason"]


def test_watcher_asks_for_the_re_add_of_a_raid1_leg_on_a_rebooted_dom0(recorded_xen_info):
    # r1 runs on hosta (the failover put it there, hosta owns it); hostb, its home, rebooted and still has the stale
    # config: handed back, and hostb's leg is to be re-added
    info = {"hosta": recorded_xen_info("hosta", "xl-list-domu.txt", configs=["fxrec"], boot_id="a-1"),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", configs=["fxrec"], boot_id="b-2")}
    meta = {"fxrec": dict(R1, xen_raid1_partner="hosta")}
    plan = watcher_actions(info, meta, {"hosta": "a-1", "hostb": "b-1"})
    assert plan["disown"] == [{"vm": "fxrec", "host": "hostb", "runs_on": "hosta"}]
    [readd] = plan["raid1_readd"]
    assert (readd["vm"], readd["host"], readd["runs_on"]) == ("fxrec", "hostb", "hosta")
    assert "ansible-playbook playbooks/raid1_repair.yml -e vm=fxrec" in readd["message"]
    assert any(line.startswith("  RAID1 RE-ADD: fxrec runs on hosta and hostb rebooted") for line in plan["summary"])
    # no reboot: nothing to re-add
    assert watcher_actions(info, meta, {"hosta": "a-1", "hostb": "b-2"})["raid1_readd"] == []


def test_failover_waits_while_drbd_still_links_the_survivor_to_the_dead_dom0(recorded_xen_info, fixture_text, peer_lost):
    """Seen in the lab: seconds after hostb's power-off, hosta's /proc/drbd still said cs:Connected ro:Secondary/Primary
    (DRBD notices a dead peer when its ping timeout runs out), and the failover called web06 LOST ("the peer is
    Primary"). Recorded hosta text with minor 90 Connected to a Primary hostb: the VM waits, it is not judged."""
    connected = fixture_text("drbd", "8.4.11", "proc-drbd-uptodate-secondary.txt")
    assert "90: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate" in connected
    info = {"hosta": with_drbd(recorded_xen_info("hosta", "xl-list.txt"), connected),
            "hostb": {"unreachable": True, "msg": "No route to host"}}
    plan = failover_actions(info, vm_plan_vars(META, ["fxm"]), "hostb")
    assert plan["restarts"] == []
    assert plan["waiting"] == [{"host": "hosta", "vm": "fxm", "name": "fxm-disk", "minor": 90}]
    assert "DRBD fxm-disk on hosta still linked to hostb" in plan["lost"][0]["reason"]
    assert "the peer is Primary" not in plan["lost"][0]["reason"]
    # once DRBD noticed (WFConnection, peer Unknown): restarted, nothing to wait for
    info["hosta"] = with_drbd(recorded_xen_info("hosta", "xl-list.txt"), peer_lost)
    plan = failover_actions(info, vm_plan_vars(META, ["fxm"]), "hostb")
    assert [r["vm"] for r in plan["restarts"]] == ["fxm"] and plan["waiting"] == []


def test_the_failover_role_s_wait_filter_names_what_is_still_linked_on_that_host(recorded_xen_info, fixture_text, peer_lost):
    from ansible_collections.sanless.xen.plugins.filter.recovery import failover_still_linked
    waiting = [{"host": "hosta", "vm": "fxm", "name": "fxm-disk", "minor": 90},
               {"host": "hostc", "vm": "other", "name": "other-disk", "minor": 90}]
    connected = with_drbd(recorded_xen_info("hosta", "xl-list.txt"),
                          fixture_text("drbd", "8.4.11", "proc-drbd-uptodate-secondary.txt"))
    assert failover_still_linked(connected, waiting, "hosta") == ["fxm-disk"]
    assert failover_still_linked(with_drbd(recorded_xen_info("hosta", "xl-list.txt"), peer_lost), waiting, "hosta") == []
    # an unreachable read (no drbd in it) is not linked: the plan made again judges it
    assert failover_still_linked({"unreachable": True}, waiting, "hosta") == []


# The storage fence: hosta's recorded exports (lab_storage_facts: xenvg/rec0 LUN 0 of its LIO target with hostb's
# ACL, xenvg/rec1 AoE e1.2 from a unit without an allow-list) with the LVs RENAMED (DERIVED, not recorded) to web07's.


@pytest.fixture
def hosta_exporting(recorded_xen_info, lab_storage_facts):
    """exporting(names) -> hosta's xen_info with disk_exports in which the recorded LVs are renamed by names, in its
    exports and shared paths alike."""
    text = json.dumps(lab_storage_facts("hosta"))

    def exporting(names):
        facts = text
        for old, new in names.items():
            facts = facts.replace("/xenvg/%s\"" % old, "/xenvg/%s\"" % new).replace('"lv": "%s"' % old, '"lv": "%s"' % new)
        return dict(recorded_xen_info("hosta", "xl-list.txt"), disk_exports=json.loads(facts))
    return exporting


def test_failover_fences_the_dead_dom0_off_the_disks_before_the_restart(hosta_exporting):
    # web07 ran on hostb (migrated there); hosta holds its root (not mirrored) and its leg of data: data is exported
    # to hostb as LUN 0 (hostb's initiator in the ACL), root as e1.2 with hostb's MAC as allow-list (DERIVED: the
    # recorded unit has none)
    hosta = hosta_exporting({"rec0": "web07-data", "rec1": "web07-root"})
    [aoe] = [e for e in hosta["disk_exports"]["exports"] if e["transport"] == "aoe"]
    aoe["allowed"] = [LAB_MACS["hostb"]]
    info = {"hosta": hosta, "hostb": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars({"web07": WEB07}, ["web07"]), "hostb")
    [item] = plan["restarts"]
    fence = item["fence"]
    assert (fence["holder"], fence["importer"], fence["vm"], fence["disks"], fence["vg"]) == (
        "hosta", "hostb", "web07", ["root", "data"], "xenvg")
    assert fence["devices"] == ["/dev/xenvg/web07-root", "/dev/xenvg/web07-data"]
    assert fence["problems"] == [] and fence["needed"] is True
    # hostb is told by the IDs no dom0 that answered has (hosta's own initiator and MAC are hosta's)
    assert fence["ids"] == sorted([LAB_INITIATORS["hostb"], LAB_MACS["hostb"]])
    assert fence["transports"] == {"iscsi": "lio", "aoe": None}
    assert [(e["device"], e["address"], e["remove"], e["keep"]) for e in fence["exports"]] == [
        ("/dev/xenvg/web07-data", "LUN 0 of iqn.2026-12.xen.sanless:hosta", [LAB_INITIATORS["hostb"]], []),
        ("/dev/xenvg/web07-root", "e1.2", [LAB_MACS["hostb"]], [])]
    assert fence["message"] == "hostb no longer sees web07's disks on hosta (root, data)"
    assert "raid1_repair.yml -e vm=web07" in fence["step"]["undo"]
    assert ("    first fence hostb: hosta takes %s off the exports of web07's disks it holds (LUN 0 of "
            "iqn.2026-12.xen.sanless:hosta: removed; e1.2: removed), so that hostb no longer sees web07's disks on "
            "hosta (root, data)" % ", ".join(fence["ids"])) in plan["summary"]
    # the check, on hosta's exports read again: as they were, the fence did not hold; without them, it did
    assert failover_fence_check(fence, hosta) == {"result": "failed", "problems": [
        "LUN 0 of iqn.2026-12.xen.sanless:hosta (/dev/xenvg/web07-data) on hosta still allows %s" % LAB_INITIATORS["hostb"],
        "e1.2 (/dev/xenvg/web07-root) on hosta still allows %s" % LAB_MACS["hostb"]],
        "message": "NOT fenced: hostb may still see web07's disks on hosta (LUN 0 of iqn.2026-12.xen.sanless:hosta "
                   "(/dev/xenvg/web07-data) on hosta still allows %s; e1.2 (/dev/xenvg/web07-root) on hosta still "
                   "allows %s)" % (LAB_INITIATORS["hostb"], LAB_MACS["hostb"])}
    after = copy.deepcopy(hosta)
    after["disk_exports"]["exports"] = [e for e in after["disk_exports"]["exports"] if e["device"] not in fence["devices"]]
    assert failover_fence_check(fence, after) == {"result": "fenced", "message": fence["message"], "problems": []}
    assert failover_fence_check(fence, after, "hosta: LIO: boom")["result"] == "failed"
    assert failover_fence_check(fence, {"unreachable": True, "msg": "gone"})["problems"] == [
        "the exports of hosta could not be read again: gone"]


def test_a_fence_with_nothing_exported_to_the_dead_dom0_is_not_needed(hosta_with_legs):
    info = {"hosta": hosta_with_legs({"rec0": "r1-data"}), "hostb": {"unreachable": True}}
    [item] = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb")["restarts"]
    assert item["fence"]["needed"] is False and item["fence"]["problems"] == []
    assert item["fence"]["message"] == "hosta exports none of r1's disks to hostb: nothing to fence"


def test_a_raid1_vm_whose_fence_cannot_be_done_is_not_restarted(hosta_exporting):
    # root is exported as e1.2 from a unit without an allow-list (the recorded rec1): open to every MAC, hostb
    # cannot be taken off it alone
    info = {"hosta": hosta_exporting({"rec0": "web07-data", "rec1": "web07-root"}), "hostb": {"unreachable": True}}
    plan = failover_actions(info, vm_plan_vars({"web07": WEB07}, ["web07"]), "hostb")
    assert plan["restarts"] == []
    assert ("storage fence: e1.2 (/dev/xenvg/web07-root) on hosta is open to every MAC: it cannot be closed to hostb "
            "alone (run again with -e unfenced=true to start it unfenced)") in plan["lost"][0]["reason"]
    # another dom0 silent too: whose initiator is whose on the ACL cannot be told
    info = {"hosta": hosta_exporting({"rec0": "web07-data"}), "hostb": {"unreachable": True},
            "hostc": {"unreachable": True}}
    meta = vm_plan_vars({"web07": dict(WEB07, xen_restart_on=[])}, ["web07"])
    fence = recovery.raid1_restart("web07", meta["web07"], info, "hostb", "hosta")["fence"]
    assert fence["problems"] == ["hostc did not answer either: which of %s on the exports is hostb's cannot be told"
                                 % LAB_INITIATORS["hostb"]]


def test_guest_md_outcome_after_a_degraded_restart():
    arrays = ["/dev/md/data"]
    reached = {"changed": False, "elapsed": 95, "failed": False}
    started = {"results": [{"item": "/dev/md/data", "changed": True, "array": {"state": "degraded", "map": "U_"}}]}
    out = recovery.guest_md_outcome("web07", arrays, reached, started)
    assert out["result"] == "running" and out["arrays"] == [{"array": "/dev/md/data", "state": "degraded", "started": True}]
    assert out["message"] == "md runs /dev/md/data degraded in web07 (started by the failover)"
    already = {"results": [{"item": "/dev/md/data", "changed": False, "array": {"state": "recovering"}}]}
    assert "already running" in recovery.guest_md_outcome("web07", arrays, reached, already)["message"]
    # the guest did not answer: md is not started, the report says how to start it by hand
    late = {"failed": True, "elapsed": 600, "msg": "timed out waiting for ping module test: ..."}
    out = recovery.guest_md_outcome("web07", arrays, late, None)
    assert out["result"] == "unreachable" and "timed out" in out["message"]
    assert "ansible web07 -m sanless.xen.md_mirror -a 'array=ARRAY state=running'" in out["message"]
    assert recovery.guest_md_outcome("web07", arrays, {"unreachable": True, "msg": "no route"}, None)["result"] == "unreachable"
    assert recovery.guest_md_outcome("web07", arrays, None, None)["result"] == "unreachable"
    # md_mirror failed, skipped an array, or md still holds it inactive
    failed = {"results": [{"item": "/dev/md/data", "failed": True, "msg": "md array /dev/md/data is not assembled"}]}
    out = recovery.guest_md_outcome("web07", arrays, reached, failed)
    assert out["result"] == "failed" and "/dev/md/data: md array /dev/md/data is not assembled" in out["message"]
    inactive = {"results": [{"item": "/dev/md/data", "changed": False, "array": {"state": "inactive"}}]}
    assert "md shows it inactive" in recovery.guest_md_outcome("web07", arrays, reached, inactive)["message"]
    assert recovery.guest_md_outcome("web07", arrays + ["/dev/md/logs"], reached, started)["result"] == "failed"


def test_readd_outcome_judges_the_pair_after_the_repair():
    plan = {"disks": [{"disk": "data", "action": "re_add"}]}
    assert recovery.readd_outcome("web07", plan, {"state": "healthy", "causes": []}) == {
        "vm": "web07", "result": "re-added", "msg": ""}
    nothing = {"disks": [{"disk": "data", "action": "none"}]}
    assert recovery.readd_outcome("web07", nothing, {"state": "healthy", "causes": []})["result"] == "healthy"
    degraded = {"state": "degraded", "causes": [{"problem": "data: hostb's leg: not in the guest's md mirror (missing)"},
                                                {"problem": None}]}
    assert recovery.readd_outcome("web07", plan, degraded) == {
        "vm": "web07", "result": "failed",
        "msg": "the pair is degraded after the repair: data: hostb's leg: not in the guest's md mirror (missing)"}
    assert recovery.readd_outcome("web07", plan, {"state": "unknown"})["msg"] == "the pair is unknown after the repair"


def test_the_watcher_keeps_no_boot_id_where_a_re_add_failed(recorded_xen_info):
    # the role's inputs: watcher_actions' raid1_readd, and per VM readd_outcome's dict or the role's rescue's (a repair
    # that failed outright); hostc runs fxrec, whose home hostb and partner hosta both rebooted, and fxrec2, whose
    # home hostb alone did
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt", boot_id="a-2"),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", boot_id="b-2"),
            "hostc": recorded_xen_info("hostc", "xl-list-domu.txt", configs=["fxrec"], boot_id="c-1")}
    meta = {"fxrec": dict(R1)}
    plan = watcher_actions(info, meta, {"hosta": "a-1", "hostb": "b-1", "hostc": "c-1"})["raid1_readd"]
    assert [(r["vm"], r["host"], r["runs_on"]) for r in plan] == [("fxrec", "hostb", "hostc"), ("fxrec", "hosta", "hostc")]
    plan = plan + [dict(plan[0], vm="fxrec2")]
    re_added = recovery.readd_outcome("fxrec2", {"disks": [{"disk": "data", "action": "re_add"}]},
                                      {"state": "healthy", "causes": []})
    degraded = recovery.readd_outcome("fxrec", {"disks": [{"disk": "data", "action": "re_add"}]}, {
        "state": "degraded", "causes": [{"problem": "data: hostb's leg: not in the guest's md mirror (missing)"}]})
    assert degraded["result"] == "failed" and re_added["result"] == "re-added"
    # fxrec failed: both its rebooted dom0s keep their old boot id, once each, sorted
    assert recovery.hosts_to_retry_readd(plan, [re_added, degraded]) == ["hosta", "hostb"]
    rescued = {"vm": "fxrec2", "result": "failed", "msg": "raid1 repair of fxrec2: the guest did not answer"}
    assert recovery.hosts_to_retry_readd(plan, [rescued, dict(degraded, result="healthy", msg="")]) == ["hostb"]
    assert recovery.hosts_to_retry_readd(plan, [re_added]) == []
    assert recovery.hosts_to_retry_readd(plan, []) == []  # watcher_raid1_readd=false: reported, boot ids kept
    assert recovery.hosts_to_retry_readd([], [degraded]) == []


def test_the_watcher_readd_retry_filter_says_what_is_wrong():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.sanless.xen.plugins.filter import recovery as recovery_filter
    plan = [{"vm": "web07", "host": "hostb", "runs_on": "hosta", "message": "web07 runs on hosta and hostb rebooted"}]
    assert recovery_filter.watcher_readd_retry(plan, [{"vm": "web07", "result": "failed", "msg": ""}]) == ["hostb"]
    assert recovery_filter.FilterModule().filters()["watcher_readd_retry"] is recovery_filter.watcher_readd_retry
    with pytest.raises(AnsibleFilterError, match="watcher_readd_retry: .*'result'"):
        recovery_filter.watcher_readd_retry(plan, [{"vm": "web07"}])
    with pytest.raises(AnsibleFilterError, match="watcher_readd_retry: "):
        recovery_filter.watcher_readd_retry(plan, [None])


def test_the_failover_filter_reads_the_boot_ids_the_watcher_kept(hosta_with_legs):
    # the roles' path: the slurped watcher/boot_id of each dom0 (base64, as slurp returns it), the dead one unanswered
    import base64

    from ansible.errors import AnsibleFilterError

    from ansible_collections.sanless.xen.plugins.filter import recovery as recovery_filter
    hostvars = {
        "hosta": {"failover_info": hosta_with_legs({"rec0": "r1-data"}, boot_id="a-2"),
                  "failover_watcher_boot": {"content": base64.b64encode(b"a-1\n").decode(), "encoding": "base64"}},
        "hostb": {"failover_info": {"unreachable": True}, "failover_watcher_boot": {"unreachable": True}},
        "r1": dict(R1)}
    assert recovery_filter.watcher_boot_ids(hostvars, ["hosta", "hostb"], "failover_watcher_boot") == {"hosta": "a-1"}
    plan = recovery_filter.failover(hostvars, ["hosta", "hostb"], "hostb", ["r1"])
    assert plan["restarts"] == [] and "hosta rebooted after the watcher's last pass there" in plan["lost"][0]["reason"]
    plan = recovery_filter.failover(hostvars, ["hosta", "hostb"], "hostb", ["r1"], legs_current=True)
    assert [item["vm"] for item in plan["restarts"]] == ["r1"]
    hostvars["hosta"]["failover_watcher_boot"] = {"content": "not base64!"}
    with pytest.raises(AnsibleFilterError, match="hosta's failover_watcher_boot is not a boot id"):
        recovery_filter.watcher_boot_ids(hostvars, ["hosta"], "failover_watcher_boot")


# What a failover batch did (recovery.batch_gate, batch_outcomes; roles/failover/tasks/batch.yml), on a real plan and
# on results shaped as ansible-core 2.21 registered the same loops on a local run: a loop result has a 'skipped' key
# only when skipped (lab, stop 39: a gate that tested the key refused a promoted VM); a step that failed as a whole
# has no 'results'; an async start waited for is async_status's result, whose item is the start job, whose item is
# the restart; a start that did not finish when the retries ran out is failed without a msg.


@pytest.fixture
def batch_plan(hosta_exporting, peer_lost):
    """The failover of hostb to hosta, all in batch 0: shared2, fxm (DRBD), shared1, web07 (raid1, fence needed)."""
    hosta = with_drbd(hosta_exporting({"rec0": "web07-data", "rec1": "web07-root"}), peer_lost)
    [aoe] = [e for e in hosta["disk_exports"]["exports"] if e["transport"] == "aoe"]
    aoe["allowed"] = [LAB_MACS["hostb"]]
    vms = dict(META, web07=WEB07)
    plan = failover_actions({"hosta": hosta, "hostb": {"unreachable": True}}, vm_plan_vars(vms, sorted(vms)), "hostb",
                            parallel=4)
    assert [(r["vm"], r["to"], r["batch"]) for r in plan["restarts"]] == [
        ("shared2", "hosta", 0), ("fxm", "hosta", 0), ("shared1", "hosta", 0), ("web07", "hosta", 0)]
    after = copy.deepcopy(hosta)
    after["disk_exports"]["exports"] = []
    plan["fenced"] = {"web07": recovery.fence_outcome(plan["restarts"][3]["fence"], after)}
    plan["not_fenced"] = {"web07": recovery.fence_outcome(plan["restarts"][3]["fence"], hosta)}
    assert (plan["fenced"]["web07"]["result"], plan["not_fenced"]["web07"]["result"]) == ("fenced", "failed")
    return plan


def promote_item(restart, error=None):
    """vm_restart's (start=false) loop result for one restart."""
    if error:
        return {"ansible_loop_var": "item", "changed": False, "cmds": [["xl", "list"]],
                "exception": "(traceback unavailable)", "failed": True, "item": restart, "msg": error, "would_run": []}
    done = [res["name"] for res in restart["resources"]]
    return {"ansible_loop_var": "item", "attempts": 0, "changed": bool(done), "cmds": [["xl", "list"]], "failed": False,
            "failed_runs": 0, "item": restart, "promoted": done, "removed_shells": [], "restarted": False,
            "state_before": "absent", "would_run": [],
            "msg": "%s: %s" % (restart["vm"], "promoted " + ", ".join(done) if done else "nothing to promote")}


def loop_result(items):
    failed = any(item.get("failed") for item in items)
    return {"changed": any(item["changed"] for item in items), "failed": failed, "results": items,
            "msg": "One or more items failed" if failed else "All items completed"}


def waited_for(starts, not_finished=(), errors=None):
    """The async_status loop result over xen_domain's start jobs of ``starts``: each finished and started, but those
    named in not_finished (the retries ran out) and in errors ({vm: the module's msg})."""
    errors = errors or {}
    results = []
    for number, restart in enumerate(starts):
        jid = "j%d.4242" % number
        job = {"ansible_job_id": jid, "ansible_loop_var": "item", "changed": True, "failed": False, "finished": False,
               "item": restart, "results_file": "/root/.ansible_async/" + jid, "started": True}
        result = {"ansible_job_id": jid, "ansible_loop_var": "item", "attempts": 1, "item": job,
                  "results_file": "/root/.ansible_async/" + jid, "started": True}
        if restart["vm"] in not_finished:
            result.update(attempts=121, changed=False, failed=True, finished=False, stderr="", stderr_lines=[],
                          stdout="", stdout_lines=[])
        elif restart["vm"] in errors:
            result.update(changed=False, failed=True, finished=True, exception="(traceback unavailable)",
                          msg=errors[restart["vm"]])
        else:
            result.update(changed=True, failed=False, finished=True, state="running", state_before="absent", domid=42,
                          actions=["write config", "create"], toolstack="xl")
        results.append(result)
    return loop_result(results)


def summary(outcomes):
    return [(o["vm"], o["result"], o["msg"]) for o in outcomes]


MD_RUNNING = recovery.guest_md_outcome(
    "web07", ["/dev/md/data"], {"changed": False, "elapsed": 95, "failed": False},
    {"results": [{"item": "/dev/md/data", "changed": True, "array": {"state": "degraded", "map": "U_"}}]})


def test_a_batch_promoted_and_started_with_md_in_the_raid1_guest(batch_plan):
    restarts, fences = batch_plan["restarts"], batch_plan["fenced"]
    shared2, fxm, shared1, web07 = restarts
    # before the promote step: the DRBD and raid1 VMs to promote; only the others may start yet
    assert recovery.batch_gate(restarts, "hosta", 0, fences) == {"promote": [fxm, web07], "start": [shared2, shared1]}
    assert recovery.batch_gate(restarts, "hostc", 0, fences) == {"promote": [], "start": []}
    promoted = loop_result([promote_item(fxm), promote_item(web07)])
    gate = recovery.batch_gate(restarts, "hosta", 0, fences, promoted)
    assert gate["start"] == restarts
    outcomes = recovery.batch_outcomes(restarts, "hosta", 0, fences, promoted, waited_for(gate["start"]),
                                       {"web07": MD_RUNNING})
    assert summary(outcomes) == [
        ("shared2", "started", "started"), ("fxm", "started", "started"), ("shared1", "started", "started"),
        ("web07", "started", "md runs /dev/md/data degraded in web07 (started by the failover)")]
    assert outcomes[3] == {"vm": "web07", "from": "hostb", "to": "hosta", "batch": 1, "result": "started",
                           "msg": MD_RUNNING["message"], "md": MD_RUNNING, "left_out": web07["left_out"],
                           "fence": fences["web07"]}
    assert (outcomes[0]["md"], outcomes[0]["left_out"], outcomes[0]["fence"]) == (None, [], None)


def test_a_vm_whose_fence_failed_is_refused_and_neither_promoted_nor_started(batch_plan):
    restarts, fences = batch_plan["restarts"], batch_plan["not_fenced"]
    shared2, fxm, shared1, _web07 = restarts
    promoted = loop_result([promote_item(fxm)])
    gate = recovery.batch_gate(restarts, "hosta", 0, fences, promoted)
    assert gate == {"promote": [fxm], "start": [shared2, fxm, shared1]}
    outcomes = recovery.batch_outcomes(restarts, "hosta", 0, fences, promoted, waited_for(gate["start"]), {})
    assert outcomes[0] == {"vm": "web07", "from": "hostb", "to": "hosta", "batch": 1, "result": "refused",
                           "msg": "not started: " + fences["web07"]["message"], "fence": fences["web07"]}
    assert outcomes[0]["msg"].startswith("not started: NOT fenced: hostb may still see web07's disks on hosta (")
    assert [o["vm"] for o in outcomes[1:]] == ["shared2", "fxm", "shared1"]


def test_when_the_promote_step_failed_as_a_whole_no_drbd_or_raid1_vm_starts(batch_plan):
    restarts, fences = batch_plan["restarts"], batch_plan["fenced"]
    shared2, _fxm, shared1, _web07 = restarts
    promoted = {"changed": False, "exception": "(traceback unavailable)", "failed": True,
                "msg": "Task failed: 'no_such_var' is undefined"}
    gate = recovery.batch_gate(restarts, "hosta", 0, fences, promoted)
    assert gate["start"] == [shared2, shared1]
    outcomes = recovery.batch_outcomes(restarts, "hosta", 0, fences, promoted, waited_for(gate["start"]), {})
    why = "not started: the promote step failed: Task failed: 'no_such_var' is undefined"
    assert summary(outcomes) == [("fxm", "refused", why), ("web07", "refused", why),
                                 ("shared2", "started", "started"), ("shared1", "started", "started")]
    assert "fence" not in outcomes[1]
    # a VM whose fence failed is refused once, for its fence
    outcomes = recovery.batch_outcomes(restarts, "hosta", 0, batch_plan["not_fenced"], promoted, None, {})
    assert [(o["vm"], o["msg"].split(":")[1]) for o in outcomes] == [
        ("web07", " NOT fenced"), ("fxm", " the promote step failed")]


def test_a_vm_refused_by_the_promote_step_is_reported_and_the_others_start(batch_plan):
    restarts, fences = batch_plan["restarts"], batch_plan["fenced"]
    shared2, fxm, shared1, web07 = restarts
    refusal = "fxm not started, no DRBD resource promoted: fxm-disk (minor 90) is Inconsistent here"
    web07_ran = promote_item(web07)
    del web07_ran["failed"]  # a result that ran need not say it did not fail
    promoted = loop_result([promote_item(fxm, refusal), web07_ran])
    gate = recovery.batch_gate(restarts, "hosta", 0, fences, promoted)
    assert gate["start"] == [shared2, shared1, web07]
    outcomes = recovery.batch_outcomes(restarts, "hosta", 0, fences, promoted, waited_for(gate["start"]), {})
    assert outcomes[0] == {"vm": "fxm", "from": "hostb", "to": "hosta", "batch": 1, "result": "refused",
                           "msg": refusal, "fence": None}
    assert [o["vm"] for o in outcomes[1:]] == ["shared2", "shared1", "web07"]
    # a skipped result does not pass; nothing promoted (an empty loop): only the others start
    skipped = {"changed": False, "false_condition": "false", "item": web07, "skip_reason": "Conditional result was False",
               "skipped": True}
    assert recovery.batch_gate(restarts, "hosta", 0, fences, loop_result([skipped]))["start"] == [shared2, shared1]
    empty = {"changed": False, "failed": False, "results": [], "skip_reason": "No items in the list", "skipped": True}
    assert recovery.batch_gate(restarts, "hosta", 0, fences, empty)["start"] == [shared2, shared1]
    assert recovery.batch_outcomes(restarts, "hosta", 0, fences, empty, None, {}) == []


def test_a_start_that_did_not_finish_or_failed_is_a_failed_outcome(batch_plan):
    restarts, fences = batch_plan["restarts"], batch_plan["fenced"]
    promoted = loop_result([promote_item(restarts[1]), promote_item(restarts[3])])
    waited = waited_for(restarts, not_finished=["web07"], errors={"fxm": "xl create failed: boom"})
    # md is judged only for a guest that started
    outcomes = recovery.batch_outcomes(restarts, "hosta", 0, fences, promoted, waited, {"web07": MD_RUNNING})
    assert summary(outcomes) == [("shared2", "started", "started"), ("fxm", "failed", "xl create failed: boom"),
                                 ("shared1", "started", "started"), ("web07", "failed", "did not finish")]
    assert outcomes[3]["md"] is None and outcomes[3]["fence"] == fences["web07"]
    assert outcomes[3]["left_out"] == restarts[3]["left_out"]


def test_a_raid1_vm_started_without_a_fence_step_reports_its_fence(hosta_with_legs, hosta_exporting):
    # the fence step ran for neither (failover_fences has no entry): r1's was not needed (hosta exports none of its
    # disks to hostb); web07's was skipped (its root is open to every MAC, started on the operator's unfenced=true)
    info = {"hosta": hosta_with_legs({"rec0": "r1-data"}), "hostb": {"unreachable": True}}
    [r1] = failover_actions(info, vm_plan_vars({"r1": R1}, ["r1"]), "hostb")["restarts"]
    info = {"hosta": hosta_exporting({"rec0": "web07-data", "rec1": "web07-root"}), "hostb": {"unreachable": True}}
    [web07] = failover_actions(info, vm_plan_vars({"web07": WEB07}, ["web07"]), "hostb", unfenced=True)["restarts"]
    assert web07["fence"]["skipped"]
    restarts = [r1, web07]
    promoted = loop_result([promote_item(r1), promote_item(web07)])
    gate = recovery.batch_gate(restarts, "hosta", 0, {}, promoted)
    assert gate == {"promote": restarts, "start": restarts}
    outcomes = recovery.batch_outcomes(restarts, "hosta", 0, {}, promoted, waited_for(gate["start"]), {})
    assert [(o["vm"], o["result"], o["fence"]["result"]) for o in outcomes] == [
        ("r1", "started", "not needed"), ("web07", "started", "skipped")]
    assert outcomes[0]["fence"]["message"] == "hosta exports none of r1's disks to hostb: nothing to fence"
    assert outcomes[1]["fence"]["message"].startswith("UNFENCED (unfenced=true): hostb may start web07 a second time")
    assert outcomes[1]["fence"]["problems"] == web07["fence"]["problems"] != []


def test_the_batch_filters_say_what_is_wrong():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.sanless.xen.plugins.filter import recovery as recovery_filter
    assert recovery_filter.failover_batch_gate([], "hosta", 0) == {"promote": [], "start": []}
    with pytest.raises(AnsibleFilterError, match="failover_batch_gate: 'to'"):
        recovery_filter.failover_batch_gate([{"vm": "web01", "batch": 0}], "hosta", 0)
    with pytest.raises(AnsibleFilterError, match="failover_batch_outcomes: 'item'"):
        recovery_filter.failover_batch_outcomes([], "hosta", 0, {}, {"results": [{"failed": True}]})
