"""Check, in a real headless Chromium, that every figure of a report.html actually renders offline.

Why: a report can be valid HTML yet show blank boxes (plotly.js missing or blocked, a JS error, a
figure with no data); only a browser running the page tells. We let Chromium run the scripts
(``--dump-dom`` after a virtual-time budget) and read the DOM it produced: plotly marks each drawn
graph div with the class ``js-plotly-plot`` and fills it with ``svg.main-svg`` layers holding one
``g.trace`` per drawn trace. A figure passes when its div got that class, at least one main-svg and
at least one trace. Needs Chromium (Debian: ``apt-get install -y chromium``); no network is used.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Flags that work headless as root in containers, without a GPU, a D-Bus session or the network.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def find_browser() -> str | None:
    """Path of a Chromium/Chrome on PATH, or None."""
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def _run_browser(args: list[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium/Chrome found (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="slobench-chromium-") as profile:
        return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], check=True,
                              capture_output=True, text=True, timeout=timeout_s)


def dump_dom(page: Path, *, budget_ms: int = 10_000, timeout_s: float = 120) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    out = _run_browser([f"--virtual-time-budget={budget_ms}", "--dump-dom", Path(page).resolve().as_uri()],
                       timeout_s=timeout_s)
    return out.stdout


def screenshot(page: Path, png: Path, *, width: int = 1400, height: int = 2400, budget_ms: int = 10_000,
               timeout_s: float = 120) -> Path:
    """Render ``page`` to ``png``; raise RuntimeError with one line when that fails."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    _run_browser([f"--virtual-time-budget={budget_ms}", f"--screenshot={png.resolve()}",
                  f"--window-size={width},{height}", Path(page).resolve().as_uri()], timeout_s=timeout_s)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"browser ran but wrote no screenshot to {png}")
    return png


@dataclass(frozen=True)
class FigureRender:
    """What the browser produced for one figure div."""

    fig_id: str
    plotted: bool  # the div got plotly's js-plotly-plot class
    svgs: int  # svg.main-svg layers inside it
    traces: int  # g.trace groups (one per drawn trace)

    @property
    def ok(self) -> bool:
        return self.plotted and self.svgs >= 1 and self.traces >= 1


_OPEN_DIV = r'<div\b[^>]*\bid="{id}"[^>]*>'


def figure_ids(source_html: str) -> list[str]:
    """The figure divs a report declares (``<div id="fig-...">``), in page order."""
    return list(dict.fromkeys(re.findall(r'<div\b[^>]*\bid="(fig-[^"]+)"', source_html)))


def check_dom(source_html: str, dom: str) -> list[FigureRender]:
    """One `FigureRender` per figure div declared in ``source_html``, read from the rendered ``dom``."""
    ids = figure_ids(source_html)
    starts = []
    for fig_id in ids:
        m = re.search(_OPEN_DIV.format(id=re.escape(fig_id)), dom)
        starts.append((m.start(), m.group(0)) if m else (None, ""))
    found = sorted(s for s, _ in starts if s is not None)
    out = []
    for fig_id, (start, tag) in zip(ids, starts, strict=True):
        if start is None:
            out.append(FigureRender(fig_id, False, 0, 0))
            continue
        end = next((s for s in found if s > start), len(dom))
        seg = dom[start:end]
        out.append(FigureRender(fig_id, "js-plotly-plot" in tag, seg.count('class="main-svg"'),
                                len(re.findall(r'<g class="trace[ "]', seg))))
    return out


def check_report(report: Path, *, budget_ms: int = 10_000) -> list[FigureRender]:
    """Open ``report`` in headless Chromium and check every declared figure rendered."""
    report = Path(report)
    return check_dom(report.read_text(encoding="utf-8"), dump_dom(report, budget_ms=budget_ms))
