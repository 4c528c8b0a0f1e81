"""Retention: personal data kept no longer than needed, configured in ONE place (:data:`POLICY`).

- ``restricted/inverter_ips``: remote IP addresses are truncated to their network (/24 for IPv4,
  /48 for IPv6, written ``192.0.2.0/24``) once the day is older than 30 days, and removed once it
  is older than 13 months. Truncation makes addresses equal: rows of the same system, day and
  network are merged (first_seen = earliest, last_seen = latest).
- ``bronze/meter_readings.raw_telegram``: the raw P1 text is dropped (set null) after 90 days; the
  parsed values stay (every row in the table was parsed: rejects live in quarantine).
- ``bronze/quarantine.raw_text``: dropped after 90 days (source file, line and reason stay).
- Installer notice folders (``exports/installers/<installer>/<batch>/``, given ``export_root``):
  deleted 90 days after the batch was sent (:func:`retain_notice_folders`). They are the
  outbox installers fetch from; what each was told stays in ``gold/installer_notices``, which the
  next deliveries are planned from.
- The landing folder (given ``landing_root``) holds the same data raw, so the same limits hold
  there (:func:`retain_landing`), counted on the landing day folder (a file in ``<day>`` holds
  data of that day or earlier): the ``remote_ip`` values of inverter message files are rewritten to
  their network after 30 days and to ``null`` after 13 months (landing them again stores what
  the tables hold after retention); P1 telegram files are deleted after 90 days once landed
  (``bronze/landed_files`` lists them at their current size), never before.

Ages are counted on the ``day`` partition (UTC date of the data, or the landing day for
quarantine) against ``now``, which is a parameter so tests can use old timestamps. Every changed
table is then purged (:meth:`wattlake.lake.Lake.purge_history`): old data files vacuumed and the
old log removed, so the values are physically gone. Predicates written to the Delta log name only
dates. One ``retention`` audit row records the counts.
"""

from __future__ import annotations

import calendar
import datetime as dt
import ipaddress
import json
import logging
import re
from pathlib import Path
from dataclasses import asdict, dataclass, field

import polars as pl

