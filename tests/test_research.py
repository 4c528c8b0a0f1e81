"""Research releases (wattlake.research, ``wattlake release``) on real Delta tables, local and S3.

A demo-like lake (the generator's registry for 40 systems, seed 42, as in ``make demo``, with
one week of hourly PV, daily gold rows, 15-min meter counters and alerts whose truth the test
knows) is written to Delta; releases cut from it are checked with pycanon, joined back to the
registry (linkage), searched for personal data, and their audit rows inspected. The small fleet
of the ``landed`` fixture (materialised through Dagster) is released end to end with k=2, l=2.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal
import pytest
from pycanon import anonymity

from pipelines.cli import main
from wattlake import research as R
from wattlake import tables as T
from wattlake.audit import RELEASED_SUBJECT_REFS, history
from wattlake.exports import ExportRoot
from wattlake.generator.registry import build_fleet
from wattlake.keys import pseudonym
from wattlake.lake import Lake

START = dt.date(2025, 1, 1)
DAYS = 7
PERIOD = f"{START}:{START + dt.timedelta(days=DAYS - 1)}"
HOME_COLUMNS = {"row_id", "class_id", "location", "kwp_range", "install_year_range", "tilt_deg_range",
                "azimuth_deg_range", "inverter", "ev_charger", "heat_pump", *R.SENSITIVE}
SERIES_COLUMNS = set(R.SERIES_DEFINITIONS)


# ------------------------------------------------------------------------------------------
# a demo-like lake
# ------------------------------------------------------------------------------------------
def _full(frame: pl.DataFrame, spec: T.TableSpec) -> pl.DataFrame:
    """Add the schema's other columns as nulls."""
    missing = [f.name for f in spec.schema if f.name not in frame.columns]
    return frame.with_columns(pl.lit(None).alias(c) for c in missing)


