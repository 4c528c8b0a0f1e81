"""PV production of the whole fleet for one UTC day, vectorised over ``(n_systems, 288)``.

Model and units (interval ``k`` ends at ``day 00:00 + 5 k min``, values are interval means):

1. Sun: each system uses the solar position of its nearest KNMI station (computed once per
   station and day with pvlib's ``ephemeris`` method). Houses are at most ~65 km from their
   station (99 % within 60 km). 60 km east-west is 0.9 degree of longitude = 0.9 degree of hour
   angle, which moves the zenith by at most cos(lat) x 0.9 < 0.6 degree; 60 km north-south moves
   it by 0.54 degree. So the sun position error is < ~0.6 degree -- negligible for energy (a
   fraction of a percent at low sun, far less over a day).
2. GHI [W/m^2]: the station's 5-minute GHI times a local factor ``exp(N(0, 0.04)`` per system-day
   ``+ N(0, 0.06)`` per interval), capped at 1.35 x clear sky.
3. Decomposition: :func:`pvlib.irradiance.erbs` -> DNI, DHI [W/m^2].
4. Transposition: :func:`pvlib.irradiance.get_total_irradiance` (Hay-Davies, albedo 0.2) with the
   system's TRUE tilt/azimuth [deg]; incidence-angle modifier :func:`pvlib.iam.physical` on the
   beam, 0.95 on diffuse -> effective irradiance [W/m^2].
5. Cell temperature: :func:`pvlib.temperature.faiman` (u0 25, u1 6.84) [degC].
6. DC: :func:`pvlib.pvsystem.pvwatts_dc` with ``pdc0 = kWp`` [W] and ``gamma_pdc = -0.0037 /K``,
   times 0.90 (wiring, mismatch, LID) and natural ageing 0.4 %/year since installation.
7. AC: :func:`pvlib.inverter.pvwatts` with ``pdc0 = AC rating / 0.96`` and ``eta_inv_nom = 0.96``:
   the output saturates at the AC rating, so oversized arrays clip naturally [W].
8. Faults (see :mod:`wattlake.generator.faults`) scale effective irradiance (soiling, shading),
   DC power (degradation, dead string), cap AC (clipping) or zero it (outage).

DC per MPPT input: the array's DC power is split by the share of modules on each input; voltage
``V = series_modules x 34.0 V x (1 - 0.0035 (T_cell - 25)) x (1 + 0.035 ln(G_eff / 1000))`` when
``G_eff > 5 W/m^2`` (else 0), current ``I = P / V``; a dead input reads 0 V and 0 A.
"""

from __future__ import annotations

import numpy as np
import pvlib

from .registry import Fleet
from .weather import DayWeather

LOSS_FACTOR = 0.90
GAMMA_PDC = -0.0037
AGEING_PER_YEAR = 0.004
ETA_INV = 0.96
V_MP_MODULE = 34.0


