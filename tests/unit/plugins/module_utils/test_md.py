# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""md.py on the lab recordings (mdadm 4.2, kernel 6.1): a RAID1 of two LVs with a write-intent bitmap through
resync, clean, a failed leg, its removal, its re-add with bitmap recovery and clean again."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import md
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner
from ansible_collections.sanless.xen.tests.unit.conftest import FakeModule

MDADM = ("mdadm", "4.2")
# The recorded legs: LVs whose device-mapper nodes mdadm --detail prints.
DM = {"/dev/xenvg/fxmd-a": "/dev/dm-0", "/dev/xenvg/fxmd-b": "/dev/dm-1"}


def resolve(path):
    return DM.get(path, path)


def mdstat(fixture_text, name):
    return md.parse_mdstat(fixture_text(*MDADM + ("mdstat-%s.txt" % name,)))


def detail(fixture_text, name):
    return md.parse_detail(fixture_text(*MDADM + ("detail-%s.txt" % name,)))


def recorded(fixture_text, name):
    """(rc, stdout, stderr) of a recorded command, and its argv."""
    data = json.loads(fixture_text(*MDADM + (name + ".json",)))
    return data["argv"], (data["rc"], data["stdout"], data["stderr"])


def test_mdstat_clean_and_resync(fixture_text):
    clean = mdstat(fixture_text, "clean")
    assert clean["personalities"][:4] == ["linear", "multipath", "raid0", "raid1"]
    assert clean["arrays"]["md90"] == {
        "name": "md90", "active": True, "read_only": None, "level": "raid1",
        "members": [{"device": "dm-1", "slot": 1, "flags": []}, {"device": "dm-0", "slot": 0, "flags": []}],
        "blocks": 64512, "metadata": "1.2", "raid_disks": 2, "working_disks": 2, "map": "UU", "sync": None,
        "bitmap": {"pages_used": 0, "pages": 1, "kib": 0, "chunk_kib": 65536, "file": None}}
    resync = mdstat(fixture_text, "resync")["arrays"]["md90"]
    assert resync["map"] == "UU" and resync["sync"] == {
        "action": "resync", "percent": 19.6, "done_blocks": 12928, "total_blocks": 64512, "finish_min": 0.7,
        "speed_kib_s": 1175, "pending": False}
    assert resync["bitmap"]["pages_used"] == 1 and resync["bitmap"]["kib"] == 4


def test_mdstat_faulty_degraded_recovery_empty(fixture_text):
    faulty = mdstat(fixture_text, "faulty")["arrays"]["md90"]
    assert faulty["members"][0] == {"device": "dm-1", "slot": 1, "flags": ["faulty"]}
    assert (faulty["raid_disks"], faulty["working_disks"], faulty["map"]) == (2, 1, "U_")
    degraded = mdstat(fixture_text, "degraded")["arrays"]["md90"]
    assert [m["device"] for m in degraded["members"]] == ["dm-0"] and degraded["map"] == "U_"
    recovery = mdstat(fixture_text, "recovery")["arrays"]["md90"]
    assert recovery["map"] == "U_" and recovery["sync"]["action"] == "recovery"
    assert (recovery["sync"]["percent"], recovery["sync"]["done_blocks"]) == (18.1, 11904)
    assert mdstat(fixture_text, "clean-after-re-add")["arrays"]["md90"]["map"] == "UU"
    assert mdstat(fixture_text, "empty")["arrays"] == {}


def test_mdstat_forms_not_in_the_recordings():
    # the kernel's other forms of the same lines (md.c: md_seq_show, status_resync)
    text = ("Personalities : [raid1]\n"
            "md127 : inactive xvdc[1](S)\n      64512 blocks super 1.2\n\n"
            "md0 : active (auto-read-only) raid1 xvdb[0] xvdc[2](W)(R)\n"
            "      64512 blocks super 1.2 [2/2] [UU]\n"
            "        resync=PENDING\n"
            "      bitmap: 0/1 pages [0KB], 65536KB chunk, file: /bm\n\nunused devices: <none>\n")
    arrays = md.parse_mdstat(text)["arrays"]
    assert not arrays["md127"]["active"] and arrays["md127"]["members"][0]["flags"] == ["spare"]
    assert arrays["md0"]["read_only"] == "auto-read-only" and arrays["md0"]["level"] == "raid1"
    assert arrays["md0"]["members"][1]["flags"] == ["write_mostly", "replacement"]
    assert arrays["md0"]["sync"]["pending"] and arrays["md0"]["bitmap"]["file"] == "/bm"
    with pytest.raises(md.MdParseError):
        md.parse_mdstat("md0 : weird raid1 a[0]\n")
    with pytest.raises(md.MdParseError):
        md.parse_mdstat("md0 : active raid1 a(0)\n")


