"""Data-subject rights on real Delta tables: export, rectify, flags, and an erasure proven on every file."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from wattlake import tables as T
from wattlake.audit import AuditEntry, history, record
from wattlake.exports import ExportRoot
from wattlake.keys import pseudonym
from wattlake.lake import Lake
from wattlake.privacy import (RectifyError, SubjectNotFound, erase, export_subject, find_subject, purge_dagster,
                              rectify, set_flag)
from wattlake.registry import land_registry


# ------------------------------------------------------------------------------------ helpers
def _parquet_text(data: bytes) -> str:
    """Every value of a Parquet file (data or checkpoint), decoded, as one text."""
    import io

    table = pq.read_table(io.BytesIO(data))
    return json.dumps(table.to_pylist(), default=str, ensure_ascii=False)


def find_in_files(files: dict[str, bytes], needles: list[str]) -> list[tuple[str, str]]:
    """(file, needle) for every needle found in a file's raw bytes or, for Parquet, decoded values."""
    hits = []
    for name, data in files.items():
        text = ""
        if data[:4] == b"PAR1":
            text = _parquet_text(data)
        elif name.endswith(".zip"):
            import io

            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                inner = {f"{name}!{n}": zf.read(n) for n in zf.namelist()}
            hits += find_in_files(inner, needles)
        for n in needles:
            if n.encode() in data or n in text or json.dumps(n)[1:-1] in text:
                hits.append((name, n))
    return hits


def local_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}


def _system_tables(lake: Lake) -> list[str]:
    return [n for n, s in T.TABLES.items() if "system_id" in s.schema.names and lake.exists(n)]


def _counts_by_system(lake: Lake) -> dict[str, dict[str, int]]:
    out = {}
    for name in _system_tables(lake):
        frame = lake.read(name).group_by("system_id").len()
        out[name] = dict(frame.iter_rows())
    return out


@pytest.fixture
def lake_copy(landed, tmp_path) -> Lake:
    src, *_ = landed
    dst = tmp_path / "lakehouse"
    shutil.copytree(src.root, dst)
    return Lake(str(dst))


@pytest.fixture
def landing_copy(small_landing, tmp_path) -> Path:
    """A copy of the small landing folder: landing after an erasure scrubs the erased subject's
    records from the folder it reads, so tests that do so must not touch the shared one."""
    return Path(shutil.copytree(small_landing[0], tmp_path / "landing-copy"))


def _richest_subject(lake: Lake) -> str:
    """The subject with quarantined raw lines (found only by content), else the first one."""
    from wattlake.privacy import _count

    best, best_n = None, -1
    for sid in sorted(lake.read(T.SUBJECTS.name).get_column("subject_id").to_list()):
        s = find_subject(lake, sid)
        n = _count(lake, T.QUARANTINE, s) * 1000 + _count(lake, T.METER_READINGS, s) // 1000
        if n > best_n and s.system_ids:
            best, best_n = sid, n
    return best


