#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: dm_remap
short_description: Route an LV's device-mapper device through another block device and back
version_added: 0.1.0
description:
  - Points the device-mapper device of the logical volume O(lv) at the block device O(via)
    (C(0 SECTORS linear VIA 0)) and back, without closing it; the LV keeps its major:minor, so whoever
    has it open (C(blkback) serving a running domU, for example) never notices.
  - With O(state=remapped), a I(clone) dm device O(clone_name) is first created with the LV's original table,
    so that O(via) (typically a DRBD device) can sit on top of it;
    C(LV -> VIA -> clone -> the LV's extents). Then the LV is suspended (in-flight I/O flushed), its table
    replaced and resumed; when the load fails the LV is resumed on its old table. C(dmsetup load) does not check
    the size of O(via) (the kernel does at resume), so the module compares the sizes in sysfs before suspending
    anything, and a failed resume is undone too (C(dmsetup clear), then C(dmsetup resume) on the old table).
  - With O(state=original), the clone's table is loaded back into the LV, and the clone is removed
    (unless O(remove_clone=false)).
  - The clone's table I(is) the original table; no state file is kept. RV(original_table) returns it, so that
    a run can pass it back as O(original_table) should the clone be lost.
  - The module reads the live tables (C(dmsetup table)) and the dm state in sysfs each run, so a second run changes
    nothing and a half-done change is completed. The cases below are reported in RV(situation).
  - I(LV suspended) (a run killed between C(dmsetup suspend) and C(resume)) - it is resumed first (the clone too),
    then the module goes on from the tables it then has.
  - I(Clone present, LV still on its original table) - O(state=remapped) completes the swap;
    O(state=original) only removes the clone.
  - I(LV points at VIA, clone missing) - O(state=remapped) recreates the clone from O(original_table), or fails
    without it; O(state=original) loads O(original_table) into the LV, or fails without it (the original
    table is nowhere else). Without O(via), an LV on a single DRBD device (major 147) counts as pointing at it.
  - I(Clone present with a table that is not the LV's, LV not pointing at VIA) - the module fails, the clone may
    belong to another LV.
  - I(LV on a table that is neither VIA nor the clone's) (O(state=original) with O(via) given) - the module
    fails rather than overwrite it.
  - Invalid input (names with spaces or shell metacharacters, a relative O(via), a malformed O(original_table))
    fails before anything runs.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  lv:
    description:
      - The logical volume, as V(/dev/VG/LV) or V(VG/LV), for example V(/dev/xenvg/web01-disk).
      - It must be active (its dm device V(VG-LV), with C(-) doubled in each part, must exist).
    type: str
    required: true
  via:
    description:
      - Block device the LV is pointed at with O(state=remapped), for example V(/dev/drbd10). It must exist
        (also in check mode) and be at least as large as the LV.
      - Compared with the live table by path and by major:minor (C(dmsetup table) prints V(147:10) for
        V(/dev/drbd10)).
      - Optional with O(state=original); when given, the LV must point at it (or already be on its original
        table) or the module refuses to change it.
    type: str
  clone_name:
    description:
      - Name of the clone dm device holding the LV's original table.
      - Default V(<dm name of the LV>.real), for example V(xenvg-web01--disk.real) for V(xenvg/web01-disk).
      - Letters, digits, C(_), C(+), C(.), C(:) and C(-).
    type: str
  state:
    description:
      - V(remapped) points the LV at O(via) (creating the clone first).
      - V(original) puts the clone's table (or O(original_table)) back into the LV and removes the clone.
    type: str
    choices: [remapped, original]
    default: remapped
  original_table:
    description:
      - The LV's original table, as C(dmsetup table) prints it (one segment per line, for example
        V(0 524288 linear 254:16 804864)); RV(original_table) of an earlier run gives it.
      - Only used to recover when the clone is missing, to recreate it (O(state=remapped)) or to restore the LV
        from it (O(state=original)). With O(state=remapped) and no clone, it must equal the LV's table.
    type: str
  remove_clone:
    description:
      - With O(state=original), remove the clone after the LV is back on its table. Use V(false) when something
        (DRBD) still uses the clone and is taken down afterwards; a later run with V(true) removes it.
    type: bool
    default: true
  pause_domain:
    description:
      - Domain pausing for the table swap only (C(xl pause) before the suspend, C(xl unpause) after the resume,
        the unpause also when the swap fails). Nothing is paused when no swap is needed.
      - It must run on this dom0.
    type: str
  toolstack:
    description: Toolstack for O(pause_domain).
    type: str
    choices: [xl, xm]
    default: xl
notes:
  - Commands run with C(LANG=C), without a shell; tables go to C(dmsetup load) and C(dmsetup create) on stdin.
  - Suspension is read from sysfs (C(/sys/block/dm-N/dm/suspended)); in check mode a suspended LV is reported
    as to be resumed, and the prediction uses its live table (a loaded inactive table would become live).
  - Removing the clone fails while O(via) still uses it (DRBD up on it); the LV is then already restored and a rerun
    after taking O(via) down removes it.
requirements:
  - C(dmsetup) (device-mapper), Linux sysfs.
seealso:
  - module: sanless.xen.lvm_volume
  - module: sanless.xen.xen_migrate
  - name: dmsetup(8)
    description: The device-mapper tool.
    link: https://man7.org/linux/man-pages/man8/dmsetup.8.html
"""

EXAMPLES = r"""
- name: Route web01's disk through /dev/drbd10 (sitting on xenvg-web01--disk.real), the guest paused for the swap
  sanless.xen.dm_remap:
    lv: /dev/xenvg/web01-disk
    via: /dev/drbd10
    pause_domain: web01
  register: remap

- name: Back on its own extents, keeping the clone until DRBD is down
  sanless.xen.dm_remap:
    lv: xenvg/web01-disk
    via: /dev/drbd10
    state: original
    remove_clone: false
    pause_domain: web01

- name: Restore after the clone was lost, from the table the first run returned
  sanless.xen.dm_remap:
    lv: xenvg/web01-disk
    via: /dev/drbd10
    state: original
    original_table: "{{ remap.original_table }}"
"""

RETURN = r"""
lv_dm:
  description: Device-mapper name of the LV.
  returned: success
  type: str
  sample: xenvg-web01--disk
clone:
  description: Name of the clone dm device.
  returned: success
  type: str
  sample: xenvg-web01--disk.real
situation:
  description: What the module found, in words (one of the cases of the description).
  returned: success
  type: str
  sample: "original: xenvg-web01--disk on its own table, no clone"
original_table:
  description: The LV's original table (the clone's), as C(dmsetup table) prints it; V(null) when unknown.
  returned: success
  type: str
  sample: "0 524288 linear 254:16 804864\n"
table_before:
  description: The LV's live table before the module.
  returned: success
  type: str
  sample: "0 524288 linear 254:16 804864\n"
table:
  description: The LV's table after the module (read back), or the predicted one in check mode.
  returned: success
  type: str
  sample: "0 524288 linear 147:10 0\n"
via_devno:
  description: major:minor of O(via), V(null) without O(via).
  returned: success
  type: str
  sample: "147:10"
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["create clone xenvg-web01--disk.real", "load 0 524288 linear /dev/drbd10 0 into xenvg-web01--disk"]
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: [["dmsetup", "table"], ["dmsetup", "create", "xenvg-web01--disk.real"]]
would_run:
  description: In check mode, the commands that would have changed the dom0.
  returned: success
  type: list
  elements: list
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils.dm import (
    DeviceMapper,
    DmParseError,
    DmRemapError,
    block_devno,
    block_sectors,
    check_dm_name,
    check_via_path,
    clone_default_name,
    dm_sysfs_devices,
    parse_table,
    plan_remap,
    points_at,
    render_table,
    run_remap,
    same_table,
)
from ansible_collections.sanless.xen.plugins.module_utils.lvm import check_name, dm_name
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error
from ansible_collections.sanless.xen.plugins.module_utils.xen import Toolstack, check_vm_name, domain_state, find_domain


def parse_lv(value):
    """``/dev/VG/LV`` or ``VG/LV`` -> (vg, lv). Raises ValueError."""
    text = value[len("/dev/"):] if isinstance(value, str) and value.startswith("/dev/") else value
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) != 2:
        raise ValueError("lv %r: want /dev/VG/LV or VG/LV" % (value,))
    return check_name(parts[0], "VG name"), check_name(parts[1], "LV name")


