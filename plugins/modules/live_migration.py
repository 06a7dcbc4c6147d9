#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: live_migration
short_description: One host's half of a DRBD-backed live migration of a VM on plain local LVs
version_added: 0.1.0
description:
  - Runs one step of the live migration of a Xen domain whose disks are plain local LVs, on the
    source or the target dom0. The role C(sanless.xen.migrate) orders the steps on both hosts;
    use it rather than this module directly.
  - Each disk LV is routed, by a device-mapper table swap under C(xl pause), through a temporary
    DRBD 8.4 resource with external metadata on a clone of the LV's own table; after the sync both
    sides are primary for the C(xl migrate); then the tables are swapped back and everything the
    migration created is removed.
  - Every step reads the live state and does only what is missing, and a journal per VM on each
    host (in O(state_dir)) keeps the original tables, minors and secret, so a killed run can be
    resumed by running it again, or rolled back with O(step=abort). The journal is also the lock.
  - The action plugin of the same name adds the controller's identity to O(owner), decides whether a
    journal left by a dead run may be taken over, and prints the sync progress while O(step=promote) runs.
options:
  vm:
    description: Name of the domain.
    type: str
    required: true
  step:
    description:
      - V(preflight) changes nothing and reports what the controller needs to plan (on any dom0).
      - V(prepare), V(promote), V(finish) are the migration, in that order, each run on both hosts at once.
      - V(finish) on the source runs C(xl migrate) (unless its journal has one done), then removes what the
        source no longer needs; on the target it waits for the domain to arrive (xl renames C(VM--incoming) to
        C(VM) once the source has handed it over), waits up to 60 s for the source to take its side of DRBD down (which
        it does once it has verified the target's copy, so the swap back flushes on the target alone), then restores
        its tables. It fails when no incoming domain
        shows up within 180 s or when it vanishes without arriving (C(xl migrate) failed).
      - V(migrate) runs only the C(xl migrate) on the source, for callers that order the steps themselves.
      - A step waits for a step of the same VM still running on this host (from a killed run) to end first.
      - A step runs nothing when this host already began a later one (RV(past_step)) or when its check holds (the
        step is done here); V(abort) undoes the steps this host began, last first. The table of steps, checks and
        undos is in the collection's C(docs/migration-steps.md).
      - V(prepare) then watches the sync it started for up to O(sync_window) seconds (RV(synced)).
      - V(promote) first waits up to O(sync_window) seconds for the DRBD sync; while it is not done it
        returns RV(waiting) and the progress. The action plugin then watches the sync in C(/proc/drbd) (a
        C(cat) over the connection, no module start, so its cost does not grow with the disk) and calls it
        again once the sync is done, the link is not resyncing, or 300 seconds have passed.
      - V(abort) rolls back to the VM running on the source with its original LVs.
    type: str
    required: true
    choices: [preflight, prepare, promote, migrate, finish, abort]
  role:
    description: Which half this host runs. Required for every step but V(preflight).
    type: str
    choices: [source, target]
  host_name:
    description: This host's name as the peer knows it (DRBD C(on) section).
    type: str
  address:
    description: This host's address for DRBD replication.
    type: str
  peer_name:
    description: The other host's name.
    type: str
  peer_address:
    description: The other host's address (DRBD and C(xl migrate) go there).
    type: str
  peers:
    description: With O(step=preflight) on the host running the VM, addresses to check root ssh to.
    type: list
    elements: str
    default: []
  disks:
    description:
      - The VM's disks as the plan gives them (O(step=prepare) of a new migration).
      - In storage mode plain each has C(vg) and C(lv) (the disk on the source), C(size_bytes) and C(target_vg),
        the VG the target creates the disk in (C(vg) when absent). When a disk changes VG, the source runs
        C(xl migrate -C) with the domain's config file, its disks' paths rewritten to the target's VGs, and the
        target installs that config in C(/etc/xen/auto). Where the file leaves them to libxl, the running domain's
        C(uuid) and each vif's C(mac=) (from C(xl list -l), vifs matched to the domain's NICs in order) are set
        in that config, so that the target does not choose them anew; with a vif without C(mac=) and NICs that
        no longer match the file's vifs one to one (one hot-plugged or detached since), the source refuses
        C(xl migrate). Anything else the file leaves to libxl is chosen anew on the target.
    type: list
    elements: dict
    default: []
  minors:
    description: DRBD minors for the disks, in order (O(step=prepare) of a new migration).
    type: list
    elements: int
    default: []
  migration_id:
    description: Identifier of this migration (O(step=prepare) of a new migration).
    type: str
  mode:
    description:
      - Storage mode of the VM (O(step=prepare) of a new migration; later steps read it from the journal).
      - V(plain) for disks on local LVs, moved through temporary DRBD resources.
      - V(drbd) for disks permanently on DRBD between the source and the target (the secondary); O(disks)
        then name the resources (C(resource)) and O(minors) their minors.
      - V(shared) for disks on their shared paths C(/dev/sanless/<owner>/<vg>/<lv>) (the owner's LVs, exported over
        iSCSI or AoE and imported on the target, see the role C(sanless.xen.disk_export)) - no DRBD, plain C(xl migrate);
        O(disks) name C(owner), C(vg) and C(lv), O(minors) is empty.
    type: str
    choices: [plain, drbd, shared]
    default: plain
  secret:
    description: Shared secret authenticating the DRBD peers (O(step=prepare) of a new migration).
    type: str
  resume:
    description:
      - With O(step=prepare), the controller planned a resume of O(migration_id) from a journal it saw. When this
        host's journal of it has been closed meanwhile (the killed run's last step ended it), the step changes
        nothing and returns RV(ended); the role then stops.
    type: bool
    default: false
  rekey:
    description:
      - With O(step=prepare) of a resume where one host had no journal (a run killed before its prepare there), this
        host takes the new O(secret) for the temporary DRBD resources, which only a side that has not reached step
        V(promote) may do.
    type: bool
    default: false
  owner:
    description: Identity of the controller run (set by the action plugin).
    type: dict
    default: {}
  takeover:
    description: Take over a journal written by another (dead) run.
    type: bool
    default: false
  target_finished:
    description:
      - With O(step=finish) on the source, the target reported the VM running there. Not needed when this
        host's journal records a successful C(xl migrate), as the role's runs do.
    type: bool
    default: false
  sync_window:
    description:
      - With O(step=promote), seconds to wait for UpToDate/UpToDate (and for the peer to allow two primaries) before
        returning progress.
      - With O(step=prepare), seconds to watch the sync it started (counted once linked, and as long for the peer to
        connect) before returning, from the same process, so that the next step's module start does not take the CPU
        a short sync needs on a busy dom0. Nothing is journaled or refused meanwhile; promote judges the state.
    type: int
    default: 10
  resync_rate:
    description:
      - DRBD resync rate of the temporary resources (C(resync-rate), with C(c-plan-ahead 0) a fixed rate, and
        C(c-min-rate 0) so that the guest's own I/O does not slow the copy down), a number with an optional unit
        K, M or G. Set it to what the replication link carries; below it, it caps the sync.
      - Refused before any change when it is not such a number.
    type: str
    default: 400M
  pause_domain:
    description:
      - Pause the domain (C(xl pause)) while its disks' tables are swapped, so that a guest with several
        disks never sees one swapped and another not. Each swap is atomic either way (C(dmsetup resume)
        of a preloaded table flushes, suspends, swaps and resumes in one call).
      - It applies to every swap under a running guest, the source's onto DRBD (O(step=prepare)), the target's
        back onto its extents (O(step=finish)) and the source's back (O(step=abort)).
    type: bool
    default: true
  state_dir:
    description: Folder of the journals.
    type: path
    default: /var/lib/sanless-xen
  lock_dir:
    description:
      - Folder of the per-VM step locks (flock), on tmpfs so they vanish at boot. A step waits up to 30 minutes for
        the same VM's step still running on this host (a killed run's module goes on to its end).
    type: path
    default: /run/sanless-xen
