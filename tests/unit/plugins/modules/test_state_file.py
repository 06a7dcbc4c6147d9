# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sanless.xen.state_file: a small state file (the watcher's boot id) under tmp_path, written by files.write_file_atomic
(no commands)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import files
from ansible_collections.sanless.xen.plugins.modules import state_file

BOOT = "4f1c2d0e-8a1b-4c1e-9d3f-2b7a6c5e4d10\n"


@pytest.fixture
def writes(monkeypatch):
    """The paths the module wrote, through the one durable writer, and the files it fsynced after a chmod alone
    (("fsync", path))."""
    written = []
    real_write, real_fsync = files.write_file_atomic, files.fsync_file

    def write(path, text, mode=0o600, folder_mode=0o755, before_rename=None):
        written.append(path)
        real_write(path, text, mode, folder_mode, before_rename)

    def fsync_file(path):
        written.append(("fsync", path))
        real_fsync(path)
    monkeypatch.setattr(state_file, "write_file_atomic", write)
    monkeypatch.setattr(state_file, "fsync_file", fsync_file)
    return written


def keep(module_main, path, content=BOOT, check_mode=False, diff=True, **args):
    result, failed, calls = module_main(state_file.main, dict({"path": str(path), "content": content}, **args), {},
                                        check_mode, diff)
    assert calls == []
    return result, failed


def mode_of(path):
    return os.stat(str(path)).st_mode & 0o7777


def test_first_write_makes_the_folder_and_the_file(module_main, tmp_path, writes):
    path = tmp_path / "watcher" / "boot_id"
    result, failed = keep(module_main, path)
    assert not failed and result["changed"] and writes == [str(path)]
    assert path.read_text() == BOOT and mode_of(path) == 0o644 and result["mode"] == "0644"
    # a new file: the text's diff alone (its mode is in the header; the temporary file's 0600 is no "before")
    assert result["diff"] == [{"before_header": "%s (absent)" % path, "after_header": "%s (mode 0644)" % path,
                               "before": "", "after": BOOT}]
    assert os.listdir(str(tmp_path / "watcher")) == ["boot_id"]  # no temporary file left


def test_same_content_and_mode_is_no_change_and_no_write(module_main, tmp_path, writes):
    path = tmp_path / "boot_id"
    keep(module_main, path)
    del writes[:]
    result, failed = keep(module_main, path)
    assert not failed and not result["changed"] and writes == [] and result["mode"] == "0644"
    [text] = result["diff"]
    assert text["before"] == text["after"] == BOOT


def test_check_mode_writes_nothing_and_says_what_would_change(module_main, tmp_path, writes):
    path = tmp_path / "watcher" / "boot_id"
    result, failed = keep(module_main, path, check_mode=True)
    assert not failed and result["changed"] and writes == [] and not (tmp_path / "watcher").exists()
    assert "mode" not in result  # no file to work a symbolic mode out on
    assert result["diff"] == [{"before_header": "%s (absent)" % path, "after_header": str(path),
                               "before": "", "after": BOOT}]
    keep(module_main, path, content="an-older-boot\n")
    result, failed = keep(module_main, path, check_mode=True)
    assert result["changed"] and writes == [str(path)] and path.read_text() == "an-older-boot\n"
    assert (result["diff"][0]["before"], result["diff"][0]["after"]) == ("an-older-boot\n", BOOT)
    result, failed = keep(module_main, path, content="an-older-boot\n", check_mode=True)
    assert not result["changed"]
    # a mode alone: said, with the mode it would have, and not set
    result, failed = keep(module_main, path, content="an-older-boot\n", mode="g+w", check_mode=True)
    assert result["changed"] and result["mode"] == "0664" and mode_of(path) == 0o644 and writes == [str(path)]
    assert result["diff"][1] == {"before": {"mode": "0644"}, "after": {"mode": "0664"}}
    assert result["diff"][0]["after_header"] == "%s (mode 0664)" % path


