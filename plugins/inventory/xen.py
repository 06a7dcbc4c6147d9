# Copyright: sanless.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: xen
short_description: The domUs of Xen dom0s, read with xl over ssh
version_added: 0.1.0
author:
  - sanless.xen developers (@sanless)
description:
  - Reads every dom0 over ssh (C(xl info), C(xl list), C(xl list -l), C(ls -p /etc/xen/auto)) and lists each domU
    as a host in group C(xen_domus) and in group C(dom0_<dom0>) of the dom0 it runs on (the dom0 name with every
    character other than letters, digits and C(_) made C(_)).
  - "DomU variables: C(xen_dom0) (the dom0 it runs on), C(xen_state) (running, paused, shutdown, crashed, dying),
    C(xen_memory_mib) and C(xen_vcpus) (as C(xl list) shows them), C(xen_type) (pv, pvh, hvm), C(xen_disks)
    (C(target) path on the dom0, C(vdev), C(mode)), C(xen_storage_mode) (V(plain) when every disk is
    C(/dev/<vg>/<lv>), V(drbd) when every disk is C(/dev/drbdN), V(shared) when every disk is on its shared path
    C(/dev/sanless/<owner>/<vg>/<lv>)), C(xen_home) (the dom0 holding
    C(/etc/xen/auto/<vm>.cfg), the one that starts it at boot), C(xen_domid) and C(xen_uuid). A value that is not
    known (no disk, disks of mixed kinds, no config in C(/etc/xen/auto) or one on several dom0s) is left unset."
  - "The dom0s are hosts in group C(xen_dom0s) with C(xen_total_memory_mib), C(xen_free_memory_mib),
    C(xen_nr_cpus), C(xen_version), C(xen_virt_caps) from C(xl info), and C(xen_unreachable). A dom0 that cannot
    be read (ssh fails, C(xl) fails or prints what the parsers do not know) is listed with C(xen_unreachable=true)
    and C(xen_unreachable_reason), and a warning: its domUs are missing from the inventory, and so is the home of
    VMs whose config is only there."
  - The dom0s come from O(dom0s), or from the group O(dom0_group) of the inventory sources in O(dom0_inventory),
    or, when neither is given, from group O(dom0_group) of the inventory sources given before this one
    (C(ansible-inventory -i hosts.ini -i cluster.xen.yml)).
  - The names of a VM in flight during C(xl migrate) (C(VM--incoming), C(VM--migratedaway)) are not listed.
    A VM found on two dom0s is listed once, under the first dom0 read, in both dom0 groups, with a warning.
  - A variable a domU already has from the inventory sources given before this one is kept, so the VM settings
    of group C(xen_vms) (C(xen_home), C(xen_disks), ... as C(playbooks/provision.yml) reads them) win over what
    the dom0s show. Note that C(xen_disks) here has the form of the O(sanless.xen.xen_domain#module:disks) option.
  - O(compose), O(groups) and O(keyed_groups) apply to the domUs. No connection variables are set for them;
    O(compose) can set C(ansible_host), for example.
  - With O(cache) on, the readings of the dom0s are cached (for example with O(cache_plugin=ansible.builtin.jsonfile))
    and later runs use them without ssh until O(cache_timeout) runs out, or until C(--flush-cache); an unreachable
    dom0 stays unreachable in the cache too. A dom0 added to the configuration is read on the next run.
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a source for this plugin.
    required: true
    choices: [sanless.xen.xen]
    type: str
  dom0s:
    description:
      - The dom0s, each a name or a dict with C(name) and optionally C(ansible_host), C(ansible_user),
        C(ansible_port), C(ansible_ssh_private_key_file), C(ansible_ssh_common_args), C(ansible_ssh_extra_args).
      - These connection variables are set on the dom0 hosts and used for the ssh reading.
    type: list
    elements: raw
  dom0_inventory:
    description:
      - Inventory sources (files in any format Ansible reads, or inventory plugin configs) holding the dom0s in
        group O(dom0_group). Relative paths are relative to this file's folder.
      - The dom0s' connection variables there (C(ansible_host), C(ansible_user), C(ansible_port),
        C(ansible_ssh_private_key_file), C(ansible_ssh_common_args), C(ansible_ssh_extra_args)) are used for
        the ssh reading and set on the dom0 hosts.
    type: list
    elements: path
  dom0_group:
    description: The group of the dom0s in O(dom0_inventory), or in the inventory sources given before this one.
    type: str
    default: dom0
  ssh_user:
    description: Remote user, where a dom0 has no C(ansible_user). ssh's own default when neither is set.
    type: str
  ssh_port:
    description: ssh port, where a dom0 has no C(ansible_port).
    type: int
  ssh_private_key_file:
    description: ssh key, where a dom0 has no C(ansible_ssh_private_key_file).
    type: path
  ssh_args:
    description: More ssh arguments for every dom0 (an argv list, for example V([-o, StrictHostKeyChecking=accept-new])).
    type: list
    elements: str
    default: []
  connect_timeout:
    description: ssh C(ConnectTimeout), in seconds.
    type: int
    default: 10
  command_timeout:
    description: Seconds one command may take before the dom0 counts as unreachable.
    type: int
    default: 60
  forks:
    description: How many dom0s are read at the same time.
    type: int
    default: 5
