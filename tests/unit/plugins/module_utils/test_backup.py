# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backups and restores (module_utils/backup.py) on a fake dom0: xl and LVM answer with the lab recordings
(xl 4.17.5: fxrec running, its xl list -l and config; lvm 2.03.16: lvs-domu, vgs, lvcreate-snapshot), the
snapshot's lvs row being the recorded snapshot row (lvs-snapshot-filled / -overflowed) renamed to fxrec's
backup snapshot; LV devices are files under tmp_path; dd, sha256sum, mkdir, mv and cat really run, over a
fake ssh (which runs its command here) for a backup host."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import backup as bk
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.lvm import Lvm
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
from ansible_collections.sanless.xen.plugins.module_utils.xen import Toolstack, config_for_new_domain

XL = ("xl", "4.17.5")
LVM = ("lvm", "2.03.16")
MIB = 1024 * 1024
_READER = {}


@pytest.fixture(autouse=True)
def _recordings(fixture_text):
    _READER["read"] = fixture_text


def read_fixture(*parts):
    """A recording under tests/unit/fixtures (conftest's fixture_text)."""
    return _READER["read"](*parts)


FAKE_SSH = "#!/bin/sh\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift 2\nexec \"$@\"\n"


def _rows(name):
    return json.loads(read_fixture(*LVM + (name,)))["report"][0]["lv"]


def _renamed(row, name, origin=None):
    row = dict(row, lv_name=name, lv_path="/dev/xenvg/%s" % name, lv_dm_path="/dev/mapper/xenvg-%s" % name.replace("-", "--"))
    if origin is not None:
        row["origin"] = origin
    return row


class Dom0(object):
    """AnsibleModule's run_command for one fake dom0 (see the module docstring)."""

    def __init__(self, tmp_path, running=True, vg_free=None, snapshot_row="lvs-snapshot-filled.json"):
        self.tmp = tmp_path
        self.check_mode = False
        self.calls = []
        self.running = running
        self.paused = False
        self.vg_free = vg_free
        self.snapshot_row = snapshot_row
        self.snapshot = False
        self.created = []          # plain LVs lvcreate made (restores, backup LVs)
        self.lvs_domu = _rows("lvs-domu.json")
        self.devices = tmp_path / "dev"
        self.devices.mkdir()
        origin = self.device("xenvg", "fxrec-disk")
        with open(origin, "wb") as handle:   # 128 MiB like the recorded LV: 3 MiB of data, the rest zeros
            handle.write(os.urandom(3 * MIB))
            handle.seek(64 * MIB)
            handle.write(b"SANLESS-HB-00000042")
            handle.truncate(128 * MIB)

    def device(self, vg, lv):
        name = lv[:-len(conv.BACKUP_SNAPSHOT_SUFFIX)] if lv.endswith(conv.BACKUP_SNAPSHOT_SUFFIX) else lv
        return str(self.devices / ("%s-%s" % (vg, name)))    # a snapshot reads as its origin (nothing writes here)

    def lvs_text(self):
        rows = list(self.lvs_domu)
        if self.snapshot:
            rows.append(_renamed(_rows(self.snapshot_row)[1], "fxrec-disk.bksnap", origin="fxrec-disk"))
        for name in self.created:   # as lvcreate leaves an LV: active, not open (the recorded mig1-disk's row)
            rows.append(_renamed(self.lvs_domu[3], name))
        return json.dumps({"report": [{"lv": rows}]})

    def vgs_text(self):
        data = json.loads(read_fixture(*LVM + ("vgs.json",)))
        if self.vg_free is not None:   # the recorded VG with less free space (derived, not recorded)
            data["report"][0]["vg"][0]["vg_free"] = str(self.vg_free)
        return json.dumps(data)

    def xl_list(self):
        text = read_fixture(*XL + ("xl-list-paused.txt" if self.paused else "xl-list-domu.txt",))
        lines = text.splitlines(True)
        return "".join(line for line in lines if self.running or not line.startswith("fxrec"))

    def run_command(self, args, **kwargs):
        args = list(args)
        self.calls.append(args)
        if args[:2] == ["xl", "list"]:
            return (0, read_fixture(*XL + ("xl-list-l-fxrec.json",)), "") if "-l" in args else (0, self.xl_list(), "")
        if args[:2] in (["xl", "pause"], ["xl", "unpause"]):
            self.paused = args[1] == "pause"
            return 0, "", ""
        if args[:2] == ["xl", "create"]:
            return 0, "", ""
        if args[0] == "lvs":
            return 0, self.lvs_text(), ""
        if args[0] == "vgs":
            return 0, self.vgs_text(), ""
        if args[0] == "lvcreate" and "-s" in args:
            recorded = json.loads(read_fixture(*LVM + ("lvcreate-snapshot.json",)))
            self.snapshot = True
            return recorded["rc"], recorded["stdout"], recorded["stderr"]
        if args[0] == "lvcreate":
            name = args[args.index("-n") + 1]
            size = int(args[args.index("-L") + 1].rstrip("b"))
            with open(self.device("xenvg", name), "wb") as handle:
                handle.truncate(size)
            self.created.append(name)
            return 0, '  Logical volume "%s" created.\n' % name, ""
        if args[0] == "lvremove":
            name = args[-1].split("/")[1]
            if name == "fxrec-disk.bksnap":
                self.snapshot = False
            else:
                self.created.remove(name)
            return 0, '  Logical volume "%s" successfully removed.\n' % name, ""
        proc = subprocess.run(args, input=kwargs.get("data"), capture_output=True, check=False,
                              env=dict(os.environ, LANG="C"))
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def changes(self):
        return [c for c in self.calls if c[0] in ("lvcreate", "lvremove") or c[:2] in (["xl", "pause"], ["xl", "unpause"])]


