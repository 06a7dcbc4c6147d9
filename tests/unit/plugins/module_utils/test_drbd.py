# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    DrbdError,
    DrbdParseError,
    both_uptodate,
    check_resource_params,
    device_minor,
    drbd9_minors,
    drbdadm_argv,
    format_progress,
    is_resyncing,
    is_synced,
    mask_secret,
    metadata_state,
    minor_state,
    pair_resource_text,
    parse_config,
    parse_drbdsetup_show,
    parse_drbdsetup_status_json,
    parse_proc_drbd,
    parse_resource,
    read_proc_drbd,
    render_resource,
    replica_problems,
    resource_text,
    resource_view,
    retry_transient,
    runtime_changes,
    userland_version,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError


# --------------------------------------------------------------------------- DRBD 8.0 (Ganeti)

def test_proc_drbd_80_all_states(fixture_text):
    parsed = parse_proc_drbd(fixture_text("drbd", "8.0.12", "proc-drbd-ganeti.txt"))
    assert parsed["version"] == "8.0.12"
    assert parsed["api"] == "86"
    assert parsed["proto"] == "86"
    assert sorted(parsed["minors"]) == [0, 1, 2, 4, 5, 6, 7, 8]
    m0 = parsed["minors"][0]
    assert (m0["cstate"], m0["role"], m0["peer_role"], m0["disk"], m0["peer_disk"]) == (
        "Connected", "Primary", "Secondary", "UpToDate", "UpToDate")
    assert m0["protocol"] == "C"
    assert m0["flags"] == "r---"
    assert m0["stats"]["ns"] == 4375577
    assert m0["stats"]["dw"] == 4446279
    assert m0["sync_percent"] is None and m0["sync_eta_s"] is None and m0["speed_kib_s"] is None
    assert parsed["minors"][2] == dict(parsed["minors"][2], cstate="Unconfigured", unconfigured=True, role=None)
    assert parsed["minors"][4]["cstate"] == "WFConnection"
    assert parsed["minors"][4]["peer_role"] == "Unknown"
    assert parsed["minors"][4]["peer_disk"] == "DUnknown"
    assert parsed["minors"][6]["disk"] == "Diskless"
    standalone = parsed["minors"][8]
    assert standalone["cstate"] == "StandAlone"
    assert standalone["protocol"] is None  # StandAlone prints no protocol letter
    assert standalone["flags"] == "r---"
    assert not standalone["unconfigured"]


def test_proc_drbd_80_empty_line_between_minors(fixture_text):
    parsed = parse_proc_drbd(fixture_text("drbd", "8.0.12", "proc-drbd-emptyline.txt"))
    assert sorted(parsed["minors"]) == [0, 1, 2, 5, 6]
    assert [parsed["minors"][m]["unconfigured"] for m in (0, 1, 2, 5, 6)] == [False, True, True, True, True]
    assert parsed["minors"][0]["stats"]["ns"] == 78728316
    assert parsed["build"].startswith("5c9f89594553e32adb87d9638dce591782f947e3 build by root@node1")


# --------------------------------------------------------------------------- DRBD 8.3

def test_proc_drbd_830_sync_without_indentation(fixture_text):
    parsed = parse_proc_drbd(fixture_text("drbd", "8.3.0", "proc-drbd-syncsource.txt"))
    assert parsed["version"] == "8.3.0"
    assert parsed["proto"] == "86-89"
    minor = parsed["minors"][0]
    assert minor["cstate"] == "SyncSource"
    assert (minor["role"], minor["peer_role"]) == ("Primary", "Secondary")
    assert (minor["disk"], minor["peer_disk"]) == ("UpToDate", "Inconsistent")
    assert minor["sync_percent"] == 15.9
    assert minor["sync_eta_s"] == 16 * 60 + 30
    assert minor["speed_kib_s"] == 16512
    assert minor["stats"]["oos"] == 16442556
    assert minor["stats"]["wo"] == "b"


def test_proc_drbd_830_two_minors_one_syncing(fixture_text):
    parsed = parse_proc_drbd(fixture_text("drbd", "8.3.0", "proc-drbd-stacked-sync.txt"))
    assert parsed["minors"][0]["cstate"] == "Connected"
    assert parsed["minors"][0]["sync_percent"] is None
    assert parsed["minors"][1]["protocol"] == "A"
    assert parsed["minors"][1]["sync_percent"] == 74.4
    assert parsed["minors"][1]["sync_eta_s"] == 426
    assert parsed["minors"][1]["speed_kib_s"] == 11776


def test_proc_drbd_837_srcversion_and_slow_sync(fixture_text):
    parsed = parse_proc_drbd(fixture_text("drbd", "8.3.7", "proc-drbd-syncsource.txt"))
    assert parsed["version"] == "8.3.7"
    assert parsed["build"] == "EE47D8BF18AC166BE219757"
    minor = parsed["minors"][0]
    assert minor["flags"] == "r----"
    assert minor["sync_percent"] == 21.9
    assert minor["sync_eta_s"] == 3600 + 8 * 60 + 24
    assert minor["speed_kib_s"] == 580


