#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_domain
short_description: A Xen domain's config file and its state (running, paused, shut down, destroyed, absent)
version_added: 0.1.0
description:
  - Writes the domain config file C(<config_dir>/<name>.cfg) from structured options (when O(memory) is given),
    atomically, keeping the comments and unchanged lines of an existing file.
    C(/etc/xen/auto) is where C(xendomains) starts domains from at boot.
  - Brings the domain to O(state) with the C(xl) toolstack or the legacy C(xm) one, and does nothing when it is there.
  - A changed config file does not restart a running domain; RV(restart_needed) tells, and a warning says so.
  - C(xl create) runs under the dom0's domain build lock (C(/run/sanless-xen/domain-build.lock), shared with
    M(sanless.xen.vm_restart); none in check mode), one build at a time per dom0, as each loads its guest's kernel
    and ramdisk into dom0 memory (two at once got one killed by dom0's OOM killer in the lab). When a create fails
    and leaves the domain paused (the shell of a failed build), that shell is destroyed and the module fails.
  - Invalid input (a VM name with spaces, shell metacharacters or path separators, a disk target with a comma, ...)
    fails before anything runs.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.CHANGES_STATE
options:
  name:
    description:
      - Domain name; also the config file name C(<name>.cfg).
      - 1 to 64 letters, digits, C(_), C(.) or C(-), starting with a letter or a digit.
    type: str
    required: true
  state:
    description:
      - V(running) starts the domain from its config file (C(xl create)) or unpauses it.
      - V(paused) starts it paused or pauses it.
      - V(shutdown) shuts it down gracefully (C(xl shutdown)), waiting up to O(shutdown_timeout) seconds,
        then destroys it if O(force=true) and fails otherwise.
      - V(destroyed) destroys it at once (like pulling the power).
      - V(absent) stops it as V(shutdown) does and removes the config file. Its disks are left alone.
      - The config file is written (when O(memory) is given) for every state but V(absent).
    type: str
    choices: [running, paused, shutdown, destroyed, absent]
    default: running
  toolstack:
    description: Which toolstack to use. V(auto) uses C(xl) when it is installed, else C(xm).
    type: str
    choices: [auto, xl, xm]
    default: auto
  config_dir:
    description: Directory of the config file; created when missing.
    type: path
    default: /etc/xen/auto
  memory:
    description:
      - Memory in MiB. When given, the module manages the config file from the options below;
        when omitted, the existing config file is used as it is (and must exist to start the domain).
    type: int
  vcpus:
    description: Number of virtual CPUs.
    type: int
    default: 1
  type:
    description:
      - Domain type. With C(xm), V(pv) writes no C(type) and V(hvm) writes C(builder = "hvm"); V(pvh) needs C(xl).
    type: str
    choices: [pv, pvh, hvm]
    default: pv
  kernel:
    description: Dom0 path of the guest kernel (PV/PVH direct boot). Exclusive with O(bootloader).
    type: path
  ramdisk:
    description: Dom0 path of the guest initrd.
    type: path
  extra:
    description: Kernel command line appended for direct boot (C(extra)).
    type: str
  bootloader:
    description: Bootloader run in the dom0, for example V(pygrub). Exclusive with O(kernel).
    type: str
  disks:
    description: Disks of the domain, written as C(phy:<target>,<vdev>,<mode>).
    type: list
    elements: dict
    default: []
    suboptions:
      target:
        description: Dom0 block device, for example V(/dev/xenvg/web01-disk).
        type: path
        required: true
      vdev:
        description: Device name in the guest, for example V(xvda).
        type: str
        required: true
      mode:
        description: V(w) read-write or V(r) read-only.
        type: str
        choices: [r, w]
        default: w
  vifs:
    description:
      - Network interfaces, each a dict of C(vif) settings (C(bridge), C(mac), C(ip), C(model), C(vifname), ...),
        written as C(key=value) pairs in key order.
    type: list
    elements: dict
    default: []
  settings:
    description:
      - Other config settings, name to value (strings, numbers or lists of those), for example C(on_crash).
    type: dict
    default: {}
  shutdown_timeout:
    description: Seconds to wait for a graceful shutdown (O(state=shutdown) or O(state=absent)).
    type: int
    default: 120
  force:
    description: Destroy the domain when it does not shut down within O(shutdown_timeout) seconds.
    type: bool
    default: false
  lock_dir:
    description: Folder of the dom0's locks (flock; on tmpfs, they vanish at boot), where C(domain-build.lock) is.
    type: path
    default: /run/sanless-xen
notes:
  - Commands run with C(LANG=C), without a shell.
  - A domain found shut down or crashed but kept by Xen (C(on_poweroff=preserve)) is destroyed before it is started again.
requirements:
  - Xen C(xl) (or C(xm)) toolstack on the dom0.
seealso:
  - module: sanless.xen.lvm_volume
  - module: sanless.xen.xen_info
  - name: xl.cfg(5)
    description: The domain config file format.
    link: https://xenbits.xen.org/docs/unstable/man/xl.cfg.5.html
"""

EXAMPLES = r"""
- name: Web01 running from /etc/xen/auto/web01.cfg
  sanless.xen.xen_domain:
    name: web01
    memory: 96
    vcpus: 1
    type: pv
    kernel: /usr/local/share/sanless/vmlinuz
    ramdisk: /usr/local/share/sanless/guest-busybox.img
    extra: console=hvc0 quiet
    disks:
      - target: /dev/xenvg/web01-disk
        vdev: xvda
    vifs:
      - bridge: xenbr0
        mac: "00:16:3e:00:00:01"

- name: Shut it down, pulling the plug after 60 s
  sanless.xen.xen_domain:
    name: web01
    state: shutdown
    shutdown_timeout: 60
    force: true

- name: Stop it and remove its config file (not its disks)
  sanless.xen.xen_domain:
    name: web01
    state: absent
    force: true
"""

RETURN = r"""
state:
  description: State of the domain after the module (what it would be in check mode).
  returned: success
  type: str
  choices: [running, paused, shutdown, crashed, dying, absent]
  sample: running
state_before:
  description: State of the domain before the module.
  returned: success
  type: str
  sample: absent
domid:
  description: Domain id after the module, V(null) when it does not run (or in check mode before creation).
  returned: success
  type: int
  sample: 3
config_file:
  description: Path of the config file.
  returned: success
  type: str
  sample: /etc/xen/auto/web01.cfg
config_changed:
  description: Whether the config file was (or would be) written or removed.
  returned: success
  type: bool
  sample: true
config:
  description: The config file text after the module, V(null) when there is none.
  returned: success
  type: str
  sample: "name = \"web01\"\ntype = \"pv\"\nmemory = 96\n"
restart_needed:
  description: The config file changed while the domain kept running with the old one.
  returned: success
  type: bool
  sample: false
toolstack:
  description: The toolstack used.
  returned: success
  type: str
  sample: xl
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: [write config, create]
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: [["xl", "list"], ["xl", "create", "/etc/xen/auto/web01.cfg"]]
would_run:
  description: In check mode, the commands that would have changed the dom0.
  returned: success
  type: list
  elements: list
  sample: []
"""

import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    Toolstack,
    XenParseError,
    build_domain_config,
    check_vm_name,
    detect_toolstack,
    domain_state,
    find_domain,
    render_domain_config,
)

HEADER = "# Xen domain %s - managed by sanless.xen.xen_domain; edits are overwritten\n"
CONFIG_OPTIONS = ("vcpus", "type", "kernel", "ramdisk", "extra", "bootloader", "disks", "vifs", "settings")
POLL_S = 2.0


class DomainError(Exception):
    """A failure that is not a command's: msg for fail_json."""


def desired_config(params, toolstack):
    """The settings dict to write, or None when the config file is not managed. Raises ValueError."""
    if params["memory"] is None:
        return None
    return build_domain_config(
        params["name"], params["memory"], vcpus=params["vcpus"], domain_type=params["type"],
        kernel=params["kernel"], ramdisk=params["ramdisk"], extra=params["extra"], bootloader=params["bootloader"],
        disks=params["disks"], vifs=params["vifs"], settings=params["settings"], toolstack=toolstack)


def config_text(config, current_text, warn):
    """The file text for config, keeping the comments and unchanged lines of current_text."""
    if current_text is not None:
        try:
            return render_domain_config(config, template=current_text)
        except XenParseError as exc:
            warn("existing config file cannot be read (%s); writing it anew" % (exc,))
    return HEADER % config["name"] + render_domain_config(config)


def write_atomic(module, path, text):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Domain(object):
    """One domain through a Toolstack; check mode aware (assumed state is tracked)."""

    def __init__(self, xen, name, check_mode, sleep=None, clock=None, lock_dir=None):
        self.xen = xen
        self.lock_dir = lock_dir
        self.name = name
        self.check_mode = check_mode
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self.actions = []
        self.state = None
        self.domid = None
        self.refresh()

    def refresh(self):
        dom = find_domain(self.xen.list(), self.name)
        self.state = domain_state(dom)
        self.domid = dom["domid"] if dom else None
        return self.state

    def _did(self, action, state):
        self.actions.append(action)
        if self.check_mode:
            self.state = state
            if state == "absent":
                self.domid = None
        else:
            self.refresh()

    def wait_gone(self, timeout, states=("absent",)):
        """Poll until the domain is in one of states; True when it got there in time."""
        deadline = self.clock() + timeout
        while True:
            if self.refresh() in states:
                return True
            if self.clock() >= deadline:
                return False
            self.sleep(POLL_S)

    def create(self, config_path, paused=False):
        if self.state in ("shutdown", "crashed"):
            self.destroy()
        if self.state == "dying" and not self.wait_gone(30):
            raise DomainError("domain %s is still dying after 30 s; cannot start it" % self.name)
        # under the dom0's domain build lock, like vm_restart's; a failed build's paused shell is destroyed there
        error, shell_removed = lm.create_domain(self.xen, self.name, config_path, paused=paused,
                                                lock_dir=self.lock_dir)
        if error is not None:
            if shell_removed:
                error.msg += "; the paused shell it left of domain %s was destroyed" % self.name
            raise error
        self._did("create paused" if paused else "create", "paused" if paused else "running")
        if not self.check_mode and self.state not in ("running", "paused"):
            raise DomainError("domain %s is %s right after %s create" % (self.name, self.state, self.xen.name))

    def pause(self):
        self.xen.pause(self.name)
        self._did("pause", "paused")

    def unpause(self):
        self.xen.unpause(self.name)
        self._did("unpause", "running")

    def destroy(self):
        self.xen.destroy(self.name)
        self._did("destroy", "absent")
        if not self.check_mode and self.state == "dying":
            self.wait_gone(30)

    def shutdown(self, timeout, force):
        """Graceful shutdown within timeout; then destroy (force) or DomainError."""
        if self.state in ("absent",):
            return
        if self.state in ("shutdown", "crashed", "dying"):
            # Already down but kept by Xen: nothing to ask the guest.
            self.destroy()
            return
        if self.state == "paused":
            # A paused guest cannot react to the shutdown request.
            self.unpause()
        try:
            self.xen.shutdown(self.name, wait=False)
        except CommandError as exc:
            if not force:
                raise
            self.actions.append("shutdown refused (%s)" % (exc.msg,))
            self.destroy()
            return
        if self.check_mode:
            self._did("shutdown", "absent")
            return
        self.actions.append("shutdown")
        if self.wait_gone(timeout, states=("absent", "shutdown")):
            if self.state == "shutdown":
                self.destroy()
            return
        if not force:
            raise DomainError("domain %s did not shut down within %d s (force=true destroys it then)"
                              % (self.name, timeout))
        self.actions.append("shutdown timed out after %d s" % timeout)
        self.destroy()


def run(module, runner):
    params = module.params
    name = params["name"]
    toolstack = detect_toolstack(runner, params["toolstack"])
    config = desired_config(params, toolstack)
    path = os.path.join(params["config_dir"], "%s.cfg" % name)
    current_text = None
    if os.path.exists(path):
        with open(path) as handle:
            current_text = handle.read()

    xen = Toolstack(runner, toolstack)
    dom = Domain(xen, name, module.check_mode, lock_dir=params["lock_dir"])
    state_before = dom.state
    wanted = params["state"]

    if wanted == "absent":
        new_text = None
    elif config is not None:
        new_text = config_text(config, current_text, module.warn)
    else:
        new_text = current_text
    config_changed = new_text != current_text
    running_before = state_before in ("running", "paused")
    if wanted in ("running", "paused") and not running_before and new_text is None:
        raise DomainError("no config file %s to start domain %s from; give memory (and the other settings) "
                          "to write it" % (path, name))

    actions = []
    if config_changed and new_text is not None:
        actions.append("write config")
        if not module.check_mode:
            write_atomic(module, path, new_text)

    if wanted == "running":
        if dom.state == "paused":
            dom.unpause()
        elif dom.state != "running":
            dom.create(path)
    elif wanted == "paused":
        if dom.state == "running":
            dom.pause()
        elif dom.state != "paused":
            dom.create(path, paused=True)
    elif wanted == "destroyed":
        if dom.state != "absent":
            dom.destroy()
    else:  # shutdown, absent
        dom.shutdown(params["shutdown_timeout"], params["force"])
    actions.extend(dom.actions)

    if wanted == "absent" and current_text is not None:
        actions.append("remove config")
        if not module.check_mode:
            os.unlink(path)

    restart_needed = bool(config_changed and new_text is not None and running_before
                          and dom.state in ("running", "paused") and "create" not in dom.actions
                          and "create paused" not in dom.actions)
    if restart_needed:
        module.warn("config file %s changed while domain %s runs; it takes effect at the next start" % (path, name))
    result = {
        "changed": bool(actions),
        "state": dom.state,
        "state_before": state_before,
        "domid": dom.domid,
        "config_file": path,
        "config_changed": config_changed,
        "config": new_text,
        "restart_needed": restart_needed,
        "toolstack": toolstack,
        "actions": actions,
        "cmds": runner.ran,
        "would_run": runner.would_run,
    }
    if module._diff:
        result["diff"] = [
            {"before_header": path, "after_header": path, "before": current_text or "", "after": new_text or ""},
            {"before_header": "domain %s" % name, "after_header": "domain %s" % name,
             "before": "state: %s\n" % state_before, "after": "state: %s\n" % dom.state},
        ]
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="running", choices=["running", "paused", "shutdown", "destroyed", "absent"]),
            toolstack=dict(type="str", default="auto", choices=["auto", "xl", "xm"]),
            config_dir=dict(type="path", default="/etc/xen/auto"),
            memory=dict(type="int"),
            vcpus=dict(type="int", default=1),
            type=dict(type="str", default="pv", choices=["pv", "pvh", "hvm"]),
            kernel=dict(type="path"),
            ramdisk=dict(type="path"),
            extra=dict(type="str"),
            bootloader=dict(type="str"),
            disks=dict(type="list", elements="dict", default=[], options=dict(
                target=dict(type="path", required=True),
                vdev=dict(type="str", required=True),
                mode=dict(type="str", default="w", choices=["r", "w"]),
            )),
            vifs=dict(type="list", elements="dict", default=[]),
            settings=dict(type="dict", default={}),
            shutdown_timeout=dict(type="int", default=120),
            force=dict(type="bool", default=False),
            lock_dir=dict(type="path", default=conv.LOCK_DIR),
        ),
        mutually_exclusive=[("kernel", "bootloader")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_vm_name(params["name"])
        if params["shutdown_timeout"] < 0:
            raise ValueError("shutdown_timeout must be 0 or more seconds")
        if params["memory"] is None:
            given = [opt for opt in CONFIG_OPTIONS
                     if params[opt] not in (None, [], {}) and not (opt == "vcpus" and params[opt] == 1)
                     and not (opt == "type" and params[opt] == "pv")]
            if given:
                raise ValueError("memory is required with %s (they describe the config file)" % ", ".join(given))
        else:
            # Validate the whole config before anything runs (toolstack differences are checked again later).
            build_domain_config(
                params["name"], params["memory"], vcpus=params["vcpus"], domain_type=params["type"],
                kernel=params["kernel"], ramdisk=params["ramdisk"], extra=params["extra"],
                bootloader=params["bootloader"], disks=params["disks"], vifs=params["vifs"],
                settings=params["settings"], toolstack="xl")
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    runner = CommandRunner(module)
    try:
        result = run(module, runner)
    except CommandError as exc:
        fail_from_error(module, exc)
    except lm.MigrationError as exc:
        module.fail_json(msg="the domain build lock: %s" % exc, cmds=runner.ran)
    except (DomainError, ValueError, IOError, OSError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
