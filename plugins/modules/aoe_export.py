#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: aoe_export
short_description: Export an LVM logical volume over ATA over Ethernet with vblade, as a systemd service
version_added: 0.1.0
description:
  - Runs C(vblade) for O(vg)/O(lv) as AoE shelf O(shelf), slot O(slot) on O(interface), as the systemd unit
    C(sanless-vblade-<shelf>-<slot>.service) (restarted on failure, enabled at boot), or removes that unit.
  - O(macs) restricts the export to those initiator MAC addresses (C(vblade -m)).
  - AoE carries a request's data in frames of the link's MTU, one frame per request and answer (1 KiB of data per
    frame at MTU 1500, 8.5 KiB at 9000), so give it a jumbo-frame storage link (the MTU set on O(interface), its
    ports, the switch and every importing dom0's interface). vblade reads the MTU when it starts and the importer
    takes the frame size when it discovers the target, so export and import again after changing it; C(aoe-stat)
    on the importer (M(sanless.xen.aoe_import)'s C(payload)) shows the frame size in use.
  - A shelf.slot already served by another vblade (or another sanless unit) for another LV or interface, an LV
    already exported under another shelf.slot, bad names and an LV that does not exist fail before any change.
  - On the exporting dom0, C(/dev/sanless/<host>/<vg>/<lv>) is made to point to the LV itself (symlink and udev
    rule), the path the importing dom0s have to it.
  - The conventional shelf is the exporting dom0's place in the sorted cluster host list (see the collection's
    conventions); this module takes it as given. Without O(slot) the module picks the slot under the dom0's host lock
    (the one the LV is exported under on that shelf already, else the lowest free one), so that two runs at once
    never pick the same.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
  - sanless.xen.disk_export
options:
  shelf:
    description: AoE shelf (major) number, 0 to 65534.
    type: int
    required: true
  slot:
    description:
      - AoE slot (minor) number, 0 to 254. Required with O(state=absent).
      - Omitted with O(state=present), the module picks it (see above) and returns it in RV(export.slot).
    type: int
  interface:
    description: Network interface (or bridge) vblade serves on, for example V(xenbr0). Required with O(state=present).
    type: str
  macs:
    description: MAC addresses allowed to use the export; empty allows every host on the segment.
    type: list
    elements: str
    default: []
  host:
    description: This dom0's name for the shared path. Defaults to the short host name.
    type: str
  state:
    description: V(present) runs the export, V(absent) stops it and removes its unit.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Commands run with C(LANG=C), without a shell.
  - AoE has no authentication; the MAC allow-list and a storage-only network segment are the only protection.
requirements:
  - vblade and systemd on the exporting dom0.
seealso:
  - module: sanless.xen.aoe_import
"""

EXAMPLES = r"""
- name: Export web01's disk from hosta as e1.2 on the storage bridge, to hostb only
  sanless.xen.aoe_export:
    vg: xenvg
    lv: web01-disk
    shelf: 1
    slot: 2
    interface: xenbr0
    macs: ["2e:4f:b1:ca:36:c2"]

- name: Stop it
  sanless.xen.aoe_export:
    vg: xenvg
    lv: web01-disk
    shelf: 1
    slot: 2
    state: absent
"""

RETURN = r"""
export:
  description: The export after the change; V(null) when absent.
  returned: success
  type: dict
  contains:
    shelf:
      description: AoE shelf.
      type: int
      sample: 1
    slot:
      description: AoE slot.
      type: int
      sample: 2
    interface:
      description: Interface vblade serves on.
      type: str
      sample: xenbr0
    device:
      description: The exported LV.
      type: str
      sample: /dev/xenvg/web01-disk
    macs:
      description: MAC allow-list (empty for every host).
      type: list
      elements: str
      sample: []
    unit:
      description: The systemd unit that runs vblade.
      type: str
      sample: sanless-vblade-1-2.service
    shared_path:
      description: The path every dom0 uses for this LV.
      type: str
      sample: /dev/sanless/hosta/xenvg/web01-disk
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["write /etc/systemd/system/sanless-vblade-1-2.service", "daemon-reload", "enable", "start"]
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

import os
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import aoe
from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import iscsi
from ansible_collections.sanless.xen.plugins.module_utils.files import read_text, write_file_atomic
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.lvm import Lvm, LvmParseError, check_name
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error


def occupant_problem(p, vblades, units):
    """Why the export cannot go where asked (a message), or None. vblades: parse_ps_vblade;
    units: {(shelf, slot): parse_vblade_unit} of the sanless units on the dom0."""
    mine = (p["shelf"], p["slot"])
    for entry in list(vblades) + [dict(u, pid=None) for u in units.values() if u]:
        where = ("vblade pid %d" % entry["pid"]) if entry["pid"] else conv.vblade_unit_name(entry["shelf"], entry["slot"])
        address = (entry["shelf"], entry["slot"])
        if address == mine and (entry["device"] != p["device"] or entry["interface"] != p["interface"]):
            return "e%d.%d is occupied: %s exports %s on %s" % (mine + (where, entry["device"], entry["interface"]))
        if address != mine and entry["device"] == p["device"]:
            return "%s is already exported as e%d.%d (%s)" % ((p["device"],) + address + (where,))
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vg=dict(type="str", required=True),
            lv=dict(type="str", required=True),
            shelf=dict(type="int", required=True),
            slot=dict(type="int"),
            interface=dict(type="str"),
            macs=dict(type="list", elements="str", default=[]),
            host=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        required_if=[("state", "present", ("interface",)), ("state", "absent", ("slot",))],
        supports_check_mode=True,
    )
    p = dict(module.params)
    try:
        check_name(p["vg"], "VG name")
        check_name(p["lv"], "LV name")
        # (the shelf alone when the slot is left to the module)
        conv.check_aoe_address(p["shelf"], 0 if p["slot"] is None else p["slot"])
        if p["interface"] is not None:
            aoe.check_interface(p["interface"])
        p["macs"] = sorted(set(aoe.check_mac(m) for m in p["macs"]))
        p["host"] = conv.host_label(p["host"] or socket.gethostname())
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    p["device"] = conv.lv_path(p["vg"], p["lv"])
    runner = CommandRunner(module)
    # The dom0's host lock from the read of what it serves to the last change: a slot picked by one run is not picked
    # by another at the same time (check mode changes nothing and takes none).
    try:
        with lm.host_lock_held(module.check_mode):
            _apply(module, p, runner)
    except lm.MigrationError as exc:
        module.fail_json(msg="the host lock: %s" % exc, cmds=runner.ran)


