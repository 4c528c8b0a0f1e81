"""Vectorised DSMR 5 P1 telegram parser and builder.

The reference implementation is ``dsmr_parser`` (``TelegramParser(telegram_specifications.V5)``).
It parses roughly a thousand telegrams per second; this module reproduces its
accept/reject decisions and values for whole batches of day files at a time
using numpy (record and line splitting), a numba CRC kernel
(`wattlake.crc`) and Polars string expressions (value extraction and
validation).  There is no Python loop over telegrams or lines; the only Python
loops run over input files (to measure their length), over chunks of files
(`CHUNK_BYTES`, processed on a thread pool) and over the OBIS objects of the V5
specification.

Field definitions are derived from ``dsmr_parser.obis_references`` and
``dsmr_parser.telegram_specifications.V5`` at import time: every V5 object is a
regex of the form ``^<obis prefix>.+?\\r\\n`` plus a value parser
(``CosemParser``/``MBusParser``/``ProfileGenericParser`` with ``ValueParser``
coercions ``str``/``Decimal``/``int``/``timestamp``); see `V5_OBJECTS`.

Semantics of dsmr-parser that are mirrored here (see `parse_p1`):

* CRC: the checked region is ``re.search(r'\\/.+\\!', text, re.DOTALL)`` -- from
  the first ``'/'`` to the *last* ``'!'`` of the record -- and the expected value
  is the first ``(?<=!)[0-9A-Z]{1,4}`` anywhere in the record (so lower-case hex
  is "missing", and ``G``-``Z`` make ``int(x, 16)`` raise).  The CRC runs per
  character over ``ord(c) & 0xFF``.
* An object matches at every line start whose beginning matches the OBIS prefix
  (prefix match: ``1-0:1.8.1`` also matches ``1-0:1.8.10``); the match extends
  lazily to the first ``\\r\\n`` at least one character after the prefix, which
  may run into following lines.  ``findall`` matches of one object do not overlap.
* Values are the ``(...)`` groups consisting only of ``[0-9a-zA-Z.*\\-:]``; a
  line whose group count differs from the parser's arity is silently ignored
  (dsmr-parser logs and skips it), ``()`` yields ``None``; ``a*b`` is split into
  value and unit, two or more ``*`` raise ``ValueError``; ``Decimal``/``int``
  coercion errors propagate out of ``TelegramParser.parse`` (the whole telegram
  is rejected), ``timestamp`` returns ``None`` on bad input.
* When an object occurs more than once the telegram attribute holds the *last*
  well-formed occurrence (``Telegram.add`` uses ``setattr``).
* Timestamps ``YYMMDDhhmmss[X]``: ``%y`` maps 69-99 to 19xx and 00-68 to 20xx,
  the local time is interpreted in Europe/Amsterdam and ``X`` only selects the
  PEP 495 ``fold`` (``W`` -> fold=1).  So ``S``/``W`` disambiguate the repeated
  October hour (S -> CEST, W -> CET) while in the March gap ``S`` maps to
  UTC+1 and ``W`` to UTC+2 (PEP 495 gap rule), and outside transitions the flag
  is ignored.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl
import pyarrow as pa

from dsmr_parser import obis_references as obis
from dsmr_parser import telegram_specifications as _specs
from dsmr_parser import value_types as _value_types
from dsmr_parser.parsers import CosemParser, MBusParser, ProfileGenericParser
from dsmr_parser.profile_generic_specifications import (
    BUFFER_TYPES,
    PG_FAILURE_EVENT,
    PG_HEAD_PARSERS,
    PG_UNIDENTIFIED_BUFFERTYPE_PARSERS,
)
from numba import njit

from wattlake.crc import crc16_arc, crc16_arc_text
from wattlake.parsing.bytescan import has_non_ascii, positions

__all__ = [
    "DEFAULT_HEADER",
    "READINGS_SCHEMA",
    "REJECTS_SCHEMA",
    "REQUIRED_FIELDS",
    "V5_OBJECTS",
    "build_telegrams",
    "dsmr_timestamps_to_utc",
    "meter_id_from_serial",
    "parse_p1",
    "parse_p1_buffer",
    "reference_parse",
    "split_records",
]

#: The time zone dsmr-parser's ``timestamp`` value type localises to.
TIME_ZONE: str = _value_types._SYSTEM_TZ.key  # "Europe/Amsterdam"

DEFAULT_HEADER = "/Ene5\\XS210 ESMR 5.0"

# --------------------------------------------------------------------------------------
# Specification derived from dsmr-parser
# --------------------------------------------------------------------------------------

_LINE_SUFFIX = r".+?\r\n"
_VALUE_CLASS = r"[0-9a-zA-Z.*\-:]"  # DSMRObjectParser._parse value group alphabet
_VALUE_GROUP = r"\(" + _VALUE_CLASS + r"*\)"
# Characters an OBIS prefix regex can consume (digits, '-', ':', '.').
_HEAD_RE = r"^([0-9.:\-]{0,24})"

T_STR, T_DEC, T_INT, T_TS = 0, 1, 2, 3


def _type_code(value_parser) -> int:
    ct = value_parser.coerce_type
    if ct is str:
        return T_STR
    if ct is Decimal:
        return T_DEC
    if ct is int:
        return T_INT
    if ct is _value_types.timestamp:
        return T_TS
    raise TypeError(f"unsupported dsmr-parser coerce type {ct!r}")


@dataclass(frozen=True)
class V5Object:
    """One object of ``telegram_specifications.V5``."""

    index: int
    name: str  # dsmr-parser value_name
    reference: str  # full dsmr-parser regex, e.g. r'^\d-\d:1\.8\.1.+?\r\n'
    prefix: str  # the OBIS part of the regex, e.g. r'\d-\d:1\.8\.1'
    kind: str  # 'cosem' | 'mbus' | 'pg'
    types: tuple[int, ...]  # coercion per value position (cosem/mbus)


def _derive_objects() -> tuple[V5Object, ...]:
    out = []
    for i, spec in enumerate(_specs.V5["objects"]):
        ref = spec["obis_reference"]
        if not (ref.startswith("^") and ref.endswith(_LINE_SUFFIX)):
            raise ValueError(f"unexpected dsmr-parser reference shape: {ref!r}")
        parser = spec["value_parser"]
        if isinstance(parser, ProfileGenericParser):
            kind, types = "pg", ()
        elif isinstance(parser, MBusParser):
            kind, types = "mbus", tuple(_type_code(v) for v in parser.value_formats)
        elif isinstance(parser, CosemParser):
            kind, types = "cosem", tuple(_type_code(v) for v in parser.value_formats)
        else:
            raise TypeError(f"unsupported parser {parser!r}")
        if kind != "pg" and len(types) not in (1, 2):
            raise ValueError(f"unsupported arity for {spec['value_name']}")
        out.append(V5Object(i, spec["value_name"], ref, ref[1 : -len(_LINE_SUFFIX)], kind, types))
    return tuple(out)


V5_OBJECTS: tuple[V5Object, ...] = _derive_objects()
_BY_NAME = {o.name: o for o in V5_OBJECTS}
_NAMES = np.array([o.name for o in V5_OBJECTS], dtype=object)
_ARITY = np.array([len(o.types) if o.kind != "pg" else 0 for o in V5_OBJECTS], dtype=np.int64)
_TYPE0 = np.array([o.types[0] if o.types else T_STR for o in V5_OBJECTS], dtype=np.int8)
_TYPE1 = np.array([o.types[1] if len(o.types) > 1 else -1 for o in V5_OBJECTS], dtype=np.int8)
_IS_PG = np.array([o.kind == "pg" for o in V5_OBJECTS])

# Profile generic (power failure log) value types: head, known buffer types, fallback.
_PG_HEAD_TYPES = tuple(_type_code(v) for v in PG_HEAD_PARSERS)
_PG_BUFFER_TYPES = {k: tuple(_type_code(v) for v in vs) for k, vs in BUFFER_TYPES.items()}
_PG_UNIDENTIFIED_TYPES = tuple(_type_code(v) for v in PG_UNIDENTIFIED_BUFFERTYPE_PARSERS)
assert _PG_HEAD_TYPES == (T_INT, T_STR)

#: Objects that must be present (and not None) for a telegram to be accepted.
REQUIRED_FIELDS: tuple[str, ...] = (
    "P1_MESSAGE_TIMESTAMP",
    "EQUIPMENT_IDENTIFIER",
    "ELECTRICITY_USED_TARIFF_1",
    "ELECTRICITY_USED_TARIFF_2",
    "ELECTRICITY_DELIVERED_TARIFF_1",
    "ELECTRICITY_DELIVERED_TARIFF_2",
)

# output column -> (V5 value_name, value position, kind of conversion)
_VALUE_COLUMNS: dict[str, tuple[str, int, str]] = {
    "meter_id": ("EQUIPMENT_IDENTIFIER", 0, "str"),
    "ts_utc": ("P1_MESSAGE_TIMESTAMP", 0, "ts"),
    "imported_t1_kwh": ("ELECTRICITY_USED_TARIFF_1", 0, "f64"),
    "imported_t2_kwh": ("ELECTRICITY_USED_TARIFF_2", 0, "f64"),
    "exported_t1_kwh": ("ELECTRICITY_DELIVERED_TARIFF_1", 0, "f64"),
    "exported_t2_kwh": ("ELECTRICITY_DELIVERED_TARIFF_2", 0, "f64"),
    "active_tariff": ("ELECTRICITY_ACTIVE_TARIFF", 0, "i8"),
    "power_imported_kw": ("CURRENT_ELECTRICITY_USAGE", 0, "f64"),
    "power_exported_kw": ("CURRENT_ELECTRICITY_DELIVERY", 0, "f64"),
    "voltage_l1_v": ("INSTANTANEOUS_VOLTAGE_L1", 0, "f64"),
    "current_l1_a": ("INSTANTANEOUS_CURRENT_L1", 0, "f64"),
    "power_failures": ("SHORT_POWER_FAILURE_COUNT", 0, "i32"),
    "long_power_failures": ("LONG_POWER_FAILURE_COUNT", 0, "i32"),
    "gas_meter_id": ("MBUS_EQUIPMENT_IDENTIFIER", 0, "str"),
    "gas_m3": ("MBUS_METER_READING", 1, "f64"),
    "gas_ts_utc": ("MBUS_METER_READING", 0, "ts"),
    "dsmr_version": ("P1_MESSAGE_HEADER", 0, "str"),
}

_UTC = pl.Datetime("us", "UTC")
READINGS_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String,
    "telegram_no": pl.Int32,
    "line_no": pl.Int32,
    "meter_id": pl.String,
    "ts_utc": _UTC,
    "imported_t1_kwh": pl.Float64,
    "imported_t2_kwh": pl.Float64,
    "exported_t1_kwh": pl.Float64,
    "exported_t2_kwh": pl.Float64,
    "active_tariff": pl.Int8,
    "power_imported_kw": pl.Float64,
    "power_exported_kw": pl.Float64,
    "voltage_l1_v": pl.Float64,
    "current_l1_a": pl.Float64,
    "power_failures": pl.Int32,
    "long_power_failures": pl.Int32,
    "gas_meter_id": pl.String,
    "gas_m3": pl.Float64,
    "gas_ts_utc": _UTC,
    "dsmr_version": pl.String,
    "raw_telegram": pl.String,
}
REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String,
    "telegram_no": pl.Int32,
    "line_no": pl.Int32,
    "raw_text": pl.String,
    "reason": pl.String,
}

for _col, (_name, _pos, _conv) in _VALUE_COLUMNS.items():
    assert _name in _BY_NAME, _name
for _name in REQUIRED_FIELDS:
    assert _BY_NAME[_name].kind == "cosem", _name

# Python's decimal.Decimal string grammar restricted to the value alphabet (no '+', '_', spaces).
_DEC_BODY = r"-?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]-?[0-9]+)?|(?i:inf|infinity)|(?i:s?nan)[0-9]*)"
_INT_BODY = r"-?[0-9]+"
_UNIT_TAIL = r"(?:\*[^*]*)?"
_OK_RE = {
    T_DEC: "^" + _DEC_BODY + _UNIT_TAIL + "$",
    T_INT: "^" + _INT_BODY + _UNIT_TAIL + "$",
    T_STR: r"^[^*]*" + _UNIT_TAIL + "$",  # ValueParser raises on two or more '*'
    T_TS: r"^[^*]*" + _UNIT_TAIL + "$",
}

# --------------------------------------------------------------------------------------
# Buffers <-> Polars strings
# --------------------------------------------------------------------------------------


def _strings(data: pa.Buffer, offsets: np.ndarray) -> pl.Series:
    """Zero-copy Utf8 Series whose i-th value is ``data[offsets[i]:offsets[i+1]]``."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n = max(len(offsets) - 1, 0)
    if n == 0:
        return pl.Series([], dtype=pl.String)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), data)
    return pl.Series(arr)


