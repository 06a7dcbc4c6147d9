"""Host evacuation (issue 14) in the lab, N=3 (make lab-up N=3, or SANLESS_LAB_HOSTS=3 for the session fixture).

hosta runs two small busybox guests of the lab inventory: web01 (plain LVM, 256 MiB disk) and web03 (storage mode
drbd, peer hostb, minor 100). playbooks/evacuate.yml -e host=hosta empties hosta with the migrate role: web03 can
only go to its peer hostb, web01 to hostb or hostc. Each VM then runs on exactly one other dom0, the guest's data
checksum (its own check on the console, and its disk read from dom0 while paused) is unchanged, and hosta carries
the drained mark (xen_info reports it) until playbooks/undrain.yml.

Plan order: the longest move first (web01 copies 96 MiB of memory and 256 MiB of disk, web03 only its memory).

make test (2 dom0s) runs CI's small evacuation: hosta runs only web03, evacuate.yml -e host=hosta moves it to its
peer hostb, hosta is drained until undrain.yml. It is also make test's DRBD-backed VM (its provision and its move
with the migrate role: test_migrate_drbd.py's migrate.yml run is long); make test's plain VM moves in
test_migrate.py. The three-dom0 evacuation of two VMs is marked long, the fault scenarios faults
(make test-faults).
"""
import json
import re
import sys
import time

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.conventions import drained_mark_path
from labhelpers import leftovers, remove_vm, start_playbook, tail, wait_for, where_runs
from test_migrate import assert_clean, assert_data, kill_when
from test_migrate_drbd import (MINOR, PATTERN_MIB, assert_moved_to_its_secondary, drbd_line, provisioned_on_its_home,
                               remove_drbd_vm)

PLAIN, DRBD = "web01", "web03"
TWO_DISKS = "web02"
HOME, PEER = "hosta", "hostb"


def flat(output):
    return " ".join(output.split())


def drained(lab, host):
    """What xen_info on host reports as its drained mark (None: not drained)."""
    out = lab.ansible(host, "sanless.xen.xen_info").stdout
    return json.loads(out.split(" => ", 1)[1])["drained"]


def remove_marks(lab):
    for host in lab.hosts:
        lab.run(host, ["rm", "-f", drained_mark_path()])


def remove_all(lab):
    remove_vm(lab, PLAIN)
    remove_vm(lab, TWO_DISKS)
    remove_drbd_vm(lab)
    remove_marks(lab)


def evacuate(lab, *extra, check=True, env=None):
    return lab.playbook("playbooks/evacuate.yml", "-e", "host=%s" % HOME, *extra, check=check,
                        env=dict({"ANSIBLE_SHOW_CUSTOM_STATS": "1"}, **(env or {})))


def assert_drbd_data(lab, host, expected):
    """web03 on host: its DRBD device read from dom0 (guest paused) and the guest's own check after the move."""
    lab.run(host, ["xl", "pause", DRBD])
    try:
        assert lab.lv_sha256(host, "/dev/drbd%d" % MINOR, PATTERN_MIB) == expected
    finally:
        lab.run(host, ["xl", "unpause", DRBD])
    text = lab.wait_console(host, DRBD, lambda t: len(lab.checksums(t)) >= 2, timeout=180)
    assert lab.checksums(text)[-1] == expected


def provisioned_on_hosta(lab, vm, *extra):
    """Provision vm (extra: ansible-playbook arguments) and return the checksum its guest prints on hosta."""
    lab.playbook("playbooks/provision.yml", *(extra + ("-e", "vm=%s" % vm)))
    assert where_runs(lab, vm) == [HOME], where_runs(lab, vm)
    text = lab.last_boot(lab.wait_console(HOME, vm, lambda t: lab.checksums(lab.last_boot(t)), timeout=300))
    return lab.checksums(text)[0]


def moved_away(lab, vm, expected):
    """The plain VM vm runs on exactly one dom0 other than hosta, nothing of its move left, its data unchanged;
    returns that dom0."""
    runs_on = where_runs(lab, vm)
    assert len(runs_on) == 1 and runs_on[0] != HOME, runs_on
    assert_clean(lab, vm, runs_on[0])
    assert_data(lab, runs_on[0], vm, expected)
    return runs_on[0]


