# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The disk_export role's plan (filter disk_export_plan) from the storage facts of the two lab dom0s of the
export recordings (tests/unit/conftest.py lab_storage_facts): hosta already exports rec0 as LUN 0 of its LIO
target and rec1 as e1.2, hostb imports both."""

from __future__ import annotations

import copy
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter import diskexport as plan_filter
from ansible_collections.sanless.xen.tests.unit.conftest import LAB_ADDRESSES, LAB_INITIATORS, LAB_MACS

HOSTA_IQN = "iqn.2026-12.xen.sanless:hosta"
WEB05 = {"xen_home": "hosta", "xen_vg": "xenvg", "xen_disks": [{"name": "disk", "size": "128M", "vdev": "xvda"}]}
DOM0S = ["hosta", "hostb"]


@pytest.fixture
def infos(lab_storage_facts):
    """dom0 -> xen_info result: the recorded storage facts, and on hosta the LVs rec0, rec1 and web05-disk."""
    lvs = [{"vg": "xenvg", "name": name} for name in ("rec0", "rec1", "web05-disk")]
    return {"hosta": {"disk_exports": lab_storage_facts("hosta"), "lvs": lvs},
            "hostb": {"disk_exports": lab_storage_facts("hostb"), "lvs": []}}


LAB_VM = object()  # the default: web05's inventory variables (None stands for an unknown VM)


def plan(infos, vm="web05", vm_vars=LAB_VM, to="hostb", **kwargs):
    return plan_filter.plan_export(infos, LAB_ADDRESSES, DOM0S, vm, WEB05 if vm_vars is LAB_VM else vm_vars, to, **kwargs)


def renamed(infos, old, new):
    """The facts with the recorded LV xenvg/<old> renamed xenvg/<new> wherever it appears (exports, imports,
    shared paths): an export of web05's disk as the lab recorded rec0's or rec1's. NOT a recording."""
    text = json.dumps(infos).replace("/xenvg/%s\"" % old, "/xenvg/%s\"" % new).replace("\"lv\": \"%s\"" % old, "\"lv\": \"%s\"" % new)
    return json.loads(text)


def test_iscsi_export_to_hostb(infos):
    result = plan(infos)
    assert result["problems"] == []
    assert (result["home"], result["to"], result["portal"], result["target"]) == ("hosta", ["hostb"], "10.77.0.11", HOSTA_IQN)
    assert result["importers"] == {"hostb": LAB_INITIATORS["hostb"]}
    assert result["disks"] == [{"vg": "xenvg", "lv": "web05-disk", "device": "/dev/xenvg/web05-disk",
                                "path": "/dev/sanless/hosta/xenvg/web05-disk", "lun": None, "slot": None,
                                "allowed": [LAB_INITIATORS["hostb"]], "export": "present"}]


def test_aoe_export_leaves_the_slot_to_the_module_on_the_homes_shelf(infos):
    result = plan(infos, transport="aoe")
    assert result["problems"] == []
    # hosta is shelf 1; its unit serves e1.2 (rec1); aoe_export picks web05's slot under hosta's host lock
    # (the lowest free one, 1 here: aoe.pick_slot), as iscsi_target picks a LUN
    assert result["shelf"] == 1 and result["importers"] == {"hostb": LAB_MACS["hostb"]}
    assert [(d["slot"], d["allowed"], d["export"]) for d in result["disks"]] == [(None, [LAB_MACS["hostb"]], "present")]


@pytest.mark.parametrize("kwargs,problem", [
    ({"transport": "aoe", "slots": [2]}, "e1.2 is occupied: sanless-vblade-1-2.service exports /dev/xenvg/rec1 there"),
    ({"luns": [0]}, "LUN 0 of %s is occupied: lio exports /dev/xenvg/rec0 there" % HOSTA_IQN),
    ({"luns": ["x"]}, "iSCSI LUN 'x' of disk 1 is not a number"),
    ({"backend": "tgt", "luns": [0]}, "LUN 0 of a tgt target is its controller"),
])
def test_an_occupied_slot_or_lun_is_refused(infos, kwargs, problem):
    result = plan(infos, **kwargs)
    assert any(problem in p for p in result["problems"]), result["problems"]


