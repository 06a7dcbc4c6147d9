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

import pytest

from ansible_collections.sanless.xen.plugins.filter.placement import vm_plan_vars
from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError
from ansible_collections.sanless.xen.plugins.module_utils.recovery import (
    drbd_resources, failover_actions, replica_state, watcher_actions,
)

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


def test_a_raid1_vm_is_not_failed_over_yet(recorded_xen_info):
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt"), "hostb": {"unreachable": True}}
    meta = dict(RAID1, r1=dict(RAID1["r1"], xen_home="hostb", xen_restart_on=["hosta"]))
    plan = failover_actions(info, vm_plan_vars(meta, ["r1"]), "hostb")
    assert plan["restarts"] == []
    assert [(entry["vm"], "raid1 restarts are not supported yet" in entry["reason"]) for entry in plan["lost"]] == [("r1", True)]


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
