# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migrate role's preflight decision (plugins/filter/migration.py) and livemigrate's pure helpers."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sanless.xen.plugins.filter.migration import (
    first_minor, migration_peers, migration_plan, migration_summary, plan_migration,
)
from ansible_collections.sanless.xen.plugins.module_utils.conventions import domain_need_mib, meta_bytes
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.replica import disk_names, on_drbd
from ansible_collections.sanless.xen.plugins.module_utils.dm import parse_table
from ansible_collections.sanless.xen.plugins.module_utils.xen import parse_xl_info
from ansible_collections.sanless.xen.plugins.module_utils.drbd import parse_proc_drbd
from ansible_collections.sanless.xen.plugins.modules import live_migration

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures")


def read_fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), encoding="utf-8") as handle:
        return handle.read()


GIB = 1024 ** 3
CAPS = ("pv", "hvm", "hap", "shadow", "gnttab-v1", "gnttab-v2")


def report(runs_vm=False, free_mib=626, vg_free=8 * GIB, caps=CAPS, lvs=(), minors=(), ports=(22,), ssh_ok=None,
           journal=None):
    facts = {"runs_vm": runs_vm, "free_memory_mib": free_mib, "virt_caps": list(caps), "vgs": {"xenvg": vg_free},
             "lvs": {"xenvg": list(lvs)}, "used_minors": list(minors), "listening_ports": list(ports),
             "disks": [], "ssh_ok": ssh_ok or {}, "config_present": False, "vm_memory_mib": None, "vm_type": None}
    if runs_vm:
        facts.update(vm_memory_mib=96, vm_type="pv", config_present=True,
                     disks=[{"pdev_path": "/dev/xenvg/web01-disk", "vdev": "xvda", "vg": "xenvg", "lv": "web01-disk",
                             "size_bytes": 256 * 1024 * 1024}])
    return {"changed": False, "preflight": facts, "journal": journal}


ADDR = {"hosta": "10.77.0.11", "hostb": "10.77.0.12", "hostc": "10.77.0.13"}


def test_plan_picks_the_other_host_and_free_minors():
    # web01's search starts at minor 110 (spread by name); 110 is used on hosta, 111 on hostb,
    # port 7812 listens (or is claimed) on hostb
    assert first_minor("web01") == 110
    reports = {"hosta": report(runs_vm=True, lvs=["web01-disk"], minors=[110], ssh_ok={"10.77.0.12": True}),
               "hostb": report(minors=[111], ports=[22, 7812])}
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == []
    assert (plan["source"], plan["target"]) == ("hosta", "hostb")
    assert plan["minors"] == [113] and plan["ports"] == [7813]
    assert plan["disks"] == [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 256 * 1024 * 1024, "target_vg": "xenvg"}]


def test_target_picked_by_free_memory_among_fitting_hosts():
    reports = {"hosta": report(runs_vm=True), "hostb": report(free_mib=200), "hostc": report(free_mib=500)}
    assert plan_migration(reports, ADDR, "web01")["target"] == "hostc"
    reports["hostc"] = report(free_mib=500, vg_free=GIB // 8)
    assert plan_migration(reports, ADDR, "web01")["target"] == "hostb"


@pytest.mark.parametrize("reports,vm,target,message", [
    ({"hosta": report(), "hostb": report()}, "web01", None, "unknown VM web01: it runs on none of the dom0s"),
    ({"hosta": report(runs_vm=True), "hostb": report(runs_vm=True)}, "web01", None, "runs on several dom0s"),
    ({"hosta": report(runs_vm=True), "hostb": report()}, "web01", "hosta", "target = source"),
    ({"hosta": report(runs_vm=True), "hostb": report()}, "web01", "hostz", "unknown target hostz"),
    ({"hosta": report(runs_vm=True), "hostb": report(free_mib=50)}, "web01", "hostb",
     "hostb: needs 97 MiB of free memory for web01 (96 MiB + Xen's overhead), has 50 MiB"),
    ({"hosta": report(runs_vm=True), "hostb": report(vg_free=100 * 1024 * 1024)}, "web01", "hostb",
     "hostb: VG xenvg needs 272629760 bytes (disks + DRBD metadata), has 104857600 free (short by 167772160)"),
    ({"hosta": report(runs_vm=True), "hostb": report(caps=["pv", "hvm", "hap"])}, "web01", "hostb",
     "hostb: Xen without shadow paging cannot receive the PV guest web01"),
    ({"hosta": report(runs_vm=True), "hostb": report(lvs=["web01-disk"])}, "web01", "hostb",
     "hostb: LV xenvg/web01-disk already exists there"),
    ({"hosta": report(runs_vm=True, ssh_ok={"10.77.0.12": False}), "hostb": report()}, "web01", "hostb",
     "the source cannot ssh to hostb"),
    ({"hosta": report(runs_vm=True), "hostb": {"unreachable": True}}, "web01", "hostb", "target hostb did not answer"),
])
def test_preflight_problems(reports, vm, target, message):
    plan = plan_migration(reports, ADDR, vm, target)
    assert any(message in problem for problem in plan["problems"]), plan["problems"]


def test_a_target_without_a_vg_is_refused():
    target = report()
    target["preflight"]["vgs"] = {}
    plan = plan_migration({"hosta": report(runs_vm=True), "hostb": target}, ADDR, "web01", "hostb")
    assert plan["problems"] == ["hostb: has no VG for the disks of web01"]


def with_vgs(free_by_vg, **kwargs):
    target = report(**kwargs)
    target["preflight"]["vgs"] = dict(free_by_vg)
    return target


def test_a_target_whose_vg_has_another_name_takes_the_disk_there():
    reports = {"hosta": report(runs_vm=True), "hostb": with_vgs({"xenvg": 8 * GIB, "datavg": 16 * GIB}, free_mib=900),
               "hostc": report(free_mib=300)}
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["target"] == "hostb" and [d["target_vg"] for d in plan["disks"]] == ["xenvg"]
    # hostb's VG for VM disks is datavg: the disk goes there (the engine creates it in target_vg)
    for target in (None, "hostb"):
        plan = plan_migration(reports, ADDR, "web01", target, target_vgs={"hostb": "datavg"})
        assert plan["problems"] == [] and plan["target"] == "hostb"
        assert plan["disks"] == [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 256 * 1024 * 1024, "target_vg": "datavg"}]
    # xl migrate -C sends the config file with the disk's new path: without one, hostb is refused
    reports["hosta"]["preflight"]["config_present"] = False
    plan = plan_migration(reports, ADDR, "web01", target_vgs={"hostb": "datavg"})
    assert plan["target"] == "hostc" and plan["problems"] == []
    plan = plan_migration(reports, ADDR, "web01", "hostb", target_vgs={"hostb": "datavg"})
    assert plan["problems"] == ["hostb: disk xenvg/web01-disk would go in VG datavg there, and web01 has no "
                                "/etc/xen/auto config on its source to send with the disk's path there"]


