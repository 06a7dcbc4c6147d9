# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sanless.xen.xen inventory plugin on the xl recordings of the lab (fixtures/xl/4.17.5, see its SOURCE).

Each dom0 answers through a replay keyed by the exact ssh argv. What was never recorded is not made up:
``ls -p /etc/xen/auto`` is run for real on a folder laid out like one, and an unreachable dom0 is a real
ssh to a closed local port. hostb's ``xl list -l`` is not recorded either; where a test needs hostb to run
a domU, it replays hosta's ``xl list -l fxm`` of the same VM before it migrated to hostb (the same
domain config; the domid is taken from hostb's recorded ``xl list``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from ansible_collections.sanless.xen.plugins.inventory import xen as xen_inventory
from ansible_collections.sanless.xen.plugins.module_utils.runner import C_LOCALE
from ansible_collections.sanless.xen.plugins.module_utils.xen import ssh_argv

NAME = "sanless.xen.xen"
XL = ("xl", "4.17.5")
REMOTE = ["env", "LANG=C", "LC_ALL=C"]
REAL_COMMANDS = xen_inventory.LocalCommands


def make_plugin():
    """The plugin as the plugin loader sets it up (its option definitions registered, its names set)."""
    inventory_loader._load_config_defs(NAME, xen_inventory, xen_inventory.__file__)
    plugin = xen_inventory.InventoryModule()
    inventory_loader._update_object(obj=plugin, name=NAME, path=xen_inventory.__file__, resolved=NAME)
    return plugin


def real_ls(path):
    """What ``ls -p PATH`` prints, run for real in the C locale (no dom0 recording of it exists)."""
    proc = subprocess.run(["ls", "-p", str(path)], env=dict(os.environ, **C_LOCALE), capture_output=True, text=True,
                          check=False)
    return proc.returncode, proc.stdout, proc.stderr


def auto_dir(tmp_path, name, vms):
    """A folder laid out like /etc/xen/auto with VM.cfg for each of vms."""
    folder = tempfile.mkdtemp(prefix=name, dir=str(tmp_path))
    for vm in vms:
        with open(os.path.join(folder, "%s.cfg" % vm), "w", encoding="utf-8") as handle:
            handle.write('name = "%s"\n' % vm)
    return folder


class Dom0s(object):
    """Stands in for the controller's ssh: answers (rc, stdout, stderr) per exact argv, records every call.
    Argv it does not know are run for real (the unreachable dom0s), all others fail the test."""

    def __init__(self, outputs, real=()):
        self.outputs = dict((tuple(argv), answer) for argv, answer in outputs.items())
        self.real = [tuple(prefix) for prefix in real]
        self.calls = []
        self.check_mode = False

    def run_command(self, args, **kwargs):
        self.calls.append(list(args))
        if tuple(args) in self.outputs:
            return self.outputs[tuple(args)]
        if any(tuple(args[:len(prefix)]) == prefix for prefix in self.real):
            return REAL_COMMANDS(10).run_command(args, **kwargs)
        raise AssertionError("unexpected command %r" % (args,))


def answers(prefix, fixture_text, info, xl_list, xl_list_long, auto):
    """A dom0's answers to the plugin's four commands, from recordings (and a real ls of auto)."""
    return {
        tuple(prefix + ["xl", "info"]): (0, fixture_text(*XL + (info,)), ""),
        tuple(prefix + ["xl", "list"]): (0, fixture_text(*XL + (xl_list,)), ""),
        tuple(prefix + ["xl", "list", "-l"]): (0, fixture_text(*XL + (xl_list_long,)), ""),
        tuple(prefix + ["ls", "-p", "/etc/xen/auto"]): real_ls(auto),
    }


@pytest.fixture
def lab(tmp_path, fixture_text, monkeypatch):
    """run(config_text, dom0s=Dom0s, inventory=None, cache=True) -> (inventory, dom0s, warnings)."""
    warnings = []

    def run(config, dom0s, inventory=None, cache=True, name="cluster.xen.yml"):
        path = tmp_path / name
        path.write_text(config)
        monkeypatch.setattr(xen_inventory, "LocalCommands", lambda timeout: dom0s)
        plugin = make_plugin()
        monkeypatch.setattr(plugin.display, "warning", lambda msg, *a, **k: warnings.append(msg))
        assert plugin.verify_file(str(path))
        inventory = inventory or InventoryData()
        plugin.parse(inventory, DataLoader(), str(path), cache=cache)
        if plugin.get_option("cache"):
            plugin.update_cache_if_changed()  # what InventoryManager does after parse
        return inventory, dom0s, warnings
    return run


