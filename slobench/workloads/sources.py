"""Length sources: where a request's prompt/output token counts (and optional text) come from.

A source is loaded once into a `LengthTable` (numpy columns, one row per record) and sampled
row-wise with a seeded Generator, so input and output lengths keep their joint distribution
(the arXiv set has Pearson −0.46 between them; independent sampling would lose that).

Shipped traces are read with pandas (fast, fixed formats, see ``slobench/data/traces/SOURCES.md``);
user files go through ``datasets.load_dataset("csv"|"json"|"parquet", data_files=...)`` with the
Hub switched offline, so a typo never turns into a network download.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from slobench.errors import InputWarning, UserError

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
TRACE_DIR = DATA_DIR / "traces"

# short name -> (file, prompt column, output column, timestamp column or None)
SHIPPED_TRACES: dict[str, tuple[Path, str, str, str | None]] = {
    "azure_code": (TRACE_DIR / "azure_llm_2023_code.csv", "ContextTokens", "GeneratedTokens", "TIMESTAMP"),
    "azure_conv": (TRACE_DIR / "azure_llm_2023_conv.csv", "ContextTokens", "GeneratedTokens", "TIMESTAMP"),
    "sharegpt": (TRACE_DIR / "sarathi_sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
                 "num_prefill_tokens", "num_decode_tokens", None),
    "arxiv_summarization": (TRACE_DIR / "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
                            "num_prefill_tokens", "num_decode_tokens", None),
    "s1k_reasoning": (TRACE_DIR / "s1k_reasoning_lengths_r1tok.csv", "input_tokens", "thinking_tokens", None),
    "toolbench_rounds": (TRACE_DIR / "toolbench_dfsdt_rounds_cl100k.csv", "input_tokens", "output_tokens", None),
    "humaneval": (DATA_DIR / "HumanEval.jsonl.gz", "prompt", "canonical_solution", None),
}

_WORD_OR_PUNCT = re.compile(r"\w+|[^\w\s]")
# cl100k tokens per regex word/punctuation piece, calibrated on HumanEval: the regex gives mean
# 120 (prompt) / 50 (solution) pieces vs SOURCES.md's cl100k means 131 / 54 → ×1.09 (±2%).
_TOKENS_PER_PIECE = 1.09


def estimate_tokens(text: str) -> int:
    """Cheap tokenizer-free token count (≈cl100k within a few % on code/English; documented above).

    Used when no tokenizer is given: the simulator only needs counts, and pulling in transformers
    plus a tokenizer download for a length estimate is not worth it.
    """
    return max(1, round(len(_WORD_OR_PUNCT.findall(text)) * _TOKENS_PER_PIECE))


@dataclass(frozen=True)
class LengthTable:
    """Columns of one length source; optional columns are None when the source lacks them.

    answer: reasoning's answer-stage tokens (output = thinking tokens then).
    group/round/increment: tool-calling rounds; ``increment`` is each round's new context tokens
    (round 1: the whole prompt; later: tool response + chat framing).
    prefix: per row, the hashes of the prompt's leading blocks (a trace's ``hash_ids``), kept with the
    row's lengths so sampling and replay carry them together; None when the source has none.
    """

    name: str
    prompt: np.ndarray
    output: np.ndarray
    answer: np.ndarray | None = None
    text: list[str] | None = None
    timestamps_s: np.ndarray | None = None
    group: np.ndarray | None = None
    increment: np.ndarray | None = None
    prefix: list[tuple[int, ...]] | None = None

    def __len__(self) -> int:
        return int(self.prompt.size)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Row indices, drawn uniformly with replacement (joint lengths kept)."""
        return rng.integers(0, len(self), size=n)

    def groups(self) -> list[np.ndarray]:
        """Row indices of each multi-round group (a ToolBench query), in round order."""
        if self.group is None:
            return [np.array([i]) for i in range(len(self))]
        _, first, inverse = np.unique(self.group, return_index=True, return_inverse=True)
        order = np.argsort(first)
        return [np.flatnonzero(inverse == k) for k in order]


