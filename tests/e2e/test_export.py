"""Disk export and import with playbooks/export.yml (issue 12), in the lab: an LV of hosta exported over
iSCSI and over AoE and imported on hostb at /dev/sanless/hosta/xenvg/<lv>, the data written through the
import read back from hosta's LV; a guest on an exported disk (web05, storage mode shared) live-migrated
hosta -> hostb -> hosta with plain xl migrate; bad input refused before any change.

web05 (inventory/lab.yml) is the VM whose disk the tests export: its LV is xenvg/web05-disk on hosta.
Reads and writes go around the page cache (iflag/oflag=direct): hosta's LV and hostb's import are two
block devices over the same blocks, and a cached read would not see the other side's write."""
import json
import re

import pytest

from labhelpers import leftovers, remove_vm, where_runs

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
    """What hosta exports of web05's LV: its LIO backstore and the collection's vblade units that name it."""
    lio = lab.sh("hosta", "targetcli ls /backstores/block 2>/dev/null | grep -c %s; true" % LV).stdout.strip()
    units = lab.sh("hosta", "grep -l %s /etc/systemd/system/sanless-vblade-*.service 2>/dev/null; true" % LV_PATH).stdout
    return {"lio": lio not in ("", "0"), "vblade": units.split()}


def imported_on_hostb(lab):
    """hostb's shared path of web05's LV (where it leads, or ''), its iSCSI sessions and AoE devices."""
    link = lab.run("hostb", ["readlink", SHARED], check=False).stdout.strip()
    sessions = lab.sh("hostb", "iscsiadm -m session 2>/dev/null | grep -c sanless:hosta; true").stdout.strip()
    aoe = lab.sh("hostb", "ls /dev/etherd/ 2>/dev/null | grep -c '^e1\\.'; true").stdout.strip()
    return {"link": link, "iscsi_sessions": int(sessions or 0), "aoe_devices": int(aoe or 0)}


def remove_exports(lab):
    """Test cleanup: web05's imports and exports gone, whatever a failed test left (a playbook run per transport
    that has something left)."""
    imported, exported = imported_on_hostb(lab), exported_on_hosta(lab)
    left = {"iscsi": exported["lio"] or imported["iscsi_sessions"] or imported["link"].startswith("/dev/disk/"),
            "aoe": exported["vblade"] or imported["aoe_devices"] or imported["link"].startswith("/dev/etherd/")}
    for transport in TRANSPORTS:
        if left[transport]:
            export(lab, "-e", "transport=%s" % transport, "-e", "state=absent", check=False)


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


def write_through_import(lab):
    """A random pattern written on hostb through the import; its sha256."""
    out = lab.sh("hostb", "set -e; dd if=/dev/urandom of=/root/pattern bs=1M count=%d status=none; "
                          "dd if=/root/pattern of=%s bs=1M oflag=direct conv=fsync status=none; "
                          "sha256sum /root/pattern; rm -f /root/pattern" % (PATTERN_MIB, SHARED)).stdout
    return out.split()[0]


def read_sha256(lab, host, path):
    return lab.sh(host, "dd if=%s bs=1M count=%d iflag=direct status=none | sha256sum" % (path, PATTERN_MIB)).stdout.split()[0]


def export_and_check_round_trip(lab, lv, transport):
    """export.yml over transport: the shared path leads to hosta's own LV on hosta and to the import on
    hostb, and a pattern written through hostb's import reads back equal from hosta's LV."""
    proc = export(lab, "-e", "transport=%s" % transport)
    assert "from hosta to hostb over %s" % transport in proc.stdout, proc.stdout[-3000:]
    assert lab.run("hosta", ["readlink", "-f", SHARED]).stdout.strip() == lab.run("hosta", ["readlink", "-f", LV_PATH]).stdout.strip()
    imported = imported_on_hostb(lab)
    assert imported["link"].startswith("/dev/disk/by-path/" if transport == "iscsi" else "/dev/etherd/e1."), imported
    lab.run("hostb", ["test", "-b", SHARED])
    # written on hostb, read on hosta: the same blocks
    expected = write_through_import(lab)
    assert read_sha256(lab, "hosta", lv) == expected
    assert read_sha256(lab, "hosta", SHARED) == expected


