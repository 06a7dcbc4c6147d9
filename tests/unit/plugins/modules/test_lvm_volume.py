# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.lvm_volume, run whole with commands replayed from lab recordings (lvm/2.03.16).

Snapshots and stripes run on the lvmsnap recordings: lvcreate -s by size and by %ORIGIN, lvremove,
lvs of the snapshots empty/filled/overflowed, a 2-stripe LV on a two-PV VG. The xenvg vgs of those
runs was not recorded: lvcreate-vgs-before.json stands in."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils import basic

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
from ansible_collections.sanless.xen.tests.unit.conftest import recorded_capture, without_wipe

LVM = ("lvm", "2.03.16")
MIB = 1024 * 1024


@pytest.fixture
def run_module(module_main, monkeypatch):
    def run(args, outputs, check_mode=False, diff=False):
        warned = []
        monkeypatch.setattr(lvm_volume.socket, "gethostname", lambda: "hosta")
        monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
        result, failed, calls = module_main(lvm_volume.main, args, outputs, check_mode, diff)
        if warned:
            result["warnings"] = warned  # what AnsibleModule.exit_json would add
        return result, failed, calls
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


# --------------------------------------------------------------------------- snapshots (lvmsnap recordings)

def lvs_without(fixture_text, name, *gone):
    """A recorded lvs report without some LVs: what lvs showed before they were made."""
    data = json.loads(fixture_text(*LVM + (name,)))
    data["report"][0]["lv"] = [lv for lv in data["report"][0]["lv"] if lv["lv_name"] not in gone]
    return (0, json.dumps(data), "")


def lvs(fixture_text, name):
    return (0, fixture_text(*LVM + (name,)), "")


def xenvg(fixture_text, *lvs_outputs, free=None):
    vgs = fixture_text(*LVM + ("lvcreate-vgs-before.json",))
    if free is not None:
        data = json.loads(vgs)
        data["report"][0]["vg"][0]["vg_free"] = str(free)
        vgs = json.dumps(data)
    return {tuple(vgs_argv()): (0, vgs, ""), tuple(lvs_argv(["xenvg"])): list(lvs_outputs)}


def changes(calls):
    return [argv for argv in calls if argv[0] in ("lvcreate", "lvextend", "lvreduce", "lvremove")]


SNAP_ARGS = {"vg": "xenvg", "name": "fxs-snap", "snapshot_of": "fxs-origin", "size": "16m"}


def test_snapshot_by_size(run_module, fixture_text):
    snap = lvsnapshot_argv("xenvg", "fxs-origin", "fxs-snap", 16 * MIB)
    outputs = xenvg(fixture_text, lvs_without(fixture_text, "lvs-snapshot-empty.json", "fxs-snap"),
                    lvs(fixture_text, "lvs-snapshot-empty.json"))
    outputs[tuple(snap)] = recorded_capture(fixture_text, LVM, "lvcreate-snapshot.json", snap)
    result, failed, calls = run_module(SNAP_ARGS, outputs, diff=True)
    assert not failed and result["changed"] and result["action"] == "snapshot"
    assert changes(calls) == [snap]
    assert result["lv"] == {"vg": "xenvg", "name": "fxs-snap", "size_bytes": 16 * MIB, "path": "/dev/xenvg/fxs-snap",
                            "snapshot": True, "origin": "fxs-origin", "data_percent": 0.0, "stripes": 1,
                            "stripe_size_bytes": 0}
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"] == {"state": "present", "size_bytes": 16 * MIB, "snapshot_of": "fxs-origin"}
    assert not result.get("warnings")


