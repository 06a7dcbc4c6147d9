# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The repository as an AWX project: a fresh clone with no make step gets sanless.xen from
collections/requirements.yml the way AWX's project sync installs it (ansible-galaxy in the project
folder, into a path that jobs then get in ANSIBLE_COLLECTIONS_PATH), and its playbooks load from
there. The job templates, surveys and schedules in awx/templates.yml are what AWX accepts (its
survey spec rules), name playbooks that exist, and every survey answer is checked by the playbook
itself: hostile answers stop the job before anything reaches a dom0."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from projecthelpers import BIN, ROOT, clean_env, copy_project, run_cli

# AWX's survey question types and the Python type of their default (awx/main/constants.py).
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                "integer": int, "float": (float, int)}


def load(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def survey_problems(survey):
    """What AWX's POST .../survey_spec/ would refuse in a survey (its JobTemplateSurveySpec checks)."""
    problems = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(survey.get(field), kind):
            problems.append("%s missing or not a %s" % (field, kind.__name__))
    if problems:
        return problems
    if not survey["spec"]:
        problems.append("spec has no question")
    seen = set()
    for idx, item in enumerate(survey["spec"]):
        for field, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(item.get(field), kind):
                problems.append("question %d: %s missing or not a %s" % (idx, field, kind.__name__))
        variable = item.get("variable")
        if variable in seen:
            problems.append("question %d: variable %s twice" % (idx, variable))
        seen.add(variable)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(variable)):
            problems.append("question %d: %r is no variable name" % (idx, variable))
        qtype = item.get("type")
        if qtype not in SURVEY_TYPES:
            problems.append("question %d: type %r" % (idx, qtype))
            continue
        default = item.get("default")
        if default not in (None, "") and not isinstance(default, SURVEY_TYPES[qtype]):
            problems.append("question %d: default %r is no %s" % (idx, default, qtype))
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                problems.append("question %d: %s must be an integer" % (idx, key))
        if qtype in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            if not choices:
                problems.append("question %d: %s needs choices" % (idx, qtype))
            elif default not in (None, ""):
                defaults = default.splitlines() if isinstance(default, str) else default
                if qtype == "multiplechoice" and len(defaults) > 1:
                    problems.append("question %d: one default only" % idx)
                if any(d not in choices for d in defaults):
                    problems.append("question %d: default not among the choices" % idx)
        if isinstance(default, str) and qtype in ("text", "textarea") and default:
            if item.get("min") is not None and len(default) < item["min"] or \
                    item.get("max") is not None and len(default) > item["max"]:
                problems.append("question %d: default outside min/max" % idx)
    return problems


def test_survey_rules_catch_what_awx_refuses():
    good = {"name": "n", "description": "", "spec": [
        {"question_name": "Q", "variable": "v", "type": "multiplechoice", "required": True,
         "choices": ["no", "yes"], "default": "no"}]}
    assert survey_problems(good) == []
    bad = {"name": "n", "description": "", "spec": [
        {"question_name": "Q", "variable": "v", "type": "multiplechoice", "required": "yes", "choices": ["a"], "default": "b"},
        {"question_name": "Q", "variable": "v", "type": "boolean", "required": True},
        {"question_name": "Q", "variable": "n", "type": "integer", "required": False, "default": "1"}]}
    assert len(survey_problems(bad)) == 5, survey_problems(bad)


def test_job_templates_and_schedules():
    data = load("awx", "templates.yml")
    templates = data["sanless_awx_job_templates"]
    names = [t["name"] for t in templates]
    assert len(set(names)) == len(names)
    playbooks = {t["playbook"] for t in templates}
    assert {"playbooks/migrate.yml", "playbooks/vmlist.yml", "playbooks/hoststats.yml", "playbooks/plan.yml",
            "playbooks/evacuate.yml", "playbooks/undrain.yml", "playbooks/nightly.yml", "playbooks/watcher.yml"} <= playbooks
    for template in templates:
        assert set(template) <= {"name", "description", "playbook", "allow_simultaneous", "survey"}, template["name"]
        path = os.path.join(ROOT, template["playbook"])
        assert os.path.isfile(path), template["playbook"]
        if "survey" not in template:
            continue
        assert survey_problems(template["survey"]) == [], template["name"]
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        for question in template["survey"]["spec"]:
            # the playbook reads (and so can check) each answer
            assert re.search(r"\b%s\b" % question["variable"], text), (template["playbook"], question["variable"])
    migrate = next(t for t in templates if t["playbook"] == "playbooks/migrate.yml")
    assert [q["variable"] for q in migrate["survey"]["spec"]] == ["vm", "target", "abort"]
    assert migrate["allow_simultaneous"] is False
    for schedule in data["sanless_awx_schedules"]:
        assert schedule["unified_job_template"] in names
        assert re.match(r"^DTSTART(;TZID=[A-Za-z_/]+)?:\d{8}T\d{6}Z? RRULE:FREQ=(MINUTELY|HOURLY|DAILY|WEEKLY|MONTHLY)"
                        r"(;[A-Z]+=[A-Z0-9,+-]+)*$", schedule["rrule"]), schedule["rrule"]
        template = next(t for t in templates if t["name"] == schedule["unified_job_template"])
        asked = {q["variable"] for q in template.get("survey", {}).get("spec", [])}
        # AWX passes a schedule's extra_data only for variables the template prompts for
        assert set(schedule.get("extra_data", {})) <= asked, schedule["name"]


