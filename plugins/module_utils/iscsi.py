# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""iSCSI: LIO (targetcli), tgt (tgtadm) and open-iscsi (iscsiadm).

Pure parsers first (saveconfig.json, LIO's configfs tree, ``targetcli ls``/``sessions detail``, ``tgtadm --op show``,
``iscsiadm -m session [-P 3]``, ``-m node``, discovery), then argv builders, then thin runners.
CHAP secrets never appear in what the parsers return: the one function that reads them
(lio_chap_secrets) is for comparing, and scrub()/scrub_error() mask them in commands and output.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.files import read_text, write_file_atomic
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, RunnerTool

# Debian's rtslib-fb-targetctl restores this file at boot; targetcli saveconfig writes it.
LIO_SAVECONFIG = "/etc/rtslib-fb-target/saveconfig.json"
# open-iscsi's name of this host as an initiator (InitiatorName=iqn...), the IQN a target's ACL names.
INITIATOR_NAME_FILE = "/etc/iscsi/initiatorname.iscsi"
LIO_TPG = 1
TGT_CONF_DIR = "/etc/tgt/conf.d"
MASK = "********"

# iscsiadm exit codes (open-iscsi include/iscsi_err.h) the modules act on.
ISCSI_ERR_SESS_NOT_FOUND = 2
ISCSI_ERR_TRANS_TIMEOUT = 8
ISCSI_ERR_SESS_EXISTS = 15
ISCSI_ERR_FATAL_LOGIN = 19
ISCSI_ERR_NO_OBJS_FOUND = 21
ISCSI_ERR_LOGIN_AUTH_FAILED = 24
_ISCSI_ERRORS = {
    ISCSI_ERR_SESS_NOT_FOUND: ("no_session", "no such session"),
    ISCSI_ERR_TRANS_TIMEOUT: ("timeout", "the portal did not answer in time"),
    ISCSI_ERR_SESS_EXISTS: ("session_exists", "already logged in"),
    ISCSI_ERR_FATAL_LOGIN: ("login_refused", "the target refused the login (no ACL for this initiator, or no such target)"),
    ISCSI_ERR_NO_OBJS_FOUND: ("not_found", "no matching sessions or node records"),
    ISCSI_ERR_LOGIN_AUTH_FAILED: ("auth_failed", "CHAP authorization failed: wrong or missing user name or secret "
                                                 "for this initiator"),
}


class IscsiParseError(ValueError):
    """Output of an iSCSI tool that cannot be read safely."""


# --------------------------------------------------------------------------- secrets