def build_lake(lake: Lake, n: int = 40, seed: int = 42) -> dict:
    """Registry + silver/gold/meter tables for ``n`` generator homes over DAYS days; returns the truth."""
    f = build_fleet(n, START, seed)
    systems, subjects = f.systems, f.subjects.with_columns(pl.col("created_at").cast(pl.String))
    lake.overwrite(T.SYSTEMS.name, systems, T.SYSTEMS.schema, configuration=T.SYSTEMS.configuration)
    lake.overwrite(T.SUBJECTS.name, subjects, T.SUBJECTS.schema, configuration=T.SUBJECTS.configuration)
    rng = np.random.default_rng(seed)
    hours = np.arange(DAYS * 24)
    ts = np.datetime64(START, "h") + hours
    hod = hours % 24
    sun = np.clip(np.sin((hod - 8) / 8 * np.pi), 0, None)  # 08:00-16:00 UTC in January
    kwp = systems["kwp"].to_numpy()
    quality = rng.uniform(0.55, 1.0, n)  # per home: production differs between homes
    poa = sun[None, :] * rng.uniform(0.2, 0.6, (1, len(hours)))  # kWh/m2 per hour, shared weather
    pv = poa * kwp[:, None] * 0.8 * quality[:, None]
    load = (f.annual_load_kwh / 8760)[:, None] * rng.uniform(0.3, 2.0, (n, len(hours))) \
        + (f.has_hp * 0.9)[:, None] + (f.has_ev * 0.4)[:, None]
    sid = systems["system_id"].to_numpy()
    pv_rows = pl.DataFrame({
        "system_id": np.repeat(sid, len(hours)), "ts_utc": np.tile(ts, n).astype("datetime64[us]"),
        "actual_energy_kwh": pv.ravel(), "night": np.tile(sun == 0, n),
    }).with_columns(pl.col("ts_utc").dt.replace_time_zone("UTC"), pl.col("ts_utc").dt.date().alias("day"),
                    pl.lit(12, dtype=pl.Int32).alias("n_readings"))
    lake.overwrite(T.PV_INTERVALS.name, _full(pv_rows, T.PV_INTERVALS), T.PV_INTERVALS.schema, partition_by="day")
    daily = pv_rows.join(pl.DataFrame({"system_id": sid, "kwp": kwp}), on="system_id").with_columns(
        pl.Series("poa", np.tile(poa[0], n))).group_by("system_id", "day").agg(
        pl.col("actual_energy_kwh").sum().alias("actual_kwh"), pl.col("poa").sum().alias("reference_yield_h"),
        pl.col("kwp").first())
    lake.overwrite(T.SYSTEM_DAILY.name, _full(daily, T.SYSTEM_DAILY), T.SYSTEM_DAILY.schema, partition_by="day")
    # meter: 15-min counters of the net flow (import = load - pv when positive); one counter reset
    q = 4
    net = np.repeat((load - pv) / q, q, axis=1)
    imp, exp = np.clip(net, 0, None), np.clip(-net, 0, None)
    c_imp = 5000 + np.concatenate([np.zeros((n, 1)), np.cumsum(imp, axis=1)], axis=1)
    c_exp = 800 + np.concatenate([np.zeros((n, 1)), np.cumsum(exp, axis=1)], axis=1)
    c_imp[3, 200:] -= 4000  # meter swap on home 3: the counter jumps down, nothing is lost after it
    mts = np.datetime64(START, "m") + np.arange(DAYS * 24 * q + 1) * 15
    meter = pl.DataFrame({
        "system_id": np.repeat(sid, len(mts)), "ts_utc": np.tile(mts, n).astype("datetime64[us]"),
        "imported_t1_kwh": c_imp.ravel() * 0.4, "imported_t2_kwh": c_imp.ravel() * 0.6,
        "exported_t1_kwh": c_exp.ravel() * 0.5, "exported_t2_kwh": c_exp.ravel() * 0.5,
    }).with_columns(pl.col("ts_utc").dt.replace_time_zone("UTC"), pl.col("ts_utc").dt.date().alias("day")) \
        .filter(pl.col("day") <= START + dt.timedelta(days=DAYS - 1))
    lake.overwrite(T.METER_READINGS.name, _full(meter, T.METER_READINGS), T.METER_READINGS.schema,
                   partition_by="day")
    alerts = pl.DataFrame({
        "system_id": [sid[0], sid[0], sid[5], sid[7]],
        "first_day": [START, START - dt.timedelta(days=60), START + dt.timedelta(days=2),
                      START + dt.timedelta(days=30)],
        "last_day": [START + dt.timedelta(days=1), START - dt.timedelta(days=1), START + dt.timedelta(days=20),
                     START + dt.timedelta(days=40)],
        "kind": ["outage", "deficit", "shading", "outage"],
    })
    lake.overwrite(T.ALERTS.name, _full(alerts, T.ALERTS), T.ALERTS.schema)
    return {"fleet": f, "pv": pv, "load": load, "sid": sid}


def agree(lake: Lake, partner: str = "tu-delft", min_k: int = 2, ref: str = "DSA-TEST-1", days: int = 30) -> dict:
    """A data-sharing agreement in force from today for ``days`` days."""
    return R.register_agreement(lake, partner, ref, "research on PV performance and household demand",
                                valid_until=dt.date.today() + dt.timedelta(days=days), min_k=min_k)


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("research")
    lake = Lake(str(root / "lakehouse"))
    truth = build_lake(lake)
    return lake, truth, root


@pytest.fixture(scope="module")
def releases(demo_lake):
    """Releases at k=5 and k=10 (l=3) written to a local exports root."""
    lake, _, root = demo_lake
    exports = ExportRoot(str(root / "exports"))
    agree(lake, min_k=5)
    out = {}
    for k in (5, 10):
        plan = R.plan_release(lake, "tu-delft", PERIOD, k=k, l=3)
        out[k] = R.write_release(plan, lake, exports)
    return out


def _folder(result: R.ReleaseResult, root: str):
    rel = result.uri[len(root) + 1:]
    return ExportRoot(root).folder(rel)


def check_with_pycanon(homes: pl.DataFrame, manifest: dict) -> None:
    """The independent check of every release: fails when k or l is below the request."""
    qi = manifest["quasi_identifiers"]
    frame = homes.to_pandas()
    k = anonymity.k_anonymity(frame, qi)
    l = anonymity.l_diversity(frame, qi, manifest["l_diversity"]["columns"])
    assert k >= manifest["k"], f"pycanon k={k} below the requested {manifest['k']}"
    assert l >= manifest["l"], f"pycanon l={l} below the requested {manifest['l']}"
    assert (k, l) == (manifest["achieved"]["k"], manifest["achieved"]["l"])


