# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xen.py migration helpers: target checks, ssh argv, prechecks on recorded xl output (xl/4.17.5)."""

from __future__ import annotations

import re
import socket

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import xen
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    Toolstack,
    check_migrate_target,
    find_domain,
    guest_type_migration_problems,
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
    with pytest.raises(ValueError, match="xm migrate can neither send another config"):
        migrate_argv("xm", "fxrec", "hostb", config="/tmp/fxrec.cfg")
    # -s: through the shared connection to the peer; one argument, fixed words, for xl to pass to sh
    argv = migrate_argv("xl", "fxrec", "hostb", shared_ssh=True)
    assert argv[:3] == ["xl", "migrate", "-s"] and argv[4:] == ["fxrec", "hostb"]
    assert argv[3] == ("ssh -o BatchMode=yes -o ControlMaster=auto -o ControlPath=/run/sanless-xen/ssh/%C "
                       "-o ControlPersist=60 -o ServerAliveInterval=5 -o ServerAliveCountMax=3")
    assert re.match(r"^[A-Za-z0-9 =/%.-]+$", argv[3])
    with pytest.raises(ValueError):
        migrate_argv("xm", "fxrec", "hostb", shared_ssh=True)


def test_shared_ssh_argv_makes_its_socket_folder(tmp_path, monkeypatch):
    folder = tmp_path / "ssh"
    monkeypatch.setattr(xen, "SSH_CONTROL_DIR", str(folder))
    argv = xen.shared_ssh_argv("root@10.77.0.12", ["true"], connect_timeout=5)
    assert folder.is_dir() and (folder.stat().st_mode & 0o777) == 0o700
    assert argv[-3:] == ["--", "root@10.77.0.12", "true"] and "ControlMaster=auto" in argv


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


# --------------------------------------------------------------------------- guest type vs Xen (virt_caps)

def recorded_caps(fixture_text):
    """virt_caps of the two recorded dom0s (xl info on hosta and hostb, Xen 4.17.5)."""
    here = parse_xl_info(fixture_text(*XL + ("xl-info.txt",)))
    peer = parse_xl_info(fixture_text(*XL + ("xl-info-peer.txt",)))
    assert (here["host"], peer["host"]) == ("hosta", "hostb")
    return here["virt_caps"], peer["virt_caps"]


def derived(caps, *without):
    """DERIVED, not recorded: recorded virt_caps with some capabilities taken out."""
    return [cap for cap in caps if cap not in without]


def test_recorded_dom0s_live_migrate_every_guest_type(fixture_text):
    here, peer = recorded_caps(fixture_text)
    assert here == peer == ["pv", "hvm", "hap", "shadow", "gnttab-v1", "gnttab-v2"]
    for vm_type in ("pv", "pvh", "hvm"):
        assert guest_type_migration_problems("fxrec", vm_type, "hosta", here, "hostb", peer) == []


def test_xen_without_shadow_refuses_pv_and_takes_pvh_and_hvm(fixture_text):
    here, peer = recorded_caps(fixture_text)
    # DERIVED: shadow removed from the recording, as Debian's Xen 4.17.7 build reports it
    no_shadow = derived(peer, "shadow")
    assert " ".join(no_shadow) == "pv hvm hap gnttab-v1 gnttab-v2"
    assert guest_type_migration_problems("fxrec", "pv", "hosta", here, "hostb", no_shadow) == [
        "hostb: Xen without shadow paging cannot receive the PV guest fxrec (virt_caps: pv hvm hap gnttab-v1 gnttab-v2)"]
    assert guest_type_migration_problems("fxrec", "pv", "hosta", no_shadow, "hostb", peer) == [
        "hosta: Xen without shadow paging cannot live-migrate PV guests (virt_caps: pv hvm hap gnttab-v1 gnttab-v2)"]
    for vm_type in ("pvh", "hvm"):  # hap does their log-dirty paging
        assert guest_type_migration_problems("fxrec", vm_type, "hosta", no_shadow, "hostb", no_shadow) == []


