#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: md_mirror
short_description: Read and repair an md RAID1 mirror inside a guest
version_added: 0.1.0
description:
  - Runs on the guest (a raid1 VM's two legs, one from each of two dom0s, mirrored by md in the guest), reached
    with C(delegate_to) over ssh. Reads the array from C(/proc/mdstat) and C(mdadm --detail) and reports its
    state, its legs, whether it is degraded and the resync or recovery progress.
  - "With O(leg), makes that leg a member (V(present)): a leg that failed is removed first; a leg whose md
    superblock belongs to this array is re-added (C(mdadm --re-add): with the write-intent bitmap, only what
    changed while it was away is copied), any other leg is added (a full copy). A leg that holds the superblock
    of another array is refused."
  - V(absent) fails (when still in sync) and removes the leg.
  - "V(created) creates the array over O(legs) when it does not exist (C(mdadm --create), RAID1, metadata 1.2, an
    internal write-intent bitmap, C(--name) O(name)): the first provisioning of a raid1 VM. An array that exists is
    no change (a rerun); a leg that holds an md superblock is refused (an array to assemble, never to create over)."
  - "V(replaced) hot-replaces O(leg) by O(replacement) (C(mdadm --add) then C(--replace --with)): O(leg) stays in
    the mirror until O(replacement) is in sync, then md marks it faulty and the module (or its next run)
    removes it. When md leaves O(replacement) flagged as a replacement beside the emptied slot (C(/proc/mdstat) shows
    the hole, C([U_]), though C(mdadm --detail) counts it in sync: Linux 6.1 under guest I/O, lab), the module (or its
    next run) fails, removes and re-adds it, which puts it in the slot after a bitmap recovery; only when, read in the
    same step, the other leg is in sync."
  - "Guard: a leg that is in sync is only failed or removed when, read in the same step, another leg is in sync
    too by both C(mdadm --detail) (V(active sync)) and C(/proc/mdstat) (V([UU])) and no resync runs; the last
    in-sync leg is never dropped."
  - "V(running) starts the array when md assembled it but holds it inactive, waiting for a leg that is gone (a raid1
    guest restarted by the failover on the legs that survived): C(mdadm --run) starts it degraded on the legs it
    has. An array that runs is no change; one that is not assembled at all is an error."
  - "An O(array) C(/dev/md/NAME) that is not linked is the one array whose members' superblocks name it NAME: udev
    links only an array that runs, and links it C(/dev/md/HOST:NAME) when md took it for another host's (its
    homehost is not the hostname md read when it assembled it at boot)."
  - Legs are compared by the device they lead to, so an LV path and the C(/dev/dm-N) that mdadm prints are one leg.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  array:
    description: The md array, as the guest names it (C(/dev/md0), C(/dev/md/data)).
    type: str
    required: true
  leg:
    description:
      - A leg of the array (C(/dev/xvdc)). Without it the module only reads the array.
      - Required with O(state=absent) and O(state=replaced).
    type: str
  legs:
    description: With O(state=created), the legs of the new array (two for a RAID1).
    type: list
    elements: str
  name:
    description: With O(state=created), the array's name (C(mdadm --name), 1 to 32 letters, digits, _ . -).
    type: str
  state:
    description:
      - V(present) makes O(leg) a member (it may still be rebuilding, see O(wait)).
      - V(created) creates the array over O(legs) unless it exists.
      - V(absent) takes it out of the array.
      - V(replaced) replaces O(leg) by O(replacement) while O(leg) stays in sync until the copy is done.
      - V(running) starts the array if md holds it inactive (degraded, on the legs it has).
    type: str
    choices: [present, absent, replaced, created, running]
    default: present
  replacement:
    description: The new leg of O(state=replaced).
    type: str
  method:
    description:
      - How a leg that is not a member joins with O(state=present).
      - V(auto) re-adds a leg of this array and adds it when md refuses the re-add (its events are too old for the
        bitmap) or when it holds no md superblock.
      - V(re_add) only re-adds (fails rather than copy everything); V(add) always adds (a full copy).
    type: str
    choices: [auto, re_add, add]
    default: auto
  wait:
    description:
      - Wait until no resync or recovery runs on the array and the leg is in sync (O(state=present)), or the
        replacement is done and the old leg removed (O(state=replaced)). Without O(leg), until no resync or recovery
        runs. O(state=absent) does not wait.
    type: bool
    default: false
  timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 3600
