# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cluster reports (vmlist, hoststats, hostlist, the cluster overview of report.yml) as documents,
text tables, CSV and job artifacts, and VM name checks, as pure functions.

The report playbooks call ``sanless.xen.xen_info`` once per dom0 and hand the registered
results, keyed by inventory host name, to these filters; no logic lives in Jinja. The HTML
page of the cluster overview is rendered in report_html.py.
Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

import csv
import datetime
import fnmatch
import io
import json
import re
import time

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.module_utils import conventions, diskexport, drbd, lvm
from ansible_collections.sanless.xen.plugins.module_utils.conventions import VM_NAME_PATTERN, VM_NAME_RULE

# --------------------------------------------------------------------------- VM names
# The rule is conventions.is_vm_name; vm_name_problem only says why a name breaks it.

_SHELL_META = set(";&|$`<>()[]{}*?!~#'\"")


def _quote(value):
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def vm_name_problem(name):
    """Why ``name`` is not an acceptable VM name (every reason, joined), or None when it is."""
    if conventions.is_vm_name(name):
        return None
    if not isinstance(name, str):
        return "a VM name must be a string, got %s" % (type(name).__name__,)
    if name == "":
        return "the VM name is empty"
    problems = []
    if any(ch.isspace() for ch in name):
        problems.append("it contains whitespace")
    if "/" in name or "\\" in name:
        problems.append("it contains a path separator")
    meta = sorted(set(ch for ch in name if ch in _SHELL_META))
    if meta:
        problems.append("it contains shell metacharacters %s" % (" ".join(meta),))
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problems.append("it contains a control character")
    if not problems:
        if not (name[0].isascii() and name[0].isalnum()):
            problems.append("it starts with %s, not a letter or a digit" % (_quote(name[0]),))
        bad = sorted(set(ch for ch in name if not re.match(r"[A-Za-z0-9_.-]", ch)))
        if bad:
            problems.append("it contains characters other than letters, digits, _ . and -: %s" % (" ".join(bad),))
    if len(name) > 64:
        problems.append("it is %d characters long (at most 64)" % (len(name),))
    return "; ".join(problems) or "it does not match %s" % (VM_NAME_PATTERN,)


# The sanless.xen.vm_name test.
is_vm_name = conventions.is_vm_name


def valid_vm_name(name):
    """Return ``name`` when it is an acceptable VM name; raise a clear error otherwise."""
    problem = vm_name_problem(name)
    if problem:
        raise AnsibleFilterError("VM name %s refused: %s. %s." % (_quote(name), problem, VM_NAME_RULE))
    return name


# --------------------------------------------------------------------------- wildcards

# Glob characters plus what VM and host names are made of.
_GLOB_PART_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]*$")
_HOST_PART_RE = re.compile(r"^[^\s/]*$")


def is_glob(text):
    """A name or shell-style wildcard of the reports' patterns: letters, digits, _ . - and * ? [...] only."""
    return isinstance(text, str) and bool(_GLOB_PART_RE.match(text))


def parse_pattern(pattern):
    """Split a ``[host/]glob[,[host/]glob...]`` pattern into (host_glob, vm_glob) pairs.

    ``*web*`` is (``*``, ``*web*``), ``host17/*sql*`` is (``host17``, ``*sql*``), ``host17/``
    is every VM of host17. An empty or missing pattern is every VM of every host.
    """
    if pattern is None:
        pattern = "*"
    if not isinstance(pattern, str):
        raise AnsibleFilterError("VM pattern must be a string like *web* or host17/*sql*, got %s" % (_quote(pattern),))
    parts = [p.strip() for p in pattern.split(",")] if pattern.strip() else ["*"]
    pairs = []
    for part in parts:
        if not part:
            raise AnsibleFilterError("VM pattern %s: empty element between commas" % (_quote(pattern),))
        host_glob, sep, vm_glob = part.rpartition("/")
        if not sep:
            host_glob = "*"
        if "/" in host_glob:
            raise AnsibleFilterError("VM pattern %s: more than one / in %s (the syntax is [host/]glob)"
                                     % (_quote(pattern), _quote(part)))
        host_glob = host_glob or "*"
        vm_glob = vm_glob or "*"
        if not _HOST_PART_RE.match(host_glob):
            raise AnsibleFilterError("VM pattern %s: the host part %s contains whitespace"
                                     % (_quote(pattern), _quote(host_glob)))
        if not _GLOB_PART_RE.match(vm_glob):
            raise AnsibleFilterError(
                "VM pattern %s refused: %s may only contain letters, digits, _ . - and the wildcards "
                "* ? [...] (the syntax is [host/]glob, several separated by commas)" % (_quote(pattern), _quote(vm_glob)))
        pairs.append((host_glob, vm_glob))
    return pairs


