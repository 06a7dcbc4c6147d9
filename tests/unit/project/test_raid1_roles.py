# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Storage mode raid1 in the provision role and the raid1 role (status, repair), run by ansible-playbook on two fake
dom0s that both answer (local connection): their xl, vgs and lvs replay the lab recordings (xl 4.17.5, lvm 2.03.16;
hosta runs fxrec, hostb only Domain-0). No storage tool is installed here: no dom0 exports or imports anything."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from projecthelpers import ROOT, clean_env, end_processes

FAKE = """#!/bin/sh
echo "{host} $(basename "$0") $*" >> {log}
case "$(basename "$0") $1" in
  "xl info") cat {xl}/xl-info.txt ;;
  "xl list") [ "$2" = "-l" ] && exit 1; cat {xl}/{xl_list} ;;
  "lvs "*) cat {lvm}/lvs-domu.json ;;
  "vgs "*) cat {lvm}/vgs.json ;;
  *) echo "fake tool: unexpected $*" >&2; exit 1 ;;
esac
"""

DEBIAN = {"xen_memory_mib": 96, "xen_type": "pv", "xen_kernel": "/k", "xen_storage_mode": "raid1", "xen_home": "hosta",
          "xen_disks": [{"name": "root", "size": "64M", "vdev": "xvda", "raid1": False},
                        {"name": "data", "size": "32M", "vdev": "xvdb", "partner_vdev": "xvdc"}]}
