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

import re

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

    def resume(self, name):
        return self.runner.run(["dmsetup", "resume", check_dm_name(name)], changes_state=True)

    def swap_table(self, name, segments):
        """suspend, load, resume. If load fails the device is resumed on its old table,
        so a paused guest's disk is never left suspended; the error is re-raised."""
        render_table(segments)  # refuse a bad table before suspending anything
        self.suspend(name)
        try:
            self.load(name, segments)
        except Exception:
            self.resume(name)
            raise
        return self.resume(name)