def _gather_strings(buf: np.ndarray, data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pl.Series:
    """Utf8 Series of arbitrary (possibly overlapping) slices ``buf[starts[i]:ends[i]]``."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return pl.Series([], dtype=pl.String)
    if np.all(starts[1:] == ends[:-1]):
        return _strings(data, np.append(starts, ends[-1:]))
    lens = ends - starts
    offs = np.zeros(starts.size + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    idx = np.repeat(starts - offs[:-1], lens) + np.arange(offs[-1], dtype=np.int64)
    return _strings(pa.py_buffer(buf[idx]), offs)


def _arrow_string_buffers(s: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 data, int64 offsets[n+1]) of a non-null Utf8 Series."""
    arr = s.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    _, obuf, dbuf = arr.buffers()
    offsets = np.frombuffer(obuf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(dbuf, dtype=np.uint8) if dbuf is not None else np.zeros(0, np.uint8)
    return data, offsets


def _hex4(values: np.ndarray) -> pl.Series:
    """Upper-case 4-digit hex strings of uint16 values."""
    values = values.astype(np.uint32)
    nib = np.stack([(values >> s) & 0xF for s in (12, 8, 4, 0)], axis=1)
    chars = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)[nib].reshape(-1)
    return _strings(pa.py_buffer(np.ascontiguousarray(chars)), np.arange(0, 4 * len(values) + 1, 4))


# --------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _amsterdam_offsets(hours: np.ndarray) -> np.ndarray:
    """UTC offset (seconds) of `TIME_ZONE` at the start of each UTC hour ``hours``
    (hours since the epoch).  Offsets there only change on whole UTC hours, so a
    table over the hour range covers every instant; Polars' tz database does the work.
    """
    if hours.size == 0:
        return np.zeros(0, dtype=np.int64)
    h0, h1 = int(hours.min()), int(hours.max())
    grid = np.arange(h0, h1 + 1, dtype=np.int64) * 3600
    local = (
        pl.Series(grid * 1_000_000, dtype=pl.Int64)
        .cast(_UTC)
        .dt.convert_time_zone(TIME_ZONE)
        .dt.replace_time_zone(None)
        .cast(pl.Int64)
        .to_numpy()
    )
    table = local // 1_000_000 - grid
    return table[hours - h0]


def dsmr_timestamps_to_utc(values: pl.Series) -> pl.Series:
    """Vectorised ``dsmr_parser.value_types.timestamp`` -> Datetime("us", "UTC").

    ``values`` are the value strings (unit already split off); null or invalid
    inputs give null, exactly where dsmr-parser returns ``None``.
    """
    name = values.name
    if len(values) == 0:
        return pl.Series(name, [], dtype=_UTC)
    v = pl.col("v")
    parts = (
        pl.DataFrame({"v": values.cast(pl.String)})
        .lazy()
        .select(
            ok=v.str.contains(r"^[0-9]{12}[SW]?$").fill_null(False),
            fold=v.str.ends_with("W").fill_null(False),
            num=v.str.head(12).cast(pl.Int64, strict=False).fill_null(0),
        )
        .collect()
    )
    ok = parts["ok"].to_numpy().copy()
    fold = parts["fold"].to_numpy() & ok
    num = np.where(ok, parts["num"].to_numpy(), 101000000)  # YYMMDDhhmmss
    yy, mo, dd = num // 10**10, num // 10**8 % 100, num // 10**6 % 100
    hh, mi, ss = num // 10**4 % 100, num // 100 % 100, num % 100
    year = np.where(yy >= 69, 1900 + yy, 2000 + yy)  # time.strptime's %y rule
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    dim = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)[np.clip(mo, 1, 12) - 1]
    dim = dim + ((mo == 2) & leap)
    ok &= (mo >= 1) & (mo <= 12) & (dd >= 1) & (dd <= dim) & (hh <= 23) & (mi <= 59) & (ss <= 59)
    naive_s = np.where(ok, _days_from_civil(year, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss, 0)
    # PEP 495 resolution in Europe/Amsterdam (UTC offsets +1h / +2h from 1969 to 2068):
    # naive local t is a valid CET time if offset(t-1h) == 1h, a valid CEST time if
    # offset(t-2h) == 2h.
    u1, u2 = naive_s - 3600, naive_s - 7200
    off = _amsterdam_offsets(np.concatenate([u1[ok], u2[ok]]) // 3600)
    k = int(ok.sum())
    valid1 = np.zeros(naive_s.size, dtype=bool)
    valid2 = np.zeros(naive_s.size, dtype=bool)
    valid1[ok] = off[:k] == 3600
    valid2[ok] = off[k:] == 7200
    # ambiguous (October): fold=0 -> first occurrence (CEST, u2), fold=1 -> CET (u1);
    # gap (March): fold=0 -> offset before the transition (u1), fold=1 -> after (u2).
    utc = np.where(
        valid1 & valid2,
        np.where(fold, u1, u2),
        np.where(valid1, u1, np.where(valid2, u2, np.where(fold, u2, u1))),
    )
    out = pl.Series(name, utc * 1_000_000, dtype=pl.Int64).cast(_UTC)
    if not ok.all():
        out = pl.select(pl.when(pl.Series(ok)).then(out)).to_series().alias(name)
    return out


# --------------------------------------------------------------------------------------
# Record splitting
# --------------------------------------------------------------------------------------


@dataclass
class _Batch:
    buf: np.ndarray  # uint8 view of `data`
    data: pa.Buffer
    file_starts: np.ndarray  # int64 [n_files + 1]
    ascii: bool


@dataclass
class Records:
    """Result of `split_records`: all records of a batch, sorted by position."""

    start: np.ndarray  # byte offsets into the batch buffer
    end: np.ndarray
    file_idx: np.ndarray
    telegram_no: np.ndarray  # 1-based within file
    line_no: np.ndarray  # 1-based line of the record start within its file
    is_junk: np.ndarray  # True for non-blank text outside telegrams (unparseable_text)
    has_bang_line: np.ndarray  # a line starting with '!' terminates the record
    line_starts: np.ndarray  # all line starts in the buffer
    newlines: np.ndarray  # positions of all '\n'
    seg_bounds: np.ndarray  # contiguous partition of the buffer (records and gaps)
    seg_idx: np.ndarray  # segment index of each record


def _make_batch(texts: list[str]) -> _Batch:
    lens = np.fromiter(
        (len(t) if t.isascii() else len(t.encode("utf-8")) for t in texts), dtype=np.int64, count=len(texts)
    )
    file_starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lens, out=file_starts[1:])
    return _batch_of(np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8), file_starts)


