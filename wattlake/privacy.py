"""Data-subject rights on the lake: access and portability (export), rectification, restriction,
objection, consent, and an erasure that really erases.

Every function takes a :class:`~wattlake.lake.Lake` and a subject id, does its work and writes one
``restricted/privacy_audit`` row (keyed pseudonym, counts and table names only: never a value).

Which rows belong to a subject is decided GENERICALLY from the table catalogue
(:data:`wattlake.tables.TABLES`), so tables added later are covered without touching this module:

- a table with a ``system_id`` column: the rows of the subject's systems;
- a table with a ``subject_id`` column: the subject's rows;
- a table with a ``subject_ref`` column (keyed pseudonym): the subject's rows, except the audit
  log and the erasure tombstones, which must keep the pseudonym as proof;
- any other table: rows whose text columns contain one of the subject's identifiers (subject id,
  system ids, inverter serials, P1 equipment ids, energy-manager ids) -- e.g. a quarantined raw
  line, or a truncated one whose identifier fragment (at least :data:`MIN_FRAGMENT` characters)
  is the start of one of them. Quarantine and landed-file rows are removed; elsewhere the identifier is replaced
  by ``[erased]``.

Erasure design (the Delta log keeps per-file min/max statistics and DELETE predicates in plain
JSON, so a DELETE + VACUUM alone does not erase):

1. Column statistics exist only for dates, timestamps and pseudonymous ids
   (:attr:`wattlake.tables.TableSpec.stats_columns`); personal text never reaches the log.
2. A DELETE predicate names only pseudonymous ``system_id`` values (or ``subject_ref``);
   subject-keyed and content-matched tables are rewritten with an overwrite whose predicate holds
   only partition dates.
3. Afterwards :meth:`wattlake.lake.Lake.purge_history` vacuums every unreferenced data file,
   checkpoints the new version and deletes every older commit JSON and checkpoint, so neither the
   removed rows, nor the statistics of their files, nor the DELETE predicate survive anywhere.
4. A tombstone (``restricted/erasures``, keyed by the pseudonym) is written FIRST and records the
   tables done: a crashed erasure resumes from the tables it had not finished (and any rows landed
   meanwhile). The registry tables go last, so a resumed run still knows the subject's
   identifiers; once the erasure is done, re-landing the registry drops the subject.

Claim evidence packs already sent to an insurer are kept (legal-claims exemption) and listed in
the audit, as are earlier research releases that included the subject (they are anonymised).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import sqlite3
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import polars as pl
import pyarrow as pa

from wattlake import tables as T
from wattlake.audit import AuditEntry, check_key, history, record
from wattlake.keys import pseudonym
from wattlake.lake import Lake
from wattlake.landing import FILE_PATTERNS, ID_PATTERNS
from wattlake.parsing.bytescan import positions

log = logging.getLogger(__name__)

#: personal fields of ``restricted/subjects`` a rectification may change
RECTIFIABLE = ("name", "street", "house_number", "postcode", "city", "email", "phone", "iban")
#: flags set by restriction, objection and consent requests
FLAGS = {"restrict": "restricted", "object": "objected", "consent": "consent_research"}
#: tables that name subjects only by keyed pseudonym and must keep it (proof of handling)
PSEUDONYMOUS_LOGS = (T.PRIVACY_AUDIT.name, T.ERASURES.name)
#: the registry tables, erased last (they hold the identifiers a resumed erasure needs)
REGISTRY_LAST = (T.INSTALLATION_PHOTOS.name, T.SYSTEMS.name, T.SUBJECT_OVERRIDES.name, T.SUBJECTS.name)
#: shortest identifier fragment of a truncated raw line that still counts as the subject's
MIN_FRAGMENT = 6
#: fragments of identifiers in raw input: inverter serial, P1 equipment ids (electricity, gas)
_FRAGMENT_PATTERNS = (r'"serial"\s*:\s*"([^"]*)', r"0-0:96\.1\.1\(([0-9A-Fa-f]*)", r"0-1:96\.1\.0\(([0-9A-Fa-f]*)")
ERASED = "[erased]"


class SubjectNotFound(LookupError):
    """No such subject in the lake (the message carries the keyed pseudonym, not the id)."""


class RectifyError(ValueError):
    """A rectification names a field that may not be changed (the message never quotes a value)."""


# ---------------------------------------------------------------------------------- the subject
@dataclass
class Subject:
    """What the lake knows that identifies one subject: their registry row and systems."""

    subject_id: str
    row: pl.DataFrame      # restricted/subjects, 0 or 1 row
    systems: pl.DataFrame  # restricted/systems rows of the subject

    @property
    def ref(self) -> str:
        return pseudonym(self.subject_id)

    @property
    def system_ids(self) -> list[str]:
        return sorted(self.systems.get_column("system_id").to_list()) if self.systems.height else []

    def identifiers(self) -> list[str]:
        """Identifiers that may appear in raw text: subject id, system ids, serials, meter/EM ids."""
        ids = {self.subject_id, *self.system_ids}
        for col in ("serial", "meter_id", "gas_meter_id", "em_id"):
            if col in self.systems.columns:
                ids |= {v for v in self.systems.get_column(col).to_list() if v}
        return sorted(ids)

    def personal_values(self) -> list[str]:
        """Every value that must not survive an erasure (identifiers and personal fields)."""
        vals = set(self.identifiers())
        if self.row.height:
            r = self.row.row(0, named=True)
            vals |= {str(r[c]) for c in ("name", "email", "phone", "iban") if r.get(c)}
            # a street name alone is shared with neighbours: the address is street + number
            if r.get("street") and r.get("house_number"):
                vals.add(f"{r['street']} {r['house_number']}")
        for col in ("meter_id", "gas_meter_id"):  # P1 equipment ids are hex-encoded ASCII serials
            if col in self.systems.columns:
                for v in self.systems.get_column(col).to_list():
                    try:
                        vals.add(bytes.fromhex(v).decode("ascii")) if v else None
                    except (ValueError, UnicodeDecodeError):
                        pass
        return sorted(v for v in vals if v)


def find_subject(lake: Lake, subject_id: str) -> Subject:
    """The subject's registry row and systems (both may be empty after an erasure)."""
    check_key(lake)  # the audit and tombstones find the subject by a keyed pseudonym
    # registry tables are small: read whole, filter in memory (no filter pushed into the scan)
    row = (lake.read(T.SUBJECTS.name).filter(pl.col("subject_id") == subject_id)
           if lake.exists(T.SUBJECTS.name) else pl.DataFrame())
    systems = (lake.read(T.SYSTEMS.name).filter(pl.col("subject_id") == subject_id)
               if lake.exists(T.SYSTEMS.name) else pl.DataFrame(schema={"system_id": pl.String}))
    return Subject(subject_id, row, systems)


