"""Landing raw files into bronze Delta tables: parse, validate, deduplicate, insert, quarantine.

One call lands one source for one or more landing days (the folders
``<landing>/<source>/<YYYY-MM-DD>/``, named for the day the files arrived) in one commit per
table (:meth:`~wattlake.lake.Lake.merge_insert`). Readings go to the partition of their own UTC
day, so a late message lands where it belongs; quarantine rows go to the partition of the landing
day that read them. Every call
returns a :class:`LandingReport` whose counts add up,
``records = landed + duplicates + quarantined``, or raises :class:`ConservationError`.

Idempotence: bronze tables are insert-if-absent on their natural key, quarantine on
(source, source_file, line_no); landing the same files again inserts nothing.

Many groups of days (:func:`chunk_days`, or lazily :func:`iter_chunk_days`) are landed by
:func:`land_groups`, which reads the group after next and parses the next group while the
current one is committed, plans the groups on a background thread and has the kernel read ahead
from disk; the result equals calling :func:`land` group by group.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import polars as pl

from wattlake import tables as T
from wattlake.lake import Lake, LakeError
from wattlake.parsing.device import parse_device_buffer
from wattlake.parsing.inverter import flag_inverter_readings, future_limit, parse_inverter_buffer
from wattlake.parsing.lines import (LineBuffer, Parsed, advise_willneed, file_sizes, read_buffer, read_lines,
                                    rejects_from)
from wattlake.parsing.weather import parse_knmi_lines

log = logging.getLogger(__name__)

SOURCES = ("inverter", "meter", "device", "weather")
#: the files each source lands from ``<landing>/<source>/<day>/`` (erasure of a data subject
#: deletes or rewrites the same files, :func:`wattlake.privacy.erase_landing`)
FILE_PATTERNS = {"inverter": "*.jsonl", "meter": "*.p1", "device": "*.jsonl", "weather": "*.txt"}


#: the second half of landing one group: flag, insert, quarantine, count
Commit = Callable[[], "LandingReport"]


class ConservationError(AssertionError):
    """Rows in != rows landed + duplicates + quarantined."""


class RegistryMissingError(RuntimeError):
    """Landing needs ``restricted/systems``; materialise the registry first."""


@dataclass
class LandingReport:
    """Counts of one landing run; ``records = landed + duplicates + quarantined + erased``."""

    source: str
    partition: str
    files: int = 0
    records: int = 0
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    #: records of erased subjects (a stick still reporting, an old file re-landed): dropped, counted
    erased: int = 0
    corrected: int = 0
    counter_resets: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    table_version: int | None = None
    #: landing days in this report (several when landed as a group)
    days: int = 1
    #: landing files that held erased subjects' records: deleted or rewritten without them
    #: (:func:`wattlake.privacy.scrub_landing`), and the lines removed from shared files
    scrubbed_files: int = 0
    scrubbed_lines: int = 0

    def check(self) -> "LandingReport":
        if self.records != self.landed + self.duplicates + self.quarantined + self.erased:
            raise ConservationError(
                f"{self.source} {self.partition}: {self.records} records read but {self.landed} landed + "
                f"{self.duplicates} duplicates + {self.quarantined} quarantined + {self.erased} erased"
            )
        return self

    def summary(self) -> str:
        return (f"{self.source} {self.partition}: {self.files} files, {self.records} records -> "
                f"{self.landed} landed, {self.duplicates} duplicates, {self.quarantined} quarantined"
                + (f", {self.erased} of erased subjects dropped" if self.erased else "")
                + (f" and {self.scrubbed_files} landing files scrubbed" if self.scrubbed_files else ""))

    def as_dict(self) -> dict:
        return asdict(self)


def landing_days(landing_root: Path) -> list[str]:
    """Every landing day (``YYYY-MM-DD`` folder) of any source in the landing folder, sorted."""
    root = Path(landing_root)
    return sorted({p.name for source in SOURCES if (root / source).is_dir()
                   for p in (root / source).iterdir() if p.is_dir() and len(p.name) == 10})


def landing_files(landing_root: Path, source: str, days: str | Sequence[str]) -> list[tuple[str, Path]]:
    """The files of one source and landing day(s) as (name relative to the landing root, path),
    in name order per day.

    Listed with ``os.scandir`` (file type from the directory entry, no ``stat`` per file): a meter
    day holds one file per energy manager, and pathlib's glob, ``is_file`` and ``relative_to``
    took 0.05–0.4 s per landing group of 4,000 files.
    """
    root = Path(landing_root)
    pattern = FILE_PATTERNS[source]
    out = []
    for day in [days] if isinstance(days, str) else days:
        folder = root / source / day
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if fnmatch.fnmatchcase(e.name, pattern) and e.is_file())
        except (FileNotFoundError, NotADirectoryError):
            continue
        out += [(f"{source}/{day}/{name}", folder / name) for name in names]
    return out


#: a long backfill of a small fleet is cut into at least this many groups (see :func:`iter_chunk_days`)
MIN_GROUPS = 20
#: ... but never into groups smaller than this [bytes of raw files]
MIN_GROUP_BYTES = 32 << 20


def chunk_days(landing_root: Path, source: str, days: Sequence[str], max_bytes: int = 256 << 20,
               min_groups: int = MIN_GROUPS) -> list[list[str]]:
    """Group consecutive landing days so each group's raw files stay under a byte bound.

    Fewer, larger commits cost far less than one per day; the byte bound keeps memory
    flat whatever the fleet size (a day larger than the bound is a group of its own). The
    whole plan at once; :func:`iter_chunk_days` yields the same groups one by one.
    """
    return list(iter_chunk_days(landing_root, source, days, max_bytes, min_groups))


def iter_chunk_days(landing_root: Path, source: str, days: Sequence[str],
                    max_bytes: int = 256 << 20, min_groups: int = MIN_GROUPS) -> Iterator[list[str]]:
    """The groups of :func:`chunk_days`, each yielded as soon as its size is known.

    The bound is ``max_bytes`` [bytes of raw files], lowered when the first non-empty day times
    the number of days says there would be fewer than ``min_groups`` groups (never below
    :data:`MIN_GROUP_BYTES`, never above ``max_bytes``). :func:`land_groups` overlaps reading,
    parsing and committing of consecutive groups, so its first and last groups run with nothing
    beside them; with a few large groups that is a large share. A year of 100 homes' inverter
    files (2.6 GB) in 10 groups of 256 MB landed in 11.2-11.8 s, in 21 of 128 MB in 9.4-9.9 s
    (2026-11-24; the smaller groups' arrays are also more often below the 32 MiB that glibc
    reuses, :mod:`wattlake.allocator`: half the system time). A large fleet
    keeps ``max_bytes``: each group re-reads the keys of the day before it, so more groups cost
    more there (1,000 homes, 60 days: 15.3-18.0 s at 256 MB, 21.5 s at 128 MB).

    Planning a year means listing and stat'ing every file (365 k for 1,000 homes' meters: 5-10 s
    when the folder is not in the page cache); :func:`land_groups` consumes this on a
    background thread, so the first group is landing while the rest is still being planned.
    """
    group: list[str] = []
    size, bound = 0, None
    for day in days:  # loop over days (the files of a day are stat'ed on threads)
        b = sum(file_sizes([p for _, p in landing_files(landing_root, source, day)]))
        if bound is None and b:
            bound = min(max_bytes, max(MIN_GROUP_BYTES, b * len(days) // max(min_groups, 1)))
        if group and size + b <= (bound or max_bytes):
            group.append(day)
            size += b
        else:
            if group:
                yield group
            group, size = [day], b
    if group:
        yield group


class _Plan:
    """Groups pulled from an iterable on a background thread; :meth:`get` waits for group k."""

    def __init__(self, groups: Iterable[Sequence[str]], name: str):
        self._items: list[list[str]] = []
        self._done = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        threading.Thread(target=self._pull, args=(groups,), name=name, daemon=True).start()

    def _pull(self, groups: Iterable[Sequence[str]]) -> None:
        try:
            for g in groups:
                with self._cv:
                    self._items.append(list(g))
                    self._cv.notify_all()
        except BaseException as exc:  # handed to the landing thread by get()
            with self._cv:
                self._error = exc
        finally:
            with self._cv:
                self._done = True
                self._cv.notify_all()

    def get(self, k: int) -> list[str] | None:
        """Group ``k``, or None when the plan has fewer groups; re-raises a planning error."""
        with self._cv:
            self._cv.wait_for(lambda: len(self._items) > k or self._done)
            if len(self._items) > k:
                return self._items[k]
            if self._error is not None:
                raise self._error
            return None


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _systems(lake: Lake) -> pl.DataFrame:
    if not lake.exists(T.SYSTEMS.name):
        raise RegistryMissingError(
            f"{T.SYSTEMS.name} does not exist in {lake.describe()}: materialise the registry assets first"
        )
    return lake.read(T.SYSTEMS.name)


def _landed_at(now: dt.datetime) -> pl.Expr:
    """``landed_at_utc``: the landing time (naive UTC) as a UTC timestamp [us]."""
    return pl.lit(now).dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC")).alias("landed_at_utc")


def _landing_day() -> pl.Expr:
    """``day``: the landing day folder of ``source_file`` (``<source>/<YYYY-MM-DD>/<file>``)."""
    return pl.col("source_file").str.extract(r"^[^/]+/(\d{4}-\d{2}-\d{2})/").str.to_date().alias("day")


def _stamp(frame: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    return frame.with_columns(pl.col("ts_utc").dt.date().alias("day"), _landed_at(now))


#: a JSON ``"remote_ip": "..."`` pair, complete or cut off by truncation
_REMOTE_IP = r'("remote_ip"\s*:\s*")[^"]*("?)'


def redact_raw(raw: pl.Expr) -> pl.Expr:
    """Quarantine raw text without personal data: the remote IP is replaced by ``redacted``.

    IP addresses live only in ``restricted/inverter_ips``; a rejected record is diagnosable
    without it.
    """
    return raw.str.replace_all(_REMOTE_IP, "${1}redacted${2}")


#: where a rejected record names a device: the stick serial in inverter JSON, the P1 equipment id
#: (hex) in a telegram, the energy-manager id in a meter/device file name
ID_PATTERNS = (r'"serial"\s*:\s*"([^"]+)"', r"0-0:96\.1\.1\(([0-9A-Fa-f]+)\)", r"/(em_[^/]+?)\.[A-Za-z0-9]+$")


def _erased_ids(lake: Lake, values: pl.Series) -> list[str]:
    """The distinct ``values`` (device identifiers) whose keyed pseudonym is on an erasure tombstone."""
    from wattlake.keys import pseudonym
    from wattlake.privacy import erased_identifier_refs

    refs = erased_identifier_refs(lake)
    return [v for v in values.drop_nulls().unique().to_list() if pseudonym(v) in refs] if refs else []


def _drop_erased(lake: Lake, rejects: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Split off the rejected records of erased subjects: ``(rejects to quarantine, dropped)``.

    After an erasure a stick may still report, or an old landing file may be landed again; with
    the subject gone from the registry its records would be quarantined as unknown devices, raw
    text and all. A record whose serial, meter id or energy-manager id has its keyed pseudonym in
    the erasure tombstones is counted (``LandingReport.erased``) and not stored anywhere.
    """
    if rejects.height == 0 or not lake.exists(T.ERASURES.name):
        return rejects, 0
    found = rejects.select(
        *(pl.col("raw_text").str.extract(p).alias(f"_id{i}") for i, p in enumerate(ID_PATTERNS[:2])),
        pl.col("source_file").str.extract(ID_PATTERNS[2]).alias("_id2"),
    )
    erased_ids = _erased_ids(lake, found.unpivot().get_column("value"))
    if not erased_ids:
        return rejects, 0
    hit = found.select(pl.any_horizontal(pl.col(c).is_in(erased_ids) for c in found.columns).fill_null(False))
    mask = hit.to_series()
    return rejects.filter(~mask), int(mask.sum())


