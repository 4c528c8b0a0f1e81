"""The compiled JSON fast path (wattlake.parsing.jsonfast) against Polars' own decoder.

The fast path may leave any line to the full decoder, but a line it accepts must decode to
exactly what ``str.json_decode`` gives (bit for bit for floats). The lines are fuzzed from the
stick message with a fixed seed: whitespace, key order, nulls, absent and unknown keys, numbers of
every length, escapes, wrong types and truncations.
"""

from __future__ import annotations

import json
import random

import numpy as np
import polars as pl
import pytest

from wattlake.parsing.device import LINE_TYPE, parse_device_buffer, parse_device_lines
from wattlake.parsing.inverter import MESSAGE_TYPE, parse_inverter_buffer, parse_inverter_lines
from wattlake.parsing.jsonfast import scan
from wattlake.parsing.lines import LineBuffer, decode_json_buffer, decode_json_lines, read_lines


def _buffer(lines: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = [s.encode() for s in lines]
    ends = np.cumsum([len(d) + 1 for d in data]) - 1
    starts = ends - np.array([len(d) for d in data])
    return np.frombuffer(b"\n".join(data) + b"\n", dtype=np.uint8), starts.astype(np.int64), ends.astype(np.int64)


def _number(rng: random.Random) -> str:
    kind = rng.randrange(12)
    if kind == 0:
        return str(rng.randrange(-10**6, 10**6))
    if kind == 1:
        return rng.choice(["0", "-0", "0.0", "-0.0", "0.1", "-0.000001", "1e3", "2.5E-2", "01", "1.", ".5", "-"])
    digits = rng.randrange(1, 17)  # up to 16: above 15 the fast path must step aside
    mant = str(rng.randrange(10 ** (digits - 1), 10 ** digits))
    point = rng.randrange(0, digits + 1)
    text = mant if point == digits else (mant[:point] or "0") + "." + mant[point:]
    return ("-" if rng.random() < 0.3 else "") + text


def _value(rng: random.Random, kind: str) -> str:
    r = rng.random()
    if r < 0.05:
        return "null"
    if r < 0.06:
        return rng.choice(["true", "false", '"12"', "[]", "{}"])  # wrong types
    if kind == "num":
        return _number(rng)
    if kind == "int8":
        return rng.choice(["1", "2", "-128", "127", "128", "1.0", "-3"])
    if kind == "ts" and rng.random() < 0.7:
        return json.dumps(_timestamp(rng))
    text = rng.choice(["SN1", "", "ok", "Zürich ☀", "x" * 40, "2025-06-01T14:05:00+02:00"] * 4 + ["a\\\"b", "tab\\t"])
    return json.dumps(text, ensure_ascii=rng.random() < 0.5) if "\\" not in text else f'"{text}"'


def _ws(rng: random.Random) -> str:
    return rng.choice(["", "", "", " ", "\t", "  ", "\r"])


def _object(rng: random.Random, fields: list[tuple[str, str]]) -> str:
    items = [(k, kind) for k, kind in fields if rng.random() > 0.1]
    if rng.random() < 0.2:
        rng.shuffle(items)
    if rng.random() < 0.02:
        items.append(("firmware", "str"))  # unknown key
    if rng.random() < 0.02 and items:
        items.append(items[0])  # duplicate key
    if rng.random() < 0.05 and items:  # a key near the expected one: longer, shorter, escaped
        k = rng.randrange(len(items))
        key, kind = items[k]
        items[k] = (rng.choice([key + "x", key[:-1], key[0] + f"\\u{ord(key[1]):04x}" + key[2:], key.upper()]), kind)
    parts = []
    for key, kind in items:
        if kind == "list":
            if rng.random() < 0.1:
                value = rng.choice(["null", "[]", "[null]", '"x"'])
            else:
                elems = [_object(rng, [("mppt", "int8"), ("voltage_v", "num"), ("current_a", "num")])
                         for _ in range(rng.randrange(1, 4))]
                value = "[" + ("," + _ws(rng)).join(elems) + "]"
        else:
            value = _value(rng, kind)
        parts.append(f'{_ws(rng)}"{key}"{_ws(rng)}:{_ws(rng)}{value}{_ws(rng)}')
    return "{" + ",".join(parts) + "}"


INVERTER_FIELDS = [("serial", "str"), ("ts", "ts"), ("remote_ip", "str"), ("ac_power_w", "num"),
                   ("ac_energy_total_kwh", "num"), ("dc", "list"), ("temperature_c", "num"), ("status", "str")]


def _fuzzed(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):  # building test input line by line
        line = _ws(rng) + _object(rng, INVERTER_FIELDS) + _ws(rng)
        r = rng.random()
        if r < 0.03:
            line = line[: rng.randrange(1, max(2, len(line)))]  # truncated
        elif r < 0.05:
            line += rng.choice(["x", ",", "}", " {}"])  # trailing garbage
        out.append(line)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_accepted_lines_decode_exactly_as_polars(seed):
    lines = _fuzzed(3000, seed)
    buf, starts, ends = _buffer(lines)
    sc = scan(buf, starts, ends, MESSAGE_TYPE)
    accepted = [lines[i] for i in sc.rows]
    assert 0.15 * len(lines) < len(accepted) < 0.9 * len(lines)  # both paths are exercised
    want = pl.Series(accepted, dtype=pl.Utf8).str.json_decode(MESSAGE_TYPE).struct.unnest()
    assert sc.frame.schema == want.schema
    assert sc.frame.equals(want)
    for f in ("ac_power_w", "ac_energy_total_kwh", "temperature_c"):  # bit for bit (signed zeros too)
        got, exp = sc.frame[f].to_numpy(), want[f].to_numpy()
        assert np.array_equal(got.view(np.uint64)[~np.isnan(got)], exp.view(np.uint64)[~np.isnan(exp)])


@pytest.mark.parametrize("line", [
    '{"ac_power_w": 1e3}', '{"ac_power_w": 1234567890123456}', '{"ac_power_w": true}',
    '{"serial": "a\\"b"}', '{"serial": 12}', '{"status": "ok", "status": "ok"}', '{"firmware": "1.2"}',
    '{"dc": [null]}', '{"dc": [{"mppt": 1.0}]}', '{"dc": [{"mppt": 300}]}', '{"ac_power_w": 01}',
    '{"ac_power_w": 5} x', '{"ac_power_w": 5', '[1]', 'null', '', '   ', '{"ac_power_w": -}',
])
def test_unusual_lines_are_left_to_the_full_decoder(line):
    buf, starts, ends = _buffer([line])
    sc = scan(buf, starts, ends, MESSAGE_TYPE)
    assert sc.rows.size == 0 and sc.fallback.tolist() == [0]


def test_numbers_round_like_polars():
    rng = np.random.default_rng(7)
    mant = rng.integers(0, 10**15, 20_000)
    point = rng.integers(0, 16, 20_000)
    texts = [f'{{"ac_power_w": {"-" if m % 3 == 0 else ""}{m / 10**p:.{p}f}}}' for m, p in zip(mant, point)]
    buf, starts, ends = _buffer(texts)
    sc = scan(buf, starts, ends, MESSAGE_TYPE)
    assert sc.fallback.size == 0
    want = pl.Series(texts).str.json_decode(MESSAGE_TYPE).struct.field("ac_power_w").to_numpy()
    assert np.array_equal(sc.frame["ac_power_w"].to_numpy().view(np.uint64), want.view(np.uint64))


def _timestamp(rng: random.Random) -> str:
    """ISO 8601 text around the fast path's shape: mostly valid, some impossible or unusual."""
    y = rng.choice([1900, 1969, 1970, 2000, 2024, 2025, 2100, 9999, 0])
    mo = rng.randint(1, 12) if rng.random() < 0.95 else rng.choice([0, 13])
    d = rng.randint(1, 28) if rng.random() < 0.8 else rng.choice([0, 29, 30, 31, 32])
    h = rng.randint(0, 23) if rng.random() < 0.97 else 24
    mi, sec = rng.randint(0, 59), rng.choice([0, 5, 30, 59, 59, 60])
    off = rng.choice(["Z", "Z", "+02:00", "+01:00", "-03:30", "+00:00", "-00:00", "+14:00", "+23:59", "+24:00",
                      "+02:60", "", "+0200", "+02", "z", ".5Z", ".123456+02:00", " +01:00"])
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}{off}"
    r = rng.random()
    if r < 0.03:
        text = text.replace("T", " ")
    elif r < 0.06:
        text = text.lower()
    elif r < 0.08:
        text = " " + text
    return text


