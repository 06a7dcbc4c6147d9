#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: iscsi_initiator
short_description: Log a dom0 in to another dom0's iSCSI target and return the LUN's stable path
version_added: 0.1.0
description:
  - Discovers O(target) at O(portal) (C(iscsiadm -m discovery -t sendtargets)) when the dom0 has no node record of it,
    sets CHAP and the start-up mode on the node record, logs in, and waits for the LUN's block device.
  - Returns the stable C(/dev/disk/by-path/ip-<portal>:<port>-iscsi-<target>-lun-<lun>) path, not C(/dev/sdX),
    which changes between logins.
  - With O(owner), O(vg) and O(lv), also makes C(/dev/sanless/<owner>/<vg>/<lv>) point to it, now (a symlink) and
    at every boot (a udev rule in C(/etc/udev/rules.d)), the path the owner has to its own LV, so one guest config
    works on every dom0.
  - V(absent) takes each disk of the session off this host (C(blockdev --flushbufs), then
    C(/sys/block/sdX/device/delete), while the session is logged in), logs out, deletes the node record and removes
    the shared path. A logout that left the disks to the kernel hung lab dom0s. With O(lun), while the session carries
    other LUNs of the target (other disks the same dom0 exports to this one), only that LUN's disk is taken off this
    host (C(/sys/block/sdX/device/delete)) and the session stays.
  - A LUN mapped to this initiator after its login is found by a rescan of the session (C(iscsiadm --rescan)).
  - A wrong or missing CHAP secret fails with iscsiadm's authorization error (rc 24), nothing else changed but the
    node record.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
  - sanless.xen.disk_export.IMPORT
