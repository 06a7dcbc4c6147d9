# Copyright (c) sanless.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capacity and failover planner for a cluster of Xen dom0s with local disks.

Pure functions, plain dicts and lists in and out, Python 3.9+ standard
library only: this file may be shipped to dom0s as a module_util.

Inputs
======

hosts: ``[{"name", "memory_free_mib", "online", "vg_free_bytes"?, "drained"?}]``
    ``memory_free_mib`` is the free memory with the current VMs running.
    ``online`` defaults to true.  ``vg_free_bytes`` (optional) is the free
    space of the volume group that holds VM disks.  ``drained`` (default
    false): the host carries the drained mark and is no evacuation target.

vms: ``[{"name", "host", "memory_mib", "protected"?, "restart_on"?,
"disk_bytes"?, "order"?, "anti_affinity"?, "storage"?, "disks"?, "vcpus"?, "type"?}]``
    ``protected`` defaults to true.  ``restart_on`` lists the hosts that
    hold a replica of the VM's disks (DRBD peer, RAID1 partner) and so may
    restart it; absent (None) means "any host"; an empty list means plain
    LVM: no replica, never restartable elsewhere.  ``order`` is the restart
    priority (lower restarts first, absent = last), ``anti_affinity`` a
    group name: two VMs of one group should not share a host.  ``storage``
    (plain, drbd, raid1, shared; None: unknown), ``disks`` (sizes in bytes;
    their sum is ``disk_bytes``), ``vcpus`` and ``type`` (pv, pvh, hvm: Xen's
    overhead) are what an evacuation needs.

Semantics of ``max_host_failures`` (XenServer HA planner, made exact)
=====================================================================

They follow ``ocaml/xapi/binpack.ml`` and ``ocaml/xapi/xapi_ha_vm_failover.ml``
of xapi-project/xen-api:

* Planned VMs are the protected *agile* VMs (``compute_restart_plan``:
  ``Agility.partition_vm_ps_by_agile``).  Unprotected VMs are only overhead:
  their memory is already missing from ``memory_free_mib`` and they are not
  restarted.  A protected VM with ``restart_on: []`` (plain LVM) is the
  non-agile case: XenServer refuses to protect such VMs and
  ``plan_for_n_failures`` can only answer "Plan_exists_excluding_non_agile_VMs"
  for them; we take that reading: they are never restartable elsewhere, are
  left out of the count and reported as ``non_agile``.
* Hosts are the live hosts, in a fixed deterministic order (xapi sorts them
  by uuid, we sort by name); VMs likewise (xapi: uuid, we: name).
* Protected VMs whose host is offline are first restarted with one
  biggest-fit-decreasing pass (``compute_restart_plan`` then
  ``get_specific_plan``); if one cannot be placed there is no plan at all
  ("No_plan_exists"): ``max_host_failures`` returns -1.
* ``biggest_fit_decreasing`` (binpack.ml): VMs are stably sorted by memory,
  biggest first (ties: VM order); bins (hosts) are stably sorted by free
  memory, biggest first (ties: host order; OCaml's ``List.sort`` is its
  stable merge sort).  Each VM goes to the *first*
  bin, i.e. the one with the most free memory; if it does not fit there it
  fits nowhere and is left out.  The bin is then re-inserted, by
  ``insert``, in front of the first bin whose free memory is <= its new free
  memory: among equals the bin just used comes first.  We extend this to
  ``restart_on``: a constrained VM goes to the first bin of that same list
  that it may restart on (same thing when unconstrained).
* ``simulate_failure``: when a host dies, the VMs currently on it (including
  VMs moved there by earlier failures) are packed onto the hosts still
  alive, each bin list being sorted afresh from the current free memory
  (so the tie order restarts from the host order at every failure); if any
  VM is left out the sequence fails (``Stop``).
* ``plan_always_possible`` (nCr strategy): r failures are tolerated iff for
  every combination of r live hosts and every permutation of it, i.e. every
  ordered sequence of r distinct live hosts (n!/(n-r)! of them), failing
  them one after the other, re-planning after each, never leaves a VM out.
  ``plan_trivially_never_possible``: never with fewer live hosts than r, nor
  with exactly r live hosts and at least one VM to protect.
* xapi's ``apply_plan`` lists the VMs restarted from offline hosts first in
  its placement, which only reorders VMs of equal memory; for unconstrained
  VMs that is a renaming and cannot change any answer, so we keep name order.
* ``compute_max_host_failures_to_tolerate`` bisects r on ``plan_for_n_failures``;
  the answer is the largest tolerated r.  It is well defined: a sequence
  that fails keeps failing when extended (its prefix is simulated the same
  way), so "tolerates r" is downward closed.
* XenServer only runs the exhaustive planner when n <= 32 and
  nPr = n!/(n-r)! < 3500 (``choose_heuristic``); otherwise it uses
  ``approximate_bin_pack``.  We always give the exhaustive answer.

Algorithm (exact, no enumeration of all sequences when it can be avoided)
========================================================================

Iterative deepening over r = 1, 2, ...: depth-first search over failure
sequences with exact greedy re-planning at inner nodes and early exit on the
first failing sequence.  What makes it fast is proving whole groups of
sequences safe without simulating them; every shortcut is a *sufficient*
condition for "greedy places every VM", so the answer is always that of
the plain enumeration:

1. Invariant: for a live host X, ``c_X = free_X + load_X`` (load = memory of
   protected agile VMs on X) never changes: placing v on X moves v from free
   to load.  So after any successful failures of the set D, the total free
   memory of the survivors is ``sum(c over alive) - L`` (L = all protected
   memory), whatever the order.
2. Subtree bound (only when no VM is constrained): greedy leaves a VM v out
   only if every one of the n' survivors has less than v free, so total free
   < n'.v; at that moment the total is at least ``sum(c alive) - L -
   sum(c of the failed) + v``.  Hence if for j = 1..k
   ``sum(c alive) - L - (j biggest c of alive) >= (n - j - 1) * Vmax``
   (n alive now, n - j >= 1, Vmax the biggest protected VM) then every
   sequence of k more failures succeeds, whatever the order.
3. Last failure of a sequence (the leaves, by far the most numerous): only
   success matters, not the resulting placement.  When all VMs of the
   failing host C are unconstrained, success depends only on the multiset of
   survivors' free memory (ties change which host gets a VM, not the
   multiset).  Before placing the t-th VM, at most t-1 bins changed, so one
   of the t biggest is untouched: the biggest bin then has at least F'_t,
   the t-th biggest initial free memory of the survivors.  So ``v_t <= F'_t``
   for all t suffices (tier 2), and ``v_1 <= F'_m`` (m VMs) is an O(1)
   special case (tier 1).  For a whole node at once (tier 0): with M the
   most VMs on an unconstrained host and V the biggest such VM, removing one
   host from the sorted free list leaves its M-th biggest >= F_{M+1}, so
   ``V <= F_{M+1}`` proves every leaf of that node.  Otherwise the leaf is
   simulated exactly (heap of free memory, or the keyed simulation below
   when constrained VMs are involved).
4. Inner nodes are simulated exactly with xapi's order: a heap keyed by
   (-free, seq) where seq is the host order and a fresh, ever smaller,
   number on re-insertion, which reproduces ``insert`` putting the used bin
   first among equals.

Memoising on the full state (alive hosts, their free memory and VMs) is
sound, but gave no hit at all on random clusters (two orders of failures
practically never leave the VMs in the same places), so it is not done.

