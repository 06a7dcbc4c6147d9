"""Cluster reports in the lab (issues 4 and 16): vmlist, hoststats, hostlist (JSON and CSV) and the
cluster report (report.yml, as an HTML page) against the real dom0s.

Other tests share the lab and create or remove their own domains meanwhile, so these tests
check Domain-0 of every host and a paused domain of their own (``rpvm``), not whole lists.
"""
import csv
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sanless_lab
from jsonschema import Draft202012Validator

from ansible_collections.sanless.xen.tests.report_browser import (BAR_COLOURS, CHROMEDRIVER, CHROMIUM, NO_CHROMEDRIVER,
                                                                  bar_runs, check_screenshot_colours, hex_colour, shoot)

REPO = Path(__file__).resolve().parents[2]
PAUSED_CFG = """name = "rpvm"
type = "pv"
kernel = "/usr/local/share/sanless/vmlinuz"
extra = "console=hvc0 quiet"
memory = 96
vcpus = 1
"""


def schema(name):
    return Draft202012Validator(json.loads((REPO / "docs" / "schemas" / name).read_text()))


def assert_valid(name, document):
    errors = list(schema(name).iter_errors(document))
    assert not errors, "\n".join("%s: %s" % (list(e.path), e.message) for e in errors)


def report(lab, playbook, tmp_path, *args):
    """Run a report playbook with -e format=json; its stdout and the JSON document."""
    out = tmp_path / (Path(playbook).stem + ".json")
    proc = lab.playbook(playbook, "-e", "format=json", "-e", "output=%s" % out, *args)
    return proc.stdout, json.loads(out.read_text())


def table_rows(stdout):
    """The table lines of the last report printed: HOST NAME ... as split fields."""
    return [line.split() for line in stdout.splitlines() if re.match(r"^\s+host\w+\s+\S", line)]


@pytest.fixture(scope="module")
def paused_vm(lab):
    """A paused domain rpvm on the second host (no disk, never runs), removed afterwards."""
    host = lab.hosts[1]
    sanless_lab.ssh(host, ["tee", "/root/rpvm.cfg"], input_text=PAUSED_CFG)
    lab.run(host, ["xl", "destroy", "rpvm"], check=False)
    lab.run(host, ["xl", "create", "-q", "-p", "/root/rpvm.cfg"])
    try:
        yield host, "rpvm"
    finally:
        lab.run(host, ["xl", "destroy", "rpvm"], check=False)
        lab.run(host, ["rm", "-f", "/root/rpvm.cfg"], check=False)


def test_vmlist_shows_every_domain0_and_our_vm_on_the_right_host(lab, tmp_path, paused_vm):
    vm_host, vm_name = paused_vm
    stdout, doc = report(lab, "playbooks/vmlist.yml", tmp_path)
    assert_valid("vmlist.schema.json", doc)
    for host in lab.hosts:
        dom0 = [d for d in doc["domains"] if d["host"] == host and d["name"] == "Domain-0"]
        assert len(dom0) == 1 and dom0[0]["is_dom0"] and dom0[0]["domid"] == 0, doc["domains"]
        assert {"host": host, "status": "ok"}.items() <= [h for h in doc["hosts"] if h["host"] == host][0].items()
    # the hostname Xen reports is the inventory's: each domain is listed under the host it runs on
    assert {h["host"]: h["hostname"] for h in doc["hosts"]} == {h: h for h in lab.hosts}
    mine = [d for d in doc["domains"] if d["name"] == vm_name]
    assert [(d["host"], d["state"], d["memory_mib"], d["vcpus"]) for d in mine] == [(vm_host, "--p---", 96, 1)]
    # what xl list says on that host right now agrees
    assert vm_name in lab.xl_domains(vm_host)
    # the table: one aligned line per domain with its host, and the totals line
    rows = table_rows(stdout)
    for host in lab.hosts:
        assert [host, "Domain-0", "0"] in [r[:3] for r in rows], stdout
    assert [vm_host, vm_name] in [r[:2] for r in rows]
    assert re.search(r"^\s+TOTAL\s+%d domains\s+%d\s+%d$" % (
        doc["totals"]["domains"], doc["totals"]["memory_mib"], doc["totals"]["vcpus"]), stdout, re.M), stdout
    assert doc["totals"]["domains"] == len(doc["domains"])
    assert doc["totals"]["memory_mib"] == sum(d["memory_mib"] for d in doc["domains"])
    assert "JSON document: %s" % (tmp_path / "vmlist.json") in stdout


