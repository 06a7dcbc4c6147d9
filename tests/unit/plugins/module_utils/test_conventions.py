# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""conventions.py: the VM-name rule, the address check, DRBD metadata sizes and extents."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.sanless.xen.plugins.module_utils import aoe
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv

MIB = 1024 ** 2
GIB = 1024 ** 3
EXTENT = 4 * MIB

# --------------------------------------------------------------------------- VM names

GOOD_NAMES = ["web01", "a", "9lives", "Domain-0", "db.example_1-x", "x" * 64]
BAD_NAMES = [
    "", "x" * 65, "web01\n", "web01\r\n", "\nweb01", "web 01", "web\t01", " web01", "web01 ",
    "web;reboot", "a&b", "a|b", "$(id)", "a`id`", "a>b", "it's", 'a"b', "web*", "a?b", "a[b]", "a{b}", "~root",
    "a/b", "../etc", "a\\b", "-rf", ".hidden", "_x", "caf\u00e9", "a+b", "a\x00b", "a:b", "a@b",
    None, 17, b"web01", ["web01"],
]


def test_vm_name_rule_names_the_pattern():
    assert conv.VM_NAME_RE.pattern == conv.VM_NAME_PATTERN
    assert conv.VM_NAME_PATTERN in conv.VM_NAME_RULE


@given(st.text(max_size=80))
def test_vm_name_is_the_pattern_to_the_end_of_the_string(name):
    # $ in the pattern would also match before a final newline: is_vm_name does not
    assert conv.is_vm_name(name) == bool(re.match(conv.VM_NAME_PATTERN[:-1] + r"\Z", name))


# --------------------------------------------------------------------------- addresses

GOOD_ADDRESSES = [
    "10.77.0.12", "127.0.0.1", "::1", "fe80::1", "2001:db8::2", "::ffff:10.0.0.1", "fe80::1%eth0", "fe80::1%2",
    "hostb", "hostb.example.org", "hostb.", "h-1", "a" * 63, ".".join(["a" * 63] * 3 + ["a" * 61]),
]
BAD_ADDRESSES = [
    "", "-oProxyCommand=x", "-hostb", "a;b", "$(x)", "`x`", "host b", " hostb", "hostb ", "hostb\n", "a\tb",
    "a|b", "a&b", "a>b", "a/b", "root@hostb", "host_b", "a..b", ".hostb", "hostb-", "a" * 64,
    ".".join(["a" * 63] * 4), "fe80::1%$(x)", "fe80::1%a b", "fe80::1%", "fe80::1%eth0;id", "10.0.0.1%eth0",
    "1.2.3.4.5:22", None, 10, b"hostb",
]


# is_X and check_X of each rule: (is, check, the start of check's error)
RULES = {"vm name": (conv.is_vm_name, conv.check_vm_name, "invalid VM name"),
         "address": (conv.is_address, conv.check_address, "invalid address")}


@pytest.mark.parametrize("rule, value", [("vm name", v) for v in GOOD_NAMES] + [("address", v) for v in GOOD_ADDRESSES])
def test_accepted(rule, value):
    accepts, check = RULES[rule][:2]
    assert accepts(value) is True
    assert check(value) == value


@pytest.mark.parametrize("rule, value", [("vm name", v) for v in BAD_NAMES] + [("address", v) for v in BAD_ADDRESSES])
def test_refused(rule, value):
    accepts, check, error = RULES[rule]
    assert accepts(value) is False
    with pytest.raises(ValueError, match=re.escape(error)):
        check(value)


def test_check_address_names_what_it_checks():
    with pytest.raises(ValueError, match="invalid peer address 'a;b'"):
        conv.check_address("a;b", "peer address")


@given(st.text(max_size=40))
def test_an_address_has_nothing_a_shell_or_ssh_reads(value):
    if conv.is_address(value):
        assert not value.startswith("-")
        assert re.match(r"^[A-Za-z0-9.:%_-]+\Z", value)


# --------------------------------------------------------------------------- sizes

# What the provision role's Jinja formula gave before it called conventions.meta_bytes.
OLD_JINJA_META_BYTES = [
    (0, 4 * MIB), (512, 4 * MIB), (16 * MIB, 4 * MIB), (256 * MIB, 4 * MIB), (GIB, 4 * MIB), (10 * GIB, 4 * MIB),
    (100 * GIB, 8 * MIB), (109 * GIB, 8 * MIB), (1024 * GIB - 512, 36 * MIB), (1024 * GIB, 36 * MIB),
]


@pytest.mark.parametrize("disk_bytes, meta", OLD_JINJA_META_BYTES)
def test_meta_bytes_as_the_old_jinja_formula(disk_bytes, meta):
    assert conv.meta_bytes(disk_bytes) == meta
    assert conv.meta_bytes(str(disk_bytes)) == meta