def scrub(value, secrets):
    """value (str, list or dict, nested) with every secret replaced by ********."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return dict((k, scrub(v, secrets)) for k, v in value.items())
    return value


def scrub_error(err, secrets):
    """A copy of a CommandError with the secrets masked in its command, output and message."""
    return CommandError(scrub(err.cmd, secrets), err.rc, scrub(err.stdout, secrets), scrub(err.stderr, secrets),
                        msg=scrub(err.msg, secrets))


# --------------------------------------------------------------------------- LIO: saveconfig.json


def _lio_storage(obj):
    return {"name": obj.get("name"), "plugin": obj.get("plugin"), "dev": obj.get("dev"), "wwn": obj.get("wwn")}


def parse_lio_saveconfig(text):
    """The LIO state a saveconfig.json holds, without secrets.

    {"backstores": [{name, plugin, dev, wwn}], "targets": [{iqn, fabric, tpgs: [{tag, enabled,
    authentication, generate_node_acls, portals: [{address, port}], luns: [{lun, backstore, plugin}],
    acls: [{initiator, chap_userid, chap_password_set, mapped_luns: [{mapped_lun, tpg_lun, write_protect}]}]}]}]}
    An empty file (rtslib writes none before the first save) is an empty state.
    """
    if not text.strip():
        return {"backstores": [], "targets": []}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise IscsiParseError("LIO saveconfig is not JSON: %s" % exc)
    if not isinstance(data, dict):
        raise IscsiParseError("LIO saveconfig is not a JSON object")
    state = {"backstores": [_lio_storage(o) for o in data.get("storage_objects") or []], "targets": []}
    for target in data.get("targets") or []:
        if "wwn" not in target:
            raise IscsiParseError("LIO saveconfig: a target without wwn")
        tpgs = []
        for tpg in target.get("tpgs") or []:
            attrs = tpg.get("attributes") or {}
            luns = []
            for lun in tpg.get("luns") or []:
                plugin, _sep, name = (lun.get("storage_object") or "").replace("/backstores/", "", 1).partition("/")
                luns.append({"lun": int(lun["index"]), "backstore": name, "plugin": plugin})
            acls = []
            for acl in tpg.get("node_acls") or []:
                acls.append({
                    "initiator": acl["node_wwn"],
                    "chap_userid": acl.get("chap_userid") or None,
                    "chap_password_set": bool(acl.get("chap_password")),
                    "mapped_luns": [{"mapped_lun": int(m["index"]), "tpg_lun": int(m["tpg_lun"]),
                                     "write_protect": bool(m.get("write_protect"))}
                                    for m in acl.get("mapped_luns") or []],
                })
            tpgs.append({
                "tag": int(tpg.get("tag", 1)),
                "enabled": bool(tpg.get("enable", True)),
                "authentication": bool(attrs.get("authentication", 0)),
                "generate_node_acls": bool(attrs.get("generate_node_acls", 0)),
                "portals": [{"address": p["ip_address"], "port": int(p["port"])} for p in tpg.get("portals") or []],
                "luns": luns,
                "acls": acls,
            })
        state["targets"].append({"iqn": target["wwn"], "fabric": target.get("fabric"), "tpgs": tpgs})
    return state


def lio_chap_secrets(text):
    """{(target iqn, tpg tag, initiator iqn): CHAP password} from saveconfig.json: only to compare
    with the wanted secret, never to return."""
    secrets = {}
    if not text.strip():
        return secrets
    for target in json.loads(text).get("targets") or []:
        for tpg in target.get("tpgs") or []:
            for acl in tpg.get("node_acls") or []:
                if acl.get("chap_password"):
                    secrets[(target["wwn"], int(tpg.get("tag", 1)), acl["node_wwn"])] = acl["chap_password"]
    return secrets


# --------------------------------------------------------------------------- LIO: targetcli output

_LS_LINE_RE = re.compile(r"^(?P<indent>[ |]*)o- (?P<name>\S+) \.*(?: \[(?P<info>.*)\])?\s*$")


def parse_targetcli_ls(text):
    """The same state as parse_lio_saveconfig from ``targetcli ls``: what the kernel has, as targetcli lists it (the
    tests hold the configfs reader that Lio.state uses to it, on recordings of one state).
    CHAP user names and backstore wwns are not in this listing: chap_userid and wwn are None."""
    state = {"backstores": [], "targets": []}
    path = []
    for line in text.splitlines():
        match = _LS_LINE_RE.match(line)
        if not match:
            continue
        depth = len(match.group("indent")) // 2
        name, info = match.group("name"), match.group("info") or ""
        path = path[:depth] + [name]
        if len(path) == 3 and path[1] == "backstores" and path[2] != "alua":
            continue
        if len(path) == 4 and path[1] == "backstores":
            dev = info.split(" ", 1)[0] if info.startswith("/") else None
            state["backstores"].append({"name": name, "plugin": path[2], "dev": dev, "wwn": None})
        elif len(path) == 3 and path[1] == "iscsi":
            state["targets"].append({"iqn": name, "fabric": "iscsi", "tpgs": []})
        elif len(path) == 4 and path[1] == "iscsi" and name.startswith("tpg"):
            state["targets"][-1]["tpgs"].append({
                "tag": int(name[3:]), "enabled": True,
                # targetcli's tpg summary: "auth per-acl" or "tpg-auth" with authentication=1, else "no-auth"
                "authentication": "auth per-acl" in info or "tpg-auth" in info,
                "generate_node_acls": "gen-acls" in info and "no-gen-acls" not in info,
                "portals": [], "luns": [], "acls": []})
        elif len(path) == 6 and path[1] == "iscsi":
            tpg = state["targets"][-1]["tpgs"][-1]
            if path[4] == "luns":
                backing = info.split(" ", 1)[0]
                plugin, _sep, backstore = backing.partition("/")
                tpg["luns"].append({"lun": int(name[3:]), "backstore": backstore, "plugin": plugin})
            elif path[4] == "portals":
                address, _sep, port = name.rpartition(":")
                tpg["portals"].append({"address": address.strip("[]"), "port": int(port)})
            elif path[4] == "acls":
                tpg["acls"].append({"initiator": name, "chap_userid": None,
                                    "chap_password_set": "1-way auth" in info or "2-way auth" in info,
                                    "mapped_luns": []})
        elif len(path) == 7 and path[1] == "iscsi" and path[4] == "acls" and name.startswith("mapped_lun"):
            lun = re.match(r"^lun([0-9]+) ", info)
            if not lun:
                raise IscsiParseError("targetcli ls: cannot read mapped LUN line %r" % line)
            state["targets"][-1]["tpgs"][-1]["acls"][-1]["mapped_luns"].append(
                {"mapped_lun": int(name[len("mapped_lun"):]), "tpg_lun": int(lun.group(1)),
                 "write_protect": "(ro)" in info})
    return state


# --------------------------------------------------------------------------- LIO: the kernel's configfs tree

# Where LIO keeps what the kernel has, once target_core_mod is loaded; targetcli (rtslib) reads the same tree, at the
# cost of seconds of Python start-up and a walk of every object per call.
LIO_CONFIGFS = "/sys/kernel/config/target"
# targetcli's names of the backstore plugins, by the prefix of their HBA folder (core/iblock_0, core/fileio_1, ...)
LIO_HBA_PLUGINS = {"iblock": "block", "fileio": "fileio", "pscsi": "pscsi", "rd_mcp": "ramdisk", "user": "user"}
_LIO_TARGET_PREFIXES = ("iqn.", "eui.", "naa.")
_VPD_SERIAL_RE = re.compile(r"T10 VPD Unit Serial Number:\s*(\S+)")


def _folders(path):
    try:
        return sorted(name for name in os.listdir(path) if os.path.isdir(os.path.join(path, name))
                      and not os.path.islink(os.path.join(path, name)))
    except OSError:
        return []


def read_lio_configfs(root=None):
    """The parts of LIO's configfs tree (LIO_CONFIGFS) that parse_lio_configfs makes a state of: {path relative to
    the tree: None for a folder, the text of a file, "-> TARGET" for a link}. A CHAP password is read as whether one
    is set ("<set>" or ""), never as its text. Empty when LIO is not loaded."""
    root = root or LIO_CONFIGFS
    tree = {}

    def put_text(rel):
        text = read_text(os.path.join(root, rel))
        if text is not None:
            tree[rel] = text

    def put_folder(rel):
        tree[rel] = None
        path = os.path.join(root, rel)
        for name in sorted(os.listdir(path)):
            if os.path.islink(os.path.join(path, name)):
                tree[rel + "/" + name] = "-> " + os.readlink(os.path.join(path, name))

    for hba in _folders(os.path.join(root, "core")):
        if hba.rsplit("_", 1)[0] not in LIO_HBA_PLUGINS:
            continue  # alua and the like
        for name in _folders(os.path.join(root, "core", hba)):
            rel = "core/%s/%s" % (hba, name)
            put_folder(rel)
            for leaf in ("udev_path", "enable", "wwn/vpd_unit_serial"):
                put_text(rel + "/" + leaf)
    for iqn in _folders(os.path.join(root, "iscsi")):
        if not iqn.startswith(_LIO_TARGET_PREFIXES):
            continue  # discovery_auth
        for tpg in _folders(os.path.join(root, "iscsi", iqn)):
            if not tpg.startswith("tpgt_"):
                continue
            base = "iscsi/%s/%s" % (iqn, tpg)
            put_folder(base)
            for leaf in ("enable", "attrib/authentication", "attrib/generate_node_acls"):
                put_text(base + "/" + leaf)
            for portal in _folders(os.path.join(root, base, "np")):
                tree["%s/np/%s" % (base, portal)] = None
            for lun in _folders(os.path.join(root, base, "lun")):
                put_folder("%s/lun/%s" % (base, lun))
            for initiator in _folders(os.path.join(root, base, "acls")):
                acl = "%s/acls/%s" % (base, initiator)
                put_folder(acl)
                put_text(acl + "/auth/userid")
                password = read_text(os.path.join(root, acl, "auth/password"))
                if password is not None:
                    tree[acl + "/auth/password"] = "<set>" if password.strip() else ""
                for mapped in _folders(os.path.join(root, acl)):
                    if mapped.startswith("lun_"):
                        put_folder("%s/%s" % (acl, mapped))
                        put_text("%s/%s/write_protect" % (acl, mapped))
    return tree


def _link_target(tree, folder):
    """The last two components of the one link in a folder of a read_lio_configfs tree, or None."""
    for key, value in tree.items():
        if key.rsplit("/", 1)[0] == folder and isinstance(value, str) and value.startswith("-> "):
            parts = value[3:].rstrip("/").split("/")
            return parts[-2], parts[-1]
    return None


def parse_lio_configfs(tree):
    """The same state as parse_lio_saveconfig from a read_lio_configfs tree: what the kernel has (Lio.state). CHAP
    user names are read; secrets are not (chap_password_set says whether one is set)."""
    state = {"backstores": [], "targets": []}

    def text(key):
        value = tree.get(key)
        return value.strip() if isinstance(value, str) and not value.startswith("-> ") else None

    def flag(key):
        return text(key) == "1"

    def folders(prefix, depth):
        """The folders `depth` components below prefix, in numeric-aware order (lun_2 before lun_10)."""
        found = [key for key, value in tree.items() if value is None and key.startswith(prefix + "/")
                 and key.count("/") == prefix.count("/") + depth]
        return sorted(found, key=lambda k: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", k)])

    for folder in folders("core", 2):
        _core, hba, name = folder.split("/")
        serial = _VPD_SERIAL_RE.search(text(folder + "/wwn/vpd_unit_serial") or "")
        state["backstores"].append({"name": name, "plugin": LIO_HBA_PLUGINS[hba.rsplit("_", 1)[0]],
                                    "dev": text(folder + "/udev_path") or None,
                                    "wwn": serial.group(1) if serial else None})
    targets = {}
    for folder in folders("iscsi", 2):
        _fabric, iqn, tpg_name = folder.split("/")
        if iqn not in targets:
            targets[iqn] = {"iqn": iqn, "fabric": "iscsi", "tpgs": []}
            state["targets"].append(targets[iqn])
        tpg = {"tag": int(tpg_name[len("tpgt_"):]), "enabled": flag(folder + "/enable"),
               "authentication": flag(folder + "/attrib/authentication"),
               "generate_node_acls": flag(folder + "/attrib/generate_node_acls"),
               "portals": [], "luns": [], "acls": []}
        for portal in folders(folder + "/np", 1):
            address, _sep, port = portal.rsplit("/", 1)[1].rpartition(":")
            tpg["portals"].append({"address": address.strip("[]"), "port": int(port)})
        for lun in folders(folder + "/lun", 1):
            backing = _link_target(tree, lun)
            if backing is None:
                raise IscsiParseError("LIO configfs: %s leads to no backstore" % lun)
            tpg["luns"].append({"lun": int(lun.rsplit("_", 1)[1]), "backstore": backing[1],
                                "plugin": LIO_HBA_PLUGINS.get(backing[0].rsplit("_", 1)[0])})
        for acl in folders(folder + "/acls", 1):
            entry = {"initiator": acl.rsplit("/", 1)[1], "chap_userid": text(acl + "/auth/userid") or None,
                     "chap_password_set": tree.get(acl + "/auth/password") == "<set>", "mapped_luns": []}
            for mapped in folders(acl, 1):
                if not mapped.rsplit("/", 1)[1].startswith("lun_"):
                    continue
                tpg_lun = _link_target(tree, mapped)
                if tpg_lun is None or not tpg_lun[1].startswith("lun_"):
                    raise IscsiParseError("LIO configfs: %s leads to no LUN" % mapped)
                entry["mapped_luns"].append({"mapped_lun": int(mapped.rsplit("_", 1)[1]),
                                             "tpg_lun": int(tpg_lun[1][len("lun_"):]),
                                             "write_protect": flag(mapped + "/write_protect")})
            tpg["acls"].append(entry)
        targets[iqn]["tpgs"].append(tpg)
    return state


def _lio_as_listed(state):
    """A parsed LIO state cut down to what ``targetcli ls`` shows, in one order, to compare the two readers."""
    backstores = sorted((dict(b, wwn=None) for b in state["backstores"]), key=lambda b: (b["plugin"] or "", b["name"]))
    targets = []
    for target in state["targets"]:
        # parse_targetcli_ls reads /iscsi only: targets of other fabrics (vhost, loopback, ...) are not compared
        if target.get("fabric") not in ("iscsi", None):
            continue
        tpgs = []
        for tpg in target["tpgs"]:
            # the listing has no CHAP user names, and parse_targetcli_ls takes every tpg for enabled
            acls = [dict(a, chap_userid=None, mapped_luns=sorted(a["mapped_luns"], key=lambda m: m["mapped_lun"]))
                    for a in tpg["acls"]]
            tpgs.append(dict(tpg, enabled=None, portals=sorted(tpg["portals"], key=lambda p: (p["address"], p["port"])),
                             luns=sorted(tpg["luns"], key=lambda lun: lun["lun"]),
                             acls=sorted(acls, key=lambda a: a["initiator"])))
        targets.append(dict(target, fabric="iscsi", tpgs=sorted(tpgs, key=lambda t: t["tag"])))
    return {"backstores": backstores, "targets": sorted(targets, key=lambda t: t["iqn"])}


def lio_same_config(saved, live):
    """True when a saveconfig.json (parse_lio_saveconfig) describes what the kernel has (parse_lio_configfs,
    or parse_targetcli_ls of ``targetcli ls``), compared on what the listing shows: not the backstore wwns, CHAP user names, tpg enable
    or targets of fabrics other than iSCSI. A failed restore at boot leaves a file naming what the kernel lacks."""
    return _lio_as_listed(saved) == _lio_as_listed(live)


_SESSION_HEAD_RE = re.compile(r"^alias: (?P<alias>\S*)\s+sid: (?P<sid>[0-9]+) type: (?P<type>\S+) "
                              r"session-state: (?P<state>\S+)")


def parse_targetcli_sessions(text):
    """``targetcli sessions detail``: [{alias, sid, type, state, initiator, authenticated,
    mapped_luns: [{lun, backstore, mode}], addresses}]."""
    sessions = []
    for line in text.splitlines():
        head = _SESSION_HEAD_RE.match(line)
        if head:
            sessions.append({"alias": head.group("alias"), "sid": int(head.group("sid")), "type": head.group("type"),
                             "state": head.group("state"), "initiator": None, "authenticated": None,
                             "mapped_luns": [], "addresses": []})
            continue
        if not sessions:
            continue
        words = line.split()
        if line.strip().startswith("name:") and len(words) >= 2:
            sessions[-1]["initiator"] = words[1]
            sessions[-1]["authenticated"] = "NOT AUTHENTICATED" not in line
        elif line.strip().startswith("mapped-lun:") and len(words) >= 6:
            sessions[-1]["mapped_luns"].append({"lun": int(words[1]), "backstore": words[3], "mode": words[5]})
        elif line.strip().startswith("address:") and len(words) >= 2:
            sessions[-1]["addresses"].append(words[1])
    return sessions


def lio_tpg(state, iqn, tag=LIO_TPG):
    """The tpg dict of a target, or None."""
    for target in state["targets"]:
        if target["iqn"] == iqn:
            for tpg in target["tpgs"]:
                if tpg["tag"] == tag:
                    return tpg
    return None


def lio_target_exists(state, iqn):
    return any(t["iqn"] == iqn for t in state["targets"])


def lio_backstore(state, name):
    for item in state["backstores"]:
        if item["name"] == name:
            return item
    return None


# --------------------------------------------------------------------------- LIO: commands


def targetcli_argv(path, *args):
    return ["targetcli", path] + [str(a) for a in args]


def lio_tpg_path(iqn, tag=LIO_TPG):
    return "/iscsi/%s/tpg%d" % (conv.check_iqn(iqn, "target IQN"), tag)


def lio_backstore_create_argv(name, dev):
    return targetcli_argv("/backstores/block", "create", "name=%s" % name, "dev=%s" % dev)


def lio_backstore_delete_argv(name):
    return targetcli_argv("/backstores/block", "delete", name)


def lio_target_create_argv(iqn):
    return targetcli_argv("/iscsi", "create", conv.check_iqn(iqn, "target IQN"))


def lio_target_delete_argv(iqn):
    return targetcli_argv("/iscsi", "delete", conv.check_iqn(iqn, "target IQN"))


def lio_portal_create_argv(iqn, address, port):
    return targetcli_argv(lio_tpg_path(iqn) + "/portals", "create", address, int(port))


def lio_portal_delete_argv(iqn, address, port):
    return targetcli_argv(lio_tpg_path(iqn) + "/portals", "delete", address, int(port))


def lio_lun_create_argv(iqn, backstore, lun):
    # add_mapped_luns=false: a new LUN is mapped to the ACLs this export names, not to every ACL.
    return targetcli_argv(lio_tpg_path(iqn) + "/luns", "create", "/backstores/block/%s" % backstore,
                          "lun=%d" % lun, "add_mapped_luns=false")


def lio_lun_delete_argv(iqn, lun):
    return targetcli_argv(lio_tpg_path(iqn) + "/luns", "delete", "lun%d" % lun)


def lio_acl_create_argv(iqn, initiator):
    return targetcli_argv(lio_tpg_path(iqn) + "/acls", "create", conv.check_iqn(initiator, "initiator IQN"),
                          "add_mapped_luns=false")


def lio_acl_delete_argv(iqn, initiator):
    return targetcli_argv(lio_tpg_path(iqn) + "/acls", "delete", initiator)


def lio_mapped_lun_create_argv(iqn, initiator, lun):
    return targetcli_argv("%s/acls/%s" % (lio_tpg_path(iqn), initiator), "create", "mapped_lun=%d" % lun,
                          "tpg_lun_or_backstore=%d" % lun)


def lio_mapped_lun_delete_argv(iqn, initiator, mapped_lun):
    return targetcli_argv("%s/acls/%s" % (lio_tpg_path(iqn), initiator), "delete", "mapped_lun=%d" % mapped_lun)


def lio_acl_auth_argv(iqn, initiator, userid, password):
    return targetcli_argv("%s/acls/%s" % (lio_tpg_path(iqn), initiator), "set", "auth", "userid=%s" % userid,
                          "password=%s" % password)


def lio_tpg_auth_argv(iqn, enabled):
    return targetcli_argv(lio_tpg_path(iqn), "set", "attribute", "authentication=%d" % (1 if enabled else 0))


def lio_saveconfig_argv():
    return ["targetcli", "saveconfig"]


def lio_sessions_argv():
    return ["targetcli", "sessions", "detail"]


# Where Debian's targetcli-fb installs its shell; tests point it at a script of their own.
TARGETCLI = "/usr/bin/targetcli"
# `targetcli CMD` runs one command per process, and each process pays for its imports and a walk of LIO's whole tree
# (8 s on a lab dom0 under TCG, most of an export's time). A module's commands run in one process of targetcli's own
# shell instead: its lock, its preferences, one walk, then each command as `targetcli CMD` runs it (the arguments
# joined by spaces), in order; the first that fails stops the rest, its words on stderr after "command N failed: ",
# exit code 1, as `targetcli CMD` exits on a failure.
LIO_BATCH_SCRIPT = """\
import fcntl, importlib.machinery, importlib.util, os, sys
try:
    from targetcli import targetcli_shell as cli
