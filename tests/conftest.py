"""Shared fixtures: a real S3-protocol server on 127.0.0.1 (moto), small generated fleets."""

from __future__ import annotations

import datetime as dt
import os
import uuid
import warnings

import pytest

warnings.filterwarnings("ignore")

# keys created by the code under test (insurer signatures, audit pseudonyms) stay out of ~/.config
if "WATTLAKE_KEY_DIR" not in os.environ:
    import tempfile

    os.environ["WATTLAKE_KEY_DIR"] = tempfile.mkdtemp(prefix="wattlake-keys-")
# GX Data Docs of the checks the tests run: one folder per test process, not ./data_docs of the
# checkout, where two xdist workers rebuilding the same site raced (FileNotFoundError)
if "WATTLAKE_DATA_DOCS" not in os.environ:
    import tempfile

    os.environ["WATTLAKE_DATA_DOCS"] = tempfile.mkdtemp(prefix="wattlake-docs-")

from wattlake.lake import Lake  # noqa: E402

S3_KEY, S3_SECRET = "wattlake-test-key", "wattlake-test-secret"


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (random free port), started and stopped by the tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """AWS environment pointing at the test server, with a fresh bucket; yields its s3:// root."""
    import boto3

    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    for k, v in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
                 "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    yield f"s3://{bucket}/wattlake"


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lakehouse"))


#: a small fleet spanning the October DST change (2025-10-26 has 25 local hours)
SMALL_FLEET = dict(n_systems=8, start=dt.date(2025, 10, 25), days=3, seed=7)


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory):
    """Landing folder with a small generated fleet (shared, read-only)."""
    from wattlake.generator import generate_fleet

    root = tmp_path_factory.mktemp("landing")
    summary = generate_fleet(root, **SMALL_FLEET)
    return root, summary


@pytest.fixture(scope="session")
def landed(small_landing, tmp_path_factory):
    """The small fleet landed into a local lake through real Dagster materialisations."""
    from pipelines.cli import materialize_all

    root, _ = small_landing
    lake_root = str(tmp_path_factory.mktemp("lake") / "lakehouse")
    days = sorted(p.name for p in (root / "inverter").iterdir())
    days = sorted(set(days) | {p.name for p in (root / "meter").iterdir()})
    reg, bronze = materialize_all(days[0], days[-1], lake_root=lake_root, landing=str(root))
    return Lake(lake_root), root, days, bronze
