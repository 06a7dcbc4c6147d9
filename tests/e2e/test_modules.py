"""The building-block modules on real dom0s (issue 5): dm_remap routes a running guest's LV
through another device and back, xen_migrate moves a running domain; the guest's own
checksums and heartbeat counter show nothing was lost or restarted."""
import json
import re

import pytest
import sanless_lab

# The migration tests move guests and swap dm tables through the same tools; these module-level
# runs are a second pass over them and wait in make test-faults, to keep make test in its hour.
pytestmark = pytest.mark.long

KERNEL = "/usr/local/share/sanless/vmlinuz"
RAMDISK = "/usr/local/share/sanless/guest-busybox.img"


def module(lab, host, name, args, check=False, expect_failure=False):
    """One ad-hoc run of sanless.xen.NAME on host; its result as a dict."""
    proc = lab.ansible(host, "sanless.xen." + name, json.dumps(args), check=False, extra=["--check"] if check else [])
    match = re.search(r"^%s \| (\w+)[^=]*=> (\{.*\})\s*$" % re.escape(host), proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    result = json.loads(match.group(2))
    assert (match.group(1) == "FAILED") == expect_failure, (name, args, result)
    return result


def table(lab, host, dm_name):
    return lab.run(host, ["dmsetup", "table", dm_name]).stdout.strip()


@pytest.fixture
def remap_guest(lab):
    host, vm = "hosta", "mrem"
    lab.sh(host, "xl destroy %s 2>/dev/null; dmsetup remove xenvg-%s--disk.real 2>/dev/null; dmsetup remove %s-via "
                 "2>/dev/null; lvremove -q -y xenvg/%s-disk 2>/dev/null; true" % (vm, vm, vm, vm))
    lab.run(host, ["lvcreate", "-q", "-y", "-L", "64M", "-n", vm + "-disk", "xenvg"])
    sanless_lab.ssh(host, ["tee", "/root/%s.cfg" % vm], input_text=(
        'name = "%s"\ntype = "pv"\nkernel = "%s"\nramdisk = "%s"\nextra = "console=hvc0 quiet sanless.pattern_mib=16"\n'
        'memory = 96\nvcpus = 1\ndisk = [ "phy:/dev/xenvg/%s-disk,xvda,w" ]\n' % (vm, KERNEL, RAMDISK, vm)))
    lab.run(host, ["xl", "create", "-q", "/root/%s.cfg" % vm])
    yield host, vm
    lab.sh(host, "xl destroy %s 2>/dev/null; dmsetup remove xenvg-%s--disk.real 2>/dev/null; dmsetup remove %s-via "
                 "2>/dev/null; lvremove -q -y xenvg/%s-disk; rm -f /root/%s.cfg /var/log/xen/console/guest-%s*.log; true"
           % (vm, vm, vm, vm, vm, vm))


def test_dm_remap_routes_a_running_guest_disk_and_back(lab, remap_guest):
    host, vm = remap_guest
    lv_dm = "xenvg-%s--disk" % vm
    text = lab.wait_console(host, vm, lambda t: lab.checksums(t) and len(lab.heartbeats(t)) >= 2, timeout=240)
    expected = lab.checksums(text)[0]
    original = table(lab, host, lv_dm)
    # the "via" device: a second mapping of the same extents (DRBD in a migration)
    lab.sh(host, "dmsetup table %s | dmsetup create %s-via" % (lv_dm, vm))
    via_devno = lab.sh(host, "stat -L -c '%%t:%%T' /dev/mapper/%s-via" % vm).stdout.strip()
    via_devno = "%d:%d" % tuple(int(x, 16) for x in via_devno.split(":"))
    args = {"lv": "xenvg/%s-disk" % vm, "via": "/dev/mapper/%s-via" % vm, "pause_domain": vm}

    result = module(lab, host, "dm_remap", args)
    assert result["changed"] and result["original_table"].strip() == original
    assert table(lab, host, lv_dm) == "0 131072 linear %s 0" % via_devno
    assert table(lab, host, lv_dm + ".real") == original
    assert "p" not in lab.run(host, ["xl", "list", vm]).stdout.splitlines()[1].split()[4]  # unpaused again
    assert module(lab, host, "dm_remap", args)["changed"] is False

    # the guest goes on writing through the new path and its own check still matches
    n0 = len(lab.checksums(lab.console(host, vm)))
    text = lab.wait_console(host, vm, lambda t: len(lab.checksums(t)) > n0, timeout=180)
    assert lab.checksums(text)[-1] == expected

    back = dict(args, state="original")
    assert module(lab, host, "dm_remap", back)["changed"]
    assert table(lab, host, lv_dm) == original
    assert lab.run(host, ["dmsetup", "info", lv_dm + ".real"], check=False).returncode != 0
    assert module(lab, host, "dm_remap", back)["changed"] is False
    n0 = len(lab.checksums(lab.console(host, vm)))
    text = lab.wait_console(host, vm, lambda t: len(lab.checksums(t)) > n0, timeout=180)
    assert lab.checksums(text)[-1] == expected
    lab.run(host, ["xl", "pause", vm])
    try:
        assert lab.lv_sha256(host, "/dev/xenvg/%s-disk" % vm, 16) == expected
    finally:
        lab.run(host, ["xl", "unpause", vm])
    beats = [n for n, _ in lab.heartbeats(lab.console(host, vm))]
    assert beats == list(range(1, len(beats) + 1))


@pytest.fixture
def diskless_guest(lab):
    vm = "mmig"
    for host in lab.hosts:
        lab.sh(host, "xl destroy %s 2>/dev/null; rm -f /var/log/xen/console/guest-%s*.log; true" % (vm, vm))
    sanless_lab.ssh("hosta", ["tee", "/root/%s.cfg" % vm], input_text=(
        'name = "%s"\ntype = "pv"\nkernel = "%s"\nramdisk = "%s"\nextra = "console=hvc0 quiet"\nmemory = 96\nvcpus = 1\n'
        % (vm, KERNEL, RAMDISK)))
    lab.run("hosta", ["xl", "create", "-q", "/root/%s.cfg" % vm])
    yield vm
    for host in lab.hosts:
        lab.sh(host, "xl destroy %s 2>/dev/null; rm -f /root/%s.cfg; true" % (vm, vm))


def test_xen_migrate_moves_a_running_domain_once(lab, diskless_guest):
    vm = diskless_guest
    lab.wait_console("hosta", vm, lambda t: len(lab.heartbeats(t)) >= 3, timeout=240)
    target = lab.ip("hostb")
    # prechecks refuse this host as its own target before anything runs
    result = module(lab, "hosta", "xen_migrate", {"name": vm, "target": lab.ip("hosta")}, expect_failure=True)
    assert "an address of this host" in result["msg"], result["msg"]
    # check mode: prechecks only
    result = module(lab, "hosta", "xen_migrate", {"name": vm, "target": target}, check=True)
    assert result["changed"] and lab.xl_domains("hosta") >= {vm}

    result = module(lab, "hosta", "xen_migrate", {"name": vm, "target": target})
    assert result["changed"]
    print("\nxen_migrate %s hosta -> hostb: %.1f s" % (vm, result.get("seconds", 0)))
    assert vm not in lab.xl_domains("hosta") and vm in lab.xl_domains("hostb")
    # the same guest goes on: its heartbeat counter continues on hostb
    before = lab.heartbeats(lab.console("hosta", vm))
    text = lab.wait_console("hostb", vm, lambda t: any(n > before[-1][0] + 2 for n, _ in lab.heartbeats(t)), timeout=180)
    numbers = sorted(set(n for n, _ in before + lab.heartbeats(text)))
    assert numbers == list(range(1, numbers[-1] + 1))
    # already on the target: nothing to do
    result = module(lab, "hosta", "xen_migrate", {"name": vm, "target": target})
    assert result["changed"] is False
