"""Synthetic station weather for the sample fleet, one UTC day at a time.

Model (all arrays have shape ``(n_stations, 288)``: 5-minute intervals of one UTC day; interval
``k`` ends at ``day 00:00 + 5 k min`` and is evaluated at its midpoint ``- 2.5 min``):

* Solar position: :func:`pvlib.solarposition.get_solarposition` with ``method='ephemeris'``,
  once per station and day (~10 calls per day, independent of the fleet size) [degrees].
* Clear sky: Ineichen/Perez with Linke turbidity from pvlib's monthly climatology
  (``lookup_linke_turbidity``, looked up once per station for the whole run), absolute air mass
  from the station altitude [W/m^2].
* Clear-sky index ``kc = 0.12 + 0.96 * sigmoid(2.2 * (z + 0.6 w + b(doy)))``: ``z`` is a slow
  (synoptic, time scale 1.5 days) AR(1) process whose innovations are spatially correlated across
  stations (``exp(-distance / 250 km)``), ``w`` a fast (40 min) AR(1) process per station (broken
  clouds), ``b`` a seasonal bias calibrated so that monthly GHI follows De Bilt normals
  (about 1,040 kWh/m^2 per year). ``GHI = kc * GHI_clearsky`` [W/m^2].
* Air temperature [degC]: seasonal climate curve + correlated synoptic anomaly (3-day AR(1)),
  sunny-day coupling (warm in summer, cold in winter) and a diurnal cycle whose amplitude grows
  with the day's clearness.
* Wind [m/s]: log-normal around a station climate value (coast windier), 1-day AR(1).
* Rain [mm per hour]: hourly, more likely under thick cloud (~800 mm/year).

Processes are carried across days in :class:`WeatherModel`, so a run of N days is one continuous
series, and the random numbers for day ``i`` come from ``default_rng([seed, i, 2])``: station
weather does not depend on the fleet size.

The hourly KNMI values (``HH`` = hour ending at ``HH:00`` UT) are the means of the 12 intervals
ending in that hour (the interval ending at 24:00 is approximated by the one ending 23:55).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
import pvlib

STEP_MIN = 5
N_STEPS = 24 * 60 // STEP_MIN  # 288

#: Energy-weighted clear-sky index per month (De Bilt GHI normals / Ineichen clear sky).
KC_MONTH = np.array([0.53, 0.57, 0.64, 0.70, 0.71, 0.71, 0.72, 0.75, 0.74, 0.70, 0.57, 0.56])
KC_MIN, KC_SPAN, KC_STEEP, FAST_W = 0.12, 0.96, 2.2, 0.6
TAU_SLOW_MIN, TAU_FAST_MIN, TAU_TEMP_MIN, TAU_WIND_MIN = 1.5 * 1440, 40.0, 3 * 1440, 1440.0

#: Climate wind speed [m/s] per station (coast windier than inland).
WIND_CLIMATE = {235: 6.8, 240: 5.2, 260: 3.6, 270: 5.0, 280: 4.0, 290: 3.6, 310: 6.3, 344: 4.6,
                370: 3.8, 380: 4.0}
#: Station temperature offset [K] (south-east warmer, north colder).
TEMP_OFFSET = {235: -0.2, 240: 0.2, 260: 0.0, 270: -0.4, 280: -0.5, 290: -0.2, 310: 0.5,
               344: 0.3, 370: 0.4, 380: 0.6}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bias_for_kc(target: np.ndarray) -> np.ndarray:
    """Bias ``b`` so that E[kc] over the stationary latent distribution equals ``target``."""
    sd = np.sqrt(1.0 + FAST_W**2)
    x = np.linspace(-5, 5, 2001) * sd
    pdf = np.exp(-0.5 * (x / sd) ** 2)
    pdf /= pdf.sum()
    bs = np.linspace(-4, 4, 801)
    mean_kc = np.array([(KC_MIN + KC_SPAN * _sigmoid(KC_STEEP * (x + b))) @ pdf for b in bs])
    return np.interp(target, mean_kc, bs)


@dataclass
class DayWeather:
    """One UTC day of station weather at 5-minute resolution."""

    day: dt.date
    times_end: pd.DatetimeIndex  # interval end (UTC), 288
    zenith: np.ndarray  # (n_st, 288) true solar zenith [deg]
    apparent_zenith: np.ndarray
    azimuth: np.ndarray  # solar azimuth [deg]
    ghi_clear: np.ndarray  # [W/m2]
    ghi: np.ndarray  # [W/m2]
    kc: np.ndarray
    temp_air: np.ndarray  # [degC]
    wind: np.ndarray  # [m/s]
    wind_dir: np.ndarray  # [deg]
    pressure_hpa: np.ndarray
    rain_mm_h: np.ndarray  # (n_st, 24) hourly precipitation [mm], hour HH = index HH-1
    dni_extra: float

    @property
    def rain_day_mm(self) -> np.ndarray:
        return self.rain_mm_h.sum(axis=1)


class WeatherModel:
    """Carries the cloud/temperature/wind processes of all stations across days."""

    def __init__(self, stations: pl.DataFrame, altitudes: np.ndarray, seed: int,
                 first_day: dt.date, last_day: dt.date):
        self.stations = stations
        self.station_ids = stations["station_id"].to_numpy()
        self.lat = stations["lat"].to_numpy()
        self.lon = stations["lon"].to_numpy()
        self.alt = np.asarray(altitudes, dtype=float)
        self.seed = seed
        n = len(self.lat)
        la, lo = np.radians(self.lat), np.radians(self.lon)
        d = 6371 * np.arccos(np.clip(np.sin(la[:, None]) * np.sin(la[None, :])
                                     + np.cos(la[:, None]) * np.cos(la[None, :])
                                     * np.cos(lo[:, None] - lo[None, :]), -1, 1))
        self.chol = np.linalg.cholesky(np.exp(-d / 250.0) + 1e-9 * np.eye(n))
        rng = np.random.default_rng([seed, 0, 2])
        self.z = self.chol @ rng.standard_normal(n)
        self.w = rng.standard_normal(n)
        self.t_anom = 2.0 * (self.chol @ rng.standard_normal(n))
        self.v = self.chol @ rng.standard_normal(n)
        self.dir = rng.uniform(180, 260, n)
        self.wind_clim = np.array([WIND_CLIMATE.get(int(s), 4.5) for s in self.station_ids])
        self.t_off = np.array([TEMP_OFFSET.get(int(s), 0.0) for s in self.station_ids])
        # Linke turbidity per station for every day of the run (monthly climatology, smoothed)
        days = pd.date_range(pd.Timestamp(first_day), pd.Timestamp(last_day), freq="D", tz="UTC")
        days = days + pd.Timedelta(hours=12)
        self.lt_days = {d.date(): i for i, d in enumerate(days)}
        self.linke = np.stack([
            np.asarray(pvlib.clearsky.lookup_linke_turbidity(days, la_, lo_), dtype=float)
            for la_, lo_ in zip(self.lat, self.lon)
        ])  # loop over ~10 stations
        # seasonal cloud bias at mid-month anchors, interpolated by day of year
        anchors = np.array([15, 46, 74, 105, 135, 166, 196, 227, 258, 288, 319, 349])
        b = _bias_for_kc(KC_MONTH)
        self._b_doy = np.interp(np.arange(1, 367),
                                np.concatenate([anchors - 365, anchors, anchors + 365]),
                                np.concatenate([b, b, b]))

    def _ar1(self, x0: np.ndarray, phi: float, innov: np.ndarray) -> np.ndarray:
        """AR(1) path x_k = phi x_{k-1} + sqrt(1-phi^2) e_k over the last axis (vectorised)."""
        steps = innov.shape[1]
        powers = phi ** np.arange(1, steps + 1)
        s = np.sqrt(1 - phi**2)
        # x_k = phi^k x0 + s * sum_j phi^(k-j) e_j  ->  cumulative sum of e_j / phi^j (stable
        # for a day: phi^-288 >= 0.1 for the slowest process; fast ones are done in blocks)
        out = np.empty_like(innov)
        block = 48
        x = x0.copy()
        for b0 in range(0, steps, block):  # 6 blocks per day
            e = innov[:, b0:b0 + block]
            m = e.shape[1]
            pw = powers[:m]
            acc = np.cumsum(e / pw, axis=1) * pw
            out[:, b0:b0 + m] = pw * x[:, None] + s * acc
            x = out[:, b0 + m - 1]
        return out

    def step(self, day: dt.date, day_index: int) -> DayWeather:
        """Advance the processes by one UTC day and return that day's weather."""
        rng = np.random.default_rng([self.seed, day_index + 10, 2])
        n = len(self.lat)
        t0 = pd.Timestamp(day, tz="UTC")
        times_end = t0 + pd.to_timedelta(np.arange(N_STEPS) * STEP_MIN, unit="min")
        times_mid = times_end - pd.Timedelta(seconds=STEP_MIN * 30)
        doy = day.timetuple().tm_yday

        zen, app, azi = (np.empty((n, N_STEPS)) for _ in range(3))
        for i in range(n):  # ~10 stations
            sp = pvlib.solarposition.get_solarposition(times_mid, self.lat[i], self.lon[i],
                                                       altitude=self.alt[i], method="ephemeris")
            zen[i] = sp["zenith"].to_numpy()
            app[i] = sp["apparent_zenith"].to_numpy()
            azi[i] = sp["azimuth"].to_numpy()
        dni_extra = float(pvlib.irradiance.get_extra_radiation(doy))
        am_rel = pvlib.atmosphere.get_relative_airmass(app)
        pres = pvlib.atmosphere.alt2pres(self.alt)[:, None]
        am_abs = pvlib.atmosphere.get_absolute_airmass(am_rel, pres)
        lt = self.linke[:, self.lt_days[day]][:, None]
        cs = pvlib.clearsky.ineichen(app, am_abs, lt, altitude=self.alt[:, None],
                                     dni_extra=dni_extra)
        ghi_clear = np.nan_to_num(np.asarray(cs["ghi"], dtype=float)).clip(0)

        # cloud processes
        phi_s = np.exp(-STEP_MIN / TAU_SLOW_MIN)
        phi_f = np.exp(-STEP_MIN / TAU_FAST_MIN)
        z = self._ar1(self.z, phi_s, self.chol @ rng.standard_normal((n, N_STEPS)))
        w = self._ar1(self.w, phi_f, rng.standard_normal((n, N_STEPS)))
        self.z, self.w = z[:, -1].copy(), w[:, -1].copy()
        latent = z + FAST_W * w + self._b_doy[doy - 1]
        kc = KC_MIN + KC_SPAN * _sigmoid(KC_STEEP * latent)
        ghi = ghi_clear * kc

        # temperature
        season = np.cos(2 * np.pi * (doy - 20) / 365.25)
        t_clim = 10.3 - 7.0 * season + self.t_off
        phi_t = np.exp(-STEP_MIN / TAU_TEMP_MIN)
        ta = self._ar1(self.t_anom / 3.0, phi_t, self.chol @ rng.standard_normal((n, N_STEPS))) * 3.0
        self.t_anom = ta[:, -1].copy()
        clear_day = kc.mean(axis=1, keepdims=True)
        hours_utc = (np.arange(N_STEPS) * STEP_MIN - STEP_MIN / 2) / 60.0
        solar_hour = hours_utc[None, :] + self.lon[:, None] / 15.0
        diurnal = (1.5 + 5.0 * (clear_day - 0.3).clip(0)) * np.cos(2 * np.pi * (solar_hour - 14.5) / 24)
        coupling = -1.8 * season * z  # clear spells warm in summer, cold in winter
        temp = t_clim[:, None] + ta + diurnal + coupling + 0.15 * rng.standard_normal((n, N_STEPS))

        # wind
        phi_v = np.exp(-STEP_MIN / TAU_WIND_MIN)
        v = self._ar1(self.v, phi_v, self.chol @ rng.standard_normal((n, N_STEPS)))
        self.v = v[:, -1].copy()
        wind = self.wind_clim[:, None] * np.exp(0.4 * v - 0.15 * z - 0.08) * (
            1 + 0.15 * np.cos(2 * np.pi * (solar_hour - 14) / 24))
        wind = (wind * np.exp(0.12 * rng.standard_normal((n, N_STEPS)))).clip(0.2)
        self.dir = (self.dir + np.cumsum(rng.normal(0, 15, (n, 1)), axis=1)[:, -1]) % 360
        wind_dir = (self.dir[:, None] + 20 * v) % 360
        pressure = 1015.0 + 12.0 * z + 3 * v

        # rain per hour: probability rises under thick cloud
        lat_h = latent.reshape(n, 24, 12).mean(axis=2)
        p_wet = 0.45 * _sigmoid(-2.5 * (lat_h + 1.2))
        wet = rng.random((n, 24)) < p_wet
        rain = np.where(wet, rng.exponential(1.1, (n, 24)), 0.0)

        return DayWeather(day=day, times_end=times_end, zenith=zen, apparent_zenith=app,
                          azimuth=azi, ghi_clear=ghi_clear, ghi=ghi, kc=kc, temp_air=temp,
                          wind=wind, wind_dir=wind_dir, pressure_hpa=pressure, rain_mm_h=rain,
                          dni_extra=dni_extra)


