#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: state_file
short_description: Keep a small state file on a dom0, durably (the watcher's boot id)
version_added: 0.1.0
description:
  - Writes O(content) to O(path) with O(mode) through the collection's one durable writer (a temporary file in the
    same folder, fsynced, renamed over O(path), then the folder fsynced), so that a power cut right after the task
    leaves the old file or the new one, never none or a part. The folder is made (mode C(0755)) when missing.
  - No change, and nothing written, when O(path) already holds O(content) with O(mode).
  - The watcher role keeps each dom0's boot id with it (C(STATE_DIR/watcher/boot_id)); C(ansible.builtin.copy)
    renames its file into place without an fsync, and a dom0 that lost power within the kernel's write-back delay
    after a pass booted without the file.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - sanless.xen.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written; the result's C(changed) says whether O(path) would change.
  diff_mode:
    support: full
    details:
      - The file's text before and after; the headers give its mode.
options:
  path:
    description: The file.
    type: path
    required: true
  content:
    description: The whole text of the file (give the trailing newline, if any).
    type: str
    required: true
  mode:
    description: The file's permissions, as an octal string (V('0644')); set whatever the umask.
    type: raw
    default: '0644'
"""

EXAMPLES = r"""
- name: Read the dom0
  sanless.xen.xen_info:
  register: info

- name: Keep its boot id (a new one next time means a reboot)
  sanless.xen.state_file:
    path: /var/lib/sanless-xen/watcher/boot_id
    content: "{{ info.boot_id }}\n"
    mode: "0644"
  when: info.boot_id is not none
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
  sample: /var/lib/sanless-xen/watcher/boot_id
mode:
  description: The file's permissions after the run (in check mode, as they would be).
  returned: always
  type: str
  sample: "0644"
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils.files import read_text, write_file_atomic


def parse_mode(value):
    """The permission bits of the mode option: an octal string (0644) or the number YAML made of an unquoted one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    text = str(value).strip()
    if len(text) in (3, 4) and all(c in "01234567" for c in text):
        return int(text, 8)
    raise ValueError("invalid mode %r: octal permissions such as '0644'" % (value,))


def current(path):
    """(text, permission bits) of path; (None, None) when there is no file."""
    text = read_text(path)
    if text is None:
        return None, None
    return text, os.stat(path).st_mode & 0o7777


def header(path, mode):
    return "%s (%s)" % (path, "absent" if mode is None else "mode %04o" % mode)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            content=dict(type="str", required=True),
            mode=dict(type="raw", default="0644"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    try:
        mode = parse_mode(p["mode"])
    except ValueError as exc:
        module.fail_json(msg=str(exc), path=path)
    try:
        before, before_mode = current(path)
    except (IOError, OSError, ValueError) as exc:  # a folder, unreadable, not text
        module.fail_json(msg="cannot read %s: %s" % (path, exc), path=path, error=str(exc))
    changed = before != p["content"] or before_mode != mode
    if changed and not module.check_mode:
        try:
            write_file_atomic(path, p["content"], mode)
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot write %s: %s" % (path, exc), path=path, error=str(exc),
                             errno=getattr(exc, "errno", None))
    result = {"changed": changed, "path": path, "mode": "%04o" % mode}
    if module._diff:
        result["diff"] = {"before_header": header(path, before_mode), "after_header": header(path, mode),
                          "before": before or "", "after": p["content"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
