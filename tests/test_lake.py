"""The lake storage layer on a real local Delta table and on a real S3-protocol server."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from wattlake.lake import Lake, LakeError

SCHEMA = pa.schema([("system_id", pa.string()), ("ts_utc", pa.timestamp("us", tz="UTC")),
                    ("day", pa.date32()), ("value", pa.float64()), ("secret_note", pa.string())])
CONF = {"delta.dataSkippingStatsColumns": "day,ts_utc,system_id"}


def rows(ids, day=dt.date(2025, 6, 1), offset=0):
    ts = [dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=5 * i)
          for i in range(offset, offset + len(ids))]
    return pl.DataFrame({"system_id": ids, "ts_utc": ts, "day": [day] * len(ids),
                         "value": [float(i) for i in range(len(ids))], "secret_note": ["Jan Jansen"] * len(ids)})


def test_merge_insert_is_idempotent_and_counts(local_lake):
    batch = rows(["a", "b", "c"])
    assert local_lake.merge_insert("bronze/t", batch, ["system_id", "ts_utc"], SCHEMA, configuration=CONF).inserted == 3
    v = local_lake.version("bronze/t")
    assert local_lake.merge_insert("bronze/t", batch, ["system_id", "ts_utc"], SCHEMA, configuration=CONF).inserted == 0
    more = pl.concat([batch, rows(["d"], offset=7)])
    assert local_lake.merge_insert("bronze/t", more, ["system_id", "ts_utc"], SCHEMA, configuration=CONF).inserted == 1
    out = local_lake.read("bronze/t").sort("system_id")
    assert out.get_column("system_id").to_list() == ["a", "b", "c", "d"]
    assert local_lake.version("bronze/t") >= v
    # time travel to the first version still shows three rows
    assert local_lake.read("bronze/t", version=1).height == 3


@pytest.mark.parametrize("kind", ["polars", "arrow", "polars_ns"])
def test_merge_insert_into_partitions_with_data_reads_keys_not_rows(local_lake, monkeypatch, kind):
    """A batch spanning a partition that holds data and a new one: present keys are dropped by a
    narrow key read, only the rest is written, and the counts are exact. The batch may be a
    Polars frame (filtered before the Arrow export, key types cast to the table's), or an Arrow
    table."""
    import wattlake.lake as lake_mod

    keys = ["system_id", "ts_utc"]
    june1, june2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)
    local_lake.merge_insert("bronze/t", rows(["a", "b", "c"], day=june1), keys, SCHEMA, configuration=CONF)
    writes = []
    real_write = lake_mod.write_deltalake

    def spy(table, data, **kw):
        writes.append((kw["mode"], sorted(pa.table(data).column("system_id").to_pylist())))
        return real_write(table, data, **kw)

    monkeypatch.setattr(lake_mod, "write_deltalake", spy)
    # b and c are present on June 1; d is new on June 1; e and f land in the new June 2
    batch = pl.concat([rows(["b", "c"], day=june1, offset=1), rows(["d"], day=june1, offset=9),
                       rows(["e", "f"], day=june2)])
    if kind == "arrow":
        batch = batch.to_arrow().cast(SCHEMA)
    elif kind == "polars_ns":  # a key column in another unit than the table's
        batch = batch.with_columns(pl.col("ts_utc").dt.cast_time_unit("ns"))
    assert local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF).inserted == 3
    assert writes == [("append", ["d", "e", "f"])]
    # everything present: nothing is written, no commit is made
    version = local_lake.version("bronze/t")
    assert local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF) == (0, version)
    assert len(writes) == 1 and local_lake.version("bronze/t") == version
    out = local_lake.read("bronze/t")
    assert out.height == 6 and out.select(pl.struct(keys).n_unique()).item() == 6
    assert sorted(out.get_column("system_id").to_list()) == ["a", "b", "c", "d", "e", "f"]


def test_narrow_by_reads_only_the_files_that_can_hold_the_batch_value(local_lake):
    """Sources share landed_files' day partitions: a batch of one source reads the present keys
    only from files whose statistics admit that source. Proved by removing the other source's
    data file: a read that opened it would fail. A batch of two sources reads every file."""
    schema = pa.schema([("source", pa.string()), ("source_file", pa.string()), ("size_bytes", pa.int64()),
                        ("day", pa.date32())])
    conf = {"delta.dataSkippingStatsColumns": "day,source"}
    keys = ["source", "source_file", "size_bytes"]
    day = dt.date(2025, 6, 1)

    def files(source, names):
        return pl.DataFrame({"source": source, "source_file": [f"{source}/2025-06-01/{n}" for n in names],
                             "size_bytes": 10, "day": day})

    local_lake.merge_insert("bronze/files", files("meter", ["em_1.p1", "em_2.p1"]), keys, schema, configuration=conf)
    local_lake.merge_insert("bronze/files", files("weather", ["knmi.txt"]), keys, schema, configuration=conf)
    [meter_file] = [p for p in Path(local_lake.uri("bronze/files")).rglob("*.parquet")
                    if "em_1" in pl.read_parquet(p).get_column("source_file").str.join("").item()]
    again = files("weather", ["knmi.txt", "knmi-2.txt"])
    # the meter file is never opened: its statistics say source = 'meter'
    saved = meter_file.read_bytes()
    meter_file.unlink()
    assert local_lake.merge_insert("bronze/files", again, keys, schema, configuration=conf,
                                   narrow_by="source").inserted == 1  # knmi.txt was present, dropped
    with pytest.raises(OSError):  # without narrowing the present keys of every source are read
        local_lake.merge_insert("bronze/files", again, keys, schema, configuration=conf)
    meter_file.write_bytes(saved)
    mixed = pl.concat([files("meter", ["em_2.p1", "em_3.p1"]), files("weather", ["knmi.txt"])])
    assert local_lake.merge_insert("bronze/files", mixed, keys, schema, configuration=conf,
                                   narrow_by="source").inserted == 1  # em_2 and knmi.txt present
    out = local_lake.read("bronze/files")
    assert sorted(out.get_column("source_file").str.split("/").list.last().to_list()) == [
        "em_1.p1", "em_2.p1", "em_3.p1", "knmi-2.txt", "knmi.txt"]


def test_narrow_by_reads_files_that_an_update_rewrote(local_lake):
    """delta-rs' UPDATE (retention's) writes string_view columns, which PyArrow cannot compare:
    narrowing picks the files from the log's statistics, never by a PyArrow filter on the column.
    Landing again after retention once failed here ('equal' has no kernel for string_view)."""
    schema = pa.schema([("source", pa.string()), ("source_file", pa.string()), ("line_no", pa.int32()),
                        ("raw_text", pa.string()), ("day", pa.date32())])
    conf = {"delta.dataSkippingStatsColumns": "day,source"}
    keys = ["source", "source_file", "line_no"]
    day = dt.date(2025, 6, 1)

    def rejects(source, lines):
        return pl.DataFrame({"source": source, "source_file": f"{source}/2025-06-01/f", "raw_text": "x",
                             "line_no": pl.Series(lines, dtype=pl.Int32), "day": day})

    local_lake.merge_insert("bronze/q", rejects("meter", [1, 2]), keys, schema, configuration=conf)
    local_lake.merge_insert("bronze/q", rejects("device", [1, 2]), keys, schema, configuration=conf)
    local_lake.update("bronze/q", {"raw_text": "NULL"}, "day = '2025-06-01'")  # as retention does
    assert local_lake.merge_insert("bronze/q", rejects("device", [2, 3]), keys, schema, configuration=conf,
                                   narrow_by="source").inserted == 1
    assert local_lake.merge_insert("bronze/q", rejects("meter", [1, 2, 3, 4]), keys, schema, configuration=conf,
                                   narrow_by="source").inserted == 2
    out = local_lake.read("bronze/q")
    assert out.height == 7 and out.select(pl.struct(keys).n_unique()).item() == 7


def test_merge_insert_is_one_append_that_carries_the_insert_transaction(local_lake):
    """An insert into a partitioned table is one append commit, no MERGE; it carries the Delta
    application transaction of inserts into that table (what makes concurrent inserts conflict)
    and no data value."""
    from wattlake.lake import INSERT_APP_ID

    keys = ["system_id", "ts_utc"]
    local_lake.merge_insert("bronze/t", rows(["a", "b"]), keys, SCHEMA, configuration=CONF)
    before = local_lake.version("bronze/t")
    batch = pl.concat([rows(["c", "d"], day=dt.date(2025, 6, 2)), rows(["e"], offset=5)])
    result = local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF)
    assert result.inserted == 3 and result.version == before + 1 == local_lake.version("bronze/t")
    table = local_lake.table("bronze/t")
    history = table.history(1)[0]
    assert history["operation"] == "WRITE" and history["operationParameters"]["mode"] == "Append"
    assert table.transaction_version(INSERT_APP_ID + "bronze/t") == result.version
    commit = Path(local_lake.uri("bronze/t"), "_delta_log", f"{result.version:020d}.json").read_text()
    assert '"appId":"wattlake.merge_insert:bronze/t"' in commit
    assert "Jan Jansen" not in commit and '"c"' not in commit


def test_merge_writer_inserts_only_the_absent_rows_and_commits_nothing_when_all_are_present(local_lake):
    """``by_merge`` (the table's MERGE writer): the absent rows are inserted in one commit with the
    insert transaction; a batch whose rows are all present makes no commit."""
    from wattlake.lake import INSERT_APP_ID

    keys = ["system_id", "ts_utc"]
    local_lake.merge_insert("bronze/t", rows(["a", "b"]), keys, SCHEMA, configuration=CONF, by_merge=True)
    batch = pl.concat([rows(["a", "b"]), rows(["c"], offset=2), rows(["d"], day=dt.date(2025, 6, 2))])
    result = local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF, by_merge=True)
    assert result.inserted == 2 and result.version == local_lake.version("bronze/t")
    table = local_lake.table("bronze/t")
    assert table.history(1)[0]["operation"] == "MERGE"
    assert table.transaction_version(INSERT_APP_ID + "bronze/t") == result.version
    assert local_lake.merge_insert("bronze/t", batch, keys, SCHEMA, configuration=CONF, by_merge=True) == (0, result.version)
    assert sorted(local_lake.read("bronze/t").get_column("system_id").to_list()) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("by_merge", [False, True], ids=["append", "merge writer"])
@pytest.mark.parametrize("existing", [False, True], ids=["new partition", "existing partition"])
def test_concurrent_inserts_never_insert_a_key_twice(local_lake, monkeypatch, existing, by_merge):
    """Another writer inserts into the table between this writer's look at the present keys and
    its commit, in a day that was new or one that already held rows: the commit is refused as a
    concurrent transaction, the insert is re-run on the newer version, and both writers' rows
    are kept, none twice. The same with the MERGE writer (``by_merge``)."""
    import wattlake.lake as lake_mod

    keys = ["system_id", "ts_utc"]
    day = dt.date(2025, 6, 1) if existing else dt.date(2025, 6, 2)
    local_lake.merge_insert("bronze/t", rows(["a"]), keys, SCHEMA, configuration=CONF)
    other = Lake(local_lake.root)
    real_drop, raced, looks = lake_mod._drop_present, [], []

    def look_then_race(table, data, keys, partition, narrow_by=None):
        looks.append(table.version())
        found = real_drop(table, data, keys, partition, narrow_by)
        if not raced:  # the other writer commits right after this writer looked
            raced.append("racing")
            raced[0] = other.merge_insert("bronze/t", rows(["x", "y"], day=day, offset=20), keys, SCHEMA,
                                          configuration=CONF).inserted
        return found

    monkeypatch.setattr(lake_mod, "_drop_present", look_then_race)
    # y is the same reading the other writer landed (13:45); z is new (13:50)
    mine = rows(["y", "z"], day=day, offset=21)
    assert local_lake.merge_insert("bronze/t", mine, keys, SCHEMA, configuration=CONF, by_merge=by_merge).inserted == 1
    assert raced == [2]
    assert looks == [1, 1, 2]  # this writer at v1, the other at v1, this writer again at v2
    out = local_lake.read("bronze/t").filter(pl.col("day") == day)
    assert out.select(pl.struct(keys).n_unique()).item() == out.height
    assert sorted(out.get_column("system_id").to_list()) == (["a"] if existing else []) + ["x", "y", "z"]


def test_statistics_only_on_listed_columns(local_lake):
    local_lake.merge_insert("bronze/t", rows(["a", "b"]), ["system_id", "ts_utc"], SCHEMA, configuration=CONF)
    logs = "\n".join(p.read_text().strip() for p in Path(local_lake.uri("bronze/t"), "_delta_log").glob("*.json"))
    assert "Jan Jansen" not in logs  # a non-stats column's values never reach the log
    stats = [json.loads(json.loads(line)["add"]["stats"]) for line in logs.splitlines() if '"add"' in line]
    assert stats and all(set(s["minValues"]) <= {"day", "ts_utc", "system_id"} for s in stats)


def test_missing_column_is_a_clear_error(local_lake):
    with pytest.raises(LakeError, match="lacks columns"):
        local_lake.merge_insert("bronze/t", rows(["a"]).drop("value"), ["system_id"], SCHEMA)


def test_reading_a_missing_table_names_it(local_lake):
    with pytest.raises(LakeError, match="bronze/nothing"):
        local_lake.table("bronze/nothing")


def test_repr_never_shows_credentials():
    lake = Lake("s3://b/p", storage_options={"AWS_SECRET_ACCESS_KEY": "hunter2-secret", "AWS_ENDPOINT_URL": "http://x"})
    assert "hunter2" not in repr(lake) and "hunter2" not in lake.describe()


@pytest.mark.s3
def test_s3_merge_and_concurrent_writers(s3_env):
    """Two processes' worth of writers (threads) MERGE into one S3 table: nothing is lost."""
    lake = Lake(s3_env)
    assert lake.is_s3 and lake.storage_options["AWS_ALLOW_HTTP"] == "true"
    lake.ensure("bronze/t", SCHEMA, ["day"], CONF)
    errors: list[BaseException] = []

    def writer(prefix: str):
        try:
            for i in range(4):
                ids = [f"{prefix}{i}-{j}" for j in range(5)]
                lake.merge_insert("bronze/t", rows(ids, offset=i * 5), ["system_id", "ts_utc"], SCHEMA, configuration=CONF)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("x", "y")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    out = lake.read("bronze/t")
    assert out.height == 40 and out.get_column("system_id").n_unique() == 40
    assert lake.version("bronze/t") == 8  # one commit per MERGE, none overwritten


def test_a_purged_version_is_named_as_such(local_lake):
    """After an erasure or retention purged the history, opening an old version says that the
    version is gone (delta-rs reports the missing log as a missing table)."""
    local_lake.merge_insert("bronze/t", rows(["a"]), ["system_id", "ts_utc"], SCHEMA, configuration=CONF)
    local_lake.merge_insert("bronze/t", rows(["b"], offset=3), ["system_id", "ts_utc"], SCHEMA, configuration=CONF)
    local_lake.purge_history("bronze/t")
    current = local_lake.version("bronze/t")
    with pytest.raises(LakeError, match=f"has no version 1 \\(the current one is {current}"):
        local_lake.table("bronze/t", version=1)
    with pytest.raises(LakeError, match="does not exist"):
        local_lake.table("bronze/missing", version=1)


def test_catalogue_tables_checkpoint_every_interval_without_data_values(local_lake):
    """Tables created with the catalogue's configuration write a Delta checkpoint every
    ``CHECKPOINT_INTERVAL`` commits (delta-rs alone: every 100), so opening one replays at most
    that many commits. The checkpoint, like the commits, holds no value of a non-statistics
    column, and reading and time travel are unchanged."""
    import pyarrow.parquet as pq

    from wattlake import tables as T

    conf = T.INVERTER_READINGS.configuration  # statistics on day, ts_utc, system_id, as SCHEMA has them
    assert conf["delta.checkpointInterval"] == str(T.CHECKPOINT_INTERVAL)
    first = dt.date(2025, 6, 1)
    commits = T.CHECKPOINT_INTERVAL + 2
    for name, config in (("bronze/t", conf), ("bronze/plain", CONF)):
        for i in range(commits):  # one commit per batch, each into a new day
            local_lake.merge_insert(name, rows([f"s{i}"], day=first + dt.timedelta(days=i)),
                                    ["system_id", "ts_utc"], SCHEMA, configuration=config)
    log = Path(local_lake.uri("bronze/t"), "_delta_log")
    checkpoints = sorted(log.glob("*.checkpoint.parquet"))
    assert len(checkpoints) == 1  # versions 0 (creation) to commits: one interval's end among them
    assert int(checkpoints[0].name.split(".")[0]) in (T.CHECKPOINT_INTERVAL - 1, T.CHECKPOINT_INTERVAL)
    assert not list(Path(local_lake.uri("bronze/plain"), "_delta_log").glob("*.checkpoint.parquet"))
    assert local_lake.table("bronze/t").metadata().configuration["delta.checkpointInterval"] == "10"
    text = pq.read_table(checkpoints[0]).to_pylist()
    assert "Jan Jansen" not in json.dumps(text, default=str)
    assert local_lake.read("bronze/t").sort("day").get_column("system_id").to_list() == [f"s{i}" for i in range(commits)]
    assert local_lake.read("bronze/t", version=3).height == 3  # versions before the checkpoint still read


def test_purge_on_a_versioned_bucket_deletes_the_old_object_versions(s3_env, monkeypatch):
    """On a bucket that keeps object versions, a DELETE plus ``purge_history`` leaves no noncurrent
    version and no delete marker under the table: the deleted row's values are in no object
    version at all, and the table still reads. A bucket without versioning is left alone."""
    import boto3

    bucket = s3_env.split("/")[2]
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    lake = Lake(s3_env)
    keys = ["system_id", "ts_utc"]
    lake.merge_insert("bronze/t", rows(["a", "b"]).with_columns(pl.Series("secret_note", ["Erased Person", "keep"])),
                      keys, SCHEMA, configuration=CONF)
    lake.merge_insert("bronze/t", rows(["c"], day=dt.date(2025, 6, 2)).with_columns(pl.lit("keep").alias("secret_note")),
                      keys, SCHEMA, configuration=CONF)
    lake.delete("bronze/t", "system_id = 'a'")
    prefix = "wattlake/bronze/t/"

    def versions():
        pages = list(s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix))
        return ([v for p in pages for v in p.get("Versions", [])], [m for p in pages for m in p.get("DeleteMarkers", [])])

    def bodies(items):
        return b"".join(s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
                        for v in items)

    old, _ = versions()
    assert b"Erased Person" in bodies(old)  # the file the DELETE replaced is not vacuumed yet
    real = Lake._delete_old_versions
    monkeypatch.setattr(Lake, "_delete_old_versions", lambda self, table: 0)  # the purge before this fix
    lake.purge_history("bronze/t")
    monkeypatch.setattr(Lake, "_delete_old_versions", real)
    kept, markers = versions()
    assert markers and b"Erased Person" in bodies([v for v in kept if not v["IsLatest"]])  # recoverable
    result = lake.purge_history("bronze/t")
    left, markers = versions()
    assert result["object_versions_removed"] > 0
    assert all(v["IsLatest"] for v in left) and markers == []
    assert b"Erased Person" not in bodies(left)
    assert sorted(lake.read("bronze/t").get_column("system_id").to_list()) == ["b", "c"]
    assert lake.purge_history("bronze/t")["object_versions_removed"] > 0  # its own vacuum/checkpoint churn
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert sorted(lake.read("bronze/t").get_column("system_id").to_list()) == ["b", "c"]


def test_check_root_on_s3_names_the_problem_without_secrets(s3_env, monkeypatch):
    """``check_root``: a prefix with objects is a lake, an empty one is not; a missing bucket and
    an unreachable endpoint are a one-line LakeError that holds no credential."""
    lake = Lake(s3_env)
    assert lake.check_root() is False
    lake.merge_insert("bronze/t", rows(["a"]), ["system_id", "ts_utc"], SCHEMA, configuration=CONF)
    assert lake.check_root() is True
    assert Lake(s3_env + "-typo").check_root() is False
    with pytest.raises(LakeError, match="bucket 'no-such-bucket' does not exist") as missing:
        Lake("s3://no-such-bucket/x").check_root()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(LakeError, match="cannot reach S3 at http://127.0.0.1:9") as unreachable:
        Lake(s3_env).check_root()
    import os

    for exc in (missing.value, unreachable.value):
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(exc) and os.environ["AWS_ACCESS_KEY_ID"] not in str(exc)
