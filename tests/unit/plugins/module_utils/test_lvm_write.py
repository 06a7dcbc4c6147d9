# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""LV sizes and the LV write primitives of lvm.py, on output recorded in the lab (lvm/2.03.16/lvcreate-*)."""

from __future__ import annotations

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.lvm import (
    Lvm,
    format_size,
    lv_is_open,
    check_stripes,
    fit_problem,
    lv_is_snapshot,
    lvcreate_argv,
    lvextend_argv,
    lvreduce_argv,
    lvremove_argv,
    lvs_argv,
    lvsnapshot_argv,
    parse_lvs,
    parse_size,
    parse_snapshot_size,
    parse_vgs,
    round_to_extents,
    snapshot_cow_bytes,
    vgmknodes_argv,
    vgs_argv,
)
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner
from ansible_collections.sanless.xen.tests.unit.conftest import recorded_capture, without_wipe

LVM = ("lvm", "2.03.16")
MIB = 1024 * 1024


@pytest.mark.parametrize("value, expected", [
    ("268435456", 268435456),
    (268435456, 268435456),
    ("256M", 256 * MIB),
    ("256m", 256 * MIB),
    ("256MiB", 256 * MIB),
    ("256MB", 256 * MIB),
    ("256mib", 256 * MIB),
    ("1G", 1024 * MIB),
    ("1.5G", 1536 * MIB),
    ("64G", 64 * 1024 * MIB),
    ("512", 512),
    ("512b", 512),
    ("512B", 512),
    ("4k", 4096),
    ("4KiB", 4096),
    ("1T", 1024 ** 4),
    (" 256M ", 256 * MIB),
    ("256 M", 256 * MIB),
])
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value, message", [
    ("", "invalid size"),
    ("M", "invalid size"),
    ("-256M", "invalid size"),
    ("256X", "invalid size"),
    ("256 MiBs", "invalid size"),
    ("1e9", "invalid size"),
    ("0", "more than 0"),
    ("0M", "more than 0"),
    (0, "more than 0"),
    (-512, "more than 0"),
    ("100000000", "multiple of 512"),
    ("1000", "multiple of 512"),
    ("1.3k", "whole number of bytes"),
    (True, "invalid size"),
    (None, "invalid size"),
    (1.5, "invalid size"),
    ("256M; rm -rf /", "invalid size"),
])
def test_parse_size_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        parse_size(value)


def test_parse_size_message_quotes_the_value():
    with pytest.raises(ValueError, match=r"'12 parsecs'"):
        parse_size("12 parsecs")


@pytest.mark.parametrize("size, text", [
    (268435456, "256 MiB"), (64 * 1024 * MIB, "64 GiB"), (8585740288, "8.0 GiB"), (512, "512 bytes"),
    (1536, "1.5 KiB"), (1024 ** 4, "1 TiB"),
])
def test_format_size(size, text):
    assert format_size(size) == text


@pytest.mark.parametrize("size, extent, expected", [
    (256 * MIB, 4 * MIB, 256 * MIB),
    (256 * MIB + 512, 4 * MIB, 260 * MIB),
    (512, 4 * MIB, 4 * MIB),
    (99999744, 4 * MIB, 100663296),
])
def test_round_to_extents(size, extent, expected):
    assert round_to_extents(size, extent) == expected


def test_round_to_extents_refuses_zero_extent():
    with pytest.raises(ValueError):
        round_to_extents(512, 0)


def test_argv_are_exact_and_safe():
    assert lvcreate_argv("xenvg", "web01-disk", 268435456) == [
        "lvcreate", "-q", "-y", "-W", "y", "-Z", "y", "-L", "268435456b", "-n", "web01-disk", "xenvg"]
    assert lvsnapshot_argv("xenvg", "web01-disk", "web01-snap", 67108864) == [
        "lvcreate", "-q", "-y", "-s", "-L", "67108864b", "-n", "web01-snap", "xenvg/web01-disk"]
    assert lvextend_argv("xenvg", "web01-disk", 536870912) == ["lvextend", "-q", "-L", "536870912b", "xenvg/web01-disk"]
    assert lvreduce_argv("xenvg", "web01-disk", 268435456) == [
        "lvreduce", "-q", "-f", "-L", "268435456b", "xenvg/web01-disk"]
    assert lvremove_argv("xenvg", "web01-disk") == ["lvremove", "-q", "-y", "xenvg/web01-disk"]
    assert vgmknodes_argv("xenvg", "web01-disk") == ["vgmknodes", "xenvg/web01-disk"]
    assert lvsnapshot_argv("xenvg", "web01-disk", "web01-snap", percent=20) == [
        "lvcreate", "-q", "-y", "-s", "-l", "20%ORIGIN", "-n", "web01-snap", "xenvg/web01-disk"]
    assert lvcreate_argv("xenvg", "web01-disk", 268435456, stripes=2, stripe_size_bytes=65536) == [
        "lvcreate", "-q", "-y", "-W", "y", "-Z", "y", "-i", "2", "-I", "65536b", "-L", "268435456b",
        "-n", "web01-disk", "xenvg"]
    assert lvcreate_argv("xenvg", "web01-disk", 268435456, stripes=1) == lvcreate_argv("xenvg", "web01-disk", 268435456)
    for both_or_neither in ({}, {"size_bytes": 512, "percent": 20}):
        with pytest.raises(ValueError, match="one of them"):
            lvsnapshot_argv("xenvg", "web01-disk", "web01-snap", **both_or_neither)


