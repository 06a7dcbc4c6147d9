# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""execution-environment.yml, requirements.txt and bindep.txt agree with the code: the EE's
ansible-core is the one the tests run on and meets requires_ansible, and every Python package the
controller-side plugins import (with the module_utils they load) is the standard library,
ansible-core, a package ansible-core itself requires (jinja2: wherever ansible-core is installed, so
is it) or listed in requirements.txt. tests/ee/check.sh runs ansible-builder on the definition."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import sys

import yaml
from ansible.module_utils.compat.version import LooseVersion

from projecthelpers import ROOT

CONTROLLER_SIDE = ("action", "filter", "test", "inventory")
PREFIX = "ansible_collections.sanless.xen."


def load(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def requirement_names():
    names = set()
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#")[0].strip()
            if line:
                names.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("-", "_"))
    return names


def imports_of(path):
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def controller_imports():
    """{top-level package: first file importing it} over the controller-side plugins and, through
    them, the collection's own modules they import."""
    todo = []
    for kind in CONTROLLER_SIDE:
        folder = os.path.join(ROOT, "plugins", kind)
        todo.extend(os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".py"))
    seen, found = set(), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imports_of(path):
            if module.startswith(PREFIX):
                own = os.path.join(ROOT, *module[len(PREFIX):].split(".")) + ".py"
                if os.path.isfile(own):
                    todo.append(own)
                continue
            found.setdefault(module.split(".")[0], os.path.relpath(path, ROOT))
    return found


def core_requirements():
    """The import names of what ansible-core requires (its package metadata): jinja2, yaml, ..."""
    names = set()
    for requirement in importlib.metadata.requires("ansible-core") or []:
        if ";" in requirement and "extra ==" in requirement:
            continue
        name = re.split(r"[<>=!~\[; ]", requirement)[0].lower().replace("-", "_")
        names.add({"pyyaml": "yaml"}.get(name, name))
    return names


def test_controller_side_needs_only_what_requirements_txt_lists():
    found = controller_imports()
    assert "ansible" in found
    assert "jinja2" in core_requirements()
    allowed = set(sys.stdlib_module_names) | {"ansible", "__future__"} | core_requirements() | requirement_names()
    missing = {name: where for name, where in found.items() if name.lower() not in allowed}
    assert not missing, "imported but not in requirements.txt: %s" % missing


def test_definition_pins_the_tested_ansible_core():
    ee = load("execution-environment.yml")
    assert ee["version"] == 3
    deps = ee["dependencies"]
    assert deps["python"] == "requirements.txt" and deps["system"] == "bindep.txt"
    core = re.match(r"^ansible-core==(\S+)$", deps["ansible_core"]["package_pip"]).group(1)
    with open(os.path.join(ROOT, "requirements", "controller-newest.txt"), encoding="utf-8") as handle:
        assert "ansible-core==%s\n" % core in handle.read()
    lower = load(os.path.join("meta", "runtime.yml"))["requires_ansible"].lstrip(">=")
    assert LooseVersion(core) >= LooseVersion(lower)
    # the ansible-runner the AWX job tests run with (tests/awx/awxjob.py) is the image's
    runner = re.match(r"^ansible-runner==(\S+)$", deps["ansible_runner"]["package_pip"]).group(1)
    for venv in ("newest", "oldest"):
        with open(os.path.join(ROOT, "requirements", "controller-%s.txt" % venv), encoding="utf-8") as handle:
            assert "ansible-runner==%s\n" % runner in handle.read(), venv
    python = deps["python_interpreter"]["python_path"]
    assert re.match(r"^/usr/bin/python3\.(1[2-9])$", python), "ansible-core %s needs Python >= 3.12" % core


def test_bindep_lists_the_ssh_client():
    with open(os.path.join(ROOT, "bindep.txt"), encoding="utf-8") as handle:
        lines = [line.split("#")[0].strip() for line in handle if line.split("#")[0].strip()]
    assert lines == ["openssh-clients [platform:rpm]", "openssh-client [platform:dpkg]"]
