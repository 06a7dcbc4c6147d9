# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DRBD: /proc/drbd (8.0, 8.3, 8.4), ``drbdsetup status --json`` (9), resource files, and
one resource brought up, down or removed (module drbd_resource).

Parsers and planning helpers are pure (text or dicts in, plain dicts out) and raise
DrbdParseError/DrbdError on input they do not recognise; DrbdResource, at the end, is the
only code that runs commands (through runner.CommandRunner) or writes files (through files.py).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import time

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.files import read_text, write_file_atomic
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, wait_until

PROC_DRBD = "/proc/drbd"

_VERSION_RE = re.compile(r"^version:\s*(?P<version>\d+\.\d+\.\d+(?:[.-]\w+)?)\s*\(api:(?P<api>[^/]+)/proto:(?P<proto>[^)]+)\)")
# States, roles and disk states are plain words: anything else in them (a NUL, a byte that is
# not UTF-8) makes the line unreadable rather than part of a name.
_MINOR_RE = re.compile(r"^\s*(?P<minor>[0-9]+):\s+cs:(?P<cstate>[A-Za-z]+)(?P<rest>.*)$")
# 8.0 says st: (state), 8.3+ ro: (roles); protocol and the I/O flags follow. The flags are
# only reported (nothing decides on them) and DRBD 8.3 kernels have been seen printing NUL
# bytes in them: whatever follows the protocol is taken here and checked by _io_flags().
_STATE_RE = re.compile(
    r"^\s+(?:st|ro):(?P<role>[A-Za-z]+)/(?P<peer_role>[A-Za-z]+)"
    r"\s+ds:(?P<disk>[A-Za-z]+)/(?P<peer_disk>[A-Za-z]+)"
    r"(?:\s+(?P<protocol>[ABC]))?"
    r"(?:\s+(?P<flags>\S.*?))?\s*$"
)
_FLAGS_RE = re.compile(r"^[a-z-]{4,}$")
_STAT_RE = re.compile(r"([a-z]+):(\S+)")
_STAT_KEYS = ("ns", "nr", "dw", "dr", "al", "bm", "lo", "pe", "ua", "ap", "ep", "wo", "oos")
# Sync progress. A DRBD 8.3 kernel bug glued "finish:" to the line before ("...)Mfinish:").
_SYNCED_RE = re.compile(r"sync'ed:\s*(?P<percent>[0-9.]+)%")
_VERIFIED_RE = re.compile(r"verified:\s*(?P<percent>[0-9.]+)%")
_FINISH_RE = re.compile(r"finish:\s*(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d)")
# "speed: 3,788 (3,716) want: 4,096 K/sec": current (average), and the target rate on a SyncTarget.
_SPEED_RE = re.compile(r"speed:\s*(?P<speed>[0-9,]+)\s*\((?P<avg>[0-9,]+)\)(?:\s*want:\s*(?P<want>[0-9,]+))?\s*K/sec")
# Indented lines of a minor that carry nothing we report.
_IGNORED_LINE_RE = re.compile(r"^\s+(?:resync:|act_log:|blocked on activity log:)")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class DrbdParseError(ValueError):
    """/proc/drbd, drbdsetup output or a resource file that cannot be read safely."""


def _kib(value, line):
    try:
        return int(value.replace(",", ""))
    except ValueError:
        raise DrbdParseError("/proc/drbd: bad number %r in line %r" % (value, line))


def _stat_value(value):
    # Counters are integers; 8.4.6+ shows pe:[0;0] and ap:[0;0], wo: is a letter. Nothing
    # decides on them: a value with unprintable bytes is None (unreadable), not an error.
    if re.match(r"^[0-9]+$", value):
        return int(value)
    if value.startswith("[") and value.endswith("]"):
        parts = value[1:-1].split(";")
        if all(re.match(r"^[0-9]+$", part) for part in parts):
            return [int(part) for part in parts]
    return value if value.isprintable() else None


def _io_flags(value):
    """The I/O flags ("r-----"), or None when they are not readable (reported only)."""
    return value if value is not None and _FLAGS_RE.match(value) else None


def _new_minor(cstate):
    return {
        "cstate": cstate,
        "role": None,
        "peer_role": None,
        "disk": None,
        "peer_disk": None,
        "protocol": None,
        "flags": None,
        "unconfigured": cstate == "Unconfigured",
        "sync_percent": None,
        "sync_eta_s": None,
        "speed_kib_s": None,
        "want_kib_s": None,
        "verify_percent": None,
        "stats": {},
    }


