# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The failover and watcher roles in check mode, and the runs-once guard role, run by ansible-playbook on two fake
dom0s (local connection): their xl, vgs and lvs replay the lab recordings (xl 4.17.5, lvm 2.03.16), hosta's
xl list being xl-list-domu (fxrec runs there); hostb's xl fails (the dead dom0). There is no /proc/drbd here: DRBD
VMs show as not up. Check mode prints the plan and changes nothing; the report is the role's report fact, kept by the test play
with set_stats."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys

import pytest

from projecthelpers import ROOT, clean_env, end_processes, fake_dom0_tools

FAKE_XL = """#!/bin/sh
echo "{host} $(basename "$0") $*" >> {log}
case "{host} $(basename "$0") $1" in
  "hostb "*) echo "xl: cannot connect to the hypervisor" >&2; exit 1 ;;
  *" xl info") cat {xl}/xl-info.txt ;;
  *" xl list") cat {xl}/{xl_list}; cat {started} 2>/dev/null; true ;;
  *" xl create")
    # a started domain shows in the next xl list, as xl list prints a domain that blocks
    name=$(sed -n 's/^name = "\\(.*\\)"$/\\1/p' "$2")
    printf '%-40s %5d %5d %5d     -b----       0.1\\n' "$name" 42 96 1 >> {started} ;;
  *" lvs "*) cat {lvm}/lvs-domu.json ;;
  *" vgs "*) cat {lvm}/vgs.json ;;
  *) echo "fake tool: unexpected $*" >&2; exit 1 ;;
esac
"""

GUEST = {"xen_memory_mib": 96, "xen_type": "pv", "xen_kernel": "/k", "xen_disks": [{"name": "disk", "size": "128M", "vdev": "xvda"}]}
INVENTORY = {
    "all": {"children": {
        "dom0": {"hosts": {"hosta": {}, "hostb": {}}},
        "xen_vms": {"hosts": {
            "web01": dict(GUEST, xen_home="hostb", xen_storage_mode="plain"),
            "web02": dict(GUEST, xen_home="hosta", xen_storage_mode="plain"),
            "web03": dict(GUEST, xen_home="hostb", xen_storage_mode="drbd", xen_drbd_peer="hosta", xen_drbd_secret="unit-test-secret",
                          xen_disks=[{"name": "disk", "size": "128M", "vdev": "xvda", "drbd_minor": 100}]),
            "web05": dict(GUEST, xen_home="hostb", xen_storage_mode="shared", xen_restart_on=["hosta"]),
        }},
    }, "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
}

PLAY = """
- name: {name}
  hosts: dom0
  gather_facts: false
  environment:
    PATH: "{fake}/{{{{ inventory_hostname }}}}:{{{{ lookup('env', 'PATH') }}}}"
  roles:
    - role: sanless.xen.{role}
{args}
  tasks:
    # set_stats, not a copy to a file: it runs no module (a copy ran three, about a second a run)
    - name: Keep the report
      ansible.builtin.set_stats:
        data:
          unit_report: "{{{{ {report} | default({{}}) }}}}"
        aggregate: false
        per_host: false
      run_once: true
"""


def kept_report(out):
    """The report the test play kept (None when the play failed before), as the default callback prints the stats."""
    found = re.findall(r"^\s*RUN: (\{.*\})\s*$", out, re.M)
    return json.loads(found[-1]).get("unit_report") if found else None


def make_cluster(tmp_path, script=FAKE_XL, inventory=None, xl_list=lambda host: "xl-list-domu.txt"):
    """The fake dom0s (script), fxrec and web02 owned by hosta, and run(role, args, check): ansible-playbook of the
    role on them, returning (rc, output, kept report, tool calls)."""
    log = fake_dom0_tools(tmp_path, script, xl_list=xl_list, started=lambda host: tmp_path / ("%s.started" % host))
    (tmp_path / "hosta" / "auto" / "fxrec.cfg").write_text('name = "fxrec"\n')
    (tmp_path / "hosta" / "auto" / "web02.cfg").write_text('name = "web02"\n')
    (tmp_path / "inventory.json").write_text(json.dumps(inventory or INVENTORY))

    def run(role, args, check=True):
        lines = "\n".join("      %s: %s" % (k, json.dumps(v)) for k, v in args.items())
        playbook = tmp_path / ("%s.yml" % role)
        playbook.write_text(PLAY.format(name=role, fake=tmp_path / "fake", role=role, args=lines, report=role + "_report"))
        # an absolute async dir: with HOME moved, async_status would look under the real user's home
        env = clean_env(tmp_path, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
                        ANSIBLE_ASYNC_DIR=str(tmp_path / "async"), ANSIBLE_SHOW_CUSTOM_STATS="1",
                        ANSIBLE_CALLBACK_RESULT_FORMAT="json")
        try:
            proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                                   str(tmp_path / "inventory.json"), str(playbook)] + (["--check"] if check else []),
                                  cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False,
                                  timeout=int(os.environ.get("SANLESS_ROLE_TIMEOUT", "300")))
        except subprocess.TimeoutExpired as exc:
            pytest.fail("ansible-playbook %s timed out:\n%s" % (role, (exc.stdout or b"")[-4000:].decode(errors="replace")))
        out = proc.stdout + proc.stderr
        return proc.returncode, out, kept_report(proc.stdout), log.read_text() if log.exists() else ""
    return run


