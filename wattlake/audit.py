"""``restricted/privacy_audit``: one row per data-subject request, release or retention run.

A row names the subject only by :func:`wattlake.keys.pseudonym` (a keyed HMAC of the subject
id), so an erasure leaves no trace of the id in the lake while the operator, who holds the key,
can still show that the request was handled. ``details`` is JSON with counts, table names and
file paths: never personal data.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from wattlake import tables as T
from wattlake.keys import key_check, pseudonym, require_key
from wattlake.lake import Lake

#: the key of every audit row's details holding :func:`wattlake.keys.key_check` (see :func:`check_key`)
KEY_CHECK = "key_check"
REQUEST_TYPES = ("export", "rectify", "restrict", "object", "consent", "erase", "release", "retention",
                 "scrub_landing", "lookup")


#: the key of a ``release`` audit row's details that lists the keyed pseudonyms of the subjects it
#: included (written by :mod:`wattlake.research`, read by an erasure to name the releases)
RELEASED_SUBJECT_REFS = "subject_refs"


def operator() -> str:
    """Who is acting: ``$WATTLAKE_OPERATOR``, else the login name."""
    try:
        return os.environ.get("WATTLAKE_OPERATOR") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def new_request_id() -> str:
    return f"req_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"


@dataclass
class AuditEntry:
    request_type: str
    subject_id: str | None = None
    request_id: str = field(default_factory=new_request_id)
    requested_at_utc: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    operator: str = field(default_factory=operator)

    def __post_init__(self) -> None:
        if self.request_type not in REQUEST_TYPES:
            raise ValueError(f"unknown request type {self.request_type!r}; expected one of {REQUEST_TYPES}")


def record(lake: Lake, entry: AuditEntry, outcome: str, details: dict[str, Any] | None = None) -> str:
    """Append the request's outcome to the audit table; returns the request id."""
    row = pl.DataFrame({
        "request_id": [entry.request_id],
        "request_type": [entry.request_type],
        "subject_ref": [pseudonym(entry.subject_id) if entry.subject_id else None],
        "requested_at_utc": [entry.requested_at_utc],
        "completed_at_utc": [dt.datetime.now(dt.UTC)],
        "operator": [entry.operator],
        "outcome": [outcome],
        "details": [json.dumps({**(details or {}), KEY_CHECK: key_check()}, sort_keys=True, default=str)],
    }, schema_overrides={"subject_ref": pl.String})
    lake.append(T.PRIVACY_AUDIT.name, row, T.PRIVACY_AUDIT.schema, configuration=T.PRIVACY_AUDIT.configuration)
    return entry.request_id


def check_key(lake: Lake) -> None:
    """Refuse to go on (:class:`wattlake.keys.KeyMismatch`) when the pseudonym key is not the one the
    lake's latest audit row was written with. Called before stored pseudonyms are matched: the
    erasure tombstones, the audit of one subject."""
    version = lake.version(T.PRIVACY_AUDIT.name)
    if version is None:
        return
    at = (lake.uri(T.PRIVACY_AUDIT.name), version)
    if at not in _RECORDED_CHECKS:  # landing asks once per group: read the audit once per version
        rows = lake.read(T.PRIVACY_AUDIT.name, version=version).sort("completed_at_utc", descending=True)
        checks = (json.loads(d or "{}").get(KEY_CHECK) for d in rows.get_column("details").to_list())
        _RECORDED_CHECKS[at] = next((c for c in checks if c), None)
    require_key(_RECORDED_CHECKS[at])


#: the latest key check value per (audit table, version) seen by :func:`check_key`
_RECORDED_CHECKS: dict[tuple[str, int], str | None] = {}


def history(lake: Lake, subject_id: str | None = None) -> pl.DataFrame:
    """The audit rows (all, or of one subject via its pseudonym), oldest first."""
    if not lake.exists(T.PRIVACY_AUDIT.name):
        return pl.DataFrame(schema=T.PRIVACY_AUDIT.polars_schema)
    frame = lake.read(T.PRIVACY_AUDIT.name)
    if subject_id is not None:
        frame = frame.filter(pl.col("subject_ref") == pseudonym(subject_id))
    return frame.sort("requested_at_utc")
