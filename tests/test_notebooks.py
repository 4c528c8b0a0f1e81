"""The analyst notebooks run top to bottom on a landed lake and draw at least one figure each."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_notebooks_found():
    assert [p.name for p in NOTEBOOKS][:3] == ["01_fleet_overview.ipynb", "02_one_system.ipynb",
                                               "03_guarantee_portfolio.ipynb"]


@pytest.fixture(scope="module")
def guarantee_lake(tmp_path_factory):
    """A lake with a completed guarantee year (the small landed fleet spans only 3 days): the
    evidence tests' year of hourly silver data for three insured systems, evaluated for real."""
    from tests.test_evidence import _build_lake
    from wattlake.evidence import write_evaluations

    lake = _build_lake(tmp_path_factory.mktemp("nb_glake") / "lakehouse")
    evaluations, _ = write_evaluations(lake)
    assert set(evaluations["verdict"]) >= {"met", "shortfall"}
    return lake


@pytest.fixture(scope="module")
def long_lake(tmp_path_factory):
    """Four homes over 40 days, landed, modelled and judged: longer than the bars, maps and cell
    labels that suit a few days (the demo lake holds a year)."""
    import datetime as dt

    from pipelines.cli import materialize_all
    from wattlake.generator import generate_fleet

    root = tmp_path_factory.mktemp("nb_long_landing")
    generate_fleet(root, n_systems=4, start=dt.date(2025, 4, 1), days=40, seed=11)
    lake_root = str(tmp_path_factory.mktemp("nb_long_lake") / "lakehouse")
    days = sorted(p.name for p in (root / "inverter").iterdir())
    materialize_all(days[0], days[-1], lake_root=lake_root, landing=str(root), log_level="WARNING")
    from wattlake.lake import Lake

    return Lake(lake_root)


def _png_size(output) -> tuple[int, int]:
    """(width, height) of a notebook output's PNG, from its IHDR chunk [px]."""
    import base64
    import struct

    data = base64.b64decode(output["data"]["image/png"])
    return struct.unpack(">II", data[16:24])


#: no figure a notebook draws is larger than this on either side [px]
MAX_FIGURE_PX = 2500


@pytest.mark.parametrize("path", [*NOTEBOOKS, "long"], ids=lambda p: getattr(p, "stem", p))
def test_notebook_runs(path, request, tmp_path, monkeypatch):
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    if path == "long":  # the fleet overview over 40 days: lines, monthly maps, month ticks
        path, lake = NOTEBOOKS[0], request.getfixturevalue("long_lake")
    elif path.name.startswith("03_"):
        lake = request.getfixturevalue("guarantee_lake")
    else:
        lake, _, _, _ = request.getfixturevalue("landed")
    # the kernel inherits this process's environment: the fixture's lake, a headless backend
    monkeypatch.setenv("WATTLAKE_LAKE", str(lake.root))
    monkeypatch.setenv("MPLBACKEND", "Agg")

    nb = nbformat.read(path, as_version=4)
    # stored stripped: no outputs, no execution counts
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"

    # "python3" must start this interpreter (jupyter_client swaps a bare "python" for sys.executable)
    argv = KernelSpecManager().get_kernel_spec("python3").argv
    assert argv[0] in ("python", "python3", sys.executable), argv

    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} drew no figure"
    sizes = [_png_size(o) for o in figures]
    assert max(max(wh) for wh in sizes) <= MAX_FIGURE_PX, sizes  # a year once drew 101,119 px wide


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_no_personal_data(path):
    import nbformat

    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert "restricted=True" not in source and "restricted." not in source
    assert "connect(" in source
