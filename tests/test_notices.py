"""Installer notices: only what changed since the last delivery, on real Delta tables and export folders."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pyarrow as pa
import pytest

from wattlake.alerts import ALERT_SCHEMA
from wattlake.notices import NOTICE_SCHEMA, plan_notices, send_notices, verify_notices

D0 = dt.date(2025, 6, 1)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def alerts(*rows) -> pl.DataFrame:
    """rows: (system, kind, first, last[, severity[, installer]]) with days as offsets from D0."""
    out = []
    for system, kind, first, last, *rest in rows:
        severity = rest[0] if rest else "medium"
        installer = rest[1] if len(rest) > 1 else "inst_a"
        out.append({"system_id": system, "first_day": day(first), "last_day": day(last), "kind": kind,
                    "severity": severity, "deficit_kwh": 10.0 * (last - first + 1),
                    "reason": f"{kind} for {last - first + 1} days", "installer_id": installer})
    return pl.DataFrame(out, schema=ALERT_SCHEMA)


def judged(through: int, *systems: str) -> pl.DataFrame:
    return pl.DataFrame({"system_id": list(systems), "judged_through": [day(through)] * len(systems)})


class Ledger:
    """Deliveries in memory: plan against what was sent so far, then record it as sent."""

    def __init__(self):
        self.sent = pl.DataFrame(schema=NOTICE_SCHEMA)
        self.n = 0

    def deliver(self, current: pl.DataFrame, through: int) -> pl.DataFrame:
        systems = sorted(set(current.get_column("system_id")) | set(self.sent.get_column("system_id")))
        planned = plan_notices(current, self.sent, judged(through, *systems))
        self.n += 1
        at = dt.datetime(2025, 7, 1, tzinfo=dt.UTC) + dt.timedelta(days=self.n)
        rows = planned.with_columns(pl.lit(f"b{self.n}").alias("batch_id"),
                                    pl.lit(at).dt.cast_time_unit("us").alias("sent_at_utc"))
        self.sent = pl.concat([self.sent, rows.select(NOTICE_SCHEMA.names())])
        return planned

    def said(self, planned: pl.DataFrame) -> list[tuple]:
        return sorted(planned.select("notice", "system_id", "kind").iter_rows())


def test_first_delivery_sends_each_episode_once_and_says_which_are_open():
    led = Ledger()
    current = alerts(("s1", "outage", 20, 29), ("s2", "deficit", 3, 9))
    first = led.deliver(current, through=30)
    assert led.said(first) == [("new", "s1", "outage"), ("new", "s2", "deficit")]
    assert dict(first.select("system_id", "open").iter_rows()) == {"s1": True, "s2": False}
    assert first.schema == pl.Schema({c: NOTICE_SCHEMA[c] for c in first.columns})
    assert first.get_column("notice_id").n_unique() == 2
    # nothing changed: nothing to say
    assert led.deliver(current, through=30).height == 0


def test_a_longer_episode_is_silent_and_a_worse_one_is_escalated_once():
    led = Ledger()
    led.deliver(alerts(("s1", "deficit", 10, 20, "low")), through=20)
    assert led.deliver(alerts(("s1", "deficit", 10, 21, "low")), through=21).height == 0
    up = led.deliver(alerts(("s1", "deficit", 10, 22, "high")), through=22)
    assert led.said(up) == [("escalated", "s1", "deficit")]
    assert up.item(0, "severity") == "high" and up.item(0, "last_day") == day(22)
    assert led.deliver(alerts(("s1", "deficit", 10, 23, "high")), through=23).height == 0
    assert led.deliver(alerts(("s1", "deficit", 10, 24, "medium")), through=24).height == 0  # no "better" notice


def test_an_episode_ends_after_the_gap_and_can_reopen_under_the_same_id():
    led = Ledger()
    first = led.deliver(alerts(("s1", "outage", 5, 9)), through=9)
    episode = first.item(0, "episode_id")
    assert led.deliver(alerts(("s1", "outage", 5, 9)), through=12).height == 0  # 3 days: still open
    ended = led.deliver(alerts(("s1", "outage", 5, 9)), through=13)
    assert led.said(ended) == [("ended", "s1", "outage")] and not ended.item(0, "open")
    assert ended.item(0, "episode_id") == episode
    assert led.deliver(alerts(("s1", "outage", 5, 9)), through=20).height == 0
    again = led.deliver(alerts(("s1", "outage", 5, 21)), through=21)
    assert led.said(again) == [("reopened", "s1", "outage")] and again.item(0, "episode_id") == episode


def test_redetected_days_keep_the_episode_and_a_vanished_one_is_withdrawn_once():
    led = Ledger()
    first = led.deliver(alerts(("s1", "deficit", 10, 20), ("s2", "clipping", 1, 30)), through=30)
    # late data moved s1's start two days earlier: the same episode, nothing to say
    assert led.deliver(alerts(("s1", "deficit", 8, 20), ("s2", "clipping", 1, 30)), through=30).height == 0
    # corrected data removed s2's episode
    gone = led.deliver(alerts(("s1", "deficit", 8, 20)), through=30)
    assert led.said(gone) == [("withdrawn", "s2", "clipping")]
    assert gone.item(0, "installer_id") == "inst_a" and gone.item(0, "first_day") == day(1)
    assert led.deliver(alerts(("s1", "deficit", 8, 20)), through=30).height == 0
    # detected again later: a new episode, under a name the withdrawn one does not have
    back = led.deliver(alerts(("s1", "deficit", 8, 20), ("s2", "clipping", 1, 30)), through=30)
    assert led.said(back) == [("new", "s2", "clipping")]
    old = first.filter(pl.col("system_id") == "s2").item(0, "episode_id")
    assert back.item(0, "episode_id") != old


def test_one_episode_redetected_as_two_continues_once_and_opens_one_new():
    led = Ledger()
    led.deliver(alerts(("s1", "deficit", 1, 10)), through=10)
    split = led.deliver(alerts(("s1", "deficit", 1, 4), ("s1", "deficit", 8, 10)), through=10)
    # the earlier part continues the episode (now over: 6 days back); the later part is new and open
    assert led.said(split) == [("ended", "s1", "deficit"), ("new", "s1", "deficit")]
    assert split.get_column("episode_id").n_unique() == 2
    # another system's and another kind's episodes never continue this one
    other = led.deliver(alerts(("s1", "deficit", 1, 4), ("s1", "deficit", 8, 10), ("s2", "deficit", 1, 10),
                               ("s1", "outage", 8, 10)), through=10)
    assert led.said(other) == [("new", "s1", "outage"), ("new", "s2", "deficit")]


def test_a_system_without_judged_days_counts_its_episodes_open():
    planned = plan_notices(alerts(("s9", "outage", 1, 2)), pl.DataFrame(schema=NOTICE_SCHEMA),
                           judged(30, "s1"))
    assert planned.item(0, "open") and planned.item(0, "judged_through") is None


# ---------------------------------------------------------------------------------------------
# delivery on a real lake
# ---------------------------------------------------------------------------------------------

def _table(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` in a table's schema; columns the test does not need are null."""
    cols = [frame[f.name].to_arrow().cast(f.type) if f.name in frame.columns else pa.nulls(frame.height, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _lake(lake, current: pl.DataFrame, through: int, restricted: set[str] = frozenset()):
    from wattlake import tables as T

    systems = pl.DataFrame({"system_id": ["s1", "s2", "s3"], "subject_id": ["p1", "p2", "p3"],
                            "installer_id": ["inst_a", "inst_a", "inst_b"]})
    subjects = pl.DataFrame({"subject_id": ["p1", "p2", "p3"],
                             "restricted": [s in restricted for s in ("p1", "p2", "p3")]})
    daily = pl.DataFrame({"system_id": ["s1", "s2", "s3"] * 2,
                          "day": [day(through)] * 3 + [day(through - 1)] * 3})
    for spec, frame in ((T.SYSTEMS, systems), (T.SUBJECTS, subjects), (T.SYSTEM_DAILY, daily), (T.ALERTS, current)):
        lake.overwrite(spec.name, _table(frame, spec.schema), spec.schema, configuration=spec.configuration)


def test_send_notices_writes_a_signed_folder_per_installer_and_the_ledger(local_lake, tmp_path):
    from wattlake import tables as T
    from wattlake.exports import ExportRoot

    root = ExportRoot(str(tmp_path / "exports"))
    current = alerts(("s1", "outage", 20, 30, "high", "inst_a"), ("s2", "deficit", 2, 9, "low", "inst_a"),
                     ("s3", "dead_string", 25, 30, "medium", "inst_b"))
    _lake(local_lake, current, through=30, restricted={"p2"})
    now = dt.datetime(2025, 7, 2, 4, 30, tzinfo=dt.UTC)

    dry = send_notices(local_lake, root, now=now, dry_run=True)
    assert (dry.notices, dry.held_restricted) == (2, 1) and not local_lake.exists(T.INSTALLER_NOTICES.name)
    assert root.list() == []

    report = send_notices(local_lake, root, now=now)
    assert report.notices == 2 and report.by_notice == {"new": 2} and report.held_restricted == 1
    assert report.installers == {"inst_a": 1, "inst_b": 1}
    assert sorted(report.folders) == ["installers/inst_a/20250702T043000Z", "installers/inst_b/20250702T043000Z"]
    for rel in report.folders:
        check = verify_notices(root.folder(rel))
        assert check.ok, check.problems
        rows = pl.read_csv(root.read(f"{rel}/notices.csv"))
        assert rows.height == check.manifest["notices"] == 1
        # the restriction flags were read at the version the manifest names
        assert check.manifest["tables"][T.SUBJECTS.name] == local_lake.version(T.SUBJECTS.name)
        assert json.loads(root.read(f"{rel}/notices.json"))[0]["notice_id"] == rows.item(0, "notice_id")
        assert "s2" not in root.read(f"{rel}/notices.csv").decode()  # restricted: held back
    a = pl.read_csv(root.read("installers/inst_a/20250702T043000Z/notices.csv"))
    assert a.row(0, named=True) | {"reason": None} == {
        "notice_id": "s1:outage:2025-06-21:new:2025-07-01:high", "notice": "new",
        "episode_id": "s1:outage:2025-06-21", "system_id": "s1", "kind": "outage", "first_day": "2025-06-21",
        "last_day": "2025-07-01", "open": True, "severity": "high", "deficit_kwh": 110.0, "reason": None,
        "judged_through": "2025-07-01"}
    ledger = local_lake.read(T.INSTALLER_NOTICES.name)
    assert sorted(ledger.get_column("system_id").to_list()) == ["s1", "s3"]
    assert ledger.get_column("batch_id").unique().to_list() == ["20250702T043000Z"]

    # a tampered file is caught
    root.write("installers/inst_b/20250702T043000Z/notices.csv", b"notice_id\nforged\n")
    assert not verify_notices(root.folder("installers/inst_b/20250702T043000Z")).ok

    # the next day: nothing changed, nothing sent, no folder
    again = send_notices(local_lake, root, now=now + dt.timedelta(days=1))
    assert again.notices == 0 and again.folders == []
    # four days on: the restriction is lifted (s2's episode follows, already over), s1's and s3's ended
    _lake(local_lake, current, through=34, restricted=set())
    later = send_notices(local_lake, root, now=now + dt.timedelta(days=2))
    assert later.by_notice == {"new": 1, "ended": 2}
    sent = local_lake.read(T.INSTALLER_NOTICES.name)
    assert sent.height == 5 and sent.filter(pl.col("notice") == "new").get_column("system_id").sort().to_list() == \
        ["s1", "s2", "s3"]


def test_installer_notices_asset_and_cli(local_lake, tmp_path, capsys, monkeypatch):
    import dagster as dg

    from assets.performance import gold_installer_notices
    from pipelines.cli import main
    from pipelines.resources import ExportsResource, LakeResource
    from wattlake import tables as T

    _lake(local_lake, alerts(("s1", "outage", 20, 30), ("s3", "deficit", 1, 30, "low", "inst_b")), through=30)
    # the CLI's dry run counts and names no system
    assert main(["--lake", local_lake.root, "alerts", "notify", "--dry-run",
                 "--exports", str(tmp_path / "exports")]) == 0
    out = capsys.readouterr().out
    assert "would send 2 (2 new) to 2 installers" in out and "s1" not in out and "s3" not in out
    assert not (tmp_path / "exports").exists()

    result = dg.materialize([gold_installer_notices], resources={
        "lake": LakeResource(root=local_lake.root), "exports": ExportsResource(root=str(tmp_path / "exports"))})
    assert result.success
    meta = result.asset_materializations_for_node("gold__installer_notices")[0].metadata
    assert meta["notices"].value == 2 and meta["installers"].value == 2
    assert local_lake.read(T.INSTALLER_NOTICES.name).height == 2
    assert len(list((tmp_path / "exports" / "installers").glob("*/*/manifest.json"))) == 2
    assert main(["--lake", local_lake.root, "alerts", "notify", "--exports", str(tmp_path / "exports")]) == 0
    assert "sent 0 (no changes)" in capsys.readouterr().out


@pytest.mark.s3
def test_send_notices_to_s3_exports(local_lake, s3_env):
    """The same delivery to an S3 exports root (the moto server started by the tests)."""
    from wattlake.exports import ExportRoot

    root = ExportRoot(s3_env + "-exports")
    _lake(local_lake, alerts(("s1", "outage", 20, 30)), through=30)
    report = send_notices(local_lake, root, now=dt.datetime(2025, 7, 2, tzinfo=dt.UTC))
    assert report.notices == 1
    check = verify_notices(f"{root.root}/{report.folders[0]}")
    assert check.ok, check.problems


def test_a_failed_ledger_write_sends_the_same_notices_again(local_lake, tmp_path, monkeypatch):
    """At least once: the folder is written before the ledger, so when the ledger write fails the
    next delivery repeats the notices, with the same ids, and then stops."""
    from wattlake.exports import ExportRoot
    from wattlake.lake import Lake

    root = ExportRoot(str(tmp_path / "exports"))
    _lake(local_lake, alerts(("s1", "outage", 20, 30)), through=30)
    now = dt.datetime(2025, 7, 2, tzinfo=dt.UTC)
    real_append = Lake.append

    def broken(self, table, *a, **k):
        if table == "gold/installer_notices":
            raise OSError("lake unreachable")
        return real_append(self, table, *a, **k)

    monkeypatch.setattr(Lake, "append", broken)
    with pytest.raises(OSError):
        send_notices(local_lake, root, now=now)
    monkeypatch.setattr(Lake, "append", real_append)
    first = pl.read_csv(root.read("installers/inst_a/20250702T000000Z/notices.csv"))
    again = send_notices(local_lake, root, now=now + dt.timedelta(hours=1))
    assert again.notices == 1
    second = pl.read_csv(root.read(f"{again.folders[0]}/notices.csv"))
    assert second.get_column("notice_id").to_list() == first.get_column("notice_id").to_list()
    assert send_notices(local_lake, root, now=now + dt.timedelta(hours=2)).notices == 0


def _two_batches(lake, root) -> tuple[dt.datetime, list[str], list[str]]:
    """A first delivery, and 60 days later a second one (one episode ended): their folders."""
    current = alerts(("s1", "outage", 20, 30, "high", "inst_a"), ("s3", "dead_string", 25, 30, "medium", "inst_b"))
    _lake(lake, current, through=30)
    t0 = dt.datetime(2025, 7, 2, 4, 30, tzinfo=dt.UTC)
    first = send_notices(lake, root, now=t0).folders
    _lake(lake, alerts(("s1", "outage", 20, 30, "high", "inst_a"), ("s3", "dead_string", 25, 36, "medium", "inst_b")),
          through=40)
    second = send_notices(lake, root, now=t0 + dt.timedelta(days=60)).folders
    assert len(first) == 2 and len(second) >= 1
    return t0, first, second


def test_retention_deletes_notice_folders_sent_more_than_90_days_ago(local_lake, tmp_path, capsys):
    """Retention deletes the installer folders of batches sent over 90 days ago, files and folders;
    later batches, the ledger and a folder retention did not write stay. A dry run only counts."""
    from wattlake import tables as T
    from wattlake.audit import history
    from wattlake.exports import ExportRoot
    from wattlake.retention import POLICY, apply_retention

    root = ExportRoot(str(tmp_path / "exports"))
    t0, first, second = _two_batches(local_lake, root)
    root.write("installers/inst_a/notes/readme.txt", b"kept by hand")  # not a batch: never aged
    ledger = local_lake.read(T.INSTALLER_NOTICES.name)
    files = root.list("installers")
    day_91 = t0 + dt.timedelta(days=POLICY.notice_folders_after_days + 1)

    dry = apply_retention(local_lake, now=day_91, export_root=root, dry_run=True)
    assert (dry.notice_folders_deleted, dry.notice_files_deleted) == (2, 6)  # csv, json, manifest each
    from pipelines.cli import main

    capsys.readouterr()
    assert main(["--lake", local_lake.root, "retention", "--dry-run", "--now", day_91.isoformat(),
                 "--exports", root.root]) == 0
    out = capsys.readouterr().out
    assert "2 installer notice folders (6 files) sent more than 90 days ago would be deleted" in out
    assert "IPs would be truncated" in out and "tables to purge: " in out  # a dry run says what it would do
    assert "IPs truncated" not in out and "purged" not in out
    assert root.list("installers") == files
    # on day 90 the first batch is not yet past the limit
    assert apply_retention(local_lake, now=day_91 - dt.timedelta(days=1), export_root=root).notice_folders_deleted == 0

    report = apply_retention(local_lake, now=day_91, export_root=root)
    assert (report.notice_folders_deleted, report.notice_files_deleted) == (2, 6)
    left = root.list("installers")
    assert not [f for f in left if any(f.startswith(rel + "/") for rel in first)]
    assert not (tmp_path / "exports" / first[0]).exists()  # the emptied folder went too
    assert "installers/inst_a/notes/readme.txt" in left
    for rel in second:
        assert verify_notices(root.folder(rel)).ok
    assert local_lake.read(T.INSTALLER_NOTICES.name).equals(ledger)  # what was told stays known
    audit = json.loads(history(local_lake).filter(pl.col("request_type") == "retention")["details"][-1])
    assert audit["notice_folders_deleted"] == 2
    # nothing is sent again: the next delivery is planned from the ledger, not the folders
    assert send_notices(local_lake, root, now=day_91).notices == 0
    assert apply_retention(local_lake, now=day_91, export_root=root).notice_folders_deleted == 0


@pytest.mark.s3
def test_retention_deletes_old_notice_folders_on_s3(local_lake, s3_env):
    """The same on an S3 exports root (the moto server started by the tests): one DeleteObjects."""
    from wattlake.exports import ExportRoot
    from wattlake.retention import apply_retention

    root = ExportRoot(s3_env + "-exports")
    t0, first, second = _two_batches(local_lake, root)
    report = apply_retention(local_lake, now=t0 + dt.timedelta(days=100), export_root=root)
    assert report.notice_folders_deleted == 2
    left = root.list("installers")
    assert left and not [f for f in left if any(f.startswith(rel + "/") for rel in first)]
    assert all(any(f.startswith(rel + "/") for rel in second) for f in left)
