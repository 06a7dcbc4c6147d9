#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: drbd_resource
short_description: A DRBD resource with one peer and external metadata, up, down or absent
version_added: 0.1.0
description:
  - Manages the DRBD resource O(name) between this dom0 and one peer, with its backing device O(disk) and
    external metadata on O(meta_disk), in the DRBD 8.4 or 9 userland syntax.
  - Writes C(O(conf_dir)/NAME.res) (mode C(0600), it may hold the shared secret) through a temporary file and a
    rename, only when its content differs. Both dom0s write the same file (hosts sorted by name).
  - With O(state=up), creates the metadata when needed (see O(create_md)), runs C(drbdadm up) when the minor is
    not configured, and changes the role only when it differs from O(role).
  - On a running resource, a change of O(allow_two_primaries) or O(resync_rate) is applied with
    C(drbdadm net-options) or C(drbdadm disk-options) when it changes in the res file. Other changes (addresses,
    devices, secret) are written to the file and take effect at the next C(drbdadm adjust) or down/up; the module
    warns about them.
  - Whether the resource is up is read from C(/proc/drbd) by minor, and whose the minor is by resource name. On
    DRBD 8.4, whose C(/proc/drbd) shows no names, with C(drbdsetup show MINOR) when the minor is listed there
    (also C(cs:Unconfigured)); on DRBD 9 from C(drbdsetup status --json). A minor used by another resource makes
    the module fail before anything changes, naming both resources (also in check mode); with O(state=absent)
    the other resource is left alone and only this one's res file is removed. DRBD kernels before 8.4 know no
    resource names; a listed minor is taken to be this resource's, with a warning.
  - Every command is an argv list run without a shell, with C(LANG=C). Bad input fails before anything runs.
  - With O(wait=true), the action plugin of the same name calls the module again and again (each call waits at
    most O(wait_window) seconds) until the resource is Connected and UpToDate/UpToDate, printing one progress line
    (percent, speed, ETA) per call, so at least every O(progress_interval) seconds, and fails after
    O(wait_timeout) seconds or as soon as the resource goes StandAlone.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  name:
    description:
      - Resource name. Letters, digits and C(_ . -), not starting with C(.) or C(-); other names are refused
        before anything runs.
    type: str
    required: true
  minor:
    description:
      - DRBD minor (C(/dev/drbdMINOR)), 0 to 1048575. The resource's line in C(/proc/drbd); a minor that another
        resource uses is refused.
    type: int
    required: true
  port:
    description: TCP port of the replication link on both hosts, 1 to 65535. Defaults to 7700 + O(minor).
    type: int
  disk:
    description: Backing block device (path under C(/dev)). Required unless O(state=absent).
    type: str
  meta_disk:
    description:
      - Block device of the external metadata (path under C(/dev)), for example an LV of 4 MiB or more.
        Internal metadata is not supported. Required unless O(state=absent).
    type: str
  host_name:
    description: This dom0's node name as C(uname -n) prints it (the default), which DRBD matches in its C(on) section.
    type: str
  address:
    description: This dom0's IPv4 address for the replication link. Required unless O(state=absent).
    type: str
  peer_name:
    description: The peer's node name as C(uname -n) prints it there. Required unless O(state=absent).
    type: str
  peer_address:
    description: The peer's IPv4 address. Required unless O(state=absent).
    type: str
  state:
    description:
      - V(up) writes the res file and brings the resource up (metadata created first when needed).
      - V(down) writes the res file and takes the resource down when it is up.
      - V(absent) takes the resource down (C(drbdsetup down) when no res file is left) and removes the res file.
    type: str
    choices: [up, down, absent]
    default: up
  role:
    description:
      - Role of this side; unchanged when not given. Only with O(state=up).
      - DRBD refuses V(primary) while the peer is primary unless O(allow_two_primaries=true) on both sides, and
        on a disk that is not UpToDate unless O(force=true); the module then fails with DRBD's message.
    type: str
    choices: [primary, secondary]
  force:
    description:
      - With O(role=primary), C(drbdadm primary --force), which makes this side the sync source of the initial
        sync. Applied only when the local disk is not UpToDate, so a second run changes nothing.
      - When the resource is then C(Connected) to an C(Inconsistent) peer with no sync running (DRBD 8.4 starts none
        when the peer connected, both sides on fresh metadata, just before the promotion), C(drbdadm invalidate-remote)
        starts the full sync, after a grace of 3 s. Never against a peer that is C(UpToDate), C(Outdated) or
        C(Consistent). A later run repairs a resource left that way as well.
    type: bool
    default: false
  allow_two_primaries:
    description:
      - Written as C(allow-two-primaries) in the net section, and applied with
        C(drbdadm net-options --allow-two-primaries=yes|no) on a running resource when it changes in the res file.
      - When not given, the option is left out of the file and the running resource is not touched.
    type: bool
  resync_rate:
    description:
      - Fixed resync rate (V(400M), units K, M, G), written as C(resync-rate) with C(c-plan-ahead 0) in the disk
        section, and applied with C(drbdadm disk-options) on a running resource when it changes in the res file.
    type: str
  shared_secret:
    description:
      - Secret authenticating the peers (C(cram-hmac-alg sha256)), 1 to 64 characters without spaces, quotes,
        backslash, C(;), C({ }) or C(#). Never shown, the diff masks it.
    type: str
  version:
    description:
      - Userland syntax of the res file. V(auto) is V(9) when the version line of C(/proc/drbd) is 9.x, V(8.4)
        otherwise (also when the drbd module is not loaded yet; set V(9) on such DRBD 9 hosts).
    type: str
    choices: [auto, "8.4", "9"]
    default: auto
  conf_dir:
    description: Folder of the res files, which must exist.
    type: path
    default: /etc/drbd.d
  create_md:
    description:
      - When the resource is not up, check the metadata with C(drbdadm get-gi NAME) (it reads only the superblock,
        where C(dump-md) would also print the whole bitmap) and, when there is none (get-gi fails with rc 1 and
        prints nothing, or drbdmeta reports C(No valid meta data found)), run C(drbdadm create-md --force NAME).
        Valid metadata is never recreated; any other get-gi failure makes the module fail rather than overwrite
        a device it cannot read.
      - In check mode with a res file not written yet, drbdadm cannot be asked, so create-md is listed in RV(would_run)
        and RV(metadata) is V(unknown).
    type: bool
    default: true
  wait:
    description: Wait until the resource is Connected and UpToDate on both sides (see the description). Only with O(state=up).
    type: bool
    default: false
  wait_timeout:
    description: With O(wait=true), fail after this many seconds.
    type: int
    default: 3600
  progress_interval:
    description: With O(wait=true), print progress at least every this many seconds (1 to 30).
    type: int
    default: 10
  wait_window:
    description:
      - Internal, set by the action plugin from O(progress_interval). Seconds one module call waits for
        UpToDate/UpToDate before returning its progress (0 to 25).
    type: int
    default: 10
notes:
  - Commands run with C(LANG=C), without a shell.
  - Run it on both dom0s with O(host_name)/O(address) and O(peer_name)/O(peer_address) swapped; the res files are
    identical.
requirements:
  - drbd-utils (C(drbdadm), and C(drbdsetup) for DRBD 9).
seealso:
  - module: sanless.xen.lvm_volume
"""

EXAMPLES = r"""
- name: Metadata LV
  sanless.xen.lvm_volume:
    vg: xenvg
    name: web01-meta
    size: 8M

- name: Resource up on both dom0s (run against hosta and hostb)
  sanless.xen.drbd_resource:
    name: web01
    minor: 20
    disk: /dev/xenvg/web01-disk
    meta_disk: /dev/xenvg/web01-meta
    address: "{{ drbd_address }}"
    peer_name: "{{ drbd_peer_name }}"
    peer_address: "{{ drbd_peer_address }}"
    shared_secret: "{{ web01_drbd_secret }}"
    resync_rate: 400M

- name: hosta is the initial sync source; wait for the sync, printing progress
  sanless.xen.drbd_resource:
    name: web01
    minor: 20
    disk: /dev/xenvg/web01-disk
    meta_disk: /dev/xenvg/web01-meta
    address: 10.77.0.11
    peer_name: hostb
    peer_address: 10.77.0.12
    shared_secret: "{{ web01_drbd_secret }}"
    resync_rate: 400M
    role: primary
    force: true
    wait: true
    wait_timeout: 7200
  when: inventory_hostname == 'hosta'

- name: Remove it
  sanless.xen.drbd_resource:
    name: web01
    minor: 20
    state: absent
"""

RETURN = r"""
resource:
  description: The live state of the resource after the change (in check mode, as it is now).
  returned: success
  type: dict
  contains:
    name:
      description: Resource name.
      type: str
      sample: web01
    minor:
      description: Minor.
      type: int
      sample: 20
    up:
      description: The minor is configured.
      type: bool
      sample: true
    cstate:
      description: Connection state (C(cs:) of DRBD 8.4; the replication state of DRBD 9 while connected), null when down.
      type: str
      sample: SyncSource
    role:
      description: This side's role.
      type: str
      sample: Primary
    peer_role:
      description: The peer's role.
      type: str
      sample: Secondary
    disk:
      description: This side's disk state.
      type: str
      sample: UpToDate
    peer_disk:
      description: The peer's disk state.
      type: str
      sample: Inconsistent
    sync_percent:
      description: Sync progress in percent while syncing, else null.
      type: float
      sample: 67.4
    speed_kib_s:
      description: Current sync speed in KiB/s (DRBD 8.4), else null.
      type: int
      sample: 3692
    sync_eta_s:
      description: Estimated seconds to the end of the sync (DRBD 8.4), else null.
      type: int
      sample: 18
synced:
  description: The resource is Connected and UpToDate on both sides.
  returned: success
  type: bool
  sample: false
metadata:
  description: What the metadata check found.
  returned: success
  type: str
  choices: [not checked, present, created, unknown]
  sample: created
res_file:
  description: Path of the res file.
  returned: success
  type: str
  sample: /etc/drbd.d/web01.res
version:
  description: Userland syntax of the res file.
  returned: success
  type: str
  sample: "8.4"
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: [["drbdadm", "get-gi", "web01"], ["drbdadm", "create-md", "--force", "web01"], ["drbdadm", "up", "web01"]]
would_run:
  description: In check mode, the commands that would have changed the dom0.
  returned: success
  type: list
  elements: list
  sample: []
wait_seconds:
  description: With O(wait=true), seconds the action plugin waited.
  returned: when O(wait=true)
  type: float
  sample: 42.5
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    DrbdError,
    DrbdParseError,
    DrbdResource,
    check_resource_params,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error

REQUIRED_UNLESS_ABSENT = ("disk", "meta_disk", "address", "peer_name", "peer_address")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            minor=dict(type="int", required=True),
            port=dict(type="int"),
            disk=dict(type="str"),
            meta_disk=dict(type="str"),
            host_name=dict(type="str"),
            address=dict(type="str"),
            peer_name=dict(type="str"),
            peer_address=dict(type="str"),
            state=dict(type="str", default="up", choices=["up", "down", "absent"]),
            role=dict(type="str", choices=["primary", "secondary"]),
            force=dict(type="bool", default=False),
            allow_two_primaries=dict(type="bool"),
            resync_rate=dict(type="str"),
            shared_secret=dict(type="str", no_log=True),
            version=dict(type="str", default="auto", choices=["auto", "8.4", "9"]),
            conf_dir=dict(type="path", default="/etc/drbd.d"),
            create_md=dict(type="bool", default=True),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=3600),
            progress_interval=dict(type="int", default=10),
            wait_window=dict(type="int", default=10),
        ),
        required_if=[("state", "up", REQUIRED_UNLESS_ABSENT), ("state", "down", REQUIRED_UNLESS_ABSENT)],
        supports_check_mode=True,
    )
    params = dict(module.params)
    if params["host_name"] is None:
        params["host_name"] = os.uname()[1]
    try:
        check_resource_params(params)
    except DrbdError as exc:
        module.fail_json(msg="%s: %s" % (params["host_name"], exc))

    runner = CommandRunner(module)
    resource = DrbdResource(runner, params)
    try:
        result = resource.ensure()
    except CommandError as exc:
        fail_from_error(module, exc)
    except (DrbdError, DrbdParseError) as exc:
        module.fail_json(msg="%s: %s" % (params["host_name"], exc), cmds=runner.ran, would_run=runner.would_run)
    for warning in resource.warnings:
        module.warn(warning)
    if not module._diff:
        del result["diff"]
    module.exit_json(changed=resource.changed, **result)


if __name__ == "__main__":
    main()
