# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The health of a raid1 VM's pair: each disk a RAID1 in the guest of two legs on two dom0s.

Pure: data in, verdict out. In: the legs of each disk (conventions.raid1_legs, with the guest's device of
each leg), the registered sanless.xen.xen_info result of every dom0 (with disk_exports: the storage facts of
diskexport.py) and the guest's md state of each disk (md.array_health, or None when the guest could not be
read). Out: per leg where it lives and whether its dom0, LV, export, the guest host's session and md agree
it is in the mirror; per disk and for the pair a state and, for a degraded one, its cause: the leg's dom0
down, its LV missing, its export missing, the session lost, or the leg failed in md.
"""

from __future__ import annotations

import os

from ansible_collections.sanless.xen.plugins.module_utils import conventions as conv
from ansible_collections.sanless.xen.plugins.module_utils import diskexport

# Causes of a leg out of the mirror, most basic first: the first that holds is the leg's cause.
HOST_DOWN = "host_down"
LV_MISSING = "lv_missing"
EXPORT_MISSING = "export_missing"
SESSION_LOST = "session_lost"
FAILED_IN_MD = "failed_in_md"
MISSING_IN_MD = "missing_in_md"
# A leg md rebuilds: not a fault, the pair is recovering.
REBUILDING = "rebuilding"
# Import states of a working session: iSCSI's session state, AoE's aoe-stat state.
_SESSION_UP = ("LOGGED_IN", "up")
# States of a pair and of a disk, worst first.
STATES = ("split", "failed", "degraded", "recovering", "unknown", "healthy")


def _answered(result):
    return isinstance(result, dict) and isinstance(result.get("host"), dict) and not result.get("failed") \
        and not result.get("unreachable")


def _label(host):
    try:
        return conv.host_label(host)
    except ValueError:
        return host


def running_on(vm, results):
    """The dom0s (that answered) where the domain of vm runs."""
    return sorted(host for host, result in results.items() if _answered(result)
                  and any(d.get("name") == vm for d in result.get("domains") or []))


def _facts(result):
    return (result.get("disk_exports") or {}) if _answered(result) else {}


def _own_path(result, host, path):
    """The owner's view of its own leg: its shared path entry there, or None."""
    for shared in _facts(result).get("shared_paths") or []:
        if shared["path"] == path and shared["owner"] == _label(host):
            return shared
    return None


def leg_verdict(leg, guest_host, results, exports, md_leg):
    """One leg: {host, vg, lv, path, vdev, local (on the guest's dom0), host_up, lv_present, export (the owner's
    export row, or None), session (the guest host's import row, or None), md (the leg's md status: in_sync,
    rebuilding, spare, faulty, missing; None: md not read), ok, cause (None, or one of the causes above),
    problem (what to print)}."""
    host = leg["host"]
    owner = results.get(host)
    up = _answered(owner)
    local = guest_host is not None and _label(guest_host) == _label(host)
    own = _own_path(owner, host, leg["path"]) if up else None
    export = next((row for row in exports if row["host"] == host and row["path"] == leg["path"]), None)
    session = None
    if guest_host is not None and not local:
        session = next((row for row in diskexport.import_table(results.get(guest_host), guest_host)
                        if row["path"] == leg["path"]), None)
    verdict = dict(leg, local=local, host_up=up, lv_present=bool(own and own["present"]) if up else None,
                   export=export, session=session, md=md_leg, ok=True, cause=None, problem=None)
    where = "%s's leg %s" % (host, leg["path"])

    def fault(cause, problem):
        verdict.update(ok=False, cause=cause, problem=problem)
        return verdict

    if not up:
        return fault(HOST_DOWN, "%s: %s is down (did not answer)" % (where, host))
    if not verdict["lv_present"]:
        return fault(LV_MISSING, "%s: no LV %s/%s on %s" % (where, leg["vg"], leg["lv"], host))
    if guest_host is not None and not local:
        if export is None or not export["running"]:
            return fault(EXPORT_MISSING, "%s: %s does not export it%s" % (
                where, host, " (its vblade does not run)" if export else ""))
        if session is None or not session["present"] or session["state"] not in _SESSION_UP:
            if session is None:
                state = "no shared path"
            elif not session["present"]:
                state = "no device"
            else:
                state = "%s %s" % (session["transport"] or "no session", session["state"] or "gone")
            return fault(SESSION_LOST, "%s: %s lost its import (%s)" % (where, guest_host, state))
    if md_leg == "faulty":
        return fault(FAILED_IN_MD, "%s: failed in the guest's md (faulty)" % where)
    if md_leg in ("missing", "spare"):
        return fault(MISSING_IN_MD, "%s: not in the guest's md mirror (%s)" % (where, md_leg))
    if md_leg == REBUILDING:
        verdict.update(ok=False, cause=REBUILDING, problem="%s: md rebuilds it" % where)
    return verdict


