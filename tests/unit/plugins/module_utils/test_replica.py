# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""replica.DiskReplica through the real tools (livemigrate.Host: runner.CommandRunner, lvm.Lvm,
dm.DeviceMapper), each command answered by its lab recording: drbdadm of resource fxr (minor 93,
drbd-utils/9.22.0), lvs/lvremove (lvm/2.03.16), dmsetup remove (dm/1.02.185), /proc/drbd
(drbd/8.4.11). The argv asserted are those the dom0 receives.

The disk dicts use the names of those recordings (resource fxr, clone xenvg-fxq--disk.real, the
migration metadata LV mig1-disk.drbdmeta of lvcreate-lvs-after.json); where a recorded command
names another LV, the test says which one stands in.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils import replica as rp
from ansible_collections.sanless.xen.plugins.module_utils.dm import parse_table, parse_tables
from ansible_collections.sanless.xen.plugins.module_utils.drbd import parse_proc_drbd, parse_resource
from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner

HOSTS = [{"name": "hosta", "address": "10.77.0.11"}, {"name": "hostb", "address": "10.77.0.12"}]


def drbdadm_result(fixture_text, name):
    folder = ("drbd-utils", "9.22.0")
    return (int(fixture_text(*folder, "drbdadm-%s.rc" % name)), fixture_text(*folder, "drbdadm-%s.stdout" % name),
            fixture_text(*folder, "drbdadm-%s.stderr" % name))


def dmsetup_result(fixture_text, name):
    recorded = json.loads(fixture_text("dm", "1.02.185", name))
    return tuple(recorded["argv"]), (recorded["rc"], recorded["stdout"], recorded["stderr"])


def lvs_result(fixture_text, name):
    return tuple(lvs_argv(["xenvg"])), (0, fixture_text("lvm", "2.03.16", name), "")


def minors(fixture_text, name):
    return parse_proc_drbd(fixture_text("drbd", "8.4.11", name))["minors"]


class Log(object):
    def __init__(self, done=()):
        self.events = []
        self.finished = set(done)
        self.saved = 0

    def note(self, event, **info):
        self.events.append(event)
        self.finished.add(event)

    def done(self, event):
        return event in self.finished

    def save(self):
        self.saved += 1


def fxr_disk(**names):
    disk = rp.disk_names("mig1", "xenvg", "mig1-disk", 0, 93)
    disk.update(resource="fxr", clone="xenvg-fxq--disk.real", size_bytes=16128 * 1024)
    disk.update(names)
    return disk


class Clock(object):
    def __init__(self, now=0.0):
        self.now = now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def replica(fake_module, outputs, disk, tmp_path, role="source", log=None, clock=None):
    module = fake_module(outputs)
    host = lm.Host(CommandRunner(module), None)
    log = log or Log()
    rep = rp.DiskReplica(host, disk, role, log, {"hosts": HOSTS, "secret": "s3cret"}, conf_dir=str(tmp_path),
                         clock=clock or Clock())
    return rep, module, log


def test_names_of_a_replicated_disk():
    disk = rp.disk_names("web-01", "xenvg", "web-01-disk", 1, 12)
    assert disk == {"vg": "xenvg", "lv": "web-01-disk", "lv_dm": "xenvg-web--01--disk", "lv_path": "/dev/xenvg/web-01-disk",
                    "meta_lv": "web-01-disk.drbdmeta", "clone": "sl-web-01-1.real", "resource": "sl-web-01-1",
                    "minor": 12, "port": 7712, "device": "/dev/drbd12"}


def test_on_drbd_reads_the_recorded_tables(fixture_text):
    disk = rp.disk_names("fxm", "xenvg", "fxs-disk", 0, 90)
    assert rp.on_drbd(parse_table(fixture_text("dm", "1.02.185", "dmsetup-table-fxs-swapped.txt")), disk)   # 147:90
    assert not rp.on_drbd(parse_table(fixture_text("dm", "1.02.185", "dmsetup-table-fxs-before.txt")), disk)
    assert not rp.on_drbd(parse_table(fixture_text("dm", "1.02.185", "dmsetup-table-fxs-swapped.txt")),
                          rp.disk_names("fxm", "xenvg", "fxs-disk", 0, 91))


