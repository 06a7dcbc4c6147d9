# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.disk_import_cleanup run whole on hostb of the export recordings (tests/unit/conftest.py
lab_storage_facts): hostb imports hosta's rec0 (LIO LUN 0, sda; iscsiadm-session-P3) and rec1 (e1.2; aoe-discover),
both linked under /dev/sanless/hosta. What hosta exports is its recorded state (LIO saveconfig, the vblade unit), or
that state with an export taken away. Domains: the recorded xl list -l (fxrec on its own LV), or that recording with
fxrec's disk moved to a shared path (derived in the test); dm tables: the recorded dmsetup table."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import aoe, diskexport, dm, iscsi
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.modules import disk_import_cleanup
from ansible_collections.sanless.xen.tests.unit.conftest import recorded_run

HOSTA_IQN = conv.target_iqn("hosta")
ADM = ("iscsiadm", "2.1.8")
SESSIONS = tuple(iscsi.iscsiadm_session_argv(details=True))
LOGOUT = tuple(iscsi.iscsiadm_logout_argv(HOSTA_IQN, "10.77.0.11", 3260))
FLUSH_SDA = tuple(iscsi.blockdev_flushbufs_argv("sda"))
DELETE = tuple(iscsi.iscsiadm_delete_argv(HOSTA_IQN, "10.77.0.11", 3260))
FLUSH = tuple(aoe.aoe_flush_argv(1, 2))
XL_LIST_L = ("xl", "list", "-l")
DM_TABLE = ("dmsetup", "table")
REC0, REC1 = "/dev/sanless/hosta/xenvg/rec0", "/dev/sanless/hosta/xenvg/rec1"
ARGS = {"host": "hostb", "owner": "hosta", "dom0s": ["hosta", "hostb"]}
# the device numbers of the imports on hostb (sda, e1.2) and of what the recorded domains' disks lead to
NUMBERS = {"/dev/sda": "8:0", "/dev/etherd/e1.2": "152:0", "/dev/xenvg/fxrec-disk": "254:3"}


def xl_list_l(fixture_text, disk=None):
    """The recorded xl list -l; with disk, fxrec's disk moved to that path (derived from the recording)."""
    text = fixture_text("xl", "4.17.5", "xl-list-l.json")
    if disk is None:
        return (0, text, "")
    data = json.loads(text)
    [fxrec] = [d for d in data if d["config"]["c_info"]["name"] == "fxrec"]
    fxrec["config"]["disks"][0]["pdev_path"] = disk
    return (0, json.dumps(data), "")


@pytest.fixture
def hostb(lab_storage_facts, module_main, monkeypatch, tmp_path, fixture_text):
    """run(args, outputs, check_mode=False) -> (result, failed, commands) on hostb; hosta_exports: what hosta
    reports exporting (its recorded facts)."""
    from ansible.module_utils import basic

    hosta_exports = lab_storage_facts("hosta")["exports"]
    lab_storage_facts("hostb")  # hostb's folders, links and recordings stay in place for the module
    tools = {"iscsiadm", "aoe-stat", "xl", "dmsetup"}
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/usr/sbin/" + name if name in tools else None)
    numbers = dict(NUMBERS)
    monkeypatch.setattr(diskexport, "device_number", numbers.get)
    sys_block = tmp_path / "sys-block"
    (sys_block / "sda" / "holders").mkdir(parents=True)
    monkeypatch.setattr(dm, "SYS_BLOCK", str(sys_block))
    root = tmp_path / "hostb"

    def go(args, outputs, check_mode=False):
        base = {SESSIONS: recorded_run(fixture_text, ADM, "iscsiadm-session-P3"),
                tuple(aoe.aoe_stat_argv()): recorded_run(fixture_text, ("aoetools", "36"), "aoe-discover"),
                XL_LIST_L: xl_list_l(fixture_text),
                DM_TABLE: (0, fixture_text("dm", "1.02.185", "dmsetup-table.txt"), "")}
        base.update(outputs)
        return module_main(disk_import_cleanup.main, dict(ARGS, **args), base, check_mode, True)
    go.exports = hosta_exports
    go.root = root
    go.numbers = numbers
    go.holders = sys_block / "sda" / "holders"
    return go


def link(root, path):
    full = str(root) + path
    return os.readlink(full) if os.path.lexists(full) else None


def test_imports_hosta_still_exports_and_links_lead_to_are_left_alone(hostb):
    result, failed, calls = hostb({"exports": hostb.exports}, {})
    assert not failed, result
    assert not result["changed"] and result["removed"] == [] and result["kept"] == []
    # nothing stale: no domain or dm table is read
    assert XL_LIST_L not in [tuple(c) for c in calls]
    assert link(hostb.root, REC0) == iscsi.by_path("10.77.0.11", 3260, HOSTA_IQN, 0)


