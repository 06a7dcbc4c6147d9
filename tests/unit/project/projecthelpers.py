# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers for the tests of the project around the collection (packaging, AWX layout, docs):
the checkout's files as git sees them, and the ansible CLIs of the Python running pytest, run in
an environment that only sees the paths a test gives it (no ANSIBLE_* of the caller, no network)."""

from __future__ import annotations

import os
import shutil
import stat
import signal
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.dirname(sys.executable)


# the lab recordings the fake dom0s' tools replay
XL_RECORDINGS = os.path.join(ROOT, "tests", "unit", "fixtures", "xl", "4.17.5")
LVM_RECORDINGS = os.path.join(ROOT, "tests", "unit", "fixtures", "lvm", "2.03.16")


def fake_dom0_tools(tmp_path, script, hosts=("hosta", "hostb"), **fields):
    """Fake dom0s for role tests on a local connection: tmp_path/fake/HOST/{xl,lvs,vgs}, each the shell script
    `script` formatted with host, log (every call is appended there), xl and lvm (the recording folders) and fields
    (a callable value is called with the host), and an empty tmp_path/HOST/auto. Returns the log's path."""
    log = tmp_path / "tools.log"
    for host in hosts:
        folder = tmp_path / "fake" / host
        folder.mkdir(parents=True)
        values = dict((k, v(host) if callable(v) else v) for k, v in fields.items())
        for tool in ("xl", "lvs", "vgs"):
            path = folder / tool
            path.write_text(script.format(host=host, log=log, xl=XL_RECORDINGS, lvm=LVM_RECORDINGS, **values))
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        (tmp_path / host / "auto").mkdir(parents=True)
    return log


def project_files(root=ROOT):
    """The checkout's files as git sees them: tracked, plus new ones that .gitignore does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, check=True, capture_output=True, text=True).stdout
    return sorted(f for f in out.split("\0") if f and os.path.lexists(os.path.join(root, f)))


def copy_project(dest, root=ROOT):
    """A fresh-clone-like copy of the checkout (no .collections link, no venvs, no caches).
    Symbolic links are left out: a clone has none, and writing through one could reach outside."""
    for rel in project_files(root):
        src = os.path.join(root, rel)
        if os.path.islink(src):
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
    return dest


def write_inside(top, rel, text):
    """Write top/rel, refusing any path that resolves outside top (through a link, say)."""
    path = os.path.join(str(top), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    real_top = os.path.realpath(str(top))
    if os.path.commonpath([real_top, os.path.realpath(path)]) != real_top:
        raise AssertionError("%s resolves outside %s" % (rel, top))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def clean_env(tmp_path, **extra):
    """The caller's environment without ANSIBLE_* settings, with a private home and temp folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1",
               PATH=BIN + os.pathsep + env.get("PATH", ""))
    env.update({k: str(v) for k, v in extra.items()})
    env[RUN_MARK] = str(tmp_path)  # what end_processes finds the run's processes by
    return env


RUN_MARK = "SANLESS_TEST_RUN"


def end_processes(tmp_path):
    """SIGKILL, by PID, every process still running with clean_env(tmp_path)'s environment (async_wrapper
    daemons detach from ansible-playbook's session, so killing its group would miss them); the PIDs ended."""
    mark = ("%s=%s" % (RUN_MARK, tmp_path)).encode()
    ended = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as handle:
                if mark not in handle.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            ended.append(int(entry))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return ended


def run_cli(tool, *args, cwd, env, timeout=300):
    """Run ansible-TOOL (from the venv of this Python); fail the test with its output on rc != 0."""
    proc = subprocess.run([os.path.join(BIN, "ansible-" + tool)] + [str(a) for a in args],
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        command = "ansible-%s %s" % (tool, " ".join(map(str, args)))
        pytest.fail("%s failed (rc %d):\n%s\n%s" % (command, proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


def build_collection(src, out_dir, env):
    """ansible-galaxy collection build of src into out_dir; returns the tarball's member names (files only)."""
    run_cli("galaxy", "collection", "build", "--output-path", out_dir, str(src), cwd=out_dir, env=env)
    tarballs = [f for f in os.listdir(str(out_dir)) if f.endswith(".tar.gz")]
    assert len(tarballs) == 1, tarballs
    path = os.path.join(str(out_dir), tarballs[0])
    with tarfile.open(path) as tar:
        names = sorted(m.name for m in tar.getmembers() if not m.isdir())
    return path, names
