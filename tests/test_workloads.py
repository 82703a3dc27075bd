"""Workload generation: lengths match their sources, arrivals have the asked rate and burstiness,
trace replay keeps bursts and row pairing, multi-stage shapes, local datasets, and spec errors.

Expected numbers come from `slobench/data/traces/summary_stats.json` (SOURCES.md), computed from
the trace files independently of the generator. Every test is seeded; tolerances are a few
standard errors of the sample sizes used, so a broken generator fails and a correct one never does.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from slobench.errors import UserError
from slobench.perf import get_latency_model
from slobench.workloads import apply_overrides, generate, list_specs, load_spec
from slobench.workloads import arrivals as arr
from slobench.workloads import spec as spec_module
from slobench.workloads.generate import clip_stages
from slobench.workloads.model import Workload
from slobench.workloads.sources import SHIPPED_TRACES, TRACE_DIR, estimate_tokens
from slobench.workloads.spec import WorkloadSpec

STATS = json.loads((TRACE_DIR / "summary_stats.json").read_text())
PERF = get_latency_model()  # roofline H100 × Llama-3.1-8B: turns slowdown TTFTs into seconds

# shipped trace → (summary_stats.json key, prompt stat, output stat)
SOURCE_STATS = {
    "azure_conv": ("azure_llm_2023_conv.csv", "input", "output"),
    "azure_code": ("azure_llm_2023_code.csv", "input", "output"),
    "arxiv_summarization": ("vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", "input", "output"),
    "sharegpt": ("sarathi_sharegpt_8k_filtered_stats_llama2_tokenizer.csv", "input", "output"),
    "s1k_reasoning": ("s1k_reasoning_lengths_r1tok.csv", "input", "thinking"),
}
TOOL_STATS = STATS["toolbench_dfsdt_{rounds_cl100k,queries}.csv"]


def _rate(times: np.ndarray) -> float:
    return (times.size - 1) / (times[-1] - times[0])


def _times(wl: Workload) -> np.ndarray:
    return np.array([r.arrival_s for r in wl.requests])


def _spec_dict(**arrival: object) -> dict:
    return {
        "name": "t",
        "apps": [{"name": "chatbot", "tier": "chat", "lengths": {"trace": "azure_conv"},
                  "slo": {"main": {"ttft_ms": 500, "tpot_ms": 100}}}],
        "arrival": arrival or {"process": "poisson"},
        "rate_rps": 4.0,
    }


# ---------------------------------------------------------------------------------------------
# Lengths: every shipped spec reproduces its source's means
# ---------------------------------------------------------------------------------------------

def _clipped_source_means(trace: str, max_context: int) -> tuple[float, float]:
    """Mean prompt/output of the source file after the generator's clipping rule (read with pandas)."""
    path, pcol, ocol, _ = SHIPPED_TRACES[trace]
    df = pd.read_csv(path)
    p = np.minimum(df[pcol].to_numpy(), max_context - 1)
    o = np.maximum(1, np.minimum(df[ocol].to_numpy(), max_context - p))
    return float(p.mean()), float(o.mean())


# Session apps are left out: a turn's prompt is the whole conversation so far, by design not a source row.
SINGLE_STAGE_APPS = [(name, i) for name in list_specs() for i, a in enumerate(load_spec(name).apps)
                     if a.name not in ("reasoning", "toolcalling") and a.sessions is None]


@pytest.mark.parametrize(("spec_name", "app_idx"), SINGLE_STAGE_APPS)
def test_single_stage_lengths_match_source_means(spec_name: str, app_idx: int) -> None:
    spec = load_spec(spec_name)
    app = spec.apps[app_idx]
    assert app.lengths.trace in SOURCE_STATS, f"add {app.lengths.trace}'s summary stats to this test"
    key, pstat, ostat = SOURCE_STATS[app.lengths.trace]
    exp_p, exp_o = _clipped_source_means(app.lengths.trace, app.lengths.max_context)
    # Clipping to max_context moves the means by < 1% for every shipped spec (SOURCES.md numbers).
    assert exp_p == pytest.approx(STATS[key][pstat]["mean"], rel=0.01)
    assert exp_o == pytest.approx(STATS[key][ostat]["mean"], rel=0.01)
    # Trace replay walks consecutive rows: a window of the whole trace visits every row once.
    n = STATS[key][pstat]["n"] if spec.arrival.process == "trace" else 20_000 * len(spec.apps)
    wl = generate(spec, perf=PERF, seed=0, num_requests=n)
    mine = [r for r in wl.requests if r.app == app.name]
    assert all(len(r.stages) == 1 and r.stages[0].name == "main" for r in mine)
    prompt = np.array([r.stages[0].prompt_tokens for r in mine])
    output = np.array([r.stages[0].output_tokens for r in mine])
    assert prompt.max() <= app.lengths.max_context - 1
    assert (prompt + output).max() <= app.lengths.max_context
    # ≥ 4 standard errors at these sample sizes (the code trace's output std is ~2.4× its mean).
    assert prompt.mean() == pytest.approx(exp_p, rel=0.03)
    assert output.mean() == pytest.approx(exp_o, rel=0.04)
    if len(spec.apps) > 1:
        share = len(mine) / len(wl.requests)
        weights = [a.weight for a in spec.apps]
        assert share == pytest.approx(app.weight / sum(weights), abs=0.02)


