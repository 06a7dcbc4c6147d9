# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared test helpers: recorded fixtures and a fake AnsibleModule that replays them."""

from __future__ import annotations

import json
import os
import time

import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def read_fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), encoding="utf-8") as handle:
        return handle.read()


def recorded_run(fixture_text, where, name):
    """(rc, stdout, stderr) of the recording <where>/<name>.rc/.out/.err, as a Replay output."""
    return (int(fixture_text(*where + (name + ".rc",)).strip()), fixture_text(*where + (name + ".out",)),
            fixture_text(*where + (name + ".err",)))


def lio_configfs_tree(root, name, password="labsecret12345"):
    """Make the recorded LIO configfs tree targetcli/2.1.53/<name>.json (iscsi.read_lio_configfs run on a lab dom0)
    again under root, as folders, files and links; a password recorded as set gets `password` as its text. Returns
    root, for iscsi.LIO_CONFIGFS."""
    tree = json.loads(read_fixture("targetcli", "2.1.53", name + ".json"))
    os.makedirs(str(root), exist_ok=True)
    for rel, value in sorted(tree.items()):
        path = os.path.join(str(root), rel)
        if value is None:
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            continue  # made by an earlier call
        if value.startswith("-> "):
            os.symlink(value[3:], path)
        else:
            with open(path, "w") as handle:
                handle.write(password + "\n" if rel.endswith("/auth/password") and value == "<set>" else value)
    return root


def _lvm_words(argv):
    """An LVM command line compared by meaning: without -q (which only quiets LVM's notices) and with
    the sizes after -L and -I as byte counts (the recorder typed 16m, the collection writes 16777216b)."""
    from ansible_collections.sanless.xen.plugins.module_utils.lvm import parse_size
    words = []
    for i, word in enumerate(argv):
        if word == "-q":
            continue
        words.append(parse_size(word.rstrip("b") if word.endswith("b") and word[:-1].isdigit() else word)
                     if i and argv[i - 1] in ("-L", "-I") else word)
    return words


def recorded_capture(fixture_text, where, name, argv):
    """(rc, stdout, stderr) of a recorded command <where>/<name> (JSON with argv, rc, stdout, stderr),
    as the Replay output of argv; fails the test unless the recorded command is argv (see _lvm_words)."""
    data = json.loads(fixture_text(*where + (name,)))
    assert _lvm_words(data["argv"]) == _lvm_words(argv), "%s recorded %r, not %r" % (name, data["argv"], argv)
    return (data["rc"], data["stdout"], data["stderr"])


def without_wipe(argv):
    """An lvcreate of the collection as the lvmsnap recorder ran it: without "-W y -Z y" (a new LV on
    fresh loop PVs has nothing to wipe, and -Z y is LVM's default); the rest is the same."""
    at = argv.index("-W")
    assert argv[at:at + 4] == ["-W", "y", "-Z", "y"]
    return argv[:at] + argv[at + 4:]


def lvs_report_with(fixture_text, *names):
    """The recorded lvs report of xenvg (lvm 2.03.16), its first LVs renamed to names, as a Replay output."""
    data = json.loads(fixture_text("lvm", "2.03.16", "lvs-domu.json"))
    rows = data["report"][0]["lv"][:len(names)]
    for row, name in zip(rows, names):
        row.update(lv_name=name, lv_path="/dev/xenvg/%s" % name, lv_dm_path="/dev/mapper/xenvg-%s" % name)
    data["report"][0]["lv"] = rows
    return (0, json.dumps(data), "")


@pytest.fixture
def fixture_text():
    """fixture_text("xl", "4.17.5", "xl-list.txt") -> the recorded text."""
    return read_fixture


