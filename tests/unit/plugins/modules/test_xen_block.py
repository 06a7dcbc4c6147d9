# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.xen_block on the recorded xl list -l of fxrec (xl 4.17.5) and the recorded answer of xl to a domain
that does not exist. HAND-WRITTEN, not recorded (no recording of them exists yet): xl block-attach/detach answering
nothing with rc 0, and the listing after the attach, which is the recording with one disk entry added (attached())."""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.sanless.xen.plugins.modules import xen_block

LIST = ("xl", "list", "-l", "fxrec")
NEW = "/dev/sanless/hostc/xenvg/fxrec-data"
ATTACH = ["xl", "block-attach", "fxrec", "phy:%s,xvdd,w" % NEW]
DETACH = ["xl", "block-detach", "fxrec", "xvdd"]


def attached(text):
    """The recorded listing with the new leg as one more disk entry (DERIVED: the recorded entry, other path and vdev)."""
    domains = json.loads(text)
    disk = dict(domains[0]["config"]["disks"][0], pdev_path=NEW, vdev="xvdd")
    domains[0]["config"]["disks"].append(disk)
    return json.dumps(domains)


@pytest.fixture
def listing(fixture_text, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    recorded = fixture_text("xl", "4.17.5", "xl-list-l-fxrec.json")
    return {"plain": (0, recorded, ""), "attached": (0, attached(recorded), ""),
            "gone": (1, "", fixture_text("xl", "4.17.5", "xl-destroy-nodomain.stderr").replace("pvfxnone", "fxrec"))}


def test_attach_a_new_leg_and_wait_until_the_domain_shows_it(module_main, listing):
    result, failed, calls = module_main(xen_block.main, {"domain": "fxrec", "target": NEW, "vdev": "xvdd"},
                                        {LIST: [listing["plain"], listing["plain"], listing["attached"]],
                                         tuple(ATTACH): (0, "", "")}, False, True)
    assert not failed, result
    assert result["changed"] and calls.count(ATTACH) == 1 and calls.count(list(LIST)) == 3
    assert {"target": NEW, "vdev": "xvdd", "mode": "w"} in result["disks"]
    assert result["diff"]["before"]["disks"] == [{"target": "/dev/xenvg/fxrec-disk", "vdev": "xvda", "mode": "w"}]


def test_attached_twice_is_no_change_and_check_mode_runs_nothing(module_main, listing):
    args = {"domain": "fxrec", "target": NEW, "vdev": "xvdd"}
    result, failed, calls = module_main(xen_block.main, args, {LIST: listing["attached"]})
    assert not failed and not result["changed"] and calls == [list(LIST)]
    result, failed, calls = module_main(xen_block.main, args, {LIST: listing["plain"]}, True)
    assert not failed and result["changed"] and result["would_run"] == [ATTACH] and ATTACH not in calls


def test_detach_only_the_named_device(module_main, listing):
    result, failed, calls = module_main(xen_block.main, {"domain": "fxrec", "target": NEW, "vdev": "xvdd",
                                                         "state": "detached"},
                                        {LIST: [listing["attached"], listing["plain"]], tuple(DETACH): (0, "", "")})
    assert not failed and result["changed"] and DETACH in calls
    assert [d["vdev"] for d in result["disks"]] == ["xvda"]
    result, failed, calls = module_main(xen_block.main, {"domain": "fxrec", "target": NEW, "vdev": "xvda",
                                                         "state": "detached"}, {LIST: listing["attached"]})
    assert failed and "not detached" in result["msg"] and DETACH not in calls


def test_refusals_before_any_change(module_main, listing):
    result, failed, calls = module_main(xen_block.main, {"domain": "fxrec", "target": NEW, "vdev": "xvda"},
                                        {LIST: listing["plain"]})
    assert failed and "xvda is taken by /dev/xenvg/fxrec-disk" in result["msg"]
    result, failed, calls = module_main(xen_block.main, {"domain": "fxrec", "target": NEW, "vdev": "xvde"},
                                        {LIST: listing["attached"]})
    assert failed and "attached already as xvdd" in result["msg"]
    result, failed, calls = module_main(xen_block.main, {"domain": "fxrec", "target": NEW, "vdev": "xvdd"},
                                        {LIST: listing["gone"]})
    assert failed and "does not run on this dom0" in result["msg"]
    result, failed, calls = module_main(xen_block.main, {"domain": "fxrec", "target": "/dev/x,y", "vdev": "xvdd"}, {})
    assert failed and calls == []
    assert not [c for c in calls if c[1] in ("block-attach", "block-detach")]
