# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vm_backup's main(): bad input is refused before any command runs (the backup logic itself: test_backup.py)."""

from __future__ import annotations

import pytest

from ansible_collections.sanless.xen.plugins.modules import vm_backup


@pytest.mark.parametrize("args,why", [
    ({"vm": "web01;reboot", "dest": "/srv/bk"}, "invalid VM name"),
    ({"vm": "web01", "dest": "/srv/bk`id`"}, "invalid backup folder"),
    ({"vm": "web01", "dest": "$(id):/srv/bk"}, "the host before ':'"),
    ({"vm": "web01"}, "one of them"),
    ({"vm": "web01", "dest": "/srv/bk", "snapshot_size": "20%"}, "N%ORIGIN"),
    ({"vm": "web01", "dest": "/srv/bk", "keep": -1}, "invalid keep -1"),
    ({"vm": "web01", "action": "restore", "dest": "/srv/bk", "new_vm": "web01r"}, "needs backup and new_vm"),
    ({"vm": "web01", "action": "restore", "dest": "/srv/bk", "new_vm": "web01r", "backup": "web01-today"},
     "invalid backup id"),
    ({"vm": "web01", "action": "restore", "dest": "/srv/bk", "new_vm": "a|b", "backup": "web01-20261204T060000Z"},
     "invalid VM name"),
    ({"vm": "web01", "action": "restore", "dest_vg": "xenvg", "new_vm": "web01r", "backup": "web01-20261204T060000Z",
      "vg": "x y"}, "invalid LVM VG name"),
])
def test_bad_input_is_refused_before_any_command(module_main, args, why):
    result, failed, calls = module_main(vm_backup.main, args, {})
    assert failed and why in result["msg"] and "nothing was changed" in result["msg"]
    assert calls == []