#: what :func:`find_subjects` can look a subject up by: the fields a data subject quotes in a request
LOOKUP_FIELDS = ("email", "phone", "postcode", "house_number", "device_id", "system_id")


def _digits_nl(phone: pl.Expr) -> pl.Expr:
    """A phone number as its digits, Dutch national form: ``+31 6 1234 5678``, ``0031612345678``
    and ``06-12345678`` all become ``0612345678``."""
    d = phone.str.replace_all(r"\D", "")
    return (pl.when(d.str.starts_with("0031")).then(pl.lit("0") + d.str.slice(4))
            .when(d.str.starts_with("31") & (d.str.len_chars() == 11)).then(pl.lit("0") + d.str.slice(2))
            .otherwise(d))


def find_subjects(lake: Lake, **query: str) -> pl.DataFrame:
    """The subjects a request's details point to, for an operator who has an e-mail, a phone
    number, an address or a device serial but not the subject id.

    ``query``: any of :data:`LOOKUP_FIELDS`, all of which must match. E-mail compares trimmed and
    case-insensitively, phone numbers by their digits in Dutch national form, postcodes without
    spaces and in capitals, house numbers trimmed and case-insensitively (``12a``). ``device_id``
    is an inverter serial, a meter id (``meter_id``, ``gas_meter_id``: as the telegram's hex or as
    printed on the meter, ``E0033...``) or an energy-manager id;
    ``system_id`` a system of the subject.

    Returns ``subject_id``, ``systems`` (how many) and ``matched_on`` (the fields used), never the
    fields' values. Each subject found gets an audited ``lookup`` row (fields used, not values);
    an erased subject's data is gone, so it is not found by it.
    """
    unknown = set(query) - set(LOOKUP_FIELDS)
    if unknown:
        raise ValueError(f"cannot look subjects up by {sorted(unknown)}; use {', '.join(LOOKUP_FIELDS)}")
    query = {k: v.strip() for k, v in query.items() if v is not None and v.strip()}
    if not query:
        raise ValueError("give at least one of " + ", ".join(LOOKUP_FIELDS))
    if "house_number" in query and "postcode" not in query:
        raise ValueError("a house number identifies an address only with its postcode")
    check_key(lake)
    empty = pl.DataFrame(schema={"subject_id": pl.String, "systems": pl.UInt32, "matched_on": pl.List(pl.String)})
    if not lake.exists(T.SUBJECTS.name):
        return empty
    subjects = lake.read(T.SUBJECTS.name)
    systems = (lake.read(T.SYSTEMS.name) if lake.exists(T.SYSTEMS.name)
               else pl.DataFrame(schema={c: pl.String for c in ("system_id", "subject_id")}))
    hit = pl.lit(True)
    if "email" in query:
        hit &= pl.col("email").str.strip_chars().str.to_lowercase() == query["email"].lower()
    if "phone" in query:
        wanted = pl.select(_digits_nl(pl.lit(query["phone"]))).item()
        hit &= _digits_nl(pl.col("phone")) == wanted
    if "postcode" in query:
        hit &= (pl.col("postcode").str.replace_all(" ", "").str.to_uppercase()
                == query["postcode"].replace(" ", "").upper())
    if "house_number" in query:
        hit &= pl.col("house_number").str.strip_chars().str.to_lowercase() == query["house_number"].lower()
    owners = None
    if "device_id" in query or "system_id" in query:
        own = pl.lit(True)
        if "device_id" in query:
            v = query["device_id"]
            # a meter's equipment id is stored as the telegram carries it (its ASCII in hex); the
            # plate and the operator say E0033..., so that form matches too
            meter = [v.lower(), v.encode("utf-8").hex()]  # compared with the lowercased column
            own &= pl.any_horizontal(
                *[pl.col(c) == v for c in ("serial", "em_id") if c in systems.columns],
                *[pl.col(c).str.to_lowercase().is_in(meter) for c in ("meter_id", "gas_meter_id")
                  if c in systems.columns]).fill_null(False)
        if "system_id" in query:
            own &= pl.col("system_id") == query["system_id"]
        owners = systems.filter(own).get_column("subject_id").unique()
    found = subjects.filter(hit.fill_null(False))
    if owners is not None:
        found = found.filter(pl.col("subject_id").is_in(owners.implode()))
    if found.height == 0:
        return empty
    counts = systems.group_by("subject_id").len("systems")
    out = (found.select("subject_id").join(counts, on="subject_id", how="left")
           .with_columns(pl.col("systems").fill_null(0).cast(pl.UInt32),
                         pl.lit(sorted(query)).alias("matched_on"))
           .sort("subject_id"))
    for sid in out.get_column("subject_id").to_list():  # loop over the subjects found (a handful)
        record(lake, AuditEntry("lookup", sid), "found", {"matched_on": sorted(query)})
    return out


def _require(lake: Lake, subject: Subject, request_type: str) -> None:
    """Refuse a request for a subject the registry does not hold, saying whether it was erased;
    the refusal is audited too (a ``refused`` row, the subject as its keyed pseudonym only)."""
    if subject.row.height:
        return
    stone = _tombstone(lake, subject.ref)
    if stone is not None:
        when = stone["started_at_utc"].strftime("%Y-%m-%d") if stone["started_at_utc"] else "?"
        why, say = "erased", f"erased ({stone['status']}, request {stone['request_id']} of {when})"
    else:
        why, say = "not_found", "not in restricted/subjects (check the id: subject ids, not system ids or names)"
    record(lake, AuditEntry(request_type, subject.subject_id), "refused", {"reason": why})
    raise SubjectNotFound(f"subject {subject.ref}: {say}")


# ---------------------------------------------------------------------------- which rows are theirs
def _columns(spec: T.TableSpec) -> set[str]:
    return set(spec.schema.names)


def _kind(spec: T.TableSpec) -> str | None:
    """How a table's rows are tied to a subject: system_id, subject_id, subject_ref, content or None."""
    if spec.name in PSEUDONYMOUS_LOGS:
        return None
    cols = _columns(spec)
    for kind in ("system_id", "subject_id", "subject_ref"):
        if kind in cols:
            return kind
    if any(pa.types.is_string(f.type) or pa.types.is_large_string(f.type) for f in spec.schema):
        return "content"
    return None