def prefix(host, **kwargs):
    return ssh_argv(host, REMOTE, **kwargs)


def hosta_answers(tmp_path, fixture_text, host="hosta", auto=("fxrec",), **kwargs):
    """hosta running fxrec (record.py phase domu), its /etc/xen/auto holding auto."""
    return answers(prefix(host, **kwargs), fixture_text, "xl-info.txt", "xl-list-domu.txt", "xl-list-l.json",
                   auto_dir(tmp_path, "auto-%s" % host, auto))


def hostb_answers(tmp_path, fixture_text, host="hostb", auto=(), **kwargs):
    """hostb after fxm arrived (phase migrate); its xl list -l is hosta's of fxm before the move (see above)."""
    return answers(prefix(host, **kwargs), fixture_text, "xl-info-peer.txt", "xl-list-migrate-target-after.txt",
                   "xl-list-l-fxm.json", auto_dir(tmp_path, "auto-%s" % host, auto))


def merged(*parts):
    out = {}
    for part in parts:
        out.update(part)
    return out


def hostvars(inventory, name):
    return dict((k, v) for k, v in inventory.get_host(name).get_vars().items()
                if k not in ("inventory_file", "inventory_dir", "inventory_hostname", "inventory_hostname_short",
                             "group_names"))


def members(inventory, group):
    return sorted(host.name for host in inventory.groups[group].get_hosts())


CLUSTER = """
plugin: sanless.xen.xen
dom0s:
  - hosta
  - name: hostb
    ansible_host: 10.77.0.12
    ansible_user: root
"""


def test_domus_under_their_dom0_with_their_facts(lab, tmp_path, fixture_text):
    dom0s = Dom0s(merged(hosta_answers(tmp_path, fixture_text),
                         hostb_answers(tmp_path, fixture_text, host="10.77.0.12", user="root", auto=("fxm", "web02"))))
    inventory, dom0s, warnings = lab(CLUSTER, dom0s)
    assert warnings == []
    assert members(inventory, "xen_dom0s") == ["hosta", "hostb"]
    assert members(inventory, "xen_domus") == ["fxm", "fxrec"]
    assert members(inventory, "dom0_hosta") == ["fxrec"]
    assert members(inventory, "dom0_hostb") == ["fxm"]
    assert hostvars(inventory, "fxrec") == {
        "xen_dom0": "hosta", "xen_home": "hosta", "xen_state": "running", "xen_memory_mib": 96, "xen_vcpus": 1,
        "xen_type": "pv", "xen_domid": 7, "xen_uuid": "cf25e9ab-c59b-4a6f-bbc5-b1280d8e6a1a",
        "xen_disks": [{"target": "/dev/xenvg/fxrec-disk", "vdev": "xvda", "mode": "w"}], "xen_storage_mode": "plain"}
    fxm = hostvars(inventory, "fxm")
    assert (fxm["xen_dom0"], fxm["xen_home"], fxm["xen_domid"], fxm["xen_state"]) == ("hostb", "hostb", 10, "running")
    assert hostvars(inventory, "hosta") == {
        "xen_unreachable": False, "xen_total_memory_mib": 1023, "xen_free_memory_mib": 626, "xen_nr_cpus": 2,
        "xen_version": "4.17.5", "xen_virt_caps": ["pv", "hvm", "hap", "shadow", "gnttab-v1", "gnttab-v2"]}
    assert hostvars(inventory, "hostb")["ansible_host"] == "10.77.0.12"
    assert hostvars(inventory, "hostb")["ansible_user"] == "root"
    # Four commands a dom0, each once, over ssh in the C locale; no Domain-0 host.
    commands = []
    for call in dom0s.calls:
        assert call[:3] == ["ssh", "-o", "BatchMode=yes"]
        at = call.index("--") + 2
        assert call[at:at + 3] == REMOTE
        commands.append(" ".join(call[at + 3:]))
    assert sorted(commands) == sorted(["xl info", "xl list", "xl list -l", "ls -p /etc/xen/auto"] * 2)
    assert "Domain-0" not in inventory.hosts


