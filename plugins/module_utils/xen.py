# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Xen toolstack (xl, legacy xm): pure parsers plus a thin command wrapper.

Parsers take the text a command printed and return plain dicts; they raise XenParseError
(a ValueError) on anything they do not recognise instead of guessing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket

from ansible_collections.sanless.xen.plugins.module_utils.conventions import (
    check_vm_name, is_address, is_vm_name, lv_path, parse_shared_disk_path,
)
from ansible_collections.sanless.xen.plugins.module_utils.lvm import dm_name

TOOLSTACKS = ("xl", "xm")

# The 6 state flags of xl/xm list: running, blocked, paused, shutdown, crashed, dying.
# running, blocked, paused, shutdown, shutdown reason (xl: "-rscwS" for poweroff, reboot, suspend,
# crash, watchdog, soft reset; "?" unknown; xm: c for crashed), dying
_STATE_RE = re.compile(r"^[r-][b-][p-][s-][-rscwS?][d-]$")
_LIST_HEADER_RE = re.compile(r"^\s*Name\s+ID\s+Mem(?:\(MiB\))?\s+VCPUs\s+State\s+Time\(s\)")
_INFO_LINE_RE = re.compile(r"^(\w+)\s*:\s?(.*)$")
# A domain name as xl accepts it in configs we write: no whitespace, no quotes.
_DOMAIN_NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-][A-Za-z0-9_.:+@-]*$")


class XenParseError(ValueError):
    """Output of xl/xm, or a domain config, that cannot be read safely."""


def _int(value, what):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise XenParseError("%s: expected an integer, got %r" % (what, value))


# --------------------------------------------------------------------------- xl/xm list

