"""Disk export and import under faults (issue 12 acceptance), `make test-faults`: for each transport (iSCSI with LIO,
iSCSI with tgt, AoE with vblade), web05's LV on hosta exported with playbooks/export.yml and imported on hostb, and

(a) a writer on hostb writing numbered records through the import, each with O_DIRECT and O_DSYNC and
    acknowledged (logged on hostb) only once written, while hosta's target service restarts (LIO: the
    rtslib-fb-targetctl service the role enables, which clears and restores the saved config; tgt: tgt.service;
    AoE: the vblade process killed, its unit restarts it): the writer resumes, and hosta's LV holds every
    acknowledged record and no corrupt one;
(b) the same while hosta's link is cut and restored (sanless_lab.cut_link/restore_link, as in
    test_migrate_faults.py): the writer stalls while cut, resumes after;
(c) hosta rebooted (labhelpers.reboot): with no playbook run, hosta exports again and hostb's import works again;
(d) bad input (shell metacharacters, an LV that does not exist, an occupied LUN or shelf.slot, a wrong CHAP
    secret): refused before any change, what hosta exports and hostb imports unchanged.

Record n is 4 KiB at offset n * 4 KiB: "SANLESS-REC <n, 8 digits>\\n" and zeros. Shared fixtures and helpers:
exporthelpers.py (test_export.py uses them too)."""
import json
import time

import pytest

import sanless_lab
from exporthelpers import (LV, LV_PATH, SHARED, VM, export, exported_on_hosta, imported_on_hostb, read_sha256,
                           refused, write_through_import)
from exporthelpers import cleanup, lv  # noqa: F401 (fixtures)
from labhelpers import reboot, wait_for

pytestmark = pytest.mark.faults

# transport and backend per case, as export.yml takes them
CASES = {"lio": ["-e", "transport=iscsi"],
         "tgt": ["-e", "transport=iscsi", "-e", "disk_export_backend=tgt"],
         "aoe": ["-e", "transport=aoe"]}
TARGET = "iqn.2026-12.xen.sanless:hosta"
REGION_MIB = 16  # zeroed on hosta's LV before a writer starts; the writer stays below it
MAX_RECORDS = REGION_MIB * 256 - 1
ACKS, STOP, ERRORS = "/root/xpt-acks", "/root/xpt-stop", "/root/xpt-errors"
WRITER_UNIT = "xpt-writer"
# a failed write (EIO once the transport gave up) is retried: a record is acknowledged only when dd wrote it
WRITER = """rm -f %(acks)s %(stop)s %(errors)s
n=0
while [ ! -e %(stop)s ] && [ $n -lt %(max)d ]; do
  n=$((n + 1))
  until printf 'SANLESS-REC %%08d\\n' $n | dd of=%(dev)s bs=4096 seek=$n count=1 conv=sync,notrunc \\
        oflag=direct,dsync status=none 2>>%(errors)s; do
    [ -e %(stop)s ] && exit 0
    sleep 1
  done
  echo $n >> %(acks)s
  sleep 0.2
done
"""
# run on hosta: the records of blocks 1..N of its LV, read around the page cache
CHECK = """import json, sys
data = sys.stdin.buffer.read()
missing, bad = [], []
for i in range(len(data) // 4096):
    n, block = i + 1, data[i * 4096:(i + 1) * 4096]
    if block == (b"SANLESS-REC %08d\\n" % n).ljust(4096, b"\\0"):
        continue
    if not block.strip(b"\\0"):
        missing.append(n)
    else:
        bad.append([n, block[:40].decode("latin-1")])
print(json.dumps({"missing": missing, "bad": bad}))
"""
CUT_S = 20  # well below open-iscsi's replacement_timeout (120 s) and the aoe driver's aoe_deadsecs (60 s)


@pytest.fixture(params=sorted(CASES))
def exported(request, lab, lv):
    """web05's LV exported from hosta to hostb over the case's transport, imported at its shared path; the case."""
    export(lab, *CASES[request.param])
    lab.run("hostb", ["test", "-b", SHARED])
    yield request.param
    stop_writer(lab)


def acked(lab):
    return [int(n) for n in lab.run("hostb", ["cat", ACKS], check=False).stdout.split()]


def start_writer(lab):
    lab.sh("hosta", "dd if=/dev/zero of=%s bs=1M count=%d oflag=direct conv=fsync status=none" % (LV_PATH, REGION_MIB))
    lab.run("hostb", ["systemd-run", "--unit=%s" % WRITER_UNIT, "--collect", "sh", "-c",
                      WRITER % {"acks": ACKS, "stop": STOP, "errors": ERRORS, "max": MAX_RECORDS, "dev": SHARED}])
    wait_for(lambda: len(acked(lab)) >= 20, 120, "the writer's first 20 records")


def writer_running(lab):
    return lab.run("hostb", ["systemctl", "is-active", WRITER_UNIT], check=False).stdout.strip() in ("active", "activating")


