# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.md_mirror run whole, its commands and /proc/mdstat answered by the lab recordings of an md RAID1
(mdadm 4.2: fixtures/mdadm/4.2; the hot replace, blank add and refused re-add from a second array, see its SOURCE)."""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import md
from ansible_collections.sanless.xen.plugins.modules import md_mirror

RECORDED = ("mdadm", "4.2")
ARRAY = "/dev/md90"
A, B, C = "/dev/xenvg/fxmd-a", "/dev/xenvg/fxmd-b", "/dev/xenvg/fxmd-c"
DM = {A: "/dev/dm-0", B: "/dev/dm-1", C: "/dev/dm-2"}
DETAIL = md.detail_argv(ARRAY)


def command(fixture_text, *names):
    """{argv: (rc, stdout, stderr)} of recorded commands, by name."""
    out = {}
    for name in names:
        data = json.loads(fixture_text(*RECORDED + (name + ".json",)))
        out[tuple(data["argv"])] = (data["rc"], data["stdout"], data["stderr"])
    return out


@pytest.fixture
def mirror(module_main, monkeypatch, fixture_text):
    """go(args, states, commands): md_mirror with --detail and /proc/mdstat answering the states in turn (one
    reading each; the last repeats), by name ('clean', 'replacing')."""
    monkeypatch.setattr(md, "resolve_device", lambda path: DM.get(path, path))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)

    def go(args, states, commands=None, check_mode=False, mdstats=None):
        details = [(0, fixture_text(*RECORDED + ("detail-%s.txt" % name,)), "") for name in states]
        texts = [fixture_text(*RECORDED + ("mdstat-%s.txt" % name,)) for name in mdstats or states]
        monkeypatch.setattr(md, "read_text", lambda path: texts.pop(0) if len(texts) > 1 else texts[0])
        outputs = dict(commands or {})
        # "detail": --detail answers of a test's own (an array that does not exist yet)
        outputs[tuple(DETAIL)] = outputs.pop("detail", None) or details
        return module_main(md_mirror.main, dict({"array": ARRAY}, **args), outputs, check_mode, True)
    return go


def manage(calls):
    """The commands that changed the array."""
    return [c for c in calls if c[:2] != ["mdadm", "--detail"] and c[:2] != ["mdadm", "--examine"]]


def test_read_only_reports_the_array(mirror):
    result, failed, calls = mirror({}, ["clean"])
    assert not failed and not result["changed"] and calls == [DETAIL]
    assert result["array"]["state"] == "clean" and result["array"]["map"] == "UU" and result["array"]["bitmap"]
    assert "leg" not in result and result["diff"]["before"] == result["diff"]["after"]
    result, failed, calls = mirror({}, ["recovery"])
    assert result["array"]["state"] == "recovering" and result["array"]["sync"]["percent"] == 18.1


def test_re_add_after_the_leg_came_back_then_wait_for_the_bitmap_resync(mirror, fixture_text):
    commands = dict(command(fixture_text, "mdadm-re-add"))
    commands[tuple(md.examine_argv(B))] = (0, fixture_text(*RECORDED + ("examine-leg.txt",)), "")
    result, failed, calls = mirror({"leg": B, "wait": True}, ["degraded", "recovery", "recovery", "clean"],
                                   commands, mdstats=["degraded", "recovery", "recovery", "clean-after-re-add"])
    assert not failed, result
    assert result["changed"] and result["actions"] == ["re-add %s" % B]
    assert manage(calls) == [md.manage_argv(ARRAY, "--re-add", B)]
    assert result["leg"] == "in_sync" and result["array"]["state"] == "clean"
    assert result["progress"] == [{"action": "recovery", "percent": 18.1}] * 2
    assert result["diff"]["before"] == {"legs": {"/dev/dm-0": "in_sync"}}
    assert result["diff"]["after"] == {"legs": {"/dev/dm-0": "in_sync", B: "in_sync"}}


def test_a_member_leg_is_no_change(mirror, fixture_text):
    # mdadm would refuse the re-add of a member (recorded: busy); the module does not ask
    for state in ("clean", "recovery", "resync"):
        result, failed, calls = mirror({"leg": B}, [state], command(fixture_text, "mdadm-re-add-member"))
        assert not failed and not result["changed"] and calls == [DETAIL], state
    result, failed, calls = mirror({"leg": B}, ["recovery"])
    assert result["leg"] == "rebuilding"


def test_a_faulty_leg_is_removed_then_re_added(mirror, fixture_text):
    commands = command(fixture_text, "mdadm-remove", "mdadm-re-add")
    commands[tuple(md.examine_argv(B))] = (0, fixture_text(*RECORDED + ("examine-leg.txt",)), "")
    result, failed, calls = mirror({"leg": B}, ["faulty", "recovery"], commands)
    assert not failed, result
    assert result["actions"] == ["remove faulty %s" % B, "re-add %s" % B]
    assert manage(calls) == [md.manage_argv(ARRAY, "--remove", B), md.manage_argv(ARRAY, "--re-add", B)]
    assert result["leg"] == "rebuilding" and result["diff"]["before"]["legs"][B] == "faulty"


def test_check_mode_runs_nothing_and_predicts(mirror, fixture_text):
    commands = {tuple(md.examine_argv(B)): (0, fixture_text(*RECORDED + ("examine-leg.txt",)), "")}
    result, failed, calls = mirror({"leg": B}, ["degraded"], commands, check_mode=True)
    assert not failed and result["changed"] and manage(calls) == []
    assert result["would_run"] == [md.manage_argv(ARRAY, "--re-add", B)]
    assert result["leg"] == "rebuilding" and result["diff"]["after"]["legs"][B] == "rebuilding"


def test_a_blank_leg_is_added_and_a_refused_re_add_falls_back_to_add(mirror, fixture_text):
    commands = command(fixture_text, "examine-blank", "mdadm-add")
    result, failed, calls = mirror({"leg": B}, ["degraded", "recovery"], commands)
    assert not failed and result["actions"] == ["add %s" % B] and manage(calls) == [md.manage_argv(ARRAY, "--add", B)]
    commands = command(fixture_text, "mdadm-re-add-refused", "mdadm-add")
    commands[tuple(md.examine_argv(B))] = (0, fixture_text(*RECORDED + ("examine-leg.txt",)), "")
    result, failed, calls = mirror({"leg": B}, ["degraded", "recovery"], commands)
    assert not failed and result["actions"][0] == "re-add %s" % B and result["actions"][-1] == "add %s" % B
    assert "is not possible" in result["actions"][1]
    # method=re_add: no full copy behind the operator's back, mdadm's answer in the failure
    result, failed, calls = mirror({"leg": B, "method": "re_add"}, ["degraded"], commands)
    assert failed and result["rc"] == 1 and result["cmd"] == md.manage_argv(ARRAY, "--re-add", B)
    assert "is not possible" in result["stderr"] and result["stdout"] == ""
    result, failed, calls = mirror({"leg": B, "method": "re_add"}, ["degraded"], command(fixture_text, "examine-blank"))
    assert failed and "cannot be re-added" in result["msg"] and manage(calls) == []


def test_a_leg_of_another_array_is_refused(mirror, fixture_text):
    foreign = fixture_text(*RECORDED + ("examine-leg.txt",)).replace("3bcf7815:a5712de0", "0badc0de:a5712de0")
    result, failed, calls = mirror({"leg": B}, ["degraded"], {tuple(md.examine_argv(B)): (0, foreign, "")})
    assert failed and "holds the md superblock of another array" in result["msg"] and manage(calls) == []


def test_absent_fails_and_removes_an_in_sync_leg_of_a_clean_mirror(mirror, fixture_text):
    commands = command(fixture_text, "mdadm-fail", "mdadm-remove")
    result, failed, calls = mirror({"leg": B, "state": "absent"}, ["clean", "clean", "degraded"], commands)
    assert not failed, result
    assert manage(calls) == [md.manage_argv(ARRAY, "--fail", B), md.manage_argv(ARRAY, "--remove", B)]
    assert result["leg"] == "absent" and result["array"]["state"] == "degraded"
    # again: no change
    result, failed, calls = mirror({"leg": B, "state": "absent"}, ["degraded"], commands)
    assert not failed and not result["changed"] and manage(calls) == []


def test_the_last_in_sync_leg_is_never_removed(mirror, fixture_text):
    commands = command(fixture_text, "mdadm-fail", "mdadm-remove")
    for states in (["degraded"], ["faulty"], ["recovery"]):
        result, failed, calls = mirror({"leg": A, "state": "absent"}, states, commands)
        assert failed and manage(calls) == [], states
        assert result["msg"] == ("refusing to remove %s from %s: %s is the last in-sync leg of /dev/md90: dropping it "
                                 "would lose the array" % (A, ARRAY, A))
    # both legs say active sync, but the initial resync runs
    result, failed, calls = mirror({"leg": B, "state": "absent"}, ["resync"], commands)
    assert failed and "runs a resync" in result["msg"] and manage(calls) == []
    # --detail says [UU] but /proc/mdstat, read in the same step, does not: refused
    result, failed, calls = mirror({"leg": B, "state": "absent"}, ["clean"], commands, mdstats=["clean", "degraded"])
    assert failed and "not known to be in sync" in result["msg"] and manage(calls) == []
    # the faulty leg itself goes (no --fail: md failed it)
    result, failed, calls = mirror({"leg": B, "state": "absent"}, ["faulty", "faulty", "degraded"], commands)
    assert not failed and manage(calls) == [md.manage_argv(ARRAY, "--remove", B)]


def test_hot_replace_keeps_the_old_leg_until_the_new_is_in_sync(mirror, fixture_text):
    commands = command(fixture_text, "examine-blank-c", "mdadm-add-c", "mdadm-replace",
                       "mdadm-remove")
    states = ["clean"] + ["replacing", "replacing", "replaced", "replaced", "after-replace"]
    mdstats = ["clean"] + ["replacing", "replacing", "replaced", "replaced", "replaced"]
    result, failed, calls = mirror({"leg": B, "state": "replaced", "replacement": C, "wait": True}, states, commands,
                                   mdstats=mdstats)
    assert not failed, result
    assert manage(calls) == [md.manage_argv(ARRAY, "--add", C), md.replace_argv(ARRAY, B, C),
                             md.manage_argv(ARRAY, "--remove", B)]
    assert result["actions"] == ["add %s" % C, "replace %s with %s" % (B, C), "remove %s" % B]
    assert result["progress"] == [{"action": "recovery", "percent": 9.4}] * 2
    assert result["leg"] == "absent" and result["diff"]["after"]["legs"] == {"/dev/dm-0": "in_sync", C: "in_sync"}


def test_hot_replace_reruns(mirror, fixture_text):
    args = {"leg": B, "state": "replaced", "replacement": C}
    # while md copies: no change
    result, failed, calls = mirror(args, ["replacing"])
    assert not failed and not result["changed"] and manage(calls) == []
    # copy done, the old leg faulty: the rerun removes it
    states = ["replaced"] * 2 + ["after-replace"]
    result, failed, calls = mirror(args, states, command(fixture_text, "mdadm-remove"),
                                   mdstats=["replaced"])
    assert not failed and manage(calls) == [md.manage_argv(ARRAY, "--remove", B)]
    result, failed, calls = mirror(args, ["after-replace"], mdstats=["replaced"])
    assert not failed and not result["changed"] and calls == [DETAIL]
    # check mode predicts the end
    commands = dict(command(fixture_text, "examine-blank-c"))
    result, failed, calls = mirror(args, ["clean"], commands, check_mode=True)
    assert result["changed"] and result["would_run"] == [md.manage_argv(ARRAY, "--add", C), md.replace_argv(ARRAY, B, C)]
    assert result["diff"]["after"]["legs"] == {"/dev/dm-0": "in_sync", C: "in_sync"}


def guest_array(module_main, monkeypatch, fixture_text, args, details, mdstats, commands=(), check_mode=False):
    """md_mirror on the guest's array /dev/md127 (legs /dev/xvd*, recorded in web07 at stop 43), --detail and
    /proc/mdstat answering the recordings named in turn (the last repeats)."""
    monkeypatch.setattr(md, "resolve_device", lambda path: path)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    texts = [fixture_text(*RECORDED + ("mdstat-%s.txt" % name,)) for name in mdstats]
    monkeypatch.setattr(md, "read_text", lambda path: texts.pop(0) if len(texts) > 1 else texts[0])
    outputs = command(fixture_text, *commands)
    outputs[tuple(md.detail_argv("/dev/md127"))] = [(0, fixture_text(*RECORDED + ("detail-%s.txt" % name,)), "")
                                                    for name in details]
    return module_main(md_mirror.main, dict({"array": "/dev/md127"}, **args), outputs, check_mode, True)


def test_a_new_leg_md_left_beside_the_emptied_slot_goes_back_in(module_main, monkeypatch, fixture_text):
    """After the hot replace of xvdc by xvdd, md dropped xvdc but left xvdd in the replacement slot ([U_], lab): the
    rerun (or the same run's end) fails, removes and re-adds xvdd while xvdb is in sync, and waits for [UU]."""
    args = {"leg": "/dev/xvdc", "replacement": "/dev/xvdd", "state": "replaced", "wait": True, "timeout": 60}
    result, failed, calls = guest_array(
        module_main, monkeypatch, fixture_text, args,
        ["replacement-stuck", "replacement-healed"], ["replacement-stuck", "replacement-healed"],
        ("mdadm-fail-stuck", "mdadm-remove-stuck", "mdadm-re-add-stuck"))
    assert not failed, result
    assert manage(calls) == [md.manage_argv("/dev/md127", verb, "/dev/xvdd") for verb in ("--fail", "--remove", "--re-add")]
    assert result["changed"] and result["actions"][0] == "fail the replacement left beside an empty slot /dev/xvdd"
    assert result["array"]["state"] == "clean" and result["array"]["map"] == "UU" and result["leg"] == "absent"
    # the healed array: no change
    result, failed, calls = guest_array(module_main, monkeypatch, fixture_text, args, ["replacement-healed"],
                                        ["replacement-healed"])
    assert not failed and not result["changed"] and manage(calls) == []
    # check mode says what it would run and runs nothing
    result, failed, calls = guest_array(module_main, monkeypatch, fixture_text, dict(args, wait=False),
                                        ["replacement-stuck"], ["replacement-stuck"], check_mode=True)
    assert result["changed"] and manage(calls) == [] and len(result["would_run"]) == 3


def test_a_hot_replace_of_the_other_leg_is_refused_while_the_hole_is_there(module_main, monkeypatch, fixture_text):
    """The same array, asked to replace xvdb (the one leg md reads from) by xvdd: refused, nothing run; --detail alone
    would have called the array clean, /proc/mdstat's hole makes it degraded."""
    args = {"leg": "/dev/xvdb", "replacement": "/dev/xvdd", "state": "replaced"}
    result, failed, calls = guest_array(module_main, monkeypatch, fixture_text, args, ["replacement-stuck"],
                                        ["replacement-stuck"])
    assert failed and "/dev/md127 is degraded" in result["msg"] and manage(calls) == []


def test_hot_replace_wants_a_clean_mirror(mirror, fixture_text):
    result, failed, calls = mirror({"leg": A, "state": "replaced", "replacement": C}, ["degraded"])
    assert failed and "a hot replace wants a clean array" in result["msg"] and manage(calls) == []


def test_bad_input_and_a_missing_array(mirror, fixture_text):
    for args in ({"array": "/dev/md0; reboot"}, {"leg": "xvdc"}, {"leg": B, "state": "absent", "replacement": C},
                 {"leg": B, "state": "replaced", "replacement": "/dev/dm-1"}):
        result, failed, calls = mirror(args, ["clean"])
        assert failed and calls == [], args
    result, failed, calls = mirror({"state": "absent"}, ["clean"])
    assert failed and "leg" in result["msg"] and calls == []
    missing = command(fixture_text, "mdadm-detail-missing")
    result, failed, calls = mirror({"array": "/dev/md91"}, ["clean"], missing)
    assert failed and result["msg"] == "md array /dev/md91 does not exist"


def test_wait_gives_up_with_the_progress(mirror, monkeypatch):
    ticks = iter(range(0, 10000, 600))
    monkeypatch.setattr(time, "monotonic", lambda: next(ticks))
    result, failed, calls = mirror({"wait": True, "timeout": 1000}, ["recovery"])
    assert failed and result["msg"] == "/dev/md90: not done within 1000 s (recovery at 18.1%)"
    assert result["progress"][0] == {"action": "recovery", "percent": 18.1}


def test_absent_with_wait_reads_the_result_at_once(mirror, fixture_text):
    commands = command(fixture_text, "mdadm-fail", "mdadm-remove")
    result, failed, calls = mirror({"leg": B, "state": "absent", "wait": True}, ["clean", "clean", "degraded"], commands)
    assert not failed and result["leg"] == "absent" and result["progress"] == [] and calls[-1] == DETAIL


# --------------------------------------------------------------------------- state=created (first provisioning)

CREATE = {"state": "created", "name": "fxmd", "legs": [A, B]}


def test_created_makes_the_mirror_with_a_bitmap_when_it_does_not_exist(mirror, fixture_text):
    commands = command(fixture_text, "mdadm-create", "examine-blank")
    commands[tuple(md.examine_argv(A))] = commands[tuple(md.examine_argv(B))]
    # --detail: no array (recorded 'cannot open'), then the new array resyncing
    missing = json.loads(fixture_text(*RECORDED + ("mdadm-detail-missing.json",)))
    details = [(missing["rc"], missing["stdout"], missing["stderr"]),
               (0, fixture_text(*RECORDED + ("detail-resync.txt",)), "")]
    result, failed, calls = mirror(CREATE, ["resync"], dict(commands, **{"detail": details}))
    assert not failed, result
    assert result["changed"] and result["actions"] == ["create %s over %s %s" % (ARRAY, A, B)]
    assert manage(calls) == [md.create_argv(ARRAY, [A, B], "fxmd")]
    assert "--bitmap=internal" in manage(calls)[0]
    assert result["array"]["bitmap"] and result["array"]["state"] == "resyncing"


def test_created_is_no_change_once_the_array_exists(mirror):
    result, failed, calls = mirror(CREATE, ["clean"])
    assert not failed and not result["changed"] and manage(calls) == []
    assert result["diff"]["before"] == result["diff"]["after"]


def test_created_refuses_a_leg_with_a_superblock(mirror, fixture_text):
    missing = json.loads(fixture_text(*RECORDED + ("mdadm-detail-missing.json",)))
    commands = {tuple(md.examine_argv(A)): (0, fixture_text(*RECORDED + ("examine-leg.txt",)), "")}
    commands["detail"] = [(missing["rc"], missing["stdout"], missing["stderr"])]
    result, failed, calls = mirror(CREATE, ["clean"], commands)
    assert failed and "holds the md superblock of array" in result["msg"] and "assemble" in result["msg"]
    assert manage(calls) == []


def test_created_in_check_mode_runs_nothing(mirror, fixture_text):
    missing = json.loads(fixture_text(*RECORDED + ("mdadm-detail-missing.json",)))
    commands = command(fixture_text, "examine-blank")
    commands[tuple(md.examine_argv(A))] = commands[tuple(md.examine_argv(B))]
    commands["detail"] = [(missing["rc"], missing["stdout"], missing["stderr"])]
    result, failed, calls = mirror(CREATE, ["clean"], commands, check_mode=True)
    assert not failed and result["changed"] and manage(calls) == []
    assert result["would_run"] == [md.create_argv(ARRAY, [A, B], "fxmd")]


def test_created_wants_two_legs_and_a_name(mirror):
    result, failed, calls = mirror({"state": "created", "name": "fxmd", "legs": [A]}, ["clean"])
    assert failed and "two different legs" in result["msg"] and calls == []
    result, failed, calls = mirror({"state": "created", "name": "bad name", "legs": [A, B]}, ["clean"])
    assert failed and "invalid md array name" in result["msg"] and calls == []
    result, failed, calls = mirror({"name": "fxmd", "legs": [A, B]}, ["clean"])
    assert failed and "go with state=created" in result["msg"]


# An array that came back with one leg (recorded on hosta: another array, md127 over fxmd-a alone): inactive
# until mdadm --run, and /dev/md/fxmd links to it only once it runs.
LINK, INACTIVE = "/dev/md/fxmd", "/dev/md127"


@pytest.fixture
def one_leg(module_main, monkeypatch, fixture_text):
    """go(args, running_before, check_mode, mdstats): md_mirror on the link /dev/md/fxmd, which udev makes once
    mdadm --run ran (or before, when running_before)."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    # linked only when it ran before (as udev does; a foreign-named one is linked /dev/md/HOST:NAME)
    monkeypatch.setattr(md_mirror.os.path, "exists", lambda path: path == LINK and state["linked"])
    monkeypatch.setattr(md, "resolve_device", lambda path: INACTIVE if path == LINK else path)
    state = {"linked": False}

    def go(args, running_before=False, check_mode=False, mdstats=("inactive", "run-degraded"), linked=None):
        state["linked"] = running_before if linked is None else linked
        texts = [fixture_text(*RECORDED + ("mdstat-%s.txt" % name,)) for name in mdstats]
        monkeypatch.setattr(md, "read_text", lambda path: texts.pop(0) if len(texts) > 1 else texts[0])
        inactive = command(fixture_text, "mdadm-detail-inactive")[tuple(md.detail_argv(INACTIVE))]
        degraded = (0, fixture_text(*RECORDED + ("detail-run-degraded.txt",)), "")
        run = command(fixture_text, "mdadm-run")[tuple(md.run_argv(INACTIVE))]
        missing = command(fixture_text, "mdadm-detail-missing")[tuple(md.detail_argv("/dev/md91"))]
        outputs = {tuple(md.detail_argv(INACTIVE)): degraded if running_before else (inactive if check_mode else [inactive, degraded]),
                   # not linked: mdadm cannot open it (recorded for /dev/md91)
                   tuple(md.detail_argv(LINK)): degraded if state["linked"] else missing,
                   tuple(md.examine_argv("/dev/dm-0")): (0, fixture_text(*RECORDED + ("examine-one-leg.txt",)), ""),
                   tuple(md.run_argv(INACTIVE)): run}
        return module_main(md_mirror.main, dict({"array": LINK, "state": "running"}, **args), outputs, check_mode, True)
    return go


def test_running_starts_the_array_md_holds_inactive_found_by_its_members(one_leg):
    result, failed, calls = one_leg({})
    assert not failed, result
    assert result["changed"] and result["actions"] == ["run %s degraded on /dev/dm-0" % INACTIVE]
    assert manage(calls) == [md.run_argv(INACTIVE)]
    assert calls.index(md.examine_argv("/dev/dm-0")) < calls.index(md.run_argv(INACTIVE))
    assert result["array"]["state"] == "degraded" and result["array"]["map"] == "U_"
    assert result["array"]["legs"] == [{"device": "/dev/dm-0", "status": "in_sync", "slot": 0}]
    assert result["diff"]["before"]["state"] == "inactive" and result["diff"]["after"]["state"] == "degraded"


def test_running_is_no_change_on_an_array_that_runs(one_leg):
    result, failed, calls = one_leg({}, running_before=True, mdstats=("run-degraded",))
    assert not failed and not result["changed"] and manage(calls) == [] and result["actions"] == []
    assert result["array"]["state"] == "degraded"
    assert result["diff"]["before"] == result["diff"]["after"]


def test_an_array_that_runs_without_its_link_is_read_by_its_members(one_leg):
    # /dev/md/fxmd not linked (udev named it /dev/md/HOST:fxmd): read and started as /dev/md127
    result, failed, calls = one_leg({}, running_before=True, mdstats=("run-degraded",), linked=False)
    assert not failed and not result["changed"] and md.detail_argv(INACTIVE) in calls and md.detail_argv(LINK) not in calls
    assert result["array"]["device"] == INACTIVE and result["array"]["state"] == "degraded"


def test_running_in_check_mode_runs_nothing(one_leg):
    result, failed, calls = one_leg({}, check_mode=True, mdstats=("inactive",))
    assert not failed and result["changed"] and manage(calls) == []
    assert result["would_run"] == [md.run_argv(INACTIVE)]
    assert result["array"]["state"] == "inactive" and result["diff"]["after"]["state"] == "degraded"


def test_running_fails_when_the_array_is_not_assembled_or_given_a_leg(one_leg, module_main, fixture_text):
    # /dev/md91 (recorded: mdadm cannot open it)
    result, failed, calls = module_main(md_mirror.main, {"array": "/dev/md91", "state": "running"},
                                        command(fixture_text, "mdadm-detail-missing"), False, True)
    assert failed and "is not assembled" in result["msg"] and calls == [md.detail_argv("/dev/md91")]
    result, failed, calls = one_leg({"leg": "/dev/xvdb"})
    assert failed and "takes no leg" in result["msg"] and calls == []


def test_created_is_no_change_when_the_array_runs_under_another_link(one_leg):
    # a rerun of the first provisioning after a reboot that linked the array /dev/md/HOST:fxmd: no create over its legs
    result, failed, calls = one_leg({"state": "created", "name": "fxmd", "legs": ["/dev/dm-0", "/dev/dm-1"]},
                                    running_before=True, mdstats=("run-degraded",), linked=False)
    assert not failed and not result["changed"] and manage(calls) == [], result
    assert md.detail_argv(INACTIVE) in calls and result["array"]["device"] == INACTIVE