def test_target_vg_by_per_host_vg_or_free_space():
    source = report(runs_vm=True)
    need = 256 * 1024 * 1024 + meta_bytes(256 * 1024 * 1024)
    cases = [
        ({"othervg": 8 * GIB}, None, "othervg"),                            # VG names need not match
        ({"xenvg": need - 1, "bigvg": GIB, "smallvg": need}, None, "bigvg"),   # no room in its own: the roomiest
        ({"xenvg": GIB, "bigvg": 8 * GIB}, None, "xenvg"),                    # its own VG when it has room
        ({"xenvg": 8 * GIB, "smallvg": need}, "smallvg", "smallvg"),          # the dom0's own VG for VM disks
    ]
    for vgs, own, expected in cases:
        plan = plan_migration({"hosta": source, "hostb": with_vgs(vgs)}, ADDR, "web01",
                              target_vgs={"hostb": own} if own else None)
        assert plan["problems"] == [] and [d["target_vg"] for d in plan["disks"]] == [expected], (vgs, plan["problems"])
    plan = plan_migration({"hosta": source, "hostb": with_vgs({"xenvg": 8 * GIB})}, ADDR, "web01", target_vgs={"hostb": "novg"})
    assert plan["problems"] == ["hostb: has no VG novg (its xen_vg, where the disks of web01 go)"]


def test_journal_means_resume_and_a_different_target_is_refused():
    journal = {"id": "abc", "source": "hosta", "target": "hostb", "config_text": None,
               "disks": [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 1, "minor": 12, "port": 7712}]}
    reports = {"hosta": report(runs_vm=True, journal=journal), "hostb": report(), "hostc": report()}
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["resume"] and plan["migration_id"] == "abc" and plan["minors"] == [12] and plan["problems"] == []
    assert plan["journal_hosts"] == ["hosta"] and plan["rekey"] is True
    reports["hostb"]["journal"] = dict(journal)
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["journal_hosts"] == ["hosta", "hostb"] and plan["rekey"] is False and plan["problems"] == []
    reports["hostb"]["journal"] = dict(journal, id="xyz")
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == ["web01 has journals of different migrations (abc, xyz on hosta, hostb): inspect them by hand"]
    reports["hostb"]["journal"] = None
    plan = plan_migration(reports, ADDR, "web01", "hostc")
    assert "in the middle of a migration hosta -> hostb" in plan["problems"][0]


def test_a_resume_keeps_each_disks_vg_on_both_hosts():
    # the target's journal (new_journal there): vg is the target's VG, source_vg and target_vg name both
    names = disk_names("web01", "datavg", "web01-disk", 0, 12)
    journal = {"id": "abc", "source": "hosta", "target": "hostb", "mode": "plain",
               "disks": [dict(names, size_bytes=1, source_vg="xenvg", target_vg="datavg")]}
    plan = plan_migration({"hosta": report(runs_vm=True), "hostb": report(journal=journal)}, ADDR, "web01")
    assert plan["resume"] and plan["problems"] == [] and plan["journal_hosts"] == ["hostb"]
    assert plan["disks"] == [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 1, "target_vg": "datavg"}]
    # a journal of an older release has one VG, the same on both hosts
    journal["disks"] = [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 1, "minor": 12, "port": 7712}]
    plan = plan_migration({"hosta": report(runs_vm=True), "hostb": report(journal=journal)}, ADDR, "web01")
    assert plan["disks"] == [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 1, "target_vg": "xenvg"}]