def check_params(params):
    """Validate everything before a command runs; returns (vg, lv, lv_dm, clone, original)."""
    vg, lv = parse_lv(params["lv"])
    lv_dm = dm_name(vg, lv)
    clone = check_dm_name(params["clone_name"]) if params["clone_name"] else clone_default_name(lv_dm)
    if "\n" in clone:
        raise ValueError("invalid device-mapper name %r" % (clone,))
    if clone == lv_dm:
        raise ValueError("clone_name %s is the LV's own dm device" % (clone,))
    if params["via"] is not None:
        check_via_path(params["via"])
    if params["pause_domain"] is not None:
        check_vm_name(params["pause_domain"])
    original = None
    if params["original_table"] is not None:
        try:
            original = parse_table(params["original_table"])
        except DmParseError as exc:
            raise ValueError("original_table: %s" % (exc,))
        render_table(original)
    return vg, lv, lv_dm, clone, original


def _text(segments):
    return render_table(segments) if segments else None


def run(module, runner):
    params = module.params
    vg, lv, lv_dm, clone, original = check_params(params)
    via = params["via"]
    via_devno = block_devno(via) if via is not None else None
    dm = DeviceMapper(runner)
    actions = []

    sysfs = dm_sysfs_devices()
    tables = dm.tables()
    table_before = tables.get(lv_dm)
    suspended = [name for name in (lv_dm, clone) if name in tables and sysfs.get(name, {}).get("suspended")]
    for name in suspended:
        dm.resume(name)
        actions.append("resume suspended %s" % name)
    if suspended:
        if module.check_mode:
            module.warn("%s suspended: would be resumed; the prediction uses the live table(s), but a table "
                        "loaded and not yet resumed would become live instead" % ", ".join(suspended))
        else:
            sysfs = dm_sysfs_devices()
            tables = dm.tables()

    lv_info = sysfs.get(lv_dm) or {}
    plan = plan_remap(
        params["state"], lv_dm, tables.get(lv_dm), clone, tables.get(clone), via=via,
        via_refs=[r for r in (via, via_devno) if r], original_table=original, remove_clone=params["remove_clone"],
        via_sectors=block_sectors(via_devno) if via_devno else None, lv_devno=lv_info.get("devno"))

    clone_before = clone in tables
    around_swap = None
    domain = params["pause_domain"]
    xen = Toolstack(runner, params["toolstack"])
    if domain is not None and any(kind == "swap" for kind, _s in plan["steps"]):
        state = domain_state(find_domain(xen.list(), domain))
        if state not in ("running", "paused"):
            raise DmRemapError("pause_domain %s is %s on this dom0; it must run here to be paused for the swap"
                               % (domain, state))

        def around_swap():
            return xen.paused(domain, warn=module.warn)

    try:
        actions.extend(run_remap(dm, lv_dm, clone, plan["steps"], around_swap=around_swap))
    except CommandError as exc:
        if exc.cmd[:2] == ["dmsetup", "remove"]:
            fail_from_error(module, exc, msg="%s; %s is restored (%s) but its clone %s could not be removed: is "
                                             "something (DRBD) still using it? Take it down and rerun"
                                             % (exc.msg, lv_dm, ", ".join(actions) or "nothing else to do", clone))
        raise

    after = plan["after"]
    if plan["steps"] and not module.check_mode:
        tables = dm.tables()
        after = tables.get(lv_dm)
        kinds = [kind for kind, _segments in plan["steps"]]
        wanted_clone = (clone_before or "create_clone" in kinds) and "remove_clone" not in kinds
        if params["state"] == "remapped":
            ok = points_at(after, [via, via_devno]) and tables.get(clone) is not None
        else:
            ok = same_table(after, plan["original"]) and (clone in tables) == wanted_clone
        if not ok:
            raise DmRemapError("after %s: %s has table %s and clone %s is %s; not what was asked"
                               % (", ".join(actions), lv_dm, _text(after), clone,
                                  "present" if clone in tables else "absent"))

    result = {
        "changed": bool(actions),
        "lv_dm": lv_dm,
        "clone": clone,
        "situation": plan["situation"],
        "original_table": _text(plan["original"]),
        "table_before": _text(table_before),
        "table": _text(after),
        "via_devno": via_devno,
        "actions": actions,
        "cmds": runner.ran,
        "would_run": runner.would_run,
    }
    if module._diff:
        header = "dm table of %s" % lv_dm
        result["diff"] = {"before_header": header, "after_header": header,
                          "before": _text(table_before) or "", "after": _text(after) or ""}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            lv=dict(type="str", required=True),
            via=dict(type="str"),
            clone_name=dict(type="str"),
            state=dict(type="str", default="remapped", choices=["remapped", "original"]),
            original_table=dict(type="str"),
            remove_clone=dict(type="bool", default=True),
            pause_domain=dict(type="str"),
            toolstack=dict(type="str", default="xl", choices=["xl", "xm"]),
        ),
        required_if=[("state", "remapped", ("via",))],
        supports_check_mode=True,
    )
    try:
        check_params(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    runner = CommandRunner(module)
    try:
        result = run(module, runner)
    except CommandError as exc:
        fail_from_error(module, exc)
    except (DmRemapError, DmParseError, ValueError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran, would_run=runner.would_run)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
