"""kWh-guarantee verdicts per system and guarantee year (``gold/guarantee_evaluations``).

Pure functions, Polars in, Polars out, no I/O. Energies in kWh (AC), irradiation in kWh/m2,
money in EUR, dates are UTC calendar days (the ``day`` of ``silver/pv_intervals``).

The guarantee
-------------
Each eligible system is guaranteed ``guarantee_kwh_per_year`` [kWh] per guarantee year. The
guarantee year starts on the system's ``guarantee_start`` and on each anniversary of it (not on
1 January) and ends the day before the next anniversary, so it has 365 days, or 366 when it
contains a 29 February. A guarantee that starts on 29 February has its anniversary on 1 March
in common years (and on 29 February again in leap years).

A year is judged only when it is complete: its last day is on or before ``as_of``, the last day
with data. Years that ended before the system's first day of data are not listed; a listed year
that began before the data did has hours without data and no model, so it is
``insufficient_data``, never a verdict.

Weather correction
------------------
The guaranteed yield was computed for a reference year with ``guarantee_ref_irradiation_kwh_m2``
[kWh/m2] of global horizontal irradiation (the registry's contract terms). The year's measured
irradiation ``H`` is the sum of the hourly station GHI of ``silver/pv_intervals`` (clear-sky
scaled where the station had gaps, flagged ``estimated``). The weather correction is
``c = H / H_ref`` and the weather-corrected guarantee ``G_c = c * G`` (IEC 61724-1 style
irradiance normalisation of an energy target; a dull year lowers the target, a sunny one
raises it).

Gaps
----
An hour's ``actual_energy_kwh`` sums only the 5-minute readings present (``n_readings`` of 12).
For every hour the missing share ``m = 1 - n_readings / 12`` of its pvlib expectation
``E_exp`` is *modelled*: ``E_mod = k * m * E_exp`` with ``k = sum(E_meas) / sum((1 - m) E_exp)``
the system's measured/expected ratio over the covered part of the same guarantee year (so a
degraded system is not credited with a healthy expectation). The modelled share
``sum(m E_exp) / sum(E_exp)`` is reported; above ``max_modelled_share`` (default 10 %) the
year is ``insufficient_data``. Hours of the year without any expectation (no weather, no
silver row) and fewer than 12 readings cannot be modelled: more than ``max_unmodelled_hours``
(default 0) of them also make the year ``insufficient_data``.

Verdicts
--------
``not_eligible`` (no installation photo with a well-formed SHA-256 on record; numbers are still
computed), ``insufficient_data`` (see above, or incomplete contract terms), ``met``
(``measured + modelled >= G_c``) or ``shortfall``, with ``shortfall_kwh = G_c - (measured +
modelled)`` and ``shortfall_eur = shortfall_kwh * guarantee_tariff_eur_per_kwh``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import polars as pl
import pyarrow as pa

from wattlake.numerics import round_floats

#: five-minute readings in a full hour
READINGS_PER_HOUR = 12
#: a photo proof counts only with a well-formed SHA-256 (64 hex digits)
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"

VERDICTS = ("met", "shortfall", "insufficient_data", "not_eligible")


@dataclass(frozen=True)
class GuaranteeParams:
    """Model parameters of the evaluation (recorded in every evidence pack's manifest).

    max_modelled_share : above this share of the year's expected energy modelled for gaps the
        year is ``insufficient_data`` [-].
    max_unmodelled_hours : above this many hours with neither full readings nor an expectation
        the year is ``insufficient_data`` [h].
    irradiation_basis : ``"ghi"``: the weather correction uses global horizontal irradiation.
    """

    max_modelled_share: float = 0.10
    max_unmodelled_hours: int = 0
    irradiation_basis: str = "ghi"

    def to_dict(self) -> dict:
        return asdict(self)


GUARANTEE_SCHEMA = pa.schema([
    pa.field("system_id", pa.string()),
    pa.field("insurer", pa.string()),
    pa.field("year_start", pa.date32()),
    pa.field("year_end", pa.date32()),            # last day of the guarantee year (inclusive)
    pa.field("guarantee_year", pa.int16()),       # 1 = the year starting on guarantee_start
    pa.field("days", pa.int16()),                 # 365 or 366
    pa.field("eligible", pa.bool_()),
    pa.field("photo_count", pa.int16()),
    pa.field("kwp", pa.float64()),
    pa.field("guaranteed_kwh", pa.float64()),
    pa.field("irradiation_basis", pa.string()),
    pa.field("reference_irradiation_kwh_m2", pa.float64()),
    pa.field("measured_irradiation_kwh_m2", pa.float64()),
    pa.field("weather_correction", pa.float64()),
    pa.field("corrected_guarantee_kwh", pa.float64()),
    pa.field("measured_kwh", pa.float64()),
    pa.field("modelled_kwh", pa.float64()),
    pa.field("total_kwh", pa.float64()),
    pa.field("expected_kwh", pa.float64()),
    pa.field("measured_expected_ratio", pa.float64()),
    pa.field("modelled_share", pa.float64()),
    pa.field("gap_hours", pa.int32()),
    pa.field("partial_hours", pa.int32()),
    pa.field("unmodelled_hours", pa.int32()),
    pa.field("estimated_weather_hours", pa.int32()),
    pa.field("data_completeness", pa.float64()),
    pa.field("performance_ratio", pa.float64()),
    pa.field("yield_ratio", pa.float64()),        # total / corrected guarantee
    pa.field("verdict", pa.string()),
    pa.field("verdict_reason", pa.string()),
    pa.field("shortfall_kwh", pa.float64()),
    pa.field("tariff_eur_per_kwh", pa.float64()),
    pa.field("shortfall_eur", pa.float64()),
])
"""Schema of ``gold/guarantee_evaluations`` (one row per system and completed guarantee year)."""

_SCHEMA = pl.Schema(pl.from_arrow(GUARANTEE_SCHEMA.empty_table()).schema)

#: the silver columns the evaluation reads
INTERVAL_COLUMNS = ("system_id", "ts_utc", "day", "actual_energy_kwh", "n_readings", "expected_energy_kwh",
                    "poa_irradiation_kwh_m2", "ghi_irradiation_kwh_m2", "night", "estimated")

DAILY_TERMS_SCHEMA = pl.Schema({
    "system_id": pl.String, "day": pl.Date, "measured_kwh": pl.Float64, "expected_kwh": pl.Float64,
    "covered_expected_kwh": pl.Float64, "gap_expected_kwh": pl.Float64, "ghi_kwh_m2": pl.Float64,
    "poa_kwh_m2": pl.Float64, "hours": pl.Int32, "daylight_hours": pl.Int32, "daylight_readings": pl.Int32,
    "gap_hours": pl.Int32, "partial_hours": pl.Int32, "unmodelled_hours": pl.Int32,
    "estimated_weather_hours": pl.Int32,
})


def daily_terms(intervals: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per system and UTC day, the sums the guarantee needs, from ``silver/pv_intervals`` hours.

    Parameters
    ----------
    intervals : rows with :data:`INTERVAL_COLUMNS`: ``actual_energy_kwh`` [kWh] (null: no reading),
        ``n_readings`` (0..12), ``expected_energy_kwh`` [kWh] (null: no weather), irradiation
        [kWh/m2], flags ``night`` and ``estimated``.

    Returns
    -------
    Frame with :data:`DAILY_TERMS_SCHEMA`, sorted by (system_id, day): ``measured_kwh`` (sum of
    readings), ``expected_kwh``, ``covered_expected_kwh`` = sum((1-m) E_exp),
    ``gap_expected_kwh`` = sum(m E_exp) with m the hour's missing share of readings,
    ``ghi_kwh_m2``/``poa_kwh_m2``, ``hours`` (silver rows), daylight hours and their readings,
    ``gap_hours`` (daylight, no reading), ``partial_hours`` (daylight, 1..11 readings),
    ``unmodelled_hours`` (rows with no expectation and fewer than 12 readings) and
    ``estimated_weather_hours``.
    """
    n = pl.col("n_readings").fill_null(0).clip(0, READINGS_PER_HOUR)
    miss = 1.0 - n / READINGS_PER_HOUR
    exp = pl.col("expected_energy_kwh")
    daylight = ~pl.col("night").fill_null(False)
    out = (
        intervals.lazy()
        .select(*INTERVAL_COLUMNS)
        .sort("system_id", "ts_utc")
        .group_by("system_id", "day", maintain_order=True)
        .agg(
            measured_kwh=pl.col("actual_energy_kwh").fill_null(0.0).sum(),
            expected_kwh=exp.fill_null(0.0).sum(),
            covered_expected_kwh=((1.0 - miss) * exp.fill_null(0.0)).sum(),
            gap_expected_kwh=(miss * exp.fill_null(0.0)).sum(),
            ghi_kwh_m2=pl.col("ghi_irradiation_kwh_m2").fill_null(0.0).sum(),
            poa_kwh_m2=pl.col("poa_irradiation_kwh_m2").fill_null(0.0).sum(),
            hours=pl.len().cast(pl.Int32),
            daylight_hours=daylight.sum().cast(pl.Int32),
            daylight_readings=n.filter(daylight).sum().cast(pl.Int32),
            gap_hours=(daylight & (n == 0)).sum().cast(pl.Int32),
            partial_hours=(daylight & (n > 0) & (n < READINGS_PER_HOUR)).sum().cast(pl.Int32),
            unmodelled_hours=(exp.is_null() & (n < READINGS_PER_HOUR)).sum().cast(pl.Int32),
            estimated_weather_hours=pl.col("estimated").fill_null(False).sum().cast(pl.Int32),
        )
        .sort("system_id", "day")
        .collect()
    )
    return round_floats(out.cast(dict(DAILY_TERMS_SCHEMA)))


def anniversary(start: pl.Expr, years: pl.Expr) -> pl.Expr:
    """``start`` + ``years`` whole years (Date); a 29 February start falls on 1 March in common years."""
    shifted = start.dt.offset_by(pl.format("{}y", years))
    feb29 = (start.dt.month() == 2) & (start.dt.day() == 29)
    clamped = feb29 & (shifted.dt.day() == 28)
    return pl.when(clamped).then(shifted + pl.duration(days=1)).otherwise(shifted)


def guarantee_years(systems: pl.DataFrame, first_day: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Every completed guarantee year that overlaps a system's data.

    Parameters
    ----------
    systems : ``system_id`` and ``guarantee_start`` (Date).
    first_day : ``system_id`` and ``first_day`` (the system's first day with a silver row).
    as_of : last day with data; only years ending on or before it are complete.

    Returns
    -------
    ``system_id``, ``guarantee_year`` (1-based), ``year_start``, ``year_end`` (inclusive), ``days``.
    """
    gs = pl.col("guarantee_start")
    return (
        systems.select("system_id", gs.cast(pl.Date))
        .filter(gs.is_not_null() & (gs <= as_of))
        .join(first_day, on="system_id", how="inner")
        .with_columns(k=pl.int_ranges(0, pl.lit(as_of.year) - gs.dt.year() + 1, dtype=pl.Int32))
        .explode("k")
        .with_columns(year_start=anniversary(gs, pl.col("k")),
                      year_end=anniversary(gs, pl.col("k") + 1) - pl.duration(days=1))
        .filter((pl.col("year_end") <= as_of) & (pl.col("year_end") >= pl.col("first_day")))
        .select("system_id", (pl.col("k") + 1).cast(pl.Int16).alias("guarantee_year"), "year_start",
                "year_end",
                ((pl.col("year_end") - pl.col("year_start")).dt.total_days() + 1).cast(pl.Int16).alias("days"))
        .sort("system_id", "year_start")
    )


def photo_proof(photos: pl.DataFrame) -> pl.DataFrame:
    """``system_id`` and ``photo_count``: photo rows whose ``sha256`` is 64 hex digits."""
    return (photos.filter(pl.col("sha256").fill_null("").str.strip_chars().str.contains(SHA256_PATTERN))
            .group_by("system_id").agg(photo_count=pl.len().cast(pl.Int16)))


def evaluate_guarantees(daily: pl.DataFrame, systems: pl.DataFrame, photos: pl.DataFrame,
                        as_of: dt.date | None = None,
                        params: GuaranteeParams = GuaranteeParams()) -> pl.DataFrame:
    """Verdict per system and completed guarantee year (:data:`GUARANTEE_SCHEMA`).

    Parameters
    ----------
    daily : output of :func:`daily_terms` (per system and UTC day).
    systems : registry rows: ``system_id``, ``insurer``, ``kwp`` [kWp], ``guarantee_start`` (Date),
        ``guarantee_kwh_per_year`` [kWh], ``guarantee_ref_irradiation_kwh_m2`` [kWh/m2],
        ``guarantee_tariff_eur_per_kwh`` [EUR/kWh] (the last two may be null or absent).
    photos : ``restricted/installation_photos`` rows (``system_id``, ``sha256``).
    as_of : last day with data (default: the last day in ``daily``).
    params : :class:`GuaranteeParams`.

    Returns
    -------
    One row per system and completed guarantee year overlapping its data, sorted by
    (system_id, year_start); see the module docstring for the method. Per row: ``measured_kwh``,
    ``modelled_kwh`` (gap fill), ``total_kwh`` = measured + modelled, ``expected_kwh`` (pvlib),
    ``measured_expected_ratio`` k, ``modelled_share``, hour counts, ``data_completeness``
    (daylight readings / 12 x daylight hours), ``performance_ratio`` (total / kWp / H_POA),
    ``weather_correction`` c, ``corrected_guarantee_kwh`` G_c, ``yield_ratio`` = total / G_c,
    ``verdict``, a human ``verdict_reason``, ``shortfall_kwh`` and ``shortfall_eur`` (0 when met,
    null without a verdict).
    """
    if as_of is None:
        as_of = daily.get_column("day").max() if daily.height else None
    if as_of is None:
        return pl.DataFrame(schema=_SCHEMA)
    sysf = systems.with_columns(
        *(pl.lit(None, dtype=pl.Float64).alias(c) for c in
          ("guarantee_ref_irradiation_kwh_m2", "guarantee_tariff_eur_per_kwh") if c not in systems.columns))
    first = daily.group_by("system_id").agg(first_day=pl.col("day").min())
    years = guarantee_years(sysf, first, as_of)
    if years.height == 0:
        return pl.DataFrame(schema=_SCHEMA)
    sums = (
        years.join(daily, on="system_id", how="inner")
        .filter(pl.col("day").is_between(pl.col("year_start"), pl.col("year_end")))
        .group_by("system_id", "year_start")
        .agg(
            pl.col("measured_kwh", "expected_kwh", "covered_expected_kwh", "gap_expected_kwh", "ghi_kwh_m2",
                   "poa_kwh_m2", "daylight_hours", "daylight_readings", "gap_hours", "partial_hours",
                   "unmodelled_hours", "estimated_weather_hours", "hours").sum(),
        )
    )
    terms = sysf.select(
        "system_id", "insurer", pl.col("kwp").cast(pl.Float64),
        pl.col("guarantee_kwh_per_year").cast(pl.Float64).alias("guaranteed_kwh"),
        pl.col("guarantee_ref_irradiation_kwh_m2").cast(pl.Float64).alias("reference_irradiation_kwh_m2"),
        pl.col("guarantee_tariff_eur_per_kwh").cast(pl.Float64).alias("tariff_eur_per_kwh"),
    )
    proof = photo_proof(photos)
    df = (
        years.join(sums, on=["system_id", "year_start"], how="left")
        .join(terms, on="system_id", how="left")
        .join(proof, on="system_id", how="left")
        .with_columns(
            pl.col("photo_count").fill_null(0).cast(pl.Int16),
            *(pl.col(c).fill_null(0) for c in ("measured_kwh", "expected_kwh", "covered_expected_kwh",
                                               "gap_expected_kwh", "ghi_kwh_m2", "poa_kwh_m2", "hours",
                                               "daylight_hours", "daylight_readings", "gap_hours",
                                               "partial_hours", "unmodelled_hours", "estimated_weather_hours")),
        )
        .with_columns(
            eligible=pl.col("photo_count") > 0,
            # hours with no silver row at all cannot be modelled either
            unmodelled_hours=(pl.col("unmodelled_hours") + 24 * pl.col("days").cast(pl.Int32)
                              - pl.col("hours")).cast(pl.Int32),
            measured_expected_ratio=pl.when(pl.col("covered_expected_kwh") > 0)
            .then(pl.col("measured_kwh") / pl.col("covered_expected_kwh")),
            modelled_share=pl.when(pl.col("expected_kwh") > 0)
            .then(pl.col("gap_expected_kwh") / pl.col("expected_kwh")).otherwise(1.0),
            measured_irradiation_kwh_m2=pl.col("ghi_kwh_m2"),
            irradiation_basis=pl.lit(params.irradiation_basis),
        )
        .with_columns(
            modelled_kwh=pl.col("measured_expected_ratio").fill_null(0.0) * pl.col("gap_expected_kwh"),
            weather_correction=pl.when(pl.col("reference_irradiation_kwh_m2") > 0)
            .then(pl.col("measured_irradiation_kwh_m2") / pl.col("reference_irradiation_kwh_m2")),
        )
        .with_columns(
            total_kwh=pl.col("measured_kwh") + pl.col("modelled_kwh"),
            corrected_guarantee_kwh=pl.col("guaranteed_kwh") * pl.col("weather_correction"),
        )
        .with_columns(
            yield_ratio=pl.when(pl.col("corrected_guarantee_kwh") > 0)
            .then(pl.col("total_kwh") / pl.col("corrected_guarantee_kwh")),
            performance_ratio=pl.when((pl.col("poa_kwh_m2") > 0) & (pl.col("kwp") > 0))
            .then(pl.col("total_kwh") / pl.col("kwp") / pl.col("poa_kwh_m2")),
            # readings in the daylight hours present, times the share of the year's hours present
            # (a year that started before the system's data is not "complete" over its first days)
            data_completeness=pl.when(pl.col("daylight_hours") > 0)
            .then(pl.col("daylight_readings") / (READINGS_PER_HOUR * pl.col("daylight_hours"))
                  * pl.col("hours") / (24 * pl.col("days").cast(pl.Int32))),
        )
    )
    too_modelled = pl.col("modelled_share") > params.max_modelled_share
    unmodelled = pl.col("unmodelled_hours") > params.max_unmodelled_hours
    no_terms = pl.col("corrected_guarantee_kwh").is_null()
    short = pl.col("total_kwh") < pl.col("corrected_guarantee_kwh")
    pct = lambda c: (pl.col(c) * 100).round(1).cast(pl.String)  # noqa: E731
    kwh = lambda c: pl.col(c).round(0).cast(pl.Int64).cast(pl.String)  # noqa: E731
    df = df.with_columns(
        verdict=pl.when(~pl.col("eligible")).then(pl.lit("not_eligible"))
        .when(unmodelled | too_modelled | no_terms).then(pl.lit("insufficient_data"))
        .when(short).then(pl.lit("shortfall"))
        .otherwise(pl.lit("met")),
        verdict_reason=pl.when(~pl.col("eligible")).then(pl.lit("no installation photo with a valid SHA-256 on record"))
        .when(unmodelled).then(pl.format("{} hours without readings or a model (limit {})", pl.col("unmodelled_hours"),
                                         pl.lit(params.max_unmodelled_hours)))
        .when(too_modelled).then(pl.format("{} % of the year's expected energy modelled for gaps (limit {} %)",
                                           pct("modelled_share"), pl.lit(round(100 * params.max_modelled_share, 1))))
        .when(no_terms).then(pl.lit("guarantee terms incomplete (reference irradiation missing)"))
        .when(short).then(pl.format("produced {} kWh < weather-corrected guarantee {} kWh",
                                    kwh("total_kwh"), kwh("corrected_guarantee_kwh")))
        .otherwise(pl.format("produced {} kWh >= weather-corrected guarantee {} kWh",
                             kwh("total_kwh"), kwh("corrected_guarantee_kwh"))),
    ).with_columns(
        shortfall_kwh=pl.when(pl.col("verdict") == "shortfall")
        .then(pl.col("corrected_guarantee_kwh") - pl.col("total_kwh"))
        .when(pl.col("verdict") == "met").then(0.0),
    ).with_columns(shortfall_eur=pl.col("shortfall_kwh") * pl.col("tariff_eur_per_kwh"))
    out = df.select(list(_SCHEMA.names())).cast(dict(_SCHEMA)).sort("system_id", "year_start")
    return round_floats(out)


def monthly_breakdown(daily: pl.DataFrame, evaluation: dict) -> pl.DataFrame:
    """Month by month of one guarantee year: production vs the weather-corrected guarantee.

    ``guarantee_kwh`` of a month = G * H_month / H_ref (its share of the corrected guarantee, so
    the months add up to G_c); ``modelled_kwh`` = k * the month's gap expectation.
    """
    g = evaluation["guaranteed_kwh"] or 0.0
    ref = evaluation["reference_irradiation_kwh_m2"]
    k = evaluation["measured_expected_ratio"] or 0.0
    d = daily.filter((pl.col("system_id") == evaluation["system_id"])
                     & pl.col("day").is_between(evaluation["year_start"], evaluation["year_end"]))
    out = (
        d.with_columns(month=pl.col("day").dt.truncate("1mo"))
        .group_by("month", maintain_order=True)
        .agg(pl.col("measured_kwh", "gap_expected_kwh", "expected_kwh", "ghi_kwh_m2", "gap_hours").sum(),
             days=pl.len().cast(pl.Int32))
        .with_columns(modelled_kwh=k * pl.col("gap_expected_kwh"))
        .with_columns(total_kwh=pl.col("measured_kwh") + pl.col("modelled_kwh"),
                      guarantee_kwh=(g * pl.col("ghi_kwh_m2") / ref) if ref else pl.lit(None, dtype=pl.Float64))
        .select("month", "days", "measured_kwh", "modelled_kwh", "total_kwh", "expected_kwh", "ghi_kwh_m2",
                "guarantee_kwh", "gap_hours")
        .sort("month")
    )
    return round_floats(out)
