# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The controller half of live_migration: the promote loop, the journal takeover decision and the
crash hook. Module results are scripted here (dicts as the module returns them; the sync items
carry the values of the recorded /proc/drbd proc-drbd-syncsource.txt); HostSide itself is tested
in tests/unit/plugins/module_utils/test_livemigrate.py."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from ansible_collections.sanless.xen.plugins.action import live_migration as action_mod
from ansible_collections.sanless.xen.plugins.action.live_migration import controller_owner

SYNCING = {"resource": "sl-web01-0", "cstate": "SyncSource", "disk": "UpToDate", "peer_disk": "Inconsistent",
           "percent": 67.4, "speed_kib_s": 3692, "eta_s": 18}
SYNCED = dict(SYNCING, cstate="Connected", peer_disk="UpToDate", percent=None, speed_kib_s=None, eta_s=None)
BASE = {"vm": "web01", "role": "source", "host_name": "hosta", "address": "10.77.0.11", "peer_name": "hostb",
        "peer_address": "10.77.0.12"}


def promote_result(item, waiting, changed=False, events=()):
    return {"changed": changed, "waiting": waiting, "synced": item["peer_disk"] == "UpToDate", "sync": [item],
            "events": list(events)}


@pytest.fixture
def run_action(action_runner):
    return action_runner(action_mod)


def test_promote_loops_with_progress_and_keeps_what_changed(run_action):
    results = [promote_result(SYNCING, True, changed=True, events=["resync-rate"]), promote_result(SYNCING, True),
               promote_result(SYNCED, False, events=["two-primaries:sl-web01-0"])]
    res, calls, lines = run_action(dict(BASE, step="promote", progress_interval=5, sync_timeout=600), results)
    assert len(calls) == 3 and all(name == "sanless.xen.live_migration" for name, _args in calls)
    assert all(args["sync_window"] == 5 and "sync_timeout" not in args and "progress_interval" not in args
               for _name, args in calls)
    assert lines == ["  [hosta] sync web01: sl-web01-0 SyncSource 67.4% speed 3692 KiB/s eta 18s"] * 2
    assert res["changed"] is True and not res.get("failed")
    assert res["events"] == ["resync-rate", "two-primaries:sl-web01-0"]
    assert res["sync_seconds"] == 20.0


def test_promote_window_is_capped_at_25(run_action):
    res, calls, lines = run_action(dict(BASE, step="promote", progress_interval=30), [promote_result(SYNCED, False)])
    assert calls[0][1]["sync_window"] == 25 and not res.get("failed")
    # a sync done within the first look still shows its end state once (AWX's job events carry it)
    assert lines == ["  [hosta] synced web01: sl-web01-0 Connected UpToDate/UpToDate speed - eta -"]


def test_prepare_watches_the_sync_for_the_same_window_once(run_action):
    res, calls, lines = run_action(dict(BASE, step="prepare", progress_interval=20, sync_timeout=600),
                                   [{"changed": True, "synced": False, "events": ["up:sl-web01-0"]}])
    assert [args["sync_window"] for _name, args in calls] == [20] and "sync_timeout" not in calls[0][1]
    assert lines == [] and res["synced"] is False and not res.get("failed")   # no loop: promote waits and reports


def test_promote_target_done_at_once_prints_nothing(run_action):
    res, calls, lines = run_action(dict(BASE, step="promote", role="target", host_name="hostb"),
                                   [promote_result(SYNCED, False)])
    assert len(calls) == 1 and lines == [] and not res.get("failed")


def test_promote_sync_timeout(run_action):
    res, calls, lines = run_action(dict(BASE, step="promote", sync_timeout=25), [promote_result(SYNCING, True)])
    assert res["failed"] is True and res["msg"] == "DRBD sync of web01 not done after 25 s"
    assert len(calls) == 4  # 10 s a call; the timeout counts from the first answer (t=10) and is seen at t=40


# /proc/drbd of a DRBD VM's home after a provision whose forced promotion met a fresh connection
# (fixtures/drbd/8.4.11/proc-drbd-connected-no-resync.txt): nothing syncs, ever
NO_SYNC = dict(SYNCING, cstate="Connected", percent=None, speed_kib_s=None, eta_s=None)


def test_a_sync_that_never_starts_fails_within_a_minute(run_action):
    res, calls, lines = run_action(dict(BASE, step="promote", sync_timeout=3600), [promote_result(NO_SYNC, True)])
    assert res["failed"] is True
    assert res["msg"].startswith("hosta: DRBD sl-web01-0 has been Connected with disks UpToDate/Inconsistent and no "
                                 "sync running for 60 s")
    assert "drbdadm invalidate-remote" in res["msg"]
    assert len(calls) == 8  # 10 s a call: seen idle from t=10, more than 60 s later at t=80


