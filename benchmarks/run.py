"""End-to-end benchmark: the real pipeline stages on a generated fleet, against a naive baseline.

    .venv/bin/python benchmarks/run.py --systems 100 --days 365 --json bench-100.json [--workdir DIR] [--keep]
        [--landing DIR]   # reuse a generated landing folder (repeat runs, before/after comparisons)

1. Generates ``N`` systems x ``D`` days from 2025-01-01 with :func:`wattlake.generator.generate_fleet`
   in a child process (timed and reported as ``generation_seconds``, not counted; a child process
   so the generator's memory does not pollute the stages' peak RSS).
2. Lands the registry, then runs each stage in this process on a local lake in the work dir, the
   way the Dagster assets do (same domain functions, same chunking), timing each one:
   ``land_inverter``, ``land_meter``, ``land_device``, ``land_weather`` (``wattlake.landing.land_groups``
   over ``chunk_days`` groups), ``silver_pv_intervals`` (``wattlake.modelling.write_pv_intervals``, as the asset
   in bounded system-day steps), ``gold_system_daily`` and ``alerts`` (``detect_alerts``), then the optional
   stages ``guarantee_evaluations`` and ``research_release`` (see ``OPTIONAL_STAGES``: a stage whose
   module does not exist yet, or that fails, is listed with ``"skipped": <why>``). Progress is
   printed per landing group and per silver step, and memory stays bounded by those work units.
3. Runs a naive baseline (pandas ``read_json`` per file, Python-set deduplication, a pvlib
   ``ModelChain`` loop per system) on a small subset of the same landing files, in the same run,
   and reports ``speedup_vs_naive`` per system-year.
4. Prints a table and writes JSON.

Imports and the CRC kernel's JIT load (``startup_seconds``, ~3 s) happen once before the stages and
are reported apart. ``benchmarks/equality.py`` proves a speed change kept the landed tables equal.

Peak RSS is ``ru_maxrss`` of this process after each stage (monotonic: a stage that needs less
memory than an earlier one shows the earlier peak and a zero delta).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import wattlake  # noqa: E402,F401  (first: tunes the allocators before Polars loads, see wattlake.allocator)

START = dt.date(2025, 1, 1)
SEED = 42
MARKER = ".wattlake-bench"
#: what the benchmark creates in its work dir (and removes unless --keep)
WORK_SUBDIRS = ("landing", "lake", "exports", "keys")
#: the naive baseline's dedupe and model parts are timed this many times; the median counts
NAIVE_REPEATS = 3
#: the stages of the inverter path, summed for the comparison with the naive baseline
INVERTER_PATH = ("land_inverter", "land_weather", "silver_pv_intervals", "gold_system_daily", "alerts")


def say(msg: str) -> None:
    print(msg, flush=True)


#: the process's peak before the last :func:`start_stage_peak` (which resets the kernel's counter)
_EARLIER_PEAK = [0]


def _kernel_peak_rss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)  # KiB on Linux, bytes on macOS


def peak_rss_bytes() -> int:
    """Peak resident memory of the process so far [bytes]."""
    return max(_EARLIER_PEAK[0], _kernel_peak_rss_bytes())


def start_stage_peak() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS, so that :func:`_kernel_peak_rss_bytes`
    measures the next stage alone (Linux ``/proc/self/clear_refs``); False where that is not possible."""
    _EARLIER_PEAK[0] = peak_rss_bytes()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return (out.stdout.strip() or None) if out.returncode == 0 else None
    except Exception:  # no git, not a checkout, ...
        return None


# ---------------------------------------------------------------------------------------------
# 1. generation (child process)
# ---------------------------------------------------------------------------------------------