def candidate_counts(homes: pl.DataFrame, registry: pl.DataFrame) -> list[int]:
    """For every released record: registry homes whose true values generalise to its QI values."""
    reg = registry.with_columns(
        pl.col("postcode").str.slice(0, 4).alias("pc4"),
        pl.col("install_date").dt.year().alias("year"),
        (pl.col("inverter_brand") + " " + pl.col("inverter_model")).alias("model"),
        pl.when(pl.col("has_ev_charger")).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("ev"),
        pl.when(pl.col("has_heat_pump")).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("hp"),
    )

    def within(col: str, label: str) -> pl.Expr:
        lo, hi = (float(x) for x in label.split("-"))
        return pl.col(col).is_between(lo, hi)

    counts = []
    for rec in homes.iter_rows(named=True):
        loc = rec["location"]
        cond = [
            pl.lit(True) if loc == "NL" else pl.col("pc4").str.starts_with(loc.rstrip("x")),
            within("kwp", rec["kwp_range"]), within("year", rec["install_year_range"]),
            within("tilt_deg", rec["tilt_deg_range"]), within("azimuth_deg", rec["azimuth_deg_range"]),
            pl.lit(True) if rec["inverter"] == "any" else
            (pl.col("model") == rec["inverter"]) | (pl.col("inverter_brand") == rec["inverter"]),
            pl.lit(True) if rec["ev_charger"] == "any" else pl.col("ev") == rec["ev_charger"],
            pl.lit(True) if rec["heat_pump"] == "any" else pl.col("hp") == rec["heat_pump"],
        ]
        counts.append(reg.filter(pl.all_horizontal(cond)).height)
    return counts


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------
def test_sensitive_values_match_the_truth(demo_lake):
    """Consumption = import - export + PV recovers the household load, across a counter reset."""
    lake, truth, _ = demo_lake
    period = R.Period.parse(PERIOD)
    src = R.load_sources(lake, period)
    eligible, counts = R.eligible_systems(src.systems, src.subjects)
    # only the eligible homes' measurements are read at all
    assert set(src.grid_homes["system_id"]) == set(src.daily["system_id"]) == set(eligible["system_id"])
    assert set(src.grid_hours["system_id"]) == set(eligible["system_id"]) and src.meter_readings > 0
    assert counts["eligible"] == eligible.height < 40
    meter = lake.read(T.METER_READINGS.name).filter(pl.col("day").is_between(period.start, period.end))
    vals = R.home_values(lake.read(T.SYSTEMS.name), lake.read(T.SYSTEM_DAILY.name), lake.read(T.ALERTS.name),
                         R.meter_increments(meter), period)
    vals = vals.join(pl.DataFrame({"system_id": truth["sid"], "load": truth["load"].sum(axis=1),
                                   "pv": truth["pv"].sum(axis=1), "kwp": truth["fleet"].kwp}), on="system_id")
    assert vals.height == 40
    # the reading at 00:00 of the day after the period is outside it: the last 15 min are missing
    err = (vals["consumption_kwh"] - vals["load"]).abs()
    last_quarter = truth["load"][:, -1] / 4
    assert (err <= pl.Series(last_quarter).abs() + 0.51).all(), err.max()
    assert ((vals["production_kwh_per_kwp"] - vals["pv"] / vals["kwp"]).abs() <= 0.051).all()
    assert vals["performance_ratio"].is_between(0.3, 0.9).all()
    alerts = dict(zip(vals["system_id"], vals["alert_count"]))
    sid = truth["sid"]
    assert alerts[sid[0]] == 1 and alerts[sid[5]] == 1 and alerts[sid[7]] == 0 and alerts[sid[1]] == 0


def test_series_built_month_by_month_equal_the_whole_period(demo_lake, monkeypatch):
    """The release reads PV hours a month at a time; the class series equal those of the whole period."""
    lake, _, _ = demo_lake
    period = R.Period.parse(PERIOD)
    src = R.load_sources(lake, period)
    eligible, _ = R.eligible_systems(src.systems, src.subjects)
    classes = eligible.select("system_id", (pl.int_range(pl.len()) % 3).alias("class_id"))
    pv = lake.read(T.PV_INTERVALS.name).filter(pl.col("day").is_between(period.start, period.end))
    whole = R.class_series(R.hourly_home_series(eligible, pv, src.grid_hours), classes, 5)
    monkeypatch.setattr(R, "SERIES_CHUNK_DAYS", 2)  # 7 days in 4 steps
    got = R.release_series(lake, src, eligible, classes, period, 5)
    assert got.height == whole.height == 3 * 24 * DAYS
    assert_frame_equal(got, whole, check_exact=False, rel_tol=0, abs_tol=1e-9)
    assert got["production_kwh_per_kwp_mean"].is_not_null().sum() > 0