def test_reasoning_is_think_then_answer_with_source_means() -> None:
    spec = load_spec("reasoning")
    wl = generate(spec, perf=PERF, seed=0, num_requests=20_000)
    s1k = STATS[SOURCE_STATS["s1k_reasoning"][0]]
    think = [r.stages[0] for r in wl.requests]
    answer = [r.stages[1] for r in wl.requests]
    assert all(len(r.stages) == 2 for r in wl.requests)
    assert {s.name for s in think} == {"think"} and {s.name for s in answer} == {"answer"}
    # The answer continues the thought: no new prompt, no gap, and a different (looser) pace.
    assert all(s.prompt_tokens == 0 and s.gap_s == 0.0 and s.is_continuation for s in answer)
    assert {s.slo.tpot_s for s in think} == {0.05} and {s.slo.tpot_s for s in answer} == {0.1}
    assert {s.slo.ttft_s for s in answer} == {0.1}
    assert np.mean([s.prompt_tokens for s in think]) == pytest.approx(s1k["input"]["mean"], rel=0.03)
    assert np.mean([s.output_tokens for s in think]) == pytest.approx(s1k["thinking"]["mean"], rel=0.03)
    assert np.mean([s.output_tokens for s in answer]) == pytest.approx(s1k["answer"]["mean"], rel=0.03)