def test_proc_drbd_837_connected_and_standalone(fixture_text):
    connected = parse_proc_drbd(fixture_text("drbd", "8.3.7", "proc-drbd-connected.txt"))["minors"][0]
    assert (connected["cstate"], connected["role"], connected["peer_role"]) == ("Connected", "Secondary", "Primary")
    assert connected["stats"]["nr"] == 4194304
    alone = parse_proc_drbd(fixture_text("drbd", "8.3.7", "proc-drbd-standalone.txt"))["minors"][0]
    assert (alone["cstate"], alone["disk"], alone["peer_disk"], alone["protocol"]) == (
        "StandAlone", "Inconsistent", "DUnknown", None)


# DRBD 8.3 kernels have been seen printing NUL bytes in the I/O flags: the recording of
# proc-drbd-syncsource.txt with two of them injected (fixtures/drbd/8.3.7/README).
NUL_FLAGS = ("drbd", "8.3.7", "proc-drbd-syncsource-nul-ioflags.txt")


def test_proc_drbd_837_nul_bytes_in_the_io_flags_are_tolerated(fixture_text):
    text = fixture_text(*NUL_FLAGS)
    assert "r-\x00-\x00" in text
    clean = parse_proc_drbd(fixture_text("drbd", "8.3.7", "proc-drbd-syncsource.txt"))
    parsed = parse_proc_drbd(text)
    minor = parsed["minors"][0]
    assert minor["flags"] is None  # unreadable, and used by nothing
    # everything else is read as from the clean recording
    assert dict(minor, flags="r----") == clean["minors"][0]
    assert dict(parsed, minors={}) == dict(clean, minors={})
    assert (minor["cstate"], minor["role"], minor["disk"], minor["peer_disk"], minor["protocol"]) == (
        "SyncSource", "Primary", "UpToDate", "Inconsistent", "C")
    assert (minor["sync_percent"], minor["sync_eta_s"], minor["speed_kib_s"]) == (21.9, 4104, 580)


def test_proc_drbd_garbage_in_the_io_counters_is_tolerated(fixture_text):
    text = fixture_text(*NUL_FLAGS).replace("ns:912248 ", "ns:912\x00248 ").replace("wo:b", "wo:\x00")
    minor = parse_proc_drbd(text)["minors"][0]
    assert minor["stats"]["ns"] is None and minor["stats"]["wo"] is None
    assert minor["stats"]["oos"] == 3283604 and minor["sync_percent"] == 21.9


@pytest.mark.parametrize("field, garbled", [
    ("cs:SyncSource", "cs:Sync\x00Source"),
    ("ro:Primary/", "ro:Pri\x00mary/"),
    ("/Secondary ds", "/Second\x00ary ds"),
    ("ds:UpToDate/", "ds:UpTo\x00Date/"),
    ("/Inconsistent C", "/Incon\x00sistent C"),
    (" 0: cs:", " \x000: cs:"),
    ("sync'ed: 21.9%", "sync'ed: 21\x00.9%"),
    ("finish: 1:08:24", "finish: 1:0\x008:24"),
    ("speed: 580 (452)", "speed: 5\x0080 (452)"),
])
def test_proc_drbd_garbage_in_a_field_that_is_used_raises(fixture_text, field, garbled):
    text = fixture_text(*NUL_FLAGS)
    assert field in text
    with pytest.raises(DrbdParseError):
        parse_proc_drbd(text.replace(field, garbled))


def test_read_proc_drbd_reads_bytes_that_are_not_utf8(tmp_path, fixture_text):
    raw = fixture_text(*NUL_FLAGS).encode("utf-8").replace(b"r-\x00-\x00", b"r-\xff-\x00")
    path = tmp_path / "drbd"
    path.write_bytes(raw)
    minor = read_proc_drbd(str(path))["minors"][0]
    assert minor["flags"] is None and minor["cstate"] == "SyncSource" and minor["sync_percent"] == 21.9


# --------------------------------------------------------------------------- DRBD 8.4 (Ganeti)

def test_proc_drbd_842(fixture_text):
    parsed = parse_proc_drbd(fixture_text("drbd", "8.4.2", "proc-drbd-ganeti.txt"))
    assert parsed["version"] == "8.4.2"
    assert parsed["api"] == "1"
    assert sorted(parsed["minors"]) == [0, 1, 2, 4, 6, 8]
    assert parsed["minors"][0]["flags"] == "r-----"
    assert parsed["minors"][2]["unconfigured"] is True
    assert parsed["minors"][4]["stats"]["oos"] == 1048320
    assert parsed["minors"][6]["stats"]["wo"] == "b"


