"""The sanless.xen lab: real Xen 4.17 dom0s (Debian 12) booted under QEMU TCG.

Everything runs inside one network namespace holding a bridge and one tap per host, with no
route out; the controller reaches the hosts at 10.77.0.1 through ``ip netns exec``. Images and
runtime files live in ~/.cache/sanless-lab (SANLESS_LAB_CACHE), never in the repo. Every
process the lab starts is recorded by PID in run/lab.json and stopped by that PID.
"""

import gzip
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGE_RECIPE_DIRS = (HERE / "image", HERE / "guest")
CACHE = Path(os.environ.get("SANLESS_LAB_CACHE", Path.home() / ".cache" / "sanless-lab"))
RUN = CACHE / "run"
STATE_FILE = RUN / "lab.json"
NETNS = os.environ.get("SANLESS_LAB_NETNS", "sanless-lab")
BRIDGE = "br0"
SUBNET = "10.77.0"
CONTROLLER_IP = SUBNET + ".1"
HOST_NAMES = ("hosta", "hostb", "hostc", "hostd")
HOST_MEM_MIB = int(os.environ.get("SANLESS_LAB_HOST_MEM", "1024"))
# 512, not 384: a 384 MiB dom0 OOM-killed domain builds while the watcher's restart jobs waited beside them (lab/NOTES.md)
DOM0_MEM_MIB = int(os.environ.get("SANLESS_LAB_DOM0_MEM", "512"))
DATA_DISK_GIB = int(os.environ.get("SANLESS_LAB_DATA_GIB", "8"))
ROOT_IMAGE_GIB = 4
DOMU_IMAGE_MIB = 1024
# Each of these was needed (see shared lab notes): no SMAP/SMEP for the PV dom0, no
# AVX/XSAVEOPT and eager FPU in Xen so SIMD state is not corrupted under TCG. No RDTSCP:
# Xen's SVM needs NRIP (which TCG lacks) to emulate it for PVH/HVM guests.
QEMU_CPU = "max,-smap,-smep,-xsaveopt,-avx,-avx2,-vaes,-vpclmulqdq,-fma,-f16c,-rdtscp"
XEN_ARGS = ("console=com1 com1=115200,8n1 dom0_mem={m}M,max:{m}M dom0_max_vcpus=2 loglvl=all "
            "guest_loglvl=all noreboot spec-ctrl=eager-fpu")
DOM0_ARGS = "root=/dev/vda rw console=hvc0 earlyprintk=xen net.ifnames=0 sanless.host={name} sanless.addr={ip}/24"
SSH_KEY = CACHE / "ssh" / "id_ed25519"
# ConnectTimeout also bounds sshd's banner: a TCG dom0 busy with a guest's boot once took more than 5 s to send it
# (stop 32's make test: "Connection timed out during banner exchange" while reading a console log).
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=20", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=6"]
# The harness's logins to a dom0 share one connection per host (ssh ControlMaster): an ssh handshake costs a TCG
# dom0 about 2 s, a command over the shared connection 0.3 s, and the tests log in thousands of times. Guests get no
# shared connection (they come and go). The master ends SSH_PERSIST_S after its last command, and the harness closes
# it by pid before a host loses power, link or CPU, and at lab down (close_ssh_master).
SSH_PERSIST_S = 60


class LabError(RuntimeError):
    pass


def log(msg):
    print("[lab] %s" % msg, file=sys.stderr, flush=True)


