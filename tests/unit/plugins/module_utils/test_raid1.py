# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""raid1.pair_health on the lab's recorded storage facts (hosta imports hostb's rec2 over iSCSI and rec3 over AoE)
and the recorded md states (mdadm 4.2): each way a pair degrades gets its cause."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import md, raid1, xen

MDADM = ("mdadm", "4.2")
VM = "web01"


def leg(host, lv, vdev):
    return {"host": host, "vg": "xenvg", "lv": lv, "path": conv.shared_disk_path(host, "xenvg", lv), "vdev": vdev}


# The recorded md array's legs are dm-0 (slot 0) and dm-1 (slot 1): the guest's devices of the two legs.
ISCSI_DISK = {"disk": "data", "legs": [leg("hosta", "rec0", "dm-0"), leg("hostb", "rec2", "dm-1")]}
AOE_DISK = {"disk": "logs", "legs": [leg("hosta", "rec1", "dm-0"), leg("hostb", "rec3", "/dev/dm-1")]}


@pytest.fixture
def cluster(lab_storage_facts):
    """xen_info results of hosta (runs web01) and hostb, their storage facts recorded."""
    facts = {"hosta": lab_storage_facts("hosta"), "hostb": lab_storage_facts("hostb")}

    def results(runs=("hosta",), down=()):
        out = {}
        for host in ("hosta", "hostb"):
            if host in down:
                out[host] = {"unreachable": True, "msg": "ssh: connect to host %s: No route to host" % host}
                continue
            domains = [{"name": "Domain-0"}] + ([{"name": VM}] if host in runs else [])
            out[host] = {"changed": False, "host": {"free_memory_mib": 1000}, "domains": domains,
                         "disk_exports": copy.deepcopy(facts[host])}
        return out
    return results


def array(fixture_text, name):
    detail = md.parse_detail(fixture_text(*MDADM + ("detail-%s.txt" % name,)))
    stat = md.parse_mdstat(fixture_text(*MDADM + ("mdstat-%s.txt" % name,)))["arrays"]["md90"]
    return md.array_health(detail, stat)


def test_a_clean_pair_over_iscsi_and_aoe_is_healthy(cluster, fixture_text):
    clean = array(fixture_text, "clean")
    health = raid1.pair_health(VM, [ISCSI_DISK, AOE_DISK], cluster(), {"data": clean, "logs": clean})
    assert (health["state"], health["guest_host"], health["causes"]) == ("healthy", "hosta", [])
    local, remote = health["disks"][0]["legs"]
    assert local["local"] and local["session"] is None and local["lv_present"] and local["md"] == "in_sync"
    assert not remote["local"] and remote["export"]["address"] == "iqn.2026-12.xen.sanless:hostb lun 1"
    assert remote["session"]["state"] == "LOGGED_IN" and remote["md"] == "in_sync" and remote["ok"]
    aoe_leg = health["disks"][1]["legs"][1]
    assert aoe_leg["session"]["transport"] == "aoe" and aoe_leg["export"]["address"] == "e2.1" and aoe_leg["ok"]


def test_partner_down_is_the_cause(cluster, fixture_text):
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(down=("hostb",)), {"data": array(fixture_text, "faulty")})
    assert health["state"] == "degraded"
    assert health["causes"] == [{"disk": "data", "host": "hostb", "leg": "/dev/sanless/hostb/xenvg/rec2",
                                 "cause": "host_down", "problem": "hostb's leg /dev/sanless/hostb/xenvg/rec2: hostb is "
                                 "down (did not answer)"}]