def test_home_elsewhere_missing_auto_dir_and_config_on_two_dom0s(lab, tmp_path, fixture_text):
    # fxrec runs on hosta, its config is on hostb; fxm's config is on both; hosta has no /etc/xen/auto at all.
    outputs = merged(hosta_answers(tmp_path, fixture_text),
                     hostb_answers(tmp_path, fixture_text, host="10.77.0.12", user="root", auto=("fxrec", "fxm")))
    outputs[tuple(prefix("hosta") + ["ls", "-p", "/etc/xen/auto"])] = real_ls(tmp_path / "no-such-folder")
    inventory, _dom0s, warnings = lab(CLUSTER, Dom0s(outputs))
    assert hostvars(inventory, "fxrec")["xen_home"] == "hostb"
    assert hostvars(inventory, "fxm")["xen_home"] == "hostb"
    assert warnings == []
    outputs[tuple(prefix("hosta") + ["ls", "-p", "/etc/xen/auto"])] = real_ls(auto_dir(tmp_path, "a2", ["fxm"]))
    inventory, _dom0s, warnings = lab(CLUSTER, Dom0s(outputs), name="again.xen.yml")
    assert "xen_home" not in hostvars(inventory, "fxm")
    assert warnings == ["domU fxm has a config in /etc/xen/auto on dom0s hosta, hostb; xen_home is not set"]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs an ssh client")
def test_unreachable_dom0_is_a_host_and_a_warning(lab, tmp_path, fixture_text):
    config = CLUSTER.replace("ansible_host: 10.77.0.12", "ansible_host: 127.0.0.1\n    ansible_port: 1")
    closed = prefix("127.0.0.1", user="root", port=1)
    inventory, dom0s, warnings = lab(config, Dom0s(hosta_answers(tmp_path, fixture_text), real=[closed]))
    assert members(inventory, "xen_dom0s") == ["hosta", "hostb"]
    assert members(inventory, "xen_domus") == ["fxrec"]
    assert "dom0_hostb" not in inventory.groups
    hostb = hostvars(inventory, "hostb")
    assert hostb["xen_unreachable"] is True
    assert hostb["xen_unreachable_reason"].startswith("ssh failed: ")
    assert "Connection refused" in hostb["xen_unreachable_reason"]
    assert "xen_free_memory_mib" not in hostb
    assert warnings == ["dom0 hostb: cannot read it, its domUs are not listed: " + hostb["xen_unreachable_reason"]]
    # The first failure ends that dom0's reading: one ssh, not four.
    assert [call for call in dom0s.calls if call[:len(closed)] == closed] == [closed + ["xl", "info"]]


def test_xl_failure_and_bad_address_make_a_dom0_unreachable(lab, tmp_path, fixture_text):
    outputs = hosta_answers(tmp_path, fixture_text)
    # xl destroy of a missing domain: a real xl failure (rc 1), standing for any failing xl command.
    outputs[tuple(prefix("hosta") + ["xl", "list", "-l"])] = (1, "", fixture_text(*XL + ("xl-destroy-nodomain.stderr",)))
    config = "plugin: sanless.xen.xen\ndom0s: [hosta, {name: hostc, ansible_host: 'hostc;reboot'}]\n"
    inventory, _dom0s, warnings = lab(config, Dom0s(outputs))
    assert inventory.groups["xen_domus"].get_hosts() == []
    reason = hostvars(inventory, "hosta")["xen_unreachable_reason"]
    assert reason.startswith("xl list -l (rc 1) failed: ")
    assert "hostc;reboot" in hostvars(inventory, "hostc")["xen_unreachable_reason"]
    assert len(warnings) == 2


def test_constructed_compose_groups_keyed_groups(lab, tmp_path, fixture_text):
    config = CLUSTER + """
compose:
  xen_memory_kib: xen_memory_mib * 1024
groups:
  plain_vms: xen_storage_mode == 'plain'
  away_from_home: xen_home is defined and xen_home != xen_dom0
keyed_groups:
  - key: xen_type
    prefix: xen_type
  - key: xen_state
    prefix: state
"""
    outputs = merged(hosta_answers(tmp_path, fixture_text, auto=()),
                     hostb_answers(tmp_path, fixture_text, host="10.77.0.12", user="root", auto=("fxrec",)))
    inventory, _dom0s, _warnings = lab(config, Dom0s(outputs))
    assert hostvars(inventory, "fxrec")["xen_memory_kib"] == 96 * 1024
    assert members(inventory, "plain_vms") == ["fxm", "fxrec"]
    assert members(inventory, "away_from_home") == ["fxrec"]
    assert members(inventory, "xen_type_pv") == ["fxm", "fxrec"]
    assert members(inventory, "state_running") == ["fxm", "fxrec"]
    # The dom0s are not constructed: no group from their missing xen_type.
    assert "xen_memory_kib" not in hostvars(inventory, "hosta")


