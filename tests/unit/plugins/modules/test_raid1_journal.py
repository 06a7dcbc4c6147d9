# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.raid1_journal: the raid1 repair's journal and lock on a state folder under tmp_path (no commands)."""

from __future__ import annotations

import json

from ansible_collections.sanless.xen.plugins.modules import raid1_journal

ME = {"controller": "ctl", "pid": 100, "pid_start": 5}
OTHER = {"controller": "ctl", "pid": 200, "pid_start": 6}
PLAN = {"disks": [{"disk": "data", "action": "replace"}]}


def journal(module_main, tmp_path, check_mode=False, **args):
    result, failed, calls = module_main(raid1_journal.main, dict({"vm": "web07", "state_dir": str(tmp_path)}, **args),
                                        {}, check_mode, True)
    assert calls == []
    return result, failed


def test_open_step_close(module_main, tmp_path):
    result, failed = journal(module_main, tmp_path, True, state="open", owner=ME, run_id="r1", plan=PLAN)
    assert not failed and result["changed"] and not (tmp_path / "raid1").exists()  # check mode wrote nothing
    result, failed = journal(module_main, tmp_path, state="open", owner=ME, run_id="r1", plan=PLAN)
    assert result["changed"] and not result["resumed"] and result["done"] == ["opened"]
    result, failed = journal(module_main, tmp_path, state="step", owner=ME, event="attached data", info={"vdev": "xvdd"})
    assert result["done"] == ["opened", "attached data"] and result["journal"]["log"][-1]["vdev"] == "xvdd"
    # the same run opens again: resumed, no change
    result, failed = journal(module_main, tmp_path, state="open", owner=ME, run_id="r2", plan={"other": 1})
    assert result["resumed"] and not result["changed"] and result["journal"]["plan"] == PLAN
    result, failed = journal(module_main, tmp_path, state="closed", owner=ME)
    assert result["history"] == str(tmp_path / "history" / "web07-raid1-r1.json")
    assert json.loads((tmp_path / "history" / "web07-raid1-r1.json").read_text())["outcome"] == "finished"
    assert not (tmp_path / "raid1" / "web07.json").exists()


def test_another_runs_journal_is_the_lock(module_main, tmp_path):
    journal(module_main, tmp_path, state="open", owner=OTHER, run_id="r1", plan=PLAN)
    result, failed = journal(module_main, tmp_path, state="open", owner=ME, run_id="r2", plan={})
    assert not failed and not result["changed"] and result["held_by"] == OTHER
    result, failed = journal(module_main, tmp_path, state="step", owner=ME, event="x")
    assert failed and "held by another run" in result["msg"]
    # that run is gone: taken over, its plan resumed
    result, failed = journal(module_main, tmp_path, state="open", owner=ME, run_id="r2", plan={}, takeover=True)
    assert result["changed"] and result["resumed"] and result["journal"]["plan"] == PLAN
    assert result["done"][-1] == "taken over" and result["journal"]["owner"] == ME


def test_refusals(module_main, tmp_path):
    result, failed = journal(module_main, tmp_path, state="step", owner=ME, event="x")
    assert failed and "no open raid1 repair journal of web07" in result["msg"]
    result, failed = journal(module_main, tmp_path, state="open", owner=ME, run_id="../x", plan={})
    assert failed and "invalid run_id" in result["msg"]
    result, failed = journal(module_main, tmp_path, vm="web 07", state="open", owner=ME, run_id="r1", plan={})
    assert failed and "invalid VM name" in result["msg"]
    result, failed = journal(module_main, tmp_path, state="owner")
    assert not failed and result["owner"] is None and result["alive"] is False  # pytest is no ansible-playbook