notes:
  - Every command is an argv list run without a shell; ssh runs with C(BatchMode=yes) (never a password prompt)
    and the remote commands with C(LANG=C) and C(LC_ALL=C). C(xl) needs root on the dom0.
  - The C(xl list -l) output must be JSON (the default C(output_format) of C(xl.conf)).
requirements:
  - An ssh client on the controller; Xen's C(xl) toolstack on the dom0s.
seealso:
  - name: community.libvirt.libvirt inventory
    description: The same for libvirt hosts.
    link: https://docs.ansible.com/ansible/latest/collections/community/libvirt/libvirt_inventory.html
"""

EXAMPLES = r"""
# cluster.xen.yml: the domUs of two dom0s, grouped by guest type, cached for an hour.
# Instead of dom0s, `dom0_inventory: [hosts.ini]` takes the dom0s of group dom0 of that inventory.
plugin: sanless.xen.xen
dom0s:
  - hosta
  - name: hostb
    ansible_host: 192.0.2.12
ssh_user: root
ssh_private_key_file: ~/.ssh/id_xen
keyed_groups:
  - key: xen_type
    prefix: xen_type
groups:
  drbd_vms: xen_storage_mode == 'drbd'
  not_home: xen_home is defined and xen_home != xen_dom0
compose:
  xen_memory_gib: xen_memory_mib / 1024
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/sanless-xen-inventory
cache_timeout: 3600
"""

import os
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleParserError
from ansible.inventory.helpers import get_group_vars
from ansible.inventory.manager import InventoryManager
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.template import Templar
from ansible.utils.vars import combine_vars
from ansible.vars.manager import VariableManager

from ansible_collections.sanless.xen.plugins.module_utils.conventions import XEN_AUTO_DIR
from ansible_collections.sanless.xen.plugins.module_utils.runner import RC_NOT_FOUND, CommandError, CommandRunner
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    Toolstack,
    XenParseError,
    auto_config_vms,
    domu_facts,
    ssh_argv,
)

DOM0S_GROUP = "xen_dom0s"
DOMUS_GROUP = "xen_domus"
# The dom0 variables that say how to reach it, read from its source and set on its host.
CONNECTION_VARS = ("ansible_host", "ansible_user", "ansible_port", "ansible_ssh_private_key_file",
                   "ansible_ssh_common_args", "ansible_ssh_extra_args")
# The remote commands run in the C locale (xl prints English and '.' decimals only then).
REMOTE_ENV = ["env", "LANG=C", "LC_ALL=C"]
SSH_FAILED_RC = 255


def dom0_group_name(dom0):
    """``dom0_<name>`` with every character other than letters, digits and '_' made '_'."""
    return "dom0_" + re.sub(r"[^A-Za-z0-9_]", "_", dom0)


class LocalCommands(object):
    """What runner.CommandRunner needs of an AnsibleModule, on the controller: run_command without a shell."""

    check_mode = False

    def __init__(self, timeout):
        self.timeout = timeout

    def run_command(self, args, environ_update=None, **_kwargs):
        env = dict(os.environ)
        env.update(environ_update or {})
        try:
            proc = subprocess.run(list(args), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            return SSH_FAILED_RC, "", "no answer within %d s" % self.timeout
        return proc.returncode, proc.stdout, proc.stderr


def failure_reason(exc, prefix):
    """A short reason for a dom0 that could not be read (the remote command, not the long ssh argv)."""
    if isinstance(exc, CommandError) and exc.rc == RC_NOT_FOUND and not exc.stdout and exc.msg.startswith("cannot run"):
        return exc.msg  # no ssh client here
    if isinstance(exc, CommandError):
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        what = "ssh" if exc.rc == SSH_FAILED_RC else "%s (rc %s)" % (" ".join(exc.cmd[len(prefix):]), exc.rc)
        return "%s failed%s" % (what, (": " + detail[-1]) if detail else "")
    return str(exc)


def read_dom0(commands, prefix):
    """One dom0's reading (JSON-serialisable, what the cache holds): its variables from xl info, the domUs
    (xen.domu_facts), the VMs with a config in /etc/xen/auto (None: unknown) and warnings; or the error."""
    runner = CommandRunner(commands, check_mode=False)
    xl = Toolstack(runner, "xl", prefix=prefix)
    warnings = []
    try:
        info = xl.info()
        domus = domu_facts(xl.list(), xl.list_long())
        listing = runner.run(prefix + ["ls", "-p", XEN_AUTO_DIR], ok_rcs=(0, 2))
    except (CommandError, XenParseError) as exc:
        return {"error": failure_reason(exc, prefix)}
    if listing.rc == 0:
        homes = auto_config_vms(listing.stdout)
    elif "No such file or directory" in listing.stderr:
        homes = []
    else:
        homes = None
        warnings.append("cannot list %s: %s" % (XEN_AUTO_DIR, listing.stderr.strip()))
    host = {"xen_total_memory_mib": info["total_memory_mib"], "xen_free_memory_mib": info["free_memory_mib"],
            "xen_nr_cpus": info["nr_cpus"], "xen_version": info["xen_version"], "xen_virt_caps": info["virt_caps"]}
    return {"error": None, "host": host, "domus": domus, "homes": homes, "warnings": warnings}


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "sanless.xen.xen"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith((".xen.yml", ".xen.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        dom0s = self._dom0s(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        readings = {}
        if use_cache:
            try:
                readings = dict(self._cache[cache_key])
            except KeyError:
                pass
        missing = [dom0 for dom0 in dom0s if dom0["name"] not in readings]
        if missing:
            readings.update(self._read(missing))
            update_cache = self.get_option("cache")
        if update_cache:
            self._cache[cache_key] = readings
        self._populate(dom0s, readings)

    # ----------------------------------------------------------------------- where the dom0s come from

    def _dom0s(self, path):
        """[{name, vars (connection variables), set_vars (whether to set them on the host)}]."""
        listed, sources = self.get_option("dom0s"), self.get_option("dom0_inventory")
        if listed and sources:
            raise AnsibleParserError("%s: give dom0s or dom0_inventory, not both" % path)
        if listed:
            dom0s = [self._listed(entry, path) for entry in listed]
        elif sources:
            dom0s = self._from_sources(sources, path)
        else:
            dom0s = self._from_this_inventory(path)
        names = [dom0["name"] for dom0 in dom0s]
        if len(set(names)) != len(names):
            raise AnsibleParserError("%s: a dom0 is named twice in %s" % (path, ", ".join(names)))
        return dom0s

    def _listed(self, entry, path):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise AnsibleParserError("%s: each of dom0s is a name or a dict with a name, not %r" % (path, entry))
        unknown = sorted(set(entry) - set(CONNECTION_VARS) - {"name"})
        if unknown:
            raise AnsibleParserError("%s: dom0 %s: unknown keys %s (known: name, %s)"
                                     % (path, entry["name"], ", ".join(unknown), ", ".join(CONNECTION_VARS)))
        return {"name": entry["name"], "vars": dict((k, v) for k, v in entry.items() if k != "name"), "set_vars": True}

    def _from_sources(self, sources, path):
        here = os.path.dirname(os.path.abspath(path))
        paths = [os.path.join(here, os.path.expanduser(source)) for source in sources]
        for source in paths:
            if os.path.realpath(source) == os.path.realpath(path):
                raise AnsibleParserError("%s: dom0_inventory names this file itself" % path)
        manager = InventoryManager(loader=self.loader, sources=paths)
        group = manager.groups.get(self.get_option("dom0_group"))
        if group is None or not group.get_hosts():
            raise AnsibleParserError("%s: no dom0s in group %s of %s"
                                     % (path, self.get_option("dom0_group"), ", ".join(paths)))
        variable_manager = VariableManager(loader=self.loader, inventory=manager)
        dom0s = []
        for host in sorted(group.get_hosts(), key=lambda h: h.name):
            hostvars = variable_manager.get_vars(host=host, include_hostvars=False)
            templar = Templar(loader=self.loader, variables=hostvars)
            found = dict((key, templar.template(hostvars[key])) for key in CONNECTION_VARS if key in hostvars)
            dom0s.append({"name": host.name, "vars": found, "set_vars": True})
        return dom0s

    def _from_this_inventory(self, path):
        name = self.get_option("dom0_group")
        group = self.inventory.groups.get(name)
        if group is None or not group.get_hosts():
            raise AnsibleParserError("%s: no dom0s: give dom0s or dom0_inventory, or an inventory source with group "
                                     "%s before this one" % (path, name))
        dom0s = []
        for host in sorted(group.get_hosts(), key=lambda h: h.name):
            hostvars = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
            found = dict((key, hostvars[key]) for key in CONNECTION_VARS if key in hostvars)
            dom0s.append({"name": host.name, "vars": found, "set_vars": False})
        return dom0s

    # ----------------------------------------------------------------------- reading them

    def _prefix(self, dom0):
        """ssh argv up to the remote command (REMOTE_ENV included); ValueError for a bad address/user/port."""
        found = dom0["vars"]
        options = list(self.get_option("ssh_args") or [])
        for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
            options += shlex.split(str(found.get(key) or ""))
        return ssh_argv(str(found.get("ansible_host") or dom0["name"]), REMOTE_ENV,
                        connect_timeout=self.get_option("connect_timeout"),
                        user=found.get("ansible_user") or self.get_option("ssh_user"),
                        port=found.get("ansible_port") or self.get_option("ssh_port"),
                        identity_file=found.get("ansible_ssh_private_key_file") or self.get_option("ssh_private_key_file"),
                        options=options)

    def _read_one(self, dom0):
        try:
            prefix = self._prefix(dom0)
        except ValueError as exc:
            return {"error": str(exc)}
        return read_dom0(LocalCommands(self.get_option("command_timeout")), prefix)

    def _read(self, dom0s):
        """{dom0 name: reading}, the dom0s read in parallel (forks at a time)."""
        with ThreadPoolExecutor(max_workers=max(1, min(self.get_option("forks"), len(dom0s)))) as pool:
            readings = list(pool.map(self._read_one, dom0s))
        return dict((dom0["name"], reading) for dom0, reading in zip(dom0s, readings))

    # ----------------------------------------------------------------------- the inventory

    def _populate(self, dom0s, readings):
        self.inventory.add_group(DOM0S_GROUP)
        self.inventory.add_group(DOMUS_GROUP)
        dom0_names = set(dom0["name"] for dom0 in dom0s)
        homes = {}
        for dom0 in dom0s:
            name, reading = dom0["name"], readings[dom0["name"]]
            self.inventory.add_host(name, group=DOM0S_GROUP)
            if dom0["set_vars"]:
                for key, value in sorted(dom0["vars"].items()):
                    self.inventory.set_variable(name, key, value)
            self.inventory.set_variable(name, "xen_unreachable", bool(reading["error"]))
            if reading["error"]:
                self.inventory.set_variable(name, "xen_unreachable_reason", reading["error"])
                self.display.warning("dom0 %s: cannot read it, its domUs are not listed: %s" % (name, reading["error"]))
                continue
            for warning in reading["warnings"]:
                self.display.warning("dom0 %s: %s" % (name, warning))
            for key, value in sorted(reading["host"].items()):
                self.inventory.set_variable(name, key, value)
            self.inventory.add_group(dom0_group_name(name))
            for vm in reading["homes"] or []:
                homes.setdefault(vm, []).append(name)
        placed = {}
        for dom0 in dom0s:
            reading = readings[dom0["name"]]
            for vm, facts in sorted((reading.get("domus") or {}).items()):
                if vm in dom0_names:
                    self.display.warning("domU %s on dom0 %s has the name of a dom0; not listed" % (vm, dom0["name"]))
                    continue
                self.inventory.add_child(dom0_group_name(dom0["name"]), self.inventory.add_host(vm, group=DOMUS_GROUP))
                if vm in placed:
                    self.display.warning("domU %s runs on dom0s %s and %s; listed with xen_dom0 %s"
                                         % (vm, placed[vm], dom0["name"], placed[vm]))
                    continue
                placed[vm] = dom0["name"]
                self._set_domu(vm, dom0["name"], facts, homes.get(vm, []))

    def _set_domu(self, vm, dom0, facts, homes):
        variables = {"xen_dom0": dom0}
        variables.update(("xen_" + key, value) for key, value in facts.items() if value is not None)
        if len(homes) == 1:
            variables["xen_home"] = homes[0]
        elif homes:
            self.display.warning("domU %s has a config in %s on dom0s %s; xen_home is not set"
                                 % (vm, XEN_AUTO_DIR, ", ".join(homes)))
        given = self.inventory.get_host(vm).vars  # by the inventory sources before this one: kept
        for key, value in sorted(variables.items()):
            if key not in given:
                self.inventory.set_variable(vm, key, value)
        hostvars = self.inventory.get_host(vm).get_vars()
        strict = self.get_option("strict")
        self._set_composite_vars(self.get_option("compose"), hostvars, vm, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), hostvars, vm, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, vm, strict=strict)
