# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The runs-once guard (xen.runs_once_check) on xen_info results gathered from real lab recordings.

Every xl list and /proc/drbd recording was made on one lab dom0; the clusters here are composed of
them (fixture recorded_xen_info): a recording of hosta may stand for hostb too. The compositions are the
states the guard must see through: a VM started by hand on a second dom0, a DRBD primary left where
the VM no longer runs, a config in two /etc/xen/auto, a migration in flight, a dom0 that does not answer.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.xen import guard_state, runs_once_check, vm_drbd_minors

# fxm: the migration recordings' VM; here a DRBD VM on minor 90 (the recorded minor of the 8.4.11 sets)
DRBD_META = {"fxm": {"xen_storage_mode": "drbd", "xen_home": "hosta", "xen_drbd_peer": "hostb",
                     "xen_disks": [{"name": "disk", "size": "128M", "vdev": "xvda", "drbd_minor": 90}]}}


def kinds(check):
    return sorted((f["kind"], f["vm"], tuple(f["hosts"])) for f in check["findings"])


def test_clean_cluster_is_ok(recorded_xen_info):
    # hosta runs fxrec (xl-list-domu) and owns it; hostb runs nothing (xl-list, recorded on hosta)
    info = {"hosta": recorded_xen_info("hosta", "xl-list-domu.txt", configs=["fxrec"]),
            "hostb": recorded_xen_info("hostb", "xl-list.txt")}
    check = runs_once_check(info, starting={"fxrec": "hosta"})
    assert check["ok"] and check["findings"] == [] and check["blocked"] == {}
    assert check["vms"]["fxrec"]["active_on"] == ["hosta"] and check["vms"]["fxrec"]["owned_on"] == ["hosta"]
    assert check["summary"][0] == "runs-once guard: 2 dom0(s) answered: OK, every VM runs at most once"
    json.dumps(check)


def test_vm_started_by_hand_on_a_second_dom0(recorded_xen_info):
    # fxrec runs on hosta (xl-list-domu) and paused, as xl create leaves a starting domain, on hostb (xl-list-paused)
    info = {"hosta": recorded_xen_info("hosta", "xl-list-domu.txt", configs=["fxrec"]),
            "hostb": recorded_xen_info("hostb", "xl-list-paused.txt")}
    check = runs_once_check(info, starting=["fxrec", "mig1", "web09"])
    assert not check["ok"]
    assert kinds(check) == [("runs_twice", "fxrec", ("hosta", "hostb"))]
    assert check["vms"]["fxrec"]["states"] == {"hosta": "running", "hostb": "paused"}
    assert "fxrec is active on hosta and hostb (hosta running, hostb paused)" in check["findings"][0]["message"]
    # nothing starts it again, anywhere; mig1 (paused on hostb) is not started a second time either
    assert list(check["blocked"]) == ["fxrec", "mig1"]
    assert check["blocked"]["mig1"] == ["mig1 already runs on hostb"]
    assert any(line.startswith("ERROR runs_twice: fxrec") for line in check["summary"])


def test_suspended_source_of_a_migration_counts_as_active(recorded_xen_info):
    info = {"hosta": recorded_xen_info("hosta", "xl-list-migrating-suspended.txt")}
    check = runs_once_check(info, starting={"web01": "hostb"})
    assert check["vms"]["web01"]["states"] == {"hosta": "suspended"}
    assert check["blocked"] == {"web01": ["web01 already runs on hosta"]}
    domain = next(d for d in info["hosta"]["domains"] if d["name"] == "web01")
    assert guard_state(domain) == "suspended"


def test_drbd_roles(recorded_xen_info):
    # fxm runs on hosta, Primary there (proc-drbd-uptodate), Secondary on hostb (proc-drbd-uptodate-secondary): fine
    info = {"hosta": recorded_xen_info("hosta", "xl-list-migrate-source-before.txt", "proc-drbd-uptodate.txt", ["fxm"]),
            "hostb": recorded_xen_info("hostb", "xl-list-migrate-target-before.txt", "proc-drbd-uptodate-secondary.txt")}
    check = runs_once_check(info, DRBD_META)
    assert check["ok"] and check["vms"]["fxm"]["drbd_primary_on"] == ["hosta"]
    # the same roles with fxm running on hostb (the roles swapped in the recordings): a Primary where it does not run
    info = {"hosta": recorded_xen_info("hosta", "xl-list-migrate-target-before.txt", "proc-drbd-uptodate.txt"),
            "hostb": recorded_xen_info("hostb", "xl-list-migrate-source-before.txt", "proc-drbd-uptodate-secondary.txt", ["fxm"])}
    check = runs_once_check(info, DRBD_META, starting={"fxm": "hostb"})
    assert kinds(check) == [("drbd_primary", "fxm", ("hosta",))]
    assert "DRBD Primary on hosta, where it does not run (it runs on hostb)" in check["findings"][0]["message"]
    assert list(check["blocked"]) == ["fxm"]