@pytest.mark.parametrize("k", [5, 10])
def test_release_passes_pycanon_and_linkage(demo_lake, releases, k):
    lake, truth, root = demo_lake
    res = releases[k]
    folder = _folder(res, str(root / "exports"))
    man = json.loads(folder.read("manifest.json"))
    homes = pl.read_parquet(io.BytesIO(folder.read("homes.parquet")))
    # the manifest: required keys, files and hashes, columns named in it present
    for key in ("k", "l", "quasi_identifiers", "sensitive", "files", "generalisation", "suppression",
                "information_loss", "sources", "period", "partner", "code_version"):
        assert key in man
    assert man["k"] == k and man["l"] == 3 and man["partner"] == "tu-delft"
    assert folder.verify_files(man["files"]) == []
    assert sorted(f["path"] for f in man["files"]) + ["manifest.json"] == sorted(folder.listing())
    assert set(man["quasi_identifiers"]) | set(man["sensitive"]) <= set(homes.columns)
    assert set(homes.columns) == HOME_COLUMNS
    assert man["sources"][T.METER_READINGS.name]["version"] == lake.version(T.METER_READINGS.name)
    assert man["information_loss"]["algorithm"]["ncp"] < man["information_loss"]["baseline"]["ncp"]
    assert man["suppression"]["suppressed"] == man["counts"]["homes_with_data"] - homes.height
    check_with_pycanon(homes, man)
    # linkage: every released record matches at least k registry homes (and k eligible ones)
    registry = lake.read(T.SYSTEMS.name)
    assert min(candidate_counts(homes, registry)) >= k
    subjects = lake.read(T.SUBJECTS.name)
    ok = subjects.filter(pl.col("consent_research") & ~pl.col("restricted") & ~pl.col("objected"))
    eligible = registry.filter(pl.col("subject_id").is_in(ok["subject_id"].implode()))
    assert min(candidate_counts(homes, eligible)) >= k
    # per-class ranges recorded for Mondrian equal the released rows
    classes = pl.DataFrame(man["generalisation"]["classes"])
    assert classes["n_homes"].sum() == homes.height and classes["n_homes"].min() >= k


def test_only_consenting_unrestricted_unobjecting_subjects(demo_lake, releases):
    lake, truth, _ = demo_lake
    subjects = lake.read(T.SUBJECTS.name)
    ok = subjects.filter(pl.col("consent_research") & ~pl.col("restricted") & ~pl.col("objected"))
    excluded = subjects.filter(~pl.col("subject_id").is_in(ok["subject_id"].implode()))
    assert excluded.filter(~pl.col("consent_research")).height and excluded.filter(pl.col("restricted")).height \
        and excluded.filter(pl.col("objected")).height  # the fleet exercises all three reasons
    audit = history(lake).filter(pl.col("request_type") == "release")
    assert audit.height == 2 and audit["subject_ref"].is_null().all()
    for k, res in releases.items():
        row = audit.filter(pl.col("request_id") == res.request_id).row(0, named=True)
        details = json.loads(row["details"])
        refs = set(details[RELEASED_SUBJECT_REFS])
        assert len(refs) == details["counts"]["released"] == res.plan.homes.height
        assert refs <= {pseudonym(s) for s in ok["subject_id"]}
        assert not refs & {pseudonym(s) for s in excluded["subject_id"]}
        assert details["counts"]["eligible"] == ok.height
        assert details["counts"]["excluded_no_consent"] == subjects.filter(~pl.col("consent_research")).height
        assert details["k"] == k and details["path"] == res.uri and details["partner"] == "tu-delft"
        # no raw id anywhere in the audit row
        text = json.dumps(row, default=str)
        assert not any(s in text for s in subjects["subject_id"]) and "sys_" not in text
    # an erasure can list the releases of a subject; an excluded subject is in none
    released_ref = next(iter(json.loads(audit["details"][0])[RELEASED_SUBJECT_REFS]))
    subject = next(s for s in ok["subject_id"] if pseudonym(s) == released_ref)
    assert len(R.releases_of(lake, subject)) >= 1
    assert R.releases_of(lake, excluded["subject_id"][0]) == []


