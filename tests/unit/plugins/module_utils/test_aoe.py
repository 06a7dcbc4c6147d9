# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""aoe.py parsers on the lab recordings (aoetools 36, vblade 25)."""

from __future__ import annotations

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import aoe

AOETOOLS = ("aoetools", "36")
VBLADE = ("vblade", "25")


def out(fixture_text, where, name):
    return fixture_text(*where + (name + ".out",))


def test_aoe_stat(fixture_text):
    assert aoe.parse_aoe_stat(out(fixture_text, AOETOOLS, "aoe-discover")) == [
        {"device": "e1.2", "shelf": 1, "slot": 2, "size_gb": 0.016, "interfaces": ["xenbr0"], "payload": 1024,
         "state": "up"}]
    [hostb] = aoe.parse_aoe_stat(out(fixture_text, AOETOOLS, "aoe-stat-a"))
    assert (hostb["shelf"], hostb["slot"]) == (2, 1)
    # nothing listed: rc 1 and no output
    assert fixture_text(*AOETOOLS + ("aoe-stat-empty2.rc",)).strip() == "1"
    assert aoe.parse_aoe_stat(out(fixture_text, AOETOOLS, "aoe-stat-empty2")) == []


def test_aoe_stat_garbage_is_an_error():
    with pytest.raises(aoe.AoeParseError):
        aoe.parse_aoe_stat("aoe-stat: something went wrong\n")


def test_etherd_names_leave_out_the_control_files(fixture_text):
    names = [line.split()[-1] for line in out(fixture_text, AOETOOLS, "etherd-ls").splitlines()[1:]]
    assert "discover" in names and "flush" in names
    assert aoe.etherd_devices(names) == [(1, 2)]


def test_ps_vblade_with_a_mac_allow_list(fixture_text):
    assert aoe.parse_ps_vblade(out(fixture_text, VBLADE, "ps-vblade") + "  1234 grep vblade\n") == [
        {"pid": 969, "shelf": 2, "slot": 1, "interface": "xenbr0", "device": "/dev/xenvg/rec3",
         "macs": ["2e:4f:b1:ca:36:c2"], "options": {}}]


def test_unit_runs_the_recorded_command_line(fixture_text):
    text = aoe.vblade_unit(2, 1, "xenbr0", "/dev/xenvg/rec3", ["2E:4F:B1:CA:36:C2"])
    assert "Restart=on-failure" in text and "WantedBy=multi-user.target" in text
    exec_start = [line for line in text.splitlines() if line.startswith("ExecStart=")][0]
    # the same argv as the vblade ps showed running in the lab
    assert exec_start[len("ExecStart="):] == out(fixture_text, VBLADE, "ps-vblade").split(None, 1)[1].strip()
    assert aoe.parse_vblade_unit(text)["macs"] == ["2e:4f:b1:ca:36:c2"]
    # the usage line names the options the parser knows
    usage = out(fixture_text, VBLADE, "vblade-help")
    for option in ("-b", "-o", "-l", "-d", "-s", "-r", "-m"):
        assert "[%s" % option in usage or "[ %s" % option in usage


@pytest.mark.parametrize("call", [
    lambda: aoe.vblade_unit(1, 2, "xen br0", "/dev/xenvg/a"),
    lambda: aoe.vblade_unit(1, 2, "xenbr0", "/dev/xenvg/a b"),
    lambda: aoe.vblade_unit(1, 255, "xenbr0", "/dev/xenvg/a"),
    lambda: aoe.vblade_unit(1, 2, "xenbr0", "/dev/xenvg/a", ["2e:4f:b1:ca:36"]),
    lambda: aoe.check_interface("eth0;reboot"),
])
def test_bad_unit_values(call):
    with pytest.raises(ValueError):
        call()
