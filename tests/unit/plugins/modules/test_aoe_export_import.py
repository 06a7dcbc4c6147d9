# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.aoe_export and aoe_import run whole, their commands answered by the lab recordings
(vblade 25 on hosta/hostb, aoetools 36 on hostb)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import aoe, iscsi
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv
from ansible_collections.sanless.xen.plugins.modules import aoe_export, aoe_import
from ansible_collections.sanless.xen.tests.unit.conftest import lvs_report_with, recorded_run

AOETOOLS = ("aoetools", "36")
VBLADE = ("vblade", "25")
UNIT = "sanless-vblade-2-1.service"
MAC = "2e:4f:b1:ca:36:c2"


@pytest.fixture
def export(module_main, monkeypatch, tmp_path, fixture_text):
    units = tmp_path / "systemd"
    units.mkdir()
    monkeypatch.setattr(aoe, "SYSTEMD_DIR", str(units))
    monkeypatch.setattr(iscsi, "ROOT", str(tmp_path))
    monkeypatch.setattr(conv, "LOCK_DIR", str(tmp_path / "run"))

    def go(args, outputs, check_mode=False):
        outputs = dict(outputs)
        outputs.setdefault(tuple(lvs_argv(["xenvg"])), lvs_report_with(fixture_text, "rec1", "rec3"))
        return module_main(aoe_export.main, dict({"host": "hostb"}, **args), outputs, check_mode, True)
    go.units = units
    go.root = tmp_path
    return go


def states(fixture_text, active):
    return {tuple(aoe.systemctl_argv("is-active", UNIT)):
            recorded_run(fixture_text, VBLADE, "vblade-start" if active else "vblade-stop"),
            tuple(aoe.systemctl_argv("is-enabled", UNIT)): (0, "enabled\n", "") if active else (1, "disabled\n", "")}


ARGS = {"vg": "xenvg", "lv": "rec3", "shelf": 2, "slot": 1, "interface": "xenbr0", "macs": [MAC.upper()]}


def test_export_writes_enables_starts_then_second_run_is_no_change(export, fixture_text):
    nothing = (0, "    1 /sbin/init\n", "")
    outputs = dict(states(fixture_text, False))
    outputs[tuple(aoe.ps_argv())] = nothing
    for verb in ("daemon-reload",):
        outputs[tuple(aoe.systemctl_argv(verb))] = (0, "", "")
    outputs[tuple(aoe.systemctl_argv("enable", UNIT))] = (0, "", "")
    outputs[tuple(aoe.systemctl_argv("start", UNIT))] = recorded_run(fixture_text, VBLADE, "vblade-start-mac")
    result, failed, calls = export(ARGS, outputs)
    assert not failed, result
    assert result["actions"][:4] == ["write %s" % (export.units / UNIT), "daemon-reload", "enable", "start"]
    unit = (export.units / UNIT).read_text()
    # the unit runs what the lab ran by hand (ps-vblade)
    running = aoe.parse_ps_vblade(fixture_text(*VBLADE + ("ps-vblade.out",)))[0]
    parsed = aoe.parse_vblade_unit(unit)
    assert all(parsed[k] == running[k] for k in ("shelf", "slot", "interface", "device", "macs"))
    assert os.readlink(str(export.root / "dev/sanless/hostb/xenvg/rec3")) == "/dev/xenvg/rec3"
    # second run: the recorded vblade runs, the unit is active and enabled
    outputs = dict(states(fixture_text, True))
    outputs[tuple(aoe.ps_argv())] = recorded_run(fixture_text, VBLADE, "ps-vblade")
    result, failed, calls = export(ARGS, outputs)
    assert not failed, result
    assert not result["changed"] and result["diff"]["before"] == result["diff"]["after"]


def test_occupied_shelf_slot_is_refused_before_any_change(export, fixture_text):
    outputs = {tuple(aoe.ps_argv()): recorded_run(fixture_text, VBLADE, "ps-vblade")}
    result, failed, calls = export(dict(ARGS, lv="rec1"), outputs)
    assert failed and result["msg"] == "e2.1 is occupied: vblade pid 969 exports /dev/xenvg/rec3 on xenbr0"
    assert calls == [lvs_argv(["xenvg"]), aoe.ps_argv()] and not list(export.units.iterdir())


def test_a_vblade_started_by_hand_for_the_same_export_is_refused(export, fixture_text):
    # the lab's vblade ran under systemd-run's rec-vblade-2-1, not under the sanless unit
    outputs = dict(states(fixture_text, False))
    outputs[tuple(aoe.ps_argv())] = recorded_run(fixture_text, VBLADE, "ps-vblade")
    result, failed, calls = export(ARGS, outputs)
    assert failed and result["msg"] == "e2.1 is already served by vblade pid 969, not by %s: stop that vblade first" % UNIT
    assert not list(export.units.iterdir())


def test_an_lv_exported_elsewhere_is_refused(export, fixture_text):
    outputs = {tuple(aoe.ps_argv()): recorded_run(fixture_text, VBLADE, "ps-vblade")}
    result, failed, calls = export(dict(ARGS, slot=5), outputs)
    assert failed and "/dev/xenvg/rec3 is already exported as e2.1" in result["msg"]


