# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""diskexport.storage_facts (xen_info disk_exports=true) on the two lab dom0s of the export recordings
(tests/unit/conftest.py lab_storage_facts), and who exports what to whom from them."""

from __future__ import annotations

import json

from ansible_collections.sanless.xen.plugins.module_utils import aoe, diskexport, iscsi
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
from ansible_collections.sanless.xen.tests.unit.conftest import LAB_INITIATORS, LAB_MACS, FakeModule, lio_configfs_tree

HOSTA_IQN, HOSTB_IQN = conv.target_iqn("hosta"), conv.target_iqn("hostb")
BY_PATH_A0 = iscsi.by_path("10.77.0.11", 3260, HOSTA_IQN, 0)
BY_PATH_B1 = iscsi.by_path("10.77.0.12", 3260, HOSTB_IQN, 1)


def test_hosta_exports_over_lio_and_aoe_and_imports_from_hostb(lab_storage_facts):
    facts = lab_storage_facts("hosta")
    assert facts["errors"] == []
    assert facts["initiator"] == LAB_INITIATORS["hosta"] and facts["macs"] == {"xenbr0": LAB_MACS["hosta"]}
    assert facts["exports"] == [
        {"transport": "iscsi", "backend": "lio", "device": "/dev/xenvg/rec0", "target": HOSTA_IQN, "lun": 0,
         "allowed": [LAB_INITIATORS["hostb"]], "resolved": None},
        {"transport": "aoe", "device": "/dev/xenvg/rec1", "shelf": 1, "slot": 2, "interface": "xenbr0", "allowed": [],
         "unit": "sanless-vblade-1-2.service", "pid": None, "resolved": None},
    ]
    assert facts["imports"] == [
        {"transport": "iscsi", "target": HOSTB_IQN, "address": "10.77.0.12", "port": 3260, "lun": 1, "device": "/dev/sda",
         "path": BY_PATH_B1, "state": "LOGGED_IN"},
        {"transport": "aoe", "shelf": 2, "slot": 1, "device": "/dev/etherd/e2.1", "path": "/dev/etherd/e2.1", "state": "up"},
    ]
    assert [(s["path"], s["device"], s["present"]) for s in facts["shared_paths"]] == [
        ("/dev/sanless/hosta/xenvg/rec0", "/dev/xenvg/rec0", True), ("/dev/sanless/hosta/xenvg/rec1", "/dev/xenvg/rec1", True),
        ("/dev/sanless/hostb/xenvg/rec2", BY_PATH_B1, True), ("/dev/sanless/hostb/xenvg/rec3", "/dev/etherd/e2.1", True)]
    # the saveconfig holds the CHAP secret: the facts never do
    assert "labsecret12345" not in json.dumps(facts)


def test_hostb_exports_over_tgt_and_a_hand_started_vblade(lab_storage_facts):
    facts = lab_storage_facts("hostb")
    assert facts["errors"] == []
    assert facts["exports"] == [
        {"transport": "iscsi", "backend": "tgt", "device": "/dev/xenvg/rec2", "target": HOSTB_IQN, "lun": 1,
         "allowed": [LAB_INITIATORS["hosta"]], "resolved": None},
        # started by systemd-run, not the collection's unit
        {"transport": "aoe", "device": "/dev/xenvg/rec3", "shelf": 2, "slot": 1, "interface": "xenbr0",
         "allowed": [LAB_MACS["hosta"]], "unit": None, "pid": 969, "resolved": None},
    ]
    assert [(i["transport"], i["device"], i["path"]) for i in facts["imports"]] == [
        ("iscsi", "/dev/sda", BY_PATH_A0), ("aoe", "/dev/etherd/e1.2", "/dev/etherd/e1.2")]


def test_who_exports_what_to_whom(lab_storage_facts):
    results = {"hosta": {"disk_exports": lab_storage_facts("hosta")}, "hostb": {"disk_exports": lab_storage_facts("hostb")},
               "hostc": {"unreachable": True, "msg": "no route"}}
    table = diskexport.export_table(results)
    assert [(r["host"], r["path"], r["transport"], r["backend"], r["address"], r["running"], r["to"]) for r in table] == [
        ("hosta", "/dev/sanless/hosta/xenvg/rec0", "iscsi", "lio", HOSTA_IQN + " lun 0", True, ["hostb"]),
        ("hosta", "/dev/sanless/hosta/xenvg/rec1", "aoe", "vblade", "e1.2", False, ["hostb"]),
        ("hostb", "/dev/sanless/hostb/xenvg/rec2", "iscsi", "tgt", HOSTB_IQN + " lun 1", True, ["hosta"]),
        ("hostb", "/dev/sanless/hostb/xenvg/rec3", "aoe", "vblade", "e2.1", True, ["hosta"]),
    ]
    assert diskexport.import_table(results["hostb"], "hostb") == [
        {"path": "/dev/sanless/hosta/xenvg/rec0", "owner": "hosta", "device": BY_PATH_A0, "present": True,
         "transport": "iscsi", "state": "LOGGED_IN"},
        {"path": "/dev/sanless/hosta/xenvg/rec1", "owner": "hosta", "device": "/dev/etherd/e1.2", "present": True,
         "transport": "aoe", "state": "up"},
    ]
    assert diskexport.import_table(results["hostc"], "hostc") == []


def test_links_udev_rewrote_relative_to_the_node_still_match_their_export_and_session(lab_storage_facts):
    """udev rewrites a shared path's link relative to the node (seen in the lab: /dev/sanless/hostb/xenvg/web07-data ->
    ../../../dm-0 on hostb, whose LIO exports /dev/xenvg/web07-data): the export and the session are matched by the
    node the link and the export's device lead to, not by the link's text (raid1_status said "hostb does not export
    it" of an export hosta was logged in to)."""
    results = {"hosta": {"disk_exports": lab_storage_facts("hosta")}, "hostb": {"disk_exports": lab_storage_facts("hostb")}}
    before = diskexport.export_table(results), diskexport.import_table(results["hostb"], "hostb")
    hosta, hostb = results["hosta"]["disk_exports"], results["hostb"]["disk_exports"]
    own = next(s for s in hosta["shared_paths"] if s["path"] == "/dev/sanless/hosta/xenvg/rec0")
    own.update(device="../../../dm-1", resolved="/dev/dm-1")
    next(e for e in hosta["exports"] if e["device"] == "/dev/xenvg/rec0")["resolved"] = "/dev/dm-1"
    imported = next(s for s in hostb["shared_paths"] if s["path"] == "/dev/sanless/hosta/xenvg/rec0")
    imported.update(device="../../../sda", resolved="/dev/sda")
    table, imports = diskexport.export_table(results), diskexport.import_table(results["hostb"], "hostb")
    assert [r["path"] for r in table] == [r["path"] for r in before[0]]
    assert table[0]["path"] == "/dev/sanless/hosta/xenvg/rec0" and table[0]["to"] == ["hostb"]
    assert [(i["path"], i["transport"], i["state"]) for i in imports] == [(i["path"], i["transport"], i["state"]) for i in before[1]]
    # a node that is not the export's: no match (the LV's link leads elsewhere)
    own.update(resolved="/dev/dm-7")
    assert diskexport.export_table(results)[0]["path"] is None


def test_a_dom0_without_the_tools_has_no_exports_and_a_failing_tool_is_an_error_line(
        lab_storage_facts, monkeypatch, tmp_path, fixture_text):
    lab_storage_facts("hostb")  # its folders, without LIO
    facts = diskexport.storage_facts(CommandRunner(FakeModule({}, tools=[])))
    assert (facts["exports"], facts["imports"], facts["errors"]) == ([], [], [])
    # tgtadm failing (any rc: tgtd not running) is nothing exported by tgt; a session listing that fails (not the
    # recorded rc 21 of no session) is an error line. Failures, not recordings: no output is parsed.
    failing = FakeModule({tuple(iscsi.tgt_show_argv()): (1, "", ""),
                          tuple(iscsi.iscsiadm_session_argv(details=True)): (4, "", "")},
                         tools=["tgtadm", "iscsiadm"])
    facts = diskexport.storage_facts(CommandRunner(failing))
    assert facts["exports"] == [] and len(facts["errors"]) == 1 and facts["errors"][0].startswith("iSCSI sessions: ")


def test_aoe_exports_join_units_and_running_vblades(fixture_text):
    running = aoe.parse_ps_vblade(fixture_text("vblade", "25", "ps-vblade.out"))
    unit = aoe.parse_vblade_unit(aoe.vblade_unit(2, 1, "xenbr0", "/dev/xenvg/rec3", ["2E:4F:B1:CA:36:C2"]))
    [entry] = diskexport.aoe_exports({(2, 1): unit}, running)
    assert (entry["unit"], entry["pid"], entry["allowed"]) == ("sanless-vblade-2-1.service", 969, ["2e:4f:b1:ca:36:c2"])


def test_initiator_name_file(tmp_path):
    assert iscsi.parse_initiatorname("## DO NOT EDIT\nInitiatorName=%s\n" % LAB_INITIATORS["hostb"]) == LAB_INITIATORS["hostb"]
    assert iscsi.parse_initiatorname("#InitiatorName=iqn.2026-11.lab.sanless:x\n") is None
    assert iscsi.parse_initiatorname("InitiatorName=not an iqn; reboot\n") is None


def test_shared_paths_skip_what_is_no_shared_path(monkeypatch, tmp_path):
    monkeypatch.setattr(iscsi, "ROOT", str(tmp_path))
    monkeypatch.setattr(diskexport, "device_exists", lambda path: False)
    iscsi.ensure_shared_path("hosta", "xenvg", "web05-disk", {"KERNEL": "sda"}, "/dev/sda", False)
    (tmp_path / "dev/sanless/hosta/xenvg/not..valid;x").write_text("")
    (tmp_path / "dev/sanless/HostA").mkdir()
    assert diskexport.shared_paths() == [{"owner": "hosta", "vg": "xenvg", "lv": "web05-disk",
                                          "path": "/dev/sanless/hosta/xenvg/web05-disk", "device": "/dev/sda",
                                          "present": False, "resolved": None}]


def test_lio_without_a_saved_config_is_read_from_its_configfs_once_loaded(lab_storage_facts, monkeypatch, tmp_path):
    lab_storage_facts("hostb")  # hostb's folders: no saveconfig.json
    module = FakeModule({}, tools=["targetcli"])
    monkeypatch.setattr(iscsi, "LIO_CONFIGFS", str(tmp_path / "no-configfs"))
    # LIO not loaded: no export
    assert diskexport.storage_facts(CommandRunner(module))["exports"] == []
    monkeypatch.setattr(iscsi, "LIO_CONFIGFS", str(lio_configfs_tree(tmp_path / "configfs", "lio-configfs")))
    facts = diskexport.storage_facts(CommandRunner(module))
    assert facts["exports"] == [{"transport": "iscsi", "backend": "lio", "device": "/dev/xenvg/rec0", "target": HOSTA_IQN,
                                 "lun": 0, "allowed": [LAB_INITIATORS["hostb"]], "resolved": None}]
    # read from the tree: targetcli never ran
    assert module.calls == []


def test_lio_exports_are_the_kernels_not_a_stale_saved_config(lab_storage_facts, monkeypatch, tmp_path):
    """hosta's saveconfig.json names rec0's LUN (tc-saveconfig-json) but the kernel has nothing (a failed restore at
    boot; lio-configfs-empty): no LIO export. With LIO not loaded, none either. targetcli runs in neither case."""
    lab_storage_facts("hosta")  # hosta's folders: its saveconfig.json, LIO loaded
    monkeypatch.setattr(iscsi, "LIO_CONFIGFS", str(lio_configfs_tree(tmp_path / "empty", "lio-configfs-empty")))
    module = FakeModule({}, tools=["targetcli"])
    facts = diskexport.storage_facts(CommandRunner(module))
    assert facts["errors"] == [] and [e["transport"] for e in facts["exports"]] == ["aoe"]
    monkeypatch.setattr(iscsi, "LIO_CONFIGFS", str(tmp_path / "no-configfs"))
    facts = diskexport.storage_facts(CommandRunner(module))
    assert facts["errors"] == [] and [e["transport"] for e in facts["exports"]] == ["aoe"]
    assert not [call for call in module.calls if call[0][0] == "targetcli"]


def test_boot_units_are_the_links_systemctl_enable_made(monkeypatch, tmp_path, fixture_text):
    # hostb's /etc/systemd/system as `find -path '*.wants/*' -o -path '*.requires/*'` listed it in the lab, after a
    # disk_export run had enabled its imports' boot logins; other files there (unit files, aliases) are no boot unit
    systemd = tmp_path / "etc/systemd/system"
    for line in fixture_text("systemd", "252", "enabled-unit-links-hostb.out").splitlines():
        link = systemd / line[len("/etc/systemd/system/"):]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/lib/systemd/system/" + link.name)
    (systemd / "sanless-vblade-e1.2.service").write_text("[Unit]\n")
    (systemd / "sshd.service").symlink_to("/lib/systemd/system/ssh.service")
    monkeypatch.setattr(aoe, "SYSTEMD_DIR", str(systemd))
    units = diskexport.boot_units()
    assert {"iscsid.socket", "open-iscsi.service", "rtslib-fb-targetctl.service", "getty@tty1.service"} <= set(units)
    assert units == sorted(units) and len(units) == 15
    assert "sanless-vblade-e1.2.service" not in units and "sshd.service" not in units
    # a dom0 whose initiator boot logins were never enabled: the role enables both
    (systemd / "sockets.target.wants/iscsid.socket").unlink()
    (systemd / "sysinit.target.wants/open-iscsi.service").unlink()
    assert not {"iscsid.socket", "open-iscsi.service"} & set(diskexport.boot_units())
