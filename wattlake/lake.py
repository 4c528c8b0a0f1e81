"""The lakehouse root: one URI, local folder or ``s3://bucket/prefix``, and all Delta I/O.

Every table of DESIGN.md section 2 lives at ``<root>/<layer>/<name>``. Code never builds
table paths or storage options itself; it asks a :class:`Lake` so the same assets, CLI and
notebooks run unchanged on a local disk and on S3.

Concurrency on S3: delta-rs 1.x commits a new log entry with a conditional PUT
(``If-None-Match: *``); a writer that loses the race re-reads the log and retries, so two
concurrent writers never overwrite each other's commit. No DynamoDB lock table is used and
``AWS_S3_ALLOW_UNSAFE_RENAME`` must never be set.

Credentials come from the standard AWS environment variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL``). They are passed to delta-rs but never logged: :meth:`Lake.__repr__`
and :meth:`Lake.describe` show only the root URI and the endpoint.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

#: what the write methods take: a Polars frame or an Arrow table
Frame = pl.DataFrame | pa.Table

DEFAULT_ROOT = "./lakehouse"


class MergeResult(NamedTuple):
    """Rows a MERGE inserted and the table version it committed (or found, if nothing to do)."""

    inserted: int
    version: int


class LakeError(RuntimeError):
    """A lake operation failed; the message names the table, never a credential."""


def _env_storage_options(env: Mapping[str, str]) -> dict[str, str]:
    """delta-rs object-store options from the standard AWS environment variables."""
    opts: dict[str, str] = {}
    mapping = {
        "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN": "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3": "AWS_ENDPOINT_URL",
    }
    for env_name, opt in mapping.items():
        if env.get(env_name):
            opts[opt] = env[env_name]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    opts["AWS_REGION"] = region or "us-east-1"
    endpoint = opts.get("AWS_ENDPOINT_URL", "")
    if endpoint.startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


@dataclass
class Lake:
    """A lakehouse root and the Delta operations the pipeline needs.

    Parameters
    ----------
    root : str
        ``./lakehouse``, any local path, or ``s3://bucket/prefix``.
    storage_options : dict, optional
        delta-rs object-store options; by default read from the AWS environment for S3 roots.
    """

    root: str = DEFAULT_ROOT
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/") or "/"
        if self.is_s3:
            if not self.storage_options:
                self.storage_options = _env_storage_options(os.environ)
        else:
            self.root = str(Path(self.root).expanduser().resolve())

    @classmethod
    def from_env(cls, root: str | None = None) -> "Lake":
        """The lake named by ``root``, else ``$WATTLAKE_LAKE``, else ``./lakehouse``."""
        return cls(root or os.environ.get("WATTLAKE_LAKE") or DEFAULT_ROOT)

    # ------------------------------------------------------------------ naming
    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://") or self.root.startswith("s3a://")

    def uri(self, table: str) -> str:
        """Full URI of a table given as ``layer/name`` (e.g. ``bronze/inverter_readings``)."""
        return f"{self.root}/{table.strip('/')}"

    def describe(self) -> str:
        """A log-safe description: root and endpoint, never credentials."""
        endpoint = self.storage_options.get("AWS_ENDPOINT_URL")
        return f"{self.root}" + (f" (endpoint {endpoint})" if endpoint else "")

    def __repr__(self) -> str:  # never show storage options: they hold secrets
        return f"Lake({self.describe()!r})"

    # ------------------------------------------------------------------ reading
    def exists(self, table: str) -> bool:
        try:
            DeltaTable(self.uri(table), storage_options=self._so())
            return True
        except TableNotFoundError:
            return False

    def table(self, table: str, version: int | None = None) -> DeltaTable:
        """The Delta table, at ``version`` if given (time travel)."""
        try:
            return DeltaTable(self.uri(table), version=version, storage_options=self._so())
        except Exception as exc:  # the table is missing, or it is there and that version is not
            current = self.version(table) if version is not None else None
            if current is None:
                if isinstance(exc, TableNotFoundError):
                    raise LakeError(f"table {table!r} does not exist in lake {self.describe()}") from exc
                raise
            # delta-rs reports a purged version's missing log as "table not found"
            raise LakeError(f"table {table!r} has no version {version} (the current one is {current}; older "
                            "versions are gone once an erasure or retention purged the history)") from exc

    def version(self, table: str) -> int | None:
        """Current version of a table, or None if it does not exist."""
        try:
            return self.table(table).version()
        except LakeError:
            return None

    def scan(self, table: str, version: int | None = None) -> pl.LazyFrame:
        """A Polars lazy frame over the table (filters push down to the Delta scan).

        Read by Polars' own Delta/Parquet reader, not through a PyArrow dataset: delta-rs 1.6.6
        writes the string columns of the files its MERGE, DELETE and UPDATE produce as Arrow
        ``string_view``, next to ``string`` files from plain writes, and PyArrow has no
        comparison kernels for ``string_view``, so any string filter pushed into a PyArrow
        dataset fails on such a table (``tests/test_lake.py``).
        """
        return pl.scan_delta(self.table(table, version))

    def read(self, table: str, version: int | None = None, filter: pl.Expr | None = None) -> pl.DataFrame:
        """Read a table into a Polars frame, optionally filtered."""
        lf = self.scan(table, version)
        if filter is not None:
            lf = lf.filter(filter)
        return lf.collect()

    def read_arrow(self, table: str, version: int | None = None) -> pa.Table:
        return self.table(table, version).to_pyarrow_table()

    def tables(self) -> list[str]:
        """Every Delta table under the root, as ``layer/name`` (local and S3)."""
        found: list[str] = []
        from wattlake.tables import TABLES

        for name in TABLES:
            if self.exists(name):
                found.append(name)
        return found

    # ------------------------------------------------------------------ writing
    def ensure(self, table: str, schema: pa.Schema, partition_by: Iterable[str] = (),
               configuration: Mapping[str, str] | None = None) -> DeltaTable:
        """Open the table, creating it empty with ``schema`` if it does not exist.

        Two writers creating the same table at once is safe: the loser's version-0 commit
        fails on the conditional write and it then opens the winner's table.
        """
        try:
            return DeltaTable(self.uri(table), storage_options=self._so())
        except TableNotFoundError:
            pass
        try:
            write_deltalake(
                self.uri(table), schema.empty_table(), mode="append",
                partition_by=list(partition_by) or None,
                configuration=dict(configuration or {}) or None,
                storage_options=self._so(),
            )
        except Exception as exc:  # lost a creation race: the table now exists
            if not self.exists(table):
                raise LakeError(f"could not create table {table!r}: {type(exc).__name__}") from exc
        return self.table(table)

    def merge_insert(self, table: str, data: pa.Table | pl.DataFrame, keys: Iterable[str],
                     schema: pa.Schema, partition_by: str | None = "day",
                     configuration: Mapping[str, str] | None = None,
                     writer_properties: WriterProperties | None = None, by_merge: bool = False,
                     narrow_by: str | None = None) -> MergeResult:
        """Insert rows whose natural key is not yet in the table.

        ``data`` must already be free of duplicate keys. Returns the rows inserted and the table
        version after the commit (one commit, or none when every row is present).

        A partitioned table takes no MERGE. The keys alone of the batch's partitions that
        already hold files are read (a narrow read: delta-rs' MERGE reads every column of the
        files it scans, a day of raw telegrams to find a handful of keys) and the rows present
        dropped; the rest is appended in one commit that carries the Delta application
        transaction ``wattlake.merge_insert:<table>``. Every insert into the table carries it,
        so when another insert committed after the snapshot this one read, delta-rs refuses the
        commit ("concurrent transaction") and the insert is re-run on the newer version, where
        the other writer's rows are present and dropped. Two writers can therefore never insert
        the same key twice, in new or in existing partitions. That costs an append: 0.41 against
        0.57 CPU-seconds for the MERGE of 863 k inverter rows (2026-11-24).

        With ``by_merge`` the rows not present are written by a MERGE that scans no target
        files, with the same transaction: for rows of long text (raw P1 telegrams) delta-rs'
        MERGE writer took 19.6-21.0 s where the append took 21.3-22.9 s to land 30 days of 1,000
        meters (2026-11-24). An unpartitioned table always takes a MERGE on the key columns (the
        MERGE's own conflict check). No path writes a data value into the transaction log (see
        the erasure design).

        ``narrow_by`` names a key column that, in a batch, often holds one value (the ``source``
        of ``bronze/landed_files`` and ``bronze/quarantine``, which share day partitions among
        the sources). When it does, the present keys are read only from the files whose column
        statistics admit that value: landing a year of weather no longer reads the names of the
        73 k meter and device files of the same days (0.42 s at 100 homes).
        """
        _check_columns(data, schema)
        dt = self.ensure(table, schema, [partition_by] if partition_by else (), configuration)
        if len(data) == 0:
            return MergeResult(0, dt.version())
        keys = list(keys)
        cond = " AND ".join(f"t.{k} = s.{k}" for k in keys)

        def build(t: DeltaTable):
            if partition_by:
                # rows already present are dropped before the Arrow export: a Polars filter runs
                # on all cores, pyarrow's one column at a time (0.13 s per 840 k inverter rows)
                src = _drop_present(t, data, keys, partition_by, narrow_by)
                if not by_merge or len(src) == 0:
                    return _ExclusiveAppend(t, table, _to_arrow(src, schema), writer_properties)
                return (t.merge(_to_arrow(src, schema), predicate=cond + _in_literals(partition_by, ()),
                                source_alias="s", target_alias="t", writer_properties=writer_properties,
                                commit_properties=_insert_commit(table, t))
                        .when_not_matched_insert_all())
            return (t.merge(_to_arrow(data, schema), predicate=cond, source_alias="s", target_alias="t",
                            writer_properties=writer_properties)
                    .when_not_matched_insert_all())

        metrics, version = self._merge(table, dt, build)
        return MergeResult(int(metrics["num_target_rows_inserted"]), version)

    def merge_upsert(self, table: str, data: pa.Table | pl.DataFrame, keys: Iterable[str],
                     schema: pa.Schema, updates: Mapping[str, str], partition_by: str | None = "day",
                     configuration: Mapping[str, str] | None = None) -> MergeResult:
        """MERGE: update matched rows with SQL ``updates`` (target ``t``, source ``s``), insert the rest."""
        arrow = _to_arrow(data, schema)
        dt = self.ensure(table, schema, [partition_by] if partition_by else (), configuration)
        if arrow.num_rows == 0:
            return MergeResult(0, dt.version())
        cond = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        if partition_by:
            cond += _partition_literals(arrow, partition_by)
        metrics, version = self._merge(
            table, dt, lambda t: t.merge(arrow, predicate=cond, source_alias="s", target_alias="t")
            .when_matched_update(dict(updates)).when_not_matched_insert_all())
        return MergeResult(int(metrics["num_target_rows_inserted"]), version)

    def _merge(self, table: str, dt: DeltaTable, build, attempts: int = 8) -> tuple[dict, int]:
        """Execute a MERGE; when a concurrent writer committed first, reopen and run it again.

        MERGEs here are idempotent (insert-if-absent, least/greatest updates), so re-running
        one against the newer table version is correct.
        """
        for attempt in range(attempts):
            try:
                metrics = build(dt).execute()
                return metrics, dt.version()
            except CommitFailedError:
                if attempt == attempts - 1:
                    raise LakeError(f"table {table!r}: gave up after {attempts} conflicting commits")
                time.sleep(0.05 * 2**attempt * (1 + random.random()))
                dt = self.table(table)
        raise AssertionError("unreachable")

    def overwrite(self, table: str, data: pa.Table | pl.DataFrame, schema: pa.Schema,
                  partition_by: str | None = None, predicate: str | None = None,
                  configuration: Mapping[str, str] | None = None,
                  writer_properties: WriterProperties | None = None) -> int:
        """Replace a table's content (or the rows matching ``predicate``) atomically."""
        arrow = _to_arrow(data, schema)
        self.ensure(table, schema, [partition_by] if partition_by else (), configuration)
        write_deltalake(
            self.uri(table), arrow, mode="overwrite", predicate=predicate,
            partition_by=[partition_by] if partition_by else None,
            storage_options=self._so(), writer_properties=writer_properties,
        )
        return arrow.num_rows

    def append(self, table: str, data: pa.Table | pl.DataFrame, schema: pa.Schema,
               partition_by: str | None = None,
               configuration: Mapping[str, str] | None = None) -> int:
        """Append rows (for logs such as quarantine, where every row is its own event)."""
        arrow = _to_arrow(data, schema)
        self.ensure(table, schema, [partition_by] if partition_by else (), configuration)
        if arrow.num_rows:
            write_deltalake(self.uri(table), arrow, mode="append",
                            partition_by=[partition_by] if partition_by else None,
                            storage_options=self._so())
        return arrow.num_rows

    def delete(self, table: str, predicate: str) -> int:
        """Delete the rows matching a SQL ``predicate``; returns the number deleted.

        The predicate is written into the transaction log (commitInfo): pass predicates over
        pseudonymous ids or dates only, never personal data.
        """
        metrics = self.table(table).delete(predicate)
        return int(metrics.get("num_deleted_rows", 0))

    def vacuum(self, table: str, retention_hours: int = 0) -> list[str]:
        """Physically remove data files no longer referenced by versions newer than ``retention_hours``.

        ``retention_hours=0`` removes every file the current version does not read (time travel
        to older versions is then lost): that is what erasure and retention need.
        """
        return self.table(table).vacuum(retention_hours=retention_hours, dry_run=False,
                                        enforce_retention_duration=False)

    def update(self, table: str, updates: Mapping[str, str], predicate: str) -> int:
        """UPDATE rows matching a SQL ``predicate`` (dates/pseudonymous ids only: it is logged)."""
        metrics = self.table(table).update(updates=dict(updates), predicate=predicate)
        return int(metrics.get("num_updated_rows", 0))

    def purge_history(self, table: str, orphan_hours: int = 1) -> dict:
        """Make the current version the only one: removed values become physically unrecoverable.

        1. VACUUM (retention 0): delete every data file the current version does not read, then a
           full VACUUM for files no commit ever referenced that are older than ``orphan_hours``
           (younger ones may belong to a writer that has not committed yet). Both commit a
           VACUUM START/END entry that holds counts only.
        2. Checkpoint the current version, then delete every older commit JSON and checkpoint, with
           their per-file statistics and DELETE/MERGE predicates (what ``cleanup_metadata`` does
           with a zero ``delta.logRetentionDuration``, without changing the table's properties:
           ``alter.set_table_properties`` hangs against some S3 servers in delta-rs 1.6.6).

        3. On an S3 bucket that keeps object versions (versioning enabled or suspended), delete
           every noncurrent version and delete marker under the table's prefix
           (:meth:`_delete_old_versions`): a deleted or overwritten object otherwise stays
           readable by its version id, and the erased values with it.

        Time travel to versions before the checkpoint is lost; the checkpoint version and later
        ones read as before. Safe to re-run after a crash at any step.
        """
        removed = self.table(table).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
        orphans = self.table(table).vacuum(retention_hours=orphan_hours, dry_run=False,
                                           enforce_retention_duration=False, full=True)
        dt = self.table(table)
        version = dt.version()
        dt.create_checkpoint()
        logs = self._delete_log_before(table, version)
        return {"files_removed": len(removed) + len(orphans), "log_files_removed": logs,
                "checkpoint_version": version, "object_versions_removed": self._delete_old_versions(table)}

    def _delete_log_before(self, table: str, version: int) -> int:
        """Delete ``_delta_log`` commits and checkpoints older than ``version`` (local or S3)."""
        prefix = f"{table.strip('/')}/_delta_log/"
        if self.is_s3:
            s3, bucket, base = self._s3()
            full = f"{base}/{prefix}".lstrip("/")
            keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=full)
                    for o in page.get("Contents", [])]
            old = [k for k in keys if _log_version(k.rsplit("/", 1)[-1]) is not None
                   and _log_version(k.rsplit("/", 1)[-1]) < version]
            for i in range(0, len(old), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in old[i:i + 1000]]})
            return len(old)
        log_dir = Path(self.uri(table)) / "_delta_log"
        old = [p for p in log_dir.iterdir() if _log_version(p.name) is not None and _log_version(p.name) < version]
        for p in old:
            p.unlink()
        return len(old)

    def _s3(self):
        """(boto3 S3 client, bucket, key prefix of the root without slashes) of an S3 lake, with
        the lake's own storage options."""
        import boto3

        so = self.storage_options
        bucket, _, base = self.root.split("://", 1)[1].partition("/")
        client = boto3.client("s3", endpoint_url=so.get("AWS_ENDPOINT_URL"), region_name=so.get("AWS_REGION"),
                              aws_access_key_id=so.get("AWS_ACCESS_KEY_ID"),
                              aws_secret_access_key=so.get("AWS_SECRET_ACCESS_KEY"),
                              aws_session_token=so.get("AWS_SESSION_TOKEN"))
        return client, bucket, base.strip("/")

    def _delete_old_versions(self, table: str) -> int:
        """On an S3 bucket that keeps object versions, delete every noncurrent object version under
        ``table``'s prefix, then every delete marker (by then no older version is left behind one,
        so no deleted object comes back); returns the number deleted. 0 on local disk and on a
        bucket that never had versioning. A version that cannot be deleted (no
        ``s3:DeleteObjectVersion`` permission, object lock) is a :class:`LakeError`: the values in it
        would stay recoverable."""
        if not self.is_s3:
            return 0
        s3, bucket, base = self._s3()
        if s3.get_bucket_versioning(Bucket=bucket).get("Status") not in ("Enabled", "Suspended"):
            return 0
        prefix = f"{base}/{table.strip('/')}/".lstrip("/")

        def listed(kind: str) -> list[dict]:
            return [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
                    for v in page.get(kind, []) if kind == "DeleteMarkers" or not v["IsLatest"]]

        done = 0
        for kind in ("Versions", "DeleteMarkers"):  # old versions first, then the markers over them
            items = listed(kind)
            for i in range(0, len(items), 1000):  # DeleteObjects takes at most 1,000 keys
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": items[i:i + 1000], "Quiet": True})
                if answer.get("Errors"):
                    codes = sorted({e.get("Code", "?") for e in answer["Errors"]})
                    raise LakeError(f"table {table!r}: {len(answer['Errors'])} old object versions could not be "
                                    f"deleted ({', '.join(codes)}); the bucket keeps versions, so removed values "
                                    "stay recoverable until they are deleted")
            done += len(items)
        return done

    def check_root(self) -> bool:
        """Whether the lake root holds anything; on S3 a clear :class:`LakeError` (no credentials,
        no S3 error text) when the bucket is missing, the endpoint cannot be reached or the
        credentials are refused."""
        if not self.is_s3:
            return Path(self.root).is_dir()
        from botocore.exceptions import BotoCoreError, ClientError

        s3, bucket, base = self._s3()
        endpoint = self.storage_options.get("AWS_ENDPOINT_URL") or "AWS"
        try:
            answer = s3.list_objects_v2(Bucket=bucket, Prefix=f"{base}/" if base else "", MaxKeys=1)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            if code == "NoSuchBucket":
                raise LakeError(f"bucket {bucket!r} does not exist at {endpoint}") from None
            raise LakeError(f"S3 at {endpoint} refused to list bucket {bucket!r} ({code}): check the "
                            "credentials and permissions in the environment") from None
        except BotoCoreError as exc:
            raise LakeError(f"cannot reach S3 at {endpoint} ({type(exc).__name__})") from None
        return answer.get("KeyCount", 0) > 0

    def compact(self, table: str) -> dict:
        """OPTIMIZE: rewrite small files into larger ones (the data and its versions are unchanged)."""
        return self.table(table).optimize.compact()

    def _so(self) -> dict[str, str] | None:
        return self.storage_options or None