def test_proc_drbd_842_sync(fixture_text):
    parsed = parse_proc_drbd(fixture_text("drbd", "8.4.2", "proc-drbd-sync-ganeti.txt"))
    minor = parsed["minors"][5]
    assert minor["cstate"] == "SyncSource"
    assert (minor["role"], minor["peer_role"]) == ("Secondary", "Secondary")
    assert minor["flags"] == "r---n-"
    assert minor["sync_percent"] == 68.5
    assert minor["sync_eta_s"] == 5
    assert minor["speed_kib_s"] == 64800
    assert parsed["minors"][3]["unconfigured"]
    assert parsed["minors"][0]["sync_percent"] is None


# --------------------------------------------------------------------------- DRBD 8.4.11 (lab recordings)

LAB = ("drbd", "8.4.11")


def test_lab_wfconnection(fixture_text):
    parsed = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-wfconnection.txt",)))
    assert parsed["version"] == "8.4.11"
    assert parsed["build"] == "B536C32A3EADA868561EFD9"
    assert sorted(parsed["minors"]) == [10, 90]  # minor 10 is another test's resource on the same lab
    minor = parsed["minors"][90]
    assert (minor["cstate"], minor["role"], minor["peer_role"], minor["disk"], minor["peer_disk"]) == (
        "WFConnection", "Secondary", "Unknown", "Inconsistent", "DUnknown")
    assert minor["stats"]["oos"] == 196352  # the 192 MiB LV, in KiB
    assert minor["sync_percent"] is None


def test_lab_connected_inconsistent(fixture_text):
    minor = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-connected-inconsistent.txt",)))["minors"][90]
    assert (minor["cstate"], minor["role"], minor["peer_role"], minor["disk"], minor["peer_disk"]) == (
        "Connected", "Secondary", "Secondary", "Inconsistent", "Inconsistent")


def test_lab_syncsource(fixture_text):
    parsed = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-syncsource.txt",)))
    minor = parsed["minors"][90]
    assert (minor["cstate"], minor["role"], minor["disk"], minor["peer_disk"]) == (
        "SyncSource", "Primary", "UpToDate", "Inconsistent")
    assert minor["sync_percent"] == 67.4
    assert minor["sync_eta_s"] == 18
    assert minor["speed_kib_s"] == 3692
    assert minor["want_kib_s"] is None
    assert parsed["minors"][10]["sync_percent"] is None


def test_lab_synctarget_with_want(fixture_text):
    minor = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-synctarget.txt",)))["minors"][90]
    assert (minor["cstate"], minor["role"], minor["peer_role"], minor["disk"], minor["peer_disk"]) == (
        "SyncTarget", "Secondary", "Primary", "Inconsistent", "UpToDate")
    assert minor["sync_percent"] == 75.6
    assert minor["sync_eta_s"] == 13
    assert minor["speed_kib_s"] == 3788
    assert minor["want_kib_s"] == 4096


def test_lab_dual_primary_of_another_resource(fixture_text):
    minor = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-wfconnection.txt",)))["minors"][10]
    assert (minor["cstate"], minor["role"], minor["peer_role"], minor["disk"], minor["peer_disk"]) == (
        "Connected", "Primary", "Primary", "UpToDate", "UpToDate")


def test_lab_uptodate_both_sides(fixture_text):
    primary = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-uptodate.txt",)))["minors"][90]
    secondary = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-uptodate-secondary.txt",)))["minors"][90]
    assert (primary["cstate"], primary["role"], primary["peer_role"], primary["disk"], primary["peer_disk"]) == (
        "Connected", "Primary", "Secondary", "UpToDate", "UpToDate")
    assert (secondary["role"], secondary["peer_role"]) == ("Secondary", "Primary")
    assert primary["stats"]["ns"] == secondary["stats"]["nr"] == 196608
    assert primary["stats"]["oos"] == 0
    assert primary["sync_percent"] is None


def test_lab_dual_primary(fixture_text):
    minor = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-dual-primary.txt",)))["minors"][90]
    assert (minor["cstate"], minor["role"], minor["peer_role"], minor["disk"], minor["peer_disk"]) == (
        "Connected", "Primary", "Primary", "UpToDate", "UpToDate")


def test_lab_unconfigured_minor_right_after_another(fixture_text):
    parsed = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-new-minor.txt",)))
    assert sorted(parsed["minors"]) == [10, 90, 91]
    assert parsed["minors"][91]["unconfigured"] is True
    assert parsed["minors"][91]["cstate"] == "Unconfigured"
    assert parsed["minors"][91]["role"] is None
    # the counters line of minor 90 just before must not leak into 91
    assert parsed["minors"][90]["stats"]["oos"] == 16128
    assert parsed["minors"][91]["stats"] == {}
    assert (parsed["minors"][90]["cstate"], parsed["minors"][90]["role"]) == ("WFConnection", "Primary")


def test_lab_recorded_resource_file_parses(fixture_text):
    parsed = parse_resource(fixture_text(*LAB + ("fxd.res",)))
    assert parsed["name"] == "fxd"
    assert parsed["disk"] == {"c-plan-ahead": "0", "resync-rate": "4M"}
    assert [(h["name"], h["address"], h["port"], h["device"]) for h in parsed["hosts"]] == [
        ("hosta", "10.77.0.11", 7990, "/dev/drbd90"), ("hostb", "10.77.0.12", 7990, "/dev/drbd90")]