def test_toolcalling_rounds_with_gaps_match_toolbench() -> None:
    spec = load_spec("toolcalling")
    wl = generate(spec, perf=PERF, seed=0, num_requests=10_000)
    reqs = wl.requests
    rounds = np.array([len(r.stages) for r in reqs])
    assert rounds.min() >= 3 and rounds.max() <= 5
    assert rounds.mean() == pytest.approx(TOOL_STATS["rounds_valid"]["mean"], rel=0.03)
    for r in reqs[:200]:
        assert [s.name for s in r.stages] == ["round"] * (len(r.stages) - 1) + ["final"]
        assert r.stages[0].gap_s == 0.0
        assert all(s.gap_s > 0 and s.prompt_tokens >= 1 for s in r.stages[1:])
        assert {s.slo.tpot_s for s in r.stages[:-1]} == {0.05} and r.stages[-1].slo.tpot_s == 0.1
    first_prompt = np.mean([r.stages[0].prompt_tokens for r in reqs])
    assert first_prompt == pytest.approx(TOOL_STATS["first_round_input"]["mean"], rel=0.03)
    assert np.mean([r.stages[-1].output_tokens for r in reqs]) == pytest.approx(
        TOOL_STATS["final_round_output"]["mean"], rel=0.05)
    all_out = [s.output_tokens for r in reqs for s in r.stages]
    assert np.mean(all_out) == pytest.approx(TOOL_STATS["round_output"]["mean"], rel=0.05)
    # Tool execution gaps: exponential with the spec's mean (1 s).
    gaps = np.array([s.gap_s for r in reqs for s in r.stages[1:]])
    assert gaps.mean() == pytest.approx(spec.apps[0].tools.gap_mean_s, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_clip_stages_cuts_outputs_before_prompts() -> None:
    assert clip_stages([(100, 50)], 8192) == [(100, 50)]
    assert clip_stages([(8000, 500)], 8192) == [(8000, 192)]
    assert clip_stages([(9000, 10)], 8192) == [(8191, 1)]
    # a continuation keeps prompt 0; a stage with no room left is dropped, the first always stays
    assert clip_stages([(100, 50), (0, 30)], 8192) == [(100, 50), (0, 30)]
    assert clip_stages([(100, 8092), (0, 30)], 8192) == [(100, 8092)]


# ---------------------------------------------------------------------------------------------
# Arrivals
# ---------------------------------------------------------------------------------------------

def test_poisson_iat_cv_is_one_and_rate_is_kept() -> None:
    t = arr.poisson(np.random.default_rng(0), 4.0, 50_000)
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    assert arr.iat_cv(t) == pytest.approx(1.0, abs=0.03)
    assert _rate(t) == pytest.approx(4.0, rel=0.02)
    wl = generate(load_spec("chatbot"), perf=PERF, seed=1, num_requests=20_000, rate_rps=6.0)
    assert arr.iat_cv(_times(wl)) == pytest.approx(1.0, abs=0.03)
    assert _rate(_times(wl)) == pytest.approx(6.0, rel=0.03)


@pytest.mark.parametrize("cv", [2.0, 4.0])
def test_gamma_iat_cv_as_asked(cv: float) -> None:
    t = arr.gamma(np.random.default_rng(0), 4.0, cv, 100_000)
    assert arr.iat_cv(t) == pytest.approx(cv, rel=0.06)
    assert _rate(t) == pytest.approx(4.0, rel=0.04)
    # Through a spec: the sweep override and the shipped bursty spec.
    spec = apply_overrides(load_spec("chatbot"), burstiness_cv=cv)
    wl = generate(spec, perf=PERF, seed=2, num_requests=40_000, rate_rps=3.0)
    assert arr.iat_cv(_times(wl)) == pytest.approx(cv, rel=0.10)
    assert _rate(_times(wl)) == pytest.approx(3.0, rel=0.06)


def test_shipped_bursty_chatbot_is_gamma_cv4() -> None:
    wl = generate(load_spec("chatbot-bursty"), perf=PERF, seed=0, num_requests=40_000)
    assert arr.iat_cv(_times(wl)) == pytest.approx(4.0, rel=0.10)
    assert _rate(_times(wl)) == pytest.approx(load_spec("chatbot-bursty").rate_rps, rel=0.06)


def test_bursts_keep_the_rate() -> None:
    t = arr.bursts(np.random.default_rng(0), 4.0, 8.0, 100_000)
    assert _rate(t) == pytest.approx(4.0, rel=0.05)
    assert arr.iat_cv(t) > 3  # many zero gaps inside bursts, long gaps between them
    spread = arr.bursts(np.random.default_rng(0), 4.0, 8.0, 2_000, spread_s=0.01)
    assert np.all(np.diff(spread) >= 0) and np.mean(np.diff(spread) == 0) < 0.01
    spec = WorkloadSpec.model_validate(_spec_dict(process="bursts", mean_burst_size=4))
    wl = generate(spec, perf=None, seed=0, num_requests=50_000, rate_rps=5.0)
    assert _rate(_times(wl)) == pytest.approx(5.0, rel=0.05)


def test_trace_replay_of_azure_code_keeps_burstiness_and_rate() -> None:
    spec = load_spec("coding-bursty")
    for seed in range(3):
        t = _times(generate(spec, perf=PERF, seed=seed, num_requests=2_000, rate_rps=5.0))
        assert arr.iat_cv(t) > 5  # the trace's IAT CV is 13; Poisson would be 1
        assert _rate(t) == pytest.approx(5.0, rel=1e-9)  # rescaled exactly to the target
    # The whole trace from row 0: time scaling leaves the CV exactly as in SOURCES.md.
    whole = spec.model_copy(deep=True)
    whole.arrival.random_start = False
    n = STATS["azure_llm_2023_code.csv"]["input"]["n"]
    t = _times(generate(whole, perf=PERF, seed=0, num_requests=n))
    assert arr.iat_cv(t) == pytest.approx(STATS["azure_llm_2023_code.csv"]["arrivals"]["iat_cv"], rel=0.005)


def test_trace_replay_pairs_each_arrival_with_its_own_row() -> None:
    path, pcol, ocol, tcol = SHIPPED_TRACES["azure_code"]
    df = pd.read_csv(path)
    ts = pd.to_datetime(df[tcol], format="mixed")
    ts_s = (ts - ts.iloc[0]).dt.total_seconds().to_numpy()
    spec = load_spec("coding-bursty").model_copy(deep=True)
    spec.arrival.random_start = False
    wl = generate(spec, perf=PERF, seed=0, num_requests=300, rate_rps=2.0)
    got = [(r.stages[0].prompt_tokens, r.stages[0].output_tokens) for r in wl.requests]
    assert got == list(zip(df[pcol][:300], df[ocol][:300], strict=True))
    scale = (ts_s[299] / 299) * 2.0  # trace seconds per scaled second
    np.testing.assert_allclose(_times(wl) * scale, ts_s[:300], rtol=1e-9, atol=1e-9)
    # From a random row the pairs are still consecutive rows of the trace.
    rnd = generate(load_spec("coding-bursty"), perf=PERF, seed=7, num_requests=50)
    pairs = [(r.stages[0].prompt_tokens, r.stages[0].output_tokens) for r in rnd.requests]
    rows = list(zip(df[pcol], df[ocol], strict=True))
    starts = [i for i in range(len(rows) - 50) if rows[i:i + 50] == pairs]
    assert len(starts) == 1


def _write_azure_subset(path: Path, rows: slice, shuffle: bool = False) -> pd.DataFrame:
    df = pd.read_csv(SHIPPED_TRACES["azure_code"][0]).iloc[rows].reset_index(drop=True)
    if shuffle:
        df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize("shuffle", [False, True])
def test_user_azure_csv_replays_as_is(tmp_path: Path, shuffle: bool) -> None:
    """A downloaded Azure trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens) given by path: each
    arrival keeps its own row's lengths, in time order, even when the file's rows are not sorted."""
    df = _write_azure_subset(tmp_path / "azure.csv", slice(1000, 1400), shuffle=shuffle)
    (tmp_path / "w.yaml").write_text(yaml.safe_dump({
        "name": "azure-file",
        "apps": [{"name": "coding", "tier": "c",
                  "lengths": {"path": "azure.csv", "prompt_tokens_column": "ContextTokens",
                              "output_tokens_column": "GeneratedTokens"},
                  "slo": {"main": {"ttft_ms": 1000, "tpot_ms": 50}}}],
        "arrival": {"process": "trace", "trace": "azure.csv", "random_start": False},
        "rate_rps": 3.0,
    }))
    wl = generate(load_spec(tmp_path / "w.yaml"), perf=None, seed=0, num_requests=400)
    in_time_order = df.assign(t=pd.to_datetime(df["TIMESTAMP"], format="mixed")).sort_values("t", kind="stable")
    got = [(r.stages[0].prompt_tokens, r.stages[0].output_tokens) for r in wl.requests]
    assert got == list(zip(in_time_order["ContextTokens"], in_time_order["GeneratedTokens"], strict=True))
    assert _rate(_times(wl)) == pytest.approx(3.0, rel=1e-9)
    trace_cv = arr.iat_cv((in_time_order["t"] - in_time_order["t"].min()).dt.total_seconds().to_numpy())
    assert arr.iat_cv(_times(wl)) == pytest.approx(trace_cv, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Reproducibility and size
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list_specs())
def test_same_seed_same_workload_different_seed_different(name: str) -> None:
    a = generate(name, perf=PERF, seed=3, num_requests=300)
    b = generate(name, perf=PERF, seed=3, num_requests=300)
    c = generate(name, perf=PERF, seed=4, num_requests=300)
    assert a.to_json() == b.to_json()
    assert Workload.from_json(a.to_json()).to_json() == a.to_json()
    assert [r.arrival_s for r in a.requests] != [r.arrival_s for r in c.requests]
    assert [r.stages for r in a.requests] != [r.stages for r in c.requests]


def test_changing_the_rate_retimes_the_same_requests() -> None:
    """Capacity probes at different rates must compare the same requests (independent streams)."""
    slow = generate("mixed", perf=PERF, seed=0, num_requests=500, rate_rps=2.0)
    fast = generate("mixed", perf=PERF, seed=0, num_requests=500, rate_rps=8.0)
    assert [(r.app, r.stages) for r in slow.requests] == [(r.app, r.stages) for r in fast.requests]
    np.testing.assert_allclose(_times(slow), 4.0 * _times(fast), rtol=1e-12)


def test_duration_cuts_arrivals_and_overrides_spec_size() -> None:
    wl = generate("chatbot", perf=PERF, seed=0, duration_s=300.0, rate_rps=4.0)
    t = _times(wl)
    assert t.max() < 300.0
    assert len(wl.requests) == pytest.approx(1200, rel=0.1)  # not capped by the spec's num_requests
    both = generate("chatbot", perf=PERF, seed=0, duration_s=300.0, num_requests=100, rate_rps=4.0)
    assert len(both.requests) == 100


def test_every_shipped_spec_loads_and_generates() -> None:
    assert {"chatbot", "coding", "reasoning", "toolcalling", "summarization", "mixed"} <= set(list_specs())
    for name in list_specs():
        wl = generate(name, perf=PERF, seed=0, num_requests=50)
        assert len(wl.requests) == 50
        assert all(s.slo.ttft_s > 0 and s.slo.tpot_s > 0 for r in wl.requests for s in r.stages)


# ---------------------------------------------------------------------------------------------
# Local datasets through `datasets`
# ---------------------------------------------------------------------------------------------

LOCAL_ROWS = pd.DataFrame({
    "in_len": [100, 200, 300, 400],
    "out_len": [10, 20, 30, 40],
    "prompt": ["def f(x):\n    return x + 1", "Summarize this article, please.", "a b c d e f", "x"],
})


def _local_spec(tmp_path: Path, file_name: str, lengths: dict) -> Path:
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump({
        "name": "local",
        "apps": [{"name": "custom", "tier": "t", "lengths": {"path": file_name, **lengths},
                  "slo": {"main": {"ttft_ms": 800, "tpot_ms": 80}}}],
        "arrival": {"process": "poisson"},
        "rate_rps": 2.0,
        "num_requests": 400,
    }))
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_local_file_with_column_mapping(tmp_path: Path, fmt: str) -> None:
    file = tmp_path / f"rows.{fmt}"
    {"csv": lambda: LOCAL_ROWS.to_csv(file, index=False),
     "jsonl": lambda: LOCAL_ROWS.to_json(file, orient="records", lines=True),
     "parquet": lambda: LOCAL_ROWS.to_parquet(file, index=False)}[fmt]()
    spec = load_spec(_local_spec(tmp_path, file.name, {"prompt_tokens_column": "in_len",
                                                       "output_tokens_column": "out_len"}))
    wl = generate(spec, perf=None, seed=0)
    pairs = {(r.stages[0].prompt_tokens, r.stages[0].output_tokens) for r in wl.requests}
    assert pairs == {(100, 10), (200, 20), (300, 30), (400, 40)}  # rows sampled jointly, never mixed
    assert all(r.stages[0].slo.tpot_s == pytest.approx(0.08) for r in wl.requests)


