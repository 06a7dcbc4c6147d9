# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the importing modules (iscsi_initiator, aoe_import) share: the owner/vg/lv options that name
the shared path /dev/sanless/<owner>/<vg>/<lv>, and the wait for a device node to appear. Then the
storage facts of a dom0 (xen_info disk_exports=true: its exports, imports and shared paths, read with
iscsi.py's and aoe.py's readers) and, from those of every dom0, who exports what to whom."""

from __future__ import annotations

import glob
import os

from ansible_collections.sanless.xen.plugins.module_utils import aoe, dm, iscsi
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.files import read_text
from ansible_collections.sanless.xen.plugins.module_utils.lvm import check_name
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError


# argument_spec entries and the required_together group of the shared-path options.
SHARED_PATH_OPTIONS = dict(
    owner=dict(type="str"),
    vg=dict(type="str"),
    lv=dict(type="str"),
)
SHARED_PATH_TOGETHER = ("owner", "vg", "lv")


def shared_path(params):
    """The shared path named by params' owner, vg and lv, or None without an owner. Raises ValueError
    on a bad VG or LV name."""
    if not params["owner"]:
        return None
    check_name(params["vg"], "VG name")
    check_name(params["lv"], "LV name")
    return conv.shared_disk_path(params["owner"], params["vg"], params["lv"])


def device_exists(path):
    """True when the device node (or link) is there (tests replace it)."""
    return os.path.exists(path)


# --------------------------------------------------------------------------- storage facts (read only)

# Where the kernel lists the network interfaces (tests point it at a folder of their own).
SYS_NET = "/sys/class/net"


def shared_paths():
    """The shared paths on this dom0 (/dev/sanless/<owner>/<vg>/<lv>, under iscsi.ROOT): [{path, owner, vg, lv,
    device (where the link leads), present (a device is there), resolved (the device node it leads to, None
    when none is there: udev rewrites the link relative to the node)}]."""
    found = []
    base = iscsi.ROOT + conv.SHARED_DEV_DIR
    for link in sorted(glob.glob(os.path.join(base, "*", "*", "*"))):
        names = conv.parse_shared_disk_path(link, base)
        if names is None:
            continue
        present = device_exists(link)
        found.append(dict(names, path=conv.shared_disk_path(names["owner"], names["vg"], names["lv"]),
                          device=os.readlink(link) if os.path.islink(link) else None, present=present,
                          resolved=os.path.realpath(link) if present else None))
    return found


def device_number(path):
    """MAJ:MIN of the block device a path leads to, or None when none is there (tests replace it)."""
    try:
        return dm.block_devno(path)
    except ValueError:
        return None


def device_holders(device):
    """What the kernel lists as holding a block device (/sys/block/<name>/holders: dm and md devices on it)."""
    try:
        return sorted(os.listdir(os.path.join(dm.SYS_BLOCK, os.path.basename(os.path.realpath(device)), "holders")))
    except OSError:
        return []


def interface_macs():
    """{interface: MAC} of this dom0 (the loopback left out): an AoE export's allow-list names importers by them."""
    macs = {}
    for folder in sorted(glob.glob(os.path.join(SYS_NET, "*"))):
        text = read_text(os.path.join(folder, "address"))
        name = os.path.basename(folder)
        if text and name != "lo":
            macs[name] = text.strip().lower()
    return macs


def boot_units(systemd_dir=None):
    """The units this dom0 starts at boot, sorted: those linked in a .wants or .requires folder under
    /etc/systemd/system, which is what ``systemctl enable`` makes of a unit's WantedBy=/RequiredBy=. Read from the
    links, which costs nothing: every run of the disk_export role asks each dom0, and enables only what is missing."""
    base = systemd_dir or aoe.SYSTEMD_DIR
    found = set()
    for kind in ("wants", "requires"):
        for link in glob.glob(os.path.join(base, "*.%s" % kind, "*")):
            found.add(os.path.basename(link))
    return sorted(found)


def lio_exports(state):
    """The LUNs of a parsed LIO state (iscsi.parse_lio_saveconfig/parse_lio_configfs) on block backstores, each
    with the initiators whose ACL maps it."""
    devices = dict((b["name"], b["dev"]) for b in state["backstores"] if b["plugin"] == "block")
    found = []
    for target in state["targets"]:
        for tpg in target["tpgs"]:
            for lun in tpg["luns"]:
                if lun["plugin"] == "block" and lun["backstore"] in devices:
                    allowed = [a["initiator"] for a in tpg["acls"] if any(m["tpg_lun"] == lun["lun"] for m in a["mapped_luns"])]
                    found.append({"transport": "iscsi", "backend": "lio", "device": devices[lun["backstore"]],
                                  "target": target["iqn"], "lun": lun["lun"], "allowed": sorted(allowed)})
    return found