def test_timestamps_parsed_in_the_scan_equal_polars():
    """The fast path's own ISO parse: every accepted line gives Polars' instant and offset, and every
    line of the plain shape that Polars reads is accepted."""
    from wattlake.parsing.inverter import with_utc_and_offset

    rng = random.Random(3)
    texts = [_timestamp(rng) for _ in range(20_000)]
    lines = [json.dumps({"ts": t, "ac_power_w": 1.0}) for t in texts]
    buf, starts, ends = _buffer(lines)
    sc = scan(buf, starts, ends, MESSAGE_TYPE, "ts")
    want = with_utc_and_offset(pl.DataFrame({"ts": texts}))
    fast = want[sc.rows]
    assert sc.frame.select("ts_utc", "utc_offset_min").equals(fast.select("ts_utc", "utc_offset_min"))
    assert sc.frame["ts"].null_count() == sc.frame.height and sc.frame["ts_utc"].null_count() == 0
    # the plain shape; second 60 (a leap second, which Polars rolls over) is left to Polars
    plain = pl.Series(texts).str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:[0-5]\d(Z|[+-]\d{2}:\d{2})$")
    readable = want["ts_utc"].is_not_null()
    assert (plain & readable).sum() == sc.rows.size > 5_000  # all of them, and nothing else
    assert (plain & readable).arg_true().to_list() == sc.rows.tolist()
    assert readable.sum() > sc.rows.size  # Polars reads more shapes (fractions, ...): those fall back


