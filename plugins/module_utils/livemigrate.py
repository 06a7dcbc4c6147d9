# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Live migration of a domain whose disks are plain local LVs, one host's half of it.

The XenoControl sequence, made restartable. Each disk LV keeps its dm device (same
major:minor, so blkback never notices) but its table is swapped, under ``xl pause``, from
the LV's extents to a temporary DRBD device that sits on a *clone* of the original table:

    LV (dm) -> /dev/drbdN -> clone (dm, the LV's original table) -> PV extents

Each disk's storage work (LVs, clone, resource file, drbdadm, tables) is a replica.DiskReplica;
HostSide orders it over the VM's disks, pauses the guest around the table swaps, runs xl migrate
and moves the VM's ownership (/etc/xen/auto).

Source and target each run the steps (STEPS) for their own side; the controller orders them.
STEP_TABLE declares, per step, role and storage mode, what the host does (a HostSide method),
the check that proves it done (a predicate on the live state and the journal) and its undo;
docs/migration-steps.md is steps_markdown() of it. HostSide.run(step) walks it for one step
(a step a later one has passed is not run, nor one whose check holds), HostSide.abort() undoes
the steps this host began, last first, once every refusal of theirs has been checked. Every
body reads the live state (dm tables, /proc/drbd, xl list) and does only what is missing, so
a rerun after a killed controller continues where the hosts are; a journal per VM on each
host keeps what cannot be read back (the original tables, minors, secret) and doubles as the
lock.

Storage mode ``drbd`` (disks permanently on DRBD between the two hosts, the target being
the secondary) uses the same steps and journal without the LV and dm work: its rows check
the resources, allow two primaries and make the target primary, then demote the source.

Storage mode ``shared`` (disks on their shared paths /dev/sanless/<owner>/<vg>/<lv>, the owner's
LV exported over iSCSI or AoE and imported on the target) has no DRBD at all (REPLICATED): its
rows check that every disk can be read on both hosts, then move the ownership and run xl migrate.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import time

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.dm import DeviceMapper
from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    LINKED_CSTATES, both_uptodate, device_minor, drbdadm_argv, read_proc_drbd, resource_files,
)
from ansible_collections.sanless.xen.plugins.module_utils.files import fsync_dir, write_file_atomic
from ansible_collections.sanless.xen.plugins.module_utils.lvm import Lvm, lv_is_open, vgmknodes_argv
from ansible_collections.sanless.xen.plugins.module_utils.replica import DiskReplica, ReplicaError
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, wait_until
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    XenParseError, domain_state, find_domain, move_disk_paths, pin_domain_identity, shared_ssh_argv,
)

STATE_DIR = conv.STATE_DIR
LOCK_DIR = conv.LOCK_DIR
DRBD_CONF_DIR = conv.DRBD_CONF_DIR
XEN_AUTO_DIR = conv.XEN_AUTO_DIR
meta_bytes = conv.meta_bytes
# Target of step finish: how long to wait for xl migrate's incoming domain to show up, and in all.
ARRIVAL_START_S = 90
ARRIVAL_TIMEOUT_S = 3600
ORPHAN_INCOMING_S = 10
# how long the target, its guest arrived, waits for the source to take its DRBD side down before the swap back
PEER_LEAVE_S = 60
# While the sync runs, /proc/drbd is read again after a tenth of the longest ETA DRBD gives, within these bounds
# (a look costs a Python wake-up on a dom0 whose CPU the sync needs; the end of the sync is seen within 10 %).
SYNC_POLL_MIN_S = 0.5
SYNC_POLL_MAX_S = 5.0
STEPS = ("prepare", "promote", "migrate", "finish")


class MigrationError(Exception):
    """A step cannot go on; ``details`` goes into the module result."""

    def __init__(self, msg, **details):
        super(MigrationError, self).__init__(msg)
        self.msg = msg
        self.details = details


def sync_poll_s(report):
    """Seconds until the next look at a running sync (sync_status's report): a tenth of the longest
    ETA, between SYNC_POLL_MIN_S and SYNC_POLL_MAX_S; the shortest without an ETA."""
    etas = [item["eta_s"] for item in report if item.get("eta_s")]
    return min(SYNC_POLL_MAX_S, max(SYNC_POLL_MIN_S, max(etas) / 10.0)) if etas else SYNC_POLL_MIN_S


def check_vm_name(name):
    try:
        return conv.check_vm_name(name)
    except ValueError as exc:
        raise MigrationError(str(exc))


class _Clock(object):
    """time() and sleep() of this module's time, looked up at each call (the tests replace it)."""

    @staticmethod
    def time():
        return time.time()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)


# --------------------------------------------------------------------------- journal

class Journal(object):
    """One JSON file per VM on each host: the lock and what cannot be read back live."""

    def __init__(self, vm, state_dir=STATE_DIR, folder="migrations"):
        # folder: "migrations" (live migrations), "backups" and "restores" (module_utils/backup.py);
        # every kind closes into the same history/ as VM-ID.json
        self.dir = os.path.join(state_dir, folder)
        self.vm = check_vm_name(vm)
        self.path = os.path.join(self.dir, "%s.json" % vm)
        self.data = None

    def load(self):
        try:
            with open(self.path) as handle:
                self.data = json.load(handle)
        except (IOError, OSError):
            self.data = None
        except ValueError as exc:
            raise MigrationError("journal %s is not valid JSON (%s): inspect it by hand" % (self.path, exc))
        return self.data

    def save(self):
        self.data["updated_at"] = time.time()
        write_file_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True), 0o600, 0o700)

    def mark(self, event, **info):
        entry = {"event": event, "at": time.time()}
        entry.update(info)
        self.data.setdefault("log", []).append(entry)
        self.save()

    def done(self, event):
        return any(entry["event"] == event for entry in self.data.get("log", []))

    def passed(self, step):
        """True when this host has started a step after ``step``: rerunning it would undo work."""
        later = STEPS[STEPS.index(step) + 1:]
        return any(self.done("step:" + name) for name in later)

    def close(self, outcome):
        """Move the journal to history/ (kept for the operator), which releases the lock. The
        DRBD secret and the VM config (which may hold a VNC password) do not go to history."""
        self.data["outcome"] = outcome
        for key in ("secret", "config_text"):
            self.data.pop(key, None)
        self.mark(outcome)
        history = os.path.join(os.path.dirname(self.dir), "history")
        if not os.path.isdir(history):
            os.makedirs(history, 0o700)
        os.rename(self.path, os.path.join(history, "%s-%s.json" % (self.data["vm"], self.data["id"])))
        fsync_dir(history)
        fsync_dir(self.dir)

    def ended(self, migration_id):
        """The outcome of a closed migration of this VM ("finished", "aborted"), or None."""
        return self.history().get(migration_id)

    def history(self):
        """Closed migrations of this VM here: migration id -> outcome."""
        found = {}
        for path in glob.glob(os.path.join(os.path.dirname(self.dir), "history", "%s-*.json" % self.vm)):
            migration_id = os.path.basename(path)[len(self.vm) + 1:-5]
            if conv.MIGRATION_ID_RE.match(migration_id):
                try:
                    with open(path) as handle:
                        found[migration_id] = json.load(handle).get("outcome") or "ended"
                except (IOError, OSError, ValueError):
                    continue
        return found

    def renew(self):
        """Refresh updated_at: a long step keeps its run's lease (FOREIGN_LEASE_S in the action)."""
        if self.data is not None and time.time() - float(self.data.get("updated_at") or 0) > 30:
            self.save()

    def pause_pending(self):
        """True when this journal's last xl pause has no unpause after it (a run killed between)."""
        events = [e["event"] for e in self.data.get("log", []) if e["event"] in ("pause", "unpause")]
        return bool(events) and events[-1] == "pause"


def journaled_pause_holds(journal, vm, domains):
    """Whether the journal's last pause of vm is still in force: its last pause/unpause event is a pause and the
    domain (domains: vm -> parse_xl_list dict) is paused."""
    domain = domains.get(vm)
    return journal.pause_pending() and domain is not None and "p" in domain["state"]


def journaled_pause(journal, xen, vm, domains, check_mode=False):
    """xl pause vm unless journal's last pause still holds (domains: vm -> parse_xl_list dict, the
    domain's state read before); returns when the pause began. Xen counts pauses (each xl pause needs
    its own unpause): the journal records ours, so a run killed between the two is not paused a second
    time by its rerun, only unpaused (journaled_unpause). Check mode pauses nothing and writes no journal."""
    if journaled_pause_holds(journal, vm, domains):
        return time.time()
    if not check_mode:
        journal.mark("pause")
    started = time.time()
    xen.pause(vm)
    return started