def assert_evacuated(lab, guests):
    """Both VMs left hosta, each runs on exactly one other dom0 with its data; web03 on its peer."""
    assert lab.xl_domains(HOME) == {"Domain-0"}, lab.xl_domains(HOME)
    assert where_runs(lab, DRBD) == [PEER]
    target = moved_away(lab, PLAIN, guests[PLAIN])
    for host in lab.hosts:
        assert leftovers(lab, host, DRBD) == [], leftovers(lab, host, DRBD)
    assert re.search(r"ro:Primary/Secondary ds:UpToDate/UpToDate", drbd_line(lab, PEER)), drbd_line(lab, PEER)
    assert_drbd_data(lab, PEER, guests[DRBD])
    return target


def assert_both_home(lab, guests):
    """web01 and web03 back on hosta: nothing of the moves left, web03 primary there and in sync, data unchanged."""
    assert where_runs(lab, PLAIN) == [HOME] and where_runs(lab, DRBD) == [HOME]
    assert_clean(lab, PLAIN, HOME)
    assert_data(lab, HOME, PLAIN, guests[PLAIN])
    for host in lab.hosts:
        assert leftovers(lab, host, DRBD) == [], leftovers(lab, host, DRBD)
    assert re.search(r"ro:Primary/Secondary ds:UpToDate/UpToDate", drbd_line(lab, HOME)), drbd_line(lab, HOME)
    assert_drbd_data(lab, HOME, guests[DRBD])


@pytest.fixture
def on_hosta(lab):
    """web01 and web03 running on hosta (and nothing else there), their checksums; all removed afterwards."""
    if len(lab.hosts) < 3:
        pytest.skip("needs three dom0s: SANLESS_LAB_HOSTS=3 (make lab-up N=3)")
    (lab.repo / "artifacts").mkdir(exist_ok=True)
    remove_all(lab)
    guests = dict((vm, provisioned_on_hosta(lab, vm)) for vm in (PLAIN, DRBD))
    assert lab.xl_domains(HOME) == {"Domain-0", PLAIN, DRBD}, "hosta must run only %s and %s: %s" % (
        PLAIN, DRBD, lab.xl_domains(HOME))
    yield guests
    remove_all(lab)


@pytest.fixture
def nothing_on_hosta(lab):
    """No VM of the tests on any dom0 before and after."""
    (lab.repo / "artifacts").mkdir(exist_ok=True)
    remove_all(lab)
    yield
    remove_all(lab)


# a user's hook: writes its argv and what the evacuation told it (SANLESS_XEN_*) as JSON to its first argument
HOOK_RECORDER = """import json, os, sys, time
with open(sys.argv[1], "w") as handle:
    json.dump({"argv": sys.argv[2:], "at": time.time(),
               "env": dict((k, v) for k, v in os.environ.items() if k.startswith("SANLESS_XEN_"))}, handle)
"""


def hooks_overlay(tmp_path, vm):
    """An inventory overlay giving vm a pre-move and a post-move command hook (run on the controller) that record
    what they were told in tmp_path/pre.json and post.json."""
    recorder = tmp_path / "hook_recorder.py"
    recorder.write_text(HOOK_RECORDER)
    hooks = {"pre": [{"name": "drain lb", "command": [sys.executable, str(recorder), str(tmp_path / "pre.json"), "$HOME"]}],
             "post": [{"name": "enable lb", "command": [sys.executable, str(recorder), str(tmp_path / "post.json")]}]}
    overlay = tmp_path / "hooks.yml"
    overlay.write_text(json.dumps({"all": {"children": {"xen_vms": {"hosts": {vm: {"xen_migrate_hooks": hooks}}}}}}))
    return overlay