def test_missing_lv_and_bad_names(export, fixture_text):
    result, failed, calls = export(dict(ARGS, lv="nope"), {})
    assert failed and result["msg"] == "LV xenvg/nope does not exist" and calls == [lvs_argv(["xenvg"])]
    for change in ({"lv": "rec3 ; reboot"}, {"interface": "xenbr0$(id)"}, {"macs": ["zz"]}, {"slot": 255}):
        result, failed, calls = export(dict(ARGS, **change), {})
        assert failed and calls == [], change


def test_check_mode_and_absent(export, fixture_text):
    outputs = dict(states(fixture_text, False))
    outputs[tuple(aoe.ps_argv())] = (0, "", "")
    result, failed, calls = export(ARGS, outputs, check_mode=True)
    assert not failed and result["changed"] and not list(export.units.iterdir())
    assert [c[1] for c in result["would_run"]] == ["daemon-reload", "enable", "start"]
    (export.units / UNIT).write_text(aoe.vblade_unit(2, 1, "xenbr0", "/dev/xenvg/rec3", [MAC]))
    outputs = dict(states(fixture_text, True))
    for argv in (aoe.systemctl_argv("stop", UNIT), aoe.systemctl_argv("disable", UNIT),
                 aoe.systemctl_argv("daemon-reload")):
        outputs[tuple(argv)] = (0, "", "")
    result, failed, calls = export({"vg": "xenvg", "lv": "rec3", "shelf": 2, "slot": 1, "state": "absent"}, outputs)
    assert not failed and result["actions"][:3] == ["stop", "disable", "remove %s" % (export.units / UNIT)]
    assert not (export.units / UNIT).exists()


def test_without_a_slot_the_module_picks_the_lowest_free_one_of_the_shelf(export, fixture_text):
    # the lab's vblade serves rec3 as e2.1 (ps-vblade): rec1 gets e2.2, and says so for the importers
    unit = "sanless-vblade-2-2.service"
    outputs = {tuple(aoe.ps_argv()): recorded_run(fixture_text, VBLADE, "ps-vblade"),
               tuple(aoe.systemctl_argv("is-active", unit)): recorded_run(fixture_text, VBLADE, "vblade-stop"),
               tuple(aoe.systemctl_argv("is-enabled", unit)): (1, "disabled\n", ""),
               tuple(aoe.systemctl_argv("daemon-reload")): (0, "", ""),
               tuple(aoe.systemctl_argv("enable", unit)): (0, "", ""),
               tuple(aoe.systemctl_argv("start", unit)): (0, "", "")}
    args = dict(ARGS, lv="rec1")
    del args["slot"]
    result, failed, calls = export(args, outputs)
    assert not failed, result
    assert result["export"]["slot"] == 2 and result["export"]["unit"] == unit
    assert aoe.parse_vblade_unit((export.units / unit).read_text())["device"] == "/dev/xenvg/rec1"
    # the next run finds rec1 at e2.2 by its unit (vblade not listed yet): the same slot, nothing to change
    outputs[tuple(aoe.systemctl_argv("is-active", unit))] = (0, "active\n", "")
    outputs[tuple(aoe.systemctl_argv("is-enabled", unit))] = (0, "enabled\n", "")
    result, failed, calls = export(args, outputs)
    assert not failed and not result["changed"] and result["export"]["slot"] == 2
    # an LV the shelf serves already keeps its slot: rec3 is e2.1 (served by hand here, so refused as before)
    result, failed, calls = export(dict(args, lv="rec3"), states(fixture_text, False) | {
        tuple(aoe.ps_argv()): recorded_run(fixture_text, VBLADE, "ps-vblade")})
    assert failed and result["msg"].startswith("e2.1 is already served by vblade pid 969")


def test_a_unit_of_another_lv_at_the_asked_slot_is_refused_not_rewritten(export):
    # its vblade is not running (nothing in ps): the unit still names the slot's LV
    other = aoe.vblade_unit(2, 2, "xenbr0", "/dev/xenvg/rec3", [MAC])
    (export.units / "sanless-vblade-2-2.service").write_text(other)
    result, failed, calls = export(dict(ARGS, lv="rec1", slot=2), {tuple(aoe.ps_argv()): (0, "", "")})
    assert failed and result["msg"] == "e2.2 is occupied: sanless-vblade-2-2.service exports /dev/xenvg/rec3 on xenbr0"
    assert (export.units / "sanless-vblade-2-2.service").read_text() == other


