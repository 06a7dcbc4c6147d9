# Copyright (c) sanless.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


import copy
import itertools
import random

import pytest
from ansible_collections.sanless.xen.plugins.module_utils import conventions, plan
from ansible_collections.sanless.xen.plugins.module_utils.conventions import domain_need_mib
from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError
from ansible_collections.sanless.xen.tests.unit.plugins.module_utils import (
    plan_reference as ref,
)
from ansible_collections.sanless.xen.tests.unit.plugins.module_utils.strategyhelpers import one_of, some_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GIB = 1024

PROPERTY = settings(derandomize=True, deadline=None, max_examples=300,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def host(name, free, online=True, vg=None):
    return {"name": name, "memory_free_mib": free, "online": online, "vg_free_bytes": vg}


def vm(name, on, mem, protected=True, restart_on=None, **extra):
    data = {"name": name, "host": on, "memory_mib": mem, "protected": protected, "restart_on": restart_on}
    data.update(extra)
    return data


# ---------------------------------------------------------------------------
# Random small clusters


VM_SIZES = [4 * GIB, 8 * GIB, 16 * GIB, 32 * GIB, 128 * GIB]
HOST_FREE = [0, 4 * GIB, 8 * GIB, 12 * GIB, 16 * GIB, 24 * GIB, 32 * GIB, 48 * GIB, 64 * GIB, 128 * GIB, 136 * GIB, 256 * GIB]
# made once, not in every draw (strategyhelpers says why)
HOST_FREE_MIB = st.sampled_from(HOST_FREE) | st.integers(0, 300 * GIB)
VM_MIB = st.sampled_from(VM_SIZES) | st.integers(0, 40 * GIB)


@st.composite
def clusters(draw, max_hosts=5, max_vms=9, constrained=True, offline=True):
    n = draw(st.integers(1, max_hosts))
    names = tuple(f"h{k}" for k in range(n))
    # Equal free sizes are frequent on purpose: ties are where orders differ.
    hosts = [host(name, draw(HOST_FREE_MIB),
                  online=draw(st.booleans()) if offline and draw(st.integers(0, 5)) == 0 else True)
             for name in names]
    vms = []
    for k in range(draw(st.integers(0, max_vms))):
        restart_on = None
        if constrained:
            kind = draw(st.integers(0, 5))
            if kind == 0:
                restart_on = []
            elif kind <= 2:
                restart_on = draw(some_of(names, max_size=n))
                if not restart_on:
                    restart_on = None
        vms.append(vm(f"v{k}", draw(one_of(*names)), draw(VM_MIB),
                      protected=draw(st.integers(0, 6)) > 0, restart_on=restart_on))
    return hosts, vms


@PROPERTY
@given(clusters(constrained=False, offline=False))
def test_equals_xenserver_exhaustive_when_every_vm_may_restart_anywhere(cluster):
    hosts, vms = cluster
    assert plan.max_host_failures(hosts, vms) == ref.max_host_failures(hosts, vms)


@PROPERTY
@given(clusters())
def test_equals_brute_force_with_restart_on_plain_and_offline_hosts(cluster):
    hosts, vms = cluster
    before = copy.deepcopy(cluster)
    assert plan.max_host_failures(hosts, vms) == ref.max_host_failures(hosts, vms)
    assert (hosts, vms) == before  # inputs untouched


@PROPERTY
@given(clusters(max_hosts=6, max_vms=14, constrained=False, offline=False), st.integers(0, 3))
def test_equals_brute_force_with_up_to_on_bigger_clusters(cluster, up_to):
    hosts, vms = cluster
    assert plan.max_host_failures(hosts, vms, up_to=up_to) == ref.max_host_failures(hosts, vms, up_to=up_to)


@st.composite
def tight_clusters(draw, constrained):
    """Hosts loaded so that the answer is often 1 or 2 and the shortcuts often fail."""
    n = draw(st.integers(3, 6))
    names = tuple(f"h{k}" for k in range(n))
    vms = []
    load = {name: 0 for name in names}
    for k in range(draw(st.integers(n, 4 * n))):
        on = draw(one_of(*names))
        size = draw(one_of(4 * GIB, 4 * GIB, 8 * GIB, 16 * GIB, 128 * GIB))
        restart_on = None
        if constrained and draw(st.booleans()):
            restart_on = draw(some_of(tuple(x for x in names if x != on), min_size=1, max_size=2))
        vms.append(vm(f"v{k:02d}", on, size, restart_on=restart_on))
        load[on] += size
    total = sum(load.values())
    hosts = []
    for name in names:
        share = draw(st.integers(0, 8))
        hosts.append(host(name, (total * share) // (4 * n) + draw(one_of(0, 4 * GIB, 128 * GIB))))
    return hosts, vms


@PROPERTY
@given(tight_clusters(constrained=False))
def test_tight_clusters_any_host(cluster):
    hosts, vms = cluster
    assert plan.max_host_failures(hosts, vms) == ref.max_host_failures(hosts, vms)


@PROPERTY
@given(tight_clusters(constrained=True))
def test_tight_clusters_with_replicas(cluster):
    hosts, vms = cluster
    assert plan.max_host_failures(hosts, vms) == ref.max_host_failures(hosts, vms)


@PROPERTY
@given(clusters(max_hosts=5, max_vms=8))
def test_tolerance_is_downward_closed(cluster):
    hosts, vms = cluster
    answers = ref.every_r_separately(hosts, vms, len(hosts))
    if answers is not None:
        assert answers == sorted(answers, reverse=True)


def test_many_random_clusters_against_brute_force():
    """A fixed-seed sweep with very uneven sizes, 4 GiB next to 128 GiB VMs."""
    rng = random.Random(20261122)
    for case in range(400):
        n = rng.randint(2, 6)
        names = [f"h{k}" for k in range(n)]
        hosts = [host(name, rng.choice([0, 16, 64, 130, 200, 300, 512]) * GIB) for name in names]
        vms = []
        for k in range(rng.randint(0, 3 * n)):
            on = rng.choice(names)
            restart_on = None
            if case % 2 and rng.random() < 0.5:
                restart_on = rng.sample([x for x in names if x != on] or names, 1)
            vms.append(vm(f"v{k}", on, rng.choice([4, 4, 8, 128]) * GIB, restart_on=restart_on))
        assert plan.max_host_failures(hosts, vms) == ref.max_host_failures(hosts, vms), (hosts, vms)


# ---------------------------------------------------------------------------
# Semantics, by hand


def test_order_of_failures_matters():
    # Failing a then b differs from b then a: every ordered sequence is checked.
    hosts = [host("a", 10), host("b", 10), host("c", 20), host("d", 0)]
    vms = [vm("x", "a", 10), vm("y", "b", 10), vm("z", "c", 1), vm("w", "d", 20)]
    assert plan.max_host_failures(hosts, vms) == ref.max_host_failures(hosts, vms)


def test_biggest_fit_decreasing_goes_to_the_host_with_most_free_memory():
    hosts = [host("a", 0), host("b", 50), host("c", 60)]
    vms = [vm("big", "a", 40), vm("small", "a", 20)]
    result = plan.failover_plan(hosts, vms, ["a"])
    assert [(r["vm"], r["to"]) for r in result["restarts"]] == [("big", "c"), ("small", "b")]


def test_tie_goes_to_first_host_then_to_the_bin_just_used():
    # b and c tie at 50: b (host order) gets the first VM and drops to 40;
    # then c (50) gets the second; both tie at 40; the bin just used (c) comes first.
    hosts = [host("a", 0), host("b", 50), host("c", 50)]
    vms = [vm("v1", "a", 10), vm("v2", "a", 10), vm("v3", "a", 10)]
    result = plan.failover_plan(hosts, vms, ["a"])
    assert {r["vm"]: r["to"] for r in result["restarts"]} == {"v1": "b", "v2": "c", "v3": "c"}
    mapping = ref.biggest_fit_decreasing([("v1", 10), ("v2", 10), ("v3", 10)], [("b", 50), ("c", 50)], {})[0]
    assert dict(mapping) == {"v1": "b", "v2": "c", "v3": "c"}


def test_plain_vms_are_not_counted_and_reported_as_non_agile():
    hosts = [host("a", 0), host("b", 0)]
    vms = [vm("plain", "a", 64 * GIB, restart_on=[])]
    # Nothing agile to protect: even losing every host loses no restartable VM.
    assert plan.max_host_failures(hosts, vms) == 2 == ref.max_host_failures(hosts, vms)
    report = plan.tolerance_report(hosts, vms)
    assert report["non_agile"] == ["plain"]
    result = plan.failover_plan(hosts, vms, ["a"])
    assert result["restarts"] == []
    assert result["not_restarted"][0]["vm"] == "plain"
    assert "plain storage" in result["not_restarted"][0]["reason"]


def test_unprotected_vms_are_overhead_only():
    hosts = [host("a", 0), host("b", 0)]
    vms = [vm("scratch", "a", 64 * GIB, protected=False)]
    assert plan.max_host_failures(hosts, vms) == 2
    assert plan.failover_plan(hosts, vms, ["a"])["lost_unprotected"] == ["scratch"]


def test_restart_on_limits_targets():
    hosts = [host("a", 0), host("b", 8 * GIB), host("c", 256 * GIB)]
    vms = [vm("drbd", "a", 16 * GIB, restart_on=["b"])]
    assert plan.max_host_failures(hosts, vms) == 0
    vms = [vm("drbd", "a", 16 * GIB, restart_on=["c"])]
    assert plan.max_host_failures(hosts, vms) == 1  # then c fails with it: nowhere to go
    assert plan.max_host_failures(hosts, vms) == ref.max_host_failures(hosts, vms)


def test_trivially_never_possible_with_as_many_failures_as_hosts():
    hosts = [host("a", 100), host("b", 100)]
    assert plan.max_host_failures(hosts, [vm("v", "a", 1)]) == 1
    assert plan.max_host_failures(hosts, []) == 2
    assert plan.max_host_failures(hosts, [], up_to=1) == 1


def test_offline_host_vms_restart_first_or_no_plan():
    hosts = [host("a", 0, online=False), host("b", 10), host("c", 10)]
    assert plan.max_host_failures(hosts, [vm("v", "a", 8)]) == 1
    assert plan.max_host_failures(hosts, [vm("v", "a", 11)]) == -1
    assert ref.max_host_failures(hosts, [vm("v", "a", 11)]) == -1


def test_subtree_bound_and_tiers_are_used_on_a_loose_cluster():
    rng = random.Random(7)
    hosts = [host(f"h{k:02d}", 512 * GIB) for k in range(12)]
    vms = [vm(f"v{k:03d}", f"h{k % 12:02d}", rng.choice([4, 8, 16]) * GIB) for k in range(120)]
    stats = {}
    assert plan.max_host_failures(hosts, vms, up_to=3, stats=stats) == 3
    assert stats["subtree_proofs"] > 0


def test_tiers_on_a_tight_cluster_agree_with_brute_force():
    rng = random.Random(11)
    for case in range(20):
        names = [f"h{k}" for k in range(6)]
        vms = [vm(f"v{k:02d}", rng.choice(names), rng.choice([4, 4, 8, 128]) * GIB) for k in range(18)]
        hosts = [host(name, rng.choice([64, 128, 136, 200, 260]) * GIB) for name in names]
        stats = {}
        assert plan.max_host_failures(hosts, vms, stats=stats) == ref.max_host_failures(hosts, vms), case


# ---------------------------------------------------------------------------
# Failover plans


@PROPERTY
@given(clusters(max_hosts=5, max_vms=9), st.data())
def test_failover_plan_is_xapi_biggest_fit_decreasing(cluster, data):
    hosts, vms = cluster
    live = [h["name"] for h in hosts if h["online"]]
    failed = data.draw(st.lists(st.sampled_from(live), unique=True)) if live else []
    result = plan.failover_plan(hosts, vms, failed)
    down = set(failed) | {h["name"] for h in hosts if not h["online"]}
    survivors = [(h["name"], h["memory_free_mib"]) for h in sorted(hosts, key=lambda h: h["name"]) if h["name"] not in down]
    agile = sorted((v for v in vms if v["protected"] and v["restart_on"] != [] and v["host"] in down), key=lambda v: v["name"])
    allowed = {v["name"]: None if v["restart_on"] is None else set(v["restart_on"]) for v in agile}
    offline = [(v["name"], v["memory_mib"]) for v in agile if v["host"] not in failed]
    first, left1, bins = ref.biggest_fit_decreasing(offline, survivors, allowed)
    # Bins keep host order in xapi's config.hosts, whatever the packing did.
    used = dict(bins)
    survivors = [(h, used[h]) for h, _free in survivors]
    second, left2, _bins = ref.biggest_fit_decreasing([(v["name"], v["memory_mib"]) for v in agile if v["host"] in failed], survivors, allowed)
    assert {r["vm"]: r["to"] for r in result["restarts"]} == dict(first + second)
    assert {e["vm"] for e in result["not_restarted"]} == set(left1 + left2) | {
        v["name"] for v in vms if v["protected"] and v["restart_on"] == [] and v["host"] in down}


@PROPERTY
@given(clusters(max_hosts=5, max_vms=9, offline=False), st.data())
def test_sequential_failover_plan_follows_every_vm_like_the_reference(cluster, data):
    """Fail hosts one after the other: every VM ends where xapi's simulate_failure chain puts it."""
    hosts, vms = cluster
    names = [h["name"] for h in hosts]
    sequence = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    config = ref.Config(hosts, vms)
    for dead in sequence:
        config = config.simulate_failure(dead)
        if config is None:
            break
    result = plan.failover_plan(hosts, vms, sequence, sequential=True)
    if config is None:
        assert result["not_restarted"] or not sequence
        assert any(not e["reason"].startswith("plain") for e in result["not_restarted"])
        return
    assert not [e for e in result["not_restarted"] if not e["reason"].startswith("plain")]
    moved = {r["vm"]: r["to"] for r in result["restarts"]}
    for name, where in config.placement.items():
        assert moved.get(name, where) == where


def test_failover_plan_sequential_and_priority_order():
    hosts = [host("a", 0), host("b", 30), host("c", 30)]
    vms = [vm("db", "a", 20, order=1), vm("web", "a", 10, order=2), vm("batch", "b", 25, order=None)]
    result = plan.failover_plan(hosts, vms, ["a", "b"], sequential=True)
    assert [r["vm"] for r in result["restarts"]] == ["db", "web"] or result["not_restarted"]
    assert [e["vm"] for e in result["restarts"] + result["not_restarted"]][:1] == ["db"]
    together = plan.failover_plan(hosts, vms, ["a", "b"])
    names = [r["vm"] for r in together["restarts"]]
    assert names == sorted(names, key=lambda n: {"db": 1, "web": 2, "batch": 99}[n])


def test_failover_plan_reasons():
    hosts = [host("a", 0), host("b", 5), host("c", 100)]
    vms = [vm("pair", "a", 10, restart_on=["b"]), vm("gone", "a", 10, restart_on=["c"]), vm("big", "a", 200)]
    reasons = {e["vm"]: e["reason"] for e in plan.failover_plan(hosts, vms, ["a", "c"])["not_restarted"]}
    assert reasons == {
        "pair": "not enough free memory on replica holders b",
        "gone": "every replica holder (c) is down",
        "big": "no surviving host with enough free memory",
    }
    everything = plan.failover_plan(hosts, vms, ["a", "b", "c"])["not_restarted"]
    assert {e["reason"] for e in everything} == {"no host left"}


def test_failover_plans_per_host():
    hosts = [host("a", 40), host("b", 40)]
    vms = [vm("x", "a", 30), vm("y", "b", 30)]
    plans = plan.failover_plans_per_host(hosts, vms)
    assert plans["a"]["restarts"][0]["to"] == "b"
    assert plans["b"]["restarts"][0]["to"] == "a"


# ---------------------------------------------------------------------------
# What-if and overcommit


def test_what_if_does_not_touch_inputs_and_changes_the_answer():
    hosts = [host("a", 70), host("b", 70), host("c", 70)]
    vms = [vm("x", "a", 30), vm("y", "b", 30)]
    saved = copy.deepcopy((hosts, vms))
    assert plan.max_host_failures(hosts, vms) == 2
    assert plan.max_host_failures(hosts, vms, what_if={"offline": ["c"]}) == 1
    assert plan.max_host_failures(hosts, vms, what_if={"add_vms": [vm("z", "c", 30)]}) == 1
    assert plan.max_host_failures(hosts, vms, what_if={"remove_vms": ["x", "y"]}) == 3
    assert plan.max_host_failures(hosts, vms, what_if={"memory_mib": {"x": 70}}) == 1
    assert (hosts, vms) == saved


def test_what_if_adds_a_vm_without_host_by_placing_it():
    hosts = [host("a", 10), host("b", 100)]
    hosts2, vms2 = plan.apply_what_if(hosts, [], {"add_vms": [{"name": "n", "memory_mib": 20}]})
    assert [v["host"] for v in vms2] == ["b"]
    assert {h["name"]: h["memory_free_mib"] for h in hosts2} == {"a": 10, "b": 80}


def test_overcommit_check():
    hosts = [host("a", 70), host("b", 70), host("c", 70)]
    vms = [vm("x", "a", 30), vm("y", "b", 30)]
    ok = plan.overcommit_check(hosts, vms, {"add_vms": [vm("z", "c", 5)]}, min_failures=2)
    assert ok["ok"] and ok["before"] == ok["after"] == 2
    bad = plan.overcommit_check(hosts, vms, {"add_vms": [vm("z", "c", 45)]}, min_failures=2)
    assert not bad["ok"] and bad["before"] == 2 and bad["after"] == 1
    impossible = plan.overcommit_check(hosts, vms, {"add_vms": [vm("z", "c", 80)]}, min_failures=1)
    assert not impossible["ok"] and "does not fit" in impossible["reason"]


# ---------------------------------------------------------------------------
# The placement decision (plan.placement): fit and rank


MIB = 1024 * 1024


def dom0(name, free, vgs=None, online=True):
    """A host as provision and migrate give it: named VGs with free bytes, extents and LVs."""
    return {"name": name, "memory_free_mib": free, "online": online, "vgs": vgs or {}}


@pytest.mark.parametrize("domain_type, vcpus", [("pv", 1), ("pvh", 2), ("hvm", 4)])
def test_placement_memory_fit_counts_xens_overhead(domain_type, vcpus):
    need = domain_need_mib(1024, vcpus, domain_type)
    assert need > 1024
    demand = {"name": "n", "memory_mib": 1024, "vcpus": vcpus, "type": domain_type}
    for free, fits in ((need, True), (need - 1, False)):
        verdict = plan.placement([dom0("a", free)], demand)["verdicts"]["a"]
        assert verdict["fits"] is fits and verdict["need_mib"] == need
    short = plan.placement([dom0("a", need - 1)], demand)["verdicts"]["a"]["problems"]
    assert short == [f"a: needs {need} MiB of free memory for n (1024 MiB + Xen's overhead), has {need - 1} MiB"]
    # the reserve comes on top; a host where the VM runs already needs no memory for it
    assert not plan.placement([dom0("a", need)], demand, policy={"reserve_mib": 1})["verdicts"]["a"]["fits"]
    assert plan.placement([dom0("a", 0)], dict(demand, running_on=["a"]))["host"] == "a"


def test_placement_vg_fit_in_whole_extents_with_drbd_metadata_and_existing_lvs():
    extent = 32 * MIB
    size = 100 * MIB + 1
    whole = conventions.round_up(size, extent)
    meta = conventions.meta_bytes(size, extent)
    disk = {"lv": "n-disk", "size_bytes": size, "vg": "vg0"}
    for drbd, need in ((False, whole), (True, whole + meta)):
        demand = {"name": "n", "memory_mib": 1, "disks": [disk], "drbd_meta": drbd}
        for free, fits in ((need, True), (need - 1, False)):
            host = dom0("a", 100, {"vg0": {"free_bytes": free, "extent_bytes": extent}})
            verdict = plan.placement([host], demand)["verdicts"]["a"]
            assert (verdict["fits"], verdict["vg_need_bytes"], verdict["disk_vgs"]) == (fits, need, ["vg0"])
    # an LV of the disk's name already there is grown, not made again
    host = dom0("a", 100, {"vg0": {"free_bytes": extent, "extent_bytes": extent, "lvs": {"n-disk": whole - extent}}})
    assert plan.placement([host], {"name": "n", "memory_mib": 1, "disks": [disk]})["verdicts"]["a"]["vg_need_bytes"] == extent
    short = dom0("a", 100, {"vg0": {"free_bytes": whole - 1, "extent_bytes": extent}})
    assert plan.placement([short], {"name": "n", "memory_mib": 1, "disks": [disk]})["verdicts"]["a"]["problems"] == [
        f"a: VG vg0 needs {whole} bytes (the disks of n), has {whole - 1} free (short by 1)"]


def test_placement_vg_choice_own_name_else_most_free_space():
    disks = [{"lv": "n-a", "size_bytes": 8 * MIB, "vg": "xenvg"}, {"lv": "n-b", "size_bytes": 8 * MIB, "vg": "xenvg"}]
    demand = {"name": "n", "memory_mib": 1, "disks": disks}
    other = dom0("a", 100, {"big": {"free_bytes": 12 * MIB}, "small": {"free_bytes": 8 * MIB}})
    strict = plan.placement([other], demand)["verdicts"]["a"]
    assert not strict["fits"] and strict["problems"][0].startswith("a: has no VG xenvg")
    # not strict: each disk to the VG with the most room left at that point
    loose = plan.placement([other], dict(demand, vg_strict=False))["verdicts"]["a"]
    assert loose["fits"] and loose["disk_vgs"] == ["big", "small"]
    own = dom0("a", 100, {"big": {"free_bytes": 64 * MIB}, "xenvg": {"free_bytes": 8 * MIB}})
    assert plan.placement([own], dict(demand, vg_strict=False))["verdicts"]["a"]["disk_vgs"] == ["xenvg", "big"]
    # a host's own VG for VM disks (per-dom0 xen_vg) takes every disk, room or not
    mine = dict(own, vg="xenvg")
    verdict = plan.placement([mine], dict(demand, vg_strict=False))["verdicts"]["a"]
    assert verdict["disk_vgs"] == ["xenvg", "xenvg"] and not verdict["fits"]
    assert plan.placement([dict(own, vg="big")], demand)["verdicts"]["a"]["disk_vgs"] == ["big", "big"]


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 64), st.booleans()), min_size=1, max_size=6),
       st.integers(0, 40), st.integers(0, 40), st.sets(st.integers(0, 5)))
