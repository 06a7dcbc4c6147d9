# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.lvm_volume, run whole with commands replayed from lab recordings (lvm/2.03.16)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.lvm import (
    lvcreate_argv,
    lvextend_argv,
    lvreduce_argv,
    lvremove_argv,
    lvs_argv,
    lvsnapshot_argv,
    vgs_argv,
)
from ansible_collections.sanless.xen.plugins.modules import lvm_volume

LVM = ("lvm", "2.03.16")
MIB = 1024 * 1024


@pytest.fixture
def run_module(module_main, monkeypatch):
    def run(args, outputs, check_mode=False, diff=False):
        monkeypatch.setattr(lvm_volume.socket, "gethostname", lambda: "hosta")
        return module_main(lvm_volume.main, args, outputs, check_mode, diff)
    return run


def reports(fixture_text, lvs="lvcreate-lvs-after.json", vgs="lvcreate-vgs-before.json"):
    return {
        tuple(vgs_argv()): (0, fixture_text(*LVM, vgs), ""),
        tuple(lvs_argv(["xenvg"])): (0, fixture_text(*LVM, lvs), ""),
    }


def empty_lvs(fixture_text):
    """The recorded lvs report without the pvfx LVs: what lvs showed before they were created."""
    data = json.loads(fixture_text(*LVM, "lvcreate-lvs-after.json"))
    data["report"][0]["lv"] = [lv for lv in data["report"][0]["lv"] if not lv["lv_name"].startswith("pvfx")]
    return json.dumps(data)


def test_create(run_module, fixture_text):
    create = lvcreate_argv("xenvg", "pvfx-disk", 268435456)
    outputs = reports(fixture_text)
    outputs[tuple(lvs_argv(["xenvg"]))] = [(0, empty_lvs(fixture_text), ""),
                                           (0, fixture_text(*LVM, "lvcreate-lvs-after.json"), "")]
    outputs[tuple(create)] = (0, "", fixture_text(*LVM, "lvcreate-pvfx-disk.stderr"))
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": "256M"}, outputs, diff=True)
    assert not failed and result["changed"] and result["action"] == "created"
    assert create in calls
    assert result["lv"] == {"vg": "xenvg", "name": "pvfx-disk", "size_bytes": 268435456, "path": "/dev/xenvg/pvfx-disk",
                            "snapshot": False, "origin": None, "data_percent": None, "stripes": 1,
                            "stripe_size_bytes": 0}
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"] == {"state": "present", "size_bytes": 268435456}


def test_create_check_mode_changes_nothing(run_module, fixture_text):
    outputs = reports(fixture_text)
    outputs[tuple(lvs_argv(["xenvg"]))] = (0, empty_lvs(fixture_text), "")
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": "268435456"}, outputs,
                                       check_mode=True)
    assert not failed and result["changed"]
    assert result["would_run"] == [lvcreate_argv("xenvg", "pvfx-disk", 268435456)]
    assert all(call[0] in ("vgs", "lvs") for call in calls)


@pytest.mark.parametrize("size", ["256M", "256MiB", "268435456", "256m", "0.25G", "255M", "253M"])
def test_same_size_after_extent_rounding_is_idempotent(run_module, fixture_text, size):
    # 253M and 255M round up to 256 MiB with 4 MiB extents, as LVM would allocate them.
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": size}, reports(fixture_text))
    assert not failed and not result["changed"] and result["action"] == "none"
    assert result["size_bytes"] == 268435456
    assert all(call[0] in ("vgs", "lvs") for call in calls)


def test_grow(run_module, fixture_text):
    grow = lvextend_argv("xenvg", "pvfx-disk", 536870912)
    outputs = reports(fixture_text)
    outputs[tuple(grow)] = (0, "", fixture_text(*LVM, "lvcreate-lvextend.stderr"))
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": "512M"}, outputs, check_mode=True,
                                       diff=True)
    assert not failed and result["changed"] and result["action"] == "extended"
    assert result["would_run"] == [grow]
    assert result["diff"]["before"]["size_bytes"] == 268435456 and result["diff"]["after"]["size_bytes"] == 536870912


def test_smaller_size_is_not_a_shrink_without_shrink(run_module, fixture_text):
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": "128M"}, reports(fixture_text))
    assert not failed and not result["changed"]
    assert result["lv"]["size_bytes"] == 268435456
    assert all(call[0] in ("vgs", "lvs") for call in calls)


def test_shrink_when_told(run_module, fixture_text):
    shrink = lvreduce_argv("xenvg", "pvfx-disk", 134217728)
    outputs = reports(fixture_text)
    outputs[tuple(shrink)] = (0, "", fixture_text(*LVM, "lvcreate-lvreduce.stderr"))
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": "128M", "shrink": True}, outputs,
                                       check_mode=True)
    assert not failed and result["action"] == "reduced" and result["would_run"] == [shrink]