def test_a_second_run_keeps_the_existing_export(infos):
    existing = renamed(infos, "rec0", "web05-disk")
    result = plan(existing)
    assert result["problems"] == []
    assert [(d["lun"], d["allowed"]) for d in result["disks"]] == [(0, [LAB_INITIATORS["hostb"]])]
    result = plan(existing, luns=[3])
    assert result["problems"] == ["/dev/xenvg/web05-disk is already exported as LUN 0 of %s, not LUN 3 of %s"
                                  % (HOSTA_IQN, HOSTA_IQN)]


@pytest.mark.parametrize("old,transport,key,value", [("rec0", "iscsi", "lun", 0), ("rec1", "aoe", "slot", 2)])
def test_absent_removes_an_export_no_dom0_is_left_on(infos, old, transport, key, value):
    result = plan(renamed(infos, old, "web05-disk"), transport=transport, state="absent")
    assert result["problems"] == []
    [disk] = result["disks"]
    assert (disk[key], disk["allowed"], disk["export"]) == (value, [], "absent")


def test_absent_keeps_an_export_another_dom0_still_uses(infos):
    existing = renamed(infos, "rec0", "web05-disk")
    lio = existing["hosta"]["disk_exports"]["exports"][0]
    lio["allowed"].append("iqn.2026-11.lab.sanless:hostc:0123456789ab")  # a third dom0's ACL: NOT a recording
    [disk] = plan(existing, state="absent")["disks"]
    assert (disk["export"], disk["allowed"]) == ("present", ["iqn.2026-11.lab.sanless:hostc:0123456789ab"])


def test_absent_after_the_export_went_takes_the_lun_from_the_import(infos):
    existing = renamed(infos, "rec0", "web05-disk")
    existing["hosta"]["disk_exports"]["exports"] = []
    [disk] = plan(existing, state="absent")["disks"]
    assert (disk["lun"], disk["export"]) == (0, "none")


def test_an_import_over_the_other_transport_is_refused(infos):
    result = plan(renamed(infos, "rec1", "web05-disk"))
    assert result["problems"] == ["hostb already imports xenvg/web05-disk over aoe (/dev/etherd/e1.2): remove that "
                                  "import first (-e transport=aoe -e state=absent)"]


@pytest.mark.parametrize("change,problem", [
    ({"vm": "web;rm -rf /"}, "invalid VM name 'web;rm -rf /'"),
    ({"vm": "nosuchvm", "vm_vars": None}, "unknown VM nosuchvm"),
    ({"to": "hosta"}, "to = home: hosta holds the disks of web05"),
    ({"to": "hostc"}, "unknown dom0 hostc in to (dom0s: hosta, hostb)"),
    ({"to": "hostb;reboot"}, "invalid dom0 name 'hostb;reboot'"),
    ({"to": "$(reboot)"}, "invalid dom0 name '$(reboot)'"),
    ({"to": ""}, "to: name the dom0s that import the disks of web05"),
    ({"to": ["hostb", "hostb"]}, "to names a dom0 twice"),
    ({"transport": "nbd"}, "transport must be iscsi or aoe, not 'nbd'"),
    ({"vm_vars": dict(WEB05, xen_home="")}, "VM web05 has no xen_home"),
    ({"vm_vars": dict(WEB05, xen_disks=[{"name": "d|x"}])}, "invalid VM name 'd|x'"),
    ({"vm_vars": dict(WEB05, xen_vg="xen vg")}, "invalid LVM VG name 'xen vg'"),
    ({"interface": "xenbr0;x"}, "invalid network interface"),
])
def test_bad_input_is_refused_before_anything(infos, change, problem):
    result = plan(infos, **change)
    assert any(problem in p for p in result["problems"]), result["problems"]
    assert result["disks"] == []


