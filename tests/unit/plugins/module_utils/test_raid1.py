# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""raid1.pair_health on the lab's recorded storage facts (hosta imports hostb's rec2 over iSCSI and rec3 over AoE)
and the recorded md states (mdadm 4.2): each way a pair degrades gets its cause."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import md, raid1

MDADM = ("mdadm", "4.2")
VM = "web01"


def leg(host, lv, vdev):
    return {"host": host, "vg": "xenvg", "lv": lv, "path": conv.shared_disk_path(host, "xenvg", lv), "vdev": vdev}


# The recorded md array's legs are dm-0 (slot 0) and dm-1 (slot 1): the guest's devices of the two legs.
ISCSI_DISK = {"disk": "data", "legs": [leg("hosta", "rec0", "dm-0"), leg("hostb", "rec2", "dm-1")]}
AOE_DISK = {"disk": "logs", "legs": [leg("hosta", "rec1", "dm-0"), leg("hostb", "rec3", "/dev/dm-1")]}


@pytest.fixture
def cluster(lab_storage_facts):
    """xen_info results of hosta (runs web01) and hostb, their storage facts recorded."""
    facts = {"hosta": lab_storage_facts("hosta"), "hostb": lab_storage_facts("hostb")}

    def results(runs=("hosta",), down=()):
        out = {}
        for host in ("hosta", "hostb"):
            if host in down:
                out[host] = {"unreachable": True, "msg": "ssh: connect to host %s: No route to host" % host}
                continue
            domains = [{"name": "Domain-0"}] + ([{"name": VM}] if host in runs else [])
            out[host] = {"changed": False, "host": {"free_memory_mib": 1000}, "domains": domains,
                         "disk_exports": copy.deepcopy(facts[host])}
        return out
    return results


def array(fixture_text, name):
    detail = md.parse_detail(fixture_text(*MDADM + ("detail-%s.txt" % name,)))
    stat = md.parse_mdstat(fixture_text(*MDADM + ("mdstat-%s.txt" % name,)))["arrays"]["md90"]
    return md.array_health(detail, stat)


def test_a_clean_pair_over_iscsi_and_aoe_is_healthy(cluster, fixture_text):
    clean = array(fixture_text, "clean")
    health = raid1.pair_health(VM, [ISCSI_DISK, AOE_DISK], cluster(), {"data": clean, "logs": clean})
    assert (health["state"], health["guest_host"], health["causes"]) == ("healthy", "hosta", [])
    local, remote = health["disks"][0]["legs"]
    assert local["local"] and local["session"] is None and local["lv_present"] and local["md"] == "in_sync"
    assert not remote["local"] and remote["export"]["address"] == "iqn.2026-12.xen.sanless:hostb lun 1"
    assert remote["session"]["state"] == "LOGGED_IN" and remote["md"] == "in_sync" and remote["ok"]
    aoe_leg = health["disks"][1]["legs"][1]
    assert aoe_leg["session"]["transport"] == "aoe" and aoe_leg["export"]["address"] == "e2.1" and aoe_leg["ok"]


def test_partner_down_is_the_cause(cluster, fixture_text):
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(down=("hostb",)), {"data": array(fixture_text, "faulty")})
    assert health["state"] == "degraded"
    assert health["causes"] == [{"disk": "data", "host": "hostb", "leg": "/dev/sanless/hostb/xenvg/rec2",
                                 "cause": "host_down", "problem": "hostb's leg /dev/sanless/hostb/xenvg/rec2: hostb is "
                                 "down (did not answer)"}]


