"""What e2e tests need from the lab: commands on hosts, playbook runs, guest console reading."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sanless_lab

# SANLESS-HB <n> <unix time> <guest uptime, 1/100 s>
HB_RE = re.compile(r"SANLESS-HB (\d+) (\d+(?:\.\d+)?) (\d+\.\d+)")
SUM_RE = re.compile(r"SANLESS-(?:PATTERN|CHECK(?: \d+)?) sha256=([0-9a-f]{64})")


class Lab:
    def __init__(self, repo):
        self.repo = Path(repo)

    @property
    def hosts(self):
        return [h["name"] for h in sanless_lab.hosts()]

    def ip(self, name):
        return sanless_lab.get_host(name)["ip"]

    def run(self, host, argv, check=True, timeout=600):
        return sanless_lab.ssh(host, argv, check=check, timeout=timeout)

    def sh(self, host, script, check=True, timeout=600):
        return sanless_lab.sh(host, script, check=check, timeout=timeout)

    def playbook(self, playbook, *args, check=True, timeout=1800, env=None):
        """Run ansible-playbook from the repo root with the lab inventory."""
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml",
                str(playbook)] + list(args)
        proc = subprocess.run(argv, cwd=self.repo, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", **(env or {})))
        if check and proc.returncode != 0:
            raise AssertionError("ansible-playbook %s failed rc=%d\n%s\n%s" % (
                " ".join(argv[3:]), proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
        return proc

    def ansible(self, pattern, module, args="", check=True, extra=()):
        argv = [str(Path(sys.executable).parent / "ansible"), "-i", "inventory/lab.yml", pattern, "-m", module]
        if args:
            argv += ["-a", args]
        argv += ["-o"] + list(extra)
        proc = subprocess.run(argv, cwd=self.repo, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, ANSIBLE_FORCE_COLOR="0"))
        if check and proc.returncode != 0:
            raise AssertionError("ansible %s -m %s failed\n%s\n%s" % (pattern, module, proc.stdout, proc.stderr))
        return proc

    def console(self, host, domain):
        """The guest's console log on that dom0 (xenconsoled writes it; an incoming
        migration logs under NAME--incoming first)."""
        proc = self.sh(host, "cat /var/log/xen/console/guest-%s--incoming.log /var/log/xen/console/guest-%s.log "
                             "2>/dev/null; true" % (domain, domain))
        return proc.stdout

    @staticmethod
    def heartbeats(text):
        """(beat number, guest uptime) pairs: the uptime keeps running through pauses and
        migrations and has 1/100 s, where busybox's date has whole seconds."""
        return [(int(n), float(up)) for n, _epoch, up in HB_RE.findall(text)]

    @staticmethod
    def last_boot(text):
        """The console log from the guest's latest boot on (the log outlives the domain)."""
        at = text.rfind("SANLESS-GUEST up")
        return text[at:] if at >= 0 else text

    @staticmethod
    def heartbeats_full(text):
        """(beat number, unix time in whole seconds, guest uptime) of each heartbeat."""
        return [(int(n), float(epoch), float(up)) for n, epoch, up in HB_RE.findall(text)]

    @staticmethod
    def checksums(text):
        return SUM_RE.findall(text)

    def wait_console(self, host, domain, predicate, timeout=180, interval=2):
        deadline = time.time() + timeout
        text = ""
        while time.time() < deadline:
            text = self.console(host, domain)
            if predicate(text):
                return text
            time.sleep(interval)
        raise AssertionError("guest %s on %s: console condition not met in %d s; last lines:\n%s"
                             % (domain, host, timeout, "\n".join(text.splitlines()[-15:])))

    def xl_domains(self, host):
        out = self.run(host, ["xl", "list"]).stdout.splitlines()[1:]
        return {line.split()[0] for line in out if line.strip()}

    def lv_sha256(self, host, path, mib):
        # direct: the page cache of a device DRBD or another dom0 writes under may hold older blocks
        out = self.sh(host, "dd if=%s bs=1M count=%d iflag=direct 2>/dev/null | sha256sum" % (path, mib)).stdout
        return out.split()[0]

    def json_file(self, host, path):
        return json.loads(self.run(host, ["cat", path]).stdout)