def test_session_lost_export_missing_and_lv_missing(cluster, fixture_text):
    degraded = {"data": array(fixture_text, "degraded")}
    results = cluster()
    # hosta's iSCSI session to hostb is gone (iscsiadm: No active sessions): its by-path device is gone too
    results["hosta"]["disk_exports"]["imports"] = [i for i in results["hosta"]["disk_exports"]["imports"]
                                                   if i["transport"] != "iscsi"]
    for shared in results["hosta"]["disk_exports"]["shared_paths"]:
        if shared["lv"] == "rec2":
            shared["present"] = False
    [cause] = raid1.pair_health(VM, [ISCSI_DISK], results, degraded)["causes"]
    assert cause["cause"] == "session_lost" and cause["problem"].endswith("hosta lost its import (no device)")
    # the partner is up but exports nothing: that comes first
    results["hostb"]["disk_exports"]["exports"] = []
    [cause] = raid1.pair_health(VM, [ISCSI_DISK], results, degraded)["causes"]
    assert cause["cause"] == "export_missing" and cause["problem"].endswith("hostb does not export it")
    # and its LV is gone before that
    results["hostb"]["disk_exports"]["shared_paths"] = []
    [cause] = raid1.pair_health(VM, [ISCSI_DISK], results, degraded)["causes"]
    assert cause["cause"] == "lv_missing" and cause["problem"].endswith("no LV xenvg/rec2 on hostb")


def test_an_aoe_export_whose_vblade_stopped_is_missing(cluster, fixture_text):
    # hosta's own rec1 is exported by a unit whose vblade does not run (recorded): a guest on hostb lacks it
    # the guest runs on hostb, its local leg rec3 is md's slot 0 and hosta's rec1 the faulty slot 1
    disk = {"disk": "logs", "legs": [leg("hostb", "rec3", "dm-0"), leg("hosta", "rec1", "dm-1")]}
    health = raid1.pair_health(VM, [disk], cluster(runs=("hostb",)), {"logs": array(fixture_text, "faulty")})
    assert health["guest_host"] == "hostb" and health["state"] == "degraded"
    [cause] = health["causes"]
    assert cause["host"] == "hosta" and cause["cause"] == "export_missing" and "its vblade does not run" in cause["problem"]


def test_md_alone_says_why(cluster, fixture_text):
    # every transport works: the leg failed in md, or was removed from it
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, "faulty")})
    assert [c["cause"] for c in health["causes"]] == ["failed_in_md"] and health["state"] == "degraded"
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, "degraded")})
    assert health["causes"][0]["cause"] == "missing_in_md"
    assert health["causes"][0]["problem"].endswith("not in the guest's md mirror (missing)")


def test_recovery_and_resync_are_recovering_not_degraded(cluster, fixture_text):
    for name in ("recovery", "resync"):
        health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, name)})
        assert health["state"] == "recovering" and health["causes"] == [], name
        assert health["disks"][0]["sync"]["action"] == name
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(), {"data": array(fixture_text, "recovery")})
    assert health["disks"][0]["legs"][1]["md"] == "rebuilding"


def test_guest_not_read_split_and_not_running(cluster, fixture_text):
    # md not read (guest unreachable): unknown unless a transport already says degraded
    assert raid1.pair_health(VM, [ISCSI_DISK], cluster())["state"] == "unknown"
    assert raid1.pair_health(VM, [ISCSI_DISK], cluster(down=("hostb",)))["state"] == "degraded"
    # running on both dom0s: the one state that corrupts the mirror comes first
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(runs=("hosta", "hostb")), {"data": array(fixture_text, "clean")})
    assert health["state"] == "split" and health["causes"][0]["problem"].startswith("web01 runs on hosta and hostb")
    # running nowhere: no sessions are judged, the dom0s and LVs are
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(runs=(), down=("hostb",)))
    assert health["guest_host"] is None and [c["cause"] for c in health["causes"]] == ["host_down"]
    assert raid1.pair_health(VM, [], cluster())["state"] == "unknown"


def test_both_legs_out_is_failed(cluster, fixture_text):
    health = raid1.pair_health(VM, [ISCSI_DISK], cluster(down=("hostb",)), {"data": array(fixture_text, "degraded")})
    assert health["state"] == "degraded"
    results = cluster(down=("hostb",))
    results["hosta"]["disk_exports"]["shared_paths"] = []
    assert raid1.pair_health(VM, [ISCSI_DISK], results)["state"] == "failed"


# --------------------------------------------------------------------------- layout, config, repair plan, journal

