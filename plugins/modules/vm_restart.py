#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_restart
short_description: Bring a VM that is down back up on this dom0, promoting its DRBD disks only when they are UpToDate
version_added: 0.1.0
description:
  - The step of the failover and watcher roles that starts a VM on a dom0 (issue 15).
  - Does nothing when the domain is already running or paused on this dom0.
  - For each DRBD resource in O(drbd_resources), reads C(/proc/drbd) with the collection's parser in this same step and
    makes the resource Primary (C(drbdadm primary), never C(--force)) only when it is up, its local disk is
    C(UpToDate) and its peer is not Primary; otherwise it fails and starts nothing.
  - Each of O(require_paths) (a raid1 VM's legs on their shared paths) must be a block device here, checked in this
    same step before anything is promoted or started; otherwise it fails and starts nothing.
  - With O(start=true), starts the domain from its config in O(config_dir) (C(xl create)), trying up to O(tries) times.
  - Each C(xl create) runs under the dom0's domain build lock (C(/run/sanless-xen/domain-build.lock), shared with
    M(sanless.xen.xen_domain)), one build at a time per dom0, as each loads its guest's kernel and ramdisk into dom0
    memory (two at once got one killed by dom0's OOM killer in the lab). The guests boot in parallel once built.
  - After a failed attempt, C(xl list) tells what it left. A paused domain of that name is the shell of a failed
    build (C(xl create) unpauses only at its very end), which is destroyed before the next attempt (RV(removed_shells));
    a running one was started, and counts as started. The failure message gives every attempt's error.
  - With O(give_up_after), failed runs are counted in C(/var/lib/sanless-xen/watcher/VM.tries); once that many
    failed, the module starts nothing and says so until the file is removed (or a start succeeds).
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
attributes:
  check_mode:
    support: full
    details:
      - The DRBD states are read and judged; nothing is promoted or started (RV(would_run) lists what would run).
  diff_mode:
    support: none
    details:
      - The change is the domain's state and the DRBD roles; RV(promoted) and RV(restarted) say it.
options:
  name:
    description: The VM (domain) name.
    type: str
    required: true
  drbd_resources:
    description: The VM's DRBD resources on this dom0, each with C(name) and C(minor).
    type: list
    elements: dict
    default: []
  require_paths:
    description:
      - Dom0 paths of the disks the VM needs here (a raid1 VM's legs, C(/dev/sanless/OWNER/VG/LV)); each must lead to a
        block device, or the module fails before any promotion or start.
    type: list
    elements: path
    default: []
  start:
    description: Start the domain from its config in O(config_dir) after the promotion.
    type: bool
    default: true
  config_dir:
    description: Where the VM's config C(NAME.cfg) is.
    type: path
    default: /etc/xen/auto
  toolstack:
    description: Which Xen toolstack to run.
    type: str
    choices: [auto, xl, xm]
    default: auto
  tries:
    description: Attempts of C(xl create) in this run.
    type: int
    default: 1
  retry_delay:
    description: Seconds between two attempts.
    type: int
    default: 5
  give_up_after:
    description: Failed runs after which the VM is no longer started (0 never gives up).
    type: int
    default: 0
  state_dir:
    description: Where the failed runs are counted.
    type: path
    default: /var/lib/sanless-xen
  lock_dir:
    description: Folder of the dom0's locks (flock; on tmpfs, they vanish at boot), where C(domain-build.lock) is.
    type: path
    default: /run/sanless-xen
seealso:
  - module: sanless.xen.xen_domain
  - module: sanless.xen.drbd_resource
"""

EXAMPLES = r"""
- name: Promote web03's disk on its peer (only if UpToDate) without starting it
  sanless.xen.vm_restart:
    name: web03
    drbd_resources:
      - {name: web03-disk, minor: 100}
    start: false

- name: Check that the surviving leg of web07's data disk is here before it is started degraded
  sanless.xen.vm_restart:
    name: web07
    require_paths:
      - /dev/sanless/hosta/xenvg/web07-data
    start: false

- name: Restart web01 from /etc/xen/auto/web01.cfg, three attempts, giving up after five failed runs
  sanless.xen.vm_restart:
    name: web01
    tries: 3
    give_up_after: 5
"""

RETURN = r"""
state_before:
  description: The domain's state when the module began (running, paused, shutdown, crashed, dying, absent).
  returned: always
  type: str
  sample: absent
promoted:
  description: The DRBD resources made Primary.
  returned: always
  type: list
  elements: str
  sample: [web03-disk]
restarted:
  description:
    - Whether the domain was started.
    - Not named C(started), which async_status would read as a job still running.
  returned: always
  type: bool
  sample: true
attempts:
  description: C(xl create) attempts made.
  returned: always
  type: int
  sample: 1
removed_shells:
  description:
    - The domain, when a failed C(xl create) left it paused (the shell of a build killed midway, 0 MiB and 0 vCPUs)
      and it was destroyed so that the next attempt could build it.
    - Also returned when the module fails.
  returned: always
  type: list
  elements: str
  sample: [web01]
failed_runs:
  description: Failed runs counted so far (with O(give_up_after)).
  returned: always
  type: int
  sample: 0
cmds:
  description: Commands run.
  returned: always
  type: list
  elements: list
would_run:
  description: In check mode, the commands that would change something.
  returned: always
  type: list
  elements: list
"""

import os
import stat
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import livemigrate as lm
from ansible_collections.sanless.xen.plugins.module_utils.conventions import auto_config_path, check_vm_name
from ansible_collections.sanless.xen.plugins.module_utils.files import write_file_atomic
from ansible_collections.sanless.xen.plugins.module_utils.drbd import (
    drbdadm_argv,
    minor_state,
    promotion_problems,
    read_proc_drbd,
)
from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    Toolstack,
    detect_toolstack,
    domain_state,
    find_domain,
)


class RestartError(Exception):
    """Why nothing (more) was started; ``details``: result keys the failure reports too."""

    def __init__(self, msg, **details):
        super(RestartError, self).__init__(msg)
        self.details = details


def attempt_error(attempt, exc):
    """One failed xl create as the failure message lists it: its rc (-9, or 137 through a shell: killed, as by dom0's
    OOM killer; the lab's watcher run saw -9), stderr."""
    killed = ", killed" if exc.rc in (-9, 137) else ""
    return "attempt %d (rc %s%s): %s" % (attempt, exc.rc, killed, (exc.stderr or str(exc)).strip())


def tries_path(state_dir, vm):
    return os.path.join(state_dir, "watcher", "%s.tries" % check_vm_name(vm))


def read_count(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip() or 0)
    except (IOError, OSError, ValueError):
        return 0


def write_count(path, count):
    if count <= 0:
        if os.path.exists(path):
            os.unlink(path)
        return
    write_file_atomic(path, "%d\n" % count, 0o644)


def device_mode(path):
    """The mode of what path leads to (tests replace it)."""
    return os.stat(path).st_mode


def missing_devices(paths):
    """Why each of paths is no block device here (it is not there, or leads to something else); empty: all are."""
    problems = []
    for path in paths or []:
        try:
            mode = device_mode(path)
        except OSError as exc:
            problems.append("%s is not there (%s)" % (path, exc.strerror or exc))
            continue
        if not stat.S_ISBLK(mode):
            problems.append("%s is no block device" % path)
    return problems


def restart(runner, params, proc_drbd="/proc/drbd", sleep=time.sleep):
    """Everything the module does; returns the result dict. Raises RestartError/CommandError."""
    name = check_vm_name(params["name"])
    xen = Toolstack(runner, detect_toolstack(runner, params["toolstack"]))
    result = {"changed": False, "promoted": [], "restarted": False, "attempts": 0, "failed_runs": 0,
              "removed_shells": []}
    state = domain_state(find_domain(xen.list(), name))
    result["state_before"] = state
    if state in ("running", "paused"):
        result["msg"] = "%s is %s here already" % (name, state)
        return result
    counter = tries_path(params["state_dir"], name) if params["give_up_after"] else None
    failed_runs = read_count(counter) if counter else 0
    result["failed_runs"] = failed_runs
    if counter and failed_runs >= params["give_up_after"]:
        raise RestartError("%s: gave up after %d failed runs (remove %s to try again)" % (name, failed_runs, counter))
    missing = missing_devices(params.get("require_paths"))
    if missing:
        raise RestartError("%s not started, nothing promoted: a disk it needs is missing on this dom0: %s" % (
            name, "; ".join(missing)))
    minors = read_proc_drbd(proc_drbd)["minors"]
    problems = []
    todo = []
    for resource in params["drbd_resources"]:
        why = promotion_problems(minor_state(minors, int(resource["minor"])), resource["name"], resource["minor"])
        if why:
            problems.extend(why)
        elif why is not None:
            todo.append(resource)
    if problems:
        raise RestartError("%s not started, no DRBD resource promoted: %s" % (name, "; ".join(problems)))
    for resource in todo:
        runner.run(drbdadm_argv("primary", resource["name"]), changes_state=True)
        result["promoted"].append(resource["name"])
        result["changed"] = True
    if not params["start"]:
        result["msg"] = "%s: %s" % (name, "promoted " + ", ".join(result["promoted"]) if todo else "nothing to promote")
        return result
    config = auto_config_path(name, params["config_dir"])
    if not os.path.isfile(config):
        raise RestartError("%s: no config %s on this dom0" % (name, config))
    if state in ("shutdown", "crashed"):
        xen.destroy(name)
    # Each attempt builds under the dom0's domain build lock; a failed one's paused shell is destroyed there, or the
    # next attempt would fail with "already exists" (lm.create_domain).
    errors = []
    for attempt in range(1, max(1, params["tries"]) + 1):
        result["attempts"] = attempt
        try:
            error, shell_removed = lm.create_domain(xen, name, config, lock_dir=params.get("lock_dir"))
        except lm.MigrationError as exc:
            errors.append("attempt %d: the domain build lock: %s" % (attempt, exc))
            break  # another wait would outlast the caller's async timeout
        if shell_removed and name not in result["removed_shells"]:
            result["removed_shells"].append(name)
            result["changed"] = True
        if error is None:
            errors = []
            break
        errors.append(attempt_error(attempt, error))
        if attempt < params["tries"]:
            sleep(params["retry_delay"])
    if errors:
        if counter and not runner.check_mode:
            write_count(counter, failed_runs + 1)
            result["failed_runs"] = failed_runs + 1
        raise RestartError("%s: xl create failed %d time(s): %s" % (name, result["attempts"], "; ".join(errors)),
                           attempts=result["attempts"], failed_runs=result["failed_runs"],
                           removed_shells=result["removed_shells"], promoted=result["promoted"])
    result["changed"] = True
    result["restarted"] = True
    if counter and not runner.check_mode:
        write_count(counter, 0)
        result["failed_runs"] = 0
    result["msg"] = "%s started%s" % (name, " (promoted %s)" % ", ".join(result["promoted"]) if result["promoted"] else "")
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            drbd_resources=dict(type="list", elements="dict", default=[]),
            require_paths=dict(type="list", elements="path", default=[]),
            start=dict(type="bool", default=True),
            config_dir=dict(type="path", default="/etc/xen/auto"),
            toolstack=dict(type="str", default="auto", choices=["auto", "xl", "xm"]),
            tries=dict(type="int", default=1),
            retry_delay=dict(type="int", default=5),
            give_up_after=dict(type="int", default=0),
            state_dir=dict(type="path", default="/var/lib/sanless-xen"),
            lock_dir=dict(type="path", default=conv.LOCK_DIR),
        ),
        supports_check_mode=True,
    )
    runner = CommandRunner(module)
    try:
        for resource in module.params["drbd_resources"]:
            if not isinstance(resource.get("name"), str) or isinstance(resource.get("minor"), bool) \
                    or not isinstance(resource.get("minor"), int):
                raise RestartError("each of drbd_resources needs a name and an integer minor, got %r" % (resource,))
        result = restart(runner, module.params)
    except RestartError as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran, would_run=runner.would_run, **exc.details)
    except CommandError as exc:
        module.fail_json(**exc.to_fail_kwargs())
    except ValueError as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran)
    result["cmds"] = runner.ran
    result["would_run"] = runner.would_run
    module.exit_json(**result)


if __name__ == "__main__":
    main()
