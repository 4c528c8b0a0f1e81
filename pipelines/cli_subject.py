"""``wattlake subject ...`` and ``wattlake retention``: data-subject requests and retention.

``wattlake subject find --email X | --phone X | --postcode P [--house-number N] | --device-id X``
                                                     the subject id a request points to (ids only; audited)
``wattlake subject export <id> --out DIR [--zip]``   everything held on the subject (JSON, Parquet, CSV)
``wattlake subject rectify <id> --set field=value``  correct personal fields (audited: names only)
``wattlake subject restrict|object <id> [--lift]``   set (or lift) the restriction/objection flag
``wattlake subject consent <id> --grant|--withdraw`` research-sharing consent
``wattlake subject erase <id>``                      erase from every table, version, log, Dagster storage
                                                     and the landing folder (``--no-dagster``/``--no-landing``
                                                     to skip one knowingly)
``wattlake subject scrub-landing [--landing DIR]``   remove erased subjects' records from the landing folder
``wattlake retention [--dry-run] [--now ISO]``       apply the retention policy (lake, landing folder, notice folders)

Output is request ids, counts and paths: never personal data, never a value given to ``--set``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

from pipelines.cli import iso_time
from wattlake.lake import Lake


def _say(msg: str) -> None:
    print(msg, flush=True)


def _dagster_instance():
    """The instance under ``$DAGSTER_HOME``, or None (then Dagster storage is not searched)."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    return dg.DagsterInstance.get()


def cmd_find(args) -> int:
    from wattlake.privacy import LOOKUP_FIELDS, find_subjects

    query = {f: getattr(args, f) for f in LOOKUP_FIELDS if getattr(args, f, None)}
    try:
        found = find_subjects(Lake.from_env(args.lake), **query)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if found.height == 0:
        _say(f"no subject matches ({', '.join(sorted(query))}); an erased subject is not found by its data")
        return 1
    for row in found.iter_rows(named=True):  # loop over the subjects found (a handful)
        _say(f"{row['subject_id']}  {row['systems']} system(s)  matched on {', '.join(row['matched_on'])}")
    if found.height > 1:
        _say(f"{found.height} subjects match: narrow the lookup (e.g. postcode with house number) before a request")
    elif set(query) == {"postcode"}:  # one match, but a postcode is a street: it may be a neighbour
        _say("matched on a postcode alone, which neighbours share: confirm with a second detail "
             "(house number, e-mail, phone) before a request")
    return 0


def cmd_export(args) -> int:
    from wattlake.privacy import export_subject

    from wattlake.exports import ExportRoot

    report = export_subject(Lake.from_env(args.lake), args.subject_id, args.out, as_zip=args.zip,
                            export_root=ExportRoot.from_env())
    _say(f"export {report.request_id}: {len(report.files)} files, {sum(report.rows.values()):,} rows -> {report.path}")
    for table, n in sorted(report.rows.items()):
        _say(f"  {table:34s} {n:>10,}")
    return 0


def cmd_rectify(args) -> int:
    from wattlake.privacy import RectifyError, rectify

    changes = {}
    for item in args.set or []:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set expects field=value (got a value without '=' for {name.strip()[:20]!r})",
                  file=sys.stderr)
            return 2
        changes[name.strip()] = value
    try:
        request_id = rectify(Lake.from_env(args.lake), args.subject_id, changes)
    except RectifyError as exc:
        print(f"error: refused: {exc}", file=sys.stderr)
        return 2
    _say(f"rectify {request_id}: fields {sorted(changes)} updated")
    return 0


def cmd_flag(args) -> int:
    import polars as pl

    from wattlake.audit import history
    from wattlake.privacy import set_flag

    if args.request == "consent":
        value = bool(args.grant)
    else:
        value = not args.lift
    lake = Lake.from_env(args.lake)
    request_id = set_flag(lake, args.subject_id, args.request, value)
    outcome = history(lake).filter(pl.col("request_id") == request_id).get_column("outcome").item()
    _say(f"{args.request} {request_id}: flag {'already ' if outcome == 'unchanged' else ''}"
         f"{'set' if value else 'cleared'}")
    return 0