def test_strict_fails_on_a_bad_expression(lab, tmp_path, fixture_text):
    config = "plugin: sanless.xen.xen\ndom0s: [hosta]\nstrict: true\ncompose:\n  x: no_such_var + 1\n"
    with pytest.raises(AnsibleError, match="Could not set x for host fxrec"):
        lab(config, Dom0s(hosta_answers(tmp_path, fixture_text)))
    config = config.replace("strict: true", "strict: false")
    inventory, _dom0s, _warnings = lab(config, Dom0s(hosta_answers(tmp_path, fixture_text)), name="lax.xen.yml")
    assert "x" not in hostvars(inventory, "fxrec")


def test_second_run_reads_the_cache_not_the_dom0s(lab, tmp_path, fixture_text):
    # (jsonfile by its short name: outside ansible's CLIs no collection loader resolves ansible.builtin.*)
    config = CLUSTER + "cache: true\ncache_plugin: jsonfile\ncache_connection: %s\n" % (tmp_path / "c")
    outputs = merged(hosta_answers(tmp_path, fixture_text),
                     hostb_answers(tmp_path, fixture_text, host="10.77.0.12", user="root", auto=("fxm",)))
    first, dom0s, _warnings = lab(config, Dom0s(outputs))
    assert len(dom0s.calls) == 8
    assert os.listdir(str(tmp_path / "c"))
    second, dom0s, _warnings = lab(config, Dom0s(outputs))
    assert dom0s.calls == []
    for host in ("hosta", "hostb", "fxrec", "fxm"):
        assert hostvars(second, host) == hostvars(first, host)
    assert members(second, "dom0_hostb") == ["fxm"]
    # --flush-cache (cache=False): read again, and the cache renewed.
    _third, dom0s, _warnings = lab(config, Dom0s(outputs), cache=False)
    assert len(dom0s.calls) == 8
    # A dom0 added to the config is read; the cached ones are not.
    more = config.replace("  - hosta\n", "  - hosta\n  - name: hostc\n    ansible_host: 10.77.0.13\n")
    hostc = hosta_answers(tmp_path, fixture_text, host="10.77.0.13", auto=())
    _fourth, dom0s, _warnings = lab(more, Dom0s(merged(outputs, hostc)))
    assert len(dom0s.calls) == 4
    assert all("10.77.0.13" in call for call in dom0s.calls)


def test_without_cache_every_run_reads_the_dom0s(lab, tmp_path, fixture_text):
    outputs = hosta_answers(tmp_path, fixture_text)
    lab("plugin: sanless.xen.xen\ndom0s: [hosta]\n", Dom0s(outputs))
    _inventory, dom0s, _warnings = lab("plugin: sanless.xen.xen\ndom0s: [hosta]\n", Dom0s(outputs))
    assert len(dom0s.calls) == 4


def test_dom0s_from_an_inventory_file(lab, tmp_path, fixture_text):
    (tmp_path / "hosts.ini").write_text(
        "[dom0]\n"
        "hosta ansible_host=10.77.0.11 ansible_user=root ansible_ssh_private_key_file=/k/id "
        "ansible_ssh_common_args='-o ProxyCommand=\"ip netns exec sanless-lab nc %h %p\"'\n"
        "[dom0:vars]\nansible_port=2222\n"
        "[other]\nhostz\n")
    config = "plugin: sanless.xen.xen\ndom0_inventory: [hosts.ini]\nssh_user: admin\n"
    proxy = ["-o", "ProxyCommand=ip netns exec sanless-lab nc %h %p"]
    answered = hosta_answers(tmp_path, fixture_text, host="10.77.0.11", user="root", port=2222, identity_file="/k/id",
                             options=proxy)
    inventory, _dom0s, _warnings = lab(config, Dom0s(answered))
    assert members(inventory, "xen_dom0s") == ["hosta"]
    assert "hostz" not in inventory.hosts
    assert members(inventory, "dom0_hosta") == ["fxrec"]
    assert hostvars(inventory, "hosta")["ansible_port"] == 2222
    assert hostvars(inventory, "hosta")["ansible_ssh_common_args"].startswith("-o ProxyCommand=")


