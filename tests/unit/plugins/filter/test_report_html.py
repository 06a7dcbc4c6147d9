# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The cluster report of playbooks/report.yml (cluster_overview, report_html, and report_lines of it)
and the CSV of the tabular reports, built from what sanless.xen.xen_info makes of recorded lab
output and from what the planner (as the cluster_plan action calls it) makes of that; the HTML page
is also rendered in headless Chromium when it is installed."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from html.parser import HTMLParser

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.report import (
    FilterModule,
    cluster_overview,
    host_report,
    report_csv,
    report_lines,
    report_stats,
    vm_report,
)
from ansible_collections.sanless.xen.plugins.filter.report_html import FilterModule as HtmlFilters
from ansible_collections.sanless.xen.plugins.filter.report_html import report_html
from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv, vgs_argv
from ansible_collections.sanless.xen.plugins.module_utils.plan import cluster_report, inputs_from_xen_info
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
from ansible_collections.sanless.xen.plugins.modules import xen_info
from ansible_collections.sanless.xen.tests.report_browser import (CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, NO_CHROMEDRIVER,
                                                                  NO_CHROMIUM, bar_runs, check_screenshot_colours,
                                                                  hex_colour, keep_screenshot, png_pixels, shoot)

# A VM name no dom0 would accept from our modules, but xl lists whatever a config named it.
HOSTILE_VM = "<script>alert(1)</script>"
# What ssh may say about a host that does not answer: text from elsewhere, put in the page too.
HOSTILE_ERROR = "ssh: connect to host <b>hostc</b> & \"port\" 'x': No route to host"

# hosta: xl info and xl list of hosta, its VG after an LV was made in it, /proc/drbd while minor 90
# synced to hostb; hostb: its xl info, its xl list after fxm migrated in, the VG empty, both
# minors UpToDate. Recorded in the lab (tests/unit/fixtures/*/SOURCE).
DOM0S = {
    "hosta": {"info": ("xl", "4.17.5", "xl-info.txt"), "list": ("xl", "4.17.5", "xl-list-domu.txt"),
              "vgs": ("lvm", "2.03.16", "lvcreate-vgs-after.json"), "drbd": ("drbd", "8.4.11", "proc-drbd-syncsource.txt")},
    "hostb": {"info": ("xl", "4.17.5", "xl-info-peer.txt"), "list": ("xl", "4.17.5", "xl-list-migrate-target-after.txt"),
              "vgs": ("lvm", "2.03.16", "vgs.json"), "drbd": ("drbd", "8.4.11", "proc-drbd-uptodate-secondary.txt")},
}
# inventory variables of the VMs (group xen_vms), as plan.yml hands them to the planner
VM_VARS = {"fxrec": {"xen_storage_mode": "drbd", "xen_restart_on": ["hostb"]},
           "fxm": {"xen_storage_mode": "plain"}}
GIB = 1024 ** 3


def gather(fake_module, fixture_text, tmp_path, host, hostile=False):
    """The registered xen_info result of one dom0, from its recorded command output."""
    files = DOM0S[host]
    listing = fixture_text(*files["list"])
    if hostile:
        listing = listing.replace("fxm ", HOSTILE_VM + " ")
    proc = tmp_path / ("drbd-" + host)
    proc.write_text(fixture_text(*files["drbd"]))
    module = fake_module({
        ("xl", "info"): (0, fixture_text(*files["info"]), ""),
        ("xl", "list"): (0, listing, ""),
        tuple(vgs_argv()): (0, fixture_text(*files["vgs"]), ""),
        tuple(lvs_argv()): (0, fixture_text("lvm", "2.03.16", "lvs-domu.json"), ""),
    }, tools=["xl", "lvs"])
    return xen_info.gather(CommandRunner(module), config_dir=str(tmp_path / "no-auto"), proc_drbd=str(proc))


def plan_of(info, vm_vars):
    """What sanless.xen.cluster_plan registers (its action runs these two)."""
    hosts, vms, notes = inputs_from_xen_info(info, vm_vars)
    return dict(cluster_report(hosts, vms, notes=notes), changed=False)


@pytest.fixture
def info(fake_module, fixture_text, tmp_path):
    return {
        "hosta": gather(fake_module, fixture_text, tmp_path, "hosta"),
        "hostb": gather(fake_module, fixture_text, tmp_path, "hostb"),
        "hostc": {"unreachable": True, "changed": False, "msg": HOSTILE_ERROR},
    }


@pytest.fixture
def hostile_info(fake_module, fixture_text, tmp_path, info):
    return dict(info, hostb=gather(fake_module, fixture_text, tmp_path, "hostb", hostile=True))