# ------------------------------------------------------------------------------------ erasure
def test_erase_leaves_no_value_of_the_subject_in_any_file(lake_copy, small_landing, tmp_path, caplog):
    lake = lake_copy
    sid = _richest_subject(lake)
    subject = find_subject(lake, sid)
    needles = subject.personal_values()
    assert {"name", "email", "iban"} <= set(subject.row.columns)
    r = subject.row.row(0, named=True)
    address = f'{r["street"]} {r["house_number"]}'
    for v in (sid, r["name"], r["email"], r["phone"], r["iban"], address, *subject.system_ids,
              *subject.systems["serial"].to_list(), *subject.systems["meter_id"].to_list()):
        assert v in needles
    # the lake really held them before (quarantine by content, meter telegrams, logs)
    before_hits = find_in_files(local_files(Path(lake.root)), needles)
    assert any("quarantine" in f for f, _ in before_hits)
    assert any("meter_readings" in f for f, _ in before_hits)
    other = sorted(set(lake.read(T.SUBJECTS.name)["subject_id"]) - {sid})[0]

    # an insurer pack naming one of the systems (kept) and an earlier research release (listed)
    exports = ExportRoot(str(tmp_path / "exports"))
    pack = exports.folder("insurers", "acme", "claim-001")
    pack.write("evidence.csv", f"system_id,kwh\n{subject.system_ids[0]},12.5\n".encode())
    pack.write("manifest.json", json.dumps({"files": pack.files}).encode())
    other_pack = exports.folder("insurers", "acme", "claim-002")
    other_pack.write("manifest.json", json.dumps({"system_id": "sys_someone_else"}).encode())
    release = AuditEntry("release")
    # the details as wattlake.research writes them (tests/test_research.py checks that it does)
    from wattlake.audit import RELEASED_SUBJECT_REFS

    record(lake, release, "released", {RELEASED_SUBJECT_REFS: [pseudonym(sid), pseudonym(other)], "k": 5})

    # a quality check whose failing-value sample names one of the systems (no system_id column)
    import datetime as dt

    check = pl.DataFrame({"table": ["bronze/inverter_readings"], "check": ["power_range"], "blocking": [False],
                          "passed": [False], "element_count": [10], "unexpected_count": [1],
                          "unexpected_sample": [f'[["{subject.system_ids[0]}", -5.0]]'], "expectation": ["x"],
                          "partition_start": ["2025-10-25"], "partition_end": ["2025-10-25"],
                          "evaluated_at_utc": [dt.datetime.now(dt.UTC)], "run_id": ["r-test"]})
    lake.append(T.CHECK_OUTCOMES.name, check, T.CHECK_OUTCOMES.schema)
    # installer notices about one of the subject's systems and another subject's system: a
    # delivered folder and the ledger (gold/installer_notices)
    from wattlake.notices import send_notices, verify_notices

    other_system = find_subject(lake, other).system_ids[0]
    extra = pl.DataFrame({"system_id": [subject.system_ids[0], other_system], "first_day": [dt.date(2025, 10, 25)] * 2,
                          "last_day": [dt.date(2025, 10, 26)] * 2, "kind": ["outage"] * 2, "severity": ["high"] * 2,
                          "deficit_kwh": [5.0, 6.0], "reason": ["no production"] * 2,
                          "installer_id": ["inst_erasure_test"] * 2})
    lake.append(T.ALERTS.name, extra, T.ALERTS.schema)
    sent = send_notices(lake, exports)
    assert sent.installers.get("inst_erasure_test") == 2
    counts_before = _counts_by_system(lake)
    n_subjects = lake.read(T.SUBJECTS.name).height
    n_checks = lake.read(T.CHECK_OUTCOMES.name).height

    report = erase(lake, sid, export_root=exports)

    assert report.outcome == "erased"
    assert report.rows[T.QUARANTINE.name] >= 1 and report.rows[T.SUBJECTS.name] == 1
    assert report.rows[T.INVERTER_READINGS.name] == sum(
        counts_before[T.INVERTER_READINGS.name].get(s, 0) for s in subject.system_ids)
    assert report.bytes_rewritten > 0 and report.files_removed > 0
    assert report.insurer_packs_kept == ["insurers/acme/claim-001"]
    assert exports.exists("insurers/acme/claim-001/evidence.csv")  # legal-claims exemption
    assert report.releases_including_subject == [release.request_id]
    # the notice about the subject's system left the installer's folder; the other one stayed, signed
    assert report.installer_notices_removed >= 1
    notice_folder = [f for f in sent.folders if "/inst_erasure_test/" in f][0]
    assert verify_notices(exports.folder(notice_folder)).ok
    kept_notices = exports.read(f"{notice_folder}/notices.csv").decode()
    assert other_system in kept_notices and subject.system_ids[0] not in kept_notices
    assert find_in_files({p: exports.read(p) for p in exports.list("installers")}, needles) == []

    # THE proof: no file under the lake root (data, logs, checkpoints, _last_checkpoint) holds a value
    files = local_files(Path(lake.root))
    assert any(f.endswith("checkpoint.parquet") for f in files) and any("_last_checkpoint" in f for f in files)
    assert find_in_files(files, needles) == []

    # other subjects' rows unchanged, table by table
    after = _counts_by_system(lake)
    for name, per_system in counts_before.items():
        expected = {s: n for s, n in per_system.items() if s not in subject.system_ids}
        assert after[name] == expected, name
    assert lake.read(T.SUBJECTS.name).height == n_subjects - 1
    # the rewritten files do not break what reads the tables next (delta-rs writes them with
    # string_view columns): the next alert run, and an analyst's query filtered on a system
    from wattlake.modelling import write_alerts
    from wattlake.query import connect

    write_alerts(lake)
    n_other = counts_before[T.PV_INTERVALS.name][other_system]
    assert connect(lake).sql(f"select count(*) from silver.pv_intervals where system_id = '{other_system}'"
                             ).fetchall() == [(n_other,)]
    checks = lake.read(T.CHECK_OUTCOMES.name)
    assert checks.height == n_checks  # redacted, not dropped
    assert checks.filter(pl.col("run_id") == "r-test")["unexpected_sample"].item() == '[["[erased]", -5.0]]'
    # the tombstone names the subject and its devices only by keyed pseudonyms (for landing)
    from wattlake.privacy import erased_identifier_refs

    assert pseudonym(subject.systems["serial"][0]) in erased_identifier_refs(lake)
    # the address (street and number and postcode together) is nowhere; a street name alone may
    # still appear, but only as a neighbour's street
    addresses = [pl.read_parquet(p).select("street", "house_number", "postcode").rows()
                 for p in Path(lake.uri(T.SUBJECTS.name)).rglob("*.parquet") if "_delta_log" not in str(p)]
    assert (r["street"], r["house_number"], r["postcode"]) not in [a for rows in addresses for a in rows]
    street_hits = find_in_files(files, [r["street"]])
    assert not street_hits or r["street"] in lake.read(T.SUBJECTS.name)["street"].to_list()

    # the audit holds the outcome, the kept pack and the release, and no raw id
    audit = history(lake, sid)
    erase_row = audit.filter(pl.col("request_type") == "erase").row(0, named=True)
    details = json.loads(erase_row["details"])
    # the claim folder is named by the policy number: the audit keeps a keyed reference of it
    assert details["insurer_packs_kept_legal_claims"] == [f"insurers/acme/{pseudonym('claim-001')}"]
    assert "claim-001" not in erase_row["details"]
    assert details["earlier_releases_including_subject"] == [release.request_id]
    assert sid not in json.dumps(history(lake).to_dicts(), default=str)

    # every table reads and time-travels to the version after the erasure, also after new commits
    versions = {name: lake.version(name) for name in lake.tables()}
    for name, v in versions.items():
        assert lake.read(name, version=v).height == lake.read(name).height
    # re-landing the registry snapshot does not bring the subject back (tombstone), only counts are logged
    landing = Path(shutil.copytree(small_landing[0], tmp_path / "landing-copy"))
    with caplog.at_level(logging.INFO, logger="wattlake.registry"):
        land_registry(lake, landing)
    assert sid not in lake.read(T.SUBJECTS.name)["subject_id"].to_list()
    # and the subject left the landing folder's registry files; nothing else was touched
    shared = ("registry/",)
    registry = {f: b for f, b in local_files(landing).items() if f.startswith(shared)}
    assert registry and find_in_files(registry, needles) == []
    assert {f: b for f, b in local_files(landing).items() if not f.startswith(shared)} == \
        {f: b for f, b in local_files(small_landing[0]).items() if not f.startswith(shared)}
    assert not set(subject.system_ids) & set(lake.read(T.SYSTEMS.name)["system_id"].to_list())
    assert any("dropped 1 erased subjects" in m for m in caplog.messages)
    assert not any(n in m for m in caplog.messages for n in needles)
    lake.append(T.QUARANTINE.name, lake.read(T.QUARANTINE.name).head(1).with_columns(pl.lit(99999).alias("line_no")),
                T.QUARANTINE.schema)
    assert lake.read(T.QUARANTINE.name, version=versions[T.QUARANTINE.name]).height + 1 == \
        lake.read(T.QUARANTINE.name).height

    # idempotent: a second request finds nothing and says so
    again = erase(lake, sid, export_root=exports)
    assert again.outcome == "already_erased"
    assert find_in_files(local_files(Path(lake.root)), needles) == []