def _files(tmp_path, contents: list[bytes]):
    files = []
    for i, data in enumerate(contents):
        path = tmp_path / f"em_{i}.jsonl"
        path.write_bytes(data)
        files.append((f"device/2025-06-01/em_{i}.jsonl", path))
    return files


def test_buffer_decoding_equals_line_decoding(tmp_path):
    fuzz = _fuzzed(2000, 11)
    contents = [("\n".join(fuzz[:700]) + "\n\n  \n").encode(), ("\r\n".join(fuzz[700:1400])).encode(),
                "\n".join(fuzz[1400:]).encode().replace(b"Z\xc3\xbcrich", b"Z\xfcrich")]  # invalid UTF-8
    files = _files(tmp_path, contents)
    lines, enc = read_lines(files)
    want, want_rej = decode_json_lines(lines, MESSAGE_TYPE)
    got = decode_json_buffer(LineBuffer.read(files), MESSAGE_TYPE)
    assert enc.height > 0 and got.frame.get_column("raw").null_count() > 150
    assert got.records == lines.height + enc.height
    cols = [c for c in want.columns if c != "raw"]
    assert got.frame.select(cols).equals(want.select(cols))
    assert got.with_raw(got.frame).get_column("raw").equals(want.get_column("raw"))
    key = ["source_file", "line_no"]
    assert got.rejects.sort(key).equals(pl.concat([enc, want_rej]).sort(key))


def test_inverter_and_device_parsers_give_the_same_result_from_the_buffer(tmp_path):
    systems = pl.DataFrame({"serial": ["SN1"], "system_id": ["sys_a"]})
    fuzz = _fuzzed(1500, 5)
    files = _files(tmp_path, ["\n".join(fuzz).encode()])
    lines, _ = read_lines(files)
    now = __import__("datetime").datetime(2025, 7, 1)
    want = parse_inverter_lines(lines, systems, now)
    got = parse_inverter_buffer(LineBuffer.read(files), systems, now)
    assert got.good.equals(want.good) and got.good.height > 0
    key = ["line_no"]
    assert got.rejects.sort(key).equals(want.rejects.sort(key)) and got.records == want.records

    rng = random.Random(9)
    device = [_ws(rng) + _object(rng, [("device_id", "str"), ("device_type", "str"), ("ts", "ts"),
                                       ("power_w", "num"), ("energy_total_kwh", "num")]) for _ in range(1500)]
    device = [d.replace('"device_type":', '"device_type": "heat_pump", "x":') if i % 2 else d
              for i, d in enumerate(device)]
    files = _files(tmp_path, ["\n".join(device).encode()])
    lines, _ = read_lines(files)
    ems = pl.DataFrame({"em_id": ["em_0"], "system_id": ["sys_a"]})
    want = parse_device_lines(lines, ems, now)
    got = parse_device_buffer(LineBuffer.read(files), ems, now)
    assert got.good.equals(want.good) and got.good.height > 20
    assert got.rejects.sort(key).equals(want.rejects.sort(key)) and got.records == want.records
    assert got.rejects.sort(key).equals(want.rejects.sort(key)) and got.records == want.records
    assert LINE_TYPE.fields  # the device schema goes through the fast path too