def _md_leg(array, vdev):
    """The md status of the leg the guest sees as vdev (xvdb, /dev/xvdb), 'missing' when md lacks it."""
    if array is None:
        return None
    name = os.path.basename(vdev or "")
    for leg in array["legs"]:
        if os.path.basename(leg["device"] or "") == name:
            return leg["status"]
    return "missing"


def disk_verdict(disk, guest_host, results, exports, array):
    """One disk: {disk, array (md state, None: not read), state, sync, legs: [leg_verdict], causes}."""
    legs = [leg_verdict(leg, guest_host, results, exports, _md_leg(array, leg.get("vdev"))) for leg in disk["legs"]]
    faults = [leg for leg in legs if not leg["ok"] and leg["cause"] != REBUILDING]
    in_mirror = [leg for leg in legs if leg["ok"] or leg["cause"] == REBUILDING]
    if array is not None and array["state"] == "failed":
        state = "failed"
    elif faults and not in_mirror:
        state = "failed"
    elif faults or (array is not None and array["degraded"] and array["state"] != "recovering"):
        state = "degraded"
    elif array is not None and array["state"] in ("recovering", "resyncing"):
        state = "recovering"
    elif array is None:
        state = "unknown"
    else:
        state = "healthy"
    causes = [{"host": leg["host"], "leg": leg["path"], "cause": leg["cause"], "problem": leg["problem"]}
              for leg in faults]
    if state == "degraded" and not causes:
        causes.append({"host": None, "leg": None, "cause": MISSING_IN_MD,
                       "problem": "md shows %s degraded (%s) with every leg in place" % (array["device"], array["map"])})
    return {"disk": disk["disk"], "array": array["state"] if array else None, "state": state,
            "sync": array["sync"] if array else None, "legs": legs, "causes": causes}


def pair_health(vm, disks, results, arrays=None):
    """The verdict of a raid1 VM: {vm, running_on, guest_host, state (split, failed, degraded, recovering, unknown,
    healthy: its worst disk's, or split when the guest runs on two dom0s), causes (every disk's), disks}.

    disks: [{"disk", "legs": [{host, vg, lv, path, vdev}]}]; results: dom0 -> registered xen_info result with
    disk_exports; arrays: disk -> md.array_health of its md array in the guest (a disk missing or None: not
    read)."""
    arrays = arrays or {}
    hosts = running_on(vm, results)
    guest_host = hosts[0] if len(hosts) == 1 else None
    exports = diskexport.export_table(results)
    verdicts = [disk_verdict(disk, guest_host, results, exports, arrays.get(disk["disk"])) for disk in disks]
    causes = [dict(cause, disk=d["disk"]) for d in verdicts for cause in d["causes"]]
    if len(hosts) > 1:
        state = "split"
        causes.insert(0, {"disk": None, "host": None, "leg": None, "cause": "split",
                          "problem": "%s runs on %s: both reach both legs, stop all but one now" % (vm, " and ".join(hosts))})
    elif not verdicts:
        state = "unknown"
    else:
        state = min((d["state"] for d in verdicts), key=STATES.index)
    return {"vm": vm, "running_on": hosts, "guest_host": guest_host, "state": state, "causes": causes,
            "disks": verdicts}