def test_evacuate_a_dom0_with_its_drbd_vm_then_undrain(lab, nothing_on_hosta, tmp_path):
    """CI's small evacuation, and make test's DRBD-backed VM: web03 (storage mode drbd) provisioned on hosta (a
    second run changes nothing), the plan in check mode, the move to its secondary hostb by the migrate role between
    the VM's pre-move and post-move hooks, the drained mark, the report (table, stats, JSON file), undrain."""
    expected = provisioned_on_its_home(lab)
    assert lab.xl_domains(HOME) == {"Domain-0", DRBD}, "hosta must run only %s: %s" % (DRBD, lab.xl_domains(HOME))
    overlay = hooks_overlay(tmp_path, DRBD)
    proc = evacuate(lab, "--check", "-i", str(overlay))
    out = flat(proc.stdout)
    assert "Evacuating hosta: 1 move(s)" in out and ": fits" in out, proc.stdout[-3000:]
    assert "1. %s (drbd) hosta -> %s" % (DRBD, PEER) in out, out[-3000:]
    assert drained(lab, HOME) is None and where_runs(lab, DRBD) == [HOME]
    assert not (tmp_path / "pre.json").exists(), "check mode runs no hook"
    report_file = tmp_path / "report.json"
    started = time.time()
    proc = evacuate(lab, "-i", str(overlay), "-e", "report_file=%s" % report_file)
    ended = time.time()
    out = flat(proc.stdout)
    assert lab.xl_domains(HOME) == {"Domain-0"}, lab.xl_domains(HOME)
    assert_moved_to_its_secondary(lab, expected)
    mark = drained(lab, HOME)
    assert mark and mark["by"] == "evacuate" and mark["reason"] == "evacuate", mark
    assert re.search(r"%s\s+hosta\s+%s\s+moved" % (DRBD, PEER), out), out[-3000:]
    assert re.search(r"sanless_xen_evacuation\W.*\W\"?complete\"?: true", out), out[-3000:]
    # the hooks ran once each, in order around the move, told which VM went where ($HOME not expanded)
    pre, post = (json.loads((tmp_path / name).read_text()) for name in ("pre.json", "post.json"))
    told = {"SANLESS_XEN_VM": DRBD, "SANLESS_XEN_SOURCE": HOME, "SANLESS_XEN_TARGET": PEER}
    assert pre["env"] == dict(told, SANLESS_XEN_HOOK="pre", SANLESS_XEN_RESULT="") and pre["argv"] == ["$HOME"], pre
    assert post["env"] == dict(told, SANLESS_XEN_HOOK="post", SANLESS_XEN_RESULT="moved"), post
    # the move ran between them: at least its xl migrate, as the report measured it
    report = json.loads(report_file.read_text())
    assert (report["action"], report["complete"], report["hosts"]) == ("evacuate", True, [HOME]), report
    (row,) = report["rows"]
    assert (row["vm"], row["source"], row["target"], row["result"], row["hook_failed"]) == (
        DRBD, HOME, PEER, "moved", None), row
    assert row["xl_migrate_seconds"] > 0 and started < pre["at"] < post["at"] - row["xl_migrate_seconds"] < ended, (
        pre["at"], post["at"], row)
    lab.playbook("playbooks/undrain.yml", "-e", "host=%s" % HOME)
    assert drained(lab, HOME) is None
    assert where_runs(lab, DRBD) == [PEER]


@pytest.fixture
def three_on_hosta(lab, on_hosta, tmp_path):
    """on_hosta and web02 (plain, two disks of 128 MiB; home hostb in the inventory, provisioned on hosta through an
    inventory overlay); yields (checksums, overlay); web02 removed afterwards."""
    overlay = tmp_path / "web02-on-hosta.yml"
    overlay.write_text("all:\n  children:\n    xen_vms:\n      hosts:\n        %s: {xen_home: %s}\n" % (TWO_DISKS, HOME))
    remove_vm(lab, TWO_DISKS)
    # web03's first full sync done first: under it, web02's xl create on the busy TCG hosta once outlasted libxl's
    # timeout for the block hotplug script ("killing execution of /etc/xen/scripts/block add because of timeout")
    wait_for(lambda: "ds:UpToDate/UpToDate" in drbd_line(lab, HOME), 600, "web03's DRBD in sync on hosta")
    yield dict(on_hosta, **{TWO_DISKS: provisioned_on_hosta(lab, TWO_DISKS, "-i", str(overlay))}), overlay
    remove_vm(lab, TWO_DISKS)


