#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: iscsi_target
short_description: Export an LVM logical volume as a LUN of the dom0's iSCSI target (LIO or tgt)
version_added: 0.1.0
description:
  - Makes the logical volume O(vg)/O(lv) a LUN of the dom0's iSCSI target, or no longer one.
  - The target IQN is derived from the host name (C(iqn.2026-12.xen.sanless:<short host name>)) unless
    O(target) names one; every LV the dom0 exports is one more LUN of that target.
  - Access is per initiator IQN (O(initiators)), with one-way CHAP (O(chap_user), O(chap_password)).
  - With the LIO backend (default) the LV becomes the block backstore C(<vg>-<lv>) (each C(-) in a name doubled),
    new LUNs are mapped only to the listed initiators, and C(targetcli saveconfig) writes
    C(/etc/rtslib-fb-target/saveconfig.json), which the target service restores at boot.
  - With the tgt backend the module drives C(tgtadm) and writes C(/etc/tgt/conf.d/sanless-<host>.conf) (mode 0600, it
    holds the CHAP secret), which C(tgt.service) loads at boot.
  - Removal (O(state=absent)) refuses while an initiator is logged in to the LUN (LIO) or the target (tgt), unless
    O(force=true).
  - On the exporting dom0, C(/dev/sanless/<host>/<vg>/<lv>) is made to point to the LV itself (a symlink now, a udev
    rule for every boot), the path the importing dom0s give it with M(sanless.xen.iscsi_initiator).
  - Bad names, an LV that does not exist and a LUN number used by another backstore fail before any change.
  - A run that changes the dom0 holds its host lock (C(/run/sanless-xen/host.lock), the one live migration claims DRBD
    minors under) from reading the target to its last change, so that two runs do not pick the same free LUN or change
    the target at once; it waits up to 600 s for it.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
  - sanless.xen.disk_export