@pytest.mark.parametrize("name", ["web;rm", "a b", "../x", "x/y", "-x", "$(reboot)", "", ".", "..", "a\nb", "web`id`"])
@pytest.mark.parametrize("build", [
    lambda n: lvcreate_argv("xenvg", n, 512),
    lambda n: lvcreate_argv(n, "lv", 512),
    lambda n: lvextend_argv("xenvg", n, 512),
    lambda n: lvreduce_argv("xenvg", n, 512),
    lambda n: lvremove_argv("xenvg", n),
    lambda n: vgmknodes_argv(n, "lv"),
    lambda n: lvsnapshot_argv("xenvg", n, "snap", 512),
    lambda n: lvsnapshot_argv("xenvg", "origin", n, 512),
])
def test_argv_refuse_bad_names(name, build):
    with pytest.raises(ValueError, match="invalid LVM"):
        build(name)


def test_recorded_reports_after_create(fixture_text):
    lvs = parse_lvs(fixture_text(*LVM, "lvcreate-lvs-after.json"))
    disk = [lv for lv in lvs if lv["name"] == "pvfx-disk"][0]
    assert disk["size_bytes"] == 268435456
    assert disk["active"] and not lv_is_open(disk) and not lv_is_snapshot(disk)
    before = parse_vgs(fixture_text(*LVM, "lvcreate-vgs-before.json"))[0]
    after = parse_vgs(fixture_text(*LVM, "lvcreate-vgs-after.json"))[0]
    # The 256 MiB LV came out of the VG's free space, exactly.
    assert before["free_bytes"] - after["free_bytes"] == 268435456
    assert after["lv_count"] == before["lv_count"] + 1


def test_recorded_snapshot_and_open(fixture_text):
    lvs = {lv["name"]: lv for lv in parse_lvs(fixture_text(*LVM, "lvcreate-lvs-snapshot.json"))}
    assert lv_is_snapshot(lvs["pvfx-snap"]) and lvs["pvfx-snap"]["size_bytes"] == 67108864
    assert not lv_is_snapshot(lvs["pvfx-disk"])
    opened = {lv["name"]: lv for lv in parse_lvs(fixture_text(*LVM, "lvcreate-lvs-open.json"))}
    assert lv_is_open(opened["pvfx-disk"])


def _lvm(fake_module, fixture_text, check_mode=False, extra=None):
    outputs = {
        tuple(vgs_argv()): (0, fixture_text(*LVM, "lvcreate-vgs-before.json"), ""),
        tuple(lvs_argv(["xenvg"])): (0, fixture_text(*LVM, "lvcreate-lvs-after.json"), ""),
    }
    outputs.update(extra or {})
    module = fake_module(outputs, check_mode=check_mode)
    return module, Lvm(CommandRunner(module))


def test_find_and_find_vg(fake_module, fixture_text):
    _module, lvm = _lvm(fake_module, fixture_text)
    assert lvm.find_vg("xenvg")["extent_size_bytes"] == 4 * MIB
    assert lvm.find_vg("nope") is None
    assert lvm.find("xenvg", "pvfx-disk")["size_bytes"] == 268435456
    assert lvm.find("xenvg", "pvfx-none") is None


def test_create_runs_lvcreate(fake_module, fixture_text):
    argv = lvcreate_argv("xenvg", "pvfx-disk", 268435456)
    module, lvm = _lvm(fake_module, fixture_text, extra={
        tuple(argv): (0, "", fixture_text(*LVM, "lvcreate-pvfx-disk.stderr"))})
    result = lvm.create("xenvg", "pvfx-disk", 268435456)
    assert result.rc == 0 and not result.skipped
    assert module.calls[-1][0] == argv


def test_create_in_check_mode_runs_nothing(fake_module, fixture_text):
    module, lvm = _lvm(fake_module, fixture_text, check_mode=True)
    result = lvm.create("xenvg", "pvfx-disk", 268435456)
    assert result.skipped and module.calls == []
    assert lvm.runner.would_run == [lvcreate_argv("xenvg", "pvfx-disk", 268435456)]


