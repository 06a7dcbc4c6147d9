# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.drbd_resource, run whole: /proc/drbd replayed from lab recordings (drbd/8.4.11),
the resource "fxd" of those recordings (minor 90, hosta 10.77.0.11 / hostb 10.77.0.12, port
7990, resync-rate 4M) and a res file folder in tmp_path.

/proc/drbd changes as the commands of the test "run": after ``drbdadm up fxd`` the file is the
recording taken right after that command in the lab, and so on.
"""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import drbd, runner
from ansible_collections.sanless.xen.plugins.modules import drbd_resource

LAB = ("drbd", "8.4.11")
FXD = {"name": "fxd", "minor": 90, "port": 7990, "disk": "/dev/xenvg/fxd-disk", "meta_disk": "/dev/xenvg/fxd-meta",
       "host_name": "hosta", "address": "10.77.0.11", "peer_name": "hostb", "peer_address": "10.77.0.12",
       "resync_rate": "4M"}
# The lab recordings have /proc/drbd and drbdadm dump, not yet the (empty on success) output of
# drbdadm up/primary/down/net-options: the module ignores it when rc is 0. The recorded
# outputs (record.py --phases resource) are replayed in test_drbd_resource_recorded.py.
OK_UNRECORDED = (0, "", "")
# Whose minor 90 is: drbdsetup show of DRBD 8.4, transcribed from drbd-utils 9.22.0 source and not
# recorded yet (fixtures/drbd-utils/9.22.0/README): fxd. The module asks once per run when
# /proc/drbd lists its minor.
UTILS = ("drbd-utils", "9.22.0")
SHOW90 = drbd.drbdsetup_show_argv(90)


def argv(verb, *options):
    return ["drbdadm", verb] + list(options) + ["fxd"]


def without_minor(text, minor):
    """A recorded /proc/drbd with the lines of one minor removed: what it showed before that
    minor was configured (the other minors' lines are the recording's)."""
    out, skip = [], False
    for line in text.splitlines(True):
        match = re.match(r"^\s*(\d+): cs:", line)
        if match:
            skip = int(match.group(1)) == minor
        elif not line.startswith((" ", "\t")):
            skip = False
        if not skip:
            out.append(line)
    return "".join(out)


class FakeTime(object):
    """time for DrbdResource.wait: sleep() advances the clock and moves /proc/drbd on."""

    def __init__(self, host):
        self.now = 1000.0
        self.host = host

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        if self.host.during_wait:
            self.host.set_proc(self.host.during_wait.pop(0) if len(self.host.during_wait) > 1 else self.host.during_wait[0])


class Host(object):
    def __init__(self, tmp_path, fixture_text, module_main):
        self.conf = tmp_path / "drbd.d"
        self.conf.mkdir()
        self.proc_path = tmp_path / "proc-drbd"
        self.fixture_text = fixture_text
        self.module_main = module_main
        self.after = {}  # argv tuple -> /proc/drbd text once that command ran
        self.during_wait = []

    def recorded(self, name, folder=LAB):
        return self.fixture_text(*folder + (name,))

    def set_proc(self, text):
        if text is None:
            if self.proc_path.exists():
                self.proc_path.unlink()
        else:
            self.proc_path.write_text(text)

    def res_file(self):
        return self.conf / "fxd.res"

    def put_res(self, text, name="fxd"):
        path = self.conf / ("%s.res" % name)
        path.write_text(text)
        os.chmod(str(path), 0o600)

    def run(self, args, outputs=None, check_mode=False, diff=False):
        outputs = dict(outputs or {})
        outputs.setdefault(tuple(SHOW90), (0, self.recorded("drbdsetup-show-90.txt", UTILS), ""))
        return self.module_main(drbd_resource.main, dict(args, conf_dir=str(self.conf)), outputs, check_mode, diff)


@pytest.fixture
def host(tmp_path, fixture_text, module_main, monkeypatch):
    lab = Host(tmp_path, fixture_text, module_main)
    monkeypatch.setattr(drbd, "PROC_DRBD", str(lab.proc_path))
    fake_time = FakeTime(lab)
    monkeypatch.setattr(drbd, "time", fake_time)
    monkeypatch.setattr(runner, "time", fake_time)  # runner.wait_until, the modules' one wait loop
    original = runner.CommandRunner.run

    def run(self, cmd, **kwargs):
        result = original(self, cmd, **kwargs)
        if not result.skipped and tuple(cmd) in lab.after:
            lab.set_proc(lab.after[tuple(cmd)])
        return result
    monkeypatch.setattr(runner.CommandRunner, "run", run)
    return lab


# --------------------------------------------------------------------------- up

def test_new_resource_up_writes_the_recorded_res_file(host):
    host.set_proc(without_minor(host.recorded("proc-drbd-wfconnection.txt"), 90))
    host.after[tuple(argv("up"))] = host.recorded("proc-drbd-wfconnection.txt")
    result, failed, calls = host.run(dict(FXD, create_md=False), {tuple(argv("up")): OK_UNRECORDED}, diff=True)
    assert not failed, result
    assert result["changed"] is True
    assert calls == [argv("up")]
    assert result["cmds"] == [argv("up")] and result["would_run"] == []
    # the file the lab recording ran with, byte for byte, mode 0600
    assert host.res_file().read_text() == host.recorded("fxd.res")
    assert stat.S_IMODE(os.stat(str(host.res_file())).st_mode) == 0o600
    assert result["res_file"] == str(host.res_file())
    assert result["version"] == "8.4"
    assert result["metadata"] == "not checked"
    assert result["resource"] == {"name": "fxd", "minor": 90, "up": True, "cstate": "WFConnection", "role": "Secondary",
                                  "peer_role": "Unknown", "disk": "Inconsistent", "peer_disk": "DUnknown",
                                  "sync_percent": None, "speed_kib_s": None, "sync_eta_s": None}
    assert result["synced"] is False
    assert result["diff"]["before"] == "" and result["diff"]["after"] == host.recorded("fxd.res")


def test_second_run_changes_nothing(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run(dict(FXD, role="primary", force=True, allow_two_primaries=None))
    assert not failed, result
    assert result["changed"] is False
    # one read-only question (whose minor 90 is), asked once although the state is read twice
    assert calls == [SHOW90] and result["cmds"] == [SHOW90] and result["would_run"] == []
    assert result["synced"] is True
    assert (result["resource"]["role"], result["resource"]["peer_role"], result["resource"]["cstate"]) == (
        "Primary", "Secondary", "Connected")
    assert "diff" not in result


def test_check_mode_predicts_and_runs_nothing(host):
    host.set_proc(without_minor(host.recorded("proc-drbd-wfconnection.txt"), 90))
    result, failed, calls = host.run(dict(FXD, role="primary", force=True), check_mode=True, diff=True)
    assert not failed, result
    assert result["changed"] is True
    assert calls == []  # not even get-gi: drbdadm could not read a res file that is not written yet
    assert result["would_run"] == [argv("create-md", "--force"), argv("up"), argv("primary", "--force")]
    assert result["metadata"] == "unknown"
    assert not host.res_file().exists()
    assert result["resource"]["up"] is False
    assert result["diff"]["after"] == host.recorded("fxd.res")


def test_primary_force_on_inconsistent_starts_the_sync(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-connected-inconsistent.txt"))
    force = argv("primary", "--force")
    host.after[tuple(force)] = host.recorded("proc-drbd-syncsource.txt")
    result, failed, calls = host.run(dict(FXD, role="primary", force=True), {tuple(force): OK_UNRECORDED})
    assert not failed, result
    assert result["changed"] and calls == [SHOW90, force]
    view = result["resource"]
    assert (view["cstate"], view["role"], view["disk"], view["peer_disk"]) == (
        "SyncSource", "Primary", "UpToDate", "Inconsistent")
    assert (view["sync_percent"], view["speed_kib_s"], view["sync_eta_s"]) == (67.4, 3692, 18)
    assert result["synced"] is False


# web03's disk (minor 100) on its home after the provision of make test at stop 30: the forced
# promotion met a connection both sides had just made on fresh metadata, and DRBD 8.4 started no
# sync (wip/drbd-initial-sync-race/). drbdsetup show 100 and the sync that invalidate-remote
# started were recorded on the lab's web03 later.
WEB03 = {"name": "web03-disk", "minor": 100, "port": 7800, "disk": "/dev/xenvg/web03-disk",
         "meta_disk": "/dev/xenvg/web03-disk_meta", "host_name": "hosta", "address": "10.77.0.11",
         "peer_name": "hostb", "peer_address": "10.77.0.12", "shared_secret": "lab-only-web03-secret"}
SHOW100 = drbd.drbdsetup_show_argv(100)


def web03_argv(verb, *options):
    return ["drbdadm", verb] + list(options) + ["web03-disk"]


def run_web03(host, outputs=None, check_mode=False):
    host.put_res(host.recorded("web03-disk.res"), name="web03-disk")
    outputs = dict(outputs or {})
    outputs[tuple(SHOW100)] = (0, host.recorded("drbdsetup-show-100.txt", UTILS), "")
    return host.module_main(drbd_resource.main, dict(WEB03, role="primary", force=True, conf_dir=str(host.conf)),
                            outputs, check_mode, False)


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", *LAB)) if n.startswith("proc-drbd")))
def test_only_the_recorded_stuck_state_counts_as_a_sync_that_never_starts(host, name):
    minors = drbd.parse_proc_drbd(host.recorded(name))["minors"]
    stuck = sorted(minor for minor, state in minors.items() if drbd.initial_sync_stuck(state))
    assert stuck == ([100] if name == "proc-drbd-connected-no-resync.txt" else [])
    if name in ("proc-drbd-syncsource.txt", "proc-drbd-uptodate.txt", "proc-drbd-connected-inconsistent.txt"):
        assert not any(drbd.no_sync_running(state) for state in minors.values())


def test_a_sync_that_never_started_is_started_with_invalidate_remote(host):
    host.set_proc(host.recorded("proc-drbd-connected-no-resync.txt"))
    host.during_wait = [host.recorded("proc-drbd-connected-no-resync.txt")]
    invalidate = web03_argv("invalidate-remote")
    host.after[tuple(invalidate)] = host.recorded("proc-drbd-web03-syncsource.txt")
    result, failed, calls = run_web03(host, {tuple(invalidate): OK_UNRECORDED})
    assert not failed, result
    assert calls == [SHOW100, invalidate] and result["changed"] is True
    view = result["resource"]
    assert (view["cstate"], view["role"], view["disk"], view["peer_disk"]) == (
        "SyncSource", "Primary", "UpToDate", "Inconsistent")
    # DRBD had INITIAL_SYNC_GRACE seconds to start it by itself
    assert drbd.time.now == 1000.0 + drbd.INITIAL_SYNC_GRACE
    # a second run finds the sync running and changes nothing
    result, failed, calls = run_web03(host)
    assert not failed and result["changed"] is False and calls == [SHOW100]


def test_a_sync_that_starts_within_the_grace_is_left_alone(host):
    host.set_proc(host.recorded("proc-drbd-connected-no-resync.txt"))
    host.during_wait = [host.recorded("proc-drbd-web03-syncsource.txt")]
    result, failed, calls = run_web03(host)
    assert not failed, result
    assert calls == [SHOW100] and result["changed"] is False


def test_check_mode_names_invalidate_remote_and_runs_nothing(host):
    host.set_proc(host.recorded("proc-drbd-connected-no-resync.txt"))
    result, failed, calls = run_web03(host, check_mode=True)
    assert not failed, result
    assert calls == [SHOW100] and result["would_run"] == [web03_argv("invalidate-remote")]


def test_force_is_not_used_on_an_uptodate_disk(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate-secondary.txt"))
    primary = argv("primary")
    host.after[tuple(primary)] = host.recorded("proc-drbd-dual-primary.txt")
    result, failed, calls = host.run(dict(FXD, role="primary", force=True), {tuple(primary): OK_UNRECORDED})
    assert not failed, result
    assert calls == [SHOW90, primary]
    assert (result["resource"]["role"], result["resource"]["peer_role"]) == ("Primary", "Primary")


def test_primary_without_force(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-connected-inconsistent.txt"))
    result, failed, calls = host.run(dict(FXD, role="primary"), check_mode=True)
    assert not failed and result["would_run"] == [argv("primary")] and calls == [SHOW90]


def test_secondary_when_primary(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run(dict(FXD, role="secondary"), check_mode=True)
    assert not failed and result["changed"] and result["would_run"] == [argv("secondary")]


def test_already_secondary_is_left_alone(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate-secondary.txt"))
    result, failed, calls = host.run(dict(FXD, role="secondary"))
    assert not failed and not result["changed"] and calls == [SHOW90]


def test_allow_two_primaries_on_a_running_resource(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    net = argv("net-options", "--allow-two-primaries=yes")
    result, failed, calls = host.run(dict(FXD, allow_two_primaries=True), {tuple(net): OK_UNRECORDED}, diff=True)
    assert not failed, result
    assert calls == [SHOW90, net] and result["changed"]
    assert "allow-two-primaries yes;" in host.res_file().read_text()
    assert "allow-two-primaries yes;" in result["diff"]["after"] and "allow-two" not in result["diff"]["before"]
    again, failed, calls = host.run(dict(FXD, allow_two_primaries=True))
    assert not failed and not again["changed"] and calls == [SHOW90]
    back = argv("net-options", "--allow-two-primaries=no")
    result, failed, calls = host.run(dict(FXD, allow_two_primaries=False), {tuple(back): OK_UNRECORDED})
    assert not failed and calls == [SHOW90, back]
    assert "allow-two-primaries no;" in host.res_file().read_text()


def test_resync_rate_on_a_running_resource(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-syncsource.txt"))
    disk = argv("disk-options", "--c-plan-ahead=0", "--resync-rate=400M")
    result, failed, calls = host.run(dict(FXD, resync_rate="400M"), {tuple(disk): OK_UNRECORDED})
    assert not failed, result
    assert calls == [SHOW90, disk]
    assert "disk { c-plan-ahead 0; resync-rate 400M; }" in host.res_file().read_text()


def test_other_changes_on_a_running_resource_warn(host, monkeypatch):
    warnings = []
    monkeypatch.setattr(drbd_resource.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run(dict(FXD, peer_address="10.77.0.13"))
    assert not failed and result["changed"] and calls == [SHOW90]
    assert "10.77.0.13:7990" in host.res_file().read_text()
    assert len(warnings) == 1 and "drbdadm adjust" in warnings[0]


def test_mode_of_an_existing_res_file_is_fixed(host):
    host.put_res(host.recorded("fxd.res"))
    os.chmod(str(host.res_file()), 0o644)
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run(FXD)
    assert not failed and result["changed"] and calls == [SHOW90]
    assert stat.S_IMODE(os.stat(str(host.res_file())).st_mode) == 0o600


def test_secret_is_in_the_file_only(host):
    secret = "fx-Secret-0123"
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run(dict(FXD, shared_secret=secret), diff=True)
    assert not failed, result
    assert calls == [SHOW90]  # a running resource gets a new secret at the next adjust (the module warns)
    text = host.res_file().read_text()
    assert "cram-hmac-alg sha256; shared-secret %s;" % secret in text
    assert stat.S_IMODE(os.stat(str(host.res_file())).st_mode) == 0o600
    assert secret not in json.dumps(result)
    assert "shared-secret ********;" in result["diff"]["after"]


def test_port_defaults_to_7700_plus_minor(host):
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    args = dict(FXD)
    del args["port"]
    result, failed, calls = host.run(args, check_mode=True, diff=True)
    assert not failed and "address 10.77.0.11:7790;" in result["diff"]["after"]


def test_minor_of_the_module_not_loaded(host):
    # no /proc/drbd: the drbd module is not loaded, so nothing is up
    host.set_proc(None)
    result, failed, calls = host.run(dict(FXD, create_md=False), {tuple(argv("up")): OK_UNRECORDED})
    assert not failed and calls == [argv("up")]
    assert result["resource"]["up"] is False and result["version"] == "8.4"


class Exit(Exception):
    def __init__(self, result, failed):
        super(Exit, self).__init__(result)
        self.result, self.failed = result, failed


def test_failure_of_a_command_is_reported_with_cmd_rc_stdout_stderr(host, monkeypatch):
    """drbd-utils missing: run_command raises, the runner makes it rc 127 and fail_json gets cmd/rc/stdout/stderr."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def missing(self, args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory: 'drbdadm'")

    def exit_json(self, **kwargs):
        raise Exit(kwargs, False)

    def fail_json(self, **kwargs):
        raise Exit(kwargs, True)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", missing)
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    host.set_proc(without_minor(host.recorded("proc-drbd-wfconnection.txt"), 90))
    with patch_module_args(dict(FXD, create_md=False, conf_dir=str(host.conf))):
        with pytest.raises(Exit) as info:
            drbd_resource.main()
    assert info.value.failed
    result = info.value.result
    assert result["cmd"] == argv("up") and result["rc"] == 127
    assert result["stdout"] == "" and "No such file" in result["stderr"]
    assert result["msg"].startswith("cannot run drbdadm")


