"""scripts/check_capacity_holds.py: the long-run check of issue 10's "Done means", on the default H100 setup or a
latency profile (``--profile``, e.g. the paper's fitted A100 profiles)."""

from __future__ import annotations

import pytest

from scripts import check_capacity_holds as holds


def test_a_bad_profile_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert holds.main(["--profile", "paper:nope", "--workloads", "coding", "--policies", "vllm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --profile: unknown latency profile 'paper:nope'")


def test_the_profile_reaches_the_search_and_the_long_run(capsys: pytest.CaptureFixture[str]) -> None:
    """ToolLLaMA-7B on an A100 (the paper's profile) carries a fraction of what the default H100 roofline does
    (full probes: 0.30 vs 1.75 req/s): a capacity below 1 req/s shows the search ran on the profile."""
    rc = holds.main(["--profile", "paper:toolllama-7b-a100", "--workloads", "toolcalling", "--policies", "vllm",
                     "--num-requests", "60", "--factor", "2"])
    out = capsys.readouterr().out
    assert rc in (0, 1), out
    row = next(ln for ln in out.splitlines() if ln.startswith("toolcalling   vllm"))
    assert 0 < float(row.split()[2]) < 1.0
    assert "2× att." in out and ("1 of 1 capacities hold (2× attainment" in out or "0 of 1" in out)
