"""benchmarks/run.py end to end on a tiny fleet: it runs, and its JSON has the promised shape."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"name", "rows", "seconds", "rows_per_s", "peak_rss_bytes"}


def test_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--systems", "3", "--days", "2",
         "--json", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["systems"] == 3 and result["days"] == 2
    assert {"cpu_count", "platform"} <= set(result["machine"])
    assert result["machine"]["calibration"]["json_decode_lines_per_s"] > 0
    assert result["generation_seconds"] > 0

    stages = {s["name"]: s for s in result["stages"]}
    run = {n: s for n, s in stages.items() if "skipped" not in s}
    assert {"land_inverter", "land_meter", "land_device", "land_weather", "silver_pv_intervals",
            "gold_system_daily", "alerts"} <= set(run)
    for name, s in run.items():
        assert REQUIRED <= set(s), (name, s)
        assert s["seconds"] > 0 and s["peak_rss_bytes"] > 0, (name, s)
    # stages other engineers build are run when their modules exist, else listed as skipped
    for name in ("guarantee_evaluations", "research_release"):
        assert name in stages, name
        assert "skipped" in stages[name] or REQUIRED <= set(stages[name]), stages[name]
    assert run["land_inverter"]["rows"] > 0
    assert run["silver_pv_intervals"]["rows"] > 0
    assert "telegrams_per_s" in run["land_meter"]
    # CPU and page faults per stage: landing parses in the process, so it must show some
    assert run["land_meter"]["cpu_user_s"] > 0 and run["land_meter"]["minor_faults"] > 0
    assert all(s["cpu_sys_s"] >= 0 for s in run.values())
    # each stage's own peak (the kernel counter is reset per stage) never exceeds the process peak
    assert all(0 < s["stage_peak_rss_bytes"] <= s["peak_rss_bytes"] for s in run.values())
    peaks = [s["peak_rss_bytes"] for s in result["stages"] if "skipped" not in s]
    assert peaks == sorted(peaks)  # the process peak so far only grows

    assert result["naive"]["seconds_per_system_year"] > 0
    speedup = result["speedup_vs_naive"]
    assert isinstance(speedup, (int, float)) and speedup > 0
    # the work dir's landing and lake are removed without --keep
    assert not (tmp_path / "work" / "lake").exists()
