"""Insurer evidence packs on a real Delta lake: signature, reproducibility, rendering, privacy.

The lake is built from synthetic hourly rows for 2025 (three systems, two insurers) written
month by month (so OPTIMIZE has files to merge); gold/system_daily comes from the real
:func:`wattlake.performance.system_daily`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from wattlake import tables as T
from wattlake.evidence import MANIFEST, build_packs, evaluate, load_inputs, recompute_pack, verify_pack
from wattlake.exports import ExportRoot
from wattlake.lake import Lake
from wattlake.performance import system_daily

# sys_a (Alpha): dead string Jun-Aug -> shortfall; sys_b (Beta): 10 % low all year -> shortfall;
# sys_c (Alpha): healthy -> met
SYSTEMS = [
    dict(system_id="sys_a000000001", insurer="Alpha Verzekeringen", policy_number="ALP-2020-111111", factor=1.0,
         dead=True, postcode="1234 AB", lat=52.1234, lon=5.4321, serial="SN1234567890"),
    dict(system_id="sys_b000000002", insurer="Beta Assuradeuren", policy_number="BET-2021-222222", factor=0.9,
         dead=False, postcode="5678 CD", lat=51.9876, lon=4.5678, serial="HV9876543210"),
    dict(system_id="sys_c000000003", insurer="Alpha Verzekeringen", policy_number="ALP-2022-333333", factor=1.0,
         dead=False, postcode="9012 EF", lat=53.0101, lon=6.2020, serial="SN5555555555"),
]
SILVER_MONTHS = [(dt.date(2025, m, 1), (dt.date(2025, m + 1, 1) if m < 12 else dt.date(2026, 1, 1)) - dt.timedelta(days=1))
                 for m in range(1, 13)]


def _silver(system: dict, first: dt.date, last: dt.date, bump: float = 1.0) -> pl.DataFrame:
    ts = pl.datetime_range(dt.datetime.combine(first, dt.time()), dt.datetime.combine(last, dt.time(23)), "1h",
                           time_zone="UTC", eager=True)
    doy = ts.dt.ordinal_day().to_numpy()
    hour = ts.dt.hour().to_numpy() + 0.5
    season = 0.55 + 0.45 * np.sin(2 * np.pi * (doy - 80) / 365)
    shape = np.clip(np.sin(np.pi * (hour - 12 + 7 * season) / (14 * season)), 0, None)
    ghi = 0.75 * season * shape  # kWh/m2 per hour
    poa = 1.1 * ghi
    expected = 4.0 * poa * 0.85
    month = ts.dt.month().to_numpy()
    factor = system["factor"] * np.where(system["dead"] & (month >= 6) & (month <= 8), 0.5, 1.0) * bump
    actual = expected * factor
    night = ghi <= 0
    n = len(ts)
    frame = pl.DataFrame({
        "system_id": [system["system_id"]] * n, "ts_utc": ts, "day": ts.dt.date(),
        "actual_energy_kwh": actual, "n_readings": np.full(n, 12, dtype=np.int32),
        "ac_power_mean_w": actual * 1000, "ac_power_max_w": actual * 1100, "dc_current_min_ratio": None,
        "status_fault_count": np.zeros(n, dtype=np.int32), "expected_energy_kwh": expected,
        "expected_dc_kwh": expected * 1.03, "poa_irradiation_kwh_m2": poa, "ghi_irradiation_kwh_m2": ghi,
        "cell_temp_c": 10 + 25 * shape, "temp_air_c": np.full(n, 10.0), "solar_zenith_deg": 90 - 60 * shape,
        "expected_clipped": np.zeros(n, dtype=bool), "night": night, "low_sun": shape < 0.1,
        "estimated": np.zeros(n, dtype=bool), "clipped": np.zeros(n, dtype=bool), "missing_data": np.zeros(n, dtype=bool),
    }, schema_overrides={"dc_current_min_ratio": pl.Float64})
    return frame


def _registry() -> tuple[pl.DataFrame, pl.DataFrame]:
    full_year = {s["system_id"]: float(_silver(s, dt.date(2025, 1, 1), dt.date(2025, 12, 31))
                                       .get_column("expected_energy_kwh").sum()) for s in SYSTEMS}
    ghi = float(_silver(SYSTEMS[0], dt.date(2025, 1, 1), dt.date(2025, 12, 31)).get_column("ghi_irradiation_kwh_m2").sum())
    rows = []
    for i, s in enumerate(SYSTEMS):
        rows.append({
            "system_id": s["system_id"], "subject_id": f"sub_{i:010d}", "serial": s["serial"], "meter_id": "4530",
            "gas_meter_id": "", "em_id": f"em_{i:08d}", "lat": s["lat"], "lon": s["lon"], "postcode": s["postcode"],
            "kwp": 4.0, "tilt_deg": 35.0, "azimuth_deg": 180.0, "inverter_brand": "SMA", "inverter_model": "Sunny Boy 3.6",
            "inverter_ac_kw": 3.68, "n_strings": 2, "install_date": dt.date(2020, 11, 5),
            "guarantee_start": dt.date(2021, 1, 1),
            # sys_a/b: guaranteed 95 % of a healthy year (they lose more); sys_c: 90 %
            "guarantee_kwh_per_year": round(full_year[s["system_id"]] * (0.9 if i == 2 else 0.95)),
            "guarantee_ref_irradiation_kwh_m2": round(ghi * 1.02, 1),
            "guarantee_tariff_eur_per_kwh": 0.25, "insurer": s["insurer"], "policy_number": s["policy_number"],
            "installer_id": "inst_secret_installer", "has_ev_charger": False, "has_heat_pump": False, "station_id": 260,
        })
    systems = pl.DataFrame(rows)
    photos = pl.DataFrame({"system_id": [s["system_id"] for s in SYSTEMS],
                           "file_name": [f"IMG_{i}.jpg" for i in range(3)], "sha256": ["0f" * 32] * 3})
    return systems, photos


def _build_lake(root) -> Lake:
    lake = Lake(str(root))
    systems, photos = _registry()
    lake.overwrite(T.SYSTEMS.name, systems, T.SYSTEMS.schema, configuration=T.SYSTEMS.configuration)
    lake.overwrite(T.INSTALLATION_PHOTOS.name, photos, T.INSTALLATION_PHOTOS.schema)
    # one commit per month for sys_a and sys_b, then sys_c's year in one more commit: every day
    # partition holds two files, which OPTIMIZE later merges
    batches = [pl.concat([_silver(s, first, last) for s in SYSTEMS[:2]]) for first, last in SILVER_MONTHS]
    batches.append(_silver(SYSTEMS[2], dt.date(2025, 1, 1), dt.date(2025, 12, 31)))
    for frame in batches:
        lake.merge_insert(T.PV_INTERVALS.name, frame, T.PV_INTERVALS.keys, T.PV_INTERVALS.schema,
                          configuration=T.PV_INTERVALS.configuration)
        lake.merge_insert(T.SYSTEM_DAILY.name, system_daily(frame, systems), T.SYSTEM_DAILY.keys,
                          T.SYSTEM_DAILY.schema, configuration=T.SYSTEM_DAILY.configuration)
    return lake


@pytest.fixture(scope="module")
def synthetic_lake(tmp_path_factory):
    return _build_lake(tmp_path_factory.mktemp("glake") / "lakehouse")


@pytest.fixture(scope="module")
def packs(synthetic_lake, tmp_path_factory):
    root = ExportRoot(str(tmp_path_factory.mktemp("exports")))
    return root, build_packs(synthetic_lake, year=2025, export_root=root)


def test_verdicts_and_packs_for_each_shortfall(synthetic_lake, packs):
    ev = evaluate(load_inputs(synthetic_lake))
    assert dict(ev.select("system_id", "verdict").iter_rows()) == {
        "sys_a000000001": "shortfall", "sys_b000000002": "shortfall", "sys_c000000003": "met"}
    root, results = packs
    assert sorted(r.system_id for r in results) == ["sys_a000000001", "sys_b000000002"]
    for r in results:
        v = verify_pack(r.folder)
        assert v.ok, v.problems
        m = v.manifest
        listed = sorted(f["path"] for f in m["files"])
        assert listed == sorted(["evaluation.csv", "evaluation.parquet", "daily.csv", "daily.parquet", "monthly.csv",
                                 "monthly.parquet", "report.html", "report.pdf"])
        assert set(m["tables"]) == {T.PV_INTERVALS.name, T.SYSTEM_DAILY.name, T.SYSTEMS.name,
                                    T.INSTALLATION_PHOTOS.name}
        assert m["tables"][T.PV_INTERVALS.name] == synthetic_lake.version(T.PV_INTERVALS.name)
        assert m["parameters"]["max_modelled_share"] == 0.1 and m["code_version"]["package"]
        import subprocess
        from importlib.metadata import version

        repo = Path(__file__).resolve().parent.parent  # git diff, independently of wattlake's own check
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=repo).returncode != 0
        assert m["code_version"]["git_dirty"] is changed
        assert m["code_version"]["libraries"]["polars"] == version("polars")
        assert r.claim_id == m["claim_id"] and m["claim_id"].endswith("-20250101")
        row = pl.read_parquet(io.BytesIO(open(f"{r.folder}/evaluation.parquet", "rb").read())).row(0, named=True)
        expected = ev.filter(pl.col("system_id") == r.system_id).row(0, named=True)
        assert row["shortfall_kwh"] == expected["shortfall_kwh"] > 0
        assert row["shortfall_eur"] == pytest.approx(0.25 * row["shortfall_kwh"])
        assert m["shortfall_kwh"] == row["shortfall_kwh"]


def test_tampered_manifest_or_file_fails_verification(packs, tmp_path, monkeypatch):
    _, results = packs
    src = results[0].folder
    bad_manifest = tmp_path / "m"
    shutil.copytree(src, bad_manifest)
    m = json.loads((bad_manifest / MANIFEST).read_text())
    m["shortfall_kwh"] = m["shortfall_kwh"] * 2
    (bad_manifest / MANIFEST).write_text(json.dumps(m))
    v = verify_pack(str(bad_manifest))
    assert not v.ok and any("signature" in p for p in v.problems)

    bad_file = tmp_path / "f"
    shutil.copytree(src, bad_file)
    csv = (bad_file / "evaluation.csv").read_bytes()
    (bad_file / "evaluation.csv").write_bytes(csv.replace(b"shortfall", b"met", 1))
    v = verify_pack(str(bad_file))
    assert not v.ok and v.problems == ["evaluation.csv: sha256 differs"]

    # an untouched copy passes, but not under another insurer key
    good = tmp_path / "g"
    shutil.copytree(src, good)
    assert verify_pack(str(good)).ok
    monkeypatch.setenv("WATTLAKE_KEY_INSURER_" + results[0].insurer.upper().replace(" ", "_"), "another key")
    assert not verify_pack(str(good)).ok


def test_recompute_from_manifest_after_new_data_and_compaction(synthetic_lake, tmp_path):
    shutil.copytree(synthetic_lake.root, tmp_path / "lakehouse")  # mutated below
    lake = Lake(str(tmp_path / "lakehouse"))
    root = ExportRoot(str(tmp_path / "exports"))
    results = build_packs(lake, year=2025, export_root=root, audit=False)
    folder = next(r.folder for r in results if r.system_id == "sys_a000000001")
    manifest = json.loads(open(f"{folder}/{MANIFEST}").read())
    before = {name: lake.version(name) for name in manifest["tables"]}

    # new data lands: January 2026, and a late correction raising sys_a's July 2025 by 30 %
    systems = lake.read(T.SYSTEMS.name)
    new = pl.concat([_silver(s, dt.date(2026, 1, 1), dt.date(2026, 1, 31)) for s in SYSTEMS])
    lake.merge_insert(T.PV_INTERVALS.name, new, T.PV_INTERVALS.keys, T.PV_INTERVALS.schema,
                      configuration=T.PV_INTERVALS.configuration)
    july = _silver(SYSTEMS[0], dt.date(2025, 7, 1), dt.date(2025, 7, 31), bump=1.3)
    lake.overwrite(T.PV_INTERVALS.name, pl.concat([july] + [_silver(s, dt.date(2025, 7, 1), dt.date(2025, 7, 31))
                                                           for s in SYSTEMS[1:]]),
                   T.PV_INTERVALS.schema, partition_by="day", predicate="day >= '2025-07-01' AND day <= '2025-07-31'")
    lake.merge_insert(T.SYSTEM_DAILY.name, system_daily(new, systems), T.SYSTEM_DAILY.keys, T.SYSTEM_DAILY.schema)
    lake.overwrite(T.INSTALLATION_PHOTOS.name, lake.read(T.INSTALLATION_PHOTOS.name).with_columns(
        file_name=pl.col("file_name") + ".v2"), T.INSTALLATION_PHOTOS.schema)
    compacted = {name: lake.compact(name) for name in manifest["tables"]}
    assert compacted[T.PV_INTERVALS.name]["numFilesRemoved"] > 0  # OPTIMIZE rewrote silver's files
    after = {name: lake.version(name) for name in manifest["tables"]}
    assert all(after[n] > before[n] for n in (T.PV_INTERVALS.name, T.SYSTEM_DAILY.name, T.INSTALLATION_PHOTOS.name))

    # today's numbers differ (the late July data), the recorded versions give the pack back exactly
    now = evaluate(load_inputs(lake)).filter(pl.col("system_id") == "sys_a000000001").row(0, named=True)
    r = recompute_pack(lake, manifest)
    packed = pl.read_parquet(f"{folder}/evaluation.parquet").row(0, named=True)
    assert now["measured_kwh"] > packed["measured_kwh"]
    assert r.identical, r.mismatches
    assert {k: r.evaluation[k] for k in r.evaluation} == {k: packed[k] for k in r.evaluation}
    assert {p: __import__("hashlib").sha256(b).hexdigest() for p, b in r.files.items()} == \
        {f["path"]: f["sha256"] for f in manifest["files"]}


def test_pdf_renders(packs):
    import pypdfium2 as pdfium

    _, results = packs
    pdf = pdfium.PdfDocument(f"{results[0].folder}/report.pdf")
    assert len(pdf) == 4  # summary + three plots
    for i in (0, 1):
        img = np.asarray(pdf[i].render(scale=1.0).to_pil().convert("L"), dtype=float)
        assert img.shape[0] > 250 and img.std() > 10
        assert 0.005 < (img < 200).mean() < 0.9  # ink on the page, not a black page
    html = open(f"{results[0].folder}/report.html", encoding="utf-8").read()
    assert html.count("data:image/png;base64,") == 3


def test_pack_holds_only_its_insurer_and_no_personal_data(packs):
    _, results = packs
    systems, _ = _registry()
    secret_values = [str(v) for col in ("subject_id", "serial", "postcode", "lat", "lon", "installer_id", "em_id")
                     for v in systems.get_column(col).to_list()]
    for r in results:
        others = [s["system_id"] for s in SYSTEMS if s["insurer"] != r.insurer]
        other_policies = [s["policy_number"] for s in SYSTEMS if s["system_id"] != r.system_id]
        folder = ExportRoot(r.folder.rsplit("/", 1)[0]).folder(r.folder.rsplit("/", 1)[1])
        for name in folder.listing():
            data = folder.read(name)
            if name.endswith(".parquet"):
                frame = pl.read_parquet(io.BytesIO(data))
                assert not set(frame.columns) & {"subject_id", "serial", "postcode", "lat", "lon", "installer_id",
                                                 "name", "street", "email", "iban", "meter_id", "em_id"}
                text = frame.write_csv()
            elif name.endswith(".pdf"):
                import pypdfium2 as pdfium

                doc = pdfium.PdfDocument(data)
                text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
                assert r.system_id in text  # the text layer is readable, so the checks below mean something
            else:
                text = data.decode("utf-8")
            for value in others + other_policies + secret_values:
                assert value not in text, (name, value)


def test_asset_materialises_the_table(synthetic_lake, tmp_path):
    import dagster as dg

    from assets.guarantee import gold_guarantee_evaluations
    from pipelines.resources import LakeResource

    root = tmp_path / "lakehouse"
    shutil.copytree(synthetic_lake.root, root)
    result = dg.materialize([gold_guarantee_evaluations], resources={"lake": LakeResource(root=str(root))})
    assert result.success
    md = result.get_asset_materialization_events()[0].materialization.metadata
    assert md["verdicts"].value == {"met": 1, "shortfall": 2}
    table = Lake(str(root)).read(T.GUARANTEE_EVALUATIONS.name)
    assert table.height == 3 and "policy_number" not in table.columns
    assert table.filter(pl.col("verdict") == "shortfall").get_column("shortfall_eur").sum() == \
        pytest.approx(md["shortfall_eur"].value)


@pytest.mark.slow
def test_landed_fleet_has_the_table_from_materialize_all(landed):
    lake, _, _, _ = landed
    assert lake.exists(T.GUARANTEE_EVALUATIONS.name)  # materialize_all ran the asset
    table = lake.read(T.GUARANTEE_EVALUATIONS.name)
    assert table.columns == T.GUARANTEE_EVALUATIONS.schema.names
    # three October days complete no guarantee year; the same evaluation as the pure function
    assert table.height == evaluate(load_inputs(lake)).height


@pytest.mark.slow
def test_cli_build_verify_recompute(synthetic_lake, tmp_path, capsys):
    from pipelines.cli import main

    lake_root = tmp_path / "lakehouse"
    shutil.copytree(synthetic_lake.root, lake_root)
    exports = tmp_path / "exports"
    assert main(["--lake", str(lake_root), "claims", "evaluate"]) == 0
    assert main(["--lake", str(lake_root), "claims", "build", "--year", "2025", "--exports", str(exports)]) == 0
    out = capsys.readouterr().out
    assert "2 pack(s) written" in out and "[2/2]" in out
    assert not any(s["policy_number"] in out for s in SYSTEMS)
    folders = sorted(str(p.parent) for p in exports.rglob(MANIFEST))
    assert len(folders) == 2 and all("/insurers/" in f for f in folders)
    assert main(["--lake", str(lake_root), "claims", "verify", *folders, "--recompute"]) == 0
    assert capsys.readouterr().out.count("identical to the manifest") == 2
    tampered = tmp_path / "tampered"
    shutil.copytree(folders[0], tampered)
    (tampered / "daily.csv").write_text((tampered / "daily.csv").read_text().replace("0", "1", 1))
    assert main(["--lake", str(lake_root), "claims", "verify", str(tampered), "--recompute"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "identical to the manifest (the files in the folder are what differ)" in out
    from pipelines.cli_claims import _code_differences
    from wattlake.exports import code_version

    now = code_version()
    assert _code_differences({**now, "git_dirty": False}) == ([] if not now["git_dirty"] else
                                                              ["uncommitted changes now: the commit alone does not name that code"])
    older = {**now, "git_commit": "0" * 40, "git_dirty": True, "libraries": {**now["libraries"], "polars": "1.0.0"}}
    lines = _code_differences(older)
    assert f"built by commit {'0' * 40}, this is {now['git_commit']}" in lines
    assert "uncommitted changes at build: the commit alone does not name that code" in lines
    assert f"polars 1.0.0 at build, {now['libraries']['polars']} now" in lines
    # a signed pack is never overwritten: building again keeps it; --revise writes a revision beside it
    before = {f: (Path(f) / MANIFEST).read_bytes() for f in folders}
    assert main(["--lake", str(lake_root), "claims", "build", "--year", "2025", "--exports", str(exports)]) == 0
    assert capsys.readouterr().out.count("pack already built: kept") == 2
    assert {f: (Path(f) / MANIFEST).read_bytes() for f in folders} == before
    assert main(["--lake", str(lake_root), "claims", "build", "--year", "2025", "--exports", str(exports),
                 "--revise"]) == 0
    revised = sorted(str(p.parent) for p in exports.rglob(MANIFEST) if str(p.parent) not in before)
    assert [Path(f).name for f in revised] == [Path(f).name + "-r2" for f in folders]
    assert main(["--lake", str(lake_root), "claims", "verify", *revised]) == 0
    assert main(["--lake", str(lake_root), "claims", "build", "--claim", "ALP-2022-333333-20250101",
                 "--exports", str(exports)]) == 1  # sys_c met its guarantee: no claim
