# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Storage mode shared in livemigrate.HostSide (the rows of STEP_TABLE), with test_livemigrate's fake Host,
recorded xl list states (xl/4.17.5: fxm on hosta before, on hostb after the recorded xl migrate) and /proc/drbd;
fxm's disk is on its shared path /dev/sanless/hosta/xenvg/fxs-disk (hosta's LV, imported on hostb). And the
live_migration module's journal of such a migration."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError
from ansible_collections.sanless.xen.plugins.modules import live_migration
from ansible_collections.sanless.xen.tests.unit.plugins.module_utils.test_livemigrate import (  # noqa: F401 pylint: disable=unused-import
    SOURCE, TARGET, VM, XL_MIGRATE, FakeHost, clock, dirs, journal_for, logged, proc, xl_list,
)

PATH = conv.shared_disk_path("hosta", "xenvg", "fxs-disk")
DISK = {"owner": "hosta", "vg": "xenvg", "lv": "fxs-disk", "path": PATH}
UNREAD = "No such file or directory"


class SharedHost(FakeHost):
    """FakeHost with the shared paths that can be read here."""

    def __init__(self, readable=(PATH,), **kwargs):
        super(SharedHost, self).__init__([proc("uptodate")], **kwargs)
        self.readable_paths = set(readable)

    def readable(self, path):
        self.record("read", path)
        return None if path in self.readable_paths else UNREAD


def shared_journal(dirs, role, events=()):
    journal = journal_for(dirs, role, "shared", events=events, disks=[dict(DISK)])
    journal.data.pop("config_text")
    journal.save()
    return journal


def changes(host):
    """What a host did besides reading (xl list, the shared paths)."""
    return [" ".join(str(part) for part in call) for call in host.calls if call[0] not in ("read", "receive_pids")]


def test_shared_mode_has_no_drbd(dirs, clock):
    side = lm.HostSide(SharedHost(), shared_journal(dirs, "source"), SOURCE)
    assert side.mode == "shared" and side.replicas() == [] and side.sync_status() == (True, [])
    assert [lm.STEP_TABLE[(step, "source", "shared")].run for step in lm.STEPS] == [
        "_prepare_shared", "_promote_shared", "_xl_migrate", "_finish_shared_source"]


def test_target_without_the_import_is_refused_before_any_change(dirs, clock):
    journal = shared_journal(dirs, "target")
    host = SharedHost(readable=(), domains=xl_list("migrate-target-before"))
    with pytest.raises(lm.MigrationError) as info:
        lm.HostSide(host, journal, TARGET).run("prepare")
    assert info.value.msg == ("hostb: %s cannot be read here (%s): refusing to migrate fxm on its shared disks; on a "
                              "target, import them first (playbooks/export.yml -e vm=fxm -e to=hostb)" % (PATH, UNREAD))
    assert changes(host) == [] and logged(journal) == ["step:prepare"]


@pytest.mark.parametrize("role,domains,held", [
    ("source", "migrate-source-before", True),    # fxm runs here on its readable disk
    ("target", "migrate-target-before", True),    # the import is up, fxm not here
    ("target", "migrate-target-after", False),    # fxm already runs on the target
    ("source", "migrate-source-after", False),    # fxm does not run on the source
])
def test_prepare_checks_the_disks_and_where_the_domain_runs(dirs, clock, role, domains, held):
    host = SharedHost(domains=xl_list(domains))
    side = lm.HostSide(host, shared_journal(dirs, role), SOURCE if role == "source" else TARGET)
    if held:
        assert side.run("prepare") == ("held", None)
    else:
        with pytest.raises(lm.MigrationError, match="fxm (already runs|does not run) here"):
            side.run("prepare")
    assert changes(host) == []


@pytest.mark.parametrize("role", ["source", "target"])
def test_promote_does_nothing(dirs, clock, role):
    host = SharedHost(domains=xl_list("migrate-source-before"))
    side = lm.HostSide(host, shared_journal(dirs, role, ["step:prepare"]), SOURCE if role == "source" else TARGET)
    assert side.run("promote") == ("held", (True, [])) and side.promote(0) == (True, [])
    assert changes(host) == []


def source_to_finish(dirs, events=("step:prepare", "step:promote", "step:finish")):
    journal = shared_journal(dirs, "source", events)
    cfg = os.path.join(str(dirs), "auto", "fxm.cfg")
    with open(cfg, "w") as handle:
        handle.write('name = "fxm"\n')
    return journal, SharedHost(), cfg


def test_source_finish_is_ownership_and_xl_migrate_only(dirs, clock):
    journal, host, cfg = source_to_finish(dirs)
    host.domain_answers = [xl_list("migrate-source-before"), xl_list("migrate-source-after")]
    lm.HostSide(host, journal, SOURCE).finish()
    incoming = conv.incoming_config_path(VM)
    parked = conv.parked_config_path(VM, str(dirs / "state"))
    # the config goes to the target and leaves /etc/xen/auto (parked) before xl migrate; nothing of DRBD, dm or LVM
    assert changes(host) == ["send 10.77.0.12 %s" % incoming, XL_MIGRATE, "remove " + parked]
    assert logged(journal)[3:] == ["config-sent", "config-parked", "migrate-started", "migrated", "config-removed"]
    assert not os.path.exists(cfg) and host.sent[incoming] == 'name = "fxm"\n'
    assert lm.HostSide(host, journal, SOURCE).run("finish") == ("held", None)


