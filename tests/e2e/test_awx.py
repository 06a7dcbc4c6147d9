"""AWX acceptance in the lab (issue 16), without AWX: a fresh `git clone` (no make step) synced as AWX
syncs a project, the migrate job template run with ansible-runner on a private data dir laid out as
AWX's (tests/awx/awxjob.py) with survey-style extra vars and the lab's inventory as AWX imports it;
the job completes, its artifacts hold the migration summary and its events the sync progress. And
the collection artifact: built, installed into an empty path, its xen_info module called by FQCN on
the lab's dom0s. Long tests (make test-faults): make test runs the same playbooks directly."""
import json
import os
import re
import sys

import pytest

from labhelpers import leftovers, remove_vm, where_runs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "awx"))
import awxjob  # noqa: E402

pytestmark = pytest.mark.long
VM = "web01"


@pytest.fixture(scope="module")
def synced(lab, tmp_path_factory):
    """The dom0s prepared (dom0.yml: root ssh trust for xl migrate), web01 running, the project synced
    from a clone and the lab's inventory as AWX's inventory sync imports it."""
    lab.playbook("playbooks/dom0.yml")
    if not where_runs(lab, VM):
        lab.playbook("playbooks/provision.yml", "-e", "vm=%s" % VM)
    top = str(tmp_path_factory.mktemp("awx-lab"))
    project, collections = awxjob.sync_project(top)
    inventory = awxjob.exported_inventory("inventory/lab.yml", str(lab.repo))
    assert sorted(inventory["dom0"]["hosts"]) == sorted(lab.hosts)
    yield top, project, collections, inventory
    remove_vm(lab, VM)


def migrate_job(synced, ident, **answers):
    top, project, collections, inventory = synced
    return awxjob.run_job(top, project, collections, "playbooks/migrate.yml", inventory, ident=ident,
                          extravars=dict({"target": "", "abort": "no"}, **answers))


def test_migrate_job_template_completes_with_its_summary_as_artifacts(lab, synced):
    source = where_runs(lab, VM)[0]
    target = [h for h in lab.hosts if h != source][0]
    result = migrate_job(synced, "migrate", vm=VM, target=target)
    assert result.status == "successful" and result.rc == 0, result
    summary = result.artifacts["sanless_xen_migration"]
    assert (summary["result"], summary["source"], summary["target"], summary["mode"]) == (
        "migrated", source, target, "plain"), summary
    assert summary["migration_id"] and summary["seconds"] > 0 and summary["xl_migrate_seconds"] > 0, summary
    assert summary["problems"] == [] and summary["failed_step"] is None, summary
    assert "secret" not in json.dumps(summary).lower()
    # the sync progress reached AWX's job output as events while the promote step waited
    progress = [e for e in result.events if re.search(r"\] sync(ed)? %s: " % VM, e.get("stdout") or "")]
    assert progress, [e.get("stdout") for e in result.events][-40:]
    assert where_runs(lab, VM) == [target]
    for host in lab.hosts:
        assert leftovers(lab, host, VM) == []

    # the same template again with the source as target: refused before any change, in the artifacts
    refused = migrate_job(synced, "migrate-refused", vm=VM, target=target)
    assert refused.status == "failed", refused
    summary = refused.artifacts["sanless_xen_migration"]
    assert summary["result"] == "refused" and "target = source" in summary["problems"][0], summary
    assert where_runs(lab, VM) == [target]

    # back with an empty target answer: the plan picks the other dom0 of two
    if len(lab.hosts) == 2:
        back = migrate_job(synced, "migrate-back", vm=VM)
        assert back.status == "successful", back
        assert back.artifacts["sanless_xen_migration"]["target"] == source
        assert where_runs(lab, VM) == [source]


def test_installed_artifact_runs_xen_info_by_fqcn_on_the_dom0s(lab, synced, tmp_path):
    """ansible-galaxy collection build, install into an empty path, and a playbook of one task
    sanless.xen.xen_info against the lab's dom0s, from a folder with no ansible.cfg."""
    top, _project, _collections, inventory = synced
    env = awxjob.base_env(os.path.join(top, "home"))
    out = tmp_path / "out"
    out.mkdir()
    awxjob.run([os.path.join(awxjob.BIN, "ansible-galaxy"), "collection", "build", "--output-path", out,
                str(lab.repo)], str(tmp_path), env)
    tarball = [str(out / f) for f in os.listdir(str(out)) if f.endswith(".tar.gz")]
    assert len(tarball) == 1
    dest = tmp_path / "installed"
    env = dict(env, ANSIBLE_COLLECTIONS_PATH=str(dest), ANSIBLE_HOST_KEY_CHECKING="False")
    awxjob.run([os.path.join(awxjob.BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", dest,
                tarball[0]], str(tmp_path), env)
    hosts = tmp_path / "hosts"
    hosts.write_text(awxjob.inventory_script(inventory))
    hosts.chmod(0o700)
    playbook = tmp_path / "info.yml"
    playbook.write_text(
        "- name: xen_info by FQCN from the installed collection\n"
        "  hosts: dom0\n  gather_facts: false\n  tasks:\n"
        "    - name: Read the dom0\n      sanless.xen.xen_info:\n      register: info\n"
        "    - name: Show it\n      ansible.builtin.debug:\n"
        "        msg: \"XENINFO {{ inventory_hostname }} {{ info.domains | map(attribute='name') | list | to_json }}\"\n")
    proc = awxjob.run([os.path.join(awxjob.BIN, "ansible-playbook"), "-i", hosts, playbook], str(tmp_path), env)
    for host in lab.hosts:
        assert "XENINFO %s " % host in proc.stdout, proc.stdout[-3000:]
    assert "Domain-0" in proc.stdout