# --------------------------------------------------------------------------- malformed input

@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("\n\n", "empty"),
    ("garbage\n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n", "version line"),
    ("version: 8.4.11 (api:1/proto:86-101)\n 0: cs:Connected ro:Primary ds:UpToDate/UpToDate C r-----\n", "roles"),
    ("version: 8.4.11 (api:1/proto:86-101)\n    ns:0 nr:0\n", "before the first minor"),
    ("version: 8.4.11 (api:1/proto:86-101)\n 0: cs:Unconfigured extra\n", "after cs:Unconfigured"),
    ("version: 8.4.11 (api:1/proto:86-101)\n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
     " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n", "listed twice"),
    ("version: 8.4.11 (api:1/proto:86-101)\n 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n"
     "        finish: 0:00:05 speed: fast\n", "without speed"),
    ("version: 8.4.11 (api:1/proto:86-101)\n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
     "    something new: 1\n", "unexpected line"),
])
def test_proc_drbd_malformed(text, message):
    with pytest.raises(DrbdParseError, match=message):
        parse_proc_drbd(text)


def test_proc_drbd_truncated_recording_raises(fixture_text):
    text = fixture_text("drbd", "8.4.2", "proc-drbd-sync-ganeti.txt")
    # Cut inside the roles of minor 5: must not yield a minor with half its fields.
    cut = text[:text.index("ro:Secondary/Secondary") + 6]
    with pytest.raises(DrbdParseError):
        parse_proc_drbd(cut)


def test_proc_drbd_drbd9_has_no_minors():
    text = ("version: 9.2.4 (api:2/proto:86-122)\n"
            "GIT-hash: f2a2fb8c8ee4ab5d3bd4d8a8c4e6e1ac0e5dbc97 build by root@host, 2023-05-01 10:00:00\n"
            "Transports (api:18): tcp (9.2.4)\n")
    parsed = parse_proc_drbd(text)
    assert parsed["version"] == "9.2.4"
    assert parsed["minors"] == {}


def test_read_proc_drbd_missing_file_is_not_an_error(tmp_path):
    assert read_proc_drbd(str(tmp_path / "no-such-file")) == {
        "version": None, "api": None, "proto": None, "build": None, "minors": {}}


def test_read_proc_drbd_reads_file(tmp_path, fixture_text):
    path = tmp_path / "drbd"
    path.write_text(fixture_text("drbd", "8.4.2", "proc-drbd-ganeti.txt"))
    assert read_proc_drbd(str(path))["version"] == "8.4.2"


# --------------------------------------------------------------------------- drbdsetup show (8.4)

# Transcribed from drbd-utils 9.22.0 source, not recorded yet: fixtures/drbd-utils/9.22.0/README.
SHOW = ("drbd-utils", "9.22.0")


@pytest.mark.parametrize("name, owners", [
    ("drbdsetup-show-90.txt", {90: "fxd"}),
    ("drbdsetup-show-91.txt", {91: "fxu"}),
    ("drbdsetup-show-93.txt", {93: "fxr"}),
])
def test_drbdsetup_show_names_the_resource_of_a_minor(fixture_text, name, owners):
    assert parse_drbdsetup_show(fixture_text(*SHOW + (name,))) == owners


def test_drbdsetup_show_all_lists_every_resource(fixture_text):
    # "show all" prints the resources one after the other, a blank line between them
    # (drbdsetup.c:1979-1981); built here from the single-minor transcriptions.
    text = "\n".join(fixture_text(*SHOW + (name,)) for name in (
        "drbdsetup-show-90.txt", "drbdsetup-show-91.txt", "drbdsetup-show-93.txt"))
    assert parse_drbdsetup_show(text) == {90: "fxd", 91: "fxu", 93: "fxr"}
    assert parse_drbdsetup_show("") == {}


@pytest.mark.parametrize("text, message", [
    ("resource fxd {\n    _this_host {\n", "missing"),
    ("fxd {\n}\n", "expected 'resource NAME"),
    ("resource fxd {\n    _this_host {\n        volume 0 {\n            device\t\t\tminor x;\n        }\n    }\n}\n",
     "device"),
    ("resource fxd {\n    _this_host {\n        volume 0 {\n            device\t\t\tminor 90;\n        }\n    }\n}\n"
     "resource fxe {\n    _this_host {\n        volume 0 {\n            device\t\t\tminor 90;\n        }\n    }\n}\n",
     "twice"),
])
def test_drbdsetup_show_malformed(text, message):
    with pytest.raises(DrbdParseError, match=message):
        parse_drbdsetup_show(text)


# --------------------------------------------------------------------------- DRBD 9 status