def test_stopped_drbd_vm_stays_primary_on_its_owner(recorded_xen_info):
    # fxm runs nowhere; its owner hosta is still Primary (a VM shut down by hand): fine. Primary on a dom0
    # that does not own it is a finding.
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt", "proc-drbd-uptodate.txt", ["fxm"]),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", "proc-drbd-uptodate-secondary.txt")}
    assert runs_once_check(info, DRBD_META)["ok"]
    info["hosta"] = recorded_xen_info("hosta", "xl-list.txt", "proc-drbd-uptodate.txt")
    info["hostb"] = recorded_xen_info("hostb", "xl-list.txt", "proc-drbd-uptodate-secondary.txt", ["fxm"])
    assert kinds(runs_once_check(info, DRBD_META)) == [("drbd_primary", "fxm", ("hosta",))]


def test_migration_in_flight(recorded_xen_info):
    # xl migrate of fxm: hosta runs it, hostb holds fxm--incoming; two primaries during the move (dual-primary)
    info = {"hosta": recorded_xen_info("hosta", "xl-list-migrate-source-before.txt", "proc-drbd-dual-primary.txt", ["fxm"]),
            "hostb": recorded_xen_info("hostb", "xl-list-migrate-target-incoming.txt", "proc-drbd-dual-primary.txt")}
    check = runs_once_check(info, DRBD_META, starting={"fxm": "hosta"})
    assert check["ok"]  # in flight is no fault
    assert kinds(check) == [("in_flight", "fxm", ("hostb",))]
    assert check["blocked"]["fxm"] == ["in_flight: fxm is arriving on hostb (xl migrate under way)"]


def test_owned_on_two_dom0s(recorded_xen_info):
    info = {"hosta": recorded_xen_info("hosta", "xl-list-domu.txt", configs=["fxrec"]),
            "hostb": recorded_xen_info("hostb", "xl-list.txt", configs=["fxrec"])}
    check = runs_once_check(info)
    assert kinds(check) == [("owned_twice", "fxrec", ("hosta", "hostb"))]
    assert not check["ok"]


def test_unreachable_dom0_is_unknown_never_fine(recorded_xen_info):
    info = {"hosta": recorded_xen_info("hosta", "xl-list.txt"),
            "hostb": {"unreachable": True, "msg": "Failed to connect to the host via ssh"},
            "hostc": {"failed": True, "msg": "xl info: rc 1"}}
    check = runs_once_check(info, starting={"fxrec": "hosta"})
    assert not check["ok"] and check["unknown_hosts"] == ["hostb", "hostc"]
    assert kinds(check) == [("unreachable", None, ("hostb",)), ("unreachable", None, ("hostc",))]
    assert check["blocked"] == {"fxrec": ["fxrec may run on hostb and hostc, which did not answer"]}
    # confirmed dead: it runs nothing
    check = runs_once_check(info, dead=["hostb", "hostc"], starting={"fxrec": "hosta"})
    assert check["ok"] and check["blocked"] == {} and check["hosts"] == {"hosta": "answered", "hostb": "dead", "hostc": "dead"}
    assert "confirmed dead: hostb, hostc" in check["summary"][0]


def test_results_of_an_older_xen_info_use_the_running_domains_config(recorded_xen_info):
    old = recorded_xen_info("hosta", "xl-list-domu.txt", configs=["fxrec"])
    del old["config_files"]
    assert runs_once_check({"hosta": old})["vms"]["fxrec"]["owned_on"] == ["hosta"]


def test_drbd_minors_of_a_vm():
    assert vm_drbd_minors(DRBD_META["fxm"]) == ["90"]
    assert vm_drbd_minors({"storage_mode": "plain", "disks": [{"drbd_minor": 3}]}) == []
    with pytest.raises(ValueError):
        runs_once_check(["hosta"])
