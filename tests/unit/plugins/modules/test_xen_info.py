# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xen_info assembles recorded real output (replayed by argv) into its return contract."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv, vgs_argv
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
from ansible_collections.sanless.xen.plugins.modules import xen_info

XL = ("xl", "4.17.5")
LVM = ("lvm", "2.03.16")
DRBD = ("drbd", "8.4.11")
DM = ("dm", "1.02.185")


@pytest.fixture
def recorded(fixture_text):
    """argv -> (rc, stdout, stderr) from the lab recordings of one dom0."""
    return {
        ("xl", "info"): (0, fixture_text(*XL + ("xl-info.txt",)), ""),
        ("xl", "list"): (0, fixture_text(*XL + ("xl-list-domu.txt",)), ""),
        tuple(vgs_argv()): (0, fixture_text(*LVM + ("vgs.json",)), ""),
        tuple(lvs_argv()): (0, fixture_text(*LVM + ("lvs-domu.json",)), ""),
        ("dmsetup", "table"): (0, fixture_text(*DM + ("dmsetup-table-swapped.txt",)), ""),
    }


@pytest.fixture
def config_dir(tmp_path, fixture_text):
    auto = tmp_path / "auto"
    auto.mkdir()
    (auto / "fxrec.cfg").write_text(fixture_text(*XL + ("domu-fxrec.cfg",)))
    (auto / "other.cfg").write_text('name = "not-running"\nmemory = 64\n')
    (auto / "broken.cfg").write_text("name = unquoted\n")
    (auto / "fxrec.cfg~").write_text('name = "editor-backup"\n')
    return str(auto)


@pytest.fixture
def proc_drbd(tmp_path, fixture_text):
    path = tmp_path / "drbd"
    path.write_text(fixture_text(*DRBD + ("proc-drbd-syncsource.txt",)))
    return str(path)


def test_gather_assembles_the_contract(fake_module, recorded, config_dir, proc_drbd):
    module = fake_module(recorded, tools=["xl", "lvs", "drbdsetup"])
    runner = CommandRunner(module)
    warnings = []
    result = xen_info.gather(runner, config_dir=config_dir, proc_drbd=proc_drbd, warn=warnings.append)

    assert result["changed"] is False
    host = result["host"]
    assert {k: host[k] for k in ("hostname", "total_memory_mib", "free_memory_mib", "nr_cpus", "xen_version",
                                 "virt_caps", "toolstack")} == {
        "hostname": "hosta", "total_memory_mib": 1023, "free_memory_mib": 626, "nr_cpus": 2,
        "xen_version": "4.17.5", "virt_caps": ["pv", "hvm", "hap", "shadow", "gnttab-v1", "gnttab-v2"],
        "toolstack": "xl"}
    assert host["info"]["xen_scheduler"] == "credit2"

    assert result["domains"] == [
        {"name": "Domain-0", "domid": 0, "memory_mib": 384, "vcpus": 2, "state": "r-----", "cpu_time_s": 1458.5,
         "config_file": None, "is_dom0": True},
        {"name": "fxrec", "domid": 7, "memory_mib": 96, "vcpus": 1, "state": "------", "cpu_time_s": 15.8,
         "config_file": config_dir + "/fxrec.cfg", "is_dom0": False},
    ]
    assert [(vg["name"], vg["free_bytes"], vg["pv_count"], vg["lv_count"]) for vg in result["vgs"]] == [
        ("xenvg", 8585740288, 1, 0)]
    assert {lv["name"]: lv["active"] for lv in result["lvs"]} == {
        "fxrec-disk": True, "fxrec-off": False, "fxrec-susp": True, "mig1-disk": True}
    assert result["lvs"][0]["dm_path"] == "/dev/mapper/xenvg-fxrec--disk"

    drbd = result["drbd"]
    assert drbd["version"] == "8.4.11"
    assert list(drbd["minors"]) == ["10", "90"]  # 10 belonged to another test on the lab
    assert drbd["minors"]["90"]["cstate"] == "SyncSource"
    assert isinstance(drbd["minors"]["90"]["sync_percent"], float)
    assert "dm_tables" not in result

    # one command per kind, each once, all read-only
    assert [call[0][:2] for call in module.calls] == [["xl", "info"], ["xl", "list"], ["vgs", "--reportformat"],
                                                      ["lvs", "--reportformat"]]
    assert runner.would_run == []
    for _argv, kwargs in module.calls:
        assert kwargs["environ_update"]["LANG"] == "C" and kwargs["environ_update"]["LC_ALL"] == "C"
        assert kwargs["expand_user_and_vars"] is False
    assert len(warnings) == 1 and "broken.cfg" in warnings[0]
    json.dumps(result)  # plain data only