def test_a_sync_that_starts_late_is_waited_for(run_action):
    # idle for 50 s, then DRBD starts it: the idle clock restarts and the wait goes on to the end
    results = [promote_result(NO_SYNC, True)] * 5 + [promote_result(SYNCING, True)] + \
        [promote_result(NO_SYNC, True)] * 5 + [promote_result(SYNCED, False)]
    res, calls, lines = run_action(dict(BASE, step="promote", sync_timeout=3600), results)
    assert not res.get("failed"), res
    assert len(calls) == 12


def test_target_gives_up_when_the_peer_never_allows_two_primaries(run_action):
    # synced, but the source (which allows two primaries in the same task) is gone
    res, calls, lines = run_action(dict(BASE, role="target", step="promote", sync_timeout=3600),
                                   [promote_result(SYNCED, True)], step=30.0)
    assert res["failed"] is True
    assert res["msg"] == "hosta: the peer did not allow two primaries for web01 within 120 s after the sync"
    assert lines == []  # the target prints no progress once synced


def test_owner_is_this_run(run_action):
    res, calls, lines = run_action(dict(BASE, step="prepare"), [{"changed": True}])
    owner = calls[0][1]["owner"]
    assert owner == controller_owner() and owner["pid"] == os.getppid() and owner["pid_start"] is not None


def test_a_live_runs_journal_is_refused_with_its_pid(run_action):
    live = controller_owner()
    res, calls, lines = run_action(dict(BASE, step="prepare"),
                                   [{"failed": True, "msg": "in progress", "lock_owner": live, "journal": {"updated_at": 0}}])
    assert len(calls) == 1
    assert res["msg"] == "web01 is being migrated by ansible-playbook pid %d on this controller: refused" % live["pid"]


def test_a_dead_runs_journal_is_taken_over(run_action):
    dead = dict(controller_owner(), pid_start=1)  # same pid, another start time: a process that is gone
    res, calls, lines = run_action(dict(BASE, step="prepare"),
                                   [{"failed": True, "msg": "in progress", "lock_owner": dead, "journal": {}},
                                    {"changed": True}])
    assert [args.get("takeover") for _name, args in calls] == [None, True]
    assert lines and lines[0].startswith("sanless.xen: taking over the journal of web01 from a run that is gone")
    assert res["changed"] is True and not res.get("failed")


def test_another_controllers_journal_is_taken_over_only_when_stale(run_action):
    other = {"controller": "elsewhere", "pid": 1, "pid_start": 1}
    fresh = {"failed": True, "msg": "a migration of web01 by another run is in progress", "lock_owner": other,
             "journal": {"updated_at": -100.0}}
    res, calls, lines = run_action(dict(BASE, step="prepare"), [fresh])
    assert len(calls) == 1 and res["failed"] and res["msg"].startswith("a migration of web01 by another run")
    stale = dict(fresh, journal={"updated_at": -1000.0})
    res, calls, lines = run_action(dict(BASE, step="prepare"), [stale, {"changed": True}])
    assert [args.get("takeover") for _name, args in calls] == [None, True]


def test_kill_hook_kills_the_run_after_the_named_step_and_role(run_action, monkeypatch):
    killed = []
    monkeypatch.setattr(action_mod.os, "killpg", lambda pgid, sig: killed.append(pgid))
    monkeypatch.setenv("SANLESS_XEN_KILL_AFTER", "promote:target")
    run_action(dict(BASE, step="promote"), [promote_result(SYNCED, False)])
    assert killed == []   # the source's promote: not the named role
    run_action(dict(BASE, role="target", step="promote"), [promote_result(SYNCED, False)])
    assert killed == [os.getpgid(os.getppid()), os.getpgrp()]


def _report_run_pid(queue):
    queue.put((action_mod.run_pid(), action_mod.orphaned(), action_mod.controller_owner()["pid"]))


def test_a_forked_worker_knows_its_run():
    # ansible forks its task workers with multiprocessing (fork context), as here
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=_report_run_pid, args=(queue,))
    worker.start()
    assert queue.get(timeout=30) == (os.getpid(), False, os.getpid())
    worker.join(timeout=30)


def test_an_orphaned_worker_starts_nothing(run_action, monkeypatch):
    # the run was SIGKILLed after forking this worker: it must not call the module (and never take
    # over the run's journal as if that run were somebody else's)
    monkeypatch.setattr(action_mod, "orphaned", lambda: True)
    res, calls, lines = run_action(dict(BASE, step="promote"), [promote_result(SYNCED, False)])
    assert calls == [] and res["failed"] is True
    assert res["msg"].startswith("web01: the ansible-playbook of this task (pid ") and "step promote not started" in res["msg"]