@pytest.fixture
def dom0(tmp_path, monkeypatch):
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "ssh").write_text(FAKE_SSH)
    (fake / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (fake, os.environ["PATH"]))
    (tmp_path / "auto").mkdir()
    (tmp_path / "auto" / "fxrec.cfg").write_text(read_fixture(*XL + ("domu-fxrec.cfg",)))

    def make(**kwargs):
        host = Dom0(tmp_path, **kwargs)
        monkeypatch.setattr(bk, "device_path", host.device)
        runner = CommandRunner(host)
        ctx = bk.Context(runner, Lvm(runner), Toolstack(runner, "xl"), str(tmp_path / "state"), str(tmp_path / "lock"),
                         str(tmp_path / "auto"), "hosta", lock_timeout=2)
        return host, ctx
    return make


def _history(tmp_path):
    folder = tmp_path / "state" / "history"
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir())] if folder.is_dir() else []


@pytest.mark.parametrize("dest_text", ["{tmp}/bk", "root@hostb:{tmp}/bk"])
def test_backup_pauses_around_the_snapshot_copies_checks_and_removes_it(dom0, tmp_path, dest_text):
    host, ctx = dom0()
    dest = bk.parse_dest(dest_text.format(tmp=tmp_path))
    result = bk.backup(ctx, "fxrec", dest)
    # the pause holds the snapshot only, and is released before the copy
    changes = [" ".join(c[:3]) for c in host.changes()]
    assert changes == ["xl pause fxrec", "lvcreate -q -y", "xl unpause fxrec", "lvremove -q -y"]
    assert host.calls[host.calls.index(["xl", "pause", "fxrec"]) + 1][:4] == ["lvcreate", "-q", "-y", "-s"]
    assert not host.snapshot and not host.paused
    assert isinstance(result["pause_ms"], int) and result["snapshots_removed"] == ["xenvg/fxrec-disk.bksnap"]
    folder = tmp_path / "bk" / "fxrec" / result["backup"]
    assert sorted(os.listdir(str(folder))) == ["fxrec-disk.img.gz", "manifest.json"]
    origin = open(host.device("xenvg", "fxrec-disk"), "rb").read()
    with gzip.open(str(folder / "fxrec-disk.img.gz")) as handle:
        assert handle.read() == origin
    manifest = json.loads((folder / "manifest.json").read_text())
    assert oct(os.stat(str(folder / "manifest.json")).st_mode & 0o777) == "0o600"
    disk = manifest["disks"][0]
    assert disk["sha256"] == hashlib.sha256(origin).hexdigest()
    assert disk["file_sha256"] == hashlib.sha256((folder / "fxrec-disk.img.gz").read_bytes()).hexdigest()
    assert (disk["vdev"], disk["disk"], disk["size_bytes"]) == ("xvda", "disk", 128 * MIB)
    assert disk["snapshot_fill_pct"] == 37.7 and manifest["consistent_point"] == "pause"
    assert manifest["config"] == read_fixture(*XL + ("domu-fxrec.cfg",))
    ssh = [c for c in host.calls if c[0] == "ssh"]
    assert bool(ssh) == dest_text.startswith("root@")
    assert all(c[c.index("--") + 1] == "root@hostb" for c in ssh)
    # the journal is closed into history, with the pause
    assert not os.path.exists(str(tmp_path / "state" / "backups" / "fxrec.json"))
    closed = _history(tmp_path)[-1]
    assert closed["outcome"] == "finished" and closed["pause_ms"] == result["pause_ms"]
    events = [e["event"] for e in closed["log"]]
    assert events[:4] == ["begin", "pause", "snapshot", "unpause"] and "snapshot-removed" in events


