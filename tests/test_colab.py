"""The Colab notebook, executed headlessly on the CPU with the tiny setting (nbclient), so that it cannot rot."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_notebook_runs_end_to_end_on_the_cpu(tmp_path):
  nb = nbformat.read(os.path.join(REPO, "colab", "crackjax.ipynb"), as_version=4)
  params = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# Parameters."))
  workdir = str(tmp_path / "colab_run")
  assert 'WORKDIR = "runs/colab"' in params.source and "TINY = None" in params.source
  params.source = params.source.replace('WORKDIR = "runs/colab"', f"WORKDIR = {workdir!r}")
  client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": os.path.join(REPO, "colab")}})
  client.execute()
  outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
  assert "runtime: CPU" in outputs and "picks the tiny setting" in outputs
  images = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
  assert images >= 8  # histogram, ROC, confusion, galleries, sweep curves, the student's ROC, overlays
  for path in ("metrics.json", "sweep/steps/sweep.json", "predict/own_images/report.html"):
    assert os.path.exists(os.path.join(workdir, path)), path
  assert os.path.exists(os.path.join(workdir + "_student", "metrics.json"))
  nbformat.write(nb, str(tmp_path / "executed.ipynb"))  # the executed copy stays out of the repository


@pytest.mark.parametrize("line", ["jax==", "jaxlib=="])
def test_the_install_cell_keeps_the_runtimes_jax(line):
  nb = nbformat.read(os.path.join(REPO, "colab", "crackjax.ipynb"), as_version=4)
  install = nb.cells[1].source
  assert f'"{line}"' in install and "requirements.txt" in install
