# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Consistent backups of a running VM's disks and their restore into a new VM (docs/backup.md).

One backup, on the VM's dom0, in one module call (the vm_backup module):

1. refusals before anything changes: the VM runs here on plain LVs, no migration of it is open, no
   foreign LV has a snapshot's name, the snapshots of all its disks fit in their VGs together
   (lvm.fit_problem, with the free space), the destination's backup folder or LVs do not exist;
2. the journal backups/VM.json (livemigrate.Journal) is written before the first lvcreate -s, so
   every snapshot that can exist is named in a journal;
3. xl pause, one snapshot per disk (<lv>.bksnap), xl unpause in a finally: the disks are one point in
   time; the pause is measured (pause_ms) and journaled, so a rerun after a kill only unpauses;
4. each snapshot is read in 4 MiB blocks, SHA-256 of the raw bytes, and sent: gzip to a file
   (HOST:/PATH over ssh from dom0 to dom0, or /PATH on this dom0; .part until its SHA-256 is read back
   at the destination) or raw into a new LV of a backup VG on this dom0 (read back for its SHA-256);
   a snapshot that turns invalid (its copy-on-write space overflowed) fails the copy;
5. the manifest (the VM's config, per disk the sizes and checksums, the pause), written last;
6. the snapshots are removed in a finally; a run killed before leaves its journal open, and the next
   backup or cleanup of the VM removes them (and the partial copies) from it, after waiting for the
   StepLock a still running module holds;
7. retention (keep > 0), once the manifest is written: of the VM's complete backups at the destination (those with
   their manifest), all but the newest keep are removed, never the one just made (prune_choice picks them).

A restore reads the manifest, checks every image's checksum before anything changes, creates the new
VM's LVs (conventions.vm_disk_lv, the manifest's sizes, fit-checked together; never over an existing
LV), writes each image, reads it back for its checksum and writes the new VM's config
(xen.config_for_new_domain) without starting it unless asked. It is journaled in restores/NEW.json:
a rerun after a kill rewrites the LVs its journal made, nothing else.

Every command is an argv list (runner); the copies run dd/cat/sha256sum through subprocess with the
same argv rules, over ssh only with arguments that need no quoting (xen.ssh_argv).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import zlib

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.files import write_file_atomic
from ansible_collections.sanless.xen.plugins.module_utils.lvm import (
    check_name, fit_problem, format_size, lv_is_open, lv_is_origin, lv_of_path, parse_snapshot_size, round_to_extents,
    snapshot_cow_bytes,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import (
    C_LOCALE, SBIN_PATH, CommandError, _check_argv,
)
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    check_migrate_target, config_for_new_domain, lv_path_forms, ssh_argv, storage_mode,
)

BLOCK_BYTES = 4 * 1024 * 1024
VALIDITY_EVERY_S = 30
DEFAULT_SNAPSHOT_SIZE = "20%ORIGIN"
GZIP_LEVEL = 6
MANIFEST_VERSION = 1


class BackupError(Exception):
    """A backup or restore cannot go on; details go into the module result."""

    def __init__(self, msg, **details):
        super(BackupError, self).__init__(msg)
        self.msg = msg
        self.details = details


def device_path(vg, lv):
    """The block device of an LV (the tests point it at files)."""
    return conv.lv_path(vg, lv)


# --------------------------------------------------------------------------- destinations

def parse_dest(dest=None, dest_vg=None):
    """{"kind": "host", "host", "path"} for HOST:/PATH, {"kind": "dir", "path"} for /PATH (on this dom0),
    {"kind": "vg", "vg"} for dest_vg; ValueError for anything else (one of the two, names and paths
    without spaces or shell metacharacters)."""
    if bool(dest) == bool(dest_vg):
        raise ValueError("give dest (HOST:/PATH or /PATH) or dest_vg (a VG on the VM's dom0), one of them")
    if dest_vg:
        return {"kind": "vg", "vg": check_name(dest_vg, "VG name (dest_vg)")}
    if not isinstance(dest, str):
        raise ValueError("invalid dest %r: HOST:/PATH or /PATH" % (dest,))
    host, sep, path = dest.rpartition(":")
    if sep:
        try:
            check_migrate_target(host)
        except ValueError:
            raise ValueError("invalid dest %r: the host before ':' must be a host name, an IP address or user@host "
                             "(no spaces or shell metacharacters)" % (dest,))
        return {"kind": "host", "host": host, "path": conv.check_backup_dir(path)}
    return {"kind": "dir", "path": conv.check_backup_dir(path)}


def describe_dest(dest):
    if dest["kind"] == "vg":
        return "VG %s" % dest["vg"]
    return ("%s:%s" % (dest["host"], dest["path"])) if dest["kind"] == "host" else dest["path"]


def _env():
    env = dict(os.environ)
    env.update(C_LOCALE)
    env["PATH"] = SBIN_PATH + ":" + env.get("PATH", "/usr/bin:/bin")
    return env


