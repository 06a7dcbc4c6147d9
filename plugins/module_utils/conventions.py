# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's conventions, in one place: names, sizes and state paths.

Modules, filters, tests and roles all use these (roles through the filters and tests that wrap
them), so that a VM name accepted in one place is accepted everywhere, and a metadata LV is
the same size whoever creates it. Pure: no commands, no I/O.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time

# --------------------------------------------------------------------------- names

# A VM name becomes a domain name, a file name (journal, lock, /etc/xen/auto) and part of LV
# and DRBD resource names: no spaces, shell metacharacters or path separators.
VM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
VM_NAME_RE = re.compile(VM_NAME_PATTERN)
VM_NAME_RULE = ("VM names are 1 to 64 letters, digits, _ . or -, starting with a letter or a digit (%s)"
                % VM_NAME_PATTERN)

# Host names as DNS has them (RFC 1123 labels), optionally with a final dot.
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                         r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z")
# The zone of a scoped IPv6 address (fe80::1%eth0): an interface name or number. ipaddress
# takes anything after the %, spaces and $(...) included.
_IPV6_ZONE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}\Z")


def is_vm_name(name):
    return isinstance(name, str) and bool(VM_NAME_RE.match(name)) and not name.endswith("\n")


def check_vm_name(name):
    """Return name if it is a valid VM name, else raise ValueError saying why."""
    if not is_vm_name(name):
        raise ValueError("invalid VM name %r: use 1-64 letters, digits, '_', '.' or '-', starting with a letter "
                         "or digit (no spaces, shell metacharacters or path separators)" % (name,))
    return name


def is_address(value):
    """A host name or an IPv4/IPv6 address, nothing a shell or ssh could read as more."""
    if not isinstance(value, str) or not value or len(value) > 253 or value.startswith("-"):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return bool(HOSTNAME_RE.match(value))
    return "%" not in value or bool(_IPV6_ZONE_RE.match(value.partition("%")[2]))


def check_address(value, what="address"):
    """Return value if it is a host name or an IP address, else raise ValueError saying why."""
    if not is_address(value):
        raise ValueError("invalid %s %r: want a host name or an IP address (letters, digits, '.', '-', ':'; "
                         "no spaces or shell metacharacters)" % (what, value))
    return value


# --------------------------------------------------------------------------- state on the dom0s

STATE_DIR = "/var/lib/sanless-xen"    # journals and history (persistent)
LOCK_DIR = "/run/sanless-xen"         # flocks (tmpfs: a lock means nothing after a reboot)
# How long a module waits for the host lock (another export change, a migration claiming DRBD minors) before it fails.
HOST_LOCK_TIMEOUT_S = 600
# The flock every xl create of vm_restart and xen_domain runs under, one domain build at a time per dom0: a build
# loads the guest's kernel and ramdisk into dom0 memory, and two at once on a 384 MiB lab dom0 got one OOM-killed.
DOMAIN_BUILD_LOCK = "domain-build"
# How long a create waits for it: below the watcher's and failover's start timeout (300 s), so that a start still
# waiting fails with this reason rather than being cut off by async.
DOMAIN_BUILD_LOCK_TIMEOUT_S = 240
DRBD_CONF_DIR = "/etc/drbd.d"
XEN_AUTO_DIR = "/etc/xen/auto"        # a config here is the VM's ownership: xendomains starts it at boot


def migrations_dir(state_dir=STATE_DIR):
    return os.path.join(state_dir, "migrations")


def history_dir(state_dir=STATE_DIR):
    return os.path.join(state_dir, "history")


def drained_mark_path(state_dir=STATE_DIR):
    """The drained mark of a dom0: while it exists the host is being emptied or kept empty for maintenance,
    and no evacuation or placement picks it (xen_info reports it as drained; undrain removes it). Its
    content, JSON: what drained it (by), when (since, epoch seconds) and why (reason)."""
    return os.path.join(state_dir, "drained")


def backups_dir(state_dir=STATE_DIR):
    """Open backup journals (one per VM: VM.json), beside the migrations' (docs/backup.md)."""
    return os.path.join(state_dir, "backups")


def raid1_dir(state_dir=STATE_DIR):
    """Open raid1 repair journals (one per VM: VM.json, the VM's lock), on the dom0 where its guest runs."""
    return os.path.join(state_dir, "raid1")


