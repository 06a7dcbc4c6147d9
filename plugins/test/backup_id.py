# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sanless.xen.backup_id test: is a string a backup id, of a given VM (see backup_id.yml)."""

from __future__ import annotations

from ansible_collections.sanless.xen.plugins.module_utils.conventions import is_backup_id


class TestModule(object):
    """sanless.xen tests."""

    def tests(self):
        return {"backup_id": is_backup_id}
