"""Report figures and HTML from synthetic frames; rebuild from saved files reproduces the set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slobench.capacity.search import ProbeResult, capacity_search
from slobench.metrics.records import StageRecord, records_frame
from slobench.report.figures import (
    attainment_vs_rate,
    batch_timeline,
    capacity_bars,
    latency_cdfs,
    replica_scaling,
)
from slobench.report.html import write_report
from slobench.report.rebuild import rebuild_report


def _stages(rng: np.random.Generator, n: int = 40) -> pd.DataFrame:
    recs = []
    for i in range(n):
        start = i * 0.5
        first = start + rng.uniform(0.05, 0.6)
        times = list(first + np.cumsum(rng.uniform(0.02, 0.07, size=20)))
        recs.append(StageRecord(
            request_id=i, stage_idx=0, stage_name="main", num_stages=1, app="coding", tier="tight",
            arrival_s=start, stage_start_s=start, prompt_tokens=100, output_tokens=21, ttft_slo_s=0.4,
            tpot_slo_s=0.05, token_times_s=[first, *times]))
    return records_frame(recs)


def _iterations(n: int = 200) -> pd.DataFrame:
    t = np.arange(n) * 0.03
    return pd.DataFrame({"time_s": t, "prefill_tokens": (np.arange(n) % 7) * 64,
                         "decode_tokens": 16 + np.arange(n) % 5, "latency_s": 0.02 + 0.001 * (np.arange(n) % 5),
                         "budget_s": np.full(n, 0.05)})


def _write_results(tmp: Path) -> Path:
    """A results folder as `compare` writes it, from two synthetic engines."""
    rng = np.random.default_rng(0)
    probe_rows, caps, stages, iters = [], [], [], []
    for sched, knee in (("vllm", 3.0), ("slos-serve", 6.5)):
        def probe(rate: float, seed: int, knee: float = knee) -> ProbeResult:
            att = 1.0 if rate <= knee else max(0.0, 1 - (rate - knee) / knee)
            return ProbeResult(round(att * 500), 500)

        res = capacity_search(probe, target=0.9, rel_tol=0.05)
        probe_rows += [r | {"workload": "coding", "scheduler": sched} for r in res.probe_rows()]
        caps.append({"workload": "coding", "scheduler": sched, "capacity_rps": res.capacity_rps,
                     "lower_rps": res.lower_rps, "upper_rps": res.upper_rps, "status": res.status,
                     "message": res.message})
        for rate in {p.rate_rps for p in res.probes}:
            st = _stages(rng, 10)
            st["workload"], st["scheduler"], st["rate_rps"], st["seed"] = "coding", sched, rate, 0
            stages.append(st)
            it = _iterations(50)
            it["workload"], it["scheduler"], it["rate_rps"] = "coding", sched, rate
            iters.append(it)
    pd.DataFrame(probe_rows).to_csv(tmp / "probes.csv", index=False)
    pd.concat(stages, ignore_index=True).to_parquet(tmp / "requests.parquet", index=False)
    pd.concat(iters, ignore_index=True).to_parquet(tmp / "iterations.parquet", index=False)
    (tmp / "summary.json").write_text(json.dumps({"target": 0.9, "capacities": caps, "scaling": [
        {"scheduler": "vllm", "replicas": r, "capacity_rps": 3.0 * r * 0.95} for r in (1, 2, 4)]}))
    return tmp


def test_figures_from_synthetic_frames() -> None:
    rng = np.random.default_rng(1)
    probes = pd.DataFrame({
        "scheduler": ["a"] * 3 + ["b"] * 3, "rate_rps": [1, 2, 4] * 2,
        "attainment": [1, 0.95, 0.5, 1, 1, 0.92], "ci_low": [0.98, 0.9, 0.45, 0.98, 0.98, 0.88],
        "ci_high": [1, 0.97, 0.55, 1, 1, 0.95], "num_met": [100, 95, 50, 100, 100, 92],
        "num_requests": [100] * 6, "valid": [True, True, False, True, True, True]})
    caps = pd.DataFrame({"workload": ["w", "w"], "scheduler": ["a", "b"], "capacity_rps": [2.0, 4.0],
                         "lower_rps": [1.9, 3.8], "upper_rps": [2.2, 4.4]})
    fig = attainment_vs_rate(probes, caps, target=0.9)
    assert {t.name for t in fig.data} == {"a", "a (invalid)", "b"}
    bars = capacity_bars(caps)
    assert "2.00×" in bars.data[1].text[0]
    assert len(latency_cdfs(_stages(rng)).data) == 4  # TTFT and TPOT, each ÷ SLO and in ms
    assert len(batch_timeline(_iterations()).data) == 4
    scale = replica_scaling(pd.DataFrame({"scheduler": ["a"] * 2, "replicas": [1, 2], "capacity_rps": [2, 3.8]}))
    assert len(scale.data) == 2


def test_report_html_is_standalone(tmp_path: Path) -> None:
    figs = {"one": capacity_bars(pd.DataFrame({"workload": ["w"], "scheduler": ["a"], "capacity_rps": [1.0]})),
            "two": batch_timeline(_iterations())}
    report, notices = write_report(tmp_path, figs, png=False)
    text = report.read_text()
    assert 'id="fig-one"' in text and 'id="fig-two"' in text
    assert text.count("plotly.js v") >= 1 and "<script src=" not in text
    assert (tmp_path / "figures" / "one.html").exists()
    assert (tmp_path / "figures" / "plotly.min.js").exists()
    assert notices == []


def test_rebuild_reproduces_figure_set(tmp_path: Path) -> None:
    results = _write_results(tmp_path)
    report, _ = rebuild_report(results, png=False)
    first = sorted(p.name for p in (results / "figures").glob("*.html"))
    assert {"capacity.html", "attainment-coding.html", "latency-cdf-coding.html", "batches-vllm.html",
            "batches-slos-serve.html", "replica-scaling.html"} <= set(first)
    for p in (results / "figures").glob("*.html"):
        p.unlink()
    report.unlink()
    report2, _ = rebuild_report(results, png=False)
    assert report2.exists()
    assert sorted(p.name for p in (results / "figures").glob("*.html")) == first
    assert "×" in report2.read_text()  # ratio column of the capacity table


@pytest.mark.png
def test_png_skip_notice_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """Without a browser (or kaleido) the HTML is still written and PNGs are skipped with one line."""
    import slobench.report.html as html

    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setattr(html.shutil, "which", lambda name: None)
    figs = {"one": capacity_bars(pd.DataFrame({"workload": ["w"], "scheduler": ["a"], "capacity_rps": [1.0]}))}
    report, notices = write_report(tmp_path, figs, png=True)
    if html.png_support() is not None and "kaleido" in html.png_support():
        assert notices == [html.png_support()]  # kaleido itself missing: that is the line
    else:
        assert len(notices) == 1 and "Chromium" in notices[0] and "apt-get install -y chromium" in notices[0]
    assert "\n" not in notices[0] and report.exists() and not list(tmp_path.glob("figures/*.png"))
    monkeypatch.setitem(sys.modules, "kaleido", None)  # `import kaleido` now raises ImportError
    assert "pip install kaleido" in html.png_support()
