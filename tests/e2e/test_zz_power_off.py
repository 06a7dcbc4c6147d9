"""Host loss, last in make test (the lab is torn down after it): issue 13's and issue 15's CI cases, in this order.

Issue 13: web07 (storage mode raid1: the Debian guest on hosta, md RAID1 over a leg on hosta and one on hostb) is
provisioned from nothing; the guest writes while hostb is powered off, md degrades and the guest writes on,
raid1_status.yml says hostb is down; hostb back, raid1_repair.yml re-adds its leg, [UU], both legs equal
(tests/e2e/test_raid1.py's power-off case without its refused repair, which make test-faults runs). Last in make test,
it is not removed with export.yml runs: its domain and config go (nothing may restart it), hostb's export of its leg to
hosta goes (hosta keeps no session to a dom0 the next test powers off); its LVs and hosta's exports stay to the
lab's teardown (a reused lab: the next run's provision_web07 removes them).

Issue 15: web06 (storage mode drbd, home hostb, peer hosta) is provisioned; it crashes (xl destroy, its config stays in
/etc/xen/auto) and the watcher restarts it on hostb with its data; then hostb is powered off hard and failover.yml
brings web06 up on hosta from its DRBD copy, with the data the guest wrote on hostb. hostb's return (the watcher
reconnecting DRBD, nothing started twice) and the rest of the scenario are tests/e2e/test_failover_watcher.py (long).
"""
import time

import sanless_lab
import test_raid1 as raid1
from labhelpers import wait_for, where_runs
from test_failover_watcher import DRBD_VM, drbd_line, remove_all, wait_drbd

HOME, PEER = "hostb", "hosta"


def boots(text):
    return text.count("SANLESS-GUEST up")


def test_raid1_vm_provisioned_then_its_partners_power_off_degrades_it_and_the_repair_re_adds_the_leg(lab):
    try:
        raid1.provision_web07(lab)
        raid1.partner_power_off_then_re_add(lab, refusal=False)
    finally:
        for host in lab.hosts:
            if not sanless_lab.powered(host):
                sanless_lab.power_on(host)
            lab.sh(host, "xl destroy {0} 2>/dev/null; rm -f /etc/xen/auto/{0}.cfg /var/lib/sanless-xen/raid1/{0}.json; "
                         "true".format(raid1.VM))
        with raid1.timed(lab, "web07's partner export taken down (export.yml)"):
            raid1.export_absent(lab, raid1.PARTNER, [raid1.HOME], '["data"]')


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