extends_documentation_fragment:
  - sanless.xen.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author:
  - sanless.xen developers (@sanless)
"""

EXAMPLES = r"""
- name: Report what the planner needs
  sanless.xen.live_migration:
    vm: web01
    step: preflight
    peers: [10.0.0.12]
"""

RETURN = r"""
ended:
  description: With O(resume), the outcome (V(finished), V(aborted)) of the resumed migration, closed on this host meanwhile.
  returned: when the resumed migration had ended here
  type: str
journal:
  description:
    - This host's journal of the migration (without the secret), or null.
    - In storage mode plain each of its C(disks) has C(vg), this host's VG of the disk, and C(source_vg) and C(target_vg).
  returned: always
  type: dict
events:
  description: What this call changed, in order.
  returned: always
  type: list
  elements: str
preflight:
  description: With O(step=preflight), this host's facts for the plan.
  returned: when step is preflight
  type: dict
  contains:
    runs_vm:
      description: The VM runs here.
      type: bool
    vm_memory_mib:
      description: The VM's memory when it runs here.
      type: int
    vm_vcpus:
      description: The VM's vCPUs when it runs here.
      type: int
    vg_extent_bytes:
      description: VG name to its extent size in bytes.
      type: dict
    vm_type:
      description: The guest type (pv, pvh or hvm) when it runs here.
      type: str
    disks:
      description:
        - The VM's disks when it runs here, each with vg, lv, size_bytes, pdev_path and vdev.
        - A disk on a shared path (C(/dev/sanless/<owner>/<vg>/<lv>)) has C(shared) set to its owner, vg and lv.
      type: list
      elements: dict
    shared_paths:
      description: The shared paths (C(/dev/sanless/<owner>/<vg>/<lv>)) that lead to a device here.
      type: list
      elements: str
    config_present:
      description:
        - Whether /etc/xen/auto/VM.cfg exists here. Its text (it may hold a VNC password) is never returned; the
          source sends it to the target by root ssh right before C(xl migrate) and takes it out of its own
          C(/etc/xen/auto), so that no reboot of either host starts the guest twice; the target installs it (0600)
          once the guest runs there.
      type: bool
    free_memory_mib:
      description: Free Xen memory.
      type: int
    virt_caps:
      description: Xen virt_caps.
      type: list
      elements: str
    vgs:
      description: VG name to free bytes.
      type: dict
    lvs:
      description: Names of the LVs of each VG.
      type: dict
    used_minors:
      description: DRBD minors in use.
      type: list
      elements: int
    listening_ports:
      description: TCP ports listening here.
      type: list
      elements: int
    ssh_ok:
      description: Peer address to whether root ssh to it works.
      type: dict
    drbd_resources:
      description:
        - DRBD resources configured in C(/etc/drbd.d) on this host, by name, each with minor, device,
          peer (name, address, port) and the live role, peer_role, cstate, disk, peer_disk.
        - A disk of the VM on C(/dev/drbdN) has C(drbd) set to the name of its resource (storage mode drbd).
      type: dict