def test_the_filter_takes_each_dom0s_xen_vg_unless_target_vgs_names_another():
    source = report(runs_vm=True)
    hostvars = {"hosta": {"ansible_host": "10.77.0.11", "xen_vg": "xenvg", "sanless_preflight": source},
                "hostb": {"ansible_host": "10.77.0.12", "xen_vg": "datavg",
                          "sanless_preflight": with_vgs({"xenvg": 8 * GIB, "datavg": 8 * GIB})}}
    target_vgs = [d["target_vg"] for d in migration_plan(hostvars, ["hosta", "hostb"], "web01")["disks"]]
    assert target_vgs == ["datavg"]
    plan = migration_plan(hostvars, ["hosta", "hostb"], "web01", target_vgs={"hostb": "xenvg", "hosta": ""})
    assert [d["target_vg"] for d in plan["disks"]] == ["xenvg"]


def test_abort_without_journal_is_refused():
    plan = plan_migration({"hosta": report(runs_vm=True), "hostb": report()}, ADDR, "web01", action="abort")
    assert plan["problems"] == ["no migration of web01 is in progress on any dom0: nothing to abort"]


def test_meta_size_covers_bitmap_and_activity_log():
    assert lm.meta_bytes(256 * 1024 * 1024) == 4 * 1024 * 1024
    # 1 TiB needs a 32 MiB bitmap: 33 MiB rounded up to whole extents
    assert lm.meta_bytes(1024 ** 4) == 36 * 1024 * 1024


def test_disk_names_and_drbd_table_detection():
    names = disk_names("web-01", "xenvg", "web-01-disk", 0, 12)
    assert names["lv_dm"] == "xenvg-web--01--disk" and names["resource"] == "sl-web-01-0"
    assert names["port"] == 7712 and names["device"] == "/dev/drbd12"
    assert on_drbd(parse_table("0 524288 linear 147:12 0\n"), names)
    assert not on_drbd(parse_table("0 524288 linear 254:0 2048\n"), names)
    assert not on_drbd(parse_table("0 262144 linear 147:12 0\n262144 262144 linear 254:0 2048\n"), names)


@pytest.mark.parametrize("name", ["web;rm", "a b", "../x", "-x", "", "x" * 65, "web$(id)"])
def test_bad_vm_names_refused(name):
    with pytest.raises(lm.MigrationError, match="invalid VM name"):
        lm.check_vm_name(name)


# --------------------------------------------------------------------------- storage mode drbd
#
# The preflight's "drbd_resources" are built here the way live_migration's drbd_resources() builds them
# on each dom0: from the recorded resource file fxd.res (hosta and hostb, /dev/drbd90) and recorded
# /proc/drbd files (drbd/8.4.11, see its SOURCE for which host each comes from).

DRBD = ("drbd", "8.4.11")


def drbd_facts(tmp_path, host, proc_text):
    conf = tmp_path / host
    conf.mkdir(exist_ok=True)
    (conf / "fxd.res").write_text(read_fixture(*DRBD + ("fxd.res",)))
    return live_migration.drbd_resources(host, parse_proc_drbd(proc_text)["minors"], str(conf))


def drbd_report(tmp_path, host, proc_file=None, proc_text=None, runs_vm=False, **kwargs):
    result = report(runs_vm=runs_vm, **kwargs)
    facts = result["preflight"]
    facts["drbd_resources"] = drbd_facts(tmp_path, host, proc_text or read_fixture(*DRBD + (proc_file,)))
    if runs_vm:
        facts["disks"] = [{"pdev_path": "/dev/drbd90", "vdev": "xvda", "vg": None, "lv": None, "size_bytes": None,
                           "drbd": "fxd"}]
    return result


def drbd_reports(tmp_path, source_proc="proc-drbd-uptodate.txt", peer_proc="proc-drbd-uptodate-secondary.txt"):
    # uptodate.txt (hosta): 90 Connected Primary/Secondary UpToDate/UpToDate;
    # uptodate-secondary.txt (hostb): 90 Connected Secondary/Primary UpToDate/UpToDate
    return {"hosta": drbd_report(tmp_path, "hosta", source_proc, runs_vm=True),
            "hostb": drbd_report(tmp_path, "hostb", peer_proc),
            "hostc": report()}


def test_drbd_resources_as_the_preflight_reports_them(tmp_path):
    resources = drbd_facts(tmp_path, "hosta", read_fixture(*DRBD + ("proc-drbd-uptodate.txt",)))
    assert resources == {"fxd": {
        "minor": 90, "device": "/dev/drbd90", "disk": "/dev/xenvg/fxd-disk", "path": str(tmp_path / "hosta" / "fxd.res"),
        "peer": {"name": "hostb", "address": "10.77.0.12", "port": 7990},
        "state": {"role": "Primary", "peer_role": "Secondary", "cstate": "Connected", "disk": "UpToDate",
                  "peer_disk": "UpToDate"}}}


