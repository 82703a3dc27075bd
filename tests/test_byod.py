"""Bring your own data: `workloads new` from a trace file or a Hugging Face dataset, what `workloads show`
reports about a trace, the trace replay options (timestamp_unit, jitter_s, rate: native, scale: thin), and
README's three-line example, run exactly as README writes it.

Seeded throughout; no network (the Hugging Face cases use datasets saved to disk, and an id that is not
cached must fail offline with one line).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from slobench.cli import app
from slobench.errors import UserError
from slobench.workloads import arrivals as arr
from slobench.workloads import generate, load_spec

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns off a terminal; a wide console keeps each printed fact on one line."""
    import slobench.cli.workloads_cmd as cmd

    monkeypatch.setattr(cmd, "console", Console(width=400))


def _one_line(res) -> str:  # noqa: ANN001
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output
    return lines[0]


def _trace(n: int = 200, seed: int = 0, *, names: tuple[str, str, str] = ("timestamp", "input_length",
                                                                           "output_length"),
           scale_s: float = 1.0, span_s: float = 100.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t, p, o = names
    return pd.DataFrame({t: np.sort(rng.uniform(0, span_s, n)) * scale_s,
                         p: rng.integers(50, 2000, n), o: rng.integers(5, 300, n)})


def _new(tmp_path: Path, *args: str):  # noqa: ANN202
    return runner.invoke(app, ["workloads", "new", *args])


# --- 1. workloads new from a file ------------------------------------------------------------------


def test_new_from_csv_guesses_columns_writes_a_valid_spec_and_says_what_next(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df = _trace()
    df.to_csv("trace.csv", index=False)
    res = _new(tmp_path, "mytrace", "--from-trace", "trace.csv")
    assert res.exit_code == 0, res.output
    assert "prompt ← input_length, output ← output_length, timestamp ← timestamp (200 rows)" in res.output
    assert res.output.strip().splitlines()[-1] == "next: slobench compare --workload mytrace.yaml"
    raw = yaml.safe_load(Path("mytrace.yaml").read_text())
    assert raw["apps"][0]["lengths"] == {"path": "trace.csv", "prompt_tokens_column": "input_length",
                                         "output_tokens_column": "output_length", "max_context": 8192}
    assert raw["arrival"] == {"process": "trace", "trace": "trace.csv", "timestamp_column": "timestamp"}
    assert raw["apps"][0]["slo"]["main"] == {"ttft_slowdown": 5.0, "tpot_ms": 100.0}  # the shipped chatbot's
    native = (len(df) - 1) / (df.timestamp.max() - df.timestamp.min())
    assert raw["rate_rps"] == pytest.approx(native, rel=1e-2)
    # Each replayed arrival carries its own row's lengths (the same file drives both).
    wl = generate(load_spec("mytrace.yaml"), perf=_perf(), seed=0, num_requests=50)
    rows = set(zip(df.input_length, df.output_length, strict=True))
    assert all((r.stages[0].prompt_tokens, r.stages[0].output_tokens) in rows for r in wl.requests)
    # The pair can be moved together: the YAML's paths are relative to its folder.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for f in ("trace.csv", "mytrace.yaml"):
        (tmp_path / f).rename(moved / f)
    assert load_spec(moved / "mytrace.yaml").apps[0].lengths.path == str(moved / "trace.csv")


def _perf():  # noqa: ANN202
    from slobench.perf import get_latency_model

    return get_latency_model()


def test_new_from_jsonl_with_millisecond_timestamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df = _trace(names=("arrival_time", "prompt_tokens", "output_tokens"), scale_s=1000.0)  # relative ms
    df.to_json("trace.jsonl", orient="records", lines=True)
    res = _new(tmp_path, "ms", "--from-trace", "trace.jsonl", "--time-unit", "ms", "--slo-preset", "coding")
    assert res.exit_code == 0, res.output
    raw = yaml.safe_load(Path("ms.yaml").read_text())
    assert raw["arrival"]["timestamp_unit"] == "ms" and raw["apps"][0]["tier"] == "coding"
    native = (len(df) - 1) / ((df.arrival_time.max() - df.arrival_time.min()) / 1000)
    assert raw["rate_rps"] == pytest.approx(native, rel=1e-2)  # ≈ 2 req/s, not 0.002
    wl = generate(load_spec("ms.yaml"), perf=_perf(), seed=0, num_requests=200, rate_rps=4.0)
    times = np.array([r.arrival_s for r in wl.requests])
    assert (len(times) - 1) / times[-1] == pytest.approx(4.0)


def test_epoch_milliseconds_are_recognised_without_a_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df = _trace()
    df["timestamp"] = (1.7e12 + df.timestamp * 1000).round()
    df.to_parquet("trace.parquet", index=False)
    res = _new(tmp_path, "epoch", "--from-trace", "trace.parquet")
    assert res.exit_code == 0, res.output
    assert "in ms (guessed; --time-unit to change)" in res.output
    assert yaml.safe_load(Path("epoch.yaml").read_text())["rate_rps"] == pytest.approx(2.0, rel=0.1)


def test_azure_style_columns_and_datetime_timestamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = ROOT / "slobench" / "data" / "traces" / "azure_llm_2023_code.csv"
    pd.read_csv(src, nrows=300).to_csv("azure.csv", index=False)
    Path("sub").mkdir()
    res = _new(tmp_path, "azure", "--from-trace", "azure.csv", "--out", "sub/azure.yaml")
    assert res.exit_code == 0, res.output
    assert "prompt ← ContextTokens, output ← GeneratedTokens, timestamp ← TIMESTAMP" in res.output
    raw = yaml.safe_load(Path("sub/azure.yaml").read_text())
    assert raw["apps"][0]["lengths"]["path"] == "../azure.csv" and "timestamp_unit" not in raw["arrival"]
    assert "next: slobench compare --workload sub/azure.yaml" in res.output


def test_long_rows_set_max_context_to_keep_them_and_an_explicit_one_reports_the_cut(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df = _trace(20)
    df.loc[:9, "input_length"] = 20_000
    df.to_csv("long.csv", index=False)
    res = _new(tmp_path, "long", "--from-trace", "long.csv")
    assert res.exit_code == 0 and "nothing clipped" in res.output, res.output
    assert yaml.safe_load(Path("long.yaml").read_text())["apps"][0]["lengths"]["max_context"] == 20_480
    res = _new(tmp_path, "long", "--from-trace", "long.csv", "--max-context", "8192", "--force")
    assert res.exit_code == 0 and "max_context  8,192 (clips 10 rows" in res.output, res.output


BAD_NEW = {
    # name: (file columns, extra args, pattern of the one line)
    "two prompt candidates": (("timestamp", "input_length", "output_length", "prompt_tokens"), [],
                              r"several columns could be the prompt column: input_length, prompt_tokens; "
                              r"pick one with --prompt-column NAME"),
    "two time candidates": (("timestamp", "time", "input_length", "output_length"), [],
                            r"several columns could be the timestamp column: timestamp, time"),
    "no output column": (("timestamp", "input_length", "x"), [],
                         r"no output-length column found .*pass --output-column NAME or a fixed --output-tokens N"),
    "no prompt column": (("timestamp", "y", "output_length"), [], r"no prompt-length column found"),
    "given column missing": (("timestamp", "input_length", "output_length"), ["--prompt-column", "nope"],
                             r"--prompt-column 'nope' is not a column of trace.csv; columns: timestamp, "),
    "unknown preset": (("timestamp", "input_length", "output_length"), ["--slo-preset", "gold"],
                       r"--slo-preset 'gold': unknown; choose one of chatbot, coding, summarization"),
    "multi-stage app": (("timestamp", "input_length", "output_length"), ["--app", "reasoning"],
                        r"--app 'reasoning': .*copy workloads/reasoning.yaml"),
    "bad time unit": (("timestamp", "input_length", "output_length"), ["--time-unit", "h"],
                      r"--time-unit 'h': use s, ms or us"),
    "unit without times": (("a", "input_length", "output_length"), ["--time-unit", "ms"],
                           r"--time-unit ms: trace.csv has no timestamp column"),
    "bad name": (("timestamp", "input_length", "output_length"), ["--out", "x.yaml", "--", "a/b"],
                 r"NAME 'a/b': use letters, digits"),
    "non-numeric counts": (("timestamp", "input_length", "output_length"), ["--prompt-column", "timestamp",
                                                                            "--output-column", "output_length"],
                           r"prompt_tokens_column: column 'timestamp' .*must hold token counts"),
}


@pytest.mark.parametrize("case", sorted(BAD_NEW))
def test_bad_new_inputs_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    cols, extra, pattern = BAD_NEW[case]
    data = {c: [0.5, 1.5, 2.5] if c in ("timestamp", "time", "a") else [10, 20, 30] for c in cols}
    pd.DataFrame(data).to_csv("trace.csv", index=False)
    args = ["--from-trace", "trace.csv", *extra]
    res = _new(tmp_path, *(args if "--" in extra else ["t", *args]))
    line = _one_line(res)
    assert re.search(pattern, line), line
    assert not Path("t.yaml").exists()  # nothing half-written


def test_existing_out_missing_file_and_unwritable_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _trace().to_csv("trace.csv", index=False)
    Path("t.yaml").write_text("# mine\n")
    assert "--out t.yaml: exists; pass --force" in _one_line(_new(tmp_path, "t", "--from-trace", "trace.csv"))
    assert Path("t.yaml").read_text() == "# mine\n"
    assert "file not found" in _one_line(_new(tmp_path, "t", "--from-trace", "nope.csv"))
    assert "cannot tell the file format" in _one_line(_new(tmp_path, "t", "--from-trace", "t.yaml"))
    Path("afile").write_text("")
    assert "--out afile/t.yaml: cannot write there" in _one_line(
        _new(tmp_path, "t", "--from-trace", "trace.csv", "--out", "afile/t.yaml"))
    assert "exactly one of --from-trace FILE or --from-hf" in _one_line(_new(tmp_path, "t"))


# --- 2. Hugging Face datasets (saved to disk: no network) --------------------------------------------


def test_new_from_a_saved_hf_dataset_with_text_and_a_fixed_output(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    prompts = ["Write a haiku about the sea.", "Explain TCP slow start in two sentences.", "def add(a, b):"]
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"prompt": prompts, "id": [1, 2, 3]})}) \
        .save_to_disk("hfdata")
    res = _new(tmp_path, "hf", "--from-hf", "hfdata", "--split", "test", "--output-tokens", "64")
    assert res.exit_code == 0, res.output
    assert "prompt" not in yaml.safe_load(Path("hf.yaml").read_text())["arrival"]
    raw = yaml.safe_load(Path("hf.yaml").read_text())
    assert raw["apps"][0]["lengths"] == {"dataset": "hfdata", "split": "test", "text_column": "prompt",
                                         "output_tokens": 64, "max_context": 8192}
    assert raw["arrival"] == {"process": "poisson"} and "no timestamp column: arrivals are Poisson" in res.output
    wl = generate(load_spec("hf.yaml"), perf=_perf(), seed=0, num_requests=20)
    assert {r.text for r in wl.requests} <= set(prompts) and {r.stages[0].output_tokens for r in wl.requests} == {64}
    assert "'train' is not a split of" in _one_line(_new(tmp_path, "hf2", "--from-hf", "hfdata",
                                                         "--output-tokens", "64"))