KNMI_COLUMNS = ["STN", "YYYYMMDD", "HH", "DD", "FH", "FF", "FX", "T", "T10", "TD", "SQ", "Q",
                "DR", "RH", "P", "VV", "N", "U", "WW", "IX", "M", "R", "S", "O", "Y"]

KNMI_HEADER = """# BRON: KONINKLIJK NEDERLANDS METEOROLOGISCH INSTITUUT (KNMI)
# Opmerking: door stationsverplaatsingen en veranderingen in waarneemmethodieken zijn deze tijdreeksen van uurwaarden mogelijk inhomogeen! Dat betekent dat deze reeks van gemeten waarden niet geschikt is voor trendonderzoek.
# SOURCE: ROYAL NETHERLANDS METEOROLOGICAL INSTITUTE (KNMI) - synthetic sample data (wattlake generator)
# 
# STN         LON(east)   LAT(north)  ALT(m)      NAME
{stations}# 
# YYYYMMDD = datum (YYYY=jaar, MM=maand, DD=dag) / date (YYYY=year, MM=month, DD=day)
# HH       = tijd (HH=uur, UT.12 UT=13 MET, 14 MEZT. Uurvak 05 loopt van 04.00 UT tot 5.00 UT / time (HH uur/hour, UT. 12 UT=13 MET, 14 MEZT. Hourly division 05 runs from 04.00 UT to 5.00 UT
# DD       = Windrichting (in graden) gemiddeld over de laatste 10 minuten van het afgelopen uur (360=noord, 90=oost, 180=zuid, 270=west, 0=windstil 990=veranderlijk / Mean wind direction (in degrees) during the 10-minute period preceding the time of observation (360=north, 90=east, 180=south, 270=west, 0=calm 990=variable)
# FH       = Uurgemiddelde windsnelheid (in 0.1 m/s) / Hourly mean wind speed (in 0.1 m/s)
# FF       = Windsnelheid (in 0.1 m/s) gemiddeld over de laatste 10 minuten van het afgelopen uur / Mean wind speed (in 0.1 m/s) during the 10-minute period preceding the time of observation
# FX       = Hoogste windstoot (in 0.1 m/s) over het afgelopen uurvak / Maximum wind gust (in 0.1 m/s) during the hourly division
# T        = Temperatuur (in 0.1 graden Celsius) op 1.50 m hoogte tijdens de waarneming / Temperature (in 0.1 degrees Celsius) at 1.50 m at the time of observation
# T10N     = Minimumtemperatuur (in 0.1 graden Celsius) op 10 cm hoogte in de afgelopen 6 uur / Minimum temperature (in 0.1 degrees Celsius) at 0.1 m in the preceding 6-hour period
# TD       = Dauwpuntstemperatuur (in 0.1 graden Celsius) op 1.50 m hoogte tijdens de waarneming / Dew point temperature (in 0.1 degrees Celsius) at 1.50 m at the time of observation
# SQ       = Duur van de zonneschijn (in 0.1 uren) per uurvak, berekend uit globale straling  (-1 for <0.05 uur) / Sunshine duration (in 0.1 hour) during the hourly division, calculated from global radiation (-1 for <0.05 hour)
# Q        = Globale straling (in J/cm2) per uurvak / Global radiation (in J/cm2) during the hourly division
# DR       = Duur van de neerslag (in 0.1 uur) per uurvak / Precipitation duration (in 0.1 hour) during the hourly division
# RH       = Uursom van de neerslag (in 0.1 mm) (-1 voor <0.05 mm) / Hourly precipitation amount (in 0.1 mm) (-1 for <0.05 mm)
# P        = Luchtdruk (in 0.1 hPa) herleid naar zeeniveau, tijdens de waarneming / Air pressure (in 0.1 hPa) reduced to mean sea level, at the time of observation
# VV       = Horizontaal zicht tijdens de waarneming / Horizontal visibility at the time of observation
# N        = Bewolking (bedekkingsgraad van de bovenlucht in achtsten), tijdens de waarneming (9=bovenlucht onzichtbaar) / Cloud cover (in octants), at the time of observation (9=sky invisible)
# U        = Relatieve vochtigheid (in procenten) op 1.50 m hoogte tijdens de waarneming / Relative atmospheric humidity (in percents) at 1.50 m at the time of observation
# WW       = Weercode (00-99), visueel(WW) of automatisch(WaWa) waargenomen / Present weather code (00-99)
# IX       = Weercode indicator voor de wijze van waarnemen op een bemand of automatisch station / Indicator present weather code
# M        = Mist 0=niet voorgekomen, 1=wel voorgekomen / Fog 0=no occurrence, 1=occurred
# R        = Regen 0=niet voorgekomen, 1=wel voorgekomen / Rainfall 0=no occurrence, 1=occurred
# S        = Sneeuw 0=niet voorgekomen, 1=wel voorgekomen / Snow 0=no occurrence, 1=occurred
# O        = Onweer 0=niet voorgekomen, 1=wel voorgekomen / Thunder  0=no occurrence, 1=occurred
# Y        = IJsvorming 0=niet voorgekomen, 1=wel voorgekomen / Ice formation 0=no occurrence, 1=occurred
# 
# STN,YYYYMMDD,   HH,   DD,   FH,   FF,   FX,    T,  T10,   TD,   SQ,    Q,   DR,   RH,    P,   VV,    N,    U,   WW,   IX,    M,    R,    S,    O,    Y
"""


