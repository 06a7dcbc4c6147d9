# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The report filters: wildcards, VM name checks, vmlist/hoststats/hostlist documents (validated
against the schemas in docs/schemas) and their text tables."""

from __future__ import annotations

import json
import os

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from ansible_collections.sanless.xen.plugins.filter.report import (
    FilterModule,
    cluster_overview,
    format_table,
    host_report,
    is_vm_name,
    match_vm,
    parse_pattern,
    report_lines,
    state_names,
    valid_vm_name,
    vm_name_problem,
    vm_report,
)
from ansible_collections.sanless.xen.plugins.module_utils.lvm import parse_lvs
from ansible_collections.sanless.xen.plugins.test.vm_name import TestModule as VmNameTests
from ansible_collections.sanless.xen.tests.unit.conftest import read_fixture

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
GIB = 1024 ** 3


def schema(name):
    with open(os.path.join(REPO, "docs", "schemas", name), encoding="utf-8") as handle:
        data = json.load(handle)
    Draft202012Validator.check_schema(data)
    return Draft202012Validator(data)


def validate(name, document):
    # What -e format=json writes: the document through JSON.
    doc = json.loads(json.dumps(document))
    errors = sorted(schema(name).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join("%s: %s" % (list(e.path), e.message) for e in errors)


def dom(name, domid, mem, vcpus, state="-b----", cpu=1.5):
    return {"name": name, "domid": domid, "memory_mib": mem, "vcpus": vcpus, "state": state,
            "cpu_time_s": cpu, "config_file": None if domid == 0 else "/etc/xen/auto/%s.cfg" % name,
            "is_dom0": domid == 0}


def xen_info(hostname, domains, total=4096, free=1024, cpus=4, vgs=None):
    """A registered sanless.xen.xen_info result as the module's contract describes it."""
    return {
        "changed": False, "failed": False,
        "host": {"hostname": hostname, "total_memory_mib": total, "free_memory_mib": free, "nr_cpus": cpus,
                 "xen_version": "4.17.5", "virt_caps": ["pv", "hvm", "shadow"], "toolstack": "xl",
                 "info": {"host": hostname, "xen_commandline": "dom0_mem=1024M,max:1024M"}},
        "domains": domains,
        "vgs": vgs if vgs is not None else [
            {"name": "xenvg", "size_bytes": 100 * GIB, "free_bytes": 60 * GIB, "pv_count": 1, "lv_count": 3}],
        "lvs": [],
        "drbd": {"version": "8.4.11", "minors": {}},
    }


UNREACHABLE = {"unreachable": True, "changed": False, "failed": False,
               "msg": "Task failed: Data could not be sent to remote host \"10.0.0.13\". Make sure this host "
                      "can be reached over ssh: ssh: connect to host 10.0.0.13 port 22: No route to host\n"}


@pytest.fixture
def cluster():
    return {
        "host17": xen_info("host17", [dom("Domain-0", 0, 1024, 4, "r-----", 900.0), dom("web01", 3, 512, 2),
                                      dom("sql01", 4, 2048, 2, "r-----")]),
        "host18": xen_info("host18", [dom("Domain-0", 0, 1024, 4, "r-----"), dom("web02", 1, 256, 1),
                                      dom("mysql-2", 7, 1024, 1, "--p---")], total=8192, free=4096, cpus=8,
                           vgs=[{"name": "xenvg", "size_bytes": 200 * GIB, "free_bytes": 150 * GIB,
                                 "pv_count": 1, "lv_count": 2},
                                {"name": "rootvg", "size_bytes": 20 * GIB, "free_bytes": 0,
                                 "pv_count": 1, "lv_count": 2}]),
        "host19": UNREACHABLE,
        "host20": {"failed": True, "changed": False, "msg": "xl info: 'total_memory' missing from output"},
    }


# --------------------------------------------------------------------------- VM names