def test_an_uncached_hub_id_is_one_offline_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    line = _one_line(_new(tmp_path, "x", "--from-hf", "nobody-here/no-such-dataset-xyz"))
    assert "'nobody-here/no-such-dataset-xyz' (split train) is not available offline" in line
    assert "download it once with" in line


# --- 3. workloads show on a trace ----------------------------------------------------------------------


def _quantised(tmp_path: Path, ticks: int = 30, per_tick: int = 10, tick_s: float = 3.0) -> Path:
    """A trace logged in ``tick_s`` ticks, ``per_tick`` requests stamped with each tick's time."""
    rng = np.random.default_rng(1)
    n = ticks * per_tick
    pd.DataFrame({"timestamp": np.repeat(np.arange(ticks) * tick_s, per_tick),
                  "input_length": rng.integers(100, 900, n), "output_length": rng.integers(10, 90, n)}
                 ).to_csv(tmp_path / "ticks.csv", index=False)
    res = runner.invoke(app, ["workloads", "new", "ticks", "--from-trace", str(tmp_path / "ticks.csv"),
                              "--out", str(tmp_path / "ticks.yaml")])
    assert res.exit_code == 0 and "jitter_s: auto" in res.output, res.output  # a hint, not a silent change
    return tmp_path / "ticks.yaml"


