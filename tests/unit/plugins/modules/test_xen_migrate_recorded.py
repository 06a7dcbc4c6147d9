# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.xen_migrate on the recordings of record.py phase "migrate" (xl/4.17.5, see its
SOURCE). Every test fails, naming the file, if a recording is missing.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import xen
from ansible_collections.sanless.xen.plugins.module_utils.xen import parse_xl_info, ssh_argv
from ansible_collections.sanless.xen.plugins.modules import xen_migrate

HERE = os.path.dirname(os.path.abspath(__file__))
XL_DIR = os.path.join(HERE, "..", "..", "fixtures", "xl", "4.17.5")
NAME = "fxm"


def recorded(name):
    path = os.path.join(XL_DIR, name)
    if not os.path.exists(path):
        pytest.fail("fixture xl/4.17.5/%s is not recorded yet: run tests/unit/fixtures/record.py --phases migrate"
                    % name)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def text(name):
    return (0, recorded(name), "")


def migration():
    return json.loads(recorded("xl-migrate.json"))


@pytest.fixture
def run_module(module_main, monkeypatch):
    def run(args, outputs, check_mode=False):
        monkeypatch.setattr(xen.socket, "gethostname", lambda: "hosta")
        monkeypatch.setattr(xen.socket, "getfqdn", lambda *a: "hosta")
        monkeypatch.setattr(xen.socket, "getaddrinfo",
                            lambda host, *a: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.12", 0))])
        return module_main(xen_migrate.main, args, outputs, check_mode)
    return run


def outputs_for(target, migrate_result):
    return {("xl", "list"): [text("xl-list-migrate-source-before.txt"), text("xl-list-migrate-source-after.txt")],
            ("xl", "info"): text("xl-info.txt"),
            ("xl", "list", "-l", NAME): text("xl-list-l-fxm.json"),
            tuple(ssh_argv(target, ["xl", "info"])): text("xl-info-peer.txt"),
            tuple(ssh_argv(target, ["xl", "list"])): text("xl-list-migrate-target-after.txt"),
            ("xl", "migrate", NAME, target): migrate_result}


def test_peer_info_is_another_host_with_shadow():
    info = parse_xl_info(recorded("xl-info-peer.txt"))
    assert info["host"] != parse_xl_info(recorded("xl-info.txt"))["host"]
    assert "shadow" in info["virt_caps"]


def test_migration_with_recorded_output(run_module):
    data = migration()
    assert data["rc"] == 0, data
    target = data["argv"][-1]
    result, failed, calls = run_module({"name": NAME, "target": target},
                                       outputs_for(target, (data["rc"], data["stdout"], data["stderr"])))
    assert not failed and result["changed"], result
    assert result["argv"] == ["xl", "migrate", NAME, target]
    assert result["stdout"] == data["stdout"] and result["stderr"] == data["stderr"]
    assert result["target_state"] == "running" and result["seconds"] is not None


def test_rerun_after_the_migration_is_a_no_op(run_module):
    target = migration()["argv"][-1]
    outputs = {("xl", "list"): text("xl-list-migrate-source-after.txt"),
               tuple(ssh_argv(target, ["xl", "list"])): text("xl-list-migrate-target-after.txt")}
    result, failed, calls = run_module({"name": NAME, "target": target}, outputs)
    assert not failed and not result["changed"] and "already on target" in result["msg"]


def test_failed_migration_reports_rc_and_stderr(run_module):
    # a real xl migrate failure (of an unknown domain), replayed for fxm
    bad = json.loads(recorded("xl-migrate-nodomain.json"))
    assert bad["rc"] != 0
    target = bad["argv"][-1]
    outputs = outputs_for(target, (bad["rc"], bad["stdout"], bad["stderr"]))
    outputs[("xl", "list")] = text("xl-list-migrate-source-before.txt")
    result, failed, calls = run_module({"name": NAME, "target": target}, outputs)
    assert failed and result["rc"] == bad["rc"] and result["stderr"] == bad["stderr"]
    assert "is now running on this host" in result["msg"]
