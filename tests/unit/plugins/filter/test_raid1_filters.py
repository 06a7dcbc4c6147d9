# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The raid1 filters the provision and raid1 roles use, on the lab's recorded storage facts and md states (mdadm 4.2):
the guest config xen_domain writes from the layout reads back as the same legs; health from registered results."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter import raid1 as filters
from ansible_collections.sanless.xen.plugins.module_utils import md, xen

SPEC = {"name": "web07", "vg": "xenvg", "disks": [
    {"name": "root", "lv": "web07-root", "size_bytes": 1 << 30, "vdev": "xvda", "raid1": False},
    {"name": "data", "lv": "web07-data", "size_bytes": 1 << 28, "vdev": "xvdb", "partner_vdev": "xvdc"}]}


def test_the_config_written_from_the_layout_reads_back_as_its_legs():
    layout = filters.raid1_layout(SPEC, "hosta", "hostb")
    text = xen.render_domain_config(xen.build_domain_config("web07", 256, disks=layout["domain_disks"], kernel="/k"))
    disks = filters.raid1_config_disks(text, "web07", ["hosta", "hostb"])
    assert [(d["name"], d["mirrored"]) for d in disks] == [("root", False), ("data", True)]
    assert disks[1]["legs"] == layout["disks"][1]["legs"]
    # the inventory gives the same legs while no dom0 holding the config answers
    inventory = {"xen_home": "hosta", "xen_raid1_partner": "hostb",
                 "xen_disks": [dict(d, size="1G") for d in SPEC["disks"]]}
    assert filters.raid1_inventory_disks(inventory, "web07")[1]["legs"] == layout["disks"][1]["legs"]
    with pytest.raises(AnsibleFilterError, match="raid1 layout of web07"):
        filters.raid1_layout(SPEC, "hosta", "hosta")


def test_a_degraded_config_reads_back_with_the_left_out_leg_from_the_inventory():
    # the config the failover writes on hostb when hosta (web07's home) died: hostb's leg of data only (a VM whose
    # every disk is mirrored, root dropped here for that)
    layout = filters.raid1_layout(dict(SPEC, disks=SPEC["disks"][1:]), "hosta", "hostb")
    kept = [d for d in layout["domain_disks"] if d["target"].startswith("/dev/sanless/hostb/")]
    text = xen.render_domain_config(xen.build_domain_config("web07", 256, disks=kept, kernel="/k"))
    inventory = {"xen_home": "hosta", "xen_raid1_partner": "hostb", "xen_disks": [dict(SPEC["disks"][1], size="1G")]}
    [disk] = filters.raid1_config_disks(text, "web07", ["hosta", "hostb"], inventory)
    assert disk["mirrored"] and [(leg["host"], leg["vdev"], leg.get("attached")) for leg in disk["legs"]] == [
        ("hosta", "xvdb", False), ("hostb", "xvdc", None)]
    # no partner in the inventory: the config's one leg stands
    [disk] = filters.raid1_config_disks(text, "web07", ["hosta", "hostb"], dict(inventory, xen_raid1_partner=""))
    assert not disk["mirrored"] and len(disk["legs"]) == 1
    # the repair puts the leg back: the config reads back with both legs
    again = filters.raid1_config_with_legs(text, [disk for disk in layout["disks"][0]["legs"] if disk["host"] == "hosta"])
    assert filters.raid1_config_disks(again, "web07", ["hosta", "hostb"])[0]["mirrored"]


def test_where_prefers_the_config_where_the_guest_runs():
    hostvars = {"hosta": {"raid1_info": {"host": {}, "domains": [{"name": "web07"}],
                                         "config_files": {"web07": "/etc/xen/auto/web07.cfg"}}},
                "hostb": {"raid1_info": {"host": {}, "domains": [], "config_files": {"web07": "/etc/xen/auto/web07.cfg"}}}}
    where = filters.raid1_where(hostvars, ["hosta", "hostb"], "web07")
    assert (where["owner"], where["owners"]) == ("hosta", ["hosta", "hostb"])
    hostvars["hosta"]["raid1_info"]["domains"] = []
    assert filters.raid1_where(hostvars, ["hosta", "hostb"], "web07")["owner"] is None


def test_where_and_health_from_registered_results(lab_storage_facts, fixture_text):
    facts = {"hosta": lab_storage_facts("hosta"), "hostb": lab_storage_facts("hostb")}
    hostvars = {"hosta": {"raid1_info": {"host": {}, "domains": [{"name": "Domain-0"}, {"name": "web01"}],
                                         "config_files": {"web01": "/etc/xen/auto/web01.cfg"},
                                         "disk_exports": facts["hosta"]}},
                "hostb": {"raid1_info": {"unreachable": True, "msg": "No route to host"}}}
    where = filters.raid1_where(hostvars, ["hosta", "hostb"], "web01")
    assert where == {"answered": ["hosta"], "down": ["hostb"], "running_on": ["hosta"], "guest_host": "hosta",
                     "owner": "hosta", "owners": ["hosta"], "config": "/etc/xen/auto/web01.cfg"}
    legs = [{"host": h, "vg": "xenvg", "lv": lv, "path": "/dev/sanless/%s/xenvg/%s" % (h, lv), "vdev": v}
            for h, lv, v in (("hosta", "rec0", "dm-0"), ("hostb", "rec2", "dm-1"))]
    detail = md.parse_detail(fixture_text("mdadm", "4.2", "detail-faulty.txt"))
    stat = md.parse_mdstat(fixture_text("mdadm", "4.2", "mdstat-faulty.txt"))["arrays"]["md90"]
    md_results = {"results": [{"item": {"name": "data"}, "array": md.array_health(detail, stat), "changed": False}]}
    health = filters.raid1_health(hostvars, ["hosta", "hostb"], "web01",
                                  [{"name": "data", "mirrored": True, "legs": legs}], md_results)
    assert health["state"] == "degraded" and [c["cause"] for c in health["causes"]] == ["host_down"]
    lines = filters.raid1_status_lines(health)
    assert lines[0] == "web01: DEGRADED (runs on hosta)"
    assert any("CAUSE host_down: hostb's leg /dev/sanless/hostb/xenvg/rec2: hostb is down" in line for line in lines)
    # md not read (the guest did not answer): the md of the disk is unknown
    unread = {"results": [{"item": {"name": "data"}, "unreachable": True}]}
    health = filters.raid1_health(hostvars, ["hosta", "hostb"], "web01", [{"name": "data", "legs": legs}], unread)
    assert health["disks"][0]["array"] is None
    plan = filters.raid1_repair_plan(health, False, "hostb", {"host": "hostc", "why": "ranked first"})
    assert plan["refused"] == "the md state of web01 could not be read in the guest: nothing is changed blind"
