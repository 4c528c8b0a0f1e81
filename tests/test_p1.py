"""wattlake.parsing.p1 against the real dsmr-parser (the reference)."""

from __future__ import annotations

import logging
import math
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from dsmr_parser.parsers import TelegramParser
from dsmr_parser.value_types import timestamp as ref_timestamp

from wattlake.crc import crc16_arc, crc16_arc_bytes, crc16_arc_text
from wattlake.parsing.p1 import (
    READINGS_SCHEMA,
    REJECTS_SCHEMA,
    build_telegrams,
    dsmr_timestamps_to_utc,
    meter_id_from_serial,
    parse_p1,
    reference_parse,
)

logging.getLogger("dsmr_parser").setLevel(logging.CRITICAL)  # it logs every ignored line

UTC = timezone.utc
SEED = 20251026


# ----------------------------------------------------------------------------- helpers


def recrc(body: str) -> str:
    """Complete a telegram body ending in '!' with dsmr-parser's own CRC."""
    assert body.endswith("!")
    return body + f"{TelegramParser.crc16(body):04X}\r\n"


def strip_crc(tel: str) -> str:
    return tel[: tel.rindex("!") + 1]


def edit(tel: str, fn) -> str:
    """Apply fn to the list of lines of a telegram body and recompute the CRC."""
    lines = strip_crc(tel)[:-1].split("\r\n")
    return recrc("\r\n".join(fn(lines)) + "!")


def frame(rows: list[dict]) -> pl.DataFrame:
    df = pl.DataFrame(
        rows,
        schema={
            "meter_id": pl.String,
            "gas_meter_id": pl.String,
            "ts_utc": pl.Datetime("us", "UTC"),
            "imported_t1_kwh": pl.Float64,
            "imported_t2_kwh": pl.Float64,
            "exported_t1_kwh": pl.Float64,
            "exported_t2_kwh": pl.Float64,
            "power_imported_kw": pl.Float64,
            "power_exported_kw": pl.Float64,
            "active_tariff": pl.Int8,
            "gas_m3": pl.Float64,
            "gas_ts_utc": pl.Datetime("us", "UTC"),
            "voltage_l1_v": pl.Float64,
        },
    )
    return df


def home_rows(rng: random.Random, home: int, times: list[datetime], gas: bool) -> list[dict]:
    meter = meter_id_from_serial(f"E00{4300000000000 + home:013d}")
    gas_id = meter_id_from_serial(f"G00{3900000000000 + home:013d}") if gas else None
    t1, t2, e1, e2, g = (rng.uniform(0, 99999) for _ in range(5))
    rows = []
    for t in times:
        p_in = round(rng.uniform(0, 15), 3)
        p_out = round(rng.choice([0.0, rng.uniform(0, 9)]), 3)
        t1, t2 = t1 + rng.uniform(0, 2), t2 + rng.uniform(0, 2)
        e1, e2, g = e1 + rng.uniform(0, 1), e2 + rng.uniform(0, 1), g + rng.uniform(0, 0.5)
        rows.append(
            {
                "meter_id": meter,
                "gas_meter_id": gas_id,
                "ts_utc": t,
                "imported_t1_kwh": round(t1 % 1e6, 3),
                "imported_t2_kwh": round(t2 % 1e6, 3),
                "exported_t1_kwh": round(e1 % 1e6, 3),
                "exported_t2_kwh": round(e2 % 1e6, 3),
                "power_imported_kw": p_in,
                "power_exported_kw": p_out,
                "active_tariff": rng.choice([1, 2]),
                "gas_m3": round(g % 1e5, 3) if gas else None,
                "gas_ts_utc": t.replace(minute=0, second=0) if gas else None,
                "voltage_l1_v": round(rng.uniform(215, 245), 1),
            }
        )
    return rows


def every(start: datetime, minutes: int, n: int) -> list[datetime]:
    return [start + timedelta(minutes=minutes * i) for i in range(n)]


# ----------------------------------------------------------------------------- corpus