def raid1_journal_path(vm, state_dir=STATE_DIR):
    return os.path.join(raid1_dir(state_dir), "%s.json" % check_vm_name(vm))


def raid1_history_path(vm, run_id, state_dir=STATE_DIR):
    """Where a closed raid1 repair journal is kept: history/VM-raid1-RUN.json, beside the migrations'."""
    if not isinstance(run_id, str) or not MIGRATION_ID_RE.match(run_id):
        raise ValueError("invalid run id %r: 1 to 32 lower-case letters or digits" % (run_id,))
    return os.path.join(history_dir(state_dir), "%s-raid1-%s.json" % (check_vm_name(vm), run_id))


def auto_config_path(vm, auto_dir=XEN_AUTO_DIR):
    return os.path.join(auto_dir, "%s.cfg" % check_vm_name(vm))


def parked_config_path(vm, state_dir=STATE_DIR):
    """Where a VM's config waits while ownership moves (out of /etc/xen/auto, so no boot starts it)."""
    return os.path.join(migrations_dir(state_dir), "%s.cfg" % check_vm_name(vm))


# --------------------------------------------------------------------------- DRBD

PORT_BASE = 7700          # a temporary resource's port is PORT_BASE + its minor
FIRST_MINOR = 10          # minors below are left to resources made by hand
MINOR_SPREAD = 1000       # temporary resources take minors FIRST_MINOR .. FIRST_MINOR + MINOR_SPREAD - 1
MAX_MINOR = 1048575       # DRBD minors are 20 bits
DRBD_BLOCK_MAJOR = 147

# DRBD 8.4 external metadata: 4 KiB superblock + 32 KiB activity log + 1 bit per 4 KiB of data,
# plus 1 MiB of slack, in whole extents.
META_FIXED_BYTES = 36 * 1024
DEFAULT_EXTENT_BYTES = 4 * 1024 * 1024

# A migration's id: it names journal history files (VM-ID.json).
MIGRATION_ID_RE = re.compile(r"^[a-z0-9]{1,32}\Z")


def meta_bytes(disk_bytes, extent_bytes=DEFAULT_EXTENT_BYTES):
    """Size of the external DRBD metadata LV for a disk, rounded up to whole extents."""
    need = META_FIXED_BYTES + (int(disk_bytes) + 32767) // 32768 + 1024 * 1024
    return round_up(need, extent_bytes)


