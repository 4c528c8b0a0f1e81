"""End to end: a generated fleet landed through real Dagster materialisations into real Delta tables."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable

from pipelines.cli import materialize_all
from wattlake import tables as T
from wattlake.lake import Lake

BRONZE = {"inverter": T.INVERTER_READINGS, "meter": T.METER_READINGS, "device": T.DEVICE_READINGS,
          "weather": T.WEATHER}
DESIGN_TABLES = ["bronze/inverter_readings", "bronze/meter_readings", "bronze/device_readings", "bronze/weather",
                 "bronze/quarantine", "restricted/systems", "restricted/subjects"]


def metadata(result) -> dict[str, dict]:
    out = {}
    for ev in result.get_asset_materialization_events():
        m = ev.materialization
        out[m.asset_key.to_user_string()] = {k: v.value for k, v in m.metadata.items()}
    return out


def independent_record_count(root: Path, source: str) -> int:
    """Records in the landing files, counted without the project's parsers."""
    n = 0
    for f in (root / source).glob("*/*"):
        if not f.is_file() or f.name == "stations.csv":
            continue
        text = f.read_bytes().decode("utf-8", errors="replace")
        lines = text.split("\n")
        if source == "meter":
            n += sum(1 for line in lines if line.startswith("/"))
            n += 1 if text.strip() and not text.lstrip().startswith("/") else 0  # junk before the first telegram
        elif source == "weather":
            n += sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))
        else:
            n += sum(1 for line in lines if line.strip())
    return n


def test_design_tables_exist_and_read_with_deltalake_duckdb_and_polars(landed):
    lake, _, _, _ = landed
    for name in DESIGN_TABLES:
        dt_ = DeltaTable(lake.uri(name))
        n_delta = dt_.to_pyarrow_table().num_rows
        ds = dt_.to_pyarrow_dataset()  # noqa: F841 - DuckDB reads the Arrow dataset by name
        n_duck = duckdb.sql("select count(*) from ds").fetchall()[0][0]
        n_polars = pl.scan_delta(lake.uri(name)).select(pl.len()).collect().item()
        assert n_delta == n_duck == n_polars
        if name != "bronze/quarantine":
            assert n_delta > 0, name


@pytest.mark.parametrize("source", list(BRONZE))
def test_conservation_per_source(landed, source):
    lake, root, _, result = landed
    md = metadata(result)[BRONZE[source].name]
    expected = independent_record_count(root, source)
    assert md["rows_read"] == expected
    assert md["rows_read"] == md["rows_landed"] + md["duplicates"] + md["quarantined"]
    assert lake.read(BRONZE[source].name).height == md["rows_landed"]
    q = lake.read(T.QUARANTINE.name, filter=pl.col("source") == source)
    assert q.height == md["quarantined"]


