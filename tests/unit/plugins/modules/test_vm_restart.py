# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_restart on recorded xl list and /proc/drbd output of the lab (xl 4.17.5, DRBD 8.4.11)."""

from __future__ import annotations

import fcntl
import os
import stat

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
from ansible_collections.sanless.xen.plugins.modules import vm_restart
from ansible_collections.sanless.xen.plugins.modules.vm_restart import RestartError, restart
from ansible_collections.sanless.xen.tests.unit.conftest import FakeModule

XL = ("xl", "4.17.5")
DRBD = ("drbd", "8.4.11")
RES = [{"name": "fxm-disk", "minor": 90}]


class Sequence(FakeModule):
    """FakeModule whose outputs may be lists, consumed in order (the last repeats)."""

    def run_command(self, args, **kwargs):
        self.calls.append((list(args), kwargs))
        out = self.outputs.get(tuple(args))
        if out is None:
            raise AssertionError("unexpected command %r" % (args,))
        return out.pop(0) if isinstance(out, list) and len(out) > 1 else (out[0] if isinstance(out, list) else out)


@pytest.fixture
def dom0(tmp_path, fixture_text, monkeypatch):
    monkeypatch.setattr(conv, "LOCK_DIR", str(tmp_path / "run"))

    def make(xl_list, proc_drbd=None, drbd_text=None, configs=("fxm",), create=(0, "", ""), check_mode=False, **params):
        auto = tmp_path / "auto"
        auto.mkdir(exist_ok=True)
        for vm in configs:
            (auto / ("%s.cfg" % vm)).write_text('name = "%s"\n' % vm)
        proc = tmp_path / "drbd"
        if proc_drbd or drbd_text:
            proc.write_text(drbd_text or fixture_text(*DRBD + (proc_drbd,)))
        outputs = {("xl", "list"): (0, fixture_text(*XL + (xl_list,)), ""),
                   ("xl", "create", str(auto / "fxm.cfg")): create,
                   ("drbdadm", "primary", "fxm-disk"): (0, "", "")}
        module = Sequence(outputs, check_mode=check_mode)
        args = dict(name="fxm", drbd_resources=[], start=True, config_dir=str(auto), toolstack="xl", tries=1,
                    retry_delay=0, give_up_after=0, state_dir=str(tmp_path / "state"))
        args.update(params)
        runner = CommandRunner(module)
        return module, runner, args, str(proc)
    return make


def commands(module):
    return [call[0] for call in module.calls]


def test_a_running_domain_is_left_alone(dom0):
    module, runner, args, proc = dom0("xl-list-migrate-source-before.txt", "proc-drbd-wfconnection.txt", drbd_resources=RES)
    result = restart(runner, args, proc_drbd=proc)
    assert (result["changed"], result["state_before"], result["msg"]) == (False, "running", "fxm is running here already")
    assert commands(module) == [["xl", "list"]]


def test_no_promotion_of_a_disk_that_is_not_uptodate(dom0):
    # minor 90 Secondary, Inconsistent, waiting for its peer (recorded during a resync's start)
    module, runner, args, proc = dom0("xl-list-migrate-target-before.txt", "proc-drbd-wfconnection.txt", drbd_resources=RES)
    with pytest.raises(RestartError, match="no DRBD resource promoted: fxm-disk: local disk Inconsistent, not UpToDate"):
        restart(runner, args, proc_drbd=proc)
    assert commands(module) == [["xl", "list"]]


def test_no_promotion_while_the_peer_is_primary(dom0):
    module, runner, args, proc = dom0("xl-list-migrate-target-before.txt", "proc-drbd-uptodate-secondary.txt",
                                      drbd_resources=RES)
    with pytest.raises(RestartError, match="fxm-disk: the peer is Primary"):
        restart(runner, args, proc_drbd=proc)


def test_resource_not_up(dom0):
    module, runner, args, proc = dom0("xl-list-migrate-target-before.txt", "proc-drbd-fxr-down.txt", drbd_resources=RES)
    with pytest.raises(RestartError, match=r"fxm-disk \(minor 90\) is not up"):
        restart(runner, args, proc_drbd=proc)


