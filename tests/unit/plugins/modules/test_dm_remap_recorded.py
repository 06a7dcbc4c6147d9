# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.dm_remap on the recordings of record.py phase "remap" (dm/1.02.185, see its
SOURCE). Every test fails, naming the file, if a recording is missing.

What the recordings taught: ``dmsetup load`` of a table larger than its device succeeds (the
kernel checks the size only at resume), so the module checks the size itself before suspending
anything; and sysfs ``dm/suspended`` agrees with the State of ``dmsetup info``.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.dm import (
    DmRemapError,
    block_sectors,
    dm_sysfs_devices,
    linear_table,
    parse_table,
    plan_remap,
    table_sectors,
)
from ansible_collections.sanless.xen.plugins.modules import dm_remap

HERE = os.path.dirname(os.path.abspath(__file__))
DM_DIR = os.path.join(HERE, "..", "..", "fixtures", "dm", "1.02.185")
LV = "xenvg/fxq-disk"
LV_DM = "xenvg-fxq--disk"
CLONE = "xenvg-fxq--disk.real"
VIA = "/dev/xenvg/fxq-via"
TABLE = ("dmsetup", "table")


def recorded(name):
    path = os.path.join(DM_DIR, name)
    if not os.path.exists(path):
        pytest.fail("fixture dm/1.02.185/%s is not recorded yet: run tests/unit/fixtures/record.py --phases remap"
                    % name)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def result_of(name):
    data = json.loads(recorded(name))
    return (data["rc"], data["stdout"], data["stderr"])


def text(name):
    return (0, recorded(name), "")


