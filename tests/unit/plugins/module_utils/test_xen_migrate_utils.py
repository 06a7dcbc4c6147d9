# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xen.py migration helpers: target checks, ssh argv, prechecks on recorded xl output (xl/4.17.5)."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import xen
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    Toolstack,
    check_migrate_target,
    find_domain,
    migrate_argv,
    migrate_problems,
    migrate_state_problem,
    parse_xl_info,
    parse_xl_list,
    ssh_argv,
    target_host,
    target_is_this_host,
)

XL = ("xl", "4.17.5")


@pytest.mark.parametrize("target", ["hostb", "hostb.example.org", "hostb.", "10.77.0.12", "root@hostb",
                                    "fe80::1", "root@2001:db8::2", "h-1", "fe80::1%eth0"])
def test_good_targets(target):
    assert check_migrate_target(target) == target


@pytest.mark.parametrize("target", ["", "host b", "hostb;id", "$(id)", "-oProxyCommand=id", "hostb\n", "a@@b",
                                    "root@", "@hostb", "ro ot@hostb", "hostb`id`", "-hostb", "host_b", "a..b",
                                    "root\n@hostb", "x" * 256, "fe80::1%$(id)", "root@fe80::1%a;b"])
def test_bad_targets(target):
    with pytest.raises(ValueError):
        check_migrate_target(target)


def test_target_host():
    assert target_host("root@HostB.") == "hostb"


def test_ssh_argv():
    assert ssh_argv("root@hostb", ["xl", "info"]) == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "--", "root@hostb", "xl", "info"]
    with pytest.raises(ValueError):
        ssh_argv("hostb", ["xl", "list", "a b"])
    with pytest.raises(ValueError):
        ssh_argv("hostb;id", ["xl", "info"])


def test_ssh_argv_user_port_key_and_options():
    assert ssh_argv("10.77.0.12", ["xl", "info"], connect_timeout=3, user="root", port="2222", identity_file="/k/id",
                    options=["-o", "ProxyCommand=nc %h %p"]) == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-l", "root", "-p", "2222", "-i", "/k/id",
        "-o", "ProxyCommand=nc %h %p", "--", "10.77.0.12", "xl", "info"]
    for bad in ({"user": "-oProxyCommand=x"}, {"user": "ro ot"}, {"port": 0}, {"port": "22;id"}, {"port": True}):
        with pytest.raises(ValueError):
            ssh_argv("hostb", ["xl", "info"], **bad)


def test_migrate_argv():
    assert migrate_argv("xl", "fxrec", "hostb") == ["xl", "migrate", "fxrec", "hostb"]
    assert migrate_argv("xm", "fxrec", "hostb") == ["xm", "migrate", "--live", "fxrec", "hostb"]
    assert migrate_argv("xl", "fxrec", "hostb", timeout=600) == [
        "timeout", "--kill-after=30", "600", "xl", "migrate", "fxrec", "hostb"]
    with pytest.raises(ValueError):
        migrate_argv("xl", "fx rec", "hostb")
    # -C: the config xl sends instead of the domain's own (xl migrate [options] <Domain> <host>)
    assert migrate_argv("xl", "fxrec", "hostb", config="/var/lib/sanless-xen/migrations/fxrec.cfg.outgoing") == [
        "xl", "migrate", "-C", "/var/lib/sanless-xen/migrations/fxrec.cfg.outgoing", "fxrec", "hostb"]
    with pytest.raises(ValueError, match="xm migrate cannot send another config"):
        migrate_argv("xm", "fxrec", "hostb", config="/tmp/fxrec.cfg")


def test_toolstack_migrate_keeps_its_argv(fake_module):
    # livemigrate.py calls Toolstack.migrate(vm, address): unchanged argv, check-mode aware.
    module = fake_module(check_mode=True)
    runner = CommandRunner(module)
    Toolstack(runner, "xl").migrate("mig1", "10.77.0.12")
    Toolstack(runner, "xm").migrate("mig1", "10.77.0.12")
    assert runner.would_run == [["xl", "migrate", "mig1", "10.77.0.12"], ["xm", "migrate", "--live", "mig1", "10.77.0.12"]]
    assert module.calls == []


def test_toolstack_with_ssh_prefix_reads_the_target(fake_module, fixture_text):
    prefix = ssh_argv("hostb", [])
    module = fake_module({tuple(prefix + ["xl", "list"]): (0, fixture_text(*XL + ("xl-list-domu.txt",)), "")})
    domains = Toolstack(CommandRunner(module), "xl", prefix=prefix).list()
    assert find_domain(domains, "fxrec")["domid"] == 7


