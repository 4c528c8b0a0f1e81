"""Research releases: anonymised per-home performance and consumption for one partner and period.

A release is cut in two steps so an operator can look before anything leaves the company:

1. :func:`plan_release` reads the lake at pinned Delta versions, selects the eligible homes
   (``consent_research`` true AND NOT ``restricted`` AND NOT ``objected``; a missing flag counts
   against sharing), computes the sensitive values per home, anonymises the quasi-identifiers
   (:mod:`wattlake.anonymise`: Mondrian, k-anonymity + distinct l-diversity) and aggregates the
   hourly time series per equivalence class. Nothing is written.
2. :func:`write_release` checks that the partner has a data-sharing agreement in force
   (``governance/research_agreements``, :func:`register_agreement`; :func:`agreement_for`) and
   writes ``exports/research/<partner>/<release>/`` (local or S3, via
   :mod:`wattlake.exports`): ``homes.parquet``, ``class_timeseries.parquet``, ``README.txt`` and
   ``manifest.json``, then records the release in ``restricted/privacy_audit`` with the keyed
   pseudonyms of the released subjects (so an erasure can list the releases that included one).

Sensitive values per home (period = UTC days ``start..end`` inclusive):

``production_kwh_per_kwp`` [kWh/kWp]
    sum of ``gold/system_daily.actual_kwh`` (AC, inverter) over the period / registry kWp.
``consumption_kwh`` [kWh]
    household consumption behind the meter = grid import - grid export + PV production, where
    import/export are the sums of the positive increments of the DSMR counters (tariff 1 + 2) in
    ``bronze/meter_readings`` (a counter reset contributes nothing, not a negative jump), and PV
    production is the AC energy above. Includes EV charger and heat pump.
``performance_ratio`` [-]
    IEC 61724-1 period PR: sum(actual_kwh) / sum(reference_yield_h x kWp) over the days on which
    both are known (energy-weighted, not the mean of daily PRs).
``alert_count`` [-]
    rows of ``gold/underperformance_alerts`` of the home whose episode overlaps the period.

Distinct l-diversity is enforced on quantile bins of production per kWp and of consumption
(``*_bin`` columns; bin edges in the manifest). Time series leave only as per-class hourly means
(``production_kwh_per_kwp_mean`` from ``silver/pv_intervals``, ``consumption_kwh_mean`` from the
meter increments + PV), and an hour's mean is published only when at least ``k`` homes of the
class have a value for it. No identifier (system, subject, serial, meter), coordinate, full
postcode or per-home time series is ever written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import polars as pl

from wattlake import anonymise as A
from wattlake import tables as T
from wattlake.audit import RELEASED_SUBJECT_REFS, AuditEntry, record
from wattlake.exports import ExportRoot, code_version
from wattlake.keys import pseudonym
from wattlake.lake import Lake
from wattlake.modelling import day_chunks

DEFAULT_K = 10
DEFAULT_L = 3
DEFAULT_MAX_SUPPRESSION = 0.5
DEFAULT_BINS = 5

#: binned sensitive columns on which distinct l-diversity is enforced
L_COLUMNS = ("production_kwh_per_kwp_bin", "consumption_kwh_bin")
#: sensitive columns of the per-home table
SENSITIVE = ("production_kwh_per_kwp", "consumption_kwh", "performance_ratio", "alert_count", *L_COLUMNS)

DEFINITIONS = {
    "row_id": "random identifier of the row, new in every release (not linkable across releases)",
    "class_id": "equivalence class: homes with identical quasi-identifiers; key of class_timeseries.parquet",
    "production_kwh_per_kwp": "AC energy produced over the period [kWh] / installed power [kWp] "
                              "(sum of gold/system_daily.actual_kwh / kWp)",
    "consumption_kwh": "household consumption over the period [kWh] = grid import - grid export + PV "
                       "production (DSMR counters tariff 1+2, positive increments only; includes EV "
                       "charger and heat pump)",
    "performance_ratio": "IEC 61724-1 performance ratio of the period: sum(actual kWh) / sum(reference "
                         "yield h x kWp) over days with both known",
    "alert_count": "underperformance alert episodes of the home overlapping the period",
    "production_kwh_per_kwp_bin": "quantile bin of production_kwh_per_kwp (l-diversity column)",
    "consumption_kwh_bin": "quantile bin of consumption_kwh (l-diversity column)",
}
SERIES_DEFINITIONS = {
    "class_id": "equivalence class (see homes.parquet)",
    "ts_utc": "start of the UTC hour",
    "production_kwh_per_kwp_mean": "mean over the class's homes of the hour's AC energy per kWp [kWh/kWp] "
                                   "(silver/pv_intervals.actual_energy_kwh / kWp); null when fewer than k homes "
                                   "have a value",
    "production_n_homes": "homes of the class with a production value in the hour",
    "consumption_kwh_mean": "mean over the class's homes of the hour's consumption [kWh] (import - export + "
                            "PV); null when fewer than k homes have a value",
    "consumption_n_homes": "homes of the class with a complete consumption value in the hour",
}

SOURCE_TABLES = (T.SYSTEMS.name, T.SUBJECTS.name, T.SYSTEM_DAILY.name, T.ALERTS.name, T.PV_INTERVALS.name,
                 T.METER_READINGS.name)

_PARTNER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ReleaseError(ValueError):
    """A release cannot be cut (missing tables, too few eligible homes, no agreement, ...)."""


class ReleaseArgumentError(ReleaseError):
    """The release was asked for wrongly (partner name, period, k, l or suppression limit)."""


@dataclass(frozen=True)
class Period:
    """UTC calendar days ``start..end``, both included."""

    start: dt.date
    end: dt.date

    @classmethod
    def parse(cls, text: str) -> "Period":
        """``"2025-01-01:2025-12-31"``."""
        try:
            a, b = text.split(":")
            p = cls(dt.date.fromisoformat(a.strip()), dt.date.fromisoformat(b.strip()))
        except ValueError as exc:
            raise ReleaseArgumentError(f"period {text!r}: expected START:END as YYYY-MM-DD:YYYY-MM-DD") from exc
        if p.end < p.start:
            raise ReleaseArgumentError(f"period {text!r}: end before start")
        return p

    def __str__(self) -> str:
        return f"{self.start}:{self.end}"


# ------------------------------------------------------------------------------------------
# data-sharing agreements
# ------------------------------------------------------------------------------------------
class AgreementError(ReleaseError):
    """No data-sharing agreement allows this release (none, expired, not yet valid, revoked, k)."""


_AGREEMENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")


def agreements(lake: Lake) -> pl.DataFrame:
    """Every registered agreement, by partner and start (``governance/research_agreements``)."""
    spec = T.RESEARCH_AGREEMENTS
    if not lake.exists(spec.name):
        return pl.DataFrame(schema=spec.polars_schema)
    return lake.read(spec.name).sort("partner", "valid_from", "agreement_ref")


def register_agreement(lake: Lake, partner: str, agreement_ref: str, purpose: str, valid_until: dt.date,
                       valid_from: dt.date | None = None, min_k: int = DEFAULT_K) -> dict:
    """Record (or amend, same partner and ref) a data-sharing agreement; returns its row.

    ``agreement_ref`` is the contract's reference (e.g. ``DSA-2025-07``), ``purpose`` what the
    partner may use the data for, ``valid_from..valid_until`` the UTC days it is in force,
    ``min_k`` the smallest k the partner may receive. Amending an agreement lifts a revocation.
    """
    from wattlake.audit import operator

    if not _PARTNER.match(partner or ""):
        raise AgreementError(f"partner {partner!r}: use lowercase letters, digits, '.', '_' or '-' (max 64)")
    if not _AGREEMENT_REF.match(agreement_ref or ""):
        raise AgreementError("agreement reference: letters, digits, '.', '_', '/' or '-' (max 64)")
    purpose = (purpose or "").strip()
    if not purpose or len(purpose) > 300:
        raise AgreementError("purpose: say what the partner may use the data for (1-300 characters)")
    valid_from = valid_from or dt.datetime.now(dt.UTC).date()
    if valid_until < valid_from:
        raise AgreementError(f"valid until {valid_until} is before valid from {valid_from}")
    if min_k < 2:
        raise AgreementError(f"min k must be >= 2 (got {min_k})")
    spec = T.RESEARCH_AGREEMENTS
    row = pl.DataFrame({
        "partner": [partner], "agreement_ref": [agreement_ref], "purpose": [purpose], "min_k": [min_k],
        "valid_from": [valid_from], "valid_until": [valid_until], "registered_at_utc": [dt.datetime.now(dt.UTC)],
        "registered_by": [operator()], "revoked_at_utc": [None],
    }, schema=spec.polars_schema)
    lake.merge_upsert(spec.name, row, spec.keys, spec.schema, partition_by=None,
                      updates={c: f"s.{c}" for c in spec.schema.names if c not in spec.keys},
                      configuration=spec.configuration)
    return row.row(0, named=True)


def revoke_agreement(lake: Lake, partner: str, agreement_ref: str) -> bool:
    """Revoke an agreement from now on; returns False when there is no such agreement. Releases
    written before stay recorded; no new one is written under it."""
    spec = T.RESEARCH_AGREEMENTS
    rows = agreements(lake).filter((pl.col("partner") == partner) & (pl.col("agreement_ref") == agreement_ref))
    if rows.height == 0:
        return False
    rows = rows.with_columns(pl.lit(dt.datetime.now(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("revoked_at_utc"))
    lake.merge_upsert(spec.name, rows, spec.keys, spec.schema, partition_by=None,
                      updates={"revoked_at_utc": "s.revoked_at_utc"}, configuration=spec.configuration)
    return True


def agreement_for(lake: Lake, partner: str, k: int, on: dt.date | None = None) -> dict:
    """The agreement under which ``partner`` may receive a release at ``k`` on day ``on`` (UTC
    today): in force that day, not revoked, ``min_k <= k``; the latest such one. Raises
    :class:`AgreementError` saying why none does."""
    on = on or dt.datetime.now(dt.UTC).date()
    mine = agreements(lake).filter(pl.col("partner") == partner)
    hint = (f"register one: wattlake agreements add --partner {partner} --ref REF --purpose TEXT "
            "--until YYYY-MM-DD")
    if mine.height == 0:
        raise AgreementError(f"no data-sharing agreement with {partner} on record ({hint})")
    live = mine.filter(pl.col("revoked_at_utc").is_null())
    current = live.filter((pl.col("valid_from") <= on) & (pl.col("valid_until") >= on))
    allowed = current.filter(pl.col("min_k") <= k)
    if allowed.height:
        return allowed.sort("valid_until", "agreement_ref").row(-1, named=True)
    if current.height:
        need = current.get_column("min_k").min()
        raise AgreementError(f"the agreement with {partner} requires k >= {need} (asked k={k})")
    if live.height == 0:
        raise AgreementError(f"every agreement with {partner} is revoked ({hint})")
    latest = live.sort("valid_until").row(-1, named=True)
    if latest["valid_until"] < on:
        raise AgreementError(f"the agreement with {partner} ({latest['agreement_ref']}) expired on "
                             f"{latest['valid_until']} ({hint})")
    upcoming = live.filter(pl.col("valid_from") > on).sort("valid_from").row(0, named=True)
    raise AgreementError(f"the agreement with {partner} ({upcoming['agreement_ref']}) is in force from "
                         f"{upcoming['valid_from']}, not yet on {on}")


# ------------------------------------------------------------------------------------------
# pure computations
# ------------------------------------------------------------------------------------------
def eligible_systems(systems: pl.DataFrame, subjects: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Registry rows of the subjects who consented and neither restricted nor objected.

    Returns the rows and the exclusion counts (systems of non-consenting, restricted and
    objecting subjects; a subject may be counted under more than one reason).
    """
    flags = subjects.select("subject_id", "consent_research", "restricted", "objected")
    joined = systems.join(flags, on="subject_id", how="left")
    consent = pl.col("consent_research").fill_null(False)
    restricted = pl.col("restricted").fill_null(True)
    objected = pl.col("objected").fill_null(True)
    counts = joined.select(
        pl.len().alias("systems"),
        (~consent).sum().alias("excluded_no_consent"),
        restricted.sum().alias("excluded_restricted"),
        objected.sum().alias("excluded_objected"),
    ).row(0, named=True)
    eligible = joined.filter(consent & ~restricted & ~objected).drop("consent_research", "restricted", "objected")
    counts["eligible"] = eligible.height
    return eligible, {k: int(v) for k, v in counts.items()}