def test_drbdsetup_status_json(fixture_text):
    resources = parse_drbdsetup_status_json(fixture_text("drbd", "9.x", "drbdsetup-status.json"))
    assert [res["name"] for res in resources] == ["1-single-0", "1-single-1"]
    first = resources[0]
    assert first["role"] == "Secondary"
    assert first["devices"] == [{"volume": 0, "minor": 2, "disk_state": "UpToDate", "size_kib": 409600}]
    conn = first["connections"][0]
    assert conn["connection_state"] == "Connected"
    assert conn["peer_role"] == "Primary"
    assert conn["peer_devices"][0]["replication_state"] == "Established"
    assert conn["peer_devices"][0]["percent_in_sync"] == 100

    minors = drbd9_minors(resources)
    assert sorted(minors) == [2, 3]
    assert minors[3]["resource"] == "1-single-1"
    assert (minors[2]["cstate"], minors[2]["role"], minors[2]["peer_role"], minors[2]["disk"], minors[2]["peer_disk"]) == (
        "Established", "Secondary", "Primary", "UpToDate", "UpToDate")
    assert minors[2]["sync_percent"] is None


@pytest.mark.parametrize("text", ["not json", "{}", '[{"name": "r0"}]'])
def test_drbdsetup_status_json_malformed(text):
    with pytest.raises(DrbdParseError):
        parse_drbdsetup_status_json(text)


# --------------------------------------------------------------------------- resource files

HOSTS = [
    {"name": "hosta", "address": "192.168.77.1", "port": 7990, "minor": 90,
     "disk": "/dev/mapper/fx1-real", "meta_disk": "/dev/xenvg/fx1-meta"},
    {"name": "hostb", "address": "192.168.77.2", "port": 7990, "minor": 90,
     "disk": "/dev/mapper/fx1-real", "meta_disk": "/dev/xenvg/fx1-meta"},
]


def test_render_resource_84_matches_the_poc_layout():
    text = render_resource("fx1", HOSTS, version="8.4", disk={"c-plan-ahead": 0, "resync-rate": "400M"})
    assert text == (
        "resource fx1 {\n"
        "  net { protocol C; }\n"
        "  disk { c-plan-ahead 0; resync-rate 400M; }\n"
        "  on hosta {\n"
        "    device /dev/drbd90; disk /dev/mapper/fx1-real; address 192.168.77.1:7990; meta-disk /dev/xenvg/fx1-meta;\n"
        "  }\n"
        "  on hostb {\n"
        "    device /dev/drbd90; disk /dev/mapper/fx1-real; address 192.168.77.2:7990; meta-disk /dev/xenvg/fx1-meta;\n"
        "  }\n"
        "}\n")


@pytest.mark.parametrize("version", ["8.4", "9"])
def test_render_parse_resource_round_trip(version):
    text = render_resource("fx1", HOSTS, version=version, net={"allow-two-primaries": True}, disk={"resync-rate": "400M"})
    parsed = parse_resource(text)
    assert parsed["name"] == "fx1"
    assert parsed["net"] == {"protocol": "C", "allow-two-primaries": "yes"}
    assert parsed["disk"] == {"resync-rate": "400M"}
    assert [(h["name"], h["device"], h["disk"], h["meta_disk"], h["address"], h["port"]) for h in parsed["hosts"]] == [
        (h["name"], "/dev/drbd90", h["disk"], h["meta_disk"], h["address"], h["port"]) for h in HOSTS]
    if version == "9":
        assert [h["node_id"] for h in parsed["hosts"]] == [0, 1]
        assert "connection-mesh { hosts hosta hostb; }" in text
    else:
        assert [h["node_id"] for h in parsed["hosts"]] == [None, None]


@pytest.mark.parametrize("tag", ["84", "9"])
def test_drbdadm_reads_what_render_resource_writes(fixture_text, tag):
    """drbdadm (drbd-utils 9.22.0 on the lab) parsed our rendering; its dump must mean the same."""
    rendered = parse_resource(fixture_text("drbd-utils", "9.22.0", "fx9-%s.res" % tag))
    dumped = parse_resource(fixture_text("drbd-utils", "9.22.0", "drbdadm-dump-%s.txt" % tag))
    assert dumped == rendered
    assert dumped["net"] == {"allow-two-primaries": "yes", "protocol": "C"}
    assert dumped["hosts"][0] == {"name": "hosta", "node_id": 0 if tag == "9" else None, "device": "/dev/drbd92",
                                  "disk": "/dev/xenvg/fx9-disk", "meta_disk": "/dev/xenvg/fx9-meta",
                                  "address": "10.77.0.11", "port": 7991}


@pytest.mark.parametrize("name, hosts, kwargs", [
    ("fx 1", HOSTS, {}),
    ("fx1", HOSTS[:1], {}),
    ("fx1", [dict(HOSTS[0], meta_disk="internal"), HOSTS[1]], {}),
    ("fx1", [dict(HOSTS[0], disk="/dev/x; y"), HOSTS[1]], {}),
    ("fx1", [dict(HOSTS[0], port=70000), HOSTS[1]], {}),
    ("fx1", HOSTS, {"version": "8.3"}),
    ("fx1", HOSTS, {"protocol": "D"}),
])
def test_render_resource_refuses_bad_input(name, hosts, kwargs):
    with pytest.raises(DrbdParseError):
        render_resource(name, hosts, **kwargs)