except ImportError:
    loader = importlib.machinery.SourceFileLoader("targetcli_shell", sys.argv[1])
    cli = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(cli)
shell = cli.TargetCLI(os.getenv("TARGETCLI_HOME", "~/.targetcli"))
lock = open(cli.lock_file, "w+")
fcntl.flock(lock, fcntl.LOCK_EX)
cli.UIRoot(shell, as_root=True).refresh()
for n, line in enumerate(sys.argv[2:]):
    try:
        shell.run_cmdline(line)
    except Exception as exc:
        sys.stderr.write("targetcli batch: command %d failed: %s\\n" % (n, exc))
        sys.exit(1)
"""
LIO_BATCH_FAILED_RE = re.compile(r"^targetcli batch: command (\d+) failed: ", re.M)


def script_interpreter(text):
    """The argv prefix a script's #! line names (["/usr/bin/python3"], ["/usr/bin/env", "python3"]), or None."""
    first = (text or "").split("\n", 1)[0]
    if not first.startswith("#!"):
        return None
    return first[2:].split() or None


def lio_batch_argv(interpreter, targetcli, commands):
    """One process running targetcli argvs (lio_*_argv) in order: LIO_BATCH_SCRIPT under targetcli's interpreter."""
    for argv in commands:
        if not argv or argv[0] != "targetcli":
            raise ValueError("not a targetcli command: %r" % (argv,))
    return list(interpreter) + ["-c", LIO_BATCH_SCRIPT, targetcli] + [" ".join(argv[1:]) for argv in commands]


