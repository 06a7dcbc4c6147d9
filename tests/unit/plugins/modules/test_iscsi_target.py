# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.iscsi_target run whole, its commands answered by the lab recordings of
targetcli 2.1.53 and tgt 1.0.85 (hosta exporting xenvg/rec0 to hostb, hostb xenvg/rec2 to hosta)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import iscsi
from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv
from ansible_collections.sanless.xen.plugins.modules import iscsi_target
from ansible_collections.sanless.xen.tests.unit.conftest import lio_configfs_tree, lvs_report_with, recorded_run

TC = ("targetcli", "2.1.53")
TGT = ("tgt", "1.0.85")
SECRET = "labsecret12345"  # the lab's throwaway secret, in the recordings
HOSTA = "iqn.2026-12.xen.sanless:hosta"
HOSTB = "iqn.2026-12.xen.sanless:hostb"
HOSTB_INIT = "iqn.2026-11.lab.sanless:hostb:54df6118618"
HOSTA_INIT = "iqn.2026-11.lab.sanless:hosta:a21defa1caf5"


LIO_ARGS = {"vg": "xenvg", "lv": "rec0", "host": "hosta", "initiators": [HOSTB_INIT], "chap_user": "hostb",
            "chap_password": SECRET, "portal": "10.77.0.11"}


@pytest.fixture
def run(module_main, monkeypatch, tmp_path, fixture_text):
    saved = tmp_path / "saveconfig.json"
    conf_dir = tmp_path / "tgt"
    monkeypatch.setattr(iscsi, "LIO_SAVECONFIG", str(saved))
    monkeypatch.setattr(iscsi, "TGT_CONF_DIR", str(conf_dir))
    monkeypatch.setattr(iscsi, "ROOT", str(tmp_path))
    monkeypatch.setattr(conv, "LOCK_DIR", str(tmp_path / "run"))
    # Debian's /usr/bin/targetcli names its interpreter on its #! line: the batch runs under it
    targetcli = tmp_path / "targetcli"
    targetcli.write_text("#!/usr/bin/python3\n")
    monkeypatch.setattr(iscsi, "TARGETCLI", str(targetcli))

    def go(args, outputs, saveconfig=None, check_mode=False, diff=True, lvs=("rec0",), kernel=None):
        if saveconfig is not None:
            saved.write_text(saveconfig)
        outputs = dict(outputs)
        outputs.setdefault(tuple(lvs_argv(["xenvg"])), lvs_report_with(fixture_text, *lvs))
        # LIO's state is read from the kernel's configfs tree too: unless a test says otherwise (kernel=), it has
        # what a saved file (tc-saveconfig-json) describes (lio-configfs, recorded with the same state), else nothing
        kernel = kernel or ("lio-configfs" if saved.exists() else "lio-configfs-empty")
        monkeypatch.setattr(iscsi, "LIO_CONFIGFS", str(lio_configfs_tree(tmp_path / ("sys-" + kernel), kernel)))
        result, failed, calls = module_main(iscsi_target.main, args, outputs, check_mode, diff)
        assert SECRET not in json.dumps(result), "the CHAP secret leaked into the result"
        return result, failed, calls
    go.conf_dir = conf_dir
    go.root = tmp_path
    go.batch = lambda commands: iscsi.lio_batch_argv(["/usr/bin/python3"], str(targetcli), commands)
    return go


def lines(batch_argv):
    """The targetcli command lines of a batch (after the interpreter, -c, the script and targetcli's path)."""
    return batch_argv[batch_argv.index("-c") + 3:]


def line(argv):
    return " ".join(argv[1:])


def linked(host, lv):
    """The owner's shared path as a first run leaves it."""
    assert iscsi.ensure_shared_path(host, "xenvg", lv, {"ENV{DM_VG_NAME}": "xenvg", "ENV{DM_LV_NAME}": lv},
                                    "/dev/xenvg/%s" % lv, False)