def tgt_exports(targets):
    """The LUNs with a disk of parsed tgtadm targets (iscsi.parse_tgtadm_show), each with its target's ACL."""
    return [{"transport": "iscsi", "backend": "tgt", "device": lun["backing_store"], "target": target["iqn"],
             "lun": lun["lun"], "allowed": sorted(target["acls"])}
            for target in targets for lun in target["luns"] if lun["backing_store"]]


def aoe_exports(units, vblades):
    """AoE exports: the collection's vblade units (aoe.read_units) and the vblades running (aoe.parse_ps_vblade),
    one entry per shelf, slot and device, with its unit (or None) and pid (or None: not running)."""
    found = {}
    for (shelf, slot), unit in sorted(units.items()):
        found[(shelf, slot, unit["device"])] = {
            "transport": "aoe", "device": unit["device"], "shelf": shelf, "slot": slot, "interface": unit["interface"],
            "allowed": sorted(unit["macs"]), "unit": conv.vblade_unit_name(shelf, slot), "pid": None}
    for run in vblades:
        key = (run["shelf"], run["slot"], run["device"])
        entry = found.setdefault(key, {"transport": "aoe", "device": run["device"], "shelf": run["shelf"],
                                       "slot": run["slot"], "interface": run["interface"],
                                       "allowed": sorted(run["macs"]), "unit": None, "pid": None})
        entry["pid"] = run["pid"]
    return [found[key] for key in sorted(found)]


def iscsi_imports(sessions):
    """One entry per LUN attached through an iSCSI session (iscsi.parse_session_details), with its by-path link."""
    return [{"transport": "iscsi", "target": s["target"], "address": s["address"], "port": s["port"], "lun": d["lun"],
             "device": "/dev/%s" % d["disk"], "path": iscsi.by_path(s["address"], s["port"], s["target"], d["lun"]),
             "state": s["session_state"]} for s in sessions for d in s["disks"]]


def aoe_imports(devices):
    """One entry per AoE device aoe-stat lists (aoe.parse_aoe_stat)."""
    return [{"transport": "aoe", "shelf": d["shelf"], "slot": d["slot"], "device": conv.aoe_device(d["shelf"], d["slot"]),
             "path": conv.aoe_device(d["shelf"], d["slot"]), "state": d["state"]} for d in devices]


def iscsi_sessions(runner):
    """This dom0's iSCSI sessions (iscsi.parse_session_details); none without open-iscsi."""
    return iscsi.Iscsiadm(runner).sessions() if runner.has_tool("iscsiadm") else []


def aoe_devices(runner):
    """This dom0's AoE devices (aoe.parse_aoe_stat); none before the aoe driver is loaded (it makes /dev/etherd) or
    without aoetools."""
    return aoe.Aoe(runner).stat() if os.path.isdir(aoe.ETHERD_DIR) and runner.has_tool("aoe-stat") else []


def storage_facts(runner):
    """Who exports what to whom as this dom0 sees it, read with the tool layer's readers and parsers: this host's
    initiator IQN and interface MACs, its exports (LIO, tgt, vblade), its imports (iSCSI sessions, AoE devices) and
    its shared paths, and the units it starts at boot. A tool that is not installed gives nothing; one that fails
    gives a line in errors."""
    facts = {"initiator": None, "macs": interface_macs(), "exports": [], "imports": [], "shared_paths": shared_paths(),
             "boot_units": boot_units(), "errors": []}
    text = read_text(iscsi.INITIATOR_NAME_FILE)
    facts["initiator"] = iscsi.parse_initiatorname(text) if text else None

    def lio():
        # the kernel's state (Lio.state reads its configfs tree): none while LIO is not loaded, whatever
        # saveconfig.json says
        if not os.path.isdir(iscsi.LIO_CONFIGFS):
            return []
        return lio_exports(iscsi.Lio(runner).state()[0])

    def tgt():
        # tgtadm fails while tgtd does not run: then there is nothing exported by tgt
        shown = runner.run(iscsi.tgt_show_argv(), ok_rcs=tuple(range(256))) if runner.has_tool("tgtadm") else None
        return tgt_exports(iscsi.parse_tgtadm_show(shown.stdout)) if shown is not None and shown.rc == 0 else []

    def vblade():
        tools = aoe.Aoe(runner)
        return aoe_exports(aoe.read_units(), tools.vblades() if runner.has_tool("vblade") else [])

    def sessions():
        return iscsi_imports(iscsi_sessions(runner))

    def etherd():
        return aoe_imports(aoe_devices(runner))

    for key, what, read in (("exports", "LIO", lio), ("exports", "tgt", tgt), ("exports", "vblade", vblade),
                            ("imports", "iSCSI sessions", sessions), ("imports", "AoE devices", etherd)):
        try:
            facts[key] += read()
        except (CommandError, ValueError) as exc:
            facts["errors"].append("%s: %s" % (what, exc))
    for export in facts["exports"]:
        # the device node the export's backing path leads to: the owner's own shared path of the LV is matched by it
        # (udev rewrites that link relative to the node, ../../../dm-1, so the link's text is not the LV path)
        export["resolved"] = os.path.realpath(export["device"]) if device_exists(export["device"]) else None
    return facts