_LOG_FILE = re.compile(r"^(\d{20})\.(json|crc|checkpoint(\.\d+\.\d+)?\.parquet|\d{20}\.compacted\.json)$")


def _log_version(name: str) -> int | None:
    """The version of a ``_delta_log`` commit/checkpoint file name, None for anything else."""
    m = _LOG_FILE.match(name)
    return int(m.group(1)) if m else None


def _partition_literals(arrow: pa.Table, column: str) -> str:
    """`` AND t.<column> IN (...)`` with the batch's partition values, so MERGE prunes files."""
    return _in_literals(column, pc.unique(arrow.column(column)).to_pylist())


#: a partition value no table has: ``IN (<it>)`` lets a MERGE scan nothing
_NO_PARTITION = "0001-01-01"


def _in_literals(column: str, values: Iterable) -> str:
    """`` AND t.<column> IN (...)`` for partition ``values`` (none: a value that matches nothing)."""
    text = sorted(str(v) for v in values) or [_NO_PARTITION]
    return f" AND t.{column} IN ({', '.join(repr(v) for v in text)})"


class _ExclusiveAppend:
    """The write of :meth:`Lake.merge_insert` on a partitioned table: an append of the rows not
    yet present, committed against the snapshot of ``dt`` with the application transaction
    :data:`INSERT_APP_ID` ``+ table``, which any other insert into the table also commits, so the
    later of two concurrent inserts fails (and is re-run); the metrics of the MERGE it replaces."""

    def __init__(self, dt: DeltaTable, table: str, arrow: pa.Table, writer_properties: WriterProperties | None):
        self.dt, self.table, self.arrow, self.writer_properties = dt, table, arrow, writer_properties

    def execute(self) -> dict:
        if self.arrow.num_rows:
            write_deltalake(self.dt, self.arrow, mode="append", writer_properties=self.writer_properties,
                            commit_properties=_insert_commit(self.table, self.dt))
            self.dt.update_incremental()
        return {"num_target_rows_inserted": self.arrow.num_rows}