sync:
  description: With O(step=promote), per disk its resource and minor, the connection and disk states, percent, speed, ETA.
  returned: when step is promote
  type: list
  elements: dict
synced:
  description:
    - With O(step=promote), all disks are UpToDate on both sides.
    - With O(step=prepare), the sync prepare started was done within O(sync_window) seconds of it.
  returned: when step is promote or prepare (not in check mode)
  type: bool
waiting:
  description: With O(step=promote), the step is not done yet (sync running, or the peer has not allowed two primaries); call again.
  returned: when step is promote
  type: bool
past_step:
  description: This host had already started a later step, so this step was a no-op (a resumed run).
  returned: when true
  type: bool
lock_owner:
  description: The owner of a journal this call refused to take over.
  returned: on lock failure
  type: dict
"""

import os
import time
import socket
import threading

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    DrbdError, both_uptodate, check_resync_rate, device_minor, minor_state, resource_files,
)
from ansible_collections.sanless.xen.plugins.module_utils.lvm import lv_of_path
from ansible_collections.sanless.xen.plugins.module_utils.replica import disk_names
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner
from ansible_collections.sanless.xen.plugins.module_utils.xen import Toolstack, shared_ssh_argv


def listening_ports():
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as handle:
                lines = handle.read().splitlines()[1:]
        except (IOError, OSError):
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def drbd_resources(hostname, minors, conf_dir=lm.DRBD_CONF_DIR):
    """Resources of this host's /etc/drbd.d/*.res with their live state from /proc/drbd."""
    resources = {}
    for path, res in resource_files(conf_dir):
        me = [h for h in res["hosts"] if h["name"] == hostname]
        peers = [h for h in res["hosts"] if h["name"] != hostname]
        minor = device_minor(me[0]["device"]) if me else None
        if minor is None or len(peers) != 1:
            continue
        state = minor_state(minors, minor) or {}
        resources[res["name"]] = {
            "minor": minor, "device": me[0]["device"], "disk": me[0]["disk"], "path": path,
            "peer": {"name": peers[0]["name"], "address": peers[0]["address"], "port": peers[0]["port"]},
            "state": {k: state.get(k) for k in ("role", "peer_role", "cstate", "disk", "peer_disk")},
        }
    return resources


