# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller half of sanless.xen.live_migration.

- Adds the identity of this ansible-playbook run to ``owner`` so a journal records who holds
  the VM's lock. A journal held by a run of this controller whose process is gone (killed) is
  taken over, which is how a rerun resumes; one held by a live run is refused.
- ``step=promote`` is looped here, printing the sync progress (percent, speed, ETA) at least every
  ``progress_interval`` seconds, until the step is done (disks UpToDate on both sides, two primaries
  allowed, the target primary) or ``sync_timeout`` passes. Between module calls a running sync is
  watched by reading /proc/drbd with a plain ``cat`` over the connection (parsed here by the module's
  own parser): a module start costs seconds of a dom0's CPU that the sync needs, so the number of
  module calls does not grow with the disk. The module is called again, and decides, once the
  watch sees every resource synced, a link that is not resyncing, a read that fails, or every
  ``MODULE_RECALL_S`` seconds (its call renews the journal's lease).
- Crash tests: with ``SANLESS_XEN_KILL_AFTER=STEP:ROLE`` in the controller's environment, the run
  SIGKILLs its own process group (as an operator's ``kill -9`` of ansible-playbook would) as soon
  as STEP has returned on the host of that ROLE, a precise point the e2e tests resume or abort from.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    format_progress, is_resyncing, is_synced, minor_state, no_sync_running, parse_proc_drbd, sync_report_item,
)
from ansible_collections.sanless.xen.plugins.module_utils.livemigrate import sync_poll_s

display = Display()

# A journal of another controller is considered abandoned after this long without updates.
FOREIGN_LEASE_S = 900
# a watched sync goes back to the module at least this often (the module renews the journal's lease)
MODULE_RECALL_S = 300
# ends a progress line the controller read from /proc/drbd (the others follow a module call)
WATCHED_NOTE = " (read from /proc/drbd)"
# After the sync, how long the target waits for the source to allow two primaries.
PEER_PROMOTE_TIMEOUT_S = 120
# How long a resource may sit Connected, UpToDate/Inconsistent with no sync running before the
# wait gives up: DRBD does not start such a sync by itself (drbd.initial_sync_stuck).
NO_SYNC_TIMEOUT_S = 60


def _process_start(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def run_pid():
    """The pid of this task's ansible-playbook process. Task workers are forked from it
    (multiprocessing), which keeps that pid even when the worker has been orphaned."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getppid()


def orphaned():
    """True when the ansible-playbook that started this worker is gone (killed): a worker runs
    in a session of its own and outlives it, and must then start nothing more."""
    return os.getppid() != run_pid()


def controller_owner():
    pid = run_pid()
    return {"controller": socket.gethostname(), "pid": pid, "pid_start": _process_start(pid)}


def owner_alive(owner, now=None):
    if owner.get("controller") != socket.gethostname():
        return None
    pid = owner.get("pid")
    return isinstance(pid, int) and _process_start(pid) is not None and _process_start(pid) == owner.get("pid_start")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if orphaned():
            # the run was killed after it started this task: a rerun takes over from the journal
            result.update(failed=True, msg="%s: the ansible-playbook of this task (pid %d) is gone; step %s not started" % (
                args.get("vm"), run_pid(), args.get("step")))
            return result
        sync_timeout = int(args.pop("sync_timeout", 3600))
        interval = int(args.pop("progress_interval", 10))
        args["owner"] = controller_owner()
        if args.get("step") in ("prepare", "promote"):
            # prepare watches the sync it started for as long, then promote waits and reports
            args["sync_window"] = max(1, min(interval, 25))
        module_result = self._call(args, task_vars)
        owner = module_result.get("lock_owner")
        if module_result.get("failed") and owner:
            alive = owner_alive(owner)
            stale = time.time() - float((module_result.get("journal") or {}).get("updated_at") or 0) > FOREIGN_LEASE_S
            if alive is False or (alive is None and stale):
                display.display("sanless.xen: taking over the journal of %s from a run that is gone (%s)" % (
                    args["vm"], owner))
                args["takeover"] = True
                module_result = self._call(args, task_vars)
            elif alive:
                module_result["msg"] = "%s is being migrated by ansible-playbook pid %s on this controller: refused" % (
                    args["vm"], owner.get("pid"))
        if args.get("step") == "promote" and not module_result.get("failed"):
            module_result = self._sync_loop(args, task_vars, module_result, sync_timeout, interval)
        kill_after = os.environ.get("SANLESS_XEN_KILL_AFTER")
        if kill_after and kill_after == "%s:%s" % (args.get("step"), args.get("role")) and not module_result.get("failed"):
            display.display("sanless.xen: SANLESS_XEN_KILL_AFTER=%s: killing this run" % kill_after)
            # the workers run in process groups of their own: kill the run's group, then ours
            os.killpg(os.getpgid(run_pid()), signal.SIGKILL)
            os.killpg(os.getpgrp(), signal.SIGKILL)
        result.update(module_result)
        return result

    def _call(self, args, task_vars):
        return self._execute_module(module_name="sanless.xen.live_migration", module_args=args, task_vars=task_vars)

    def _sync_loop(self, args, task_vars, first, timeout, interval):
        started = time.time()
        synced_at = None
        idle_since = None
        current = first
        host = task_vars.get("inventory_hostname")
        shown = False
        # a host already past the step answers without "waiting": nothing to wait for
        while current.get("waiting") and not current.get("failed") and not self._play_context.check_mode:
            if orphaned():
                current["failed"] = True
                current["msg"] = "%s: the ansible-playbook of this task (pid %d) is gone; stopped waiting for the sync" % (
                    args["vm"], run_pid())
                break
            if args.get("role") == "source" or not current.get("synced"):
                _show_sync(host, args["vm"], current)
                shown = True
            if time.time() - started > timeout:
                current["failed"] = True
                current["msg"] = "DRBD sync of %s not done after %d s" % (args["vm"], timeout)
                break
            idle = [item for item in current.get("sync") or [] if no_sync_running(item)]
            idle_since = (idle_since or time.time()) if idle else None
            if idle_since and time.time() - idle_since > NO_SYNC_TIMEOUT_S:
                current["failed"] = True
                current["msg"] = (
                    "%s: DRBD %s has been Connected with disks %s and no sync running for %d s: DRBD will not start "
                    "it by itself. Start it on the UpToDate side (drbdadm invalidate-remote RESOURCE, or rerun "
                    "provision.yml for %s: drbd_resource force=true does that), then rerun this migration" % (
                        host, ", ".join(item["resource"] for item in idle),
                        ", ".join("%s/%s" % (item.get("disk"), item.get("peer_disk")) for item in idle),
                        NO_SYNC_TIMEOUT_S, args["vm"]))
                break
            synced_at = synced_at or (time.time() if current.get("synced") else None)
            if synced_at and time.time() - synced_at > PEER_PROMOTE_TIMEOUT_S:
                # the source allows two primaries in the same task; it failed or is gone
                current["failed"] = True
                current["msg"] = "%s: the peer did not allow two primaries for %s within %d s after the sync" % (
                    host, args["vm"], PEER_PROMOTE_TIMEOUT_S)
                break
            previous = current
            if _watchable(current.get("sync")):
                report = self._watch_sync(host, args["vm"], current["sync"], started, timeout, interval)
                current = dict(current, sync=report)
                if orphaned() or time.time() - started > timeout:
                    continue  # said at the top of the loop
            current = self._call(args, task_vars)
            # what earlier calls changed stays reported
            current["changed"] = bool(current.get("changed") or previous.get("changed"))
            current["events"] = list(previous.get("events") or []) + list(current.get("events") or [])
        # a sync done within the first look still gets its line (the job's output and AWX's events
        # always show the sync's end state on the source)
        if not shown and args.get("role") == "source" and current.get("sync") and not current.get("failed"):
            _show_sync(host, args["vm"], current, word="synced")
        current["sync_seconds"] = round(time.time() - started, 1)
        return current

    def _read_sync(self, report):
        """The report's resources as /proc/drbd shows them now (a cat over the connection, no module
        start), or None when the read fails or a minor is down."""
        try:
            res = self._low_level_execute_command("cat /proc/drbd", sudoable=True)
            if res.get("rc") != 0:
                return None
            minors = parse_proc_drbd(res.get("stdout") or "")["minors"]
        except Exception:  # the module is called instead: it reads and decides
            return None
        items = []
        for item in report:
            state = minor_state(minors, item["minor"])
            if state is None:
                return None
            items.append(sync_report_item(item["resource"], item["minor"], state))
        return items

    def _watch_sync(self, host, vm, report, started, timeout, interval):
        """Watch a running sync in /proc/drbd, printing its progress every ``interval`` seconds,
        until every resource is synced, one is not resyncing (or cannot be read), MODULE_RECALL_S
        passed, the sync timeout passed or this run is gone. Returns the last report seen."""
        watched_at = shown_at = time.time()
        while not orphaned() and time.time() - started <= timeout and time.time() - watched_at < MODULE_RECALL_S:
            time.sleep(sync_poll_s(report))
            seen = self._read_sync(report)
            if seen is None:
                break
            report = seen
            if all(is_synced(item) for item in report) or not _watchable(report):
                break
            if time.time() - shown_at >= interval:
                _show_sync(host, vm, {"sync": report}, note=WATCHED_NOTE)
                shown_at = time.time()
        return report


def _watchable(report):
    """A sync the controller can watch in /proc/drbd: every resource has its minor and is resyncing
    or synced, and one at least is resyncing (anything else is the module's to judge)."""
    return (bool(report) and all(isinstance(item.get("minor"), int) and (is_resyncing(item) or is_synced(item))
                                 for item in report) and any(is_resyncing(item) for item in report))


def _show_sync(host, vm, result, word="sync", note=""):
    progress = ", ".join(_progress(item) for item in result.get("sync", []))
    display.display("  [%s] %s %s: %s%s" % (host, word, vm, progress, note))


def _progress(item):
    # a promote report item in the words of drbd.format_progress
    return format_progress({"name": item["resource"], "cstate": item.get("cstate"), "sync_percent": item.get("percent"),
                            "disk": item.get("disk"), "peer_disk": item.get("peer_disk"),
                            "speed_kib_s": item.get("speed_kib_s"), "sync_eta_s": item.get("eta_s")})
