"""Expected PV yield (pvlib) and measured production per system and hour: ``silver/pv_intervals``.

Pure functions, Polars in / Polars out, no I/O. The chain, per (system, UTC hour):

1. **Actuals** (:func:`hourly_actuals`): 5-minute inverter readings -> hourly AC energy [kWh],
   reading count, peak power, a DC string-balance ratio and the fault-status count. A reading at
   ``ts`` is the mean power of ``(ts - 5 min, ts]``; it belongs to the hour that holds the
   interval's midpoint ``ts - 2.5 min`` (the reading at 13:00 belongs to the 12:00 hour).
2. **Expected** (:func:`expected_hourly`), from registry metadata (kWp, tilt, azimuth, AC rating)
   and the hourly observations of the system's KNMI station:

   a. solar position at the hour midpoint, once per station (``ephemeris``, [1]_);
   b. GHI -> DNI/DHI with the Erbs decomposition [2]_;
   c. transposition to the array plane with Hay-Davies [3]_ (or Perez [4]_), albedo 0.2;
   d. angle-of-incidence losses with Martin & Ruiz [5]_ (beam, sky and ground diffuse);
   e. cell temperature with Faiman [6]_;
   f. DC with PVWatts [7]_ (``pdc0`` = kWp, ``gamma_pdc`` -0.37 %/K), times the PVWatts system
      loss budget (:func:`pvlib.pvsystem.pvwatts_losses`) and natural ageing;
   g. AC with the PVWatts inverter model [7]_, ``pdc0 = AC rating / eta_inv_nom``, so the output
      saturates at the AC rating (clipping);
   h. station gaps: Ineichen clear sky [8]_ with the Linke turbidity climatology [9]_, scaled
      by the station-day clear-sky index (flag ``estimated``).
3. **Intervals** (:func:`pv_intervals`): full outer join of both, plus ``clipped`` and
   ``missing_data`` flags -> :data:`SILVER_SCHEMA`.

Partitioning note for callers: the hours of UTC day ``D`` need the readings with
``D 00:00 < ts_utc <= D+1 00:00`` (the 00:00 reading of ``D+1`` closes the 23:00 hour of ``D``).
Filter the readings with :func:`readings_for_days` before :func:`hourly_actuals`, otherwise the
00:00 reading of ``D`` makes a one-reading 23:00 hour of ``D-1`` that would overwrite the real one
when silver replaces its days.

References
----------
.. [1] pvlib.solarposition.ephemeris (after Grover Hughes, "Astronomy on the personal computer",
   and the US Naval Observatory almanac formulas); DESIGN.md section 6: <= 0.011 deg from NREL SPA.
.. [2] D. G. Erbs, S. A. Klein, J. A. Duffie, "Estimation of the diffuse radiation fraction for
   hourly, daily and monthly-average global radiation", Solar Energy 28(4), 293-302, 1982.
.. [3] J. E. Hay, J. A. Davies, "Calculations of the solar radiation incident on an inclined
   surface", Proc. First Canadian Solar Radiation Data Workshop, 59-72, 1980.
.. [4] R. Perez et al., "Modeling daylight availability and irradiance components from direct
   and global irradiance", Solar Energy 44(5), 271-289, 1990.
.. [5] N. Martin, J. M. Ruiz, "Calculation of the PV modules angular losses under field
   conditions by means of an analytical model", Sol. Energy Mater. Sol. Cells 70, 25-38, 2001.
.. [6] D. Faiman, "Assessing the outdoor operating temperature of photovoltaic modules",
   Prog. Photovolt. 16(4), 307-315, 2008.
.. [7] A. P. Dobos, "PVWatts Version 5 Manual", NREL/TP-6A20-62641, 2014.
.. [8] P. Ineichen, R. Perez, "A new airmass independent formulation for the Linke turbidity
   coefficient", Solar Energy 73(3), 151-157, 2002.
.. [9] C. Remund, L. Wald, M. Lefevre, T. Ranchin, J. Page, "Worldwide Linke turbidity
   information", Proc. ISES Solar World Congress, 2003.
.. [10] D. C. Jordan, S. R. Kurtz, "Photovoltaic degradation rates - an analytical review",
   Prog. Photovolt. 21(1), 12-29, 2013.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from wattlake.numerics import round_floats
from wattlake.tables import PV_INTERVALS, SILVER_SCHEMA, UTC_TS  # noqa: F401 (re-exported)

__all__ = [
    "YieldParams",
    "SILVER_SCHEMA",
    "PV_INTERVALS",
    "ACTUALS_COLUMNS",
    "EXPECTED_COLUMNS",
    "hourly_actuals",
    "expected_hourly",
    "pv_intervals",
    "readings_for_days",
    "poa_components",
    "dc_ac_power",
]

#: length of one inverter reading interval [h]
READING_H = 5.0 / 60.0
#: readings per complete hour
READINGS_PER_HOUR = 12
#: an MPPT input whose hourly mean current is below this is "no light" for the ratio [A]
DC_RATIO_MIN_CURRENT_A = 0.1


@dataclass(frozen=True)
class YieldParams:
    """Parameters of the expected-yield chain (defaults are documented literature values).

    Attributes
    ----------
    gamma_pdc : float
        Power temperature coefficient [1/K]; -0.0037 is typical of current mono c-Si datasheets
        (-0.0034 .. -0.0040); PVWatts v5 uses -0.0047 "standard", -0.0035 "premium" [7]_.
    eta_inv_nom : float
        Nominal inverter efficiency [-], PVWatts default 0.96 [7]_.
    albedo : float
        Ground reflectance [-]; 0.2 is the usual grass/urban value.
    transposition_model : str
        ``"haydavies"`` (default, [3]_), ``"perez"`` ([4]_) or ``"isotropic"`` (for checks).
    faiman_u0 : float
        Faiman constant heat-loss coefficient [W/(m^2 K)], pvlib default 25.0 [6]_.
    faiman_u1 : float
        Faiman wind heat-loss coefficient [W s/(m^3 K)], pvlib default 6.84 [6]_.
    iam_a_r : float
        Martin & Ruiz angular-loss coefficient [-], 0.16 for standard glass [5]_.
    loss_soiling_pct, loss_shading_pct, loss_snow_pct, loss_mismatch_pct, loss_wiring_pct, \