def test_resource_text_is_the_same_on_both_hosts(tmp_path, fake_module):
    source, _module, _log = replica(fake_module, {}, fxr_disk(), tmp_path, role="source")
    target, _module, _log = replica(fake_module, {}, fxr_disk(), tmp_path, role="target")
    assert source.resource_text() == target.resource_text()
    res = parse_resource(source.resource_text())
    assert [h["name"] for h in res["hosts"]] == ["hosta", "hostb"]
    assert res["hosts"][0] == {"name": "hosta", "node_id": None, "device": "/dev/drbd93", "disk": "/dev/mapper/xenvg-fxq--disk.real",
                               "meta_disk": "/dev/xenvg/mig1-disk.drbdmeta", "address": "10.77.0.11", "port": 7793}
    assert res["net"]["shared-secret"] == "s3cret" and res["disk"]["resync-rate"] == "400M"


def test_ensure_creates_metadata_and_brings_the_resource_up(fixture_text, fake_module, tmp_path):
    # meta LV, clone and res file there, the minor not up (proc-drbd-fxr-before-up): create-md, up
    tables = parse_tables(fixture_text("dm", "1.02.185", "remap-table-remapped.txt"))   # has xenvg-fxq--disk.real
    key, answer = lvs_result(fixture_text, "lvcreate-lvs-after.json")                   # has mig1-disk.drbdmeta
    outputs = {key: answer,
               ("drbdadm", "create-md", "--force", "fxr"): drbdadm_result(fixture_text, "create-md"),
               ("drbdadm", "up", "fxr"): drbdadm_result(fixture_text, "up")}
    rep, module, log = replica(fake_module, outputs, fxr_disk(), tmp_path)
    with open(rep.res_path, "w") as handle:
        handle.write(rep.resource_text())
    rep.ensure(tables, minors(fixture_text, "proc-drbd-fxr-before-up.txt"))
    assert [argv for argv, _kwargs in module.calls] == [list(key), ["drbdadm", "create-md", "--force", "fxr"],
                                                        ["drbdadm", "up", "fxr"]]
    assert module.calls[1][1]["data"] == "yes\n"   # create-md's question answered on stdin
    assert log.events == ["md-created:fxr", "up:fxr"]
    # a rerun with the minor up (proc-drbd-fxr-up) and create-md journaled: only lvs
    again, module, _log = replica(fake_module, {key: answer}, fxr_disk(), tmp_path, log=log)
    again.ensure(tables, minors(fixture_text, "proc-drbd-fxr-up.txt"))
    assert [argv for argv, _kwargs in module.calls] == [list(key)]


def test_ensure_refuses_an_lv_already_on_drbd_without_its_original_table(fixture_text, fake_module, tmp_path):
    tables = parse_tables(fixture_text("dm", "1.02.185", "dmsetup-table-swapped.txt"))   # xenvg-fxs--disk on 147:90
    key, answer = lvs_result(fixture_text, "lvcreate-lvs-after.json")
    disk = rp.disk_names("fxm", "xenvg", "mig1-disk", 0, 90)
    disk.update(lv_dm="xenvg-fxs--disk", size_bytes=32768 * 512)
    rep, module, log = replica(fake_module, {key: answer}, disk, tmp_path)
    with pytest.raises(rp.ReplicaError, match="already points at /dev/drbd90 but the journal has no original table"):
        rep.ensure(tables, minors(fixture_text, "proc-drbd-fxr-before-up.txt"))
    assert log.events == [] and "original_table" not in disk


def test_teardown_on_recorded_answers(fixture_text, fake_module, tmp_path):
    # the metadata LV stands for pvfx-snap here: its lvremove is the recorded one
    tables = parse_tables(fixture_text("dm", "1.02.185", "remap-table-remapped.txt"))
    lvs_key, lvs_answer = lvs_result(fixture_text, "lvcreate-lvs-snapshot.json")
    remove_key, remove_answer = dmsetup_result(fixture_text, "remap-remove.json")
    outputs = {("drbdadm", "down", "fxr"): drbdadm_result(fixture_text, "down"), remove_key: remove_answer,
               lvs_key: lvs_answer,
               ("lvremove", "-q", "-y", "xenvg/pvfx-snap"): (0, "", fixture_text("lvm", "2.03.16", "lvcreate-lvremove-snap.stderr"))}
    rep, module, log = replica(fake_module, outputs, fxr_disk(meta_lv="pvfx-snap"), tmp_path)
    with open(rep.res_path, "w") as handle:
        handle.write(rep.resource_text())
    rep.teardown(minors(fixture_text, "proc-drbd-fxr-up.txt"), tables)
    assert [argv for argv, _kwargs in module.calls] == [["drbdadm", "down", "fxr"], ["dmsetup", "remove", "xenvg-fxq--disk.real"],
                                                        list(lvs_key), ["lvremove", "-q", "-y", "xenvg/pvfx-snap"]]
    assert log.events == ["down:fxr", "clone-removed:fxr", "meta-removed:fxr", "resource-removed:fxr"]
    assert not os.path.exists(rep.res_path)
    # nothing left (proc-drbd-fxr-down, the recorded table listing without the clone): only lvs
    after = parse_tables(fixture_text("dm", "1.02.185", "remap-table-after.txt"))
    assert "xenvg-fxq--disk.real" not in after
    again, module, _log = replica(fake_module, {lvs_key: (0, fixture_text("lvm", "2.03.16", "lvcreate-lvs-after.json"), "")},
                                  fxr_disk(meta_lv="pvfx-snap"), tmp_path)
    again.teardown(minors(fixture_text, "proc-drbd-fxr-down.txt"), after)
    assert [argv for argv, _kwargs in module.calls] == [list(lvs_key)]