def run(argv, check=True, capture=True, input_text=None, timeout=None):
    """Run a local command (argv list, never a shell).

    Its stdin is its own /dev/null unless it is fed input: an ssh session through a ControlMaster hands its stdin
    to the master, which sets O_NONBLOCK on it while the session lasts, and an inherited stdin shares that flag
    with the caller (pytest) and with an ansible-playbook a test starts meanwhile, which then refuses to run
    ("Non-blocking file handles detected: <stdin>"; CI, stop 34)."""
    stdin = None if input_text is not None else subprocess.DEVNULL
    proc = subprocess.run(argv, input=input_text, stdin=stdin, capture_output=capture, text=True, timeout=timeout,
                          env=dict(os.environ, LANG="C", LC_ALL="C"))
    if check and proc.returncode != 0:
        raise LabError("%s failed (rc=%s): %s" % (shlex.join(argv), proc.returncode,
                                                 (proc.stderr or proc.stdout or "").strip()[-2000:]))
    return proc


def host_ip(index):
    return "%s.%d" % (SUBNET, 10 + index)


# ---------------------------------------------------------------------------------------
# Image build
# ---------------------------------------------------------------------------------------
def _hash_files(paths):
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(HERE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def recipe_hash():
    files = [p for d in IMAGE_RECIPE_DIRS for p in d.rglob("*") if p.is_file()]
    return _hash_files(files)


def image_dir():
    return CACHE / ("image-" + recipe_hash())


def ensure_ssh_key():
    if not SSH_KEY.exists():
        SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sanless-lab", "-f", str(SSH_KEY)])
    return SSH_KEY


def _debootstrap_tarball(kind):
    packages = HERE / "image" / ("packages-%s.txt" % kind)
    script = HERE / "image" / "debootstrap.sh"
    tarball = CACHE / ("rootfs-%s-%s.tar.gz" % (kind, _hash_files([packages, script])))
    if not tarball.exists():
        log("debootstrap %s (downloads Debian packages, ~2-3 min)" % kind)
        run(["bash", str(script), str(packages), str(tarball)], capture=False)
    return tarball


def _make_ext4_qcow2(tree, out, size_mib, label):
    raw = out.with_suffix(".raw")
    run(["truncate", "-s", "%dM" % size_mib, str(raw)])
    run(["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(tree), str(raw)])
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(out)])
    raw.unlink()


def build_image(force=False):
    """Build (or reuse) the image for the current recipe. Returns its folder."""
    target = image_dir()
    if (target / "READY").exists() and not force:
        return target
    ensure_ssh_key()
    dom0_tar = _debootstrap_tarball("dom0")
    domu_tar = _debootstrap_tarball("domu")
    staging = Path(tempfile.mkdtemp(prefix="image-", dir=CACHE))
    try:
        for kind, tar in (("dom0", dom0_tar), ("domu", domu_tar)):
            tree = staging / kind
            tree.mkdir()
            log("unpacking %s rootfs" % kind)
            run(["tar", "-C", str(tree), "--numeric-owner", "-xzf", str(tar)])
            log("configuring %s rootfs" % kind)
            run(["bash", str(HERE / "image" / ("configure-%s.sh" % kind)), str(tree), str(SSH_KEY.parent)],
                capture=False)
        dom0 = staging / "dom0"
        kver = sorted(os.listdir(dom0 / "lib" / "modules"))[-1]
        xen_gz = sorted((dom0 / "boot").glob("xen-4.*-amd64.gz"))
        if not xen_gz:
            raise LabError("no Xen hypervisor in the dom0 tree")
        with open(staging / "xen", "wb") as out:
            out.write(gzip.decompress(xen_gz[-1].read_bytes()))
        shutil.copy(dom0 / "boot" / ("vmlinuz-" + kver), staging / "vmlinuz")
        shutil.copy(dom0 / "boot" / ("initrd.img-" + kver), staging / "initrd.img")
        versions = _package_versions(dom0, ("xen-hypervisor-4.17-amd64", "xen-utils-4.17", "drbd-utils", "lvm2",
                                             "linux-image-" + kver))
        log("building base.qcow2 (dom0) and debian-domu.qcow2")
        _make_ext4_qcow2(dom0, staging / "base.qcow2", ROOT_IMAGE_GIB * 1024, "sanless-dom0")
        _make_ext4_qcow2(staging / "domu", staging / "debian-domu.qcow2", DOMU_IMAGE_MIB, "sanless-domu")
        shutil.rmtree(dom0)
        shutil.rmtree(staging / "domu")
        (staging / "versions.json").write_text(json.dumps(versions, indent=1, sort_keys=True))
        (staging / "READY").write_text(recipe_hash() + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    # older images of other recipes are dead weight (each is ~1 GB)
    for old in CACHE.glob("image-*"):
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    log("image ready: %s %s" % (target, json.dumps(versions)))
    return target


def _package_versions(tree, names):
    status = (tree / "var" / "lib" / "dpkg" / "status").read_text()
    versions = {}
    for block in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") in names:
            versions[fields["Package"]] = fields.get("Version")
    return versions


# ---------------------------------------------------------------------------------------
# Network namespace
# ---------------------------------------------------------------------------------------
def netns_exists():
    out = run(["ip", "netns", "list"]).stdout
    return any(line.split()[0] == NETNS for line in out.splitlines() if line.strip())


def ensure_netns():
    if not netns_exists():
        run(["ip", "netns", "add", NETNS])
    run(["ip", "-n", NETNS, "link", "set", "lo", "up"])
    if run(["ip", "-n", NETNS, "link", "show", BRIDGE], check=False).returncode != 0:
        run(["ip", "-n", NETNS, "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "-n", NETNS, "addr", "add", CONTROLLER_IP + "/24", "dev", BRIDGE])
    run(["ip", "-n", NETNS, "link", "set", BRIDGE, "up"])


def tap_name(index):
    return "sltap%d" % index


# ---------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------
def load_state():
    if STATE_FILE.exists():
        return json.loads(STATE_FILE.read_text())
    return {"hosts": {}}


def save_state(state):
    RUN.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.rename(STATE_FILE)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone_or_kill(pid, grace_s=5.0):
    """Wait up to grace_s for pid to end (it was asked to), then SIGKILL it."""
    deadline = time.time() + grace_s
    while pid_alive(pid):
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def hosts(state=None):
    state = state or load_state()
    return [state["hosts"][name] for name in sorted(state["hosts"])]


def get_host(name, state=None):
    state = state or load_state()
    if name in state["hosts"]:
        return state["hosts"][name]
    for host in state["hosts"].values():
        if host["ip"] == name or str(host["index"]) == str(name):
            return host
    raise LabError("no lab host %r (lab hosts: %s)" % (name, ", ".join(sorted(state["hosts"])) or "none"))


# ---------------------------------------------------------------------------------------
# Hosts
# ---------------------------------------------------------------------------------------
def boot_host(index, image, keep_disks=False, host_mem_mib=HOST_MEM_MIB, dom0_mem_mib=DOM0_MEM_MIB):
    """Boot host number index on a fresh overlay and data disk, or (keep_disks) on the ones it
    had: a power-on after power_off, with whatever QEMU had written when the plug was pulled."""
    name = HOST_NAMES[index - 1]
    ip = host_ip(index)
    RUN.mkdir(parents=True, exist_ok=True)
    overlay = RUN / ("%s.qcow2" % name)
    data = RUN / ("%s-data.qcow2" % name)
    serial = RUN / ("%s.serial.log" % name)
    monitor = RUN / ("%s.monitor" % name)
    pidfile = RUN / ("%s.pid" % name)
    for path in (monitor, pidfile) if keep_disks else (overlay, data, serial, monitor, pidfile):
        if path.exists():
            path.unlink()
    if not keep_disks:
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image / "base.qcow2"), str(overlay)])
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(data), "%dG" % DATA_DISK_GIB])
    elif not (overlay.exists() and data.exists()):
        raise LabError("%s: no disks to power on with (was the lab torn down?)" % name)
    tap = tap_name(index)
    if run(["ip", "-n", NETNS, "link", "show", tap], check=False).returncode != 0:
        run(["ip", "-n", NETNS, "tuntap", "add", tap, "mode", "tap"])
    run(["ip", "-n", NETNS, "link", "set", tap, "master", BRIDGE, "up"])
    argv = [
        "ip", "netns", "exec", NETNS, "qemu-system-x86_64", "-name", name,
        "-accel", "tcg,thread=single,tb-size=256", "-cpu", QEMU_CPU, "-smp", "2", "-m", str(host_mem_mib),
        "-display", "none", "-no-reboot", "-daemonize", "-pidfile", str(pidfile),
        "-monitor", "unix:%s,server,nowait" % monitor, "-serial", "file:%s" % serial,
        "-kernel", str(image / "xen"), "-append", XEN_ARGS.format(m=dom0_mem_mib),
        "-initrd", "%s %s,%s" % (image / "vmlinuz", DOM0_ARGS.format(name=name, ip=ip), image / "initrd.img"),
        "-drive", "file=%s,if=virtio,format=qcow2,cache=unsafe" % overlay,
        "-drive", "file=%s,if=virtio,format=qcow2,cache=unsafe" % data,
        "-drive", "file=%s,if=virtio,format=qcow2,readonly=on" % (image / "debian-domu.qcow2"),
        "-netdev", "tap,id=net0,ifname=%s,script=no,downscript=no" % tap,
        "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:4c:00:%02x" % index,
    ]
    run(argv)
    pid = int(pidfile.read_text().strip())
    return {"name": name, "index": index, "ip": ip, "pid": pid, "tap": tap, "serial": str(serial),
            "monitor": str(monitor), "overlay": str(overlay), "data": str(data), "booted_at": time.time(),
            "host_mem_mib": host_mem_mib, "dom0_mem_mib": dom0_mem_mib}


