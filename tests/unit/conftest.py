# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared test helpers: recorded fixtures and a fake AnsibleModule that replays them."""

from __future__ import annotations

import json
import os
import time

import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def read_fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), encoding="utf-8") as handle:
        return handle.read()


def recorded_run(fixture_text, where, name):
    """(rc, stdout, stderr) of the recording <where>/<name>.rc/.out/.err, as a Replay output."""
    return (int(fixture_text(*where + (name + ".rc",)).strip()), fixture_text(*where + (name + ".out",)),
            fixture_text(*where + (name + ".err",)))


def lvs_report_with(fixture_text, *names):
    """The recorded lvs report of xenvg (lvm 2.03.16), its first LVs renamed to names, as a Replay output."""
    data = json.loads(fixture_text("lvm", "2.03.16", "lvs-domu.json"))
    rows = data["report"][0]["lv"][:len(names)]
    for row, name in zip(rows, names):
        row.update(lv_name=name, lv_path="/dev/xenvg/%s" % name, lv_dm_path="/dev/mapper/xenvg-%s" % name)
    data["report"][0]["lv"] = rows
    return (0, json.dumps(data), "")


@pytest.fixture
def fixture_text():
    """fixture_text("xl", "4.17.5", "xl-list.txt") -> the recorded text."""
    return read_fixture


class FakeModule(object):
    """Stands in for AnsibleModule: run_command replays outputs by argv and records calls.

    ``outputs`` maps tuple(argv) to (rc, stdout, stderr); unknown argv fail the test.
    ``tools`` is the set of program names get_bin_path finds.
    """

    def __init__(self, outputs=None, check_mode=False, tools=None):
        self.outputs = dict(outputs or {})
        self.check_mode = check_mode
        self.tools = set(tools or [])
        self.calls = []
        self.warnings = []

    def run_command(self, args, **kwargs):
        self.calls.append((list(args), kwargs))
        key = tuple(args)
        if key not in self.outputs:
            raise AssertionError("unexpected command %r" % (args,))
        result = self.outputs[key]
        if isinstance(result, BaseException):
            raise result
        return result

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/sbin/%s" % name if name in self.tools else None

    def warn(self, msg):
        self.warnings.append(msg)


@pytest.fixture
def fake_module():
    return FakeModule


class ModuleExit(Exception):
    """exit_json/fail_json of a module run whole in a test: carries the result."""

    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(result)
        self.result = result
        self.failed = failed


class Replay(object):
    """run_command replaying recorded (rc, out, err) per argv; a list is consumed in order,
    its last item repeating. Any other command fails the test."""

    def __init__(self, outputs):
        self.outputs = dict((tuple(k), v) for k, v in outputs.items())
        self.calls = []

    def __call__(self, args, **kwargs):
        self.calls.append(list(args))
        key = tuple(args)
        if key not in self.outputs:
            raise AssertionError("unexpected command %r" % (args,))
        out = self.outputs[key]
        if isinstance(out, list):
            return out.pop(0) if len(out) > 1 else out[0]
        return out


@pytest.fixture
def module_main(monkeypatch):
    """run(main, args, outputs, check_mode, diff) -> (result, failed, commands run): a module's
    main() with its commands replayed and exit_json/fail_json caught."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def run(main, args, outputs, check_mode=False, diff=False):
        replay = Replay(outputs)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kwargs: replay(argv, **kwargs))

        def exit_json(self, **kwargs):
            raise ModuleExit(kwargs, False)

        def fail_json(self, **kwargs):
            raise ModuleExit(kwargs, True)

        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
        with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
            with pytest.raises(ModuleExit) as info:
                main()
        return info.value.result, info.value.failed, replay.calls
    return run


@pytest.fixture
def imported_devices(monkeypatch, tmp_path):
    """For the importing modules: the set of device paths that exist (diskexport.device_exists), no
    sleeping while they wait, and the shared path under tmp_path."""
    from ansible_collections.sanless.xen.plugins.module_utils import diskexport, iscsi

    devices = set()
    monkeypatch.setattr(diskexport, "device_exists", lambda path: path in devices)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(iscsi, "ROOT", str(tmp_path))
    return devices