SPEC_DISKS = [{"name": "root", "lv": "web07-root", "size_bytes": 1 << 30, "vdev": "xvda", "raid1": False},
              {"name": "data", "lv": "web07-data", "size_bytes": 1 << 28, "vdev": "xvdb", "partner_vdev": "xvdc"}]


def test_layout_puts_one_leg_on_each_dom0_and_exports_both_ways():
    out = raid1.layout("web07", SPEC_DISKS, "hosta", "hostb", "xenvg", ["hostc", "hosta"])
    assert out["hosts_may_run"] == ["hosta", "hostb", "hostc"]
    assert out["lvs"] == {"hosta": [{"lv": "web07-root", "size_bytes": 1 << 30}, {"lv": "web07-data", "size_bytes": 1 << 28}],
                          "hostb": [{"lv": "web07-data", "size_bytes": 1 << 28}]}
    assert out["domain_disks"] == [{"target": "/dev/sanless/hosta/xenvg/web07-root", "vdev": "xvda"},
                                   {"target": "/dev/sanless/hosta/xenvg/web07-data", "vdev": "xvdb"},
                                   {"target": "/dev/sanless/hostb/xenvg/web07-data", "vdev": "xvdc"}]
    assert out["exports"] == [{"from": "hosta", "to": ["hostb", "hostc"], "disks": ["root", "data"]},
                              {"from": "hostb", "to": ["hosta", "hostc"], "disks": ["data"]}]
    assert out["arrays"] == [{"array": "/dev/md/data", "name": "data", "legs": ["/dev/xvdb", "/dev/xvdc"]}]
    [disk] = out["health_disks"]
    assert [leg["host"] for leg in disk["legs"]] == ["hosta", "hostb"] and disk["legs"][1]["vdev"] == "xvdc"
    # the legs are conventions' legs: the disk's LV on its shared path
    assert disk["legs"][0]["path"] == conv.raid1_legs("web07", "data", ["hosta", "hostb"], ["xenvg"] * 2)[0]["path"]


@pytest.mark.parametrize("disks, partner, message", [
    ([dict(SPEC_DISKS[1], partner_vdev=None)], "hostb", "needs a vdev and a partner_vdev"),
    ([dict(SPEC_DISKS[1], partner_vdev="xvdb")], "hostb", "vdev xvdb is used twice"),
    ([dict(SPEC_DISKS[1], partner_vdev="sda")], "hostb", "got 'sda'"),
    ([SPEC_DISKS[0]], "hostb", "no mirrored disk"),
    (SPEC_DISKS, "hosta", "both on hosta"),
    (SPEC_DISKS, "", "needs its home and a partner"),
])
def test_layout_refusals(disks, partner, message):
    with pytest.raises(ValueError, match=message):
        raid1.layout("web07", disks, "hosta", partner, "xenvg")


def test_disks_from_config_reads_the_legs_where_they_are_now():
    specs = ["phy:/dev/sanless/hosta/xenvg/web07-root,xvda,w", "phy:/dev/sanless/hosta/xenvg/web07-data,xvdb,w",
             "target=/dev/sanless/hostc/xenvg/web07-data,vdev=xvdd,access=w", "phy:/dev/xenvg/other,xvde,w"]
    root, data = raid1.disks_from_config("web07", specs, ["hosta", "hostb", "hostc.lab"])
    assert (root["mirrored"], root["array"]) == (False, None)
    assert data["mirrored"] and data["array"] == "/dev/md/data"
    assert [(leg["host"], leg["vdev"]) for leg in data["legs"]] == [("hosta", "xvdb"), ("hostc.lab", "xvdd")]
    assert raid1.disks_from_config("web07", [], ["hosta"]) == []


def health_of(results, arrays, legs=None):
    return raid1.pair_health(VM, [dict(ISCSI_DISK, legs=legs or ISCSI_DISK["legs"])], results, arrays)