@pytest.mark.parametrize("name", ["web01", "Domain-0", "a", "db.example_1-x", "9lives", "x" * 64])
def test_valid_vm_names(name):
    assert vm_name_problem(name) is None
    assert is_vm_name(name)
    assert valid_vm_name(name) == name


@pytest.mark.parametrize("name, reason", [
    ("web 01", "whitespace"),
    ("web\t01", "whitespace"),
    ("a/b", "path separator"),
    ("../etc", "path separator"),
    ("a\\b", "path separator"),
    ("web;reboot", "shell metacharacters ;"),
    ("$(id)", "shell metacharacters $ ( )"),
    ("a`b`", "shell metacharacters `"),
    ("a|b&c", "shell metacharacters & |"),
    ("x>y", "shell metacharacters >"),
    ("it's", "shell metacharacters '"),
    ("web*", "shell metacharacters *"),
    ("", "empty"),
    ("x" * 65, "65 characters"),
    ("web 01; rm -rf /", "it contains whitespace; it contains a path separator; it contains shell metacharacters ;"),
    ("-rf", "starts with \"-\""),
    (".hidden", "starts with \".\""),
    ("caf\u00e9", "other than letters"),
    ("a+b", "other than letters, digits, _ . and -: +"),
    ("a\x00b", "control character"),
    (None, "must be a string"),
    (17, "must be a string"),
])
def test_invalid_vm_names_say_why(name, reason):
    problem = vm_name_problem(name)
    assert problem and reason in problem
    assert not is_vm_name(name)
    with pytest.raises(AnsibleFilterError) as exc:
        valid_vm_name(name)
    assert "refused" in str(exc.value) and reason in str(exc.value)
    assert "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" in str(exc.value)


@given(st.text(max_size=80))
def test_vm_name_check_agrees_with_the_regex(name):
    import re
    assert is_vm_name(name) == bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z", name))


def test_plugins_are_registered():
    assert set(FilterModule().filters()) == {"vm_report", "host_report", "cluster_overview", "report_lines",
                                             "report_csv", "report_stats", "format_table", "match_vm",
                                             "valid_vm_name"}
    assert VmNameTests().tests()["vm_name"]("web01") is True
    assert VmNameTests().tests()["vm_name"]("web 01") is False


# --------------------------------------------------------------------------- wildcards

@pytest.mark.parametrize("pattern, pairs", [
    (None, [("*", "*")]),
    ("", [("*", "*")]),
    ("*", [("*", "*")]),
    ("*web*", [("*", "*web*")]),
    ("host17/*sql*", [("host17", "*sql*")]),
    ("host17/", [("host17", "*")]),
    ("/web01", [("*", "web01")]),
    ("host1?/web*, *db*", [("host1?", "web*"), ("*", "*db*")]),
])
def test_parse_pattern(pattern, pairs):
    assert parse_pattern(pattern) == pairs


@pytest.mark.parametrize("pattern", ["a/b/c", "web;rm", "$(id)", "a b", "web,,db", 3])
def test_bad_patterns_are_refused(pattern):
    with pytest.raises(AnsibleFilterError):
        parse_pattern(pattern)


@pytest.mark.parametrize("name, pattern, host, expected", [
    ("web01", "*web*", "host17", True),
    ("web01", "*web*", None, True),
    ("sql01", "*web*", "host17", False),
    ("sql01", "host17/*sql*", "host17", True),
    ("sql01", "host17/*sql*", "host18", False),
    ("sql01", "host17/*sql*", None, True),
    ("mysql-2", "host1[89]/my*", "host18", True),
    ("Web01", "*web*", "host17", False),
    ("web01", "*db*,web0?", "host17", True),
    ("Domain-0", "hosta/Domain*", "hosta", True),
    ("Domain-0", "hosta/Domain*", "hostb", False),
])
def test_match_vm(name, pattern, host, expected):
    assert match_vm(name, pattern, host=host) is expected


