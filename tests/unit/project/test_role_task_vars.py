# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A task's own `vars:` never reuse the name of one of its role's settings (defaults, argument specs). A playbook
passes those settings as role parameters, and role parameters win over task vars: the task then sees the setting,
not its own value. The failover role's promote step named its list of fence-failed VMs `failover_unfenced`, the
role's own true/false setting; under failover.yml the loop met `'web06' in False`, the step failed as a whole
(ignore_errors), and the start step, finding no refused VM, started a DRBD VM on a Secondary disk (lab, stop 38).
The `vars:` of an include_tasks or include_role are include parameters, which win over role parameters: those may
set a setting on purpose (the nightly evacuation's evacuate_action)."""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from projecthelpers import ROOT
from test_task_loops import tasks_of

INCLUDES = ("ansible.builtin.include_tasks", "include_tasks", "ansible.builtin.include_role", "include_role")

ROLES = sorted(os.path.basename(path) for path in glob.glob(os.path.join(ROOT, "roles", "*")) if os.path.isdir(path))


def role_settings(role):
    """Names of the role's settings: its defaults and the options of its argument specs."""
    names = set()
    defaults = os.path.join(ROOT, "roles", role, "defaults", "main.yml")
    if os.path.exists(defaults):
        with open(defaults) as stream:
            names.update((yaml.safe_load(stream) or {}).keys())
    specs = os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")
    if os.path.exists(specs):
        with open(specs) as stream:
            for entry in ((yaml.safe_load(stream) or {}).get("argument_specs") or {}).values():
                names.update((entry.get("options") or {}).keys())
    return names


@pytest.mark.parametrize("role", ROLES)
def test_task_vars_do_not_shadow_role_settings(role):
    settings = role_settings(role)
    clashes = []
    for path in sorted(glob.glob(os.path.join(ROOT, "roles", role, "tasks", "*.yml"))):
        for task in tasks_of(path):
            if any(key in task for key in INCLUDES):
                continue
            for name in sorted(set((task.get("vars") or {}).keys()) & settings):
                clashes.append("%s: task %r sets %s" % (os.path.relpath(path, ROOT), task.get("name"), name))
    assert not clashes, "\n".join(clashes)


def test_the_check_finds_a_clash():
    # the failover role's own setting, which the stop 38 promote step reused
    assert "failover_unfenced" in role_settings("failover")
