"""``wattlake release``: cut an anonymised research release for one partner and period.

``wattlake release --partner tu-delft --period 2025-01-01:2025-12-31 [--k 10] [--l 3] [--dry-run]``
``wattlake agreements add --partner tu-delft --ref DSA-2025-07 --purpose TEXT --until 2026-12-31 [--min-k 10]``
``wattlake agreements list`` / ``wattlake agreements revoke --partner tu-delft --ref DSA-2025-07``

A release is written only under a data-sharing agreement in force (:func:`wattlake.research.agreement_for`).

The dry run computes everything (eligible homes, anonymisation, information loss, baseline) and
prints it, then stops: no file is written and no audit row is recorded. Output is progress and
counts only -- never an identifier or personal data.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Callable

from wattlake.exports import ExportRoot
from wattlake.lake import Lake
from wattlake.research import (DEFAULT_BINS, DEFAULT_K, DEFAULT_L, DEFAULT_MAX_SUPPRESSION, AgreementError,
                               ReleaseArgumentError, ReleaseError, ReleasePlan, agreement_for, plan_release,
                               write_release)

DEMO_PARTNER = "tu-delft-demo"
DEMO_AGREEMENT = "DSA-DEMO-1"


def _say(msg: str) -> None:
    print(msg, flush=True)


def describe(plan: ReleasePlan, say: Callable[[str], None] = _say) -> None:
    """Print what a release holds: k, l, counts, suppression and information loss vs the baseline."""
    r, b, c = plan.result, plan.baseline, plan.counts
    say(f"release {plan.release_id} for {plan.partner}, period {plan.period}")
    say(f"  k = {plan.k} (achieved {r.achieved_k}), l = {plan.l} (achieved {r.achieved_l}, distinct, on "
        f"{', '.join(r.l_columns)})")
    say(f"  homes: {c['systems']} in the registry, {c['eligible']} eligible (excluded: {c['excluded_no_consent']} "
        f"no consent, {c['excluded_restricted']} restricted, {c['excluded_objected']} objected), "
        f"{c['excluded_no_data']} without data")
    say(f"  records: {c['released']} released in {r.n_classes} classes, {r.n_suppressed} suppressed "
        f"(limit {plan.max_suppression:.0%})")
    say(f"  information loss ({r.method}): NCP {r.ncp:.3f}, discernibility {r.discernibility:,.0f}")
    say(f"  naive baseline (top level but one): NCP {b.ncp:.3f}, discernibility {b.discernibility:,.0f}, "
        f"{b.n_suppressed} suppressed")
    say("  NCP per quasi-identifier: " + ", ".join(f"{q} {v:.2f}" for q, v in r.ncp_per_qi.items()))
    say(f"  class time series: {plan.series.height:,} class-hours")


def cut(lake: Lake, partner: str, period: str, k: int = DEFAULT_K, l: int = DEFAULT_L,
        max_suppression: float = DEFAULT_MAX_SUPPRESSION, bins: int = DEFAULT_BINS, dry_run: bool = False,
        exports: str | None = None, say: Callable[[str], None] = _say):
    """Plan, print and (unless ``dry_run``) write a release; returns the plan or the written result."""
    t0 = time.perf_counter()
    plan = plan_release(lake, partner, period, k=k, l=l, max_suppression=max_suppression, n_bins=bins,
                        progress=say)
    describe(plan, say)
    if dry_run:
        refusal = None
        try:
            a = agreement_for(lake, partner, k)
            say(f"  agreement: {a['agreement_ref']} (valid until {a['valid_until']}, min k {a['min_k']})")
        except AgreementError as exc:
            say(f"  agreement: none in force, the release would be refused: {exc}")
            refusal = exc
        say(f"dry run: nothing written ({time.perf_counter() - t0:.1f} s)")
        if refusal is not None:
            raise refusal  # a script sees the refusal (exit 1), after the plan was shown
        return plan
    result = write_release(plan, lake, ExportRoot.from_env(exports), progress=say)
    say(f"release written to {result.uri} in {time.perf_counter() - t0:.1f} s")
    return result


def cmd_release(args) -> int:
    lake = Lake.from_env(args.lake)
    try:
        cut(lake, args.partner, args.period, k=args.k, l=args.l, max_suppression=args.max_suppression,
            bins=args.bins, dry_run=args.dry_run, exports=args.exports)
    except ReleaseError as exc:  # exit 2: asked for wrongly; 1: refused (see README, "Command line")
        print(f"error: release refused: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ReleaseArgumentError) else 1
    return 0


def cmd_agreements(args) -> int:
    from wattlake.research import agreements, register_agreement, revoke_agreement

    lake = Lake.from_env(args.lake)
    if args.action == "add":
        try:
            a = register_agreement(lake, args.partner, args.ref, args.purpose, dt.date.fromisoformat(args.until),
                                   valid_from=dt.date.fromisoformat(args.valid_from) if args.valid_from else None,
                                   min_k=args.min_k)
        except AgreementError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        _say(f"agreement {a['agreement_ref']} with {a['partner']}: {a['valid_from']}..{a['valid_until']}, "
             f"min k {a['min_k']}")
        return 0
    if args.action == "revoke":
        if not revoke_agreement(lake, args.partner, args.ref):
            print(f"error: no agreement {args.ref} with {args.partner}", file=sys.stderr)
            return 1
        _say(f"agreement {args.ref} with {args.partner} revoked: no release is written under it from now on")
        return 0
    rows = agreements(lake)
    if rows.height == 0:
        _say("no data-sharing agreements on record")
    for a in rows.iter_rows(named=True):  # loop over agreements (a handful)
        state = f"revoked {a['revoked_at_utc']:%Y-%m-%d}" if a["revoked_at_utc"] else "active"
        _say(f"{a['partner']:20s} {a['agreement_ref']:16s} {a['valid_from']}..{a['valid_until']}  min k "
             f"{a['min_k']:<3d} {state:18s} {a['purpose']}")
    return 0


def _earlier_release(lake: Lake, partner: str, start: str, end: str) -> str | None:
    """The path of a recorded release for ``partner`` covering ``start..end``, if any."""
    from wattlake.research import recorded_releases

    return next((d.get("path") for d in recorded_releases(lake)
                 if d.get("partner") == partner and start in d.get("period", "") and end in d.get("period", "")), None)


def demo_release(lake: Lake, start: str, end: str, say: Callable[[str], None] = _say,
                 exports: str | None = None, k: int = DEFAULT_K, l: int = DEFAULT_L) -> None:
    """``wattlake demo``: one release for the demo partner; a refusal is reported, not raised."""
    say(f"\nresearch release for {DEMO_PARTNER} ({start}..{end}, k={k}, l={l}):")
    earlier = _earlier_release(lake, DEMO_PARTNER, start, end)
    if earlier:  # a demo run again changes nothing: the partner already has this period
        say(f"  already released: {earlier} (kept; `wattlake release` cuts another)")
        return
    try:
        agreement_for(lake, DEMO_PARTNER, k)
    except AgreementError:  # the demo partner's agreement: one year from today
        from wattlake.research import register_agreement

        a = register_agreement(lake, DEMO_PARTNER, DEMO_AGREEMENT, "demonstration of the release pipeline on "
                               "the synthetic fleet", valid_until=dt.date.today() + dt.timedelta(days=365), min_k=k)
        say(f"  registered the demo agreement {a['agreement_ref']} (until {a['valid_until']})")
    try:
        res = cut(lake, DEMO_PARTNER, f"{start}:{end}", k=k, l=l, exports=exports, say=lambda m: None)
    except ReleaseError as exc:
        say(f"  refused: {exc}")
        return
    p = res.plan
    say(f"  k={p.k} (achieved {p.result.achieved_k}), l={p.l} (achieved {p.result.achieved_l}); "
        f"records {p.counts['released']} released in {p.result.n_classes} classes, "
        f"{p.result.n_suppressed} suppressed, {p.counts['eligible']} eligible of {p.counts['systems']}")
    say(f"  NCP {p.result.ncp:.3f} vs naive baseline {p.baseline.ncp:.3f} "
        f"({p.baseline.n_suppressed} suppressed); written to {res.uri}")


def register(sub) -> None:
    r = sub.add_parser("release", help="cut an anonymised research release for a partner")
    r.add_argument("--partner", required=True, help="partner name (lowercase, e.g. tu-delft)")
    r.add_argument("--period", required=True, help="START:END, UTC days inclusive, e.g. 2025-01-01:2025-12-31")
    r.add_argument("--k", type=int, default=DEFAULT_K, help=f"k-anonymity (default {DEFAULT_K})")
    r.add_argument("--l", type=int, default=DEFAULT_L, help=f"distinct l-diversity (default {DEFAULT_L})")
    r.add_argument("--max-suppression", type=float, default=DEFAULT_MAX_SUPPRESSION,
                   help="fraction of eligible homes that may be suppressed (default %(default)s)")
    r.add_argument("--bins", type=int, default=DEFAULT_BINS,
                   help="quantile bins of the l-diversity columns (default %(default)s)")
    r.add_argument("--exports", help="exports root (default $WATTLAKE_EXPORTS or ./exports; s3:// allowed)")
    r.add_argument("--dry-run", action="store_true", help="show k, l, suppression and loss; write nothing")
    r.set_defaults(func=cmd_release)

    from pipelines.cli import iso_day

    g = sub.add_parser("agreements", help="data-sharing agreements with research partners (a release needs one)")
    ga = g.add_subparsers(dest="action", required=True)
    add = ga.add_parser("add", help="record or amend an agreement")
    add.add_argument("--partner", required=True)
    add.add_argument("--ref", required=True, help="the contract's reference, e.g. DSA-2025-07")
    add.add_argument("--purpose", required=True, help="what the partner may use the data for")
    add.add_argument("--until", required=True, type=iso_day, help="last day in force (YYYY-MM-DD)")
    add.add_argument("--from", dest="valid_from", type=iso_day, help="first day in force (default today)")
    add.add_argument("--min-k", type=int, default=DEFAULT_K, help="smallest k allowed (default %(default)s)")
    add.set_defaults(func=cmd_agreements)
    ga.add_parser("list", help="every agreement and its state").set_defaults(func=cmd_agreements)
    rv = ga.add_parser("revoke", help="no release under this agreement from now on")
    rv.add_argument("--partner", required=True)
    rv.add_argument("--ref", required=True)
    rv.set_defaults(func=cmd_agreements)