def test_erase_clears_the_landing_folder_and_nothing_else(lake_copy, small_landing, tmp_path):
    """The raw files in the landing folder are storage too: the subject's own day files are deleted,
    their lines and rows leave the shared files, and landing everything again brings nothing back."""
    import hashlib

    from wattlake.landing import land
    from wattlake.privacy import erase_landing

    lake = lake_copy
    landing = Path(shutil.copytree(small_landing[0], tmp_path / "landing"))
    sid = _richest_subject(lake)
    subject = find_subject(lake, sid)
    needles = subject.personal_values()
    em_ids = subject.systems["em_id"].to_list()
    before = {str(p.relative_to(landing)): p.read_bytes() for p in landing.rglob("*") if p.is_file()}
    hits = {f for f, _ in find_in_files(before, needles)}
    assert any(f.startswith("meter/") for f in hits) and any(f.startswith("inverter/") for f in hits)
    assert {"registry/subjects.csv", "registry/systems.csv"} <= hits
    own = {f for f in before if f.split("/")[0] in ("meter", "device") and Path(f).stem in em_ids}
    assert own

    report = erase(lake, sid, landing_root=landing)

    after = {str(p.relative_to(landing)): p.read_bytes() for p in landing.rglob("*") if p.is_file()}
    assert find_in_files(after, needles) == []  # THE proof, over every file of the folder
    assert set(before) - set(after) == own and set(after) <= set(before)
    assert report.landing.files_deleted == len(own)
    rewritten = {f for f in after if after[f] != before[f]}
    assert report.landing.files_rewritten == len(rewritten) > 0
    serials = subject.systems["serial"].to_list()
    for f in rewritten:  # only the subject's lines left a shared text file; the rest is byte-identical
        if f.endswith((".jsonl", ".csv")):
            gone = [ln for ln in before[f].split(b"\n") if ln not in after[f].split(b"\n")]
            assert gone and all(any(x.encode() in ln for x in [sid, *serials, *subject.system_ids]) for ln in gone)
            if f.endswith(".jsonl"):  # message lines are blanked: every other line keeps its number
                kept = [b"" if ln in gone else ln for ln in before[f].split(b"\n")]
            else:
                kept = [ln for ln in before[f].split(b"\n") if ln not in gone]
            assert hashlib.sha256(b"\n".join(kept)).digest() == hashlib.sha256(after[f]).digest()
    # idempotent, and a full re-landing of the folder finds none of the subject's records
    assert vars(erase_landing(landing, subject)) == {"files_deleted": 0, "files_rewritten": 0, "lines_removed": 0}
    for source in ("inverter", "meter", "device"):
        land(lake, landing, source, sorted(p.name for p in (landing / source).iterdir()))
    land_registry(lake, landing)
    assert find_in_files(local_files(Path(lake.root)), needles) == []