def parse_proc_drbd(text):
    """Parse /proc/drbd of DRBD 8.0, 8.3, 8.4 (and the minor-less file of DRBD 9).

    Returns {"version": "8.4.11", "api": "1", "proto": "86-101", "build": <GIT-hash or
    srcversion line>, "minors": {minor_number: {...}}}. Each minor has cstate, role,
    peer_role, disk, peer_disk, protocol, flags, unconfigured, sync_percent (float or
    None), sync_eta_s (int or None), speed_kib_s and want_kib_s (int or None),
    verify_percent and stats (ns, nr, dw, ... oos as ints).

    Garbage (NUL bytes, say) in what is only reported - the I/O flags and the counters -
    makes that value None; garbage in what decisions rest on (states, roles, disk states,
    sync progress) raises DrbdParseError.
    """
    lines = text.splitlines()
    # 8.0 can start with an empty line before "version:".
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise DrbdParseError("/proc/drbd is empty")
    match = _VERSION_RE.match(lines[0].strip())
    if not match:
        raise DrbdParseError("/proc/drbd: first line is not a DRBD version line: %r" % (lines[0],))
    result = {
        "version": match.group("version"),
        "api": match.group("api"),
        "proto": match.group("proto"),
        "build": None,
        "minors": {},
    }
    current = None
    for line in lines[1:]:
        if not line.strip():
            continue  # 8.0 and 8.4 print empty lines between minors
        if line.startswith(("GIT-hash:", "srcversion:")):
            result["build"] = line.split(":", 1)[1].strip()
            continue
        if current is None and line.startswith("Transports "):
            continue  # DRBD 9 lists its transports; its minors are in drbdsetup status
        match = _MINOR_RE.match(line)
        if match:
            minor = int(match.group("minor"))
            if minor in result["minors"]:
                raise DrbdParseError("/proc/drbd: minor %d listed twice" % minor)
            current = _new_minor(match.group("cstate"))
            result["minors"][minor] = current
            rest = match.group("rest")
            if current["unconfigured"]:
                if rest.strip():
                    raise DrbdParseError("/proc/drbd: unexpected text after cs:Unconfigured: %r" % (line,))
                continue
            state = _STATE_RE.match(rest)
            if not state:
                raise DrbdParseError("/proc/drbd: cannot read roles/disk states in %r" % (line,))
            for key in ("role", "peer_role", "disk", "peer_disk", "protocol"):
                current[key] = state.group(key)
            current["flags"] = _io_flags(state.group("flags"))
            continue
        if current is None:
            raise DrbdParseError("/proc/drbd: unexpected line before the first minor: %r" % (line,))
        if current["unconfigured"]:
            raise DrbdParseError("/proc/drbd: unexpected line under an unconfigured minor: %r" % (line,))
        if _IGNORED_LINE_RE.match(line):
            continue
        consumed = False
        if "sync'ed:" in line or "verified:" in line or "finish:" in line:
            synced = _SYNCED_RE.search(line)
            if synced:
                current["sync_percent"] = float(synced.group("percent"))
                consumed = True
            verified = _VERIFIED_RE.search(line)
            if verified:
                current["verify_percent"] = float(verified.group("percent"))
                consumed = True
            finish = _FINISH_RE.search(line)
            if finish:
                current["sync_eta_s"] = int(finish.group("h")) * 3600 + int(finish.group("m")) * 60 + int(finish.group("s"))
                speed = _SPEED_RE.search(line)
                if not speed:
                    raise DrbdParseError("/proc/drbd: finish: line without speed: %r" % (line,))
                current["speed_kib_s"] = _kib(speed.group("speed"), line)
                if speed.group("want"):
                    current["want_kib_s"] = _kib(speed.group("want"), line)
                consumed = True
            if not consumed:
                raise DrbdParseError("/proc/drbd: cannot read sync progress in %r" % (line,))
            continue
        stats = _STAT_RE.findall(line)
        if stats and line.split()[0].split(":", 1)[0] in _STAT_KEYS:
            for key, value in stats:
                current["stats"][key] = _stat_value(value)
            continue
        raise DrbdParseError("/proc/drbd: unexpected line %r" % (line,))
    return result


# --------------------------------------------------------------------------- DRBD 9

