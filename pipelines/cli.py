"""``wattlake``: the operator's command line.

Commands
--------
``wattlake generate``   write a deterministic sample fleet into the landing folder
``wattlake demo``       generate (if needed) and materialise every asset on the local lake
``wattlake land``       land a range of landing days (through Dagster, recorded as runs)
``wattlake tables``     list the lake's tables with version and row count
``wattlake inbox pull`` move raw files from the S3 inbox into the landing folder

Output is progress and counts only: no personal data, no credentials.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

from pipelines.resources import landing_root
from wattlake.lake import Lake


#: modules adding subcommands (each defines ``register(subparsers)``)
EXTENSIONS: tuple[str, ...] = ("pipelines.cli_subject", "pipelines.cli_research", "pipelines.cli_claims",
                               "pipelines.cli_alerts", "pipelines.cli_inbox")


def _say(msg: str) -> None:
    print(msg, flush=True)


def _instance():
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def materialize_all(start: str, end: str, instance=None, lake_root: str | None = None,
                    landing: str | None = None, log_level: str = "INFO", docs_dir: str | None = None):
    """Materialise the registry; bronze (with quality checks), silver and gold daily for ``start..end``
    in one run; then the alert episodes.

    Returns the two Dagster execution results. Used by ``wattlake demo``/``land`` and the tests.
    """
    import dagster as dg

    from assets.bronze import BRONZE_ASSETS
    from assets.performance import gold_system_daily, gold_underperformance_alerts
    from assets.registry import registry
    from assets.yield_ import silver_pv_intervals
    from pipelines.resources import LakeResource, LandingResource
    from quality.checks import QUALITY_CHECKS, QualityResource

    # the run's console logger: progress lines at INFO, no per-event DEBUG noise
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    resources = {"lake": LakeResource(root=lake_root), "landing": LandingResource(root=landing),
                 "quality": QualityResource(docs_dir=docs_dir)}
    instance = instance or _instance()
    reg = dg.materialize([registry], resources=resources, instance=instance, raise_on_error=True,
                         run_config=run_config)
    bronze = dg.materialize(
        [*BRONZE_ASSETS, *QUALITY_CHECKS, silver_pv_intervals, gold_system_daily], resources=resources, instance=instance, raise_on_error=True, run_config=run_config,
        selection=dg.AssetSelection.all(),
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
    )
    # episodes and guarantee years span partitions: these (unpartitioned) assets run once over the whole history
    from assets.guarantee import gold_guarantee_evaluations

    dg.materialize([gold_underperformance_alerts, gold_guarantee_evaluations], resources=resources, instance=instance, raise_on_error=True,
                   run_config=run_config)
    return reg, bronze


def _landing_days(root: Path) -> list[str]:
    from wattlake.landing import landing_days

    return landing_days(root)


def cmd_generate(args) -> int:
    from wattlake.generator import generate_fleet

    root = landing_root(args.landing)
    t0 = time.perf_counter()
    summary = generate_fleet(root, n_systems=args.systems, start=dt.date.fromisoformat(args.start),
                             days=args.days, seed=args.seed, progress=_say)
    _say(f"generated {args.systems} systems x {args.days} days into {root} in {time.perf_counter() - t0:.1f} s")
    for k, v in summary.items():
        if isinstance(v, (int, float, str)):
            _say(f"  {k}: {v}")
    return 0


def _print_summary(lake: Lake, bronze_result) -> None:
    import polars as pl

    from wattlake import tables as T

    _say("\nlanding summary (rows read = landed + duplicates + quarantined):")
    seen = set()
    for mat in bronze_result.get_asset_materialization_events():
        m = mat.materialization
        md = {k: v.value for k, v in m.metadata.items()}
        # a range run reports the same run totals on every partition's event: print them once
        if "rows_read" in md and m.asset_key not in seen:
            seen.add(m.asset_key)
            _say(f"  {m.asset_key.to_user_string():28s} read {md['rows_read']:>10,}  landed {md['rows_landed']:>10,}"
                 f"  duplicates {md['duplicates']:>7,}  quarantined {md['quarantined']:>6,}"
                 f"  corrected {md['corrected']:>5,}")
    if lake.exists(T.QUARANTINE.name):
        q = lake.read(T.QUARANTINE.name).group_by("source", "reason").len().sort("source", "reason")
        _say("\nquarantine by reason:")
        for source, reason, n in q.iter_rows():
            _say(f"  {source:9s} {reason:32s} {n:>7,}")
    from wattlake.tables import ALERTS

    if lake.exists(ALERTS.name):
        alerts = lake.read(ALERTS.name)
        _say(f"\nunderperformance alerts: {alerts.height} episodes on {alerts['system_id'].n_unique()} systems")
        for kind, n, kwh in alerts.group_by("kind").agg(pl.len(), pl.col("deficit_kwh").sum()).sort("kind").iter_rows():
            _say(f"  {kind:16s} {n:>4}  deficit {kwh:>9,.0f} kWh")
    _say("\ntables:")
    for name in lake.tables():
        n = lake.scan(name).select(pl.len()).collect().item()
        _say(f"  {name:32s} version {lake.version(name):>4}  rows {n:>11,}")


def cmd_demo(args) -> int:
    root = landing_root(args.landing)
    lake = Lake.from_env(args.lake)
    if not (root / "registry" / "systems.csv").is_file():
        from wattlake.generator import generate_fleet

        _say(f"generating a sample fleet: {args.systems} systems x {args.days} days from {args.start} -> {root}")
        t0 = time.perf_counter()
        generate_fleet(root, n_systems=args.systems, start=dt.date.fromisoformat(args.start), days=args.days,
                       seed=args.seed, progress=_say if args.verbose else None)
        _say(f"  done in {time.perf_counter() - t0:.1f} s")
    else:
        _say(f"using the existing landing folder {root}")
    days = _landing_days(root)
    if not days:
        _say("no landing days found")
        return 1
    _say(f"materialising registry and bronze for {days[0]}..{days[-1]} on {lake.describe()}")
    t0 = time.perf_counter()
    _, bronze = materialize_all(days[0], days[-1], lake_root=lake.root, landing=str(root))
    _say(f"  done in {time.perf_counter() - t0:.1f} s")
    _print_summary(lake, bronze)
    from pipelines.cli_research import demo_release

    demo_release(lake, days[0], days[-1], _say)
    from pipelines.cli_claims import demo_claims

    demo_claims(lake, _say)
    from pipelines.cli_alerts import demo_notices

    demo_notices(lake, _say)
    return 0


def cmd_land(args) -> int:
    root = landing_root(args.landing)
    lake = Lake.from_env(args.lake)
    if not Path(root).is_dir():  # asked for wrongly (a typo), not an empty landing folder
        print(f"error: no landing folder at {root} (give --landing or set WATTLAKE_LANDING)", file=sys.stderr)
        return 2
    days = _landing_days(root)
    start = args.start or (days[0] if days else None)
    end = args.end or (days[-1] if days else start)
    if not start:
        print(f"error: no landing days found under {root}", file=sys.stderr)
        return 1
    if end < start:
        print(f"error: --end {end} is before --start {start}", file=sys.stderr)
        return 2
    if not any(start <= d <= end for d in days):
        print(f"error: no landing day in {start}..{end} under {root}", file=sys.stderr)
        return 1
    _say(f"landing {start}..{end} from {root} into {lake.describe()}")
    _, bronze = materialize_all(start, end, lake_root=lake.root, landing=str(root))
    _print_summary(lake, bronze)
    return 0


def cmd_evaluate(args) -> int:
    """Alerts against the generator's ground truth, and the estimator's error on healthy days."""
    import polars as pl

    from wattlake.alerts import evaluate, format_evaluation
    from wattlake.evaluation import estimator_error
    from wattlake.tables import ALERTS, SYSTEM_DAILY

    lake = Lake.from_env(args.lake)
    truth = landing_root(args.landing) / "ground_truth" / "faults.parquet"
    if not truth.is_file():
        _say(f"no ground truth at {truth}: evaluation needs a generated fleet")
        return 1
    faults = pl.read_parquet(truth)
    result = evaluate(lake.read(ALERTS.name), faults, min_magnitude=args.min_magnitude)
    _say(format_evaluation(result))
    err = estimator_error(lake.read(SYSTEM_DAILY.name), faults)
    _say(f"\nestimator daily energy error on {err['system_days']} healthy system-days: "
         f"median |expected/actual - 1| = {100 * (err['median_abs_error'] or 0):.1f} %, "
         f"P95 = {100 * (err['p95_abs_error'] or 0):.1f} %, median bias = {100 * (err['bias'] or 0):+.1f} %")
    return 0


def cmd_tables(args) -> int:
    import polars as pl

    lake = Lake.from_env(args.lake)
    for name in lake.tables():
        n = lake.scan(name).select(pl.len()).collect().item()
        _say(f"{name:32s} version {lake.version(name):>4}  rows {n:>11,}")
    return 0


def iso_day(text: str) -> str:
    """argparse type: a calendar day YYYY-MM-DD (returned as given, checked)."""
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day YYYY-MM-DD: {text!r}") from None


def iso_time(text: str) -> dt.datetime:
    """argparse type: an ISO 8601 time (a day alone means its midnight; no offset means UTC)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