def round_up(size_bytes, extent_bytes=DEFAULT_EXTENT_BYTES):
    """size_bytes rounded up to whole extents (what lvcreate allocates)."""
    extent_bytes = int(extent_bytes)
    if extent_bytes <= 0:
        raise ValueError("extent size must be positive, got %r" % (extent_bytes,))
    return -(-int(size_bytes) // extent_bytes) * extent_bytes


# --------------------------------------------------------------------------- LVM snapshots and stripes

# A classic snapshot's copy-on-write store (dm-snapshot persistent exception store, lvcreate -s
# without -c): a header chunk, then areas of one metadata chunk (16 bytes per data chunk it maps)
# followed by the data chunks it maps.
SNAPSHOT_CHUNK_BYTES = 4096
_COW_EXCEPTION_BYTES = 16


def cow_max_bytes(origin_bytes, extent_bytes=DEFAULT_EXTENT_BYTES, chunk_bytes=SNAPSHOT_CHUNK_BYTES):
    """The largest COW a snapshot of an origin can use, in whole extents: LVM silently shrinks a
    larger request to it ("Reducing COW size ... down to maximum usable size"), and N%ORIGIN is N %
    of it (lvm2 cow_max_extents; recorded: 68 MiB for a 64 MiB origin, 50%ORIGIN 36 MiB)."""
    chunks = -(-int(origin_bytes) // chunk_bytes)
    per_area = chunk_bytes // _COW_EXCEPTION_BYTES
    # +per_area: when chunks divides evenly, one more metadata chunk ends the store
    metadata_chunks = (chunks + per_area) // per_area
    return round_up((1 + metadata_chunks + chunks) * chunk_bytes, extent_bytes)


def snapshot_percent_bytes(percent, origin_bytes, extent_bytes=DEFAULT_EXTENT_BYTES):
    """The COW of lvcreate -s -l PERCENT%ORIGIN: PERCENT % of cow_max_bytes, rounded up to extents."""
    max_extents = cow_max_bytes(origin_bytes, extent_bytes) // int(extent_bytes)
    return -(-max_extents * int(percent) // 100) * int(extent_bytes)


# A backup's snapshot of a disk LV: the LV's name and this suffix, so a leftover one is found by
# name as well as by its origin (docs/backup.md). LVM allows '.' in LV names; VM disk LVs
# (vm_disk_lv) never end in it.
BACKUP_SNAPSHOT_SUFFIX = ".bksnap"


def backup_snapshot_name(lv):
    """The snapshot a backup takes of the LV lv: <lv>.bksnap."""
    name = _lvm_part(lv, "LV name") + BACKUP_SNAPSHOT_SUFFIX
    if len(name) > 127:
        raise ValueError("LV name %r is too long for its backup snapshot name %r (LVM takes 127 characters)" % (lv, name))
    return name


# A backup: its id (the VM and the UTC second it began), its folder at a file destination
# (BASE/VM/ID: one image per disk and the manifest, written last), and for a backup into a VG on
# the VM's dom0 one LV per disk (the disk's LV name, ".bk" and the time) with the manifest in the
# dom0's state folder.
BACKUP_ID_RE = re.compile(r"^(?P<vm>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})-(?P<stamp>[0-9]{8}T[0-9]{6}Z)\Z")
BACKUP_MANIFEST = "manifest.json"
BACKUP_IMAGE_SUFFIX = ".img.gz"
BACKUP_LV_MARK = ".bk"
# A destination folder: absolute, plain characters, no "." or ".." part (it becomes an argv item of
# dd/mkdir/sha256sum over ssh, which a remote shell reads: nothing it could expand).
_BACKUP_DIR_RE = re.compile(r"^(?:/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)+/?\Z")


def backup_id(vm, epoch):
    """web01-20261204T060000Z: the VM and the UTC second (epoch) the backup began."""
    return "%s-%s" % (check_vm_name(vm), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(int(epoch))))


WINDOW_END_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")


def is_window_end(value):
    """Whether value is the end of a maintenance window as the evacuate role reads it: HH:MM (UTC, 00:00-23:59)."""
    return isinstance(value, str) and bool(WINDOW_END_RE.match(value))


def seconds_to_window_end(value, now):
    """Seconds from ``now`` (a UTC datetime) to the next ``value`` (HH:MM, UTC): today's when it is still ahead, else
    tomorrow's (a window end equal to now is a whole day away). ValueError for anything but HH:MM."""
    if not is_window_end(value):
        raise ValueError("window end must be HH:MM (UTC), got %r" % (value,))
    hour, minute = value.split(":")
    left = int(hour) * 3600 + int(minute) * 60 - (now.hour * 3600 + now.minute * 60 + now.second)
    return left if left > 0 else left + 86400


def is_backup_id(value, vm=None):
    """Whether value is a backup id (of vm, when given)."""
    match = BACKUP_ID_RE.match(value) if isinstance(value, str) else None
    return bool(match) and (vm is None or match.group("vm") == vm)


def check_backup_id(value, vm=None):
    """Return value if it is a backup id (of vm, when given), else raise ValueError saying why."""
    if not is_backup_id(value, vm):
        raise ValueError("invalid backup id %r: want %s-YYYYmmddTHHMMSSZ (what backup.yml reports)"
                         % (value, vm if vm is not None else "VM"))
    return value


def check_backup_dir(path):
    """Return path (without a final /) if it is a usable destination folder, else raise ValueError."""
    if not isinstance(path, str) or not _BACKUP_DIR_RE.match(path) or len(path) > 1024 \
            or any(part in (".", "..") for part in path.split("/")):
        raise ValueError("invalid backup folder %r: an absolute path of letters, digits and _ . + - parts (no '..', "
                         "spaces or shell metacharacters)" % (path,))
    return path.rstrip("/") or "/"


def backup_folder(base, backup):
    """BASE/VM/ID: where a backup's images and manifest lie at a file destination."""
    match = BACKUP_ID_RE.match(check_backup_id(backup))
    return "/".join((check_backup_dir(base).rstrip("/"), match.group("vm"), backup))


def backup_image_name(lv):
    """The image file of a disk LV in a backup folder: <lv>.img.gz (gzip of the raw LV)."""
    return _lvm_part(lv, "LV name") + BACKUP_IMAGE_SUFFIX


def backup_lv_name(lv, backup):
    """The LV a backup into a VG holds a disk LV in: <lv>.bk<YYYYmmddTHHMMSSZ>."""
    stamp = BACKUP_ID_RE.match(check_backup_id(backup)).group("stamp")
    name = _lvm_part(lv, "LV name") + BACKUP_LV_MARK + stamp
    if len(name) > 127:
        raise ValueError("LV name %r is too long for its backup LV name %r (LVM takes 127 characters)" % (lv, name))
    return name


def backup_vg_manifest_path(backup, state_dir=STATE_DIR):
    """The manifest of a backup into a VG, on that dom0: backups/manifests/ID.json."""
    return os.path.join(backups_dir(state_dir), "manifests", "%s.json" % check_backup_id(backup))


def restores_dir(state_dir=STATE_DIR):
    """Open restore journals (one per new VM: NEW.json)."""
    return os.path.join(state_dir, "restores")


def is_backup_snapshot_name(name):
    return isinstance(name, str) and name.endswith(BACKUP_SNAPSHOT_SUFFIX) and len(name) > len(BACKUP_SNAPSHOT_SUFFIX)


def striped_round_up(size_bytes, extent_bytes=DEFAULT_EXTENT_BYTES, stripes=1):
    """The size lvcreate -i STRIPES allocates: whole extents on each stripe ("Rounding size ... up to
    stripe boundary size"; recorded: 64 MiB on 3 stripes of 4 MiB extents is 72 MiB)."""
    return round_up(size_bytes, int(extent_bytes) * max(1, int(stripes)))


# --------------------------------------------------------------------------- Xen memory

# What libxl adds to a domain's memory when it builds one (libxl_domain_need_memory, Xen 4.17):
# LIBXL_PV_EXTRA_MEMORY / LIBXL_HVM_EXTRA_MEMORY, and for HVM and PVH the shadow/p2m pool
# (libxl_get_required_shadow_memory: 4 KiB x (256 per vCPU + 2 per MiB of memory)) and, for
# HVM, the default 8 MiB of video RAM.
EXTRA_KIB = {"pv": 1024, "pvh": 2048, "hvm": 2048}
HVM_VIDEO_KIB = 8192


def domain_need_mib(memory_mib, vcpus=1, domain_type="pv"):
    """Free Xen memory (MiB) a host needs to receive or start a domain of memory_mib MiB."""
    need_kib = int(memory_mib) * 1024 + EXTRA_KIB.get(domain_type, 2048)
    if domain_type in ("pvh", "hvm"):
        need_kib += 4 * (256 * int(vcpus or 1) + 2 * int(memory_mib))
    if domain_type == "hvm":
        need_kib += HVM_VIDEO_KIB
    return (need_kib + 1023) // 1024


def drbd_device(minor):
    return "/dev/drbd%d" % int(minor)


def drbd_port(minor):
    """The port of the resource on a minor, unless one is given: PORT_BASE + minor."""
    return PORT_BASE + int(minor)


def drbd_majmin(minor):
    # dmsetup table prints underlying devices as MAJ:MIN
    return "%d:%d" % (DRBD_BLOCK_MAJOR, int(minor))


def migration_resource(vm, index):
    """The temporary DRBD resource of a VM's disk number index during a migration."""
    return "sl-%s-%d" % (check_vm_name(vm), int(index))


def meta_lv_name(lv):
    return "%s.drbdmeta" % lv


def clone_name(resource):
    """The dm device holding an LV's original table under a temporary DRBD resource."""
    return "%s.real" % resource


def lv_path(vg, lv):
    return "/dev/%s/%s" % (vg, lv)


def vm_disk_lv(vm, disk):
    """The LV of a VM's disk: <vm>-<disk name> (the provision role creates it under this name, the
    export role finds it by it)."""
    return "%s-%s" % (check_vm_name(vm), check_vm_name(disk))


def disk_of_vm_lv(vm, lv):
    """The disk name in an LV named by vm_disk_lv for vm (web01-data -> data), else None."""
    prefix = "%s-" % vm
    disk = lv[len(prefix):] if lv.startswith(prefix) else ""
    return disk if is_vm_name(disk) else None


def incoming_config_path(vm, state_dir=STATE_DIR):
    """Where the source sends a VM's config to its migration target, before the move."""
    return parked_config_path(vm, state_dir) + ".incoming"


def outgoing_config_path(vm, state_dir=STATE_DIR):
    """Where the source keeps, for xl migrate -C, a VM's config with its disks' paths on the target."""
    return parked_config_path(vm, state_dir) + ".outgoing"


# --------------------------------------------------------------------------- disk export (iSCSI, AoE)

# One iSCSI target per exporting dom0, its IQN derived from the host name; each exported LV is a
# LUN of it. The naming authority is the collection's, not the lab's domain.
ISCSI_IQN_PREFIX = "iqn.2026-12.xen.sanless"
ISCSI_PORT = 3260
# RFC 3720 iqn./eui. names; ':' separates the naming authority from the unique part. No spaces,
# quotes or shell metacharacters: IQNs become targetcli paths and tgtadm arguments.
IQN_RE = re.compile(r"^(?:iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[A-Za-z0-9.:_-]{1,200})?"
                    r"|eui\.[0-9A-Fa-f]{16})\Z")
# CHAP user names and secrets go through targetcli's and tgtadm's own argument parsers.
CHAP_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,254}\Z")
CHAP_SECRET_RE = re.compile(r"^[A-Za-z0-9_.@:+/=-]{12,128}\Z")
# Owner host names in device paths and IQNs: one DNS label, lower case.
_HOST_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")

# The path of an exported disk that every dom0 sees, the owner included:
# /dev/sanless/<owner>/<vg>/<lv>, a symlink to the local LV, the iSCSI by-path device or the AoE
# device. One guest config then works on every host.
SHARED_DEV_DIR = "/dev/sanless"
UDEV_RULES_DIR = "/etc/udev/rules.d"

# AoE: shelf = the exporting dom0's place in the sorted cluster host list (1-based), slot =
# the LV's export number on that shelf. Shelf 0xffff and slot 0xff are broadcast addresses.
AOE_MAX_SHELF = 65534
AOE_MAX_SLOT = 254
VBLADE_UNIT_PREFIX = "sanless-vblade"


def is_iqn(value):
    return isinstance(value, str) and bool(IQN_RE.match(value))


def check_iqn(value, what="IQN"):
    if not is_iqn(value):
        raise ValueError("invalid %s %r: want iqn.YYYY-MM.reversed.domain[:unique] (letters, digits, . - : _) "
                         "or eui. and 16 hex digits; no spaces or shell metacharacters" % (what, value))
    return value


def check_chap_user(value):
    if not isinstance(value, str) or not CHAP_USER_RE.match(value):
        raise ValueError("invalid CHAP user name %r: letters, digits and _ . @ : -, at most 255" % (value,))
    return value


def check_chap_secret(value):
    # The value itself is never put into the message: it is a secret.
    if not isinstance(value, str) or not CHAP_SECRET_RE.match(value):
        raise ValueError("invalid CHAP secret: 12 to 128 letters, digits or _ . @ : + / = - (RFC 3720 wants at "
                         "least 12 characters; some initiators take at most 16)")
    return value


def host_label(host):
    """The owner part of IQNs and shared device paths: the short host name, lower case."""
    label = host.split(".", 1)[0].lower() if isinstance(host, str) else None
    if not label or not _HOST_LABEL_RE.match(label):
        raise ValueError("invalid host name %r for an export: want a DNS label (letters, digits, -)" % (host,))
    return label


def target_iqn(host):
    """The iSCSI target of a dom0: iqn.2026-12.xen.sanless:<short host name>."""
    return "%s:%s" % (ISCSI_IQN_PREFIX, host_label(host))


def target_iqn_host(iqn):
    """The host label of a target IQN that target_iqn made, or None for any other IQN (an import of a target
    the collection did not make)."""
    prefix = ISCSI_IQN_PREFIX + ":"
    if not isinstance(iqn, str) or not iqn.startswith(prefix):
        return None
    label = iqn[len(prefix):]
    return label if _HOST_LABEL_RE.match(label) else None


def _lvm_part(value, what):
    # LVM's own name characters (lvm.check_name), repeated here to keep conventions free of imports.
    if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*\Z", value) \
            or value in (".", "..") or len(value) > 127:
        raise ValueError("invalid LVM %s %r: letters, digits and _ . + -, not starting with -; no spaces, shell "
                         "metacharacters or /" % (what, value))
    return value


def export_name(vg, lv):
    """The name of an LV's export (LIO backstore): VG and LV joined by '-', each '-' in them doubled,
    as device-mapper does, so that two different LVs never get one name (xenvg/rec0 -> xenvg-rec0)."""
    return "%s-%s" % (_lvm_part(vg, "VG name").replace("-", "--"), _lvm_part(lv, "LV name").replace("-", "--"))


def shared_disk_path(owner, vg, lv, base=SHARED_DEV_DIR):
    """/dev/sanless/<owner>/<vg>/<lv>: the one path of an exported LV on every dom0."""
    return "/".join((base, host_label(owner), _lvm_part(vg, "VG name"), _lvm_part(lv, "LV name")))


def parse_shared_disk_path(path, base=SHARED_DEV_DIR):
    """{"owner", "vg", "lv"} of a path shared_disk_path made, or None for any other path (a guest's
    disk on a shared path is one that storage mode shared migrates without copying it)."""
    if not isinstance(path, str) or not path.startswith(base + "/"):
        return None
    parts = path[len(base) + 1:].split("/")
    try:
        if len(parts) != 3 or shared_disk_path(parts[0], parts[1], parts[2], base) != path:
            return None
    except ValueError:
        return None
    return {"owner": parts[0], "vg": parts[1], "lv": parts[2]}


def shared_disk_link(owner, vg, lv):
    """The same path relative to /dev, as udev's SYMLINK+= wants it."""
    return shared_disk_path(owner, vg, lv, base="sanless")


def udev_rule_path(owner, vg, lv, rules_dir=UDEV_RULES_DIR):
    return os.path.join(rules_dir, "61-sanless-%s-%s.rules" % (host_label(owner), export_name(vg, lv)))


def aoe_shelf(host, hosts):
    """The AoE shelf of a dom0: its 1-based place in the sorted, de-duplicated cluster host list,
    so every dom0 computes the same shelf for the same owner."""
    labels = sorted(set(host_label(h) for h in hosts))
    label = host_label(host)
    if label not in labels:
        raise ValueError("host %s is not in the cluster host list %s" % (host, ", ".join(labels)))
    shelf = labels.index(label) + 1
    if shelf > AOE_MAX_SHELF:
        raise ValueError("too many hosts for AoE shelves")
    return shelf


def aoe_shelf_host(shelf, hosts):
    """The host label whose shelf aoe_shelf gives, or None when no host of the list has that shelf."""
    labels = sorted(set(host_label(h) for h in hosts))
    if isinstance(shelf, bool) or not isinstance(shelf, int) or not 1 <= shelf <= len(labels):
        return None
    return labels[shelf - 1]


def aoe_free_slot(used):
    """The lowest free AoE slot (1..254) given the slots in use on a shelf."""
    used = set(int(s) for s in used)
    for slot in range(1, AOE_MAX_SLOT + 1):
        if slot not in used:
            return slot
    raise ValueError("no free AoE slot: all %d are in use" % AOE_MAX_SLOT)


def check_aoe_address(shelf, slot):
    if isinstance(shelf, bool) or not isinstance(shelf, int) or not 0 <= shelf <= AOE_MAX_SHELF:
        raise ValueError("invalid AoE shelf %r: 0 to %d" % (shelf, AOE_MAX_SHELF))
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= AOE_MAX_SLOT:
        raise ValueError("invalid AoE slot %r: 0 to %d" % (slot, AOE_MAX_SLOT))
    return shelf, slot


def aoe_device(shelf, slot):
    """/dev/etherd/eSHELF.SLOT: the block device an AoE import appears as."""
    check_aoe_address(shelf, slot)
    return "/dev/etherd/e%d.%d" % (shelf, slot)


def vblade_unit_name(shelf, slot):
    check_aoe_address(shelf, slot)
    return "%s-%d-%d.service" % (VBLADE_UNIT_PREFIX, shelf, slot)


def shared_disk_rule(owner, vg, lv, match):
    """The udev rule that recreates /dev/sanless/<owner>/<vg>/<lv> at every boot. match: udev keys
    of the device ({"ENV{ID_PATH}": by-path name} for iSCSI, {"KERNEL": "etherd!e1.2"} for AoE,
    {"ENV{DM_VG_NAME}": vg, "ENV{DM_LV_NAME}": lv} for the owner's own LV)."""
    for key, value in match.items():
        if not re.match(r"^[A-Za-z0-9_{}]+\Z", key) or not re.match(r"^[A-Za-z0-9_.:!+@-]+\Z", value):
            raise ValueError("invalid udev match %s==%r" % (key, value))
    keys = ", ".join('%s=="%s"' % (key, match[key]) for key in sorted(match))
    return ("# Managed by sanless.xen: the shared path of %s's LV %s/%s\n"
            'SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", %s, SYMLINK+="%s"\n'
            % (host_label(owner), vg, lv, keys, shared_disk_link(owner, vg, lv)))


def local_lv_match(vg, lv):
    """udev keys of the owner's own LV (device-mapper sets them)."""
    return {"ENV{DM_VG_NAME}": _lvm_part(vg, "VG name"), "ENV{DM_LV_NAME}": _lvm_part(lv, "LV name")}


# --------------------------------------------------------------------------- guest RAID1 (storage mode raid1)

# A raid1 VM's disk is a RAID1 of two legs that md mirrors inside the guest: one LV on the home dom0, one on its
# partner. Both legs have the disk's LV name (vm_disk_lv) in their host's VG, and every dom0 reaches each leg on
# its shared path (the owner's own LV, or the export imported), so one guest config works on every dom0 and the
# owner of a leg is read from its path.
RAID1_LEGS = 2


def raid1_leg(vm, disk, host, vg):
    """One leg of a raid1 VM's disk: {host, vg, lv, path}, lv the disk's LV and path its shared path."""
    lv = vm_disk_lv(vm, disk)
    return {"host": host, "vg": _lvm_part(vg, "VG name"), "lv": lv, "path": shared_disk_path(host, vg, lv)}


def raid1_legs(vm, disk, hosts, vgs):
    """The legs of a raid1 VM's disk on its two dom0s (home first, then partner; vgs: their VGs, one each):
    the two hosts must differ, which is the point of the mirror."""
    hosts, vgs = list(hosts), list(vgs)
    if len(hosts) != RAID1_LEGS or len(vgs) != RAID1_LEGS:
        raise ValueError("a raid1 disk has %d legs: want %d hosts and VGs, got %r and %r"
                         % (RAID1_LEGS, RAID1_LEGS, hosts, vgs))
    if host_label(hosts[0]) == host_label(hosts[1]):
        raise ValueError("the legs of %s's disk %s are both on %s: a raid1 pair needs two dom0s"
                         % (vm, disk, hosts[0]))
    return [raid1_leg(vm, disk, host, vg) for host, vg in zip(hosts, vgs)]


def md_array_name(disk):
    """The name (mdadm --name) of the md array a raid1 VM's disk is in its guest: the disk's name."""
    name = check_vm_name(disk)
    if len(name) > 32:
        raise ValueError("invalid raid1 disk name %r: md array names have at most 32 characters" % (disk,))
    return name


# The guest's name of a Xen virtual disk: xvd and one to three letters (xvda .. xvdz, xvdaa ..), as the
# provision role accepts them and the repair picks a free one for a new leg.
VDEV_RE = re.compile(r"^xvd[a-z]{1,3}\Z")


def _vdev_number(vdev):
    number = 0
    for letter in vdev[3:]:
        number = number * 26 + ord(letter) - ord("a") + 1
    return number


def _vdev_name(number):
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return "xvd" + letters


def free_vdev(used):
    """The first xvd name after every one in used (the running guest's disks): a new leg never takes the name a
    detached disk had while the guest may still remember it."""
    numbers = [_vdev_number(v) for v in used if isinstance(v, str) and VDEV_RE.match(v)]
    return _vdev_name(max(numbers or [0]) + 1)
