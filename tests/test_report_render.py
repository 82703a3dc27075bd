"""report.html opened in a real headless Chromium: every figure must render (offline, no CDN).

Skipped when no Chromium/Chrome is installed (Debian: apt-get install -y chromium); CI machines
without it still run the HTML-structure tests in test_report.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slobench.report.rebuild import rebuild_report
from slobench.report.render_check import check_dom, check_report, figure_ids, find_browser
from tests.test_report import _write_results

needs_browser = pytest.mark.skipif(find_browser() is None,
                                   reason="no Chromium/Chrome installed (Debian: apt-get install -y chromium)")


def test_check_dom_reads_plotly_markers() -> None:
    """The DOM reader on hand-written DOM: no browser needed, so this always runs."""
    source = '<div id="fig-a" class="plotly-graph-div"></div><div id="fig-b" class="plotly-graph-div"></div>'
    dom = ('<div id="fig-a" class="plotly-graph-div js-plotly-plot"><svg class="main-svg"><g class="trace scatter x">'
           '</g><g class="traces"></g></svg><svg class="main-svg"></svg></div>'
           '<div id="fig-b" class="plotly-graph-div"></div>')
    a, b = check_dom(source, dom)
    assert (a.fig_id, a.plotted, a.svgs, a.traces, a.ok) == ("fig-a", True, 2, 1, True)
    assert (b.fig_id, b.ok) == ("fig-b", False)
    assert figure_ids(source) == ["fig-a", "fig-b"]


@needs_browser
def test_every_figure_renders_in_headless_chromium(tmp_path: Path) -> None:
    results = _write_results(tmp_path)
    report, _ = rebuild_report(results, png=False)
    figures = check_report(report)
    files = sorted(p.stem for p in (results / "figures").glob("*.html"))
    assert sorted(f.fig_id.removeprefix("fig-") for f in figures) == files  # one div per figure file
    assert len(figures) >= 6
    assert all(f.ok for f in figures), [f for f in figures if not f.ok]
    by_id = {f.fig_id: f for f in figures}
    assert by_id["fig-batches-vllm"].traces >= 4  # prefill, decode, latency, budget
    assert by_id["fig-latency-cdf-coding"].traces >= 4  # TTFT and TPOT per scheduler


@needs_browser
def test_check_fails_when_plotly_js_is_missing(tmp_path: Path) -> None:
    """Negative control: the same report without its inlined plotly.js renders nothing, and we notice."""
    report, _ = rebuild_report(_write_results(tmp_path), png=False)
    text = report.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'<script type="text/javascript">/\*\*.*?</script>', "", text, count=1, flags=re.S),
                      encoding="utf-8")
    assert len(broken.read_text(encoding="utf-8")) < len(text) / 2  # the library really was removed
    figures = check_report(broken)
    assert figures and not any(f.ok for f in figures)


def _kaleido() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True


@needs_browser
@pytest.mark.skipif(not _kaleido(), reason="kaleido not installed (pip install kaleido)")
@pytest.mark.png
def test_pngs_written_with_kaleido_and_chromium(tmp_path: Path) -> None:
    report, notices = rebuild_report(_write_results(tmp_path), png=True)
    assert notices == []
    htmls = sorted(p.stem for p in (tmp_path / "figures").glob("*.html"))
    pngs = sorted(p.stem for p in (tmp_path / "figures").glob("*.png"))
    assert pngs == htmls
    assert all((tmp_path / "figures" / f"{n}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)


@needs_browser
@pytest.mark.skipif(not _kaleido(), reason="kaleido not installed (pip install kaleido)")
@pytest.mark.png
def test_pngs_from_a_warmed_browser_and_the_browser_stops_after(tmp_path: Path) -> None:
    """`warm_png` (started while a capacity run's searches work) leaves the same PNGs, then no browser behind."""
    import kaleido

    from slobench.report.html import warm_png

    warm_png()
    assert kaleido._global_server.is_running()  # noqa: SLF001
    report, notices = rebuild_report(_write_results(tmp_path), png=True)
    assert notices == []
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert not kaleido._global_server.is_running()  # noqa: SLF001


@pytest.mark.skipif(not _kaleido(), reason="kaleido not installed (pip install kaleido)")
def test_a_warm_browser_that_died_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task sent to kaleido's server thread after it died would wait forever: `_warm_server` resets it instead,
    so the export falls back to its own one-shot browser."""
    import threading

    import kaleido

    from slobench.report import html

    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    server = kaleido._global_server  # noqa: SLF001
    stopped: list[bool] = []
    monkeypatch.setattr(server, "_initialized", True, raising=False)
    monkeypatch.setattr(server, "_thread", dead, raising=False)
    monkeypatch.setattr(kaleido, "stop_sync_server", lambda **kw: stopped.append(True))
    assert html._warm_server() is None  # noqa: SLF001
    assert stopped == [True]


class _FlakyKaleido:
    """Stands in for ``plotly.io.write_images``: writes a PNG signature for each path except the figures in
    ``drop`` for the first ``fails`` calls (kaleido's silent per-figure failure: plotly drops its error tuple)."""

    def __init__(self, drop: set[str], fails: int) -> None:
        self.drop, self.fails, self.calls = drop, fails, []

    def __call__(self, figs: list, paths: list[Path], **_: object) -> None:
        self.calls.append([p.stem for p in paths])
        failing = len(self.calls) <= self.fails
        for p in paths:
            if not (failing and p.stem in self.drop):
                p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 8)


@pytest.mark.parametrize("fails", [1, 2])
def test_a_png_kaleido_silently_skipped_is_retried_then_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             fails: int) -> None:
    import plotly.graph_objects as go
    import plotly.io as pio

    import slobench.report.html as html

    monkeypatch.setattr(html, "png_support", lambda: None)
    fake = _FlakyKaleido({"capacity"}, fails)
    monkeypatch.setattr(pio, "write_images", fake)
    (tmp_path / "capacity.png").write_bytes(b"\x89PNG\r\n\x1a\nstale")  # from an earlier report: must not count
    figures = {name: go.Figure() for name in ("attainment", "capacity", "batches")}
    notices = html.write_pngs(tmp_path, figures)
    assert fake.calls == [["attainment", "capacity", "batches"], ["capacity"]]  # only the missing one again
    if fails == 1:
        assert notices == [] and (tmp_path / "capacity.png").exists()
    else:
        assert notices == ["PNG figures not written: capacity (kaleido wrote no file, twice; their HTML figures "
                           "are complete)"]
        assert not (tmp_path / "capacity.png").exists()
