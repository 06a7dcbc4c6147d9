"""Storage mode drbd (issue 5): web03's disk is an LV on hosta and on hostb mirrored by DRBD
(provisioned by the provision role with sanless.xen.drbd_resource); migrate.yml moves it to its
secondary, with two primaries only for the move. make test provisions and moves it with evacuate.yml
(test_evacuate.py, through these helpers); the migrate.yml run here is long."""
import re

import pytest

from labhelpers import journal_history, leftovers, remove_vm, where_runs

VM = "web03"
MINOR = 100
RESOURCE = "web03-disk"
PATTERN_MIB = 16


def drbd_line(lab, host):
    """The /proc/drbd status line of web03's minor on host ('' when not configured)."""
    out = lab.sh(host, "grep -E '^ *%d: ' /proc/drbd; true" % MINOR).stdout
    return out.strip()


def remove_drbd_vm(lab):
    remove_vm(lab, VM)  # domain, config, LVs (web03-disk, web03-disk_meta) after the resource is down
    for host in lab.hosts:
        lab.sh(host, "xl destroy %s 2>/dev/null; drbdadm down %s 2>/dev/null; rm -f /etc/drbd.d/%s.res; "
                     "for lv in $(lvs --noheadings -o lv_name xenvg | grep '^ *%s-'); do lvremove -q -y xenvg/$lv; done; true"
               % (VM, RESOURCE, RESOURCE, VM))


@pytest.fixture(scope="module")
def web03(lab):
    remove_drbd_vm(lab)
    yield
    remove_drbd_vm(lab)


def provisioned_on_its_home(lab):
    """web03 provisioned from nothing: LVs and DRBD on both dom0s, primary (and sync source) on xen_home hosta, the
    secret in the res files only; a second provision run changes nothing. Returns the checksum its guest prints."""
    lab.playbook("playbooks/provision.yml", "-e", "vm=%s" % VM)
    assert where_runs(lab, VM) == ["hosta"]
    assert "ro:Primary/Secondary" in drbd_line(lab, "hosta"), drbd_line(lab, "hosta")
    assert "ro:Secondary/Primary" in drbd_line(lab, "hostb"), drbd_line(lab, "hostb")
    assert "phy:/dev/drbd%d" % MINOR in lab.run("hosta", ["cat", "/etc/xen/auto/%s.cfg" % VM]).stdout
    # the secret is in the res files only (mode 0600), identical on both sides
    for host in ("hosta", "hostb"):
        assert lab.sh(host, "stat -c %%a /etc/drbd.d/%s.res" % RESOURCE).stdout.strip() == "600"
        assert "lab-only-web03-secret" in lab.run(host, ["cat", "/etc/drbd.d/%s.res" % RESOURCE]).stdout
    text = lab.last_boot(lab.wait_console("hosta", VM, lambda t: lab.checksums(lab.last_boot(t)), timeout=300))
    expected = lab.checksums(text)[0]

    # a second provision run changes nothing (the initial sync may still be running)
    proc = lab.playbook("playbooks/provision.yml", "-e", "vm=%s" % VM)
    assert re.search(r"hosta\s*: ok=\d+\s+changed=0", proc.stdout), proc.stdout[-2500:]
    assert re.search(r"hostb\s*: ok=\d+\s+changed=0", proc.stdout), proc.stdout[-2500:]
    return expected


def assert_moved_to_its_secondary(lab, expected):
    """web03 moved from hosta to hostb by the migrate role: one primary again, on hostb, both sides in sync, nothing
    of the move left, the config moved, both journals, the guest's data (its own check and the device read)."""
    assert where_runs(lab, VM) == ["hostb"]
    # single primary again, now on hostb; both sides in sync; two primaries no longer allowed
    assert re.search(r"cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate", drbd_line(lab, "hostb")), drbd_line(lab, "hostb")
    assert re.search(r"cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate", drbd_line(lab, "hosta")), drbd_line(lab, "hosta")
    for host in ("hosta", "hostb"):
        show = lab.run(host, ["drbdsetup", "show", RESOURCE]).stdout
        assert "allow-two-primaries" not in show or re.search(r"allow-two-primaries\s+no", show), show
        assert leftovers(lab, host, VM) == [], leftovers(lab, host, VM)
    # the config moved with the VM; the DRBD resources and LVs stay on both
    assert lab.run("hostb", ["test", "-e", "/etc/xen/auto/%s.cfg" % VM], check=False).returncode == 0
    assert lab.run("hosta", ["test", "-e", "/etc/xen/auto/%s.cfg" % VM], check=False).returncode != 0
    events = [e["event"] for e in journal_history(lab, "hosta", VM)["log"]]
    assert "secondary:%s" % RESOURCE in events and "one-primary:%s" % RESOURCE in events, events
    events = [e["event"] for e in journal_history(lab, "hostb", VM)["log"]]
    assert "primary:%s" % RESOURCE in events and "one-primary:%s" % RESOURCE in events, events

    # the guest's data: its own check after the move, and the DRBD device read on the new host
    text = lab.wait_console("hostb", VM, lambda t: len(lab.checksums(t)) >= 2, timeout=180)
    assert lab.checksums(text)[-1] == expected
    lab.run("hostb", ["xl", "pause", VM])
    try:
        assert lab.lv_sha256("hostb", "/dev/drbd%d" % MINOR, PATTERN_MIB) == expected
    finally:
        lab.run("hostb", ["xl", "unpause", VM])


# make test moves web03 with evacuate.yml (test_evacuate.py: the same migrate role); migrate.yml's own refusal and
# its choice of the peer as target run here, with the long tests
@pytest.mark.long
def test_drbd_vm_provisions_and_migrates_to_its_secondary(lab, web03):
    expected = provisioned_on_its_home(lab)

    # target = source is refused; the only possible target is the secondary
    proc = lab.playbook("playbooks/migrate.yml", "-e", "vm=%s" % VM, "-e", "target=hosta", check=False)
    assert proc.returncode != 0 and "target = source" in proc.stdout, proc.stdout[-2500:]

    # no target given: the planner picks the DRBD peer
    proc = lab.playbook("playbooks/migrate.yml", "-e", "vm=%s" % VM)
    assert "migrate %s: hosta -> hostb" % VM in proc.stdout
    assert "storage mode drbd" in proc.stdout
    assert_moved_to_its_secondary(lab, expected)