def stop_writer(lab, timeout=300):
    """Ask the writer to stop after its record in flight; it must stop (a write hung for good would not)."""
    if not writer_running(lab):
        return
    lab.run("hostb", ["touch", STOP])
    wait_for(lambda: not writer_running(lab), timeout, "the writer stopped")


def settled_count(lab, quiet_s=3.0, timeout=60):
    """The writer's acknowledged count once it stopped growing for quiet_s seconds (what was in
    flight when hostb lost hosta has completed or hangs), not after a fixed wait."""
    count, since, started = len(acked(lab)), time.time(), time.time()
    while time.time() - since < quiet_s:
        assert time.time() - started < timeout, "the writer still acknowledges records %d s after the cut" % timeout
        time.sleep(0.5)
        now = len(acked(lab))
        if now != count:
            count, since = now, time.time()
    return count


def resumed(lab, after, more=30, timeout=300):
    """The writer acknowledged more records past after (a count) within timeout s."""
    wait_for(lambda: len(acked(lab)) >= after + more, timeout, "the writer resumed past %d records" % after)


def check_records(lab):
    """Every acknowledged record is on hosta's LV, in order, and no block holds anything but its record or zeros."""
    stop_writer(lab)
    acks = acked(lab)
    assert acks == list(range(1, len(acks) + 1)), "acknowledged out of order: %s" % acks[-20:]
    errors = lab.run("hostb", ["cat", ERRORS], check=False).stdout
    proc = lab.run("hosta", ["sh", "-c", "dd if=%s bs=4096 skip=1 count=%d iflag=direct status=none | python3 -c \"$0\""
                             % (LV_PATH, MAX_RECORDS), CHECK])
    found = json.loads(proc.stdout)
    lost = [n for n in found["missing"] if n <= len(acks)]
    print("\n%d records acknowledged; failed writes retried: %d" % (len(acks), len(errors.splitlines())))
    assert found["bad"] == [], "corrupt records on hosta's LV: %s" % found["bad"][:10]
    assert lost == [], "acknowledged records missing on hosta's LV: %s" % lost[:20]