# A fresh export's commands, in the order the module runs them: the wildcard portal goes before the storage address is
# bound, CHAP is set after the ACL exists, the configuration saved last.
LIO_FRESH = [iscsi.lio_backstore_create_argv("xenvg-rec0", "/dev/xenvg/rec0"), iscsi.lio_target_create_argv(HOSTA),
             iscsi.lio_lun_create_argv(HOSTA, "xenvg-rec0", 0), iscsi.lio_portal_delete_argv(HOSTA, "0.0.0.0", 3260),
             iscsi.lio_portal_create_argv(HOSTA, "10.77.0.11", 3260), iscsi.lio_tpg_auth_argv(HOSTA, True),
             iscsi.lio_acl_create_argv(HOSTA, HOSTB_INIT), iscsi.lio_mapped_lun_create_argv(HOSTA, HOSTB_INIT, 0),
             iscsi.lio_acl_auth_argv(HOSTA, HOSTB_INIT, "hostb", SECRET), iscsi.lio_saveconfig_argv()]


def lio_fresh_outputs(run, fixture_text, recording="tc-batch-fresh"):
    """The fresh export's one batch, answered by the lab's run of the same commands."""
    return {tuple(run.batch(LIO_FRESH)): recorded_run(fixture_text, TC, recording)}


def test_lio_fresh_host_exports_everything_and_saves(run, fixture_text):
    result, failed, calls = run(LIO_ARGS, lio_fresh_outputs(run, fixture_text))
    assert not failed, result
    assert result["changed"]
    # one targetcli process for the whole export, after lvs (the only other command)
    assert calls == [lvs_argv(["xenvg"]), run.batch(LIO_FRESH)]
    assert calls[1][:2] == ["/usr/bin/python3", "-c"] and lines(calls[1])[-1] == "saveconfig"
    assert result["export"]["lun"] == 0 and result["export"]["backstore"] == "xenvg-rec0"
    assert result["export"]["portals"] == ["10.77.0.11:3260"]
    assert result["export"]["shared_path"] == "/dev/sanless/hosta/xenvg/rec0"
    assert "/iscsi/%s/tpg1/acls/%s set auth userid=hostb password=********" % (HOSTA, HOSTB_INIT) in result["cmds"][1]
    assert result["diff"]["before"] == {"state": "absent"}
    assert os.readlink(str(run.root / "dev/sanless/hosta/xenvg/rec0")) == "/dev/xenvg/rec0"
    rule = (run.root / "etc/udev/rules.d/61-sanless-hosta-xenvg-rec0.rules").read_text()
    assert 'ENV{DM_LV_NAME}=="rec0", ENV{DM_VG_NAME}=="xenvg"' in rule


def test_lio_second_run_from_recorded_saveconfig_changes_nothing(run, fixture_text):
    linked("hosta", "rec0")
    result, failed, calls = run(LIO_ARGS, {}, saveconfig=fixture_text(*TC + ("tc-saveconfig-json.out",)))
    assert not failed, result
    assert not result["changed"] and result["actions"] == []
    # the kernel agrees with the file: the file's state is used (its CHAP user and secret), nothing saved; the kernel's
    # state was read without running targetcli
    assert calls == [lvs_argv(["xenvg"])]
    assert result["diff"]["before"]["chap_user"] == "hostb"
    assert result["diff"]["before"] == result["diff"]["after"]
    assert result["export"]["initiators"] == [HOSTB_INIT]


def test_lio_stale_saveconfig_is_not_trusted_over_the_kernel(run, fixture_text):
    """The lab's failed boot: saveconfig.json names the export (tc-saveconfig-json) but the restore left the
    kernel without it (lio-configfs-empty). The export is made again, CHAP set again (its secret in the file
    says nothing of the kernel) and the configuration saved; then, the kernel as recorded after that export
    (lio-configfs) agreeing with the file, the next run changes nothing."""
    stale = fixture_text(*TC + ("tc-saveconfig-json.out",))
    result, failed, calls = run(LIO_ARGS, lio_fresh_outputs(run, fixture_text), saveconfig=stale,
                                kernel="lio-configfs-empty")
    assert not failed, result
    assert result["changed"] and result["diff"]["before"] == {"state": "absent"}
    assert result["actions"][:3] == ["create backstore xenvg-rec0", "create target %s" % HOSTA, "create LUN 0"]
    assert "set CHAP of %s" % HOSTB_INIT in result["actions"]
    assert calls[-1] == run.batch(LIO_FRESH)
    assert result["export"]["lun"] == 0 and result["export"]["initiators"] == [HOSTB_INIT]
    result, failed, calls = run(LIO_ARGS, {})
    assert not failed, result
    assert not result["changed"] and calls == [lvs_argv(["xenvg"])]


