# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.iscsi_initiator run whole, iscsiadm answered by the open-iscsi 2.1.8 recordings of hostb
importing hosta's LIO target (and hosta importing hostb's tgt target)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import iscsi
from ansible_collections.sanless.xen.plugins.modules import iscsi_initiator
from ansible_collections.sanless.xen.tests.unit.conftest import recorded_run

ADM = ("iscsiadm", "2.1.8")
SECRET = "labsecret12345"
HOSTA = "iqn.2026-12.xen.sanless:hosta"
HOSTB = "iqn.2026-12.xen.sanless:hostb"
NODES = ["iscsiadm", "-m", "node"]
SESSIONS = iscsi.iscsiadm_session_argv(details=True)
ARGS = {"target": HOSTA, "portal": "10.77.0.11", "chap_user": "hostb", "chap_password": SECRET}
BY_PATH = "/dev/disk/by-path/ip-10.77.0.11:3260-iscsi-%s-lun-0" % HOSTA


def rec(fixture_text, name):
    return recorded_run(fixture_text, ADM, name)


def update(name, value, target=HOSTA, portal="10.77.0.11"):
    return tuple(iscsi.iscsiadm_update_argv(target, portal, 3260, name, value))


@pytest.fixture
def run(module_main, imported_devices, tmp_path):
    devices = imported_devices

    def go(args, outputs, check_mode=False, present=(BY_PATH,)):
        devices.clear()
        devices.update(present)
        result, failed, calls = module_main(iscsi_initiator.main, args, outputs, check_mode, True)
        assert SECRET not in json.dumps(result), "the CHAP secret leaked into the result"
        return result, failed, calls
    go.root = tmp_path
    return go