@pytest.fixture(scope="module")
def corpus():
    """(texts, names, expected_records) with good and malformed telegrams."""
    rng = random.Random(SEED)
    plan = [
        # (home, times, gas)
        (1, every(datetime(2025, 7, 15, 8, 0, 7, tzinfo=UTC), 17, 40), True),  # summer
        (2, every(datetime(2025, 1, 10, 22, 0, 0, tzinfo=UTC), 13, 40), True),  # winter
        # October repeat: 00:00-02:00 UTC = local 02:00-02:59 CEST, then 02:00-02:59 CET
        (3, every(datetime(2025, 10, 25, 23, 0, 0, tzinfo=UTC), 5, 48), True),
        # March gap day: 01:00 UTC = 02:00 CET -> 03:00 CEST
        (4, every(datetime(2025, 3, 29, 23, 0, 0, tzinfo=UTC), 5, 48), True),
        (5, every(datetime(2025, 10, 26, 0, 15, 0, tzinfo=UTC), 60, 30), False),  # no gas
        (6, every(datetime(2024, 2, 28, 20, 0, 0, tzinfo=UTC), 31, 40), False),  # leap day, no gas
        (7, every(datetime(2030, 12, 31, 22, 0, 0, tzinfo=UTC), 7, 40), True),  # new year
        (8, every(datetime(2025, 10, 26, 0, 15, 0, tzinfo=UTC), 60, 2), True),  # 02:15 S and 02:15 W
    ]
    files: dict[str, list[str]] = {}
    for home, times, gas in plan:
        tel = build_telegrams(frame(home_rows(rng, home, times, gas))).to_list()
        files[f"home{home}.txt"] = tel
    good = files["home1.txt"]
    base = good[5]

    def flip_digit(t):
        i = t.index("1-0:1.8.1(") + 12
        d = "7" if t[i] != "7" else "3"
        return t[:i] + d + t[i + 1 :]

    def cut(t, frac=0.5):
        return t[: int(len(t) * frac)]

    bad: list[str] = []
    bad.append(flip_digit(base))  # crc_mismatch
    bad.append(cut(good[6]) + "\r\n")  # truncated mid-line, then a line break
    bad.append(strip_crc(good[7])[:-1])  # checksum line missing entirely
    bad.append(edit(good[8], lambda ls: [x for x in ls if not x.startswith("1-0:1.8.2")]))  # missing_field
    bad.append(edit(good[9], lambda ls: [x for x in ls if not x.startswith("0-0:1.0.0")]))
    bad.append(edit(good[10], lambda ls: [x for x in ls if not x.startswith("0-0:96.1.1")]))
    bad.append(edit(good[11], lambda ls: ls[:5] + ["garbage line: hello (world)"] + ls[5:]))  # accepted
    bad.append(edit(good[12], lambda ls: ls[:5] + ["1-0:1.8.1(abc*kWh)"] + ls[5:]))  # Decimal raises
    bad.append(edit(good[13], lambda ls: ls + ["1-0:1.8.1(000042.000*kWh)"]))  # duplicate: last wins
    bad.append(edit(good[14], lambda ls: [x.replace("1-0:1.8.2(", "1-0:1.8.2(1)(") for x in ls]))  # 2 groups: ignored
    bad.append(edit(good[15], lambda ls: [x.replace("(2507", "(2513") if x.startswith("0-0:1.0.0") else x for x in ls]))
    bad.append(edit(good[16], lambda ls: [("0-0:96.1.1()" if x.startswith("0-0:96.1.1") else x) for x in ls]))
    bad.append(edit(good[17], lambda ls: [x.replace("*V)", "*V*x)") for x in ls]))  # two '*': raises
    pg_log = "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(101208151004W)(0000000301*s)"
    bad.append(edit(good[18], lambda ls: [pg_log if x.startswith("1-0:99.97.0") else x for x in ls]))
    bad.append(edit(good[19], lambda ls: [pg_log.replace("0000000301*s", "abc*s") if x.startswith("1-0:99.97.0") else x for x in ls]))
    bad.append(edit(good[20], lambda ls: [pg_log.replace("(2)", "(3)") if x.startswith("1-0:99.97.0") else x for x in ls]))
    lower = strip_crc(good[21])
    bad.append(lower + f"{TelegramParser.crc16(lower):04x}\r\n")  # lower-case hex
    bad.append(strip_crc(good[22]) + "12GZ\r\n")  # int(x, 16) raises
    bad.append(strip_crc(good[23]).replace("\r\n", "\n") + "0000\r\n")  # LF only
    bad.append(recrc(strip_crc(good[24]).replace("\r\n", "\n")))  # LF only, valid CRC
    # a code directly followed by CRLF: the match runs on into the next line
    bad.append(edit(good[25], lambda ls: [x.replace("1-0:2.8.2(", "1-0:2.8.2\r\n(") for x in ls]))
    bad.append(edit(good[26], lambda ls: [x.replace("1-0:32.7.0(", "1-0:32.7.0(-INF") if "32.7.0" in x else x for x in ls]))
    bad.append(edit(good[27], lambda ls: [x.replace("1-0:31.7.0(", "1-0:31.7.0(1e3") if "31.7.0" in x else x for x in ls]))
    bad.append(edit(good[28], lambda ls: [x.replace("1-0:31.7.0(", "1-0:31.7.0(.5x") if "31.7.0" in x else x for x in ls]))
    bad.append(edit(good[29], lambda ls: [x.replace("0-0:96.7.21(", "0-0:96.7.21(1.5") if "96.7.21" in x else x for x in ls]))
    bad.append(edit(good[30], lambda ls: [x + " " if x.startswith("1-0:1.8.1") else x for x in ls]))
    bad.append(edit(good[31], lambda ls: [x.replace("1-0:1.8.1(", "1-0:1.8.10(") for x in ls]))  # prefix match
    bad.append(edit(good[32], lambda ls: [x.replace("0-1:24.2.1(", "0-1:24.2.1(251399") for x in ls]))  # bad gas ts
    bad.append(edit(good[33], lambda ls: ["/Énergie 5 ☃"] + ls[1:]))  # non-ASCII header
    bad.append(edit(good[34], lambda ls: [x.replace("(50)", "()") if x.startswith("1-3:0.2.8") else x for x in ls]))
    bad.append(edit(good[35], lambda ls: [x.replace("W)", "X)").replace("S)", "X)") if x.startswith("0-0:1.0.0") else x for x in ls]))
    bad.append(edit(good[36], lambda ls: [x.replace("*kWh)", "*kWh*)") if x.startswith("1-0:2.8.1") else x for x in ls]))
    bad.append(edit(good[37], lambda ls: [x.replace("(0001)", "(00x1)").replace("(0002)", "(00x2)") for x in ls]))

    texts: dict[str, str] = {}
    expected: dict[str, int] = {}
    for name, tel in files.items():
        texts[name] = "".join(tel)
        expected[name] = len(tel)
    texts["malformed.txt"] = "".join(bad)
    expected["malformed.txt"] = len(bad)
    # junk before the first telegram, junk between telegrams, blank lines between
    texts["junk.txt"] = "modem init OK\r\nATZ\r\n" + good[0] + "\r\n\r\n" + good[1] + "noise!!\r\n" + good[2]
    expected["junk.txt"] = 5
    # truncated mid-line and directly followed by the next telegram: they merge
    texts["merged.txt"] = good[3] + cut(good[4], 0.3) + base + good[2]
    expected["merged.txt"] = 3
    texts["empty.txt"] = ""
    expected["empty.txt"] = 0
    texts["blank.txt"] = "\r\n\r\n"
    expected["blank.txt"] = 0
    names = list(texts)
    return [texts[n] for n in names], names, expected


