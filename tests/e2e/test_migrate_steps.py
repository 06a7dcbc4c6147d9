"""The engine's fault matrix (issue 11): for each step of the migration's step table
(livemigrate.STEP_TABLE), SIGKILL the controller while the step's work runs on the dom0s and
again after it has finished there; then either rerun (the migration resumes and finishes on the
target) or abort (the source is restored, or the abort says why it cannot and the rerun finishes).
After each: the guest runs on exactly one host, unpaused, with its data, and nothing is left over.
`make test-faults`."""
import signal
import time

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.livemigrate import STEPS
from labhelpers import journal_events, start_playbook, tail, where_runs
from test_migrate import assert_clean, assert_data, cleanup, kill_when, other, web01  # noqa: F401 (fixtures)
from test_migrate_faults import assert_unpaused

pytestmark = pytest.mark.faults

# Where each step is caught. "during": the source's journal shows the step's work began on the
# dom0s (the modules there go on after the controller is gone). "after": the step returned on
# both hosts; the run kills itself before the next one (SANLESS_XEN_KILL_AFTER, the action
# plugin's crash hook) or, for migrate (which the source runs inside finish), once xl migrate
# returned on the source.
DURING = {"prepare": "step:prepare", "promote": "step:promote", "migrate": "migrate-started", "finish": "step:finish"}
AFTER_EVENT = {"migrate": "migrated"}
KILL_POINTS = [(step, when) for step in STEPS for when in ("during", "after")]
# after finish nothing is in progress: one case checks that (an abort says so)
CASES = [(step, when, then) for step, when in KILL_POINTS for then in ("resume", "abort")
         if (step, when, then) != ("finish", "after", "resume")]


def start_and_kill(lab, source, target, step, when):
    args = ("playbooks/migrate.yml", "-e", "vm=web01", "-e", "target=%s" % target)
    if when == "during":
        proc = start_playbook(lab, *args)
        kill_when(lab, proc, source, "web01", DURING[step], timeout=900)
    elif step in AFTER_EVENT:
        proc = start_playbook(lab, *args)
        kill_when(lab, proc, source, "web01", AFTER_EVENT[step], timeout=900)
    else:
        proc = start_playbook(lab, *args, env={"SANLESS_XEN_KILL_AFTER": "%s:target" % step})
        assert proc.wait(timeout=1800) == -signal.SIGKILL, tail(proc)


def test_every_step_has_a_kill_point():
    # KILL_POINTS follow STEPS; a step added to the table without its journal event here fails
    assert set(DURING) == set(STEPS)


@pytest.mark.parametrize("step,when,then", CASES)
def test_controller_killed_at_step(lab, web01, step, when, then):
    source = where_runs(lab, "web01")[0]
    target = other(lab, source)
    t0 = time.time()
    start_and_kill(lab, source, target, step, when)
    print("\nkilled %s %s; journals: %s %s, %s %s" % (when, step, source, journal_events(lab, source, "web01")[-3:],
                                                      target, journal_events(lab, target, "web01")[-3:]))
    # the killed run's modules may still be working on the dom0s: the rerun waits for their lock
    if step == "finish" and when == "after":
        # the killed run had finished on the target; the source's cleanup may still run there
        deadline = time.time() + 600
        while journal_events(lab, source, "web01"):
            assert time.time() < deadline, journal_events(lab, source, "web01")
            time.sleep(5)
        # nothing is in progress any more, and an abort says so
        abort = lab.playbook("playbooks/migrate.yml", "-e", "vm=web01", "-e", "migrate_action=abort", check=False)
        assert abort.returncode != 0 and "nothing to abort" in abort.stdout, abort.stdout[-3000:]
        ends_on = target
    elif then == "resume":
        # the operator's rerun: the same command. The killed run's finish may have ended the migration before
        # the rerun's preflight read the journals (after xl migrate returned): then web01 already runs on the
        # target and the rerun is refused for that, changing nothing (without the target it would plan a new
        # migration away from there)
        rerun = lab.playbook("playbooks/migrate.yml", "-e", "vm=web01", "-e", "target=%s" % target, check=False)
        assert rerun.returncode == 0 or (step in ("migrate", "finish") and "target = source: web01 already runs on %s"
                                         % target in rerun.stdout), rerun.stdout[-3000:]
        ends_on = target
    else:
        abort = lab.playbook("playbooks/migrate.yml", "-e", "vm=web01", "-e", "migrate_action=abort", check=False)
        if abort.returncode == 0:
            ends_on = where_runs(lab, "web01")[0]
            # an abort restores the source, unless the killed run's finish had ended the migration
            assert ends_on == source or "ended meanwhile (finished)" in abort.stdout, abort.stdout[-3000:]
        elif "nothing to abort" in abort.stdout:
            # the killed run's finish ended the migration before the abort's preflight read the journals
            assert step in ("migrate", "finish"), "nothing to abort before xl migrate: %s" % abort.stdout[-3000:]
            ends_on = target
        else:
            # refused with its reason (the guest already runs on the target); the rerun finishes
            assert "rerun" in abort.stdout, abort.stdout[-3000:]
            assert step in ("migrate", "finish"), "abort refused before xl migrate: %s" % abort.stdout[-3000:]
            lab.playbook("playbooks/migrate.yml", "-e", "vm=web01", "-e", "target=%s" % target)
            ends_on = target
    print("%s %s, %s: ends on %s after %.0f s" % (when, step, then, ends_on, time.time() - t0))
    assert_clean(lab, "web01", ends_on)
    assert_unpaused(lab, ends_on, "web01")
    assert_data(lab, ends_on, "web01", web01["checksum"])