def test_dom0s_from_the_sources_given_before(lab, tmp_path, fixture_text):
    inventory = InventoryData()
    inventory.add_group("dom0")
    inventory.add_host("hosta", group="dom0")
    inventory.set_variable("hosta", "ansible_host", "10.77.0.11")
    answered = hosta_answers(tmp_path, fixture_text, host="10.77.0.11")
    inventory, _dom0s, _warnings = lab("plugin: sanless.xen.xen\n", Dom0s(answered), inventory=inventory)
    assert members(inventory, "dom0") == ["hosta"]
    assert members(inventory, "dom0_hosta") == ["fxrec"]
    with pytest.raises(AnsibleParserError, match="no dom0s"):
        lab("plugin: sanless.xen.xen\n", Dom0s({}), name="empty.xen.yml")


def test_a_vm_on_two_dom0s_is_listed_once_with_a_warning(lab, tmp_path, fixture_text):
    # Both dom0s answer with hosta's recordings: fxrec runs on both (as after a split brain).
    outputs = merged(hosta_answers(tmp_path, fixture_text, auto=()),
                     hosta_answers(tmp_path, fixture_text, host="10.77.0.21", auto=()))
    config = "plugin: sanless.xen.xen\ndom0s: [hosta, {name: hosta2, ansible_host: 10.77.0.21}]\n"
    inventory, _dom0s, warnings = lab(config, Dom0s(outputs))
    assert members(inventory, "dom0_hosta") == members(inventory, "dom0_hosta2") == ["fxrec"]
    assert hostvars(inventory, "fxrec")["xen_dom0"] == "hosta"
    assert warnings == ["domU fxrec runs on dom0s hosta and hosta2; listed with xen_dom0 hosta"]


def test_variables_of_earlier_sources_are_kept(lab, tmp_path, fixture_text):
    # -i lab.yml -i lab.xen.yml: the VM settings of group xen_vms stay what provision.yml reads.
    inventory = InventoryData()
    inventory.add_group("xen_vms")
    inventory.add_host("fxrec", group="xen_vms")
    inventory.set_variable("fxrec", "xen_home", "hostb")
    inventory.set_variable("fxrec", "xen_disks", [{"name": "disk", "size": "256M", "vdev": "xvda"}])
    inventory, _dom0s, _warnings = lab("plugin: sanless.xen.xen\ndom0s: [hosta]\n",
                                       Dom0s(hosta_answers(tmp_path, fixture_text)), inventory=inventory)
    fxrec = hostvars(inventory, "fxrec")
    assert (fxrec["xen_home"], fxrec["xen_disks"][0]["name"]) == ("hostb", "disk")
    assert (fxrec["xen_dom0"], fxrec["xen_storage_mode"]) == ("hosta", "plain")
    assert members(inventory, "xen_vms") == members(inventory, "dom0_hosta") == ["fxrec"]


@pytest.mark.parametrize("config, message", [
    ("dom0s: [hosta]\ndom0_inventory: [x.ini]\n", "not both"),
    ("dom0s: [hosta, hosta]\n", "named twice"),
    ("dom0s: [{name: hosta, ansible_hots: 10.0.0.1}]\n", "unknown keys ansible_hots"),
    ("dom0s: [{ansible_host: 10.0.0.1}]\n", "a name or a dict with a name"),
    ("dom0_inventory: [cluster.xen.yml]\n", "names this file itself"),
])
def test_config_mistakes(lab, config, message):
    with pytest.raises(AnsibleParserError, match=message):
        lab("plugin: sanless.xen.xen\n" + config, Dom0s({}))


def test_no_ssh_client(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    real = Dom0s({}, real=[prefix("hosta")])
    inventory, _dom0s, _warnings = lab("plugin: sanless.xen.xen\ndom0s: [hosta]\n", real)
    assert hostvars(inventory, "hosta")["xen_unreachable_reason"].startswith("cannot run ssh: ")


def test_verify_file(tmp_path):
    plugin = make_plugin()
    for name, ok in (("a.xen.yml", True), ("a.xen.yaml", True), ("lab.yml", False), ("xen.yml", False)):
        (tmp_path / name).write_text("plugin: sanless.xen.xen\n")
        assert plugin.verify_file(str(tmp_path / name)) is ok, name


def test_group_names_are_sanitised():
    assert xen_inventory.dom0_group_name("hosta") == "dom0_hosta"
    assert xen_inventory.dom0_group_name("xen-1.example.com") == "dom0_xen_1_example_com"