def wait_for(predicate, timeout, what, interval=2):
    """predicate()'s first true answer within timeout seconds, else an AssertionError naming what and the
    last answer."""
    deadline = time.time() + timeout
    while True:
        answer = predicate()
        if answer or time.time() >= deadline:
            break
        time.sleep(interval)
    assert answer, "%s: not within %d s (last: %r)" % (what, timeout, answer)
    return answer


def reboot(lab, host, timeout=600):
    """A clean reboot of a lab dom0: systemctl reboot; QEMU runs with -no-reboot, so it quits when the host
    resets, and the host is booted again on its own disks (sanless_lab.power_on) and answers ssh."""
    try:
        lab.run(host, ["systemctl", "reboot"], check=False, timeout=60)
    except subprocess.TimeoutExpired:
        pass  # the connection went down with the host
    wait_for(lambda: not sanless_lab.powered(host), timeout, "%s shut down for its reboot" % host)
    sanless_lab.power_on(host, deadline_s=timeout)


def leftovers(lab, host, vm):
    """What a migration of vm may leave behind on host: DRBD minors (other than those of
    permanent resources, whose res files are not sl-*), clone/meta dm devices, resource files,
    journals. Empty when clean."""
    out = lab.sh(host, "keep=$(cat $(ls /etc/drbd.d/*.res 2>/dev/null | grep -v '/sl-') /dev/null | "
                       "grep -o 'minor [0-9]*\\|/dev/drbd[0-9]*' | grep -o '[0-9]*$' | sort -u | tr '\\n' ' '); "
                       "grep -E '^ *[0-9]+: cs:' /proc/drbd | grep -v 'cs:Unconfigured' | while read -r line; do "
                       "m=${line%%%%:*}; m=${m## }; case \" $keep \" in *\" $m \"*) ;; *) echo \"drbd $line\";; esac; done; "
                       "dmsetup ls | grep -E '^sl-%s-|%s.*drbdmeta' | sed 's/^/dm /'; "
                       "ls /etc/drbd.d/ | grep '^sl-%s-' | sed 's/^/res /'; "
                       "ls /var/lib/sanless-xen/migrations/ 2>/dev/null | sed 's/^/journal /'; true"
                       % (vm, vm.replace("-", "--"), vm)).stdout
    return [line for line in out.splitlines() if line.strip()]


def assert_moved(lab, vm, runs_on):
    """vm runs on runs_on alone, its config (/etc/xen/auto) only there, nothing of a migration left on any host."""
    for host in lab.hosts:
        assert leftovers(lab, host, vm) == [], "%s: leftovers of %s: %s" % (host, vm, leftovers(lab, host, vm))
    assert where_runs(lab, vm) == [runs_on]
    for host in lab.hosts:
        cfg = lab.run(host, ["test", "-e", "/etc/xen/auto/%s.cfg" % vm], check=False).returncode == 0
        assert cfg == (host == runs_on), "%s: /etc/xen/auto/%s.cfg present=%s" % (host, vm, cfg)


def vm_lvs(lab, host, vm, vg="xenvg"):
    out = lab.run(host, ["lvs", "--noheadings", "-o", "lv_name", vg]).stdout.split()
    return sorted(name for name in out if name.startswith(vm + "-"))


def where_runs(lab, vm):
    """The hosts running vm; a powered-off host runs nothing (a fault test pulled its plug)."""
    return [h for h in lab.hosts if sanless_lab.powered(h) and vm in lab.xl_domains(h)]


def journal_history(lab, host, vm):
    """The newest closed journal of vm on host (history/VM-ID.json)."""
    proc = lab.sh(host, "cat \"$(ls -t /var/lib/sanless-xen/history/%s-*.json | head -n1)\"" % vm)
    return json.loads(proc.stdout)


def journal_events(lab, host, vm):
    proc = lab.run(host, ["cat", "/var/lib/sanless-xen/migrations/%s.json" % vm], check=False)
    if proc.returncode != 0:
        return []
    return [entry["event"] for entry in json.loads(proc.stdout).get("log", [])]


