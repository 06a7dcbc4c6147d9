# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.dm_remap on the recordings of record.py phase "remap" (not recorded yet).

Not collected by default (the name does not start with test_). Record, then run:

  .venv-newest/bin/python tests/unit/fixtures/record.py --phases remap
  .venv-newest/bin/python -m pytest tests/unit/plugins/modules/dm_remap_pending.py

and rename it test_dm_remap_recorded.py. Every test fails while its fixture is missing.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.dm import dm_sysfs_devices
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


@pytest.fixture
def run_module(module_main, monkeypatch):
    def run(args, outputs, check_mode=False):
        devno = recorded("remap-via-devno.txt").strip()
        monkeypatch.setattr(dm_remap, "block_devno", lambda path: {VIA: devno}[path])
        monkeypatch.setattr(dm_remap, "block_sectors", lambda devno: None)
        monkeypatch.setattr(dm_remap, "dm_sysfs_devices", lambda: {})
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


def test_failed_load_resumes(run_module):
    bad = result_of("remap-load-too-big.json")
    assert bad[0] != 0
    outputs = {TABLE: text("remap-table-before.txt"),
               ("dmsetup", "create", CLONE): result_of("remap-create.json"),
               ("dmsetup", "suspend", LV_DM): result_of("remap-suspend.json"),
               ("dmsetup", "load", LV_DM): bad,
               ("dmsetup", "resume", LV_DM): result_of("remap-resume.json")}
    result, failed, calls = run_module({"lv": LV, "via": VIA}, outputs)
    assert failed and result["cmd"] == ["dmsetup", "load", LV_DM] and result["stderr"] == bad[2]
    assert calls[-1] == ["dmsetup", "resume", LV_DM]


def _sysfs_tree(root, listing):
    """Rebuild /sys/block from ``grep -H .`` lines (path:value)."""
    for line in listing.splitlines():
        path, _sep, value = line.partition(":")
        # sysfs paths hold no ":"; the first one ends the path (dev values are MAJ:MIN)
        target = os.path.join(root, os.path.relpath(path, "/sys/block"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as handle:
            handle.write(value + "\n")


def test_sysfs_suspended_flag_agrees_with_dmsetup_info(tmp_path):
    _sysfs_tree(str(tmp_path / "active"), recorded("remap-sysfs-active.txt"))
    _sysfs_tree(str(tmp_path / "suspended"), recorded("remap-sysfs-suspended.txt"))
    assert dm_sysfs_devices(str(tmp_path / "active"))[LV_DM]["suspended"] is False
    assert dm_sysfs_devices(str(tmp_path / "suspended"))[LV_DM]["suspended"] is True
    assert "SUSPENDED" in recorded("dmsetup-info-suspended.txt")
    assert "ACTIVE" in recorded("dmsetup-info-active.txt")