options:
  target:
    description: Target IQN, for example V(iqn.2026-12.xen.sanless:hosta).
    type: str
    required: true
  portal:
    description: Address of the target's portal (the exporting dom0's storage address).
    type: str
    required: true
  port:
    description: TCP port of the portal.
    type: int
    default: 3260
  lun:
    description:
      - LUN to wait for and return. Defaults to the target's first LUN with a disk.
      - With O(state=absent), the LUN to take off this host; the session ends only when it carries no other LUN.
    type: int
  chap_user:
    description: CHAP user name. Without it, the node record's authentication is left as it is.
    type: str
  chap_password:
    description: CHAP secret. Never returned or logged.
    type: str
  update_password:
    description:
      - iscsiadm never shows a stored secret, so the module cannot compare it.
      - V(on_create) sets it when the node record is new or its CHAP user changes; V(always) sets it on every run
        (and so always reports a change).
    type: str
    choices: [always, on_create]
    default: on_create
  startup:
    description: V(automatic) logs in at boot (open-iscsi service), V(manual) does not.
    type: str
    choices: [automatic, manual]
    default: automatic
  state:
    description: V(present) is logged in, V(absent) is logged out with no node record.
    type: str
    choices: [present, absent]
    default: present
  timeout:
    description: Seconds to wait for the LUN's block device after the login.
    type: int
    default: 30
  replacement_timeout:
    description:
      - Seconds open-iscsi holds the I/O of a lost session before it fails it (C(node.session.timeo.replacement_timeout),
        120 in open-iscsi's defaults). A leg of a mirror wants a short one, so that md in the guest fails the leg
        and the guest writes on, instead of stalling for two minutes when the leg's dom0 dies.
      - Set on the node record and, when the session runs, on the session itself
        (C(/sys/class/iscsi_session/session<sid>/recovery_tmo)).
      - It applies to the whole session with O(target), so to every LUN of that target on this host.
      - Not given, the record and the session keep theirs.
    type: int
notes:
  - Commands run with C(LANG=C), without a shell.
  - C(iscsiadm --op update) takes the CHAP secret as a command argument, visible in the process list while it runs.
  - Logging out does not check whether a domU still uses the disk; stop or move the domU first.
requirements:
  - open-iscsi (iscsiadm, iscsid).
seealso:
  - module: sanless.xen.iscsi_target
"""

EXAMPLES = r"""
- name: Import web01's disk from hosta on hostb, CHAP, logged in again at boot
  sanless.xen.iscsi_initiator:
    target: iqn.2026-12.xen.sanless:hosta
    portal: 10.77.0.11
    chap_user: hostb
    chap_password: "{{ vault_iscsi_secret }}"
    owner: hosta
    vg: xenvg
    lv: web01-disk
  register: imported

- name: Log out and forget the target
  sanless.xen.iscsi_initiator:
    target: iqn.2026-12.xen.sanless:hosta
    portal: 10.77.0.11
    state: absent
"""

RETURN = r"""
path:
  description: Stable by-path device of the LUN; V(null) when absent or not known yet in check mode.
  returned: success
  type: str
  sample: /dev/disk/by-path/ip-10.77.0.11:3260-iscsi-iqn.2026-12.xen.sanless:hosta-lun-0
device:
  description: The kernel's name for the disk now (changes between logins; use RV(path)).
  returned: success
  type: str
  sample: /dev/sda
shared_path:
  description: C(/dev/sanless/<owner>/<vg>/<lv>), when O(owner), O(vg) and O(lv) are given.
  returned: success
  type: str
  sample: /dev/sanless/hosta/xenvg/web01-disk
session:
  description: The session after the change (from C(iscsiadm -m session -P 3)), without secrets; V(null) when none.
  returned: success
  type: dict
  contains:
    target:
      description: Target IQN.
      type: str
      sample: iqn.2026-12.xen.sanless:hosta
    address:
      description: Portal address.
      type: str
      sample: 10.77.0.11
    port:
      description: Portal port.
      type: int
      sample: 3260
    sid:
      description: Session id.
      type: int
      sample: 3
    session_state:
      description: iSCSI session state.
      type: str
      sample: LOGGED_IN
    recovery_timeout:
      description: The session's replacement timeout in seconds (see O(replacement_timeout)).
      type: int
      sample: 120
    disks:
      description: Attached disks, one per LUN with a disk.
      type: list
      elements: dict
      sample: [{"lun": 0, "disk": "sda", "state": "running"}]
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["discover 10.77.0.11:3260", "set node.startup=automatic", "log in"]
cmds:
  description: The commands that ran, CHAP secrets masked.
  returned: success
  type: list
  elements: list
  sample: []
would_run:
  description: In check mode, the commands that would have changed the dom0, CHAP secrets masked.
  returned: success
  type: list
  elements: list
  sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import diskexport
from ansible_collections.sanless.xen.plugins.module_utils import iscsi
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, wait_until


def find_session(sessions, target, address, port):
    for session in sessions:
        if session["target"] == target and session["address"] == address and session["port"] == port:
            return session
    return None


def node_updates(p, record, new_record):
    """[(name, value, shown)] to set on the node record; shown masks the secret."""
    updates = []
    if record.get("node.startup") != p["startup"]:
        updates.append(("node.startup", p["startup"], p["startup"]))
    if p["chap_user"]:
        user_changed = record.get("node.session.auth.username") != p["chap_user"]
        if record.get("node.session.auth.authmethod") != "CHAP":
            updates.append(("node.session.auth.authmethod", "CHAP", "CHAP"))
        if user_changed:
            updates.append(("node.session.auth.username", p["chap_user"], p["chap_user"]))
        if new_record or user_changed or p["update_password"] == "always":
            updates.append(("node.session.auth.password", p["chap_password"], iscsi.MASK))
    timeout = p.get("replacement_timeout")
    if timeout is not None and record.get(iscsi.REPLACEMENT_TIMEOUT) != str(timeout):
        updates.append((iscsi.REPLACEMENT_TIMEOUT, str(timeout), str(timeout)))
    return updates


def _disk_of(session, lun):
    for disk in (session or {}).get("disks", []):
        if lun is None or disk["lun"] == lun:
            return disk
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            target=dict(type="str", required=True),
            portal=dict(type="str", required=True),
            port=dict(type="int", default=conv.ISCSI_PORT),
            lun=dict(type="int"),
            chap_user=dict(type="str"),
            chap_password=dict(type="str", no_log=True),
            update_password=dict(type="str", default="on_create", choices=["always", "on_create"], no_log=False),
            startup=dict(type="str", default="automatic", choices=["automatic", "manual"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            timeout=dict(type="int", default=30),
            replacement_timeout=dict(type="int"),
            **diskexport.SHARED_PATH_OPTIONS
        ),
        required_together=[("chap_user", "chap_password"), diskexport.SHARED_PATH_TOGETHER],
        supports_check_mode=True,
    )
    p = module.params
    try:
        conv.check_iqn(p["target"], "target IQN")
        conv.check_address(p["portal"], "portal address")
        if not 0 < p["port"] < 65536:
            raise ValueError("invalid port %d" % p["port"])
        if p["replacement_timeout"] is not None and not 1 <= p["replacement_timeout"] <= 86400:
            raise ValueError("replacement_timeout %d out of range 1..86400 s" % p["replacement_timeout"])
        if p["chap_user"] is not None:
            conv.check_chap_user(p["chap_user"])
            conv.check_chap_secret(p["chap_password"])
        shared = diskexport.shared_path(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    secrets = [p["chap_password"]]
    runner = CommandRunner(module)
    adm = iscsi.Iscsiadm(runner)
    target, address, port = p["target"], p["portal"], p["port"]
    actions = []

    def fail(msg, err=None):
        kwargs = {"msg": iscsi.scrub(msg, secrets), "cmds": iscsi.scrub(runner.ran, secrets), "actions": actions}
        if err is not None:
            kwargs.update(iscsi.scrub_error(err, secrets).to_fail_kwargs(iscsi.scrub(msg, secrets)))
        module.fail_json(**kwargs)

    def change(description, argv, ok_rcs=(0,)):
        actions.append(description)
        try:
            return runner.run(argv, changes_state=True, ok_rcs=ok_rcs)
        except CommandError as exc:
            kind, why = iscsi.classify_iscsiadm(exc.rc)
            fail("%s at %s:%d: %s%s" % (description, address, port, why, "" if kind != "error" else ": " + exc.msg), exc)

    try:
        sessions = adm.sessions()
        session = find_session(sessions, target, address, port)
        listed = runner.run(["iscsiadm", "-m", "node"], ok_rcs=(0, iscsi.ISCSI_ERR_NO_OBJS_FOUND))
        known = any(n["target"] == target and n["address"] == address and n["port"] == port
                    for n in iscsi.parse_targets(listed.stdout if listed.rc == 0 else ""))
        record = adm.node(target, address, port) if known else None
    except CommandError as exc:
        fail(exc.msg, exc)
    except iscsi.IscsiParseError as exc:
        fail(str(exc))
    before = {"state": "logged in" if session else ("known" if record is not None else "absent")}
    if record is not None:
        before.update(startup=record.get("node.startup"), chap_user=record.get("node.session.auth.username") or None)
        if p["replacement_timeout"] is not None:
            before["replacement_timeout"] = record.get(iscsi.REPLACEMENT_TIMEOUT)

    path = device = None
    others = [d for d in (session or {}).get("disks", []) if p["lun"] is not None and d["lun"] != p["lun"]]
    if p["state"] == "absent" and others:
        # the session goes on for the target's other LUNs: only this one leaves this host
        disk = _disk_of(session, p["lun"])
        if disk is not None:
            actions.append("remove LUN %d (%s)" % (p["lun"], disk["disk"]))
            try:
                adm.remove_disk(disk["disk"])
            except CommandError as exc:
                fail("cannot flush LUN %d (%s): %s" % (p["lun"], disk["disk"], exc.msg), exc)
            except (IOError, OSError, iscsi.IscsiParseError) as exc:
                fail("cannot take LUN %d (%s) off this host: %s" % (p["lun"], disk["disk"], exc))
        if shared:
            actions += iscsi.ensure_shared_path(p["owner"], p["vg"], p["lv"], {}, None, module.check_mode, "absent")
        after = {"state": "logged in", "without_lun": p["lun"]}
    elif p["state"] == "absent":
        if session is not None:
            try:
                actions.extend("remove LUN %d (%s)" % (d["lun"], d["disk"]) for d in adm.log_out(session))
                actions.append("log out")
            except CommandError as exc:
                if exc.cmd[:1] == ["blockdev"]:
                    fail("cannot flush the session's disks before the logout: %s" % exc.msg, exc)
                kind, why = iscsi.classify_iscsiadm(exc.rc)
                fail("log out at %s:%d: %s%s" % (address, port, why, "" if kind != "error" else ": " + exc.msg), exc)
            except (IOError, OSError, iscsi.IscsiParseError) as exc:
                fail("cannot take the session's disks off this host before the logout: %s" % exc)
            session = None
        if record is not None:
            change("delete node record", iscsi.iscsiadm_delete_argv(target, address, port))
        if shared:
            actions += iscsi.ensure_shared_path(p["owner"], p["vg"], p["lv"], {}, None, module.check_mode, "absent")
        after = {"state": "absent"}
    else:
        new_record = record is None
        if record is None:
            actions.append("discover %s:%d" % (address, port))
            try:
                found = adm.discover(address, port)
            except CommandError as exc:
                kind, why = iscsi.classify_iscsiadm(exc.rc)
                fail("discovery at %s:%d failed: %s" % (address, port, why), exc)
            if found is not None and not any(n["target"] == target for n in found):
                fail("portal %s:%d does not offer target %s (it offers: %s)"
                     % (address, port, target, ", ".join(sorted(n["target"] for n in found)) or "nothing"))
            record = {}
        for name, value, shown in node_updates(p, record, new_record):
            change("set %s=%s" % (name, shown), iscsi.iscsiadm_update_argv(target, address, port, name, value))
        if session is None:
            change("log in", iscsi.iscsiadm_login_argv(target, address, port), ok_rcs=(0, iscsi.ISCSI_ERR_SESS_EXISTS))
        elif p["lun"] is not None and _disk_of(session, p["lun"]) is None:
            # mapped after the login (another disk exported to this dom0 later): the kernel sees it after a rescan
            change("rescan", iscsi.iscsiadm_rescan_argv(target, address, port))
        if session is not None and p["replacement_timeout"] is not None:
            live = session.get("recovery_timeout")
            if live != p["replacement_timeout"]:
                # the record reaches the session at its next login only: the running one is set too
                actions.append("set session %d recovery_tmo=%d" % (session["sid"], p["replacement_timeout"]))
                if not module.check_mode:
                    try:
                        with open(iscsi.ROOT + iscsi.session_recovery_tmo_path(session["sid"]), "w") as handle:
                            handle.write("%d\n" % p["replacement_timeout"])
                    except (IOError, OSError) as exc:
                        fail("cannot set the replacement timeout of session %d (was %s): %s"
                             % (session["sid"], live, exc))
        if not module.check_mode or session is not None:
            def appeared():
                nonlocal session, path, device
                try:
                    session = find_session(adm.sessions(), target, address, port)
                except CommandError as exc:
                    fail(exc.msg, exc)
                disk = _disk_of(session, p["lun"])
                if disk is None:
                    return False
                path = iscsi.by_path(address, port, target, disk["lun"])
                device = "/dev/%s" % disk["disk"]
                return diskexport.device_exists(path)
            if not wait_until(appeared, p["timeout"]):
                what = path or ("the disk of LUN %d" % p["lun"] if p["lun"] is not None else "a disk")
                fail("logged in to %s at %s:%d, but %s did not appear within %d s"
                     % (target, address, port, what, p["timeout"]))
        if shared:
            # udev names the by-path link after ID_PATH: the rule matches that key.
            link_to = path or iscsi.by_path(address, port, target, p["lun"] if p["lun"] is not None else 0)
            actions += iscsi.ensure_shared_path(p["owner"], p["vg"], p["lv"],
                                                {"ENV{ID_PATH}": os.path.basename(link_to)}, link_to, module.check_mode)
        after = {"state": "logged in", "startup": p["startup"],
                 "chap_user": p["chap_user"] or before.get("chap_user")}
        if p["replacement_timeout"] is not None:
            after["replacement_timeout"] = str(p["replacement_timeout"])

    result = {
        "changed": bool(actions),
        "path": path,
        "device": device,
        "session": session,
        "actions": actions,
        "cmds": iscsi.scrub(runner.ran, secrets),
        "would_run": iscsi.scrub(runner.would_run, secrets),
    }
    if shared:
        result["shared_path"] = shared
    if module._diff:
        header = "%s at %s:%d" % (target, address, port)
        result["diff"] = {"before_header": header, "after_header": header, "before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
