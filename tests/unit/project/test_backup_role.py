# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/backup.yml and restore.yml (role backup) run by ansible-playbook on two fake dom0s (local connection):
their xl, lvs and vgs replay the lab recordings (xl 4.17.5: fxrec runs on hosta, xl-list-domu; hostb runs nothing,
xl-list with Domain-0 only; lvm 2.03.16 lvs-domu, vgs). Bad requests are refused before any dom0 is asked or changed;
an unknown VM after the read-only preflight; a check-mode backup runs only read commands."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys

import pytest

from projecthelpers import ROOT, XL_RECORDINGS, clean_env, fake_dom0_tools

FAKE = """#!/bin/sh
echo "{host} $(basename "$0") $*" >> {log}
case "{host} $(basename "$0") $1 $2" in
  "hosta xl list -l") cat {xl}/xl-list-l-fxrec.json ;;
  "hosta xl list"*) cat {xl}/xl-list-domu.txt ;;
  "hostb xl list"*) head -n 2 {xl}/xl-list-domu.txt ;;
  *" lvs "*) cat {lvm}/lvs-domu.json ;;
  *" vgs "*) cat {lvm}/vgs.json ;;
  *) echo "fake tool: unexpected $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def cluster(tmp_path):
    log = fake_dom0_tools(tmp_path, FAKE)
    for host in ("hosta", "hostb"):
        folder = tmp_path / "fake" / host
        # each fake dom0 sees its own tools: its Python runs with its fake folder first in PATH
        python = folder / "python"
        python.write_text('#!/bin/sh\nPATH="%s:$PATH" exec "%s" "$@"\n' % (folder, sys.executable))
        python.chmod(0o755)
    with open(os.path.join(XL_RECORDINGS, "domu-fxrec.cfg")) as handle:
        (tmp_path / "hosta" / "auto" / "fxrec.cfg").write_text(handle.read())
    hosts = dict((host, {"ansible_python_interpreter": str(tmp_path / "fake" / host / "python")}) for host in ("hosta", "hostb"))
    inventory = {"all": {"children": {"dom0": {"hosts": hosts}}, "vars": {"ansible_connection": "local"}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))

    def run(playbook, *extra, check=False):
        env = clean_env(tmp_path, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))
        args = ["-e", "backup_state_dir=%s/{{ inventory_hostname }}/state" % tmp_path,
                "-e", "backup_lock_dir=%s/{{ inventory_hostname }}/lock" % tmp_path,
                "-e", "backup_config_dir=%s/{{ inventory_hostname }}/auto" % tmp_path]
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                               str(tmp_path / "inventory.json"), os.path.join(ROOT, "playbooks", playbook)]
                              + args + list(extra) + (["--check"] if check else []),
                              cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False, timeout=300)
        return proc.returncode, " ".join((proc.stdout + proc.stderr).split()), log.read_text() if log.exists() else ""
    return tmp_path, run


@pytest.mark.parametrize("playbook,extra,why", [
    ("backup.yml", ["-e", "vm=web01;reboot", "-e", "dest=/srv/bk"], "vm must be a VM name"),
    ("backup.yml", ["-e", "vm=$(id)", "-e", "dest=/srv/bk"], "vm must be a VM name"),
    ("backup.yml", ["-e", "vm=fxrec"], "dest (HOST:/PATH or /PATH) or dest_vg, one of them"),
    ("backup.yml", ["-e", "vm=fxrec", "-e", "dest=/srv/bk", "-e", "dest_vg=bkvg"], "one of them"),
    ("backup.yml", ["-e", "vm=fxrec", "-e", "dest=/srv/bk", "-e", "backup_action=erase"],
     "value of backup_action must be one of: backup, cleanup, restore"),
    ("backup.yml", ["-e", "vm=fxrec", "-e", "dest=/srv/bk", "-e", "backup_keep=-1"], "backup_keep 0 (keep all) or more"),
    ("restore.yml", ["-e", "vm=fxrec", "-e", "backup=fxrec-20261204T060000Z", "-e", "new_vm=a;b", "-e", "dest=/srv/bk"],
     "new_vm another VM name"),
    ("restore.yml", ["-e", "vm=fxrec", "-e", "backup=web01-20261204T060000Z", "-e", "new_vm=fxnew", "-e", "dest=/srv/bk"],
     "backup=VM-YYYYmmddTHHMMSSZ of vm"),
    ("restore.yml", ["-e", "vm=fxrec", "-e", "backup=fxrec-20261204T060000Z", "-e", "new_vm=fxrec", "-e", "dest=/srv/bk"],
     "new_vm another VM name"),
    ("restore.yml", ["-e", "vm=fxrec", "-e", "backup=fxrec-20261204T060000Z", "-e", "new_vm=fxnew", "-e", "dest=/srv/bk",
                     "-e", "target=hostz"], "on a dom0 of the inventory"),
])
def test_bad_requests_are_refused_before_any_dom0_is_asked(cluster, playbook, extra, why):
    _root, run = cluster
    rc, out, calls = run(playbook, *extra)
    assert rc != 0 and why in out, out[-3000:]
    assert calls == ""   # no dom0 was asked, let alone changed


def test_unknown_vm_is_refused_after_the_read_only_preflight(cluster):
    _root, run = cluster
    rc, out, calls = run("backup.yml", "-e", "vm=web09", "-e", "dest=/srv/bk")
    assert rc != 0 and "web09 runs on no dom0 of the inventory (unknown VM, or stopped)" in out, out[-3000:]
    assert calls and all(line.split()[1:3] == ["xl", "list"] for line in calls.splitlines())


def test_check_mode_backup_runs_only_reads(cluster, tmp_path):
    _root, run = cluster
    rc, out, calls = run("backup.yml", "-e", "vm=fxrec", "-e", "dest=%s/bk" % tmp_path, "-e", "backup_keep=3", check=True)
    assert rc == 0, out[-3000:]
    assert re.search(r"fxrec-[0-9]{8}T[0-9]{6}Z to ", out) and "paused (check mode: no) ms, 134217728 bytes (0 sent)" in out, out[-6000:]
    assert "pruned (keep 3): (check mode: not computed)" in out, out[-6000:]
    read_only = (["xl", "list"], ["lvs", "--reportformat"], ["vgs", "--reportformat"])
    assert calls and not [line for line in calls.splitlines() if line.split()[1:3] not in read_only]
    assert not (tmp_path / "bk").exists() and not (tmp_path / "hosta" / "state" / "backups").exists()