# --------------------------------------------------------------------------- vmlist

def test_vm_report_lists_every_domain_with_its_host(cluster):
    report = vm_report(cluster, generated_at="2026-11-22T06:00:00+00:00")
    validate("vmlist.schema.json", report)
    assert [(d["host"], d["name"]) for d in report["domains"]] == [
        ("host17", "Domain-0"), ("host17", "sql01"), ("host17", "web01"),
        ("host18", "Domain-0"), ("host18", "mysql-2"), ("host18", "web02")]
    assert [(h["host"], h["status"]) for h in report["hosts"]] == [
        ("host17", "ok"), ("host18", "ok"), ("host19", "unreachable"), ("host20", "failed")]
    assert "No route to host" in report["hosts"][2]["error"]
    t = report["totals"]
    assert t == {"hosts": 4, "hosts_ok": 2, "hosts_unreachable": 1, "hosts_failed": 1, "domains": 6,
                 "guests": 4, "memory_mib": 1024 + 512 + 2048 + 1024 + 256 + 1024, "vcpus": 4 + 2 + 2 + 4 + 1 + 1,
                 "snapshot_alerts": 0}
    paused = [d for d in report["domains"] if d["name"] == "mysql-2"][0]
    assert paused["state_names"] == ["paused"]


def test_vm_report_wildcards(cluster):
    report = vm_report(cluster, "*sql*")
    assert [(d["host"], d["name"]) for d in report["domains"]] == [("host17", "sql01"), ("host18", "mysql-2")]
    assert report["totals"]["memory_mib"] == 2048 + 1024
    # host part: other hosts are out of the report, dead ones included
    report = vm_report(cluster, "host17/*sql*")
    validate("vmlist.schema.json", report)
    assert [(d["host"], d["name"]) for d in report["domains"]] == [("host17", "sql01")]
    assert [h["host"] for h in report["hosts"]] == ["host17"]
    # a dead host that the host part names is still reported
    report = vm_report(cluster, "host19/*")
    assert report["domains"] == [] and report["hosts"][0]["status"] == "unreachable"
    validate("vmlist.schema.json", report)


def test_vm_report_needs_a_dict():
    with pytest.raises(AnsibleFilterError):
        vm_report([xen_info("a", [])])


def test_missing_or_odd_results_are_failed_not_dropped():
    report = vm_report({"hosta": None, "hostb": {"changed": False}, "hostc": {"skipped": True}})
    assert [h["status"] for h in report["hosts"]] == ["failed", "failed", "failed"]
    validate("vmlist.schema.json", report)


def test_vmlist_table(cluster):
    lines = report_lines(vm_report(cluster))
    assert lines[0].split() == ["HOST", "NAME", "ID", "MEM(MiB)", "VCPUS", "STATE", "TIME(s)"]
    assert lines[1].split() == ["host17", "Domain-0", "0", "1024", "4", "r-----", "900.0"]
    # aligned: every column starts at the same offset on every table line
    name_col = lines[0].index("NAME")
    assert all(line[name_col - 2:name_col] == "  " for line in lines[1:8])
    assert lines[1][name_col:].startswith("Domain-0")
    mem_end = lines[0].index("MEM(MiB)") + len("MEM(MiB)")
    assert lines[1][:mem_end].endswith("1024") and lines[3][:mem_end].endswith(" 512")
    assert set(lines[7].replace(" ", "")) == {"-"}
    assert lines[8].split() == ["TOTAL", "6", "domains", "5888", "14"]
    assert lines[8][:mem_end].endswith("5888")
    assert lines[9] == "host19  UNREACHABLE: ssh: connect to host 10.0.0.13 port 22: No route to host"
    assert lines[10].startswith("host20  FAILED: xl info:")
    assert all(line == line.rstrip() for line in lines)


