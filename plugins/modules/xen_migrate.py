#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_migrate
short_description: Live-migrate a Xen domain to another dom0 (xl migrate)
version_added: 0.1.0
description:
  - Runs C(xl migrate NAME TARGET) (or C(xm migrate --live NAME TARGET) with O(toolstack=xm)) on the dom0 where the
    domain O(name) runs. The toolstack reaches O(target) with C(ssh TARGET xl migrate-receive), as the user the
    module runs as (root), so root ssh from this dom0 to O(target) must work without a password.
  - The domain's disks must be reachable at the same paths on O(target) (shared or replicated storage, or a
    DRBD routed with M(sanless.xen.dm_remap)); this module does not check storage.
  - 'Prechecks, before anything changes: the domain runs here, and is neither paused nor dying (else the module
    fails with the reason); O(target) is not this host (by name, resolved address, and the C(host) that O(target)
    reports); O(target) has the free memory the domain holds; the guest type suits Xen on both sides, by their
    C(virt_caps): a PV guest needs C(shadow) on both (log-dirty paging for the live copy), a PVH or HVM guest
    needs C(hvm) on O(target) and C(hap) or C(shadow) on both. Whether O(target) has a device model (QEMU) for an
    HVM guest is not checked.'
  - The target's free memory and C(virt_caps) are O(target_free_memory_mib) and O(target_virt_caps) when given
    (for example from M(sanless.xen.xen_info) run on the target), else read with C(ssh TARGET xl info).
  - When the domain does not run here but C(ssh TARGET xl list) shows it there, the module changes nothing and
    says so (a second run after a migration). When it is on neither host, the module fails.
  - Invalid input (names with spaces or shell metacharacters, O(target) being this host) fails before
    anything runs.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.MIGRATES
options:
  name:
    description:
      - Name of the domain to migrate.
      - 1 to 64 letters, digits, C(_), C(.) or C(-), starting with a letter or a digit.
    type: str
    required: true
  target:
    description:
      - The dom0 to migrate to, as C(ssh) reaches it from this dom0, V(hostb), V(10.77.0.12) or V(root@hostb).
      - Host names, IPv4 or IPv6 addresses, with an optional C(user@); C(xl) hands it to a shell, so nothing else
        is accepted.
    type: str
    required: true
  toolstack:
    description: Toolstack on both dom0s. C(xm) has no C(virt_caps) and no JSON domain info, so the guest type
      checks are skipped with a warning.
    type: str
    choices: [xl, xm]
    default: xl
  target_free_memory_mib:
    description:
      - Free memory of O(target) in MiB (C(free_memory) of C(xl info) there), when already known.
      - When omitted, C(ssh TARGET xl info) is asked.
    type: int
  target_virt_caps:
    description:
      - C(virt_caps) of Xen on O(target), for example V([pv, hvm, hap, shadow]), when already known.
      - When omitted and the domain's type is known (V(pv), V(pvh), V(hvm); never with O(toolstack=xm)),
        C(ssh TARGET xl info) is asked.
    type: list
    elements: str
  timeout:
    description:
      - Seconds the migration may take; V(0) means no limit.
      - When the limit passes, C(xl migrate) is stopped (SIGTERM, SIGKILL 30 s later, through coreutils
        C(timeout)) and the module fails, reporting where the domain then is. A domain left paused on this host
        (xl stopped during the last phase) must be checked by hand before it is unpaused.
    type: int
    default: 0
notes:
  - Commands run with C(LANG=C), without a shell; the ssh checks use C(BatchMode=yes) and a 10 s connect timeout.
  - The module verifies after the migration that the domain left this host and reports its state on O(target).
requirements:
  - Xen C(xl) (or C(xm)) toolstack and C(ssh) on the dom0, root ssh trust to O(target).
seealso:
  - module: sanless.xen.xen_info
  - module: sanless.xen.dm_remap
  - name: xl(1)
    description: xl migrate.
    link: https://xenbits.xen.org/docs/unstable/man/xl.1.html