def _apply(module, p, runner):
    """Read what the dom0 serves, pick the slot if not given, change, and exit_json (main holds the host lock)."""
    tools = aoe.Aoe(runner)
    actions = []

    def change(description, argv):
        actions.append(description)
        try:
            runner.run(argv, changes_state=True)
        except CommandError as exc:
            fail_from_error(module, exc, "%s: %s" % (description, exc.msg))

    vblades = []
    try:
        if p["state"] == "present":
            if Lvm(runner).find(p["vg"], p["lv"]) is None:
                module.fail_json(msg="LV %s/%s does not exist" % (p["vg"], p["lv"]), cmds=runner.ran)
            units = aoe.read_units()
            vblades = tools.vblades()
            if p["slot"] is None:
                try:
                    p["slot"] = aoe.pick_slot(p["shelf"], p["device"], vblades + list(units.values()))
                except ValueError as exc:
                    module.fail_json(msg="e%d: %s" % (p["shelf"], exc), cmds=runner.ran)
            # this export's own unit is not an occupant, unless it serves another LV (never rewrite that one)
            mine = os.path.abspath(aoe.unit_path(p["shelf"], p["slot"]))
            units = dict((address, unit) for address, unit in units.items()
                         if os.path.abspath(unit["path"]) != mine or unit["device"] != p["device"])
            problem = occupant_problem(p, vblades, units)
            if problem:
                module.fail_json(msg=problem, cmds=runner.ran)
        unit = conv.vblade_unit_name(p["shelf"], p["slot"])
        path = aoe.unit_path(p["shelf"], p["slot"])
        active, enabled = tools.unit_state(unit)
        if p["state"] == "present" and not active:
            # The same export already served by a vblade started some other way: a second one would answer too.
            for entry in vblades:
                if (entry["shelf"], entry["slot"]) == (p["shelf"], p["slot"]):
                    module.fail_json(msg="e%d.%d is already served by vblade pid %d, not by %s: stop that vblade first"
                                         % (p["shelf"], p["slot"], entry["pid"], unit), cmds=runner.ran)
    except CommandError as exc:
        fail_from_error(module, exc)
    except (LvmParseError, aoe.AoeParseError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)

    old_text = read_text(path)
    if p["state"] == "absent":
        if active:
            change("stop", aoe.systemctl_argv("stop", unit))
        if enabled:
            change("disable", aoe.systemctl_argv("disable", unit))
        if old_text is not None:
            actions.append("remove %s" % path)
            if not module.check_mode:
                os.unlink(path)
            change("daemon-reload", aoe.systemctl_argv("daemon-reload"))
        export = None
    else:
        text = aoe.vblade_unit(p["shelf"], p["slot"], p["interface"], p["device"], p["macs"])
        rewritten = text != old_text
        if rewritten:
            actions.append("write %s" % path)
            if not module.check_mode:
                write_file_atomic(path, text, 0o644)
            change("daemon-reload", aoe.systemctl_argv("daemon-reload"))
        if not enabled:
            change("enable", aoe.systemctl_argv("enable", unit))
        if not active:
            change("start", aoe.systemctl_argv("start", unit))
        elif rewritten:
            # vblade reads its arguments once: a changed unit needs a restart.
            change("restart", aoe.systemctl_argv("restart", unit))
        actions += iscsi.ensure_shared_path(p["host"], p["vg"], p["lv"], conv.local_lv_match(p["vg"], p["lv"]),
                                            p["device"], module.check_mode)
        export = {"shelf": p["shelf"], "slot": p["slot"], "interface": p["interface"], "device": p["device"],
                  "macs": p["macs"], "unit": unit, "shared_path": conv.shared_disk_path(p["host"], p["vg"], p["lv"])}

    result = {"changed": bool(actions), "export": export, "actions": actions, "cmds": runner.ran,
              "would_run": runner.would_run}
    if module._diff:
        after_text = ""
        if export is not None:
            after_text = aoe.vblade_unit(p["shelf"], p["slot"], p["interface"], p["device"], p["macs"])
        result["diff"] = {"before_header": path, "after_header": path, "before": old_text or "", "after": after_text}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