def lio_batch_failure(stderr):
    """(index, targetcli's words) of the batch's command that failed (LIO_BATCH_SCRIPT's report on stderr), or
    (None, the last line of stderr) when the batch failed before any command (targetcli missing, LIO not loadable)."""
    text = stderr or ""
    found = LIO_BATCH_FAILED_RE.search(text)
    if found:
        return int(found.group(1)), text[found.end():].strip()
    lines = text.strip().splitlines()
    return None, (lines[-1] if lines else "")


# --------------------------------------------------------------------------- tgt


def parse_tgtadm_show(text):
    """``tgtadm --lld iscsi --mode target --op show``: [{tid, iqn, state, nexus: [{nexus, initiator,
    alias, addresses}], luns: [{lun, type, size_mb, backing_type, backing_store}], accounts, acls (initiator
    names), address_acls (the rest: initiator addresses, ALL)}]."""
    targets = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        match = re.match(r"^Target ([0-9]+): (\S+)$", raw)
        if match:
            targets.append({"tid": int(match.group(1)), "iqn": match.group(2), "state": None, "nexus": [],
                            "luns": [], "accounts": [], "acls": [], "address_acls": []})
            section = None
            continue
        if not targets or not line:
            continue
        target = targets[-1]
        if raw.startswith("    ") and not raw.startswith("     ") and line.endswith(":"):
            section = line[:-1]
            continue
        key, sep, value = line.partition(":")
        value = value.strip()
        if section == "System information" and key == "State":
            target["state"] = value
        elif section == "I_T nexus information":
            if key == "I_T nexus":
                target["nexus"].append({"nexus": int(value), "initiator": None, "alias": None, "addresses": []})
            elif key == "Initiator" and target["nexus"]:
                words = value.split()
                target["nexus"][-1]["initiator"] = words[0]
                if len(words) >= 3 and words[1] == "alias:":
                    target["nexus"][-1]["alias"] = words[2]
            elif key == "IP Address" and target["nexus"]:
                target["nexus"][-1]["addresses"].append(value)
        elif section == "LUN information":
            if key == "LUN":
                target["luns"].append({"lun": int(value), "type": None, "size_mb": None, "backing_type": None,
                                       "backing_store": None})
            elif not target["luns"]:
                continue
            elif key == "Type":
                target["luns"][-1]["type"] = value
            elif key == "Size":
                target["luns"][-1]["size_mb"] = int(value.split()[0])
            elif key == "Backing store type":
                target["luns"][-1]["backing_type"] = value
            elif key == "Backing store path":
                target["luns"][-1]["backing_store"] = None if value == "None" else value
        elif section == "Account information":
            target["accounts"].append(line)
        elif section == "ACL information":
            # one list for both kinds: initiator names (bind --initiator-name, what iscsi_target makes) and
            # addresses (bind --initiator-address), among them ALL, which tgt-admin binds to every target
            # of its config without an initiator-address (tgt.service's start, a restart)
            # (an initiator name is what conventions.is_iqn takes, the only kind iscsi_target binds)
            target["acls" if conv.is_iqn(line) else "address_acls"].append(line)
    return targets