def test_lio_stale_saveconfig_in_check_mode_reports_the_export_and_the_save(run, fixture_text):
    stale = fixture_text(*TC + ("tc-saveconfig-json.out",))
    result, failed, calls = run(LIO_ARGS, {}, check_mode=True, saveconfig=stale, kernel="lio-configfs-empty")
    assert not failed, result
    assert result["changed"] and calls == [lvs_argv(["xenvg"])]
    assert result["would_run"] == [iscsi.scrub(run.batch(LIO_FRESH), [SECRET])]
    assert line(iscsi.lio_target_create_argv(HOSTA)) in result["would_run"][0] and result["would_run"][0][-1] == "saveconfig"


def test_lio_new_secret_is_set_and_saved_without_leaking(run, fixture_text):
    new = "anothersecret99"
    outputs = {tuple(run.batch([iscsi.lio_acl_auth_argv(HOSTA, HOSTB_INIT, "hostb", new), iscsi.lio_saveconfig_argv()])):
               recorded_run(fixture_text, TC, "tc-batch-chap-save")}
    result, failed, calls = run(dict(LIO_ARGS, chap_password=new), outputs,
                                saveconfig=fixture_text(*TC + ("tc-saveconfig-json.out",)))
    assert not failed, result
    assert result["actions"][:2] == ["set CHAP of %s" % HOSTB_INIT, "save config"]
    assert new not in json.dumps(result)


def test_lio_check_mode_runs_nothing_that_changes(run, fixture_text):
    result, failed, calls = run(LIO_ARGS, {}, check_mode=True)
    assert not failed, result
    assert result["changed"] and calls == [lvs_argv(["xenvg"])]
    assert len(result["would_run"]) == 1 and len(lines(result["would_run"][0])) == 10 and result["actions"][-2:] == [
        "write %s/etc/udev/rules.d/61-sanless-hosta-xenvg-rec0.rules" % run.root,
        "link %s/dev/sanless/hosta/xenvg/rec0 -> /dev/xenvg/rec0" % run.root]
    assert SECRET not in json.dumps(result["would_run"])


def test_lio_failure_after_the_chap_command_is_reported_masked(run, fixture_text):
    # the lab's fresh export with /etc/rtslib-fb-target read-only: every command ran but saveconfig, which failed
    rc, out, err = recorded_run(fixture_text, TC, "tc-batch-save-fails")
    assert rc == 1 and SECRET in out  # targetcli echoes the secret it was given
    result, failed, calls = run(LIO_ARGS, lio_fresh_outputs(run, fixture_text, "tc-batch-save-fails"))
    assert failed and result["rc"] == 1
    assert result["msg"].startswith("save config: `targetcli saveconfig` failed: "), result["msg"]
    assert "password=********" in " ".join(result["cmd"]) and "'********'" in result["stdout"]
    assert SECRET not in json.dumps(result)


def test_lio_absent_refused_while_logged_in_then_forced(run, fixture_text):
    saved = fixture_text(*TC + ("tc-saveconfig-json.out",))
    sessions = {tuple(iscsi.lio_sessions_argv()): recorded_run(fixture_text, TC, "tc-sessions")}
    result, failed, calls = run({"vg": "xenvg", "lv": "rec0", "host": "hosta", "state": "absent"}, sessions,
                                saveconfig=saved)
    assert failed and HOSTB_INIT in result["msg"] and "force=true" in result["msg"]
    assert calls == [iscsi.lio_sessions_argv()]
    removal = [iscsi.lio_target_delete_argv(HOSTA), iscsi.lio_backstore_delete_argv("xenvg-rec0"),
               iscsi.lio_saveconfig_argv()]
    sessions[tuple(run.batch(removal))] = recorded_run(fixture_text, TC, "tc-batch-absent")
    result, failed, calls = run({"vg": "xenvg", "lv": "rec0", "host": "hosta", "state": "absent", "force": True},
                                sessions)
    assert not failed, result
    assert calls[1:] == [run.batch(removal)]
    assert result["export"] is None and result["sessions"] == [HOSTB_INIT]


