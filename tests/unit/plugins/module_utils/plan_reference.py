# Copyright (c) sanless.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Brute-force reference for the planner: a literal transcription of xapi's
binpack.ml (biggest_fit_decreasing with its sorted-list ``insert``,
simulate_failure, plan_always_possible over every permutation of every
combination) extended with ``restart_on``.  Deliberately naive and
independent of plan.py's data structures: it is the referee.
"""


import itertools


def _insert(elt, bins):
    # binpack.ml ``insert less_than``: before the first bin whose free memory
    # is <= the element's.
    for k, other in enumerate(bins):
        if other[1] <= elt[1]:
            return bins[:k] + [elt] + bins[k:]
    return bins + [elt]


def biggest_fit_decreasing(things, bins, allowed):
    """things: [(vm, size)], bins: [(host, free)] in host order,
    allowed: vm -> set of hosts or None.  Returns (mapping, left_out, bins)."""
    things = sorted(things, key=lambda t: -t[1])  # stable, like List.sort
    bins = sorted(bins, key=lambda b: -b[1])  # stable
    mapping = []
    left_out = []
    for vm, size in things:
        ok = allowed.get(vm)
        chosen = None
        for k, (host, free) in enumerate(bins):
            if ok is None or host in ok:
                chosen = k
                break
        if chosen is None or bins[chosen][1] - size < 0:
            left_out.append(vm)
            continue
        host, free = bins.pop(chosen)
        bins = _insert((host, free - size), bins)
        mapping.append((vm, host))
    return mapping, left_out, bins


class Config:
    def __init__(self, hosts, vms):
        live = sorted(h["name"] for h in hosts if h.get("online", True))
        free = {h["name"]: h["memory_free_mib"] for h in hosts}
        self.hosts = [(h, free[h]) for h in live]
        agile = sorted((v for v in vms if v.get("protected", True) and v.get("restart_on") != []), key=lambda v: v["name"])
        self.sizes = {v["name"]: v["memory_mib"] for v in agile}
        self.order = [v["name"] for v in agile]
        self.allowed = {v["name"]: None if v.get("restart_on") is None else set(v["restart_on"]) for v in agile}
        self.placement = {v["name"]: v["host"] for v in agile}
        self.offline = [v["name"] for v in agile if v["host"] not in live]

    def restart_offline(self):
        """compute_restart_plan: place protected VMs of offline hosts; False if one is left out."""
        if not self.offline:
            return True
        things = [(vm, self.sizes[vm]) for vm in self.order if vm in self.offline]
        mapping, left_out = biggest_fit_decreasing(things, self.hosts, self.allowed)[:2]
        if left_out:
            return False
        self._apply(mapping)
        return True

    def _apply(self, mapping):
        used = {}
        for vm, host in mapping:
            used[host] = used.get(host, 0) + self.sizes[vm]
            self.placement[vm] = host
        self.hosts = [(h, f - used.get(h, 0)) for h, f in self.hosts]

    def copy(self):
        other = Config.__new__(Config)
        other.hosts = list(self.hosts)
        other.sizes = self.sizes
        other.order = self.order
        other.allowed = self.allowed
        other.placement = dict(self.placement)
        other.offline = []
        return other

    def simulate_failure(self, dead):
        """Return the new config, or None when a VM is left out (``Stop``)."""
        new = self.copy()
        new.hosts = [(h, f) for h, f in self.hosts if h != dead]
        failed = [(vm, self.sizes[vm]) for vm in self.order if self.placement[vm] == dead]
        mapping, left_out = biggest_fit_decreasing(failed, new.hosts, self.allowed)[:2]
        if left_out:
            return None
        new._apply(mapping)
        return new


def plan_always_possible(config, r):
    hosts = [h for h, _free in config.hosts]
    if len(hosts) < r or (len(hosts) == r and config.order):
        return False
    for combination in itertools.combinations(hosts, r):
        for sequence in itertools.permutations(combination):
            state = config
            for dead in sequence:
                state = state.simulate_failure(dead)
                if state is None:
                    return False
    return True


def max_host_failures(hosts, vms, up_to=None):
    config = Config(hosts, vms)
    if not config.restart_offline():
        return -1
    limit = len(config.hosts) if up_to is None else min(up_to, len(config.hosts))
    best = 0
    for r in range(1, limit + 1):
        if not plan_always_possible(config, r):
            break
        best = r
    return best


def every_r_separately(hosts, vms, up_to):
    """[plan_always_possible(r) for r in 0..up_to], to check monotonicity."""
    config = Config(hosts, vms)
    if not config.restart_offline():
        return None
    return [r == 0 or plan_always_possible(config, r) for r in range(up_to + 1)]
