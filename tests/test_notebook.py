"""docs/notebook_jax.ipynb run in a fresh kernel (nbclient + ipykernel): it prints the notebook's eleven losses and
the gradient check's agreement, imports no torch, and prints what the stored notebook shows (so that the stored copy
never goes stale: scripts/run_notebook.py stores a fresh run)."""

import copy

import nbformat
import pytest
from conftest import import_script

run_notebook = import_script("run_notebook")

# The notebook's plot labels, t = 0, 20, ..., 200: what train_jax.py and the torch twin print for its run.
NOTEBOOK_LOSSES = ["t = 0, Loss=0.6136", "t = 20, Loss=0.1541", "t = 40, Loss=0.0334", "t = 60, Loss=0.0099",
                   "t = 80, Loss=0.0050", "t = 100, Loss=0.0039", "t = 120, Loss=0.0034", "t = 140, Loss=0.0032",
                   "t = 160, Loss=0.0031", "t = 180, Loss=0.0030", "t = 200, Loss=0.0030"]
AGREEMENT = ["jax.grad and the hand formulas agree in float32 (within 1e-05): True",
             "jax.grad and the hand formulas agree in float64 (within 1e-12): True"]
# A last cell, run after the notebook's own, that lists the torch modules its kernel has imported.
TORCH_PROBE = "import sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"


@pytest.fixture(scope="module")
def stored():
    return run_notebook.read()


@pytest.fixture(scope="module")
def fresh(stored):
    notebook = copy.deepcopy(stored)
    notebook.cells.append(nbformat.v4.new_code_cell(TORCH_PROBE))
    return run_notebook.text_outputs(run_notebook.execute(notebook))


def printed_lines(cells) -> list[str]:
    return [line for texts in cells for text in texts for line in text.splitlines()]


def test_prints_the_notebooks_eleven_losses(fresh):
    assert [line for line in printed_lines(fresh) if line.startswith("t = ")] == NOTEBOOK_LOSSES


def test_prints_that_jax_grad_and_the_hand_formulas_agree(fresh):
    lines = printed_lines(fresh)
    for line in AGREEMENT:
        assert line in lines


def test_imports_no_torch(fresh):
    assert fresh[-1] == ["[]\n"]


def test_stored_outputs_are_what_a_fresh_run_prints(stored, fresh):
    assert run_notebook.first_difference(run_notebook.text_outputs(stored), fresh[:-1]) is None, \
        "the stored notebook is stale: run python scripts/run_notebook.py"


def test_stored_notebook_shows_its_pictures(stored):
    """Eleven snapshots in the training cell and the data's scatter plot, stored as PNGs."""
    images = [[output for output in cell.outputs if "image/png" in output.get("data", {})]
              for cell in stored.cells if cell.cell_type == "code"]
    assert [len(cell) for cell in images] == [0, 1, 0, 11, 0]