@pytest.fixture
def overview(info):
    return cluster_overview(info, plan=plan_of(info, VM_VARS), vg="xenvg", generated_at="2026-12-03T16:00:00Z")


class Text(HTMLParser):
    """The text of a page as a reader sees it (entities decoded), and its tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.parts.append(data)

    @classmethod
    def of(cls, page):
        parser = cls()
        parser.feed(page)
        parser.close()
        return " ".join(" ".join(parser.parts).split()), parser.tags


# --------------------------------------------------------------------------- the document

def test_overview_holds_the_recorded_figures(overview):
    hosta, hostb, hostc = overview["hosts"]
    assert (hosta["host"], hosta["status"], hosta["total_memory_mib"], hosta["used_memory_mib"],
            hosta["free_memory_mib"]) == ("hosta", "ok", 1023, 397, 626)
    assert [(vm["name"], vm["memory_mib"], vm["storage"], vm["on_host_failure"]) for vm in hosta["vms"]] == [
        ("fxrec", 96, "replica on hostb", "restarts on hostb")]
    assert [(vm["name"], vm["storage"], vm["on_host_failure"]) for vm in hostb["vms"]] == [
        ("fxm", "plain: no replica", "NOT restarted: plain storage: no replica to restart from")]
    assert [(s["name"], s["mib"]) for s in hosta["memory_segments"]] == [
        ("Domain-0", 384), ("guests", 96), ("Xen and other", 0)]
    vg = hosta["vgs"][0]
    assert (vg["name"], vg["size_bytes"], vg["used_bytes"], vg["lv_count"]) == ("xenvg", 8585740288, 809500672, 4)
    assert vg["used_pct"] == 9.4 and hostb["vgs"][0]["used_pct"] == 0.0
    # /proc/drbd: minor 90 still syncing to hostb, minor 10 in sync; hostb has both UpToDate
    assert [(r["minor"], r["cstate"], r["healthy"]) for r in hosta["replicas"]] == [
        (10, "Connected", True), (90, "SyncSource", False)]
    assert hosta["replicas"][1]["problems"] == [
        "connection SyncSource", "disks UpToDate/Inconsistent", "68352 KiB out of sync"]
    assert hosta["replicas"][1]["sync_percent"] == 67.4
    assert [r["healthy"] for r in hostb["replicas"]] == [True, True]
    assert (hostc["status"], hostc["vms"], hostc["replicas"]) == ("unreachable", [], [])
    t = overview["totals"]
    assert (t["hosts"], t["hosts_ok"], t["hosts_unreachable"], t["guests"]) == (3, 2, 1, 2)
    assert (t["replicas"], t["replicas_healthy"]) == (4, 3)
    plan = overview["plan"]
    assert plan["available"] and plan["tolerated_failures"] == 1 and plan["offline_hosts"] == ["hostc"]
    assert plan["non_agile"] == ["fxm"]
    assert "vms" not in plan


def test_overview_without_a_plan_or_with_a_failed_one(info):
    assert cluster_overview(info)["plan"] == {"available": False, "error": "no plan was made", "summary": [],
                                              "failover": {}}
    failed = cluster_overview(info, plan={"failed": True, "msg": "cannot plan: VM 'x' runs on both a and b"})
    assert failed["plan"]["error"] == "cannot plan: VM 'x' runs on both a and b"
    assert all(vm["on_host_failure"] is None for h in failed["hosts"] for vm in h["vms"])
    assert "No failover plan: cannot plan" in report_html(failed)


def test_cluster_text_report(overview):
    lines = report_lines(overview)
    assert lines[0].split()[:2] == ["HOST", "DOMUS"]
    assert lines[1].split()[:9] == ["hosta", "1", "1", "2", "50%", "1023", "397", "626", "39%"]
    assert any(line.split()[:2] == ["hosta", "fxrec"] for line in lines)
    assert "Tolerated host failures: 1 (every order of failures among 2 live host(s) checked)" in lines
    assert "DRBD replicas: 3 of 4 healthy" in lines
    assert "  hosta minor 90: connection SyncSource; disks UpToDate/Inconsistent; 68352 KiB out of sync" in lines


def test_stats_for_the_job_artifacts(overview, info):
    stats = report_stats(overview, "/tmp/cluster-report.html")
    assert stats["report"] == "cluster" and stats["file"] == "/tmp/cluster-report.html"
    assert stats["hosts"] == {"hosta": "ok", "hostb": "ok", "hostc": "unreachable"}
    assert stats["errors"] == {"hostc": HOSTILE_ERROR}
    assert stats["plan"] == {"available": True, "error": None, "tolerated_failures": 1, "capped": False,
                             "offline_hosts": ["hostc"], "non_agile": ["fxm"], "overcommitted": None}
    assert stats["unhealthy_replicas"] == [
        "hosta minor 90: connection SyncSource; disks UpToDate/Inconsistent; 68352 KiB out of sync"]
    assert stats["totals"]["replicas"] == 4 and stats["totals"]["used_memory_mib"] == 794
    stats = report_stats(vm_report(info))
    assert (stats["report"], stats["file"], stats["totals"]["guests"]) == ("vmlist", None, 2)
    assert "plan" not in stats
    with pytest.raises(AnsibleFilterError):
        report_stats({"report": "other"})


def test_filters_are_registered():
    assert {"cluster_overview", "report_csv", "report_stats"} <= set(FilterModule().filters())
    assert HtmlFilters().filters() == {"report_html": report_html}


@pytest.mark.parametrize("document", [None, {"report": "vmlist"}, {}])
def test_report_html_needs_the_cluster_document(document):
    with pytest.raises(AnsibleFilterError):
        report_html(document)


# --------------------------------------------------------------------------- the page

def test_page_shows_the_figures(overview):
    page = report_html(overview)
    text, tags = Text.of(page)
    assert "Dom0s answering 2 / 3 1 unreachable, 0 failed" in text
    assert "397 of 1023 MiB used (39%), 626 MiB free: Domain-0 384 MiB guests 96 MiB Xen and other 0 MiB" in text
    assert "VG xenvg: 0.8 of 8.0 GiB used (9%), 7.2 GiB free, 4 LVs" in text
    assert "VG xenvg: 0.0 of 8.0 GiB used (0%), 8.0 GiB free, 0 LVs" in text
    assert "fxrec 7 ------ 96 1 replica on hostb restarts on hostb" in text
    assert "fxm 10 blocked 96 1 plain: no replica NOT restarted: plain storage: no replica to restart from" in text
    assert "90 - Primary/Secondary SyncSource UpToDate/Inconsistent 67.4%, 18 s left connection SyncSource; " \
           "disks UpToDate/Inconsistent; 68352 KiB out of sync" in text
    assert "Host failures tolerated 1 2 live, 1 offline dom0s" in text
    assert "DRBD replicas healthy 3 / 4" in text
    assert "hostb fxrec \u2192 hostb" not in text and "hosta fxrec \u2192 hostb" in text
    # bars: the memory segments and the VG use as widths
    widths = [a["style"] for tag, a in tags if tag == "span" and "style" in a]
    # hosta: Domain-0 384 MiB and guests 96 MiB of 1023, Xen's rest 0, then its VG 9.4% used; hostb likewise, VG empty
    assert widths == ["width: %s%%" % w for w in ("37.50", "9.40", "0.00", "9.40", "37.50", "9.40", "0.00", "0.00")]


def test_page_is_self_contained(overview):
    page = report_html(overview)
    _text, tags = Text.of(page)
    assert {tag for tag, _a in tags} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4",
                                         "div", "span", "table", "tr", "th", "td", "p", "b", "ul", "li"}
    assert not re.search(r"(?i)https?:|//|url\(|@import|<script|<link|<img|<iframe|<object|src=", page)
    csp = [a["content"] for tag, a in tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'"]


def test_every_value_is_escaped(hostile_info):
    doc = cluster_overview(hostile_info, plan=plan_of(hostile_info, VM_VARS), generated_at="<i>now</i>")
    page = report_html(doc)
    assert "<script" not in page and "<b>hostc" not in page and "<i>now" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "ssh: connect to host &lt;b&gt;hostc&lt;/b&gt; &amp; &#34;port&#34; &#39;x&#39;: No route to host" in page
    text, tags = Text.of(page)
    # a reader sees the names as they are
    assert HOSTILE_VM + " 10 blocked 96 1" in text
    assert HOSTILE_ERROR in text
    assert not [tag for tag, _a in tags if tag in ("script", "i")]


# --------------------------------------------------------------------------- CSV

def rows_of(text):
    assert text.endswith("\n") and "\r" not in text
    return list(csv.DictReader(io.StringIO(text)))


def test_vmlist_csv(hostile_info):
    rows = rows_of(report_csv(vm_report(hostile_info)))
    assert [(r["host"], r["name"], r["memory_mib"], r["state_names"], r["status"]) for r in rows] == [
        ("hosta", "Domain-0", "384", "running", "ok"), ("hosta", "fxrec", "96", "", "ok"),
        ("hostb", "Domain-0", "384", "running", "ok"), ("hostb", HOSTILE_VM, "96", "blocked", "ok"),
        ("hostc", "", "", "", "unreachable")]
    assert rows[1]["is_dom0"] == "false" and rows[1]["cpu_time_s"] == "15.8"
    assert rows[4]["error"] == HOSTILE_ERROR


def test_hoststats_and_hostlist_csv(info):
    rows = rows_of(report_csv(host_report(info, vg="xenvg")))
    assert list(rows[0])[:3] == ["host", "status", "guests"]
    assert [rows[0][k] for k in ("host", "total_memory_mib", "used_memory_mib", "memory_used_pct",
                                 "disk_total_bytes", "disk_used_bytes")] == ["hosta", "1023", "397", "38.8",
                                                                             "8585740288", "809500672"]
    assert (rows[2]["status"], rows[2]["total_memory_mib"]) == ("unreachable", "")
    rows = rows_of(report_csv(host_report(info, kind="hostlist")))
    assert (rows[0]["xen_version"], rows[0]["drbd_version"], rows[0]["vgs"]) == ("4.17.5", "8.4.11",
                                                                                 "xenvg:7776239616/8585740288")


def test_csv_defuses_formulas():
    doc = host_report({"=cmd": {"unreachable": True, "msg": "+SUM(A1)"}, "h@": {"failed": True, "msg": "@x"}})
    rows = rows_of(report_csv(doc))
    assert [(r["host"], r["error"]) for r in rows] == [("'=cmd", "'+SUM(A1)"), ("h@", "'@x")]


def test_csv_refuses_other_documents(overview):
    with pytest.raises(AnsibleFilterError):
        report_csv(overview)


# --------------------------------------------------------------------------- in a browser

@pytest.mark.once
@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is not None,
                    reason=NO_CHROMIUM if CHROMIUM is None else "chromedriver present: test_screenshot_shows_the_figures")
def test_page_renders_in_headless_chromium(overview, tmp_path):
    """Without chromedriver: chromium's own --screenshot of the page shows the report's colours."""
    page = tmp_path / "report.html"
    page.write_text(report_html(overview), encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + str(tmp_path / "profile"),
                                                  "--screenshot=" + str(shot), page.as_uri()],
                   check=True, capture_output=True, timeout=180)
    data = shot.read_bytes()
    keep_screenshot(data)
    width, height, rows = png_pixels(data)
    assert (width, height) == (1200, 1600)
    check_screenshot_colours(width, height, rows)


@pytest.mark.once
@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=NO_CHROMEDRIVER)
def test_screenshot_shows_the_figures(overview, tmp_path):
    """The page in headless Chromium through chromedriver: its screenshot shows the report's colours, the
    text it shows holds each dom0's figures, and in its screenshot each bar's coloured parts are as long
    as the figures say (Domain-0 and the guests' MiB of the host's memory, the VG's used share), measured
    in pixels on the bar's middle row."""
    page = tmp_path / "report.html"
    page.write_text(report_html(overview), encoding="utf-8")
    layout, width, height, rows = shoot(page, str(tmp_path / "profile"))
    check_screenshot_colours(width, height, rows)
    text = layout["text"]
    hosts = [h for h in overview["hosts"] if h["status"] == "ok"]
    assert len(hosts) == 2
    for host in hosts:
        assert "%s of %s MiB used" % (host["used_memory_mib"], host["total_memory_mib"]) in text
        for seg in host["memory_segments"]:
            assert "%s %s MiB" % (seg["name"], seg["mib"]) in text, seg
    assert "2 / 3" in text and "Tolerated host failures: 1" in text
    colours = {"seg0": hex_colour("#5b7fb8"), "seg1": hex_colour("#2e8b57"), "segdisk": hex_colour("#7b5ea7")}
    track = hex_colour("#dfe4ec")
    scale = layout["dpr"]
    checked = 0
    for shown in layout["bars"]:
        host = next(h for h in hosts if h["host"] == shown["host"])
        x0, x1, runs = bar_runs(rows, width, height, shown, scale)
        if shown["title"] == "memory":
            expected = [(colours["seg%d" % i], seg["pct"]) for i, seg in enumerate(host["memory_segments"][:2])]
        else:
            vg = next(g for g in host["vgs"] if "VG " + g["name"] == shown["title"])
            expected = [(colours["segdisk"], vg["used_pct"])]
        measured = dict((colour, length) for colour, length in runs if colour in colours.values() or colour == track)
        for colour, pct in expected:
            length = measured.get(colour, 0)
            # the share of the bar in the screenshot, within 2 px of what the figure says
            assert abs(length - pct / 100.0 * (x1 - x0)) <= 2 * scale + 1, (shown["host"], shown["title"], colour, length, pct, runs[:8])
            checked += 1
        if 100 - sum(p for _c, p in expected) > 3:
            assert measured.get(track, 0) > 0, (shown["host"], shown["title"], runs[:8])
    # hosta and hostb: Domain-0 and guests in the memory bar, one VG each
    assert checked == 6, checked
