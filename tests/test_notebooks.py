"""Execute the walkthrough notebooks with nbclient (slow: each trains small models)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["tabular.ipynb"]


def _kernel_name(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A kernel running this interpreter: ``python3`` if its spec is ours, else a private one.

    Returns the kernel name and extra environment variables (``JUPYTER_PATH``) that make a
    private kernel spec visible to the kernel manager.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
        argv0 = spec.argv[0]
        here = Path(sys.executable).resolve()
        if argv0 in ("python", "python3") or Path(argv0).resolve() == here:
            return "python3", {}
    except NoSuchKernel:
        pass
    # register a spec for this interpreter in a private folder (the repo's venv stays untouched)
    from ipykernel.kernelspec import install

    prefix = tmp_path / "jupyter"
    install(prefix=str(prefix), kernel_name="simshap-test")
    return "simshap-test", {"JUPYTER_PATH": str(prefix / "share" / "jupyter")}


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    kernel, env = _kernel_name(tmp_path)
    for key, value in {
        **env,
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    text = "\n".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )
    assert "ground truth:" in text and "SimSHAP" in text
    assert os.environ["MPLBACKEND"] == "Agg"
