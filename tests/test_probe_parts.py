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


def test_parts_folded_from_memory_match_parts_read_back(tmp_path: Path) -> None:
    """The tables `write_probe_part` returns fold into the same file as the parts read back from disk, also
    when only some are in memory and an earlier session's consolidated file holds others."""
    import pyarrow.parquet as pq

    def fold(run: Path, cached: set[str]) -> pa.Table:
        old = _frame("vllm", 0.5, 2)
        old.to_parquet(run / "requests.parquet", index=False)  # a resumed run's earlier probes
        frames = {"a": _frame("vllm", 1.0, 3), "b": _frame("vllm", 2.0, 2, err="timeout"),
                  "c": _frame("slos-serve", 1.0, 4)}
        written = {}
        for name, df in frames.items():
            table = write_probe_part(run, "requests", _key(df), df)
            if name in cached:
                written[_key(df)] = table
                results._part_path(run, "requests", _key(df)).write_bytes(b"torn")  # read back, it would fail
        order = [_key(frames["c"]), _key(old), _key(frames["a"]), _key(frames["b"])]
        path = consolidate_parts(run, "requests", order, written)
        assert path is not None and not (run / "parts").exists()
        return pq.read_table(path)

    runs = {name: tmp_path / name for name in ("disk", "some", "all")}
    for run in runs.values():
        run.mkdir()
    from_disk = fold(runs["disk"], set())
    assert from_disk.num_rows == 11
    for name, cached in (("some", {"b"}), ("all", {"a", "b", "c"})):
        got = fold(runs[name], cached)
        assert got.schema.equals(from_disk.schema, check_metadata=True)
        assert got.equals(from_disk), name


def test_collector_keeps_written_parts_within_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts are kept for the final fold only while they fit `WRITTEN_CACHE_BYTES`; a replaced part's bytes are
    given back."""
    from slobench.capacity import store as store_mod

    a, b = _frame("vllm", 1.0, 3), _frame("vllm", 2.0, 3)
    ta = write_probe_part(tmp_path, "requests", _key(a), a)
    monkeypatch.setattr(store_mod, "WRITTEN_CACHE_BYTES", int(ta.nbytes * 1.5))
    c = store_mod.Collector(out_dir=tmp_path, target=0.9, title="t")
    c._keep_written("requests", _key(a), ta)
    c._keep_written("requests", _key(b), write_probe_part(tmp_path, "requests", _key(b), b))
    assert list(c._written["requests"]) == [_key(a)]  # b did not fit
    c._keep_written("requests", _key(a), write_probe_part(tmp_path, "requests", _key(a), a))  # rewritten
    assert c._written_bytes == ta.nbytes