def knmi_header(stations: pl.DataFrame, altitudes: np.ndarray) -> str:
    lines = "".join(
        f"# {sid:<11d} {lon:<11.3f} {lat:<11.3f} {alt:<11.2f} {name}\n"
        for sid, lon, lat, alt, name in zip(stations["station_id"], stations["lon"],
                                            stations["lat"], altitudes, stations["name"])
    )  # ~10 stations
    return KNMI_HEADER.format(stations=lines)


def hourly_table(w: DayWeather, station_ids: np.ndarray) -> pl.DataFrame:
    """KNMI hourly integer values (Int64, null = blank) for all stations, rows station-major."""
    n = len(station_ids)

    def hourly(a: np.ndarray) -> np.ndarray:
        # hour HH (1..24) = intervals ending in (HH-1:00, HH:00]: indices 12(HH-1)+1 .. 12 HH;
        # the interval ending 24:00 is not in this day's array: reuse the one ending 23:55
        ext = np.concatenate([a[:, 1:], a[:, -1:]], axis=1)
        return ext.reshape(n, 24, 12).mean(axis=2)

    ghi_h = hourly(w.ghi)
    t_h = hourly(w.temp_air)
    fh = hourly(w.wind)
    kc_h = hourly(w.kc)
    sun = np.concatenate([w.ghi[:, 1:], w.ghi[:, -1:]], axis=1) > 120
    sq = sun.reshape(n, 24, 12).sum(axis=2) * 10 // 12
    end_idx = np.minimum(np.arange(1, 25) * 12, N_STEPS - 1)
    td = t_h - (1.0 + 6.0 * (kc_h - 0.3).clip(0))
    rh = 100 * np.exp(17.62 * td / (243.12 + td)) / np.exp(17.62 * t_h / (243.12 + t_h))
    rain = w.rain_mm_h
    octas = np.round(8 * (1.08 - kc_h) / 0.96)  # cloud cover from the clear-sky index
    vals = {
        "DD": np.round(w.wind_dir[:, end_idx] / 10) * 10,
        "FH": np.round(fh * 10),
        "FF": np.round(w.wind[:, end_idx] * 10),
        "FX": np.round(fh * 17),
        "T": np.round(t_h * 10),
        "TD": np.round(td * 10),
        "SQ": sq,
        "Q": np.round(ghi_h * 0.36),  # W/m2 mean over an hour -> J/cm2
        "DR": np.where(rain > 0, np.minimum(10, np.ceil(rain * 6)), 0),
        "RH": np.where((rain > 0) & (rain < 0.05), -1, np.round(rain * 10)),
        "P": np.round(w.pressure_hpa[:, end_idx] * 10),
        "N": np.clip(octas, 0, 8),
        "U": np.clip(np.round(rh), 20, 100),
        "IX": np.full((n, 24), 7),
        "M": np.zeros((n, 24)),
        "R": (rain > 0).astype(float),
        "S": np.zeros((n, 24)),
        "O": np.zeros((n, 24)),
        "Y": ((t_h < 0) & (rain > 0)).astype(float),
    }
    data = {
        "STN": np.repeat(station_ids, 24),
        "YYYYMMDD": np.full(n * 24, int(w.day.strftime("%Y%m%d"))),
        "HH": np.tile(np.arange(1, 25), n),
    }
    for c in KNMI_COLUMNS[3:]:
        data[c] = vals[c].reshape(-1) if c in vals else np.full(n * 24, np.nan)
    df = pl.DataFrame(data)
    return df.with_columns(
        [pl.col(c).fill_nan(None).cast(pl.Int64) for c in KNMI_COLUMNS[3:]]
    )


def format_knmi_rows(df: pl.DataFrame) -> pl.Series:
    """Comma-separated KNMI rows, every field right-aligned in 5 characters (date: 8)."""
    parts = []
    for c in KNMI_COLUMNS:  # 25 columns
        width = 8 if c == "YYYYMMDD" else 5
        parts.append(pl.col(c).cast(pl.String).fill_null("").str.pad_start(width, " "))
    return df.select(pl.concat_str(parts, separator=",").alias("row")).to_series()