@pytest.fixture(scope="module")
def parsed(corpus):
    texts, names, _ = corpus
    return parse_p1(texts, names)


# ----------------------------------------------------------------------------- tests


def test_crc16_arc():
    assert crc16_arc_bytes(b"123456789") == 0xBB3D
    assert crc16_arc_bytes(b"") == 0
    rng = np.random.default_rng(1)
    buf = rng.integers(32, 127, 20_000).astype(np.uint8)
    starts = rng.integers(0, 10_000, 300)
    ends = starts + rng.integers(0, 500, 300)
    ours = crc16_arc(buf, starts, ends)
    ref = [TelegramParser.crc16(bytes(buf[s:e]).decode("ascii")) for s, e in zip(starts, ends)]
    assert ours.dtype == np.uint16 and ours.tolist() == ref
    text = "/Énergie ☃ 𝄞 x!"
    b = np.frombuffer(text.encode(), dtype=np.uint8)
    assert int(crc16_arc_text(b, np.array([0]), np.array([b.size]))[0]) == TelegramParser.crc16(text)


def test_builder_is_accepted_by_reference(corpus):
    texts, names, _ = corpus
    tels = texts[0].split("!")
    assert texts[0].startswith("/Ene5\\XS210 ESMR 5.0\r\n\r\n1-3:0.2.8(50)\r\n")
    for t in texts[:8]:
        for tel in t.split("/")[1:4]:
            assert reference_parse("/" + tel) is not None
    assert len(tels) > 10