def test_repair_re_adds_a_leg_whose_host_is_back(cluster, fixture_text):
    plan = raid1.repair_plan(health_of(cluster(), {"data": array(fixture_text, "degraded")}))
    assert plan["refused"] is None and plan["reexport"] == []
    [disk] = plan["disks"]
    assert (disk["action"], disk["old_host"], disk["leg"]["vdev"]) == ("re_add", "hostb", "dm-1")
    # the session went with the partner's reboot: export and import again, then re-add
    results = cluster()
    results["hosta"]["disk_exports"]["imports"] = [i for i in results["hosta"]["disk_exports"]["imports"]
                                                   if i["transport"] != "iscsi"]
    plan = raid1.repair_plan(health_of(results, {"data": array(fixture_text, "faulty")}))
    assert plan["disks"][0]["action"] == "re_add" and plan["reexport"] == ["hostb"]


def test_repair_of_a_healthy_or_rebuilding_pair_does_nothing(cluster, fixture_text):
    plan = raid1.repair_plan(health_of(cluster(), {"data": array(fixture_text, "clean")}))
    assert [d["action"] for d in plan["disks"]] == ["none"] and plan["refused"] is None
    plan = raid1.repair_plan(health_of(cluster(), {"data": array(fixture_text, "recovery")}))
    assert [d["action"] for d in plan["disks"]] == ["wait"]


def test_repair_waits_for_a_down_partner_unless_replaced_or_gone(cluster, fixture_text):
    health = health_of(cluster(down=("hostb",)), {"data": array(fixture_text, "faulty")})
    plan = raid1.repair_plan(health)
    assert plan["refused"].startswith("hostb's leg") and "wait until hostb is back" in plan["refused"]
    plan = raid1.repair_plan(health, gone=["hostb"], new_host="hostc", new_host_why="ranked first")
    assert plan["refused"] is None and plan["new_host"] == "hostc"
    assert plan["disks"][0]["action"] == "replace" and plan["disks"][0]["why"] == "hostb is gone for good"
    plan = raid1.repair_plan(health, replace=True, new_host=None, new_host_why="hostc: VG too small")
    assert plan["refused"] == "no dom0 can take the new leg: hostc: VG too small"


def test_replace_of_a_healthy_pair_moves_the_remote_leg(cluster, fixture_text):
    plan = raid1.repair_plan(health_of(cluster(), {"data": array(fixture_text, "clean")}), replace=True,
                             new_host="hostc", used_vdevs=["xvda", "xvdb", "xvdc"])
    [disk] = plan["disks"]
    assert disk["action"] == "replace" and disk["old_host"] == "hostb" and disk["leg"]["ok"]
    # the new leg: the disk's LV on hostc on its shared path, at the first vdev after the guest's
    assert disk["new_leg"] == dict(conv.raid1_leg(VM, "data", "hostc", "xenvg"), vdev="xvdd")
    assert any("replace hostb's leg by a new one on hostc" in line for line in plan["summary"])


def test_repair_refusals(cluster, fixture_text):
    clean = {"data": array(fixture_text, "clean")}
    assert "runs on hosta and hostb" in raid1.repair_plan(health_of(cluster(runs=("hosta", "hostb")), clean))["refused"]
    assert "runs on no dom0" in raid1.repair_plan(health_of(cluster(runs=()), clean))["refused"]
    assert "could not be read" in raid1.repair_plan(health_of(cluster(), {}))["refused"]
    # the local leg (slot 0, dm-0 on hosta) failed: the guest would have to move first
    legs = [leg("hosta", "rec0", "dm-1"), leg("hostb", "rec2", "dm-0")]
    plan = raid1.repair_plan(health_of(cluster(), {"data": array(fixture_text, "faulty")}, legs))
    assert "is the local one on hosta" in plan["refused"] and plan["summary"][0].startswith("raid1 repair of web01 REFUSED")


