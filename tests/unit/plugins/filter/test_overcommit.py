# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Overcommit protection of the provision role (filter provision_overcommit: plan.overcommit_check, the exact planner).

The two dom0s are xen_info results gathered from the recordings of one lab dom0 (fixture recorded_xen_info): hosta
runs fxrec (xl-list-domu), hostb nothing (xl-list); both have the recorded 626 MiB free.
"""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.placement import overcommit_of_vm, provision_overcommit, vm_plan_vars
from ansible_collections.sanless.xen.plugins.module_utils import plan

FXREC = {"xen_storage_mode": "drbd", "xen_home": "hosta", "xen_drbd_peer": "hostb", "xen_memory_mib": 96}


def spec(name, memory_mib, mode="drbd", home="hostb", peer="hosta"):
    return {"name": name, "memory_mib": memory_mib, "storage_mode": mode, "home": home, "drbd_peer": peer,
            "restart_on": []}


@pytest.fixture
def infos(recorded_xen_info):
    return {"hosta": recorded_xen_info("hosta", "xl-list-domu.txt", configs=["fxrec"]),
            "hostb": recorded_xen_info("hostb", "xl-list.txt")}


def test_a_provision_that_breaks_the_tolerance_is_refused_with_before_and_after(infos):
    meta = vm_plan_vars({"fxrec": FXREC}, ["fxrec"])
    assert meta["fxrec"]["xen_restart_on"] == ["hosta", "hostb"]  # a DRBD VM restarts on its pair
    # 600 MiB on hostb leave 26 MiB there: fxrec (96 MiB) can no longer restart on hostb when hosta fails
    verdict = overcommit_of_vm(infos, meta, spec("big01", 600), "hostb", 1)
    assert (verdict["ok"], verdict["before"], verdict["after"], verdict["changes"]) == (False, 1, 0, True)
    assert verdict["msg"] == ("provisioning big01 on hostb: the cluster tolerates 1 host failure(s) now and would "
                              "tolerate 0 after; xen_ha_tolerate is 1")
    # the same numbers as the planner itself gives for that what-if
    hosts, vms, _notes = plan.inputs_from_xen_info(infos, meta)
    new = {"name": "big01", "host": "hostb", "memory_mib": 600, "restart_on": ["hosta"]}
    assert plan.max_host_failures(hosts, vms, what_if={"add_vms": [new]}) == 0
    assert plan.max_host_failures(hosts, vms) == 1
    # a plain VM takes the same memory, and is never restarted elsewhere: refused too
    assert not overcommit_of_vm(infos, meta, spec("big02", 600, mode="plain"), "hostb", 1)["ok"]


def test_a_provision_that_keeps_the_tolerance_passes(infos):
    meta = vm_plan_vars({"fxrec": FXREC}, ["fxrec"])
    verdict = overcommit_of_vm(infos, meta, spec("small01", 64), "hostb", 1)
    assert (verdict["ok"], verdict["before"], verdict["after"]) == (True, 1, 1)
    # tolerating 0 failures is always kept
    assert overcommit_of_vm(infos, meta, spec("big01", 600), "hostb", 0)["ok"]


def test_a_vm_that_does_not_fit_at_all(infos):
    verdict = overcommit_of_vm(infos, {}, spec("huge01", 4096, mode="plain"), "hostb", 1)
    assert not verdict["ok"] and verdict["after"] is None
    assert "impossible for the planner" in verdict["msg"] and "does not fit on host 'hostb'" in verdict["msg"]


def test_a_rerun_on_a_running_vm_changes_nothing(infos):
    meta = vm_plan_vars({"fxrec": FXREC}, ["fxrec"])
    verdict = overcommit_of_vm(infos, meta, spec("fxrec", 96, home="hosta", peer="hostb"), "hosta", 1)
    assert (verdict["ok"], verdict["changes"], verdict["before"]) == (True, False, 1)


def test_unreachable_dom0_and_vm_running_twice(infos, recorded_xen_info):
    infos = dict(infos, hostc={"unreachable": True, "msg": "no route"})
    verdict = overcommit_of_vm(infos, {}, spec("small01", 64), "hostb", 1)
    assert "dom0 hostc did not answer: planned as offline" in verdict["notes"]
    infos["hostb"] = recorded_xen_info("hostb", "xl-list-domu.txt")  # fxrec on both
    verdict = overcommit_of_vm(infos, {}, spec("small01", 64), "hostb", 1)
    assert not verdict["ok"] and "runs on both hosta and hostb" in verdict["msg"]


def test_filter_reads_hostvars(infos):
    hostvars = {"hosta": {"provision_info": infos["hosta"]}, "hostb": {"provision_info": infos["hostb"]}, "fxrec": FXREC}
    verdict = provision_overcommit(hostvars, ["hosta", "hostb"], spec("big01", 600), "hostb", 1, ["fxrec"])
    assert not verdict["ok"]
    with pytest.raises(AnsibleFilterError, match="overcommit check of big01"):
        provision_overcommit(hostvars, ["hosta", "hostb"], spec("big01", "lots"), "hostb", 1, ["fxrec"])