def test_backup_into_a_vg_reads_the_copy_back(dom0, tmp_path):
    host, ctx = dom0()
    result = bk.backup(ctx, "fxrec", bk.parse_dest(dest_vg="xenvg"))
    name = conv.backup_lv_name("fxrec-disk", result["backup"])
    assert host.created == [name]
    assert open(host.device("xenvg", name), "rb").read() == open(host.device("xenvg", "fxrec-disk"), "rb").read()
    manifest = json.loads(open(conv.backup_vg_manifest_path(result["backup"], str(tmp_path / "state"))).read())
    assert manifest["disks"][0]["backup_lv"] == name and manifest["compression"] is None


def test_snapshot_that_cannot_fit_is_refused_before_anything_changes(dom0, tmp_path):
    host, ctx = dom0(vg_free=16 * MIB)
    with pytest.raises(bk.BackupError) as info:
        bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")), snapshot_size="100%ORIGIN")
    msg = info.value.msg
    assert "nothing was changed" in msg and "fxrec-disk.bksnap" in msg
    assert "has 16777216 bytes (16 MiB) free" in msg
    assert host.changes() == [] and not (tmp_path / "bk").exists()
    assert not (tmp_path / "state" / "backups").exists()


def test_unknown_vm_is_refused(dom0, tmp_path):
    host, ctx = dom0(running=False)
    with pytest.raises(bk.BackupError, match="VM fxrec does not run here"):
        bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")))
    assert host.changes() == [] and not (tmp_path / "state" / "backups").exists()


def test_existing_destination_is_refused(dom0, tmp_path, monkeypatch):
    host, ctx = dom0()
    monkeypatch.setattr(bk.time, "time", lambda: 1796364000.0)
    ctx.clock = bk.time.time
    (tmp_path / "bk" / "fxrec" / "fxrec-20261204T060000Z").mkdir(parents=True)
    with pytest.raises(bk.BackupError, match="a backup never overwrites one"):
        bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")))
    assert host.changes() == []