def _set_arrival(path: Path, **fields: object) -> Path:
    raw = yaml.safe_load(path.read_text())
    raw["arrival"].update(fields)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_show_reports_gaps_ties_and_clipping(tmp_path: Path) -> None:
    spec = _quantised(tmp_path)
    res = runner.invoke(app, ["workloads", "show", str(spec), "--rate", "5", "-n", "200"])
    assert res.exit_code == 0, res.output
    assert "300 rows over 87 s" in res.output
    # 270 of the 299 recorded gaps are ties inside a tick:
    assert re.search(r"recorded gaps +│ IAT p50 0 ms, p90 0 ms, p99 3 s; gaps < 1 ms: 90\.3%", res.output), res.output
    assert "arrival.jitter_s: auto spreads each tick's requests" in res.output and "3 s ticks" in res.output
    assert re.search(r"custom +│ ticks.csv +│ 8,192 +│ 0 of 300 \(0\.0%\) +│ 0 of ", res.output)
    # A clipping spec says how much it cut.
    raw = yaml.safe_load(spec.read_text())
    raw["apps"][0]["lengths"]["max_context"] = 500
    spec.write_text(yaml.safe_dump(raw))
    table = pd.read_csv(tmp_path / "ticks.csv")
    cut = int(np.maximum(0, table.input_length - 499).sum())
    res = runner.invoke(app, ["workloads", "show", str(spec), "-n", "100"])
    assert f"{cut:,} of {int(table.input_length.sum()):,}" in res.output, res.output
    # With jitter the hint goes and the generated gaps are no longer ties.
    _set_arrival(spec, jitter_s="auto")
    res = runner.invoke(app, ["workloads", "show", str(spec), "--rate", "5", "-n", "200"])
    assert "spreads each tick" not in res.output
    share = float(re.search(r"inter-arrival +│ .*gaps < 1 ms: ([\d.]+)%", res.output).group(1))
    assert share < 2.0, res.output