#: commands that work on the lake as it is: a lake root that does not exist is a mistake (a typo),
#: not an empty lake (generate, demo and land create it)
NEEDS_LAKE = frozenset({"tables", "evaluate", "subject", "retention", "claims", "release", "alerts",
                        "agreements"})


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: "--l" of a subcommand must not be read as an abbreviated "--lake"
    p = argparse.ArgumentParser(prog="wattlake", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--lake", help="lake root (default $WATTLAKE_LAKE or ./lakehouse)")
    p.add_argument("--landing", help="landing folder (default $WATTLAKE_LANDING or ./landing)")
    sub = p.add_subparsers(dest="command", required=True)

    def fleet_args(sp, systems: int, days: int):
        sp.add_argument("--systems", type=positive_int, default=systems,
                        help=f"number of PV systems (homes) (default {systems})")
        sp.add_argument("--days", type=positive_int, default=days, help=f"number of days (default {days})")
        sp.add_argument("--start", type=iso_day, default="2025-01-01", help="first day YYYY-MM-DD (default 2025-01-01)")
        sp.add_argument("--seed", type=int, default=42, help="random seed: the same seed, the same fleet (default 42)")

    g = sub.add_parser("generate", help="write a sample fleet into the landing folder")
    fleet_args(g, 40, 365)
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser("demo", help="generate a fleet if needed and materialise every asset")
    fleet_args(d, 40, 365)
    d.add_argument("--verbose", action="store_true", help="progress of the fleet generation")
    d.set_defaults(func=cmd_demo)

    la = sub.add_parser("land", help="land landing days into bronze (default: all present)")
    la.add_argument("--start", type=iso_day, help="first landing day YYYY-MM-DD")
    la.add_argument("--end", type=iso_day, help="last landing day YYYY-MM-DD")
    la.set_defaults(func=cmd_land)

    ev = sub.add_parser("evaluate", help="alert precision/recall and estimator error against ground truth")
    ev.add_argument("--min-magnitude", type=float, default=0.05,
                    help="faults losing less than this fraction are not required to be found")
    ev.set_defaults(func=cmd_evaluate)

    t = sub.add_parser("tables", help="list tables with version and row count")
    t.set_defaults(func=cmd_tables)

    # further command groups live in their own modules, each with ``register(sub)``
    import importlib

    for name in EXTENSIONS:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore")
    args = build_parser().parse_args(argv)
    from wattlake.evidence import ClaimError
    from wattlake.keys import KeyMismatch
    from wattlake.lake import LakeError
    from wattlake.privacy import SubjectNotFound

    if args.command in NEEDS_LAKE or args.command in ("land", "demo"):
        lake = Lake.from_env(args.lake)
        if args.command in NEEDS_LAKE or lake.is_s3:
            try:  # on S3: a missing bucket, an unreachable endpoint or refused credentials
                held = lake.check_root()
            except LakeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if args.command in NEEDS_LAKE and not held:
                # a path or prefix with nothing in it: a typo, not an empty lake to answer from
                print(f"error: no lake at {lake.describe()} (give --lake or set WATTLAKE_LAKE)", file=sys.stderr)
                return 2

    try:
        return args.func(args)
    except (SubjectNotFound, LakeError, ClaimError, KeyMismatch) as exc:  # refused with a reason: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
