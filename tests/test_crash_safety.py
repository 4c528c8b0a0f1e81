"""Crash safety: a landing run SIGKILLed mid-write leaves every table readable at its previous
version (or at a complete new one), and the rerun converges to the uninterrupted result.

The worker (``tests/crash_worker.py``) is a real subprocess running ``land_registry`` + ``land``.
The test watches ``<lake>/bronze/inverter_readings/`` and kills the worker as soon as a new data
file of the big MERGE appears: delta-rs writes data files (staged as ``<name>.parquet#N``, then
renamed) before it commits ``_delta_log/<version>.json``, so the kill lands inside the Delta
write. It also kills at a fixed delay (mid-parse) and as soon as the commit appears. For every kill: every table opens
with ``deltalake.DeltaTable`` and reads fully; it is at its previous version with its previous
content, or exactly one version later with the content of the complete MERGE; the orphan data
files the killed writer left are not read. Then the worker reruns to completion and every
table equals (except ``landed_at_utc``) a reference lake landed uninterrupted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from wattlake import tables as T
from wattlake.lake import Lake
from wattlake.landing import land
from wattlake.registry import land_registry

WORKER = Path(__file__).with_name("crash_worker.py")
#: 1,000 systems x 3 days: landing days 2-3 of the inverter source is one commit of ~580k rows. The
#: kill needs that step to last at least 0.5 s; at 400 systems (~230k rows) it took 0.49 s in the
#: worker once landing got faster, at 700 systems 0.49-0.54 s after the next speed-ups
#: (2026-11-24), so the fleet grew again
FLEET = dict(n_systems=1000, start=dt.date(2025, 6, 1), days=3, seed=5, faults=False, bad_input=False)
WATCHED = T.INVERTER_READINGS.name
WINDOW_TRIES = 4


def _run_worker(lake_root: Path, landing: Path, *steps: str) -> list[dict]:
    out = subprocess.run([sys.executable, str(WORKER), str(lake_root), str(landing), *steps],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def _start_worker(lake_root: Path, landing: Path, *steps: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(lake_root), str(landing), *steps],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _data_files(table_dir: Path) -> set[str]:
    """Every file of a table outside ``_delta_log`` (staged ``#N`` files included), relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(table_dir):
        if "_delta_log" in dirnames:
            dirnames.remove("_delta_log")
        out.update(os.path.relpath(os.path.join(dirpath, f), table_dir) for f in filenames)
    return out


def _commits(table_dir: Path) -> set[str]:
    log = table_dir / "_delta_log"
    return {p.name for p in log.glob("*.json")} if log.is_dir() else set()


def _snapshot(lake_root: Path) -> dict[str, tuple[int, pl.DataFrame]]:
    """Every existing table, opened and read fully with deltalake: (version, content sorted by key)."""
    out = {}
    for name, spec in T.TABLES.items():
        if not (lake_root / name / "_delta_log").is_dir():
            continue
        table = DeltaTable(str(lake_root / name))
        df = pl.from_arrow(table.to_pyarrow_table())
        df = df.drop([c for c in ("landed_at_utc",) if c in df.columns]).sort(list(spec.keys))
        out[name] = (table.version(), df)
    return out


def _assert_previous_or_complete(after: dict, before: dict, reference: dict, ctx: str) -> dict[str, str]:
    """Each table at its previous version and content, or one version on with the full MERGE's content."""
    assert after.keys() == before.keys(), ctx
    states = {}
    for name, (version, df) in after.items():
        v0, df0 = before[name]
        if version == v0:
            assert df.equals(df0), f"{ctx}: {name} changed without a new version"
            states[name] = "previous"
        else:
            assert version == v0 + 1, f"{ctx}: {name} went from v{v0} to v{version}"
            assert df.height == reference[name][1].height, f"{ctx}: {name} v{version} is a partial MERGE"
            assert df.equals(reference[name][1]), f"{ctx}: {name} v{version} differs from the full MERGE"
            states[name] = "complete"
    return states


def _assert_same_content(got: dict, reference: dict, ctx: str) -> None:
    assert got.keys() == reference.keys(), ctx
    for name in reference:
        assert got[name][1].equals(reference[name][1]), f"{ctx}: {name} differs from the uninterrupted run"


def _kill_when(lake_root: Path, landing: Path, step: str, trigger: str, timeout: float = 120.0) -> dict:
    """Run the worker; SIGKILL it as soon as the watched table shows a new ``data`` file
    (``*.parquet`` or a staged ``*.parquet#N``) or a new ``commit``."""
    table_dir = lake_root / WATCHED
    data0, log0 = _data_files(table_dir), _commits(table_dir)
    proc = _start_worker(lake_root, landing, step)
    t0 = time.monotonic()
    seen: set[str] = set()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if trigger == "data":
            seen = {f for f in _data_files(table_dir) - data0 if ".parquet" in f}
        else:
            seen = _commits(table_dir) - log0
        if seen:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)  # the write phase lasts ~8 ms; polling faster only slows the worker
    else:
        proc.kill()
    proc.wait()
    return {"returncode": proc.returncode, "stdout": proc.stdout.read(), "trigger": sorted(seen),
            "new_commits": sorted(_commits(table_dir) - log0), "new_files": sorted(_data_files(table_dir) - data0),
            "at": time.monotonic() - t0}


