# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""provision_placement (plugins/filter/placement.py), and the four callers of plan.placement agreeing."""

from __future__ import annotations

import copy

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.migration import plan_migration
from ansible_collections.sanless.xen.plugins.filter.placement import (placement_of_vm, provision_placement,
                                                                      raid1_leg_placement, raid1_new_leg)
from ansible_collections.sanless.xen.plugins.module_utils import plan
from ansible_collections.sanless.xen.plugins.module_utils.conventions import domain_need_mib, meta_bytes, round_up
from ansible_collections.sanless.xen.plugins.module_utils.lvm import parse_lvs, parse_vgs
from ansible_collections.sanless.xen.plugins.module_utils.xen import parse_xl_info, parse_xl_list
from ansible_collections.sanless.xen.tests.unit.conftest import read_fixture

XL = ("xl", "4.17.5")
LVM = ("lvm", "2.03.16")
VM = "fxrec"                      # runs on the recorded dom0 (xl-list-domu.txt), its disk in lvs-domu.json


def recorded_dom0(runs_vm=False, more_mib=0, vg_free=None):
    """A xen_info result made of the lab's recordings of one dom0; the others differ in free memory and VG space."""
    info = parse_xl_info(read_fixture(*XL + ("xl-info.txt",)))
    domains = [dict(d, is_dom0=d["name"] == "Domain-0") for d in parse_xl_list(read_fixture(*XL + ("xl-list-domu.txt",)))]
    vgs = parse_vgs(read_fixture(*LVM + ("vgs.json",)))
    if vg_free is not None:
        vgs[0]["free_bytes"] = vg_free
    return {"changed": False, "host": {"free_memory_mib": info["free_memory_mib"] + more_mib, "virt_caps": info["virt_caps"]},
            "domains": domains if runs_vm else [d for d in domains if d["is_dom0"]], "vgs": vgs,
            "lvs": parse_lvs(read_fixture(*LVM + ("lvs-domu.json",))) if runs_vm else []}


def the_vm(_infos=None):
    """The recorded VM: its domain (xl list) and its disk (lvs)."""
    recorded = recorded_dom0(runs_vm=True)
    domain = next(d for d in recorded["domains"] if d["name"] == VM)
    disk = next(lv for lv in recorded["lvs"] if lv["name"] == VM + "-disk")
    return domain, disk


def spec_like(infos, name):
    """A new VM the provision role would make, the size of the recorded one."""
    domain, disk = the_vm(infos)
    return {"name": name, "memory_mib": domain["memory_mib"], "vcpus": domain["vcpus"], "type": "pv", "vg": disk["vg"],
            "storage_mode": "plain", "drbd_peer": "", "disks": [{"lv": name + "-disk", "size_bytes": disk["size_bytes"]}]}


def preflight(info, vm):
    """What live_migration step=preflight reports, from the same dom0."""
    vgs = info["vgs"]
    runs = [d for d in info["domains"] if d["name"] == vm]
    facts = {"runs_vm": bool(runs), "free_memory_mib": info["host"]["free_memory_mib"], "virt_caps": info["host"]["virt_caps"],
             "vgs": dict((g["name"], g["free_bytes"]) for g in vgs),
             "vg_extent_bytes": dict((g["name"], g["extent_size_bytes"]) for g in vgs),
             "lvs": dict((g["name"], [lv["name"] for lv in info["lvs"] if lv["vg"] == g["name"]]) for g in vgs),
             "used_minors": [], "listening_ports": [22], "disks": [], "ssh_ok": {}, "vm_memory_mib": None,
             "vm_vcpus": None, "vm_type": None}
    if runs:
        disk = next(lv for lv in info["lvs"] if lv["name"] == vm + "-disk")
        facts.update(vm_memory_mib=runs[0]["memory_mib"], vm_vcpus=runs[0]["vcpus"], vm_type="pv",
                     disks=[{"pdev_path": disk["path"], "vdev": "xvda", "vg": disk["vg"], "lv": disk["name"],
                             "size_bytes": disk["size_bytes"]}])
    return {"changed": False, "preflight": facts, "journal": None}