def preflight(module, host, runner):
    # only the preflight reads exports (iSCSI, AoE): imported here, every other step starts without
    # compiling them (each module start costs seconds on a busy dom0)
    from ansible_collections.sanless.xen.plugins.module_utils import diskexport

    vm = module.params["vm"]
    domains = host.domains()
    ssh_checks = []
    if vm in domains:
        for peer in module.params["peers"]:
            ssh_checks.append((peer, _SshCheck(runner, peer)))
            ssh_checks[-1][1].start()
    info = host.xen.info()
    minors = host.drbd()
    claimed_minors, claimed_ports = lm.claimed_resources(module.params["state_dir"], lm.DRBD_CONF_DIR, minors,
                                                         except_vm=vm)
    journal = lm.Journal(vm, module.params["state_dir"])
    hostname = socket.gethostname()
    facts = {"hostname": hostname, "runs_vm": vm in domains, "free_memory_mib": info["free_memory_mib"],
             "virt_caps": info["virt_caps"], "used_minors": sorted(claimed_minors),
             "listening_ports": sorted(set(listening_ports()) | set(claimed_ports)), "vgs": {}, "lvs": {}, "disks": [], "ssh_ok": {},
             "config_present": False, "vm_memory_mib": None, "vm_vcpus": None, "vm_type": None, "vg_extent_bytes": {},
             "drbd_resources": drbd_resources(hostname, minors), "history": journal.history(),
             "shared_paths": [shared["path"] for shared in diskexport.shared_paths() if shared["present"]]}
    for vg in host.lvm.vgs():
        facts["vgs"][vg["name"]] = vg["free_bytes"]
        facts["vg_extent_bytes"][vg["name"]] = vg["extent_size_bytes"]
    all_lvs = host.lvm.lvs()
    for lv in all_lvs:
        facts["lvs"].setdefault(lv["vg"], []).append(lv["name"])
    if facts["runs_vm"]:
        long_info = host.xen.list_long(vm)[0]
        facts["vm_memory_mib"] = domains[vm]["memory_mib"]
        facts["vm_vcpus"] = domains[vm]["vcpus"]
        facts["vm_type"] = long_info["type"]
        by_device = dict((res["device"], name) for name, res in facts["drbd_resources"].items())
        for disk in long_info["disks"]:
            lv = lv_of_path(all_lvs, disk["pdev_path"])
            facts["disks"].append({"pdev_path": disk["pdev_path"], "vdev": disk["vdev"],
                                   "vg": lv["vg"] if lv else None, "lv": lv["name"] if lv else None,
                                   "size_bytes": lv["size_bytes"] if lv else None,
                                   "drbd": by_device.get(os.path.realpath(disk["pdev_path"]))
                                   or by_device.get(disk["pdev_path"]),
                                   "shared": conv.parse_shared_disk_path(disk["pdev_path"])})
        # only whether it is there: its text (maybe a VNC password) goes from source to target by
        # root ssh right before xl migrate, never through results
        facts["config_present"] = os.path.exists(conv.auto_config_path(vm, lm.XEN_AUTO_DIR))
    for peer, thread in ssh_checks:
        thread.join()
        facts["ssh_ok"][peer] = thread.rc == 0
    return facts