@pytest.mark.long
def test_evacuate_hosta_then_undrain(lab, three_on_hosta):
    """Three VMs of two storage modes and three sizes (web01 one disk of 256 MiB, web02 two of 128 MiB, web03 drbd)
    on three dom0s."""
    guests, overlay = three_on_hosta
    # check mode: the plan, and nothing changes
    proc = evacuate(lab, "--check", "-i", str(overlay))
    out = flat(proc.stdout)
    assert "Evacuating hosta: 3 move(s)" in out and ": fits" in out, proc.stdout[-3000:]
    assert re.search(r"[12]\. %s \(plain\) hosta -> host[bc]" % PLAIN, out), out[-3000:]
    assert re.search(r"[12]\. %s \(plain\) hosta -> host[bc]" % TWO_DISKS, out), out[-3000:]
    assert "3. %s (drbd) hosta -> %s" % (DRBD, PEER) in out, out[-3000:]
    assert drained(lab, HOME) is None
    assert all(where_runs(lab, vm) == [HOME] for vm in guests)

    proc = evacuate(lab, "-i", str(overlay))
    out = flat(proc.stdout)
    target = assert_evacuated(lab, guests)
    two_on = moved_away(lab, TWO_DISKS, guests[TWO_DISKS])
    assert re.search(r"%s\s+hosta\s+%s\s+moved" % (TWO_DISKS, two_on), out), out[-3000:]
    mark = drained(lab, HOME)
    assert mark and mark["by"] == "evacuate" and mark["reason"] == "evacuate", mark
    for host in lab.hosts:
        if host != HOME:
            assert drained(lab, host) is None, host
    # the report: all moved, and the artifacts for AWX
    assert re.search(r"%s\s+hosta\s+%s\s+moved" % (PLAIN, target), out), out[-3000:]
    assert re.search(r"%s\s+hosta\s+%s\s+moved" % (DRBD, PEER), out), out[-3000:]
    # CUSTOM STATS as the callback prints them: JSON, or YAML with callback_result_format=yaml (the repo's ansible.cfg)
    assert re.search(r"sanless_xen_evacuation\W.*\W\"?complete\"?: true", out), out[-3000:]

    # a rerun finds nothing left to move and changes nothing
    proc = evacuate(lab, "-i", str(overlay))
    assert "Evacuating hosta: 0 move(s)" in flat(proc.stdout), proc.stdout[-3000:]
    assert where_runs(lab, PLAIN) == [target] and where_runs(lab, DRBD) == [PEER]

    proc = lab.playbook("playbooks/undrain.yml", "-i", str(overlay), "-e", "host=%s" % HOME)
    assert drained(lab, HOME) is None
    assert where_runs(lab, PLAIN) == [target] and where_runs(lab, DRBD) == [PEER]


@pytest.mark.faults
def test_killed_evacuation_is_finished_by_the_rerun(lab, on_hosta):
    # killed during the first move (web01's disk routed through DRBD, the sync under way)
    proc = start_playbook(lab, "playbooks/evacuate.yml", "-e", "host=%s" % HOME)
    kill_when(lab, proc, HOME, PLAIN, "swapped-to-drbd")
    print("\nkilled during the move of %s: %s" % (PLAIN, tail(proc, 1500)))
    assert drained(lab, HOME), "the drained mark comes before any move"
    assert where_runs(lab, DRBD) == [HOME]
    # the same command again: it resumes web01 from its journal and moves web03
    proc = evacuate(lab)
    assert "taking over the journal" in proc.stdout or "resuming" in proc.stdout, proc.stdout[-3000:]
    assert_evacuated(lab, on_hosta)
    assert drained(lab, HOME)


@pytest.mark.faults
def test_a_deadline_too_short_for_the_last_vm_defers_it(lab, on_hosta):
    # estimates at 1000 Mbit/s + 60 s each: web01 about 63 s (first, the longest), web03 about 61 s: with a
    # deadline of 100 s, web03 would end at about 124 s
    proc = evacuate(lab, "-e", "deadline_s=100", "-e", "link_mbit_s=1000", "-e", "per_vm_overhead_s=60", check=False)
    out = flat(proc.stdout)
    assert proc.returncode != 0, out[-3000:]
    assert re.search(r"deferred: %s hosta -> %s: would end at [0-9.]+ s, after the deadline \(100(\.0)? s\)" % (DRBD, PEER),
                     out), out[-3000:]
    assert re.search(r"%s\s+hosta\s+%s\s+deferred" % (DRBD, PEER), out), out[-3000:]
    assert "hosta not emptied: %s" % DRBD in out, out[-3000:]
    moved_away(lab, PLAIN, on_hosta[PLAIN])
    assert where_runs(lab, DRBD) == [HOME]
    assert drained(lab, HOME)