def _pairs(pattern):
    return pattern if isinstance(pattern, list) else parse_pattern(pattern)


def host_matches(host, pattern="*"):
    """True when some element of ``pattern`` can match VMs of ``host``."""
    return any(fnmatch.fnmatchcase(host, pair[0]) for pair in _pairs(pattern))


def match_vm(name, pattern="*", host=None):
    """True when VM ``name`` (on ``host``, when given) matches ``[host/]glob`` ``pattern``.

    Matching is case-sensitive, as xl domain names are. Without ``host``, the host part of
    each pattern element is ignored.
    """
    for host_glob, vm_glob in _pairs(pattern):
        if host is not None and not fnmatch.fnmatchcase(str(host), host_glob):
            continue
        if fnmatch.fnmatchcase(str(name), vm_glob):
            return True
    return False


# --------------------------------------------------------------------------- host results

_STATE_NAMES = (("r", "running"), ("b", "blocked"), ("p", "paused"), ("s", "shutdown"),
                ("c", "crashed"), ("d", "dying"))


def state_names(state):
    """The names of the set flags of xl's 6-letter state (``r-----`` is ["running"])."""
    state = state or ""
    return [name for pos, (flag, name) in enumerate(_STATE_NAMES) if pos < len(state) and state[pos] == flag]


_SSH_BOILERPLATE = "Make sure this host can be reached over ssh: "