@pytest.mark.parametrize("text", [
    "resource r0 { net { protocol C; }",
    "resource r0 { net { protocol C } }",
    "resource r0 { } }",
    "on a { address 1.2.3.4:1; }",
])
def test_parse_config_malformed(text):
    with pytest.raises(DrbdParseError):
        parse_resource(text)


def test_parse_config_comments_and_quotes():
    items = parse_config('# comment\nglobal { usage-count no; }\nresource "r0" { }\n')
    assert items == [{"words": ["global"], "body": [{"words": ["usage-count", "no"]}]},
                     {"words": ["resource", "r0"], "body": []}]


def test_pair_resource_text_is_the_migrations_file():
    # the text livemigrate.HostSide wrote before it moved here (9b191fa), with c-min-rate 0 since: a resumed
    # migration of an older release rewrites its file and reconnects once (as a rekeyed resume does)
    hosts = [{"name": "hosta", "address": "10.77.0.11"}, {"name": "hostb", "address": "10.77.0.12"}]
    text = pair_resource_text("sl-web01-0", 12, 7712, "/dev/mapper/sl-web01-0.real", "/dev/xenvg/web01-disk.drbdmeta",
                              hosts, "s3cret", "100M")
    assert text == (
        "resource sl-web01-0 {\n"
        "  net { cram-hmac-alg sha256; shared-secret s3cret; after-sb-0pri disconnect; after-sb-1pri disconnect; "
        "after-sb-2pri disconnect; protocol C; }\n"
        "  disk { c-plan-ahead 0; resync-rate 100M; c-min-rate 0; al-extents 1237; }\n"
        "  on hosta {\n"
        "    device /dev/drbd12; disk /dev/mapper/sl-web01-0.real; address 10.77.0.11:7712; "
        "meta-disk /dev/xenvg/web01-disk.drbdmeta;\n"
        "  }\n"
        "  on hostb {\n"
        "    device /dev/drbd12; disk /dev/mapper/sl-web01-0.real; address 10.77.0.12:7712; "
        "meta-disk /dev/xenvg/web01-disk.drbdmeta;\n"
        "  }\n"
        "}\n")
    assert parse_resource(text)["hosts"][1]["name"] == "hostb"
    with pytest.raises(DrbdParseError, match="shared-secret"):
        pair_resource_text("sl-web01-0", 12, 7712, "/dev/mapper/x", "/dev/xenvg/m", hosts, "a b")
    for secret in (None, ""):
        with pytest.raises(DrbdParseError, match="a shared secret is required"):
            pair_resource_text("sl-web01-0", 12, 7712, "/dev/mapper/x", "/dev/xenvg/m", hosts, secret)


def refused(fixture_text, code_and_text):
    """The recorded refusal of drbdadm primary fxr (drbd-utils/9.22.0), its state-change error edited in: NOT
    a recording of that error (none is recorded)."""
    stderr = fixture_text("drbd-utils", "9.22.0", "drbdadm-primary-refused.stderr")
    assert "(-2) Need access to UpToDate data" in stderr
    return CommandError(["drbdadm", "disconnect", "fxr"], 17, "", stderr.replace("(-2) Need access to UpToDate data",
                                                                                 code_and_text))


def raise_(exc):
    raise exc


