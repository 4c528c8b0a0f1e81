"""Reading landing files into line frames and decoding JSON lines, vectorised.

Every parser returns a :class:`Parsed`: the good records and the rejected ones, each rejected
record with its file, line number, raw text and a reason. ``len(good) + len(rejects)`` always
equals the number of records read, which the landing code checks.
"""

from __future__ import annotations

import codecs
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
from numba import njit
from polars.exceptions import ComputeError, PolarsError

from wattlake.parsing.bytescan import files_with_non_ascii, positions
from wattlake.parsing.jsonfast import scan

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


#: files read at once: landing folders hold thousands of small files (one per energy manager and
#: day) that a fleet-sized folder no longer finds in the page cache, and a disk (above all a
#: virtual or network one) answers many outstanding reads far faster than one at a time
READ_THREADS = 8


def _map_files(fn, items: Sequence):
    """``[fn(x) for x in items]``, on :data:`READ_THREADS` threads when there are many files.

    Each task takes a run of files (a future per file costs more than reading a small one).
    """
    items = list(items)
    if len(items) < 2 * READ_THREADS:
        return [fn(x) for x in items]
    runs = np.array_split(np.arange(len(items)), 4 * READ_THREADS)
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="read") as pool:
        done = pool.map(lambda run: [fn(items[i]) for i in run], runs)  # loop over files, not rows
        return [r for part in done for r in part]


def file_sizes(paths: Sequence[Path]) -> list[int]:
    """The files' sizes [bytes], stat'ed on :data:`READ_THREADS` threads: a cold inode is a disk
    read, and a year of one file per home and day is 365 k of them."""
    return _map_files(lambda p: os.stat(p).st_size, paths)


#: bytes per ``POSIX_FADV_WILLNEED`` call: Linux reads at most the larger of the device's
#: read-ahead window and its largest request (``read_ahead_kb``, ``max_sectors_kb``: 128 kB to
#: 8 MB) per call and ignores the rest of the range. One advice for a whole 24 MB inverter file
#: read its first 8 MB on the benchmark VM
WILLNEED_CHUNK = 1 << 20


def _forget(fd: int) -> None:
    """Drop a file that has been read from the page cache (``POSIX_FADV_DONTNEED``).

    Landing streams through far more data than memory holds and reads each file once. Left in
    the cache, the files read so far piled up, and on the benchmark VM every read slowed down
    after the first five landing groups: 0.36-0.46 s per 214 MB group instead of 0.02-0.04 s
    (60 days of 1,000 inverters, cold cache, 2026-11-24; inverter landing 25.0-26.2 s before,
    18.9-23.0 s after). The likely cause: the VM hands free memory back to its host (virtio
    balloon free-page reporting), so every new page-cache page is a host fault, while dropped
    pages are reused at once. A later reader of the file (retention, an erasure scrub) reads it
    from disk.
    """
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:  # advice only: a file system without it still landed the file
            pass


def advise_willneed(paths: Sequence[Path]) -> int:
    """Ask the kernel to start reading ``paths`` into the page cache (``POSIX_FADV_WILLNEED``).

    The call only queues the reads and returns; landing calls it on a background thread for the
    group after next, so a folder larger than the page cache is read from disk while the groups
    before it are parsed and merged. A no-op where the call does not exist; a file that cannot
    be opened is skipped (reading it later reports the error). Returns the files advised.
    """
    if not hasattr(os, "posix_fadvise"):
        return 0
    done = 0
    for path in paths:  # loop over files: one open and one advice each
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            size = os.fstat(fd).st_size
            for offset in range(0, max(size, 1), WILLNEED_CHUNK):  # loop over 1 MB pieces of the file
                os.posix_fadvise(fd, offset, WILLNEED_CHUNK, os.POSIX_FADV_WILLNEED)
            done += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return done


