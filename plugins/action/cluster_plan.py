# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.sanless.xen.plugins.module_utils.plan import (
    PlanError,
    cluster_report,
    inputs_from_xen_info,
)

ARGUMENT_SPEC = {
    "info": {"type": "dict", "required": True},
    "vms": {"type": "dict", "default": {}},
    "default_protected": {"type": "bool", "default": True},
    "vg": {"type": "str"},
    "up_to": {"type": "int", "default": 3},
    "min_failures": {"type": "int"},
    "what_if": {
        "type": "dict",
        "options": {
            "offline": {"type": "list", "elements": "str"},
            "online": {"type": "list", "elements": "str"},
            "remove_vms": {"type": "list", "elements": "str"},
            "add_vms": {"type": "list", "elements": "dict"},
            "memory_mib": {"type": "dict"},
        },
    },
    "evacuate": {"type": "str"},
    "link_mbit_s": {"type": "float", "default": 1000.0},
    "concurrency": {"type": "int", "default": 2},
    "deadline_s": {"type": "float"},
    "per_vm_overhead_s": {"type": "float", "default": 0.0},
    "ha_tolerate": {"type": "int"},
    "place": {"type": "dict"},
}


class ActionModule(ActionBase):
    """Plan failover and capacity of the dom0s from their sanless.xen.xen_info results."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no remote files
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        result["changed"] = False
        what_if = {k: v for k, v in (args["what_if"] or {}).items() if v}
        try:
            hosts, vms, notes = inputs_from_xen_info(args["info"], args["vms"], args["default_protected"], args["vg"])
            report = cluster_report(
                hosts, vms,
                up_to=args["up_to"],
                min_failures=args["min_failures"],
                what_if=what_if or None,
                evacuate=args["evacuate"],
                evacuation={"link_mbit_s": args["link_mbit_s"], "concurrency": args["concurrency"], "deadline_s": args["deadline_s"],
                            "per_vm_overhead_s": args["per_vm_overhead_s"], "ha_tolerate": args["ha_tolerate"]},
                new_vm=args["place"],
                notes=notes,
            )
        except PlanError as exc:
            result["failed"] = True
            result["msg"] = f"cannot plan: {exc}"
            return result
        result.update(report)
        return result