def test_what_the_dom0s_lack_is_refused(infos):
    lacking = copy.deepcopy(infos)
    lacking["hostb"]["disk_exports"]["initiator"] = None
    lacking["hosta"]["lvs"] = []
    problems = plan(lacking)["problems"]
    assert "hostb has no iSCSI initiator name (/etc/iscsi/initiatorname.iscsi: install open-iscsi)" in problems
    assert "hosta: LV xenvg/web05-disk does not exist" in problems
    lacking["hostb"]["disk_exports"]["macs"] = {}
    assert "hostb has no interface xenbr0 to import over AoE from" in plan(lacking, transport="aoe")["problems"]
    silent = dict(infos, hostb={"unreachable": True, "msg": "ssh: no route to host"})
    assert plan(silent)["problems"] == ["hostb did not answer (or ran xen_info without disk_exports): ssh: no route to host"]


def test_the_filter_reads_hostvars(infos):
    hostvars = {"hosta": {"disk_export_info": infos["hosta"], "ansible_host": "10.77.0.11"},
                "hostb": {"disk_export_info": infos["hostb"], "xen_storage_address": "10.77.0.12"},
                "web05": dict(WEB05, xen_memory_mib=96)}
    result = plan_filter.disk_export_plan(hostvars, DOM0S, "web05", "hostb", vms=["web05"])
    assert result["problems"] == [] and result["portal"] == "10.77.0.11"
    assert plan_filter.disk_export_plan(hostvars, DOM0S, "web05", "hostb", vms=[])["problems"] == [
        "unknown VM web05: not a host of the inventory's VM group"]


def test_names_for_roles():
    assert plan_filter.shared_disk_path("hosta.lab", "xenvg", "web05-disk") == "/dev/sanless/hosta/xenvg/web05-disk"
    assert plan_filter.vm_disk_lv("web05", "disk") == "web05-disk"
    for call in (lambda: plan_filter.shared_disk_path("host a", "xenvg", "x"), lambda: plan_filter.vm_disk_lv("web05", "a/b")):
        with pytest.raises(AnsibleFilterError):
            call()


def test_a_raid1_partner_exports_its_legs_to_the_home(infos):
    # a raid1 VM at home on hostb: its partner hosta holds the leg of its mirrored disk "disk" (the same LV name),
    # not the system disk "root", and exports that one leg to the home
    vm_vars = {"xen_home": "hostb", "xen_vg": "xenvg",
               "xen_disks": [{"name": "root", "raid1": False}, {"name": "disk", "partner_vdev": "xvdc"}]}
    result = plan(infos, vm_vars=vm_vars, to="hostb", owner="hosta", disk_names=["disk"])
    assert result["problems"] == []
    assert (result["home"], result["target"]) == ("hosta", HOSTA_IQN)
    assert [d["path"] for d in result["disks"]] == ["/dev/sanless/hosta/xenvg/web05-disk"]
    # without owner the home (hostb) would export, and its LVs are not there
    assert "hostb: LV xenvg/web05-disk does not exist" in plan(infos, vm_vars=vm_vars, to="hosta")["problems"]
    assert plan(infos, vm_vars=vm_vars, owner="hosta", disk_names=["nope"])["problems"] == [
        "VM web05 has no disk nope (xen_disks: root, disk)"]


# --------------------------------------------------------------------------- the session's replacement timeout

RAID1_WEB05 = {"xen_home": "hostb", "xen_vg": "xenvg", "xen_storage_mode": "raid1",
               "xen_disks": [{"name": "root", "raid1": False}, {"name": "disk", "partner_vdev": "xvdc"}]}


def test_mirrored_leg_devices_are_the_mirrored_disks_of_raid1_vms():
    vms = {"web05": RAID1_WEB05, "web01": {"xen_disks": [{"name": "disk"}]},
           "web07": {"xen_storage_mode": "raid1", "xen_disks": [{"name": "root", "raid1": "false"}, {"name": "data"}]}}
    assert plan_filter.raid1.mirrored_leg_devices(vms, "xenvg") == {"/dev/xenvg/web05-disk", "/dev/xenvg/web07-data"}


