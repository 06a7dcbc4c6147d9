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
    lv_is_snapshot,
    lvcreate_argv,
    lvextend_argv,
    lvreduce_argv,
    lvremove_argv,
    lvs_argv,
    lvsnapshot_argv,
    parse_lvs,
    parse_size,
    parse_vgs,
    round_to_extents,
    vgmknodes_argv,
    vgs_argv,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner

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