def meter_increments(meter: pl.DataFrame) -> pl.DataFrame:
    """Per reading: import and export energy since the previous reading of the same meter [kWh].

    Counter increments of tariffs 1 and 2 are taken separately and clipped at zero (a reset or
    meter swap adds nothing). ``hour_utc`` is the UTC hour the interval starts in and
    ``interval_s`` its length; the first reading of each system has no interval.
    """
    m = meter.sort("system_id", "ts_utc")
    inc = lambda c: pl.col(c).diff().over("system_id").clip(lower_bound=0.0)  # noqa: E731
    return m.select(
        "system_id",
        pl.col("ts_utc").shift(1).over("system_id").dt.truncate("1h").alias("hour_utc"),
        (pl.col("ts_utc") - pl.col("ts_utc").shift(1).over("system_id")).dt.total_seconds().alias("interval_s"),
        (inc("imported_t1_kwh") + inc("imported_t2_kwh")).alias("import_kwh"),
        (inc("exported_t1_kwh") + inc("exported_t2_kwh")).alias("export_kwh"),
    ).filter(pl.col("interval_s").is_not_null())


def grid_by_home(increments: pl.DataFrame) -> pl.DataFrame:
    """Per home: ``import_kwh``, ``export_kwh`` [kWh] summed over :func:`meter_increments` rows.

    Also accepts its own output (partial sums of several chunks), which it sums again.
    """
    return increments.group_by("system_id").agg(pl.col("import_kwh").sum(), pl.col("export_kwh").sum())