def parse_tgtadm_accounts(text):
    """``tgtadm --lld iscsi --mode account --op show``: the user names."""
    users = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("Account list"):
            users.append(line.strip())
    return users


def tgt_target(targets, iqn):
    for target in targets:
        if target["iqn"] == iqn:
            return target
    return None


def tgtadm_argv(mode, op, *args):
    return ["tgtadm", "--lld", "iscsi", "--mode", mode, "--op", op] + [str(a) for a in args]


def tgt_show_argv():
    return tgtadm_argv("target", "show")


def tgt_accounts_argv():
    return tgtadm_argv("account", "show")


def tgt_target_new_argv(tid, iqn):
    return tgtadm_argv("target", "new", "--tid", int(tid), "--targetname", conv.check_iqn(iqn, "target IQN"))


def tgt_target_delete_argv(tid):
    return tgtadm_argv("target", "delete", "--tid", int(tid))


def tgt_lun_new_argv(tid, lun, dev):
    return tgtadm_argv("logicalunit", "new", "--tid", int(tid), "--lun", int(lun), "--backing-store", dev)


def tgt_lun_delete_argv(tid, lun):
    return tgtadm_argv("logicalunit", "delete", "--tid", int(tid), "--lun", int(lun))


def tgt_bind_argv(tid, initiator):
    return tgtadm_argv("target", "bind", "--tid", int(tid), "--initiator-name",
                       conv.check_iqn(initiator, "initiator IQN"))