def journaled_unpause(journal, xen, vm, check_mode=False):
    """xl unpause vm and record it in journal; returns when the unpause was done."""
    xen.unpause(vm)
    ended = time.time()
    if not check_mode:
        journal.mark("unpause")
    return ended


class StepLock(object):
    """An exclusive flock per VM held while a step runs on this host.

    A controller killed mid-step leaves that step's module running here to its end (ssh does
    not kill it); a rerun's step waits for it instead of racing it over the same devices."""

    def __init__(self, vm, lock_dir=LOCK_DIR):
        # on tmpfs: a lock only means something until the next boot, and its file is never
        # removed (unlinking a flock file lets a waiter lock a file nobody else will see)
        self.dir = lock_dir
        self.path = os.path.join(self.dir, "%s.lock" % check_vm_name(vm))
        self.fd = None

    def acquire(self, timeout=1800, poll=0.5):
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir, 0o700)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        refused = []

        def locked():
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except (IOError, OSError):
                refused.append(True)
                return False
        if not wait_until(locked, timeout, poll, clock=_Clock):
            os.close(self.fd)
            self.fd = None
            raise MigrationError("another step on %s still holds %s after %d s" % (
                self.path.split("/")[-1][:-5], self.path, timeout))
        return bool(refused)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class HostLock(StepLock):
    """A host-wide flock: by default (name "host") the one under which shared resources (DRBD minors and ports)
    are checked and claimed: a claim is an open journal, written before the lock is released. Another name is
    another lock of the host (conv.DOMAIN_BUILD_LOCK: one xl create at a time)."""

    def __init__(self, lock_dir=LOCK_DIR, name="host"):
        self.dir = lock_dir
        self.path = os.path.join(self.dir, "%s.lock" % check_vm_name(name))
        self.fd = None


@contextlib.contextmanager
def host_lock_held(check_mode, lock_dir=None, timeout=None, name="host"):
    """The host lock around a module's read of a shared resource, its pick and its change (an iSCSI LUN, an AoE
    slot): another run on this dom0 neither picks the same one nor changes the same config at once. ``name``
    picks another host-wide lock (HostLock). Check mode changes nothing and takes no lock. Raises MigrationError
    when another holder keeps it past timeout."""
    lock = HostLock(conv.LOCK_DIR if lock_dir is None else lock_dir, name=name)
    if not check_mode:
        lock.acquire(timeout=conv.HOST_LOCK_TIMEOUT_S if timeout is None else timeout)
    try:
        yield lock
    finally:
        lock.release()


def create_domain(xen, name, config_path, paused=False, lock_dir=None):
    """``xl create`` of domain ``name`` from config_path (a xen.Toolstack) under the dom0's domain build lock
    (conv.DOMAIN_BUILD_LOCK; none in check mode): one build at a time per dom0, as each loads its guest's kernel
    and ramdisk into dom0 memory; the guests still boot in parallel once their create returned.

    A failed create is judged by ``xl list``, still under the lock: a paused domain of that name is the shell a
    failed build leaves (xl create unpauses only at its very end; one killed mid-build leaves 0 MiB and 0 vCPUs,
    and the next create fails with "already exists"), so it is destroyed; a running (or blocked) one was started
    by that create, which is then no failure. Returns (the create's CommandError or None, whether a shell was
    destroyed). Raises MigrationError when another build holds the lock past conv.DOMAIN_BUILD_LOCK_TIMEOUT_S."""
    with host_lock_held(xen.runner.check_mode, lock_dir, conv.DOMAIN_BUILD_LOCK_TIMEOUT_S, conv.DOMAIN_BUILD_LOCK):
        try:
            xen.create(config_path, paused=paused)
            return None, False
        except CommandError as exc:
            error = exc
        try:
            state = domain_state(find_domain(xen.list(), name))
        except (CommandError, XenParseError):
            return error, False  # nothing known of a shell: the create's own error is the one to report
        if state == "running" and not paused:
            return None, False
        if state == "paused":
            xen.destroy(name)
            return error, True
        return error, False


def claimed_resources(state_dir=STATE_DIR, conf_dir=DRBD_CONF_DIR, proc_minors=None, except_vm=None):
    """DRBD minors and ports this host must not hand out, each with who holds it: minors in
    /proc/drbd, minors and ports of every resource file (up or not, ours or made by hand) and of
    every open migration journal but except_vm's (a claim made moments ago, not yet up)."""
    minors, ports = {}, {}
    for minor in proc_minors or {}:
        minors.setdefault(int(minor), "/proc/drbd")
    for path, res in resource_files(conf_dir):
        for host in res["hosts"]:
            if device_minor(host.get("device")) is not None:
                minors.setdefault(device_minor(host.get("device")), path)
            ports.setdefault(host["port"], path)
    for path in sorted(glob.glob(os.path.join(conv.migrations_dir(state_dir), "*.json"))):
        vm = os.path.basename(path)[:-5]
        if vm == except_vm:
            continue
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (IOError, OSError, ValueError):
            continue
        for disk in data.get("disks") or []:
            if disk.get("minor") is not None:
                minors.setdefault(int(disk["minor"]), "the migration of %s" % vm)
            if disk.get("port") is not None:
                ports.setdefault(int(disk["port"]), "the migration of %s" % vm)
    return minors, ports


def claim_problems(disks, claimed_minors, claimed_ports, listening=()):
    """Why the minors and ports of a new journal's disks cannot be claimed here (empty: they can)."""
    problems = []
    for disk in disks:
        if disk.get("minor") in claimed_minors:
            problems.append("DRBD minor %d is held by %s" % (disk["minor"], claimed_minors[disk["minor"]]))
        port = disk.get("port")
        if port is not None and (port in claimed_ports or port in listening):
            problems.append("port %d is held by %s" % (port, claimed_ports.get(port, "a listening socket")))
    return problems


def owner_matches(journal_owner, owner):
    keys = ("controller", "pid", "pid_start")
    return all(journal_owner.get(k) == owner.get(k) for k in keys)


# --------------------------------------------------------------------------- host operations