def test_requirements_install_the_collection_from_the_project_itself():
    reqs = load("collections", "requirements.yml")
    assert reqs == {"collections": [{"name": "sanless.xen", "source": ".", "type": "dir"}]}


@pytest.fixture(scope="module")
def awx_job(tmp_path_factory):
    """A fresh clone as AWX syncs it: ansible-galaxy runs in the project folder with
    collections/requirements.yml; jobs then run there with ANSIBLE_COLLECTIONS_PATH on the result."""
    tmp = tmp_path_factory.mktemp("awx")
    project = tmp / "project"
    copy_project(str(project))
    assert not (project / ".collections").exists()
    collections = tmp / "requirements_collections"
    env = clean_env(tmp, ANSIBLE_COLLECTIONS_PATH=collections)
    run_cli("galaxy", "collection", "install", "--offline", "-r", "collections/requirements.yml", "-p", collections,
            cwd=project, env=env)
    installed = collections / "ansible_collections" / "sanless" / "xen"
    assert (installed / "MANIFEST.json").is_file()
    assert not (installed / "lab").exists() and not (installed / "awx").exists()
    inventory = tmp / "hosts"
    # a dom0 no module can run on: if a check let something through, the job fails right after it
    inventory.write_text("[dom0]\nhosta ansible_host=127.0.0.1 ansible_connection=local ansible_python_interpreter=/nonexistent/python3\n")
    return project, env, inventory


def test_awx_project_playbooks_load_without_the_link(awx_job):
    project, env, inventory = awx_job
    playbooks = sorted("playbooks/" + f for f in os.listdir(str(project / "playbooks")) if f.endswith(".yml"))
    run_cli("playbook", "-i", inventory, "--syntax-check", *playbooks, cwd=project, env=env)


