# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""iscsi.py parsers on the lab recordings (targetcli 2.1.53, tgt 1.0.85, open-iscsi 2.1.8)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import iscsi
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError
from ansible_collections.sanless.xen.tests.unit.conftest import lio_configfs_tree

TC = ("targetcli", "2.1.53")
TGT = ("tgt", "1.0.85")
ISCSIADM = ("iscsiadm", "2.1.8")
SECRET = "labsecret12345"
HOSTB_INIT = "iqn.2026-11.lab.sanless:hostb:54df6118618"
HOSTA_INIT = "iqn.2026-11.lab.sanless:hosta:a21defa1caf5"


def out(fixture_text, where, name):
    return fixture_text(*where + (name + ".out",))


def rc(fixture_text, where, name):
    return int(fixture_text(*where + (name + ".rc",)).strip())


def test_saveconfig_state_without_the_secret(fixture_text):
    text = out(fixture_text, TC, "tc-saveconfig-json")
    assert SECRET in text
    state = iscsi.parse_lio_saveconfig(text)
    assert SECRET not in json.dumps(state)
    assert state["backstores"] == [{"name": "xenvg-rec0", "plugin": "block", "dev": "/dev/xenvg/rec0",
                                    "wwn": "d999ba05-b10b-460c-b965-18ff93924af4"}]
    tpg = iscsi.lio_tpg(state, "iqn.2026-12.xen.sanless:hosta")
    assert tpg["authentication"] is True and tpg["generate_node_acls"] is False
    assert tpg["portals"] == [{"address": "10.77.0.11", "port": 3260}]
    assert tpg["luns"] == [{"lun": 0, "backstore": "xenvg-rec0", "plugin": "block"}]
    assert tpg["acls"] == [{"initiator": HOSTB_INIT, "chap_userid": "hostb", "chap_password_set": True,
                            "mapped_luns": [{"mapped_lun": 0, "tpg_lun": 0, "write_protect": False}]}]
    assert iscsi.lio_chap_secrets(text) == {("iqn.2026-12.xen.sanless:hosta", 1, HOSTB_INIT): SECRET}


def test_targetcli_ls_gives_the_same_structure_as_the_json(fixture_text):
    from_ls = iscsi.parse_targetcli_ls(out(fixture_text, TC, "tc-ls"))
    from_json = iscsi.parse_lio_saveconfig(out(fixture_text, TC, "tc-saveconfig-json"))
    # ls has neither the backstore wwn nor the CHAP user name
    for state in (from_ls, from_json):
        for item in state["backstores"]:
            item["wwn"] = None
        for acl in state["targets"][0]["tpgs"][0]["acls"]:
            acl["chap_userid"] = None
    assert from_ls == from_json


def test_targetcli_ls_of_a_fresh_host_is_empty(fixture_text):
    assert iscsi.parse_targetcli_ls(out(fixture_text, TC, "targetcli-ls-empty")) == {"backstores": [], "targets": []}
    assert iscsi.parse_lio_saveconfig("") == {"backstores": [], "targets": []}


def test_lio_same_config_compares_what_targetcli_ls_shows(fixture_text):
    saved = iscsi.parse_lio_saveconfig(out(fixture_text, TC, "tc-saveconfig-json"))
    live = iscsi.parse_targetcli_ls(out(fixture_text, TC, "tc-ls"))
    empty = iscsi.parse_targetcli_ls(out(fixture_text, TC, "targetcli-ls-empty"))
    # the recorded pair agrees although the listing has no wwn nor CHAP user name
    assert saved["backstores"][0]["wwn"] and live["backstores"][0]["wwn"] is None
    assert iscsi.lio_same_config(saved, live)
    # a file naming what the kernel lacks (a failed restore at boot), and the other way round
    assert not iscsi.lio_same_config(saved, empty)
    assert not iscsi.lio_same_config(iscsi.parse_lio_saveconfig(""), live)
    assert iscsi.lio_same_config(iscsi.parse_lio_saveconfig(""), empty)
    # a listed field that differs counts (an ACL whose mapped LUN is gone from the kernel)
    unmapped = iscsi.parse_targetcli_ls(out(fixture_text, TC, "tc-ls"))
    unmapped["targets"][0]["tpgs"][0]["acls"][0]["mapped_luns"] = []
    assert not iscsi.lio_same_config(saved, unmapped)
    # the comparison reads copies: the parsed states are left as they were
    assert saved == iscsi.parse_lio_saveconfig(out(fixture_text, TC, "tc-saveconfig-json"))