@pytest.mark.parametrize("target", [None, "hostb"])
def test_drbd_mode_targets_the_peer(tmp_path, target):
    plan = plan_migration(drbd_reports(tmp_path), ADDR, "web01", target)
    assert plan["problems"] == []
    assert (plan["mode"], plan["source"], plan["target"]) == ("drbd", "hosta", "hostb")
    assert plan["disks"] == [{"resource": "fxd", "minor": 90, "device": "/dev/drbd90"}]
    assert plan["minors"] == [90] and plan["ports"] == [7990]
    assert plan["resume"] is False and plan["vm_memory_mib"] == 96


def test_drbd_mode_peer_is_the_target_even_with_more_free_memory_elsewhere(tmp_path):
    reports = drbd_reports(tmp_path)
    reports["hostc"] = report(free_mib=4096)
    assert plan_migration(reports, ADDR, "web01")["target"] == "hostb"


def test_drbd_mode_a_resync_in_progress_is_no_problem(tmp_path):
    # syncsource.txt (hosta): 90 SyncSource Primary/Secondary UpToDate/Inconsistent 67.4%; promote waits for it
    plan = plan_migration(drbd_reports(tmp_path, "proc-drbd-syncsource.txt", "proc-drbd-synctarget.txt"), ADDR, "web01")
    assert plan["problems"] == [] and plan["target"] == "hostb"


def test_drbd_mode_target_neither_source_nor_peer(tmp_path):
    plan = plan_migration(drbd_reports(tmp_path), ADDR, "web01", "hostc")
    assert plan["problems"] == ["web01 is on DRBD with hostb: the target can only be that peer (the secondary), not hostc"]
    assert plan["target"] is None and plan["mode"] == "drbd"


def test_drbd_mode_target_is_source(tmp_path):
    plan = plan_migration(drbd_reports(tmp_path), ADDR, "web01", "hosta")
    assert plan["problems"] == ["target = source: web01 already runs on hosta"]
    assert plan["target"] is None


def test_drbd_mode_peer_not_secondary(tmp_path):
    # dual-primary.txt was recorded on hosta; 90 Connected Primary/Primary reads the same from either side
    plan = plan_migration(drbd_reports(tmp_path, peer_proc="proc-drbd-dual-primary.txt"), ADDR, "web01")
    assert plan["problems"] == ["hostb: DRBD fxd is Primary there, it must be Secondary"]


@pytest.mark.parametrize("state", [
    "cs:SyncTarget ro:Primary/Secondary ds:Inconsistent/UpToDate",   # a primary resyncing from its peer
    "cs:Connected ro:Primary/Secondary ds:Diskless/UpToDate",        # a primary that detached its disk
])
def test_drbd_mode_source_not_uptodate(tmp_path, state):
    # NOT recorded: proc-drbd-uptodate.txt (hosta) with the state of minor 90 edited
    recorded = read_fixture(*DRBD + ("proc-drbd-uptodate.txt",))
    line = "90: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----"
    assert line in recorded
    text = recorded.replace(line, "90: %s C r-----" % state)
    reports = drbd_reports(tmp_path)
    reports["hosta"] = drbd_report(tmp_path, "hosta", proc_text=text, runs_vm=True)
    plan = plan_migration(reports, ADDR, "web01")
    cstate, _role, disk = [part.split(":")[1] for part in state.split()]
    assert plan["problems"] == ["hosta: DRBD fxd of web01 must be Primary, connected to hostb and UpToDate to migrate; "
                                "it is Primary, %s, %s" % (cstate, disk)]


@pytest.mark.parametrize("proc_file,state", [
    # primary-standalone-peer.txt (hosta): 90 WFConnection Primary/Unknown UpToDate/DUnknown
    ("proc-drbd-primary-standalone-peer.txt", "Primary, WFConnection, UpToDate/DUnknown"),
    # synctarget.txt (hostb): 90 SyncTarget Secondary/Primary Inconsistent/UpToDate
    ("proc-drbd-synctarget.txt", "Secondary, SyncTarget, Inconsistent/UpToDate"),
    # uptodate-secondary.txt (hostb): 90 Connected Secondary/Primary UpToDate/UpToDate
    ("proc-drbd-uptodate-secondary.txt", "Secondary, Connected, UpToDate/UpToDate"),
])
def test_drbd_mode_source_must_be_connected_uptodate_primary(tmp_path, proc_file, state):
    plan = plan_migration(drbd_reports(tmp_path, source_proc=proc_file), ADDR, "web01")
    assert any(p.startswith("hosta: DRBD fxd of web01 must be Primary") and p.endswith("it is " + state)
               for p in plan["problems"]), plan["problems"]


