# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The evacuation filters (plugins/filter/evacuation.py): thin over plan.evacuation_plan and the conventions."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter import evacuation
from ansible_collections.sanless.xen.plugins.module_utils import plan
from ansible_collections.sanless.xen.plugins.module_utils.conventions import drained_mark_path
from ansible_collections.sanless.xen.plugins.module_utils.xen import parse_drained_mark

GIB_MIB = 1024


def info(free_mib, domains, drained=None, vg_free=100 * 10 ** 9):
    return {"changed": False, "host": {"hostname": "x", "free_memory_mib": free_mib},
            "domains": [{"name": "Domain-0", "memory_mib": 1024, "vcpus": 2, "is_dom0": True}]
            + [{"name": name, "memory_mib": mem, "vcpus": 1, "is_dom0": False} for name, mem in domains],
            "vgs": [{"name": "xenvg", "free_bytes": vg_free}], "lvs": [], "drained": drained}


def hostvars(**infos):
    found = dict((host, {"evacuate_info": result}) for host, result in infos.items())
    found.update({"web01": {"xen_storage_mode": "plain", "xen_disk_bytes": 10 ** 9, "xen_home": "hosta"},
                  "web02": {"xen_storage_mode": "plain", "xen_disk_bytes": 10 ** 9, "xen_anti_affinity": "web"},
                  "db01": {"xen_storage_mode": "drbd", "xen_restart_on": ["hostc"], "xen_home": "hosta"}})
    return found


VMS = ["web01", "web02", "db01"]


def test_evacuation_hosts_by_name_list_and_wildcard():
    dom0s = ["hosta", "hostb", "hostc", "web1"]
    assert evacuation.evacuation_hosts(dom0s, "hosta") == ["hosta"]
    assert evacuation.evacuation_hosts(dom0s, "hostc, host[ab]") == ["hostc", "hosta", "hostb"]
    assert evacuation.evacuation_hosts(dom0s, ["host*", "hosta"]) == ["hosta", "hostb", "hostc"]
    for bad, message in (("", "no dom0 to evacuate"), ("hostz", "matches no dom0"), ("hosta;reboot", "refused"),
                         ("../etc", "refused")):
        with pytest.raises(AnsibleFilterError, match=message):
            evacuation.evacuation_hosts(dom0s, bad)


def test_evacuation_plan_reads_hostvars_and_is_the_planners():
    hv = hostvars(hosta=info(0, [("web01", 512), ("web02", 512), ("db01", 1024)]),
                  hostb=info(8 * GIB_MIB, [], drained={"by": "evacuate", "since": 1, "reason": "x", "path": "p"}),
                  hostc=info(4 * GIB_MIB, [("other", 256)]))
    result = evacuation.evacuation_plan(hv, ["hosta", "hostb", "hostc"], ["hosta"], vms=VMS, link_mbit_s=1000.0,
                                        per_vm_overhead_s=10.0, deadline_s=None, ha_tolerate=None)
    # hostb is drained: everything goes to hostc
    assert {m["vm"]: m["target"] for m in result["moves"]} == {"web01": "hostc", "web02": "hostc", "db01": "hostc"}
    hosts, vms, notes = plan.inputs_from_xen_info(dict((h, hv[h]["evacuate_info"]) for h in ("hosta", "hostb", "hostc")),
                                                  dict((v, hv[v]) for v in VMS))
    expected = plan.evacuation_plan(hosts, vms, ["hosta"], link_mbit_s=1000.0, per_vm_overhead_s=10.0)
    assert result == dict(expected, lines=plan.evacuation_lines(expected), notes=notes)
    assert result["lines"][0].startswith("Evacuating hosta: 3 move(s)")