def test_lio_absent_when_not_exported_is_no_change(run, fixture_text):
    saved = fixture_text(*TC + ("tc-saveconfig-json.out",))
    result, failed, calls = run({"vg": "xenvg", "lv": "rec9", "host": "hosta", "state": "absent"}, {}, saveconfig=saved)
    assert not failed and not result["changed"] and calls == []


def test_lio_occupied_lun_refused_before_any_change(run, fixture_text):
    result, failed, calls = run(dict(LIO_ARGS, lv="rec9", lun=0), {}, lvs=("rec0", "rec9"),
                                saveconfig=fixture_text(*TC + ("tc-saveconfig-json.out",)))
    assert failed and "LUN 0 of %s is occupied by backstore xenvg-rec0" % HOSTA in result["msg"]
    assert calls == [lvs_argv(["xenvg"])]


def test_lio_next_export_takes_the_next_lun_and_leaves_the_portal(run, fixture_text):
    result, failed, calls = run(dict(LIO_ARGS, lv="rec9"), {}, lvs=("rec0", "rec9"), check_mode=True,
                                saveconfig=fixture_text(*TC + ("tc-saveconfig-json.out",)))
    assert not failed, result
    assert result["export"]["lun"] == 1 and result["export"]["backstore"] == "xenvg-rec9"
    assert result["actions"][:4] == ["create backstore xenvg-rec9", "create LUN 1", "map LUN 1 to %s" % HOSTB_INIT,
                                     "save config"]


def test_missing_lv_fails_before_any_change(run, fixture_text):
    result, failed, calls = run(dict(LIO_ARGS, lv="nope"), {})
    assert failed and result["msg"] == "LV xenvg/nope does not exist" and calls == [lvs_argv(["xenvg"])]


@pytest.mark.parametrize("change", [
    {"lv": "rec0;reboot"}, {"vg": "xen vg"}, {"initiators": ["iqn.2026-11.lab:$(id)"]}, {"portal": "10.77.0.11 -x"},
    {"target": "iqn.x`id`"}, {"host": "host/a"}, {"chap_user": "a b"}, {"chap_password": "short"},
])
def test_bad_values_fail_before_any_command(run, change):
    result, failed, calls = run(dict(LIO_ARGS, **change), {})
    assert failed and calls == []
    assert SECRET not in result["msg"]


# --------------------------------------------------------------------------- tgt

TGT_ARGS = {"vg": "xenvg", "lv": "rec2", "host": "hostb", "backend": "tgt", "initiators": [HOSTA_INIT],
            "chap_user": "hosta", "chap_password": SECRET}


def test_tgt_export_then_second_run_changes_nothing(run, fixture_text):
    linked("hostb", "rec2")
    first = {
        tuple(iscsi.tgt_show_argv()): recorded_run(fixture_text, TGT, "tgtadm-show-empty"),
        tuple(iscsi.tgt_accounts_argv()): recorded_run(fixture_text, TGT, "tgtadm-account-show"),
        tuple(iscsi.tgt_target_new_argv(1, HOSTB)): recorded_run(fixture_text, TGT, "tgtadm-new-target"),
        tuple(iscsi.tgt_lun_new_argv(1, 1, "/dev/xenvg/rec2")): recorded_run(fixture_text, TGT, "tgtadm-new-lun"),
        tuple(iscsi.tgt_bind_argv(1, HOSTA_INIT)): recorded_run(fixture_text, TGT, "tgtadm-bind"),
        tuple(iscsi.tgt_account_delete_argv("hosta")): recorded_run(fixture_text, TGT, "tgtadm-account-bind"),
        tuple(iscsi.tgt_account_new_argv("hosta", SECRET)): recorded_run(fixture_text, TGT, "tgtadm-account-new"),
        tuple(iscsi.tgt_account_bind_argv(1, "hosta")): recorded_run(fixture_text, TGT, "tgtadm-account-bind"),
    }
    result, failed, calls = run(TGT_ARGS, first, lvs=("rec2",))
    assert not failed, result
    # an account whose secret the module cannot know is made anew
    assert calls.index(iscsi.tgt_account_delete_argv("hosta")) < calls.index(iscsi.tgt_account_new_argv("hosta", SECRET))
    assert result["export"]["lun"] == 1 and result["actions"][-1].startswith("write ")
    conf = run.conf_dir / "sanless-hostb.conf"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    assert iscsi.parse_tgt_conf(conf.read_text()) == {"iqn": HOSTB, "luns": {1: "/dev/xenvg/rec2"},
                                                      "initiators": [HOSTA_INIT], "users": {"hosta": SECRET}}
    second = {tuple(iscsi.tgt_show_argv()): recorded_run(fixture_text, TGT, "tgtadm-show"),
              tuple(iscsi.tgt_accounts_argv()): recorded_run(fixture_text, TGT, "tgtadm-account-show")}
    result, failed, calls = run(TGT_ARGS, second, lvs=("rec2",))
    assert not failed, result
    assert not result["changed"] and len(calls) == 3
    assert result["sessions"] == [HOSTA_INIT]


