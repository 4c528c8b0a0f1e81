"""Underperformance alerts (``gold/underperformance_alerts``) and their evaluation.

:func:`detect_alerts` turns ``gold/system_daily`` (:mod:`wattlake.performance`) and
``silver/pv_intervals`` into alert EPISODES: one row per system and run of days that show the
same problem, with the energy lost and a sentence an installer can act on. Pure functions,
Polars in and out, no I/O; vectorised over systems and days (group_by / rolling expressions;
the only Python loop is over alert kinds).

Kinds, from most to least specific (a day claimed by a more specific kind is not reported again
as a ``deficit``):

``outage``
    no production (<= 2 % of the expectation) on a day with meaningful expected energy, whether
    the inverter reported a fault status or sent nothing at all.
``dead_string``
    multi-MPPT inverter where one input carries ~no current (``dc_current_min_ratio`` < 0.05)
    in most bright hours while the others produce.
``clipping``
    the output is cut flat at the same level, well below the inverter's AC rating, during hours
    whose expected output is higher (a derated or power-limited inverter, an export limit).
``shading`` / ``wrong_metadata``
    the ratio actual/expected differs systematically between morning and afternoon. One half near
    the expectation and the other far below looks like shading; one half clearly above the
    expectation looks like a registry orientation (tilt/azimuth) that is wrong. A system that
    beats its expectation by >= 15 % for weeks (no fault makes energy) is ``wrong_metadata`` too.
``deficit``
    the daily ratio actual/expected (rolling median of valid days) stays below 1 - 12 % for
    >= 5 days.
``decline``
    the 14-valid-day rolling median of the ratio drops >= 10 % below the system's own earlier
    level and stays there >= 14 days. Whether it recovered afterwards (soiling washed off: the
    ratio steps back up) or not (degradation, permanent damage) is said in the reason, the way
    RdTools separates soiling (``soiling_srr``, recoveries) from degradation (year-on-year).
    The sample runs lack the rain record and the years RdTools' methods need to tell them apart
    statistically, so one ``decline`` kind is reported and the reason says which it looks like.

:func:`evaluate` measures event-level precision and recall against the generator's
``ground_truth/faults.parquet``; it is never read by the detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

ALERT_SCHEMA = pl.Schema({
    "system_id": pl.String, "first_day": pl.Date, "last_day": pl.Date, "kind": pl.String,
    "severity": pl.String, "deficit_kwh": pl.Float64, "reason": pl.String,
    "installer_id": pl.String,
})

KINDS = ("outage", "dead_string", "clipping", "shading", "wrong_metadata", "deficit", "decline")


@dataclass(frozen=True)
class AlertThresholds:
    """Detection thresholds. Defaults and why (numbers are for the hourly pvlib expectation from
    the nearest KNMI station, whose daily error on healthy systems is ~5-8 %):

    Outage
        ``outage_min_expected_kwh_kwp`` = 0.3 kWh/kWp: an overcast Dutch winter day still gives
        ~0.2-0.5 kWh/kWp, so below 0.3 "no production" is not unusual enough to call an outage.
        ``outage_max_ratio`` = 0.02: standby draw and rounding stay below 2 % of any real day.
    Deficit
        ``deficit_ratio`` = 0.88 (12 % loss): 1.5-2.5 times the estimator's healthy daily error, and
        taken on a 5-valid-day rolling median, which halves that noise again.
        ``deficit_min_days`` = 5: one bad week is actionable; single days are weather noise.
        ``valid_min_expected_kwh_kwp`` = 0.5 kWh/kWp and ``valid_min_completeness`` = 0.8: dim
        or half-empty days carry too little signal for a ratio.
    Dead string
        ``dead_ratio`` = 0.05: a live input of a split array carries >= ~30 % of its sibling's
        current (the most uneven module split is 2:1 of 3 inputs), a dead one 0 A.
        ``dead_min_poa_kwh_m2`` = 0.15 kWh/m2 in the hour (150 W/m2): below that DC currents
        are small and ratios are noisy. ``dead_min_share`` = 0.8 of those hours, >= 2 hours a
        day, ``dead_min_days`` = 2 days.
    Clipping
        ``clip_max_fraction`` = 0.90 of the AC rating: normal clipping sits at >= 97 % of it.
        ``clip_flat_tol`` = 0.01: hours whose highest 5-min power is within 1 % of the day's peak
        are "at the cap"; ``clip_min_hours`` = 2 such hours, each with an expected mean power
        >= ``clip_expected_over`` = 1.05 x the cap, make a clipped day. Across the
        ``clip_min_days`` = 3 days of an episode the cap must stay within
        ``clip_level_tol`` = 3 %: natural peaks vary with the weather, a limit does not.
    Shape (shading, wrong metadata)
        per ``shape_block_days`` = 14-day block, morning vs afternoon ratio of bright hours
        (``shape_min_poa_kwh_m2`` = 0.1 kWh/m2). ``shape_asym`` = 1.35: orientation errors of
        > 30 deg or a lost beam on one side give factors of 1.5-5, a healthy system ~1.0-1.15.
        ``shape_low`` = 0.85 and ``shape_high`` = 1.08 classify the halves (see module doc).
        ``surplus_ratio`` = 1.15 on the ``decline_window`` rolling median for
        ``surplus_min_days`` = 14 days: 2-3 times the healthy daily error, sustained.
    Decline
        ``decline_drop`` = 0.10 below the system's own best 14-valid-day median, for >= 14 days:
        a 14-day median has ~2 % noise, so 10 % is 5 sigma; shorter drops are ``deficit``.
    Episodes
        ``gap_days`` = 2: bad days separated by up to 2 non-bad days (a cloudy day, a day with no
        bright hour) are one episode. ``persist_gap_days`` = 7 for clipping and dead strings, which
        persist through cloudy spells that cannot show them (no bright hour, no hour above the cap).
        A ``decline`` must also leave the episode below its expectation (actual < expected): a
        drift from 150 % to 120 % of a wrong expectation is not underperformance.
    Severity
        ``high`` when the episode lost >= 50 % of its expected energy or >= 50 kWh, ``medium`` at
        >= 20 % or >= 10 kWh, else ``low``.
    """

    outage_min_expected_kwh_kwp: float = 0.3
    outage_max_ratio: float = 0.02
    valid_min_expected_kwh_kwp: float = 0.5
    valid_min_completeness: float = 0.8
    deficit_ratio: float = 0.88
    deficit_window: int = 5
    deficit_min_days: int = 5
    dead_ratio: float = 0.05
    dead_min_poa_kwh_m2: float = 0.15
    dead_min_share: float = 0.8
    dead_min_hours: int = 2
    dead_min_days: int = 2
    clip_max_fraction: float = 0.90
    clip_flat_tol: float = 0.01
    clip_min_hours: int = 2
    clip_expected_over: float = 1.05
    clip_min_days: int = 3
    clip_level_tol: float = 0.03
    shape_block_days: int = 14
    shape_min_poa_kwh_m2: float = 0.1
    shape_min_expected_kwh_kwp: float = 1.0
    shape_asym: float = 1.35
    shape_low: float = 0.85
    shape_high: float = 1.08
    surplus_ratio: float = 1.15
    surplus_min_days: int = 14
    decline_window: int = 14
    decline_drop: float = 0.10
    decline_min_days: int = 14
    gap_days: int = 2
    persist_gap_days: int = 7
    severity_high_fraction: float = 0.5
    severity_high_kwh: float = 50.0
    severity_medium_fraction: float = 0.2
    severity_medium_kwh: float = 10.0


# --------------------------------------------------------------------------------------------
# helpers


def _num(expr: pl.Expr, decimals: int = 0) -> pl.Expr:
    """A number as text, rounded (``decimals`` = 0 gives an integer)."""
    if decimals == 0:
        return expr.round(0).cast(pl.Int64).cast(pl.String)
    return expr.round(decimals).cast(pl.String)


def _episodes(days: pl.DataFrame, gap_days: int, aggs: list[pl.Expr] | None = None) -> pl.DataFrame:
    """Merge flagged ``(system_id, day)`` rows into episodes: a new episode starts when more than
    ``gap_days`` days lie between two flagged days. Returns system_id, first_day, last_day,
    n_days (flagged days) and ``aggs`` over the flagged rows."""
    d = days.sort("system_id", "day")
    d = d.with_columns(
        _new=(pl.col("system_id") != pl.col("system_id").shift(1))
        | ((pl.col("day") - pl.col("day").shift(1)).dt.total_days() > gap_days + 1)
        | pl.col("day").shift(1).is_null()
    ).with_columns(_ep=pl.col("_new").cum_sum())
    return d.group_by("system_id", "_ep").agg(
        first_day=pl.col("day").min(), last_day=pl.col("day").max(), n_days=pl.len(),
        *(aggs or []),
    ).drop("_ep").sort("system_id", "first_day")


def _with_energy(eps: pl.DataFrame, daily: pl.DataFrame) -> pl.DataFrame:
    """Add expected_kwh, actual_kwh, span_days and deficit_kwh (>= 0) over each episode's span."""
    if eps.height == 0:
        return eps.with_columns(expected_kwh=pl.lit(None, pl.Float64), actual_kwh=pl.lit(None, pl.Float64),
                                span_days=pl.lit(None, pl.Int64), deficit_kwh=pl.lit(None, pl.Float64))
    d = daily.select("system_id", "day", "expected_kwh", pl.col("actual_kwh").fill_null(0.0))
    energy = (
        # one row per distinct span (two kinds may share a start), summed in one order
        eps.select("system_id", "first_day", "last_day").unique().join(d, on="system_id")
        .filter(pl.col("day").is_between(pl.col("first_day"), pl.col("last_day")))
        .sort("system_id", "first_day", "last_day", "day")
        .group_by("system_id", "first_day", "last_day", maintain_order=True)
        .agg(expected_kwh=pl.col("expected_kwh").sum(), actual_kwh=pl.col("actual_kwh").sum())
    )
    return eps.join(energy, on=["system_id", "first_day", "last_day"], how="left").with_columns(
        span_days=(pl.col("last_day") - pl.col("first_day")).dt.total_days() + 1,
        deficit_kwh=(pl.col("expected_kwh") - pl.col("actual_kwh")).clip(lower_bound=0.0),
    )