def _key_of_inverter_line(raw: str, systems: pl.DataFrame) -> tuple[str, dt.datetime]:
    msg = json.loads(raw)
    sid = systems.filter(pl.col("serial") == msg["serial"])["system_id"].item()
    return sid, dt.datetime.fromisoformat(msg["ts"].replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def test_every_injected_bad_input_has_its_outcome(landed):
    lake, root, _, _ = landed
    truth = pl.read_parquet(root / "ground_truth" / "bad_input.parquet")
    assert truth.height >= 10 and truth["kind"].n_unique() >= 8
    quarantine = lake.read(T.QUARANTINE.name)
    systems = lake.read(T.SYSTEMS.name)
    tables = {s: lake.read(spec.name) for s, spec in BRONZE.items()}
    for row in truth.iter_rows(named=True):
        here = (pl.col("source_file") == row["file"]) & (pl.col("line_no") == row["line_no"])
        q = quarantine.filter(here)
        landed_rows = tables[row["source"]].filter(here)
        outcome, _, detail = row["expected"].partition(":")
        ctx = f"{row['kind']} at {row['file']}:{row['line_no']}"
        if outcome == "quarantine":
            assert q.height == 1, ctx
            assert q["reason"][0].split(":")[0] == detail, f"{ctx}: reason {q['reason'][0]}"
            assert landed_rows.height == 0, ctx
        elif outcome == "duplicate":
            assert q.height == 0, ctx
            if row["source"] == "inverter":
                raw = (root / row["file"]).read_text().split("\n")[row["line_no"] - 1]
                sid, ts = _key_of_inverter_line(raw, systems)
                hits = tables["inverter"].filter((pl.col("system_id") == sid) & (pl.col("ts_utc") == ts))
                assert hits.height == 1, ctx
        elif outcome == "corrected":
            assert q.height == 0 and landed_rows.height == 1 and landed_rows["unit_corrected"][0], ctx
        elif outcome == "landed":
            assert q.height == 0 and landed_rows.height == 1, ctx
            if detail == "counter_reset":
                assert landed_rows["counter_reset"][0], ctx
            if detail == "null":
                assert landed_rows["ghi_w_m2"][0] is None, ctx
        else:
            pytest.fail(f"unknown expected outcome {row['expected']}")


def test_dst_day_keeps_all_telegrams_in_utc(landed):
    """2025-10-26 has 25 local hours: 100 quarter-hour telegrams per home, none lost or merged."""
    lake, root, _, _ = landed
    meter = lake.read(T.METER_READINGS.name)
    local_day = meter.filter(pl.col("source_file").str.contains("meter/2025-10-26/"))
    per_home = local_day.group_by("system_id").agg(pl.len(), pl.col("ts_utc").n_unique().alias("distinct"))
    bad_lines = pl.read_parquet(root / "ground_truth" / "bad_input.parquet").filter(
        (pl.col("source") == "meter") & pl.col("file").str.contains("2025-10-26") & (pl.col("expected") != "landed"))
    full = per_home.filter(~pl.col("system_id").is_in(
        lake.read(T.SYSTEMS.name).filter(pl.col("em_id").is_in(
            bad_lines["file"].str.extract(r"/([^/]+)\.p1$").implode()))["system_id"].implode()))
    assert full.height >= 3
    assert (full["len"] == 100).all() and (full["distinct"] == 100).all()
    # the repeated local hour 02:00-03:00 appears twice: 00:00-01:00 UTC (S) and 01:00-02:00 UTC (W)
    one = local_day.filter(pl.col("system_id") == full["system_id"][0])
    flags = one.filter(pl.col("ts_utc").is_between(dt.datetime(2025, 10, 26, 0, tzinfo=dt.timezone.utc),
                                                   dt.datetime(2025, 10, 26, 1, 45, tzinfo=dt.timezone.utc)))
    assert flags.sort("ts_utc")["dst_flag"].to_list() == ["S"] * 4 + ["W"] * 4


def _snapshot(lake: Lake) -> dict[str, pl.DataFrame]:
    out = {}
    for name in lake.tables():
        df = lake.read(name)
        out[name] = df.sort(df.columns[: min(4, len(df.columns))], nulls_last=True)
    return out


def test_rematerialising_changes_nothing(small_landing, tmp_path):
    root, _ = small_landing
    lake = Lake(str(tmp_path / "lakehouse"))
    days = sorted({p.name for s in ("inverter", "meter") for p in (root / s).iterdir()})
    materialize_all(days[0], days[-1], lake_root=lake.root, landing=str(root))
    before = _snapshot(lake)
    versions = {n: lake.version(n) for n in before}
    _, again = materialize_all(days[1], days[1], lake_root=lake.root, landing=str(root))
    md = metadata(again)
    for source, spec in BRONZE.items():
        assert md[spec.name]["rows_landed"] == 0
        assert md[spec.name]["rows_read"] == md[spec.name]["duplicates"] + md[spec.name]["quarantined"]
    after = _snapshot(lake)
    assert before.keys() == after.keys()
    for name in before:
        if name == T.CHECK_OUTCOMES.name:  # an event log: every check run appends its outcomes
            assert after[name].height > before[name].height
            continue
        assert before[name].equals(after[name]), name
    # the registry snapshot was unchanged, so its tables were not even rewritten
    for name in T.RESTRICTED:
        if name in versions and name != T.INVERTER_IPS.name:
            assert lake.version(name) == versions[name], name


@pytest.mark.s3
def test_s3_lake_equals_local_lake(landed, s3_env):
    local, root, days, _ = landed
    materialize_all(days[0], days[-1], lake_root=s3_env, landing=str(root))
    s3 = Lake(s3_env)
    assert sorted(s3.tables()) == sorted(local.tables())
    for name in local.tables():
        a, b = local.read(name), s3.read(name)
        if name == T.CHECK_OUTCOMES.name:  # run ids and times differ; what was checked and found must not
            cols = ["table", "check", "passed", "element_count", "unexpected_count"]
            assert a.select(cols).sort(cols).equals(b.select(cols).sort(cols))
            continue
        drop = [c for c in ("landed_at_utc",) if c in a.columns]
        keys = list(T.TABLES[name].keys)
        assert a.drop(drop).sort(keys).equals(b.drop(drop).sort(keys)), name


def test_personal_data_only_in_restricted_tables(landed):
    lake, _, _, _ = landed
    subjects = lake.read(T.SUBJECTS.name)
    ips = lake.read(T.INVERTER_IPS.name)["remote_ip"].unique().to_list()
    pii = set()
    for col in ("name", "email", "phone", "iban"):
        pii |= set(subjects[col].drop_nulls().to_list())
    pii |= set((subjects["street"] + " " + subjects["house_number"]).to_list())
    pii |= set(subjects["street"].to_list())
    pii |= set(ips)
    pii = sorted(v for v in pii if v and len(v) >= 6)
    assert len(pii) > 20
    personal_columns = {"name", "email", "phone", "iban", "street", "house_number", "address", "remote_ip",
                        "subject_id", "lat", "lon", "postcode"}
    for name in lake.tables():
        if name in T.RESTRICTED:
            continue
        df = lake.read(name)
        # station names and coordinates are public KNMI metadata, not a person's
        allowed = {"name", "lat", "lon"} if name == T.STATIONS.name else set()
        assert not (personal_columns - allowed) & set(df.columns), name
        for col, dtype in df.schema.items():
            if dtype == pl.Utf8:
                hits = df.filter(pl.col(col).str.contains_any(pii))
                assert hits.height == 0, f"{name}.{col} holds personal data: {hits[col][0][:80]}"


def test_landing_days_together_equals_landing_them_one_by_one(small_landing, tmp_path):
    from wattlake.landing import chunk_days, land
    from wattlake.registry import land_registry

    root, _ = small_landing
    one, together = Lake(str(tmp_path / "one")), Lake(str(tmp_path / "together"))
    for lake in (one, together):
        land_registry(lake, root)
    for source in BRONZE:
        days = sorted(p.name for p in (root / source).iterdir() if p.is_dir())
        assert chunk_days(root, source, days) == [days]  # a small fleet fits one chunk
        assert [len(g) for g in chunk_days(root, source, days, max_bytes=1)] == [1] * len(days)
        singles = [land(one, root, source, d) for d in days]
        batch = land(together, root, source, days)
        assert batch.days == len(days) and all(r.days == 1 for r in singles)
        for k in ("records", "landed", "duplicates", "quarantined", "corrected", "counter_resets"):
            assert getattr(batch, k) == sum(getattr(r, k) for r in singles), (source, k)
    for name in one.tables():
        keys = list(T.TABLES[name].keys)
        a = one.read(name).drop("landed_at_utc", strict=False).sort(keys)
        b = together.read(name).drop("landed_at_utc", strict=False).sort(keys)
        assert a.equals(b), name


def test_chunk_days_cuts_a_small_fleets_backfill_into_enough_groups(tmp_path, monkeypatch):
    """A long backfill of a small fleet is cut into at least ``min_groups`` groups (so reading,
    parsing and committing overlap), never below MIN_GROUP_BYTES and never above ``max_bytes``."""
    import wattlake.landing as L

    days = [f"2025-01-{d:02d}" for d in range(1, 31)] + [f"2025-02-{d:02d}" for d in range(1, 11)]
    for k, day in enumerate(days):  # 40 days of 1,000 bytes, the first one empty
        folder = tmp_path / "inverter" / day
        folder.mkdir(parents=True)
        (folder / "messages-000.jsonl").write_bytes(b"" if k == 0 else b"x" * 1000)
    monkeypatch.setattr(L, "MIN_GROUP_BYTES", 1000)

    def sizes(**kw):
        groups = L.chunk_days(tmp_path, "inverter", days, **kw)
        assert [d for g in groups for d in g] == days  # every day once, in order
        return [len(g) for g in groups]

    # 40 x 1,000 bytes / 20 groups: at most 2,000 bytes (2 days) per group
    assert sizes(min_groups=20) == [3] + [2] * 18 + [1]
    assert sizes(min_groups=1) == [40]                     # one group fits the whole backfill
    assert sizes(min_groups=80) == [2] + [1] * 38          # never below MIN_GROUP_BYTES (1 day)
    assert sizes(min_groups=1, max_bytes=3000) == [4] + [3] * 12  # max_bytes still bounds a group
    assert list(L.iter_chunk_days(tmp_path, "inverter", days, min_groups=20)) == L.chunk_days(
        tmp_path, "inverter", days, min_groups=20)


def test_land_groups_with_prefetch_equals_land_group_by_group(small_landing, tmp_path):
    """The prefetching lander (next group parsed while this one MERGEs, groups planned lazily on a
    background thread, the group after next read ahead) changes no row and no count."""
    from wattlake.landing import chunk_days, iter_chunk_days, land, land_groups
    from wattlake.registry import land_registry

    root, _ = small_landing
    now = dt.datetime(2026, 1, 1)
    seq, pre = Lake(str(tmp_path / "seq")), Lake(str(tmp_path / "pre"))
    for lake in (seq, pre):
        land_registry(lake, root)
    for source in BRONZE:
        days = sorted(p.name for p in (root / source).iterdir() if p.is_dir())
        groups = chunk_days(root, source, days, max_bytes=1)  # one day per group: 3+ groups
        assert len(groups) >= 3
        singles = [land(seq, root, source, g, now=now) for g in groups]
        assert list(iter_chunk_days(root, source, days, max_bytes=1)) == groups
        streamed = list(land_groups(pre, root, source, iter_chunk_days(root, source, days, max_bytes=1), now=now))
        assert [r.days for r in streamed] == [len(g) for g in groups]
        assert [r.partition for r in streamed] == [r.partition for r in singles]
        for a, b in zip(singles, streamed):
            for k in ("records", "landed", "duplicates", "quarantined", "corrected", "counter_resets", "reasons"):
                assert getattr(a, k) == getattr(b, k), (source, a.partition, k)
    assert sorted(seq.tables()) == sorted(pre.tables())
    for name in seq.tables():
        a, b = seq.read(name), pre.read(name)
        cols = [c for c, t in a.schema.items() if not isinstance(t, (pl.List, pl.Struct))]
        assert a.sort(cols).equals(b.select(a.columns).sort(cols)), name


@pytest.mark.parametrize("prefetch", [True, False])
def test_land_groups_reports_a_planning_error_after_the_groups_before_it(small_landing, tmp_path, prefetch):
    """A plan that fails part-way (a day folder vanished, a disk error) lands the groups before
    the failure and then raises the planner's own error in the landing thread."""
    from wattlake.landing import land_groups
    from wattlake.registry import land_registry

    root, _ = small_landing
    lake = Lake(str(tmp_path / "lake"))
    land_registry(lake, root)
    days = sorted(p.name for p in (root / "device").iterdir() if p.is_dir())

    def plan():
        yield [days[0]]
        raise OSError("landing folder went away")

    it = land_groups(lake, root, "device", plan(), now=dt.datetime(2026, 1, 1), prefetch=prefetch)
    first = next(it)
    assert first.days == 1 and first.records > 0
    with pytest.raises(OSError, match="went away"):
        next(it)
    assert lake.read(T.DEVICE_READINGS.name).height == first.landed


def test_landing_applies_ip_retention_from_the_landing_time(small_landing, tmp_path):
    """Old files (a backfill, a re-landing after retention ran) never store what retention removes:
    addresses of days past the truncation age land as networks, past the removal age not at all."""
    from wattlake.landing import land
    from wattlake.registry import land_registry
    from wattlake.retention import POLICY, truncate_ips

    root, _ = small_landing
    days = sorted(p.name for p in (root / "inverter").iterdir() if p.is_dir())
    last = dt.date.fromisoformat(days[-1])
    stored = {}
    for label, now in (("recent", last + dt.timedelta(days=2)),
                       ("truncated", last + dt.timedelta(days=POLICY.ip_truncate_after_days + 5)),
                       ("removed", last + dt.timedelta(days=14 * 31))):
        lake = Lake(str(tmp_path / label))
        land_registry(lake, root)
        report = land(lake, root, "inverter", days, now=dt.datetime.combine(now, dt.time(6)))
        assert report.landed > 0
        stored[label] = lake.read(T.INVERTER_IPS.name)
    full = stored["recent"]["remote_ip"]
    assert full.len() > 0 and not full.str.contains("/", literal=True).any()
    nets = stored["truncated"]["remote_ip"]
    assert nets.len() > 0 and nets.str.contains("/", literal=True).all()
    assert set(nets) == set(truncate_ips(full, POLICY.ipv4_prefix, POLICY.ipv6_prefix).drop_nulls())
    # one row per system, day and network; first/last seen span the addresses it merged
    assert stored["truncated"].select(pl.struct("system_id", "day", "remote_ip").n_unique()).item() == nets.len()
    assert stored["removed"].height == 0  # the table exists, empty


def test_landing_files_lists_matching_files_per_day_in_name_order(tmp_path):
    """Only files matching the source's pattern, per day in name order; a missing day or a day
    that is not a folder is skipped; names are relative to the landing root."""
    from wattlake.landing import landing_files

    day = tmp_path / "meter" / "2025-03-01"
    day.mkdir(parents=True)
    for name in ("em_b.p1", "em_a.p1", "notes.txt", ".em_hidden.p1"):
        (day / name).write_text("x")
    (day / "sub.p1").mkdir()  # a folder whose name matches is not a file
    (day / "link.p1").symlink_to(day / "em_a.p1")  # a link to a file is listed, as pathlib did
    (tmp_path / "meter" / "2025-03-02").write_text("not a folder")
    got = landing_files(tmp_path, "meter", ["2025-03-01", "2025-03-02", "2025-03-03"])
    expect = [(p.relative_to(tmp_path).as_posix(), p) for p in sorted(day.glob("*.p1")) if p.is_file()]
    assert got == expect
    assert [n for n, _ in got] == ["meter/2025-03-01/.em_hidden.p1", "meter/2025-03-01/em_a.p1",
                                   "meter/2025-03-01/em_b.p1", "meter/2025-03-01/link.p1"]
    assert landing_files(tmp_path, "meter", "2025-03-01") == got


def test_first_per_key_matches_unique_keep_first():
    """The landing's deduplication keeps the first row of each key in order, as
    ``unique(keep="first", maintain_order=True)`` does, nulls in keys included, and hands a
    frame without duplicates back as it is."""
    import numpy as np

    from wattlake.landing import first_per_key

    rng = np.random.default_rng(7)
    n = 5_000
    frame = pl.DataFrame({
        "system_id": pl.Series(rng.choice(["a", "b", "c", "-"], n)).replace("-", None),
        "ts": rng.integers(0, 400, n),
        "payload": np.arange(n),
    })
    got = first_per_key(frame, ["system_id", "ts"])
    want = frame.unique(subset=["system_id", "ts"], keep="first", maintain_order=True)
    assert got.height < n and got.equals(want)
    clean = want
    assert first_per_key(clean, ["system_id", "ts"]) is clean


def test_landed_files_lists_every_file_read_at_its_size(landed):
    """``bronze/landed_files`` (what retention may delete) holds exactly the landing files, with
    the sizes they had when they were read."""
    lake, root, _, _ = landed
    on_disk = {str(f.relative_to(root)): f.stat().st_size
               for source in ("inverter", "meter", "device", "weather")
               for f in (root / source).glob("*/*") if f.is_file()}
    ledger = lake.read(T.LANDED_FILES.name)
    assert dict(ledger.select("source_file", "size_bytes").iter_rows()) == on_disk
    assert ledger.height == len(on_disk)  # one row per file and size
    assert (ledger["source"] == ledger["source_file"].str.extract(r"^([a-z]+)/")).all()
    assert (ledger["day"].cast(pl.String) == ledger["source_file"].str.extract(r"/(\d{4}-\d{2}-\d{2})/")).all()


def test_inverter_files_take_dictionaries_and_statistics_only_where_listed(landed):
    """``bronze/inverter_readings`` files carry dictionary pages on the table's
    ``dictionary_columns`` only and Parquet statistics on its statistics columns only; the Delta
    log still has min/max of those (file skipping on day, time and system keeps working)."""
    import pyarrow.parquet as pq

    lake, _, _, _ = landed
    spec = T.INVERTER_READINGS
    table = lake.table(spec.name)
    files = table.file_uris()
    assert files
    meta = pq.ParquetFile(files[0]).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
               for i in range(meta.num_columns)}
    flat = [c for c in spec.schema.names if c in columns]  # the nested dc has leaf paths
    for name in flat:
        chunk = columns[name]
        assert chunk.has_dictionary_page == (name in spec.dictionary_columns), name
        assert (chunk.statistics is not None and chunk.statistics.has_min_max) == (name in spec.stats_columns), name
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    for column in ("min.ts_utc", "max.ts_utc", "min.system_id", "max.system_id"):
        assert actions.column(column).null_count == 0, column