def test_vmlist_table_with_pattern_says_so(cluster):
    lines = report_lines(vm_report(cluster, "host17/*web*"))
    assert lines[1].split()[:2] == ["host17", "web01"]
    assert lines[-1] == "(VMs matching host17/*web*)"
    assert lines[-2].split() == ["TOTAL", "1", "domain", "512", "2"]


# --------------------------------------------------------------------------- hoststats

def test_host_report_per_host_and_totals(cluster):
    report = host_report(cluster, generated_at="2026-11-22T06:00:00+00:00")
    validate("hoststats.schema.json", report)
    h17, h18, h19, h20 = report["hosts"]
    assert (h19["status"], h20["status"]) == ("unreachable", "failed")
    assert h17["guests"] == 2 and h17["guest_vcpus"] == 4 and h17["dom0_vcpus"] == 4 and h17["nr_cpus"] == 4
    assert h17["cpu_alloc_pct"] == 100.0
    assert h17["used_memory_mib"] == 3072 and h17["memory_used_pct"] == 75.0
    assert h17["guest_memory_mib"] == 2560
    assert h17["disk_total_bytes"] == 100 * GIB and h17["disk_used_bytes"] == 40 * GIB
    # every VG counts by default; vg= narrows it
    assert h18["disk_total_bytes"] == 220 * GIB and h18["disk_used_bytes"] == 70 * GIB
    t = report["totals"]
    for key in ("domains", "guests", "nr_cpus", "guest_vcpus", "dom0_vcpus", "total_memory_mib",
                "used_memory_mib", "free_memory_mib", "guest_memory_mib", "disk_total_bytes",
                "disk_used_bytes", "disk_free_bytes"):
        assert t[key] == h17[key] + h18[key], key
    assert (t["hosts"], t["hosts_ok"], t["hosts_unreachable"], t["hosts_failed"]) == (4, 2, 1, 1)
    assert t["cpu_alloc_pct"] == round(100.0 * 6 / 12, 1)
    assert t["memory_used_pct"] == round(100.0 * (3072 + 4096) / (4096 + 8192), 1)
    only_xenvg = host_report(cluster, vg="xenvg")
    assert only_xenvg["hosts"][1]["disk_total_bytes"] == 200 * GIB
    assert [v["name"] for v in only_xenvg["hosts"][1]["vgs"]] == ["xenvg"]
    validate("hoststats.schema.json", only_xenvg)


def test_host_report_of_no_live_host_has_zero_totals():
    report = host_report({"a": UNREACHABLE})
    validate("hoststats.schema.json", report)
    assert report["totals"]["nr_cpus"] == 0 and report["totals"]["cpu_alloc_pct"] == 0.0


def test_host_report_kind():
    with pytest.raises(AnsibleFilterError):
        host_report({}, kind="vmlist")
    assert host_report({}, kind="hostlist")["report"] == "hostlist"


def test_hoststats_table(cluster):
    lines = report_lines(host_report(cluster))
    assert lines[0].split() == ["HOST", "DOMUS", "VCPUS", "PCPUS", "CPU%", "MEM(MiB)", "USED", "FREE", "MEM%",
                                "DISK(GiB)", "USED", "FREE", "DISK%"]
    assert lines[1].split() == ["host17", "2", "4", "4", "100%", "4096", "3072", "1024", "75%",
                                "100.0", "40.0", "60.0", "40%"]
    assert lines[2].split()[0] == "host18"
    assert set(lines[3].replace(" ", "")) == {"-"}
    assert lines[4].split() == ["TOTAL", "4", "6", "12", "50%", "12288", "7168", "5120", "58%",
                                "320.0", "110.0", "210.0", "34%"]
    assert lines[5].startswith("host19  UNREACHABLE: ")
    assert lines[6].startswith("host20  FAILED: ")
    assert lines[7].startswith("CPU% = guest vCPUs / physical CPUs")
    widths = {len(line) for line in lines[:5]}
    assert len(widths) == 1, "table lines differ in width: %s" % widths