@pytest.mark.parametrize("dest,dest_vg,why", [
    ("hostb:/srv/bk;rm -rf /", None, "invalid backup folder"),
    ("$(reboot):/srv/bk", None, "the host before ':'"),
    ("/srv/../etc", None, "invalid backup folder"),
    ("relative/path", None, "invalid backup folder"),
    (None, "vg name", "invalid LVM VG name"),
    ("/srv/bk", "xenvg", "one of them"),
    (None, None, "one of them"),
])
def test_bad_destinations_are_refused(dest, dest_vg, why):
    with pytest.raises(ValueError, match=why):
        bk.parse_dest(dest, dest_vg)


def test_a_snapshot_that_overflows_during_the_copy_voids_it(dom0, tmp_path):
    host, ctx = dom0(snapshot_row="lvs-snapshot-overflowed.json")
    with pytest.raises(bk.BackupError, match="turned invalid"):
        bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")))
    assert not host.snapshot and not host.paused
    folder = tmp_path / "bk" / "fxrec"
    assert list(folder.iterdir()) == []    # the image copied before the overflow showed is gone with its folder
    assert _history(tmp_path)[-1]["outcome"] == "failed"


def _killed_backup(ctx, host, tmp_path):
    """What a backup killed during its copy leaves: an open journal, the snapshot, a .part; the domain paused when
    the kill came between xl pause and xl unpause."""
    journal = lm.Journal("fxrec", ctx.state_dir, "backups")
    part = tmp_path / "bk" / "fxrec" / "fxrec-20261204T060000Z" / "fxrec-disk.img.gz"
    part.parent.mkdir(parents=True)
    (part.parent / (part.name + ".part")).write_bytes(b"partial")
    journal.data = {"vm": "fxrec", "id": "fxrec-20261204T060000Z", "kind": "backup",
                    "dest": {"kind": "dir", "path": str(tmp_path / "bk")},
                    "disks": [{"vg": "xenvg", "lv": "fxrec-disk", "snapshot": "fxrec-disk.bksnap", "image": str(part)}]}
    journal.mark("begin")
    journal.mark("pause")
    host.paused = True
    host.snapshot = True
    return part


def test_cleanup_after_a_kill_unpauses_and_removes_the_snapshot_and_the_partial_copy(dom0, tmp_path):
    host, ctx = dom0()
    part = _killed_backup(ctx, host, tmp_path)
    result = bk.cleanup(ctx, "fxrec")
    assert result["unpaused"] and result["removed"] == ["xenvg/fxrec-disk.bksnap"]
    assert not host.snapshot and not host.paused
    assert not os.path.exists(str(part) + ".part") and not part.parent.exists()
    assert _history(tmp_path)[-1]["outcome"] == "cleaned"
    # a second cleanup finds nothing to do
    host.calls = []
    assert bk.cleanup(ctx, "fxrec")["changed"] is False and host.changes() == []


def test_rerun_after_a_kill_cleans_up_first_then_backs_up(dom0, tmp_path):
    host, ctx = dom0()
    _killed_backup(ctx, host, tmp_path)
    result = bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk2")))
    assert result["cleanup"]["removed"] == ["xenvg/fxrec-disk.bksnap"] and result["cleanup"]["unpaused"]
    changes = [" ".join(c[:2]) for c in host.changes()]
    # one unpause for the killed run's pause, then this run's own pause, snapshot, unpause, removal
    assert changes == ["xl unpause", "lvremove -q", "xl pause", "lvcreate -q", "xl unpause", "lvremove -q"]
    assert [h["outcome"] for h in _history(tmp_path)] == ["cleaned", "finished"]


def test_cleanup_waits_for_the_lock_of_a_running_module(dom0, tmp_path, lock_clock):
    _host, ctx = dom0()
    held = lm.StepLock("fxrec", ctx.lock_dir)
    held.acquire()
    try:
        with pytest.raises(bk.BackupError, match="still holds"):
            bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")))
        assert sum(lock_clock.sleeps) >= ctx.lock_timeout  # it waited the timeout out (on lock_clock)
    finally:
        held.release()