def _severity(t: AlertThresholds) -> pl.Expr:
    frac = pl.col("deficit_kwh") / pl.col("expected_kwh").clip(lower_bound=1e-9)
    return (
        pl.when((frac >= t.severity_high_fraction) | (pl.col("deficit_kwh") >= t.severity_high_kwh))
        .then(pl.lit("high"))
        .when((frac >= t.severity_medium_fraction) | (pl.col("deficit_kwh") >= t.severity_medium_kwh))
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )


_SPAN = pl.concat_str(pl.lit("("), pl.col("first_day").cast(pl.String), pl.lit(" to "),
                      pl.col("last_day").cast(pl.String), pl.lit(")"))


def _finish(eps: pl.DataFrame, kind: str, reason: pl.Expr, t: AlertThresholds) -> pl.DataFrame:
    if eps.height == 0:
        return pl.DataFrame(schema=ALERT_SCHEMA)
    return eps.with_columns(kind=pl.lit(kind), severity=_severity(t), reason=reason).select(
        "system_id", "first_day", "last_day", "kind", "severity", "deficit_kwh", "reason")


# --------------------------------------------------------------------------------------------
# day classification (one column per kind, vectorised over systems and days)


def _outage_days(daily: pl.DataFrame, t: AlertThresholds) -> pl.DataFrame:
    exp_kwp = pl.col("expected_kwh") / pl.col("kwp")
    return daily.filter(
        (exp_kwp >= t.outage_min_expected_kwh_kwp)
        & (pl.col("actual_kwh").fill_null(0.0) <= t.outage_max_ratio * pl.col("expected_kwh"))
    ).select("system_id", "day", "fault_hours", "no_data")