def test_schema(parsed):
    readings, rejects = parsed
    assert readings.schema == pl.Schema(READINGS_SCHEMA)
    assert rejects.schema == pl.Schema(REJECTS_SCHEMA)


def test_every_record_accounted_for(corpus, parsed):
    texts, names, expected = corpus
    readings, rejects = parsed
    total = sum(expected.values())
    assert total >= 300
    assert len(readings) + len(rejects) == total
    both = pl.concat([readings.select("source_file", "telegram_no"), rejects.select("source_file", "telegram_no")])
    counts = dict(both.group_by("source_file").len().iter_rows())
    assert {k: v for k, v in expected.items() if v} == counts
    # telegram_no is 1..n within each file, each exactly once
    for f, n in counts.items():
        assert sorted(both.filter(pl.col("source_file") == f)["telegram_no"].to_list()) == list(range(1, n + 1))


def test_raw_text_and_line_numbers(corpus, parsed):
    texts, names, _ = corpus
    readings, rejects = parsed
    by_name = dict(zip(names, texts))
    rows = pl.concat(
        [
            readings.select("source_file", "telegram_no", "line_no", pl.col("raw_telegram").alias("raw")),
            rejects.select("source_file", "telegram_no", "line_no", pl.col("raw_text").alias("raw")),
        ]
    ).sort("source_file", "telegram_no")
    # records tile each file (apart from blank text between telegrams)
    for name, grp in rows.group_by("source_file"):
        text = by_name[name[0]]
        pos = 0
        for _, _, line_no, raw in grp.sort("telegram_no").iter_rows():
            start = text.index(raw, pos)
            assert text[pos:start].strip() == ""
            assert text.count("\n", 0, start) + 1 == line_no
            pos = start + len(raw)
        assert text[pos:].strip() == ""


def _cmp(ours, ref) -> bool:
    if ref is None:
        return ours is None
    if isinstance(ref, Decimal):
        if ref.is_nan():
            return ours is not None and math.isnan(ours)
        return ours == float(ref)
    if isinstance(ref, datetime):
        return ours == ref
    return ours == ref


def test_matches_reference(parsed):
    readings, rejects = parsed
    # every accepted record: reference accepts with identical values
    for row in readings.iter_rows(named=True):
        ref = reference_parse(row["raw_telegram"])
        assert ref is not None, row["raw_telegram"]
        for col, val in ref.items():
            ours = row[col]
            if col == "active_tariff":
                assert ours == (int(val) if val is not None and val.lstrip("-").isdigit() else None)
            else:
                assert _cmp(ours, val), (col, ours, val, row["raw_telegram"])
    # every rejected record: reference rejects too
    for raw, reason in rejects.select("raw_text", "reason").iter_rows():
        assert reference_parse(raw) is None, (reason, raw)


