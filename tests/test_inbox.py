"""The S3 inbox: objects move into the landing folder byte for byte and leave the bucket.

Against a real S3-protocol server on 127.0.0.1 (moto, started by the tests).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from pathlib import Path

import pytest

from tests.conftest import S3_KEY, S3_SECRET
from wattlake.inbox import InboxError, inbox_fingerprint, landing_path, pull_inbox


def _client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                        region_name="us-east-1")


@pytest.fixture
def inbox(s3_endpoint, monkeypatch):
    """A fresh bucket as inbox (prefix ``in``); yields (uri, client, bucket)."""
    for k, v in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
                 "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    client = _client(s3_endpoint)
    bucket = f"inbox-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/in", client, bucket


def _files(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every landing file (bookkeeping and ground truth left out)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
            and p.relative_to(root).parts[0] != "ground_truth"}


def _upload(client, bucket: str, root: Path, prefix: str = "in") -> int:
    n = 0
    for rel in _files(root):
        client.upload_file(str(root / rel), bucket, f"{prefix}/{rel}")
        n += 1
    return n


def _keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_landing_path_accepts_only_the_landing_layout():
    assert landing_path("inverter/2025-10-25/messages-000.jsonl") == ("inverter/2025-10-25/messages-000.jsonl", False)
    assert landing_path("meter/2025-10-25/em_0a1b2c3d.p1") == ("meter/2025-10-25/em_0a1b2c3d.p1", False)
    assert landing_path("registry/subjects.csv") == ("registry/subjects.csv", True)
    assert landing_path("weather/stations.csv") == ("weather/stations.csv", True)
    for bad in ("inverter/2025-13-01/a.jsonl", "inverter/2025-10-25/a.p1", "meter/2025-10-25/.x.p1",
                "inverter/2025-10-25/sub/a.jsonl", "../etc/passwd", "registry/../../x.csv", "readme.txt",
                "invoices/2025-10-25/a.jsonl", "inverter//a.jsonl", "registry/notes.txt", "registry/extra.csv"):
        assert landing_path(bad) is None, bad


def test_pull_moves_a_fleet_byte_for_byte_and_empties_the_inbox(inbox, small_landing, tmp_path, caplog):
    uri, client, bucket = inbox
    source, _ = small_landing
    expected = _files(source)
    sent = _upload(client, bucket, source)
    client.put_object(Bucket=bucket, Key="in/notes/readme.txt", Body=b"not landing input")
    landing = tmp_path / "landing"

    dry = pull_inbox(landing, uri, dry_run=True)
    assert (dry.objects, dry.pulled, dry.unrecognised) == (sent + 1, sent, 1)
    assert f"to pull {sent:,}" in dry.summary() and "pulled" not in dry.summary().replace("would pull", "")
    assert not landing.exists() and len(_keys(client, bucket)) == sent + 1

    caplog.set_level(logging.INFO, logger="wattlake")
    report = pull_inbox(landing, uri, workers=4, progress_every=10)
    assert (report.objects, report.pulled, report.unrecognised, report.failed) == (sent + 1, sent, 1, 0)
    assert report.bytes_pulled == sum((source / rel).stat().st_size for rel in expected)
    assert _files(landing) == expected                      # every byte, every name
    assert _keys(client, bucket) == ["in/notes/readme.txt"]  # moved, not copied
    assert not any((landing / ".inbox-tmp").iterdir())      # no download left behind
    # logs hold counts, never file names (serials and energy-manager ids)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wattlake"))
    assert "objects done" in ours and f"{sent + 1:,} objects" in ours
    assert "em_" not in ours and ".jsonl" not in ours and ".p1" not in ours

    again = pull_inbox(landing, uri)
    assert (again.objects, again.pulled, again.unrecognised) == (1, 0, 1)


def test_interrupted_pull_is_resumed_and_a_different_file_is_a_conflict(inbox, tmp_path):
    uri, client, bucket = inbox
    landing = tmp_path / "landing"
    day = landing / "inverter" / "2025-10-25"
    day.mkdir(parents=True)
    (day / "messages-000.jsonl").write_bytes(b'{"serial": "A"}\n')       # pulled before a crash
    (day / "messages-001.jsonl").write_bytes(b'{"serial": "B"}\n')       # a different local file
    client.put_object(Bucket=bucket, Key="in/inverter/2025-10-25/messages-000.jsonl", Body=b'{"serial": "A"}\n')
    client.put_object(Bucket=bucket, Key="in/inverter/2025-10-25/messages-001.jsonl", Body=b'{"serial": "C"}\n')
    (landing / "registry").mkdir()
    (landing / "registry" / "subjects.csv").write_text("subject_id\nold\n")
    client.put_object(Bucket=bucket, Key="in/registry/subjects.csv", Body=b"subject_id\nnew\n")

    report = pull_inbox(landing, uri)
    assert (report.already_present, report.conflicts, report.replaced, report.pulled) == (1, 1, 1, 0)
    assert (day / "messages-001.jsonl").read_bytes() == b'{"serial": "B"}\n'   # never overwritten
    assert (landing / "registry" / "subjects.csv").read_text() == "subject_id\nnew\n"  # the newest snapshot
    assert _keys(client, bucket) == ["in/inverter/2025-10-25/messages-001.jsonl"]    # kept for the operator


class _Proxy:
    """A boto3 client whose get_object can be tampered with (a transfer fault, a concurrent upload)."""

    def __init__(self, client, after_get=None, corrupt=False):
        self._c, self._after, self._corrupt = client, after_get, corrupt
        self.exceptions = client.exceptions

    def __getattr__(self, name):
        return getattr(self._c, name)

    def get_object(self, **kw):
        import io

        resp = self._c.get_object(**kw)
        if self._corrupt:
            data = bytearray(resp["Body"].read())
            data[0] ^= 1
            resp["Body"] = io.BytesIO(bytes(data))
        if self._after:
            self._after(kw)
        return resp


def test_a_corrupt_transfer_fails_and_keeps_the_object(inbox, tmp_path):
    uri, client, bucket = inbox
    key = "in/meter/2025-10-25/em_0a1b2c3d.p1"
    client.put_object(Bucket=bucket, Key=key, Body=b"/ISK5\\2M550T-1012\r\n!ABCD\r\n")
    landing = tmp_path / "landing"
    with pytest.raises(InboxError, match="1 objects could not be pulled") as info:
        pull_inbox(landing, uri, client=_Proxy(client, corrupt=True))
    assert info.value.report.failed == 1 and info.value.report.errors == ["_Mismatch x1"]
    assert not (landing / "meter").exists() and _keys(client, bucket) == [key]
    assert pull_inbox(landing, uri).pulled == 1                     # a clean retry moves it
    assert (landing / key[3:]).read_bytes().startswith(b"/ISK5") and _keys(client, bucket) == []


def test_an_object_overwritten_during_the_pull_stays_in_the_inbox(inbox, tmp_path):
    uri, client, bucket = inbox
    key = "in/device/2025-10-25/em_0a1b2c3d.jsonl"
    client.put_object(Bucket=bucket, Key=key, Body=b'{"v": 1}\n')

    def overwrite(kw):
        client.put_object(Bucket=bucket, Key=key, Body=b'{"v": 1}\n{"v": 2}\n')

    landing = tmp_path / "landing"
    report = pull_inbox(landing, uri, client=_Proxy(client, after_get=overwrite))
    assert (report.pulled, report.changed) == (0, 1)
    assert (landing / key[3:]).read_bytes() == b'{"v": 1}\n'      # what was read is kept
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b'{"v": 1}\n{"v": 2}\n'
    assert pull_inbox(landing, uri).conflicts == 1               # and then surfaces for the operator


def test_an_object_another_pull_took_first_is_counted_as_gone(inbox, tmp_path):
    uri, client, bucket = inbox
    key = "in/device/2025-10-25/em_0a1b2c3d.jsonl"
    client.put_object(Bucket=bucket, Key=key, Body=b'{"v": 1}\n')

    class Raced(_Proxy):
        def get_object(self, **kw):
            self._c.delete_object(**kw)
            return self._c.get_object(**kw)

    report = pull_inbox(tmp_path / "landing", uri, client=Raced(client))
    assert (report.objects, report.gone, report.failed) == (1, 1, 0)


def test_a_versioned_inbox_keeps_no_version_or_delete_marker(inbox, tmp_path):
    uri, client, bucket = inbox
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="in/weather/2025-10-25/knmi_hourly.txt", Body=b"# STN,YYYYMMDD,HH\n")
    report = pull_inbox(tmp_path / "landing", uri)
    assert report.pulled == 1
    versions = client.list_object_versions(Bucket=bucket)
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")


def test_no_inbox_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WATTLAKE_INBOX", raising=False)
    with pytest.raises(InboxError, match="no inbox configured"):
        pull_inbox(tmp_path)
    with pytest.raises(InboxError, match="s3://"):
        pull_inbox(tmp_path, "/data/inbox")


def test_fingerprint_changes_with_content(inbox):
    uri, client, bucket = inbox
    assert inbox_fingerprint(uri)[0] == 0
    client.put_object(Bucket=bucket, Key="in/registry/systems.csv", Body=b"a\n")
    n, first = inbox_fingerprint(uri)
    client.put_object(Bucket=bucket, Key="in/registry/systems.csv", Body=b"b\n")
    assert n == 1 and inbox_fingerprint(uri)[1] != first


def test_sensor_and_job_pull_the_inbox_and_the_landing_sensor_sees_the_days(inbox, small_landing, tmp_path):
    import dagster as dg

    from pipelines.jobs import pull_inbox_job
    from pipelines.resources import LandingResource
    from pipelines.sensors import day_fingerprints, inbox_sensor

    uri, client, bucket = inbox
    source, _ = small_landing
    sent = _upload(client, bucket, source)
    landing = LandingResource(root=str(tmp_path / "landing"), inbox=uri)
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"landing": landing})
        request = inbox_sensor(ctx)
        assert isinstance(request, dg.RunRequest) and request.run_key.startswith("inbox:")
        # the same objects again (say, conflicts a pull left): no second run
        again = inbox_sensor(dg.build_sensor_context(instance=instance, cursor=ctx.cursor,
                                                     resources={"landing": landing}))
        assert isinstance(again, dg.SkipReason)

        result = pull_inbox_job.execute_in_process(instance=instance, resources={"landing": landing})
        assert result.success
        assert result.output_for_node("pull_inbox_op")["pulled"] == sent
        assert _files(landing.path()) == _files(source)
        assert set(day_fingerprints(landing.path())) == set(day_fingerprints(source))
        empty = inbox_sensor(dg.build_sensor_context(instance=instance, cursor=ctx.cursor,
                                                     resources={"landing": landing}))
        assert isinstance(empty, dg.SkipReason) and "empty" in str(empty.skip_message)

    unconfigured = LandingResource(root=str(tmp_path / "landing"))
    with dg.instance_for_test() as instance:
        skip = inbox_sensor(dg.build_sensor_context(instance=instance, resources={"landing": unconfigured}))
    assert isinstance(skip, dg.SkipReason)


def test_cli_pull_reports_counts_and_exits_2_on_a_conflict(inbox, tmp_path, capsys):
    from pipelines.cli import main

    uri, client, bucket = inbox
    landing = tmp_path / "landing"
    client.put_object(Bucket=bucket, Key="in/inverter/2025-10-25/messages-000.jsonl", Body=b'{"serial": "A"}\n')
    assert main(["--landing", str(landing), "inbox", "pull", "--inbox", uri, "--dry-run"]) == 0
    assert not landing.exists()
    assert main(["--landing", str(landing), "inbox", "pull", "--inbox", uri]) == 0
    assert (landing / "inverter/2025-10-25/messages-000.jsonl").is_file()
    client.put_object(Bucket=bucket, Key="in/inverter/2025-10-25/messages-000.jsonl", Body=b'{"serial": "B"}\n')
    assert main(["--landing", str(landing), "inbox", "pull", "--inbox", uri]) == 1  # refused to overwrite
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "1 objects differ" in captured.err and "messages-000" not in out and "serial" not in out