def test_remove_lv_refused_while_open_notes_nothing(fixture_text, fake_module, tmp_path):
    lvs_key, lvs_answer = lvs_result(fixture_text, "lvcreate-lvs-open.json")
    outputs = {lvs_key: lvs_answer,
               ("lvremove", "-q", "-y", "xenvg/pvfx-disk"): (5, "", fixture_text("lvm", "2.03.16", "lvcreate-lvremove-open.stderr"))}
    rep, module, log = replica(fake_module, outputs, fxr_disk(lv="pvfx-disk"), tmp_path)
    with pytest.raises(CommandError, match="Logical volume xenvg/pvfx-disk in use"):
        rep.remove_lv()
    assert log.events == []


def test_promote_gives_up_at_the_deadline_on_the_recorded_refusal(fixture_text, fake_module, tmp_path, monkeypatch):
    # 93 Secondary, WFConnection (proc-drbd-fxr-up): drbdadm primary refused (rc 17, recorded)
    monkeypatch.setattr(lm, "read_proc_drbd", lambda: parse_proc_drbd(fixture_text("drbd", "8.4.11", "proc-drbd-fxr-up.txt")))
    outputs = {("drbdadm", "primary", "fxr"): drbdadm_result(fixture_text, "primary-refused")}
    rep, module, log = replica(fake_module, outputs, fxr_disk(), tmp_path, clock=Clock(100.0))
    assert rep.promote(deadline=99.0) is False
    assert [argv for argv, _kwargs in module.calls] == [["drbdadm", "primary", "fxr"]] and log.events == []


def test_problems_of_the_recorded_states(fixture_text, fake_module, tmp_path):
    rep, _module, _log = replica(fake_module, {}, fxr_disk(), tmp_path)
    assert rep.problems(minors(fixture_text, "proc-drbd-fxr-up.txt")) == [
        "connection WFConnection", "disks Inconsistent/DUnknown", "16128 KiB out of sync"]
    assert rep.problems(minors(fixture_text, "proc-drbd-fxr-down.txt")) == ["down"]


def test_sync_item_of_a_recorded_sync(fixture_text, fake_module, tmp_path):
    # hosta, resource fxd (minor 90) syncing to hostb: proc-drbd-syncsource.txt
    disk = dict(fxr_disk(), resource="fxd", minor=90, device="/dev/drbd90")
    rep, _module, _log = replica(fake_module, {}, disk, tmp_path)
    state = rep.status(minors(fixture_text, "proc-drbd-syncsource.txt"))
    assert rep.sync_item(state) == {"resource": "fxd", "minor": 90, "cstate": "SyncSource", "disk": "UpToDate", "peer_disk": "Inconsistent",
                                    "percent": 67.4, "speed_kib_s": state["speed_kib_s"], "eta_s": state["sync_eta_s"]}
    assert state["speed_kib_s"] and state["sync_eta_s"]


def timed_out_connect(fixture_text):
    """drbdadm's rc 20 when it gave up on drbdsetup connect (recorded in the lab, two migrations at once)."""
    return (20, "", fixture_text("drbd-utils", "9.22.0", "drbdadm-connect-timed-out.stderr"))