def test_exports_gone_log_out_flush_and_remove_the_links_then_nothing_is_left(hostb, fixture_text):
    outputs = {LOGOUT: recorded_run(fixture_text, ADM, "iscsiadm-logout"),
               DELETE: recorded_run(fixture_text, ADM, "iscsiadm-node-delete"),
               FLUSH: (0, "", ""), FLUSH_SDA: (0, "", "")}  # blockdev --flushbufs prints nothing
    (hostb.root / "sys/block/sda/device").mkdir(parents=True)
    result, failed, calls = hostb({"exports": []}, outputs)
    assert not failed, result
    # sda flushed and deleted while the session is up, then the logout (a logout alone hung lab dom0s)
    assert (hostb.root / "sys/block/sda/device/delete").read_text() == "1"
    assert calls.index(list(FLUSH_SDA)) < calls.index(list(LOGOUT))
    assert [(r["transport"], r["device"], r["action"], r["reasons"]) for r in result["removed"]] == [
        ("iscsi", "/dev/sda", "log out", ["hosta no longer exports it to hostb"]),
        ("aoe", "/dev/etherd/e1.2", "aoe-flush e1.2", ["hosta no longer exports it to hostb"])]
    assert [list(LOGOUT), list(DELETE), list(FLUSH)] == [c for c in calls if tuple(c) in (LOGOUT, DELETE, FLUSH)]
    # the domains and dm tables were read before the first change
    assert calls.index(list(XL_LIST_L)) < calls.index(list(LOGOUT)) and calls.index(list(DM_TABLE)) < calls.index(list(LOGOUT))
    assert result["links_removed"] == [REC0, REC1] and link(hostb.root, REC0) is None and link(hostb.root, REC1) is None
    assert not (hostb.root / "etc/udev/rules.d/61-sanless-hosta-xenvg-rec0.rules").exists()
    assert result["changed"] and result["diff"]["before"].splitlines() == ["aoe /dev/etherd/e1.2",
                                                                           "iscsi " + iscsi.by_path("10.77.0.11", 3260, HOSTA_IQN, 0)]
    # second run: the session and the device are gone (recorded: no session; aoe-stat after everything stopped)
    again = {SESSIONS: recorded_run(fixture_text, ADM, "iscsiadm-session-none"),
             tuple(aoe.aoe_stat_argv()): recorded_run(fixture_text, ("aoetools", "36"), "aoe-stat-empty2")}
    result, failed, calls = hostb({"exports": []}, again)
    assert not failed and not result["changed"] and result["removed"] == [], result


def test_check_mode_reports_and_changes_nothing(hostb):
    result, failed, calls = hostb({"exports": []}, {}, check_mode=True)
    assert not failed, result
    assert result["changed"] and [r["action"] for r in result["removed"]] == ["log out", "aoe-flush e1.2"]
    assert result["would_run"] == [list(LOGOUT), list(DELETE), list(FLUSH)]
    assert link(hostb.root, REC0) is not None and link(hostb.root, REC1) is not None


def test_an_import_a_domain_uses_is_kept_even_when_its_export_is_gone(hostb, fixture_text):
    # fxrec's disk on hostb's shared path of rec0: the iSCSI import stays, the AoE one goes
    outputs = {XL_LIST_L: xl_list_l(fixture_text, REC0), FLUSH: (0, "", "")}
    hostb.numbers[REC0] = "8:0"
    result, failed, calls = hostb({"exports": []}, outputs)
    assert not failed, result
    [kept] = result["kept"]
    assert (kept["device"], kept["users"]) == ("/dev/sda", ["domain fxrec uses it (%s)" % REC0])
    assert [r["device"] for r in result["removed"]] == ["/dev/etherd/e1.2"]
    assert LOGOUT not in [tuple(c) for c in calls] and link(hostb.root, REC0) is not None
    assert link(hostb.root, REC1) is None


def test_a_domain_on_the_device_number_a_dm_table_or_a_holder_keeps_the_import(hostb, fixture_text):
    # fxrec's disk named by another path to sda (its device number); then a dm table on it; then an md holder
    hostb.numbers["/dev/disk/by-id/scsi-lio-rec0"] = "8:0"
    outputs = {XL_LIST_L: xl_list_l(fixture_text, "/dev/disk/by-id/scsi-lio-rec0"), FLUSH: (0, "", "")}
    result, failed, calls = hostb({"exports": []}, outputs)
    assert [k["users"] for k in result["kept"]] == [["domain fxrec uses it (/dev/disk/by-id/scsi-lio-rec0)"]], result
    # the recorded tables map 254:16: stand in for sda's number
    hostb.numbers["/dev/sda"] = "254:16"
    outputs = {DM_TABLE: (0, fixture_text("dm", "1.02.185", "dmsetup-table-swapped.txt"), ""), FLUSH: (0, "", "")}
    result, failed, calls = hostb({"exports": []}, outputs)
    assert not failed and result["kept"][0]["users"][0].startswith("dm device "), result
    assert LOGOUT not in [tuple(c) for c in calls]
    hostb.numbers["/dev/sda"] = "8:0"
    (hostb.holders / "md127").write_text("")
    result, failed, calls = hostb({"exports": []}, outputs)
    assert not failed and result["kept"][0]["users"] == ["md127 holds it"], result