# A VM the failover restarted degraded on hosta (the dead hostb's leg left out of its config): the config names hosta's
# leg only, the inventory both; md in the guest runs on the one leg (detail-degraded: dm-0 active sync, slot 1 removed).
def test_a_leg_the_config_lacks_comes_from_the_inventory_and_is_re_attached(cluster, fixture_text):
    config = [{"name": "data", "lv": "rec0", "legs": ISCSI_DISK["legs"][:1], "mirrored": False, "array": None}]
    inventory = [dict(ISCSI_DISK, name="data", mirrored=True)]
    [disk] = raid1.with_missing_legs(config, inventory)
    assert disk["mirrored"] and disk["array"] == "/dev/md/data"
    assert [(leg["host"], leg.get("attached")) for leg in disk["legs"]] == [("hosta", None), ("hostb", False)]
    # hostb is back, exports its leg and hosta's session is up: the leg is not in the guest, the repair attaches and
    # re-adds it
    health = raid1.pair_health(VM, raid1.health_disks([disk]), cluster(), {"data": array(fixture_text, "degraded")})
    assert health["state"] == "degraded"
    assert [(c["cause"], c["problem"]) for c in health["causes"]] == [
        ("missing_in_md", "hostb's leg %s: not attached to the guest (it was restarted without it)"
         % ISCSI_DISK["legs"][1]["path"])]
    plan = raid1.repair_plan(health)
    [entry] = plan["disks"]
    assert (entry["action"], entry["old_host"], entry["leg"]["attached"], entry["leg"]["vdev"]) == (
        "re_add", "hostb", False, "dm-1")
    # hostb still down: wait for it (or replace)
    health = raid1.pair_health(VM, raid1.health_disks([disk]), cluster(down=("hostb",)),
                               {"data": array(fixture_text, "degraded")})
    assert "wait until hostb is back" in raid1.repair_plan(health)["refused"]
    # both legs in the config, or a leg that is none of the inventory's: as the config says
    both = [dict(config[0], legs=ISCSI_DISK["legs"], mirrored=True, array="/dev/md/data")]
    assert raid1.with_missing_legs(both, inventory) == both
    other = [dict(config[0], legs=[leg("hostc", "rec0", "dm-1")])]
    assert raid1.with_missing_legs(other, inventory) == other


def test_the_re_attached_leg_goes_back_into_the_config(fixture_text):
    text = fixture_text("xl", "4.17.5", "domu-fxrec.cfg")
    leg = {"path": "/dev/sanless/hostb/xenvg/fxrec-disk", "vdev": "xvdb"}
    out = raid1.config_with_legs(text, [leg])
    assert out.startswith('name = "fxrec"\n') and 'on_crash = "preserve"' in out
    assert xen.parse_domain_config(out)["disk"] == ["phy:/dev/xenvg/fxrec-disk,xvda,w",
                                                    "phy:/dev/sanless/hostb/xenvg/fxrec-disk,xvdb,w"]
    assert raid1.config_with_legs(out, [leg]) == out
    assert raid1.config_with_legs(text, [{"path": "/dev/xenvg/fxrec-disk", "vdev": "xvdb"}]) == text


def test_restart_disks_keeps_the_legs_off_the_dead_dom0():
    xen_disks = [{"name": "root", "vdev": "xvda", "raid1": False}, {"name": "data", "vdev": "xvdb", "partner_vdev": "xvdc"}]
    disks = raid1.inventory_disks("web07", xen_disks, "hosta", "hostb", "xenvg")
    start = raid1.restart_disks(disks, "hostb", "hosta")
    assert start["problems"] == [] and start["degraded"] == ["data"] and start["arrays"] == ["/dev/md/data"]
    assert [d["vdev"] for d in start["domain_disks"]] == ["xvda", "xvdb"]
    start = raid1.restart_disks(disks, "hosta", "hostb")
    assert start["problems"][0].startswith("disk root is not mirrored (raid1: false): its only LV xenvg/web07-root is "
                                           "on hosta, which is dead")
    assert raid1.restart_hosts("hosta", "hostb", xen_disks) == ["hosta"]
    assert raid1.restart_hosts("hosta", "hostb", xen_disks[1:], "hostc") == ["hosta", "hostb", "hostc"]