# --------------------------------------------------------------------------- who exports what to whom (pure)

def _label(host):
    try:
        return conv.host_label(host)
    except ValueError:
        return host


def _facts(result):
    """The storage facts of a registered xen_info result (disk_exports=true), or None."""
    if not isinstance(result, dict) or result.get("failed") or result.get("unreachable"):
        return None
    facts = result.get("disk_exports")
    return facts if isinstance(facts, dict) else None


def export_table(results):
    """results: inventory host -> registered xen_info result (with disk_exports). Every export of every dom0:
    [{host, device, path (its shared path there, or None), transport, backend, address (target and LUN, or
    eSHELF.SLOT), allowed (initiators or MACs), running (AoE), to (the dom0s whose shared path of it leads to
    a device)}]."""
    importers = {}
    for host in sorted(results):
        for shared in (_facts(results[host]) or {}).get("shared_paths") or []:
            if shared["present"] and shared["owner"] != _label(host):
                importers.setdefault(shared["path"], []).append(host)
    rows = []
    for host in sorted(results):
        facts = _facts(results[host]) or {}
        own = [s for s in facts.get("shared_paths") or [] if s["owner"] == _label(host)]
        for export in facts.get("exports") or []:
            aoe_export = export["transport"] == "aoe"
            path = next((s["path"] for s in own if leads_to(s, export)), None)
            rows.append({"host": host, "device": export["device"], "path": path, "transport": export["transport"],
                         "backend": export.get("backend") or ("vblade" if aoe_export else None),
                         "address": "e%d.%d" % (export["shelf"], export["slot"]) if aoe_export
                         else "%s lun %d" % (export["target"], export["lun"]),
                         "allowed": list(export["allowed"]),
                         "running": export["pid"] is not None if aoe_export else True,
                         "to": importers.get(path, []) if path else []})
    return rows


def import_table(result, host):
    """The imports of one dom0 (its shared paths of another owner's LVs): [{path, owner, device, present,
    transport, state}], transport and state from the iSCSI session or AoE device the link leads to."""
    facts = _facts(result) or {}
    rows = []
    for shared in facts.get("shared_paths") or []:
        if shared["owner"] == _label(host):
            continue
        seen = next((i for i in facts.get("imports") or [] if leads_to(shared, i)), {})
        rows.append({"path": shared["path"], "owner": shared["owner"], "device": shared["device"],
                     "present": shared["present"], "transport": seen.get("transport"), "state": seen.get("state")})
    return rows


# --------------------------------------------------------------------------- stale imports (pure)
#
# An import is stale when its exporter answered and no longer exports it to this dom0, or when no shared path
# leads to it (the link was removed, or never made). Only the collection's imports are considered: iSCSI
# sessions with a target of conventions.target_iqn, AoE devices on the shelf of a dom0 (conventions.aoe_shelf).
# An exporter that did not answer is unknown, never gone: its imports are stale only when no link leads to them.

def import_owner(entry, dom0s):
    """The host label an import (iscsi_imports/aoe_imports entry) comes from, or None: not the collection's."""
    if entry["transport"] == "iscsi":
        return conv.target_iqn_host(entry["target"])
    return conv.aoe_shelf_host(entry["shelf"], dom0s)


def still_exported(entry, exports, initiator, macs):
    """Whether the exporter's exports (storage_facts' exports of the owner) still give this import to this dom0
    (its initiator IQN, its MACs): the same target and LUN with this initiator in the ACL, or the same shelf.slot
    open to every MAC or to one of this dom0's (a unit whose vblade is down still exports: systemd restarts it)."""
    for export in exports:
        if export["transport"] != entry["transport"]:
            continue
        if entry["transport"] == "iscsi":
            if (export["target"], export["lun"]) == (entry["target"], entry["lun"]) and \
                    (not export["allowed"] or initiator in export["allowed"]):
                return True
        elif (export["shelf"], export["slot"]) == (entry["shelf"], entry["slot"]) and \
                (not export["allowed"] or set(export["allowed"]) & set(macs)):
            return True
    return False


