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
  - Writes O(content) to O(path) through the collection's one durable writer (a temporary file in the same folder,
    fsynced, renamed over O(path), then the folder fsynced), so that a power cut right after the task leaves the old
    file or the new one, never none or a part. The folder is made (mode C(0755)) when missing.
  - O(mode), O(owner), O(group) and the other file options are AnsibleModule's own (octal or symbolic modes, as
    C(ansible.builtin.copy) takes them). Without O(mode) a new file gets C(0644), whatever the umask (not as the
    text of O(mode) below says), and a file there keeps its mode. New text goes to a temporary file with the file's
    present permissions (C(0600) for a new file) that is given these options before its fsync and rename, so the file
    is never more open than it was or is asked to be, and with a mode that cannot be set it is not written. With the
    same text, they are set on the file, then the file is fsynced.
  - No change, and nothing written, when O(path) already holds O(content) with those attributes.
  - The watcher role keeps each dom0's boot id with it (C(STATE_DIR/watcher/boot_id)); C(ansible.builtin.copy)
    renames its file into place without an fsync, and a dom0 that lost power within the kernel's write-back delay
    after a pass booted without the file.
author:
  - sanless.xen developers (@sanless)
extends_documentation_fragment:
  - ansible.builtin.files
  - sanless.xen.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written; the result's C(changed) says whether O(path) would change.
  diff_mode:
    support: full
    details:
      - The file's text before and after (the headers give its mode), then the mode, owner and group that change.
options:
  path:
    description: The file.
    type: path
    required: true
  content:
    description: The whole text of the file (give the trailing newline, if any).
    type: str
    required: true
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
  description: The file's permissions after the run, in octal (in check mode, as they would be).
  returned: always, but in check mode for a file not there yet
  type: str
  sample: "0644"
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sanless.xen.plugins.module_utils.files import fsync_file, read_text, write_file_atomic


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
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path, content = module.params["path"], module.params["content"]
    file_args = module.load_file_common_arguments(module.params)
    try:
        before, before_mode = current(path)
    except (IOError, OSError, ValueError) as exc:  # a folder, unreadable, not text
        module.fail_json(msg="cannot read %s: %s" % (path, exc), path=path, error=str(exc))
    if file_args["mode"] is None and before is None:
        file_args["mode"] = "0644"  # a new file's mode, whatever the umask (a file there keeps its own)
    changed = before != content
    attr_diff = {}  # set_fs_attributes_if_different's: the mode, owner and group before and after

    def settle(tmp):
        """The attributes on the temporary file, which has path's permissions (0600 for a new file: no diff then)."""
        module.set_fs_attributes_if_different(dict(file_args, path=tmp), True, None if before is None else attr_diff)
    try:
        if before is None and module.check_mode:
            pass  # changed; no file to lstat for the attributes
        elif changed and not module.check_mode:
            write_file_atomic(path, content, 0o600 if before_mode is None else before_mode, before_rename=settle)
        else:
            changed = module.set_fs_attributes_if_different(file_args, changed, attr_diff)
            if changed and not module.check_mode:
                fsync_file(path)  # the same text: only a chmod or chown to keep
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write %s: %s" % (path, exc), path=path, error=str(exc),
                         errno=getattr(exc, "errno", None))
    if not module.check_mode:
        after_mode = os.stat(path).st_mode & 0o7777
    elif before is not None:
        after_mode = int(attr_diff.get("after", {}).get("mode", "%o" % before_mode), 8)
    else:
        after_mode = None
    result = {"changed": changed, "path": path}
    if after_mode is not None:
        result["mode"] = "%04o" % after_mode
    if module._diff:
        result["diff"] = [{"before_header": header(path, before_mode), "before": before or "", "after": content,
                           "after_header": header(path, after_mode) if after_mode is not None else path}]
        if attr_diff:
            result["diff"].append(attr_diff)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