def test_hostlist_table(cluster):
    report = host_report(cluster, kind="hostlist")
    validate("hoststats.schema.json", report)
    lines = report_lines(report)
    assert lines[0].split()[:6] == ["HOST", "STATUS", "HOSTNAME", "XEN", "TOOLSTACK", "DRBD"]
    assert lines[1].split() == ["host17", "ok", "host17", "4.17.5", "xl", "8.4.11", "4", "4096", "3",
                                "xenvg(60.0/100.0)"]
    assert lines[2].split()[-2:] == ["xenvg(150.0/200.0)", "rootvg(0.0/20.0)"]
    assert lines[3].split()[:2] == ["host19", "UNREACHABLE"] and "No route to host" in lines[3]
    assert lines[-1] == "4 hosts: 2 ok, 1 unreachable, 1 failed"


def test_report_lines_refuses_other_data():
    with pytest.raises(AnsibleFilterError):
        report_lines({"report": "nope"})


# --------------------------------------------------------------------------- format_table

def test_format_table_alignment_and_columns():
    rows = [{"a": "x", "n": 5, "f": 1.5, "b": True}, None, {"a": "longer", "n": 1234, "f": None, "b": False},
            {"a": "sum", "n": 1239}]
    lines = format_table(rows, ["a", "n:NUM", ["f", "F", "left"], {"key": "b", "title": "B"}])
    assert lines == [
        "A        NUM  F    B",
        "x          5  1.5  yes",
        "------  ----  ---  ---",
        "longer  1234  -    no",
        "sum     1239",
    ]


def test_format_table_exact():
    lines = format_table([{"k": "a", "v": 1}, {"k": "bbb", "v": 100}], ["k", "v"], rule_before_last=True)
    assert lines == ["K      V", "a      1", "---  ---", "bbb  100"]


@pytest.mark.parametrize("rows, columns", [("x", ["a"]), ([1], ["a"]), ([{}], [5])])
def test_format_table_refuses_bad_input(rows, columns):
    with pytest.raises(AnsibleFilterError):
        format_table(rows, columns)


def test_state_names():
    assert state_names("r-----") == ["running"]
    assert state_names("-b-s--") == ["blocked", "shutdown"]
    assert state_names("------") == []
    assert state_names(None) == []


def test_vmlist_and_hostlist_say_who_exports_what_to_whom(lab_storage_facts):
    # the two dom0s of the export recordings (tests/unit/conftest.py), read by xen_info disk_exports=true
    info = {host: dict(xen_info(host, [dom("Domain-0", 0, 384, 2, "r-----")]), disk_exports=lab_storage_facts(host))
            for host in ("hosta", "hostb")}
    info["hostc"] = UNREACHABLE
    vmlist = vm_report(info)
    validate("vmlist.schema.json", vmlist)
    assert [(e["host"], e["address"], e["to"]) for e in vmlist["exports"]] == [
        ("hosta", "iqn.2026-12.xen.sanless:hosta lun 0", ["hostb"]), ("hosta", "e1.2", ["hostb"]),
        ("hostb", "iqn.2026-12.xen.sanless:hostb lun 1", ["hosta"]), ("hostb", "e2.1", ["hosta"])]
    lines = report_lines(vmlist)
    assert lines[lines.index("Disk exports:") + 1:] == [
        "  hosta /dev/sanless/hosta/xenvg/rec0 iscsi iqn.2026-12.xen.sanless:hosta lun 0 -> hostb",
        "  hosta /dev/sanless/hosta/xenvg/rec1 aoe e1.2 -> hostb (vblade not running)",
        "  hostb /dev/sanless/hostb/xenvg/rec2 iscsi iqn.2026-12.xen.sanless:hostb lun 1 -> hosta",
        "  hostb /dev/sanless/hostb/xenvg/rec3 aoe e2.1 -> hosta"]
    assert [e["host"] for e in vm_report(info, "hostb/*")["exports"]] == ["hostb", "hostb"]

    hostlist = host_report(info, kind="hostlist")
    validate("hoststats.schema.json", hostlist)
    hostb = hostlist["hosts"][1]
    assert [(e["device"], e["backend"], e["to"]) for e in hostb["exports"]] == [
        ("/dev/xenvg/rec2", "tgt", ["hosta"]), ("/dev/xenvg/rec3", "vblade", ["hosta"])]
    assert [(i["owner"], i["path"], i["transport"], i["state"]) for i in hostb["imports"]] == [
        ("hosta", "/dev/sanless/hosta/xenvg/rec0", "iscsi", "LOGGED_IN"),
        ("hosta", "/dev/sanless/hosta/xenvg/rec1", "aoe", "up")]
    lines = report_lines(hostlist)
    assert lines[-5:] == ["Disk exports:"] + [line for line in report_lines(vmlist) if line.startswith("  host")]
    # hoststats stays as it was; without disk_exports a report has no exports
    assert "exports" not in host_report(info)["hosts"][0]
    assert vm_report(dict((h, dict(r, disk_exports=None)) for h, r in info.items() if h != "hostc"))["exports"] == []