def leads_to(shared, entry):
    """Whether a shared path (shared_paths entry) leads to an import or an export (imports/exports entry): its link
    names the entry's by-path link or device, or resolves to the device node the entry's device is or leads to.
    Compared by node too because udev rewrites a link relative to the node (../../../dm-1, ../../../sdb)."""
    if shared["device"] is not None and shared["device"] in (entry.get("path"), entry["device"]):
        return True
    resolved = shared.get("resolved")
    return resolved is not None and resolved in (entry["device"], entry.get("resolved"))


def stale_imports(imports, shared, dom0s, host, owner, exports, initiator=None, macs=()):
    """This dom0's stale imports of owner's disks, from what it reports: imports (iscsi_imports + aoe_imports),
    shared (shared_paths), dom0s (every dom0: the AoE shelves), host (this dom0), exports (the owner's exports
    as it reported them, None when it did not answer), initiator and macs (this dom0's).

    Returns (stale, links): stale [dict(import entry, owner, links (the shared paths leading to it), reasons)],
    links [shared path entries of owner's disks that lead to no device: dangling]."""
    mine = conv.host_label(host)
    owner = conv.host_label(owner)
    stale = []
    for entry in imports:
        if import_owner(entry, dom0s) != owner:
            continue
        linked = [s["path"] for s in shared if s["owner"] == owner and leads_to(s, entry)]
        reasons = []
        if exports is not None and not still_exported(entry, exports, initiator, macs):
            reasons.append("%s no longer exports it to %s" % (owner, mine))
        if not linked:
            reasons.append("no shared path leads to it")
        if reasons:
            stale.append(dict(entry, owner=owner, links=linked, reasons=reasons))
    dangling = [s for s in shared if s["owner"] == owner and owner != mine and not s["present"]]
    return stale, dangling


def import_users(item, names, devno, holders, domain_disks, dm_tables):
    """Who may use an import (or a shared path): [what, as a sentence]. Empty: nothing does, it may go.

    item: a stale_imports entry (or a dangling shared path: owner); names: the paths it is known by (device,
    by-path link, its shared paths); devno: MAJ:MIN of its device (None: not there); holders: the kernel's
    holders of its device (/sys/block/X/holders: dm, md); domain_disks: [(domain, pdev_path, MAJ:MIN of what
    the path leads to now, or None)] of every domain (xl list -l); dm_tables: dm.parse_tables of the dom0.
    A domain whose disk is a shared path of the same owner that leads nowhere may be using this very import
    (the link was removed under it): it counts as a user."""
    users = []
    for domain, path, number in domain_disks:
        if path in names or (devno is not None and number == devno):
            users.append("domain %s uses it (%s)" % (domain, path))
        elif number is None and (conv.parse_shared_disk_path(path) or {}).get("owner") == item["owner"]:
            users.append("domain %s has %s, which leads nowhere: it may be this import" % (domain, path))
    if devno is not None:
        for name in sorted(dm_tables):
            if any(devno in segment["args"] for segment in dm_tables[name]):
                users.append("dm device %s is on it" % name)
    users.extend("%s holds it" % holder for holder in holders)
    return users


# --------------------------------------------------------------------------- fencing an importer (pure)
#
# A dom0 that is dead (the failover's) cannot say who it is: the IDs it has on another dom0's exports (its initiator
# IQN, its MAC) are told from those exports' allow-lists, as the IDs no dom0 that answered has. That is exact while
# it is the one dom0 that did not answer; with another one silent too, whose ID is whose cannot be told.

def importer_ids(facts, transport):
    """The IDs a dom0 (its storage_facts) is allowed on another's exports by: its initiator IQN (iscsi) or its MACs."""
    if transport == "iscsi":
        return [facts["initiator"]] if facts.get("initiator") else []
    return sorted(set((facts.get("macs") or {}).values()))


def silent_importer_ids(exports, results, silent):
    """The IDs on exports' allow-lists (storage_facts exports of one dom0: those of the disks concerned) that no dom0
    that answered has (results: dom0 -> xen_info result with disk_exports), which are the IDs of the dom0s in silent
    (the importers that did not answer). Returns (ids, problem): when IDs are left and a dom0 other than those of
    silent did not answer either, whose they are cannot be told: no ids, and the problem says why."""
    known = set()
    for result in results.values():
        facts = _facts(result)
        if facts is not None:
            for transport in ("iscsi", "aoe"):
                known.update(importer_ids(facts, transport))
    ids = sorted(set(i for export in exports for i in export["allowed"]) - known)
    others = sorted(h for h, result in results.items() if _facts(result) is None and h not in silent)
    if ids and others:
        return [], ("%s did not answer either: which of %s on the exports is %s's cannot be told" % (
            " and ".join(others), ", ".join(ids), " and ".join(sorted(silent))))
    return ids, None