loss_connections_pct, loss_lid_pct, loss_nameplate_pct, loss_availability_pct : float
        PVWatts loss budget [%] combined with :func:`pvlib.pvsystem.pvwatts_losses` (product of
        ``1 - loss``). Defaults are the PVWatts v5 defaults [7]_ (soiling 2, shading 3, snow 0,
        mismatch 2, wiring 2, connections 0.5, LID 1.5, nameplate 1) EXCEPT availability 0
        (PVWatts 3 %): outages are observed in the readings, so the expected energy is the energy
        of a system that is up. Total 11.42 %.
    degradation_pct_per_year : float
        Natural ageing since ``install_date`` [%/year]; 0.5 is the median c-Si rate of
        Jordan & Kurtz [10]_. Used instead of PVWatts' flat ``age`` loss.
    clearsky_index_fallback : float
        Clear-sky index [-] used to scale the Ineichen clear sky in a station gap when the
        station-day has fewer than ``min_hours_for_day_index`` observed daylight hours. 0.65 is
        the Dutch annual mean: ~1,000-1,100 kWh/m^2 measured GHI per year (KNMI De Bilt, recent
        years) over 1,554 kWh/m^2 Ineichen clear-sky GHI (this chain, De Bilt, 2025). Monthly
        means range from ~0.45 (winter) to ~0.7 (late spring).
    min_hours_for_day_index : int
        Observed hours with clear-sky GHI > 50 W/m^2 needed to use the station-day's own clear-sky
        index (sum GHI / sum clear-sky GHI) in its gaps.
    temp_air_fallback_c : float
        Air temperature [degC] when a station has no temperature at all in the frame (gaps
        with observations on either side are interpolated linearly in time).
    wind_fallback_m_s : float
        Wind speed [m/s] when a station has no wind at all in the frame (else interpolated).
    low_sun_zenith_deg : float
        ``low_sun`` when the midpoint zenith exceeds this [deg].
    low_poa_w_m2 : float
        ``low_sun`` when the hourly mean plane-of-array irradiance is below this [W/m^2].
    clip_fraction : float
        ``clipped`` when the measured hourly mean AC power >= this x AC rating [-].
    """

    gamma_pdc: float = -0.0037
    eta_inv_nom: float = 0.96
    albedo: float = 0.2
    transposition_model: str = "haydavies"
    faiman_u0: float = 25.0
    faiman_u1: float = 6.84
    iam_a_r: float = 0.16
    loss_soiling_pct: float = 2.0
    loss_shading_pct: float = 3.0
    loss_snow_pct: float = 0.0
    loss_mismatch_pct: float = 2.0
    loss_wiring_pct: float = 2.0
    loss_connections_pct: float = 0.5
    loss_lid_pct: float = 1.5
    loss_nameplate_pct: float = 1.0
    loss_availability_pct: float = 0.0
    degradation_pct_per_year: float = 0.5
    clearsky_index_fallback: float = 0.65
    min_hours_for_day_index: int = 3
    temp_air_fallback_c: float = 12.0
    wind_fallback_m_s: float = 3.0
    low_sun_zenith_deg: float = 80.0
    low_poa_w_m2: float = 50.0
    clip_fraction: float = 0.97

    @property
    def system_loss_fraction(self) -> float:
        """Combined PVWatts system loss [-] (0.1142 with the defaults)."""
        import pvlib

        pct = pvlib.pvsystem.pvwatts_losses(
            soiling=self.loss_soiling_pct, shading=self.loss_shading_pct, snow=self.loss_snow_pct,
            mismatch=self.loss_mismatch_pct, wiring=self.loss_wiring_pct,
            connections=self.loss_connections_pct, lid=self.loss_lid_pct,
            nameplate_rating=self.loss_nameplate_pct, age=0.0,
            availability=self.loss_availability_pct,
        )
        return float(pct) / 100.0


# --------------------------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------------------------

#: columns of :func:`hourly_actuals`
ACTUALS_COLUMNS = ("system_id", "ts_utc", "actual_energy_kwh", "n_readings", "ac_power_mean_w",
                   "ac_power_max_w", "dc_current_min_ratio", "status_fault_count")

#: columns of :func:`expected_hourly`
EXPECTED_COLUMNS = ("system_id", "ts_utc", "day", "expected_energy_kwh", "expected_dc_kwh",
                    "poa_irradiation_kwh_m2", "ghi_irradiation_kwh_m2", "cell_temp_c", "temp_air_c",
                    "solar_zenith_deg", "expected_clipped", "night", "low_sun", "estimated")

# --------------------------------------------------------------------------------------------
# 1. actuals
# --------------------------------------------------------------------------------------------

def readings_for_days(first_day: dt.date, last_day: dt.date | None = None) -> pl.Expr:
    """Filter for the readings that make up the hours of UTC days ``first_day..last_day``.

    Parameters
    ----------
    first_day, last_day : datetime.date
        Inclusive UTC day range (``last_day`` defaults to ``first_day``).

    Returns
    -------
    polars.Expr
        ``first_day 00:00 < ts_utc <= last_day+1 00:00`` (UTC). Read the Delta partitions
        ``first_day .. last_day + 1`` and apply it.
    """
    last_day = last_day or first_day
    t0 = dt.datetime.combine(first_day, dt.time(0), tzinfo=dt.timezone.utc)
    t1 = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0), tzinfo=dt.timezone.utc)
    return (pl.col("ts_utc") > pl.lit(t0).dt.cast_time_unit("us")) & (
        pl.col("ts_utc") <= pl.lit(t1).dt.cast_time_unit("us"))


def hourly_actuals(readings: pl.DataFrame) -> pl.DataFrame:
    """Hourly production per system from 5-minute inverter readings.

    Parameters
    ----------
    readings : polars.DataFrame
        ``bronze/inverter_readings`` rows (deduplicated): ``system_id``, ``ts_utc`` (END of the
        5-minute interval, UTC), ``ac_power_w`` (mean AC power of the interval [W]),
        ``status`` (``"ok"``, ``"standby"``, ``"fault"``) and ``dc`` (list of
        ``{mppt, voltage_v, current_a}``). Other columns are ignored. ``system_id`` and
        ``ts_utc`` must not be null (bronze has none): a ``ValueError`` says so.

    Returns
    -------
    polars.DataFrame
        One row per (``system_id``, ``ts_utc`` = START of the UTC hour) that has readings, in
        that order:

        - ``actual_energy_kwh`` [kWh]: ``sum(ac_power_w) x 5/60 / 1000`` over the readings whose
          interval lies in the hour (midpoint ``ts - 2.5 min`` in the hour); missing readings
          contribute nothing (see ``n_readings``). Standby draw (>= -5 W) is kept as measured.
        - ``n_readings`` (Int32, 1..12), ``ac_power_mean_w``, ``ac_power_max_w`` [W].
        - ``dc_current_min_ratio`` [-]: min over MPPT inputs of the hourly mean input current
          (rounded to 1e-9 A before it is compared) divided by the max; 0 for a dead input next
          to a live one. Null with fewer than two inputs, or when the best input's mean current
          is below :data:`DC_RATIO_MIN_CURRENT_A` (night).
        - ``status_fault_count`` (Int32): readings with status ``"fault"``.

    Computed in one compiled pass over the readings (:func:`_hourly_cells`): each is added to a
    cell per (system, hour of the readings' time span), and the non-empty cells are the hours.
    When the readings are sparse in time (more than :data:`_DENSE_CELLS_PER_READING` cells per
    reading) the cells are only the (system, hour) pairs present, numbered by one sort.
    Sums are taken in the order the rows come in, so another row order can change the last
    binary digit; silver rounds its floats to 1e-9 (:func:`~wattlake.numerics.round_floats`).
    ``tests/test_yield_model.py`` checks both layouts against the same rules written as Polars
    aggregations, on fuzzed readings. A silver step of 2.6 M readings took 0.15--0.25 s and
    0.26 CPU-seconds; as Polars aggregations 0.44--0.52 s and 0.83--0.96 CPU-seconds (2026-11-24).
    """
    frame = readings.select("system_id", "ts_utc", "ac_power_w", "status", "dc")
    if frame.select(pl.col("system_id").is_null().any() | pl.col("ts_utc").is_null().any()).item():
        raise ValueError("hourly_actuals: readings without system_id or ts_utc (bronze has none)")
    n = frame.height
    if n == 0:
        return pl.DataFrame(schema=_ACTUALS_SCHEMA)
    ids = frame.get_column("system_id").cast(pl.String).unique().sort()
    code = frame.get_column("system_id").cast(pl.Enum(ids)).to_physical().cast(pl.Int64).to_numpy()
    ts = frame.get_column("ts_utc").dt.cast_time_unit("us").to_physical().to_numpy()
    hour = (ts - _MIDPOINT_US) // _HOUR_US  # hours since the epoch of the interval midpoint
    h0 = int(hour.min())
    hour -= h0
    span = int(hour.max()) + 1
    power = frame.get_column("ac_power_w").cast(pl.Float64)
    p_ok = power.is_not_null().to_numpy()
    power = power.fill_null(0.0).to_numpy()
    fault = (frame.get_column("status") == "fault").fill_null(False).to_numpy()
    el_first, el_count, slot, current, current_ok = _dc_inputs(frame.get_column("dc"))
    key = code * span + hour  # (system, hour) as one integer
    if len(ids) * span <= max(_DENSE_CELLS_PER_READING * n, _DENSE_MIN_CELLS):
        cell, n_cells, cell_key = key, len(ids) * span, None  # a cell for every hour of the span
    else:  # readings sparse in time (few per hour of their span): the hours present, numbered
        cell_key, cell = np.unique(key, return_inverse=True)
        n_cells = cell_key.size
    present = np.bincount(slot[slot >= 0], minlength=256) > 0  # the input numbers in use
    kmap = np.cumsum(present) - 1
    n_k = max(int(present.sum()), 1)
    out = _Hours(n)
    groups = _hourly_cells(
        cell, power, p_ok, fault, el_first, el_count, slot, current, current_ok, DC_RATIO_MIN_CURRENT_A,
        kmap, n_k, np.zeros(n_cells, dtype=np.int64), np.zeros(n_cells, dtype=np.float64),
        np.zeros(n_cells, dtype=np.int64), np.full(n_cells, -np.inf), np.zeros(n_cells, dtype=np.int64),
        np.zeros(n_cells * n_k, dtype=np.float64), np.zeros(n_cells * n_k, dtype=np.int64),
        np.zeros(n_cells * n_k, dtype=np.bool_), *out.arrays())
    keys = out.cell[:groups] if cell_key is None else cell_key[out.cell[:groups]]
    return out.frame(groups, ids, keys // span, keys % span + h0)


#: :func:`hourly_actuals` accumulates into one cell per (system, hour of the span) when there are at
#: most this many cells per reading (always for 5-minute readings: 1/12), else into one cell per
#: (system, hour) present
_DENSE_CELLS_PER_READING = 4
#: ... and always when there are at most this many cells
_DENSE_MIN_CELLS = 1 << 16


class _Hours:
    """The output groups of :func:`_hourly_cells`: arrays for at most ``n`` groups, then a frame."""

    def __init__(self, n: int):
        self.cell, self.n, self.fault = (np.empty(n, dtype=np.int64) for _ in range(3))
        self.sum, self.max, self.ratio = (np.empty(n, dtype=np.float64) for _ in range(3))
        self.ratio_ok = np.empty(n, dtype=np.bool_)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.cell, self.sum, self.n, self.max, self.fault, self.ratio, self.ratio_ok

    def frame(self, groups: int, ids: pl.Series, code: np.ndarray, hour: np.ndarray) -> pl.DataFrame:
        """The groups as :func:`hourly_actuals` rows: ``code`` indexes ``ids``, ``hour`` counts
        hours since the epoch."""
        counts = self.n[:groups]
        has = counts > 0
        return pl.DataFrame({
            "system_id": ids.gather(pl.Series(code)),
            "ts_utc": pl.Series(hour * _HOUR_US).cast(pl.Datetime("us", "UTC")),
            "actual_energy_kwh": self.sum[:groups] * (READING_H / 1000.0),
            "n_readings": pl.Series(counts, dtype=pl.Int32),
            "ac_power_mean_w": _where(np.divide(self.sum[:groups], counts, where=has, out=np.zeros(groups)), has),
            "ac_power_max_w": _where(self.max[:groups], has),
            "dc_current_min_ratio": _where(self.ratio[:groups], self.ratio_ok[:groups]),
            "status_fault_count": pl.Series(self.fault[:groups], dtype=pl.Int32),
        }, schema=_ACTUALS_SCHEMA)


_HOUR_US = 3_600_000_000
#: a reading at ts covers (ts - 5 min, ts]: its midpoint, 2.5 min earlier, names its hour [us]
_MIDPOINT_US = 150_000_000
_ACTUALS_SCHEMA = {"system_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"), "actual_energy_kwh": pl.Float64,
                   "n_readings": pl.Int32, "ac_power_mean_w": pl.Float64, "ac_power_max_w": pl.Float64,
                   "dc_current_min_ratio": pl.Float64, "status_fault_count": pl.Int32}


def _where(values: np.ndarray, valid: np.ndarray) -> pl.Series:
    """``values`` as a Float64 series, null where ``valid`` is False."""
    return pl.Series(pa.array(values, mask=~valid, type=pa.float64()))


def _dc_inputs(dc: pl.Series) -> tuple[np.ndarray, ...]:
    """The MPPT inputs of a ``dc`` list column as flat arrays: row i's inputs are
    ``slot[first[i]:first[i] + count[i]]`` (a null list has none), ``slot`` the input number + 128
    (-1 for a null input or number), ``current`` [A] with ``current_ok``."""
    lists = dc.to_arrow()
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    if lists.null_count:  # a null list may still span elements in Arrow: make it empty
        lists = pc.if_else(lists.is_null(), pa.scalar([], type=lists.type), lists)
    at = np.asarray(lists.offsets, dtype=np.int64)
    inputs = lists.values.flatten()  # struct nulls pushed down into the fields
    names = [f.name for f in lists.type.value_type]
    mppt, current = inputs[names.index("mppt")], inputs[names.index("current_a")]
    slot = np.asarray(mppt.cast(pa.int16()).fill_null(-129), dtype=np.int16) + np.int16(128)
    return (at[:-1], np.diff(at), slot.astype(np.int64),
            np.asarray(current.fill_null(0.0).cast(pa.float64()), dtype=np.float64),
            np.asarray(current.is_valid(), dtype=np.bool_))


@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _hourly_cells(cell, power, p_ok, fault, el_first, el_count, slot, current, current_ok, min_current,
                  kmap, n_k, c_rows, c_sum, c_n, c_max, c_fault, d_sum, d_n, d_seen,
                  g_cell, g_sum, g_n, g_max, g_fault, g_ratio, g_ratio_ok):  # pragma: no cover - compiled
    """The hours of :func:`hourly_actuals` by accumulation: one pass over the rows in their order,
    each into its ``cell`` (``c_*``; ``d_*`` per cell and input number through ``kmap``), then the
    non-empty cells in cell order as groups (``g_*``); returns their number."""
    for r in range(cell.size):
        c = cell[r]
        c_rows[c] += 1
        if p_ok[r]:
            c_sum[c] += power[r]
            c_n[c] += 1
            if power[r] > c_max[c]:
                c_max[c] = power[r]
        if fault[r]:
            c_fault[c] += 1
        for e in range(el_first[r], el_first[r] + el_count[r]):  # the row's MPPT inputs
            if slot[e] < 0:
                continue
            d = c * n_k + kmap[slot[e]]
            d_seen[d] = True
            if current_ok[e]:
                d_sum[d] += current[e]
                d_n[d] += 1
    groups = 0
    for c in range(c_rows.size):
        if c_rows[c] == 0:
            continue
        lo_i = np.inf
        hi_i = -np.inf
        n_inputs = 0
        n_means = 0
        for j in range(n_k):  # each input's hourly mean current, rounded as np.round(x, 9)
            d = c * n_k + j
            if d_seen[d]:
                n_inputs += 1
                if d_n[d] > 0:
                    m = np.rint(d_sum[d] / d_n[d] * 1e9) / 1e9
                    n_means += 1
                    lo_i = min(lo_i, m)
                    hi_i = max(hi_i, m)
        g_cell[groups] = c
        g_sum[groups] = c_sum[c]
        g_n[groups] = c_n[c]
        g_max[groups] = c_max[c]
        g_fault[groups] = c_fault[c]
        g_ratio_ok[groups] = n_inputs >= 2 and n_means > 0 and hi_i >= min_current
        g_ratio[groups] = min(max(lo_i / hi_i, 0.0), 1.0) if g_ratio_ok[groups] else 0.0
        groups += 1
    return groups


# --------------------------------------------------------------------------------------------
# 2. expected
# --------------------------------------------------------------------------------------------

def poa_components(surface_tilt, surface_azimuth, solar_zenith, solar_azimuth, dni, ghi, dhi,
                   dni_extra, airmass, params: YieldParams = YieldParams(),
                   iam_diffuse: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Plane-of-array irradiance and effective irradiance after angular losses.

    Parameters
    ----------
    surface_tilt, surface_azimuth : array_like
        Array tilt from horizontal and azimuth (180 = south) [deg].
    solar_zenith, solar_azimuth : array_like
        True solar zenith and azimuth [deg].
    dni, ghi, dhi : array_like
        Direct normal, global and diffuse horizontal irradiance [W/m^2].
    dni_extra : array_like
        Extraterrestrial normal irradiance [W/m^2] (Hay-Davies, Perez).
    airmass : array_like
        Relative airmass [-] (Perez only).
    params : YieldParams
        ``transposition_model``, ``albedo``, ``iam_a_r``.
    iam_diffuse : tuple of array_like, optional
        Precomputed (sky, ground) diffuse IAM [-] per row (they depend on the tilt only, so
        callers with many rows per system compute them once per system); default: computed
        here with :func:`pvlib.iam.martin_ruiz_diffuse`.

    Returns
    -------
    dict of numpy.ndarray
        ``poa_global``, ``poa_direct``, ``poa_sky_diffuse``, ``poa_ground_diffuse`` [W/m^2]
        (:func:`pvlib.irradiance.get_total_irradiance`, negatives and NaN set to 0), ``aoi``
        [deg] and ``effective`` [W/m^2]: beam x IAM(aoi) + sky x IAM_sky + ground x IAM_ground
        with the Martin & Ruiz model [5]_.
    """
    import pvlib

    tilt, surface_azimuth, solar_zenith, solar_azimuth, dni, ghi, dhi, dni_extra, airmass = (
        np.asarray(x, dtype=float) for x in (surface_tilt, surface_azimuth, solar_zenith, solar_azimuth,
                                             dni, ghi, dhi, dni_extra, airmass))
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, surface_azimuth, solar_zenith, solar_azimuth, dni, ghi, dhi, dni_extra=dni_extra,
        airmass=airmass, albedo=params.albedo, model=params.transposition_model,
    )

    def clean(x) -> np.ndarray:
        return np.nan_to_num(np.asarray(x, dtype=float)).clip(0.0)

    beam, sky, ground = clean(poa["poa_direct"]), clean(poa["poa_sky_diffuse"]), clean(poa["poa_ground_diffuse"])
    aoi = np.asarray(pvlib.irradiance.aoi(tilt, surface_azimuth, solar_zenith, solar_azimuth), dtype=float)
    iam_beam = np.nan_to_num(np.asarray(pvlib.iam.martin_ruiz(aoi, a_r=params.iam_a_r), dtype=float))
    if iam_diffuse is None:
        iam_diffuse = _iam_diffuse(tilt, params)
    iam_sky, iam_ground = (np.asarray(x, dtype=float) for x in iam_diffuse)
    return {
        "poa_global": beam + sky + ground,
        "poa_direct": beam,
        "poa_sky_diffuse": sky,
        "poa_ground_diffuse": ground,
        "aoi": aoi,
        "effective": beam * iam_beam + sky * iam_sky + ground * iam_ground,
    }