class Files(object):
    """A file destination: this dom0's folders, or another host's over ssh (argv with nothing to quote)."""

    def __init__(self, runner, dest):
        self.runner = runner
        self.host = dest.get("host")

    def argv(self, argv):
        return ssh_argv(self.host, argv) if self.host else _check_argv(argv)

    def run(self, argv, changes_state=False, ok_rcs=(0,), data=None):
        return self.runner.run(self.argv(argv), changes_state=changes_state, ok_rcs=ok_rcs, data=data)

    def exists(self, path):
        return self.run(["test", "-e", path], ok_rcs=(0, 1)).rc == 0

    def make_folder(self, path):
        """mkdir -p of its parent, then mkdir -m 0700 of path itself: fails when it exists."""
        self.run(["mkdir", "-p", os.path.dirname(path)], changes_state=True)
        self.run(["mkdir", "-m", "0700", path], changes_state=True)

    def sha256(self, path):
        out = self.run(["sha256sum", path]).stdout.split()
        if not out or len(out[0]) != 64:
            raise BackupError("sha256sum %s printed no checksum" % (path,))
        return out[0]

    def rename(self, path, new_path):
        self.run(["mv", path, new_path], changes_state=True)

    def remove(self, paths):
        if paths:
            self.run(["rm", "-f"] + list(paths), changes_state=True)

    def read_text(self, path):
        return self.run(["cat", path]).stdout

    def write_text(self, path, text):
        """text into path (through path.part, mode 0600, renamed when complete)."""
        self.run(["dd", "of=%s.part" % path, "conv=fsync", "status=none"], changes_state=True, data=text.encode("utf-8"))
        self.run(["chmod", "0600", path + ".part"], changes_state=True)
        self.rename(path + ".part", path)

    def writer(self, path):
        """A process whose stdin goes into path (a stream: run_command takes its input whole)."""
        return subprocess.Popen(  # pylint: disable=ansible-bad-function
            self.argv(["dd", "of=%s" % path, "bs=4M", "conv=fsync", "status=none"]),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())

    def reader(self, path):
        """A process printing path (a stream: run_command returns its output whole)."""
        return subprocess.Popen(  # pylint: disable=ansible-bad-function
            self.argv(["cat", path]), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())


def _finish(proc, what):
    """Wait for a copy process; CommandError (with its stderr) unless it ended with rc 0."""
    err = proc.stderr.read() if proc.stderr else b""
    rc = proc.wait()
    if rc != 0:
        raise CommandError(proc.args, rc, "", err.decode("utf-8", "replace"),
                           msg="%s failed with rc %d: %s" % (what, rc, err.decode("utf-8", "replace").strip()))


def _blocks(handle, size_bytes):
    left = size_bytes
    while left > 0:
        block = handle.read(min(BLOCK_BYTES, left))
        if not block:
            raise BackupError("%s ended %d bytes before its size" % (getattr(handle, "name", "the device"), left))
        left -= len(block)
        yield block


def sha256_of_device(path, size_bytes):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in _blocks(handle, size_bytes):
            digest.update(block)
    return digest.hexdigest()


def copy_device_to_file(device, size_bytes, files, path, check=None):
    """gzip of the device's first size_bytes into path (path.part, its SHA-256 read back at the
    destination, then renamed). check() runs after each block (it raises to stop the copy).
    Returns {sha256 (raw), file_sha256, file_bytes}."""
    part = path + ".part"
    raw, packed = hashlib.sha256(), hashlib.sha256()
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)   # 31: gzip framing, mtime 0
    sent = 0
    proc = files.writer(part)
    try:
        with open(device, "rb") as handle:
            for block in _blocks(handle, size_bytes):
                raw.update(block)
                out = packer.compress(block)
                if out:
                    packed.update(out)
                    proc.stdin.write(out)
                    sent += len(out)
                if check is not None:
                    check()
        out = packer.flush()
        packed.update(out)
        proc.stdin.write(out)
        sent += len(out)
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    _finish(proc, "writing %s" % part)
    there = files.sha256(part)
    if there != packed.hexdigest():
        raise BackupError("the copy %s has SHA-256 %s, %s was sent: the copy is corrupt" % (part, there, packed.hexdigest()))
    files.rename(part, path)
    return {"sha256": raw.hexdigest(), "file_sha256": there, "file_bytes": sent}


def copy_device_to_device(device, size_bytes, target, check=None):
    """The device's first size_bytes onto target (an LV at least that large), fsynced, then read back:
    {sha256, file_sha256: None, file_bytes: size_bytes}; BackupError when the read-back differs."""
    raw = hashlib.sha256()
    with open(device, "rb") as src, open(target, "r+b") as dst:
        for block in _blocks(src, size_bytes):
            raw.update(block)
            dst.write(block)
            if check is not None:
                check()
        dst.flush()
        os.fsync(dst.fileno())
    back = sha256_of_device(target, size_bytes)
    if back != raw.hexdigest():
        raise BackupError("%s reads back with SHA-256 %s, %s was written" % (target, back, raw.hexdigest()))
    return {"sha256": back, "file_sha256": None, "file_bytes": size_bytes}


def unpacked_blocks(unpacker, chunk):
    """What a chunk of gzip unpacks to, in blocks of at most BLOCK_BYTES: 4 MiB of a mostly empty disk's image
    unpack to hundreds of MiB, more than a dom0 has to spare (the lab's restore was OOM-killed)."""
    data = unpacker.decompress(chunk, BLOCK_BYTES)
    while data:
        yield data
        if len(data) < BLOCK_BYTES and not unpacker.unconsumed_tail:
            return
        data = unpacker.decompress(unpacker.unconsumed_tail, BLOCK_BYTES)