def test_drbd_mode_peer_without_the_resource(tmp_path):
    reports = drbd_reports(tmp_path)
    reports["hostb"] = report()
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == ["hostb: has no DRBD resource fxd (the peer of hosta has it)"]


def test_drbd_mode_peer_unreachable_or_not_in_the_inventory(tmp_path):
    reports = drbd_reports(tmp_path)
    reports["hostb"] = {"unreachable": True}
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == ["target hostb (the DRBD peer of web01) did not answer the preflight"]
    del reports["hostb"]
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == ["the DRBD peer of web01, hostb, is not a dom0 of the inventory (hosta, hostc)"]


def test_drbd_mode_peer_checked_like_any_target(tmp_path):
    reports = drbd_reports(tmp_path)
    reports["hostb"]["preflight"]["free_memory_mib"] = 50
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == ["hostb: needs 97 MiB of free memory for web01 (96 MiB + Xen's overhead), has 50 MiB"]


def test_drbd_mode_resources_with_different_peers(tmp_path):
    reports = drbd_reports(tmp_path)
    src = reports["hosta"]["preflight"]
    src["drbd_resources"]["fxe"] = dict(src["drbd_resources"]["fxd"], minor=91, device="/dev/drbd91",
                                        peer={"name": "hostc", "address": "10.77.0.13", "port": 7991})
    src["disks"].append({"pdev_path": "/dev/drbd91", "vdev": "xvdb", "vg": None, "lv": None, "size_bytes": None,
                         "drbd": "fxe"})
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == ["hosta: the DRBD resources of web01 have different peers (hostb, hostc): no single host can take it"]


def test_mixed_drbd_and_lv_disks_are_refused(tmp_path):
    reports = drbd_reports(tmp_path)
    reports["hosta"]["preflight"]["disks"].append({"pdev_path": "/dev/xenvg/web01-data", "vdev": "xvdb", "vg": "xenvg",
                                                   "lv": "web01-data", "size_bytes": GIB, "drbd": None})
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == ["hosta: some disks of web01 are on DRBD and some are not (/dev/drbd90, /dev/xenvg/web01-data): "
                                "migrate needs one storage mode"]
    assert plan["target"] is None and plan["disks"] == []


def test_drbd_mode_journal_resumes_with_its_resources(tmp_path):
    # a journal as live_migration's new_journal() writes it for mode drbd
    journal = {"id": "m7", "source": "hosta", "target": "hostb", "config_text": 'name = "web01"\n', "mode": "drbd",
               "disks": [{"resource": "fxd", "minor": 90, "device": "/dev/drbd90"}]}
    reports = drbd_reports(tmp_path)
    reports["hostb"]["journal"] = journal
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == [] and plan["resume"] is True
    assert (plan["mode"], plan["source"], plan["target"], plan["migration_id"]) == ("drbd", "hosta", "hostb", "m7")
    assert plan["disks"] == [{"resource": "fxd", "minor": 90, "device": "/dev/drbd90"}] and plan["minors"] == [90]
    # the journal is on hostb only: both hosts take the new run's secret
    assert plan["journal_hosts"] == ["hostb"] and plan["rekey"] is True
    plan = plan_migration(reports, ADDR, "web01", "hostc")
    assert "in the middle of a migration hosta -> hostb" in plan["problems"][0]


def test_plain_mode_plans_as_before_next_to_drbd_resources(tmp_path):
    # the dom0s have a DRBD resource (fxd), but the VM's disk is a local LV: plain mode, new minors
    reports = {"hosta": report(runs_vm=True, minors=[90]), "hostb": report(minors=[90])}
    for host in reports:
        reports[host]["preflight"]["drbd_resources"] = drbd_facts(
            tmp_path, host, read_fixture(*DRBD + ("proc-drbd-uptodate.txt",)))
    reports["hosta"]["preflight"]["disks"][0]["drbd"] = None
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == [] and plan["mode"] == "plain"
    assert (plan["source"], plan["target"]) == ("hosta", "hostb")
    assert plan["disks"] == [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 256 * 1024 * 1024, "target_vg": "xenvg"}]
    assert plan["minors"] == [110] and plan["ports"] == [7810]


def test_two_vms_planned_at_once_start_apart_and_wrap_around():
    # each preflight sees neither the other's plan: the searches start at different minors
    assert first_minor("web01") != first_minor("web02")
    assert all(10 <= first_minor("vm%d" % n) < 1010 for n in range(200))
    # the last minor of the range is taken: the search wraps to the first
    reports = {"hosta": report(runs_vm=True), "hostb": report(minors=range(110, 1010))}
    assert plan_migration(reports, ADDR, "web01")["minors"] == [10]


@pytest.mark.parametrize("address", ["10.77.0.12;reboot", "-oProxyCommand=touch /tmp/x", "$(reboot)", "host b", ""])
def test_an_address_that_is_not_a_host_is_refused_before_anything(address):
    reports = {"hosta": report(runs_vm=True, lvs=["web01-disk"]), "hostb": report()}
    plan = plan_migration(reports, dict(ADDR, hostb=address), "web01")
    assert plan["problems"] == ["hostb: invalid address %r (want a host name or an IP address)" % address]
    assert plan["target"] is None