def _quarantine(lake: Lake, source: str, rejects: pl.DataFrame, now: dt.datetime) -> None:
    if rejects.height == 0:
        return
    rows = rejects.with_columns(
        redact_raw(pl.col("raw_text")).alias("raw_text"),
        pl.lit(source).alias("source"),
        _landing_day(),
        _landed_at(now),
    ).unique(subset=list(T.QUARANTINE.keys), keep="first", maintain_order=True)
    lake.merge_insert(T.QUARANTINE.name, rows, T.QUARANTINE.keys, T.QUARANTINE.schema,
                      configuration=T.QUARANTINE.configuration, narrow_by="source")


def _file_ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by (source_file, line_no). Parsers emit rows in file order already, so the
    sort (which moves every column, raw telegrams included) is skipped when a cheap check shows it
    would change nothing."""
    if frame.height < 2:
        return frame
    f, n = pl.col("source_file"), pl.col("line_no")
    later = (f > f.shift(1)) | ((f == f.shift(1)) & (n > n.shift(1)))
    return frame if frame.select(later.slice(1).all()).item() else frame.sort("source_file", "line_no")


def first_per_key(frame: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """The first row of each key, in order: ``frame.unique(subset=keys, keep="first",
    maintain_order=True)``, but only the key columns are hashed and the frame is filtered only
    when it holds a duplicate (most landing groups hold none): 0.06 s instead of 0.16 s for
    846 k inverter rows, more for raw telegrams."""
    if frame.height < 2:
        return frame
    first = frame.select(pl.struct(list(keys)).is_first_distinct()).to_series()
    return frame if first.all() else frame.filter(first)


def _files_read(files: Sequence[tuple[str, Path]]) -> pl.DataFrame:
    """``source_file`` and ``size_bytes`` of the landing files a commit is about to read (stat
    before the read: a file that grows meanwhile is listed at its older size, which retention then
    treats as not landed -- the safe side)."""
    return pl.DataFrame({"source_file": [name for name, _ in files],
                         "size_bytes": file_sizes([p for _, p in files])},
                        schema={"source_file": pl.String, "size_bytes": pl.Int64})


def _record_files(lake: Lake, source: str, files: pl.DataFrame, now: dt.datetime) -> None:
    """``bronze/landed_files``: the files whose records this commit put in the lake (not the day
    files of erased subjects: their names hold an energy-manager id, and the files are scrubbed)."""
    if files.height and lake.exists(T.ERASURES.name):
        em = files.get_column("source_file").str.extract(ID_PATTERNS[2])
        files = files.filter(~em.is_in(_erased_ids(lake, em)).fill_null(False))
    if files.height == 0:
        return
    spec = T.LANDED_FILES
    rows = files.with_columns(
        pl.lit(source).alias("source"), _landing_day(), _landed_at(now),
    ).unique(subset=list(spec.keys), keep="first", maintain_order=True)
    lake.merge_insert(spec.name, rows, spec.keys, spec.schema, configuration=spec.configuration,
                      narrow_by="source")


def _finish(lake: Lake, spec: T.TableSpec, report: LandingReport, good: pl.DataFrame,
            rejects: pl.DataFrame, now: dt.datetime, valid_rows: int | None = None,
            key_unique: bool = False, files: pl.DataFrame | None = None) -> LandingReport:
    """Deduplicate ``good`` on the table key, insert it, quarantine ``rejects``, count; then list
    ``files`` (:func:`_files_read`) in ``bronze/landed_files``.

    ``valid_rows`` is the number of accepted records before any earlier deduplication
    (defaults to ``good.height``); everything accepted but not inserted is a duplicate.
    ``key_unique`` says ``good`` is already unique on the key (the deduplication is skipped;
    rows are still sent in file order).
    """
    unique = _file_ordered(good)
    if not key_unique:
        unique = first_per_key(unique, spec.keys)
    inserted, version = lake.merge_insert(spec.name, unique, spec.keys, spec.schema, configuration=spec.configuration,
                                          writer_properties=spec.writer_properties, by_merge=spec.insert_by_merge)
    rejects, report.erased = _drop_erased(lake, rejects)
    _quarantine(lake, report.source, rejects, now)
    if files is not None:  # last: only a file whose records are committed is listed
        _record_files(lake, report.source, files, now)
    report.landed = inserted
    report.duplicates = (good.height if valid_rows is None else valid_rows) - inserted
    report.quarantined = rejects.height
    report.reasons = dict(sorted(rejects.group_by("reason").len().iter_rows())) if rejects.height else {}
    report.table_version = version
    return report.check()


def land_inverter(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime | None = None) -> LandingReport:
    """Land ``<landing>/inverter/<day>/*.jsonl`` (each of ``days``) into ``bronze/inverter_readings``.

    Remote IPs go to ``restricted/inverter_ips`` (per system, day and address), never into
    the measurement table.
    """
    return _prepare_inverter(lake, Path(landing_root), days, now or _utc_now())()


def _prepare_inverter(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime,
                      loaded: Loaded | None = None) -> Commit:
    """Read, decode and validate (no lake writes); the returned commit flags, inserts and counts.
    ``loaded``: the group's files already read (:func:`_load`)."""
    files, lb = loaded or _load(landing_root, "inverter", days)
    report = LandingReport("inverter", _label(days), files=len(files), days=len(days))
    read = _files_read(files)
    parsed = parse_inverter_buffer(lb, _systems(lake).select("serial", "system_id"), now)
    del lb
    report.records = parsed.records  # encoding rejects included
    good = first_per_key(_file_ordered(parsed.good), T.INVERTER_READINGS.keys)
    rejects = parsed.rejects
    valid_rows = parsed.good.height
    del parsed

    def commit() -> LandingReport:
        # the counter state before this batch is what earlier batches landed: read at commit time
        flagged = _stamp(flag_inverter_readings(good, _last_counter_before(lake, good)), now)
        report.corrected = int(flagged.get_column("unit_corrected").sum())
        report.counter_resets = int(flagged.get_column("counter_reset").sum())
        _land_ips(lake, flagged, now)
        return _finish(lake, T.INVERTER_READINGS, report, flagged, rejects, now, valid_rows=valid_rows,
                       key_unique=True, files=read)

    return commit


def _last_counter_before(lake: Lake, batch: pl.DataFrame) -> pl.DataFrame | None:
    """Per system, the last landed reading before this batch (to see resets at the boundary)."""
    if batch.height == 0:
        return None
    try:  # one open of the table (it is opened several times per commit already)
        table = lake.table(T.INVERTER_READINGS.name)
    except LakeError:  # not created yet: nothing landed before
        return None
    first_ts = batch.get_column("ts_utc").min()
    first_day = first_ts.date()
    return (
        pl.scan_delta(table)
        .filter(pl.col("day").is_between(first_day - dt.timedelta(days=1), first_day),
                pl.col("ts_utc") < first_ts)
        .select("system_id", "ts_utc", "ac_energy_total_kwh")
        .group_by("system_id")
        .agg(pl.all().top_k_by("ts_utc", 1).first())
        .collect()
    )


def _land_ips(lake: Lake, readings: pl.DataFrame, now: dt.datetime) -> None:
    """Record the remote IPs per system and day in ``restricted/inverter_ips``, within retention.

    The retention limits (:data:`wattlake.retention.POLICY`) hold at landing too, counted from the
    landing time: an address of a day older than the truncation age is stored as its network
    (``/24``, ``/48``), one older than the removal age not at all. So landing old files (a backfill,
    a re-landing after retention ran) never stores what the daily retention run would remove.
    """
    from wattlake.retention import POLICY, months_before, truncate_ips

    spec = T.INVERTER_IPS
    today = now.date()
    ips = readings.filter(pl.col("remote_ip").is_not_null()
                          & (pl.col("day") >= months_before(today, POLICY.ip_remove_after_months)))
    old = pl.col("day") < today - dt.timedelta(days=POLICY.ip_truncate_after_days)
    if ips.select(old.any()).item():
        networks = truncate_ips(ips.get_column("remote_ip"), POLICY.ipv4_prefix, POLICY.ipv6_prefix)
        ips = ips.with_columns(pl.when(old).then(networks).otherwise(pl.col("remote_ip")).alias("remote_ip")
                               ).filter(pl.col("remote_ip").is_not_null())  # unparseable: not kept
    ips = ips.group_by("system_id", "day", "remote_ip").agg(
        pl.col("ts_utc").min().alias("first_seen_utc"), pl.col("ts_utc").max().alias("last_seen_utc"))
    if ips.height == 0:
        lake.ensure(spec.name, spec.schema, [spec.partition_by], spec.configuration)
        return
    lake.merge_upsert(
        spec.name, ips, spec.keys, spec.schema,
        updates={"first_seen_utc": "least(t.first_seen_utc, s.first_seen_utc)",
                 "last_seen_utc": "greatest(t.last_seen_utc, s.last_seen_utc)"},
        configuration=spec.configuration,
    )


def land_meter(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime | None = None) -> LandingReport:
    """Land ``<landing>/meter/<day>/<em_id>.p1`` DSMR 5 day files into ``bronze/meter_readings``.

    Every telegram's CRC16 is checked by the vectorised parser (:mod:`wattlake.parsing.p1`).
    """
    return _prepare_meter(lake, Path(landing_root), days, now or _utc_now())()


def _prepare_meter(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime,
                   loaded: Loaded | None = None) -> Commit:
    from wattlake.parsing.p1 import parse_p1_buffer

    files, (buf, file_starts) = loaded or _load(landing_root, "meter", days)  # bytes as read, no str per file
    report = LandingReport("meter", _label(days), files=len(files), days=len(days))
    read = _files_read(files)
    readings, p1_rejects = parse_p1_buffer(buf, file_starts, [name for name, _ in files])
    del buf
    report.records = readings.height + p1_rejects.height
    systems = _systems(lake).select("meter_id", "system_id")
    frame = readings.join(systems, on="meter_id", how="left").with_columns(
        # the DSMR season flag of 0-0:1.0.0 (S = summer time, W = winter time), kept for audit
        pl.col("raw_telegram").str.extract(r"0-0:1\.0\.0\(\d{12}([SW])\)").alias("dst_flag"),
        pl.when(pl.col("system_id").is_null()).then(pl.lit("unknown_meter"))
        .when(pl.col("ts_utc") > future_limit(now)).then(pl.lit("future_timestamp"))
        .otherwise(None).alias("_reason")
    )
    del readings
    # bytes that were not UTF-8 (replaced by U+FFFD on reading) are reported as such, even
    # when the CRC happened to match or failed because of them
    undecodable = pl.col("raw_telegram").str.contains("\ufffd", literal=True)
    frame = frame.with_columns(pl.when(undecodable).then(pl.lit("invalid_encoding")).otherwise(pl.col("_reason")).alias("_reason"))
    bad = pl.col("_reason").is_not_null()
    p1_rejects = p1_rejects.with_columns(
        pl.when(pl.col("raw_text").str.contains("\ufffd", literal=True)).then(pl.lit("invalid_encoding"))
        .otherwise(pl.col("reason")).alias("reason"))
    rejects = pl.concat([
        p1_rejects.select("source_file", "line_no", "raw_text", "reason"),
        rejects_from(frame.filter(bad), pl.col("_reason"), raw_col="raw_telegram"),
    ])
    good = _stamp(frame.filter(~bad), now)
    del frame
    return lambda: _finish(lake, T.METER_READINGS, report, good, rejects, now, files=read)


def land_device(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime | None = None) -> LandingReport:
    """Land ``<landing>/device/<day>/<em_id>.jsonl`` into ``bronze/device_readings``."""
    return _prepare_device(lake, Path(landing_root), days, now or _utc_now())()


def _prepare_device(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime,
                    loaded: Loaded | None = None) -> Commit:
    files, lb = loaded or _load(landing_root, "device", days)
    report = LandingReport("device", _label(days), files=len(files), days=len(days))
    read = _files_read(files)
    parsed = parse_device_buffer(lb, _systems(lake).select("em_id", "system_id"), now)
    del lb
    report.records = parsed.records  # encoding rejects included
    rejects = parsed.rejects
    good = _stamp(parsed.good, now)
    return lambda: _finish(lake, T.DEVICE_READINGS, report, good, rejects, now, files=read)


def land_weather(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime | None = None) -> LandingReport:
    """Land ``<landing>/weather/<day>/*.txt`` (KNMI hourly layout) into ``bronze/weather``."""
    return _prepare_weather(lake, Path(landing_root), days, now or _utc_now())()


def _prepare_weather(lake: Lake, landing_root: Path, days: Sequence[str], now: dt.datetime,
                     loaded: Loaded | None = None) -> Commit:
    files, _ = loaded or _load(landing_root, "weather", days)
    report = LandingReport("weather", _label(days), files=len(files), days=len(days))
    read = _files_read(files)
    lines, enc_rejects = read_lines(files)
    stations = lake.read(T.STATIONS.name).get_column("station_id") if lake.exists(T.STATIONS.name) else None
    parsed: Parsed = parse_knmi_lines(lines, stations)
    report.records = parsed.records + enc_rejects.height
    rejects = pl.concat([enc_rejects, parsed.rejects])
    good = _stamp(parsed.good, now)
    return lambda: _finish(lake, T.WEATHER, report, good, rejects, now, files=read)


#: a landing group's files and what was read from them (None: the preparer reads them itself)
Loaded = tuple[list[tuple[str, Path]], object]
#: how each source's files are read before parsing (weather: small, read by its preparer)
_READERS: dict[str, Callable] = {"inverter": LineBuffer.read, "device": LineBuffer.read, "meter": read_buffer}


#: the sources whose groups :func:`land_groups` reads on a thread of their own, ahead of parsing
_READ_AHEAD = {"inverter", "device"}


def _load(landing_root: Path, source: str, days: Sequence[str]) -> Loaded:
    """List and read one landing group's files (the read half of a preparer)."""
    files = landing_files(landing_root, source, days)
    reader = _READERS.get(source)
    return files, (reader(files) if reader else None)


LANDERS = {"inverter": land_inverter, "meter": land_meter, "device": land_device, "weather": land_weather}
#: the read/parse half of each lander (no lake writes; reads only the registry tables)
_PREPARERS = {"inverter": _prepare_inverter, "meter": _prepare_meter, "device": _prepare_device,
              "weather": _prepare_weather}


def _label(days: Sequence[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"


def land(lake: Lake, landing_root: Path, source: str, days: str | Sequence[str],
         now: dt.datetime | None = None) -> LandingReport:
    """Land one source for one landing day or a list of them; see the module docstring."""
    days = [days] if isinstance(days, str) else list(days)
    report = _scrub(lake, Path(landing_root), days, LANDERS[source](lake, Path(landing_root), days, now))
    log.info(report.summary())
    return report


def _scrub(lake: Lake, root: Path, days: Sequence[str], report: LandingReport) -> LandingReport:
    """After landing found records of erased subjects (``report.erased``): remove them from the
    landing files of this source and these days as well, so the raw copy goes too
    (:func:`wattlake.privacy.scrub_landing`)."""
    if report.erased:
        from wattlake.privacy import scrub_landing

        done = scrub_landing(lake, root, days, folders=(report.source,))
        report.scrubbed_files = done.files_deleted + done.files_rewritten
        report.scrubbed_lines = done.lines_removed
    return report


def land_groups(lake: Lake, landing_root: Path, source: str, groups: Iterable[Sequence[str]],
                now: dt.datetime | None = None, prefetch: bool = True,
                readahead: bool = True) -> Iterator[LandingReport]:
    """Land several groups of landing days (e.g. :func:`iter_chunk_days`) in order; yield each report.

    The result is the same as ``land`` called group by group, in order. With ``prefetch`` three
    groups are in progress at once, each on its own thread: the group after next is read from
    disk (:func:`_load`), the next one decoded and validated, and the current one flagged,
    inserted and counted (reading, the parsers, Polars and delta-rs release the GIL). Reading
    and parsing touch nothing that landing writes (only the registry), and everything that
    depends on earlier groups (the counter before a batch, the keys already present) happens in
    the commits, which run one after the other in group order. At most three groups are in
    memory at a time. With ``readahead`` the kernel is also asked to read the group after those
    from disk (:func:`~wattlake.parsing.lines.advise_willneed`): page cache, not process memory.
    ``groups`` may be a lazy iterable: it is consumed on a background thread, ahead of landing.
    """
    root = Path(landing_root)
    prepare = _PREPARERS[source]
    plan = _Plan(groups, name=f"plan-{source}")

    def start(days: list[str], loaded=None) -> Commit:
        return prepare(lake, root, days, now or _utc_now(), loaded=loaded.result() if loaded else None)

    def finish(commit: Commit, days: list[str]) -> LandingReport:
        report = _scrub(lake, root, days, commit())
        log.info(report.summary())
        return report

    def planned(k: int) -> list[str] | None:  # a planning error is raised by the landing loop, not here
        try:
            return plan.get(k)
        except Exception:
            return None

    def warm(k: int) -> None:  # let the kernel read group k from disk while earlier groups work
        def advise() -> None:
            days = planned(k)
            if days is not None:
                advise_willneed([p for _, p in landing_files(root, source, days)])

        if readahead:
            threading.Thread(target=advise, name=f"readahead-{source}", daemon=True).start()

    current = plan.get(0)
    if current is None:
        return
    if not prefetch:
        k = 0
        while current is not None:
            yield finish(start(current), current)
            k += 1
            current = plan.get(k)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"land-{source}") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"read-{source}") as reader:
        reads = {}
        # the kernel reads ahead of the furthest group being read into memory: the group after
        # next with a read thread, else the next one (read by the parse thread)
        lead = 2 if source in _READ_AHEAD else 1

        def read_ahead(k: int) -> None:  # group k's files into memory, on the read thread
            days = planned(k) if source in _READ_AHEAD else None
            if days is not None:
                reads[k] = reader.submit(_load, root, source, days)

        read_ahead(0)
        pending = pool.submit(start, current, reads.pop(0, None))
        read_ahead(1)
        warm(lead)
        k, failed = 0, None
        while current is not None:
            commit = pending.result()
            try:
                following = plan.get(k + 1)
            except Exception as exc:  # the groups before the failure still land
                following, failed = None, exc
            if following is not None:
                pending = pool.submit(start, following, reads.pop(k + 1, None))
                read_ahead(k + 2)
                warm(k + 1 + lead)
            report = finish(commit, current)
            del commit
            yield report
            current, k = following, k + 1
        if failed is not None:
            raise failed
