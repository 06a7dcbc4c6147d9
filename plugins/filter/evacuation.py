# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Evacuation (module_utils/plan.evacuation_plan) for the evacuate role: which dom0s, the plan, the report.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

import fnmatch
import json

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.placement import vm_plan_vars
from ansible_collections.sanless.xen.plugins.filter.report import is_glob
from ansible_collections.sanless.xen.plugins.module_utils.conventions import drained_mark_path, seconds_to_window_end
from ansible_collections.sanless.xen.plugins.module_utils.plan import (
    PlanError,
    evacuation_lines,
    evacuation_plan as plan_evacuation,
    inputs_from_xen_info,
)


def evacuation_hosts(dom0s, pattern):
    """The dom0s a ``hosta,host[bc]`` pattern (or a list of them) names, in inventory order."""
    parts = pattern if isinstance(pattern, (list, tuple)) else str(pattern or "").split(",")
    parts = [str(p).strip() for p in parts if str(p).strip()]
    if not parts:
        raise AnsibleFilterError("no dom0 to evacuate: give host=NAME (several separated by commas, wildcards allowed)")
    chosen = []
    for part in parts:
        if not is_glob(part):   # the reports' wildcards: nothing a shell or a path could read as more
            raise AnsibleFilterError("dom0 pattern %r refused: letters, digits, _ . - and the wildcards * ? [...] only"
                                     % (part,))
        found = [h for h in dom0s if fnmatch.fnmatchcase(h, part)]
        if not found:
            raise AnsibleFilterError("%r matches no dom0 of the inventory (%s)" % (part, ", ".join(dom0s)))
        chosen.extend(h for h in found if h not in chosen)
    return chosen


def evacuation_plan(hostvars, hosts, drain, vms=None, register="evacuate_info", vg=None, **options):
    """plan.evacuation_plan of the dom0s' registered xen_info results and the VMs' inventory variables, with
    the plan's lines to print (``lines``) and the notes of reading the inputs (``notes``)."""
    info = dict((host, hostvars[host].get(register)) for host in hosts)
    silent = [host for host in drain if not isinstance(info.get(host), dict) or not isinstance(info[host].get("host"), dict)
              or info[host].get("failed") or info[host].get("unreachable")]
    if silent:
        raise AnsibleFilterError("cannot evacuate %s: did not answer xen_info, so what runs there is unknown"
                                 % ", ".join(silent))
    # the planner's variables of each VM, read as provision and failover read them (a drbd VM's pair)
    vm_meta = vm_plan_vars(hostvars, [name for name in vms or [] if name in hostvars])
    options = dict((key, value) for key, value in options.items() if value is not None)
    try:
        planner_hosts, planner_vms, notes = inputs_from_xen_info(info, vm_meta, vg=vg)
        result = plan_evacuation(planner_hosts, planner_vms, drain, **options)
    except (PlanError, TypeError) as exc:
        names = ", ".join(drain) if isinstance(drain, list) else drain
        raise AnsibleFilterError("cannot plan the evacuation of %s: %s" % (names, exc))
    result["lines"] = evacuation_lines(result)
    result["notes"] = notes
    return result


def drained_mark(reason, since, by="evacuate"):
    """The drained mark the evacuate role writes on a dom0: path (conventions.drained_mark_path) and content
    (JSON: by, since, reason), as xen_info reads it back."""
    return {"path": drained_mark_path(),
            "content": json.dumps({"by": str(by), "since": int(since), "reason": str(reason)}, sort_keys=True) + "\n"}


def evacuation_homecoming(hostvars, hosts, returned, vms=None, register="evacuate_info"):
    """The VMs to move back home after an undrain: each VM of ``vms`` whose ``xen_home`` is one of the ``returned``
    dom0s and that runs on another dom0 (as the registered xen_info results show, read as the planner reads
    them), as ``[{"vm", "source", "target"}]`` sorted by VM."""
    info = dict((host, hostvars[host].get(register)) for host in hosts)
    vm_meta = dict((name, hostvars[name]) for name in vms or [] if name in hostvars)
    try:
        running = inputs_from_xen_info(info, {})[1]
    except PlanError as exc:
        raise AnsibleFilterError("cannot read where the VMs run: %s" % (exc,))
    moves = []
    for vm in running:
        home = (vm_meta.get(vm["name"]) or {}).get("xen_home")
        if home in returned and home != vm["host"]:
            moves.append({"vm": vm["name"], "source": vm["host"], "target": home})
    return sorted(moves, key=lambda move: move["vm"])