def parse_drbdsetup_status_json(text):
    """Parse ``drbdsetup status --json`` (DRBD 9) into a list of resource dicts.

    Each: name, node_id, role, suspended, devices [{volume, minor, disk_state, size_kib}],
    connections [{peer_node_id, name, connection_state, peer_role, peer_devices
    [{volume, replication_state, peer_disk_state, percent_in_sync, out_of_sync_kib}]}].
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DrbdParseError("drbdsetup status --json: invalid JSON: %s" % (exc,))
    if not isinstance(data, list):
        raise DrbdParseError("drbdsetup status --json: expected a list of resources")
    resources = []
    try:
        for res in data:
            resources.append({
                "name": res["name"],
                "node_id": res.get("node-id"),
                "role": res["role"],
                "suspended": res.get("suspended"),
                "devices": [{
                    "volume": dev["volume"],
                    "minor": dev["minor"],
                    "disk_state": dev["disk-state"],
                    "size_kib": dev.get("size"),
                } for dev in res.get("devices", [])],
                "connections": [{
                    "peer_node_id": conn.get("peer-node-id"),
                    "name": conn.get("name"),
                    "connection_state": conn["connection-state"],
                    "peer_role": conn.get("peer-role"),
                    "peer_devices": [{
                        "volume": pdev["volume"],
                        "replication_state": pdev["replication-state"],
                        "peer_disk_state": pdev["peer-disk-state"],
                        "percent_in_sync": pdev.get("percent-in-sync"),
                        "out_of_sync_kib": pdev.get("out-of-sync"),
                    } for pdev in conn.get("peer_devices", [])],
                } for conn in res.get("connections", [])],
            })
    except (KeyError, TypeError) as exc:
        raise DrbdParseError("drbdsetup status --json: missing field %s" % (exc,))
    return resources


def drbd9_minors(resources):
    """Flatten parse_drbdsetup_status_json() output to /proc/drbd-style minors.

    Only the first peer is reported (this collection pairs two dom0s). cstate is the
    replication state while connected (Established, SyncSource, ...) as 8.4's cs: is.
    """
    minors = {}
    for res in resources:
        conn = res["connections"][0] if res["connections"] else None
        for dev in res["devices"]:
            minor = _new_minor("StandAlone")
            minor.update({"resource": res["name"], "role": res["role"], "disk": dev["disk_state"]})
            if conn is not None:
                pdev = [p for p in conn["peer_devices"] if p["volume"] == dev["volume"]]
                minor["peer_role"] = conn["peer_role"]
                minor["cstate"] = conn["connection_state"]
                if pdev:
                    minor["peer_disk"] = pdev[0]["peer_disk_state"]
                    if conn["connection_state"] == "Connected":
                        minor["cstate"] = pdev[0]["replication_state"]
                    if pdev[0]["replication_state"].startswith(("Sync", "PausedSync")):
                        minor["sync_percent"] = pdev[0]["percent_in_sync"]
            minors[dev["minor"]] = minor
    return minors


# --------------------------------------------------------------------------- resource files

def _check_word(value, what):
    if not isinstance(value, str) or not value or re.search(r"[\s;{}\"'#]", value):
        raise DrbdParseError("resource: invalid %s %r" % (what, value))
    return value


_DEVICE_RE = re.compile(r"^/dev/drbd(\d+)\Z")


def device_minor(device):
    """The minor of a /dev/drbdN path, or None."""
    match = _DEVICE_RE.match(device or "")
    return int(match.group(1)) if match else None


def _device(value):
    if isinstance(value, int):
        return conv.drbd_device(value)
    _check_word(value, "device")
    if device_minor(value) is None:
        raise DrbdParseError("resource: device must be /dev/drbdN or a minor number, got %r" % (value,))
    return value


def _options_block(indent, name, options):
    if not options:
        return []
    items = []
    for key in options:
        value = options[key]
        _check_word(key, "option name")
        if isinstance(value, bool):
            value = "yes" if value else "no"
        items.append("%s %s;" % (key, _check_word(str(value), "value of %s" % key)))
    return ["%s%s { %s }" % (indent, name, " ".join(items))]


def render_resource(name, hosts, version="8.4", net=None, disk=None, protocol="C"):
    """Render a two-or-more host DRBD resource with external metadata.

    hosts: list of dicts with name, address (IPv4), port, minor (int) or device
    (/dev/drbdN), disk (backing device), meta_disk (external metadata device) and, for
    DRBD 9, node_id (defaults to the list index). version: "8.4" or "9".
    """
    _check_word(name, "resource name")
    if not _NAME_RE.match(name):
        raise DrbdParseError("resource: invalid resource name %r" % (name,))
    if version not in ("8.4", "9"):
        raise DrbdParseError("resource: version must be '8.4' or '9', got %r" % (version,))
    if len(hosts) < 2:
        raise DrbdParseError("resource: needs at least two hosts")
    if protocol not in ("A", "B", "C"):
        raise DrbdParseError("resource: protocol must be A, B or C")
    net = dict(net or {})
    net.setdefault("protocol", protocol)
    lines = ["resource %s {" % name]
    lines += _options_block("  ", "net", net)
    lines += _options_block("  ", "disk", disk)
    for index, host in enumerate(hosts):
        hname = _check_word(host["name"], "host name")
        device = _device(host["minor"] if "minor" in host else host["device"])
        port = int(host["port"])
        if not 0 < port < 65536:
            raise DrbdParseError("resource: bad port %r" % (host["port"],))
        address = "%s:%d" % (_check_word(host["address"], "address"), port)
        backing = _check_word(host["disk"], "disk")
        meta = _check_word(host["meta_disk"], "meta-disk")
        if meta == "internal":
            # Internal metadata would overwrite the end of a guest disk taken over in place.
            raise DrbdParseError("resource: this collection only renders external metadata")
        lines.append("  on %s {" % hname)
        if version == "9":
            lines.append("    node-id %d;" % int(host.get("node_id", index)))
            lines.append("    volume 0 { device %s; disk %s; meta-disk %s; }" % (device, backing, meta))
            lines.append("    address %s;" % address)
        else:
            lines.append("    device %s; disk %s; address %s; meta-disk %s;" % (device, backing, address, meta))
        lines.append("  }")
    if version == "9":
        lines.append("  connection-mesh { hosts %s; }" % " ".join(host["name"] for host in hosts))
    lines.append("}")
    return "\n".join(lines) + "\n"


_CONF_TOKEN_RE = re.compile(r'\s+|#[^\n]*|(?P<tok>[{};]|"(?:[^"\\]|\\.)*"|[^\s{};"#]+)')


def parse_config(text):
    """Parse DRBD configuration syntax into nested lists.

    Each statement becomes {"words": [...]} or, for a section, {"words": [...],
    "body": [...]} - enough to read back what render_resource() wrote.
    """
    tokens = []
    pos = 0
    while pos < len(text):
        match = _CONF_TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise DrbdParseError("drbd config: cannot read %r" % (text[pos:pos + 30],))
        tok = match.group("tok")
        if tok is not None:
            tokens.append(tok[1:-1] if tok.startswith('"') else tok)
        pos = match.end()

    def block(idx, depth):
        items = []
        words = []
        while idx < len(tokens):
            tok = tokens[idx]
            if tok == ";":
                if not words:
                    raise DrbdParseError("drbd config: empty statement")
                items.append({"words": words})
                words = []
            elif tok == "{":
                if not words:
                    raise DrbdParseError("drbd config: section without a name")
                body, idx = block(idx + 1, depth + 1)
                items.append({"words": words, "body": body})
                words = []
            elif tok == "}":
                if depth == 0:
                    raise DrbdParseError("drbd config: unbalanced '}'")
                if words:
                    raise DrbdParseError("drbd config: statement %r not ended by ';'" % (" ".join(words),))
                return items, idx
            else:
                words.append(tok)
            idx += 1
        if depth:
            raise DrbdParseError("drbd config: missing '}'")
        if words:
            raise DrbdParseError("drbd config: statement %r not ended by ';'" % (" ".join(words),))
        return items, idx

    items, _idx = block(0, 0)
    return items


def parse_resource(text):
    """Read back a single resource written by render_resource() or printed by ``drbdadm dump``
    (8.4 or 9 syntax).

    Returns {"name", "net", "disk", "hosts": [{name, node_id, device, disk, meta_disk,
    address, port}]}.
    """
    items = parse_config(text)
    resources = [item for item in items if item["words"][0] == "resource" and "body" in item]
    if len(resources) != 1 or len(resources[0]["words"]) != 2:
        raise DrbdParseError("drbd config: expected exactly one 'resource NAME { }'")
    res = resources[0]
    result = {"name": res["words"][1], "net": {}, "disk": {}, "hosts": []}

    def flat(body, into):
        for stmt in body:
            if "body" in stmt:
                if stmt["words"][0] == "volume":
                    flat(stmt["body"], into)
                continue
            words = stmt["words"]
            # drbdadm dump writes "device /dev/drbd90 minor 90;" and "address ipv4 IP:PORT;".
            if words[0] == "device" and len(words) == 4 and words[2] == "minor":
                into["device"] = words[1]
            elif words[0] == "device" and len(words) == 3 and words[1] == "minor":
                into["device"] = "/dev/drbd%s" % words[2]
            elif words[0] == "address" and len(words) == 3 and words[1] in ("ipv4", "ipv6"):
                into["address"] = words[2]
            elif len(words) == 2:
                into[words[0]] = words[1]
            else:
                raise DrbdParseError("drbd config: unexpected statement %r" % (" ".join(words),))

    for stmt in res["body"]:
        key = stmt["words"][0]
        if key in ("net", "disk") and "body" in stmt:
            flat(stmt["body"], result[key])
        elif key == "on" and "body" in stmt:
            values = {}
            flat(stmt["body"], values)
            address, _sep, port = values.get("address", "").rpartition(":")
            if not address or not port.isdigit():
                raise DrbdParseError("drbd config: host %r has no address:port" % (stmt["words"][1],))
            result["hosts"].append({
                "name": stmt["words"][1],
                "node_id": int(values["node-id"]) if "node-id" in values else None,
                "device": values.get("device"),
                "disk": values.get("disk"),
                "meta_disk": values.get("meta-disk"),
                "address": address,
                "port": int(port),
            })
    return result


def resource_files(conf_dir=conv.DRBD_CONF_DIR):
    """(path, parsed resource) of each single-resource file in conf_dir; others are skipped
    (not ours to read). The one reader of the resource files for preflight and claims."""
    found = []
    for path in sorted(glob.glob(os.path.join(conf_dir, "*.res"))):
        try:
            with open(path) as handle:
                found.append((path, parse_resource(handle.read())))
        except (IOError, OSError, DrbdParseError):
            continue
    return found


def parse_drbdsetup_show(text):
    """Which resource each minor belongs to, from ``drbdsetup show [MINOR|all]`` of DRBD 8.4.

    /proc/drbd of 8.4 lists minors without resource names; drbdsetup show (drbdsetup-84)
    prints ``resource NAME { ... _this_host { ... volume N { device minor M; ... } } }``
    for each. Returns {minor: resource name} ({} for empty output).
    """
    owners = {}
    for item in parse_config(text):
        words = item["words"]
        if words[0] != "resource" or len(words) != 2 or "body" not in item:
            raise DrbdParseError("drbdsetup show: expected 'resource NAME { }', got %r" % (" ".join(words),))
        for host in item["body"]:
            if host["words"] != ["_this_host"] or "body" not in host:
                continue
            for volume in host["body"]:
                if volume["words"][0] != "volume" or "body" not in volume:
                    continue
                for stmt in volume["body"]:
                    if stmt["words"][0] != "device" or "body" in stmt:
                        continue
                    # "device minor 90;" (drbdsetup show) or "device /dev/drbd90 minor 90;" (drbdadm dump)
                    if stmt["words"][-2:-1] != ["minor"] or not re.match(r"^[0-9]+$", stmt["words"][-1]):
                        raise DrbdParseError("drbdsetup show: cannot read the device of resource %s: %r"
                                             % (words[1], " ".join(stmt["words"])))
                    minor = int(stmt["words"][-1])
                    if minor in owners:
                        raise DrbdParseError("drbdsetup show: minor %d listed twice (%s, %s)"
                                             % (minor, owners[minor], words[1]))
                    owners[minor] = words[1]
    return owners


# --------------------------------------------------------------------------- commands

def drbdadm_argv(verb, resource, *options):
    """argv for ``drbdadm VERB [OPTIONS] RESOURCE``."""
    _check_word(resource, "resource name")
    return ["drbdadm", verb] + [str(option) for option in options] + [resource]


# drbdadm's answer while a state change (a connection attempt, say) is still in flight: it
# settles within milliseconds, so the command is worth repeating.
TRANSIENT_STATE = "(-18)"


# drbdadm's answer when it gave up waiting for drbdsetup (5 s for a connect): on a loaded host
# the kernel may have done the change all the same, or not; the caller looks at the state.
TIMED_OUT = "did not terminate within"


def timed_out(exc):
    """True when a failed drbdadm command (CommandError) only gave up waiting for drbdsetup."""
    return TIMED_OUT in (exc.stderr or "") + (exc.stdout or "")


def retry_transient(call, timeout=15, sleep=time.sleep, clock=time.time):
    """call() (a drbdadm command), again every 0.2 s while DRBD answers "(-18) In transient
    state", for at most timeout seconds; any other failure is raised at once."""
    deadline = clock() + timeout
    while True:
        try:
            return call()
        except CommandError as exc:
            if TRANSIENT_STATE not in (exc.stderr or "") or clock() > deadline:
                raise
            sleep(0.2)