def test_evacuation_plan_refuses_a_dom0_that_did_not_answer_and_bad_options():
    hv = hostvars(hosta={"unreachable": True, "msg": "no route"}, hostb=info(8 * GIB_MIB, []))
    with pytest.raises(AnsibleFilterError, match="cannot evacuate hosta: did not answer xen_info"):
        evacuation.evacuation_plan(hv, ["hosta", "hostb"], ["hosta"], vms=VMS)
    hv = hostvars(hosta=info(0, [("web01", 512)]), hostb=info(8 * GIB_MIB, []))
    with pytest.raises(AnsibleFilterError, match="concurrency must be a positive integer"):
        evacuation.evacuation_plan(hv, ["hosta", "hostb"], ["hosta"], vms=VMS, concurrency=0)


def test_drained_mark_is_what_xen_info_reads_back():
    mark = evacuation.drained_mark("kernel upgrade", 1796371200)
    assert mark["path"] == drained_mark_path()
    assert parse_drained_mark(mark["content"], mark["path"]) == {
        "by": "evacuate", "since": 1796371200, "reason": "kernel upgrade", "path": drained_mark_path()}


def test_homecoming_lists_the_vms_away_from_a_returned_home():
    hv = hostvars(hosta=info(8 * GIB_MIB, []), hostb=info(8 * GIB_MIB, [("web01", 512), ("web02", 512)]),
                  hostc=info(8 * GIB_MIB, [("db01", 1024)]))
    assert evacuation.evacuation_homecoming(hv, ["hosta", "hostb", "hostc"], ["hosta"], vms=VMS) == [
        {"vm": "db01", "source": "hostc", "target": "hosta"}, {"vm": "web01", "source": "hostb", "target": "hosta"}]
    assert evacuation.evacuation_homecoming(hv, ["hosta", "hostb", "hostc"], ["hostb"], vms=VMS) == []


def test_report_one_row_per_vm():
    drain = {"hosts": ["hosta"],
             "moves": [{"vm": "a", "source": "hosta", "target": "hostb", "bytes": 10, "duration_s": 1.0},
                       {"vm": "b", "source": "hosta", "target": "hostb", "bytes": 20, "duration_s": 2.0},
                       {"vm": "c", "source": "hosta", "target": "hostc", "bytes": 30, "duration_s": 3.0},
                       {"vm": "d", "source": "hosta", "target": "hostc", "bytes": 40, "duration_s": 4.0},
                       {"vm": "e", "source": "hosta", "target": "hostc", "bytes": 50, "duration_s": 5.0}],
             "deferred": [{"vm": "f", "source": "hosta", "target": "hostb", "bytes": 60, "duration_s": 600.0,
                           "reason": "would end at 700 s, after the deadline (600 s)"}],
             "not_movable": [{"vm": "g", "host": "hosta", "reason": "storage mode unknown"}]}
    outcomes = [{"vm": "a", "result": "migrated", "target": "hostb", "seconds": 1.5, "xl_migrate_seconds": 0.4},
                {"vm": "b", "result": "refused", "problems": ["hostb: needs 600 MiB"]},
                {"vm": "c", "result": "failed", "msg": "promote failed on hostc"},
                {"vm": "d", "result": "deferred", "msg": "not started: 10 s left of the deadline"}]
    report = evacuation.evacuation_report(drain, outcomes)
    rows = dict((row["vm"], row) for row in report["rows"])
    assert [rows[v]["result"] for v in "abcdefg"] == ["moved", "refused", "failed", "deferred", "not run", "deferred",
                                                      "refused"]
    assert rows["a"]["seconds"] == 1.5 and rows["a"]["xl_migrate_seconds"] == 0.4 and rows["a"]["bytes"] == 10
    assert rows["b"]["reason"] == "hostb: needs 600 MiB" and rows["g"]["reason"] == "storage mode unknown"
    assert report["totals"] == {"moved": 1, "refused": 2, "failed": 1, "deferred": 2, "not run": 1}
    assert report["complete"] is False
    assert evacuation.evacuation_report({"hosts": ["hosta"], "moves": []}, [])["complete"] is True


