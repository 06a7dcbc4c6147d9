# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_plan
short_description: Tolerated host failures, failover plans and what-if answers for the dom0s
version_added: 0.1.0
description:
  - Builds the planner's model from the M(sanless.xen.xen_info) result of every dom0 and the VM
    variables of the inventory, and returns how many host failures the cluster tolerates, where each
    VM restarts when a host fails, and the answers to hypothetical changes.
  - A number of tolerated failures means that for every ordered sequence of that many host failures,
    re-planning after each with biggest-fit-decreasing, every protected VM that has a replica finds a
    host, the semantics of XenServer's exhaustive HA planner, computed exactly for any pool size.
  - VMs on plain LVM have no replica and are never counted as restartable elsewhere.
  - Runs on the controller from the data given; it contacts no host and never changes anything.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
  - sanless.xen.attributes.INFO_MODULE
attributes:
  platform:
    platforms: posix
options:
  info:
    description:
      - The registered M(sanless.xen.xen_info) result of each dom0, keyed by inventory name.
      - A dom0 whose result failed, was skipped or is unreachable is planned as offline.
    type: dict
    required: true
  vms:
    description:
      - Inventory variables of the VMs (group C(xen_vms)), keyed by VM name.
      - C(xen_storage_mode) (V(plain), V(drbd), V(raid1) or V(shared)), C(xen_protected) (bool),
        C(xen_restart_on) (dom0s holding a replica, or importing the disks of a shared VM), C(xen_home), C(xen_memory_mib),
        C(xen_restart_order), C(xen_anti_affinity) and C(xen_disk_bytes) are read; the C(xen_) prefix is optional.
      - A VM with no storage mode may restart on any dom0; a drbd, raid1 or shared VM without C(xen_restart_on)
        counts as not restartable elsewhere.
    type: dict
    default: {}
  default_protected:
    description: Whether a VM without C(xen_protected) is protected (restarted when its dom0 fails).
    type: bool
    default: true
  vg:
    description: Volume group whose free space counts for VM disks. All volume groups when omitted.
    type: str
  up_to:
    description:
      - Largest number of failures to check; the answer is capped there (RV(capped)).
      - The search is exact; this only bounds its cost.
    type: int
    default: 3
  min_failures:
    description:
      - Configured number of host failures the cluster must tolerate.
      - With O(what_if), RV(what_if.ok) tells whether the change keeps at least that many.
    type: int
  what_if:
    description: Hypothetical changes to plan for; the real state is not touched.
    type: dict
    suboptions:
      offline:
        description: Dom0s to take offline; their protected VMs are restarted first.
        type: list
        elements: str
      online:
        description: Dom0s to bring back online.
        type: list
        elements: str
      remove_vms:
        description: VMs to remove; their memory is freed.
        type: list
        elements: str
      add_vms:
        description:
          - VMs to add, each with C(name), C(memory_mib) and optionally C(host), C(restart_on), C(protected),
            C(disk_bytes), C(storage).
          - A VM without C(host) is placed where it keeps the tolerated failures highest.
        type: list
        elements: dict
      memory_mib:
        description: New memory sizes of existing VMs, name to MiB.
        type: dict
  evacuate:
    description: Dom0 to drain; RV(evacuation) gives a target, an order and a duration for each of its VMs.
    type: str
  link_mbit_s:
    description: Migration link rate used to estimate the evacuation time.
    type: float
    default: 1000.0
  concurrency:
    description: Migrations run at the same time per source dom0 during an evacuation.
    type: int
    default: 2
  deadline_s:
    description: Time window for the evacuation; a move that would end later is deferred (RV(evacuation.deferred)).
    type: float
  per_vm_overhead_s:
    description: Seconds each move of an evacuation takes beyond copying its bytes.
    type: float
    default: 0.0
  ha_tolerate:
    description:
      - Host failures the cluster must still tolerate after the evacuation (C(xen_ha_tolerate)); the evacuation is
        refused (RV(evacuation.refused)) when it would tolerate fewer.
    type: int
  place:
    description:
      - A new VM to place, with C(name), C(memory_mib) and optionally C(disk_bytes), C(storage)
        (V(plain), V(drbd), V(raid1)) and C(anti_affinity).
      - Replicated storage gets a primary and a secondary dom0.
    type: dict
notes:
  - Run it once, on the controller (C(run_once), C(delegate_to=localhost)), with the results of all dom0s.
seealso:
  - module: sanless.xen.xen_info
"""

EXAMPLES = r"""
- name: Read every dom0
  sanless.xen.xen_info:
  register: xen_info_result
  ignore_unreachable: true
  ignore_errors: true

- name: Plan failover
  sanless.xen.cluster_plan:
    info: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'xen_info_result'))) }}"
    vms: "{{ dict(groups['xen_vms'] | default([]) | zip(groups['xen_vms'] | default([]) | map('extract', hostvars))) }}"
    min_failures: 1
  run_once: true
  delegate_to: localhost
  register: plan

- name: Would taking hostb down for maintenance keep one failure tolerated?
  sanless.xen.cluster_plan:
    info: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'xen_info_result'))) }}"
    what_if:
      offline: [hostb]
    min_failures: 1
  run_once: true
  delegate_to: localhost
  register: maintenance
  failed_when: not maintenance.what_if.ok