def test_reject_reasons(parsed):
    readings, rejects = parsed
    reasons = dict(
        rejects.filter(pl.col("source_file") == "malformed.txt").select("telegram_no", "reason").iter_rows()
    )
    assert reasons[1] == "crc_mismatch"
    assert reasons[2] == "incomplete_telegram"
    assert reasons[3] == "incomplete_telegram"
    assert reasons[4] == "missing_field:ELECTRICITY_USED_TARIFF_2"
    assert reasons[5] == "missing_field:P1_MESSAGE_TIMESTAMP"
    assert reasons[6] == "missing_field:EQUIPMENT_IDENTIFIER"
    assert 7 not in reasons  # garbage line is ignored by dsmr-parser
    assert reasons[8] == "invalid_value:ELECTRICITY_USED_TARIFF_1"
    assert 9 not in reasons
    assert reasons[10] == "missing_field:ELECTRICITY_USED_TARIFF_2"
    assert reasons[11] == "invalid_value:P1_MESSAGE_TIMESTAMP"
    assert reasons[12] == "invalid_value:EQUIPMENT_IDENTIFIER"
    assert reasons[13] == "invalid_value:INSTANTANEOUS_VOLTAGE_L1"
    assert 14 not in reasons  # power failure log with entries
    assert reasons[15] == "invalid_value:POWER_EVENT_FAILURE_LOG"
    assert 16 not in reasons  # malformed log (count mismatch) is ignored
    assert reasons[17] == "crc_mismatch"  # lower-case hex is not recognised
    assert reasons[18] == "crc_mismatch"
    assert reasons[19] == "crc_mismatch"
    assert reasons[20].startswith("missing_field:")  # LF only: no field matches
    assert reasons[22] == "invalid_value:INSTANTANEOUS_VOLTAGE_L1"  # Decimal('-INF230.0') raises
    assert reasons[24] == "invalid_value:INSTANTANEOUS_CURRENT_L1"
    assert reasons[25] == "invalid_value:SHORT_POWER_FAILURE_COUNT"  # int('1.500000') raises
    assert reasons[31] == "invalid_value:P1_MESSAGE_TIMESTAMP"  # flag X -> timestamp() is None
    assert reasons[32] == "invalid_value:ELECTRICITY_DELIVERED_TARIFF_1"  # two '*'
    junk = rejects.filter(pl.col("source_file") == "junk.txt")
    assert junk["reason"].to_list() == ["unparseable_text", "unparseable_text"]
    assert junk["telegram_no"].to_list() == [1, 4]
    assert junk["line_no"].to_list() == [1, junk["line_no"][1]]
    assert len(readings.filter(pl.col("source_file") == "junk.txt")) == 3
    merged = rejects.filter(pl.col("source_file") == "merged.txt")
    assert merged["reason"].to_list() == ["crc_mismatch"]


def test_special_values(parsed):
    readings, _ = parsed
    m = {r["telegram_no"]: r for r in readings.filter(pl.col("source_file") == "malformed.txt").iter_rows(named=True)}
    assert set(m) == {7, 9, 14, 16, 21, 23, 26, 27, 28, 29, 30, 33}
    assert m[9]["imported_t1_kwh"] == 42.0  # last occurrence wins, like Telegram.add
    assert m[21]["exported_t2_kwh"] is not None  # '2.8.2\r\n(...)' matches across the line break
    assert m[23]["current_l1_a"] == math.inf  # Decimal('1e3001') -> float inf
    assert "1-0:1.8.10(" in m[27]["raw_telegram"] and m[27]["imported_t1_kwh"] is not None  # prefix match
    assert m[28]["gas_ts_utc"] is None and m[28]["gas_m3"] is not None  # bad M-Bus timestamp -> None
    assert m[29]["raw_telegram"].startswith("/Énergie 5 ☃")  # per-character CRC like dsmr-parser
    assert m[30]["dsmr_version"] is None  # '()' -> None
    assert m[33]["active_tariff"] is None  # str in dsmr-parser, not an integer


def test_dst_october_repeat(parsed):
    readings, _ = parsed
    h8 = readings.filter(pl.col("source_file") == "home8.txt").sort("telegram_no")
    raws = h8["raw_telegram"].to_list()
    assert "0-0:1.0.0(251026021500S)" in raws[0]
    assert "0-0:1.0.0(251026021500W)" in raws[1]
    assert h8["ts_utc"].to_list() == [
        datetime(2025, 10, 26, 0, 15, tzinfo=UTC),
        datetime(2025, 10, 26, 1, 15, tzinfo=UTC),
    ]
    h3 = readings.filter(pl.col("source_file") == "home3.txt").sort("telegram_no")
    assert h3["ts_utc"].is_sorted() and h3["ts_utc"].n_unique() == len(h3)


