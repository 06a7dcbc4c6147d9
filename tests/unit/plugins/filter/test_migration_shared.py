# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migrate role's plan for storage mode shared: web05's disk is on /dev/sanless/hosta/xenvg/web05-disk,
hosta's LV, which hostb imports (test_migration's preflight reports, with the shared paths)."""

from __future__ import annotations

import pytest

from ansible_collections.sanless.xen.plugins.filter.migration import plan_migration
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.tests.unit.plugins.filter.test_migration import ADDR, report

PATH = conv.shared_disk_path("hosta", "xenvg", "web05-disk")
DISK = {"owner": "hosta", "vg": "xenvg", "lv": "web05-disk", "path": PATH}


def shared(runs_vm=False, paths=(PATH,), **kwargs):
    """A preflight report of a dom0 that reaches the given shared paths (and runs web05 on its shared disk)."""
    result = report(runs_vm=runs_vm, **kwargs)
    facts = result["preflight"]
    facts["shared_paths"] = list(paths)
    if runs_vm:
        # xl list -l names the shared path; no LV of this host is at it (the preflight maps none)
        facts["disks"] = [{"pdev_path": PATH, "vdev": "xvda", "vg": None, "lv": None, "size_bytes": None, "drbd": None,
                           "shared": conv.parse_shared_disk_path(PATH)}]
    return result


def test_the_dom0_that_imports_the_disk_is_the_target_and_nothing_is_copied():
    reports = {"hosta": shared(runs_vm=True), "hostb": shared(), "hostc": shared(paths=(), free_mib=4000)}
    plan = plan_migration(reports, ADDR, "web05")
    assert plan["problems"] == []
    assert (plan["mode"], plan["source"], plan["target"]) == ("shared", "hosta", "hostb")
    assert (plan["disks"], plan["minors"], plan["ports"]) == ([DISK], [], [])
    # and back to the owner, which reaches its own LV by the same path
    reports = {"hosta": shared(), "hostb": shared(runs_vm=True)}
    assert plan_migration(reports, ADDR, "web05", "hosta")["target"] == "hosta"


@pytest.mark.parametrize("reports,target,message", [
    ({"hosta": shared(runs_vm=True), "hostb": shared(paths=())}, "hostb",
     "hostb: lacks the import of %s (run playbooks/export.yml -e vm=web05 -e to=hostb first)" % PATH),
    ({"hosta": shared(runs_vm=True), "hostb": shared(paths=())}, None,
     "hostb: lacks the import of %s (run playbooks/export.yml -e vm=web05 -e to=hostb first)" % PATH),
    ({"hosta": shared(runs_vm=True), "hostb": shared(free_mib=50)}, "hostb",
     "hostb: needs 97 MiB of free memory for web05 (96 MiB + Xen's overhead), has 50 MiB"),
    ({"hosta": shared(runs_vm=True), "hostb": shared()}, "hosta", "target = source: web05 already runs on hosta"),
    ({"hosta": shared(runs_vm=True), "hostb": {"unreachable": True}}, "hostb", "target hostb did not answer the preflight"),
])
def test_a_target_without_the_import_or_room_is_refused_before_any_change(reports, target, message):
    plan = plan_migration(reports, ADDR, "web05", target)
    assert message in plan["problems"], plan["problems"]
    assert plan["target"] is None


def test_a_vm_with_a_shared_and_a_local_disk_is_refused():
    reports = {"hosta": shared(runs_vm=True), "hostb": shared()}
    local = {"pdev_path": "/dev/xenvg/web05-data", "vdev": "xvdb", "vg": "xenvg", "lv": "web05-data",
             "size_bytes": 128 * 1024 * 1024, "drbd": None, "shared": None}
    reports["hosta"]["preflight"]["disks"].append(local)
    assert "some disks of web05 are on shared paths and some are not" in plan_migration(reports, ADDR, "web05")["problems"][0]


def test_a_resumed_shared_migration_keeps_its_disks():
    journal = {"id": "m1", "vm": "web05", "source": "hosta", "target": "hostb", "mode": "shared", "disks": [DISK]}
    reports = {"hosta": shared(runs_vm=True, journal=journal), "hostb": shared(journal=journal)}
    plan = plan_migration(reports, ADDR, "web05")
    assert plan["problems"] == [] and plan["resume"]
    assert (plan["mode"], plan["disks"], plan["minors"], plan["ports"]) == ("shared", [DISK], [], [])
