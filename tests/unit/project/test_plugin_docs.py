# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every plugin's documentation renders with ansible-doc, and every EXAMPLES block is valid: task
lists pass ansible-playbook --syntax-check, filters are used as filters and tests as tests (select()
and friends take a test), every filter and test named exists, and every variable is defined by the
example itself (register, vars, set_fact, loop), is one of Ansible's, or is an input it names."""

from __future__ import annotations

import json
import os

import jinja2
import jinja2.meta
import jinja2.nodes
import pytest
import yaml

from projecthelpers import ROOT, clean_env, run_cli

TYPES = ("module", "filter", "test", "inventory")
# Variables Ansible defines, and the template globals it has.
ANSIBLE_NAMES = {
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short", "ansible_host",
    "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_batch", "play_hosts", "omit", "item",
    "ansible_check_mode", "ansible_facts", "ansible_loop", "playbook_dir", "inventory_dir",
    "lookup", "query", "q", "now", "undef", "range", "dict", "lipsum", "cycler", "joiner", "namespace",
}
# Variables an example expects from the inventory or the command line (-e), by plugin.
INPUTS = {
    "sanless.xen.drbd_resource": {"drbd_address", "drbd_peer_name", "drbd_peer_address", "web01_drbd_secret"},
    "sanless.xen.iscsi_target": {"vault_iscsi_secret"},
    "sanless.xen.iscsi_initiator": {"vault_iscsi_secret"},
    "sanless.xen.valid_vm_name": {"vm"},
    "sanless.xen.vm_name": {"vm"},
    "sanless.xen.backup_id": {"vm", "backup"},
    "sanless.xen.window_end": {"window_end"},
}
# Task keywords whose value is a bare Jinja expression.
EXPRESSION_KEYS = {"when", "that", "failed_when", "changed_when", "until"}
ENV = jinja2.Environment()


def collection_env(tmp_path):
    return clean_env(tmp_path, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))


def names_of(kind):
    folder = os.path.join(ROOT, "plugins", kind if kind != "module" else "modules")
    if kind == "filter":
        # filters live in report.py/migration.py and are documented one .yml each
        return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".yml"))
    return sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """{type: {fqcn: ansible-doc --json entry}} for every plugin of the collection."""
    tmp = tmp_path_factory.mktemp("doc")
    env = collection_env(tmp)
    found = {}
    for kind in TYPES:
        names = ["sanless.xen." + n for n in names_of(kind)]
        assert names, kind
        found[kind] = json.loads(run_cli("doc", "--json", "-t", kind, *names, cwd=tmp, env=env).stdout)
        assert sorted(found[kind]) == names
    return found


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The filter and test names usable in a template: Jinja's, ansible.builtin's (also short) and ours."""
    tmp = tmp_path_factory.mktemp("known")
    env = collection_env(tmp)
    result = {}
    for kind, builtin in (("filter", jinja2.defaults.DEFAULT_FILTERS), ("test", jinja2.defaults.DEFAULT_TESTS)):
        listed = json.loads(run_cli("doc", "-l", "--json", "-t", kind, cwd=tmp, env=env).stdout)
        names = set(builtin) | set(listed)
        names |= {n[len("ansible.builtin."):] for n in listed if n.startswith("ansible.builtin.")}
        result[kind] = names
    return result


@pytest.mark.parametrize("kind", TYPES)
def test_docs_render(kind, tmp_path):
    """ansible-doc prints each plugin's page (options, examples, return values) without complaint."""
    names = ["sanless.xen." + n for n in names_of(kind)]
    proc = run_cli("doc", "-t", kind, *names, cwd=tmp_path, env=collection_env(tmp_path))
    # Our plugins' names or their path, not "sanless" alone: the venvs live under ~/.cache/sanless-lab, and a
    # third party's warning (cryptography's DSA deprecation) names its file there.
    problems = [line for line in proc.stderr.splitlines()
                if "sanless.xen" in line or "ansible_collections/sanless" in line or "ERROR" in line]
    assert not problems
    for name in names:
        assert name in proc.stdout
    assert proc.stdout.count("EXAMPLES:") == len(names)


def example_tasks(docs):
    """(fqcn, tasks) of every module, filter and test EXAMPLES block that is a list of tasks."""
    found = []
    for kind in ("module", "filter", "test"):
        for name, entry in sorted(docs[kind].items()):
            tasks = yaml.safe_load(entry["examples"] or "")
            if isinstance(tasks, list) and all(isinstance(task, dict) for task in tasks):
                found.append((name, tasks))
    return found


def test_examples_are_named_task_lists(docs):
    listed = dict(example_tasks(docs))
    for kind in ("module", "filter", "test"):
        for name in docs[kind]:
            assert listed.get(name), "%s: EXAMPLES must be a list of tasks" % name
            for task in listed[name]:
                assert task.get("name"), "%s: every example task has a name" % name


