# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""device-mapper tables (``dmsetup table``) and the suspend/load/resume primitives.

A table is a list of segments {"start", "length", "target", "args"} in 512-byte sectors;
linear segments also get "device" and "offset". The DRBD live migration swaps an LV's
table for ``linear /dev/drbdN 0`` while the domU is paused, and back afterwards.
"""

from __future__ import annotations

import os
import re
import stat as statmod

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError

_SEGMENT_RE = re.compile(r"^(\d+)\s+(\d+)\s+(\S+)(?:\s+(.*))?$")
_DM_NAME_RE = re.compile(r"^[A-Za-z0-9_+.-][A-Za-z0-9_+.:-]*$")


class DmParseError(ValueError):
    """A dm table that cannot be read or rendered safely."""


def check_dm_name(name):
    if not isinstance(name, str) or not _DM_NAME_RE.match(name) or name in (".", ".."):
        raise ValueError("invalid device-mapper name %r" % (name,))
    return name


def _segment(line):
    match = _SEGMENT_RE.match(line.strip())
    if not match:
        raise DmParseError("dm table: cannot read line %r (want 'START LENGTH TARGET ARGS')" % (line,))
    segment = {
        "start": int(match.group(1)),
        "length": int(match.group(2)),
        "target": match.group(3),
        "args": (match.group(4) or "").split(),
    }
    if segment["target"] == "linear":
        if len(segment["args"]) != 2 or not segment["args"][1].isdigit():
            raise DmParseError("dm table: linear needs 'DEVICE OFFSET', got %r" % (line,))
        segment["device"] = segment["args"][0]
        segment["offset"] = int(segment["args"][1])
    return segment


def _check_contiguous(segments, what):
    if not segments:
        raise DmParseError("%s: empty table" % (what,))
    expected = 0
    for segment in segments:
        if segment["start"] != expected:
            raise DmParseError("%s: segment starts at %d, expected %d (gap or overlap)" % (what, segment["start"], expected))
        if segment["length"] <= 0:
            raise DmParseError("%s: segment of length %d" % (what, segment["length"]))
        expected += segment["length"]


def parse_table(text):
    """Parse ``dmsetup table NAME`` output (one device) into a list of segments."""
    segments = [_segment(line) for line in text.splitlines() if line.strip()]
    _check_contiguous(segments, "dm table")
    return segments


def parse_tables(text):
    """Parse ``dmsetup table`` (all devices, 'NAME: START LENGTH ...' lines) into {name: segments}."""
    tables = {}
    if text.strip() == "No devices found":
        return tables
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, rest = line.partition(": ")
        if not sep:
            raise DmParseError("dmsetup table: line without 'NAME: ' prefix: %r" % (line,))
        tables.setdefault(name, []).append(_segment(rest))
    for name, segments in tables.items():
        _check_contiguous(segments, "dm table of %s" % name)
    return tables


def table_sectors(segments):
    """Total size of a table in 512-byte sectors."""
    return sum(segment["length"] for segment in segments)


def render_table(segments):
    """Render segments as dmsetup table text (one line per segment, newline-terminated)."""
    lines = []
    for segment in segments:
        args = segment.get("args")
        if args is None and segment.get("target") == "linear":
            args = [segment["device"], segment["offset"]]
        for item in [segment.get("target")] + list(args or []):
            if not isinstance(item, (str, int)) or isinstance(item, bool) or not str(item) or re.search(r"\s", str(item)):
                raise DmParseError("dm table: bad target/argument %r" % (item,))
        lines.append(" ".join([str(int(segment["start"])), str(int(segment["length"])), segment["target"]] + [str(arg) for arg in args or []]))
    _check_contiguous([{"start": int(s["start"]), "length": int(s["length"])} for s in segments], "dm table")
    return "\n".join(lines) + "\n"


def linear_table(device, sectors, offset=0):
    """A one-segment table mapping ``sectors`` sectors of ``device`` from ``offset``."""
    return [{"start": 0, "length": int(sectors), "target": "linear", "args": [device, int(offset)],
             "device": device, "offset": int(offset)}]


class DeviceMapper(object):
    """dmsetup primitives through a runner.CommandRunner; changes are check-mode aware."""

    def __init__(self, runner):
        self.runner = runner

    def table(self, name):
        return parse_table(self.runner.stdout(["dmsetup", "table", check_dm_name(name)]))

    def tables(self):
        return parse_tables(self.runner.stdout(["dmsetup", "table"]))

    def create(self, name, segments):
        return self.runner.run(["dmsetup", "create", check_dm_name(name)], changes_state=True, data=render_table(segments))

    def remove(self, name):
        return self.runner.run(["dmsetup", "remove", check_dm_name(name)], changes_state=True)

    def suspend(self, name, noflush=False):
        argv = ["dmsetup", "suspend"] + (["--noflush"] if noflush else []) + [check_dm_name(name)]
        return self.runner.run(argv, changes_state=True)

    def load(self, name, segments):
        # The table goes on stdin: it may have several lines, and it never passes a shell.
        return self.runner.run(["dmsetup", "load", check_dm_name(name)], changes_state=True, data=render_table(segments))

    def resume(self, name, udev_sync=True):
        """Make the loaded table live. Without udev_sync dmsetup returns once the kernel swapped the
        table, without waiting for udev to handle the change event (the caller settles udev later)."""
        argv = ["dmsetup", "resume"] + ([] if udev_sync else ["--noudevsync"]) + [check_dm_name(name)]
        return self.runner.run(argv, changes_state=True)

    def clear(self, name):
        """Drop the inactive (loaded, not resumed) table of ``name``; a no-op without one."""
        return self.runner.run(["dmsetup", "clear", check_dm_name(name)], changes_state=True)

    def swap_table(self, name, segments):
        """suspend, load, resume. If load fails the device is resumed on its old table,
        so a paused guest's disk is never left suspended; the error is re-raised.

        ``dmsetup load`` does not check the size of the devices a table maps (recorded: a table
        twice as large as its device loads with rc 0); the kernel checks at resume, whose failure
        drops the new table and leaves the device suspended on its old one. So a failed resume is
        undone too: clear (in case the table is still loaded), resume again on the old table, and
        re-raise the first error (with the outcome of the recovery in its message)."""
        render_table(segments)  # refuse a bad table before suspending anything
        self.suspend(name)
        try:
            self.load(name, segments)
        except Exception:
            self.resume(name)
            raise
        try:
            return self.resume(name)
        except CommandError as exc:
            try:
                self.clear(name)
            except CommandError:
                pass  # nothing loaded any more: the resume below tells whether the old table is live
            try:
                self.resume(name)
            except CommandError as again:
                exc.msg = ("%s; resuming %s on its old table failed too (%s): it is left SUSPENDED, check "
                           "dmsetup info/table %s" % (exc.msg, name, again.msg, name))
            else:
                exc.msg = "%s; %s was resumed on its old table" % (exc.msg, name)
            raise


# --------------------------------------------------------------------------- remap (dm_remap module)
#
# Route an LV's dm device through another block device and back. The LV keeps its dm device
# (same major:minor, so whoever has it open, blkback for example, never notices); a *clone*
# dm device gets the LV's original table, so that the other device (DRBD) can sit on it:
#
#     LV (dm) -> VIA (/dev/drbdN) -> clone (dm, the LV's original table) -> PV extents
#
# The clone's table IS the original table: no journal file is needed, ``dmsetup table CLONE``
# gives it back. Pure planning below; the device probes and commands after it.

DRBD_MAJOR = conv.DRBD_BLOCK_MAJOR
REMAP_STATES = ("remapped", "original")
_VIA_RE = re.compile(r"^/dev/[A-Za-z0-9_.+:-]+(?:/[A-Za-z0-9_.+:-]+)*\Z")
_MAJMIN_RE = re.compile(r"^\d+:\d+\Z")


class DmRemapError(ValueError):
    """The live dm state does not allow the requested remap; ``msg`` says why and what to do."""


def check_via_path(path):
    """A device path for a dm table: absolute under /dev, no whitespace, shell metacharacters or '..'."""
    if not isinstance(path, str) or not _VIA_RE.match(path) or "/../" in path + "/" or "/./" in path + "/":
        raise ValueError("invalid device path %r: want an absolute /dev path of letters, digits and _ . + : - "
                         "(no spaces, shell metacharacters or '..')" % (path,))
    return path


def clone_default_name(lv_dm):
    """Default name of the clone of LV dm device ``lv_dm``: ``<lv_dm>.real``. (An LV literally named
    ``<lv>.real`` would have that dm name too; plan_remap refuses a clone whose table is not the LV's.)"""
    return check_dm_name("%s.real" % lv_dm)


def _table_key(segments):
    return [(s["start"], s["length"], s["target"], [str(arg) for arg in s["args"]]) for s in segments]


def same_table(first, second):
    """Whether two parsed tables map the same sectors to the same targets and arguments."""
    if first is None or second is None:
        return False
    return _table_key(first) == _table_key(second)


def points_at(segments, refs):
    """Whether a table is one linear segment from offset 0 of a device named by one of ``refs``
    (paths and/or MAJ:MIN strings: ``dmsetup table`` prints devices as MAJ:MIN)."""
    return (segments is not None and len(segments) == 1 and segments[0]["target"] == "linear"
            and segments[0].get("offset") == 0 and segments[0].get("device") in set(r for r in refs if r))


def _is_drbd(segments):
    return (segments is not None and len(segments) == 1 and segments[0]["target"] == "linear"
            and str(segments[0].get("device", "")).startswith("%d:" % DRBD_MAJOR))


def _text(segments):
    return render_table(segments).strip().replace("\n", "; ") if segments else "(none)"


def plan_remap(state, lv_dm, lv_table, clone, clone_table, via=None, via_refs=(), original_table=None,
               remove_clone=True, via_sectors=None, lv_devno=None):
    """Decide the steps that bring the live tables to ``state``. Pure: no device is touched.

    lv_table / clone_table: parsed live tables (None: no such dm device). via: the VIA path (None
    allowed for state=original); via_refs: the names ``dmsetup table`` may print for it (path,
    MAJ:MIN). original_table: parsed table given by the user for recovery (or None).

    Returns ``{"situation": str, "steps": [...], "original": segments or None, "after": segments}``
    where each step is ("create_clone", segments), ("swap", segments) or ("remove_clone", None), in
    order. Raises DmRemapError when the state cannot be reached safely.
    """
    if state not in REMAP_STATES:
        raise ValueError("state must be one of %s, got %r" % (", ".join(REMAP_STATES), state))
    if lv_table is None:
        raise DmRemapError("no dm device %s: the LV does not exist or is not active (lvchange -ay)" % (lv_dm,))
    sectors = table_sectors(lv_table)
    on_via = bool(via) and points_at(lv_table, [via] + list(via_refs))
    on_clone = clone_table is not None and same_table(lv_table, clone_table)
    steps = []

    def check_size(table, what):
        if table_sectors(table) != sectors:
            raise DmRemapError("%s has %d sectors, the LV %s has %d: refusing to load a table of another size"
                               % (what, table_sectors(table), lv_dm, sectors))

    if state == "remapped":
        if not via:
            raise DmRemapError("state=remapped needs via")
        if lv_devno is not None and lv_devno in via_refs:
            raise DmRemapError("via %s is the LV's own dm device %s (%s): it cannot point at itself" % (via, lv_dm, lv_devno))
        if on_via:
            if clone_table is not None:
                check_size(clone_table, "the clone %s" % clone)
                return {"situation": "remapped: %s points at %s, clone %s holds the original table"
                                     % (lv_dm, via, clone), "steps": [], "original": clone_table, "after": lv_table}
            if original_table is None:
                raise DmRemapError(
                    "%s already points at %s but the clone %s is missing, so its original table is unknown here; "
                    "give original_table (the original_table this module returned, or the table from a journal) "
                    "to recreate the clone" % (lv_dm, via, clone))
            check_size(original_table, "original_table")
            return {"situation": "half-done: %s points at %s, clone %s missing; recreating it from original_table"
                                 % (lv_dm, via, clone),
                    "steps": [("create_clone", original_table)], "original": original_table, "after": lv_table}
        if via_sectors is not None and via_sectors < sectors:
            raise DmRemapError("via %s has %d sectors, fewer than the %d of %s" % (via, via_sectors, sectors, lv_dm))
        target = linear_table(via, sectors)
        if clone_table is not None:
            if not on_clone:
                raise DmRemapError(
                    "clone %s exists with a table different from %s's and %s does not point at %s "
                    "(clone: %s; LV: %s): refusing, the clone may belong to another LV; remove it or choose "
                    "another clone_name" % (clone, lv_dm, lv_dm, via, _text(clone_table), _text(lv_table)))
            return {"situation": "half-done: clone %s exists, %s still on its original table; completing the swap"
                                 % (clone, lv_dm),
                    "steps": [("swap", target)], "original": clone_table, "after": target}
        if original_table is not None and not same_table(original_table, lv_table):
            raise DmRemapError("%s's table (%s) differs from original_table (%s): refusing to guess which one is "
                               "the original" % (lv_dm, _text(lv_table), _text(original_table)))
        return {"situation": "original: %s on its own table, no clone" % lv_dm,
                "steps": [("create_clone", lv_table), ("swap", target)], "original": lv_table, "after": target}

    # state == "original"
    if clone_table is not None:
        if on_clone:
            steps = [("remove_clone", None)] if remove_clone else []
            left = ", clone %s left over" % clone if remove_clone else ", clone %s kept" % clone
            return {"situation": "%s on its original table%s" % (lv_dm, left),
                    "steps": steps, "original": clone_table, "after": lv_table}
        if via and not on_via:
            raise DmRemapError("%s points at neither %s nor the table of the clone %s (LV: %s; clone: %s): "
                               "refusing to overwrite it" % (lv_dm, via, clone, _text(lv_table), _text(clone_table)))
        check_size(clone_table, "the clone %s" % clone)
        steps = [("swap", clone_table)] + ([("remove_clone", None)] if remove_clone else [])
        where = via or _text(lv_table)
        return {"situation": "remapped: %s points at %s, clone %s holds the original table" % (lv_dm, where, clone),
                "steps": steps, "original": clone_table, "after": clone_table}
    if original_table is not None:
        if same_table(lv_table, original_table):
            return {"situation": "%s on original_table, no clone" % lv_dm, "steps": [], "original": original_table,
                    "after": lv_table}
        if via and not on_via:
            raise DmRemapError("%s points at neither %s nor original_table (LV: %s): refusing to overwrite it"
                               % (lv_dm, via, _text(lv_table)))
        check_size(original_table, "original_table")
        where = via or _text(lv_table)
        return {"situation": "half-done: %s points at %s, clone %s missing; restoring original_table"
                             % (lv_dm, where, clone),
                "steps": [("swap", original_table)], "original": original_table, "after": original_table}
    if on_via or (not via and _is_drbd(lv_table)):
        raise DmRemapError(
            "%s points at %s but the clone %s with its original table is missing: cannot restore it; give "
            "original_table (the original_table this module returned when it remapped the LV)"
            % (lv_dm, via or lv_table[0]["device"], clone))
    return {"situation": "%s on its own table (%s), no clone: nothing to restore" % (lv_dm, _text(lv_table)),
            "steps": [], "original": None, "after": lv_table}


# -- probes of the running kernel (no commands): device numbers and dm state in sysfs

SYS_BLOCK = "/sys/block"
SYS_DEV_BLOCK = "/sys/dev/block"


def block_devno(path, stat=os.stat):
    """``MAJ:MIN`` of a block device node (what ``dmsetup table`` prints); ValueError if not one."""
    try:
        info = stat(path)
    except OSError as exc:
        raise ValueError("%s: %s" % (path, exc.strerror or exc))
    if not statmod.S_ISBLK(info.st_mode):
        raise ValueError("%s is not a block device" % (path,))
    return "%d:%d" % (os.major(info.st_rdev), os.minor(info.st_rdev))


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def dm_sysfs_devices(sys_block=SYS_BLOCK):
    """{dm name: {"kname": "dm-3", "devno": "254:3", "suspended": bool}} from /sys/block/dm-*/
    (kernel ABI: dm/name, dm/suspended "0"/"1", dev "MAJ:MIN")."""
    devices = {}
    try:
        entries = sorted(os.listdir(sys_block))
    except OSError:
        return devices
    for kname in entries:
        if not kname.startswith("dm-"):
            continue
        base = os.path.join(sys_block, kname)
        try:
            name = _read(os.path.join(base, "dm", "name"))
            suspended = _read(os.path.join(base, "dm", "suspended"))
            devno = _read(os.path.join(base, "dev"))
        except (IOError, OSError):
            continue  # removed while we looked
        if suspended not in ("0", "1") or not _MAJMIN_RE.match(devno):
            raise DmParseError("%s: unexpected dm/suspended %r or dev %r" % (base, suspended, devno))
        devices[name] = {"kname": kname, "devno": devno, "suspended": suspended == "1"}
    return devices


def block_sectors(devno, sys_dev_block=SYS_DEV_BLOCK):
    """Size in 512-byte sectors of block device MAJ:MIN from sysfs, None when unknown."""
    try:
        return int(_read(os.path.join(sys_dev_block, devno, "size")))
    except (IOError, OSError, ValueError):
        return None


def run_remap(dm, lv_dm, clone, steps, around_swap=None):
    """Carry out plan_remap steps through a DeviceMapper (check-mode aware). ``around_swap`` is a
    context manager factory (pause/unpause of the domain) wrapped around the table swap only.
    A failed load is resumed on the old table by swap_table; returns the steps done."""
    done = []
    for kind, segments in steps:
        if kind == "create_clone":
            dm.create(clone, segments)
            done.append("create clone %s" % clone)
        elif kind == "swap":
            if around_swap is None:
                dm.swap_table(lv_dm, segments)
            else:
                with around_swap():
                    dm.swap_table(lv_dm, segments)
            done.append("load %s into %s" % (_text(segments), lv_dm))
        elif kind == "remove_clone":
            dm.remove(clone)
            done.append("remove clone %s" % clone)
        else:
            raise ValueError("unknown remap step %r" % (kind,))
    return done