def tgt_unbind_argv(tid, initiator):
    return tgtadm_argv("target", "unbind", "--tid", int(tid), "--initiator-name", initiator)


def tgt_account_new_argv(user, password):
    return tgtadm_argv("account", "new", "--user", user, "--password", password)


def tgt_account_delete_argv(user):
    return tgtadm_argv("account", "delete", "--user", user)


def tgt_account_bind_argv(tid, user):
    return tgtadm_argv("account", "bind", "--tid", int(tid), "--user", user)


def tgt_conf_path(iqn, conf_dir=None):
    """One tgt-admin config file per target the collection manages."""
    return "%s/sanless-%s.conf" % (conf_dir or TGT_CONF_DIR, conv.check_iqn(iqn, "target IQN").rpartition(":")[2] or "target")


def render_tgt_conf(iqn, luns, initiators, users):
    """The tgt-admin config that brings a target back at boot (tgt.service runs tgt-admin -e).

    luns: {lun: backing device}; initiators: IQNs allowed; users: {CHAP user: secret}. The file
    holds secrets: written 0600.
    """
    lines = ["# Managed by sanless.xen (iscsi_target): edits are overwritten.", "<target %s>" % iqn]
    for lun in sorted(luns):
        lines += ["\t<backing-store %s>" % luns[lun], "\t\tlun %d" % lun, "\t</backing-store>"]
    for initiator in sorted(initiators):
        lines.append("\tinitiator-name %s" % initiator)
    for user in sorted(users):
        lines.append("\tincominguser %s %s" % (user, users[user]))
    lines.append("</target>")
    return "\n".join(lines) + "\n"


def parse_tgt_conf(text):
    """render_tgt_conf's file back: {iqn, luns, initiators, users} (users with secrets: compare
    only), or None for an empty file."""
    conf = None
    backing = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "<target" and len(words) == 2:
            conf = {"iqn": words[1].rstrip(">"), "luns": {}, "initiators": [], "users": {}}
        elif conf is None:
            continue
        elif words[0] == "<backing-store" and len(words) == 2:
            backing = words[1].rstrip(">")
        elif words[0] == "lun" and backing and len(words) == 2:
            conf["luns"][int(words[1])] = backing
        elif words[0] == "</backing-store>":
            backing = None
        elif words[0] == "backing-store" and len(words) == 2:
            conf["luns"][len(conf["luns"]) + 1] = words[1]
        elif words[0] == "initiator-name" and len(words) == 2:
            conf["initiators"].append(words[1])
        elif words[0] == "incominguser" and len(words) == 3:
            conf["users"][words[1]] = words[2]
    return conf


# --------------------------------------------------------------------------- open-iscsi


def classify_iscsiadm(rc):
    """(kind, explanation) of an iscsiadm exit code: kind is ok, no_session, not_found,
    auth_failed, session_exists, timeout, login_refused or error."""
    if rc == 0:
        return "ok", "success"
    return _ISCSI_ERRORS.get(rc, ("error", "iscsiadm failed with rc %s" % rc))


def _portal(text):
    """'10.77.0.11:3260,1' or '[fe80::1]:3260,1' -> (address, port, tpgt)."""
    hostport, _sep, tpgt = text.partition(",")
    address, _sep, port = hostport.rpartition(":")
    if not address or not port.isdigit():
        raise IscsiParseError("cannot read portal %r" % text)
    return address.strip("[]"), int(port), int(tpgt) if tpgt.isdigit() else None


