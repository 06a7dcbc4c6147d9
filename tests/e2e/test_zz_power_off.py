"""Host loss, last in make test (the lab is torn down after it): issue 13's and issue 15's CI cases on one power-off of
hostb.

web07 (storage mode raid1: the lab's Debian guest at home on hosta, md RAID1 in the guest over a leg on hosta and one on
hostb, each exported to the other dom0 over iSCSI) is provisioned from nothing, then web06 (storage mode drbd, home
hostb, peer hosta). web06 crashes (xl destroy, its config stays in /etc/xen/auto) and the watcher restarts it on hostb
with its data. Then, while web07's guest writes, hostb is powered off hard: failover.yml brings web06 up on hosta from
its DRBD copy with the data the guest wrote on hostb; md in web07 degrades ([U_]), the guest writes on and
raid1_status.yml says hostb is down. hostb is powered on again: raid1_repair.yml re-adds its leg, [UU], both legs hold
the same data, and what the guest wrote through hosta's iSCSI import of hostb's leg is on hostb's LV. Last, web07
stopped, export.yml takes hostb's iSCSI export of the leg to hosta down: with the provision's exports, make test's
iSCSI export, import and unexport (test_export.py's round trips, iSCSI and AoE, are long).

Left to make test-faults (long): hostb's return after the failover (the watcher reconnecting DRBD, handing the stale
configs back, nothing started twice) and a raid1 VM's own failover (test_failover_watcher.py); the repair refused while
hostb is down, the rerun, the replace and the migration of the raid1 VM (test_raid1.py).

Each phase's wall time goes to artifacts/raid1-times.log (test_raid1.timed). Run in the lab at stop 42: 1178 s.
"""
import sanless_lab
import test_raid1 as raid1
from labhelpers import wait_for, where_runs
from test_failover_watcher import DRBD_VM, drbd_line, remove_all, wait_drbd

# web06's home and peer; web07's partner and home
DEAD, SURVIVOR = "hostb", "hosta"


def boots(text):
    return text.count("SANLESS-GUEST up")


def test_hostbs_power_off_fails_the_drbd_vm_over_and_degrades_the_raid1_vm_whose_leg_is_re_added_on_its_return(lab):
    assert (raid1.HOME, raid1.PARTNER) == (SURVIVOR, DEAD)
    remove_all(lab)
    # issue 13: web07 from nothing, its legs exported both ways; md's first resync runs while web06 is provisioned
    provision = raid1.provision_web07(lab)
    raid1.assert_legs_exported_over_iscsi(lab, provision)

    # issue 15: web06 on hostb, DRBD in sync
    with raid1.timed(lab, "web06 provisioned (DRBD in sync, the guest's checksum)"):
        lab.playbook("playbooks/provision.yml", "-e", "vm=%s" % DRBD_VM)
        assert where_runs(lab, DRBD_VM) == [DEAD]
        wait_drbd(lab, SURVIVOR, r"cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate")
        text = lab.wait_console(DEAD, DRBD_VM, lambda t: lab.checksums(lab.last_boot(t)), timeout=300)
    expected, booted = lab.checksums(lab.last_boot(text))[0], boots(text)

    # a crash: the watcher restarts what should run where it is owned, and the guest finds its own data
    lab.run(DEAD, ["xl", "destroy", DRBD_VM])
    assert where_runs(lab, DRBD_VM) == []
    with raid1.timed(lab, "watcher.yml restarted %s" % DRBD_VM):
        lab.playbook("playbooks/watcher.yml")
    assert where_runs(lab, DRBD_VM) == [DEAD]
    text = lab.wait_console(DEAD, DRBD_VM, lambda t: boots(t) > booted and lab.checksums(lab.last_boot(t)), timeout=300)
    assert lab.checksums(lab.last_boot(text))[-1] == expected

    # the watcher pass kept hostb's boot id (state_file: fsynced); the power-off comes seconds after it, well within
    # the kernel's write-back delay (stop 41: a plain copy lost this file at such a power-off)
    kept = lab.sh(DEAD, "cat /var/lib/sanless-xen/watcher/boot_id").stdout
    assert kept.strip() == lab.sh(DEAD, "cat /proc/sys/kernel/random/boot_id").stdout.strip() != ""
    # web07's guest writes ([UU] first), then the hard power-off of hostb: gone at once, unreachable
    raid1.start_writer(lab)
    pid = sanless_lab.get_host(DEAD)["pid"]
    sanless_lab.power_off(DEAD)
    assert not sanless_lab.pid_alive(pid)
    wait_for(lambda: not sanless_lab.can_reach(SURVIVOR, lab.ip(DEAD), timeout=2), 20,
             "%s gone after its power-off" % DEAD, interval=0)
    assert [row["qemu"] for row in sanless_lab.status() if row["name"] == DEAD] == [False]

    # failover: web06 up on hosta from its DRBD copy, once, owned and journaled there (md degrades in web07 meanwhile)
    with raid1.timed(lab, "failover.yml of %s" % DEAD):
        proc = lab.playbook("playbooks/failover.yml", "-e", "host=%s" % DEAD, "-e", "confirm_dead=%s" % DEAD)
    assert where_runs(lab, DRBD_VM) == [SURVIVOR], proc.stdout[-3000:]
    assert "ro:Primary/Unknown ds:UpToDate/DUnknown" in drbd_line(lab, SURVIVOR), drbd_line(lab, SURVIVOR)
    text = lab.wait_console(SURVIVOR, DRBD_VM, lambda t: lab.checksums(lab.last_boot(t)), timeout=300)
    assert lab.checksums(lab.last_boot(text))[-1] == expected
    assert lab.run(SURVIVOR, ["test", "-e", "/etc/xen/auto/%s.cfg" % DRBD_VM], check=False).returncode == 0
    journal = lab.sh(SURVIVOR, "cat /var/lib/sanless-xen/failover/%s-*.json" % DRBD_VM).stdout
    assert '"result": "started"' in journal and '"dead_host": "%s"' % DEAD in journal, journal
    # web07 was not the failover's: it runs on hosta, degraded, the guest writing on
    assert where_runs(lab, raid1.VM) == [SURVIVOR]
    raid1.degraded_while_partner_down(lab, refusal=False)

    # hostb back: raid1_repair.yml re-adds its leg, [UU], the legs equal; then its export of the leg taken down
    raid1.re_added_when_partner_back(lab)
    # the boot id the pass kept before the power-off is still there, the file whole
    assert lab.sh(DEAD, "cat /var/lib/sanless-xen/watcher/boot_id").stdout == kept
    raid1.unexport_partner_leg(lab)