def _timestamps_to_s(col: pd.Series) -> np.ndarray:
    """Numeric columns are seconds already; anything else is parsed as datetimes."""
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=float)
    t = pd.to_datetime(col.astype(str), format="mixed")
    return (t - t.min()).dt.total_seconds().to_numpy()


@lru_cache(maxsize=16)
def load_shipped(name: str) -> LengthTable:
    """A shipped trace by short name (cached: the files are read-only package data)."""
    if name not in SHIPPED_TRACES:
        raise UserError(f"unknown trace '{name}'; known: {', '.join(sorted(SHIPPED_TRACES))}")
    path, pcol, ocol, tcol = SHIPPED_TRACES[name]
    if not path.exists():
        raise UserError(f"shipped trace file {path} is missing; reinstall slobench")
    if name == "humaneval":
        with gzip.open(path, "rt") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        texts = [r["prompt"] for r in rows]
        return LengthTable(
            name=name,
            prompt=np.array([estimate_tokens(t) for t in texts], dtype=np.int64),
            output=np.array([estimate_tokens(r["canonical_solution"]) for r in rows], dtype=np.int64),
            text=texts,
        )
    df = pd.read_csv(path)
    ts = _timestamps_to_s(df[tcol]) if tcol else None
    answer = df["answer_tokens"].to_numpy(np.int64) if name == "s1k_reasoning" else None
    group = inc = None
    if name == "toolbench_rounds":
        df = df.sort_values(["group", "query_id", "round"], kind="stable").reset_index(drop=True)
        group = (df["group"].astype(str) + ":" + df["query_id"].astype(str)).to_numpy()
        prev_ctx = (df["input_tokens"] + df["output_tokens"]).shift(1)
        first = df["round"] == 1
        inc = np.where(first, df["input_tokens"], df["input_tokens"] - prev_ctx).astype(np.int64)
        # Guard: an increment can never be below the tool response the round appends.
        inc = np.maximum(inc, np.where(first, 1, df["tool_response_tokens_before"].to_numpy() + 1))
    return LengthTable(name=name, prompt=df[pcol].to_numpy(np.int64), output=df[ocol].to_numpy(np.int64),
                       answer=answer, timestamps_s=ts, group=group, increment=inc)


def _infer_format(path: Path) -> str:
    suffixes = "".join(path.suffixes).lower()
    if ".parquet" in suffixes:
        return "parquet"
    if ".jsonl" in suffixes or ".json" in suffixes:
        return "json"
    if ".csv" in suffixes or ".tsv" in suffixes:
        return "csv"
    raise UserError(f"{path}: cannot tell the file format from its name; use .csv, .json, .jsonl or .parquet")


def _first_line(exc: BaseException) -> str:
    """The innermost cause's first message line: readers (datasets, pyarrow, pandas) wrap the
    parser's error, and that one says what is wrong with the file."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip()
    return text.splitlines()[0] if text else type(root).__name__


def _tokenize_counts(texts: list[str], tokenizer: str | None, origin: str) -> np.ndarray:
    if tokenizer is None:
        return np.array([estimate_tokens(t) for t in texts], dtype=np.int64)
    try:
        from transformers import AutoTokenizer  # optional dependency
    except ImportError:
        raise UserError(f"{origin}.tokenizer '{tokenizer}' needs the transformers package; "
                        "pip install transformers, or drop `tokenizer` to use the built-in estimate") from None
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    except (OSError, ValueError) as exc:  # offline on purpose: a typo must not start a download
        raise UserError(f"{origin}.tokenizer: cannot load '{tokenizer}' from the local Hugging Face cache or "
                        f"folder ({_first_line(exc)}); download it first or give a local path") from None
    return np.array([len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]], dtype=np.int64)


# Parsed user files, keyed by (resolved path, mtime, size, what was read from it): a capacity search
# generates its workload once per probe, and parsing a 100k-row file costs seconds each time. A file
# changed on disk has a new key. Bounded, so a long-lived process holding many traces stays small.
_FILE_CACHE: OrderedDict[tuple, object] = OrderedDict()
_FILE_CACHE_SIZE = 8


def _cached(path: Path, what: tuple, read):  # noqa: ANN001, ANN202
    """``read()``, or its earlier result for the same file contents and ``what`` (errors are not cached)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, *what)
    if key in _FILE_CACHE:
        _FILE_CACHE.move_to_end(key)
        return _FILE_CACHE[key]
    value = read()
    _FILE_CACHE[key] = value
    while len(_FILE_CACHE) > _FILE_CACHE_SIZE:
        _FILE_CACHE.popitem(last=False)
    return value


