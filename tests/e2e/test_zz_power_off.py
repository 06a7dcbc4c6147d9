"""Host loss, last in make test (the lab is torn down after it): issue 15's CI case.

web06 (storage mode drbd, home hostb, peer hosta) is provisioned; it crashes (xl destroy, its config stays in
/etc/xen/auto) and the watcher restarts it on hostb with its data; then hostb is powered off hard and failover.yml
brings web06 up on hosta from its DRBD copy, with the data the guest wrote on hostb. hostb's return (the watcher
reconnecting DRBD, nothing started twice) and the rest of the scenario are tests/e2e/test_failover_watcher.py (long).
"""
import time

import sanless_lab
from labhelpers import wait_for, where_runs
from test_failover_watcher import DRBD_VM, drbd_line, remove_all, wait_drbd

HOME, PEER = "hostb", "hosta"


def boots(text):
    return text.count("SANLESS-GUEST up")


def test_watcher_restarts_a_crashed_vm_then_failover_of_a_powered_off_dom0(lab):
    remove_all(lab)
    lab.playbook("playbooks/provision.yml", "-e", "vm=%s" % DRBD_VM)
    assert where_runs(lab, DRBD_VM) == [HOME]
    wait_drbd(lab, PEER, r"cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate")
    text = lab.wait_console(HOME, DRBD_VM, lambda t: lab.checksums(lab.last_boot(t)), timeout=300)
    expected, booted = lab.checksums(lab.last_boot(text))[0], boots(text)

    # a crash: the watcher restarts what should run where it is owned, and the guest finds its own data
    lab.run(HOME, ["xl", "destroy", DRBD_VM])
    assert where_runs(lab, DRBD_VM) == []
    started = time.time()
    lab.playbook("playbooks/watcher.yml")
    print("watcher restarted %s in %.1f s" % (DRBD_VM, time.time() - started))
    assert where_runs(lab, DRBD_VM) == [HOME]
    text = lab.wait_console(HOME, DRBD_VM, lambda t: boots(t) > booted and lab.checksums(lab.last_boot(t)), timeout=300)
    assert lab.checksums(lab.last_boot(text))[-1] == expected

    # hard power-off of hostb: gone at once, unreachable
    pid = sanless_lab.get_host(HOME)["pid"]
    sanless_lab.power_off(HOME)
    assert not sanless_lab.pid_alive(pid)
    wait_for(lambda: not sanless_lab.can_reach(PEER, lab.ip(HOME), timeout=2), 20, "%s gone after its power-off" % HOME,
             interval=0)
    assert [row["qemu"] for row in sanless_lab.status() if row["name"] == HOME] == [False]

    # failover: web06 up on hosta from its DRBD copy, once, owned and journaled there
    started = time.time()
    proc = lab.playbook("playbooks/failover.yml", "-e", "host=%s" % HOME, "-e", "confirm_dead=%s" % HOME)
    print("failover of %s took %.1f s" % (HOME, time.time() - started))
    assert where_runs(lab, DRBD_VM) == [PEER], proc.stdout[-3000:]
    assert "ro:Primary/Unknown ds:UpToDate/DUnknown" in drbd_line(lab, PEER), drbd_line(lab, PEER)
    text = lab.wait_console(PEER, DRBD_VM, lambda t: lab.checksums(lab.last_boot(t)), timeout=300)
    assert lab.checksums(lab.last_boot(text))[-1] == expected
    assert lab.run(PEER, ["test", "-e", "/etc/xen/auto/%s.cfg" % DRBD_VM], check=False).returncode == 0
    journal = lab.sh(PEER, "cat /var/lib/sanless-xen/failover/%s-*.json" % DRBD_VM).stdout
    assert '"result": "started"' in journal and '"dead_host": "%s"' % HOME in journal, journal
