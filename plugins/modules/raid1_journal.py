#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: raid1_journal
short_description: The journal and lock of a raid1 VM's repair
version_added: 0.1.0
description:
  - The repair of a raid1 VM (role C(sanless.xen.raid1), C(playbooks/raid1_repair.yml)) keeps its plan and the
    steps it has done in a journal on the dom0 where the guest runs, C(/var/lib/sanless-xen/raid1/VM.json); the
    journal is the VM's lock. A killed run leaves it open, and the next run resumes its plan instead of planning
    again; closing it moves it to C(/var/lib/sanless-xen/history/VM-raid1-ID.json).
  - V(owner), run on the controller (C(delegate_to=localhost)), returns the identity of this ansible-playbook run
    (controller, pid, start time) and, with O(holder), whether that other run still lives.
  - V(open) takes the lock for O(owner) - a journal of another run is not taken unless O(takeover) (the role sets it
    once V(owner) said that run is gone) and is returned as RV(held_by) - and starts the journal with O(plan) when
    there is none; an open one is resumed with its own plan.
  - V(step) records O(event) (with O(info)) in the open journal of O(owner); V(closed) records O(outcome) and
    moves the journal to the history.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  vm:
    description: The VM.
    type: str
  state:
    description: What to do (see the description).
    type: str
    choices: [owner, open, step, closed]
    required: true
  owner:
    description: The run's identity, from V(owner) (with V(open), V(step), V(closed)).
    type: dict
  holder:
    description: With V(owner), another run's identity (a journal's RV(held_by)) to check.
    type: dict
  run_id:
    description: With V(open), the id of a new journal (1 to 32 lower-case letters or digits).
    type: str
  plan:
    description: With V(open), the plan a new journal keeps.
    type: dict
  takeover:
    description: With V(open), take a journal another run holds (that run is gone).
    type: bool
    default: false
  event:
    description: With V(step), what was done.
    type: str
  info:
    description: With V(step), what goes with the event.
    type: dict
    default: {}
  outcome:
    description: With V(closed), how the repair ended.
    type: str
    default: finished
  state_dir:
    description: The collection's state folder.
    type: path
    default: /var/lib/sanless-xen
"""

EXAMPLES = r"""
- name: Who runs this repair
  sanless.xen.raid1_journal:
    state: owner
  delegate_to: localhost
  register: run

- name: Take web07's lock and keep the plan
  sanless.xen.raid1_journal:
    vm: web07
    state: open
    owner: "{{ run.owner }}"
    run_id: a1b2c3
    plan: {disks: []}
  register: journal

- name: Record a step
  sanless.xen.raid1_journal:
    vm: web07
    state: step
    owner: "{{ run.owner }}"
    event: attached
    info: {disk: data, vdev: xvdd}
"""

RETURN = r"""
owner:
  description: With V(owner), this run (controller, pid, pid_start), or V(null) outside ansible-playbook.
  returned: state=owner
  type: dict
  sample: {"controller": "ctl", "pid": 4242, "pid_start": 123456}
alive:
  description: With V(owner) and O(holder), whether that run still lives.
  returned: state=owner
  type: bool
  sample: false
journal:
  description: The journal after the run (plan, log of events, owner, id); V(null) when there is none.
  returned: state=open or step or closed
  type: dict
  sample: {"id": "a1b2c3", "plan": {}, "log": [{"event": "opened", "at": 1700000000.0}]}
held_by:
  description: With V(open), the run holding the journal when it was not taken, else V(null).
  returned: state=open
  type: dict
  sample: null
resumed:
  description: With V(open), an open journal was resumed (its plan is the one to follow).
  returned: state=open
  type: bool
  sample: false
done:
  description: The events recorded so far.
  returned: state=open or step or closed
  type: list
  elements: str
  sample: ["opened", "exported"]
history:
  description: With V(closed), where the journal went.
  returned: state=closed
  type: str
  sample: /var/lib/sanless-xen/history/web07-raid1-a1b2c3.json
"""

import copy

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import raid1


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vm=dict(type="str"),
            state=dict(type="str", required=True, choices=["owner", "open", "step", "closed"]),
            owner=dict(type="dict"),
            holder=dict(type="dict"),
            run_id=dict(type="str"),
            plan=dict(type="dict"),
            takeover=dict(type="bool", default=False),
            event=dict(type="str"),
            info=dict(type="dict", default={}),
            outcome=dict(type="str", default="finished"),
            state_dir=dict(type="path", default=conv.STATE_DIR),
        ),
        required_if=[("state", "open", ["vm", "owner", "run_id", "plan"]), ("state", "step", ["vm", "owner", "event"]),
                     ("state", "closed", ["vm", "owner"])],
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "owner":
        module.exit_json(changed=False, owner=raid1.controller_run(),
                         alive=raid1.run_alive(p["holder"]) if p["holder"] else False)
    try:
        conv.check_vm_name(p["vm"])
        if p["run_id"] is not None and not conv.MIGRATION_ID_RE.match(p["run_id"]):
            raise ValueError("invalid run_id %r: 1 to 32 lower-case letters or digits" % (p["run_id"],))
        journal = raid1.RepairJournal(p["vm"], p["state_dir"])
        data = journal.load()
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    before = copy.deepcopy(data)
    result = {"changed": False, "journal": data, "done": journal.events()}
    if p["state"] == "open":
        result.update(held_by=None, resumed=False)
        if data is not None and not raid1.same_run(data.get("owner"), p["owner"]) and not p["takeover"]:
            result["held_by"] = data.get("owner")
            module.exit_json(**result)
        if data is None:
            result["changed"] = True
            if not module.check_mode:
                journal.start(p["run_id"], p["owner"], p["plan"])
            else:
                journal.data = {"vm": p["vm"], "id": p["run_id"], "owner": p["owner"], "plan": p["plan"], "log": []}
        else:
            result["resumed"] = True
            if not raid1.same_run(data.get("owner"), p["owner"]):
                result["changed"] = True
                if not module.check_mode:
                    data["owner"] = p["owner"]
                    journal.mark("taken over", previous=before.get("owner"))
    else:
        if data is None:
            module.fail_json(msg="no open raid1 repair journal of %s at %s" % (p["vm"], journal.path))
        if not raid1.same_run(data.get("owner"), p["owner"]):
            module.fail_json(msg="the raid1 repair journal of %s is held by another run (%s)" % (p["vm"], data.get("owner")))
        result["changed"] = True
        if p["state"] == "step" and not module.check_mode:
            journal.mark(p["event"], **p["info"])
        elif p["state"] == "closed":
            result["history"] = conv.raid1_history_path(p["vm"], data["id"], p["state_dir"])
            if not module.check_mode:
                journal.close(p["outcome"])
    result.update(journal=journal.data, done=journal.events())
    if module._diff:
        result["diff"] = {"before_header": journal.path, "after_header": journal.path,
                          "before": {"done": [e["event"] for e in (before or {}).get("log", [])]},
                          "after": {"done": journal.events()}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