def test_xen_without_hap_still_migrates_every_type_with_shadow(fixture_text):
    here, peer = recorded_caps(fixture_text)
    no_hap = derived(peer, "hap")  # DERIVED: hap removed (a CPU without EPT/NPT)
    for vm_type in ("pv", "pvh", "hvm"):
        assert guest_type_migration_problems("fxrec", vm_type, "hosta", no_hap, "hostb", no_hap) == []


@pytest.mark.parametrize("vm_type,kind", [("pvh", "PVH"), ("hvm", "HVM")])
def test_pvh_and_hvm_need_hap_or_shadow_on_both_sides(fixture_text, vm_type, kind):
    here, peer = recorded_caps(fixture_text)
    no_paging = derived(peer, "hap", "shadow")  # DERIVED: neither hap nor shadow
    assert guest_type_migration_problems("web01", vm_type, "hosta", no_paging, "hostb", no_paging) == [
        "hosta: Xen without hap or shadow paging cannot live-migrate %s guests (virt_caps: pv hvm gnttab-v1 gnttab-v2)"
        % kind,
        "hostb: Xen without hap or shadow paging cannot receive the %s guest web01 (virt_caps: pv hvm gnttab-v1 "
        "gnttab-v2)" % kind]
    assert guest_type_migration_problems("web01", vm_type, "hosta", here, "hostb", no_paging) == [
        "hostb: Xen without hap or shadow paging cannot receive the %s guest web01 (virt_caps: pv hvm gnttab-v1 "
        "gnttab-v2)" % kind]


@pytest.mark.parametrize("vm_type,kind", [("pvh", "PVH"), ("hvm", "HVM")])
def test_pvh_and_hvm_need_hvm_on_the_target(fixture_text, vm_type, kind):
    here, peer = recorded_caps(fixture_text)
    no_hvm = derived(peer, "hvm", "hap")  # DERIVED: a CPU without VT-x/AMD-V: no hvm, no hap
    assert " ".join(no_hvm) == "pv shadow gnttab-v1 gnttab-v2"
    assert guest_type_migration_problems("web01", vm_type, "hosta", here, "hostb", no_hvm) == [
        "hostb: Xen without hvm cannot run the %s guest web01 (virt_caps: pv shadow gnttab-v1 gnttab-v2)" % kind]
    # PV needs neither hvm nor hap
    assert guest_type_migration_problems("web01", "pv", "hosta", no_hvm, "hostb", no_hvm) == []


def test_unknown_caps_or_type_are_not_judged(fixture_text):
    here, peer = recorded_caps(fixture_text)
    nothing = derived(peer, "pv", "hvm", "hap", "shadow")  # DERIVED: only gnttab-v1 gnttab-v2
    for vm_type in ("pv", "pvh", "hvm"):
        assert guest_type_migration_problems("web01", vm_type, "hosta", None, "hostb", None) == []
        # one side unknown: only the other is judged
        assert [p.split(":")[0] for p in guest_type_migration_problems(
            "web01", vm_type, "hosta", None, "hostb", nothing)] == ["hostb"]
        assert [p.split(":")[0] for p in guest_type_migration_problems(
            "web01", vm_type, "hosta", nothing, "hostb", None)] == ["hosta"]
    for vm_type in (None, "", "PV", "pv_shim"):
        assert guest_type_migration_problems("web01", vm_type, "hosta", nothing, "hostb", nothing) == []


def test_migrate_problems_asks_the_guest_type_rule(fixture_text):
    here, peer = recorded_caps(fixture_text)
    no_paging = derived(peer, "hap", "shadow")  # DERIVED
    assert migrate_problems("fxrec", "hvm", 96, here, "hostb", 626, no_paging, here="hosta") == \
        guest_type_migration_problems("fxrec", "hvm", "hosta", here, "hostb", no_paging) != []