def test_promote_an_uptodate_secondary_whose_peer_is_gone_then_start(dom0, fixture_text):
    # DERIVED, not recorded: proc-drbd-uptodate-secondary.txt (hostb, minor 90 Secondary/Primary UpToDate/UpToDate)
    # with its peer gone, as DRBD 8.4 shows a secondary whose primary lost power: WFConnection, peer Unknown/DUnknown.
    text = fixture_text(*DRBD + ("proc-drbd-uptodate-secondary.txt",)).replace(
        "90: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate", "90: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown")
    assert "ro:Secondary/Unknown ds:UpToDate/DUnknown" in text
    module, runner, args, proc = dom0("xl-list-migrate-target-before.txt", drbd_text=text, drbd_resources=RES)
    result = restart(runner, args, proc_drbd=proc)
    assert result["promoted"] == ["fxm-disk"] and result["restarted"] and result["changed"]
    assert commands(module) == [["xl", "list"], ["drbdadm", "primary", "fxm-disk"], ["xl", "create", args["config_dir"] + "/fxm.cfg"]]
    # promote only (the failover role starts with xen_domain, which writes the config)
    module, runner, args, proc = dom0("xl-list-migrate-target-before.txt", drbd_text=text, drbd_resources=RES, start=False)
    result = restart(runner, args, proc_drbd=proc)
    assert result["promoted"] == ["fxm-disk"] and not result["restarted"]
    assert commands(module)[-1] == ["drbdadm", "primary", "fxm-disk"]


def test_already_primary_is_not_promoted_again(dom0):
    # minor 90 Primary, peer unknown (proc-drbd-primary-standalone-peer): nothing to promote
    module, runner, args, proc = dom0("xl-list-migrate-target-before.txt", "proc-drbd-primary-standalone-peer.txt",
                                      drbd_resources=RES)
    result = restart(runner, args, proc_drbd=proc)
    assert result["promoted"] == [] and result["restarted"]


def test_check_mode_runs_nothing(dom0, fixture_text):
    text = fixture_text(*DRBD + ("proc-drbd-uptodate-secondary.txt",)).replace(
        "ro:Secondary/Primary ds:UpToDate/UpToDate", "ro:Secondary/Unknown ds:UpToDate/DUnknown")
    module, runner, args, proc = dom0("xl-list-migrate-target-before.txt", drbd_text=text, drbd_resources=RES, check_mode=True)
    result = restart(runner, args, proc_drbd=proc)
    assert commands(module) == [["xl", "list"]]
    assert runner.would_run == [["drbdadm", "primary", "fxm-disk"], ["xl", "create", args["config_dir"] + "/fxm.cfg"]]
    assert result["restarted"]


def test_tries_and_giving_up(dom0, tmp_path):
    failed = (1, "", "libxl: error: libxl_create.c: domain creation failed\n")
    module, runner, args, proc = dom0("xl-list.txt", create=[failed, failed, (0, "", "")], tries=3, give_up_after=2)
    result = restart(runner, args, proc_drbd=proc)
    assert result["attempts"] == 3 and result["restarted"] and result["failed_runs"] == 0
    counter = tmp_path / "state" / "watcher" / "fxm.tries"
    for run in (1, 2):
        module, runner, args, proc = dom0("xl-list.txt", create=[failed], tries=2, give_up_after=2)
        with pytest.raises(RestartError, match="xl create failed 2 time"):
            restart(runner, args, proc_drbd=proc)
        assert counter.read_text() == "%d\n" % run
    module, runner, args, proc = dom0("xl-list.txt", create=[failed], tries=2, give_up_after=2)
    with pytest.raises(RestartError, match="gave up after 2 failed runs"):
        restart(runner, args, proc_drbd=proc)
    assert commands(module) == [["xl", "list"]]
    counter.unlink()
    module, runner, args, proc = dom0("xl-list.txt", tries=1, give_up_after=2)
    assert restart(runner, args, proc_drbd=proc)["restarted"]