def test_dom0s_without_ansible_host_are_reached_by_name():
    hostvars = {"hosta": {"ansible_host": "10.77.0.11", "sanless_preflight": report(runs_vm=True)},
                "dom0b.example": {"sanless_preflight": report()}}
    plan = migration_plan(hostvars, ["hosta", "dom0b.example"], "web01")
    assert plan["addresses"] == {"hosta": "10.77.0.11", "dom0b.example": "dom0b.example"}
    assert plan["target"] == "dom0b.example"
    assert migration_peers(hostvars, ["hosta", "dom0b.example"], "hosta") == ["dom0b.example"]
    assert migration_peers(hostvars, ["hosta", "dom0b.example"], "dom0b.example") == ["10.77.0.11"]


def test_migration_peers_of_a_named_target_is_that_target_alone():
    hostvars = {"hosta": {"ansible_host": "10.77.0.11"}, "hostb": {"ansible_host": "10.77.0.12"},
                "hostc": {"ansible_host": "10.77.0.13"}}
    hosts = ["hosta", "hostb", "hostc"]
    assert migration_peers(hostvars, hosts, "hosta", "hostc") == ["10.77.0.13"]
    # the target itself, and every other dom0, check nothing more
    assert migration_peers(hostvars, hosts, "hostc", "hostc") == []
    # no target, or one that is not a dom0 of the play (the plan refuses it): every other dom0
    assert migration_peers(hostvars, hosts, "hosta", "") == ["10.77.0.12", "10.77.0.13"]
    assert migration_peers(hostvars, hosts, "hosta", "web;rm") == ["10.77.0.12", "10.77.0.13"]


def test_target_needs_xens_overhead_and_whole_extents():
    assert domain_need_mib(96, 1, "pv") == 97
    assert domain_need_mib(1024, 2, "pvh") == 1024 + 2 + 10   # + 4 x (512 + 2048) KiB shadow/p2m pool
    assert domain_need_mib(1024, 2, "hvm") == 1024 + 2 + 10 + 8
    # 97 MiB free is just enough for a 96 MiB PV guest, 96 is not
    for free, ok in ((97, True), (96, False)):
        plan = plan_migration({"hosta": report(runs_vm=True), "hostb": report(free_mib=free)}, ADDR, "web01")
        assert (plan["problems"] == []) == ok, plan["problems"]
    # a target VG with 32 MiB extents: a 256 MiB LV fits whole extents, metadata takes one extent
    target = report(vg_free=256 * 1024 * 1024 + 32 * 1024 * 1024)
    target["preflight"]["vg_extent_bytes"] = {"xenvg": 32 * 1024 * 1024}
    assert plan_migration({"hosta": report(runs_vm=True), "hostb": target}, ADDR, "web01")["problems"] == []
    target["preflight"]["vgs"]["xenvg"] -= 1
    problems = plan_migration({"hosta": report(runs_vm=True), "hostb": target}, ADDR, "web01")["problems"]
    assert "VG xenvg needs 301989888 bytes" in problems[0]
    # a disk that is not a whole number of the target's extents would come out larger there
    target["preflight"]["vg_extent_bytes"] = {"xenvg": 96 * 1024 * 1024}
    problems = plan_migration({"hosta": report(runs_vm=True), "hostb": target}, ADDR, "web01")["problems"]
    assert "hostb: LV xenvg/web01-disk is 268435456 bytes, not a multiple of VG xenvg's extent size there (100663296)" \
        in problems


def test_source_needs_room_for_the_drbd_metadata():
    source = report(runs_vm=True, vg_free=4 * 1024 * 1024 - 1)
    plan = plan_migration({"hosta": source, "hostb": report()}, ADDR, "web01")
    assert plan["problems"] == ["hosta: VG xenvg needs 4194304 bytes for the DRBD metadata of web01's disks, has 4194303 free"]


# --------------------------------------------------------------------------- guest type vs Xen (virt_caps)

# virt_caps of the recorded dom0s (xl info on hosta and hostb, Xen 4.17.5: pv hvm hap shadow gnttab-v1 gnttab-v2)
HERE = parse_xl_info(read_fixture("xl", "4.17.5", "xl-info.txt"))["virt_caps"]
PEER = parse_xl_info(read_fixture("xl", "4.17.5", "xl-info-peer.txt"))["virt_caps"]
# DERIVED from the recording, not recorded: capabilities taken out
NO_SHADOW = [cap for cap in PEER if cap != "shadow"]  # as Debian's Xen 4.17.7 build reports it
NO_HAP = [cap for cap in PEER if cap != "hap"]  # a CPU without EPT/NPT
NO_PAGING = [cap for cap in PEER if cap not in ("hap", "shadow")]
NO_HVM = [cap for cap in PEER if cap not in ("hvm", "hap")]  # a CPU without VT-x/AMD-V


