"""Bad-input battery: one defect per case, injected into a real clean landing file, landed for real.

Every case copies a clean one-day landing folder (4 systems), edits ONE defect into the bytes of
a real file, lands the registry and the affected source through ``land_registry`` + ``land`` into
a local Delta lake, and checks (a) the exact outcome (quarantine reason at the exact file/line,
duplicate, correction, flag or null), (b) conservation against an independent count of the
records in the files, (c) that the table holds exactly ``report.landed`` rows and (d) that
nothing else changed compared with landing the clean copy. The outcome table is at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from wattlake import tables as T
from wattlake.lake import Lake
from wattlake.landing import LandingReport, land
from wattlake.registry import land_registry

DAY = "2025-06-01"
FLEET = dict(n_systems=4, start=dt.date(2025, 6, 1), days=1, seed=3, faults=False, bad_input=False)
INV = f"inverter/{DAY}/messages-000.jsonl"
WEA = f"weather/{DAY}/knmi_hourly.txt"
BRONZE = {"inverter": T.INVERTER_READINGS, "meter": T.METER_READINGS, "device": T.DEVICE_READINGS,
          "weather": T.WEATHER}
#: lineage columns: a defect may shift line numbers of later records, never their content
LINEAGE = {"landed_at_utc", "line_no", "telegram_no"}


# ------------------------------------------------------------------ independent record count
def _blank(line: bytes) -> bool:
    return line.strip(b" \t\r\n\x0b\x0c") == b""


def count_records(root: Path, source: str) -> int:
    """Records in a source's landing files, counted on raw bytes without the project's parsers.

    JSON lines: non-blank lines. KNMI: non-blank lines that are not ``#`` comments. P1: every
    line starting with ``/`` opens a telegram (it runs to its ``!`` line, or to the next ``/``
    when the checksum line is missing); each non-blank run of text outside telegrams is one
    junk record.
    """
    n = 0
    for f in sorted((root / source).glob("*/*")):
        lines = f.read_bytes().split(b"\n")
        if source == "meter":
            in_tel = in_junk = False
            for line in lines:
                if line.startswith(b"/"):
                    n += 1
                    in_tel, in_junk = True, False
                elif in_tel:
                    in_tel = not line.startswith(b"!")
                elif not _blank(line) and not in_junk:
                    n += 1
                    in_junk = True
        elif source == "weather":
            n += sum(1 for line in lines if not _blank(line) and not line.lstrip().startswith(b"#"))
        else:
            n += sum(1 for line in lines if not _blank(line))
    return n


# ------------------------------------------------------------------ file editing helpers
def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def _edit_line(root: Path, rel: str, line_no: int, fn: Callable[[bytes], bytes]) -> None:
    path = root / rel
    lines = _lines(path)
    new = fn(lines[line_no - 1])
    assert new != lines[line_no - 1], f"{rel}:{line_no}: edit changed nothing"
    lines[line_no - 1] = new
    path.write_bytes(b"\n".join(lines))


def _edit_json(root: Path, rel: str, line_no: int, fn: Callable[[dict], None]) -> dict:
    msg = {}

    def edit(line: bytes) -> bytes:
        msg.update(json.loads(line))
        fn(msg)
        return json.dumps(msg, separators=(",", ":")).encode()

    _edit_line(root, rel, line_no, edit)
    return msg


def _append(root: Path, rel: str, record: bytes) -> int:
    """Append one record (text without trailing newline); returns its 1-based first line."""
    path = root / rel
    data = path.read_bytes() if path.exists() else b""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    path.write_bytes(data + record + b"\n")
    return data.count(b"\n") + 1


def _telegrams(path: Path) -> list[tuple[int, int]]:
    """(first, last) 0-based line index of every complete telegram of a P1 file."""
    out, start = [], None
    for i, line in enumerate(_lines(path)):
        if line.startswith(b"/"):
            start = i
        elif line.startswith(b"!") and start is not None:
            out.append((start, i))
            start = None
    return out


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0xA001 reflected, init 0), the DSMR P1 checksum, written out here."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _edit_telegram(root: Path, rel: str, k: int, fn: Callable[[list[bytes]], list[bytes]],
                   recompute_crc: bool) -> int:
    """Edit the lines (without the ``!`` line) of the k-th telegram; returns its 1-based line."""
    path = root / rel
    lines = _lines(path)
    first, last = _telegrams(path)[k]
    body = fn(lines[first:last])
    bang = lines[last]
    if recompute_crc:
        text = b"\n".join(body) + b"\n!"
        bang = b"!%04X\r" % crc16_arc(text)
    lines[first:last + 1] = body + [bang]
    path.write_bytes(b"\n".join(lines))
    return first + 1


def _garbage(seed: int, n_lines: int, exclude: bytes = b"") -> bytes:
    """Random bytes in lines of 20-200 (every other line ASCII only); no ASCII whitespace but
    the separating newlines, so blank-line rules cannot differ between counters."""
    rng = random.Random(seed)
    alphabet = bytes(b for b in [*range(0x00, 0x09), *range(0x0E, 0x1C), *range(0x21, 0x100)] if b not in exclude)
    ascii_ = bytes(b for b in alphabet if b < 0x80)
    return b"\n".join(bytes(rng.choice(ascii_ if i % 2 else alphabet) for _ in range(rng.randint(20, 200)))
                      for i in range(n_lines))


def _systems(root: Path) -> pl.DataFrame:
    return pl.read_csv(root / "registry" / "systems.csv", infer_schema=False)


def _first(root: Path, source: str) -> str:
    return sorted(p.relative_to(root).as_posix() for p in (root / source / DAY).iterdir())[0]


def _ts(msg: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(msg["ts"].replace("Z", "+00:00")).astimezone(dt.timezone.utc)


# ------------------------------------------------------------------ expectations
Check = Callable[[pl.DataFrame, pl.DataFrame, LandingReport], None]


@dataclass
class Expect:
    source: str
    quarantined: tuple[tuple[str, int, str], ...] = ()  # (source_file, line_no, reason)
    removed: int = 0  # records of the clean landing that no longer land
    duplicates: int = 0
    changed: pl.Expr | None = None  # rows (by key) whose content may differ from the clean landing
    check: Check | None = None  # outcome checks on (table, clean table, report)


def _q(source: str, rel: str, line_no: int, reason: str, removed: int = 1) -> Expect:
    return Expect(source, ((rel, line_no, reason),), removed=removed)


# ------------------------------------------------------------------ the cases (one defect each)
def inv_truncated_line(root: Path) -> Expect:
    _edit_line(root, INV, 10, lambda line: line[: len(line) // 2])
    return _q("inverter", INV, 10, "invalid_json")


def inv_missing_required_key(root: Path) -> Expect:
    _edit_json(root, INV, 20, lambda m: m.pop("ac_energy_total_kwh"))
    return _q("inverter", INV, 20, "missing_field:ac_energy_total_kwh")


def inv_timestamp_without_offset(root: Path) -> Expect:
    msg = _edit_json(root, INV, 30, lambda m: m.update(ts=re.sub(r"(Z|[+-]\d\d:\d\d)$", "", m["ts"])))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", msg["ts"])
    return _q("inverter", INV, 30, "invalid_timestamp")


def inv_unknown_serial(root: Path) -> Expect:
    msg = json.loads(_lines(root / INV)[0])
    msg["serial"] = "ZZ-NOT-REGISTERED-1"
    ln = _append(root, INV, json.dumps(msg, separators=(",", ":")).encode())
    return _q("inverter", INV, ln, "unknown_serial", removed=0)


def inv_timestamp_2031(root: Path) -> Expect:
    _edit_json(root, INV, 40, lambda m: m.update(ts="2031-06-01T12:00:00+02:00"))
    return _q("inverter", INV, 40, "future_timestamp")


def inv_negative_power(root: Path) -> Expect:
    _edit_json(root, INV, 50, lambda m: m.update(ac_power_w=-500.0))
    return _q("inverter", INV, 50, "negative_power")


def inv_non_utf8_byte(root: Path) -> Expect:
    _edit_line(root, INV, 60, lambda line: line.replace(b'"status":"', b'"status":"\xff', 1))
    return _q("inverter", INV, 60, "invalid_encoding")


def inv_bool_power(root: Path) -> Expect:
    _edit_json(root, INV, 70, lambda m: m.update(ac_power_w=True))
    return _q("inverter", INV, 70, "invalid_type:ac_power_w")


def inv_garbage_file(root: Path) -> Expect:
    rel = f"inverter/{DAY}/messages-999.jsonl"
    data = _garbage(11, 40)
    (root / rel).write_bytes(data)
    q = []
    for i, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
            q.append((rel, i, "invalid_json"))
        except UnicodeDecodeError:
            q.append((rel, i, "invalid_encoding"))
    assert {r for *_, r in q} == {"invalid_json", "invalid_encoding"}
    return Expect("inverter", tuple(q))


def _serial_lines(root: Path, serial: str) -> list[tuple[int, dict]]:
    return [(i, m) for i, m in ((i, json.loads(line)) for i, line in enumerate(_lines(root / INV), 1) if line.strip())
            if m["serial"] == serial]


def inv_day_in_kw(root: Path) -> Expect:
    """A whole day of one system's ac_power_w sent in kW (the stick firmware bug)."""
    msgs = [json.loads(line) for line in _lines(root / INV) if line.strip()]
    serial = max(msgs, key=lambda m: m["ac_power_w"])["serial"]
    sid = _systems(root).filter(pl.col("serial") == serial)["system_id"].item()
    lines = _lines(root / INV)
    for i, m in _serial_lines(root, serial):
        m["ac_power_w"] = m["ac_power_w"] / 1000.0
        lines[i - 1] = json.dumps(m, separators=(",", ":")).encode()
    (root / INV).write_bytes(b"\n".join(lines))

    def check(table: pl.DataFrame, clean: pl.DataFrame, report: LandingReport) -> None:
        both = table.filter(pl.col("system_id") == sid).join(
            clean.select("system_id", "ts_utc", pl.col("ac_power_w").alias("clean_w")), on=["system_id", "ts_utc"])
        assert both.height == clean.filter(pl.col("system_id") == sid).height
        producing = both.filter(pl.col("clean_w") > 0)
        assert producing.height > 100
        assert producing["unit_corrected"].all()
        assert ((producing["ac_power_w"] - producing["clean_w"]).abs() <= 0.01 * producing["clean_w"]).all()
        assert not both.filter(pl.col("clean_w") <= 0)["unit_corrected"].any()
        assert report.corrected == producing.height == int(table["unit_corrected"].sum())

    return Expect("inverter", changed=pl.col("system_id") == sid, check=check)


