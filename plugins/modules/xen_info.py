#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_info
short_description: Read a Xen dom0's host, domains, LVM and DRBD state in one call
version_added: 0.1.0
description:
  - Runs each read-only command once on the dom0 (C(xl info), C(xl list), C(vgs), C(lvs), optionally C(dmsetup table))
    and reads C(/proc/drbd) and the drained mark (RV(drained)), and returns the parsed results together.
  - Maps each domain to its config file in O(config_dir) by the C(name) setting of the files there.
  - A host without the DRBD module loaded, or without LVM tools, is not an error; those parts come back empty.
  - Never changes anything, so C(changed) is always V(false).
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.INFO_MODULE
options:
  toolstack:
    description:
      - Which Xen toolstack to run. V(auto) uses C(xl) when it is installed, else the legacy C(xm).
    type: str
    choices: [auto, xl, xm]
    default: auto
  config_dir:
    description:
      - Directory of the domain config files started at boot.
      - Each file in it is parsed; the C(name) setting links it to a running domain.
    type: path
    default: /etc/xen/auto
  vgs:
    description:
      - Only report these volume groups (and their logical volumes). All when omitted.
    type: list
    elements: str
  dm_tables:
    description:
      - Also return every device-mapper table (C(dmsetup table)), for example to see a DRBD table swap in place.
    type: bool
    default: false
  disk_exports:
    description:
      - "Also return the dom0's disk exports and imports (RV(disk_exports)), read from LIO (its configfs tree, with
        C(saveconfig.json) while it agrees), C(tgtadm), the collection's vblade units and C(ps),
        C(iscsiadm -m session -P 3), C(aoe-stat), the shared paths under C(/dev/sanless), the initiator name and the
        interface MACs."
      - A tool that is not installed adds nothing; one that fails adds a line to RV(disk_exports.errors).
    type: bool
    default: false
notes:
  - Commands run with C(LANG=C) and C(LC_ALL=C), without a shell.
requirements:
  - Xen C(xl) (or C(xm)) toolstack on the dom0.
  - LVM2 with JSON reports (2.02.158 or later) for the volume group and logical volume data.
seealso:
  - name: xl(1)
    description: The Xen toolstack command reference.
    link: https://xenbits.xen.org/docs/unstable/man/xl.1.html
"""

EXAMPLES = r"""
- name: Read the dom0 state
  sanless.xen.xen_info:
  register: dom0

- name: Show free memory and the running domUs
  ansible.builtin.debug:
    msg: "{{ dom0.host.free_memory_mib }} MiB free; {{ dom0.domains | rejectattr('is_dom0') | map(attribute='name') | list }}"

- name: Only the xenvg volume group, with the dm tables
  sanless.xen.xen_info:
    vgs: [xenvg]
    dm_tables: true
  register: dom0
"""

RETURN = r"""
host:
  description: The Xen host, from C(xl info).
  returned: success
  type: dict
  contains:
    hostname:
      description: Host name as Xen reports it (C(host) in C(xl info)).
      type: str
      sample: hosta
    total_memory_mib:
      description: Memory of the machine in MiB.
      type: int
      sample: 767
    free_memory_mib:
      description: Memory not used by any domain in MiB (what a new domU can get).
      type: int
      sample: 375
    nr_cpus:
      description: Number of physical CPUs.
      type: int
      sample: 2
    xen_version:
      description: Xen hypervisor version.
      type: str
      sample: 4.17.5-pre
    virt_caps:
      description: Virtualization capabilities; C(shadow) is needed for PV live migration.
      type: list
      elements: str
      sample: [pv, hvm, shadow]
    toolstack:
      description: The toolstack that was used.
      type: str
      sample: xl
    info:
      description:
        - Every C(key = value) of C(xl info) as strings, plus the typed fields above.
      type: dict
      sample: {"host": "hosta", "release": "6.1.0-28-amd64", "xen_caps": "xen-3.0-x86_64 hvm-3.0-x86_32"}
domains:
  description: Every domain, Domain-0 included, from C(xl list).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: vm1
    domid:
      description: Domain id.
      type: int
      sample: 3
    memory_mib:
      description: Current memory in MiB.
      type: int
      sample: 96
    vcpus:
      description: Number of virtual CPUs.
      type: int
      sample: 1
    state:
      description: The six state flags of C(xl list) (running, blocked, paused, shutdown, crashed, dying).
      type: str
      sample: "-b----"
    cpu_time_s:
      description: CPU time used, in seconds.
      type: float
      sample: 12.3
    config_file:
      description: Path of the config file in O(config_dir) whose C(name) is this domain, or V(null).
      type: str
      sample: /etc/xen/auto/vm1.cfg
    is_dom0:
      description: Whether this is Domain-0 (id 0).
      type: bool
      sample: false