def test_detail_clean(fixture_text):
    clean = detail(fixture_text, "clean")
    assert {k: clean[k] for k in ("device", "version", "level", "array_size_kib", "raid_devices", "total_devices",
                                  "state", "active_devices", "failed_devices", "bitmap", "consistency_policy",
                                  "sync", "name", "uuid", "events")} == {
        "device": "/dev/md90", "version": "1.2", "level": "raid1", "array_size_kib": 64512, "raid_devices": 2,
        "total_devices": 2, "state": ["clean"], "active_devices": 2, "failed_devices": 0, "bitmap": "Internal",
        "consistency_policy": "bitmap", "sync": None, "name": "hostc:fxmd",
        "uuid": "3bcf7815:a5712de0:e16bfbc3:f1e44bde", "events": 21}
    assert clean["legs"] == [
        {"number": 0, "major": 252, "minor": 0, "raid_device": 0, "state": ["active", "sync"], "status": "in_sync",
         "device": "/dev/dm-0"},
        {"number": 1, "major": 252, "minor": 1, "raid_device": 1, "state": ["active", "sync"], "status": "in_sync",
         "device": "/dev/dm-1"}]


def test_detail_through_a_leg_failure_and_re_add(fixture_text):
    resync = detail(fixture_text, "resync")
    assert resync["state"] == ["clean", "resyncing"] and resync["sync"] == {"action": "resync", "percent": 37.0}
    faulty = detail(fixture_text, "faulty")
    assert faulty["state"] == ["clean", "degraded"] and faulty["failed_devices"] == 1
    assert [(leg["number"], leg["raid_device"], leg["status"], leg["device"]) for leg in faulty["legs"]] == [
        (0, 0, "in_sync", "/dev/dm-0"), (None, 1, "removed", None), (1, None, "faulty", "/dev/dm-1")]
    degraded = detail(fixture_text, "degraded")
    assert [leg["status"] for leg in degraded["legs"]] == ["in_sync", "removed"]
    recovery = detail(fixture_text, "recovery")
    assert recovery["sync"] == {"action": "recovery", "percent": 24.0}
    assert recovery["legs"][1]["state"] == ["spare", "rebuilding"] and recovery["legs"][1]["status"] == "rebuilding"


def test_detail_garbage_is_an_error():
    with pytest.raises(md.MdParseError):
        md.parse_detail("")
    with pytest.raises(md.MdParseError):
        md.parse_detail("/dev/md0:\n   Version : 1.2\n")


def test_examine(fixture_text):
    leg = md.parse_examine(fixture_text(*MDADM + ("examine-leg.txt",)))
    assert leg == {"device": "/dev/xenvg/fxmd-b", "array_uuid": "3bcf7815:a5712de0:e16bfbc3:f1e44bde",
                   "device_uuid": "4bae83a0:03bd3a7b:94c8b57f:bea47ad2", "name": "hostc:fxmd", "level": "raid1",
                   "raid_devices": 2, "state": "clean", "events": 21, "role": 1, "array_state": "AA", "bitmap": True}
    # the leg belongs to the recorded array
    assert leg["array_uuid"] == detail(fixture_text, "clean")["uuid"]


@pytest.mark.parametrize("name, state, degraded, in_sync, action", [
    ("resync", "resyncing", False, 2, "resync"),
    ("clean", "clean", False, 2, None),
    ("faulty", "degraded", True, 1, None),
    ("degraded", "degraded", True, 1, None),
    ("recovery", "recovering", True, 1, "recovery"),
])
def test_array_health(fixture_text, name, state, degraded, in_sync, action):
    health = md.array_health(detail(fixture_text, name), mdstat(fixture_text, name)["arrays"]["md90"])
    assert (health["state"], health["degraded"], health["in_sync"], health["bitmap"]) == (state, degraded, in_sync, True)
    assert (health["sync"] or {}).get("action") == action
    if action:
        # /proc/mdstat's progress wins over --detail's whole percent
        assert health["sync"]["done_blocks"] > 0