@pytest.mark.parametrize("saveconfig, kernel, expected", [
    # the file agrees with the kernel: its state, with the CHAP secret it alone holds
    ("tc-saveconfig-json", "lio-configfs", "saved"),
    # stale file (the kernel restored nothing at boot): the kernel's state, no secret known, not saved
    ("tc-saveconfig-json", "lio-configfs-empty", "live"),
    # no file yet: the kernel's state
    (None, "lio-configfs", "live"),
])
def test_lio_state_is_the_kernels(fake_module, monkeypatch, tmp_path, fixture_text, saveconfig, kernel, expected):
    from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
    path = tmp_path / "saveconfig.json"
    if saveconfig:
        path.write_text(out(fixture_text, TC, saveconfig))
    monkeypatch.setattr(iscsi, "LIO_SAVECONFIG", str(path))
    monkeypatch.setattr(iscsi, "LIO_CONFIGFS", str(lio_configfs_tree(tmp_path / "configfs", kernel)))
    module = fake_module({})
    state, secrets, saved = iscsi.Lio(CommandRunner(module)).state()
    assert module.calls == []  # read from configfs: no targetcli
    if expected == "saved":
        assert state == iscsi.parse_lio_saveconfig(out(fixture_text, TC, saveconfig)) and saved
        assert secrets == {("iqn.2026-12.xen.sanless:hosta", 1, HOSTB_INIT): SECRET}
    else:
        tree = json.loads(fixture_text(*TC + (kernel + ".json",)))
        assert state == iscsi.parse_lio_configfs(tree) and secrets == {} and not saved


def _in_order(state):
    """A parsed LIO state with its lists in one order (saveconfig.json and configfs list them differently)."""
    state = json.loads(json.dumps(state))
    state["backstores"].sort(key=lambda b: b["name"])
    for target in state["targets"]:
        for tpg in target["tpgs"]:
            tpg["luns"].sort(key=lambda lun: lun["lun"])
            tpg["acls"].sort(key=lambda a: a["initiator"])
            for acl in tpg["acls"]:
                acl["mapped_luns"].sort(key=lambda m: m["mapped_lun"])
    return state


@pytest.mark.parametrize("tree, saveconfig, listing, same_backstores", [
    # hostb's ACL with CHAP, one LUN: the state of the README's recordings, made again by the same commands when the
    # tree was recorded (targetcli ls gave tc-ls again, byte for byte); the backstore is a new one, its wwn too
    ("lio-configfs", "tc-saveconfig-json", "tc-ls", False),
    # two LUNs, the second mapped read-only, while hostb was logged in: all three recorded at one time
    ("lio-configfs-two-luns", "tc-saveconfig-two-luns-json", "tc-ls-two-luns", True),
])
def test_lio_configfs_reads_what_saveconfig_saved_and_targetcli_lists(fixture_text, tree, saveconfig, listing,
                                                                      same_backstores):
    from_tree = iscsi.parse_lio_configfs(json.loads(fixture_text(*TC + (tree + ".json",))))
    from_json = iscsi.parse_lio_saveconfig(out(fixture_text, TC, saveconfig))
    assert all(b["wwn"] for b in from_tree["backstores"])
    if not same_backstores:
        for state in (from_tree, from_json):
            for backstore in state["backstores"]:
                backstore["wwn"] = None
    # everything saveconfig.json holds but the secrets: backstore wwns, CHAP user names, tpg enable
    assert _in_order(from_tree) == _in_order(from_json)
    assert iscsi.lio_same_config(from_json, from_tree)
    assert iscsi._lio_as_listed(from_tree) == iscsi._lio_as_listed(iscsi.parse_targetcli_ls(out(fixture_text, TC, listing)))
    assert SECRET not in json.dumps(from_tree)


def test_lio_configfs_two_luns_in_detail(fixture_text):
    state = iscsi.parse_lio_configfs(json.loads(fixture_text(*TC + ("lio-configfs-two-luns.json",))))
    assert [(b["name"], b["plugin"], b["dev"]) for b in state["backstores"]] == [
        ("xenvg-rec0", "block", "/dev/xenvg/rec0"), ("xenvg-rec1", "block", "/dev/xenvg/rec1")]
    tpg = iscsi.lio_tpg(state, "iqn.2026-12.xen.sanless:hosta")
    assert tpg["tag"] == 1 and tpg["enabled"] and tpg["authentication"] and not tpg["generate_node_acls"]
    assert tpg["luns"] == [{"lun": 0, "backstore": "xenvg-rec0", "plugin": "block"},
                           {"lun": 1, "backstore": "xenvg-rec1", "plugin": "block"}]
    assert tpg["acls"] == [{"initiator": "iqn.2026-11.lab.sanless:hostb:9f399c1b15b0", "chap_userid": "hostb",
                            "chap_password_set": True,
                            "mapped_luns": [{"mapped_lun": 0, "tpg_lun": 0, "write_protect": False},
                                            {"mapped_lun": 1, "tpg_lun": 1, "write_protect": True}]}]


