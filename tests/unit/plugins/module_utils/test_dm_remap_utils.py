# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""dm.py remap helpers: plan_remap on recorded tables (dm/1.02.185), sysfs probes, run_remap."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.dm import (
    DeviceMapper,
    DmParseError,
    DmRemapError,
    block_devno,
    block_sectors,
    check_via_path,
    clone_default_name,
    dm_sysfs_devices,
    linear_table,
    parse_table,
    parse_tables,
    plan_remap,
    points_at,
    run_remap,
    same_table,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner

DM = ("dm", "1.02.185")
MIG1 = "xenvg-mig1--disk"      # recorded pointing at /dev/drbd10 (147:10)
CLONE = "sl-mig1-0.real"       # recorded clone of its original table
PVFX = "xenvg-pvfx--disk"      # recorded on its own extents


@pytest.fixture
def tables(fixture_text):
    return parse_tables(fixture_text(*DM + ("dmsetup-table-swapped.txt",)))


def kinds(plan):
    return [kind for kind, _segments in plan["steps"]]


def test_points_at_compares_path_and_majmin(tables, fixture_text):
    assert points_at(tables[MIG1], ["/dev/drbd10", "147:10"])
    assert not points_at(tables[MIG1], ["/dev/drbd10"])  # dmsetup prints MAJ:MIN, not the path
    assert not points_at(tables[MIG1], ["147:11"])
    assert not points_at(tables[PVFX], ["254:16"])  # offset is not 0
    assert points_at(parse_table(fixture_text(*DM + ("dmsetup-table-fxs-swapped.txt",))), ["147:90"])


def test_same_table(tables, fixture_text):
    assert same_table(tables[CLONE], parse_table("0 524288 linear 254:16 804864\n"))
    assert not same_table(tables[CLONE], tables[MIG1])
    assert not same_table(None, tables[MIG1])


def test_remap_from_original(tables):
    plan = plan_remap("remapped", PVFX, tables[PVFX], "xenvg-pvfx--disk.real", None, via="/dev/drbd11",
                      via_refs=["/dev/drbd11", "147:11"])
    assert kinds(plan) == ["create_clone", "swap"]
    assert plan["steps"][0][1] == tables[PVFX]
    assert plan["steps"][1][1] == linear_table("/dev/drbd11", 524288)
    assert plan["original"] == tables[PVFX]


def test_remapped_is_a_no_op(tables):
    plan = plan_remap("remapped", MIG1, tables[MIG1], CLONE, tables[CLONE], via="/dev/drbd10",
                      via_refs=["/dev/drbd10", "147:10"])
    assert plan["steps"] == [] and plan["original"] == tables[CLONE]
    assert plan["situation"].startswith("remapped:")


def test_remapped_with_majmin_only_known_by_path_is_not_taken_for_done(tables):
    # Without the MAJ:MIN of via, the recorded 147:10 does not match /dev/drbd10: the clone then
    # holds a table that is not the LV's, which is refused rather than swapped twice.
    with pytest.raises(DmRemapError, match="different"):
        plan_remap("remapped", MIG1, tables[MIG1], CLONE, tables[CLONE], via="/dev/drbd10", via_refs=["/dev/drbd10"])


def test_half_done_clone_exists_lv_original_completes(tables):
    plan = plan_remap("remapped", MIG1, tables[CLONE], CLONE, tables[CLONE], via="/dev/drbd10",
                      via_refs=["/dev/drbd10", "147:10"])
    assert kinds(plan) == ["swap"] and plan["situation"].startswith("half-done")


def test_lv_on_via_clone_missing(tables, fixture_text):
    fxs = tables["xenvg-fxs--disk"]
    refs = ["/dev/drbd90", "147:90"]
    with pytest.raises(DmRemapError, match="clone xenvg-fxs--disk.real is missing.*original_table"):
        plan_remap("remapped", "xenvg-fxs--disk", fxs, "xenvg-fxs--disk.real", None, via="/dev/drbd90", via_refs=refs)
    with pytest.raises(DmRemapError, match="cannot restore"):
        plan_remap("original", "xenvg-fxs--disk", fxs, "xenvg-fxs--disk.real", None, via="/dev/drbd90", via_refs=refs)
    with pytest.raises(DmRemapError, match="147:90"):  # without via, a DRBD major is recognised
        plan_remap("original", "xenvg-fxs--disk", fxs, "xenvg-fxs--disk.real", None)
    before = parse_table(fixture_text(*DM + ("dmsetup-table-fxs-before.txt",)))
    plan = plan_remap("remapped", "xenvg-fxs--disk", fxs, "xenvg-fxs--disk.real", None, via="/dev/drbd90",
                      via_refs=refs, original_table=before)
    assert kinds(plan) == ["create_clone"] and plan["steps"][0][1] == before
    plan = plan_remap("original", "xenvg-fxs--disk", fxs, "xenvg-fxs--disk.real", None, via="/dev/drbd90",
                      via_refs=refs, original_table=before)
    assert plan["steps"] == [("swap", before)]


