# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from ansible_collections.sanless.xen.plugins.action.cluster_plan import ActionModule
from ansible_collections.sanless.xen.plugins.module_utils.plan import (
    PlanError,
    inputs_from_xen_info,
)

MIB = 1024 * 1024


def xen_info(hostname, free_mib, domains, vg_free=10 * 1024 * MIB):
    return {
        "changed": False,
        "host": {"hostname": hostname, "total_memory_mib": 4096, "free_memory_mib": free_mib, "nr_cpus": 2,
                 "xen_version": "4.17.5", "virt_caps": ["pv", "hvm"]},
        "domains": [{"name": "Domain-0", "domid": 0, "memory_mib": 1024, "vcpus": 2, "state": "r-----",
                     "cpu_time_s": 1.0, "config_file": None, "is_dom0": True}]
        + [{"name": name, "domid": k + 1, "memory_mib": mem, "vcpus": 1, "state": "-b----", "cpu_time_s": 0.5,
            "config_file": f"/etc/xen/auto/{name}.cfg", "is_dom0": False} for k, (name, mem) in enumerate(domains)],
        "vgs": [{"name": "xenvg", "size_bytes": 20 * 1024 * MIB, "free_bytes": vg_free}],
        "lvs": [],
        "drbd": {"version": "8.4.11", "minors": {}},
    }


INFO = {
    "hosta": xen_info("hosta", 600, [("web01", 256), ("db01", 512)]),
    "hostb": xen_info("hostb", 900, [("web02", 256), ("scratch", 128)]),
    "hostc": {"unreachable": True, "msg": "ssh: connect to host hostc: No route to host"},
}

VMS = {
    "web01": {"xen_storage_mode": "drbd", "xen_restart_on": ["hostb"], "xen_restart_order": 2},
    "db01": {"xen_storage_mode": "drbd", "xen_restart_on": ["hostb", "hosta"], "xen_restart_order": 1},
    "web02": {"xen_storage_mode": "raid1", "xen_restart_on": ["hosta"]},
    "scratch": {"xen_storage_mode": "plain"},
    "lost01": {"xen_storage_mode": "drbd", "xen_home": "hostc", "xen_memory_mib": 64, "xen_restart_on": ["hosta", "hostb"]},
}


def run_action(args, check_mode=False):
    task = MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = False
    connection = MagicMock()
    play_context = MagicMock()
    play_context.check_mode = check_mode
    action = ActionModule(task, connection, play_context, loader=MagicMock(), templar=MagicMock(), shared_loader_obj=None)
    return action.run(task_vars={})


def test_inputs_from_xen_info():
    hosts, vms, notes = inputs_from_xen_info(INFO, VMS)
    assert hosts == [
        {"name": "hosta", "memory_free_mib": 600, "online": True, "vg_free_bytes": 10 * 1024 * MIB, "drained": False},
        {"name": "hostb", "memory_free_mib": 900, "online": True, "vg_free_bytes": 10 * 1024 * MIB, "drained": False},
        {"name": "hostc", "memory_free_mib": 0, "online": False},
    ]
    by_name = {vm["name"]: vm for vm in vms}
    assert "Domain-0" not in by_name
    assert by_name["db01"]["restart_on"] == ["hostb"]  # its own dom0 is dropped
    assert by_name["scratch"]["restart_on"] == []
    assert by_name["web01"]["order"] == 2
    assert by_name["lost01"]["host"] == "hostc"  # went down with hostc, must restart
    assert any("hostc did not answer" in note for note in notes)


def test_drbd_without_restart_on_is_not_restartable_and_noted():
    vms, notes = inputs_from_xen_info({"hosta": xen_info("hosta", 10, [("vm1", 5)])}, {"vm1": {"storage_mode": "drbd"}})[1:]
    assert vms[0]["restart_on"] == []
    assert any("no xen_restart_on" in note for note in notes)


def test_bad_input_is_a_plan_error():
    with pytest.raises(PlanError, match="runs on both"):
        inputs_from_xen_info({"a": xen_info("a", 10, [("vm1", 5)]), "b": xen_info("b", 10, [("vm1", 5)])})
    with pytest.raises(PlanError, match="xen_storage_mode"):
        inputs_from_xen_info({"a": xen_info("a", 10, [("vm1", 5)])}, {"vm1": {"xen_storage_mode": "nfs"}})


def test_action_plans_and_answers_what_if():
    result = run_action({"info": INFO, "vms": VMS, "min_failures": 1, "what_if": {"remove_vms": ["db01"]}})
    assert result["changed"] is False
    assert not result.get("failed"), result
    # lost01 restarts on hosta first; then hosta failing sends db01 and web01 to hostb.
    assert result["tolerated_failures"] == 1
    assert result["offline_hosts"] == ["hostc"]
    assert result["non_agile"] == ["scratch"]
    restarts = result["failover"]["hosta"]["restarts"]
    assert [r["vm"] for r in restarts] == ["db01", "web01", "lost01"]  # restart order first
    assert all(r["to"] == "hostb" for r in restarts)
    assert result["failover"]["hostb"]["not_restarted"][0]["vm"] == "scratch"
    assert result["what_if"]["ok"] is True
    assert result["summary"][0].startswith("Tolerated host failures: 1")
    assert any(line.startswith("If hosta fails: db01 -> hostb") for line in result["summary"])


def test_action_supports_check_mode_and_reports_overcommit():
    result = run_action({"info": INFO, "vms": VMS, "min_failures": 2, "up_to": 2}, check_mode=True)
    assert result["changed"] is False
    assert result["overcommitted"] is True


def test_action_evacuation_and_placement():
    result = run_action({"info": INFO, "vms": VMS, "evacuate": "hosta", "deadline_s": 1.0, "link_mbit_s": 1000.0,
                         "place": {"name": "new01", "memory_mib": 64, "storage": "drbd", "disk_bytes": 1024}})
    assert not result.get("failed"), result
    drain = result["evacuation"]
    assert drain["fits"] is False  # 256 and 512 MiB over 1 Gbit/s take more than 1 s: both deferred
    assert drain["moves"] == [] and {m["target"] for m in drain["deferred"]} == {"hostb"}
    assert "leaves time for no move" in drain["refused"][0]
    assert any(line.startswith("  deferred: db01 hosta -> hostb") for line in result["summary"])
    roomy = run_action({"info": INFO, "vms": VMS, "evacuate": "hosta", "deadline_s": 100.0})["evacuation"]
    assert roomy["fits"] is True and [m["vm"] for m in roomy["moves"]] == ["db01", "web01"]
    # both drbd VMs moved to their peer hostb have their other copy on hosta, drained: no failure tolerated after
    kept = run_action({"info": INFO, "vms": VMS, "evacuate": "hosta", "ha_tolerate": 1, "per_vm_overhead_s": 5.0})
    assert kept["evacuation"]["tolerance"]["after"] == 0 and "xen_ha_tolerate is 1" in kept["evacuation"]["refused"][0]
    assert kept["evacuation"]["moves"][0]["duration_s"] > 5.0
    assert result["placement"]["host"] in ("hosta", "hostb")
    assert result["placement"]["secondary"] in ("hosta", "hostb")


def test_action_fails_cleanly_on_bad_input():
    vms = dict(VMS, web01={"xen_storage_mode": "drbd", "xen_restart_on": ["nowhere"]})
    result = run_action({"info": INFO, "vms": vms})
    assert result["failed"] is True
    assert "restart_on of VM 'web01' names unknown host 'nowhere'" in result["msg"]