def test_no_config(dom0):
    module, runner, args, proc = dom0("xl-list.txt", configs=())
    with pytest.raises(RestartError, match="no config .*fxm.cfg on this dom0"):
        restart(runner, args, proc_drbd=proc)


def test_main_refuses_bad_resources(module_main):
    args = {"name": "fxm", "drbd_resources": [{"name": "x", "minor": "9"}], "toolstack": "xl"}
    result, failed, _calls = module_main(vm_restart.main, args, {})
    assert failed and "integer minor" in result["msg"]


# --------------------------------------------------------------------------- a domain build killed midway
# Recorded by hand on the 384 MiB lab dom0 (xl 4.17.5, SOURCE): two xl create at once, dom0's OOM killer killed one
# mid-build (exit 137) and left wbench02 as a paused shell of 0 MiB and 0 vCPUs; the next create of wbench02 failed
# with "already exists" (exit 3).

SHELL_VM = "wbench02"


class BuildDom0(Sequence):
    """One dom0 as the recordings show it: ``xl list`` is xl-list.txt, or xl-list-failed-build-shell.txt while
    wbench02's shell is there; ``xl create`` takes the next of ``creates``: "killed" (rc -9, as the module saw it in
    the lab, leaving the shell), "ok" (built; wbench02's shell is not there then), "shell-meanwhile" (another create was killed since
    the module's first look: the shell is there); while the shell is there, a create fails as recorded ("already
    exists", rc 3). ``xl destroy wbench02`` removes the shell. ``lock_held_at_create``: whether the domain build
    lock was held at each create (another open file's flock on it failing)."""

    def __init__(self, fixture_text, config, creates, lock_path, check_mode=False):
        super(BuildDom0, self).__init__({}, check_mode=check_mode)
        self.text = fixture_text
        self.config = config
        self.creates = list(creates)
        self.lock_path = lock_path
        self.shell = False
        self.lock_held_at_create = []

    def recorded(self, name):
        return self.text(*XL + (name,))

    def run_command(self, args, **kwargs):
        self.calls.append((list(args), kwargs))
        if args == ["xl", "list"]:
            return (0, self.recorded("xl-list-failed-build-shell.txt" if self.shell else "xl-list.txt"), "")
        if args == ["xl", "create", self.config]:
            self.lock_held_at_create.append(lock_is_held(self.lock_path))
            outcome = self.creates.pop(0)
            self.shell = self.shell or outcome == "shell-meanwhile"
            if self.shell:
                return (3, "", self.recorded("xl-create-exists.stderr"))
            if outcome == "killed":
                self.shell = True
                return (-9, "", self.recorded("xl-create-killed.stderr"))
            return (0, "", "")
        if args == ["xl", "destroy", SHELL_VM] and self.shell:
            self.shell = False
            return (0, "", "")
        raise AssertionError("unexpected command %r" % (args,))


def lock_is_held(path):
    """Whether another open file holds the flock on path (flock conflicts between two open files of one process)."""
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except (IOError, OSError):
        return True
    finally:
        os.close(fd)


@pytest.fixture
def build_dom0(tmp_path, fixture_text, monkeypatch):
    lock_dir = tmp_path / "run"
    monkeypatch.setattr(conv, "LOCK_DIR", str(lock_dir))

    def make(creates, check_mode=False, name=SHELL_VM, **params):
        auto = tmp_path / "auto"
        auto.mkdir(exist_ok=True)
        (auto / ("%s.cfg" % name)).write_text('name = "%s"\n' % name)
        module = BuildDom0(fixture_text, str(auto / ("%s.cfg" % name)), creates,
                           str(lock_dir / ("%s.lock" % conv.DOMAIN_BUILD_LOCK)), check_mode=check_mode)
        args = dict(name=name, drbd_resources=[], start=True, config_dir=str(auto), toolstack="xl", tries=1,
                    retry_delay=0, give_up_after=0, state_dir=str(tmp_path / "state"))
        args.update(params)
        return module, CommandRunner(module), args, str(tmp_path / "drbd")
    return make