def test_no_personal_data_no_coordinates_no_per_home_series(demo_lake, releases):
    lake, truth, root = demo_lake
    systems, subjects = lake.read(T.SYSTEMS.name), lake.read(T.SUBJECTS.name)
    secrets_ = set()
    for col in ("system_id", "subject_id", "serial", "meter_id", "em_id", "policy_number", "postcode"):
        secrets_ |= set(systems[col].drop_nulls().to_list())
    for col in ("name", "street", "email", "phone", "iban", "postcode"):
        secrets_ |= set(subjects[col].drop_nulls().to_list())
    secrets_ |= {p.replace(" ", "") for p in systems["postcode"]}
    secrets_ |= {f"{v}" for v in systems["lat"]} | {f"{v}" for v in systems["lon"]}
    secrets_.discard("")
    full_postcode = re.compile(r"\b[1-9]\d{3}\s?[A-Z]{2}\b")
    forbidden_cols = {"system_id", "subject_id", "lat", "lon", "postcode", "serial", "meter_id", "name", "email",
                      "street", "iban", "phone", "pc4"}
    for k, res in releases.items():
        folder = _folder(res, str(root / "exports"))
        texts = []
        for name in folder.listing():
            data = folder.read(name)
            if name.endswith(".parquet"):
                frame = pl.read_parquet(io.BytesIO(data))
                assert not forbidden_cols & set(frame.columns), name
                texts += [" ".join(map(str, frame[c].to_list())) for c in frame.columns]
                texts += list(frame.columns)
            else:
                texts.append(data.decode())
        blob = "\n".join(texts)
        leaked = [s for s in secrets_ if s in blob]
        assert not leaked, leaked[:3]
        assert not full_postcode.search(blob)
        homes = pl.read_parquet(io.BytesIO(folder.read("homes.parquet")))
        assert homes["location"].str.contains(r"^(\d{4}|\d{3}x|\d{2}xx|\dxxx|NL)$").all()
        # time series only per class: one row per (class, hour), every published mean over >= k homes
        series = pl.read_parquet(io.BytesIO(folder.read("class_timeseries.parquet")))
        assert set(series.columns) == SERIES_COLUMNS
        assert set(series["class_id"]) == set(homes["class_id"])
        assert series.select("class_id", "ts_utc").is_unique().all()
        assert series.height == homes["class_id"].n_unique() * DAYS * 24
        assert series.filter(pl.col("production_kwh_per_kwp_mean").is_not_null())["production_n_homes"].min() >= k
        assert series.filter(pl.col("consumption_kwh_mean").is_not_null())["consumption_n_homes"].min() >= k
        # the class means are the means over the class's homes: a class of one home is never published
        assert series["production_n_homes"].max() <= homes.group_by("class_id").len()["len"].max()


