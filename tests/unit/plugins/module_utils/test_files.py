# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""module_utils/files.py: the one reader and the one durable writer of small files."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sanless.xen.plugins.module_utils import files
from ansible_collections.sanless.xen.plugins.module_utils.files import fsync_file, read_text, write_file_atomic


def test_read_text_of_a_missing_file_is_none(tmp_path):
    assert read_text(str(tmp_path / "nope")) is None
    (tmp_path / "there").write_text("x\n")
    assert read_text(str(tmp_path / "there")) == "x\n"


def fd_path(fd):
    return os.readlink("/proc/self/fd/%d" % fd)


@pytest.fixture
def disk_events(monkeypatch):
    """What reaches the disk, in order: ("fsync", path) for each os.fsync, ("rename", src, dst) for each os.rename."""
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", fd_path(fd)))
        real_fsync(fd)

    def rename(src, dst):
        events.append(("rename", src, dst))
        real_rename(src, dst)
    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "rename", rename)
    return events


def test_write_file_atomic_replaces_the_file_durably(tmp_path, disk_events):
    path = tmp_path / "boot_id"
    path.write_text("old\n")
    write_file_atomic(str(path), "new\n", 0o644)
    assert read_text(str(path)) == "new\n" and os.listdir(str(tmp_path)) == ["boot_id"]
    # the temporary file (same folder) is fsynced, renamed over the file, then the folder is fsynced
    (kind, tmp), rename, folder = disk_events
    assert kind == "fsync"
    assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".boot_id.")
    assert rename == ("rename", tmp, str(path)) and folder == ("fsync", str(tmp_path))


def test_before_rename_sees_the_written_temporary_file_and_its_changes_are_fsynced(tmp_path, disk_events):
    # state_file sets the file's mode there: the fsync that follows keeps it with the text
    path = tmp_path / "boot_id"
    seen = []

    def before_rename(tmp):
        seen.append((tmp, read_text(tmp), list(disk_events)))
        os.chmod(tmp, 0o640)
    write_file_atomic(str(path), "new\n", 0o600, before_rename=before_rename)
    [(tmp, text, events_then)] = seen
    assert text == "new\n" and events_then == [] and os.stat(str(path)).st_mode & 0o7777 == 0o640
    assert disk_events == [("fsync", tmp), ("rename", tmp, str(path)), ("fsync", str(tmp_path))]


def test_a_failing_before_rename_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "boot_id"
    path.write_text("old\n")

    def before_rename(tmp):
        raise SystemExit(1)  # AnsibleModule.fail_json
    with pytest.raises(SystemExit):
        write_file_atomic(str(path), "new\n", before_rename=before_rename)
    assert path.read_text() == "old\n" and os.listdir(str(tmp_path)) == ["boot_id"]


def test_fsync_file_keeps_a_chmod(tmp_path, disk_events):
    path = tmp_path / "boot_id"
    path.write_text("x\n")
    os.chmod(str(path), 0o644)
    fsync_file(str(path))
    assert disk_events == [("fsync", str(path))]


def test_write_file_atomic_mode_whatever_the_umask_and_the_missing_folder(tmp_path):
    old = os.umask(0o077)
    try:
        write_file_atomic(str(tmp_path / "a" / "b" / "rule"), "x", 0o644, folder_mode=0o750)
        write_file_atomic(str(tmp_path / "secret.res"), "y")
    finally:
        os.umask(old)
    assert os.stat(str(tmp_path / "a" / "b" / "rule")).st_mode & 0o7777 == 0o644
    assert os.stat(str(tmp_path / "a" / "b")).st_mode & 0o7777 == 0o700  # folder_mode, under the umask as mkdir has it
    assert os.stat(str(tmp_path / "secret.res")).st_mode & 0o7777 == 0o600  # the default mode
    old = os.umask(0o022)
    try:
        write_file_atomic(str(tmp_path / "c" / "file"), "z", 0o600, folder_mode=0o750)
    finally:
        os.umask(old)
    assert os.stat(str(tmp_path / "c")).st_mode & 0o7777 == 0o750


def test_write_file_atomic_leaves_the_old_file_and_no_temp_file_on_error(tmp_path, monkeypatch):
    path = tmp_path / "sl-web01-disk.res"
    path.write_text("old")

    def fsync(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_file_atomic(str(path), "new")
    assert path.read_text() == "old" and os.listdir(str(tmp_path)) == ["sl-web01-disk.res"]
    monkeypatch.undo()
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):  # a rename over a folder fails
        write_file_atomic(str(tmp_path / "folder"), "new")
    assert sorted(os.listdir(str(tmp_path))) == ["folder", "sl-web01-disk.res"] and not os.listdir(str(tmp_path / "folder"))