def test_local_file_text_column_uses_builtin_token_estimate(tmp_path: Path) -> None:
    LOCAL_ROWS.to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    spec = load_spec(_local_spec(tmp_path, "rows.jsonl", {"text_column": "prompt", "output_tokens": 64}))
    wl = generate(spec, perf=None, seed=0)
    expected = {estimate_tokens(t) for t in LOCAL_ROWS["prompt"]}
    assert {r.stages[0].prompt_tokens for r in wl.requests} == expected
    assert {r.stages[0].output_tokens for r in wl.requests} == {64}
    assert {r.text for r in wl.requests} == set(LOCAL_ROWS["prompt"])
    # Words and punctuation × 1.09 (calibrated to cl100k on HumanEval): def f ( x ) : return x + 1 = 10 pieces.
    assert estimate_tokens("def f(x):\n    return x + 1") == round(10 * 1.09)


def test_local_file_errors_name_the_column_or_option(tmp_path: Path) -> None:
    LOCAL_ROWS.to_csv(tmp_path / "rows.csv", index=False)
    bad_col = load_spec(_local_spec(tmp_path, "rows.csv", {"prompt_tokens_column": "nope",
                                                           "output_tokens_column": "out_len"}))
    with pytest.raises(UserError, match=r"prompt_tokens_column: column 'nope' is not in .*rows.csv"):
        generate(bad_col, perf=None, seed=0)
    no_out = load_spec(_local_spec(tmp_path, "rows.csv", {"prompt_tokens_column": "in_len"}))
    with pytest.raises(UserError, match="output_tokens_column or a fixed output_tokens"):
        generate(no_out, perf=None, seed=0)