@pytest.mark.parametrize("argv, stderr_file, text", [
    (lvcreate_argv("xenvg", "pvfx-disk", 268435456), "lvcreate-exists.stderr", "already exists"),
    (lvcreate_argv("xenvg", "pvfx-big", 68719476736), "lvcreate-nospace.stderr", "insufficient free space"),
    (lvremove_argv("xenvg", "pvfx-disk"), "lvcreate-lvremove-open.stderr", "in use"),
    (lvextend_argv("xenvg", "pvfx-disk", 536870912), "lvcreate-lvextend-same.stderr", "matches existing size"),
])
def test_lvm_failures_carry_rc_and_stderr(fake_module, fixture_text, argv, stderr_file, text):
    module, lvm = _lvm(fake_module, fixture_text, extra={tuple(argv): (5, "", fixture_text(*LVM, stderr_file))})
    with pytest.raises(CommandError) as info:
        lvm.runner.run(argv, changes_state=True)
    assert info.value.rc == 5 and text in info.value.stderr and text in info.value.msg
    assert info.value.cmd == argv


def test_resize_picks_the_verb(fake_module, fixture_text):
    grow = lvextend_argv("xenvg", "pvfx-disk", 536870912)
    shrink = lvreduce_argv("xenvg", "pvfx-disk", 268435456)
    module, lvm = _lvm(fake_module, fixture_text, extra={
        tuple(grow): (0, "", fixture_text(*LVM, "lvcreate-lvextend.stderr")),
        tuple(shrink): (0, "", fixture_text(*LVM, "lvcreate-lvreduce.stderr")),
    })
    assert lvm.resize("xenvg", "pvfx-disk", 536870912, 268435456).cmd == grow
    assert lvm.resize("xenvg", "pvfx-disk", 268435456, 536870912).cmd == shrink
    assert lvm.resize("xenvg", "pvfx-disk", 268435456, 268435456) is None
    assert [call[0] for call in module.calls] == [grow, shrink]


def test_snapshot_and_remove(fake_module, fixture_text):
    snap = lvsnapshot_argv("xenvg", "pvfx-disk", "pvfx-snap", 67108864)
    remove = lvremove_argv("xenvg", "pvfx-snap")
    module, lvm = _lvm(fake_module, fixture_text, extra={
        tuple(snap): (0, "", fixture_text(*LVM, "lvcreate-snapshot.stderr")),
        tuple(remove): (0, "", fixture_text(*LVM, "lvcreate-lvremove-snap.stderr")),
    })
    lvm.snapshot("xenvg", "pvfx-disk", "pvfx-snap", 67108864)
    lvm.remove("xenvg", "pvfx-snap")
    assert [call[0] for call in module.calls] == [snap, remove]
    for _argv, kwargs in module.calls:
        assert kwargs["environ_update"]["LANG"] == "C" and kwargs["expand_user_and_vars"] is False


# --------------------------------------------------------------------------- snapshots and stripes, recorded

def _lv(fixture_text, report, name):
    return [lv for lv in parse_lvs(fixture_text(*LVM, report)) if lv["name"] == name][0]


def test_recorded_snapshot_commands_are_ours(fake_module, fixture_text):
    """lvcreate -s by size, by %ORIGIN and one too big that LVM shrank, and lvremove, replayed."""
    snap = lvsnapshot_argv("xenvg", "fxs-origin", "fxs-snap", 16 * MIB)
    snap2 = lvsnapshot_argv("xenvg", "fxs-origin", "fxs-snap2", percent=50)
    snap3 = lvsnapshot_argv("xenvg", "fxs-origin", "fxs-snap3", 100 * 1024 * MIB)
    remove = lvremove_argv("xenvg", "fxs-snap")
    module = fake_module({
        tuple(snap): recorded_capture(fixture_text, LVM, "lvcreate-snapshot.json", snap),
        tuple(snap2): recorded_capture(fixture_text, LVM, "lvcreate-snapshot-percent.json", snap2),
        tuple(snap3): recorded_capture(fixture_text, LVM, "lvcreate-snapshot-too-big.json", snap3),
        tuple(remove): recorded_capture(fixture_text, LVM, "lvremove-snapshot.json", remove),
    })
    lvm = Lvm(CommandRunner(module))
    assert lvm.snapshot("xenvg", "fxs-origin", "fxs-snap", 16 * MIB).rc == 0
    assert lvm.snapshot("xenvg", "fxs-origin", "fxs-snap2", percent=50).rc == 0
    # rc 0: lvcreate cuts the COW down and says so only on stdout
    assert "Reducing COW size" in lvm.snapshot("xenvg", "fxs-origin", "fxs-snap3", 100 * 1024 * MIB).stdout
    assert lvm.remove("xenvg", "fxs-snap").rc == 0