def _xl_processes(proc="/proc"):
    """(pid, parent pid, argv) of the xl/xm processes running here with at least one argument."""
    found = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
            with open(os.path.join(proc, entry, "stat")) as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (IOError, OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if len(argv) > 2 and os.path.basename(argv[0]) in ("xl", "xm"):
            found.append((int(entry), ppid, argv))
    return found


class Host(object):
    """This host's tools, through one runner (argv only, LANG=C, check-mode aware)."""

    def __init__(self, runner, toolstack):
        self.runner = runner
        self.xen = toolstack
        self.dm = DeviceMapper(runner)
        self.lvm = Lvm(runner)

    # -- reading
    def domains(self):
        return {d["name"]: d for d in self.xen.list()}

    def drbd(self):
        return (read_proc_drbd() or {}).get("minors", {})

    def dm_tables(self):
        return self.dm.tables()

    # -- changing
    def drbdadm(self, verb, resource, *options, **kwargs):
        return self.runner.run(drbdadm_argv(verb, resource, *options), changes_state=True, **kwargs)

    def migrate_pids(self, vm, proc="/proc"):
        """PIDs of ``xl migrate ... VM ...`` processes on this host: a run killed on the
        controller leaves its xl migrate running here, to its end."""
        return [pid for pid, _ppid, argv in _xl_processes(proc) if argv[1] == "migrate" and vm in argv[2:]]

    def receive_pids(self, proc="/proc"):
        """PIDs of ``xl migrate-receive`` processes receiving a domain here now (of any domain:
        the argv names none). Once a domain has started, the receiver forks a monitor for it
        with the same argv, whose parent is init, and exits: monitors are not counted. Read
        from /proc: no fork, cheap to poll."""
        return [pid for pid, ppid, argv in _xl_processes(proc) if "migrate-receive" in argv[1:] and ppid != 1]

    def peer_runs(self, address, vm):
        """Whether vm runs on the dom0 at address (root ssh, as xl migrate itself uses)."""
        result = self.runner.run(shared_ssh_argv("root@" + address, ["xl", "list", vm]), ok_rcs=tuple(range(256)))
        return result.rc == 0

    def send_file(self, address, path, text):
        """Write text to path on the dom0 at address (root ssh, as xl migrate uses): fixed argv,
        the content on stdin, never a shell string built from input."""
        self.runner.run(shared_ssh_argv("root@" + address, ["dd", "of=" + path, "conv=fsync", "status=none"]),
                        data=text, changes_state=True)

    def settle_udev(self, timeout=30):
        """Wait (at most timeout seconds, never failing) until udev has handled the events queued so far."""
        if not self.runner.check_mode:
            self.runner.run(["udevadm", "settle", "--timeout=%d" % timeout], ok_rcs=tuple(range(256)))

    def settle_lv_paths(self, paths, timeout=30):
        """Wait for udev, then make sure each /dev/VG/LV link exists (vgmknodes recreates a
        missing one from the live device without touching its table). Returns the ones fixed."""
        if self.runner.check_mode:
            return []
        self.settle_udev(timeout)
        fixed = []
        for path in paths:
            if not os.path.exists(path):
                vg, lv = path.split("/")[2:4]
                self.runner.run(vgmknodes_argv(vg, lv), changes_state=True)
                fixed.append(path)
        missing = [path for path in paths if not os.path.exists(path)]
        if missing:
            raise MigrationError("%s missing after udevadm settle and vgmknodes" % ", ".join(missing))
        return fixed

    def readable(self, path):
        """None when the first block of path can be read here (read-only, so in check mode too), else why not."""
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.read(fd, 4096)
            finally:
                os.close(fd)
        except (IOError, OSError) as exc:
            return exc.strerror or str(exc)
        return None

    def write_file(self, path, text, mode=0o600):
        if self.runner.check_mode:
            return
        write_file_atomic(path, text, mode)

    def remove_file(self, path):
        if not self.runner.check_mode and os.path.exists(path):
            os.unlink(path)


def _replica_errors(step):
    """A step's ReplicaError becomes a MigrationError naming this host."""
    def wrapped(self, *args, **kwargs):
        try:
            return step(self, *args, **kwargs)
        except ReplicaError as exc:
            raise MigrationError("%s: %s" % (self.p["host_name"], exc.msg))
    wrapped.__name__ = step.__name__
    wrapped.__doc__ = step.__doc__
    return wrapped


class HostSide(object):
    """One host's half of the migration of one VM."""

    def __init__(self, host, journal, params):
        self.host = host
        self.journal = journal
        self.p = params
        self.changed = False
        self.events = []
        self.pause_ms = None
        self.pause_window = None

    # ------------------------------------------------------------------ helpers
    def _note(self, event, **info):
        self.changed = True
        self.events.append(event)
        if not self.host.runner.check_mode:
            self.journal.mark(event, **info)

    def disks(self):
        return self.journal.data["disks"]

    # the log of this side's DiskReplicas: their events are this side's, in its journal
    def note(self, event, **info):
        self._note(event, **info)

    def done(self, event):
        return self.journal.done(event)

    def save(self):
        self.journal.save()

    def replicas(self):
        """A DiskReplica per disk of the journal (made anew each time: cheap, and they see the
        module's current DRBD_CONF_DIR); none in a storage mode without DRBD."""
        if not REPLICATED[self.mode]:
            return []
        me = {"name": self.p["host_name"], "address": self.p["address"]}
        peer = {"name": self.p["peer_name"], "address": self.p["peer_address"]}
        link = {"hosts": [me, peer] if self.p["role"] == "source" else [peer, me],
                "secret": self.journal.data.get("secret"), "resync_rate": self.p.get("resync_rate", "400M")}
        return [DiskReplica(self.host, disk, self.p["role"], self, link, conf_dir=DRBD_CONF_DIR, clock=_Clock)
                for disk in self.disks()]

    @property
    def mode(self):
        return self.journal.data.get("mode") or "plain"

    @property
    def drbd_mode(self):
        return self.mode == "drbd"

    def _created_here(self, lv):
        return any(e["event"] == "lv-created" and e.get("lv") == lv for e in self.journal.data.get("log", []))

    # ------------------------------------------------------------------ invariants
    def ensure_unpaused(self):
        """No step leaves the guest paused: a run killed between our xl pause and xl unpause is
        unpaused here, once (Xen counts pauses; the journal says the last one was ours)."""
        if self.journal.data is None or not self.journal.pause_pending():
            return
        domain = self.host.domains().get(self.p["vm"])
        if domain is not None and "p" in domain["state"]:
            self._unpause()
            self._note("unpaused-after-kill")
        elif not self.host.runner.check_mode:
            self.journal.mark("unpause", note="found running")

    def replica_problems(self, peer_primary):
        """Per disk, why the peer's DRBD copy cannot be trusted now (empty: every disk's can)."""
        minors = self.host.drbd()
        problems = []
        for rep in self.replicas():
            found = rep.problems(minors, peer_primary)
            if found:
                problems.append("%s (minor %d): %s" % (rep.name, rep.disk["minor"], ", ".join(found)))
        return problems

    def _check_target_holds_copy(self):
        """Before the source drops anything after xl migrate: the target's copy is verified, in
        this step, to be UpToDate and primary through a connected DRBD (protocol C: every write
        the guest made here is there), or, when the target already took DRBD down, the target is
        seen running the guest (its disks were verified UpToDate right before xl migrate)."""
        problems = self.replica_problems(peer_primary=True)
        if not problems:
            return
        if self.host.peer_runs(self.p["peer_address"], self.p["vm"]):
            self._note("target-verified", how="xl list on %s" % self.p["peer_name"], drbd=problems)
            return
        raise MigrationError("%s: cannot verify that %s holds an up-to-date copy of %s (DRBD: %s; xl list there did "
                             "not show it): refusing to drop this host's copy; rerun when %s answers"
                             % (self.p["host_name"], self.p["peer_name"], self.p["vm"], "; ".join(problems),
                                self.p["peer_name"]))

    def _check_local_copy(self):
        """Target, before it takes DRBD down under the arrived guest: its own disks are UpToDate."""
        minors = self.host.drbd()
        for rep in self.replicas():
            state = rep.status(minors)
            if state is not None and state["disk"] != "UpToDate":
                raise MigrationError("%s: DRBD %s is %s here while %s runs here: refusing to take it down; "
                                     "inspect it (cat /proc/drbd) before rerunning" % (
                                         self.p["host_name"], rep.name, state["disk"], self.p["vm"]))

    def _check_prepare_allowed(self):
        """A prepare that comes late (its migration already done, or the VM already moved) must
        never put a DRBD sync target on a disk that a domain uses."""
        vm = self.p["vm"]
        domains = self.host.domains()
        here = vm in domains or vm + "--incoming" in domains
        if self.p["role"] == "source" and not here and not self.host.runner.check_mode:
            raise MigrationError("%s: %s does not run here: refusing to prepare a migration from here; rerun "
                                 "migrate.yml to plan again from where it runs" % (self.p["host_name"], vm))
        if self.p["role"] != "target":
            return
        if here:
            raise MigrationError("%s: %s already runs here: refusing to prepare this host as its target" % (
                self.p["host_name"], vm))
        for rep in self.replicas():
            disk = rep.disk
            lv = rep.lv()
            if lv is None:
                continue
            if not self._created_here(disk["lv"]):
                raise MigrationError("%s: LV %s exists here and this migration did not create it: refusing to put a "
                                     "DRBD sync target on it" % (self.p["host_name"], disk["lv_path"]))
            if lv_is_open(lv):
                raise MigrationError("%s: LV %s is open (in use): refusing to put a DRBD sync target on it" % (
                    self.p["host_name"], disk["lv_path"]))

    # ------------------------------------------------------------------ ownership (/etc/xen/auto)
    def _config_paths(self):
        vm = self.p["vm"]
        state_dir = os.path.dirname(self.journal.dir)
        return {"auto": conv.auto_config_path(vm, XEN_AUTO_DIR), "parked": conv.parked_config_path(vm, state_dir),
                # the peer's state folder is the default one; ours may be another (tests)
                "peer_incoming": conv.incoming_config_path(vm, conv.STATE_DIR),
                "incoming": conv.incoming_config_path(vm, state_dir), "outgoing": conv.outgoing_config_path(vm, state_dir)}

    def _config_file(self):
        """Source: the VM's config file here, in /etc/xen/auto or parked meanwhile (None: there is none)."""
        paths = self._config_paths()
        return next((paths[key] for key in ("auto", "parked") if os.path.exists(paths[key])), None)

    def _vg_moves(self):
        """Source: (vg, lv, target VG) of the disks whose VG on the target has another name (drbd mode: none)."""
        return [(d["vg"], d["lv"], d["target_vg"]) for d in self.disks() if d.get("target_vg", d.get("vg")) != d.get("vg")]

    def _config_for_target(self, path):
        """Source, right before xl migrate: the text of the config file at ``path`` (None: there is none) as
        the target gets it. When no disk changes VG, the file's own text. Else the target makes the domain
        from this text (xl migrate -C), not from the running domain's config: the disks' paths move to the
        target's VGs, and the running domain's uuid and vif MACs (xl list -l) are pinned where the file
        leaves them to libxl, which would choose them anew there."""
        if path is None:
            return None
        with open(path) as handle:
            text = handle.read()
        moves = self._vg_moves()
        if not moves:
            return text
        try:
            return pin_domain_identity(move_disk_paths(text, moves), self.host.xen.list_long(self.p["vm"])[0])
        except XenParseError as exc:
            raise MigrationError("%s: the config of %s for %s (its disks in other VGs there): %s; refusing xl migrate" % (
                self.p["host_name"], self.p["vm"], self.p["peer_name"], exc))

    def _outgoing_config(self, text):
        """Source, right before xl migrate: when a disk changes VG, the config xl migrate sends instead of
        the domain's own (whose disk paths the target does not have): ``text`` (_config_for_target),
        written for xl migrate -C. None when no disk changes VG (xl sends the domain's own)."""
        moves = self._vg_moves()
        if not moves:
            return None
        if text is None:
            raise MigrationError("%s: the disks of %s go in other VGs on %s (%s), so xl migrate must send a config "
                                 "with their paths there, and %s has no config file here: refusing xl migrate" % (
                                     self.p["host_name"], self.p["vm"], self.p["peer_name"],
                                     ", ".join("%s/%s -> %s" % move for move in moves), self.p["vm"]))
        outgoing = self._config_paths()["outgoing"]
        self.host.write_file(outgoing, text, mode=0o600)
        return outgoing

    def _hand_over_config(self, path, text):
        """Source, right before xl migrate: the config (``text``, the file at ``path`` as _config_for_target
        gives it) goes to the target's state folder (not its /etc/xen/auto), then leaves this host's
        /etc/xen/auto: from here on no boot of either host starts the guest; the target installs it once
        the guest runs there."""
        if path is None:
            return  # not started at boot here: no ownership to move
        paths = self._config_paths()
        cfg, parked, remote_incoming = paths["auto"], paths["parked"], paths["peer_incoming"]
        self.host.send_file(self.p["peer_address"], remote_incoming, text)
        self._note("config-sent", path=remote_incoming)
        if path == cfg and not self.host.runner.check_mode:
            os.rename(cfg, parked)
            self._note("config-parked", path=parked)

    def _take_back_config(self):
        """Source, when the guest stays (xl migrate failed, abort): ownership back here."""
        paths = self._config_paths()
        cfg, parked = paths["auto"], paths["parked"]
        if os.path.exists(parked) and not os.path.exists(cfg) and not self.host.runner.check_mode:
            os.rename(parked, cfg)
            self._note("config-restored", path=cfg)

    # Xen counts pauses (each xl pause needs its own unpause): the journal records ours, so a
    # run killed between the two is not paused a second time by the rerun, only unpaused.
    def _pause(self, domains):
        """Pause the VM unless this journal's pause still holds; returns when the pause began."""
        return journaled_pause(self.journal, self.host.xen, self.p["vm"], domains, self.host.runner.check_mode)

    def _unpause(self):
        """Unpause the VM; returns when the unpause was done."""
        return journaled_unpause(self.journal, self.host.xen, self.p["vm"], self.host.runner.check_mode)

    # ------------------------------------------------------------------ prepare
    def _ensure_replicas(self):
        self._check_prepare_allowed()
        tables = self.host.dm_tables()
        minors = self.host.drbd()
        for rep in self.replicas():
            rep.ensure(tables, minors)

    def _prepare_plain_source(self):
        self._ensure_replicas()
        self._swap_source_to_drbd()
        self._wait_connected(self.p.get("connect_timeout", 120))

    def _prepare_plain_target(self):
        self._ensure_replicas()
        self._wait_connected(self.p.get("connect_timeout", 120))

    def _check_permanent_resources(self):
        minors = self.host.drbd()
        for rep in self.replicas():
            state = rep.status(minors)
            if state is None:
                raise MigrationError("%s: DRBD %s (minor %d) is not configured here" % (
                    self.p["host_name"], rep.name, rep.disk["minor"]))
            want = "Primary" if self.p["role"] == "source" else "Secondary"
            if state["role"] != want and not self.journal.done("step:promote"):
                raise MigrationError("%s: DRBD %s is %s here, the %s of a drbd-mode migration must be %s" % (
                    self.p["host_name"], rep.name, state["role"], self.p["role"], want))

    def _wait_connected(self, timeout):
        if self.host.runner.check_mode:
            return
        states = {}

        def connected():
            minors = self.host.drbd()
            states.clear()
            states.update((rep.name, rep.status(minors)) for rep in self.replicas())
            return all(s is not None and s["cstate"] in LINKED_CSTATES for s in states.values())
        if not wait_until(connected, timeout, 0.2, clock=_Clock):
            waiting = [r for r, s in states.items() if s is None or s["cstate"] not in LINKED_CSTATES]
            raise MigrationError("%s: DRBD not connected to %s after %d s: %s" % (
                self.p["host_name"], self.p["peer_name"], timeout,
                ", ".join("%s=%s" % (r, (states[r] or {}).get("cstate")) for r in waiting)))

    def _swap_source_to_drbd(self):
        """Route the source LVs through DRBD with the guest stalled as briefly as possible.

        DRBD becomes primary (UpToDate by --force) while disconnected, so no sync can start
        before every write goes through DRBD: writes that reach the extents before the swap
        are read by the full sync that starts at connect, writes after it are DRBD's own.
        The DRBD table is loaded as the inactive table beforehand; under xl pause only
        ``dmsetup resume`` runs (the kernel flushes, suspends, swaps and resumes in one call).
        """
        host = self.host
        tables = host.dm_tables()
        todo = [rep for rep in self.replicas() if not rep.on_drbd(tables)]
        if host.runner.check_mode:
            self.changed = self.changed or bool(todo)
            return
        minors = host.drbd()
        for rep in todo:
            rep.force_primary(minors)
        if todo:
            for rep in todo:
                rep.stage_drbd_table(tables)
            self._resume_all_under_pause([rep.disk["lv_dm"] for rep in todo], pause=self.p.get("pause_domain", True))
            self._note("swapped-to-drbd", pause_ms=self.pause_ms, pause_window=self.pause_window)
            self.journal.data["pause_ms"] = self.pause_ms
        minors = host.drbd()
        for rep in self.replicas():
            rep.connect(minors)

    def _resume_all_under_pause(self, names, pause):
        """Make the loaded inactive tables live. Each resume is atomic (flush, suspend, swap,
        resume); the pause keeps the guest from seeing one disk swapped and another not.

        Under the pause only the kernel's work runs: udev's queue (a domain that just arrived
        brings its devices' events) is worked off before xl pause, while the guest runs, and
        dmsetup does not wait for udev to handle the resume's change event (blkid of the device,
        its links), which is waited for after xl unpause. The table is live once the resume
        ioctl returned; nothing in the window needs udev."""
        domains = self.host.domains() if pause else {}
        running = self.p["vm"] in domains
        if running:
            self.host.settle_udev()
        # the window is what the guest can notice: from xl pause (or the first resume) to the end
        # of xl unpause (or the last resume); the journal writes around it are outside
        started = self._pause(domains) if running else time.time()
        try:
            for name in names:
                self.host.dm.resume(name, udev_sync=not running)
        finally:
            ended = self._unpause() if running else time.time()
        if running:
            self.host.settle_udev()
        self.pause_ms = int(round((ended - started) * 1000))
        self.pause_window = (round(started, 3), round(ended, 3))

    # ------------------------------------------------------------------ sync
    def sync_status(self):
        minors = self.host.drbd()
        report = []
        for rep in self.replicas():
            state = rep.status(minors)
            if state is None:
                raise MigrationError("%s: DRBD %s (minor %d) is down during the sync" % (
                    self.p["host_name"], rep.name, rep.disk["minor"]))
            report.append(rep.sync_item(state))
        synced = all(both_uptodate(r) for r in report)
        return synced, report

    def wait_synced(self, window_s, quiet=False):
        """Wait at most window_s for UpToDate/UpToDate. Returns (synced, report).

        Promote's wait (the controller loops and prints progress): a lost peer or a disk that is
        down raises, the end of the sync is journaled.

        quiet is prepare's watch of the sync it started, so that promote's module start, seconds of
        a dom0 CPU the resync needs under TCG, comes after a short sync: it changes, journals and
        raises nothing (promote judges the state), its window counts from the link (the peer gets
        as long to connect), and a disk that is down ends it unsynced with an empty report."""
        if quiet and (self.host.runner.check_mode or not self.replicas()):
            return False, []
        deadline = time.time() + window_s
        linked = False
        while True:
            try:
                synced, report = self.sync_status()
            except MigrationError:
                if not quiet:
                    raise
                return False, []
            if quiet and not linked and all(item["cstate"] in LINKED_CSTATES for item in report):
                # prepare's peer may come up after it: the sync, and the window, start at the link
                linked = True
                deadline = time.time() + window_s
            if synced or time.time() >= deadline or self.host.runner.check_mode:
                break
            if not quiet:
                self.journal.renew()
                for item in report:
                    if item["cstate"] in ("StandAlone", "WFConnection"):
                        raise MigrationError("%s: DRBD %s lost its peer during the sync (%s)" % (
                            self.p["host_name"], item["resource"], item["cstate"]))
            time.sleep(max(SYNC_POLL_MIN_S, min(sync_poll_s(report), deadline - time.time())))
        if synced and not quiet and not self.journal.done("synced"):
            self._note("synced")
        return synced, report

    # ------------------------------------------------------------------ promote
    def _promote_source(self, window_s):
        """Wait (at most window_s) for the sync, then allow two primaries. Returns (done, sync
        report): not done means call again (the controller loops and prints the progress)."""
        synced, report = self.wait_synced(window_s)
        if not synced and not self.host.runner.check_mode:
            return False, report
        for rep in self.replicas():
            rep.allow_two_primaries()
        return True, report

    def _promote_target_drbd(self, window_s):
        """The source's half, then primary here."""
        done, report = self._promote_source(window_s)
        if not done:
            return done, report
        deadline = time.time() + max(window_s, 5)
        for rep in self.replicas():
            # the source allows two primaries in the same task: until then DRBD refuses
            if not rep.promote(deadline):
                return False, report
        return True, report

    def _promote_target_plain(self, window_s):
        """The drbd mode's target half, then its LVs routed through DRBD."""
        done, report = self._promote_target_drbd(window_s)
        if not done:
            return done, report
        tables = self.host.dm_tables()
        for rep in self.replicas():
            rep.swap_to_drbd(tables)
        return True, report

    # ------------------------------------------------------------------ migrate
    def _wait_migrate_process(self, timeout=1800):
        """A killed run's xl migrate may still be running here: wait for it to end, so its
        outcome (the domain here or gone) decides what happens next."""
        pids = self.host.migrate_pids(self.p["vm"])
        if not pids or self.host.runner.check_mode:
            return
        self._note("waited-for-xl-migrate", pids=pids)

        def ended():
            pids[:] = self.host.migrate_pids(self.p["vm"])
            return not pids
        _Clock.sleep(1)  # it was running a moment ago: look again in a second, not at once
        if not wait_until(ended, timeout, 1, clock=_Clock):
            raise MigrationError("%s: xl migrate of %s (pid %s) still running after %d s" % (
                self.p["host_name"], self.p["vm"], ", ".join(str(p) for p in pids), timeout))

    def _xl_migrate(self):
        vm = self.p["vm"]
        self._wait_migrate_process()
        domains = self.host.domains()
        if vm not in domains:
            if self.journal.done("migrated"):
                return
            if self.journal.done("migrate-started"):
                # killed during xl migrate: the domain left; ask the target whether it arrived
                if self.host.peer_runs(self.p["peer_address"], vm):
                    self._note("migrated", seconds=None, confirmed_by="xl list on the target")
                    return
                raise MigrationError("%s: %s is neither here nor running on %s after an interrupted xl migrate: "
                                     "inspect both hosts (xl list) before rerunning or aborting"
                                     % (self.p["host_name"], vm, self.p["peer_name"]))
            raise MigrationError("%s: domain %s is not running here" % (self.p["host_name"], vm))
        # in the step that acts: the target's copy is connected, UpToDate, in sync and primary
        problems = self.replica_problems(peer_primary=True)
        if problems and not self.host.runner.check_mode:
            raise MigrationError("%s: refusing xl migrate of %s, the target's copy is not verified: %s; rerun to "
                                 "resume (the sync goes on) or migrate_action=abort" % (
                                     self.p["host_name"], vm, "; ".join(problems)))
        path = self._config_file()
        text = self._config_for_target(path)
        config = self._outgoing_config(text)
        self._hand_over_config(path, text)
        self._note("migrate-started")
        started = time.time()
        try:
            self.host.xen.migrate(vm, self.p["peer_address"], config=config, shared_ssh=True)
        except CommandError:
            if vm in self.host.domains():
                self._take_back_config()
            raise
        finally:
            if config:
                self.host.remove_file(config)
        self._note("migrated", seconds=round(time.time() - started, 2))

    # ------------------------------------------------------------------ finish / abort
    def _restore_tables(self, pause_vm, clear_stale=False):
        host = self.host
        tables = host.dm_tables()
        replicas = self.replicas()
        if clear_stale:
            for rep in replicas:
                rep.clear_stale(tables)
        todo = [rep for rep in replicas if rep.stage_original(tables)]
        if not todo:
            return
        self._resume_all_under_pause([rep.disk["lv_dm"] for rep in todo], pause=pause_vm)
        self._note("tables-restored", pause_ms=self.pause_ms, pause_window=self.pause_window)

    def _teardown_drbd(self):
        minors = self.host.drbd()
        tables = self.host.dm_tables()
        for rep in self.replicas():
            rep.teardown(minors, tables)

    def _single_primary(self, demote, timeout=120):
        """drbd mode: this host secondary (when demote) and two primaries no longer allowed
        (without demote, once the peer, demoted in the same task, is secondary)."""
        deadline = time.time() + timeout
        for rep in self.replicas():
            rep.single_primary(demote, deadline, timeout)

    def _move_config(self):
        """The last half of the ownership move. Target: install the config the source sent
        (0600: it may hold a VNC password). Source: drop its parked copy."""
        paths = self._config_paths()
        cfg, parked, incoming = paths["auto"], paths["parked"], paths["incoming"]
        if self.p["role"] == "target":
            text = None
            if os.path.exists(incoming):
                with open(incoming) as handle:
                    text = handle.read()
            else:
                text = self.journal.data.get("config_text")  # a journal of an older release
            if text and not _same_file(cfg, text):
                self.host.write_file(cfg, text, mode=0o600)
                self._note("config-installed", path=cfg)
            if os.path.exists(incoming):
                self.host.remove_file(incoming)
            return
        for path in (parked, cfg, paths["outgoing"]):  # outgoing: left by a run killed in xl migrate -C
            if os.path.exists(path):
                self.host.remove_file(path)
                self._note("config-removed", path=path)

    def wait_arrival(self, start_timeout=ARRIVAL_START_S, timeout=ARRIVAL_TIMEOUT_S, poll=0.5, list_every=5):
        """Target, while the source runs xl migrate: wait until the domain runs here under its
        own name. xl migrate-receive renames ``VM--incoming`` to ``VM`` only once the source has
        handed it over, then exits, so that name is the proof the migration committed.

        Watching is cheap: a /proc scan for ``xl migrate-receive`` every ``poll`` seconds, and
        ``xl list`` (a fork and a libxl call, slow on a busy dom0) only when no receiver runs or
        every ``list_every`` seconds. Fails when nothing arrives for ``start_timeout`` seconds
        (the source never started) or when our incoming domain vanishes, or stays without a
        receiver, instead of being renamed (xl migrate failed)."""
        vm = self.p["vm"]
        incoming = vm + "--incoming"
        started = time.time()
        busy_at = started         # last time a receiver ran or our incoming domain was there
        orphan_since = None       # our incoming domain without a receiver
        seen_incoming = False
        listed_at = None
        while True:
            now = time.time()
            receiving = self.host.receive_pids()
            if not receiving or listed_at is None or now - listed_at >= list_every:
                domains = self.host.domains()
                listed_at = now
                if vm in domains:
                    if not self.journal.done("arrived"):
                        self._note("arrived", waited_s=round(now - started, 1))
                    return
                if self.host.runner.check_mode:
                    return  # nothing moves in check mode: there is nothing to wait for
                if incoming in domains:
                    seen_incoming = True
                    busy_at = now
                    orphan_since = None if receiving else (orphan_since or now)
                elif seen_incoming and not receiving:
                    raise MigrationError("%s: the incoming domain %s is gone and %s does not run here: xl migrate "
                                         "failed (the domain keeps running on %s); rerun to retry, or "
                                         "migrate_action=abort" % (self.p["host_name"], incoming, vm, self.p["peer_name"]))
            if receiving:
                busy_at = now
            if orphan_since is not None and now - orphan_since > ORPHAN_INCOMING_S:
                raise MigrationError("%s: %s stays here without an xl migrate-receive: the migration broke off; "
                                     "inspect both hosts (xl list) before rerunning or aborting"
                                     % (self.p["host_name"], incoming))
            if now - busy_at > start_timeout:
                raise MigrationError("%s: no incoming domain %s within %d s: xl migrate did not start on %s "
                                     "(see its result there); rerun to retry, or migrate_action=abort"
                                     % (self.p["host_name"], incoming, start_timeout, self.p["peer_name"]))
            if now - started > timeout:
                raise MigrationError("%s: %s still arriving after %d s" % (self.p["host_name"], vm, timeout))
            self.journal.renew()
            time.sleep(poll)

    def _finish_drbd_source(self):
        vm = self.p["vm"]
        if not self.journal.done("migrated"):
            self._xl_migrate()
        # the source goes first: DRBD refuses to clear allow-two-primaries while both are primary
        if vm in self.host.domains():
            raise MigrationError("%s: %s still runs here; refusing to demote its disks" % (self.p["host_name"], vm))
        self._verify_target_once()
        self._single_primary(demote=True)
        self._move_config()

    def _finish_drbd_target(self):
        self.wait_arrival()
        self._single_primary(demote=False)
        self._move_config()

    def _wait_peer_left(self, timeout=PEER_LEAVE_S, poll=0.3):
        """Target, its guest arrived and its copy checked: wait (up to timeout) until the source has taken its side of
        every DRBD down, which it does only once it verified this copy. The swap back's dm suspend then flushes on this
        host alone: while connected (protocol C) the flush and each write in flight wait for a source that is busy
        with the end of xl migrate and its own finish, which made the target's swap back stall the guest twice as long
        as the source's swap (issue 18). A source that does not leave in time changes nothing but the wait: the swap
        goes ahead connected, as it did before; this host's copy is UpToDate either way."""
        started = _Clock.time()
        connected = []

        def left():
            minors = self.host.drbd()
            connected[:] = [rep.name for rep in self.replicas()
                            if (rep.status(minors) or {}).get("cstate") in LINKED_CSTATES]
            return not connected
        if wait_until(left, timeout, poll, clock=_Clock):
            self._note("peer-left", waited_s=round(_Clock.time() - started, 1))
        else:
            self._note("peer-still-connected", waited_s=round(_Clock.time() - started, 1), drbd=connected)

    def _finish_plain_target(self):
        self.wait_arrival()
        self._check_local_copy()
        if not self.journal.done("tables-restored") and not self.host.runner.check_mode:
            self._wait_peer_left()
        self._restore_tables(pause_vm=self.p.get("pause_domain", True))
        self._teardown_drbd()
        fixed = self.host.settle_lv_paths([d["lv_path"] for d in self.disks()])
        if fixed:
            self._note("lv-links-recreated", paths=fixed)
        self._move_config()

    def _finish_plain_source(self):
        vm = self.p["vm"]
        host = self.host
        if not self.journal.done("migrated") and not self.p.get("target_finished"):
            self._xl_migrate()
        if vm in host.domains():
            raise MigrationError("%s: %s still runs here; refusing to remove its disks" % (self.p["host_name"], vm))
        if not self.journal.done("migrated") and not self.p.get("target_finished"):
            raise MigrationError("%s: no confirmed migration of %s in the journal; refusing to remove the "
                                 "source disks" % (self.p["host_name"], vm))
        self._verify_target_once()
        self._restore_tables(pause_vm=False)
        self._teardown_drbd()
        for rep in self.replicas():
            rep.remove_lv()
        self._move_config()

    def _verify_target_once(self):
        if not self.journal.done("target-verified") and not self.host.runner.check_mode:
            self._check_target_holds_copy()
            if not self.journal.done("target-verified"):
                self._note("target-verified", how="DRBD Connected, UpToDate/UpToDate, in sync, peer Primary")

    # ------------------------------------------------------------------ storage mode shared
    def _shared_problems(self):
        """Why this host cannot take part as the journal's role (empty: it can): a disk's shared path that
        cannot be read here (the target: its import is not up), the domain not here (source) or here (target)."""
        problems = ["%s cannot be read here (%s)" % (disk["path"], why) for disk, why in
                    ((disk, self.host.readable(disk["path"])) for disk in self.disks()) if why]
        here = self.p["vm"] in self.host.domains()
        if here != (self.p["role"] == "source"):
            problems.append("%s %s here" % (self.p["vm"], "already runs" if here else "does not run"))
        return problems

    def _prepare_shared(self):
        problems = self._shared_problems()
        if problems:
            raise MigrationError("%s: %s: refusing to migrate %s on its shared disks; on a target, import them first "
                                 "(playbooks/export.yml -e vm=%s -e to=%s)" % (
                                     self.p["host_name"], "; ".join(problems), self.p["vm"], self.p["vm"],
                                     self.p["host_name"] if self.p["role"] == "target" else self.p["peer_name"]))

    def _prepared_shared(self):
        return not self._shared_problems()

    def _promote_shared(self, window_s):
        """Nothing to sync: done, an empty sync report."""
        return True, []

    def _finish_shared_source(self):
        if not self.journal.done("migrated"):
            self._xl_migrate()
        if self.p["vm"] in self.host.domains():
            raise MigrationError("%s: %s still runs here; refusing to give up its config" % (self.p["host_name"], self.p["vm"]))
        self._move_config()

    def _finished_shared_source(self):
        return self._migrated() and not self._config_left()

    def _finish_shared_target(self):
        self.wait_arrival()
        self._move_config()

    def _finished_shared_target(self):
        return self.p["vm"] in self.host.domains() and not self._config_pending()

    def _nothing(self):
        """A step with nothing to do (or undo) on this side: the table says why."""

    # ------------------------------------------------------------------ undo (abort)
    def _refuse_abort_source(self):
        """The source rolls back only under a guest that still runs here (after a killed run's
        xl migrate, still running here, has ended)."""
        self._wait_migrate_process()
        if self.p["vm"] not in self.host.domains():
            raise MigrationError("%s: %s no longer runs here (it was migrated): abort cannot bring it back; "
                                 "rerun without migrate_action=abort to finish the migration" % (
                                     self.p["host_name"], self.p["vm"]))

    def _undo_prepare_source(self):
        self._restore_tables(pause_vm=self.p.get("pause_domain", True), clear_stale=True)
        self._teardown_drbd()

    def _undo_prepare_target(self):
        # promote's undo restores the tables; again here for a run killed inside promote's swap
        self._restore_tables(pause_vm=False, clear_stale=True)
        self._teardown_drbd()
        for rep in self.replicas():
            if self._created_here(rep.disk["lv"]):
                rep.remove_lv()
        incoming = self._config_paths()["incoming"]
        if os.path.exists(incoming):
            self.host.remove_file(incoming)

    def _undo_promote_target_plain(self):
        self._restore_tables(pause_vm=False, clear_stale=True)

    def _demote(self):
        self._single_primary(demote=True)

    def _one_primary_after_peer(self):
        self._single_primary(demote=False)

    def _check_abort_target(self):
        """The target's copy goes only while the guest verifiably runs on the source's: never
        after it arrived here, and not while the source cannot be asked."""
        vm = self.p["vm"]
        domains = self.host.domains()
        if vm in domains or vm + "--incoming" in domains:
            raise MigrationError("%s: %s already runs (or arrives) here: abort refused, rerun to finish the migration" % (
                self.p["host_name"], vm))
        if self.journal.done("arrived"):
            raise MigrationError("%s: %s arrived here earlier (journal): this host may hold its only up-to-date "
                                 "copy; abort refused, inspect both hosts" % (self.p["host_name"], vm))
        if not self.host.runner.check_mode and not self.host.peer_runs(self.p["peer_address"], vm):
            raise MigrationError("%s: cannot confirm that %s runs on %s: refusing to drop this host's copy of its "
                                 "disks; abort again once %s answers and runs it" % (
                                     self.p["host_name"], vm, self.p["peer_name"], self.p["peer_name"]))

    # ------------------------------------------------------------------ checks: a step done here
    # Each reads the live state (and the journal) and holds only when the step's body would run
    # no command: a resumed step whose check holds is not run again.

    def _prepared_plain(self):
        minors = self.host.drbd()
        states = [rep.status(minors) for rep in self.replicas()]
        if any(state is None or state["cstate"] not in LINKED_CSTATES for state in states):
            return False  # a first run: no fork for the tables
        tables = self.host.dm_tables()
        for rep, state in zip(self.replicas(), states):
            if rep.lv() is None or rep.lv("meta_lv") is None or rep.disk["clone"] not in tables:
                return False
            if not _same_file(rep.res_path, rep.resource_text()):
                return False  # a rekeyed resume rewrites it
            if self.p["role"] == "source" and (state["role"] != "Primary" or not rep.on_drbd(tables)):
                return False
        return True

    def _prepared_drbd(self):
        minors = self.host.drbd()
        want = "Primary" if self.p["role"] == "source" else "Secondary"
        states = [rep.status(minors) for rep in self.replicas()]
        return all(state is not None and state["role"] == want for state in states)

    def _promoted(self):
        minors = self.host.drbd()
        tables = self.host.dm_tables() if self.p["role"] == "target" and not self.drbd_mode else {}
        for rep in self.replicas():
            state = rep.status(minors)
            if state is None or not both_uptodate(state) or not self.journal.done("two-primaries:%s" % rep.name):
                return False
            if self.p["role"] == "target" and state["role"] != "Primary":
                return False
            if tables and not rep.on_drbd(tables):
                return False
        return True

    def _migrated(self):
        return self.journal.done("migrated") and self.p["vm"] not in self.host.domains()

    def _drbd_gone(self):
        """Plain mode: nothing of the temporary DRBD left here and the LVs on their extents."""
        tables, minors = self.host.dm_tables(), self.host.drbd()
        for rep in self.replicas():
            if rep.status(minors) is not None or rep.on_drbd(tables) or rep.disk["clone"] in tables:
                return False
            if rep.lv("meta_lv") is not None or os.path.exists(rep.res_path):
                return False
        return True

    def _one_primary(self, role):
        """drbd mode: every resource with this host in role and two primaries disallowed again."""
        minors = self.host.drbd()
        for rep in self.replicas():
            state = rep.status(minors)
            if state is None or state["role"] != role or (role == "Primary" and state["peer_role"] == "Primary"):
                return False
            if self.journal.done("two-primaries:%s" % rep.name) and not self.journal.done("one-primary:%s" % rep.name):
                return False
        return True

    def _config_left(self):
        """Source: its /etc/xen/auto copy or parked copy still here."""
        paths = self._config_paths()
        return os.path.exists(paths["auto"]) or os.path.exists(paths["parked"])

    def _config_pending(self):
        """Target: a config sent by the source (or kept by an older release's journal) not installed."""
        paths = self._config_paths()
        text = self.journal.data.get("config_text")
        return os.path.exists(paths["incoming"]) or bool(text) and not _same_file(paths["auto"], text)

    def _finished_plain_source(self):
        if not self.journal.done("migrated") and not self.p.get("target_finished"):
            return False
        if self.p["vm"] in self.host.domains() or self._config_left():
            return False
        return self._drbd_gone() and all(rep.lv() is None for rep in self.replicas())

    def _finished_plain_target(self):
        if self.p["vm"] not in self.host.domains() or self._config_pending() or not self._drbd_gone():
            return False
        return all(os.path.exists(disk["lv_path"]) for disk in self.disks())

    def _finished_drbd_source(self):
        return self._migrated() and not self._config_left() and self._one_primary("Secondary")

    def _finished_drbd_target(self):
        return self.p["vm"] in self.host.domains() and not self._config_pending() and self._one_primary("Primary")

    def _always(self):
        return True

    # ------------------------------------------------------------------ the table, driven
    def row(self, step):
        return STEP_TABLE[(step, self.p["role"], self.mode)]

    def _entered(self, row):
        """Whether this host began the step: its step:NAME, a later step's, or one of its events."""
        if self.journal.done("step:" + row.step) or self.journal.passed(row.step):
            return True
        return any(_event_matches(entry["event"], row.events) for entry in self.journal.data.get("log", []))

    def _body(self, step, *args):
        return getattr(self, self.row(step).run)(*args)

    @_replica_errors
    def prepare(self):
        return self._body("prepare")

    @_replica_errors
    def promote(self, window_s=None):
        """Returns (done, sync report): not done means call again (the controller loops and prints
        the progress)."""
        return self._body("promote", *(self._step_args("promote") if window_s is None else (window_s,)))

    @_replica_errors
    def migrate(self):
        return self._body("migrate")

    @_replica_errors
    def finish(self):
        """Source: xl migrate unless the journal has it done, then its cleanup. Target (at the
        same time): wait for the domain to arrive, then its cleanup. One round for both."""
        return self._body("finish")

    @_replica_errors
    def run(self, step):
        """One step of this side as a resumed run meets it. Returns (state, value): state "past"
        when this host already began a later step (nothing done), "held" when the step's check
        holds (its body is not run), "ran" otherwise; value is what the body returns (promote:
        (done, sync report), also when held)."""
        if self.journal.passed(step):
            return "past", None
        if not self.host.runner.check_mode and not self.journal.done("step:" + step):
            self.journal.mark("step:" + step)
        row = self.row(step)
        if getattr(self, row.check)():
            return "held", (True, self.sync_status()[1]) if step == "promote" else None
        return "ran", self._body(step, *self._step_args(step))

    def _step_args(self, step):
        return (self.p.get("sync_window", 0),) if step == "promote" else ()

    @_replica_errors
    def abort(self):
        """Undo the steps this host began, last first. Every refusal of those steps is checked
        before any undo runs (CheckPrereq, then Exec), each once."""
        rows = [self.row(step) for step in STEPS]
        begun = [row for row in rows if self._entered(row)]
        for name in _unique(row.refuse for row in reversed(begun)):
            getattr(self, name)()
        for name in _unique(row.revert for row in reversed(begun)):
            getattr(self, name)()


class StepRow(object):
    """One row of the migration table: what a host in ``role`` does in ``step`` in ``mode``.

    does/check/undo say it for the operator (docs/migration-steps.md is made of them); run, check
    (a predicate: the step is done here), revert and refuse (abort's CheckPrereq for revert) name
    HostSide methods; events are the journal events the step writes (a name, or a prefix ending
    with ':'), by which abort sees that it began."""

    __slots__ = ("step", "role", "mode", "does", "done_when", "undo", "run", "check", "revert", "refuse", "events")

    def __init__(self, step, role, mode, does, done_when, undo, run, check, revert, refuse, events=()):
        self.step, self.role, self.mode = step, role, mode
        self.does, self.done_when, self.undo = does, done_when, undo
        self.run, self.check, self.revert, self.refuse = run, check, revert, refuse
        self.events = tuple(events)


MODES = ("plain", "drbd", "shared")
ROLES = ("source", "target")
# Whether a mode's disks go through DRBD (a DiskReplica each); shared disks stay where they are.
REPLICATED = {"plain": True, "drbd": True, "shared": False}
_EVENTS = {
    "prepare": ("lv-created", "meta-created", "clone-created", "resource-written", "md-created:", "up:",
                "primary-forced:", "swapped-to-drbd", "connected:"),
    "promote": ("synced", "two-primaries:", "primary:", "swapped-to-drbd:"),
    "migrate": ("config-sent", "config-parked", "migrate-started", "migrated"),
    "finish": ("arrived", "target-verified", "tables-restored", "down:", "secondary:", "one-primary:",
               "config-installed", "config-removed", "lv-links-recreated"),
}
_SOURCE_REFUSES = "_refuse_abort_source"
_TARGET_REFUSES = "_check_abort_target"
_ROWS = (
    # step, role, mode: does; done when; undo; run, check, revert
    ("prepare", "source", "plain",
     "metadata LVs, clones, resource files, create-md, up; primary --force while disconnected, the LVs' "
     "DRBD tables loaded, one dmsetup resume each under xl pause (pause_domain); connect",
     "every resource up and linked, Primary, its LV's table on DRBD, clone, metadata LV and resource file "
     "(with this run's secret) in place",
     "LV tables back to the clones' (original) tables under xl pause (pause_domain), a stale loaded table cleared; DRBD down, "
     "clones, metadata LVs and resource files removed",
     "_prepare_plain_source", "_prepared_plain", "_undo_prepare_source"),
    ("prepare", "target", "plain",
     "same-size LVs and metadata LVs (in each disk's target VG), clones, resource files, create-md, up; wait until "
     "linked",
     "every resource up and linked, LV, clone, metadata LV and resource file (with this run's secret) in place",
     "LV tables back if on DRBD; DRBD down, clones, metadata LVs and resource files removed, the LVs this "
     "migration created removed, a config sent here removed",
     "_prepare_plain_target", "_prepared_plain", "_undo_prepare_target"),
    ("prepare", "source", "drbd", "check the resources: up and Primary here",
     "every resource up and Primary here", "nothing (nothing changed)",
     "_check_permanent_resources", "_prepared_drbd", "_nothing"),
    ("prepare", "target", "drbd", "check the resources: up and Secondary here",
     "every resource up and Secondary here", "nothing (nothing changed)",
     "_check_permanent_resources", "_prepared_drbd", "_nothing"),
    ("promote", "source", "plain", "wait (bounded, called again) for UpToDate/UpToDate; allow two primaries",
     "every resource UpToDate/UpToDate, two primaries allowed (journal two-primaries:RES)",
     "nothing of its own: prepare's undo takes DRBD down",
     "_promote_source", "_promoted", "_nothing"),
    ("promote", "target", "plain",
     "wait for UpToDate/UpToDate; allow two primaries; primary (retried until the source allows two); the LVs' "
     "tables swapped to DRBD (nothing uses them yet)",
     "every resource UpToDate/UpToDate and Primary here, two primaries allowed, the LVs' tables on DRBD",
     "LV tables back to their extents (prepare's undo takes DRBD down)",
     "_promote_target_plain", "_promoted", "_undo_promote_target_plain"),
    ("promote", "source", "drbd", "wait for UpToDate/UpToDate; allow two primaries",
     "every resource UpToDate/UpToDate, two primaries allowed (journal two-primaries:RES)",
     "once the target is secondary again, two primaries disallowed",
     "_promote_source", "_promoted", "_one_primary_after_peer"),
    ("promote", "target", "drbd", "wait for UpToDate/UpToDate; allow two primaries; primary",
     "every resource UpToDate/UpToDate and Primary here, two primaries allowed",
     "secondary, two primaries disallowed",
     "_promote_target_drbd", "_promoted", "_demote"),
    ("migrate", "source", "plain",
     "with every disk verified (Connected, UpToDate, in sync, peer Primary): config sent to the target and "
     "parked, xl migrate (a killed run's xl migrate waited for; an interrupted one confirmed on the target); "
     "when a disk changes VG, the config sent and xl migrate -C's have its path in the target VG, and the running "
     "domain's uuid and vif MACs where the file leaves them to libxl",
     "journal migrated and the domain no longer here", "the config back into /etc/xen/auto",
     "_xl_migrate", "_migrated", "_take_back_config"),
    ("migrate", "target", "plain", "nothing: the source's xl migrate sends the domain, finish waits for it",
     "always", "nothing", "_nothing", "_always", "_nothing"),
    ("migrate", "source", "drbd", "as in plain mode", "journal migrated and the domain no longer here",
     "the config back into /etc/xen/auto", "_xl_migrate", "_migrated", "_take_back_config"),
    ("migrate", "target", "drbd", "nothing: the source's xl migrate sends the domain, finish waits for it",
     "always", "nothing", "_nothing", "_always", "_nothing"),
    ("finish", "source", "plain",
     "migrate (unless journaled or the target reported the domain), the target's copy verified; LV tables "
     "back, DRBD down, clones, metadata LVs, resource files, the LVs and the config removed",
     "migrated (or the target finished), the domain not here, no DRBD, clone, metadata LV, resource file, LV "
     "or config left",
     "the config back (the domain still runs here: xl migrate did not happen; refused otherwise)",
     "_finish_plain_source", "_finished_plain_source", "_take_back_config"),
    ("finish", "target", "plain",
     "wait for the domain to arrive (VM--incoming renamed VM); its disks UpToDate; LV tables back under "
     "xl pause (pause_domain), DRBD down, clones, metadata LVs and resource files removed, /dev links settled, "
     "config installed",
     "the domain here, no DRBD, clone, metadata LV or resource file left, /dev links there, the config installed",
     "nothing (abort refuses once the domain arrived here)",
     "_finish_plain_target", "_finished_plain_target", "_nothing"),
    ("finish", "source", "drbd",
     "migrate (unless journaled), the target's copy verified; secondary, two primaries disallowed, config removed",
     "migrated, the domain not here, every resource Secondary, two primaries disallowed, no config left",
     "the config back (the domain still runs here; refused otherwise)",
     "_finish_drbd_source", "_finished_drbd_source", "_take_back_config"),
    ("finish", "target", "drbd",
     "wait for the domain to arrive; once the source is secondary, two primaries disallowed; config installed",
     "the domain here, Primary with a secondary peer, two primaries disallowed, the config installed",
     "nothing (abort refuses once the domain arrived here)",
     "_finish_drbd_target", "_finished_drbd_target", "_nothing"),
)
_ROWS += (
    ("prepare", "source", "shared", "check the disks: each shared path readable here, the domain here",
     "every shared path readable here and the domain here", "nothing (nothing changed)",
     "_prepare_shared", "_prepared_shared", "_nothing"),
    ("prepare", "target", "shared",
     "check the imports: each shared path readable here (the iSCSI or AoE import is up), the domain not here",
     "every shared path readable here and the domain not here", "nothing (nothing changed)",
     "_prepare_shared", "_prepared_shared", "_nothing"),
    ("promote", "source", "shared", "nothing: no DRBD", "always", "nothing", "_promote_shared", "_always", "_nothing"),
    ("promote", "target", "shared", "nothing: no DRBD", "always", "nothing", "_promote_shared", "_always", "_nothing"),
    ("migrate", "source", "shared", "as in plain mode (no copy to verify: both hosts reach the same disks)",
     "journal migrated and the domain no longer here", "the config back into /etc/xen/auto",
     "_xl_migrate", "_migrated", "_take_back_config"),
    ("migrate", "target", "shared", "nothing: the source's xl migrate sends the domain, finish waits for it",
     "always", "nothing", "_nothing", "_always", "_nothing"),
    ("finish", "source", "shared", "migrate (unless journaled); the config removed (no replica to tear down)",
     "migrated, the domain not here, no config left",
     "the config back (the domain still runs here; refused otherwise)",
     "_finish_shared_source", "_finished_shared_source", "_take_back_config"),
    ("finish", "target", "shared", "wait for the domain to arrive; config installed",
     "the domain here, the config installed", "nothing (abort refuses once the domain arrived here)",
     "_finish_shared_target", "_finished_shared_target", "_nothing"),
)
STEP_TABLE = dict(
    ((step, role, mode), StepRow(step, role, mode, does, done_when, undo, run, check, revert,
                                 _SOURCE_REFUSES if role == "source" else _TARGET_REFUSES, _EVENTS[step]))
    for step, role, mode, does, done_when, undo, run, check, revert in _ROWS)
ABORT_REFUSES = {
    "source": "the domain must run here (after a still running xl migrate of a killed run has ended)",
    "target": "the domain neither runs nor arrives here, never arrived (journal), and runs on the source",
}


def steps_markdown():
    """The table as the operator reads it (docs/migration-steps.md holds this text)."""
    lines = []
    for mode in MODES:
        lines += ["", "### Storage mode %s" % mode, "",
                  "| step | role | does | done when (resume skips it) | undo (abort) |",
                  "|---|---|---|---|---|"]
        for step in STEPS:
            for role in ROLES:
                row = STEP_TABLE[(step, role, mode)]
                lines.append("| %s | %s | %s | %s | %s |" % (step, role, row.does, row.done_when, row.undo))
    lines += ["", "Abort undoes the steps a host began (journal `step:NAME` or one of the step's events), last first,",
              "after checking, before any undo, that it may:", ""]
    lines += ["- %s: %s" % (role, ABORT_REFUSES[role]) for role in ROLES]
    return "\n".join(lines[1:]) + "\n"


def _event_matches(event, names):
    return any(event == name or name.endswith(":") and event.startswith(name) for name in names)


def _unique(names):
    seen = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return seen


def _same_file(path, text):
    try:
        with open(path) as handle:
            return handle.read() == text
    except (IOError, OSError):
        return False