def typed_reports(vm_type, source_caps, **target_caps):
    source = report(runs_vm=True, caps=source_caps)
    source["preflight"]["vm_type"] = vm_type
    reports = {"hosta": source}
    for i, (host, caps) in enumerate(sorted(target_caps.items())):
        reports[host] = report(caps=caps, free_mib=600 - 100 * i)  # hostb has the most free memory
    return reports


@pytest.mark.parametrize("vm_type,source_caps,target_caps,refusal", [
    ("pv", HERE, PEER, None),
    ("pvh", HERE, PEER, None),
    ("hvm", HERE, PEER, None),
    ("pv", HERE, NO_SHADOW,
     "hostb: Xen without shadow paging cannot receive the PV guest web01 (virt_caps: pv hvm hap gnttab-v1 gnttab-v2)"),
    ("pv", NO_SHADOW, PEER,
     "hosta: Xen without shadow paging cannot live-migrate PV guests (virt_caps: pv hvm hap gnttab-v1 gnttab-v2)"),
    ("pvh", NO_SHADOW, NO_SHADOW, None),
    ("hvm", NO_SHADOW, NO_SHADOW, None),
    ("pv", NO_HAP, NO_HAP, None),
    ("pvh", NO_HAP, NO_HAP, None),
    ("hvm", NO_HAP, NO_HAP, None),
    ("pvh", HERE, NO_PAGING,
     "hostb: Xen without hap or shadow paging cannot receive the PVH guest web01 (virt_caps: pv hvm gnttab-v1 gnttab-v2)"),
    ("hvm", NO_PAGING, PEER,
     "hosta: Xen without hap or shadow paging cannot live-migrate HVM guests (virt_caps: pv hvm gnttab-v1 gnttab-v2)"),
    ("pvh", HERE, NO_HVM, "hostb: Xen without hvm cannot run the PVH guest web01 (virt_caps: pv shadow gnttab-v1 gnttab-v2)"),
    ("hvm", HERE, NO_HVM, "hostb: Xen without hvm cannot run the HVM guest web01 (virt_caps: pv shadow gnttab-v1 gnttab-v2)"),
    ("pv", HERE, NO_HVM, None),
])
def test_guest_type_against_the_xens_of_source_and_target(vm_type, source_caps, target_caps, refusal):
    plan = plan_migration(typed_reports(vm_type, source_caps, hostb=target_caps), ADDR, "web01")
    assert plan["problems"] == ([refusal] if refusal else [])
    # a refused target is no target; a refusing source still gets one planned (its problem stops the run)
    assert plan["target"] == (None if refusal and refusal.startswith("hostb") else "hostb")


def test_a_xen_without_shadow_takes_a_pvh_guest_and_not_a_pv_one():
    # hostb (more free memory) has no shadow paging, hostc has it
    reports = typed_reports("pv", HERE, hostb=NO_SHADOW, hostc=PEER)
    assert plan_migration(reports, ADDR, "web01")["target"] == "hostc"
    plan = plan_migration(reports, ADDR, "web01", "hostb")
    assert plan["target"] is None and plan["problems"] == [
        "hostb: Xen without shadow paging cannot receive the PV guest web01 (virt_caps: pv hvm hap gnttab-v1 gnttab-v2)"]
    reports = typed_reports("pvh", HERE, hostb=NO_SHADOW, hostc=PEER)
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == [] and plan["target"] == "hostb"


# --------------------------------------------------------------------------- the run's summary (set_stats)

PLAN = {"vm": "web01", "source": "hosta", "target": "hostb", "mode": "plain", "resume": False, "problems": [],
        "migration_id": None, "skip": []}


def journal(*events):
    """A journal as the module returns it (public_journal: no secret, no config text)."""
    return {"vm": "web01", "id": "k3j9x0a1bq", "role": "source", "source": "hosta", "target": "hostb", "mode": "plain",
            "log": [dict(event=name, at=1764770000.0 + at, **extra) for name, at, extra in events]}


SOURCE_LOG = journal(("step:prepare", 0, {}), ("swapped-to-drbd", 2.5, {"pause_ms": 41}), ("step:promote", 3, {}),
                     ("synced", 30, {}), ("step:finish", 31, {}), ("migrated", 39.2, {"seconds": 8.04}),
                     ("finished", 42.7, {}))


def registered(**by_host):
    """hostvars as the role leaves them: host -> {variable: registered result}."""
    return dict((host, dict(values)) for host, values in by_host.items())