@pytest.fixture
def fake_cluster(tmp_path):
    yield tmp_path, make_cluster(tmp_path)
    end_processes(tmp_path)


def task_results(out, name):
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                return task["hosts"]
    raise AssertionError("no task %r in %s" % (name, [t["task"]["name"] for p in out["plays"] for t in p["tasks"]]))


def test_failover_check_mode_prints_the_plan_and_changes_nothing(fake_cluster):
    root, run = fake_cluster
    rc, out, report, calls = run("failover", {"failover_host": "hostb", "failover_confirm_dead": "hostb",
                                              "failover_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
                                              "failover_toolstack": "xl"})
    assert rc == 0, out[-4000:]
    assert report["host"] == "hostb" and report["check_mode"] is True
    # web05 (shared, importable on hosta) restarts there; web01 (plain) is lost; web03's DRBD is not up on hosta
    assert [(r["vm"], r["to"], r["result"]) for r in report["restarts"]] == [("web05", "hosta", "planned (check mode)")]
    lost = dict((entry["vm"], entry["reason"]) for entry in report["lost"])
    assert sorted(lost) == ["web01", "web03"]
    assert "plain storage" in lost["web01"] and "lost until hostb returns" in lost["web01"]
    assert "web03-disk (minor 100) is not up" in lost["web03"]
    # only read-only commands ran
    read_only = (["xl", "info"], ["xl", "list"], ["vgs", "--reportformat"], ["lvs", "--reportformat"])
    assert not [line for line in calls.splitlines() if line.split()[1:3] not in read_only]


def test_failover_check_mode_starts_a_raid1_vm_only_where_its_legs_are(fake_cluster):
    # r1 (raid1, home hostb, partner hosta): xen_info reads the storage facts; this machine has no shared path of
    # hosta's leg (no /dev/sanless), so r1 is not restarted, and the run says why
    root, run = fake_cluster
    inventory = copy.deepcopy(INVENTORY)
    inventory["all"]["children"]["xen_vms"]["hosts"]["r1"] = dict(
        GUEST, xen_home="hostb", xen_storage_mode="raid1", xen_raid1_partner="hosta", xen_vg="xenvg",
        xen_disks=[{"name": "data", "size": "8M", "vdev": "xvdb", "partner_vdev": "xvdc"}])
    (root / "inventory.json").write_text(json.dumps(inventory))
    rc, out, report, _calls = run("failover", {"failover_host": "hostb", "failover_confirm_dead": "hostb",
                                               "failover_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
                                               "failover_toolstack": "xl"})
    assert rc == 0, out[-4000:]
    lost = dict((entry["vm"], entry["reason"]) for entry in report["lost"])
    assert "disk data: hosta's leg /dev/sanless/hosta/xenvg/r1-data is not present on hosta" in lost["r1"], lost


def test_failover_refused_without_confirmation(fake_cluster):
    root, run = fake_cluster
    rc, out, _report, calls = run("failover", {"failover_host": "hostb", "failover_config_dir": str(root) + "/auto"})
    assert rc != 0 and calls == ""
    msg = " ".join(out.split())
    assert "has no fencing hook (xen_fence_command) and its death was not confirmed" in msg
    assert "-e confirm_dead=hostb" in msg


