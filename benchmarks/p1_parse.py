"""Benchmark: vectorised DSMR 5 P1 parsing (wattlake.parsing.p1) vs dsmr-parser.

Builds ``HOMES x DAYS`` day files of telegrams every ``INTERVAL_MIN`` minutes in
memory with `build_telegrams` (not timed), then times `parse_p1` over all of
them and dsmr-parser's ``TelegramParser(V5)`` on a 2,000 telegram sample.

    .venv/bin/python benchmarks/p1_parse.py [--homes 200] [--days 30] [--interval-min 15]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone

import numpy as np
import polars as pl

from wattlake.parsing.p1 import build_telegrams, meter_id_from_serial, parse_p1, reference_parse


def make_day_files(homes: int, days: int, interval_min: int, seed: int = 7) -> tuple[list[str], list[str], int]:
    rng = np.random.default_rng(seed)
    per_day = 24 * 60 // interval_min
    n = homes * days * per_day
    home = np.repeat(np.arange(homes), days * per_day)
    day = np.tile(np.repeat(np.arange(days), per_day), homes)
    k = np.tile(np.arange(per_day), homes * days)
    t0 = int(datetime(2025, 10, 1, tzinfo=timezone.utc).timestamp())
    ts = t0 + day * 86400 + k * interval_min * 60
    p_in = np.round(rng.gamma(2.0, 0.25, n), 3)
    p_out = np.round(np.where(rng.random(n) < 0.3, rng.gamma(2.0, 0.6, n), 0.0), 3)
    step_h = interval_min / 60
    # cumulative counters per home (the data is ordered by home, then time)
    def counter(x, base):
        c = np.cumsum(x * step_h)
        start = np.repeat(c[:: days * per_day] - x[:: days * per_day] * step_h, days * per_day)
        return np.round(base + c - start, 3)

    base = rng.uniform(1000, 20000, homes)[home]
    tariff = np.where((k * interval_min // 60 >= 7) & (k * interval_min // 60 < 23), 2, 1).astype(np.int8)
    imp1 = counter(np.where(tariff == 1, p_in, 0.0), base)
    imp2 = counter(np.where(tariff == 2, p_in, 0.0), base * 0.8)
    exp1 = counter(np.where(tariff == 1, p_out, 0.0), base * 0.1)
    exp2 = counter(np.where(tariff == 2, p_out, 0.0), base * 0.2)
    serials = [f"E00{4300000000000 + h:013d}" for h in range(homes)]
    meters = np.array([meter_id_from_serial(s) for s in serials], dtype=object)  # loop over homes
    gas_ids = np.array([meter_id_from_serial(f"G00{3900000000000 + h:013d}") for h in range(homes)], dtype=object)
    has_gas = rng.random(homes) < 0.8
    gas = np.round(rng.uniform(500, 5000, homes)[home] + np.cumsum(rng.gamma(1.0, 0.05, n)) % 1000, 3)
    df = pl.DataFrame(
        {
            "meter_id": meters[home],
            "gas_meter_id": pl.Series(gas_ids[home].tolist(), dtype=pl.String),
            "ts_utc": pl.Series(ts * 1_000_000).cast(pl.Datetime("us", "UTC")),
            "imported_t1_kwh": imp1,
            "imported_t2_kwh": imp2,
            "exported_t1_kwh": exp1,
            "exported_t2_kwh": exp2,
            "power_imported_kw": p_in,
            "power_exported_kw": p_out,
            "active_tariff": tariff,
            "gas_m3": gas,
            "gas_ts_utc": pl.Series((ts - ts % 3600) * 1_000_000).cast(pl.Datetime("us", "UTC")),
            "voltage_l1_v": np.round(rng.normal(231, 2, n), 1),
        }
    ).with_columns(
        gas_meter_id=pl.when(pl.Series(has_gas[home])).then(pl.col("gas_meter_id")),
        file_id=pl.Series(home * days + day),
    )
    tel = build_telegrams(df)
    files = pl.DataFrame({"file_id": df["file_id"], "t": tel}).group_by("file_id", maintain_order=True).agg(
        pl.col("t").str.join("")
    )
    texts = files["t"].to_list()
    names = [f"home{f // days:04d}/2025-10-{f % days + 1:02d}.txt" for f in files["file_id"].to_list()]
    return texts, names, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--homes", type=int, default=200)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--interval-min", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ref-n", type=int, default=2000)
    args = ap.parse_args()

    t = time.perf_counter()
    texts, names, n = make_day_files(args.homes, args.days, args.interval_min)
    mb = sum(len(x) for x in texts) / 1e6
    print(f"generated {len(texts)} files, {n:,} telegrams, {mb:,.0f} MB in {time.perf_counter() - t:.1f} s (not timed)")

    parse_p1(texts[:2], names[:2])  # warm up numba cache / JIT
    best = float("inf")
    for _ in range(args.repeat):
        c0 = time.process_time()
        t = time.perf_counter()
        readings, rejects = parse_p1(texts, names)
        dt = time.perf_counter() - t
        if dt < best:
            best, cpu = dt, time.process_time() - c0
    print(f"parse_p1:    {len(readings):,} readings, {len(rejects):,} rejects, best of {args.repeat}: {best:.2f} s"
          f" -> {n / best:,.0f} telegrams/s ({mb / best:,.0f} MB/s)")
    print(f"             CPU time {cpu:.2f} s on {os.cpu_count()} cores ({n / cpu:,.0f} telegrams per CPU-second)")

    sample = readings["raw_telegram"].head(args.ref_n).to_list()
    from dsmr_parser import telegram_specifications
    from dsmr_parser.parsers import TelegramParser

    parser = TelegramParser(telegram_specifications.V5)
    t = time.perf_counter()
    for s in sample:  # the reference is inherently per telegram
        parser.parse(s)
    dt = time.perf_counter() - t
    print(f"dsmr-parser: {len(sample):,} telegrams in {dt:.2f} s -> {len(sample) / dt:,.0f} telegrams/s")
    t = time.perf_counter()
    for s in sample:
        reference_parse(s)
    dt2 = time.perf_counter() - t
    print(f"reference_parse (dsmr-parser + required-field check): {len(sample) / dt2:,.0f} telegrams/s")
    print(f"speed-up: {n / best / (len(sample) / dt):,.0f}x")


if __name__ == "__main__":
    main()
