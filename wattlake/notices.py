"""Underperformance notices to installers: what changed in the alert episodes since the last delivery.

``gold/underperformance_alerts`` is re-detected over the whole history every day, so it cannot be
sent as it stands: an installer would get the same open episode every morning, and never hear
that one ended, got worse, or was withdrawn when corrected data removed it. This module keeps a
ledger of what each installer was told (``gold/installer_notices``, one row per notice) and sends
only the changes:

===========  ===================================================================================
notice       when
===========  ===================================================================================
new          an episode no earlier notice covers (``open`` says whether it is still going on:
             the first delivery also brings the backlog of episodes that already ended)
escalated    an open episode's severity rose (low -> medium -> high)
ended        an open episode stopped: no bad day in the last ``gap_days`` judged days
reopened     an ended episode has bad days again
withdrawn    an episode an installer was told about is no longer detected (late or corrected
             data); final
===========  ===================================================================================

An episode keeps one ``episode_id`` (given by its first notice) while re-detection moves its
days: an alert continues an earlier episode of the same system and kind when their day ranges
overlap or lie at most ``gap_days`` apart. Everything here is plain Polars; :func:`send_notices`
reads the tables, writes one folder per installer and appends to the ledger.

**Delivery** is at least once: the folder (``exports/installers/<installer>/<batch>/``) is written
before the ledger, so a crash between the two sends the same notices again in the next batch,
with the same ``notice_id`` (the episode, the notice and the state it reports) for the installer
to drop.

**Privacy.** A notice names the system by its pseudonymous ``system_id`` (the installer's portal
maps it to the customer), never a person, address or meter id. Systems of subjects who restricted
processing (AVG art. 18) are held back: no notice is sent or recorded, so they follow once the
restriction is lifted. An objection (art. 21) does not stop them: the alerts serve the
maintenance contract, not the company's legitimate interest. An erasure removes the subject's
systems from the ledger like from every table.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import polars as pl

from wattlake.alerts import ALERT_SCHEMA

log = logging.getLogger(__name__)

NOTICE_KINDS = ("new", "escalated", "ended", "reopened", "withdrawn")
#: an episode has ended once its last bad day lies more than this many judged days back [days];
#: also the largest gap between two day ranges that are still one episode
GAP_DAYS = 3
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}
#: a batch's id and folder name: the UTC time it was sent
BATCH_FORMAT = "%Y%m%dT%H%M%SZ"
WITHDRAWN_REASON = ("No longer detected: the days behind this alert were corrected or completed "
                    "by later data. No action needed.")

NOTICE_SCHEMA = pl.Schema({
    "notice_id": pl.String, "batch_id": pl.String, "episode_id": pl.String, "notice": pl.String,
    "installer_id": pl.String, "system_id": pl.String, "kind": pl.String,
    "first_day": pl.Date, "last_day": pl.Date, "open": pl.Boolean, "severity": pl.String,
    "deficit_kwh": pl.Float64, "reason": pl.String, "judged_through": pl.Date,
    "sent_at_utc": pl.Datetime("us", "UTC"),
})
#: the columns an installer receives (batch and time are the folder's)
DELIVERED_COLUMNS = ("notice_id", "notice", "episode_id", "system_id", "kind", "first_day", "last_day",
                     "open", "severity", "deficit_kwh", "reason", "judged_through")
#: the columns :func:`plan_notices` returns
PLANNED_COLUMNS = tuple(c for c in NOTICE_SCHEMA.names() if c not in ("batch_id", "sent_at_utc"))


def _id(*parts: pl.Expr) -> pl.Expr:
    """A readable id: the parts as text joined by ``:`` (system ids are pseudonyms, so no
    personal data; stable across processes and library versions, unlike a Polars hash)."""
    return pl.concat_str([p.cast(pl.String).fill_null("-") for p in parts], separator=":")


def episode_state(sent: pl.DataFrame) -> pl.DataFrame:
    """Each episode's state after the notices ``sent`` (ledger rows): its latest notice, with
    ``status`` ``open``, ``ended`` or ``withdrawn``."""
    if sent.height == 0:
        return pl.DataFrame(schema={**dict(NOTICE_SCHEMA), "status": pl.String})
    order = pl.col("notice").replace_strict({k: i for i, k in enumerate(NOTICE_KINDS)}, return_dtype=pl.Int8)
    return (
        sent.sort("sent_at_utc", order, "notice_id")
        .unique("episode_id", keep="last", maintain_order=True)
        .with_columns(pl.when(pl.col("notice") == "withdrawn").then(pl.lit("withdrawn"))
                      .when(pl.col("open")).then(pl.lit("open")).otherwise(pl.lit("ended")).alias("status"))
    )


def plan_notices(alerts: pl.DataFrame, sent: pl.DataFrame, judged_through: pl.DataFrame,
                 gap_days: int = GAP_DAYS) -> pl.DataFrame:
    """The notices that bring installers from what they were told (``sent``) to ``alerts``.

    Parameters
    ----------
    alerts : polars.DataFrame
        ``gold/underperformance_alerts`` rows (:data:`~wattlake.alerts.ALERT_SCHEMA`).
    sent : polars.DataFrame
        ``gold/installer_notices`` rows (:data:`NOTICE_SCHEMA`); empty before the first delivery.
    judged_through : polars.DataFrame
        ``system_id`` and ``judged_through`` (Date): the last day ``gold/system_daily`` holds for
        each system. An episode is open while its ``last_day`` is at most ``gap_days`` before it
        (a system without judged days counts its episodes open).
    gap_days : int
        See :data:`GAP_DAYS` [days].

    Returns
    -------
    polars.DataFrame
        :data:`PLANNED_COLUMNS`, one row per notice, sorted by installer, system, kind and day;
        ``deficit_kwh`` [kWh] rounded to 0.1.
        ``notice_id`` is made of the episode, the notice and the state it reports, so planning the
        same change twice gives the same id.
    """
    gap = dt.timedelta(days=gap_days)
    cur = (
        alerts.select(list(ALERT_SCHEMA.names()))
        .join(judged_through.select("system_id", "judged_through"), on="system_id", how="left")
        .with_columns((pl.col("judged_through").is_null() | (pl.col("last_day") >= pl.col("judged_through") - gap))
                      .alias("open"))
        .sort("system_id", "kind", "first_day")
        .with_row_index("_c")
    )
    state = episode_state(sent).filter(pl.col("status") != "withdrawn").select(
        "episode_id", "system_id", "kind", pl.col("first_day").alias("s_first"), pl.col("last_day").alias("s_last"),
        pl.col("severity").alias("s_severity"), "status", pl.col("installer_id").alias("s_installer"),
        pl.col("deficit_kwh").alias("s_deficit"), pl.col("judged_through").alias("s_judged"))
    # an alert continues the earlier episode of its system and kind whose days overlap or lie within
    # the gap; each side is matched at most once (earliest first)
    pairs = (
        cur.join(state, on=["system_id", "kind"], how="inner")
        .filter((pl.col("first_day") <= pl.col("s_last") + gap) & (pl.col("s_first") <= pl.col("last_day") + gap))
        .sort("_c", "s_first", "episode_id")
        .unique("_c", keep="first", maintain_order=True)
        .unique("episode_id", keep="first", maintain_order=True)
    )

    def rank(col: str) -> pl.Expr:
        return pl.col(col).replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8)

    changed = pairs.with_columns(
        pl.when(pl.col("status") == "open").then(
            pl.when(~pl.col("open")).then(pl.lit("ended"))
            .when(rank("severity") > rank("s_severity"))
            .then(pl.lit("escalated")))
        .when(pl.col("open") & (pl.col("last_day") > pl.col("s_last"))).then(pl.lit("reopened"))
        .alias("notice")
    ).filter(pl.col("notice").is_not_null())
    # a new episode is named by its system, kind and first day (and last day, in the rare case an
    # earlier episode already has that name: one episode re-detected as two)
    taken = sent.get_column("episode_id") if sent.height else pl.Series("episode_id", [], pl.String)
    short = _id(pl.col("system_id"), pl.col("kind"), pl.col("first_day"))
    new = cur.join(pairs.select("_c"), on="_c", how="anti").with_columns(
        pl.when(short.is_in(taken.implode())).then(_id(short, pl.col("last_day"))).otherwise(short).alias("episode_id"),
        pl.lit("new").alias("notice"))
    gone = state.join(pairs.select("episode_id"), on="episode_id", how="anti").select(
        "episode_id", pl.lit("withdrawn").alias("notice"), pl.col("s_installer").alias("installer_id"), "system_id",
        "kind", pl.col("s_first").alias("first_day"), pl.col("s_last").alias("last_day"), pl.lit(False).alias("open"),
        pl.col("s_severity").alias("severity"), pl.col("s_deficit").alias("deficit_kwh"),
        pl.lit(WITHDRAWN_REASON).alias("reason"), pl.col("s_judged").alias("judged_through"))
    cols = [c for c in PLANNED_COLUMNS if c != "notice_id"]
    out = pl.concat([changed.select(cols), new.select(cols), gone.select(cols)], how="vertical_relaxed")
    return (
        out.with_columns(_id(pl.col("episode_id"), pl.col("notice"), pl.col("last_day"), pl.col("severity"))
                         .alias("notice_id"), pl.col("deficit_kwh").round(1))
        .select(PLANNED_COLUMNS)
        .sort("installer_id", "system_id", "kind", "first_day", "notice", nulls_last=True)
    )


# ------------------------------------------------------------------------------------------------
# delivery
# ------------------------------------------------------------------------------------------------

@dataclass
class NoticeReport:
    """What :func:`send_notices` did (counts only: no system or person is named)."""

    batch_id: str
    notices: int = 0
    by_notice: dict[str, int] = field(default_factory=dict)
    installers: dict[str, int] = field(default_factory=dict)  # notices per installer id
    held_restricted: int = 0
    no_installer: int = 0
    dry_run: bool = False
    folders: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kinds = ", ".join(f"{v} {k}" for k, v in self.by_notice.items()) or "no changes"
        verb = "would send" if self.dry_run else "sent"
        return (f"installer notices {self.batch_id}: {verb} {self.notices} ({kinds}) to {len(self.installers)} "
                f"installers; held back {self.held_restricted} (restricted processing), "
                f"{self.no_installer} without an installer")


def _key_name(installer: str) -> str:
    return f"installer-{installer}"


def send_notices(lake, export_root, now: dt.datetime | None = None, dry_run: bool = False,
                 gap_days: int = GAP_DAYS) -> NoticeReport:
    """Plan the notices (:func:`plan_notices`) and deliver them: one folder per installer
    (``exports/installers/<installer>/<batch>/``: ``notices.csv``, ``notices.json`` and a manifest
    with SHA-256, source table versions and an HMAC signature keyed ``installer-<installer>``),
    then the ledger rows. ``dry_run`` plans and counts only."""
    from wattlake import tables as T
    from wattlake.exports import code_version

    now = now or dt.datetime.now(dt.UTC)
    batch = now.strftime(BATCH_FORMAT)
    report = NoticeReport(batch, dry_run=dry_run)
    if not lake.exists(T.ALERTS.name):
        log.info("installer notices: no alerts table yet")
        return report
    # every table read is pinned to one version, and the manifest records those versions
    versions = {name: lake.version(name) for name in (T.ALERTS.name, T.SYSTEM_DAILY.name, T.SYSTEMS.name,
                                                      T.SUBJECTS.name) if lake.exists(name)}
    alerts = lake.read(T.ALERTS.name, version=versions[T.ALERTS.name])
    judged = (lake.scan(T.SYSTEM_DAILY.name, versions[T.SYSTEM_DAILY.name]).group_by("system_id")
              .agg(pl.col("day").max().alias("judged_through")).collect()
              if T.SYSTEM_DAILY.name in versions else pl.DataFrame(schema={"system_id": pl.String, "judged_through": pl.Date}))
    sent = (lake.read(T.INSTALLER_NOTICES.name) if lake.exists(T.INSTALLER_NOTICES.name)
            else pl.DataFrame(schema=NOTICE_SCHEMA))
    planned = plan_notices(alerts, sent, judged, gap_days)

    held = _restricted_systems(lake, versions)
    report.held_restricted = planned.filter(pl.col("system_id").is_in(held)).height
    report.no_installer = planned.filter(pl.col("installer_id").is_null()).height
    out = planned.filter(~pl.col("system_id").is_in(held) & pl.col("installer_id").is_not_null())
    report.notices = out.height
    report.by_notice = {k: v for k in NOTICE_KINDS if (v := out.filter(pl.col("notice") == k).height)}
    report.installers = dict(sorted(out.group_by("installer_id").len().iter_rows()))
    if dry_run or out.height == 0:
        log.info(report.summary())
        return report

    for (installer,), rows in sorted(out.partition_by("installer_id", as_dict=True).items()):
        folder = export_root.folder("installers", installer, batch)
        _write_folder(folder, installer, rows.select(DELIVERED_COLUMNS), {
            "format": NOTICES_FORMAT, "installer_id": installer, "batch_id": batch,
            "tables": dict(sorted(versions.items())), "code_version": code_version(),
            "created_at_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "gap_days": gap_days})
        report.folders.append(folder.rel)
    ledger = out.with_columns(pl.lit(batch).alias("batch_id"), pl.lit(now).dt.cast_time_unit("us")
                              .dt.convert_time_zone("UTC").alias("sent_at_utc")).select(NOTICE_SCHEMA.names())
    lake.append(T.INSTALLER_NOTICES.name, ledger, T.INSTALLER_NOTICES.schema,
                configuration=T.INSTALLER_NOTICES.configuration)
    log.info(report.summary())
    return report


NOTICES_FORMAT = "wattlake-installer-notices/1"


def _write_folder(folder, installer: str, delivered: pl.DataFrame, manifest: dict) -> None:
    """``notices.csv``, ``notices.json`` and the signed manifest (``manifest`` plus counts, files and
    signature fields) of one installer's batch."""
    from wattlake import keys
    from wattlake.evidence import sign_manifest

    folder.write("notices.csv", delivered.write_csv().encode("utf-8"))
    folder.write("notices.json", json.dumps(delivered.to_dicts(), indent=1, default=str).encode("utf-8"))
    manifest = {
        **manifest, "notices": delivered.height,
        "by_notice": {k: v for k in NOTICE_KINDS if (v := delivered.filter(pl.col("notice") == k).height)},
        "files": sorted(folder.files, key=lambda f: f["path"]),
        "signature_algorithm": "HMAC-SHA256", "key_name": _key_name(installer),
    }
    signed = sign_manifest(manifest, keys.get_key(_key_name(installer)))
    folder.root.write(f"{folder.rel}/manifest.json", json.dumps(signed, indent=2, sort_keys=True).encode())


