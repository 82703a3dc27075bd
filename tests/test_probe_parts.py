"""Per-probe parts folded into one file: the Arrow path keeps every row, the order asked for, the dtypes pandas
reads back, and the newest copy of a probe; parts it cannot join go through pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from slobench.report import results
from slobench.report.results import consolidate_parts, probe_key, write_probe_part


def _frame(scheduler: str, rate: float, n: int, *, err: object = None, first: float = 0.0) -> pd.DataFrame:
    """A probe's stage records, tagged with its key (the columns `write_probe_part` is given)."""
    return pd.DataFrame({
        "request_id": np.arange(n, dtype=np.int64),
        "app": ["coding"] * n,
        "token_times_s": [[first + i, first + i + 0.5] for i in range(n)],
        "error": [err] * n,
        "measured": [i > 0 for i in range(n)],
        "workload": ["coding"] * n, "scheduler": [scheduler] * n, "rate_rps": [rate] * n, "seed": [0] * n,
    })


def _key(df: pd.DataFrame) -> tuple:
    return probe_key("coding", df.scheduler.iloc[0], df.rate_rps.iloc[0], 0)


def _expected(frames: list[pd.DataFrame], tmp_path: Path) -> pd.DataFrame:
    """What the pandas path wrote: the frames concatenated, read back through one parquet round trip."""
    p = tmp_path / "expected.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(p, index=False)
    out = pd.read_parquet(p)
    p.unlink()
    return out


def test_parts_fold_in_the_order_asked_and_match_pandas(tmp_path: Path) -> None:
    a, b, c = _frame("vllm", 1.0, 3), _frame("vllm", 2.0, 2, err="timeout"), _frame("slos-serve", 1.0, 4)
    for df in (a, b, c):
        write_probe_part(tmp_path, "requests", _key(df), df)
    stray = _frame("sarathi", 9.0, 2)  # a part whose probe is not in probes.csv: dropped
    write_probe_part(tmp_path, "requests", _key(stray), stray)

    path = consolidate_parts(tmp_path, "requests", [_key(c), _key(a), _key(b)])

    assert path == tmp_path / "requests.parquet"
    assert not (tmp_path / "parts").exists()
    got = pd.read_parquet(path)
    pd.testing.assert_frame_equal(got, _expected([c, a, b], tmp_path))
    assert got.token_times_s.iloc[0].tolist() == [0.0, 0.5]


def test_a_newer_part_replaces_the_consolidated_copy_and_others_stay(tmp_path: Path) -> None:
    """A resumed run: requests.parquet holds two probes; a part redoes one of them and adds a third."""
    old_a, old_b = _frame("vllm", 1.0, 3), _frame("vllm", 2.0, 2)
    pd.concat([old_a, old_b], ignore_index=True).to_parquet(tmp_path / "requests.parquet", index=False)
    new_a, c = _frame("vllm", 1.0, 5, first=100.0), _frame("vllm", 4.0, 1)
    write_probe_part(tmp_path, "requests", _key(new_a), new_a)
    write_probe_part(tmp_path, "requests", _key(c), c)

    got = pd.read_parquet(consolidate_parts(tmp_path, "requests", [_key(old_a), _key(old_b), _key(c)]))

    want = _expected([new_a, old_b, c], tmp_path)
    pd.testing.assert_frame_equal(got, want)


def test_a_column_null_in_one_part_joins_its_typed_copy(tmp_path: Path) -> None:
    """`error` is all None in one probe (an Arrow null column) and text in another."""
    a, b = _frame("vllm", 1.0, 2), _frame("vllm", 2.0, 2, err="timeout")
    for df in (a, b):
        write_probe_part(tmp_path, "requests", _key(df), df)
    got = pd.read_parquet(consolidate_parts(tmp_path, "requests", [_key(a), _key(b)]))
    assert got.error.isna().tolist() == [True, True, False, False]
    assert got.error.iloc[2] == "timeout"


def test_parts_arrow_cannot_join_go_through_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _frame("vllm", 1.0, 2), _frame("vllm", 2.0, 3)
    for df in (a, b):
        write_probe_part(tmp_path, "requests", _key(df), df)

    def refuse(*args: object, **kwargs: object) -> None:
        raise pa.ArrowInvalid("schemas differ")

    monkeypatch.setattr(pa, "concat_tables", refuse)
    got = pd.read_parquet(consolidate_parts(tmp_path, "requests", [_key(b), _key(a)]))
    pd.testing.assert_frame_equal(got, _expected([b, a], tmp_path))


def test_parts_dictionary_encode_only_text(tmp_path: Path) -> None:
    """Dictionary encoding is for the text columns only (numeric ones never repeat enough to pay)."""
    import pyarrow.parquet as pq

    a = _frame("vllm", 1.0, 50)
    write_probe_part(tmp_path, "requests", _key(a), a)
    part = next((tmp_path / "parts").glob("requests-*.parquet"))
    meta = pq.ParquetFile(part).metadata.row_group(0)
    encoded = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert any("DICTIONARY" in e for e in encoded["app"]), encoded["app"]
    assert not any("DICTIONARY" in e for e in encoded["request_id"]), encoded["request_id"]
    assert not any("DICTIONARY" in e for e in encoded["token_times_s.list.element"])
    assert results.read_probe_frames(tmp_path, "requests").request_id.tolist() == list(range(50))