# --------------------------------------------------------------------------- snapshot watchdog
# On the lvs of the lvmsnap recordings (lvm/2.03.16), as xen_info returns them: fxs-snap overflowed
# (invalid, 100 %), fxs-snap2 66.95 % full, fxs-snap3 35.44 %, all made 2026-12-04 04:39-04:40 UTC.

def with_snapshots(cluster):
    """A copy of the cluster whose host18 has the recorded snapshots (as JSON: what a registered result is)."""
    cluster = json.loads(json.dumps(cluster))
    cluster["host18"]["lvs"] = parse_lvs(read_fixture("lvm", "2.03.16", "lvs-snapshot-overflowed.json"))
    return json.loads(json.dumps(cluster))


SOON = "2026-12-04T05:00:00Z"      # 20 minutes after they were made
LATER = "2026-12-05T06:00:00Z"     # a day and more


def test_hoststats_lists_the_snapshots_to_look_at(cluster):
    report = host_report(with_snapshots(cluster), generated_at=SOON, snapshot_max_fill_pct=50)
    validate("hoststats.schema.json", report)
    h17, h18 = report["hosts"][:2]
    assert h17["snapshots"] == [] and h17["snapshot_alerts"] == 0
    assert [(s["name"], s["reasons"]) for s in h18["snapshots"]] == [
        ("fxs-snap", ["invalid: its copy-on-write space overflowed"]), ("fxs-snap2", ["67.0% full (over 50%)"])]
    assert h18["snapshots"][1]["age_hours"] == 0.3 and h18["snapshots"][1]["origin"] == "fxs-origin"
    assert report["totals"]["snapshot_alerts"] == 2
    assert report["snapshot_limits"] == {"max_age_hours": 24, "max_fill_pct": 50}
    lines = report_lines(report)
    at = lines.index("Snapshots to look at (older than 24 h, fuller than 50% or invalid):")
    assert lines[at + 1:] == [
        "  host18 xenvg/fxs-snap of fxs-origin, 0.0 GiB: invalid: its copy-on-write space overflowed",
        "  host18 xenvg/fxs-snap2 of fxs-origin, 0.0 GiB: 67.0% full (over 50%)"]


def test_hoststats_snapshot_age(cluster):
    report = host_report(with_snapshots(cluster), generated_at=LATER, snapshot_max_age_hours=12)
    validate("hoststats.schema.json", report)
    snaps = report["hosts"][1]["snapshots"]
    assert [s["name"] for s in snaps] == ["fxs-snap", "fxs-snap2", "fxs-snap3"]
    assert snaps[2]["reasons"] == ["25.3 h old (over 12 h)"]
    # nothing to say: no lines
    quiet = host_report(cluster, generated_at=LATER)
    assert not any(line.startswith("Snapshots") for line in report_lines(quiet))