def parse_targets(text):
    """``iscsiadm -m node`` or ``-m discovery -t sendtargets``: [{address, port, tpgt, target}]."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or line.startswith("iscsiadm:"):
            continue
        address, port, tpgt = _portal(words[0])
        found.append({"address": address, "port": port, "tpgt": tpgt, "target": words[1]})
    return found


_SESSION_RE = re.compile(r"^(?P<transport>\S+): \[(?P<sid>[0-9]+)\] (?P<portal>\S+) (?P<target>\S+)")


def parse_sessions(text):
    """``iscsiadm -m session``: [{sid, transport, address, port, tpgt, target}]."""
    sessions = []
    for line in text.splitlines():
        match = _SESSION_RE.match(line)
        if match:
            address, port, tpgt = _portal(match.group("portal"))
            sessions.append({"sid": int(match.group("sid")), "transport": match.group("transport"),
                             "address": address, "port": port, "tpgt": tpgt, "target": match.group("target")})
    return sessions


def parse_session_details(text):
    """``iscsiadm -m session -P 3``: [{target, address, port, tpgt, sid, initiator, local_address,
    connection_state, session_state, chap_username, host, recovery_timeout, disks: [{lun, disk, state}], luns}].
    recovery_timeout is the session's replacement timeout in seconds (its sysfs recovery_tmo).
    Passwords (printed masked) are left out."""
    sessions = []
    current = None
    lun = None
    for raw in text.splitlines():
        line = raw.strip()
        if raw.startswith("Target: "):
            current = {"target": raw.split()[1], "address": None, "port": None, "tpgt": None, "sid": None,
                       "initiator": None, "local_address": None, "connection_state": None,
                       "session_state": None, "chap_username": None, "host": None, "recovery_timeout": None,
                       "luns": [], "disks": []}
            sessions.append(current)
            continue
        if current is None:
            continue
        key, _sep, value = line.partition(": ")
        if key == "Current Portal":
            current["address"], current["port"], current["tpgt"] = _portal(value)
        elif key == "SID":
            current["sid"] = int(value)
        elif key == "Iface Initiatorname":
            current["initiator"] = value
        elif key == "Iface IPaddress":
            current["local_address"] = value
        elif key == "iSCSI Connection State":
            current["connection_state"] = value
        elif key == "iSCSI Session State":
            current["session_state"] = value
        elif key == "Recovery Timeout":
            current["recovery_timeout"] = int(value)
        elif key == "username":
            current["chap_username"] = None if value == "<empty>" else value
        elif line.startswith("Host Number:"):
            current["host"] = int(line.split()[2])
        else:
            match = re.match(r"^scsi[0-9]+ Channel [0-9]+ Id [0-9]+ Lun: ([0-9]+)$", line)
            if match:
                lun = int(match.group(1))
                current["luns"].append(lun)
                continue
            match = re.match(r"^Attached scsi disk (\S+)\s+State: (\S+)$", line)
            if match and lun is not None:
                current["disks"].append({"lun": lun, "disk": match.group(1), "state": match.group(2)})
    return sessions


def parse_node_record(text):
    """``iscsiadm -m node -T T -p P``: {key: value}, '<empty>' as '', passwords left out."""
    record = {}
    for line in text.splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        key, _sep, value = line.partition(" = ")
        key = key.strip()
        if key.split(".")[-1].startswith("password"):
            continue
        record[key] = "" if value.strip() == "<empty>" else value.strip()
    return record


def parse_initiatorname(text):
    """The IQN of /etc/iscsi/initiatorname.iscsi (a line ``InitiatorName=iqn...``; '#' starts a
    comment), or None when it names none."""
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == "InitiatorName" and conv.is_iqn(value.strip()):
            return value.strip()
    return None


# The node record's setting of how long a lost session holds its I/O (a live session's is its sysfs recovery_tmo),
# and open-iscsi's default for it (iscsid.conf): what a session not set otherwise has.
REPLACEMENT_TIMEOUT = "node.session.timeo.replacement_timeout"
OPEN_ISCSI_REPLACEMENT_TIMEOUT = 120


def session_recovery_tmo_path(sid):
    """The sysfs file of a live session's replacement timeout (seconds; writable while it runs). The
    node record's node.session.timeo.replacement_timeout only reaches a session at its login."""
    if not isinstance(sid, int) or isinstance(sid, bool) or sid < 0:
        raise IscsiParseError("not a session id: %r" % (sid,))
    return "/sys/class/iscsi_session/session%d/recovery_tmo" % sid


def scsi_delete_path(disk):
    """The sysfs file that takes a SCSI disk (sda) off this host when 1 is written to it: one LUN of
    a session that goes on with its other LUNs."""
    if not re.match(r"^sd[a-z]{1,4}\Z", disk or ""):
        raise IscsiParseError("not a SCSI disk name: %r" % (disk,))
    return "/sys/block/%s/device/delete" % disk


def blockdev_flushbufs_argv(disk):
    """Write a SCSI disk's dirty buffers out before it leaves this host."""
    scsi_delete_path(disk)  # the same check of the name
    return ["blockdev", "--flushbufs", "/dev/" + disk]


def by_path(address, port, target, lun):
    """The udev by-path link of an iSCSI LUN (stable across logins, unlike sdX)."""
    host = "[%s]" % address if ":" in address else address
    return "/dev/disk/by-path/ip-%s:%d-iscsi-%s-lun-%d" % (host, int(port), target, int(lun))


def _node_argv(target, address, port):
    return ["iscsiadm", "-m", "node", "-T", conv.check_iqn(target, "target IQN"), "-p",
            "%s:%d" % (conv.check_address(address, "portal address"), int(port))]


def iscsiadm_session_argv(details=False):
    return ["iscsiadm", "-m", "session"] + (["-P", "3"] if details else [])


def iscsiadm_discovery_argv(address, port):
    return ["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p",
            "%s:%d" % (conv.check_address(address, "portal address"), int(port))]


def iscsiadm_node_argv(target, address, port):
    return _node_argv(target, address, port)


def iscsiadm_login_argv(target, address, port):
    return _node_argv(target, address, port) + ["--login"]


def iscsiadm_logout_argv(target, address, port):
    return _node_argv(target, address, port) + ["--logout"]


def iscsiadm_rescan_argv(target, address, port):
    """Rescan a logged-in session for LUNs mapped to it after the login."""
    return _node_argv(target, address, port) + ["--rescan"]


def iscsiadm_update_argv(target, address, port, name, value):
    return _node_argv(target, address, port) + ["--op", "update", "-n", name, "-v", value]


def iscsiadm_delete_argv(target, address, port):
    return _node_argv(target, address, port) + ["--op", "delete"]


