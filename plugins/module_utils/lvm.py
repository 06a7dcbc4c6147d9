# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""LVM reports (lvs, vgs, pvs) as JSON with byte sizes, parsed to typed dicts.

``--reportformat json --units b --nosuffix`` makes every size a plain integer number of
bytes, so nothing depends on rounding or on the locale.

lvs also reports what snapshots, backups and the snapshot watchdog need: a snapshot's origin and
fill (data_percent: the share of its copy-on-write space used), when the LV was made (lv_time),
and the segment type and stripes.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv

REPORT_OPTIONS = ["--reportformat", "json", "--units", "b", "--nosuffix"]

LV_FIELDS = ["lv_name", "vg_name", "lv_attr", "lv_size", "lv_path", "lv_dm_path", "lv_active", "lv_uuid",
             "origin", "data_percent", "lv_time", "segtype", "stripes", "stripe_size"]
# Reports recorded before the fields after lv_uuid were asked for lack them; parse_lvs reads those
# (_later) as unknown (None) rather than refusing the report.
# lv_time as LVM prints it by default (report/time_format "%Y-%m-%d %T %z")
LV_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
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


def _later(row, key, convert):
    """A field after lv_uuid in LV_FIELDS: None when the report lacks it or LVM leaves it empty."""
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        return convert(value)
    except ValueError:
        raise LvmParseError("lvs: %s=%r cannot be read" % (key, value))


def lv_time_epoch(value):
    """Seconds since the epoch of an lv_time ("2026-12-04 04:39:37 +0000"), None if not in that form."""
    try:
        return int(datetime.datetime.strptime(value, LV_TIME_FORMAT).timestamp())
    except (TypeError, ValueError):
        return None


def _byte_count(value):
    if not value.isdigit():
        raise ValueError(value)
    return int(value)


def parse_lvs(text):
    """Parse ``lvs`` JSON (see lvs_argv) into dicts.

    Each: vg, name, size_bytes, path, dm_path, active (bool), suspended (bool), attr, uuid;
    snapshot (bool: a classic snapshot), invalid (bool: a snapshot whose COW overflowed), origin
    (of a snapshot, else None), data_percent (float: a snapshot's COW fill, a thin LV's data use;
    None when LVM gives none), created (lv_time as LVM prints it), created_epoch (int or None),
    segtype, stripes (int), stripe_size_bytes (int, 0 when not striped).
    path and dm_path are None when LVM reports none (hidden LVs).
    """
    lvs = []
    for row in _rows(text, "lv"):
        attr = _field(row, "lv_attr", "lv")
        if len(attr) < 5:
            raise LvmParseError("lvs: lv_attr %r is too short" % (attr,))
        active_field = _field(row, "lv_active", "lv")
        created = _later(row, "lv_time", str)
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
            "snapshot": attr[0] in ("s", "S"),
            # attr[4] 'I': a snapshot that ran out of COW space (recorded: "swi-I-s---", 100.00 %)
            "invalid": attr[0] == "S" or (attr[0] in ("s", "S") and attr[4] == "I"),
            "origin": _later(row, "origin", str),
            "data_percent": _later(row, "data_percent", float),
            "created": created,
            "created_epoch": lv_time_epoch(created) if created else None,
            "segtype": _later(row, "segtype", str),
            "stripes": _later(row, "stripes", _byte_count),
            "stripe_size_bytes": _later(row, "stripe_size", _byte_count),
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


def lvcreate_argv(vg, lv, size_bytes, stripes=None, stripe_size_bytes=None):
    """A new LV of exactly size_bytes (rounded up to extents by LVM).

    ``-W y`` wipes old signatures (a new guest disk must not look like an old filesystem or
    RAID member), ``-Z y`` zeroes its first 4 KiB, ``-y`` answers LVM's questions. With stripes
    (> 1), ``-i STRIPES`` and, when given, ``-I STRIPE_SIZE`` (LVM's default is 64 KiB).
    """
    argv = ["lvcreate", "-q", "-y", "-W", "y", "-Z", "y"]
    if stripes and stripes > 1:
        argv += ["-i", "%d" % stripes]
        if stripe_size_bytes:
            argv += ["-I", "%db" % stripe_size_bytes]
    return argv + ["-L", "%db" % size_bytes, "-n", check_name(lv, "LV name"), check_name(vg, "VG name")]


def lvsnapshot_argv(vg, origin, snapshot, size_bytes=None, percent=None):
    """A classic (COW) snapshot ``snapshot`` of ``vg/origin``: size_bytes of COW space, or percent
    of the origin (``-l N%ORIGIN``, which LVM takes of the largest usable COW, see
    conventions.cow_max_bytes)."""
    if (size_bytes is None) == (percent is None):
        raise ValueError("a snapshot takes a size or a percentage of its origin, one of them")
    amount = ["-L", "%db" % size_bytes] if percent is None else ["-l", "%d%%ORIGIN" % percent]
    return ["lvcreate", "-q", "-y", "-s"] + amount + ["-n", check_name(snapshot, "LV name"), lv_ref(vg, origin)]


_PERCENT_ORIGIN_RE = re.compile(r"^\s*([0-9]{1,3})\s*%\s*ORIGIN\s*$", re.IGNORECASE)


def parse_snapshot_size(value):
    """A snapshot's COW request: ("percent", N) for ``"N%ORIGIN"`` (1 to 100), else ("bytes", parse_size)."""
    match = _PERCENT_ORIGIN_RE.match(value) if isinstance(value, str) else None
    if match:
        percent = int(match.group(1))
        if not 1 <= percent <= 100:
            raise ValueError("invalid snapshot size %r: a percentage of the origin is 1 to 100 (%%ORIGIN)" % (value,))
        return "percent", percent
    if isinstance(value, str) and "%" in value:
        raise ValueError("invalid snapshot size %r: a percentage is written N%%ORIGIN (20%%ORIGIN)" % (value,))
    return "bytes", parse_size(value)