def load_file(path: Path, *, prompt_col: str | None, output_col: str | None, text_col: str | None,
              tokenizer: str | None, answer_col: str | None = None, output_tokens: int | None = None,
              origin: str = "lengths", hash_col: str | None = None, block_tokens: int = 512) -> LengthTable:
    """Any local CSV/JSON(L)/parquet via `datasets`, offline; columns mapped by the spec (parsed once per
    process for the same file contents and columns).

    ``origin`` is the spec field that named the file (``apps.0.lengths``): every error about the
    file or a column starts with it, so the user knows which YAML entry to fix. Token counts of 0 are
    accepted and sent as 1 token (a request needs one), with an `InputWarning` counting those rows.
    """
    if not path.exists():
        raise UserError(f"{origin}.path: file {path} not found; give an existing CSV/JSON/JSONL/parquet path")
    cols = (prompt_col, output_col, text_col, tokenizer, answer_col, output_tokens, hash_col, block_tokens)
    table = _cached(path, ("lengths", *cols), lambda: _read_file(
        path, prompt_col=prompt_col, output_col=output_col, text_col=text_col, tokenizer=tokenizer,
        answer_col=answer_col, output_tokens=output_tokens, origin=origin, hash_col=hash_col,
        block_tokens=block_tokens))
    zeros = [(f"'{c}'", int(np.count_nonzero(v == 0))) for c, v in
             ((prompt_col, table.prompt), (output_col, table.output), (answer_col, table.answer))
             if c is not None and v is not None]
    zeros = [(c, n) for c, n in zeros if n]
    if zeros:
        rows = int(np.count_nonzero((table.prompt == 0) | (table.output == 0)
                                    | ((table.answer == 0) if table.answer is not None else False)))
        where = ", ".join(f"column {c}: {n}" for c, n in zeros)
        warnings.warn(f"{origin}: {rows:,} of {len(table):,} rows of {path} have a token count of 0 ({where}); each "
                      "such count is sent as 1 token (a request needs at least one); drop those rows to leave "
                      "them out", InputWarning, stacklevel=2)
    return table


