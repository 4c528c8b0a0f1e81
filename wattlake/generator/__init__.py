"""Deterministic sample fleet: registry, weather, inverter, meter and device files + ground truth.

``generate_fleet(landing, n_systems, start, days, seed, faults, bad_input, progress)`` writes the
landing layout below and returns a summary dict. Same arguments give byte-identical files.

Layout (root = ``landing``)::

    registry/systems.csv, registry/subjects.csv, registry/installation_photos.csv
    weather/stations.csv, weather/<UTC day>/knmi_hourly.txt
    inverter/<UTC day of arrival>/messages-NNN.jsonl
    meter/<LOCAL date>/<em_id>.p1
    device/<UTC day>/<em_id>.jsonl
    ground_truth/faults.parquet, ground_truth/bad_input.parquet,
    ground_truth/system_daily.parquet   (true and fault-free AC energy, GHI and POA per system-day)
    ground_truth/systems_true.parquet   (true tilt/azimuth, modules per MPPT input, CEC module
                                         and inverter model, true array kWp at STC)

How it scales: one loop over days carries the state (energy counters, cloud/temperature/wind
processes, soiling, late messages, the previous day's meter readings); within a day everything
is vectorised over ``(systems, 288 five-minute steps)``. Solar position is computed once per
weather station and day (``ephemeris``), never per system. A warm-up day before ``start`` is
simulated (not written) so that the first local meter day has its first hours.

Physics and conventions: see :mod:`.weather`, :mod:`.pv`, :mod:`.loads`, :mod:`.faults`,
:mod:`.inverter`, :mod:`.meter`, :mod:`.badinput`.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import polars as pl

from . import cec
from .badinput import BadInputSchedule, empty_gt, gt_frame
from .faults import FaultPlan
from .inverter import InverterWriter
from .loads import LoadModel
from .meter import DeviceWriter, MeterWriter
from .pv import simulate_day
from .registry import STATIONS, build_fleet
from .weather import WeatherModel, format_knmi_rows, hourly_table, knmi_header

__all__ = ["generate_fleet"]

TZ = "Europe/Amsterdam"


def _ts_strings(times_end: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    s = pl.Series("ts", times_end.tz_localize(None).to_numpy()).cast(pl.Datetime("us")) \
        .dt.replace_time_zone("UTC")
    local = s.dt.convert_time_zone(TZ).dt.strftime("%Y-%m-%dT%H:%M:%S%:z").to_numpy().astype(str)
    z = s.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy().astype(str)
    return local, z


def _tariff(local: pd.DatetimeIndex) -> np.ndarray:
    """1 = low (23:00-07:00 local and weekends), 2 = normal."""
    h = np.asarray(local.hour)
    wk = np.asarray(local.dayofweek) >= 5
    return np.where(wk | (h >= 23) | (h < 7), 1, 2).astype(np.int8)


def _quiet(fn, *args):
    """``fn(*args)`` under the generator's floating-point error state (numpy keeps it per thread)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return fn(*args)


