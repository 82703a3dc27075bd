"""Write figures to a results folder: one standalone ``report.html`` plus ``figures/*.html`` (+ PNG).

``report.html`` inlines plotly.js exactly once, so it opens offline (no CDN) and stays one file.
The per-figure pages share ``figures/plotly.min.js`` (plotly's ``include_plotlyjs="directory"``)
instead of each carrying 3+ MB. PNGs need kaleido *and* a Chrome/Chromium; without them we say so
in one line rather than failing the run.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def png_support() -> str | None:
    """None when PNG export can work here, else a one-line reason."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return ("PNG figures skipped: kaleido not installed (pip install kaleido; it also needs Chromium: "
                "apt-get install -y chromium)")
    if os.environ.get("BROWSER_PATH") or any(shutil.which(b) for b in _BROWSERS):
        return None
    return "PNG figures skipped: no Chrome/Chromium found (Debian: apt-get install -y chromium; or set BROWSER_PATH)"


def warm_png() -> None:
    """Start Chromium for the PNG export now, in the background, so the report does not wait for it later.

    Why: starting Chromium is most of a report's PNG time (measured on the 2-core machine: a compare's six
    figures took 6.4 s cold, 2.5–3.5 s with the browser already up), and a capacity run's parent process
    mostly waits for its searches meanwhile. Kaleido keeps one browser in a background thread
    (``kaleido.start_sync_server``); `write_pngs` uses it and then stops it. A no-op where PNGs cannot be
    written, and harmless if the report is never drawn (the browser stops when the process exits).
    """
    if png_support() is not None:
        return
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
    except Exception:  # noqa: BLE001 - an optional speed-up: the export falls back to its own browser
        pass


def _warm_server() -> object | None:
    """Kaleido's background browser if `warm_png` started one and it is alive, else None (a dead one is reset:
    a task sent to it would wait forever)."""
    try:
        import kaleido

        server = kaleido._global_server  # noqa: SLF001 - kaleido has no public "is it alive" call
        if not server.is_running():
            return None
        if not server._thread.is_alive():  # noqa: SLF001 - it failed to start Chromium
            kaleido.stop_sync_server(silence_warnings=True)
            return None
        return server
    except Exception:  # noqa: BLE001 - another kaleido layout: use the one-shot export
        return None


def write_pngs(fig_dir: Path, figures: Mapping[str, go.Figure], *, width: int = 1100,
               height: int = 600) -> list[str]:
    """Write ``fig_dir/<name>.png`` for every figure; return notices (one line each) instead of failing.

    One kaleido call for the whole set (``plotly.io.write_images``) starts Chromium once: ≈ 2.5 s
    for a report's figures instead of ≈ 2.5 s per figure; none when `warm_png` started it already.
    """
    reason = png_support()
    if reason:
        return [reason]
    warm = _warm_server() is not None
    try:
        return _write_pngs(fig_dir, figures, width, height)
    finally:
        if warm:
            import kaleido

            kaleido.stop_sync_server(silence_warnings=True)


def _write_pngs(fig_dir: Path, figures: Mapping[str, go.Figure], width: int, height: int) -> list[str]:
    import warnings

    import plotly.io as pio

    def write(names: list[str]) -> None:
        paths = [fig_dir / f"{name}.png" for name in names]
        for path in paths:  # a PNG left from an earlier report must not pass for this one
            path.unlink(missing_ok=True)
        if hasattr(pio, "write_images"):
            with warnings.catch_warnings():  # "kopts is ignored if using a server": plotly passes none of ours
                warnings.simplefilter("ignore", UserWarning)
                pio.write_images([figures[n] for n in names], paths, width=width, height=height)
        else:  # plotly < 6.1: one browser start per figure
            for name, path in zip(names, paths, strict=True):
                figures[name].write_image(path, width=width, height=height)

    def missing(names: list[str]) -> list[str]:
        return [n for n in names if not _is_png(fig_dir / f"{n}.png")]

    try:
        write(list(figures))
        # plotly's write_images drops kaleido's per-figure errors (kaleido returns them, plotly ignores the
        # return value): a figure can fail to render with no exception (seen once, 1 of 6, on a loaded
        # 2-core machine). Check every file, render the missing ones again once, and name what is still missing.
        if lost := missing(list(figures)):
            write(lost)
            if lost := missing(lost):
                return [f"PNG figures not written: {', '.join(lost)} (kaleido wrote no file, twice; their HTML "
                        "figures are complete)"]
    except Exception as exc:  # noqa: BLE001 - a PNG is optional; the HTML is the product
        return [f"PNG figures skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                if str(exc) else f"PNG figures skipped: {type(exc).__name__}"]
    return []


def _is_png(path: Path) -> bool:
    """A file that starts with the PNG signature."""
    try:
        with path.open("rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def write_report(
    out_dir: Path,
    figures: Mapping[str, go.Figure],
    *,
    title: str = "slobench report",
    intro_html: str = "",
    captions: Mapping[str, str] | None = None,
    png: bool = True,
    fig_subdir: str = "figures",
) -> tuple[Path, list[str]]:
    """Write ``out_dir/report.html`` and ``out_dir/<fig_subdir>/<name>.html``; return (report path, notices)."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / fig_subdir
    fig_dir.mkdir(parents=True, exist_ok=True)
    notices: list[str] = []
    for name, fig in figures.items():
        fig.write_html(fig_dir / f"{name}.html", include_plotlyjs="directory", full_html=True)
    if png and figures:
        notices += write_pngs(fig_dir, figures)
    divs = []
    for name, fig in figures.items():
        body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                           default_height="520px")
        caption = (captions or {}).get(name, "")
        note = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
        divs.append(f'<section><h2 id="{html.escape(name)}">{html.escape(name)}</h2>{note}{body}</section>')
    toc = " · ".join(f'<a href="#{html.escape(n)}">{html.escape(n)}</a>' for n in figures)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:1em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}
section{{margin-top:1.5em}}.caption{{color:#555;max-width:60em}}.warn{{color:#a60}}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
{intro_html}
<p>{toc}</p>
{"".join(divs)}
</body></html>
"""
    report = out_dir / "report.html"
    report.write_text(page, encoding="utf-8")
    return report, notices