def _iam_diffuse(tilt, params: YieldParams) -> tuple[np.ndarray, np.ndarray]:
    """Martin & Ruiz [5]_ IAM of isotropic sky and ground diffuse for a tilt [deg] -> (sky, ground)."""
    import pvlib

    d = pvlib.iam.martin_ruiz_diffuse(np.asarray(tilt, dtype=float), a_r=params.iam_a_r)
    return (np.nan_to_num(np.asarray(d["sky"], dtype=float)),
            np.nan_to_num(np.asarray(d["ground"], dtype=float)))


def dc_ac_power(effective_irradiance, temp_cell, kwp, inverter_ac_kw, age_years=0.0,
                params: YieldParams = YieldParams()) -> dict[str, np.ndarray]:
    """PVWatts DC and AC power of an array.

    Parameters
    ----------
    effective_irradiance : array_like
        Irradiance reaching the cells [W/m^2].
    temp_cell : array_like
        Cell temperature [degC].
    kwp : array_like
        Array rating at STC [kWp]; ``pdc0 = 1000 kwp`` [W].
    inverter_ac_kw : array_like
        Inverter AC rating [kW]; inverter ``pdc0 = 1000 inverter_ac_kw / eta_inv_nom`` [W].
    age_years : array_like
        Years since installation (natural ageing at ``degradation_pct_per_year``) [year].
    params : YieldParams

    Returns
    -------
    dict of numpy.ndarray
        ``pdc_module`` [W]: :func:`pvlib.pvsystem.pvwatts_dc` =
        ``pdc0 G/1000 (1 + gamma (T_cell - 25))`` [7]_; ``pdc`` [W]: that times
        ``(1 - system losses) (1 - ageing)``; ``pac`` [W]: :func:`pvlib.inverter.pvwatts`, at most
        the AC rating; ``clipped``: ``pdc`` at or above the inverter's DC input limit.
    """
    import pvlib

    pdc0 = np.asarray(kwp, dtype=float) * 1000.0
    ac_w = np.asarray(inverter_ac_kw, dtype=float) * 1000.0
    ageing = (1.0 - params.degradation_pct_per_year / 100.0 * np.asarray(age_years, dtype=float)).clip(0.0, 1.0)
    pdc_module = np.nan_to_num(np.asarray(
        pvlib.pvsystem.pvwatts_dc(effective_irradiance, temp_cell, pdc0, params.gamma_pdc),
        dtype=float)).clip(0.0)
    pdc = pdc_module * (1.0 - params.system_loss_fraction) * ageing
    inv_pdc0 = ac_w / params.eta_inv_nom
    pac = np.nan_to_num(np.asarray(pvlib.inverter.pvwatts(pdc, inv_pdc0, params.eta_inv_nom),
                                   dtype=float)).clip(0.0)
    return {"pdc_module": pdc_module, "pdc": pdc, "pac": pac, "clipped": (pdc >= inv_pdc0) & (pdc > 0)}


