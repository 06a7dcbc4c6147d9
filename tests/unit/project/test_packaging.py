# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection artifact: `ansible-galaxy collection build` ships the collection and nothing of the
development checkout or its caches (galaxy.yml build_ignore), installs, and its playbooks run by
FQCN (sanless.xen.migrate, ...) from the installed copy. Galaxy metadata, LICENSE and
version_added agree with each other."""

from __future__ import annotations

import fnmatch
import os
import re

import pytest
import yaml

from projecthelpers import ROOT, build_collection, clean_env, copy_project, project_files, run_cli, write_inside

# What the artifact may hold at its top level; everything else of the checkout stays out.
SHIPPED_TOP = {"LICENSE", "README.md", "bindep.txt", "requirements.txt",
               "changelogs", "docs", "meta", "playbooks", "plugins", "roles", "tests"}
GENERATED = {"MANIFEST.json", "FILES.json"}
# Parts of shipped folders that are development-only.
NOT_SHIPPED = ("tests/e2e/", "tests/bench/", "tests/unit/project/", "tests/awx/", "tests/ee/")
# Local junk that must never ship, whatever else changes (path fnmatch patterns).
JUNK = [".ansible/*", "*/.ansible/*", ".venv*", ".collections/*", ".hypothesis/*", "*/.hypothesis/*",
        ".pytest_cache/*", "*/.pytest_cache/*", "artifacts/*", "tests/output/*", "lab/*", "*.tar.gz",
        "*__pycache__*", "*.pyc", "*~", "*.swp", "vmlist.json", "Makefile", "ansible.cfg", ".ci/*",
        "scripts/*", "requirements/*", "awx/*", "collections/*", "execution-environment.yml"]
# The artifact is a few hundred files (about 450 with the recorded iSCSI/AoE fixtures, three files per
# command; about 560 with the md, evacuation, snapshot and guard work); the one with the local .ansible folder
# had 628 when the collection had about 350; about 705 with the recorded targetcli batches): the JUNK patterns above
# are the real check, this cap a backstop.
MAX_FILES = 800


def galaxy_yml():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def expected_files(files):
    return sorted(f for f in files
                  if f.split("/")[0] in SHIPPED_TOP and not f.startswith(NOT_SHIPPED)
                  and "__pycache__" not in f and not f.endswith(".pyc"))


def check_artifact(names, files):
    """names: the tarball's files; files: the checkout's files as git sees them."""
    junk = sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in JUNK))
    assert not junk, "junk in the artifact: %s" % junk[:20]
    outside = sorted(n for n in names if n.split("/")[0] not in SHIPPED_TOP | GENERATED or n.startswith(NOT_SHIPPED))
    assert not outside, "not part of the collection: %s" % outside[:20]
    missing = sorted(set(expected_files(files)) - set(names))
    assert not missing, "collection files missing from the artifact: %s" % missing[:20]
    unknown = sorted(set(names) - set(files) - GENERATED)
    assert not unknown, "files git ignores (local output) in the artifact: %s" % unknown[:20]
    assert len(names) <= MAX_FILES, "%d files in the artifact" % len(names)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The artifact built from this checkout as it is (with its links, venvs and caches)."""
    tmp = tmp_path_factory.mktemp("build")
    out = tmp / "out"
    out.mkdir()
    path, names = build_collection(ROOT, out, clean_env(tmp))
    return tmp, path, names


def test_artifact_of_this_checkout_holds_the_collection_only(built):
    _tmp, path, names = built
    assert os.path.basename(path) == "sanless-xen-%s.tar.gz" % galaxy_yml()["version"]
    check_artifact(names, project_files())
    for required in ("LICENSE", "README.md", "meta/runtime.yml", "MANIFEST.json", "FILES.json",
                     "plugins/modules/xen_info.py", "roles/migrate/tasks/main.yml", "playbooks/migrate.yml"):
        assert required in names


