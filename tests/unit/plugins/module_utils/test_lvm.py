# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.lvm import (
    Lvm,
    LvmParseError,
    dm_name,
    lvs_argv,
    parse_lvs,
    parse_pvs,
    parse_vgs,
    pvs_argv,
    vgs_argv,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner

LVM = ("lvm", "2.03.16")


def test_lvs_active_inactive_suspended(fixture_text):
    lvs = parse_lvs(fixture_text(*LVM + ("lvs-domu.json",)))
    by_name = dict((lv["name"], lv) for lv in lvs)
    disk = by_name["fxrec-disk"]
    assert disk == {
        "vg": "xenvg", "name": "fxrec-disk", "size_bytes": 134217728, "path": "/dev/xenvg/fxrec-disk",
        "dm_path": "/dev/mapper/xenvg-fxrec--disk", "active": True, "suspended": False,
        "attr": "-wi-ao----", "uuid": "AZpXLA-Razr-uyWr-NoX0-236n-w1Kn-sNQKai"}
    assert by_name["fxrec-off"]["active"] is False  # lvchange -an: lv_active is ""
    assert by_name["fxrec-susp"]["active"] is True
    assert by_name["fxrec-susp"]["suspended"] is True  # dmsetup suspend: attr "-wi-s-----"
    assert by_name["fxrec-susp"]["size_bytes"] == 8 * 1024 * 1024


def test_lvs_empty_vg(fixture_text):
    assert parse_lvs(fixture_text(*LVM + ("lvs.json",))) == []


def test_vgs(fixture_text):
    assert parse_vgs(fixture_text(*LVM + ("vgs.json",))) == [{
        "name": "xenvg", "size_bytes": 8585740288, "free_bytes": 8585740288, "pv_count": 1, "lv_count": 0,
        "extent_size_bytes": 4194304, "attr": "wz--n-", "uuid": "n4a6Sd-1aIi-nTZ1-qy0e-Za95-9w5D-3weR2r"}]


def test_pvs(fixture_text):
    pvs = parse_pvs(fixture_text(*LVM + ("pvs.json",)))
    assert pvs == [{"name": "/dev/vdb", "vg": "xenvg", "size_bytes": 8585740288, "free_bytes": 8585740288,
                    "dev_size_bytes": 8589934592, "attr": "a--", "uuid": "ke2Dwa-cauA-ABhm-BWss-daRI-hbyy-R7xF7P"}]


def _edit(text, kind, **changes):
    data = json.loads(text)
    data["report"][0][kind][0].update(changes)
    return json.dumps(data)


@pytest.mark.parametrize("change, message", [
    ({"lv_size": "128.00m"}, "plain byte count"),
    ({"lv_size": "134217728B"}, "plain byte count"),
    ({"lv_attr": "-wi"}, "too short"),
])
def test_lvs_malformed_values(fixture_text, change, message):
    with pytest.raises(LvmParseError, match=message):
        parse_lvs(_edit(fixture_text(*LVM + ("lvs-domu.json",)), "lv", **change))


def test_lvs_missing_field(fixture_text):
    data = json.loads(fixture_text(*LVM + ("lvs-domu.json",)))
    del data["report"][0]["lv"][0]["lv_dm_path"]
    with pytest.raises(LvmParseError, match="lv_dm_path"):
        parse_lvs(json.dumps(data))


@pytest.mark.parametrize("text, message", [
    ("", "invalid JSON"),
    ("  LV   VG   Attr\n", "invalid JSON"),
    ('{"report": {}}', "report"),
    ('{"report": [{"vg": []}]}', "no 'lv' section"),
    ('{"report": [{"lv": {}}]}', "not a list"),
])
def test_lvs_malformed_documents(text, message):
    with pytest.raises(LvmParseError, match=message):
        parse_lvs(text)


def test_vgs_count_must_be_number(fixture_text):
    with pytest.raises(LvmParseError, match="pv_count"):
        parse_vgs(_edit(fixture_text(*LVM + ("vgs.json",)), "vg", pv_count="one"))


def test_argv():
    assert lvs_argv(["xenvg"]) == [
        "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
        "-o", "lv_name,vg_name,lv_attr,lv_size,lv_path,lv_dm_path,lv_active,lv_uuid", "xenvg"]
    assert vgs_argv()[:6] == ["vgs", "--reportformat", "json", "--units", "b", "--nosuffix"]
    assert pvs_argv()[0] == "pvs"
    for bad in ("-xenvg", "a b", "..", "vg/lv", ""):
        with pytest.raises(ValueError):
            lvs_argv([bad])


def test_dm_name():
    assert dm_name("xenvg", "fxrec-disk") == "xenvg-fxrec--disk"
    assert dm_name("my-vg", "a-b-c") == "my--vg-a--b--c"


def test_lvm_wrapper_replays_recorded_output(fake_module, fixture_text):
    module = fake_module({
        tuple(lvs_argv(["xenvg"])): (0, fixture_text(*LVM + ("lvs-domu.json",)), ""),
        tuple(vgs_argv()): (0, fixture_text(*LVM + ("vgs.json",)), ""),
        tuple(pvs_argv()): (0, fixture_text(*LVM + ("pvs.json",)), ""),
    })
    lvm = Lvm(CommandRunner(module))
    assert len(lvm.lvs(["xenvg"])) == 4
    assert lvm.vgs()[0]["free_bytes"] == 8585740288
    assert lvm.pvs()[0]["name"] == "/dev/vdb"
    assert all(call[1]["environ_update"]["LC_ALL"] == "C" for call in module.calls)
