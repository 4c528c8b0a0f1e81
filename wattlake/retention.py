"""Retention: personal data kept no longer than needed, configured in ONE place (:data:`POLICY`).

- ``restricted/inverter_ips``: remote IP addresses are truncated to their network (/24 for IPv4,
  /48 for IPv6, written ``192.0.2.0/24``) once the day is older than 30 days, and removed once it
  is older than 13 months. Truncation makes addresses equal: rows of the same system, day and
  network are merged (first_seen = earliest, last_seen = latest).
- ``bronze/meter_readings.raw_telegram``: the raw P1 text is dropped (set null) after 90 days; the
  parsed values stay (every row in the table was parsed: rejects live in quarantine).
- ``bronze/quarantine.raw_text``: dropped after 90 days (source file, line and reason stay).

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
import logging
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

    def as_dict(self) -> dict:
        return asdict(self)


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day of the month ``months`` earlier (clamped to the month's last day)."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return dt.date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


def truncate_ips(ips: pl.Series, v4_prefix: int = 24, v6_prefix: int = 48) -> pl.Series:
    """Each address as its network in CIDR notation (``a.b.c.0/24``, ``2001:db8:1::/48``).

    Already truncated values (holding ``/``) stay; unparseable text becomes null (it cannot be
    kept in a form that is known to be safe). Works on the distinct values only.
    """
    uniq = ips.drop_nulls().unique().to_list()
    mapping: dict[str, str | None] = {}
    for ip in uniq:  # distinct addresses: a few per system and day, not per reading
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
    return ips.replace_strict(mapping, default=None, return_dtype=pl.String)


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


def apply_retention(lake: Lake, now: dt.datetime | None = None, policy: RetentionPolicy = POLICY,
                    dry_run: bool = False) -> RetentionReport:
    """Apply ``policy`` as of ``now`` (UTC; default: the current time) and purge old versions.

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
    if not dry_run:
        for name in changed:
            lake.purge_history(name)
        report.tables_purged = changed
        details = {k: v for k, v in report.as_dict().items() if k != "request_id"}
        details["policy"] = asdict(policy)
        report.request_id = record(lake, AuditEntry("retention"), "applied", details)
    log.info("retention%s: %d IPs truncated (%d rows merged), %d IP rows removed, %d telegrams and %d "
             "quarantine texts dropped", " (dry run)" if dry_run else "", report.ips_truncated,
             report.ip_rows_merged, report.ips_removed, report.telegrams_dropped, report.quarantine_raw_dropped)
    return report
