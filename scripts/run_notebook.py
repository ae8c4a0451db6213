"""Run docs/notebook_jax.ipynb top to bottom in a fresh kernel, and store it with its outputs.

    python scripts/run_notebook.py            # re-run the notebook and store it in place, outputs and all
    python scripts/run_notebook.py --check    # run a copy; exit 1 if what it prints differs from what is stored

Needs the test extra (nbclient, ipykernel). The kernel is Jupyter's "python3", which must run this Python (exit 2,
with the fix, if it is missing or runs another one); it starts in the repository root. No timings are recorded, so
that a re-run prints the stored text outputs again (tests/test_notebook.py runs the check; the images' bytes vary
with the libraries).
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from jax_impl.app import cli  # noqa: E402
from jax_impl.files.params_io import atomic_path  # noqa: E402

NOTEBOOK = ROOT / "docs" / "notebook_jax.ipynb"
CELL_TIMEOUT_S = 300  # a cell takes seconds; a stuck kernel fails instead of hanging a test run
KERNEL = "python3"  # the notebook's kernelspec, as Jupyter would run it


def read(path=NOTEBOOK):
    import nbformat

    return nbformat.read(path, as_version=4)


def kernel_problem() -> str | None:
    """What keeps the python3 kernel from running this Python, which has the project's packages, and the fix (one
    line); None when nothing does."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except (ImportError, KeyError):  # no test extra; no such kernel (jupyter_client's NoSuchKernel is a KeyError)
        spec = None
    if spec is None or importlib.util.find_spec("ipykernel") is None:
        return (f"this Python ({sys.executable}) has no Jupyter kernel {KERNEL} (ipykernel): install the test "
                "extra, pip install -e '.[test]'")
    python = spec.argv[0]
    # jupyter_client starts these names as this Python (KernelManager.format_kernel_cmd); any other interpreter is
    # asked which environment it runs in.
    if python in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return None
    try:
        prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                                timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        prefix = ""
    if prefix and os.path.realpath(prefix) == os.path.realpath(sys.prefix):
        return None
    return (f"the Jupyter kernel {KERNEL} ({spec.resource_dir}) runs {python}, not this Python ({sys.executable}): "
            f"set argv[0] in its kernel.json to {sys.executable}, or remove that folder")


def execute(notebook):
    """`notebook` (an nbformat node, changed in place and returned) run top to bottom in a fresh python3 kernel. A
    cell that raises raises nbclient's CellExecutionError here, with the cell's traceback."""
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    # ipykernel >= 7.3 warns at every start that plain TCP can be overheard; jupyter_client's CurveZMQ keys (for
    # kernels that declare them) encrypt it instead.
    encryption = {"transport_encryption": "auto"} if hasattr(KernelManager, "transport_encryption") else {}
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL, record_timing=False,
                   resources={"metadata": {"path": str(ROOT)}}).execute(**encryption)
    return notebook


def text_outputs(notebook) -> list[list[str]]:
    """Per code cell, in order: what it printed on stdout (consecutive pieces joined) and the text form of what it
    displayed. Left out: stderr (warnings vary by machine) and image bytes (they vary with the libraries' versions)."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts, printing = [], False
        for output in cell.outputs:
            if output.output_type == "stream":
                if output.name == "stdout":
                    if printing:
                        texts[-1] += output.text
                    else:
                        texts.append(output.text)
                    printing = True
                continue
            printing = False
            if output.output_type == "error":
                texts.append(f"{output.ename}: {output.evalue}")
            else:
                texts.append(output.get("data", {}).get("text/plain", ""))
        cells.append(texts)
    return cells


def first_difference(stored, fresh):
    """(cell number, stored text, fresh text) of the first code cell whose text outputs differ, or None."""
    for number, (old, new) in enumerate(zip(stored, fresh), 1):
        if old != new:
            return number, old, new
    if len(stored) != len(fresh):
        return min(len(stored), len(fresh)) + 1, stored[len(fresh):], fresh[len(stored):]
    return None


def main():
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true", help="do not store; exit 1 if the printed outputs differ")
    args = p.parse_args()
    problem = kernel_problem()
    if problem:
        cli.fail(problem)
    import nbformat

    stored = read()
    fresh = execute(read())
    difference = first_difference(text_outputs(stored), text_outputs(fresh))
    if args.check:
        if difference:
            number, old, new = difference
            print(f"{NOTEBOOK.name}: code cell {number} prints other text than is stored (re-run "
                  f"scripts/run_notebook.py)\nstored: {old!r}\nfresh:  {new!r}", file=sys.stderr)
            raise SystemExit(cli.MISMATCH)
        print(f"{NOTEBOOK.name}: a fresh run prints what is stored")
        return
    with atomic_path(NOTEBOOK) as tmp:
        nbformat.write(fresh, tmp)
    print(f"stored {NOTEBOOK.relative_to(ROOT)} with its outputs"
          + ("" if difference is None else f" (code cell {difference[0]} prints other text than before)"))


if __name__ == "__main__":
    cli.run_main(main)