def _quiet_datasets():  # noqa: ANN202
    """The `datasets` module, offline and silent.

    Offline (unless the user's environment says otherwise) so a typo in a path or id never turns into a
    network download. Progress bars off process-wide on purpose: the run's rich progress bar owns the
    terminal, and datasets' tqdm bars ("Generating train split") would be drawn over it.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets  # heavy import: only when a user file or dataset is used

    datasets.disable_progress_bars()
    return datasets


def _read_file(path: Path, *, prompt_col: str | None, output_col: str | None, text_col: str | None,
               tokenizer: str | None, answer_col: str | None, output_tokens: int | None,
               origin: str, hash_col: str | None = None, block_tokens: int = 512) -> LengthTable:
    fmt = _infer_format(path)
    datasets = _quiet_datasets()
    ds_logger = logging.getLogger("datasets")
    level = ds_logger.level
    ds_logger.setLevel(logging.CRITICAL)  # its own "Failed to read file" log line would duplicate ours
    try:
        ds = datasets.load_dataset(fmt, data_files=str(path), split="train")
    except Exception as exc:  # any parse failure here is a problem with the user's file
        reason = _first_line(exc)
        if "corresponds to no data" in reason:  # datasets' words for a header-only file
            ds = None
        else:
            raise UserError(f"{origin}.path: cannot read {path} as {fmt}: {reason}") from None
    finally:
        ds_logger.setLevel(level)
    if ds is None or len(ds) == 0:
        raise UserError(f"{origin}.path: {path} has no rows; give a file with one row per request")
    return _table_from(ds, str(path), prompt_col=prompt_col, output_col=output_col, text_col=text_col,
                       tokenizer=tokenizer, answer_col=answer_col, output_tokens=output_tokens, origin=origin,
                       hash_col=hash_col, block_tokens=block_tokens)


def open_dataset(ref: str, split: str = "train", origin: str = "lengths"):  # noqa: ANN201
    """A Hugging Face dataset by hub id (from the local cache only) or a ``save_to_disk`` folder, one split.

    Never downloads: a benchmark's probes must not depend on the network, and an id that is not cached
    is one line saying how to fetch it once. A `DatasetDict` (several splits) gives its ``split``.
    """
    # Spec fields are named `apps.0.lengths.dataset`/`.split`; `workloads new` names its flags instead.
    at_ds, at_split = ("--from-hf", "--split") if origin.startswith("--") else (f"{origin}.dataset",
                                                                                 f"{origin}.split")
    datasets = _quiet_datasets()
    ds_logger = logging.getLogger("datasets")
    level = ds_logger.level
    ds_logger.setLevel(logging.CRITICAL)
    try:
        if Path(ref).is_dir():
            try:
                ds = datasets.load_from_disk(ref)
            except Exception as exc:  # a folder that is not a saved dataset
                raise UserError(f"{at_ds}: cannot read folder {ref} as a saved dataset "
                                f"({_first_line(exc)}); give a folder written by Dataset.save_to_disk") from None
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise UserError(f"{at_split}: '{split}' is not a split of {ref}; splits: {sorted(ds)}")
                ds = ds[split]
        else:
            try:
                ds = datasets.load_dataset(ref, split=split)
            except ValueError as exc:
                if "Unknown split" in str(exc) or "split" in _first_line(exc).lower():
                    raise UserError(f"{at_split}: {_first_line(exc)}") from None
                raise UserError(_not_cached(ref, split, at_ds, exc)) from None
            except Exception as exc:  # offline: not in the cache (ConnectionError, FileNotFoundError, ...)
                raise UserError(_not_cached(ref, split, at_ds, exc)) from None
    finally:
        ds_logger.setLevel(level)
    if len(ds) == 0:
        raise UserError(f"{at_ds}: split '{split}' of {ref} has no rows")
    return ds


def _not_cached(ref: str, split: str, where: str, exc: BaseException) -> str:
    return (f"{where}: '{ref}' (split {split}) is not available offline ({_first_line(exc)[:120]}); "
            f"download it once with: python -c \"import datasets; datasets.load_dataset('{ref}', split='{split}')\" "
            "(needs network), or give a local file or save_to_disk folder")


def load_dataset_lengths(ref: str, *, split: str, prompt_col: str | None, output_col: str | None,
                         text_col: str | None, tokenizer: str | None, answer_col: str | None = None,
                         output_tokens: int | None = None, origin: str = "lengths", hash_col: str | None = None,
                         block_tokens: int = 512) -> LengthTable:
    """Lengths from a Hugging Face dataset (see `open_dataset`), parsed once per process."""
    key = ("dataset", ref, split, prompt_col, output_col, text_col, tokenizer, answer_col, output_tokens,
           hash_col, block_tokens)
    if key in _FILE_CACHE:
        _FILE_CACHE.move_to_end(key)
        return _FILE_CACHE[key]  # type: ignore[return-value]
    table = _table_from(open_dataset(ref, split, origin), ref, prompt_col=prompt_col, output_col=output_col,
                        text_col=text_col, tokenizer=tokenizer, answer_col=answer_col,
                        output_tokens=output_tokens, origin=origin, hash_col=hash_col, block_tokens=block_tokens)
    _FILE_CACHE[key] = table
    while len(_FILE_CACHE) > _FILE_CACHE_SIZE:
        _FILE_CACHE.popitem(last=False)
    return table


def _table_from(ds, path: str, *, prompt_col: str | None, output_col: str | None,  # noqa: ANN001
                text_col: str | None, tokenizer: str | None, answer_col: str | None, output_tokens: int | None,
                origin: str, hash_col: str | None = None, block_tokens: int = 512) -> LengthTable:
    """A `LengthTable` from an opened dataset's columns; every missing or bad column is one line."""
    cols = set(ds.column_names)

    def col(name: str | None, field: str) -> list | None:
        if name is None:
            return None
        if name not in cols:
            raise UserError(f"{origin}.{field}: column '{name}' is not in {path}; columns: {sorted(cols)}")
        # Through Arrow, not ``ds[name]``: datasets ≥ 3 hands that out as a lazy column decoded row by row
        # (12 s for two 100k-row columns; this is milliseconds).
        return ds.with_format("arrow")[name].to_pylist()  # Python values: an empty cell stays None

    def counts(name: str | None, field: str) -> np.ndarray | None:
        """A token-count column as int64; empty or non-numeric cells are an error, not a silent 0."""
        values = col(name, field)
        if values is None:
            return None
        num = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(num) | (num < 0) | (num != np.round(num)))
        if bad.size:
            raise UserError(f"{origin}.{field}: column '{name}' of {path} must hold token counts (whole numbers "
                            f"≥ 0); row {bad[0] + 1} is {values[bad[0]]!r} ({bad.size} such rows)")
        return num.astype(np.int64)

    texts = [str(t) for t in col(text_col, "text_column")] if text_col else None
    prompt = counts(prompt_col, "prompt_tokens_column")
    if prompt is None:
        if texts is None:
            raise UserError(f"{origin}: set prompt_tokens_column or text_column for {path}")
        prompt = _tokenize_counts(texts, tokenizer, origin)
    output = counts(output_col, "output_tokens_column")
    if output is None:
        if output_tokens is None:
            raise UserError(f"{origin}: set output_tokens_column or a fixed output_tokens for {path}")
        output = np.full(len(prompt), output_tokens, dtype=np.int64)
    answer = counts(answer_col, "answer_tokens_column")
    prefix = None
    if hash_col is not None:
        prefix = parse_hashes(col(hash_col, "hash_column") or [], prompt, block_tokens,
                              f"{origin}.hash_column: column '{hash_col}' of {path}")
    return LengthTable(name=str(path), prompt=prompt, output=output, answer=answer, text=texts, prefix=prefix)