def _first_line(text, limit=160):
    """One line of an error for a table: Ansible's boilerplate around ssh errors dropped."""
    text = str(text or "").strip()
    if text.startswith("Task failed: "):
        text = text[len("Task failed: "):]
    if _SSH_BOILERPLATE in text:
        text = text.split(_SSH_BOILERPLATE, 1)[1]
    text = " ".join(text.split("\n")[0].split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def host_status(result):
    """(status, error) of one registered xen_info result: ok, unreachable or failed."""
    if not isinstance(result, dict) or not result:
        return "failed", "no xen_info result for this host (was the xen_info task skipped?)"
    if result.get("unreachable"):
        return "unreachable", str(result.get("msg") or "host unreachable").strip()
    if result.get("failed"):
        return "failed", str(result.get("msg") or "xen_info failed").strip()
    if result.get("skipped"):
        return "failed", "xen_info was skipped on this host"
    if not isinstance(result.get("host"), dict) or not isinstance(result.get("domains"), list):
        return "failed", "xen_info returned no 'host' and 'domains' (keys: %s)" % (", ".join(sorted(result)),)
    return "ok", None


def _check_info(info_by_host):
    if not isinstance(info_by_host, dict):
        raise AnsibleFilterError("expected a dict of inventory host name to registered xen_info result, got %s"
                                 % (type(info_by_host).__name__,))
    return [(str(h), info_by_host[h]) for h in sorted(info_by_host, key=str)]


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


# --------------------------------------------------------------------------- snapshot watchdog
# Which snapshots need a look is lvm.snapshot_alerts' rule, on the lvs xen_info returns.

def _now_epoch(generated_at):
    """The report's time (generated_at, when it is ISO 8601) in seconds, else now."""
    try:
        stamp = datetime.datetime.fromisoformat(str(generated_at).replace("Z", "+00:00"))
    except ValueError:
        return time.time()
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def _snapshot_limits(max_age_hours, max_fill_pct):
    for name, value in (("snapshot_max_age_hours", max_age_hours), ("snapshot_max_fill_pct", max_fill_pct)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise AnsibleFilterError("%s must be a number >= 0, got %r" % (name, value))
    return {"max_age_hours": max_age_hours, "max_fill_pct": max_fill_pct}


def _snapshot_alerts(result, now, limits):
    return lvm.snapshot_alerts(result.get("lvs") or [], now, limits["max_age_hours"], limits["max_fill_pct"])


def _snapshot_lines(alerts, limits):
    """One line per snapshot that needs a look: host, VG/LV, origin, size, fill, age, why."""
    if not alerts:
        return []
    lines = ["Snapshots to look at (older than %s h, fuller than %s%% or invalid):"
             % (limits["max_age_hours"], limits["max_fill_pct"])]
    for alert in alerts:
        lines.append("  %s %s/%s of %s, %s GiB: %s" % (
            alert["host"], alert["vg"], alert["name"], alert["origin"] or "?", gib(alert["size_bytes"]),
            "; ".join(alert["reasons"])))
    return lines


# --------------------------------------------------------------------------- vmlist

def vm_report(info_by_host, pattern="*", generated_at=None, snapshot_max_age_hours=lvm.SNAPSHOT_MAX_AGE_HOURS,
              snapshot_max_fill_pct=lvm.SNAPSHOT_MAX_FILL_PCT, raid1=None):
    """The vmlist document: every domain of every host matching ``pattern``, hosts that did
    not answer, and totals; and the snapshots of those hosts older than snapshot_max_age_hours,
    fuller than snapshot_max_fill_pct % or invalid. ``raid1``: {vm: its pair (filter raid1_pairs)}, the
    ``raid1`` field of each of its domains (None for other domains). Validates against
    docs/schemas/vmlist.schema.json."""
    raid1 = raid1 or {}
    pairs = parse_pattern(pattern)
    limits = _snapshot_limits(snapshot_max_age_hours, snapshot_max_fill_pct)
    now = _now_epoch(generated_at)
    hosts = []
    domains = []
    snapshots = []
    for host, result in _check_info(info_by_host):
        if not host_matches(host, pairs):
            continue
        status, error = host_status(result)
        entry = {"host": host, "status": status, "error": error, "hostname": None, "domains": 0}
        if status == "ok":
            entry["hostname"] = result["host"].get("hostname")
            snapshots += [dict(alert, host=host) for alert in _snapshot_alerts(result, now, limits)]
            for dom in result["domains"]:
                name = str(dom.get("name"))
                if not match_vm(name, pairs, host=host):
                    continue
                entry["domains"] += 1
                domains.append({
                    "host": host,
                    "name": name,
                    "domid": dom.get("domid"),
                    "memory_mib": _int(dom.get("memory_mib")),
                    "vcpus": _int(dom.get("vcpus")),
                    "state": str(dom.get("state") or ""),
                    "state_names": state_names(dom.get("state")),
                    "cpu_time_s": float(dom.get("cpu_time_s") or 0.0),
                    "is_dom0": bool(dom.get("is_dom0", dom.get("domid") == 0)),
                    "config_file": dom.get("config_file"),
                    "raid1": raid1.get(name),
                })
        hosts.append(entry)
    domains.sort(key=lambda d: (d["host"], not d["is_dom0"], d["name"]))
    totals = {
        "hosts": len(hosts),
        "hosts_ok": sum(1 for h in hosts if h["status"] == "ok"),
        "hosts_unreachable": sum(1 for h in hosts if h["status"] == "unreachable"),
        "hosts_failed": sum(1 for h in hosts if h["status"] == "failed"),
        "domains": len(domains),
        "guests": sum(1 for d in domains if not d["is_dom0"]),
        "memory_mib": sum(d["memory_mib"] for d in domains),
        "vcpus": sum(d["vcpus"] for d in domains),
        "snapshot_alerts": len(snapshots),
    }
    # who exports what to whom (xen_info disk_exports=true), from the hosts of the pattern
    exports = [row for row in diskexport.export_table(dict(_check_info(info_by_host))) if host_matches(row["host"], pairs)]
    return {"report": "vmlist", "generated_at": generated_at, "pattern": pattern or "*",
            "hosts": hosts, "domains": domains, "totals": totals, "exports": exports,
            "snapshot_limits": limits, "snapshots": snapshots}


# --------------------------------------------------------------------------- hoststats

_SUMMED = ("domains", "guests", "nr_cpus", "dom0_vcpus", "guest_vcpus", "total_memory_mib", "used_memory_mib",
           "free_memory_mib", "guest_memory_mib", "disk_total_bytes", "disk_used_bytes", "disk_free_bytes",
           "snapshot_alerts")


def host_report(info_by_host, vg="*", kind="hoststats", generated_at=None,
                snapshot_max_age_hours=lvm.SNAPSHOT_MAX_AGE_HOURS, snapshot_max_fill_pct=lvm.SNAPSHOT_MAX_FILL_PCT):
    """The hoststats (or hostlist) document: per host CPU allocation, memory and disk use, and
    its snapshots (in any VG) older than snapshot_max_age_hours, fuller than snapshot_max_fill_pct %
    or invalid; and the same summed over the hosts that answered. ``vg`` is a glob of the VGs
    counted as disk. Validates against docs/schemas/hoststats.schema.json."""
    if kind not in ("hoststats", "hostlist"):
        raise AnsibleFilterError("host_report kind must be hoststats or hostlist, got %r" % (kind,))
    limits = _snapshot_limits(snapshot_max_age_hours, snapshot_max_fill_pct)
    now = _now_epoch(generated_at)
    vg = vg or "*"
    hosts = []
    exports = diskexport.export_table(dict(_check_info(info_by_host))) if kind == "hostlist" else []
    for host, result in _check_info(info_by_host):
        status, error = host_status(result)
        entry = {"host": host, "status": status, "error": error}
        if status == "ok":
            info = result["host"]
            doms = result["domains"]
            guests = [d for d in doms if not d.get("is_dom0", d.get("domid") == 0)]
            dom0 = [d for d in doms if d.get("is_dom0", d.get("domid") == 0)]
            total = _int(info.get("total_memory_mib"))
            free = _int(info.get("free_memory_mib"))
            nr_cpus = _int(info.get("nr_cpus"))
            vgs = [v for v in (result.get("vgs") or []) if fnmatch.fnmatchcase(str(v.get("name")), vg)]
            disk_total = sum(_int(v.get("size_bytes")) for v in vgs)
            disk_free = sum(_int(v.get("free_bytes")) for v in vgs)
            drbd = result.get("drbd") or {}
            entry.update({
                "hostname": info.get("hostname"),
                "xen_version": info.get("xen_version"),
                "toolstack": info.get("toolstack"),
                "drbd_version": drbd.get("version") if isinstance(drbd, dict) else None,
                "domains": len(doms),
                "guests": len(guests),
                "nr_cpus": nr_cpus,
                "dom0_vcpus": sum(_int(d.get("vcpus")) for d in dom0),
                "guest_vcpus": sum(_int(d.get("vcpus")) for d in guests),
                "total_memory_mib": total,
                "used_memory_mib": total - free,
                "free_memory_mib": free,
                "guest_memory_mib": sum(_int(d.get("memory_mib")) for d in guests),
                "vgs": [{"name": str(v.get("name")), "size_bytes": _int(v.get("size_bytes")),
                         "free_bytes": _int(v.get("free_bytes")), "lv_count": _int(v.get("lv_count"))}
                        for v in vgs],
                "disk_total_bytes": disk_total,
                "disk_used_bytes": disk_total - disk_free,
                "disk_free_bytes": disk_free,
                "snapshots": _snapshot_alerts(result, now, limits),
            })
            entry["snapshot_alerts"] = len(entry["snapshots"])
            _add_pcts(entry)
            if kind == "hostlist":
                # its disk exports (and the dom0s that import them) and its imports, from xen_info disk_exports=true
                entry["exports"] = [dict((k, v) for k, v in row.items() if k != "host") for row in exports if row["host"] == host]
                entry["imports"] = diskexport.import_table(result, host)
        hosts.append(entry)
    ok = [h for h in hosts if h["status"] == "ok"]
    totals = {"hosts": len(hosts), "hosts_ok": len(ok),
              "hosts_unreachable": sum(1 for h in hosts if h["status"] == "unreachable"),
              "hosts_failed": sum(1 for h in hosts if h["status"] == "failed")}
    for key in _SUMMED:
        totals[key] = sum(h[key] for h in ok)
    _add_pcts(totals)
    return {"report": kind, "generated_at": generated_at, "vg": vg,
            "cpu_usage": "allocated guest vCPUs / physical CPUs (allocation, not load)",
            "snapshot_limits": limits, "hosts": hosts, "totals": totals}


def _add_pcts(entry):
    entry["cpu_alloc_pct"] = _pct(entry["guest_vcpus"], entry["nr_cpus"])
    entry["memory_used_pct"] = _pct(entry["used_memory_mib"], entry["total_memory_mib"])
    entry["disk_used_pct"] = _pct(entry["disk_used_bytes"], entry["disk_total_bytes"])


# --------------------------------------------------------------------------- cluster overview

def _replicas(result):
    """Each configured DRBD minor of one xen_info result, with its health by the rule the
    migration trusts a replica with (drbd.replica_problems)."""
    minors = (result.get("drbd") or {}).get("minors") or {}
    found = []
    for minor in sorted(minors, key=_int):
        state = drbd.minor_state(minors, minor)
        if state is None:
            continue
        problems = drbd.replica_problems(state)
        found.append({"minor": _int(minor), "resource": state.get("resource"), "cstate": state.get("cstate"),
                      "role": state.get("role"), "peer_role": state.get("peer_role"), "disk": state.get("disk"),
                      "peer_disk": state.get("peer_disk"), "sync_percent": state.get("sync_percent"),
                      "sync_eta_s": state.get("sync_eta_s"), "speed_kib_s": state.get("speed_kib_s"),
                      "healthy": not problems, "problems": problems})
    return found


def _storage(planned):
    if planned is None:
        return None
    if "restart_on" not in planned:
        return "no storage mode: any host"
    if not planned["restart_on"]:
        return "plain: no replica"
    return "replica on " + ", ".join(planned["restart_on"])


def _on_failure(name, failover):
    """What the plan does with VM ``name`` when its dom0 fails: (target or None, text)."""
    if failover is None:
        return None, None
    for restart in failover["restarts"]:
        if restart["vm"] == name:
            return restart["to"], "restarts on " + restart["to"]
    for lost in failover["not_restarted"]:
        if lost["vm"] == name:
            return None, "NOT restarted: " + lost["reason"]
    if name in failover["lost_unprotected"]:
        return None, "unprotected: stays down"
    return None, None


def _plan_part(plan):
    if not isinstance(plan, dict) or not plan:
        return {"available": False, "error": "no plan was made", "summary": [], "failover": {}, "vms": []}
    if plan.get("failed") or plan.get("skipped") or "tolerated_failures" not in plan:
        return {"available": False, "error": _first_line(plan.get("msg") or "the planner returned no result"),
                "summary": [], "failover": {}, "vms": []}
    keys = ("tolerated_failures", "capped", "live_hosts", "offline_hosts", "non_agile", "unprotected", "failover",
            "notes", "summary", "overcommitted")
    part = dict((key, plan[key]) for key in keys if key in plan)
    part.update(available=True, error=None, vms=plan.get("vms") or [])
    return part


def cluster_overview(info_by_host, plan=None, vg="*", generated_at=None,
                     snapshot_max_age_hours=lvm.SNAPSHOT_MAX_AGE_HOURS, snapshot_max_fill_pct=lvm.SNAPSHOT_MAX_FILL_PCT):
    """The cluster document behind playbooks/report.yml: the hoststats figures of every host
    (snapshots to look at included), its guests (with their storage and where the plan restarts
    them), its DRBD replicas and their health, and the failover plan (the registered result of
    sanless.xen.cluster_plan)."""
    stats = host_report(info_by_host, vg=vg, generated_at=generated_at, snapshot_max_age_hours=snapshot_max_age_hours,
                        snapshot_max_fill_pct=snapshot_max_fill_pct)
    domains = vm_report(info_by_host)["domains"]
    plan = _plan_part(plan)
    planned = dict((vm["name"], vm) for vm in plan["vms"])
    results = dict(_check_info(info_by_host))
    hosts = []
    for entry in stats["hosts"]:
        entry = dict(entry, vms=[], replicas=[], memory_segments=[])
        if entry["status"] == "ok":
            failover = plan["failover"].get(entry["host"]) if plan["available"] else None
            for dom in domains:
                if dom["host"] != entry["host"] or dom["is_dom0"]:
                    continue
                target, text = _on_failure(dom["name"], failover)
                vm = planned.get(dom["name"])
                entry["vms"].append(dict(dom, protected=vm.get("protected") if vm else None, storage=_storage(vm),
                                         restart_on=vm.get("restart_on") if vm else None,
                                         failover_target=target, on_host_failure=text))
            entry["replicas"] = _replicas(results[entry["host"]])
            dom0 = sum(d["memory_mib"] for d in domains if d["host"] == entry["host"] and d["is_dom0"])
            other = max(entry["used_memory_mib"] - dom0 - entry["guest_memory_mib"], 0)
            entry["memory_segments"] = [
                {"name": name, "mib": mib, "pct": _pct(mib, entry["total_memory_mib"])}
                for name, mib in (("Domain-0", dom0), ("guests", entry["guest_memory_mib"]), ("Xen and other", other))]
            for group in entry["vgs"]:
                group["used_bytes"] = group["size_bytes"] - group["free_bytes"]
                group["used_pct"] = _pct(group["used_bytes"], group["size_bytes"])
        hosts.append(entry)
    totals = dict(stats["totals"])
    replicas = [r for h in hosts for r in h["replicas"]]
    totals.update(replicas=len(replicas), replicas_healthy=sum(1 for r in replicas if r["healthy"]))
    plan.pop("vms")
    return {"report": "cluster", "generated_at": generated_at, "vg": stats["vg"], "cpu_usage": stats["cpu_usage"],
            "snapshot_limits": stats["snapshot_limits"], "hosts": hosts, "totals": totals, "plan": plan}


# --------------------------------------------------------------------------- tables

def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "%.1f" % value
    return str(value)


def _columns(columns):
    cols = []
    for col in columns:
        if isinstance(col, str):
            key, title = (col.split(":", 1) + [""])[:2]
            col = {"key": key, "title": title or key.upper()}
        elif isinstance(col, (list, tuple)) and len(col) in (2, 3):
            col = {"key": col[0], "title": col[1], "align": col[2] if len(col) == 3 else None}
        elif not isinstance(col, dict) or "key" not in col:
            raise AnsibleFilterError("format_table: a column is 'key', 'key:TITLE', [key, title(, align)] "
                                     "or a dict with key (title, align); got %r" % (col,))
        cols.append({"key": col["key"], "title": str(col.get("title", str(col["key"]).upper())),
                     "align": col.get("align")})
    return cols


def format_table(rows, columns, rule_before_last=False):
    """Render ``rows`` (dicts) as aligned text lines under a header of ``columns``.

    Columns whose values are all numbers are right-aligned unless a column says
    ``align: left``; a row that is None renders as a rule of dashes. Returns a list of lines
    without trailing spaces.
    """
    if not isinstance(rows, list):
        raise AnsibleFilterError("format_table: rows must be a list of dicts, got %s" % (type(rows).__name__,))
    cols = _columns(columns)
    rows = list(rows)
    if rule_before_last and rows:
        rows.insert(len(rows) - 1, None)
    for row in rows:
        if row is not None and not isinstance(row, dict):
            raise AnsibleFilterError("format_table: each row must be a dict (or None for a rule), got %r" % (row,))
    # a key the row lacks is a blank cell, a key whose value is None a "-"
    cells = [None if row is None else [_cell(row[c["key"]]) if c["key"] in row else "" for c in cols]
             for row in rows]
    widths = [len(c["title"]) for c in cols]
    for line in cells:
        if line is not None:
            widths = [max(w, len(v)) for w, v in zip(widths, line)]
    right = []
    for idx, col in enumerate(cols):
        if col["align"] in ("left", "right"):
            right.append(col["align"] == "right")
            continue
        values = [row.get(col["key"]) for row in rows if row is not None and row.get(col["key"]) is not None]
        right.append(bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values))

    def render(values):
        out = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return "  ".join(out).rstrip()

    lines = [render([c["title"] for c in cols])]
    for line in cells:
        lines.append(render(["-" * w for w in widths]) if line is None else render(line))
    return lines


def _dead_lines(hosts, width):
    return ["%s  %s: %s" % (h["host"].ljust(width), h["status"].upper(), _first_line(h["error"]))
            for h in hosts if h["status"] != "ok"]


def gib(nbytes):
    """Bytes as GiB with one decimal, as every report writes disk sizes."""
    return round((nbytes or 0) / 1073741824.0, 1)


VM_COLUMNS = [
    {"key": "host", "title": "HOST"}, {"key": "name", "title": "NAME"}, {"key": "domid", "title": "ID"},
    {"key": "memory_mib", "title": "MEM(MiB)"}, {"key": "vcpus", "title": "VCPUS"},
    {"key": "state", "title": "STATE", "align": "left"}, {"key": "cpu_time_s", "title": "TIME(s)"},
]

HOSTSTATS_COLUMNS = [
    {"key": "host", "title": "HOST"}, {"key": "guests", "title": "DOMUS"},
    {"key": "guest_vcpus", "title": "VCPUS"}, {"key": "nr_cpus", "title": "PCPUS"},
    {"key": "cpu", "title": "CPU%", "align": "right"},
    {"key": "total_memory_mib", "title": "MEM(MiB)"}, {"key": "used_memory_mib", "title": "USED"},
    {"key": "free_memory_mib", "title": "FREE"}, {"key": "mem", "title": "MEM%", "align": "right"},
    {"key": "disk_total", "title": "DISK(GiB)"}, {"key": "disk_used", "title": "USED"},
    {"key": "disk_free", "title": "FREE"}, {"key": "disk", "title": "DISK%", "align": "right"},
]

HOSTLIST_COLUMNS = [
    {"key": "host", "title": "HOST"}, {"key": "status", "title": "STATUS"},
    {"key": "hostname", "title": "HOSTNAME"}, {"key": "xen_version", "title": "XEN"},
    {"key": "toolstack", "title": "TOOLSTACK"}, {"key": "drbd_version", "title": "DRBD"},
    {"key": "nr_cpus", "title": "PCPUS"}, {"key": "total_memory_mib", "title": "MEM(MiB)"},
    {"key": "domains", "title": "DOMAINS"}, {"key": "vgs", "title": "VGS(GiB free/size)", "align": "left"},
]


def _hoststats_row(entry):
    row = dict(entry)
    row.update({"cpu": "%.0f%%" % entry["cpu_alloc_pct"], "mem": "%.0f%%" % entry["memory_used_pct"],
                "disk": "%.0f%%" % entry["disk_used_pct"], "disk_total": gib(entry["disk_total_bytes"]),
                "disk_used": gib(entry["disk_used_bytes"]), "disk_free": gib(entry["disk_free_bytes"])})
    return row


def _export_lines(rows):
    """One line per disk export: owner, LV, transport and address, the dom0s importing it."""
    lines = []
    for row in rows:
        lines.append("  %s %s %s %s -> %s%s" % (
            row["host"], row["path"] or row["device"], row["transport"], row["address"], ", ".join(row["to"]) or "no dom0",
            "" if row["running"] else " (vblade not running)"))
    return ["Disk exports:"] + lines if lines else []


def _vm_lines(report):
    rows = [dict(d) for d in report["domains"]]
    t = report["totals"]
    rows.append({"host": "TOTAL", "name": "%d domain%s" % (t["domains"], "" if t["domains"] == 1 else "s"),
                 "memory_mib": t["memory_mib"], "vcpus": t["vcpus"]})
    lines = format_table(rows, VM_COLUMNS, rule_before_last=True)
    width = max([len("HOST")] + [len(d["host"]) for d in report["domains"]] + [len("TOTAL")])
    lines += _dead_lines(report["hosts"], width)
    if report.get("pattern") not in (None, "", "*"):
        lines.append("(VMs matching %s)" % (report["pattern"],))
    return (lines + _raid1_lines(report["domains"]) + _export_lines(report.get("exports") or [])
            + _snapshot_lines(report.get("snapshots") or [], report.get("snapshot_limits")))


def _raid1_lines(domains):
    """One line per raid1 domain: its legs' dom0s, the pair's state and the causes of a degraded one."""
    lines = []
    for dom in domains:
        pair = dom.get("raid1")
        if pair:
            lines.append("  %s on %s: legs on %s, %s%s" % (
                dom["name"], dom["host"], " and ".join(pair["hosts"]), pair["state"],
                "".join("; %s" % cause for cause in pair["causes"])))
    return ["RAID1 pairs (md not read: playbooks/raid1_status.yml reads it):"] + lines if lines else []


def _hoststats_lines(report):
    ok = [h for h in report["hosts"] if h["status"] == "ok"]
    rows = [_hoststats_row(h) for h in ok]
    total = _hoststats_row(report["totals"])
    total["host"] = "TOTAL"
    rows.append(total)
    lines = format_table(rows, HOSTSTATS_COLUMNS, rule_before_last=True)
    width = max([len("TOTAL")] + [len(h["host"]) for h in ok])
    lines += _dead_lines(report["hosts"], width)
    lines.append("CPU% = guest vCPUs / physical CPUs (allocation, not load)")
    lines.append("MEM USED = total - free as Xen reports it (Domain-0 included); DISK = VGs matching %s, size - free"
                 % (report.get("vg", "*"),))
    return lines + _snapshot_lines([dict(alert, host=h["host"]) for h in ok for alert in h.get("snapshots") or []],
                                   report.get("snapshot_limits"))


def _hostlist_lines(report):
    rows = []
    for h in report["hosts"]:
        row = dict(h)
        row["status"] = h["status"] if h["status"] == "ok" else h["status"].upper()
        if h["status"] == "ok":
            row["vgs"] = " ".join("%s(%s/%s)" % (v["name"], gib(v["free_bytes"]), gib(v["size_bytes"]))
                                  for v in h["vgs"]) or "-"
        else:
            row["vgs"] = _first_line(h["error"], 100)
        rows.append(row)
    lines = format_table(rows, HOSTLIST_COLUMNS)
    t = report["totals"]
    lines.append("%d host%s: %d ok, %d unreachable, %d failed" % (
        t["hosts"], "" if t["hosts"] == 1 else "s", t["hosts_ok"], t["hosts_unreachable"], t["hosts_failed"]))
    return lines + _export_lines([dict(row, host=h["host"]) for h in report["hosts"] for row in h.get("exports") or []])


def _cluster_lines(report):
    t = report["totals"]
    guests = [vm for h in report["hosts"] for vm in h.get("vms", [])]
    lines = _hoststats_lines(report)
    lines.append("")
    if guests:
        # the dead hosts already have their line above
        lines += _vm_lines({"domains": guests, "hosts": [],
                            "totals": {"domains": t["guests"], "memory_mib": t["guest_memory_mib"],
                                       "vcpus": t["guest_vcpus"]}})
    else:
        lines.append("No guests.")
    lines.append("")
    plan = report["plan"]
    lines += plan["summary"] if plan["available"] else ["No failover plan: %s" % (plan["error"],)]
    replicas = [(h["host"], r) for h in report["hosts"] for r in h.get("replicas", [])]
    if replicas:
        lines.append("")
        lines.append("DRBD replicas: %d of %d healthy" % (t["replicas_healthy"], t["replicas"]))
        for host, r in replicas:
            named = " (%s)" % r["resource"] if r["resource"] else ""
            lines.append("  %s minor %s%s: %s" % (host, r["minor"], named,
                                                  "healthy" if r["healthy"] else "; ".join(r["problems"])))
    return lines


_LINES = {"vmlist": _vm_lines, "hoststats": _hoststats_lines, "hostlist": _hostlist_lines, "cluster": _cluster_lines}


def _check_report(report, what, kinds=tuple(_LINES)):
    if not isinstance(report, dict) or report.get("report") not in kinds:
        raise AnsibleFilterError("%s needs a %s document (from sanless.xen.vm_report, host_report or cluster_overview)"
                                 % (what, " or ".join(kinds)))
    return report["report"]


def report_lines(report):
    """The text table of a vm_report, host_report or cluster_overview document, as a list of lines."""
    return _LINES[_check_report(report, "report_lines")](report)


def report_stats(report, path=None):
    """What a report playbook publishes with set_stats (AWX job artifacts): the kind, the time, the
    file written (``path``, or None), the totals, each host's status and the error of each host
    that gave no data; the cluster report adds the plan's verdict and the unhealthy replicas."""
    kind = _check_report(report, "report_stats")
    stats = {"report": kind, "generated_at": report.get("generated_at"), "file": path or None,
             "totals": dict(report["totals"]),
             "hosts": dict((h["host"], h["status"]) for h in report["hosts"]),
             "errors": dict((h["host"], _first_line(h["error"])) for h in report["hosts"] if h["status"] != "ok")}
    if kind == "cluster":
        plan = report["plan"]
        stats["plan"] = dict((key, plan.get(key)) for key in (
            "available", "error", "tolerated_failures", "capped", "offline_hosts", "non_agile", "overcommitted"))
        stats["unhealthy_replicas"] = ["%s minor %d: %s" % (h["host"], r["minor"], "; ".join(r["problems"]))
                                       for h in report["hosts"] for r in h["replicas"] if not r["healthy"]]
    return stats


# --------------------------------------------------------------------------- CSV

# One row per domain (vmlist) or per host (hoststats, hostlist), raw figures in the units the
# JSON document has; a host that did not answer is a row with its status and error.
CSV_COLUMNS = {
    # xl's state flags (-b----) would read as a formula: their names instead, space-separated
    "vmlist": ("host", "name", "domid", "memory_mib", "vcpus", "state_names", "cpu_time_s", "is_dom0",
               "config_file", "status", "error"),
    "hoststats": ("host", "status", "guests", "guest_vcpus", "nr_cpus", "cpu_alloc_pct", "total_memory_mib",
                  "used_memory_mib", "free_memory_mib", "memory_used_pct", "disk_total_bytes", "disk_used_bytes",
                  "disk_free_bytes", "disk_used_pct", "snapshot_alerts", "error"),
    "hostlist": ("host", "status", "hostname", "xen_version", "toolstack", "drbd_version", "nr_cpus",
                 "total_memory_mib", "domains", "vgs", "error"),
}

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    value = str(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def report_csv(report):
    """The vmlist, hoststats or hostlist document as CSV text (a header line, then one row a
    domain or a host; RFC 4180 quoting, \\n line ends)."""
    kind = _check_report(report, "report_csv", tuple(CSV_COLUMNS))
    columns = CSV_COLUMNS[kind]
    if kind == "vmlist":
        rows = [dict(d, status="ok", state_names=" ".join(d["state_names"])) for d in report["domains"]]
        rows += [h for h in report["hosts"] if h["status"] != "ok"]
    else:
        rows = []
        for host in report["hosts"]:
            row = dict(host)
            if kind == "hostlist" and host["status"] == "ok":
                row["vgs"] = " ".join("%s:%d/%d" % (v["name"], v["free_bytes"], v["size_bytes"]) for v in host["vgs"])
            rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        if row.get("error"):
            row = dict(row, error=_first_line(row["error"], 1000))
        writer.writerow([_csv_cell(row.get(col)) for col in columns])
    return out.getvalue()


class FilterModule(object):
    """sanless.xen report and VM name filters."""

    def filters(self):
        return {
            "vm_report": vm_report,
            "host_report": host_report,
            "cluster_overview": cluster_overview,
            "report_lines": report_lines,
            "report_csv": report_csv,
            "report_stats": report_stats,
            "format_table": format_table,
            "match_vm": match_vm,
            "valid_vm_name": valid_vm_name,
        }