def _kill_after(lake_root: Path, landing: Path, step: str, delay: float) -> dict:
    table_dir = lake_root / WATCHED
    data0, log0 = _data_files(table_dir), _commits(table_dir)
    proc = _start_worker(lake_root, landing, step)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return {"returncode": proc.returncode, "stdout": proc.stdout.read(), "trigger": [],
            "new_commits": sorted(_commits(table_dir) - log0), "new_files": sorted(_data_files(table_dir) - data0),
            "at": delay}


def _window(kill: dict) -> str:
    if kill["returncode"] != -signal.SIGKILL:
        return "finished"
    if kill["new_commits"]:
        return "after_commit"
    return "inside_write" if kill["new_files"] else "before_write"


def _check_orphans(lake_root: Path, kill: dict, before: dict) -> tuple[int, int]:
    """Data files the killed writer left behind (complete ``.parquet`` or staged ``.parquet#N``)
    are not part of the table: not referenced, their rows not read. Returns (files, rows in the
    complete ones)."""
    table_dir = lake_root / WATCHED
    table = DeltaTable(str(table_dir))
    live = {os.path.relpath(p, table_dir) for p in table.file_uris()}
    orphans = [f for f in kill["new_files"] if os.path.normpath(f) not in live]
    complete = [f for f in orphans if f.endswith(".parquet")]
    keys = list(T.INVERTER_READINGS.keys)
    current = pl.from_arrow(table.to_pyarrow_table()).select(keys)
    assert current.height == before[WATCHED][1].height
    rows = 0
    for f in complete:
        orphan = pl.from_arrow(pq.read_table(table_dir / f)).select(keys)
        assert orphan.height > 0
        assert orphan.join(current, on=keys, how="semi").height == 0, f"orphan {f} rows are read"
        rows += orphan.height
    # other readers of the Delta log agree
    assert pl.scan_delta(str(table_dir)).select(pl.len()).collect().item() == current.height
    return len(orphans), rows


