"""Landing worker for tests/test_crash_safety.py: a separate process the test can SIGKILL.

Usage::

    python tests/crash_worker.py LAKE_ROOT LANDING_ROOT STEP [STEP ...]

A STEP is ``registry`` (``land_registry``) or ``<source>:<day>[,<day>...]`` (one ``land`` call,
so one MERGE per table for all the days given). Each finished step prints one JSON line to
stdout (flushed, with its duration in ``seconds``), so the caller sees how far a killed worker got.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# run as a script from anywhere: make the repository importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wattlake.lake import Lake  # noqa: E402
from wattlake.landing import land  # noqa: E402
from wattlake.registry import land_registry  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    lake, landing, steps = Lake(argv[0]), Path(argv[1]), argv[2:]
    for step in steps:
        t0 = time.perf_counter()
        if step == "registry":
            reports = land_registry(lake, landing)
            out = {"step": step, "tables": {name: {"rows": r.rows, "written": r.written, "version": r.version}
                                            for name, r in reports.items()}}
        else:
            source, _, days = step.partition(":")
            report = land(lake, landing, source, days.split(","))
            out = {"step": step, "report": report.as_dict()}
        out["seconds"] = round(time.perf_counter() - t0, 3)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