def test_an_orphaned_worker_stops_waiting_for_the_sync(run_action, monkeypatch):
    looks = iter([False, True])
    monkeypatch.setattr(action_mod, "orphaned", lambda: next(looks))
    res, calls, lines = run_action(dict(BASE, step="promote"), [promote_result(SYNCING, True)])
    assert len(calls) == 1 and res["failed"] is True and "stopped waiting for the sync" in res["msg"]


# -- a running sync watched in /proc/drbd (recorded on the lab's dom0s, minor 90 of a migration)

def proc(fixture_text, name, rc=0):
    return {"rc": rc, "stdout": fixture_text("drbd", "8.4.11", name), "stderr": ""}


WATCHED = dict(SYNCING, minor=90)
WATCHED_DONE = dict(SYNCED, minor=90)


def test_promote_watches_a_running_sync_in_proc_drbd_and_calls_the_module_once_more(run_action, fixture_text):
    raw_calls = []
    results = [promote_result(WATCHED, True, changed=True, events=["resync-rate"]),
               promote_result(WATCHED_DONE, False, events=["two-primaries:sl-web01-0"])]
    # the sync goes on for 30 looks at 1.8 s (a tenth of its 18 s ETA), then /proc/drbd shows it done
    raw = [proc(fixture_text, "proc-drbd-syncsource.txt")] * 30 + [proc(fixture_text, "proc-drbd-uptodate.txt")]
    res, calls, lines = run_action(dict(BASE, step="promote", progress_interval=20, sync_timeout=600), results,
                                   raw=raw, raw_calls=raw_calls)
    # two module starts whatever the sync's length: the first, and the one that finishes the step
    assert len(calls) == 2
    assert raw_calls == ["cat /proc/drbd"] * 31
    progress = "  [hosta] sync web01: sl-web01-0 SyncSource 67.4% speed 3692 KiB/s eta 18s"
    assert lines[0] == progress
    # while watched: a line at most every progress_interval (20 s of 55.8 s watched), marked as read
    assert lines[1:] == [progress + " (read from /proc/drbd)"] * 2
    assert res["changed"] is True and not res.get("failed") and res["events"] == ["resync-rate", "two-primaries:sl-web01-0"]


def test_a_lost_link_while_watched_goes_back_to_the_module_at_once(run_action, fixture_text):
    # /proc/drbd shows WFConnection: not a sync the controller judges; the module is called and fails
    failed = {"failed": True, "msg": "hosta: DRBD sl-web01-0 lost its peer during the sync (WFConnection)"}
    raw_calls = []
    res, calls, _lines = run_action(dict(BASE, step="promote", sync_timeout=600),
                                    [promote_result(WATCHED, True), failed],
                                    raw=[proc(fixture_text, "proc-drbd-wfconnection.txt")], raw_calls=raw_calls)
    assert len(calls) == 2 and len(raw_calls) == 1
    assert res["failed"] and "lost its peer" in res["msg"]


def test_a_failed_read_or_a_minor_gone_goes_back_to_the_module(run_action, fixture_text):
    for raw in ([{"rc": 1, "stdout": "", "stderr": "cat: /proc/drbd: No such file or directory"}],
                [proc(fixture_text, "proc-drbd-standalone.txt")]):   # minors 110, 200, 456: ours is gone
        raw_calls = []
        res, calls, _lines = run_action(dict(BASE, step="promote", sync_timeout=600),
                                        [promote_result(WATCHED, True), promote_result(WATCHED_DONE, False)],
                                        raw=raw, raw_calls=raw_calls)
        assert len(calls) == 2 and len(raw_calls) == 1 and not res.get("failed")


def test_a_long_watched_sync_still_calls_the_module_every_recall_period(run_action, fixture_text):
    res, calls, _lines = run_action(dict(BASE, step="promote", sync_timeout=7200), [promote_result(WATCHED, True)],
                                    raw=[proc(fixture_text, "proc-drbd-syncsource.txt")])
    # never done: a module call every MODULE_RECALL_S (300 s) until the 2 h timeout
    assert res["failed"] and res["msg"] == "DRBD sync of web01 not done after 7200 s"
    assert 7200 / 310 <= len(calls) <= 7200 / 300 + 1


def test_a_target_watches_its_synctarget_too(run_action, fixture_text):
    target = dict(BASE, role="target", host_name="hostb", step="promote", progress_interval=5)
    item = dict(WATCHED, cstate="SyncTarget", disk="Inconsistent", peer_disk="UpToDate", percent=75.6)
    res, calls, lines = run_action(target, [dict(promote_result(item, True), synced=False),
                                            promote_result(WATCHED_DONE, False)],
                                   raw=[proc(fixture_text, "proc-drbd-synctarget.txt")] * 12
                                   + [proc(fixture_text, "proc-drbd-uptodate.txt")])
    assert len(calls) == 2 and not res.get("failed")
    assert any(line.endswith("(read from /proc/drbd)") and "SyncTarget" in line for line in lines)