def test_restore_into_a_new_vm_round_trip(dom0, tmp_path):
    host, ctx = dom0()
    dest = bk.parse_dest("root@hostb:%s/bk" % tmp_path)
    done = bk.backup(ctx, "fxrec", dest)
    host.calls = []
    result = bk.restore(ctx, "fxrec", done["backup"], "fxnew", dest)
    assert host.created == ["fxnew-disk"]
    lvcreate = [c for c in host.calls if c[0] == "lvcreate"]
    assert lvcreate == [["lvcreate", "-q", "-y", "-W", "y", "-Z", "y", "-L", "134217728b", "-n", "fxnew-disk", "xenvg"]]
    # every image was checked (sha256sum at the backup host) before the LV was made
    first_change = host.calls.index(lvcreate[0])
    assert any(c[0] == "ssh" and "sha256sum" in c for c in host.calls[:first_change])
    assert open(host.device("xenvg", "fxnew-disk"), "rb").read() == open(host.device("xenvg", "fxrec-disk"), "rb").read()
    config = (tmp_path / "auto" / "fxnew.cfg").read_text()
    assert 'name = "fxnew"' in config and "phy:/dev/xenvg/fxnew-disk,xvda,w" in config and "fxrec" not in config
    assert result["started"] is False and not [c for c in host.calls if c[:2] == ["xl", "create"]]
    # never over an existing VM or LV
    with pytest.raises(bk.BackupError) as info:
        bk.restore(ctx, "fxrec", done["backup"], "fxnew", dest)
    assert "LV xenvg/fxnew-disk exists" in info.value.msg and "fxnew.cfg exists" in info.value.msg


def test_restore_refuses_a_corrupt_image_before_anything_changes(dom0, tmp_path):
    host, ctx = dom0()
    dest = bk.parse_dest(str(tmp_path / "bk"))
    done = bk.backup(ctx, "fxrec", dest)
    image = tmp_path / "bk" / "fxrec" / done["backup"] / "fxrec-disk.img.gz"
    image.write_bytes(image.read_bytes()[:-8] + b"garbage!")
    host.calls = []
    with pytest.raises(bk.BackupError, match="the manifest says"):
        bk.restore(ctx, "fxrec", done["backup"], "fxnew", dest)
    assert host.changes() == [] and not (tmp_path / "auto" / "fxnew.cfg").exists()


def test_restore_refuses_names_and_ids_that_do_not_fit(dom0, tmp_path):
    _host, ctx = dom0()
    dest = bk.parse_dest(str(tmp_path / "bk"))
    with pytest.raises(ValueError, match="invalid VM name"):
        bk.restore(ctx, "fxrec", "fxrec-20261204T060000Z", "new;reboot", dest)
    with pytest.raises(ValueError, match="invalid backup id"):
        bk.restore(ctx, "fxrec", "web01-20261204T060000Z", "fxnew", dest)
    with pytest.raises(bk.BackupError, match="must differ"):
        bk.restore(ctx, "fxrec", "fxrec-20261204T060000Z", "fxrec", dest)
    with pytest.raises(bk.BackupError, match="no readable manifest"):
        bk.restore(ctx, "fxrec", "fxrec-20261204T060000Z", "fxnew", dest)


def test_config_for_a_new_domain_drops_the_identity():
    text = ('name = "web01"\nuuid = "0b3b6a3e-0000-4000-8000-000000000001"\n'
            "disk = [ 'phy:/dev/xenvg/web01-disk,xvda,w', 'phy:/dev/mapper/xenvg-web01--data,xvdb,w' ]\n"
            "vif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:01' ]  # the LAN\n")
    paths = {}
    for lv in ("disk", "data"):
        paths.update(bk.lv_path_forms("xenvg", "web01-" + lv, "xenvg", "web09-" + lv))
    out = config_for_new_domain(text, "web09", paths)
    assert out == ('name = "web09"\n'
                   "disk = [ \"phy:/dev/xenvg/web09-disk,xvda,w\", \"phy:/dev/mapper/xenvg-web09--data,xvdb,w\" ]\n"
                   "vif = [ \"bridge=xenbr0\" ]  # the LAN\n")