def drbdsetup_show_argv(minor):
    """argv for ``drbdsetup show MINOR`` (read-only): which resource the minor belongs to."""
    return ["drbdsetup", "show", str(int(minor))]


def kernel_names_resources(version):
    """True for DRBD 8.4 and later, whose kernel knows the resource (name) of each minor."""
    match = re.match(r"^([0-9]+)\.([0-9]+)", version or "")
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (8, 4)


def read_proc_drbd(path=PROC_DRBD):
    """Parsed /proc/drbd, or {"version": None, "minors": {}} when the module is not loaded.

    Read as bytes: a byte that is not UTF-8 becomes U+FFFD, which parse_proc_drbd() tolerates
    where it tolerates garbage and refuses elsewhere, instead of a UnicodeDecodeError.
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError) as exc:
        if exc.errno != errno.ENOENT:
            raise
        return {"version": None, "api": None, "proto": None, "build": None, "minors": {}}
    return parse_proc_drbd(text)


# --------------------------------------------------------------------------- one resource: pure helpers

MAX_MINOR = conv.MAX_MINOR
# What cs: (8.4) or the replication state (9, via drbd9_minors) says when peers are in touch
# and not resyncing.
CONNECTED_CSTATES = ("Connected", "Established")
# What cs: (8.4) says when peers are in touch, resyncing or not: the link is up.
LINKED_CSTATES = ("Connected", "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT")
_HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
_DEVICE_PATH_RE = re.compile(r"^/dev/[A-Za-z0-9_.+:/-]+$")
_RATE_RE = re.compile(r"^[1-9][0-9]{0,9}[kKmMgG]?$")
_SECRET_CHARS_RE = re.compile(r"^[^\s;{}\"'#\\]{1,64}$")
_SECRET_STMT_RE = re.compile(r"(shared-secret\s+)(\"(?:[^\"\\]|\\.)*\"|[^\s;]+)")
SECRET_MASK = "********"
# res-file options that may change on a running resource without drbdadm adjust.
RUNTIME_NET = ("allow-two-primaries",)
RUNTIME_DISK = ("c-plan-ahead", "resync-rate")


class DrbdError(Exception):
    """A resource that cannot be brought to the requested state (bad input or live state)."""


def check_resource_params(params):
    """Validate the options of sanless.xen.drbd_resource; raise DrbdError naming the bad one.

    Runs before anything touches the host. The shared secret never appears in a message.
    """
    name = params.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 128:
        raise DrbdError("invalid resource name %r: letters, digits and _ . - only, not starting with . or -" % (name,))
    minor = params.get("minor")
    if not isinstance(minor, int) or isinstance(minor, bool) or not 0 <= minor <= MAX_MINOR:
        raise DrbdError("minor %r out of range 0..%d" % (minor, MAX_MINOR))
    state = params.get("state", "up")
    role = params.get("role")
    if role is not None and state != "up":
        raise DrbdError("role=%s needs state=up (state is %s)" % (role, state))
    if params.get("force") and role != "primary":
        raise DrbdError("force=true only applies with role=primary")
    if params.get("wait") and state != "up":
        raise DrbdError("wait=true needs state=up")
    window = params.get("wait_window", 10)
    if window is not None and not 0 <= window <= 25:
        raise DrbdError("wait_window %r out of range 0..25" % (window,))
    interval = params.get("progress_interval", 10)
    if interval is not None and not 1 <= interval <= 30:
        raise DrbdError("progress_interval %r out of range 1..30" % (interval,))
    timeout = params.get("wait_timeout", 3600)
    if timeout is not None and timeout < 1:
        raise DrbdError("wait_timeout must be at least 1 s")
    if state == "absent":
        return
    port = resource_port(params)
    if not 1 <= port <= 65535:
        raise DrbdError("port %d out of range 1..65535%s" % (
            port, "" if params.get("port") is not None else " (7700 + minor); give port"))
    for key in ("disk", "meta_disk"):
        value = params.get(key)
        if not isinstance(value, str) or not _DEVICE_PATH_RE.match(value) or "/../" in value or value.endswith("/.."):
            raise DrbdError("%s must be a block device path under /dev (letters, digits, _ . + : - /), got %r"
                            % (key, value))
    if params["disk"] == params["meta_disk"]:
        raise DrbdError("meta_disk must differ from disk: this module only writes external metadata")
    for key in ("host_name", "peer_name"):
        value = params.get(key)
        if not isinstance(value, str) or not _HOST_NAME_RE.match(value):
            raise DrbdError("invalid %s %r (the node name as uname -n prints it)" % (key, value))
    if params["host_name"] == params["peer_name"]:
        raise DrbdError("peer_name must differ from host_name (%s)" % params["host_name"])
    for key in ("address", "peer_address"):
        value = params.get(key)
        if not isinstance(value, str) or not re.match(r"^\d{1,3}(\.\d{1,3}){3}$", value) \
                or any(int(part) > 255 for part in value.split(".")):
            raise DrbdError("%s must be an IPv4 address, got %r" % (key, value))
    if params["address"] == params["peer_address"]:
        raise DrbdError("peer_address must differ from address (%s)" % params["address"])
    if params.get("resync_rate") is not None:
        check_resync_rate(params["resync_rate"])
    secret = params.get("shared_secret")
    if secret is not None and not _SECRET_CHARS_RE.match(secret):
        raise DrbdError("shared_secret must be 1 to 64 characters without spaces, quotes, backslash, ; { } or #")


def check_resync_rate(rate):
    """Refuse (DrbdError) a resync rate DRBD's resync-rate does not take: a number with an optional unit."""
    if not isinstance(rate, str) or not _RATE_RE.match(rate):
        raise DrbdError("resync_rate must be a number with an optional unit K, M or G (400M), got %r" % (rate,))
    return rate


