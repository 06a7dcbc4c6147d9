"""Disk export and import with playbooks/export.yml (issue 12), in the lab: an LV of hosta exported over
iSCSI and over AoE and imported on hostb at /dev/sanless/hosta/xenvg/<lv>, the data written through the
import read back from hosta's LV; a guest on an exported disk (web05, storage mode shared) live-migrated
hosta -> hostb -> hosta with plain xl migrate; bad input refused before any change.

web05's LV, what hosta exports and hostb imports of it, and the cleanup fixtures are in exporthelpers.py
(test_export_faults.py uses them too)."""
import json

import pytest

from exporthelpers import (LV, LV_PATH, SHARED, TRANSPORTS, VM, export, exported_on_hosta, imported_on_hostb,
                           read_sha256, recap_changed, refused, write_through_import)
from exporthelpers import cleanup, lv  # noqa: F401 (fixtures)
from labhelpers import assert_moved, start_playbook, tail, where_runs


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
    assert exported_on_hosta(lab) == {"lio": False, "tgt": False, "vblade": []}


# Both round trips are long since stop 43 (make test's hour; the AoE one took 171-215 s): make test exports, imports and
# unexports over iSCSI, the default transport, in its raid1 case (tests/e2e/test_zz_power_off.py: the provision
# exports web07's legs both ways, the guest's writes through hosta's import are read back from hostb's LV, export.yml
# state=absent takes hostb's export down, nothing left on either dom0)
@pytest.mark.long
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
        assert_moved(lab, VM, target)
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


# Two exports from hosta started at once, one VM each (web05 and web01's LV): each aoe_export picks its AoE slot under
# hosta's host lock, so the two get different slots of hosta's shelf and each import carries its own LV.
@pytest.mark.faults
def test_two_aoe_exports_at_once_get_different_slots(lab, lv):
    if any(where_runs(lab, "web01")):
        pytest.skip("web01 runs: its LV is in use")
    other_lv, other_shared = "web01-disk", "/dev/sanless/hosta/xenvg/web01-disk"
    lab.run("hosta", ["lvremove", "-q", "-y", "xenvg/" + other_lv], check=False)
    lab.run("hosta", ["lvcreate", "-q", "-y", "-L", "64M", "-n", other_lv, "xenvg"])
    try:
        runs = [start_playbook(lab, "playbooks/export.yml", "-e", "vm=%s" % vm, "-e", "to=hostb", "-e", "transport=aoe")
                for vm in (VM, "web01")]
        for proc in runs:
            assert proc.wait(timeout=1200) == 0, tail(proc)
        devices = [lab.run("hostb", ["readlink", path]).stdout.strip() for path in (SHARED, other_shared)]
        print("\nweb05 and web01 exported at once: imported on hostb as %s" % devices)
        assert all(d.startswith("/dev/etherd/e1.") for d in devices) and devices[0] != devices[1], devices
        # each import leads to its own LV: a pattern written through one reads back from that LV on hosta
        for path, lv_path in ((SHARED, LV_PATH), (other_shared, "/dev/xenvg/" + other_lv)):
            written = write_through_import(lab, path)
            assert read_sha256(lab, "hosta", lv_path) == written, path
    finally:
        lab.playbook("playbooks/export.yml", "-e", "vm=web01", "-e", "to=hostb", "-e", "transport=aoe", "-e", "state=absent",
                     check=False)
        export(lab, "-e", "transport=aoe", "-e", "state=absent", check=False)
        lab.run("hosta", ["lvremove", "-q", "-y", "xenvg/" + other_lv], check=False)
        lab.run("hosta", ["rm", "-f", other_shared, "/etc/udev/rules.d/61-sanless-hosta-xenvg-web01--disk.rules"], check=False)