def parse_hashes(values: list, prompt: np.ndarray, block_tokens: int, where: str) -> list[tuple[int, ...]]:
    """Each row's block hashes (Mooncake's ``hash_ids``) as a tuple of ints, or one line naming the row.

    A cell is a list (JSON/JSONL/parquet) or its JSON text (a CSV cell ``"[0, 1, 2]"``); ids are whole numbers
    ≥ 0; a row may not hold more hashes than its prompt has blocks (hashes × block tokens ≤ prompt + one
    block: the last hash may cover a partial block). ``where`` names the spec field, column and file.
    """
    out: list[tuple[int, ...]] = []
    for i, v in enumerate(values):
        cell = v
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                v = None
        if not isinstance(v, list):
            raise UserError(f"{where} must hold a list of block hashes per row (JSON such as [0, 1, 2]; [] for a "
                            f"row with no shared prefix); row {i + 1} is {cell!r}")
        for x in v:
            if isinstance(x, bool) or not isinstance(x, int) or x < 0:
                raise UserError(f"{where}: row {i + 1} has hash id {x!r}; hash ids are whole numbers ≥ 0 (fix or "
                                "drop that row)")
        if len(v) * block_tokens > int(prompt[i]) + block_tokens:
            raise UserError(f"{where}: row {i + 1} has {len(v)} hashes of {block_tokens} tokens "
                            f"({len(v) * block_tokens} tokens) for a prompt of {int(prompt[i])} tokens; set "
                            "prefix_block_tokens to the block size the trace hashed (Mooncake: 512), or check the "
                            "prompt-length column")
        out.append(tuple(v))
    return out