def resource_port(params):
    return params["port"] if params.get("port") is not None else conv.drbd_port(params["minor"])


def userland_version(requested, proc):
    """Resource file syntax: the requested "8.4"/"9", or with "auto" "9" when /proc/drbd says
    version 9 and "8.4" otherwise (also when the module is not loaded)."""
    if requested in ("8.4", "9"):
        return requested
    return "9" if (proc.get("version") or "").startswith("9") else "8.4"


def resource_text(params, version):
    """The res file the module writes. Hosts are sorted by name so both dom0s write the same
    file (and, for DRBD 9, the same node ids)."""
    port = resource_port(params)
    me = {"name": params["host_name"], "address": params["address"]}
    peer = {"name": params["peer_name"], "address": params["peer_address"]}
    hosts = []
    for host in sorted([me, peer], key=lambda h: h["name"]):
        hosts.append(dict(host, port=port, minor=params["minor"], disk=params["disk"], meta_disk=params["meta_disk"]))
    net = {}
    if params.get("allow_two_primaries") is not None:
        net["allow-two-primaries"] = bool(params["allow_two_primaries"])
    if params.get("shared_secret"):
        net["cram-hmac-alg"] = "sha256"
        net["shared-secret"] = params["shared_secret"]
    disk = {}
    if params.get("resync_rate"):
        disk = {"c-plan-ahead": 0, "resync-rate": params["resync_rate"]}
    return render_resource(params["name"], hosts, version=version, net=net, disk=disk)


def pair_resource_text(name, minor, port, disk, meta_disk, hosts, secret, resync_rate="400M"):
    """The res file of a temporary resource that replicates one disk between two hosts
    (``hosts``: [{"name", "address"}] x 2, the copy's origin first, so both write the same file):
    the same minor, port and backing disk on both, and the same external metadata device, or one
    per host (``meta_disk`` a list in the hosts' order: their VGs differ). A split brain only
    disconnects (no copy is ever discarded automatically); the resync runs at a fixed rate
    (c-plan-ahead 0: resync-rate, not DRBD's dynamic controller and its c-max-rate of 100 MiB/s), and
    is not slowed down when the backing device sees other I/O (c-min-rate 0: DRBD 8.4 otherwise
    holds each resync request back 100 ms whenever the guest, or a udev or LVM scan, touched the
    disk since the last check and the resync runs above c-min-rate, 250 KiB/s by default; the copy
    must finish, and the guest's writes go to both sides anyway)."""
    if not isinstance(secret, str) or not secret:
        # never a resource that any host reaching the port may connect to
        raise DrbdParseError("resource %s: a shared secret is required" % (name,))
    metas = list(meta_disk) if isinstance(meta_disk, (list, tuple)) else [meta_disk] * len(hosts)
    hosts = [dict(host, port=port, minor=minor, disk=disk, meta_disk=meta) for host, meta in zip(hosts, metas)]
    net = {"cram-hmac-alg": "sha256", "shared-secret": secret,
           "after-sb-0pri": "disconnect", "after-sb-1pri": "disconnect", "after-sb-2pri": "disconnect"}
    disk_opts = {"c-plan-ahead": 0, "resync-rate": resync_rate, "c-min-rate": 0, "al-extents": 1237}
    return render_resource(name, hosts, version="8.4", net=net, disk=disk_opts)


