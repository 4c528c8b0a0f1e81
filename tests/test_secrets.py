"""A full run on an S3 lake with secret-looking values in the environment: no secret anywhere.

Captured: stdout/stderr (capfd), every Python log record (DEBUG, all loggers), every Dagster run
record and event log entry of the instance and every file under its DAGSTER_HOME, every object
in the S3 bucket (lake and exports), the local subject export, and the messages of failures.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import traceback

import polars as pl
import pytest

from tests.test_privacy import find_in_files, local_files
from wattlake import tables as T

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY-s3cr3t-0001",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEJr-s3ss10n-t0k3n-0002",
    "WATTLAKE_KEY_INSURER_ACME": "insurer-hmac-k3y-0003-7f3a9c",
    "WATTLAKE_KEY_AUDIT": "audit-hmac-k3y-0004-b1d2e3",
    "DAGSTER_PG_PASSWORD": "pg-passw0rd-0005-q9w8e7",
    "WATTLAKE_SMTP_PASSWORD": "smtp-passw0rd-0006-z1x2",
}


@pytest.mark.slow
def test_full_run_leaks_no_secret(s3_env, small_landing, tmp_path, monkeypatch, capfd, caplog):
    import boto3
    import dagster as dg
    from dagster._serdes import serialize_value

    from pipelines.cli import main, materialize_all
    from wattlake.exports import ExportRoot
    from wattlake.keys import get_key, secret_values, sign
    from wattlake.lake import Lake
    from wattlake.privacy import erase, export_subject
    from wattlake.retention import apply_retention

    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    bucket = s3_env.split("/")[2]
    monkeypatch.setenv("WATTLAKE_EXPORTS", f"s3://{bucket}/exports")
    monkeypatch.setenv("WATTLAKE_LAKE", s3_env)
    assert set(SECRETS.values()) <= set(secret_values())
    caplog.set_level(logging.DEBUG)
    landing, _ = small_landing
    home = tmp_path / "dagster_home"
    home.mkdir()
    failures: list[str] = []

    with dg.DagsterInstance.local_temp(str(home)) as instance:
        days = sorted({p.name for src in ("inverter", "meter") for p in (landing / src).iterdir()})
        materialize_all(days[0], days[-1], instance=instance, lake_root=s3_env, landing=str(landing))
        lake = Lake(s3_env)
        from assets.retention import retention
        from pipelines.resources import ExportsResource, LakeResource, LandingResource

        own = shutil.copytree(landing, tmp_path / "landing")  # retention rewrites the landing folder
        dg.materialize([retention], resources={"lake": LakeResource(root=s3_env), "exports": ExportsResource(),
                                               "landing": LandingResource(root=str(own))}, instance=instance)
        apply_retention(lake, dt.datetime.now(dt.UTC) + dt.timedelta(days=500))

        # an insurer pack signed with the insurer's HMAC key (the signature, never the key, is written)
        sid = lake.read(T.SUBJECTS.name)["subject_id"][0]
        system_id = lake.read(T.SYSTEMS.name).filter(pl.col("subject_id") == sid)["system_id"][0]
        pack = ExportRoot.from_env().folder("insurers", "acme", "claim-7")
        pack.write("evidence.csv", f"system_id\n{system_id}\n".encode())
        pack.write("manifest.json", json.dumps({"files": pack.files, "signature": sign(
            get_key("insurer-acme"), json.dumps(pack.files).encode())}).encode())

        export_subject(lake, sid, tmp_path / "subject_export", as_zip=True)
        assert main(["--lake", s3_env, "tables"]) == 0
        assert main(["--lake", s3_env, "retention", "--dry-run"]) == 0
        report = erase(lake, sid, instance=instance, export_root=ExportRoot.from_env())
        assert report.outcome == "erased" and report.insurer_packs_kept == ["insurers/acme/claim-7"]

        # failures quote no configuration either
        for attempt in (lambda: Lake("s3://no-such-bucket-x/lake").table("bronze/inverter_readings"),
                        lambda: ExportRoot("s3://no-such-bucket-x/exp").write("a.txt", b"x")):
            with pytest.raises(Exception) as exc:
                attempt()
            failures.append("".join(traceback.format_exception(exc.value)))

        runs = instance.get_runs()
        assert len(runs) >= 4
        dagster_text = "\n".join(serialize_value(r) + "\n".join(serialize_value(e) for e in instance.all_logs(r.run_id))
                                 for r in runs)
        dagster_files = local_files(home)

    out, err = capfd.readouterr()
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    s3 = boto3.client("s3")
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            objects[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    assert any(k.startswith("wattlake/bronze/inverter_readings/_delta_log/") for k in objects)
    assert any(k.endswith("manifest.json") for k in objects)
    assert len(caplog.records) > 100 and len(dagster_text) > 10_000 and dagster_files

    secrets = list(SECRETS.values())
    texts = {"stdout": out.encode(), "stderr": err.encode(), "python logging": logs.encode(),
             "dagster events": dagster_text.encode(), "exceptions": "\n".join(failures).encode()}
    assert find_in_files(texts, secrets) == []
    assert find_in_files(dagster_files, secrets) == []
    assert find_in_files(objects, secrets) == []
    assert find_in_files({"export.zip": (tmp_path / "subject_export.zip").read_bytes()}, secrets) == []

    # and no personal data of anyone in the Dagster events or the logs
    subjects = pl.read_csv(landing / "registry" / "subjects.csv", infer_schema=False)
    personal = [v for c in ("name", "email", "phone", "iban") for v in subjects[c].to_list()]
    assert find_in_files({"dagster": dagster_text.encode(), "logs": logs.encode(), "stdout": out.encode()},
                         personal) == []