Not used, on purpose: memoising on the *set* of failed hosts (the state after
A then B is generally not the state after B then A), and symmetry between
hosts with identical residual state (the tie order follows host order, which
is not symmetric: with X, Z, Y equal in free memory and in that order,
failing X sends VMs to Z, failing Y sends them to X, so the two branches are
not images of each other).
"""


import copy
import heapq
from bisect import bisect_right
from itertools import accumulate
from operator import gt, le

from ansible_collections.sanless.xen.plugins.module_utils.conventions import (
    DEFAULT_EXTENT_BYTES, domain_need_mib, meta_bytes, meta_lv_name, round_up, vm_disk_lv,
)

MIB = 1024 * 1024

_NO_ORDER = 1 << 62


class PlanError(ValueError):
    """Inconsistent or invalid planner input."""


# ---------------------------------------------------------------------------
# Input validation


def _check_int(value, what, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{what} must be an integer, got {value!r}")
    if value < 0:
        raise PlanError(f"{what} must not be negative, got {value!r}")
    return value


def _check_name(value, what):
    if not isinstance(value, str) or not value:
        raise PlanError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _check_bool(value, what, default):
    if value is None:
        return default
    if not isinstance(value, bool):
        raise PlanError(f"{what} must be a boolean, got {value!r}")
    return value


def validate(hosts, vms):
    """Check hosts and vms; return normalised copies (hosts, vms) sorted by name.

    Raises PlanError on unknown hosts, negative or non-integer sizes,
    duplicate names, restart_on naming unknown hosts, missing fields.
    """
    if not isinstance(hosts, (list, tuple)):
        raise PlanError(f"hosts must be a list, got {type(hosts).__name__!r}")
    if not isinstance(vms, (list, tuple)):
        raise PlanError(f"vms must be a list, got {type(vms).__name__!r}")
    norm_hosts = {}
    for host in hosts:
        if not isinstance(host, dict):
            raise PlanError(f"each host must be a dict, got {host!r}")
        name = _check_name(host.get("name"), "host name")
        if name in norm_hosts:
            raise PlanError(f"duplicate host name {name!r}")
        if "memory_free_mib" not in host:
            raise PlanError(f"host {name!r} has no memory_free_mib")
        norm_hosts[name] = {
            "name": name,
            "memory_free_mib": _check_int(host["memory_free_mib"], f"memory_free_mib of host {name!r}"),
            "online": _check_bool(host.get("online"), f"online of host {name!r}", True),
            "vg_free_bytes": _check_int(host.get("vg_free_bytes"), f"vg_free_bytes of host {name!r}", allow_none=True),
            "drained": _check_bool(host.get("drained"), f"drained of host {name!r}", False),
        }
    norm_vms = {}
    for vm in vms:
        norm = _validate_vm(vm, norm_hosts)
        if norm["name"] in norm_vms:
            raise PlanError("duplicate VM name {!r}".format(norm["name"]))
        norm_vms[norm["name"]] = norm
    return ([norm_hosts[n] for n in sorted(norm_hosts)], [norm_vms[n] for n in sorted(norm_vms)])


def _validate_vm(vm, hosts_by_name, need_host=True):
    if not isinstance(vm, dict):
        raise PlanError(f"each VM must be a dict, got {vm!r}")
    name = _check_name(vm.get("name"), "VM name")
    host = vm.get("host")
    if host is None and not need_host:
        pass
    elif not isinstance(host, str) or host not in hosts_by_name:
        raise PlanError(f"VM {name!r} is on unknown host {host!r}")
    if "memory_mib" not in vm:
        raise PlanError(f"VM {name!r} has no memory_mib")
    restart_on = vm.get("restart_on")
    if restart_on is not None:
        if isinstance(restart_on, str) or not isinstance(restart_on, (list, tuple)):
            raise PlanError(f"restart_on of VM {name!r} must be a list of host names, got {restart_on!r}")
        for peer in restart_on:
            if peer not in hosts_by_name:
                raise PlanError(f"restart_on of VM {name!r} names unknown host {peer!r}")
        if len(set(restart_on)) != len(restart_on):
            raise PlanError(f"restart_on of VM {name!r} names a host twice: {restart_on!r}")
        restart_on = sorted(restart_on)
    order = vm.get("order")
    if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
        raise PlanError(f"order of VM {name!r} must be an integer, got {order!r}")
    group = vm.get("anti_affinity")
    if group is not None and not isinstance(group, str):
        raise PlanError(f"anti_affinity of VM {name!r} must be a string, got {group!r}")
    storage = vm.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise PlanError(f"storage of VM {name!r} must be a string, got {storage!r}")
    disks = vm.get("disks")
    if disks is not None:
        if isinstance(disks, (str, dict)) or not isinstance(disks, (list, tuple)):
            raise PlanError(f"disks of VM {name!r} must be a list of sizes in bytes, got {disks!r}")
        disks = [_check_int(size, f"a disk size of VM {name!r}") for size in disks]
    return {
        "name": name,
        "host": host,
        "memory_mib": _check_int(vm["memory_mib"], f"memory_mib of VM {name!r}"),
        "protected": _check_bool(vm.get("protected"), f"protected of VM {name!r}", True),
        "restart_on": restart_on,
        "disk_bytes": _check_int(vm.get("disk_bytes", 0) or 0, f"disk_bytes of VM {name!r}") if disks is None else sum(disks),
        "order": order,
        "anti_affinity": group,
        "storage": storage,
        "disks": disks,
        "vcpus": _check_int(vm.get("vcpus") or 1, f"vcpus of VM {name!r}"),
        "type": vm.get("type") or "pv",
    }


# ---------------------------------------------------------------------------
# What-if


def apply_what_if(hosts, vms, what_if=None):
    """Return validated copies of (hosts, vms) with hypothetical changes applied.

    ``what_if``: ``{"offline": [host], "online": [host], "remove_vms": [name],
    "add_vms": [vm], "memory_mib": {vm: new size}}``.  Removing a running VM frees
    its memory on its host; adding one takes memory (and disk for a plain or
    replicated VM with ``disk_bytes``) from its host; an added VM without
    ``host`` is placed with ``place``.  The inputs are never modified.
    """
    hosts, vms = validate(copy.deepcopy(list(hosts)), copy.deepcopy(list(vms)))
    if not what_if:
        return hosts, vms
    if not isinstance(what_if, dict):
        raise PlanError(f"what_if must be a dict, got {what_if!r}")
    unknown = set(what_if) - {"offline", "online", "remove_vms", "add_vms", "memory_mib"}
    if unknown:
        raise PlanError("unknown what_if keys: {}".format(", ".join(sorted(unknown))))
    by_host = {h["name"]: h for h in hosts}
    by_vm = {v["name"]: v for v in vms}

    def _names(key, known, what):
        names = what_if.get(key) or []
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise PlanError(f"what_if.{key} must be a list")
        for name in names:
            if name not in known:
                raise PlanError(f"what_if.{key} names unknown {what} {name!r}")
        return names

    for name in _names("remove_vms", by_vm, "VM"):
        vm = by_vm.pop(name)
        host = by_host[vm["host"]]
        host["memory_free_mib"] += vm["memory_mib"]
        if host["vg_free_bytes"] is not None:
            host["vg_free_bytes"] += vm["disk_bytes"]
    resize = what_if.get("memory_mib") or {}
    if not isinstance(resize, dict):
        raise PlanError("what_if.memory_mib must be a dict VM -> MiB")
    for name, size in sorted(resize.items()):
        if name not in by_vm:
            raise PlanError(f"what_if.memory_mib names unknown VM {name!r}")
        vm = by_vm[name]
        size = _check_int(size, f"what_if.memory_mib of VM {name!r}")
        host = by_host[vm["host"]]
        if host["online"] and size - vm["memory_mib"] > host["memory_free_mib"]:
            room = host["memory_free_mib"] + vm["memory_mib"]
            raise PlanError(f"VM {name!r} cannot grow to {size} MiB: host {host['name']!r} has only {room} MiB free")
        host["memory_free_mib"] -= size - vm["memory_mib"]
        vm["memory_mib"] = size
    for name in _names("offline", by_host, "host"):
        by_host[name]["online"] = False
    for name in _names("online", by_host, "host"):
        by_host[name]["online"] = True
    added = what_if.get("add_vms") or []
    if not isinstance(added, (list, tuple)):
        raise PlanError("what_if.add_vms must be a list of VMs")
    for new_vm in added:
        if not isinstance(new_vm, dict):
            raise PlanError("each what_if.add_vms entry must be a dict")
        if new_vm.get("name") in by_vm:
            raise PlanError("duplicate VM name {!r}".format(new_vm.get("name")))
        new_vm = dict(new_vm)
        if new_vm.get("host") is None:
            spot = place(list(by_host.values()), list(by_vm.values()), new_vm)
            new_vm["host"] = spot["host"]
            if spot.get("secondary") and new_vm.get("restart_on") is None:
                new_vm["restart_on"] = [spot["secondary"]]
        vm = _validate_vm(new_vm, by_host)
        host = by_host[vm["host"]]
        if host["online"]:
            if vm["memory_mib"] > host["memory_free_mib"]:
                raise PlanError(f"VM {vm['name']!r} ({vm['memory_mib']} MiB) does not fit on host {host['name']!r} ({host['memory_free_mib']} MiB free)")
            host["memory_free_mib"] -= vm["memory_mib"]
            if host["vg_free_bytes"] is not None and vm["disk_bytes"]:
                if vm["disk_bytes"] > host["vg_free_bytes"]:
                    raise PlanError(f"disks of VM {vm['name']!r} ({vm['disk_bytes']} bytes) do not fit on host {host['name']!r}"
                                    f" ({host['vg_free_bytes']} bytes free)")
                host["vg_free_bytes"] -= vm["disk_bytes"]
        by_vm[vm["name"]] = vm
    return ([by_host[n] for n in sorted(by_host)], [by_vm[n] for n in sorted(by_vm)])


# ---------------------------------------------------------------------------
# Core model


def _vm_rank_key(vm):
    # biggest_fit_decreasing: stable sort by size, biggest first, over a
    # name-sorted list.
    return (-vm["memory_mib"], vm["name"])


class _Cluster:
    """Integer-indexed model of the protected agile VMs on the live hosts."""

    def __init__(self, hosts, vms):
        live = [h for h in hosts if h["online"]]
        self.host_names = [h["name"] for h in live]
        self.n = len(live)
        index = {name: i for i, name in enumerate(self.host_names)}
        self.free = [h["memory_free_mib"] for h in live]
        agile = []
        self.non_agile = []
        self.unprotected = []
        for vm in vms:
            if not vm["protected"]:
                self.unprotected.append(vm["name"])
            elif vm["restart_on"] == []:
                self.non_agile.append(vm["name"])
            else:
                agile.append(vm)
        agile.sort(key=_vm_rank_key)
        self.vm_names = [vm["name"] for vm in agile]
        self.mem = [vm["memory_mib"] for vm in agile]
        self.allowed = []
        for vm in agile:
            if vm["restart_on"] is None:
                self.allowed.append(None)
            else:
                self.allowed.append(frozenset(index[h] for h in vm["restart_on"] if h in index))
        self.constrained = [a is not None for a in self.allowed]
        placed = [[] for host in range(self.n)]
        self.offline_vms = []
        for rank, vm in enumerate(agile):
            if vm["host"] in index:
                placed[index[vm["host"]]].append(rank)
            else:
                self.offline_vms.append(rank)
        self.host_vms = [tuple(p) for p in placed]
        self.total_protected = sum(self.mem)
        self.vmax = max(self.mem) if self.mem else 0
        self.any_constrained = any(self.constrained)

    def initial_state(self):
        """State after restarting the protected VMs of offline hosts, or None."""
        state = _State(self, list(self.free), list(range(self.n)), list(self.host_vms))
        if not self.offline_vms:
            return state
        placement = self.pack(state, None, self.offline_vms)
        if placement is None:
            return None
        return state.moved(None, placement)

    def pack(self, state, dead, ranks, record=True, keep_going=False):
        """biggest_fit_decreasing of VM ranks onto the alive hosts other than dead.

        ``ranks`` must be sorted (VM rank order = xapi's placement order).
        Returns [(rank, host index)], or None as soon as one VM is left out
        (unless keep_going: then left-out VMs are returned with host None).
        """
        alive = state.alive
        is_alive = state.is_alive
        mem = self.mem
        allowed = self.allowed
        cur_free = list(state.free)
        cur_seq = list(range(self.n))
        heap = None
        seq_counter = 0
        out = []
        for rank in ranks:
            size = mem[rank]
            hosts_ok = allowed[rank]
            if hosts_ok is None:
                if heap is None:
                    heap = [(-cur_free[i], cur_seq[i], i) for i in alive if i != dead]
                    heapq.heapify(heap)
                while heap and cur_seq[heap[0][2]] != heap[0][1]:
                    heapq.heappop(heap)
                if not heap or -heap[0][0] < size:
                    if not keep_going:
                        return None
                    out.append((rank, None))
                    continue
                best = heap[0][2]
                left = -heap[0][0] - size
                seq_counter -= 1
                heapq.heapreplace(heap, (-left, seq_counter, best))
            else:
                best = None
                best_free = best_seq = 0
                for i in hosts_ok:
                    if i == dead or not is_alive[i]:
                        continue
                    f = cur_free[i]
                    if best is None or f > best_free or (f == best_free and cur_seq[i] < best_seq):
                        best, best_free, best_seq = i, f, cur_seq[i]
                if best is None or best_free < size:
                    if not keep_going:
                        return None
                    out.append((rank, None))
                    continue
                left = best_free - size
                seq_counter -= 1
                if heap is not None:
                    heapq.heappush(heap, (-left, seq_counter, best))
            cur_free[best] = left
            cur_seq[best] = seq_counter
            if record:
                out.append((rank, best))
        return out


class _State:
    """Alive hosts, their free memory and VMs; per-host load, VM count, biggest VM."""

    __slots__ = ("alive", "cluster", "count", "free", "host_vms", "is_alive", "load", "tied", "top")

    def __init__(self, cluster, free, alive, host_vms, derived=None):
        self.cluster = cluster
        self.free = free
        self.alive = alive
        self.host_vms = host_vms
        if derived is None:
            derived = ([0] * cluster.n, [0] * cluster.n, [0] * cluster.n, [False] * cluster.n)
            for i, vms in enumerate(host_vms):
                self._derive(i, vms, derived)
        self.load, self.count, self.top, self.tied = derived
        self.is_alive = [False] * cluster.n
        for i in alive:
            self.is_alive[i] = True

    def _derive(self, i, vms, derived):
        mem = self.cluster.mem
        load, count, top, tied = derived
        load[i] = sum(mem[r] for r in vms)
        count[i] = len(vms)
        top[i] = mem[vms[0]] if vms else 0
        constrained = self.cluster.constrained
        tied[i] = any(constrained[r] for r in vms)

    def moved(self, dead, placement):
        """New state: host ``dead`` (or None) gone, ``placement`` applied."""
        mem = self.cluster.mem
        free = list(self.free)
        host_vms = list(self.host_vms)
        derived = (list(self.load), list(self.count), list(self.top), list(self.tied))
        load, count, top, tied = derived
        constrained = self.cluster.constrained
        added = {}
        for rank, i in placement:
            if i is None:
                continue
            size = mem[rank]
            free[i] -= size
            load[i] += size
            count[i] += 1
            top[i] = max(top[i], size)
            if constrained[rank]:
                tied[i] = True
            added.setdefault(i, []).append(rank)
        for i, ranks in added.items():
            host_vms[i] = tuple(sorted(host_vms[i] + tuple(ranks)))
        alive = self.alive
        if dead is not None:
            host_vms[dead] = ()
            self._derive(dead, (), derived)
            alive = [i for i in alive if i != dead]
        return _State(self.cluster, free, alive, host_vms, derived)


class _Search:
    """Exact 'every ordered sequence of r failures' search with pruning."""

    def __init__(self, cluster, stats=None):
        self.cluster = cluster
        self.stats = stats if stats is not None else {}
        for key in ("inner_nodes", "subtree_proofs", "node_proofs", "leaf_sum", "leaf_tier1", "leaf_tier2", "leaf_simulated"):
            self.stats.setdefault(key, 0)

    @staticmethod
    def capacity(state):
        """c_X = free + protected load, invariant while X lives."""
        return {i: state.free[i] + state.load[i] for i in state.alive}

    def subtree_safe(self, state, k, caps):
        """Sufficient condition: every sequence of k more failures succeeds (unconstrained VMs only)."""
        cluster = self.cluster
        if not cluster.mem:
            return True
        n = len(state.alive)
        if cluster.any_constrained or k >= n:
            return False
        alive_caps = sorted((caps[i] for i in state.alive), reverse=True)
        total = sum(alive_caps) - cluster.total_protected
        for j in range(1, k + 1):
            total -= alive_caps[j - 1]
            if total < (n - j - 1) * cluster.vmax:
                return False
        return True

    @staticmethod
    def order_hosts(state, subset=None):
        # Fail the most loaded hosts first: they break plans soonest.
        load = state.load
        return sorted(state.alive if subset is None else subset, key=lambda i: (-load[i], i))

    def all_ok(self, state, depth, caps):
        """True iff every ordered sequence of ``depth`` failures of alive hosts succeeds."""
        if self.subtree_safe(state, depth, caps):
            self.stats["subtree_proofs"] += 1
            return True
        if depth == 1:
            return self.last_failures_ok(state)
        self.stats["inner_nodes"] += 1
        cluster = self.cluster
        for dead in self.order_hosts(state):
            vms = state.host_vms[dead]
            placement = cluster.pack(state, dead, vms) if vms else []
            if placement is None:
                return False
            if not self.all_ok(state.moved(dead, placement), depth - 1, caps):
                return False
        return True

    def last_failures_ok(self, state):
        """True iff the failure of any single alive host can be absorbed."""
        cluster = self.cluster
        stats = self.stats
        alive = state.alive
        free = state.free
        count = state.count
        top = state.top
        n_left = len(alive) - 1
        frees = sorted(map(free.__getitem__, alive), reverse=True)
        if cluster.any_constrained:
            tied = state.tied
            loose = [i for i in alive if count[i] and not tied[i]]
            tight = [i for i in alive if tied[i]]
        else:
            loose = alive
            tight = ()
        # Tier 0, whole node: host C with m VMs is safe when v1_C <= F_{m+1}
        # (0-based frees[m]): without C, the m-th biggest is still >= that.
        counts = list(map(count.__getitem__, loose))
        if not counts or (max(counts) <= n_left and all(map(le, map(top.__getitem__, loose), map(frees.__getitem__, counts)))):
            stats["node_proofs"] += 1
        else:
            position = prefix = ascending = None
            shifted = frees[1:]
            mem = cluster.mem
            host_vms = state.host_vms
            for i in loose:
                m = count[i]
                if not m or (m <= n_left and top[i] <= frees[m]):
                    continue
                # Without C the t-th biggest is >= F_{t+1}: tier 2 with no need for C's rank.
                if m <= n_left and all(map(le, map(mem.__getitem__, host_vms[i]), shifted)):
                    stats["leaf_tier2"] += 1
                    continue
                # Sum tier: VM v can only be left out when each of the k
                # survivors that had >= v free is down to < v, so their sum
                # P_k minus what C placed before v (<= load_C - v) is < k.v.
                # P_k - load_C >= (k - 1).v_1 with k = #survivors >= v_1 rules
                # that out for every VM of C (k is the best choice of k).
                if prefix is None:
                    prefix = [0] + list(accumulate(frees))
                    ascending = [-f for f in frees]
                biggest = top[i]
                k = bisect_right(ascending, -biggest)
                held = prefix[k]
                if free[i] >= biggest:
                    held -= free[i]
                    k -= 1
                if k and held - state.load[i] >= (k - 1) * biggest:
                    stats["leaf_sum"] += 1
                    continue
                if position is None:
                    position = {}
                    for p, (_free, host) in enumerate(sorted(((free[h], h) for h in alive), reverse=True)):
                        position[host] = p
                p = position[i]
                # Tier 1: the m-th biggest survivor can take the biggest VM.
                if m <= n_left and top[i] <= (frees[m - 1] if p > m - 1 else frees[m]):
                    stats["leaf_tier1"] += 1
                    continue
                rest = frees[:p] + frees[p + 1:]
                sizes = [cluster.mem[r] for r in state.host_vms[i]]
                if m <= n_left:
                    # Tier 2: VM t surely fits when v_t <= F'_t; simulate only
                    # up to the last VM where that bound does not hold.
                    over = list(map(gt, sizes, rest))
                    if True not in over:
                        stats["leaf_tier2"] += 1
                        continue
                    sizes = sizes[:m - over[::-1].index(True)]
                stats["leaf_simulated"] += 1
                heap = [-f for f in rest]
                heapq.heapify(heap)
                for size in sizes:
                    if not heap or -heap[0] < size:
                        return False
                    heapq.heapreplace(heap, heap[0] + size)
        for i in tight:
            stats["leaf_simulated"] += 1
            if cluster.pack(state, i, state.host_vms[i], record=False) is None:
                return False
        return True

    def tolerates(self, state, r, caps):
        n = len(state.alive)
        if r == 0:
            return True
        if r > n or (r == n and self.cluster.mem):
            return False
        return self.all_ok(state, r, caps)


def _prepare(hosts, vms, what_if):
    hosts, vms = apply_what_if(hosts, vms, what_if)
    return hosts, vms, _Cluster(hosts, vms)


def max_host_failures(hosts, vms, up_to=None, what_if=None, stats=None):
    """Largest r (<= up_to) such that every ordered sequence of r host failures is survivable.

    See the module docstring for the exact semantics (XenServer's exhaustive
    planner, applied to every pool size).  Returns -1 when even the protected
    VMs of hosts already offline cannot all be restarted.  ``stats`` (a dict)
    is filled with search counters.

    The work can grow like n^r when the bounds do not settle a level (a
    loose 16-host cluster tolerating 6 failures takes seconds), so pass
    ``up_to`` (the tolerance you care about) on big clusters.
    """
    cluster = _prepare(hosts, vms, what_if)[2]
    return _max_failures(cluster, up_to, stats)


def _max_failures(cluster, up_to, stats=None):
    if up_to is not None:
        _check_int(up_to, "up_to")
    state = cluster.initial_state()
    if state is None:
        return -1
    limit = cluster.n if up_to is None else min(up_to, cluster.n)
    search = _Search(cluster, stats)
    caps = search.capacity(state)
    tolerated = 0
    for r in range(1, limit + 1):
        if not search.tolerates(state, r, caps):
            break
        tolerated = r
    return tolerated


def sequences_count(n, r):
    """Ordered sequences of r distinct hosts among n: n!/(n-r)! (what xapi enumerates)."""
    count = 1
    for k in range(r):
        count *= n - k
    return count


def tolerance_report(hosts, vms, up_to=None, what_if=None):
    """max_host_failures plus what it covers: dict with tolerated_failures, non_agile, unprotected, capped."""
    hosts, vms, cluster = _prepare(hosts, vms, what_if)
    stats = {}
    tolerated = _max_failures(cluster, up_to, stats)
    return {
        "tolerated_failures": tolerated,
        "capped": up_to is not None and tolerated == up_to and up_to < cluster.n,
        "live_hosts": list(cluster.host_names),
        "offline_hosts": [h["name"] for h in hosts if not h["online"]],
        "protected_vms": len(cluster.vm_names),
        "non_agile": list(cluster.non_agile),
        "unprotected": list(cluster.unprotected),
        "search": stats,
    }


# ---------------------------------------------------------------------------
# Failover plan


def _priority_key(vm):
    return (_NO_ORDER if vm["order"] is None else vm["order"], vm["name"])


def failover_plan(hosts, vms, failed_hosts, what_if=None, sequential=False):
    """Where each VM of ``failed_hosts`` restarts, and which cannot.

    By default the hosts fail together, as HA reacts to a real failure: one
    biggest-fit-decreasing pass over all their protected agile VMs (and those
    of hosts already offline).  ``sequential=True`` fails them one after the
    other in the given order, re-planning after each (the planner's model).
    Returns ``{"restarts": [{"vm", "from", "to", "memory_mib", "order"}],
    "not_restarted": [{"vm", "from", "reason"}], "lost_unprotected": [vm]}``,
    lists ordered by restart priority (``order``, then name).
    """
    hosts, vms = apply_what_if(hosts, vms, what_if)
    if isinstance(failed_hosts, str) or not isinstance(failed_hosts, (list, tuple)):
        raise PlanError("failed_hosts must be a list of host names")
    known = {h["name"]: h for h in hosts}
    for name in failed_hosts:
        if name not in known:
            raise PlanError(f"failed host {name!r} is unknown")
    if len(set(failed_hosts)) != len(failed_hosts):
        raise PlanError(f"failed_hosts names a host twice: {list(failed_hosts)!r}")
    by_vm = {v["name"]: v for v in vms}
    origin = {v["name"]: v["host"] for v in vms}
    offline_before = [h["name"] for h in hosts if not h["online"]]
    failed_set = set(failed_hosts)
    if sequential:
        batches = [[h for h in failed_hosts if known[h]["online"]]]
        batches = [[b] for b in batches[0]]
    else:
        batches = [[h for h in failed_hosts if known[h]["online"]]]
    # The hosts stay in the model as dead so VM ranks and indices are stable.
    cluster = _Cluster(hosts, vms)
    index = {name: i for i, name in enumerate(cluster.host_names)}
    state = _State(cluster, list(cluster.free), list(range(cluster.n)), list(cluster.host_vms))
    where = {}
    lost = {}
    # Protected VMs of hosts already offline restart first (compute_restart_plan).
    placement = cluster.pack(state, None, cluster.offline_vms, keep_going=True)
    for rank, i in placement:
        name = cluster.vm_names[rank]
        if i is None:
            lost[name] = "no live host with enough free memory"
        else:
            where[name] = cluster.host_names[i]
    state = state.moved(None, placement)
    for batch in batches:
        dead = {index[h] for h in batch}
        ranks = sorted(r for i in dead for r in state.host_vms[i])
        survivors = [i for i in state.alive if i not in dead]
        cut = _State(cluster, state.free, survivors, [(() if i in dead else v) for i, v in enumerate(state.host_vms)])
        placement = cluster.pack(cut, None, ranks, keep_going=True)
        for rank, i in placement:
            name = cluster.vm_names[rank]
            if i is None:
                lost[name] = _lost_reason(by_vm[name], survivors, failed_set, known)
                where.pop(name, None)
            else:
                where[name] = cluster.host_names[i]
        state = cut.moved(None, placement)
    down = failed_set | set(offline_before)
    restarts = []
    for name, target in where.items():
        vm = by_vm[name]
        restarts.append({"vm": name, "from": origin[name], "to": target, "memory_mib": vm["memory_mib"], "order": vm["order"]})
    not_restarted = [{"vm": name, "from": origin[name], "reason": reason} for name, reason in lost.items()]
    for name in cluster.non_agile:
        if origin[name] in down:
            not_restarted.append({"vm": name, "from": origin[name], "reason": "plain storage: no replica to restart from"})
    restarts.sort(key=lambda e: _priority_key(by_vm[e["vm"]]))
    not_restarted.sort(key=lambda e: _priority_key(by_vm[e["vm"]]))
    lost_unprotected = sorted(name for name in cluster.unprotected if origin[name] in down)
    return {"restarts": restarts, "not_restarted": not_restarted, "lost_unprotected": lost_unprotected}


def _lost_reason(vm, survivors, failed, known):
    if not survivors:
        return "no host left"
    if vm["restart_on"] is None:
        return "no surviving host with enough free memory"
    alive = [h for h in vm["restart_on"] if h not in failed and known[h]["online"]]
    if not alive:
        return "every replica holder ({}) is down".format(", ".join(vm["restart_on"]))
    return "not enough free memory on replica holders {}".format(", ".join(alive))


def failover_plans_per_host(hosts, vms, what_if=None):
    """failover_plan for the failure of each live host in turn: dict host -> plan."""
    hosts, vms = apply_what_if(hosts, vms, what_if)
    return {h["name"]: failover_plan(hosts, vms, [h["name"]]) for h in hosts if h["online"]}


# ---------------------------------------------------------------------------
# Placement: the one decision of where a VM goes.  provision (filter
# sanless.xen.provision_placement), migrate's target (plan_migration), place()
# and evacuation_plan() all ask placement(); nothing else ranks hosts.


def _host_vgs(host):
    """A host's VGs as ``{name: {"free_bytes", "extent_bytes", "lvs"}}``.

    A planner host has no ``vgs``: one anonymous VG (None) of ``vg_free_bytes``
    counted in bytes (extent 1), or, when that is None, no VG constraint.
    """
    vgs = host.get("vgs")
    if vgs is None:
        free = host.get("vg_free_bytes")
        return None if free is None else {None: {"free_bytes": free, "extent_bytes": 1, "lvs": {}}}
    return {name: {"free_bytes": int(vg.get("free_bytes") or 0),
                   "extent_bytes": int(vg.get("extent_bytes") or DEFAULT_EXTENT_BYTES),
                   "lvs": dict(vg.get("lvs") or {})} for name, vg in vgs.items()}


def disk_need_bytes(size_bytes, extent_bytes, have_bytes=0, drbd_meta=False, meta_have_bytes=0):
    """VG space a disk takes: whole extents beyond an LV of ``have_bytes`` already there, plus its DRBD
    metadata LV (beyond one of ``meta_have_bytes``)."""
    need = max(round_up(size_bytes, extent_bytes) - have_bytes, 0)
    return need + (max(meta_bytes(size_bytes, extent_bytes) - meta_have_bytes, 0) if drbd_meta else 0)


def _pick_vg(disk, vgs, left, drbd_meta, strict, host_vg=None):
    """The VG of one disk on a host: the host's own VG for VM disks (``host_vg``,
    a per-dom0 ``xen_vg``: always that one), else the disk's (``vg``) when the
    host has it and, unless ``strict``, when it has room; else the VG with the
    most space left."""
    wanted = host_vg or disk.get("vg")
    strict = strict or host_vg is not None
    if None in vgs:
        return None
    if wanted in vgs:
        need = disk_need_bytes(disk["size_bytes"], vgs[wanted]["extent_bytes"], drbd_meta=drbd_meta)
        if strict or need <= left[wanted]:
            return wanted
    elif wanted is not None and strict:
        return False
    if not vgs:
        return False
    roomy = [vg for vg in vgs if disk_need_bytes(disk["size_bytes"], vgs[vg]["extent_bytes"], drbd_meta=drbd_meta) <= left[vg]]
    return min(roomy or vgs, key=lambda vg: (-left[vg], vg))


def judge_host(host, demand, policy=None):
    """Whether ``host`` can take ``demand`` (see placement): a verdict
    ``{"host", "fits", "problems", "need_mib", "vg_need_bytes", "vg_free_bytes", "disk_vgs"}``."""
    policy = policy or {}
    name = host["name"]
    vm = demand.get("name") or "the VM"
    problems = []
    if not host.get("online", True):
        problems.append(f"{name}: offline")
    memory = int(demand.get("memory_mib") or 0)
    reserve = int(policy.get("reserve_mib") or 0)
    running = demand.get("running_on") or ()
    need_mib = 0
    if demand.get("memory", True) and name not in running:
        # what Xen takes to build the domain, not just its memory (conventions.domain_need_mib)
        need_mib = domain_need_mib(memory, demand.get("vcpus") or 1, demand.get("type") or "pv") + reserve
    if need_mib > host["memory_free_mib"]:
        extra = f" + {reserve} MiB reserve" if reserve else ""
        problems.append(f"{name}: needs {need_mib} MiB of free memory for {vm} ({memory} MiB + Xen's overhead{extra}),"
                        f" has {host['memory_free_mib']} MiB")
    vgs = _host_vgs(host)
    drbd_meta = bool(demand.get("drbd_meta"))
    strict = demand.get("vg_strict", True)
    disk_vgs = []
    need = {}
    if vgs is not None:
        left = {vg: v["free_bytes"] for vg, v in vgs.items()}
        for disk in demand.get("disks") or []:
            vg = _pick_vg(disk, vgs, left, drbd_meta, strict, host.get("vg"))
            if vg is False:
                wanted = host.get("vg") or disk.get("vg")
                if host.get("vg"):
                    why = f"{name}: has no VG {wanted} (its xen_vg, where the disks of {vm} go)"
                elif wanted and strict:
                    why = f"{name}: has no VG {wanted} (the disks of {vm} live on VG {wanted}; VG names must match)"
                else:
                    why = f"{name}: has no VG for the disks of {vm}"
                if why not in problems:
                    problems.append(why)
                disk_vgs.append(None)
                continue
            lvs = vgs[vg]["lvs"] if disk.get("lv") else {}
            bytes_ = disk_need_bytes(disk["size_bytes"], vgs[vg]["extent_bytes"], lvs.get(disk.get("lv"), 0), drbd_meta,
                                     lvs.get(meta_lv_name(disk["lv"]), 0) if lvs else 0)
            left[vg] -= bytes_
            need[vg] = need.get(vg, 0) + bytes_
            disk_vgs.append(vg)
        what = "disks + DRBD metadata" if drbd_meta else f"the disks of {vm}"
        for vg, bytes_ in sorted(need.items(), key=lambda item: str(item[0])):
            free = vgs[vg]["free_bytes"]
            if bytes_ > free:
                where = "VG space" if vg is None else f"VG {vg}"
                problems.append(f"{name}: {where} needs {bytes_} bytes ({what}), has {free} free (short by {bytes_ - free})")
    else:
        disk_vgs = [None for _disk in demand.get("disks") or []]
    return {"host": name, "fits": not problems, "problems": problems, "need_mib": need_mib,
            "vg_need_bytes": sum(need.values()), "vg_free_bytes": sum(v["free_bytes"] for v in (vgs or {}).values()),
            "disk_vgs": disk_vgs}


def placement(hosts, demand, exclude=None, policy=None, check=None):
    """The placement decision: which hosts can take ``demand``, best first.

    ``hosts``: ``[{"name", "memory_free_mib", "online"?, "vgs"?: {vg: {"free_bytes",
    "extent_bytes"?, "lvs"?: {lv: bytes}}}, "vg"?, "vg_free_bytes"?}]`` (``vg``: the
    VG for VM disks on that host, a per-dom0 ``xen_vg``; without ``vgs``,
    ``vg_free_bytes`` is one VG counted in bytes, None: not known).
    ``demand``: ``{"name", "memory_mib", "vcpus"?, "type"?, "disks"?: [{"size_bytes",
    "vg"?, "lv"?}], "drbd_meta"?, "vg_strict"? (true), "running_on"?: [host],
    "memory"? (false: only disk space is wanted, a DRBD secondary)}``.
    Fit: free memory for the domain with Xen's overhead (+ ``policy.reserve_mib``)
    unless it runs there already; every disk in whole extents (less an LV of its
    name already there, plus DRBD metadata if asked) in its VG: the host's
    ``vg`` if set, else the disk's own ``vg``, or with ``vg_strict`` false (or
    no ``vg``) the one with most space left.
    ``exclude``: host names, or ``{host: [reasons]}``, never chosen; ``check(host,
    verdict)`` returns the caller's own reasons to refuse a host.
    Rank: most free memory, then most VG space, then name.  Returns
    ``{"host" (None when nothing fits), "ranked", "verdicts": {host: judge_host()}}``.
    """
    if isinstance(exclude, dict):
        refused = {name: list(reasons or []) for name, reasons in exclude.items()}
    else:
        refused = {name: [] for name in exclude or ()}
    verdicts = {}
    for host in hosts:
        verdict = judge_host(host, demand, policy)
        own = check(host["name"], verdict) if check else []
        if host["name"] in refused or own:
            verdict["problems"] = refused.get(host["name"], []) + verdict["problems"] + list(own)
            verdict["fits"] = False
        verdicts[host["name"]] = verdict
    ranked = sorted((h for h in hosts if verdicts[h["name"]]["fits"]),
                    key=lambda h: (-h["memory_free_mib"], -verdicts[h["name"]]["vg_free_bytes"], h["name"]))
    names = [h["name"] for h in ranked]
    return {"host": names[0] if names else None, "ranked": names, "verdicts": verdicts}


def raid1_partner(hosts, demand, home, partner=None, holding=(), avoid=None):
    """The partner of a raid1 VM (the dom0 of the other leg of each disk), asked of ``placement``.

    The partner holds the disks only (``memory`` false, as a DRBD secondary) and never is ``home``
    (anti-affinity: the two legs of a mirror on one dom0 protect nothing). It is, in this order:
    ``partner`` (the VM's ``xen_raid1_partner``), the one dom0 other than home in ``holding`` (the
    dom0s that already have the VM's disk LVs: a rerun keeps its pair), else the host ``placement``
    ranks first. ``avoid``: ``{host: [reasons]}`` never chosen either (a repair's new leg goes neither
    on the guest's dom0 nor on the dom0 of the leg it replaces). Returns ``{"host" (None when none
    fits), "why", "verdict" (``judge_host`` of the chosen dom0, or None), "ranked", "verdicts"}``.
    """
    vm = demand.get("name") or "the VM"
    away = {home: [f"{home}: the home of {vm}, which holds the other leg (the two legs of a mirror go on two dom0s)"]}
    for host, reasons in (avoid or {}).items():
        away.setdefault(host, []).extend(reasons)
    decision = placement(hosts, dict(demand, memory=False, drbd_meta=False), exclude=away)
    others = sorted(set(holding) - {home})
    if partner:
        chosen, why = partner, "its xen_raid1_partner"
    elif len(others) == 1:
        chosen, why = others[0], "it holds the other legs already"
    elif others:
        return dict(decision, host=None, verdict=None,
                    why=f"disks of {vm} are on {', '.join(others)} besides its home {home}; remove the stale ones first")
    else:
        chosen, why = decision["host"], "the dom0 placement ranks first for the other legs"
    verdict = decision["verdicts"].get(chosen)
    if chosen is None:
        problems = [p for v in decision["verdicts"].values() for p in v["problems"]]
        why = f"no dom0 but {home} has room for the other legs of {vm}: " + "; ".join(problems or ["no other dom0"])
    elif verdict is None:
        verdict = {"host": chosen, "fits": False, "problems": [f"{chosen}: not a dom0 that answered"]}
    return dict(decision, host=chosen if verdict and verdict["fits"] else None, why=why, verdict=verdict)


def place(hosts, vms, new_vm, policy=None, what_if=None):
    """Choose where to start ``new_vm``.

    ``new_vm``: ``{"name", "memory_mib", "disk_bytes"?, "protected"?,
    "storage"? (plain|drbd|raid1), "restart_on"?, "anti_affinity"?}``.
    Replicated storage (drbd, raid1) needs a primary and a secondary host,
    both with ``disk_bytes`` free in their VG; the VM may restart on the
    secondary.  ``policy``: ``{"up_to": 2, "anti_affinity": "hard"|"soft",
    "max_candidates": 64, "reserve_mib": 0}``: candidates are scored in
    ``placement`` order (which also judges the fit), at most
    ``max_candidates`` of them (each is one exact ``max_host_failures``), and
    the first that reaches ``up_to`` wins.

    Candidates are ranked by: the tolerated failures after the placement
    (highest first), then ``placement``'s rank of the primary, then of the
    secondary, then fewest anti-affinity neighbours.  Returns ``{"host",
    "secondary", "tolerated_failures", "candidates"}``; raises PlanError
    when the VM fits nowhere.
    """
    policy = dict(policy or {})
    up_to = policy.get("up_to", 2)
    hard = policy.get("anti_affinity", "hard") == "hard"
    max_candidates = _check_int(policy.get("max_candidates", 64), "policy.max_candidates")
    hosts, vms = apply_what_if(hosts, vms, what_if)
    if not isinstance(new_vm, dict):
        raise PlanError("new_vm must be a dict")
    storage = new_vm.get("storage", "plain" if new_vm.get("restart_on") == [] else None)
    if storage not in (None, "plain", "drbd", "raid1"):
        raise PlanError(f"storage of the new VM must be plain, drbd or raid1, got {storage!r}")
    replicated = storage in ("drbd", "raid1")
    by_host = {h["name"]: h for h in hosts}
    probe = _validate_vm(dict(new_vm, host=None), by_host, need_host=False)
    if probe["name"] in {v["name"] for v in vms}:
        raise PlanError("duplicate VM name {!r}".format(probe["name"]))
    group = probe["anti_affinity"]
    crowded = {v["host"] for v in vms if group is not None and v["anti_affinity"] == group}
    shunned = crowded if hard else ()
    demand = {"name": probe["name"], "memory_mib": probe["memory_mib"], "vcpus": new_vm.get("vcpus"),
              "type": new_vm.get("type"), "disks": [{"size_bytes": probe["disk_bytes"]}]}
    primaries = placement(hosts, demand, exclude=shunned, policy=policy)["ranked"]
    if probe["restart_on"]:
        replicated = False
    pairs = []
    for rank, name in enumerate(primaries):
        if not replicated:
            pairs.append(((rank, 0, name in crowded), name, None))
            continue
        # the secondary only holds the disks: same rule, no memory wanted
        peers = placement(hosts, dict(demand, memory=False), exclude=set(shunned) | {name}, policy=policy)["ranked"]
        pairs.extend(((rank, k, (name in crowded) + (peer in crowded)), name, peer) for k, peer in enumerate(peers))
    if not pairs:
        respecting = f" respecting anti-affinity group {group!r}" if group else ""
        raise PlanError(f"VM {probe['name']!r} ({probe['memory_mib']} MiB, {probe['disk_bytes']} disk bytes) fits on no online host{respecting}")
    pairs.sort()
    pairs = [(by_host[name], by_host[peer] if peer else None) for _key, name, peer in pairs]
    best = None
    evaluated = []
    for host, peer in pairs[:max(1, max_candidates)]:
        candidate = dict(new_vm, host=host["name"])
        candidate.pop("storage", None)
        if replicated:
            candidate["restart_on"] = [peer["name"]]
        elif storage == "plain":
            candidate["restart_on"] = []
        score = max_host_failures(hosts, vms, up_to=up_to, what_if={"add_vms": [candidate]})
        evaluated.append({"host": host["name"], "secondary": peer["name"] if peer else None, "tolerated_failures": score})
        if best is None or score > best[0]:
            best = (score, host, peer)
        if up_to is not None and score >= up_to:
            break
    score, host, peer = best
    return {
        "host": host["name"],
        "secondary": peer["name"] if peer else None,
        "tolerated_failures": score,
        "candidates": evaluated,
    }


# ---------------------------------------------------------------------------
# Evacuation
#
# Drains one or more hosts, xapi style (ocaml/xapi/xapi_ha_vm_failover.ml, compute_evacuation_plan and its
# anti-affinity plan): 1. spread each anti-affinity group's VMs evenly over the hosts that can take them,
# 2. place the group VMs left over where no VM of their group runs (no breach), 3. the rest biggest first.
# Every target is placement()'s choice; the failure tolerance after the drain is max_host_failures' answer.

STORAGE_CARRIES_DISKS = ("plain",)
STORAGE_ON_REPLICA = ("drbd", "raid1", "shared")


def _storage_of(vm):
    """A VM's storage mode: its ``storage``, else what ``restart_on`` says (``[]``: plain; a list: on a replica);
    None when nothing says."""
    if vm.get("storage") is not None:
        return vm["storage"]
    if vm["restart_on"] == []:
        return "plain"
    return "replica" if vm["restart_on"] else None


def _evacuation_refusal(vm, storage):
    """Why a VM of this storage mode cannot be moved at all, or None."""
    if storage is None:
        return ("storage mode unknown: set xen_storage_mode (plain, drbd, raid1 or shared); a VM is never guessed "
                "movable")
    if storage not in STORAGE_CARRIES_DISKS + STORAGE_ON_REPLICA + ("replica",):
        return f"storage mode {storage!r} cannot be moved (known: plain, drbd, raid1, shared)"
    if storage != "plain" and not vm["restart_on"]:
        return f"storage mode {storage}: no replica holder known (xen_restart_on), so no host can take it"
    return None


def _check_positive(value, what, integer=False, zero=False):
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or value < 0 or (value == 0 and not zero):
        kind = "integer" if integer else "number"
        raise PlanError(f"{what} must be a {'non-negative' if zero else 'positive'} {kind}, got {value!r}")
    return value


def evacuation_plan(hosts, vms, host, link_mbit_s=1000, concurrency=1, deadline_s=None, per_vm_overhead_s=0,
                    what_if=None, ha_tolerate=None, force=False, anti_affinity="hard", reserve_mib=0, partial=False):
    """Drain ``host`` (a name or a list of names): a target, an order, a start and a duration for every VM on them.

    Pure data in, plan out.  Hosts may carry ``drained: true`` (the mark on the dom0): they are never targets
    (nor are the hosts drained now), and count with no free memory in the tolerance after the drain.  VMs
    need a storage mode (``storage``: plain, drbd, raid1, shared; or ``restart_on``: ``[]`` is plain, a list the
    replica holders): plain VMs carry their disks (``disks``: sizes in bytes, else one of ``disk_bytes``) to
    any host with free memory and VG space for them and their DRBD metadata during the copy; the others go
    to a replica holder and copy only memory; a VM of unknown storage mode is never guessed movable.

    Targets (each one ``placement``'s choice, memory with Xen's overhead for ``vcpus`` and ``type``, plus
    ``reserve_mib``), in xapi's evacuation order: 1. the VMs of each anti-affinity group, smallest first, each
    to the host with the fewest VMs of its group and, among those, the most free memory, if it fits there;
    2. group VMs that did not fit there, to ``placement``'s best host without a VM of their group (one with
    VG space, say); 3. the other VMs, biggest first, and the group VMs
    left over: refused under ``anti_affinity="hard"``, placed anyway (``breach``) under ``"soft"``.  (xapi
    ends phase 1 at the first VM that does not fit; here only that VM goes on to phase 2, since storage
    modes give each VM its own hosts.  For the same reason phase 1 takes the VMs with the fewest hosts their
    storage mode allows first, and a host holding more of the group than another target is no spread.)

    Durations: bytes to copy / ``link_mbit_s`` + ``per_vm_overhead_s``; ``concurrency`` moves at a time per
    source host, longest first.  A move that would end after ``deadline_s`` is deferred (not started; later
    shorter ones still may be).  ``ha_tolerate``: the host failures the cluster must still tolerate after
    the drain (``max_host_failures``, drained hosts offline, each moved replicated VM restartable on its old
    host's replica only if that host stays up); short of it the plan is refused unless ``force``.  A VM that
    cannot leave refuses the whole drain unless ``partial`` (then the others move, and the plan does not fit).

    Returns ``{"hosts", "moves" (order, vm, source, target, storage, phase, bytes, duration_s, start_s, end_s,
    slot, wave (the n-th move of its slot: one wave holds at most ``concurrency`` moves per source), group,
    breach), "not_movable" ([{vm, host, reason}]), "deferred" (moves with ``reason``),
    "total_s", "deadline_s", "tolerance" ({required, before, after, ok, forced} or None), "refused" (why the
    drain must not start), "fits"}``: ``fits`` when every VM moves within the deadline and the tolerance holds.
    """
    hosts, vms = apply_what_if(hosts, vms, what_if)
    by_host = {h["name"]: h for h in hosts}
    draining = [host] if isinstance(host, str) else list(host or [])
    if not draining:
        raise PlanError("no host to evacuate")
    for name in draining:
        if name not in by_host:
            raise PlanError(f"host to evacuate {name!r} is unknown")
    if len(set(draining)) != len(draining):
        raise PlanError(f"a host to evacuate is named twice: {draining!r}")
    _check_positive(link_mbit_s, "link_mbit_s")
    _check_positive(concurrency, "concurrency", integer=True)
    _check_positive(per_vm_overhead_s, "per_vm_overhead_s", zero=True)
    _check_positive(reserve_mib, "reserve_mib", integer=True, zero=True)
    if deadline_s is not None:
        _check_positive(deadline_s, "deadline_s", zero=True)
    if ha_tolerate is not None:
        _check_int(ha_tolerate, "ha_tolerate")
    if anti_affinity not in ("hard", "soft"):
        raise PlanError(f"anti_affinity must be hard or soft, got {anti_affinity!r}")
    bytes_per_s = link_mbit_s * 1000000 / 8.0
    gone = set(draining)
    targets = [h for h in hosts if h["online"] and h["name"] not in gone and not h["drained"]]
    target_names = [h["name"] for h in targets]
    free = {h["name"]: h["memory_free_mib"] for h in targets}
    disk = {h["name"]: h["vg_free_bytes"] for h in targets}
    members = {}   # group -> {host: VMs of the group there}
    for vm in vms:
        if vm["anti_affinity"] is not None and vm["host"] not in gone:
            members.setdefault(vm["anti_affinity"], {}).setdefault(vm["host"], 0)
            members[vm["anti_affinity"]][vm["host"]] += 1
    stuck = []
    planned = []
    grouped = []
    rest = []
    for vm in vms:
        if vm["host"] not in gone:
            continue
        storage = _storage_of(vm)
        why = _evacuation_refusal(vm, storage)
        if why:
            stuck.append({"vm": vm["name"], "host": vm["host"], "reason": why})
        elif vm["anti_affinity"] is not None:
            grouped.append((vm, storage))
        else:
            rest.append((vm, storage))

    def judge(vm, storage, allowed=None):
        """placement() over the hosts that may take the VM now (allowed: a subset of them, or all)."""
        carry = storage in STORAGE_CARRIES_DISKS
        sizes = vm["disks"] if vm["disks"] is not None else ([vm["disk_bytes"]] if vm["disk_bytes"] else [])
        demand = {"name": vm["name"], "memory_mib": vm["memory_mib"], "vcpus": vm["vcpus"], "type": vm["type"],
                  "disks": [{"size_bytes": size} for size in sizes] if carry else [], "drbd_meta": carry}
        holders = None if carry else set(vm["restart_on"])
        now = [{"name": n, "memory_free_mib": free[n], "vg_free_bytes": disk[n]} for n in target_names
               if (holders is None or n in holders) and (allowed is None or n in allowed)]
        return placement(now, demand, policy={"reserve_mib": reserve_mib}), sizes if carry else []

    def commit(vm, storage, decision, sizes, phase, breach=False):
        target = decision["host"]
        verdict = decision["verdicts"][target]
        free[target] -= verdict["need_mib"]
        if disk[target] is not None:
            disk[target] -= verdict["vg_need_bytes"]
        if vm["anti_affinity"] is not None:
            group = members.setdefault(vm["anti_affinity"], {})
            group[target] = group.get(target, 0) + 1
        copied = vm["memory_mib"] * MIB + sum(sizes)
        planned.append({"vm": vm["name"], "source": vm["host"], "target": target, "storage": storage, "phase": phase,
                        "bytes": copied, "disk_bytes": sum(sizes), "memory_mib": vm["memory_mib"],
                        "duration_s": round(copied / bytes_per_s + per_vm_overhead_s, 3),
                        "group": vm["anti_affinity"], "breach": breach})

    def nowhere(vm, storage, decision):
        where = "replica holders " + ", ".join(vm["restart_on"]) if storage != "plain" else "hosts"
        problems = [p for n in sorted(decision["verdicts"]) for p in decision["verdicts"][n]["problems"]]
        if not decision["verdicts"]:
            return f"no {where} left to take it (offline, drained or being evacuated)"
        return f"no room on the {where}: " + "; ".join(problems)

    def possible(vm, storage):
        """How many hosts the VM's storage mode lets it go to (all targets for plain, the replica holders else)."""
        if storage in STORAGE_CARRIES_DISKS:
            return len(target_names)
        return len(set(vm["restart_on"]).intersection(target_names))

    # 1. spread each group evenly, smallest VMs first (xapi: anti_affinity_vms_increasing); VMs that only some
    # hosts may take (replica holders) before those any host may take, so a plain VM does not take the one host
    # a drbd VM of its group can go to
    grouped.sort(key=lambda item: (possible(*item), item[0]["memory_mib"], item[0]["name"]))
    leftover = []
    for vm, storage in grouped:
        decision, sizes = judge(vm, storage)
        counts = members.get(vm["anti_affinity"], {})
        if decision["verdicts"]:
            # xapi's priority queue: fewest VMs of the group, then most free memory; that host or none. A host
            # above the group's level over all targets (one of them holds fewer) is no spread but a breach.
            level = min(counts.get(n, 0) for n in target_names)
            top = min(decision["verdicts"], key=lambda n: (counts.get(n, 0), -free[n], n))
            if decision["verdicts"][top]["fits"] and counts.get(top, 0) == level:
                commit(vm, storage, dict(decision, host=top), sizes, "spread")
                continue
        leftover.append((vm, storage))
    # 2. no breach: a host without a VM of the group
    third = []
    for vm, storage in leftover:
        counts = members.get(vm["anti_affinity"], {})
        decision, sizes = judge(vm, storage)
        free_of_group = [n for n in decision["ranked"] if not counts.get(n)]
        if free_of_group:
            commit(vm, storage, dict(decision, host=free_of_group[0]), sizes, "no_breach")
        else:
            third.append((vm, storage))
    # 3. the rest, biggest first; group VMs left over breach their group (soft) or stay (hard)
    rest.sort(key=lambda item: _vm_rank_key(item[0]))
    third.sort(key=lambda item: _vm_rank_key(item[0]))
    for vm, storage in third + rest:
        decision, sizes = judge(vm, storage)
        if decision["host"] is None:
            stuck.append({"vm": vm["name"], "host": vm["host"], "reason": nowhere(vm, storage, decision)})
        elif vm["anti_affinity"] is not None and anti_affinity == "hard":
            group = vm["anti_affinity"]
            stuck.append({"vm": vm["name"], "host": vm["host"],
                          "reason": f"anti-affinity group {group}: every host with room already runs a VM of it "
                                    f"({', '.join(decision['ranked'])}); anti_affinity=soft allows it"})
        else:
            commit(vm, storage, decision, sizes, "binpack", breach=vm["anti_affinity"] is not None)
    stuck.sort(key=lambda s: (s["host"], s["vm"]))
    moves, deferred, total = _schedule(planned, concurrency, deadline_s)
    tolerance = None
    refused = []
    if stuck and not partial:
        refused.append("{} VM(s) cannot leave: {}".format(len(stuck), "; ".join(f"{s['vm']} ({s['reason']})" for s in stuck)))
    if deadline_s is not None and planned and not moves:
        refused.append(f"the deadline ({deadline_s} s) leaves time for no move: the shortest takes "
                       f"{min(m['duration_s'] for m in planned)} s")
    if ha_tolerate is not None:
        tolerance = _tolerance_after(hosts, vms, gone, planned, free, ha_tolerate, force)
        if not tolerance["ok"] and not force:
            refused.append(tolerance["reason"])
    return {"hosts": draining, "host": draining[0], "moves": moves, "not_movable": stuck, "deferred": deferred,
            "total_s": total, "deadline_s": deadline_s, "tolerance": tolerance, "refused": refused,
            "fits": not refused and not stuck and not deferred and (tolerance is None or tolerance["ok"])}


def _schedule(planned, concurrency, deadline_s):
    """Longest first onto the earliest free slot of the move's source (LPT list scheduling, ``concurrency``
    slots per source); a move that would end after the deadline is deferred and takes no slot time."""
    slots = {}
    waves = {}
    moves = []
    deferred = []
    for move in sorted(planned, key=lambda m: (-m["duration_s"], m["vm"])):
        heap = slots.setdefault(move["source"], [(0.0, k) for k in range(concurrency)])
        start, slot = heap[0]
        end = start + move["duration_s"]
        if deadline_s is not None and end > deadline_s:
            deferred.append(dict(move, reason=f"would end at {end:.1f} s, after the deadline ({deadline_s} s)"))
            continue
        heapq.heapreplace(heap, (end, slot))
        wave = waves[(move["source"], slot)] = waves.get((move["source"], slot), 0) + 1
        moves.append(dict(move, start_s=round(start, 3), end_s=round(end, 3), slot=slot, wave=wave))
    moves.sort(key=lambda m: (m["start_s"], m["source"], m["slot"]))
    for step, move in enumerate(moves):
        move["order"] = step + 1
    total = max([m["end_s"] for m in moves] or [0.0])
    return moves, deferred, total


def _tolerance_after(hosts, vms, gone, planned, free, ha_tolerate, force):
    """max_host_failures before and after the drain, capped at ha_tolerate: the drained hosts offline and
    empty, hosts marked drained with no free memory, each moved VM on its target; a replicated VM restarts on
    its replica holders only (its old host among them: down while drained)."""
    before = max_host_failures(hosts, vms, up_to=ha_tolerate)
    moved = {m["vm"]: m["target"] for m in planned}
    after_hosts = []
    for h in hosts:
        if h["name"] in gone:
            after_hosts.append(dict(h, online=False, memory_free_mib=0))
        elif h["drained"]:
            after_hosts.append(dict(h, memory_free_mib=0))
        else:
            after_hosts.append(dict(h, memory_free_mib=max(free.get(h["name"], h["memory_free_mib"]), 0)))
    after_vms = []
    left_out = []
    for vm in vms:
        if vm["host"] not in gone:
            after_vms.append(vm)
        elif vm["name"] in moved:
            target = moved[vm["name"]]
            restart_on = vm["restart_on"]
            if restart_on:
                restart_on = sorted(set(restart_on + [vm["host"]]) - {target})
            after_vms.append(dict(vm, host=target, restart_on=restart_on))
        else:
            left_out.append(vm["name"])
    after = max_host_failures(after_hosts, after_vms, up_to=ha_tolerate)
    ok = after >= ha_tolerate
    names = ", ".join(sorted(gone))
    if ok:
        reason = f"after evacuating {names} the cluster tolerates {after} host failure(s), {ha_tolerate} required"
    else:
        reason = (f"after evacuating {names} the cluster would tolerate only {after} host failure(s) (now "
                  f"{before}), xen_ha_tolerate is {ha_tolerate}" + ("; forced" if force else "; force to drain anyway"))
    return {"required": ha_tolerate, "before": before, "after": after, "ok": ok, "forced": bool(force and not ok),
            "left_out": left_out, "reason": reason}


# ---------------------------------------------------------------------------
# Overcommit check


def overcommit_check(hosts, vms, what_if, min_failures, up_to=None):
    """Would ``what_if`` drop the tolerated failures below ``min_failures``?

    Returns ``{"ok", "before", "after", "min_failures", "reason"}``; ``before``
    and ``after`` are capped at ``up_to`` (default: ``min_failures``, enough to
    decide).  An impossible operation (a VM that does not fit) is not ok.
    """
    _check_int(min_failures, "min_failures")
    cap = min_failures if up_to is None else up_to
    before = max_host_failures(hosts, vms, up_to=cap)
    try:
        after = max_host_failures(hosts, vms, up_to=cap, what_if=what_if)
    except PlanError as exc:
        if what_if is None:
            raise
        return {"ok": False, "before": before, "after": None, "min_failures": min_failures, "reason": str(exc)}
    ok = after >= min_failures
    if ok:
        reason = f"tolerates {after} host failure(s), at least {min_failures} required"
    else:
        reason = f"would tolerate only {after} host failure(s), {min_failures} required"
    return {"ok": ok, "before": before, "after": after, "min_failures": min_failures, "reason": reason}


# ---------------------------------------------------------------------------
# From sanless.xen.xen_info results to planner inputs, and a printable report

# shared: disks on their shared paths, an LV of one dom0 imported by others (the role sanless.xen.disk_export);
# like drbd and raid1, the dom0s that reach them are its xen_restart_on.
STORAGE_MODES = ("plain", "drbd", "raid1", "shared")


def _meta(meta, key):
    # Inventory variables may carry the xen_ prefix or not.
    if "xen_" + key in meta:
        return meta["xen_" + key]
    return meta.get(key)


def _answered(result):
    return (isinstance(result, dict) and not result.get("failed") and not result.get("unreachable")
            and not result.get("skipped") and isinstance(result.get("host"), dict))


def inputs_from_xen_info(info, vm_meta=None, default_protected=True, vg=None):
    """Build (hosts, vms, notes) from ``{dom0 name: xen_info result}`` and per-VM metadata.

    A dom0 whose result failed or is missing is offline.  Its free memory is
    ``host.free_memory_mib``, its VG space the free bytes of ``vg`` (all VGs
    when None).  Every running domain but Domain-0 is a VM on that dom0.
    ``vm_meta``: ``{vm: {"xen_storage_mode", "xen_protected", "xen_restart_on",
    "xen_home", "xen_memory_mib", "xen_restart_order", "xen_anti_affinity",
    "xen_disk_bytes", "xen_disks", "xen_vg", "xen_type"}}`` (the ``xen_`` prefix is optional).  A
    running VM's ``disks`` are the sizes of the LVs the provision role names after its ``xen_disks``
    (``conventions.vm_disk_lv``) on the dom0 it runs on (in its ``xen_vg`` when that has one, else in any
    VG); when one is not there, ``xen_disk_bytes`` counts instead, with a note.  A dom0 whose
    result has ``drained`` (xen_info reads the mark) is a drained host.  Plain storage
    means ``restart_on: []``; drbd/raid1/shared need ``xen_restart_on`` (else the VM
    is treated as plain, with a note); no storage mode means any host.  A
    protected VM that runs nowhere and whose ``xen_home`` is an offline dom0
    is placed there (it went down with it and needs a restart).
    """
    if not isinstance(info, dict):
        raise PlanError("info must be a dict dom0 -> xen_info result")
    vm_meta = vm_meta or {}
    if not isinstance(vm_meta, dict):
        raise PlanError("vm metadata must be a dict VM -> variables")
    hosts = []
    vms = []
    notes = []
    running = {}
    for name in sorted(info):
        result = info[name]
        if not _answered(result):
            hosts.append({"name": name, "memory_free_mib": 0, "online": False})
            notes.append(f"dom0 {name} did not answer: planned as offline")
            continue
        vgs = [g for g in (result.get("vgs") or []) if vg is None or g.get("name") == vg]
        vg_free = sum(int(g.get("free_bytes") or 0) for g in vgs) if vgs else None
        hosts.append({"name": name, "memory_free_mib": int(result["host"].get("free_memory_mib") or 0),
                      "online": True, "vg_free_bytes": vg_free, "drained": bool(result.get("drained"))})
        for domain in result.get("domains") or []:
            if domain.get("is_dom0") or domain.get("name") == "Domain-0":
                continue
            if domain["name"] in running:
                raise PlanError("VM {!r} runs on both {} and {}".format(domain["name"], running[domain["name"]], name))
            running[domain["name"]] = name
            vms.append({"name": domain["name"], "host": name, "memory_mib": int(domain.get("memory_mib") or 0),
                        "vcpus": int(domain.get("vcpus") or 1)})
    offline = {h["name"] for h in hosts if not h["online"]}
    for vm_name in sorted(set(vm_meta) - set(running)):
        meta = vm_meta[vm_name] or {}
        home = _meta(meta, "home")
        protected = _meta(meta, "protected")
        if home in offline and (default_protected if protected is None else protected):
            memory = _meta(meta, "memory_mib")
            if memory is None:
                notes.append(f"VM {vm_name} went down with {home} but has no xen_memory_mib: left out")
                continue
            vms.append({"name": vm_name, "host": home, "memory_mib": memory})
    for vm in vms:
        meta = vm_meta.get(vm["name"]) or {}
        storage = _meta(meta, "storage_mode")
        protected = _meta(meta, "protected")
        vm["protected"] = default_protected if protected is None else protected
        restart_on = _meta(meta, "restart_on")
        if storage is not None and storage not in STORAGE_MODES:
            raise PlanError("VM {}: xen_storage_mode must be one of {}, got {!r}".format(vm["name"], ", ".join(STORAGE_MODES), storage))
        vm["storage"] = storage
        if storage == "plain":
            restart_on = []
        elif storage in ("drbd", "raid1", "shared") and not restart_on:
            notes.append("VM {} ({}) has no xen_restart_on: counted as not restartable elsewhere".format(vm["name"], storage))
            restart_on = []
        if restart_on is not None:
            if isinstance(restart_on, str):
                restart_on = [restart_on]
            if not isinstance(restart_on, (list, tuple)):
                raise PlanError("VM {}: xen_restart_on must be a list of dom0 names, got {!r}".format(vm["name"], restart_on))
            # Its own dom0 is no place to restart it.
            vm["restart_on"] = [h for h in restart_on if h != vm["host"]]
        for key in ("restart_order", "anti_affinity", "disk_bytes", "type"):
            value = _meta(meta, key)
            if value is not None:
                vm["order" if key == "restart_order" else key] = value
        sizes = _disk_lv_sizes(vm, meta, info.get(vm["host"]), notes)
        if sizes is not None:
            vm["disks"] = sizes
    no_mode = sorted(vm["name"] for vm in vms if "restart_on" not in vm)
    if no_mode:
        notes.append("no xen_storage_mode for {}: assumed restartable on any host".format(", ".join(no_mode)))
    return hosts, vms, notes


def _disk_lv_sizes(vm, meta, result, notes):
    """The sizes of a VM's disk LVs (its ``xen_disks`` by name, ``conventions.vm_disk_lv``) on the dom0 where it
    runs, its ``xen_vg`` first; None (with a note) when it has no ``xen_disks`` or one of them is not there."""
    disks = _meta(meta, "disks")
    if not isinstance(disks, list) or not disks or not _answered(result):
        return None
    found = {}
    for lv in result.get("lvs") or []:
        if isinstance(lv, dict) and lv.get("size_bytes") is not None:
            found.setdefault(lv.get("name"), {})[lv.get("vg")] = int(lv["size_bytes"])
    sizes = []
    for disk in disks:
        try:
            name = vm_disk_lv(vm["name"], disk.get("name") if isinstance(disk, dict) else None)
        except ValueError as exc:
            notes.append("VM {}: a disk of xen_disks has no valid name ({}): disk sizes from xen_disk_bytes".format(
                vm["name"], exc))
            return None
        by_vg = found.get(name) or {}
        if not by_vg:
            notes.append("VM {}: LV {} not found on {}: disk sizes from xen_disk_bytes".format(vm["name"], name, vm["host"]))
            return None
        own = _meta(meta, "vg")
        sizes.append(by_vg[own] if own in by_vg else by_vg[sorted(by_vg, key=str)[0]])
    return sizes


def cluster_report(hosts, vms, up_to=3, min_failures=None, what_if=None, evacuate=None, evacuation=None, new_vm=None, notes=None):
    """Everything ``sanless.xen.cluster_plan`` returns, with ``summary`` lines to print."""
    notes = list(notes or [])
    report = tolerance_report(hosts, vms, up_to=up_to)
    tolerated = report["tolerated_failures"]
    live = report["live_hosts"]
    lines = []
    if tolerated < 0:
        lines.append("Tolerated host failures: NONE - the protected VMs of offline hosts cannot all be restarted now")
    else:
        more = " or more" if report["capped"] else ""
        lines.append(f"Tolerated host failures: {tolerated}{more} (every order of failures among {len(live)} live host(s) checked)")
    plain = ", ".join(report["non_agile"]) or "none"
    lines.append(f"Protected VMs planned: {report['protected_vms']}; not restartable elsewhere (plain storage): {plain};"
                 f" unprotected: {len(report['unprotected'])}")
    if report["offline_hosts"]:
        lines.append("Offline hosts: {}".format(", ".join(report["offline_hosts"])))
    plans = failover_plans_per_host(hosts, vms)
    for name in sorted(plans):
        lines.append(_plan_line(f"If {name} fails", plans[name]))
    if report["offline_hosts"]:
        now = failover_plan(hosts, vms, [])
        lines.append(_plan_line("Restarts for the offline hosts now", now))
    result = {
        "tolerated_failures": tolerated,
        "capped": report["capped"],
        "live_hosts": live,
        "offline_hosts": report["offline_hosts"],
        "non_agile": report["non_agile"],
        "unprotected": report["unprotected"],
        "failover": plans,
        "hosts": hosts,
        "vms": vms,
    }
    if what_if:
        cap = up_to if min_failures is None or (up_to is not None and up_to >= min_failures) else min_failures
        check = overcommit_check(hosts, vms, what_if, min_failures or 0, up_to=cap)
        result["what_if"] = check
        if check["after"] is None:
            lines.append("What if {}: impossible: {}".format(_brief(what_if), check["reason"]))
        else:
            verdict = "" if min_failures is None else f": {'OK' if check['ok'] else 'NOT OK'}, {check['reason']}"
            lines.append(f"What if {_brief(what_if)}: tolerated host failures {check['after']} (now {tolerated}){verdict}")
            what_plans = failover_plans_per_host(hosts, vms, what_if=what_if)
            result["what_if"]["failover"] = what_plans
            for name in sorted(what_plans):
                lines.append(_plan_line(f"  then if {name} fails", what_plans[name]))
    elif min_failures is not None:
        ok = tolerated >= min_failures
        result["overcommitted"] = not ok
        lines.append(f"Overcommit check: {'OK' if ok else 'NOT OK'} (tolerates {tolerated}, at least {min_failures} required)")
    if evacuate:
        drain = evacuation_plan(hosts, vms, evacuate, **(evacuation or {}))
        result["evacuation"] = drain
        lines.extend(evacuation_lines(drain))
    if new_vm:
        spot = place(hosts, vms, new_vm)
        result["placement"] = spot
        replica = f" (replica on {spot['secondary']})" if spot["secondary"] else ""
        lines.append(f"Place {new_vm.get('name')} on {spot['host']}{replica}: tolerated host failures {spot['tolerated_failures']}")
    lines.extend("Note: " + note for note in notes)
    result["notes"] = notes
    result["summary"] = lines
    return result


def evacuation_lines(drain):
    """An evacuation_plan as lines to print: the verdict, each move in order, what is deferred or stays, why not."""
    window = "" if drain["deadline_s"] is None else f" (deadline {drain['deadline_s']} s)"
    verdict = ": fits" if drain["fits"] else (": REFUSED" if drain["refused"] else ": DOES NOT FIT")
    names = ", ".join(drain["hosts"])
    lines = ["Evacuating {}: {} move(s), {:.1f} s{}{}".format(names, len(drain["moves"]), drain["total_s"], window, verdict)]
    for move in drain["moves"]:
        extra = f", group {move['group']}" + (" (breach)" if move["breach"] else "") if move["group"] else ""
        lines.append(f"  {move['order']}. {move['vm']} ({move['storage']}{extra}) {move['source']} -> {move['target']}: "
                     f"{move['bytes']} bytes, at {move['start_s']:.1f} s for {move['duration_s']:.1f} s")
    for move in drain["deferred"]:
        lines.append(f"  deferred: {move['vm']} {move['source']} -> {move['target']}: {move['reason']}")
    for stuck in drain["not_movable"]:
        lines.append("  stays: {} on {}: {}".format(stuck["vm"], stuck["host"], stuck["reason"]))
    if drain["tolerance"]:
        lines.append("  tolerance: " + drain["tolerance"]["reason"])
    lines.extend("  refused: " + reason for reason in drain["refused"])
    return lines


def _plan_line(title, plan):
    parts = ["{} -> {}".format(r["vm"], r["to"]) for r in plan["restarts"]]
    lost = ["{} ({})".format(e["vm"], e["reason"]) for e in plan["not_restarted"]]
    text = "{}: {}".format(title, ", ".join(parts) if parts else "nothing to restart")
    if lost:
        text += "; NOT restarted: " + ", ".join(lost)
    if plan["lost_unprotected"]:
        text += "; unprotected, stay down: " + ", ".join(plan["lost_unprotected"])
    return text


def _brief(what_if):
    parts = []
    for key in ("offline", "online", "remove_vms"):
        if what_if.get(key):
            parts.append("{}={}".format(key, ",".join(what_if[key])))
    for vm in what_if.get("add_vms") or []:
        parts.append("add {} ({} MiB{})".format(vm.get("name"), vm.get("memory_mib"), " on " + vm["host"] if vm.get("host") else ""))
    for name, size in sorted((what_if.get("memory_mib") or {}).items()):
        parts.append(f"{name} to {size} MiB")
    return "; ".join(parts) or "no change"
