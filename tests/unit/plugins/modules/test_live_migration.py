# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""live_migration's main(): what it refuses, or settles, before any command runs."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.modules import live_migration

BASE = {"vm": "web01", "role": "target", "host_name": "hostb", "address": "10.77.0.12", "peer_name": "hosta",
        "peer_address": "10.77.0.11"}


@pytest.fixture
def dirs(tmp_path):
    return {"state_dir": str(tmp_path / "state"), "lock_dir": str(tmp_path / "lock")}


def new_prepare(dirs, **extra):
    args = dict(BASE, step="prepare", migration_id="m1", secret="s3cret", minors=[110],
                disks=[{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 268435456}], **dirs)
    args.update(extra)
    return args


@pytest.mark.parametrize("key,value,message", [
    ("vm", "web;reboot", "invalid VM name"),
    ("vm", "../web01", "invalid VM name"),
    ("peer_address", "10.77.0.11;reboot", "invalid peer_address"),
    ("peer_address", "-oProxyCommand=touch /tmp/x", "invalid peer_address"),
    ("address", "$(reboot)", "invalid address"),
    ("peer_name", "host a", "invalid peer_name"),
    # it goes into the resource files: "400M; c-min-rate 0" would be refused there, "fast" by drbdadm after lvcreate
    ("resync_rate", "400M; c-min-rate 0", "resync_rate must be a number"),
    ("resync_rate", "fast", "resync_rate must be a number"),
    ("resync_rate", "0", "resync_rate must be a number"),
])
def test_names_and_addresses_refused_before_any_command(module_main, dirs, key, value, message):
    result, failed, commands = module_main(live_migration.main, new_prepare(dirs, **{key: value}), {})
    assert failed and message in result["msg"] and commands == []
    assert not os.path.exists(dirs["state_dir"])


def test_a_resume_whose_migration_ended_meanwhile_changes_nothing(module_main, dirs):
    # the killed run's finish closed the journal here after the rerun's preflight had read it
    history = os.path.join(dirs["state_dir"], "history")
    os.makedirs(history)
    with open(os.path.join(history, "web01-m1.json"), "w") as handle:
        json.dump({"vm": "web01", "id": "m1", "outcome": "finished", "log": []}, handle)
    result, failed, commands = module_main(live_migration.main, new_prepare(dirs, resume=True), {})
    assert not failed and result["ended"] == "finished" and not result["changed"]
    assert "migration m1 of web01 ended meanwhile (finished); nothing done" in result["msg"]
    assert commands == [] and not os.path.exists(os.path.join(dirs["state_dir"], "migrations", "web01.json"))


@pytest.mark.parametrize("role", ["source", "target"])
def test_an_abort_whose_migration_finished_meanwhile_says_so(module_main, dirs, role):
    # killed during xl migrate: the abort waited for the step lock of the finish still running here, which
    # then closed the journal; the abort reports that the migration finished instead of "nothing in progress"
    history = os.path.join(dirs["state_dir"], "history")
    os.makedirs(history)
    with open(os.path.join(history, "web01-m1.json"), "w") as handle:
        json.dump({"vm": "web01", "id": "m1", "outcome": "finished", "log": []}, handle)
    args = dict(BASE, role=role, step="abort", migration_id="m1", **dirs)
    result, failed, commands = module_main(live_migration.main, args, {})
    assert not failed and result["ended"] == "finished" and not result["changed"] and commands == []
    assert "migration m1 of web01 ended meanwhile (finished); nothing done" in result["msg"]
    # another migration's id: nothing to report but that nothing runs here (check mode: the step lock the call
    # above took is held until this process exits, as on a dom0)
    result, failed, commands = module_main(live_migration.main, dict(args, migration_id="m2"), {}, check_mode=True)
    assert not failed and "ended" not in result and result["msg"] == "no migration of web01 in progress on this host"


def test_minors_claimed_by_another_migration_are_refused_before_any_command(module_main, dirs):
    os.makedirs(os.path.join(dirs["state_dir"], "migrations"))
    with open(os.path.join(dirs["state_dir"], "migrations", "web02.json"), "w") as handle:
        json.dump({"vm": "web02", "id": "m2", "disks": [{"minor": 110, "port": 7810}], "log": []}, handle)
    result, failed, commands = module_main(live_migration.main, new_prepare(dirs), {})
    assert failed and commands == []
    assert result["msg"] == ("hostb: cannot claim what the plan chose for web01: DRBD minor 110 is held by the migration "
                             "of web02; port 7810 is held by the migration of web02; rerun migrate.yml to plan again")
    assert not os.path.exists(os.path.join(dirs["state_dir"], "migrations", "web01.json"))


class _Module(object):
    def __init__(self, params):
        self.params = params


@pytest.mark.parametrize("role,vg", [("source", "xenvg"), ("target", "datavg")])
def test_the_journal_keeps_each_disks_vg_on_both_hosts(dirs, role, vg):
    args = new_prepare(dirs, role=role, owner={}, mode="plain",
                       disks=[{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 268435456, "target_vg": "datavg"}])
    disk = live_migration.new_journal(_Module(args))["disks"][0]
    # vg is this host's (the one its LVs, dm names and paths use); source_vg and target_vg are both hosts'
    assert (disk["vg"], disk["lv_dm"], disk["lv_path"]) == (vg, vg + "-web01--disk", "/dev/%s/web01-disk" % vg)
    assert (disk["source_vg"], disk["target_vg"], disk["meta_lv"]) == ("xenvg", "datavg", "web01-disk.drbdmeta")
    # a plan without target_vg (the same VG on both)
    args["disks"][0].pop("target_vg")
    disk = live_migration.new_journal(_Module(args))["disks"][0]
    assert (disk["vg"], disk["source_vg"], disk["target_vg"]) == ("xenvg", "xenvg", "xenvg")