config_files:
  description:
    - Every domain config in O(config_dir), running or not, keyed by the domain name its C(name) setting gives;
      the VMs this dom0 owns (starts at boot).
  returned: success
  type: dict
  sample: {"web01": "/etc/xen/auto/web01.cfg"}
boot_id:
  description: The kernel's boot id (C(/proc/sys/kernel/random/boot_id)), new at every boot; V(null) when unreadable.
  returned: success
  type: str
  sample: 6c1f0c4e-5b0e-4a34-9d44-3c0f6f6f1d7e
vgs:
  description: Volume groups, sizes in bytes.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: VG name.
      type: str
      sample: xenvg
    size_bytes:
      description: VG size in bytes.
      type: int
      sample: 2143289344
    free_bytes:
      description: Unallocated bytes in the VG.
      type: int
      sample: 1874853888
    pv_count:
      description: Number of physical volumes.
      type: int
      sample: 1
    lv_count:
      description: Number of logical volumes.
      type: int
      sample: 2
    extent_size_bytes:
      description: Physical extent size in bytes.
      type: int
      sample: 4194304
    attr:
      description: C(vg_attr) flags.
      type: str
      sample: wz--n-
    uuid:
      description: VG UUID.
      type: str
      sample: 3mKbYV-1Qqp-Fr3C-vuLc-Ho7K-uQEm-1Sxo1T
lvs:
  description: Logical volumes, sizes in bytes.
  returned: success
  type: list
  elements: dict
  contains:
    vg:
      description: VG of the LV.
      type: str
      sample: xenvg
    name:
      description: LV name.
      type: str
      sample: vm1-disk
    size_bytes:
      description: LV size in bytes.
      type: int
      sample: 268435456
    path:
      description: C(/dev/VG/LV) path, V(null) for hidden LVs.
      type: str
      sample: /dev/xenvg/vm1-disk
    dm_path:
      description: C(/dev/mapper/...) path, V(null) for hidden LVs.
      type: str
      sample: /dev/mapper/xenvg-vm1--disk
    active:
      description: Whether the LV is active.
      type: bool
      sample: true
    suspended:
      description: Whether the LV's device-mapper device is suspended.
      type: bool
      sample: false
    attr:
      description: C(lv_attr) flags.
      type: str
      sample: -wi-ao----
    uuid:
      description: LV UUID.
      type: str
      sample: 0lK7a2-Ubb8-Jh8u-xyWq-3vYI-4a9m-NpTGdn
    snapshot:
      description: Whether the LV is a classic (copy-on-write) snapshot.
      type: bool
      sample: false
    invalid:
      description: Whether the LV is a snapshot whose copy-on-write space overflowed (the snapshot is lost).
      type: bool
      sample: false
    origin:
      description: The LV a snapshot is of, V(null) for other LVs.
      type: str
      sample: vm1-disk
    data_percent:
      description: How full a snapshot's copy-on-write space (or a thin LV's data) is, in percent; V(null) when LVM gives none.
      type: float
      sample: 37.7
    created:
      description: When the LV was made, as LVM prints it (C(lv_time)).
      type: str
      sample: "2026-12-04 04:39:37 +0000"
    created_epoch:
      description: The same in seconds since the epoch, V(null) when LVM prints it in another form.
      type: int
      sample: 1796359177
    segtype:
      description: Segment type (C(linear), C(striped), ...).
      type: str
      sample: linear
    stripes:
      description: Number of stripes.
      type: int
      sample: 1
    stripe_size_bytes:
      description: Stripe size in bytes, 0 when not striped.
      type: int
      sample: 0