def copy_file_to_device(files, path, target, size_bytes, file_sha256):
    """Unpack the gzip image path onto target; the file's and the raw SHA-256 as read: (raw, file)."""
    raw, packed = hashlib.sha256(), hashlib.sha256()
    unpacker = zlib.decompressobj(31)
    written = 0
    proc = files.reader(path)
    try:
        with open(target, "r+b") as dst:
            while True:
                chunk = proc.stdout.read(BLOCK_BYTES)
                if not chunk:
                    break
                packed.update(chunk)
                for data in unpacked_blocks(unpacker, chunk):
                    written += len(data)
                    if written > size_bytes:
                        raise BackupError("%s unpacks to more than the %d bytes of its disk" % (path, size_bytes))
                    raw.update(data)
                    dst.write(data)
            data = unpacker.flush()
            written += len(data)
            raw.update(data)
            dst.write(data)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    _finish(proc, "reading %s" % path)
    if packed.hexdigest() != file_sha256 or written != size_bytes:
        raise BackupError("%s changed while it was restored (SHA-256 %s, %d bytes; the manifest says %s, %d bytes)"
                          % (path, packed.hexdigest(), written, file_sha256, size_bytes))
    return raw.hexdigest(), packed.hexdigest()


# --------------------------------------------------------------------------- the VM and its snapshots

def vm_disks(xen, lvs, vm):
    """The running VM's disks: [{vdev, pdev_path, vg, lv, size_bytes, disk}] (disk: the name provision
    gave it, the LV name without "VM-"). BackupError for a VM whose disks are not all plain LVs."""
    long_info = xen.list_long(vm)[0]
    targets = [disk["pdev_path"] for disk in long_info["disks"]]
    mode = storage_mode(targets)
    if mode != "plain":
        what = "storage mode %s" % mode if mode else "not all LVs"
        raise BackupError("%s: its disks %s are %s; backups take VMs whose disks are plain LVs (docs/backup.md: drbd, "
                          "shared and raid1 are still to come)" % (vm, ", ".join(targets) or "(none)", what))
    disks = []
    for disk in long_info["disks"]:
        lv = lv_of_path(lvs, disk["pdev_path"])
        if lv is None:
            raise BackupError("%s: disk %s (%s) is no LV lvs lists" % (vm, disk["vdev"], disk["pdev_path"]))
        name = conv.disk_of_vm_lv(vm, lv["name"]) or lv["name"]
        disks.append({"vdev": disk["vdev"], "pdev_path": disk["pdev_path"], "vg": lv["vg"], "lv": lv["name"],
                      "size_bytes": lv["size_bytes"], "disk": name, "snapshot": conv.backup_snapshot_name(lv["name"])})
    if not disks:
        raise BackupError("%s has no disks to back up" % (vm,))
    return disks


def snapshot_problems(vm, disks, lvs, vgs, snapshot_size):
    """Why the snapshots of all disks cannot be taken (empty: they can), and the COW bytes of each disk
    (a list beside disks). The VGs are checked for all their disks together."""
    request = parse_snapshot_size(snapshot_size)
    problems, cows, need = [], [], {}
    for disk in disks:
        vg_info = vgs.get(disk["vg"])
        cow, _capped = snapshot_cow_bytes(request, disk["size_bytes"], vg_info["extent_size_bytes"])
        cows.append(cow)
        need.setdefault(disk["vg"], []).append((disk["snapshot"], cow))
        for lv in lvs:
            if lv["vg"] == disk["vg"] and lv["name"] == disk["snapshot"]:
                problems.append("LV %s/%s exists%s; not touched" % (
                    lv["vg"], lv["name"], " and is a snapshot of %s" % lv["origin"] if lv["snapshot"] else
                    " and is no snapshot"))
    for vg in sorted(need):
        total = sum(cow for _name, cow in need[vg])
        problem = fit_problem(vgs[vg], total, "for the backup snapshot%s %s of %s (%s of copy-on-write space, "
                              "backup_snapshot_size %s)" % ("" if len(need[vg]) == 1 else "s",
                                                            ", ".join(name for name, _cow in need[vg]), vm,
                                                            format_size(total), snapshot_size))
        if problem:
            problems.append(problem)
    return problems, cows


def remove_snapshots(lvm, disks):
    """Remove the backup snapshot of each disk ({vg, lv}) that exists: only an LV with the snapshot name
    that is a snapshot of that very LV (anything else by that name is reported, not removed).
    Returns (removed, refused) lists of VG/LV."""
    lvs = lvm.lvs()
    removed, refused = [], []
    for disk in disks:
        snap = conv.backup_snapshot_name(disk["lv"])
        for lv in lvs:
            if lv["vg"] != disk["vg"] or lv["name"] != snap:
                continue
            if lv["snapshot"] and lv["origin"] == disk["lv"]:
                lvm.remove(lv["vg"], lv["name"])
                removed.append("%s/%s" % (lv["vg"], lv["name"]))
            else:
                refused.append("%s/%s" % (lv["vg"], lv["name"]))
    return removed, refused


def leftover_snapshot_disks(lvs, vm):
    """{vg, lv} of the disks of vm (LVs named VM-...) that have a backup snapshot (<lv>.bksnap of them)."""
    return [{"vg": lv["vg"], "lv": lv["origin"]} for lv in lvs
            if lv["snapshot"] and lv["origin"] and conv.disk_of_vm_lv(vm, lv["origin"])
            and lv["name"] == conv.backup_snapshot_name(lv["origin"])]


# --------------------------------------------------------------------------- one backup