def mask_secret(text):
    """The res file text with the value of shared-secret replaced by ********."""
    if text is None:
        return None
    return _SECRET_STMT_RE.sub(lambda m: m.group(1) + SECRET_MASK, text)


def minor_state(minors, minor):
    """The parsed state of a configured minor, or None (absent or cs:Unconfigured)."""
    state = minors.get(minor)
    if state is None or state.get("unconfigured"):
        return None
    return state


def resource_view(name, minor, state):
    """What the module returns about the resource: up or not, roles, states, sync progress."""
    state = state or {}
    return {
        "name": name,
        "minor": minor,
        "up": bool(state),
        "cstate": state.get("cstate"),
        "role": state.get("role"),
        "peer_role": state.get("peer_role"),
        "disk": state.get("disk"),
        "peer_disk": state.get("peer_disk"),
        "sync_percent": state.get("sync_percent"),
        "speed_kib_s": state.get("speed_kib_s"),
        "sync_eta_s": state.get("sync_eta_s"),
    }


def sync_report_item(name, minor, state):
    """One resource's line of a sync report (the live_migration module's ``sync`` list, and what the
    controller reads of /proc/drbd while it watches a sync): a parsed minor's state, by name."""
    return {"resource": name, "minor": minor, "cstate": state.get("cstate"), "disk": state.get("disk"),
            "peer_disk": state.get("peer_disk"), "percent": state.get("sync_percent"),
            "speed_kib_s": state.get("speed_kib_s"), "eta_s": state.get("sync_eta_s")}


def both_uptodate(state):
    """Both copies UpToDate (a parsed minor, or anything with its disk and peer_disk keys)."""
    return state.get("disk") == "UpToDate" and state.get("peer_disk") == "UpToDate"


def is_synced(state):
    """Connected and UpToDate/UpToDate."""
    return bool(state) and state.get("cstate") in CONNECTED_CSTATES and both_uptodate(state)


# Seconds DRBD gets to start a sync by itself before drbd_resource (force=true) starts it.
INITIAL_SYNC_GRACE = 3


def is_resyncing(state):
    """Linked to the peer and a resync under way or paused (a parsed minor or a sync report item)."""
    return bool(state) and state.get("cstate") in LINKED_CSTATES and state.get("cstate") != "Connected"


def no_sync_running(state):
    """Connected, one disk UpToDate and the other Inconsistent, and no sync: a sync that DRBD will not
    start by itself (see initial_sync_stuck). Takes a parsed minor or a sync report item."""
    return bool(state) and state.get("cstate") == "Connected" and \
        sorted((state.get("disk"), state.get("peer_disk"))) == ["Inconsistent", "UpToDate"]


def initial_sync_stuck(state):
    """This side Primary and UpToDate, Connected to an Inconsistent peer, and nothing syncing.

    DRBD 8.4 leaves a resource so when both sides had fresh metadata, connected ("uuid_compare()=0
    by rule 10, No resync") and one was forced Primary right after: no sync ever starts, and
    every wait for UpToDate/UpToDate waits forever. Only an Inconsistent peer counts: a peer
    that is UpToDate, Outdated or Consistent holds data a sync towards it would overwrite.
    """
    return no_sync_running(state) and state.get("role") == "Primary" and state.get("disk") == "UpToDate"


def replica_problems(state, peer_primary=False):
    """Why the peer's copy behind a minor's state cannot be trusted right now (empty list: it
    can): the link Connected, both disks UpToDate, nothing out of sync and, with peer_primary,
    the peer Primary (it runs, or is about to run, the guest on its copy)."""
    if not state:
        return ["down"]
    problems = []
    if state.get("cstate") not in CONNECTED_CSTATES:
        problems.append("connection %s" % state.get("cstate"))
    if not both_uptodate(state):
        problems.append("disks %s/%s" % (state.get("disk"), state.get("peer_disk")))
    oos = (state.get("stats") or {}).get("oos")
    if not isinstance(oos, int):
        problems.append("out-of-sync unknown (%r)" % (oos,))
    elif oos:
        problems.append("%s KiB out of sync" % oos)
    if peer_primary and state.get("peer_role") != "Primary":
        problems.append("peer %s" % state.get("peer_role"))
    return problems


def promotion_problems(state, name, minor):
    """Why resource ``name`` (its parsed minor ``state``; None or unconfigured: not up) cannot be made Primary on this
    host without --force: [] when it can, None when it is Primary already. Its local disk must be UpToDate and its
    peer not Primary (a failover or a watcher restart never promotes a stale or a contested copy)."""
    if not state or state.get("unconfigured"):
        return ["%s (minor %s) is not up" % (name, minor)]
    if state.get("role") == "Primary":
        return None
    problems = []
    if state.get("disk") != "UpToDate":
        problems.append("%s: local disk %s, not UpToDate" % (name, state.get("disk")))
    if state.get("peer_role") == "Primary":
        problems.append("%s: the peer is Primary" % name)
    return problems


def format_progress(view):
    """One line of wait progress: "fxd SyncSource 67.4% speed 3692 KiB/s eta 18s"."""
    pct = "%.1f%%" % view["sync_percent"] if view.get("sync_percent") is not None else \
        "%s/%s" % (view.get("disk"), view.get("peer_disk"))
    speed = "%d KiB/s" % view["speed_kib_s"] if view.get("speed_kib_s") else "-"
    eta = "%ds" % view["sync_eta_s"] if view.get("sync_eta_s") is not None else "-"
    return "%s %s %s speed %s eta %s" % (view.get("name"), view.get("cstate") or "down", pct, speed, eta)


