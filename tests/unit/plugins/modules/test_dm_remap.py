# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.dm_remap, run whole with ``dmsetup table`` replayed from lab recordings (dm/1.02.185).

The recording dmsetup-table-swapped.txt has the three situations: xenvg-mig1--disk pointing at
/dev/drbd10 (147:10) with its clone sl-mig1-0.real, xenvg-fxs--disk pointing at /dev/drbd90 (147:90)
without a clone, and xenvg-pvfx--disk on its own extents. The tables "after" a change are that
recording with lines moved or dropped (``edited``), never new text. The sysfs probes (device
numbers, suspended flag) are stubbed; dmsetup's silent success is rc 0 with no output.
The dmsetup outputs of the remap sequence itself are replayed in test_dm_remap_recorded.py.
"""

from __future__ import annotations

import pytest

from ansible_collections.sanless.xen.plugins.modules import dm_remap

DM = ("dm", "1.02.185")
XL = ("xl", "4.17.5")
MIG1 = "xenvg-mig1--disk"
CLONE = "sl-mig1-0.real"
PVFX = "xenvg-pvfx--disk"
PVFX_CLONE = "xenvg-pvfx--disk.real"
DEVNOS = {"/dev/drbd10": "147:10", "/dev/drbd11": "147:11", "/dev/drbd90": "147:90"}
TABLE = ("dmsetup", "table")
OK = (0, "", "")


def edited(text, replace=None, drop=(), add=None):
    """The recorded ``dmsetup table`` with the tables of some devices replaced by the recorded
    table of another (replace={name: other}), dropped, or added under a new name (add={new: other})."""
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    out = dict(lines)
    for name, other in (replace or {}).items():
        out[name] = lines[other]
    for name in drop:
        del out[name]
    for name, other in (add or {}).items():
        out[name] = lines[other]
    return "".join("%s: %s\n" % (name, out[name]) for name in sorted(out))


@pytest.fixture
def swapped(fixture_text):
    return fixture_text(*DM + ("dmsetup-table-swapped.txt",))


@pytest.fixture
def run_module(module_main, monkeypatch):
    def run(args, outputs, check_mode=False, diff=False, suspended=(), sizes=None):
        monkeypatch.setattr(dm_remap, "block_devno", lambda path: DEVNOS[path])
        monkeypatch.setattr(dm_remap, "block_sectors", dict(sizes or {}).get)
        monkeypatch.setattr(dm_remap, "dm_sysfs_devices",
                            lambda: dict((name, {"kname": "dm-9", "devno": "254:9", "suspended": True})
                                         for name in suspended))
        return module_main(dm_remap.main, args, outputs, check_mode, diff)
    return run


def changing(calls):
    return [call for call in calls if call != list(TABLE) and call[:2] != ["xl", "list"]]


def test_remap_check_mode_predicts_and_changes_nothing(run_module, swapped):
    result, failed, calls = run_module({"lv": "/dev/xenvg/pvfx-disk", "via": "/dev/drbd11"},
                                       {TABLE: (0, swapped, "")}, check_mode=True, diff=True)
    assert not failed and result["changed"]
    assert result["would_run"] == [["dmsetup", "create", PVFX_CLONE], ["dmsetup", "suspend", PVFX],
                                   ["dmsetup", "load", PVFX], ["dmsetup", "resume", PVFX]]
    assert changing(calls) == []
    assert result["clone"] == PVFX_CLONE and result["via_devno"] == "147:11"
    assert result["original_table"] == "0 524288 linear 254:16 1329152\n"
    assert result["diff"]["before"] == "0 524288 linear 254:16 1329152\n"
    assert result["diff"]["after"] == "0 524288 linear /dev/drbd11 0\n"


def test_remap_runs_and_reads_back(run_module, swapped):
    after = edited(swapped, replace={PVFX: MIG1}, add={PVFX_CLONE: PVFX})  # PVFX on 147:10, clone = its table
    outputs = {TABLE: [(0, swapped, ""), (0, after, "")], ("dmsetup", "create", PVFX_CLONE): OK,
               ("dmsetup", "suspend", PVFX): OK, ("dmsetup", "load", PVFX): OK, ("dmsetup", "resume", PVFX): OK}
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd10"}, outputs)
    assert not failed and result["changed"], result
    assert changing(calls) == [["dmsetup", "create", PVFX_CLONE], ["dmsetup", "suspend", PVFX],
                               ["dmsetup", "load", PVFX], ["dmsetup", "resume", PVFX]]
    assert result["table"] == "0 524288 linear 147:10 0\n"
    assert result["actions"] == ["create clone %s" % PVFX_CLONE, "load 0 524288 linear /dev/drbd10 0 into %s" % PVFX]


def test_read_back_that_does_not_match_fails(run_module, swapped):
    # The LV did not move (the recording replayed unchanged after the swap): not reported as done.
    outputs = {TABLE: (0, swapped, ""), ("dmsetup", "create", PVFX_CLONE): OK,
               ("dmsetup", "suspend", PVFX): OK, ("dmsetup", "load", PVFX): OK, ("dmsetup", "resume", PVFX): OK}
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd10"}, outputs)
    assert failed and "not what was asked" in result["msg"]


def test_remapped_second_run_is_a_no_op(run_module, swapped):
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd10", "clone_name": CLONE,
                                        "pause_domain": "fxrec"}, {TABLE: (0, swapped, "")}, diff=True)
    assert not failed and not result["changed"] and result["actions"] == []
    assert calls == [list(TABLE)]  # not even xl list: nothing to pause for
    assert result["original_table"] == "0 524288 linear 254:16 804864\n"
    assert result["diff"]["before"] == result["diff"]["after"] == "0 524288 linear 147:10 0\n"


def test_half_done_clone_created_swap_completed(run_module, swapped):
    half = edited(swapped, replace={MIG1: CLONE})  # killed after create, before the swap
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd10", "clone_name": CLONE},
                                       {TABLE: (0, half, "")}, check_mode=True)
    assert not failed and result["changed"] and result["situation"].startswith("half-done")
    assert [argv[1] for argv in result["would_run"]] == ["suspend", "load", "resume"]


def test_suspended_lv_is_resumed_first(run_module, swapped):
    outputs = {TABLE: (0, swapped, ""), ("dmsetup", "resume", MIG1): OK}
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd10", "clone_name": CLONE},
                                       outputs, suspended=[MIG1])
    assert not failed and result["changed"] and result["actions"] == ["resume suspended %s" % MIG1]
    assert calls == [list(TABLE), ["dmsetup", "resume", MIG1], list(TABLE)]


def test_suspended_lv_in_check_mode(run_module, swapped):
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd10", "clone_name": CLONE},
                                       {TABLE: (0, swapped, "")}, check_mode=True, suspended=[MIG1, "other"])
    assert not failed and result["changed"] and result["would_run"] == [["dmsetup", "resume", MIG1]]
    assert calls == [list(TABLE)]


def test_original_check_mode(run_module, swapped):
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd10", "clone_name": CLONE,
                                        "state": "original"}, {TABLE: (0, swapped, "")}, check_mode=True, diff=True)
    assert not failed and result["changed"]
    assert result["would_run"] == [["dmsetup", "suspend", MIG1], ["dmsetup", "load", MIG1], ["dmsetup", "resume", MIG1],
                                   ["dmsetup", "remove", CLONE]]
    assert result["diff"] == {"before_header": "dm table of %s" % MIG1, "after_header": "dm table of %s" % MIG1,
                              "before": "0 524288 linear 147:10 0\n", "after": "0 524288 linear 254:16 804864\n"}


def test_original_runs_under_pause(run_module, swapped, fixture_text):
    after = edited(swapped, replace={MIG1: CLONE}, drop=[CLONE])
    outputs = {TABLE: [(0, swapped, ""), (0, after, "")], ("xl", "list"): (0, fixture_text(*XL + ("xl-list-domu.txt",)), ""),
               ("xl", "pause", "fxrec"): OK, ("dmsetup", "suspend", MIG1): OK, ("dmsetup", "load", MIG1): OK,
               ("dmsetup", "resume", MIG1): OK, ("xl", "unpause", "fxrec"): OK, ("dmsetup", "remove", CLONE): OK}
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "clone_name": CLONE, "state": "original",
                                        "pause_domain": "fxrec"}, outputs)
    assert not failed and result["changed"], result
    assert changing(calls) == [["xl", "pause", "fxrec"], ["dmsetup", "suspend", MIG1], ["dmsetup", "load", MIG1],
                               ["dmsetup", "resume", MIG1], ["xl", "unpause", "fxrec"], ["dmsetup", "remove", CLONE]]
    assert result["table"] == "0 524288 linear 254:16 804864\n"


def test_unpause_after_a_failed_load(run_module, swapped, fixture_text):
    # A hand-written failed load (rc only): the lab could not make one fail, dmsetup load accepted even a
    # table larger than its device (test_dm_remap_recorded.py); a failed load is e.g. an unknown target.
    outputs = {TABLE: (0, swapped, ""), ("xl", "list"): (0, fixture_text(*XL + ("xl-list-domu.txt",)), ""),
               ("xl", "pause", "fxrec"): OK, ("dmsetup", "suspend", MIG1): OK, ("dmsetup", "load", MIG1): (1, "", ""),
               ("dmsetup", "resume", MIG1): OK, ("xl", "unpause", "fxrec"): OK}
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "clone_name": CLONE, "state": "original",
                                        "pause_domain": "fxrec"}, outputs)
    assert failed and result["cmd"] == ["dmsetup", "load", MIG1] and result["rc"] == 1
    assert "stdout" in result and "stderr" in result
    assert changing(calls)[-2:] == [["dmsetup", "resume", MIG1], ["xl", "unpause", "fxrec"]]


def test_pause_domain_must_run_here(run_module, swapped, fixture_text):
    outputs = {TABLE: (0, swapped, ""), ("xl", "list"): (0, fixture_text(*XL + ("xl-list.txt",)), "")}
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd11", "pause_domain": "fxrec"},
                                       outputs)
    assert failed and "pause_domain fxrec is absent" in result["msg"]
    assert changing(calls) == []


def test_clone_left_over_is_removed_or_kept(run_module, swapped):
    over = edited(swapped, replace={MIG1: CLONE})
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd10", "clone_name": CLONE,
                                        "state": "original"}, {TABLE: (0, over, "")}, check_mode=True)
    assert not failed and result["would_run"] == [["dmsetup", "remove", CLONE]]
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd10", "clone_name": CLONE,
                                        "state": "original", "remove_clone": False}, {TABLE: (0, over, "")})
    assert not failed and not result["changed"] and calls == [list(TABLE)]


def test_original_when_already_original_is_a_no_op(run_module, swapped):
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd11", "state": "original"},
                                       {TABLE: (0, swapped, "")})
    assert not failed and not result["changed"] and result["original_table"] is None


def test_lv_on_via_without_clone_cannot_be_restored(run_module, swapped, fixture_text):
    args = {"lv": "xenvg/fxs-disk", "via": "/dev/drbd90", "state": "original"}
    result, failed, calls = run_module(args, {TABLE: (0, swapped, "")})
    assert failed and "xenvg-fxs--disk points at /dev/drbd90 but the clone xenvg-fxs--disk.real" in result["msg"]
    assert "original_table" in result["msg"] and changing(calls) == []
    args["original_table"] = fixture_text(*DM + ("dmsetup-table-fxs-before.txt",))
    result, failed, calls = run_module(args, {TABLE: (0, swapped, "")}, check_mode=True, diff=True)
    assert not failed and [argv[1] for argv in result["would_run"]] == ["suspend", "load", "resume"]
    assert result["diff"]["after"] == "0 32768 linear 254:16 559104\n"


def test_lv_on_via_without_clone_remapped(run_module, swapped, fixture_text):
    args = {"lv": "xenvg/fxs-disk", "via": "/dev/drbd90"}
    result, failed, calls = run_module(args, {TABLE: (0, swapped, "")})
    assert failed and "give original_table" in result["msg"]
    args["original_table"] = fixture_text(*DM + ("dmsetup-table-fxs-before.txt",))
    result, failed, calls = run_module(args, {TABLE: (0, swapped, "")}, check_mode=True)
    assert not failed and result["would_run"] == [["dmsetup", "create", "xenvg-fxs--disk.real"]]


def test_foreign_clone_refused(run_module, swapped):
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd11", "clone_name": CLONE},
                                       {TABLE: (0, swapped, "")})
    assert failed and "may belong to another LV" in result["msg"] and changing(calls) == []


def test_lv_pointing_elsewhere_refused(run_module, swapped):
    result, failed, calls = run_module({"lv": "xenvg/mig1-disk", "via": "/dev/drbd11", "clone_name": CLONE,
                                        "state": "original"}, {TABLE: (0, swapped, "")})
    assert failed and "refusing to overwrite" in result["msg"] and changing(calls) == []


def test_via_smaller_than_the_lv(run_module, swapped):
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd11"}, {TABLE: (0, swapped, "")},
                                       sizes={"147:11": 524280})
    assert failed and "has 524280 sectors, fewer than the 524288" in result["msg"]


def test_missing_lv(run_module, fixture_text):
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd11"},
                                       {TABLE: (0, fixture_text(*DM + ("dmsetup-table.txt",)), "")})
    assert failed and "no dm device xenvg-pvfx--disk" in result["msg"]


def test_dmsetup_failure_goes_through_fail_from_error(run_module):
    result, failed, calls = run_module({"lv": "xenvg/pvfx-disk", "via": "/dev/drbd11"}, {TABLE: (1, "", "")})
    assert failed and result["cmd"] == ["dmsetup", "table"] and result["rc"] == 1


def test_via_must_be_a_block_device(module_main, monkeypatch):
    monkeypatch.setattr(dm_remap, "dm_sysfs_devices", lambda: {})
    result, failed, calls = module_main(dm_remap.main, {"lv": "xenvg/pvfx-disk", "via": "/dev/null"}, {})
    assert failed and result["msg"] == "/dev/null is not a block device" and calls == []


@pytest.mark.parametrize("args, text", [
    ({"lv": "xenvg/a b", "via": "/dev/drbd10"}, "invalid LVM LV name"),
    ({"lv": "xenvg/x;rm -rf", "via": "/dev/drbd10"}, "invalid LVM LV name"),
    ({"lv": "/dev/xenvg", "via": "/dev/drbd10"}, "want /dev/VG/LV or VG/LV"),
    ({"lv": "xen vg/x", "via": "/dev/drbd10"}, "invalid LVM VG name"),
    ({"lv": "xenvg/x", "via": "drbd10"}, "invalid device path"),
    ({"lv": "xenvg/x", "via": "/dev/drbd10;id"}, "invalid device path"),
    ({"lv": "xenvg/x", "via": "/dev/drbd10", "clone_name": "a b"}, "invalid device-mapper name"),
    ({"lv": "xenvg/x", "via": "/dev/drbd10", "clone_name": "c\n"}, "invalid device-mapper name"),
    ({"lv": "xenvg/x", "via": "/dev/drbd10", "clone_name": "xenvg-x"}, "the LV's own dm device"),
    ({"lv": "xenvg/x", "via": "/dev/drbd10", "pause_domain": "$(id)"}, "invalid VM name"),
    ({"lv": "xenvg/x", "state": "original", "original_table": "0 8 linear /dev/a b 0"}, "original_table"),
    ({"lv": "xenvg/x", "state": "original", "original_table": "8 8 zero"}, "original_table"),
    ({"lv": "xenvg/x"}, "via"),
])
def test_bad_input_refused_before_any_command(run_module, args, text):
    result, failed, calls = run_module(args, {})
    assert failed and text in result["msg"] and calls == []