TIME_UNITS_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def load_timestamps(path: Path, column: str, origin: str = "arrival", unit: str = "s") -> np.ndarray:
    """Arrival timestamps in seconds from a user CSV/JSON/parquet column: numbers in ``unit`` (s, ms, us), or
    datetimes (read once per process for the same file contents)."""
    if not path.exists():
        raise UserError(f"{origin}.trace: file {path} not found; give a shipped trace name or an existing file")
    return _cached(path, ("timestamps", column, unit), lambda: _read_timestamps(path, column, origin, unit))


def read_frame(path: Path, origin: str = "arrival.trace") -> pd.DataFrame:
    """A CSV/JSON(L)/parquet file as a DataFrame with pandas (fast; no per-row cast like `datasets`)."""
    fmt = _infer_format(path)
    read = {"csv": pd.read_csv, "json": lambda p: pd.read_json(p, lines=str(p).endswith((".jsonl", ".jsonl.gz"))),
            "parquet": pd.read_parquet}[fmt]
    try:
        return read(path)
    except Exception as exc:  # any parse failure here is a problem with the user's file
        raise UserError(f"{origin}: cannot read {path} as {fmt}: {_first_line(exc)}") from None


def _read_timestamps(path: Path, column: str, origin: str, unit: str = "s") -> np.ndarray:
    df = read_frame(path, f"{origin}.trace")
    if column not in df.columns:
        raise UserError(f"{origin}.timestamp_column: column '{column}' is not in {path}; columns: {list(df.columns)}")
    if df[column].isna().any():
        row = int(np.flatnonzero(df[column].isna().to_numpy())[0]) + 1
        raise UserError(f"{origin}.timestamp_column: column '{column}' of {path} has an empty cell (row {row}); "
                        "every row needs a time")
    try:
        ts = _timestamps_to_s(df[column])
        if pd.api.types.is_numeric_dtype(df[column]):
            ts = ts * TIME_UNITS_S[unit]
    except (ValueError, TypeError) as exc:
        raise UserError(f"{origin}.timestamp_column: column '{column}' of {path} holds neither numbers (seconds) "
                        f"nor datetimes ({_first_line(exc)})") from None
    return check_timestamps(ts, f"{origin}.timestamp_column: column '{column}' of {path}")


def check_timestamps(ts: np.ndarray, where: str) -> np.ndarray:
    """Arrival times a replay can scale to a rate: finite, and not all the same.

    An ``inf`` would put every later arrival at infinity (the simulator never reaches it and loops);
    equal times have no span to stretch, so every request would arrive at t = 0 whatever the rate.
    ``where`` names the file and column (``arrival.timestamp_column: column 't' of x.csv``).
    """
    bad = np.flatnonzero(~np.isfinite(ts))
    if bad.size:
        more = f" ({bad.size} such rows)" if bad.size > 1 else ""
        raise UserError(f"{where} has a non-finite time {ts[bad[0]]} at row {bad[0] + 1}{more}; every row needs a "
                        "finite time")
    if ts.size > 1 and ts.min() == ts.max():
        raise UserError(f"{where}: all {ts.size} timestamps are equal ({ts[0]:g}), so a replay would send every "
                        "request at t = 0 at any rate; give distinct times, or use arrival.process: poisson "
                        "(or gamma/bursts) with this file as lengths only")
    return ts