notes:
  - Commands run with C(LANG=C), without a shell.
  - The guest needs mdadm; the module reads C(/proc/mdstat) and needs root.
requirements:
  - mdadm (4.x) in the guest.
seealso:
  - module: sanless.xen.iscsi_initiator
  - module: sanless.xen.aoe_import
"""

EXAMPLES = r"""
- name: Read the mirror of web01's data disk
  sanless.xen.md_mirror:
    array: /dev/md/data
  delegate_to: web01
  register: mirror

- name: Re-add the leg from the partner dom0 once it is back, and wait for the bitmap resync
  sanless.xen.md_mirror:
    array: /dev/md/data
    leg: /dev/xvdc
    wait: true
    timeout: 1800
  delegate_to: web01

- name: Move the remote leg to a new dom0's leg while the guest runs
  sanless.xen.md_mirror:
    array: /dev/md/data
    leg: /dev/xvdc
    state: replaced
    replacement: /dev/xvdd
    wait: true
  delegate_to: web01

- name: Create the mirror of web07's data disk at its first provisioning (no change once it exists)
  sanless.xen.md_mirror:
    array: /dev/md/data
    state: created
    name: data
    legs: [/dev/xvdb, /dev/xvdc]
  delegate_to: web07

- name: After a failover, start web07's mirror on the one leg that survived (md holds it inactive)
  sanless.xen.md_mirror:
    array: /dev/md/data
    state: running
  delegate_to: web07

- name: Take a failed leg out (refused if it is the last one in sync)
  sanless.xen.md_mirror:
    array: /dev/md/data
    leg: /dev/xvdc
    state: absent
  delegate_to: web01
"""

RETURN = r"""
array:
  description: The array after the module ran (as predicted in check mode, where it is the array as read).
  returned: success
  type: dict
  contains:
    device:
      description: The array as mdadm names it.
      type: str
      sample: /dev/md127
    uuid:
      description: Array UUID.
      type: str
      sample: 3bcf7815:a5712de0:e16bfbc3:f1e44bde
    state:
      description: V(clean), V(degraded), V(resyncing), V(recovering), V(failed) or V(inactive) (assembled, not
        started, md waiting for a leg).
      type: str
      sample: clean
    degraded:
      description: Fewer legs in sync than the array has slots.
      type: bool
      sample: false
    in_sync:
      description: Legs in sync.
      type: int
      sample: 2
    raid_devices:
      description: Slots of the array.
      type: int
      sample: 2
    legs:
      description: The array's legs (device, status V(in_sync), V(rebuilding), V(spare) or V(faulty), slot).
      type: list
      elements: dict
      sample: [{"device": "/dev/xvdb", "status": "in_sync", "slot": 0}]
    sync:
      description: The resync or recovery running (action, percent, done_blocks, total_blocks, finish_min,
        speed_kib_s), or V(null).
      type: dict
      sample: {"action": "recovery", "percent": 18.1, "done_blocks": 11904, "total_blocks": 64512}
    bitmap:
      description: The array has a write-intent bitmap.
      type: bool
      sample: true
    map:
      description: The map of C(/proc/mdstat) (V(UU), V(U_)).
      type: str
      sample: UU
leg:
  description: The status of O(leg) after the run (V(in_sync), V(rebuilding), V(spare), V(faulty), V(absent)).
  returned: when O(leg) is given
  type: str
  sample: rebuilding
progress:
  description: With O(wait), the sync progress read while waiting (action and percent per reading).
  returned: success
  type: list
  elements: dict
  sample: [{"action": "recovery", "percent": 18.1}]
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
  sample: ["re-add /dev/xvdc"]
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: []
would_run:
  description: In check mode, the commands that would have changed the array.
  returned: success
  type: list
  elements: list
  sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import md
from ansible_collections.sanless.xen.plugins.module_utils.runner import (CommandError, CommandRunner, fail_from_error,
                                                                         wait_until)

POLL_SECONDS = 2


