"""Fault schedule of the sample fleet and its per-day effects.

Kinds (``ground_truth/faults.parquet``, one row per episode, ``first_day``/``last_day`` inclusive):

* ``outage`` 1-10 days: inverter off. ``detail`` says ``offline`` (no messages at all) or
  ``fault`` (messages with status "fault", 0 W). Magnitude 1.0.
* ``soiling``: loss builds up by 0.15-0.6 %/day (cap 35 %), reset to a fifth on a station day with
  >= 8 mm rain, cleaned on ``last_day``.
* ``degradation``: permanent from ``first_day`` (to the end of the run): a step loss of 8-25 %
  plus 0.01 %/day.
* ``shading``: beam irradiance lost (35 % of diffuse too) while the sun is east of 135 degrees
  (``morning``) or west of 225 degrees (``afternoon``).
* ``dead_string``: one MPPT input of a multi-input inverter delivers nothing (0 V, 0 A).
* ``clipping``: inverter derated to 50-75 % of its AC rating (loss only on sunny hours).
* ``wrong_metadata``: registry tilt/azimuth differ from the true ones by > 30 degrees for the
  whole run (no energy loss; ``magnitude`` is the largest of |d tilt|, |d azimuth| in degrees).

``magnitude`` for the other kinds is the realised fractional AC energy loss over the episode
(``1 - actual / fault-free``), measured during generation. Faults of one system never overlap.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

KINDS = ["outage", "soiling", "degradation", "shading", "dead_string", "clipping",
         "wrong_metadata"]


class FaultPlan:
    """Fault episodes (as day indices) and the state they carry (soiling level)."""

    def __init__(self, fleet, start: dt.date, days: int, seed: int, enabled: bool = True):
        rng = np.random.default_rng([seed, 0, 3])
        n = len(fleet.kwp)
        self.start, self.days, self.n = start, days, n
        rows: list[dict] = []
        if enabled and n > 0:
            order = rng.permutation(n)
            n_faulty = max(1, int(round(n * 2 / 3)))
            faulty = order[:n_faulty]
            multi = fleet.n_strings >= 2
            kinds = list(rng.permutation(KINDS))
            pool: list[str] = []
            while len(pool) < n_faulty:
                pool += list(rng.permutation(KINDS)) if pool else kinds
            pool = pool[:n_faulty]
            # give dead_string faults to systems with >= 2 inputs
            faulty = list(faulty)
            multi_sys = [s for s in faulty if multi[s]]
            single_sys = [s for s in faulty if not multi[s]]
            assigned: list[tuple[int, str]] = []
            for kind in [k for k in pool if k == "dead_string"]:  # a handful
                if multi_sys:
                    assigned.append((multi_sys.pop(0), kind))
                else:
                    assigned.append((single_sys.pop(0), "degradation"))
            rest = multi_sys + single_sys
            for s, kind in zip(rest, [k for k in pool if k != "dead_string"]):
                assigned.append((s, kind))
            small = set(rng.permutation(len(assigned))[: max(1, len(assigned) // 4)].tolist())
            for j, (s, kind) in enumerate(assigned):  # one fault per faulty system (tens)
                rows.append(self._episode(rng, fleet, int(s), str(kind), days, j in small))
            # a second, later episode for ~25 % of systems whose first fault is not permanent
            for r in list(rows):
                if r["kind"] in ("degradation", "wrong_metadata") or rng.random() > 0.25:
                    continue
                gap0 = r["last"] + 5
                if gap0 + 3 >= days:
                    continue
                kind = str(rng.choice(["outage", "dead_string", "soiling", "clipping"]))
                if kind == "dead_string" and not multi[r["sys"]]:
                    kind = "outage"
                ep = self._episode(rng, fleet, r["sys"], kind, days - gap0, False)
                ep["first"] += gap0
                ep["last"] = min(ep["last"] + gap0, days - 1)
                rows.append(ep)
        self.rows = rows
        self.soiling_level = np.zeros(n)
        self.lost_kwh = np.zeros(len(rows))
        self.healthy_kwh = np.zeros(len(rows))
        self.offline_outage = np.zeros(n, dtype=bool)

    @staticmethod
    def _episode(rng, fleet, s: int, kind: str, days: int, small: bool) -> dict:
        dur = {
            "outage": int(rng.integers(1, 11)),
            "soiling": int(rng.integers(30, 151)),
            "degradation": days,
            "shading": int(rng.integers(60, 201)),
            "dead_string": int(rng.integers(10, 121)),
            "clipping": int(rng.integers(20, 151)),
            "wrong_metadata": days,
        }[kind]
        dur = max(1, min(dur, days))
        if kind == "degradation":
            first = int(rng.integers(0, max(1, int(days * 0.7))))
        elif kind == "wrong_metadata":
            first = 0
        else:
            first = int(rng.integers(0, max(1, days - dur + 1)))
        last = days - 1 if kind == "degradation" else min(days - 1, first + dur - 1)
        ep = {"sys": s, "kind": kind, "first": first, "last": last, "param": 0.0, "detail": ""}
        if kind == "outage":
            mode = "offline" if rng.random() < 0.6 else "fault"
            ep["param"] = 1.0 if mode == "offline" else 0.0
            ep["detail"] = mode
        elif kind == "soiling":
            rate = float(rng.uniform(0.0015, 0.003) if small else rng.uniform(0.003, 0.006))
            ep["param"] = rate
            ep["detail"] = f"rate {rate * 100:.2f} %/day, cap 35 %, reset to 1/5 on >= 8 mm rain"
        elif kind == "degradation":
            step = float(rng.uniform(0.10, 0.15) if small else rng.uniform(0.15, 0.25))
            ep["param"] = step
            ep["detail"] = f"step {step * 100:.1f} % + 0.01 %/day"
        elif kind == "shading":
            side = int(rng.integers(1, 3))
            ep["param"] = float(side)
            ep["detail"] = "morning (sun azimuth < 135 deg)" if side == 1 else \
                "afternoon (sun azimuth > 225 deg)"
        elif kind == "dead_string":
            ns = int(fleet.n_strings[s])
            inp = int(rng.integers(0, max(ns, 1)))
            ep["param"] = float(inp)
            ep["detail"] = f"mppt {inp + 1} of {ns} dead"
        elif kind == "clipping":
            der = float(rng.uniform(0.68, 0.75) if small else rng.uniform(0.5, 0.65))
            ep["param"] = der
            ep["detail"] = f"inverter derated to {der * 100:.0f} % of {fleet.ac_kw[s]:.2f} kW"
        elif kind == "wrong_metadata":
            ep["detail"] = ""
        return ep

    def apply_wrong_metadata(self, fleet, rng_seed: int) -> None:
        """Move the REGISTRY orientation of wrong_metadata systems away from the truth."""
        rng = np.random.default_rng([rng_seed, 0, 4])
        tilt = fleet.systems["tilt_deg"].to_numpy().copy()
        az = fleet.systems["azimuth_deg"].to_numpy().copy()
        for r in self.rows:  # a handful
            if r["kind"] != "wrong_metadata":
                continue
            s = r["sys"]
            t_true, a_true = fleet.true_tilt[s], fleet.true_azimuth[s]
            if rng.random() < 0.7:  # azimuth mix-up (e.g. east roof registered as south)
                d_az = float(rng.choice([-1, 1]) * rng.uniform(40, 90))
                new_az = float(np.clip(np.round((a_true + d_az) / 5) * 5, 60, 300))
                if abs(new_az - a_true) < 32:
                    new_az = float(np.round((a_true - np.sign(d_az) * 45) / 5) * 5)
                new_tilt = float(np.round(t_true))
            else:  # tilt mix-up (flat roof registered as pitched or vice versa)
                new_tilt = float(35.0 if t_true < 20 else 10.0)
                if abs(new_tilt - t_true) < 31:
                    new_tilt = float(min(t_true + 35.0, 60.0) if t_true < 25 else max(t_true - 33, 0))
                new_az = float(np.round(a_true / 5) * 5)
            tilt[s], az[s] = new_tilt, new_az
            mag = max(abs(new_tilt - t_true), abs(new_az - a_true))
            r["param"] = mag
            r["detail"] = (f"registry tilt {new_tilt:.0f} az {new_az:.0f}; true tilt "
                           f"{t_true:.1f} az {a_true:.1f}")
        fleet.systems = fleet.systems.with_columns(
            pl.Series("tilt_deg", tilt), pl.Series("azimuth_deg", az))

    def effects(self, day_idx: int) -> tuple[dict, np.ndarray]:
        """Effects for day ``day_idx`` (0-based; negative = warm-up, no faults) and the index of
        the active fault of every system (-1 none)."""
        n = self.n
        eff = {
            "soiling": np.zeros(n), "shading": np.zeros(n, dtype=int),
            "degradation": np.zeros(n), "dead_input": np.full(n, -1),
            "derate": np.ones(n), "outage": np.zeros(n, dtype=bool),
        }
        active = np.full(n, -1)
        self.offline_outage[:] = False
        for j, r in enumerate(self.rows):  # loop over fault episodes (tens to hundreds)
            s = r["sys"]
            if not (r["first"] <= day_idx <= r["last"]):
                if r["kind"] == "soiling" and day_idx > r["last"]:
                    self.soiling_level[s] = 0.0
                continue
            active[s] = j
            k = r["kind"]
            if k == "outage":
                eff["outage"][s] = True
                self.offline_outage[s] = r["param"] == 1.0
            elif k == "soiling":
                self.soiling_level[s] = min(0.35, self.soiling_level[s] + r["param"])
                eff["soiling"][s] = self.soiling_level[s]
            elif k == "degradation":
                eff["degradation"][s] = r["param"] + 0.0001 * (day_idx - r["first"])
            elif k == "shading":
                eff["shading"][s] = int(r["param"])
            elif k == "dead_string":
                eff["dead_input"][s] = int(r["param"])
            elif k == "clipping":
                eff["derate"][s] = r["param"]
        return eff, active

    def after_day(self, rain_day_mm_per_system: np.ndarray, active: np.ndarray,
                  e_actual: np.ndarray, e_healthy: np.ndarray) -> None:
        """Rain resets soiling; book today's energy per active fault."""
        washed = rain_day_mm_per_system >= 8.0
        self.soiling_level = np.where(washed, self.soiling_level * 0.2, self.soiling_level)
        m = active >= 0
        np.add.at(self.lost_kwh, active[m], (e_healthy - e_actual)[m])
        np.add.at(self.healthy_kwh, active[m], e_healthy[m])

    def to_frame(self, fleet) -> pl.DataFrame:
        sys_ids = fleet.systems["system_id"].to_numpy()
        first = [self.start + dt.timedelta(days=r["first"]) for r in self.rows]
        last = [self.start + dt.timedelta(days=r["last"]) for r in self.rows]
        mag = []
        for j, r in enumerate(self.rows):
            if r["kind"] == "wrong_metadata":
                mag.append(round(float(r["param"]), 1))
            elif r["kind"] == "outage":
                mag.append(1.0)
            else:
                h = self.healthy_kwh[j]
                mag.append(round(float(self.lost_kwh[j] / h), 4) if h > 0 else 0.0)
        return pl.DataFrame(
            {
                "system_id": [str(sys_ids[r["sys"]]) for r in self.rows],
                "first_day": first,
                "last_day": last,
                "kind": [r["kind"] for r in self.rows],
                "magnitude": mag,
                "detail": [r["detail"] for r in self.rows],
            },
            schema={"system_id": pl.String, "first_day": pl.Date, "last_day": pl.Date,
                    "kind": pl.String, "magnitude": pl.Float64, "detail": pl.String},
        ).sort("system_id", "first_day", maintain_order=True)
