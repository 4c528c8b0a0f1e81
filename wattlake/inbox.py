"""Pull raw files from an S3 inbox into the landing folder: a move, never a second copy.

Devices and exports may deliver to a bucket (``WATTLAKE_INBOX=s3://bucket/prefix``) instead of
the landing folder. The inbox uses the landing folder's layout::

    <prefix>/<source>/<YYYY-MM-DD>/<file>   source: inverter, meter, device, weather
    <prefix>/registry/<name>.csv            CRM snapshots: systems, subjects, installation_photos
    <prefix>/weather/stations.csv

:func:`pull_inbox` moves every object into the landing folder and then deletes it from the
bucket. The landing folder therefore stays the one raw copy: erasure
(:func:`wattlake.privacy.erase_landing`, ``scrub_landing``) and retention
(:func:`wattlake.retention.retain_landing`) work on it alone, and no raw file of an erased
subject survives in the bucket. What is pulled after an erasure is scrubbed when it is landed.

For each object:

1. It is downloaded into ``<landing>/.inbox-tmp/<run>/`` (outside the source folders, so neither
   landing nor the landing sensor sees it), checked against the object's size and, for a
   single-part upload, the MD5 in its ETag, and flushed to disk (``fsync``).
2. It is put in place atomically (the temporary folder is on the landing folder's file system):

   - a day file with a new name is hard-linked in (``pulled``); a link, unlike a rename, fails
     when a concurrent pull put the same name in first;
   - a day file already present with the same bytes is left as it is (``already_present``:
     a pull interrupted between putting in place and deleting, or a device sending a file twice);
   - a day file present with *different* bytes is a ``conflict``: the local file stays
     untouched and the object stays in the inbox for the operator (landing never swaps the
     content behind a file name it may already have landed);
   - a registry snapshot replaces the local one by rename (each upload is the current snapshot).
3. The exact object that was read is deleted: on a versioned bucket that version (permanent,
   no delete marker left), otherwise only if its ETag still matches (``If-Match``). An object
   overwritten during the pull is kept (``changed``) and pulled again next time.

Keys that fit no landing path stay in the inbox and are counted (``unrecognised``). Every object
listed ends in exactly one of the counts; :meth:`PullReport.check` proves it. Logs carry counts
and sizes, never keys (file names carry serial numbers and energy-manager ids).
"""

from __future__ import annotations

import datetime as dt
import filecmp
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wattlake.exports import _s3_client, _split_s3
from wattlake.landing import FILE_PATTERNS, SOURCES
from wattlake.registry import SNAPSHOTS

log = logging.getLogger(__name__)

#: where downloads wait to be put in place (inside the landing folder: the same file system)
TMP_DIR = ".inbox-tmp"
#: a leftover run folder in TMP_DIR older than this is from a crashed pull and is removed (s)
STALE_TMP_S = 3600.0
#: bytes per read from the download stream
CHUNK = 8 << 20

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


class InboxError(RuntimeError):
    """The inbox URI is malformed, or some objects could not be pulled (see the report)."""


@dataclass
class PullReport:
    """Counts of one pull. ``objects`` = the sum of the outcome counts (:meth:`check`)."""

    inbox: str
    dry_run: bool = False
    objects: int = 0
    pulled: int = 0
    replaced: int = 0          # registry snapshots that replaced the local copy
    already_present: int = 0
    conflicts: int = 0
    changed: int = 0           # overwritten in the bucket while being pulled: kept there
    unrecognised: int = 0
    gone: int = 0              # deleted from the inbox by another pull between listing and reading
    failed: int = 0
    bytes_pulled: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)   # error types and counts, never keys

    OUTCOMES = ("pulled", "replaced", "already_present", "conflicts", "changed", "unrecognised", "gone",
                "failed")

    def check(self) -> None:
        total = sum(getattr(self, k) for k in self.OUTCOMES)
        if not self.dry_run and total != self.objects:
            raise AssertionError(f"inbox pull: {self.objects} objects listed but {total} accounted for")

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        names = {"pulled": "to pull", "replaced": "to replace"} if self.dry_run else {}  # not done yet
        parts = [f"{names.get(k, k.replace('_', ' '))} {getattr(self, k):,}" for k in self.OUTCOMES if getattr(self, k)]
        mb = self.bytes_pulled / 1e6
        verb = "would pull" if self.dry_run else "pulled"
        head = f"inbox: {self.objects:,} objects" + (f" ({verb} {mb:,.1f} MB)" if self.bytes_pulled else "")
        return head + (": " + ", ".join(parts) if parts else "") + f" in {self.seconds:.1f} s"