def test_placement_ranks_fitting_hosts_by_memory_then_vg_space_then_name(specs, memory, disk, excluded):
    hosts = [host(f"h{k}", free, vg=vg * GIB if has_vg else None) for k, (free, vg, has_vg) in enumerate(specs)]
    exclude = [f"h{k}" for k in excluded]
    result = plan.placement(hosts, {"name": "n", "memory_mib": memory, "disks": [{"size_bytes": disk * GIB}]},
                            exclude=exclude)
    fitting = [h for h in hosts if h["name"] not in exclude and h["memory_free_mib"] >= domain_need_mib(memory)
               and (h["vg_free_bytes"] is None or h["vg_free_bytes"] >= disk * GIB)]
    assert result["ranked"] == [h["name"] for h in sorted(
        fitting, key=lambda h: (-h["memory_free_mib"], -(h["vg_free_bytes"] or 0), h["name"]))]
    assert result["host"] == (result["ranked"][0] if fitting else None)
    for name, verdict in result["verdicts"].items():
        assert verdict["fits"] == (name in result["ranked"]) and bool(verdict["problems"]) != verdict["fits"] or \
            name in exclude


def test_placement_exclusions_and_the_callers_own_refusals():
    hosts = [host("a", 100), host("b", 90), host("c", 80, online=False)]
    demand = {"name": "n", "memory_mib": 10}
    assert plan.placement(hosts, demand)["ranked"] == ["a", "b"]
    result = plan.placement(hosts, demand, exclude={"a": ["a: is the source"]})
    assert result["host"] == "b" and result["verdicts"]["a"]["problems"] == ["a: is the source"]
    refused = plan.placement(hosts, demand, check=lambda name, verdict: [f"{name}: no"] if name == "b" else [])
    assert refused["ranked"] == ["a"] and refused["verdicts"]["b"]["problems"] == ["b: no"]
    assert refused["verdicts"]["c"]["problems"] == ["c: offline"]


