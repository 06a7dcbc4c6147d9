"""Striped LVs (issue 17) on a real dom0: lvm_volume makes an LV striped over the two PVs of a VG, `lvs` shows
2 stripes, a second run changes nothing, and more stripes than PVs are refused before anything changes.

The VG is made for the test from two loop devices on hosta (the lab's xenvg has one PV) and removed after."""
import json
import re

import pytest

HOST = "hosta"
VG = "slstripevg"
IMAGES = ["/var/tmp/slstripe%d.img" % index for index in range(2)]


def module(lab, host, args, check=False):
    """One ad-hoc run of sanless.xen.lvm_volume on host: (failed, result dict)."""
    proc = lab.ansible(host, "sanless.xen.lvm_volume", json.dumps(args), check=False, extra=["--check"] if check else [])
    match = re.search(r"^%s \| (\w+)[^=]*=> (\{.*\})\s*$" % re.escape(host), proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return match.group(1) == "FAILED", json.loads(match.group(2))


def lvs(lab, fields):
    return lab.run(HOST, ["lvs", "--noheadings", "--separator", ",", "-o", fields, VG]).stdout.split()


# the lab's dom0s let LVM see their data disk alone (lab/image/configure-dom0.sh); the test's loop devices are
# added to that filter while it runs
LVM_CONF = "/etc/lvm/lvm.conf"
FILTER_SED = r's#global_filter = \[ "a\|\^/dev/vdb\$\|",#global_filter = [ "a|^/dev/vdb$|", "a|^/dev/loop[0-9]+$|",#'


@pytest.fixture
def two_pv_vg(lab):
    cleanup = ("vgremove -q -f %s 2>/dev/null; for f in %s; do for d in $(losetup -j $f -O NAME --noheadings); do "
               "pvremove -q -f $d 2>/dev/null; losetup -d $d; done; rm -f $f; done; "
               "if [ -e %s.sltest ]; then mv %s.sltest %s; fi; true" % (VG, " ".join(IMAGES), LVM_CONF, LVM_CONF, LVM_CONF))
    lab.sh(HOST, cleanup)
    lab.run(HOST, ["sed", "-i.sltest", "-E", FILTER_SED, LVM_CONF])
    assert "/dev/loop" in lab.run(HOST, ["lvmconfig", "devices/global_filter"]).stdout
    devices = []
    for image in IMAGES:
        lab.run(HOST, ["truncate", "-s", "64M", image])
        devices.append(lab.run(HOST, ["losetup", "-f", "--show", image]).stdout.strip())
    lab.run(HOST, ["pvcreate", "-q", "-y"] + devices)
    lab.run(HOST, ["vgcreate", "-q", VG] + devices)
    yield devices
    lab.sh(HOST, cleanup)


def test_lvm_volume_stripes_a_new_lv_over_the_two_pvs(lab, two_pv_vg):
    want = {"vg": VG, "name": "striped", "size": "32M", "stripes": 2, "stripe_size": "64k"}
    failed, result = module(lab, HOST, dict(want, stripes=3))
    assert failed and "number of stripes (3) must not exceed number of physical volumes (2)" in result["msg"], result
    assert lvs(lab, "lv_name") == []    # refused before anything changed
    failed, result = module(lab, HOST, want)
    assert not failed and result["changed"] is True, result
    stripes, stripe_size, devices = lvs(lab, "stripes,stripe_size,devices")[0].split(",", 2)
    print("\nlvs: stripes %s, stripe size %s, devices %s" % (stripes, stripe_size, devices))
    assert stripes == "2" and stripe_size.lower().startswith("64.00k")
    assert all(device in devices for device in two_pv_vg)
    failed, again = module(lab, HOST, want)
    assert not failed and again["changed"] is False, again
