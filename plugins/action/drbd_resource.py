# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller half of sanless.xen.drbd_resource: the wait loop.

With ``wait=true`` the module is called again and again, each call waiting at most
``wait_window`` (= ``progress_interval``, at most 25) seconds on the dom0, and one progress
line is printed per call, until the resource is Connected and UpToDate/UpToDate or
``wait_timeout`` passes. The module itself fails as soon as the resource goes StandAlone.
"""

from __future__ import annotations

import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.sanless.xen.plugins.module_utils.drbd import format_progress

display = Display()

MODULE = "sanless.xen.drbd_resource"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        try:
            wait = boolean(args.get("wait", False), strict=True)
            interval = int(args.get("progress_interval", 10))
            timeout = int(args.get("wait_timeout", 3600))
        except (TypeError, ValueError) as exc:
            result.update(failed=True, msg="drbd_resource: %s" % exc)
            return result
        if wait and "wait_window" not in args:
            # the module refuses an interval above 30; keep each call short of it
            args["wait_window"] = max(1, min(interval, 25))
        started = time.time()
        current = self._call(args, task_vars)
        if wait and not self._play_context.check_mode:
            current = self._wait_loop(args, task_vars, current, started, timeout)
        result.update(current)
        return result

    def _call(self, args, task_vars):
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)

    def _wait_loop(self, args, task_vars, first, started, timeout):
        host = (task_vars or {}).get("inventory_hostname")
        current = first
        changed = bool(first.get("changed"))
        cmds = list(first.get("cmds") or [])
        while not current.get("failed") and current.get("synced") is False:
            display.display("  [%s] drbd %s" % (host, format_progress(current.get("resource") or {})))
            if time.time() - started > timeout:
                current["failed"] = True
                current["msg"] = "DRBD resource %s not Connected and UpToDate/UpToDate after %d s: %s" % (
                    args.get("name"), timeout, format_progress(current.get("resource") or {}))
                break
            current = self._call(args, task_vars)
            changed = changed or bool(current.get("changed"))
            cmds += current.get("cmds") or []
        # what the first call changed stays reported (later calls only read)
        current["changed"] = changed
        current["cmds"] = cmds
        for key in ("diff", "warnings"):
            if key in first and key not in current:
                current[key] = first[key]
        current["wait_seconds"] = round(time.time() - started, 1)
        return current