def four_choices(infos):
    """Where provision, migrate (no target), the planner's place and its evacuation put the same VM."""
    domain, disk = the_vm(infos)
    provision = placement_of_vm(infos, spec_like(infos, "fxnew"))["host"]
    reports = dict((h, preflight(info, VM)) for h, info in infos.items())
    migrate = plan_migration(reports, dict((h, h) for h in infos), VM)
    assert migrate["problems"] == [] or migrate["target"] is None
    hosts, vms, _notes = plan.inputs_from_xen_info(infos, {VM: {"xen_storage_mode": "plain", "xen_disk_bytes": disk["size_bytes"]}})
    # place ranks by tolerated failures first: up_to 0 leaves the placement's rank alone
    placed = plan.place(hosts, vms, {"name": "fxnew", "memory_mib": domain["memory_mib"], "disk_bytes": disk["size_bytes"],
                                     "storage": "plain"}, policy={"up_to": 0})["host"]
    evacuated = [m["target"] for m in plan.evacuation_plan(hosts, vms, "hosta")["moves"]]
    return provision, migrate["target"], placed, evacuated[0] if evacuated else None


@pytest.mark.parametrize("hostb, hostc", [
    ({"more_mib": 300}, {"more_mib": 200}),
    ({"more_mib": 200}, {"more_mib": 300}),
    ({"more_mib": 300, "vg_free": 2 * 1024 ** 3}, {"more_mib": 300}),    # a tie on memory: VG space, not the name
    ({"more_mib": 500, "vg_free": 64 * 1024 * 1024}, {"more_mib": 100}),   # the roomiest has no space for the disk
])
def test_the_four_callers_agree(hostb, hostc):
    infos = {"hosta": recorded_dom0(runs_vm=True), "hostb": recorded_dom0(**hostb), "hostc": recorded_dom0(**hostc)}
    choices = four_choices(infos)
    assert len(set(choices)) == 1, choices
    # and it is the placement's answer, which the cases above move between hostb and hostc
    domain, disk = the_vm(infos)
    others = [{"name": h, "memory_free_mib": infos[h]["host"]["free_memory_mib"], "vg_free_bytes": infos[h]["vgs"][0]["free_bytes"]}
              for h in ("hostb", "hostc")]
    assert choices[0] == plan.placement(others, {"name": VM, "memory_mib": domain["memory_mib"],
                                                 "disks": [{"size_bytes": disk["size_bytes"]}]})["host"]


def test_the_four_callers_agree_on_which_host_each_case_picks():
    picks = set()
    for more_b, more_c in ((300, 200), (200, 300)):
        infos = {"hosta": recorded_dom0(runs_vm=True), "hostb": recorded_dom0(more_mib=more_b),
                 "hostc": recorded_dom0(more_mib=more_c)}
        picks.add(four_choices(infos))
    assert len(picks) == 2     # a caller with a policy of its own would not follow the other three


def test_provision_judges_every_dom0_on_recorded_facts():
    infos = {"hosta": recorded_dom0(runs_vm=True), "hostb": recorded_dom0(more_mib=100),
             "hostc": {"unreachable": True, "msg": "ssh: connect to host hostc: No route to host"}}
    spec = spec_like(infos, VM)
    judged = placement_of_vm(infos, spec)
    by_host = dict((e["host"], e) for e in judged["hosts"])
    # fxrec runs on hosta, its disk is there: no memory and no VG space wanted there
    assert by_host["hosta"]["running"] and by_host["hosta"]["disks_here"] == 1 and by_host["hosta"]["vg_need_bytes"] == 0
    assert by_host["hostb"]["vg_need_bytes"] == round_up(spec["disks"][0]["size_bytes"], infos["hostb"]["vgs"][0]["extent_size_bytes"])
    assert by_host["hostc"] == {"host": "hostc", "answered": False, "running": False, "disks_here": 0, "memory_free_mib": 0,
                                "vg_free_bytes": 0, "vg_need_bytes": 0, "fits": False,
                                "shortfalls": ["hostc: did not answer (ssh: connect to host hostc: No route to host)"]}
    # the reserve is the policy knob: with it, hostb (the roomiest) is short and hosta, where it runs, is chosen
    free_b = infos["hostb"]["host"]["free_memory_mib"]
    need = domain_need_mib(spec["memory_mib"], spec["vcpus"], spec["type"])
    assert judged["host"] == "hostb"
    assert placement_of_vm(infos, spec, reserve_mib=free_b - need + 1)["host"] == "hosta"


