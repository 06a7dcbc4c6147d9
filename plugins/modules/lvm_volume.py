#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: lvm_volume
short_description: Create, grow, shrink, snapshot or remove an LVM logical volume of an exact size
version_added: 0.1.0
description:
  - Makes the logical volume O(name) in the volume group O(vg) exist with the size O(size), or not exist.
  - Sizes are exact byte counts; LVM rounds them up to whole extents, and the module compares the
    rounded size, so a second run with the same O(size) changes nothing.
  - A new LV has old signatures wiped and its first 4 KiB zeroed (C(lvcreate -W y -Z y)), as a new guest disk should.
  - A larger LV is only shrunk with O(shrink=true); otherwise it is left as it is, with a warning.
  - Before creating or growing, checks that the volume group has the free space, and fails with the
    shortfall otherwise, before anything changes.
  - With O(snapshot_of), creates O(name) as a classic (copy-on-write) snapshot of that LV, O(size) being the
    copy-on-write space.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  name:
    description:
      - Name of the logical volume, for example V(web01-disk).
      - Letters, digits and C(_ . + -), not starting with C(-); names with spaces, shell metacharacters or
        C(/) are refused before anything runs.
    type: str
    required: true
  vg:
    description: Volume group of the logical volume.
    type: str
    required: true
  size:
    description:
      - Size in bytes (V(268435456)) or with a binary unit (V(256M), V(256MiB), V(1G), V(1.5G)); C(K), C(M), C(G),
        C(T) are powers of 1024, as for C(lvcreate -L), whatever their case and with or without C(B)/C(iB).
      - Must be a whole number of 512-byte sectors.
      - Required with O(state=present).
    type: str
  state:
    description:
      - V(present) creates the LV or resizes it to O(size); V(absent) removes it.
      - Removing an LV that is open (for example the disk of a running domU) fails.
    type: str
    choices: [present, absent]
    default: present
  shrink:
    description:
      - Reduce an LV that is larger than O(size). This destroys the data beyond the new end.
      - An LV that is open (for example the disk of a running domU) is never shrunk; the task fails
        before anything changes, also in check mode.
      - When V(false), a larger LV is left alone and a warning says so.
    type: bool
    default: false
  snapshot_of:
    description:
      - Create O(name) as a snapshot of this LV of O(vg) (copy-on-write space O(size)).
      - An existing O(name) that is not a snapshot makes the module fail.
    type: str
notes:
  - Commands run with C(LANG=C), without a shell.
requirements:
  - LVM2 with JSON reports (2.02.158 or later).
seealso:
  - module: sanless.xen.xen_domain
  - module: sanless.xen.xen_info
"""

EXAMPLES = r"""
- name: A 256 MiB disk for web01
  sanless.xen.lvm_volume:
    vg: xenvg
    name: web01-disk
    size: 256M

- name: Grow it to 1 GiB (never shrinks without shrink=true)
  sanless.xen.lvm_volume:
    vg: xenvg
    name: web01-disk
    size: 1G

- name: A snapshot with 128 MiB of copy-on-write space
  sanless.xen.lvm_volume:
    vg: xenvg
    name: web01-disk-snap
    snapshot_of: web01-disk
    size: 128MiB

- name: Remove the snapshot
  sanless.xen.lvm_volume:
    vg: xenvg
    name: web01-disk-snap
    state: absent
"""

RETURN = r"""
lv:
  description: The logical volume after the change (what it would be in check mode), V(null) when absent.
  returned: success
  type: dict
  contains:
    vg:
      description: Volume group.
      type: str
      sample: xenvg
    name:
      description: LV name.
      type: str
      sample: web01-disk
    size_bytes:
      description: Size in bytes.
      type: int
      sample: 268435456
    path:
      description: Device path.
      type: str
      sample: /dev/xenvg/web01-disk
size_bytes:
  description: The requested size in bytes, rounded up to whole extents as LVM allocates it.
  returned: when O(state=present)
  type: int
  sample: 268435456
vg_free_bytes:
  description: Free bytes of the volume group before the change.
  returned: success
  type: int
  sample: 8585740288