def metadata_state(rc, stdout, stderr):
    """Read ``drbdadm get-gi RES`` on a resource that is not up: "present" or "none".

    get-gi reads only the metadata superblock (dump-md would also print the whole bitmap).
    rc 0 is valid metadata. No metadata: drbdadm get-gi (drbd-utils 9.22.0, recorded on a zeroed
    meta LV) fails with rc 1 and prints nothing at all (drbdmeta reports a missing magic number
    only with --verbose); "No valid meta data found" (drbdmeta's words elsewhere, on either
    stream) is none too. An unclean activity log ("apply-al") is still metadata. Anything else
    (another rc, or any message: drbdmeta names an unreadable or too small device) raises
    DrbdError: an unreadable device is never a reason to overwrite it.
    """
    text = "%s\n%s" % (stdout or "", stderr or "")
    if rc == 0:
        return "present"
    if rc == 1 and not text.strip():
        return "none"
    if "No valid meta data found" in text:
        return "none"
    if "apply-al" in text or "unclean" in text:
        return "present"
    detail = (stderr or stdout or "").strip().splitlines()
    raise DrbdError("drbdadm get-gi failed with rc %s%s: cannot tell whether the metadata is valid; not creating it"
                    % (rc, (": " + detail[-1]) if detail else ""))


def runtime_changes(old_text, new_text):
    """Compare the old res file (None: none) with the new one.

    Returns (net, disk, other): the runtime-changeable net and disk options whose value
    changes ({option: new value or None}), and whether anything else changes (addresses,
    devices, secret...), which a running resource only picks up with drbdadm adjust or down/up.
    """
    new = parse_resource(new_text)
    try:
        old = parse_resource(old_text) if old_text is not None else None
    except DrbdParseError:
        old = None
    if old is None:
        old = {"net": {}, "disk": {}, "hosts": None, "name": None}
    net = dict((key, new["net"].get(key)) for key in RUNTIME_NET if old["net"].get(key) != new["net"].get(key))
    disk = dict((key, new["disk"].get(key)) for key in RUNTIME_DISK if old["disk"].get(key) != new["disk"].get(key))

    def rest(res):
        return (res["name"], res["hosts"],
                dict((k, v) for k, v in res["net"].items() if k not in RUNTIME_NET),
                dict((k, v) for k, v in res["disk"].items() if k not in RUNTIME_DISK))
    return net, disk, rest(old) != rest(new)


# --------------------------------------------------------------------------- one resource: commands