def test_retry_transient(fixture_text):
    now, sleeps = [0.0], []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    answers = [refused(fixture_text, "(-18) In transient state"), refused(fixture_text, "(-18) In transient state"), "done"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    assert retry_transient(call, sleep=sleep, clock=lambda: now[0]) == "done" and sleeps == [0.2, 0.2]
    # any other refusal (the recorded one as it is) at once
    recorded = CommandError(["drbdadm", "primary", "fxr"], 17, "", fixture_text("drbd-utils", "9.22.0", "drbdadm-primary-refused.stderr"))
    sleeps[:] = []
    with pytest.raises(CommandError, match="drbdadm primary fxr failed with rc 17"):
        retry_transient(lambda: raise_(recorded), sleep=sleep, clock=lambda: now[0])
    assert sleeps == []
    # and the transient one only until the timeout
    with pytest.raises(CommandError):
        retry_transient(lambda: raise_(refused(fixture_text, "(-18) In transient state")), timeout=1,
                        sleep=sleep, clock=lambda: now[0])
    assert len(sleeps) == 6


def test_device_minor():
    assert device_minor("/dev/drbd90") == 90 and device_minor("/dev/drbd0") == 0
    for value in ("/dev/drbd", "/dev/drbd9x", "/dev/xenvg/fxd", None, "/dev/drbd90\n"):
        assert device_minor(value) is None, value


def test_drbdadm_argv():
    assert drbdadm_argv("primary", "fx1", "--force") == ["drbdadm", "primary", "--force", "fx1"]
    with pytest.raises(DrbdParseError):
        drbdadm_argv("up", "fx1; reboot")


def test_parse_resource_device_minor_only_and_ipv6():
    parsed = parse_resource("resource r { on a { device minor 5; disk /d; meta-disk /m; address ipv6 [fd00::1]:7000; }\n"
                            "on b { device /dev/drbd5; disk /d; meta-disk /m; address 10.0.0.2:7000; } }\n")
    assert parsed["hosts"][0]["device"] == "/dev/drbd5"
    assert (parsed["hosts"][0]["address"], parsed["hosts"][0]["port"]) == ("[fd00::1]", 7000)
    with pytest.raises(DrbdParseError, match="unexpected statement"):
        parse_resource("resource r { on a { device /dev/drbd5 minor; address 1.2.3.4:1; } }")


# --------------------------------------------------------------------------- one resource (drbd_resource)

FXD = {"name": "fxd", "minor": 90, "port": 7990, "disk": "/dev/xenvg/fxd-disk", "meta_disk": "/dev/xenvg/fxd-meta",
       "host_name": "hosta", "address": "10.77.0.11", "peer_name": "hostb", "peer_address": "10.77.0.12",
       "resync_rate": "4M", "state": "up"}


def test_resource_text_is_the_recorded_lab_file(fixture_text):
    assert resource_text(FXD, "8.4") == fixture_text(*LAB + ("fxd.res",))


def test_resource_text_is_the_same_on_both_hosts():
    peer_side = dict(FXD, host_name="hostb", address="10.77.0.12", peer_name="hosta", peer_address="10.77.0.11")
    for version in ("8.4", "9"):
        assert resource_text(FXD, version) == resource_text(peer_side, version)


def test_resource_text_options_and_secret_mask():
    text = resource_text(dict(FXD, shared_secret="s3cr3t-x", allow_two_primaries=False, resync_rate=None), "8.4")
    parsed = parse_resource(text)
    assert parsed["net"] == {"allow-two-primaries": "no", "cram-hmac-alg": "sha256", "shared-secret": "s3cr3t-x",
                             "protocol": "C"}
    assert parsed["disk"] == {}
    masked = mask_secret(text)
    assert "s3cr3t-x" not in masked and "shared-secret ********;" in masked
    assert mask_secret('net { shared-secret "a b"; }') == "net { shared-secret ********; }"
    assert mask_secret(None) is None


def test_check_resource_params_accepts_the_lab_resource():
    check_resource_params(FXD)
    check_resource_params({"name": "fxd", "minor": 90, "state": "absent"})


@pytest.mark.parametrize("change, text", [
    ({"minor": 1048576}, "out of range"),
    ({"minor": True}, "out of range"),
    ({"port": 65536}, "port"),
    ({"name": "a" * 129}, "invalid resource name"),
    ({"shared_secret": "x" * 65}, "shared_secret"),
    ({"shared_secret": "a'b"}, "shared_secret"),
    ({"resync_rate": "0M"}, "resync_rate"),
])
def test_check_resource_params_refuses(change, text):
    with pytest.raises(DrbdError, match=text):
        check_resource_params(dict(FXD, **change))


def test_userland_version(fixture_text):
    assert userland_version("auto", parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-uptodate.txt",)))) == "8.4"
    assert userland_version("auto", {"version": "9.2.4"}) == "9"
    assert userland_version("auto", {"version": None}) == "8.4"
    assert userland_version("9", {"version": "8.4.11"}) == "9"


def test_is_synced_and_progress_on_recordings(fixture_text):
    def minor(name):
        return parse_proc_drbd(fixture_text(*LAB + (name,)))["minors"][90]
    assert is_synced(minor("proc-drbd-uptodate.txt")) and is_synced(minor("proc-drbd-dual-primary.txt"))
    for name in ("proc-drbd-wfconnection.txt", "proc-drbd-connected-inconsistent.txt", "proc-drbd-syncsource.txt",
                 "proc-drbd-synctarget.txt"):
        assert not is_synced(minor(name)), name
    assert not is_synced(None)
    for name in ("proc-drbd-syncsource.txt", "proc-drbd-synctarget.txt"):
        assert is_resyncing(minor(name)), name
    for name in ("proc-drbd-uptodate.txt", "proc-drbd-connected-inconsistent.txt", "proc-drbd-wfconnection.txt"):
        assert not is_resyncing(minor(name)), name
    assert not is_resyncing(None)
    view = resource_view("fxd", 90, minor("proc-drbd-synctarget.txt"))
    assert format_progress(view) == "fxd SyncTarget 75.6% speed 3788 KiB/s eta 13s"
    view = resource_view("fxd", 90, minor("proc-drbd-wfconnection.txt"))
    assert format_progress(view) == "fxd WFConnection Inconsistent/DUnknown speed - eta -"
    assert format_progress(resource_view("fxd", 90, None)) == "fxd down None/None speed - eta -"
    nine = drbd9_minors(parse_drbdsetup_status_json(fixture_text("drbd", "9.x", "drbdsetup-status.json")))
    assert is_synced(nine[2])


def test_both_uptodate_on_recordings(fixture_text):
    def minor(name):
        return parse_proc_drbd(fixture_text(*LAB + (name,)))["minors"][90]
    assert both_uptodate(minor("proc-drbd-uptodate.txt")) and both_uptodate(minor("proc-drbd-uptodate-secondary.txt"))
    assert not both_uptodate(minor("proc-drbd-syncsource.txt")) and not both_uptodate(minor("proc-drbd-wfconnection.txt"))
    # a sync report item of live_migration (the same keys)
    assert both_uptodate({"resource": "fxd", "disk": "UpToDate", "peer_disk": "UpToDate"})


def test_minor_state_unconfigured(fixture_text):
    minors = parse_proc_drbd(fixture_text(*LAB + ("proc-drbd-new-minor.txt",)))["minors"]
    assert minor_state(minors, 91) is None and minor_state(minors, 92) is None
    assert minor_state(minors, 90)["cstate"] == "WFConnection"


def test_runtime_changes(fixture_text):
    old = fixture_text(*LAB + ("fxd.res",))
    assert runtime_changes(old, old) == ({}, {}, False)
    assert runtime_changes(old, resource_text(dict(FXD, allow_two_primaries=True), "8.4")) == (
        {"allow-two-primaries": "yes"}, {}, False)
    assert runtime_changes(old, resource_text(dict(FXD, resync_rate="400M"), "8.4")) == ({}, {"resync-rate": "400M"}, False)
    assert runtime_changes(old, resource_text(dict(FXD, shared_secret="abc"), "8.4"))[2] is True
    assert runtime_changes(old, resource_text(dict(FXD, port=7991), "8.4"))[2] is True
    _net, disk, other = runtime_changes(None, old)
    assert disk == {"c-plan-ahead": "0", "resync-rate": "4M"} and other is True
    assert runtime_changes("garbage {", old)[2] is True


# metadata_state on hand-written inputs (not recordings; "No valid meta data found" is the
# message in drbdmeta's source). The recorded outputs of drbdadm get-gi are replayed in
# tests/unit/plugins/modules/test_drbd_resource_recorded.py: on blank metadata drbdadm 9.22.0
# fails silently with rc 1 (drbd-utils/9.22.0/drbdadm-get-gi-blank.*).
def test_metadata_state_decisions():
    assert metadata_state(0, "0:0:0:0:0:0\n", "") == "present"
    assert metadata_state(1, "", "") == "none"
    assert metadata_state(1, "\n", "") == "none"
    assert metadata_state(255, "", "No valid meta data found\n") == "none"
    assert metadata_state(255, "No valid meta data found\n", "") == "none"
    assert metadata_state(255, "", "Found meta data is \"unclean\", please apply-al first\n") == "present"
    with pytest.raises(DrbdError, match="not creating it"):
        metadata_state(20, "", "open(/dev/xenvg/fxd-meta) failed: No such file or directory\n")
    with pytest.raises(DrbdError, match="rc 255:"):
        metadata_state(255, "", "")  # silent, but not the rc drbdadm gives for blank metadata
    with pytest.raises(DrbdError, match="rc 1: .*not enough"):
        metadata_state(1, "", "/dev/xenvg/fxd-meta is only 4096 bytes. That's not enough.\n")


# --------------------------------------------------------------------------- a trusted peer copy

@pytest.mark.parametrize("version,name,minor,peer_primary,problems", [
    ("8.4.11", "proc-drbd-dual-primary.txt", 90, True, []),
    ("8.4.11", "proc-drbd-uptodate.txt", 90, False, []),
    ("8.4.11", "proc-drbd-uptodate.txt", 90, True, ["peer Secondary"]),
    ("8.4.11", "proc-drbd-syncsource.txt", 90, False,
     ["connection SyncSource", "disks UpToDate/Inconsistent", "68352 KiB out of sync"]),
    ("8.4.11", "proc-drbd-wfconnection.txt", 90, False,
     ["connection WFConnection", "disks Inconsistent/DUnknown", "196352 KiB out of sync"]),
    ("8.4.11", "proc-drbd-fxr-before-up.txt", 90, False, ["down"]),
])
def test_replica_problems_on_recorded_states(fixture_text, version, name, minor, peer_primary, problems):
    minors = parse_proc_drbd(fixture_text("drbd", version, name))["minors"]
    assert replica_problems(minor_state(minors, minor), peer_primary) == problems


def test_replica_problems_when_out_of_sync_cannot_be_read(fixture_text):
    # Connected and UpToDate/UpToDate, but the oos counter unreadable: not trusted
    minors = parse_proc_drbd(fixture_text("drbd", "8.4.11", "proc-drbd-uptodate.txt"))["minors"]
    state = dict(minor_state(minors, 90), stats={})
    assert replica_problems(state) == ["out-of-sync unknown (None)"]
