"""Open a report.html in headless Chromium, check every figure rendered, optionally save a screenshot.

Why: a report can be valid HTML yet show blank boxes (plotly.js missing, a JS error); only a browser
tells. The check (slobench.report.render_check) counts, per figure div, plotly's rendered markers
(``.js-plotly-plot``, ``svg.main-svg``, ``g.trace``) in the DOM Chromium produced. Needs Chromium:
``apt-get install -y chromium``. tests/test_report_render.py runs the same check under pytest.

Usage: python scripts/check_report_renders.py results/<run>/report.html [docs/report-screenshot.png]
Exit: 0 every figure rendered; 1 a figure did not render (listed); 2 usage or no browser.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from slobench.report.render_check import check_report, find_browser, screenshot


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-2])
        return 2
    report = Path(argv[1])
    if not report.is_file():
        print(f"error: {report}: not a file")
        return 2
    if find_browser() is None:
        print("error: no Chromium/Chrome found (Debian: apt-get install -y chromium)")
        return 2
    try:
        figures = check_report(report)
        if len(argv) == 3:
            out = screenshot(report, Path(argv[2]))
            print(f"screenshot: {out} ({out.stat().st_size // 1024} KiB)")
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"error: {str(exc).splitlines()[0]}")
        return 2
    for f in figures:
        print(f"{'ok  ' if f.ok else 'FAIL'} {f.fig_id}: plotted={f.plotted} svg.main-svg={f.svgs} traces={f.traces}")
    bad = [f for f in figures if not f.ok]
    if not figures:
        print(f"FAIL: {report} declares no figure divs")
        return 1
    print(f"{len(figures) - len(bad)}/{len(figures)} figures rendered in headless Chromium")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