def test_pick_slot_keeps_an_lvs_slot_and_takes_the_lowest_free_one_of_its_shelf(fixture_text):
    served = aoe.parse_ps_vblade(fixture_text(*VBLADE + ("ps-vblade.out",)))
    assert [(e["shelf"], e["slot"], e["device"]) for e in served] == [(2, 1, "/dev/xenvg/rec3")]
    assert aoe.pick_slot(2, "/dev/xenvg/rec3", served) == 1
    assert aoe.pick_slot(2, "/dev/xenvg/rec1", served) == 2
    assert aoe.pick_slot(1, "/dev/xenvg/rec1", served) == 1  # another shelf's slots are not this one's
    full = [{"shelf": 2, "slot": n, "device": "/dev/xenvg/lv%d" % n} for n in range(1, conv.AOE_MAX_SLOT + 1)]
    with pytest.raises(ValueError, match="no free AoE slot"):
        aoe.pick_slot(2, "/dev/xenvg/rec1", full)


def test_an_export_waits_for_the_host_lock_and_fails_before_any_change_when_held(export, fixture_text, monkeypatch, lock_clock):
    import fcntl

    # another run (an export change, a migration claiming DRBD minors) holds the dom0's host lock
    (export.root / "run").mkdir()
    holder = os.open(str(export.root / "run" / "host.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    monkeypatch.setattr(conv, "HOST_LOCK_TIMEOUT_S", 1)
    outputs = dict(states(fixture_text, False))
    outputs[tuple(aoe.ps_argv())] = (0, "", "")
    try:
        result, failed, calls = export(ARGS, outputs)
        assert failed and result["msg"].startswith("the host lock: ") and calls == []
        assert sum(lock_clock.sleeps) >= 1  # it waited the timeout out (on lock_clock)
        # check mode changes nothing and does not wait for it
        polls = len(lock_clock.sleeps)
        result, failed, calls = export(ARGS, outputs, check_mode=True)
        assert not failed and result["changed"] and not list(export.units.iterdir()) and len(lock_clock.sleeps) == polls
    finally:
        os.close(holder)


def test_absent_needs_the_slot(export):
    result, failed, calls = export({"vg": "xenvg", "lv": "rec3", "shelf": 2, "state": "absent"}, {})
    assert failed and "slot" in result["msg"] and calls == []


# --------------------------------------------------------------------------- import


@pytest.fixture
def imp(module_main, imported_devices, tmp_path):
    devices = imported_devices

    def go(args, outputs, present=("/dev/etherd/e1.2",), check_mode=False):
        devices.clear()
        devices.update(present)
        return module_main(aoe_import.main, args, outputs, check_mode, True)
    go.root = tmp_path
    return go


def test_import_discovers_and_waits_then_is_no_change(imp, fixture_text):
    outputs = {tuple(aoe.aoe_stat_argv()): [recorded_run(fixture_text, AOETOOLS, "aoe-stat-empty2"),
                                            recorded_run(fixture_text, AOETOOLS, "aoe-discover")],
               tuple(aoe.aoe_discover_argv()): (0, "", fixture_text(*AOETOOLS + ("aoe-discover.err",)))}
    args = {"shelf": 1, "slot": 2, "owner": "hosta", "vg": "xenvg", "lv": "rec1"}
    result, failed, calls = imp(args, outputs)
    assert not failed, result
    assert result["device"] == "/dev/etherd/e1.2" and result["aoe"]["state"] == "up"
    assert calls == [aoe.aoe_stat_argv(), aoe.aoe_discover_argv(), aoe.aoe_stat_argv()]
    assert os.readlink(str(imp.root / "dev/sanless/hosta/xenvg/rec1")) == "/dev/etherd/e1.2"
    rule = (imp.root / "etc/udev/rules.d/61-sanless-hosta-xenvg-rec1.rules").read_text()
    assert 'KERNEL=="etherd!e1.2"' in rule
    result, failed, calls = imp(args, {tuple(aoe.aoe_stat_argv()): recorded_run(fixture_text, AOETOOLS, "aoe-stat-empty")})
    assert not failed and not result["changed"] and calls == [aoe.aoe_stat_argv()]


def test_import_of_an_export_that_never_comes_times_out(imp, fixture_text):
    outputs = {tuple(aoe.aoe_stat_argv()): recorded_run(fixture_text, AOETOOLS, "aoe-stat-a"),
               tuple(aoe.aoe_discover_argv()): (0, "", "")}
    result, failed, calls = imp({"shelf": 1, "slot": 2, "timeout": 0}, outputs, present=())
    assert failed and "/dev/etherd/e1.2 did not appear within 0 s (aoe-stat: not listed)" == result["msg"]


def test_import_absent_flushes(imp, fixture_text):
    outputs = {tuple(aoe.aoe_stat_argv()): recorded_run(fixture_text, AOETOOLS, "aoe-stat-after-stop"),
               tuple(aoe.aoe_flush_argv(1, 2)): (0, "", "")}
    result, failed, calls = imp({"shelf": 1, "slot": 2, "state": "absent"}, outputs)
    assert not failed and result["actions"] == ["aoe-flush e1.2"] and result["device"] is None
    result, failed, calls = imp({"shelf": 1, "slot": 2, "state": "absent"},
                                {tuple(aoe.aoe_stat_argv()): recorded_run(fixture_text, AOETOOLS, "aoe-stat-empty2")})
    assert not failed and not result["changed"]