def _sysfs_tree(root, listing):
    """Rebuild /sys/block (and /sys/dev/block links) under ``root`` from ``grep -H .`` lines
    (path:value). Returns (sys_block, sys_dev_block)."""
    sys_block, sys_dev_block = os.path.join(root, "block"), os.path.join(root, "dev", "block")
    os.makedirs(sys_dev_block, exist_ok=True)
    for line in listing.splitlines():
        path, _sep, value = line.partition(":")
        # sysfs paths hold no ":"; the first one ends the path (dev values are MAJ:MIN)
        target = os.path.join(sys_block, os.path.relpath(path, "/sys/block"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as handle:
            handle.write(value + "\n")
        if os.path.basename(path) == "dev":
            os.symlink(os.path.dirname(target), os.path.join(sys_dev_block, value))
    return sys_block, sys_dev_block


@pytest.fixture
def sysfs(tmp_path):
    """{"active"|"suspended": (sys_block, sys_dev_block)} rebuilt from the recordings."""
    return dict((state, _sysfs_tree(str(tmp_path / state), recorded("remap-sysfs-%s.txt" % state)))
                for state in ("active", "suspended"))


@pytest.fixture
def run_module(module_main, monkeypatch, sysfs):
    """The module with its sysfs probes reading the recorded (active) sysfs of hosta."""
    def run(args, outputs, check_mode=False):
        devno = recorded("remap-via-devno.txt").strip()
        sys_block, sys_dev_block = sysfs["active"]
        monkeypatch.setattr(dm_remap, "block_devno", lambda path: {VIA: devno}[path])
        monkeypatch.setattr(dm_remap, "block_sectors", lambda devno: block_sectors(devno, sys_dev_block))
        monkeypatch.setattr(dm_remap, "dm_sysfs_devices", lambda: dm_sysfs_devices(sys_block))
        return module_main(dm_remap.main, args, outputs, check_mode)
    return run


def test_remap_with_recorded_outputs(run_module):
    outputs = {TABLE: [text("remap-table-before.txt"), text("remap-table-remapped.txt")],
               ("dmsetup", "create", CLONE): result_of("remap-create.json"),
               ("dmsetup", "suspend", LV_DM): result_of("remap-suspend.json"),
               ("dmsetup", "load", LV_DM): result_of("remap-load.json"),
               ("dmsetup", "resume", LV_DM): result_of("remap-resume.json")}
    result, failed, calls = run_module({"lv": LV, "via": VIA}, outputs)
    assert not failed and result["changed"], result
    assert result["table"] == "0 32768 linear %s 0\n" % recorded("remap-via-devno.txt").strip()


def test_remapped_rerun_is_a_no_op(run_module):
    result, failed, calls = run_module({"lv": LV, "via": VIA}, {TABLE: text("remap-table-remapped.txt")})
    assert not failed and not result["changed"] and calls == [list(TABLE)]


def test_original_with_recorded_outputs(run_module):
    outputs = {TABLE: [text("remap-table-remapped.txt"), text("remap-table-after.txt")],
               ("dmsetup", "suspend", LV_DM): result_of("remap-suspend.json"),
               ("dmsetup", "load", LV_DM): result_of("remap-load.json"),
               ("dmsetup", "resume", LV_DM): result_of("remap-resume.json"),
               ("dmsetup", "remove", CLONE): result_of("remap-remove.json")}
    result, failed, calls = run_module({"lv": LV, "via": VIA, "state": "original"}, outputs)
    assert not failed and result["changed"], result
    assert result["table"] == result["original_table"]


def test_clone_in_use_is_reported(run_module):
    busy = result_of("remap-remove-busy.json")
    assert busy[0] != 0
    outputs = {TABLE: text("remap-table-remapped.txt"),
               ("dmsetup", "suspend", LV_DM): result_of("remap-suspend.json"),
               ("dmsetup", "load", LV_DM): result_of("remap-load.json"),
               ("dmsetup", "resume", LV_DM): result_of("remap-resume.json"),
               ("dmsetup", "remove", CLONE): busy}
    result, failed, calls = run_module({"lv": LV, "via": VIA, "state": "original"}, outputs)
    assert failed and "could not be removed" in result["msg"]
    assert result["rc"] == busy[0] and result["stderr"] == busy[2]


def test_load_does_not_check_the_size_so_the_module_does(sysfs):
    # Recorded: a table twice the size of VIA, loaded into the suspended LV, is accepted (rc 0, no
    # output); the kernel checks the size only at resume. So dmsetup load cannot be relied on to
    # refuse it: plan_remap compares the sizes (VIA's from sysfs) before anything is suspended.
    bad = json.loads(recorded("remap-load-too-big.json"))
    assert (bad["rc"], bad["stdout"], bad["stderr"]) == (0, "", "")
    too_big = parse_table(bad["stdin"])
    devno = recorded("remap-via-devno.txt").strip()
    via_sectors = block_sectors(devno, sysfs["active"][1])
    assert via_sectors == 32768 and table_sectors(too_big) == 2 * via_sectors
    lv_table = parse_table(json.loads(recorded("remap-create.json"))["stdin"])
    # an LV as large as that table (its recorded extents, twice as many): refused before any command
    big_lv = linear_table(lv_table[0]["device"], table_sectors(too_big), lv_table[0]["offset"])
    with pytest.raises(DmRemapError, match="has 32768 sectors, fewer than the 65536"):
        plan_remap("remapped", LV_DM, big_lv, CLONE, None, via=VIA, via_refs=[VIA, devno], via_sectors=via_sectors)
    plan = plan_remap("remapped", LV_DM, lv_table, CLONE, None, via=VIA, via_refs=[VIA, devno],
                      via_sectors=via_sectors, lv_devno=dm_sysfs_devices(sysfs["active"][0])[LV_DM]["devno"])
    assert [kind for kind, _segments in plan["steps"]] == ["create_clone", "swap"]


def _dmsetup_info(text):
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return fields["State"].strip(), ":".join(part.strip() for part in fields["Major, minor"].split(","))


def test_sysfs_suspended_flag_agrees_with_dmsetup_info(sysfs):
    # dmsetup info and the sysfs listing were recorded in the same state (SOURCE gives the order):
    # suspended after the load, active after the resume.
    for state, info_file, flag in (("suspended", "dmsetup-info-suspended.txt", True),
                                   ("active", "dmsetup-info-active.txt", False)):
        info_state, info_devno = _dmsetup_info(recorded(info_file))
        device = dm_sysfs_devices(sysfs[state][0])[LV_DM]
        assert info_state == ("SUSPENDED" if flag else "ACTIVE")
        assert device["suspended"] is flag and device["devno"] == info_devno
    # only the LV was suspended: not the clone nor VIA
    suspended = dm_sysfs_devices(sysfs["suspended"][0])
    assert [name for name, dev in sorted(suspended.items()) if dev["suspended"]] == [LV_DM]
    assert CLONE in suspended and CLONE not in dm_sysfs_devices(sysfs["active"][0])


def test_suspended_lv_found_in_the_recorded_sysfs_is_resumed_first(module_main, monkeypatch, sysfs):
    # The state a run killed between load and resume leaves (recorded sysfs: LV suspended, clone
    # present): the module resumes the LV first, then sees it remapped and does nothing else.
    devno = recorded("remap-via-devno.txt").strip()
    listings = [dm_sysfs_devices(sysfs["suspended"][0]), dm_sysfs_devices(sysfs["active"][0])]
    monkeypatch.setattr(dm_remap, "block_devno", lambda path: {VIA: devno}[path])
    monkeypatch.setattr(dm_remap, "block_sectors", lambda devno: block_sectors(devno, sysfs["active"][1]))
    monkeypatch.setattr(dm_remap, "dm_sysfs_devices", lambda: listings.pop(0))
    outputs = {TABLE: text("remap-table-remapped.txt"), ("dmsetup", "resume", LV_DM): result_of("remap-resume.json")}
    result, failed, calls = module_main(dm_remap.main, {"lv": LV, "via": VIA}, outputs)
    assert not failed and result["changed"] and result["actions"] == ["resume suspended %s" % LV_DM]
    assert calls == [list(TABLE), ["dmsetup", "resume", LV_DM], list(TABLE)]
