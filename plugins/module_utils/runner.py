# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run dom0 tools (xl, lvm, drbdadm, dmsetup) the one safe way.

Every command is an argv list: no shell, no ``$VAR``/``~`` expansion of user values, and the
C locale so that the parsers always see the same English, untranslated output. Commands
that change state are marked by the caller; in check mode they are recorded, not run.
"""

from __future__ import annotations

import errno
import time

# The parsers only understand untranslated output with '.' as the decimal separator.
C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}

# Tools live in sbin, which a non-login PATH may lack; these go in front of PATH.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"

# rc reported when the program itself could not be started (missing binary), as a shell does.
RC_NOT_FOUND = 127


class MonotonicClock(object):
    """time() and sleep() for wait_until: the monotonic clock, looked up at each call (tests replace
    this module's time)."""

    @staticmethod
    def time():
        return time.monotonic()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)


def wait_until(done, timeout, poll=0.5, clock=MonotonicClock):
    """Call done() until it returns true or timeout seconds passed; returns its last answer. The
    modules' one wait loop (a device that udev creates after a login, an md resync, a DRBD state).

    clock: an object with time() and sleep(seconds) (the engine passes its own, which its tests step)."""
    deadline = clock.time() + max(timeout, 0)
    while True:
        answer = done()
        if answer or clock.time() >= deadline:
            return answer
        clock.sleep(poll)


class CommandError(Exception):
    """A command failed (or could not be started). Carries what fail_json needs."""

    def __init__(self, cmd, rc, stdout="", stderr="", msg=None):
        self.cmd = list(cmd)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        if msg is None:
            detail = (stderr or stdout or "").strip().splitlines()
            msg = "%s failed with rc %s%s" % (" ".join(self.cmd), rc, (": " + detail[-1]) if detail else "")
        self.msg = msg
        super(CommandError, self).__init__(msg)

    def to_fail_kwargs(self, msg=None):
        """Keyword arguments for module.fail_json()."""
        return {
            "msg": msg or self.msg,
            "cmd": self.cmd,
            "rc": self.rc,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


def fail_from_error(module, err, msg=None):
    """Turn a CommandError into module.fail_json(msg, cmd, rc, stdout, stderr). Does not return."""
    module.fail_json(**err.to_fail_kwargs(msg))


class CommandResult(object):
    """What a command returned. ``skipped`` is True when check mode kept it from running."""

    __slots__ = ("cmd", "rc", "stdout", "stderr", "skipped")

    def __init__(self, cmd, rc, stdout, stderr, skipped=False):
        self.cmd = list(cmd)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.skipped = skipped

    def __repr__(self):
        return "CommandResult(cmd=%r, rc=%r, skipped=%r)" % (self.cmd, self.rc, self.skipped)


def _check_argv(argv):
    # A string would go through a shell-like split in run_command: refuse it outright.
    if isinstance(argv, (str, bytes)) or not isinstance(argv, (list, tuple)):
        raise TypeError("command must be an argv list, not %r" % (argv,))
    if not argv:
        raise ValueError("command must not be empty")
    out = []
    for arg in argv:
        if isinstance(arg, bool) or not isinstance(arg, (str, int)):
            raise TypeError("argv items must be str or int, got %r in %r" % (arg, argv))
        out.append(str(arg))
    return out


class CommandRunner(object):
    """Runs argv lists through module.run_command with the C locale.

    ``run(argv, changes_state=True)`` in check mode does not run the command: it is appended
    to ``would_run`` and a result with ``skipped=True`` is returned. ``ran`` lists every
    command that did run, so modules can return it for debugging.
    """

    def __init__(self, module, check_mode=None):
        self.module = module
        self.check_mode = module.check_mode if check_mode is None else check_mode
        self.ran = []
        self.would_run = []

    def run(self, argv, changes_state=False, ok_rcs=(0,), data=None):
        """Run argv; raise CommandError unless rc is in ok_rcs. Returns a CommandResult."""
        cmd = _check_argv(argv)
        if changes_state and self.check_mode:
            self.would_run.append(cmd)
            return CommandResult(cmd, 0, "", "", skipped=True)
        try:
            rc, out, err = self.module.run_command(
                cmd,
                check_rc=False,
                environ_update=dict(C_LOCALE),
                expand_user_and_vars=False,
                data=data,
                binary_data=data is not None,
                handle_exceptions=False,
                path_prefix=SBIN_PATH,
            )
        except (OSError, IOError) as exc:
            rc = RC_NOT_FOUND if exc.errno == errno.ENOENT else (exc.errno or 1)
            raise CommandError(cmd, rc, "", str(exc), msg="cannot run %s: %s" % (cmd[0], exc))
        self.ran.append(cmd)
        if rc not in ok_rcs:
            raise CommandError(cmd, rc, out, err)
        return CommandResult(cmd, rc, out, err)

    def stdout(self, argv, ok_rcs=(0,)):
        """Run a read-only command and return its stdout."""
        return self.run(argv, ok_rcs=ok_rcs).stdout

    def has_tool(self, name):
        """True when the program is on the dom0's PATH (sbin included)."""
        return self.module.get_bin_path(name, opt_dirs=SBIN_PATH.split(":")) is not None


class RunnerTool(object):
    """Base of the thin per-tool readers (iscsi.Lio, iscsi.Tgt, iscsi.Iscsiadm, aoe.Aoe): they hold a
    CommandRunner and run their argv through it."""

    def __init__(self, runner):
        self.runner = runner