def _dead_string_days(intervals: pl.DataFrame, t: AlertThresholds) -> pl.DataFrame:
    bright = (
        ~pl.col("night").fill_null(True)
        & (pl.col("poa_irradiation_kwh_m2").fill_null(0.0) >= t.dead_min_poa_kwh_m2)
        & pl.col("dc_current_min_ratio").is_not_null()
        & (pl.col("actual_energy_kwh").fill_null(0.0) > 0)
    )
    per_day = (
        intervals.filter(bright)
        .group_by("system_id", "day")
        .agg(hours=pl.len(), dead_hours=(pl.col("dc_current_min_ratio") < t.dead_ratio).sum())
    )
    return per_day.filter(
        (pl.col("dead_hours") >= t.dead_min_hours)
        & (pl.col("dead_hours") >= t.dead_min_share * pl.col("hours"))
    )


def _clipping_days(intervals: pl.DataFrame, systems: pl.DataFrame, t: AlertThresholds) -> pl.DataFrame:
    x = (
        intervals.filter(~pl.col("night").fill_null(True) & (pl.col("n_readings").fill_null(0) > 0))
        .select("system_id", "day", "ac_power_max_w", "expected_energy_kwh", "status_fault_count")
        .join(systems.select("system_id", "inverter_ac_kw"), on="system_id", how="left")
        .with_columns(cap_w=pl.col("ac_power_max_w").max().over("system_id", "day"))
        .with_columns(
            at_cap=(pl.col("ac_power_max_w") >= (1 - t.clip_flat_tol) * pl.col("cap_w"))
            & (pl.col("expected_energy_kwh") * 1000.0 >= t.clip_expected_over * pl.col("cap_w"))
        )
    )
    per_day = x.group_by("system_id", "day").agg(
        cap_w=pl.col("cap_w").first(), at_cap_hours=pl.col("at_cap").sum(),
        rating_w=pl.col("inverter_ac_kw").first() * 1000.0,
        faults=pl.col("status_fault_count").fill_null(0).sum(),
    )
    return per_day.filter(
        (pl.col("at_cap_hours") >= t.clip_min_hours)
        & (pl.col("cap_w") > 0)
        & (pl.col("cap_w") < t.clip_max_fraction * pl.col("rating_w"))
        & (pl.col("faults") == 0)
    )


