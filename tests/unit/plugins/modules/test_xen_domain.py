# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.xen_domain, run whole with xl output replayed from lab recordings (xl/4.17.5)."""

from __future__ import annotations

import fcntl
import os

import pytest

from ansible.module_utils import basic

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    build_domain_config,
    check_vm_name,
    disk_spec,
    domain_state,
    parse_domain_config,
    parse_xl_list,
    vif_spec,
)
from ansible_collections.sanless.xen.plugins.modules import xen_domain

XL = ("xl", "4.17.5")
NAME = "fxrec"  # the domain in the recorded xl list outputs

CONFIG = {
    "name": NAME,
    "memory": 96,
    "kernel": "/usr/local/share/sanless/vmlinuz",
    "ramdisk": "/usr/local/share/sanless/guest-busybox.img",
    "extra": "console=hvc0 quiet sanless.pattern_mib=16",
    "disks": [{"target": "/dev/xenvg/fxrec-disk", "vdev": "xvda"}],
}
EXPECTED_TEXT = (
    "# Xen domain fxrec - managed by sanless.xen.xen_domain; edits are overwritten\n"
    'name = "fxrec"\n'
    'type = "pv"\n'
    "memory = 96\n"
    "vcpus = 1\n"
    'kernel = "/usr/local/share/sanless/vmlinuz"\n'
    'ramdisk = "/usr/local/share/sanless/guest-busybox.img"\n'
    'extra = "console=hvc0 quiet sanless.pattern_mib=16"\n'
    'disk = [ "phy:/dev/xenvg/fxrec-disk,xvda,w" ]\n'
)


@pytest.fixture
def xl_list(fixture_text):
    def listing(state):
        name = {"absent": "xl-list.txt", "running": "xl-list-domu.txt", "paused": "xl-list-paused.txt"}[state]
        return (0, fixture_text(*(XL + (name,))), "")
    return listing


@pytest.fixture
def run_module(module_main, monkeypatch, tmp_path):
    def run(args, outputs, check_mode=False, diff=False, tools=("xl",)):
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                            lambda self, name, required=False, opt_dirs=None: ("/usr/sbin/" + name) if name in tools else None)
        monkeypatch.setattr(xen_domain, "POLL_S", 0)
        monkeypatch.setattr(conv, "LOCK_DIR", str(tmp_path / "run"))
        return module_main(xen_domain.main, dict({"config_dir": str(tmp_path / "auto")}, **args), outputs, check_mode, diff)
    return run


def cfg_path(tmp_path, name=NAME):
    return str(tmp_path / "auto" / ("%s.cfg" % name))


def write_cfg(tmp_path, text, name=NAME):
    os.makedirs(str(tmp_path / "auto"), exist_ok=True)
    with open(cfg_path(tmp_path, name), "w") as handle:
        handle.write(text)


# --------------------------------------------------------------------------- pure helpers in xen.py


@pytest.mark.parametrize("name", ["web01", "a", "W-1_x.y", "9" * 64])
def test_vm_names_accepted(name):
    assert check_vm_name(name) == name


@pytest.mark.parametrize("name", ["web;rm", "a b", "../x", "x/y", "-x", ".x", "", "9" * 65, "web01\n", "$(id)",
                                  "a'b", 'a"b', "web`id`", "a|b", "a&b", None, 5])
def test_vm_names_refused(name):
    with pytest.raises(ValueError, match="invalid VM name"):
        check_vm_name(name)


def test_build_config_order_and_xm():
    config = build_domain_config(NAME, 96, kernel="/k", disks=[{"target": "/dev/vg/a", "vdev": "xvda"}],
                                 vifs=[{"mac": "00:16:3e:00:00:01", "bridge": "xenbr0"}], settings={"on_crash": "restart"})
    assert list(config) == ["name", "type", "memory", "vcpus", "kernel", "disk", "vif", "on_crash"]
    assert config["vif"] == ["bridge=xenbr0,mac=00:16:3e:00:00:01"]
    xm = build_domain_config(NAME, 96, domain_type="hvm", toolstack="xm")
    assert "type" not in xm and xm["builder"] == "hvm"
    assert "type" not in build_domain_config(NAME, 96, kernel="/k", toolstack="xm")