def test_timestamps_match_reference():
    rng = random.Random(7)
    values = [
        "251026021500S", "251026021500W", "251026021500", "250330021500S", "250330021500W",
        "250330015959W", "250330030000S", "251026030000W", "251026015959S", "240229120000W",
        "250229120000W", "251301000000W", "250100000000W", "250101240000W", "250101126000W",
        "250101120060W", "250101120000X", "25010112000W", "2501011200000W", "690101000000W",
        "680101000000W", "991231235959W", "000101000000W", "770403020000W", "771002020000S",
        "780402023000S", "801005023000S", "851229120000", "",
    ]
    for _ in range(400):
        dt = datetime(1969, 1, 2) + timedelta(seconds=rng.randrange(0, 100 * 365 * 86400))
        values.append(dt.strftime("%y%m%d%H%M%S") + rng.choice("SW"))
    ours = dsmr_timestamps_to_utc(pl.Series(values + [None], dtype=pl.String)).to_list()
    ref = [ref_timestamp(v) for v in values] + [None]
    assert ours == ref


def test_empty_inputs():
    r, j = parse_p1([], [])
    assert r.schema == pl.Schema(READINGS_SCHEMA) and len(r) == 0 and len(j) == 0
    r, j = parse_p1(["", "junk only"], ["a", "b"])
    assert len(r) == 0 and j["reason"].to_list() == ["unparseable_text"]
    # a last telegram with no '!' after it anywhere in the batch (this used to crash the batch)
    r, j = parse_p1(["/XS210 header only\r\n\r\n1-0:1.8.1(000001.000*kWh)\r\n"], ["a"])
    assert len(r) == 0 and j["reason"].to_list() == ["incomplete_telegram"]


def test_chunked_threads_same_result(corpus, parsed):
    import wattlake.parsing.p1 as p1

    texts, names, _ = corpus
    old = p1.CHUNK_BYTES
    try:
        p1.CHUNK_BYTES = 64 * 1024
        r, j = parse_p1(texts * 3, [f"{k}-{n}" for k in range(3) for n in names], threads=2)
    finally:
        p1.CHUNK_BYTES = old
    readings, rejects = parsed
    assert len(r) == 3 * len(readings) and len(j) == 3 * len(rejects)
    assert r.head(len(readings)).drop("source_file").equals(readings.drop("source_file"))


def test_parse_from_the_bytes_as_read_equals_parse_from_text(corpus, tmp_path, monkeypatch):
    """Landing parses the files' bytes (one buffer, zero-copy chunks); that equals parsing their
    decoded text, invalid UTF-8 included (U+FFFD, as decoding with errors="replace" gives)."""
    import wattlake.parsing.p1 as p1
    from wattlake.parsing.lines import read_buffer

    texts, names, _ = corpus
    blobs = [t.encode("utf-8") for t in texts]
    blobs[1] = blobs[1][:200] + b"\xff\xc3" + blobs[1][200:]  # invalid bytes inside a telegram
    blobs.append("/caf\u00e9 not a meter\r\n".encode())  # non-ASCII, valid
    files = []
    for i, b in enumerate(blobs):
        f = tmp_path / f"{i}.p1"
        f.write_bytes(b)
        files.append((f"day/{i}.p1", f))
    want_r, want_j = parse_p1([b.decode("utf-8", errors="replace") for b in blobs], [n for n, _ in files])
    buf, starts = read_buffer(files)
    monkeypatch.setattr(p1, "CHUNK_BYTES", 16 * 1024)  # several chunks on two threads
    got_r, got_j = p1.parse_p1_buffer(buf, starts, [n for n, _ in files], threads=2)
    assert got_r.equals(want_r) and got_j.equals(want_j)
    assert got_j.filter(pl.col("source_file") == "day/1.p1").height >= 1  # the damaged telegram
    with pytest.raises(ValueError, match="file_starts"):
        p1.parse_p1_buffer(buf, starts[:-1], [n for n, _ in files])