def snapshot_cow_bytes(request, origin_bytes, extent_bytes):
    """(COW bytes LVM allocates, capped) for a parse_snapshot_size request on an origin: a larger
    request than the origin can use is cut to conventions.cow_max_bytes, as lvcreate and lvextend
    do without failing (capped True then)."""
    kind, amount = request
    most = conv.cow_max_bytes(origin_bytes, extent_bytes)
    if kind == "percent":
        return conv.snapshot_percent_bytes(amount, origin_bytes, extent_bytes), False
    wanted = round_to_extents(amount, extent_bytes)
    return min(wanted, most), wanted > most


def check_stripe_size(stripe_size_bytes):
    """Refuse (ValueError) a stripe size LVM cannot use: a power of 2, at least 4 KiB."""
    if stripe_size_bytes < 4096 or stripe_size_bytes & (stripe_size_bytes - 1):
        raise ValueError("invalid stripe_size %d bytes: a power of 2, at least 4 KiB" % (stripe_size_bytes,))
    return stripe_size_bytes


def check_stripes(stripes, stripe_size_bytes, vg_info):
    """Refuse (ValueError) stripes LVM would refuse on this VG, before anything runs."""
    if stripes is None:
        return
    if stripes < 1 or stripes > 128:
        raise ValueError("invalid stripes %r: 1 to 128" % (stripes,))
    if stripes > vg_info["pv_count"]:
        # what lvcreate says (recorded: lvcreate-striped-too-many.json)
        raise ValueError("VG %s: number of stripes (%d) must not exceed number of physical volumes (%d)"
                         % (vg_info["name"], stripes, vg_info["pv_count"]))
    if stripe_size_bytes is not None:
        check_stripe_size(stripe_size_bytes)
        if stripe_size_bytes > vg_info["extent_size_bytes"]:
            raise ValueError("invalid stripe_size %s: larger than the extent size %s of VG %s"
                             % (format_size(stripe_size_bytes), format_size(vg_info["extent_size_bytes"]),
                                vg_info["name"]))


def fit_problem(vg_info, need_bytes, what):
    """None when need_bytes fit in the VG's free space, else the refusal: what is needed, the free
    space and the shortfall, in bytes and in binary units."""
    free = vg_info["free_bytes"]
    if need_bytes <= free:
        return None
    return ("VG %s needs %d bytes (%s) %s, has %d bytes (%s) free: %d bytes (%s) short"
            % (vg_info["name"], need_bytes, format_size(need_bytes), what, free, format_size(free),
               need_bytes - free, format_size(need_bytes - free)))


def lv_of_path(lvs, path, realpath=None):
    """The parse_lvs dict whose path or dm path is path (or the path it resolves to), else None: the LV
    behind a guest disk's pdev_path (/dev/VG/LV or /dev/mapper/VG-LV)."""
    by_path = {}
    for lv in lvs:
        for known in (lv["path"], lv["dm_path"]):
            if known:
                by_path[known] = lv
    return by_path.get((realpath or os.path.realpath)(path)) or by_path.get(path)


def snapshots_of(lvs, vg, origin):
    """The parse_lvs dicts of the snapshots of vg/origin."""
    return [lv for lv in lvs if lv["vg"] == vg and lv["snapshot"] and lv["origin"] == origin]


# --------------------------------------------------------------------------- snapshot watchdog

SNAPSHOT_MAX_AGE_HOURS = 24
SNAPSHOT_MAX_FILL_PCT = 80


def snapshot_alerts(lvs, now_epoch, max_age_hours=SNAPSHOT_MAX_AGE_HOURS, max_fill_pct=SNAPSHOT_MAX_FILL_PCT):
    """The snapshots of parse_lvs dicts that need a look: invalid (overflowed), fuller than
    max_fill_pct % or older than max_age_hours at now_epoch. Each: vg, name, origin, size_bytes,
    data_percent, created, age_hours (None when unknown), invalid, reasons (list of str)."""
    alerts = []
    for lv in lvs:
        if not lv.get("snapshot"):
            continue
        created = lv.get("created_epoch")
        age = round((now_epoch - created) / 3600.0, 1) if created is not None and now_epoch is not None else None
        fill = lv.get("data_percent")
        reasons = []
        if lv.get("invalid"):
            reasons.append("invalid: its copy-on-write space overflowed")
        elif fill is not None and fill > max_fill_pct:
            reasons.append("%.1f%% full (over %s%%)" % (fill, max_fill_pct))
        if age is not None and age > max_age_hours:
            reasons.append("%.1f h old (over %s h)" % (age, max_age_hours))
        if reasons:
            alerts.append({"vg": lv["vg"], "name": lv["name"], "origin": lv.get("origin"),
                           "size_bytes": lv["size_bytes"], "data_percent": fill, "created": lv.get("created"),
                           "age_hours": age, "invalid": bool(lv.get("invalid")), "reasons": reasons})
    return sorted(alerts, key=lambda a: (a["vg"], a["name"]))


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


def lv_is_origin(lv):
    """True for an LV that has classic snapshots (attr[0] 'o')."""
    return lv["attr"][:1] in ("o", "O")


def _lvm_create(self, vg, lv, size_bytes, stripes=None, stripe_size_bytes=None):
    return self.runner.run(lvcreate_argv(vg, lv, size_bytes, stripes, stripe_size_bytes), changes_state=True)


def _lvm_snapshot(self, vg, origin, snapshot, size_bytes=None, percent=None):
    return self.runner.run(lvsnapshot_argv(vg, origin, snapshot, size_bytes, percent), changes_state=True)


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