def test_local_junk_in_a_fresh_clone_stays_out_of_the_artifact(tmp_path):
    """The folders local runs leave behind (ansible-lint's .ansible, venvs, hypothesis and pytest
    caches, reports, a previous tarball, editor files), at the top and deeper, do not ship."""
    src = tmp_path / "src"
    copy_project(str(src))
    files = project_files()
    junk = [".ansible/collections/ansible_collections/x/y/z.yml", "roles/dom0/.ansible/roles/a.yml",
            ".venv-newest/bin/python3", ".venv-oldest/lib/site.py", ".hypothesis/examples/1/2",
            ".pytest_cache/v/cache/nodeids", "tests/unit/.pytest_cache/README.md", "artifacts/job/stdout",
            "tests/output/junit/x.xml", "plugins/modules/__pycache__/xen_info.cpython-313.pyc",
            "sanless-xen-0.0.1.tar.gz", "vmlist.json", "hoststats.json", "playbooks/migrate.yml~",
            "plugins/modules/.xen_info.py.swp", ".build/x", "context/Containerfile"]
    for rel in junk:
        write_inside(src, rel, "junk\n")
    os.makedirs(str(src / ".collections" / "ansible_collections" / "sanless"))
    os.symlink("../../..", str(src / ".collections" / "ansible_collections" / "sanless" / "xen"))
    out = tmp_path / "out"
    out.mkdir()
    _path, names = build_collection(src, out, clean_env(tmp_path))
    check_artifact(names, files)
    leaked = sorted(set(junk) & set(names))
    assert not leaked


def test_installed_artifact_runs_its_playbooks_by_fqcn(built):
    """ansible-galaxy collection install of the tarball into an empty path; every playbook resolves as
    sanless.xen.NAME (roles by FQCN inside it) from a folder with no ansible.cfg and no link, and
    ansible-doc finds the installed modules (sanless.xen.xen_info) and the inventory plugin."""
    tmp, path, _names = built
    dest = tmp / "installed"
    env = clean_env(tmp, ANSIBLE_COLLECTIONS_PATH=dest)
    run_cli("galaxy", "collection", "install", "--offline", "-p", dest, path, cwd=tmp, env=env)
    coll = dest / "ansible_collections" / "sanless" / "xen"
    assert (coll / "MANIFEST.json").is_file()
    playbooks = sorted(f[:-4] for f in os.listdir(str(coll / "playbooks")) if f.endswith(".yml"))
    assert "migrate" in playbooks
    work = tmp / "work"
    work.mkdir()
    proc = run_cli("playbook", "-i", "localhost,", "--syntax-check", *["sanless.xen." + p for p in playbooks],
                   cwd=work, env=env)
    assert "ERROR" not in proc.stderr
    # the installed modules and plugins are found and documented by FQCN, from that path alone
    proc = run_cli("doc", "sanless.xen.xen_info", cwd=work, env=env)
    assert str(coll / "plugins" / "modules" / "xen_info.py") in proc.stdout and "EXAMPLES:" in proc.stdout
    proc = run_cli("doc", "-t", "inventory", "sanless.xen.xen", cwd=work, env=env)
    assert "plugin: sanless.xen.xen" in proc.stdout
    listed = run_cli("doc", "-l", "sanless.xen", cwd=work, env=env).stdout
    modules = sorted(f[:-3] for f in os.listdir(str(coll / "plugins" / "modules")) if f.endswith(".py"))
    assert modules and all("sanless.xen." + m in listed for m in modules), listed


def test_playbook_names_are_addressable_by_fqcn():
    """ansible-core finds a collection playbook by NAMESPACE.NAME.PLAYBOOK only when the name is a
    Python identifier (no dashes) and the file is playbooks/NAME.yml or .yaml."""
    names = [f for f in os.listdir(os.path.join(ROOT, "playbooks")) if not f.startswith(".")]
    assert names
    for name in names:
        assert re.match(r"^[A-Za-z_][A-Za-z0-9_]*\.ya?ml$", name), name