class _SshCheck(threading.Thread):
    """``ssh root@peer true`` as xl migrate will connect, run beside the other reads: an ssh
    handshake is the slowest part of the preflight on a busy dom0."""

    def __init__(self, runner, peer):
        super(_SshCheck, self).__init__()
        self.daemon = True
        self.runner = runner
        self.argv = shared_ssh_argv("root@" + peer, ["true"], connect_timeout=5)
        self.rc = None

    def run(self):
        try:
            self.rc = self.runner.run(self.argv, ok_rcs=tuple(range(256))).rc
        except CommandError as exc:
            self.rc = exc.rc


def new_journal(module):
    p = module.params
    for key in ("migration_id", "secret", "peer_name", "peer_address", "host_name", "address"):
        if not p[key]:
            raise lm.MigrationError("step=prepare of a new migration needs %s" % key)
    if not conv.MIGRATION_ID_RE.match(p["migration_id"]):
        raise lm.MigrationError("invalid migration_id %r" % (p["migration_id"],))
    if p["mode"] == "shared" and p["disks"]:
        disks = [shared_disk(disk) for disk in p["disks"]]  # no DRBD: no minors
    elif len(p["minors"]) != len(p["disks"]) or not p["disks"]:
        raise lm.MigrationError("step=prepare of a new migration needs one minor per disk")
    else:
        disks = drbd_disks(p)
    source, target = (p["host_name"], p["peer_name"]) if p["role"] == "source" else (p["peer_name"], p["host_name"])
    return {"vm": p["vm"], "id": p["migration_id"], "role": p["role"], "source": source, "target": target,
            "source_address": p["address"] if p["role"] == "source" else p["peer_address"],
            "target_address": p["peer_address"] if p["role"] == "source" else p["address"],
            "disks": disks, "secret": p["secret"], "owner": p["owner"], "mode": p["mode"], "log": []}


def shared_disk(disk):
    """A journal's disk in storage mode shared: its owner, VG, LV and shared path."""
    try:
        path = conv.shared_disk_path(disk.get("owner"), disk.get("vg"), disk.get("lv"))
    except ValueError as exc:
        raise lm.MigrationError(str(exc))
    return dict(conv.parse_shared_disk_path(path), path=path)


def drbd_disks(p):
    """A journal's disks in storage modes plain and drbd: their DRBD names, from the plan's disks and minors."""
    disks = []
    for index, (disk, minor) in enumerate(zip(p["disks"], p["minors"])):
        if p["mode"] == "drbd":
            # the VM's own DRBD resources: nothing is created, their names come from the preflight
            disks.append({"resource": lm.check_vm_name(disk["resource"]), "minor": int(minor),
                          "device": "/dev/drbd%d" % int(minor)})
            continue
        # VG names may differ per dom0: the target makes the disk in the plan's target_vg, and both
        # journals keep both VGs (a resume planned from either journal, the source's xl migrate -C)
        source_vg, target_vg = disk["vg"], disk.get("target_vg") or disk["vg"]
        names = disk_names(p["vm"], target_vg if p["role"] == "target" else source_vg, disk["lv"], index, int(minor))
        names.update(size_bytes=int(disk["size_bytes"]), source_vg=source_vg, target_vg=target_vg)
        disks.append(names)
    return disks


def foreign_owner(data, owner):
    return data is not None and bool(data.get("owner")) and bool(owner) and not lm.owner_matches(data["owner"], owner)


def refuse_foreign(module, journal, data):
    if foreign_owner(data, module.params["owner"]) and not module.params["takeover"]:
        module.fail_json(msg="a migration of %s by another run is in progress (journal %s, owner %s)" % (
            module.params["vm"], journal.path, data["owner"]), lock_owner=data["owner"], journal=public_journal(data))


def public_journal(data):
    if data is None:
        return None
    return dict((k, v) for k, v in data.items() if k not in ("secret", "config_text"))


