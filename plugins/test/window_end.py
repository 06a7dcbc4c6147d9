# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sanless.xen.window_end test: is a string the end of a maintenance window, HH:MM (see window_end.yml)."""

from __future__ import annotations

from ansible_collections.sanless.xen.plugins.module_utils.conventions import is_window_end


class TestModule(object):
    """sanless.xen tests."""

    def tests(self):
        return {"window_end": is_window_end}