def test_failover_refused_when_the_dom0_answers(fake_cluster):
    root, run = fake_cluster
    rc, out, _report, _calls = run("failover", {"failover_host": "hosta", "failover_confirm_dead": "hosta",
                                                "failover_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
                                                "failover_toolstack": "xl"})
    assert rc != 0
    assert "hosta answers (it runs fxrec): it is not dead; evacuate it instead" in " ".join(out.split())


def test_watcher_check_mode_plans_the_restart_of_what_should_run(fake_cluster):
    root, run = fake_cluster
    rc, out, report, _calls = run("watcher", {"watcher_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
                                              "watcher_toolstack": "xl", "watcher_state_dir": str(root) + "/state"})
    # web02 (plain, config on hosta, down) restarts there even though hostb did not answer: its disks are hosta's
    assert [(r["vm"], r["to"], r["result"]) for r in report["restarts"]] == [("web02", "hosta", "planned (check mode)")]
    assert report["guard_ok"] is False
    assert [f["kind"] for f in report["guard_findings"]] == ["unreachable"]
    assert not (root / "state").exists()  # check mode wrote nothing
    assert rc == 0, out[-4000:]


def test_watcher_pause_stops_the_pass(fake_cluster):
    root, run = fake_cluster
    state = str(root) + "/state"
    run("watcher", {"watcher_action": "pause", "watcher_state_dir": state}, check=False)
    assert (root / "state" / "watcher" / "paused").exists()
    rc, out, _report, calls = run("watcher", {"watcher_state_dir": state, "watcher_toolstack": "xl",
                                              "watcher_config_dir": str(root) + "/{{ inventory_hostname }}/auto"})
    assert rc == 0 and "Watcher paused on 2 dom0(s): nothing checked, nothing restarted" in out, out[-3000:]
    assert calls == ""
    run("watcher", {"watcher_action": "resume", "watcher_state_dir": state}, check=False)
    assert not (root / "state" / "watcher" / "paused").exists()


def test_provision_stops_at_the_runs_once_guard_while_a_dom0_does_not_answer(fake_cluster):
    root, run = fake_cluster
    args = {"provision_vm": "web02", "provision_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
            "provision_toolstack": "xl"}
    rc, out, _report, calls = run("provision", args)
    assert rc != 0
    flat = " ".join(out.split())
    assert "Runs-once guard, nothing was started" in flat
    assert "BLOCKED start of web02: web02 may run on hostb, which did not answer" in flat
    assert not [line for line in calls.splitlines() if "create" in line]


def test_failover_and_watcher_for_real_on_the_fake_dom0s(fake_cluster):
    """Not check mode: the batches, async starts, outcomes, journal and report, with the fake xl creating domains."""
    root, run = fake_cluster
    state = str(root) + "/state"
    rc, out, report, calls = run("failover", {"failover_host": "hostb", "failover_confirm_dead": "hostb",
                                              "failover_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
                                              "failover_toolstack": "xl", "failover_state_dir": state,
                                              "failover_lock_dir": str(root) + "/run",
                                              # as failover.yml passes it: a role parameter (stop 38's shadowing)
                                              "failover_unfenced": False}, check=False)
    assert report is not None, out[-4000:]
    assert [(r["vm"], r["to"], r["result"]) for r in report["restarts"]] == [("web05", "hosta", "started")], out[-4000:]
    assert "hosta xl create %s/hosta/auto/web05.cfg" % root in calls
    journal = list((root / "state" / "failover").glob("web05-*.json"))
    assert len(journal) == 1 and json.loads(journal[0].read_text())["dead_host"] == "hostb"
    assert 'name = "web05"' in (root / "hosta" / "auto" / "web05.cfg").read_text()
    assert rc == 0, out[-4000:]
    # the watcher: web02 is down and owned by hosta; web05 runs now
    rc, out, report, calls = run("watcher", {"watcher_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
                                             "watcher_toolstack": "xl", "watcher_state_dir": state,
                                             "watcher_lock_dir": str(root) + "/run"}, check=False)
    assert report is not None, out[-4000:]
    assert [(r["vm"], r["host"], r["result"]) for r in report["restarts"]] == [("web02", "hosta", "started")], out[-4000:]
    assert "hosta xl create %s/hosta/auto/web02.cfg" % root in calls
    # kept by state_file: the boot id xen_info read (this machine's), one line, as the failover's slurp reads it
    kept = root / "state" / "watcher" / "boot_id"
    with open("/proc/sys/kernel/random/boot_id") as handle:
        assert kept.read_text() == handle.read() and kept.stat().st_mode & 0o7777 == 0o644
    # both created under the domain build lock of the lock folder given (here, not /run)
    assert os.listdir(str(root / "run")) == ["domain-build.lock"]
    assert rc == 0, out[-4000:]


