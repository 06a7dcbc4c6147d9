# -*- coding: utf-8 -*-
# Copyright (c) sanless.xen developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTML cluster report in headless Chromium, for the unit test (a page of recorded figures) and the lab test
(the lab's own page): a PNG reader (zlib only), a minimal WebDriver client of chromedriver, where the bars are."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
import zlib

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
CHROMEDRIVER = shutil.which("chromedriver")
# headless, offline and quiet: no GPU, no sandbox (root in CI), nothing fetched or synced, no first-run UI;
# each run also gets a new empty --user-data-dir
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--window-size=1200,1600"]


def png_pixels(data):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG, with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, {}
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.setdefault(kind, []).append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * step
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up = previous[i]
            corner = previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, step)])
        previous = line
    return width, height, rows


def hex_colour(value):
    return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))


NO_CHROMIUM = ("no chromium, chromium-browser or google-chrome on PATH: the page is not rendered in a browser "
               "(apt-get install chromium, or make unit as root: scripts/unit-deps.sh)")
NO_CHROMEDRIVER = "no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)"


# the bars: Domain-0 and guest memory, used disk, a VG's free part; the unreachable host's border
BAR_COLOURS = ("#5b7fb8", "#2e8b57", "#7b5ea7", "#dfe4ec")
UNREACHABLE_COLOUR = "#c62828"


def check_screenshot_colours(width, height, rows, colours=BAR_COLOURS + (UNREACHABLE_COLOUR,)):
    """The screenshot is the report: page background, white cards, text, the bars' colours."""
    counts = {}
    for row in rows:
        for pixel in row:
            counts[pixel] = counts.get(pixel, 0) + 1
    total = float(width * height)
    # the page's background around white cards, and text: dark pixels
    assert counts.get(hex_colour("#f3f5f8"), 0) > 0.05 * total, "no page background: not the report"
    assert counts.get(hex_colour("#ffffff"), 0) > 0.2 * total, "no cards"
    dark = sum(n for (r, g, b), n in counts.items() if r + g + b < 300)
    assert dark > 0.005 * total, "the page is nearly blank: %d dark pixels" % dark
    assert len(counts) > 50, "only %d colours: no text" % len(counts)
    for colour in colours:
        assert counts.get(hex_colour(colour), 0) > 150, "no %s area in the screenshot" % colour


def keep_screenshot(data):
    # SANLESS_XEN_SCREENSHOT=path keeps a copy to look at
    if os.environ.get("SANLESS_XEN_SCREENSHOT"):
        with open(os.environ["SANLESS_XEN_SCREENSHOT"], "wb") as handle:
            handle.write(data)


class WebDriver(object):
    """The few WebDriver calls (W3C protocol over HTTP, standard library only) to chromedriver that
    the test below needs: a headless session, a page, a script's value, a screenshot."""

    def __init__(self, profile):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen([CHROMEDRIVER, "--port=%d" % self.port], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.session = ""
        deadline = time.time() + 60
        while True:
            try:
                if self.call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            assert time.time() < deadline and self.proc.poll() is None, "chromedriver did not start"
            time.sleep(0.2)
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": CHROMIUM_FLAGS + ["--user-data-dir=" + profile]}}
        self.session = "/session/" + self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def call(self, method, path, body=None):
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read().decode())["value"]

    def open(self, url):
        self.call("POST", self.session + "/url", {"url": url})

    def script(self, source):
        return self.call("POST", self.session + "/execute/sync", {"script": source, "args": []})

    def screenshot(self):
        return base64.b64decode(self.call("GET", self.session + "/screenshot"))

    def close(self):
        try:
            if self.session:
                self.call("DELETE", self.session)
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)


# Where each bar and figure line is on the page, and the text the browser shows (hidden text is not in innerText).
LAYOUT_JS = """
return {text: document.body.innerText, dpr: window.devicePixelRatio,
        bars: Array.from(document.querySelectorAll('div.bar')).map(function (bar) {
          var r = bar.getBoundingClientRect();
          var host = bar.closest('.host').querySelector('h3').firstChild.textContent.trim();
          return {host: host, title: bar.title, x: r.left, y: r.top, w: r.width, h: r.height,
                  segs: Array.from(bar.children).map(function (s) {
                    return {cls: s.className, w: s.getBoundingClientRect().width}; })}; })};
"""


def colour_runs(row, x0, x1):
    """[(colour, length)] of the pixels of one screenshot row between x0 and x1."""
    runs = []
    for pixel in row[x0:x1]:
        if runs and runs[-1][0] == pixel:
            runs[-1][1] += 1
        else:
            runs.append([pixel, 1])
    return [tuple(run) for run in runs]


def bar_runs(rows, width, height, shown, scale):
    """(x0, x1, colour runs) of a bar of LAYOUT_JS (shown) on the screenshot's pixel row through its middle."""
    y = int((shown["y"] + shown["h"] / 2) * scale)
    x0, x1 = int(round(shown["x"] * scale)), int(round((shown["x"] + shown["w"]) * scale))
    assert 0 <= y < height and x1 <= width, "bar of %s off the screenshot" % shown["host"]
    return x0, x1, colour_runs(rows[y], x0, x1)


def shoot(page, profile):
    """The page (a path) in headless Chromium through chromedriver: (layout of LAYOUT_JS, width, height, pixel
    rows of its screenshot); SANLESS_XEN_SCREENSHOT keeps the screenshot."""
    driver = WebDriver(profile)
    try:
        driver.open(page.as_uri())
        layout = driver.script(LAYOUT_JS)
        data = driver.screenshot()
    finally:
        driver.close()
    keep_screenshot(data)
    return (layout,) + png_pixels(data)