def unexport_and_check_gone(lab, transport):
    export(lab, "-e", "transport=%s" % transport, "-e", "state=absent")
    assert imported_on_hostb(lab) == {"link": "", "iscsi_sessions": 0, "aoe_devices": 0}
    assert exported_on_hosta(lab) == {"lio": False, "vblade": []}


# make test: one round trip per transport (two export.yml runs, about 2-3 min each in the lab)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_export_import_round_trip(lab, lv, transport):
    export_and_check_round_trip(lab, lv, transport)
    unexport_and_check_gone(lab, transport)


# the whole round trip (second runs change nothing, hostlist reports it): 5-6 min each, with the long tests
@pytest.mark.long
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_export_import_round_trip_idempotent_and_reported(lab, lv, transport):
    export_and_check_round_trip(lab, lv, transport)
    again = export(lab, "-e", "transport=%s" % transport)
    assert recap_changed(again) and set(recap_changed(again).values()) == {0}, again.stdout[-3000:]

    # hostlist says who exports what to whom
    report = lab.repo / "artifacts" / ("hostlist-export-%s.json" % transport)
    report.parent.mkdir(exist_ok=True)
    lab.playbook("playbooks/hostlist.yml", "-e", "format=json", "-e", "output=%s" % report)
    hosts = dict((h["host"], h) for h in json.loads(report.read_text())["hosts"])
    [row] = [e for e in hosts["hosta"]["exports"] if e["path"] == SHARED]
    assert (row["transport"], row["to"]) == (transport, ["hostb"]), row
    assert [i["transport"] for i in hosts["hostb"]["imports"] if i["path"] == SHARED] == [transport]

    unexport_and_check_gone(lab, transport)
    gone = export(lab, "-e", "transport=%s" % transport, "-e", "state=absent")
    assert set(recap_changed(gone).values()) == {0}, gone.stdout[-3000:]


def refused(lab, args, message):
    proc = lab.playbook("playbooks/export.yml", *args, check=False)
    assert proc.returncode != 0 and re.search(message, proc.stdout), (args, proc.stdout[-3000:])