class DrbdResource(object):
    """Brings one resource with one peer to state up/down/absent (module drbd_resource).

    params are the module's options (validated with check_resource_params first). Commands
    go through runner (check mode: changing commands are listed, not run); the res file is
    only written outside check mode. ``sleep`` and ``clock`` are for tests.
    """

    def __init__(self, runner, params, proc_path=None, sleep=None, clock=None):
        self.runner = runner
        self.p = params
        self.name = params["name"]
        self.minor = params["minor"]
        self.proc_path = proc_path or PROC_DRBD
        self.res_path = os.path.join(params.get("conf_dir") or "/etc/drbd.d", "%s.res" % self.name)
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self.changed = False
        self.warnings = []
        self.metadata = "not checked"
        self.kernel9 = False
        self.kernel_version = None
        # The resource drbdsetup show named as the minor's (this one's name too once our drbdadm
        # up made the minor); None again when the minor is gone.
        self.minor_owner_seen = None

    # -- reading
    def proc(self):
        proc = read_proc_drbd(self.proc_path)
        self.kernel_version = proc.get("version")
        self.kernel9 = (self.kernel_version or "").startswith("9")
        return proc

    def state(self):
        """This resource's live state (parsed minor) or None when it is not up.

        The minor is checked to be this resource's by name first (see minor_owner): when it is
        another resource's, DrbdError names both, before anything is changed; with state=absent
        nothing of ours is up on it, so the state is None and only our res file goes.
        """
        proc = self.proc()
        if proc["version"] is None:
            return None  # module not loaded: nothing is up
        if self.kernel9:
            out = self.runner.stdout(["drbdsetup", "status", "--json"])
            minors = drbd9_minors(parse_drbdsetup_status_json(out))
        else:
            minors = proc["minors"]
        owner = self.minor_owner(minors)
        if owner not in (None, self.name):
            if self.p["state"] == "absent":
                return None
            raise DrbdError("minor %d is used by resource %s, not %s: nothing was changed; give %s a free minor "
                            "(or take %s down first)" % (self.minor, owner, self.name, self.name, owner))
        return minor_state(minors, self.minor)

    def minor_owner(self, minors):
        """The name of the resource holding this resource's minor, or None when it is free.

        /proc/drbd of 8.4 has no resource names: a minor it lists (cs:Unconfigured too: made by
        new-minor, it belongs to a resource all the same) is looked up with ``drbdsetup show
        MINOR``, once per run while the minor stays. DRBD 9 names them in drbdsetup status. Kernels
        before 8.4 know no names at all: the minor is taken to be ours, with a warning.
        """
        if self.minor not in minors:
            self.minor_owner_seen = None
            return None
        if self.kernel9:
            return minors[self.minor].get("resource")
        if self.minor_owner_seen is not None:
            return self.minor_owner_seen
        if not kernel_names_resources(self.kernel_version):
            if minor_state(minors, self.minor) is not None:
                warning = ("DRBD %s kernels do not name their resources: minor %d is taken to be %s's"
                           % (self.kernel_version, self.minor, self.name))
                if warning not in self.warnings:
                    self.warnings.append(warning)
            return None
        argv = drbdsetup_show_argv(self.minor)
        owners = parse_drbdsetup_show(self.runner.stdout(argv))
        if self.minor not in owners:
            raise DrbdError("/proc/drbd lists minor %d but %s names no resource for it: cannot tell whose it is"
                            % (self.minor, " ".join(argv)))
        self.minor_owner_seen = owners[self.minor]
        return self.minor_owner_seen

    # -- changing
    def drbdadm(self, verb, *options, **kwargs):
        self.changed = True
        return self.runner.run(drbdadm_argv(verb, self.name, *options), changes_state=True, **kwargs)

    def write_res(self, text):
        self.changed = True
        if not self.runner.check_mode:
            if not os.path.isdir(os.path.dirname(self.res_path)):
                raise DrbdError("folder %s does not exist" % os.path.dirname(self.res_path))
            write_file_atomic(self.res_path, text)

    def _mode_wrong(self):
        try:
            return os.stat(self.res_path).st_mode & 0o777 != 0o600
        except OSError:
            return False

    # -- the states
    def ensure(self):
        """Do what params ask; returns the result dict of the module (without changed)."""
        state_wanted = self.p["state"]
        before_state = self.state()
        old_text = read_text(self.res_path)
        version = userland_version(self.p.get("version") or "auto", {"version": self.kernel_version})
        new_text = resource_text(self.p, version) if state_wanted != "absent" else None
        if state_wanted == "absent":
            self._absent(before_state, old_text)
        elif state_wanted == "down":
            self._write_if_needed(old_text, new_text)
            if before_state is not None:
                self.drbdadm("down")
        else:
            self._up(before_state, old_text, new_text)
        after_state = before_state
        synced = is_synced(before_state)
        if not self.runner.check_mode and self.changed:
            after_state = self.state()
            synced = is_synced(after_state)
        if state_wanted == "up" and self.p.get("wait") and not self.runner.check_mode:
            synced, after_state = self.wait(self.p.get("wait_window", 10))
        result = {
            "res_file": self.res_path,
            "version": version,
            "resource": resource_view(self.name, self.minor, after_state),
            "synced": synced,
            "metadata": self.metadata,
            "cmds": self.runner.ran,
            "would_run": self.runner.would_run,
            "diff": {
                "before_header": self.res_path,
                "after_header": self.res_path,
                "before": mask_secret(old_text) or "",
                "after": mask_secret(new_text) or "",
            },
        }
        return result

    def _write_if_needed(self, old_text, new_text):
        if old_text != new_text or self._mode_wrong():
            self.write_res(new_text)

    def _absent(self, state, old_text):
        if state is not None:
            if old_text is not None:
                self.drbdadm("down")
            else:
                self.changed = True
                self.runner.run(["drbdsetup", "down", self.name], changes_state=True)
        if old_text is not None:
            self.changed = True
            if not self.runner.check_mode:
                os.unlink(self.res_path)

    def _up(self, state, old_text, new_text):
        if state is not None:
            # Running: apply what may change at runtime, then write the file (a failed
            # command leaves the old file, so the next run tries again). drbdadm needs a
            # res file though: a missing one is written first.
            if old_text is None:
                self.write_res(new_text)
            net, disk, other = runtime_changes(old_text, new_text)
            if "allow-two-primaries" in net and self.p.get("allow_two_primaries") is not None:
                self.drbdadm("net-options", "--allow-two-primaries=%s" % ("yes" if self.p["allow_two_primaries"] else "no"))
            if disk and self.p.get("resync_rate"):
                self.drbdadm("disk-options", "--c-plan-ahead=0", "--resync-rate=%s" % self.p["resync_rate"])
            if other and old_text is not None:
                self.warnings.append("resource %s is up: the changes to %s other than allow-two-primaries and the "
                                     "resync rate take effect at the next drbdadm adjust or down/up"
                                     % (self.name, self.res_path))
            if old_text is not None:
                self._write_if_needed(old_text, new_text)
        else:
            file_pending = old_text != new_text
            self._write_if_needed(old_text, new_text)
            if self.p.get("create_md", True):
                if self.runner.check_mode and file_pending:
                    # drbdadm cannot read a res file that is not written yet: assume none.
                    self.metadata = "unknown"
                    self.drbdadm("create-md", "--force", data="yes\n")
                else:
                    res = self.runner.run(drbdadm_argv("get-gi", self.name), ok_rcs=range(256))
                    try:
                        self.metadata = metadata_state(res.rc, res.stdout, res.stderr)
                    except DrbdError as exc:
                        raise CommandError(res.cmd, res.rc, res.stdout, res.stderr, msg=str(exc))
                    if self.metadata == "none":
                        self.drbdadm("create-md", "--force", data="yes\n")
                        self.metadata = "created"
            self.drbdadm("up")
            if not self.runner.check_mode:
                # The minor was free (checked above) and drbdadm up made it for this resource
                # (its new-minor fails on a minor that exists): no need to ask drbdsetup again.
                self.minor_owner_seen = self.name
                state = self.state()
        self._role(state)

    def _role(self, state):
        role = self.p.get("role")
        current = (state or {}).get("role") or "Secondary"  # a resource just brought up is Secondary
        if role == "primary" and current != "Primary":
            force = self.p.get("force") and (state or {}).get("disk") != "UpToDate"
            self.drbdadm("primary", *(["--force"] if force else []))
        elif role == "secondary" and current != "Secondary":
            self.drbdadm("secondary")
        if role == "primary" and self.p.get("force"):
            self._start_initial_sync(state)

    def _start_initial_sync(self, state):
        """Start the full sync a forced promotion did not start (see initial_sync_stuck).

        DRBD gets INITIAL_SYNC_GRACE seconds to start it by itself; when the resource is still
        Connected with an Inconsistent peer and nothing syncing, invalidate-remote starts it. A
        later run repairs a resource left that way too; one that syncs changes nothing.
        """
        if self.runner.check_mode:
            if initial_sync_stuck(state):
                self.drbdadm("invalidate-remote")
            return
        if not wait_until(lambda: not initial_sync_stuck(self.state()), INITIAL_SYNC_GRACE):
            self.drbdadm("invalidate-remote")

    def wait(self, window):
        """Poll for Connected and UpToDate/UpToDate for at most window seconds; fail on StandAlone."""
        deadline = self.clock() + window
        while True:
            state = self.state()
            if state is None:
                raise DrbdError("resource %s (minor %d) went down during the wait" % (self.name, self.minor))
            if is_synced(state):
                return True, state
            if state["cstate"] == "StandAlone":
                raise DrbdError("resource %s is StandAlone (disk %s/%s): the connection to %s was refused or dropped "
                                "(split brain, secret or config mismatch?)"
                                % (self.name, state["disk"], state["peer_disk"], self.p["peer_name"]))
            if self.clock() >= deadline:
                return False, state
            self.sleep(0.5)
