"""Inverter, device and weather parsers: every decision, with data that passes and fails it."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from wattlake.parsing.device import parse_device_lines
from wattlake.parsing.inverter import flag_inverter_readings, parse_inverter_lines
from wattlake.parsing.lines import read_buffer, read_lines
from wattlake.parsing.weather import parse_knmi_lines

NOW = dt.datetime(2025, 7, 1, 0, 0)
SYSTEMS = pl.DataFrame({"serial": ["SN1", "SN2"], "system_id": ["sys_a", "sys_b"]})


def msg(**kw) -> str:
    base = {"serial": "SN1", "ts": "2025-06-01T14:05:00+02:00", "remote_ip": "203.0.113.7",
            "ac_power_w": 1234.5, "ac_energy_total_kwh": 100.0,
            "dc": [{"mppt": 1, "voltage_v": 310.0, "current_a": 2.1}, {"mppt": 2, "voltage_v": 305.0, "current_a": 2.0}],
            "temperature_c": 41.0, "status": "ok"}
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


def lines(raws):
    return pl.DataFrame({"source_file": "inverter/2025-06-01/m.jsonl", "line_no": list(range(1, len(raws) + 1)),
                         "raw": raws}, schema_overrides={"line_no": pl.Int32})


@pytest.mark.parametrize("raw,reason", [
    (msg()[:-20], "invalid_json"),
    (msg(ac_power_w="lots"), "invalid_json"),
    (msg(serial=...), "missing_field:serial"),
    (msg(ac_energy_total_kwh=None), "missing_field:ac_energy_total_kwh"),
    (msg(ts="2025-06-01T14:05:00"), "invalid_timestamp"),
    (msg(ts="yesterday"), "invalid_timestamp"),
    (msg(serial="SN999"), "unknown_serial"),
    (msg(ts="2031-01-01T00:00:00Z"), "future_timestamp"),
    (msg(ac_power_w=-500.0), "negative_power"),
])
def test_inverter_rejects_with_reason(raw, reason):
    parsed = parse_inverter_lines(lines([msg(), raw]), SYSTEMS, NOW)
    assert parsed.good.height == 1 and parsed.good["line_no"].to_list() == [1]
    assert parsed.rejects.select("line_no", "reason").rows() == [(2, reason)]
    assert parsed.rejects["raw_text"][0] == raw


def test_inverter_good_message_is_typed_in_utc():
    parsed = parse_inverter_lines(lines([msg(), msg(serial="SN2", ts="2025-06-01T12:10:00Z", ac_power_w=-2.0)]), SYSTEMS, NOW)
    assert parsed.rejects.height == 0
    g = parsed.good.sort("line_no")
    assert g["system_id"].to_list() == ["sys_a", "sys_b"]
    assert g["ts_utc"].to_list() == [dt.datetime(2025, 6, 1, 12, 5, tzinfo=dt.timezone.utc),
                                     dt.datetime(2025, 6, 1, 12, 10, tzinfo=dt.timezone.utc)]
    assert g["utc_offset_min"].to_list() == [120, 0]
    assert g["dc"][0].to_list()[1] == {"mppt": 2, "voltage_v": 305.0, "current_a": 2.0}


def series(powers, energies, system="sys_a", start=dt.datetime(2025, 6, 1, 10, tzinfo=dt.timezone.utc)):
    n = len(powers)
    return pl.DataFrame({"system_id": [system] * n, "ts_utc": [start + dt.timedelta(minutes=5 * i) for i in range(n)],
                         "ac_power_w": powers, "ac_energy_total_kwh": energies})


def test_kw_reported_power_is_corrected_and_flagged():
    # 2,400 W for 5 min = 0.2 kWh; the middle readings are sent in kW
    energies = [10.0 + 0.2 * i for i in range(6)]
    out = flag_inverter_readings(series([2400.0, 2400.0, 2.4, 2.4, 2400.0, 0.0], energies))
    assert out["unit_corrected"].to_list() == [False, False, True, True, False, False]
    assert out["ac_power_w"].to_list()[2:4] == [2400.0, 2400.0]


def test_honest_low_power_is_not_corrected():
    # 30 W for 5 min = 2.5 Wh: honest readings with ratio ~1 stay as they are
    energies = [10.0, 10.0025, 10.005, 10.0075]
    out = flag_inverter_readings(series([30.0, 30.0, 30.0, 30.0], energies))
    assert not out["unit_corrected"].any()


def test_counter_reset_flagged_within_batch_and_at_boundary():
    out = flag_inverter_readings(series([100.0] * 4, [500.0, 500.01, 0.01, 0.02]))
    assert out["counter_reset"].to_list() == [False, False, True, False]
    prev = pl.DataFrame({"system_id": ["sys_a"], "ts_utc": [dt.datetime(2025, 6, 1, 9, 55, tzinfo=dt.timezone.utc)],
                         "ac_energy_total_kwh": [900.0]})
    out = flag_inverter_readings(series([100.0] * 2, [1.0, 1.01]), prev)
    assert out["counter_reset"].to_list() == [True, False] and out.height == 2


def test_device_lines():
    ok = json.dumps({"device_id": "ev1", "device_type": "ev_charger", "ts": "2025-06-01T12:00:00+02:00",
                     "power_w": 7400.0, "energy_total_kwh": 12.5})
    bad_type = ok.replace("ev_charger", "toaster")
    neg = ok.replace("7400.0", "-1.0")
    frame = pl.DataFrame({"source_file": ["device/2025-06-01/em_1.jsonl"] * 3 + ["device/2025-06-01/em_x.jsonl"],
                          "line_no": [1, 2, 3, 1], "raw": [ok, bad_type, neg, ok]}, schema_overrides={"line_no": pl.Int32})
    parsed = parse_device_lines(frame, pl.DataFrame({"em_id": ["em_1"], "system_id": ["sys_a"]}), NOW)
    assert parsed.good.select("system_id", "power_w").rows() == [("sys_a", 7400.0)]
    assert sorted(parsed.rejects["reason"].to_list()) == ["negative_power", "unknown_device_type", "unknown_energy_manager"]


HEADER = ("# STN,YYYYMMDD,   HH,   DD,   FH,   FF,   FX,    T,  T10,   TD,   SQ,    Q,   DR,   RH,    P,   VV,"
          "    N,    U,   WW,   IX,    M,    R,    S,    O,    Y")


def knmi(stn=260, date="20250601", hh=13, fh="30", t="223", q="250"):
    return (f"  {stn},{date},{hh:>5},  200,{fh:>5},   30,   50,{t:>5},     ,  100,    0,{q:>5},    0,    0,10150,"
            "   70,    8,   90,     ,    5,    0,    0,    0,    0,    0")


def test_knmi_hour_ending_becomes_hour_start_utc_and_units():
    frame = pl.DataFrame({"source_file": "w", "line_no": [1, 2, 3], "raw": [HEADER, knmi(hh=13), knmi(hh=24)]},
                         schema_overrides={"line_no": pl.Int32})
    p = parse_knmi_lines(frame, pl.Series([260]))
    assert p.records == 2 and p.rejects.height == 0
    r = p.good.sort("ts_utc").rows(named=True)
    assert r[0]["ts_utc"] == dt.datetime(2025, 6, 1, 12, tzinfo=dt.timezone.utc)
    assert r[1]["ts_utc"] == dt.datetime(2025, 6, 1, 23, tzinfo=dt.timezone.utc)
    assert r[0]["ghi_w_m2"] == pytest.approx(250 * 1e4 / 3600)  # J/cm2 per hour -> W/m2
    assert r[0]["temp_air_c"] == pytest.approx(22.3) and r[0]["wind_speed_m_s"] == pytest.approx(3.0)


def test_knmi_gaps_stay_null_and_bad_rows_are_quarantined():
    raws = [knmi(q="", t=""), knmi(hh=25), knmi(q="2x0"), knmi(stn=999), knmi()[:40]]
    frame = pl.DataFrame({"source_file": "w", "line_no": list(range(1, 6)), "raw": raws}, schema_overrides={"line_no": pl.Int32})
    p = parse_knmi_lines(frame, pl.Series([260]))
    assert p.good.height == 1 and p.good["ghi_w_m2"][0] is None and p.good["temp_air_c"][0] is None
    assert p.rejects.sort("line_no")["reason"].to_list() == [
        "invalid_weather_row", "invalid_weather_row", "unknown_station", "invalid_weather_row"]


def test_read_lines_counts_records_and_rejects_bad_encoding(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"a": 1}\r\n\r\n{"a": 2}\n\xff\xfe{"a": 3}\n')
    good, rej = read_lines([("a.jsonl", f)])
    assert good["line_no"].to_list() == [1, 3] and good["raw"].to_list() == ['{"a": 1}', '{"a": 2}']
    assert rej.select("line_no", "reason").rows() == [(4, "invalid_encoding")]


def test_low_power_readings_follow_the_days_kw_verdict():
    # a kW day: dawn readings of 10 W (0.010 "kW") cannot be judged from the 1 Wh counter alone
    energies = [10.0, 10.001, 10.002, 10.202, 10.402, 10.602, 10.603]
    powers = [0.0, 0.010, 0.010, 2.4, 2.4, 2.4, 0.012]
    out = flag_inverter_readings(series(powers, energies))
    assert out["unit_corrected"].to_list() == [False, True, True, True, True, True, True]
    assert out["ac_power_w"].to_list()[1] == pytest.approx(10.0)
    # an honest day: the same dawn values in W stay uncorrected
    energies = [10.0, 10.001, 10.002, 10.202, 10.402]
    out = flag_inverter_readings(series([0.0, 10.0, 10.0, 2400.0, 2400.0], energies))
    assert not out["unit_corrected"].any()


def test_json_decoding_in_slices_rejects_exactly_the_bad_lines(monkeypatch):
    """Bad lines in several decode slices (and on slice edges) are rejected; every other line decodes."""
    import wattlake.parsing.lines as lines_mod
    from wattlake.parsing.inverter import MESSAGE_TYPE

    monkeypatch.setattr(lines_mod, "DECODE_SLICE_ROWS", 4)
    good = '{"serial":"S%d","ts":"2025-01-01T00:05:00Z","ac_power_w":%d.5,"ac_energy_total_kwh":1.0,"dc":[{"mppt":1,"voltage_v":300.0,"current_a":1.25}]}'
    raw = [good % (i, i) for i in range(23)]
    bad_at = {0, 3, 4, 9, 22}  # first row, both sides of a slice edge, middle, last row
    for i in bad_at:
        raw[i] = '{"serial":"S%d","ts":' % i + "}"  # braces balanced, not JSON
    frame = pl.DataFrame({"source_file": ["f"] * len(raw), "line_no": list(range(1, len(raw) + 1)), "raw": raw},
                         schema={"source_file": pl.Utf8, "line_no": pl.Int32, "raw": pl.Utf8})
    decoded, rejects = lines_mod.decode_json_lines(frame, MESSAGE_TYPE)
    assert sorted(rejects.get_column("line_no").to_list()) == sorted(i + 1 for i in bad_at)
    assert set(rejects.get_column("reason")) == {"invalid_json"}
    assert decoded.get_column("serial").to_list() == [f"S{i}" for i in range(23) if i not in bad_at]
    assert decoded.get_column("ac_power_w").to_list() == [i + 0.5 for i in range(23) if i not in bad_at]
    assert decoded.get_column("dc").list.len().to_list() == [1] * (23 - len(bad_at))


def test_rejecting_bad_json_leaves_no_reference_cycle_holding_the_lines():
    """Bisecting a bad slice must not leave garbage only the cyclic collector frees.

    A recursive closure did (function -> cell -> function), keeping each landing group's
    lines alive until the collector ran: memory grew with every group landed.
    """
    import gc

    import wattlake.parsing.lines as lines_mod
    from wattlake.parsing.inverter import MESSAGE_TYPE

    raw = ['{"serial":"S%d","ts":"2025-01-01T00:05:00Z","ac_power_w":1.0,"ac_energy_total_kwh":1.0}' % i
           for i in range(50)]
    raw[7] = '{"serial":"S7","ts":}'
    frame = pl.DataFrame({"source_file": ["f"] * 50, "line_no": list(range(1, 51)), "raw": raw},
                         schema={"source_file": pl.Utf8, "line_no": pl.Int32, "raw": pl.Utf8})
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        decoded, rejects = lines_mod.decode_json_lines(frame, MESSAGE_TYPE)
        counts = (decoded.height, rejects.height)
        del decoded, rejects
        gc.collect()
        leaked = [o for o in gc.garbage if isinstance(o, (pl.Series, pl.DataFrame))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert counts == (49, 1)
    assert leaked == []


def test_read_lines_fast_path_equals_the_plain_split(tmp_path):
    """The zero-copy line splitter gives exactly what decoding and splitting each file gives."""
    from wattlake.parsing.lines import _read_lines_replacing

    contents = [
        b'{"a":1}\r\n{"a":2}\r\n',            # CRLF, trailing newline
        b'\n\n  \t \n{"a":3}\n\n{"a":4}',      # blank and whitespace-only lines, no trailing newline
        b"",                                    # empty file
        b"\n",                                  # only a newline
        '{"s":"caf\u00e9"}\n\u00a0\u2003\n{"s":"\u00fc"}\r\r\n'.encode(),  # non-ASCII, Unicode blanks, \r\r
        b'{"a":5}\n{"a":\xff6}\n{"a":7}\n',      # invalid UTF-8: the slow path, in file order
        b'x\ry\n\r\n\r',                        # a lone \r inside, a line that is only \r
    ]
    files = []
    for i, c in enumerate(contents):
        f = tmp_path / f"f{i}.jsonl"
        f.write_bytes(c)
        files.append((f"day/f{i}.jsonl", f))
    got, got_rej = read_lines(files)
    want, want_rej = _read_lines_replacing(files, contents)
    assert got.to_dicts() == want.to_dicts()
    assert got_rej.to_dicts() == want_rej.to_dicts() and got_rej.height == 1
    assert got.columns == ["source_file", "line_no", "raw"]
    # one file at a time too (the slow path alone, the fast path alone)
    for f in files:
        assert read_lines([f])[0].to_dicts() == _read_lines_replacing([f], [f[1].read_bytes()])[0].to_dicts()


def test_read_buffer_is_the_files_back_to_back_with_invalid_bytes_replaced(tmp_path):
    contents = [b"ab\r\ncd", b"", "caf\u00e9\n".encode(), b"x\xffy\xc3\n", b"\xe2\x82", b"tail\n"]
    files = []
    for i, c in enumerate(contents):
        f = tmp_path / f"{i}.p1"
        f.write_bytes(c)
        files.append((f"day/{i}.p1", f))
    want = [c.decode("utf-8", errors="replace").encode("utf-8") for c in contents]
    buf, starts = read_buffer(files)
    assert buf.tobytes() == b"".join(want)
    assert [buf[starts[i]:starts[i + 1]].tobytes() for i in range(len(want))] == want
    clean, clean_starts = read_buffer([files[0], files[2], files[5]])  # nothing to replace
    assert clean.tobytes() == contents[0] + contents[2] + contents[5] and clean_starts.tolist() == [0, 6, 12, 17]


def _flag_reference(readings: pl.DataFrame, previous: pl.DataFrame | None = None) -> pl.DataFrame:
    """The kW/reset rules of :func:`flag_inverter_readings` as Polars window expressions (the
    implementation before the compiled pass): the reference the fuzz test holds it to."""
    base = readings.select("system_id", "ts_utc", "ac_energy_total_kwh", "ac_power_w").with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), pl.lit(False).alias("_prev"))
    if previous is not None and previous.height:
        prev = previous.select("system_id", "ts_utc", "ac_energy_total_kwh").with_columns(pl.lit(True).alias("_prev"))
        base = pl.concat([base, prev], how="diagonal_relaxed")
    code = pl.col("system_id").cast(pl.Categorical).to_physical()
    w = base.with_columns(code.alias("_sys")).sort("_sys", "ts_utc").with_columns(
        pl.col("ac_energy_total_kwh").shift(1).over("_sys").alias("_e0"),
        pl.col("ts_utc").shift(1).over("_sys").alias("_t0"),
    )
    hours = (pl.col("ts_utc") - pl.col("_t0")).dt.total_seconds() / 3600.0
    implied_w = (pl.col("ac_energy_total_kwh") - pl.col("_e0")) * 1000.0 / hours
    small = (pl.col("ac_power_w") > 0) & (pl.col("ac_power_w") < 50)
    judged = (small & (implied_w > 20) & (hours <= 0.25)).fill_null(False)
    kw_alone = (judged & (implied_w / pl.col("ac_power_w")).is_between(300, 3000)).fill_null(False)
    w = w.with_columns(judged.alias("_judged"), kw_alone.alias("_kw"), pl.col("ts_utc").dt.date().alias("_day"))
    day_kw = pl.col("_kw").sum().over("_sys", "_day") > (pl.col("_judged").sum().over("_sys", "_day") / 2)
    kw = pl.when(pl.col("_judged")).then(pl.col("_kw")).otherwise(small & day_kw).fill_null(False)
    reset = (pl.col("ac_energy_total_kwh") < pl.col("_e0") - 0.01).fill_null(False)
    flags = w.filter(~pl.col("_prev")).select("_i", reset.alias("counter_reset"), kw.alias("unit_corrected")).sort("_i")
    return readings.with_columns(
        pl.when(flags.get_column("unit_corrected")).then(pl.col("ac_power_w") * 1000.0)
        .otherwise(pl.col("ac_power_w")).alias("ac_power_w"),
        flags.get_column("counter_reset"), flags.get_column("unit_corrected"))


@pytest.mark.parametrize("seed", range(6))
def test_compiled_flags_equal_the_polars_rules_on_fuzzed_batches(seed):
    """Systems with gaps, resets, kW days, dawn readings, readings across midnight, nulls, shuffled
    rows and counters from earlier batches: the compiled pass gives exactly the reference flags."""
    rng = np.random.default_rng(seed)
    frames, prevs = [], []
    t0 = dt.datetime(2025, 6, 1, 20, tzinfo=dt.timezone.utc)
    for s in range(12):
        n = int(rng.integers(1, 400))
        step = rng.choice([5, 5, 5, 5, 10, 60, 1], size=n)  # minutes; 1: sub-5-minute
        ts = [t0 + dt.timedelta(minutes=int(m), seconds=int(rng.integers(0, 2)) * 30)
              for m in np.cumsum(step)]
        power = rng.choice([0.0, 0.01, 2.4, 10.0, 30.0, 2400.0, 45.0, -1.0], size=n)
        kw_day = rng.random() < 0.4
        true_w = np.where(power > 100, power, power * (1000.0 if kw_day else 1.0))
        energy = 100.0 * s + np.cumsum(true_w * step / 60.0 / 1000.0)
        energy = np.round(energy, 3)
        if rng.random() < 0.3:  # a counter reset somewhere
            energy[int(rng.integers(0, n)):] -= energy[0] + 5.0
        frame = pl.DataFrame({"system_id": f"sys_{s:02d}", "ts_utc": ts, "ac_power_w": power,
                              "ac_energy_total_kwh": energy})
        frames.append(frame.unique(subset=["ts_utc"], keep="first", maintain_order=True))
        if rng.random() < 0.5:
            prevs.append({"system_id": f"sys_{s:02d}", "ts_utc": t0 - dt.timedelta(minutes=5),
                          "ac_energy_total_kwh": float(energy[0] - rng.choice([0.0, 0.2, 50.0]))})
    batch = pl.concat(frames)
    nulls = rng.random(batch.height)
    batch = batch.with_columns(
        pl.when(pl.Series(nulls < 0.02)).then(None).otherwise(pl.col("ac_power_w")).alias("ac_power_w"),
        pl.when(pl.Series((nulls > 0.98))).then(None).otherwise(pl.col("ac_energy_total_kwh")).alias("ac_energy_total_kwh"),
    ).sample(fraction=1.0, shuffle=True, seed=seed)
    previous = pl.DataFrame(prevs, schema={"system_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"),
                                           "ac_energy_total_kwh": pl.Float64}) if prevs else None
    got = flag_inverter_readings(batch, previous)
    want = _flag_reference(batch, previous)
    assert got.equals(want)
    assert want["unit_corrected"].any() and want["counter_reset"].any()  # the fuzz reaches both rules


@pytest.mark.parametrize("ties", [False, True])
def test_system_time_order_keeps_ties_in_row_order(ties):
    """The (system, time) order the flags are worked out in: without ties the fast unstable sort,
    with ties (rows without a time share one) the stable one; either way equal to a stable
    lexicographic sort."""
    from wattlake.numerics import group_time_order

    rng = np.random.default_rng(3)
    n = 50_000
    code = rng.integers(0, 300, size=n)
    ts = (rng.permutation(n) * 300_000_000 + 1_700_000_000_000_000).astype(np.int64)
    if ties:
        ts[rng.random(n) < 0.05] = ts.min() - 1  # the fill value of null times
    order = group_time_order(code, ts, int(ts.min()) - 1)
    assert np.array_equal(order, np.lexsort((ts, code)))