def test_original_table_of_another_size_is_refused(tables, fixture_text):
    before = parse_table(fixture_text(*DM + ("dmsetup-table-lv.txt",)))  # 262144 sectors, fxs has 32768
    with pytest.raises(DmRemapError, match="262144 sectors"):
        plan_remap("original", "xenvg-fxs--disk", tables["xenvg-fxs--disk"], "c", None, via="/dev/drbd90",
                   via_refs=["147:90"], original_table=before)


def test_foreign_clone_is_refused(tables):
    with pytest.raises(DmRemapError, match="may belong to another LV"):
        plan_remap("remapped", PVFX, tables[PVFX], CLONE, tables[CLONE], via="/dev/drbd11", via_refs=["147:11"])


def test_original_restores_then_removes_clone(tables):
    plan = plan_remap("original", MIG1, tables[MIG1], CLONE, tables[CLONE], via="/dev/drbd10",
                      via_refs=["/dev/drbd10", "147:10"])
    assert plan["steps"] == [("swap", tables[CLONE]), ("remove_clone", None)]
    plan = plan_remap("original", MIG1, tables[MIG1], CLONE, tables[CLONE], remove_clone=False)
    assert plan["steps"] == [("swap", tables[CLONE])]


def test_original_left_over_clone(tables):
    plan = plan_remap("original", MIG1, tables[CLONE], CLONE, tables[CLONE])
    assert plan["steps"] == [("remove_clone", None)]
    assert plan_remap("original", MIG1, tables[CLONE], CLONE, tables[CLONE], remove_clone=False)["steps"] == []


def test_original_lv_pointing_elsewhere_is_refused(tables):
    with pytest.raises(DmRemapError, match="neither /dev/drbd11"):
        plan_remap("original", MIG1, tables[MIG1], CLONE, tables[CLONE], via="/dev/drbd11", via_refs=["147:11"])


def test_original_no_clone_is_a_no_op(tables):
    plan = plan_remap("original", PVFX, tables[PVFX], "xenvg-pvfx--disk.real", None, via="/dev/drbd11",
                      via_refs=["147:11"])
    assert plan["steps"] == [] and plan["original"] is None


def test_missing_lv_and_small_via_and_self(tables):
    with pytest.raises(DmRemapError, match="no dm device"):
        plan_remap("remapped", "xenvg-nosuch", None, "c", None, via="/dev/drbd11", via_refs=["147:11"])
    with pytest.raises(DmRemapError, match="fewer than the 524288"):
        plan_remap("remapped", PVFX, tables[PVFX], "c", None, via="/dev/drbd11", via_refs=["147:11"], via_sectors=1024)
    with pytest.raises(DmRemapError, match="itself"):
        plan_remap("remapped", PVFX, tables[PVFX], "c", None, via="/dev/dm-7", via_refs=["/dev/dm-7", "254:7"],
                   lv_devno="254:7")


@pytest.mark.parametrize("path", ["/dev/drbd10", "/dev/drbd/by-res/sl-web01-0/0", "/dev/mapper/xenvg-a--b"])
def test_via_paths(path):
    assert check_via_path(path) == path


@pytest.mark.parametrize("path", ["drbd10", "/dev/drbd10 ", "/dev/drbd10;id", "/dev/../etc/x", "/tmp/x", "/dev/",
                                  "/dev/a$(id)", "/dev/a\n"])
def test_bad_via_paths(path):
    with pytest.raises(ValueError):
        check_via_path(path)


def test_clone_default_name():
    assert clone_default_name(PVFX) == "xenvg-pvfx--disk.real"


# -- sysfs probes. The trees below follow the kernel ABI (Documentation/ABI/testing/sysfs-block-dm:
# dm/name, dm/suspended "0" or "1"; dev "MAJ:MIN"; size in 512-byte sectors); they are not
# recordings (record.py phase "remap" records the real files).

