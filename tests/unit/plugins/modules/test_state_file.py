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
    """The paths the module wrote, through the one durable writer."""
    written = []
    real = files.write_file_atomic

    def write(path, text, mode=0o600, folder_mode=0o755):
        written.append(path)
        real(path, text, mode, folder_mode)
    monkeypatch.setattr(state_file, "write_file_atomic", write)
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
    assert result["diff"] == {"before_header": "%s (absent)" % path, "after_header": "%s (mode 0644)" % path,
                              "before": "", "after": BOOT}
    assert os.listdir(str(tmp_path / "watcher")) == ["boot_id"]  # no temporary file left


def test_same_content_and_mode_is_no_change_and_no_write(module_main, tmp_path, writes):
    path = tmp_path / "boot_id"
    keep(module_main, path)
    del writes[:]
    result, failed = keep(module_main, path)
    assert not failed and not result["changed"] and writes == []
    assert result["diff"]["before"] == result["diff"]["after"] == BOOT


def test_check_mode_writes_nothing_and_says_what_would_change(module_main, tmp_path, writes):
    path = tmp_path / "watcher" / "boot_id"
    result, failed = keep(module_main, path, check_mode=True)
    assert not failed and result["changed"] and writes == [] and not (tmp_path / "watcher").exists()
    assert result["diff"]["before"] == "" and result["diff"]["after"] == BOOT
    keep(module_main, path, content="an-older-boot\n")
    result, failed = keep(module_main, path, check_mode=True)
    assert result["changed"] and writes == [str(path)] and path.read_text() == "an-older-boot\n"
    assert (result["diff"]["before"], result["diff"]["after"]) == ("an-older-boot\n", BOOT)
    result, failed = keep(module_main, path, content="an-older-boot\n", check_mode=True)
    assert not result["changed"]


def test_a_new_content_or_mode_is_written(module_main, tmp_path, writes):
    path = tmp_path / "boot_id"
    path.write_text("an-older-boot\n")
    os.chmod(str(path), 0o600)
    result, failed = keep(module_main, path, mode="0640")
    assert result["changed"] and path.read_text() == BOOT and mode_of(path) == 0o640
    result, failed = keep(module_main, path, mode=0o644)  # an unquoted 0644 in YAML is the number 420
    assert result["changed"] and mode_of(path) == 0o644 and result["mode"] == "0644"
    assert result["diff"]["before_header"] == "%s (mode 0640)" % path and result["diff"]["before"] == BOOT
    assert writes == [str(path), str(path)]


def test_failures_say_what_and_where(module_main, tmp_path, monkeypatch):
    result, failed = keep(module_main, tmp_path / "boot_id", mode="rw-r--r--")
    assert failed and result["msg"] == "invalid mode 'rw-r--r--': octal permissions such as '0644'"
    (tmp_path / "folder").mkdir()
    result, failed = keep(module_main, tmp_path / "folder")
    assert failed and result["msg"].startswith("cannot read %s: " % (tmp_path / "folder"))
    assert result["path"] == str(tmp_path / "folder") and "Is a directory" in result["error"]
    path = tmp_path / "watcher" / "boot_id"
    keep(module_main, path, content="an-older-boot\n")

    def fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files.os, "fsync", fsync)
    result, failed = keep(module_main, path)
    assert failed and result["msg"] == "cannot write %s: [Errno 28] No space left on device" % path
    assert result["errno"] == 28 and result["path"] == str(path)
    assert path.read_text() == "an-older-boot\n" and os.listdir(str(path.parent)) == ["boot_id"]