#: the Delta application-transaction id prefix of :meth:`Lake.merge_insert` (+ the table name)
INSERT_APP_ID = "wattlake.merge_insert:"


def _insert_commit(table: str, dt: DeltaTable) -> CommitProperties:
    """The commit properties of an insert into ``table`` against the snapshot of ``dt``: the
    application transaction :data:`INSERT_APP_ID` ``+ table``, versioned as the commit it makes."""
    return CommitProperties(app_transactions=[Transaction(INSERT_APP_ID + table, dt.version() + 1)])


def _drop_present(dt: DeltaTable, data: Frame, keys: list[str], partition: str,
                  narrow_by: str | None = None) -> Frame:
    """Rows of ``data`` whose key is not yet in ``dt``.

    Only the key columns of the batch's partitions that already hold files are read (a narrow
    read; nothing is read for new partitions). When the key column ``narrow_by`` holds one value
    in all of ``data``, only rows with that value can match, and the files whose statistics rule
    it out are not opened. ``data`` comes back as the kind it went in (Polars or Arrow),
    unfiltered when nothing is present.
    """
    polars_in = isinstance(data, pl.DataFrame)
    values = (data.get_column(partition).unique().to_list() if polars_in
              else pc.unique(data.column(partition)).to_pylist())
    actions = pa.table(dt.get_add_actions(flatten=True))
    held = set(actions.column(f"partition.{partition}").to_pylist())
    old = [v for v in values if v in held]
    if not old:
        return data
    cols = list(dict.fromkeys([*keys, partition]))
    dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[(partition, "in", [str(v) for v in old])])
    if narrow_by is not None:
        one = (data.get_column(narrow_by) if polars_in else pl.from_arrow(data.column(narrow_by))).unique()
        admit = (_files_admitting(actions, narrow_by, one[0])
                 if one.len() == 1 and one.null_count() == 0 and isinstance(one[0], str) else None)
        if admit is not None:
            # the files are chosen from the log's statistics, not by a PyArrow filter on the
            # column: files that delta-rs' UPDATE, DELETE or MERGE wrote hold string_view
            # columns, which PyArrow's compute functions cannot compare (delta-rs #4579)
            fragments = [f for f in dataset.get_fragments() if os.path.basename(f.path) in admit]
            dataset = pads.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    present = pl.from_arrow(dataset.to_table(columns=cols, filter=pc.field(partition).isin(old)))
    if present.height == 0:
        return data
    # only the batch's rows in those partitions can be present: a semi join of them finds the
    # rows to drop (the batch's other days, most of it, are neither hashed nor probed)
    batch = (data.select(cols) if polars_in else pl.from_arrow(data.select(cols))).with_row_index("_row")
    batch = batch.filter(pl.col(partition).is_in(pl.Series(old, dtype=batch.schema[partition])))
    rows = (batch.select("_row", *(pl.col(c).cast(present.schema[c]) for c in cols))
            .join(present, on=cols, how="semi").get_column("_row").to_numpy())
    if rows.size == 0:
        return data
    keep = np.ones(len(data), dtype=np.bool_)
    keep[rows] = False
    return data.filter(pl.Series(keep)) if polars_in else data.filter(pa.array(keep))