def test_a_gzip_chunk_of_an_empty_disk_unpacks_in_bounded_blocks():
    # 64 MiB of zeros pack to ~64 KiB: one read of the image unpacks it all, in blocks of at most BLOCK_BYTES
    import zlib
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    image = packer.compress(b"\0" * (64 << 20)) + packer.flush()
    assert len(image) < bk.BLOCK_BYTES
    unpacker = zlib.decompressobj(31)
    sizes = [len(block) for block in bk.unpacked_blocks(unpacker, image)]
    assert max(sizes) <= bk.BLOCK_BYTES and sum(sizes) + len(unpacker.flush()) == 64 << 20


# --------------------------------------------------------------------------- retention (keep)

NOW = 1796364000.0            # 2026-12-04T06:00:00Z: the backup made by the tests below
DAY = 86400


def _at(ctx, monkeypatch, epoch):
    monkeypatch.setattr(bk.time, "time", lambda: epoch)
    ctx.clock = bk.time.time


def _earlier_folders(tmp_path, made, epochs, complete=True):
    """Backups of fxrec beside the folder of the backup made: copies of it under the ids of epochs (with its manifest
    when complete, else only the image, as a killed copy leaves it)."""
    base = tmp_path / "bk" / "fxrec"
    ids = []
    for epoch in epochs:
        backup_id = conv.backup_id("fxrec", epoch)
        folder = base / backup_id
        folder.mkdir()
        (folder / "fxrec-disk.img.gz").write_bytes((base / made / "fxrec-disk.img.gz").read_bytes()[:4096])
        if complete:
            manifest = json.loads((base / made / "manifest.json").read_text())
            (folder / "manifest.json").write_text(json.dumps(dict(manifest, backup=backup_id)))
        ids.append(backup_id)
    return ids


def _made(dom0, tmp_path, monkeypatch, keep=0, epoch=NOW):
    """A first backup (keep 0) to a folder, then the clock at epoch: its folder is the model of the others."""
    host, ctx = dom0()
    _at(ctx, monkeypatch, epoch - 30 * DAY)
    first = bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")))["backup"]
    _at(ctx, monkeypatch, epoch)
    return host, ctx, first


def test_prune_choice_keeps_the_newest_complete_backups_and_never_the_new_one():
    ids = [conv.backup_id("fxrec", NOW - n * DAY) for n in range(6)]     # newest first
    entries = [(ids[0], True), (ids[1], True), (ids[2], False), (ids[3], True), (ids[4], True), (ids[5], True),
               ("fxrec-old", True), ("web01-20261101T060000Z", True), ("notes.txt", True)]
    assert bk.prune_choice(entries, "fxrec", 0, ids[0]) == []
    assert bk.prune_choice(entries, "fxrec", 2, ids[0]) == [ids[5], ids[4], ids[3]]    # the incomplete ids[2] stays
    assert bk.prune_choice(entries, "fxrec", 9, ids[0]) == []
    # a clock set back: the new backup sorts oldest; keep 1 keeps the newest and it
    assert bk.prune_choice(entries, "fxrec", 1, ids[5]) == [ids[4], ids[3], ids[1]]
    # a VM whose name another's begins with: only its own ids count
    assert bk.prune_choice([("fx-" + ids[1], True), (ids[1], True), (ids[0], True)], "fxrec", 1, ids[0]) == [ids[1]]
    with pytest.raises(ValueError, match="0 .keep all. or more"):
        bk.prune_choice(entries, "fxrec", -1, ids[0])