class FakeModule(object):
    """Stands in for AnsibleModule: run_command replays outputs by argv and records calls.

    ``outputs`` maps tuple(argv) to (rc, stdout, stderr); unknown argv fail the test.
    ``tools`` is the set of program names get_bin_path finds.
    """

    def __init__(self, outputs=None, check_mode=False, tools=None):
        self.outputs = dict(outputs or {})
        self.check_mode = check_mode
        self.tools = set(tools or [])
        self.calls = []
        self.warnings = []

    def run_command(self, args, **kwargs):
        self.calls.append((list(args), kwargs))
        key = tuple(args)
        if key not in self.outputs:
            raise AssertionError("unexpected command %r" % (args,))
        result = self.outputs[key]
        if isinstance(result, BaseException):
            raise result
        return result

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/sbin/%s" % name if name in self.tools else None

    def warn(self, msg):
        self.warnings.append(msg)


@pytest.fixture
def fake_module():
    return FakeModule


class ModuleExit(Exception):
    """exit_json/fail_json of a module run whole in a test: carries the result."""

    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(result)
        self.result = result
        self.failed = failed


class Replay(object):
    """run_command replaying recorded (rc, out, err) per argv; a list is consumed in order,
    its last item repeating. Any other command fails the test."""

    def __init__(self, outputs):
        self.outputs = dict((tuple(k), v) for k, v in outputs.items())
        self.calls = []

    def __call__(self, args, **kwargs):
        self.calls.append(list(args))
        key = tuple(args)
        if key not in self.outputs:
            raise AssertionError("unexpected command %r" % (args,))
        out = self.outputs[key]
        if isinstance(out, list):
            return out.pop(0) if len(out) > 1 else out[0]
        return out