def grid_by_hour(increments: pl.DataFrame) -> pl.DataFrame:
    """Per home and UTC hour: ``import_kwh``, ``export_kwh`` [kWh] and ``covered_s`` [s], the summed
    length of the intervals (of at most an hour) that start in the hour.

    Also accepts its own output (partial sums of several chunks: an interval starting in the last
    hour of one chunk is counted by the next), which it sums again.
    """
    if "covered_s" not in increments.columns:
        increments = increments.filter(pl.col("interval_s") <= 3600).rename({"interval_s": "covered_s"})
    return increments.group_by("system_id", "hour_utc").agg(
        pl.col("import_kwh").sum(), pl.col("export_kwh").sum(), pl.col("covered_s").sum())


def home_values(homes: pl.DataFrame, daily: pl.DataFrame, alerts: pl.DataFrame, increments: pl.DataFrame,
                period: Period) -> pl.DataFrame:
    """The sensitive values of every home (see the module docstring for the definitions).

    Parameters
    ----------
    homes : registry rows with ``system_id`` and ``kwp`` [kWp].
    daily : ``gold/system_daily`` rows of the period (``system_id``, ``actual_kwh`` [kWh],
        ``reference_yield_h`` [h]).
    alerts : ``gold/underperformance_alerts`` rows (``system_id``, ``first_day``, ``last_day``).
    increments : :func:`meter_increments` of the period's meter readings, or their per-home sums
        (:func:`grid_by_home`).

    Returns
    -------
    One row per home with data in the period: ``system_id``, ``production_kwh_per_kwp``,
    ``consumption_kwh``, ``performance_ratio``, ``alert_count``.
    """
    kwp = homes.select("system_id", "kwp")
    prod = (daily.join(kwp, on="system_id").group_by("system_id").agg(
        pl.col("actual_kwh").sum().alias("production_kwh"),
        pl.col("actual_kwh").is_not_null().sum().alias("production_days"),
        pl.col("actual_kwh").filter(pl.col("reference_yield_h").is_not_null()).sum().alias("_pr_num"),
        (pl.col("reference_yield_h") * pl.col("kwp")).filter(pl.col("actual_kwh").is_not_null()).sum().alias("_pr_den"),
    ))
    grid = grid_by_home(increments)
    overlapping = alerts.filter((pl.col("first_day") <= period.end) & (pl.col("last_day") >= period.start))
    n_alerts = overlapping.group_by("system_id").agg(pl.len().cast(pl.Int64).alias("alert_count"))
    out = (kwp.join(prod, on="system_id", how="inner").join(grid, on="system_id", how="inner")
           .join(n_alerts, on="system_id", how="left")
           .filter(pl.col("production_days") > 0))
    return out.select(
        "system_id",
        (pl.col("production_kwh") / pl.col("kwp")).round(1).alias("production_kwh_per_kwp"),
        (pl.col("import_kwh") - pl.col("export_kwh") + pl.col("production_kwh")).round(0).alias("consumption_kwh"),
        pl.when(pl.col("_pr_den") > 0).then(pl.col("_pr_num") / pl.col("_pr_den")).round(3).alias("performance_ratio"),
        pl.col("alert_count").fill_null(0),
    )


