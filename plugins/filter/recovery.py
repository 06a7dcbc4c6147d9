# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Surviving host loss for roles: the runs-once guard (xen.runs_once_check) and the failover and watcher plans
(module_utils/recovery.py) from the registered xen_info results and the VMs' inventory variables.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.placement import vm_plan_vars
from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError
from ansible_collections.sanless.xen.plugins.module_utils.recovery import failover_actions, still_linked, watcher_actions
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


def failover(hostvars, hosts, dead_host, vms=None, parallel=2, confirmed_by="confirm_dead", register="failover_info"):
    """Filter: recovery.failover_actions of ``dead_host``."""
    try:
        return failover_actions(_infos(hostvars, hosts, register), _vm_meta(hostvars, vms), dead_host, parallel,
                                confirmed_by)
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
                "watcher_actions": watcher}