def generate(landing: Path, systems: int, days: int) -> float:
    code = ("import datetime as dt, sys, warnings; warnings.filterwarnings('ignore');"
            f"sys.path.insert(0, {str(ROOT)!r});"
            "from wattlake.generator import generate_fleet;"
            f"generate_fleet({str(landing)!r}, n_systems={systems}, start=dt.date.fromisoformat({START.isoformat()!r}),"
            f" days={days}, seed={SEED})")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def startup() -> float:
    """Import the heavy libraries and load the compiled kernels once, outside the stage timings.

    A long-running pipeline pays this once per process (about 3 s: pvlib 1.5 s, numba import
    and kernel load 1.5 s; the first run after install also compiles the kernels into numba's
    cache); in a stage it would dominate small runs. The naive baseline imports its libraries
    outside its timing too.
    """
    t0 = time.perf_counter()
    import numpy as np
    import pvlib  # noqa: F401

    from wattlake.crc import crc16_arc, crc16_arc_text
    from wattlake.parsing import bytescan, p1

    b = np.frombuffer(b"/123456789!", dtype=np.uint8)
    crc16_arc(b, np.array([0]), np.array([b.size]))
    crc16_arc_text(b, np.array([0]), np.array([b.size]))
    line = np.frombuffer(b"1-0:1.8.1(000001.000*kWh)\r\n", dtype=np.uint8)  # the parser's line kernels
    p1.scan_normal_lines(line, np.array([0]), np.array([line.size]))
    p1._value_status_kernel(line, np.array([10]), np.array([24]), np.array([2], dtype=np.int8))
    for buf in (line, line.copy()):  # read-only and writable buffers are two compiled variants
        bytescan.positions(buf, 10), bytescan.files_with_non_ascii(buf, np.array([0, buf.size]))
        bytescan.has_non_ascii(buf)
    try:  # the JSON fast path (inverter and device lines), where this version of wattlake has it
        from wattlake.parsing import jsonfast
        from wattlake.parsing.inverter import MESSAGE_TYPE
    except ImportError:
        pass
    else:
        msg = np.frombuffer(b'{"serial":"x"}', dtype=np.uint8)
        for buf in (msg, msg.copy()):
            jsonfast.scan(buf, np.array([0]), np.array([buf.size]), MESSAGE_TYPE)
    import datetime as dt

    import polars as pl

    from wattlake.parsing.inverter import flag_inverter_readings  # compiled where this version has it

    flag_inverter_readings(pl.DataFrame({"system_id": ["s"], "ts_utc": [dt.datetime(2025, 1, 1, tzinfo=dt.UTC)],
                                         "ac_power_w": [1.0], "ac_energy_total_kwh": [1.0]}))
    return time.perf_counter() - t0


def calibrate(lines: int = 200_000, repeats: int = 3) -> dict:
    """How fast this machine is right now, on fixed work: JSON lines of the inverter messages' shape
    decoded by Polars on one thread (best of ``repeats``). Shared virtual machines vary from run to
    run; the figure tells a slower machine from slower code when two runs are compared."""
    import polars as pl

    i = pl.int_range(lines, eager=True)
    text = pl.select(pl.format('{{"serial":"B0DZ{}","ts":"2025-06-01T12:{}:00+02:00","ac_power_w":{}.5,'
                               '"status":"ok","dc":[{{"v":351.2,"a":{}.25}}]}}',
                               i, i % 60, i % 4000, i % 9).alias("raw")).to_series()
    dtype = pl.Struct({"serial": pl.String, "ts": pl.String, "ac_power_w": pl.Float64, "status": pl.String,
                       "dc": pl.List(pl.Struct({"v": pl.Float64, "a": pl.Float64}))})
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        decoded = text.str.json_decode(dtype)
        best = min(best, time.perf_counter() - t0)
    assert decoded.len() == lines
    return {"json_decode_lines_per_s": round(lines / best), "work": f"{lines:,} JSON lines, one thread, best of {repeats}"}


def landing_days(root: Path) -> list[str]:
    from wattlake.landing import landing_days as days  # every source landing knows

    return days(root)


# ---------------------------------------------------------------------------------------------
# 2. pipeline stages
# ---------------------------------------------------------------------------------------------