def _address(export):
    if export["transport"] == "aoe":
        return "e%d.%d" % (export["shelf"], export["slot"])
    return "LUN %d of %s" % (export["lun"], export["target"])


def fence_plan(holder, importer, devices, results):
    """How dom0 holder stops exporting devices (its LVs, /dev/VG/LV) to importer, a dom0 that does not answer (dead):
    for each export of one of them (holder's storage facts in results, dom0 -> xen_info result with disk_exports), the
    importer's IDs to take off its allow-list (silent_importer_ids) and what it keeps. The disk_export role does it
    (state absent, from holder, to importer); fence_check tells, from holder's exports read again, that it held.

    Returns {holder, importer, devices, transports: {transport: backend (iscsi) or None}, exports: [{device, transport,
    backend, address, allowed, remove, keep}], ids (all removed), needed (something to remove), problems (why holder's
    exports to importer cannot be removed: its export state unknown, an export open to every importer, a tgt target
    whose per-target ACL other importers keep, whose ID is whose unknown)}."""
    out = {"holder": holder, "importer": importer, "devices": list(devices), "transports": {}, "exports": [],
           "ids": [], "needed": False, "problems": []}
    facts = _facts(results.get(holder))
    if facts is None:
        out["problems"].append("the export state of %s is unknown (%s): its exports to %s cannot be removed" % (
            holder, (results.get(holder) or {}).get("msg") or "no storage facts", importer))
        return out
    if facts.get("errors"):
        out["problems"].append("the export state of %s is unknown (%s): its exports to %s cannot be removed" % (
            holder, "; ".join(facts["errors"]), importer))
        return out
    exports = [e for e in facts.get("exports") or [] if e["device"] in devices]
    others = dict((h, r) for h, r in results.items() if h != importer)
    ids, problem = silent_importer_ids(exports, others, [importer])
    if problem:
        out["problems"].append(problem)
        return out
    for export in exports:
        where = "%s (%s)" % (_address(export), export["device"])
        remove = sorted(set(export["allowed"]) & set(ids))
        keep = sorted(set(export["allowed"]) - set(remove))
        out["exports"].append({"device": export["device"], "transport": export["transport"],
                               "backend": export.get("backend"), "address": _address(export),
                               "allowed": list(export["allowed"]), "remove": remove, "keep": keep})
        if export["transport"] == "aoe" and not export["allowed"]:
            out["problems"].append("%s on %s is open to every MAC: it cannot be closed to %s alone" % (
                where, holder, importer))
        elif remove and keep and export.get("backend") == "tgt":
            out["problems"].append("%s on %s: a tgt ACL is per target and %s keeps it: %s cannot be taken off it "
                                   "alone" % (where, holder, ", ".join(keep), importer))
        if remove or (export["transport"] == "aoe" and not export["allowed"]):
            out["transports"][export["transport"]] = export.get("backend")
    if len(set(e.get("backend") for e in exports if e["transport"] == "iscsi")) > 1:
        out["problems"].append("%s exports these disks over LIO and tgt at once: fence them by hand" % holder)
    out["ids"] = sorted(set(i for e in out["exports"] for i in e["remove"]))
    out["needed"] = bool(out["ids"])
    return out


def fence_check(fence, result):
    """Whether a fence held, from holder's xen_info result (disk_exports) read after it: problems, empty when none of
    the fenced devices is exported to an ID the fence removed (nor open to every MAC)."""
    facts = _facts(result)
    if facts is None or facts.get("errors"):
        return ["the exports of %s could not be read again: %s" % (
            fence["holder"], "; ".join((facts or {}).get("errors") or []) or (result or {}).get("msg") or "no storage facts")]
    problems = []
    for export in facts.get("exports") or []:
        if export["device"] not in fence["devices"]:
            continue
        left = sorted(set(export["allowed"]) & set(fence["ids"]))
        if left:
            problems.append("%s (%s) on %s still allows %s" % (_address(export), export["device"], fence["holder"],
                                                               ", ".join(left)))
        elif export["transport"] == "aoe" and not export["allowed"]:
            problems.append("%s (%s) on %s is open to every MAC" % (_address(export), export["device"], fence["holder"]))
    return problems
