# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small files on a dom0, the one way: read_text reads one (None when it is missing), write_file_atomic writes one
durably (resource files, the journals of livemigrate.py, backup manifests, exports' config and udev rules, the
watcher's boot id through the state_file module).

Apart from the tool files (drbd.py, iscsi.py, ...) because every one of them, and modules, write such files.
"""

from __future__ import annotations

import errno
import os
import tempfile


def read_text(path):
    """The text of a file, or None when there is none."""
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def fsync_file(path):
    """Make a file's last changes durable, its mode and owner too: a chmod or chown, like a write, is only in memory
    until the file is fsynced (state_file after a mode change). A folder is fsynced the same way (fsync_dir)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    """Make the renames in a folder durable: without it a power cut right after a rename can bring back the file's
    previous version, or leave only its temp file (lab: the target's journal of a finished migration gone after its
    power cut, web01.json.tmp left; a dom0 that lost power seconds after a watcher pass booted without its boot id)."""
    fsync_file(path)


def write_file_atomic(path, text, mode=0o600, folder_mode=0o755, before_rename=None):
    """Write text to path durably: a reader, and the disk after a power cut, has the old file or the whole new one.

    Through a temporary file in the same folder (the folder made with folder_mode when missing), given mode whatever
    the umask, fsynced and renamed over path; then the folder is fsynced (fsync_dir). before_rename, when given, is
    called with the temporary file's path once its text is written and before the fsync (state_file sets the file's
    mode and owner there, so that the fsync keeps them and a mode it cannot set leaves path as it was). On any error
    the temporary file is removed and path is left as it was."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        os.makedirs(folder, folder_mode)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            if before_rename is not None:
                before_rename(tmp)
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