def test_read_lio_configfs_walks_what_the_state_needs_and_never_a_secret(tmp_path, fixture_text):
    recorded = json.loads(fixture_text(*TC + ("lio-configfs-two-luns.json",)))
    root = lio_configfs_tree(tmp_path / "target", "lio-configfs-two-luns")
    # what the kernel has besides: files and folders the state is not made of
    (root / "core/alua/lu_gps/default_lu_gp").mkdir(parents=True)
    (root / "core/iblock_0/hba_info").write_text("HBA Index: 1 plugin: iblock version: v5.0\n")
    (root / "iscsi/discovery_auth").mkdir(parents=True)
    (root / "iscsi/lio_version").write_text("Datera Inc. iSCSI Target v4.1.0\n")
    acl = root / "iscsi/iqn.2026-12.xen.sanless:hosta/tpgt_1/acls/iqn.2026-11.lab.sanless:hostb:9f399c1b15b0"
    (acl / "info").write_text("LIO Session ID: 1   ISID: 0x00 02 3d 00 00 02  TSIH: 1  SessionType: Normal\n")
    tree = iscsi.read_lio_configfs(str(root))
    assert tree == recorded
    assert SECRET not in json.dumps(tree)
    assert iscsi.read_lio_configfs(str(tmp_path / "not-loaded")) == {}
    # a LUN whose backstore link is gone is an error, not a LUN of nothing
    broken = dict(recorded)
    del broken["iscsi/iqn.2026-12.xen.sanless:hosta/tpgt_1/lun/lun_1/041b84eb1a"]
    with pytest.raises(iscsi.IscsiParseError, match="lun_1 leads to no backstore"):
        iscsi.parse_lio_configfs(broken)


def test_targetcli_sessions(fixture_text):
    sessions = iscsi.parse_targetcli_sessions(out(fixture_text, TC, "tc-sessions"))
    assert sessions == [{"alias": "hostb", "sid": 1, "type": "Normal", "state": "LOGGED_IN", "initiator": HOSTB_INIT,
                         "authenticated": False, "addresses": ["10.77.0.12"],
                         "mapped_luns": [{"lun": 0, "backstore": "block/xenvg-rec0", "mode": "rw"}]}]


def test_bad_saveconfig_is_a_parse_error():
    with pytest.raises(iscsi.IscsiParseError):
        iscsi.parse_lio_saveconfig("{not json")


def test_tgtadm_show_with_a_logged_in_initiator(fixture_text):
    [target] = iscsi.parse_tgtadm_show(out(fixture_text, TGT, "tgtadm-show"))
    assert (target["tid"], target["iqn"], target["state"]) == (1, "iqn.2026-12.xen.sanless:hostb", "ready")
    assert target["nexus"] == [{"nexus": 1, "initiator": HOSTA_INIT, "alias": "hosta", "addresses": ["10.77.0.11"]}]
    assert [(lun["lun"], lun["type"], lun["backing_store"]) for lun in target["luns"]] == \
        [(0, "controller", None), (1, "disk", "/dev/xenvg/rec2")]
    assert target["luns"][1]["size_mb"] == 17
    assert target["accounts"] == ["hosta"] and target["acls"] == [HOSTA_INIT]
    assert iscsi.parse_tgtadm_show(out(fixture_text, TGT, "tgtadm-show-empty")) == []
    assert iscsi.parse_tgtadm_accounts(out(fixture_text, TGT, "tgtadm-account-show")) == ["hosta"]
    assert target["address_acls"] == []


def test_tgtadm_show_after_a_restart_keeps_names_apart_from_tgt_admins_address_acl(fixture_text):
    # recorded on hosta after systemctl restart tgt: tgt-admin bound the address ACL ALL beside hostb's name
    [target] = iscsi.parse_tgtadm_show(out(fixture_text, TGT, "tgtadm-show-after-restart"))
    assert target["iqn"] == "iqn.2026-12.xen.sanless:hosta"
    assert target["acls"] == ["iqn.2026-11.lab.sanless:hostb:972c5abaa43e"] and target["address_acls"] == ["ALL"]
    assert [lun["backing_store"] for lun in target["luns"]] == [None, "/dev/xenvg/web05-disk"]