def test_journal_is_the_lock_and_goes_to_the_history(tmp_path):
    owner = {"controller": "ctl", "pid": 42, "pid_start": 7}
    journal = raid1.RepairJournal("web07", str(tmp_path))
    assert journal.load() is None
    journal.start("abc123", owner, {"disks": [{"disk": "data", "action": "re_add"}]})
    journal.mark("exported", host="hostb")
    again = raid1.RepairJournal("web07", str(tmp_path))
    assert again.load()["plan"]["disks"][0]["action"] == "re_add" and again.events() == ["opened", "exported"]
    assert raid1.same_run(again.data["owner"], owner) and not raid1.same_run(again.data["owner"], dict(owner, pid=43))
    path = again.close("finished")
    assert path == str(tmp_path / "history" / "web07-raid1-abc123.json")
    assert not (tmp_path / "raid1" / "web07.json").exists() and (tmp_path / "history" / "web07-raid1-abc123.json").exists()


def test_controller_run_is_the_topmost_ansible_playbook(tmp_path):
    proc = tmp_path / "proc"

    def process(pid, ppid, argv, start):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
        (proc / str(pid) / "stat").write_text("%d (x) S %d%s %d 0\n" % (pid, ppid, " 0" * 17, start))

    process(10, 1, ["/usr/bin/python3", "/venv/bin/ansible-playbook", "repair.yml"], 500)
    process(20, 10, ["/usr/bin/python3", "/venv/bin/ansible-playbook", "repair.yml"], 600)  # a worker fork
    process(30, 20, ["/bin/sh", "-c", "python3 module.py"], 700)
    owner = raid1.controller_run(30, str(proc), "ctl")
    assert owner == {"controller": "ctl", "pid": 10, "pid_start": 500}
    assert raid1.run_alive(owner, str(proc), "ctl")
    assert not raid1.run_alive(dict(owner, pid_start=499), str(proc), "ctl")
    assert not raid1.run_alive(dict(owner, pid=11), str(proc), "ctl")
    assert raid1.run_alive(owner, str(proc), "other-controller")
    # outside ansible-playbook (ad hoc ansible, a test): no owner
    process(40, 1, ["/usr/bin/python3", "/venv/bin/ansible", "all"], 800)
    assert raid1.controller_run(40, str(proc), "ctl") is None


def test_held_legs_and_the_exports_the_repair_restores(cluster, fixture_text):
    # what hosta holds of web07 (its root, not mirrored, and its leg of data): what the failover's fence stops
    # exporting to a dead hostb, and what the repair exports to hostb again once it is back
    xen_disks = [{"name": "root", "vdev": "xvda", "raid1": False}, {"name": "data", "vdev": "xvdb", "partner_vdev": "xvdc"}]
    disks = raid1.inventory_disks("web07", xen_disks, "hosta", "hostb", "xenvg")
    assert [(leg["disk"], leg["path"]) for leg in raid1.held_legs(disks, "hosta")] == [
        ("root", "/dev/sanless/hosta/xenvg/web07-root"), ("data", "/dev/sanless/hosta/xenvg/web07-data")]
    assert [leg["disk"] for leg in raid1.held_legs(disks, "hostb")] == ["data"]
    # the repair re-adds hostb's leg (the guest runs on hosta): hosta's disks go to hostb again
    plan = raid1.repair_plan(health_of(cluster(), {"data": array(fixture_text, "degraded")}))
    assert raid1.restore_exports(plan, disks, ["hosta", "hostb"]) == [{"to": "hostb", "disks": ["root", "data"]}]
    # not to a dom0 that did not answer or is gone, nor when the repair is refused or replaces the leg
    assert raid1.restore_exports(plan, disks, ["hosta"]) == []
    assert raid1.restore_exports(plan, disks, ["hosta", "hostb"], gone=["hostb"]) == []
    assert raid1.restore_exports(dict(plan, refused="no"), disks, ["hosta", "hostb"]) == []
    replacing = raid1.repair_plan(health_of(cluster(), {"data": array(fixture_text, "clean")}), replace=True,
                                  new_host="hostc", used_vdevs=["xvda", "xvdb", "xvdc"])
    assert raid1.restore_exports(replacing, disks, ["hosta", "hostb", "hostc"]) == []
