"""Household electricity, EV charging, heat pump and gas use, one UTC day, shape (n, 288).

Units: powers in kW (interval means over the 5 minutes ending at ``day 00:00 + 5 k min``), gas in
m^3 per interval.

* Base household load: annual consumption (log-normal around 2,900 kWh) times a Dutch residential
  day shape in LOCAL time (night ~0.45, morning peak 07-09, evening peak 17-21), +18 % in winter,
  weekend mornings later, with appliance noise (log-normal, sigma 0.35 per interval).
* EV charger (7.4 or 11 kW): on ~45 % of weekdays / 30 % of weekend days a session of 6-28 kWh
  starting between 15:30 and 20:00 UTC (always finished before midnight UTC).
* Heat pump: heat demand ``max(0, 16.5 - T_day) x UA`` (UA 5-9 kWh/K/day) plus 5 kWh hot water,
  COP ``2.3 + 0.07 (T + 5)`` clipped to 2..4.5, hourly shape with morning/evening boosts,
  standby 15 W.
* Gas (homes without heat pump): ``max(0, 16.5 - T_day) x 0.35 m^3/K + 0.45 m^3`` per day with the
  same hourly shape as the heating.
"""

from __future__ import annotations

import numpy as np

# relative hourly shape of a Dutch household (local hour 0..23), mean 1
_DAY_SHAPE = np.array([0.55, 0.48, 0.45, 0.44, 0.45, 0.52, 0.75, 1.05, 1.05, 0.92, 0.88, 0.9,
                       0.95, 0.9, 0.88, 0.95, 1.15, 1.5, 1.75, 1.7, 1.55, 1.35, 1.05, 0.75])
_DAY_SHAPE = _DAY_SHAPE / _DAY_SHAPE.mean()
_WEEKEND_SHAPE = np.roll(_DAY_SHAPE, 1) * np.array([1.0] * 7 + [0.85, 1.1, 1.25, 1.2, 1.15]
                                                   + [1.1] * 5 + [1.0] * 7)
_WEEKEND_SHAPE = _WEEKEND_SHAPE / _WEEKEND_SHAPE.mean()
_HEAT_SHAPE = np.array([0.6, 0.55, 0.55, 0.55, 0.6, 0.9, 1.6, 1.7, 1.4, 1.1, 1.0, 0.95, 0.9,
                        0.9, 0.9, 0.95, 1.05, 1.25, 1.35, 1.3, 1.2, 1.05, 0.85, 0.7])
_HEAT_SHAPE = _HEAT_SHAPE / _HEAT_SHAPE.mean()


def _interp_shape(shape: np.ndarray, local_hour: np.ndarray) -> np.ndarray:
    h = np.floor(local_hour).astype(int) % 24
    f = local_hour - np.floor(local_hour)
    return shape[h] * (1 - f) + shape[(h + 1) % 24] * f


class LoadModel:
    def __init__(self, fleet, seed: int):
        rng = np.random.default_rng([seed, 0, 5])
        n = len(fleet.kwp)
        self.annual = fleet.annual_load_kwh
        self.has_ev = fleet.has_ev
        self.has_hp = fleet.has_hp
        self.has_gas = fleet.has_gas
        self.ev_kw = np.where(rng.random(n) < 0.5, 7.4, 11.0)
        self.ua = rng.uniform(5, 9, n)
        self.gas_factor = rng.uniform(0.7, 1.4, n)

    def day(self, rng: np.random.Generator, day, local_hour: np.ndarray, weekend: np.ndarray,
            temp_air: np.ndarray) -> dict:
        """``local_hour`` (288,) local clock hour of interval midpoints, ``weekend`` (288,) bool,
        ``temp_air`` (n, 288) [degC] at the home's station."""
        n = len(self.annual)
        t = len(local_hour)
        doy = day.timetuple().tm_yday
        season = 1 + 0.18 * np.cos(2 * np.pi * (doy - 15) / 365.25)
        shape = np.where(weekend, _interp_shape(_WEEKEND_SHAPE, local_hour),
                         _interp_shape(_DAY_SHAPE, local_hour))
        base = (self.annual / 8760.0)[:, None] * season * shape[None, :]
        base = base * rng.lognormal(-0.06, 0.35, (n, t))

        # EV sessions (UTC day, start 15:30..20:00 UTC, 5-minute steps)
        wk = bool(weekend[t // 2])
        charge = self.has_ev & (rng.random(n) < (0.3 if wk else 0.45))
        start = rng.integers(186, 241, n)
        energy = rng.uniform(6, 28, n)
        steps = energy / (self.ev_kw * 5 / 60)
        k = np.arange(t)[None, :]
        full = (k >= start[:, None]) & (k < (start + np.floor(steps)).astype(int)[:, None])
        part = k == (start + np.floor(steps)).astype(int)[:, None]
        ev = np.where(full, 1.0, np.where(part, (steps - np.floor(steps))[:, None], 0.0))
        ev = ev * (self.ev_kw[:, None] * charge[:, None])

        # heat pump
        t_day = temp_air.mean(axis=1)
        heat_kwh = np.maximum(0, 16.5 - t_day) * self.ua + 5.0
        cop = np.clip(2.3 + 0.07 * (temp_air + 5), 2.0, 4.5)
        hshape = _interp_shape(_HEAT_SHAPE, local_hour)[None, :]
        hp = (heat_kwh / 24.0)[:, None] * hshape / cop
        hp = hp * rng.lognormal(-0.02, 0.2, (n, t))
        hp = np.where(self.has_hp[:, None], np.maximum(hp, 0.015), 0.0)

        gas_day = (np.maximum(0, 16.5 - t_day) * 0.35 + 0.45) * self.gas_factor
        gas = (gas_day / t)[:, None] * hshape * rng.lognormal(-0.08, 0.4, (n, t))
        gas = np.where(self.has_gas[:, None], gas, 0.0)
        return {"base_kw": base, "ev_kw": ev, "hp_kw": hp, "gas_m3": gas}