def test_up_whose_connect_timed_out_goes_on_when_the_disk_is_attached(fixture_text, fake_module, tmp_path, monkeypatch):
    # up = attach + connect; drbdadm gave up on the connect after 5 s, yet the kernel connected
    # (the re-read /proc/drbd shows 200 WFConnection): the step goes on, no second connect
    tables = parse_tables(fixture_text("dm", "1.02.185", "remap-table-remapped.txt"))
    key, answer = lvs_result(fixture_text, "lvcreate-lvs-after.json")
    disk = fxr_disk(minor=200)
    outputs = {key: answer,
               ("drbdadm", "create-md", "--force", "fxr"): drbdadm_result(fixture_text, "create-md"),
               ("drbdadm", "up", "fxr"): timed_out_connect(fixture_text)}
    monkeypatch.setattr(lm, "read_proc_drbd",
                        lambda: parse_proc_drbd(fixture_text("drbd", "8.4.11", "proc-drbd-wfconnection-200.txt")))
    rep, module, log = replica(fake_module, outputs, disk, tmp_path)
    with open(rep.res_path, "w") as handle:
        handle.write(rep.resource_text())
    rep.ensure(tables, minors(fixture_text, "proc-drbd-fxr-before-up.txt"))
    assert [argv for argv, _kwargs in module.calls][1:] == [["drbdadm", "create-md", "--force", "fxr"], ["drbdadm", "up", "fxr"]]
    assert log.events == ["md-created:fxr", "up:fxr"]


def test_up_whose_connect_timed_out_connects_a_standalone_disk(fixture_text, fake_module, tmp_path, monkeypatch):
    # the kernel did not connect (200 StandAlone): connect again
    tables = parse_tables(fixture_text("dm", "1.02.185", "remap-table-remapped.txt"))
    key, answer = lvs_result(fixture_text, "lvcreate-lvs-after.json")
    reads = [fixture_text("drbd", "8.4.11", "proc-drbd-standalone.txt")] * 2 + [fixture_text("drbd", "8.4.11", "proc-drbd-wfconnection-200.txt")]
    monkeypatch.setattr(lm, "read_proc_drbd", lambda: parse_proc_drbd(reads.pop(0)))
    outputs = {key: answer,
               ("drbdadm", "create-md", "--force", "fxr"): drbdadm_result(fixture_text, "create-md"),
               ("drbdadm", "up", "fxr"): timed_out_connect(fixture_text),
               ("drbdadm", "connect", "fxr"): (0, "", "")}
    rep, module, log = replica(fake_module, outputs, fxr_disk(minor=200), tmp_path)
    with open(rep.res_path, "w") as handle:
        handle.write(rep.resource_text())
    rep.ensure(tables, minors(fixture_text, "proc-drbd-fxr-before-up.txt"))
    assert [argv for argv, _kwargs in module.calls][2:] == [["drbdadm", "up", "fxr"], ["drbdadm", "connect", "fxr"]]
    assert log.events == ["md-created:fxr", "connected:fxr", "up:fxr"]


def test_connect_tries_again_while_standalone_and_fails_on_other_errors(fixture_text, fake_module, tmp_path, monkeypatch):
    standalone = minors(fixture_text, "proc-drbd-standalone.txt")
    reads = [fixture_text("drbd", "8.4.11", "proc-drbd-wfconnection-200.txt")]
    monkeypatch.setattr(lm, "read_proc_drbd", lambda: parse_proc_drbd(reads.pop(0)))
    # the timed-out connect took: the re-read shows WFConnection, noted as connected, no second try
    rep, module, log = replica(fake_module, {("drbdadm", "connect", "fxr"): timed_out_connect(fixture_text)},
                               fxr_disk(minor=200), tmp_path)
    rep.connect(standalone)
    assert [argv for argv, _kwargs in module.calls] == [["drbdadm", "connect", "fxr"]] and log.events == ["connected:fxr"]
    # still StandAlone after every attempt: the last timeout is raised
    monkeypatch.setattr(lm, "read_proc_drbd", lambda: parse_proc_drbd(fixture_text("drbd", "8.4.11", "proc-drbd-standalone.txt")))
    rep, module, log = replica(fake_module, {("drbdadm", "connect", "fxr"): timed_out_connect(fixture_text)},
                               fxr_disk(minor=200), tmp_path)
    with pytest.raises(CommandError, match="did not terminate within 5 seconds"):
        rep.connect(standalone)
    assert len(module.calls) == 3 and log.events == []
    # any other failure at once (the recorded refusal of primary stands for one)
    rep, module, log = replica(fake_module, {("drbdadm", "connect", "fxr"): drbdadm_result(fixture_text, "primary-refused")},
                               fxr_disk(minor=200), tmp_path)
    with pytest.raises(CommandError):
        rep.connect(standalone)
    assert len(module.calls) == 1