# How each kind of outcome reads in the report.
_RESULTS = {"migrated": "moved", "refused": "refused", "failed": "failed", "incomplete": "failed", "checked": "checked",
            "skipped": "skipped"}

HOOK_PHASES = ("pre", "post")


def _vm_hooks(hostvars, vm):
    """A VM's xen_migrate_hooks as the inventory gives it (None when the VM or the variable is not there)."""
    return (hostvars[vm] or {}).get("xen_migrate_hooks") if vm in hostvars else None


def evacuation_window_left(window_end, now):
    """Seconds from now (a UTC datetime, ``now(utc=true)``) to the next window end HH:MM (conventions' one rule)."""
    try:
        return seconds_to_window_end(window_end, now)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def evacuation_hook_problems(hostvars, vms):
    """What is wrong with the VMs' ``xen_migrate_hooks`` (an empty list when nothing), read before any change.

    ``xen_migrate_hooks``: ``{"pre": [HOOK, ...], "post": [HOOK, ...]}``; a HOOK is ``{"command": [argv, ...]}``
    (run without a shell, on ``delegate_to``, the controller by default) or ``{"tasks": "path/to/tasks.yml"}``
    (included in the evacuation's play), with an optional ``name``."""
    problems = []
    for vm in vms or []:
        hooks = _vm_hooks(hostvars, vm)
        if hooks in (None, "", {}):
            continue
        if not isinstance(hooks, dict):
            problems.append("%s: xen_migrate_hooks must be a dict with pre and/or post, not %s" % (vm, type(hooks).__name__))
            continue
        unknown = sorted(str(key) for key in hooks if key not in HOOK_PHASES)
        if unknown:
            problems.append("%s: xen_migrate_hooks has %s; only pre and post" % (vm, ", ".join(unknown)))
        for phase in HOOK_PHASES:
            listed = hooks.get(phase) or []
            if not isinstance(listed, list):
                problems.append("%s: xen_migrate_hooks.%s must be a list of hooks" % (vm, phase))
                continue
            for index, hook in enumerate(listed, 1):
                where = "%s: xen_migrate_hooks.%s[%d]" % (vm, phase, index)
                if not isinstance(hook, dict):
                    problems.append("%s must be a dict with command or tasks" % where)
                    continue
                extra = sorted(str(key) for key in hook if key not in ("command", "tasks", "delegate_to", "name"))
                kinds = [key for key in ("command", "tasks") if key in hook]
                if extra:
                    problems.append("%s has %s; only command or tasks, delegate_to and name" % (where, ", ".join(extra)))
                if len(kinds) != 1:
                    problems.append("%s needs exactly one of command (an argv list) or tasks (a tasks file)" % where)
                elif kinds == ["command"] and not (isinstance(hook["command"], list) and hook["command"]
                                                   and all(isinstance(arg, str) for arg in hook["command"])):
                    # a list, never a string: nothing of a VM's variables goes through a shell
                    problems.append("%s: command must be a non-empty list of strings (argv, no shell)" % where)
                elif kinds == ["tasks"] and not (isinstance(hook["tasks"], str) and hook["tasks"].strip()):
                    problems.append("%s: tasks must be the path of a tasks file" % where)
                if "tasks" in hook and "delegate_to" in hook:
                    problems.append("%s: delegate_to is for a command; a tasks file delegates its own tasks" % where)
    return problems


def evacuation_hooks(hostvars, vm, phase):
    """The ``phase`` (pre or post) hooks of a VM, each with a ``name`` to print (``NAME`` or ``hook N``)."""
    hooks = _vm_hooks(hostvars, vm) or {}
    return [dict(hook, name=hook.get("name") or "%s-move hook %d" % (phase, index))
            for index, hook in enumerate(hooks.get(phase) or [], 1)]