def _text_columns(spec: T.TableSpec) -> list[str]:
    return [f.name for f in spec.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def _content_match(spec: T.TableSpec, identifiers: list[str]) -> pl.Expr:
    """Rows whose text holds an identifier, or a truncated fragment that starts one."""
    return pl.any_horizontal([_text_match(pl.col(c), identifiers) for c in _text_columns(spec)])


def _text_match(text: pl.Expr, identifiers: list[str]) -> pl.Expr:
    """Texts that hold an identifier, or a truncated fragment (>= MIN_FRAGMENT chars) that starts one."""
    hit = text.fill_null("").str.contains_any(identifiers)
    for pattern in _FRAGMENT_PATTERNS:
        frag = text.str.extract(pattern, 1)
        long_enough = frag.str.len_chars() >= MIN_FRAGMENT
        starts = pl.any_horizontal([pl.lit(i).str.starts_with(frag) for i in identifiers])
        hit = hit | (long_enough & starts).fill_null(False)
    return hit


def _owned(spec: T.TableSpec, subject: Subject) -> pl.Expr | None:
    """Polars filter of the subject's rows in a table, or None when nothing can be theirs."""
    kind = _kind(spec)
    if kind == "system_id":
        return pl.col("system_id").is_in(subject.system_ids) if subject.system_ids else None
    if kind == "subject_id":
        return pl.col("subject_id") == subject.subject_id
    if kind == "subject_ref":
        return pl.col("subject_ref") == subject.ref
    if kind == "content":
        return _content_match(spec, subject.identifiers())
    return None


def _candidate_tables(lake: Lake) -> list[T.TableSpec]:
    """Every existing catalogue table that can hold a subject's rows, registry tables last."""
    specs = [s for s in T.TABLES.values() if _kind(s) and lake.exists(s.name)]
    return sorted(specs, key=lambda s: (REGISTRY_LAST.index(s.name) + 1 if s.name in REGISTRY_LAST else 0, s.name))


def _key_values(spec: T.TableSpec, subject: Subject) -> tuple[str, list[str]]:
    """The key column tying a table to the subject and the subject's values in it."""
    kind = _kind(spec)
    if kind == "system_id":
        return kind, subject.system_ids
    if kind == "subject_id":
        return kind, [subject.subject_id]
    return "subject_ref", [subject.ref]


def _stream(lake: Lake, spec: T.TableSpec, subject: Subject, version: int | None, columns: list[str] | None):
    """The subject's rows, batch by batch (memory-bounded on big tables).

    Filtering happens in Polars after reading: a filter pushed into the PyArrow dataset fails on
    files with string_view columns, and delta-rs' DataFusion QueryBuilder hangs against some S3
    servers (both seen with deltalake 1.6.6).
    """
    col, values = _key_values(spec, subject)
    ds = lake.table(spec.name, version).to_pyarrow_dataset()
    for batch in ds.to_batches(columns=columns):
        frame = pl.from_arrow(pa.Table.from_batches([batch]))
        yield frame.filter(pl.col(col).is_in(values))


def _matching(lake: Lake, spec: T.TableSpec, subject: Subject, version: int | None = None) -> pl.DataFrame:
    """The subject's rows of a table (content matches are evaluated in memory)."""
    if _kind(spec) == "content":
        return lake.read(spec.name, version).filter(_owned(spec, subject))
    parts = list(_stream(lake, spec, subject, version, None))
    if not parts:  # a table without data files
        return pl.from_arrow(lake.table(spec.name, version).to_pyarrow_dataset().schema.empty_table())
    return pl.concat(parts, how="vertical_relaxed")


def _count(lake: Lake, spec: T.TableSpec, subject: Subject) -> int:
    if _owned(spec, subject) is None:
        return 0
    if _kind(spec) == "content":
        return _matching(lake, spec, subject).height
    return sum(f.height for f in _stream(lake, spec, subject, None, [_key_values(spec, subject)[0]]))


# ---------------------------------------------------------------------------------- export
@dataclass
class ExportReport:
    request_id: str
    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)


def _file_stem(table: str) -> str:
    return table.replace("/", "__")


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (lists of structs) as JSON text, so the CSV holds every value."""
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
            exprs.append(pl.concat_str(pl.lit("["), pl.col(name).list.eval(pl.element().struct.json_encode())
                                       .list.join(","), pl.lit("]")).alias(name))
        elif isinstance(dtype, (pl.List, pl.Struct, pl.Array)):
            exprs.append(pl.col(name).cast(pl.String, strict=False).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def _jsonable(frame: pl.DataFrame) -> list[dict]:
    return json.loads(frame.write_json()) if frame.height else []


_README_HEAD = """# Your data held by wattlake

Export {request_id}, made {created} (UTC). Everything the company's lakehouse holds on you, as
machine-readable files (GDPR articles 15 and 20: access and portability).

- `personal_data.json`: your customer record (name, address, contact, bank account, consent and
  restriction flags) and your PV systems (location, equipment serials, meter ids, contract terms),
  with the installation photos on file.
- Measurements and results per table, each as Parquet (typed, for programs) and CSV (for
  spreadsheets). Column names carry their unit (`_w` watt, `_kwh` kilowatt-hour, `_w_m2` watt per
  square metre, `_c` degrees Celsius, `_m3` cubic metre); times are UTC (`_utc`); `day` is the UTC
  date. Your systems appear under their pseudonymous `system_id`.
- `consent_history.*`: every consent, restriction and objection request handled here, oldest
  first. Consent given when you signed up (through our customer system) is not a request here:
  it, and every current flag, is in `personal_data.json`, so this file may be empty.
- `privacy_requests.*`: every data-subject request handled for you (exports, rectifications,
  erasures), with time and outcome.
- `manifest.json`: every file with its SHA-256, row count and source table version.