drbd:
  description: DRBD state from C(/proc/drbd) (DRBD 8), or C(drbdsetup status --json) (DRBD 9).
  returned: success
  type: dict
  contains:
    version:
      description: DRBD kernel module version, V(null) when the module is not loaded.
      type: str
      sample: 8.4.11
    api:
      description: API version of the kernel module.
      type: str
      sample: "1"
    proto:
      description: Protocol versions the module speaks.
      type: str
      sample: 86-101
    build:
      description: The GIT-hash or srcversion line of the module.
      type: str
      sample: 1C8EAD6B59B6B7DEA88A4D7
    minors:
      description:
        - Each configured minor, keyed by the minor number as a string.
        - Each has C(cstate), C(role), C(peer_role), C(disk), C(peer_disk), C(protocol), C(flags),
          C(unconfigured) (bool), C(sync_percent) (float or null), C(sync_eta_s) (int or null),
          C(speed_kib_s) and C(want_kib_s) (int or null), C(verify_percent) and C(stats) (the I/O counters).
        - C(flags) and a counter in C(stats) are null when the kernel printed them unreadable (DRBD 8.3
          kernels have been seen putting NUL bytes there).
        - On DRBD 9 hosts each minor also names its C(resource).
      type: dict
      sample: {"0": {"cstate": "Connected", "role": "Primary", "peer_role": "Secondary", "disk": "UpToDate",
               "peer_disk": "UpToDate", "sync_percent": null, "sync_eta_s": null, "speed_kib_s": null, "unconfigured": false}}
disk_exports:
  description: With O(disk_exports=true), who exports what to whom as this dom0 sees it. No secrets.
  returned: when O(disk_exports=true)
  type: dict
  contains:
    initiator:
      description: This dom0's iSCSI initiator IQN (C(/etc/iscsi/initiatorname.iscsi)), or V(null).
      type: str
      sample: iqn.2026-11.lab.sanless:hostb:54df6118618
    macs:
      description: Interface name to MAC address.
      type: dict
      sample: {"xenbr0": "2e:4f:b1:ca:36:c2"}
    exports:
      description:
        - The LVs this dom0 exports, each with C(transport) (V(iscsi) or V(aoe)), C(device), C(resolved) (the device
          node C(device) leads to, V(null) when none is there), C(allowed) (initiator
          IQNs or MACs; empty is everyone with AoE); iSCSI adds C(backend), C(target), C(lun); AoE adds C(shelf),
          C(slot), C(interface), C(unit) (the collection's systemd unit, or V(null)) and C(pid) (V(null) when not running).
      type: list
      elements: dict
    imports:
      description:
        - The disks this dom0 imports, each with C(transport), C(device), C(path) (the by-path link of an iSCSI LUN,
          the C(/dev/etherd) device of AoE) and C(state); iSCSI adds C(target), C(address), C(port), C(lun);
          AoE adds C(shelf) and C(slot).
      type: list
      elements: dict
    shared_paths:
      description: The links under C(/dev/sanless), each with C(path), C(owner), C(vg), C(lv), C(device) (where it
        leads) and C(present) (a device is there).
      type: list
      elements: dict
    boot_units:
      description:
        - The systemd units this dom0 starts at boot (linked in a C(.wants) or C(.requires) folder under
          C(/etc/systemd/system)), sorted. The role C(sanless.xen.disk_export) enables only the boot services of the
          storage stack that are not among them.
      type: list
      elements: str
      sample: ["iscsid.socket", "open-iscsi.service", "rtslib-fb-targetctl.service", "ssh.service"]
    errors:
      description: What could not be read.
      type: list
      elements: str
drained:
  description:
    - The dom0's drained mark (C(/var/lib/sanless-xen/drained), written by the role C(sanless.xen.evacuate)), or
      V(null) when the host is not drained. A drained dom0 is no target of evacuations and placements.
    - C(by), C(since) (epoch seconds) and C(reason) as the mark says (V(null) when it does not), and its C(path).
  returned: success
  type: dict
  sample: {"by": "evacuate", "since": 1796371200, "reason": "nightly maintenance", "path": "/var/lib/sanless-xen/drained"}
dm_tables:
  description: Every device-mapper table, keyed by dm name; each a list of segments in 512-byte sectors.
  returned: when O(dm_tables=true)
  type: dict
  sample: {"xenvg-vm1--disk": [{"start": 0, "length": 524288, "target": "linear", "args": ["254:16", "2048"],
           "device": "254:16", "offset": 2048}]}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils.conventions import drained_mark_path
from ansible_collections.sanless.xen.plugins.module_utils.diskexport import storage_facts
from ansible_collections.sanless.xen.plugins.module_utils.dm import DeviceMapper
from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    drbd9_minors,
    parse_drbdsetup_status_json,
    read_proc_drbd,
)
from ansible_collections.sanless.xen.plugins.module_utils.lvm import Lvm
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    Toolstack,
    XenParseError,
    detect_toolstack,
    parse_domain_config,
    read_drained_mark,
)