def test_session_lost_export_missing_and_lv_missing(cluster, fixture_text):
    degraded = {"data": array(fixture_text, "degraded")}
    results = cluster()
    # hosta's iSCSI session to hostb is gone (iscsiadm: No active sessions): its by-path device is gone too
    results["hosta"]["disk_exports"]["imports"] = [i for i in results["hosta"]["disk_exports"]["imports"]
                                                   if i["transport"] != "iscsi"]
    for shared in results["hosta"]["disk_exports"]["shared_paths"]:
        if shared["lv"] == "rec2":
            shared["present"] = False
    [cause] = raid1.pair_health(VM, [ISCSI_DISK], results, degraded)["causes"]
    assert cause["cause"] == "session_lost" and cause["problem"].endswith("hosta lost its import (no device)")
    # the partner is up but exports nothing: that comes first
    results["hostb"]["disk_exports"]["exports"] = []
    [cause] = raid1.pair_health(VM, [ISCSI_DISK], results, degraded)["causes"]
    assert cause["cause"] == "export_missing" and cause["problem"].endswith("hostb does not export it")
    # and its LV is gone before that
    results["hostb"]["disk_exports"]["shared_paths"] = []
    [cause] = raid1.pair_health(VM, [ISCSI_DISK], results, degraded)["causes"]
    assert cause["cause"] == "lv_missing" and cause["problem"].endswith("no LV xenvg/rec2 on hostb")


def test_an_aoe_export_whose_vblade_stopped_is_missing(cluster, fixture_text):
    # hosta's own rec1 is exported by a unit whose vblade does not run (recorded): a guest on hostb lacks it
    # the guest runs on hostb, its local leg rec3 is md's slot 0 and hosta's rec1 the faulty slot 1
    disk = {"disk": "logs", "legs": [leg("hostb", "rec3", "dm-0"), leg("hosta", "rec1", "dm-1")]}
    health = raid1.pair_health(VM, [disk], cluster(runs=("hostb",)), {"logs": array(fixture_text, "faulty")})
    assert health["guest_host"] == "hostb" and health["state"] == "degraded"
    [cause] = health["causes"]
    assert cause["host"] == "hosta" and cause["cause"] == "export_missing" and "its vblade does not run" in cause["problem"]


def test_md_alone_says_why(cluster, fixture_text):
    # every transport works: the leg failed in md, or was removed from it
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, "faulty")})
    assert [c["cause"] for c in health["causes"]] == ["failed_in_md"] and health["state"] == "degraded"
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, "degraded")})
    assert health["causes"][0]["cause"] == "missing_in_md"
    assert health["causes"][0]["problem"].endswith("not in the guest's md mirror (missing)")


def test_recovery_and_resync_are_recovering_not_degraded(cluster, fixture_text):
    for name in ("recovery", "resync"):
        health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, name)})
        assert health["state"] == "recovering" and health["causes"] == [], name
        assert health["disks"][0]["sync"]["action"] == name
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, "recovery")})
    assert health["disks"][0]["legs"][1]["md"] == "rebuilding"


def test_guest_not_read_split_and_not_running(cluster, fixture_text):
    # md not read (guest unreachable): unknown unless a transport already says degraded
    assert raid1.pair_health(VM, [ISCSI_DISK], cluster())["state"] == "unknown"
    assert raid1.pair_health(VM, [ISCSI_DISK], cluster(down=("hostb",)))["state"] == "degraded"
    # running on both dom0s: the one state that corrupts the mirror comes first
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(runs=("hosta", "hostb")), {"data": array(fixture_text, "clean")})
    assert health["state"] == "split" and health["causes"][0]["problem"].startswith("web01 runs on hosta and hostb")
    # running nowhere: no sessions are judged, the dom0s and LVs are
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(runs=(), down=("hostb",)))
    assert health["guest_host"] is None and [c["cause"] for c in health["causes"]] == ["host_down"]
    assert raid1.pair_health(VM, [], cluster())["state"] == "unknown"


def test_both_legs_out_is_failed(cluster, fixture_text):
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(down=("hostb",)), {"data": array(fixture_text, "degraded")})
    assert health["state"] == "degraded"
    results = cluster(down=("hostb",))
    results["hosta"]["disk_exports"]["shared_paths"] = []
    assert raid1.pair_health(VM, [ISCSI_DISK], results)["state"] == "failed"
