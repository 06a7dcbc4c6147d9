#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: aoe_import
short_description: Find another dom0's AoE export and wait for its /dev/etherd device
version_added: 0.1.0
description:
  - Runs C(aoe-discover) unless C(aoe-stat) already lists shelf O(shelf), slot O(slot), then waits until the
    device is listed and C(/dev/etherd/e<shelf>.<slot>) exists, and reports it.
  - With O(owner), O(vg) and O(lv), also makes C(/dev/sanless/<owner>/<vg>/<lv>) point to it, now (a symlink) and at
    every boot (a udev rule), the path the owner has to its own LV.
  - V(absent) flushes the device from the AoE driver's list (C(aoe-flush)) and removes the shared path; it does not
    stop the exporter.
  - The aoe driver finds exports by itself at boot (it listens to vblade's announcements), so nothing else needs to
    persist.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
  - sanless.xen.disk_export.IMPORT
options:
  shelf:
    description: AoE shelf number of the export.
    type: int
    required: true
  slot:
    description: AoE slot number of the export.
    type: int
    required: true
  state:
    description: V(present) waits for the device, V(absent) flushes it.
    type: str
    choices: [present, absent]
    default: present
  timeout:
    description: Seconds to wait for the device after C(aoe-discover).
    type: int
    default: 30
notes:
  - Commands run with C(LANG=C), without a shell.
  - AoE learns that an exporter went away only by timeout; a stopped export stays listed as up for a while.
requirements:
  - aoetools and the aoe kernel module on the importing dom0.
seealso:
  - module: sanless.xen.aoe_export
"""

EXAMPLES = r"""
- name: Import hosta's e1.2 on hostb under the shared path
  sanless.xen.aoe_import:
    shelf: 1
    slot: 2
    owner: hosta
    vg: xenvg
    lv: web01-disk
"""

RETURN = r"""
device:
  description: The AoE block device; V(null) when absent or not found yet in check mode.
  returned: success
  type: str
  sample: /dev/etherd/e1.2
aoe:
  description: The device as C(aoe-stat) lists it; V(null) when not listed.
  returned: success
  type: dict
  contains:
    device:
      description: AoE name.
      type: str
      sample: e1.2
    shelf:
      description: Shelf.
      type: int
      sample: 1
    slot:
      description: Slot.
      type: int
      sample: 2
    size_gb:
      description: Size in decimal GB, as aoe-stat prints it.
      type: float
      sample: 0.016
    interfaces:
      description: Interfaces the device is reached on.
      type: list
      elements: str
      sample: [xenbr0]
    payload:
      description: Payload size in bytes.
      type: int
      sample: 1024
    state:
      description: State (V(up), V(down), V(down,closewait), ...).
      type: str
      sample: up
shared_path:
  description: C(/dev/sanless/<owner>/<vg>/<lv>), when O(owner), O(vg) and O(lv) are given.
  returned: success
  type: str
  sample: /dev/sanless/hosta/xenvg/web01-disk
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
  sample: ["aoe-discover"]
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: []
would_run:
  description: In check mode, the commands that would have changed the dom0.
  returned: success
  type: list
  elements: list
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import aoe
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import diskexport
from ansible_collections.sanless.xen.plugins.module_utils import iscsi
from ansible_collections.sanless.xen.plugins.module_utils.runner import (CommandError, CommandRunner, fail_from_error,
                                                                         wait_until)


def listed(devices, shelf, slot):
    for entry in devices:
        if (entry["shelf"], entry["slot"]) == (shelf, slot):
            return entry
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            shelf=dict(type="int", required=True),
            slot=dict(type="int", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            timeout=dict(type="int", default=30),
            **diskexport.SHARED_PATH_OPTIONS
        ),
        required_together=[diskexport.SHARED_PATH_TOGETHER],
        supports_check_mode=True,
    )
    p = module.params
    try:
        device = conv.aoe_device(p["shelf"], p["slot"])
        shared = diskexport.shared_path(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    runner = CommandRunner(module)
    tools = aoe.Aoe(runner)
    actions = []
    try:
        entry = listed(tools.stat(), p["shelf"], p["slot"])
        before = {"state": entry["state"] if entry else "absent"}
        if p["state"] == "absent":
            if entry is not None:
                actions.append("aoe-flush e%d.%d" % (p["shelf"], p["slot"]))
                runner.run(aoe.aoe_flush_argv(p["shelf"], p["slot"]), changes_state=True)
                entry = None
            if shared:
                actions += iscsi.ensure_shared_path(p["owner"], p["vg"], p["lv"], {}, None, module.check_mode,
                                                    "absent")
            device = None
        else:
            if entry is None or not diskexport.device_exists(device):
                actions.append("aoe-discover")
                runner.run(aoe.aoe_discover_argv(), changes_state=True)
            if not module.check_mode:
                seen = [entry]

                def up():
                    if seen[0] is None or seen[0]["state"] != "up" or not diskexport.device_exists(device):
                        seen[0] = listed(tools.stat(), p["shelf"], p["slot"])
                        return False
                    return True
                if not wait_until(up, p["timeout"]):
                    entry = seen[0]
                    module.fail_json(msg="%s did not appear within %d s (aoe-stat: %s)"
                                     % (device, p["timeout"], entry["state"] if entry else "not listed"),
                                     cmds=runner.ran, aoe=entry)
                entry = seen[0]
            elif entry is None:
                device = None
            if shared:
                kernel = "etherd!e%d.%d" % (p["shelf"], p["slot"])  # the kernel's name of /dev/etherd/eX.Y
                actions += iscsi.ensure_shared_path(p["owner"], p["vg"], p["lv"], {"KERNEL": kernel},
                                                    conv.aoe_device(p["shelf"], p["slot"]), module.check_mode)
    except CommandError as exc:
        fail_from_error(module, exc)
    except aoe.AoeParseError as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)

    result = {"changed": bool(actions), "device": device, "aoe": entry, "actions": actions, "cmds": runner.ran,
              "would_run": runner.would_run}
    if shared:
        result["shared_path"] = shared
    if module._diff:
        header = "e%d.%d" % (p["shelf"], p["slot"])
        result["diff"] = {"before_header": header, "after_header": header, "before": before,
                          "after": {"state": entry["state"] if entry else ("absent" if p["state"] == "absent"
                                                                           else "up")}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