# --------------------------------------------------------------------------------------------
# detection


#: the ``silver/pv_intervals`` columns :func:`detect_alerts` reads (a year of a fleet's hours is
#: read for them: the other columns are left on disk)
INTERVAL_COLUMNS = ("system_id", "ts_utc", "day", "actual_energy_kwh", "n_readings", "ac_power_max_w",
                    "dc_current_min_ratio", "status_fault_count", "expected_energy_kwh", "poa_irradiation_kwh_m2",
                    "expected_clipped", "night", "clipped")


def detect_alerts(daily: pl.DataFrame, intervals: pl.DataFrame, systems: pl.DataFrame,
                  thresholds: AlertThresholds = AlertThresholds()) -> pl.DataFrame:
    """Underperformance alert episodes of every system.

    Parameters
    ----------
    daily : ``gold/system_daily`` (:func:`wattlake.performance.system_daily`).
    intervals : ``silver/pv_intervals`` (hourly; energies [kWh], powers [W], irradiation
        [kWh/m2]).
    systems : registry rows with ``system_id``, ``kwp`` [kWp], ``inverter_ac_kw`` [kW],
        ``installer_id`` and ``lon`` [deg] (solar noon for the morning/afternoon split; 5.3 E
        if absent).
    thresholds : :class:`AlertThresholds`.

    Returns
    -------
    Frame with :data:`ALERT_SCHEMA`: ``system_id``, ``first_day``, ``last_day`` (inclusive UTC
    dates), ``kind`` (see :data:`KINDS`), ``severity`` (low|medium|high), ``deficit_kwh``
    (expected - actual over the episode's days, >= 0 [kWh]), ``reason`` (a sentence for the
    installer, with the numbers) and ``installer_id``.
    """
    t = thresholds
    out: list[pl.DataFrame] = []
    claimed: list[pl.DataFrame] = []  # (system_id, day) already explained by a specific kind

    # --- outage --------------------------------------------------------------------------
    od = _outage_days(daily, t)
    eps = _with_energy(_episodes(od, t.gap_days, [pl.col("fault_hours").sum().alias("fault_hours"),
                                                  pl.col("no_data").all().alias("all_silent")]), daily)
    what = (pl.when(pl.col("fault_hours") > 0)
            .then(pl.lit("the inverter reported a fault: read its error code, then check it and its AC breaker."))
            .when(pl.col("all_silent"))
            .then(pl.lit("the inverter sent no data at all: check the inverter, its AC breaker and the "
                         "communication stick."))
            .otherwise(pl.lit("check the inverter and its AC breaker.")))
    out.append(_finish(eps, "outage", pl.concat_str(
        pl.lit("No production on "), _num(pl.col("n_days")), pl.lit(" day(s) with daylight "), _SPAN,
        pl.lit(" while "), _num(pl.col("expected_kwh")), pl.lit(" kWh was expected: "), what), t))
    claimed.append(od.select("system_id", "day"))

    # --- dead string ---------------------------------------------------------------------
    dd = _dead_string_days(intervals, t)
    eps = _episodes(dd, t.persist_gap_days, [pl.col("dead_hours").sum(), pl.col("hours").sum()])
    eps = _with_energy(eps.filter(pl.col("n_days") >= t.dead_min_days), daily)
    out.append(_finish(eps, "dead_string", pl.concat_str(
        pl.lit("One DC input (string) carried no current in "), _num(pl.col("dead_hours")),
        pl.lit(" of "), _num(pl.col("hours")), pl.lit(" bright hours on "), _num(pl.col("n_days")),
        pl.lit(" days "), _SPAN, pl.lit(" while the other input(s) produced; about "),
        _num(pl.col("deficit_kwh")), pl.lit(" kWh lost: check that string's connectors, fuse and DC isolator.")), t))
    claimed.append(_span_days(eps))

    # --- clipping ------------------------------------------------------------------------
    cd = _clipping_days(intervals, systems, t)
    eps = _episodes(cd, t.persist_gap_days, [pl.col("cap_w").median().alias("cap_med_w"),
                                     pl.col("cap_w").min().alias("cap_min_w"),
                                     pl.col("cap_w").max().alias("cap_max_w"),
                                     pl.col("rating_w").first()])
    eps = eps.filter((pl.col("n_days") >= t.clip_min_days)
                     & ((pl.col("cap_max_w") - pl.col("cap_min_w")) <= t.clip_level_tol * pl.col("cap_med_w")))
    eps = _with_energy(eps, daily)
    out.append(_finish(eps, "clipping", pl.concat_str(
        pl.lit("Inverter output was cut flat at "), _num(pl.col("cap_med_w")), pl.lit(" W ("),
        _num(100 * pl.col("cap_med_w") / pl.col("rating_w")), pl.lit(" % of its "),
        _num(pl.col("rating_w")), pl.lit(" W rating) on "), _num(pl.col("n_days")), pl.lit(" sunny days "),
        _SPAN, pl.lit(", about "), _num(pl.col("deficit_kwh")),
        pl.lit(" kWh short of the expectation: check the inverter's power limit or export-limit setting "
               "and its cooling.")), t))
    claimed.append(_span_days(eps))

    # --- shape: shading / wrong metadata ---------------------------------------------------
    shape = _shape_alerts(intervals, systems, daily, t)
    out.extend(shape)
    claimed.extend(_span_days(a) for a in shape)

    # --- deficit (on days not explained above) -------------------------------------------
    claimed_days = pl.concat(claimed, how="vertical_relaxed").unique()
    valid = _valid_days(daily, t).join(claimed_days, on=["system_id", "day"], how="anti")
    w = t.deficit_window
    valid = valid.sort("system_id", "day").with_columns(
        ratio_med=pl.col("expected_ratio").rolling_median(w, min_samples=max(1, w // 2 + 1), center=True)
        .over("system_id"))
    bad = valid.filter(pl.col("ratio_med") < t.deficit_ratio)
    eps = _episodes(bad, t.gap_days, [pl.col("expected_ratio").median().alias("ratio_med")])
    eps = _with_energy(eps.filter(pl.col("n_days") >= t.deficit_min_days), daily)
    # the episode as a whole must be short of the threshold too
    eps = eps.filter(pl.col("actual_kwh") < t.deficit_ratio * pl.col("expected_kwh"))
    out.append(_finish(eps, "deficit", pl.concat_str(
        pl.lit("Production was "), _num(100 * (1 - pl.col("actual_kwh") / pl.col("expected_kwh"))),
        pl.lit(" % below the expectation on "), _num(pl.col("n_days")), pl.lit(" of "), _num(pl.col("span_days")),
        pl.lit(" days "), _SPAN, pl.lit(", "), _num(pl.col("deficit_kwh")),
        pl.lit(" kWh short: inspect the panels for dirt, shade or damage and compare the string voltages.")), t))
    deficit_days = _span_days(eps)

    # --- surplus: a wrong expectation (wrong_metadata) ---------------------------------------
    sw = t.decline_window
    sur = valid.with_columns(r=pl.col("expected_ratio").rolling_median(sw, min_samples=sw, center=True)
                             .over("system_id")).filter(pl.col("r") > t.surplus_ratio)
    eps = _episodes(sur, t.gap_days + sw // 2, [pl.col("r").median().alias("r_med")])
    eps = _with_energy(eps.filter(pl.col("n_days") >= t.surplus_min_days), daily)
    eps = eps.join(pl.concat([a.select("system_id") for a in shape] + [pl.DataFrame(schema={"system_id": pl.String})]),
                   on="system_id", how="anti")  # already reported by the shape test
    out.append(_finish(eps, "wrong_metadata", pl.concat_str(
        pl.lit("The system produced "), _num(100 * (pl.col("actual_kwh") / pl.col("expected_kwh") - 1)),
        pl.lit(" % MORE than expected on "), _num(pl.col("n_days")), pl.lit(" days "), _SPAN,
        pl.lit(": the registered kWp, tilt or azimuth is probably wrong (check the installation photos and "
               "correct the registry); expectations and guarantees use them.")), t))

    # --- decline -------------------------------------------------------------------------
    out.append(_decline_alerts(valid, daily, pl.concat([claimed_days, deficit_days], how="vertical_relaxed"), t))

    cols = {k: v for k, v in ALERT_SCHEMA.items() if k != "installer_id"}
    alerts = pl.concat([pl.DataFrame(schema=cols)] + [a.select(list(cols)).cast(cols) for a in out],
                       how="vertical")
    alerts = alerts.drop("installer_id", strict=False).join(
        systems.select("system_id", "installer_id"), on="system_id", how="left")
    return alerts.select(list(ALERT_SCHEMA.names())).cast(dict(ALERT_SCHEMA)).sort(
        "system_id", "first_day", "kind")


def _span_days(eps: pl.DataFrame) -> pl.DataFrame:
    """Every (system_id, day) inside the episodes' spans."""
    if eps.height == 0:
        return pl.DataFrame(schema={"system_id": pl.String, "day": pl.Date})
    return eps.select("system_id", day=pl.date_ranges("first_day", "last_day")).explode("day")


def _valid_days(daily: pl.DataFrame, t: AlertThresholds) -> pl.DataFrame:
    """Days whose ratio actual/expected can be judged: enough light and data, no outage."""
    return daily.filter(
        (pl.col("expected_kwh") / pl.col("kwp") >= t.valid_min_expected_kwh_kwp)
        & (pl.col("data_completeness").fill_null(0.0) >= t.valid_min_completeness)
        & pl.col("expected_ratio").is_not_null()
        & (pl.col("expected_ratio") > t.outage_max_ratio)
    ).select("system_id", "day", "expected_ratio", "expected_kwh", "actual_kwh")


def _shape_alerts(intervals: pl.DataFrame, systems: pl.DataFrame, daily: pl.DataFrame,
                  t: AlertThresholds) -> list[pl.DataFrame]:
    """Morning/afternoon asymmetry of actual/expected, per ``shape_block_days`` block."""
    sysm = systems.select("system_id", "kwp",
                          (pl.col("lon") if "lon" in systems.columns else pl.lit(5.3)).alias("_lon"))
    hour_mid = (pl.col("ts_utc").dt.hour().cast(pl.Float64) + pl.col("ts_utc").dt.minute() / 60.0 + 0.5)
    x = (
        intervals.filter(
            ~pl.col("night").fill_null(True) & (pl.col("n_readings").fill_null(0) >= 10)
            & (pl.col("status_fault_count").fill_null(0) == 0) & ~pl.col("clipped").fill_null(False)
            & ~pl.col("expected_clipped").fill_null(False)
            & (pl.col("poa_irradiation_kwh_m2").fill_null(0.0) >= t.shape_min_poa_kwh_m2))
        .join(sysm, on="system_id", how="left")
        .with_columns(
            am=hour_mid < 12.0 - pl.col("_lon") / 15.0,
            block=pl.col("day").cast(pl.Int32) // t.shape_block_days,
        )
    )
    blocks = (
        x.group_by("system_id", "block")
        .agg(
            first=pl.col("day").min(), last=pl.col("day").max(), kwp=pl.col("kwp").first(),
            act_am=pl.col("actual_energy_kwh").filter(pl.col("am")).sum(),
            exp_am=pl.col("expected_energy_kwh").filter(pl.col("am")).sum(),
            act_pm=pl.col("actual_energy_kwh").filter(~pl.col("am")).sum(),
            exp_pm=pl.col("expected_energy_kwh").filter(~pl.col("am")).sum(),
        )
        .filter(pl.min_horizontal("exp_am", "exp_pm") >= t.shape_min_expected_kwh_kwp * pl.col("kwp"))
        .with_columns(r_am=pl.col("act_am") / pl.col("exp_am"), r_pm=pl.col("act_pm") / pl.col("exp_pm"))
        .with_columns(
            r_hi=pl.max_horizontal("r_am", "r_pm"), r_lo=pl.min_horizontal("r_am", "r_pm"),
            low_side=pl.when(pl.col("r_am") < pl.col("r_pm")).then(pl.lit("morning")).otherwise(pl.lit("afternoon")),
        )
        .filter(pl.col("r_hi") >= t.shape_asym * pl.col("r_lo"))
        .with_columns(
            kind=pl.when((pl.col("r_lo") <= t.shape_low) & (pl.col("r_hi") < t.shape_high))
            .then(pl.lit("shading")).otherwise(pl.lit("wrong_metadata")))
    )
    res: list[pl.DataFrame] = []
    for kind in ("shading", "wrong_metadata"):  # loop over alert kinds
        b = blocks.filter(pl.col("kind") == kind).rename({"first": "day"})
        eps = _episodes(b, t.gap_days + t.shape_block_days,
                        [pl.col("last").max().alias("_last"), pl.col("r_am").median(), pl.col("r_pm").median(),
                         pl.col("low_side").mode().first()])
        eps = _with_energy(eps.with_columns(last_day=pl.col("_last")).drop("_last"), daily)
        pct = lambda c: _num(100 * pl.col(c))  # noqa: E731
        head = pl.concat_str(pl.lit("Morning hours gave "), pct("r_am"), pl.lit(" % and afternoon hours "),
                             pct("r_pm"), pl.lit(" % of the expected energy "), _SPAN)
        if kind == "shading":
            tail = pl.concat_str(pl.lit(", about "), _num(pl.col("deficit_kwh")),
                                 pl.lit(" kWh short: look for new shade on the "), pl.col("low_side"),
                                 pl.lit(" side (a tree, a dormer, a neighbour's extension)."))
        else:
            tail = pl.lit(": the registered tilt or azimuth is probably wrong (check the installation photos "
                          "and correct the registry); expectations and guarantees use them.")
        res.append(_finish(eps, kind, pl.concat_str(head, tail), t))
    return res


def _decline_alerts(valid: pl.DataFrame, daily: pl.DataFrame, claimed: pl.DataFrame,
                    t: AlertThresholds) -> pl.DataFrame:
    """The 14-valid-day rolling median ratio falls >= decline_drop below its earlier best."""
    w = t.decline_window
    v = (
        valid.select("system_id", "day", "expected_ratio").sort("system_id", "day")
        .with_columns(r=pl.col("expected_ratio").rolling_median(w, min_samples=w).over("system_id"))
        .with_columns(best=pl.col("r").cum_max().over("system_id"),
                      last_r=pl.col("r").last().over("system_id"),
                      last_valid=pl.col("day").max().over("system_id"))
    )
    bad = v.filter(pl.col("r") < (1 - t.decline_drop) * pl.col("best"))
    bad = bad.join(claimed.unique(), on=["system_id", "day"], how="anti")
    eps = _episodes(bad, t.gap_days + w // 2, [pl.col("best").max(), pl.col("r").min().alias("r_min"),
                                                pl.col("last_r").first(), pl.col("last_valid").first()])
    # the median lags by w valid days: move the start back to when the drop began
    eps = eps.with_columns(first_day=pl.col("first_day") - pl.duration(days=w // 2))
    eps = _with_energy(eps.filter(pl.col("n_days") >= t.decline_min_days), daily)
    eps = eps.filter(pl.col("actual_kwh") < pl.col("expected_kwh"))
    recovered = (pl.col("last_day") < pl.col("last_valid")) & (pl.col("last_r") >= (1 - t.decline_drop / 2) * pl.col("best"))
    looks = (pl.when(recovered)
             .then(pl.lit(" and then recovered: this looks like soiling washed off by rain or cleaning; "
                          "consider cleaning if it recurs."))
             .otherwise(pl.lit(" and has not recovered: this looks like degradation or damage; inspect the "
                               "modules (cracks, hot spots, delamination) and the string voltages.")))
    return _finish(eps, "decline", pl.concat_str(
        pl.lit("The two-week median of actual/expected fell from "), _num(100 * pl.col("best")),
        pl.lit(" % to "), _num(100 * pl.col("r_min")), pl.lit(" % "), _SPAN, pl.lit(", "),
        _num(pl.col("deficit_kwh")), pl.lit(" kWh short"), looks), t)


# --------------------------------------------------------------------------------------------
# evaluation against the generator's ground truth


def evaluate(alerts: pl.DataFrame, faults: pl.DataFrame, min_magnitude: float = 0.05) -> dict:
    """Event-level precision and recall of ``alerts`` against injected ``faults``.

    An alert is TRUE if its [first_day, last_day] overlaps an injected fault of the same system
    (any kind, any magnitude). A fault is FOUND if any alert of its system overlaps it. Faults
    with ``magnitude < min_magnitude`` (fractional energy loss; nearly invisible episodes) are left
    out of recall; alerts overlapping them still count as true. ``wrong_metadata`` faults carry
    their orientation error in degrees as magnitude and so always count.

    Returns ``{"overall": {...}, "alerts_by_kind": {kind: {...}}, "faults_by_kind": {kind: {...}}}``
    with counts (``alerts``, ``true_alerts``, ``faults``, ``found``, ``excluded``) and
    ``precision`` / ``recall`` (None when undefined).
    """
    a = alerts.select("system_id", "first_day", "last_day", "kind").with_row_index("alert_id")
    f = faults.select("system_id", "first_day", "last_day", "kind", "magnitude").with_row_index("fault_id")
    pairs = a.join(f, on="system_id", suffix="_f").filter(
        (pl.col("first_day") <= pl.col("last_day_f")) & (pl.col("first_day_f") <= pl.col("last_day")))
    a = a.with_columns(true=pl.col("alert_id").is_in(pairs["alert_id"].implode()))
    f = f.with_columns(found=pl.col("fault_id").is_in(pairs["fault_id"].implode()),
                       counted=pl.col("magnitude") >= min_magnitude)

    def ratio(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    by_a = a.group_by("kind").agg(alerts=pl.len(), true_alerts=pl.col("true").sum()).sort("kind")
    by_f = f.group_by("kind").agg(
        faults=pl.col("counted").sum(), found=(pl.col("found") & pl.col("counted")).sum(),
        excluded=(~pl.col("counted")).sum(), found_excluded=(pl.col("found") & ~pl.col("counted")).sum(),
    ).sort("kind")
    n_a, n_t = a.height, int(a["true"].sum())
    n_f, n_found = int(f["counted"].sum()), int((f["found"] & f["counted"]).sum())
    return {
        "overall": {"alerts": n_a, "true_alerts": n_t, "precision": ratio(n_t, n_a),
                    "faults": n_f, "found": n_found, "recall": ratio(n_found, n_f),
                    "excluded": int((~f["counted"]).sum()), "min_magnitude": min_magnitude},
        "alerts_by_kind": {r["kind"]: {"alerts": r["alerts"], "true_alerts": r["true_alerts"],
                                       "precision": ratio(r["true_alerts"], r["alerts"])}
                           for r in by_a.iter_rows(named=True)},
        "faults_by_kind": {r["kind"]: {"faults": r["faults"], "found": r["found"], "recall": ratio(r["found"], r["faults"]),
                                       "excluded": r["excluded"], "found_excluded": r["found_excluded"]}
                           for r in by_f.iter_rows(named=True)},
    }


def format_evaluation(result: dict) -> str:
    """A plain-text table of :func:`evaluate`'s result, for the CLI."""
    def pct(x: float | None) -> str:
        return "   -" if x is None else f"{100 * x:5.1f} %"

    o = result["overall"]
    lines = [
        f"alerts: {o['alerts']}, true {o['true_alerts']}, precision {pct(o['precision'])}",
        f"faults (magnitude >= {o['min_magnitude']}): {o['faults']}, found {o['found']}, "
        f"recall {pct(o['recall'])}  ({o['excluded']} smaller faults not counted)",
        "",
        f"{'alert kind':<16}{'alerts':>8}{'true':>8}{'precision':>11}",
    ]
    for k, r in result["alerts_by_kind"].items():
        lines.append(f"{k:<16}{r['alerts']:>8}{r['true_alerts']:>8}{pct(r['precision']):>11}")
    lines += ["", f"{'fault kind':<16}{'faults':>8}{'found':>8}{'recall':>11}{'excluded':>10}"]
    for k, r in result["faults_by_kind"].items():
        lines.append(f"{k:<16}{r['faults']:>8}{r['found']:>8}{pct(r['recall']):>11}{r['excluded']:>10}")
    return "\n".join(lines)