from wattlake import tables as T
from wattlake.audit import AuditEntry, record
from wattlake.lake import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long personal data is kept [days or months, counted on the data's UTC day]."""

    ip_truncate_after_days: int = 30
    ip_remove_after_months: int = 13
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    telegram_raw_after_days: int = 90
    quarantine_raw_after_days: int = 90
    notice_folders_after_days: int = 90


#: THE retention policy (the only place the limits are configured)
POLICY = RetentionPolicy()


@dataclass
class RetentionReport:
    now: str
    dry_run: bool
    ips_truncated: int = 0
    ip_rows_merged: int = 0
    ips_removed: int = 0
    telegrams_dropped: int = 0
    quarantine_raw_dropped: int = 0
    tables_purged: list[str] = field(default_factory=list)
    request_id: str | None = None
    landing: "LandingRetention | None" = None  # None: no landing folder given
    notice_folders_deleted: int | None = None  # None: no exports root given
    notice_files_deleted: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day of the month ``months`` earlier (clamped to the month's last day)."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return dt.date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


#: a dotted-quad IPv4 address as Python's ``ipaddress`` accepts it: four decimal octets of at
#: most 255, ASCII digits, no leading zero, nothing around it
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"


def truncate_ips(ips: pl.Series, v4_prefix: int = 24, v6_prefix: int = 48) -> pl.Series:
    """Each address as its network in CIDR notation (``a.b.c.0/24``, ``2001:db8:1::/48``).

    Already truncated values (holding ``/``) stay; unparseable text becomes null (it cannot be
    kept in a form that is known to be safe). Works on the distinct values only: plain IPv4
    addresses as integers in Polars, every other value (IPv6, surrounding spaces, anything
    odd) through Python's ``ipaddress``, whose result the IPv4 arithmetic equals
    (``tests/test_retention.py``). Landing a group of 1,000 homes' days past the truncation
    age spent 80-110 ms per commit in the ``ipaddress`` loop (2026-11-24).
    """
    uniq = ips.drop_nulls().unique()
    plain = uniq.str.contains(_IPV4)
    v4 = uniq.filter(plain)
    octets = v4.str.split(".").list.to_struct(fields=["a", "b", "c", "d"]).struct.unnest().cast(pl.Int64)
    block = 1 << (32 - v4_prefix)  # addresses per network
    address = pl.col("a") * (1 << 24) + pl.col("b") * (1 << 16) + pl.col("c") * (1 << 8) + pl.col("d")
    network = address - address % block
    v4_networks = (octets.select(pl.concat_str(
        *[(network // (1 << shift) % 256).cast(pl.String) for shift in (24, 16, 8, 0)], separator=".")
        + f"/{v4_prefix}").to_series() if v4.len() else pl.Series([], dtype=pl.String))
    mapping: dict[str, str | None] = {}
    for ip in uniq.filter(~plain).to_list():  # distinct values that are not plain IPv4: few
        if "/" in ip:
            mapping[ip] = ip
            continue
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            mapping[ip] = None
            continue
        prefix = v4_prefix if addr.version == 4 else v6_prefix
        mapping[ip] = str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
    old = pl.concat([v4, pl.Series(list(mapping), dtype=pl.String)])
    new = pl.concat([v4_networks, pl.Series(list(mapping.values()), dtype=pl.String)])
    return ips.replace_strict(old, new, default=None, return_dtype=pl.String)


def _network(ip: str, policy: RetentionPolicy) -> str | None:
    """One address as its network (see :func:`truncate_ips`); None when it is not an address."""
    return truncate_ips(pl.Series([ip], dtype=pl.String), policy.ipv4_prefix, policy.ipv6_prefix)[0]


@dataclass
class LandingRetention:
    """What :func:`retain_landing` did (or, in a dry run, would do) to the landing folder."""

    ip_files_rewritten: int = 0
    ips_truncated: int = 0      # full addresses written as their network
    ips_removed: int = 0        # values written as null (older than the removal limit, or not an address)
    telegram_files_deleted: int = 0
    telegram_files_kept_unlanded: int = 0  # old enough, but never landed: kept, the operator must look


#: a complete JSON ``"remote_ip": "<value>"`` pair, and one cut off at the end of a line
_IP_PAIR = re.compile(rb'("remote_ip"\s*:\s*)"((?:[^"\\\n]|\\.)*)"')
_IP_CUT = re.compile(rb'("remote_ip"\s*:\s*")((?:[^"\\\n]|\\.)*)(?=\r?\n|$)')
#: per inverter day folder: the files whose addresses are done, and to which level
_IP_MARKER = ".retention-ips.json"
_LEVELS = {"truncated": 1, "removed": 2}


def _rewrite_ips(data: bytes, remove: bool, policy: RetentionPolicy, out: LandingRetention) -> bytes:
    """``data`` with every remote_ip value as its network (``remove``: null); cut-off values emptied."""
    memo: dict[bytes, str | None] = {}  # distinct addresses: a few per system and day

    def pair(m: re.Match) -> bytes:
        raw = m.group(2)
        value = raw.decode("utf-8", errors="replace")
        if raw not in memo:
            memo[raw] = None if remove or "\\" in value else _network(value, policy)
        net = memo[raw]
        if net is None:
            out.ips_removed += 1
            return m.group(1) + b"null"
        if net != value:
            out.ips_truncated += 1
        return m.group(1) + b'"' + net.encode() + b'"'

    def cut(m: re.Match) -> bytes:
        if m.group(2):
            out.ips_removed += 1
        return m.group(1)

    return _IP_CUT.sub(cut, _IP_PAIR.sub(pair, data))


def _landed_files(lake: Lake, files: dict[str, int]) -> set[str]:
    """Those of ``files`` (landing-relative path -> current size [bytes]) that
    ``bronze/landed_files`` lists at that size: their records are committed to the lake."""
    if not files or not lake.exists(T.LANDED_FILES.name):
        return set()
    days = sorted({name.split("/")[1] for name in files})
    ledger = lake.read(T.LANDED_FILES.name, filter=pl.col("day").cast(pl.String).is_in(days))
    wanted = pl.DataFrame({"source_file": list(files), "size_bytes": list(files.values())},
                          schema={"source_file": pl.String, "size_bytes": pl.Int64})
    return set(wanted.join(ledger.select("source_file", "size_bytes"), on=["source_file", "size_bytes"],
                           how="semi").get_column("source_file").to_list())


def retain_landing(lake: Lake, landing_root: str | Path, today: dt.date, policy: RetentionPolicy = POLICY,
                   dry_run: bool = False) -> LandingRetention:
    """Apply ``policy`` to the raw files of the landing folder (see the module docstring).

    Inverter files are rewritten atomically; a marker per day folder (``.retention-ips.json``)
    records the files done and the level, so a daily run reads only the day that just crossed a
    limit (and files that arrived late in an old folder). Telegram files are deleted only when
    ``bronze/landed_files`` lists them at their current size; the others are counted
    (``telegram_files_kept_unlanded``) and logged.
    """
    root = Path(landing_root)
    out = LandingRetention()
    truncate_before = today - dt.timedelta(days=policy.ip_truncate_after_days)
    remove_before = months_before(today, policy.ip_remove_after_months)
    telegram_before = today - dt.timedelta(days=policy.telegram_raw_after_days)

    def day_of(folder: Path) -> dt.date | None:
        try:
            return dt.date.fromisoformat(folder.name)
        except ValueError:
            return None

    from wattlake.landing import FILE_PATTERNS
    from wattlake.privacy import replace_file

    folders = [f for f in sorted((root / "inverter").glob("*")) if (d := day_of(f)) and d < truncate_before]
    for k, folder in enumerate(folders):
        day = day_of(folder)
        if k and k % 30 == 0:
            log.info("retention: landing inverter folders %d of %d", k, len(folders))
        level = "removed" if day < remove_before else "truncated"
        marker = folder / _IP_MARKER
        done = json.loads(marker.read_text()) if marker.is_file() else {"level": None, "files": []}
        redo = _LEVELS.get(done["level"], 0) < _LEVELS[level]
        files = [f for f in sorted(folder.glob(FILE_PATTERNS["inverter"])) if redo or f.name not in done["files"]]
        for f in files:
            data = f.read_bytes()
            new = _rewrite_ips(data, level == "removed", policy, out)
            if new != data:
                out.ip_files_rewritten += 1
                if not dry_run:
                    replace_file(f, new)
        if files and not dry_run:
            names = sorted({*([] if redo else done["files"]), *(f.name for f in files)})
            marker.write_text(json.dumps({"level": level, "files": names}))
    old = [f for folder in sorted((root / "meter").glob("*"))
           if (d := day_of(folder)) is not None and d < telegram_before
           for f in sorted(folder.glob(FILE_PATTERNS["meter"]))]
    if old:
        landed = _landed_files(lake, {str(f.relative_to(root)): f.stat().st_size for f in old})
        for f in old:
            if str(f.relative_to(root)) in landed:
                out.telegram_files_deleted += 1
                if not dry_run:
                    f.unlink()
            else:
                out.telegram_files_kept_unlanded += 1
        if out.telegram_files_kept_unlanded:
            log.warning("retention: %d P1 files older than %d days were never landed: kept (land them)",
                        out.telegram_files_kept_unlanded, policy.telegram_raw_after_days)
    return out


def _day_literal(day: dt.date) -> str:
    return f"'{day.isoformat()}'"


def _retain_ips(lake: Lake, today: dt.date, policy: RetentionPolicy, report: RetentionReport) -> bool:
    spec = T.INVERTER_IPS
    if not lake.exists(spec.name):
        return False
    truncate_before = today - dt.timedelta(days=policy.ip_truncate_after_days)
    remove_before = months_before(today, policy.ip_remove_after_months)
    old = lake.scan(spec.name).filter(pl.col("day") < truncate_before)
    report.ips_removed = int(old.filter(pl.col("day") < remove_before).select(pl.len()).collect().item())
    # partitions still holding a full address
    pending = (old.filter((pl.col("day") >= remove_before) & ~pl.col("remote_ip").str.contains("/", literal=True))
               .select("day").unique().collect().get_column("day").to_list())
    changed = False
    if pending:
        rows = lake.read(spec.name, filter=pl.col("day").is_in(pending))
        report.ips_truncated = int((~rows.get_column("remote_ip").str.contains("/", literal=True)).sum())
        merged = (rows.with_columns(truncate_ips(rows.get_column("remote_ip"), policy.ipv4_prefix,
                                                 policy.ipv6_prefix).alias("remote_ip"))
                  .filter(pl.col("remote_ip").is_not_null())
                  .group_by("system_id", "day", "remote_ip")
                  .agg(pl.col("first_seen_utc").min(), pl.col("last_seen_utc").max())
                  .sort("day", "system_id", "remote_ip"))
        report.ip_rows_merged = rows.height - merged.height
        if not report.dry_run:
            days = ", ".join(_day_literal(d) for d in sorted(pending))
            lake.overwrite(spec.name, merged, spec.schema, partition_by=spec.partition_by,
                           predicate=f"day IN ({days})", configuration=spec.configuration)
        changed = True
    if report.ips_removed:
        if not report.dry_run:
            lake.delete(spec.name, f"day < {_day_literal(remove_before)}")
        changed = True
    return changed


def _null_column(lake: Lake, spec: T.TableSpec, column: str, before: dt.date, dry_run: bool) -> int:
    if not lake.exists(spec.name):
        return 0
    n = int(lake.scan(spec.name).filter((pl.col("day") < before) & pl.col(column).is_not_null())
            .select(pl.len()).collect().item())
    if n and not dry_run:
        lake.update(spec.name, {column: "NULL"}, f"day < {_day_literal(before)} AND {column} IS NOT NULL")
    return n


def retain_notice_folders(export_root, today: dt.date, policy: RetentionPolicy = POLICY,
                          dry_run: bool = False) -> tuple[int, int]:
    """Delete the installer notice folders sent before ``today - notice_folders_after_days``;
    returns (folders, files) deleted (or, in a dry run, that would be). A folder whose name is not a
    batch time is kept and logged: retention does not guess the age of what it did not write."""
    from wattlake.notices import delivered_batches

    batches = delivered_batches(export_root)
    before = dt.datetime.combine(today - dt.timedelta(days=policy.notice_folders_after_days), dt.time(),
                                 tzinfo=dt.timezone.utc)
    unknown = batches.filter(pl.col("sent_at_utc").is_null()).height
    if unknown:
        log.warning("retention: %d installer folders whose name is not a batch time were kept", unknown)
    old = batches.filter(pl.col("sent_at_utc") < before)
    files = old.get_column("files").explode().drop_nulls().to_list()
    if files and not dry_run:
        export_root.delete(files)
    return old.height, len(files)


def apply_retention(lake: Lake, now: dt.datetime | None = None, policy: RetentionPolicy = POLICY,
                    dry_run: bool = False, landing_root: str | Path | None = None,
                    export_root=None) -> RetentionReport:
    """Apply ``policy`` as of ``now`` (UTC; default: the current time) and purge old versions;
    given ``landing_root``, to the landing folder's raw files too (:func:`retain_landing`); given
    ``export_root`` (:class:`~wattlake.exports.ExportRoot`), to the installer notice folders
    (:func:`retain_notice_folders`).

    ``dry_run`` only counts. Safe to re-run: a second run on the same day changes nothing.
    """
    now = now or dt.datetime.now(dt.UTC)
    today = now.date() if isinstance(now, dt.datetime) else now
    report = RetentionReport(now=str(now), dry_run=dry_run)
    changed: list[str] = []
    if _retain_ips(lake, today, policy, report):
        changed.append(T.INVERTER_IPS.name)
    report.telegrams_dropped = _null_column(
        lake, T.METER_READINGS, "raw_telegram", today - dt.timedelta(days=policy.telegram_raw_after_days), dry_run)
    if report.telegrams_dropped:
        changed.append(T.METER_READINGS.name)
    report.quarantine_raw_dropped = _null_column(
        lake, T.QUARANTINE, "raw_text", today - dt.timedelta(days=policy.quarantine_raw_after_days), dry_run)
    if report.quarantine_raw_dropped:
        changed.append(T.QUARANTINE.name)
    if landing_root is not None and Path(landing_root).is_dir():
        report.landing = retain_landing(lake, landing_root, today, policy, dry_run)
    if export_root is not None:
        report.notice_folders_deleted, report.notice_files_deleted = retain_notice_folders(
            export_root, today, policy, dry_run)
    if not dry_run:
        for name in changed:
            lake.purge_history(name)
        report.tables_purged = changed
        details = {k: v for k, v in report.as_dict().items() if k != "request_id"}  # counts only
        details["policy"] = asdict(policy)
        report.request_id = record(lake, AuditEntry("retention"), "applied", details)
    log.info("retention%s: %d IPs truncated (%d rows merged), %d IP rows removed, %d telegrams and %d "
             "quarantine texts dropped", " (dry run)" if dry_run else "", report.ips_truncated,
             report.ip_rows_merged, report.ips_removed, report.telegrams_dropped, report.quarantine_raw_dropped)
    if report.notice_folders_deleted is not None:
        log.info("retention%s: %d installer notice folders (%d files) older than %d days deleted",
                 " (dry run)" if dry_run else "", report.notice_folders_deleted, report.notice_files_deleted,
                 policy.notice_folders_after_days)
    return report