@pytest.mark.parametrize("kwargs, message", [
    ({"domain_type": "pvh", "kernel": "/k", "toolstack": "xm"}, "needs the xl toolstack"),
    ({"domain_type": "pv"}, "needs kernel or bootloader"),
    ({"kernel": "/k", "bootloader": "pygrub"}, "mutually exclusive"),
    ({"kernel": "/k", "disks": [{"target": "/dev/vg/a,xvdb", "vdev": "xvda"}]}, "disk target"),
    ({"kernel": "/k", "disks": [{"target": "dev/vg/a", "vdev": "xvda"}]}, "absolute path"),
    ({"kernel": "/k", "disks": [{"target": "/dev/vg/a", "vdev": "xv\"da"}]}, "disk vdev"),
    ({"kernel": "/k", "disks": [{"target": "/dev/vg/a", "vdev": "xvda"}, {"target": "/dev/vg/b", "vdev": "xvda"}]},
     "used twice"),
    ({"kernel": "/k", "vifs": [{"bridge": "br0,script=/tmp/x"}]}, "vif bridge"),
    ({"kernel": "/k", "vifs": [{"bad key": "x"}]}, "vif setting name"),
    ({"kernel": "/k", "settings": {"memory": 5}}, "its own option"),
    ({"kernel": "/k", "settings": {"bad-key": 5}}, "invalid setting name"),
    ({"kernel": "/k", "settings": {"on_crash": {"a": 1}}}, "cannot render"),
    ({"kernel": "/k\nmemory = 1"}, "newline"),
])
def test_build_config_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        text_check = build_domain_config(NAME, 96, **kwargs)
        # a newline only shows when rendering
        xen_domain.config_text(text_check, None, lambda msg: None)


def test_disk_and_vif_specs():
    assert disk_spec({"target": "/dev/xenvg/a", "vdev": "xvda", "mode": "r"}) == "phy:/dev/xenvg/a,xvda,r"
    assert vif_spec({"bridge": "xenbr0", "ip": None}) == "bridge=xenbr0"


def test_domain_state_from_recorded_lists(fixture_text):
    running = parse_xl_list(fixture_text(*(XL + ("xl-list-domu.txt",))))
    paused = parse_xl_list(fixture_text(*(XL + ("xl-list-paused.txt",))))
    assert domain_state([d for d in running if d["name"] == NAME][0]) == "running"
    assert domain_state([d for d in paused if d["name"] == NAME][0]) == "paused"
    assert domain_state(None) == "absent"
    assert domain_state({"state": "---s--"}) == "shutdown"
    assert domain_state({"state": "----c-"}) == "crashed"
    assert domain_state({"state": "-----d"}) == "dying"


# --------------------------------------------------------------------------- the module


def test_create_writes_config_and_starts(run_module, xl_list, tmp_path, fixture_text):
    create = ["xl", "create", cfg_path(tmp_path)]
    outputs = {("xl", "list"): [xl_list("absent"), xl_list("running")],
               tuple(create): (0, "", "Parsing config from %s\n" % cfg_path(tmp_path))}
    result, failed, calls = run_module(CONFIG, outputs, diff=True)
    assert not failed, result
    assert result["changed"] and result["actions"] == ["write config", "create"]
    assert result["state_before"] == "absent" and result["state"] == "running" and result["domid"] == 7
    assert create in calls
    with open(cfg_path(tmp_path)) as handle:
        text = handle.read()
    assert text == EXPECTED_TEXT == result["config"]
    assert parse_domain_config(text)["disk"] == ["phy:/dev/xenvg/fxrec-disk,xvda,w"]
    assert oct(os.stat(cfg_path(tmp_path)).st_mode & 0o777) == "0o644"
    assert os.listdir(str(tmp_path / "auto")) == ["fxrec.cfg"]
    assert result["diff"][0]["before"] == "" and result["diff"][0]["after"] == EXPECTED_TEXT
    assert result["diff"][1] == {"before_header": "domain fxrec", "after_header": "domain fxrec",
                                 "before": "state: absent\n", "after": "state: running\n"}