class Context(object):
    """What a backup or restore works with: the runner, lvm.Lvm, xen.Toolstack and the paths."""

    def __init__(self, runner, lvm, xen, state_dir=conv.STATE_DIR, lock_dir=conv.LOCK_DIR,
                 config_dir=conv.XEN_AUTO_DIR, hostname="dom0", clock=time.time, lock_timeout=1800):
        self.runner = runner
        self.lvm = lvm
        self.xen = xen
        self.state_dir = state_dir
        self.lock_dir = lock_dir
        self.config_dir = config_dir
        self.hostname = hostname
        self.clock = clock
        self.lock_timeout = lock_timeout

    @property
    def check_mode(self):
        return self.runner.check_mode


def locked(ctx, vm):
    lock = lm.StepLock(vm, ctx.lock_dir)
    try:
        waited = lock.acquire(timeout=ctx.lock_timeout)
    except lm.MigrationError as exc:
        raise BackupError(exc.msg)
    return lock, waited


def cleanup(ctx, vm, domains=None):
    """Undo what a killed backup of vm left here: unpause when its journal's pause holds, remove the
    snapshots it names (and any other <VM-disk>.bksnap snapshot of vm's disks) and its partial copies,
    close it as "cleaned". Returns {changed, removed, refused, unpaused, journal, partial}."""
    journal = lm.Journal(vm, ctx.state_dir, "backups")
    data = journal.load()
    lvs = ctx.lvm.lvs()
    disks = list((data or {}).get("disks") or [])
    known = set((d["vg"], d["lv"]) for d in disks)
    disks += [d for d in leftover_snapshot_disks(lvs, vm) if (d["vg"], d["lv"]) not in known]
    result = {"changed": False, "removed": [], "refused": [], "unpaused": False, "journal": None, "partial": []}
    if data is None and not disks:
        return result
    if ctx.check_mode:
        result["removed"] = ["%s/%s" % (d["vg"], conv.backup_snapshot_name(d["lv"])) for d in disks
                             if any(lv["vg"] == d["vg"] and lv["name"] == conv.backup_snapshot_name(d["lv"]) for lv in lvs)]
        result["changed"] = bool(result["removed"]) or data is not None
        result["journal"] = data and data.get("id")
        return result
    if data is not None:
        result["journal"] = data.get("id")
        domains = domains if domains is not None else dict((d["name"], d) for d in ctx.xen.list())
        if lm.journaled_pause_holds(journal, vm, domains):
            lm.journaled_unpause(journal, ctx.xen, vm)
            result["unpaused"] = True
    result["removed"], result["refused"] = remove_snapshots(ctx.lvm, disks)
    if data is not None:
        journal.mark("snapshot-removed", removed=result["removed"])
        result["partial"] = _remove_partial(ctx, data)
        journal.close("cleaned")
    result["changed"] = True
    return result


def _remove_partial(ctx, data):
    """The copies an unfinished backup began (files .part, backup LVs without a manifest): removed."""
    dest = data.get("dest") or {}
    gone = []
    if data.get("manifest_written"):
        return gone
    if dest.get("kind") in ("dir", "host"):
        # the folder is this backup's own (mkdir fails on an existing one): its images go, and it
        files = Files(ctx.runner, dest)
        images = [path for d in data.get("disks") or [] if d.get("image") for path in (d["image"] + ".part", d["image"])]
        try:
            files.remove(images)
            gone.extend(images)
            if images:
                files.run(["rmdir", os.path.dirname(images[0])], changes_state=True, ok_rcs=(0, 1))
        except CommandError:
            pass  # an unreachable backup host keeps them; without a manifest they are never taken for a backup
    elif dest.get("kind") == "vg":
        for lv in data.get("backup_lvs") or []:
            found = ctx.lvm.find(dest["vg"], lv)
            if found is not None and not found["snapshot"]:
                ctx.lvm.remove(dest["vg"], lv)
                gone.append("%s/%s" % (dest["vg"], lv))
    return gone


def _read_config(ctx, vm):
    path = conv.auto_config_path(vm, ctx.config_dir)
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise BackupError("%s: cannot read the config of %s (%s): a backup keeps it for the restore" % (ctx.hostname, vm, exc))


def _destination_problems(ctx, vm, dest, backup, disks, vgs, lvs):
    if dest["kind"] == "vg":
        vg_info = vgs.get(dest["vg"])
        if vg_info is None:
            return ["%s: backup VG %s does not exist" % (ctx.hostname, dest["vg"])]
        problems = []
        need = 0
        for disk in disks:
            name = conv.backup_lv_name(disk["lv"], backup)
            if any(lv["vg"] == dest["vg"] and lv["name"] == name for lv in lvs):
                problems.append("backup LV %s/%s exists; not overwritten" % (dest["vg"], name))
            need += round_to_extents(disk["size_bytes"], vg_info["extent_size_bytes"])
        problem = fit_problem(vg_info, need, "for the backup LVs of %s" % (vm,))
        if problem:
            problems.append(problem)
        if os.path.exists(conv.backup_vg_manifest_path(backup, ctx.state_dir)):
            problems.append("the manifest of %s exists; not overwritten" % backup)
        return problems
    folder = conv.backup_folder(dest["path"], backup)
    files = Files(ctx.runner, dest)
    try:
        if files.exists(folder):
            return ["destination %s exists; a backup never overwrites one" % (describe_dest(dict(dest, path=folder)),)]
    except CommandError as exc:
        return ["destination %s cannot be reached: %s" % (describe_dest(dest), exc.msg)]
    return []