def test_the_shell_of_a_killed_build_is_destroyed_and_the_next_attempt_builds(build_dom0):
    module, runner, args, proc = build_dom0(["killed", "ok"], tries=2)
    result = restart(runner, args, proc_drbd=proc)
    assert (result["restarted"], result["attempts"], result["removed_shells"]) == (True, 2, [SHELL_VM])
    create = ["xl", "create", args["config_dir"] + "/wbench02.cfg"]
    assert commands(module) == [["xl", "list"], create, ["xl", "list"], ["xl", "destroy", SHELL_VM], create]
    # without the destroy, the second create would have failed as recorded ("already exists")
    assert not module.shell


def test_a_failure_reports_the_killed_attempt_and_the_removed_shell(build_dom0, fixture_text, tmp_path):
    module, runner, args, proc = build_dom0(["killed"], tries=1, give_up_after=3)
    with pytest.raises(RestartError) as info:
        restart(runner, args, proc_drbd=proc)
    killed = fixture_text(*XL + ("xl-create-killed.stderr",)).strip()
    assert str(info.value) == "wbench02: xl create failed 1 time(s): attempt 1 (rc -9, killed): " + killed
    assert info.value.details["removed_shells"] == [SHELL_VM] and info.value.details["failed_runs"] == 1
    assert commands(module)[-1] == ["xl", "destroy", SHELL_VM] and not module.shell
    assert (tmp_path / "state" / "watcher" / "wbench02.tries").read_text() == "1\n"


def test_the_failure_message_gives_every_attempt(build_dom0, fixture_text):
    module, runner, args, proc = build_dom0(["killed", "killed"], tries=2)
    with pytest.raises(RestartError) as info:
        restart(runner, args, proc_drbd=proc)
    killed = fixture_text(*XL + ("xl-create-killed.stderr",)).strip()
    assert str(info.value) == ("wbench02: xl create failed 2 time(s): attempt 1 (rc -9, killed): %s; "
                               "attempt 2 (rc -9, killed): %s" % (killed, killed))
    assert commands(module).count(["xl", "destroy", SHELL_VM]) == 2


def test_a_create_that_finds_a_shell_left_meanwhile_removes_it_and_retries(build_dom0):
    # the shell appeared after the module's first xl list (another create killed meanwhile): this create fails with
    # "already exists" (rc 3), as recorded; the shell is destroyed and the second attempt builds
    module, runner, args, proc = build_dom0(["shell-meanwhile", "ok"], tries=2)
    result = restart(runner, args, proc_drbd=proc)
    assert (result["restarted"], result["attempts"], result["removed_shells"]) == (True, 2, [SHELL_VM])
    assert ["xl", "destroy", SHELL_VM] in commands(module)


def test_a_create_killed_after_its_domain_runs_counts_as_started(build_dom0):
    # xl-list-failed-build-shell.txt shows wbench00 blocked (-b----), a domain its create had unpaused: a create of it
    # that reports being killed is then no failure, and nothing is destroyed
    module, runner, args, proc = build_dom0(["killed"], name="wbench00")
    result = restart(runner, args, proc_drbd=proc)
    assert (result["restarted"], result["attempts"], result["removed_shells"]) == (True, 1, [])
    assert commands(module) == [["xl", "list"], ["xl", "create", module.config], ["xl", "list"]]


def test_each_create_runs_under_the_domain_build_lock(build_dom0, tmp_path):
    module, runner, args, proc = build_dom0(["killed", "ok"], tries=2)
    assert restart(runner, args, proc_drbd=proc)["restarted"]
    assert module.lock_held_at_create == [True, True]
    # released after the create: another build may start while this guest boots
    assert not lock_is_held(str(tmp_path / "run" / "domain-build.lock"))