class Stages:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._rss = peak_rss_bytes()

    def run(self, name: str, fn, unit: str = "rows") -> dict:
        say(f"[stage] {name} ...")
        own_peak = start_stage_peak()
        t0, u0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        rows, extra = fn()
        seconds = time.perf_counter() - t0
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        rss = peak_rss_bytes()
        rec = {"name": name, "rows": int(rows), "seconds": round(seconds, 4),
               "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
               "peak_rss_bytes": rss, "peak_rss_delta_bytes": rss - self._rss,
               # the peak during this stage alone (None where the kernel counter cannot be reset)
               "stage_peak_rss_bytes": _kernel_peak_rss_bytes() if own_peak else None,
               # CPU seconds of all threads (user, kernel) and page faults that zeroed a fresh page
               "cpu_user_s": round(u1.ru_utime - u0.ru_utime, 2), "cpu_sys_s": round(u1.ru_stime - u0.ru_stime, 2),
               "minor_faults": u1.ru_minflt - u0.ru_minflt, **extra}
        if unit != "rows":
            rec[f"{unit}_per_s"] = rec["rows_per_s"]
        self._rss = rss
        self.rows.append(rec)
        say(f"[stage] {name}: {rows:,} {unit} in {seconds:.2f} s ({rec['rows_per_s'] or 0:,.0f}/s), "
            f"CPU {rec['cpu_user_s']:.1f} s user + {rec['cpu_sys_s']:.1f} s sys, peak RSS "
            f"{(rec['stage_peak_rss_bytes'] or rss) / 2**20:,.0f} MB in the stage, {rss / 2**20:,.0f} MB so far")
        return rec

    def optional(self, name: str, fn) -> dict:
        """Like :meth:`run`; a stage whose module is missing (NotBuilt) or fails is listed as skipped."""
        try:
            return self.run(name, fn)
        except NotBuilt as exc:
            rec = {"name": name, "skipped": str(exc)}
        except Exception as exc:  # a stage under construction must not sink the benchmark
            rec = {"name": name, "skipped": f"failed: {type(exc).__name__}: {str(exc)[:200]}"}
        say(f"[stage] {name}: skipped ({rec['skipped']})")
        self.rows.append(rec)
        return rec


def run_pipeline(lake, landing: Path, days: list[str], workdir: Path | None = None) -> tuple[list[dict], dict]:
    """Run every stage on ``lake``; returns (stage records, registry timing).

    Memory stays bounded whatever the fleet size: landing goes group by group
    (:func:`~wattlake.landing.chunk_days`, at most 256 MB of raw files each, at least 20 groups when
    they can be 32 MB or more), silver in steps of
    :data:`~wattlake.modelling.CHUNK_SYSTEM_DAYS` system-days, gold in steps of
    :data:`~wattlake.modelling.GOLD_SYSTEM_DAYS`, alerts
    :data:`~wattlake.modelling.ALERT_SYSTEMS_PER_STEP` systems at a time and the release month by
    month; nothing holds the fleet's readings.
    """
    from wattlake.landing import chunk_days, land
    try:
        from wattlake.landing import iter_chunk_days
    except ImportError:  # an older wattlake: the groups planned up front
        iter_chunk_days = chunk_days

    try:
        from wattlake.landing import land_groups
    except ImportError:  # an older wattlake (before/after comparisons): one land() per group
        def land_groups(lake, landing, source, groups):
            return (land(lake, landing, source, g) for g in groups)
    from wattlake.modelling import write_alerts, write_pv_intervals, write_system_daily
    from wattlake.registry import land_registry
    from wattlake.tables import SYSTEM_DAILY

    t0 = time.perf_counter()
    reg = land_registry(lake, landing)
    registry = {"seconds": round(time.perf_counter() - t0, 4), "rows": {k: r.rows for k, r in reg.items()}}
    say(f"[registry] landed in {registry['seconds']:.2f} s: {registry['rows']}")

    st = Stages()

    def landing_stage(source: str):
        def fn():
            reports, t1 = [], time.perf_counter()  # groups planned while landing runs (listing is timed)
            for i, r in enumerate(land_groups(lake, landing, source, iter_chunk_days(landing, source, days))):
                reports.append(r)
                done = sum(x.records for x in reports)
                say(f"  [{source}] group {i + 1} {r.partition}: {r.records:,} records "
                    f"({done:,} so far, {done / (time.perf_counter() - t1):,.0f}/s, "
                    f"RSS peak {peak_rss_bytes() / 2**20:,.0f} MB)")
            tot = {k: sum(getattr(r, k) for r in reports)
                   for k in ("files", "records", "landed", "duplicates", "quarantined")}
            return tot["records"], {"files": tot["files"], "landed": tot["landed"], "duplicates": tot["duplicates"],
                                    "quarantined": tot["quarantined"], "merges": len(reports)}
        return fn

    st.run("land_inverter", landing_stage("inverter"))
    st.run("land_meter", landing_stage("meter"), unit="telegrams")
    st.run("land_device", landing_stage("device"))
    st.run("land_weather", landing_stage("weather"))

    def silver():
        result = write_pv_intervals(lake, days[0], days[-1], progress=lambda m: say(f"  [silver] {m}"))
        return result["rows"], {"chunks": result["chunks"]}

    st.run("silver_pv_intervals", silver)

    def gold():
        return write_system_daily(lake, days[0], days[-1])["rows"], {}

    st.run("gold_system_daily", gold)

    def alerts():
        out = write_alerts(lake)
        # rows = system-days judged; the episodes found are reported alongside
        return lake.read(SYSTEM_DAILY.name).height, {"alerts": out.height}

    st.run("alerts", alerts)
    for name, hook in OPTIONAL_STAGES:
        st.optional(name, lambda hook=hook: hook(lake, days, workdir))
    return st.rows, registry