def test_the_counter_before_a_batch_is_each_systems_last_landed_reading(small_landing, tmp_path):
    """The boundary state for the counter-reset flags: per system, the last reading already in
    the lake before the batch's first time (none while the table does not exist)."""
    from wattlake.landing import _last_counter_before, land
    from wattlake.registry import land_registry

    root, _ = small_landing
    lake = Lake(str(tmp_path / "lake"))
    land_registry(lake, root)
    days = sorted(p.name for p in (root / "inverter").iterdir() if p.is_dir())
    probe = pl.DataFrame({"ts_utc": [dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)]})
    assert _last_counter_before(lake, probe) is None  # nothing landed yet
    land(lake, root, "inverter", days[0])
    landed = lake.read(T.INVERTER_READINGS.name)
    last = landed.get_column("ts_utc").max()
    batch = pl.DataFrame({"ts_utc": [last + dt.timedelta(minutes=5)]})
    got = _last_counter_before(lake, batch).sort("system_id")
    want = (landed.filter(pl.col("day") >= last.date() - dt.timedelta(days=1))
            .sort("ts_utc").group_by("system_id").last().select(got.columns).sort("system_id"))
    assert got.height == landed.get_column("system_id").n_unique() > 1
    assert got.equals(want)
    earlier = pl.DataFrame({"ts_utc": [last - dt.timedelta(hours=1)]})  # only readings before it count
    assert (_last_counter_before(lake, earlier).get_column("ts_utc") < earlier.item()).all()