class Mirror(object):
    """One array in the guest, read afresh before each decision."""

    def __init__(self, module, runner, array):
        self.module = module
        self.tool = md.Mdadm(runner)
        self.runner = runner
        self.array = array
        self.actions = []
        self.detail = None
        self.stat = None

    def read(self):
        self.detail = self.tool.detail(self.array)
        if self.detail is None:
            self.module.fail_json(msg="md array %s does not exist" % self.array, cmds=self.runner.ran)
        self.stat = md.mdstat_entry(self.tool.mdstat(), self.array)
        return self.detail

    def health(self):
        return md.array_health(self.detail, self.stat)

    def status(self, leg):
        found = md.find_leg(self.detail, leg)
        return found["status"] if found else "absent"

    def run(self, verb, leg, what):
        self.actions.append("%s %s" % (what, leg))
        self.tool.manage(self.array, verb, leg)

    def drop(self, leg):
        """Fail (when in sync) and remove leg, after the guard on a fresh reading."""
        self.read()
        refusal = md.drop_refusal(self.detail, self.stat, leg)
        if refusal:
            self.module.fail_json(msg="refusing to remove %s from %s: %s" % (leg, self.array, refusal),
                                  array=self.health(), actions=self.actions, cmds=self.runner.ran)
        if self.status(leg) != "faulty":
            self.run("--fail", leg, "fail")
        self.run("--remove", leg, "remove")

    def join(self, leg, method):
        """Make leg a member: re-add a leg of this array, add any other (per method)."""
        if self.status(leg) == "faulty":
            self.run("--remove", leg, "remove faulty")
        superblock = self.tool.examine(leg)
        ours = superblock is not None and superblock["array_uuid"] == self.detail["uuid"]
        if superblock is not None and not ours:
            self.module.fail_json(msg="%s holds the md superblock of another array (%s, uuid %s): refusing to add it "
                                      "to %s; wipe it first (mdadm --zero-superblock) if it is really free"
                                      % (leg, superblock["name"], superblock["array_uuid"], self.array),
                                  actions=self.actions, cmds=self.runner.ran)
        if method == "re_add" and not ours:
            self.module.fail_json(msg="%s holds no superblock of %s: it cannot be re-added (method=re_add)"
                                      % (leg, self.array), actions=self.actions, cmds=self.runner.ran)
        if ours and method != "add":
            try:
                self.run("--re-add", leg, "re-add")
                return
            except CommandError as exc:
                if method == "re_add":
                    raise
                self.actions.append("re-add refused (%s): add" % exc.msg)
        self.run("--add", leg, "add")

    def replace(self, old, new):
        """Start the replacement of old by new, or finish one that md completed."""
        old_status, new_status = self.status(old), self.status(new)
        if old_status == "absent" and new_status == "in_sync":
            self.heal_replacement(new)  # a rerun after md left the new leg beside an emptied slot
            return
        if old_status == "faulty" and new_status == "in_sync":
            self.drop(old)
            return
        if old_status == "in_sync" and new_status in ("rebuilding", "spare") and self.health()["sync"]:
            return  # md copies old to new
        health = self.health()
        if old_status != "in_sync" or health["state"] != "clean":
            self.module.fail_json(msg="%s is %s and %s is %s: a hot replace wants a clean array ([UU]) and the old leg in "
                                      "sync; make the new leg present and the old one absent instead"
                                      % (self.array, health["state"], old, old_status),
                                  array=health, cmds=self.runner.ran)
        if new_status == "absent":
            self.join(new, "add")
        self.actions.append("replace %s with %s" % (old, new))
        self.tool.replace(self.array, old, new)

    def heal_replacement(self, leg):
        """leg left in the replacement slot of an emptied one (md.stuck_replacement): out and back in by its bitmap
        (fail, remove, re-add), which puts it in the slot. Only when the caller's reading, just made, shows every other
        leg in sync and in md's map: leg is then no copy md counts, and the one in sync stays. Returns whether it
        acted."""
        if not md.stuck_replacement(self.stat, leg):
            return False
        others = [other for other in self.health()["legs"] if not md.same_device(other["device"], leg)]
        in_map = (self.stat.get("map") or "").count("U")
        if not others or any(other["status"] != "in_sync" for other in others) or in_map != len(others):
            self.module.fail_json(msg="%s is left as a replacement beside an empty slot of %s, but the other legs are not "
                                      "all in sync (%s, map %s): refusing to take it out"
                                      % (leg, self.array, others, self.stat.get("map")),
                                  array=self.health(), actions=self.actions, cmds=self.runner.ran)
        self.run("--fail", leg, "fail the replacement left beside an empty slot")
        self.run("--remove", leg, "remove")
        self.run("--re-add", leg, "re-add")
        return True

    def wait(self, timeout, done):
        """Read until done() holds and no sync runs; the progress seen."""
        progress = []

        def settled():
            self.read()
            sync = self.health()["sync"]
            if sync:
                progress.append({"action": sync["action"], "percent": sync["percent"]})
            return not sync and done()

        if not wait_until(settled, timeout, poll=POLL_SECONDS):
            sync = self.health()["sync"]
            self.module.fail_json(msg="%s: not done within %d s (%s)" % (
                self.array, timeout, "%s at %s%%" % (sync["action"], sync["percent"]) if sync else "no sync runs"),
                array=self.health(), progress=progress, actions=self.actions, cmds=self.runner.ran)
        return progress