def test_vmlist_host_wildcard_filters(lab, tmp_path):
    first = lab.hosts[0]
    stdout, doc = report(lab, "playbooks/vmlist.yml", tmp_path, "-e", "vm=%s/Domain*" % first)
    assert_valid("vmlist.schema.json", doc)
    assert [(d["host"], d["name"]) for d in doc["domains"]] == [(first, "Domain-0")]
    assert [h["host"] for h in doc["hosts"]] == [first]
    assert [r[:2] for r in table_rows(stdout)] == [[first, "Domain-0"]]
    assert "(VMs matching %s/Domain*)" % first in stdout


def test_vmlist_name_wildcard_across_hosts(lab, tmp_path, paused_vm):
    vm_host, vm_name = paused_vm
    _, doc = report(lab, "playbooks/vmlist.yml", tmp_path, "-e", "vm=rp*")
    assert [(d["host"], d["name"]) for d in doc["domains"] if d["name"] == vm_name] == [(vm_host, vm_name)]
    assert all(d["name"].startswith("rp") for d in doc["domains"])
    assert sorted(h["host"] for h in doc["hosts"]) == sorted(lab.hosts)


def test_vmlist_refuses_a_pattern_with_shell_metacharacters(lab):
    proc = lab.playbook("playbooks/vmlist.yml", "-e", "vm=web;reboot", check=False)
    assert proc.returncode != 0
    assert 'VM pattern "web;reboot" refused' in proc.stdout + proc.stderr


def test_unreachable_host_is_listed_not_dropped(lab, tmp_path):
    # a dom0 that cannot be reached: a closed port on the controller's loopback
    extra = tmp_path / "dead.yml"
    extra.write_text("dom0:\n  hosts:\n    rpdead:\n      ansible_host: 127.0.0.1\n      ansible_port: 9\n"
                     "      ansible_user: root\n      ansible_ssh_common_args: ''\n")
    stdout, doc = report(lab, "playbooks/vmlist.yml", tmp_path, "-i", str(extra))
    assert_valid("vmlist.schema.json", doc)
    dead = [h for h in doc["hosts"] if h["host"] == "rpdead"]
    # the error is ansible's own words, and they vary with the moment ssh gives up ("connect to host ... port 9:
    # Connection refused", or "Data could not be sent ... Broken pipe" when ssh dies before ansible writes)
    assert dead and dead[0]["status"] == "unreachable" and "127.0.0.1" in dead[0]["error"]
    assert re.search(r"^\s+rpdead\s+UNREACHABLE: \S", stdout, re.M), stdout
    for host in lab.hosts:
        assert [d for d in doc["domains"] if d["host"] == host and d["name"] == "Domain-0"]
    stdout, doc = report(lab, "playbooks/hoststats.yml", tmp_path, "-i", str(extra))
    assert_valid("hoststats.schema.json", doc)
    assert doc["totals"]["hosts_unreachable"] == 1 and doc["totals"]["hosts_ok"] == len(lab.hosts)
    assert re.search(r"^\s+rpdead\s+UNREACHABLE: ", stdout, re.M), stdout


SUMMED = ("domains", "guests", "nr_cpus", "dom0_vcpus", "guest_vcpus", "total_memory_mib", "used_memory_mib",
          "free_memory_mib", "guest_memory_mib", "disk_total_bytes", "disk_used_bytes", "disk_free_bytes")


def test_hoststats_totals_are_the_sum_over_hosts(lab, tmp_path):
    stdout, doc = report(lab, "playbooks/hoststats.yml", tmp_path, "-e", "vg=xenvg")
    assert_valid("hoststats.schema.json", doc)
    hosts = doc["hosts"]
    assert sorted(h["host"] for h in hosts) == sorted(lab.hosts)
    assert all(h["status"] == "ok" for h in hosts)
    for key in SUMMED:
        assert doc["totals"][key] == sum(h[key] for h in hosts), key
    for host in hosts:
        # against the dom0 itself
        info = lab.run(host["host"], ["xl", "info"]).stdout
        assert host["total_memory_mib"] == int(re.search(r"^total_memory\s*:\s*(\d+)", info, re.M).group(1))
        assert host["nr_cpus"] == int(re.search(r"^nr_cpus\s*:\s*(\d+)", info, re.M).group(1))
        size = lab.run(host["host"], ["vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_size",
                                      "xenvg"]).stdout.strip()
        assert host["disk_total_bytes"] == int(size)
        assert [v["name"] for v in host["vgs"]] == ["xenvg"]
    # the printed TOTAL line carries the same sums
    total = [line.split() for line in stdout.splitlines() if line.strip().startswith("TOTAL ")][-1]
    t = doc["totals"]
    assert total[1:4] == [str(t["guests"]), str(t["guest_vcpus"]), str(t["nr_cpus"])]
    assert total[5:8] == [str(t["total_memory_mib"]), str(t["used_memory_mib"]), str(t["free_memory_mib"])]
    assert "CPU% = guest vCPUs / physical CPUs" in stdout