def erase_from_notices(export_root, system_ids) -> int:
    """Remove the notices about ``system_ids`` from every installer folder still under
    ``export_root`` (an erasure: what was delivered is the installer's copy, ours goes). Each
    changed folder's files are rewritten and its manifest re-signed, recording
    ``erasures_applied``. Returns the notices removed."""
    import io

    if export_root is None or not system_ids:
        return 0
    ids = set(system_ids)
    removed = 0
    for manifest_path in [p for p in export_root.list("installers") if p.endswith("/manifest.json")]:
        rel = manifest_path.rsplit("/", 1)[0]
        folder = export_root.folder(rel)
        rows = pl.read_csv(io.BytesIO(folder.read("notices.csv")), schema_overrides={"system_id": pl.String},
                           infer_schema_length=0)
        hit = rows.get_column("system_id").is_in(list(ids))
        if not hit.any():
            continue
        manifest = json.loads(folder.read("manifest.json"))
        kept = pl.read_json(io.BytesIO(folder.read("notices.json"))) if rows.height > hit.sum() else None
        delivered = (kept.filter(~pl.col("system_id").is_in(list(ids))) if kept is not None
                     else pl.DataFrame(schema={c: NOTICE_SCHEMA[c] for c in DELIVERED_COLUMNS}))
        base = {k: v for k, v in manifest.items() if k not in (
            "notices", "by_notice", "files", "signature", "signature_algorithm", "key_name")}
        base["erasures_applied"] = int(manifest.get("erasures_applied", 0)) + 1
        _write_folder(folder, manifest["installer_id"], delivered.select(DELIVERED_COLUMNS), base)
        removed += int(hit.sum())
    return removed