def test_create_waits_for_the_domain_build_lock_and_fails_without_a_create_when_held(run_module, xl_list, tmp_path,
                                                                                     monkeypatch, lock_clock):
    # another build on this dom0 (vm_restart's or xen_domain's xl create) holds the lock past the timeout
    (tmp_path / "run").mkdir()
    holder = os.open(str(tmp_path / "run" / "domain-build.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    monkeypatch.setattr(conv, "DOMAIN_BUILD_LOCK_TIMEOUT_S", 1)
    try:
        result, failed, calls = run_module(CONFIG, {("xl", "list"): xl_list("absent")})
        assert failed and result["msg"].startswith("the domain build lock: ") and "after 1 s" in result["msg"]
        assert calls == [["xl", "list"]] and sum(lock_clock.sleeps) >= 1
        # check mode takes no lock: it does not wait
        polls = len(lock_clock.sleeps)
        result, failed, calls = run_module(CONFIG, {("xl", "list"): xl_list("absent")}, check_mode=True)
        assert not failed and result["would_run"] == [["xl", "create", cfg_path(tmp_path)]]
        assert len(lock_clock.sleeps) == polls
    finally:
        os.close(holder)
    # free again: the create runs (and the lock file is the tests' one, not /run's)
    create = ("xl", "create", cfg_path(tmp_path))
    outputs = {("xl", "list"): [xl_list("absent"), xl_list("running")], create: (0, "", "")}
    result, failed, calls = run_module(CONFIG, outputs)
    assert not failed and list(create) in calls and os.listdir(str(tmp_path / "run")) == ["domain-build.lock"]


def test_a_killed_create_has_its_shell_destroyed_and_fails(run_module, tmp_path, fixture_text):
    # recorded on the 384 MiB lab dom0 (SOURCE): a create killed mid-build (rc 137) left wbench02 paused, 0 MiB
    write_cfg(tmp_path, 'name = "wbench02"\n', name="wbench02")
    create = ["xl", "create", cfg_path(tmp_path, "wbench02")]
    outputs = {("xl", "list"): [(0, fixture_text(*XL + ("xl-list.txt",)), ""),
                                (0, fixture_text(*XL + ("xl-list-failed-build-shell.txt",)), "")],
               tuple(create): (137, "", fixture_text(*XL + ("xl-create-killed.stderr",))),
               ("xl", "destroy", "wbench02"): (0, "", "")}
    result, failed, calls = run_module({"name": "wbench02"}, outputs)
    assert failed and result["rc"] == 137
    assert result["msg"].endswith("; the paused shell it left of domain wbench02 was destroyed")
    assert calls == [["xl", "list"], create, ["xl", "list"], ["xl", "destroy", "wbench02"]]


def test_check_mode_writes_and_runs_nothing(run_module, xl_list, tmp_path):
    result, failed, calls = run_module(CONFIG, {("xl", "list"): xl_list("absent")}, check_mode=True, diff=True)
    assert not failed and result["changed"]
    assert result["would_run"] == [["xl", "create", cfg_path(tmp_path)]]
    assert calls == [["xl", "list"]]
    assert not os.path.exists(str(tmp_path / "auto"))
    assert result["diff"][0]["after"] == EXPECTED_TEXT and result["state"] == "running"


def test_second_run_is_idempotent(run_module, xl_list, tmp_path):
    write_cfg(tmp_path, EXPECTED_TEXT)
    result, failed, calls = run_module(CONFIG, {("xl", "list"): xl_list("running")})
    assert not failed and not result["changed"] and result["actions"] == []
    assert calls == [["xl", "list"]]


def test_comments_and_unchanged_lines_are_kept(run_module, xl_list, tmp_path):
    write_cfg(tmp_path, "# my note\n" + EXPECTED_TEXT.replace("memory = 96", "memory = 96   # small"))
    result, failed, calls = run_module(dict(CONFIG, memory=128), {("xl", "list"): xl_list("running")})
    assert not failed and result["changed"] and result["restart_needed"]
    assert result["actions"] == ["write config"]
    with open(cfg_path(tmp_path)) as handle:
        text = handle.read()
    assert text.startswith("# my note\n") and "memory = 128" in text and 'vcpus = 1' in text


def test_unpause_and_pause(run_module, xl_list):
    result, failed, calls = run_module(dict(name=NAME), {("xl", "list"): [xl_list("paused"), xl_list("running")],
                                                         ("xl", "unpause", NAME): (0, "", "")})
    assert not failed and result["actions"] == ["unpause"] and result["state"] == "running"
    result, failed, calls = run_module(dict(name=NAME, state="paused"),
                                       {("xl", "list"): xl_list("running"), ("xl", "pause", NAME): (0, "", "")},
                                       check_mode=True)
    assert not failed and result["would_run"] == [["xl", "pause", NAME]] and result["state"] == "paused"


def test_start_without_config_fails_clearly(run_module, xl_list, tmp_path):
    result, failed, calls = run_module(dict(name=NAME), {("xl", "list"): xl_list("absent")})
    assert failed and "no config file %s" % cfg_path(tmp_path) in result["msg"]


def test_graceful_shutdown(run_module, xl_list):
    outputs = {("xl", "list"): [xl_list("running"), xl_list("running"), xl_list("absent")],
               ("xl", "shutdown", NAME): (0, "", "")}
    result, failed, calls = run_module(dict(name=NAME, state="shutdown", shutdown_timeout=30), outputs)
    assert not failed and result["actions"] == ["shutdown"] and result["state"] == "absent"
    assert ["xl", "destroy", NAME] not in calls


def test_shutdown_timeout_without_force_fails(run_module, xl_list):
    outputs = {("xl", "list"): xl_list("running"), ("xl", "shutdown", NAME): (0, "", "")}
    result, failed, calls = run_module(dict(name=NAME, state="shutdown", shutdown_timeout=0), outputs)
    assert failed and "did not shut down within 0 s" in result["msg"] and "force=true" in result["msg"]
    assert ["xl", "destroy", NAME] not in calls


def test_shutdown_timeout_with_force_destroys(run_module, xl_list):
    outputs = {("xl", "list"): [xl_list("running"), xl_list("running"), xl_list("absent")],
               ("xl", "shutdown", NAME): (0, "", ""), ("xl", "destroy", NAME): (0, "", "")}
    result, failed, calls = run_module(dict(name=NAME, state="shutdown", shutdown_timeout=0, force=True), outputs)
    assert not failed and result["actions"] == ["shutdown", "shutdown timed out after 0 s", "destroy"]
    assert result["state"] == "absent"


def test_shutdown_of_paused_domain_unpauses_first(run_module, xl_list):
    outputs = {("xl", "list"): [xl_list("paused"), xl_list("running"), xl_list("absent")],
               ("xl", "unpause", NAME): (0, "", ""), ("xl", "shutdown", NAME): (0, "", "")}
    result, failed, calls = run_module(dict(name=NAME, state="shutdown"), outputs)
    assert not failed and result["actions"] == ["unpause", "shutdown"]


def test_shutdown_command_failure_goes_through_fail_from_error(run_module, xl_list, fixture_text):
    err = fixture_text(*(XL + ("xl-shutdown-nodomain.stderr",)))
    outputs = {("xl", "list"): xl_list("running"), ("xl", "shutdown", NAME): (1, "", err)}
    result, failed, calls = run_module(dict(name=NAME, state="shutdown"), outputs)
    assert failed and result["cmd"] == ["xl", "shutdown", NAME] and result["rc"] == 1
    assert "invalid domain identifier" in result["stderr"] and "stdout" in result


def test_destroyed(run_module, xl_list):
    outputs = {("xl", "list"): [xl_list("running"), xl_list("absent")], ("xl", "destroy", NAME): (0, "", "")}
    result, failed, calls = run_module(dict(name=NAME, state="destroyed"), outputs)
    assert not failed and result["actions"] == ["destroy"]
    result, failed, calls = run_module(dict(name=NAME, state="destroyed"), {("xl", "list"): xl_list("absent")})
    assert not failed and not result["changed"]


def test_absent_stops_and_removes_config(run_module, xl_list, tmp_path):
    write_cfg(tmp_path, EXPECTED_TEXT)
    outputs = {("xl", "list"): [xl_list("running"), xl_list("absent")], ("xl", "shutdown", NAME): (0, "", "")}
    result, failed, calls = run_module(dict(name=NAME, state="absent"), outputs, diff=True)
    assert not failed and result["actions"] == ["shutdown", "remove config"]
    assert not os.path.exists(cfg_path(tmp_path))
    assert result["diff"][0]["before"] == EXPECTED_TEXT and result["diff"][0]["after"] == ""
    result, failed, calls = run_module(dict(name=NAME, state="absent"), {("xl", "list"): xl_list("absent")})
    assert not failed and not result["changed"]


def test_absent_in_check_mode_keeps_everything(run_module, xl_list, tmp_path):
    write_cfg(tmp_path, EXPECTED_TEXT)
    result, failed, calls = run_module(dict(name=NAME, state="absent"), {("xl", "list"): xl_list("running")},
                                       check_mode=True)
    assert not failed and result["changed"] and os.path.exists(cfg_path(tmp_path))
    assert result["would_run"] == [["xl", "shutdown", NAME]]


def test_xm_toolstack(run_module, fixture_text, tmp_path):
    listing = (0, fixture_text("xm", "3.x", "xm-list.txt"), "")
    args = dict(CONFIG, name="test2")
    outputs = {("xm", "list"): listing}
    result, failed, calls = run_module(args, outputs, tools=("xm",), check_mode=True)
    assert not failed and result["toolstack"] == "xm" and not result["changed"] or result["actions"] == ["write config"]
    assert 'type = "pv"' not in result["config"]
    args = dict(CONFIG, name="newvm")
    result, failed, calls = run_module(args, outputs, tools=("xm",), check_mode=True)
    assert result["would_run"] == [["xm", "create", cfg_path(tmp_path, "newvm")]]


@pytest.mark.parametrize("name", ["web;rm", "a b", "../x", "x/y", "$(reboot)", "-h"])
def test_bad_names_are_refused_before_any_command(run_module, name, tmp_path):
    result, failed, calls = run_module(dict(CONFIG, name=name), {})
    assert failed and calls == [] and "invalid VM name" in result["msg"]
    assert not os.path.exists(str(tmp_path / "auto"))


@pytest.mark.parametrize("args, message", [
    ({"vcpus": 2}, "memory is required with vcpus"),
    ({"kernel": "/k"}, "memory is required with kernel"),
    ({"memory": 96, "disks": [{"target": "/dev/vg/a,b", "vdev": "xvda"}], "kernel": "/k"}, "disk target"),
    ({"memory": 0, "kernel": "/k"}, "memory must be a positive"),
    ({"shutdown_timeout": -1}, "shutdown_timeout"),
])
def test_bad_options_are_refused_before_any_command(run_module, args, message):
    result, failed, calls = run_module(dict(args, name=NAME), {})
    assert failed and calls == [] and message in result["msg"]