action:
  description: What was done (or would be done in check mode).
  returned: success
  type: str
  choices: [none, created, snapshot, extended, reduced, removed]
  sample: created
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: [["lvcreate", "-q", "-y", "-W", "y", "-Z", "y", "-L", "268435456b", "-n", "web01-disk", "xenvg"]]
would_run:
  description: In check mode, the commands that would have changed the dom0.
  returned: success
  type: list
  elements: list
  sample: []
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils.lvm import (
    Lvm,
    LvmParseError,
    check_name,
    format_size,
    lv_is_open,
    lv_is_snapshot,
    parse_size,
    round_to_extents,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error


def _lv_view(vg, name, size_bytes):
    return {"vg": vg, "name": name, "size_bytes": size_bytes, "path": "/dev/%s/%s" % (vg, name)}


def _open_refusal(hostname, vg, name, what):
    return "%s: LV %s/%s is open (in use, for example by a running domU); not %s" % (hostname, vg, name, what)


def plan(params, vg_info, current, hostname="dom0"):
    """Decide what to do: returns (action, lv_after, size_bytes, warnings) or raises ValueError.

    vg_info: parse_vgs dict of the VG (None: no such VG); current: parse_lvs dict of the LV or None.
    """
    vg, name, state = params["vg"], params["name"], params["state"]
    if vg_info is None:
        raise ValueError("%s: volume group %s does not exist" % (hostname, vg))
    warnings = []
    if state == "absent":
        if current is None:
            return "none", None, None, warnings
        if lv_is_open(current):
            raise ValueError(_open_refusal(hostname, vg, name, "removing it"))
        return "removed", None, None, warnings
    wanted = round_to_extents(parse_size(params["size"]), vg_info["extent_size_bytes"])
    free = vg_info["free_bytes"]
    if current is None:
        if wanted > free:
            raise ValueError("%s: VG %s needs %d bytes (%s) for LV %s, has %d bytes (%s) free: %d bytes (%s) short"
                             % (hostname, vg, wanted, format_size(wanted), name, free, format_size(free),
                                wanted - free, format_size(wanted - free)))
        return ("snapshot" if params["snapshot_of"] else "created"), _lv_view(vg, name, wanted), wanted, warnings
    if params["snapshot_of"] and not lv_is_snapshot(current):
        raise ValueError("%s: LV %s/%s exists and is not a snapshot" % (hostname, vg, name))
    have = current["size_bytes"]
    if wanted == have:
        return "none", _lv_view(vg, name, have), wanted, warnings
    if wanted > have:
        if wanted - have > free:
            raise ValueError("%s: VG %s needs %d more bytes (%s) to grow LV %s to %s, has %d bytes (%s) free"
                             % (hostname, vg, wanted - have, format_size(wanted - have), name,
                                format_size(wanted), free, format_size(free)))
        return "extended", _lv_view(vg, name, wanted), wanted, warnings
    if not params["shrink"]:
        warnings.append("LV %s/%s is %d bytes (%s), larger than the requested %d bytes (%s); left as it is "
                        "(shrink=true reduces it)" % (vg, name, have, format_size(have), wanted, format_size(wanted)))
        return "none", _lv_view(vg, name, have), wanted, warnings
    if lv_is_open(current):
        # lvreduce -f would cut the disk under whoever has it open; check mode reports this too.
        raise ValueError(_open_refusal(hostname, vg, name, "shrinking it from %d to %d bytes" % (have, wanted)))
    return "reduced", _lv_view(vg, name, wanted), wanted, warnings


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            vg=dict(type="str", required=True),
            size=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            shrink=dict(type="bool", default=False),
            snapshot_of=dict(type="str"),
        ),
        required_if=[("state", "present", ("size",))],
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_name(params["name"], "LV name")
        check_name(params["vg"], "VG name")
        if params["snapshot_of"] is not None:
            check_name(params["snapshot_of"], "LV name (snapshot_of)")
    except ValueError as exc:
        module.fail_json(msg="%s: names are letters, digits and _ . + -, not starting with -; no spaces, shell "
                             "metacharacters or /" % (exc,))
    try:
        if params["size"] is not None:
            parse_size(params["size"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    runner = CommandRunner(module)
    lvm = Lvm(runner)
    vg, name = params["vg"], params["name"]
    hostname = socket.gethostname()
    try:
        vg_info = lvm.find_vg(vg)
        current = lvm.find(vg, name) if vg_info is not None else None
        if params["snapshot_of"] and current is None and params["state"] == "present" \
                and lvm.find(vg, params["snapshot_of"]) is None:
            module.fail_json(msg="%s: origin LV %s/%s of the snapshot does not exist" % (hostname, vg, params["snapshot_of"]))
        action, after, size_bytes, warnings = plan(params, vg_info, current, hostname)
    except CommandError as exc:
        fail_from_error(module, exc)
    except (ValueError, LvmParseError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)
    for warning in warnings:
        module.warn(warning)

    try:
        if action == "created":
            lvm.create(vg, name, size_bytes)
        elif action == "snapshot":
            lvm.snapshot(vg, params["snapshot_of"], name, size_bytes)
        elif action in ("extended", "reduced"):
            lvm.resize(vg, name, size_bytes, current["size_bytes"])
        elif action == "removed":
            lvm.remove(vg, name)
        if action not in ("none", "removed") and not module.check_mode:
            found = lvm.find(vg, name)
            if found is None:
                module.fail_json(msg="%s: LV %s/%s missing after %s" % (hostname, vg, name, action), cmds=runner.ran)
            after = _lv_view(vg, name, found["size_bytes"])
    except CommandError as exc:
        fail_from_error(module, exc)

    before = _lv_view(vg, name, current["size_bytes"]) if current else None
    result = {
        "changed": action != "none",
        "action": action,
        "lv": after,
        "vg_free_bytes": vg_info["free_bytes"],
        "cmds": runner.ran,
        "would_run": runner.would_run,
    }
    if size_bytes is not None:
        result["size_bytes"] = size_bytes
    if module._diff:
        result["diff"] = {
            "before_header": "%s/%s" % (vg, name),
            "after_header": "%s/%s" % (vg, name),
            "before": ({"state": "present", "size_bytes": before["size_bytes"]} if before else {"state": "absent"}),
            "after": ({"state": "present", "size_bytes": after["size_bytes"]} if after else {"state": "absent"}),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