def test_watcher_re_adds_the_raid1_leg_of_a_rebooted_dom0_and_reports_a_failure_and_tries_again(tmp_path):
    """Both fake dom0s answer; fxrec (raid1, home hosta, partner hostb) runs on hosta and hostb's boot id changed: the
    pass runs the raid1 repair for fxrec. Here the repair cannot read a guest md (there is none), so the re-add fails:
    it is reported, the pass fails (a scheduled job notifies), and hostb's new boot id is not kept, so the next pass
    sees the reboot again and tries again. -e raid1_readd=false only reports it."""
    inventory = copy.deepcopy(INVENTORY)
    vms = inventory["all"]["children"]["xen_vms"]["hosts"]
    del vms["web03"]  # no DRBD: nothing to bring up on hostb
    vms["fxrec"] = dict(GUEST, xen_home="hosta", xen_storage_mode="raid1", xen_raid1_partner="hostb",
                        xen_disks=[{"name": "data", "size": "64M", "vdev": "xvdb", "raid1": True}])
    script = FAKE_XL.replace('  "hostb "*) echo "xl: cannot connect to the hypervisor" >&2; exit 1 ;;\n', "")
    run = make_cluster(tmp_path, script, inventory,
                       xl_list=lambda host: "xl-list-domu.txt" if host == "hosta" else "xl-list.txt")
    try:
        args = {"watcher_config_dir": str(tmp_path) + "/{{ inventory_hostname }}/auto", "watcher_toolstack": "xl",
                "watcher_state_dir": str(tmp_path) + "/state-{{ inventory_hostname }}",
                "watcher_lock_dir": str(tmp_path) + "/run"}
        for host in ("hosta", "hostb"):
            (tmp_path / ("state-%s" % host) / "watcher").mkdir(parents=True)
        (tmp_path / "state-hostb" / "watcher" / "boot_id").write_text("an-older-boot\n")
        rc, out, report, _calls = run("watcher", dict(args, watcher_raid1_readd=False), check=False)
        assert report is not None, out[-4000:]
        assert report["rebooted"] == ["hostb"], out[-4000:]
        assert [(r["vm"], r["host"], r["result"]) for r in report["raid1_readd"]] == [("fxrec", "hostb", "reported")]
        assert rc == 0, out[-4000:]
        # only reported: the reboot is recorded
        assert (tmp_path / "state-hostb" / "watcher" / "boot_id").read_text().strip() != "an-older-boot"

        (tmp_path / "state-hostb" / "watcher" / "boot_id").write_text("an-older-boot\n")
        rc, out, report, _calls = run("watcher", args, check=False)
        assert "Repair the pair of fxrec" in out, out[-4000:]
        # the pass failed: the test play kept nothing, the watcher's own stats are the report
        report = json.loads(re.findall(r"^\s*RUN: (\{.*\})\s*$", out, re.M)[-1])["sanless_xen_watcher"]
        [readd] = report["raid1_readd"]
        assert (readd["vm"], readd["host"], readd["result"]) == ("fxrec", "hostb", "failed"), out[-4000:]
        assert readd["msg"], readd
        assert "RAID1 fxrec: failed" in out
        assert rc != 0
        # not recorded on hostb (tried again next pass), recorded on hosta
        assert (tmp_path / "state-hostb" / "watcher" / "boot_id").read_text().strip() == "an-older-boot"
        assert (tmp_path / "state-hosta" / "watcher" / "boot_id").read_text().strip()
    finally:
        end_processes(tmp_path)