def config_files_by_name(config_dir, warn):
    """{domain name: config path} for the files in config_dir (unreadable ones are warned about)."""
    found = {}
    if not os.path.isdir(config_dir):
        return found
    for entry in sorted(os.listdir(config_dir)):
        path = os.path.join(config_dir, entry)
        if entry.startswith(".") or entry.endswith("~") or not os.path.isfile(path):
            continue
        try:
            with open(path) as handle:
                name = parse_domain_config(handle.read()).get("name")
        except (IOError, OSError, UnicodeDecodeError, XenParseError) as exc:
            warn("cannot read domain config %s: %s" % (path, exc))
            continue
        if not isinstance(name, str):
            warn("domain config %s has no name setting" % (path,))
        elif name in found:
            warn("domain %s is named in both %s and %s; using the first" % (name, found[name], path))
        else:
            found[name] = path
    return found


BOOT_ID = "/proc/sys/kernel/random/boot_id"


def read_boot_id(path=BOOT_ID):
    """This boot's id (changes at every boot), or None when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read().strip() or None
    except (IOError, OSError):
        return None


def gather(runner, toolstack="auto", config_dir="/etc/xen/auto", vgs=None, dm_tables=False, warn=None,
           proc_drbd="/proc/drbd", disk_exports=False, drained_mark=None, boot_id_path=BOOT_ID):
    """Everything xen_info returns; each command runs once. Raises CommandError/ValueError."""
    warn = warn or (lambda msg: None)
    name = detect_toolstack(runner, toolstack)
    xen = Toolstack(runner, name)
    info = xen.info()
    configs = config_files_by_name(config_dir, warn)
    domains = []
    for dom in xen.list():
        dom = dict(dom)
        dom["config_file"] = configs.get(dom["name"])
        dom["is_dom0"] = dom["domid"] == 0
        domains.append(dom)
    result = {
        "changed": False,
        "host": {
            "hostname": info.get("host"),
            "total_memory_mib": info["total_memory_mib"],
            "free_memory_mib": info["free_memory_mib"],
            "nr_cpus": info["nr_cpus"],
            "xen_version": info["xen_version"],
            "virt_caps": info["virt_caps"],
            "toolstack": name,
            "info": info,
        },
        "domains": domains,
        "config_files": configs,
        "boot_id": read_boot_id(boot_id_path),
        "vgs": [],
        "lvs": [],
        "drained": read_drained_mark(drained_mark or drained_mark_path()),
    }
    if runner.has_tool("lvs"):
        lvm = Lvm(runner)
        result["vgs"] = lvm.vgs(vgs)
        result["lvs"] = lvm.lvs(vgs)
    else:
        warn("LVM tools not found; vgs and lvs are empty")
    drbd = read_proc_drbd(proc_drbd)
    if drbd["version"] and drbd["version"].split(".")[0] not in ("8",) and runner.has_tool("drbdsetup"):
        # DRBD 9 keeps its per-minor state out of /proc/drbd.
        drbd["minors"] = drbd9_minors(parse_drbdsetup_status_json(runner.stdout(["drbdsetup", "status", "--json"])))
    # Minor numbers as string keys: what JSON would make of them anyway, but stated.
    drbd["minors"] = dict((str(minor), state) for minor, state in sorted(drbd["minors"].items()))
    result["drbd"] = drbd
    if dm_tables:
        result["dm_tables"] = DeviceMapper(runner).tables()
    if disk_exports:
        result["disk_exports"] = storage_facts(runner)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            toolstack=dict(type="str", default="auto", choices=["auto", "xl", "xm"]),
            config_dir=dict(type="path", default="/etc/xen/auto"),
            vgs=dict(type="list", elements="str"),
            dm_tables=dict(type="bool", default=False),
            disk_exports=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    runner = CommandRunner(module)
    try:
        result = gather(
            runner,
            toolstack=module.params["toolstack"],
            config_dir=module.params["config_dir"],
            vgs=module.params["vgs"],
            dm_tables=module.params["dm_tables"],
            warn=module.warn,
            disk_exports=module.params["disk_exports"],
        )
    except CommandError as exc:
        fail_from_error(module, exc)
    except (ValueError, IOError, OSError) as exc:
        # The parsers' errors are ValueErrors with a message that names the command and line.
        module.fail_json(msg=str(exc), cmds=runner.ran)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
