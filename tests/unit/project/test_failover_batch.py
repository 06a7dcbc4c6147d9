# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The failover batch's choice of the raid1 guests whose md it starts (guest_md.yml's loop), rendered by ansible-core on
async_status results shaped as the start waits register them: a result may lack a key that selectattr/rejectattr would
test (lab, stop 39). The gate and the outcomes of a batch are recovery.batch_gate and batch_outcomes, tested with
module_utils/recovery.py."""

from __future__ import annotations

import os

import pytest
import yaml

from projecthelpers import ROOT

template = pytest.importorskip("ansible.template")
# ansible-core before 2.19 templates every string; 2.19 and later only strings marked trusted
trusted = getattr(template, "trust_as_template", lambda text: text)


def md_guests(waited):
    """The restarts whose guest md the batch starts (guest_md.yml's loop), from the start waits as registered."""
    with open(os.path.join(ROOT, "roles", "failover", "tasks", "batch.yml")) as stream:
        [task] = [t for t in yaml.safe_load(stream) if t["name"].startswith("Start md degraded")]
    from ansible.parsing.dataloader import DataLoader
    templar = template.Templar(loader=DataLoader(), variables={"failover_waited": waited})
    return templar.template(trusted(task["loop"]))


def test_md_is_started_in_the_raid1_guests_that_started_degraded_only():
    web07 = {"vm": "web07", "arrays": ["/dev/md/data"]}
    waited = {"results": [
        {"item": {"item": web07}, "finished": 1, "changed": True},  # no failed key
        {"item": {"item": {"vm": "web06", "arrays": []}}, "finished": 1, "failed": False},  # DRBD
        {"item": {"item": {"vm": "web02"}}, "finished": 1},  # plain, a plan without the key
        {"item": {"item": {"vm": "web08", "arrays": ["/dev/md/data"]}}, "finished": 1, "failed": True},
        {"item": {"item": {"vm": "web09", "arrays": ["/dev/md/data"]}}, "finished": 0, "failed": True}]}
    assert md_guests(waited) == [web07]
    assert md_guests({"failed": True, "msg": "no jobs"}) == []