def test_a_domain_on_a_shared_path_that_leads_nowhere_keeps_every_stale_import_of_its_owner(hostb, fixture_text):
    # hostb's link of rec0 was removed under fxrec: nothing tells which import it has open
    os.unlink(str(hostb.root) + REC0)
    outputs = {XL_LIST_L: xl_list_l(fixture_text, REC0)}
    result, failed, calls = hostb({"exports": hostb.exports}, outputs)
    assert not failed, result
    [kept] = result["kept"]
    assert kept["device"] == "/dev/sda" and kept["reasons"] == ["no shared path leads to it"]
    assert kept["users"] == ["domain fxrec has %s, which leads nowhere: it may be this import" % REC0]
    assert not result["changed"]


def test_an_unlinked_import_goes_even_while_hosta_does_not_answer(hostb, fixture_text):
    # rec1's link removed by hand; hosta unknown (no exports): only the unlinked AoE import is stale
    os.unlink(str(hostb.root) + REC1)
    result, failed, calls = hostb({}, {FLUSH: (0, "", "")})
    assert not failed, result
    assert [(r["device"], r["reasons"]) for r in result["removed"]] == [("/dev/etherd/e1.2", ["no shared path leads to it"])]
    assert LOGOUT not in [tuple(c) for c in calls]


def test_a_lun_of_a_session_that_carries_others_is_taken_off_alone(hostb, fixture_text, monkeypatch):
    # hosta takes rec0 off its ACL but exports another LUN to hostb that hostb has attached as sdb (derived: the
    # recorded session with a second attached disk)
    text = fixture_text(*ADM + ("iscsiadm-session-P3.out",))
    text = text.rstrip("\n") + "\n\t\tscsi2 Channel 00 Id 0 Lun: 1\n\t\t\tAttached scsi disk sdb\t\tState: running\n"
    other = dict(hostb.exports[0], lun=1, device="/dev/xenvg/rec5")
    iscsi.ensure_shared_path("hosta", "xenvg", "rec5", {"KERNEL": "sdb"}, iscsi.by_path("10.77.0.11", 3260, HOSTA_IQN, 1),
                             False)
    linked = diskexport.device_exists
    monkeypatch.setattr(diskexport, "device_exists", lambda path: path.endswith("/rec5") or linked(path))
    (hostb.root / "sys/block/sda/device").mkdir(parents=True)
    result, failed, calls = hostb({"exports": [other, hostb.exports[1]]}, {SESSIONS: (0, text, ""), FLUSH_SDA: (0, "", "")})
    assert not failed, result
    assert [r["action"] for r in result["removed"]] == ["remove LUN 0 (sda)"]
    assert (hostb.root / "sys/block/sda/device/delete").read_text() == "1"
    assert LOGOUT not in [tuple(c) for c in calls] and result["links_removed"] == [REC0]


def test_bad_input_is_refused_before_anything_runs(hostb):
    for args, message in (({"owner": "hostb"}, "owner hostb is this dom0"),
                          ({"owner": "host;a"}, "invalid host name"),
                          ({"paths": ["/dev/sanless/hostc/xenvg/x"]}, "is not a shared path of hosta's disks"),
                          ({"dom0s": ["hosta", "$(reboot)"]}, "invalid host name")):
        result, failed, calls = hostb(args, {})
        assert failed and message in result["msg"] and calls == [], (args, result)


def test_paths_asked_for_lose_a_rule_left_without_link_and_keep_a_live_import(hostb, fixture_text):
    # rec0's link removed by hand, its udev rule left: the unlinked session goes, then the rule; rec1 is imported
    # and linked: asked for too, it stays
    os.unlink(str(hostb.root) + REC0)
    outputs = {LOGOUT: recorded_run(fixture_text, ADM, "iscsiadm-logout"),
               DELETE: recorded_run(fixture_text, ADM, "iscsiadm-node-delete")}
    result, failed, calls = hostb({"exports": hostb.exports, "paths": [REC0, REC1]}, outputs)
    assert not failed, result
    assert [(r["action"], r["reasons"]) for r in result["removed"]] == [("log out", ["no shared path leads to it"])]
    assert result["links_removed"] == [REC0]
    assert not (hostb.root / "etc/udev/rules.d/61-sanless-hosta-xenvg-rec0.rules").exists()
    assert link(hostb.root, REC1) == "/dev/etherd/e1.2" and FLUSH not in [tuple(c) for c in calls]