def simulate_day(fleet: Fleet, w: DayWeather, rng: np.random.Generator, effects: dict) -> dict:
    """Return per-system 5-minute arrays for one UTC day.

    ``effects`` holds today's fault effects, arrays of shape (n,): ``soiling`` (loss fraction),
    ``shading`` (0 none, 1 morning, 2 afternoon), ``degradation`` (loss fraction),
    ``dead_input`` (-1 or MPPT index), ``derate`` (AC cap as fraction of the rating, 1 = none),
    ``outage`` (bool).
    """
    n = len(fleet.kwp)
    si = fleet.station_idx
    zen = w.zenith[si]
    app = w.apparent_zenith[si]
    azi = w.azimuth[si]
    ghi_cs = w.ghi_clear[si]
    local = np.exp(rng.normal(0, 0.04, (n, 1)) + rng.normal(0, 0.06, zen.shape))
    ghi = np.minimum(w.ghi[si] * local, 1.35 * ghi_cs)
    doy = w.day.timetuple().tm_yday
    dec = pvlib.irradiance.erbs(ghi, zen, doy)
    dni = np.nan_to_num(np.asarray(dec["dni"], dtype=float))
    dhi = np.nan_to_num(np.asarray(dec["dhi"], dtype=float))
    tilt = fleet.true_tilt[:, None]
    az = fleet.true_azimuth[:, None]
    am = pvlib.atmosphere.get_relative_airmass(app)
    poa = pvlib.irradiance.get_total_irradiance(tilt, az, zen, azi, dni, ghi, dhi,
                                                dni_extra=w.dni_extra, airmass=am,
                                                albedo=0.2, model="haydavies")
    beam = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=float)).clip(0)
    diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=float)).clip(0)
    aoi = pvlib.irradiance.aoi(tilt, az, zen, azi)
    iam = np.nan_to_num(np.asarray(pvlib.iam.physical(aoi), dtype=float))
    g_eff_healthy = beam * iam + 0.95 * diffuse
    poa_global = beam + diffuse

    # fault effects on irradiance
    shading = effects["shading"][:, None]
    shaded = ((shading == 1) & (azi < 135)) | ((shading == 2) & (azi > 225))
    g_eff = np.where(shaded, 0.65 * 0.95 * diffuse, g_eff_healthy)
    g_eff = g_eff * (1 - effects["soiling"][:, None])

    temp_air = w.temp_air[si]
    wind = w.wind[si]
    t_cell = np.asarray(pvlib.temperature.faiman(poa_global, temp_air, wind), dtype=float)
    age_years = ((np.datetime64(w.day) - fleet.install_date).astype(float) / 365.25).clip(0)
    base = LOSS_FACTOR * (1 - AGEING_PER_YEAR * age_years)[:, None]
    pdc0 = fleet.kwp[:, None] * 1000.0
    pdc_healthy = np.asarray(pvlib.pvsystem.pvwatts_dc(g_eff_healthy, t_cell, pdc0, GAMMA_PDC),
                             dtype=float).clip(0) * base
    pdc = np.asarray(pvlib.pvsystem.pvwatts_dc(g_eff, t_cell, pdc0, GAMMA_PDC),
                     dtype=float).clip(0) * base
    pdc = pdc * (1 - effects["degradation"][:, None])
    dead = effects["dead_input"]
    share = fleet.input_share.copy()
    has_dead = dead >= 0
    share[np.nonzero(has_dead)[0], dead[has_dead]] = 0.0
    pdc = pdc * share.sum(axis=1)[:, None]

    ac_w = fleet.ac_kw[:, None] * 1000.0
    inv_pdc0 = ac_w / ETA_INV
    pac_healthy = np.asarray(pvlib.inverter.pvwatts(pdc_healthy, inv_pdc0, ETA_INV), dtype=float)
    pac = np.asarray(pvlib.inverter.pvwatts(pdc, inv_pdc0, ETA_INV), dtype=float)
    pac = np.minimum(pac, effects["derate"][:, None] * ac_w)
    outage = effects["outage"][:, None]
    pac = np.where(outage, 0.0, pac).clip(0)
    pac_healthy = pac_healthy.clip(0)

    # DC operating point actually delivered (reduced when the inverter limits the output)
    capped = pac < np.asarray(pvlib.inverter.pvwatts(pdc, inv_pdc0, ETA_INV)) - 0.5
    pdc_deliv = np.where(capped, pac / ETA_INV, pdc)
    pdc_deliv = np.where(outage, 0.0, pdc_deliv)
    frac = np.where(share.sum(axis=1) > 0, 1.0 / np.maximum(share.sum(axis=1), 1e-9), 0.0)
    p_in = pdc_deliv[:, :, None] * (share * frac[:, None])[:, None, :]  # (n, T, 3)
    v_scale = (1 - 0.0035 * (t_cell - 25)) * (1 + 0.035 * np.log(np.maximum(g_eff, 1.0) / 1000))
    v = fleet.series_modules[:, None, :] * V_MP_MODULE * v_scale[:, :, None]
    on = (g_eff > 5)[:, :, None] & (share[:, None, :] > 0) & ~outage[:, :, None]
    v = np.where(on, v, 0.0)
    i = np.where(v > 0, p_in / np.maximum(v, 1e-9), 0.0)

    inv_temp = temp_air + 4.0 + 22.0 * pac / ac_w
    return {
        "ghi": ghi,
        "poa": poa_global,
        "pac": pac,
        "pac_healthy": pac_healthy,
        "dc_v": v,
        "dc_i": i,
        "inv_temp": inv_temp,
        "zenith": zen,
    }