def test_keep_0_removes_nothing(dom0, tmp_path, monkeypatch):
    host, ctx, first = _made(dom0, tmp_path, monkeypatch)
    older = _earlier_folders(tmp_path, first, [NOW - 20 * DAY, NOW - 10 * DAY])
    host.calls = []
    result = bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")), keep=0)
    assert result["pruned"] == [] and result["prune_skipped"] == []
    assert sorted(os.listdir(str(tmp_path / "bk" / "fxrec"))) == sorted([first, result["backup"]] + older)
    assert not [c for c in host.calls if c[0] in ("ls", "rm")]


@pytest.mark.parametrize("dest_text", ["{tmp}/bk", "root@hostb:{tmp}/bk"])
def test_keep_2_removes_the_oldest_complete_backups_not_an_incomplete_one(dom0, tmp_path, monkeypatch, dest_text):
    host, ctx, first = _made(dom0, tmp_path, monkeypatch)
    complete = _earlier_folders(tmp_path, first, [NOW - 20 * DAY, NOW - 10 * DAY, NOW - DAY])
    incomplete = _earlier_folders(tmp_path, first, [NOW - 40 * DAY], complete=False)
    (tmp_path / "bk" / "fxrec" / "README").write_text("not a backup")
    host.calls = []
    result = bk.backup(ctx, "fxrec", bk.parse_dest(dest_text.format(tmp=tmp_path)), keep=2)
    # 5 complete (first, 3 earlier, the new one): the 2 newest stay, the oldest 3 go; the incomplete one is no backup
    assert result["pruned"] == [first, complete[0], complete[1]]
    assert sorted(os.listdir(str(tmp_path / "bk" / "fxrec"))) == sorted(["README", complete[2], result["backup"]] + incomplete)
    rm = [c[c.index("rm"):] if c[0] == "ssh" else c for c in host.calls if "rm" in c]
    assert rm == [["rm", "-rf", "--", "%s/bk/fxrec/%s" % (tmp_path, name)] for name in result["pruned"]]
    assert all(c[0] == "ssh" for c in host.calls if "ls" in c or "rm" in c) == dest_text.startswith("root@")
    # retention comes after the manifest of the new backup
    assert host.calls.index([c for c in host.calls if "rm" in c][0]) > \
        max(i for i, c in enumerate(host.calls) if "manifest.json.part" in " ".join(c))


def test_the_new_backup_is_never_pruned_even_when_it_sorts_oldest(dom0, tmp_path, monkeypatch):
    host, ctx, first = _made(dom0, tmp_path, monkeypatch, epoch=NOW - 60 * DAY)   # a clock set back 60 days
    later = _earlier_folders(tmp_path, first, [NOW - 2 * DAY, NOW - DAY])
    result = bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")), keep=1)
    assert result["backup"] < later[0] and result["pruned"] == [first, later[0]]
    assert sorted(os.listdir(str(tmp_path / "bk" / "fxrec"))) == sorted([result["backup"], later[1]])


def _earlier_vg_backups(host, ctx, made, epochs):
    """Backups of fxrec into xenvg made before: their LVs (as the first backup's) and their manifests."""
    manifest = json.loads(open(conv.backup_vg_manifest_path(made, ctx.state_dir)).read())
    ids = []
    for epoch in epochs:
        backup_id = conv.backup_id("fxrec", epoch)
        name = conv.backup_lv_name("fxrec-disk", backup_id)
        open(host.device("xenvg", name), "wb").close()
        host.created.append(name)
        disks = [dict(manifest["disks"][0], backup_lv=name)]
        with open(conv.backup_vg_manifest_path(backup_id, ctx.state_dir), "w") as handle:
            json.dump(dict(manifest, backup=backup_id, disks=disks), handle)
        ids.append(backup_id)
    return ids