# --- 4. trace replay options ---------------------------------------------------------------------------


def test_jitter_spreads_each_tick_deterministically_and_keeps_rows_paired(tmp_path: Path) -> None:
    spec_path = _quantised(tmp_path)
    plain = generate(load_spec(spec_path), perf=_perf(), seed=0, num_requests=200, rate_rps=5)
    assert arr.iat_quantiles([r.arrival_s for r in plain.requests])[1] > 0.8  # bursts of simultaneous requests
    spec = load_spec(_set_arrival(spec_path, jitter_s=3.0))
    a = generate(spec, perf=_perf(), seed=0, num_requests=200, rate_rps=5)
    b = generate(spec, perf=_perf(), seed=0, num_requests=200, rate_rps=5)
    c = generate(spec, perf=_perf(), seed=1, num_requests=200, rate_rps=5)
    times = np.array([r.arrival_s for r in a.requests])
    assert a.requests == b.requests and [r.arrival_s for r in c.requests] != list(times)
    assert arr.iat_quantiles(times)[1] < 0.02 and (len(times) - 1) / times[-1] == pytest.approx(5.0)
    assert arr.iat_cv(times) < 1.2  # spread over the tick: about Poisson-like, not 10-request bursts
    table = pd.read_csv(tmp_path / "ticks.csv")
    rows = set(zip(table.input_length, table.output_length, strict=True))
    assert all((r.stages[0].prompt_tokens, r.stages[0].output_tokens) in rows for r in a.requests)
    # auto = the smallest positive gap between distinct times: the 3 s tick.
    assert arr.quantisation_tick_s(pd.read_csv(tmp_path / "ticks.csv").timestamp.to_numpy()) == 3.0
    auto = generate(load_spec(_set_arrival(spec_path, jitter_s="auto")), perf=_perf(), seed=0, num_requests=200,
                    rate_rps=5)
    assert [r.arrival_s for r in auto.requests] == list(times)