def test_a_replacement_md_left_beside_an_emptied_slot_is_a_degraded_mirror(fixture_text):
    """The guest's array after a hot replace under I/O (lab, stop 43): --detail counts both legs active sync, but
    /proc/mdstat shows the hole and the new leg still flagged (R)."""
    stuck = mdstat(fixture_text, "replacement-stuck")["arrays"]["md127"]
    assert stuck["map"] == "U_" and stuck["sync"] is None
    assert stuck["members"] == [{"device": "xvdd", "slot": 2, "flags": ["replacement"]},
                                {"device": "xvdb", "slot": 0, "flags": []}]
    health = md.array_health(detail(fixture_text, "replacement-stuck"), stuck)
    assert health["in_sync"] == 2 and (health["state"], health["degraded"], health["map"]) == ("degraded", True, "U_")
    # without /proc/mdstat, --detail alone would call it clean: the map decides
    assert md.array_health(detail(fixture_text, "replacement-stuck"), None)["state"] == "clean"
    assert md.stuck_replacement(stuck, "/dev/xvdd", resolve=lambda path: path)
    assert not md.stuck_replacement(stuck, "/dev/xvdb", resolve=lambda path: path)
    # failed, removed, and after the re-add: a replacement no more (its (R) flag stays until the next assembly)
    for name in ("replacement-stuck-failed", "replacement-stuck-removed"):
        entry = mdstat(fixture_text, name)["arrays"]["md127"]
        assert not md.stuck_replacement(entry, "/dev/xvdd", resolve=lambda path: path)
        assert md.array_health(detail(fixture_text, "replacement-stuck-failed"), entry)["state"] == "degraded"
    healed = mdstat(fixture_text, "replacement-healed")["arrays"]["md127"]
    assert healed["map"] == "UU" and not md.stuck_replacement(healed, "/dev/xvdd", resolve=lambda path: path)
    assert md.array_health(detail(fixture_text, "replacement-healed"), healed)["state"] == "clean"


def test_array_health_of_the_recovery_lists_the_rebuilding_leg(fixture_text):
    health = md.array_health(detail(fixture_text, "recovery"), None)
    assert health["legs"] == [{"device": "/dev/dm-0", "status": "in_sync", "slot": 0},
                              {"device": "/dev/dm-1", "status": "rebuilding", "slot": 1}]
    assert health["sync"] == {"action": "recovery", "percent": 24.0} and health["map"] is None


def test_legs_are_found_by_the_device_they_lead_to(fixture_text):
    clean = detail(fixture_text, "clean")
    assert md.find_leg(clean, "/dev/xenvg/fxmd-b", resolve)["raid_device"] == 1
    assert md.find_leg(detail(fixture_text, "degraded"), "/dev/xenvg/fxmd-b", resolve) is None
    assert md.mdstat_entry(mdstat(fixture_text, "clean"), "/dev/md90", resolve)["map"] == "UU"


def test_guard_keeps_the_last_in_sync_leg(fixture_text):
    def refusal(name, leg):
        return md.drop_refusal(detail(fixture_text, name), mdstat(fixture_text, name)["arrays"]["md90"], leg, resolve)
    # clean, [UU]: either leg may go
    assert refusal("clean", "/dev/xenvg/fxmd-b") is None and refusal("clean", "/dev/xenvg/fxmd-a") is None
    # the faulty leg may go, the last in-sync one never
    assert refusal("faulty", "/dev/xenvg/fxmd-b") is None
    assert refusal("faulty", "/dev/xenvg/fxmd-a") == \
        "/dev/xenvg/fxmd-a is the last in-sync leg of /dev/md90: dropping it would lose the array"
    assert "last in-sync leg" in refusal("degraded", "/dev/xenvg/fxmd-a")
    # recovering: the rebuilding leg may go, its source not
    assert refusal("recovery", "/dev/xenvg/fxmd-b") is None
    assert "last in-sync leg" in refusal("recovery", "/dev/xenvg/fxmd-a")
    # resyncing: both legs say active sync, but their data is not known to be equal yet
    assert refusal("resync", "/dev/xenvg/fxmd-b") == \
        "/dev/md90 runs a resync: its legs are not known to hold the same data yet"
    # --detail and /proc/mdstat disagree (read at different moments): refused
    assert "not known to be in sync" in md.drop_refusal(
        detail(fixture_text, "clean"), mdstat(fixture_text, "degraded")["arrays"]["md90"], "/dev/xenvg/fxmd-b", resolve)
    assert "not known to be in sync" in md.drop_refusal(detail(fixture_text, "clean"), None, "/dev/xenvg/fxmd-b", resolve)


def test_argv_match_the_recorded_commands(fixture_text):
    for name, argv in (("mdadm-create", md.create_argv("/dev/md90", ["/dev/xenvg/fxmd-a", "/dev/xenvg/fxmd-b"], "fxmd")),
                       ("mdadm-fail", md.manage_argv("/dev/md90", "--fail", "/dev/xenvg/fxmd-b")),
                       ("mdadm-remove", md.manage_argv("/dev/md90", "--remove", "/dev/xenvg/fxmd-b")),
                       ("mdadm-re-add", md.manage_argv("/dev/md90", "--re-add", "/dev/xenvg/fxmd-b")),
                       ("mdadm-detail-missing", md.detail_argv("/dev/md91")),
                       ("mdadm-stop", md.stop_argv("/dev/md90"))):
        assert recorded(fixture_text, name)[0] == argv, name
    assert md.replace_argv("/dev/md0", "/dev/xvdb", "/dev/xvdd") == \
        ["mdadm", "/dev/md0", "--replace", "/dev/xvdb", "--with", "/dev/xvdd"]
    for bad in ("/dev/md0; reboot", "md0", "/dev/../etc/passwd", "/dev/md0 --zero-superblock", None):
        with pytest.raises(ValueError):
            md.detail_argv(bad)
    with pytest.raises(ValueError):
        md.manage_argv("/dev/md0", "--zero-superblock", "/dev/xvdb")
    with pytest.raises(ValueError):
        md.create_argv("/dev/md0", ["/dev/xvdb"], "a b")


