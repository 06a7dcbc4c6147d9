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
    lv_is_origin,
    lvs_argv,
    parse_lvs,
    parse_pvs,
    parse_vgs,
    pvs_argv,
    snapshot_alerts,
    snapshots_of,
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
        "attr": "-wi-ao----", "uuid": "AZpXLA-Razr-uyWr-NoX0-236n-w1Kn-sNQKai",
        # recorded with the fields before origin: those read as unknown
        "snapshot": False, "invalid": False, "origin": None, "data_percent": None, "created": None,
        "created_epoch": None, "segtype": None, "stripes": None, "stripe_size_bytes": None}
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
    ({"data_percent": "lots"}, "data_percent"),
    ({"stripes": "two"}, "stripes"),
    ({"stripe_size": "64.00k"}, "stripe_size"),
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


def recorded_command(fixture_text, name):
    """The command line the SOURCE file says recorded a fixture of lvm/2.03.16."""
    for line in fixture_text(*LVM + ("SOURCE",)).splitlines():
        if line.startswith(name + " "):
            return line.split(": ", 1)[1]
    raise AssertionError("%s is not in SOURCE" % name)


def test_argv(fixture_text):
    assert lvs_argv(["xenvg"]) == [
        "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
        "-o", "lv_name,vg_name,lv_attr,lv_size,lv_path,lv_dm_path,lv_active,lv_uuid,"
        "origin,data_percent,lv_time,segtype,stripes,stripe_size", "xenvg"]
    # the snapshot and stripe recordings were made with exactly these lvs and vgs commands
    for name in ("lvs-snapshot-empty.json", "lvs-snapshot-filled.json", "lvs-snapshot-overflowed.json"):
        assert recorded_command(fixture_text, name) == " ".join(lvs_argv(["xenvg"]))
    assert recorded_command(fixture_text, "lvs-striped.json") == " ".join(lvs_argv(["fxstripevg"]))
    assert recorded_command(fixture_text, "vgs-two-pvs.json") == " ".join(vgs_argv(["fxstripevg"]))
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


def _by_name(fixture_text, name):
    return dict((lv["name"], lv) for lv in parse_lvs(fixture_text(*LVM + (name,))))


def test_snapshot_empty_reports_origin_fill_and_time(fixture_text):
    lvs = _by_name(fixture_text, "lvs-snapshot-empty.json")
    origin, snap = lvs["fxs-origin"], lvs["fxs-snap"]
    assert not origin["snapshot"] and origin["origin"] is None and origin["data_percent"] is None
    assert lv_is_origin(origin) and not lv_is_origin(snap)
    assert snap["snapshot"] and not snap["invalid"] and snap["origin"] == "fxs-origin"
    assert snap["data_percent"] == 0.0 and snap["size_bytes"] == 16 * 1024 * 1024
    assert snap["created"] == "2026-12-04 04:39:37 +0000"
    assert snap["created_epoch"] == 1796359177  # 2026-12-04T04:39:37Z
    assert (snap["segtype"], snap["stripes"], snap["stripe_size_bytes"]) == ("linear", 1, 0)


def test_snapshot_filled_and_overflowed(fixture_text):
    assert _by_name(fixture_text, "lvs-snapshot-filled.json")["fxs-snap"]["data_percent"] == 37.7
    lvs = _by_name(fixture_text, "lvs-snapshot-overflowed.json")
    assert lvs["fxs-snap"]["invalid"] and lvs["fxs-snap"]["data_percent"] == 100.0
    assert lvs["fxs-snap"]["active"] and not lvs["fxs-snap"]["suspended"]  # attr "swi-I-s---"
    assert not lvs["fxs-snap2"]["invalid"] and lvs["fxs-snap2"]["data_percent"] == 66.95
    assert [lv["name"] for lv in snapshots_of(list(lvs.values()), "xenvg", "fxs-origin")] == [
        "fxs-snap", "fxs-snap2", "fxs-snap3"]
    assert snapshots_of(list(lvs.values()), "othervg", "fxs-origin") == []


def test_striped_lv(fixture_text):
    lv = _by_name(fixture_text, "lvs-striped.json")["fxs-striped"]
    assert (lv["segtype"], lv["stripes"], lv["stripe_size_bytes"]) == ("striped", 2, 65536)
    assert lv["size_bytes"] == 128 * 1024 * 1024 and not lv["snapshot"]
    vg = parse_vgs(fixture_text(*LVM + ("vgs-two-pvs.json",)))[0]
    assert (vg["pv_count"], vg["free_bytes"]) == (2, 528482304 - 134217728)


def test_lv_time_in_another_format_is_unknown_not_an_error(fixture_text):
    lv = parse_lvs(_edit(fixture_text(*LVM + ("lvs-snapshot-filled.json",)), "lv", lv_time="Fri Dec  4 04:39"))[0]
    assert lv["created"] == "Fri Dec  4 04:39" and lv["created_epoch"] is None


HOUR = 3600
SNAP_TIME = 1796359177


def test_snapshot_alerts_fill_invalid_and_age(fixture_text):
    lvs = parse_lvs(fixture_text(*LVM + ("lvs-snapshot-overflowed.json",)))
    # just after they were made: the overflowed one and fxs-snap2 (66.95 %) at 50 %
    alerts = snapshot_alerts(lvs, SNAP_TIME + 60, max_age_hours=24, max_fill_pct=50)
    assert [(a["name"], a["reasons"]) for a in alerts] == [
        ("fxs-snap", ["invalid: its copy-on-write space overflowed"]),
        ("fxs-snap2", ["67.0% full (over 50%)"])]
    assert alerts[0]["origin"] == "fxs-origin" and alerts[0]["invalid"] and alerts[0]["age_hours"] == 0.0
    # a day and a half later: every snapshot, never the origin
    alerts = snapshot_alerts(lvs, SNAP_TIME + 36 * HOUR, max_age_hours=24, max_fill_pct=80)
    assert [a["name"] for a in alerts] == ["fxs-snap", "fxs-snap2", "fxs-snap3"]
    assert alerts[2]["reasons"] == ["36.0 h old (over 24 h)"] and alerts[2]["data_percent"] == 35.44


def test_snapshot_alerts_nothing_to_say(fixture_text):
    assert snapshot_alerts(parse_lvs(fixture_text(*LVM + ("lvs-snapshot-empty.json",))), SNAP_TIME + HOUR) == []
    assert snapshot_alerts(parse_lvs(fixture_text(*LVM + ("lvs-striped.json",))), SNAP_TIME + 99 * HOUR) == []
    # no time known: fill alone decides
    assert snapshot_alerts(parse_lvs(fixture_text(*LVM + ("lvs-snapshot-filled.json",))), None, max_fill_pct=30)[0][
        "age_hours"] is None