@pytest.mark.faults
def test_an_evacuation_that_breaks_ha_tolerate_is_refused_before_any_move(lab, on_hosta):
    # web03's other copy is on hosta: once hosta is drained, a failure of hostb loses it (tolerance 0)
    proc = evacuate(lab, "-e", "ha_tolerate=1", check=False)
    out = flat(proc.stdout)
    assert proc.returncode != 0
    assert "evacuation of hosta refused, nothing has changed" in out, out[-3000:]
    assert re.search(r"would tolerate only 0 host failure\(s\) \(now \d+\), xen_ha_tolerate is 1", out), out[-3000:]
    assert drained(lab, HOME) is None
    assert where_runs(lab, PLAIN) == [HOME] and where_runs(lab, DRBD) == [HOME]
    for host in lab.hosts:
        for vm in (PLAIN, DRBD):
            assert leftovers(lab, host, vm) == [], (host, vm, leftovers(lab, host, vm))


@pytest.mark.faults
def test_an_anti_affinity_group_lands_on_different_hosts(lab, on_hosta, tmp_path):
    # both VMs in one group, by a second inventory source (host variables merge): web03 can only go to hostb,
    # so web01 must go to hostc, wherever the most free memory is
    group = tmp_path / "group.yml"
    group.write_text("all:\n  children:\n    xen_vms:\n      hosts:\n"
                     "        %s: {xen_anti_affinity: evacuation-test}\n"
                     "        %s: {xen_anti_affinity: evacuation-test}\n" % (PLAIN, DRBD))
    proc = evacuate(lab, "-i", str(group))
    assert "group evacuation-test" in flat(proc.stdout), proc.stdout[-3000:]
    target = assert_evacuated(lab, on_hosta)
    assert target != PEER and target in lab.hosts


@pytest.mark.faults
def test_a_failing_pre_hook_skips_its_vm_the_rerun_moves_it_and_undrain_brings_both_home(lab, on_hosta, tmp_path):
    """Scenarios 8 and 10: web01's pre-move hook fails (its load balancer refuses), so web01 stays on hosta, reported
    skipped with the hook's reason, while web03 moves and its post-move hook is told so; the job fails after the
    report. The rerun without the failing hook moves web01. undrain.yml -e move_home=yes brings both home."""
    recorder = tmp_path / "hook_recorder.py"
    recorder.write_text(HOOK_RECORDER)
    hooks = {PLAIN: {"pre": [{"name": "drain lb", "command": [sys.executable, "-c", "import sys; sys.exit('lb01: pool busy')"]}],
                     "post": [{"command": [sys.executable, str(recorder), str(tmp_path / "post-web01.json")]}]},
             DRBD: {"post": [{"command": [sys.executable, str(recorder), str(tmp_path / "post-web03.json")]}]}}
    overlay = tmp_path / "hooks.yml"
    overlay.write_text(json.dumps({"all": {"children": {"xen_vms": {"hosts": dict(
        (vm, {"xen_migrate_hooks": vm_hooks}) for vm, vm_hooks in hooks.items())}}}}))
    report_file = tmp_path / "report.json"
    proc = evacuate(lab, "-i", str(overlay), "-e", "report_file=%s" % report_file, check=False)
    out = flat(proc.stdout)
    assert proc.returncode != 0, out[-3000:]
    assert "hosta not emptied: %s" % PLAIN in out, out[-3000:]
    rows = dict((row["vm"], row) for row in json.loads(report_file.read_text())["rows"])
    assert rows[PLAIN]["result"] == "skipped" and rows[PLAIN]["reason"] == (
        "not moved: drain lb failed: rc 1, lb01: pool busy"), rows[PLAIN]
    assert (rows[DRBD]["result"], rows[DRBD]["target"]) == ("moved", PEER), rows[DRBD]
    # web01 untouched: still on hosta, nothing of a migration begun, its data as it was; no post hook for it
    assert where_runs(lab, PLAIN) == [HOME]
    assert_clean(lab, PLAIN, HOME)
    assert not (tmp_path / "post-web01.json").exists()
    assert json.loads((tmp_path / "post-web03.json").read_text())["env"] == {
        "SANLESS_XEN_HOOK": "post", "SANLESS_XEN_VM": DRBD, "SANLESS_XEN_SOURCE": HOME, "SANLESS_XEN_TARGET": PEER,
        "SANLESS_XEN_RESULT": "moved"}
    assert where_runs(lab, DRBD) == [PEER] and drained(lab, HOME)

    # the load balancer is fine again (no overlay): the rerun moves web01
    proc = evacuate(lab)
    assert "Evacuating hosta: 1 move(s)" in flat(proc.stdout), proc.stdout[-3000:]
    assert_evacuated(lab, on_hosta)

    # undrain with the moves home: both back on hosta, the DRBD VM primary there again, data unchanged
    proc = lab.playbook("playbooks/undrain.yml", "-e", "host=%s" % HOME, "-e", "move_home=yes", "-e",
                        "report_file=%s" % report_file)
    assert drained(lab, HOME) is None
    report = json.loads(report_file.read_text())
    assert (report["action"], report["complete"]) == ("undrain", True), report
    rows = dict((row["vm"], row) for row in report["rows"])
    assert sorted(rows) == [PLAIN, DRBD], report["rows"]
    assert (rows[DRBD]["source"], rows[DRBD]["target"], rows[DRBD]["result"]) == (PEER, HOME, "moved"), rows[DRBD]
    assert rows[PLAIN]["source"] != HOME and (rows[PLAIN]["target"], rows[PLAIN]["result"]) == (HOME, "moved"), rows
    assert_both_home(lab, on_hosta)