def test_tgt_conf_round_trip_and_tgt_admin_dump(fixture_text):
    text = iscsi.render_tgt_conf("iqn.2026-12.xen.sanless:hostb", {1: "/dev/xenvg/rec2"}, [HOSTA_INIT],
                                 {"hosta": SECRET})
    assert iscsi.parse_tgt_conf(text) == {"iqn": "iqn.2026-12.xen.sanless:hostb", "luns": {1: "/dev/xenvg/rec2"},
                                          "initiators": [HOSTA_INIT], "users": {"hosta": SECRET}}
    # tgt-admin --dump's form (plain backing-store lines, LUNs from 1) reads the same way
    dumped = iscsi.parse_tgt_conf(out(fixture_text, TGT, "tgt-admin-dump"))
    assert dumped["luns"] == {1: "/dev/xenvg/rec2"} and dumped["initiators"] == [HOSTA_INIT]


def test_iscsiadm_sessions_and_details(fixture_text):
    assert iscsi.parse_sessions(out(fixture_text, ISCSIADM, "iscsiadm-session")) == [
        {"sid": 3, "transport": "tcp", "address": "10.77.0.11", "port": 3260, "tpgt": 1,
         "target": "iqn.2026-12.xen.sanless:hosta"}]
    [lio] = iscsi.parse_session_details(out(fixture_text, ISCSIADM, "iscsiadm-session-P3"))
    assert (lio["target"], lio["address"], lio["port"], lio["sid"]) == ("iqn.2026-12.xen.sanless:hosta",
                                                                        "10.77.0.11", 3260, 3)
    assert lio["session_state"] == "LOGGED_IN" and lio["initiator"] == HOSTB_INIT and lio["chap_username"] == "hostb"
    assert lio["disks"] == [{"lun": 0, "disk": "sda", "state": "running"}]
    # tgt: LUN 0 is the controller, without a disk; the disk is LUN 1
    [tgt] = iscsi.parse_session_details(out(fixture_text, ISCSIADM, "iscsiadm-session-P3-tgt"))
    assert tgt["luns"] == [0, 1] and tgt["disks"] == [{"lun": 1, "disk": "sda", "state": "running"}]
    assert "password" not in json.dumps(tgt)


def test_iscsiadm_node_and_discovery(fixture_text):
    for name in ("iscsiadm-node", "iscsiadm-discovery"):
        assert iscsi.parse_targets(out(fixture_text, ISCSIADM, name)) == [
            {"address": "10.77.0.11", "port": 3260, "tpgt": 1, "target": "iqn.2026-12.xen.sanless:hosta"}]
    record = iscsi.parse_node_record(out(fixture_text, ISCSIADM, "iscsiadm-node-show"))
    assert record["node.startup"] == "manual" and record["node.session.auth.username"] == "hostb"
    assert record["node.session.auth.authmethod"] == "CHAP" and record["iface.initiatorname"] == ""
    assert not [key for key in record if "password" in key]


def test_iscsiadm_rc_classification(fixture_text):
    assert iscsi.classify_iscsiadm(rc(fixture_text, ISCSIADM, "iscsiadm-session-none"))[0] == "not_found"
    for name in ("iscsiadm-login-nochap", "iscsiadm-login-badchap"):
        kind, text = iscsi.classify_iscsiadm(rc(fixture_text, ISCSIADM, name))
        assert kind == "auth_failed" and "CHAP" in text
    assert iscsi.classify_iscsiadm(rc(fixture_text, ISCSIADM, "iscsiadm-login"))[0] == "ok"
    assert iscsi.classify_iscsiadm(99)[0] == "error"


def test_by_path_matches_udev(fixture_text):
    link = out(fixture_text, ISCSIADM, "by-path").split()[8]
    assert iscsi.by_path("10.77.0.11", 3260, "iqn.2026-12.xen.sanless:hosta", 0) == "/dev/disk/by-path/" + link


def test_scrub_masks_secrets_everywhere(fixture_text):
    chap = out(fixture_text, TC, "tc-acl-chap")
    err = CommandError(["targetcli", "x", "password=%s" % SECRET], 1, chap, "")
    masked = iscsi.scrub_error(err, [SECRET])
    assert SECRET not in json.dumps(masked.to_fail_kwargs())
    assert masked.rc == 1 and "password=********" in masked.cmd
    assert iscsi.scrub({"a": [SECRET + "x"]}, [SECRET, None]) == {"a": ["********x"]}


