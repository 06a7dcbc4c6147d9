# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What tests/bench/migrate_overhead computes from what it read in the lab, without the lab:
the cases it runs, per-step wall times out of the two dom0s' migration journals, the guest's
stalls (each with labhelpers.stall_during, the one stall measure of the bench and the e2e
tests), the fixed overhead and the issue 18 acceptance. Unit-tested in
tests/unit/project/test_bench_migrate_overhead.py."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO / "lab", REPO / "tests" / "e2e"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
from labhelpers import stall_during  # noqa: E402  (the e2e tests measure stalls the same way)

# The steps of one migrate.yml run, in order, and the journal marks between them (see step_times).
STEPS = ("preflight", "prepare", "sync", "promote", "handover", "xl_migrate", "finish", "report")
# the names the disks of a case get, in order (the first is the guest's boot disk, xvda)
DISK_NAMES = ("disk", "data", "data2", "data3")
# Acceptance of issue 18
FIXED_OVERHEAD_TOLERANCE = 0.10
MAX_FLOOR_RATIO = 1.5
MAX_PAUSE_RATIO = 1.5
# issue 11's lines, as the first bench measured them: migrate.yml against the whole raw sequence
# (its own swaps, sync, xl migrate, cleanup), and the source swap's stall against the bare pause's
MAX_SEQUENCE_RATIO = 1.20
MAX_SOURCE_SWAP_RATIO = 1.0


def parse_sizes(text):
    """``"256,1024"`` -> [256, 1024]: disk sizes in MiB, each a positive whole number, no repeats."""
    sizes = []
    for word in str(text).split(","):
        word = word.strip()
        if not word.isdigit() or int(word) <= 0:
            raise ValueError("--disk-mib takes sizes in MiB separated by commas (256,1024), got %r" % (text,))
        if int(word) in sizes:
            raise ValueError("--disk-mib names %s twice" % word)
        sizes.append(int(word))
    return sizes


def cases(sizes, two_disk_mib=None):
    """The guests to measure: one disk of each size, then (two_disk_mib) one with two disks of that
    size. Each: name (for the report) and disks, [(LV name suffix, MiB)] in the guest's order."""
    found = [{"name": "1x%dMiB" % size, "disks": [(DISK_NAMES[0], size)]} for size in sizes]
    if two_disk_mib:
        found.append({"name": "2x%dMiB" % two_disk_mib, "disks": [(DISK_NAMES[0], two_disk_mib),
                                                                  (DISK_NAMES[1], two_disk_mib)]})
    return found


def clock_offset(before, remote, after):
    """A dom0's clock minus the controller's: ``remote`` read on the dom0 between ``before`` and
    ``after`` on the controller (error at most half the round trip)."""
    return remote - (before + after) / 2.0


def _first(log, event):
    return next((entry["at"] for entry in log if entry["event"] == event), None)


def _last(log, event):
    found = [entry for entry in log if entry["event"] == event]
    return found[-1] if found else None


def _earliest(*values):
    values = [v for v in values if v is not None]
    return min(values) if values else None


