# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""livemigrate.HostSide with a fake Host: /proc/drbd states recorded with DRBD 8.4.11 (drbd/8.4.11),
dm tables recorded with dmsetup 1.02.185 (dm/1.02.185), xl list recorded with Xen 4.17.5 (xl/4.17.5),
a real Journal in tmp_path and a fake clock.

The disk is the recorded LV xenvg/fxs-disk (dmsetup-table-fxs-before.txt: on its extents,
dmsetup-table-fxs-swapped.txt: on 147:90) with DRBD minor 90, the minor of the recorded /proc/drbd
files; the VM is fxm, the domain of the recorded xl migrate (running on hosta before, on hostb after).
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import files
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.replica import disk_names, on_drbd
from ansible_collections.sanless.xen.plugins.module_utils.dm import parse_table, parse_tables, render_table
from ansible_collections.sanless.xen.plugins.module_utils.drbd import drbdadm_argv, parse_proc_drbd, parse_resource
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    SHARED_SSH_COMMAND, migrate_argv, parse_xl_list, parse_xl_list_long,
)

# xl migrate as the source runs it: through the shared connection to the target
XL_MIGRATE = "xl migrate -s %s fxm 10.77.0.12" % SHARED_SSH_COMMAND

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures")


def read_fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), encoding="utf-8") as handle:
        return handle.read()


def proc(name):
    return read_fixture("drbd", "8.4.11", "proc-drbd-%s.txt" % name)


def xl_list(name):
    return parse_xl_list(read_fixture("xl", "4.17.5", "xl-list-%s.txt" % name))


def proc_edited(name, old, new):
    """A recorded /proc/drbd with one line edited: NOT a recording, each caller says how it differs."""
    text = proc(name)
    assert old in text
    return text.replace(old, new)


# 90 is WFConnection Primary/Unknown in this recording (hosta, its peer StandAlone); edited to StandAlone,
# the state of the source right after disconnect and primary --force.
STANDALONE_PRIMARY = ("primary-standalone-peer", "90: cs:WFConnection ro:Primary/Unknown",
                      "90: cs:StandAlone ro:Primary/Unknown")

FXS_BEFORE = parse_table(read_fixture("dm", "1.02.185", "dmsetup-table-fxs-before.txt"))    # 0 32768 linear 254:16 559104
FXS_SWAPPED = parse_table(read_fixture("dm", "1.02.185", "dmsetup-table-fxs-swapped.txt"))  # 0 32768 linear 147:90 0
VM = "fxm"
SOURCE = {"vm": VM, "role": "source", "host_name": "hosta", "address": "10.77.0.11", "peer_name": "hostb",
          "peer_address": "10.77.0.12", "connect_timeout": 5}
TARGET = dict(SOURCE, role="target", host_name="hostb", address="10.77.0.12", peer_name="hosta", peer_address="10.77.0.11")


def dm_listing(fxs_table, clone=False):
    """The recorded ``dmsetup table`` listing of hosta (dmsetup-table-swapped.txt) with xenvg-fxs--disk set to
    the given (recorded) table, and, when clone, the clone the prepare step creates for it."""
    tables = parse_tables(read_fixture("dm", "1.02.185", "dmsetup-table-swapped.txt"))
    assert tables["xenvg-fxs--disk"] == FXS_SWAPPED
    tables["xenvg-fxs--disk"] = list(fxs_table)
    if clone:
        tables["sl-fxm-0.real"] = list(FXS_BEFORE)
    return tables


class FakeRunner(object):
    def __init__(self, check_mode=False):
        self.check_mode = check_mode


def _takes(seconds):
    """A command's run time on the fake clock (when the test uses it)."""
    if hasattr(lm.time, "sleeps"):     # conftest's SteppedClock (the clock fixture)
        lm.time.now += seconds


class FakeXen(object):
    def __init__(self, host):
        self.host = host

    def pause(self, vm):
        self.host.record("xl", "pause", vm)
        _takes(0.3)

    def unpause(self, vm):
        self.host.record("xl", "unpause", vm)
        _takes(0.3)

    def list_long(self, vm):
        self.host.record("xl", "list", "-l", vm)
        return [d for d in parse_xl_list_long(read_fixture("xl", "4.17.5", self.host.list_long_fixture)) if d["name"] == vm]

    def migrate(self, vm, address, config=None, shared_ssh=False):
        self.host.record(*migrate_argv("xl", vm, address, config=config, shared_ssh=shared_ssh))
        self.host.sent_config = config and open(config).read()
        if self.host.migrate_error:
            raise self.host.migrate_error


class FakeDm(object):
    def __init__(self, host):
        self.host = host
        self.inactive = {}

    def load(self, name, segments):
        self.host.record("dmsetup", "load", name, render_table(segments))
        if not self.host.runner.check_mode:
            self.inactive[name] = segments

    def resume(self, name, udev_sync=True):
        self.host.record(*(["dmsetup", "resume"] + ([] if udev_sync else ["--noudevsync"]) + [name]))
        if name in self.inactive:
            self.host.tables[name] = self.inactive.pop(name)

    def clear(self, name):
        self.host.record("dmsetup", "clear", name)
        self.inactive.pop(name, None)

    def create(self, name, segments):
        self.host.record("dmsetup", "create", name, render_table(segments))
        if not self.host.runner.check_mode:
            self.host.tables[name] = segments

    def remove(self, name):
        self.host.record("dmsetup", "remove", name)
        if not self.host.runner.check_mode:
            del self.host.tables[name]

    def swap_table(self, name, segments):
        raise AssertionError("HostSide does not use swap_table")


class FakeLvm(object):
    """lvm.Lvm's find/create/remove on the host's set of (vg, lv); calls recorded as "lvcreate VG LV BYTES"
    and "lvremove VG LV"."""

    def __init__(self, host):
        self.host = host

    def find(self, vg, lv):
        return {"vg": vg, "name": lv} if (vg, lv) in self.host.lvs else None

    def create(self, vg, lv, size_bytes):
        self.host.record("lvcreate", vg, lv, size_bytes)
        self.host.lvs.add((vg, lv))

    def remove(self, vg, lv):
        self.host.record("lvremove", vg, lv)
        self.host.lvs.discard((vg, lv))


class FakeHost(object):
    """livemigrate.Host with recorded state: ``procs`` is a list of /proc/drbd texts, one per drbd() call,
    the last one repeating; ``errors`` maps a drbdadm verb to the CommandErrors its next calls raise."""

    def __init__(self, procs, tables=None, domains=(), lvs=(), check_mode=False, peer_runs=False):
        self.runner = FakeRunner(check_mode)
        self.xen = FakeXen(self)
        self.dm = FakeDm(self)
        self.lvm = FakeLvm(self)
        self.procs = list(procs)
        self.tables = dict(tables or {})
        self.domain_list = list(domains)
        self.lvs = set(lvs)
        self.errors = {}
        self.peer_has_vm = peer_runs
        self.migrate_pid_answers = []
        self.domain_answers = []
        self.receive_pid_answers = []
        self.list_times = []
        self.migrate_error = None
        self.list_long_fixture = "xl-list-l-fxm.json"   # xl list -l: recorded on hosta, fxm running
        self.calls = []
        self.sent = {}

    def record(self, *call):
        self.calls.append(call)

    def commands(self, *programs):
        return [" ".join(str(part) for part in call) for call in self.calls if call[0] in programs]

    def domains(self):
        # ``domain_answers``: xl list states one per call (the last repeating), else domain_list
        self.list_times.append(lm.time.time())
        if self.domain_answers:
            self.domain_list = self.domain_answers.pop(0) if len(self.domain_answers) > 1 else self.domain_answers[0]
        return {d["name"]: d for d in self.domain_list}

    def drbd(self):
        text = self.procs.pop(0) if len(self.procs) > 1 else self.procs[0]
        return parse_proc_drbd(text)["minors"]

    def dm_tables(self):
        return dict(self.tables)

    def drbdadm(self, verb, resource, *options, **kwargs):
        self.record(*drbdadm_argv(verb, resource, *options))
        pending = self.errors.get(verb)
        if pending:
            raise pending.pop(0)

    def write_file(self, path, text, mode=0o600):
        self.record("write", path)
        if not self.runner.check_mode:
            with open(path, "w") as handle:
                handle.write(text)

    def send_file(self, address, path, text):
        self.record("send", address, path)
        self.sent[path] = text

    def settle_lv_paths(self, paths):
        self.record("settle", *paths)
        return []

    def settle_udev(self):
        self.record("udevadm", "settle")
        _takes(2.0)   # a busy udev: outside the pause window (the tests check pause_ms)

    def remove_file(self, path):
        self.record("remove", path)
        if not self.runner.check_mode:
            os.unlink(path)

    def peer_runs(self, address, vm):
        self.record("peer_runs", address, vm)
        return self.peer_has_vm

    def migrate_pids(self, vm):
        # xl migrate processes still running here: the test sets a list that empties after N looks
        return self.migrate_pid_answers.pop(0) if self.migrate_pid_answers else []

    def receive_pids(self):
        # xl migrate-receive processes here, one answer per look (the last repeating)
        self.record("receive_pids")
        if not self.receive_pid_answers:
            return []
        return self.receive_pid_answers.pop(0) if len(self.receive_pid_answers) > 1 else self.receive_pid_answers[0]