def test_runner_detail_of_a_missing_array_is_none(fixture_text):
    argv, out = recorded(fixture_text, "mdadm-detail-missing")
    clean = md.detail_argv("/dev/md90")
    tool = md.Mdadm(CommandRunner(FakeModule({tuple(argv): out,
                                              tuple(clean): (0, fixture_text(*MDADM + ("detail-clean.txt",)), "")})))
    assert tool.detail("/dev/md91") is None
    assert tool.detail("/dev/md90")["state"] == ["clean"]


def test_runner_re_add_of_a_member_fails_with_what_mdadm_said(fixture_text):
    argv, out = recorded(fixture_text, "mdadm-re-add-member")
    tool = md.Mdadm(CommandRunner(FakeModule({tuple(argv): out})))
    with pytest.raises(CommandError) as info:
        tool.manage("/dev/md90", "--re-add", "/dev/xenvg/fxmd-b")
    assert info.value.rc == 1 and "Device or resource busy" in info.value.msg
    # check mode runs nothing
    module = FakeModule({}, check_mode=True)
    runner = CommandRunner(module)
    assert md.Mdadm(runner).manage("/dev/md90", "--fail", "/dev/xenvg/fxmd-b").skipped
    assert runner.would_run == [md.manage_argv("/dev/md90", "--fail", "/dev/xenvg/fxmd-b")] and module.calls == []


def test_an_inactive_array_parsed_and_judged(fixture_text):
    detail = md.parse_detail(json.loads(fixture_text("mdadm", "4.2", "mdadm-detail-inactive.json"))["stdout"])
    assert detail["state"] == ["inactive"] and detail["raid_devices"] is None and detail["events"] == 18
    assert detail["legs"] == [{"number": None, "major": 252, "minor": 0, "raid_device": None, "state": [],
                               "status": "unknown", "device": "/dev/dm-0"}]
    health = md.array_health(detail, md.parse_mdstat(fixture_text("mdadm", "4.2", "mdstat-inactive.txt"))["arrays"]["md127"])
    assert health["state"] == "inactive" and health["degraded"] and health["in_sync"] == 0
    started = md.parse_detail(fixture_text("mdadm", "4.2", "detail-run-degraded.txt"))
    assert md.array_health(started)["state"] == "degraded" and md.array_health(started)["in_sync"] == 1


def test_an_array_is_found_by_the_name_in_its_members(fixture_text):
    inactive = md.parse_mdstat(fixture_text("mdadm", "4.2", "mdstat-inactive.txt"))
    examined = {"dm-0": md.parse_examine(fixture_text("mdadm", "4.2", "examine-one-leg.txt"))}
    assert examined["dm-0"]["name"] == "hosta:fxmd"
    assert md.arrays_named(inactive, examined, "fxmd") == ["/dev/md127"]
    assert md.arrays_named(inactive, examined, "hosta:fxmd") == ["/dev/md127"]
    assert md.arrays_named(inactive, examined, "data") == []
    assert md.arrays_named(inactive, {"dm-0": None}, "fxmd") == []
    # running: found too
    running = md.parse_mdstat(fixture_text("mdadm", "4.2", "mdstat-run-degraded.txt"))
    assert md.arrays_named(running, examined, "fxmd") == ["/dev/md127"]
    # members that disagree on the array's uuid are no match
    clean = md.parse_mdstat(fixture_text("mdadm", "4.2", "mdstat-clean.txt"))
    other = dict(examined["dm-0"], array_uuid="00000000:00000000:00000000:00000000")
    assert md.arrays_named(clean, {"dm-0": examined["dm-0"], "dm-1": other}, "fxmd") == []
    assert md.arrays_named(clean, {"dm-0": examined["dm-0"], "dm-1": examined["dm-0"]}, "fxmd") == ["/dev/md90"]
    assert md.run_argv("/dev/md127") == ["mdadm", "--run", "/dev/md127"]
    with pytest.raises(ValueError):
        md.run_argv("/dev/md127; reboot")