def test_place_and_evacuation_ask_placement():
    hosts = [host("a", 0), host("b", 64 * GIB, vg=10 ** 9), host("c", 64 * GIB, vg=10 ** 10), host("d", 65 * GIB, vg=0)]
    vms = [vm("p", "a", 4 * GIB, restart_on=[], disk_bytes=10 ** 8), vm("r", "a", 4 * GIB, restart_on=["b", "d"])]
    demand = {"name": "p", "memory_mib": 4 * GIB, "disks": [{"size_bytes": 10 ** 8}]}
    best = plan.placement([h for h in hosts if h["name"] != "a"], demand)["host"]
    assert best == "c"   # d has the most memory but no VG space, b and c tie on memory: VG space
    assert plan.place(hosts, vms, {"name": "n", "memory_mib": 4 * GIB, "disk_bytes": 10 ** 8}, policy={"up_to": 0})["host"] == best
    moves = {m["vm"]: m["target"] for m in plan.evacuation_plan(hosts, vms, "a")["moves"]}
    replica = plan.placement([h for h in hosts if h["name"] in ("b", "d")], {"name": "r", "memory_mib": 4 * GIB})["host"]
    assert moves == {"p": best, "r": replica} and replica == "d"


# ---------------------------------------------------------------------------
# Placement (with the tolerated failures first)


