"""Guarantee maths on small synthetic frames, checked against numbers computed by hand.

Every synthetic system has 8 daylight hours per UTC day (08..15) with an expectation of E kWh
and GHI of h kWh/m2 each, and 16 night hours with 0: a 365-day year then has 2,920 daylight
hours, expected 2,920 E kWh and 2,920 h kWh/m2.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from wattlake.guarantee import (GUARANTEE_SCHEMA, GuaranteeParams, anniversary, daily_terms,
                                evaluate_guarantees, guarantee_years)

SHA = "ab" * 32


def hours(system_id: str, first: dt.date, last: dt.date, expected: float = 1.0, factor: float = 1.0,
          ghi: float = 0.5, gaps: tuple[dt.date, dt.date] | None = None, partial: tuple[dt.date, dt.date] | None = None
          ) -> pl.DataFrame:
    """Hourly silver rows ``first..last``: daylight 08..15 UTC with ``expected`` kWh, actual = factor x
    expected; no readings on the ``gaps`` days, 6 of 12 readings (half the energy) on ``partial`` days."""
    ts = pl.datetime_range(dt.datetime(first.year, first.month, first.day), dt.datetime(last.year, last.month, last.day, 23),
                           "1h", time_zone="UTC", eager=True)
    df = pl.DataFrame({"ts_utc": ts}).with_columns(
        system_id=pl.lit(system_id), day=pl.col("ts_utc").dt.date(),
        night=~pl.col("ts_utc").dt.hour().is_between(8, 15))
    day = pl.col("day")
    no_data = day.is_between(*gaps) if gaps else pl.lit(False)
    half = day.is_between(*partial) if partial else pl.lit(False)
    n = pl.when(no_data).then(0).when(half & ~pl.col("night")).then(6).otherwise(12)
    exp = pl.when(pl.col("night")).then(0.0).otherwise(expected)
    return df.with_columns(
        expected_energy_kwh=exp,
        n_readings=n.cast(pl.Int32),
        actual_energy_kwh=pl.when(no_data).then(None).otherwise(exp * factor * n / 12),
        ghi_irradiation_kwh_m2=pl.when(pl.col("night")).then(0.0).otherwise(ghi),
        poa_irradiation_kwh_m2=pl.when(pl.col("night")).then(0.0).otherwise(ghi * 1.1),
        estimated=pl.lit(False),
    )


def systems(*rows: tuple) -> pl.DataFrame:
    """(system_id, guarantee_start, guaranteed kWh, reference GHI kWh/m2, tariff EUR/kWh)."""
    return pl.DataFrame(
        [dict(system_id=r[0], insurer="Alpha", kwp=4.0, guarantee_start=r[1], guarantee_kwh_per_year=r[2],
              guarantee_ref_irradiation_kwh_m2=r[3], guarantee_tariff_eur_per_kwh=r[4]) for r in rows])


def photos(*ids: str, sha: str = SHA) -> pl.DataFrame:
    return pl.DataFrame({"system_id": list(ids), "file_name": [f"{i}.jpg" for i in ids], "sha256": [sha] * len(ids)},
                        schema={"system_id": pl.String, "file_name": pl.String, "sha256": pl.String})


def one(frame: pl.DataFrame, system_id: str, year_start: dt.date | None = None) -> dict:
    rows = frame.filter(pl.col("system_id") == system_id)
    if year_start is not None:
        rows = rows.filter(pl.col("year_start") == year_start)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


Y25 = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


def test_year_that_meets():
    out = evaluate_guarantees(daily_terms(hours("A", *Y25)), systems(("A", dt.date(2023, 1, 1), 2900.0, 1460.0, 0.25)),
                              photos("A"))
    assert out.height == 1  # 2023 and 2024 ended before the data began; no later year is complete
    r = one(out, "A")
    assert (r["year_start"], r["year_end"], r["days"], r["guarantee_year"]) == (*Y25, 365, 3)
    assert r["measured_kwh"] == pytest.approx(2920.0)
    assert r["modelled_kwh"] == 0.0 and r["gap_hours"] == 0 and r["data_completeness"] == 1.0
    assert r["measured_irradiation_kwh_m2"] == pytest.approx(1460.0)
    assert r["weather_correction"] == pytest.approx(1.0)
    assert r["corrected_guarantee_kwh"] == pytest.approx(2900.0)
    assert r["verdict"] == "met" and r["shortfall_kwh"] == 0.0 and r["shortfall_eur"] == 0.0


def test_shortfall_after_weather_correction():
    # a dull year: 0.45 of 0.5 kWh/m2 per daylight hour -> H = 1314 kWh/m2, c = 1314/1460 = 0.9;
    # G_c = 0.9 x 3000 = 2700 kWh; measured 0.9 x 2920 = 2628 kWh -> short by 72 kWh = 18 EUR at 0.25
    out = evaluate_guarantees(daily_terms(hours("B", *Y25, factor=0.9, ghi=0.45)),
                              systems(("B", dt.date(2024, 1, 1), 3000.0, 1460.0, 0.25)), photos("B"))
    r = one(out, "B")
    assert r["weather_correction"] == pytest.approx(0.9)
    assert r["corrected_guarantee_kwh"] == pytest.approx(2700.0)
    assert r["total_kwh"] == pytest.approx(2628.0)
    assert r["verdict"] == "shortfall"
    assert r["shortfall_kwh"] == pytest.approx(72.0)
    assert r["shortfall_eur"] == pytest.approx(18.0)
    assert r["yield_ratio"] == pytest.approx(2628 / 2700)


def test_too_many_gaps_is_insufficient_data_and_gaps_are_modelled():
    # 42 days without readings: 42 x 8 = 336 of 2,920 expected kWh modelled = 11.5 % > 10 %
    # 10 more days with 6 of 12 readings: 80 daylight hours missing half -> 40 kWh more modelled
    gap = (dt.date(2025, 1, 1), dt.date(2025, 2, 11))
    part = (dt.date(2025, 6, 1), dt.date(2025, 6, 10))
    daily = daily_terms(hours("C", *Y25, factor=0.8, gaps=gap, partial=part))
    terms = systems(("C", dt.date(2025, 1, 1), 2000.0, 1460.0, 0.3))
    r = one(evaluate_guarantees(daily, terms, photos("C")), "C")
    assert r["gap_hours"] == 336 and r["partial_hours"] == 80
    assert r["modelled_share"] == pytest.approx(376 / 2920)
    assert r["verdict"] == "insufficient_data" and r["shortfall_kwh"] is None and r["shortfall_eur"] is None
    assert "12.9 %" in r["verdict_reason"]
    # with a looser limit the same year gets a verdict; the gaps are filled at the system's own
    # measured/expected ratio k = 0.8: modelled = 0.8 x 376, measured = 0.8 x (2920 - 376)
    r = one(evaluate_guarantees(daily, terms, photos("C"), params=GuaranteeParams(max_modelled_share=0.2)), "C")
    assert r["measured_expected_ratio"] == pytest.approx(0.8)
    assert r["measured_kwh"] == pytest.approx(0.8 * 2544)
    assert r["modelled_kwh"] == pytest.approx(0.8 * 376)
    assert r["total_kwh"] == pytest.approx(2336.0)
    assert r["verdict"] == "met"
    assert r["data_completeness"] == pytest.approx(1 - (336 * 12 + 80 * 6) / (2920 * 12))


def test_ineligible_without_valid_photo_proof():
    daily = daily_terms(pl.concat([hours("D", *Y25, factor=0.5), hours("E", *Y25, factor=0.5)]))
    terms = systems(("D", dt.date(2022, 1, 1), 2900.0, 1460.0, 0.25), ("E", dt.date(2022, 1, 1), 2900.0, 1460.0, 0.25))
    # D has no photo at all; E only a photo whose SHA-256 is not 64 hex digits
    out = evaluate_guarantees(daily, terms, photos("E", sha="not-a-hash"))
    for sid in ("D", "E"):
        r = one(out, sid)
        assert r["verdict"] == "not_eligible" and not r["eligible"] and r["photo_count"] == 0
        assert r["shortfall_kwh"] is None
        assert r["total_kwh"] == pytest.approx(1460.0)  # the numbers are still there for the record
    # the same short year with a valid photo is a shortfall
    assert one(evaluate_guarantees(daily, terms, photos("D", "E")), "D")["verdict"] == "shortfall"


def test_guarantee_year_crossing_new_year():
    # starts 1 July: the year 2024-07-01..2025-06-30 (365 days, no 29 Feb) is complete; data up to
    # 2025-07-10 must not leak into it, and the next year is in progress
    daily = daily_terms(hours("F", dt.date(2024, 7, 1), dt.date(2025, 7, 10), expected=2.0, ghi=0.4))
    out = evaluate_guarantees(daily, systems(("F", dt.date(2023, 7, 1), 5000.0, 1200.0, 0.2)), photos("F"))
    assert out.height == 1
    r = one(out, "F")
    assert (r["year_start"], r["year_end"], r["days"], r["guarantee_year"]) == \
        (dt.date(2024, 7, 1), dt.date(2025, 6, 30), 365, 2)
    assert r["measured_kwh"] == pytest.approx(2 * 2920)
    assert r["measured_irradiation_kwh_m2"] == pytest.approx(0.4 * 2920)
    assert r["weather_correction"] == pytest.approx(1168 / 1200)
    assert r["verdict"] == "met"


def test_leap_day_start_and_leap_year():
    # guarantee from 29 Feb 2020: anniversaries 2024-02-29 (leap) and 2025-03-01 (common year)
    daily = daily_terms(hours("G", dt.date(2024, 1, 1), dt.date(2025, 3, 10)))
    out = evaluate_guarantees(daily, systems(("G", dt.date(2020, 2, 29), 2900.0, 1464.0, 0.25)), photos("G"))
    assert out.get_column("year_start").to_list() == [dt.date(2023, 3, 1), dt.date(2024, 2, 29)]
    leap = one(out, "G", dt.date(2024, 2, 29))
    assert (leap["year_end"], leap["days"], leap["guarantee_year"]) == (dt.date(2025, 2, 28), 366, 5)
    assert leap["measured_kwh"] == pytest.approx(366 * 8)  # the leap day counts
    assert leap["measured_irradiation_kwh_m2"] == pytest.approx(1464.0)
    assert leap["verdict"] == "met"
    # the previous year began before the data: 365 - 59 days without any row -> no verdict
    early = one(out, "G", dt.date(2023, 3, 1))
    assert early["days"] == 365 and early["unmodelled_hours"] == (365 - 59) * 24
    assert early["verdict"] == "insufficient_data"


def test_anniversary_and_years():
    f = pl.DataFrame({"s": [dt.date(2024, 2, 29), dt.date(2023, 12, 31)]})
    got = f.select(a1=anniversary(pl.col("s"), pl.lit(1)), a4=anniversary(pl.col("s"), pl.lit(4)))
    assert got.row(0) == (dt.date(2025, 3, 1), dt.date(2028, 2, 29))
    assert got.row(1) == (dt.date(2024, 12, 31), dt.date(2027, 12, 31))
    years = guarantee_years(pl.DataFrame({"system_id": ["x"], "guarantee_start": [dt.date(2023, 12, 31)]}),
                            pl.DataFrame({"system_id": ["x"], "first_day": [dt.date(2023, 12, 31)]}), dt.date(2025, 12, 30))
    assert years.select("year_start", "year_end", "days").rows() == [
        (dt.date(2023, 12, 31), dt.date(2024, 12, 30), 366), (dt.date(2024, 12, 31), dt.date(2025, 12, 30), 365)]


def test_output_schema_and_empty_input():
    out = evaluate_guarantees(daily_terms(hours("A", *Y25)), systems(("A", dt.date(2023, 1, 1), 2900.0, 1460.0, 0.25)),
                              photos("A"))
    assert out.to_arrow().schema.names == GUARANTEE_SCHEMA.names
    empty = evaluate_guarantees(daily_terms(hours("A", dt.date(2025, 1, 1), dt.date(2025, 1, 3))),
                                systems(("A", dt.date(2025, 1, 1), 2900.0, 1460.0, 0.25)), photos("A"))
    assert empty.height == 0 and empty.columns == GUARANTEE_SCHEMA.names


def test_generator_guarantee_terms(monkeypatch):
    """Guarantees start on the 1st after commissioning; their own random stream leaves the rest alone."""
    from wattlake.generator import registry as gen

    fleet = gen.build_fleet(40, dt.date(2025, 1, 1), 42).systems
    assert (fleet["guarantee_start"] > fleet["install_date"]).all()
    assert (fleet["guarantee_start"].dt.day() == 1).all()
    first_day = fleet.filter((pl.col("guarantee_start").dt.month() == 1))
    assert 10 <= first_day.height < 40  # many anniversaries on the first generated day, not all
    assert fleet["guarantee_ref_irradiation_kwh_m2"].is_between(1000, 1150).all()
    assert fleet["guarantee_tariff_eur_per_kwh"].is_in(gen.GUARANTEE_TARIFFS.tolist()).all()
    monkeypatch.setattr(gen, "CALENDAR_YEAR_SHARE", 0.0)
    monkeypatch.setattr(gen, "GUARANTEE_TARIFFS", gen.GUARANTEE_TARIFFS + 0.01)
    other = gen.build_fleet(40, dt.date(2025, 1, 1), 42).systems
    terms = ["guarantee_start", "guarantee_tariff_eur_per_kwh"]
    assert other.drop(terms).equals(fleet.drop(terms))
    assert not other["guarantee_start"].equals(fleet["guarantee_start"])