def hourly_home_series(homes: pl.DataFrame, pv: pl.DataFrame, increments: pl.DataFrame) -> pl.DataFrame:
    """Per home and UTC hour: production per kWp and consumption (internal; never released).

    ``pv``: ``silver/pv_intervals`` rows (``system_id``, ``ts_utc``, ``actual_energy_kwh``,
    ``night``); a night hour without readings counts as 0 kWh. ``increments``: the meter's
    :func:`meter_increments`, or their hourly sums (:func:`grid_by_hour`). Consumption needs a full
    hour of meter increments (>= 59 min covered) and the hour's PV energy.
    """
    kwp = homes.select("system_id", "kwp")
    prod = pv.join(kwp, on="system_id").select(
        "system_id", "ts_utc",
        pl.when(pl.col("actual_energy_kwh").is_null() & pl.col("night").fill_null(False)).then(0.0)
        .otherwise(pl.col("actual_energy_kwh")).alias("pv_kwh"),
        "kwp",
    )
    grid = (grid_by_hour(increments)
            .filter(pl.col("covered_s") >= 3540)
            .drop("covered_s")
            .rename({"hour_utc": "ts_utc"}))
    return prod.join(grid, on=["system_id", "ts_utc"], how="full", coalesce=True).select(
        "system_id", "ts_utc",
        (pl.col("pv_kwh") / pl.col("kwp")).alias("production_kwh_per_kwp"),
        (pl.col("import_kwh") - pl.col("export_kwh") + pl.col("pv_kwh")).alias("consumption_kwh"),
    )


def class_series(hourly: pl.DataFrame, classes: pl.DataFrame, k: int) -> pl.DataFrame:
    """Hourly means per equivalence class; a mean over fewer than ``k`` homes is withheld (null).

    ``classes``: ``system_id``, ``class_id`` of the released homes only.
    """
    joined = hourly.join(classes, on="system_id", how="inner")
    agg = joined.group_by("class_id", "ts_utc").agg(
        pl.col("production_kwh_per_kwp").mean().alias("production_kwh_per_kwp_mean"),
        pl.col("production_kwh_per_kwp").is_not_null().sum().cast(pl.Int32).alias("production_n_homes"),
        pl.col("consumption_kwh").mean().alias("consumption_kwh_mean"),
        pl.col("consumption_kwh").is_not_null().sum().cast(pl.Int32).alias("consumption_n_homes"),
    )
    return agg.select(
        "class_id", "ts_utc",
        pl.when(pl.col("production_n_homes") >= k).then(pl.col("production_kwh_per_kwp_mean").round(6))
        .alias("production_kwh_per_kwp_mean"),
        "production_n_homes",
        pl.when(pl.col("consumption_n_homes") >= k).then(pl.col("consumption_kwh_mean").round(6))
        .alias("consumption_kwh_mean"),
        "consumption_n_homes",
    ).sort("class_id", "ts_utc")


