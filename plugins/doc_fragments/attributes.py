# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """Declared check mode / diff mode support of sanless.xen modules.

    Use C(sanless.xen.attributes) for the attribute descriptions, plus one of the
    fragments below that states this module's support.
    """

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying the dom0.
  diff_mode:
    description: Will return details on what has changed (or would change in C(check_mode)), when in diff mode.
  platform:
    description: Target operating system and hypervisor.
    support: full
    platforms: posix
"""

    # Modules that only read the dom0.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
"""

    # Modules that change the dom0 and predict the change in check mode.
    CHANGES_STATE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - Commands that would change the dom0 are not run; the module lists them in C(would_run).
  diff_mode:
    support: full
"""

    # Modules that move a domain between dom0s: check mode runs the read-only prechecks only.
    MIGRATES = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - The prechecks run (they only read); the migration does not, and is listed in C(would_run).
  diff_mode:
    support: none
    details:
      - The change is where the domain runs; RV(msg) and RV(target_state) say it.
"""