"""

RETURN = r"""
tolerated_failures:
  description:
    - Largest r such that every ordered sequence of r dom0 failures leaves every protected, replicated VM restartable.
    - V(-1) when the protected VMs of dom0s already offline cannot all be restarted now.
  returned: success
  type: int
  sample: 1
capped:
  description: Whether the answer stopped at O(up_to) (the cluster may tolerate more).
  returned: success
  type: bool
  sample: false
live_hosts:
  description: Dom0s that answered.
  returned: success
  type: list
  elements: str
  sample: [hosta, hostb]
offline_hosts:
  description: Dom0s that did not answer (or are offline in the model).
  returned: success
  type: list
  elements: str
  sample: []
non_agile:
  description: Protected VMs on plain storage, never restartable on another dom0.
  returned: success
  type: list
  elements: str
  sample: [scratch01]
unprotected:
  description: VMs that are not restarted when their dom0 fails.
  returned: success
  type: list
  elements: str
  sample: []
failover:
  description:
    - For each live dom0, the plan if it fails now.
    - C(restarts) lists C(vm), C(from), C(to), C(memory_mib), C(order) in restart priority order;
      C(not_restarted) lists C(vm), C(from), C(reason); C(lost_unprotected) lists VM names.
  returned: success
  type: dict
  sample: {"hosta": {"restarts": [{"vm": "web01", "from": "hosta", "to": "hostb", "memory_mib": 64, "order": null}],
           "not_restarted": [], "lost_unprotected": []}}
hosts:
  description: The planner's host input, built from O(info).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "hosta", "memory_free_mib": 375, "online": true, "vg_free_bytes": 1874853888}]
vms:
  description: The planner's VM input, built from the running domains and O(vms).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "web01", "host": "hosta", "memory_mib": 64, "protected": true, "restart_on": ["hostb"]}]
what_if:
  description: The overcommit check of O(what_if), and the failover plans after the change.
  returned: when O(what_if) is given
  type: dict
  contains:
    ok:
      description: Whether the change keeps at least O(min_failures) tolerated failures and is possible at all.
      type: bool
      sample: false
    before:
      description: Tolerated failures now (capped at O(up_to) or O(min_failures)).
      type: int
      sample: 1
    after:
      description: Tolerated failures after the change, V(null) when the change itself is impossible (a VM that does not fit).
      type: int
      sample: 0
    min_failures:
      description: The O(min_failures) checked against (V(0) when not given).
      type: int
      sample: 1
    reason:
      description: Why the change is or is not OK.
      type: str
      sample: would tolerate only 0 host failure(s), 1 required
    failover:
      description: Like RV(failover), after the change.
      type: dict
      returned: when the change is possible
      sample: {}
overcommitted:
  description: Whether the cluster tolerates fewer failures than O(min_failures).
  returned: when O(min_failures) is given without O(what_if)
  type: bool
  sample: false
evacuation:
  description: Drain plan of O(evacuate).
  returned: when O(evacuate) is given
  type: dict
  contains:
    host:
      description: The dom0 to drain.
      type: str
      sample: hosta
    moves:
      description:
        - One entry per VM with C(vm), C(source), C(target), C(storage), C(order) (start order), C(start_s),
          C(duration_s), C(end_s), C(slot) (which of the O(concurrency) migration slots of its source), C(wave),
          C(phase), C(group), C(breach) and C(bytes) (memory, plus the disks of a plain VM).
        - Longest migrations start first. See C(docs/evacuation.md) for the whole plan (anti-affinity, drained dom0s).
      type: list
      elements: dict
      sample: [{"vm": "web01", "target": "hostb", "order": 1, "start_s": 0.0, "duration_s": 0.537, "end_s": 0.537, "slot": 0,
                "bytes": 67108864}]
    not_movable:
      description: VMs with no target (C(vm), C(host), C(reason)), a VM of unknown storage mode among them.
      type: list
      elements: dict
      sample: []
    total_s:
      description: Estimated time until the last migration ends.
      type: float
      sample: 0.537
    deadline_s:
      description: The O(deadline_s) given.
      type: float
      sample: 600.0
    deferred:
      description: Moves that would end after O(deadline_s), each with its C(reason).
      type: list
      elements: dict
      sample: []
    refused:
      description: Why the evacuation must not start (a VM that cannot leave, no move within the deadline).
      type: list
      elements: str
      sample: []
    fits:
      description: Whether every VM has a target and the drain ends within O(deadline_s).
      type: bool
      sample: true
placement:
  description: Where O(place) should go, with C(host), C(secondary), C(tolerated_failures) and the C(candidates) evaluated.
  returned: when O(place) is given
  type: dict
  sample: {"host": "hostb", "secondary": "hosta", "tolerated_failures": 1, "candidates": []}
notes:
  description: Assumptions made while building the model (dom0s that did not answer, VMs without a storage mode).
  returned: success
  type: list
  elements: str
  sample: ["no xen_storage_mode for web01: assumed restartable on any host"]
summary:
  description: The results as lines to print.
  returned: success
  type: list
  elements: str
  sample: ["Tolerated host failures: 1 (every order of failures among 2 live host(s) checked)"]
"""