def ssh_argv(host, command_argv, tty=False):
    """argv that runs command_argv on the host (quoted for the remote shell, no local shell)."""
    argv = ["ip", "netns", "exec", NETNS, "ssh", "-i", str(SSH_KEY)] + SSH_OPTS
    if "index" in host:     # a lab dom0 (guests have no index)
        argv += ["-o", "ControlMaster=auto", "-o", "ControlPath=" + control_path(host),
                 "-o", "ControlPersist=%d" % SSH_PERSIST_S]
    if tty:
        argv.append("-t")
    argv.append("root@" + host["ip"])
    if command_argv:
        argv.append(shlex.join(command_argv))
    return argv


def control_path(host):
    return str(RUN / ("ssh-%s" % host["name"]))


def end_ssh_master(path, ip):
    """End the ssh ControlMaster behind the socket path, by pid (ssh -O check names it), and remove the socket;
    the master's pid, or None when there was none."""
    if not os.path.exists(path):
        return None
    ctl = ["-o", "ControlPath=" + path, "root@" + ip]
    pid = None
    try:
        found = re.search(r"pid=(\d+)", run(["ssh", "-O", "check"] + ctl, check=False, timeout=20).stderr)
        pid = int(found.group(1)) if found else None
        run(["ssh", "-O", "exit"] + ctl, check=False, timeout=20)
    except subprocess.TimeoutExpired:
        pass
    if pid is not None:
        wait_gone_or_kill(pid)
    try:
        os.unlink(path)
    except FileNotFoundError:   # the master removed it as it exited
        pass
    return pid


