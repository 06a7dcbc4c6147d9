# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno

import pytest

from ansible_collections.sanless.xen.plugins.module_utils.runner import (
    C_LOCALE,
    RC_NOT_FOUND,
    CommandError,
    CommandRunner,
    fail_from_error,
)


def test_run_uses_argv_c_locale_and_no_expansion(fake_module):
    module = fake_module({("xl", "list"): (0, "out", "")})
    result = CommandRunner(module).run(["xl", "list"])
    assert (result.rc, result.stdout, result.skipped) == (0, "out", False)
    argv, kwargs = module.calls[0]
    assert argv == ["xl", "list"]
    assert kwargs["environ_update"] == {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    assert kwargs["expand_user_and_vars"] is False
    assert kwargs["check_rc"] is False
    assert kwargs["handle_exceptions"] is False
    assert "use_unsafe_shell" not in kwargs or kwargs["use_unsafe_shell"] is False
    assert C_LOCALE["LC_ALL"] == "C"


def test_user_values_are_passed_verbatim(fake_module):
    argv = ["lvs", "$HOME", "~root", "a b;reboot"]
    module = fake_module({tuple(argv): (0, "", "")})
    CommandRunner(module).run(argv)
    assert module.calls[0][0] == argv


def test_ints_become_strings(fake_module):
    module = fake_module({("drbdsetup", "status", "90"): (0, "", "")})
    CommandRunner(module).run(["drbdsetup", "status", 90])
    assert module.calls[0][0] == ["drbdsetup", "status", "90"]


@pytest.mark.parametrize("argv", ["xl list", b"xl list", [], ["xl", None], ["xl", True], ("xl", ["list"])])
def test_refuses_anything_but_an_argv_list(fake_module, argv):
    with pytest.raises((TypeError, ValueError)):
        CommandRunner(fake_module()).run(argv)


def test_failure_raises_command_error_with_everything(fake_module):
    module = fake_module({("vgs", "nope"): (5, "", '  Volume group "nope" not found\n')})
    with pytest.raises(CommandError) as info:
        CommandRunner(module).run(["vgs", "nope"])
    err = info.value
    assert (err.cmd, err.rc, err.stdout) == (["vgs", "nope"], 5, "")
    assert 'Volume group "nope" not found' in err.stderr
    assert err.msg == 'vgs nope failed with rc 5: Volume group "nope" not found'


def test_ok_rcs(fake_module):
    module = fake_module({("grep", "x"): (1, "", "")})
    assert CommandRunner(module).run(["grep", "x"], ok_rcs=(0, 1)).rc == 1


def test_missing_program_is_a_command_error(fake_module):
    missing = OSError(errno.ENOENT, "No such file or directory")
    module = fake_module({("drbdsetup", "status"): missing})
    with pytest.raises(CommandError) as info:
        CommandRunner(module).run(["drbdsetup", "status"])
    assert info.value.rc == RC_NOT_FOUND
    assert "cannot run drbdsetup" in info.value.msg


def test_check_mode_records_state_changes_instead_of_running(fake_module):
    module = fake_module({("xl", "list"): (0, "listing", "")}, check_mode=True)
    runner = CommandRunner(module)
    result = runner.run(["xl", "pause", "fx1"], changes_state=True)
    assert result.skipped is True and result.rc == 0
    assert runner.would_run == [["xl", "pause", "fx1"]]
    # read-only commands still run in check mode
    assert runner.stdout(["xl", "list"]) == "listing"
    assert [call[0] for call in module.calls] == [["xl", "list"]]
    assert runner.ran == [["xl", "list"]]


def test_state_changes_run_outside_check_mode(fake_module):
    module = fake_module({("xl", "pause", "fx1"): (0, "", "")})
    runner = CommandRunner(module)
    assert runner.run(["xl", "pause", "fx1"], changes_state=True).skipped is False
    assert runner.would_run == []
    assert runner.ran == [["xl", "pause", "fx1"]]


def test_check_mode_override(fake_module):
    module = fake_module({("xl", "pause", "fx1"): (0, "", "")}, check_mode=True)
    assert CommandRunner(module, check_mode=False).run(["xl", "pause", "fx1"], changes_state=True).skipped is False


def test_stdin_data_is_passed_raw(fake_module):
    module = fake_module({("dmsetup", "load", "fx"): (0, "", "")})
    CommandRunner(module).run(["dmsetup", "load", "fx"], changes_state=True, data="0 8 linear /dev/drbd90 0\n")
    kwargs = module.calls[0][1]
    assert kwargs["data"] == "0 8 linear /dev/drbd90 0\n"
    assert kwargs["binary_data"] is True  # no extra newline appended by run_command


def test_fail_from_error():
    calls = []

    class Module(object):
        def fail_json(self, **kwargs):
            calls.append(kwargs)

    err = CommandError(["xl", "info"], 1, "o", "e")
    fail_from_error(Module(), err)
    fail_from_error(Module(), err, msg="reading the host failed")
    assert calls[0] == {"msg": "xl info failed with rc 1: e", "cmd": ["xl", "info"], "rc": 1, "stdout": "o", "stderr": "e"}
    assert calls[1]["msg"] == "reading the host failed"


def test_has_tool(fake_module):
    runner = CommandRunner(fake_module(tools=["xl"]))
    assert runner.has_tool("xl") is True
    assert runner.has_tool("xm") is False


def test_with_a_real_ansible_module():
    """The keyword arguments must be ones this ansible-core's run_command accepts."""
    from ansible.module_utils.basic import AnsibleModule
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args({}):
        module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    runner = CommandRunner(module)
    out = runner.stdout(["sh", "-c", 'printf "%s|%s|%s" "$LC_ALL" "$LANG" "$1"', "sh", "$HOME ~"])
    assert out == "C|C|$HOME ~"
    with pytest.raises(CommandError) as info:
        runner.run(["sanless-no-such-program-xyz"])
    assert info.value.rc == RC_NOT_FOUND
    with pytest.raises(CommandError) as info:
        runner.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert (info.value.rc, info.value.stderr) == (3, "oops\n")
    result = runner.run(["cat"], data="0 8 linear /dev/drbd90 0\n")
    assert result.stdout == "0 8 linear /dev/drbd90 0\n"