def cmd_erase(args) -> int:
    from wattlake.exports import ExportRoot
    from wattlake.privacy import erase

    from pipelines.resources import landing_root

    # an erasure that silently skips a place is not an erasure: each place is searched, or the
    # operator says on the command line why it need not be
    instance = None if args.no_dagster else _dagster_instance()
    if instance is None and not args.no_dagster:
        print("error: DAGSTER_HOME is not set, so the Dagster run storage (run records and event logs) "
              "would not be searched. Set DAGSTER_HOME to the deployment's instance folder, or pass "
              "--no-dagster if no Dagster instance has run on this lake.", file=sys.stderr)
        return 2
    landing = None if args.no_landing else landing_root(args.landing)
    if landing is not None and not landing.is_dir():
        print(f"error: landing folder {landing} not found, so its raw files would keep the subject's "
              "records. Pass --landing DIR (or set WATTLAKE_LANDING), or --no-landing and run "
              "`wattlake subject scrub-landing` where the folder is.", file=sys.stderr)
        return 2
    report = erase(Lake.from_env(args.lake), args.subject_id, instance=instance, export_root=ExportRoot.from_env(),
                   landing_root=landing)
    skipped = [place for place, flag in (("Dagster storage", args.no_dagster), ("landing folder", args.no_landing))
               if flag]
    _say(f"erase {report.request_id}: {report.outcome}" + (" (resumed)" if report.resumed else "")
         + (f"; not searched, as asked: {', '.join(skipped)}" if skipped else ""))
    if report.landing is not None:
        _say(f"  landing folder: {report.landing.files_deleted:,} files deleted, "
             f"{report.landing.files_rewritten:,} rewritten ({report.landing.lines_removed:,} lines removed)")
    for table, n in sorted(report.rows.items()):
        _say(f"  {table:34s} {n:>10,} rows removed")
    _say(f"  bytes rewritten {report.bytes_rewritten:,}, bytes removed {report.bytes_removed:,}, "
         f"files vacuumed {report.files_removed:,}, Dagster runs deleted {report.dagster_runs_deleted}, "
         f"{report.seconds:.1f} s")
    for pack in report.insurer_packs_kept:
        _say(f"  kept (legal claims): {pack}")
    if report.installer_notices_removed:
        _say(f"  installer notices removed from export folders: {report.installer_notices_removed}")
    if report.releases_including_subject:
        _say(f"  earlier research releases including the subject: {len(report.releases_including_subject)}")
    return 0


