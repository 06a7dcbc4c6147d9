# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_restart on recorded xl list and /proc/drbd output of the lab (xl 4.17.5, DRBD 8.4.11)."""

from __future__ import annotations

import pytest

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
def dom0(tmp_path, fixture_text):
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
