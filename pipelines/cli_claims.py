"""``wattlake claims``: kWh-guarantee verdicts and insurer evidence packs.

``wattlake claims evaluate [--year Y]``   verdict counts and shortfall kWh/EUR per insurer
``wattlake claims build --year Y``        a signed pack for every shortfall whose guarantee year ended in Y
``wattlake claims build --claim ID``      one claim (``<policy_number>-<YYYYMMDD>``), or
``wattlake claims build --system S --year-start D``
``wattlake claims verify FOLDER [--recompute]``  signature and file hashes (and, with
                                         ``--recompute``, a rebuild from the recorded Delta versions)

Packs go to ``$WATTLAKE_EXPORTS`` (default ``./exports``) under ``insurers/<insurer>/<claim>/``.
Output is progress and counts; progress names pseudonymous system ids, never policy numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Callable

from pipelines.cli import iso_day
from wattlake.lake import Lake, LakeError


def _say(msg: str) -> None:
    print(msg, flush=True)


def _print_portfolio(evaluations, say: Callable[[str], None]) -> None:
    from wattlake.evidence import portfolio_summary

    counts = dict(evaluations.group_by("verdict").len().iter_rows()) if evaluations.height else {}
    say("guarantee years evaluated: " + (", ".join(f"{v} {counts.get(v, 0)}" for v in
                                                    ("met", "shortfall", "insufficient_data", "not_eligible"))))
    for insurer, verdict, years, systems, kwh, eur in portfolio_summary(evaluations).iter_rows():
        say(f"  {insurer:28s} {verdict:18s} {years:>4} year(s)  shortfall {kwh:>9,.1f} kWh  {eur:>9,.2f} EUR")


def demo_claims(lake: Lake, say: Callable[[str], None] = _say, exports: str | None = None) -> None:
    """``wattlake demo``: verdicts of the demo fleet and a pack for each of its shortfalls."""
    from wattlake.evidence import build_packs
    from wattlake.exports import ExportRoot
    from wattlake.tables import GUARANTEE_EVALUATIONS

    say("\nkWh guarantees:")
    if not lake.exists(GUARANTEE_EVALUATIONS.name):
        say("  no guarantee evaluations in the lake")
        return
    _print_portfolio(lake.read(GUARANTEE_EVALUATIONS.name), say)
    t0 = time.perf_counter()
    root = ExportRoot.from_env(exports)
    packs = build_packs(lake, export_root=root, progress=lambda m: say("  " + m))
    if packs:
        say(f"  {len(packs)} evidence pack(s) in {root.root}/insurers/ in {time.perf_counter() - t0:.1f} s")


def cmd_evaluate(args) -> int:
    import polars as pl

    from wattlake.evidence import evaluate, load_inputs

    lake = Lake.from_env(args.lake)
    inputs = load_inputs(lake)
    evaluations = evaluate(inputs)
    if args.year:
        evaluations = evaluations.filter(pl.col("year_end").dt.year() == args.year)
    _say(f"as of {inputs.as_of} (tables {', '.join(f'{k}@v{v}' for k, v in inputs.versions.items())})")
    _print_portfolio(evaluations, _say)
    return 0


def cmd_build(args) -> int:
    from wattlake.evidence import ClaimError, build_packs, resolve_claim
    from wattlake.exports import ExportRoot

    lake = Lake.from_env(args.lake)
    claims = None
    try:
        if args.claim:
            claims = [resolve_claim(lake, args.claim)]
        elif args.system:
            if not args.year_start:
                _say("--system needs --year-start YYYY-MM-DD")
                return 2
            claims = [(args.system, dt.date.fromisoformat(args.year_start))]
        elif not args.year:
            _say("give --claim, --system with --year-start, or --year")
            return 2
        t0 = time.perf_counter()
        root = ExportRoot.from_env(args.exports)
        packs = build_packs(lake, claims=claims, year=None if claims else args.year, export_root=root,
                            progress=_say, revise=args.revise)
    except ClaimError as exc:
        print(f"error: cannot build: {exc}", file=sys.stderr)
        return 1
    _say(f"{len(packs)} pack(s) written under {root.root}/insurers/ in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_verify(args) -> int:
    from wattlake.evidence import recompute_pack, verify_pack

    ok = True
    for folder in args.folders:
        v = verify_pack(folder)
        _say(f"{folder}: {'signature and files OK' if v.ok else 'FAILED'}")
        for p in v.problems:
            _say(f"  {p}")
        ok &= v.ok
        if args.recompute and v.manifest:
            try:
                r = recompute_pack(Lake.from_env(args.lake), v.manifest)
            except LakeError as exc:  # e.g. a version an erasure purged: say so, check the other folders
                _say(f"  cannot recompute: {exc}")
                ok = False
                continue
            _say(f"  recomputed from {json.dumps(v.manifest['tables'], sort_keys=True)}: "
                 + ("identical to the manifest" + ("" if v.ok else " (the files in the folder are what differ)")
                    if r.identical else f"DIFFERS in {', '.join(r.mismatches)}"))
            if not r.identical:
                for line in _code_differences(v.manifest.get("code_version") or {}):
                    _say(f"    {line}")
            ok &= r.identical
    return 0 if ok else 1


def _code_differences(recorded: dict) -> list[str]:
    """How the code that built a pack differs from the code running now (a likely cause of a
    recomputation that differs): commit, uncommitted changes, library versions."""
    from wattlake.exports import code_version

    now, out = code_version(), []
    if recorded.get("git_commit") != now.get("git_commit"):
        out.append(f"built by commit {recorded.get('git_commit')}, this is {now.get('git_commit')}")
    for when, cv in (("at build", recorded), ("now", now)):
        if cv.get("git_dirty"):
            out.append(f"uncommitted changes {when}: the commit alone does not name that code")
    libs = recorded.get("libraries") or {}
    out += [f"{name} {libs[name]} at build, {now['libraries'].get(name)} now"
            for name in sorted(libs) if libs[name] != now["libraries"].get(name)]
    return out


def register(sub) -> None:
    c = sub.add_parser("claims", help="kWh-guarantee verdicts and insurer evidence packs")
    cs = c.add_subparsers(dest="claims_command", required=True)
    e = cs.add_parser("evaluate", help="verdict counts and shortfall per insurer (current table versions)")
    e.add_argument("--year", type=int, help="only guarantee years that ended in this year")
    e.set_defaults(func=cmd_evaluate)
    b = cs.add_parser("build", help="write signed evidence packs for one claim or all shortfalls of a year")
    b.add_argument("--claim", help="claim id <policy_number>-<YYYYMMDD>")
    b.add_argument("--system", help="pseudonymous system id (with --year-start)")
    b.add_argument("--year-start", type=iso_day, help="first day of the guarantee year, YYYY-MM-DD")
    b.add_argument("--year", type=int, help="every shortfall whose guarantee year ended in this year")
    b.add_argument("--exports", help="exports root (default $WATTLAKE_EXPORTS or ./exports)")
    b.add_argument("--revise", action="store_true",
                   help="for a claim whose pack exists, write a new revision beside it (<claim>-r2, ...); "
                        "without it an existing pack is kept as it is")
    b.set_defaults(func=cmd_build)
    v = cs.add_parser("verify", help="check a pack's signature and file hashes")
    v.add_argument("folders", nargs="+", help="pack folder(s) (path or s3:// URI)")
    v.add_argument("--recompute", action="store_true",
                   help="also rebuild the pack from the recorded Delta versions and compare hashes")
    v.set_defaults(func=cmd_verify)
