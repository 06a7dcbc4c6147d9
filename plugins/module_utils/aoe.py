# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ATA over Ethernet: vblade (export) and aoetools (import).

Pure parsers (``aoe-stat``, ``/dev/etherd`` names, ``ps`` lines of vblade) and the systemd unit of
one export, then argv builders and a thin runner. Shelf/slot allocation and device paths are in
conventions.py.
"""

from __future__ import annotations

import glob
import os
import re

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.files import read_text
from ansible_collections.sanless.xen.plugins.module_utils.runner import RunnerTool

SYSTEMD_DIR = "/etc/systemd/system"
ETHERD_DIR = "/dev/etherd"
VBLADE = "/usr/sbin/vblade"

_MAC_RE = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}\Z")
# Linux interface names: at most 15 bytes, no '/', no spaces; kept to what ip(8) prints.
_IFACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}\Z")
_DEVICE_RE = re.compile(r"^e([0-9]+)\.([0-9]+)\Z")
# vblade's options that take a value (vblade 25: -b bufcnt -o offset -l length -m mac[,mac...]).
_VALUE_OPTIONS = ("-b", "-o", "-l", "-m")
_FLAG_OPTIONS = ("-d", "-s", "-r")


class AoeParseError(ValueError):
    """aoetools or vblade output that cannot be read safely."""


def check_mac(value):
    """A MAC address as vblade -m takes it, lower case, colon-separated."""
    mac = value.lower() if isinstance(value, str) else None
    if not mac or not _MAC_RE.match(mac):
        raise ValueError("invalid MAC address %r: want six hex pairs separated by ':'" % (value,))
    return mac


def check_interface(value):
    if not isinstance(value, str) or not _IFACE_RE.match(value) or value in (".", ".."):
        raise ValueError("invalid network interface %r: 1 to 15 letters, digits, _ . -" % (value,))
    return value


def parse_device_name(name):
    """'e1.2' -> (1, 2), else None."""
    match = _DEVICE_RE.match(name or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_aoe_stat(text):
    """``aoe-stat``: [{device, shelf, slot, size_gb, interfaces, payload, state}].

    aoe-stat prints the size in decimal GB with three decimals (0.016GB for a 16 MiB LV); an empty
    output (rc 1) means no AoE device."""
    devices = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        address = parse_device_name(words[0])
        if address is None or len(words) < 3 or not words[1].endswith("GB"):
            raise AoeParseError("cannot read aoe-stat line %r" % line)
        rest = words[3:]
        payload = int(rest[0]) if rest and rest[0].isdigit() else None
        if payload is not None:
            rest = rest[1:]
        devices.append({"device": words[0], "shelf": address[0], "slot": address[1],
                        "size_gb": float(words[1][:-2]), "interfaces": words[2].split(","),
                        "payload": payload, "state": ",".join(rest) or None})
    return devices


def etherd_devices(names):
    """The AoE block devices among the names of /dev/etherd (its control files left out): sorted
    [(shelf, slot)]."""
    return sorted(address for address in (parse_device_name(n) for n in names) if address)


def parse_vblade_args(args):
    """vblade's argv after the program: {shelf, slot, interface, device, macs, options}."""
    options = {}
    macs = []
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in _VALUE_OPTIONS and i + 1 < len(args):
            if args[i] == "-m":
                macs.extend(m.lower() for m in args[i + 1].split(",") if m)
            else:
                options[args[i]] = args[i + 1]
            i += 2
        elif args[i] in _FLAG_OPTIONS:
            options[args[i]] = True
            i += 1
        else:
            raise AoeParseError("unknown vblade option %r in %r" % (args[i], args))
    rest = args[i:]
    if len(rest) != 4 or not rest[0].isdigit() or not rest[1].isdigit():
        raise AoeParseError("cannot read vblade arguments %r" % (args,))
    return {"shelf": int(rest[0]), "slot": int(rest[1]), "interface": rest[2], "device": rest[3], "macs": macs,
            "options": options}


