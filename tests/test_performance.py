"""gold/system_daily: PR, temperature-corrected PR, availability, completeness on hand-made days."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pytest

from wattlake.performance import SYSTEM_DAILY_SCHEMA, system_daily

DAY = dt.date(2025, 6, 1)

#: the silver/pv_intervals columns (wattlake/yield_model.py)
SILVER_COLUMNS = {
    "system_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"), "day": pl.Date,
    "actual_energy_kwh": pl.Float64, "n_readings": pl.Int64, "ac_power_max_w": pl.Float64,
    "dc_current_min_ratio": pl.Float64, "status_fault_count": pl.Int64,
    "expected_energy_kwh": pl.Float64, "expected_dc_kwh": pl.Float64,
    "poa_irradiation_kwh_m2": pl.Float64, "ghi_irradiation_kwh_m2": pl.Float64,
    "cell_temp_c": pl.Float64, "temp_air_c": pl.Float64, "solar_zenith_deg": pl.Float64,
    "expected_clipped": pl.Boolean, "night": pl.Boolean, "low_sun": pl.Boolean,
    "estimated": pl.Boolean, "clipped": pl.Boolean, "missing_data": pl.Boolean,
}


def silver(rows: list[dict]) -> pl.DataFrame:
    """Silver interval rows; unspecified columns get neutral values."""
    defaults = {
        "system_id": "S1", "day": DAY, "actual_energy_kwh": 0.0, "n_readings": 12,
        "ac_power_max_w": 0.0, "dc_current_min_ratio": None, "status_fault_count": 0,
        "expected_energy_kwh": 0.0, "expected_dc_kwh": 0.0, "poa_irradiation_kwh_m2": 0.0,
        "ghi_irradiation_kwh_m2": 0.0, "cell_temp_c": None, "temp_air_c": 15.0,
        "solar_zenith_deg": 100.0, "expected_clipped": False, "night": True, "low_sun": False,
        "estimated": False, "clipped": False, "missing_data": False,
    }
    full = []
    for r in rows:
        d = {**defaults, **r}
        d["ts_utc"] = dt.datetime.combine(d["day"], dt.time(d.pop("hour")), tzinfo=dt.timezone.utc)
        full.append(d)
    return pl.DataFrame(full, schema=SILVER_COLUMNS)


SYSTEMS = pl.DataFrame({"system_id": ["S1"], "kwp": [4.0], "inverter_ac_kw": [3.6], "installer_id": ["I1"],
                        "lon": [5.3]})


def tiny_day(over: dict[int, dict] | None = None) -> pl.DataFrame:
    """One 4 kWp system: 22 night hours and 2 daylight hours (10:00 and 11:00 UTC).

    hour 10: POA 0.5 kWh/m2, cell 45 degC, actual 1.5 kWh, expected 1.6 kWh, 12 readings
    hour 11: POA 0.8 kWh/m2, cell 55 degC, actual 2.5 kWh, expected 2.7 kWh, 12 readings
    """
    night = [{"hour": h} for h in range(24) if h not in (10, 11)]
    day = [
        {"hour": 10, "night": False, "poa_irradiation_kwh_m2": 0.5, "ghi_irradiation_kwh_m2": 0.4,
         "cell_temp_c": 45.0, "actual_energy_kwh": 1.5, "expected_energy_kwh": 1.6, "ac_power_max_w": 1700.0},
        {"hour": 11, "night": False, "poa_irradiation_kwh_m2": 0.8, "ghi_irradiation_kwh_m2": 0.7,
         "cell_temp_c": 55.0, "actual_energy_kwh": 2.5, "expected_energy_kwh": 2.7, "ac_power_max_w": 2700.0},
    ]
    for r in day:
        r.update((over or {}).get(r["hour"], {}))
    return silver(night + day)


def test_pr_and_temperature_corrected_pr_by_hand():
    d = system_daily(tiny_day(), SYSTEMS)
    assert d.height == 1
    r = d.row(0, named=True)
    # actual 1.5 + 2.5 = 4.0 kWh; Yf = 4.0 / 4 kWp = 1.0 h
    assert r["actual_kwh"] == pytest.approx(4.0)
    assert r["final_yield_h"] == pytest.approx(1.0)
    # H_poa = 0.5 + 0.8 = 1.3 kWh/m2; Yr = 1.3 / 1 kW/m2 = 1.3 h; PR = 1.0 / 1.3 = 0.76923
    assert r["poa_irradiation_kwh_m2"] == pytest.approx(1.3)
    assert r["reference_yield_h"] == pytest.approx(1.3)
    assert r["performance_ratio"] == pytest.approx(1.0 / 1.3)
    # C_10 = 1 - 0.0037 * (45 - 25) = 0.926; C_11 = 1 - 0.0037 * 30 = 0.889
    # sum Yr_k C_k = 0.5 * 0.926 + 0.8 * 0.889 = 0.463 + 0.7112 = 1.1742
    # PR' = 1.0 / 1.1742 = 0.85165
    assert r["performance_ratio_temp_corr"] == pytest.approx(1.0 / 1.1742)
    assert r["performance_ratio_temp_corr"] == pytest.approx(0.85165, abs=1e-5)
    # expected 1.6 + 2.7 = 4.3 kWh; ratio 4.0 / 4.3
    assert r["expected_kwh"] == pytest.approx(4.3)
    assert r["expected_ratio"] == pytest.approx(4.0 / 4.3)
    # irradiance-weighted cell temperature (45 * 0.5 + 55 * 0.8) / 1.3 = 51.15 degC
    assert r["cell_temp_mean_c"] == pytest.approx((45 * 0.5 + 55 * 0.8) / 1.3)
    assert r["availability"] == 1.0 and r["data_completeness"] == 1.0
    assert r["daylight_hours"] == 2 and r["readings"] == 24
    assert r["ac_power_max_w"] == 2700.0
    assert not r["incomplete"] and not r["no_data"] and not r["low_light"]


def test_schema_matches_arrow_schema():
    d = system_daily(tiny_day(), SYSTEMS)
    assert d.columns == SYSTEM_DAILY_SCHEMA.names
    assert d.to_arrow().cast(SYSTEM_DAILY_SCHEMA).schema.equals(SYSTEM_DAILY_SCHEMA)
    assert pl.from_arrow(SYSTEM_DAILY_SCHEMA.empty_table()).schema == d.schema
    assert SYSTEM_DAILY_SCHEMA.field("day").type == pa.date32()


def test_cold_cells_raise_the_corrected_pr_above_the_plain_one():
    d = system_daily(tiny_day({10: {"cell_temp_c": 5.0}, 11: {"cell_temp_c": 5.0}}), SYSTEMS)
    r = d.row(0, named=True)
    # C = 1 - 0.0037 * (5 - 25) = 1.074 for both hours: PR' = PR / 1.074
    assert r["performance_ratio_temp_corr"] == pytest.approx(r["performance_ratio"] / 1.074)


def test_availability_and_completeness_with_a_gap_and_a_fault():
    # hour 10: 6 of 12 readings (1.0 kWh measured); hour 11: inverter reports a fault, 0 kWh
    d = system_daily(tiny_day({10: {"n_readings": 6, "actual_energy_kwh": 1.0},
                                 11: {"status_fault_count": 12, "actual_energy_kwh": 0.0}}), SYSTEMS)
    r = d.row(0, named=True)
    # availability: hour 10 has readings and no fault, hour 11 has a fault -> 1 / 2
    assert r["availability"] == pytest.approx(0.5)
    # completeness: (6 + 12) readings / (12 x 2 daylight hours) = 0.75
    assert r["data_completeness"] == pytest.approx(0.75)
    assert r["incomplete"] and r["fault_hours"] == 1


def test_hours_without_readings_are_left_out_of_pr_and_ratio():
    # hour 11 has no reading at all (stick offline): PR and ratio use hour 10 only
    d = system_daily(tiny_day({11: {"n_readings": 0, "actual_energy_kwh": None}}), SYSTEMS)
    r = d.row(0, named=True)
    assert r["actual_kwh"] == pytest.approx(1.5)
    assert r["expected_kwh"] == pytest.approx(4.3)          # the whole day
    assert r["expected_covered_kwh"] == pytest.approx(1.6)  # the hours with data
    assert r["expected_ratio"] == pytest.approx(1.5 / 1.6)
    # PR over hour 10: (1.5 / 4) / 0.5 = 0.75
    assert r["performance_ratio"] == pytest.approx(0.75)
    # availability 1 / 2 (hour 11 has neither readings nor production); completeness 12 / 24
    assert r["availability"] == pytest.approx(0.5)
    assert r["data_completeness"] == pytest.approx(0.5)


def test_day_without_any_reading():
    d = system_daily(tiny_day({10: {"n_readings": 0, "actual_energy_kwh": None},
                                 11: {"n_readings": 0, "actual_energy_kwh": None}}), SYSTEMS)
    r = d.row(0, named=True)
    assert r["actual_kwh"] is None and r["performance_ratio"] is None and r["expected_ratio"] is None
    assert r["no_data"] and r["availability"] == 0.0 and r["data_completeness"] == 0.0
    assert r["expected_kwh"] == pytest.approx(4.3)


def test_several_systems_and_days_are_grouped():
    a = tiny_day()
    b = tiny_day().with_columns(system_id=pl.lit("S2"))
    c = tiny_day().with_columns(day=pl.lit(DAY + dt.timedelta(days=1)),
                                ts_utc=pl.col("ts_utc") + pl.duration(days=1))
    systems = pl.concat([SYSTEMS, SYSTEMS.with_columns(system_id=pl.lit("S2"), kwp=pl.lit(2.0))])
    d = system_daily(pl.concat([a, b, c]), systems)
    assert d.select("system_id", "day").rows() == [("S1", DAY), ("S1", DAY + dt.timedelta(days=1)), ("S2", DAY)]
    assert d.filter(pl.col("system_id") == "S2")["final_yield_h"][0] == pytest.approx(2.0)
