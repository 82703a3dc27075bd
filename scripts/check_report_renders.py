"""Screenshot a report.html with headless Chromium to check that its plots actually render offline.

Why: a report can be valid HTML yet show blank boxes (plotly.js missing, a JS error); only a browser
tells. Not part of CI (needs Chromium: ``apt-get install -y chromium``).

Usage: python scripts/check_report_renders.py results/<run>/report.html docs/report-screenshot.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def screenshot(report: Path, png: Path, *, width: int = 1400, height: int = 2000, timeout_s: float = 60) -> Path:
    """Render ``report`` to ``png``; raise RuntimeError with one line when no browser is available."""
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        raise RuntimeError("no Chromium/Chrome found (apt-get install -y chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--hide-scrollbars", "--virtual-time-budget=5000",
               f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
               report.resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout_s)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"browser ran but wrote no screenshot to {png}")
    return png


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1])
        return 2
    try:
        out = screenshot(Path(argv[1]), Path(argv[2]))
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"screenshot: {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