# Open LVs in real recordings: pvfx-disk held open by a reader (lvcreate-lvs-open.json) and
# fxrec-disk, the disk of the running domU fxrec (lvs-domu.json); both "-wi-ao----".
@pytest.mark.parametrize("lvs, name, have", [
    ("lvcreate-lvs-open.json", "pvfx-disk", 268435456),
    ("lvs-domu.json", "fxrec-disk", 134217728),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_shrink_of_an_open_lv_is_refused_before_any_change(run_module, fixture_text, lvs, name, have, check_mode):
    shrink = lvreduce_argv("xenvg", name, have // 2)
    outputs = reports(fixture_text, lvs=lvs)
    outputs[tuple(shrink)] = (0, "", fixture_text(*LVM, "lvcreate-lvreduce.stderr"))
    result, failed, calls = run_module({"vg": "xenvg", "name": name, "size": str(have // 2), "shrink": True}, outputs,
                                       check_mode=check_mode)
    assert failed, result
    assert result["msg"] == ("hosta: LV xenvg/%s is open (in use, for example by a running domU); not shrinking it "
                             "from %d to %d bytes" % (name, have, have // 2))
    assert all(call[0] in ("vgs", "lvs") for call in calls)
    assert not result.get("would_run")


def test_vg_too_small_fails_before_any_change(run_module, fixture_text):
    outputs = reports(fixture_text)
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-big", "size": "64G"}, outputs)
    assert failed
    assert result["msg"].startswith("hosta: VG xenvg needs 68719476736 bytes (64 GiB) for LV pvfx-big, has ")
    assert "short" in result["msg"]
    assert all(call[0] in ("vgs", "lvs") for call in calls)


def test_growing_beyond_free_space_fails(run_module, fixture_text):
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": "60G"}, reports(fixture_text))
    assert failed and "needs" in result["msg"] and "more to grow" in result["msg"] and "free" in result["msg"] and "pvfx-disk" in result["msg"]


def test_missing_vg(run_module, fixture_text):
    result, failed, calls = run_module({"vg": "nosuchvg", "name": "pvfx-disk", "size": "1G"}, reports(fixture_text))
    assert failed and result["msg"] == "hosta: volume group nosuchvg does not exist"


def test_remove(run_module, fixture_text):
    remove = lvremove_argv("xenvg", "pvfx-disk")
    outputs = reports(fixture_text)
    outputs[tuple(remove)] = (0, "", "")
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "state": "absent"}, outputs, diff=True)
    assert not failed and result["changed"] and result["action"] == "removed" and result["lv"] is None
    assert remove in calls
    assert result["diff"]["after"] == {"state": "absent"}


def test_remove_absent_is_a_no_op(run_module, fixture_text):
    outputs = reports(fixture_text)
    outputs[tuple(lvs_argv(["xenvg"]))] = (0, empty_lvs(fixture_text), "")
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "state": "absent"}, outputs)
    assert not failed and not result["changed"]


def test_remove_open_lv_is_refused(run_module, fixture_text):
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "state": "absent"},
                                       reports(fixture_text, lvs="lvcreate-lvs-open.json"))
    assert failed and "is open" in result["msg"]
    assert all(call[0] in ("vgs", "lvs") for call in calls)


def test_lvremove_failure_goes_through_fail_from_error(run_module, fixture_text):
    remove = lvremove_argv("xenvg", "pvfx-disk")
    outputs = reports(fixture_text)
    outputs[tuple(remove)] = (5, "", fixture_text(*LVM, "lvcreate-lvremove-open.stderr"))
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "state": "absent"}, outputs)
    assert failed
    assert result["cmd"] == remove and result["rc"] == 5 and "in use" in result["stderr"] and "stdout" in result


def test_snapshot(run_module, fixture_text):
    snap = lvsnapshot_argv("xenvg", "pvfx-disk", "pvfx-snap", 67108864)
    outputs = reports(fixture_text)
    outputs[tuple(snap)] = (0, "", "")
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-snap", "snapshot_of": "pvfx-disk", "size": "64M"},
                                       outputs, check_mode=True)
    assert not failed and result["action"] == "snapshot" and result["would_run"] == [snap]


def test_snapshot_exists(run_module, fixture_text):
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-snap", "snapshot_of": "pvfx-disk", "size": "64M"},
                                       reports(fixture_text, lvs="lvcreate-lvs-snapshot.json"))
    assert not failed and not result["changed"]


def test_snapshot_name_taken_by_a_plain_lv(run_module, fixture_text):
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "snapshot_of": "mig1-disk", "size": "64M"},
                                       reports(fixture_text))
    assert failed and "not a snapshot" in result["msg"]


def test_snapshot_of_missing_origin(run_module, fixture_text):
    outputs = reports(fixture_text)
    outputs[tuple(lvs_argv(["xenvg"]))] = (0, empty_lvs(fixture_text), "")
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-snap", "snapshot_of": "pvfx-disk", "size": "64M"},
                                       outputs)
    assert failed and "origin LV xenvg/pvfx-disk" in result["msg"]


@pytest.mark.parametrize("name", ["web;rm-disk", "a b-disk", "../x", "web01/disk", "-rf", "$(id)", "web`id`"])
def test_bad_names_are_refused_before_any_command(run_module, name):
    result, failed, calls = run_module({"vg": "xenvg", "name": name, "size": "64M"}, {})
    assert failed and calls == []
    assert "invalid LVM LV name" in result["msg"] and "no spaces, shell metacharacters or /" in result["msg"]


@pytest.mark.parametrize("args", [
    {"vg": "xen vg", "name": "pvfx-disk", "size": "64M"},
    {"vg": "xenvg", "name": "pvfx-snap", "snapshot_of": "../x", "size": "64M"},
])
def test_bad_vg_and_origin_names(run_module, args):
    result, failed, calls = run_module(args, {})
    assert failed and calls == [] and "invalid LVM" in result["msg"]


@pytest.mark.parametrize("size, text", [("lots", "invalid size"), ("0", "more than 0"), ("1000", "multiple of 512")])
def test_bad_sizes_are_refused_before_any_command(run_module, size, text):
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk", "size": size}, {})
    assert failed and calls == [] and text in result["msg"]


def test_present_needs_a_size(run_module):
    result, failed, calls = run_module({"vg": "xenvg", "name": "pvfx-disk"}, {})
    assert failed and "size" in result["msg"] and calls == []