# ------------------------------------------------------------------------------------------
# reading the lake
# ------------------------------------------------------------------------------------------
def _read(lake: Lake, table: str, version: int | None, columns: list[str], period: Period | None = None,
          systems: list[str] | None = None) -> pl.DataFrame:
    """Columns of a table at a pinned version; the day and system filters go into the scan."""
    lf = lake.scan(table, version)
    if period is not None:
        lf = lf.filter(pl.col("day").is_between(period.start, period.end))
    if systems is not None:
        lf = lf.filter(pl.col("system_id").is_in(systems))
    return lf.select(columns).collect()


@dataclass
class Sources:
    """The inputs of a release, read at pinned Delta versions."""

    versions: dict[str, int | None]
    systems: pl.DataFrame
    subjects: pl.DataFrame
    daily: pl.DataFrame
    alerts: pl.DataFrame
    #: the meter readings reduced as they are read, month by month: per-home sums
    #: (:func:`grid_by_home`) and per-home-hour sums (:func:`grid_by_hour`); the readings
    #: themselves are never all in memory
    grid_homes: pl.DataFrame
    grid_hours: pl.DataFrame
    meter_readings: int = 0


def load_sources(lake: Lake, period: Period, progress: Callable[[str], None] | None = None) -> Sources:
    """Read everything a release needs (only the columns it uses; subjects: ids and flags only)."""
    say = progress or (lambda _m: None)
    versions = {t: lake.version(t) for t in SOURCE_TABLES}
    for t in (T.SYSTEMS.name, T.SUBJECTS.name, T.SYSTEM_DAILY.name, T.PV_INTERVALS.name, T.METER_READINGS.name):
        if versions[t] is None:
            raise ReleaseError(f"table {t} does not exist in {lake.describe()}: land and model the data first")
    systems = _read(lake, T.SYSTEMS.name, versions[T.SYSTEMS.name],
                    ["system_id", "subject_id", "postcode", "kwp", "tilt_deg", "azimuth_deg", "inverter_brand",
                     "inverter_model", "install_date", "has_ev_charger", "has_heat_pump"])
    subjects = _read(lake, T.SUBJECTS.name, versions[T.SUBJECTS.name],
                     ["subject_id", "consent_research", "restricted", "objected"])
    eligible, _ = eligible_systems(systems, subjects)
    ids = eligible["system_id"].to_list()
    say(f"  registry: {systems.height} systems, {len(ids)} eligible (consenting, not restricted, not objecting)")
    daily = _read(lake, T.SYSTEM_DAILY.name, versions[T.SYSTEM_DAILY.name],
                  ["system_id", "day", "actual_kwh", "reference_yield_h"], period, ids)
    if versions[T.ALERTS.name] is not None:
        alerts = _read(lake, T.ALERTS.name, versions[T.ALERTS.name], ["system_id", "first_day", "last_day"],
                       None, ids)
    else:
        alerts = pl.DataFrame(schema={"system_id": pl.String, "first_day": pl.Date, "last_day": pl.Date})
    homes_parts, hours_parts, n_meter, carry = [], [], 0, None
    for a, b in day_chunks(period.start, period.end):  # loop over months, not readings
        chunk = _read(lake, T.METER_READINGS.name, versions[T.METER_READINGS.name], list(METER_COLUMNS),
                      Period(a, b), ids)
        n_meter += chunk.height
        # the last reading of each meter before this month opens its first interval
        frame = chunk if carry is None else pl.concat([carry, chunk])
        increments = meter_increments(frame)
        homes_parts.append(grid_by_home(increments))
        hours_parts.append(grid_by_hour(increments))
        carry = frame.sort("system_id", "ts_utc").group_by("system_id", maintain_order=True).last()
    grid_homes = grid_by_home(pl.concat(homes_parts)) if homes_parts else grid_by_home(_no_increments())
    grid_hours = grid_by_hour(pl.concat(hours_parts)) if hours_parts else grid_by_hour(_no_increments())
    say(f"  read {daily.height:,} system-days and {n_meter:,} meter readings (PV hours: month by month, "
        "for the released homes)")
    return Sources(versions, systems, subjects, daily, alerts, grid_homes, grid_hours, n_meter)


#: days of PV hours and grid sums per step of :func:`release_series`
SERIES_CHUNK_DAYS = 31
#: the silver/pv_intervals columns the series use
PV_COLUMNS = ("system_id", "ts_utc", "actual_energy_kwh", "night")