@pytest.mark.slow  # 50-60 s alone on 2 cores, ~67 s next to other tests under -n 2
def test_killed_landing_leaves_tables_readable_and_rerun_converges(tmp_path):
    from wattlake.generator import generate_fleet

    landing = tmp_path / "landing"
    generate_fleet(landing, **FLEET)
    days = sorted(p.name for p in (landing / "inverter").iterdir())
    assert len(days) == 3
    pre_steps = ["registry", f"inverter:{days[0]}", f"device:{days[0]}", f"weather:{','.join(days)}"]
    big = f"inverter:{days[1]},{days[2]}"

    # the previous state, landed in-process through the same functions the worker calls
    pre = tmp_path / "pre"
    pre_lake = Lake(str(pre))
    land_registry(pre_lake, landing)
    for step in pre_steps[1:]:
        source, _, ds = step.partition(":")
        land(pre_lake, landing, source, ds.split(","))
    before = _snapshot(pre)
    assert {T.INVERTER_READINGS.name, T.INVERTER_IPS.name, T.SYSTEMS.name, T.WEATHER.name} <= before.keys()

    # the reference: the same steps, uninterrupted, in one worker
    ref = tmp_path / "reference"
    ref_reports = _run_worker(ref, landing, *pre_steps, big)
    big_report = ref_reports[-1]["report"]
    assert big_report["landed"] > 200_000 and big_report["records"] == big_report["landed"]
    # long enough to kill mid-way (the kill on the first data file below is what must hit the write)
    assert ref_reports[-1]["seconds"] >= 0.5, ref_reports[-1]
    reference = _snapshot(ref)
    assert reference[WATCHED][1].height == before[WATCHED][1].height + big_report["landed"]

    # the fixed delay: the worker's start-up (~1.5 s) plus about half of the big step
    delay = ref_reports[-1]["seconds"]

    attempts = []
    for i in range(WINDOW_TRIES):  # kill between the first data file and the commit
        lake_root = shutil.copytree(pre, tmp_path / f"window{i}")
        kill = _kill_when(lake_root, landing, big, "data")
        attempts.append((f"on data file, try {i}", lake_root, kill))
        if _window(kill) == "inside_write":
            break
    # kill mid-parse (a fixed delay), and right after the commit of the watched table
    lake_root = shutil.copytree(pre, tmp_path / "delay")
    attempts.append((f"after {delay:.1f}s", lake_root, _kill_after(lake_root, landing, big, delay)))
    lake_root = shutil.copytree(pre, tmp_path / "commit")
    attempts.append(("on commit", lake_root, _kill_when(lake_root, landing, big, "commit")))

    windows = []
    for ctx, lake_root, kill in attempts:
        window = _window(kill)
        assert window != "finished" or ctx == "on commit", f"{ctx}: the worker finished before it was killed"
        if window in ("inside_write", "before_write"):  # killed before the commit: no report
            assert kill["stdout"] == "", f"{ctx}: the killed worker reported {kill['stdout']}"
        after = _snapshot(lake_root)  # every table opens and reads fully
        states = _assert_previous_or_complete(after, before, reference, ctx)
        windows.append((ctx, window, round(kill["at"], 3), kill["new_files"], kill["new_commits"], states))
        if window == "inside_write":
            assert states[WATCHED] == "previous", ctx
            n_orphans, orphan_rows = _check_orphans(lake_root, kill, before)
            assert n_orphans > 0, f"{ctx}: killed inside the write but no orphan file"
            windows[-1] += (f"{n_orphans} orphan files, {orphan_rows} rows in complete ones",)
        elif window in ("after_commit", "finished"):
            assert states[WATCHED] == "complete", ctx
        else:
            assert states[WATCHED] == "previous", ctx
        # the rerun converges to the uninterrupted result; orphan files stay on disk, unread
        rerun = _run_worker(lake_root, landing, big)[0]["report"]
        expected_new = 0 if states[WATCHED] == "complete" else big_report["landed"]
        assert rerun["landed"] == expected_new, ctx
        assert rerun["records"] == rerun["landed"] + rerun["duplicates"] + rerun["quarantined"]
        assert all((lake_root / WATCHED / f).exists() for f in kill["new_files"] if f.endswith(".parquet"))
        _assert_same_content(_snapshot(lake_root), reference, ctx)
    print("\nkill windows:", *windows, sep="\n  ")
    assert any(w[1] == "inside_write" for w in windows), windows