def linke_turbidity(times: pd.DatetimeIndex, lat: float, lon: float) -> np.ndarray:
    """Linke turbidity [-] at ``times`` (UTC) for a site: pvlib's climatology, read once per site.

    ``pvlib.clearsky.lookup_linke_turbidity`` opens its HDF5 file on every call (3 ms), and
    silver calls it per station and step: 120 times for a year of 100 homes in monthly steps,
    0.4 s. Its value depends only on the UTC day of the year and whether the year is a leap
    year, so each site's lookup over one common and one leap year is kept (:func:`_turbidity_by_day`)
    and indexed: the same floats as calling pvlib for ``times``.
    """
    t = times.tz_convert("UTC") if times.tz is not None else times
    table = _turbidity_by_day(float(lat), float(lon))
    return table[t.is_leap_year.astype(np.int64), np.asarray(t.dayofyear, dtype=np.int64) - 1]


@lru_cache(maxsize=1024)
def _turbidity_by_day(lat: float, lon: float) -> np.ndarray:
    """[2, 366]: pvlib's interpolated Linke turbidity per day of 2015 (row 0) and 2016 (row 1)."""
    import pvlib

    out = np.full((2, 366), np.nan)
    for row, year in enumerate((2015, 2016)):  # loop over two years: one lookup each
        days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D", tz="UTC")
        out[row, :days.size] = np.asarray(pvlib.clearsky.lookup_linke_turbidity(days, lat, lon), dtype=float)
    out.setflags(write=False)
    return out


