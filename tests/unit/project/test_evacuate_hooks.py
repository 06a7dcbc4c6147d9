# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The evacuate role's hook tasks (hook_pre.yml, hook_post.yml), run by ansible-playbook on two local "dom0s" as
the role's move.yml and parallel.yml run them around a move: the commands and tasks files of xen_migrate_hooks,
what they are told, a failing pre-move hook that skips its VM and stops its later hooks, a failing post-move hook
recorded in the VM's outcome. The move itself is the lab's (tests/e2e/test_evacuate.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from projecthelpers import ROOT, clean_env, end_processes

# writes its argv and the hook's environment as JSON to the file named by its first argument
RECORDER = """import json, os, sys
with open(sys.argv[1], "w") as handle:
    json.dump({"argv": sys.argv[2:], "env": dict((k, v) for k, v in os.environ.items() if k.startswith("SANLESS_XEN_"))},
              handle, sort_keys=True)
"""

TASKS_HOOK = """---
- name: A user's tasks hook writes what it was told
  ansible.builtin.copy:
    dest: "{out}/tasks-{{{{ sanless_xen_hook.vm }}}}.json"
    content: "{{{{ sanless_xen_hook | to_json }}}}"
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""

PLAY = """
- name: The hooks around three moves
  hosts: dom0
  gather_facts: false
  tasks:
    - name: No outcome yet
      ansible.builtin.set_fact:
        evacuate_outcomes: []
      run_once: true

    - name: Pre-move hooks
      ansible.builtin.include_role:
        name: sanless.xen.evacuate
        tasks_from: hook_pre.yml
      loop: "{{{{ moves }}}}"
      loop_control:
        loop_var: evacuate_move

    - name: The moves of the VMs not skipped, as the migrate role's summary records them
      ansible.builtin.set_fact:
        evacuate_outcomes: >-
          {{{{ evacuate_outcomes + [{{'vm': item.vm, 'target': item.target, 'result': 'migrated'}}] }}}}
      loop: "{{{{ moves | rejectattr('vm', 'in', evacuate_outcomes | map(attribute='vm') | list) | list }}}}"
      run_once: true

    - name: Post-move hooks
      ansible.builtin.include_role:
        name: sanless.xen.evacuate
        tasks_from: hook_post.yml
      loop: "{{{{ moves }}}}"
      loop_control:
        loop_var: evacuate_move

    - name: Keep the outcomes
      ansible.builtin.set_stats:
        data:
          unit_outcomes: "{{{{ evacuate_outcomes }}}}"
        aggregate: false
        per_host: false
      run_once: true
  vars:
    moves:
      - {{vm: web01, source: hosta, target: hostb}}
      - {{vm: web02, source: hosta, target: hostc}}
      - {{vm: web03, source: hosta, target: hostb}}
"""


def test_hooks_around_moves(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    (tmp_path / "quiesce.yml").write_text(TASKS_HOOK.format(out=out))
    python = sys.executable

    def record(name, *args):
        return {"command": [python, str(recorder), str(out / name)] + list(args)}

    inventory = {"all": {"children": {
        "dom0": {"hosts": {"hosta": {}, "hostb": {}}},
        "xen_vms": {"hosts": {
            # "$HOME" and "~" stay text: the command's arguments are not expanded
            "web01": {"xen_migrate_hooks": {"pre": [dict(record("pre-web01.json", "$HOME", "~"), name="drain lb"),
                                                    {"tasks": str(tmp_path / "quiesce.yml")}],
                                            "post": [record("post-web01.json")]}},
            # its first hook fails: the VM is skipped, its second hook and its post hooks do not run
            "web02": {"xen_migrate_hooks": {"pre": [{"command": [python, "-c", "import sys; sys.exit('lb02 busy')"]},
                                                    record("pre2-web02.json")],
                                            "post": [record("post-web02.json")]}},
            "web03": {"xen_migrate_hooks": {"post": [{"name": "enable lb", "command": ["false"]}]}},
        }},
    }, "vars": {"ansible_connection": "local", "ansible_python_interpreter": python}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAY.format())
    env = clean_env(tmp_path, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_SHOW_CUSTOM_STATS="1")
    try:
        proc = subprocess.run([os.path.join(os.path.dirname(python), "ansible-playbook"), "-i", str(tmp_path / "inventory.json"),
                               str(tmp_path / "play.yml")], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                              check=False, timeout=300)
    finally:
        end_processes(tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    kept = re.findall(r"^\s*RUN: (\{.*\})\s*$", proc.stdout, re.M)
    outcomes = dict((o["vm"], o) for o in json.loads(kept[-1])["unit_outcomes"])

    pre = json.loads((out / "pre-web01.json").read_text())
    assert pre == {"argv": ["$HOME", "~"],
                   "env": {"SANLESS_XEN_HOOK": "pre", "SANLESS_XEN_RESULT": "", "SANLESS_XEN_SOURCE": "hosta",
                           "SANLESS_XEN_TARGET": "hostb", "SANLESS_XEN_VM": "web01"}}
    assert json.loads((out / "tasks-web01.json").read_text()) == {
        "phase": "pre", "vm": "web01", "source": "hosta", "target": "hostb", "result": ""}
    assert json.loads((out / "post-web01.json").read_text())["env"] == {
        "SANLESS_XEN_HOOK": "post", "SANLESS_XEN_RESULT": "moved", "SANLESS_XEN_SOURCE": "hosta",
        "SANLESS_XEN_TARGET": "hostb", "SANLESS_XEN_VM": "web01"}
    assert outcomes["web01"] == {"vm": "web01", "target": "hostb", "result": "migrated"}

    assert outcomes["web02"] == {"vm": "web02", "target": "hostc", "result": "skipped",
                                 "msg": "not moved: pre-move hook 1 failed: rc 1, lb02 busy"}
    assert not (out / "pre2-web02.json").exists() and not (out / "post-web02.json").exists()

    assert outcomes["web03"] == {"vm": "web03", "target": "hostb", "result": "migrated",
                                 "hook_failed": "enable lb failed: rc 1"}