def parse_ps_vblade(text):
    """``ps -eo pid,args``: the vblade processes, [{pid, shelf, slot, interface, device, macs, options}].
    Other lines (grep itself, other programs) are skipped."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or not words[0].isdigit() or os.path.basename(words[1]) != "vblade":
            continue
        entry = parse_vblade_args(words[2:])
        entry["pid"] = int(words[0])
        found.append(entry)
    return found


def vblade_argv(shelf, slot, interface, device, macs=None):
    conv.check_aoe_address(shelf, slot)
    argv = [VBLADE]
    if macs:
        argv += ["-m", ",".join(check_mac(m) for m in macs)]
    return argv + [str(shelf), str(slot), check_interface(interface), device]


def vblade_unit(shelf, slot, interface, device, macs=None, description=None):
    """The systemd unit of one export: vblade in the foreground, restarted when it fails, started
    at boot once the interface is up. device must be a plain path (no spaces: systemd splits them)."""
    if not re.match(r"^/[A-Za-z0-9_.+/-]+\Z", device):
        raise ValueError("invalid device path %r for a vblade unit" % (device,))
    interface = check_interface(interface)
    return "\n".join([
        "# Managed by sanless.xen (aoe_export): edits are overwritten.",
        "[Unit]",
        "Description=%s" % (description or "AoE export e%d.%d of %s on %s" % (shelf, slot, device, interface)),
        "BindsTo=sys-subsystem-net-devices-%s.device" % interface,
        "After=sys-subsystem-net-devices-%s.device network.target lvm2-activation.service" % interface,
        "",
        "[Service]",
        "ExecStart=%s" % " ".join(vblade_argv(shelf, slot, interface, device, macs)),
        "Restart=on-failure",
        "RestartSec=2",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def parse_vblade_unit(text):
    """The export a unit from vblade_unit describes (parse_vblade_args of its ExecStart), or None."""
    for line in (text or "").splitlines():
        if line.startswith("ExecStart="):
            words = line[len("ExecStart="):].split()
            if words and os.path.basename(words[0]) == "vblade":
                return parse_vblade_args(words[1:])
    return None


def unit_path(shelf, slot, systemd_dir=None):
    return os.path.join(systemd_dir or SYSTEMD_DIR, conv.vblade_unit_name(shelf, slot))


def read_units(systemd_dir=None):
    """The collection's vblade units on this dom0: {(shelf, slot): parse_vblade_unit of the unit, with its
    path}."""
    units = {}
    for path in sorted(glob.glob(os.path.join(systemd_dir or SYSTEMD_DIR, conv.VBLADE_UNIT_PREFIX + "-*.service"))):
        parsed = parse_vblade_unit(read_text(path))
        if parsed:
            units[(parsed["shelf"], parsed["slot"])] = dict(parsed, path=path)
    return units


def pick_slot(shelf, device, exports):
    """The slot for exporting device on shelf: the one it has there already, else the lowest free one of the shelf.
    exports: what the dom0 serves (parse_ps_vblade entries and read_units values). Call it under the host lock
    (livemigrate.host_lock_held), so that two runs never pick the same slot. Raises ValueError when all are taken."""
    on_shelf = [e for e in exports if e["shelf"] == shelf]
    for entry in on_shelf:
        if entry["device"] == device:
            return entry["slot"]
    return conv.aoe_free_slot(e["slot"] for e in on_shelf)


def aoe_stat_argv():
    return ["aoe-stat"]


def aoe_discover_argv():
    return ["aoe-discover"]


def aoe_flush_argv(shelf, slot):
    conv.check_aoe_address(shelf, slot)
    return ["aoe-flush", "e%d.%d" % (shelf, slot)]


def ps_argv():
    return ["ps", "-eo", "pid,args"]


def systemctl_argv(verb, unit=None):
    return ["systemctl", verb] + ([unit] if unit else [])


class Aoe(RunnerTool):
    """aoe-stat and ps through a runner.CommandRunner."""

    def stat(self):
        # aoe-stat exits 1, printing nothing, when there is no AoE device.
        result = self.runner.run(aoe_stat_argv(), ok_rcs=(0, 1))
        if result.rc == 1 and result.stdout.strip():
            raise AoeParseError("aoe-stat failed with rc 1: %s" % result.stdout.strip())
        return parse_aoe_stat(result.stdout)

    def vblades(self):
        return parse_ps_vblade(self.runner.stdout(ps_argv()))

    def unit_state(self, unit):
        """(active, enabled) of a systemd unit, read from what systemctl prints (its rc differs by version)."""
        active = self.runner.run(systemctl_argv("is-active", unit), ok_rcs=range(0, 5)).stdout.strip()
        enabled = self.runner.run(systemctl_argv("is-enabled", unit), ok_rcs=range(0, 5)).stdout.strip()
        return active == "active", enabled == "enabled"