def test_summary_of_a_migration():
    ok = {"changed": True, "failed": False}
    hostvars = registered(
        hosta={"migrate_prepared": dict(ok, journal=journal(("step:prepare", 0, {}))),
               "migrate_promoted": dict(ok, sync_seconds=27.1, synced=True, journal=journal()),
               "migrate_finished": dict(ok, journal=SOURCE_LOG), "migrate_secret": "s3cr3t"},
        # the target's swap back paused the guest longer than the source's swap: pause_ms is the longest of both
        hostb={"migrate_prepared": ok, "migrate_promoted": ok,
               "migrate_finished": dict(ok, journal=dict(journal(("step:finish", 31, {}),
                                                                 ("tables-restored", 40.1, {"pause_ms": 118})),
                                                         role="target"))},
        hostc={})
    summary = migration_summary(hostvars, PLAN, "web01")
    assert summary == {"vm": "web01", "action": "migrate", "source": "hosta", "target": "hostb",
                       "migration_id": "k3j9x0a1bq", "mode": "plain", "resumed": False, "result": "migrated",
                       "closed_earlier": False, "failed_step": None, "failed_host": None, "msg": None, "problems": [],
                       "seconds": 42.7, "sync_seconds": 27.1, "xl_migrate_seconds": 8.04, "pause_ms": 118}
    assert "s3cr3t" not in repr(summary) and "log" not in summary


def test_summary_of_a_failed_step_names_it():
    hostvars = registered(
        hosta={"migrate_prepared": {"changed": True, "journal": journal(("step:prepare", 0, {}))},
               "migrate_promoted": {"failed": True, "msg": "DRBD sync of web01 not done after 3600 s", "sync_seconds": 3600.2,
                                    "journal": journal(("step:prepare", 0, {}), ("step:promote", 5, {}))}},
        hostb={"migrate_prepared": {"changed": True}})
    summary = migration_summary(hostvars, PLAN, "web01")
    assert (summary["result"], summary["failed_step"], summary["failed_host"]) == ("failed", "promote", "hosta")
    assert summary["msg"] == "DRBD sync of web01 not done after 3600 s"
    assert (summary["seconds"], summary["sync_seconds"], summary["xl_migrate_seconds"]) == (5.0, 3600.2, None)
    assert summary["pause_ms"] is None  # no swap yet


def test_summary_of_a_refused_run_and_of_no_plan():
    plan = dict(PLAN, target=None, problems=["target hostb did not answer the preflight"])
    summary = migration_summary(registered(hosta={}), plan, "web01")
    assert summary["result"] == "refused" and summary["problems"] == plan["problems"] and summary["target"] is None
    summary = migration_summary(registered(hosta={}), None, "web01")
    assert (summary["result"], summary["msg"], summary["source"]) == ("failed", "no migration plan was made", None)


def test_summary_of_a_resume_that_had_ended_meanwhile_and_of_check_mode():
    plan = dict(PLAN, resume=True, migration_id="k3j9x0a1bq")
    ended = {"changed": False, "ended": "finished", "msg": "migration k3j9x0a1bq ended meanwhile"}
    skipped = {"skipped": True, "changed": False}
    summary = migration_summary(registered(hosta={"migrate_prepared": ended, "migrate_finished": skipped},
                                           hostb={"migrate_prepared": ended}), plan, "web01")
    assert (summary["result"], summary["closed_earlier"], summary["resumed"]) == ("migrated", True, True)
    hostvars = registered(hosta={"migrate_prepared": {"changed": True}, "migrate_promoted": skipped},
                          hostb={"migrate_prepared": {"changed": True}})
    assert migration_summary(hostvars, PLAN, "web01", check_mode=True)["result"] == "checked"
    # not in check mode, and the finish never ran: a killed run
    assert migration_summary(hostvars, PLAN, "web01")["result"] == "incomplete"


def test_summary_of_an_abort_that_found_the_migration_finished():
    plan = dict(PLAN, resume=True, migration_id="k3j9x0a1bq")
    ended = {"changed": False, "ended": "finished", "msg": "hosta: migration k3j9x0a1bq of web01 ended meanwhile (finished)"}
    skipped = {"skipped": True, "changed": False}
    hostvars = registered(hosta={"migrate_rolled_back": ended},
                          hostb={"migrate_demoted": skipped, "migrate_target_rolled_back": dict(ended, msg="hostb")})
    summary = migration_summary(hostvars, plan, "web01", "abort")
    assert (summary["action"], summary["result"], summary["closed_earlier"]) == ("abort", "migrated", True)


def test_summary_of_an_abort():
    plan = dict(PLAN, resume=True, migration_id="k3j9x0a1bq", skip=["hostb"])
    rolled_back = {"changed": True,
                   "journal": journal(("step:prepare", 0, {}), ("step:abort", 60, {}), ("aborted", 64.25, {}))}
    skipped = {"skipped": True, "changed": False}
    hostvars = registered(hosta={"migrate_rolled_back": rolled_back},
                          hostb={"migrate_demoted": skipped, "migrate_target_rolled_back": skipped})
    summary = migration_summary(hostvars, plan, "web01", "abort")
    assert (summary["action"], summary["result"], summary["seconds"]) == ("abort", "aborted", 64.2)
    hostvars["hostb"]["migrate_target_rolled_back"] = {"unreachable": True, "msg": "ssh: connect to host hostb: timeout"}
    summary = migration_summary(hostvars, dict(plan, skip=[]), "web01", "abort")
    assert (summary["result"], summary["failed_step"], summary["failed_host"]) == ("failed", "abort", "hostb")
