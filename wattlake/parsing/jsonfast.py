"""A compiled fast path for JSON lines of a known, flat shape; every other line goes the full way.

Polars' ``str.json_decode`` builds a document tree per line and then converts it: about 1 M
inverter lines per second per thread, the largest single cost of landing. The stick and energy
manager messages, however, are small objects with a fixed set of keys. :func:`scan` reads such
lines straight from the landing buffer into typed arrays (one pass, no tree, no Python per
line) and accepts a line only when its result is certain to be what Polars would decode:

- the line is one JSON object (JSON whitespace around tokens allowed) whose keys are all in the
  schema, each at most once;
- text values hold no escape (``\\``) and no control character, so the bytes are the value;
- numbers are plain JSON numbers of at most 15 significant digits and no exponent: the mantissa
  and the power of ten are then exact doubles, so one division gives the correctly rounded value
  (Clinger's fast path, the one Polars' JSON parser takes for them too); an integer keeps its
  sign rules (``-0`` is ``0.0``, ``-0.0`` is ``-0.0``); ``Int8`` fields take integers in range;
- ``null`` is null, an absent key is null, a list of objects holds objects (not ``null``).

Anything else — ``true`` where a number belongs, an escaped quote, an exponent, an unknown key, a
truncated line — is left to :func:`~wattlake.parsing.lines.decode_json_lines`, which decodes it or
rejects it with a reason, exactly as before. The fast path therefore changes speed, not results;
``tests/test_jsonfast.py`` checks it against Polars on fuzzed lines.

Supported schemas: fields of ``Utf8``, ``Float64`` and at most one ``List(Struct)`` whose fields are
``Float64`` or ``Int8`` (:class:`Shape` checks this). One ``Utf8`` field may be read as an ISO 8601
time instead (``scan(..., timestamp=...)``, :func:`_iso`): the inverter's ``ts`` is then never copied
as text, and Polars' two datetime parses of it (instant and wall time) are not needed for the lines
the scan accepts (0.54-0.56 s -> 0.49-0.50 s per 864 k inverter lines, 2026-11-24).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from numba import njit

STR, F64, I8, LIST, TS = 0, 1, 2, 3, 4
_KIND = {pl.Utf8: STR, pl.Float64: F64, pl.Int8: I8}
#: 10**k for the exact fast path (k <= 15 here; 10**22 is the largest exact double power of ten)
_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)
#: at most this many significant digits: the mantissa stays below 2**53, so it is exact
MAX_DIGITS = 15
#: list elements provisioned per line before the scan (a line beyond the total falls back)
ELEMENTS_PER_LINE = 4


@dataclass(frozen=True)
class Shape:
    """A Polars struct dtype in the form :func:`scan` reads."""

    names: list[str]
    kinds: np.ndarray       # int8 per field: STR, F64, LIST, TS
    key_bytes: np.ndarray   # uint8 [fields, longest name], zero padded
    key_len: np.ndarray     # int64 per field
    sub_names: list[str]
    sub_kinds: np.ndarray   # int8 per list-element field: F64, I8
    sub_key_bytes: np.ndarray
    sub_key_len: np.ndarray

    @classmethod
    def of(cls, dtype: pl.Struct, timestamp: str | None = None) -> "Shape":
        names, kinds, sub = [], [], None
        for f in dtype.fields:
            if isinstance(f.dtype, pl.List) and isinstance(f.dtype.inner, pl.Struct) and sub is None:
                sub = f.dtype.inner
                kinds.append(LIST)
            elif f.name == timestamp and f.dtype == pl.Utf8:
                kinds.append(TS)
            elif f.dtype in (pl.Utf8, pl.Float64):
                kinds.append(_KIND[f.dtype])
            else:
                raise ValueError(f"jsonfast: field {f.name!r} of type {f.dtype} is not supported")
            names.append(f.name)
        sub_names, sub_kinds = [], []
        for f in (sub.fields if sub is not None else []):
            if f.dtype not in (pl.Float64, pl.Int8):
                raise ValueError(f"jsonfast: list field {f.name!r} of type {f.dtype} is not supported")
            sub_names.append(f.name)
            sub_kinds.append(_KIND[f.dtype])
        kb, kl = _keys(names)
        sb, sl = _keys(sub_names)
        return cls(names, np.array(kinds, dtype=np.int8), kb, kl, sub_names,
                   np.array(sub_kinds, dtype=np.int8), sb, sl)


def _keys(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    raw = [n.encode() for n in names]
    out = np.zeros((len(raw), max((len(r) for r in raw), default=1)), dtype=np.uint8)
    for i, r in enumerate(raw):  # loop over schema fields
        out[i, :len(r)] = np.frombuffer(r, dtype=np.uint8)
    return out, np.array([len(r) for r in raw], dtype=np.int64)


# The kernels below are compiled without numba's reference counting (``_nrt=False``): they take
# arrays and allocate none. With it, every call of one kernel from another (per line, per field)
# increfs and decrefs each array argument with atomic instructions that numba's pruning pass does
# not remove across these branches: on an AMD EPYC (Zen 5) VM that was three quarters of the
# scan's time, 2.0 s instead of 0.5 s for 1.15 M inverter lines (perf: NRT_incref/NRT_decref).
# Kernels are plain calls, not inlined into each other at numba IR level: that compiles in a
# third of the time and ran no slower.

@njit(cache=True, nogil=True, _nrt=False)
def _ws(buf, i, e):  # pragma: no cover - compiled
    while i < e:
        c = buf[i]
        if c == 32 or c == 9 or c == 10 or c == 13:
            i += 1
        else:
            break
    return i


@njit(cache=True, nogil=True, _nrt=False)
def _string_end(buf, i, e):  # pragma: no cover - compiled
    """buf[i] is a quote: the index of the closing quote, or -1 (escape, control byte, no end)."""
    j = i + 1
    while j < e:
        c = buf[j]
        if c == 34:
            return j
        if c == 92 or c < 32:
            return -1
        j += 1
    return -1


@njit(cache=True, nogil=True, _nrt=False)
def _is_null(buf, i, e):  # pragma: no cover - compiled
    return i + 4 <= e and buf[i] == 110 and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108


@njit(cache=True, nogil=True, _nrt=False)
def _number(buf, i, e, pow10):  # pragma: no cover - compiled
    """A JSON number at i: (next index or -1, value, integral, integer value)."""
    neg = False
    if i < e and buf[i] == 45:
        neg = True
        i += 1
    if i >= e:
        return -1, 0.0, False, 0
    mant = 0
    ndig = 0
    c = buf[i]
    if c == 48:
        i += 1
        if i < e and 48 <= buf[i] <= 57:
            return -1, 0.0, False, 0  # leading zero: not JSON
    elif 49 <= c <= 57:
        while i < e and 48 <= buf[i] <= 57:
            mant = mant * 10 + (buf[i] - 48)
            ndig += 1
            i += 1
            if ndig > 15:
                return -1, 0.0, False, 0
    else:
        return -1, 0.0, False, 0
    frac = 0
    integral = True
    if i < e and buf[i] == 46:
        integral = False
        i += 1
        if not (i < e and 48 <= buf[i] <= 57):
            return -1, 0.0, False, 0
        while i < e and 48 <= buf[i] <= 57:
            mant = mant * 10 + (buf[i] - 48)
            ndig += 1
            frac += 1
            i += 1
            if ndig > 15:
                return -1, 0.0, False, 0
    if i < e and (buf[i] == 101 or buf[i] == 69):
        return -1, 0.0, False, 0  # exponent: left to the full decoder
    if integral:
        iv = -mant if neg else mant
        return i, float(iv), True, iv
    v = mant / pow10[frac]
    return i, (-v if neg else v), False, 0


@njit(cache=True, nogil=True, _nrt=False)
def _key(buf, lo, hi, key_bytes, key_len, hint):  # pragma: no cover - compiled
    """The field whose name is buf[lo:hi], or -1; field ``hint`` (the schema's next) is tried first."""
    n = hi - lo
    nf = key_len.size
    for t in range(nf):
        f = hint + t
        if f >= nf:
            f -= nf
        if key_len[f] != n:
            continue
        same = True
        for j in range(n):
            if buf[lo + j] != key_bytes[f, j]:
                same = False
                break
        if same:
            return f
    return -1


@njit(cache=True, nogil=True, _nrt=False)
def _expected_key(buf, i, e, key_bytes, key_len, f):  # pragma: no cover - compiled
    """buf[i] is a quote: the index of the closing quote when the key is exactly field ``f``'s
    name, else -1 (the caller then reads the key the general way)."""
    n = key_len[f]
    if i + n + 1 >= e or buf[i + n + 1] != 34:
        return -1
    for j in range(n):
        if buf[i + 1 + j] != key_bytes[f, j]:
            return -1
    return i + n + 1


@njit(cache=True, nogil=True, _nrt=False)
def _digits(buf, i, n):  # pragma: no cover - compiled
    """The value of the ``n`` decimal digits at ``i``, or -1."""
    v = 0
    for j in range(i, i + n):
        c = buf[j]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@njit(cache=True, nogil=True, _nrt=False)
def _days_from_civil(y, m, d):  # pragma: no cover - compiled
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= 1 if m <= 2 else 0
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(cache=True, nogil=True, _nrt=False)
def _iso(buf, lo, hi):  # pragma: no cover - compiled
    """``YYYY-MM-DDTHH:MM:SSZ`` or ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (or ``-``) at ``buf[lo:hi]``:
    (valid, UTC instant [us since the epoch], UTC offset [min]). Anything else -- fractions,
    lowercase, a space, no offset, second 60, an impossible date -- is not valid here."""
    n = hi - lo
    if n != 20 and n != 25:
        return False, 0, 0
    if buf[lo + 4] != 45 or buf[lo + 7] != 45 or buf[lo + 10] != 84 or buf[lo + 13] != 58 or buf[lo + 16] != 58:
        return False, 0, 0
    y = _digits(buf, lo, 4)
    mo = _digits(buf, lo + 5, 2)
    d = _digits(buf, lo + 8, 2)
    h = _digits(buf, lo + 11, 2)
    mi = _digits(buf, lo + 14, 2)
    sec = _digits(buf, lo + 17, 2)
    if y < 0 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 or sec < 0 or sec > 59:
        return False, 0, 0
    if mo == 2:
        dim = 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        dim = 30
    else:
        dim = 31
    if d > dim:
        return False, 0, 0
    off = 0
    if n == 20:
        if buf[lo + 19] != 90:  # Z
            return False, 0, 0
    else:
        sign = buf[lo + 19]
        oh = _digits(buf, lo + 20, 2)
        om = _digits(buf, lo + 23, 2)
        if (sign != 43 and sign != 45) or buf[lo + 22] != 58 or oh < 0 or oh > 23 or om < 0 or om > 59:
            return False, 0, 0
        off = oh * 60 + om
        if sign == 45:
            off = -off
    seconds = ((_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec - off * 60
    return True, seconds * 1_000_000, off


@njit(cache=True, nogil=True, _nrt=False)
def _element(buf, i, e, pos, sub_kinds, sub_key_bytes, sub_key_len, sub_val, sub_ok, pow10):  # pragma: no cover
    """An object of the list element shape at i (buf[i] == '{') into row ``pos``: next index or -1."""
    for f in range(sub_kinds.size):
        sub_ok[pos, f] = False
    seen = 0
    hint = 0
    i = _ws(buf, i + 1, e)
    if i < e and buf[i] == 125:
        return i + 1
    while True:
        if i >= e or buf[i] != 34:
            return -1
        f = hint if hint < sub_key_len.size else 0
        k = _expected_key(buf, i, e, sub_key_bytes, sub_key_len, f)
        if k < 0:  # not the field the schema has next: look the key up
            k = _string_end(buf, i, e)
            if k < 0:
                return -1
            f = _key(buf, i + 1, k, sub_key_bytes, sub_key_len, hint)
        if f < 0 or (seen >> f) & 1:
            return -1
        seen |= 1 << f
        hint = f + 1
        i = _ws(buf, k + 1, e)
        if i >= e or buf[i] != 58:
            return -1
        i = _ws(buf, i + 1, e)
        if _is_null(buf, i, e):
            i += 4
        else:
            nxt, v, integral, iv = _number(buf, i, e, pow10)
            if nxt < 0:
                return -1
            if sub_kinds[f] == 2:  # Int8
                if not integral or iv < -128 or iv > 127:
                    return -1
                sub_val[pos, f] = float(iv)
            else:
                sub_val[pos, f] = v
            sub_ok[pos, f] = True
            i = nxt
        i = _ws(buf, i, e)
        if i < e and buf[i] == 44:
            i = _ws(buf, i + 1, e)
            continue
        if i < e and buf[i] == 125:
            return i + 1
        return -1


@njit(cache=True, nogil=True, _nrt=False)
def _line(buf, i, e, r, kinds, key_bytes, key_len, str_lo, str_hi, num, num_ok, n_items,
          sub_kinds, sub_key_bytes, sub_key_len, sub_val, sub_ok, pos, pow10):  # pragma: no cover
    """The line of bytes [i, e) into output row r: (accepted, list elements written)."""
    for f in range(kinds.size):
        str_lo[r, f] = -1
        num_ok[r, f] = False
    n_items[r] = -1
    start = pos
    i = _ws(buf, i, e)
    if i >= e or buf[i] != 123:
        return False, 0
    seen = 0
    hint = 0
    i = _ws(buf, i + 1, e)
    if i < e and buf[i] == 125:
        return _ws(buf, i + 1, e) == e, 0
    while True:
        if i >= e or buf[i] != 34:
            return False, 0
        f = hint if hint < key_len.size else 0
        k = _expected_key(buf, i, e, key_bytes, key_len, f)
        if k < 0:  # not the field the schema has next: look the key up
            k = _string_end(buf, i, e)
            if k < 0:
                return False, 0
            f = _key(buf, i + 1, k, key_bytes, key_len, hint)
        if f < 0 or (seen >> f) & 1:
            return False, 0
        seen |= 1 << f
        hint = f + 1
        i = _ws(buf, k + 1, e)
        if i >= e or buf[i] != 58:
            return False, 0
        i = _ws(buf, i + 1, e)
        kind = kinds[f]
        if _is_null(buf, i, e):
            i += 4
        elif kind == 0:  # text
            if i >= e or buf[i] != 34:
                return False, 0
            k = _string_end(buf, i, e)
            if k < 0:
                return False, 0
            str_lo[r, f] = i + 1
            str_hi[r, f] = k
            i = k + 1
        elif kind == 1:  # Float64
            nxt, v, integral, iv = _number(buf, i, e, pow10)
            if nxt < 0:
                return False, 0
            num[r, f] = v
            num_ok[r, f] = True
            i = nxt
        elif kind == 4:  # a timestamp: parsed here (instant in str_lo, offset in str_hi), never null
            if i >= e or buf[i] != 34:
                return False, 0
            k = _string_end(buf, i, e)
            if k < 0:
                return False, 0
            valid, micros, off = _iso(buf, i + 1, k)
            if not valid:
                return False, 0
            str_lo[r, f] = micros
            str_hi[r, f] = off
            i = k + 1
        else:  # list of objects
            if i >= e or buf[i] != 91:
                return False, 0
            count = 0
            i = _ws(buf, i + 1, e)
            if i < e and buf[i] == 93:
                i += 1
            else:
                while True:
                    if i >= e or buf[i] != 123 or pos >= sub_val.shape[0]:
                        return False, 0
                    i = _element(buf, i, e, pos, sub_kinds, sub_key_bytes, sub_key_len, sub_val, sub_ok, pow10)
                    if i < 0:
                        return False, 0
                    pos += 1
                    count += 1
                    i = _ws(buf, i, e)
                    if i < e and buf[i] == 44:
                        i = _ws(buf, i + 1, e)
                        continue
                    if i < e and buf[i] == 93:
                        i += 1
                        break
                    return False, 0
            n_items[r] = count
        i = _ws(buf, i, e)
        if i < e and buf[i] == 44:
            i = _ws(buf, i + 1, e)
            continue
        if i < e and buf[i] == 125:
            if _ws(buf, i + 1, e) != e:
                return False, 0
            return True, pos - start
        return False, 0


@njit(cache=True, nogil=True, _nrt=False)
def _scan(buf, starts, ends, kinds, key_bytes, key_len, str_lo, str_hi, num, num_ok, n_items,
          sub_kinds, sub_key_bytes, sub_key_len, sub_val, sub_ok, ok, pow10, slot, text, text_at, text_end):  # pragma: no cover
    pos = 0
    m = 0  # the output row: accepted lines only, in line order
    for r in range(starts.size):
        accepted, used = _line(buf, starts[r], ends[r], m, kinds, key_bytes, key_len, str_lo, str_hi,
                               num, num_ok, n_items, sub_kinds, sub_key_bytes, sub_key_len, sub_val,
                               sub_ok, pos, pow10)
        ok[r] = accepted
        if accepted:
            pos += used  # a rejected line's elements are overwritten by the next line's
            # copy its text values out now, while the line is in cache (a second pass over the
            # buffer costs a cache miss per line and field)
            for f in range(kinds.size):
                k = slot[f]
                if k < 0:
                    continue
                t = text_end[k]
                text_at[m, k] = t
                lo = str_lo[m, f]
                if lo >= 0:
                    for j in range(lo, str_hi[m, f]):
                        text[k, t] = buf[j]
                        t += 1
                    text_end[k] = t
            m += 1  # a rejected line's row is overwritten by the next line's
    return pos


def _validity(ok: np.ndarray) -> pa.Buffer | None:
    return None if ok.all() else pa.py_buffer(np.packbits(ok, bitorder="little"))


def _text(text: np.ndarray, at: np.ndarray, end: int, valid: np.ndarray) -> pa.Array:
    offsets = np.empty(at.size + 1, dtype=np.int64)
    offsets[:-1] = at
    offsets[-1] = end
    return pa.LargeStringArray.from_buffers(at.size, pa.py_buffer(offsets), pa.py_buffer(text[:end]),
                                            _validity(valid), int((~valid).sum()))


def _numbers(values: np.ndarray, ok: np.ndarray, typ: pa.DataType) -> pa.Array:
    physical = np.int64 if pa.types.is_timestamp(typ) else typ.to_pandas_dtype()
    values = np.ascontiguousarray(values.astype(physical, copy=False))
    return pa.Array.from_buffers(typ, values.size, [_validity(ok), pa.py_buffer(values)], int((~ok).sum()))


@dataclass
class Scanned:
    """Lines decoded by the fast path: ``frame`` (one column per schema field, in line order) for
    the lines ``rows``; every other line (``fallback``) needs the full decoder."""

    frame: pl.DataFrame
    rows: np.ndarray
    fallback: np.ndarray


def scan(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, dtype: pl.Struct,
         timestamp: str | None = None) -> Scanned:
    """Decode lines ``buf[starts[i]:ends[i]]`` (UTF-8 bytes) as objects of ``dtype`` where the fast
    path is certain (see the module docstring); the columns equal ``str.json_decode(dtype)``'s.

    ``timestamp`` names a text field holding an ISO 8601 time with an offset. It is parsed here
    instead of copied, into ``<timestamp>_utc`` (UTC [us]) and ``utc_offset_min`` (the offset
    written [min], Int16); the text column stays, all null. A line is accepted only when the
    value is null, absent or exactly ``YYYY-MM-DDTHH:MM:SS`` with ``Z`` or ``+HH:MM``/``-HH:MM``
    and a real date and time (:func:`_iso`); other shapes go to the full decoder.
    """
    shape = Shape.of(dtype, timestamp)
    n, nf, ns = starts.size, len(shape.names), len(shape.sub_names)
    str_lo = np.empty((n, nf), dtype=np.int64)
    str_hi = np.empty((n, nf), dtype=np.int64)
    num = np.zeros((n, nf), dtype=np.float64)
    num_ok = np.empty((n, nf), dtype=np.bool_)
    n_items = np.empty(n, dtype=np.int64)
    cap = n * ELEMENTS_PER_LINE if ns else 0
    sub_val = np.zeros((cap, max(ns, 1)), dtype=np.float64)
    sub_ok = np.zeros((cap, max(ns, 1)), dtype=np.bool_)
    ok = np.empty(n, dtype=np.bool_)
    slot = np.cumsum(shape.kinds == STR) - 1
    slot[shape.kinds != STR] = -1
    n_text = int((shape.kinds == STR).sum())
    # the text values of accepted lines, back to back per field: never more than the buffer holds,
    # and pages never written are never allocated
    text = np.empty((n_text, max(int(buf.size), 1)), dtype=np.uint8)
    text_at = np.empty((n, max(n_text, 1)), dtype=np.int64)
    text_end = np.zeros(max(n_text, 1), dtype=np.int64)
    used = _scan(buf, np.ascontiguousarray(starts, dtype=np.int64), np.ascontiguousarray(ends, dtype=np.int64),
                 shape.kinds, shape.key_bytes, shape.key_len, str_lo, str_hi, num, num_ok, n_items,
                 shape.sub_kinds, shape.sub_key_bytes, shape.sub_key_len, sub_val, sub_ok, ok, _POW10,
                 slot.astype(np.int64), text, text_at, text_end)
    rows = np.flatnonzero(ok)
    # the kernel writes the accepted lines' values to rows 0, 1, ... in line order, so they are
    # the first rows.size rows, whether or not lines fell back (gathering the accepted rows of
    # each field instead cost 58 ms per 864 k lines, the slices 24 ms)
    sel = slice(0, rows.size)
    columns = {}
    for f, (name, kind) in enumerate(zip(shape.names, shape.kinds)):  # loop over schema fields
        if kind == STR:
            k = slot[f]
            columns[name] = _text(text[k], text_at[sel, k], int(text_end[k]), str_lo[sel, f] >= 0)
        elif kind == F64:
            columns[name] = _numbers(num[sel, f], num_ok[sel, f], pa.float64())
        elif kind == TS:
            given = str_lo[sel, f] != -1  # whole seconds: -1 us is never an instant here
            columns[name] = pa.nulls(rows.size, pa.large_string())
            columns[f"{name}_utc"] = _numbers(str_lo[sel, f], given, pa.timestamp("us", tz="UTC"))
            columns["utc_offset_min"] = _numbers(str_hi[sel, f], given, pa.int16())
        else:
            counts = n_items[sel]
            offsets = np.zeros(rows.size + 1, dtype=np.int64)
            np.cumsum(np.maximum(counts, 0), out=offsets[1:])
            assert offsets[-1] == used, "jsonfast: list elements out of step"  # internal invariant
            fields = [pa.field(s, pa.int8() if k == I8 else pa.float64())
                      for s, k in zip(shape.sub_names, shape.sub_kinds)]
            children = [_numbers(sub_val[:used, j], sub_ok[:used, j], fields[j].type) for j in range(ns)]
            struct = pa.StructArray.from_arrays(children, fields=fields)
            lists = counts >= 0
            columns[name] = pa.LargeListArray.from_arrays(
                pa.array(offsets), struct, mask=None if lists.all() else pa.array(~lists))
    schema = dict(dtype.to_schema())
    if timestamp is not None:
        schema |= {f"{timestamp}_utc": pl.Datetime("us", "UTC"), "utc_offset_min": pl.Int16}
    frame = pl.from_arrow(pa.table(columns)) if rows.size else pl.DataFrame(schema=schema)
    frame = frame.cast(schema)
    return Scanned(frame, rows, np.flatnonzero(~ok))
