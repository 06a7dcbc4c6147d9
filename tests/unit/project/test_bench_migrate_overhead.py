# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The computations of tests/bench/migrate_overhead (tests/bench/migrate_overhead_calc.py), without the lab.

The journal logs below are hand-written in the shape HostSide writes them (livemigrate.Journal.mark: event,
at, and the event's details), not recordings; the heartbeats are (number, epoch, uptime) triples as
labhelpers.heartbeats_full returns them."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import migrate_overhead_calc as calc  # noqa: E402


def ev(event, at, **info):
    return dict(info, event=event, at=at)


# a migrate.yml run on the source's clock: started at 1000, ended at 1100
SOURCE_LOG = [ev("step:prepare", 1010.0), ev("swapped-to-drbd", 1012.0, pause_ms=500, pause_window=[1012.0, 1012.5]),
              ev("step:promote", 1020.0), ev("synced", 1050.0), ev("two-primaries:sl-bench01-0", 1050.2),
              ev("step:finish", 1055.0), ev("target-verified", 1056.0), ev("migrate-started", 1058.0),
              ev("migrated", 1080.0, seconds=22.0), ev("tables-restored", 1081.0, pause_ms=10, pause_window=[1081.0, 1081.01]),
              ev("finished", 1090.0)]
TARGET_LOG = [ev("step:prepare", 1011.0), ev("step:promote", 1021.0), ev("synced", 1051.0), ev("step:finish", 1055.5),
              ev("arrived", 1080.5), ev("tables-restored", 1082.0, pause_ms=1000, pause_window=[1082.0, 1083.0]),
              ev("finished", 1092.0)]


def test_parse_sizes_takes_a_list_and_refuses_what_is_not_one():
    assert calc.parse_sizes("256,1024") == [256, 1024]
    assert calc.parse_sizes(" 512 ") == [512]
    for bad in ("", "0", "256,", "1G", "-5", "256,256"):
        with pytest.raises(ValueError):
            calc.parse_sizes(bad)


def test_cases_one_disk_per_size_then_two_disks():
    found = calc.cases([256, 1024], 256)
    assert [c["name"] for c in found] == ["1x256MiB", "1x1024MiB", "2x256MiB"]
    assert found[1]["disks"] == [("disk", 1024)]
    assert found[2]["disks"] == [("disk", 256), ("data", 256)]
    assert [c["name"] for c in calc.cases([256], None)] == ["1x256MiB"]


def test_clock_offset_is_the_remote_time_minus_the_midpoint():
    assert calc.clock_offset(100.0, 103.5, 101.0) == pytest.approx(3.0)
    assert calc.clock_offset(100.0, 99.0, 102.0) == pytest.approx(-2.0)


def test_step_times_follow_the_journals_and_add_up_to_the_run():
    times = calc.step_times(SOURCE_LOG, TARGET_LOG, 1000.0, 1100.0)
    assert times == {"preflight": 10.0, "prepare": 10.0, "sync": 31.0, "promote": 4.0, "handover": 3.0,
                     "xl_migrate": 22.0, "finish": 12.0, "report": 8.0}
    assert sum(times.values()) == pytest.approx(100.0)


def test_step_times_of_a_run_without_a_mark_are_unknown_there_only():
    # a resumed run whose journal has no synced (the sync finished in the killed run's promote)
    source = [e for e in SOURCE_LOG if e["event"] != "synced"]
    target = [e for e in TARGET_LOG if e["event"] != "synced"]
    times = calc.step_times(source, target, 1000.0, 1100.0)
    assert times["sync"] is None and times["promote"] is None
    assert times["prepare"] == 10.0 and times["xl_migrate"] == 22.0


def beats_with_gaps(start, end, gaps):
    """Beats every 0.1 s from start to end (epoch = uptime + 0 here), none inside each (from, to) of gaps."""
    found, number, t = [], 0, start
    while t <= end:
        if not any(a < t < b for a, b in gaps):
            number += 1
            found.append((number, float(int(t)), round(t - start + 50.0, 2)))
        t = round(t + 0.1, 2)
    return found


def test_engine_stalls_take_each_window_from_the_journal_it_belongs_to():
    # beyond the usual 0.1 s, the guest stalls 0.8 s in the source's swap, 2 s in xl migrate, 3 s right after arriving (the target's swap)
    beats = beats_with_gaps(1000.0, 1095.0, [(1012.0, 1012.9), (1070.0, 1072.1), (1082.0, 1085.1)])
    stalls = calc.engine_stalls(beats, SOURCE_LOG, TARGET_LOG)
    assert stalls["source_swap"] == pytest.approx(0.8, abs=0.05)
    assert stalls["xl_migrate"] == pytest.approx(2.0, abs=0.05)
    assert stalls["target_swap_back"] == pytest.approx(3.0, abs=0.05)
    assert stalls["whole"] == pytest.approx(3.0, abs=0.05)
    assert stalls["source_swap_pause_ms"] == 500 and stalls["target_swap_back_pause_ms"] == 1000


def test_engine_stalls_without_the_swap_events_are_unknown():
    source = [e for e in SOURCE_LOG if e["event"] != "swapped-to-drbd"]
    stalls = calc.engine_stalls(beats_with_gaps(1000.0, 1095.0, []), source, [])
    assert stalls["source_swap"] is None and stalls["target_swap_back"] is None
    assert stalls["xl_migrate"] == pytest.approx(0.0, abs=0.05)


def test_floor_stalls_use_the_windows_taken_on_the_dom0s():
    beats = beats_with_gaps(1000.0, 1100.0, [(1010.0, 1011.6), (1040.0, 1044.1)])
    windows = {"source_swap": [1010.0, 1010.5], "xl_migrate": [1030.0, 1045.0], "target_swap_back": [1046.0, 1046.5],
               "whole": [1010.0, 1046.5]}
    stalls = calc.floor_stalls(beats, windows)
    # an interval minus the usual 0.1 s
    assert stalls["source_swap"] == pytest.approx(1.5, abs=0.05)
    assert stalls["xl_migrate"] == pytest.approx(4.0, abs=0.05)
    assert stalls["target_swap_back"] == pytest.approx(0.0, abs=0.05)
    assert stalls["whole"] == pytest.approx(4.0, abs=0.05)


def test_overhead_is_the_playbook_minus_the_floor():
    assert calc.overhead(150.0, {"sync_s": 60.0, "migrate_s": 40.0}) == {"floor_s": 100.0, "fixed_s": 50.0, "ratio": 1.5}


def result(size, fixed, ratio, swap=0.5, back=0.5, bare=0.5, disks=1):
    case = calc.cases([size], size if disks == 2 else None)[disks - 1]
    return {"case": case, "bare_pause": bare,
            "rounds": [{"overhead": {"fixed_s": fixed, "ratio": ratio},
                        "engine_stalls": {"source_swap": swap, "target_swap_back": back}}]}


def test_acceptance_passes_a_flat_overhead_near_the_floor_with_short_swaps():
    checks = calc.acceptance([result(256, 30.0, 1.9), result(1024, 32.0, 1.3), result(256, 31.0, 1.8, disks=2)])
    assert all(ok for ok, _line in checks), checks
    assert len(checks) == 2 + 3 * 2


def test_acceptance_fails_what_issue_18_measured():
    # 256 MiB: ~60 s over the floor; 1 GiB: ~290 s, 2.48x the floor; swaps 8.19 s and 15.4 s against a 3.66 s pause
    checks = calc.acceptance([result(256, 60.0, 2.38, swap=2.0, back=3.0, bare=3.66),
                              result(1024, 290.0, 2.48, swap=8.19, back=15.4, bare=3.66)])
    failed = [line for ok, line in checks if not ok]
    assert len(failed) == 4, checks
    assert any("fixed overhead 1x1024MiB 290.0 s vs 1x256MiB 60.0 s: FAIL" in line for line in failed)
    assert any("2.48: FAIL" in line for line in failed)
    assert any("1x1024MiB target_swap_back stall 15.40 s" in line for line in failed)


def test_acceptance_counts_an_unmeasured_stall_as_failed():
    checks = calc.acceptance([result(256, 30.0, 1.2, back=None)])
    assert [ok for ok, _line in checks] == [True, True, False]


def test_count_module_calls_counts_dom0_results_and_sync_lines():
    out = "\n".join([
        "TASK [sanless.xen.migrate : Ask every dom0 what it knows of the VM (changes nothing)] ***",
        "ok: [hosta]", "ok: [hostb]",
        "TASK [sanless.xen.migrate : Plan the migration from the preflight] ***", "ok: [hosta]",
        "TASK [sanless.xen.migrate : Wait for the DRBD sync (progress below), allow two primaries] ***",
        "  [hostb] sync bench01: sl-bench01-0 SyncSource 40%", "  [hostb] sync bench01: sl-bench01-0 SyncSource 80%",
        # read by the controller from /proc/drbd: no module call
        "  [hostb] sync bench01: sl-bench01-0 SyncSource 90% (read from /proc/drbd)",
        "changed: [hosta]", "changed: [hostb]",
        "TASK [sanless.xen.migrate : Publish the outcome (vm, source) as job artifacts] ***", "ok: [hosta]"])
    calls = calc.count_module_calls(out, ("Plan the migration", "Publish the outcome"))
    assert calls == {"hosta": 2, "hostb": 4}


def engine_round(b_s, total_s, swap):
    return {"b_s": b_s, "floor": {"total_s": total_s}, "engine_stalls": {"source_swap": swap}}


def test_engine_acceptance_passes_what_stop_21_measured_and_fails_stop_23():
    # stop 21 (2-dom0 lab): 1.19 and a swap shorter than the bare pause; stop 23: 1.51 and 2.75 s against 1.02 s
    ok = calc.engine_acceptance([{"case": calc.cases([256])[0], "bare_pause": 1.0,
                                  "rounds": [engine_round(103.0, 87.0, 0.6), engine_round(110.0, 92.0, 0.9)]}])
    assert [passed for passed, _line in ok] == [True, True], ok
    bad = calc.engine_acceptance([{"case": calc.cases([256])[0], "bare_pause": 1.02,
                                   "rounds": [engine_round(120.0, 86.2, 2.75), engine_round(122.0, 74.4, 0.48)]}])
    assert [passed for passed, _line in bad] == [False, False], bad
    assert "overhead_ratio (sum migrate.yml 242.0 s / sum raw sequence total 160.6 s) 1.51: FAIL" in bad[0][1]
    assert "1x256MiB pause_ratio (source swap stall 2.75 s / bare pause 1.02 s) 2.70: FAIL" in bad[1][1]


def test_engine_acceptance_counts_an_unmeasured_swap_as_failed():
    checks = calc.engine_acceptance([{"case": calc.cases([256])[0], "bare_pause": None,
                                      "rounds": [engine_round(90.0, 80.0, 0.5)]}])
    assert [passed for passed, _line in checks] == [True, False]