def _latest(*values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def step_marks(source_log, target_log, start, end):
    """The boundaries of STEPS on the dom0s' clock, from the closed journals (history/VM-ID.json
    "log") of the source and the target and the playbook's start and end (already on that clock):
    preflight until either host begins prepare (journal step:prepare), prepare until either begins
    promote, sync until both journaled synced (UpToDate/UpToDate seen), promote until either begins
    finish, handover (the source verifies the target's copy, sends the config) until xl migrate
    starts, xl_migrate until it returned, finish until both closed their journal, report until the
    playbook ended. A mark missing from the journals (a resumed or failed run) is None."""
    migrated = _last(source_log, "migrated")
    started = _last(source_log, "migrate-started")
    return [start,
            _earliest(_first(source_log, "step:prepare"), _first(target_log, "step:prepare")),
            _earliest(_first(source_log, "step:promote"), _first(target_log, "step:promote")),
            _latest(_first(source_log, "synced"), _first(target_log, "synced")),
            _earliest(_first(source_log, "step:finish"), _first(target_log, "step:finish")),
            started["at"] if started else None,
            migrated["at"] if migrated else None,
            _latest(_first(source_log, "finished"), _first(target_log, "finished")),
            end]


def step_times(source_log, target_log, start, end):
    """{step: seconds} for STEPS (step_marks); a step whose bounds are not both known is None.
    The known ones add up to end - start when every mark is known."""
    marks = step_marks(source_log, target_log, start, end)
    times = {}
    for index, step in enumerate(STEPS):
        begin, until = marks[index], marks[index + 1]
        times[step] = round(until - begin, 1) if begin is not None and until is not None else None
    return times


def engine_stalls(beats, source_log, target_log):
    """The guest's stalls in one migrate.yml run (labhelpers.stall_during over each window, dom0
    clock): source_swap (its LVs onto DRBD under xl pause, journal swapped-to-drbd), xl_migrate
    (xl's own stop-and-copy: the longest stall while xl migrate ran), target_swap_back (the
    target's LVs back onto their extents under xl pause, after the guest arrived: what came
    before the arrival is xl migrate's), whole (the longest stall from the first prepare to the
    last journal closed). Each None when its window is not in the journals."""
    marks = step_marks(source_log, target_log, None, None)
    swap = _last(source_log, "swapped-to-drbd")
    started, migrated = _last(source_log, "migrate-started"), _last(source_log, "migrated")
    restored = _last(target_log, "tables-restored")
    return {
        "source_swap": stall_during(beats, *swap["pause_window"]) if swap else None,
        "xl_migrate": stall_during(beats, started["at"], migrated["at"]) if started and migrated else None,
        "target_swap_back": (stall_during(beats, *restored["pause_window"], not_before=migrated["at"] if migrated else None)
                             if restored and restored.get("pause_window") else None),
        "whole": stall_during(beats, marks[1], marks[7]) if marks[1] is not None and marks[7] is not None else None,
        "source_swap_pause_ms": swap.get("pause_ms") if swap else None,
        "target_swap_back_pause_ms": restored.get("pause_ms") if restored else None,
    }


def floor_stalls(beats, windows):
    """The same stalls for the floor (the raw sequence), from the windows it took with date on
    the dom0s: source_swap, xl_migrate (a bare xl migrate of the guest on storage both hosts
    reach: DRBD with two primaries), target_swap_back and whole."""
    return {
        "source_swap": stall_during(beats, *windows["source_swap"]),
        "xl_migrate": stall_during(beats, *windows["xl_migrate"]),
        "target_swap_back": stall_during(beats, *windows["target_swap_back"], not_before=windows["xl_migrate"][1]),
        "whole": stall_during(beats, *windows["whole"]),
    }


def overhead(playbook_s, floor):
    """migrate.yml against the floor of the same round (floor: sync_s and migrate_s of the raw
    sequence): fixed_s = playbook_s - (sync_s + migrate_s), ratio = playbook_s / that."""
    base = floor["sync_s"] + floor["migrate_s"]
    return {"floor_s": round(base, 1), "fixed_s": round(playbook_s - base, 1),
            "ratio": round(playbook_s / base, 2) if base > 0 else None}


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def acceptance(results):
    """Issue 18's acceptance over the results of a run: a list of (passed, line). ``results``:
    per case, {"case": cases() item, "bare_pause": stall, "rounds": [{"overhead": overhead(),
    "engine_stalls": engine_stalls()}]}. The fixed overhead of the largest one-disk case is
    within 10 % of the smallest one's (means over the rounds), migrate.yml / floor <= 1.5 at the
    largest, and every swap's stall (source and target, worst round) <= 1.5 x the bare pause's."""
    checks = []
    single = sorted((r for r in results if len(r["case"]["disks"]) == 1), key=lambda r: r["case"]["disks"][0][1])
    if len(single) >= 2:
        small, large = single[0], single[-1]
        f_small = _mean(x["overhead"]["fixed_s"] for x in small["rounds"])
        f_large = _mean(x["overhead"]["fixed_s"] for x in large["rounds"])
        ok = f_small is not None and f_large is not None and abs(f_large - f_small) <= FIXED_OVERHEAD_TOLERANCE * abs(f_small)
        checks.append((ok, "fixed overhead %s %.1f s vs %s %.1f s: %s (within %d%%)" % (
            large["case"]["name"], f_large if f_large is not None else float("nan"), small["case"]["name"],
            f_small if f_small is not None else float("nan"), "PASS" if ok else "FAIL",
            FIXED_OVERHEAD_TOLERANCE * 100)))
    if single:
        large = single[-1]
        ratio = _mean(x["overhead"]["ratio"] for x in large["rounds"])
        ok = ratio is not None and ratio <= MAX_FLOOR_RATIO
        checks.append((ok, "migrate.yml / (raw sync + raw xl migrate) at %s %.2f: %s (<= %.1f)" % (
            large["case"]["name"], ratio if ratio is not None else float("nan"), "PASS" if ok else "FAIL",
            MAX_FLOOR_RATIO)))
    for result in results:
        bare = result["bare_pause"]
        for swap in ("source_swap", "target_swap_back"):
            worst = _latest(*(x["engine_stalls"][swap] for x in result["rounds"]))
            ok = worst is not None and bare is not None and worst <= MAX_PAUSE_RATIO * max(bare, 0.01)
            checks.append((ok, "%s %s stall %s s vs bare pause %s s: %s (<= %.1fx)" % (
                result["case"]["name"], swap, _fmt(worst), _fmt(bare), "PASS" if ok else "FAIL", MAX_PAUSE_RATIO)))
    return checks


def engine_acceptance(results):
    """Issue 11's acceptance (not worse than the first bench): over all rounds of every case,
    sum(migrate.yml) / sum(raw sequence total) <= 1.20, and per case the source swap's stall
    (worst round) <= the bare pause's (median). A list of (passed, line)."""
    rounds = [x for r in results for x in r["rounds"]]
    b_total = sum(x["b_s"] for x in rounds)
    a_total = sum(x["floor"]["total_s"] for x in rounds)
    ratio = b_total / a_total if a_total > 0 else None
    ok = ratio is not None and ratio <= MAX_SEQUENCE_RATIO
    checks = [(ok, "overhead_ratio (sum migrate.yml %.1f s / sum raw sequence total %.1f s) %s: %s (<= %.2f)" % (
        b_total, a_total, _fmt(ratio), "PASS" if ok else "FAIL", MAX_SEQUENCE_RATIO))]
    for result in results:
        bare = result["bare_pause"]
        worst = _latest(*(x["engine_stalls"]["source_swap"] for x in result["rounds"]))
        ratio = worst / max(bare, 0.01) if worst is not None and bare is not None else None
        ok = ratio is not None and ratio <= MAX_SOURCE_SWAP_RATIO
        checks.append((ok, "%s pause_ratio (source swap stall %s s / bare pause %s s) %s: %s (<= %.1f)" % (
            result["case"]["name"], _fmt(worst), _fmt(bare), _fmt(ratio), "PASS" if ok else "FAIL",
            MAX_SOURCE_SWAP_RATIO)))
    return checks


def _fmt(value):
    return "n/a" if value is None else "%.2f" % value


def count_module_calls(stdout, controller_tasks):
    """Module runs per host in an ansible-playbook output: results of tasks that run on a dom0
    (not the controller-side tasks named in controller_tasks), plus one per sync progress line
    that follows a module call (not the lines the controller read from /proc/drbd)."""
    calls = {}
    current_remote = False
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            current_remote = not any(name in line for name in controller_tasks)
            continue
        for prefix in ("ok: [", "changed: ["):
            if line.startswith(prefix) and current_remote:
                host = line[len(prefix):].split("]", 1)[0]
                calls[host] = calls.get(host, 0) + 1
        if line.startswith("  [") and "] sync " in line and not line.endswith("(read from /proc/drbd)"):
            host = line[3:].split("]", 1)[0]
            calls[host] = calls.get(host, 0) + 1
    return calls