def _files_admitting(actions: pa.Table, column: str, value: str) -> set[str] | None:
    """File names (basenames) of the add ``actions`` whose min/max statistics of the text
    ``column`` admit ``value``; None when the log has no statistics of it (every file may). A
    file without statistics is admitted, and so is one whose maximum is a prefix of ``value``
    (a maximum may be truncated)."""
    lo_name, hi_name = f"min.{column}", f"max.{column}"
    if lo_name not in actions.column_names or hi_name not in actions.column_names:
        return None
    return {os.path.basename(path)
            for path, lo, hi in zip(actions.column("path").to_pylist(), actions.column(lo_name).to_pylist(),
                                    actions.column(hi_name).to_pylist())  # loop over files, not rows
            if lo is None or hi is None or (lo <= value and (value <= hi or value.startswith(hi)))}


def _check_columns(data: Frame, schema: pa.Schema) -> None:
    names = data.columns if isinstance(data, pl.DataFrame) else data.column_names
    missing = [f.name for f in schema if f.name not in names]
    if missing:
        raise LakeError(f"data lacks columns {missing} of the table schema")


def _to_arrow(data: Frame, schema: pa.Schema) -> pa.Table:
    """Cast to the table schema, column order and types; a missing column is an error."""
    _check_columns(data, schema)
    arrow = (data.select(schema.names).to_arrow() if isinstance(data, pl.DataFrame)
             else data.select(schema.names))
    # polars writes large_string; Delta keeps string: cast column by column to the schema
    return arrow.cast(schema)
