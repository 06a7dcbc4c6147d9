# Copyright: sanless.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lab
short_description: The dom0s of the embedded sanless.xen lab, read from the lab's state file
description:
  - Lists the lab dom0s that C(make lab-up) booted (real Xen dom0s under QEMU, inside a private
    network namespace) in group C(dom0), with the connection settings that reach into that namespace.
  - VMs given in O(vms) are added to group C(xen_vms) with their variables, so the lab inventory
    also describes the guests that the playbooks provision and migrate.
  - "A VM with C(ansible_host) (a lab Debian guest's address on the lab bridge, where its vif joins the dom0s' L2) gets
    the dom0s' connection settings too (root, the lab key, the ssh path into the namespace, python3), unless it sets
    them: it is reached like a dom0, for work inside the guest such as its md RAID1 (storage mode raid1)."
  - Only hosts that are running are listed, so C(make lab-up N=3) and C(N=2) need no other file.
options:
  plugin:
    description: Marks this file as a source for this plugin.
    required: true
    choices: [sanless.xen.lab]
    type: str
  state_file:
    description: The lab's state file, written by C(lab/labctl.py up).
    type: path
    default: ~/.cache/sanless-lab/run/lab.json
  netns:
    description: Network namespace holding the lab bridge; SSH reaches the hosts through it.
    type: str
    default: sanless-lab
  private_key_file:
    description: SSH key the lab image trusts.
    type: path
    default: ~/.cache/sanless-lab/ssh/id_ed25519
  vms:
    description: VMs of the lab, name to variables (group C(xen_vms)).
    type: dict
    default: {}
"""

EXAMPLES = r"""
# inventory/lab.yml
plugin: sanless.xen.lab
vms:
  web01:
    xen_memory_mib: 64
"""

import json
import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin


class InventoryModule(BaseInventoryPlugin):
    NAME = "sanless.xen.lab"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("lab.yml", "lab.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        state_file = os.path.expanduser(self.get_option("state_file"))
        hosts = {}
        if os.path.exists(state_file):
            try:
                with open(state_file) as handle:
                    hosts = json.load(handle).get("hosts", {})
            except (OSError, ValueError) as exc:
                raise AnsibleParserError("cannot read lab state %s: %s" % (state_file, exc)) from exc
        proxy = "-o ProxyCommand=\"ip netns exec %s nc %%h %%p\"" % self.get_option("netns")
        common_args = proxy + " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
        connection = {"ansible_user": "root",
                      "ansible_ssh_private_key_file": os.path.expanduser(self.get_option("private_key_file")),
                      "ansible_ssh_common_args": common_args, "ansible_python_interpreter": "/usr/bin/python3"}
        self.inventory.add_group("dom0")
        for name in sorted(hosts):
            host = hosts[name]
            self.inventory.add_host(name, group="dom0")
            self.inventory.set_variable(name, "ansible_host", host["ip"])
            for key, value in connection.items():
                self.inventory.set_variable(name, key, value)
        self.inventory.add_group("xen_vms")
        for vm_name, variables in sorted((self.get_option("vms") or {}).items()):
            variables = variables or {}
            self.inventory.add_host(vm_name, group="xen_vms")
            if "ansible_host" in variables:
                for key, value in connection.items():
                    if key not in variables:
                        self.inventory.set_variable(vm_name, key, value)
            for key, value in variables.items():
                self.inventory.set_variable(vm_name, key, value)
