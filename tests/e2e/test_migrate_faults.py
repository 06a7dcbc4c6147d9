"""The migration fault matrix beyond controller kills (issue 11): a link cut and a power-off
during the sync, a power-off of the source right after xl migrate, and a power cut of the host
of a guest that writes with fsync. `make test-faults`; each ends with the guest running on
exactly one host, unpaused, with its data, and nothing left over."""
import os
import signal
import time

import pytest

import sanless_lab
from labhelpers import journal_events, leftovers, start_playbook, tail, where_runs
from test_migrate import assert_clean, assert_data, cleanup, other, web01  # noqa: F401 (fixtures)

pytestmark = pytest.mark.faults

# the guest's heartbeat block: after the 16 MiB pattern and the marker MiB (busybox-init.sh)
HB_OFFSET_4K = (16 + 1) * 256


def wait_event(lab, host, vm, prefix, proc, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(e.startswith(prefix) for e in journal_events(lab, host, vm)):
            return
        assert proc.poll() is None, "the migration ended before %s: %s" % (prefix, tail(proc))
        time.sleep(0.5)
    raise AssertionError("no %s in the journal of %s on %s" % (prefix, vm, host))


def stop(proc, grace=20):
    """Give a run that lost a host grace seconds to fail on its own, then stop it as an operator would."""
    try:
        proc.wait(timeout=grace)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def assert_unpaused(lab, host, vm):
    line = [l for l in lab.run(host, ["xl", "list", vm]).stdout.splitlines() if l.split()[:1] == [vm]][0]
    assert "p" not in line.split()[4], line


def migrate_into_a_slow_sync(lab):
    """Start migrating web01 with a slow sync (256 MiB at 4 MiB/s) and return 5 s into it,
    so that a fault lands in the sync: (source, target, the running playbook)."""
    source = where_runs(lab, "web01")[0]
    target = other(lab, source)
    proc = start_playbook(lab, "playbooks/migrate.yml", "-e", "vm=web01", "-e", "target=%s" % target,
                          "-e", "migrate_resync_rate=4M")
    wait_event(lab, source, "web01", "connected:", proc)
    time.sleep(5)
    return source, target, proc


def test_link_cut_during_sync_then_resume(lab, web01):
    source, target, proc = migrate_into_a_slow_sync(lab)
    sanless_lab.cut_link(target)
    try:
        # DRBD notices at its next ping or when a send times out (ko-count x timeout under a sync)
        deadline = time.time() + 180
        drbd = ""
        while time.time() < deadline:
            drbd = lab.sh(source, "cat /proc/drbd").stdout
            if "WFConnection" in drbd or "StandAlone" in drbd:
                break
            time.sleep(3)
        assert "WFConnection" in drbd or "StandAlone" in drbd, drbd
        stop(proc)
    finally:
        sanless_lab.restore_link(target)
    assert where_runs(lab, "web01") == [source]
    assert_unpaused(lab, source, "web01")
    rerun = lab.playbook("playbooks/migrate.yml", "-e", "vm=web01")
    assert "resuming" in rerun.stdout, rerun.stdout[-3000:]
    assert_clean(lab, "web01", target)
    assert_unpaused(lab, target, "web01")
    assert_data(lab, target, "web01", web01["checksum"])


def test_target_power_off_during_sync_then_abort(lab, web01):
    source, target, proc = migrate_into_a_slow_sync(lab)
    sanless_lab.power_off(target)
    stop(proc)
    # the target is gone: the source rolls back alone, the guest keeps its own disk
    abort = lab.playbook("playbooks/migrate.yml", "-e", "vm=web01", "-e", "migrate_action=abort")
    assert "the source rolled back alone" in abort.stdout, abort.stdout[-3000:]
    assert where_runs(lab, "web01") == [source]
    assert_unpaused(lab, source, "web01")
    assert leftovers(lab, source, "web01") == []
    assert_data(lab, source, "web01", web01["checksum"])
    # back on its own disks, the target still holds its half; an abort removes it
    sanless_lab.power_on(target)
    assert journal_events(lab, target, "web01"), "the target's journal did not survive the power cut"
    refused = lab.playbook("playbooks/migrate.yml", "-e", "vm=web01", check=False)
    assert refused.returncode != 0 and "was aborted on %s" % source in refused.stdout, refused.stdout[-3000:]
    lab.playbook("playbooks/migrate.yml", "-e", "vm=web01", "-e", "migrate_action=abort")
    assert_clean(lab, "web01", source)
    assert_data(lab, source, "web01", web01["checksum"])


def test_source_power_off_right_after_xl_migrate(lab, web01):
    source = where_runs(lab, "web01")[0]
    target = other(lab, source)
    proc = start_playbook(lab, "playbooks/migrate.yml", "-e", "vm=web01", "-e", "target=%s" % target)
    deadline = time.time() + 900
    while "web01" not in lab.xl_domains(target):
        assert time.time() < deadline and proc.poll() is None, tail(proc)
        time.sleep(0.5)
    sanless_lab.power_off(source)
    stop(proc, grace=120)
    assert where_runs(lab, "web01") == [target]
    sanless_lab.power_on(source)
    # ownership moved before xl migrate: nothing on the source starts the guest at boot
    assert lab.run(source, ["test", "-e", "/etc/xen/auto/web01.cfg"], check=False).returncode != 0
    assert where_runs(lab, "web01") == [target]
    if journal_events(lab, source, "web01"):
        # the source's cleanup was cut off: a rerun finishes it (the target's copy verified)
        print("\nsource journal after the power cut: %s" % journal_events(lab, source, "web01")[-4:])
        lab.playbook("playbooks/migrate.yml", "-e", "vm=web01")
    else:
        print("\nthe source had finished its cleanup before the power cut")
    assert_clean(lab, "web01", target)
    assert_unpaused(lab, target, "web01")
    assert_data(lab, target, "web01", web01["checksum"])


def test_acknowledged_writes_survive_a_power_cut_of_the_guests_host(lab, web01):
    """The guest writes its heartbeat block with fsync before printing the beat: every beat seen
    on the console before the cut is on the disk after it."""
    host = where_runs(lab, "web01")[0]
    acknowledged = lab.heartbeats(lab.console(host, "web01"))[-1][0]
    sanless_lab.power_off(host)
    sanless_lab.power_on(host)
    block = lab.sh(host, "dd if=/dev/xenvg/web01-disk bs=4k skip=%d count=1 2>/dev/null | head -c 19"
                   % HB_OFFSET_4K).stdout
    assert block.startswith("SANLESS-HB-"), block
    print("\nlast acknowledged beat %d, on disk after the cut %s" % (acknowledged, block))
    assert int(block[len("SANLESS-HB-"):]) >= acknowledged
    lab.run(host, ["xl", "create", "-q", "/etc/xen/auto/web01.cfg"])
    assert where_runs(lab, "web01") == [host]
    assert_data(lab, host, "web01", web01["checksum"])