def test_tgt_absent_refused_while_logged_in_then_forced(run, fixture_text):
    outputs = {tuple(iscsi.tgt_show_argv()): recorded_run(fixture_text, TGT, "tgtadm-show"),
               tuple(iscsi.tgt_accounts_argv()): recorded_run(fixture_text, TGT, "tgtadm-account-show")}
    args = {"vg": "xenvg", "lv": "rec2", "host": "hostb", "backend": "tgt", "state": "absent"}
    result, failed, calls = run(args, outputs)
    assert failed and "force=true" in result["msg"] and HOSTA_INIT in result["msg"]
    forced = ["tgtadm", "--lld", "iscsi", "--mode", "target", "--op", "delete", "--force", "--tid", "1"]
    outputs[tuple(forced)] = recorded_run(fixture_text, TGT, "tgtadm-delete")
    result, failed, calls = run(dict(args, force=True), outputs)
    assert not failed and calls[-1] == forced


def test_tgt_export_after_a_restart_of_tgt_is_removed(run, fixture_text):
    """Recorded on hosta after systemctl restart tgt (tgt-admin re-created the target from its conf and bound
    the address ACL ALL): the export's removal deletes the target; ALL is never taken for an initiator (the
    lab's removal once failed on it: "invalid initiator IQN 'ALL'")."""
    hostb_init = "iqn.2026-11.lab.sanless:hostb:972c5abaa43e"
    outputs = {tuple(iscsi.tgt_show_argv()): recorded_run(fixture_text, TGT, "tgtadm-show-after-restart"),
               tuple(iscsi.tgt_accounts_argv()): recorded_run(fixture_text, TGT, "tgtadm-account-show"),
               tuple(iscsi.tgt_target_delete_argv(1)): recorded_run(fixture_text, TGT, "tgtadm-delete")}
    args = {"vg": "xenvg", "lv": "web05-disk", "host": "hosta", "backend": "tgt", "initiators": [hostb_init]}
    result, failed, calls = run(dict(args, state="absent"), outputs, lvs=("web05-disk",))
    assert not failed, result
    assert result["changed"] and calls[-1] == iscsi.tgt_target_delete_argv(1)
    assert "ALL" not in json.dumps(result)


def test_tgt_refusal_of_the_daemon_is_reported(run, fixture_text):
    outputs = {tuple(iscsi.tgt_show_argv()): recorded_run(fixture_text, TGT, "tgtadm-show-empty"),
               tuple(iscsi.tgt_accounts_argv()): recorded_run(fixture_text, TGT, "tgtadm-account-show"),
               tuple(iscsi.tgt_target_new_argv(1, HOSTB)): recorded_run(fixture_text, TGT, "tgtadm-new-target-dup")}
    result, failed, calls = run(TGT_ARGS, outputs, lvs=("rec2",))
    assert failed and result["rc"] == 22 and "this target already exists" in result["msg"]
    assert not (run.conf_dir / "sanless-hostb.conf").exists()