def check_request(p):
    """Names and addresses reach dmsetup, drbdadm, ssh and xl migrate (whose ssh runs a shell on
    the other side): refuse anything but a VM name, host names and addresses before any change."""
    lm.check_vm_name(p["vm"])
    for key in ("host_name", "peer_name", "address", "peer_address"):
        if p.get(key) is not None:
            try:
                conv.check_address(p[key], key)
            except ValueError as exc:
                raise lm.MigrationError(str(exc))
    for peer in p.get("peers") or []:
        try:
            conv.check_address(peer, "peer")
        except ValueError as exc:
            raise lm.MigrationError(str(exc))
    if p.get("resync_rate") is not None:
        # it goes into the resource files: refused here, not by drbdadm once LVs exist
        try:
            check_resync_rate(p["resync_rate"])
        except DrbdError as exc:
            raise lm.MigrationError(str(exc))


def rekey(journal, secret):
    """A resume where the other host had no journal yet (killed before its prepare): the
    controller made a new secret for both; this side takes it over, which only a side that never
    connected may do (its resource files are rewritten by prepare; connect reads them)."""
    if journal.data.get("secret") == secret:
        return False
    if journal.done("step:promote"):
        # past the sync: the other host had a journal then, so it was lost since
        raise lm.MigrationError("the journal of %s here is past step prepare but the other host has none: refusing "
                                "to change the DRBD secret; inspect both hosts" % journal.vm)
    journal.data["secret"] = secret
    journal.data.setdefault("log", []).append({"event": "rekeyed", "at": time.time()})
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vm=dict(type="str", required=True),
            step=dict(type="str", required=True, choices=["preflight", "prepare", "promote", "migrate", "finish", "abort"]),
            role=dict(type="str", choices=["source", "target"]),
            host_name=dict(type="str"),
            address=dict(type="str"),
            peer_name=dict(type="str"),
            peer_address=dict(type="str"),
            peers=dict(type="list", elements="str", default=[]),
            disks=dict(type="list", elements="dict", default=[]),
            minors=dict(type="list", elements="int", default=[]),
            migration_id=dict(type="str"),
            mode=dict(type="str", default="plain", choices=list(lm.MODES)),
            secret=dict(type="str", no_log=True),
            resume=dict(type="bool", default=False),
            rekey=dict(type="bool", default=False),
            owner=dict(type="dict", default={}),
            takeover=dict(type="bool", default=False),
            target_finished=dict(type="bool", default=False),
            sync_window=dict(type="int", default=10),
            resync_rate=dict(type="str", default="400M"),
            pause_domain=dict(type="bool", default=True),
            state_dir=dict(type="path", default=lm.STATE_DIR),
            lock_dir=dict(type="path", default=lm.LOCK_DIR),
        ),
        required_if=[("step", step, ["role", "host_name", "peer_name", "peer_address", "address"])
                     for step in ("prepare", "promote", "migrate", "finish", "abort")],
        supports_check_mode=True,
    )
    p = module.params
    runner = CommandRunner(module)
    result = {"changed": False, "events": [], "journal": None}
    try:
        check_request(p)
        host = lm.Host(runner, Toolstack(runner, "xl"))
        journal = lm.Journal(p["vm"], p["state_dir"])
        data = journal.load()
        result["journal"] = public_journal(data)
        if p["step"] == "preflight":
            result["preflight"] = preflight(module, host, runner)
            module.exit_json(**result)
        # a journal of another run: refused at once (the action plugin decides whether its run is
        # gone and calls again with takeover), before waiting for any step lock
        refuse_foreign(module, journal, data)
        if not module.check_mode:
            # held until this process exits: a step of a killed run still running here goes
            # first; then the journal is read again, as that step (or a concurrent run) left it
            if lm.StepLock(p["vm"], p["lock_dir"]).acquire():
                result["waited_for_step"] = True
            data = journal.load()
            result["journal"] = public_journal(data)
            refuse_foreign(module, journal, data)
        if foreign_owner(data, p["owner"]):
            data["owner"] = p["owner"]
            data.setdefault("log", []).append({"event": "takeover", "owner": p["owner"]})
            if not module.check_mode:
                journal.save()
        if data is not None and p["resume"] and p["migration_id"] and data.get("id") != p["migration_id"]:
            module.fail_json(msg="the journal of %s here is migration %s, not %s (planned from the preflight): rerun "
                                 "migrate.yml to plan again" % (p["vm"], data.get("id"), p["migration_id"]), **result)
        if data is None:
            # the run being resumed or aborted may have ended meanwhile: its modules were still
            # running here when the preflight read the journal (a killed controller does not stop
            # them); an abort that waited for their step lock finds the migration finished
            ended_meanwhile = p["migration_id"] and (p["resume"] or p["step"] == "abort")
            outcome = journal.ended(p["migration_id"]) if ended_meanwhile else None
            if outcome:
                module.exit_json(ended=outcome, msg="%s: migration %s of %s ended meanwhile (%s); nothing done" % (
                    p["host_name"], p["migration_id"], p["vm"], outcome), **result)
            if p["step"] != "prepare":
                if p["step"] in ("abort", "finish"):
                    module.exit_json(msg="no migration of %s in progress on this host" % p["vm"], **result)
                module.fail_json(msg="no journal for %s on this host: run step=prepare first" % p["vm"], **result)
            journal.data = new_journal(module)
            if p["mode"] == "plain":
                # minors and ports are claimed under the host lock: a concurrent migration of
                # another VM that planned the same ones fails here, before any change
                host_lock = lm.HostLock(p["lock_dir"])
                if not module.check_mode:
                    host_lock.acquire(timeout=120)
                try:
                    claimed_minors, claimed_ports = lm.claimed_resources(p["state_dir"], lm.DRBD_CONF_DIR, host.drbd(),
                                                                         except_vm=p["vm"])
                    problems = lm.claim_problems(journal.data["disks"], claimed_minors, claimed_ports, listening_ports())
                    if problems:
                        module.fail_json(msg="%s: cannot claim what the plan chose for %s: %s; rerun migrate.yml to plan "
                                             "again" % (p["host_name"], p["vm"], "; ".join(problems)), **result)
                    if not module.check_mode:
                        journal.save()
                finally:
                    host_lock.release()
            elif not module.check_mode:
                journal.save()
            result["changed"] = True
        elif data.get("role") != p["role"]:
            module.fail_json(msg="this host is the %s of the migration of %s in its journal, not the %s" % (
                data.get("role"), p["vm"], p["role"]), **result)
        if p["rekey"] and p["step"] == "prepare" and p["secret"] and rekey(journal, p["secret"]):
            result["changed"] = True
            if not module.check_mode:
                journal.save()
        side = lm.HostSide(host, journal, dict(p, **{"secret": None}))
        side.ensure_unpaused()
        if not module.check_mode:
            journal.renew()
        step = p["step"]
        if step in lm.STEPS:
            state, value = side.run(step)
            if state == "past":
                result["msg"] = "%s: already past step %s" % (p["host_name"], step)
                result["past_step"] = True
                module.exit_json(**result)
            if step == "prepare" and not module.check_mode:
                # the sync prepare started, watched here: the promote module then starts after a
                # short sync instead of slowing it down (see HostSide.wait_synced, quiet)
                result["synced"] = side.wait_synced(p["sync_window"], quiet=True)[0]
            if step == "promote":
                done, report = value
                result.update(waiting=not done, synced=all(both_uptodate(r) for r in report), sync=report)
            if step == "finish" and not module.check_mode:
                journal.close("finished")
        elif step == "abort":
            side.abort()
            if not module.check_mode:
                journal.close("aborted")
        result["changed"] = result["changed"] or side.changed
        result["events"] = side.events
        result["journal"] = public_journal(journal.data)
        if step not in ("finish", "abort") and not module.check_mode and journal.data is not None:
            result["pause_ms"] = journal.data.get("pause_ms")
    except lm.MigrationError as exc:
        result.update(exc.details)
        module.fail_json(msg=exc.msg, **result)
    except CommandError as exc:
        result.update(exc.to_fail_kwargs())
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