BAD_LOCAL_FILES = {
    # name: (file contents, lengths mapping, expected message after the origin `apps.0.lengths.`)
    "non_numeric": ("in_len,out_len\n100,10\nlots,20\n", {"prompt_tokens_column": "in_len",
                                                              "output_tokens_column": "out_len"},
                    r"prompt_tokens_column: column 'in_len' of .*must hold token counts.*row 2 is 'lots'"),
    "empty_cell": ("in_len,out_len\n100,10\n200,\n", {"prompt_tokens_column": "in_len",
                                                         "output_tokens_column": "out_len"},
                   r"output_tokens_column: column 'out_len' of .*row 2 is None"),
    "unparsable": ('in_len,out_len\n1,2\n"3,4\n', {"prompt_tokens_column": "in_len",
                                                      "output_tokens_column": "out_len"},
                   r"path: cannot read .*rows.csv as csv: "),
    "header_only": ("in_len,out_len\n", {"prompt_tokens_column": "in_len", "output_tokens_column": "out_len"},
                    r"path: .*rows.csv has no rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_LOCAL_FILES))
def test_bad_local_file_is_one_line_naming_the_spec_field(tmp_path: Path, case: str) -> None:
    text, lengths, pattern = BAD_LOCAL_FILES[case]
    (tmp_path / "rows.csv").write_text(text)
    spec = load_spec(_local_spec(tmp_path, "rows.csv", lengths))
    with pytest.raises(UserError) as info:
        generate(spec, perf=None, seed=0)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("apps.0.lengths."), msg
    assert re.search(pattern, msg), msg


def test_bad_arrival_trace_file_names_the_arrival_field(tmp_path: Path) -> None:
    LOCAL_ROWS.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    cases = {
        "junk.parquet": (r"^arrival\.trace: cannot read .*junk\.parquet as parquet", "TIMESTAMP"),
        "rows.csv": (r"^arrival\.timestamp_column: column 'prompt' of .*rows\.csv holds neither numbers", "prompt"),
    }
    for file, (pattern, column) in cases.items():
        spec_path = _local_spec(tmp_path, "rows.csv", {"prompt_tokens_column": "in_len",
                                                       "output_tokens_column": "out_len"})
        raw = yaml.safe_load(spec_path.read_text())
        raw["arrival"] = {"process": "trace", "trace": file, "timestamp_column": column}
        spec_path.write_text(yaml.safe_dump(raw))
        with pytest.raises(UserError) as info:
            generate(load_spec(spec_path), perf=None, seed=0)
        assert re.search(pattern, str(info.value)) and "\n" not in str(info.value), str(info.value)


def test_local_file_load_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """datasets' own progress bars and log lines would be drawn over the run's rich progress bar."""
    pytest.importorskip("datasets")
    LOCAL_ROWS.to_csv(tmp_path / "fresh.csv", index=False)  # a new file: datasets builds (not reuses) a cache
    spec = load_spec(_local_spec(tmp_path, "fresh.csv", {"prompt_tokens_column": "in_len",
                                                         "output_tokens_column": "out_len"}))
    capfd.readouterr()
    assert len(generate(spec, perf=None, seed=0).requests) == 400
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


def test_tokenizer_without_transformers_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    try:
        import transformers  # noqa: F401
        pytest.skip("transformers is installed; this checks the message shown without it")
    except ImportError:
        pass
    LOCAL_ROWS.to_csv(tmp_path / "rows.csv", index=False)
    spec = load_spec(_local_spec(tmp_path, "rows.csv", {"text_column": "prompt", "tokenizer": "gpt2",
                                                        "output_tokens": 8}))
    with pytest.raises(UserError, match=r"^apps\.0\.lengths\.tokenizer 'gpt2' needs the transformers package"):
        generate(spec, perf=None, seed=0)


# ---------------------------------------------------------------------------------------------
# Spec errors: one line naming the file and the field
# ---------------------------------------------------------------------------------------------

_GOOD = """\
name: t
apps:
  - name: chatbot
    tier: chat
    lengths: {trace: azure_conv}
    slo:
      main: {ttft_ms: 500, tpot_ms: 100}
rate_rps: 4
"""

BAD_SPECS = {
    "syntax": (_GOOD.replace("    tier: chat", "   tier: chat"), r"line \d+, column \d+: YAML syntax error"),
    "unknown_field": (_GOOD + "colour: blue\n", r"field `colour`: .*unknown field: remove it"),
    "misspelt_field": (_GOOD.replace("rate_rps: 4", "rate_rsp: 4"), r"field `rate_rsp`: .*did you mean `rate_rps`\?"),
    # The typo of a required key is named (not just the missing key it causes).
    "misspelt_required": (_GOOD.replace("lengths:", "lenghts:"),
                          r"field `apps\.0\.lenghts`: .*did you mean `lengths`\? \[\+1 more\]"),
    "negative_tpot": (_GOOD.replace("tpot_ms: 100", "tpot_ms: -5"),
                      r"field `apps\.0\.slo\.main\.tpot_ms`: .*got -5"),
    "missing_length_file": (_GOOD.replace("{trace: azure_conv}", "{path: nope.csv, prompt_tokens_column: p}"),
                            r"field `apps\.0\.lengths\.path`: file .*nope\.csv not found"),
    "unknown_trace": (_GOOD.replace("azure_conv", "azure_cnov"), r"field `apps\.0\.lengths\.trace`: unknown trace"),
    "missing_arrival_trace": (_GOOD + "arrival: {process: trace, trace: gone.csv}\n",
                              r"field `arrival\.trace`: file .*gone\.csv not found"),
    "gamma_without_cv": (_GOOD + "arrival: {process: gamma}\n", r"field `arrival`: process gamma needs cv"),
    "missing_slo_kind": (_GOOD.replace("name: chatbot", "name: reasoning").replace("azure_conv", "s1k_reasoning"),
                         r"needs slo keys \['think', 'answer'\]"),
    "not_a_mapping": ("- 1\n- 2\n", r"must be a YAML mapping"),
    "negative_rate": (_GOOD.replace("rate_rps: 4", "rate_rps: -4"), r"field `rate_rps`"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_one_line_naming_file_and_field(tmp_path: Path, case: str) -> None:
    text, pattern = BAD_SPECS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert re.search(pattern, msg), msg


def test_unknown_workload_name_and_missing_yaml() -> None:
    with pytest.raises(UserError, match="unknown workload 'chatbott'; known: chat-sessions, chatbot,"):
        load_spec("chatbott")
    with pytest.raises(UserError, match="nope.yaml: workload file not found"):
        load_spec("nope.yaml")


def test_bad_generate_arguments() -> None:
    with pytest.raises(UserError, match="rate_rps must be > 0"):
        generate("chatbot", perf=PERF, seed=0, rate_rps=-1.0)
    with pytest.raises(UserError, match="num_requests must be > 0"):
        generate("chatbot", perf=PERF, seed=0, num_requests=0)
    with pytest.raises(UserError, match=r"ttft_slowdown needs a latency model"):
        generate("chatbot", perf=None, seed=0, num_requests=5)
    assert math.isfinite(generate("chatbot", perf=PERF, seed=0, num_requests=5).duration_s)


# ---------------------------------------------------------------------------------------------
# Packaging: a wheel carries the top-level workloads/*.yaml and the trace data
# ---------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_build_copies_the_shipped_specs_into_the_package(tmp_path: Path) -> None:
    """setup.py's build_py hook: what a non-editable install (a wheel) gets, built offline from a copy."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for folder in ("slobench", "workloads"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "build"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)], cwd=src, check=True,
                   capture_output=True, text=True, timeout=120)
    shipped = {p.name for p in (REPO / "workloads").glob("*.yaml")}
    assert {p.name for p in (out / "slobench/workloads/specs").glob("*.yaml")} == shipped
    assert (out / "slobench/workloads/specs/chatbot.yaml").read_text() == (REPO / "workloads/chatbot.yaml").read_text()
    for file, *_ in SHIPPED_TRACES.values():
        assert (out / file.relative_to(REPO)).is_file(), file
    assert not (src / "slobench/workloads/specs").exists()  # the source tree never gets a second copy


def test_spec_dir_is_the_checkout_else_the_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert spec_module.SPEC_DIR == REPO / "workloads"  # tests run from a checkout: edits to workloads/ count
    fake = tmp_path / "site-packages" / "workloads"  # e.g. another distribution's top-level package
    fake.mkdir(parents=True)
    monkeypatch.setattr(spec_module, "REPO_SPEC_DIR", fake)
    assert spec_module._spec_dir() == spec_module.PACKAGED_SPEC_DIR
    (fake.parent / "pyproject.toml").write_text("")
    assert spec_module._spec_dir() == fake


def test_no_shipped_specs_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "SPEC_DIR", tmp_path)
    with pytest.raises(UserError, match="no shipped workload specs in .*; reinstall slobench"):
        load_spec("chatbot")
