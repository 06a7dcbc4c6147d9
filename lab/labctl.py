#!/usr/bin/env python3
"""labctl: drive the sanless.xen lab (see sanless_lab.py).

  labctl.py image [--force]          build or reuse the host image for the current recipe
  labctl.py up [--hosts N]           boot N hosts (default 2) and wait until each passes its self-check
  labctl.py down                     stop exactly the QEMU processes the lab started; remove the netns
  labctl.py status [--json]          the hosts: QEMU alive, ssh reachable, link state
  labctl.py ssh HOST [-- ARGV...]    run a command on a host (interactive shell without ARGV)
  labctl.py cut-link HOST | restore-link HOST | power-off HOST | pause HOST | resume HOST
  labctl.py artifacts DIR            copy serial and guest console logs into DIR
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sanless_lab as lab  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description="sanless.xen lab of real Xen dom0s under QEMU")
    sub = parser.add_subparsers(dest="cmd", required=True)
    image = sub.add_parser("image")
    image.add_argument("--force", action="store_true")
    up = sub.add_parser("up")
    up.add_argument("--hosts", type=int, default=int(os.environ.get("N", "2")))
    sub.add_parser("down")
    status = sub.add_parser("status")
    status.add_argument("--json", action="store_true")
    ssh = sub.add_parser("ssh")
    ssh.add_argument("host")
    ssh.add_argument("argv", nargs=argparse.REMAINDER)
    for name in ("cut-link", "restore-link", "power-off", "power-on", "pause", "resume"):
        sub.add_parser(name).add_argument("host")
    sub.add_parser("artifacts").add_argument("dest")
    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except lab.LabError as exc:
        print("lab: %s" % exc, file=sys.stderr)
        return 1


def dispatch(args):
    if args.cmd == "image":
        print(lab.build_image(force=args.force))
    elif args.cmd == "up":
        state = lab.up(args.hosts)
        print_table(lab.status())
        print("lab ready: %s" % ", ".join(sorted(state["hosts"])))
    elif args.cmd == "down":
        lab.down()
        print("lab down")
    elif args.cmd == "status":
        rows = lab.status()
        print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    elif args.cmd == "ssh":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        host = lab.get_host(args.host)
        os.execvp("ip", lab.ssh_argv(host, argv, tty=not argv and sys.stdin.isatty()))
    elif args.cmd == "cut-link":
        lab.cut_link(args.host)
    elif args.cmd == "restore-link":
        lab.restore_link(args.host)
    elif args.cmd == "power-off":
        lab.power_off(args.host)
    elif args.cmd == "power-on":
        lab.power_on(args.host)
    elif args.cmd == "pause":
        lab.pause_host(args.host)
    elif args.cmd == "resume":
        lab.resume_host(args.host)
    elif args.cmd == "artifacts":
        print(lab.collect_artifacts(args.dest))
    return 0


def format_table(rows):
    if not rows:
        return "no lab hosts (make lab-up)"
    head = "%-6s %-11s %-8s %-5s %-4s %-4s" % ("host", "address", "pid", "qemu", "ssh", "link")
    lines = [head] + ["%-6s %-11s %-8d %-5s %-4s %-4s" % (r["name"], r["ip"], r["pid"], "up" if r["qemu"] else "down",
                                                       "ok" if r["ssh"] else "no", r["link"]) for r in rows]
    return "\n".join(lines)


def print_table(rows):
    print(format_table(rows))


if __name__ == "__main__":
    sys.exit(main())
