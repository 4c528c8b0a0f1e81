"""Retention on real Delta tables: IPs truncated then removed, raw text dropped, all physically gone."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from wattlake import tables as T
from wattlake.audit import history
from wattlake.lake import Lake
from wattlake.retention import POLICY, apply_retention, months_before, truncate_ips
from tests.test_privacy import find_in_files, local_files

UTC = dt.timezone.utc


@pytest.fixture
def lake_copy(landed, tmp_path) -> Lake:
    src, *_ = landed
    shutil.copytree(src.root, tmp_path / "lakehouse")
    return Lake(str(tmp_path / "lakehouse"))


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(6), tzinfo=UTC)


def test_truncate_ips_to_networks():
    s = pl.Series(["84.24.87.19", "2a02:a4cc:95aa:1::5", "84.24.87.0/24", "not-an-ip", None])
    assert truncate_ips(s).to_list() == ["84.24.87.0/24", "2a02:a4cc:95aa::/48", "84.24.87.0/24", None, None]
    assert months_before(dt.date(2026, 3, 31), 13) == dt.date(2025, 2, 28)
    assert months_before(dt.date(2026, 12, 1), 13) == dt.date(2025, 11, 1)


def _truncate_one(ip: str | None, v4_prefix: int, v6_prefix: int) -> str | None:
    """The rule of ``truncate_ips`` for one value, written with ``ipaddress`` alone."""
    import ipaddress

    if ip is None or "/" in ip:
        return ip
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    return str(ipaddress.ip_network(f"{addr}/{v4_prefix if addr.version == 4 else v6_prefix}", strict=False))


@pytest.mark.parametrize("v4_prefix", [0, 8, 13, 24, 31, 32])
def test_truncate_ips_equals_ipaddress_on_fuzzed_values(v4_prefix):
    """Plain IPv4 addresses are truncated with integer arithmetic in Polars, everything else by
    ``ipaddress``: the result equals ``ipaddress`` on every value, odd ones included."""
    import random

    rng = random.Random(v4_prefix)
    octet = lambda: rng.choice([str(rng.randrange(256)), str(rng.randrange(256, 1000)), "0", "00", "01", "255",
                                "256", "099", "", "1a", "\u0661", "+1", "-1", " 1"])
    values = []
    for _ in range(3000):  # loop over fuzzed values (test data)
        kind = rng.random()
        if kind < 0.5:
            values.append(".".join(str(rng.randrange(256)) for _ in range(4)))
        elif kind < 0.8:
            values.append(".".join(octet() for _ in range(rng.choice([3, 4, 4, 4, 5]))))
        elif kind < 0.9:
            values.append(rng.choice(["2001:db8::1", "::1", "2a02:a4cc:95aa:1::5", "::ffff:1.2.3.4", "fe80::1%eth0",
                                      "1.2.3.4/24", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "\x1c1.2.3.4",
                                      "1.2.3.4.", "not-an-ip", "", None]))
        else:
            values.append(f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
                          + rng.choice(["", " ", "\t", "/32", ":80"]))
    series = pl.Series(values, dtype=pl.String)
    want = [_truncate_one(v, v4_prefix, 48) for v in values]
    assert truncate_ips(series, v4_prefix, 48).to_list() == want
    assert sum(w is not None and "/" in w and not (v and "/" in v) for w, v in zip(want, values)) > 1000


def _add_ips(lake: Lake, day: dt.date, system_id: str) -> list[str]:
    """Four more addresses on ``day``: two in one /24, two in one IPv6 /48 (they must merge)."""
    ips = ["198.51.100.19", "198.51.100.201", "2001:db8:aa:1::5", "2001:db8:aa:2::77"]
    t0 = dt.datetime.combine(day, dt.time(8), tzinfo=UTC)
    rows = pl.DataFrame({
        "system_id": [system_id] * 4, "day": [day] * 4, "remote_ip": ips,
        "first_seen_utc": [t0, t0 - dt.timedelta(hours=2), t0, t0 + dt.timedelta(hours=1)],
        "last_seen_utc": [t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=3), t0, t0 + dt.timedelta(hours=5)],
    })
    lake.append(T.INVERTER_IPS.name, rows, T.INVERTER_IPS.schema)
    return ips


def test_retention_truncates_merges_drops_and_removes_physically(lake_copy):
    lake = lake_copy
    # landing already applied the limits as of the wall clock (the small fleet's days are long
    # past 30 days): what it stored is networks or nothing; full addresses are added here
    days = lake.read(T.METER_READINGS.name)["day"]
    last_day, first_day = days.max(), days.min()
    system_id = lake.read(T.SYSTEMS.name)["system_id"].sort()[0]
    added = _add_ips(lake, first_day, system_id)
    originals = sorted(set(lake.read(T.INVERTER_IPS.name)["remote_ip"].to_list()))
    full_before = sum("/" not in ip for ip in lake.read(T.INVERTER_IPS.name)["remote_ip"].to_list())
    assert full_before == len(added)
    telegrams = lake.read(T.METER_READINGS.name)["raw_telegram"].drop_nulls().len()
    raw_quarantine = lake.read(T.QUARANTINE.name)["raw_text"].drop_nulls().len()
    assert telegrams > 0 and raw_quarantine > 0

    # dry run: counts, changes nothing
    versions = {n: lake.version(n) for n in (T.INVERTER_IPS.name, T.METER_READINGS.name, T.QUARANTINE.name)}
    before_rows = lake.read(T.INVERTER_IPS.name).height
    dry = apply_retention(lake, _at(last_day + dt.timedelta(days=POLICY.ip_truncate_after_days + 1)), dry_run=True)
    assert dry.ips_truncated == full_before and dry.ip_rows_merged == 2
    assert {n: lake.version(n) for n in versions} == versions

    # day 31: every address truncated, equal networks merged, first/last seen aggregated
    r = apply_retention(lake, _at(last_day + dt.timedelta(days=POLICY.ip_truncate_after_days + 1)))
    after = lake.read(T.INVERTER_IPS.name)
    assert r.ips_truncated == full_before and r.ip_rows_merged == 2 and after.height == before_rows - 2
    assert r.telegrams_dropped == 0
    assert after["remote_ip"].str.contains("/").all()
    mine = after.filter((pl.col("system_id") == system_id) & (pl.col("day") == first_day))
    v4 = mine.filter(pl.col("remote_ip") == "198.51.100.0/24").row(0, named=True)
    assert v4["first_seen_utc"] == dt.datetime.combine(first_day, dt.time(6), tzinfo=UTC)
    assert v4["last_seen_utc"] == dt.datetime.combine(first_day, dt.time(11), tzinfo=UTC)
    v6 = mine.filter(pl.col("remote_ip") == "2001:db8:aa::/48").row(0, named=True)
    assert v6["last_seen_utc"] == dt.datetime.combine(first_day, dt.time(13), tzinfo=UTC)
    # physically gone: no full address in any file of the lake (data files decoded, logs, checkpoints)
    full = [ip for ip in originals if "/" not in ip]
    assert set(added) <= set(full)
    assert find_in_files(local_files(Path(lake.root)), full) == []

    # day 91: raw P1 telegrams and quarantine raw text dropped, parsed values kept
    meter_rows = lake.read(T.METER_READINGS.name).height
    r = apply_retention(lake, _at(last_day + dt.timedelta(days=POLICY.telegram_raw_after_days + 1)))
    assert r.telegrams_dropped == telegrams and r.quarantine_raw_dropped == raw_quarantine
    meter = lake.read(T.METER_READINGS.name)
    assert meter.height == meter_rows and meter["raw_telegram"].null_count() == meter_rows
    assert meter["imported_t1_kwh"].null_count() == 0
    assert lake.read(T.QUARANTINE.name)["raw_text"].null_count() == lake.read(T.QUARANTINE.name).height
    obis = ["1-0:1.8.1(", "0-0:96.1.1(", '"ac_power_w"']  # text only raw telegrams/lines contain
    assert find_in_files(local_files(Path(lake.uri(T.METER_READINGS.name))), obis) == []
    assert find_in_files(local_files(Path(lake.uri(T.QUARANTINE.name))), obis) == []

    # 13 months: the (truncated) addresses are removed
    r = apply_retention(lake, _at(last_day + dt.timedelta(days=400)))
    assert r.ips_removed == after.height and lake.read(T.INVERTER_IPS.name).height == 0
    assert find_in_files(local_files(Path(lake.uri(T.INVERTER_IPS.name))), ["198.51.100.0/24"]) == []
    # the table still reads, also at its current version; a re-run changes nothing
    v = lake.version(T.INVERTER_IPS.name)
    assert lake.read(T.INVERTER_IPS.name, version=v).height == 0
    again = apply_retention(lake, _at(last_day + dt.timedelta(days=400)))
    assert again.tables_purged == [] and again.ips_removed == 0

    audit = history(lake).filter(pl.col("request_type") == "retention")
    assert audit.height == 4
    details = [json.loads(d) for d in audit["details"]]
    assert [d["ips_removed"] for d in details] == [0, 0, after.height, 0]
    assert all(d["policy"]["ip_truncate_after_days"] == 30 for d in details)


def _ip_values(root: Path) -> list[str]:
    """Every quoted remote_ip value in the landing folder's inverter files."""
    pat = re.compile(r'"remote_ip"\s*:\s*"([^"]*)"')
    return [v for f in sorted((root / "inverter").rglob("*.jsonl")) for v in pat.findall(f.read_text(errors="replace"))]