def test_scrub_after_an_erasure_without_the_folder_equals_erasing_with_it(lake_copy, small_landing, tmp_path):
    """The landing folder was not given (or not mounted) at the erasure: the tombstones' keyed
    pseudonyms alone later find the subject's records, and the folder ends up byte for byte as an
    erasure with the folder would have left it."""
    from wattlake.privacy import erased_in_landing, scrub_landing

    sid = _richest_subject(lake_copy)
    subject = find_subject(lake_copy, sid)
    needles = subject.personal_values()
    other = Lake(str(shutil.copytree(lake_copy.root, tmp_path / "other-lake")))
    with_folder = Path(shutil.copytree(small_landing[0], tmp_path / "with"))
    later = Path(shutil.copytree(small_landing[0], tmp_path / "later"))
    erase(lake_copy, sid, landing_root=with_folder)
    erase(other, sid)
    assert find_in_files(local_files(later), needles)  # untouched so far
    ids, em_ids = erased_in_landing(other, later)
    assert set(em_ids) == set(subject.systems["em_id"].to_list()) and set(em_ids) <= set(ids)
    assert set(subject.systems["serial"].to_list()) | {sid} | set(subject.system_ids) <= set(ids)

    done = scrub_landing(other, later)
    assert local_files(later) == local_files(with_folder)
    assert find_in_files(local_files(later), needles) == []
    assert done.files_deleted > 0 and done.files_rewritten > 0 and done.lines_removed > 0
    audit = history(other).filter(pl.col("request_type") == "scrub_landing").row(0, named=True)
    assert json.loads(audit["details"])["files_deleted"] == done.files_deleted and audit["subject_ref"] is None
    assert not [n for n in needles if n in json.dumps(history(other).to_dicts(), default=str)]
    # idempotent; and with no erasure on record nothing is read or changed
    assert vars(scrub_landing(other, later)) == {"files_deleted": 0, "files_rewritten": 0, "lines_removed": 0}
    fresh = Lake(str(tmp_path / "no-erasures"))
    assert erased_in_landing(fresh, small_landing[0]) == ([], [])


def test_relanding_after_erase_drops_the_subjects_records_and_counts_them(lake_copy, landing_copy):
    """A stick that still reports, or an old landing day landed again, must not bring an erased
    subject back: not as readings (unknown device now) and not as quarantine raw text."""
    from wattlake.landing import land

    lake = lake_copy
    root = landing_copy
    sid = _richest_subject(lake)
    subject = find_subject(lake, sid)
    needles = subject.personal_values()
    readings = (T.INVERTER_READINGS.name, T.METER_READINGS.name, T.DEVICE_READINGS.name)
    before = _counts_by_system(lake)
    subject_rows = sum(n for name in readings for s, n in before[name].items() if s in subject.system_ids)
    assert subject_rows > 0
    erase(lake, sid)
    counts_after_erase = _counts_by_system(lake)
    n_quarantine = lake.read(T.QUARANTINE.name).height

    dropped = 0
    for source in ("inverter", "meter", "device"):
        days = sorted(p.name for p in (root / source).iterdir() if p.is_dir())
        report = land(lake, root, source, days)
        assert report.records == report.landed + report.duplicates + report.quarantined + report.erased
        assert report.landed == 0  # everyone else's rows are already there
        dropped += report.erased
        assert (report.scrubbed_files > 0) == (report.erased > 0)
    # every reading of the subject's systems (and its duplicates and bad lines) dropped and counted
    assert dropped >= subject_rows
    assert lake.read(T.QUARANTINE.name).height == n_quarantine
    assert _counts_by_system(lake) == counts_after_erase
    assert find_in_files(local_files(Path(lake.root)), needles) == []
    # the raw copy went too: the landing folder holds nothing of the subject (except registry
    # snapshots, which the registry landing scrubs), and landing it again finds nothing to drop
    day_files = {f: b for f, b in local_files(root).items() if f.startswith(("inverter/", "meter/", "device/"))}
    assert find_in_files(day_files, needles) == []
    for source in ("inverter", "meter", "device"):
        again = land(lake, root, source, sorted(p.name for p in (root / source).iterdir() if p.is_dir()))
        assert again.erased == 0 and again.scrubbed_files == 0 and again.landed == 0
    # the scrub blanked the subject's lines instead of removing them: every other line keeps its
    # number, so the quarantine (keyed on file and line) recognises its rows and gains none
    assert lake.read(T.QUARANTINE.name).height == n_quarantine


