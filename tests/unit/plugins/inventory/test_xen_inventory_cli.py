# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``ansible-inventory -i lab.xen.yml`` as the lab acceptance runs it, with an ``ssh`` on PATH that answers
with the lab recordings (fixtures/xl/4.17.5, hosta, record.py phase domu) and logs its calls: the dom0s come
from a sanless.xen.lab config (through the plugin loader, ``auto`` and a second inventory), the jsonfile cache
is named by FQCN, and the second run reads no dom0. ``ls -p`` of the auto folder is run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
XL_DIR = os.path.join(ROOT, "tests", "unit", "fixtures", "xl", "4.17.5")

FAKE_SSH = r'''#!%(python)s
import os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
at = args.index("--") + 2
assert args[at:at + 3] == ["env", "LANG=C", "LC_ALL=C"], args
command = " ".join(args[at + 3:])
files = {"xl info": "xl-info.txt", "xl list": "xl-list-domu.txt", "xl list -l": "xl-list-l.json"}
if command in files:
    with open(os.path.join(os.environ["FAKE_SSH_XL"], files[command])) as handle:
        sys.stdout.write(handle.read())
elif command == "ls -p /etc/xen/auto":
    os.execvp("ls", ["ls", "-p", os.environ["FAKE_SSH_AUTO"]])
else:
    sys.exit("fake ssh: unknown command %%r" %% command)
'''


def test_lab_config_graph_then_cache(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH % {"python": sys.executable})
    (bin_dir / "ssh").chmod(0o755)
    auto = tmp_path / "auto"
    auto.mkdir()
    (auto / "fxrec.cfg").write_text('name = "fxrec"\n')
    (tmp_path / "lab.json").write_text(json.dumps({"hosts": {"hosta": {"ip": "10.77.0.11"}}}))
    (tmp_path / "lab.yml").write_text("plugin: sanless.xen.lab\nstate_file: %s\n" % (tmp_path / "lab.json"))
    (tmp_path / "lab.xen.yml").write_text(
        "plugin: sanless.xen.xen\ndom0_inventory: [lab.yml]\ncache: true\n"
        "cache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\n" % (tmp_path / "cache"))
    log = tmp_path / "ssh.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(HOME=str(tmp_path), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), FAKE_SSH_LOG=str(log), FAKE_SSH_XL=XL_DIR,
               FAKE_SSH_AUTO=str(auto), PATH=path)

    def inventory(*args):
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", "lab.xen.yml"]
                              + list(args), cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0 and "WARNING" not in proc.stderr, proc.stderr
        return proc.stdout

    graph = inventory("--graph")
    assert "@dom0_hosta:\n  |  |--fxrec" in graph
    assert "@xen_dom0s:\n  |  |--hosta" in graph
    calls = log.read_text().splitlines()
    assert len(calls) == 4
    # The lab's connection settings reach ssh: its user, key and the ProxyCommand into the namespace.
    assert all(" -l root " in call and " -o ProxyCommand=ip netns exec sanless-lab nc %h %p " in call
               and call.endswith(tuple(["xl info", "xl list", "xl list -l", "ls -p /etc/xen/auto"])) for call in calls)
    fxrec = json.loads(inventory("--host", "fxrec"))
    assert (fxrec["xen_dom0"], fxrec["xen_home"], fxrec["xen_storage_mode"]) == ("hosta", "hosta", "plain")
    assert len(log.read_text().splitlines()) == 4
    inventory("--graph", "--flush-cache")
    assert len(log.read_text().splitlines()) == 8