def resolve(module, mirror):
    """The array's path to run mdadm on: the one given when it exists; for /dev/md/NAME that does not, the /dev/mdN of
    the one array whose members' superblocks name it NAME (udev links only a running array, and links it
    /dev/md/HOST:NAME when md took it for another host's), else the one given (for state=created)."""
    path = mirror.array
    if os.path.exists(path) or not path.startswith("/dev/md/"):
        return path
    stat = mirror.tool.mdstat()
    examined = dict((member["device"], mirror.tool.examine("/dev/%s" % member["device"]))
                    for entry in stat["arrays"].values() for member in entry["members"])
    found = md.arrays_named(stat, examined, os.path.basename(path))
    if len(found) > 1:
        module.fail_json(msg="%s is not linked, and more than one array is named %s: %s; give the one meant"
                             % (path, os.path.basename(path), ", ".join(found)), cmds=mirror.runner.ran)
    return found[0] if found else path


def start(module, mirror):
    """Start the array when md holds it inactive (mdadm --run, degraded on the legs it has)."""
    detail = mirror.tool.detail(mirror.array)
    if detail is None:
        module.fail_json(msg="md array %s is not assembled in the guest (neither running nor inactive); assemble it "
                             "(mdadm --assemble) first" % mirror.array, cmds=mirror.runner.ran)
    if "inactive" not in detail["state"]:
        return
    legs = [leg["device"] for leg in detail["legs"] if leg["device"]]
    if not legs:
        module.fail_json(msg="md holds %s inactive without a leg: nothing to start it on" % mirror.array,
                         cmds=mirror.runner.ran)
    mirror.actions.append("run %s degraded on %s" % (mirror.array, " ".join(legs)))
    mirror.tool.start(mirror.array)


def create(module, mirror, legs, name):
    """Create the array over legs unless it exists; the actions taken."""
    detail = mirror.tool.detail(mirror.array)
    if detail is not None:
        strangers = [leg for leg in legs if md.find_leg(detail, leg) is None]
        if strangers:
            module.warn("%s exists without %s: left as it is (make a leg present to add it)"
                        % (mirror.array, ", ".join(strangers)))
        return
    for leg in legs:
        superblock = mirror.tool.examine(leg)
        if superblock is not None:
            module.fail_json(msg="%s holds the md superblock of array %s (uuid %s): refusing to create %s over it; "
                                 "assemble that array (mdadm --assemble) or wipe the leg (mdadm --zero-superblock) if "
                                 "it is really free" % (leg, superblock["name"], superblock["array_uuid"], mirror.array),
                             cmds=mirror.runner.ran)
    mirror.actions.append("create %s over %s" % (mirror.array, " ".join(legs)))
    mirror.tool.create(mirror.array, legs, name)


def predict(before, state, leg, replacement):
    """The leg statuses check mode expects after the run: {device: status}."""
    after = dict(before)
    if state == "present":
        if after.get(leg) not in ("in_sync", "rebuilding", "spare"):
            after[leg] = "rebuilding"
    elif state == "absent":
        after.pop(leg, None)
    elif state == "replaced":
        after.pop(leg, None)
        after[replacement] = "in_sync"
    return after