def test_a_session_of_mirrored_legs_only_gets_the_short_timeout(infos):
    # hosta maps rec0 (LUN 0) to hostb already: the session carries it and web05's leg
    legs = {"/dev/xenvg/web05-disk", "/dev/xenvg/rec0"}
    result = plan(infos, vm_vars=RAID1_WEB05, owner="hosta", disk_names=["disk"], mirrored_devices=legs,
                  mirror_replacement_timeout=15)
    assert result["problems"] == [] and result["replacement_timeouts"] == {"hostb": 15}


def test_a_session_with_any_other_disk_keeps_open_iscsis_default(infos):
    # rec0, on the same session, is no leg of a mirror: a blip must not fail it after 15 s
    result = plan(infos, vm_vars=RAID1_WEB05, owner="hosta", disk_names=["disk"],
                  mirrored_devices={"/dev/xenvg/web05-disk"}, mirror_replacement_timeout=15)
    assert result["replacement_timeouts"] == {"hostb": 120}
    # a plain VM's export, and no timeout asked: the sessions are left as they are
    assert plan(infos, mirror_replacement_timeout=15)["replacement_timeouts"] == {"hostb": 120}
    assert plan(infos, vm_vars=RAID1_WEB05, owner="hosta", disk_names=["disk"],
                mirrored_devices={"/dev/xenvg/web05-disk", "/dev/xenvg/rec0"})["replacement_timeouts"] == {}
    assert plan(infos, transport="aoe", mirror_replacement_timeout=15)["replacement_timeouts"] == {}


def test_the_filter_finds_the_mirrored_legs_in_hostvars(infos):
    hostvars = {"hosta": {"disk_export_info": infos["hosta"], "ansible_host": "10.77.0.11"},
                "hostb": {"disk_export_info": infos["hostb"], "xen_storage_address": "10.77.0.12"},
                "web05": RAID1_WEB05, "rec0": {"xen_storage_mode": "raid1", "xen_disks": [{"name": "x"}]}}
    result = plan_filter.disk_export_plan(hostvars, DOM0S, "web05", "hostb", vms=["web05"], owner="hosta",
                                          disks=["disk"], mirror_replacement_timeout=15)
    # rec0's LV is no leg of web05 (and the VM "rec0" would name rec0-x): 120
    assert result["problems"] == [] and result["replacement_timeouts"] == {"hostb": 120}


def test_absent_takes_a_dom0_that_does_not_answer_off_the_exports(infos):
    # the failover's storage fence: hostb is dead; its initiator is the one on the ACL that no dom0 that answered has
    existing = renamed(infos, "rec0", "web05-disk")
    dead = dict(existing, hostb={"unreachable": True, "msg": "confirmed dead"})
    result = plan(dead, state="absent")
    assert result["problems"] == [] and result["silent_ids"] == [LAB_INITIATORS["hostb"]]
    [disk] = result["disks"]
    assert (disk["lun"], disk["allowed"], disk["export"]) == (0, [], "absent")
    # a second run: nothing left to take off, nothing exported
    gone = copy.deepcopy(dead)
    gone["hosta"]["disk_exports"]["exports"] = []
    [disk] = plan(gone, state="absent")["disks"]
    assert disk["export"] == "none"
    # over AoE: its MAC (DERIVED: the recorded unit has no allow-list)
    existing = renamed(infos, "rec1", "web05-disk")
    [aoe] = [e for e in existing["hosta"]["disk_exports"]["exports"] if e["transport"] == "aoe"]
    aoe["allowed"] = [LAB_MACS["hostb"]]
    result = plan(dict(existing, hostb={"unreachable": True}), state="absent", transport="aoe")
    assert result["problems"] == [] and [(d["slot"], d["export"]) for d in result["disks"]] == [(2, "absent")]
    # present still needs every importer to answer; absent, a third silent dom0 makes the IDs ambiguous
    assert plan(dead)["problems"] == ["hostb did not answer (or ran xen_info without disk_exports): confirmed dead"]
    result = plan_filter.plan_export(dict(dead, hostc={"unreachable": True}), LAB_ADDRESSES, DOM0S + ["hostc"], "web05",
                                     WEB05, "hostb", state="absent")
    assert result["problems"] == ["hostc did not answer either: which of %s on the exports is hostb's cannot be told"
                                  % LAB_INITIATORS["hostb"]]