def test_source_finish_keeps_the_config_when_xl_migrate_fails_and_abort_takes_it_back(dirs, clock):
    journal, host, cfg = source_to_finish(dirs)
    host.domain_list = xl_list("migrate-source-before")
    host.migrate_error = CommandError(["xl", "migrate", VM, "10.77.0.12"], 1, "", "migration failed")
    with pytest.raises(CommandError):
        lm.HostSide(host, journal, SOURCE).finish()
    assert os.path.exists(cfg) and logged(journal)[-1] == "config-restored"
    # abort: the domain runs here, nothing else to undo
    lm.HostSide(host, journal, SOURCE).abort()
    assert changes(host) == ["send 10.77.0.12 %s" % conv.incoming_config_path(VM), XL_MIGRATE]


def test_target_finish_waits_for_the_domain_and_installs_the_config(dirs, clock):
    journal = shared_journal(dirs, "target", ["step:prepare", "step:promote", "step:finish"])
    incoming = conv.incoming_config_path(VM, str(dirs / "state"))
    os.makedirs(os.path.dirname(incoming), exist_ok=True)
    with open(incoming, "w") as handle:
        handle.write('name = "fxm"\n')
    host = SharedHost()
    host.domain_answers = [xl_list("migrate-target-before"), xl_list("migrate-target-incoming"),
                           xl_list("migrate-target-after")]
    lm.HostSide(host, journal, TARGET).finish()
    cfg = os.path.join(str(dirs), "auto", "fxm.cfg")
    assert changes(host) == ["write " + cfg, "remove " + incoming]
    assert logged(journal)[3:] == ["arrived", "config-installed"]
    assert lm.HostSide(host, journal, TARGET).run("finish") == ("held", None)


def test_target_abort_undoes_nothing_and_refuses_once_the_domain_arrived(dirs, clock):
    journal = shared_journal(dirs, "target", ["step:prepare", "step:promote"])
    host = SharedHost(domains=xl_list("migrate-target-before"), peer_runs=True)
    lm.HostSide(host, journal, TARGET).abort()
    assert changes(host) == ["peer_runs 10.77.0.11 fxm"]
    host = SharedHost(domains=xl_list("migrate-target-after"))
    with pytest.raises(lm.MigrationError, match="already runs \\(or arrives\\) here: abort refused"):
        lm.HostSide(host, journal, TARGET).abort()


def test_the_module_journals_shared_disks_without_minors():
    params = {"vm": VM, "role": "source", "host_name": "hosta", "address": "10.77.0.11", "peer_name": "hostb",
              "peer_address": "10.77.0.12", "migration_id": "m1", "secret": "s3cret", "owner": {}, "mode": "shared",
              "minors": [], "disks": [{"owner": "hosta.lab", "vg": "xenvg", "lv": "fxs-disk", "path": "ignored"}]}

    class Module(object):
        pass
    module = Module()
    module.params = params
    data = live_migration.new_journal(module)
    assert (data["mode"], data["disks"]) == ("shared", [DISK])
    module.params = dict(params, disks=[{"owner": "hosta", "vg": "xenvg", "lv": "d;reboot"}])
    with pytest.raises(lm.MigrationError, match="invalid LVM LV name 'd;reboot'"):
        live_migration.new_journal(module)
    module.params = dict(params, mode="plain")
    with pytest.raises(lm.MigrationError, match="needs one minor per disk"):
        live_migration.new_journal(module)


def test_the_preflight_reports_a_disk_on_its_shared_path(fixture_text, fake_module, monkeypatch, tmp_path):
    """live_migration step=preflight on hosta, commands answered by the xl 4.17.5 and lvm 2.03.16 recordings;
    fxm's disk in xl list -l edited to its shared path (NOT a recording: the lab's fxm ran on its LV)."""
    from ansible_collections.sanless.xen.plugins.module_utils import diskexport, iscsi
    from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv, vgs_argv
    from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
    from ansible_collections.sanless.xen.plugins.module_utils.xen import Toolstack

    xl = ("xl", "4.17.5")
    long_text = fixture_text(*xl + ("xl-list-l-fxm.json",))
    assert '"pdev_path": "/dev/xenvg/fxm-disk"' in long_text
    outputs = {("xl", "list"): (0, fixture_text(*xl + ("xl-list-migrate-source-before.txt",)), ""),
               ("xl", "info"): (0, fixture_text(*xl + ("xl-info.txt",)), ""),
               ("xl", "list", "-l", VM): (0, long_text.replace("/dev/xenvg/fxm-disk", PATH), ""),
               tuple(vgs_argv()): (0, fixture_text("lvm", "2.03.16", "vgs.json"), ""),
               tuple(lvs_argv()): (0, fixture_text("lvm", "2.03.16", "lvs-domu.json"), "")}
    module = fake_module(outputs, tools=["xl", "lvs"])
    module.params = {"vm": VM, "peers": [], "state_dir": str(tmp_path / "state")}
    (tmp_path / "drbd.d").mkdir()
    monkeypatch.setattr(lm, "DRBD_CONF_DIR", str(tmp_path / "drbd.d"))
    monkeypatch.setattr(iscsi, "ROOT", str(tmp_path))
    monkeypatch.setattr(diskexport, "device_exists", lambda path: True)
    iscsi.ensure_shared_path("hosta", "xenvg", "fxs-disk", {"KERNEL": "dm-3"}, "/dev/xenvg/fxs-disk", False)
    runner = CommandRunner(module)
    facts = live_migration.preflight(module, lm.Host(runner, Toolstack(runner, "xl")), runner)
    assert [(d["pdev_path"], d["lv"], d["shared"]) for d in facts["disks"]] == [
        (PATH, None, {"owner": "hosta", "vg": "xenvg", "lv": "fxs-disk"})]
    assert facts["shared_paths"] == [PATH]
