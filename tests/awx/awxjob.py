# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An AWX job without AWX: what AWX does with a git project and a job template, done with the same
tools, for tests (tests/unit/project/test_ansible_runner.py without the lab, tests/e2e/test_awx.py
in it).

- project sync: `git clone` of the repository (no make step, so no .collections link), then
  ansible-galaxy installs collections/requirements.yml from inside the project into
  requirements_collections, as AWX's project update does;
- the job: a private data dir laid out as AWX lays it out for ansible-runner
  (project/, inventory/hosts, env/extravars with the survey answers, env/envvars with
  ANSIBLE_COLLECTIONS_PATH on requirements_collections first, env/settings), run with
  `ansible-runner run PDD -p PLAYBOOK`;
- the result: status and rc as runner wrote them under artifacts/IDENT, the job's stdout, and the
  artifacts that set_stats published (artifact_data of the playbook_on_stats event, which AWX keeps
  as the job's artifacts and hands to the next workflow nodes).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)


def base_env(home):
    """The caller's environment without ANSIBLE_* settings, a private home, the venv's tools first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    os.makedirs(home, exist_ok=True)
    env.update(HOME=home, ANSIBLE_NOCOLOR="1", PATH=BIN + os.pathsep + env.get("PATH", ""))
    return env


def run(argv, cwd, env, timeout=600):
    proc = subprocess.run([str(a) for a in argv], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError("%s failed (rc %d):\n%s\n%s" % (" ".join(map(str, argv)), proc.returncode,
                                                              proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


def overlay_worktree(project, root=ROOT):
    """Copy the checkout's uncommitted changes (tracked files that differ, files git does not ignore)
    over a clone, so that the job runs what is being developed; a clean checkout changes nothing."""
    out = run(["git", "ls-files", "--modified", "--others", "--exclude-standard", "-z"], root, os.environ).stdout
    for rel in sorted(f for f in out.split("\0") if f):
        src = os.path.join(root, rel)
        if os.path.islink(src) or not os.path.isfile(src):
            continue
        dest = os.path.join(project, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(src, dest)


def sync_project(top, root=ROOT, overlay=True):
    """AWX's project update into TOP: the clone in TOP/project and the collections of its
    collections/requirements.yml in TOP/requirements_collections. Returns (project, collections)."""
    project = os.path.join(top, "project")
    env = base_env(os.path.join(top, "home"))
    run(["git", "clone", "-q", "--no-hardlinks", root, project], top, env)
    if overlay:
        overlay_worktree(project, root)
    assert not os.path.lexists(os.path.join(project, ".collections")), "a fresh clone has no .collections link"
    collections = os.path.join(top, "requirements_collections")
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-r",
         "collections/requirements.yml", "-p", collections], project, dict(env, ANSIBLE_COLLECTIONS_PATH=collections))
    return project, collections


class Job(object):
    """One job's outcome: status (successful, failed, ...), rc, stdout, events and set_stats artifacts."""

    def __init__(self, pdd, ident):
        self.dir = os.path.join(pdd, "artifacts", ident)
        self.status = self._read("status")
        self.rc = int(self._read("rc") or -1)
        self.stdout = self._read("stdout")
        self.events = []
        for path in glob.glob(os.path.join(self.dir, "job_events", "*.json")):
            with open(path, encoding="utf-8") as handle:
                self.events.append(json.load(handle))
        self.events.sort(key=lambda e: e.get("counter", 0))
        stats = [e for e in self.events if e.get("event") == "playbook_on_stats"]
        self.artifacts = stats[-1]["event_data"].get("artifact_data") if stats else None

    def _read(self, name):
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip() if name != "stdout" else handle.read()

    def fatal_lines(self):
        return [line for line in self.stdout.splitlines() if line.startswith("fatal:")]

    def __repr__(self):
        return "Job(status=%s, rc=%s)\n%s" % (self.status, self.rc, self.stdout[-4000:])


def inventory_script(data):
    """An inventory as AWX hands it to a job: an executable that prints the JSON of
    `ansible-inventory --list --export` (what AWX's inventory sync imported) for --list."""
    return ("#!%s\n# an AWX-style inventory script\nimport json, sys\nDATA = %s\n"
            "print(json.dumps(DATA if '--list' in sys.argv else {}))\n") % (sys.executable, json.dumps(data))


def exported_inventory(source, cwd, env=None):
    """What AWX's inventory sync imports from SOURCE: ansible-inventory --list --export (with the
    group_vars next to the source)."""
    proc = run([os.path.join(BIN, "ansible-inventory"), "-i", source, "--list", "--export"], cwd,
               env or dict(os.environ, ANSIBLE_NOCOLOR="1"))
    return json.loads(proc.stdout)


def run_job(top, project, collections, playbook, inventory, extravars=None, envvars=None, cmdline=None,
            ident="job", timeout=1800):
    """Lay out TOP/ident as AWX's private data dir for a job of PLAYBOOK (relative to the project) and
    run it with ansible-runner. inventory: the text of inventory/hosts (INI or YAML), or a dict as
    ansible-inventory --list prints it, which becomes an AWX-style inventory script. Returns a Job."""
    pdd = os.path.join(top, ident)
    os.makedirs(os.path.join(pdd, "inventory"))
    os.makedirs(os.path.join(pdd, "env"))
    # AWX copies the synced project into the private data dir
    shutil.copytree(project, os.path.join(pdd, "project"), symlinks=True)
    hosts = os.path.join(pdd, "inventory", "hosts")
    with open(hosts, "w", encoding="utf-8") as handle:
        handle.write(inventory if isinstance(inventory, str) else inventory_script(inventory))
    if not isinstance(inventory, str):
        os.chmod(hosts, 0o700)
    # AWX: the project's requirements_collections first, then the usual places
    env_vars = {"ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
        [collections, "~/.ansible/collections", "/usr/share/ansible/collections"]),
        "ANSIBLE_FORCE_COLOR": "False", "ANSIBLE_HOST_KEY_CHECKING": "False"}
    env_vars.update(envvars or {})
    files = {"extravars": extravars or {}, "envvars": env_vars,
             "settings": {"job_timeout": timeout, "pexpect_timeout": 5, "suppress_ansible_output": True}}
    if cmdline:
        files["cmdline"] = cmdline
    for name, value in files.items():
        with open(os.path.join(pdd, "env", name), "w", encoding="utf-8") as handle:
            handle.write(value if isinstance(value, str) else json.dumps(value))
    env = base_env(os.path.join(top, "home"))
    subprocess.run([os.path.join(BIN, "ansible-runner"), "run", pdd, "-p", playbook, "--ident", ident],
                   cwd=top, env=env, capture_output=True, text=True, timeout=timeout + 60, check=False)
    return Job(pdd, ident)