"""

EXAMPLES = r"""
- name: Move web01 from hosta to hostb
  sanless.xen.xen_migrate:
    name: web01
    target: hostb
  delegate_to: hosta

- name: Read hostb's free memory and Xen capabilities
  sanless.xen.xen_info:
  delegate_to: hostb
  run_once: true
  register: hostb_info

- name: Same, with the target facts read above (no ssh to hostb from the module)
  sanless.xen.xen_migrate:
    name: web01
    target: 10.77.0.12
    target_free_memory_mib: "{{ hostb_info.host.free_memory_mib }}"
    target_virt_caps: "{{ hostb_info.host.virt_caps }}"
    timeout: 600
  delegate_to: hosta
"""

RETURN = r"""
msg:
  description: What happened, in words.
  returned: success
  type: str
  sample: "web01 migrated to hostb in 4.21 s"
seconds:
  description: Seconds the migration command took; V(null) when it did not run (check mode, already there).
  returned: success
  type: float
  sample: 4.21
argv:
  description: The migration command (run, or that would run in check mode); V(null) when already on the target.
  returned: success
  type: list
  elements: str
  sample: ["xl", "migrate", "web01", "hostb"]
stdout:
  description: Standard output of the migration command.
  returned: success
  type: str
  sample: ""
stderr:
  description: Standard error of the migration command (C(xl migrate) reports its progress there).
  returned: success
  type: str
  sample: ""
domain_type:
  description: Type of the domain (V(pv), V(pvh), V(hvm)); V(null) when unknown (xm).
  returned: success
  type: str
  sample: pv
memory_mib:
  description: Memory the domain holds here (C(xl list)), which the target must have free.
  returned: success
  type: int
  sample: 96
target_free_memory_mib:
  description: Free memory of the target used for the check; V(null) when unknown.
  returned: success
  type: int
  sample: 626
target_virt_caps:
  description: C(virt_caps) of the target used for the check; V(null) when unknown.
  returned: success
  type: list
  elements: str
  sample: [pv, hvm, hap, shadow]
target_state:
  description: State of the domain on the target after the module (V(running), V(paused), ...), V(null) in check mode.
  returned: success
  type: str
  sample: running
cmds:
  description: The commands that ran.
  returned: success
  type: list
  elements: list
  sample: [["xl", "list"], ["xl", "info"]]
would_run:
  description: In check mode, the commands that would have changed the dom0s.
  returned: success
  type: list
  elements: list
  sample: []
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils.runner import CommandError, CommandRunner, fail_from_error
from ansible_collections.sanless.xen.plugins.module_utils.xen import (
    GUEST_TYPES,
    Toolstack,
    XenParseError,
    check_migrate_target,
    check_vm_name,
    domain_state,
    find_domain,
    migrate_argv,
    migrate_problems,
    migrate_state_problem,
    ssh_argv,
    target_is_this_host,
)

_CAP_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class MigrateError(Exception):
    """A precheck refused the migration: msg for fail_json."""


def check_params(params):
    check_vm_name(params["name"])
    check_migrate_target(params["target"])
    if params["timeout"] < 0:
        raise ValueError("timeout must be 0 (no limit) or more seconds")
    if params["target_free_memory_mib"] is not None and params["target_free_memory_mib"] < 0:
        raise ValueError("target_free_memory_mib must not be negative")
    for cap in params["target_virt_caps"] or []:
        if not _CAP_RE.match(cap):
            raise ValueError("target_virt_caps: invalid capability %r" % (cap,))