# ---------------------------------------------------------------------------------------------
# 2b. stages other engineers are building (HOOK POINTS: the lead wires the final calls here)
# ---------------------------------------------------------------------------------------------

class NotBuilt(Exception):
    """The module a stage needs does not exist (yet): the stage is listed as skipped."""


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise NotBuilt(f"not built yet ({', '.join(missing)} missing)")


def stage_guarantee_evaluations(lake, days: list[str], workdir: Path | None):
    """HOOK guarantee_evaluations: what the asset ``gold_guarantee_evaluations`` runs.

    rows = guarantee years evaluated (the whole history is re-evaluated, as the asset does).
    """
    _need("wattlake.guarantee", "wattlake.evidence")
    from wattlake.evidence import write_evaluations

    evaluations, _versions = write_evaluations(lake)
    verdicts = (dict(evaluations.group_by("verdict").len().sort("verdict").iter_rows())
                if evaluations.height and "verdict" in evaluations.columns else {})
    return evaluations.height, {"verdicts": verdicts}


def stage_research_release(lake, days: list[str], workdir: Path | None):
    """HOOK research_release: one k-anonymous release over the whole period, written to local exports.

    rows = homes released. Keys (pseudonyms in the audit record) live in the work dir.
    """
    _need("wattlake.research", "wattlake.anonymise", "wattlake.exports")
    from wattlake.exports import ExportRoot
    from wattlake.research import plan_release, register_agreement, write_release

    base = workdir or Path(tempfile.mkdtemp(prefix="wattlake-bench-"))
    os.environ.setdefault("WATTLAKE_KEY_DIR", str(base / "keys"))
    register_agreement(lake, "benchmark", "DSA-BENCH", "benchmark of the release stage",
                       valid_until=dt.date.today() + dt.timedelta(days=1))
    plan = plan_release(lake, "benchmark", f"{days[0]}:{days[-1]}")
    result = write_release(plan, lake, ExportRoot(str(base / "exports")))
    return int(plan.counts.get("released", 0)), {"files": len(result.manifest.get("files", []))}


#: (stage name, hook) run after the alerts; a hook raising NotBuilt is listed as skipped
OPTIONAL_STAGES = (("guarantee_evaluations", stage_guarantee_evaluations),
                   ("research_release", stage_research_release))


# ---------------------------------------------------------------------------------------------
# 3. naive baseline
# ---------------------------------------------------------------------------------------------

def _read_jsonl_naive(path: Path):
    """pandas read_json per file; a file with a broken line falls back to json.loads line by line."""
    import pandas as pd

    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except ValueError:
        recs = []
        for line in text.splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
        return pd.DataFrame.from_records(recs)


def _read_knmi_naive(path: Path):
    import pandas as pd

    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    header = next(ln for ln in reversed(lines) if ln.startswith("#") and "STN" in ln)
    cols = [c.strip() for c in header.lstrip("# ").split(",")]
    data = "\n".join(ln for ln in lines if not ln.startswith("#"))
    return pd.read_csv(io.StringIO(data), names=cols, skipinitialspace=True)