def close_ssh_master(host):
    """End the harness's shared ssh connection to host: a master whose peer lost power, link or CPU would hold
    every later login until its keepalives give up (60 s)."""
    return end_ssh_master(control_path(host), host["ip"])


def close_ssh_masters():
    """End the harness's shared connections to every lab host (the test session's end, lab down)."""
    return [pid for pid in (close_ssh_master(host) for host in hosts()) if pid]


def ssh(name, command_argv, check=True, timeout=600, input_text=None):
    host = get_host(name)
    return run(ssh_argv(host, command_argv), check=check, timeout=timeout, input_text=input_text)


def sh(name, script, check=True, timeout=600):
    """Run a shell script on a lab host (test and harness code only; the collection uses argv)."""
    return ssh(name, ["sh", "-c", script], check=check, timeout=timeout)


def wait_ssh(host_list, deadline_s=600):
    start = time.time()
    pending = {h["name"]: h for h in host_list}
    ready_after = {}
    while pending:
        for name, host in list(pending.items()):
            if not pid_alive(host["pid"]):
                raise LabError("%s: QEMU (pid %d) exited during boot; serial log tail:\n%s"
                               % (name, host["pid"], tail(host["serial"], 40)))
            probe = run(ssh_argv(host, ["true"]), check=False, timeout=30)
            if probe.returncode == 0:
                ready_after[name] = time.time() - host["booted_at"]
                log("%s ssh-ready after %.0f s" % (name, ready_after[name]))
                del pending[name]
        if pending:
            if time.time() - start > deadline_s:
                raise LabError("hosts not ssh-ready after %d s: %s" % (deadline_s, ", ".join(pending)))
            time.sleep(2)
    return ready_after