def test_vmlist_lists_the_snapshots_of_its_hosts(cluster):
    report = vm_report(with_snapshots(cluster), generated_at=SOON)
    validate("vmlist.schema.json", report)
    assert [(s["host"], s["name"]) for s in report["snapshots"]] == [("host18", "fxs-snap")]
    assert report["totals"]["snapshot_alerts"] == 1
    assert report_lines(report)[-1] == (
        "  host18 xenvg/fxs-snap of fxs-origin, 0.0 GiB: invalid: its copy-on-write space overflowed")
    # the host part of the pattern picks the hosts whose snapshots are listed
    assert vm_report(with_snapshots(cluster), "host17/*", generated_at=SOON)["snapshots"] == []


def test_cluster_overview_carries_the_snapshots(cluster):
    overview = cluster_overview(with_snapshots(cluster), generated_at=SOON)
    assert overview["hosts"][1]["snapshot_alerts"] == 1 and overview["totals"]["snapshot_alerts"] == 1
    assert any(line.startswith("Snapshots to look at") for line in report_lines(overview))


@pytest.mark.parametrize("limits", [{"snapshot_max_age_hours": -1}, {"snapshot_max_fill_pct": "80"},
                                    {"snapshot_max_fill_pct": True}])
def test_snapshot_limits_are_numbers(cluster, limits):
    with pytest.raises(AnsibleFilterError, match="must be a number"):
        host_report(cluster, **limits)
    with pytest.raises(AnsibleFilterError, match="must be a number"):
        vm_report(cluster, **limits)


def test_vmlist_raid1_field_and_lines(lab_storage_facts):
    # a raid1 VM whose legs are the recorded rec0 (hosta, exported to hostb) and rec2 (hostb, exported to hosta):
    # judged on the storage facts without md; hostb silent makes it degraded with the cause
    from ansible_collections.sanless.xen.plugins.filter.raid1 import raid1_pairs
    info = {host: dict(xen_info(host, [dom("Domain-0", 0, 384, 2, "r-----")] + ([dom("rec", 5, 256, 1)] if host == "hosta" else [])),
                       disk_exports=lab_storage_facts(host)) for host in ("hosta", "hostb")}
    inventory = {"rec": {"xen_storage_mode": "raid1", "xen_home": "hosta", "xen_raid1_partner": "hostb",
                         "xen_disks": [{"name": "0", "size": "8M", "vdev": "xvdb", "partner_vdev": "xvdc"}]},
                 "plain": {"xen_storage_mode": "plain"}}
    hostvars = dict((h, {"xen_info_result": info[h]}) for h in info)
    hostvars.update(inventory)
    pairs = raid1_pairs(hostvars, ["hosta", "hostb"], ["rec", "plain"])
    # rec-0 is not the recorded LV name (rec0): both legs' LVs are missing, which says why
    assert list(pairs) == ["rec"] and pairs["rec"]["hosts"] == ["hosta", "hostb"]
    assert pairs["rec"]["state"] == "failed" and "no LV xenvg/rec-0 on hosta" in pairs["rec"]["causes"][0]
    vmlist = vm_report(info, raid1=pairs)
    validate("vmlist.schema.json", vmlist)
    assert [(d["name"], d["raid1"] and d["raid1"]["state"]) for d in vmlist["domains"]] == [
        ("Domain-0", None), ("rec", "failed"), ("Domain-0", None)]
    lines = report_lines(vmlist)
    at = lines.index("RAID1 pairs (md not read: playbooks/raid1_status.yml reads it):")
    assert lines[at + 1].startswith("  rec on hosta: legs on hosta and hostb, failed; hosta's leg")
    assert "RAID1 pairs" not in " ".join(report_lines(vm_report(info)))