def _median_timed(fn, repeats: int | None = None):
    """(median wall seconds over ``repeats`` calls of ``fn``, the last call's result)."""
    times, out = [], None
    for _ in range(repeats or NAIVE_REPEATS):  # a handful of timed repeats
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run_naive(landing: Path, days: list[str], n_fleet: int, n_systems: int = 3, max_days: int = 30) -> dict:
    """The first script: pandas + a Python set + a ModelChain per system, on a subset."""
    import warnings

    import numpy as np
    import pandas as pd
    import pvlib

    warnings.filterwarnings("ignore")
    sub_days = days[:max_days]
    systems = pd.read_csv(landing / "registry" / "systems.csv").head(n_systems)
    serials = set(systems["serial"])
    say(f"[naive] {len(systems)} systems x {len(sub_days)} days (reads the fleet's files, keeps the subset)")

    # --- read: every inverter and weather file of those days (files hold the whole fleet) ------
    t0 = time.perf_counter()
    frames, weather = [], []
    for day in sub_days:
        for f in sorted((landing / "inverter" / day).glob("*.jsonl")):
            df = _read_jsonl_naive(f)
            frames.append(df[df["serial"].isin(serials)])
        for f in sorted((landing / "weather" / day).glob("*.txt")):
            weather.append(_read_knmi_naive(f))
    raw = pd.concat(frames, ignore_index=True)
    wx = pd.concat(weather, ignore_index=True)
    read_s = time.perf_counter() - t0

    # the dedupe and model parts run on a small subset, and their time is scaled up ~100-fold:
    # each is timed NAIVE_REPEATS times and the median taken, so one pause (a garbage
    # collection, a page fault storm) does not move the baseline
    def dedupe():
        # --- dedupe: row by row with a Python set of (serial, ts) ---------------------------------
        seen: set = set()
        keep = []
        for row in raw.itertuples(index=False):
            key = (row.serial, row.ts)
            if key in seen or not isinstance(row.ts, str) or pd.isna(row.ac_power_w):
                keep.append(False)
                continue
            seen.add(key)
            keep.append(True)
        readings = raw[keep].copy()
        readings["ts_utc"] = pd.to_datetime(readings["ts"], utc=True, errors="coerce", format="ISO8601")
        lo = pd.Timestamp(sub_days[0], tz="UTC")
        hi = pd.Timestamp(sub_days[-1], tz="UTC") + pd.Timedelta(days=1)
        readings = readings[(readings["ts_utc"] > lo) & (readings["ts_utc"] <= hi)]  # drops NaT and future stamps
        return readings

    def model(readings):
        # --- model: a ModelChain per system, then hourly/daily comparison ---------------------------
        hourly_wx = wx.dropna(subset=["Q"])
        hourly_wx["ts_utc"] = (pd.to_datetime(hourly_wx["YYYYMMDD"].astype(str), format="%Y%m%d").dt.tz_localize("UTC")
                               + pd.to_timedelta(hourly_wx["HH"] - 1, unit="h"))
        daily_rows = 0
        results = []
        for s in systems.itertuples(index=False):
            w = hourly_wx[hourly_wx["STN"] == s.station_id].set_index("ts_utc").sort_index()
            w = w[~w.index.duplicated()]
            times = w.index + pd.Timedelta(minutes=30)  # hour midpoint
            loc = pvlib.location.Location(s.lat, s.lon, tz="UTC")
            sp = loc.get_solarposition(times)
            ghi = pd.Series(w["Q"].to_numpy() * 10000.0 / 3600.0, index=times)  # J/cm2 per hour -> W/m2
            erbs = pvlib.irradiance.erbs(ghi, sp["zenith"], times)
            weather_in = pd.DataFrame({"ghi": ghi, "dni": erbs["dni"], "dhi": erbs["dhi"],
                                       "temp_air": w["T"].to_numpy() / 10.0, "wind_speed": w["FH"].to_numpy() / 10.0},
                                      index=times).fillna({"temp_air": 12.0, "wind_speed": 3.0})
            system = pvlib.pvsystem.PVSystem(
                surface_tilt=s.tilt_deg, surface_azimuth=s.azimuth_deg,
                module_parameters={"pdc0": s.kwp * 1000.0, "gamma_pdc": -0.0037},
                inverter_parameters={"pdc0": s.inverter_ac_kw * 1000.0 / 0.96, "eta_inv_nom": 0.96},
                temperature_model_parameters={"u0": 25.0, "u1": 6.84})
            mc = pvlib.modelchain.ModelChain(system, loc, dc_model="pvwatts", ac_model="pvwatts",
                                             aoi_model="physical", spectral_model="no_loss",
                                             temperature_model="faiman")
            mc.run_model(weather_in)
            expected = (mc.results.ac.clip(lower=0) / 1000.0)  # W over 1 h -> kWh
            expected.index = expected.index - pd.Timedelta(minutes=30)
            r = readings[readings["serial"] == s.serial].set_index("ts_utc").sort_index()
            # a reading at ts is the mean power of (ts - 5 min, ts]
            actual = (r["ac_power_w"].astype(float) * (5 / 60) / 1000.0)
            actual.index = actual.index - pd.Timedelta(minutes=2.5)
            actual_h = actual.resample("1h").sum()
            hourly = pd.DataFrame({"actual_kwh": actual_h, "expected_kwh": expected}).fillna(0.0)
            daily = hourly.resample("1D").sum()
            daily["ratio"] = np.where(daily["expected_kwh"] > 0, daily["actual_kwh"] / daily["expected_kwh"], np.nan)
            daily_rows += len(daily)
            results.append(daily)
        return daily_rows

    dedupe_s, readings = _median_timed(dedupe)
    model_s, daily_rows = _median_timed(lambda: model(readings))

    sub_sy = len(systems) * len(sub_days) / 365.0       # system-years the dedupe + model parts covered
    fleet_sy = n_fleet * len(sub_days) / 365.0          # system-years in the files the read part parsed
    per_sy = read_s / fleet_sy + dedupe_s / sub_sy + model_s / sub_sy
    out = {
        "systems": int(len(systems)), "days": len(sub_days), "fleet_systems_in_files": n_fleet,
        "raw_rows": int(len(raw)), "readings": int(len(readings)), "daily_rows": int(daily_rows),
        "read_seconds": round(read_s, 4), "dedupe_seconds": round(dedupe_s, 4), "model_seconds": round(model_s, 4),
        "seconds": round(read_s + dedupe_s + model_s, 4),
        "seconds_per_system_year": round(per_sy, 4),
        "scaling": "read / (fleet systems x days / 365) + (dedupe + model) / (subset systems x days / 365)",
        "repeats": f"dedupe and model: median of {NAIVE_REPEATS}",
        "peak_rss_bytes": peak_rss_bytes(),
    }
    say(f"[naive] read {read_s:.2f} s, dedupe {dedupe_s:.2f} s, model {model_s:.2f} s -> "
        f"{per_sy:,.1f} s per system-year")
    return out


