"""Prove a speed change kept behaviour: land one landing folder, dump every table sorted, compare.

    # 1. with the code to compare against (e.g. a copy of the old package on PYTHONPATH)
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/equality.py land LANDING /tmp/eq-before
    # 2. with the current code
    .venv/bin/python benchmarks/equality.py land LANDING /tmp/eq-after
    # 3. compare: exit 0 and "IDENTICAL" when every table and every landing report is equal
    .venv/bin/python benchmarks/equality.py compare /tmp/eq-before /tmp/eq-after

``land`` runs the registry, the four landers (over :func:`wattlake.landing.chunk_days` groups, as
the assets do, with a fixed landing time so ``landed_at_utc`` and the future-timestamp limit do
not depend on the clock), silver, gold and alerts, then writes each table sorted on all of its
columns to ``OUT/<layer>__<name>.parquet`` and the landing reports (records, landed, duplicates,
quarantined, reasons; the per-call table versions are left out since batching may change how
many commits are made) to ``OUT/reports.json``. ``compare`` checks schema and values (nulls
equal, floats bit for bit).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

#: fixed landing time: after the generated fleet's data, so nothing is "future" by accident
NOW = dt.datetime(2026, 6, 1)
SOURCES = ("inverter", "meter", "device", "weather")
#: land with wattlake.landing.land_groups when the code has it (env EQ_GROUPS=0: land() per group)
GROUPS = os.environ.get("EQ_GROUPS", "1") != "0"
#: chunk_days byte bound (env EQ_MAX_BYTES; small values make many groups, to exercise prefetch)
MAX_BYTES = int(os.environ.get("EQ_MAX_BYTES", str(256 << 20)))
#: float columns whose last bits depend on row order in code outside landing/modelling: there a
#: relative difference up to 1e-12 is reported but tolerated
TOLERATE = {
    "gold/underperformance_alerts.deficit_kwh":
        "wattlake.alerts._with_energy sums daily energy after a hash join whose row order is not "
        "fixed: two runs of the same code on the same lake differ in the last bit",
    "silver/pv_intervals.dc_current_min_ratio":
        "wattlake.yield_model.hourly_actuals sums the MPPT currents in the order the rows come "
        "in, and two landings can lay the rows out in different Delta files: a mean can differ "
        "in the last bit, so a ratio of two equal means is 1.0 or 1-2^-52 (before 2026-11-24 "
        "Polars' grouped mean differed so even run to run on the same frame)",
}
REPORT_FIELDS = ("files", "records", "landed", "duplicates", "quarantined", "corrected", "counter_resets")


def _days(landing: Path) -> list[str]:
    return sorted({p.name for s in SOURCES if (landing / s).is_dir()
                   for p in (landing / s).iterdir() if p.is_dir() and len(p.name) == 10})


def land(landing: Path, out: Path) -> None:
    import polars as pl

    import wattlake
    from wattlake.landing import chunk_days
    from wattlake.landing import land as land_source

    try:
        from wattlake.landing import land_groups
    except ImportError:  # older code: group by group
        globals()["GROUPS"] = False
    from wattlake.lake import Lake
    from wattlake.modelling import write_alerts, write_pv_intervals, write_system_daily
    from wattlake.registry import land_registry

    print(f"wattlake imported from {Path(wattlake.__file__).parent}", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    lake = Lake(str(out / "lake"))
    land_registry(lake, landing)
    days = _days(landing)
    reports: dict[str, dict] = {}
    for source in SOURCES:
        t0 = time.perf_counter()
        groups = chunk_days(landing, source, days, max_bytes=MAX_BYTES)
        reps = (list(land_groups(lake, landing, source, groups, now=NOW)) if GROUPS
                else [land_source(lake, landing, source, g, now=NOW) for g in groups])
        tot = {k: sum(getattr(r, k) for r in reps) for k in REPORT_FIELDS}
        reasons: dict[str, int] = {}
        for r in reps:
            for k, v in r.reasons.items():
                reasons[k] = reasons.get(k, 0) + v
        tot["reasons"] = dict(sorted(reasons.items()))
        reports[source] = tot
        print(f"{source}: {tot['records']:,} records in {time.perf_counter() - t0:.2f} s", flush=True)
    write_pv_intervals(lake, days[0], days[-1])
    write_system_daily(lake, days[0], days[-1])
    write_alerts(lake)
    (out / "reports.json").write_text(json.dumps(reports, indent=2, sort_keys=True) + "\n")
    for name in lake.tables():
        frame = lake.read(name)
        sortable = [c for c, t in frame.schema.items() if not isinstance(t, (pl.List, pl.Struct, pl.Array))]
        frame = frame.select(sorted(frame.columns)).sort(sortable, nulls_last=True, maintain_order=True)
        frame.write_parquet(out / (name.replace("/", "__") + ".parquet"))
        print(f"  {name}: {frame.height:,} rows", flush=True)
    shutil.rmtree(out / "lake")


def compare(a: Path, b: Path) -> bool:
    import numpy as np
    import polars as pl

    ok, tolerated = True, False
    ra, rb = json.loads((a / "reports.json").read_text()), json.loads((b / "reports.json").read_text())
    if ra != rb:
        ok = False
        print(f"reports differ:\n  {ra}\n  {rb}")
    else:
        print(f"reports equal: {json.dumps(ra, sort_keys=True)}")
    names = sorted({p.name for p in a.glob("*.parquet")} | {p.name for p in b.glob("*.parquet")})
    for name in names:
        if not (a / name).exists() or not (b / name).exists():
            ok = False
            print(f"{name}: only in {'b' if not (a / name).exists() else 'a'}")
            continue
        fa, fb = pl.read_parquet(a / name), pl.read_parquet(b / name)
        if fa.schema != fb.schema:
            ok = False
            print(f"{name}: schemas differ {fa.schema} vs {fb.schema}")
            continue
        same = fa.height == fb.height and fa.equals(fb, null_equal=True)
        if same:  # bit-level check of floats (equals treats -0.0 == 0.0; NaN handling aside)
            for c, t in fa.schema.items():
                if t in (pl.Float32, pl.Float64):
                    ia = fa.get_column(c).to_numpy().view("u8" if t == pl.Float64 else "u4")
                    ib = fb.get_column(c).to_numpy().view("u8" if t == pl.Float64 else "u4")
                    if not (ia == ib).all():
                        same = False
        if same or fa.height != fb.height:
            ok &= same
            print(f"{name}: {fa.height:,} rows {'equal' if same else 'DIFFER'}")
            continue
        # same shape, different values: name the columns, and tolerate known-unstable float sums
        table = name.removesuffix(".parquet").replace("__", "/")
        notes, bad = [], False
        for c, t in fa.schema.items():
            if fa.get_column(c).equals(fb.get_column(c), null_equal=True):
                continue
            if t == pl.Float64 and f"{table}.{c}" in TOLERATE:
                x, y = fa.get_column(c), fb.get_column(c)
                differ = x.ne_missing(y)
                both = differ & x.is_not_null() & y.is_not_null()
                xs, ys = x.filter(both).to_numpy(), y.filter(both).to_numpy()
                rel = float(np.max(np.abs(xs - ys) / np.maximum(np.abs(xs), 1e-300))) if xs.size else 0.0
                flips = int(differ.sum()) - xs.size  # null on one side only
                notes.append(f"{c}: {int(differ.sum())} of {fa.height} rows differ, max relative difference "
                             f"{rel:.1e}, {flips} null/value flips (tolerated: {TOLERATE[f'{table}.{c}']})")
                bad |= rel > 1e-12 or flips > max(1, fa.height // 1000)
            else:
                notes.append(f"{c} differs")
                bad = True
        ok &= not bad
        tolerated |= not bad
        print(f"{name}: {fa.height:,} rows {'DIFFER' if bad else 'equal within tolerance'}: {'; '.join(notes)}")
    print("DIFFERENT" if not ok else "EQUAL within the tolerances above" if tolerated else "IDENTICAL")
    return ok


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "land":
        land(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return 0 if compare(Path(argv[1]), Path(argv[2])) else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
