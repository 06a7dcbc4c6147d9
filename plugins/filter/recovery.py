# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Surviving host loss for roles: the runs-once guard (xen.runs_once_check) and the failover and watcher plans
(module_utils/recovery.py) from the registered xen_info results and the VMs' inventory variables; what the failover
and the watcher then did, from the results their roles registered.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

import base64
import binascii

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.placement import vm_plan_vars
from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError
from ansible_collections.sanless.xen.plugins.module_utils.recovery import (
    batch_gate, batch_outcomes, failover_actions, fence_outcome, guest_md_outcome, hosts_to_retry_readd, readd_outcome,
    still_linked, watcher_actions)
from ansible_collections.sanless.xen.plugins.module_utils.xen import runs_once_check

# What the guard and the plans read of a VM beyond the planner's variables.
RECOVERY_VARS = ("xen_desired_state",)


def _infos(hostvars, hosts, register):
    out = {}
    for host in hosts:
        result = hostvars[host].get(register) if host in hostvars else None
        missing = {"unreachable": True, "msg": "no %s result (not in this play?)" % register}
        out[host] = result if isinstance(result, dict) else missing
    return out


def _vm_meta(hostvars, vms):
    meta = vm_plan_vars(hostvars, vms)
    for vm in vms or []:
        for key in RECOVERY_VARS:
            if key in hostvars[vm]:
                meta[vm][key] = hostvars[vm][key]
    return meta


def runs_once(hostvars, hosts, vms=None, dead=None, starting=None, register="runs_once_info"):
    """Filter: xen.runs_once_check on the registered xen_info results of ``hosts``."""
    try:
        return runs_once_check(_infos(hostvars, hosts, register), _vm_meta(hostvars, vms), dead or [], starting or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("runs-once guard: %s" % exc)


def watcher_boot_ids(hostvars, hosts, register="watcher_last_boot"):
    """Filter: {dom0: boot id} the watcher's last pass kept on each of ``hosts`` (its watcher/boot_id file, slurped
    into ``register``); a dom0 without the file (no pass yet) or that did not answer is left out."""
    out = {}
    for host in hosts or []:
        seen = hostvars[host].get(register) if host in hostvars else None
        if isinstance(seen, dict) and seen.get("content"):
            try:
                out[host] = base64.b64decode(seen["content"]).decode("ascii").strip()
            except (binascii.Error, UnicodeDecodeError, TypeError) as exc:
                raise AnsibleFilterError("watcher_boot_ids: %s's %s is not a boot id: %s" % (host, register, exc))
    return out


def failover(hostvars, hosts, dead_host, vms=None, parallel=2, confirmed_by="confirm_dead", register="failover_info",
             unfenced=False, boot_register="failover_watcher_boot", legs_current=False):
    """Filter: recovery.failover_actions of ``dead_host``; the watcher's boot ids are read from ``boot_register``."""
    try:
        return failover_actions(_infos(hostvars, hosts, register), _vm_meta(hostvars, vms), dead_host, parallel,
                                confirmed_by, bool(unfenced), watcher_boot_ids(hostvars, hosts, boot_register),
                                bool(legs_current))
    except (PlanError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("failover of %s: %s" % (dead_host, exc))


def failover_still_linked(result, waiting, host):
    """Filter: the names of the resources of ``waiting`` (a failover plan's) on ``host`` that its xen_info ``result``
    still shows linked to their dead peer (recovery.still_linked)."""
    try:
        mine = [entry for entry in waiting or [] if entry["host"] == host]
        return [res["name"] for res in still_linked(result if isinstance(result, dict) else {}, mine)]
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("failover_still_linked: %s" % exc)


def failover_fence_check(fence, result, error=None):
    """Filter: recovery.fence_outcome (whether a raid1 VM's storage fence held, from its holder's xen_info result read
    after it and the error of the disk_export run, if any)."""
    if not isinstance(fence, dict):
        raise AnsibleFilterError("failover_fence_check: a restart's fence (a dict), got %r" % (fence,))
    return fence_outcome(fence, result, error)


def failover_batch_gate(restarts, host, batch, fences=None, promoted=None):
    """Filter: recovery.batch_gate (which restarts of a batch ``host`` promotes, and which it starts)."""
    try:
        return batch_gate(restarts or [], host, int(batch), fences, promoted)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("failover_batch_gate: %s" % exc)


def failover_batch_outcomes(restarts, host, batch, fences=None, promoted=None, waited=None, md=None):
    """Filter: recovery.batch_outcomes (the outcome of each restart of a batch on ``host``)."""
    try:
        return batch_outcomes(restarts or [], host, int(batch), fences, promoted, waited, md)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("failover_batch_outcomes: %s" % exc)


def failover_md_check(reached, vm, arrays, started=None):
    """Filter: recovery.guest_md_outcome (what md did in a raid1 guest the failover restarted degraded)."""
    if not isinstance(arrays, list):
        raise AnsibleFilterError("failover_md_check: arrays is a list, got %r" % (arrays,))
    return guest_md_outcome(vm, arrays, reached if isinstance(reached, dict) else None,
                            started if isinstance(started, dict) else None)


def watcher_readd_check(health, vm, plan):
    """Filter: recovery.readd_outcome (the watcher's re-add of a raid1 leg, judged by the pair after the repair)."""
    if not isinstance(health, dict) or not isinstance(plan, dict):
        raise AnsibleFilterError("watcher_readd_check: the pair's health and the repair's plan (dicts), got %r, %r"
                                 % (health, plan))
    return readd_outcome(vm, plan, health)


def watcher_readd_retry(readd_plan, outcomes):
    """Filter: recovery.hosts_to_retry_readd (the dom0s whose boot id the pass does not keep: a re-add failed)."""
    try:
        return hosts_to_retry_readd(readd_plan, outcomes)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("watcher_readd_retry: a plan's raid1_readd and the re-adds' outcomes (lists of dicts "
                                 "with vm, host / vm, result): %r" % (exc,))


def watcher(hostvars, hosts, vms=None, last_boot_ids=None, parallel=4, register="watcher_info"):
    """Filter: recovery.watcher_actions."""
    try:
        return watcher_actions(_infos(hostvars, hosts, register), _vm_meta(hostvars, vms), last_boot_ids or {}, parallel)
    except (PlanError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("watcher: %s" % exc)


class FilterModule(object):
    """sanless.xen recovery filters."""

    def filters(self):
        return {"runs_once": runs_once, "failover_actions": failover, "failover_still_linked": failover_still_linked,
                "failover_md_check": failover_md_check, "watcher_readd_check": watcher_readd_check,
                "watcher_actions": watcher, "failover_fence_check": failover_fence_check,
                "watcher_boot_ids": watcher_boot_ids, "failover_batch_gate": failover_batch_gate,
                "failover_batch_outcomes": failover_batch_outcomes, "watcher_readd_retry": watcher_readd_retry}
