# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running an action plugin on scripted module results, with a fake clock and captured display lines."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest


@pytest.fixture
def action_runner(monkeypatch):
    """``action_runner(action_mod)`` gives ``run(args, results, check_mode=False, step=10.0)``, which
    runs action_mod.ActionModule with ``args``; each module call returns the next of ``results``
    (the last repeating) and moves the clock ``step`` seconds; ``raw`` scripts the plain commands the
    same way (recorded in ``raw_calls`` when a list is given); sleeps move the clock. ``run`` returns
    (result, calls, lines)."""
    def make(action_mod):
        lines = []
        clock = {"now": 0.0}
        monkeypatch.setattr(action_mod.display, "display", lambda msg, *a, **k: lines.append(msg))
        monkeypatch.setattr(action_mod.time, "time", lambda: clock["now"])
        monkeypatch.setattr(action_mod.time, "sleep", lambda seconds: clock.__setitem__("now", clock["now"] + seconds))

        def run(args, results, check_mode=False, step=10.0, raw=None, raw_calls=None):
            task = MagicMock()
            task.args = args
            task.async_val = 0
            task.check_mode = check_mode
            task.diff = False
            play_context = MagicMock()
            play_context.check_mode = check_mode
            action = action_mod.ActionModule(task, MagicMock(), play_context, loader=MagicMock(), templar=MagicMock(),
                                             shared_loader_obj=None)
            calls = []

            def execute(module_name, module_args, task_vars):
                calls.append((module_name, dict(module_args)))
                clock["now"] += step
                return dict(results.pop(0) if len(results) > 1 else results[0])
            action._execute_module = execute

            def low_level(cmd, sudoable=True):
                # raw: the outputs ({"rc", "stdout", "stderr"}) of plain commands, in order, the last repeating
                if raw_calls is not None:
                    raw_calls.append(cmd)
                assert raw, "no raw command expected, got %r" % (cmd,)
                return dict(raw.pop(0) if len(raw) > 1 else raw[0])
            action._low_level_execute_command = low_level
            return action.run(task_vars={"inventory_hostname": "hosta"}), calls, lines
        return run
    return make