def test_a_new_content_or_mode_is_written(module_main, tmp_path, writes):
    path = tmp_path / "boot_id"
    path.write_text("an-older-boot\n")
    os.chmod(str(path), 0o600)
    result, failed = keep(module_main, path, mode="0640")
    assert result["changed"] and path.read_text() == BOOT and mode_of(path) == 0o640 and writes == [str(path)]
    text, attrs = result["diff"]
    assert (text["before_header"], text["after_header"]) == ("%s (mode 0600)" % path, "%s (mode 0640)" % path)
    assert attrs == {"before": {"mode": "0600"}, "after": {"mode": "0640"}}
    assert os.listdir(str(tmp_path)) == ["boot_id"]
    # without a mode a file there keeps its own (a new one gets 0644)
    result, failed = keep(module_main, path, content="a-newer-boot\n")
    assert result["changed"] and path.read_text() == "a-newer-boot\n" and mode_of(path) == 0o640
    assert result["mode"] == "0640" and len(result["diff"]) == 1


def test_a_mode_alone_is_set_on_the_file_and_fsynced_without_a_new_file(module_main, tmp_path, writes):
    path = tmp_path / "boot_id"
    keep(module_main, path, mode="0640")
    inode = os.stat(str(path)).st_ino
    del writes[:]
    result, failed = keep(module_main, path, mode=0o644)  # an unquoted 0644 in YAML is the number 420
    assert not failed and result["changed"] and mode_of(path) == 0o644 and result["mode"] == "0644"
    assert writes == [("fsync", str(path))] and os.stat(str(path)).st_ino == inode and path.read_text() == BOOT
    text, attrs = result["diff"]
    assert text["before"] == text["after"] == BOOT and attrs == {"before": {"mode": "0640"}, "after": {"mode": "0644"}}
    del writes[:]
    result, failed = keep(module_main, path, mode="0644")
    assert not result["changed"] and writes == [] and len(result["diff"]) == 1


def test_a_symbolic_mode_is_ansible_s_own(module_main, tmp_path, writes):
    # worked out by AnsibleModule on the temporary file (0600) for a new file, on the file for a mode alone
    path = tmp_path / "boot_id"
    result, failed = keep(module_main, path, mode="u=rw,g=r,o=r")
    assert not failed and result["changed"] and mode_of(path) == 0o644 and result["mode"] == "0644"
    result, failed = keep(module_main, path, mode="u=rw,g=r,o=r")
    assert not result["changed"]
    result, failed = keep(module_main, path, mode="o-r")
    assert result["changed"] and mode_of(path) == 0o640 and writes == [str(path), ("fsync", str(path))]


def test_failures_say_what_and_where(module_main, tmp_path, monkeypatch):
    # a mode AnsibleModule cannot read fails before the rename: no file, no temporary file left
    result, failed = keep(module_main, tmp_path / "boot_id", mode="rw-r--r--")
    assert failed and result["msg"] == "mode must be in octal or symbolic form"
    assert result["details"] == "bad symbolic permission for mode: rw-r--r--"
    assert os.path.dirname(result["path"]) == str(tmp_path) and os.listdir(str(tmp_path)) == []
    (tmp_path / "folder").mkdir()
    result, failed = keep(module_main, tmp_path / "folder")
    assert failed and result["msg"].startswith("cannot read %s: " % (tmp_path / "folder"))
    assert result["path"] == str(tmp_path / "folder") and "Is a directory" in result["error"]
    path = tmp_path / "watcher" / "boot_id"
    keep(module_main, path, content="an-older-boot\n")
    result, failed = keep(module_main, path, mode="rw-r--r--")  # on a file there: left as it was
    assert failed and result["msg"] == "mode must be in octal or symbolic form"
    assert path.read_text() == "an-older-boot\n" and os.listdir(str(path.parent)) == ["boot_id"]

    def fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files.os, "fsync", fsync)
    result, failed = keep(module_main, path)
    assert failed and result["msg"] == "cannot write %s: [Errno 28] No space left on device" % path
    assert result["errno"] == 28 and result["path"] == str(path)
    assert path.read_text() == "an-older-boot\n" and os.listdir(str(path.parent)) == ["boot_id"]
    result, failed = keep(module_main, path, content="an-older-boot\n", mode="0600")  # a mode alone not fsynced
    assert failed and result["msg"] == "cannot write %s: [Errno 28] No space left on device" % path