def _station_hours(weather: pl.DataFrame, stations: pl.DataFrame, params: YieldParams) -> pl.DataFrame:
    """Complete hourly grid per station with sun, clear sky, gap-filled weather and DNI/DHI."""
    import pvlib

    w = (
        weather.select(
            pl.col("station_id").cast(pl.Int32),
            pl.col("ts_utc").dt.cast_time_unit("us").dt.convert_time_zone("UTC").dt.truncate("1h"),
            pl.col("ghi_w_m2").cast(pl.Float64), pl.col("temp_air_c").cast(pl.Float64),
            pl.col("wind_speed_m_s").cast(pl.Float64),
        )
        .unique(["station_id", "ts_utc"], keep="first", maintain_order=True)
    )
    if w.height == 0:
        return w
    # every hour between a station's first and last row, so absent rows are gaps too
    grid = (
        w.group_by("station_id").agg(pl.col("ts_utc").min().alias("t0"), pl.col("ts_utc").max().alias("t1"))
        .select("station_id", pl.datetime_ranges("t0", "t1", "1h").alias("ts_utc"))
        .explode("ts_utc")
    )
    st = stations.select(pl.col("station_id").cast(pl.Int32), pl.col("lat").cast(pl.Float64),
                         pl.col("lon").cast(pl.Float64)).unique("station_id")
    unknown = set(grid["station_id"].unique().to_list()) - set(st["station_id"].to_list())
    if unknown:
        raise ValueError(f"weather has stations without coordinates: {sorted(unknown)}")
    w = (grid.join(w, on=["station_id", "ts_utc"], how="left")
         .join(st, on="station_id", how="left")
         .sort("station_id", "ts_utc"))

    # sun and clear sky: one pvlib call per station (~10), each over all of its hours
    zen, app, azi, linke = [], [], [], []
    for part in w.partition_by("station_id", maintain_order=True):
        mid = pd.DatetimeIndex(part["ts_utc"].dt.replace_time_zone(None).to_numpy()).tz_localize("UTC") \
            + pd.Timedelta(minutes=30)
        lat, lon = float(part["lat"][0]), float(part["lon"][0])
        sp = pvlib.solarposition.get_solarposition(mid, lat, lon, method="ephemeris")
        zen.append(sp["zenith"].to_numpy(dtype=float))
        app.append(sp["apparent_zenith"].to_numpy(dtype=float))
        azi.append(sp["azimuth"].to_numpy(dtype=float))
        linke.append(linke_turbidity(mid, lat, lon))
    zen, app, azi, linke = (np.concatenate(a) for a in (zen, app, azi, linke))
    doy = w["ts_utc"].dt.ordinal_day().to_numpy().astype(float)
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(doy), dtype=float)
    am_rel = np.asarray(pvlib.atmosphere.get_relative_airmass(app), dtype=float)
    am_abs = np.asarray(pvlib.atmosphere.get_absolute_airmass(am_rel), dtype=float)
    cs = pvlib.clearsky.ineichen(app, am_abs, linke, altitude=0.0, dni_extra=dni_extra)
    ghi_clear = np.nan_to_num(np.asarray(cs["ghi"], dtype=float)).clip(0.0)
    w = w.with_columns(
        pl.Series("zenith", zen), pl.Series("solar_azimuth", azi), pl.Series("dni_extra", dni_extra),
        pl.Series("airmass", np.nan_to_num(am_rel, nan=0.0)), pl.Series("ghi_clear", ghi_clear),
        pl.Series("doy", doy),
    )

    # gap filling: GHI from the station-day clear-sky index, temperature/wind interpolated in time
    obs = pl.col("ghi_w_m2").is_not_null() & (pl.col("ghi_clear") > 50.0)
    day_kc = (
        pl.when(obs.sum().over("station_id", pl.col("ts_utc").dt.date()) >= params.min_hours_for_day_index)
        .then(pl.when(obs).then(pl.col("ghi_w_m2")).otherwise(0.0).sum().over("station_id", pl.col("ts_utc").dt.date())
              / pl.when(obs).then(pl.col("ghi_clear")).otherwise(0.0).sum().over("station_id", pl.col("ts_utc").dt.date()))
        .otherwise(params.clearsky_index_fallback)
        .clip(0.05, 1.3)
    )

    def fill(col: str, default: float) -> pl.Expr:
        return (pl.col(col).interpolate().forward_fill().backward_fill().over("station_id")
                .fill_null(default))

    w = w.with_columns(
        (pl.col("ghi_w_m2").is_null() | pl.col("temp_air_c").is_null()
         | pl.col("wind_speed_m_s").is_null()).alias("estimated"),
        pl.coalesce(pl.col("ghi_w_m2"), day_kc * pl.col("ghi_clear")).clip(0.0).alias("ghi"),
        fill("temp_air_c", params.temp_air_fallback_c).alias("temp_air"),
        fill("wind_speed_m_s", params.wind_fallback_m_s).clip(0.0).alias("wind"),
    )
    dec = pvlib.irradiance.erbs(w["ghi"].to_numpy(), zen, doy)
    return w.with_columns(
        pl.Series("dni", np.nan_to_num(np.asarray(dec["dni"], dtype=float)).clip(0.0)),
        pl.Series("dhi", np.nan_to_num(np.asarray(dec["dhi"], dtype=float)).clip(0.0)),
    ).select("station_id", "ts_utc", "zenith", "solar_azimuth", "dni_extra", "airmass", "ghi",
             "dni", "dhi", "temp_air", "wind", "estimated")


