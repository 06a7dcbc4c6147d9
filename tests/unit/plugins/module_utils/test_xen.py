# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.conventions import drbd_device, lv_path
from ansible_collections.sanless.xen.plugins.module_utils.runner import C_LOCALE, CommandRunner
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    Toolstack,
    XenParseError,
    auto_config_vms,
    detect_toolstack,
    domu_facts,
    move_disk_paths,
    parse_domain_config,
    parse_xl_info,
    parse_xl_list,
    parse_xl_list_long,
    pin_domain_identity,
    render_domain_config,
    storage_mode,
    toolstack_argv,
)

XL = ("xl", "4.17.5")

# --------------------------------------------------------------------------- xl 4.17 lab recordings


def test_xl_list_dom0_only(fixture_text):
    assert parse_xl_list(fixture_text(*XL + ("xl-list.txt",))) == [
        {"name": "Domain-0", "domid": 0, "memory_mib": 384, "vcpus": 2, "state": "r-----", "cpu_time_s": 308.3}]


def test_xl_list_with_domus(fixture_text):
    domains = parse_xl_list(fixture_text(*XL + ("xl-list-domu.txt",)))
    assert domains[1] == {"name": "fxrec", "domid": 7, "memory_mib": 96, "vcpus": 1, "state": "------", "cpu_time_s": 15.8}
    paused = parse_xl_list(fixture_text(*XL + ("xl-list-paused.txt",)))
    assert [(d["name"], d["state"], d["memory_mib"]) for d in paused] == [
        ("Domain-0", "r-----", 384), ("fxrec", "--p---", 96), ("mig1", "--p---", 0)]


def test_xl_list_domain_suspended_by_a_migration(fixture_text):
    # xl's fifth flag is the shutdown reason letter ("-rscwS"): s = suspended, as the source
    # domain is in the last phase of xl migrate
    domains = parse_xl_list(fixture_text(*XL + ("xl-list-migrating-suspended.txt",)))
    assert domains[1] == {"name": "web01", "domid": 7, "memory_mib": 96, "vcpus": 1, "state": "---ss-", "cpu_time_s": 94.8}
    with pytest.raises(XenParseError):
        parse_xl_list(fixture_text(*XL + ("xl-list-migrating-suspended.txt",)).replace("---ss-", "---sx-"))


def test_xl_list_tab_separated_header(fixture_text):
    # xl prints tabs between VCPUs, State and Time(s) in its header line.
    assert "VCPUs\tState\tTime(s)" in fixture_text(*XL + ("xl-list.txt",))


def test_xl_info(fixture_text):
    info = parse_xl_info(fixture_text(*XL + ("xl-info.txt",)))
    assert info["total_memory_mib"] == 1023
    assert info["free_memory_mib"] == 626
    assert info["nr_cpus"] == 2
    assert info["xen_version"] == "4.17.5"
    assert info["virt_caps"] == ["pv", "hvm", "hap", "shadow", "gnttab-v1", "gnttab-v2"]
    assert info["host"] == "hosta"
    assert info["xen_scheduler"] == "credit2"
    assert info["xen_changeset"] == ""
    assert info["xen_commandline"].endswith("spec-ctrl=eager-fpu")
    assert info["cc_compile_date"] == "Sat Nov 29 13:52:25 UTC 2025"
    assert info["xen_caps"] == "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"


def test_xl_info_every_line_kept(fixture_text):
    text = fixture_text(*XL + ("xl-info.txt",))
    info = parse_xl_info(text)
    keys = [line.split(":", 1)[0].strip() for line in text.splitlines() if line.strip()]
    assert len(keys) == 34
    assert all(key in info for key in keys)


def test_xl_list_long_one_domain(fixture_text):
    domains = parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxrec.json",)))
    assert len(domains) == 1
    dom = domains[0]
    assert (dom["domid"], dom["name"], dom["type"], dom["memory_kib"], dom["vcpus"]) == (7, "fxrec", "pv", 98304, 1)
    assert dom["uuid"] == "cf25e9ab-c59b-4a6f-bbc5-b1280d8e6a1a"
    assert dom["disks"] == [{"pdev_path": "/dev/xenvg/fxrec-disk", "vdev": "xvda", "format": "raw", "readwrite": True}]
    assert dom["config"]["on_crash"] == "preserve"