def test_a_shared_link_that_udev_rewrote_to_the_node_is_left_alone(tmp_path, monkeypatch):
    """udev rewrites /dev/sanless/... on every event of the device (a writer closing it is one) as a
    relative link to the node: found in the lab as a second export.yml run reporting a change."""
    monkeypatch.setattr(iscsi, "ROOT", str(tmp_path))
    (tmp_path / "dev/disk/by-path").mkdir(parents=True)
    (tmp_path / "dev/sdb").write_text("")
    by_path = tmp_path / "dev/disk/by-path/ip-10.77.0.11:3260-iscsi-iqn.2026-12.xen.sanless:hosta-lun-0"
    by_path.symlink_to("../../sdb")
    match = {"ENV{ID_PATH}": by_path.name}
    assert iscsi.ensure_shared_path("hosta", "xenvg", "web05-disk", match, str(by_path), False)[-1].startswith("link ")
    link = tmp_path / "dev/sanless/hosta/xenvg/web05-disk"
    link.unlink()
    link.symlink_to("../../../sdb")  # what udev's SYMLINK+= leaves
    assert iscsi.ensure_shared_path("hosta", "xenvg", "web05-disk", match, str(by_path), False) == []
    # a link to another node is replaced
    (tmp_path / "dev/sdc").write_text("")
    link.unlink()
    link.symlink_to("../../../sdc")
    assert iscsi.ensure_shared_path("hosta", "xenvg", "web05-disk", match, str(by_path), False) == [
        "link %s -> %s" % (link, by_path)]
    assert os.path.realpath(str(link)) == str(tmp_path / "dev/sdb")


# A stand-in for targetcli-fb 2.1.53's /usr/bin/targetcli, as the batch uses it: the module it loads from that path
# (TargetCLI, UIRoot, lock_file). Its shell prints each command line and raises targetcli's way on "boom".
STAND_IN_TARGETCLI = '''#!/usr/bin/python3
import sys
lock_file = sys.argv[1] + ".lock"


class TargetCLI(object):
    def __init__(self, home):
        self.home = home

    def run_cmdline(self, line):
        if "boom" in line:
            raise RuntimeError("Could not open /dev/xenvg/boom")
        print("ran: " + line)


class UIRoot(object):
    def __init__(self, shell, as_root=False):
        assert as_root

    def refresh(self):
        print("refreshed")
'''


HOSTA = "iqn.2026-12.xen.sanless:hosta"


def run_batch(tmp_path, commands):
    import subprocess
    import sys

    script = tmp_path / "targetcli"
    script.write_text(STAND_IN_TARGETCLI)
    argv = iscsi.lio_batch_argv([sys.executable], str(script), commands)
    # the stand-in is found by path only: nothing named targetcli on sys.path (the batch's first choice)
    return subprocess.run(argv, capture_output=True, text=True, cwd=str(tmp_path), env={"PYTHONPATH": ""}, check=False)


def test_lio_batch_runs_the_commands_in_order_after_one_refresh(tmp_path):
    proc = run_batch(tmp_path, [iscsi.lio_target_create_argv(HOSTA), iscsi.lio_saveconfig_argv()])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["refreshed", "ran: /iscsi create %s" % HOSTA, "ran: saveconfig"]


def test_lio_batch_stops_at_the_first_failure_and_names_it(tmp_path):
    commands = [iscsi.lio_target_create_argv(HOSTA), iscsi.lio_backstore_create_argv("boom", "/dev/xenvg/boom"),
                iscsi.lio_saveconfig_argv()]
    proc = run_batch(tmp_path, commands)
    assert proc.returncode == 1 and "saveconfig" not in proc.stdout
    assert iscsi.lio_batch_failure(proc.stderr) == (1, "Could not open /dev/xenvg/boom")
    # a batch that fails before its first command: its last words
    assert iscsi.lio_batch_failure("Traceback ...\nModuleNotFoundError: No module named 'rtslib_fb'\n") == (
        None, "ModuleNotFoundError: No module named 'rtslib_fb'")


def test_lio_batch_takes_only_targetcli_commands_and_its_interpreter_from_the_script():
    with pytest.raises(ValueError):
        iscsi.lio_batch_argv(["/usr/bin/python3"], "/usr/bin/targetcli", [["rm", "-rf", "/"]])
    assert iscsi.script_interpreter("#!/usr/bin/python3\nimport sys\n") == ["/usr/bin/python3"]
    assert iscsi.script_interpreter("#! /usr/bin/env python3\n") == ["/usr/bin/env", "python3"]
    assert iscsi.script_interpreter("\x7fELF") is None and iscsi.script_interpreter(None) is None