def _nearest_station_ids(systems: pl.DataFrame, stations: pl.DataFrame) -> pl.Series:
    """``station_id`` of each system, the nearest station (great circle) where it is null."""
    sid = systems["station_id"].cast(pl.Int32)
    if sid.null_count() == 0:
        return sid
    la1 = np.radians(systems["lat"].to_numpy())[:, None]
    lo1 = np.radians(systems["lon"].to_numpy())[:, None]
    la2 = np.radians(stations["lat"].to_numpy())[None, :]
    lo2 = np.radians(stations["lon"].to_numpy())[None, :]
    a = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    nearest = stations["station_id"].cast(pl.Int32).to_numpy()[np.argmin(a, axis=1)]
    return pl.Series("station_id", np.where(sid.is_null().to_numpy(), nearest, sid.fill_null(0).to_numpy()),
                     dtype=pl.Int32)


def expected_hourly(systems: pl.DataFrame, weather: pl.DataFrame, stations: pl.DataFrame,
                    params: YieldParams = YieldParams()) -> pl.DataFrame:
    """Expected (fault-free) hourly energy of every system from its station's weather.

    Parameters
    ----------
    systems : polars.DataFrame
        ``restricted/systems`` rows: ``system_id``, ``kwp`` [kWp], ``tilt_deg``, ``azimuth_deg``
        [deg, 180 = south], ``inverter_ac_kw`` [kW], ``station_id`` (nearest KNMI station; where
        null the nearest by ``lat``/``lon``), ``install_date`` (optional: ageing, and no rows
        before it).
    weather : polars.DataFrame
        ``bronze/weather`` rows: ``station_id``, ``ts_utc`` (START of the hour), hourly means
        ``ghi_w_m2`` [W/m^2], ``temp_air_c`` [degC], ``wind_speed_m_s`` [m/s]; nulls are gaps.
    stations : polars.DataFrame
        ``bronze/weather_stations``: ``station_id``, ``lat``, ``lon`` [deg].
    params : YieldParams

    Returns
    -------
    polars.DataFrame
        One row per (``system_id``, ``ts_utc``) for every hour between the first and last weather
        row of the system's station (missing rows count as gaps), from ``install_date`` on:

        - ``day`` (UTC date), ``expected_energy_kwh`` (AC energy of the hour [kWh]),
          ``expected_dc_kwh`` (DC after losses [kWh]), ``poa_irradiation_kwh_m2`` (plane of
          array, before angular losses) and ``ghi_irradiation_kwh_m2`` (as used, gap-filled)
          [kWh/m^2], ``cell_temp_c``, ``temp_air_c`` [degC], ``solar_zenith_deg`` [deg] at the
          hour midpoint;
        - ``expected_clipped``: the modelled AC is at the inverter's AC rating;
        - ``night``: midpoint zenith >= 90 deg (energy is still computed from the GHI: the
          sunrise/sunset hour can have some); ``low_sun``: zenith > 80 deg or POA < 50 W/m^2
          (low-sun / snow-suspect hours, where model and meter disagree most);
        - ``estimated``: the station's GHI, temperature or wind was missing that hour; GHI is then
          Ineichen clear sky [8]_ (Linke turbidity climatology [9]_, altitude 0 m) x the
          station-day clear-sky index (sum observed GHI / sum clear-sky GHI over the day's
          observed hours with clear-sky GHI > 50 W/m^2; ``params.clearsky_index_fallback`` = 0.65
          with fewer than 3 such hours); temperature and wind are interpolated in time.

    Notes
    -----
    Sun position of the station, not the house. Systems are within ~60 km of their station
    (99 %; all < ~65 km). Moving an observer by a great-circle distance ``d`` tilts the local
    vertical by ``d / R_earth`` = 60 / 6371 rad = 0.54 deg, so the sun vector in the local frame
    turns by at most 0.54 deg: |d zenith| <= 0.54 deg and the angle of incidence (AOI) on any
    fixed roof plane changes by at most 0.54 deg (|d azimuth| stays near 1 deg or less in NL, the
    zenith never being below 28 deg). The beam on the plane is ``DNI cos(AOI)``, so its relative
    error is at most ``tan(AOI) x 0.0094``: 0.5 % at AOI 30 deg, 1.6 % at 60 deg, 11 % at 85 deg
    (where the beam is small). Measured with this chain (clear sky at De Bilt, GHI decomposed at
    the station, transposed with the station's vs the house's sun, 60 km E / N / S, tilt 35 deg,
    21 March / June / December): south roofs differ by <= 0.3 % in daily POA irradiation and
    <= 6 % in any hour with POA > 50 W/m^2 (the first/last hour of an east offset); east roofs by
    <= 1.5 % daily (December) and up to 11 % in a low-sun hour. An east-west offset is mostly a
    3.5-min time shift that moves energy between hours and cancels over a day. So the daily
    energy effect is <= 0.3 % (south) to <= 1.5 % (east/west), well below the ~4 % spread of
    daily cloudiness between station and house, and hourly comparisons in ``low_sun`` hours
    should not be trusted (they are flagged).

    Hourly means: the sun is taken at the midpoint of the hour while GHI is the hour's mean;
    the sunrise and sunset hours are therefore the least accurate (flagged ``low_sun``).
    Clipping from hourly means is underestimated when clouds pass (a mean below the rating can
    hide 5-min peaks above it).

    Vectorised: the systems are joined to the station-hour table by ``station_id`` and the
    whole chain runs on 1-D arrays over all (system, hour) rows; pvlib is called once per
    station only for the solar position and Linke turbidity lookup.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # pvlib at night (zenith > 90)
        return _expected_hourly(systems, weather, stations, params)


def _expected_hourly(systems: pl.DataFrame, weather: pl.DataFrame, stations: pl.DataFrame,
                     params: YieldParams) -> pl.DataFrame:
    import pvlib

    sh = _station_hours(weather, stations, params)
    sys_cols = ["system_id", "kwp", "tilt_deg", "azimuth_deg", "inverter_ac_kw"]
    sysf = systems.select(
        pl.col("system_id").cast(pl.String),
        *[pl.col(c).cast(pl.Float64) for c in sys_cols[1:]],
        _nearest_station_ids(systems, stations),
        (pl.col("install_date").cast(pl.Date) if "install_date" in systems.columns
         else pl.lit(None, dtype=pl.Date)).alias("install_date"),
    )
    if sh.height == 0 or sysf.height == 0:
        return pl.from_arrow(SILVER_SCHEMA.empty_table()).select(EXPECTED_COLUMNS)

    sky, ground = _iam_diffuse(sysf["tilt_deg"].to_numpy(), params)  # once per system
    sysf = sysf.with_columns(pl.Series("iam_sky", sky), pl.Series("iam_ground", ground)).sort("system_id")
    # left_right: rows come out by system, then by hour (sh is sorted): no sort of the big frame
    rows = (
        sysf.join(sh, on="station_id", how="inner", maintain_order="left_right")
        .with_columns(pl.col("ts_utc").dt.date().alias("day"))
        .filter(pl.col("install_date").is_null() | (pl.col("day") >= pl.col("install_date")))
    )

    def a(c: str) -> np.ndarray:
        return rows[c].to_numpy()

    zen = a("zenith")
    poa = poa_components(a("tilt_deg"), a("azimuth_deg"), zen, a("solar_azimuth"), a("dni"),
                         a("ghi"), a("dhi"), a("dni_extra"), a("airmass"), params,
                         iam_diffuse=(a("iam_sky"), a("iam_ground")))
    temp_air = a("temp_air")
    t_cell = np.asarray(pvlib.temperature.faiman(poa["poa_global"], temp_air, a("wind"),
                                                 u0=params.faiman_u0, u1=params.faiman_u1), dtype=float)
    age_days = (rows["day"] - rows["install_date"]).dt.total_days().fill_null(0).to_numpy()
    power = dc_ac_power(poa["effective"], t_cell, a("kwp"), a("inverter_ac_kw"),
                        np.clip(age_days, 0, None) / 365.25, params)

    out = rows.select("system_id", "ts_utc", "day", "estimated").with_columns(
        pl.Series("expected_energy_kwh", power["pac"] / 1000.0),   # W mean over 1 h -> kWh
        pl.Series("expected_dc_kwh", power["pdc"] / 1000.0),
        pl.Series("poa_irradiation_kwh_m2", poa["poa_global"] / 1000.0),
        pl.Series("ghi_irradiation_kwh_m2", a("ghi") / 1000.0),
        pl.Series("cell_temp_c", t_cell),
        pl.Series("temp_air_c", temp_air),
        pl.Series("solar_zenith_deg", zen),
        pl.Series("expected_clipped", power["clipped"]),
        pl.Series("night", zen >= 90.0),
        pl.Series("low_sun", (zen > params.low_sun_zenith_deg) | (poa["poa_global"] < params.low_poa_w_m2)),
    )
    return out.select(EXPECTED_COLUMNS)


# --------------------------------------------------------------------------------------------
# 3. silver/pv_intervals
# --------------------------------------------------------------------------------------------

def pv_intervals(actual: pl.DataFrame, expected: pl.DataFrame, systems: pl.DataFrame,
                 params: YieldParams = YieldParams()) -> pl.DataFrame:
    """``silver/pv_intervals``: actual and expected hourly energy side by side, with flags.

    Parameters
    ----------
    actual : polars.DataFrame
        Output of :func:`hourly_actuals`.
    expected : polars.DataFrame
        Output of :func:`expected_hourly`.
    systems : polars.DataFrame
        ``system_id``, ``inverter_ac_kw`` [kW].
    params : YieldParams
        ``clip_fraction`` (0.97).

    Returns
    -------
    polars.DataFrame
        Columns and types of :data:`SILVER_SCHEMA`, sorted by (``system_id``, ``ts_utc``). Full
        outer join on (``system_id``, ``ts_utc``):

        - an expected hour without readings has ``n_readings`` 0, ``status_fault_count`` 0 and
          null actuals;
        - a readings hour outside the weather frame has null expected columns and null
          ``expected_clipped``/``night``/``low_sun``/``estimated``;
        - ``clipped``: measured hourly mean AC power >= 0.97 x AC rating;
        - ``missing_data``: no readings, or fewer than 12 in an hour that is not ``night``
          (unknown night counts as daylight).
    """
    exp = expected.select(EXPECTED_COLUMNS).drop("day")
    act = actual.select(ACTUALS_COLUMNS)
    ac = systems.select(pl.col("system_id").cast(pl.String), pl.col("inverter_ac_kw").cast(pl.Float64))
    df = (
        exp.join(act, on=["system_id", "ts_utc"], how="full", coalesce=True)
        .join(ac, on="system_id", how="left")
        .with_columns(
            pl.col("ts_utc").dt.date().alias("day"),
            pl.col("n_readings").fill_null(0).cast(pl.Int32),
            pl.col("status_fault_count").fill_null(0).cast(pl.Int32),
        )
        .with_columns(
            (pl.col("ac_power_mean_w") >= params.clip_fraction * 1000.0 * pl.col("inverter_ac_kw"))
            .fill_null(False).alias("clipped"),
            ((pl.col("n_readings") == 0)
             | ((pl.col("n_readings") < READINGS_PER_HOUR) & ~pl.col("night").fill_null(False)))
            .alias("missing_data"),
        )
        .sort("system_id", "ts_utc")
    )
    return round_floats(pl.from_arrow(df.select(SILVER_SCHEMA.names).to_arrow().cast(SILVER_SCHEMA)))
