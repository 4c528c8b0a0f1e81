"""``wattlake alerts``: underperformance notices to installers (see :mod:`wattlake.notices`).

``wattlake alerts notify [--dry-run] [--exports DIR]``  send what changed since the last delivery:
                                                     one folder per installer under
                                                     ``$WATTLAKE_EXPORTS/installers/<installer>/<batch>/``

Output is counts per notice kind and installer; no system or person is named.
"""

from __future__ import annotations

import time
from typing import Callable

from wattlake.lake import Lake


def _say(msg: str) -> None:
    print(msg, flush=True)


def _print_report(report, say: Callable[[str], None]) -> None:
    say(report.summary())
    for installer, n in report.installers.items():
        say(f"  {installer:24s} {n:>5} notice(s)")


def demo_notices(lake: Lake, say: Callable[[str], None] = _say, exports: str | None = None) -> None:
    """``wattlake demo``: the first delivery of the demo fleet's alerts to its installers."""
    from wattlake.exports import ExportRoot
    from wattlake.notices import send_notices

    say("\nInstaller notices:")
    t0 = time.perf_counter()
    root = ExportRoot.from_env(exports)
    report = send_notices(lake, root)
    _print_report(report, lambda m: say("  " + m))
    if report.folders:
        say(f"  {len(report.folders)} folder(s) in {root.root}/installers/ in {time.perf_counter() - t0:.1f} s")


def cmd_notify(args) -> int:
    from wattlake.exports import ExportRoot
    from wattlake.notices import send_notices

    lake = Lake.from_env(args.lake)
    root = ExportRoot.from_env(args.exports)
    report = send_notices(lake, root, dry_run=args.dry_run)
    _print_report(report, _say)
    if report.folders:
        _say(f"written to {root.root}/installers/<installer>/{report.batch_id}/")
    return 0


def register(sub) -> None:
    a = sub.add_parser("alerts", help="underperformance notices to installers")
    asub = a.add_subparsers(dest="alerts_command", required=True)
    n = asub.add_parser("notify", help="send installers what changed in their alert episodes since the last "
                                       "delivery (new, escalated, ended, reopened, withdrawn)")
    n.add_argument("--dry-run", action="store_true", help="count the notices, write nothing")
    n.add_argument("--exports", help="exports root (default $WATTLAKE_EXPORTS or ./exports)")
    n.set_defaults(func=cmd_notify)