def test_retention_applies_to_the_landing_folder(lake_copy, small_landing, tmp_path):
    """The landing folder holds the same personal data raw: addresses become networks after 30 days
    and null after 13 months (landing the files again stores what the tables hold), landed P1 files
    go after 90 days, a never-landed one is kept and counted."""
    from wattlake.landing import land

    lake = lake_copy
    landing = Path(shutil.copytree(small_landing[0], tmp_path / "landing"))
    last_day = max(dt.date.fromisoformat(p.name) for p in (landing / "inverter").iterdir())
    full = sorted({v for v in _ip_values(landing) if "/" not in v})
    assert len(full) >= 5  # one or two per system in the small fleet, IPv6 too
    before = local_files(landing)

    day31 = _at(last_day + dt.timedelta(days=POLICY.ip_truncate_after_days + 1))
    dry = apply_retention(lake, day31, dry_run=True, landing_root=landing)
    assert dry.landing.ips_truncated >= len(full) and dry.landing.ip_files_rewritten > 0
    assert local_files(landing) == before

    ips_table = lake.read(T.INVERTER_IPS.name).sort(pl.all())
    r = apply_retention(lake, day31, landing_root=landing)
    assert r.landing.ips_truncated == dry.landing.ips_truncated and r.landing.telegram_files_deleted == 0
    values = _ip_values(landing)
    assert values and all("/" in v for v in values)
    assert find_in_files({f: b for f, b in local_files(landing).items() if f.startswith("inverter/")}, full) == []
    # the files still land, to exactly what the lake holds (landing kept networks from the start)
    days = sorted(p.name for p in (landing / "inverter").iterdir())
    again = land(lake, landing, "inverter", days)
    assert again.landed == 0 and again.quarantined == again.records - again.duplicates - again.landed
    assert lake.read(T.INVERTER_IPS.name).sort(pl.all()).equals(ips_table)
    # the next day's run reads nothing again (marker per day folder), except a file that arrived late
    snapshot = local_files(landing)
    assert apply_retention(lake, day31, landing_root=landing).landing.ip_files_rewritten == 0
    assert local_files(landing) == snapshot
    late = landing / "inverter" / days[0] / "messages-late.jsonl"
    late.write_bytes(before[f"inverter/{days[0]}/messages-000.jsonl"])
    r = apply_retention(lake, day31, landing_root=landing)
    assert r.landing.ip_files_rewritten == 1 and all("/" in v for v in _ip_values(landing))

    # 90 days: landed P1 files are deleted; one that never landed is kept and counted
    meter = sorted(p for p in (landing / "meter").rglob("*.p1"))
    unlanded = meter[0].with_name("em_never_landed.p1")
    unlanded.write_bytes(meter[0].read_bytes())
    meter_rows = lake.read(T.METER_READINGS.name).height
    r = apply_retention(lake, _at(last_day + dt.timedelta(days=POLICY.telegram_raw_after_days + 1)),
                        landing_root=landing)
    assert r.landing.telegram_files_deleted == len(meter) and r.landing.telegram_files_kept_unlanded == 1
    assert sorted(p for p in (landing / "meter").rglob("*.p1")) == [unlanded]
    assert lake.read(T.METER_READINGS.name).height == meter_rows

    # 13 months: no address at all, not even a network
    r = apply_retention(lake, _at(last_day + dt.timedelta(days=400)), landing_root=landing)
    assert r.landing.ips_removed > 0 and _ip_values(landing) == []
    assert re.search(rb'"remote_ip"\s*:\s*null', (landing / "inverter" / days[0] / "messages-000.jsonl").read_bytes())
    details = [json.loads(d) for d in history(lake).filter(pl.col("request_type") == "retention")["details"]]
    assert details[-1]["landing"]["ips_removed"] == r.landing.ips_removed
    assert not [ip for ip in full if ip in json.dumps(details)]

    # landing the folder again after retention rewrote the quarantine (delta-rs' UPDATE: files
    # with string_view columns) reads those files, and adds only the late file's rejects
    quarantine = lake.read(T.QUARANTINE.name)
    assert quarantine.height > 0 and quarantine["raw_text"].null_count() == quarantine.height
    for source in ("inverter", "device", "weather"):
        again = land(lake, landing, source, sorted(p.name for p in (landing / source).iterdir() if p.is_dir()))
        assert again.landed == 0 and again.records == again.duplicates + again.quarantined
    added = lake.read(T.QUARANTINE.name).join(quarantine, on=list(T.QUARANTINE.keys), how="anti")
    assert added.height > 0 and (added["source_file"] == f"inverter/{days[0]}/messages-late.jsonl").all()