def test_dry_run_writes_nothing(demo_lake, tmp_path, monkeypatch, capsys):
    lake, _, root = demo_lake
    keys = tmp_path / "keys"
    monkeypatch.setenv("WATTLAKE_KEY_DIR", str(keys))
    exports = tmp_path / "exports"
    agree(lake, "tu-delft-dry", ref="DSA-DRY-1")
    audit_version = lake.version(T.PRIVACY_AUDIT.name)
    versions = {t: lake.version(t) for t in lake.tables()}
    rc = main(["--lake", lake.root, "release", "--partner", "tu-delft-dry", "--period", PERIOD, "--k", "10",
               "--exports", str(exports), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "k = 10" in out and "l = 3" in out and "suppressed" in out and "NCP" in out and "baseline" in out
    assert "dry run: nothing written" in out and "agreement: DSA-DRY-1" in out
    assert not exports.exists() and not keys.exists()
    assert lake.version(T.PRIVACY_AUDIT.name) == audit_version
    assert {t: lake.version(t) for t in lake.tables()} == versions
    assert "sub_" not in out and "sys_" not in out
    # a partner without an agreement in force: the plan is shown, and the refusal is the exit code
    rc = main(["--lake", lake.root, "release", "--partner", "acme-labs", "--period", PERIOD, "--k", "10",
               "--exports", str(exports), "--dry-run"])
    captured = capsys.readouterr()
    assert rc == 1 and "k = 10" in captured.out and "the release would be refused" in captured.out
    assert "release refused" in captured.err and not exports.exists()


def test_refuses_when_fewer_than_k_eligible(demo_lake, tmp_path, capsys):
    lake, _, _ = demo_lake
    with pytest.raises(R.ReleaseError, match="fewer than k=30"):
        R.plan_release(lake, "tu-delft", PERIOD, k=30, l=3)
    with pytest.raises(R.ReleaseError, match="impossible"):
        R.plan_release(lake, "tu-delft", PERIOD, k=5, l=6)  # five quantile bins
    with pytest.raises(R.ReleaseError, match="partner"):
        R.plan_release(lake, "../etc", PERIOD)
    rc = main(["--lake", lake.root, "release", "--partner", "tu-delft", "--period", PERIOD, "--k", "30",
               "--exports", str(tmp_path / "exports")])
    assert rc == 1 and "release refused" in capsys.readouterr().err  # refused: 1
    rc = main(["--lake", lake.root, "release", "--partner", "tu-delft", "--period", "2025-13-01:2025-12-31",
               "--exports", str(tmp_path / "exports")])
    assert rc == 2 and "expected START:END" in capsys.readouterr().err  # asked for wrongly: 2
    assert not (tmp_path / "exports").exists()


def test_release_on_s3(s3_env):
    lake = Lake(f"{s3_env}/lakehouse")
    build_lake(lake)
    exports_root = f"{s3_env}/exports"
    agree(lake, min_k=10)
    res = R.write_release(R.plan_release(lake, "tu-delft", PERIOD, k=10, l=3), lake, ExportRoot(exports_root))
    assert res.uri.startswith("s3://")
    folder = _folder(res, exports_root)
    man = json.loads(folder.read("manifest.json"))
    assert folder.verify_files(man["files"]) == []
    homes = pl.read_parquet(io.BytesIO(folder.read("homes.parquet")))
    check_with_pycanon(homes, man)
    assert min(candidate_counts(homes, lake.read(T.SYSTEMS.name))) >= 10
    assert history(lake).filter(pl.col("request_type") == "release").height == 1


def test_end_to_end_on_landed_lake(landed, tmp_path, capsys):
    """The small fleet materialised through Dagster: 8 homes, 3 days; k=2, l=2 via the CLI."""
    src, _, days, _ = landed
    lake = Lake(str(tmp_path / "lakehouse"))
    shutil.copytree(src.root, lake.root)  # the fixture is read-only; the release appends an audit row
    exports = tmp_path / "exports"
    assert main(["--lake", lake.root, "agreements", "add", "--partner", "tu-delft", "--ref", "DSA-2025-07",
                 "--purpose", "PV yield research", "--until", str(dt.date.today()), "--min-k", "2"]) == 0
    rc = main(["--lake", lake.root, "release", "--partner", "tu-delft", "--period", f"{days[0]}:{days[-1]}",
               "--k", "2", "--l", "2", "--exports", str(exports)])
    out = capsys.readouterr().out
    assert rc == 0, out
    root = ExportRoot(str(exports))
    [man_path] = [p for p in root.list("research/tu-delft") if p.endswith("manifest.json")]
    folder = root.folder(man_path.rsplit("/", 1)[0])
    man = json.loads(folder.read("manifest.json"))
    homes = pl.read_parquet(io.BytesIO(folder.read("homes.parquet")))
    check_with_pycanon(homes, man)
    registry = lake.read(T.SYSTEMS.name)
    assert min(candidate_counts(homes, registry)) >= 2
    subjects = lake.read(T.SUBJECTS.name)
    ok = subjects.filter(pl.col("consent_research") & ~pl.col("restricted") & ~pl.col("objected"))
    assert man["counts"]["eligible"] == ok.height < subjects.height
    assert homes.height + man["suppression"]["suppressed"] == man["counts"]["homes_with_data"]
    # real PV and consumption from the landed meters: positive, and PR in a physical range
    assert (homes["consumption_kwh"] > 0).all() and (homes["production_kwh_per_kwp"] > 0).all()
    assert homes["performance_ratio"].drop_nulls().is_between(0.2, 1.2).all()
    series = pl.read_parquet(io.BytesIO(folder.read("class_timeseries.parquet")))
    assert series["production_kwh_per_kwp_mean"].drop_nulls().len() > 0
    for v in man["sources"].values():
        assert v["version"] is None or v["version"] >= 0
    audit = history(lake).filter(pl.col("request_type") == "release")
    assert audit.height == 1 and json.loads(audit["details"][0])["path"] == folder.uri


def test_a_release_needs_a_data_sharing_agreement(demo_lake, tmp_path, capsys):
    """None, not yet in force, expired, revoked, or k below its minimum: refused before any file is
    written; under a valid one the manifest, README and audit row name it."""
    lake, _, _ = demo_lake
    partner = "uva-energy"
    exports = ExportRoot(str(tmp_path / "exports"))
    plan = R.plan_release(lake, partner, PERIOD, k=10, l=3)  # planning needs no agreement
    today = dt.date.today()

    def refused(match: str):
        with pytest.raises(R.AgreementError, match=match):
            R.write_release(plan, lake, exports)
        assert not (tmp_path / "exports").exists()

    refused("no data-sharing agreement with uva-energy")
    R.register_agreement(lake, partner, "DSA-9", "heat pump research", valid_from=today + dt.timedelta(days=3),
                         valid_until=today + dt.timedelta(days=90))
    refused("in force from")
    R.register_agreement(lake, partner, "DSA-9", "heat pump research", valid_from=today - dt.timedelta(days=90),
                         valid_until=today - dt.timedelta(days=1))
    refused("expired on")
    R.register_agreement(lake, partner, "DSA-10", "heat pump research", valid_from=today + dt.timedelta(days=5),
                         valid_until=today + dt.timedelta(days=90))  # the renewal, not in force yet
    refused(f"DSA-10\\) is in force from {today + dt.timedelta(days=5)}")
    assert R.revoke_agreement(lake, partner, "DSA-10")
    R.register_agreement(lake, partner, "DSA-9", "heat pump research", valid_until=today, min_k=20)
    refused("requires k >= 20")
    R.register_agreement(lake, partner, "DSA-9", "heat pump research", valid_until=today, min_k=10)
    assert R.revoke_agreement(lake, partner, "DSA-9") and not R.revoke_agreement(lake, partner, "DSA-0")
    refused("revoked")
    with pytest.raises(R.AgreementError, match="reference"):
        R.register_agreement(lake, partner, "../x", "p", valid_until=today)
    with pytest.raises(R.AgreementError, match="before"):
        R.register_agreement(lake, partner, "DSA-10", "p", valid_from=today, valid_until=today - dt.timedelta(days=1))

    R.register_agreement(lake, partner, "DSA-9", "heat pump research", valid_until=today, min_k=10)  # renewed
    res = R.write_release(plan, lake, exports)
    assert res.manifest["agreement"]["ref"] == "DSA-9" and res.manifest["agreement"]["min_k"] == 10
    folder = _folder(res, str(tmp_path / "exports"))
    assert "under data-sharing agreement DSA-9" in folder.read("README.txt").decode()
    audit = history(lake).filter(pl.col("request_type") == "release")
    assert json.loads(audit["details"][-1])["agreement_ref"] == "DSA-9"

    # the CLI: a refusal names the reason; list shows the state
    assert main(["--lake", lake.root, "release", "--partner", "nobody", "--period", PERIOD, "--k", "10",
                 "--exports", str(tmp_path / "e2")]) == 1
    assert "no data-sharing agreement with nobody" in capsys.readouterr().err
    assert not (tmp_path / "e2").exists()
    assert main(["--lake", lake.root, "agreements", "revoke", "--partner", partner, "--ref", "DSA-9"]) == 0
    assert main(["--lake", lake.root, "agreements", "list"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"uva-energy\s+DSA-9 .* revoked \d{4}-\d{2}-\d{2}", listing)
    assert main(["--lake", lake.root, "agreements", "add", "--partner", partner, "--ref", "DSA-11",
                 "--purpose", "x", "--until", "2020-01-01", "--from", "2021-01-01"]) == 2