def release_series(lake: Lake, src: Sources, homes: pl.DataFrame, classes: pl.DataFrame, period: Period,
                   k: int) -> pl.DataFrame:
    """The hourly class series of a release (:func:`class_series` of :func:`hourly_home_series`), built
    month by month: one month of PV hours (silver at the pinned version, released homes only) and of
    per-home-hour grid sums at a time, so memory does not grow with fleet x period. The same rows as
    the whole period at once, since each (class, hour) group lies in one month.

    ``homes``: registry rows with ``system_id`` and ``kwp`` [kWp]; ``classes``: ``system_id``,
    ``class_id`` of the released homes.
    """
    ids = classes["system_id"].to_list()
    chunks = day_chunks(period.start, period.end, SERIES_CHUNK_DAYS)
    hour_day = pl.col("hour_utc").dt.date()
    parts = []
    for i, (a, b) in enumerate(chunks):  # loop over months, not rows
        pv = _read(lake, T.PV_INTERVALS.name, src.versions[T.PV_INTERVALS.name], list(PV_COLUMNS), Period(a, b), ids)
        # every grid hour goes to exactly one month (the first and last take any before / after)
        in_month = pl.lit(True)
        if i > 0:
            in_month &= hour_day >= a
        if i < len(chunks) - 1:
            in_month &= hour_day <= b
        parts.append(class_series(hourly_home_series(homes, pv, src.grid_hours.filter(in_month)), classes, k))
    return pl.concat(parts).sort("class_id", "ts_utc")


#: the meter columns a release uses
METER_COLUMNS = ("system_id", "ts_utc", "imported_t1_kwh", "imported_t2_kwh", "exported_t1_kwh", "exported_t2_kwh")


def _no_increments() -> pl.DataFrame:
    return meter_increments(pl.DataFrame(schema={"system_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"),
                                                 **{c: pl.Float64 for c in METER_COLUMNS[2:]}}))


# ------------------------------------------------------------------------------------------
# plan and write
# ------------------------------------------------------------------------------------------
@dataclass
class ReleasePlan:
    """Everything a release would publish, computed but not yet written."""

    partner: str
    release_id: str
    period: Period
    k: int
    l: int
    max_suppression: float
    result: A.Anonymisation
    baseline: A.Anonymisation
    homes: pl.DataFrame          # the per-home table exactly as it will be written
    series: pl.DataFrame         # class time series exactly as it will be written
    bins: dict[str, list[float]]
    counts: dict[str, int]
    versions: dict[str, int | None]
    released_subjects: list[str] = field(repr=False, default_factory=list)  # in memory only, never written
    seconds: dict[str, float] = field(default_factory=dict)
    agreement: dict | None = None  # set by write_release (agreement_for) just before writing

    def summary(self) -> dict:
        return {
            "partner": self.partner, "release_id": self.release_id, "period": str(self.period),
            "k": self.k, "l": self.l, "achieved_k": self.result.achieved_k, "achieved_l": self.result.achieved_l,
            **self.counts, "method": self.result.method,
            "ncp": round(self.result.ncp, 4), "baseline_ncp": round(self.baseline.ncp, 4),
            "discernibility": self.result.discernibility, "baseline_discernibility": self.baseline.discernibility,
            "baseline_suppressed": self.baseline.n_suppressed,
        }


def new_release_id(period: Period) -> str:
    return f"rel_{period.start:%Y%m%d}_{period.end:%Y%m%d}_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_" \
           f"{secrets.token_hex(3)}"