def stall_during(beats, start, end, not_before=None):
    """The guest's stall over [start, end] (dom0 epoch seconds): the longest interval between
    two consecutive beats that overlaps the window, minus the median interval of all beats.
    ``beats`` are (number, epoch, uptime) triples, from heartbeats_full.

    An interval is the guest's uptime difference (1/100 s), but never more than its epoch
    difference + 1 s (a beat's epoch has whole seconds): a PV guest's uptime stands still in
    xl migrate's stop-and-copy and then catches up in a jump some seconds after it arrived,
    which is no stall. What the guest lost more than 1 s before the window began (a beat late
    because dom0 was busy starting the module) is not the window's stall; ``not_before``
    (epoch) cuts off more: the target's swap back follows the guest's arrival at once, so the
    interval around it may also hold the stop-and-copy, which is not the swap's stall."""
    beats = sorted(set(beats))
    gaps = [(a[1], b[1] + 1, min(b[2] - a[2], b[1] - a[1] + 1)) for a, b in zip(beats, beats[1:]) if b[0] == a[0] + 1]
    if not gaps:
        return None
    usual = sorted(g for _s, _e, g in gaps)[len(gaps) // 2]
    cut = start - 1 if not_before is None else max(start - 1, not_before)
    overlapping = [min(g, e - cut) if s < cut else g for s, e, g in gaps if s <= end and e >= start]
    return round(max(0.0, max(overlapping) - usual), 2) if overlapping else None


def start_playbook(lab, *args, env=None):
    """ansible-playbook in its own session, so a test can SIGKILL the whole run.

    Its output goes to a file (artifacts/ if there is one, else a temporary file); ``tail(proc)``
    reads it back for assertion messages, so a failure in CI shows why the run stopped."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab.yml"] + list(args)
    # a file of its own even for two runs started in the same second
    folder = lab.repo / "artifacts"
    fd, name = tempfile.mkstemp(prefix="bg-%d-" % time.time() if folder.is_dir() else "sanless-bg-", suffix=".log",
                                dir=str(folder) if folder.is_dir() else None)
    os.close(fd)
    path = Path(name)
    with open(path, "w") as log:
        proc = subprocess.Popen(argv, cwd=lab.repo, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", **(env or {})))
    proc.log_path = path
    STARTED.append(proc)
    return proc


# every start_playbook run, for end_started_playbooks
STARTED = []


def end_started_playbooks():
    """SIGKILL, by its session (its pid), every start_playbook run still going: a test that failed before it
    killed or waited for its run must not leave it holding the VM's lock for the next test. The pids ended."""
    ended = []
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=60)
            ended.append(proc.pid)
    return ended


def tail(proc, chars=4000):
    """The last output of a start_playbook run."""
    try:
        return proc.log_path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return "(no output: %s)" % exc


def remove_vm(lab, vm):
    """Destroy vm on every host and remove its config, what a failed migration of it left (its
    DRBD resources, clones, journal) and its LVs (test cleanup: a failed test must not fail the
    next ones through leftovers). A host a failed fault test left powered off is powered on."""
    for host in lab.hosts:
        if not sanless_lab.powered(host):
            sanless_lab.power_on(host)
        lab.sh(host, "xl destroy %s 2>/dev/null; rm -f /etc/xen/auto/%s.cfg /var/log/xen/console/guest-%s.log "
                     "/var/log/xen/console/guest-%s--incoming.log; "
                     "for res in /etc/drbd.d/sl-%s-*.res; do [ -e \"$res\" ] || continue; r=${res##*/}; "
                     "drbdadm down ${r%%.res}; rm -f \"$res\"; done; "
                     "for dev in $(dmsetup ls | awk '$1 ~ /^sl-%s-/ {print $1}'); do dmsetup remove $dev; done; "
                     "rm -f /var/lib/sanless-xen/migrations/%s.json /var/lib/sanless-xen/migrations/%s.cfg*; "
                     "for lv in $(lvs --noheadings -o lv_name xenvg | grep '^ *%s-'); do lvremove -q -y xenvg/$lv; done; true"
               % (vm, vm, vm, vm, vm, vm, vm, vm, vm))