# ---------------------------------------------------------------------------------------------
# 4. report
# ---------------------------------------------------------------------------------------------

def table(stages: list[dict]) -> str:
    lines = [f"{'stage':24s} {'rows':>12s} {'seconds':>9s} {'rows/s':>12s} {'stage peak MB':>14s} "
             f"{'CPU user/sys s':>15s}", "-" * 91]
    for s in stages:
        if "skipped" in s:
            lines.append(f"{s['name']:24s} {'skipped: ' + s['skipped']:>48s}")
            continue
        peak = s.get("stage_peak_rss_bytes") or s["peak_rss_bytes"]
        cpu = f"{s['cpu_user_s']:.1f}/{s['cpu_sys_s']:.1f}" if "cpu_user_s" in s else ""
        lines.append(f"{s['name']:24s} {s['rows']:>12,} {s['seconds']:>9.2f} {s['rows_per_s'] or 0:>12,.0f} "
                     f"{peak / 2**20:>14,.0f} {cpu:>15s}")
    return "\n".join(lines)


def _prepare(workdir: Path) -> None:
    """Own the work dir: refuse to clear a folder this script did not create."""
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
        raise SystemExit(f"{workdir} is not empty and not a benchmark work dir ({MARKER} missing); refusing to clear it")
    for sub in WORK_SUBDIRS:
        shutil.rmtree(workdir / sub, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).touch()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", type=int, default=20)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--json", required=True, help="where to write the results")
    p.add_argument("--workdir", help="landing + lake folder (default: a fresh temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work dir afterwards")
    p.add_argument("--landing", help="use this already generated landing folder (not regenerated, never "
                   "deleted; --systems/--days must describe it)")
    p.add_argument("--naive-systems", type=int, default=3)
    p.add_argument("--naive-days", type=int, default=30)
    args = p.parse_args(argv)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("wattlake").setLevel(logging.WARNING)

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="wattlake-bench-"))
    _prepare(workdir)
    landing, lake_root = workdir / "landing", workdir / "lake"
    try:
        if args.landing:
            landing, gen_s = Path(args.landing), None
            say(f"[generate] using the existing landing folder {landing} (not regenerated)")
        else:
            say(f"[generate] {args.systems} systems x {args.days} days from {START} into {landing}")
            gen_s = generate(landing, args.systems, args.days)
            say(f"[generate] done in {gen_s:.1f} s (not counted)")
        days = landing_days(landing)

        from wattlake.lake import Lake

        lake = Lake(str(lake_root))
        startup_s = startup()
        say(f"[startup] imports and JIT warm-up in {startup_s:.2f} s (once per process; reported, not in a stage)")
        speed = calibrate()
        say(f"[calibration] this machine decodes {speed['json_decode_lines_per_s']:,} JSON lines/s on one thread "
            "(fixed work; compare runs by it)")
        t0 = time.perf_counter()
        stages, registry = run_pipeline(lake, landing, days, workdir)
        pipeline_s = time.perf_counter() - t0
        naive = run_naive(landing, days, args.systems, args.naive_systems, min(args.days, args.naive_days))

        by = {s["name"]: s for s in stages if "skipped" not in s}
        path_s = sum(by[n]["seconds"] for n in INVERTER_PATH)
        system_years = args.systems * len(days) / 365.0
        pipe_per_sy = path_s / system_years
        speedup = naive["seconds_per_system_year"] / pipe_per_sy if pipe_per_sy > 0 else None
        result = {
            "systems": args.systems,
            "days": args.days,
            "landing_days": len(days),
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "processor": platform.machine(),
                        "calibration": speed},
            "commit": git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "generation_seconds": round(gen_s, 3) if gen_s is not None else None,
            "startup_seconds": round(startup_s, 3),
            "registry": registry,
            "pipeline_seconds": round(pipeline_s, 3),
            "stages": stages,
            "naive": naive,
            "pipeline_inverter_path": {"stages": list(INVERTER_PATH), "seconds": round(path_s, 4),
                                       "seconds_per_system_year": round(pipe_per_sy, 4)},
            "speedup_vs_naive": float(f"{speedup:.3g}") if speedup else None,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")

        say("")
        say(f"wattlake benchmark: {args.systems} systems x {args.days} days, {os.cpu_count()} CPUs, "
            f"generation {f'{gen_s:.1f} s' if gen_s is not None else 'skipped (--landing)'} (not counted)")
        say(table(stages))
        say(f"\nend to end (registry + every stage run): {pipeline_s:.2f} s (+ {startup_s:.2f} s startup)")
        say(f"inverter path ({' + '.join(INVERTER_PATH)}): {path_s:.2f} s = {pipe_per_sy:.3f} s per system-year")
        say(f"naive baseline ({naive['systems']} systems x {naive['days']} days): "
            f"{naive['seconds']:.2f} s = {naive['seconds_per_system_year']:.3f} s per system-year")
        say(f"speedup vs naive: {result['speedup_vs_naive']}x")
        say(f"written {args.json}")
    finally:
        if args.keep:
            say(f"kept {workdir}")
        elif args.workdir:
            for sub in WORK_SUBDIRS:
                shutil.rmtree(workdir / sub, ignore_errors=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
