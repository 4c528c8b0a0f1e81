"""Reading landing files into line frames and decoding JSON lines, vectorised.

Every parser returns a :class:`Parsed`: the good records and the rejected ones, each rejected
record with its file, line number, raw text and a reason. ``len(good) + len(rejects)`` always
equals the number of records read, which the landing code checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl
from polars.exceptions import ComputeError, PolarsError

REJECT_SCHEMA = {"source_file": pl.Utf8, "line_no": pl.Int32, "raw_text": pl.Utf8, "reason": pl.Utf8}


@dataclass
class Parsed:
    """Result of parsing a batch of records: ``good`` rows and ``rejects`` with reasons."""

    good: pl.DataFrame
    rejects: pl.DataFrame
    records: int

    def __post_init__(self) -> None:
        if self.good.height + self.rejects.height != self.records:
            raise AssertionError(
                f"parser lost records: {self.records} read, {self.good.height} good, "
                f"{self.rejects.height} rejected"
            )


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def rejects_from(frame: pl.DataFrame, reason: str | pl.Expr, raw_col: str = "raw") -> pl.DataFrame:
    """Turn rows of ``frame`` (with source_file, line_no and raw text) into reject rows."""
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return frame.select(
        pl.col("source_file").cast(pl.Utf8),
        pl.col("line_no").cast(pl.Int32),
        pl.col(raw_col).cast(pl.Utf8).alias("raw_text"),
        reason_expr.cast(pl.Utf8).alias("reason"),
    )


def read_text_files(files: Sequence[tuple[str, Path]]) -> pl.DataFrame:
    """One row per file: ``source_file`` (the name to record) and its ``text``.

    Bytes that are not UTF-8 are replaced by U+FFFD, which :func:`read_lines` reports as
    ``invalid_encoding`` instead of passing them on silently.
    """
    texts = [Path(p).read_bytes().decode("utf-8", errors="replace") for _, p in files]
    return pl.DataFrame({"source_file": [name for name, _ in files], "text": texts},
                        schema={"source_file": pl.Utf8, "text": pl.Utf8})


def read_lines(files: Sequence[tuple[str, Path]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split text files into non-blank lines: (``source_file``, ``line_no`` 1-based, ``raw``).

    Blank lines carry no record and are not counted. Lines with undecodable bytes are
    returned as rejects (``invalid_encoding``).
    """
    if not files:
        return pl.DataFrame(schema={"source_file": pl.Utf8, "line_no": pl.Int32, "raw": pl.Utf8}), empty_rejects()
    lines = (
        read_text_files(files)
        .with_columns(pl.col("text").str.split("\n"))
        .explode("text")
        .with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("source_file").alias("line_no"),
            pl.col("text").str.strip_suffix("\r").alias("raw"),
        )
        .drop("text")
        .filter(pl.col("raw").str.strip_chars() != "")
    )
    bad = pl.col("raw").str.contains("\ufffd", literal=True)
    return lines.filter(~bad), rejects_from(lines.filter(bad), "invalid_encoding")


def decode_json_lines(lines: pl.DataFrame, dtype: pl.Struct) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode the ``raw`` column as JSON objects of ``dtype``; return (decoded, rejects).

    ``decoded`` keeps ``source_file``/``line_no``/``raw`` and adds one column per struct field
    (absent keys become null). Lines that are not valid JSON objects are rejected as
    ``invalid_json``; a boolean or a string where the schema has a number (which Polars would
    coerce: ``true`` -> 1.0) is rejected as ``invalid_type:<field>``. Polars decodes a whole Series or fails; a failing batch is bisected so
    only the bad lines are rejected (cost O(bad x log n) decodes, and lines that do not even
    start with ``{`` and end with ``}`` — truncation — are filtered out up front).
    """
    shaped = pl.col("raw").str.strip_chars()
    plausible = shaped.str.starts_with("{") & shaped.str.ends_with("}")
    cand = lines.filter(plausible)
    rejects = [rejects_from(lines.filter(~plausible), "invalid_json")]

    raw = cand.get_column("raw")
    ok = np.ones(cand.height, dtype=bool)

    def check(lo: int, hi: int) -> None:
        try:
            raw.slice(lo, hi - lo).str.json_decode(dtype)
        except (ComputeError, PolarsError, ValueError):
            if hi - lo == 1:
                ok[lo] = False
                return
            mid = (lo + hi) // 2
            check(lo, mid)
            check(mid, hi)

    if cand.height:
        check(0, cand.height)
    mask = pl.Series(ok)
    good = cand.filter(mask)
    rejects.append(rejects_from(cand.filter(~mask), "invalid_json"))
    numeric = [f.name for f in dtype.fields if f.dtype.is_numeric()]
    wrong = first_match([(pl.col("raw").str.contains(rf'"{name}"\s*:\s*(true|false|")'), f"invalid_type:{name}")
                         for name in numeric])
    good = good.with_columns(wrong.alias("_reason"))
    rejects.append(rejects_from(good.filter(pl.col("_reason").is_not_null()), pl.col("_reason")))
    good = good.filter(pl.col("_reason").is_null()).drop("_reason")
    decoded = good.with_columns(pl.col("raw").str.json_decode(dtype).alias("_obj")).unnest("_obj")
    return decoded, pl.concat(rejects)


def first_match(checks: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """The reason of the first check that holds per row, or null if none does."""
    expr = pl.lit(None, dtype=pl.Utf8)
    for failed, reason in reversed(checks):
        expr = pl.when(failed).then(pl.lit(reason)).otherwise(expr)
    return expr