def test_provision_drbd_secondary_needs_the_metadata_too():
    infos = {"hosta": recorded_dom0(), "hostb": recorded_dom0()}
    spec = dict(spec_like(infos, "fxnew"), storage_mode="drbd", drbd_peer="hostb")
    size = spec["disks"][0]["size_bytes"]
    need = round_up(size) + meta_bytes(size)
    for free, fits in ((need, True), (need - 1, False)):
        infos["hostb"] = recorded_dom0(vg_free=free)
        judged = placement_of_vm(infos, spec)
        assert judged["secondary"]["fits"] is fits and judged["secondary"]["vg_need_bytes"] == need
        assert dict((e["host"], e["fits"]) for e in judged["hosts"])["hostb"] is fits


def test_provision_filter_reads_hostvars_and_refuses_bad_specs():
    infos = {"hosta": recorded_dom0(), "hostb": recorded_dom0(more_mib=1)}
    hostvars = dict((h, {"provision_info": info}) for h, info in infos.items())
    spec = spec_like(infos, "fxnew")
    assert provision_placement(hostvars, ["hosta", "hostb"], spec) == placement_of_vm(infos, spec)
    broken = copy.deepcopy(spec)
    broken["memory_mib"] = "lots"
    with pytest.raises(AnsibleFilterError, match="placement of fxnew"):
        provision_placement(hostvars, ["hosta"], broken)


def test_raid1_partner_is_never_the_home_and_needs_room_for_the_legs_only():
    # hosta is the roomiest in memory, but it is the home: the partner is the best of the others
    infos = {"hosta": recorded_dom0(more_mib=900), "hostb": recorded_dom0(more_mib=100), "hostc": recorded_dom0(more_mib=200)}
    spec = dict(spec_like(infos, "fxnew"), storage_mode="raid1", home="hosta")
    judged = placement_of_vm(infos, spec)
    assert judged["partner"] == {"host": "hostc", "why": "the dom0 placement ranks first for the other legs"}
    size = spec["disks"][0]["size_bytes"]
    # the other legs only: no DRBD metadata, no memory
    assert judged["secondary"]["host"] == "hostc" and judged["secondary"]["vg_need_bytes"] == round_up(size)
    assert judged["secondary"]["need_mib"] == 0
    # without room for the legs, hostc is passed over for hostb; with room nowhere, there is no partner
    infos["hostc"] = recorded_dom0(more_mib=200, vg_free=round_up(size) - 1)
    assert placement_of_vm(infos, spec)["partner"]["host"] == "hostb"
    infos["hostb"] = recorded_dom0(more_mib=100, vg_free=0)
    judged = placement_of_vm(infos, spec)
    assert judged["partner"]["host"] == "" and judged["secondary"]["fits"] is False
    assert judged["partner"]["why"].startswith("no dom0 but hosta has room for the other legs of fxnew: ")
    assert "hosta: the home of fxnew" in judged["partner"]["why"] and "hostc: VG xenvg needs" in judged["partner"]["why"]


def test_raid1_partner_named_or_holding_the_legs_is_kept():
    infos = {"hosta": recorded_dom0(), "hostb": recorded_dom0(more_mib=100), "hostc": recorded_dom0(more_mib=200)}
    spec = dict(spec_like(infos, "fxnew"), storage_mode="raid1", home="hosta", raid1_partner="hostb")
    assert placement_of_vm(infos, spec)["partner"] == {"host": "hostb", "why": "its xen_raid1_partner"}
    # the home as its own partner is refused with the reason
    judged = placement_of_vm(infos, dict(spec, raid1_partner="hosta"))
    assert judged["partner"]["host"] == "" and judged["secondary"]["problems"][0].startswith("hosta: the home of fxnew")
    # a rerun: the recorded VM runs on hosta (its home) and hostb holds its other leg; hostc has more memory
    infos = {"hosta": recorded_dom0(runs_vm=True), "hostb": recorded_dom0(runs_vm=True), "hostc": recorded_dom0(more_mib=500)}
    infos["hostb"]["domains"] = [d for d in infos["hostb"]["domains"] if d["is_dom0"]]
    spec = dict(spec_like(infos, VM), storage_mode="raid1")
    spec["disks"][0]["lv"] = VM + "-disk"
    judged = placement_of_vm(infos, spec)
    assert judged["partner"] == {"host": "hostb", "why": "it holds the other legs already"}
    assert judged["secondary"]["vg_need_bytes"] == 0
    # legs on two dom0s besides the home: refused, nothing is guessed
    infos["hostc"] = recorded_dom0(runs_vm=True)
    infos["hostc"]["domains"] = [d for d in infos["hostc"]["domains"] if d["is_dom0"]]
    judged = placement_of_vm(infos, spec)
    assert judged["partner"]["host"] == "" and "are on hostb, hostc besides its home hosta" in judged["partner"]["why"]