def test_meta_bytes_in_other_extents():
    assert conv.meta_bytes(GIB, 32 * MIB) == 32 * MIB
    assert conv.meta_bytes(1024 * GIB, 32 * MIB) == 64 * MIB
    assert conv.meta_bytes(1024 * GIB, MIB) == 34 * MIB


@given(st.integers(min_value=0, max_value=2 ** 50), st.sampled_from([MIB, EXTENT, 32 * MIB]))
def test_meta_bytes_hold_the_bitmap_in_whole_extents(disk_bytes, extent):
    meta = conv.meta_bytes(disk_bytes, extent)
    bitmap = -(-disk_bytes // 32768)   # 1 bit per 4 KiB, in bytes
    assert meta % extent == 0
    assert conv.META_FIXED_BYTES + bitmap + MIB <= meta < conv.META_FIXED_BYTES + bitmap + MIB + extent


@pytest.mark.parametrize("size, extent, want", [
    (0, EXTENT, 0), (1, EXTENT, EXTENT), (EXTENT, EXTENT, EXTENT), (EXTENT + 1, EXTENT, 2 * EXTENT),
    (1000 * MIB, EXTENT, 1000 * MIB), (1000 * MIB, 32 * MIB, 1024 * MIB), (512, 512, 512), ("1025", "512", 1536),
])
def test_round_up(size, extent, want):
    assert conv.round_up(size, extent) == want


def test_round_up_defaults_to_4_mib_extents():
    assert conv.round_up(1) == EXTENT


# --------------------------------------------------------------------------- names built on the rule

def test_names_refuse_bad_vm_names():
    assert conv.migration_resource("web01", 1) == "sl-web01-1"
    assert conv.auto_config_path("web01") == "/etc/xen/auto/web01.cfg"
    for build in (lambda: conv.migration_resource("a/b", 0), lambda: conv.auto_config_path("../x"),
                  lambda: conv.parked_config_path("x\n")):
        with pytest.raises(ValueError, match="invalid VM name"):
            build()


def test_drbd_names_of_a_minor():
    # the port of a minor is the same rule for the migration's resources, drbd_resource's default and the planner
    assert (conv.drbd_device(90), conv.drbd_majmin(90), conv.drbd_port(90)) == ("/dev/drbd90", "147:90", 7790)


# --------------------------------------------------------------------------- disk export


def test_target_iqn_from_the_host_name_is_what_the_lab_exported(fixture_text):
    # the recorded discovery of hosta's LIO target lists the IQN the convention derives
    discovered = fixture_text("iscsiadm", "2.1.8", "iscsiadm-discovery.out").split()[1]
    assert conv.target_iqn("hosta.lab.example") == conv.target_iqn("HostA") == discovered
    assert conv.is_iqn(discovered) and conv.is_iqn("iqn.2026-11.lab.sanless:hostb:54df6118618")


def test_the_host_of_a_target_iqn_is_read_back_from_the_recorded_session(fixture_text):
    # the recorded session of hostb is with hosta's target: its owner is read from the IQN
    session = fixture_text("iscsiadm", "2.1.8", "iscsiadm-session.out").split()[3]
    assert conv.target_iqn_host(session) == "hosta" and conv.target_iqn_host(conv.target_iqn("HostB.lab")) == "hostb"
    for other in ("iqn.2026-11.lab.sanless:hostb:54df6118618", "iqn.2026-12.xen.sanless:Host_A",
                  "iqn.2026-12.xen.sanless:", None):
        assert conv.target_iqn_host(other) is None, other


@pytest.mark.parametrize("bad", ["iqn.2026-12.xen.sanless:a b", "iqn.2026-12.x;y", "iqn.x`id`", "", "iqn.2026-12.x\n",
                                 "eui.123", "-iqn.2026-12.x"])
def test_bad_iqns(bad):
    assert not conv.is_iqn(bad)
    with pytest.raises(ValueError):
        conv.check_iqn(bad)


def test_export_names_never_collide():
    assert conv.export_name("xenvg", "rec0") == "xenvg-rec0"  # the recorded backstore name
    assert conv.export_name("a-b", "c") != conv.export_name("a", "b-c")
    with pytest.raises(ValueError):
        conv.export_name("xenvg", "rec0;reboot")


def test_shared_disk_path_is_the_same_for_every_spelling_of_the_owner():
    assert conv.shared_disk_path("hosta.lab", "xenvg", "web01-disk") == "/dev/sanless/hosta/xenvg/web01-disk"
    assert conv.shared_disk_path("HOSTA", "xenvg", "web01-disk") == conv.shared_disk_path("hosta", "xenvg", "web01-disk")
    assert conv.shared_disk_link("hosta", "xenvg", "d") == "sanless/hosta/xenvg/d"
    for bad in (("host/a", "xenvg", "d"), ("hosta", "xen vg", "d"), ("hosta", "xenvg", "../d"), ("hosta", "xenvg", "-d")):
        with pytest.raises(ValueError):
            conv.shared_disk_path(*bad)


def test_a_shared_path_is_read_back_and_nothing_else_is():
    path = conv.shared_disk_path("hosta.lab", "xenvg", "web05-disk")
    assert conv.parse_shared_disk_path(path) == {"owner": "hosta", "vg": "xenvg", "lv": "web05-disk"}
    for other in ("/dev/xenvg/web05-disk", "/dev/sanless/hosta/xenvg", "/dev/sanless/hosta/xenvg/d/e",
                  "/dev/sanless/HostA/xenvg/d", "/dev/sanless/hosta/xenvg/d;reboot", "/dev/sanless/hosta/xen vg/d",
                  "/dev/sanlessx/hosta/xenvg/d", None, 7):
        assert conv.parse_shared_disk_path(other) is None, other


def test_a_vm_disk_lv_is_the_vm_and_the_disk_name():
    assert conv.vm_disk_lv("web02", "data") == "web02-data"
    for bad in (("web 02", "data"), ("web02", "da/ta"), ("web02", None)):
        with pytest.raises(ValueError):
            conv.vm_disk_lv(*bad)


def test_aoe_shelves_and_slots_match_the_lab_and_are_allocated_lowest_first(fixture_text):
    # the lab exported hosta's LV as e1.2 and hostb's as e2.1: shelf = place in the sorted host list
    assert conv.aoe_shelf("hosta", ["hostb", "hosta"]) == 1 and conv.aoe_shelf("hostb.lab", ["hosta", "hostb"]) == 2
    assert conv.aoe_device(1, 2) == "/dev/etherd/" + fixture_text("aoetools", "36", "aoe-discover.out").split()[0]
    with pytest.raises(ValueError):
        conv.aoe_shelf("hostc", ["hosta", "hostb"])
    assert conv.aoe_free_slot([]) == 1 and conv.aoe_free_slot([1, 2, 4]) == 3
    with pytest.raises(ValueError):
        conv.aoe_free_slot(range(1, 255))
    for shelf, slot in ((65535, 1), (1, 255), (-1, 0), (True, 1)):
        with pytest.raises(ValueError):
            conv.check_aoe_address(shelf, slot)
    assert conv.vblade_unit_name(1, 2) == "sanless-vblade-1-2.service"


def test_the_host_of_an_aoe_shelf_is_the_inverse_of_aoe_shelf(fixture_text):
    # hostb imported e1.2 (aoe-discover), hosta e2.1 (aoe-stat-a): shelves 1 and 2 of the lab's two dom0s
    hosts = ["hostb.lab", "hosta"]
    for name, owner in (("aoe-discover.out", "hosta"), ("aoe-stat-a.out", "hostb")):
        shelf, _slot = aoe.parse_device_name(fixture_text("aoetools", "36", name).split()[0])
        assert conv.aoe_shelf_host(shelf, hosts) == owner and conv.aoe_shelf(owner, hosts) == shelf
    for shelf in (0, 3, True, "1", None):
        assert conv.aoe_shelf_host(shelf, hosts) is None, shelf


def test_chap_checks_do_not_echo_the_secret():
    with pytest.raises(ValueError) as info:
        conv.check_chap_secret("short$ecret")
    assert "short$ecret" not in str(info.value)
    assert conv.check_chap_secret("labsecret12345") == "labsecret12345"
    with pytest.raises(ValueError):
        conv.check_chap_user("a b")


def test_raid1_legs_are_the_disk_lv_on_two_dom0s_on_their_shared_paths():
    legs = conv.raid1_legs("web01", "data", ["hosta", "hostb.lab"], ["xenvg", "datavg"])
    assert legs == [
        {"host": "hosta", "vg": "xenvg", "lv": "web01-data", "path": "/dev/sanless/hosta/xenvg/web01-data"},
        {"host": "hostb.lab", "vg": "datavg", "lv": "web01-data", "path": "/dev/sanless/hostb/datavg/web01-data"}]
    # the owner of a leg is read back from its path, as for every shared disk
    assert [conv.parse_shared_disk_path(leg["path"])["owner"] for leg in legs] == ["hosta", "hostb"]
    assert legs[0]["lv"] == conv.vm_disk_lv("web01", "data")
    with pytest.raises(ValueError, match="needs two dom0s"):
        conv.raid1_legs("web01", "data", ["hosta", "HOSTA.lab"], ["xenvg", "xenvg"])
    with pytest.raises(ValueError, match="2 legs"):
        conv.raid1_legs("web01", "data", ["hosta"], ["xenvg"])
    with pytest.raises(ValueError):
        conv.raid1_leg("web01", "data; reboot", "hosta", "xenvg")
    assert conv.md_array_name("data") == "data"
    with pytest.raises(ValueError):
        conv.md_array_name("d" * 33)


MIB = 1024 * 1024


def test_backup_snapshot_names_and_folder():
    assert conv.backup_snapshot_name("web01-disk") == "web01-disk.bksnap"
    assert conv.is_backup_snapshot_name("web01-disk.bksnap")
    assert not conv.is_backup_snapshot_name("web01-disk") and not conv.is_backup_snapshot_name(".bksnap")
    assert conv.backups_dir() == "/var/lib/sanless-xen/backups"
    assert conv.backups_dir("/tmp/s") != conv.migrations_dir("/tmp/s")
    for bad in ("a b", "-x", "x/y", "x" * 127):
        with pytest.raises(ValueError):
            conv.backup_snapshot_name(bad)


@pytest.mark.parametrize("origin, cow", [
    (64 * MIB, 68 * MIB),          # recorded (lvcreate-snapshot-too-big.json: 100g cut to 68 MiB)
    (1024 * MIB, 1032 * MIB),      # 262144 chunks: 1025 metadata chunks + header, 4 MiB extents
    (4096, 4 * MIB),
])
def test_cow_max_bytes(origin, cow):
    assert conv.cow_max_bytes(origin) == cow


def test_snapshot_percent_of_origin():
    assert conv.snapshot_percent_bytes(50, 64 * MIB) == 36 * MIB   # recorded: -l 50%ORIGIN
    assert conv.snapshot_percent_bytes(100, 64 * MIB) == 68 * MIB
    assert conv.snapshot_percent_bytes(1, 64 * MIB) == 4 * MIB


def test_disk_of_vm_lv_is_the_inverse_of_vm_disk_lv():
    assert conv.disk_of_vm_lv("web01", conv.vm_disk_lv("web01", "data")) == "data"
    assert conv.disk_of_vm_lv("web01", "web01-disk.bksnap") == "disk.bksnap"
    assert conv.disk_of_vm_lv("web01", "web011-disk") is None
    assert conv.disk_of_vm_lv("web01", "web01-") is None
    assert conv.disk_of_vm_lv("web01", "other-disk") is None


def test_backup_id_test_plugin_is_the_modules_rule():
    from ansible_collections.sanless.xen.plugins.test.backup_id import TestModule as BackupIdTests
    is_backup_id = BackupIdTests().tests()["backup_id"]
    made = conv.backup_id("web01", 1796364000)
    assert made == "web01-20261204T060000Z"
    assert is_backup_id(made) and is_backup_id(made, "web01") and conv.check_backup_id(made, "web01") == made
    for bad, vm in ((made, "web02"), ("web01-20261204T060000", None), ("web01-20261204T060000Z\n", None),
                    ("x;reboot-20261204T060000Z", None), (None, None), ("web0-20261204T060000Z", "web01")):
        assert not is_backup_id(bad, vm)
        with pytest.raises(ValueError):
            conv.check_backup_id(bad, vm)


def test_free_vdev_is_after_every_used_one():
    assert conv.free_vdev([]) == "xvda"
    assert conv.free_vdev(["xvda", "xvdc", "dm-0", None]) == "xvdd"
    assert conv.free_vdev(["xvdz"]) == "xvdaa" and conv.free_vdev(["xvdaz"]) == "xvdba"


def test_raid1_journal_paths():
    assert conv.raid1_journal_path("web07") == "/var/lib/sanless-xen/raid1/web07.json"
    assert conv.raid1_history_path("web07", "ab12", "/s") == "/s/history/web07-raid1-ab12.json"
    with pytest.raises(ValueError):
        conv.raid1_history_path("web07", "../x")
    with pytest.raises(ValueError):
        conv.raid1_journal_path("web 07")


def test_window_end_is_hh_mm_of_one_day():
    from ansible_collections.sanless.xen.plugins.test.window_end import TestModule as WindowEndTests
    is_window_end = WindowEndTests().tests()["window_end"]
    assert all(is_window_end(v) for v in ("00:00", "05:30", "23:59"))
    assert not any(is_window_end(v) for v in ("24:00", "5:30", "05:60", "05:30\n", "05:30; reboot", "", None, 530))


def test_seconds_to_window_end_is_the_next_one():
    import datetime
    at = datetime.datetime(2026, 12, 7, 22, 15, 30)
    assert conv.seconds_to_window_end("23:00", at) == 44 * 60 + 30
    assert conv.seconds_to_window_end("05:30", at) == (7 * 60 + 15) * 60 - 30   # tomorrow's
    assert conv.seconds_to_window_end("22:15", datetime.datetime(2026, 12, 7, 22, 15)) == 86400
    with pytest.raises(ValueError):
        conv.seconds_to_window_end("5:30", at)