def test_retention_asset_materialises_with_counts(lake_copy, small_landing, tmp_path):
    import dagster as dg

    from assets.retention import retention
    from pipelines.resources import ExportsResource, LakeResource, LandingResource

    # full addresses on a day 40 days back (landing stores the fleet's old days truncated already)
    _add_ips(lake_copy, dt.datetime.now(UTC).date() - dt.timedelta(days=40),
             lake_copy.read(T.SYSTEMS.name)["system_id"][0])
    landing = shutil.copytree(small_landing[0], tmp_path / "landing")
    exports = tmp_path / "exports"
    old = exports / "installers" / "inst_a" / "20240102T043000Z"  # a notice batch long past its limit
    old.mkdir(parents=True)
    (old / "notices.csv").write_text("notice_id\n")
    result = dg.materialize([retention], resources={"lake": LakeResource(root=lake_copy.root),
                                                    "landing": LandingResource(root=str(landing)),
                                                    "exports": ExportsResource(root=str(exports))})
    assert result.success
    md = {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
    # the small fleet's days are long past the limits today: truncated and dropped, counted
    assert md["ips_truncated"] == 4 and md["telegrams_dropped"] > 0
    assert lake_copy.read(T.INVERTER_IPS.name)["remote_ip"].str.contains("/").all()
    # and to the landing folder: addresses rewritten (truncated or removed), landed P1 files deleted
    assert md["landing"]["ips_truncated"] + md["landing"]["ips_removed"] > 0
    assert md["landing"]["telegram_files_deleted"] == len(list((small_landing[0] / "meter").rglob("*.p1")))
    assert (md["notice_folders_deleted"], md["notice_files_deleted"]) == (1, 1) and not old.exists()


def test_retention_schedule_is_daily():
    from pipelines.definitions import defs

    sched = next(s for s in defs.schedules if s.name == "daily_retention")
    assert sched.cron_schedule == "30 5 * * *" and sched.job_name == "apply_retention"
