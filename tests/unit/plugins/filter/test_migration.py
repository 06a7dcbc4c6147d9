"""The migrate role's preflight decision (plugins/filter/migration.py) and livemigrate's pure helpers."""
import pytest

from ansible_collections.sanless.xen.plugins.filter.migration import plan_migration
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.dm import parse_table

GIB = 1024 ** 3
CAPS = ("pv", "hvm", "hap", "shadow", "gnttab-v1", "gnttab-v2")


def report(runs_vm=False, free_mib=626, vg_free=8 * GIB, caps=CAPS, lvs=(), minors=(), ports=(22,), ssh_ok=None,
           journal=None):
    facts = {"runs_vm": runs_vm, "free_memory_mib": free_mib, "virt_caps": list(caps), "vgs": {"xenvg": vg_free},
             "lvs": {"xenvg": list(lvs)}, "used_minors": list(minors), "listening_ports": list(ports),
             "disks": [], "ssh_ok": ssh_ok or {}, "config_text": None, "vm_memory_mib": None, "vm_type": None}
    if runs_vm:
        facts.update(vm_memory_mib=96, vm_type="pv", config_text='name = "web01"\n',
                     disks=[{"pdev_path": "/dev/xenvg/web01-disk", "vdev": "xvda", "vg": "xenvg", "lv": "web01-disk",
                             "size_bytes": 256 * 1024 * 1024}])
    return {"changed": False, "preflight": facts, "journal": journal}


ADDR = {"hosta": "10.77.0.11", "hostb": "10.77.0.12", "hostc": "10.77.0.13"}


def test_plan_picks_the_other_host_and_free_minors():
    reports = {"hosta": report(runs_vm=True, lvs=["web01-disk"], minors=[10], ssh_ok={"10.77.0.12": True}),
               "hostb": report(minors=[11], ports=[22, 7712])}
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["problems"] == []
    assert (plan["source"], plan["target"]) == ("hosta", "hostb")
    # 10 is used on hosta, 11 on hostb, port 7712 listens on hostb
    assert plan["minors"] == [13] and plan["ports"] == [7713]
    assert plan["disks"] == [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 256 * 1024 * 1024}]


def test_target_picked_by_free_memory_among_fitting_hosts():
    reports = {"hosta": report(runs_vm=True), "hostb": report(free_mib=200), "hostc": report(free_mib=500)}
    assert plan_migration(reports, ADDR, "web01")["target"] == "hostc"
    reports["hostc"] = report(free_mib=500, vg_free=GIB // 8)
    assert plan_migration(reports, ADDR, "web01")["target"] == "hostb"


@pytest.mark.parametrize("reports,vm,target,message", [
    ({"hosta": report(), "hostb": report()}, "web01", None, "unknown VM web01: it runs on none of the dom0s"),
    ({"hosta": report(runs_vm=True), "hostb": report(runs_vm=True)}, "web01", None, "runs on several dom0s"),
    ({"hosta": report(runs_vm=True), "hostb": report()}, "web01", "hosta", "target = source"),
    ({"hosta": report(runs_vm=True), "hostb": report()}, "web01", "hostz", "unknown target hostz"),
    ({"hosta": report(runs_vm=True), "hostb": report(free_mib=50)}, "web01", "hostb",
     "hostb: needs 96 MiB of free memory for web01, has 50 MiB"),
    ({"hosta": report(runs_vm=True), "hostb": report(vg_free=100 * 1024 * 1024)}, "web01", "hostb",
     "hostb: VG xenvg needs 272629760 bytes (disks + DRBD metadata), has 104857600 free (short by 167772160)"),
    ({"hosta": report(runs_vm=True), "hostb": report(caps=["pv", "hvm", "hap"])}, "web01", "hostb",
     "hostb: Xen without shadow paging cannot receive the PV guest web01"),
    ({"hosta": report(runs_vm=True), "hostb": report(lvs=["web01-disk"])}, "web01", "hostb",
     "hostb: LV xenvg/web01-disk already exists there"),
    ({"hosta": report(runs_vm=True, ssh_ok={"10.77.0.12": False}), "hostb": report()}, "web01", "hostb",
     "the source cannot ssh to hostb"),
    ({"hosta": report(runs_vm=True), "hostb": {"unreachable": True}}, "web01", "hostb", "target hostb did not answer"),
])
def test_preflight_problems(reports, vm, target, message):
    plan = plan_migration(reports, ADDR, vm, target)
    assert any(message in problem for problem in plan["problems"]), plan["problems"]


def test_missing_vg_on_target_is_named():
    target = report()
    target["preflight"]["vgs"] = {"othervg": 8 * GIB}
    plan = plan_migration({"hosta": report(runs_vm=True), "hostb": target}, ADDR, "web01", "hostb")
    assert any("hostb: has no VG xenvg" in p for p in plan["problems"])


def test_journal_means_resume_and_a_different_target_is_refused():
    journal = {"id": "abc", "source": "hosta", "target": "hostb", "config_text": None,
               "disks": [{"vg": "xenvg", "lv": "web01-disk", "size_bytes": 1, "minor": 12, "port": 7712}]}
    reports = {"hosta": report(runs_vm=True, journal=journal), "hostb": report(), "hostc": report()}
    plan = plan_migration(reports, ADDR, "web01")
    assert plan["resume"] and plan["migration_id"] == "abc" and plan["minors"] == [12] and plan["problems"] == []
    plan = plan_migration(reports, ADDR, "web01", "hostc")
    assert "in the middle of a migration hosta -> hostb" in plan["problems"][0]


def test_abort_without_journal_is_refused():
    plan = plan_migration({"hosta": report(runs_vm=True), "hostb": report()}, ADDR, "web01", action="abort")
    assert plan["problems"] == ["no migration of web01 is in progress on any dom0: nothing to abort"]


def test_meta_size_covers_bitmap_and_activity_log():
    assert lm.meta_bytes(256 * 1024 * 1024) == 4 * 1024 * 1024
    # 1 TiB needs a 32 MiB bitmap: 33 MiB rounded up to whole extents
    assert lm.meta_bytes(1024 ** 4) == 36 * 1024 * 1024


def test_disk_names_and_drbd_table_detection():
    names = lm.disk_names("web-01", "xenvg", "web-01-disk", 0, 12)
    assert names["lv_dm"] == "xenvg-web--01--disk" and names["resource"] == "sl-web-01-0"
    assert names["port"] == 7712 and names["device"] == "/dev/drbd12"
    assert lm.is_drbd_table(parse_table("0 524288 linear 147:12 0\n"), names)
    assert not lm.is_drbd_table(parse_table("0 524288 linear 254:0 2048\n"), names)
    assert not lm.is_drbd_table(parse_table("0 262144 linear 147:12 0\n262144 262144 linear 254:0 2048\n"), names)


@pytest.mark.parametrize("name", ["web;rm", "a b", "../x", "-x", "", "x" * 65, "web$(id)"])
def test_bad_vm_names_refused(name):
    with pytest.raises(lm.MigrationError, match="invalid VM name"):
        lm.check_vm_name(name)