def delivered_batches(export_root) -> pl.DataFrame:
    """The installer folders under ``export_root``: ``folder`` (``installers/<installer>/<batch>``),
    ``sent_at_utc`` (from the batch name; null where the name is not a batch time) and ``files``
    (a list of paths relative to the root)."""
    schema = {"folder": pl.String, "sent_at_utc": pl.Datetime("us", "UTC"), "files": pl.List(pl.String)}
    if export_root is None:
        return pl.DataFrame(schema=schema)
    files = pl.DataFrame({"path": export_root.list("installers")}, schema={"path": pl.String})
    parts = pl.col("path").str.split("/")
    return (files.filter(parts.list.len() >= 4)
            .group_by(parts.list.slice(0, 3).list.join("/").alias("folder"), maintain_order=True)
            .agg(pl.col("path").alias("files"))
            .with_columns(pl.col("folder").str.split("/").list.get(2)
                          .str.strptime(pl.Datetime("us"), BATCH_FORMAT, strict=False)
                          .dt.replace_time_zone("UTC").alias("sent_at_utc"))
            .select(list(schema)).sort("folder"))


def _restricted_systems(lake, versions: dict[str, int]) -> list[str]:
    """System ids of subjects who restricted processing, read at ``versions`` (a missing flag is no
    restriction here: the registry always carries it; research treats missing as excluded, which
    costs nothing)."""
    from wattlake import tables as T

    if not (T.SUBJECTS.name in versions and T.SYSTEMS.name in versions):
        return []
    subjects = lake.read(T.SUBJECTS.name, version=versions[T.SUBJECTS.name]).select("subject_id", "restricted")
    systems = lake.read(T.SYSTEMS.name, version=versions[T.SYSTEMS.name]).select("system_id", "subject_id")
    return (systems.join(subjects.filter(pl.col("restricted").fill_null(False)), on="subject_id", how="semi")
            .get_column("system_id").to_list())


def verify_notices(location):
    """Check a notice folder (path, ``s3://`` URI or :class:`~wattlake.exports.ExportFolder`): the
    manifest's signature with the installer's key and every file's SHA-256; nothing unlisted.
    Returns a :class:`wattlake.evidence.Verification`."""
    from wattlake.evidence import verify_signed_folder

    return verify_signed_folder(location, "installer_id", _key_name)
