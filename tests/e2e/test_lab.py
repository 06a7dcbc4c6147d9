"""The lab itself (issue 3): hosts ready, Ansible reaches them, a test domU heartbeats, faults work."""
import re
import time

import pytest

import sanless_lab
from labhelpers import wait_for

GUEST_CFG = """name = "{name}"
type = "pv"
kernel = "/usr/local/share/sanless/vmlinuz"
ramdisk = "/usr/local/share/sanless/guest-busybox.img"
extra = "console=hvc0 quiet sanless.pattern_mib=16"
memory = 96
vcpus = 1
disk = [ 'phy:/dev/xenvg/{name}-disk,xvda,w' ]
"""


def test_hosts_pass_self_check(lab):
    assert len(lab.hosts) >= 2
    for host in lab.hosts:
        info = lab.run(host, ["xl", "info"]).stdout
        caps = re.search(r"^virt_caps\s*:\s*(.*)$", info, re.M).group(1).split()
        assert "shadow" in caps, "%s: Xen without shadow paging, PV guests cannot migrate" % host
        assert re.search(r"^xen_version\s*:\s*4\.17\.", info, re.M)
        vgs = lab.run(host, ["vgs", "--noheadings", "-o", "vg_name"]).stdout.split()
        assert "xenvg" in vgs
        assert lab.run(host, ["hostname"]).stdout.strip() == host
        fpu = lab.run(host, ["/usr/local/sbin/sanless-fpu-check", "2"]).stdout
        assert "mismatches: 0" in fpu


