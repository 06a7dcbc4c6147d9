# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sanless.xen.vm_name test: is a string an acceptable VM name (see vm_name.yml)."""

from __future__ import annotations

from ansible_collections.sanless.xen.plugins.module_utils.conventions import is_vm_name


class TestModule(object):
    """sanless.xen tests."""

    def tests(self):
        return {"vm_name": is_vm_name}
