"""The report's interactive RD plots: their data, the offline bundle, the static files
for papers, and the page driven in headless Chromium over the DevTools protocol."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

import harness.report as report_pkg
from harness.errors import HarnessError
from harness.report import build_report, interactive
from harness.report import plots as report_plots
from tests import test_report as _report
from tests.conftest import run_cli
from tests.test_report import _chromium, hand_curves, make_curve

# the real run's store and report (module fixtures: made again for this module)
real_store = _report.real_store
real_report = _report.real_report

# --- the data the page draws --------------------------------------------------------------


def _bd(rows):
    return pd.DataFrame(rows, columns=["dataset", "metric", "codec", "bd_rate"])


def test_default_selection_anchor_measured_classical_and_best_learned():
    curves = hand_curves()  # jpeg, webp measured; vtm, psnr_only published
    curves.append(make_curve("hm@published", "kodak", "published", [0.2, 0.5], [30.0, 33.0]))
    learned = [f"model{i}.paper@published" for i in range(7)]
    curves += [make_curve(name, "kodak", "published", [0.2, 0.5, 1.0], [30.0, 33.0, 36.0])
               for name in learned]
    # PSNR ranks model6 .. model3 best; MS-SSIM would rank model0 .. model3
    bd = _bd([("kodak", "psnr", name, 10.0 - 3 * i) for i, name in enumerate(learned)]
             + [("kodak", "ms-ssim", name, -50.0 + 3 * i) for i, name in enumerate(learned)]
             + [("kodak", "psnr", "psnr_only@published", float("nan")),
                ("other", "psnr", learned[0], -99.0)])
    data = interactive.figure_data(curves, {"kodak": "jpeg"}, bd)
    entries = {e["name"]: e for e in data["datasets"]["kodak"]["curves"]}
    shown = {name for name, e in entries.items() if e["shown"]}
    assert shown == {"jpeg (anchor)", "webp", "vtm@published", "hm@published",
                     *learned[3:]}
    assert set(entries) - shown == {"psnr_only@published", *learned[:3]}  # legend only
    assert list(entries)[0] == "jpeg (anchor)"  # listed first, drawn black and thick
    assert entries["jpeg (anchor)"]["color"] == "rgb(0,0,0)"
    assert entries["jpeg (anchor)"]["width"] > entries["webp"]["width"]
    assert entries["vtm@published"]["dash"] == "dash"
    assert entries["vtm@published"]["symbol"].endswith("-open")
    assert entries["webp"]["x"] == [0.25, 0.5, 1.0] and entries["webp"]["q"] == [0.0, 1.0, 2.0]
    assert data["log"] is False


def test_metric_selector_offers_every_metric_the_curves_hold():
    curves = hand_curves()
    extra = curves[0].points.assign(vif=[0.5, 0.6, float("nan")])  # a metric of the store
    curves[0] = make_curve("jpeg", "kodak", "measured", [0.3, 0.6, 1.2], [28.0, 31.0, 34.0],
                           [10.0, 13.0, 16.0])
    object.__setattr__(curves[0], "points", extra)
    data = interactive.figure_data(curves, {"kodak": "jpeg"}, _bd([]), log_rate=True)
    kodak = data["datasets"]["kodak"]
    assert kodak["metrics"] == [["psnr", "PSNR (dB)"], ["ms_ssim_db", "MS-SSIM (dB)"],
                                ["ms_ssim", "MS-SSIM"], ["vif", "vif"]]
    entries = {e["name"]: e for e in kodak["curves"]}
    assert entries["jpeg (anchor)"]["y"]["vif"] == [0.5, 0.6, None]  # NaN: null in JSON
    assert "vif" not in entries["webp"]["y"]
    assert set(entries["psnr_only@published"]["y"]) == {"psnr"}
    assert data["log"] is True
    # the JSON block parses back, and no value in it can end the script element
    curves[1] = make_curve("</script><b>", "kodak", "measured", [0.2, 0.4], [29.0, 31.0])
    block = interactive.page_scripts(interactive.figure_data(curves, {}, _bd([])))
    body = re.search(r'id="rd-data">(.*?)</script>', block).group(1)
    assert "</script><b>" in {e["name"] for e in
                              json.loads(body)["datasets"]["kodak"]["curves"]}
    assert '<script src="plotly.min.js"></script>' in block


# --- the bundle: one file in the report folder, written only when missing or different ----

def test_bundle_is_linked_from_the_previous_report_or_copied(tmp_path, monkeypatch):
    source = interactive.bundle_source()
    first, second, third = (tmp_path / n for n in ("a", "b", "c"))
    for folder in (first, second, third):
        folder.mkdir()
    copy = interactive.write_bundle(first)
    assert copy.read_bytes() == source.read_bytes()
    assert copy.stat().st_ino != source.stat().st_ino
    linked = interactive.write_bundle(second, previous=first)
    assert linked.stat().st_ino == copy.stat().st_ino  # nothing written again
    copy.unlink()
    copy.write_text("an older plotly")
    fresh = interactive.write_bundle(third, previous=first)
    assert fresh.stat().st_ino != copy.stat().st_ino
    assert fresh.read_bytes() == source.read_bytes()

    # a new plotly or page script renders the report again
    sources = report_pkg.render_sources()
    assert source in sources and interactive.SCRIPT in sources

    monkeypatch.setattr(interactive.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(HarnessError, match=r"pip install 'plotly>=5.0'"):
        interactive.write_bundle(tmp_path)


# --- the report folder --------------------------------------------------------------------

def test_report_page_references_only_files_of_its_folder(real_report):
    page = (real_report / "index.html").read_text()
    assert page.count('src="plotly.min.js"') == 1  # referenced, not inlined
    assert len(page) < 300_000
    assert (real_report / "plotly.min.js").read_bytes() == \
        interactive.bundle_source().read_bytes()
    manifest = json.loads((real_report / "report.json").read_text())
    assert "plotly.min.js" in manifest["files"] and manifest["log_rate"] is False
    for link in re.findall(r'(?:src|href)="([^"#][^"]*)"', page):
        assert "://" not in link and not link.startswith("//"), link
        assert (real_report / link).is_file(), link
    data = json.loads(re.search(r'id="rd-data">(.*?)</script>', page).group(1))
    (dataset,) = data["datasets"]
    names = [e["name"] for e in data["datasets"][dataset]["curves"]]
    assert names == ["jpeg (anchor)", "webp"]
    assert page.count('<figure class="rd" id=') == 2
    for metric in ("psnr", "ms-ssim"):
        pdf = real_report / "plots" / f"{report_plots.slug(dataset)}_{metric}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5_000
        assert f'href="plots/{pdf.name}"' in page


def test_log_rate_option_of_the_static_and_interactive_plots(real_store, tmp_path):
    fig = report_plots.rd_figure(hand_curves(), "psnr", anchor="jpeg", log_rate=True)
    assert fig.axes[0].get_xscale() == "log"
    fig = report_plots.rd_figure(hand_curves(), "psnr", anchor="jpeg")
    assert fig.axes[0].get_xscale() == "linear"

    out = tmp_path / "report"
    build_report(real_store, out, anchor="jpeg")
    linear = {p.name: p.read_bytes() for p in (out / "plots").glob("*.pdf")
              if "per_image_bd" not in p.name}  # the RD plots (BD-rate per image has no bpp)
    # the same folder again with log_rate: the option is part of the content hash
    build_report(real_store, out, anchor="jpeg", log_rate=True)
    assert json.loads((out / "report.json").read_text())["log_rate"] is True
    assert '"log":true' in (out / "index.html").read_text()
    logged = {p.name: p.read_bytes() for p in (out / "plots").glob("*.pdf")
              if "per_image_bd" not in p.name}
    assert set(logged) == set(linear) and len(linear) == 2
    assert all(logged[name] != linear[name] for name in linear)

    done = run_cli("report", "--store", str(real_store), "--out", str(tmp_path / "cli"),
                   "--log-rate")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "cli" / "report.json").read_text())["log_rate"] is True


# --- the page in a real browser, driven over the DevTools protocol ------------------------

class Browser:
    """Headless Chromium and a tiny Chrome DevTools Protocol client on one page.

    Every console error, uncaught exception, failed request and request that leaves
    the report folder is collected in ``problems``.
    """

    def __init__(self, profile: Path, allowed: str):
        from tornado.websocket import websocket_connect

        self.connect = websocket_connect
        self.allowed = allowed
        self.problems: list[str] = []
        self.events: list[dict] = []
        self.next_id = 0
        self.process = subprocess.Popen(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and self.process.poll() is None, "no browser"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self.url = pages[0]["webSocketDebuggerUrl"]

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    async def open(self):
        self.ws = await self.connect(self.url, max_message_size=64 << 20)
        for domain in ("Runtime", "Log", "Network", "Page"):
            await self.call(f"{domain}.enable")

    def _note(self, event: dict):
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.problems.append(f"console: {params['args']}")
        elif method == "Runtime.exceptionThrown":
            self.problems.append(f"exception: {params['exceptionDetails']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.problems.append(f"log: {params['entry']['text']}")
        elif method == "Network.loadingFailed":
            self.problems.append(f"failed request: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not (url.startswith(self.allowed) or url.startswith("data:")):
                self.problems.append(f"request outside the report: {url}")
        self.events.append(event)

    async def _read(self, timeout: float) -> dict:
        message = await asyncio.wait_for(self.ws.read_message(), timeout)
        assert message is not None, "the browser closed the connection"
        return json.loads(message)

    async def call(self, method: str, **params):
        self.next_id += 1
        ident = self.next_id
        await self.ws.write_message(json.dumps({"id": ident, "method": method,
                                                "params": params}))
        while True:
            message = await self._read(60)
            if message.get("id") == ident:
                assert "error" not in message, message["error"]
                return message["result"]
            self._note(message)

    async def wait_event(self, method: str, timeout: float = 60):
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while True:
            message = await self._read(max(0.1, deadline - time.monotonic()))
            self._note(message)
            if message.get("method") == method:
                return

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def settle(self, seconds: float):
        """Let the page run (plotly waits out its double-click delay) while collecting."""
        await self.js(f"new Promise(function (r) {{ setTimeout(r, {int(seconds * 1000)}); }})")

    async def click(self, x: float, y: float):
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                            clickCount=1)


def _needs_browser():
    if _chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, but CI must run the browser check")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    try:
        import tornado.websocket  # noqa: F401 (the DevTools client's websocket)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("tornado is not installed, but CI must run the browser check")
        pytest.skip("tornado is not installed (pip install -e '.[dev]')")


def _drive(folder: Path, profile: Path, steps) -> list[str]:
    """Open folder/index.html, run ``steps(browser)``, return the problems met."""
    browser = Browser(profile, folder.as_uri() + "/")

    async def session():
        await browser.open()
        await browser.call("Page.navigate", url=(folder / "index.html").as_uri())
        await browser.wait_event("Page.loadEventFired")
        await steps(browser)
        await browser.settle(0.3)

    try:
        asyncio.run(session())
    finally:
        browser.close()
    return browser.problems


PLOT = "document.querySelector('figure.rd .rd-plot')"
STATE = f"""(function () {{ var p = {PLOT};
  return {{drawn: p.querySelectorAll('.scatterlayer .trace').length,
          visible: p.data.map(function (t) {{ return t.visible; }}),
          names: p.data.map(function (t) {{ return t.name; }}),
          axis: p._fullLayout.xaxis.type,
          ytitle: p.querySelector('.g-ytitle').textContent,
          legend: Array.prototype.map.call(p.querySelectorAll('.legend .traces'),
            function (g) {{ return g.style.opacity; }})}}; }})()"""


def _centre(selector: str, index: int = 0) -> str:
    return f"""(function () {{ var r = {PLOT}.querySelectorAll({selector!r})[{index}]
  .getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()"""


def test_page_plots_respond_in_headless_chromium(real_report, tmp_path):
    _needs_browser()
    seen = {}

    async def steps(b: Browser):
        for _ in range(100):
            if await b.js("document.documentElement.getAttribute('data-rd-ready')"):
                break
            await b.settle(0.1)
        seen["start"] = await b.js(STATE)
        await b.js(f"{PLOT}.scrollIntoView()")
        # a click on the first legend entry hides its curve; a second shows it again
        await b.click(*await b.js(_centre(".legend .traces .legendtoggle")))
        await b.settle(0.8)
        seen["hidden"] = await b.js(STATE)
        await b.click(*await b.js(_centre(".legend .traces .legendtoggle")))
        await b.settle(0.8)
        seen["shown"] = await b.js(STATE)
        # hovering a point of the second curve names its codec, quality, bpp and value
        x, y = await b.js(_centre(".scatterlayer .trace:nth-child(2) .points path", 1))
        await b.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        await b.settle(0.5)
        seen["hover"] = await b.js(f"{PLOT}.querySelector('.hoverlayer').textContent")
        # another metric, then the log rate axis
        await b.js("(function () { var s = document.querySelector('figure.rd .rd-metric');"
                   " s.value = 'ms_ssim'; s.dispatchEvent(new Event('change')); })()")
        await b.settle(0.3)
        seen["metric"] = await b.js(STATE)
        await b.js("document.querySelector('figure.rd .rd-log').click()")
        await b.settle(0.3)
        seen["log"] = await b.js(STATE)
        seen["modebar"] = await b.js(
            f"Array.prototype.map.call({PLOT}.querySelectorAll('.modebar-btn'),"
            " function (a) { return a.getAttribute('data-val'); })")

    problems = _drive(real_report, tmp_path / "profile", steps)
    assert problems == []
    start, hidden, shown = seen["start"], seen["hidden"], seen["shown"]
    assert start["names"] == ["jpeg (anchor)", "webp"] and start["drawn"] == 2
    assert start["visible"] == [True, True] and start["ytitle"] == "PSNR (dB)"
    assert hidden["visible"] == ["legendonly", True] and hidden["drawn"] == 1
    assert float(hidden["legend"][0]) == pytest.approx(0.5)  # the entry is greyed out
    assert shown["visible"] == [True, True] and shown["drawn"] == 2
    assert "webp" in seen["hover"] and "quality 50" in seen["hover"], seen["hover"]
    assert "bpp" in seen["hover"] and "PSNR (dB)" in seen["hover"]
    assert seen["metric"]["ytitle"] == "MS-SSIM" and seen["metric"]["axis"] == "linear"
    assert seen["log"]["axis"] == "log" and seen["log"]["drawn"] == 2
    assert {"zoom", "pan"} <= set(seen["modebar"])


def test_crowded_plot_and_names_with_markup_in_headless_chromium(real_store, tmp_path):
    """A dataset of many curves gets plots of the page's width; a curve's name is shown
    as written, never read as markup (no link, no bold)."""
    _needs_browser()
    dataset = _report._photos_id(real_store)
    names = [f"<b>m{i}</b>" for i in range(11)] + ['<a href="https://example.com/">x</a>']
    extra = [make_curve(name, dataset, "imported", [0.2, 0.5, 1.0], [29.0 + i, 32.0 + i,
                                                                     35.0 + i])
             for i, name in enumerate(names)]
    out = build_report(real_store, tmp_path / "report", anchor="jpeg", extra_curves=extra)
    seen = {}

    async def steps(b: Browser):
        seen["wide"] = await b.js("document.querySelectorAll('figure.rd.wide').length")
        seen["legend"] = await b.js(f"{PLOT}.querySelector('.legend').textContent")
        seen["tags"] = await b.js(f"{PLOT}.querySelectorAll('.legend a, .legend b').length")

    assert _drive(out, tmp_path / "profile", steps) == []
    assert seen["wide"] == 2 and seen["tags"] == 0
    assert '<b>m3</b> [imported]' in seen["legend"]
    assert '<a href="https://example.com/">x</a> [imported]' in seen["legend"]


def test_browser_check_catches_a_missing_bundle(real_report, tmp_path):
    """The check above fails when the page cannot load what it needs."""
    _needs_browser()
    broken = tmp_path / "report"
    shutil.copytree(real_report, broken)
    (broken / "plotly.min.js").unlink()
    message = []

    async def steps(b: Browser):
        message.append(await b.js("document.querySelector('.rd-plot').textContent"))

    problems = _drive(broken, tmp_path / "profile", steps)
    assert any("failed request" in p for p in problems), problems
    assert "plotly.min.js is missing" in message[0]

