"""Tests of the sample-fleet generator (wattlake.generator)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

from wattlake.generator import generate_fleet
from wattlake.generator.registry import iban_is_valid

START = dt.date(2025, 10, 25)  # 3 days: 25, 26 (DST end, 25-hour local day), 27
KW = dict(n_systems=6, start=START, days=3, seed=7)

SYSTEMS_COLUMNS = [
    "system_id", "subject_id", "serial", "meter_id", "gas_meter_id", "em_id", "lat", "lon",
    "postcode", "kwp", "tilt_deg", "azimuth_deg", "inverter_brand", "inverter_model",
    "inverter_ac_kw", "n_strings", "install_date", "guarantee_start", "guarantee_kwh_per_year",
    "guarantee_ref_irradiation_kwh_m2", "guarantee_tariff_eur_per_kwh", "insurer", "policy_number", "installer_id", "has_ev_charger", "has_heat_pump", "station_id",
]
SUBJECTS_COLUMNS = ["subject_id", "name", "street", "house_number", "postcode", "city", "email",
                    "phone", "iban", "consent_research", "restricted", "objected", "created_at"]
KNMI_HEADER = ("# STN,YYYYMMDD,   HH,   DD,   FH,   FF,   FX,    T,  T10,   TD,   SQ,    Q,   DR,"
               "   RH,    P,   VV,    N,    U,   WW,   IX,    M,    R,    S,    O,    Y")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("fleet_a")
    messages: list[str] = []
    summary = generate_fleet(root, progress=messages.append, **KW)
    assert len(messages) == KW["days"]
    return root, summary


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _telegrams(text: str) -> list[str]:
    return [t for t in re.split(r"(?m)^(?=/)", text) if t]


def test_deterministic(fleet, tmp_path):
    root, summary = fleet
    again = generate_fleet(tmp_path / "b", **KW)
    assert again["records"] == summary["records"]
    a, b = _digest(root), _digest(tmp_path / "b")
    assert a.keys() == b.keys()
    assert a == b
    generate_fleet(tmp_path / "c", **{**KW, "seed": 8})
    assert _digest(tmp_path / "c") != a


def test_layout_and_registry(fleet):
    root, summary = fleet
    systems = pl.read_csv(root / "registry/systems.csv", infer_schema_length=0)
    assert systems.columns == SYSTEMS_COLUMNS
    assert systems.height == 6 and systems["system_id"].n_unique() == 6
    assert systems["postcode"].str.contains(r"^[1-9]\d{3} [A-Z]{2}$").all()
    assert systems["has_heat_pump"].is_in(["true", "false"]).all()
    subjects = pl.read_csv(root / "registry/subjects.csv", infer_schema_length=0)
    assert subjects.columns == SUBJECTS_COLUMNS
    assert all(iban_is_valid(i) for i in subjects["iban"])
    assert set(subjects["subject_id"]) == set(systems["subject_id"])
    photos = pl.read_csv(root / "registry/installation_photos.csv")
    assert photos.columns == ["system_id", "file_name", "sha256"]
    stations = pl.read_csv(root / "weather/stations.csv")
    assert stations.columns == ["station_id", "name", "lat", "lon"] and stations.height == 10
    assert set(systems["station_id"].cast(pl.Int64)) <= set(stations["station_id"])
    # gas meter iff no heat pump
    hp = systems["has_heat_pump"] == "true"
    assert ((systems["gas_meter_id"].fill_null("") == "") == hp).all()

    for d in ("2025-10-25", "2025-10-26", "2025-10-27"):
        knmi = (root / "weather" / d / "knmi_hourly.txt").read_text().splitlines()
        assert KNMI_HEADER in knmi
        rows = knmi[knmi.index(KNMI_HEADER) + 1:]
        assert len(rows) == 240 and all(r.count(",") == 24 for r in rows)
        assert rows[0].split(",")[1] == d.replace("-", "")
        assert sorted({int(r.split(",")[2]) for r in rows}) == list(range(1, 25))
        assert list((root / "inverter" / d).glob("messages-*.jsonl"))
        assert len(list((root / "meter" / d).glob("em_*.p1"))) >= 6

    line = (root / "inverter/2025-10-26/messages-000.jsonl").read_text().splitlines()
    good = [json.loads(x) for x in line if x.endswith("}") and '"status"' in x and '"serial"' in x
            and '"ts"' in x and '"ac_power_w"' in x and '"ac_energy_total_kwh"' in x][:50]
    assert set(good[0]) == {"serial", "ts", "remote_ip", "ac_power_w", "ac_energy_total_kwh", "dc",
                            "temperature_c", "status"}
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d[05]:00(Z|[+-]\d\d:\d\d)$", g["ts"]) for g in good)
    dev = next((root / "device/2025-10-26").glob("*.jsonl")).read_text().splitlines()
    rec = json.loads(dev[0])
    assert set(rec) == {"device_id", "device_type", "ts", "power_w", "energy_total_kwh"}
    assert summary["files"]["weather"] == 3


def test_p1_telegram_counts_and_crc(fleet):
    from dsmr_parser import telegram_specifications
    from dsmr_parser.exceptions import InvalidChecksumError
    from dsmr_parser.parsers import TelegramParser

    root, _ = fleet
    systems = pl.read_csv(root / "registry/systems.csv", infer_schema_length=0)
    bad = pl.read_parquet(root / "ground_truth/bad_input.parquet").filter(pl.col("source") == "meter")
    broken = set(bad.filter(pl.col("kind").is_in(["bad_crc", "truncated_telegram",
                                                   "duplicate_telegram"]))["file"])
    parser = TelegramParser(telegram_specifications.V5)
    for d, expected in (("2025-10-25", 96), ("2025-10-26", 100), ("2025-10-27", 96)):
        for em in systems["em_id"]:
            rel = f"meter/{d}/{em}.p1"
            text = (root / rel).read_bytes().decode("ascii")
            tel = _telegrams(text)
            if rel not in broken:
                assert len(tel) == expected, rel
    # a clean file parses with the reference parser, CRC included
    em = systems["em_id"][0]
    clean = [f"meter/2025-10-26/{e}.p1" for e in systems["em_id"] if f"meter/2025-10-26/{e}.p1" not in broken]
    text = (root / clean[0]).read_bytes().decode("ascii")
    stamps = []
    for t in _telegrams(text):
        parsed = parser.parse(t)
        stamps.append(parsed.P1_MESSAGE_TIMESTAMP.value)
    assert len(stamps) == 100 and len(set(stamps)) == 100  # repeated hour is S then W: distinct
    assert stamps == sorted(stamps)
    # and a bad_crc telegram fails the reference parser
    row = bad.filter(pl.col("kind") == "bad_crc").row(0, named=True)
    lines = (root / row["file"]).read_bytes().decode("ascii").split("\r\n")
    rest = "\r\n".join(lines[row["line_no"] - 1:])
    with pytest.raises(InvalidChecksumError):
        parser.parse(_telegrams(rest)[0])
    del em


def test_bad_input_ground_truth_points_at_defects(fleet):
    root, _ = fleet
    systems = pl.read_csv(root / "registry/systems.csv", infer_schema_length=0)
    serials = set(systems["serial"])
    ems = set(systems["em_id"])
    ac_kw = dict(zip(systems["serial"], systems["inverter_ac_kw"].cast(pl.Float64)))
    gt = pl.read_parquet(root / "ground_truth/bad_input.parquet")
    assert gt.columns == ["source", "file", "line_no", "kind", "expected"]
    kinds = set(zip(gt["source"], gt["kind"]))
    for k in ("truncated_json", "duplicate", "unknown_serial", "future_timestamp",
              "negative_power", "unit_mixup", "counter_reset", "missing_field"):
        assert ("inverter", k) in kinds
    for k in ("bad_crc", "truncated_telegram", "duplicate_telegram", "dst_repeat", "unknown_meter"):
        assert ("meter", k) in kinds
    assert ("device", "truncated_json") in kinds and ("device", "duplicate") in kinds
    assert ("weather", "station_gap") in kinds

    cache: dict[str, list[str]] = {}

    def lines_of(rel: str) -> list[str]:
        if rel not in cache:
            cache[rel] = (root / rel).read_bytes().decode("ascii").split(
                "\r\n" if rel.endswith(".p1") else "\n")
        return cache[rel]

    seen_before: dict[str, set[str]] = {}
    inv_files = sorted({str(p.relative_to(root)) for p in root.glob("inverter/*/*.jsonl")})
    for rel in inv_files:  # all lines of earlier files, for the duplicate check
        seen_before[rel] = set()
    for row in gt.iter_rows(named=True):
        src, kind, n = row["source"], row["kind"], row["line_no"]
        line = lines_of(row["file"])[n - 1]
        if src in ("inverter", "device"):
            if kind == "truncated_json":
                with pytest.raises(json.JSONDecodeError):
                    json.loads(line)
                continue
            if kind == "duplicate":
                if src == "device":
                    assert line in lines_of(row["file"])[: n - 1]
                else:
                    earlier = [x for f in inv_files if f < row["file"] for x in lines_of(f)]
                    assert line in lines_of(row["file"])[: n - 1] or line in earlier
                continue
            rec = json.loads(line)
            if kind == "unknown_serial":
                assert rec["serial"] not in serials
            elif kind == "future_timestamp":
                assert int(rec["ts"][:4]) >= 2028
            elif kind == "negative_power":
                assert rec["ac_power_w"] <= -100
            elif kind == "unit_mixup":
                assert 0 < rec["ac_power_w"] <= ac_kw[rec["serial"]] * 1.01
            elif kind == "counter_reset":
                assert rec["ac_energy_total_kwh"] < 1.0
            elif kind == "missing_field":
                assert not {"serial", "ts", "ac_power_w", "ac_energy_total_kwh"} <= set(rec)
            assert row["expected"].split(":")[0] in ("quarantine", "corrected", "landed")
        elif src == "meter":
            assert line.startswith("/"), row
            tel = _telegrams("\r\n".join(lines_of(row["file"])[n - 1:]))[0]
            name = Path(row["file"]).stem
            if kind == "truncated_telegram":
                assert "!" not in tel
            elif kind == "duplicate_telegram":
                prev = _telegrams("\r\n".join(lines_of(row["file"])[: n - 1]) + "\r\n")[-1]
                assert prev == tel
            elif kind == "unknown_meter":
                assert name not in ems
            elif kind == "dst_repeat":
                assert re.search(r"0-0:1\.0\.0\(251026(02)\d{4}[SW]\)", tel)
            elif kind == "bad_crc":
                assert "!" in tel
        elif src == "weather":
            fields = [f.strip() for f in line.split(",")]
            assert len(fields) == 25 and fields[11] == "" and fields[7] == ""
            assert row["expected"] == "landed:null"


def test_faults_schema(fleet):
    root, _ = fleet
    f = pl.read_parquet(root / "ground_truth/faults.parquet")
    assert f.schema == pl.Schema({"system_id": pl.String, "first_day": pl.Date, "last_day": pl.Date,
                                  "kind": pl.String, "magnitude": pl.Float64, "detail": pl.String})
    assert f.height >= 1
    assert (f["first_day"] <= f["last_day"]).all()
    assert f["kind"].is_in(["outage", "soiling", "degradation", "shading", "dead_string",
                            "clipping", "wrong_metadata"]).all()
    assert (f["first_day"] >= START).all() and (f["last_day"] <= START + dt.timedelta(days=2)).all()


def test_fault_plan_covers_every_kind_for_default_fleet():
    """The default 40-system fleet gets >= 20 faults of every kind (plan only, no files)."""
    from wattlake.generator.faults import KINDS, FaultPlan
    from wattlake.generator.registry import build_fleet

    fleet = build_fleet(40, dt.date(2025, 1, 1), 42)
    plan = FaultPlan(fleet, dt.date(2025, 1, 1), 365, 42)
    kinds = [r["kind"] for r in plan.rows]
    assert len(kinds) >= 20 and set(kinds) == set(KINDS)
    healthy = 40 - len({r["sys"] for r in plan.rows})
    assert 9 <= healthy <= 18
    for r in plan.rows:
        if r["kind"] == "dead_string":
            assert fleet.n_strings[r["sys"]] >= 2
        if r["kind"] == "outage":
            assert 1 <= r["last"] - r["first"] + 1 <= 10


@pytest.mark.slow
def test_annual_irradiation_and_yield(tmp_path):
    generate_fleet(tmp_path, n_systems=2, start=dt.date(2025, 1, 1), days=365, seed=3,
                   faults=False, bad_input=False)
    daily = pl.read_parquet(tmp_path / "ground_truth/system_daily.parquet")
    systems = pl.read_csv(tmp_path / "registry/systems.csv")
    year = daily.group_by("system_id").agg(pl.col("ghi_kwh_m2").sum(), pl.col("true_ac_kwh").sum())
    year = year.join(systems.select("system_id", "kwp"), on="system_id")
    assert year["ghi_kwh_m2"].is_between(900, 1200).all(), year
    specific = year["true_ac_kwh"] / year["kwp"]
    assert specific.is_between(750, 1050).all(), year
    # the station files carry the same irradiation (Q in J/cm2 per hour)
    q = 0
    for p in sorted(tmp_path.glob("weather/*/knmi_hourly.txt")):
        for r in p.read_text().splitlines():
            if not r.startswith("#") and r.split(",")[0].strip() == "260":
                q += int(r.split(",")[11])
    assert 900 <= q / 360 <= 1200  # J/cm2 -> kWh/m2