def _dm(root, kname, name, suspended, dev):
    os.makedirs(os.path.join(root, kname, "dm"))
    for path, text in (("dm/name", name), ("dm/suspended", suspended), ("dev", dev)):
        with open(os.path.join(root, kname, path), "w") as handle:
            handle.write(text + "\n")


def test_dm_sysfs_devices(tmp_path):
    root = str(tmp_path)
    _dm(root, "dm-3", MIG1, "1", "254:3")
    _dm(root, "dm-4", CLONE, "0", "254:4")
    os.makedirs(os.path.join(root, "vda"))
    assert dm_sysfs_devices(root) == {MIG1: {"kname": "dm-3", "devno": "254:3", "suspended": True},
                                      CLONE: {"kname": "dm-4", "devno": "254:4", "suspended": False}}
    assert dm_sysfs_devices(os.path.join(root, "nosuch")) == {}
    _dm(root, "dm-5", "x", "yes", "254:5")
    with pytest.raises(DmParseError):
        dm_sysfs_devices(root)


def test_block_sectors(tmp_path):
    os.makedirs(str(tmp_path / "147:10"))
    (tmp_path / "147:10" / "size").write_text("524288\n")
    assert block_sectors("147:10", str(tmp_path)) == 524288
    assert block_sectors("147:11", str(tmp_path)) is None


class _Stat(object):
    def __init__(self, mode, rdev):
        self.st_mode = mode
        self.st_rdev = rdev


def test_block_devno():
    fake = {"/dev/drbd10": _Stat(stat.S_IFBLK | 0o660, os.makedev(147, 10))}

    def fake_stat(path):
        if path not in fake:
            raise OSError(2, "No such file or directory")
        return fake[path]
    assert block_devno("/dev/drbd10", stat=fake_stat) == "147:10"
    with pytest.raises(ValueError, match="No such file"):
        block_devno("/dev/drbd11", stat=fake_stat)
    with pytest.raises(ValueError, match="not a block device"):
        block_devno("/dev/null")  # the real one: a character device


# -- run_remap through a DeviceMapper (dmsetup's silent success: rc 0, nothing printed)

def test_run_remap_argv_stdin_and_pause_around_swap_only(fake_module, tables):
    clone = "xenvg-pvfx--disk.real"
    module = fake_module({
        ("dmsetup", "create", clone): (0, "", ""),
        ("dmsetup", "suspend", PVFX): (0, "", ""),
        ("dmsetup", "load", PVFX): (0, "", ""),
        ("dmsetup", "resume", PVFX): (0, "", ""),
    })
    events = []

    class Around(object):
        def __enter__(self):
            events.append("pause")

        def __exit__(self, *exc):
            events.append("unpause")
    runner = CommandRunner(module)
    plan = plan_remap("remapped", PVFX, tables[PVFX], clone, None, via="/dev/drbd11", via_refs=["147:11"])
    done = run_remap(DeviceMapper(runner), PVFX, clone, plan["steps"], around_swap=Around)
    assert [call[0][1] for call in module.calls] == ["create", "suspend", "load", "resume"]
    assert module.calls[0][1]["data"] == "0 524288 linear 254:16 1329152\n"
    assert module.calls[2][1]["data"] == "0 524288 linear /dev/drbd11 0\n"
    assert events == ["pause", "unpause"]
    assert done == ["create clone %s" % clone, "load 0 524288 linear /dev/drbd11 0 into %s" % PVFX]


def test_run_remap_stops_at_the_first_failure(fake_module, tables):
    module = fake_module({
        ("dmsetup", "suspend", MIG1): (0, "", ""),
        ("dmsetup", "load", MIG1): (0, "", ""),
        ("dmsetup", "resume", MIG1): (0, "", ""),
        ("dmsetup", "remove", CLONE): (1, "", ""),  # rc only: the module does not read the text
    })
    plan = plan_remap("original", MIG1, tables[MIG1], CLONE, tables[CLONE])
    with pytest.raises(CommandError) as info:
        run_remap(DeviceMapper(CommandRunner(module)), MIG1, CLONE, plan["steps"])
    assert info.value.cmd == ["dmsetup", "remove", CLONE]
    assert module.calls[1][1]["data"] == "0 524288 linear 254:16 804864\n"