def test_keep_with_a_vg_removes_the_backup_lvs_then_the_manifest(dom0, tmp_path, monkeypatch):
    host, ctx = dom0()
    _at(ctx, monkeypatch, NOW - 30 * DAY)
    first = bk.backup(ctx, "fxrec", bk.parse_dest(dest_vg="xenvg"))["backup"]
    older = _earlier_vg_backups(host, ctx, first, [NOW - 20 * DAY, NOW - 10 * DAY])
    # another VG's backup of fxrec (its manifest only) is not of this destination
    other = conv.backup_id("fxrec", NOW - 50 * DAY)
    manifest = json.loads(open(conv.backup_vg_manifest_path(first, ctx.state_dir)).read())
    with open(conv.backup_vg_manifest_path(other, ctx.state_dir), "w") as handle:
        json.dump(dict(manifest, backup=other, dest={"kind": "vg", "vg": "bkvg"}), handle)
    _at(ctx, monkeypatch, NOW)
    host.calls = []
    remove = os.remove
    monkeypatch.setattr(bk.os, "remove", lambda path: (host.calls.append(["(os.remove)", path]), remove(path)))
    result = bk.backup(ctx, "fxrec", bk.parse_dest(dest_vg="xenvg"), keep=2)
    assert result["pruned"] == [first, older[0]] and result["prune_skipped"] == []
    # each backup: its LV, then its manifest
    steps = [c[-1] for c in host.calls if c[0] in ("lvremove", "(os.remove)") and ".bksnap" not in c[-1]]
    assert steps == [step for b in result["pruned"] for step in (
        "xenvg/" + conv.backup_lv_name("fxrec-disk", b), conv.backup_vg_manifest_path(b, ctx.state_dir))]
    assert host.created == [conv.backup_lv_name("fxrec-disk", b) for b in (older[1], result["backup"])]
    folder = os.path.dirname(conv.backup_vg_manifest_path(first, ctx.state_dir))
    assert sorted(os.listdir(folder)) == sorted("%s.json" % b for b in (other, older[1], result["backup"]))
    removed = [c[-1] for c in host.calls if c[0] == "lvremove" and ".bksnap" not in c[-1]]
    assert removed == ["xenvg/" + conv.backup_lv_name("fxrec-disk", b) for b in result["pruned"]]


def test_keep_with_a_vg_keeps_a_backup_whose_manifest_names_another_lv(dom0, tmp_path, monkeypatch):
    host, ctx = dom0()
    _at(ctx, monkeypatch, NOW - 30 * DAY)
    first = bk.backup(ctx, "fxrec", bk.parse_dest(dest_vg="xenvg"))["backup"]
    path = conv.backup_vg_manifest_path(first, ctx.state_dir)
    manifest = json.loads(open(path).read())
    manifest["disks"][0]["backup_lv"] = "fxrec-disk"        # the VM's own disk: never removed
    with open(path, "w") as handle:
        json.dump(manifest, handle)
    _at(ctx, monkeypatch, NOW)
    result = bk.backup(ctx, "fxrec", bk.parse_dest(dest_vg="xenvg"), keep=1)
    assert result["pruned"] == [] and result["prune_skipped"][0].startswith(first + ": its manifest names backup LV")
    assert os.path.exists(path) and not [c for c in host.calls if c[0] == "lvremove" and c[-1] == "xenvg/fxrec-disk"]


def test_keep_in_check_mode_is_not_computed(dom0, tmp_path, monkeypatch):
    host, ctx, first = _made(dom0, tmp_path, monkeypatch)
    host.check_mode = True
    ctx.runner.check_mode = True
    host.calls = []
    result = bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")), keep=1)
    assert result["changed"] and result["pruned"] == []
    assert os.listdir(str(tmp_path / "bk" / "fxrec")) == [first]
    assert not [c for c in host.calls if c[0] in ("ls", "rm")]


def test_negative_keep_is_refused_before_anything_changes(dom0, tmp_path):
    host, ctx = dom0()
    with pytest.raises(ValueError, match="invalid keep -1"):
        bk.backup(ctx, "fxrec", bk.parse_dest(str(tmp_path / "bk")), keep=-1)
    assert host.calls == [] and not (tmp_path / "bk").exists()