@pytest.fixture
def module_main(monkeypatch):
    """run(main, args, outputs, check_mode, diff) -> (result, failed, commands run): a module's
    main() with its commands replayed and exit_json/fail_json caught."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def run(main, args, outputs, check_mode=False, diff=False):
        replay = Replay(outputs)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kwargs: replay(argv, **kwargs))

        def exit_json(self, **kwargs):
            raise ModuleExit(kwargs, False)

        def fail_json(self, **kwargs):
            raise ModuleExit(kwargs, True)

        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
        with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
            with pytest.raises(ModuleExit) as info:
                main()
        return info.value.result, info.value.failed, replay.calls
    return run


class SteppedClock(object):
    """A clock only sleep() moves on: a wait for a timeout passes it at once, after the same polls."""

    def __init__(self, now):
        self.now = now
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def lock_clock(monkeypatch):
    """livemigrate's clock, which its StepLock and HostLock wait by, as a SteppedClock from now: a held lock's
    timeout passes without the test waiting it out; .sleeps are the polls the wait made."""
    from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
    clock = SteppedClock(time.time())
    monkeypatch.setattr(lm, "time", clock)
    return clock


@pytest.fixture
def imported_devices(monkeypatch, tmp_path):
    """For the importing modules: the set of device paths that exist (diskexport.device_exists), no
    sleeping while they wait, and the shared path under tmp_path."""
    from ansible_collections.sanless.xen.plugins.module_utils import diskexport, iscsi

    devices = set()
    monkeypatch.setattr(diskexport, "device_exists", lambda path: path in devices)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(iscsi, "ROOT", str(tmp_path))
    return devices


# The lab dom0s of the disk export recordings (targetcli 2.1.53, tgt 1.0.85, open-iscsi 2.1.8, aoetools 36, vblade 25).
LAB_INITIATORS = {"hosta": "iqn.2026-11.lab.sanless:hosta:a21defa1caf5", "hostb": "iqn.2026-11.lab.sanless:hostb:54df6118618"}
# hosta's xenbr0 MAC is the recorded allow-list of hostb's vblade; hostb's is the lab's NIC address of its second
# host (lab/sanless_lab.py: 52:54:00:4c:00:<index>), not a recording.
LAB_MACS = {"hosta": "2e:4f:b1:ca:36:c2", "hostb": "52:54:00:4c:00:02"}
LAB_ADDRESSES = {"hosta": "10.77.0.11", "hostb": "10.77.0.12"}


@pytest.fixture
def lab_storage_facts(monkeypatch, tmp_path, fixture_text):
    """facts(host) -> diskexport.storage_facts of hosta or hostb as the recordings show the lab:
    hosta exports xenvg/rec0 over LIO (LUN 0, hostb's ACL; lio-configfs, tc-saveconfig-json) and xenvg/rec1 over AoE (e1.2, the
    collection's unit; no vblade running), imports hostb's rec2 (tgt LUN 1, sda; iscsiadm-session-P3-tgt) and
    rec3 (e2.1; aoe-stat-a); hostb exports rec2 over tgt (tgtadm-show) and rec3 over AoE (a vblade started by hand
    with hosta's MAC as allow-list; ps-vblade), imports rec0 (sda; iscsiadm-session-P3) and rec1 (e1.2; aoe-discover).
    The shared paths are made by iscsi.ensure_shared_path, as the modules make them."""
    from ansible_collections.sanless.xen.plugins.module_utils import aoe, diskexport, iscsi
    from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
    from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner

    def rec(where, name):
        return recorded_run(fixture_text, where, name)

    hosta_iqn, hostb_iqn = conv.target_iqn("hosta"), conv.target_iqn("hostb")
    outputs = {
        "hosta": {tuple(iscsi.iscsiadm_session_argv(details=True)): rec(("iscsiadm", "2.1.8"), "iscsiadm-session-P3-tgt"),
                  tuple(aoe.aoe_stat_argv()): rec(("aoetools", "36"), "aoe-stat-a"),
                  # no vblade runs on hosta: ps shows none
                  tuple(aoe.ps_argv()): (0, "    1 /sbin/init\n", "")},
        "hostb": {tuple(iscsi.iscsiadm_session_argv(details=True)): rec(("iscsiadm", "2.1.8"), "iscsiadm-session-P3"),
                  tuple(aoe.aoe_stat_argv()): rec(("aoetools", "36"), "aoe-discover"),
                  tuple(aoe.ps_argv()): rec(("vblade", "25"), "ps-vblade"),
                  tuple(iscsi.tgt_show_argv()): rec(("tgt", "1.0.85"), "tgtadm-show")},
    }
    tools = {"hosta": ["targetcli", "iscsiadm", "aoe-stat", "vblade"], "hostb": ["tgtadm", "iscsiadm", "aoe-stat", "vblade"]}
    links = {
        "hosta": [("hosta", "rec0", "/dev/xenvg/rec0"), ("hosta", "rec1", "/dev/xenvg/rec1"),
                  ("hostb", "rec2", iscsi.by_path("10.77.0.12", 3260, hostb_iqn, 1)), ("hostb", "rec3", "/dev/etherd/e2.1")],
        "hostb": [("hostb", "rec2", "/dev/xenvg/rec2"), ("hostb", "rec3", "/dev/xenvg/rec3"),
                  ("hosta", "rec0", iscsi.by_path("10.77.0.11", 3260, hosta_iqn, 0)), ("hosta", "rec1", "/dev/etherd/e1.2")],
    }
    present = set()
    monkeypatch.setattr(diskexport, "device_exists", lambda path: path in present)

    def facts(host):
        root = tmp_path / host
        for sub in ("etc/iscsi", "systemd", "net/lo", "net/xenbr0", "etherd"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "etc/iscsi/initiatorname.iscsi").write_text("InitiatorName=%s\n" % LAB_INITIATORS[host])
        (root / "net/xenbr0/address").write_text(LAB_MACS[host] + "\n")
        (root / "net/lo/address").write_text("00:00:00:00:00:00\n")
        saveconfig = root / "saveconfig.json"
        if host == "hosta":
            # LIO is loaded on hosta only: the kernel's state as its configfs tree was recorded (lio-configfs, the
            # state tc-ls lists and tc-saveconfig-json saved)
            lio_configfs_tree(root / "configfs", "lio-configfs")
            saveconfig.write_text(fixture_text("targetcli", "2.1.53", "tc-saveconfig-json.out"))
            (root / "systemd" / aoe.unit_path(1, 2).rsplit("/", 1)[1]).write_text(
                aoe.vblade_unit(1, 2, "xenbr0", "/dev/xenvg/rec1"))
        monkeypatch.setattr(iscsi, "ROOT", str(root))
        monkeypatch.setattr(iscsi, "LIO_SAVECONFIG", str(saveconfig))
        monkeypatch.setattr(iscsi, "INITIATOR_NAME_FILE", str(root / "etc/iscsi/initiatorname.iscsi"))
        monkeypatch.setattr(aoe, "SYSTEMD_DIR", str(root / "systemd"))
        monkeypatch.setattr(aoe, "ETHERD_DIR", str(root / "etherd"))
        monkeypatch.setattr(diskexport, "SYS_NET", str(root / "net"))
        monkeypatch.setattr(iscsi, "LIO_CONFIGFS", str(root / "configfs"))
        for owner, lv, device in links[host]:
            match = {"ENV{DM_VG_NAME}": "xenvg", "ENV{DM_LV_NAME}": lv} if owner == host else {"KERNEL": "sda"}
            iscsi.ensure_shared_path(owner, "xenvg", lv, match, device, False)
            present.add(str(root) + "/dev/sanless/%s/xenvg/%s" % (owner, lv))
        module = FakeModule(outputs[host], tools=tools[host])
        return diskexport.storage_facts(CommandRunner(module))
    return facts


@pytest.fixture
def recorded_xen_info(tmp_path, fixture_text):
    """xen_info(name, xl_list, proc_drbd=None, configs=(), boot_id=None) -> the sanless.xen.xen_info result of one dom0,
    gathered by xen_info.gather from real lab recordings (xl 4.17.5 info and the given ``xl list`` recording, lvm
    2.03.16 vgs/lvs, the given DRBD 8.4.11 /proc/drbd recording) and a config dir holding a config named after each of
    ``configs``. Every recording was made on one lab dom0 at a time: a cluster of several is composed from them (one
    recording may stand for two dom0s), which is what the multi-host tests built on this fixture say."""
    from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv, vgs_argv
    from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
    from ansible_collections.sanless.xen.plugins.modules import xen_info

    def dom0(name, xl_list, proc_drbd=None, configs=(), boot_id=None):
        root = tmp_path / name
        auto = root / "auto"
        auto.mkdir(parents=True, exist_ok=True)
        for old in auto.iterdir():
            old.unlink()
        for vm in configs:
            (auto / ("%s.cfg" % vm)).write_text('name = "%s"\nmemory = 96\n' % vm)
        drbd = root / "drbd"
        boot = root / "boot_id"
        for old in (drbd, boot):
            if old.exists():
                old.unlink()
        if proc_drbd:
            drbd.write_text(fixture_text("drbd", "8.4.11", proc_drbd))
        if boot_id:
            boot.write_text(boot_id + "\n")
        outputs = {
            ("xl", "info"): (0, fixture_text("xl", "4.17.5", "xl-info.txt"), ""),
            ("xl", "list"): (0, fixture_text("xl", "4.17.5", xl_list), ""),
            tuple(vgs_argv()): (0, fixture_text("lvm", "2.03.16", "vgs.json"), ""),
            tuple(lvs_argv()): (0, fixture_text("lvm", "2.03.16", "lvs-domu.json"), ""),
        }
        runner = CommandRunner(FakeModule(outputs, tools=["xl", "lvs"]))
        result = xen_info.gather(runner, toolstack="xl", config_dir=str(auto), proc_drbd=str(drbd),
                                 boot_id_path=str(boot))
        return json.loads(json.dumps(result))  # as a registered result: plain data
    return dom0
