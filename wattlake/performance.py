"""Daily performance of every PV system (``gold/system_daily``) from ``silver/pv_intervals``.

One row per ``(system_id, day)`` (``day`` = UTC calendar date of the hour start). Pure function,
Polars in, Polars out, no I/O.

Definitions (IEC 61724-1:2021, section 10 "Derived parameters"):

* reference yield ``Y_r = H_POA / G_ref`` [h = kWh/kWp], ``H_POA`` the plane-of-array irradiation
  [kWh/m2] and ``G_ref`` = 1 kW/m2;
* final yield ``Y_f = E_AC / P_0`` [h = kWh/kWp], ``E_AC`` measured AC energy [kWh] and ``P_0``
  the array's STC rating [kWp];
* performance ratio ``PR = Y_f / Y_r`` [-];
* temperature-corrected performance ratio: each hour's reference yield is weighted by
  ``C_k = 1 + gamma (T_cell,k - T_ref)`` with ``gamma`` the module's power temperature
  coefficient (default -0.0037 /K, the fleet's modules) and ``T_ref`` = 25 degC (IEC 61724-1
  temperature-corrected PR to STC), ``PR' = sum E_AC,k / (P_0 sum_k Y_r,k C_k)``. This is NREL's
  weather-corrected PR with the reference temperature at STC instead of the annual average cell
  temperature: T. Dierauf, A. Growitz, S. Kurtz, J. L. B. Cruz, E. Riley, C. Hansen,
  "Weather-Corrected Performance Ratio", NREL/TP-5200-57991 (2013); the same as
  ``pvanalytics.metrics.performance_ratio_nrel`` with ``tcell_ref = 25``.

Intervals without any reading (``n_readings == 0``) are left out of BOTH numerator and
denominator of the PR and of ``expected_ratio`` (IEC 61724-1 treats missing data by exclusion),
so a day with a data gap is not mistaken for underperformance; ``data_completeness`` and
``availability`` say how much of the day is covered.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from wattlake.numerics import round_floats

#: module power temperature coefficient [1/K] (crystalline Si; the sample fleet's modules)
GAMMA_PDC = -0.0037
#: reference irradiance [kW/m2] (IEC 61724-1 G_ref)
G_REF_KW_M2 = 1.0
#: STC cell temperature [degC]
T_REF_C = 25.0
#: five-minute readings per hour
READINGS_PER_HOUR = 12
#: below this reference yield [h] a day is "low light": PR and ratios are too noisy to judge
LOW_LIGHT_YR_H = 0.5

SYSTEM_DAILY_SCHEMA = pa.schema([
    pa.field("system_id", pa.string()),
    pa.field("day", pa.date32()),
    pa.field("kwp", pa.float64()),
    pa.field("inverter_ac_kw", pa.float64()),
    pa.field("actual_kwh", pa.float64()),
    pa.field("expected_kwh", pa.float64()),
    pa.field("expected_covered_kwh", pa.float64()),
    pa.field("poa_irradiation_kwh_m2", pa.float64()),
    pa.field("ghi_irradiation_kwh_m2", pa.float64()),
    pa.field("reference_yield_h", pa.float64()),
    pa.field("final_yield_h", pa.float64()),
    pa.field("performance_ratio", pa.float64()),
    pa.field("performance_ratio_temp_corr", pa.float64()),
    pa.field("expected_ratio", pa.float64()),
    pa.field("availability", pa.float64()),
    pa.field("data_completeness", pa.float64()),
    pa.field("ac_power_max_w", pa.float64()),
    pa.field("cell_temp_mean_c", pa.float64()),
    pa.field("daylight_hours", pa.int32()),
    pa.field("readings", pa.int32()),
    pa.field("fault_hours", pa.int32()),
    pa.field("clipped_hours", pa.int32()),
    pa.field("estimated_hours", pa.int32()),
    pa.field("low_light", pa.bool_()),
    pa.field("no_data", pa.bool_()),
    pa.field("incomplete", pa.bool_()),
])

_POLARS_SCHEMA = pl.Schema(pl.from_arrow(SYSTEM_DAILY_SCHEMA.empty_table()).schema)


#: the ``silver/pv_intervals`` columns :func:`system_daily` reads (the rest stay on disk: a
#: year of 100 systems' hours with every column is about 0.4 GB more memory)
DAILY_INPUT_COLUMNS = ("system_id", "day", "actual_energy_kwh", "n_readings", "ac_power_max_w",
                       "status_fault_count", "expected_energy_kwh", "poa_irradiation_kwh_m2",
                       "ghi_irradiation_kwh_m2", "cell_temp_c", "night", "estimated", "clipped")


def system_daily(intervals: pl.DataFrame, systems: pl.DataFrame, gamma_per_k: float = GAMMA_PDC,
                 t_ref_c: float = T_REF_C, completeness_min: float = 0.9) -> pl.DataFrame:
    """Aggregate hourly ``silver/pv_intervals`` to one row per system and UTC day.

    Parameters
    ----------
    intervals : silver/pv_intervals rows: ``system_id``, ``day``, ``actual_energy_kwh`` [kWh],
        ``n_readings`` (0..12), ``ac_power_max_w`` [W], ``status_fault_count``,
        ``expected_energy_kwh`` [kWh], ``poa_irradiation_kwh_m2`` [kWh/m2],
        ``ghi_irradiation_kwh_m2`` [kWh/m2], ``cell_temp_c`` [degC], flags ``night``,
        ``estimated``, ``clipped``.
    systems : registry rows with ``system_id``, ``kwp`` [kWp], ``inverter_ac_kw`` [kW].
    gamma_per_k : module power temperature coefficient [1/K].
    t_ref_c : reference cell temperature of the correction [degC] (25 = STC; NREL uses the
        year's irradiance-weighted mean cell temperature instead).
    completeness_min : below this ``data_completeness`` the day is flagged ``incomplete``.

    Returns
    -------
    Frame with :data:`SYSTEM_DAILY_SCHEMA`:

    * ``actual_kwh`` measured AC energy of the day [kWh], null when no daylight hour has a reading;
    * ``expected_kwh`` pvlib expectation of the whole day [kWh]; ``expected_covered_kwh`` over
      the hours with readings only;
    * ``reference_yield_h`` = H_POA / 1 kW/m2 [h]; ``final_yield_h`` = actual / kWp [h];
    * ``performance_ratio`` = Y_f / Y_r and ``performance_ratio_temp_corr`` over the hours with
      readings (null when the covered Y_r is 0);
    * ``expected_ratio`` = actual / expected over the hours with readings [-];
    * ``availability``: share of daylight hours with a reading or production and no fault status;
    * ``data_completeness``: readings present / (12 x daylight hours);
    * ``ac_power_max_w`` the day's highest 5-min AC power [W]; ``cell_temp_mean_c`` the
      irradiance-weighted mean cell temperature [degC];
    * counts of daylight, fault, clipped and estimated (weather fallback) hours; flags
      ``low_light`` (Y_r < 0.5 h), ``no_data`` (no reading in daylight), ``incomplete``.
    """
    meta = systems.select("system_id", pl.col("kwp").cast(pl.Float64),
                          pl.col("inverter_ac_kw").cast(pl.Float64))
    day_light = ~pl.col("night").fill_null(True)
    has = pl.col("n_readings").fill_null(0) > 0
    poa = pl.col("poa_irradiation_kwh_m2").fill_null(0.0)
    yr_k = poa / G_REF_KW_M2
    c_k = 1.0 + gamma_per_k * (pl.col("cell_temp_c").fill_null(t_ref_c) - t_ref_c)
    daily = (
        intervals.lazy()
        .group_by("system_id", "day")
        .agg(
            actual_kwh=pl.when((has & day_light).any() | ~day_light.any()).then(pl.col("actual_energy_kwh").fill_null(0.0).sum()),
            expected_kwh=pl.col("expected_energy_kwh").fill_null(0.0).sum(),
            expected_covered_kwh=pl.col("expected_energy_kwh").fill_null(0.0).filter(has).sum(),
            poa_irradiation_kwh_m2=poa.sum(),
            ghi_irradiation_kwh_m2=pl.col("ghi_irradiation_kwh_m2").fill_null(0.0).sum(),
            _actual_cov=pl.col("actual_energy_kwh").fill_null(0.0).filter(has).sum(),
            _yr_cov=yr_k.filter(has).sum(),
            _yr_corr_cov=(yr_k * c_k).filter(has).sum(),
            _tcell_w=(pl.col("cell_temp_c").fill_null(0.0) * poa).sum(),
            daylight_hours=day_light.sum().cast(pl.Int32),
            readings=pl.col("n_readings").fill_null(0).filter(day_light).sum().cast(pl.Int32),
            _avail_hours=(day_light & (has | (pl.col("actual_energy_kwh").fill_null(0.0) > 0))
                          & (pl.col("status_fault_count").fill_null(0) == 0)).sum(),
            fault_hours=(pl.col("status_fault_count").fill_null(0) > 0).sum().cast(pl.Int32),
            clipped_hours=pl.col("clipped").fill_null(False).sum().cast(pl.Int32),
            estimated_hours=pl.col("estimated").fill_null(False).sum().cast(pl.Int32),
            ac_power_max_w=pl.col("ac_power_max_w").max(),
        )
        .join(meta.lazy(), on="system_id", how="left")
        .with_columns(
            reference_yield_h=pl.col("poa_irradiation_kwh_m2") / G_REF_KW_M2,
            final_yield_h=pl.col("actual_kwh") / pl.col("kwp"),
            performance_ratio=pl.when(pl.col("_yr_cov") > 0)
            .then(pl.col("_actual_cov") / pl.col("kwp") / pl.col("_yr_cov")),
            performance_ratio_temp_corr=pl.when(pl.col("_yr_corr_cov") > 0)
            .then(pl.col("_actual_cov") / pl.col("kwp") / pl.col("_yr_corr_cov")),
            expected_ratio=pl.when(pl.col("expected_covered_kwh") > 0)
            .then(pl.col("_actual_cov") / pl.col("expected_covered_kwh")),
            availability=pl.when(pl.col("daylight_hours") > 0)
            .then(pl.col("_avail_hours") / pl.col("daylight_hours")),
            data_completeness=pl.when(pl.col("daylight_hours") > 0)
            .then(pl.col("readings") / (READINGS_PER_HOUR * pl.col("daylight_hours"))),
            cell_temp_mean_c=pl.when(pl.col("poa_irradiation_kwh_m2") > 0)
            .then(pl.col("_tcell_w") / pl.col("poa_irradiation_kwh_m2")),
        )
        .with_columns(
            low_light=pl.col("reference_yield_h") < LOW_LIGHT_YR_H,
            no_data=(pl.col("readings") == 0) & (pl.col("daylight_hours") > 0),
            incomplete=pl.col("data_completeness").fill_null(0.0) < completeness_min,
        )
        .select(list(_POLARS_SCHEMA.names()))
        .sort("system_id", "day")
        .collect()
    )
    return round_floats(daily.cast(dict(_POLARS_SCHEMA)))