def hold_domain_build_lock(tmp_path):
    """Another build's hold of the domain build lock under tmp_path/run (the tests' LOCK_DIR): its fd, to close."""
    (tmp_path / "run").mkdir()
    holder = os.open(str(tmp_path / "run" / "domain-build.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    return holder


def test_check_mode_takes_no_domain_build_lock(build_dom0, tmp_path, lock_clock):
    # another build holds the lock: check mode does not wait for it (it would time out on lock_clock at once)
    holder = hold_domain_build_lock(tmp_path)
    try:
        module, runner, args, proc = build_dom0(["ok"], check_mode=True)
        result = restart(runner, args, proc_drbd=proc)
    finally:
        os.close(holder)
    assert result["restarted"] and runner.would_run == [["xl", "create", args["config_dir"] + "/wbench02.cfg"]]
    assert lock_clock.sleeps == [] and commands(module) == [["xl", "list"]]


def test_a_domain_build_lock_held_too_long_fails_the_run_without_a_create(build_dom0, tmp_path, monkeypatch,
                                                                          lock_clock):
    holder = hold_domain_build_lock(tmp_path)
    monkeypatch.setattr(conv, "DOMAIN_BUILD_LOCK_TIMEOUT_S", 1)
    try:
        module, runner, args, proc = build_dom0(["ok"], tries=3, give_up_after=3)
        with pytest.raises(RestartError, match=r"failed 1 time\(s\): attempt 1: the domain build lock: .*"
                                               r"domain-build.lock after 1 s"):
            restart(runner, args, proc_drbd=proc)
        assert commands(module) == [["xl", "list"]] and sum(lock_clock.sleeps) >= 1
    finally:
        os.close(holder)


def test_main_reports_the_removed_shell_when_it_fails(module_main, fixture_text, tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "LOCK_DIR", str(tmp_path / "run"))
    auto = tmp_path / "auto"
    auto.mkdir()
    (auto / "wbench02.cfg").write_text('name = "wbench02"\n')
    config = str(auto / "wbench02.cfg")
    outputs = {("xl", "list"): [(0, fixture_text(*XL + ("xl-list.txt",)), ""),
                                (0, fixture_text(*XL + ("xl-list-failed-build-shell.txt",)), "")],
               ("xl", "create", config): (-9, "", fixture_text(*XL + ("xl-create-killed.stderr",))),
               ("xl", "destroy", SHELL_VM): (0, "", "")}
    args = {"name": SHELL_VM, "toolstack": "xl", "config_dir": str(auto), "state_dir": str(tmp_path / "state")}
    result, failed, calls = module_main(vm_restart.main, args, outputs)
    assert failed and result["removed_shells"] == [SHELL_VM] and result["attempts"] == 1
    assert "attempt 1 (rc -9, killed): Parsing config from /etc/xen/auto/wbench02.cfg" in result["msg"]
    assert calls == [["xl", "list"], ["xl", "create", config], ["xl", "list"], ["xl", "destroy", SHELL_VM]]


def test_a_disk_it_needs_must_be_a_block_device_here(dom0, tmp_path, monkeypatch):
    # a raid1 VM's surviving leg: missing, or not a block device: nothing started; there (os.stat says a block
    # device): started
    leg = tmp_path / "dev" / "sanless" / "hosta" / "xenvg" / "fxm-data"
    module, runner, args, proc = dom0("xl-list.txt", require_paths=[str(leg)])
    with pytest.raises(RestartError, match=r"fxm not started, nothing promoted: a disk it needs is missing on this "
                                           r"dom0: .*/fxm-data is not there \(No such file or directory\)"):
        restart(runner, args, proc_drbd=proc)
    assert commands(module) == [["xl", "list"]]
    leg.parent.mkdir(parents=True)
    leg.write_text("")
    with pytest.raises(RestartError, match="fxm-data is no block device"):
        restart(runner, args, proc_drbd=proc)
    monkeypatch.setattr(vm_restart, "device_mode", lambda path: stat.S_IFBLK | 0o660)
    module, runner, args, proc = dom0("xl-list.txt", require_paths=[str(leg)])
    assert restart(runner, args, proc_drbd=proc)["restarted"]
    assert commands(module) == [["xl", "list"], ["xl", "create", args["config_dir"] + "/fxm.cfg"]]