def test_place_prefers_tolerance_then_balance():
    hosts = [host("a", 100), host("b", 60), host("c", 60)]
    vms = [vm("x", "b", 50), vm("y", "c", 50)]
    spot = plan.place(hosts, vms, {"name": "n", "memory_mib": 20})
    assert spot["host"] == "a"
    assert spot["tolerated_failures"] == plan.max_host_failures(hosts, vms, up_to=2, what_if={"add_vms": [vm("n", "a", 20)]})


def test_place_replicated_pair_respects_disk_and_anti_affinity():
    hosts = [host("a", 100, vg=10), host("b", 90, vg=1000), host("c", 80, vg=1000), host("d", 70, vg=1000)]
    vms = [vm("web1", "b", 10, anti_affinity="web", restart_on=["c"])]
    spot = plan.place(hosts, vms, {"name": "web2", "memory_mib": 20, "disk_bytes": 100, "storage": "drbd", "anti_affinity": "web"})
    assert spot["host"] not in ("a", "b") and spot["secondary"] not in ("a", "b", spot["host"])


def test_place_soft_anti_affinity_and_candidate_cap():
    hosts = [host("a", 100), host("b", 10)]
    vms = [vm("web1", "a", 10, anti_affinity="web")]
    new = {"name": "web2", "memory_mib": 20, "anti_affinity": "web"}
    with pytest.raises(PlanError, match="anti-affinity group 'web'"):
        plan.place(hosts, vms, new)
    assert plan.place(hosts, vms, new, policy={"anti_affinity": "soft"})["host"] == "a"
    spot = plan.place(hosts, vms, {"name": "n", "memory_mib": 5}, policy={"max_candidates": 1, "up_to": 5})
    assert len(spot["candidates"]) == 1