SELF_CHECK = r"""
set -u
fail=0
xl info > /tmp/xl-info.txt 2>&1 || { echo "FAIL xl info"; cat /tmp/xl-info.txt; fail=1; }
echo "xen_version $(awk -F': ' '/^xen_version/ {print $2}' /tmp/xl-info.txt)"
caps=$(awk -F': ' '/^virt_caps/ {print $2}' /tmp/xl-info.txt)
echo "virt_caps $caps"
case " $caps " in *" shadow "*) ;; *) echo "FAIL no shadow paging in virt_caps: PV live migration impossible (Xen built without CONFIG_SHADOW_PAGING)"; fail=1;; esac
echo "free_memory $(awk -F': ' '/^free_memory/ {print $2}' /tmp/xl-info.txt)"
vgs --noheadings --units b --nosuffix -o vg_name,vg_size,vg_free xenvg || { echo "FAIL VG xenvg missing"; fail=1; }
modprobe drbd && echo "drbd $(head -n1 /proc/drbd)" || { echo "FAIL drbd module"; fail=1; }
/usr/local/sbin/sanless-fpu-check 3 || fail=1
echo "self-check rc=$fail"
exit $fail
"""


NIC_WATCHDOG = HERE / "nic-watchdog.sh"
NIC_WATCHDOG_ON_HOST = "/run/sanless-lab-nic-watchdog.sh"
NIC_RESET_REQUEST = "/run/sanless-lab-nic-reset"      # the REQUEST of lab/nic-watchdog.sh
NIC_RESET_DONE = "nic-watchdog: eth0 back"             # what it writes to the kernel log after a reset


def start_nic_watchdog(name):
    """Start lab/nic-watchdog.sh on the dom0 (detached, until it powers off): it resets the dom0's virtio NIC when
    the kernel counts a TX timeout (a NIC that stopped for good under TCG in CI, stop 38)."""
    script = "cat > {0} && {{ setsid sh {0} </dev/null >/dev/null 2>&1 & }}".format(NIC_WATCHDOG_ON_HOST)
    ssh(name, ["sh", "-c", script], timeout=60, input_text=NIC_WATCHDOG.read_text())


def nic_resets(name):
    """How many NIC resets the dom0's kernel log shows."""
    out = ssh(name, ["dmesg"], timeout=60).stdout
    return out.count(NIC_RESET_DONE)


def request_nic_reset(name):
    """Ask the dom0's NIC watchdog for a reset (what it does on a TX timeout); it acts within 5 s."""
    ssh(name, ["touch", NIC_RESET_REQUEST], timeout=60)