def leg_statuses(mirror, names):
    """{device: status} of the array's legs, each under the name the task gave it when it is one of names."""
    out = {}
    for entry in mirror.detail["legs"]:
        if entry["device"]:
            name = next((n for n in names if n and md.same_device(n, entry["device"])), entry["device"])
            out[name] = entry["status"]
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            array=dict(type="str", required=True),
            leg=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent", "replaced", "created", "running"]),
            legs=dict(type="list", elements="str"),
            name=dict(type="str"),
            replacement=dict(type="str"),
            method=dict(type="str", default="auto", choices=["auto", "re_add", "add"]),
            wait=dict(type="bool", default=False),
            timeout=dict(type="int", default=3600),
        ),
        required_if=[("state", "absent", ["leg"]), ("state", "replaced", ["leg", "replacement"]),
                     ("state", "created", ["legs", "name"])],
        supports_check_mode=True,
    )
    p = module.params
    try:
        for key, what in (("array", "array"), ("leg", "leg"), ("replacement", "replacement leg")):
            if p[key] is not None:
                md.check_device(p[key], what)
        for leg in p["legs"] or []:
            md.check_device(leg, "leg")
        if p["state"] == "created":
            md.create_argv(p["array"], p["legs"], p["name"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if p["state"] == "created" and (p["leg"] or len(p["legs"]) != 2 or md.same_device(p["legs"][0], p["legs"][1])):
        module.fail_json(msg="state=created wants two different legs in legs (and no leg), got %s" % (p["legs"],))
    if p["leg"] and p["state"] == "running":
        module.fail_json(msg="state=running starts the array on the legs md has: it takes no leg")
    if (p["legs"] or p["name"]) and p["state"] != "created":
        module.fail_json(msg="legs and name go with state=created")
    if p["replacement"] and p["state"] != "replaced":
        module.fail_json(msg="replacement goes with state=replaced")
    if p["replacement"] and p["leg"] and md.same_device(p["leg"], p["replacement"]):
        module.fail_json(msg="leg and replacement are one device: %s" % p["leg"])
    runner = CommandRunner(module)
    mirror = Mirror(module, runner, p["array"])
    leg, names = p["leg"], [p["leg"], p["replacement"]]
    progress = []
    try:
        # before create: an array that exists under another link is no change, not a leg to refuse
        mirror.array = resolve(module, mirror)
        created = False
        if p["state"] == "created":
            create(module, mirror, p["legs"], p["name"])
            created = bool(mirror.actions)
            names = list(p["legs"])
        before_state = None
        if p["state"] == "running":
            start(module, mirror)
            if mirror.actions:
                before_state = "inactive"
        if created and module.check_mode:
            before = {}
            mirror.detail = {"device": p["array"], "uuid": None, "state": ["clean"], "raid_devices": 2, "sync": None,
                             "bitmap": "Internal", "legs": [
                                 {"device": leg, "status": "in_sync", "raid_device": i} for i, leg in enumerate(p["legs"])]}
        else:
            mirror.read()
        before = {} if created else leg_statuses(mirror, names)
        if leg and p["state"] == "present" and mirror.status(leg) not in ("in_sync", "rebuilding", "spare"):
            mirror.join(leg, p["method"])
        elif leg and p["state"] == "absent" and mirror.status(leg) != "absent":
            mirror.drop(leg)
        elif p["state"] == "replaced":
            mirror.replace(leg, p["replacement"])
        if not module.check_mode:
            waits = p["wait"] and p["state"] != "absent"
            if mirror.actions and not waits:
                mirror.read()
            if waits and leg:
                if p["state"] == "present":
                    progress = mirror.wait(p["timeout"], lambda: mirror.status(leg) == "in_sync")
                elif p["state"] == "replaced":
                    progress = mirror.wait(p["timeout"], lambda: mirror.status(leg) in ("faulty", "absent")
                                           and mirror.status(p["replacement"]) == "in_sync")
                    if mirror.status(leg) == "faulty":
                        mirror.drop(leg)
                        mirror.read()
                    # md may leave the new leg beside the emptied slot: then it goes back in, and the wait goes on
                    if mirror.heal_replacement(p["replacement"]):
                        progress += mirror.wait(p["timeout"], lambda: not mirror.health()["degraded"])
            elif waits:
                progress = mirror.wait(p["timeout"], lambda: True)
    except CommandError as exc:
        fail_from_error(module, exc)
    except md.MdParseError as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)

    after = leg_statuses(mirror, names)
    if module.check_mode and mirror.actions and not created:
        after = predict(before, p["state"], leg, p["replacement"])
    result = {"changed": bool(mirror.actions), "array": mirror.health(), "progress": progress,
              "actions": mirror.actions, "cmds": runner.ran, "would_run": runner.would_run}
    if leg:
        result["leg"] = after.get(leg, "absent")
    if module._diff:
        result["diff"] = {"before_header": p["array"], "after_header": p["array"], "before": {"legs": before},
                          "after": {"legs": after}}
        if p["state"] == "running":
            # check mode: md would run it degraded on the legs it holds
            result["diff"]["before"]["state"] = before_state or result["array"]["state"]
            result["diff"]["after"]["state"] = "degraded" if module.check_mode and before_state else result["array"]["state"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