def test_gather_vg_filter_and_dm_tables(fake_module, recorded, config_dir, proc_drbd):
    recorded[tuple(vgs_argv(["xenvg"]))] = recorded.pop(tuple(vgs_argv()))
    recorded[tuple(lvs_argv(["xenvg"]))] = recorded.pop(tuple(lvs_argv()))
    module = fake_module(recorded, tools=["xl", "lvs"])
    result = xen_info.gather(CommandRunner(module), vgs=["xenvg"], dm_tables=True, config_dir=config_dir,
                             proc_drbd=proc_drbd)
    assert module.calls[2][0][-1] == "xenvg" and module.calls[3][0][-1] == "xenvg"
    assert result["dm_tables"]["xenvg-fxs--disk"][0]["device"] == "147:90"


def test_gather_without_drbd_lvm_and_config_dir(fake_module, recorded, tmp_path):
    module = fake_module(recorded, tools=["xl"])
    warnings = []
    result = xen_info.gather(CommandRunner(module), config_dir=str(tmp_path / "none"),
                             proc_drbd=str(tmp_path / "no-drbd"), warn=warnings.append)
    assert result["drbd"] == {"version": None, "api": None, "proto": None, "build": None, "minors": {}}
    assert result["vgs"] == [] and result["lvs"] == []
    assert all(dom["config_file"] is None for dom in result["domains"])
    assert warnings == ["LVM tools not found; vgs and lvs are empty"]


def test_gather_xm_toolstack(fake_module, fixture_text, tmp_path):
    module = fake_module({
        ("xm", "info"): (0, "host : old\nnr_cpus : 4\ntotal_memory : 4095\nfree_memory : 12\n"
                            "xen_major : 4\nxen_minor : 0\nxen_extra : .1\n", ""),
        ("xm", "list"): (0, fixture_text("xm", "3.x", "xm-list.txt"), ""),
    }, tools=["xm"])
    result = xen_info.gather(CommandRunner(module), config_dir=str(tmp_path), proc_drbd=str(tmp_path / "x"))
    assert result["host"]["toolstack"] == "xm"
    assert result["host"]["xen_version"] == "4.0.1"
    assert [d["name"] for d in result["domains"]] == ["Domain-0", "test2"]


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def run_main(monkeypatch, args, recorded, proc_drbd_path, tools=("xl", "lvs")):
    calls = []

    def run_command(self, argv, **kwargs):
        calls.append(list(argv))
        return recorded[tuple(argv)]

    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None:
                        "/usr/sbin/" + name if name in tools else None)
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    real_read = xen_info.read_proc_drbd
    monkeypatch.setattr(xen_info, "read_proc_drbd", lambda path="/proc/drbd": real_read(proc_drbd_path))
    with patch_module_args(args):
        xen_info.main()
    return calls  # not reached


def test_main_check_mode(monkeypatch, recorded, config_dir, proc_drbd):
    with pytest.raises(ExitJson) as info:
        run_main(monkeypatch, {"config_dir": config_dir, "_ansible_check_mode": True}, recorded, proc_drbd)
    result = info.value.args[0]
    assert result["changed"] is False
    assert result["domains"][1]["config_file"].endswith("/fxrec.cfg")
    assert result["drbd"]["minors"]["90"]["role"] == "Primary"


def test_main_command_failure(monkeypatch, recorded, config_dir, proc_drbd):
    recorded[("xl", "info")] = (1, "", "xc: error: Could not obtain handle on privileged command interface\n")
    with pytest.raises(FailJson) as info:
        run_main(monkeypatch, {"config_dir": config_dir}, recorded, proc_drbd)
    failed = info.value.args[0]
    assert failed["cmd"] == ["xl", "info"]
    assert failed["rc"] == 1
    assert "privileged command interface" in failed["msg"]
    assert failed["stderr"].startswith("xc: error")