def test_report_a_skipped_vm_a_pause_and_a_failed_post_hook():
    drain = {"hosts": ["hosta"],
             "moves": [{"vm": "a", "source": "hosta", "target": "hostb", "bytes": 10, "duration_s": 1.0},
                       {"vm": "b", "source": "hosta", "target": "hostc", "bytes": 20, "duration_s": 2.0}]}
    outcomes = [{"vm": "a", "result": "migrated", "target": "hostb", "pause_ms": 412,
                 "hook_failed": "lb enable failed: rc 3, pool busy"},
                {"vm": "b", "target": "hostc", "result": "skipped", "msg": "not moved: lb drain failed: rc 1"}]
    report = evacuation.evacuation_report(drain, outcomes)
    rows = dict((row["vm"], row) for row in report["rows"])
    assert (rows["a"]["result"], rows["a"]["pause_ms"], rows["a"]["hook_failed"]) == (
        "moved", 412, "lb enable failed: rc 3, pool busy")
    assert (rows["b"]["result"], rows["b"]["reason"], rows["b"]["hook_failed"]) == (
        "skipped", "not moved: lb drain failed: rc 1", None)
    assert report["totals"] == {"moved": 1, "skipped": 1, "post-hook failed": 1}
    assert report["complete"] is False
    # moved, its post-move hook failed: still not complete (the operator has a load balancer to fix)
    assert evacuation.evacuation_report(drain, outcomes[:1] + [{"vm": "b", "result": "migrated"}])["complete"] is False
    assert evacuation.evacuation_report(drain, [{"vm": "a", "result": "migrated"},
                                                {"vm": "b", "result": "migrated"}])["complete"] is True


HOOKS = {"pre": [{"name": "drain lb", "command": ["/usr/local/bin/lb", "drain", "web01"]},
                 {"tasks": "/srv/hooks/quiesce.yml"}],
         "post": [{"command": ["/usr/local/bin/lb", "enable", "web01"], "delegate_to": "lb01"}]}


def test_hooks_well_formed_and_named():
    hv = {"web01": {"xen_migrate_hooks": HOOKS}, "web02": {}, "web03": {"xen_migrate_hooks": {}}}
    assert evacuation.evacuation_hook_problems(hv, ["web01", "web02", "web03", "not-in-inventory"]) == []
    assert [h["name"] for h in evacuation.evacuation_hooks(hv, "web01", "pre")] == ["drain lb", "pre-move hook 2"]
    assert evacuation.evacuation_hooks(hv, "web01", "post") == [
        {"command": ["/usr/local/bin/lb", "enable", "web01"], "delegate_to": "lb01", "name": "post-move hook 1"}]
    assert evacuation.evacuation_hooks(hv, "web02", "pre") == [] and evacuation.evacuation_hooks(hv, "nope", "post") == []


@pytest.mark.parametrize("hooks, problem", [
    ("lb drain", "web01: xen_migrate_hooks must be a dict with pre and/or post, not str"),
    ({"before": []}, "web01: xen_migrate_hooks has before; only pre and post"),
    ({"pre": {"command": ["true"]}}, "web01: xen_migrate_hooks.pre must be a list of hooks"),
    ({"pre": ["true"]}, "web01: xen_migrate_hooks.pre[1] must be a dict with command or tasks"),
    # a string would go through a shell with a VM's variables in it
    ({"pre": [{"command": "lb drain web01; reboot"}]},
     "web01: xen_migrate_hooks.pre[1]: command must be a non-empty list of strings (argv, no shell)"),
    ({"post": [{"command": []}]},
     "web01: xen_migrate_hooks.post[1]: command must be a non-empty list of strings (argv, no shell)"),
    ({"post": [{"command": ["lb", 3]}]},
     "web01: xen_migrate_hooks.post[1]: command must be a non-empty list of strings (argv, no shell)"),
    ({"pre": [{"command": ["true"], "tasks": "x.yml"}]},
     "web01: xen_migrate_hooks.pre[1] needs exactly one of command (an argv list) or tasks (a tasks file)"),
    ({"pre": [{"name": "nothing"}]},
     "web01: xen_migrate_hooks.pre[1] needs exactly one of command (an argv list) or tasks (a tasks file)"),
    ({"pre": [{"tasks": ""}]}, "web01: xen_migrate_hooks.pre[1]: tasks must be the path of a tasks file"),
    ({"pre": [{"command": ["true"], "shell": True}]},
     "web01: xen_migrate_hooks.pre[1] has shell; only command or tasks, delegate_to and name"),
    ({"pre": [{"tasks": "x.yml", "delegate_to": "lb01"}]},
     "web01: xen_migrate_hooks.pre[1]: delegate_to is for a command; a tasks file delegates its own tasks"),
])
def test_malformed_hooks_are_refused_with_where(hooks, problem):
    assert evacuation.evacuation_hook_problems({"web01": {"xen_migrate_hooks": hooks}}, ["web01"]) == [problem]


