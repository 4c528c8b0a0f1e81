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
6. DC: CEC single-diode model of the system's TRUE module (one of a handful of mono-Si modules
   from pvlib's shipped CEC library, see :mod:`wattlake.generator.cec`, drawn per system in
   :func:`~wattlake.generator.registry.build_fleet`): :func:`pvlib.pvsystem.calcparams_cec` +
   :func:`pvlib.pvsystem.max_power_point` (Newton), solved once per day for all lit intervals of
   all systems (no loop per system) -> module MPP power [W], times the true number of modules
   (array STC power = modules x CEC STC rating, within ~0.2 % of the registry kWp), times 0.90
   (wiring, mismatch, LID) and natural ageing 0.4 %/year since installation. Temperature and
   low-light behaviour therefore come from the module's own parameters, not from a linear
   ``gamma_pdc`` model as in the estimator (:mod:`wattlake.yield_model`, PVWatts).
7. AC: :func:`pvlib.inverter.sandia` with a CEC-listed inverter per brand (see
   :mod:`wattlake.generator.cec`) at its nominal DC voltage ``Vdco``, scaled to the system's AC
   rating (``Paco``, ``Pdco``, ``Pso``, ``Pnt`` times ``AC rating / Paco``, ``C0`` divided by it):
   the output saturates at the AC rating, so oversized arrays clip naturally [W]; below ``Pso``
   the output is the night tare ``-Pnt``, clipped to 0.
8. Faults (see :mod:`wattlake.generator.faults`) scale effective irradiance (soiling, shading),
   DC power (degradation, dead string), cap AC (clipping) or zero it (outage).

DC per MPPT input [W, V, A]: the array's DC power is split by the share of modules on each
input; voltage ``V = series_modules x 34.0 V x (1 - 0.0035 (T_cell - 25))
x (1 + 0.035 ln(G_eff / 1000))`` when ``G_eff > 5 W/m^2`` (else 0), current ``I = P / V``; a
dead input reads 0 V and 0 A. When the inverter limits the output (derate fault) the delivered
DC power is ``AC / (inverter efficiency at the unlimited operating point)``.

Cost: the single-diode model is solved for the fault-free irradiance of all systems and again
only for the rows whose irradiance a fault changes (soiling, shading); the CEC tables are read
once per process (:mod:`wattlake.generator.cec`).
"""

from __future__ import annotations

import numpy as np
import pvlib

from . import cec
from .registry import Fleet
from .weather import DayWeather

LOSS_FACTOR = 0.90
AGEING_PER_YEAR = 0.004
V_MP_MODULE = 34.0
G_MIN = 1.0  # W/m^2; below this a module delivers nothing (single-diode not solved)
_SD_PARAMS = ["alpha_sc", "a_ref", "I_L_ref", "I_o_ref", "R_sh_ref", "R_s", "Adjust"]


def module_pmp(module_idx: np.ndarray, g_eff: np.ndarray, t_cell: np.ndarray) -> np.ndarray:
    """Maximum power [W] of ONE module of type ``module_idx`` (n,) at ``g_eff``/``t_cell`` (n, T).

    CEC single-diode model (:func:`pvlib.pvsystem.calcparams_cec` +
    :func:`pvlib.pvsystem.max_power_point`, Newton), solved in one vectorised call over the
    lit intervals of all systems; 0 where ``g_eff <= G_MIN``.
    """
    g_eff = np.asarray(g_eff, dtype=float)
    out = np.zeros(g_eff.shape)
    lit = g_eff > G_MIN
    if not lit.any():
        return out
    tab = cec.module_table()
    rows = np.broadcast_to(np.asarray(module_idx)[:, None], g_eff.shape)[lit]
    il, i0, rs, rsh, nnsvth = pvlib.pvsystem.calcparams_cec(
        g_eff[lit], np.asarray(t_cell, dtype=float)[lit], *(tab[c][rows] for c in _SD_PARAMS))
    mpp = pvlib.pvsystem.max_power_point(il, i0, rs, rsh, nnsvth, method="newton")
    out[lit] = np.nan_to_num(np.asarray(mpp["p_mp"], dtype=float)).clip(0)
    return out


def inverter_params(inverter_idx: np.ndarray, ac_w: np.ndarray) -> dict:
    """Sandia parameters per system, columns (n, 1), scaled to the AC rating ``ac_w`` [W].

    Paco, Pdco, Pso and Pnt scale with ``ac_w / Paco`` (and C0, in 1/W, inversely) so that the
    efficiency curve keeps its shape versus load fraction and the output saturates at ``ac_w``.
    """
    tab = cec.inverter_table()
    scale = ac_w / tab["Paco"][inverter_idx]
    p = {c: tab[c][inverter_idx] for c in cec.INVERTER_COLS}
    for c in ("Paco", "Pdco", "Pso", "Pnt"):
        p[c] = p[c] * scale
    p["C0"] = p["C0"] / scale
    return {c: v[:, None] for c, v in p.items()}


def sandia_ac(p_dc: np.ndarray, inv: dict) -> np.ndarray:
    """:func:`pvlib.inverter.sandia` at the nominal DC voltage ``Vdco`` with per-system (n, 1)
    parameters; the night tare ``-Pnt`` below ``Pso`` is applied here (pvlib's limit step only
    takes a scalar ``Pnt``)."""
    ac = np.asarray(pvlib.inverter.sandia(inv["Vdco"], p_dc, {**inv, "Pnt": 0.0}), dtype=float)
    return np.where(p_dc < inv["Pso"], -np.abs(inv["Pnt"]), ac)


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
    base = (LOSS_FACTOR * (1 - AGEING_PER_YEAR * age_years) * fleet.n_modules)[:, None]
    pdc_healthy = module_pmp(fleet.module_idx, g_eff_healthy, t_cell) * base
    # only soiled or shaded systems see a different irradiance: solve those rows again
    rows = np.nonzero((effects["soiling"] > 0) | (effects["shading"] > 0))[0]
    pdc = pdc_healthy.copy()
    if len(rows):
        pdc[rows] = module_pmp(fleet.module_idx[rows], g_eff[rows], t_cell[rows]) * base[rows]
    pdc = pdc * (1 - effects["degradation"][:, None])
    dead = effects["dead_input"]
    share = fleet.input_share.copy()
    has_dead = dead >= 0
    share[np.nonzero(has_dead)[0], dead[has_dead]] = 0.0
    pdc = pdc * share.sum(axis=1)[:, None]

    ac_w = fleet.ac_kw[:, None] * 1000.0
    inv = inverter_params(fleet.inverter_idx, fleet.ac_kw * 1000.0)
    pac_healthy = sandia_ac(pdc_healthy, inv)
    pac_free = sandia_ac(pdc, inv)
    pac = np.minimum(pac_free, effects["derate"][:, None] * ac_w)
    outage = effects["outage"][:, None]
    pac = np.where(outage, 0.0, pac).clip(0)
    pac_healthy = pac_healthy.clip(0)

    # DC operating point actually delivered (reduced when the inverter limits the output): the
    # inverter moves off the MPP until DC in = AC out / its efficiency at that point
    capped = pac < pac_free - 0.5
    eff = np.where(pdc > 0, pac_free / np.maximum(pdc, 1e-9), 1.0).clip(0.5, 1.0)
    pdc_deliv = np.where(capped, pac / eff, pdc)
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