def test_normal_line_scan_equals_the_regex():
    """The compiled line scan agrees with ``_NORMAL_RE`` (match, first '(' and ')') on edge cases
    and on lines mutated at random from real telegram lines."""
    import random

    import numpy as np
    import polars as pl

    from wattlake.parsing.p1 import _NORMAL_RE, scan_normal_lines

    lines = ["1-0:1.8.1(001234.567*kWh)\r\n", "0-0:96.1.1(4B384547303034303436333935353037)\r\n",
             "0-1:24.2.1(250105120000W)(00012.345*m3)\r\n", "1-0:99.97.0()\r\n", "1-0:99.97.0(0)(0-0:96.7.19)\r\n",
             "(1)\r\n", "1-0:1.8.1(1)", "1-0:1.8.1(1)\n", "1-0:1.8.1(1)(2)(3)\r\n", "1-0:1.8.1(1)\r\n\r\n",
             "1-0:1.8.1(1) \r\n", "1-0:1.8.1(1\r\n", "1-0:1.8.1((1)\r\n", "1-0:1.8.1(é)\r\n", "1-0:1.8.1(1)(\r\n",
             "1-0:1.8.1(1)(2\r\n", "a-0:1.8.1(1)\r\n", "\r\n", "", "1-0:1.8.1()()\r\n", "1-0:1.8.1(1)x\r\n"]
    rng = random.Random(7)
    alphabet = "0123456789.:-()*\r\nabcXYZ é"
    for _ in range(3000):
        chars = list(rng.choice(lines[:5]))
        for _ in range(rng.randint(1, 3)):
            op, k = rng.random(), rng.randrange(len(chars) + 1)
            if op < 0.4:
                chars.insert(k, rng.choice(alphabet))
            elif op < 0.8 and chars:
                del chars[min(k, len(chars) - 1)]
            elif chars:
                chars[min(k, len(chars) - 1)] = rng.choice(alphabet)
        lines.append("".join(chars))
    data = "".join(lines).encode()
    lens = np.array([len(x.encode()) for x in lines], dtype=np.int64)
    le = np.cumsum(lens)
    p = le - lens
    normal, o, c = scan_normal_lines(np.frombuffer(data, dtype=np.uint8), p, le)
    s = pl.Series(lines)
    want = s.str.contains(_NORMAL_RE).to_numpy()
    assert want.sum() > 100 and (~want).sum() > 100  # both kinds well represented
    np.testing.assert_array_equal(normal, want)
    np.testing.assert_array_equal(o[want], s.str.find("(", literal=True).to_numpy()[want])
    np.testing.assert_array_equal(c[want], s.str.find(")", literal=True).to_numpy()[want])


def test_value_check_kernel_equals_the_coercion_regexes():
    """Where the compiled value check decides (status 0 or 1) it agrees with ``_OK_RE``; it leaves
    only unusual decimals (inf, nan, ...) to the regex."""
    import random

    import numpy as np
    import polars as pl

    from wattlake.parsing.p1 import _OK_RE, _VALUE_KIND, T_DEC, T_INT, T_STR, _value_status_kernel

    rng = random.Random(11)
    values = ["", "0", "-", ".", "1.", ".5", "-0.5", "1e5", "1E-5", "1e", "1e-", "001234.567*kWh", "12*", "1**",
              "*", "inf", "NaN", "snan12", "Infinity", "-inf*kW", "1.2.3", "--1", "1-", "abc", "12:30", "0-0:96"]
    alphabet = "0123456789.-*eEkWhinfaNs:"
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(4000)]
    data = "".join(values).encode()
    lens = np.array([len(v) for v in values], dtype=np.int64)
    ends = np.cumsum(lens)
    starts = ends - lens
    buf = np.frombuffer(data, dtype=np.uint8)
    s = pl.Series(values)
    for t in (T_DEC, T_INT, T_STR):
        status = _value_status_kernel(buf, starts, ends, np.full(len(values), _VALUE_KIND[t], dtype=np.int8))
        if t == T_STR:
            ok = (s.str.count_matches("*", literal=True) < 2).to_numpy()
        else:
            ok = (s.eq("") | s.str.contains(_OK_RE[t])).to_numpy()
        decided = status != 2
        np.testing.assert_array_equal(status[decided] == 0, ok[decided])
        assert (status == 1).sum() > 20 and (status == 0).sum() > 100
        if t != T_DEC:
            assert decided.all()
    # what meters send is decided without the regex
    real = ["001234.567*kWh", "00.123*kW", "230.1*V", "0", "-1", "12*", ""]
    data = "".join(real).encode()
    ends = np.cumsum([len(v) for v in real])
    status = _value_status_kernel(np.frombuffer(data, dtype=np.uint8), ends - [len(v) for v in real], ends,
                                  np.full(len(real), _VALUE_KIND[T_DEC], dtype=np.int8))
    assert status.tolist() == [0] * len(real)
