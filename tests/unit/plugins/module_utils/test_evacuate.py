# Copyright (c) sanless.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plan.evacuation_plan on data: storage modes, drained hosts, several hosts, xapi's anti-affinity phases,
the tolerance after the drain, the deadline; and the planner fed from recorded xen_info results."""

import copy
import json

import pytest
from ansible_collections.sanless.xen.plugins.module_utils import plan
from ansible_collections.sanless.xen.plugins.module_utils.conventions import domain_need_mib, meta_bytes
from ansible_collections.sanless.xen.plugins.module_utils.lvm import lvs_argv, vgs_argv
from ansible_collections.sanless.xen.plugins.module_utils.plan import PlanError
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandRunner
from ansible_collections.sanless.xen.plugins.modules import xen_info

GIB = 1024
GB = 10 ** 9


def host(name, free, vg=None, drained=False, online=True):
    return {"name": name, "memory_free_mib": free, "vg_free_bytes": vg, "drained": drained, "online": online}


def vm(name, on, mem, storage="plain", restart_on=None, **extra):
    data = {"name": name, "host": on, "memory_mib": mem, "storage": storage,
            "restart_on": [] if storage == "plain" and restart_on is None else restart_on}
    data.update(extra)
    return data


def targets(result):
    return {m["vm"]: m["target"] for m in result["moves"]}


# ---------------------------------------------------------------------------
# Storage modes


def test_unknown_or_unmovable_storage_is_refused_never_guessed():
    hosts = [host("a", 0), host("b", 64 * GIB, vg=100 * GB)]
    vms = [vm("known", "a", GIB, disk_bytes=GB),
           vm("nomode", "a", GIB, storage=None),
           vm("nfs", "a", GIB, storage="nfs", restart_on=["b"]),
           vm("lonely", "a", GIB, storage="drbd", restart_on=[])]
    result = plan.evacuation_plan(hosts, vms, "a")
    assert targets(result) == {"known": "b"}
    reasons = {s["vm"]: s["reason"] for s in result["not_movable"]}
    assert "storage mode unknown: set xen_storage_mode" in reasons["nomode"]
    assert "storage mode 'nfs' cannot be moved" in reasons["nfs"]
    assert "no replica holder known" in reasons["lonely"]
    assert not result["fits"] and "3 VM(s) cannot leave" in result["refused"][0]
    # restart_on alone says it: [] is plain, a list is a replica; None says nothing
    bare = plan.evacuation_plan(hosts, [{"name": "v", "host": "a", "memory_mib": GIB}], "a")
    assert bare["not_movable"][0]["reason"].startswith("storage mode unknown")


def test_plain_carries_disks_and_their_drbd_metadata_replicas_copy_memory_only():
    disk = 10 * GB
    room = disk + meta_bytes(disk, 1)
    hosts = [host("a", 0), host("b", 64 * GIB, vg=room - 1), host("c", 8 * GIB, vg=room)]
    vms = [vm("p", "a", 4 * GIB, disk_bytes=disk), vm("d", "a", 4 * GIB, storage="drbd", restart_on=["b"], disk_bytes=disk)]
    result = plan.evacuation_plan(hosts, vms, "a", link_mbit_s=8000)
    assert targets(result) == {"p": "c", "d": "b"}   # b lacks the metadata's room; d's disks are on b already
    by_vm = {m["vm"]: m for m in result["moves"]}
    assert by_vm["p"]["bytes"] == 4 * GIB * plan.MIB + disk and by_vm["p"]["disk_bytes"] == disk
    assert by_vm["d"]["bytes"] == 4 * GIB * plan.MIB and by_vm["d"]["storage"] == "drbd"
    # Xen's overhead counts: a host with exactly the VM's memory is too small for it
    tight = plan.evacuation_plan([host("a", 0), host("b", 1024)], [vm("v", "a", 1024, storage="shared", restart_on=["b"])], "a")
    assert tight["moves"] == [] and "needs %d MiB" % domain_need_mib(1024) in tight["not_movable"][0]["reason"]


def test_disks_list_counts_each_disk():
    room = 3 * GB + meta_bytes(GB, 1) + meta_bytes(2 * GB, 1)
    vms = [vm("p", "a", GIB, disks=[GB, 2 * GB])]
    result = plan.evacuation_plan([host("a", 0), host("b", 4 * GIB, vg=room)], vms, "a")
    assert targets(result) == {"p": "b"} and result["moves"][0]["disk_bytes"] == 3 * GB
    assert plan.evacuation_plan([host("a", 0), host("b", 4 * GIB, vg=room - 1)], vms, "a")["moves"] == []


# ---------------------------------------------------------------------------
# Drained hosts, several hosts


def test_drained_hosts_are_never_targets():
    hosts = [host("a", 0), host("big", 512 * GIB, vg=10 ** 12, drained=True), host("small", 16 * GIB, vg=10 ** 12)]
    vms = [vm("p", "a", 4 * GIB, disk_bytes=GB), vm("r", "a", 4 * GIB, storage="drbd", restart_on=["big"])]
    result = plan.evacuation_plan(hosts, vms, "a")
    assert targets(result) == {"p": "small"}
    assert "no replica holders big left" in result["not_movable"][0]["reason"]


def test_several_hosts_drain_to_the_others_each_source_with_its_own_slots():
    hosts = [host("a", 0), host("b", 0), host("c", 64 * GIB, vg=10 ** 12), host("d", 48 * GIB, vg=10 ** 12)]
    vms = [vm("a1", "a", 8 * GIB, disk_bytes=GB), vm("a2", "a", 4 * GIB, disk_bytes=GB),
           vm("b1", "b", 8 * GIB, disk_bytes=GB), vm("c1", "c", 4 * GIB, disk_bytes=GB)]
    result = plan.evacuation_plan(hosts, vms, ["a", "b"], link_mbit_s=1000, concurrency=1)
    assert result["hosts"] == ["a", "b"]
    assert set(targets(result)) == {"a1", "a2", "b1"} and set(targets(result).values()) <= {"c", "d"}
    first = [m for m in result["moves"] if m["start_s"] == 0]
    assert sorted(m["source"] for m in first) == ["a", "b"]   # one at a time per source, both sources at once
    a_moves = sorted((m for m in result["moves"] if m["source"] == "a"), key=lambda m: m["order"])
    assert a_moves[1]["start_s"] == a_moves[0]["end_s"]
    assert [m["order"] for m in result["moves"]] == [1, 2, 3]
    with pytest.raises(PlanError, match="named twice"):
        plan.evacuation_plan(hosts, vms, ["a", "a"])
    with pytest.raises(PlanError, match="unknown"):
        plan.evacuation_plan(hosts, vms, ["a", "zz"])
    with pytest.raises(PlanError, match="no host to evacuate"):
        plan.evacuation_plan(hosts, vms, [])


def test_inputs_are_not_modified_and_the_plan_is_deterministic():
    hosts = [host("a", 0), host("b", 64 * GIB, vg=10 ** 12), host("c", 64 * GIB, vg=10 ** 12)]
    vms = [vm(f"v{k}", "a", (k % 3 + 1) * GIB, disk_bytes=k * GB, anti_affinity="g" if k % 2 else None) for k in range(8)]
    before = copy.deepcopy((hosts, vms))
    first = plan.evacuation_plan(hosts, vms, "a", ha_tolerate=0)
    assert (hosts, vms) == before
    assert plan.evacuation_plan(hosts, list(reversed(vms)), "a", ha_tolerate=0) == first
    json.dumps(first)


# ---------------------------------------------------------------------------
# Anti-affinity (xapi's host evacuation: spread evenly, then no breach, then the rest)


def test_a_group_is_spread_evenly_over_hosts_of_unequal_free_memory():
    hosts = [host("a", 0), host("b", 100 * GIB), host("c", 20 * GIB), host("d", 10 * GIB)]
    group = [vm(f"g{k}", "a", 2 * GIB + k, storage="shared", restart_on=["b", "c", "d"], anti_affinity="web")
             for k in range(6)]
    result = plan.evacuation_plan(hosts, group, "a")
    assert result["fits"] and all(m["phase"] == "spread" for m in result["moves"])
    counts = {}
    for target in targets(result).values():
        counts[target] = counts.get(target, 0) + 1
    assert counts == {"b": 2, "c": 2, "d": 2}   # even, though b alone could take them all
    # smallest first, each to the host with the fewest of the group, then the most free memory
    assert [targets(result)[f"g{k}"] for k in range(3)] == ["b", "c", "d"]


def test_the_spread_counts_the_group_members_already_on_the_targets():
    hosts = [host("a", 0), host("b", 100 * GIB), host("c", 20 * GIB)]
    vms = [vm("g0", "b", GIB, storage="shared", restart_on=["a", "c"], anti_affinity="web"),
           vm("g1", "a", GIB, storage="shared", restart_on=["b", "c"], anti_affinity="web"),
           vm("g2", "a", 2 * GIB, storage="shared", restart_on=["b", "c"], anti_affinity="web")]
    assert targets(plan.evacuation_plan(hosts, vms, "a")) == {"g1": "c", "g2": "b"}


def test_no_breach_where_spreading_is_impossible():
    # c has the fewest of the group but no room: g2 goes to the only host without the group (no breach);
    # g3 then finds every host with room holding a VM of the group: refused (hard), placed with breach (soft)
    hosts = [host("a", 0), host("b", 100 * GIB), host("c", GIB), host("d", 40 * GIB)]
    vms = [vm("old", "b", GIB, storage="shared", restart_on=["c", "d"], anti_affinity="db"),
           vm("g1", "a", 2 * GIB, storage="shared", restart_on=["b", "c", "d"], anti_affinity="db"),
           vm("g2", "a", 3 * GIB, storage="shared", restart_on=["b", "c", "d"], anti_affinity="db"),
           vm("free", "a", 8 * GIB, storage="shared", restart_on=["b", "c", "d"])]
    hard = plan.evacuation_plan(hosts, vms, "a")
    assert targets(hard) == {"g1": "d", "free": "b"}
    assert hard["not_movable"][0]["vm"] == "g2"
    assert "anti-affinity group db: every host with room already runs a VM of it (b, d)" in hard["not_movable"][0]["reason"]
    assert not hard["fits"] and hard["refused"]
    soft = plan.evacuation_plan(hosts, vms, "a", anti_affinity="soft")
    moves = {m["vm"]: m for m in soft["moves"]}
    assert moves["g2"]["target"] == "b" and moves["g2"]["breach"] and moves["g2"]["phase"] == "binpack"
    assert soft["fits"]


def test_no_breach_phase_takes_a_host_the_spread_could_not():
    # the spread's host (fewest of the group, most memory) lacks VG space for a plain VM: another host without
    # a VM of the group takes it
    hosts = [host("a", 0), host("b", 100 * GIB, vg=0), host("c", 20 * GIB, vg=100 * GB), host("d", 30 * GIB, vg=100 * GB)]
    vms = [vm("old", "d", GIB, anti_affinity="web"), vm("g1", "a", 2 * GIB, disk_bytes=GB, anti_affinity="web")]
    result = plan.evacuation_plan(hosts, vms, "a")
    assert targets(result) == {"g1": "c"} and result["moves"][0]["phase"] == "no_breach"


def test_a_group_vm_with_one_possible_host_is_placed_first_and_never_doubles_up_where_a_host_has_none():
    # b has the most free memory, so the plain g1 (smallest by name, same size) would take it first; g2 (drbd)
    # can only go to its peer b: the spread places the VMs with the fewest possible hosts first, so g2 takes b
    # and g1 goes to c, and never puts g2 next to g1 on b while c holds none of the group
    hosts = [host("a", 0), host("b", 1010, vg=10 ** 12), host("c", 1000, vg=10 ** 12), host("d", 200, vg=10 ** 12)]
    vms = [vm("g1", "a", 96, disk_bytes=GB, anti_affinity="web"),
           vm("g2", "a", 96, storage="drbd", restart_on=["b"], anti_affinity="web")]
    result = plan.evacuation_plan(hosts, vms, "a")
    assert targets(result) == {"g1": "c", "g2": "b"} and result["fits"]
    assert {m["phase"] for m in result["moves"]} == {"spread"} and not any(m["breach"] for m in result["moves"])
    # the group already on c: the spread level is 0 (d holds none); g1, allowed on d only (plain, d's VG
    # alone has room), takes d; g2 finds b at level 0 too
    vms_c = vms + [vm("old", "c", 96, storage="shared", restart_on=["b"], anti_affinity="web")]
    roomy = [host("a", 0), host("b", 1010, vg=0), host("c", 1000, vg=0), host("d", 200, vg=10 ** 12)]
    assert targets(plan.evacuation_plan(roomy, vms_c, "a")) == {"g1": "d", "g2": "b"}
    # g2's only host already holds the group while another host holds none: that is a breach, refused under
    # hard (never a silent "spread"), placed and flagged under soft
    crowded = [vm("old", "b", 96, storage="shared", restart_on=["c"], anti_affinity="web"),
               vm("g2", "a", 96, storage="drbd", restart_on=["b"], anti_affinity="web")]
    hard = plan.evacuation_plan(hosts, crowded, "a")
    assert hard["moves"] == [] and "anti-affinity group web" in hard["not_movable"][0]["reason"]
    soft = plan.evacuation_plan(hosts, crowded, "a", anti_affinity="soft")
    assert targets(soft) == {"g2": "b"} and soft["moves"][0]["breach"] and soft["moves"][0]["phase"] == "binpack"


# ---------------------------------------------------------------------------
# Failure tolerance after the drain (ha_tolerate, max_host_failures)


def test_tolerance_after_the_drain_refuses_unless_forced():
    hosts = [host("a", 0), host("b", 16 * GIB), host("c", 16 * GIB)]
    # drbd with peer b: after the move the replica is on a, drained: a failure of b loses it
    vms = [vm("d1", "a", 4 * GIB, storage="drbd", restart_on=["b"]), vm("s1", "b", 4 * GIB, storage="shared", restart_on=["c"])]
    assert plan.max_host_failures(hosts, vms) >= 1
    result = plan.evacuation_plan(hosts, vms, "a", ha_tolerate=1)
    assert targets(result) == {"d1": "b"}
    tol = result["tolerance"]
    assert tol["after"] == 0 and tol["before"] == 1 and not tol["ok"]
    assert "would tolerate only 0 host failure(s) (now 1), xen_ha_tolerate is 1" in result["refused"][0]
    assert not result["fits"]
    forced = plan.evacuation_plan(hosts, vms, "a", ha_tolerate=1, force=True)
    assert forced["refused"] == [] and forced["tolerance"]["forced"] and not forced["fits"]


def test_tolerance_kept_when_the_replicas_stay_up():
    hosts = [host("a", 0), host("b", 16 * GIB), host("c", 16 * GIB)]
    vms = [vm("s1", "a", 4 * GIB, storage="shared", restart_on=["b", "c"]), vm("p", "a", GIB, disk_bytes=GB)]
    result = plan.evacuation_plan(hosts, vms, "a", ha_tolerate=1)
    assert result["tolerance"]["ok"] and result["tolerance"]["after"] == 1 and result["fits"]
    # the same answer as the exact planner on the cluster as the drain leaves it
    moved = targets(result)
    after_hosts = [host("a", 0, online=False), host("b", 16 * GIB), host("c", 16 * GIB)]
    for h in after_hosts:
        h["memory_free_mib"] -= sum(domain_need_mib(v["memory_mib"]) for v in vms if moved.get(v["name"]) == h["name"])
    after_vms = [dict(vms[0], host=moved["s1"], restart_on=sorted({"a", "b", "c"} - {moved["s1"]})),
                 dict(vms[1], host=moved["p"])]
    assert plan.max_host_failures(after_hosts, after_vms, up_to=1) == result["tolerance"]["after"]


def test_drained_hosts_take_no_restart_in_the_tolerance():
    hosts = [host("a", 0), host("b", 16 * GIB), host("c", 64 * GIB, drained=True)]
    vms = [vm("s1", "a", 4 * GIB, storage="shared", restart_on=["b", "c"])]
    result = plan.evacuation_plan(hosts, vms, "a", ha_tolerate=1)
    assert targets(result) == {"s1": "b"} and result["tolerance"]["after"] == 0 and result["refused"]


# ---------------------------------------------------------------------------
# Deadline from the link rate and the per-VM overhead


def test_deadline_defers_what_does_not_fit_and_refuses_when_nothing_does():
    hosts = [host("a", 0), host("b", 64 * GIB, vg=10 ** 12)]
    vms = [vm("big", "a", GIB, disk_bytes=100 * GB), vm("mid", "a", GIB, disk_bytes=10 * GB), vm("small", "a", GIB)]
    # 1000 Mbit/s = 125 MB/s; 30 s overhead per VM
    result = plan.evacuation_plan(hosts, vms, "a", link_mbit_s=1000, per_vm_overhead_s=30, deadline_s=200)
    durations = {m["vm"]: m["duration_s"] for m in result["moves"] + result["deferred"]}
    assert durations["mid"] == pytest.approx((GIB * plan.MIB + 10 * GB) / 125e6 + 30, abs=1e-3)
    assert [m["vm"] for m in result["deferred"]] == ["big"]
    assert "after the deadline (200 s)" in result["deferred"][0]["reason"]
    assert [m["vm"] for m in result["moves"]] == ["mid", "small"] and result["total_s"] <= 200
    assert result["refused"] == [] and not result["fits"]
    nothing = plan.evacuation_plan(hosts, vms, "a", link_mbit_s=1000, per_vm_overhead_s=30, deadline_s=5)
    assert nothing["moves"] == [] and "leaves time for no move" in nothing["refused"][0]
    roomy = plan.evacuation_plan(hosts, vms, "a", link_mbit_s=1000, per_vm_overhead_s=30, deadline_s=10 ** 5)
    assert roomy["fits"] and roomy["deferred"] == []
    for bad in ({"link_mbit_s": 0}, {"concurrency": 0}, {"concurrency": 1.5}, {"deadline_s": -1},
                {"per_vm_overhead_s": -1}, {"anti_affinity": "maybe"}, {"ha_tolerate": -1}):
        with pytest.raises(PlanError):
            plan.evacuation_plan(hosts, vms, "a", **bad)


def test_evacuation_lines_say_everything():
    hosts = [host("a", 0), host("b", 16 * GIB, vg=10 ** 12)]
    vms = [vm("p", "a", GIB, disk_bytes=GB, anti_affinity="g"), vm("x", "a", GIB, storage=None)]
    lines = plan.evacuation_lines(plan.evacuation_plan(hosts, vms, "a", deadline_s=600, ha_tolerate=0))
    assert lines[0].startswith("Evacuating a: 1 move(s)") and lines[0].endswith(": REFUSED")
    assert lines[1].startswith("  1. p (plain, group g) a -> b: ")
    assert any(line.startswith("  stays: x on a: storage mode unknown") for line in lines)
    assert any(line.startswith("  refused: 1 VM(s) cannot leave") for line in lines)


# ---------------------------------------------------------------------------
# From recorded xen_info results (xl 4.17.5, lvm 2.03.16: the lab's hosta, hostb) to a plan

XL = ("xl", "4.17.5")
LVM = ("lvm", "2.03.16")


def recorded_info(fake_module, fixture_text, tmp_path, name, info, domains, drained=False):
    outputs = {("xl", "info"): (0, fixture_text(*XL + (info,)), ""),
               ("xl", "list"): (0, fixture_text(*XL + (domains,)), ""),
               tuple(vgs_argv()): (0, fixture_text(*LVM + ("vgs.json",)), ""),
               tuple(lvs_argv()): (0, fixture_text(*LVM + ("lvs-domu.json",)), "")}
    mark = tmp_path / (name + ".drained")
    if drained:
        mark.write_text(json.dumps({"by": "evacuate", "since": 1796371200, "reason": "test"}))
    elif mark.exists():
        mark.unlink()
    module = fake_module(outputs, tools=["xl", "lvs"])
    return xen_info.gather(CommandRunner(module), config_dir=str(tmp_path / "none"), proc_drbd=str(tmp_path / "none"),
                           drained_mark=str(mark))


def test_recorded_dom0s_feed_the_evacuation(fake_module, fixture_text, tmp_path):
    def cluster(drained_b):
        return {"hosta": recorded_info(fake_module, fixture_text, tmp_path, "hosta", "xl-info.txt",
                                       "xl-list-migrate-source-before.txt"),
                "hostb": recorded_info(fake_module, fixture_text, tmp_path, "hostb", "xl-info-peer.txt",
                                       "xl-list-migrate-target-before.txt", drained=drained_b),
                "hostc": recorded_info(fake_module, fixture_text, tmp_path, "hostc", "xl-info-peer.txt", "xl-list-domu.txt")}
    meta = {"fxm": {"xen_storage_mode": "plain", "xen_disk_bytes": 256 * 1024 * 1024},
            "fxrec": {"xen_storage_mode": "plain"}}
    hosts, vms, _notes = plan.inputs_from_xen_info(cluster(False), meta)
    by_vm = {v["name"]: v for v in vms}
    assert by_vm["fxm"] == dict(by_vm["fxm"], host="hosta", memory_mib=96, vcpus=1, storage="plain", restart_on=[])
    result = plan.evacuation_plan(hosts, vms, "hosta", link_mbit_s=1000, per_vm_overhead_s=5, ha_tolerate=0)
    # hostb and hostc both report 626 MiB free and the same VG: the name decides
    assert targets(result) == {"fxm": "hostb"} and result["fits"]
    assert result["moves"][0]["bytes"] == 96 * plan.MIB + 256 * 1024 * 1024
    hosts, vms, _notes = plan.inputs_from_xen_info(cluster(True), meta)
    assert [h["name"] for h in hosts if h["drained"]] == ["hostb"]
    assert targets(plan.evacuation_plan(hosts, vms, "hosta")) == {"fxm": "hostc"}
    # fxrec without a storage mode stays, with its reason
    hosts, vms, _notes = plan.inputs_from_xen_info(cluster(False), {"fxm": meta["fxm"]})
    stays = plan.evacuation_plan(hosts, vms, ["hosta", "hostc"])
    assert targets(stays) == {"fxm": "hostb"} and stays["not_movable"][0]["vm"] == "fxrec"


def test_partial_lets_the_others_move_and_waves_cap_each_source():
    hosts = [host("a", 0), host("b", 0), host("c", 64 * GIB, vg=10 ** 12)]
    vms = [vm(f"a{k}", "a", GIB, disk_bytes=k * GB) for k in range(1, 6)] + [vm("b1", "b", GIB), vm("x", "a", GIB, storage=None)]
    whole = plan.evacuation_plan(hosts, vms, ["a", "b"], concurrency=2)
    assert whole["refused"] and whole["moves"]
    partial = plan.evacuation_plan(hosts, vms, ["a", "b"], concurrency=2, partial=True)
    assert partial["refused"] == [] and not partial["fits"] and partial["not_movable"][0]["vm"] == "x"
    for wave in {m["wave"] for m in partial["moves"]}:
        for source in ("a", "b"):
            assert len([m for m in partial["moves"] if m["wave"] == wave and m["source"] == source]) <= 2
    assert {m["wave"] for m in partial["moves"] if m["source"] == "a"} == {1, 2, 3}


# ---------------------------------------------------------------------------
# Properties on random clusters

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from ansible_collections.sanless.xen.tests.unit.plugins.module_utils.strategyhelpers import one_of, some_of  # noqa: E402


@st.composite
def clusters(draw):
    n = draw(st.integers(2, 6))
    names = tuple(f"h{k}" for k in range(n))
    hosts = [host(name, draw(st.integers(0, 64 * GIB)), vg=draw(one_of(None, 0, 50 * GB, 500 * GB)),
                  drained=draw(st.booleans()) if k > 0 else False, online=draw(st.booleans()) if k > 1 else True)
             for k, name in enumerate(names)]
    vms = []
    for k in range(draw(st.integers(0, 12))):
        on = draw(one_of(*names))
        storage = draw(one_of("plain", "drbd", "shared", None))
        others = tuple(n for n in names if n != on)
        restart_on = [] if storage == "plain" else (draw(some_of(others, min_size=1, max_size=2)) if storage and others else None)
        vms.append(vm(f"v{k}", on, draw(st.integers(1, 16 * GIB)), storage=storage, restart_on=restart_on,
                      disk_bytes=draw(st.integers(0, 100)) * GB if storage == "plain" else 0,
                      anti_affinity=draw(one_of(None, None, "g1", "g2"))))
    drain = draw(some_of(names, min_size=1, max_size=2))
    return hosts, vms, drain


@settings(derandomize=True, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.sampled_from(["hard", "soft"]), st.integers(1, 3))
def test_every_plan_respects_room_replicas_drained_hosts_and_groups(cluster, rule, concurrency):
    hosts, vms, drain = cluster
    result = plan.evacuation_plan(hosts, vms, drain, concurrency=concurrency, anti_affinity=rule, deadline_s=None)
    by_host = {h["name"]: h for h in hosts}
    by_vm = {v["name"]: v for v in vms}
    leaving = {v["name"] for v in vms if v["host"] in drain}
    assert {m["vm"] for m in result["moves"]} | {s["vm"] for s in result["not_movable"]} == leaving
    used = {}
    disk = {}
    for move in result["moves"]:
        target = by_host[move["target"]]
        assert target["online"] and not target["drained"] and move["target"] not in drain
        source_vm = by_vm[move["vm"]]
        if source_vm["storage"] != "plain":
            assert move["target"] in source_vm["restart_on"]
        else:
            disk[move["target"]] = disk.get(move["target"], 0) + source_vm["disk_bytes"] + (
                meta_bytes(source_vm["disk_bytes"], 1) if source_vm["disk_bytes"] else 0)
        used[move["target"]] = used.get(move["target"], 0) + domain_need_mib(source_vm["memory_mib"])
        if rule == "hard":
            assert not move["breach"]
    for name, mib in used.items():
        assert mib <= by_host[name]["memory_free_mib"]
    for name, nbytes in disk.items():
        assert by_host[name]["vg_free_bytes"] is None or nbytes <= by_host[name]["vg_free_bytes"]
    for source in drain:   # at most `concurrency` moves of one source at any time
        spans = [(m["start_s"], m["end_s"]) for m in result["moves"] if m["source"] == source]
        for start, _end in spans:
            assert sum(1 for s, e in spans if s <= start < e) <= concurrency
    assert result["fits"] == (not result["not_movable"])


def test_disk_sizes_come_from_the_lvs_the_provision_role_names():
    mib = 2 ** 20

    def dom0(free, domains, lvs):
        return {"host": {"free_memory_mib": free}, "domains": [{"name": n, "memory_mib": m} for n, m in domains],
                "vgs": [{"name": "xenvg", "free_bytes": 8 * 2 ** 30}, {"name": "fastvg", "free_bytes": 2 ** 30}],
                "lvs": [{"vg": vg, "name": name, "size_bytes": size} for vg, name, size in lvs]}
    info = {"hosta": dom0(0, [("web01", 96), ("web02", 96), ("web04", 96)],
                          [("xenvg", "web01-disk", 256 * mib), ("fastvg", "web01-data", 64 * mib),
                           ("xenvg", "web02-disk", 128 * mib), ("fastvg", "web02-disk", 32 * mib)]),
            "hostb": dom0(4096, [], [("xenvg", "web01-disk", 4 * mib)])}
    meta = {"web01": {"xen_storage_mode": "plain", "xen_disks": [{"name": "disk"}, {"name": "data"}]},
            "web02": {"xen_storage_mode": "plain", "xen_vg": "fastvg", "xen_disks": [{"name": "disk"}]},
            # no LV of that name: the inventory's xen_disk_bytes counts, and a note says so
            "web04": {"xen_storage_mode": "plain", "xen_disks": [{"name": "disk"}], "xen_disk_bytes": 5 * mib}}
    _hosts, vms, notes = plan.inputs_from_xen_info(info, meta)
    by_vm = {v["name"]: v for v in vms}
    # on the VM's own dom0 (hostb's stale web01-disk does not count), in any VG, its xen_vg first
    assert by_vm["web01"]["disks"] == [256 * mib, 64 * mib]
    assert by_vm["web02"]["disks"] == [32 * mib]
    assert "disks" not in by_vm["web04"] and by_vm["web04"]["disk_bytes"] == 5 * mib
    assert any("web04" in n and "web04-disk" in n and "not found on hosta" in n for n in notes)
    result = plan.evacuation_plan(*plan.inputs_from_xen_info(info, meta)[:2], "hosta")
    assert {m["vm"]: m["disk_bytes"] for m in result["moves"]} == {"web01": 320 * mib, "web02": 32 * mib,
                                                                   "web04": 5 * mib}
