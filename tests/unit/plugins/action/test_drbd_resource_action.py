# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The wait loop of the drbd_resource action: module results are scripted here (dicts as the
module returns them), the module itself is tested in tests/unit/plugins/modules."""

from __future__ import annotations

import pytest

from ansible_collections.sanless.xen.plugins.action import drbd_resource as action_mod

SYNCING = {"name": "fxd", "minor": 90, "up": True, "cstate": "SyncSource", "role": "Primary", "peer_role": "Secondary",
           "disk": "UpToDate", "peer_disk": "Inconsistent", "sync_percent": 67.4, "speed_kib_s": 3692, "sync_eta_s": 18}
SYNCED = dict(SYNCING, cstate="Connected", peer_disk="UpToDate", sync_percent=None, speed_kib_s=None, sync_eta_s=None)


def result(resource, synced, changed=False, cmds=None, **extra):
    return dict({"changed": changed, "synced": synced, "resource": resource, "cmds": cmds or []}, **extra)


@pytest.fixture
def run_action(action_runner):
    return action_runner(action_mod)


def test_loops_until_synced_with_a_line_per_call(run_action):
    first = result(SYNCING, False, changed=True, cmds=[["drbdadm", "primary", "--force", "fxd"]], diff={"before": ""})
    res, calls, lines = run_action({"name": "fxd", "minor": 90, "wait": True, "progress_interval": 5},
                                   [first, result(SYNCING, False), result(SYNCED, True)])
    assert len(calls) == 3
    assert all(name == "sanless.xen.drbd_resource" for name, _args in calls)
    assert all(args["wait_window"] == 5 for _name, args in calls)
    assert lines == ["  [hosta] drbd fxd SyncSource 67.4% speed 3692 KiB/s eta 18s"] * 2
    assert res["synced"] is True and not res.get("failed")
    assert res["changed"] is True  # the first call's change stays reported
    assert res["cmds"] == [["drbdadm", "primary", "--force", "fxd"]]
    assert res["diff"] == {"before": ""}
    assert res["wait_seconds"] == 30.0


def test_wait_window_is_capped_at_25(run_action):
    res, calls, lines = run_action({"name": "fxd", "wait": True, "progress_interval": 30}, [result(SYNCED, True)])
    assert calls[0][1]["wait_window"] == 25 and lines == []


def test_timeout(run_action):
    res, calls, lines = run_action({"name": "fxd", "wait": True, "wait_timeout": 25}, [result(SYNCING, False)])
    assert res["failed"] is True
    assert res["msg"].startswith("DRBD resource fxd not Connected and UpToDate/UpToDate after 25 s: fxd SyncSource 67.4%")
    assert len(calls) == 3 and len(lines) == 3


def test_module_failure_ends_the_loop(run_action):
    standalone = {"failed": True, "msg": "hosta: resource fxd is StandAlone (disk UpToDate/DUnknown)"}
    res, calls, lines = run_action({"name": "fxd", "wait": True}, [result(SYNCING, False), standalone])
    assert res["failed"] and "StandAlone" in res["msg"] and len(calls) == 2


def test_no_wait_is_one_call(run_action):
    res, calls, lines = run_action({"name": "fxd"}, [result(SYNCING, False)])
    assert len(calls) == 1 and lines == [] and "wait_window" not in calls[0][1] and "wait_seconds" not in res


def test_check_mode_does_not_loop(run_action):
    res, calls, lines = run_action({"name": "fxd", "wait": True}, [result(SYNCING, False)], check_mode=True)
    assert len(calls) == 1 and res["synced"] is False


def test_bad_interval(run_action):
    res, calls, lines = run_action({"name": "fxd", "wait": True, "progress_interval": "often"}, [result(SYNCED, True)])
    assert res["failed"] and calls == []