def test_galaxy_metadata():
    meta = galaxy_yml()
    assert meta["namespace"] == "sanless" and meta["name"] == "xen"
    assert re.match(r"^\d+\.\d+\.\d+$", meta["version"])
    assert meta["license"] == ["GPL-3.0-or-later"]
    for key in ("repository", "documentation", "homepage", "issues"):
        # an address Galaxy shows must be a real one: no placeholder
        assert ".invalid" not in str(meta.get(key) or ""), key
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as handle:
        text = handle.read()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    assert "END OF TERMS AND CONDITIONS" in text


def plugin_docs():
    """(path, DOCUMENTATION as a dict) of every documented plugin and module."""
    docs = []
    for folder, _dirs, files in os.walk(os.path.join(ROOT, "plugins")):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(".yml"):
                with open(path, encoding="utf-8") as handle:
                    docs.append((path, yaml.safe_load(handle)["DOCUMENTATION"]))
            elif name.endswith(".py") and "doc_fragments" not in folder:
                with open(path, encoding="utf-8") as handle:
                    match = re.search(r'^DOCUMENTATION = r?"""(.*?)"""', handle.read(), re.S | re.M)
                if match:
                    docs.append((path, yaml.safe_load(match.group(1))))
    return docs


def version_added_values(doc):
    found = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "version_added":
                found.append(str(value))
            else:
                found.extend(version_added_values(value))
    elif isinstance(doc, list):
        for value in doc:
            found.extend(version_added_values(value))
    return found


def released_versions():
    with open(os.path.join(ROOT, "changelogs", "changelog.yaml"), encoding="utf-8") as handle:
        return set((yaml.safe_load(handle).get("releases") or {}).keys())


def test_version_added_is_a_released_version_or_the_coming_one():
    """version_added names a version in changelogs/changelog.yaml or the one galaxy.yml is about to
    release; nothing claims a later version than galaxy.yml's."""
    version = galaxy_yml()["version"]
    allowed = released_versions() | {version}
    docs = plugin_docs()
    assert len(docs) >= 15
    for path, doc in docs:
        for value in version_added_values(doc):
            assert value in allowed, "%s: version_added %s, but the collection is %s (released: %s)" % (
                os.path.relpath(path, ROOT), value, version, sorted(released_versions()))


def test_sanity_has_no_ignores():
    """ansible-test sanity passes with no ignore file (tests/sanity/ignore-*.txt) and no skipped test."""
    assert not [f for f in project_files() if re.match(r"^tests/sanity/(ignore|skip)-.*\.txt$", f)]
    with open(os.path.join(ROOT, "scripts", "sanity.sh"), encoding="utf-8") as handle:
        script = handle.read()
    sanity = [line for line in script.splitlines() if "ansible-test sanity" in line]
    assert sanity and not [line for line in sanity if "--skip-test" in line or "--exclude" in line], sanity


def test_lint_covers_the_whole_collection():
    """make lint runs ansible-lint on the repository as a whole; .ansible-lint leaves out only
    what is no Ansible content of the project: venvs, caches, local output, recorded command output."""
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as handle:
        lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", handle.read(), re.M).group(1)
    assert re.search(r"ansible-lint --profile production\s*$", lint.splitlines()[0]), lint
    with open(os.path.join(ROOT, ".ansible-lint"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    assert config["profile"] == "production"
    recorded = ("tests/unit/fixtures/",)
    for excluded in config["exclude_paths"]:
        tracked = [f for f in project_files() if fnmatch.fnmatch(f, excluded.rstrip("/") + "/*") or f == excluded]
        if excluded not in recorded:
            assert not tracked, "%s leaves project files out of lint: %s" % (excluded, tracked[:5])
    assert set(config.get("skip_list") or []) <= {"galaxy[no-repository]"}
    assert not config.get("warn_list")