def test_hostlist(lab, tmp_path):
    stdout, doc = report(lab, "playbooks/hostlist.yml", tmp_path)
    assert_valid("hoststats.schema.json", doc)
    assert doc["report"] == "hostlist"
    rows = {r[0]: r for r in table_rows(stdout)}
    for host in lab.hosts:
        assert rows[host][1:4] == ["ok", host, rows[host][3]] and rows[host][3].startswith("4.17.")
        assert rows[host][4] == "xl"
        assert any(v.startswith("xenvg(") for v in rows[host][9:])
    assert "%d hosts: %d ok, 0 unreachable, 0 failed" % (len(lab.hosts), len(lab.hosts)) in stdout


def xl_info_figure(lab, host, key):
    info = lab.run(host, ["xl", "info"]).stdout
    return int(re.search(r"^%s\s*:\s*(\d+)" % key, info, re.M).group(1))


def vg_size(lab, host):
    return int(lab.run(host, ["vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_size", "xenvg"]).stdout)


def test_hoststats_csv_has_a_row_per_dom0_with_its_figures(lab, tmp_path):
    out = tmp_path / "hosts.csv"
    proc = lab.playbook("playbooks/hoststats.yml", "-e", "format=csv", "-e", "output=%s" % out, "-e", "vg=xenvg")
    assert "CSV document: %s" % out in proc.stdout
    rows = list(csv.DictReader(out.open(newline="")))
    assert sorted(r["host"] for r in rows) == sorted(lab.hosts)
    for row in rows:
        assert row["status"] == "ok" and row["error"] == ""
        assert int(row["total_memory_mib"]) == xl_info_figure(lab, row["host"], "total_memory")
        assert int(row["disk_total_bytes"]) == vg_size(lab, row["host"])


def test_cluster_report_page_shows_each_dom0_and_our_vm(lab, tmp_path, paused_vm):
    vm_host, vm_name = paused_vm
    page = tmp_path / "cluster.html"
    proc = lab.playbook("playbooks/report.yml", "-e", "format=html", "-e", "output=%s" % page, "-e", "vg=xenvg")
    assert "HTML document: %s" % page in proc.stdout
    source = page.read_text()
    assert source.startswith("<!DOCTYPE html>") and "<script" not in source
    # the page as a reader sees it: one card per dom0, in inventory order
    text = html.unescape(" ".join(re.sub(r"<[^>]+>", " ", source).split()))
    assert "Dom0s answering %d / %d" % (len(lab.hosts), len(lab.hosts)) in text
    cards = text.split("Failure tolerance and failover plan")[0].split(" OK ")
    for host in lab.hosts:
        card = [c for c in cards[1:] if c.startswith("%s: Xen 4.17." % host)]
        assert len(card) == 1, text
        total = xl_info_figure(lab, host, "total_memory")
        assert re.search(r"\d+ of %d MiB used \(\d+%%\), \d+ MiB free" % total, card[0]), card[0]
        assert "of %.1f GiB used" % (vg_size(lab, host) / 1024.0 ** 3) in card[0], card[0]
        assert (vm_name in card[0]) == (host == vm_host)
    assert "Host failures tolerated" in text and "The planner's summary" in text