def test_raid1_partner_is_what_the_planner_pairs():
    # plan.place pairs a raid1 VM with a secondary by the same placement: the same dom0 as the filter's partner
    hosts = [{"name": "hosta", "memory_free_mib": 4000, "vg_free_bytes": 10 << 30},
             {"name": "hostb", "memory_free_mib": 1000, "vg_free_bytes": 10 << 30},
             {"name": "hostc", "memory_free_mib": 2000, "vg_free_bytes": 10 << 30}]
    placed = plan.place(hosts, [], {"name": "web01", "memory_mib": 512, "disk_bytes": 1 << 30, "storage": "raid1"})
    demand = {"name": "web01", "memory_mib": 512, "disks": [{"size_bytes": 1 << 30}]}
    assert plan.raid1_partner(hosts, demand, placed["host"])["host"] == placed["secondary"] == "hostc"


def test_provision_avoids_a_drained_dom0_unless_the_vm_runs_there():
    drained = {"by": "evacuate", "since": 1796371200, "reason": "nightly maintenance", "path": "/var/lib/sanless-xen/drained"}
    infos = {"hosta": dict(recorded_dom0(more_mib=100), drained=drained), "hostb": recorded_dom0()}
    judged = placement_of_vm(infos, spec_like(infos, "new01"))
    assert judged["host"] == "hostb"
    hosta = next(h for h in judged["hosts"] if h["host"] == "hosta")
    assert not hosta["fits"] and hosta["shortfalls"][0] == (
        "hosta: drained (nightly maintenance): no new VM there until playbooks/undrain.yml")
    # the VM already runs on the drained dom0: re-provisioning it there is no new VM
    infos = {"hosta": dict(recorded_dom0(runs_vm=True), drained=drained), "hostb": recorded_dom0()}
    judged = placement_of_vm(infos, spec_like(infos, VM))
    assert next(h for h in judged["hosts"] if h["host"] == "hosta")["fits"]


def test_a_new_raid1_leg_goes_neither_on_the_guests_dom0_nor_on_the_replaced_legs():
    # fxrec runs on hosta (its disk the local leg, sized from there); hostb held the leg being replaced
    infos = {"hosta": recorded_dom0(runs_vm=True, more_mib=900), "hostb": recorded_dom0(more_mib=500),
             "hostc": recorded_dom0(more_mib=100), "hostd": recorded_dom0(more_mib=200)}
    lv = VM + "-disk"
    assert raid1_new_leg(infos, VM, [lv], "xenvg", "hosta", "hostb") == {
        "host": "hostd", "why": "the dom0 placement ranks first for the other legs"}
    # asked for: judged, not trusted
    assert raid1_new_leg(infos, VM, [lv], "xenvg", "hosta", "hostb", "hostc")["host"] == "hostc"
    refused = raid1_new_leg(infos, VM, [lv], "xenvg", "hosta", "hostb", "hostb")
    assert refused["host"] == "" and "hostb: holds the leg being replaced" in refused["why"]
    # no room for the leg anywhere else
    infos["hostc"] = recorded_dom0(vg_free=0)
    infos["hostd"] = recorded_dom0(vg_free=0)
    assert raid1_new_leg(infos, VM, [lv], "xenvg", "hosta", "hostb")["host"] == ""
    # the size comes from the guest's dom0: an LV it lacks, or a silent guest dom0, places nothing
    assert "has no LV nope" in raid1_new_leg(infos, VM, ["nope"], "xenvg", "hosta", "hostb")["why"]
    infos["hosta"] = {"unreachable": True}
    assert raid1_new_leg(infos, VM, [lv], "xenvg", "hosta", "hostb") == {
        "host": "", "why": "the guest's dom0 hosta did not answer"}
    hostvars = dict((h, {"raid1_info": i}) for h, i in infos.items())
    assert raid1_leg_placement(hostvars, sorted(infos), VM, [lv], "xenvg", "hosta", "hostb")["host"] == ""