def test_snapshot_second_run_changes_nothing(run_module, fixture_text):
    result, failed, calls = run_module(SNAP_ARGS, xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-filled.json")))
    assert not failed and not result["changed"] and result["action"] == "none" and changes(calls) == []
    assert result["lv"]["data_percent"] == 37.7  # the fill is reported


def test_snapshot_check_mode_runs_nothing(run_module, fixture_text):
    outputs = xenvg(fixture_text, lvs_without(fixture_text, "lvs-snapshot-empty.json", "fxs-snap"))
    result, failed, calls = run_module(SNAP_ARGS, outputs, check_mode=True, diff=True)
    assert not failed and result["changed"] and changes(calls) == []
    assert result["would_run"] == [lvsnapshot_argv("xenvg", "fxs-origin", "fxs-snap", 16 * MIB)]
    assert result["lv"]["size_bytes"] == 16 * MIB and result["lv"]["origin"] == "fxs-origin"


def test_snapshot_by_percent_of_origin(run_module, fixture_text):
    snap2 = lvsnapshot_argv("xenvg", "fxs-origin", "fxs-snap2", percent=50)
    outputs = xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-filled.json"),
                    lvs_without(fixture_text, "lvs-snapshot-overflowed.json", "fxs-snap3"))
    outputs[tuple(snap2)] = recorded_capture(fixture_text, LVM, "lvcreate-snapshot-percent.json", snap2)
    args = dict(SNAP_ARGS, name="fxs-snap2", size="50%ORIGIN")
    result, failed, calls = run_module(args, outputs)
    assert not failed and result["changed"] and changes(calls) == [snap2]
    # 50 % of the 68 MiB a 64 MiB origin's COW can use, in whole extents: planned and made
    assert result["size_bytes"] == 36 * MIB and result["lv"]["size_bytes"] == 36 * MIB
    assert not result.get("warnings")
    again, failed, calls = run_module(args, xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-overflowed.json")))
    assert not failed and not again["changed"] and changes(calls) == []


def test_oversized_snapshot_is_cut_as_lvm_would_and_a_rerun_is_idempotent(run_module, fixture_text):
    """lvcreate -L 100g made a 68 MiB COW (lvcreate-snapshot-too-big.json): the module plans that size,
    says so, and a second run with the same 100g sees nothing to do (no endless lvextend)."""
    args = dict(SNAP_ARGS, name="fxs-snap3", size="100g")
    result, failed, calls = run_module(args, xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-filled.json")),
                                       check_mode=True)
    assert not failed and result["changed"] and result["size_bytes"] == 68 * MIB
    assert result["would_run"] == [lvsnapshot_argv("xenvg", "fxs-origin", "fxs-snap3", 68 * MIB)]
    assert any("more than a snapshot of the 64 MiB origin fxs-origin can use; 68 MiB" in w for w in result["warnings"])
    again, failed, calls = run_module(args, xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-overflowed.json")))
    assert not failed and not again["changed"] and changes(calls) == [] and again["lv"]["size_bytes"] == 68 * MIB


def test_snapshot_that_cannot_fit_is_refused_before_any_change(run_module, fixture_text):
    outputs = xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-filled.json"), free=8 * MIB)
    for check_mode in (False, True):
        result, failed, calls = run_module(dict(SNAP_ARGS, name="fxs-snap2", size="50%ORIGIN"), outputs,
                                           check_mode=check_mode)
        assert failed and changes(calls) == [] and not result.get("would_run")
        assert result["msg"] == ("hosta: VG xenvg needs 37748736 bytes (36 MiB) for snapshot fxs-snap2 of fxs-origin "
                                 "(36 MiB of copy-on-write space), has 8388608 bytes (8 MiB) free: 29360128 bytes "
                                 "(28 MiB) short")


def test_snapshot_problems(run_module, fixture_text):
    filled = lvs(fixture_text, "lvs-snapshot-filled.json")
    result, failed, calls = run_module(dict(SNAP_ARGS, snapshot_of="fxs-other"), xenvg(fixture_text, filled))
    assert failed and "is a snapshot of fxs-origin, not of fxs-other" in result["msg"] and changes(calls) == []
    result, failed, calls = run_module(dict(SNAP_ARGS, name="fxs-origin", snapshot_of="fxs-snap"),
                                       xenvg(fixture_text, filled))
    assert failed and "exists and is not a snapshot" in result["msg"]
    result, failed, calls = run_module(dict(SNAP_ARGS, name="fxs-snap9", snapshot_of="nosuch"),
                                       xenvg(fixture_text, filled))
    assert failed and "origin LV xenvg/nosuch of the snapshot does not exist" in result["msg"]


def test_removing_an_origin_with_snapshots_is_refused(run_module, fixture_text):
    for check_mode in (False, True):
        result, failed, calls = run_module({"vg": "xenvg", "name": "fxs-origin", "state": "absent"},
                                           xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-overflowed.json")),
                                           check_mode=check_mode)
        assert failed and changes(calls) == [] and not result.get("would_run")
        assert result["msg"] == ("hosta: LV xenvg/fxs-origin is the origin of the snapshots fxs-snap, fxs-snap2, "
                                 "fxs-snap3; not removing it (remove them first)")


def test_remove_snapshot(run_module, fixture_text):
    remove = lvremove_argv("xenvg", "fxs-snap")
    outputs = xenvg(fixture_text, lvs(fixture_text, "lvs-snapshot-filled.json"))
    outputs[tuple(remove)] = recorded_capture(fixture_text, LVM, "lvremove-snapshot.json", remove)
    result, failed, calls = run_module({"vg": "xenvg", "name": "fxs-snap", "state": "absent"}, outputs, diff=True)
    assert not failed and result["changed"] and result["action"] == "removed" and changes(calls) == [remove]
    assert result["diff"]["before"] == {"state": "present", "size_bytes": 16 * MIB, "snapshot_of": "fxs-origin"}
    again, failed, calls = run_module({"vg": "xenvg", "name": "fxs-snap", "state": "absent"},
                                      xenvg(fixture_text, lvs_without(fixture_text, "lvs-snapshot-filled.json", "fxs-snap")))
    assert not failed and not again["changed"] and changes(calls) == []


# --------------------------------------------------------------------------- stripes

STRIPED = {"vg": "fxstripevg", "name": "fxs-striped", "size": "128m", "stripes": 2, "stripe_size": "64k"}


def stripevg(fixture_text, *lvs_outputs):
    """vgs-two-pvs.json was recorded after the striped LV was made (376 MiB free, enough for it again)."""
    return {tuple(vgs_argv()): (0, fixture_text(*LVM + ("vgs-two-pvs.json",)), ""),
            tuple(lvs_argv(["fxstripevg"])): list(lvs_outputs)}


def test_striped_lv(run_module, fixture_text):
    create = lvcreate_argv("fxstripevg", "fxs-striped", 128 * MIB, 2, 64 * 1024)
    outputs = stripevg(fixture_text, lvs_without(fixture_text, "lvs-striped.json", "fxs-striped"),
                       lvs(fixture_text, "lvs-striped.json"))
    outputs[tuple(create)] = recorded_capture(fixture_text, LVM, "lvcreate-striped.json", without_wipe(create))
    result, failed, calls = run_module(STRIPED, outputs, diff=True)
    assert not failed and result["changed"] and result["action"] == "created" and changes(calls) == [create]
    assert (result["lv"]["stripes"], result["lv"]["stripe_size_bytes"]) == (2, 65536)
    assert result["diff"]["after"] == {"state": "present", "size_bytes": 128 * MIB, "stripes": 2,
                                       "stripe_size_bytes": 65536}
    again, failed, calls = run_module(STRIPED, stripevg(fixture_text, lvs(fixture_text, "lvs-striped.json")))
    assert not failed and not again["changed"] and changes(calls) == []


def test_too_many_stripes_refused_before_lvcreate(run_module, fixture_text):
    """What lvcreate -i 3 said on this VG (lvcreate-striped-too-many.json), said before it runs."""
    recorded = json.loads(fixture_text(*LVM + ("lvcreate-striped-too-many.json",)))["stderr"].strip()
    args = dict(STRIPED, name="fxs-striped3", size="64m", stripes=3)
    del args["stripe_size"]
    result, failed, calls = run_module(args, stripevg(fixture_text, lvs(fixture_text, "lvs-striped.json")))
    assert failed and changes(calls) == []
    assert recorded.lower() in result["msg"].lower()


def test_striped_growth_rounds_to_the_stripe_boundary(run_module, fixture_text):
    # 130 MiB on 2 stripes of 4 MiB extents: 136 MiB, as lvextend allocates it
    result, failed, calls = run_module(dict(STRIPED, size="130m"),
                                       stripevg(fixture_text, lvs(fixture_text, "lvs-striped.json")), check_mode=True)
    assert not failed and result["action"] == "extended"
    assert result["would_run"] == [lvextend_argv("fxstripevg", "fxs-striped", 136 * MIB)]


def test_no_restriping(run_module, fixture_text):
    striped = stripevg(fixture_text, lvs(fixture_text, "lvs-striped.json"))
    result, failed, calls = run_module(dict(STRIPED, stripes=1, stripe_size=None), striped)
    assert failed and "has 2 stripes, not 1; lvm_volume does not restripe" in result["msg"]
    result, failed, calls = run_module(dict(STRIPED, stripe_size="128k"), striped)
    assert failed and "has stripes of 64 KiB, not 128 KiB" in result["msg"] and changes(calls) == []


def test_striped_lv_that_cannot_fit(run_module, fixture_text):
    result, failed, calls = run_module(dict(STRIPED, name="fxs-big", size="400m"),
                                       stripevg(fixture_text, lvs(fixture_text, "lvs-striped.json")))
    assert failed and changes(calls) == []
    assert "needs 419430400 bytes (400 MiB) for LV fxs-big, has 394264576 bytes (376 MiB) free" in result["msg"]


@pytest.mark.parametrize("args, text", [
    ({"vg": "xenvg", "name": "a", "size": "20%ORIGIN"}, "is for snapshots"),
    ({"vg": "xenvg", "name": "a", "size": "0%ORIGIN", "snapshot_of": "b"}, "1 to 100"),
    ({"vg": "xenvg", "name": "a", "size": "20%FREE", "snapshot_of": "b"}, "N%ORIGIN"),
    ({"vg": "xenvg", "name": "a", "size": "64m", "snapshot_of": "a"}, "snapshot of itself"),
    ({"vg": "xenvg", "name": "a", "size": "64m", "snapshot_of": "b", "stripes": 2}, "mutually exclusive"),
    ({"vg": "xenvg", "name": "a", "size": "64m", "stripe_size": "64k"}, "stripes"),
    ({"vg": "xenvg", "name": "a", "size": "64m", "stripes": 0}, "1 to 128"),
    ({"vg": "xenvg", "name": "a", "size": "64m", "stripes": 2, "stripe_size": "64q"}, "invalid size"),
    ({"vg": "xenvg", "name": "a", "size": "64m", "stripes": 2, "stripe_size": "3k"}, "power of 2"),
])
def test_bad_input_refused_before_any_command(run_module, args, text):
    result, failed, calls = run_module(args, {})
    assert failed and calls == [] and text in result["msg"]


def test_bad_stripe_size_refused_before_any_change(run_module, fixture_text):
    result, failed, calls = run_module(dict(STRIPED, name="fxs-new", stripe_size="48k"),
                                       stripevg(fixture_text, lvs(fixture_text, "lvs-striped.json")))
    assert failed and changes(calls) == [] and "power of 2" in result["msg"]