def evacuation_hook_failure(failed_result, hook_name):
    """One line saying why a hook failed, from the failed task's result: a command's rc and last stderr line (its
    msg then only says the rc was not 0, in words that change with ansible-core), else the msg's first line."""
    result = failed_result if isinstance(failed_result, dict) else {}
    if result.get("rc") not in (None, 0):
        parts = ["rc %s" % result["rc"]]
    else:
        parts = [(str(result.get("msg") or "").strip().splitlines() or ["failed"])[0][:300]]
    stderr = [line for line in str(result.get("stderr") or "").splitlines() if line.strip()]
    if stderr:
        parts.append(stderr[-1][:300])
    return "%s failed: %s" % (hook_name, ", ".join(parts))


_EMPTY_ROW = {"vm": None, "source": None, "target": None, "result": None, "reason": None, "bytes": None,
              "estimate_s": None, "seconds": None, "xl_migrate_seconds": None, "pause_ms": None, "hook_failed": None}


def evacuation_report(plan, outcomes):
    """One row per VM of the plan: vm, source, target, result (moved, deferred, refused, skipped, failed, checked,
    not run), reason, bytes, estimate_s, seconds, xl_migrate_seconds, pause_ms (the longest pause of the guest
    by the engine's table swaps) and hook_failed (why a post-move hook failed); the totals per result; complete
    (every VM moved and no post-move hook failed).

    ``outcomes``: what the evacuate role recorded per move, each a migration_summary of the migrate role, or
    ``{"vm", "result": "deferred"|"failed"|"skipped", "msg"}`` for a move it did not start (a failed pre-move hook
    skips it) or whose run failed; ``hook_failed`` added when a post-move hook failed."""
    by_vm = {}
    for outcome in outcomes or []:
        if isinstance(outcome, dict) and outcome.get("vm"):
            by_vm[outcome["vm"]] = outcome
    rows = []
    for move in plan.get("moves") or []:
        done = by_vm.get(move["vm"])
        row = dict(_EMPTY_ROW, vm=move["vm"], source=move["source"], target=move["target"], result="not run",
                   bytes=move.get("bytes"), estimate_s=move.get("duration_s"))
        if done:
            row["result"] = _RESULTS.get(done.get("result"), done.get("result") or "failed")
            row["reason"] = done.get("msg") or "; ".join(done.get("problems") or []) or None
            row["seconds"] = done.get("seconds")
            row["xl_migrate_seconds"] = done.get("xl_migrate_seconds")
            row["pause_ms"] = done.get("pause_ms")
            row["hook_failed"] = done.get("hook_failed")
            row["target"] = done.get("target") or move["target"]
        rows.append(row)
    for move in plan.get("deferred") or []:
        rows.append(dict(_EMPTY_ROW, vm=move["vm"], source=move["source"], target=move["target"], result="deferred",
                         reason=move["reason"], bytes=move["bytes"], estimate_s=move["duration_s"]))
    for stuck in plan.get("not_movable") or []:
        rows.append(dict(_EMPTY_ROW, vm=stuck["vm"], source=stuck["host"], result="refused", reason=stuck["reason"]))
    totals = {}
    for row in rows:
        totals[row["result"]] = totals.get(row["result"], 0) + 1
    hook_failures = [row["vm"] for row in rows if row["hook_failed"]]
    if hook_failures:
        totals["post-hook failed"] = len(hook_failures)
    # a post-move hook that failed (a load balancer not told the VM is back) leaves work for the operator
    return {"hosts": list(plan.get("hosts") or []), "rows": rows, "totals": totals,
            "complete": all(row["result"] == "moved" for row in rows) and not hook_failures}


class FilterModule(object):
    """sanless.xen evacuation filters."""

    def filters(self):
        return {"evacuation_hosts": evacuation_hosts, "evacuation_plan": evacuation_plan,
                "evacuation_report": evacuation_report, "drained_mark": drained_mark,
                "evacuation_hook_problems": evacuation_hook_problems, "evacuation_hooks": evacuation_hooks,
                "evacuation_hook_failure": evacuation_hook_failure,
                "evacuation_homecoming": evacuation_homecoming, "evacuation_window_left": evacuation_window_left}