def test_cow_sizes_predict_what_lvm_made(fixture_text):
    """The sizes lvs reported after those commands, from the origin's size and the extent size."""
    origin = _lv(fixture_text, "lvs-snapshot-overflowed.json", "fxs-origin")["size_bytes"]
    made = dict((name, _lv(fixture_text, "lvs-snapshot-overflowed.json", name)["size_bytes"])
                for name in ("fxs-snap", "fxs-snap2", "fxs-snap3"))
    extent = 4 * MIB
    assert snapshot_cow_bytes(parse_snapshot_size("16m"), origin, extent) == (made["fxs-snap"], False)
    assert snapshot_cow_bytes(parse_snapshot_size("50%ORIGIN"), origin, extent) == (made["fxs-snap2"], False)
    assert snapshot_cow_bytes(parse_snapshot_size("100g"), origin, extent) == (made["fxs-snap3"], True)
    assert made == {"fxs-snap": 16 * MIB, "fxs-snap2": 36 * MIB, "fxs-snap3": 68 * MIB}
    assert conv.cow_max_bytes(origin, extent) == 68 * MIB
    assert snapshot_cow_bytes(parse_snapshot_size("100%ORIGIN"), origin, extent) == (68 * MIB, False)


@pytest.mark.parametrize("value, expected", [
    ("20%ORIGIN", ("percent", 20)), ("20%origin", ("percent", 20)), (" 100 % ORIGIN ", ("percent", 100)),
    ("64M", ("bytes", 64 * MIB)), ("1g", ("bytes", 1024 * MIB)), (67108864, ("bytes", 67108864)),
])
def test_parse_snapshot_size(value, expected):
    assert parse_snapshot_size(value) == expected


@pytest.mark.parametrize("value, message", [
    ("0%ORIGIN", "1 to 100"), ("101%ORIGIN", "1 to 100"), ("20%", "N%ORIGIN"), ("20%VG", "N%ORIGIN"),
    ("20%FREE", "N%ORIGIN"), ("%ORIGIN", "N%ORIGIN"), ("lots", "invalid size"), ("20%ORIGIN;id", "N%ORIGIN"),
])
def test_parse_snapshot_size_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        parse_snapshot_size(value)


def test_recorded_striped_create_and_refusal(fake_module, fixture_text):
    striped = lvcreate_argv("fxstripevg", "fxs-striped", 128 * MIB, stripes=2, stripe_size_bytes=64 * 1024)
    too_many = lvcreate_argv("fxstripevg", "fxs-striped3", 64 * MIB, stripes=3)
    recorded = dict((tuple(argv), recorded_capture(fixture_text, LVM, name, without_wipe(argv)))
                    for argv, name in ((striped, "lvcreate-striped.json"), (too_many, "lvcreate-striped-too-many.json")))
    module = fake_module(recorded)
    lvm = Lvm(CommandRunner(module))
    assert lvm.create("fxstripevg", "fxs-striped", 128 * MIB, 2, 64 * 1024).rc == 0
    with pytest.raises(CommandError) as err:
        lvm.create("fxstripevg", "fxs-striped3", 64 * MIB, 3)
    assert err.value.rc == 5 and "must not exceed number of physical volumes (2)" in err.value.stderr


def test_stripes_checked_before_lvm(fixture_text):
    vg = parse_vgs(fixture_text(*LVM, "vgs-two-pvs.json"))[0]
    check_stripes(2, 64 * 1024, vg)
    check_stripes(None, None, vg)
    # what lvcreate says, before it runs
    with pytest.raises(ValueError, match=r"number of stripes \(3\) must not exceed number of physical volumes \(2\)"):
        check_stripes(3, None, vg)
    for size, message in ((3000, "power of 2"), (48 * 1024, "power of 2"), (8 * MIB, "larger than the extent size")):
        with pytest.raises(ValueError, match=message):
            check_stripes(2, size, vg)
    with pytest.raises(ValueError, match="1 to 128"):
        check_stripes(0, None, vg)
    # lvcreate's stripe boundary (recorded: 64 MiB on 3 stripes became 72 MiB)
    assert conv.striped_round_up(64 * MIB, 4 * MIB, 3) == 72 * MIB
    assert conv.striped_round_up(128 * MIB, 4 * MIB, 2) == 128 * MIB


def test_fit_problem_names_the_free_space(fixture_text):
    vg = parse_vgs(fixture_text(*LVM, "vgs-two-pvs.json"))[0]
    assert fit_problem(vg, 376 * MIB, "for LV x") is None
    assert fit_problem(vg, 400 * MIB, "for snapshot fxstripevg/s") == (
        "VG fxstripevg needs 419430400 bytes (400 MiB) for snapshot fxstripevg/s, has 394264576 bytes (376 MiB) "
        "free: 25165824 bytes (24 MiB) short")