def parse_xl_list(text):
    """Parse ``xl list`` (or ``xm list``) into a list of domain dicts.

    Each dict has name, domid, memory_mib, vcpus, state (the 6 flags), cpu_time_s.
    Columns are read from the right, so a trailing security label column is refused
    rather than misread.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not _LIST_HEADER_RE.match(lines[0]):
        raise XenParseError("xl list: missing 'Name ID Mem VCPUs State Time(s)' header in %r" % (text[:200],))
    if "Security Label" in lines[0] or "Label" in lines[0].split():
        raise XenParseError("xl list: output with security labels (-Z) is not supported")
    domains = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 6:
            raise XenParseError("xl list: short line %r" % (line,))
        name = " ".join(fields[:-5])
        domid, mem, vcpus, state, cpu_time = fields[-5:]
        if not _STATE_RE.match(state):
            raise XenParseError("xl list: bad state %r in line %r" % (state, line))
        try:
            cpu_time_s = float(cpu_time)
        except ValueError:
            raise XenParseError("xl list: bad time %r in line %r" % (cpu_time, line))
        domains.append({
            "name": name,
            "domid": _int(domid, "xl list domain id"),
            "memory_mib": _int(mem, "xl list memory"),
            "vcpus": _int(vcpus, "xl list vcpus"),
            "state": state,
            "cpu_time_s": cpu_time_s,
        })
    return domains


# --------------------------------------------------------------------------- xl/xm info

def parse_xl_info(text):
    """Parse ``xl info`` / ``xm info``: every ``key : value`` line, plus typed fields.

    Typed: total_memory_mib, free_memory_mib, nr_cpus (int), xen_version (str),
    virt_caps (list; empty when the toolstack does not report it, as xm does not).
    """
    info = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _INFO_LINE_RE.match(line)
        if not match:
            raise XenParseError("xl info: unexpected line %r" % (line,))
        info[match.group(1)] = match.group(2).strip()
    for key in ("total_memory", "free_memory", "nr_cpus"):
        if key not in info:
            raise XenParseError("xl info: %r missing from output" % (key,))
    if "xen_version" in info:
        version = info["xen_version"]
    elif "xen_major" in info and "xen_minor" in info:
        # xm info (and old xl) only give the parts.
        version = "%s.%s%s" % (info["xen_major"], info["xen_minor"], info.get("xen_extra", ""))
    else:
        raise XenParseError("xl info: neither xen_version nor xen_major/xen_minor in output")
    result = dict(info)
    result.update({
        "total_memory_mib": _int(info["total_memory"], "xl info total_memory"),
        "free_memory_mib": _int(info["free_memory"], "xl info free_memory"),
        "nr_cpus": _int(info["nr_cpus"], "xl info nr_cpus"),
        "xen_version": version,
        "virt_caps": info.get("virt_caps", "").split(),
    })
    return result


# --------------------------------------------------------------------------- xl list -l

def parse_xl_list_long(text):
    """Parse ``xl list -l`` JSON into a list of dicts.

    Each dict: domid, name, uuid, type, memory_kib (max_memkb), vcpus (max_vcpus), disks
    (list of pdev_path, vdev, format, readwrite), nics (list of devid, mac, bridge), and ``config``
    (the whole libxl config as printed).
    """
    stripped = text.strip()
    if stripped.startswith("("):
        raise XenParseError("xl list -l: SXP output (output_format=sxp in xl.conf) is not supported, JSON expected")
    try:
        data = json.loads(stripped)
    except ValueError as exc:
        raise XenParseError("xl list -l: invalid JSON: %s" % (exc,))
    if not isinstance(data, list):
        raise XenParseError("xl list -l: expected a JSON list, got %s" % (type(data).__name__,))
    domains = []
    for entry in data:
        if not isinstance(entry, dict) or "domid" not in entry or not isinstance(entry.get("config"), dict):
            raise XenParseError("xl list -l: entry without domid/config: %r" % (entry,))
        config = entry["config"]
        c_info = config.get("c_info") or {}
        b_info = config.get("b_info") or {}
        if "name" not in c_info:
            raise XenParseError("xl list -l: domain %r has no c_info.name" % (entry["domid"],))
        disks = []
        for disk in config.get("disks") or []:
            disks.append({
                "pdev_path": disk.get("pdev_path"),
                "vdev": disk.get("vdev"),
                "format": disk.get("format"),
                "readwrite": bool(disk.get("readwrite", 0)),
            })
        nics = []
        for nic in config.get("nics") or []:
            nics.append({"devid": nic.get("devid"), "mac": nic.get("mac"), "bridge": nic.get("bridge")})
        domains.append({
            "domid": entry["domid"],
            "name": c_info["name"],
            "uuid": c_info.get("uuid"),
            "type": c_info.get("type"),
            "memory_kib": b_info.get("max_memkb"),
            "vcpus": b_info.get("max_vcpus"),
            "disks": disks,
            "nics": nics,
            "config": config,
        })
    return domains


# --------------------------------------------------------------------------- domain config files
#
# The xl config syntax (libxlu): ``key = value`` statements ended by newline or ';', values
# are "strings", 'strings', numbers or [lists] of those; '#' starts a comment.

_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<nl>\n)
  | (?P<semi>;)
  | (?P<eq>=)
  | (?P<lbr>\[)
  | (?P<rbr>\])
  | (?P<comma>,)
  | (?P<dq>"(?:[^"\\\n]|\\.)*")
  | (?P<sq>'(?:[^'\\\n]|\\.)*')
  | (?P<num>[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?))(?![A-Za-z0-9_.])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "r": "\r"}


def _tokenize(text):
    pos = 0
    line = 1
    tokens = []
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise XenParseError("domain config line %d: cannot read %r" % (line, text[pos:pos + 30]))
        kind = match.lastgroup
        if kind not in ("ws", "comment"):
            tokens.append((kind, match.group(kind), match.start(), match.end(), line))
        if kind == "nl":
            line += 1
        pos = match.end()
    tokens.append(("eof", "", len(text), len(text), line))
    return tokens


def _unquote(raw, line):
    body = raw[1:-1]
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPES:
                raise XenParseError("domain config line %d: unsupported escape in %s" % (line, raw))
            out.append(_ESCAPES[body[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _number(raw):
    if raw.lower().lstrip("+-").startswith("0x"):
        return int(raw, 16)
    if "." in raw:
        return float(raw)
    return int(raw)


def _parse_statements(text):
    """Return [(key, value, start, end)] with the byte span of each statement."""
    tokens = _tokenize(text)
    statements = []
    i = 0

    def expect_value(idx):
        kind, raw, _start, end, line = tokens[idx]
        if kind in ("dq", "sq"):
            return _unquote(raw, line), idx + 1, end
        if kind == "num":
            return _number(raw), idx + 1, end
        if kind == "lbr":
            items = []
            idx += 1
            while True:
                while tokens[idx][0] == "nl":
                    idx += 1
                if tokens[idx][0] == "rbr":
                    return items, idx + 1, tokens[idx][3]
                if tokens[idx][0] == "lbr":
                    raise XenParseError("domain config line %d: nested lists are not supported" % tokens[idx][4])
                value, idx, _end = expect_value(idx)
                items.append(value)
                while tokens[idx][0] == "nl":
                    idx += 1
                if tokens[idx][0] == "comma":
                    idx += 1
                elif tokens[idx][0] != "rbr":
                    raise XenParseError("domain config line %d: expected ',' or ']' in list, got %r" % (tokens[idx][4], tokens[idx][1]))
        raise XenParseError("domain config line %d: expected a quoted string, number or list, got %r" % (line, raw or kind))

    seen = set()
    while tokens[i][0] != "eof":
        kind, raw, start, _end, line = tokens[i]
        if kind in ("nl", "semi"):
            i += 1
            continue
        if kind != "word":
            raise XenParseError("domain config line %d: expected a setting name, got %r" % (line, raw))
        if tokens[i + 1][0] != "eq":
            raise XenParseError("domain config line %d: expected '=' after %r" % (line, raw))
        value, i, end = expect_value(i + 2)
        if tokens[i][0] not in ("nl", "semi", "eof"):
            raise XenParseError("domain config line %d: unexpected %r after value of %r" % (tokens[i][4], tokens[i][1], raw))
        if raw in seen:
            raise XenParseError("domain config line %d: %r set twice" % (line, raw))
        seen.add(raw)
        statements.append((raw, value, start, end))
    return statements


def parse_domain_config(text):
    """Parse an xl domain config (``/etc/xen/auto/*.cfg``) into a dict (file order kept)."""
    return dict((key, value) for key, value, _start, _end in _parse_statements(text))


def _render_scalar(key, value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if "\n" in value:
            raise XenParseError("domain config: value of %r contains a newline" % (key,))
        return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    raise XenParseError("domain config: cannot render %r = %r (strings, numbers and lists only)" % (key, value))


def render_value(key, value):
    """Render one config value in xl syntax."""
    if isinstance(value, (list, tuple)):
        return "[ %s ]" % ", ".join(_render_scalar(key, item) for item in value) if value else "[]"
    return _render_scalar(key, value)


def _check_key(key):
    if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
        raise XenParseError("domain config: invalid setting name %r" % (key,))


def render_domain_config(config, template=None):
    """Render a dict as an xl domain config.

    With ``template`` (the current file text) its comments, order and the text of unchanged
    settings are kept; changed settings are rewritten in place, removed ones dropped, new
    ones appended.
    """
    for key in config:
        _check_key(key)
    if template is None:
        return "".join("%s = %s\n" % (key, render_value(key, value)) for key, value in config.items())
    statements = _parse_statements(template)
    out = []
    pos = 0
    for key, old_value, start, end in statements:
        if key not in config:
            # Drop the statement and, when it was alone on its line, the line itself.
            line_start = template.rfind("\n", 0, start) + 1
            line_end = template.find("\n", end)
            line_end = len(template) if line_end < 0 else line_end + 1
            before, after = template[line_start:start], template[end:line_end]
            if not before.strip() and (not after.strip() or after.strip().startswith("#")):
                out.append(template[pos:line_start])
                pos = line_end
            else:
                out.append(template[pos:start])
                pos = end
            continue
        out.append(template[pos:start])
        if config[key] == old_value and type(config[key]) is type(old_value):
            out.append(template[start:end])
        else:
            out.append("%s = %s" % (key, render_value(key, config[key])))
        pos = end
    out.append(template[pos:])
    text = "".join(out)
    present = set(key for key, _v, _s, _e in statements)
    added = [key for key in config if key not in present]
    if added:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join("%s = %s\n" % (key, render_value(key, config[key])) for key in added)
    return text


def move_disk_paths(text, moves):
    """The domain config ``text`` with its disks pointing at their LVs in other VGs: ``moves`` is
    [(vg, lv, new_vg)]; a disk whose dom0 path is /dev/<vg>/<lv> or /dev/mapper/<vg>-<lv> (LVM's '-'
    doubling), positional (``phy:`` prefix or not) or ``target=``, gets the same form in new_vg. The rest
    of the text is kept as written (render_domain_config with the text as template); without a move
    the text comes back as it is."""
    paths = {}
    for vg, lv, new_vg in moves:
        if new_vg != vg:
            paths.update(lv_path_forms(vg, lv, new_vg, lv))
    return replace_disk_paths(text, paths)


def lv_path_forms(vg, lv, new_vg, new_lv):
    """{old path: new path} of an LV moved or renamed, in both forms a config may name it by:
    /dev/<vg>/<lv> and /dev/mapper/<vg>-<lv> (LVM's '-' doubling)."""
    return {lv_path(vg, lv): lv_path(new_vg, new_lv),
            "/dev/mapper/" + dm_name(vg, lv): "/dev/mapper/" + dm_name(new_vg, new_lv)}


def replace_disk_paths(text, paths):
    """The domain config ``text`` with each disk whose dom0 path is a key of ``paths`` pointing at its
    value instead: positional (``phy:`` prefix or not) or ``target=``, the rest of the text kept as
    written; without a match the text comes back as it is."""
    if not paths:
        return text
    config = parse_domain_config(text)
    if not isinstance(config.get("disk"), list):
        return text
    moved = []
    for spec in config["disk"]:
        parts = spec.split(",") if isinstance(spec, str) else []
        for index, part in enumerate(parts):
            key, eq, value = part.strip().partition("=")
            # target= is the last key (its value may hold commas: then it is none of ours)
            if eq and (key != "target" or index != len(parts) - 1):
                continue
            path = (value if eq else key).rpartition(":")[2]  # a positional target may carry a phy: prefix
            if path in paths:
                at = part.rindex(path)
                parts[index] = part[:at] + paths[path] + part[at + len(path):]
        moved.append(",".join(parts) if parts else spec)
    if moved == config["disk"]:
        return text
    config["disk"] = moved
    return render_domain_config(config, template=text)


_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\Z")


def _spec_keys(spec):
    """The keys of a comma-separated key=value device spec (a vif entry)."""
    return [part.partition("=")[0].strip() for part in spec.split(",")]


def pin_domain_identity(text, domain):
    """The domain config ``text`` with what identifies the running ``domain`` (an entry of
    parse_xl_list_long) to its guest set where the text leaves it to libxl: ``uuid`` and each vif's
    ``mac=``. A domain made anew from the text (xl create, xl migrate -C) gets a new uuid and new MACs
    otherwise, and its guest a new NIC (ARP caches, DHCP leases, persistent interface names). The vif
    entries match the domain's nics by position: xl numbers them (devid) in list order. What the text
    sets is kept, and the rest of it as written (render_domain_config with the text as template); with
    nothing to add the text comes back as it is. A vif without ``mac=`` when the domain's nics are not
    devids 0..n-1 of the n vifs (one hot-plugged or detached since) raises XenParseError: which MAC
    was whose cannot be told."""
    config = parse_domain_config(text)
    changed = False
    if "uuid" not in config and domain.get("uuid"):
        config["uuid"] = domain["uuid"]
        changed = True
    vifs = config.get("vif")
    if isinstance(vifs, list) and not all(isinstance(spec, str) and "mac" in _spec_keys(spec) for spec in vifs):
        by_devid = dict((nic.get("devid"), nic) for nic in domain.get("nics") or [])
        if len(domain.get("nics") or []) != len(vifs) or set(by_devid) != set(range(len(vifs))):
            raise XenParseError(
                "domain %s: the config has %d vif(s), the running domain nics of devid %s: which MAC belongs to which "
                "vif cannot be told; set mac= in each vif of the config" % (
                    domain.get("name"), len(vifs), ", ".join(str(nic.get("devid")) for nic in domain.get("nics") or []) or "none"))
        pinned = []
        for devid, spec in enumerate(vifs):
            if not isinstance(spec, str):
                raise XenParseError("domain %s: vif entry %r is not a string" % (domain.get("name"), spec))
            if "mac" not in _spec_keys(spec):
                mac = by_devid[devid].get("mac")
                if not isinstance(mac, str) or not _MAC_RE.match(mac):
                    raise XenParseError("domain %s: xl list -l gives vif %d no MAC address (%r)" % (domain.get("name"), devid, mac))
                head = spec.rstrip()
                spec = head + ("," if head.strip() and not head.endswith(",") else "") + "mac=" + mac
            pinned.append(spec)
        config["vif"] = pinned
        changed = True
    return render_domain_config(config, template=text) if changed else text


def config_for_new_domain(text, name, paths):
    """A copy of a domain config (``text``) for a new domain ``name`` on other disks: its name set,
    its disks moved (``paths``, as replace_disk_paths takes them), and what would make it the same
    domain as the original dropped: ``uuid`` and each vif's ``mac=`` (libxl makes new ones). The rest
    is kept as written."""
    check_vm_name(name)
    moved = replace_disk_paths(text, paths)
    config = parse_domain_config(moved)
    config["name"] = name
    config.pop("uuid", None)
    if isinstance(config.get("vif"), list):
        config["vif"] = [",".join(part for part in spec.split(",") if part.strip().partition("=")[0].strip() != "mac")
                         if isinstance(spec, str) else spec for spec in config["vif"]]
    return render_domain_config(config, template=moved)


# --------------------------------------------------------------------------- commands

def toolstack_argv(toolstack, verb, *args):
    """argv for one toolstack verb; xl and xm share most verbs, the few differences live here."""
    if toolstack not in TOOLSTACKS:
        raise ValueError("toolstack must be one of %s, got %r" % (", ".join(TOOLSTACKS), toolstack))
    return [toolstack, verb] + [str(arg) for arg in args]


def check_domain_name(name):
    if not isinstance(name, str) or not _DOMAIN_NAME_RE.match(name):
        raise ValueError("invalid domain name %r" % (name,))
    return name


class Toolstack(object):
    """xl (default) or legacy xm, run through a runner.CommandRunner.

    Read verbs return parsed data; verbs that change a domain are run with
    ``changes_state=True`` so check mode only records them.
    """

    def __init__(self, runner, name="xl", prefix=None):
        if name not in TOOLSTACKS:
            raise ValueError("toolstack must be one of %s, got %r" % (", ".join(TOOLSTACKS), name))
        self.runner = runner
        self.name = name
        # e.g. ssh_argv(target): the same verbs on another dom0 (read verbs only, by convention).
        self.prefix = list(prefix or [])

    def _argv(self, verb, *args):
        return self.prefix + toolstack_argv(self.name, verb, *args)

    # read-only
    def list(self):
        return parse_xl_list(self.runner.stdout(self._argv("list")))

    def info(self):
        return parse_xl_info(self.runner.stdout(self._argv("info")))

    def list_long(self, domain=None):
        if self.name != "xl":
            raise ValueError("list -l JSON output needs the xl toolstack")
        args = ["-l"] + ([check_domain_name(domain)] if domain is not None else [])
        return parse_xl_list_long(self.runner.stdout(self._argv("list", *args)))

    # state-changing
    def create(self, config_path, paused=False):
        args = (["-p"] if paused else []) + [config_path]
        return self.runner.run(self._argv("create", *args), changes_state=True)

    def shutdown(self, domain, wait=True):
        args = (["-w"] if wait else []) + [check_domain_name(domain)]
        return self.runner.run(self._argv("shutdown", *args), changes_state=True)

    def destroy(self, domain):
        return self.runner.run(self._argv("destroy", check_domain_name(domain)), changes_state=True)

    def pause(self, domain):
        return self.runner.run(self._argv("pause", check_domain_name(domain)), changes_state=True)

    def unpause(self, domain):
        return self.runner.run(self._argv("unpause", check_domain_name(domain)), changes_state=True)

    @contextlib.contextmanager
    def paused(self, domain, warn=None):
        """``with xen.paused(name):`` pause, and unpause whatever happens inside. When the body
        failed and the unpause fails too, the body's error is raised and the unpause's is warned."""
        self.pause(domain)
        try:
            yield
        except BaseException:
            try:
                self.unpause(domain)
            except Exception as exc:  # pylint: disable=broad-except
                if warn is not None:
                    warn("domain %s may still be paused: %s" % (domain, exc))
            raise
        self.unpause(domain)

    def migrate(self, domain, host, timeout=None, config=None, shared_ssh=False):
        # xl migrate is always live; xm needs --live or it suspends the domain for the copy.
        if shared_ssh and not self.runner.check_mode:
            ensure_ssh_control_dir()
        return self.runner.run(self.prefix + migrate_argv(self.name, domain, host, timeout, config, shared_ssh),
                               changes_state=True)

    def block_attach(self, domain, target, vdev, mode="w"):
        """Attach a dom0 block device (``phy:`` target path) as vdev."""
        if mode not in ("r", "w"):
            raise ValueError("mode must be 'r' or 'w', got %r" % (mode,))
        if "," in target or "," in vdev:
            raise ValueError("target and vdev must not contain ','")
        if self.name == "xm":
            argv = self._argv("block-attach", check_domain_name(domain), "phy:%s" % target, vdev, mode)
        else:
            argv = self._argv("block-attach", check_domain_name(domain), "phy:%s,%s,%s" % (target, vdev, mode))
        return self.runner.run(argv, changes_state=True)

    def block_detach(self, domain, vdev):
        return self.runner.run(self._argv("block-detach", check_domain_name(domain), vdev), changes_state=True)


def detect_toolstack(runner, wanted="auto"):
    """Pick xl or xm. ``auto`` prefers xl, the only toolstack of Xen >= 4.5."""
    if wanted in TOOLSTACKS:
        return wanted
    if wanted != "auto":
        raise ValueError("toolstack must be auto, xl or xm, got %r" % (wanted,))
    for name in TOOLSTACKS:
        if runner.has_tool(name):
            return name
    raise ValueError("neither xl nor xm found on this host; is it a Xen dom0?")


# --------------------------------------------------------------------------- managed domain configs
# (the xen_domain module: VM names, configs rendered from structured options, domain states)

# VM names: conventions.check_vm_name (imported above; modules import it from here too).
DOMAIN_TYPES = ("pv", "pvh", "hvm")
_SPEC_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_SPEC_BAD_CHARS = set(",=\"'\n\r\\")


def _spec_value(what, value):
    value = str(value)
    if not value or _SPEC_BAD_CHARS.intersection(value):
        raise ValueError("%s %r: must be non-empty, without , = quotes backslashes or newlines" % (what, value))
    return value


def disk_spec(disk):
    """``{"target": "/dev/xenvg/vm-disk", "vdev": "xvda", "mode": "w"}`` -> ``phy:/dev/xenvg/vm-disk,xvda,w``."""
    target = _spec_value("disk target", disk.get("target"))
    if not target.startswith("/"):
        raise ValueError("disk target %r: must be an absolute path of a dom0 block device" % (target,))
    vdev = _spec_value("disk vdev", disk.get("vdev"))
    mode = disk.get("mode") or "w"
    if mode not in ("r", "w"):
        raise ValueError("disk %s: mode must be 'r' or 'w', got %r" % (vdev, mode))
    return "phy:%s,%s,%s" % (target, vdev, mode)


def vif_spec(vif):
    """``{"bridge": "xenbr0", "mac": "00:16:3e:00:00:01"}`` -> ``bridge=xenbr0,mac=00:16:3e:00:00:01`` (keys sorted)."""
    parts = []
    for key in sorted(vif):
        if vif[key] is None:
            continue
        if not isinstance(key, str) or not _SPEC_KEY_RE.match(key):
            raise ValueError("vif setting name %r is invalid" % (key,))
        parts.append("%s=%s" % (key, _spec_value("vif %s" % key, vif[key])))
    return ",".join(parts)


def build_domain_config(name, memory_mib, vcpus=1, domain_type="pv", kernel=None, ramdisk=None, extra=None,
                        bootloader=None, disks=None, vifs=None, settings=None, toolstack="xl"):
    """The settings of a domain config file, in the order they are written.

    For ``xm`` (which has no ``type``) PV is the default and HVM is ``builder = "hvm"``;
    PVH needs xl. ``settings`` adds other xl settings (on_crash, maxmem, ...) after these.
    Raises ValueError on anything that would make a wrong or unsafe file.
    """
    check_vm_name(name)
    if domain_type not in DOMAIN_TYPES:
        raise ValueError("type must be one of %s, got %r" % (", ".join(DOMAIN_TYPES), domain_type))
    if isinstance(memory_mib, bool) or not isinstance(memory_mib, int) or memory_mib <= 0:
        raise ValueError("memory must be a positive number of MiB, got %r" % (memory_mib,))
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or vcpus <= 0:
        raise ValueError("vcpus must be a positive number, got %r" % (vcpus,))
    if domain_type in ("pv", "pvh") and not (kernel or bootloader):
        raise ValueError("a %s domain needs kernel or bootloader" % (domain_type,))
    if kernel and bootloader:
        raise ValueError("kernel and bootloader are mutually exclusive")
    config = {"name": name}
    if toolstack == "xm":
        if domain_type == "pvh":
            raise ValueError("type pvh needs the xl toolstack (xm has no PVH)")
        if domain_type == "hvm":
            config["builder"] = "hvm"
    else:
        config["type"] = domain_type
    config["memory"] = memory_mib
    config["vcpus"] = vcpus
    for key, value in (("kernel", kernel), ("ramdisk", ramdisk), ("extra", extra), ("bootloader", bootloader)):
        if value is not None and value != "":
            config[key] = value
    config["disk"] = [disk_spec(disk) for disk in (disks or [])]
    vdevs = [spec.split(",")[1] for spec in config["disk"]]
    if len(set(vdevs)) != len(vdevs):
        raise ValueError("disks: a vdev is used twice in %s" % (", ".join(vdevs),))
    if vifs:
        config["vif"] = [vif_spec(vif) for vif in vifs]
    for key, value in (settings or {}).items():
        _check_key(key)
        if key in config or key in ("name", "type", "builder", "memory", "vcpus", "kernel", "ramdisk", "extra",
                                    "bootloader", "disk", "vif"):
            raise ValueError("settings: %r is set by its own option, not through settings" % (key,))
        render_value(key, value)
        config[key] = value
    return config


def find_domain(domains, name):
    """The parse_xl_list dict of the domain called name, or None."""
    for domain in domains:
        if domain["name"] == name:
            return domain
    return None


def domain_state(domain):
    """running / paused / shutdown / crashed / dying, from a parse_xl_list dict (None: absent)."""
    if domain is None:
        return "absent"
    flags = domain["state"]
    if flags[5] == "d":
        return "dying"
    if flags[4] == "c":
        return "crashed"
    if flags[3] == "s":
        return "shutdown"
    if flags[2] == "p":
        return "paused"
    return "running"


# --------------------------------------------------------------------------- domUs of a dom0 (the xen inventory plugin)

# While xl migrate runs, the receiving dom0 holds VM--incoming and the sending one may briefly hold
# VM--migratedaway: names of one VM in flight, not VMs of their own.
MIGRATION_NAME_SUFFIXES = ("--incoming", "--migratedaway")
_DRBD_DEVICE_RE = re.compile(r"^/dev/drbd[0-9]+\Z")
# /dev/<vg>/<lv>; /dev/mapper, /dev/disk and /dev/md hold device links that are no volume group.
_LV_PATH_RE = re.compile(r"^/dev/(?!(?:mapper|disk|md)/)[A-Za-z0-9+_.-]+/[A-Za-z0-9+_.-]+\Z")


def storage_mode(targets):
    """The storage mode of a VM from its disks' dom0 paths: ``plain`` when every disk is an LV
    (``/dev/<vg>/<lv>``), ``drbd`` when every disk is a DRBD device (``/dev/drbdN``), ``shared`` when
    every disk is on its shared path (``/dev/sanless/<owner>/<vg>/<lv>``), else None (no disks, a mix,
    files or other devices)."""
    targets = list(targets)
    if targets and all(isinstance(t, str) and _DRBD_DEVICE_RE.match(t) for t in targets):
        return "drbd"
    if targets and all(parse_shared_disk_path(t) for t in targets):
        return "shared"
    if targets and all(isinstance(t, str) and _LV_PATH_RE.match(t) for t in targets):
        return "plain"
    return None


def parse_drained_mark(text, path=None):
    """The drained mark's content (conventions.drained_mark_path): a dict with by, since and reason when it
    is the JSON object the evacuate role writes; any other content still marks the host drained."""
    try:
        mark = json.loads(text) if text.strip() else {}
    except ValueError:
        mark = None
    if not isinstance(mark, dict):
        mark = {"reason": " ".join(text.split())[:200] or None}
    found = dict((key, mark.get(key)) for key in ("by", "since", "reason"))
    found["path"] = path
    return found


def read_drained_mark(path):
    """parse_drained_mark of the file at path, or None when there is none (the host is not drained)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_drained_mark(handle.read(4096), path)
    except FileNotFoundError:
        return None


def auto_config_vms(text):
    """The VM names that have a ``<vm>.cfg`` in a listing of /etc/xen/auto (``ls -p`` output, one name a
    line, folders ending in '/'); other files, folders and names that are no VM name are left out."""
    names = set()
    for line in text.splitlines():
        entry = line.strip()
        if entry.endswith(".cfg") and is_vm_name(entry[:-4]):
            names.add(entry[:-4])
    return sorted(names)


def domu_facts(domains, domains_long):
    """One dom0's domUs, {name: facts}, from parse_xl_list (state, memory, vcpus) and parse_xl_list_long
    (type, uuid, disks) of that dom0, matched by name. Domain-0 and the in-flight names of a migration
    (MIGRATION_NAME_SUFFIXES) are left out; a domain that ``xl list -l`` did not show has no type, uuid
    or disks. Facts: domid, state (domain_state), memory_mib, vcpus, type, uuid, disks (target, vdev,
    mode as in disk_spec), storage_mode."""
    long_by_name = dict((domain["name"], domain) for domain in domains_long)
    facts = {}
    for domain in domains:
        name = domain["name"]
        if domain["domid"] == 0 or name.endswith(MIGRATION_NAME_SUFFIXES):
            continue
        detail = long_by_name.get(name) or {}
        disks = [{"target": disk["pdev_path"], "vdev": disk["vdev"], "mode": "w" if disk["readwrite"] else "r"}
                 for disk in detail.get("disks") or []]
        facts[name] = {
            "domid": domain["domid"],
            "state": domain_state(domain),
            "memory_mib": domain["memory_mib"],
            "vcpus": domain["vcpus"],
            "type": detail.get("type"),
            "uuid": detail.get("uuid"),
            "disks": disks,
            "storage_mode": storage_mode(disk["target"] for disk in disks),
        }
    return facts


# --------------------------------------------------------------------------- migration (xen_migrate module)

# xl migrate runs ``sh -c "ssh <target> xl migrate-receive"``: the target reaches a shell, so it
# is held to [user@]hostname, IPv4 or IPv6 (conventions.is_address).
_SSH_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")
LOCAL_NAMES = ("localhost", "localhost.localdomain", "localhost6", "ip6-localhost", "ip6-loopback")
SSH_OPTIONS = ("-o", "BatchMode=yes")
# dom0 to dom0 in a migration: one ssh connection per peer, shared by the preflight's check, the
# config's hand-over and xl migrate itself (a handshake costs seconds of a busy dom0's CPU); it
# lives 60 s after its last use, and a peer that stops answering drops it within 15 s
SSH_CONTROL_DIR = "/run/sanless-xen/ssh"
SSH_SHARED_OPTIONS = ("-o", "ControlMaster=auto", "-o", "ControlPath=%s/%%C" % SSH_CONTROL_DIR, "-o", "ControlPersist=60",
                      "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")
# what xl migrate -s runs instead of ssh (xl passes it to sh with the host and its migrate-receive
# appended): fixed words only, no input of anyone's
SHARED_SSH_COMMAND = " ".join(("ssh",) + SSH_OPTIONS + SSH_SHARED_OPTIONS)


def check_migrate_target(target):
    """Validate a migration target: ``host``, ``user@host``, an IPv4 or IPv6 address. Returns it."""
    if not isinstance(target, str) or not target or len(target) > 255:
        raise ValueError("invalid target %r" % (target,))
    user, sep, host = target.rpartition("@")
    if sep and not _SSH_USER_RE.match(user):
        raise ValueError("invalid target %r: bad ssh user %r" % (target, user))
    if not is_address(host):
        raise ValueError("invalid target %r: want a host name, an IP address or user@host (letters, digits, '.', "
                         "'-'; no spaces or shell metacharacters)" % (target,))
    return target


def target_host(target):
    """The host part of a target (``root@hostb`` -> ``hostb``), lower case, without a final dot."""
    return check_migrate_target(target).rpartition("@")[2].lower().rstrip(".")


def ensure_ssh_control_dir():
    """The folder of the shared connections' sockets (root only; in /run: gone at boot)."""
    os.makedirs(SSH_CONTROL_DIR, mode=0o700, exist_ok=True)
    return SSH_CONTROL_DIR


def shared_ssh_argv(target, argv, connect_timeout=10):
    """ssh_argv to another dom0 through the shared connection to it (SSH_SHARED_OPTIONS)."""
    ensure_ssh_control_dir()
    return ssh_argv(target, argv, connect_timeout=connect_timeout, options=SSH_SHARED_OPTIONS)


def ssh_argv(target, argv, connect_timeout=10, user=None, port=None, identity_file=None, options=()):
    """argv running ``argv`` on target through ssh as xl migrate does (same user, keys, known_hosts);
    BatchMode: never a password prompt. The remote command must not need quoting (fixed verbs only).

    ``user`` (``-l``), ``port`` (``-p``), ``identity_file`` (``-i``) and ``options`` (more ssh arguments,
    such as ``-o ProxyCommand=...``, put before the target) are for callers that do not run as xl migrate
    does, like the inventory plugin on the controller."""
    for arg in argv:
        if not re.match(r"^[A-Za-z0-9_.:/=+-]+\Z", str(arg)):
            raise ValueError("remote argument %r would need shell quoting" % (arg,))
    extra = []
    if user is not None:
        if not _SSH_USER_RE.match(str(user)):
            raise ValueError("invalid ssh user %r" % (user,))
        extra += ["-l", str(user)]
    if port is not None:
        if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
            raise ValueError("invalid ssh port %r" % (port,))
        extra += ["-p", str(int(port))]
    if identity_file:
        extra += ["-i", str(identity_file)]
    extra += [str(option) for option in options]
    return (["ssh"] + list(SSH_OPTIONS) + ["-o", "ConnectTimeout=%d" % int(connect_timeout)] + extra
            + ["--", check_migrate_target(target)] + [str(arg) for arg in argv])


def local_host_names():
    """Names this host answers to (hostname, short name, FQDN), lower case."""
    names = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower().rstrip("."))
            names.add(name.lower().split(".")[0])
    return names


def _is_local_address(address):
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((address, 0))  # only an address of this host can be bound (EADDRNOTAVAIL otherwise)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def target_is_this_host(target, names=None):
    """Why target is this very host (a reason string), or None. Compares names, then resolves the
    target and checks whether an address is loopback or one of this host's own."""
    host = target_host(target)
    names = local_host_names() if names is None else names
    if host in LOCAL_NAMES or host in names:
        return "%s is this host's own name" % host
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return None  # unresolvable here: ssh reports it when it tries
    for info in infos:
        address = info[4][0]
        try:
            if _is_local_address(address):
                return "%s resolves to %s, an address of this host" % (host, address)
        except ValueError:
            continue
    return None


def migrate_state_problem(name, domain, here="this host"):
    """Why a domain (parse_xl_list dict) cannot be migrated in its state, or None."""
    state = domain_state(domain)
    if state == "running":
        return None
    if state == "paused":
        return ("%s: domain %s is paused; xl migrate would resume it on the target without whoever paused it "
                "knowing: unpause it first (or finish what paused it)" % (here, name))
    return "%s: domain %s is %s; only a running domain can be live-migrated" % (here, name, state)


# Guest types as xl list -l names them (c_info.type), as the messages name them.
GUEST_TYPES = {"pv": "PV", "pvh": "PVH", "hvm": "HVM"}


def guest_type_migration_problems(vm, vm_type, source_name, source_virt_caps, target_name, target_virt_caps):
    """Why Xen on source_name cannot live-migrate the guest vm of type vm_type (c_info.type of xl list -l:
    pv, pvh or hvm) to Xen on target_name, judged by their virt_caps (xl info); empty: nothing known refuses it.

    The one place of these rules (Xen 4.x, xl); the xen_migrate module and the migration preflight
    (plugins/filter/migration.py) both ask here:

    - PV: the live copy tracks dirty pages (log-dirty) with shadow paging, on both sides: 'shadow'.
    - PVH and HVM run in HVM containers: the target needs 'hvm'; log-dirty on both sides with hardware
      assisted paging or shadow paging: 'hap' or 'shadow'.

    virt_caps None for a side means unknown: that side is not judged (for a check of one side only,
    give None for the other). An unknown vm_type (None, or a type not above) is not judged either.
    HVM also needs a device model (QEMU) on the target. Neither xl info nor the preflight reports say
    whether one is installed there, so that is not judged here.
    """
    kind = GUEST_TYPES.get(vm_type)
    if kind is None:
        return []
    paging = ("shadow",) if vm_type == "pv" else ("hap", "shadow")

    def lacks(caps, wanted):
        return caps is not None and not set(wanted) & set(caps)

    problems = []
    if lacks(source_virt_caps, paging):
        problems.append("%s: Xen without %s paging cannot live-migrate %s guests (virt_caps: %s)"
                        % (source_name, " or ".join(paging), kind, " ".join(source_virt_caps)))
    if vm_type != "pv" and lacks(target_virt_caps, ("hvm",)):
        problems.append("%s: Xen without hvm cannot run the %s guest %s (virt_caps: %s)"
                        % (target_name, kind, vm, " ".join(target_virt_caps)))
    elif lacks(target_virt_caps, paging):
        problems.append("%s: Xen without %s paging cannot receive the %s guest %s (virt_caps: %s)"
                        % (target_name, " or ".join(paging), kind, vm, " ".join(target_virt_caps)))
    return problems


def migrate_problems(name, domain_type, need_mib, local_virt_caps, target, target_free_memory_mib=None,
                     target_virt_caps=None, here="this host"):
    """The reasons the migration of a running domain to target would fail (empty: none known).

    The target's free memory, and what the guest type needs of Xen on both sides
    (guest_type_migration_problems, as the migration preflight asks it). None for a fact means
    unknown and skips its check.
    """
    problems = []
    if target_free_memory_mib is not None and need_mib is not None and target_free_memory_mib < need_mib:
        problems.append("%s: needs %d MiB of free memory for %s, has %d MiB"
                        % (target, need_mib, name, target_free_memory_mib))
    problems.extend(guest_type_migration_problems(name, domain_type, here, local_virt_caps, target, target_virt_caps))
    return problems


def migrate_argv(toolstack, domain, target, timeout=None, config=None, shared_ssh=False):
    """argv of the live migration (xl migrate NAME TARGET; xm migrate --live NAME TARGET), under
    coreutils timeout when timeout (seconds) is given: SIGTERM, SIGKILL 30 s later, rc 124. With
    ``config`` (a path here), xl sends that config file instead of the domain's own (``-C``); with
    ``shared_ssh``, xl connects through the shared connection to the peer (``-s``, SHARED_SSH_COMMAND).
    (The target is not checked here: callers validate it, see check_migrate_target.)"""
    if toolstack == "xm":
        if config or shared_ssh:
            raise ValueError("xm migrate can neither send another config than the domain's own nor use another ssh "
                             "command (xl migrate -C and -s can)")
        argv = toolstack_argv("xm", "migrate", "--live", check_domain_name(domain), target)
    else:
        options = (["-C", config] if config else []) + (["-s", SHARED_SSH_COMMAND] if shared_ssh else [])
        argv = toolstack_argv(toolstack, "migrate", *(options + [check_domain_name(domain), target]))
    if timeout:
        argv = ["timeout", "--kill-after=30", str(int(timeout))] + argv
    return argv


# --------------------------------------------------------------------------- runs-once guard

# A VM runs, is paused (xl create builds a domain paused, so a starting VM is paused too) or is in the
# last phase of xl migrate (suspended) on at most one dom0. The guard reads every dom0's xen_info
# result (its domains, DRBD minors and the configs of its /etc/xen/auto) and says where that is not so.
# A dom0 that did not answer is unknown, never fine: it may run anything, unless confirmed dead.
GUARD_SEVERITIES = ("error", "unknown", "info")


def guard_state(domain):
    """A domain's state for the guard: domain_state, with a domain shut down for suspend (the source of
    xl migrate in its last phase, ``---ss-``) called ``suspended``."""
    state = domain_state(domain)
    if state == "shutdown" and domain["state"][4] == "s":
        return "suspended"
    return state


GUARD_ACTIVE = ("running", "paused", "suspended")


def _guard_answered(result):
    return (isinstance(result, dict) and not result.get("failed") and not result.get("unreachable")
            and not result.get("skipped") and isinstance(result.get("domains"), list))


def _guard_meta(meta, key):
    meta = meta or {}
    return meta["xen_" + key] if "xen_" + key in meta else meta.get(key)


def vm_drbd_minors(meta):
    """The DRBD minors of a VM's disks (storage mode drbd: a ``drbd_minor`` on each of xen_disks), as strings
    (the keys of xen_info's drbd.minors)."""
    if _guard_meta(meta, "storage_mode") != "drbd":
        return []
    minors = []
    for disk in _guard_meta(meta, "disks") or []:
        if isinstance(disk, dict) and disk.get("drbd_minor") is not None:
            minors.append(str(int(disk["drbd_minor"])))
    return minors


def _config_names(result):
    """The VM names owned by a dom0: the configs in its config dir (xen_info's config_files), else, for
    results of an older xen_info, the config_file of its running domains."""
    files = result.get("config_files")
    if isinstance(files, dict):
        return set(files)
    return set(d["name"] for d in result.get("domains") or [] if d.get("config_file") and not d.get("is_dom0"))


def runs_once_check(info, vm_meta=None, dead=(), starting=None):
    """Where the cluster breaks "a VM runs on at most one dom0", from ``{dom0: xen_info result}``.

    ``vm_meta``: ``{vm: inventory variables}`` (storage mode and the ``drbd_minor`` of each disk tell which
    DRBD minors are a VM's). ``dead``: dom0s confirmed dead (fenced, or confirmed by the operator): they run
    nothing. ``starting``: ``{vm: dom0}`` (or a list of VMs, dom0 unknown) about to be started or moved
    there; each gets its reasons not to be in ``blocked``.

    Findings (``kind``, ``severity``, ``vm`` or None, ``hosts``, ``message``):
    ``runs_twice`` (error): active (running, paused, starting, suspended in a migration) on two or more dom0s;
    ``owned_twice`` (error): its config in the config dir (/etc/xen/auto) of two or more dom0s;
    ``drbd_primary`` (error): a DRBD minor of the VM Primary on a dom0 where it is not active, while it is
    active elsewhere or that dom0 does not own it;
    ``unreachable`` (unknown): a dom0 that did not answer and is not confirmed dead;
    ``in_flight`` (info): ``VM--incoming`` on a dom0 (xl migrate under way).
    ``ok`` is true only with no finding of severity error or unknown.
    """
    if not isinstance(info, dict):
        raise ValueError("info must be a dict dom0 -> xen_info result")
    vm_meta = vm_meta or {}
    dead = set(dead or ())
    if isinstance(starting, dict):
        starting = dict(starting)
    else:
        starting = dict((vm, None) for vm in starting or ())
    hosts = {}
    vms = {}

    def entry(name):
        return vms.setdefault(name, {"active_on": [], "states": {}, "in_flight_on": [], "owned_on": [],
                                     "drbd_primary_on": []})

    for host in sorted(info):
        result = info[host]
        if host in dead:
            hosts[host] = "dead"
            continue
        if not _guard_answered(result):
            hosts[host] = "unknown"
            continue
        hosts[host] = "answered"
        for domain in result.get("domains") or []:
            if domain.get("is_dom0") or domain.get("domid") == 0:
                continue
            name = domain["name"]
            base = next((name[:-len(s)] for s in MIGRATION_NAME_SUFFIXES if name.endswith(s)), None)
            if base is not None:
                entry(base)["in_flight_on"].append(host)
                continue
            state = guard_state(domain)
            if state in GUARD_ACTIVE:
                entry(name)["active_on"].append(host)
                entry(name)["states"][host] = state
        for name in sorted(_config_names(result)):
            entry(name)["owned_on"].append(host)
        minors = (result.get("drbd") or {}).get("minors") or {}
        for vm, meta in vm_meta.items():
            for minor in vm_drbd_minors(meta):
                state = minors.get(minor) or {}
                if state.get("role") == "Primary" and not state.get("unconfigured"):
                    if host not in entry(vm)["drbd_primary_on"]:
                        entry(vm)["drbd_primary_on"].append(host)
    findings = []
    unknown = sorted(h for h, s in hosts.items() if s == "unknown")
    for host in unknown:
        findings.append({"kind": "unreachable", "severity": "unknown", "vm": None, "hosts": [host],
                         "message": "%s did not answer: what it runs is unknown (it may run any VM); bring it back, "
                                    "or confirm it dead" % host})
    for name in sorted(vms):
        vm = vms[name]
        if len(vm["active_on"]) > 1:
            findings.append({"kind": "runs_twice", "severity": "error", "vm": name, "hosts": list(vm["active_on"]),
                             "message": "%s is active on %s (%s): it must run on one dom0 only; stop all but one by hand "
                                        "(no playbook starts it again meanwhile)" % (
                                            name, " and ".join(vm["active_on"]),
                                            ", ".join("%s %s" % (h, vm["states"][h]) for h in vm["active_on"]))})
        if len(vm["owned_on"]) > 1:
            findings.append({"kind": "owned_twice", "severity": "error", "vm": name, "hosts": list(vm["owned_on"]),
                             "message": "%s has its config in the config dir of %s: each would start it at boot; keep it "
                                        "on one" % (name, " and ".join(vm["owned_on"]))})
        stray = [h for h in vm["drbd_primary_on"] if h not in vm["active_on"] and h not in vm["in_flight_on"]
                 and (vm["active_on"] or h not in vm["owned_on"])]
        if stray:
            where = ("it runs on %s" % " and ".join(vm["active_on"])) if vm["active_on"] else "it runs nowhere and is not owned there"
            findings.append({"kind": "drbd_primary", "severity": "error", "vm": name, "hosts": stray,
                             "message": "%s: DRBD Primary on %s, where it does not run (%s); demote it there before "
                                        "anything starts %s" % (name, " and ".join(stray), where, name)})
        if vm["in_flight_on"]:
            findings.append({"kind": "in_flight", "severity": "info", "vm": name, "hosts": list(vm["in_flight_on"]),
                             "message": "%s is arriving on %s (xl migrate under way)" % (name, " and ".join(vm["in_flight_on"]))})
    blocked = {}
    for name, target in sorted(starting.items()):
        vm = vms.get(name) or {"active_on": [], "in_flight_on": []}
        reasons = ["%s: %s" % (f["kind"], f["message"]) for f in findings
                   if f["vm"] == name and f["severity"] in ("error", "info")]
        elsewhere = [h for h in vm["active_on"] if h != target]
        if elsewhere and not any(f["vm"] == name and f["kind"] == "runs_twice" for f in findings):
            reasons.append("%s already runs on %s" % (name, " and ".join(elsewhere)))
        if unknown:
            reasons.append("%s may run on %s, which did not answer" % (name, " and ".join(unknown)))
        if reasons:
            blocked[name] = reasons
    bad = [f for f in findings if f["severity"] in ("error", "unknown")]
    summary = ["runs-once guard: %d dom0(s) answered%s%s: %s" % (
        sum(1 for s in hosts.values() if s == "answered"),
        (", unknown: " + ", ".join(unknown)) if unknown else "",
        (", confirmed dead: " + ", ".join(sorted(dead & set(hosts)))) if dead & set(hosts) else "",
        "OK, every VM runs at most once" if not bad else "%d problem(s)" % len(bad))]
    summary.extend("%s %s: %s" % (f["severity"].upper(), f["kind"], f["message"]) for f in findings)
    summary.extend("BLOCKED start of %s: %s" % (name, "; ".join(reasons)) for name, reasons in sorted(blocked.items()))
    return {"ok": not bad, "hosts": hosts, "unknown_hosts": unknown, "vms": vms, "findings": findings,
            "blocked": blocked, "summary": summary}