def read_lines(files: Sequence[tuple[str, Path]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split text files into non-blank lines: (``source_file``, ``line_no`` 1-based, ``raw``).

    Blank lines carry no record and are not counted; a trailing ``\\r`` is removed. Lines with
    undecodable bytes are returned as rejects (``invalid_encoding``).

    The files are read into one buffer (:class:`LineBuffer`); those that are valid UTF-8 (nearly
    all) are cut into lines at newline positions found with numpy and handed to Polars as views of
    that buffer: no Python string per file or line. Files with invalid bytes take the slower path
    of :func:`_read_lines_replacing`.
    """
    lb = LineBuffer.read(files)
    return lb.lines().drop("_file", "_line"), lb.encoding_rejects


@dataclass
class LineBuffer:
    """Landing files read into one buffer and cut into lines, before any Polars string is made.

    ``starts``/``ends`` (byte offsets, a trailing ``\\r`` excluded), ``fidx`` (index into
    ``names``) and ``line_no`` describe every line of the files that are valid UTF-8, blank ones
    included; the lines of the other files (bad bytes replaced by U+FFFD) are in ``replaced``, those
    with a replacement in ``encoding_rejects``. Parsers that read bytes directly (:func:`decode_json_buffer`)
    use the offsets; :meth:`lines` makes the (``source_file``, ``line_no``, ``raw``) frame.
    """

    buf: np.ndarray
    names: list[str]
    starts: np.ndarray
    ends: np.ndarray
    fidx: np.ndarray
    line_no: np.ndarray
    replaced: pl.DataFrame      # source_file, line_no, raw, _file
    encoding_rejects: pl.DataFrame

    @classmethod
    def read(cls, files: Sequence[tuple[str, Path]]) -> "LineBuffer":
        names = [name for name, _ in files]
        buf, fstarts = _read_into_one_buffer([p for _, p in files]) if files else (
            np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64))
        slow = _not_utf8(buf, fstarts)
        starts, ends, fidx, line_no = _cut_lines(buf, fstarts, slow)
        replaced = pl.DataFrame(schema={**_LINES_SCHEMA, "_file": pl.Int64})
        rejects = empty_rejects()
        if slow:
            replaced, rejects = _read_lines_replacing([files[i] for i in slow],
                                                      [buf[fstarts[i]:fstarts[i + 1]].tobytes() for i in slow])
            replaced = replaced.with_columns(
                pl.col("source_file").replace_strict([names[i] for i in slow], slow, return_dtype=pl.Int64)
                .alias("_file"))
        return cls(buf, names, starts, ends, fidx, line_no, replaced, rejects)

    def lines(self, sel: np.ndarray | None = None) -> pl.DataFrame:
        """The non-blank lines ``sel`` (ascending indexes into ``starts``; all when None) and all
        of ``replaced``, in file order: ``source_file``, ``line_no``, ``raw``, ``_file``, ``_line``
        (the index into ``starts``, -1 for replaced lines)."""
        sel = np.arange(self.starts.size) if sel is None else np.asarray(sel, dtype=np.int64)
        frame = _line_frame(self.buf, self.starts[sel], self.ends[sel], self.fidx[sel], self.line_no[sel],
                            self.names)
        frame = frame.with_columns(pl.Series("_line", sel, dtype=pl.Int64).gather(frame.get_column("_line")))
        if self.replaced.height == 0:
            return frame
        more = self.replaced.with_columns(pl.lit(-1, dtype=pl.Int64).alias("_line"))
        return pl.concat([frame, more]).sort("_file", "line_no")

    def text(self, line: pl.Series) -> pl.Series:
        """The text of lines ``line`` (indexes into ``starts``, any order; Utf8)."""
        if line.len() == 0:
            return pl.Series("raw", [], dtype=pl.Utf8)
        order = np.argsort(line.to_numpy(), kind="stable")
        idx = line.to_numpy()[order]
        uniq, inverse = np.unique(idx, return_inverse=True)
        seg = _segments(self.buf, self.starts[uniq], self.ends[uniq])
        back = np.empty_like(order)
        back[order] = np.arange(order.size)
        return seg.gather(pl.Series(inverse[back], dtype=pl.Int64)).alias("raw")


_LINES_SCHEMA = {"source_file": pl.Utf8, "line_no": pl.Int32, "raw": pl.Utf8}


def _read_into_one_buffer(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The files' bytes back to back in one uint8 array, and the file start offsets [n + 1].

    Each file leaves the page cache once read (:func:`_forget`): landing reads a file once, and
    keeping a fleet's year of files cached slowed every read about 15 times on the benchmark VM.
    """
    sizes = file_sizes(paths)
    fstarts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=fstarts[1:])
    buf = np.empty(int(fstarts[-1]), dtype=np.uint8)
    view = memoryview(buf)

    def read(i: int) -> None:  # each file into its own slice of the buffer
        with open(paths[i], "rb") as fh:
            if fh.readinto(view[fstarts[i]:fstarts[i + 1]]) != sizes[i] or fh.read(1):
                raise OSError(f"{paths[i]} changed size while it was read; landing files must be complete")
            _forget(fh.fileno())

    _map_files(read, range(len(sizes)))
    return buf, fstarts


def read_buffer(files: Sequence[tuple[str, Path]]) -> tuple[np.ndarray, np.ndarray]:
    """The files' bytes back to back in one uint8 array, and the file start offsets [n + 1].

    Bytes that are not UTF-8 are replaced by U+FFFD, as ``bytes.decode("utf-8", errors="replace")``
    does (the parser rejects their records); valid files, nearly all, are not copied again.
    """
    buf, fstarts = _read_into_one_buffer([p for _, p in files])
    bad = _not_utf8(buf, fstarts)
    if not bad:
        return buf, fstarts
    pieces, sizes, at = [], np.diff(fstarts), 0
    for i in bad:  # loop over the (rare) files with invalid bytes
        fixed = buf[fstarts[i]:fstarts[i + 1]].tobytes().decode("utf-8", errors="replace").encode("utf-8")
        pieces += [buf[at:fstarts[i]], np.frombuffer(fixed, dtype=np.uint8)]
        sizes[i], at = len(fixed), fstarts[i + 1]
    pieces.append(buf[at:])
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return np.concatenate(pieces), starts


def _not_utf8(buf: np.ndarray, fstarts: np.ndarray) -> list[int]:
    """Indexes of the files in ``buf`` that are not valid UTF-8."""
    suspect = files_with_non_ascii(buf, fstarts)  # only files with non-ASCII bytes need a UTF-8 check
    return [int(i) for i in suspect if not _is_utf8(buf[fstarts[i]:fstarts[i + 1]])]


def _is_utf8(chunk: np.ndarray) -> bool:
    try:
        codecs.utf_8_decode(memoryview(chunk), "strict", True)
        return True
    except UnicodeDecodeError:
        return False


def _cut_lines(buf: np.ndarray, fstarts: np.ndarray, skip: Sequence[int]):
    """Every line of the files in ``buf`` (except ``skip``), blank ones included:
    (starts, ends without a trailing ``\\r``, file index, 1-based line number), int64 arrays.

    One compiled pass over the newline positions (:func:`_cut_kernel`); it replaced a sort and
    three binary searches over all lines (0.09 -> 0.01 s per 864 k inverter lines, 2026-11-24)."""
    nl = positions(buf, 10)
    n_files = fstarts.size - 1
    skipped = np.zeros(max(n_files, 1), dtype=np.bool_)
    if len(skip):
        skipped[np.asarray(skip, dtype=np.int64)] = True
    cap = nl.size + n_files
    starts, ends, fidx, line_no = (np.empty(cap, dtype=np.int64) for _ in range(4))
    k = _cut_kernel(buf, fstarts.astype(np.int64, copy=False), nl.astype(np.int64, copy=False), skipped,
                    starts, ends, fidx, line_no)
    return starts[:k], ends[:k], fidx[:k], line_no[:k]


@njit(cache=True, nogil=True, _nrt=False)
def _cut_kernel(buf, fstarts, nl, skipped, starts, ends, fidx, line_no):  # pragma: no cover - compiled
    """The lines of :func:`_cut_lines` into the output arrays; returns how many. A file's lines
    start at its first byte and after each of its newlines (none after a final newline); a line
    ends at its newline or at the end of the file, less one trailing carriage return."""
    k = 0
    j = 0
    for f in range(fstarts.size - 1):  # loop over files
        a, b = fstarts[f], fstarts[f + 1]
        while j < nl.size and nl[j] < a:
            j += 1
        s = a
        no = 1
        while s < b:  # loop over the file's lines
            if j < nl.size and nl[j] < b:
                e = nl[j]
                nxt = e + 1
                j += 1
            else:
                e = b
                nxt = b
            if not skipped[f]:
                starts[k] = s
                ends[k] = e - 1 if e > s and buf[e - 1] == 13 else e
                fidx[k] = f
                line_no[k] = no
                k += 1
            no += 1
            s = nxt
    return k


def _segments(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pl.Series:
    """``buf[starts[i]:ends[i]]`` as a Utf8 series of views of ``buf`` (``starts`` ascending,
    ranges not overlapping, valid UTF-8)."""
    # segments [s0, e0) [e0, s1) [s1, e1) ...: a contiguous partition, every other one a line
    off = np.empty(2 * starts.size, dtype=np.int64)
    off[0::2] = starts
    off[1::2] = ends
    n = off.size - 1  # 2k - 1 segments for k lines; line i is segment 2i
    segs = pl.Series(pa.LargeStringArray.from_buffers(n, pa.py_buffer(off), pa.py_buffer(buf)))
    return segs.gather(pl.Series(np.arange(0, n, 2, dtype=np.int64)))


def _line_frame(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, fidx: np.ndarray, line_no: np.ndarray,
                names: list[str]) -> pl.DataFrame:
    """The non-blank ones of the lines given as (source_file, line_no, raw, _file, _line), ``_line``
    being the position in ``starts``."""
    if starts.size == 0:
        return pl.DataFrame(schema={**_LINES_SCHEMA, "_file": pl.Int64, "_line": pl.Int64})
    # blank: empty, or (checked by Polars, Unicode whitespace included) starting with a space-like byte
    first = buf[starts]
    maybe_blank = (ends == starts) | np.isin(first, np.frombuffer(b" \t\r\x0b\x0c", dtype=np.uint8)) | (first >= 0x80)
    raw = _segments(buf, starts, ends)
    keep = ~maybe_blank
    cand = np.flatnonzero(maybe_blank)
    if cand.size:
        keep[cand] = (raw.gather(pl.Series(cand, dtype=pl.Int64)).str.strip_chars() != "").to_numpy()
    sel = pl.Series(np.flatnonzero(keep), dtype=pl.Int64)
    file_of_line = pl.Series(fidx, dtype=pl.Int64).gather(sel)
    return pl.DataFrame({
        "source_file": pl.Series(names, dtype=pl.Utf8).gather(file_of_line),
        "line_no": pl.Series(line_no, dtype=pl.Int32).gather(sel),
        "raw": raw.gather(sel),
        "_file": file_of_line,
        "_line": sel,
    })


def _read_lines_replacing(files: Sequence[tuple[str, Path]], blobs: list[bytes]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`read_lines` for files with invalid UTF-8: bad bytes become U+FFFD and their lines rejects."""
    lines = (
        pl.DataFrame({"source_file": [name for name, _ in files],
                      "text": [b.decode("utf-8", errors="replace") for b in blobs]},
                     schema={"source_file": pl.Utf8, "text": pl.Utf8})
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


#: rows decoded per ``str.json_decode`` call: Polars' decoder needs ~3 KB of scratch memory per
#: row of a call (470 MB for 168k inverter lines in one call, 80 MB in slices of 16k) and is
#: faster on small slices
DECODE_SLICE_ROWS = 4_096
#: slices are decoded on this many threads (the decoder releases the GIL)
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


def decode_json_lines(lines: pl.DataFrame, dtype: pl.Struct) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode the ``raw`` column as JSON objects of ``dtype``; return (decoded, rejects).

    ``decoded`` keeps ``source_file``/``line_no``/``raw`` and adds one column per struct field
    (absent keys become null). Lines that are not valid JSON objects are rejected as
    ``invalid_json``; a boolean or a string where the schema has a number (which Polars would
    coerce: ``true`` -> 1.0) is rejected as ``invalid_type:<field>``.

    Each line is decoded once, in slices of :data:`DECODE_SLICE_ROWS` (bounded memory) on
    :data:`DECODE_THREADS` threads. Polars decodes a whole slice or fails; a failing slice is
    bisected so only the bad lines are rejected (cost O(bad x log n) decodes, and lines that do
    not even start with ``{`` and end with ``}`` — truncation — are filtered out up front).
    """
    shaped = pl.col("raw").str.strip_chars()
    plausible = shaped.str.starts_with("{") & shaped.str.ends_with("}")
    cand = lines.filter(plausible)
    rejects = [rejects_from(lines.filter(~plausible), "invalid_json")]

    raw = cand.get_column("raw")
    ok = np.ones(cand.height, dtype=bool)

    def decode(lo: int) -> pl.Series | None:
        try:
            return raw.slice(lo, DECODE_SLICE_ROWS).str.json_decode(dtype)
        except (ComputeError, PolarsError, ValueError):
            return None

    starts = range(0, cand.height, DECODE_SLICE_ROWS)  # loop over slices, not rows
    if len(starts) > 1 and DECODE_THREADS > 1:
        with ThreadPoolExecutor(DECODE_THREADS) as pool:
            parts = list(pool.map(decode, starts))
    else:
        parts = [decode(lo) for lo in starts]
    for k, lo in enumerate(starts):
        if parts[k] is None:  # bisect the failing slice, then decode its good rows
            hi = min(cand.height, lo + DECODE_SLICE_ROWS)
            _mark_undecodable(raw, dtype, ok, lo, hi)
            parts[k] = raw.slice(lo, hi - lo).filter(pl.Series(ok[lo:hi])).str.json_decode(dtype)
    all_ok = bool(ok.all())
    mask = pl.Series(ok)
    good = cand if all_ok else cand.filter(mask)  # filtering every column costs; most groups are clean
    obj = pl.concat(parts) if parts else pl.Series("_obj", [], dtype=dtype)
    if not all_ok:
        rejects.append(rejects_from(cand.filter(~mask), "invalid_json"))
    numeric = [f.name for f in dtype.fields if f.dtype.is_numeric()]
    wrong = first_match([(pl.col("raw").str.contains(rf'"{name}"\s*:\s*(true|false|")'), f"invalid_type:{name}")
                         for name in numeric])
    good = good.with_columns(wrong.alias("_reason"), obj.alias("_obj"))
    if good.get_column("_reason").null_count() < good.height:
        rejects.append(rejects_from(good.filter(pl.col("_reason").is_not_null()), pl.col("_reason")))
        good = good.filter(pl.col("_reason").is_null())
    decoded = good.drop("_reason").unnest("_obj")
    return decoded, pl.concat(rejects)


@dataclass
class Decoded:
    """JSON lines decoded by :func:`decode_json_buffer`.

    ``frame``: ``source_file``, ``line_no``, ``raw``, one column per struct field, ``_file`` and
    ``_line``, in file order. ``raw`` is null where the fast path decoded the line (no string was
    made for it): :meth:`with_raw` fills it in for the rows that need it, such as rejects.
    """

    frame: pl.DataFrame
    rejects: pl.DataFrame
    records: int
    buffer: LineBuffer

    def with_raw(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` (taken from ``frame``) with ``raw`` filled in from the buffer."""
        missing = rows.get_column("raw").is_null().to_numpy()
        if not missing.any():
            return rows
        at = np.flatnonzero(missing)
        text = self.buffer.text(rows.get_column("_line").gather(pl.Series(at, dtype=pl.Int64)))
        return rows.with_columns(rows.get_column("raw").scatter(at, text))


def decode_json_buffer(lb: LineBuffer, dtype: pl.Struct, timestamp: str | None = None,
                       times: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> Decoded:
    """:func:`decode_json_lines` for the lines of a :class:`LineBuffer`, with the same results.

    Lines of the usual shape are decoded by the compiled fast path
    (:func:`~wattlake.parsing.jsonfast.scan`: 0.5 s of CPU per 1.15 M inverter lines where Polars'
    decoder takes 2.0 s, line strings not counted). Every other line — blank, invalid, unusual —
    is made a string and goes through :func:`decode_json_lines`, which decodes or rejects it.
    ``records`` counts the non-blank lines, encoding rejects included.

    With ``timestamp`` (a text field) and ``times`` (the function that adds ``<timestamp>_utc``
    and ``utc_offset_min`` to decoded rows, e.g. :func:`~wattlake.parsing.inverter.with_utc_and_offset`),
    the fast path parses the field itself and leaves its text null; ``times`` runs on the other
    lines only. The two columns are then in ``frame``.
    """
    sc = scan(lb.buf, lb.starts, lb.ends, dtype, timestamp)
    rows = pl.Series(sc.rows, dtype=pl.Int64)
    file_of = pl.Series(lb.fidx, dtype=pl.Int64).gather(rows)
    fast = sc.frame.with_columns(
        pl.Series(lb.names, dtype=pl.Utf8).gather(file_of).alias("source_file"),
        pl.Series(lb.line_no, dtype=pl.Int32).gather(rows).alias("line_no"),
        pl.lit(None, dtype=pl.Utf8).alias("raw"),
        file_of.alias("_file"),
        rows.alias("_line"),
    )
    rest = lb.lines(sc.fallback)
    slow, rejects = decode_json_lines(rest, dtype)
    front = ["source_file", "line_no", "raw"]
    order = front + [f.name for f in dtype.fields] + ["_file", "_line"]
    if timestamp is not None:
        slow = times(slow)
        order += [f"{timestamp}_utc", "utc_offset_min"]
    frame = fast.select(order)
    if slow.height:  # rare: lines the fast path left that still decode; put them in file order
        frame = pl.concat([frame, slow.select(order)]).sort("_file", "line_no")
    records = fast.height + rest.height + lb.encoding_rejects.height
    return Decoded(frame, pl.concat([lb.encoding_rejects, rejects]), records, lb)


def _mark_undecodable(raw: pl.Series, dtype: pl.Struct, ok: np.ndarray, lo: int, hi: int) -> None:
    """Mark in ``ok`` the rows of ``raw[lo:hi]`` that do not decode on their own (bisection).

    A module-level function on purpose: a recursive closure is a reference cycle (function ->
    cell -> function) that keeps ``raw`` -- a whole landing group's lines -- alive until the
    cyclic garbage collector happens to run, which made memory grow with every group landed.
    """
    try:
        raw.slice(lo, hi - lo).str.json_decode(dtype)
    except (ComputeError, PolarsError, ValueError):
        if hi - lo == 1:
            ok[lo] = False
            return
        mid = (lo + hi) // 2
        _mark_undecodable(raw, dtype, ok, lo, mid)
        _mark_undecodable(raw, dtype, ok, mid, hi)


def first_match(checks: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """The reason of the first check that holds per row, or null if none does."""
    expr = pl.lit(None, dtype=pl.Utf8)
    for failed, reason in reversed(checks):
        expr = pl.when(failed).then(pl.lit(reason)).otherwise(expr)
    return expr
