#!/usr/bin/env python3
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check awx/configure.yml against the real awx.awx modules, with no AWX: every task's arguments
(job templates with their surveys, schedules, the project) pass the modules' own argument checks,
which run before a module talks to the controller; the controller address given is a closed port
on the loopback, so each call then stops at its first request.

    ansible-galaxy collection install awx.awx -p /tmp/awx-collections    # once (needs Galaxy)
    .venv-newest/bin/python tests/awx/check.py /tmp/awx-collections

The data alone (surveys as AWX validates them, playbooks that exist and check their survey
variables) is checked by tests/unit/project/test_awx_project.py, which needs neither.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
# What a module says when its arguments passed and the controller did not answer.
NETWORK_ERRORS = ("network error", "Connection refused", "Failed to connect", "connection", "Errno 111")


def main(collections):
    if not os.path.isdir(os.path.join(collections, "ansible_collections", "awx", "awx")):
        sys.exit("no awx.awx under %s (ansible-galaxy collection install awx.awx -p %s)" % (collections, collections))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "CONTROLLER_", "TOWER_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=collections, CONTROLLER_HOST="https://127.0.0.1:9",
               CONTROLLER_USERNAME="check", CONTROLLER_PASSWORD="check", CONTROLLER_VERIFY_SSL="false",
               ANSIBLE_NOCOLOR="1")
    configure = os.path.join(ROOT, "awx", "configure.yml")
    playbook = os.path.join(BIN, "ansible-playbook")
    subprocess.run([playbook, "--syntax-check", "-i", "localhost,", configure], env=env, check=True)

    with open(configure, encoding="utf-8") as handle:
        plays = yaml.safe_load(handle)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        names = []
        for play in plays:
            play["vars_files"] = [os.path.join(ROOT, "awx", f) for f in play.get("vars_files", [])]
            for index, task in enumerate(play["tasks"]):
                task["ignore_errors"] = True
                task["register"] = "check_%d" % index
                names.append((task["name"], "check_%d" % index, any(k.startswith("awx.awx.") for k in task)))
            play["tasks"].append({"name": "Write the results", "ansible.builtin.copy": {
                "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (r, r) for _n, r, _a in names),
                "dest": out, "mode": "0644"}})
        wrapper = os.path.join(tmp, "configure.yml")
        with open(wrapper, "w", encoding="utf-8") as handle:
            yaml.safe_dump(plays, handle, sort_keys=False)
        subprocess.run([playbook, "-i", "localhost,", "-e", "sanless_awx_scm_url=https://git.invalid/sanless-xen.git",
                        "-e", "sanless_awx_execution_environment=sanless.xen", wrapper], env=env, check=True)
        with open(out, encoding="utf-8") as handle:
            results = json.load(handle)
    problems = []
    calls = 0
    for name, register, is_awx in names:
        result = results[register]
        items = result.get("results", [result])
        for item in items:
            label = "%s [%s]" % (name, item.get("item", {}).get("name", "")) if "item" in item else name
            msg = str(item.get("msg", ""))
            if not is_awx:
                if item.get("failed"):
                    problems.append("%s failed: %s" % (label, msg))
                continue
            calls += 1
            if not item.get("failed") or not any(e.lower() in msg.lower() for e in NETWORK_ERRORS):
                problems.append("%s: expected to stop at the controller, got: %s" % (label, msg[:300]))
    if problems:
        sys.exit("awx/configure.yml:\n  " + "\n  ".join(problems))
    print("awx/configure.yml: %d awx.awx calls, arguments accepted by the modules" % calls)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(os.path.abspath(sys.argv[1]))