def test_hosts_have_distinct_identities(lab):
    initiators = {lab.run(h, ["cat", "/etc/iscsi/initiatorname.iscsi"]).stdout.strip() for h in lab.hosts}
    machine_ids = {lab.run(h, ["cat", "/etc/machine-id"]).stdout.strip() for h in lab.hosts}
    host_keys = {lab.run(h, ["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[1]
                 for h in lab.hosts}
    assert len(initiators) == len(machine_ids) == len(host_keys) == len(lab.hosts)


def test_ansible_ping_every_dom0(lab):
    out = lab.ansible("dom0", "ansible.builtin.ping").stdout
    for host in lab.hosts:
        assert re.search(r"^%s \| SUCCESS" % host, out, re.M), out


def test_root_ssh_between_dom0s(lab):
    first, second = lab.hosts[:2]
    out = lab.run(first, ["ssh", second, "hostname"]).stdout.strip()
    assert out == second


@pytest.mark.long
def test_busybox_domu_writes_pattern_and_heartbeats(lab):
    host = lab.hosts[0]
    name = "labprobe"
    lab.run(host, ["lvcreate", "-q", "-y", "-L", "64M", "-n", name + "-disk", "xenvg"])
    try:
        sanless_lab.ssh(host, ["tee", "/root/%s.cfg" % name], input_text=GUEST_CFG.format(name=name))
        t0 = time.time()
        lab.run(host, ["xl", "create", "-q", "/root/%s.cfg" % name])
        text = lab.wait_console(host, name, lambda t: len(lab.heartbeats(t)) >= 4, timeout=180)
        print("test domU up and 4 heartbeats after %.0f s" % (time.time() - t0))
        sums = lab.checksums(text)
        assert sums, "guest reported no pattern checksum"
        beats = lab.heartbeats(text)
        assert [n for n, _ in beats] == list(range(1, len(beats) + 1))
        # the guest's checksum is the checksum of the LV's pattern region, read from dom0
        lab.run(host, ["xl", "pause", name])
        try:
            assert lab.lv_sha256(host, "/dev/xenvg/%s-disk" % name, 16) == sums[0]
        finally:
            lab.run(host, ["xl", "unpause", name])
    finally:
        lab.run(host, ["xl", "destroy", name], check=False)
        lab.run(host, ["lvremove", "-q", "-y", "xenvg/%s-disk" % name], check=False)


@pytest.mark.long  # the harness's fault tools, which the fault matrix (make test-faults) uses
def test_a_session_through_the_shared_ssh_connection_leaves_the_callers_stdin_blocking(lab):
    """CI, stop 34: while a harness login ran through the shared ssh connection, the master held the caller's
    stdin (shared with pytest) in O_NONBLOCK, and an ansible-playbook a test started meanwhile refused to run
    ("Non-blocking file handles detected: <stdin>"). The caller's stdin here is a pipe, as under CI."""
    import os
    import threading
    host = lab.hosts[0]
    lab.run(host, ["true"])     # the shared connection is up
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    marker = "/run/sanless-stdin-check"
    lab.run(host, ["rm", "-f", marker])
    seen = []
    try:
        # the remote command leaves a marker once its session is up; stdin is read all through the session
        login = threading.Thread(target=lab.sh, args=(host, "touch %s; sleep 3" % marker))
        login.start()
        while login.is_alive():
            seen.append(os.get_blocking(0))
            time.sleep(0.05)
        login.join()
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    assert lab.run(host, ["test", "-e", marker], check=False).returncode == 0, "the session never ran"
    lab.run(host, ["rm", "-f", marker])
    assert seen and all(seen), "a login through the shared connection set the caller's stdin non-blocking"


def test_link_cut_and_restore(lab):
    first, second = lab.hosts[:2]
    assert sanless_lab.can_reach(second, lab.ip(first))
    sanless_lab.cut_link(first)
    try:
        assert sanless_lab.link_state(first) == "cut"
        assert not sanless_lab.can_reach(second, lab.ip(first))
    finally:
        sanless_lab.restore_link(first)
    deadline = time.time() + 30
    while not sanless_lab.can_reach(second, lab.ip(first)):
        assert time.time() < deadline, "link restored but %s still unreachable" % first
        time.sleep(1)



def test_a_nic_reset_by_the_watchdog_keeps_the_dom0_in_the_lab(lab):
    """The lab's NIC watchdog (lab/nic-watchdog.sh) runs on every dom0, and its reset of the virtio NIC (what it
    does on a kernel TX timeout) brings the dom0 back: eth0 in xenbr0 again, the other dom0 reaches it."""
    first, second = lab.hosts[:2]
    assert lab.run(first, ["pgrep", "-f", "^sh " + sanless_lab.NIC_WATCHDOG_ON_HOST], check=False).returncode == 0, \
        "no NIC watchdog on %s" % first
    before = sanless_lab.nic_resets(first)
    sanless_lab.request_nic_reset(first)
    wait_for(lambda: sanless_lab.nic_resets(first) > before, 60, "%s: NIC reset" % first)
    assert "master xenbr0" in lab.run(first, ["ip", "-o", "link", "show", "eth0"]).stdout
    wait_for(lambda: sanless_lab.can_reach(second, lab.ip(first)), 30, "%s reaches %s" % (second, first))
    assert lab.run(first, ["ssh", second, "hostname"]).stdout.strip() == second


DEBIAN_CFG = """name = "{name}"
type = "pv"
kernel = "/usr/local/share/sanless/vmlinuz"
ramdisk = "/usr/local/share/sanless/domu-initrd.img"
extra = "root=/dev/xvda rw console=hvc0 quiet net.ifnames=0 sanless.host={name} sanless.addr={ip}/24"
memory = 256
vcpus = 1
disk = [ 'phy:/dev/xenvg/{name}-disk,xvda,w' ]
vif = [ 'bridge=xenbr0,mac=00:16:3e:4c:01:{mac:02x}' ]
"""


@pytest.mark.long
def test_debian_domu_answers_ssh_with_python_and_mdadm(lab):
    """The Debian guest Ansible logs into (guest-side work such as md RAID1): its root image
    is each host's read-only /dev/vdc, copied into an LV."""
    host = lab.hosts[0]
    name, ip = "labdeb", "10.77.0.101"
    lab.run(host, ["lvcreate", "-q", "-y", "-L", "1G", "-n", name + "-disk", "xenvg"])
    try:
        lab.run(host, ["dd", "if=/dev/vdc", "of=/dev/xenvg/%s-disk" % name, "bs=4M", "conv=fsync"])
        sanless_lab.ssh(host, ["tee", "/root/%s.cfg" % name], input_text=DEBIAN_CFG.format(name=name, ip=ip, mac=1))
        lab.run(host, ["xl", "create", "-q", "/root/%s.cfg" % name])
        guest = {"name": name, "ip": ip}
        deadline = time.time() + 300
        while sanless_lab.run(sanless_lab.ssh_argv(guest, ["true"]), check=False, timeout=30).returncode != 0:
            assert time.time() < deadline, "Debian domU not reachable by ssh:\n" + lab.console(host, name)[-2000:]
            time.sleep(3)
        out = sanless_lab.run(sanless_lab.ssh_argv(guest, ["sh", "-c", "hostname; python3 -V; mdadm --version 2>&1"])).stdout
        assert out.splitlines()[0] == name
        assert "Python 3." in out and "mdadm - v4" in out
    finally:
        lab.run(host, ["xl", "destroy", name], check=False)
        lab.run(host, ["lvremove", "-q", "-y", "xenvg/%s-disk" % name], check=False)


@pytest.mark.long  # the harness's fault tools, which the fault matrix (make test-faults) uses
def test_pause_and_resume_a_host(lab):
    """A paused host (QEMU stopped) stops answering and comes back on resume."""
    first, last = lab.hosts[0], lab.hosts[-1]
    sanless_lab.pause_host(last)
    try:
        assert not sanless_lab.can_reach(first, lab.ip(last), timeout=2)
    finally:
        sanless_lab.resume_host(last)
    deadline = time.time() + 60
    while not sanless_lab.can_reach(first, lab.ip(last)):
        assert time.time() < deadline, "%s did not come back after resume" % last
        time.sleep(1)


def test_xen_info_reads_a_dom0_in_one_call(lab):
    """Issue 2: one xen_info call returns the host, Domain-0, the VG and the DRBD minors, unchanged."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    host = lab.hosts[0]
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "-i", "inventory/lab.yml", host,
                           "-m", "sanless.xen.xen_info", "-o"], cwd=lab.repo, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split(" => ", 1)[1])
    assert result["changed"] is False
    assert result["host"]["xen_version"].startswith("4.17.") and "shadow" in result["host"]["virt_caps"]
    assert result["host"]["hostname"] == host
    dom0 = [d for d in result["domains"] if d["is_dom0"]]
    assert [d["name"] for d in dom0] == ["Domain-0"] and dom0[0]["memory_mib"] > 300
    vg = [v for v in result["vgs"] if v["name"] == "xenvg"][0]
    assert 0 < vg["free_bytes"] <= vg["size_bytes"]
    assert result["drbd"]["version"].startswith("8.4.")