def inbox_uri(uri: str | None = None) -> str | None:
    """The inbox: ``uri``, else ``$WATTLAKE_INBOX``, else None (no inbox configured)."""
    return uri or os.environ.get("WATTLAKE_INBOX") or None


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes)."""
    if not uri.startswith("s3://"):
        raise InboxError("the inbox must be an s3://bucket[/prefix] URI")
    bucket, prefix = _split_s3(uri)
    if not bucket:
        raise InboxError("the inbox URI names no bucket")
    return bucket, prefix


def landing_path(rel: str) -> tuple[str, bool] | None:
    """Where an inbox key (relative to the prefix) belongs in the landing folder.

    Returns ``(relative path, is_snapshot)`` or None when the key fits no landing path: day files
    ``<source>/<YYYY-MM-DD>/<name>`` matching the source's file pattern, and the snapshots
    :data:`wattlake.registry.SNAPSHOTS` (replaced on every pull).
    """
    import fnmatch

    parts = rel.split("/")
    if any(not p or p.startswith(".") for p in parts):  # also "..": no way out of the folder
        return None
    if rel in SNAPSHOTS:
        return rel, True
    if len(parts) == 3 and parts[0] in SOURCES and _DAY.match(parts[1]):
        try:
            dt.date.fromisoformat(parts[1])
        except ValueError:
            return None
        if fnmatch.fnmatchcase(parts[2], FILE_PATTERNS[parts[0]]):
            return rel, False
    return None


def _list(client, bucket: str, prefix: str) -> list[dict]:
    base = f"{prefix}/" if prefix else ""
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        out += [{"key": o["Key"], "rel": o["Key"][len(base):], "size": o["Size"], "etag": o.get("ETag", "")}
                for o in page.get("Contents", [])]
    return out


def inbox_fingerprint(uri: str, client=None) -> tuple[int, str]:
    """(object count, hash of keys and ETags) of the inbox: what the inbox sensor compares."""
    bucket, prefix = split_uri(uri)
    objs = _list(client or _s3_client(), bucket, prefix)
    h = hashlib.sha256()
    for o in sorted(objs, key=lambda o: o["key"]):
        h.update(f"{o['key']}\0{o['etag']}\0{o['size']};".encode())
    return len(objs), h.hexdigest()[:16]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_stale_tmp(tmp_root: Path) -> None:
    if not tmp_root.is_dir():
        return
    cutoff = time.time() - STALE_TMP_S
    for d in tmp_root.iterdir():
        try:
            if d.stat().st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink()
        except FileNotFoundError:
            pass


class _Mismatch(Exception):
    """The download does not match the object's size or MD5."""