def restart_target(lab, case):
    if case == "aoe":
        [unit] = [u.rsplit("/", 1)[1] for u in exported_on_hosta(lab)["vblade"]]
        pid = lab.run("hosta", ["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()
        assert pid not in ("", "0"), "%s runs no vblade" % unit
        lab.run("hosta", ["kill", "-9", pid])
        # Restart=on-failure brings it back
        wait_for(lambda: lab.run("hosta", ["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()
                 not in ("", "0", pid), 60, "%s restarted its vblade" % unit)
    else:
        service = {"lio": "rtslib-fb-targetctl.service", "tgt": "tgt.service"}[case]
        lab.run("hosta", ["systemctl", "restart", service])


def test_writer_survives_a_restart_of_the_target_service(lab, exported):
    start_writer(lab)
    before = len(acked(lab))
    restart_target(lab, exported)
    assert exported_on_hosta(lab)[{"lio": "lio", "tgt": "tgt", "aoe": "vblade"}[exported]], \
        "the export did not come back with the service"
    resumed(lab, before)
    check_records(lab)


def test_writer_survives_a_link_cut_and_restore(lab, exported):
    start_writer(lab)
    sanless_lab.cut_link("hosta")
    try:
        stalled = settled_count(lab)  # a record in flight may still complete
        time.sleep(CUT_S)
        during = len(acked(lab))
    finally:
        sanless_lab.restore_link("hosta")
    assert during - stalled <= 1, "the writer went on while hosta was cut off (%d -> %d)" % (stalled, during)
    resumed(lab, during)
    check_records(lab)


def import_works(lab):
    """hostb's shared path leads to a block device again, and a pattern written through it reads back on hosta."""
    return lab.run("hostb", ["test", "-b", SHARED], check=False).returncode == 0 and \
        lab.sh("hostb", "timeout 20 dd if=%s of=/dev/null bs=4096 count=1 iflag=direct status=none" % SHARED,
               check=False).returncode == 0


def test_export_and_import_come_back_after_a_reboot_of_the_exporter(lab, exported):
    reboot(lab, "hosta")
    # hosta: the export, and its own shared path to its LV, with no playbook run
    key = {"lio": "lio", "tgt": "tgt", "aoe": "vblade"}[exported]
    wait_for(lambda: exported_on_hosta(lab)[key], 180, "hosta exports %s again" % LV)
    if exported == "aoe":
        [unit] = [u.rsplit("/", 1)[1] for u in exported_on_hosta(lab)["vblade"]]
        wait_for(lambda: lab.run("hosta", ["systemctl", "is-active", unit], check=False).stdout.strip() == "active",
                 120, "%s active" % unit)
    assert lab.run("hosta", ["readlink", "-f", SHARED]).stdout.strip() == \
        lab.run("hosta", ["readlink", "-f", LV_PATH]).stdout.strip()
    # hostb: the session logs in again (open-iscsi retries), the aoe driver finds the device again (its discover
    # every 60 s, vblade's announcement)
    wait_for(lambda: import_works(lab), 300, "hostb's import of %s works again" % SHARED)
    if exported != "aoe":
        sessions = lab.sh("hostb", "iscsiadm -m session -P 3 2>/dev/null; true").stdout
        assert TARGET in sessions and "LOGGED_IN" in sessions, sessions[-2000:]
    expected = write_through_import(lab)
    assert read_sha256(lab, "hosta", LV_PATH) == expected


def storage_state(lab):
    """What the refusals must leave as it is: hosta's exports, vblade units and LVs, hostb's sessions, shared
    paths and their udev rules (hostb's AoE devices are compared by the caller: a vblade started by hand
    announces itself)."""
    imported = imported_on_hostb(lab)
    imported.pop("aoe_devices")
    return {"exported": exported_on_hosta(lab), "imported": imported,
            "sessions": lab.sh("hostb", "iscsiadm -m session 2>/dev/null; true").stdout,
            "links": lab.sh("hostb", "find /dev/sanless -mindepth 3 2>/dev/null | sort; "
                                     "ls /etc/udev/rules.d | grep sanless; true").stdout,
            "units": lab.sh("hosta", "ls /etc/systemd/system | grep sanless-vblade; true").stdout,
            "lio": lab.sh("hosta", "targetcli ls 2>/dev/null; true").stdout,
            "lvs": sorted(lab.run("hosta", ["lvs", "--noheadings", "-o", "lv_name", "xenvg"]).stdout.split())}


def occupied(lab, case):
    """(extra args asking web01 for web05's LUN or slot, the refusal expected)."""
    if case == "aoe":
        [unit] = [u.rsplit("/", 1)[1] for u in exported_on_hosta(lab)["vblade"]]
        slot = int(unit[:-len(".service")].rsplit("-", 1)[1])
        return (["-e", '{"disk_export_slots": [%d]}' % slot],
                r"e1\.%d is occupied: (vblade pid \d+|%s) exports %s there" % (slot, unit, LV_PATH))
    lun = 0 if case == "lio" else 1  # tgt's LUN 0 is its controller: the lowest free LUN is 1
    return (["-e", '{"disk_export_luns": [%d]}' % lun],
            r"LUN %d of %s is occupied: %s exports %s there" % (lun, TARGET.replace(".", r"\."), case, LV_PATH))


def test_bad_input_is_refused_before_any_change(lab, exported):
    args = CASES[exported]
    before = storage_state(lab)
    refused(lab, ["-e", "vm=web05$(reboot)", "-e", "to=hostb"] + args, r"vm must be a VM name")
    refused(lab, ["-e", "vm=%s" % VM, "-e", "to=hostb;reboot"] + args, r"invalid dom0 name 'hostb;reboot'")
    refused(lab, ["-e", "vm=%s" % VM, "-e", "to=hostb`id`"] + args, r"invalid dom0 name 'hostb`id`'")
    refused(lab, ["-e", "vm=bigdisk01", "-e", "to=hosta"] + args, r"hostb: LV xenvg/bigdisk01-disk does not exist")
    extra, message = occupied(lab, exported)
    refused(lab, ["-e", "vm=web01", "-e", "to=hostb"] + args + extra, message)
    assert storage_state(lab) == before


def test_a_wrong_chap_secret_is_refused_and_changes_nothing(lab, lv):
    """iSCSI (LIO) with CHAP: hostb logged out, then an import with the wrong secret fails on authorization, leaves
    no session and no shared path and the export as it was; the right one logs in again."""
    right = ["-e", '{"disk_export_chap_secret": "rightsecret-1234"}']
    export(lab, *(CASES["lio"] + right))
    lab.run("hostb", ["test", "-b", SHARED])
    import_args = "target=%s portal=%s owner=hosta vg=xenvg lv=%s" % (TARGET, lab.ip("hosta"), LV)
    lab.ansible("hostb", "sanless.xen.iscsi_initiator", import_args + " state=absent")
    before = storage_state(lab)
    assert before["imported"] == {"link": "", "iscsi_sessions": 0}, before
    proc = lab.ansible("hostb", "sanless.xen.iscsi_initiator",
                       import_args + " chap_user=sanless chap_password=wrongsecret-99 timeout=20", check=False)
    assert proc.returncode != 0 and "CHAP authorization failed" in proc.stdout, proc.stdout[-3000:]
    assert "wrongsecret-99" not in proc.stdout + proc.stderr
    assert storage_state(lab) == before
    # the node record the discovery wrote is all it left
    lab.run("hostb", ["iscsiadm", "-m", "node", "-T", TARGET, "-p", "%s:3260" % lab.ip("hosta"), "--op", "delete"],
            check=False)
    export(lab, *(CASES["lio"] + right))
    assert imported_on_hostb(lab)["iscsi_sessions"] == 1
    expected = write_through_import(lab)
    assert read_sha256(lab, "hosta", LV_PATH) == expected
