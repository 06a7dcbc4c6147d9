#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_block
short_description: Attach a dom0 block device to a running domain, or detach it (xl block-attach, block-detach)
version_added: 0.1.0
description:
  - Reads the running domain's disks (C(xl list -l DOMAIN)) and attaches O(target) as O(vdev) (C(xl block-attach))
    or detaches O(vdev) (C(xl block-detach)); no change when the domain already has it so, or has no such disk.
  - Used by the raid1 repair to give a running guest a new leg of its md mirror, and to take the retired leg away
    once md no longer has it. The domain config file is not touched (the caller writes it).
  - Refused before any change - a domain that does not run here, O(vdev) used by another device, O(target)
    attached at another vdev, a detach whose O(target) is not the device at O(vdev).
  - After a change the domain's disks are read again until they show it (up to O(timeout) seconds).
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  domain:
    description: The running domain.
    type: str
    required: true
  vdev:
    description: The disk's name in the guest (C(xvdd)).
    type: str
    required: true
  target:
    description:
      - The dom0 block device (a raid1 leg's shared path C(/dev/sanless/OWNER/VG/LV)). Required with
        O(state=attached); with O(state=detached), the device O(vdev) must be (else the detach is refused).
    type: path
  mode:
    description: V(w) read-write or V(r) read-only.
    type: str
    choices: [r, w]
    default: w
  state:
    description: V(attached) or V(detached).
    type: str
    choices: [attached, detached]
    default: attached
  timeout:
    description: Seconds to wait for the domain to show the change.
    type: int
    default: 60
notes:
  - Needs the xl toolstack (C(xl list -l) JSON).
"""

EXAMPLES = r"""
- name: Give web07 its new leg on hostc
  sanless.xen.xen_block:
    domain: web07
    target: /dev/sanless/hostc/xenvg/web07-data
    vdev: xvdd

- name: Take the retired leg away (md no longer has it)
  sanless.xen.xen_block:
    domain: web07
    target: /dev/sanless/hostb/xenvg/web07-data
    vdev: xvdc
    state: detached
"""

RETURN = r"""
disks:
  description: The domain's disks after the run (target, vdev, mode).
  returned: success
  type: list
  elements: dict
  sample: [{"target": "/dev/sanless/hosta/xenvg/web07-data", "vdev": "xvdb", "mode": "w"}]
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: []
would_run:
  description: In check mode, the commands that would have changed the domain.
  returned: success
  type: list
  elements: list
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import xen
from ansible_collections.sanless.xen.plugins.module_utils.runner import (CommandError, CommandRunner, fail_from_error,
                                                                         wait_until)

POLL_SECONDS = 1


def domain_disks(tool, domain):
    """The domain's disks as xen.domu_facts has them ({target, vdev, mode}), None when it does not run here."""
    try:
        found = [d for d in tool.list_long(domain) if d["name"] == domain]
    except CommandError as exc:
        if "is an invalid domain identifier" in exc.stderr or "not found" in exc.stderr.lower():
            return None
        raise
    if not found:
        return None
    return [{"target": d["pdev_path"], "vdev": d["vdev"], "mode": "w" if d["readwrite"] else "r"}
            for d in found[0]["disks"]]


def refusal(disks, state, target, vdev):
    """Why the change is refused (None: it may be made)."""
    at_vdev = next((d for d in disks if d["vdev"] == vdev), None)
    if state == "attached":
        elsewhere = next((d for d in disks if d["target"] == target and d["vdev"] != vdev), None)
        if at_vdev is not None and at_vdev["target"] != target:
            return "%s is taken by %s" % (vdev, at_vdev["target"])
        if elsewhere is not None:
            return "%s is attached already as %s" % (target, elsewhere["vdev"])
    elif at_vdev is not None and target and at_vdev["target"] != target:
        return "%s is %s, not %s: not detached" % (vdev, at_vdev["target"], target)
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type="str", required=True),
            vdev=dict(type="str", required=True),
            target=dict(type="path"),
            mode=dict(type="str", default="w", choices=["r", "w"]),
            state=dict(type="str", default="attached", choices=["attached", "detached"]),
            timeout=dict(type="int", default=60),
        ),
        required_if=[("state", "attached", ["target"])],
        supports_check_mode=True,
    )
    p = module.params
    try:
        xen.check_domain_name(p["domain"])
        if p["target"] is not None:
            xen.disk_spec({"target": p["target"], "vdev": p["vdev"], "mode": p["mode"]})
        elif "," in p["vdev"] or not p["vdev"].isalnum():
            raise ValueError("invalid vdev %r: letters and digits (xvdd)" % (p["vdev"],))
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    runner = CommandRunner(module)
    tool = xen.Toolstack(runner, "xl")
    try:
        before = domain_disks(tool, p["domain"])
        if before is None:
            module.fail_json(msg="domain %s does not run on this dom0" % p["domain"], cmds=runner.ran)
        why = refusal(before, p["state"], p["target"], p["vdev"])
        if why:
            module.fail_json(msg="%s: %s" % (p["domain"], why), disks=before, cmds=runner.ran)
        present = any(d["vdev"] == p["vdev"] for d in before)
        changed = present != (p["state"] == "attached")
        after = before
        if changed:
            if p["state"] == "attached":
                tool.block_attach(p["domain"], p["target"], p["vdev"], p["mode"])
                after = before + [{"target": p["target"], "vdev": p["vdev"], "mode": p["mode"]}]
            else:
                tool.block_detach(p["domain"], p["vdev"])
                after = [d for d in before if d["vdev"] != p["vdev"]]
            if not module.check_mode:
                seen = {}

                def shown():
                    seen["disks"] = domain_disks(tool, p["domain"]) or []
                    return any(d["vdev"] == p["vdev"] for d in seen["disks"]) == (p["state"] == "attached")

                if not wait_until(shown, p["timeout"], poll=POLL_SECONDS):
                    module.fail_json(msg="%s: %s does not show %s %s after %d s" % (
                        p["domain"], "xl list -l", p["vdev"], p["state"], p["timeout"]), disks=seen.get("disks"),
                        cmds=runner.ran)
                after = seen["disks"]
    except CommandError as exc:
        fail_from_error(module, exc)
    result = {"changed": changed, "disks": after, "cmds": runner.ran, "would_run": runner.would_run}
    if module._diff:
        result["diff"] = {"before_header": p["domain"], "after_header": p["domain"],
                          "before": {"disks": before}, "after": {"disks": after}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