class _SnapshotWatch(object):
    """check() for the copy: every VALIDITY_EVERY_S, lvs of the snapshot; BackupError once it is invalid."""

    def __init__(self, ctx, vg, name):
        self.ctx, self.vg, self.name = ctx, vg, name
        self.last = ctx.clock()
        self.fill = None

    def read(self):
        lv = self.ctx.lvm.find(self.vg, self.name)
        if lv is None or lv["invalid"]:
            raise BackupError("snapshot %s/%s %s during the copy: its copy-on-write space overflowed (the guest wrote "
                              "more than it holds); the copy is void, raise backup_snapshot_size"
                              % (self.vg, self.name, "vanished" if lv is None else "turned invalid"))
        self.fill = lv["data_percent"]

    def __call__(self):
        now = self.ctx.clock()
        if now - self.last >= VALIDITY_EVERY_S:
            self.last = now
            self.read()


def check_keep(keep):
    """Return keep if it is a retention count (0: keep all), else raise ValueError."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError("invalid keep %r: the number of complete backups to keep, 0 (keep all) or more" % (keep,))
    return keep


def backup(ctx, vm, dest, snapshot_size=DEFAULT_SNAPSHOT_SIZE, pause=True, keep=0):
    """Back up the running vm to dest (parse_dest): see the module docstring. Returns the result dict;
    BackupError (nothing changed unless its details say so) otherwise."""
    conv.check_vm_name(vm)
    parse_snapshot_size(snapshot_size)
    check_keep(keep)
    lock, waited = locked(ctx, vm)
    try:
        return _backup_locked(ctx, vm, dest, snapshot_size, pause, waited, keep)
    finally:
        lock.release()


def _backup_locked(ctx, vm, dest, snapshot_size, pause, waited, keep=0):
    result = {"changed": False, "vm": vm, "host": ctx.hostname, "dest": describe_dest(dest), "waited_for_lock": waited}
    domains = dict((d["name"], d) for d in ctx.xen.list())
    if vm not in domains:
        raise BackupError("%s: VM %s does not run here" % (ctx.hostname, vm))
    if lm.Journal(vm, ctx.state_dir).load() is not None:
        raise BackupError("%s: a migration of %s is open (migrations/%s.json): finish or abort it first" % (ctx.hostname, vm, vm))
    # what a killed run left: unpaused, its snapshots and partial copies removed, its journal closed
    result["cleanup"] = cleanup(ctx, vm, domains)
    if result["cleanup"]["changed"]:
        result["changed"] = True
        domains = dict((d["name"], d) for d in ctx.xen.list())
    lvs = ctx.lvm.lvs()
    vgs = dict((vg["name"], vg) for vg in ctx.lvm.vgs())
    disks = vm_disks(ctx.xen, lvs, vm)
    started = ctx.clock()
    backup_id = conv.backup_id(vm, started)
    problems, cows = snapshot_problems(vm, disks, lvs, vgs, snapshot_size)
    problems += _destination_problems(ctx, vm, dest, backup_id, disks, vgs, lvs)
    if problems:
        raise BackupError("%s: backup of %s refused, nothing was changed: %s" % (ctx.hostname, vm, "; ".join(problems)),
                          problems=problems, disks=disks)
    config_text = _read_config(ctx, vm)
    for disk, cow in zip(disks, cows):
        disk["snapshot_bytes"] = cow
    result.update(backup=backup_id, disks=disks)
    if dest["kind"] != "vg":
        folder = conv.backup_folder(dest["path"], backup_id)
        result["folder"] = folder
        for disk in disks:
            disk["image"] = "%s/%s" % (folder, conv.backup_image_name(disk["lv"]))
    if ctx.check_mode:
        # what retention would remove is not computed in check mode (it depends on the new backup)
        result.update(changed=True, pause_ms=None, seconds=0.0, bytes=sum(d["size_bytes"] for d in disks), bytes_sent=0,
                      snapshots_removed=[], pruned=[], prune_skipped=[])
        return result

    journal = lm.Journal(vm, ctx.state_dir, "backups")
    journal.data = {"vm": vm, "id": backup_id, "kind": "backup", "host": ctx.hostname, "dest": dest,
                    "started_at": started, "disks": [{"vg": d["vg"], "lv": d["lv"], "snapshot": d["snapshot"],
                                                      "image": d.get("image")} for d in disks],
                    "backup_lvs": []}
    journal.mark("begin")
    result["changed"] = True
    outcome = "failed"
    try:
        result["pause_ms"] = _snapshots(ctx, journal, vm, disks, domains, pause)
        files = None
        if dest["kind"] == "vg":
            for disk in disks:
                disk["backup_lv"] = conv.backup_lv_name(disk["lv"], backup_id)
        else:
            files = Files(ctx.runner, dest)
            files.make_folder(result["folder"])
            journal.mark("folder", path=result["folder"])
        for disk in disks:
            _copy_disk(ctx, journal, dest, files, disk)
        manifest = _manifest(ctx, vm, backup_id, dest, disks, config_text, result["pause_ms"], started, pause)
        if dest["kind"] == "vg":
            path = conv.backup_vg_manifest_path(backup_id, ctx.state_dir)
            _write_local(path, json.dumps(manifest, indent=1, sort_keys=True))
        else:
            path = "%s/%s" % (result["folder"], conv.BACKUP_MANIFEST)
            files.write_text(path, json.dumps(manifest, indent=1, sort_keys=True))
        journal.data["manifest_written"] = True
        journal.mark("manifest", path=path)
        result["manifest"] = path
        outcome = "finished"
    finally:
        removed, refused = remove_snapshots(ctx.lvm, disks)
        journal.mark("snapshot-removed", removed=removed, refused=refused)
        result["snapshots_removed"] = removed
        if outcome != "finished":
            _remove_partial(ctx, journal.data)
        journal.data.update(pause_ms=result.get("pause_ms"), seconds=round(ctx.clock() - started, 1))
        journal.close(outcome)
    result["seconds"] = round(ctx.clock() - started, 1)
    result["bytes"] = sum(d["size_bytes"] for d in disks)
    result["bytes_sent"] = sum(d["file_bytes"] for d in disks)
    result["pruned"], result["prune_skipped"] = [], []
    if keep:
        prune(ctx, vm, dest, keep, backup_id, result)
    return result


def _snapshots(ctx, journal, vm, disks, domains, pause):
    """xl pause, lvcreate -s of every disk, xl unpause (in a finally): the pause in ms (None without one)."""
    began = None
    try:
        if pause:
            began = lm.journaled_pause(journal, ctx.xen, vm, domains)
        for disk in disks:
            ctx.lvm.snapshot(disk["vg"], disk["lv"], disk["snapshot"], disk["snapshot_bytes"])
            journal.mark("snapshot", lv="%s/%s" % (disk["vg"], disk["snapshot"]))
    finally:
        if pause and began is not None:
            ended = lm.journaled_unpause(journal, ctx.xen, vm)
            journal.data["pause_window"] = [round(began, 3), round(ended, 3)]
    return int(round((ended - began) * 1000)) if pause else None


def _copy_disk(ctx, journal, dest, files, disk):
    started = ctx.clock()
    device = device_path(disk["vg"], disk["snapshot"])
    watch = _SnapshotWatch(ctx, disk["vg"], disk["snapshot"])
    if dest["kind"] == "vg":
        ctx.lvm.create(dest["vg"], disk["backup_lv"], disk["size_bytes"])
        journal.data["backup_lvs"].append(disk["backup_lv"])
        journal.mark("backup-lv", lv="%s/%s" % (dest["vg"], disk["backup_lv"]))
        copied = copy_device_to_device(device, disk["size_bytes"], device_path(dest["vg"], disk["backup_lv"]), watch)
    else:
        copied = copy_device_to_file(device, disk["size_bytes"], files, disk["image"], watch)
    watch.read()   # still valid after the last block, or the copy is void
    disk.update(copied)
    disk["snapshot_fill_pct"] = watch.fill
    disk["seconds"] = round(ctx.clock() - started, 1)
    journal.mark("copied", lv=disk["lv"], sha256=disk["sha256"])


def _manifest(ctx, vm, backup_id, dest, disks, config_text, pause_ms, started, pause):
    return {
        "version": MANIFEST_VERSION, "backup": backup_id, "vm": vm, "host": ctx.hostname, "started_at": started,
        "finished_at": ctx.clock(), "dest": dest, "consistent_point": "pause" if pause else "none",
        "pause_ms": pause_ms, "compression": None if dest["kind"] == "vg" else "gzip", "config": config_text,
        "disks": [{"vdev": d["vdev"], "disk": d["disk"], "vg": d["vg"], "lv": d["lv"], "size_bytes": d["size_bytes"],
                   "image": os.path.basename(d["image"]) if d.get("image") else None,
                   "backup_lv": d.get("backup_lv"), "sha256": d["sha256"], "file_sha256": d["file_sha256"],
                   "file_bytes": d["file_bytes"], "snapshot_bytes": d["snapshot_bytes"],
                   "snapshot_fill_pct": d["snapshot_fill_pct"]} for d in disks],
    }


def _write_local(path, text):
    write_file_atomic(path, text, 0o600, 0o700)


# --------------------------------------------------------------------------- retention

def prune_choice(entries, vm, keep, current):
    """The backup ids to remove (oldest first) so that the newest keep complete backups of vm stay.
    entries: (name, complete) pairs as listed at the destination, complete when the backup's manifest is
    there. Names that are no backup id of vm and incomplete backups are neither counted nor picked (the
    journaled cleanup owns a partial copy); current, the backup just made, is never picked, even when it
    does not sort among the newest (a clock set back): then keep + 1 stay. keep 0 keeps all."""
    check_keep(keep)
    if not keep:
        return []
    complete = set()
    for name, done in entries:
        try:
            conv.check_backup_id(name, vm)
        except ValueError:
            continue
        if done:
            complete.add(name)
    newest_first = sorted(complete, key=lambda name: conv.BACKUP_ID_RE.match(name).group("stamp"), reverse=True)
    return [name for name in reversed(newest_first[keep:]) if name != current]


def _files_listing(files, base, vm, current):
    """(id, complete) of the folders of vm's backups beside current's (BASE/VM): ls of BASE/VM, then one ls of the
    manifests of the entries that are backup ids of vm (a missing one is an incomplete backup)."""
    folder = os.path.dirname(conv.backup_folder(base, current))
    names = []
    for name in files.run(["ls", "-1", "--", folder]).stdout.splitlines():
        try:
            names.append(conv.check_backup_id(name.strip(), vm))
        except ValueError:
            continue
    manifests = dict(("%s/%s" % (conv.backup_folder(base, name), conv.BACKUP_MANIFEST), name) for name in names)
    found = set()
    if manifests:
        # ls prints the manifests there, rc 2 when some are missing
        listed = files.run(["ls", "-1", "-d", "--"] + sorted(manifests), ok_rcs=(0, 2)).stdout.splitlines()
        found = set(manifests[path.strip()] for path in listed if path.strip() in manifests)
    return [(name, name in found) for name in names]


def _vg_manifests(ctx, vg, vm, current):
    """{id: manifest} of vm's backups into vg on this dom0, beside current's manifest (STATE_DIR/backups/manifests/
    ID.json; an unreadable one, or one of another VG, is left out)."""
    folder = os.path.dirname(conv.backup_vg_manifest_path(current, ctx.state_dir))
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    found = {}
    for name in names:
        backup_id = name[:-len(".json")] if name.endswith(".json") else None
        try:
            conv.check_backup_id(backup_id, vm)
            with open(conv.backup_vg_manifest_path(backup_id, ctx.state_dir)) as handle:
                manifest = json.load(handle)
        except (ValueError, IOError, OSError):
            continue
        if isinstance(manifest, dict) and manifest.get("backup") == backup_id and manifest.get("vm") == vm \
                and manifest.get("dest") == {"kind": "vg", "vg": vg}:
            found[backup_id] = manifest
    return found


def _prune_vg_backup(ctx, vg, backup_id, manifest):
    """Remove the backup LVs of backup_id (each <lv>.bk<stamp> its manifest names, when it still exists), then its
    manifest. Returns None, or why it was kept (an LV that is open, a snapshot or has snapshots, a name that is not
    the backup's), before anything of it was removed."""
    wanted = []
    for disk in manifest.get("disks") or []:
        name = disk.get("backup_lv") if isinstance(disk, dict) else None
        try:
            own = conv.backup_lv_name(disk.get("lv"), backup_id) if name else None
        except ValueError:
            own = None
        if own is None or name != own:
            return "its manifest names backup LV %r, not %s's own" % (name, backup_id)
        wanted.append(name)
    lvs = dict((lv["name"], lv) for lv in ctx.lvm.lvs([vg]))
    for name in wanted:
        lv = lvs.get(name)
        if lv is not None and (lv["snapshot"] or lv_is_origin(lv) or lv_is_open(lv)):
            return "LV %s/%s is %s" % (vg, name, "a snapshot" if lv["snapshot"] else
                                       "open" if lv_is_open(lv) else "the origin of snapshots")
    for name in wanted:
        if name in lvs:
            ctx.lvm.remove(vg, name)
    os.remove(conv.backup_vg_manifest_path(backup_id, ctx.state_dir))
    return None


def prune(ctx, vm, dest, keep, current, result):
    """Retention after the backup current finished: remove vm's complete backups at dest beyond the newest keep
    (prune_choice), never current. Files: rm -rf -- of each BASE/VM/ID folder; a VG: its backup LVs, then its
    manifest. Fills result's pruned (ids removed) and prune_skipped ("ID: why"); BackupError (with the backup's
    result) when a command fails, the new backup being complete."""
    try:
        if dest["kind"] == "vg":
            manifests = _vg_manifests(ctx, dest["vg"], vm, current)
            for backup_id in prune_choice([(name, True) for name in manifests], vm, keep, current):
                why = _prune_vg_backup(ctx, dest["vg"], backup_id, manifests[backup_id])
                if why:
                    result["prune_skipped"].append("%s: %s" % (backup_id, why))
                else:
                    result["pruned"].append(backup_id)
        else:
            files = Files(ctx.runner, dest)
            for backup_id in prune_choice(_files_listing(files, dest["path"], vm, current), vm, keep, current):
                files.run(["rm", "-rf", "--", conv.backup_folder(dest["path"], backup_id)], changes_state=True)
                result["pruned"].append(backup_id)
    except (CommandError, IOError, OSError) as exc:
        raise BackupError("%s: backup %s of %s is complete (%s), but retention (keep %d) failed after removing %s: %s"
                          % (ctx.hostname, current, vm, result.get("manifest"), keep,
                             ", ".join(result["pruned"]) or "nothing", getattr(exc, "msg", exc)),
                          **dict(result, changed=True))


# --------------------------------------------------------------------------- restore

def read_manifest(ctx, dest, backup, vm):
    """The manifest of backup (of vm) at dest, checked: BackupError when it is missing or another's."""
    conv.check_backup_id(backup, vm)
    try:
        if dest["kind"] == "vg":
            with open(conv.backup_vg_manifest_path(backup, ctx.state_dir)) as handle:
                text = handle.read()
        else:
            text = Files(ctx.runner, dest).read_text("%s/%s" % (conv.backup_folder(dest["path"], backup),
                                                                conv.BACKUP_MANIFEST))
        manifest = json.loads(text)
    except (IOError, OSError, CommandError, ValueError) as exc:
        raise BackupError("no readable manifest of backup %s at %s (%s): an incomplete backup is never restored"
                          % (backup, describe_dest(dest), getattr(exc, "msg", exc)))
    if manifest.get("backup") != backup or manifest.get("vm") != vm or not manifest.get("disks"):
        raise BackupError("the manifest of %s at %s is of %s/%s"
                          % (backup, describe_dest(dest), manifest.get("vm"), manifest.get("backup")))
    return manifest


def restore(ctx, vm, backup_id, new_vm, dest, vg=None, start=False):
    conv.check_vm_name(vm)
    conv.check_vm_name(new_vm)
    conv.check_backup_id(backup_id, vm)
    if vg is not None:
        check_name(vg, "VG name (vg)")
    if new_vm == vm:
        raise BackupError("new_vm must differ from vm: a restore makes a new VM and never overwrites %s" % vm)
    lock, waited = locked(ctx, new_vm)
    try:
        return _restore_locked(ctx, vm, backup_id, new_vm, dest, vg, start, waited)
    finally:
        lock.release()


def _restore_locked(ctx, vm, backup_id, new_vm, dest, vg, start, waited):
    journal = lm.Journal(new_vm, ctx.state_dir, "restores")
    data = journal.load()
    if data is not None and data.get("backup") != backup_id:
        raise BackupError("%s: an unfinished restore of %s from %s is open (%s): rerun it" % (
            ctx.hostname, new_vm, data.get("backup"), journal.path))
    mine = set(data.get("created") or []) if data else set()
    domains = dict((d["name"], d) for d in ctx.xen.list())
    cfg = conv.auto_config_path(new_vm, ctx.config_dir)
    problems = []
    if new_vm in domains:
        problems.append("VM %s runs here" % new_vm)
    if os.path.exists(cfg):
        problems.append("%s exists" % cfg)
    manifest = read_manifest(ctx, dest, backup_id, vm)
    lvs = ctx.lvm.lvs()
    vgs = dict((item["name"], item) for item in ctx.lvm.vgs())
    plan, need = [], {}
    for disk in manifest["disks"]:
        target_vg = vg or disk["vg"]
        new_lv = conv.vm_disk_lv(new_vm, disk["disk"]) if disk["disk"] != disk["lv"] else "%s-%s" % (new_vm, disk["lv"])
        if target_vg not in vgs:
            problems.append("VG %s does not exist here" % target_vg)
            continue
        exists = any(lv["vg"] == target_vg and lv["name"] == new_lv for lv in lvs)
        ref = "%s/%s" % (target_vg, new_lv)
        if exists and ref not in mine:
            problems.append("LV %s exists; a restore never overwrites an LV" % ref)
        if not exists:
            need[target_vg] = need.get(target_vg, 0) + round_to_extents(disk["size_bytes"], vgs[target_vg]["extent_size_bytes"])
        plan.append(dict(disk, new_vg=target_vg, new_lv=new_lv, exists=exists))
    for name in sorted(need):
        problem = fit_problem(vgs[name], need[name], "for the disks of %s" % new_vm)
        if problem:
            problems.append(problem)
    if problems:
        raise BackupError("%s: restore of %s into %s refused, nothing was changed: %s" % (
            ctx.hostname, backup_id, new_vm, "; ".join(problems)), problems=problems)
    # every image is checked before anything changes
    files = Files(ctx.runner, dest) if dest["kind"] != "vg" else None
    folder = conv.backup_folder(dest["path"], backup_id) if files else None
    for disk in plan:
        if files:
            disk["source"] = "%s/%s" % (folder, disk["image"])
            there = files.sha256(disk["source"])
            if there != disk["file_sha256"]:
                raise BackupError("image %s has SHA-256 %s, the manifest says %s: restore refused, nothing was changed"
                                  % (disk["source"], there, disk["file_sha256"]))
        else:
            disk["source"] = device_path(dest["vg"], disk["backup_lv"])
            there = sha256_of_device(disk["source"], disk["size_bytes"])
            if there != disk["sha256"]:
                raise BackupError("backup LV %s has SHA-256 %s, the manifest says %s: restore refused, nothing was "
                                  "changed" % (disk["source"], there, disk["sha256"]))
    paths = {}
    for disk in plan:
        paths.update(lv_path_forms(disk["vg"], disk["lv"], disk["new_vg"], disk["new_lv"]))
    config = config_for_new_domain(manifest["config"], new_vm, paths)
    result = {"changed": True, "vm": vm, "backup": backup_id, "new_vm": new_vm, "host": ctx.hostname,
              "config_path": cfg, "waited_for_lock": waited, "started": False,
              "disks": [{"vdev": d["vdev"], "lv": "%s/%s" % (d["new_vg"], d["new_lv"]), "size_bytes": d["size_bytes"],
                         "sha256": d["sha256"]} for d in plan]}
    if ctx.check_mode:
        return result
    if data is None:
        journal.data = {"vm": new_vm, "id": backup_id, "kind": "restore", "backup": backup_id, "from": vm,
                        "host": ctx.hostname, "created": []}
        journal.mark("begin")
    for disk in plan:
        ref = "%s/%s" % (disk["new_vg"], disk["new_lv"])
        if not disk["exists"]:
            ctx.lvm.create(disk["new_vg"], disk["new_lv"], disk["size_bytes"])
            journal.data["created"].append(ref)
            journal.mark("created", lv=ref)
        target = device_path(disk["new_vg"], disk["new_lv"])
        if files:
            copy_file_to_device(files, disk["source"], target, disk["size_bytes"], disk["file_sha256"])
        else:
            copy_device_to_device(disk["source"], disk["size_bytes"], target)
        back = sha256_of_device(target, disk["size_bytes"])
        if back != disk["sha256"]:
            raise BackupError("%s reads back with SHA-256 %s, the backup's is %s" % (target, back, disk["sha256"]))
        journal.mark("copied", lv=ref, sha256=back)
    _write_local(cfg, config)
    journal.mark("config", path=cfg)
    if start:
        ctx.xen.create(cfg)
        result["started"] = True
        journal.mark("started")
    journal.close("finished")
    return result
