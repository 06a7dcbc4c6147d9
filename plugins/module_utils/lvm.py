# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""LVM reports (lvs, vgs, pvs) as JSON with byte sizes, parsed to typed dicts.

``--reportformat json --units b --nosuffix`` makes every size a plain integer number of
bytes, so nothing depends on rounding or on the locale.
"""

from __future__ import annotations

import json
import re

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv

REPORT_OPTIONS = ["--reportformat", "json", "--units", "b", "--nosuffix"]

LV_FIELDS = ["lv_name", "vg_name", "lv_attr", "lv_size", "lv_path", "lv_dm_path", "lv_active", "lv_uuid"]
VG_FIELDS = ["vg_name", "vg_size", "vg_free", "pv_count", "lv_count", "vg_extent_size", "vg_attr", "vg_uuid"]
PV_FIELDS = ["pv_name", "vg_name", "pv_size", "pv_free", "dev_size", "pv_attr", "pv_uuid"]

# VG/LV names as LVM accepts them.
_NAME_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$")


class LvmParseError(ValueError):
    """An LVM JSON report that cannot be read safely."""


def check_name(name, what="name"):
    """Validate a VG or LV name (LVM's own character set; no leading '-')."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError("invalid LVM %s %r" % (what, name))
    return name


def lvs_argv(vgs=None):
    return ["lvs"] + REPORT_OPTIONS + ["-o", ",".join(LV_FIELDS)] + [check_name(vg, "VG name") for vg in (vgs or [])]


def vgs_argv(vgs=None):
    return ["vgs"] + REPORT_OPTIONS + ["-o", ",".join(VG_FIELDS)] + [check_name(vg, "VG name") for vg in (vgs or [])]


def pvs_argv():
    return ["pvs"] + REPORT_OPTIONS + ["-o", ",".join(PV_FIELDS)]


def _rows(text, kind):
    """The rows of one report kind ("lv", "vg", "pv") from an LVM JSON report."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LvmParseError("%ss: invalid JSON report: %s" % (kind, exc))
    if not isinstance(data, dict) or not isinstance(data.get("report"), list):
        raise LvmParseError("%ss: JSON without a 'report' list" % (kind,))
    rows = []
    found = False
    for report in data["report"]:
        if kind in report:
            found = True
            if not isinstance(report[kind], list):
                raise LvmParseError("%ss: %r is not a list" % (kind, kind))
            rows.extend(report[kind])
    if not found:
        raise LvmParseError("%ss: report has no %r section (wrong command?)" % (kind, kind))
    return rows


def _field(row, key, kind):
    if key not in row:
        raise LvmParseError("%ss: field %r missing in %r (run with -o %s)" % (kind, key, row, key))
    return row[key]


def _bytes(row, key, kind):
    value = _field(row, key, kind)
    if not isinstance(value, str) or not value.isdigit():
        # "268435456B" or "256.00m" would mean --units b --nosuffix were not used.
        raise LvmParseError("%ss: %s=%r is not a plain byte count" % (kind, key, value))
    return int(value)


def _count(row, key, kind):
    value = _field(row, key, kind)
    if not isinstance(value, str) or not value.isdigit():
        raise LvmParseError("%ss: %s=%r is not a number" % (kind, key, value))
    return int(value)


def parse_lvs(text):
    """Parse ``lvs`` JSON (see lvs_argv) into dicts.

    Each: vg, name, size_bytes, path, dm_path, active (bool), suspended (bool), attr, uuid.
    path and dm_path are None when LVM reports none (hidden LVs).
    """
    lvs = []
    for row in _rows(text, "lv"):
        attr = _field(row, "lv_attr", "lv")
        if len(attr) < 5:
            raise LvmParseError("lvs: lv_attr %r is too short" % (attr,))
        active_field = _field(row, "lv_active", "lv")
        lvs.append({
            "vg": _field(row, "vg_name", "lv"),
            "name": _field(row, "lv_name", "lv"),
            "size_bytes": _bytes(row, "lv_size", "lv"),
            "path": _field(row, "lv_path", "lv") or None,
            "dm_path": _field(row, "lv_dm_path", "lv") or None,
            # lv_active reads "active" (or "local exclusive" etc. in clusters), "" when not.
            "active": active_field != "" and active_field != "inactive",
            # attr[4] is the dm state: 's' suspended (what a dm table swap leaves behind on error).
            "suspended": attr[4] in ("s", "S"),
            "attr": attr,
            "uuid": _field(row, "lv_uuid", "lv"),
        })
    return lvs


def parse_vgs(text):
    """Parse ``vgs`` JSON (see vgs_argv): name, size_bytes, free_bytes, pv_count, lv_count, ..."""
    return [{
        "name": _field(row, "vg_name", "vg"),
        "size_bytes": _bytes(row, "vg_size", "vg"),
        "free_bytes": _bytes(row, "vg_free", "vg"),
        "pv_count": _count(row, "pv_count", "vg"),
        "lv_count": _count(row, "lv_count", "vg"),
        "extent_size_bytes": _bytes(row, "vg_extent_size", "vg"),
        "attr": _field(row, "vg_attr", "vg"),
        "uuid": _field(row, "vg_uuid", "vg"),
    } for row in _rows(text, "vg")]


def parse_pvs(text):
    """Parse ``pvs`` JSON (see pvs_argv): name, vg (None if unused), size/free/dev_size bytes."""
    return [{
        "name": _field(row, "pv_name", "pv"),
        "vg": _field(row, "vg_name", "pv") or None,
        "size_bytes": _bytes(row, "pv_size", "pv"),
        "free_bytes": _bytes(row, "pv_free", "pv"),
        "dev_size_bytes": _bytes(row, "dev_size", "pv"),
        "attr": _field(row, "pv_attr", "pv"),
        "uuid": _field(row, "pv_uuid", "pv"),
    } for row in _rows(text, "pv")]


def dm_name(vg, lv):
    """The device-mapper name of an LV: '-' doubled in each part, joined by '-'."""
    return "%s-%s" % (check_name(vg, "VG name").replace("-", "--"), check_name(lv, "LV name").replace("-", "--"))


class Lvm(object):
    """lvs/vgs/pvs through a runner.CommandRunner."""

    def __init__(self, runner):
        self.runner = runner

    def lvs(self, vgs=None):
        return parse_lvs(self.runner.stdout(lvs_argv(vgs)))

    def vgs(self, vgs=None):
        return parse_vgs(self.runner.stdout(vgs_argv(vgs)))

    def pvs(self):
        return parse_pvs(self.runner.stdout(pvs_argv()))


# --------------------------------------------------------------------------- sizes and LV changes
# (lvcreate/lvextend/lvreduce/lvremove/snapshot: used by the lvm_volume module)

SECTOR_BYTES = 512

# Units as LVM's -L and Ansible's human_to_bytes read them: powers of 1024, whatever the case,
# with or without "B"/"iB" ("256M" = "256m" = "256MB" = "256MiB").
_UNIT_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_SIZE_RE = re.compile(r"^\s*([0-9]+)(?:\.([0-9]+))?\s*(?:([kmgtpe])(?:i?b)?|(b))?\s*$", re.IGNORECASE)


def parse_size(value):
    """Exact size in bytes of ``268435456``, ``"268435456"``, ``"256M"``, ``"256MiB"``, ``"1G"``, ``"1.5G"``.

    Units are binary (K = 1024). A fraction must come out as a whole number of bytes; the
    result must be positive and a multiple of 512 (LVM sizes are whole sectors).
    Raises ValueError with a message that quotes the value.
    """
    if isinstance(value, bool):
        raise ValueError("invalid size %r: expected bytes or a number with a unit (256M, 1G, 256MiB)" % (value,))
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError("invalid size %r: expected bytes or a number with a unit (256M, 1G, 256MiB)" % (value,))
        whole, frac, unit, _b = match.groups()
        mult = 1024 ** _UNIT_POWERS[(unit or "").lower()]
        numerator = int(whole + (frac or "")) * mult
        denominator = 10 ** len(frac or "")
        if numerator % denominator:
            raise ValueError("invalid size %r: not a whole number of bytes" % (value,))
        size = numerator // denominator
    if size <= 0:
        raise ValueError("invalid size %r: must be more than 0 bytes" % (value,))
    if size % SECTOR_BYTES:
        raise ValueError("invalid size %r: %d bytes is not a multiple of %d (LVM sizes are whole sectors)"
                         % (value, size, SECTOR_BYTES))
    return size


def format_size(size_bytes):
    """``268435456`` -> ``"256 MiB"``; exact when a unit divides it, else one decimal."""
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        mult = 1024 ** power
        if size_bytes >= mult:
            if size_bytes % mult == 0:
                return "%d %s" % (size_bytes // mult, unit)
            return "%.1f %s" % (size_bytes / float(mult), unit)
    return "%d bytes" % size_bytes


# The size LVM allocates for a request: rounded up to whole extents (the one rule, in conventions).
round_to_extents = conv.round_up


def lv_ref(vg, lv):
    return "%s/%s" % (check_name(vg, "VG name"), check_name(lv, "LV name"))


def lvcreate_argv(vg, lv, size_bytes):
    """A new LV of exactly size_bytes (rounded up to extents by LVM).

    ``-W y`` wipes old signatures (a new guest disk must not look like an old filesystem or
    RAID member), ``-Z y`` zeroes its first 4 KiB, ``-y`` answers LVM's questions.
    """
    return ["lvcreate", "-q", "-y", "-W", "y", "-Z", "y", "-L", "%db" % size_bytes,
            "-n", check_name(lv, "LV name"), check_name(vg, "VG name")]


def lvsnapshot_argv(vg, origin, snapshot, size_bytes):
    """A classic (COW) snapshot ``snapshot`` of ``vg/origin`` with size_bytes of COW space."""
    return ["lvcreate", "-q", "-y", "-s", "-L", "%db" % size_bytes, "-n", check_name(snapshot, "LV name"),
            lv_ref(vg, origin)]


def lvextend_argv(vg, lv, size_bytes):
    return ["lvextend", "-q", "-L", "%db" % size_bytes, lv_ref(vg, lv)]


def lvreduce_argv(vg, lv, size_bytes):
    # -f: lvreduce otherwise asks on the terminal; the caller has decided to lose the tail.
    return ["lvreduce", "-q", "-f", "-L", "%db" % size_bytes, lv_ref(vg, lv)]


def lvremove_argv(vg, lv):
    return ["lvremove", "-q", "-y", lv_ref(vg, lv)]


def vgmknodes_argv(vg, lv):
    """Recreate a missing /dev/VG/LV link from the live device (its table is not touched)."""
    return ["vgmknodes", lv_ref(vg, lv)]


def lv_is_open(lv):
    """True when the LV (a parse_lvs dict) is open, for example by a running domU (attr[5] 'o')."""
    return len(lv["attr"]) > 5 and lv["attr"][5] == "o"


def lv_is_snapshot(lv):
    """True for a classic snapshot LV (attr[0] 's', or 'S' when invalid)."""
    return lv["attr"][:1] in ("s", "S")


def _lvm_create(self, vg, lv, size_bytes):
    return self.runner.run(lvcreate_argv(vg, lv, size_bytes), changes_state=True)


def _lvm_snapshot(self, vg, origin, snapshot, size_bytes):
    return self.runner.run(lvsnapshot_argv(vg, origin, snapshot, size_bytes), changes_state=True)


def _lvm_resize(self, vg, lv, size_bytes, current_bytes):
    """lvextend when growing, lvreduce when shrinking; nothing when the size is already right."""
    if size_bytes > current_bytes:
        return self.runner.run(lvextend_argv(vg, lv, size_bytes), changes_state=True)
    if size_bytes < current_bytes:
        return self.runner.run(lvreduce_argv(vg, lv, size_bytes), changes_state=True)
    return None


def _lvm_remove(self, vg, lv):
    return self.runner.run(lvremove_argv(vg, lv), changes_state=True)


def _lvm_find(self, vg, lv):
    """The parse_lvs dict of vg/lv, or None (one lvs call for the VG)."""
    for item in self.lvs([vg]):
        if item["name"] == lv:
            return item
    return None


def _lvm_find_vg(self, vg):
    """The parse_vgs dict of vg, or None when there is no such VG."""
    for item in self.vgs():
        if item["name"] == vg:
            return item
    return None


Lvm.create = _lvm_create
Lvm.snapshot = _lvm_snapshot
Lvm.resize = _lvm_resize
Lvm.remove = _lvm_remove
Lvm.find = _lvm_find
Lvm.find_vg = _lvm_find_vg
