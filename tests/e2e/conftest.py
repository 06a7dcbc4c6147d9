"""Session fixture for the lab e2e tests: boots the lab once, always tears it down, and keeps
the hosts' serial logs and the guests' console logs under artifacts/ when a test failed.

SANLESS_LAB_REUSE=1 uses an already running lab (make lab-up) and leaves it running.
"""
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sanless_lab  # noqa: E402
from labhelpers import Lab, end_started_playbooks  # noqa: E402

FAILED = []


def pytest_runtest_makereport(item, call):
    if call.when == "call" and call.excinfo is not None:
        FAILED.append(item.nodeid)


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.lab)


@pytest.fixture(autouse=True)
def end_started_runs():
    """After each test: the playbook runs it started in the background and left running are ended (by pid)."""
    yield
    ended = end_started_playbooks()
    if ended:
        print("\nended the test's background ansible-playbook runs: %s" % ", ".join(map(str, ended)))


@pytest.fixture(scope="session")
def lab():
    reuse = os.environ.get("SANLESS_LAB_REUSE") == "1"
    count = int(os.environ.get("SANLESS_LAB_HOSTS", "2"))
    running = [h for h in sanless_lab.hosts() if sanless_lab.pid_alive(h["pid"])]
    started = False
    if not (reuse and running):
        if running:
            sanless_lab.down()
        t0 = time.time()
        sanless_lab.up(count)
        started = True
        print("\nlab up with %d hosts in %.0f s" % (count, time.time() - t0))
    try:
        yield Lab(REPO)
    finally:
        if FAILED:
            dest = REPO / "artifacts" / time.strftime("lab-%Y%m%d-%H%M%S")
            try:
                sanless_lab.collect_artifacts(dest)
                print("\nlab artifacts of failed tests in %s" % dest)
            except Exception as exc:  # keep teardown going whatever the logs did
                print("\ncould not collect lab artifacts: %s" % exc)
        if started:
            sanless_lab.down()
        else:   # the lab stays up; the shared ssh connections this session opened end here
            sanless_lab.close_ssh_masters()