def test_paused_unpauses_after_a_failure(fake_module):
    module = fake_module({("xl", "pause", "fxrec"): (0, "", ""), ("xl", "unpause", "fxrec"): (0, "", "")})
    xl = Toolstack(CommandRunner(module), "xl")
    with pytest.raises(RuntimeError):
        with xl.paused("fxrec"):
            raise RuntimeError("swap failed")
    assert [call[0] for call in module.calls] == [["xl", "pause", "fxrec"], ["xl", "unpause", "fxrec"]]


def test_paused_keeps_the_first_error_when_unpause_fails_too(fake_module):
    # rc only: the text of a failed unpause is not looked at.
    module = fake_module({("xl", "pause", "fxrec"): (0, "", ""), ("xl", "unpause", "fxrec"): (1, "", "")})
    warnings = []
    with pytest.raises(RuntimeError, match="swap failed"):
        with Toolstack(CommandRunner(module), "xl").paused("fxrec", warn=warnings.append):
            raise RuntimeError("swap failed")
    assert len(warnings) == 1 and "may still be paused" in warnings[0]


def test_paused_raises_a_failed_unpause_after_success(fake_module):
    module = fake_module({("xl", "pause", "fxrec"): (0, "", ""), ("xl", "unpause", "fxrec"): (1, "", "")})
    with pytest.raises(CommandError):
        with Toolstack(CommandRunner(module), "xl").paused("fxrec"):
            pass


def test_state_problems_on_recorded_lists(fixture_text):
    running = find_domain(parse_xl_list(fixture_text(*XL + ("xl-list-domu.txt",))), "fxrec")
    paused = find_domain(parse_xl_list(fixture_text(*XL + ("xl-list-paused.txt",))), "fxrec")
    assert migrate_state_problem("fxrec", running) is None
    assert "is paused" in migrate_state_problem("fxrec", paused, "hosta")
    dying = dict(running, state="-----d")
    assert "is dying" in migrate_state_problem("fxrec", dying)


def test_migrate_problems_with_recorded_info(fixture_text):
    info = parse_xl_info(fixture_text(*XL + ("xl-info.txt",)))
    caps = info["virt_caps"]
    assert "shadow" in caps
    assert migrate_problems("fxrec", "pv", 96, caps, "hostb", info["free_memory_mib"], caps) == []
    assert migrate_problems("fxrec", "pv", 96, caps, "hostb", 64, caps) == [
        "hostb: needs 96 MiB of free memory for fxrec, has 64 MiB"]
    no_shadow = [cap for cap in caps if cap != "shadow"]
    problems = migrate_problems("fxrec", "pv", 96, no_shadow, "hostb", None, no_shadow, here="hosta")
    assert problems == [
        "hosta: Xen without shadow paging cannot live-migrate PV guests (virt_caps: pv hvm hap gnttab-v1 gnttab-v2)",
        "hostb: Xen without shadow paging cannot receive the PV guest fxrec (virt_caps: pv hvm hap gnttab-v1 gnttab-v2)"]
    assert migrate_problems("fxrec", "hvm", 96, no_shadow, "hostb", None, no_shadow) == []
    assert migrate_problems("fxrec", "pv", 96, None, "hostb", None, None) == []  # unknown facts: no check


def test_target_is_this_host_by_name():
    names = {"hosta", "hosta.lab"}
    assert "own name" in target_is_this_host("hosta", names)
    assert "own name" in target_is_this_host("root@HOSTA.lab.", names)
    assert "own name" in target_is_this_host("localhost", names)


def test_target_is_this_host_by_address(monkeypatch):
    answers = {"hostb": "192.0.2.12", "me": "127.0.1.1", "v6": "::1"}

    def fake_getaddrinfo(host, port, family=0, kind=0, *args):
        if host in answers:
            return [(socket.AF_INET6 if ":" in answers[host] else socket.AF_INET, kind, 6, "", (answers[host], 0))]
        if host[0].isdigit():
            return [(socket.AF_INET, kind, 6, "", (host, 0))]
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(xen.socket, "getaddrinfo", fake_getaddrinfo)
    assert target_is_this_host("hostb", set()) is None  # 192.0.2.12 (TEST-NET-1) cannot be bound here
    assert "127.0.1.1, an address of this host" in target_is_this_host("me", set())
    assert "::1" in target_is_this_host("v6", set())
    assert "127.0.0.1" in target_is_this_host("127.0.0.1", set())
    assert target_is_this_host("unknown", set()) is None
