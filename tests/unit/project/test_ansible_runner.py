# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AWX jobs without AWX and without the lab: a fresh `git clone` of the repository (no make step) is
synced as AWX syncs a project, and job templates' playbooks run with ansible-runner on a private data
dir laid out as AWX lays it out (tests/awx/awxjob.py). The dom0s are ones no module reaches, so the
jobs end at their checks; what AWX would keep is checked: status, rc and the set_stats artifacts.
tests/e2e/test_awx.py runs the migrate job template to the end in the lab."""

from __future__ import annotations

import os
import sys

import pytest

from projecthelpers import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "awx"))
import awxjob  # noqa: E402  pylint: disable=wrong-import-position

# dom0s that do not answer ssh (a closed port on the loopback), as an AWX inventory script prints them
UNREACHABLE = {"_meta": {"hostvars": dict(
    (h, {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_ssh_common_args": "-o ConnectTimeout=5"})
    for h in ("hosta", "hostb"))},
    "all": {"children": ["ungrouped", "dom0"]}, "dom0": {"hosts": ["hosta", "hostb"]}}
# a dom0 no module can run on: if a check let something through, the job fails right after it
NO_PYTHON = ("[dom0]\nhosta ansible_host=127.0.0.1 ansible_connection=local "
             "ansible_python_interpreter=/nonexistent/python3\n")


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    top = str(tmp_path_factory.mktemp("awx-runner"))
    project, collections = awxjob.sync_project(top)
    installed = os.path.join(collections, "ansible_collections", "sanless", "xen")
    assert os.path.isfile(os.path.join(installed, "MANIFEST.json"))
    assert not os.path.exists(os.path.join(installed, "lab"))
    return top, project, collections


def job(synced, ident, playbook, inventory, **kwargs):
    top, project, collections = synced
    return awxjob.run_job(top, project, collections, playbook, inventory, ident=ident, timeout=300, **kwargs)


def test_refused_migrate_job_publishes_its_summary(synced):
    """The migrate job template with survey answers; no dom0 knows the VM: the run is refused at the
    preflight, fails once with the reason, and the job's artifacts say so."""
    result = job(synced, "migrate-refused", "playbooks/migrate.yml", UNREACHABLE,
                 extravars={"vm": "web01", "target": "hostb", "abort": "no"})
    assert result.status == "failed" and result.rc != 0, result
    summary = result.artifacts["sanless_xen_migration"]
    assert (summary["vm"], summary["action"], summary["result"]) == ("web01", "migrate", "refused"), summary
    assert "unknown VM web01" in summary["problems"][0], summary
    refusals = [line for line in result.fatal_lines() if "UNREACHABLE" not in line]
    assert len(refusals) == 1 and refusals[0].startswith("fatal: [hosta]: FAILED!"), result
    assert "unknown VM web01" in result.stdout, result
    # what the job event of the failed task carries for AWX's job output
    failed = [e for e in result.events if e.get("event") == "runner_on_failed"]
    assert [e["event_data"]["task"] for e in failed] == ["Stop when the preflight found a problem (nothing has changed)"]


def test_hostile_survey_answer_is_refused_with_artifacts(synced):
    """A survey answer with shell metacharacters stops the job at the role's check, before any
    dom0 is asked; the artifacts carry the refusal too."""
    result = job(synced, "migrate-hostile", "playbooks/migrate.yml", NO_PYTHON,
                 extravars={"vm": "web01; reboot", "target": "", "abort": "no"})
    assert result.status == "failed", result
    summary = result.artifacts["sanless_xen_migration"]
    assert summary["result"] == "refused" and summary["source"] is None, summary
    assert summary["problems"][0].startswith("vm must be a VM name"), summary
    assert len(result.fatal_lines()) == 1, result
    assert "/nonexistent/python3" not in result.stdout, result


def test_report_job_runs_from_the_installed_collection(synced):
    """vmlist from the project's requirements_collections: the dom0 without Python fails its read,
    the job publishes the totals with the failure."""
    result = job(synced, "vmlist", "playbooks/vmlist.yml", NO_PYTHON, extravars={"format": "json"})
    stats = result.artifacts["sanless_xen_vmlist"]
    assert stats["hosts"] == {"hosta": "failed"} and stats["totals"]["hosts_failed"] == 1, stats
    started = [e for e in result.events if e.get("event") == "playbook_on_start"]
    assert started and started[0]["event_data"]["playbook"] == "playbooks/vmlist.yml"