def test_hook_failure_in_one_line():
    failed = {"failed": True, "msg": "non-zero return code", "rc": 3, "stderr": "connecting\nlb01: pool busy\n",
              "cmd": ["/usr/local/bin/lb", "drain", "web01"]}
    assert evacuation.evacuation_hook_failure(failed, "drain lb") == (
        "drain lb failed: rc 3, lb01: pool busy")
    assert evacuation.evacuation_hook_failure({"msg": "[Errno 2] No such file or directory: b'/nope'"}, "pre-move hook 1") == (
        "pre-move hook 1 failed: [Errno 2] No such file or directory: b'/nope'")
    assert evacuation.evacuation_hook_failure(None, "x") == "x failed: failed"


def lab_info(free_mib, domains, lvs=(), vg_free=8 * 2 ** 30):
    """A dom0's xen_info result with LVs (vg, name, size) as lvm.lvs reads them."""
    result = info(free_mib, domains, vg_free=vg_free)
    result["lvs"] = [{"vg": vg, "name": name, "size_bytes": size} for vg, name, size in lvs]
    return result


def test_a_lab_inventory_drbd_vm_goes_to_its_peer_and_plain_disks_count_by_their_lvs():
    # the lab inventory's variables: a drbd VM names its peer (xen_drbd_peer), not xen_restart_on; a plain VM
    # names its disks (xen_disks), not xen_disk_bytes: the LVs on its dom0 give their real sizes
    mib = 2 ** 20
    hv = {"hosta": {"evacuate_info": lab_info(0, [("web01", 96), ("web03", 96)],
                                              lvs=[("xenvg", "web01-disk", 256 * mib), ("xenvg", "web01-data", 128 * mib),
                                                   ("xenvg", "web03-disk", 128 * mib)])},
          "hostb": {"evacuate_info": lab_info(4 * GIB_MIB, [], vg_free=300 * mib)},
          "hostc": {"evacuate_info": lab_info(2 * GIB_MIB, [], lvs=[("xenvg", "web03-disk", 128 * mib)])},
          "web01": {"xen_storage_mode": "plain", "xen_home": "hosta", "xen_vg": "xenvg",
                    "xen_disks": [{"name": "disk", "size": "256M"}, {"name": "data", "size": "128M"}]},
          "web03": {"xen_storage_mode": "drbd", "xen_home": "hosta", "xen_drbd_peer": "hostc",
                    "xen_disks": [{"name": "disk", "size": "128M", "drbd_minor": 100}]}}
    result = evacuation.evacuation_plan(hv, ["hosta", "hostb", "hostc"], ["hosta"], vms=["web01", "web03"])
    moves = dict((m["vm"], m) for m in result["moves"])
    assert result["not_movable"] == [] and result["fits"]
    assert moves["web03"]["target"] == "hostc" and moves["web03"]["storage"] == "drbd"
    # hostb has more memory but 300 MiB of VG: too little for 384 MiB of disks, so hostc takes web01
    assert moves["web01"]["target"] == "hostc"
    assert moves["web01"]["disk_bytes"] == 384 * mib and moves["web01"]["bytes"] == 96 * mib + 384 * mib
    assert moves["web03"]["bytes"] == 96 * mib