@pytest.mark.long
def test_guest_on_an_exported_disk_migrates_there_and_back(lab):
    """web05 (storage mode shared) runs on its disk at /dev/sanless/hosta/xenvg/web05-disk: hosta's LV, imported on
    hostb over iSCSI. migrate.yml moves it with plain xl migrate, no DRBD; the guest's pattern checksum holds."""
    # provision (LV and config, not started), export, provision again (starts it on its shared path)
    lab.playbook("playbooks/provision.yml", "-e", "vm=%s" % VM, "-e", "provision_state=shutdown")
    export(lab)
    lab.playbook("playbooks/provision.yml", "-e", "vm=%s" % VM)
    assert where_runs(lab, VM) == ["hosta"]
    assert SHARED in lab.run("hosta", ["cat", "/etc/xen/auto/%s.cfg" % VM]).stdout
    text = lab.wait_console("hosta", VM, lambda t: lab.checksums(lab.last_boot(t)), timeout=240)
    expected = lab.checksums(lab.last_boot(text))[0]

    for source, target in (("hosta", "hostb"), ("hostb", "hosta")):
        proc = lab.playbook("playbooks/migrate.yml", "-e", "vm=%s" % VM, "-e", "target=%s" % target)
        assert "storage mode shared" in proc.stdout and "no DRBD" in proc.stdout, proc.stdout[-3000:]
        assert where_runs(lab, VM) == [target]
        for host in lab.hosts:
            assert leftovers(lab, host, VM) == []
            cfg = lab.run(host, ["test", "-e", "/etc/xen/auto/%s.cfg" % VM], check=False).returncode == 0
            assert cfg == (host == target), "%s: /etc/xen/auto/%s.cfg present=%s" % (host, VM, cfg)
        # the guest's own check after the move, then the blocks read on hosta's LV with the guest paused
        n0 = len(lab.checksums(lab.console(target, VM)))
        text = lab.wait_console(target, VM, lambda t: len(lab.checksums(t)) > n0, timeout=180)
        assert lab.checksums(text)[-1] == expected
        lab.run(target, ["xl", "pause", VM])
        try:
            assert read_sha256(lab, "hosta", LV_PATH) == expected
        finally:
            lab.run(target, ["xl", "unpause", VM])
    assert lab.run("hosta", ["lvs", "--noheadings", "-o", "lv_name", "xenvg"]).stdout.split().count(LV) == 1
    assert lab.run("hostb", ["lvs", "--noheadings", "-o", "lv_name", "xenvg"]).stdout.split().count(LV) == 0

    # bad input: refused before any change (hostb's AoE devices are left out: the hand-started vblade below
    # announces itself to hostb's aoe driver)
    before = (imported_on_hostb(lab)["link"], imported_on_hostb(lab)["iscsi_sessions"], exported_on_hosta(lab))
    refused(lab, ["-e", "vm=%s" % VM, "-e", "to=hostb;reboot"], r"invalid dom0 name 'hostb;reboot'")
    refused(lab, ["-e", "vm=web05$(reboot)", "-e", "to=hostb"], r"vm must be a VM name")
    refused(lab, ["-e", "vm=%s" % VM, "-e", "to=hosta"], r"to = home: hosta holds the disks of web05")
    refused(lab, ["-e", "vm=nosuchvm", "-e", "to=hostb"], r"unknown VM nosuchvm")
    refused(lab, ["-e", "vm=bigdisk01", "-e", "to=hosta"], r"hostb: LV xenvg/bigdisk01-disk does not exist")
    # an occupied shelf.slot: a vblade started by hand on hosta (shelf 1) serves e1.7
    lab.run("hosta", ["lvcreate", "-q", "-y", "-L", "16M", "-n", "xpt-occupant", "xenvg"])
    lab.sh("hosta", "systemd-run --unit=xpt-vblade vblade 1 7 xenbr0 /dev/xenvg/xpt-occupant")
    try:
        refused(lab, ["-e", "vm=%s" % VM, "-e", "to=hostb", "-e", "transport=aoe", "-e", '{"disk_export_slots": [7]}'],
                r"e1\.7 is occupied: vblade pid \d+ exports /dev/xenvg/xpt-occupant there")
        # an occupied LUN: web05's disk is LUN 0 of hosta's target; web01 (home hosta) asks for LUN 0 too
        refused(lab, ["-e", "vm=web01", "-e", "to=hostb", "-e", '{"disk_export_luns": [0]}'],
                r"LUN 0 of iqn\.2026-12\.xen\.sanless:hosta is occupied: lio exports %s there" % LV_PATH)
    finally:
        lab.sh("hosta", "systemctl stop xpt-vblade; lvremove -q -y xenvg/xpt-occupant; true")
        lab.sh("hostb", "aoe-flush e1.7 2>/dev/null; true")
    assert (imported_on_hostb(lab)["link"], imported_on_hostb(lab)["iscsi_sessions"], exported_on_hosta(lab)) == before

    # without the import on hostb, migrate.yml refuses it before any change
    export(lab, "-e", "state=absent")
    assert imported_on_hostb(lab)["link"] == ""
    proc = lab.playbook("playbooks/migrate.yml", "-e", "vm=%s" % VM, "-e", "target=hostb", check=False)
    assert proc.returncode != 0 and "hostb: lacks the import of %s" % SHARED in proc.stdout, proc.stdout[-3000:]
    assert where_runs(lab, VM) == ["hosta"]