class Lio(RunnerTool):
    """The LIO target through a runner.CommandRunner: its state and its sessions (read-only)."""

    def state(self):
        """(state, chap secrets, saved). What exists is what the kernel has (its configfs tree, read as
        ``targetcli ls`` would show it, without running targetcli: read_lio_configfs). While saveconfig.json describes
        the same (lio_same_config), its state is returned: it adds the secrets to compare with. Without that file, or
        when it is stale (a failed restore at boot), the kernel's state with no known secret (CHAP is set again) and
        saved False (the caller saves anew). LIO not loaded is an empty state (targetcli loads it when it changes)."""
        live = parse_lio_configfs(read_lio_configfs())
        text = read_text(LIO_SAVECONFIG)
        if text is not None:
            saved = parse_lio_saveconfig(text)
            if lio_same_config(saved, live):
                return saved, lio_chap_secrets(text), True
        return live, {}, False

    def sessions(self):
        return parse_targetcli_sessions(self.runner.stdout(lio_sessions_argv()))

    def batch_argv(self, commands):
        """lio_batch_argv under the interpreter of TARGETCLI's #! line."""
        interpreter = script_interpreter(read_text(TARGETCLI))
        if interpreter is None:
            raise IscsiParseError("%s is missing or not a script: is targetcli-fb installed?" % TARGETCLI)
        return lio_batch_argv(interpreter, TARGETCLI, commands)


class Tgt(RunnerTool):
    """tgtd through a runner.CommandRunner (read-only calls)."""

    def targets(self):
        return parse_tgtadm_show(self.runner.stdout(tgt_show_argv()))

    def accounts(self):
        return parse_tgtadm_accounts(self.runner.stdout(tgt_accounts_argv()))


class Iscsiadm(RunnerTool):
    """iscsiadm through a runner.CommandRunner (read-only calls run in check mode too)."""

    def sessions(self):
        """parse_session_details of every session; [] when there are none (rc 21)."""
        result = self.runner.run(iscsiadm_session_argv(details=True), ok_rcs=(0, ISCSI_ERR_NO_OBJS_FOUND))
        return parse_session_details(result.stdout) if result.rc == 0 else []

    def node(self, target, address, port):
        """The node record, or None when there is none (rc 21)."""
        result = self.runner.run(iscsiadm_node_argv(target, address, port), ok_rcs=(0, ISCSI_ERR_NO_OBJS_FOUND))
        return parse_node_record(result.stdout) if result.rc == 0 else None

    def discover(self, address, port):
        """sendtargets discovery (it writes node records: a change)."""
        result = self.runner.run(iscsiadm_discovery_argv(address, port), changes_state=True)
        return None if result.skipped else parse_targets(result.stdout)

    def remove_disk(self, disk):
        """Take one SCSI disk of a session off this host in the order Red Hat's storage guide gives: flush
        its buffers (``blockdev --flushbufs``), then delete it (``/sys/block/sdX/device/delete``, where sd
        sends SYNCHRONIZE CACHE over the session). False when it is gone already. A change: skipped in check
        mode. OSError when the kernel refuses the delete."""
        delete = ROOT + scsi_delete_path(disk)
        if not os.path.isdir(os.path.dirname(delete)):
            return False
        result = self.runner.run(blockdev_flushbufs_argv(disk), changes_state=True)
        if not result.skipped:
            with open(delete, "w") as handle:
                handle.write("1")
        return True

    def log_out(self, session, ok_rcs=(0,)):
        """Log out of a session (parse_session_details), its disks taken off this host first while it is
        logged in: a logout that removed the disks itself hung lab dom0s (Debian 12's 6.1 kernel) right after
        sd's "Synchronizing SCSI cache" (open-iscsi issue 90 and CoreOS bug 2357 report the same). Returns
        the disks taken off, as the session lists them ({lun, disk, state})."""
        removed = []
        if session.get("connection_state") == "LOGGED IN":
            removed = [d for d in session.get("disks", []) if self.remove_disk(d["disk"])]
        self.runner.run(iscsiadm_logout_argv(session["target"], session["address"], session["port"]),
                        changes_state=True, ok_rcs=ok_rcs)
        return removed


# --------------------------------------------------------------------------- the shared path

# Prefix of every dom0 path the export modules write and the storage facts read under /dev/sanless
# (ensure_shared_path, diskexport.shared_paths, a LUN's sysfs delete): tests point it at a temporary folder.
ROOT = ""


def ensure_shared_path(owner, vg, lv, match, device, check_mode, state="present"):
    """Make /dev/sanless/<owner>/<vg>/<lv> point to device now (a symlink) and at every boot (a
    udev rule), or remove both. Returns the actions done (or that would be done in check mode)."""
    link = ROOT + conv.shared_disk_path(owner, vg, lv)
    rule_path = ROOT + conv.udev_rule_path(owner, vg, lv)
    actions = []
    if state == "absent":
        if os.path.lexists(link):
            actions.append("remove link %s" % link)
            if not check_mode:
                os.unlink(link)
        if os.path.exists(rule_path):
            actions.append("remove %s" % rule_path)
            if not check_mode:
                os.unlink(rule_path)
        return actions
    rule = conv.shared_disk_rule(owner, vg, lv, match)
    if read_text(rule_path) != rule:
        actions.append("write %s" % rule_path)
        if not check_mode:
            write_file_atomic(rule_path, rule, 0o644)
    current = os.readlink(link) if os.path.islink(link) else None
    # udev's rule rewrites the link on every event of the device (a writer closing it is one), as a
    # relative link to the node itself: a link that leads to the same node is the same path
    same_node = current is not None and os.path.exists(link) and os.path.realpath(link) == os.path.realpath(device)
    if current != device and not same_node:
        actions.append("link %s -> %s" % (link, device))
        if not check_mode:
            if os.path.lexists(link):
                os.unlink(link)
            folder = os.path.dirname(link)
            if not os.path.isdir(folder):
                os.makedirs(folder, 0o755)
            os.symlink(device, link)
    return actions