def first_login(fixture_text):
    """hostb before the import: no session, only hosta's other node record (tgt's), then the recorded
    discovery, node updates, login and session."""
    return {
        tuple(SESSIONS): [rec(fixture_text, "iscsiadm-session-none"), rec(fixture_text, "iscsiadm-session-P3")],
        tuple(NODES): rec(fixture_text, "iscsiadm-discovery-tgt"),
        tuple(iscsi.iscsiadm_discovery_argv("10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-discovery"),
        update("node.startup", "automatic"): rec(fixture_text, "iscsiadm-set-authmethod"),
        update("node.session.auth.authmethod", "CHAP"): rec(fixture_text, "iscsiadm-set-authmethod"),
        update("node.session.auth.username", "hostb"): rec(fixture_text, "iscsiadm-set-user"),
        update("node.session.auth.password", SECRET): rec(fixture_text, "iscsiadm-set-pass"),
        tuple(iscsi.iscsiadm_login_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-login"),
    }


def test_first_login_discovers_sets_chap_logs_in_and_returns_the_by_path(run, fixture_text):
    result, failed, calls = run(dict(ARGS, owner="hosta", vg="xenvg", lv="rec0"), first_login(fixture_text))
    assert not failed, result
    assert result["path"] == BY_PATH and result["device"] == "/dev/sda"
    assert result["actions"][:6] == ["discover 10.77.0.11:3260", "set node.startup=automatic",
                                     "set node.session.auth.authmethod=CHAP", "set node.session.auth.username=hostb",
                                     "set node.session.auth.password=********", "log in"]
    assert calls.index(list(update("node.session.auth.password", SECRET))) < \
        calls.index(iscsi.iscsiadm_login_argv(HOSTA, "10.77.0.11", 3260))
    assert result["session"]["sid"] == 3 and result["diff"]["before"] == {"state": "absent"}
    link = run.root / "dev/sanless/hosta/xenvg/rec0"
    assert os.readlink(str(link)) == BY_PATH and result["shared_path"] == "/dev/sanless/hosta/xenvg/rec0"
    rule = (run.root / "etc/udev/rules.d/61-sanless-hosta-xenvg-rec0.rules").read_text()
    assert 'ENV{ID_PATH}=="%s"' % os.path.basename(BY_PATH) in rule and 'SYMLINK+="sanless/hosta/xenvg/rec0"' in rule


def test_logged_in_with_the_recorded_record_is_no_change(run, fixture_text):
    outputs = {tuple(SESSIONS): rec(fixture_text, "iscsiadm-session-P3"),
               tuple(NODES): rec(fixture_text, "iscsiadm-node"),
               tuple(iscsi.iscsiadm_node_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-node-show")}
    # the recorded node record has node.startup=manual
    result, failed, calls = run(dict(ARGS, startup="manual"), outputs)
    assert not failed, result
    assert not result["changed"] and result["path"] == BY_PATH
    assert result["diff"]["before"] == {"state": "logged in", "startup": "manual", "chap_user": "hostb"}
    # automatic start-up is one update on the same record, no login
    outputs[update("node.startup", "automatic")] = rec(fixture_text, "iscsiadm-set-authmethod")
    result, failed, calls = run(ARGS, outputs)
    assert not failed and result["actions"] == ["set node.startup=automatic"]


def test_wrong_secret_is_an_authorization_error_without_the_secret(run, fixture_text):
    outputs = first_login(fixture_text)
    outputs[tuple(SESSIONS)] = rec(fixture_text, "iscsiadm-session-none")
    outputs[tuple(iscsi.iscsiadm_login_argv(HOSTA, "10.77.0.11", 3260))] = rec(fixture_text, "iscsiadm-login-badchap")
    result, failed, calls = run(ARGS, outputs)
    assert failed and result["rc"] == 24
    assert "CHAP authorization failed" in result["msg"]
    assert list(update("node.session.auth.password", "********")) in result["cmds"]


def test_check_mode_changes_nothing(run, fixture_text):
    outputs = first_login(fixture_text)
    result, failed, calls = run(ARGS, outputs, check_mode=True)
    assert not failed, result
    assert result["changed"] and calls == [SESSIONS, NODES]
    assert result["path"] is None and len(result["would_run"]) == 6
    assert SECRET not in json.dumps(result["would_run"])


def test_a_portal_without_the_target_is_refused(run, fixture_text):
    outputs = first_login(fixture_text)
    outputs[tuple(iscsi.iscsiadm_discovery_argv("10.77.0.11", 3260))] = rec(fixture_text, "iscsiadm-discovery-tgt")
    result, failed, calls = run(ARGS, outputs)
    assert failed and "does not offer target %s (it offers: %s)" % (HOSTA, HOSTB) in result["msg"]
    assert calls[-1] == iscsi.iscsiadm_discovery_argv("10.77.0.11", 3260)


def test_tgt_target_gives_lun_1(run, fixture_text):
    by_path = iscsi.by_path("10.77.0.12", 3260, HOSTB, 1)
    outputs = {tuple(SESSIONS): rec(fixture_text, "iscsiadm-session-P3-tgt"),
               tuple(NODES): rec(fixture_text, "iscsiadm-discovery-tgt"),
               tuple(iscsi.iscsiadm_node_argv(HOSTB, "10.77.0.12", 3260)): rec(fixture_text, "iscsiadm-node-show")}
    result, failed, calls = run({"target": HOSTB, "portal": "10.77.0.12", "startup": "manual"}, outputs,
                                present=(by_path,))
    assert not failed, result
    assert result["path"] == by_path and not result["changed"]


def test_device_that_never_appears_times_out(run, fixture_text):
    outputs = {tuple(SESSIONS): rec(fixture_text, "iscsiadm-session-P3"),
               tuple(NODES): rec(fixture_text, "iscsiadm-node"),
               tuple(iscsi.iscsiadm_node_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-node-show")}
    result, failed, calls = run(dict(ARGS, startup="manual", timeout=0), outputs, present=())
    assert failed and "%s did not appear within 0 s" % BY_PATH in result["msg"]


FLUSH_SDA = iscsi.blockdev_flushbufs_argv("sda")


def logged_in_outputs(fixture_text, sessions=None):
    """hostb logged in to hosta's target with LUN 0 as sda (the recordings), until the logout and delete."""
    return {tuple(SESSIONS): sessions or rec(fixture_text, "iscsiadm-session-P3"),
            tuple(NODES): rec(fixture_text, "iscsiadm-node"),
            tuple(iscsi.iscsiadm_node_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-node-show"),
            tuple(FLUSH_SDA): (0, "", ""),  # blockdev --flushbufs prints nothing
            tuple(iscsi.iscsiadm_logout_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-logout"),
            tuple(iscsi.iscsiadm_delete_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-node-delete")}


def test_absent_takes_the_disks_off_logs_out_and_deletes_then_is_no_change(run, fixture_text):
    (run.root / "sys/block/sda/device").mkdir(parents=True)
    args = {"target": HOSTA, "portal": "10.77.0.11", "state": "absent"}
    result, failed, calls = run(args, logged_in_outputs(fixture_text))
    assert not failed and result["actions"] == ["remove LUN 0 (sda)", "log out", "delete node record"]
    # flushed and deleted while the session is up, before the logout (the logout alone hung lab dom0s)
    assert (run.root / "sys/block/sda/device/delete").read_text() == "1"
    assert calls.index(FLUSH_SDA) < calls.index(iscsi.iscsiadm_logout_argv(HOSTA, "10.77.0.11", 3260))
    gone = {tuple(SESSIONS): rec(fixture_text, "iscsiadm-session-none"),
            tuple(NODES): rec(fixture_text, "iscsiadm-discovery-tgt")}
    result, failed, calls = run(args, gone)
    assert not failed and not result["changed"] and calls == [SESSIONS, NODES]


def test_absent_in_check_mode_deletes_no_disk(run, fixture_text):
    (run.root / "sys/block/sda/device").mkdir(parents=True)
    args = {"target": HOSTA, "portal": "10.77.0.11", "state": "absent"}
    result, failed, calls = run(args, logged_in_outputs(fixture_text), check_mode=True)
    assert not failed and result["changed"] and result["actions"][:2] == ["remove LUN 0 (sda)", "log out"]
    assert not (run.root / "sys/block/sda/device/delete").exists()
    assert FLUSH_SDA not in calls and iscsi.iscsiadm_logout_argv(HOSTA, "10.77.0.11", 3260) not in calls


def test_absent_of_a_session_that_lost_its_connection_logs_out_without_flushing(run, fixture_text):
    """The recorded session with its connection down, as open-iscsi names that state (NOT a recording): a flush
    would wait for the replacement timeout, so the logout goes first."""
    (run.root / "sys/block/sda/device").mkdir(parents=True)
    rc, out, err = rec(fixture_text, "iscsiadm-session-P3")
    assert "iSCSI Connection State: LOGGED IN" in out
    down = (rc, out.replace("iSCSI Connection State: LOGGED IN", "iSCSI Connection State: TRANSPORT WAIT"), err)
    args = {"target": HOSTA, "portal": "10.77.0.11", "state": "absent"}
    result, failed, calls = run(args, logged_in_outputs(fixture_text, down))
    assert not failed and result["actions"] == ["log out", "delete node record"]
    assert FLUSH_SDA not in calls and not (run.root / "sys/block/sda/device/delete").exists()


@pytest.mark.parametrize("change", [{"target": "iqn.2026-12.x;reboot"}, {"portal": "$(id)"}, {"chap_user": "a b"},
                                    {"owner": "host a", "vg": "xenvg", "lv": "d"},
                                    {"owner": "hosta", "vg": "xenvg", "lv": "d|x"}])
def test_bad_values_fail_before_any_command(run, change):
    result, failed, calls = run(dict(ARGS, **change), {})
    assert failed and calls == []


def two_luns(fixture_text):
    """hostb's recorded session to hosta's target (LUN 0 as sda) with a second LUN attached as sdb, as
    open-iscsi prints each further LUN: NOT a recording (the lab exported one LV per target)."""
    rec_ = rec(fixture_text, "iscsiadm-session-P3")
    lun0 = "\t\tscsi2 Channel 00 Id 0 Lun: 0\n\t\t\tAttached scsi disk sda\t\tState: running"
    assert lun0 in rec_[1]
    return (rec_[0], rec_[1].replace(lun0, lun0 + "\n" + lun0.replace("Lun: 0", "Lun: 1").replace("sda", "sdb")), rec_[2])


def known(fixture_text, sessions):
    return {tuple(SESSIONS): sessions, tuple(NODES): rec(fixture_text, "iscsiadm-node"),
            tuple(iscsi.iscsiadm_node_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-node-show")}


def test_a_lun_mapped_after_the_login_is_found_by_a_rescan(run, fixture_text):
    outputs = known(fixture_text, [rec(fixture_text, "iscsiadm-session-P3"), two_luns(fixture_text)])
    # iscsiadm --rescan: its output is not read
    outputs[tuple(iscsi.iscsiadm_rescan_argv(HOSTA, "10.77.0.11", 3260))] = (0, "", "")
    lun1 = iscsi.by_path("10.77.0.11", 3260, HOSTA, 1)
    result, failed, calls = run(dict(ARGS, startup="manual", lun=1, owner="hosta", vg="xenvg", lv="rec1"), outputs,
                                present=(lun1,))
    assert not failed, result
    assert result["actions"][0] == "rescan" and (result["path"], result["device"]) == (lun1, "/dev/sdb")
    assert os.readlink(str(run.root / "dev/sanless/hosta/xenvg/rec1")) == lun1


def test_absent_of_one_lun_keeps_the_session_for_the_others(run, fixture_text):
    (run.root / "sys/block/sda/device").mkdir(parents=True)
    iscsi.ensure_shared_path("hosta", "xenvg", "rec0", {"ENV{ID_PATH}": os.path.basename(BY_PATH)}, BY_PATH, False)
    args = {"target": HOSTA, "portal": "10.77.0.11", "state": "absent", "lun": 0, "owner": "hosta", "vg": "xenvg",
            "lv": "rec0"}
    outputs = known(fixture_text, two_luns(fixture_text))
    outputs[tuple(FLUSH_SDA)] = (0, "", "")
    result, failed, calls = run(args, outputs)
    assert not failed, result
    assert FLUSH_SDA in calls and result["actions"][0] == "remove LUN 0 (sda)" and result["diff"]["after"]["state"] == "logged in"
    assert (run.root / "sys/block/sda/device/delete").read_text() == "1"
    assert not os.path.lexists(str(run.root / "dev/sanless/hosta/xenvg/rec0"))
    assert iscsi.iscsiadm_logout_argv(HOSTA, "10.77.0.11", 3260) not in calls
    # the session's last LUN: log out and forget the target, as without lun
    outputs = known(fixture_text, rec(fixture_text, "iscsiadm-session-P3"))
    outputs[tuple(FLUSH_SDA)] = (0, "", "")
    outputs[tuple(iscsi.iscsiadm_logout_argv(HOSTA, "10.77.0.11", 3260))] = rec(fixture_text, "iscsiadm-logout")
    outputs[tuple(iscsi.iscsiadm_delete_argv(HOSTA, "10.77.0.11", 3260))] = rec(fixture_text, "iscsiadm-node-delete")
    result, failed, calls = run(args, outputs)
    assert not failed and result["actions"] == ["remove LUN 0 (sda)", "log out", "delete node record"]


# --------------------------------------------------------------------------- replacement timeout (mirrored legs)

REPLACEMENT = iscsi.REPLACEMENT_TIMEOUT


def recovery_tmo_file(root, sid):
    """The live session's sysfs recovery_tmo under root (the module writes it; it reads the value from -P 3)."""
    path = root / ("sys/class/iscsi_session/session%d/recovery_tmo" % sid)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_replacement_timeout_is_on_the_record_before_the_first_login(run, fixture_text):
    outputs = first_login(fixture_text)
    outputs[update(REPLACEMENT, "15")] = rec(fixture_text, "iscsiadm-set-authmethod")
    result, failed, calls = run(dict(ARGS, replacement_timeout=15), outputs)
    assert not failed, result
    assert "set %s=15" % REPLACEMENT in result["actions"]
    assert calls.index(list(update(REPLACEMENT, "15"))) < calls.index(iscsi.iscsiadm_login_argv(HOSTA, "10.77.0.11", 3260))
    # the session is made with it: nothing to set on a running one
    assert not any(action.startswith("set session") for action in result["actions"])
    assert not (run.root / "sys/class/iscsi_session").exists()
    assert result["diff"]["after"]["replacement_timeout"] == "15"


def test_a_running_session_gets_the_replacement_timeout_live(run, fixture_text):
    outputs = {tuple(SESSIONS): rec(fixture_text, "iscsiadm-session-P3"),
               tuple(NODES): rec(fixture_text, "iscsiadm-node"),
               tuple(iscsi.iscsiadm_node_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-node-show"),
               update(REPLACEMENT, "15"): rec(fixture_text, "iscsiadm-set-authmethod")}
    # the recorded session shows open-iscsi's default
    assert iscsi.parse_session_details(outputs[tuple(SESSIONS)][1])[0]["recovery_timeout"] == 120
    live = recovery_tmo_file(run.root, 3)
    result, failed, calls = run(dict(ARGS, startup="manual", replacement_timeout=15), outputs)
    assert not failed, result
    assert result["actions"] == ["set %s=15" % REPLACEMENT, "set session 3 recovery_tmo=15"]
    assert live.read_text() == "15\n"
    assert result["diff"]["before"]["replacement_timeout"] == "120"
    # check mode names both and writes nothing
    live.unlink()
    result, failed, calls = run(dict(ARGS, startup="manual", replacement_timeout=15), outputs, check_mode=True)
    assert not failed and result["changed"] and not live.exists()
    assert result["would_run"] == [list(update(REPLACEMENT, "15"))]


def test_a_mirrored_legs_session_as_the_raid1_provision_left_it_is_no_change(run, fixture_text):
    # hosta importing web07's leg from hostb's LIO target, recorded after provision.yml (disk_export_mirrored_legs)
    target = "iqn.2026-12.xen.sanless:hostb"
    outputs = {tuple(SESSIONS): rec(fixture_text, "iscsiadm-session-P3-raid1"),
               tuple(NODES): rec(fixture_text, "iscsiadm-node-raid1"),
               tuple(iscsi.iscsiadm_node_argv(target, "10.77.0.12", 3260)): rec(fixture_text, "iscsiadm-node-show-raid1")}
    session = iscsi.parse_session_details(outputs[tuple(SESSIONS)][1])[0]
    assert (session["sid"], session["recovery_timeout"]) == (1, 15)
    by_path = iscsi.by_path("10.77.0.12", 3260, target, 0)
    result, failed, calls = run({"target": target, "portal": "10.77.0.12", "lun": 0, "replacement_timeout": 15},
                                outputs, present=(by_path,))
    assert not failed, result
    assert result["changed"] is False and result["actions"] == [], result["actions"]


def test_replacement_timeout_out_of_range_fails_before_any_command(run, fixture_text):
    result, failed, calls = run(dict(ARGS, replacement_timeout=0), {})
    assert failed and calls == [] and "replacement_timeout 0 out of range" in result["msg"]


def test_open_iscsis_default_asked_on_a_default_session_is_no_change(run, fixture_text):
    outputs = {tuple(SESSIONS): rec(fixture_text, "iscsiadm-session-P3"),
               tuple(NODES): rec(fixture_text, "iscsiadm-node"),
               tuple(iscsi.iscsiadm_node_argv(HOSTA, "10.77.0.11", 3260)): rec(fixture_text, "iscsiadm-node-show")}
    result, failed, calls = run(dict(ARGS, startup="manual", replacement_timeout=iscsi.OPEN_ISCSI_REPLACEMENT_TIMEOUT),
                                outputs)
    assert not failed and result["changed"] is False and result["actions"] == []