def test_lio_refusal_of_targetcli_is_reported_with_its_words(run, fixture_text):
    # lvs lists the LV but targetcli cannot open it (an inactive LV): targetcli's own error, nothing after it
    # (the lab's batch named /dev/xenvg/nope, an LV that is not there)
    result, failed, calls = run(LIO_ARGS, lio_fresh_outputs(run, fixture_text, "tc-batch-create-bs-missing"))
    assert failed and result["rc"] == 1
    assert result["msg"].startswith("create backstore xenvg-rec0: `targetcli /backstores/block create name=xenvg-rec0 ")
    assert "Could not open /dev/xenvg/nope" in result["msg"]
    assert calls[-1] == run.batch(LIO_FRESH)


def test_a_change_waits_for_the_host_lock_and_fails_before_any_change_when_held(run, fixture_text, monkeypatch, lock_clock):
    import fcntl

    # another run (an export change, a migration claiming DRBD minors) holds the dom0's host lock
    (run.root / "run").mkdir()
    holder = os.open(str(run.root / "run" / "host.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    monkeypatch.setattr(conv, "HOST_LOCK_TIMEOUT_S", 1)
    try:
        result, failed, calls = run(LIO_ARGS, lio_fresh_outputs(run, fixture_text))
        assert failed and result["msg"].startswith("the host lock: ") and calls == []
        assert sum(lock_clock.sleeps) >= 1  # it waited the timeout out (on lock_clock)
        # check mode changes nothing and does not wait for it
        polls = len(lock_clock.sleeps)
        result, failed, calls = run(LIO_ARGS, {}, check_mode=True)
        assert not failed and result["changed"] and result["would_run"] and len(lock_clock.sleeps) == polls
    finally:
        os.close(holder)
    result, failed, calls = run(LIO_ARGS, lio_fresh_outputs(run, fixture_text))
    assert not failed and calls[-1] == run.batch(LIO_FRESH)


def test_lio_batch_that_cannot_start_is_reported(run, fixture_text):
    # no targetcli-fb on the dom0: nothing runs, the module says what is missing
    os.unlink(iscsi.TARGETCLI)
    result, failed, calls = run(LIO_ARGS, {})
    assert failed and "is targetcli-fb installed?" in result["msg"] and calls == [lvs_argv(["xenvg"])]


def test_tgt_refusing_the_backing_store_is_reported(run, fixture_text):
    # lvs lists the LV but tgtd cannot open it: tgtadm's own (terse) words, rc 22, and no config file
    outputs = {tuple(iscsi.tgt_show_argv()): recorded_run(fixture_text, TGT, "tgtadm-show-empty"),
               tuple(iscsi.tgt_accounts_argv()): recorded_run(fixture_text, TGT, "tgtadm-account-show"),
               tuple(iscsi.tgt_target_new_argv(1, HOSTB)): recorded_run(fixture_text, TGT, "tgtadm-new-target"),
               tuple(iscsi.tgt_lun_new_argv(1, 1, "/dev/xenvg/rec2")): recorded_run(fixture_text, TGT, "tgtadm-new-lun-missing")}
    result, failed, calls = run(TGT_ARGS, outputs, lvs=("rec2",))
    assert failed and result["rc"] == 22 and result["msg"].startswith("create LUN 1: ")
    assert "invalid request" in result["msg"] and not (run.conf_dir / "sanless-hostb.conf").exists()


def test_lio_configured_but_never_saved_is_saved(run, fixture_text):
    # no saveconfig.json: the state comes from the kernel's recorded configfs tree, which holds no secret to
    # compare with, so CHAP is set again, and the configuration is saved for the next boot
    linked("hosta", "rec0")
    chap_save = [iscsi.lio_acl_auth_argv(HOSTA, HOSTB_INIT, "hostb", SECRET), iscsi.lio_saveconfig_argv()]
    outputs = {tuple(run.batch(chap_save)): recorded_run(fixture_text, TC, "tc-batch-chap-save"),
               tuple(run.batch([iscsi.lio_saveconfig_argv()])): recorded_run(fixture_text, TC, "tc-batch-save")}
    result, failed, calls = run(LIO_ARGS, outputs, kernel="lio-configfs")
    assert not failed, result
    assert result["actions"] == ["set CHAP of %s" % HOSTB_INIT, "save config"]
    assert calls[1] == run.batch(chap_save)
    result, failed, calls = run(dict(LIO_ARGS, chap_user=None, chap_password=None), outputs, kernel="lio-configfs")
    assert not failed and result["actions"] == ["save config"]
