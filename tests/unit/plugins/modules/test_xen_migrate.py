# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.xen_migrate, run whole with xl output replayed from lab recordings (xl/4.17.5, hosta).

Where the target answers (``ssh hostb xl list``/``xl info``), hosta's recordings are replayed as
its answer: real xl output, from the other dom0. That is right for ``xl list`` (which domains run
where) and makes ``xl info`` say ``host: hosta``, which is what the same-host check must catch. The
actual migration (xl migrate's output, the lists after it, hostb's own xl info) is replayed in
test_xen_migrate_recorded.py.
"""

from __future__ import annotations

import socket

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import xen
from ansible_collections.sanless.xen.plugins.module_utils.xen import ssh_argv
from ansible_collections.sanless.xen.plugins.modules import xen_migrate

XL = ("xl", "4.17.5")
XM = ("xm", "3.x")
NAME = "fxrec"  # the domain of the recorded lists (PV, 96 MiB)


@pytest.fixture
def run_module(module_main, monkeypatch):
    def run(args, outputs, check_mode=False):
        monkeypatch.setattr(xen.socket, "gethostname", lambda: "hosta")
        monkeypatch.setattr(xen.socket, "getfqdn", lambda *a: "hosta.lab")

        def getaddrinfo(host, *args):
            if host in ("hostb", "hostb.lab"):
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.12", 0))]
            if host[0].isdigit():
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, 0))]
            raise socket.gaierror(-2, "Name or service not known")
        monkeypatch.setattr(xen.socket, "getaddrinfo", getaddrinfo)
        return module_main(xen_migrate.main, args, outputs, check_mode)
    return run


@pytest.fixture
def xl(fixture_text):
    def out(name):
        return (0, fixture_text(*XL + (name,)), "")
    return out


def remote(target, *argv):
    return tuple(ssh_argv(target, list(argv)))


def local_outputs(xl, listing="xl-list-domu.txt"):
    return {("xl", "list"): xl(listing), ("xl", "info"): xl("xl-info.txt"),
            ("xl", "list", "-l", NAME): xl("xl-list-l-fxrec.json")}


def test_check_mode_with_target_facts(run_module, xl):
    args = {"name": NAME, "target": "hostb", "target_free_memory_mib": 626, "target_virt_caps": ["pv", "shadow"]}
    result, failed, calls = run_module(args, local_outputs(xl), check_mode=True)
    assert not failed and result["changed"], result
    assert result["would_run"] == [["xl", "migrate", NAME, "hostb"]] and result["argv"] == ["xl", "migrate", NAME, "hostb"]
    assert calls == [["xl", "list"], ["xl", "info"], ["xl", "list", "-l", NAME]]
    assert result["domain_type"] == "pv" and result["memory_mib"] == 96 and result["seconds"] is None
    assert result["msg"] == "fxrec would be migrated to hostb"


def test_check_mode_with_timeout(run_module, xl):
    args = {"name": NAME, "target": "root@hostb", "target_free_memory_mib": 626, "target_virt_caps": ["shadow"],
            "timeout": 600}
    result, failed, calls = run_module(args, local_outputs(xl), check_mode=True)
    assert not failed and result["would_run"] == [["timeout", "--kill-after=30", "600", "xl", "migrate", NAME,
                                                   "root@hostb"]]


def test_target_memory_too_small(run_module, xl):
    args = {"name": NAME, "target": "hostb", "target_free_memory_mib": 95, "target_virt_caps": ["pv", "shadow"]}
    result, failed, calls = run_module(args, local_outputs(xl))
    assert failed and result["msg"] == "hostb: needs 96 MiB of free memory for fxrec, has 95 MiB"
    assert not any(call[1] == "migrate" for call in calls)


def test_target_without_shadow_refuses_pv(run_module, xl):
    args = {"name": NAME, "target": "hostb", "target_free_memory_mib": 626, "target_virt_caps": ["pv", "hvm", "hap"]}
    result, failed, calls = run_module(args, local_outputs(xl))
    assert failed and result["msg"] == ("hostb: Xen without shadow paging cannot receive the PV guest fxrec "
                                        "(virt_caps: pv hvm hap)")


def test_target_facts_asked_over_ssh_from_the_same_host_are_refused(run_module, xl):
    # hostb answering with hosta's own xl info: the target is this host under another name.
    outputs = local_outputs(xl)
    outputs[remote("hostb", "xl", "info")] = xl("xl-info.txt")
    result, failed, calls = run_module({"name": NAME, "target": "hostb"}, outputs, check_mode=True)
    assert failed and result["msg"] == "target hostb is this host: it answers xl info with host hosta, as this host does"
    assert calls[-1] == list(remote("hostb", "xl", "info"))


def test_paused_domain_is_refused(run_module, xl):
    result, failed, calls = run_module({"name": NAME, "target": "hostb", "target_free_memory_mib": 626},
                                       local_outputs(xl, "xl-list-paused.txt"))
    assert failed and "domain fxrec is paused" in result["msg"] and "unpause it first" in result["msg"]
    assert calls == [["xl", "list"]]


def test_already_on_target_is_a_no_op(run_module, xl):
    outputs = {("xl", "list"): xl("xl-list.txt"), remote("hostb", "xl", "list"): xl("xl-list-domu.txt")}
    result, failed, calls = run_module({"name": NAME, "target": "hostb"}, outputs)
    assert not failed and not result["changed"]
    assert result["msg"] == "fxrec already on target hostb (running there)" and result["target_state"] == "running"
    assert result["would_run"] == [] and result["argv"] is None


def test_unknown_domain(run_module, xl):
    outputs = {("xl", "list"): xl("xl-list.txt"), remote("hostb", "xl", "list"): xl("xl-list.txt")}
    result, failed, calls = run_module({"name": NAME, "target": "hostb"}, outputs)
    assert failed and result["msg"] == "unknown domain fxrec: it runs neither on this host nor on hostb"


def test_ssh_failure_is_reported_with_the_command(run_module, xl):
    # rc only: ssh's own message is not looked at.
    outputs = {("xl", "list"): xl("xl-list.txt"), remote("hostb", "xl", "list"): (255, "", "")}
    result, failed, calls = run_module({"name": NAME, "target": "hostb"}, outputs)
    assert failed and result["rc"] == 255 and result["cmd"] == list(remote("hostb", "xl", "list"))


def test_xm_check_mode(run_module, fixture_text):
    outputs = {("xm", "list"): (0, fixture_text(*XM + ("xm-list.txt",)), "")}
    result, failed, calls = run_module({"name": "test2", "target": "hostb", "toolstack": "xm",
                                        "target_free_memory_mib": 1024}, outputs, check_mode=True)
    assert not failed and result["would_run"] == [["xm", "migrate", "--live", "test2", "hostb"]]
    assert result["memory_mib"] == 768 and result["domain_type"] is None
    result, failed, calls = run_module({"name": "test2", "target": "hostb", "toolstack": "xm",
                                        "target_free_memory_mib": 512}, outputs, check_mode=True)
    assert failed and "needs 768 MiB" in result["msg"]


@pytest.mark.parametrize("target", ["hosta", "hosta.lab", "localhost", "127.0.0.1", "root@localhost", "HOSTA"])
def test_target_this_host_refused_before_any_command(run_module, target):
    result, failed, calls = run_module({"name": NAME, "target": target}, {})
    assert failed and "is this host" in result["msg"] and calls == []


@pytest.mark.parametrize("args, text", [
    ({"name": "fx rec", "target": "hostb"}, "invalid VM name"),
    ({"name": "fx;id", "target": "hostb"}, "invalid VM name"),
    ({"name": NAME, "target": "hostb;reboot"}, "invalid target"),
    ({"name": NAME, "target": "$(id)"}, "invalid target"),
    ({"name": NAME, "target": "-oProxyCommand=id"}, "invalid target"),
    ({"name": NAME, "target": "hostb", "timeout": -1}, "timeout"),
    ({"name": NAME, "target": "hostb", "target_free_memory_mib": -5}, "target_free_memory_mib"),
    ({"name": NAME, "target": "hostb", "target_virt_caps": ["shadow;id"]}, "target_virt_caps"),
])
def test_bad_input_refused_before_any_command(run_module, args, text):
    result, failed, calls = run_module(args, {})
    assert failed and text in result["msg"] and calls == []
