# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The size filters (drbd_meta_bytes, round_up): conventions.py for roles, with clear errors."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.sizes import FilterModule, drbd_meta_bytes, round_up
from ansible_collections.sanless.xen.plugins.module_utils import conventions

MIB = 1024 ** 2
GIB = 1024 ** 3


def test_filters_are_registered():
    assert FilterModule().filters() == {"drbd_meta_bytes": drbd_meta_bytes, "round_up": round_up}


@pytest.mark.parametrize("disk_bytes", [0, 256 * MIB, GIB, "1073741824", " 1073741824 ", 100 * GIB, 1024 * GIB])
def test_drbd_meta_bytes_is_conventions_meta_bytes(disk_bytes):
    assert drbd_meta_bytes(disk_bytes) == conventions.meta_bytes(int(disk_bytes))
    assert drbd_meta_bytes(disk_bytes, 32 * MIB) == conventions.meta_bytes(int(disk_bytes), 32 * MIB)


def test_drbd_meta_bytes_known_values():
    # what the provision role's Jinja formula gave for 256 MiB, 1 GiB and 1 TiB disks
    assert [drbd_meta_bytes(256 * MIB), drbd_meta_bytes(GIB), drbd_meta_bytes(1024 * GIB)] == [
        4 * MIB, 4 * MIB, 36 * MIB]


def test_round_up():
    assert round_up(1) == 4 * MIB
    assert round_up(1000 * MIB, 32 * MIB) == 1024 * MIB
    assert round_up("1025", "512") == 1536


@pytest.mark.parametrize("value", [-1, 1.5, "1G", "", "12 34", True, None, [1]])
@pytest.mark.parametrize("fil", [drbd_meta_bytes, round_up])
def test_bad_sizes_fail_clearly(fil, value):
    with pytest.raises(AnsibleFilterError, match="must be a whole number of bytes"):
        fil(value)
    with pytest.raises(AnsibleFilterError, match="extent_bytes must be a whole number of bytes"):
        fil(GIB, value)


@pytest.mark.parametrize("fil", [drbd_meta_bytes, round_up])
def test_extent_must_be_more_than_0(fil):
    with pytest.raises(AnsibleFilterError, match="extent_bytes must be more than 0"):
        fil(GIB, 0)