def cmd_scrub_landing(args) -> int:
    from pipelines.resources import landing_root
    from wattlake.privacy import scrub_landing

    landing = landing_root(args.landing)
    if not landing.is_dir():
        print(f"error: landing folder {landing} not found (pass --landing or set WATTLAKE_LANDING)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    done = scrub_landing(Lake.from_env(args.lake), landing)
    _say(f"scrub-landing {landing}: {done.files_deleted:,} files deleted, {done.files_rewritten:,} rewritten "
         f"({done.lines_removed:,} lines removed) in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_retention(args) -> int:
    from wattlake.exports import ExportRoot
    from wattlake.retention import POLICY, apply_retention

    now = args.now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    t0 = time.perf_counter()
    from pipelines.resources import landing_root

    landing = landing_root(args.landing)
    exports = ExportRoot.from_env(args.exports)
    for flag, given, path in (("--landing", args.landing, landing), ("--exports", args.exports, exports.root)):
        if given and not str(path).startswith("s3://") and not Path(path).is_dir():  # named, and not there
            print(f"error: {flag} {path} is not a folder", file=sys.stderr)
            return 2
    if not landing.is_dir():
        _say(f"landing folder {landing} not found: only the lake (pass --landing or set WATTLAKE_LANDING)")
    r = apply_retention(Lake.from_env(args.lake), now, dry_run=args.dry_run,
                        landing_root=landing if landing.is_dir() else None, export_root=exports)
    w = "would be " if args.dry_run else ""  # a dry run says what it would do, not what it did
    purged = ", ".join(r.tables_purged) or "none"
    _say(f"retention{' (dry run)' if args.dry_run else ''} as of {now:%Y-%m-%d}: {r.ips_truncated:,} IPs {w}truncated "
         f"({r.ip_rows_merged:,} rows {w}merged), {r.ips_removed:,} IP rows {w}removed, {r.telegrams_dropped:,} raw "
         f"telegrams and {r.quarantine_raw_dropped:,} quarantine texts {w}dropped; tables "
         f"{'to purge' if args.dry_run else 'purged'}: {purged}; in {time.perf_counter() - t0:.1f} s")
    if r.landing is not None:
        lr = r.landing
        _say(f"  landing folder: {lr.ips_truncated:,} addresses {w}truncated and {lr.ips_removed:,} {w}removed in "
             f"{lr.ip_files_rewritten:,} files; {lr.telegram_files_deleted:,} P1 files {w}deleted, "
             f"{lr.telegram_files_kept_unlanded:,} kept (never landed)")
    _say(f"  exports: {r.notice_folders_deleted:,} installer notice folders ({r.notice_files_deleted:,} files) "
         f"sent more than {POLICY.notice_folders_after_days} days ago {w}deleted")
    return 0


def register(sub) -> None:
    from wattlake.keys import install_log_redaction

    install_log_redaction()  # register() runs on every ``wattlake`` invocation
    s = sub.add_parser("subject", help="data-subject requests: export, rectify, restrict, object, consent, erase")
    ss = s.add_subparsers(dest="request", required=True)

    fnd = ss.add_parser("find", help="the subject id for a request that quotes an e-mail, phone, address or "
                                     "device (prints ids, never the data; audited)")
    fnd.add_argument("--email")
    fnd.add_argument("--phone", help="any notation: +31 6 ..., 06-..., 0031...")
    fnd.add_argument("--postcode")
    fnd.add_argument("--house-number", dest="house_number", help="with --postcode")
    fnd.add_argument("--device-id", dest="device_id", help="inverter serial, meter id or energy-manager id")
    fnd.add_argument("--system-id", dest="system_id")
    fnd.set_defaults(func=cmd_find)

    e = ss.add_parser("export", help="everything held on the subject, as a folder or zip")
    e.add_argument("subject_id")
    e.add_argument("--out", required=True, help="folder to write (with --zip: <out>.zip)")
    e.add_argument("--zip", action="store_true")
    e.set_defaults(func=cmd_export)

    r = ss.add_parser("rectify", help="correct personal fields")
    r.add_argument("subject_id")
    r.add_argument("--set", action="append", metavar="FIELD=VALUE", help="repeatable")
    r.set_defaults(func=cmd_rectify)

    for name, helptext in (("restrict", "restrict processing"), ("object", "object to processing")):
        f = ss.add_parser(name, help=f"{helptext} (excluded from research releases and commercial use)")
        f.add_argument("subject_id")
        f.add_argument("--lift", action="store_true", help="clear the flag again")
        f.set_defaults(func=cmd_flag)

    c = ss.add_parser("consent", help="grant or withdraw consent to research sharing")
    c.add_argument("subject_id")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--grant", action="store_true")
    g.add_argument("--withdraw", action="store_true")
    c.set_defaults(func=cmd_flag)

    x = ss.add_parser("erase", help="erase the subject everywhere (tables, old versions, logs, Dagster, "
                                    "landing folder)")
    x.add_argument("subject_id")
    x.add_argument("--landing", help="landing folder (default $WATTLAKE_LANDING or ./landing)")
    x.add_argument("--no-landing", action="store_true",
                   help="do not search a landing folder (run `subject scrub-landing` where it is)")
    x.add_argument("--no-dagster", action="store_true",
                   help="do not search Dagster run storage (no Dagster instance has run on this lake); "
                        "without it DAGSTER_HOME must be set")
    x.set_defaults(func=cmd_erase)

    sc = ss.add_parser("scrub-landing", help="remove every erased subject's records from the landing folder "
                                             "(files that arrived after, or were not reachable during, an erasure)")
    sc.add_argument("--landing", help="landing folder (default $WATTLAKE_LANDING or ./landing)")
    sc.set_defaults(func=cmd_scrub_landing)

    t = sub.add_parser("retention", help="apply the retention policy (IPs, raw telegrams, quarantine text, notice folders)")
    t.add_argument("--dry-run", action="store_true", help="count only")
    t.add_argument("--now", type=iso_time, help="reference time (ISO 8601, default now)")
    t.add_argument("--landing", help="landing folder (default $WATTLAKE_LANDING or ./landing)")
    t.add_argument("--exports", help="exports root whose installer notice folders expire "
                                     "(default $WATTLAKE_EXPORTS or ./exports)")
    t.set_defaults(func=cmd_retention)