@pytest.fixture
def clock(lock_clock):
    """livemigrate's clock as conftest's SteppedClock from 1000 s (the times these tests expect): waits pass at
    once, .sleeps are the polls."""
    lock_clock.now = 1000.0
    return lock_clock


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    for name in ("drbd.d", "auto", "state"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(lm, "DRBD_CONF_DIR", str(tmp_path / "drbd.d"))
    monkeypatch.setattr(lm, "XEN_AUTO_DIR", str(tmp_path / "auto"))
    return tmp_path


def plain_disk(original=True):
    disk = disk_names(VM, "xenvg", "fxs-disk", 0, 90)
    disk["size_bytes"] = 32768 * 512
    if original:
        disk["original_table"] = render_table(FXS_BEFORE)
    return disk


def journal_for(dirs, role, mode="plain", events=(), disks=None):
    journal = lm.Journal(VM, str(dirs / "state"))
    if disks is None:
        disks = [{"resource": "fxd", "minor": 90, "device": "/dev/drbd90"}] if mode == "drbd" else [plain_disk()]
    journal.data = {"vm": VM, "id": "m1", "role": role, "source": "hosta", "target": "hostb", "disks": disks,
                    "secret": "s3cret", "owner": {}, "config_text": 'name = "fxm"\n', "mode": mode,
                    "log": [{"event": event, "at": 0} for event in events]}
    journal.save()
    return journal


def logged(journal):
    return [entry["event"] for entry in lm.Journal(VM, os.path.dirname(journal.dir)).load()["log"]]


# --------------------------------------------------------------------------- journal

def test_journal_passed_follows_the_steps(dirs, clock):
    assert lm.STEPS == ("prepare", "promote", "migrate", "finish")
    journal = journal_for(dirs, "source")
    assert not any(journal.passed(step) for step in lm.STEPS)
    journal.mark("step:prepare")
    assert not journal.passed("prepare")
    journal.mark("step:promote")
    assert journal.passed("prepare") and not journal.passed("promote")
    journal.mark("step:finish")
    assert journal.passed("prepare") and journal.passed("promote") and journal.passed("migrate")
    assert not journal.passed("finish")
    assert logged(journal) == ["step:prepare", "step:promote", "step:finish"]


# --------------------------------------------------------------------------- prepare (plain mode)

def test_source_prepare_order(dirs, clock):
    journal = journal_for(dirs, "source", disks=[plain_disk(original=False)])
    host = FakeHost(
        [proc("fxr-before-up"),      # no minor yet: create-md and up
         proc("wfconnection"),       # 90 WFConnection Secondary/Unknown Inconsistent: disconnect first
         proc_edited(*STANDALONE_PRIMARY),
         proc("syncsource")],        # 90 SyncSource Primary/Secondary: connected
        tables=dm_listing(FXS_BEFORE), domains=xl_list("migrate-source-before"), lvs=[("xenvg", "fxs-disk")])
    side = lm.HostSide(host, journal, SOURCE)
    side.prepare()
    res = os.path.join(str(dirs), "drbd.d", "sl-fxm-0.res")
    assert host.commands("lvcreate", "dmsetup", "drbdadm", "xl", "write", "udevadm") == [
        "lvcreate xenvg fxs-disk.drbdmeta 4194304",
        "dmsetup create sl-fxm-0.real 0 32768 linear 254:16 559104\n",
        "write " + res,
        "drbdadm create-md --force sl-fxm-0",
        "drbdadm up sl-fxm-0",
        "drbdadm disconnect sl-fxm-0",
        "drbdadm primary --force sl-fxm-0",
        "dmsetup load xenvg-fxs--disk 0 32768 linear /dev/drbd90 0\n",
        # udev works off its queue while the guest runs, and after it: under the pause only the kernel's swap
        "udevadm settle",
        "xl pause fxm",
        "dmsetup resume --noudevsync xenvg-fxs--disk",
        "xl unpause fxm",
        "udevadm settle",
        "drbdadm connect sl-fxm-0",
    ]
    assert journal.data["disks"][0]["original_table"] == "0 32768 linear 254:16 559104\n"
    with open(res) as handle:
        text = handle.read()
    assert "on hosta" in text and "on hostb" in text and "/dev/mapper/sl-fxm-0.real" in text
    assert logged(journal) == ["meta-created", "clone-created", "resource-written", "md-created:sl-fxm-0", "up:sl-fxm-0",
                               "primary-forced:sl-fxm-0", "pause", "unpause", "swapped-to-drbd", "connected:sl-fxm-0"]
    # the journaled window runs from the start of xl pause to the end of xl unpause (0.3 s each here)
    swap = [e for e in journal.data["log"] if e["event"] == "swapped-to-drbd"][0]
    paused = [e for e in journal.data["log"] if e["event"] in ("pause", "unpause")]
    assert paused[0]["at"] <= swap["pause_window"][0] and swap["pause_window"][1] <= paused[1]["at"] + 0.001  # rounded to ms
    assert swap["pause_ms"] == 600 == round((swap["pause_window"][1] - swap["pause_window"][0]) * 1000)

    # rerun on the state the first run left: the LV points at DRBD, nothing is paused or run again
    rerun = FakeHost([proc("syncsource")], tables=host.tables, domains=xl_list("migrate-source-before"), lvs=host.lvs)
    assert on_drbd(rerun.tables["xenvg-fxs--disk"], journal.data["disks"][0])
    side = lm.HostSide(rerun, journal, SOURCE)
    side.prepare()
    assert rerun.calls == [] and not side.changed


def test_source_prepare_rerun_on_the_recorded_swapped_table(dirs, clock):
    journal = journal_for(dirs, "source", events=["md-created:sl-fxm-0"])
    text = lm.HostSide(FakeHost([proc("syncsource")]), journal, SOURCE).replicas()[0].resource_text()
    with open(os.path.join(str(dirs), "drbd.d", "sl-fxm-0.res"), "w") as handle:
        handle.write(text)
    host = FakeHost([proc("syncsource")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-source-before"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, SOURCE).prepare()
    assert host.calls == []


def test_source_prepare_standalone_is_not_disconnected(dirs, clock):
    # killed after disconnect, before primary --force: no disconnect again
    # NOT recorded: wfconnection.txt with 90 edited to StandAlone (Secondary/Unknown)
    standalone = proc_edited("wfconnection", "90: cs:WFConnection ro:Secondary/Unknown", "90: cs:StandAlone ro:Secondary/Unknown")
    journal = journal_for(dirs, "source")
    host = FakeHost([standalone, proc_edited(*STANDALONE_PRIMARY)], tables=dm_listing(FXS_BEFORE, clone=True),
                    domains=xl_list("migrate-source-before"))
    lm.HostSide(host, journal, SOURCE)._swap_source_to_drbd()
    assert host.commands("drbdadm", "xl") == ["drbdadm primary --force sl-fxm-0", "xl pause fxm", "xl unpause fxm",
                                              "drbdadm connect sl-fxm-0"]


def test_pause_not_repeated_after_a_run_killed_while_paused(dirs, clock):
    # the journal's last pause event has no unpause and xl list shows the domain paused (recorded --p---)
    paused = [dict(d, name=VM) if d["name"] == "fxrec" else d for d in xl_list("paused")]
    journal = journal_for(dirs, "source", events=["primary-forced:sl-fxm-0", "pause"])
    host = FakeHost([proc_edited(*STANDALONE_PRIMARY)], tables=dm_listing(FXS_BEFORE, clone=True), domains=paused)
    lm.HostSide(host, journal, SOURCE)._swap_source_to_drbd()
    assert host.commands("xl") == ["xl unpause fxm"]
    assert logged(journal)[-3:] == ["unpause", "swapped-to-drbd", "connected:sl-fxm-0"]


# --------------------------------------------------------------------------- drbdadm_retry (replica, drbd.retry_transient)

def refused(code_and_text):
    # the recorded refusal (drbd-utils/9.22.0/drbdadm-primary-refused.*), with its state-change error edited in
    stderr = read_fixture("drbd-utils", "9.22.0", "drbdadm-primary-refused.stderr")
    recorded = "(-2) Need access to UpToDate data"
    assert recorded in stderr
    return CommandError(["drbdadm", "disconnect", "sl-fxm-0"], 17, "", stderr.replace(recorded, code_and_text))


def test_drbdadm_retry_on_transient_state(dirs, clock):
    host = FakeHost([proc("syncsource")])
    host.errors["disconnect"] = [refused("(-18) In transient state"), refused("(-18) In transient state")]
    lm.HostSide(host, journal_for(dirs, "source"), SOURCE).replicas()[0].drbdadm_retry("disconnect")
    assert host.commands("drbdadm") == ["drbdadm disconnect sl-fxm-0"] * 3
    assert clock.sleeps == [0.2, 0.2]


def test_drbdadm_retry_gives_up_on_other_errors(dirs, clock):
    host = FakeHost([proc("syncsource")])
    stderr = read_fixture("drbd-utils", "9.22.0", "drbdadm-primary-refused.stderr")  # recorded, (-2)
    host.errors["disconnect"] = [CommandError(["drbdadm", "disconnect", "sl-fxm-0"], 17, "", stderr)]
    with pytest.raises(CommandError) as info:
        lm.HostSide(host, journal_for(dirs, "source"), SOURCE).replicas()[0].drbdadm_retry("disconnect")
    assert "(-2) Need access to UpToDate data" in info.value.stderr
    assert host.commands("drbdadm") == ["drbdadm disconnect sl-fxm-0"] and clock.sleeps == []


def test_drbdadm_retry_gives_up_after_15_s(dirs, clock):
    host = FakeHost([proc("syncsource")])
    host.errors["disconnect"] = [refused("(-18) In transient state") for _i in range(200)]
    with pytest.raises(CommandError) as info:
        lm.HostSide(host, journal_for(dirs, "source"), SOURCE).replicas()[0].drbdadm_retry("disconnect")
    assert "(-18) In transient state" in info.value.stderr
    assert 1015 < clock.now <= 1015.5   # gave up once the 15 s deadline passed


# --------------------------------------------------------------------------- promote

@pytest.mark.parametrize("params,recorded,percent", [
    (SOURCE, "syncsource", 67.4),   # hosta: 90 SyncSource UpToDate/Inconsistent
    (TARGET, "synctarget", 75.6),   # hostb: 90 SyncTarget Inconsistent/UpToDate
])
def test_promote_waits_for_the_sync(dirs, clock, params, recorded, percent):
    journal = journal_for(dirs, params["role"])
    host = FakeHost([proc(recorded)], tables=dm_listing(FXS_BEFORE, clone=True))
    done, report = lm.HostSide(host, journal, params).promote(0)
    assert done is False
    assert report == [{"resource": "sl-fxm-0", "minor": 90, "cstate": proc(recorded).split("cs:")[2].split()[0],
                       "disk": "UpToDate" if recorded == "syncsource" else "Inconsistent",
                       "peer_disk": "Inconsistent" if recorded == "syncsource" else "UpToDate",
                       "percent": percent, "speed_kib_s": report[0]["speed_kib_s"], "eta_s": report[0]["eta_s"]}]
    assert report[0]["speed_kib_s"] and report[0]["eta_s"]
    assert host.calls == [] and logged(journal) == []   # two primaries not allowed yet


def test_promote_looks_at_a_long_sync_less_often(dirs, clock):
    # recorded: 90 SyncSource, finish 0:00:18 -> every 1.8 s; then UpToDate/UpToDate (recorded on hosta)
    journal = journal_for(dirs, "source")
    host = FakeHost([proc("syncsource"), proc("syncsource"), proc("syncsource"), proc("uptodate")])
    assert lm.HostSide(host, journal, SOURCE).promote(20)[0] is True
    assert clock.sleeps == [1.8, 1.8, 1.8]
    # the window ends within 0.5 s of its end (never a look sooner than 0.5 s after the last)
    host = FakeHost([proc("syncsource")])
    assert lm.HostSide(host, journal_for(dirs, "source"), SOURCE).promote(2)[0] is False
    assert clock.sleeps[3:] == [1.8, 0.5]


def test_prepare_watches_a_short_sync_to_its_end_changing_nothing(dirs, clock):
    # prepare's watch is wait_synced quiet; recorded on hostb: WFConnection (the source not connected yet),
    # SyncTarget (finish 0:00:16), then UpToDate
    journal = journal_for(dirs, "target")
    host = FakeHost([proc("wfconnection"), proc("synctarget"), proc("synctarget"), proc("uptodate")])
    synced, report = lm.HostSide(host, journal, TARGET).wait_synced(20, quiet=True)
    assert synced is True and [(item["disk"], item["peer_disk"]) for item in report] == [("UpToDate", "UpToDate")]
    assert clock.sleeps[0] == 0.5 and clock.sleeps[1] > 0.5   # linked: looks after a tenth of the ETA
    assert host.calls == [] and "synced" not in logged(journal)   # promote journals and judges it


def test_prepare_stops_watching_a_long_sync_after_the_window(dirs, clock):
    host = FakeHost([proc("syncsource")])
    synced, report = lm.HostSide(host, journal_for(dirs, "source"), SOURCE).wait_synced(5, quiet=True)
    assert synced is False and [item["cstate"] for item in report] == ["SyncSource"]
    assert 1005 <= clock.now < 1005.5 and host.calls == []


def test_prepare_waits_for_the_peer_then_a_window_from_the_link(dirs, clock):
    # the peer connects after 8 s of a 5 s window: the window counts from then
    host = FakeHost([proc("wfconnection")] * 16 + [proc("syncsource")])
    assert lm.HostSide(host, journal_for(dirs, "source"), SOURCE).wait_synced(5, quiet=True)[0] is False
    assert 1005 <= clock.now < 1005.5   # never linked: one window in all
    host = FakeHost([proc("wfconnection")] * 9 + [proc("syncsource")])
    clock.now = 1000.0
    assert lm.HostSide(host, journal_for(dirs, "source"), SOURCE).wait_synced(5, quiet=True)[0] is False
    assert 1009 <= clock.now < 1010.5


def test_prepare_watch_returns_at_once_when_a_disk_is_down_or_in_check_mode(dirs, clock):
    host = FakeHost([proc("fxr-down")])
    assert lm.HostSide(host, journal_for(dirs, "source"), SOURCE).wait_synced(20, quiet=True) == (False, [])
    host = FakeHost([proc("syncsource")], check_mode=True)
    assert lm.HostSide(host, journal_for(dirs, "source"), SOURCE).wait_synced(20, quiet=True) == (False, [])
    assert clock.sleeps == []


@pytest.mark.parametrize("recorded,error", [
    ("wfconnection", "lost its peer during the sync (WFConnection)"),
    ("fxr-down", "(minor 90) is down during the sync"),
])
def test_promote_wait_raises_where_the_prepare_watch_returns(dirs, clock, recorded, error):
    host = FakeHost([proc(recorded)])
    with pytest.raises(lm.MigrationError) as info:
        lm.HostSide(host, journal_for(dirs, "source"), SOURCE).wait_synced(5)
    assert error in info.value.msg and clock.sleeps == []


@pytest.mark.parametrize("etas,poll", [
    ([None], 0.5), ([2], 0.5), ([18], 1.8), ([18, 40], 4.0), ([3600], 5.0), ([], 0.5),
])
def test_sync_poll_follows_the_longest_eta(etas, poll):
    assert lm.sync_poll_s([{"eta_s": eta} for eta in etas]) == pytest.approx(poll)


def test_promote_source_allows_two_primaries_once(dirs, clock):
    journal = journal_for(dirs, "source")
    host = FakeHost([proc("uptodate")])   # hosta: 90 Connected Primary/Secondary UpToDate/UpToDate
    assert lm.HostSide(host, journal, SOURCE).promote(0)[0] is True
    assert host.commands("drbdadm", "dmsetup") == ["drbdadm net-options --allow-two-primaries=yes sl-fxm-0"]
    assert logged(journal) == ["synced", "two-primaries:sl-fxm-0"]
    again = FakeHost([proc("uptodate")])
    assert lm.HostSide(again, journal, SOURCE).promote(0)[0] is True
    assert again.calls == []


def test_promote_target_becomes_primary_and_swaps_its_lv(dirs, clock):
    journal = journal_for(dirs, "target")
    # hostb: 90 Connected Secondary/Primary UpToDate/UpToDate
    host = FakeHost([proc("uptodate-secondary")], tables=dm_listing(FXS_BEFORE, clone=True))
    host.errors["primary"] = [refused("(-1) Multiple primaries not allowed by config")]   # the source not yet
    done, report = lm.HostSide(host, journal, TARGET).promote(10)
    assert done is True and report[0]["disk"] == report[0]["peer_disk"] == "UpToDate"
    assert host.commands("drbdadm", "dmsetup", "xl") == [
        "drbdadm net-options --allow-two-primaries=yes sl-fxm-0",
        "drbdadm primary sl-fxm-0",
        "drbdadm primary sl-fxm-0",
        "dmsetup load xenvg-fxs--disk 0 32768 linear /dev/drbd90 0\n",
        "dmsetup resume xenvg-fxs--disk",
    ]
    assert clock.sleeps == [0.3]
    assert logged(journal) == ["synced", "two-primaries:sl-fxm-0", "primary:sl-fxm-0", "swapped-to-drbd:sl-fxm-0"]
    assert on_drbd(host.tables["xenvg-fxs--disk"], journal.data["disks"][0])


def test_promote_target_not_done_while_the_source_refuses_two_primaries(dirs, clock):
    journal = journal_for(dirs, "target")
    host = FakeHost([proc("uptodate-secondary")], tables=dm_listing(FXS_BEFORE, clone=True))
    host.errors["primary"] = [refused("(-1) Multiple primaries not allowed by config") for _i in range(100)]
    assert lm.HostSide(host, journal, TARGET).promote(0)[0] is False
    assert "primary:sl-fxm-0" not in logged(journal) and host.commands("dmsetup") == []


def test_promote_target_already_primary_on_the_recorded_swapped_table(dirs, clock):
    journal = journal_for(dirs, "target", events=["synced", "two-primaries:sl-fxm-0"])
    host = FakeHost([proc("dual-primary")], tables=dm_listing(FXS_SWAPPED, clone=True))
    assert lm.HostSide(host, journal, TARGET).promote(0)[0] is True
    assert host.calls == []


# --------------------------------------------------------------------------- migrate

def test_migrate_runs_xl_migrate(dirs, clock):
    journal = journal_for(dirs, "source")
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-before"))
    lm.HostSide(host, journal, SOURCE).migrate()
    assert host.commands("xl", "peer_runs") == [XL_MIGRATE]
    assert logged(journal) == ["migrate-started", "migrated"]


def test_migrate_failed_is_not_recorded_as_migrated(dirs, clock):
    journal = journal_for(dirs, "source")
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-before"))
    host.migrate_error = CommandError(["xl", "migrate", VM, "10.77.0.12"], 1, "", "migration failed")
    with pytest.raises(CommandError):
        lm.HostSide(host, journal, SOURCE).migrate()
    assert logged(journal) == ["migrate-started"]


def test_migrate_interrupted_asks_the_target(dirs, clock):
    journal = journal_for(dirs, "source", events=["migrate-started"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-after"), peer_runs=True)
    lm.HostSide(host, journal, SOURCE).migrate()
    assert host.commands("xl", "peer_runs") == ["peer_runs 10.77.0.12 fxm"]
    assert logged(journal) == ["migrate-started", "migrated"]
    assert journal.data["log"][-1]["confirmed_by"] == "xl list on the target"
    # and a rerun does not ask again
    again = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-after"))
    lm.HostSide(again, journal, SOURCE).migrate()
    assert again.calls == []


def test_rerun_waits_for_the_killed_runs_xl_migrate_then_finds_it_done(dirs, clock):
    # the controller was killed during xl migrate, which went on here: the rerun waits for
    # that process instead of starting a second one, then asks the target
    journal = journal_for(dirs, "source", events=["migrate-started"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-after"), peer_runs=True)
    host.migrate_pid_answers = [[4242], [4242], []]
    lm.HostSide(host, journal, SOURCE).migrate()
    assert host.commands("xl", "peer_runs") == ["peer_runs 10.77.0.12 fxm"]
    assert logged(journal) == ["migrate-started", "waited-for-xl-migrate", "migrated"]
    assert clock.sleeps == [1, 1]


def test_abort_waits_for_a_running_xl_migrate_and_refuses_when_it_moved_the_vm(dirs, clock):
    journal = journal_for(dirs, "source", events=["migrate-started"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-after"))
    host.migrate_pid_answers = [[4242], []]
    with pytest.raises(lm.MigrationError, match="no longer runs here"):
        lm.HostSide(host, journal, SOURCE).abort()
    assert clock.sleeps == [1]
    assert host.commands("drbdadm", "dmsetup", "xl") == []


def test_migrate_interrupted_and_not_on_the_target_raises(dirs, clock):
    journal = journal_for(dirs, "source", events=["migrate-started"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-after"), peer_runs=False)
    with pytest.raises(lm.MigrationError, match="fxm is neither here nor running on hostb after an interrupted xl migrate"):
        lm.HostSide(host, journal, SOURCE).migrate()
    assert host.commands("xl", "peer_runs") == ["peer_runs 10.77.0.12 fxm"]
    assert logged(journal) == ["migrate-started"]


def test_migrate_never_started_and_not_running(dirs, clock):
    journal = journal_for(dirs, "source")
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-after"), peer_runs=True)
    with pytest.raises(lm.MigrationError, match="domain fxm is not running here"):
        lm.HostSide(host, journal, SOURCE).migrate()
    assert host.calls == []


# --------------------------------------------------------------------------- finish (plain mode)

def migrated_source(dirs, events):
    journal = journal_for(dirs, "source", events=events)
    res = os.path.join(str(dirs), "drbd.d", "sl-fxm-0.res")
    cfg = os.path.join(str(dirs), "auto", "fxm.cfg")
    for path in (res, cfg):
        with open(path, "w") as handle:
            handle.write("x\n")
    host = FakeHost([proc("dual-primary")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-source-after"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    return journal, host, res, cfg


def test_source_finish_after_an_interrupted_migrate_unconfirmed_by_the_target_refuses(dirs, clock):
    # killed during xl migrate, the domain gone from here and not running on the target: nothing is removed
    journal, host, res, cfg = migrated_source(dirs, ["step:finish", "migrate-started"])
    with pytest.raises(lm.MigrationError, match="fxm is neither here nor running on hostb after an interrupted xl migrate"):
        lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("dmsetup", "drbdadm", "lvremove", "remove", "xl") == []
    assert os.path.exists(res) and os.path.exists(cfg)


def test_source_finish_runs_xl_migrate_first(dirs, clock):
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    host.domain_answers = [xl_list("migrate-source-before"), xl_list("migrate-source-after")]
    lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("xl", "drbdadm", "lvremove")[:3] == [
        XL_MIGRATE, "drbdadm down sl-fxm-0", "lvremove xenvg fxs-disk.drbdmeta"]
    # ownership moves first: the config goes to the target's state folder and leaves /etc/xen/auto
    # before xl migrate; the target's copy was verified in the same step, before and after
    assert logged(journal)[1:6] == ["config-sent", "config-parked", "migrate-started", "migrated", "target-verified"]
    assert host.commands("send") == ["send 10.77.0.12 /var/lib/sanless-xen/migrations/fxm.cfg.incoming"]
    assert host.sent["/var/lib/sanless-xen/migrations/fxm.cfg.incoming"] == "x\n"
    assert not os.path.exists(res) and not os.path.exists(cfg)
    assert not os.path.exists(os.path.join(str(dirs), "state", "migrations", "fxm.cfg"))


def test_source_finish_keeps_everything_when_xl_migrate_fails(dirs, clock):
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    host.domain_list = xl_list("migrate-source-before")
    host.migrate_error = CommandError(["xl", "migrate", VM, "10.77.0.12"], 1, "", "migration failed")
    with pytest.raises(CommandError):
        lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("dmsetup", "drbdadm", "lvremove", "remove") == []
    # the guest stays here: so does its ownership
    assert logged(journal) == ["step:finish", "config-sent", "config-parked", "migrate-started", "config-restored"]
    assert os.path.exists(cfg)


@pytest.mark.parametrize("events,params", [
    (["migrate-started", "migrated"], SOURCE),
    (["migrate-started"], dict(SOURCE, target_finished=True)),
])
def test_source_finish_after_the_migration(dirs, clock, events, params):
    journal, host, res, cfg = migrated_source(dirs, events)
    lm.HostSide(host, journal, params).finish()
    assert host.commands("dmsetup", "drbdadm", "lvremove", "remove", "xl") == [
        "dmsetup load xenvg-fxs--disk 0 32768 linear 254:16 559104\n",
        "dmsetup resume xenvg-fxs--disk",          # the VM is gone: no pause
        "drbdadm down sl-fxm-0",
        "dmsetup remove sl-fxm-0.real",
        "lvremove xenvg fxs-disk.drbdmeta",
        "remove " + res,
        "lvremove xenvg fxs-disk",
        "remove " + cfg,
    ]
    assert host.tables["xenvg-fxs--disk"] == FXS_BEFORE and "sl-fxm-0.real" not in host.tables


def test_source_finish_retries_down_while_the_target_takes_its_side_down(dirs, clock):
    # lab fault matrix (controller killed after the target's finish): the source's drbdadm down answered the
    # recorded "(-18) In transient state" once and its cleanup was left undone, the journal open
    journal, host, res, cfg = migrated_source(dirs, ["migrate-started", "migrated"])
    stderr = read_fixture("drbd-utils", "9.22.0", "drbdadm-down-transient.stderr")
    host.errors["down"] = [CommandError(["drbdadm", "down", "sl-fxm-0"], 11, "", stderr)]
    lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("drbdadm") == ["drbdadm down sl-fxm-0"] * 2 and clock.sleeps == [0.2]
    assert not os.path.exists(res) and not os.path.exists(cfg)


def test_source_finish_refuses_while_the_vm_runs_here(dirs, clock):
    journal, host, res, cfg = migrated_source(dirs, ["migrated"])
    host.domain_list = xl_list("migrate-source-before")
    with pytest.raises(lm.MigrationError, match="fxm still runs here; refusing to remove its disks"):
        lm.HostSide(host, journal, SOURCE).finish()
    assert host.calls == []


def test_target_finish_restores_under_pause_and_installs_the_config(dirs, clock):
    journal = journal_for(dirs, "target", events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    host = FakeHost([proc(name) for name in TARGET_FINISH_PROCS], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-target-after"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, TARGET).finish()
    cfg = os.path.join(str(dirs), "auto", "fxm.cfg")
    assert host.commands("dmsetup", "drbdadm", "xl", "lvremove", "write", "udevadm") == [
        "dmsetup load xenvg-fxs--disk 0 32768 linear 254:16 559104\n",
        # the arrived domain's device events are handled before the pause, the swap's own after it
        "udevadm settle", "xl pause fxm", "dmsetup resume --noudevsync xenvg-fxs--disk", "xl unpause fxm",
        "udevadm settle",
        "drbdadm down sl-fxm-0", "dmsetup remove sl-fxm-0.real", "lvremove xenvg fxs-disk.drbdmeta",
        "write " + cfg,
    ]
    with open(cfg) as handle:
        assert handle.read() == 'name = "fxm"\n'


def test_target_finish_swaps_back_once_the_source_took_its_side_down(dirs, clock):
    # issue 18: the swap back's flush stays on this host once the source, which verified this copy, left the pair
    journal = journal_for(dirs, "target", events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    host = FakeHost([proc("dual-primary")] * 3 + [proc("primary-standalone-peer")], tables=dm_listing(FXS_SWAPPED, clone=True),
                    domains=xl_list("migrate-target-after"), lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, TARGET).finish()
    assert clock.sleeps == [0.3, 0.3]
    left = [e for e in journal.data["log"] if e["event"] == "peer-left"]
    assert len(left) == 1 and left[0]["waited_s"] == 0.6
    assert logged(journal).index("peer-left") < logged(journal).index("tables-restored")
    assert host.commands("xl", "drbdadm") == ["xl pause fxm", "xl unpause fxm", "drbdadm down sl-fxm-0"]


def test_target_finish_swaps_back_connected_when_the_source_stays(dirs, clock):
    # a source that does not leave (slow, or its finish failed) costs the wait, nothing else: the swap goes ahead
    journal = journal_for(dirs, "target", events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    host = FakeHost([proc("dual-primary")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-target-after"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, TARGET).finish()
    stayed = [e for e in journal.data["log"] if e["event"] == "peer-still-connected"]
    assert len(stayed) == 1 and stayed[0]["waited_s"] >= lm.PEER_LEAVE_S and stayed[0]["drbd"] == ["sl-fxm-0"]
    # polled every 0.3 s until the 60 s passed (0.3 s steps add up to 60 s give or take a float's last digit)
    assert set(clock.sleeps) == {0.3} and lm.PEER_LEAVE_S <= sum(clock.sleeps) < lm.PEER_LEAVE_S + 0.6
    assert host.commands("xl", "drbdadm") == ["xl pause fxm", "xl unpause fxm", "drbdadm down sl-fxm-0"]
    assert "tables-restored" in logged(journal)


def test_target_finish_resumed_after_its_swap_back_does_not_wait(dirs, clock):
    # a finish rerun after the tables went back (killed before DRBD down): the flush is done, nothing to wait for
    journal = journal_for(dirs, "target", events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0",
                                                  "arrived", "tables-restored"])
    host = FakeHost([proc("dual-primary")], tables=dm_listing(FXS_BEFORE, clone=True), domains=xl_list("migrate-target-after"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, TARGET).finish()
    assert clock.sleeps == [] and "peer-left" not in logged(journal) and "peer-still-connected" not in logged(journal)
    assert host.commands("drbdadm") == ["drbdadm down sl-fxm-0"]


def test_check_mode_finish_leaves_the_journal_alone(dirs, clock):
    # check mode runs nothing (the runner skips it), and must not write the journal either
    journal = journal_for(dirs, "target", events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    with open(journal.path) as handle:
        before = handle.read()
    host = FakeHost([proc("dual-primary")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-target-after"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")], check_mode=True)
    side = lm.HostSide(host, journal, TARGET)
    side.finish()
    assert side.changed and "tables-restored" in side.events
    with open(journal.path) as handle:
        assert handle.read() == before


# --------------------------------------------------------------------------- storage mode drbd

def test_drbd_mode_prepare_checks_the_roles(dirs, clock):
    lm.HostSide(FakeHost([proc("uptodate")]), journal_for(dirs, "source", "drbd"), SOURCE).prepare()
    lm.HostSide(FakeHost([proc("uptodate-secondary")]), journal_for(dirs, "target", "drbd"), TARGET).prepare()
    with pytest.raises(lm.MigrationError, match="DRBD fxd is Secondary here, the source of a drbd-mode migration must be Primary"):
        lm.HostSide(FakeHost([proc("uptodate-secondary")]), journal_for(dirs, "source", "drbd"), SOURCE).prepare()
    with pytest.raises(lm.MigrationError, match=r"DRBD fxd \(minor 90\) is not configured here"):
        lm.HostSide(FakeHost([proc("fxr-down")]), journal_for(dirs, "target", "drbd"), TARGET).prepare()


def test_drbd_mode_promote_target_does_not_touch_dm(dirs, clock):
    journal = journal_for(dirs, "target", "drbd")
    host = FakeHost([proc("uptodate-secondary"), proc("uptodate-secondary"), proc("dual-primary")])
    assert lm.HostSide(host, journal, TARGET).promote(0)[0] is True
    assert host.commands("drbdadm", "dmsetup") == ["drbdadm net-options --allow-two-primaries=yes fxd", "drbdadm primary fxd"]


def test_drbd_mode_finish_source_demotes(dirs, clock):
    journal = journal_for(dirs, "source", "drbd", events=["two-primaries:fxd", "migrate-started", "migrated"])
    cfg = os.path.join(str(dirs), "auto", "fxm.cfg")
    with open(cfg, "w") as handle:
        handle.write('name = "fxm"\n')
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-after"))
    lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("drbdadm", "dmsetup", "xl", "remove") == [
        "drbdadm secondary fxd", "drbdadm net-options --allow-two-primaries=no fxd", "remove " + cfg]
    assert logged(journal)[-3:] == ["secondary:fxd", "one-primary:fxd", "config-removed"]
    assert clock.sleeps == []


def test_drbd_mode_finish_source_refuses_while_the_vm_runs_here(dirs, clock):
    journal = journal_for(dirs, "source", "drbd", events=["two-primaries:fxd", "migrate-started", "migrated"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-source-before"))
    with pytest.raises(lm.MigrationError, match="fxm still runs here; refusing to demote its disks"):
        lm.HostSide(host, journal, SOURCE).finish()
    assert host.calls == []


def test_drbd_mode_finish_target_waits_for_the_source_to_demote(dirs, clock):
    journal = journal_for(dirs, "target", "drbd", events=["two-primaries:fxd", "primary:fxd"])
    # dual-primary.txt: 90 Primary/Primary (the source not demoted yet); then uptodate.txt (hosta): 90 Primary/Secondary,
    # what a primary shows once its peer is secondary
    host = FakeHost([proc("dual-primary"), proc("dual-primary"), proc("dual-primary"), proc("uptodate")],
                    domains=xl_list("migrate-target-after"))
    lm.HostSide(host, journal, TARGET).finish()
    assert clock.sleeps == [0.3, 0.3, 0.3]
    cfg = os.path.join(str(dirs), "auto", "fxm.cfg")
    assert host.commands("drbdadm", "write") == ["drbdadm net-options --allow-two-primaries=no fxd", "write " + cfg]
    assert logged(journal)[-2:] == ["one-primary:fxd", "config-installed"]


def test_drbd_mode_finish_target_gives_up_while_the_source_stays_primary(dirs, clock):
    journal = journal_for(dirs, "target", "drbd", events=["two-primaries:fxd", "primary:fxd"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-target-after"))
    with pytest.raises(lm.MigrationError, match="the peer of DRBD fxd is still primary after 120 s"):
        lm.HostSide(host, journal, TARGET).finish()
    assert host.commands("drbdadm", "xl") == [] and 1120 < clock.now <= 1120.5


def test_drbd_mode_finish_target_refuses_without_the_vm(dirs, clock):
    journal = journal_for(dirs, "target", "drbd", events=["two-primaries:fxd"])
    host = FakeHost([proc("uptodate")], domains=xl_list("migrate-target-before"))
    with pytest.raises(lm.MigrationError, match="no incoming domain fxm--incoming within 90 s: xl migrate did not start on hosta"):
        lm.HostSide(host, journal, TARGET).finish()
    assert host.commands("xl", "drbdadm") == [] and 1090 < clock.now <= 1091


def test_drbd_mode_finish_source_migrates_then_demotes(dirs, clock):
    journal = journal_for(dirs, "source", "drbd", events=["two-primaries:fxd", "step:finish"])
    host = FakeHost([proc("dual-primary")])
    host.domain_answers = [xl_list("migrate-source-before"), xl_list("migrate-source-after")]
    lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("xl", "drbdadm") == [
        XL_MIGRATE, "drbdadm secondary fxd", "drbdadm net-options --allow-two-primaries=no fxd"]


# --------------------------------------------------------------------------- the target waits for the domain

# the target after the guest arrived: its local copy checked on the connected pair, then the source gone (it verified
# this copy and took its side down): what primary-standalone-peer.txt recorded on the side left primary
TARGET_FINISH_PROCS = ("dual-primary", "primary-standalone-peer")


def target_to_finish(dirs):
    journal = journal_for(dirs, "target", events=["two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    host = FakeHost([proc(name) for name in TARGET_FINISH_PROCS], tables=dm_listing(FXS_SWAPPED, clone=True),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    return journal, host


def test_target_waits_for_the_incoming_domain_to_be_renamed(dirs, clock):
    journal, host = target_to_finish(dirs)
    # xl list: nothing yet, then (receiver running) fxm--incoming, then fxm once the receiver is gone
    host.domain_answers = [xl_list("migrate-target-before"), xl_list("migrate-target-incoming"),
                           xl_list("migrate-target-incoming"), xl_list("migrate-target-after")]
    host.receive_pid_answers = [[], [4711]] + [[4711]] * 20 + [[]]
    lm.HostSide(host, journal, TARGET).finish()
    # /proc is looked at every 0.5 s, xl list only every 5 s while the receiver runs (t=0, 5, 10)
    # and once it is gone (t=11); then the restore looks at the domain before pausing it
    assert host.list_times == [1000.0, 1005.0, 1010.0, 1011.0, 1011.0]
    assert len(clock.sleeps) == 22 and set(clock.sleeps) == {0.5}
    arrived = [e for e in journal.data["log"] if e["event"] == "arrived"]
    assert len(arrived) == 1 and arrived[0]["waited_s"] == 11.0
    assert host.commands("xl")[:1] == ["xl pause fxm"]   # then its tables go back, under pause


def test_target_fails_when_the_incoming_domain_vanishes(dirs, clock):
    # xl migrate failed on the source: the receiver destroyed the incoming domain and exited
    journal, host = target_to_finish(dirs)
    host.domain_answers = [xl_list("migrate-target-incoming"), xl_list("migrate-target-before")]
    host.receive_pid_answers = [[4711], []]
    with pytest.raises(lm.MigrationError, match="the incoming domain fxm--incoming is gone and fxm does not run here: "
                                                "xl migrate failed \\(the domain keeps running on hosta\\)"):
        lm.HostSide(host, journal, TARGET).finish()
    assert host.commands("xl", "dmsetup", "drbdadm") == [] and host.tables["xenvg-fxs--disk"] == FXS_SWAPPED


def test_target_fails_when_the_incoming_domain_stays_without_a_receiver(dirs, clock):
    journal, host = target_to_finish(dirs)
    host.domain_list = xl_list("migrate-target-incoming")
    with pytest.raises(lm.MigrationError, match="fxm--incoming stays here without an xl migrate-receive"):
        lm.HostSide(host, journal, TARGET).finish()
    assert 1010 < clock.now <= 1011 and host.commands("xl", "dmsetup", "drbdadm") == []


def test_target_keeps_waiting_while_a_receiver_runs(dirs, clock):
    journal, host = target_to_finish(dirs)
    host.domain_list = xl_list("migrate-target-incoming")
    host.receive_pid_answers = [[4711]]
    with pytest.raises(lm.MigrationError, match="fxm still arriving after 3600 s"):
        lm.HostSide(host, journal, TARGET).finish()
    assert host.commands("xl", "dmsetup", "drbdadm") == [] and clock.now > 1000 + 3600


def test_drbd_mode_abort_demotes_the_target(dirs, clock):
    journal = journal_for(dirs, "target", "drbd", events=["two-primaries:fxd", "primary:fxd"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-target-before"), peer_runs=True)
    lm.HostSide(host, journal, TARGET).abort()
    assert host.commands("drbdadm") == ["drbdadm secondary fxd", "drbdadm net-options --allow-two-primaries=no fxd"]


def test_drbd_mode_abort_on_the_target_refused_unless_the_source_runs_the_vm(dirs, clock):
    # the target's copy may be the only up-to-date one: it is demoted only while the source is
    # seen running the guest
    journal = journal_for(dirs, "target", "drbd", events=["two-primaries:fxd", "primary:fxd"])
    host = FakeHost([proc("dual-primary")], domains=xl_list("migrate-target-before"), peer_runs=False)
    with pytest.raises(lm.MigrationError, match="cannot confirm that fxm runs on hosta"):
        lm.HostSide(host, journal, TARGET).abort()
    assert host.commands("drbdadm") == []


def test_drbd_mode_abort_source_waits_for_the_target(dirs, clock):
    journal = journal_for(dirs, "source", "drbd", events=["two-primaries:fxd"])
    host = FakeHost([proc("dual-primary"), proc("uptodate")], domains=xl_list("migrate-source-before"))
    lm.HostSide(host, journal, SOURCE).abort()
    assert host.commands("drbdadm") == ["drbdadm net-options --allow-two-primaries=no fxd"]
    assert clock.sleeps == [0.3]


@pytest.mark.parametrize("params,domains,message", [
    (SOURCE, "migrate-source-after", "fxm no longer runs here"),
    (TARGET, "migrate-target-after", r"fxm already runs \(or arrives\) here: abort refused"),
])
def test_drbd_mode_abort_refused_after_the_migration(dirs, clock, params, domains, message):
    journal = journal_for(dirs, params["role"], "drbd", events=["two-primaries:fxd"])
    host = FakeHost([proc("dual-primary")], domains=xl_list(domains))
    with pytest.raises(lm.MigrationError, match=message):
        lm.HostSide(host, journal, params).abort()
    assert host.calls == []


# --------------------------------------------------------------------------- step lock

def test_step_lock_waits_for_the_holder_then_times_out(tmp_path, clock):
    # flock conflicts between two open files even in one process: the first stands for a
    # killed run's step still running on the host
    holder = lm.StepLock(VM, str(tmp_path / "run"))
    assert holder.acquire() is False
    waiter = lm.StepLock(VM, str(tmp_path / "run"))
    with pytest.raises(lm.MigrationError, match="still holds .*fxm.lock after 5 s"):
        waiter.acquire(timeout=5, poll=1)
    assert clock.sleeps == [1] * 5   # runner.wait_until: gives up once the 5 s have passed
    holder.release()
    assert waiter.acquire(timeout=5) is False
    waiter.release()
    assert os.listdir(str(tmp_path / "run")) == ["fxm.lock"]


def test_named_host_locks_are_separate_and_check_mode_takes_none(tmp_path, clock):
    run = str(tmp_path / "run")
    host = lm.HostLock(run)
    assert host.acquire() is False
    # the domain build lock is another file: a build does not wait for a DRBD claim or an export change
    with lm.host_lock_held(False, run, timeout=5, name="domain-build") as build:
        assert build.path == os.path.join(run, "domain-build.lock") and clock.sleeps == []
        with pytest.raises(lm.MigrationError, match="still holds .*domain-build.lock after 5 s"):
            lm.HostLock(run, name="domain-build").acquire(timeout=5, poll=1)
        with lm.host_lock_held(True, run, timeout=5, name="domain-build") as unheld:
            assert unheld.fd is None  # check mode: no lock, no wait
    assert sorted(os.listdir(run)) == ["domain-build.lock", "host.lock"]
    host.release()
    with pytest.raises(lm.MigrationError, match="invalid VM name"):
        lm.HostLock(run, name="../host")  # a lock name is a file name under the lock dir


# --------------------------------------------------------------------------- xl processes from /proc

def fake_proc(tmp_path, fixture):
    """A /proc with the cmdline and stat files of the xl processes recorded on one dom0."""
    recorded = json.loads(read_fixture("xl", "4.17.5", fixture))
    tmp_path.mkdir()
    for pid, files in recorded.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(files["cmdline"].encode("utf-8"))
        (tmp_path / pid / "stat").write_text(files["stat"])
    (tmp_path / "self").mkdir()   # not a pid: skipped
    (tmp_path / "4242").mkdir()   # gone meanwhile (no cmdline): skipped
    return recorded, str(tmp_path)


def test_xl_processes_of_both_ends_during_and_after_xl_migrate(tmp_path):
    host = lm.Host(FakeRunner(), None)
    recorded, source = fake_proc(tmp_path / "source", "proc-xl-migrate-source.json")
    migrating = [int(pid) for pid, files in recorded.items() if files["cmdline"].split("\0")[1:3] == ["migrate", VM]]
    assert len(migrating) == 1 and len(recorded) == 2   # and the domain's own xl create monitor
    assert host.migrate_pids(VM, proc=source) == migrating
    assert host.migrate_pids("fxother", proc=source) == [] and host.receive_pids(proc=source) == []
    # the receiver, a child of the ssh session
    recorded, target = fake_proc(tmp_path / "target", "proc-xl-migrate-target.json")
    receiving = host.receive_pids(proc=target)
    assert len(receiving) == 1 and "migrate-receive" in recorded[str(receiving[0])]["cmdline"]
    assert host.migrate_pids(VM, proc=target) == []
    # after the move: the monitor the receiver left for the domain (same argv, parent init) is not a receiver
    recorded, after = fake_proc(tmp_path / "after", "proc-xl-migrated-target.json")
    assert len(recorded) == 1 and "migrate-receive" in list(recorded.values())[0]["cmdline"]
    assert host.receive_pids(proc=after) == []


# --------------------------------------------------------------------------- never the last copy (issue 11)

def test_journal_close_keeps_no_secret_and_knows_the_outcome(dirs, clock):
    journal = journal_for(dirs, "source")
    assert journal.ended("m1") is None
    journal.close("finished")
    history = os.path.join(str(dirs), "state", "history", "fxm-m1.json")
    with open(history) as handle:
        text = handle.read()
    assert "s3cret" not in text and "config_text" not in text
    assert lm.Journal(VM, str(dirs / "state")).ended("m1") == "finished"
    assert lm.Journal(VM, str(dirs / "state")).ended("other") is None


def test_journal_renames_are_made_durable_with_a_folder_fsync(dirs, clock, monkeypatch):
    # lab: a power cut of the target right after the migration left neither its journal nor its history, only
    # migrations/web01.json.tmp: the renames had not reached the disk
    # saves go through files.write_file_atomic (the one durable writer), the close's renames through fsync_dir
    synced = []
    real = files.fsync_dir

    def record(path):
        synced.append((path, sorted(os.listdir(path))))
        real(path)
    monkeypatch.setattr(files, "fsync_dir", record)
    monkeypatch.setattr(lm, "fsync_dir", record)
    journal = journal_for(dirs, "source")
    assert synced == [(journal.dir, ["fxm.json"])]
    del synced[:]
    journal.close("finished")
    history = os.path.join(os.path.dirname(journal.dir), "history")
    assert synced == [(journal.dir, ["fxm.json"]), (history, ["fxm-m1.json"]), (journal.dir, [])]


@pytest.mark.parametrize("name,problem", [
    ("syncsource", "sl-fxm-0 (minor 90): connection SyncSource, disks UpToDate/Inconsistent, 68352 KiB out of sync, peer Secondary"),
    ("uptodate", "sl-fxm-0 (minor 90): peer Secondary"),
    ("wfconnection", "sl-fxm-0 (minor 90): connection WFConnection, disks Inconsistent/DUnknown, 196352 KiB out of sync, peer Unknown"),
])
def test_xl_migrate_refused_unless_the_targets_copy_is_verified(dirs, clock, name, problem):
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    host.procs = [proc(name)]
    host.domain_list = xl_list("migrate-source-before")
    with pytest.raises(lm.MigrationError) as exc:
        lm.HostSide(host, journal, SOURCE).finish()
    assert "refusing xl migrate of fxm, the target's copy is not verified: " + problem in exc.value.msg
    assert host.commands("xl", "dmsetup", "drbdadm", "lvremove", "send") == []
    assert os.path.exists(cfg) and logged(journal) == ["step:finish"]


def test_source_keeps_its_copy_when_the_target_cannot_be_verified(dirs, clock):
    # xl migrate done, then the link went: DRBD lost the peer and the target does not answer
    journal, host, res, cfg = migrated_source(dirs, ["step:finish", "migrate-started", "migrated"])
    host.procs = [proc_edited("dual-primary", "90: cs:Connected ro:Primary/Primary ds:UpToDate/UpToDate",
                              "90: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown")]
    with pytest.raises(lm.MigrationError, match="cannot verify that hostb holds an up-to-date copy of fxm"):
        lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("dmsetup", "drbdadm", "lvremove", "remove") == []
    # the target answers (and took its DRBD down already): the copy is its, the source cleans up
    host.peer_has_vm = True
    lm.HostSide(host, journal, SOURCE).finish()
    assert "lvremove xenvg fxs-disk" in host.commands("lvremove")
    assert [e for e in lm.Journal(VM, str(dirs / "state")).load()["log"] if e["event"] == "target-verified"][0]["how"] \
        == "xl list on hostb"


def test_target_finish_refuses_to_drop_drbd_under_a_guest_on_a_stale_disk(dirs, clock):
    journal = journal_for(dirs, "target", events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    host = FakeHost([proc_edited("dual-primary", "90: cs:Connected ro:Primary/Primary ds:UpToDate/UpToDate",
                                 "90: cs:SyncTarget ro:Primary/Primary ds:Inconsistent/UpToDate")],
                    tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-target-after"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    with pytest.raises(lm.MigrationError, match="DRBD sl-fxm-0 is Inconsistent here while fxm runs here"):
        lm.HostSide(host, journal, TARGET).finish()
    assert host.commands("dmsetup", "drbdadm", "lvremove") == []


@pytest.mark.parametrize("domains,lvs,events,message", [
    # the VM arrived here meanwhile (a late prepare of a run that already finished)
    ("migrate-target-after", [("xenvg", "fxs-disk")], [], "fxm already runs here: refusing to prepare"),
    # an LV of that name that this migration did not create: perhaps the running guest's own
    ("migrate-target-before", [("xenvg", "fxs-disk")], [], "LV /dev/xenvg/fxs-disk exists here and this migration did not"),
])
def test_target_prepare_never_puts_a_sync_target_on_a_disk_in_use(dirs, clock, domains, lvs, events, message):
    journal = journal_for(dirs, "target", events=events)
    host = FakeHost([proc("fxr-before-up")], tables=dm_listing(FXS_BEFORE), domains=xl_list(domains), lvs=lvs)
    with pytest.raises(lm.MigrationError, match=message):
        lm.HostSide(host, journal, TARGET).prepare()
    assert host.commands("drbdadm", "dmsetup", "lvcreate") == []


def test_source_prepare_refused_when_the_vm_left(dirs, clock):
    journal = journal_for(dirs, "source", disks=[plain_disk(original=False)])
    host = FakeHost([proc("fxr-before-up")], tables=dm_listing(FXS_BEFORE), domains=xl_list("migrate-source-after"),
                    lvs=[("xenvg", "fxs-disk")])
    with pytest.raises(lm.MigrationError, match="fxm does not run here: refusing to prepare"):
        lm.HostSide(host, journal, SOURCE).prepare()
    assert host.commands("drbdadm", "dmsetup", "lvcreate") == []


def test_a_pause_left_by_a_killed_run_is_undone_once(dirs, clock):
    journal = journal_for(dirs, "source", events=["step:prepare", "pause"])
    paused = [dict(d, name="fxm") if d["name"] == "fxrec" else d for d in xl_list("paused")]
    host = FakeHost([proc("uptodate")], domains=paused)
    side = lm.HostSide(host, journal, SOURCE)
    side.ensure_unpaused()
    assert host.commands("xl") == ["xl unpause fxm"]
    assert logged(journal)[-2:] == ["unpause", "unpaused-after-kill"]
    side.ensure_unpaused()  # the journal now ends with our unpause: nothing more
    assert host.commands("xl") == ["xl unpause fxm"]


@pytest.mark.parametrize("events,peer_runs,message", [
    (["lv-created", "arrived"], True, "fxm arrived here earlier"),
    (["lv-created"], False, "cannot confirm that fxm runs on hosta"),
])
def test_target_abort_never_drops_what_may_be_the_last_copy(dirs, clock, events, peer_runs, message):
    journal = journal_for(dirs, "target", events=events)
    host = FakeHost([proc("wfconnection")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-target-before"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")], peer_runs=peer_runs)
    with pytest.raises(lm.MigrationError, match=message):
        lm.HostSide(host, journal, TARGET).abort()
    assert host.commands("drbdadm", "dmsetup", "lvremove") == []


def test_source_abort_clears_a_stale_inactive_table(dirs, clock):
    # killed between dmsetup load and resume: the live table is the original, the loaded DRBD
    # table holds /dev/drbd90 open; abort clears it before drbdadm down
    journal = journal_for(dirs, "source", events=["step:prepare", "primary-forced:sl-fxm-0"])
    host = FakeHost([proc("wfconnection")], tables=dm_listing(FXS_BEFORE, clone=True), domains=xl_list("migrate-source-before"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, SOURCE).abort()
    commands = host.commands("dmsetup", "drbdadm")
    assert commands[0] == "dmsetup clear xenvg-fxs--disk"
    assert commands.index("dmsetup clear xenvg-fxs--disk") < commands.index("drbdadm down sl-fxm-0")


# --------------------------------------------------------------------------- minors and ports claimed under a host lock

def test_claimed_resources_see_resource_files_proc_and_other_migrations(dirs, clock):
    with open(os.path.join(str(dirs), "drbd.d", "fxd.res"), "w") as handle:
        handle.write(read_fixture("drbd", "8.4.11", "fxd.res"))
    with open(os.path.join(str(dirs), "drbd.d", "broken.res"), "w") as handle:
        handle.write("not drbd {")
    other = lm.Journal("web02", str(dirs / "state"))
    other.data = {"vm": "web02", "id": "m2", "disks": [{"minor": 456, "port": 8156}], "log": []}
    other.save()
    journal_for(dirs, "source")  # this VM's own journal (minor 90) is no claim against itself
    minors, ports = lm.claimed_resources(str(dirs / "state"), str(dirs / "drbd.d"),
                                         parse_proc_drbd(proc("wfconnection"))["minors"], except_vm=VM)
    assert minors[10] == "/proc/drbd" and minors[456] == "the migration of web02"
    assert minors[90] == "/proc/drbd" and ports[7990].endswith("fxd.res")
    assert ports[8156] == "the migration of web02"
    problems = lm.claim_problems([{"minor": 456, "port": 8156}, {"minor": 457, "port": 8157}, {"minor": 458, "port": 8158}],
                                 minors, ports, listening=[8158])
    assert problems == ["DRBD minor 456 is held by the migration of web02", "port 8156 is held by the migration of web02",
                        "port 8158 is held by a listening socket"]
    assert lm.claim_problems([{"minor": 457, "port": 8157}], minors, ports, listening=[22]) == []


def test_a_long_step_renews_the_runs_lease(dirs, clock):
    # the sync wait saves the journal (updated_at, the lease another controller's run judges)
    # at most every 30 s, so a run syncing for longer than the lease is not taken over
    journal = journal_for(dirs, "source")
    journal.data["updated_at"] = clock.time() - 31
    journal.renew()
    assert lm.Journal(VM, str(dirs / "state")).load()["updated_at"] == clock.time()
    clock.sleep(10)
    journal.renew()  # renewed 10 s ago: no write
    assert lm.Journal(VM, str(dirs / "state")).load()["updated_at"] == clock.time() - 10
    clock.sleep(21)
    journal.renew()
    assert lm.Journal(VM, str(dirs / "state")).load()["updated_at"] == clock.time()


# --------------------------------------------------------------------------- the step table

ALL_ROWS = [(step, role, mode) for step in lm.STEPS for role in lm.ROLES for mode in lm.MODES]


@pytest.mark.parametrize("key", ALL_ROWS, ids=["-".join(key) for key in ALL_ROWS])
def test_every_step_has_an_action_a_check_and_an_undo(key):
    row = lm.STEP_TABLE[key]
    assert (row.step, row.role, row.mode) == key
    for text in (row.does, row.done_when, row.undo):
        assert isinstance(text, str) and text.strip()
    for name in (row.run, row.check, row.revert, row.refuse):
        assert callable(getattr(lm.HostSide, name, None)), "%s of %s names no HostSide method" % (name, key)
    assert row.events or row.step != "prepare" or row.mode == "drbd"


def test_the_table_has_exactly_one_row_per_step_role_and_mode():
    assert sorted(lm.STEP_TABLE) == sorted(ALL_ROWS)


def test_the_docs_are_the_table():
    with open(os.path.join(os.path.dirname(FIXTURES), "..", "..", "docs", "migration-steps.md")) as handle:
        text = handle.read()
    assert lm.steps_markdown() in text
    for row in lm.STEP_TABLE.values():
        assert "| %s | %s | %s |" % (row.step, row.role, row.does) in text


@pytest.mark.parametrize("role,mode", [(role, mode) for role in lm.ROLES for mode in lm.MODES])
def test_abort_checks_then_undoes_the_begun_steps_last_first(dirs, clock, monkeypatch, role, mode):
    # prepare and promote began here, migrate and finish did not: only the first two are undone,
    # promote's first, after every refusal was checked
    journal = journal_for(dirs, role, mode, events=["step:prepare", "step:promote"])
    calls = []
    for row in lm.STEP_TABLE.values():
        for name in (row.revert, row.refuse):
            monkeypatch.setattr(lm.HostSide, name, lambda self, name=name: calls.append(name))
    lm.HostSide(FakeHost([proc("dual-primary")]), journal, dict(SOURCE if role == "source" else TARGET)).abort()
    promote, prepare = lm.STEP_TABLE[("promote", role, mode)], lm.STEP_TABLE[("prepare", role, mode)]
    refusals = [n for n in (promote.refuse, prepare.refuse) if n]
    undos = [promote.revert] + ([prepare.revert] if prepare.revert != promote.revert else [])
    assert calls == sorted(set(refusals), key=refusals.index) + undos
    for step in ("migrate", "finish"):
        later = lm.STEP_TABLE[(step, role, mode)].revert
        if later not in undos:
            assert later not in calls


def test_abort_without_a_begun_step_changes_nothing(dirs, clock):
    journal = journal_for(dirs, "source")
    host = FakeHost([proc("dual-primary")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-source-after"))
    lm.HostSide(host, journal, SOURCE).abort()
    assert host.calls == [] and logged(journal) == []


def test_source_abort_after_a_failed_xl_migrate_takes_the_config_back_before_the_tables(dirs, clock):
    # the run was killed in finish, its xl migrate failed: the guest still runs here on DRBD
    events = ["step:prepare", "primary-forced:sl-fxm-0", "swapped-to-drbd", "step:promote", "two-primaries:sl-fxm-0",
              "step:finish", "config-sent", "config-parked", "migrate-started"]
    journal = journal_for(dirs, "source", events=events)
    parked = os.path.join(str(dirs), "state", "migrations", "fxm.cfg")
    with open(parked, "w") as handle:
        handle.write('name = "fxm"\n')
    host = FakeHost([proc("dual-primary")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-source-before"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, SOURCE).abort()
    log = logged(journal)
    # finish's and migrate's undo (the config back), then promote's (none), then prepare's
    assert log.index("config-restored") < log.index("tables-restored") < log.index("down:sl-fxm-0")
    assert os.path.exists(os.path.join(str(dirs), "auto", "fxm.cfg")) and not os.path.exists(parked)
    assert host.commands("xl", "dmsetup", "drbdadm", "lvremove") == [
        "dmsetup load xenvg-fxs--disk 0 32768 linear 254:16 559104\n",
        "xl pause fxm", "dmsetup resume --noudevsync xenvg-fxs--disk", "xl unpause fxm",
        "drbdadm down sl-fxm-0", "dmsetup remove sl-fxm-0.real", "lvremove xenvg fxs-disk.drbdmeta",
    ]
    assert ("xenvg", "fxs-disk") in host.lvs


def prepared_source(dirs, secret):
    """A source whose prepare is done (recorded: its LV on minor 90, SyncSource), its resource file written
    with the given secret."""
    journal = journal_for(dirs, "source", events=["step:prepare", "primary-forced:sl-fxm-0", "swapped-to-drbd"])
    host = FakeHost([proc("syncsource")], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-source-before"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    side = lm.HostSide(host, journal, SOURCE)
    rep = side.replicas()[0]
    rep.link["secret"] = secret
    with open(rep.res_path, "w") as handle:
        handle.write(rep.resource_text())
    return side, host, journal, rep.res_path


def test_resume_skips_a_step_whose_check_holds(dirs, clock):
    side, host, journal, _res = prepared_source(dirs, "s3cret")
    assert side.run("prepare") == ("held", None)
    assert host.calls == [] and logged(journal) == ["step:prepare", "primary-forced:sl-fxm-0", "swapped-to-drbd"]


def test_resume_runs_a_step_whose_check_does_not_hold(dirs, clock):
    # the resource file has another secret (a rekeyed resume): prepare runs and rewrites it
    side, host, journal, res = prepared_source(dirs, "old-secret")
    assert side.run("prepare") == ("ran", None)
    assert host.commands("write", "drbdadm") == ["write " + res, "drbdadm disconnect sl-fxm-0"]


def test_resume_of_a_step_a_later_one_passed_does_nothing(dirs, clock):
    journal = journal_for(dirs, "source", events=["step:prepare", "step:promote"])
    host = FakeHost([proc("wfconnection")], tables=dm_listing(FXS_BEFORE), domains=xl_list("migrate-source-before"))
    assert lm.HostSide(host, journal, SOURCE).run("prepare") == ("past", None)
    assert host.calls == [] and logged(journal) == ["step:prepare", "step:promote"]


@pytest.mark.parametrize("events,held", [
    (["step:promote", "synced", "two-primaries:fxd", "primary:fxd"], True),
    (["step:promote", "synced"], False),
])
def test_resumed_promote_reports_the_sync_whether_or_not_it_runs(dirs, clock, events, held):
    journal = journal_for(dirs, "target", "drbd", events=events)
    host = FakeHost([proc("dual-primary")])
    state, (done, report) = lm.HostSide(host, journal, dict(TARGET, sync_window=0)).run("promote")
    assert (state, done) == ("held" if held else "ran", True)
    assert [item["resource"] for item in report] == ["fxd"] and report[0]["disk"] == report[0]["peer_disk"] == "UpToDate"
    assert host.commands("drbdadm") == ([] if held else ["drbdadm net-options --allow-two-primaries=yes fxd"])


# --------------------------------------------------------------------------- a disk in another VG on the target
# The target's VG of fxs-disk is datavg; hosta's recorded tables stand in for hostb's, the LV's dm name
# renamed (datavg-fxs--disk: NOT recorded, the same table under the name dm gives datavg/fxs-disk).

def moved_disk(role, original=True):
    disk = disk_names(VM, "datavg" if role == "target" else "xenvg", "fxs-disk", 0, 90)
    disk.update(size_bytes=32768 * 512, source_vg="xenvg", target_vg="datavg")
    if original:
        disk["original_table"] = render_table(FXS_BEFORE)
    return disk


def datavg_listing(fxs_table, clone=False):
    tables = dm_listing(fxs_table, clone)
    tables["datavg-fxs--disk"] = tables.pop("xenvg-fxs--disk")
    return tables


def test_target_prepare_creates_the_lv_and_its_metadata_in_the_target_vg(dirs, clock):
    journal = journal_for(dirs, "target", disks=[moved_disk("target", original=False)])
    host = FakeHost([proc("fxr-before-up"), proc("synctarget")], tables=datavg_listing(FXS_BEFORE),
                    domains=xl_list("migrate-target-before"))
    lm.HostSide(host, journal, TARGET).prepare()
    res = os.path.join(str(dirs), "drbd.d", "sl-fxm-0.res")
    assert host.commands("lvcreate", "dmsetup", "drbdadm", "write") == [
        "lvcreate datavg fxs-disk 16777216",
        "lvcreate datavg fxs-disk.drbdmeta 4194304",
        "dmsetup create sl-fxm-0.real 0 32768 linear 254:16 559104\n",
        "write " + res,
        "drbdadm create-md --force sl-fxm-0",
        "drbdadm up sl-fxm-0",
    ]
    # each host's section names its own metadata LV; the source writes the same file
    with open(res) as handle:
        text = handle.read()
    assert [(h["name"], h["meta_disk"]) for h in parse_resource(text)["hosts"]] == [
        ("hosta", "/dev/xenvg/fxs-disk.drbdmeta"), ("hostb", "/dev/datavg/fxs-disk.drbdmeta")]
    source = lm.HostSide(FakeHost([proc("syncsource")]), journal_for(dirs, "source", disks=[moved_disk("source")]), SOURCE)
    assert source.replicas()[0].resource_text() == text


def test_target_abort_removes_what_it_made_in_the_target_vg(dirs, clock):
    journal = journal_for(dirs, "target", disks=[moved_disk("target")], events=["step:prepare", "up:sl-fxm-0"])
    journal.data["log"].insert(0, {"event": "lv-created", "lv": "fxs-disk", "at": 0})
    journal.save()
    host = FakeHost([proc("wfconnection"), proc("fxr-down")], tables=datavg_listing(FXS_BEFORE, clone=True),
                    domains=xl_list("migrate-target-before"), lvs=[("datavg", "fxs-disk"), ("datavg", "fxs-disk.drbdmeta"),
                                                                   ("xenvg", "fxs-disk")], peer_runs=True)
    lm.HostSide(host, journal, TARGET).abort()
    assert host.commands("lvremove", "drbdadm") == [
        "drbdadm down sl-fxm-0", "lvremove datavg fxs-disk.drbdmeta", "lvremove datavg fxs-disk"]
    assert host.lvs == {("xenvg", "fxs-disk")}   # an LV of that name in another VG is none of this migration's


def test_target_finish_swaps_back_without_pause_when_told(dirs, clock):
    # migrate_pause_domain=false reaches finish too: the target's swap back runs under the guest, unpaused
    journal = journal_for(dirs, "target", events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    host = FakeHost([proc(name) for name in TARGET_FINISH_PROCS], tables=dm_listing(FXS_SWAPPED, clone=True), domains=xl_list("migrate-target-after"),
                    lvs=[("xenvg", "fxs-disk"), ("xenvg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, dict(TARGET, pause_domain=False)).finish()
    assert host.commands("dmsetup", "xl", "udevadm")[:2] == [
        "dmsetup load xenvg-fxs--disk 0 32768 linear 254:16 559104\n", "dmsetup resume xenvg-fxs--disk"]
    assert host.commands("xl") == [] and "pause" not in logged(journal)
    restored = [e for e in journal.data["log"] if e["event"] == "tables-restored"][0]
    assert restored["pause_ms"] == 0


def test_target_finish_settles_the_lv_in_the_target_vg(dirs, clock):
    journal = journal_for(dirs, "target", disks=[moved_disk("target")],
                          events=["lv-created", "two-primaries:sl-fxm-0", "primary:sl-fxm-0"])
    host = FakeHost([proc(name) for name in TARGET_FINISH_PROCS], tables=datavg_listing(FXS_SWAPPED, clone=True),
                    domains=xl_list("migrate-target-after"), lvs=[("datavg", "fxs-disk"), ("datavg", "fxs-disk.drbdmeta")])
    lm.HostSide(host, journal, TARGET).finish()
    assert host.commands("dmsetup", "lvremove", "settle") == [
        "dmsetup load datavg-fxs--disk 0 32768 linear 254:16 559104\n", "dmsetup resume --noudevsync datavg-fxs--disk",
        "dmsetup remove sl-fxm-0.real", "lvremove datavg fxs-disk.drbdmeta", "settle /dev/datavg/fxs-disk"]


# the recorded domain config (xl/4.17.5/domu-fxrec.cfg) with fxrec renamed fxm and its disk fxs-disk: NOT recorded
FXM_CFG = read_fixture("xl", "4.17.5", "domu-fxrec.cfg").replace("fxrec-disk", "fxs-disk").replace("fxrec", "fxm")


@pytest.mark.parametrize("target_vg", ["xenvg", "datavg"])
def test_source_sends_the_config_with_the_target_vgs_paths_only_when_a_vg_differs(dirs, clock, target_vg):
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    journal.data["disks"][0].update(source_vg="xenvg", target_vg=target_vg)
    journal.save()
    with open(cfg, "w") as handle:
        handle.write(FXM_CFG)
    host.domain_answers = [xl_list("migrate-source-before"), xl_list("migrate-source-after")]
    lm.HostSide(host, journal, SOURCE).finish()
    incoming = host.sent["/var/lib/sanless-xen/migrations/fxm.cfg.incoming"]   # what the target's /etc/xen/auto gets
    outgoing = os.path.join(str(dirs), "state", "migrations", "fxm.cfg.outgoing")
    if target_vg == "xenvg":
        # the domain's own config goes (xl migrate without -C), and the file byte for byte to /etc/xen/auto
        assert host.commands("xl")[0] == XL_MIGRATE and host.sent_config is None
        assert incoming == FXM_CFG
    else:
        assert host.commands("xl")[:2] == ["xl list -l fxm", "xl migrate -C %s -s %s fxm 10.77.0.12" % (outgoing, SHARED_SSH_COMMAND)]
        # the paths in datavg, and the running domain's uuid (xl-list-l-fxm.json), which the file leaves to libxl
        assert host.sent_config == incoming == FXM_CFG.replace(
            "disk = [ 'phy:/dev/xenvg/fxs-disk,xvda,w' ]", 'disk = [ "phy:/dev/datavg/fxs-disk,xvda,w" ]') + \
            'uuid = "be57e07c-fdb4-46e1-a1b3-8d3ee65bea69"\n'
        assert "remove " + outgoing in host.commands("remove")
    assert not os.path.exists(outgoing)
    # the source removes its own disk, in its own VG
    assert host.commands("lvremove") == ["lvremove xenvg fxs-disk.drbdmeta", "lvremove xenvg fxs-disk"]


# the config xl-list-l-fxm-nics.derived.json stands for (NOT recorded, see xl/4.17.5/README)
FXM_VIFS = "vif = [ 'bridge=xenbr0', 'bridge=xenbr0,mac=00:16:3e:4c:01:09' ]\n"


def test_source_pins_the_macs_of_the_running_domain_in_the_config_it_sends(dirs, clock):
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    journal.data["disks"][0].update(source_vg="xenvg", target_vg="datavg")
    journal.save()
    with open(cfg, "w") as handle:
        handle.write(FXM_CFG + FXM_VIFS)
    host.domain_answers = [xl_list("migrate-source-before"), xl_list("migrate-source-after")]
    host.list_long_fixture = "xl-list-l-fxm-nics.derived.json"
    lm.HostSide(host, journal, SOURCE).finish()
    incoming = host.sent["/var/lib/sanless-xen/migrations/fxm.cfg.incoming"]
    assert host.sent_config == incoming
    assert incoming == FXM_CFG.replace(
        "disk = [ 'phy:/dev/xenvg/fxs-disk,xvda,w' ]", 'disk = [ "phy:/dev/datavg/fxs-disk,xvda,w" ]') + \
        'vif = [ "bridge=xenbr0,mac=00:16:3e:5a:c1:07", "bridge=xenbr0,mac=00:16:3e:4c:01:09" ]\n' + \
        'uuid = "be57e07c-fdb4-46e1-a1b3-8d3ee65bea69"\n'


def test_source_refuses_xl_migrate_c_when_the_macs_cannot_be_matched(dirs, clock):
    # the file has one vif without mac=, the running domain two nics: nothing moves, nothing is sent
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    journal.data["disks"][0].update(source_vg="xenvg", target_vg="datavg")
    text = FXM_CFG + "vif = [ 'bridge=xenbr0' ]\n"
    with open(cfg, "w") as handle:
        handle.write(text)
    host.domain_list = xl_list("migrate-source-before")
    host.list_long_fixture = "xl-list-l-fxm-nics.derived.json"
    with pytest.raises(lm.MigrationError, match=r"^hosta: the config of fxm for hostb .*: domain fxm: the config has 1 "
                                                r"vif\(s\), the running domain nics of devid 0, 1: which MAC"):
        lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("xl") == ["xl list -l fxm"] and host.commands("send", "write") == []
    with open(cfg) as handle:
        assert handle.read() == text
    assert "migrate-started" not in logged(journal)


def test_a_failed_xl_migrate_c_gives_the_source_its_own_config_back(dirs, clock):
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    journal.data["disks"][0].update(source_vg="xenvg", target_vg="datavg")
    with open(cfg, "w") as handle:
        handle.write(FXM_CFG)
    host.domain_list = xl_list("migrate-source-before")
    host.migrate_error = CommandError(["xl", "migrate", VM, "10.77.0.12"], 1, "", "migration failed")
    with pytest.raises(CommandError):
        lm.HostSide(host, journal, SOURCE).finish()
    with open(cfg) as handle:
        assert handle.read() == FXM_CFG
    assert not os.path.exists(os.path.join(str(dirs), "state", "migrations", "fxm.cfg.outgoing"))


def test_source_refuses_xl_migrate_to_another_vg_without_a_config_file(dirs, clock):
    journal, host, res, cfg = migrated_source(dirs, ["step:finish"])
    journal.data["disks"][0].update(source_vg="xenvg", target_vg="datavg")
    os.unlink(cfg)
    host.domain_list = xl_list("migrate-source-before")
    with pytest.raises(lm.MigrationError, match=r"\(xenvg/fxs-disk -> datavg\), so xl migrate must send a config"):
        lm.HostSide(host, journal, SOURCE).finish()
    assert host.commands("xl", "send") == [] and "migrate-started" not in logged(journal)