def self_check(name):
    proc = sh(name, SELF_CHECK, check=False, timeout=300)
    report = proc.stdout.strip()
    if proc.returncode != 0:
        raise LabError("%s self-check failed:\n%s\n%s" % (name, report, proc.stderr.strip()))
    return report


def up(count=2, build=True):
    if count < 1 or count > len(HOST_NAMES):
        raise LabError("the lab has 1..%d hosts" % len(HOST_NAMES))
    state = load_state()
    live = [h for h in hosts(state) if pid_alive(h["pid"])]
    if live:
        raise LabError("lab already running (%s): make lab-down first" % ", ".join(h["name"] for h in live))
    t0 = time.time()
    image = build_image() if build else image_dir()
    ensure_ssh_key()
    ensure_netns()
    state = {"hosts": {}, "image": str(image), "netns": NETNS, "started_at": time.time()}
    try:
        for index in range(1, count + 1):
            host = boot_host(index, image)
            state["hosts"][host["name"]] = host
            save_state(state)
            log("%s booting: pid %d, %s, serial %s" % (host["name"], host["pid"], host["ip"], host["serial"]))
        wait_ssh(hosts(state))
        for host in hosts(state):
            start_nic_watchdog(host["name"])
            report = self_check(host["name"])
            host["self_check"] = report
            log("%s self-check ok: %s" % (host["name"], " | ".join(report.splitlines())))
        save_state(state)
    except BaseException:
        log("lab-up failed; stopping what it started")
        down()
        raise
    log("lab ready: %d host(s) in %.0f s" % (count, time.time() - t0))
    return state


def down():
    state = load_state()
    close_ssh_masters()
    stopped = []
    for host in hosts(state):
        pid = host["pid"]
        if pid_alive(pid) and _is_our_qemu(pid, host):
            os.kill(pid, signal.SIGTERM)
            stopped.append((host["name"], pid))
    for name, pid in stopped:
        wait_gone_or_kill(pid)
        log("stopped %s (pid %d)" % (name, pid))
    if netns_exists():
        run(["ip", "netns", "del", NETNS], check=False)
    for host in hosts(state):
        for key in ("overlay", "data", "monitor"):
            path = Path(host[key])
            if path.exists():
                path.unlink()
    if STATE_FILE.exists():
        STATE_FILE.unlink()


def _is_our_qemu(pid, host):
    try:
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
    except OSError:
        return False
    return b"qemu-system-x86_64" in cmdline[0] and host["overlay"].encode() in b" ".join(cmdline)


def status():
    state = load_state()
    rows = []
    for host in hosts(state):
        alive = pid_alive(host["pid"])
        reach = False
        if alive:
            reach = run(ssh_argv(host, ["true"]), check=False, timeout=20).returncode == 0
        rows.append({"name": host["name"], "ip": host["ip"], "pid": host["pid"], "qemu": alive,
                     "ssh": reach, "link": link_state(host["name"]) if alive else "-"})
    return rows


def tail(path, lines=30):
    try:
        with open(path, "rb") as handle:
            return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------
def cut_link(name):
    """Detach the host's tap from the lab bridge: it can reach nobody, nobody reaches it."""
    close_ssh_master(get_host(name))
    run(["ip", "-n", NETNS, "link", "set", get_host(name)["tap"], "nomaster"])


def restore_link(name):
    run(["ip", "-n", NETNS, "link", "set", get_host(name)["tap"], "master", BRIDGE, "up"])


def set_link_mtu(mtu):
    """The lab link's MTU end to end, until the next boot: the namespace's bridge and taps, and on each dom0 its NIC
    and xenbr0 (the storage link of the lab): a jumbo-frame link for AoE, which carries a request's data in
    frames of the link's MTU (README, disk exports)."""
    run(["ip", "-n", NETNS, "link", "set", BRIDGE, "mtu", str(mtu)])
    for host in hosts():
        run(["ip", "-n", NETNS, "link", "set", host["tap"], "mtu", str(mtu)])
    for host in hosts():
        for name in ("eth0", "xenbr0"):     # xenbr0 explicitly: a bridge keeps an MTU set by hand
            ssh(host["name"], ["ip", "link", "set", "dev", name, "mtu", str(mtu)])


