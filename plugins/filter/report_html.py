# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sanless.xen.report_html filter: the cluster document of sanless.xen.cluster_overview as one
self-contained HTML page (see report_html.yml).

The page is rendered here, on the controller, with a Jinja2 environment of its own whose
autoescaping is on: every value of the document (VM names come from users, errors from
remote hosts) reaches the page escaped. The page has inline CSS only, no script, and a
Content-Security-Policy that forbids loading anything, so opening it fetches nothing.
"""

from __future__ import annotations

import jinja2
from ansible.errors import AnsibleFilterError

from ansible_collections.sanless.xen.plugins.filter.report import gib

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Xen cluster report {{ doc.generated_at or "" }}</title>
<style>
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 20px; color: #1d2433; background: #f3f5f8; }
h1 { font-size: 22px; margin: 0 0 4px 0; }
h2 { font-size: 18px; margin: 24px 0 8px 0; }
h3 { font-size: 16px; margin: 0; }
h4 { font-size: 13px; margin: 12px 0 4px 0; color: #4a5468; }
.meta { color: #4a5468; font-size: 13px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 12px; }
.tile { background: #fff; border-radius: 6px; padding: 10px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.12); flex: 1 1 140px; }
.tile .label { font-size: 12px; color: #4a5468; }
.tile .big { font-size: 26px; font-weight: bold; }
.tile .small { font-size: 12px; }
.ok { color: #1a7f37; } .warn { color: #a35200; } .bad { color: #c62828; }
.hosts { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
.host { background: #fff; border-radius: 6px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.12);
        flex: 1 1 520px; max-width: 100%; box-sizing: border-box; }
.host.down { border-left: 6px solid #c62828; }
.host .sub { font-size: 12px; color: #4a5468; margin-top: 2px; }
.bar { display: flex; height: 16px; background: #dfe4ec; border-radius: 3px; overflow: hidden; margin: 3px 0; }
.bar span { display: block; height: 100%; }
.seg0 { background: #5b7fb8; } .seg1 { background: #2e8b57; } .seg2 { background: #9aa3ae; }
.segdisk { background: #7b5ea7; } .seghigh { background: #c62828; }
.figures { font-size: 12px; }
.key { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 8px; vertical-align: baseline; }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin-top: 4px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #e3e7ee; vertical-align: top; }
th { background: #eef1f6; font-weight: bold; }
td.num, th.num { text-align: right; }
.plan { background: #fff; border-radius: 6px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.12); }
ul.lines { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; padding-left: 18px; }
.foot { font-size: 11px; color: #4a5468; margin-top: 18px; }
</style>
</head>
<body>
{%- set t = doc.totals %}
{%- set plan = doc.plan %}
<h1>Xen cluster report</h1>
<div class="meta">Generated {{ doc.generated_at or "at an unknown time" }}; disk is the volume groups matching {{ doc.vg }}</div>

<div class="tiles">
  <div class="tile"><div class="label">Dom0s answering</div>
    <div class="big {{ 'ok' if t.hosts_ok == t.hosts else 'bad' }}">{{ t.hosts_ok }} / {{ t.hosts }}</div>
    <div class="small">{{ t.hosts_unreachable }} unreachable, {{ t.hosts_failed }} failed</div></div>
  <div class="tile"><div class="label">Guests</div><div class="big">{{ t.guests }}</div>
    <div class="small">{{ t.guest_vcpus }} vCPUs on {{ t.nr_cpus }} CPUs ({{ pct(t.cpu_alloc_pct) }})</div></div>
  <div class="tile"><div class="label">Memory used</div><div class="big {{ level(t.memory_used_pct) }}">{{ pct(t.memory_used_pct) }}</div>
    <div class="small">{{ t.used_memory_mib }} of {{ t.total_memory_mib }} MiB, {{ t.free_memory_mib }} MiB free</div></div>
  <div class="tile"><div class="label">Disk used</div><div class="big {{ level(t.disk_used_pct) }}">{{ pct(t.disk_used_pct) }}</div>
    <div class="small">{{ gib(t.disk_used_bytes) }} of {{ gib(t.disk_total_bytes) }} GiB, {{ gib(t.disk_free_bytes) }} GiB free</div></div>
  <div class="tile"><div class="label">Host failures tolerated</div>
  {%- if plan.available %}
    <div class="big {{ 'bad' if plan.tolerated_failures < 1 else 'ok' }}">
      {{- 'NONE' if plan.tolerated_failures < 0 else plan.tolerated_failures }}{{ '+' if plan.capped else '' }}</div>
    <div class="small">{{ plan.live_hosts | length }} live, {{ plan.offline_hosts | length }} offline dom0s</div>
  {%- else %}
    <div class="big warn">?</div><div class="small">no plan: {{ plan.error }}</div>
  {%- endif %}</div>
  <div class="tile"><div class="label">DRBD replicas healthy</div>
    <div class="big {{ 'ok' if t.replicas_healthy == t.replicas else 'bad' }}">{{ t.replicas_healthy }} / {{ t.replicas }}</div>
    <div class="small">Connected, UpToDate on both sides, nothing out of sync</div></div>
</div>

<h2>Dom0s</h2>
<div class="hosts">
{%- for h in doc.hosts %}
<div class="host{{ '' if h.status == 'ok' else ' down' }}" id="host-{{ loop.index }}">
  <h3>{{ h.host }} <span class="{{ 'ok' if h.status == 'ok' else 'bad' }}">{{ h.status | upper }}</span></h3>
  {%- if h.status != 'ok' %}
  <div class="sub bad">{{ h.error }}</div>
  {%- else %}
  <div class="sub">{{ h.hostname }}: Xen {{ h.xen_version }} ({{ h.toolstack }}),
    DRBD {{ h.drbd_version or "not loaded" }}, {{ h.guests }} guest{{ '' if h.guests == 1 else 's' }},
    {{ h.guest_vcpus }} guest vCPUs on {{ h.nr_cpus }} CPUs ({{ pct(h.cpu_alloc_pct) }})</div>

  <h4>Memory</h4>
  <div class="bar" title="memory">
    {%- for s in h.memory_segments %}<span class="seg{{ loop.index0 }}" style="width: {{ width(s.pct) }}%"></span>{% endfor -%}
  </div>
  <div class="figures">{{ h.used_memory_mib }} of {{ h.total_memory_mib }} MiB used ({{ pct(h.memory_used_pct) }}), {{ h.free_memory_mib }} MiB free:
    {%- for s in h.memory_segments %}<span class="key seg{{ loop.index0 }}"></span>{{ s.name }} {{ s.mib }} MiB{% endfor %}</div>

  <h4>Disk</h4>
  {%- for g in h.vgs %}
  <div class="bar" title="VG {{ g.name }}">
    <span class="{{ 'seghigh' if g.used_pct >= 90 else 'segdisk' }}" style="width: {{ width(g.used_pct) }}%"></span></div>
  <div class="figures">VG {{ g.name }}: {{ gib(g.used_bytes) }} of {{ gib(g.size_bytes) }} GiB used ({{ pct(g.used_pct) }}),
    {{ gib(g.free_bytes) }} GiB free, {{ g.lv_count }} LV{{ '' if g.lv_count == 1 else 's' }}</div>
  {%- else %}
  <div class="figures warn">no volume group matches {{ doc.vg }}</div>
  {%- endfor %}

  <h4>Guests</h4>
  {%- if h.vms %}
  <table>
    <tr><th>VM</th><th>ID</th><th>State</th><th class="num">MiB</th><th class="num">vCPUs</th><th>Storage</th><th>If {{ h.host }} fails</th></tr>
    {%- for vm in h.vms %}
    <tr><td>{{ vm.name }}</td><td>{{ vm.domid }}</td><td>{{ vm.state_names | join(", ") or vm.state }}</td>
      <td class="num">{{ vm.memory_mib }}</td><td class="num">{{ vm.vcpus }}</td>
      <td>{{ vm.storage or "-" }}{{ "" if vm.protected is not sameas false else " (unprotected)" }}</td>
      <td class="{{ 'ok' if vm.failover_target else ('bad' if (vm.on_host_failure or '').startswith('NOT') else '') }}">
        {{- vm.on_host_failure or "-" }}</td></tr>
    {%- endfor %}
  </table>
  {%- else %}
  <div class="figures">no guests</div>
  {%- endif %}

  {%- if h.replicas %}
  <h4>DRBD replicas</h4>
  <table>
    <tr><th>Minor</th><th>Resource</th><th>Roles</th><th>Connection</th><th>Disks</th><th>Sync</th><th>Health</th></tr>
    {%- for r in h.replicas %}
    <tr><td>{{ r.minor }}</td><td>{{ r.resource or "-" }}</td><td>{{ r.role }}/{{ r.peer_role }}</td><td>{{ r.cstate }}</td>
      <td>{{ r.disk }}/{{ r.peer_disk }}</td>
      <td>{% if r.sync_percent is not none %}{{ "%.1f" % r.sync_percent }}%
        {%- if r.sync_eta_s is not none %}, {{ r.sync_eta_s }} s left{% endif %}{% else %}-{% endif %}</td>
      <td class="{{ 'ok' if r.healthy else 'bad' }}">{{ "healthy" if r.healthy else r.problems | join("; ") }}</td></tr>
    {%- endfor %}
  </table>
  {%- endif %}
  {%- endif %}
</div>
{%- endfor %}
</div>

<h2>Failure tolerance and failover plan</h2>
<div class="plan">
{%- if plan.available %}
  <p><b>{{ plan.summary[0] if plan.summary else "" }}</b></p>
  {%- if plan.failover %}
  <table>
    <tr><th>If this dom0 fails</th><th>Restarts</th><th>Not restarted</th><th>Unprotected, stay down</th></tr>
    {%- for host, f in plan.failover | dictsort %}
    <tr><td>{{ host }}</td>
      <td class="ok">{% for r in f.restarts %}{{ r.vm }} &rarr; {{ r.to }}{{ "" if loop.last else ", " }}{% else %}nothing to restart{% endfor %}</td>
      <td class="{{ 'bad' if f.not_restarted else '' }}">
        {%- for e in f.not_restarted %}{{ e.vm }} ({{ e.reason }}){{ "" if loop.last else ", " }}{% else %}-{% endfor %}</td>
      <td>{{ f.lost_unprotected | join(", ") or "-" }}</td></tr>
    {%- endfor %}
  </table>
  {%- endif %}
  <h4>The planner's summary</h4>
  <ul class="lines">
  {%- for line in plan.summary %}
    <li>{{ line }}</li>
  {%- endfor %}
  </ul>
{%- else %}
  <p class="warn">No failover plan: {{ plan.error }}</p>
{%- endif %}
</div>

<div class="foot">CPU% is the allocation of guest vCPUs to physical CPUs, not a load. Memory used is total - free as Xen
reports it (Domain-0 and Xen included). Host failures tolerated: every order of failures among the live dom0s checked
(XenServer's HA planner, exhaustive); a "+" means the search stopped at its limit. Sizes: MiB = 2^20, GiB = 2^30 bytes.</div>
</body>
</html>
"""


def _pct(value):
    return "%.0f%%" % (value or 0)


def _width(value):
    """A bar's width in percent, within 0..100 whatever the figures say."""
    return "%.2f" % min(max(float(value or 0), 0.0), 100.0)


def _level(value):
    return "bad" if (value or 0) >= 90 else "warn" if (value or 0) >= 75 else "ok"


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_ENV.globals.update(pct=_pct, width=_width, gib=lambda nbytes: "%.1f" % gib(nbytes), level=_level)
_PAGE = _ENV.from_string(TEMPLATE)


def report_html(report):
    """The document of sanless.xen.cluster_overview as one self-contained HTML page (a string)."""
    if not isinstance(report, dict) or report.get("report") != "cluster":
        raise AnsibleFilterError("report_html needs the document of sanless.xen.cluster_overview")
    try:
        return _PAGE.render(doc=report)
    except jinja2.UndefinedError as exc:
        raise AnsibleFilterError("report_html: the cluster document lacks %s" % (exc,))


class FilterModule(object):
    """sanless.xen HTML report filter."""

    def filters(self):
        return {"report_html": report_html}