MAINTENANCE_TASKS = """---
- name: What runs on the dom0 under maintenance
  ansible.builtin.command:
    argv: [xl, list]
  register: unit_maintenance_xl
  changed_when: false

- name: Leave the maintenance's mark, with what ran then
  ansible.builtin.copy:
    dest: /root/sanless-maintenance.txt
    content: "{{ unit_maintenance_xl.stdout }}\\n"
    mode: "0644"
"""


@pytest.mark.long
def test_nightly_empties_the_flagged_dom0_runs_its_maintenance_and_brings_its_vms_home(lab, on_hosta, tmp_path):
    """Scenario 11 (passed at stop 44 in a 3-dom0 lab, 939 s call): hosta flagged xen_maintenance in an inventory overlay;
    nightly.yml --check names it and changes nothing; nightly.yml evacuates it, runs the maintenance tasks there
    while it is empty (they record xl list), returns it and moves web01 and web03 home, checksums unchanged."""
    overlay = tmp_path / "maintenance.yml"
    overlay.write_text("all:\n  children:\n    dom0:\n      hosts:\n        %s: {xen_maintenance: true}\n" % HOME)
    tasks = tmp_path / "maintenance-tasks.yml"
    tasks.write_text(MAINTENANCE_TASKS)
    lab.run(HOME, ["rm", "-f", "/root/sanless-maintenance.txt"])
    try:
        proc = lab.playbook("playbooks/nightly.yml", "-i", str(overlay), "--check")
        assert "maintenance tonight: %s" % HOME in flat(proc.stdout), proc.stdout[-3000:]
        assert drained(lab, HOME) is None and where_runs(lab, PLAIN) == [HOME] and where_runs(lab, DRBD) == [HOME]
        proc = lab.playbook("playbooks/nightly.yml", "-i", str(overlay), "-e", "maintenance_tasks=%s" % tasks)
        seen = lab.run(HOME, ["cat", "/root/sanless-maintenance.txt"]).stdout
        assert "Domain-0" in seen and PLAIN not in seen and DRBD not in seen, seen
        assert drained(lab, HOME) is None
        assert_both_home(lab, on_hosta)
    finally:
        lab.run(HOME, ["rm", "-f", "/root/sanless-maintenance.txt"])