def link_state(name):
    out = run(["ip", "-n", NETNS, "-o", "link", "show", get_host(name)["tap"]], check=False).stdout
    return "up" if ("master " + BRIDGE) in out else "cut"


def monitor_command(name, command):
    host = get_host(name)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(host["monitor"])
        time.sleep(0.2)
        sock.recv(65536)
        sock.sendall((command + "\n").encode())
        time.sleep(0.3)
        try:
            return sock.recv(65536).decode(errors="replace")
        except (socket.timeout, ConnectionResetError):
            return ""


def drop_ssh_masters(host):
    """Close ansible's ssh ControlPersist master for this host: a master whose peer lost power
    answers later logins with "mux_client_request_session: read from master failed: Broken
    pipe" instead of reconnecting. ansible-core names it sha1("<host>-<port>-<user>")[:10]
    (port None when the inventory sets none) under ~/.ansible/cp. The harness's own goes too."""
    close_ssh_master(host)
    for port in (None, 22):
        digest = hashlib.sha1(("%s-%s-root" % (host["ip"], port)).encode()).hexdigest()[:10]
        end_ssh_master(os.path.expanduser("~/.ansible/cp/" + digest), host["ip"])


def power_off(name):
    """Pull the plug: QEMU quits at once, the guest gets no shutdown."""
    host = get_host(name)
    drop_ssh_masters(host)
    try:
        monitor_command(name, "quit")
    except OSError:
        pass
    wait_gone_or_kill(host["pid"])


def powered(name):
    """Whether name's QEMU runs (a powered-off host runs no domain)."""
    host = get_host(name)
    return pid_alive(host["pid"]) and _is_our_qemu(host["pid"], host)


def power_on(name, deadline_s=600):
    """Boot a powered-off host on its own disks and wait until it answers ssh."""
    state = load_state()
    host = get_host(name, state)
    if pid_alive(host["pid"]) and _is_our_qemu(host["pid"], host):
        raise LabError("%s is running (pid %d)" % (name, host["pid"]))
    # the memory it was first booted with (lab-up's SANLESS_LAB_*_MEM), not this process's environment
    booted = boot_host(host["index"], Path(state["image"]), keep_disks=True,
                       host_mem_mib=host.get("host_mem_mib", HOST_MEM_MIB),
                       dom0_mem_mib=host.get("dom0_mem_mib", DOM0_MEM_MIB))
    state["hosts"][name] = booted
    save_state(state)
    log("%s powered on: pid %d" % (name, booted["pid"]))
    drop_ssh_masters(booted)
    wait_ssh([booted], deadline_s)
    start_nic_watchdog(name)
    return booted


def pause_host(name):
    close_ssh_master(get_host(name))
    monitor_command(name, "stop")


def resume_host(name):
    monitor_command(name, "cont")


def can_reach(src, dst_ip, timeout=3):
    """True when host src can open a TCP connection to dst_ip's ssh port (run on src)."""
    proc = ssh(src, ["nc", "-z", "-w", str(timeout), dst_ip, "22"], check=False, timeout=60)
    return proc.returncode == 0


def collect_artifacts(dest):
    """Copy host serial logs and the guests' console logs (from each dom0) into dest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for host in hosts():
        if Path(host["serial"]).exists():
            shutil.copy(host["serial"], dest / Path(host["serial"]).name)
        if pid_alive(host["pid"]):
            proc = subprocess.run(ssh_argv(host, ["tar", "-C", "/var/log/xen", "-czf", "-", "."]),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
            if proc.returncode == 0:
                (dest / ("%s-xen-logs.tar.gz" % host["name"])).write_bytes(proc.stdout)
    return dest