INVENTORY = {"all": {"children": {
    "dom0": {"hosts": {"hosta": {}, "hostb": {}}},
    "xen_vms": {"hosts": {
        "web07": dict(DEBIAN, xen_raid1_partner="hostb"),
        "web08": dict(DEBIAN),  # the partner from the placement
        "web09": dict(DEBIAN, xen_raid1_partner="hosta"),
        "web10": dict(DEBIAN, xen_disks=[{"name": "data", "size": "32M", "vdev": "xvdb"}]),
        "web11": {"xen_memory_mib": 96, "xen_kernel": "/k", "xen_storage_mode": "plain",
                  "xen_disks": [{"name": "disk", "size": "32M", "vdev": "xvda"}]},
    }},
}, "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}

PLAY = """
- name: raid1 roles
  hosts: dom0
  gather_facts: false
  environment:
    PATH: "{fake}:{{{{ lookup('env', 'PATH') }}}}"
  tasks:
    - name: Run the role
      ansible.builtin.include_role:
        name: sanless.xen.{role}
        tasks_from: {entry}
      vars:
{args}
"""


@pytest.fixture
def cluster(tmp_path):
    xl = os.path.join(ROOT, "tests", "unit", "fixtures", "xl", "4.17.5")
    lvm = os.path.join(ROOT, "tests", "unit", "fixtures", "lvm", "2.03.16")
    log = tmp_path / "tools.log"
    for host, listing in (("hosta", "xl-list-domu.txt"), ("hostb", "xl-list.txt")):
        folder = tmp_path / "fake" / host
        folder.mkdir(parents=True)
        for tool in ("xl", "lvs", "vgs"):
            path = folder / tool
            path.write_text(FAKE.format(host=host, log=log, xl=xl, lvm=lvm, xl_list=listing))
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        (tmp_path / host / "auto").mkdir(parents=True)
    (tmp_path / "inventory.json").write_text(json.dumps(INVENTORY))

    def run(role, entry, args, check=True):
        lines = "\n".join("        %s: %s" % (k, json.dumps(v)) for k, v in args.items())
        playbook = tmp_path / "play.yml"
        playbook.write_text(PLAY.format(fake=str(tmp_path / "fake") + "/{{ inventory_hostname }}", role=role,
                                        entry=entry, args=lines))
        env = clean_env(tmp_path, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                               str(tmp_path / "inventory.json"), str(playbook)] + (["--check"] if check else []),
                              cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False,
                              timeout=int(os.environ.get("SANLESS_ROLE_TIMEOUT", "300")))
        return proc.returncode, " ".join((proc.stdout + proc.stderr).split()), log.read_text() if log.exists() else ""
    yield tmp_path, run
    end_processes(tmp_path)


def provision_args(root, vm):
    return {"provision_vm": vm, "provision_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
            "provision_toolstack": "xl"}


def changing(calls):
    """The tool calls that are not one of xen_info's readings."""
    reads = (["xl", "info"], ["xl", "list"], ["vgs", "--reportformat"], ["lvs", "--reportformat"])
    return [line for line in calls.splitlines() if line.split()[1:3] not in reads]


def test_provision_raid1_in_check_mode_lays_out_both_legs_and_changes_nothing(cluster):
    root, run = cluster
    rc, out, calls = run("provision", "main", provision_args(root, "web07"))
    assert rc == 0, out[-4000:]
    assert "web07 goes on hosta: its home (xen_home), which holds its local legs" in out
    assert "the other legs of web07 go on hostb: its xen_raid1_partner" in out
    # the runs-once guard ran before the start, for web07 on hosta
    assert "Runs-once guard before the start" in out and "BLOCKED" not in out
    # the guest config has both legs of data on their shared paths (xen_domain's diff in check mode would show it;
    # the layout is what it is given) - and no export or md step ran in check mode
    assert "Export the raid1 legs both ways" in out and "Wait until the guest answers" not in out
    assert changing(calls) == []
    assert not list((root / "hosta" / "auto").iterdir())


def test_provision_raid1_partner_from_the_placement(cluster):
    root, run = cluster
    rc, out, _calls = run("provision", "main", provision_args(root, "web08"))
    assert rc == 0, out[-4000:]
    assert "the other legs of web08 go on hostb: the dom0 placement ranks first for the other legs" in out


@pytest.mark.parametrize("vm, message", [
    ("web09", "xen_raid1_partner must be empty (placement picks the partner) or a dom0 other than its home hosta"),
    ("web10", "disk data needs a vdev and a partner_vdev, one per leg"),
])
def test_provision_raid1_refusals_before_any_change(cluster, vm, message):
    root, run = cluster
    rc, out, calls = run("provision", "main", provision_args(root, vm))
    assert rc != 0 and message in out, out[-3000:]
    assert changing(calls) == []


def test_raid1_status_of_a_vm_that_runs_nowhere_says_why(cluster):
    root, run = cluster
    rc, out, calls = run("raid1", "main", {"raid1_vm": "web07", "raid1_config_dir": str(root) + "/{{ inventory_hostname }}/auto",
                                           "raid1_toolstack": "xl"}, check=False)
    assert rc == 0, out[-4000:]
    # no dom0 holds its config: the legs from the inventory; neither dom0 has the LVs
    assert "web07: FAILED (runs on no dom0)" in out
    assert "CAUSE lv_missing: hosta's leg /dev/sanless/hosta/xenvg/web07-data: no LV xenvg/web07-data on hosta" in out
    assert "CAUSE lv_missing: hostb's leg /dev/sanless/hostb/xenvg/web07-data" in out
    assert changing(calls) == []


def test_raid1_repair_refusals_before_any_change(cluster):
    root, run = cluster
    common = {"raid1_config_dir": str(root) + "/{{ inventory_hostname }}/auto", "raid1_toolstack": "xl",
              "raid1_state_dir": str(root) + "/state"}
    rc, out, calls = run("raid1", "repair", dict(common, raid1_vm="web11"), check=False)
    assert rc != 0 and "vm must be a raid1 VM of inventory group xen_vms" in out and calls == ""
    rc, out, calls = run("raid1", "repair", dict(common, raid1_vm="web07", raid1_gone="hostc"), check=False)
    assert rc != 0 and "gone dom0s ([\"hostc\"])" in out and calls == ""
    rc, out, calls = run("raid1", "repair", dict(common, raid1_vm="web07"), check=False)
    assert rc != 0 and "raid1 repair of web07 REFUSED: web07 runs on no dom0 that answered" in out, out[-3000:]
    assert changing(calls) == [] and not (root / "state").exists()