def test_erase_resumes_after_a_crash_midway(lake_copy, landing_copy, monkeypatch):
    lake = lake_copy
    sid = _richest_subject(lake)
    needles = find_subject(lake, sid).personal_values()
    real = Lake.purge_history
    calls = {"n": 0}

    def crash_on_third(self, table, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(self, table, *a, **k)

    monkeypatch.setattr(Lake, "purge_history", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        erase(lake, sid)
    monkeypatch.setattr(Lake, "purge_history", real)
    stone = lake.read(T.ERASURES.name).row(0, named=True)
    assert stone["status"] == "in_progress" and len(json.loads(stone["tables_done"])) == 2
    assert stone["subject_ref"] == pseudonym(sid)
    # meanwhile the registry is re-landed (the erasure still needs those rows) and a day re-lands
    land_registry(lake, landing_copy)
    from wattlake.landing import land

    land(lake, landing_copy, "inverter", sorted(p.name for p in (landing_copy / "inverter").iterdir())[:1])

    report = erase(lake, sid)
    assert report.resumed and report.outcome == "erased"
    assert lake.read(T.ERASURES.name).row(0, named=True)["status"] == "done"
    assert find_in_files(local_files(Path(lake.root)), needles) == []
    land_registry(lake, landing_copy)  # done: now the snapshot's rows of the subject are dropped
    assert sid not in lake.read(T.SUBJECTS.name)["subject_id"].to_list()


def test_unknown_subject_is_refused(lake_copy):
    with pytest.raises(SubjectNotFound) as exc:
        erase(lake_copy, "sub_does_not_exist")
    assert "sub_does_not_exist" not in str(exc.value)


def test_erase_removes_the_subject_from_dagster_storage(lake_copy, tmp_path):
    import dagster as dg

    lake = lake_copy
    sid = _richest_subject(lake)
    email = find_subject(lake, sid).row["email"].item()
    other_email = lake.read(T.SUBJECTS.name).filter(pl.col("subject_id") != sid)["email"][0]

    @dg.op
    def leaky(context):  # a mistake our code never makes: personal data in an event
        context.log.info(f"contacting {email}")

    @dg.op
    def clean(context):
        context.log.info("counted 3 rows")

    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        leak_run = dg.GraphDefinition("leak", node_defs=[leaky]).to_job().execute_in_process(instance=instance)
        ok_run = dg.GraphDefinition("ok", node_defs=[clean]).to_job().execute_in_process(instance=instance)
        home = Path(instance.root_directory)
        assert find_in_files(local_files(home), [email])  # the leak is on disk

        erase(lake, sid, instance=instance)

        run_ids = {r.run_id for r in instance.get_runs()}
        assert leak_run.run_id not in run_ids and ok_run.run_id in run_ids
        assert find_in_files(local_files(home), [email]) == []
        assert other_email not in json.dumps([str(e) for e in instance.all_logs(ok_run.run_id)])
        assert purge_dagster(instance, [email]) == 0  # idempotent


def test_pipeline_events_hold_no_personal_data(landed):
    """Our assets put counts into Dagster events, never a name, address, contact or device id."""
    from dagster._serdes import serialize_value

    lake, *_, bronze = landed
    subjects, systems = lake.read(T.SUBJECTS.name), lake.read(T.SYSTEMS.name)
    needles = [v for c in ("name", "email", "phone", "iban", "street") for v in subjects[c].to_list()]
    needles += [v for c in ("serial", "meter_id", "em_id") for v in systems[c].to_list() if v]
    events = "\n".join(serialize_value(e) for e in bronze.all_events)
    assert len(events) > 10_000
    assert [n for n in needles if n in events] == []


# ------------------------------------------------------------------------------------ export
def test_export_holds_exactly_the_subjects_rows(lake_copy, tmp_path):
    lake = lake_copy
    sid = _richest_subject(lake)
    subject = find_subject(lake, sid)
    # the recipients: a research release that included the subject, an insurer pack and installer
    # notices about one of the systems
    from wattlake.audit import RELEASED_SUBJECT_REFS
    from wattlake.notices import send_notices

    exports = ExportRoot(str(tmp_path / "exports"))
    record(lake, AuditEntry("release"), "released",
           {RELEASED_SUBJECT_REFS: [pseudonym(sid)], "partner": "tu-delft", "release_id": "rel-1"})
    pack = exports.folder("insurers", "acme", "claim-001")
    pack.write("evidence.csv", f"system_id,kwh\n{subject.system_ids[0]},1\n".encode())
    pack.write("manifest.json", json.dumps({"files": pack.files}).encode())
    lake.append(T.ALERTS.name, pl.DataFrame({
        "system_id": [subject.system_ids[0]], "first_day": [dt.date(2025, 10, 25)], "last_day": [dt.date(2025, 10, 26)],
        "kind": ["outage"], "severity": ["high"], "deficit_kwh": [5.0], "reason": ["x"], "installer_id": ["inst_x"]}),
        T.ALERTS.schema)
    send_notices(lake, exports)
    report = export_subject(lake, sid, tmp_path / "export", export_root=exports)
    out = Path(report.path)
    sent_to = json.loads((out / "recipients.json").read_text())
    assert {r["recipient"] for r in sent_to} >= {"research partner tu-delft", "insurer acme", "installer inst_x"}
    assert "recipients.json" in (out / "README.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    by_path = {f["path"]: f for f in manifest["files"]}

    # every system-keyed table: counts equal the table filtered by the subject's systems
    for name in _system_tables(lake):
        if name in (T.SYSTEMS.name, T.INSTALLATION_PHOTOS.name):
            continue
        expected = lake.read(name).filter(pl.col("system_id").is_in(subject.system_ids)).height
        stem = name.replace("/", "__")
        got = pl.read_parquet(out / f"{stem}.parquet")
        assert got.height == expected == by_path[f"{stem}.parquet"]["rows"], name
        assert pl.read_csv(out / f"{stem}.csv", infer_schema=False).height == expected
        assert set(got["system_id"].unique()) <= set(subject.system_ids)
        assert stem in (out / "README.md").read_text()
    assert pl.read_parquet(out / "bronze__inverter_readings.parquet").height > 0
    assert pl.read_parquet(out / "bronze__quarantine.parquet").height >= 1  # found by content
    personal = json.loads((out / "personal_data.json").read_text())
    assert personal["subject"]["email"] == subject.row["email"].item()
    # personal data: only the operator's account can read the export
    assert (out.stat().st_mode & 0o777) == 0o700
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o600}
    assert sorted(s["system_id"] for s in personal["systems"]) == subject.system_ids

    # nothing of anyone else: no other subject's id, system, serial, meter, name or e-mail
    subjects, systems = lake.read(T.SUBJECTS.name), lake.read(T.SYSTEMS.name)
    others = subjects.filter(pl.col("subject_id") != sid)
    other_systems = systems.filter(pl.col("subject_id") != sid)
    needles = [*others["subject_id"], *others["email"], *others["name"], *others["iban"],
               *other_systems["system_id"], *other_systems["serial"], *other_systems["meter_id"]]
    assert find_in_files(local_files(out), needles) == []
    # the audit has the export, with counts only
    row = history(lake, sid).filter(pl.col("request_type") == "export").row(0, named=True)
    assert row["request_id"] == report.request_id and subject.row["email"].item() not in row["details"]

    zipped = export_subject(lake, sid, tmp_path / "export2", as_zip=True)
    assert (Path(zipped.path).stat().st_mode & 0o777) == 0o600
    with zipfile.ZipFile(zipped.path) as zf:
        assert set(zf.namelist()) == {p.name for p in out.iterdir()}
    assert find_in_files({"e.zip": Path(zipped.path).read_bytes()}, needles) == []


# ------------------------------------------------------------------------------ rectify and flags
def test_rectify_changes_fields_audits_names_only_and_survives_relanding(lake_copy, small_landing):
    lake = lake_copy
    sid = _richest_subject(lake)
    old_email = find_subject(lake, sid).row["email"].item()
    rectify(lake, sid, {"email": "new.address@example.org", "city": "Zwolle"})
    row = find_subject(lake, sid).row.row(0, named=True)
    assert row["email"] == "new.address@example.org" and row["city"] == "Zwolle"
    audit = history(lake, sid).filter(pl.col("request_type") == "rectify").row(0, named=True)
    from wattlake.keys import key_check

    assert json.loads(audit["details"]) == {"fields": ["city", "email"], "key_check": key_check()}
    # the inaccurate value is not kept in older versions either
    assert find_in_files(local_files(Path(lake.uri(T.SUBJECTS.name))), [old_email]) == []
    land_registry(lake, small_landing[0])  # the CRM snapshot still has the old value
    assert find_subject(lake, sid).row["email"].item() == "new.address@example.org"

    for bad in ({"subject_id": "x"}, {"consent_research": "true"}, {"shoe_size": "44"}):
        with pytest.raises(RectifyError) as exc:
            rectify(lake, sid, bad)
        assert list(bad.values())[0] not in str(exc.value)
    # malformed values change nothing, and the message names the rule, not the value
    before = lake.read(T.SUBJECTS.name)
    for bad in ({"email": "not-an-email"}, {"iban": "XX"}, {"iban": "NL91ABNA0417164301"},  # check digits off
                {"phone": "call me"}, {"postcode": "ABCD 12"}, {"city": "  "},
                {"city": "Delft", "email": "also@wrong"}):
        with pytest.raises(RectifyError) as exc:
            rectify(lake, sid, bad)
        assert not any(v in str(exc.value) for v in bad.values() if v.strip())
    assert lake.read(T.SUBJECTS.name).equals(before)
    rectify(lake, sid, {"iban": "NL91 ABNA 0417 1643 00", "postcode": "2611 AB", "phone": "+31 (0)15 123 4567"})


def test_restrict_object_consent_set_flags_with_history(lake_copy, small_landing, tmp_path):
    lake = lake_copy
    sid = _richest_subject(lake)
    set_flag(lake, sid, "restrict", True)
    version = lake.version(T.SUBJECTS.name)
    again = set_flag(lake, sid, "restrict", True)  # asked twice: recorded, nothing rewritten
    assert lake.version(T.SUBJECTS.name) == version
    assert history(lake).filter(pl.col("request_id") == again)["outcome"].to_list() == ["unchanged"]
    set_flag(lake, sid, "object", True)
    set_flag(lake, sid, "consent", False)
    set_flag(lake, sid, "consent", True)
    land_registry(lake, small_landing[0])
    row = find_subject(lake, sid).row.row(0, named=True)
    assert row["restricted"] is True and row["objected"] is True and row["consent_research"] is True
    others = lake.read(T.SUBJECTS.name).filter(pl.col("subject_id") != sid)
    assert not others["restricted"].any()
    report = export_subject(lake, sid, tmp_path / "x")
    consent = pl.read_parquet(Path(report.path) / "consent_history.parquet")
    assert consent["request_type"].to_list() == ["restrict", "restrict", "object", "consent", "consent"]
    assert [json.loads(d)["value"] for d in consent["details"]] == [True, True, True, False, True]


def test_cli_subject_commands_print_no_personal_data(lake_copy, landing_copy, tmp_path, capsys, monkeypatch):
    from pipelines.cli import main

    lake = lake_copy
    sid = _richest_subject(lake)
    needles = [v for v in find_subject(lake, sid).personal_values() if v != sid]
    base = ["--lake", lake.root]
    assert main(base + ["subject", "export", sid, "--out", str(tmp_path / "e"), "--zip"]) == 0
    assert main(base + ["subject", "rectify", sid, "--set", "phone=+31 6 00000000"]) == 0
    assert main(base + ["subject", "rectify", sid, "--set", "subject_id=evil"]) == 2
    assert main(base + ["subject", "restrict", sid]) == 0
    said = capsys.readouterr().out
    assert ": flag set" in said.splitlines()[-1]
    assert main(base + ["subject", "restrict", sid]) == 0  # asked again: said so
    said += capsys.readouterr().out
    assert ": flag already set" in said.splitlines()[-1]
    assert main(base + ["subject", "consent", sid, "--withdraw"]) == 0
    assert main(base + ["retention", "--dry-run", "--now", "2026-06-01"]) == 0
    before = local_files(landing_copy)
    assert main(base + ["retention", "--dry-run", "--now", "2026-06-01", "--landing", str(landing_copy)]) == 0
    assert local_files(landing_copy) == before  # a dry run counts, changes nothing
    email = lake.read(T.SUBJECTS.name).filter(pl.col("subject_id") == sid)["email"][0]
    outs = [said + capsys.readouterr().out]  # everything printed is checked for personal data below
    assert main(base + ["subject", "find", "--email", email.upper()]) == 0
    found = capsys.readouterr().out
    assert found.startswith(sid) and "matched on email" in found and email not in found
    assert main(base + ["subject", "find", "--house-number", "1"]) == 2
    # an erasure searches every place or is told on the command line which one it need not
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(base + ["subject", "erase", sid]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err
    assert main(base + ["subject", "erase", sid, "--no-dagster", "--landing", str(tmp_path / "nowhere")]) == 2
    assert "landing folder" in capsys.readouterr().err
    assert find_subject(lake, sid).row.height == 1  # refused before anything was removed
    assert main(base + ["subject", "erase", sid, "--no-dagster", "--no-landing"]) == 0
    outs.append(capsys.readouterr().out)
    assert "not searched, as asked: Dagster storage, landing folder" in outs[-1]
    assert main(base + ["subject", "find", "--email", email]) == 1  # gone with the subject
    assert "no subject matches" in capsys.readouterr().out
    erased = history(lake).filter(pl.col("outcome") == "erased").row(0, named=True)
    assert json.loads(erased["details"])["dagster_searched"] is False
    assert json.loads(erased["details"])["landing"] is None
    assert main(base + ["subject", "scrub-landing", "--landing", str(landing_copy)]) == 0
    assert main(base + ["subject", "scrub-landing", "--landing", str(tmp_path / "nowhere")]) == 2
    out = "".join(outs) + capsys.readouterr().out
    assert "scrub-landing" in out and "files deleted" in out
    assert "landing folder:" in out and "addresses would be truncated" in out  # the retention above is a dry run
    assert find_in_files(local_files(landing_copy), needles) == []
    assert "erase req_" in out and (tmp_path / "e.zip").is_file()
    assert [n for n in needles + ["+31 6 00000000"] if n in out] == []

    # refusals: a reason on stderr, no traceback, exit 1 (2 for a malformed argument); audited
    from wattlake.keys import pseudonym

    assert main(base + ["subject", "export", sid, "--out", str(tmp_path / "e2")]) == 1
    err = capsys.readouterr().err
    assert "erased (done, request req_" in err and "Traceback" not in err and sid not in err
    assert main(base + ["subject", "restrict", "sub_nobody"]) == 1
    assert "not in restricted/subjects (check the id" in capsys.readouterr().err
    refused = history(lake).filter(pl.col("outcome") == "refused")
    assert set(refused["subject_ref"]) == {pseudonym(sid), pseudonym("sub_nobody")}
    assert set(refused["request_type"]) == {"export", "restrict"}
    assert main(["--lake", str(tmp_path / "typo"), "tables"]) == 2  # a path that does not exist
    assert "no lake at" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    for flag in ("--landing", "--exports"):  # named for retention, and not there: nothing is done
        assert main(base + ["retention", "--dry-run", flag, str(tmp_path / "typo")]) == 2
        assert f"error: {flag} {tmp_path / 'typo'} is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(base + ["retention", "--dry-run", "--now", "2026-13-01"])
    assert bad.value.code == 2 and "not an ISO 8601 time" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(base + ["land", "--start", "2025-06-31"])
    assert bad.value.code == 2 and "not a day YYYY-MM-DD" in capsys.readouterr().err
    assert main(base + ["--landing", str(landing_copy), "land", "--start", "2025-10-27", "--end", "2025-10-25"]) == 2
    assert "is before --start" in capsys.readouterr().err
    assert main(base + ["--landing", str(landing_copy), "land", "--start", "2024-01-01", "--end", "2024-01-02"]) == 1
    assert "no landing day in 2024-01-01..2024-01-02" in capsys.readouterr().err


def test_a_replaced_pseudonym_key_is_refused_not_used(lake_copy, small_landing, tmp_path, monkeypatch, capsys):
    """A lost key file is silently replaced by a new key, and with it no stored pseudonym matches:
    an erased subject would come back with the next registry snapshot. Every audit row records a
    check value of the key, and the code that matches stored pseudonyms refuses another key."""
    from pipelines.cli import main
    from wattlake.keys import KeyMismatch
    from wattlake.privacy import erased_refs
    from wattlake.registry import land_registry

    lake = lake_copy
    sid = _richest_subject(lake)
    erase(lake, sid)
    assert sid not in lake.read(T.SUBJECTS.name)["subject_id"].to_list()

    monkeypatch.setenv("WATTLAKE_KEY_DIR", str(tmp_path / "empty-key-dir"))  # the key file is gone
    with pytest.raises(KeyMismatch, match="not the key this lake's audit and erasures were written with"):
        land_registry(lake, small_landing[0])  # the snapshot still lists the erased subject
    with pytest.raises(KeyMismatch):
        erased_refs(lake)
    assert main(["--lake", lake.root, "subject", "export", sid, "--out", str(tmp_path / "x")]) == 1
    assert "restore the original key" in capsys.readouterr().err
    assert sid not in lake.read(T.SUBJECTS.name)["subject_id"].to_list()  # nothing came back

    monkeypatch.undo()  # the original key: the registry lands, without the erased subject
    land_registry(lake, small_landing[0])
    assert sid not in lake.read(T.SUBJECTS.name)["subject_id"].to_list()


def test_find_subjects_by_what_a_request_quotes(lake_copy, capsys):
    from pipelines.cli import main
    from wattlake.privacy import find_subjects

    lake = lake_copy
    subjects = lake.read(T.SUBJECTS.name).sort("subject_id")
    systems = lake.read(T.SYSTEMS.name)
    owner = systems.get_column("subject_id").value_counts().sort(["count", "subject_id"]).row(-1, named=True)
    sid = owner["subject_id"]
    me = subjects.filter(pl.col("subject_id") == sid).row(0, named=True)
    mine = systems.filter(pl.col("subject_id") == sid).sort("system_id")
    other = subjects.filter(pl.col("subject_id") != sid).row(0, named=True)

    def ids(**q):
        return find_subjects(lake, **q).get_column("subject_id").to_list()

    assert ids(email=f"  {me['email'].upper()} ") == [sid]  # trimmed, any case
    digits = me["phone"].replace("+31", "").replace(" ", "")
    assert ids(phone=f"0{digits[:1]}-{digits[1:]}") == [sid] and ids(phone=f"0031{digits}") == [sid]
    assert sid in ids(postcode=me["postcode"].replace(" ", "").lower())  # a postcode is shared by neighbours
    assert ids(postcode=me["postcode"], house_number=f" {me['house_number'].upper()}") == [sid]
    assert ids(device_id=mine.row(0, named=True)["serial"]) == [sid]
    assert ids(device_id=mine.row(0, named=True)["em_id"], system_id=mine.row(0, named=True)["system_id"]) == [sid]
    meter = mine.row(0, named=True)["meter_id"]  # as the telegram carries it: the equipment id's ASCII in hex
    assert ids(device_id=meter) == ids(device_id=bytes.fromhex(meter).decode()) == ids(device_id=meter.upper()) == [sid]
    assert ids(email=me["email"], device_id=systems.filter(pl.col("subject_id") == other["subject_id"])
               .row(0, named=True)["serial"]) == []  # every field must match, of one subject
    found = find_subjects(lake, email=me["email"])
    assert found.row(0, named=True) == {"subject_id": sid, "systems": mine.height, "matched_on": ["email"]}
    with pytest.raises(ValueError, match="postcode"):
        find_subjects(lake, house_number="12")
    with pytest.raises(ValueError, match="cannot look subjects up by"):
        find_subjects(lake, name=me["name"])
    with pytest.raises(ValueError, match="at least one"):
        find_subjects(lake, email="  ")
    lookups = history(lake).filter(pl.col("request_type") == "lookup")
    assert set(lookups["subject_ref"]) >= {pseudonym(sid)}
    assert {tuple(json.loads(d)["matched_on"]) for d in lookups["details"]} >= {("email",), ("phone",)}
    logged = json.dumps(lookups.to_dicts(), default=str)
    assert [v for v in (me["email"], me["phone"], me["postcode"], sid, mine["serial"][0]) if v in logged] == []
    # the CLI warns that a postcode alone may be a neighbour's, one match or several; not with a number
    capsys.readouterr()
    assert main(["--lake", lake.root, "subject", "find", "--postcode", me["postcode"]]) == 0
    one = len(ids(postcode=me["postcode"])) == 1
    assert ("neighbours" if one else "narrow the lookup") in capsys.readouterr().out
    assert main(["--lake", lake.root, "subject", "find", "--postcode", me["postcode"],
                 "--house-number", me["house_number"]]) == 0
    assert "neighbours" not in capsys.readouterr().out