def run(module, runner):
    params = module.params
    name, target, toolstack = params["name"], params["target"], params["toolstack"]
    here = Toolstack(runner, toolstack)
    there = Toolstack(runner, toolstack, prefix=ssh_argv(target, []))
    result = {"changed": False, "seconds": None, "argv": None, "stdout": "", "stderr": "", "domain_type": None,
              "memory_mib": None, "target_free_memory_mib": params["target_free_memory_mib"],
              "target_virt_caps": params["target_virt_caps"], "target_state": None}

    domain = find_domain(here.list(), name)
    if domain is None:
        remote = find_domain(there.list(), name)
        if remote is None:
            raise MigrateError("unknown domain %s: it runs neither on this host nor on %s" % (name, target))
        result.update(target_state=domain_state(remote), memory_mib=remote["memory_mib"],
                      msg="%s already on target %s (%s there)" % (name, target, domain_state(remote)))
        return result
    problem = migrate_state_problem(name, domain)
    if problem:
        raise MigrateError(problem)
    result["memory_mib"] = domain["memory_mib"]

    local_caps = local_host = None
    if toolstack == "xl":
        local = here.info()
        local_caps, local_host = local["virt_caps"], local.get("host")
        longs = here.list_long(name)
        if len(longs) != 1:
            raise MigrateError("xl list -l %s returned %d domains" % (name, len(longs)))
        result["domain_type"] = longs[0]["type"]
    else:
        module.warn("toolstack xm reports neither the domain type nor virt_caps: the guest type checks are skipped")

    free, caps = params["target_free_memory_mib"], params["target_virt_caps"]
    if free is None or (caps is None and result["domain_type"] in GUEST_TYPES):
        remote_info = there.info()
        remote_host = remote_info.get("host")
        if local_host and remote_host and remote_host.lower() == local_host.lower():
            raise MigrateError("target %s is this host: it answers xl info with host %s, as this host does"
                               % (target, remote_host))
        if free is None:
            free = remote_info["free_memory_mib"]
        if caps is None and toolstack == "xl":
            caps = remote_info["virt_caps"]
    result.update(target_free_memory_mib=free, target_virt_caps=caps)
    problems = migrate_problems(name, result["domain_type"], domain["memory_mib"], local_caps, target, free, caps)
    if problems:
        raise MigrateError("; ".join(problems))

    timeout = params["timeout"] or None
    result["argv"] = migrate_argv(toolstack, name, target, timeout)
    result["changed"] = True
    if module.check_mode:
        here.migrate(name, target, timeout)
        result["msg"] = "%s would be migrated to %s" % (name, target)
        return result
    started = time.monotonic()
    try:
        done = here.migrate(name, target, timeout)
    except CommandError as exc:
        seconds = round(time.monotonic() - started, 2)
        try:
            now = domain_state(find_domain(here.list(), name))
        except (CommandError, XenParseError) as again:
            now = "unknown (%s)" % (again,)
        why = "timed out after %d s" % timeout if timeout and exc.rc in (124, 137) else "failed"
        fail_from_error(module, exc, msg="%s migrate %s to %s %s (rc %s, %.2f s); %s is now %s on this host: %s"
                        % (toolstack, name, target, why, exc.rc, seconds, name, now, exc.msg))
    seconds = round(time.monotonic() - started, 2)
    result.update(seconds=seconds, stdout=done.stdout, stderr=done.stderr)
    still = find_domain(here.list(), name)
    if still is not None:
        raise MigrateError("%s migrate %s returned 0 but %s is still here (%s)"
                           % (toolstack, name, name, domain_state(still)))
    result["target_state"] = domain_state(find_domain(there.list(), name))
    if result["target_state"] == "absent":
        module.warn("%s left this host but %s does not list it" % (name, target))
    result["msg"] = "%s migrated to %s in %.2f s" % (name, target, seconds)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            target=dict(type="str", required=True),
            toolstack=dict(type="str", default="xl", choices=["xl", "xm"]),
            target_free_memory_mib=dict(type="int"),
            target_virt_caps=dict(type="list", elements="str"),
            timeout=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        check_params(params)
        same = target_is_this_host(params["target"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if same:
        module.fail_json(msg="target %s is this host (%s): a domain cannot migrate to its own dom0"
                             % (params["target"], same))

    runner = CommandRunner(module)
    try:
        result = run(module, runner)
    except CommandError as exc:
        fail_from_error(module, exc)
    except (MigrateError, XenParseError, ValueError) as exc:
        module.fail_json(msg=str(exc), cmds=runner.ran, would_run=runner.would_run)
    result.update(cmds=runner.ran, would_run=runner.would_run)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
