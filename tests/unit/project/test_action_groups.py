# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""meta/runtime.yml: the action groups work with module_defaults (every member exists and accepts
the options its group is for; a play with group/sanless.xen.xen defaults runs xen_info on fake xl/xm
tools with the group's toolstack), and requires_ansible names the oldest ansible-core tested."""

from __future__ import annotations

import json
import os
import re
import stat
import sys

import pytest
import yaml
from ansible import release
from ansible.module_utils.compat.version import LooseVersion

from projecthelpers import ROOT, clean_env, run_cli

MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "plugins", "modules"))
                 if f.endswith(".py") and not f.startswith("_"))
# The options each group is for, with the values every member must accept.
GROUP_OPTIONS = {"xen": {"toolstack": ["xl", "xm"]}}
# Modules in no group, and why: module_defaults of a group would give them options they do not have.
NO_GROUP = {
    "lvm_volume": "only LVM options",
    "drbd_resource": "only DRBD resource options",
    "live_migration": "one host's half of a migration; the migrate role sets its defaults by module name",
    "cluster_plan": "runs on the controller from xen_info results",
    "iscsi_target": "only iSCSI export options",
    "iscsi_initiator": "only iSCSI import options",
    "aoe_export": "only AoE export options",
    "aoe_import": "only AoE import options",
    "disk_import_cleanup": "only stale import options",
    "md_mirror": "runs in a guest, on its md array",
    "vm_backup": "needs xl (xl list -l): no toolstack option a group default could set to xm",
    "raid1_journal": "only the raid1 repair's journal options",
    "xen_block": "xl only (xl list -l JSON): a group's toolstack xm would not fit it",
    "state_file": "only a file's path, content and mode",
}


def runtime():
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def argument_spec(module):
    """The module's argument_spec, read from the AnsibleModule(...) call without running it."""
    with open(os.path.join(ROOT, "plugins", "modules", module + ".py"), encoding="utf-8") as handle:
        source = handle.read()
    match = re.search(r"^DOCUMENTATION = r?\"\"\"(.*?)\"\"\"", source, re.S | re.M)
    return yaml.safe_load(match.group(1))["options"]


def test_groups_list_existing_modules_and_every_module_is_placed():
    groups = runtime()["action_groups"]
    assert set(groups) == set(GROUP_OPTIONS)
    grouped = set()
    for name, members in groups.items():
        assert members and all(isinstance(m, str) for m in members), name
        for member in members:
            short = member.split(".")[-1]
            assert member in (short, "sanless.xen." + short), member
            assert short in MODULES, "%s in group %s is no module of the collection" % (member, name)
            grouped.add(short)
    assert sorted(grouped | set(NO_GROUP)) == MODULES
    assert not grouped & set(NO_GROUP)


@pytest.mark.parametrize("group", sorted(GROUP_OPTIONS))
def test_every_member_accepts_the_options_of_its_group(group):
    for member in runtime()["action_groups"][group]:
        options = argument_spec(member.split(".")[-1])
        for option, values in GROUP_OPTIONS[group].items():
            assert option in options, "%s lacks %s: group/sanless.xen.%s defaults would fail it" % (member, option, group)
            choices = options[option].get("choices")
            if choices:
                assert set(values) <= set(choices), (member, option, choices)


def test_requires_ansible_is_the_oldest_tested_core():
    spec = runtime()["requires_ansible"]
    match = re.match(r"^>=(\d+)\.(\d+)\.0$", spec)
    assert match, spec
    with open(os.path.join(ROOT, "requirements", "controller-oldest.txt"), encoding="utf-8") as handle:
        oldest = re.search(r"^ansible-core==(\d+)\.(\d+)\.", handle.read(), re.M)
    assert match.groups() == oldest.groups(), "requires_ansible %s, oldest tested ansible-core %s.%s" % (
        spec, oldest.group(1), oldest.group(2))
    assert LooseVersion(release.__version__) >= LooseVersion("%s.%s.0" % match.groups())


FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> {log}
case "$(basename "$0") $1" in
  "xl info"|"xm info") cat {xl}/xl-info.txt ;;
  "xl list"|"xm list") cat {xl}/xl-list.txt ;;
  "lvs "*) cat {lvm}/lvs.json ;;
  "vgs "*) cat {lvm}/vgs.json ;;
  *) echo "fake tool: unexpected $*" >&2; exit 1 ;;
esac
"""

PLAY = """
- name: Group defaults reach the modules of group/sanless.xen.xen
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/sanless.xen.xen:
      toolstack: xm
  tasks:
    - name: Read the dom0 (toolstack from the group; auto would pick xl, which is there too)
      sanless.xen.xen_info:
      register: info

    - name: Another member takes the same default (it stops at its own check, without Xen)
      sanless.xen.xen_migrate:
        name: web01
        target: 127.0.0.1
      register: migrate
      ignore_errors: true

    - name: Write what the modules saw
      ansible.builtin.copy:
        content: "{{ {'toolstack': info.host.toolstack, 'domains': info.domains | map(attribute='name') | list,
                      'migrate_msg': migrate.msg} | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
"""


def fixture_dir(tool):
    base = os.path.join(ROOT, "tests", "unit", "fixtures", tool)
    return os.path.join(base, sorted(os.listdir(base))[-1])


def test_module_defaults_group_in_a_play(tmp_path):
    fake = tmp_path / "fakebin"
    fake.mkdir()
    log = tmp_path / "tools.log"
    script = FAKE_TOOL.format(log=log, xl=fixture_dir("xl"), lvm=fixture_dir("lvm"))
    for tool in ("xl", "xm", "lvs", "vgs"):
        path = fake / tool
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    out = tmp_path / "out.json"
    # the checkout through its link (pytest finds the collection there too)
    env = clean_env(tmp_path, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))
    env["PATH"] = str(fake) + os.pathsep + env["PATH"]
    run_cli("playbook", "-i", "localhost,", "-c", "local", "-e", "out=%s" % out,
            "-e", "ansible_python_interpreter=%s" % sys.executable, playbook, cwd=tmp_path, env=env)
    seen = json.loads(out.read_text())
    assert seen["toolstack"] == "xm"
    assert "Domain-0" in seen["domains"]
    assert "Unsupported parameters" not in seen["migrate_msg"]
    assert "this host" in seen["migrate_msg"]
    calls = log.read_text().splitlines()
    assert "xm info" in calls and "xm list" in calls
    assert not [c for c in calls if c.startswith("xl ")]