def job(awx_job, playbook, inventory=None, extra_env=None, **answers):
    """Run a job template's playbook with survey answers (extra vars, as AWX passes them); (rc, output)."""
    project, env, dead_python = awx_job
    env = dict(env, **(extra_env or {}))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory or dead_python), playbook]
    for key, value in answers.items():
        cmd += ["-e", json.dumps({key: value})]
    proc = subprocess.run(cmd, cwd=str(project), env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("playbook, answers, refusal", [
    ("playbooks/migrate.yml", {"vm": "web01; reboot", "target": "", "abort": "no"}, "vm must be a VM name"),
    ("playbooks/migrate.yml", {"vm": "web01", "target": "../hostb", "abort": "no"}, "vm must be a VM name"),
    ("playbooks/migrate.yml", {"vm": "web01", "target": "", "abort": "maybe"}, "abort must be yes or no"),
    ("playbooks/vmlist.yml", {"vm": "$(reboot)"}, "refused"),
    ("playbooks/plan.yml", {"min_failures": "1; reboot"}, "must be whole numbers"),
    ("playbooks/plan.yml", {"evacuate": "hosta hostb"}, "evacuate a dom0 name"),
    ("playbooks/report.yml", {"format": "pdf"}, "format must be table, json or html"),
    ("playbooks/hoststats.yml", {"format": "xml"}, "format must be table, json or csv"),
    ("playbooks/evacuate.yml", {"host": "hosta; reboot", "parallel": 1, "partial": "no"}, "refused: letters, digits"),
    ("playbooks/evacuate.yml", {"host": "hosta", "parallel": "2; reboot", "partial": "no"}, "parallel a whole number"),
    ("playbooks/evacuate.yml", {"host": "hosta", "window_end": "25:00", "parallel": 1, "partial": "no"}, "window_end HH:MM"),
    ("playbooks/evacuate.yml", {"host": "hosta", "parallel": 1, "partial": "maybe"}, "force and partial must be yes or no"),
    ("playbooks/undrain.yml", {"host": "hosta", "move_home": "always"}, "move_home must be yes or no"),
    ("playbooks/nightly.yml", {"window_end": "5:30; reboot"}, "window_end must be HH:MM"),
    ("playbooks/watcher.yml", {"watcher": "stop; reboot"}, "must be one of: run, pause, resume"),
])
def test_hostile_survey_answers_stop_the_job_at_the_check(awx_job, playbook, answers, refusal):
    rc, out = job(awx_job, playbook, **answers)
    assert rc != 0
    assert refusal in out, out[-3000:]
    # nothing ran on the dom0: its first module call would have failed on the missing interpreter
    assert "/nonexistent/python3" not in out, out[-3000:]


@pytest.mark.parametrize("playbook, answers, next_task", [
    ("playbooks/migrate.yml", {"vm": "web01", "target": "hostb", "abort": "no"}, "Ask every dom0"),
    ("playbooks/migrate.yml", {"vm": "web01", "target": "", "abort": "yes"}, "Ask every dom0"),
    ("playbooks/vmlist.yml", {"vm": "hosta/*web*,db?"}, "Read the dom0"),
    ("playbooks/plan.yml", {"min_failures": 1, "evacuate": "hosta"}, "Read the dom0"),
    ("playbooks/plan.yml", {"min_failures": "", "evacuate": ""}, "Read the dom0"),
    ("playbooks/report.yml", {"format": "html"}, "Read the dom0"),
    ("playbooks/hostlist.yml", {"format": "csv"}, "Read the dom0"),
    ("playbooks/evacuate.yml", {"host": "host[a]", "deadline_s": 3600, "window_end": "05:30", "parallel": 2,
                                "ha_tolerate": 0, "partial": "yes"}, "Read every dom0"),
    ("playbooks/undrain.yml", {"host": "hosta", "move_home": "yes"}, "Read every dom0"),
])
def test_good_survey_answers_pass_the_check(awx_job, playbook, answers, next_task):
    _rc, out = job(awx_job, playbook, **answers)
    assert "TASK [" in out and next_task in out, out[-3000:]
    assert "/nonexistent/python3" in out, out[-3000:]


# the job's artifacts: what set_stats published, as the default callback prints it with these settings
SHOW_STATS = {"ANSIBLE_SHOW_CUSTOM_STATS": "1", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}


def artifacts(out):
    found = re.findall(r"^\s*RUN: (\{.*\})\s*$", out, re.M)
    assert found, out[-3000:]
    return json.loads(found[-1])


@pytest.mark.parametrize("playbook, answers, name, expected", [
    ("playbooks/vmlist.yml", {"format": "csv", "output": "vms.csv"}, "sanless_xen_vmlist", {"report": "vmlist"}),
    ("playbooks/hoststats.yml", {}, "sanless_xen_hoststats", {"report": "hoststats", "file": None}),
    ("playbooks/hostlist.yml", {"format": "json", "output": "hosts.json"}, "sanless_xen_hostlist",
     {"report": "hostlist"}),
    ("playbooks/report.yml", {"format": "html", "output": "cluster.html"}, "sanless_xen_cluster_report",
     {"report": "cluster", "unhealthy_replicas": []}),
])
def test_report_jobs_publish_their_totals_as_artifacts(awx_job, playbook, answers, name, expected):
    project = awx_job[0]
    _rc, out = job(awx_job, playbook, extra_env=SHOW_STATS, **answers)
    published = artifacts(out)
    assert list(published) == [name]
    stats = published[name]
    assert expected.items() <= stats.items(), stats
    # the dom0 without Python failed its xen_info: counted, with the reason
    assert stats["hosts"] == {"hosta": "failed"} and "/nonexistent/python3" in stats["errors"]["hosta"]
    assert stats["totals"]["hosts_failed"] == 1
    if answers.get("output"):
        written = project / answers["output"]
        assert stats["file"] == str(written.resolve())
        text = written.read_text()
        assert {"csv": text.startswith("host,name,domid,"), "json": text.startswith("{"),
                "html": text.startswith("<!DOCTYPE html>") and "FAILED" in text}[answers["format"]]


def test_migrate_job_publishes_its_summary_as_artifacts(awx_job, tmp_path):
    # dom0s that do not answer: the preflight finds no VM, the run is refused and says so in its artifacts
    inventory = tmp_path / "unreachable"
    inventory.write_text("[dom0]\n" + "".join(
        "%s ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=5'\n" % h
        for h in ("hosta", "hostb")))
    rc, out = job(awx_job, "playbooks/migrate.yml", inventory=inventory, extra_env=SHOW_STATS,
                  vm="web01", target="hostb", abort="no")
    assert rc != 0
    summary = artifacts(out)["sanless_xen_migration"]
    assert (summary["vm"], summary["action"], summary["result"], summary["source"]) == ("web01", "migrate", "refused", None)
    assert "unknown VM web01" in summary["problems"][0] and "unreachable: hosta, hostb" in summary["problems"][0]
    assert set(summary) == {"vm", "action", "source", "target", "migration_id", "mode", "resumed", "result",
                            "closed_earlier", "failed_step", "failed_host", "msg", "problems", "seconds",
                            "sync_seconds", "xl_migrate_seconds", "pause_ms"}


def test_plan_job_publishes_its_verdict_as_artifacts(awx_job):
    rc, out = job(awx_job, "playbooks/plan.yml", extra_env=SHOW_STATS, min_failures=1, evacuate="")
    verdict = artifacts(out)["sanless_xen_plan"]
    assert verdict["offline_hosts"] == ["hosta"] and verdict["live_hosts"] == []
    # no live dom0 tolerates no failure: the job fails (a nightly schedule notifies), verdict published first
    assert verdict["overcommitted"] is True and rc != 0
    assert "overcommitted: the cluster tolerates 0 host failure(s), 1 required" in out
    assert "tolerated_failures" in verdict and "overcommitted" in verdict
    assert "failover" not in verdict and "vms" not in verdict and "hosts" not in verdict