@pytest.fixture
def used_lv(lab, paused_vm):
    """An LV of a fifth of the free space of xenvg on our VM's dom0, removed afterwards: the VG bar there has
    a used part whatever other tests left (on CI's fresh lab every VG was empty and the bar had none)."""
    host = paused_vm[0]
    lab.run(host, ["lvremove", "-f", "xenvg/rpshot"], check=False)
    lab.run(host, ["lvcreate", "-y", "-W", "n", "-Z", "n", "-l", "20%FREE", "-n", "rpshot", "xenvg"])
    try:
        yield host, "xenvg/rpshot"
    finally:
        lab.run(host, ["lvremove", "-f", "xenvg/rpshot"], check=False)


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=NO_CHROMEDRIVER)
def test_cluster_report_screenshot_shows_the_lab_figures(lab, tmp_path, paused_vm, used_lv):
    """The lab's own report page in headless Chromium: the text it shows holds each dom0's memory (xl info),
    Domain-0's share (xl list) and our VM on its dom0, and in its screenshot the Domain-0 part of each memory
    bar and the used part of each VG bar are as long as the lab's figures say (within 2 px)."""
    _vm_host, vm_name = paused_vm
    page = tmp_path / "cluster.html"
    lab.playbook("playbooks/report.yml", "-e", "format=html", "-e", "output=%s" % page, "-e", "vg=xenvg")
    layout, width, height, rows = shoot(page, str(tmp_path / "profile"))
    check_screenshot_colours(width, height, rows, colours=BAR_COLOURS)
    text, scale = layout["text"], layout["dpr"]
    expected = {}
    for host in lab.hosts:
        total = xl_info_figure(lab, host, "total_memory")
        dom0 = int(lab.run(host, ["xl", "list", "Domain-0"]).stdout.splitlines()[1].split()[2])
        free = int(lab.run(host, ["vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_free", "xenvg"]).stdout)
        assert re.search(r"\d+ of %d MiB used" % total, text) and "Domain-0 %d MiB" % dom0 in text, (host, text)
        expected[(host, "memory")] = ("#5b7fb8", 100.0 * dom0 / total)
        expected[(host, "VG xenvg")] = ("#7b5ea7", 100.0 * (vg_size(lab, host) - free) / vg_size(lab, host))
    assert vm_name in text, text
    checked = set()
    for shown in layout["bars"]:
        key = (shown["host"], shown["title"])
        if key not in expected:
            continue
        colour, pct = expected[key]
        x0, x1, runs = bar_runs(rows, width, height, shown, scale)
        length = sum(n for c, n in runs if c == hex_colour(colour))
        assert abs(length - pct / 100.0 * (x1 - x0)) <= 2 * scale + 1, (key, length, pct, runs[:8])
        checked.add(key)
    assert checked == set(expected), sorted(set(expected) - checked)


def test_inventory_plugin_lists_the_lab_domus_under_their_dom0_and_a_second_call_uses_its_cache(lab, tmp_path, paused_vm):
    """ansible-inventory -i <sanless.xen.xen config> --graph on the lab: our domain under its dom0's group; a
    domain started after the first call is not in the second (the cache answered, no dom0 was read), and is in
    a third call with --flush-cache."""
    vm_host, vm_name = paused_vm
    config = tmp_path / "lab.xen.yml"
    config.write_text("plugin: sanless.xen.xen\ndom0_inventory: [%s]\ncache: true\n"
                      "cache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\n"
                      % (REPO / "inventory" / "lab.yml", tmp_path / "cache"))

    def graph(*args):
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(config), "--graph"]
                              + list(args), cwd=str(REPO), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=600, check=False,
                              env=dict(os.environ, ANSIBLE_FORCE_COLOR="0"))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def members(text, group):
        found = re.search(r"\|--@%s:\n((?:  \|  \|--\S+\n)*)" % re.escape(group), text)
        return re.findall(r"\|--(\S+)", found.group(1)) if found else []

    first = graph()
    assert vm_name in members(first, "dom0_" + vm_host), first
    late = "rpcache"
    lab.run(vm_host, ["xl", "destroy", late], check=False)
    sanless_lab.ssh(vm_host, ["tee", "/root/%s.cfg" % late], input_text=PAUSED_CFG.replace("rpvm", late))
    lab.run(vm_host, ["xl", "create", "-q", "-p", "/root/%s.cfg" % late])
    try:
        assert late not in graph(), "the second call read the dom0s instead of the cache"
        flushed = graph("--flush-cache")
        assert late in members(flushed, "dom0_" + vm_host), flushed
    finally:
        lab.run(vm_host, ["xl", "destroy", late], check=False)
        lab.run(vm_host, ["rm", "-f", "/root/%s.cfg" % late], check=False)