def plan_release(lake: Lake, partner: str, period: Period | str, k: int = DEFAULT_K, l: int = DEFAULT_L,
                 max_suppression: float = DEFAULT_MAX_SUPPRESSION, n_bins: int = DEFAULT_BINS,
                 progress: Callable[[str], None] | None = None) -> ReleasePlan:
    """Compute a release (nothing is written). Raises :class:`ReleaseError` when it cannot be cut."""
    say = progress or (lambda _m: None)
    if not _PARTNER.match(partner or ""):
        raise ReleaseArgumentError(f"partner {partner!r}: use lowercase letters, digits, '.', '_' or '-' (max 64)")
    period = Period.parse(period) if isinstance(period, str) else period
    if k < 2 or l < 1:
        raise ReleaseArgumentError(f"k must be >= 2 and l >= 1 (got k={k}, l={l})")
    if not 0.0 <= max_suppression <= 1.0:
        raise ReleaseArgumentError(f"max_suppression must be in [0, 1] (got {max_suppression})")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    say(f"reading sources for {period} from {lake.describe()}")
    src = load_sources(lake, period, say)
    seconds["read"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    eligible, counts = eligible_systems(src.systems, src.subjects)
    values = home_values(eligible, src.daily, src.alerts, src.grid_homes, period)
    homes = A.home_quasi_identifiers(eligible.join(values, on="system_id", how="inner"))
    counts["excluded_no_data"] = counts["eligible"] - homes.height
    say(f"  {homes.height} eligible homes with data in the period ({counts['excluded_no_data']} without)")
    if homes.height < k:
        raise ReleaseError(f"only {homes.height} eligible homes with data in {period}: fewer than k={k}; "
                           "no release (lower k or widen the period)")
    bins: dict[str, list[float]] = {}
    for col in ("production_kwh_per_kwp", "consumption_kwh"):
        labels, edges = A.quantile_bins(homes[col], n_bins)
        homes = homes.with_columns(labels)
        bins[f"{col}_bin"] = edges
    seconds["values"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    say(f"anonymising {homes.height} homes: k={k}, l={l} (distinct, on {', '.join(L_COLUMNS)}), "
        f"suppression limit {max_suppression:.0%}")
    try:
        result = A.anonymise(homes, A.HOME_QIS, L_COLUMNS, k=k, l=l, max_suppression=max_suppression)
    except A.AnonymisationError as exc:
        raise ReleaseError(f"cannot anonymise: {exc}") from exc
    baseline = A.naive_baseline(homes, A.HOME_QIS, L_COLUMNS, k=k, l=l)
    seconds["anonymise"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    released = result.table.filter(~pl.col("suppressed"))
    rng = np.random.default_rng()
    row_ids = [secrets.token_hex(6) for _ in range(released.height)]
    shuffled = released.with_columns(pl.Series("_order", rng.permutation(released.height)),
                                     pl.Series("row_id", row_ids))
    per_home = (shuffled.sort("class_id", "_order")
                .select("row_id", "class_id", *result.quasi_identifiers, *SENSITIVE))
    series = release_series(lake, src, eligible, released.select("system_id", "class_id"), period, k)
    seconds["series"] = time.perf_counter() - t3

    counts.update({"homes_with_data": homes.height, "released": released.height,
                   "suppressed": result.n_suppressed, "classes": result.n_classes})
    say(f"  {result.method}: {result.n_classes} classes, {released.height} released, {result.n_suppressed} "
        f"suppressed; NCP {result.ncp:.3f} (baseline {baseline.ncp:.3f}, {baseline.n_suppressed} suppressed)")
    return ReleasePlan(partner, new_release_id(period), period, k, l, max_suppression, result, baseline,
                       per_home, series, bins, counts, src.versions, released["subject_id"].to_list(), seconds)


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=False)
    return buf.getvalue()


def _loss(r: A.Anonymisation) -> dict:
    return {"method": r.method, "ncp": round(r.ncp, 6), "ncp_per_qi": {q: round(v, 6) for q, v in r.ncp_per_qi.items()},
            "discernibility": r.discernibility, "suppressed": r.n_suppressed, "classes": r.n_classes}


def manifest(plan: ReleasePlan, files: list[dict], created_at: dt.datetime) -> dict:
    """The release's ``manifest.json`` content (``files``: ``[{path, sha256}]`` of the data files)."""
    r = plan.result
    classes = (plan.homes.group_by("class_id", *r.quasi_identifiers).agg(pl.len().alias("n_homes"))
               .sort("class_id").to_dicts())
    return {
        "release_id": plan.release_id,
        "partner": plan.partner,
        "agreement": None if plan.agreement is None else {
            "ref": plan.agreement["agreement_ref"], "purpose": plan.agreement["purpose"],
            "valid_from": str(plan.agreement["valid_from"]), "valid_until": str(plan.agreement["valid_until"]),
            "min_k": plan.agreement["min_k"]},
        "period": {"start": str(plan.period.start), "end": str(plan.period.end), "timezone": "UTC"},
        "created_at_utc": created_at.isoformat(),
        "code_version": code_version(),
        "k": plan.k,
        "l": plan.l,
        "achieved": {"k": r.achieved_k, "l": r.achieved_l},
        "quasi_identifiers": list(r.quasi_identifiers),
        "sensitive": list(SENSITIVE),
        "l_diversity": {"measure": "distinct", "columns": list(L_COLUMNS),
                        "bins": {c: {"method": "quantiles of the eligible homes", "edges": e}
                                 for c, e in plan.bins.items()}},
        "generalisation": {
            "algorithm": r.method,
            "description": "Mondrian multidimensional partitioning (LeFevre et al. 2006) over the QI "
                           "hierarchies; each class publishes its members' range (numeric QIs) or lowest "
                           "common ancestor (hierarchies); best of the variants below by NCP",
            "hierarchies": A.hierarchies(A.HOME_QIS),
            "levels": A.generalisation_levels(r, A.HOME_QIS),
            "classes": classes,
        },
        "suppression": {"suppressed": r.n_suppressed, "limit": plan.max_suppression,
                        "records": r.n_records},
        "information_loss": {
            "metrics": {"ncp": "normalized certainty penalty (Xu et al. 2006), mean over homes and QIs, "
                               "suppressed homes count 1; 0 = no loss, 1 = everything generalised away",
                        "discernibility": "sum of squared class sizes + suppressed x records "
                                          "(Bayardo & Agrawal 2005)"},
            "algorithm": _loss(r),
            "baseline": {**_loss(plan.baseline),
                         "description": "every QI at its top level but one (PC1, 5 kWp, 5-year, 30 deg tilt, "
                                        "90 deg azimuth sectors, inverter brand, EV/heat pump as is), classes "
                                        "below k or l suppressed"},
            "candidates": r.candidates,
        },
        "counts": plan.counts,
        "sources": {t: {"version": v} for t, v in plan.versions.items()},
        "definitions": {**{q.column: q.description for q in A.HOME_QIS}, **DEFINITIONS},
        "timeseries": {"file": "class_timeseries.parquet", "aggregation": "hourly mean per class",
                       "min_homes_per_value": plan.k, "columns": SERIES_DEFINITIONS},
        "files": files,
    }


def readme_text(plan: ReleasePlan) -> str:
    """``README.txt``: what the release is and a data dictionary of every column."""
    r = plan.result
    lines = [
        f"wattlake research release {plan.release_id}",
        f"partner: {plan.partner}    period (UTC days, inclusive): {plan.period.start} .. {plan.period.end}",
        *([f"under data-sharing agreement {plan.agreement['agreement_ref']} (valid until "
           f"{plan.agreement['valid_until']}), for: {plan.agreement['purpose']}"] if plan.agreement else []),
        "",
        f"Anonymised per-home PV performance and household consumption of {plan.counts['released']} homes in "
        f"{r.n_classes} equivalence classes.",
        f"Every class holds at least k={plan.k} homes (achieved {r.achieved_k}) and at least l={plan.l} distinct "
        f"values (achieved {r.achieved_l}) of each of {', '.join(L_COLUMNS)} (distinct l-diversity).",
        "Only homes whose owners consented to research use, and did not restrict processing or object,",
        f"are included; {r.n_suppressed} further homes were suppressed to reach k and l.",
        f"Information loss (NCP, 0..1): {r.ncp:.3f}; naive top-level-but-one generalisation: {plan.baseline.ncp:.3f}.",
        "",
        "Files",
        "  homes.parquet             one row per released home (no identifiers; row_id is random per release)",
        "  class_timeseries.parquet  hourly means per equivalence class (never per home)",
        "  manifest.json             parameters, generalisation, information loss, SHA-256 of every file",
        "",
        "homes.parquet columns",
    ]
    defs = {**{q.column: q.description for q in A.HOME_QIS}, **DEFINITIONS}
    for c in plan.homes.columns:
        kind = "quasi-identifier" if c in r.quasi_identifiers else ("sensitive" if c in SENSITIVE else "key")
        lines.append(f"  {c:30s} [{kind}] {defs.get(c, '')}")
    lines += ["", "class_timeseries.parquet columns"]
    lines += [f"  {c:30s} {d}" for c, d in SERIES_DEFINITIONS.items()]
    lines += ["", "Numeric quasi-identifiers are closed ranges 'lo-hi' of the class's values. Location is a "
              "4-digit postcode or a prefix of it ('12xx'), or NL.", ""]
    return "\n".join(lines)


@dataclass
class ReleaseResult:
    plan: ReleasePlan
    uri: str
    manifest: dict
    request_id: str
    seconds: float


def write_release(plan: ReleasePlan, lake: Lake, exports: ExportRoot | None = None,
                  progress: Callable[[str], None] | None = None) -> ReleaseResult:
    """Write the release files and manifest, then record it in ``restricted/privacy_audit``."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    agreement = agreement_for(lake, plan.partner, plan.k)  # now, not at planning: a revocation counts
    plan.agreement = agreement
    exports = exports or ExportRoot.from_env()
    folder = exports.folder("research", plan.partner, plan.release_id)
    if folder.listing():
        raise ReleaseError(f"release folder {folder.uri} already exists")
    say(f"writing release to {folder.uri}")
    folder.write("homes.parquet", _parquet(plan.homes))
    folder.write("class_timeseries.parquet", _parquet(plan.series))
    folder.write("README.txt", readme_text(plan).encode())
    created = dt.datetime.now(dt.UTC)
    man = manifest(plan, list(folder.files), created)
    folder.write("manifest.json", json.dumps(man, indent=2, sort_keys=False, default=str).encode())
    details = {
        "partner": plan.partner, "release_id": plan.release_id, "period": str(plan.period),
        "agreement_ref": agreement["agreement_ref"],
        "k": plan.k, "l": plan.l, "achieved_k": plan.result.achieved_k, "achieved_l": plan.result.achieved_l,
        "counts": plan.counts, "path": folder.uri, "ncp": round(plan.result.ncp, 6),
        "manifest_sha256": folder.files[-1]["sha256"],
        # keyed pseudonyms (never ids): an erasure request can list the releases that included a subject
        RELEASED_SUBJECT_REFS: sorted(pseudonym(s) for s in plan.released_subjects),
    }
    request_id = record(lake, AuditEntry("release"), "ok", details)
    say(f"  {len(folder.files)} files written; audit {request_id}")
    return ReleaseResult(plan, folder.uri, man, request_id, time.perf_counter() - t0)


def recorded_releases(lake: Lake) -> list[dict]:
    """Every release recorded in ``restricted/privacy_audit``, oldest first: its audit request id
    and the details it was recorded with (partner, release id, period, path, subject pseudonyms)."""
    from wattlake.audit import history

    return [{**json.loads(row["details"] or "{}"), "request_id": row["request_id"]}
            for row in history(lake).filter(pl.col("request_type") == "release").iter_rows(named=True)]


def releases_of(lake: Lake, subject_id: str) -> list[dict]:
    """The recorded releases that included ``subject_id`` (via its keyed pseudonym)."""
    ref = pseudonym(subject_id)
    return [{"request_id": d["request_id"], "partner": d.get("partner"), "release_id": d.get("release_id"),
             "path": d.get("path")} for d in recorded_releases(lake) if ref in d.get(RELEASED_SUBJECT_REFS, [])]