def test_xl_list_long_all(fixture_text):
    domains = parse_xl_list_long(fixture_text(*XL + ("xl-list-l.json",)))
    assert "fxrec" in [dom["name"] for dom in domains]


def test_xl_list_long_truncated_raises(fixture_text):
    text = fixture_text(*XL + ("xl-list-l-fxrec.json",))
    with pytest.raises(XenParseError):
        parse_xl_list_long(text[: len(text) // 2])


def test_recorded_domu_config_round_trip(fixture_text):
    text = fixture_text(*XL + ("domu-fxrec.cfg",))
    cfg = parse_domain_config(text)
    assert cfg["name"] == "fxrec"
    assert cfg["memory"] == 96
    assert cfg["disk"] == ["phy:/dev/xenvg/fxrec-disk,xvda,w"]
    assert parse_domain_config(render_domain_config(cfg)) == cfg
    assert render_domain_config(cfg, template=text) == text


def test_move_disk_paths_of_the_recorded_config(fixture_text):
    text = fixture_text(*XL + ("domu-fxrec.cfg",))
    # the same VG, or a move of another LV: the text as it is (nothing is parsed or rendered)
    assert move_disk_paths(text, [("xenvg", "fxrec-disk", "xenvg"), ("xenvg", "fxrec-disk2", "datavg")]) is text
    moved = move_disk_paths(text, [("xenvg", "fxrec-disk", "datavg")])
    assert moved == text.replace("disk = [ 'phy:/dev/xenvg/fxrec-disk,xvda,w' ]", 'disk = [ "phy:/dev/datavg/fxrec-disk,xvda,w" ]')


@pytest.mark.parametrize("spec,moved", [
    # the recorded disk (domu-fxrec.cfg) in xl's other forms: NOT recorded configs, each as xl-disk-configuration has it
    ("/dev/xenvg/fxrec-disk,raw,xvda,w", "/dev/data-vg/fxrec-disk,raw,xvda,w"),
    ("phy:/dev/mapper/xenvg-fxrec--disk,xvda,w", "phy:/dev/mapper/data--vg-fxrec--disk,xvda,w"),
    ("format=raw, vdev=xvda, access=w, target=/dev/xenvg/fxrec-disk", "format=raw, vdev=xvda, access=w, target=/dev/data-vg/fxrec-disk"),
    ("vdev=xvda, target=/dev/xenvg/fxrec-disk,more", None),     # target= takes the rest: another device
    ("phy:/dev/xenvg/fxrec-disk2,xvdb,w", None),                # another LV
    ("phy:/dev/othervg/fxrec-disk,xvdb,w", None),               # the same LV name in another VG
])
def test_move_disk_paths_forms(fixture_text, spec, moved):
    text = fixture_text(*XL + ("domu-fxrec.cfg",)).replace("phy:/dev/xenvg/fxrec-disk,xvda,w", spec)
    out = move_disk_paths(text, [("xenvg", "fxrec-disk", "data-vg")])
    assert parse_domain_config(out)["disk"] == [moved or spec]
    assert (out == text) == (moved is None)
    assert [line for line in out.splitlines() if not line.startswith("disk")] == \
        [line for line in text.splitlines() if not line.startswith("disk")]


# The recorded config (domu-fxrec.cfg) renamed fxm, the domain of xl-list-l-fxm.json: NOT recorded.
def fxm_cfg(fixture_text):
    return fixture_text(*XL + ("domu-fxrec.cfg",)).replace("fxrec", "fxm")


# The config xl-list-l-fxm-nics.derived.json stands for (see the README there): fxm_cfg with two vifs.
FXM_VIFS = "vif = [ 'bridge=xenbr0', 'bridge=xenbr0,mac=00:16:3e:4c:01:09' ]\n"


def test_xl_list_long_nics(fixture_text):
    # derived, NOT recorded: see xl/4.17.5/README
    fxm = parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxm-nics.derived.json",)))[0]
    assert fxm["nics"] == [{"devid": 0, "mac": "00:16:3e:5a:c1:07", "bridge": "xenbr0"},
                           {"devid": 1, "mac": "00:16:3e:4c:01:09", "bridge": "xenbr0"}]
    assert parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxm.json",)))[0]["nics"] == []


def test_pin_domain_identity_of_the_recorded_domain(fixture_text):
    # xl-list-l-fxm.json (recorded): no nics; the config sets no uuid, so the domain's own is added
    fxm = parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxm.json",)))[0]
    text = fxm_cfg(fixture_text)
    assert pin_domain_identity(text, fxm) == text + 'uuid = "be57e07c-fdb4-46e1-a1b3-8d3ee65bea69"\n'
    # a uuid the config sets is kept (even another one): the text as it is
    own = 'uuid = "cf25e9ab-c59b-4a6f-bbc5-b1280d8e6a1a"\n' + text
    assert pin_domain_identity(own, fxm) is own


def test_pin_domain_identity_adds_the_macs_libxl_chose(fixture_text):
    fxm = parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxm-nics.derived.json",)))[0]
    text = fxm_cfg(fixture_text) + FXM_VIFS
    out = pin_domain_identity(text, fxm)
    # vif 0 (devid 0) gets the MAC libxl chose; vif 1 keeps the one it sets; the rest of the text as written
    assert out == text.replace(FXM_VIFS, 'vif = [ "bridge=xenbr0,mac=00:16:3e:5a:c1:07", '
                                         '"bridge=xenbr0,mac=00:16:3e:4c:01:09" ]\n') + \
        'uuid = "be57e07c-fdb4-46e1-a1b3-8d3ee65bea69"\n'
    assert parse_domain_config(out)["disk"] == parse_domain_config(text)["disk"]
    # applied again: nothing left to add
    assert pin_domain_identity(out, fxm) is out


@pytest.mark.parametrize("vif,pinned", [
    ("''", "mac=00:16:3e:5a:c1:07"),                                  # an empty vif: every setting libxl's
    ("'bridge=xenbr0,'", "bridge=xenbr0,mac=00:16:3e:5a:c1:07"),      # a trailing comma: no empty setting
    ("'mac=00:16:3E:5A:C1:07 ,bridge=xenbr0'", None),                 # mac= set (spaces, case as written)
    ("'bridge=xenbr0,vifname=mac'", "bridge=xenbr0,vifname=mac,mac=00:16:3e:5a:c1:07"),  # 'mac' as a value only
])
def test_pin_domain_identity_vif_forms(fixture_text, vif, pinned):
    # the derived domain's first nic alone, against one vif in xl's forms (NOT recorded configs)
    fxm = parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxm-nics.derived.json",)))[0]
    fxm["nics"] = fxm["nics"][:1]
    text = 'uuid = "be57e07c-fdb4-46e1-a1b3-8d3ee65bea69"\n' + fxm_cfg(fixture_text) + "vif = [ %s ]\n" % vif
    out = pin_domain_identity(text, fxm)
    if pinned is None:
        assert out is text
    else:
        assert parse_domain_config(out)["vif"] == [pinned]


@pytest.mark.parametrize("vifs,keep", [
    (["bridge=xenbr0"], 1),                                   # the file has fewer vifs than the domain nics
    (["bridge=xenbr0", "bridge=xenbr0", "bridge=xenbr1"], 2),  # more
    (["bridge=xenbr0", "bridge=xenbr0"], "gap"),               # as many, but devid 0 detached and 2 attached
])
def test_pin_domain_identity_refuses_to_guess(fixture_text, vifs, keep):
    fxm = parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxm-nics.derived.json",)))[0]
    if keep == "gap":
        fxm["nics"] = [fxm["nics"][1], dict(fxm["nics"][0], devid=2)]
    text = fxm_cfg(fixture_text) + render_domain_config({"vif": vifs})
    with pytest.raises(XenParseError, match="which MAC belongs to which vif cannot be told; set mac= in each vif"):
        pin_domain_identity(text, fxm)
    # with every vif's mac= set there is nothing to match: only the uuid is added
    macs = ["%s,mac=00:16:3e:4c:01:%02x" % (vif, index) for index, vif in enumerate(vifs)]
    text = fxm_cfg(fixture_text) + render_domain_config({"vif": macs})
    assert parse_domain_config(pin_domain_identity(text, fxm))["vif"] == macs


def test_pin_domain_identity_needs_a_mac_from_xl(fixture_text):
    fxm = parse_xl_list_long(fixture_text(*XL + ("xl-list-l-fxm-nics.derived.json",)))[0]
    fxm["nics"][0]["mac"] = None
    with pytest.raises(XenParseError, match="xl list -l gives vif 0 no MAC address"):
        pin_domain_identity(fxm_cfg(fixture_text) + FXM_VIFS, fxm)


def test_toolstack_reads_replayed_output(fake_module, fixture_text):
    module = fake_module({
        ("xl", "list"): (0, fixture_text(*XL + ("xl-list-domu.txt",)), ""),
        ("xl", "info"): (0, fixture_text(*XL + ("xl-info.txt",)), ""),
        ("xl", "list", "-l", "fxrec"): (0, fixture_text(*XL + ("xl-list-l-fxrec.json",)), ""),
    })
    xl = Toolstack(CommandRunner(module), "xl")
    assert [d["name"] for d in xl.list()] == ["Domain-0", "fxrec"]
    assert xl.info()["nr_cpus"] == 2
    assert xl.list_long("fxrec")[0]["memory_kib"] == 98304


# --------------------------------------------------------------------------- legacy xm samples


def test_xm_list(fixture_text):
    domains = parse_xl_list(fixture_text("xm", "3.x", "xm-list.txt"))
    assert domains == [
        {"name": "Domain-0", "domid": 0, "memory_mib": 1024, "vcpus": 4, "state": "r-----", "cpu_time_s": 80.8},
        {"name": "test2", "domid": 1, "memory_mib": 768, "vcpus": 4, "state": "-b----", "cpu_time_s": 25.8},
    ]


def test_xm_list_wide_columns(fixture_text):
    domains = parse_xl_list(fixture_text("xm", "3.x", "xm-list-oda.txt"))
    assert [(d["name"], d["memory_mib"], d["vcpus"], d["cpu_time_s"]) for d in domains] == [
        ("Domain-0", 2039, 32, 119019.9), ("oakDom1", 251904, 32, 2815.8)]


@pytest.mark.parametrize("text, message", [
    ("", "header"),
    ("Domain-0 0 384 1 r----- 10.0\n", "header"),
    ("Name ID Mem VCPUs State Time(s)\nDomain-0 0 384 1\n", "short line"),
    ("Name ID Mem VCPUs State Time(s)\nDomain-0 0 384 1 running 10.0\n", "bad state"),
    ("Name ID Mem VCPUs State Time(s)\nDomain-0 0 384 1 r---- 10.0\n", "bad state"),
    ("Name ID Mem VCPUs State Time(s)\nDomain-0 0 384M 1 r----- 10.0\n", "memory"),
    ("Name ID Mem VCPUs State Time(s)\nDomain-0 0 384 1 r----- 1:00\n", "bad time"),
    ("Name ID Mem VCPUs State Time(s) Security Label\nDomain-0 0 384 1 r----- 1.0 SYSTEM\n", "security labels"),
])
def test_xl_list_malformed(text, message):
    with pytest.raises(XenParseError, match=message):
        parse_xl_list(text)


def test_xl_info_xm_style_version_from_parts():
    text = ("host                   : oldbox\nrelease                : 2.6.18-xen\nnr_cpus                : 4\n"
            "total_memory           : 4095\nfree_memory            : 12\nxen_major              : 3\n"
            "xen_minor              : 4\nxen_extra              : .2\nxen_caps               : xen-3.0-x86_64 \n")
    info = parse_xl_info(text)
    assert info["xen_version"] == "3.4.2"
    assert info["virt_caps"] == []
    assert info["total_memory_mib"] == 4095
    assert info["xen_caps"] == "xen-3.0-x86_64"


@pytest.mark.parametrize("text, message", [
    ("", "total_memory"),
    ("host : a\nthis is not a key line\n", "unexpected line"),
    ("nr_cpus : 2\ntotal_memory : 767\nfree_memory : lots\nxen_version : 4.17.5\n", "free_memory"),
    ("nr_cpus : 2\ntotal_memory : 767\nfree_memory : 10\n", "xen_version"),
])
def test_xl_info_malformed(text, message):
    with pytest.raises(XenParseError, match=message):
        parse_xl_info(text)


@pytest.mark.parametrize("text, message", [
    ("(domain (domid 1))", "SXP"),
    ("[", "invalid JSON"),
    ('{"domid": 1}', "JSON list"),
    ('[{"domid": 1}]', "without domid/config"),
    ('[{"domid": 1, "config": {"c_info": {}}}]', "c_info.name"),
])
def test_xl_list_long_malformed(text, message):
    with pytest.raises(XenParseError, match=message):
        parse_xl_list_long(text)


# --------------------------------------------------------------------------- domain configs

POC_CFG = """name = "vm1"
type = "pv"
kernel = "/boot/vmlinuz-6.1.0-28-amd64"
ramdisk = "/root/domu/initrd-busybox.gz"
extra = "console=hvc0 quiet"
memory = 96
vcpus = 1
disk = [ 'phy:/dev/xenvg/vm1-disk,xvda,w' ]
on_crash = "preserve"
"""


def test_parse_domain_config_poc():
    cfg = parse_domain_config(POC_CFG)
    assert cfg == {
        "name": "vm1", "type": "pv", "kernel": "/boot/vmlinuz-6.1.0-28-amd64",
        "ramdisk": "/root/domu/initrd-busybox.gz", "extra": "console=hvc0 quiet", "memory": 96,
        "vcpus": 1, "disk": ["phy:/dev/xenvg/vm1-disk,xvda,w"], "on_crash": "preserve"}
    assert list(cfg) == ["name", "type", "kernel", "ramdisk", "extra", "memory", "vcpus", "disk", "on_crash"]


def test_parse_domain_config_syntax_variants():
    text = ("# header comment\n"
            "name='web01' ; memory = 0x100\n"
            "vif = [ 'mac=00:16:3e:00:00:01,bridge=br0',   # first nic\n"
            "        \"bridge=br1\",\n"
            "      ]\n"
            "cpu_weight = 256 # trailing comment\n"
            'extra = "a \\"quoted\\" word"\n'
            "empty = []\n"
            "ratio = 1.5\n")
    assert parse_domain_config(text) == {
        "name": "web01", "memory": 256, "vif": ["mac=00:16:3e:00:00:01,bridge=br0", "bridge=br1"],
        "cpu_weight": 256, "extra": 'a "quoted" word', "empty": [], "ratio": 1.5}


@pytest.mark.parametrize("text, message", [
    ("name = vm1\n", "expected a quoted string"),
    ("name \"vm1\"\n", "expected '='"),
    ("name = \"vm1\n", "cannot read"),
    ("disk = [ 'a' 'b' ]\n", "expected ',' or ']'"),
    ("disk = [ ['a'] ]\n", "nested lists"),
    ("name = \"a\" \"b\"\n", "unexpected"),
    ("name = \"a\"\nname = \"b\"\n", "set twice"),
    ("= 1\n", "setting name"),
    ("memory = 12abc\n", "cannot read|expected"),
])
def test_parse_domain_config_malformed(text, message):
    with pytest.raises(XenParseError, match=message):
        parse_domain_config(text)


def test_render_parse_round_trip():
    cfg = {"name": "fx1", "memory": 96, "vcpus": 1, "disk": ["phy:/dev/xenvg/fx1-disk,xvda,w"],
           "extra": 'console=hvc0 "q" \\ end', "vif": [], "ratio": 0.5}
    text = render_domain_config(cfg)
    assert text.splitlines()[0] == 'name = "fx1"'
    assert 'disk = [ "phy:/dev/xenvg/fx1-disk,xvda,w" ]' in text
    assert parse_domain_config(text) == cfg
    assert parse_domain_config(render_domain_config(parse_domain_config(POC_CFG))) == parse_domain_config(POC_CFG)


def test_render_keeps_comments_and_unchanged_text():
    template = ("# managed by hand\n"
                "name = 'vm1'   # the name\n"
                "memory = 96\n"
                "vcpus = 1 # one cpu\n"
                "on_crash = \"preserve\"\n")
    new = parse_domain_config(template)
    new["memory"] = 128
    del new["on_crash"]
    new["maxmem"] = 256
    text = render_domain_config(new, template=template)
    assert text == ("# managed by hand\n"
                    "name = 'vm1'   # the name\n"
                    "memory = 128\n"
                    "vcpus = 1 # one cpu\n"
                    "maxmem = 256\n")
    assert render_domain_config(parse_domain_config(template), template=template) == template


@pytest.mark.parametrize("cfg", [
    {"name": None},
    {"name": {"a": 1}},
    {"extra": "two\nlines"},
    {"bad key": 1},
    {"disk": [["nested"]]},
])
def test_render_domain_config_refuses(cfg):
    with pytest.raises(XenParseError):
        render_domain_config(cfg)


# --------------------------------------------------------------------------- commands

def test_toolstack_argv():
    assert toolstack_argv("xl", "list") == ["xl", "list"]
    assert toolstack_argv("xm", "pause", "vm1") == ["xm", "pause", "vm1"]
    with pytest.raises(ValueError):
        toolstack_argv("virsh", "list")


def test_toolstack_state_changes_and_check_mode(fake_module):
    module = fake_module(check_mode=True)
    runner = CommandRunner(module)
    xl = Toolstack(runner, "xl")
    xl.pause("fx1")
    xl.unpause("fx1")
    xl.migrate("fx1", "hostb")
    xl.block_attach("fx1", "/dev/xenvg/fx1-data", "xvdb")
    xl.block_detach("fx1", "xvdb")
    xl.create("/etc/xen/auto/fx1.cfg", paused=True)
    xl.shutdown("fx1")
    xl.destroy("fx1")
    xm = Toolstack(runner, "xm")
    xm.migrate("fx1", "hostb")
    xm.block_attach("fx1", "/dev/xenvg/fx1-data", "xvdb", mode="r")
    assert module.calls == []
    assert runner.would_run == [
        ["xl", "pause", "fx1"],
        ["xl", "unpause", "fx1"],
        ["xl", "migrate", "fx1", "hostb"],
        ["xl", "block-attach", "fx1", "phy:/dev/xenvg/fx1-data,xvdb,w"],
        ["xl", "block-detach", "fx1", "xvdb"],
        ["xl", "create", "-p", "/etc/xen/auto/fx1.cfg"],
        ["xl", "shutdown", "-w", "fx1"],
        ["xl", "destroy", "fx1"],
        ["xm", "migrate", "--live", "fx1", "hostb"],
        ["xm", "block-attach", "fx1", "phy:/dev/xenvg/fx1-data", "xvdb", "r"],
    ]


@pytest.mark.parametrize("call", [
    lambda xl: xl.pause("fx1; reboot"),
    lambda xl: xl.pause(""),
    lambda xl: xl.block_attach("fx1", "/dev/a,b", "xvdb"),
    lambda xl: xl.block_attach("fx1", "/dev/a", "xvdb", mode="rw"),
])
def test_toolstack_refuses_bad_values(fake_module, call):
    with pytest.raises(ValueError):
        call(Toolstack(CommandRunner(fake_module()), "xl"))


def test_xm_has_no_json_list(fake_module):
    with pytest.raises(ValueError):
        Toolstack(CommandRunner(fake_module()), "xm").list_long()


def test_detect_toolstack(fake_module):
    assert detect_toolstack(CommandRunner(fake_module(tools=["xl", "xm"]))) == "xl"
    assert detect_toolstack(CommandRunner(fake_module(tools=["xm"]))) == "xm"
    assert detect_toolstack(CommandRunner(fake_module(tools=[])), "xm") == "xm"
    with pytest.raises(ValueError, match="neither xl nor xm"):
        detect_toolstack(CommandRunner(fake_module(tools=[])))
    with pytest.raises(ValueError):
        detect_toolstack(CommandRunner(fake_module(tools=["xl"])), "libvirt")


# --------------------------------------------------------------------------- domUs of a dom0 (inventory plugin)


def test_domu_facts_recorded(fixture_text):
    domains = parse_xl_list(fixture_text(*XL + ("xl-list-domu.txt",)))
    domains_long = parse_xl_list_long(fixture_text(*XL + ("xl-list-l.json",)))
    assert domu_facts(domains, domains_long) == {"fxrec": {
        "domid": 7, "state": "running", "memory_mib": 96, "vcpus": 1, "type": "pv",
        "uuid": "cf25e9ab-c59b-4a6f-bbc5-b1280d8e6a1a",
        "disks": [{"target": "/dev/xenvg/fxrec-disk", "vdev": "xvda", "mode": "w"}], "storage_mode": "plain"}}


def test_domu_facts_paused_and_not_in_the_json(fixture_text):
    # mig1, paused with no memory, is in this xl list but not in xl list -l, recorded before it existed.
    domains = parse_xl_list(fixture_text(*XL + ("xl-list-paused.txt",)))
    facts = domu_facts(domains, parse_xl_list_long(fixture_text(*XL + ("xl-list-l.json",))))
    assert sorted(facts) == ["fxrec", "mig1"]
    assert facts["fxrec"]["state"] == "paused"
    assert facts["mig1"] == {"domid": 8, "state": "paused", "memory_mib": 0, "vcpus": 0, "type": None, "uuid": None,
                             "disks": [], "storage_mode": None}


def test_domu_facts_leave_out_a_vm_in_flight(fixture_text):
    incoming = parse_xl_list(fixture_text(*XL + ("xl-list-migrate-target-incoming.txt",)))
    assert [d["name"] for d in incoming] == ["Domain-0", "fxm--incoming"]
    assert domu_facts(incoming, []) == {}
    suspended = domu_facts(parse_xl_list(fixture_text(*XL + ("xl-list-migrating-suspended.txt",))), [])
    assert suspended["web01"]["state"] == "shutdown"


def test_storage_mode():
    assert storage_mode([lv_path("xenvg", "web02-disk"), lv_path("xenvg", "web02-data")]) == "plain"
    assert storage_mode([drbd_device(100), drbd_device(7)]) == "drbd"
    assert storage_mode([]) is None
    assert storage_mode([lv_path("xenvg", "a"), drbd_device(100)]) is None
    assert storage_mode(["/dev/sanless/hosta/xenvg/web05-disk", "/dev/sanless/hostb/xenvg/web06-data"]) == "shared"
    assert storage_mode(["/dev/sanless/hosta/xenvg/web05-disk", lv_path("xenvg", "a")]) is None
    for other in ("/dev/mapper/xenvg-a", "/dev/disk/by-id/x", "/dev/md/raid1", "/dev/sdb", "/srv/a.img",
                  "/dev/xenvg/a/b", None):
        assert storage_mode([other]) is None, other


def run_ls(path):
    """What ``ls -p`` prints for path, run for real: there is no recording of it from a dom0, which runs
    the same coreutils ls (in the C locale, as here)."""
    env = dict(os.environ, **C_LOCALE)
    proc = subprocess.run(["ls", "-p", str(path)], env=env, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_auto_config_vms_from_a_real_listing(tmp_path):
    for name in ("web01.cfg", "web02.cfg", "README", "old.cfg~", "bad name.cfg", ".hidden.cfg", "db01.cfg.dpkg-old"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub.cfg").mkdir()
    rc, out, _err = run_ls(tmp_path)
    assert rc == 0
    assert auto_config_vms(out) == ["web01", "web02"]
    assert auto_config_vms("") == []