def test_main_parse_failure(monkeypatch, recorded, config_dir, proc_drbd):
    recorded[("xl", "list")] = (0, "Name ID Mem VCPUs State Time(s)\nDomain-0 0 384 2 r-----\n", "")
    with pytest.raises(FailJson) as info:
        run_main(monkeypatch, {"config_dir": config_dir}, recorded, proc_drbd)
    assert "xl list: short line" in info.value.args[0]["msg"]


def test_main_bad_option(monkeypatch, recorded, config_dir, proc_drbd):
    with pytest.raises(FailJson):
        run_main(monkeypatch, {"toolstack": "libvirt"}, recorded, proc_drbd)


def test_gather_drbd9_reads_drbdsetup_status(fake_module, recorded, fixture_text, tmp_path):
    proc = tmp_path / "drbd"
    proc.write_text("version: 9.2.4 (api:2/proto:86-122)\nGIT-hash: 0 build by root@x, 2023-05-01 10:00:00\n"
                    "Transports (api:18): tcp (9.2.4)\n")
    recorded[("drbdsetup", "status", "--json")] = (0, fixture_text("drbd", "9.x", "drbdsetup-status.json"), "")
    module = fake_module(recorded, tools=["xl", "drbdsetup"])
    result = xen_info.gather(CommandRunner(module), config_dir=str(tmp_path), proc_drbd=str(proc))
    assert result["drbd"]["version"] == "9.2.4"
    assert sorted(result["drbd"]["minors"]) == ["2", "3"]
    assert result["drbd"]["minors"]["2"]["resource"] == "1-single-0"
    assert module.calls[-1][0] == ["drbdsetup", "status", "--json"]


def test_gather_with_disk_exports(fake_module, recorded, config_dir, proc_drbd, lab_storage_facts):
    """disk_exports=true adds diskexport.storage_facts (tested on its own in test_diskexport.py); here on the lab's
    hostb (tests/unit/conftest.py) without its storage tools installed."""
    lab_storage_facts("hostb")
    runner = CommandRunner(fake_module(recorded, tools=["xl", "lvs"]))
    assert "disk_exports" not in xen_info.gather(runner, config_dir=config_dir, proc_drbd=proc_drbd)
    facts = xen_info.gather(runner, config_dir=config_dir, proc_drbd=proc_drbd, disk_exports=True)["disk_exports"]
    assert facts["initiator"] == "iqn.2026-11.lab.sanless:hostb:54df6118618" and facts["exports"] == []
    assert [shared["path"] for shared in facts["shared_paths"]] == [
        "/dev/sanless/hosta/xenvg/rec0", "/dev/sanless/hosta/xenvg/rec1", "/dev/sanless/hostb/xenvg/rec2",
        "/dev/sanless/hostb/xenvg/rec3"]


def test_gather_reports_the_drained_mark(fake_module, recorded, config_dir, proc_drbd, tmp_path):
    """No mark: drained is None; the evacuate role's JSON mark, or any other content, marks the host drained."""
    mark = tmp_path / "drained"
    module = fake_module(recorded, tools=["xl", "lvs"])
    result = xen_info.gather(CommandRunner(module), config_dir=config_dir, proc_drbd=proc_drbd, drained_mark=str(mark))
    assert result["drained"] is None
    mark.write_text(json.dumps({"by": "evacuate", "since": 1796371200, "reason": "nightly maintenance"}))
    module = fake_module(recorded, tools=["xl", "lvs"])
    result = xen_info.gather(CommandRunner(module), config_dir=config_dir, proc_drbd=proc_drbd, drained_mark=str(mark))
    assert result["drained"] == {"by": "evacuate", "since": 1796371200, "reason": "nightly maintenance", "path": str(mark)}
    mark.write_text("kernel upgrade, by hand\n")
    module = fake_module(recorded, tools=["xl", "lvs"])
    result = xen_info.gather(CommandRunner(module), config_dir=config_dir, proc_drbd=proc_drbd, drained_mark=str(mark))
    assert result["drained"] == {"by": None, "since": None, "reason": "kernel upgrade, by hand", "path": str(mark)}
    json.dumps(result)


def test_drained_mark_path_is_the_conventions_one():
    from ansible_collections.sanless.xen.plugins.module_utils import conventions
    assert conventions.drained_mark_path() == "/var/lib/sanless-xen/drained"
    assert conventions.drained_mark_path("/tmp/s") == "/tmp/s/drained"
