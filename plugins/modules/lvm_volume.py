#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: lvm_volume
short_description: Create, grow, shrink, stripe, snapshot or remove an LVM logical volume of an exact size
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
    copy-on-write space, in bytes or as a percentage of the origin (V(20%ORIGIN)). A request larger than a
    snapshot of the origin can use is planned at the largest usable size, which is what C(lvcreate) silently
    makes of it, with a warning; so a second run with the same O(size) changes nothing.
  - With O(stripes), a new LV is striped over that many physical volumes of the VG (C(lvcreate -i)); its size
    is rounded up to whole extents on each stripe, as LVM does. An existing LV is never restriped.
  - An LV that has snapshots is never removed (C(lvremove -y) would remove its snapshots with it); the task
    fails with their names before anything changes.
  - Every refusal (bad names or sizes, a VG without the free space, too many stripes, an origin with
    snapshots) happens before any command that changes the dom0, also in check mode.
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
      - With O(snapshot_of), also V(N%ORIGIN) (1 to 100), N percent of the largest copy-on-write space a
        snapshot of the origin can use, as C(lvcreate -l N%ORIGIN) takes it.
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
      - An existing O(name) that is not a snapshot, or a snapshot of another LV, makes the module fail.
      - The LV result reports the snapshot's fill (RV(lv.data_percent)).
    type: str
  stripes:
    description:
      - Number of stripes of a new LV (C(lvcreate -i)); at most the number of physical volumes of O(vg).
      - The VG's free space must also lie on that many physical volumes; LVM checks that itself and fails
        without a change otherwise (the task fails with its command, rc and stderr).
      - On an existing LV, a different number makes the module fail (it does not restripe).
      - Not with O(snapshot_of).
    type: int
  stripe_size:
    description:
      - Stripe size of a new striped LV (C(lvcreate -I)), in bytes or with a binary unit (V(64k)), a power of 2,
        at least 4 KiB, at most the VG's extent size. LVM's default (64 KiB) when not given.
      - Needs O(stripes).
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

- name: A snapshot with a fifth of what a snapshot of web01-disk can use
  sanless.xen.lvm_volume:
    vg: xenvg
    name: web01-disk-snap
    snapshot_of: web01-disk
    size: 20%ORIGIN

- name: A disk striped over the VG's two disks
  sanless.xen.lvm_volume:
    vg: xenvg
    name: db01-data
    size: 16G
    stripes: 2
    stripe_size: 64k

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
    snapshot:
      description: Whether the LV is a classic snapshot.
      type: bool
      sample: false
    origin:
      description: The LV a snapshot is of, V(null) for other LVs.
      type: str
      sample: web01-disk
    data_percent:
      description:
        - How full a snapshot's copy-on-write space is, in percent (100 means it overflowed and is invalid).
        - V(null) for LVs LVM gives no figure for; a new snapshot starts at 0 (what check mode predicts).
      type: float
      sample: 37.7
    stripes:
      description: Number of stripes (1 when not striped).
      type: int
      sample: 2
    stripe_size_bytes:
      description: Stripe size in bytes (0 when not striped).
      type: int
      sample: 65536
