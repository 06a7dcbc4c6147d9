"""What the disk export tests share (tests/e2e/test_export.py, test_export_faults.py): web05's LV on hosta
exported with playbooks/export.yml to hostb, what hosta exports and hostb imports of it, the cleanup of both
(module fixture ``cleanup``, autouse where imported) and the LV itself (fixture ``lv``).

web05 (inventory/lab.yml) is the VM whose disk the tests export: its LV is xenvg/web05-disk on hosta.
Reads and writes go around the page cache (iflag/oflag=direct): hosta's LV and hostb's import are two
block devices over the same blocks, and a cached read would not see the other side's write."""
import re

import pytest

from labhelpers import remove_vm

VM = "web05"
LV = "web05-disk"
LV_PATH = "/dev/xenvg/" + LV
SHARED = "/dev/sanless/hosta/xenvg/" + LV
PATTERN_MIB = 16
TRANSPORTS = ("iscsi", "aoe")


def export(lab, *extra, check=True):
    return lab.playbook("playbooks/export.yml", "-e", "vm=%s" % VM, "-e", "to=hostb", *extra, check=check)


def recap_changed(proc):
    """host -> changed=N of the PLAY RECAP."""
    return dict((host, int(n)) for host, n in re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", proc.stdout, re.M))


def exported_on_hosta(lab):
    """What hosta exports of web05's LV: its LIO backstore, a tgt LUN on it (tgtd runs only once a test exported
    with backend tgt) and the collection's vblade units that name it."""
    lio = lab.sh("hosta", "targetcli ls /backstores/block 2>/dev/null | grep -c %s; true" % LV).stdout.strip()
    tgt = lab.sh("hosta", "tgtadm --lld iscsi --mode target --op show 2>/dev/null | grep -c %s; true" % LV_PATH).stdout.strip()
    units = lab.sh("hosta", "grep -l %s /etc/systemd/system/sanless-vblade-*.service 2>/dev/null; true" % LV_PATH).stdout
    return {"lio": lio not in ("", "0"), "tgt": tgt not in ("", "0"), "vblade": units.split()}


def imported_on_hostb(lab):
    """hostb's shared path of web05's LV (where it leads, or ''), its iSCSI sessions and AoE devices."""
    link = lab.run("hostb", ["readlink", SHARED], check=False).stdout.strip()
    sessions = lab.sh("hostb", "iscsiadm -m session 2>/dev/null | grep -c sanless:hosta; true").stdout.strip()
    aoe = lab.sh("hostb", "ls /dev/etherd/ 2>/dev/null | grep -c '^e1\\.'; true").stdout.strip()
    return {"link": link, "iscsi_sessions": int(sessions or 0), "aoe_devices": int(aoe or 0)}


def remove_exports(lab):
    """Test cleanup: web05's imports and exports gone, whatever a failed test left (a playbook run per transport
    and iSCSI backend that has something left); tgtd, which holds port 3260 against LIO, stopped once it exports
    nothing."""
    imported, exported = imported_on_hostb(lab), exported_on_hosta(lab)
    left = {"iscsi": exported["lio"] or imported["iscsi_sessions"] or imported["link"].startswith("/dev/disk/"),
            "aoe": exported["vblade"] or imported["aoe_devices"] or imported["link"].startswith("/dev/etherd/")}
    if exported["tgt"]:
        export(lab, "-e", "transport=iscsi", "-e", "disk_export_backend=tgt", "-e", "state=absent", check=False)
    for transport in TRANSPORTS:
        if left[transport]:
            export(lab, "-e", "transport=%s" % transport, "-e", "state=absent", check=False)
    if not exported_on_hosta(lab)["tgt"]:
        lab.sh("hosta", "if systemctl -q is-active tgt.service; then systemctl disable --now tgt.service; fi; true")


@pytest.fixture(scope="module", autouse=True)
def cleanup(lab):
    remove_vm(lab, VM)
    remove_exports(lab)
    yield
    remove_vm(lab, VM)  # the guest, its config and its LV, once unexported (remove_exports) below
    remove_exports(lab)
    for host in lab.hosts:
        lab.run(host, ["lvremove", "-q", "-y", "xenvg/" + LV], check=False)
    # the owner's own link stays after an export's removal (the LV stays): gone with the LV
    lab.run("hosta", ["rm", "-f", SHARED, "/etc/udev/rules.d/61-sanless-hosta-xenvg-web05--disk.rules"], check=False)


@pytest.fixture
def lv(lab):
    """web05's LV on hosta, as provision.yml -e provision_state=shutdown makes it (without its config)."""
    lab.run("hosta", ["lvremove", "-q", "-y", "xenvg/" + LV], check=False)
    lab.run("hosta", ["lvcreate", "-q", "-y", "-L", "128M", "-n", LV, "xenvg"])
    yield LV_PATH
    remove_exports(lab)
    lab.run("hosta", ["lvremove", "-q", "-y", "xenvg/" + LV], check=False)


def write_through_import(lab, path=SHARED):
    """A random pattern written on hostb through the import at path (web05's by default); its sha256."""
    out = lab.sh("hostb", "set -e; dd if=/dev/urandom of=/root/pattern bs=1M count=%d status=none; "
                          "dd if=/root/pattern of=%s bs=1M oflag=direct conv=fsync status=none; "
                          "sha256sum /root/pattern; rm -f /root/pattern" % (PATTERN_MIB, path)).stdout
    return out.split()[0]


def read_sha256(lab, host, path):
    return lab.sh(host, "dd if=%s bs=1M count=%d iflag=direct status=none | sha256sum" % (path, PATTERN_MIB)).stdout.split()[0]


def refused(lab, args, message):
    proc = lab.playbook("playbooks/export.yml", *args, check=False)
    assert proc.returncode != 0 and re.search(message, proc.stdout), (args, proc.stdout[-3000:])
