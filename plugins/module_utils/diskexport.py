# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the importing modules (iscsi_initiator, aoe_import) share: the owner/vg/lv options that name
the shared path /dev/sanless/<owner>/<vg>/<lv>, and the wait for a device node to appear."""

from __future__ import annotations

import os
import time

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils.lvm import check_name

# How long the importing modules sleep between two looks for the device.
POLL_SECONDS = 0.5

# argument_spec entries and the required_together group of the shared-path options.
SHARED_PATH_OPTIONS = dict(
    owner=dict(type="str"),
    vg=dict(type="str"),
    lv=dict(type="str"),
)
SHARED_PATH_TOGETHER = ("owner", "vg", "lv")


def shared_path(params):
    """The shared path named by params' owner, vg and lv, or None without an owner. Raises ValueError
    on a bad VG or LV name."""
    if not params["owner"]:
        return None
    check_name(params["vg"], "VG name")
    check_name(params["lv"], "LV name")
    return conv.shared_disk_path(params["owner"], params["vg"], params["lv"])


def device_exists(path):
    """True when the device node (or link) is there (tests replace it)."""
    return os.path.exists(path)


def wait_until(done, timeout):
    """Call done() until it returns true or timeout seconds passed; returns its last answer. The
    importing modules' one wait loop (a device that udev creates some time after the login)."""
    deadline = time.time() + max(timeout, 0)
    while True:
        answer = done()
        if answer or time.time() >= deadline:
            return answer
        time.sleep(POLL_SECONDS)