def test_place_nowhere_raises():
    with pytest.raises(PlanError, match="fits on no online host"):
        plan.place([host("a", 10)], [], {"name": "n", "memory_mib": 20})


# ---------------------------------------------------------------------------
# Evacuation


def test_evacuation_plan_targets_order_and_deadline():
    hosts = [host("a", 0), host("b", 64 * GIB, vg=200 * 10 ** 9), host("c", 32 * GIB, vg=10 ** 9)]
    vms = [
        vm("plain", "a", 4 * GIB, restart_on=[], disk_bytes=20 * 10 ** 9),
        vm("drbd", "a", 8 * GIB, restart_on=["c"], disk_bytes=50 * 10 ** 9),
        vm("any", "a", 16 * GIB, storage="shared", restart_on=["b"]),
    ]
    result = plan.evacuation_plan(hosts, vms, "a", link_mbit_s=8000, concurrency=1, deadline_s=100)
    targets = {m["vm"]: m["target"] for m in result["moves"]}
    assert targets == {"plain": "b", "drbd": "c", "any": "b"}
    durations = {m["vm"]: m["duration_s"] for m in result["moves"]}
    assert durations["plain"] == pytest.approx((4 * GIB * plan.MIB + 20 * 10 ** 9) / 1e9, rel=1e-3)
    assert durations["drbd"] == pytest.approx(8 * GIB * plan.MIB / 1e9, rel=1e-3)
    assert [m["vm"] for m in sorted(result["moves"], key=lambda m: m["order"])] == ["plain", "any", "drbd"]
    assert result["total_s"] == pytest.approx(sum(durations.values()), rel=1e-3)
    assert result["fits"]
    assert not plan.evacuation_plan(hosts, vms, "a", link_mbit_s=8000, concurrency=1, deadline_s=10)["fits"]
    two = plan.evacuation_plan(hosts, vms, "a", link_mbit_s=8000, concurrency=2, deadline_s=10 ** 6)
    assert two["total_s"] < result["total_s"]


