"""``wattlake inbox``: move raw files from the S3 inbox into the landing folder.

``wattlake inbox pull [--inbox s3://bucket/prefix] [--dry-run] [--workers N]``

The inbox defaults to ``$WATTLAKE_INBOX``; the landing folder to ``--landing`` /
``$WATTLAKE_LANDING``. Objects are moved (downloaded, verified, put in place, then deleted
from the bucket), so the landing folder stays the single raw copy that erasure and
retention work on (:mod:`wattlake.inbox`). Output is counts and sizes, never keys.
Exit status: 0 when everything recognised was pulled, 1 when objects failed, 2 when some
conflict with landing files of the same name (they stay in the inbox).
"""

from __future__ import annotations

import sys

from pipelines.resources import landing_root


def _say(msg: str) -> None:
    print(msg, flush=True)


def cmd_pull(args) -> int:
    import logging

    from wattlake.inbox import InboxError, inbox_uri, pull_inbox

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("wattlake").setLevel(logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    landing = landing_root(args.landing)
    uri = inbox_uri(args.inbox)
    if not uri:
        print("error: no inbox: pass --inbox s3://bucket/prefix or set WATTLAKE_INBOX", file=sys.stderr)
        return 2
    _say(f"{'checking' if args.dry_run else 'pulling'} the inbox into {landing}")
    try:
        report = pull_inbox(landing, uri, dry_run=args.dry_run, workers=args.workers)
    except InboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if report.unrecognised:
        _say(f"{report.unrecognised} objects fit no landing path (<source>/<YYYY-MM-DD>/<file> or a registry "
             "snapshot) and were left in the inbox")
    if report.conflicts:
        print(f"error: {report.conflicts} objects differ from landing files of the same name and were left in "
              "the inbox: compare them, then delete the object (the landed file stands) or move the local file "
              "away and pull again", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    i = sub.add_parser("inbox", help="move raw files from the S3 inbox into the landing folder")
    isub = i.add_subparsers(dest="inbox_command", required=True)
    p = isub.add_parser("pull", help="move every object of the inbox into the landing folder")
    p.add_argument("--inbox", help="s3://bucket/prefix (default $WATTLAKE_INBOX)")
    p.add_argument("--dry-run", action="store_true", help="list and classify only; move nothing")
    p.add_argument("--workers", type=int, default=8, help="objects transferred at a time")
    p.set_defaults(func=cmd_pull)
