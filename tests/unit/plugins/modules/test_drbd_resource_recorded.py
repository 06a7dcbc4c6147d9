# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.drbd_resource on the outputs of drbdadm itself (get-gi, create-md, up, a refused
primary, down), recorded by ``tests/unit/fixtures/record.py --phases resource`` on resource
"fxr" (minor 93). Until that phase has run, these tests FAIL, naming the missing file.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import drbd, runner
from ansible_collections.sanless.xen.plugins.module_utils.drbd import metadata_state, parse_resource
from ansible_collections.sanless.xen.plugins.modules import drbd_resource

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures")
UTILS = ("drbd-utils", "9.22.0")
KERNEL = ("drbd", "8.4.11")


def recorded(*parts):
    path = os.path.join(FIXTURES, *parts)
    if not os.path.exists(path):
        pytest.fail("fixture %s is not recorded yet: run .venv-newest/bin/python tests/unit/fixtures/record.py "
                    "--phases resource with the lab up" % os.path.join(*parts), pytrace=False)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def result_of(base):
    """(rc, stdout, stderr) of a recorded command."""
    return (int(recorded(*UTILS + (base + ".rc",)).strip()), recorded(*UTILS + (base + ".stdout",)),
            recorded(*UTILS + (base + ".stderr",)))


def fxr_params():
    """The module options of the recording, read back from the res file it wrote."""
    res = parse_resource(recorded(*UTILS + ("fxr.res",)))
    me = [h for h in res["hosts"] if h["name"] != "fx-nopeer"][0]
    peer = [h for h in res["hosts"] if h["name"] == "fx-nopeer"][0]
    return {"name": "fxr", "minor": 93, "port": me["port"], "disk": me["disk"], "meta_disk": me["meta_disk"],
            "host_name": me["name"], "address": me["address"], "peer_name": peer["name"],
            "peer_address": peer["address"], "resync_rate": "4M"}


def argv(verb, *options):
    return ["drbdadm", verb] + list(options) + ["fxr"]


# Whose minor 93 is, asked when /proc/drbd lists it: drbdsetup show of DRBD 8.4 TRANSCRIBED from
# drbd-utils 9.22.0 source, not recorded yet (fixtures/drbd-utils/9.22.0/README).
SHOW93 = drbd.drbdsetup_show_argv(93)


def with_show93(outputs):
    outputs = dict(outputs)
    outputs[tuple(SHOW93)] = (0, recorded(*UTILS + ("drbdsetup-show-93.txt",)), "")
    return outputs


@pytest.fixture
def run(tmp_path, module_main, monkeypatch):
    conf = tmp_path / "drbd.d"
    conf.mkdir()
    proc = tmp_path / "proc-drbd"
    after = {}
    monkeypatch.setattr(drbd, "PROC_DRBD", str(proc))
    original = runner.CommandRunner.run

    def run_cmd(self, cmd, **kwargs):
        result = original(self, cmd, **kwargs)
        if not result.skipped and tuple(cmd) in after:
            proc.write_text(after[tuple(cmd)])
        return result
    monkeypatch.setattr(runner.CommandRunner, "run", run_cmd)

    def go(args, outputs, proc_text, res_text=None, then=None, check_mode=False):
        proc.write_text(proc_text)
        after.clear()
        after.update(then or {})
        if res_text is not None:
            (conf / "fxr.res").write_text(res_text)
        result, failed, calls = module_main(drbd_resource.main, dict(args, conf_dir=str(conf)), outputs, check_mode)
        return result, failed, calls, conf
    return go


def test_recorded_get_gi_outputs_decide_create_md():
    assert metadata_state(*result_of("drbdadm-get-gi-blank")) == "none"
    assert metadata_state(*result_of("drbdadm-get-gi-created")) == "present"
    assert result_of("drbdadm-create-md")[0] == 0


def test_blank_metadata_is_created_then_up(run):
    outputs = {tuple(argv("get-gi")): result_of("drbdadm-get-gi-blank"),
               tuple(argv("create-md", "--force")): result_of("drbdadm-create-md"),
               tuple(argv("up")): result_of("drbdadm-up")}
    result, failed, calls, conf = run(fxr_params(), outputs, recorded(*KERNEL + ("proc-drbd-fxr-before-up.txt",)),
                                      then={tuple(argv("up")): recorded(*KERNEL + ("proc-drbd-fxr-up.txt",))})
    assert not failed, result
    assert calls == [argv("get-gi"), argv("create-md", "--force"), argv("up")]
    assert result["metadata"] == "created" and result["changed"]
    assert (conf / "fxr.res").read_text() == recorded(*UTILS + ("fxr.res",))
    assert result["resource"]["cstate"] == "WFConnection" and result["resource"]["disk"] == "Inconsistent"


def test_valid_metadata_is_kept(run):
    outputs = {tuple(argv("get-gi")): result_of("drbdadm-get-gi-created"),
               tuple(argv("up")): result_of("drbdadm-up")}
    result, failed, calls, conf = run(fxr_params(), outputs, recorded(*KERNEL + ("proc-drbd-fxr-before-up.txt",)),
                                      res_text=recorded(*UTILS + ("fxr.res",)),
                                      then={tuple(argv("up")): recorded(*KERNEL + ("proc-drbd-fxr-up.txt",))})
    assert not failed, result
    assert calls == [argv("get-gi"), argv("up")] and result["metadata"] == "present"


def test_refused_primary_fails_with_drbds_words(run):
    refused = result_of("drbdadm-primary-refused")
    assert refused[0] != 0
    result, failed, calls, conf = run(dict(fxr_params(), role="primary"),
                                      with_show93({tuple(argv("primary")): refused}),
                                      recorded(*KERNEL + ("proc-drbd-fxr-up.txt",)),
                                      res_text=recorded(*UTILS + ("fxr.res",)))
    assert failed
    assert calls == [SHOW93, argv("primary")]
    assert (result["cmd"], result["rc"], result["stdout"], result["stderr"]) == (argv("primary"),) + refused
    assert result["msg"].startswith("drbdadm primary fxr failed with rc %d" % refused[0])


def test_down(run):
    result, failed, calls, conf = run(dict(fxr_params(), state="down"),
                                      with_show93({tuple(argv("down")): result_of("drbdadm-down")}),
                                      recorded(*KERNEL + ("proc-drbd-fxr-up.txt",)),
                                      res_text=recorded(*UTILS + ("fxr.res",)),
                                      then={tuple(argv("down")): recorded(*KERNEL + ("proc-drbd-fxr-down.txt",))})
    assert not failed, result
    assert calls == [SHOW93, argv("down")] and result["changed"] and result["resource"]["up"] is False
