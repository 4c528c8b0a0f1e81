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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, request, tmp_path, monkeypatch):
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    if path.name.startswith("03_"):
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_no_personal_data(path):
    import nbformat

    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert "restricted=True" not in source and "restricted." not in source
    assert "connect(" in source
