"""The dom0 role in the lab (issue 4): it applies, a second run changes nothing, the dom0s
trust each other for xl migrate, and a missing VG stops it naming the hosts."""
import re

import pytest

RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(stdout):
    """{host: {"ok", "changed", "unreachable", "failed"}} from the PLAY RECAP."""
    tail = stdout[stdout.rindex("PLAY RECAP"):]
    return {m.group(1): dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:])))
            for m in RECAP_RE.finditer(tail)}


@pytest.fixture(scope="module")
def applied(lab):
    """The role applied twice: the two PLAY RECAPs."""
    first = lab.playbook("playbooks/dom0.yml")
    second = lab.playbook("playbooks/dom0.yml")
    return recap(first.stdout), recap(second.stdout), second.stdout


def test_role_applies_on_every_dom0(lab, applied):
    first, _, _ = applied
    assert sorted(first) == sorted(lab.hosts)
    for host, counts in first.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)


def test_second_run_changes_nothing(lab, applied):
    _, second, stdout = applied
    assert sorted(second) == sorted(lab.hosts)
    for host, counts in second.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, (host, counts, stdout[-4000:])


@pytest.mark.long
def test_check_mode_after_apply_changes_nothing(lab, applied):
    proc = lab.playbook("playbooks/dom0.yml", "--check")
    for host, counts in recap(proc.stdout).items():
        assert counts["changed"] == 0 and counts["failed"] == 0, (host, counts)


def test_dom0_state(lab, applied):
    for host in lab.hosts:
        assert lab.run(host, ["stat", "-c", "%a %U", "/var/lib/sanless-xen"]).stdout.split() == ["750", "root"]
        conf = lab.run(host, ["cat", "/etc/modprobe.d/sanless-xen-drbd.conf"]).stdout
        assert "options drbd usermode_helper=/bin/true disable_sendpage=Y" in conf
        assert lab.run(host, ["cat", "/sys/module/drbd/parameters/usermode_helper"]).stdout.strip() == "/bin/true"
        # applied to the loaded module too: no guest page is ever handed to TCP by DRBD
        assert lab.run(host, ["cat", "/sys/module/drbd/parameters/disable_sendpage"]).stdout.strip() == "Y"
        assert "drbd" in lab.run(host, ["cat", "/etc/modules-load.d/sanless-xen-drbd.conf"]).stdout.split()
        xl_conf = lab.run(host, ["cat", "/etc/xen/xl.conf"]).stdout
        # the lab's Xen command line fixes dom0_mem
        assert re.findall(r"^autoballoon\s*=.*$", xl_conf, re.M) == ['autoballoon="off"']


def test_root_ssh_trust_with_checked_host_keys(lab, applied):
    """Every dom0 reaches every other as root by name and address, with the host key checked
    against known_hosts (no accept-new), as xl migrate does."""
    for src in lab.hosts:
        for dst in lab.hosts:
            if src == dst:
                continue
            for name in (dst, lab.ip(dst)):
                out = lab.run(src, ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                                    "-o", "UserKnownHostsFile=/root/.ssh/known_hosts", name, "hostname"]).stdout
                assert out.strip() == dst, (src, name)
            dst_key = lab.run(dst, ["cat", "/root/.ssh/id_ed25519.pub"]).stdout.split()[1]
            assert dst_key in lab.run(src, ["cat", "/root/.ssh/authorized_keys"]).stdout


def test_missing_vg_stops_the_role_naming_the_hosts(lab, applied):
    proc = lab.playbook("playbooks/dom0.yml", "-e", "dom0_vg=rpnovg", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "Volume group rpnovg is missing on %s" % ", ".join(lab.hosts) in " ".join(text.split())
    counts = recap(proc.stdout)
    for host in lab.hosts:
        assert counts[host]["failed"] == 1 and counts[host]["changed"] == 0


def test_bad_vm_name_is_refused_by_the_filter(lab):
    """The VM name check the roles use fails with the reason (run on the controller)."""
    proc = lab.ansible("localhost", "ansible.builtin.debug",
                       "msg={{ 'web 01; rm -rf /' | sanless.xen.valid_vm_name }}", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "refused: it contains whitespace; it contains a path separator; it contains shell metacharacters ;" in text
