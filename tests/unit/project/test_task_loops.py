# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Loops of included task files in the roles. Ansible evaluates the `when` of an include_tasks loop for every item
before the first included file runs, so a `when` on a fact the included file sets (a wait that should stop once done)
never stops the loop: the raid1 repair's wait ran every round of its timeout in the lab (stop 28). Such a loop checks
its stop condition inside the included file; this test finds the pattern in every role, and shows Ansible's order."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest
import yaml

from projecthelpers import ROOT, clean_env

INCLUDE_KEYS = ("ansible.builtin.include_tasks", "include_tasks")
SET_FACT_KEYS = ("ansible.builtin.set_fact", "set_fact")


def tasks_of(path):
    """Every task of a task file, the tasks of blocks included."""
    with open(path) as stream:
        data = yaml.safe_load(stream) or []
    out = []

    def walk(tasks):
        for task in tasks or []:
            out.append(task)
            for key in ("block", "rescue", "always"):
                walk(task.get(key))
    walk(data)
    return out


def facts_set(path, seen=None):
    """The fact names a task file sets (set_fact, register), through the files it includes."""
    seen = seen if seen is not None else set()
    if path in seen or not os.path.exists(path):
        return set()
    seen.add(path)
    names = set()
    for task in tasks_of(path):
        for key in SET_FACT_KEYS:
            if isinstance(task.get(key), dict):
                names.update(k for k in task[key] if k != "cacheable")
        if task.get("register"):
            names.add(task["register"])
        for key in INCLUDE_KEYS:
            if isinstance(task.get(key), str) and "{{" not in task[key]:
                names |= facts_set(os.path.join(os.path.dirname(path), task[key]), seen)
    return names


def looped_includes():
    for path in sorted(glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "*.yml"))):
        for task in tasks_of(path):
            target = next((task[k] for k in INCLUDE_KEYS if isinstance(task.get(k), str)), None)
            if target and ("loop" in task or any(k.startswith("with_") for k in task)) and task.get("when"):
                yield path, task, os.path.join(os.path.dirname(path), target)


def test_no_include_loop_stops_on_a_fact_its_file_sets():
    found = []
    checked = 0
    for path, task, target in looped_includes():
        checked += 1
        conditions = task["when"] if isinstance(task["when"], list) else [task["when"]]
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(str(c) for c in conditions)))
        late = sorted(words & facts_set(target))
        if late:
            found.append("%s: %r loops over %s with when on %s, set inside it" % (
                os.path.relpath(path, ROOT), task.get("name"), os.path.relpath(target, ROOT), ", ".join(late)))
    assert not found, "\n".join(found)
    assert checked, "no looped include with a when found: the scan reads nothing"


ROUND = """
- name: Round {{ n }}
  ansible.builtin.set_fact:
    done: "{{ n >= 1 }}"
    rounds: "{{ rounds + [n] }}"
"""

PLAY = """
- name: The order of an include loop's when
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Start
      ansible.builtin.set_fact:
        done: false
        rounds: []
    - name: Loop
      ansible.builtin.include_tasks: round.yml
      loop: [0, 1, 2, 3]
      loop_control:
        loop_var: n
      when: not done
    - name: Show
      ansible.builtin.debug:
        msg: "ROUNDS={{ rounds | join(',') }}"
"""


def test_ansible_decides_an_include_loops_when_before_its_first_round(tmp_path):
    """Why the scan above exists: the `when` says stop after round 1, yet every round runs."""
    (tmp_path / "round.yml").write_text(ROUND)
    (tmp_path / "play.yml").write_text(PLAY)
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, "play.yml"],
                          cwd=str(tmp_path), env=clean_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rounds = re.search(r"ROUNDS=([0-9,]*)", proc.stdout)
    if rounds is None:
        pytest.fail(proc.stdout)
    assert rounds.group(1) == "0,1,2,3"