def test_evacuation_plan_reports_stuck_vms():
    hosts = [host("a", 0), host("b", 4)]
    result = plan.evacuation_plan(hosts, [vm("big", "a", 8)], "a")
    assert not result["fits"] and result["not_movable"][0]["vm"] == "big"


# ---------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("hosts, vms, message", [
    ([host("a", 1)], [vm("v", "nowhere", 1)], "unknown host 'nowhere'"),
    ([host("a", -1)], [], "must not be negative"),
    ([host("a", 1)], [vm("v", "a", -5)], "must not be negative"),
    ([host("a", 1), host("a", 2)], [], "duplicate host name 'a'"),
    ([host("a", 1)], [vm("v", "a", 1), vm("v", "a", 1)], "duplicate VM name 'v'"),
    ([host("a", 1)], [vm("v", "a", 1, restart_on=["b"])], "restart_on of VM 'v' names unknown host 'b'"),
    ([host("a", 1)], [vm("v", "a", 1, restart_on="a")], "must be a list"),
    ([host("a", 1.5)], [], "must be an integer"),
    ([host("a", True)], [], "must be an integer"),
    ([{"name": "a"}], [], "no memory_free_mib"),
    ([host("", 1)], [], "non-empty string"),
])
def test_bad_input_raises_plan_error(hosts, vms, message):
    with pytest.raises(PlanError, match=message):
        plan.max_host_failures(hosts, vms)
    assert issubclass(PlanError, ValueError)


def test_bad_what_if_and_arguments():
    hosts = [host("a", 1)]
    with pytest.raises(PlanError, match="unknown host 'z'"):
        plan.max_host_failures(hosts, [], what_if={"offline": ["z"]})
    with pytest.raises(PlanError, match="unknown what_if keys"):
        plan.max_host_failures(hosts, [], what_if={"explode": True})
    with pytest.raises(PlanError, match="up_to"):
        plan.max_host_failures(hosts, [], up_to=-1)
    with pytest.raises(PlanError, match="failed host"):
        plan.failover_plan(hosts, [], ["z"])
    with pytest.raises(PlanError, match="unknown"):
        plan.evacuation_plan(hosts, [], "z")


def test_sequences_count_is_n_permute_r():
    for n, r in itertools.product(range(6), range(4)):
        if r <= n:
            assert plan.sequences_count(n, r) == len(list(itertools.permutations(range(n), r)))