def _batch_of(buf: np.ndarray, file_starts: np.ndarray) -> _Batch:
    """A batch over UTF-8 bytes ``buf`` (zero-copy) holding files at ``file_starts`` [n + 1]."""
    data = pa.py_buffer(buf)
    return _Batch(np.frombuffer(data, dtype=np.uint8), data, file_starts, not has_non_ascii(buf))


def _dedupe_sorted(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    keep = np.empty(x.size, dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def _split(batch: _Batch) -> Records:
    buf, fstarts = batch.buf, batch.file_starts
    total = buf.size
    nl = positions(buf, 10)
    ls = np.concatenate([fstarts[:-1], nl + 1])
    ls = _dedupe_sorted(np.sort(ls[ls < total], kind="stable"))
    first = buf[ls] if total else np.zeros(0, np.uint8)
    slash = ls[first == 47]  # '/'
    bang = ls[first == 33]  # '!'

    def file_of(pos):
        return np.searchsorted(fstarts, pos, side="right") - 1

    fend = fstarts[file_of(slash) + 1]
    nxt = np.append(slash[1:], total)
    nb = np.minimum(nxt, fend)
    qi = np.searchsorted(bang, slash, side="right")
    q = np.append(bang, total)[qi]
    has_bang = q < nb
    li = np.searchsorted(ls, q, side="right")
    q_end = np.append(ls, total)[np.minimum(li, ls.size)]
    rec_end = np.where(has_bang, q_end, nb)

    bounds = np.concatenate([fstarts, slash, rec_end])
    bounds = _dedupe_sorted(np.sort(bounds, kind="stable"))
    seg_start, seg_end = bounds[:-1], bounds[1:]
    si = np.searchsorted(slash, seg_start)
    is_tel = (si < slash.size) & (np.append(slash, -1)[np.minimum(si, slash.size)] == seg_start)
    # Gaps: junk when non-blank.
    gap_idx = np.flatnonzero(~is_tel)
    keep = is_tel.copy()
    if gap_idx.size:
        gaps = _gather_strings(buf, batch.data, seg_start[gap_idx], seg_end[gap_idx])
        nonblank = gaps.str.strip_chars().str.len_bytes().gt(0).to_numpy()
        keep[gap_idx[nonblank]] = True
    start, end, tel = seg_start[keep], seg_end[keep], is_tel[keep]
    bang_flag = np.zeros(start.size, dtype=bool)
    bang_flag[tel] = has_bang[np.searchsorted(slash, start[tel])]
    fidx = file_of(start)
    first_rec = np.searchsorted(fidx, fidx, side="left")
    telegram_no = np.arange(start.size, dtype=np.int64) - first_rec + 1
    line_no = np.searchsorted(nl, start) - np.searchsorted(nl, fstarts[fidx]) + 1
    return Records(start, end, fidx, telegram_no, line_no, ~tel, bang_flag, ls, nl, bounds, np.flatnonzero(keep))


def split_records(texts: list[str]) -> Records:
    """Split the concatenation of ``texts`` into telegram / junk records (vectorised)."""
    return _split(_make_batch(texts))


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


def _hex_value(chars: np.ndarray) -> np.ndarray:
    """Value of ASCII hex digits 0-9A-F; -1 for G-Z (int(x, 16) would raise)."""
    c = chars.astype(np.int64)
    return np.where(c <= 57, c - 48, np.where(c <= 70, c - 55, -1))


def _check_crc(batch: _Batch, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror ``TelegramParser.validate_checksum`` for records [start, end).

    Returns (checksum_present, crc_ok).  Records start with '/'.
    """
    buf = batch.buf
    total = buf.size
    bangs = positions(buf, 33)
    # Region: first '/' (= start) .. last '!' of the record, at least one char between.
    li = np.searchsorted(bangs, end) - 1
    last = np.where(li >= 0, bangs[np.maximum(li, 0)] if bangs.size else -1, -1)
    region_ok = last >= start + 2
    # Expected: first '!' followed by [0-9A-Z] inside the record.
    cls = np.zeros(256, dtype=bool)
    cls[np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)] = True
    nxt = np.minimum(bangs + 1, max(total - 1, 0))
    cand = bangs[(bangs + 1 < total) & cls[buf[nxt]]] if bangs.size else bangs
    ci = np.searchsorted(cand, start)
    c = np.append(cand, total)[ci]  # none after the start: `total` (int64 max would overflow in c + 1)
    hex_found = c + 1 < end
    pos = np.where(hex_found, c, 0)[:, None] + 1 + np.arange(4)
    in_rec = pos < end[:, None]
    chars = buf[np.minimum(pos, max(total - 1, 0))]
    run = np.cumprod(in_rec & cls[chars], axis=1).astype(bool)
    digits = _hex_value(chars)
    bad_digit = np.any(run & (digits < 0), axis=1)
    nrun = run.sum(axis=1)
    # value of the 1-4 digit run: sum digit_k * 16**(nrun-1-k)
    expo = (nrun[:, None] - 1 - np.arange(4)).clip(0)
    expected = np.sum(np.where(run, np.maximum(digits, 0) * (16**expo), 0), axis=1)
    present = region_ok & hex_found
    idx = np.flatnonzero(present)
    crc = np.full(start.size, -1, dtype=np.int64)
    if idx.size:
        kernel = crc16_arc if batch.ascii else crc16_arc_text
        crc[idx] = kernel(buf, start[idx], last[idx] + 1).astype(np.int64)
    ok = present & ~bad_digit & (crc == expected)
    return present, ok


_NORMAL_RE = (
    r"^([0-9.:\-]+)\((" + _VALUE_CLASS + r"*)\)(?:\((" + _VALUE_CLASS + r"*)\))?\r\n$"
)
_FIRST_VALUE_RE = r"\((" + _VALUE_CLASS + r"*)\)"


def _byte_class(chars: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=np.bool_)
    table[np.frombuffer(chars, dtype=np.uint8)] = True
    return table


_HEAD_BYTES = _byte_class(b"0123456789.:-")
_VALUE_BYTES = _byte_class(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.*-:")


@njit(cache=True, nogil=True)
def _scan_normal_kernel(buf, p, le, head_ok, value_ok):  # pragma: no cover - compiled
    # _NORMAL_RE by hand: HEAD '(' V0 ')' [ '(' V1 ')' ] '\r\n' and nothing else on the line
    n = p.shape[0]
    normal = np.zeros(n, dtype=np.bool_)
    o = np.zeros(n, dtype=np.int64)
    c = np.ones(n, dtype=np.int64)
    for i in range(n):
        s = p[i]
        e = le[i]
        j = s
        while j < e and head_ok[buf[j]]:
            j += 1
        if j == s or j >= e or buf[j] != 40:
            continue
        oo = j - s
        j += 1
        while j < e and value_ok[buf[j]]:
            j += 1
        if j >= e or buf[j] != 41:
            continue
        cc = j - s
        j += 1
        if j < e and buf[j] == 40:
            j += 1
            while j < e and value_ok[buf[j]]:
                j += 1
            if j >= e or buf[j] != 41:
                continue
            j += 1
        if j + 2 == e and buf[j] == 13 and buf[j + 1] == 10:
            normal[i] = True
            o[i] = oo
            c[i] = cc
    return normal, o, c


#: how :func:`_value_status_kernel` judges a value of each type
_VALUE_KIND = {T_STR: 0, T_TS: 0, T_INT: 1, T_DEC: 2}
#: the same, indexed by type code; type -1 (no value at that position) reads the last slot, -1
_KIND_OF_TYPE = np.full(max(_VALUE_KIND) + 2, -1, dtype=np.int8)
for _t, _k in _VALUE_KIND.items():
    _KIND_OF_TYPE[_t] = _k


@njit(cache=True, nogil=True)
def _value_status_kernel(buf, starts, ends, kinds):  # pragma: no cover - compiled
    # 0: the value coerces (per `_OK_RE`), 1: it raises, 2: undecided here (ask the regex).
    # kind 0 (str, timestamp): raises on two or more '*'. kind 1 (int): `-?[0-9]+(\*[^*]*)?`
    # or empty, exactly. kind 2 (decimal): the plain form `-?(D+(.D*)?|.D+)([eE]-?D+)?(\*[^*]*)?`
    # or empty is certain; anything else (inf, nan, ...) is left to the regex.
    n = starts.shape[0]
    out = np.zeros(n, dtype=np.int8)
    for i in range(n):
        s = starts[i]
        e = ends[i]
        stars = 0
        unit = e
        for j in range(s, e):
            if buf[j] == 42:
                stars += 1
                if stars == 1:
                    unit = j
        if stars >= 2:
            out[i] = 1
            continue
        kind = kinds[i]
        if kind == 0 or s == e:
            continue
        j = s
        if buf[j] == 45:
            j += 1
        d0 = j
        while j < unit and 48 <= buf[j] <= 57:
            j += 1
        nd = j - d0
        if kind == 1:
            out[i] = 0 if (nd > 0 and j == unit) else 1
            continue
        frac = 0
        if j < unit and buf[j] == 46:
            j += 1
            f0 = j
            while j < unit and 48 <= buf[j] <= 57:
                j += 1
            frac = j - f0
            if nd == 0 and frac == 0:
                out[i] = 2
                continue
        elif nd == 0:
            out[i] = 2
            continue
        if j < unit and (buf[j] == 101 or buf[j] == 69):
            j += 1
            if j < unit and buf[j] == 45:
                j += 1
            x0 = j
            while j < unit and 48 <= buf[j] <= 57:
                j += 1
            if j == x0:
                out[i] = 2
                continue
        out[i] = 0 if j == unit else 2
    return out


def scan_normal_lines(buf: np.ndarray, p: np.ndarray, le: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For lines ``buf[p[i]:le[i]]`` (``\\r\\n`` included): does the line match `_NORMAL_RE`, and
    where are its first ``(`` and first ``)`` (``o``, ``c``: offsets from ``p``; 0 and 1 when not).

    A compiled scan over the bytes, equal to the regex (whose classes are ASCII, so byte and
    character offsets agree on every matching line) and about 20x cheaper on 2 cores.
    """
    return _scan_normal_kernel(buf, np.ascontiguousarray(p, dtype=np.int64),
                               np.ascontiguousarray(le, dtype=np.int64), _HEAD_BYTES, _VALUE_BYTES)
_TWO_VALUES_RE = r"\((" + _VALUE_CLASS + r"*)\)(?s:.*?)\((" + _VALUE_CLASS + r"*)\)"


def _head_matches(heads: list[str]) -> dict[str, tuple[tuple[int, int], ...]]:
    """Per head: ((V5 position, prefix match length in bytes), ...) of the objects it matches."""
    out: dict[str, list[tuple[int, int]]] = {h: [] for h in heads}
    series = pl.Series(heads, dtype=pl.String)
    for pos, o in enumerate(V5_OBJECTS):  # loop over OBIS fields
        m = series.str.extract("^(" + o.prefix + ")", 1)
        hit = np.flatnonzero(m.is_not_null().to_numpy())
        if hit.size:
            lens = m.gather(pl.Series(hit, dtype=pl.Int64)).str.len_bytes().to_list()
            for i, n in zip(hit.tolist(), lens):
                out[heads[i]].append((pos, n))
    return {h: tuple(v) for h, v in out.items()}


#: head text -> its object matches (:func:`_head_matches`); the same few dozen OBIS heads
#: recur in every chunk, so the regex loop over the V5 objects runs once per new head
_HEAD_CACHE: dict[str, tuple[tuple[int, int], ...]] = {}
_HEAD_CACHE_MAX = 100_000


def _head_map(uniq: pl.Series) -> pl.DataFrame:
    """(code, obj, plen) for every distinct head ``uniq[code]`` matching V5 object ``obj``.

    Rows are ordered by object (V5 order), then code, as a per-object scan would give them.
    """
    heads = uniq.to_list()
    cache = _HEAD_CACHE
    new = [h for h in dict.fromkeys(heads) if h not in cache]
    found = _head_matches(new) if new else {}
    if len(cache) + len(found) <= _HEAD_CACHE_MAX:
        cache.update(found)  # thread-safe: each value is a pure function of its key
    rows = [(pos, code, plen) for code, h in enumerate(heads)
            for pos, plen in (cache[h] if h in cache else found[h])]
    if not rows:
        return pl.DataFrame(schema={"code": pl.Int64, "obj": pl.Int64, "plen": pl.Int64})
    rows.sort()  # by object position, then code (loop over distinct heads, not lines)
    arr = np.array(rows, dtype=np.int64)
    index = np.array([o.index for o in V5_OBJECTS], dtype=np.int64)
    return pl.DataFrame({"code": arr[:, 1], "obj": index[arr[:, 0]], "plen": arr[:, 2]})


#: Files are parsed in chunks of about this many bytes, chunks run on a thread pool
#: (numpy, numba and Polars release the GIL for the heavy lifting).  A chunk's working
#: set is ~12x its size (line-level index arrays), so small chunks keep memory flat: 4 MB
#: costs the same CPU time per telegram as 48 MB (measured 2026-11: 65k telegrams per
#: CPU-second either way) and peaks ~1 GB lower on 74 MB of day files with 2 threads.
CHUNK_BYTES = 4 * 1024 * 1024
#: worker threads of :func:`parse_p1`: twice the CPUs, so one thread's GIL-bound glue between
#: the numpy/Polars/numba calls overlaps another's compiled work (2 cores: 1.6 cores busy with
#: 2 threads, 1.75 with 4; measured 2026-11, 131k -> 145k telegrams/s)
PARSE_THREADS = 2 * (os.cpu_count() or 1)


def parse_p1(
    texts: list[str], source_files: list[str], *, threads: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse DSMR 5 P1 day files into ``(readings, rejects)``.

    ``texts[i]`` is the full text of ``source_files[i]`` (telegrams as received,
    CRLF line endings).  Every record -- a telegram candidate starting at a line
    beginning with ``'/'``, or a non-blank run of text outside telegrams -- ends
    up in exactly one of the two frames (see `READINGS_SCHEMA`, `REJECTS_SCHEMA`),
    in file order.  The accept decision and values are those of
    ``dsmr_parser.TelegramParser(telegram_specifications.V5)`` plus the
    `REQUIRED_FIELDS` check (see `reference_parse`).

    Work is vectorised over all files of a chunk (`CHUNK_BYTES`); chunks run on
    ``threads`` worker threads (default `PARSE_THREADS`).  Landing uses
    `parse_p1_buffer`, which takes the files' bytes as read.
    """
    texts = list(texts)
    if len(texts) != len(source_files):
        raise ValueError("texts and source_files must have the same length")
    batch = _make_batch(texts)
    return parse_p1_buffer(batch.buf, batch.file_starts, source_files, threads=threads)


def parse_p1_buffer(
    buf: np.ndarray, file_starts: np.ndarray, source_files: list[str], *, threads: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`parse_p1` of files given as valid UTF-8 bytes back to back: ``buf`` (uint8) holds file i at
    ``buf[file_starts[i]:file_starts[i + 1]]`` (see :func:`wattlake.parsing.lines.read_buffer`).

    The chunks are zero-copy slices of ``buf`` at file boundaries: no Python string per file.
    """
    source_files = list(source_files)
    file_starts = np.asarray(file_starts, dtype=np.int64)
    if file_starts.size != len(source_files) + 1 or file_starts[-1] != buf.size:
        raise ValueError("file_starts must hold len(source_files) + 1 offsets, the last one len(buf)")
    n_files = len(source_files)
    threads = threads or PARSE_THREADS
    total = int(buf.size)
    n_chunks = 1 if total < CHUNK_BYTES // 8 else threads * max(1, int(np.ceil(total / (CHUNK_BYTES * threads))))
    n_chunks = min(n_chunks, n_files)
    if n_chunks <= 1:
        return _parse_chunk(_batch_of(buf, file_starts), source_files)
    cuts = np.searchsorted(file_starts[1:], np.linspace(0, total, n_chunks + 1)[1:-1], side="left") + 1
    bounds = np.unique(np.concatenate([[0], np.minimum(cuts, n_files), [n_files]]))

    def chunk(i: int, j: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        lo, hi = file_starts[i], file_starts[j]
        return _parse_chunk(_batch_of(buf[lo:hi], file_starts[i:j + 1] - lo), source_files[i:j])

    with ThreadPoolExecutor(max_workers=min(threads, bounds.size - 1)) as pool:
        results = list(pool.map(chunk, bounds[:-1], bounds[1:]))  # loop over chunks
    return (
        pl.concat([r[0] for r in results], rechunk=False),
        pl.concat([r[1] for r in results], rechunk=False),
    )


def _parse_chunk(batch: _Batch, source_files: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    recs = _split(batch)
    n = recs.start.size
    reason = np.full(n, None, dtype=object)
    reason[recs.is_junk] = "unparseable_text"

    tel = np.flatnonzero(~recs.is_junk)
    _, crc_ok = _check_crc(batch, recs.start[tel], recs.end[tel])
    bad = tel[~crc_ok]
    reason[bad] = np.where(recs.has_bang_line[bad], "crc_mismatch", "incomplete_telegram")
    good = tel[crc_ok]  # records whose objects get parsed

    values = {}
    if good.size:
        values = _parse_objects(batch, recs, good, reason)

    accepted = np.flatnonzero(reason == None)  # noqa: E711 (object array)
    rejected = np.flatnonzero(reason != None)  # noqa: E711

    files = pl.Series("source_file", source_files, dtype=pl.String)
    raw = _strings(batch.data, recs.seg_bounds).gather(pl.Series(recs.seg_idx, dtype=pl.Int64))

    def base(idx):
        return {
            "source_file": files.gather(pl.Series(recs.file_idx[idx], dtype=pl.Int64)),
            "telegram_no": pl.Series(recs.telegram_no[idx], dtype=pl.Int32),
            "line_no": pl.Series(recs.line_no[idx], dtype=pl.Int32),
        }

    rej = pl.DataFrame(
        {
            **base(rejected),
            "raw_text": raw.gather(pl.Series(rejected, dtype=pl.Int64)),
            "reason": pl.Series(reason[rejected].astype(str) if rejected.size else [], dtype=pl.String),
        },
        schema=REJECTS_SCHEMA,
    )
    cols = base(accepted)
    pos_in_good = pl.Series(np.searchsorted(good, accepted), dtype=pl.Int64)
    for col in _VALUE_COLUMNS:
        cols[col] = values[col].gather(pos_in_good) if accepted.size else pl.Series([], dtype=READINGS_SCHEMA[col])
    cols["raw_telegram"] = raw.gather(pl.Series(accepted, dtype=pl.Int64))
    readings = pl.DataFrame(cols, schema=READINGS_SCHEMA)
    return readings, rej


def _concat_ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` for all i (vectorised)."""
    counts = hi - lo
    tot = int(counts.sum())
    if tot == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(counts) - counts
    return np.repeat(lo - first, counts) + np.arange(tot, dtype=np.int64)


def _parse_objects(batch: _Batch, recs: Records, good: np.ndarray, reason: np.ndarray) -> dict[str, pl.Series]:
    """Object extraction for CRC-valid records ``good``; fills ``reason`` and returns columns."""
    buf, data = batch.buf, batch.data
    total = buf.size
    ls = recs.line_starts
    ls_ext = np.append(ls, total)
    g_end = recs.end[good]
    ng = good.size

    # Lines of the good records (records are line aligned).  Every V5 prefix starts
    # with \d, so only lines starting with a digit (or a non-ASCII character, which
    # might be a Unicode digit) can match an object.
    l0 = np.searchsorted(ls, recs.start[good])
    l1 = np.searchsorted(ls, g_end)
    line_idx = _concat_ranges(l0, l1)
    line_rec = np.repeat(np.arange(ng, dtype=np.int64), l1 - l0)
    fb = buf[ls_ext[line_idx]]
    keep = ((fb >= 48) & (fb <= 57)) | (fb >= 0x80)
    line_idx, line_rec = line_idx[keep], line_rec[keep]
    p = ls_ext[line_idx]
    le = ls_ext[line_idx + 1]
    n_lines = line_idx.size

    # Plain lines `HEAD(V0)\r\n` / `HEAD(V0)(V1)\r\n` (ASCII only, so character and
    # byte offsets agree) are cut into head and values zero-copy; everything else
    # (and every match that does not end at its own line end) takes the general path.
    is_normal, o, c = scan_normal_lines(buf, p, le)
    two = is_normal & (c != le - p - 3)
    # Partition [p, p+o) head | '(' | [p+o+1, p+c) V0 | rest-of-line-and-gap.
    off = np.empty(4 * n_lines + 1, dtype=np.int64)
    off[0:-1:4] = p
    off[1::4] = p + o
    off[2::4] = p + o + 1
    off[3::4] = p + c
    off[-1] = le[-1] if n_lines else 0
    segs = _strings(data, off)
    head = segs.gather(pl.Series(np.arange(0, 4 * n_lines, 4, dtype=np.int64)))
    v0_all = segs.gather(pl.Series(np.arange(2, 4 * n_lines, 4, dtype=np.int64)))
    two_idx = np.flatnonzero(two)
    v1_all = pl.repeat(None, n_lines, dtype=pl.String, eager=True).alias("")  # no Python list of n Nones
    if two_idx.size:
        tp, tle, tc = p[two_idx], le[two_idx], c[two_idx]
        off2 = np.empty(2 * two_idx.size, dtype=np.int64)
        off2[0::2] = tp + tc + 2  # after ')('
        off2[1::2] = tle - 3  # before ')\r\n'
        v1 = _strings(data, off2).gather(pl.Series(np.arange(0, off2.size - 1, 2, dtype=np.int64)))
        v1_all = v1_all.scatter(two_idx, v1)
    abn = np.flatnonzero(~is_normal)
    if abn.size:
        head = head.scatter(abn, _gather_strings(buf, data, p[abn], le[abn]).str.extract(_HEAD_RE, 1))

    # Distinct heads -> V5 objects (a head may match several objects, e.g. 0-1:96.1.1).
    uniq = head.unique().drop_nulls()
    hmap = _head_map(uniq)
    code = (
        head.replace_strict(uniq, pl.Series(np.arange(len(uniq), dtype=np.int64)), default=-1)
        .fill_null(-1)
        .to_numpy()
    )
    code = np.where(code < 0, len(uniq), code)
    h_code = hmap["code"].to_numpy()
    cat_n = np.bincount(h_code, minlength=len(uniq) + 1)
    cat_off = np.cumsum(cat_n) - cat_n
    order = np.argsort(h_code, kind="stable")
    h_obj = hmap["obj"].to_numpy()[order]
    h_plen = hmap["plen"].to_numpy()[order]
    per_line = cat_n[code]
    if cat_n.max(initial=0) <= 1:  # every head matches at most one object
        pair_line = np.flatnonzero(per_line)
        slot = cat_off[code[pair_line]]
    else:
        pair_line = np.repeat(np.arange(n_lines, dtype=np.int64), per_line)
        within = np.arange(pair_line.size, dtype=np.int64) - np.repeat(np.cumsum(per_line) - per_line, per_line)
        slot = cat_off[code[pair_line]] + within
    obj = h_obj[slot]
    plen = h_plen[slot]
    n_pairs = pair_line.size
    pp, ple, prec = p[pair_line], le[pair_line], line_rec[pair_line]

    # Match end: the line end when the line ends in CRLF with >=1 char after the
    # prefix, otherwise the first CRLF at >= p+plen+1 inside the record (`.+?\r\n`).
    ends_crlf = (ple - pp >= 2) & (buf[np.maximum(ple - 1, 0)] == 10) & (buf[np.maximum(ple - 2, 0)] == 13)
    unit_normal = ends_crlf & (ple - 2 > pp + plen)
    unit_end = np.where(unit_normal, ple, -1)
    odd = np.flatnonzero(~unit_normal)
    if odd.size:
        nl = recs.newlines
        crlf = nl[(nl > 0) & (buf[np.maximum(nl - 1, 0)] == 13)] - 1
        ci = np.searchsorted(crlf, pp[odd] + plen[odd] + 1)
        cpos = np.append(crlf, np.iinfo(np.int64).max // 2)[ci]
        unit_end[odd] = np.where(cpos + 2 <= g_end[prec[odd]], cpos + 2, -1)
    matched = unit_end >= 0
    if np.any(matched & (unit_end > ple)):
        # A match ran into the next line(s): findall matches of one object do not
        # overlap, so later lines it swallowed are not matched separately.
        srt = np.lexsort((pp, prec, obj))
        so, sr, sp = obj[srt], prec[srt], pp[srt]
        se = np.where(matched[srt], unit_end[srt], -1)
        same_prev = np.zeros(n_pairs, dtype=bool)
        same_prev[1:] = (so[1:] == so[:-1]) & (sr[1:] == sr[:-1])
        prev_end = np.concatenate([[-1], se[:-1]])
        covered = np.zeros(n_pairs, dtype=bool)
        covered[srt] = same_prev & (sp < prev_end)
        matched &= ~covered

    # Values: plain matches use the line slices, the rest is extracted from the match text.
    pair_normal = is_normal[pair_line] & unit_normal
    is_pg = _IS_PG[obj]
    cnt = np.where(two[pair_line], 2, 1)
    vidx = pair_line.copy()
    pg_wf = np.zeros(n_pairs, dtype=bool)
    pg_exc = np.zeros(n_pairs, dtype=bool)
    # Power failure log on a plain line: '()' or '(0..0)(<id>)' are the only well-formed
    # shapes with fewer than three groups; position 1 is a str value.
    pgp = np.flatnonzero(matched & pair_normal & is_pg)
    if pgp.size:
        sel = pl.Series(pair_line[pgp], dtype=pl.Int64)
        chk = pl.DataFrame({"a": v0_all.gather(sel), "b": v1_all.gather(sel)}).select(
            zeros=pl.col("a").str.contains(r"^0+$").fill_null(False),
            empty=pl.col("a").eq("").fill_null(False),
            stars=pl.col("b").str.count_matches("*", literal=True).fill_null(0),
        )
        c2 = cnt[pgp] == 2
        pg_wf[pgp] = (~c2 & chk["empty"].to_numpy()) | (c2 & chk["zeros"].to_numpy())
        pg_exc[pgp] = pg_wf[pgp] & c2 & (chk["stars"].to_numpy() >= 2)
    special = np.flatnonzero(matched & ~pair_normal)
    if special.size:
        units = _gather_strings(buf, data, pp[special], unit_end[special])
        cnt[special] = units.str.count_matches(_VALUE_GROUP).to_numpy()
        sv0 = units.str.extract(_FIRST_VALUE_RE, 1)
        sv1 = units.str.extract_groups(_TWO_VALUES_RE).struct.field("2")
        vidx[special] = n_lines + np.arange(special.size)
        v0_all = pl.concat([v0_all, sv0])
        v1_all = pl.concat([v1_all, sv1])
        pg = is_pg[special]
        if pg.any():
            wf, exc_pg = _check_profile_generic(units.filter(pl.Series(pg)))
            pg_wf[special[pg]] = wf
            pg_exc[special[pg]] = exc_pg
    wellformed = matched & np.where(is_pg, pg_wf, cnt == _ARITY[obj])

    # ValueParser coercion errors propagate out of TelegramParser.parse: check each
    # well-formed value once, against the coercion of its object and position.
    exc = wellformed & is_pg & pg_exc
    for pos, types, src in ((0, _TYPE0[obj], v0_all), (1, _TYPE1[obj], v1_all)):
        # values of plain lines are judged on their bytes in one compiled pass; the rest, and
        # decimals outside the plain grammar (inf, nan, ...), by the regexes below
        kind = _KIND_OF_TYPE[types]
        sel = np.flatnonzero(wellformed & ~is_pg & (kind >= 0))
        if not sel.size:
            continue
        li = vidx[sel]
        plain = li < n_lines
        if pos == 1:
            plain &= two[np.minimum(li, max(n_lines - 1, 0))]
        status = np.full(sel.size, 2, dtype=np.int8)
        pl_i = np.flatnonzero(plain)
        if pl_i.size:
            ln = li[pl_i]
            vs, ve = (p[ln] + o[ln] + 1, p[ln] + c[ln]) if pos == 0 else (p[ln] + c[ln] + 2, le[ln] - 3)
            status[pl_i] = _value_status_kernel(buf, vs, ve, kind[sel[pl_i]])
        exc[sel[status == 1]] = True
        undecided = sel[status == 2]
        for t in (T_DEC, T_INT, T_STR):
            sub = undecided[(types[undecided] == t) | ((types[undecided] == T_TS) if t == T_STR else False)]
            if not sub.size:
                continue
            vals = pl.DataFrame({"v": src.gather(pl.Series(vidx[sub], dtype=pl.Int64))})
            if t == T_STR:  # str and timestamp: only ValueParser's '*' split can raise
                bad = vals.select(pl.col("v").str.count_matches("*", literal=True).fill_null(0) >= 2)
            else:
                bad = vals.select(~(pl.col("v").eq("") | pl.col("v").str.contains(_OK_RE[t])).fill_null(True))
            exc[sub[bad.to_series().to_numpy()]] = True
    exi = np.flatnonzero(exc)
    if exi.size:
        # The reference raises at the first failing object in spec order.
        srt = np.lexsort((obj[exi], prec[exi]))
        er, eo = prec[exi][srt], obj[exi][srt]
        first = np.ones(er.size, dtype=bool)
        first[1:] = er[1:] != er[:-1]
        reason[good[er[first]]] = np.array(["invalid_value:" + nm for nm in _NAMES[eo[first]]], dtype=object)

    # Telegram attributes: last well-formed occurrence per (record, object).  Pairs
    # are in line order, so per object the records are non-decreasing.
    wf_idx = np.flatnonzero(wellformed)
    w_obj = obj[wf_idx]
    attr: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(REQUIRED_FIELDS + tuple(v[0] for v in _VALUE_COLUMNS.values())):
        sel = wf_idx[w_obj == _BY_NAME[name].index]
        r = prec[sel]
        last = np.ones(sel.size, dtype=bool)
        last[:-1] = r[1:] != r[:-1]
        a = np.full(ng, -1, dtype=np.int64)
        a[r[last]] = vidx[sel[last]]
        attr[name] = a

    # Raw value strings of the attributes (one gather per value position), then the
    # typed columns in one parallel select.
    col_names = list(_VALUE_COLUMNS)
    frame = {}
    for pos, src in ((0, v0_all), (1, v1_all)):
        cs = [col for col in col_names if _VALUE_COLUMNS[col][1] == pos]
        idx = np.concatenate([attr[_VALUE_COLUMNS[col][0]] for col in cs])
        g = src.gather(pl.Series(np.maximum(idx, 0), dtype=pl.Int64))
        for i, col in enumerate(cs):
            frame[col] = g.slice(i * ng, ng)
            frame["has_" + col] = pl.Series(attr[_VALUE_COLUMNS[col][0]] >= 0)

    def value(col: str) -> pl.Expr:
        # Missing object or '' -> None, else the part before the unit.
        e = pl.col(col)
        star = e.str.find("*", literal=True)
        return pl.when(~pl.col("has_" + col) | (e == "")).then(None).when(star.is_null()).then(e).otherwise(e.str.head(star))

    strings = pl.DataFrame(frame).lazy().select(**{col: value(col) for col in col_names}).collect()
    exprs = {}
    for col, (name, pos, conv) in _VALUE_COLUMNS.items():
        v = pl.col(col)
        if conv == "f64":
            v = _float_expr(v)
        elif conv == "i32":
            v = v.cast(pl.Int64, strict=False).cast(pl.Int32, strict=False)
        elif conv == "i8":
            v = v.cast(pl.Int64, strict=False).cast(pl.Int8, strict=False)
        exprs[col] = v  # "str" as is, "ts" converted below
    out = strings.lazy().select(**exprs).collect()
    cols = {col: out[col] for col in col_names}
    for col, (name, pos, conv) in _VALUE_COLUMNS.items():
        if conv == "ts":
            cols[col] = dsmr_timestamps_to_utc(cols[col])

    # Required objects: present, and value not None (a missing value '()', or an
    # invalid timestamp, for which dsmr-parser's timestamp() returns None).
    req_col = {name: col for col, (name, pos, conv) in _VALUE_COLUMNS.items() if pos == 0}
    still = reason[good] == None  # noqa: E711
    missing_reason = np.full(ng, None, dtype=object)
    invalid_reason = np.full(ng, None, dtype=object)
    for name in reversed(REQUIRED_FIELDS):  # first in spec order wins
        missing_reason[attr[name] < 0] = "missing_field:" + name
        isnone = cols[req_col[name]].is_null().to_numpy()
        invalid_reason[(attr[name] >= 0) & isnone] = "invalid_value:" + name
    rr = np.where(missing_reason != None, missing_reason, invalid_reason)  # noqa: E711
    upd = still & (rr != None)  # noqa: E711
    reason[good[upd]] = rr[upd]
    return cols


def _float_expr(v: pl.Expr) -> pl.Expr:
    """Decimal strings (already validated) -> Float64 equal to float(Decimal(s)).

    Polars parses every valid Decimal string in the value alphabet except NaN with
    a payload ('NaN12') and signalling NaN ('sNaN'); those become NaN.
    """
    f = v.cast(pl.Float64, strict=False)
    return pl.when(f.is_null() & v.is_not_null()).then(float("nan")).otherwise(f)


def _check_profile_generic(units: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """ProfileGenericParser semantics for power-failure-log units.

    Returns (wellformed, raises) per unit.  Assumes a fresh parser (the
    library's parser accumulates ``value_formats`` across calls, see
    `reference_parse`).
    """
    vals = units.str.extract_all(_VALUE_GROUP).list.eval(pl.element().str.slice(1, pl.element().str.len_bytes() - 2))
    n = vals.list.len().to_numpy()
    first = vals.list.get(0, null_on_oob=True)
    isdigit = first.str.contains(r"^[0-9]+$").fill_null(False).to_numpy()
    bl = first.cast(pl.Int64, strict=False).fill_null(-1).to_numpy() if len(first) else np.zeros(0, np.int64)
    single_empty = (n == 1) & first.eq("").fill_null(False).to_numpy()
    wf = single_empty | ((n >= 2) & isdigit & (bl <= 10) & (n == 2 * np.maximum(bl, 0) + 2))
    raises = np.zeros(units.len(), dtype=bool)
    if not wf.any():
        return wf, raises
    df = pl.DataFrame({"u": np.arange(units.len()), "v": vals, "wf": wf}).filter(pl.col("wf") & pl.Series(~single_empty))
    bufid = df["v"].list.get(1, null_on_oob=True)
    long = (
        df.with_columns(bufid=bufid)
        .explode("v")
        .with_columns(pos=pl.int_range(pl.len()).over("u"))
    )
    known = list(_PG_BUFFER_TYPES)
    t_even = pl.lit(_PG_UNIDENTIFIED_TYPES[0])
    t_odd = pl.lit(_PG_UNIDENTIFIED_TYPES[1])
    for k in known:
        t_even = pl.when(pl.col("bufid") == k).then(_PG_BUFFER_TYPES[k][0]).otherwise(t_even)
        t_odd = pl.when(pl.col("bufid") == k).then(_PG_BUFFER_TYPES[k][1]).otherwise(t_odd)
    long = long.with_columns(
        t=pl.when(pl.col("pos") == 0)
        .then(_PG_HEAD_TYPES[0])
        .when(pl.col("pos") == 1)
        .then(_PG_HEAD_TYPES[1])
        .when((pl.col("pos") - 2) % 2 == 0)
        .then(t_even)
        .otherwise(t_odd)
    )
    ok = pl.lit(True)
    for t, rx in _OK_RE.items():
        ok = pl.when(pl.col("t") == t).then(pl.col("v").str.contains(rx)).otherwise(ok)
    long = long.with_columns(bad=~((pl.col("v") == "") | ok))
    bad_u = long.filter(pl.col("bad"))["u"].unique().to_numpy()
    raises[bad_u] = True
    return wf, raises


# --------------------------------------------------------------------------------------
# Reference (dsmr-parser)
# --------------------------------------------------------------------------------------

_REF = {}


def reference_parse(text: str) -> dict | None:
    """Parse one record with dsmr-parser; ``None`` when it would be rejected.

    Accepted iff ``TelegramParser(V5).parse(text)`` raises nothing and every
    `REQUIRED_FIELDS` object is present with a non-None value.  Returns the
    reference values keyed like the readings columns (``Decimal``, ``int``,
    ``str``, aware ``datetime``; ``active_tariff`` as dsmr-parser's string).

    dsmr-parser's ``ProfileGenericParser`` appends to its own ``value_formats``
    on every call, so its behaviour depends on the telegrams parsed before.
    To get a deterministic reference this uses a private deep copy of V5 and
    resets that list before each call (fresh-parser semantics, which
    `parse_p1` implements).
    """
    import copy

    from dsmr_parser.parsers import TelegramParser

    if "parser" not in _REF:
        spec = copy.deepcopy(_specs.V5)
        _REF["parser"] = TelegramParser(spec)
        _REF["pg"] = [o["value_parser"] for o in spec["objects"] if isinstance(o["value_parser"], ProfileGenericParser)]
    for pg in _REF["pg"]:
        pg.value_formats = list(PG_HEAD_PARSERS)
    try:
        t = _REF["parser"].parse(text)
    except Exception:
        return None
    for name in REQUIRED_FIELDS:
        if getattr(t, name, None) is None or getattr(t, name).value is None:
            return None
    out = {}
    for col, (name, pos, conv) in _VALUE_COLUMNS.items():
        o = getattr(t, name, None)
        if o is None:
            out[col] = None
        elif name == "MBUS_METER_READING":
            out[col] = o.values[pos]["value"]
        else:
            out[col] = o.value
    return out


# --------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------


def _obis_code(reference: str) -> str:
    """'C.D.E' part of an obis_references regex, e.g. r'^\\d-\\d:1\\.8\\.1.+?\\r\\n' -> '1.8.1'."""
    body = reference[1 : -len(_LINE_SUFFIX)] if reference.endswith(_LINE_SUFFIX) else reference
    code = body.split(":", 1)[1].replace("\\.", ".")
    if not all(ch.isdigit() or ch == "." for ch in code):
        raise ValueError(f"OBIS reference {reference!r} is not a single code")
    return code


# DSMR 5 'A-B:' medium/channel per line; the C.D.E codes come from dsmr-parser.
_L = {
    "version": "1-3:" + _obis_code(obis.P1_MESSAGE_HEADER),
    "timestamp": "0-0:" + _obis_code(obis.P1_MESSAGE_TIMESTAMP),
    "equipment": "0-0:" + _obis_code(obis.EQUIPMENT_IDENTIFIER),
    "t1_in": "1-0:" + _obis_code(obis.ELECTRICITY_USED_TARIFF_1),
    "t2_in": "1-0:" + _obis_code(obis.ELECTRICITY_USED_TARIFF_2),
    "t1_out": "1-0:" + _obis_code(obis.ELECTRICITY_DELIVERED_TARIFF_1),
    "t2_out": "1-0:" + _obis_code(obis.ELECTRICITY_DELIVERED_TARIFF_2),
    "tariff": "0-0:" + _obis_code(obis.ELECTRICITY_ACTIVE_TARIFF),
    "p_in": "1-0:" + _obis_code(obis.CURRENT_ELECTRICITY_USAGE),
    "p_out": "1-0:" + _obis_code(obis.CURRENT_ELECTRICITY_DELIVERY),
    "short_pf": "0-0:" + _obis_code(obis.SHORT_POWER_FAILURE_COUNT),
    "long_pf": "0-0:" + _obis_code(obis.LONG_POWER_FAILURE_COUNT),
    "pf_log": "1-0:" + _obis_code(obis.POWER_EVENT_FAILURE_LOG),
    "sag_l1": "1-0:" + _obis_code(obis.VOLTAGE_SAG_L1_COUNT),
    "swell_l1": "1-0:" + _obis_code(obis.VOLTAGE_SWELL_L1_COUNT),
    "text": "0-0:" + _obis_code(obis.TEXT_MESSAGE),
    "u_l1": "1-0:" + _obis_code(obis.INSTANTANEOUS_VOLTAGE_L1),
    "i_l1": "1-0:" + _obis_code(obis.INSTANTANEOUS_CURRENT_L1),
    "p_l1_in": "1-0:" + _obis_code(obis.INSTANTANEOUS_ACTIVE_POWER_L1_POSITIVE),
    "p_l1_out": "1-0:" + _obis_code(obis.INSTANTANEOUS_ACTIVE_POWER_L1_NEGATIVE),
    "mbus_type": "0-1:" + _obis_code(obis.DEVICE_TYPE),
    "mbus_id": "0-1:" + _obis_code(obis.EQUIPMENT_IDENTIFIER_GAS),
    "mbus_reading": "0-1:" + _obis_code(obis.HOURLY_GAS_METER_READING),
}
_CRLF = "\r\n"


def meter_id_from_serial(serial: str) -> str:
    """Equipment identifier as DSMR transmits it: the ASCII serial, hex encoded.

    >>> meter_id_from_serial("E0043007052870318")
    '4530303433303037303532383730333138'
    """
    return serial.encode("ascii").hex().upper()


def _fixed(expr: pl.Expr, int_digits: int, decimals: int) -> pl.Expr:
    """Zero-padded fixed point text, e.g. (6, 3): 123.4567 -> '000123.457'."""
    scaled = (expr * 10**decimals).round(0).cast(pl.Int64)
    ip = (scaled // 10**decimals).cast(pl.String).str.zfill(int_digits)
    if decimals == 0:
        return ip
    fp = (scaled % 10**decimals).cast(pl.String).str.zfill(decimals)
    return pl.concat_str([ip, pl.lit("."), fp])


def _ts_text(expr: pl.Expr) -> pl.Expr:
    """DSMR timestamp YYMMDDhhmmssX for a UTC datetime (X = S in DST, W otherwise)."""
    local = expr.dt.convert_time_zone(TIME_ZONE)
    flag = pl.when(local.dt.dst_offset() > pl.duration(seconds=0)).then(pl.lit("S")).otherwise(pl.lit("W"))
    return pl.concat_str([local.dt.strftime("%y%m%d%H%M%S"), flag])


def _line(key: str, *values: pl.Expr | str) -> list[pl.Expr]:
    parts: list[pl.Expr] = [pl.lit(_L[key])]
    for v in values:
        parts += [pl.lit("("), v if isinstance(v, pl.Expr) else pl.lit(v), pl.lit(")")]
    parts.append(pl.lit(_CRLF))
    return parts


def build_telegrams(df: pl.DataFrame) -> pl.Series:
    """Build one complete DSMR 5.0 telegram (CRLF lines, valid CRC) per row of ``df``.

    Required columns: ``meter_id`` (hex, see `meter_id_from_serial`),
    ``gas_meter_id`` (nullable: no M-Bus lines when null), ``ts_utc``,
    ``imported_t1_kwh``, ``imported_t2_kwh``, ``exported_t1_kwh``,
    ``exported_t2_kwh``, ``power_imported_kw``, ``power_exported_kw``,
    ``active_tariff``, ``gas_m3`` (nullable: no 24.2.1 line when null),
    ``gas_ts_utc`` (nullable: defaults to ``ts_utc`` truncated to the hour).
    Optional: ``voltage_l1_v`` (default 230.0), ``current_l1_a`` (default
    |net power| / voltage), ``power_failures``, ``long_power_failures``,
    ``voltage_sags``, ``voltage_swells`` (default 0), ``header`` (default
    `DEFAULT_HEADER`).  Datetimes may be naive (taken as UTC) or tz-aware.
    The CRC of the whole batch is computed in one `crc16_arc` call.
    """
    if df.height == 0:
        return pl.Series("telegram", [], dtype=pl.String)

    def utc(col: str) -> pl.Expr:
        dt = df.schema[col]
        e = pl.col(col)
        if isinstance(dt, pl.Datetime) and dt.time_zone is None:
            return e.dt.replace_time_zone("UTC")
        return e.dt.convert_time_zone("UTC")

    def opt(col: str, default) -> pl.Expr:
        return pl.col(col) if col in df.columns else pl.lit(default)

    voltage = opt("voltage_l1_v", 230.0).cast(pl.Float64)
    net_kw = (pl.col("power_imported_kw") - pl.col("power_exported_kw")).abs()
    current = pl.col("current_l1_a") if "current_l1_a" in df.columns else (net_kw * 1000.0 / voltage)
    header = opt("header", DEFAULT_HEADER).cast(pl.String)
    gas_ts = pl.coalesce(utc("gas_ts_utc"), utc("ts_utc").dt.truncate("1h"))
    has_gas = pl.col("gas_meter_id").is_not_null()
    reading = pl.when(pl.col("gas_m3").is_not_null()).then(
        pl.concat_str(_line("mbus_reading", _ts_text(gas_ts), pl.concat_str([_fixed(pl.col("gas_m3"), 5, 3), pl.lit("*m3")])))
    ).otherwise(pl.lit(""))
    gas_block = (
        pl.when(has_gas)
        .then(
            pl.concat_str(
                _line("mbus_type", "003") + _line("mbus_id", pl.col("gas_meter_id")) + [reading]
            )
        )
        .otherwise(pl.lit(""))
    )

    def kwh(col):
        return pl.concat_str([_fixed(pl.col(col), 6, 3), pl.lit("*kWh")])

    def kw(e):
        return pl.concat_str([_fixed(e, 2, 3), pl.lit("*kW")])

    parts: list[pl.Expr] = [header, pl.lit(_CRLF + _CRLF)]
    parts += _line("version", "50")
    parts += _line("timestamp", _ts_text(utc("ts_utc")))
    parts += _line("equipment", pl.col("meter_id"))
    parts += _line("t1_in", kwh("imported_t1_kwh"))
    parts += _line("t2_in", kwh("imported_t2_kwh"))
    parts += _line("t1_out", kwh("exported_t1_kwh"))
    parts += _line("t2_out", kwh("exported_t2_kwh"))
    parts += _line("tariff", pl.col("active_tariff").cast(pl.Int64).cast(pl.String).str.zfill(4))
    parts += _line("p_in", kw(pl.col("power_imported_kw")))
    parts += _line("p_out", kw(pl.col("power_exported_kw")))
    parts += _line("short_pf", opt("power_failures", 0).cast(pl.Int64).cast(pl.String).str.zfill(5))
    parts += _line("long_pf", opt("long_power_failures", 0).cast(pl.Int64).cast(pl.String).str.zfill(5))
    parts += _line("pf_log", "0", PG_FAILURE_EVENT)
    parts += _line("sag_l1", opt("voltage_sags", 0).cast(pl.Int64).cast(pl.String).str.zfill(5))
    parts += _line("swell_l1", opt("voltage_swells", 0).cast(pl.Int64).cast(pl.String).str.zfill(5))
    parts += _line("text", "")
    parts += _line("u_l1", pl.concat_str([_fixed(voltage, 3, 1), pl.lit("*V")]))
    parts += _line("i_l1", pl.concat_str([_fixed(current, 3, 0), pl.lit("*A")]))
    parts += _line("p_l1_in", kw(pl.col("power_imported_kw")))
    parts += _line("p_l1_out", kw(pl.col("power_exported_kw")))
    parts += [gas_block, pl.lit("!")]
    body = df.select(pl.concat_str(parts).alias("telegram")).to_series()
    if body.null_count():
        raise ValueError("build_telegrams: null in a required column")
    data, offsets = _arrow_string_buffers(body)
    ascii_only = bool(data.size == 0 or data.max() < 128)
    kernel = crc16_arc if ascii_only else crc16_arc_text
    crc = kernel(data, offsets[:-1], offsets[1:])
    hex_ = _hex4(crc)
    return (body + hex_ + _CRLF).alias("telegram")
