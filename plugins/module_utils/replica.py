# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One local disk (an LV) replicated to a peer dom0 through a temporary DRBD resource.

The LV keeps its dm device (same major:minor, so blkback never notices); its table can be
pointed at a DRBD device that sits on a *clone* of the LV's original table:

    LV (dm) -> /dev/drbdN -> clone (dm, the LV's original table) -> PV extents

DiskReplica is this host's half of that for one disk, built on lvm.py (LVs), dm.py (tables)
and drbd.py (resource file, drbdadm, /proc/drbd states). The live migration uses it for each
disk; iSCSI/AoE export and guest RAID1 pairing are meant to reuse it. Its parts, in the order
a user calls them:

    ensure            the LV (on the receiving side), metadata LV, clone, resource file,
                      metadata, resource up
    force_primary     the origin of the data becomes primary, UpToDate by decision
    stage_drbd_table  the LV's DRBD table loaded as its inactive table (the caller resumes it,
                      under one pause for all the guest's disks)
    connect           a StandAlone resource connects (the sync starts)
    status, problems  the DRBD state of the disk, and why the peer's copy cannot be trusted
    allow_two_primaries, promote, swap_to_drbd    the receiving side takes over the disk
    single_primary    back to one primary (demote this side, or wait for the peer to)
    clear_stale, stage_original   recover: the LV's original table back (the caller resumes)
    teardown          DRBD down, clone, metadata LV and resource file removed

Every method reads (or is given) the live state and does only what is missing, so it can be
run again after a kill. What cannot be read back is kept by the caller's log, an object with
``note(event, **info)`` (record what was done), ``done(event)`` (whether it was) and ``save()``
(store the disk dict, with the original table, before anything relies on it). Event names are
the migration journal's: ``md-created:RES``, ``primary:RES``, ``down:RES`` and so on.
"""

from __future__ import annotations

import os
import time

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.dm import (
    linear_table, parse_table, points_at, render_table, table_sectors,
)
from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    minor_state, pair_resource_text, replica_problems, retry_transient, sync_report_item, timed_out,
)
from ansible_collections.sanless.xen.plugins.module_utils.lvm import dm_name
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError


class ReplicaError(Exception):
    """A disk's replication cannot go on; the caller says on which host."""

    def __init__(self, msg):
        super(ReplicaError, self).__init__(msg)
        self.msg = msg


def disk_names(vm, vg, lv, index, minor):
    """Names of everything a VM's disk number index replicated on minor needs (the same on both hosts)."""
    resource = conv.migration_resource(vm, index)
    return {
        "vg": vg,
        "lv": lv,
        "lv_dm": dm_name(vg, lv),
        "lv_path": conv.lv_path(vg, lv),
        "meta_lv": conv.meta_lv_name(lv),
        "clone": conv.clone_name(resource),
        "resource": resource,
        "minor": minor,
        "port": conv.drbd_port(minor),
        "device": conv.drbd_device(minor),
    }


def on_drbd(segments, disk):
    """Whether a parsed dm table points at the disk's DRBD device (by path or MAJ:MIN)."""
    return points_at(segments, [disk["device"], conv.drbd_majmin(disk["minor"])])


class DiskReplica(object):
    """This host's half of one replicated disk.

    host: the dom0's tools: ``runner`` (check mode), ``lvm`` (lvm.Lvm), ``dm`` (dm.DeviceMapper),
    ``drbd()`` (the minors of /proc/drbd), ``dm_tables()``, ``drbdadm(verb, resource, *options)``,
    ``write_file`` and ``remove_file``. disk: disk_names() (vg: this host's VG of the disk) plus
    size_bytes, source_vg and target_vg (the disk's VG on each host; vg when absent) and, once read,
    original_table; a resource that outlives the replica (made by hand or drbd_resource) needs
    only resource, minor and device. role: "source" (holds the data; made primary first) or
    "target" (receives it; its LV is created here). log: see above. link: what the resource file
    says, {"hosts": [{"name", "address"}] of the source and the target, "secret", "resync_rate"}.
    clock: time() and sleep(seconds) (the time module, or a test's clock).
    """

    def __init__(self, host, disk, role, log, link=None, conf_dir=conv.DRBD_CONF_DIR, clock=time):
        self.host = host
        self.disk = disk
        self.role = role
        self.log = log
        self.link = link or {}
        self.conf_dir = conf_dir
        self.clock = clock

    @property
    def name(self):
        return self.disk["resource"]

    @property
    def check_mode(self):
        return self.host.runner.check_mode

    @property
    def res_path(self):
        return os.path.join(self.conf_dir, "%s.res" % self.name)

    # ------------------------------------------------------------------ reading
    def status(self, minors=None):
        """The parsed DRBD state of the disk's minor (drbd.minor_state), None while it is down.
        minors: a /proc/drbd read shared by the disks of one pass (read here when None)."""
        return minor_state(self.host.drbd() if minors is None else minors, self.disk["minor"])

    def problems(self, minors=None, peer_primary=False):
        """Why the peer's copy cannot be trusted now (drbd.replica_problems; empty: it can)."""
        return replica_problems(self.status(minors), peer_primary)

    def sync_item(self, state):
        """What a user shows of the sync of a state (status()): the live_migration module's sync list."""
        return sync_report_item(self.name, self.disk["minor"], state)

    def on_drbd(self, tables):
        return on_drbd(tables.get(self.disk["lv_dm"], []), self.disk)

    def lv(self, which="lv"):
        """The lvs dict of the disk's LV (which="meta_lv": its metadata LV), None when there is none."""
        return self.host.lvm.find(self.disk["vg"], self.disk[which])

    def resource_text(self):
        disk = self.disk
        # each host's metadata LV is in that host's VG of the disk
        metas = [conv.lv_path(disk.get(key) or disk["vg"], disk["meta_lv"]) for key in ("source_vg", "target_vg")]
        return pair_resource_text(self.name, disk["minor"], disk["port"], "/dev/mapper/" + disk["clone"], metas,
                                  self.link["hosts"], self.link["secret"], self.link.get("resync_rate", "400M"))

    # ------------------------------------------------------------------ changing
    def drbdadm_retry(self, verb, *options):
        """drbdadm, again while DRBD answers "(-18) In transient state"."""
        return retry_transient(lambda: self.host.drbdadm(verb, self.name, *options), sleep=self.clock.sleep,
                               clock=self.clock.time)

    def ensure(self, tables, minors):
        """Everything the resource needs, up: the LV (target), the metadata LV, the clone of the
        LV's original table (kept in the disk dict first), the resource file (rewritten when the
        secret changed: a connected resource reconnects with the new one), metadata and up."""
        host, disk = self.host, self.disk
        if self.role == "target" and self.lv() is None:
            host.lvm.create(disk["vg"], disk["lv"], disk["size_bytes"])
            self.log.note("lv-created", lv=disk["lv"])
            tables = host.dm_tables()
        if self.lv("meta_lv") is None:
            host.lvm.create(disk["vg"], disk["meta_lv"], conv.meta_bytes(disk["size_bytes"]))
            self.log.note("meta-created", lv=disk["meta_lv"])
        if disk["clone"] not in tables:
            original = disk.get("original_table")
            if original is None:
                live = tables.get(disk["lv_dm"])
                if live is None and self.check_mode:
                    return  # the target LV does not exist yet in check mode
                if live is None:
                    raise ReplicaError("no dm device %s for LV %s" % (disk["lv_dm"], disk["lv_path"]))
                if on_drbd(live, disk):
                    raise ReplicaError("LV %s already points at %s but the journal has no original table; "
                                       "refusing to guess" % (disk["lv_path"], disk["device"]))
                original = render_table(live)
                disk["original_table"] = original
                if not self.check_mode:
                    self.log.save()
            host.dm.create(disk["clone"], parse_table(original))
            self.log.note("clone-created", clone=disk["clone"])
        text = self.resource_text()
        current = None
        if os.path.exists(self.res_path):
            with open(self.res_path) as handle:
                current = handle.read()
        if current != text:
            host.write_file(self.res_path, text)
            self.log.note("resource-written", resource=self.name)
            state = self.status(minors)
            if current is not None and state is not None and state["cstate"] != "StandAlone" and not self.check_mode:
                # rekeyed (a resume where the other host had no journal): the new secret counts
                # from the next connect; the source connects at the end of its swap
                self.drbdadm_retry("disconnect")
                if self.role == "target":
                    host.drbdadm("connect", self.name)
        if self.status(minors) is None:
            if not self.log.done("md-created:%s" % self.name):
                host.drbdadm("create-md", self.name, "--force", data="yes\n")
                self.log.note("md-created:%s" % self.name)
            try:
                host.drbdadm("up", self.name)
            except CommandError as exc:
                # up is attach, then connect; a connect that timed out on a loaded host left the
                # disk attached and StandAlone: connect it (again) rather than fail the step
                if not timed_out(exc) or self.status() is None:
                    raise
                self.connect(None)
            self.log.note("up:%s" % self.name)

    def force_primary(self, minors):
        """Source: primary, UpToDate by --force, while disconnected (no sync can start before
        every write goes through DRBD)."""
        state = self.status(minors)
        if state is None or state["role"] != "Primary":
            if state is not None and state["cstate"] != "StandAlone":
                self.drbdadm_retry("disconnect")
            self.host.drbdadm("primary", self.name, "--force")
            self.log.note("primary-forced:%s" % self.name)

    def stage_drbd_table(self, tables):
        """Load the LV's table pointing at DRBD as its inactive table; a dmsetup resume makes it live."""
        lv_dm = self.disk["lv_dm"]
        self.host.dm.load(lv_dm, linear_table(self.disk["device"], table_sectors(tables[lv_dm])))

    def connect(self, minors, attempts=3):
        """Connect a StandAlone resource. drbdadm gives up on drbdsetup connect after 5 s (a
        loaded host); the state says whether it happened, so try again while StandAlone."""
        for attempt in range(attempts):
            state = self.status(minors if attempt == 0 else None)  # after an attempt: read again
            if state is None or state["cstate"] != "StandAlone":
                if attempt and state is not None:
                    self.log.note("connected:%s" % self.name)  # the timed-out connect took
                return
            try:
                self.host.drbdadm("connect", self.name)
            except CommandError as exc:
                if not timed_out(exc) or attempt == attempts - 1:
                    raise
                continue
            self.log.note("connected:%s" % self.name)
            return

    def allow_two_primaries(self):
        if not self.log.done("two-primaries:%s" % self.name):
            self.host.drbdadm("net-options", self.name, "--allow-two-primaries=yes")
            self.log.note("two-primaries:%s" % self.name)

    def promote(self, deadline):
        """Primary here, which DRBD refuses until the peer allows two primaries: tried again
        until deadline (clock time). False when it passed."""
        while True:
            state = self.status()
            if state and state["role"] == "Primary":
                return True
            try:
                self.host.drbdadm("primary", self.name)
                self.log.note("primary:%s" % self.name)
                return True
            except CommandError:
                if self.check_mode:
                    raise
                if self.clock.time() > deadline:
                    return False
                self.clock.sleep(0.3)

    def swap_to_drbd(self, tables):
        """Target, nothing uses its LV yet: its table points at DRBD in one atomic swap."""
        lv_dm = self.disk["lv_dm"]
        live = tables.get(lv_dm)
        if live is not None and not on_drbd(live, self.disk):
            self.host.dm.load(lv_dm, linear_table(self.disk["device"], table_sectors(live)))
            self.host.dm.resume(lv_dm)
            self.log.note("swapped-to-drbd:%s" % self.name)

    def single_primary(self, demote, deadline, timeout):
        """This side secondary (when demote) and two primaries no longer allowed, which DRBD
        refuses while both sides are primary: without demote, wait (until deadline) for the peer
        to be secondary first."""
        while True:
            state = self.status()
            if state is None:
                raise ReplicaError("DRBD %s (minor %d) is down" % (self.name, self.disk["minor"]))
            if demote or state["peer_role"] != "Primary" or self.check_mode:
                break
            if self.clock.time() > deadline:
                raise ReplicaError("the peer of DRBD %s is still primary after %d s" % (self.name, timeout))
            self.clock.sleep(0.3)
        if demote and state["role"] == "Primary":
            self.host.drbdadm("secondary", self.name)
            self.log.note("secondary:%s" % self.name)
        if self.log.done("two-primaries:%s" % self.name) and not self.log.done("one-primary:%s" % self.name):
            self.host.drbdadm("net-options", self.name, "--allow-two-primaries=no")
            self.log.note("one-primary:%s" % self.name)

    def clear_stale(self, tables):
        """An LV not on DRBD may still have the DRBD table loaded as its inactive one (a run killed
        between dmsetup load and resume); it holds /dev/drbdN open, so drbdadm down would fail."""
        if not self.on_drbd(tables) and self.disk["lv_dm"] in tables:
            self.host.dm.clear(self.disk["lv_dm"])

    def stage_original(self, tables):
        """Load the LV's original table as its inactive one when the LV points at DRBD. True: the
        caller resumes it (under one pause for all the guest's disks)."""
        if not self.on_drbd(tables):
            return False
        self.host.dm.load(self.disk["lv_dm"], parse_table(self.disk["original_table"]))
        return True

    def teardown(self, minors, tables):
        """DRBD down, then the clone, the metadata LV and the resource file removed (the LV's
        table must not point at DRBD any more: stage_original first)."""
        host, disk = self.host, self.disk
        if self.status(minors) is not None:
            # the peer going down at the same moment makes DRBD answer "(-18) In transient state" (lab:
            # the source's finish failed so after the target's, its cleanup left undone)
            self.drbdadm_retry("down")
            self.log.note("down:%s" % self.name)
        if disk["clone"] in tables:
            host.dm.remove(disk["clone"])
            self.log.note("clone-removed:%s" % self.name)
        if self.lv("meta_lv") is not None:
            host.lvm.remove(disk["vg"], disk["meta_lv"])
            self.log.note("meta-removed:%s" % self.name)
        if os.path.exists(self.res_path):
            host.remove_file(self.res_path)
            self.log.note("resource-removed:%s" % self.name)

    def remove_lv(self):
        """The disk's LV itself (the copy this host no longer needs)."""
        if self.lv() is not None:
            self.host.lvm.remove(self.disk["vg"], self.disk["lv"])
            self.log.note("lv-removed", lv=self.disk["lv"])