def inv_counter_restart(root: Path) -> Expect:
    """The lifetime counter restarts at ~0 mid-day (firmware swap) and counts on from there."""
    serials = _systems(root)["serial"].to_list()
    serial = serials[1]
    sid = _systems(root).filter(pl.col("serial") == serial)["system_id"].item()
    own = sorted(_serial_lines(root, serial), key=lambda x: _ts(x[1]))
    k_line, k_msg = own[len(own) // 2]
    e_k, t_k = k_msg["ac_energy_total_kwh"], _ts(k_msg)
    assert e_k > 1.0
    lines = _lines(root / INV)
    for i, m in own:
        if _ts(m) >= t_k:
            m["ac_energy_total_kwh"] = round(m["ac_energy_total_kwh"] - e_k + 0.004, 3)
            lines[i - 1] = json.dumps(m, separators=(",", ":")).encode()
    (root / INV).write_bytes(b"\n".join(lines))

    def check(table: pl.DataFrame, clean: pl.DataFrame, report: LandingReport) -> None:
        flagged = table.filter(pl.col("counter_reset"))
        assert flagged.select("source_file", "line_no", "system_id").rows() == [(INV, k_line, sid)]
        assert flagged["ac_energy_total_kwh"][0] == pytest.approx(0.004)
        assert report.counter_resets == 1
        assert not table["unit_corrected"].any()

    return Expect("inverter", changed=(pl.col("system_id") == sid) & (pl.col("ts_utc") >= t_k), check=check)


def meter_digit_changed_after_crc(root: Path) -> Expect:
    rel = _first(root, "meter")

    def bump(body: list[bytes]) -> list[bytes]:
        out = []
        for line in body:
            if line.startswith(b"1-0:1.8.1("):
                d = line[line.index(b"*") - 1] - 48
                line = line[: line.index(b"*") - 1] + bytes([48 + (d + 1) % 10]) + line[line.index(b"*"):]
            out.append(line)
        return out

    ln = _edit_telegram(root, rel, 4, bump, recompute_crc=False)
    return _q("meter", rel, ln, "crc_mismatch")


def meter_checksum_line_missing(root: Path) -> Expect:
    rel = _first(root, "meter")
    lines = _lines(root / rel)
    first, last = _telegrams(root / rel)[6]
    del lines[last]
    (root / rel).write_bytes(b"\n".join(lines))
    return _q("meter", rel, first + 1, "incomplete_telegram")


def meter_telegram_repeated(root: Path) -> Expect:
    rel = _first(root, "meter")
    lines = _lines(root / rel)
    first, last = _telegrams(root / rel)[2]
    copy_ln = _append(root, rel, b"\n".join(lines[first:last + 1]))
    return Expect("meter", duplicates=1, check=_kept_first(rel, first + 1, copy_ln))


def _kept_first(rel: str, original_ln: int, copy_ln: int) -> Check:
    def check(table: pl.DataFrame, clean: pl.DataFrame, report: LandingReport) -> None:
        in_file = table.filter(pl.col("source_file") == rel)
        assert in_file.filter(pl.col("line_no") == original_ln).height == 1
        assert in_file.filter(pl.col("line_no") == copy_ln).height == 0

    return check


def meter_junk_before_first_telegram(root: Path) -> Expect:
    rel = _first(root, "meter")
    path = root / rel
    path.write_bytes(b"ATZ\r\nmodem says hello, P1 port open\r\n\r\n" + path.read_bytes())
    return _q("meter", rel, 1, "unparseable_text", removed=0)


def meter_unknown_meter(root: Path) -> Expect:
    from wattlake.parsing.p1 import build_telegrams, meter_id_from_serial

    utc = pl.Datetime("us", "UTC")
    row = pl.DataFrame({
        "meter_id": [meter_id_from_serial("E0099999999999999")], "gas_meter_id": [None],
        "ts_utc": [dt.datetime(2025, 6, 1, 10, 0, tzinfo=dt.timezone.utc)],
        "imported_t1_kwh": [1000.0], "imported_t2_kwh": [2000.0], "exported_t1_kwh": [300.0],
        "exported_t2_kwh": [400.0], "power_imported_kw": [0.5], "power_exported_kw": [0.0],
        "active_tariff": [2], "gas_m3": [None], "gas_ts_utc": [None],
    }, schema_overrides={"gas_meter_id": pl.String, "ts_utc": utc, "gas_m3": pl.Float64, "gas_ts_utc": utc,
                         "active_tariff": pl.Int8})
    telegram = build_telegrams(row)[0].encode()
    rel = _first(root, "meter")
    ln = _append(root, rel, telegram.rstrip(b"\n"))
    return _q("meter", rel, ln, "unknown_meter", removed=0)


def meter_required_object_missing(root: Path) -> Expect:
    rel = _first(root, "meter")
    ln = _edit_telegram(root, rel, 8, lambda body: [x for x in body if not x.startswith(b"1-0:2.8.2(")],
                        recompute_crc=True)
    return _q("meter", rel, ln, "missing_field:ELECTRICITY_DELIVERED_TARIFF_2")


def meter_non_utf8_byte(root: Path) -> Expect:
    rel = _first(root, "meter")
    ln = _edit_telegram(root, rel, 10, lambda body: [x.replace(b"*kWh)", b"\xff*kWh)", 1)
                                                     if x.startswith(b"1-0:1.8.1(") else x for x in body],
                        recompute_crc=False)
    return _q("meter", rel, ln, "invalid_encoding")


def meter_non_utf8_byte_valid_crc(root: Path) -> Expect:
    """A meter that sends byte 0xFD in its text message, CRC computed over the bytes it sent."""
    rel = _first(root, "meter")
    ln = _edit_telegram(root, rel, 12, lambda body: [x.replace(b"0-0:96.13.0()", b"0-0:96.13.0(\xfd)")
                                                     for x in body], recompute_crc=True)
    return _q("meter", rel, ln, "invalid_encoding")


def meter_garbage_file(root: Path) -> Expect:
    rel = f"meter/{DAY}/em_garbage.p1"
    (root / rel).write_bytes(_garbage(12, 30, exclude=b"/!"))
    # not a telegram and not even UTF-8: the encoding is the first thing wrong with it
    return _q("meter", rel, 1, "invalid_encoding", removed=0)


def device_line_duplicated(root: Path) -> Expect:
    rel = _first(root, "device")
    ln = _append(root, rel, _lines(root / rel)[4])
    return Expect("device", duplicates=1, check=_kept_first(rel, 5, ln))


def device_unknown_type(root: Path) -> Expect:
    rel = _first(root, "device")
    _edit_json(root, rel, 8, lambda m: m.update(device_type="dishwasher"))
    return _q("device", rel, 8, "unknown_device_type")


def _knmi_line(root: Path, station: int, hh: int) -> int:
    for i, line in enumerate(_lines(root / WEA), start=1):
        f = line.split(b",")
        if not line.startswith(b"#") and len(f) > 3 and int(f[0]) == station and int(f[2]) == hh:
            return i
    raise AssertionError("no such KNMI row")


def weather_row_with_20_fields(root: Path) -> Expect:
    ln = _knmi_line(root, 240, 10)
    _edit_line(root, WEA, ln, lambda line: b",".join(line.split(b",")[:20]))
    return _q("weather", WEA, ln, "invalid_weather_row")


def weather_row_with_26_fields(root: Path) -> Expect:
    ln = _knmi_line(root, 240, 11)
    _edit_line(root, WEA, ln, lambda line: line + b",    7")
    return _q("weather", WEA, ln, "invalid_weather_row")


def weather_station_gap(root: Path) -> Expect:
    ln = _knmi_line(root, 235, 12)
    q_idx = 11  # KNMI column Q

    def blank_q(line: bytes) -> bytes:
        f = line.split(b",")
        assert int(f[q_idx]) > 0
        f[q_idx] = b" " * len(f[q_idx])
        return b",".join(f)

    _edit_line(root, WEA, ln, blank_q)
    hour = dt.datetime(2025, 6, 1, 11, tzinfo=dt.timezone.utc)  # HH 12 = the hour 11:00-12:00 UT

    def check(table: pl.DataFrame, clean: pl.DataFrame, report: LandingReport) -> None:
        row = table.filter((pl.col("source_file") == WEA) & (pl.col("line_no") == ln))
        assert row.select("station_id", "ts_utc").rows() == [(235, hour)]
        assert row["ghi_w_m2"][0] is None
        before = clean.filter((pl.col("station_id") == 235) & (pl.col("ts_utc") == hour))
        assert before["ghi_w_m2"][0] > 0
        assert row["temp_air_c"][0] == before["temp_air_c"][0]

    return Expect("weather", changed=(pl.col("station_id") == 235) & (pl.col("ts_utc") == hour), check=check)


CASES = [
    inv_truncated_line, inv_missing_required_key, inv_timestamp_without_offset, inv_unknown_serial,
    inv_timestamp_2031, inv_negative_power, inv_non_utf8_byte,
    inv_bool_power,
    inv_garbage_file, inv_day_in_kw, inv_counter_restart,
    meter_digit_changed_after_crc, meter_checksum_line_missing, meter_telegram_repeated,
    meter_junk_before_first_telegram, meter_unknown_meter, meter_required_object_missing,
    meter_non_utf8_byte,
    meter_non_utf8_byte_valid_crc,
    meter_garbage_file,
    device_line_duplicated, device_unknown_type,
    weather_row_with_20_fields,
    weather_row_with_26_fields,
    weather_station_gap,
]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def clean_landing(tmp_path_factory) -> Path:
    from wattlake.generator import generate_fleet

    root = tmp_path_factory.mktemp("clean_landing")
    generate_fleet(root, **FLEET)
    return root


@pytest.fixture(scope="module")
def clean_landed(clean_landing, tmp_path_factory) -> dict[str, tuple[LandingReport, pl.DataFrame]]:
    """Every source of the clean copy landed once: (report, table) per source."""
    lake = Lake(str(tmp_path_factory.mktemp("clean_lake") / "lakehouse"))
    land_registry(lake, clean_landing)
    out = {}
    for source, spec in BRONZE.items():
        report = land(lake, clean_landing, source, DAY)
        assert report.quarantined == report.duplicates == 0, report
        assert report.records == report.landed == count_records(clean_landing, source) > 0
        out[source] = (report, lake.read(spec.name))
    assert not lake.exists(T.QUARANTINE.name) or lake.read(T.QUARANTINE.name).height == 0
    return out


# ------------------------------------------------------------------ the test
def _quarantine(lake: Lake) -> pl.DataFrame:
    if not lake.exists(T.QUARANTINE.name):
        return pl.DataFrame(schema={"source": pl.String, "source_file": pl.String, "line_no": pl.Int32,
                                    "reason": pl.String, "raw_text": pl.String})
    return lake.read(T.QUARANTINE.name)


@pytest.mark.parametrize("inject", CASES, ids=lambda f: f.__name__)
def test_bad_input_class(inject, clean_landing, clean_landed, tmp_path):
    root = tmp_path / "landing"
    shutil.copytree(clean_landing, root)
    exp = inject(root)
    lake = Lake(str(tmp_path / "lakehouse"))
    land_registry(lake, root)
    report = land(lake, root, exp.source, DAY)
    spec = BRONZE[exp.source]
    clean_report, clean = clean_landed[exp.source]

    # (b) conservation, against an independent count of the (defective) files
    assert report.records == count_records(root, exp.source)
    assert report.records == report.landed + report.duplicates + report.quarantined

    # (a) the exact outcome: quarantine rows (file, line, reason), duplicates, flags
    q = _quarantine(lake)
    assert sorted(q.select("source_file", "line_no", "reason").rows()) == sorted(exp.quarantined)
    assert (q["source"] == exp.source).all()
    assert q.filter(pl.col("raw_text").is_null() | (pl.col("raw_text") == "")).height == 0
    assert report.quarantined == len(exp.quarantined)
    assert report.reasons == dict(Counter(r for *_, r in exp.quarantined))
    assert report.duplicates == exp.duplicates

    # (c) the table holds exactly what the report says landed
    table = lake.read(spec.name)
    assert table.height == report.landed
    assert table.select(spec.keys).is_duplicated().sum() == 0

    # (d) nothing else was affected: compared with landing the clean copy, exactly the records
    # the defect took out are missing, nothing new appeared, and the other rows are identical
    assert clean_report.landed - report.landed == exp.removed
    keys = list(spec.keys)
    assert table.join(clean, on=keys, how="anti").height == 0
    assert clean.join(table, on=keys, how="anti").height == exp.removed
    cols = [c for c in clean.columns if c not in LINEAGE and c not in keys]
    both = table.join(clean, on=keys, suffix="_clean")
    differs = both.filter(pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_clean")) for c in cols))
    if exp.changed is None:
        assert differs.height == 0, differs
    else:
        assert differs.height > 0 and differs.filter(~exp.changed).height == 0
    if exp.check is not None:
        exp.check(table, clean, report)


__doc__ += """
Outcomes tested (one parametrized case each):

=================================================  ==================================================
defect (injected into a real clean landing file)   outcome asserted
=================================================  ==================================================
inverter line 10 truncated                         quarantine ``invalid_json`` at line 10
inverter line without ``ac_energy_total_kwh``      quarantine ``missing_field:ac_energy_total_kwh``
inverter ts without UTC offset                     quarantine ``invalid_timestamp``
inverter message with an unknown serial (appended) quarantine ``unknown_serial``
inverter ts in 2031                                quarantine ``future_timestamp``
inverter ac_power_w = -500                         quarantine ``negative_power``
inverter line with a 0xFF byte                     quarantine ``invalid_encoding``
inverter ac_power_w = true (wrong type)            quarantine ``invalid_type:ac_power_w``
inverter file of garbage bytes                     every line quarantined (``invalid_encoding`` /
                                                   ``invalid_json``), nothing lands
one system's whole day of power in kW              landed, ``unit_corrected``, power back in W (1 %)
counter restarts at ~0 mid-day                     landed, ``counter_reset`` on exactly that reading
P1 digit changed after the CRC                     quarantine ``crc_mismatch`` at the telegram's line
P1 checksum line missing                           quarantine ``incomplete_telegram``
P1 telegram repeated                               duplicate, the first copy kept
junk text before the first telegram                quarantine ``unparseable_text`` at line 1
P1 telegram of an unknown meter (valid CRC)        quarantine ``unknown_meter``
P1 telegram without 1-0:2.8.2 (valid CRC)          quarantine ``missing_field:ELECTRICITY_DELIVERED_
                                                   TARIFF_2``
P1 telegram with a 0xFF byte                       quarantine ``invalid_encoding``
P1 telegram with a 0xFD byte, CRC over its bytes   quarantine ``invalid_encoding`` (never lands)
P1 file of garbage bytes                           one ``invalid_encoding`` record, nothing lands
device line duplicated                             duplicate, the first copy kept
device_type "dishwasher"                           quarantine ``unknown_device_type``
KNMI row with 20 fields                            quarantine ``invalid_weather_row``
KNMI row with 26 fields                            quarantine ``invalid_weather_row``
KNMI blank Q (station gap)                         landed, ``ghi_w_m2`` null, other fields kept
=================================================  ==================================================
"""