# --------------------------------------------------------------------------- down / absent

def test_down(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    host.after[tuple(argv("down"))] = without_minor(host.recorded("proc-drbd-uptodate.txt"), 90)
    result, failed, calls = host.run(dict(FXD, state="down"), {tuple(argv("down")): OK_UNRECORDED})
    assert not failed and result["changed"] and calls == [SHOW90, argv("down")]
    assert result["resource"]["up"] is False and host.res_file().exists()
    again, failed, calls = host.run(dict(FXD, state="down"))
    assert not failed and not again["changed"] and calls == []


def test_absent(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    host.after[tuple(argv("down"))] = without_minor(host.recorded("proc-drbd-uptodate.txt"), 90)
    result, failed, calls = host.run({"name": "fxd", "minor": 90, "state": "absent"},
                                     {tuple(argv("down")): OK_UNRECORDED}, diff=True)
    assert not failed and result["changed"] and calls == [SHOW90, argv("down")]
    assert not host.res_file().exists()
    assert result["diff"]["after"] == "" and result["diff"]["before"] == host.recorded("fxd.res")
    again, failed, calls = host.run({"name": "fxd", "minor": 90, "state": "absent"})
    assert not failed and not again["changed"] and calls == []


def test_absent_without_res_file_uses_drbdsetup(host):
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run({"name": "fxd", "minor": 90, "state": "absent"}, check_mode=True)
    assert not failed and result["would_run"] == [["drbdsetup", "down", "fxd"]]


def test_absent_check_mode_keeps_the_file(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(without_minor(host.recorded("proc-drbd-uptodate.txt"), 90))
    result, failed, calls = host.run({"name": "fxd", "minor": 90, "state": "absent"}, check_mode=True)
    assert not failed and result["changed"] and result["would_run"] == [] and host.res_file().exists()


# --------------------------------------------------------------------------- wait

def test_wait_returns_when_synced(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-syncsource.txt"))
    host.during_wait = [host.recorded("proc-drbd-syncsource.txt"), host.recorded("proc-drbd-uptodate.txt")]
    result, failed, calls = host.run(dict(FXD, role="primary", wait=True, wait_window=20))
    assert not failed, result
    assert result["synced"] is True and result["changed"] is False
    assert result["resource"]["disk"] == result["resource"]["peer_disk"] == "UpToDate"


def test_wait_window_ends_with_progress(host):
    host.put_res(host.recorded("fxd.res"))
    host.set_proc(host.recorded("proc-drbd-syncsource.txt"))
    host.during_wait = [host.recorded("proc-drbd-syncsource.txt")]
    result, failed, calls = host.run(dict(FXD, wait=True, wait_window=3))
    assert not failed and result["synced"] is False
    assert drbd.time.now >= 1003.0  # it did wait the window
    assert (result["resource"]["sync_percent"], result["resource"]["sync_eta_s"]) == (67.4, 18)


def test_wait_fails_early_when_standalone(host, fixture_text):
    # the one StandAlone recording: DRBD 8.3.7, minor 0 (same /proc/drbd format for this line)
    host.set_proc(fixture_text("drbd", "8.3.7", "proc-drbd-standalone.txt"))
    args = dict(FXD, minor=0, port=7700)
    host.put_res(drbd.resource_text(dict(args, state="up"), "8.4"))
    result, failed, calls = host.run(dict(args, wait=True, wait_window=20))
    assert failed
    assert "StandAlone" in result["msg"] and "hostb" in result["msg"]
    assert drbd.time.now == 1000.0  # at once, not after the window


# --------------------------------------------------------------------------- a minor of another resource

# /proc/drbd of 8.4 has no resource names: minor 90 of proc-drbd-uptodate.txt is fxd's, as
# drbdsetup show says. A resource "fxr" configured with minor 90 must not take it for its own.
@pytest.mark.parametrize("change", [{}, {"role": "secondary"}, {"role": "primary", "force": True},
                                    {"state": "down"}, {"allow_two_primaries": True}])
@pytest.mark.parametrize("check_mode", [False, True])
def test_minor_of_another_resource_is_refused_before_any_change(host, change, check_mode):
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run(dict(FXD, name="fxr", **change), check_mode=check_mode)
    assert failed, result
    assert "minor 90 is used by resource fxd, not fxr" in result["msg"]
    assert calls == [SHOW90] and result["would_run"] == []
    assert list(host.conf.iterdir()) == []


def test_unconfigured_minor_of_another_resource_is_refused(host):
    # minor 91 made by "drbdsetup new-minor fxu 91 0": cs:Unconfigured, but fxu's all the same
    host.set_proc(host.recorded("proc-drbd-new-minor.txt"))
    show91 = drbd.drbdsetup_show_argv(91)
    outputs = {tuple(show91): (0, host.recorded("drbdsetup-show-91.txt", UTILS), "")}
    result, failed, calls = host.run(dict(FXD, minor=91, port=7991), outputs)
    assert failed, result
    assert "minor 91 is used by resource fxu, not fxd" in result["msg"]
    assert calls == [show91] and list(host.conf.iterdir()) == []


def test_absent_with_the_minor_of_another_resource_only_removes_its_file(host):
    host.put_res(drbd.resource_text(dict(FXD, name="fxr", state="up"), "8.4"), name="fxr")
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run({"name": "fxr", "minor": 90, "state": "absent"})
    assert not failed, result
    assert result["changed"] and calls == [SHOW90]  # fxd is not taken down
    assert list(host.conf.iterdir()) == []
    assert result["resource"]["up"] is False


def test_free_minor_is_not_looked_up(host):
    host.set_proc(without_minor(host.recorded("proc-drbd-wfconnection.txt"), 90))
    result, failed, calls = host.run(dict(FXD, create_md=False), {tuple(argv("up")): OK_UNRECORDED}, check_mode=True)
    assert not failed and calls == [] and result["would_run"] == [argv("up")]


def test_kernel_without_resource_names_warns(host, fixture_text, monkeypatch):
    warnings = []
    monkeypatch.setattr(drbd_resource.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    host.set_proc(fixture_text("drbd", "8.3.7", "proc-drbd-connected.txt"))
    args = dict(FXD, minor=0, port=7700)
    host.put_res(drbd.resource_text(dict(args, state="up"), "8.4"))
    result, failed, calls = host.run(args)
    assert not failed and calls == []  # drbdsetup show of 8.3 names no resource: not asked
    assert warnings == ["DRBD 8.3.7 kernels do not name their resources: minor 0 is taken to be fxd's"]


# --------------------------------------------------------------------------- DRBD 9

# Not a recording: the version line of /proc/drbd of DRBD 9 (which lists no minors), as in
# test_drbd.py; the resources come from drbd/9.x/drbdsetup-status.json.
PROC_DRBD9 = "version: 9.2.4 (api:2/proto:86-122)\n"
STATUS9 = ["drbdsetup", "status", "--json"]
R9 = {"name": "1-single-0", "minor": 2, "port": 7002, "disk": "/dev/vg/r0", "meta_disk": "/dev/vg/r0-meta",
      "host_name": "node2", "address": "10.0.0.2", "peer_name": "SLE15-sp1-gm-drbd1145296-node1",
      "peer_address": "10.0.0.1"}


def test_drbd9_running_resource(host, fixture_text):
    host.set_proc(PROC_DRBD9)
    status = {tuple(STATUS9): (0, fixture_text("drbd", "9.x", "drbdsetup-status.json"), "")}
    result, failed, calls = host.run(dict(R9, role="secondary"), status)
    assert not failed, result
    assert result["version"] == "9"
    # only the res file was written; the state is read before and after
    assert result["changed"] is True and calls == [STATUS9, STATUS9]
    text = (host.conf / "1-single-0.res").read_text()
    assert "node-id 0;" in text and "connection-mesh { hosts SLE15-sp1-gm-drbd1145296-node1 node2; }" in text
    assert result["resource"]["cstate"] == "Established" and result["synced"] is True
    again, failed, calls = host.run(dict(R9, role="secondary"), status)
    assert not failed and again["changed"] is False and calls == [STATUS9]


def test_drbd9_minor_of_another_resource(host, fixture_text):
    host.set_proc(PROC_DRBD9)
    status = {tuple(STATUS9): (0, fixture_text("drbd", "9.x", "drbdsetup-status.json"), "")}
    result, failed, calls = host.run(dict(R9, name="web01"), status)
    assert failed and "minor 2 is used by resource 1-single-0, not web01" in result["msg"]
    assert calls == [STATUS9]
    assert not (host.conf / "web01.res").exists()


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("change, text", [
    ({"name": "fxd;reboot"}, "invalid resource name"),
    ({"name": "fx d"}, "invalid resource name"),
    ({"name": "$(id)"}, "invalid resource name"),
    ({"name": "-fxd"}, "invalid resource name"),
    ({"name": "../fxd"}, "invalid resource name"),
    ({"minor": -1}, "minor -1 out of range"),
    ({"minor": 1048576}, "minor 1048576 out of range"),
    ({"port": 0}, "port 0 out of range"),
    ({"port": 70000}, "port 70000 out of range"),
    ({"port": None, "minor": 65000}, "give port"),
    ({"state": "down", "role": "primary"}, "role=primary needs state=up"),
    ({"force": True}, "force=true only applies with role=primary"),
    ({"state": "down", "wait": True}, "wait=true needs state=up"),
    ({"progress_interval": 31}, "progress_interval 31"),
    ({"wait_window": 26}, "wait_window 26"),
    ({"address": "10.77.0.300"}, "address must be an IPv4 address"),
    ({"peer_address": "hostb"}, "peer_address must be an IPv4 address"),
    ({"peer_address": "10.77.0.11"}, "peer_address must differ"),
    ({"peer_name": "hosta"}, "peer_name must differ"),
    ({"host_name": "host a"}, "invalid host_name"),
    ({"disk": "/dev/xenvg/x;rm"}, "disk must be a block device path"),
    ({"meta_disk": "internal"}, "meta_disk must be a block device path"),
    ({"meta_disk": "/dev/xenvg/fxd-disk"}, "meta_disk must differ"),
    ({"disk": "/dev/../etc/passwd"}, "disk must be a block device path"),
    ({"resync_rate": "fast"}, "resync_rate"),
])
def test_bad_input_fails_before_anything_runs(host, change, text):
    host.set_proc(host.recorded("proc-drbd-uptodate.txt"))
    result, failed, calls = host.run(dict(FXD, **change))
    assert failed and text in result["msg"], result
    assert calls == [] and list(host.conf.iterdir()) == []


def test_bad_secret_is_not_echoed(host):
    result, failed, calls = host.run(dict(FXD, shared_secret="two words"))
    assert failed and "shared_secret must be" in result["msg"] and "two words" not in result["msg"]
    assert calls == []


def test_up_needs_the_devices_and_peer(host):
    result, failed, calls = host.run({"name": "fxd", "minor": 90})
    assert failed and "disk" in result["msg"] and calls == []