options:
  backend:
    description: V(lio) (the kernel target, C(targetcli)) or V(tgt) (the user-space target, C(tgtadm)).
    type: str
    choices: [lio, tgt]
    default: lio
  host:
    description:
      - The exporting dom0's name, from which the target IQN and the shared device path come.
      - Defaults to the dom0's own short host name.
    type: str
  target:
    description: Target IQN to use instead of the one derived from O(host).
    type: str
  lun:
    description:
      - LUN number for a new export. Defaults to the lowest free one (0 with LIO, 1 with tgt, whose LUN 0 is its
        controller).
      - A LUN number in use by another LV fails; an LV already exported under another number fails too.
    type: int
  initiators:
    description:
      - Initiator IQNs allowed to use the LUN (an ACL each). With LIO, initiators not listed lose their mapping to
        this LUN; with tgt, ACLs are per target and only added.
    type: list
    elements: str
    default: []
  chap_user:
    description: CHAP user name the initiators log in with. Without it, CHAP settings are left as they are.
    type: str
  chap_password:
    description: CHAP secret (12 to 128 characters). Never returned or logged.
    type: str
  portal:
    description:
      - IP address the target listens on (the storage network's address). The listen-on-all default portal
        (0.0.0.0) on the same port is removed. Without it, portals are left as they are.
      - LIO only; tgt listens where C(tgtd) was started (its C(--iscsi portal=) option), and the module warns.
    type: str
  port:
    description: TCP port of O(portal).
    type: int
    default: 3260
  state:
    description: V(present) exports the LV, V(absent) removes the export (the LV itself stays).
    type: str
    choices: [present, absent]
    default: present
  force:
    description: With O(state=absent), remove the export even while an initiator is logged in.
    type: bool
    default: false
  save:
    description: Save the configuration so that the export comes back after a reboot.
    type: bool
    default: true
notes:
  - Commands run with C(LANG=C), without a shell.
  - The LIO state is what the kernel has (its configfs tree, C(/sys/kernel/config/target), read without running
    C(targetcli)). C(/etc/rtslib-fb-target/saveconfig.json) (the module saves
    after every change) adds the CHAP user names and secrets while it describes the same; when it is missing or stale
    (for example after a failed restore at boot), CHAP is set again and the configuration saved anew.
  - With LIO, every command of a run goes to one process of targetcli's own shell (C(targetcli-fb)'s classes, loaded
    from C(/usr/bin/targetcli) under the interpreter its C(#!) line names), in order, each as C(targetcli CMD) would
    run it; the first that fails stops the rest and is named in the message. One C(targetcli) per command costs its
    start and a walk of the whole LIO tree each time (5 to 8 s on a slow dom0).
  - C(targetcli) and C(tgtadm) take the CHAP secret as a command argument, visible in the process list while they run.
requirements:
  - targetcli-fb (LIO) or tgt, on the exporting dom0.
seealso:
  - module: sanless.xen.iscsi_initiator
  - module: sanless.xen.lvm_volume
"""

EXAMPLES = r"""
- name: Export web01's disk from hosta to hostb over LIO, CHAP, on the storage address
  sanless.xen.iscsi_target:
    vg: xenvg
    lv: web01-disk
    initiators: [iqn.2026-11.lab.sanless:hostb:54df6118618]
    chap_user: hostb
    chap_password: "{{ vault_iscsi_secret }}"
    portal: 10.77.0.11

- name: The same with tgt
  sanless.xen.iscsi_target:
    vg: xenvg
    lv: web01-disk
    backend: tgt
    initiators: [iqn.2026-11.lab.sanless:hostb:54df6118618]
    chap_user: hostb
    chap_password: "{{ vault_iscsi_secret }}"

- name: Stop exporting it (refused while hostb is logged in, unless force)
  sanless.xen.iscsi_target:
    vg: xenvg
    lv: web01-disk
    state: absent
"""

RETURN = r"""
export:
  description: The export after the change (what it would be in check mode); V(null) when absent. No secrets.
  returned: success
  type: dict
  contains:
    backend:
      description: V(lio) or V(tgt).
      type: str
      sample: lio
    target:
      description: Target IQN.
      type: str
      sample: iqn.2026-12.xen.sanless:hosta
    lun:
      description: LUN number.
      type: int
      sample: 0
    device:
      description: The exported LV.
      type: str
      sample: /dev/xenvg/web01-disk
    backstore:
      description: LIO backstore name (V(null) with tgt).
      type: str
      sample: xenvg-web01--disk
    initiators:
      description: Initiators allowed to use the LUN.
      type: list
      elements: str
      sample: [iqn.2026-11.lab.sanless:hostb:54df6118618]
    chap_user:
      description: CHAP user name, if set by this task.
      type: str
      sample: hostb
    portals:
      description: Portals of the target as C(address:port).
      type: list
      elements: str
      sample: ["10.77.0.11:3260"]
    shared_path:
      description: The path every dom0 uses for this LV (C(/dev/sanless/<host>/<vg>/<lv>)).
      type: str
      sample: /dev/sanless/hosta/xenvg/web01-disk
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["create backstore xenvg-rec0", "create LUN 0", "save config"]
sessions:
  description: Initiators logged in to this LUN (LIO) or target (tgt) when the module ran.
  returned: success
  type: list
  elements: str
  sample: []
cmds:
  description: The commands that ran, CHAP secrets masked. With LIO, the one targetcli process (its script shortened
    here), its last arguments the targetcli command lines.
  returned: success
  type: list
  elements: list
  sample: [["/usr/bin/python3", "-c", "import fcntl, ...", "/usr/bin/targetcli", "saveconfig"]]
would_run:
  description: In check mode, the commands that would have changed the dom0, CHAP secrets masked.
  returned: success
  type: list
  elements: list
  sample: []
"""

import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import iscsi
from ansible_collections.sanless.xen.plugins.module_utils.files import read_text, write_file_atomic
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.lvm import Lvm, LvmParseError, check_name
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner


class Refused(ValueError):
    """The task cannot be done as asked; nothing has changed."""


def _free(used, start):
    number = start
    while number in used:
        number += 1
    return number


def _portals(tpg):
    return ["%s:%d" % (p["address"], p["port"]) for p in tpg["portals"]] if tpg else []


def plan_lio(p, state, secrets, sessions):
    """(steps, export_after, logged_in, before) for LIO. steps: [(description, argv)]; before: the
    export as it is (diff form) or None. Pure.

    state, secrets: Lio.state (parse_lio_saveconfig or parse_lio_configfs; lio_chap_secrets); sessions:
    parse_targetcli_sessions (only read for state=absent).
    """
    iqn, name, dev = p["target"], p["backstore"], p["device"]
    steps = []
    backstore = iscsi.lio_backstore(state, name)
    tpg = iscsi.lio_tpg(state, iqn)
    if iscsi.lio_target_exists(state, iqn) and tpg is None:
        raise Refused("target %s has no tpg%d" % (iqn, iscsi.LIO_TPG))
    lun_entry = None
    for entry in (tpg or {}).get("luns", []):
        if entry["backstore"] == name and entry["plugin"] == "block":
            lun_entry = entry
    in_use = sorted(set(s["initiator"] for s in sessions
                        if any(m["backstore"] == "block/%s" % name for m in s["mapped_luns"])))
    before = None
    if lun_entry is not None:
        mapping = [a for a in tpg["acls"] if any(m["tpg_lun"] == lun_entry["lun"] for m in a["mapped_luns"])]
        users = sorted(set(a["chap_userid"] for a in mapping if a["chap_userid"]))
        before = {"target": iqn, "lun": lun_entry["lun"], "initiators": sorted(a["initiator"] for a in mapping),
                  "chap_user": users[0] if len(users) == 1 else None, "portals": sorted(_portals(tpg))}
    if p["state"] == "absent":
        if lun_entry is not None:
            if in_use and not p["force"]:
                raise Refused("LUN %d of %s (%s) is in use by %s: log them out first, or force=true"
                              % (lun_entry["lun"], iqn, dev, ", ".join(in_use)))
            if len(tpg["luns"]) == 1:
                steps.append(("delete target %s (its last LUN)" % iqn, iscsi.lio_target_delete_argv(iqn)))
            else:
                steps.append(("delete LUN %d" % lun_entry["lun"], iscsi.lio_lun_delete_argv(iqn, lun_entry["lun"])))
        if backstore is not None:
            steps.append(("delete backstore %s" % name, iscsi.lio_backstore_delete_argv(name)))
        return steps, None, in_use, before

    if backstore is not None and backstore["dev"] != dev:
        raise Refused("backstore %s exists for %s, not %s" % (name, backstore["dev"], dev))
    for other in state["backstores"]:
        if other["dev"] == dev and other["name"] != name:
            raise Refused("%s is already a backstore under another name (%s/%s)" % (dev, other["plugin"], other["name"]))
    if backstore is None:
        steps.append(("create backstore %s" % name, iscsi.lio_backstore_create_argv(name, dev)))
    if tpg is None:
        steps.append(("create target %s" % iqn, iscsi.lio_target_create_argv(iqn)))
        # targetcli's default preference adds a listen-on-all portal to a new target.
        tpg = {"tag": iscsi.LIO_TPG, "authentication": False, "portals": [{"address": "0.0.0.0", "port": conv.ISCSI_PORT}],
               "luns": [], "acls": []}
    used = dict((entry["lun"], entry["backstore"]) for entry in tpg["luns"])
    if lun_entry is not None:
        lun = lun_entry["lun"]
        if p["lun"] is not None and p["lun"] != lun:
            raise Refused("%s is already LUN %d of %s, not LUN %d" % (dev, lun, iqn, p["lun"]))
    else:
        lun = p["lun"] if p["lun"] is not None else _free(used, 0)
        if lun in used:
            raise Refused("LUN %d of %s is occupied by backstore %s" % (lun, iqn, used[lun]))
        steps.append(("create LUN %d" % lun, iscsi.lio_lun_create_argv(iqn, name, lun)))
    portals = _portals(tpg)
    if p["portal"]:
        wanted = "%s:%d" % (p["portal"], p["port"])
        if wanted not in portals:
            # The wildcard portal holds the port on every address: it goes before the bind.
            if "0.0.0.0:%d" % p["port"] in portals:
                steps.append(("delete portal 0.0.0.0:%d" % p["port"],
                              iscsi.lio_portal_delete_argv(iqn, "0.0.0.0", p["port"])))
                portals.remove("0.0.0.0:%d" % p["port"])
            steps.append(("create portal %s" % wanted, iscsi.lio_portal_create_argv(iqn, p["portal"], p["port"])))
            portals.append(wanted)
    if p["chap_user"] and not tpg["authentication"]:
        steps.append(("require authentication", iscsi.lio_tpg_auth_argv(iqn, True)))
    acls = dict((acl["initiator"], acl) for acl in tpg["acls"])
    for initiator in p["initiators"]:
        acl = acls.get(initiator)
        if acl is None:
            steps.append(("create ACL %s" % initiator, iscsi.lio_acl_create_argv(iqn, initiator)))
            acl = {"initiator": initiator, "chap_userid": None, "mapped_luns": []}
        if not any(m["tpg_lun"] == lun for m in acl["mapped_luns"]):
            mapped = set(m["mapped_lun"] for m in acl["mapped_luns"])
            if lun in mapped:
                raise Refused("initiator %s already has a mapped LUN %d for another LUN" % (initiator, lun))
            steps.append(("map LUN %d to %s" % (lun, initiator), iscsi.lio_mapped_lun_create_argv(iqn, initiator, lun)))
        if p["chap_user"] and (acl["chap_userid"] != p["chap_user"]
                               or secrets.get((iqn, iscsi.LIO_TPG, initiator)) != p["chap_password"]):
            steps.append(("set CHAP of %s" % initiator,
                          iscsi.lio_acl_auth_argv(iqn, initiator, p["chap_user"], p["chap_password"])))
    for initiator, acl in sorted(acls.items()):
        if initiator not in p["initiators"]:
            for mapped in acl["mapped_luns"]:
                if mapped["tpg_lun"] == lun:
                    steps.append(("unmap LUN %d from %s" % (lun, initiator),
                                  iscsi.lio_mapped_lun_delete_argv(iqn, initiator, mapped["mapped_lun"])))
    export = {"backend": "lio", "target": iqn, "lun": lun, "device": dev, "backstore": name,
              "initiators": sorted(p["initiators"]), "chap_user": p["chap_user"], "portals": sorted(portals),
              "shared_path": p["shared_path"]}
    return steps, export, in_use, before


def plan_tgt(p, targets, accounts, conf):
    """(steps, export_after, logged_in, conf_after, before) for tgt. conf: parse_tgt_conf of our file or None.
    conf_after is None when the file should not exist. Pure."""
    iqn, dev = p["target"], p["device"]
    steps = []
    target = iscsi.tgt_target(targets, iqn)
    for other in targets:
        if other["iqn"] != iqn and any(lun["backing_store"] == dev for lun in other["luns"]):
            raise Refused("%s is already exported by target %s" % (dev, other["iqn"]))
    lun_entry = None
    if target is not None:
        for entry in target["luns"]:
            if entry["backing_store"] == dev:
                lun_entry = entry
    in_use = sorted(set(n["initiator"] for n in target["nexus"])) if target else []
    users = dict((conf or {}).get("users", {}))
    before = None
    if lun_entry is not None:
        bound = list(target["accounts"])
        before = {"target": iqn, "lun": lun_entry["lun"], "initiators": sorted(target["acls"]),
                  "chap_user": bound[0] if len(bound) == 1 else None, "portals": []}
    if p["state"] == "absent":
        if lun_entry is not None:
            if in_use and not p["force"]:
                raise Refused("target %s (LUN %d, %s) has initiators logged in: %s; log them out first, or force=true"
                              % (iqn, lun_entry["lun"], dev, ", ".join(in_use)))
            disks = [entry for entry in target["luns"] if entry["backing_store"]]
            if len(disks) == 1:
                argv = iscsi.tgt_target_delete_argv(target["tid"])
                if p["force"]:
                    argv = argv[:-2] + ["--force"] + argv[-2:]
                steps.append(("delete target %s (its last LUN)" % iqn, argv))
            else:
                steps.append(("delete LUN %d" % lun_entry["lun"], iscsi.tgt_lun_delete_argv(target["tid"], lun_entry["lun"])))
        luns = dict((k, v) for k, v in ((conf or {}).get("luns") or {}).items() if v != dev)
        conf_after = dict(conf, luns=luns) if conf and luns else None
        return steps, None, in_use, conf_after, before

    if target is None:
        tid = _free(set(t["tid"] for t in targets), 1)
        steps.append(("create target %s (tid %d)" % (iqn, tid), iscsi.tgt_target_new_argv(tid, iqn)))
        target = {"tid": tid, "iqn": iqn, "nexus": [], "luns": [{"lun": 0, "backing_store": None}], "accounts": [],
                  "acls": []}
    tid = target["tid"]
    used = dict((entry["lun"], entry["backing_store"] or "the target's controller") for entry in target["luns"])
    if lun_entry is not None:
        lun = lun_entry["lun"]
        if p["lun"] is not None and p["lun"] != lun:
            raise Refused("%s is already LUN %d of %s, not LUN %d" % (dev, lun, iqn, p["lun"]))
    else:
        lun = p["lun"] if p["lun"] is not None else _free(used, 1)
        if lun in used:
            raise Refused("LUN %d of %s is occupied by %s" % (lun, iqn, used[lun]))
        steps.append(("create LUN %d" % lun, iscsi.tgt_lun_new_argv(tid, lun, dev)))
    acls = list(target["acls"])
    for initiator in p["initiators"]:
        if initiator not in acls:
            steps.append(("allow %s" % initiator, iscsi.tgt_bind_argv(tid, initiator)))
            acls.append(initiator)
    bound = list(target["accounts"])
    user = p["chap_user"]
    if user:
        if user in accounts and users.get(user) != p["chap_password"]:
            # tgtadm has no way to change a secret, nor to show one: delete and create the account.
            steps.append(("delete account %s (new secret)" % user, iscsi.tgt_account_delete_argv(user)))
            accounts = [a for a in accounts if a != user]
            bound = [a for a in bound if a != user]
        if user not in accounts:
            steps.append(("create account %s" % user, iscsi.tgt_account_new_argv(user, p["chap_password"])))
        if user not in bound:
            steps.append(("bind account %s" % user, iscsi.tgt_account_bind_argv(tid, user)))
            bound.append(user)
        users[user] = p["chap_password"]
    luns = dict((entry["lun"], entry["backing_store"]) for entry in target["luns"] if entry["backing_store"])
    luns[lun] = dev
    conf_after = {"iqn": iqn, "luns": luns, "initiators": sorted(acls),
                  "users": dict((u, users[u]) for u in bound if u in users)}
    export = {"backend": "tgt", "target": iqn, "lun": lun, "device": dev, "backstore": None,
              "initiators": sorted(p["initiators"]), "chap_user": user, "portals": [], "shared_path": p["shared_path"]}
    return steps, export, in_use, conf_after, before


def _validate(module, p):
    try:
        check_name(p["vg"], "VG name")
        check_name(p["lv"], "LV name")
        p["host"] = conv.host_label(p["host"] or socket.gethostname())
        p["target"] = conv.check_iqn(p["target"], "target IQN") if p["target"] else conv.target_iqn(p["host"])
        for initiator in p["initiators"]:
            conv.check_iqn(initiator, "initiator IQN")
        if p["chap_user"] is not None:
            conv.check_chap_user(p["chap_user"])
            conv.check_chap_secret(p["chap_password"])
        if p["portal"] is not None:
            conv.check_address(p["portal"], "portal address")
        if not 0 < p["port"] < 65536:
            raise ValueError("invalid port %d" % p["port"])
        if p["lun"] is not None and not 0 <= p["lun"] <= 16383:
            raise ValueError("invalid LUN %d: 0 to 16383" % p["lun"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    p["device"] = conv.lv_path(p["vg"], p["lv"])
    p["backstore"] = conv.export_name(p["vg"], p["lv"])
    p["shared_path"] = conv.shared_disk_path(p["host"], p["vg"], p["lv"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vg=dict(type="str", required=True),
            lv=dict(type="str", required=True),
            backend=dict(type="str", default="lio", choices=["lio", "tgt"]),
            host=dict(type="str"),
            target=dict(type="str"),
            lun=dict(type="int"),
            initiators=dict(type="list", elements="str", default=[]),
            chap_user=dict(type="str"),
            chap_password=dict(type="str", no_log=True),
            portal=dict(type="str"),
            port=dict(type="int", default=conv.ISCSI_PORT),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            force=dict(type="bool", default=False),
            save=dict(type="bool", default=True),
        ),
        required_together=[("chap_user", "chap_password")],
        supports_check_mode=True,
    )
    p = dict(module.params)
    _validate(module, p)
    if p["backend"] == "tgt" and p["portal"]:
        module.warn("portal is ignored with backend=tgt: tgtd listens where it was started (tgtd --iscsi portal=)")
    secrets = [p["chap_password"]]
    runner = CommandRunner(module)

    def fail(msg, err=None):
        kwargs = {"msg": iscsi.scrub(msg, secrets), "cmds": iscsi.scrub(runner.ran, secrets)}
        if err is not None:
            err = iscsi.scrub_error(err, secrets)
            kwargs.update(err.to_fail_kwargs(iscsi.scrub(msg, secrets)))
        module.fail_json(**kwargs)

    # The dom0's host lock from the read of the target's state to the last change (released when the module exits):
    # a free LUN picked by a run is not picked by another at the same time, and two runs do not change the target at
    # once. (The lab hang first blamed on two changes at once was the importer's logout: iscsi.Iscsiadm.log_out.)
    try:
        with lm.host_lock_held(module.check_mode):
            _apply(module, p, runner, fail, secrets)
    except lm.MigrationError as exc:
        fail("the host lock: %s" % exc)


def _apply(module, p, runner, fail, secrets):
    """Read the target, plan, change, and exit_json (main holds the host lock)."""
    conf_path = iscsi.tgt_conf_path(p["target"])
    conf_before = conf_after = None
    try:
        if p["state"] == "present" and Lvm(runner).find(p["vg"], p["lv"]) is None:
            fail("LV %s/%s does not exist" % (p["vg"], p["lv"]))
        if p["backend"] == "lio":
            lio = iscsi.Lio(runner)
            state, chap, saved = lio.state()
            sessions = []
            if p["state"] == "absent" and iscsi.lio_backstore(state, p["backstore"]) is not None:
                sessions = lio.sessions()
            steps, export, in_use, before = plan_lio(p, state, chap, sessions)
            # Never saved, or saved but stale: save even without a change, or the export would not survive a reboot.
            if p["save"] and (steps or (not saved and export is not None)):
                steps.append(("save config", iscsi.lio_saveconfig_argv()))
        else:
            tgt = iscsi.Tgt(runner)
            targets, accounts = tgt.targets(), tgt.accounts()
            conf_text = read_text(conf_path)
            conf_before = iscsi.parse_tgt_conf(conf_text) if conf_text else None
            steps, export, in_use, conf_after, before = plan_tgt(p, targets, accounts, conf_before)
    except Refused as exc:
        fail(str(exc))
    except CommandError as exc:
        fail(exc.msg, exc)
    except (LvmParseError, iscsi.IscsiParseError, ValueError) as exc:
        fail(str(exc))

    actions = [step[0] for step in steps]
    if p["backend"] == "lio":
        if steps:
            # one targetcli process for every step (iscsi.LIO_BATCH_SCRIPT); a failure names its step
            try:
                runner.run(lio.batch_argv([step[1] for step in steps]), changes_state=True)
            except iscsi.IscsiParseError as exc:
                fail(str(exc))
            except CommandError as exc:
                failed_at, words = iscsi.lio_batch_failure(exc.stderr)
                if failed_at is not None and failed_at < len(steps):
                    fail("%s: `%s` failed: %s" % (steps[failed_at][0], " ".join(steps[failed_at][1]), words), exc)
                fail("targetcli (rc %s): %s" % (exc.rc, words), exc)
    else:
        for description, argv in steps:
            try:
                runner.run(argv, changes_state=True)
            except CommandError as exc:
                fail("%s: %s" % (description, exc.msg), exc)
    if export is not None:
        # The owner reaches its own LV by the path the importers use (the link stays after an export's removal:
        # the LV is still there, and another transport may export it).
        actions += iscsi.ensure_shared_path(p["host"], p["vg"], p["lv"], conv.local_lv_match(p["vg"], p["lv"]),
                                            p["device"], module.check_mode)
    if p["backend"] == "tgt" and p["save"]:
        new_text = iscsi.render_tgt_conf(conf_after["iqn"], conf_after["luns"], conf_after["initiators"],
                                         conf_after["users"]) if conf_after else None
        old_text = read_text(conf_path)
        if new_text != old_text:
            actions.append(("write %s" % conf_path) if new_text else ("remove %s" % conf_path))
            if not module.check_mode:
                if new_text:
                    write_file_atomic(conf_path, new_text, 0o600)
                else:
                    os.unlink(conf_path)

    result = {
        "changed": bool(actions),
        "export": export,
        "actions": actions,
        "sessions": in_use,
        "cmds": iscsi.scrub(runner.ran, secrets),
        "would_run": iscsi.scrub(runner.would_run, secrets),
    }
    if module._diff:
        after = None
        if export is not None:
            after = dict((k, export[k]) for k in ("target", "lun", "initiators", "chap_user", "portals"))
            if p["chap_user"] is None and before is not None:
                after["chap_user"] = before["chap_user"]
        header = "%s export of %s" % (p["backend"], p["device"])
        result["diff"] = {"before_header": header, "after_header": header,
                          "before": before or {"state": "absent"}, "after": after or {"state": "absent"}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