def test_examples_pass_syntax_check(docs, tmp_path):
    plays = [{"name": "EXAMPLES of %s" % name, "hosts": "all", "gather_facts": False, "tasks": tasks}
             for name, tasks in example_tasks(docs)]
    playbook = tmp_path / "examples.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    run_cli("playbook", "-i", "localhost,", "--syntax-check", playbook, cwd=tmp_path, env=collection_env(tmp_path))


def templates(value, key=None):
    """Every Jinja source in a task: strings with {{ }} or {% %}, and bare expressions (when, that, ...)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from templates(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from templates(v, key)
    elif isinstance(value, str):
        if key in EXPRESSION_KEYS:
            yield "{{ %s }}" % value
        elif "{{" in value or "{%" in value:
            yield value


def defined_by(tasks):
    """Names an example defines itself."""
    names = set()
    for task in tasks:
        names.update([task["register"]] if "register" in task else [])
        names.update(task.get("vars") or {})
        names.update((task.get("loop_control") or {}).get("loop_var", "item").split())
        for action in ("ansible.builtin.set_fact", "set_fact"):
            names.update(task.get(action) or {})
    return names


def check_node(node, known, where):
    """Filters and tests named in a template exist and are of the right kind."""
    problems = []
    for filt in node.find_all(jinja2.nodes.Filter):
        if filt.name not in known["filter"]:
            kind = "a test" if filt.name in known["test"] else "unknown"
            problems.append("%s: %s is used as a filter but is %s" % (where, filt.name, kind))
        # select/reject take a test name first; selectattr/rejectattr an attribute, then a test
        position = {"select": 0, "reject": 0, "selectattr": 1, "rejectattr": 1}.get(filt.name.split(".")[-1])
        if position is not None and len(filt.args) > position and isinstance(filt.args[position], jinja2.nodes.Const):
            test = filt.args[position].value
            if test not in known["test"]:
                kind = "a filter" if test in known["filter"] else "unknown"
                problems.append("%s: %s(%r) needs a test, %s is %s" % (where, filt.name, test, test, kind))
        if filt.name.split(".")[-1] == "map" and filt.args and isinstance(filt.args[0], jinja2.nodes.Const):
            if filt.args[0].value not in known["filter"]:
                problems.append("%s: map(%r) needs a filter" % (where, filt.args[0].value))
    for test in node.find_all(jinja2.nodes.Test):
        if test.name not in known["test"]:
            kind = "a filter" if test.name in known["filter"] else "unknown"
            problems.append("%s: 'is %s' needs a test, %s is %s" % (where, test.name, test.name, kind))
    return problems


def parse(source):
    """The Jinja syntax tree (parsing resolves no filter or test, so any name is kept as written)."""
    return ENV.parse(source)


def _stand_in(*_args, **_kwargs):
    return None


def undeclared(ast):
    """Variables a template reads without defining them; Jinja's analysis wants every filter and test
    to exist, so a throwaway environment gets a stand-in for each one named."""
    env = jinja2.Environment()
    env.filters.update((f.name, _stand_in) for f in ast.find_all(jinja2.nodes.Filter))
    env.tests.update((t.name, _stand_in) for t in ast.find_all(jinja2.nodes.Test))
    ast.environment = env
    return jinja2.meta.find_undeclared_variables(ast)


def test_examples_use_filters_tests_and_variables_rightly(docs, known):
    problems = []
    for name, tasks in example_tasks(docs):
        allowed = ANSIBLE_NAMES | defined_by(tasks) | INPUTS.get(name, set())
        for index, task in enumerate(tasks):
            where = "%s EXAMPLES task %d (%s)" % (name, index + 1, task["name"])
            for source in templates(task):
                ast = parse(source)
                problems.extend(check_node(ast, known, where))
                for var in sorted(undeclared(ast) - allowed):
                    problems.append("%s: variable %s is defined nowhere in the example" % (where, var))
    assert not problems, "\n".join(problems)


def test_inventory_examples_are_valid_sources(docs):
    for name, entry in docs["inventory"].items():
        source = yaml.safe_load(entry["examples"])
        assert source["plugin"] == name
        assert set(source) <= set(entry["doc"]["options"]), name


def test_checker_catches_the_known_mistakes(known):
    """The checks above find a filter used as a test, a test used as a filter and an unknown name."""
    wrong = ("{{ names | select('sanless.xen.match_vm', 'web*') }} {{ vm | sanless.xen.vm_name }}"
             " {{ x is sanless.xen.valid_vm_name }} {{ y | no_such_filter }}")
    problems = check_node(parse(wrong), known, "t")
    assert len(problems) == 4, problems
    right = "{{ names | select('sanless.xen.vm_name') | map('sanless.xen.valid_vm_name') }} {{ x is sanless.xen.vm_name }}"
    assert check_node(parse(right), known, "t") == []