def generate_fleet(
    landing: str | Path,
    n_systems: int = 40,
    start: dt.date = dt.date(2025, 1, 1),
    days: int = 365,
    seed: int = 42,
    faults: bool = True,
    bad_input: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Generate the sample fleet under ``landing``; returns counts per source and kind."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _generate(Path(landing), n_systems, start, days, seed, faults, bad_input, progress)


def _generate(landing, n_systems, start, days, seed, faults, bad_input, progress) -> dict:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator-inverter") as pool:
        return _generate_days(pool, landing, n_systems, start, days, seed, faults, bad_input, progress)


def _generate_days(pool, landing, n_systems, start, days, seed, faults, bad_input, progress) -> dict:
    say = progress or (lambda msg: None)
    fleet = build_fleet(n_systems, start, seed)
    plan = FaultPlan(fleet, start, days, seed, enabled=faults)
    plan.apply_wrong_metadata(fleet, seed)

    # --- registry + stations ---------------------------------------------------------------
    (landing / "registry").mkdir(parents=True, exist_ok=True)
    (landing / "weather").mkdir(parents=True, exist_ok=True)
    (landing / "ground_truth").mkdir(parents=True, exist_ok=True)
    fleet.systems.write_csv(landing / "registry" / "systems.csv")
    fleet.subjects.with_columns(
        pl.col("created_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ).write_csv(landing / "registry" / "subjects.csv")
    fleet.photos.write_csv(landing / "registry" / "installation_photos.csv")
    fleet.stations.write_csv(landing / "weather" / "stations.csv")
    altitudes = np.array([s[4] for s in STATIONS])
    header = knmi_header(fleet.stations, altitudes)
    n_header = header.count("\n")

    warm = start - dt.timedelta(days=1)
    wm = WeatherModel(fleet.stations, altitudes, seed, warm, start + dt.timedelta(days=max(days, 1)))
    sched = BadInputSchedule(n_systems, len(STATIONS), days, seed, enabled=bad_input)
    inv = InverterWriter(landing, fleet, seed)
    inv.set_start(warm)
    meter = MeterWriter(landing, fleet, seed)
    dev = DeviceWriter(landing, fleet, seed)
    loads = LoadModel(fleet, seed)
    station_ids = fleet.stations["station_id"].to_numpy()
    sys_ids = fleet.systems["system_id"].to_numpy()

    gts: list[pl.DataFrame] = []
    daily: list[pl.DataFrame] = []
    n_weather_files = 0
    for i in range(-1, days):  # the only loop over time: one iteration per UTC day
        day = start + dt.timedelta(days=i)
        write = i >= 0
        w = wm.step(day, i)
        times_end = w.times_end
        local_end = times_end.tz_convert(TZ)
        local_mid = (times_end - pd.Timedelta(minutes=2.5)).tz_convert(TZ)
        ts_local, ts_z = _ts_strings(times_end)

        # weather file, with station gaps
        if write:
            tab = hourly_table(w, station_ids)
            gap_rows = np.zeros(tab.height, dtype=bool)
            rng_w = np.random.default_rng([seed, i + 10, 12])
            for _ in range(sched.n("weather", "station_gap", i)):  # a few per day at most
                s = int(rng_w.integers(0, len(station_ids)))
                h0 = int(rng_w.integers(0, 22))
                ln = int(rng_w.integers(2, 7))
                gap_rows[s * 24 + h0: s * 24 + min(24, h0 + ln)] = True
            gap = pl.Series(gap_rows)
            tab = tab.with_columns([pl.when(gap).then(None).otherwise(pl.col(c)).alias(c)
                                    for c in ("Q", "T", "TD", "SQ", "U")])
            rows = format_knmi_rows(tab)
            wd = landing / "weather" / day.isoformat()
            wd.mkdir(parents=True, exist_ok=True)
            with open(wd / "knmi_hourly.txt", "w", newline="") as fh:
                fh.write(header + "\n".join(rows.to_list()) + "\n")
            n_weather_files += 1
            gl = np.nonzero(gap_rows)[0]
            gts.append(gt_frame("weather", f"weather/{day.isoformat()}/knmi_hourly.txt",
                                n_header + gl + 1, ["station_gap"] * len(gl)))

        # PV
        eff, active = plan.effects(i)
        pv = simulate_day(fleet, w, np.random.default_rng([seed, i + 10, 11]), eff)
        rng_inv = np.random.default_rng([seed, i + 10, 13])
        # the inverter writer has its own state and random stream: it builds and writes today's
        # files on a second thread while this one does the homes (Polars/numpy release the GIL);
        # its inputs are fresh arrays, and it is joined before the next day starts
        inv_day = pool.submit(_quiet, inv.day, day, i, i == days - 1, pv, eff["outage"] & ~plan.offline_outage,
                              plan.offline_outage.copy(), ts_local, ts_z, rng_inv, sched, write)
        inv_pos = len(gts)
        gts.append(None)  # the inverter's ground truth, in its place, once the thread is done

        # home loads, meter and devices
        rng_l = np.random.default_rng([seed, i + 10, 14])
        lh = np.asarray(local_mid.hour + local_mid.minute / 60.0)
        weekend = np.asarray(local_mid.dayofweek) >= 5
        ld = loads.day(rng_l, day, lh, weekend, w.temp_air[fleet.station_idx])
        net = ld["base_kw"] + ld["ev_kw"] + ld["hp_kw"] - pv["pac"] / 1000.0
        rows_q = meter.quarter_rows(day, net, ld["gas_m3"], _tariff(local_mid), times_end, rng_l)
        rows_q["tariff"] = _tariff(local_end)[np.arange(0, 288, 3)]
        rng_m = np.random.default_rng([seed, i + 10, 15])
        gts.append(meter.day(day, i, rows_q, sched, rng_m, write))
        rng_d = np.random.default_rng([seed, i + 10, 16])
        gts.append(dev.day(day, i, ld["ev_kw"], ld["hp_kw"], ts_local, sched, rng_d, write))

        gts[inv_pos] = inv_day.result()

        # ground truth bookkeeping
        e_act = pv["pac"].sum(axis=1) * 5 / 60 / 1000
        e_h = pv["pac_healthy"].sum(axis=1) * 5 / 60 / 1000
        if write:
            plan.after_day(w.rain_day_mm[fleet.station_idx], active, e_act, e_h)
            daily.append(pl.DataFrame({
                "system_id": sys_ids,
                "day": np.full(len(sys_ids), np.datetime64(day, "D")),
                "true_ac_kwh": np.round(e_act, 4),
                "fault_free_ac_kwh": np.round(e_h, 4),
                "ghi_kwh_m2": np.round(pv["ghi"].sum(axis=1) * 5 / 60 / 1000, 4),
                "poa_kwh_m2": np.round(pv["poa"].sum(axis=1) * 5 / 60 / 1000, 4),
            }).with_columns(pl.col("day").cast(pl.Date)))
            say(f"{day.isoformat()} ({i + 1}/{days}): {inv.n_lines:,} inverter lines, "
                f"{meter.n_telegrams:,} telegrams, {dev.n_lines:,} device lines so far")

    # --- ground truth ------------------------------------------------------------------------
    faults_df = plan.to_frame(fleet)
    faults_df.write_parquet(landing / "ground_truth" / "faults.parquet")
    bad = pl.concat([g for g in gts if g.height] or [empty_gt()])
    bad = bad.sort("source", "file", "line_no", maintain_order=True)
    bad.write_parquet(landing / "ground_truth" / "bad_input.parquet")
    sd = pl.concat(daily) if daily else None
    if sd is not None:
        sd.write_parquet(landing / "ground_truth" / "system_daily.parquet")
    pl.DataFrame({
        "system_id": sys_ids,
        "true_tilt_deg": np.round(fleet.true_tilt, 2),
        "true_azimuth_deg": np.round(fleet.true_azimuth, 2),
        "series_modules_mppt1": fleet.series_modules[:, 0],
        "series_modules_mppt2": fleet.series_modules[:, 1],
        "series_modules_mppt3": fleet.series_modules[:, 2],
        "module_wp": fleet.module_wp,
        "cec_module": np.array(cec.MODULE_NAMES)[fleet.module_idx],
        "n_modules": fleet.n_modules,
        "true_kwp": np.round(fleet.true_kwp, 4),
        "cec_inverter": np.array(cec.INVERTER_NAMES)[fleet.inverter_idx],
    }).write_parquet(landing / "ground_truth" / "systems_true.parquet")

    counts = bad.group_by("source", "kind").len().sort("source", "kind")
    return {
        "landing": str(landing),
        "systems": n_systems,
        "days": days,
        "start": start.isoformat(),
        "files": {"inverter": inv.n_files, "meter": meter.n_files, "device": dev.n_files,
                  "weather": n_weather_files},
        "records": {"inverter_lines": inv.n_lines, "meter_telegrams": meter.n_telegrams,
                    "device_lines": dev.n_lines, "weather_rows": n_weather_files * len(STATIONS) * 24},
        "faults": dict(faults_df.group_by("kind").len().sort("kind").iter_rows()),
        "n_faults": faults_df.height,
        "bad_input": {f"{s}:{k}": int(c) for s, k, c in counts.iter_rows()},
        "n_bad_input": bad.height,
    }
