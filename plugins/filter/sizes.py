# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sizes as the collection computes them (module_utils/conventions), for roles.

Documentation of each filter: the YAML file named after it next to this file.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.module_utils import conventions

_DIGITS_RE = re.compile(r"^[0-9]+\Z")


def _whole(value, what):
    """value as an int: a whole number of bytes, given as a number or as a string of digits."""
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise AnsibleFilterError("%s must be a whole number of bytes, got %r" % (what, value))


def _extent(value):
    extent = _whole(value, "extent_bytes")
    if extent <= 0:
        raise AnsibleFilterError("extent_bytes must be more than 0, got %r" % (value,))
    return extent


def drbd_meta_bytes(disk_bytes, extent_bytes=conventions.DEFAULT_EXTENT_BYTES):
    """Filter: the size of the external DRBD metadata LV of a disk of disk_bytes (conventions.meta_bytes)."""
    return conventions.meta_bytes(_whole(disk_bytes, "disk_bytes"), _extent(extent_bytes))


def round_up(size_bytes, extent_bytes=conventions.DEFAULT_EXTENT_BYTES):
    """Filter: size_bytes rounded up to whole extents, as lvcreate allocates (conventions.round_up)."""
    return conventions.round_up(_whole(size_bytes, "size_bytes"), _extent(extent_bytes))


class FilterModule(object):
    """sanless.xen size filters."""

    def filters(self):
        return {"drbd_meta_bytes": drbd_meta_bytes, "round_up": round_up}