size_bytes:
  description:
    - The requested size in bytes as LVM allocates it, rounded up to whole extents (on each stripe); for a
      snapshot, its copy-on-write space (a V(N%ORIGIN) or too large request worked out as LVM does).
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

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.lvm import (
    Lvm,
    LvmParseError,
    check_name,
    check_stripe_size,
    check_stripes,
    fit_problem,
    format_size,
    lv_is_open,
    lv_is_origin,
    lv_is_snapshot,
    parse_size,
    parse_snapshot_size,
    snapshot_cow_bytes,
    snapshots_of,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error


def _lv_view(vg, name, size_bytes, origin=None, stripes=1, stripe_size_bytes=0, data_percent=None):
    return {"vg": vg, "name": name, "size_bytes": size_bytes, "path": conv.lv_path(vg, name),
            "snapshot": origin is not None, "origin": origin, "data_percent": data_percent,
            "stripes": stripes, "stripe_size_bytes": stripe_size_bytes}


def _view_of(lv):
    """The lv result of a parse_lvs dict."""
    return _lv_view(lv["vg"], lv["name"], lv["size_bytes"], lv["origin"] if lv["snapshot"] else None,
                    lv["stripes"] or 1, lv["stripe_size_bytes"] or 0, lv["data_percent"])


def _open_refusal(hostname, vg, name, what):
    return "%s: LV %s/%s is open (in use, for example by a running domU); not %s" % (hostname, vg, name, what)


def check_params(params):
    """Refuse bad input before any command runs: names, sizes, stripes (ValueError)."""
    check_name(params["name"], "LV name")
    check_name(params["vg"], "VG name")
    if params["snapshot_of"] is not None:
        check_name(params["snapshot_of"], "LV name (snapshot_of)")
        if params["snapshot_of"] == params["name"]:
            raise ValueError("LV %s cannot be a snapshot of itself" % (params["name"],))
    if params["size"] is not None:
        if params["snapshot_of"] is not None:
            parse_snapshot_size(params["size"])
        elif "%" in str(params["size"]):
            raise ValueError("invalid size %r: a percentage of the origin (N%%ORIGIN) is for snapshots "
                             "(snapshot_of)" % (params["size"],))
        else:
            parse_size(params["size"])
    if params["stripes"] is not None and not 1 <= params["stripes"] <= 128:
        raise ValueError("invalid stripes %r: 1 to 128" % (params["stripes"],))
    if params["stripe_size"] is not None:
        check_stripe_size(parse_size(params["stripe_size"]))


def _fit(vg_info, need, what, hostname):
    problem = fit_problem(vg_info, need, what)
    if problem:
        raise ValueError("%s: %s" % (hostname, problem))


def _resize(params, vg_info, current, wanted, hostname, warnings):
    """none/extended/reduced of an existing LV to wanted bytes (the rules of plain LVs and snapshots)."""
    vg, name = params["vg"], params["name"]
    have = current["size_bytes"]
    view = _view_of(current)
    if wanted == have:
        return "none", view
    if wanted > have:
        _fit(vg_info, wanted - have, "more to grow LV %s from %s to %s" % (name, format_size(have), format_size(wanted)),
             hostname)
        return "extended", dict(view, size_bytes=wanted)
    if not params["shrink"]:
        warnings.append("LV %s/%s is %d bytes (%s), larger than the requested %d bytes (%s); left as it is "
                        "(shrink=true reduces it)" % (vg, name, have, format_size(have), wanted, format_size(wanted)))
        return "none", view
    if lv_is_open(current):
        # lvreduce -f would cut the disk under whoever has it open; check mode reports this too.
        raise ValueError(_open_refusal(hostname, vg, name, "shrinking it from %d to %d bytes" % (have, wanted)))
    return "reduced", dict(view, size_bytes=wanted)


def _plan_absent(params, current, lvs, hostname):
    vg, name = params["vg"], params["name"]
    if current is None:
        return "none", None
    if lv_is_open(current):
        raise ValueError(_open_refusal(hostname, vg, name, "removing it"))
    snaps = snapshots_of(lvs, vg, name)
    if snaps or lv_is_origin(current):
        # lvremove -y would take the snapshots with it (a backup in progress, or one kept on purpose)
        raise ValueError("%s: LV %s/%s is the origin of the snapshot%s %s; not removing it (remove %s first)"
                         % (hostname, vg, name, "" if len(snaps) == 1 else "s",
                            ", ".join(lv["name"] for lv in snaps) or "(lvs lists none)",
                            "it" if len(snaps) == 1 else "them"))
    return "removed", None


def _plan_snapshot(params, vg_info, current, lvs, hostname, warnings):
    vg, name, origin_name = params["vg"], params["name"], params["snapshot_of"]
    if current is not None and not lv_is_snapshot(current):
        raise ValueError("%s: LV %s/%s exists and is not a snapshot" % (hostname, vg, name))
    if current is not None and current["origin"] not in (None, origin_name):
        raise ValueError("%s: LV %s/%s is a snapshot of %s, not of %s" % (hostname, vg, name, current["origin"], origin_name))
    origin = ([lv for lv in lvs if lv["name"] == origin_name] or [None])[0]
    if origin is None:
        raise ValueError("%s: origin LV %s/%s of the snapshot does not exist" % (hostname, vg, origin_name))
    request = parse_snapshot_size(params["size"])
    wanted, capped = snapshot_cow_bytes(request, origin["size_bytes"], vg_info["extent_size_bytes"])
    if capped:
        warnings.append("snapshot %s/%s: %s of copy-on-write space is more than a snapshot of the %s origin %s can use; "
                        "%s (what lvcreate would cut it to)" % (vg, name, params["size"], format_size(origin["size_bytes"]),
                                                                origin_name, format_size(wanted)))
    if current is None:
        _fit(vg_info, wanted, "for snapshot %s of %s (%s of copy-on-write space)" % (name, origin_name, format_size(wanted)),
             hostname)
        return "snapshot", _lv_view(vg, name, wanted, origin=origin_name, data_percent=0.0), wanted, request
    action, after = _resize(params, vg_info, current, wanted, hostname, warnings)
    return action, after, wanted, request


def _plan_plain(params, vg_info, current, hostname, warnings):
    vg, name = params["vg"], params["name"]
    stripes, stripe_size = params["stripes"], params["stripe_size"]
    stripe_bytes = parse_size(stripe_size) if stripe_size is not None else None
    if current is None:
        check_stripes(stripes, stripe_bytes, vg_info)
        layout = stripes or 1
    else:
        layout = current["stripes"] or 1
        if stripes is not None and current["stripes"] is not None and stripes != current["stripes"]:
            raise ValueError("%s: LV %s/%s has %d stripe%s, not %d; lvm_volume does not restripe an LV (lvconvert does)"
                             % (hostname, vg, name, current["stripes"], "" if current["stripes"] == 1 else "s", stripes))
        if stripe_bytes is not None and layout > 1 and current["stripe_size_bytes"] not in (None, stripe_bytes):
            raise ValueError("%s: LV %s/%s has stripes of %s, not %s; lvm_volume does not restripe an LV"
                             % (hostname, vg, name, format_size(current["stripe_size_bytes"]), format_size(stripe_bytes)))
    wanted = conv.striped_round_up(parse_size(params["size"]), vg_info["extent_size_bytes"], layout)
    if current is None:
        _fit(vg_info, wanted, "for LV %s" % (name,), hostname)
        after = _lv_view(vg, name, wanted, stripes=layout,
                         stripe_size_bytes=(stripe_bytes or 65536) if layout > 1 else 0)
        return "created", after, wanted
    action, after = _resize(params, vg_info, current, wanted, hostname, warnings)
    return action, after, wanted


def plan(params, vg_info, lvs, hostname="dom0"):
    """Decide what to do: returns (action, lv_after, size_bytes, warnings, snapshot_request) or raises ValueError.

    vg_info: parse_vgs dict of the VG (None: no such VG); lvs: parse_lvs dicts of the VG. Pure.
    """
    vg, name = params["vg"], params["name"]
    if vg_info is None:
        raise ValueError("%s: volume group %s does not exist" % (hostname, vg))
    current = ([lv for lv in lvs if lv["name"] == name] or [None])[0]
    warnings = []
    if params["state"] == "absent":
        action, after = _plan_absent(params, current, lvs, hostname)
        return action, after, None, warnings, None
    if params["snapshot_of"]:
        action, after, wanted, request = _plan_snapshot(params, vg_info, current, lvs, hostname, warnings)
        return action, after, wanted, warnings, request
    action, after, wanted = _plan_plain(params, vg_info, current, hostname, warnings)
    return action, after, wanted, warnings, None


def _diff_side(view):
    if view is None:
        return {"state": "absent"}
    side = {"state": "present", "size_bytes": view["size_bytes"]}
    if view["origin"]:
        side["snapshot_of"] = view["origin"]
    if view["stripes"] > 1:
        side.update(stripes=view["stripes"], stripe_size_bytes=view["stripe_size_bytes"])
    return side


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            vg=dict(type="str", required=True),
            size=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            shrink=dict(type="bool", default=False),
            snapshot_of=dict(type="str"),
            stripes=dict(type="int"),
            stripe_size=dict(type="str"),
        ),
        required_if=[("state", "present", ("size",))],
        mutually_exclusive=[("snapshot_of", "stripes"), ("snapshot_of", "stripe_size")],
        required_by={"stripe_size": ("stripes",)},
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_params(params)
    except ValueError as exc:
        msg = str(exc)
        if "invalid LVM" in msg:
            msg += ": names are letters, digits and _ . + -, not starting with -; no spaces, shell metacharacters or /"
        module.fail_json(msg=msg)

    runner = CommandRunner(module)
    lvm = Lvm(runner)
    vg, name = params["vg"], params["name"]
    hostname = socket.gethostname()
    try:
        vg_info = lvm.find_vg(vg)
        lvs = lvm.lvs([vg]) if vg_info is not None else []
        action, after, size_bytes, warnings, request = plan(params, vg_info, lvs, hostname)
    except CommandError as exc:
        fail_from_error(module, exc)
    except (ValueError, LvmParseError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)
    for warning in warnings:
        module.warn(warning)
    current = ([lv for lv in lvs if lv["name"] == name] or [None])[0]

    try:
        if action == "created":
            lvm.create(vg, name, size_bytes, params["stripes"],
                       parse_size(params["stripe_size"]) if params["stripe_size"] else None)
        elif action == "snapshot":
            if request[0] == "percent":
                lvm.snapshot(vg, params["snapshot_of"], name, percent=request[1])
            else:
                lvm.snapshot(vg, params["snapshot_of"], name, size_bytes)
        elif action in ("extended", "reduced"):
            lvm.resize(vg, name, size_bytes, current["size_bytes"])
        elif action == "removed":
            lvm.remove(vg, name)
        if action not in ("none", "removed") and not module.check_mode:
            found = lvm.find(vg, name)
            if found is None:
                module.fail_json(msg="%s: LV %s/%s missing after %s" % (hostname, vg, name, action), cmds=runner.ran)
            if found["size_bytes"] != after["size_bytes"]:
                module.warn("LV %s/%s is %d bytes after %s, not the %d bytes planned"
                            % (vg, name, found["size_bytes"], action, after["size_bytes"]))
            after = _view_of(found)
    except CommandError as exc:
        fail_from_error(module, exc)

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
            "before": _diff_side(_view_of(current) if current else None),
            "after": _diff_side(after),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
