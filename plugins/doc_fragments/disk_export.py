# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """Options of the disk export modules.

    C(sanless.xen.disk_export) for the exporting modules (iscsi_target, aoe_export), the LV they export;
    C(sanless.xen.disk_export.IMPORT) for the importing ones (iscsi_initiator, aoe_import), the LV that
    names the shared path C(/dev/sanless/<owner>/<vg>/<lv>).
    """

    DOCUMENTATION = r"""
options:
  vg:
    description: Volume group of the exported LV.
    type: str
    required: true
  lv:
    description: The exported LV.
    type: str
    required: true
"""

    IMPORT = r"""
options:
  owner:
    description: The exporting dom0's host name, for the shared path (with O(vg) and O(lv)).
    type: str
  vg:
    description: The exported LV's volume group on O(owner), for the shared path.
    type: str
  lv:
    description: The exported LV on O(owner), for the shared path.
    type: str
"""