## Files
"""


def recipients(lake: Lake, subject: Subject, export_root=None) -> list[dict]:
    """Who received data about the subject (GDPR art. 15(1)(c)): research releases that included
    them (anonymised aggregates), insurer claim packs naming their systems, and installers who got
    alert notices about their systems (the folders still under ``export_root``)."""
    from wattlake.research import releases_of

    out = [{"recipient": f"research partner {r['partner']}", "what": "anonymised research release that "
            "included your home in its aggregates", "reference": r["release_id"], "request_id": r["request_id"]}
           for r in releases_of(lake, subject.subject_id)]
    out += [{"recipient": f"insurer {folder.split('/')[1]}", "what": "kWh-guarantee claim evidence about your "
             "system", "reference": folder.split("/")[-1], "request_id": None}
            for folder in _insurer_packs(export_root, [subject.ref, subject.subject_id, *subject.system_ids])]
    if export_root is not None and subject.system_ids:
        for folder in sorted({p.rsplit("/", 1)[0] for p in export_root.list("installers") if p.endswith("/notices.csv")}):
            if any(s.encode() in export_root.read(f"{folder}/notices.csv") for s in subject.system_ids):
                out.append({"recipient": f"installer {folder.split('/')[1]}", "what": "underperformance "
                            "notices about your system", "reference": folder.split("/")[-1], "request_id": None})
    return out


def export_subject(lake: Lake, subject_id: str, out_dir: str | Path, as_zip: bool = False,
                   export_root=None) -> ExportReport:
    """Write everything held on ``subject_id`` into ``out_dir`` (or ``out_dir.zip`` with ``as_zip``).

    Parquet and CSV per table (rows of the subject's systems or of the subject), the personal
    record as JSON, the consent history, who received data about them (:func:`recipients`, with
    the exports under ``export_root``), a README and a manifest with SHA-256 per file.
    """
    subject = find_subject(lake, subject_id)
    _require(lake, subject, "export")
    entry = AuditEntry("export", subject_id)
    files: dict[str, bytes] = {}
    meta: list[dict] = []
    rows: dict[str, int] = {}
    readme_rows: list[str] = []

    def add(name: str, data: bytes, table: str | None = None, n: int | None = None, version: int | None = None,
            text: str = "") -> None:
        files[name] = data
        meta.append({"path": name, "table": table, "rows": n, "delta_version": version})
        if text:
            readme_rows.append(f"- `{name}`: {text}")

    photos = pl.DataFrame()
    if lake.exists(T.INSTALLATION_PHOTOS.name) and subject.system_ids:
        photos = _matching(lake, T.INSTALLATION_PHOTOS, subject)
    personal = {
        "subject": _jsonable(subject.row)[0],
        "systems": _jsonable(subject.systems),
        "installation_photos": _jsonable(photos),
        "current_flags": {f: subject.row.get_column(f).item() for f in FLAGS.values()},
    }
    add("personal_data.json", json.dumps(personal, indent=2, sort_keys=True, default=str).encode(),
        text="your customer record, systems and photos on file (JSON).")

    skip = {T.SUBJECTS.name, T.SYSTEMS.name, T.INSTALLATION_PHOTOS.name, T.SUBJECT_OVERRIDES.name}
    for spec in _candidate_tables(lake):
        if spec.name in skip:
            continue
        where = _owned(spec, subject)
        if where is None:
            continue
        version = lake.version(spec.name)
        frame = _matching(lake, spec, subject, version)
        if frame.height == 0 and _kind(spec) in ("content", "subject_ref"):
            continue  # no row of theirs in a table not keyed by their systems
        sort = [k for k in spec.keys if k in frame.columns]
        frame = frame.sort(sort) if sort else frame
        rows[spec.name] = frame.height
        stem = _file_stem(spec.name)
        pq_buf = io.BytesIO()
        frame.write_parquet(pq_buf)
        add(f"{stem}.parquet", pq_buf.getvalue(), spec.name, frame.height, version,
            f"{frame.height} rows of `{spec.name}`: {spec.description}")
        add(f"{stem}.csv", _csv_ready(frame).write_csv().encode(), spec.name, frame.height, version)

    audit = history(lake, subject_id).drop("subject_ref")
    consent = audit.filter(pl.col("request_type").is_in(list(FLAGS)))
    for stem, frame, text in (
        ("consent_history", consent, "consent, restriction and objection requests (details: flag and value)."),
        ("privacy_requests", audit, "every data-subject request handled for you (ids, times, outcomes)."),
    ):
        buf = io.BytesIO()
        frame.write_parquet(buf)
        add(f"{stem}.parquet", buf.getvalue(), T.PRIVACY_AUDIT.name, frame.height, None, f"{frame.height} rows: {text}")
        add(f"{stem}.csv", frame.write_csv().encode(), T.PRIVACY_AUDIT.name, frame.height)

    sent_to = recipients(lake, subject, export_root)
    add("recipients.json", json.dumps(sent_to, indent=2).encode(),
        text=f"{len(sent_to)} disclosures: research partners, insurers and installers that received data about "
             "you, and what they received.")

    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    readme = _README_HEAD.format(request_id=entry.request_id, created=created) + "\n".join(readme_rows) + "\n"
    add("README.md", readme.encode())
    from wattlake.exports import sha256_bytes

    manifest = {"format": "wattlake-subject-export/1", "request_id": entry.request_id, "created_at_utc": created,
                "files": [{**m, "sha256": sha256_bytes(files[m["path"]])} for m in meta]}
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()

    # personal data: readable by the operator's account only (0600 files, a 0700 folder)
    out = Path(out_dir)
    if as_zip:
        target = out.with_name(out.name + ".zip") if out.suffix != ".zip" else out
        target.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as raw, \
                zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        os.chmod(target, 0o600)  # an existing file keeps its old mode through O_CREAT
        out = target
    else:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(out, 0o700)
        for name, data in files.items():
            with os.fdopen(os.open(out / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(data)
            os.chmod(out / name, 0o600)
    record(lake, entry, "exported", {"files": len(files), "rows": rows, "zip": as_zip})
    log.info("export %s: %d files, %d rows", entry.request_id, len(files), sum(rows.values()))
    return ExportReport(entry.request_id, out, rows, manifest["files"])


# ---------------------------------------------------------------------- rectify / restrict / consent
def _set_fields(lake: Lake, subject: Subject, values: dict[str, Any], request_id: str) -> None:
    """Write ``values`` into ``restricted/subjects`` and into the overrides the registry re-applies.

    The subjects table is small: it is rewritten whole and its history purged, so the old
    (inaccurate) values do not live on in older versions.
    """
    frame = lake.read(T.SUBJECTS.name)
    mine = pl.col("subject_id") == subject.subject_id
    frame = frame.with_columns(
        pl.when(mine).then(pl.lit(v, dtype=frame.schema[f])).otherwise(pl.col(f)).alias(f) for f, v in values.items())
    now = dt.datetime.now(dt.UTC)
    overrides = pl.DataFrame({
        "subject_id": [subject.subject_id] * len(values), "field": list(values),
        "value": [str(v).lower() if isinstance(v, bool) else str(v) for v in values.values()],
        "set_at_utc": [now] * len(values), "request_id": [request_id] * len(values),
    })
    spec = T.SUBJECT_OVERRIDES
    lake.merge_upsert(spec.name, overrides, spec.keys, spec.schema, partition_by=None,
                      updates={"value": "s.value", "set_at_utc": "s.set_at_utc", "request_id": "s.request_id"},
                      configuration=spec.configuration)
    lake.overwrite(T.SUBJECTS.name, frame, T.SUBJECTS.schema, configuration=T.SUBJECTS.configuration)
    lake.purge_history(T.SUBJECTS.name)
    lake.purge_history(spec.name)


#: what a rectified value must look like (checked before anything is written; the message names
#: the field and the rule, never the value)
_FORMATS = {
    "email": (re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"), "an e-mail address (name@domain.tld)"),
    "phone": (re.compile(r"\+?[0-9][0-9 ()-]{5,19}"), "a phone number (digits, spaces, +, -, brackets)"),
    "postcode": (re.compile(r"[1-9][0-9]{3} ?[A-Z]{2}"), "a Dutch postcode (1234 AB)"),
}


def iban_ok(value: str) -> bool:
    """ISO 13616: two letters, two check digits, up to 30 alphanumerics, and the mod-97 check."""
    from wattlake.generator.registry import iban_is_valid

    text = value.replace(" ", "").upper()
    return bool(re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", text)) and iban_is_valid(text)


def _check_format(field: str, value: str) -> None:
    if field == "iban" and not iban_ok(str(value)):
        raise RectifyError("iban: not a valid IBAN (country code, check digits and the mod-97 check)")
    if field in _FORMATS and not _FORMATS[field][0].fullmatch(str(value).strip()):
        raise RectifyError(f"{field}: not {_FORMATS[field][1]}")
    if not str(value).strip():
        raise RectifyError(f"{field}: empty")


def rectify(lake: Lake, subject_id: str, changes: dict[str, str]) -> str:
    """Correct personal fields (``RECTIFIABLE``); audited with the field names, never the values.
    Values are checked first (:data:`_FORMATS`, :func:`iban_ok`): a malformed one changes nothing."""
    forbidden = sorted(set(changes) - set(RECTIFIABLE))
    if forbidden:
        raise RectifyError(f"fields {forbidden} cannot be rectified; allowed: {list(RECTIFIABLE)}")
    if not changes:
        raise RectifyError("no field to rectify")
    for field_name, value in changes.items():
        _check_format(field_name, value)
    subject = find_subject(lake, subject_id)
    _require(lake, subject, "rectify")
    entry = AuditEntry("rectify", subject_id)
    _set_fields(lake, subject, dict(changes), entry.request_id)
    return record(lake, entry, "rectified", {"fields": sorted(changes)})


def set_flag(lake: Lake, subject_id: str, request_type: str, value: bool) -> str:
    """``restrict``/``object`` (True sets, False lifts) or ``consent`` (True grants, False withdraws).

    Restricted, objecting and non-consenting subjects are excluded from research releases and
    commercial use by the code that reads these flags. Every request is recorded; one that asks
    for the value the flag already has is recorded as ``unchanged`` and rewrites nothing.
    """
    if request_type not in FLAGS:
        raise ValueError(f"unknown flag request {request_type!r}; expected one of {list(FLAGS)}")
    subject = find_subject(lake, subject_id)
    _require(lake, subject, request_type)
    entry = AuditEntry(request_type, subject_id)
    flag = FLAGS[request_type]
    if subject.row.get_column(flag).item() is bool(value):  # already so: recorded, nothing rewritten
        return record(lake, entry, "unchanged", {"field": flag, "value": bool(value)})
    _set_fields(lake, subject, {flag: bool(value)}, entry.request_id)
    return record(lake, entry, "set" if value else "cleared", {"field": flag, "value": bool(value)})


# ---------------------------------------------------------------------------------- erasure
@dataclass
class ErasureReport:
    request_id: str
    outcome: str
    rows: dict[str, int] = field(default_factory=dict)
    bytes_rewritten: int = 0
    bytes_removed: int = 0
    files_removed: int = 0
    insurer_packs_kept: list[str] = field(default_factory=list)
    installer_notices_removed: int = 0  # notices about the subject's systems taken out of installer folders
    releases_including_subject: list[str] = field(default_factory=list)
    dagster_runs_deleted: int = 0
    dagster_searched: bool = False  # False: no Dagster instance was given (the CLI's --no-dagster)
    resumed: bool = False
    seconds: float = 0.0
    landing: "LandingErasure | None" = None  # None: the landing folder was not given


def _tombstone(lake: Lake, ref: str) -> dict | None:
    if not lake.exists(T.ERASURES.name):
        return None
    rows = lake.read(T.ERASURES.name).filter(pl.col("subject_ref") == ref)
    return rows.row(0, named=True) if rows.height else None


def _write_tombstone(lake: Lake, ref: str, request_id: str, status: str, planned: Iterable[str],
                     done: Iterable[str], started: dt.datetime, identifier_refs: Iterable[str]) -> None:
    spec = T.ERASURES
    row = pl.DataFrame({
        "subject_ref": [ref], "request_id": [request_id], "status": [status], "started_at_utc": [started],
        "updated_at_utc": [dt.datetime.now(dt.UTC)], "tables_planned": [json.dumps(sorted(set(planned)))],
        "tables_done": [json.dumps(sorted(set(done)))], "identifier_refs": [json.dumps(sorted(set(identifier_refs)))],
    })
    lake.merge_upsert(spec.name, row, spec.keys, spec.schema, partition_by=None,
                      updates={c: f"s.{c}" for c in spec.schema.names if c not in ("subject_ref", "started_at_utc")},
                      configuration=spec.configuration)


def erased_identifier_refs(lake: Lake) -> set[str]:
    """Keyed pseudonyms (:func:`wattlake.keys.pseudonym`) of erased subjects' device identifiers.

    For landing: a record whose serial, meter id or energy-manager id has its pseudonym here
    belongs to an erased subject and must be dropped (counted), not quarantined with its text.
    """
    if not lake.exists(T.ERASURES.name):
        return set()
    check_key(lake)
    refs: set[str] = set()
    for value in lake.read(T.ERASURES.name).get_column("identifier_refs").drop_nulls().to_list():
        refs |= set(json.loads(value))
    return refs


def erased_refs(lake: Lake) -> set[str]:
    """Pseudonyms of every subject with an erasure tombstone (started or done)."""
    if not lake.exists(T.ERASURES.name):
        return set()
    check_key(lake)
    return set(lake.read(T.ERASURES.name).get_column("subject_ref").to_list())


def _file_sizes(lake: Lake, table: str) -> dict[str, int]:
    t = pa.table(lake.table(table).get_add_actions(flatten=True))
    return dict(zip(t.column("path").to_pylist(), t.column("size_bytes").to_pylist()))


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def _remove_rows(lake: Lake, spec: T.TableSpec, subject: Subject) -> int:
    """Remove (or, in content-matched tables other than the quarantine and the landed-files list,
    redact) the subject's rows.

    No predicate written to the log carries more than pseudonymous ids or partition dates.
    """
    where = _owned(spec, subject)
    n = _count(lake, spec, subject)
    if n == 0:
        return 0
    kind = _kind(spec)
    if kind == "system_id":
        lake.delete(spec.name, f"system_id IN ({_sql_list(subject.system_ids)})")
        return n
    if kind == "subject_ref":
        lake.delete(spec.name, f"subject_ref = '{subject.ref}'")
        return n
    # subject_id-keyed (small registry tables) and content-matched tables: rewrite the affected
    # partitions (or the table) without the rows, under a predicate naming only partition dates
    frame = lake.read(spec.name)
    predicate = None
    if spec.partition_by:
        days = sorted({str(d) for d in frame.filter(where).get_column(spec.partition_by).to_list()})
        frame = frame.filter(pl.col(spec.partition_by).cast(pl.String).is_in(days))
        predicate = f"{spec.partition_by} IN ({_sql_list(days)})"
    if kind == "content" and spec.name not in (T.QUARANTINE.name, T.LANDED_FILES.name):
        ids = subject.identifiers()
        frame = frame.with_columns(pl.col(c).str.replace_many(ids, [ERASED] * len(ids))
                                   for c in _text_columns(spec))
    else:
        frame = frame.filter(~where)
    lake.overwrite(spec.name, frame, spec.schema, partition_by=spec.partition_by, predicate=predicate,
                   configuration=spec.configuration)
    return n


def _pack_ref(folder: str) -> str:
    """``insurers/<insurer>/<claim>`` as ``insurers/<insurer>/<keyed reference of the claim>``."""
    head, _, claim = folder.rpartition("/")
    return f"{head}/{pseudonym(claim)}"


def _insurer_packs(export_root, needles: list[str]) -> list[str]:
    """Insurer claim packs (``insurers/<insurer>/<claim>/``) whose files name the subject's systems."""
    if export_root is None:
        return []
    kept = []
    paths = export_root.list("insurers")
    folders = sorted({p.rsplit("/", 1)[0] for p in paths if p.endswith("manifest.json")})
    for folder in folders:
        for p in (p for p in paths if p.startswith(folder + "/")):
            if p.lower().endswith((".pdf", ".png", ".jpg")):
                continue  # binary renderings; the manifest and data files name the systems
            data = export_root.read(p)
            if any(n.encode() in data for n in needles):
                kept.append(folder)
                break
    return kept


def purge_dagster(instance, needles: list[str]) -> int:
    """Delete every Dagster run whose record or event log holds one of ``needles``.

    Our assets never put personal data into events; this removes what a mistake might have left.
    For SQLite storage the databases are then VACUUMed (deleted rows leave free pages that still
    hold the bytes) and compute-log files holding a needle are deleted.
    """
    from dagster._serdes import serialize_value

    variants = sorted({v for n in needles for v in (n, json.dumps(n)[1:-1])})
    deleted = 0
    for run in instance.get_runs():
        blob = serialize_value(run) + "\n".join(serialize_value(e) for e in instance.all_logs(run.run_id))
        if any(v in blob for v in variants):
            instance.delete_run(run.run_id)
            deleted += 1
    root = getattr(instance, "root_directory", None)
    if root and Path(root).is_dir():
        for db in Path(root).rglob("*.db"):
            try:
                con = sqlite3.connect(db)
                con.execute("VACUUM")
                con.close()
            except sqlite3.Error as exc:  # a locked database is reported, not hidden
                log.warning("could not VACUUM %s: %s", db.name, type(exc).__name__)
        for f in Path(root).rglob("*"):
            if f.is_file() and f.suffix not in (".db", ".db-wal", ".db-shm") and f.stat().st_size < 64 << 20:
                data = f.read_bytes()
                if any(v.encode() in data for v in variants):
                    f.unlink()
    return deleted


#: landing folders with one file per energy manager and day, ``<folder>/<day>/<em_id><suffix>``
#: (the suffixes landing reads: :data:`wattlake.landing.FILE_PATTERNS`)
PER_HOME_FILES = {source: FILE_PATTERNS[source].lstrip("*") for source in ("meter", "device")}
#: landing text files shared by many subjects: the lines naming the subject are removed (blanked
#: in JSON-lines files, which keeps the other lines' numbers)
SHARED_TEXT_FILES = ("registry/*.csv", f"inverter/*/{FILE_PATTERNS['inverter']}")
#: landing Parquet files (the sample fleet's ground truth): the rows naming the subject are removed
SHARED_PARQUET_FILES = ("ground_truth/*.parquet",)
_PARTIAL = ".erasing"  # a rewrite in progress (replaced atomically; a leftover is deleted)
#: the landing folder's top-level folders that can hold a subject's records
LANDING_FOLDERS = ("registry", "ground_truth", "inverter", "meter", "device")


@dataclass
class LandingErasure:
    """What :func:`erase_landing` did: whole files deleted, shared files rewritten, lines/rows removed."""

    files_deleted: int = 0
    files_rewritten: int = 0
    lines_removed: int = 0


def erase_landing(landing_root: str | Path, subject: Subject) -> LandingErasure:
    """Remove the subject from the landing folder: the raw files landing reads again on a re-run.

    The subject's own day files (P1 telegrams, device readings: named by energy-manager id) are
    deleted; in files shared with other subjects (registry snapshots, inverter message files,
    ground truth) the lines or rows that hold one of the subject's identifiers -- or a truncated
    fragment of one, as :func:`_content_match` decides for tables -- are removed and the file is
    replaced atomically. In inverter message files such a line is blanked (emptied, its newline
    kept), so the other lines keep the numbers that bronze and quarantine rows recorded.
    Idempotent: a second run finds nothing.
    """
    em_ids = [v for v in (subject.systems.get_column("em_id").to_list()
                          if "em_id" in subject.systems.columns else []) if v]
    return _erase_from_landing(Path(landing_root), subject.identifiers(), em_ids)


def _erase_from_landing(root: Path, ids: list[str], em_ids: list[str], days: Iterable[str] | None = None,
                        folders: Iterable[str] = LANDING_FOLDERS) -> LandingErasure:
    """:func:`erase_landing` for plain identifiers ``ids`` and energy-manager ids ``em_ids``, in the
    top-level ``folders`` of the landing folder; with ``days``, only those days' folders of the
    sources (``registry`` and ``ground_truth`` have no days)."""
    out = LandingErasure()
    if not root.is_dir():
        return out
    day_set = None if days is None else set(days)
    folders = [f for f in LANDING_FOLDERS if f in set(folders)]
    for stale in [f for d in _landing_dirs(root, day_set, folders) for f in d.glob(f"*{_PARTIAL}")]:
        stale.unlink()
    for folder, suffix in PER_HOME_FILES.items():
        for d in _landing_dirs(root, day_set, [folder] if folder in folders else []):
            for em in em_ids:
                f = d / f"{em}{suffix}"
                if f.is_file():
                    f.unlink()
                    out.files_deleted += 1
    if not ids:
        return out
    # a file can only hold an identifier or a fragment of one if it holds one's first characters
    probes = sorted({i[:MIN_FRAGMENT].encode() for i in ids})
    shared = [f for pattern in SHARED_TEXT_FILES if pattern.split("/")[0] in folders
              for f in sorted(root.glob(pattern))
              if day_set is None or f.parent.parent == root or f.parent.name in day_set]
    for f in shared:
        data = f.read_bytes()
        if not any(p in data for p in probes):
            continue
        # lines are cut at b"\n" (which undecodable bytes never hide), matched as text, and the
        # kept lines' bytes copied as they were
        buf = np.frombuffer(data, dtype=np.uint8)
        cuts = np.concatenate([[0], positions(buf, 10) + 1, [buf.size]])
        lines = pl.Series([data.decode("utf-8", errors="replace")]).str.split("\n").explode()
        hit = pl.select(_text_match(pl.lit(lines), ids)).to_series().to_numpy()
        if hit.any():
            keep = np.repeat(~hit, np.diff(cuts))
            if f.suffix == ".jsonl":
                # a message line is blanked, not removed: its newline stays, so every other line
                # keeps the number that bronze rows and quarantine rows (keyed on file and line)
                # recorded, and landing the file again recognises them (blank lines are no records)
                newline = cuts[1:-1] - 1  # the newline ending each line but the last
                keep[newline[hit[:-1]]] = True
            replace_file(f, buf[keep].tobytes())
            out.files_rewritten += 1
            out.lines_removed += int(hit.sum())
    for pattern in SHARED_PARQUET_FILES:
        if pattern.split("/")[0] not in folders:
            continue
        for f in sorted(root.glob(pattern)):
            frame = pl.read_parquet(f)
            text_cols = [c for c, t in frame.schema.items() if t == pl.String]
            if not text_cols:
                continue
            hit = frame.select(pl.any_horizontal([_text_match(pl.col(c), ids) for c in text_cols])).to_series()
            if hit.any():
                buf = io.BytesIO()
                frame.filter(~hit).write_parquet(buf)
                replace_file(f, buf.getvalue())
                out.files_rewritten += 1
                out.lines_removed += int(hit.sum())
    return out


#: registry snapshot columns that identify a subject or one of their devices
_REGISTRY_ID_COLUMNS = ("subject_id", "system_id", "serial", "meter_id", "gas_meter_id", "em_id")
_SERIAL_TOKEN = re.compile(ID_PATTERNS[0].encode())  # the stick serial in an inverter message


def erased_in_landing(lake: Lake, landing_root: str | Path, days: Iterable[str] | None = None,
                      folders: Iterable[str] = LANDING_FOLDERS) -> tuple[list[str], list[str]]:
    """The identifiers in the landing folder that belong to erased subjects: ``(ids, em_ids)``.

    The erasure tombstones hold only keyed pseudonyms (:func:`erased_refs` of subjects,
    :func:`erased_identifier_refs` of their serials, meter and energy-manager ids), so the folder's
    own identifiers are pseudonymised and looked up: the registry snapshots' id columns (a row of an
    erased subject gives all its ids: system id, serial, meter ids), the energy-manager ids that
    name the per-home day files and the serials of the inverter message lines (of the ``folders``
    and ``days`` given; the registry snapshots are always read). A truncated serial fragment is
    matched when its full serial is found somewhere (:func:`_text_match`), else it cannot be.
    """
    subjects, devices = erased_refs(lake), erased_identifier_refs(lake)
    root = Path(landing_root)
    ids: set[str] = set()
    if not (subjects or devices) or not root.is_dir():
        return [], []
    memo: dict[str, str] = {}

    def erased(value: str, refs: set[str]) -> bool:  # one keyed hash per distinct value
        if value not in memo:
            memo[value] = pseudonym(value)
        return memo[value] in refs

    day_set = None if days is None else set(days)
    em_ids: set[str] = set()
    for f in sorted((root / "registry").glob("*.csv")):
        frame = pl.read_csv(f, infer_schema=False, truncate_ragged_lines=True)
        cols = [c for c in _REGISTRY_ID_COLUMNS if c in frame.columns]
        if not cols:
            continue
        hit = pl.lit(False)
        for c in cols:  # the distinct values of the id columns are pseudonymised (small)
            refs = subjects if c == "subject_id" else devices
            gone = [v for v in frame.get_column(c).drop_nulls().unique().to_list() if erased(v, refs)]
            hit = hit | pl.col(c).is_in(gone)
        rows = frame.filter(hit)
        ids |= {v for c in cols for v in rows.get_column(c).drop_nulls().to_list() if v}
        em_ids |= set(rows.get_column("em_id").drop_nulls().to_list()) if "em_id" in cols else set()
    folders = set(folders)
    for folder, suffix in PER_HOME_FILES.items():
        for d in _landing_dirs(root, day_set, [folder] if folder in folders else []):
            for f in d.glob(f"*{suffix}"):
                em = f.name[: -len(suffix)]
                if em in em_ids or erased(em, devices):
                    em_ids.add(em)
    inverter_days = _landing_dirs(root, day_set, ["inverter"] if "inverter" in folders else [])
    for k, d in enumerate(inverter_days):
        for f in sorted(d.glob(FILE_PATTERNS["inverter"])):
            for serial in set(_SERIAL_TOKEN.findall(f.read_bytes())):
                text = serial.decode("utf-8", errors="replace")
                if text and erased(text, devices):
                    ids.add(text)
        if (k + 1) % 30 == 0:
            log.info("scrub: inverter serials read for %d of %d landing days", k + 1, len(inverter_days))
    return sorted(ids | em_ids), sorted(em_ids)


def scrub_landing(lake: Lake, landing_root: str | Path, days: Iterable[str] | None = None,
                  folders: Iterable[str] = LANDING_FOLDERS, audit: bool = True) -> LandingErasure:
    """Remove every erased subject's records from the landing folder (its ``folders``, of them the
    day folders ``days``: all by default).

    For the raw files an erasure could not reach: the landing folder was not given or not mounted
    when the subject was erased, or the subject's stick and meter kept sending files afterwards.
    The identifiers are found by pseudonym (:func:`erased_in_landing`) and removed as
    :func:`erase_landing` does (own day files deleted, lines and rows removed from shared files,
    atomic replaces). Idempotent. With ``audit`` a ``scrub_landing`` row (counts only) is written
    to ``restricted/privacy_audit``.
    """
    t0 = time.perf_counter()
    folders = list(folders)
    ids, em_ids = erased_in_landing(lake, landing_root, days, folders)
    out = _erase_from_landing(Path(landing_root), ids, em_ids, days, folders) if ids or em_ids else LandingErasure()
    if audit:
        record(lake, AuditEntry("scrub_landing"), "scrubbed",
               {**vars(out), "folders": folders, "days": "all" if days is None else len(set(days)),
                "seconds": round(time.perf_counter() - t0, 2)})
    log.info("scrub: landing folder done (%d files deleted, %d rewritten, %d lines removed)",
             out.files_deleted, out.files_rewritten, out.lines_removed)
    return out


def _landing_dirs(root: Path, days: set[str] | None, folders: Iterable[str] = LANDING_FOLDERS) -> list[Path]:
    """The folders to look in: ``registry``/``ground_truth`` themselves, and the day folders
    ``<folder>/<day>`` of the sources (all days, or those in ``days``)."""
    out = []
    for folder in folders:
        base = root / folder
        if folder in ("registry", "ground_truth"):
            out += [base] if base.is_dir() else []
        elif days is None:
            out += sorted(d for d in base.glob("*") if d.is_dir())
        else:
            out += [base / day for day in sorted(days) if (base / day).is_dir()]
    return out


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a sibling file and rename it over ``path`` (never a half-written file;
    a leftover sibling, ``<name>.erasing``, is deleted by the next landing erasure or scrub)."""
    tmp = path.with_name(path.name + _PARTIAL)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def erase(lake: Lake, subject_id: str, instance=None, export_root=None,
          landing_root: str | Path | None = None) -> ErasureReport:
    """Erase the subject from every table, every older version, the Dagster storage and (given
    ``landing_root``) the landing folder (:func:`erase_landing`).

    Idempotent: a second call finds nothing left and reports ``already_erased``; a call after a
    crash resumes from the tombstone's ``tables_done``.
    """
    t0 = time.perf_counter()
    subject = find_subject(lake, subject_id)
    ref = subject.ref
    stone = _tombstone(lake, ref)
    if subject.row.height == 0 and subject.systems.height == 0 and stone is None:
        raise SubjectNotFound(f"no subject {ref} in the lake and no erasure of it on record")
    if stone and stone["status"] == "done" and subject.row.height == 0 and subject.systems.height == 0:
        entry = AuditEntry("erase", subject_id)
        record(lake, entry, "already_erased", {"erased_by": stone["request_id"]})
        return ErasureReport(entry.request_id, "already_erased")

    entry = AuditEntry("erase", subject_id)
    resumed = stone is not None
    request_id = stone["request_id"] if resumed else entry.request_id  # the erasure's first request
    started = stone["started_at_utc"] if resumed else dt.datetime.now(dt.UTC)
    done: set[str] = set(json.loads(stone["tables_done"])) if resumed else set()
    planned_before: set[str] = set(json.loads(stone["tables_planned"])) if resumed else set()

    specs = _candidate_tables(lake)
    counts = {s.name: _count(lake, s, subject) for s in specs}
    planned = planned_before | {n for n, c in counts.items() if c}
    devices = [i for i in subject.identifiers() if i != subject_id and i not in subject.system_ids]
    id_refs = (set(json.loads(stone["identifier_refs"] or "[]")) if resumed else set()) | {
        pseudonym(i) for i in devices}
    # the tombstone first: it records the plan, and each finished table, before anything is removed
    _write_tombstone(lake, ref, request_id, "in_progress", planned, done, started, id_refs)
    needles = subject.personal_values()
    report = ErasureReport(request_id, "erased", resumed=resumed)
    if landing_root is not None:  # first: it needs the identifiers the registry tables still hold
        report.landing = erase_landing(landing_root, subject)
        log.info("erase %s: landing folder done (%d files deleted, %d rewritten)", request_id,
                 report.landing.files_deleted, report.landing.files_rewritten)
    for spec in specs:
        if spec.name not in planned or (spec.name in done and not counts[spec.name]):
            continue  # (a done table with rows again: landed while a crashed erasure waited)
        before = _file_sizes(lake, spec.name)
        report.rows[spec.name] = _remove_rows(lake, spec, subject)
        purge = lake.purge_history(spec.name)
        after = _file_sizes(lake, spec.name)
        report.bytes_rewritten += sum(s for p, s in after.items() if p not in before)
        report.bytes_removed += sum(s for p, s in before.items() if p not in after)
        report.files_removed += purge["files_removed"]
        done.add(spec.name)
        _write_tombstone(lake, ref, request_id, "in_progress", planned, done, started, id_refs)
        log.info("erase %s: %s done (%d rows)", request_id, spec.name, report.rows[spec.name])

    from wattlake.research import releases_of

    report.releases_including_subject = [r["request_id"] for r in releases_of(lake, subject_id)]
    report.insurer_packs_kept = _insurer_packs(export_root, [ref, subject_id, *subject.system_ids])
    from wattlake.notices import erase_from_notices

    report.installer_notices_removed = erase_from_notices(export_root, subject.system_ids)
    report.dagster_searched = instance is not None
    if instance is not None:
        report.dagster_runs_deleted = purge_dagster(
            instance, [v for v in needles if v not in subject.system_ids])
    _write_tombstone(lake, ref, request_id, "done", planned, done, started, id_refs)
    # the tombstone table's own history only ever held pseudonyms and table names
    report.seconds = round(time.perf_counter() - t0, 2)
    details = {
        "tables": report.rows, "bytes_rewritten": report.bytes_rewritten, "bytes_removed": report.bytes_removed,
        "files_removed": report.files_removed, "resumed": resumed, "erasure_request_id": request_id,
        # a claim folder is named by its policy number, an identifier of the subject: the audit
        # names the insurer and a keyed reference of the claim (pseudonym("<claim>") finds it)
        "insurer_packs_kept_legal_claims": [_pack_ref(folder) for folder in report.insurer_packs_kept],
        "installer_notices_removed": report.installer_notices_removed,
        "earlier_releases_including_subject": report.releases_including_subject,
        "dagster_runs_deleted": report.dagster_runs_deleted, "dagster_searched": report.dagster_searched,
        "seconds": report.seconds,
        "landing": None if report.landing is None else vars(report.landing),
    }
    record(lake, entry, "erased", details)
    return report
