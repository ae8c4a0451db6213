"""docs/notebook_jax.ipynb run in a fresh kernel (nbclient + ipykernel): it prints the notebook's eleven losses and
the gradient check's agreement, imports no torch, and prints what the stored notebook shows (so that the stored copy
never goes stale: scripts/run_notebook.py stores a fresh run). The kernel warns of nothing, and a missing or foreign
python3 kernel is one line and exit 2."""

import copy
import json
import os
import sys
import tempfile

import nbformat
import pytest
from conftest import import_script, run_script

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
def fresh_run(stored):
    """(text outputs, the kernel's stderr) of one run of the notebook and TORCH_PROBE. The kernel writes to the
    stderr it inherits, file descriptor 2, pointed at a file here for the run."""
    notebook = copy.deepcopy(stored)
    notebook.cells.append(nbformat.v4.new_code_cell(TORCH_PROBE))
    with tempfile.TemporaryFile() as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            run_notebook.execute(notebook)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        return run_notebook.text_outputs(notebook), err.read().decode()


@pytest.fixture(scope="module")
def fresh(fresh_run):
    return fresh_run[0]


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


def test_the_kernel_warns_of_nothing(fresh_run):
    """No start-up warnings from ipykernel (plain TCP), debugpy (frozen modules) or the libraries."""
    assert fresh_run[1] == ""


def kernel_spec(folder, python):
    """A python3 kernelspec in folder/kernels (a JUPYTER_PATH entry, searched first) that runs `python`."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    return spec


@pytest.mark.parametrize("python", ["/usr/bin/python3", "/nonexistent/python3"])
def test_a_foreign_kernel_is_one_line_and_exit_2(tmp_path, python):
    """A python3 kernel of another environment (the system's, without jax) or of a removed one."""
    if python == "/usr/bin/python3" and (not os.path.exists(python) or sys.prefix == "/usr"):
        pytest.skip("no system Python other than this one")
    spec = kernel_spec(tmp_path, python)
    result = run_script("run_notebook.py", "--check", env={"JUPYTER_PATH": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == (f"run_notebook.py: error: the Jupyter kernel python3 ({spec}) runs {python}, not this "
                             f"Python ({sys.executable}): set argv[0] in its kernel.json to {sys.executable}, or "
                             "remove that folder\n")


def test_a_kernel_that_names_this_python_is_accepted(tmp_path, monkeypatch):
    """As `python -m ipykernel install` writes it: argv[0] is sys.executable, a path."""
    kernel_spec(tmp_path, sys.executable)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    assert run_notebook.kernel_problem() is None


def test_a_missing_kernel_is_one_line_and_exit_2(monkeypatch, capsys):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def no_such_kernel(self, name):
        raise NoSuchKernel(name)

    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", no_such_kernel)
    monkeypatch.setattr(sys, "argv", ["run_notebook.py", "--check"])
    with pytest.raises(SystemExit) as exit_:
        run_notebook.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (f"run_notebook.py: error: this Python ({sys.executable}) has no Jupyter kernel "
                                       "python3 (ipykernel): install the test extra, pip install -e '.[test]'\n")