def _pull_one(client, bucket: str, obj: dict, landing: Path, tmp: Path, snapshot: bool, rel: str) -> tuple[str, int]:
    """Move one object; returns (outcome, bytes written)."""
    from botocore.exceptions import ClientError

    try:
        resp = client.get_object(Bucket=bucket, Key=obj["key"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return "gone", 0
        raise
    etag = resp.get("ETag", "").strip('"')
    version = resp.get("VersionId")
    length = resp.get("ContentLength")
    part = tmp / uuid.uuid4().hex
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with open(part, "wb") as f:
            body = resp["Body"]
            while chunk := body.read(CHUNK):
                f.write(chunk)
                md5.update(chunk)
                size += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        if length is not None and size != length:
            raise _Mismatch(f"read {size} of {length} bytes")
        if _MD5_ETAG.match(etag) and md5.hexdigest() != etag:
            raise _Mismatch("MD5 differs from the ETag")
        dest = landing / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if snapshot:
            outcome = "replaced" if dest.exists() else "pulled"
            os.replace(part, dest)
        elif dest.exists():
            if not filecmp.cmp(part, dest, shallow=False):
                return "conflicts", 0
            outcome = "already_present"
        else:
            # link, not rename: fails if a concurrent pull put the same name in meanwhile
            try:
                os.link(part, dest)
                outcome = "pulled"
            except FileExistsError:
                if not filecmp.cmp(part, dest, shallow=False):
                    return "conflicts", 0
                outcome = "already_present"
            except OSError:  # a file system without hard links: rename (last writer wins)
                os.replace(part, dest)
                outcome = "pulled"
        _fsync_dir(dest.parent)
    finally:
        part.unlink(missing_ok=True)
    written = size if outcome in ("pulled", "replaced") else 0
    # the local copy is durable: now remove exactly what was read from the inbox
    try:
        if version and version != "null":
            client.delete_object(Bucket=bucket, Key=obj["key"], VersionId=version)
        else:
            client.delete_object(Bucket=bucket, Key=obj["key"], IfMatch=resp.get("ETag", ""))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status in (409, 412):
            return "changed", written
        if code in ("NoSuchKey", "404") or status == 404:  # a concurrent pull deleted it
            return outcome, written
        raise
    return outcome, written


def pull_inbox(landing_root: str | Path, uri: str | None = None, *, dry_run: bool = False,
               client=None, workers: int = 8, progress_every: int = 1000) -> PullReport:
    """Move every object of the inbox ``uri`` (default ``$WATTLAKE_INBOX``) into ``landing_root``.

    ``workers`` objects are transferred at a time (S3 round trips dominate: a meter day holds one
    small file per energy manager). ``dry_run`` lists and classifies only. Raises
    :class:`InboxError` after the pull when objects failed (the rest is pulled; the failed ones
    stay in the inbox), with the report on its ``report`` attribute.
    """
    uri = inbox_uri(uri)
    if not uri:
        raise InboxError("no inbox configured: pass an s3:// URI or set WATTLAKE_INBOX")
    bucket, prefix = split_uri(uri)
    client = client or _s3_client()
    landing = Path(landing_root)
    t0 = time.perf_counter()
    report = PullReport(inbox=f"s3://{bucket}/{prefix}".rstrip("/"), dry_run=dry_run)
    objects = _list(client, bucket, prefix)
    report.objects = len(objects)
    plan = []
    for o in objects:
        target = landing_path(o["rel"])
        if target is None:
            report.unrecognised += 1
        else:
            plan.append((o, *target))
    if dry_run:
        report.pulled = len(plan)
        report.bytes_pulled = sum(o["size"] for o, _, _ in plan)
        report.seconds = time.perf_counter() - t0
        log.info(report.summary())
        return report
    landing.mkdir(parents=True, exist_ok=True)
    tmp_root = landing / TMP_DIR
    _clean_stale_tmp(tmp_root)
    tmp = tmp_root / uuid.uuid4().hex
    tmp.mkdir(parents=True)
    lock = threading.Lock()
    errors: Counter[str] = Counter()
    done = 0

    def work(item) -> None:
        nonlocal done
        o, rel, snapshot = item
        try:
            outcome, size = _pull_one(client, bucket, o, landing, tmp, snapshot, rel)
        except Exception as exc:  # counted; the object stays in the inbox
            outcome, size = "failed", 0
            with lock:
                errors[type(exc).__name__] += 1
        with lock:
            setattr(report, outcome, getattr(report, outcome) + 1)
            report.bytes_pulled += size
            done += 1
            if progress_every and done % progress_every == 0:
                log.info("inbox: %s of %s objects done (%.1f MB pulled)", f"{done:,}", f"{len(plan):,}",
                         report.bytes_pulled / 1e6)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="inbox") as pool:
            list(pool.map(work, plan))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.errors = [f"{name} x{n}" for name, n in sorted(errors.items())]
    report.seconds = time.perf_counter() - t0
    report.check()
    log.info(report.summary())
    if report.conflicts:
        log.warning("inbox: %d objects differ from landing files of the same name; left in the inbox "
                    "(compare them, then delete the object or move the local file away)", report.conflicts)
    if report.failed:
        err = InboxError(f"inbox: {report.failed} objects could not be pulled ({', '.join(report.errors)}); "
                         "they stay in the inbox")
        err.report = report
        raise err
    return report