def test_native_rate_replays_as_recorded_and_refuses_a_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df = _trace(400, span_s=200.0)
    df.to_csv("trace.csv", index=False)
    assert _new(tmp_path, "nat", "--from-trace", "trace.csv").exit_code == 0
    spec = load_spec(_set_arrival(Path("nat.yaml"), rate="native", random_start=False))
    wl = generate(spec, perf=_perf(), seed=0, num_requests=100)
    times = np.array([r.arrival_s for r in wl.requests])
    ts = df.timestamp.to_numpy()
    np.testing.assert_allclose(times, ts[:100] - ts[0])  # the recorded seconds, unscaled
    assert wl.spec["rate_rps"] == pytest.approx(399 / (ts[-1] - ts[0]))
    with pytest.raises(UserError, match=r"arrival.rate: native replays .* cannot run at 3 req/s; drop --rate"):
        generate(spec, perf=_perf(), seed=0, num_requests=100, rate_rps=3)
    line = _one_line(runner.invoke(app, ["run", "--workload", "nat.yaml", "--rate", "3", "-n", "20"]))
    assert "arrival.rate: native" in line
    # A capacity search is refused by its preflight (it checks the highest rate it may ask for), in one
    # line, before any results folder exists.
    res = runner.invoke(app, ["capacity", "--workload", "nat.yaml", "--scheduler", "vllm", "--quick",
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.output.startswith("error:") and len(res.output.strip().splitlines()) == 1, res.output
    assert "arrival.rate: native" in res.output and not (tmp_path / "out").exists()
    # Callers that know their rate up front (a search: its highest) get the line before any folder exists.
    from slobench.workloads.generate import check_sources

    with pytest.raises(UserError, match="arrival.rate: native"):
        check_sources(spec, rate_rps=8.0)
    check_sources(spec)
    res = runner.invoke(app, ["run", "--workload", "nat.yaml", "-n", "20", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output


def test_thinning_keeps_real_time_and_refuses_rates_above_native(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df = _trace(4000, span_s=1000.0)  # native ≈ 4 req/s
    df.to_csv("trace.csv", index=False)
    assert _new(tmp_path, "thin", "--from-trace", "trace.csv").exit_code == 0
    spec = load_spec(_set_arrival(Path("thin.yaml"), scale="thin"))
    native = arr.native_rate(df.timestamp.to_numpy())
    wl = generate(spec, perf=_perf(), seed=0, num_requests=1500, rate_rps=1.0)
    times = np.array([r.arrival_s for r in wl.requests])
    assert (len(times) - 1) / times[-1] == pytest.approx(1.0, rel=0.1)  # target on average, not exactly
    assert wl.requests == generate(spec, perf=_perf(), seed=0, num_requests=1500, rate_rps=1.0).requests
    rows = set(zip(df.input_length, df.output_length, strict=True))
    assert all((r.stages[0].prompt_tokens, r.stages[0].output_tokens) in rows for r in wl.requests)
    with pytest.raises(UserError, match=rf"scale: thin .* cannot reach 9 req/s above the trace's native "
                                        rf"{native:.3g} req/s"):
        generate(spec, perf=_perf(), seed=0, num_requests=100, rate_rps=9)
    line = _one_line(runner.invoke(app, ["run", "--workload", "thin.yaml", "--rate", "9", "-n", "20"]))
    assert "arrival.scale: thin" in line and "--rate-max" in line


BAD_ARRIVALS = {
    "jitter on poisson": ({"process": "poisson", "jitter_s": 1.0}, r"`arrival`: jitter_s only apply to process: "
                                                                    r"trace"),
    "negative jitter": ({"jitter_s": -1.0}, r"`arrival.jitter_s`: .*jitter_s must be a finite number"),
    "jitter word": ({"jitter_s": "lots"}, r"`arrival.jitter_s"),
    "native and thin": ({"rate": "native", "scale": "thin"}, r"scale: thin thins .* rate: native has none"),
    "unknown rate": ({"rate": "fast"}, r"`arrival.rate`: Input should be 'scaled' or 'native'"),
    "unknown unit": ({"timestamp_unit": "h"}, r"`arrival.timestamp_unit`: Input should be 's', 'ms' or 'us'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRIVALS))
def test_bad_trace_options_are_one_line_naming_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         case: str) -> None:
    monkeypatch.chdir(tmp_path)
    _trace(20).to_csv("trace.csv", index=False)
    assert _new(tmp_path, "t", "--from-trace", "trace.csv").exit_code == 0
    fields, pattern = BAD_ARRIVALS[case]
    raw = yaml.safe_load(Path("t.yaml").read_text())
    raw["arrival"] = {"process": "poisson"} if fields.get("process") == "poisson" else raw["arrival"]
    raw["arrival"].update({k: v for k, v in fields.items() if k != "process"})
    Path("t.yaml").write_text(yaml.safe_dump(raw))
    line = _one_line(runner.invoke(app, ["workloads", "show", "t.yaml"]))
    assert re.search(pattern, line), line


def test_replay_options_reuse_the_cached_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probes at many rates must not re-read a user's trace (100k rows cost seconds per read)."""
    import slobench.workloads.sources as sources

    monkeypatch.chdir(tmp_path)
    _trace(2000, span_s=500.0).to_csv("trace.csv", index=False)
    assert _new(tmp_path, "t", "--from-trace", "trace.csv").exit_code == 0
    spec = load_spec(_set_arrival(Path("t.yaml"), jitter_s="auto", scale="thin"))
    calls = {"n": 0}
    real = sources._read_timestamps

    def count(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(sources, "_read_timestamps", count)
    for rate in (0.5, 1.0, 2.0, 3.0):
        generate(spec, perf=_perf(), seed=0, num_requests=300, rate_rps=rate)
    assert calls["n"] == 0  # read once by `workloads new` in this process, then cached


# --- 5. README's example, exactly as written -------------------------------------------------------------


def _readme_example() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- byod-example -->(.*?)<!-- /byod-example -->", text, re.S)
    assert block, "README.md lost its <!-- byod-example --> markers"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line.startswith("slobench ")]


def test_readme_bring_your_own_trace_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README shows bringing a trace in three lines; run exactly those lines on a small trace.csv."""
    lines = _readme_example()
    assert len(lines) == 3, lines
    monkeypatch.chdir(tmp_path)
    _trace(300).to_csv("trace.csv", index=False)
    for line in lines:
        args = shlex.split(line, comments=True)[1:]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, f"{line}\n{res.output}"
    assert list(Path("results").glob("*/report.html")), "compare wrote no report"


def test_docs_describe_every_workload_yaml_field() -> None:
    """docs/workloads.md is the YAML reference: a field added to a spec model must be documented there."""
    from slobench.workloads import spec as s

    doc = (ROOT / "docs" / "workloads.md").read_text()
    models = (s.WorkloadSpec, s.AppSpec, s.LengthSpec, s.SLOSpec, s.ToolSpec, s.SessionSpec, s.ArrivalSpec)
    # A field is documented in a table (`field`) or in the annotated YAML block (`field:` opening a line).
    missing = [f"{m.__name__}.{f}" for m in models for f in m.model_fields
               if f"`{f}`" not in doc and not re.search(rf"^\s*-?\s*{f}:", doc, re.M)]
    assert not missing, f"fields missing from docs/workloads.md: {missing}"


def test_a_spec_written_back_by_to_yaml_loads_again(tmp_path: Path) -> None:
    """Sweeps write workload variants with every default spelled out; the trace-only defaults must not
    then be refused on a Poisson or Gamma spec."""
    from slobench.workloads import apply_overrides

    for name, overrides in (("chatbot", {"burstiness_cv": 2.0}), ("coding-bursty", {"slo_scale": 2.0})):
        spec = apply_overrides(load_spec(name), **overrides)
        spec.to_yaml(tmp_path / f"{name}.yaml")
        assert load_spec(tmp_path / f"{name}.yaml") == spec
