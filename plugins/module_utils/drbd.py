# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DRBD: /proc/drbd (8.0, 8.3, 8.4), ``drbdsetup status --json`` (9), resource files.

Parsers are pure (text in, plain dicts out) and raise DrbdParseError on input they do not
recognise. Commands go through runner.CommandRunner.
"""

from __future__ import annotations

import errno
import json
import re

PROC_DRBD = "/proc/drbd"

_VERSION_RE = re.compile(r"^version:\s*(?P<version>\d+\.\d+\.\d+(?:[.-]\w+)?)\s*\(api:(?P<api>[^/]+)/proto:(?P<proto>[^)]+)\)")
_MINOR_RE = re.compile(r"^\s*(?P<minor>\d+):\s+cs:(?P<cstate>\S+)(?P<rest>.*)$")
# 8.0 says st: (state), 8.3+ ro: (roles); protocol and the I/O flags follow.
_STATE_RE = re.compile(
    r"^\s+(?:st|ro):(?P<role>[^/\s]+)/(?P<peer_role>\S+)"
    r"\s+ds:(?P<disk>[^/\s]+)/(?P<peer_disk>\S+)"
    r"(?:\s+(?P<protocol>[ABC]))?"
    r"(?:\s+(?P<flags>[a-z-]{4,}))?\s*$"
)
_STAT_RE = re.compile(r"(\w+):(\S+)")
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
    # Counters are integers; 8.4.6+ shows pe:[0;0] and ap:[0;0], wo: is a letter.
    if value.isdigit():
        return int(value)
    if value.startswith("[") and value.endswith("]"):
        parts = value[1:-1].split(";")
        if all(part.isdigit() for part in parts):
            return [int(part) for part in parts]
    return value


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
            for key in ("role", "peer_role", "disk", "peer_disk", "protocol", "flags"):
                current[key] = state.group(key)
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
        if stats and line.split()[0].split(":", 1)[0] in ("ns", "nr", "dw", "dr", "al", "bm", "lo", "pe", "ua", "ap", "ep", "wo", "oos"):
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


def _device(value):
    if isinstance(value, int):
        return "/dev/drbd%d" % value
    _check_word(value, "device")
    if not re.match(r"^/dev/drbd\d+$", value):
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


# --------------------------------------------------------------------------- commands

def drbdadm_argv(verb, resource, *options):
    """argv for ``drbdadm VERB [OPTIONS] RESOURCE``."""
    _check_word(resource, "resource name")
    return ["drbdadm", verb] + [str(option) for option in options] + [resource]


def read_proc_drbd(path=PROC_DRBD):
    """Parsed /proc/drbd, or {"version": None, "minors": {}} when the module is not loaded."""
    try:
        with open(path) as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno != errno.ENOENT:
            raise
        return {"version": None, "api": None, "proto": None, "build": None, "minors": {}}
    return parse_proc_drbd(text)
