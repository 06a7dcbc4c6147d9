# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Linux md (software RAID) through /proc/mdstat and mdadm.

Pure parsers of ``/proc/mdstat``, ``mdadm --detail`` and ``mdadm --examine`` (mdadm 4.2, kernel 6.1), the
health of one array read from them (legs, degraded, resync/recovery progress, bitmap), the guard that keeps
the last in-sync leg of a mirror, then argv builders and a thin runner. Paths of legs are compared by the
device they lead to (an LV path and the /dev/dm-N that mdadm prints are one leg).
"""

from __future__ import annotations

import os
import re

from ansible_collections.sanless.xen.plugins.module_utils.files import read_text
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, RunnerTool

MDSTAT = "/proc/mdstat"
MDADM = "mdadm"

# An array or leg path given to mdadm: absolute, no spaces or shell metacharacters.
_DEVICE_RE = re.compile(r"^/dev/[A-Za-z0-9_.+:/-]+\Z")
_ARRAY_LINE_RE = re.compile(r"^(?P<name>md[A-Za-z0-9_]+) : (?P<rest>.*)$")
_MEMBER_RE = re.compile(r"^(?P<device>[^\s\[]+)\[(?P<slot>[0-9]+)\](?P<flags>(?:\([A-Z]\))*)\Z")
_BLOCKS_RE = re.compile(r"^(?P<blocks>[0-9]+) blocks(?: super (?P<super>\S+))?.*?"
                        r"(?:\[(?P<raid>[0-9]+)/(?P<working>[0-9]+)\] \[(?P<map>[U_]+)\])?\s*\Z")
_SYNC_RE = re.compile(r"(?P<action>resync|recovery|check|repair|reshape)\s*=\s*(?P<percent>[0-9.]+)%"
                      r"(?:\s*\((?P<done>[0-9]+)/(?P<total>[0-9]+)\))?"
                      r"(?:\s*finish=(?P<finish>[0-9.]+)min)?(?:\s*speed=(?P<speed>[0-9]+)K/sec)?")
_PENDING_RE = re.compile(r"(?P<action>resync|recovery|check|repair|reshape)\s*=\s*(?P<what>DELAYED|PENDING)")
_BITMAP_RE = re.compile(r"bitmap: (?P<used>[0-9]+)/(?P<pages>[0-9]+) pages \[(?P<kb>[0-9]+)KB\], "
                        r"(?P<chunk>[0-9]+)KB chunk(?:, file: (?P<file>\S+))?")
# mdstat member flags.
_FLAGS = {"F": "faulty", "S": "spare", "W": "write_mostly", "R": "replacement", "J": "journal"}
# mdadm --detail: "    Rebuild Status : 24% complete", "     Resync Status : 37% complete".
_STATUS_KEYS = {"Rebuild Status": "recovery", "Resync Status": "resync", "Check Status": "check",
                "Reshape Status": "reshape"}
# The row of an inactive array has no state column: "       -     252        0        -        /dev/dm-0".
_LEG_RE = re.compile(r"^\s*(?P<number>[0-9]+|-)\s+(?P<major>[0-9]+)\s+(?P<minor>[0-9]+)\s+(?P<raid>[0-9]+|-)"
                     r"(?:\s+(?P<state>[^/\s][^/]*?))?(?:\s+(?P<device>/\S+))?\s*\Z")


class MdParseError(ValueError):
    """/proc/mdstat or mdadm output that cannot be read safely."""


def check_device(path, what="device"):
    """An md array or leg path: /dev/..., letters, digits and _ . + : / -; nothing a shell or mdadm could
    read as more."""
    if not isinstance(path, str) or not _DEVICE_RE.match(path) or "/../" in path + "/":
        raise ValueError("invalid %s %r: want an absolute /dev path (letters, digits, _ . + : / -)" % (what, path))
    return path


# --------------------------------------------------------------------------- /proc/mdstat


def _member(word):
    match = _MEMBER_RE.match(word)
    if not match:
        raise MdParseError("cannot read mdstat member %r" % word)
    flags = [_FLAGS.get(f, f) for f in re.findall(r"\(([A-Z])\)", match.group("flags"))]
    return {"device": match.group("device"), "slot": int(match.group("slot")), "flags": flags}


def _sync(line):
    match = _SYNC_RE.search(line)
    if match:
        def number(key, kind=int):
            return kind(match.group(key)) if match.group(key) is not None else None
        return {"action": match.group("action"), "percent": float(match.group("percent")),
                "done_blocks": number("done"), "total_blocks": number("total"),
                "finish_min": number("finish", float), "speed_kib_s": number("speed"), "pending": False}
    match = _PENDING_RE.search(line)
    if match:
        return {"action": match.group("action"), "percent": 0.0, "done_blocks": None, "total_blocks": None,
                "finish_min": None, "speed_kib_s": None, "pending": True}
    return None


def parse_mdstat(text):
    """``/proc/mdstat``: {"personalities": [...], "arrays": {name: {name, active, read_only, level, members:
    [{device, slot, flags}], blocks, metadata, raid_disks, working_disks, map ("UU", "U_"), sync (see
    _sync, or None), bitmap ({pages_used, pages, kib, chunk_kib, file}, or None)}}}."""
    personalities = []
    arrays = {}
    current = None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if raw.startswith("Personalities :"):
            personalities = re.findall(r"\[([^\]]+)\]", raw)
            continue
        match = _ARRAY_LINE_RE.match(raw)
        if match:
            words = match.group("rest").split()
            if not words or words[0] not in ("active", "inactive"):
                raise MdParseError("cannot read mdstat line %r" % raw)
            current = {"name": match.group("name"), "active": words[0] == "active", "read_only": None,
                       "level": None, "members": [], "blocks": None, "metadata": None, "raid_disks": None,
                       "working_disks": None, "map": None, "sync": None, "bitmap": None}
            words = words[1:]
            if words and words[0].startswith("("):
                current["read_only"] = words[0].strip("()")
                words = words[1:]
            if current["active"] and words:
                current["level"] = words.pop(0)
            current["members"] = [_member(w) for w in words]
            arrays[current["name"]] = current
            continue
        if not line or current is None or raw.startswith("unused devices"):
            if not line:
                current = None
            continue
        blocks = _BLOCKS_RE.match(line)
        if blocks and current["blocks"] is None:
            current.update(blocks=int(blocks.group("blocks")), metadata=blocks.group("super"))
            if blocks.group("map"):
                current.update(raid_disks=int(blocks.group("raid")), working_disks=int(blocks.group("working")),
                               map=blocks.group("map"))
            continue
        bitmap = _BITMAP_RE.search(line)
        if bitmap:
            current["bitmap"] = {"pages_used": int(bitmap.group("used")), "pages": int(bitmap.group("pages")),
                                 "kib": int(bitmap.group("kb")), "chunk_kib": int(bitmap.group("chunk")),
                                 "file": bitmap.group("file")}
            continue
        sync = _sync(line)
        if sync:
            current["sync"] = sync
    return {"personalities": personalities, "arrays": arrays}


# --------------------------------------------------------------------------- mdadm --detail / --examine


def _fields(lines):
    """'   Key : value' lines as {key: value}, the value stripped."""
    fields = {}
    for line in lines:
        key, sep, value = line.partition(" : ")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _size_kib(value):
    # "64512 (63.00 MiB 66.06 MB)" or "64512 KiB (63.00 MiB 66.06 MB)"
    match = re.match(r"^([0-9]+)", value or "")
    return int(match.group(1)) if match else None


def _int(value):
    return int(value) if value is not None and re.match(r"^[0-9]+\Z", value) else None


def leg_status(words):
    """The status of a leg from mdadm's state words: in_sync ('active sync'), rebuilding ('spare rebuilding'),
    spare, faulty or removed."""
    words = set(words)
    if "faulty" in words:
        return "faulty"
    if "removed" in words:
        return "removed"
    if "rebuilding" in words:
        return "rebuilding"
    if "active" in words and "sync" in words:
        return "in_sync"
    if "spare" in words:
        return "spare"
    return "unknown"


def parse_detail(text):
    """``mdadm --detail ARRAY``: {device, version, level, array_size_kib, used_dev_size_kib, raid_devices,
    total_devices, state (words: clean, degraded, resyncing, recovering...), active_devices, working_devices,
    failed_devices, spare_devices, bitmap ('Internal', a file, or None), consistency_policy, sync ({action,
    percent}, or None), name, uuid, events, legs: [{number, major, minor, raid_device, state (words), status
    (leg_status), device (None when removed)}]}."""
    lines = (text or "").splitlines()
    if not lines or not lines[0].rstrip().endswith(":") or not lines[0].startswith("/"):
        raise MdParseError("cannot read mdadm --detail output starting %r" % (lines[0] if lines else ""))
    table = next((i for i, line in enumerate(lines) if line.split()[:4] == ["Number", "Major", "Minor", "RaidDevice"]),
                 None)
    if table is None:
        raise MdParseError("mdadm --detail output of %s has no device table" % lines[0].rstrip(":"))
    fields = _fields(lines[1:table])
    sync = None
    for key, action in _STATUS_KEYS.items():
        if key in fields:
            match = re.match(r"^([0-9.]+)% complete", fields[key])
            sync = {"action": action, "percent": float(match.group(1)) if match else None}
    legs = []
    for line in lines[table + 1:]:
        if not line.strip():
            continue
        match = _LEG_RE.match(line)
        if not match:
            raise MdParseError("cannot read mdadm --detail device line %r" % line)
        words = (match.group("state") or "").split()
        number, raid = match.group("number"), match.group("raid")
        legs.append({"number": None if number == "-" else int(number), "major": int(match.group("major")),
                     "minor": int(match.group("minor")), "raid_device": None if raid == "-" else int(raid),
                     "state": words, "status": leg_status(words), "device": match.group("device")})
    bitmap = fields.get("Intent Bitmap")
    return {"device": lines[0].rstrip().rstrip(":"), "version": fields.get("Version"), "level": fields.get("Raid Level"),
            "array_size_kib": _size_kib(fields.get("Array Size")),
            "used_dev_size_kib": _size_kib(fields.get("Used Dev Size")),
            "raid_devices": _int(fields.get("Raid Devices")), "total_devices": _int(fields.get("Total Devices")),
            "state": [w.strip() for w in fields.get("State", "").split(",") if w.strip()],
            "active_devices": _int(fields.get("Active Devices")), "working_devices": _int(fields.get("Working Devices")),
            "failed_devices": _int(fields.get("Failed Devices")), "spare_devices": _int(fields.get("Spare Devices")),
            "bitmap": bitmap if bitmap and bitmap != "none" else None,
            "consistency_policy": fields.get("Consistency Policy"), "sync": sync,
            "name": (fields.get("Name") or "").split(" ")[0] or None, "uuid": fields.get("UUID"),
            "events": _int(fields.get("Events")), "legs": legs}


def parse_examine(text):
    """``mdadm --examine LEG`` (1.x metadata): {device, array_uuid, device_uuid, name, level, raid_devices,
    state, events, role (the slot number, 'spare', or None), array_state ('AA', 'A.'), bitmap (bool)}."""
    lines = (text or "").splitlines()
    if not lines or not lines[0].rstrip().endswith(":"):
        raise MdParseError("cannot read mdadm --examine output starting %r" % (lines[0] if lines else ""))
    fields = _fields(lines[1:])
    role = fields.get("Device Role")
    match = re.match(r"^Active device ([0-9]+)", role or "")
    array_state = (fields.get("Array State") or "").split(" ")[0] or None
    return {"device": lines[0].rstrip().rstrip(":"), "array_uuid": fields.get("Array UUID"),
            "device_uuid": fields.get("Device UUID"), "name": (fields.get("Name") or "").split(" ")[0] or None,
            "level": fields.get("Raid Level"), "raid_devices": _int(fields.get("Raid Devices")),
            "state": fields.get("State"), "events": _int(fields.get("Events")),
            "role": int(match.group(1)) if match else ("spare" if role and role.lower() == "spare" else None),
            "array_state": array_state, "bitmap": "Internal Bitmap" in fields}


# --------------------------------------------------------------------------- health and the guard (pure)


def resolve_device(path):
    """Where a device path leads (an LV path to /dev/dm-N, /dev/md/NAME to /dev/mdN)."""
    return os.path.realpath(path)


def same_device(a, b, resolve=None):
    """True when two paths name one block device (a path and the /dev/dm-N it leads to)."""
    resolve = resolve or resolve_device
    return bool(a and b) and (a == b or resolve(a) == resolve(b))


def find_leg(detail, device, resolve=None):
    """The leg of a parsed --detail that is device, or None (removed slots have no device)."""
    for leg in detail["legs"]:
        if leg["device"] and same_device(leg["device"], device, resolve):
            return leg
    return None


def array_health(detail, mdstat_entry=None):
    """One array read from mdadm --detail (and its /proc/mdstat entry, for progress): {device, uuid, state
    (clean, degraded, resyncing, recovering, failed, inactive), degraded, in_sync (legs), raid_devices, legs: [{device,
    status, slot}], sync ({action, percent, done_blocks, total_blocks, finish_min, speed_kib_s}, or None),
    bitmap (bool), map ('UU', 'U_', or None)}."""
    legs = [{"device": leg["device"], "status": leg["status"], "slot": leg["raid_device"]}
            for leg in detail["legs"] if leg["device"]]
    in_sync = sum(1 for leg in legs if leg["status"] == "in_sync")
    raid_devices = detail["raid_devices"] or 0
    sync = dict(detail["sync"]) if detail["sync"] else None
    if mdstat_entry and mdstat_entry.get("sync"):
        sync = dict(mdstat_entry["sync"])
    words = set(detail["state"])
    # /proc/mdstat's map is the kernel's own count of the slots it reads from: a hole there is a degraded mirror even
    # when mdadm --detail counts every leg in sync (a replacement left beside an emptied slot: stuck_replacement)
    hole = bool(mdstat_entry and "_" in (mdstat_entry.get("map") or ""))
    degraded = "degraded" in words or in_sync < raid_devices or "inactive" in words or hole
    if "inactive" in words:
        state = "inactive"  # assembled, not started: md waits for a leg (mdadm --run starts it degraded)
    elif in_sync == 0 or "FAILED" in words or "failed" in words:
        state = "failed"
    elif sync and sync["action"] in ("recovery",) or "recovering" in words:
        state = "recovering"
    elif sync and sync["action"] in ("resync", "reshape") or "resyncing" in words:
        state = "resyncing"
    elif degraded:
        state = "degraded"
    else:
        state = "clean"
    return {"device": detail["device"], "uuid": detail["uuid"], "state": state, "degraded": degraded,
            "in_sync": in_sync, "raid_devices": raid_devices, "legs": legs, "sync": sync,
            "bitmap": detail["bitmap"] is not None or bool(mdstat_entry and mdstat_entry.get("bitmap")),
            "map": mdstat_entry.get("map") if mdstat_entry else None}


def stuck_replacement(mdstat_entry, device, resolve=None):
    """Whether md holds device as the replacement of a slot whose main leg is gone, with no sync running.

    Linux 6.1's raid1 left this after a hot replace in the lab (stop 43, the guest writing): on dropping the replaced
    leg it emptied the slot, then did not move the replacement down (it does not while I/O is in flight on it).
    mdadm --detail counts the device active sync; /proc/mdstat has the hole in its map and the device flagged (R), md
    reads from the slot no more, and a loss of the other leg would fail the array. A fail, remove and re-add of the
    device (its bitmap: a short recovery) puts it in the slot."""
    if not mdstat_entry or mdstat_entry.get("sync") or "_" not in (mdstat_entry.get("map") or ""):
        return False
    name = os.path.basename((resolve or resolve_device)(device))
    return any(member["device"] == name and "replacement" in member["flags"] and "faulty" not in member["flags"]
               for member in mdstat_entry["members"])


def mdstat_entry(mdstat, device, resolve=None):
    """The /proc/mdstat entry of an array path (/dev/md90, or /dev/md/NAME, a link to it), or None."""
    name = os.path.basename((resolve or resolve_device)(device))
    return mdstat["arrays"].get(name)


def array_name(md_name):
    """The name part of an md name as --detail/--examine print it ('web07:data' -> 'data')."""
    return (md_name or "").rsplit(":", 1)[-1]


def arrays_named(mdstat, examined, name):
    """The /dev/mdN of each array (running, or held inactive by md, waiting for a leg) whose members' superblocks
    name it name ('data' or 'web07:data'). udev links /dev/md/NAME only to an array that
    runs, and names it /dev/md/HOST:NAME when md took it for another host's (its homehost is not the hostname md read
    when it assembled it), so an array is found by its members. examined: {member as /proc/mdstat names it ('xvdb',
    'dm-0'): parse_examine of it, or None}; an array whose members disagree on its uuid is no match."""
    out = []
    for entry in sorted(mdstat["arrays"].values(), key=lambda e: e["name"]):
        if not entry["members"]:
            continue
        supers = [examined.get(member["device"]) for member in entry["members"]]
        if any(sb is None for sb in supers) or len(set(sb["array_uuid"] for sb in supers)) != 1:
            continue
        if array_name(supers[0]["name"]) == array_name(name):
            out.append("/dev/%s" % entry["name"])
    return out


def drop_refusal(detail, stat, device, resolve=None):
    """Why device must not be failed or removed from the array (None: it may). Only a leg that is not in sync
    may go while the array resyncs; an in-sync leg only when another leg is in sync too in both readings
    (--detail: 'active sync'; /proc/mdstat: its map has as many U) and no resync runs."""
    leg = find_leg(detail, device, resolve)
    if leg is None or leg["status"] != "in_sync":
        return None
    others = [other for other in detail["legs"] if other is not leg and other["status"] == "in_sync"]
    ups = (stat.get("map") or "").count("U") if stat else 0
    if not others:
        return "%s is the last in-sync leg of %s: dropping it would lose the array" % (device, detail["device"])
    if ups < len(others) + 1:
        return ("%s: /proc/mdstat shows %s (%d in sync), mdadm --detail %d in-sync legs: the other leg is not "
                "known to be in sync" % (detail["device"], (stat or {}).get("map") or "no entry", ups,
                                         len(others) + 1))
    sync = (stat or {}).get("sync") or detail["sync"]
    if sync or "resyncing" in detail["state"]:
        action = sync["action"] if sync else "resync"
        return "%s runs a %s: its legs are not known to hold the same data yet" % (detail["device"], action)
    return None


# --------------------------------------------------------------------------- argv and the runner


def detail_argv(array):
    return [MDADM, "--detail", check_device(array, "array")]


def examine_argv(leg):
    return [MDADM, "--examine", check_device(leg, "leg")]


def manage_argv(array, verb, leg):
    """mdadm ARRAY --add|--re-add|--fail|--remove LEG."""
    if verb not in ("--add", "--re-add", "--fail", "--remove"):
        raise ValueError("unknown mdadm manage operation %r" % (verb,))
    return [MDADM, check_device(array, "array"), verb, check_device(leg, "leg")]


def replace_argv(array, old, new):
    """mdadm ARRAY --replace OLD --with NEW: NEW (a spare of the array) is rebuilt from OLD, which stays in
    sync until NEW is; then md marks OLD faulty."""
    return [MDADM, check_device(array, "array"), "--replace", check_device(old, "leg"), "--with",
            check_device(new, "leg")]


def create_argv(array, legs, name, bitmap="internal", metadata="1.2"):
    """A RAID1 of legs with a write-intent bitmap (a returning leg resyncs only what changed)."""
    if not re.match(r"^[A-Za-z0-9_.-]{1,32}\Z", name or ""):
        raise ValueError("invalid md array name %r: 1 to 32 letters, digits, _ . -" % (name,))
    return [MDADM, "--create", check_device(array, "array"), "--run", "--level=1",
            "--raid-devices=%d" % len(legs), "--metadata=%s" % metadata, "--bitmap=%s" % bitmap,
            "--name=%s" % name] + [check_device(leg, "leg") for leg in legs]


def run_argv(array):
    """mdadm --run ARRAY: start an assembled array that md holds inactive, with the legs it has (degraded)."""
    return [MDADM, "--run", check_device(array, "array")]


def stop_argv(array):
    return [MDADM, "--stop", check_device(array, "array")]


class Mdadm(RunnerTool):
    """/proc/mdstat and mdadm through a runner.CommandRunner."""

    def mdstat(self):
        return parse_mdstat(read_text(MDSTAT) or "")

    def detail(self, array):
        """Parsed --detail of the array, or None when it does not exist (mdadm: 'cannot open ...')."""
        result = self.runner.run(detail_argv(array), ok_rcs=(0, 1))
        if result.rc == 1:
            if "cannot open" in result.stderr or "does not appear to be an md device" in result.stderr:
                return None
            raise CommandError(result.cmd, result.rc, result.stdout, result.stderr)
        return parse_detail(result.stdout)

    def examine(self, leg):
        """Parsed --examine of a leg, or None when it holds no md superblock."""
        result = self.runner.run(examine_argv(leg), ok_rcs=(0, 1))
        if result.rc == 1:
            if "No md superblock detected" in result.stderr:
                return None
            raise CommandError(result.cmd, result.rc, result.stdout, result.stderr)
        return parse_examine(result.stdout)

    def manage(self, array, verb, leg):
        return self.runner.run(manage_argv(array, verb, leg), changes_state=True)

    def replace(self, array, old, new):
        return self.runner.run(replace_argv(array, old, new), changes_state=True)

    def create(self, array, legs, name):
        return self.runner.run(create_argv(array, legs, name), changes_state=True)

    def start(self, array):
        return self.runner.run(run_argv(array), changes_state=True)
