"""scripts/mutation_sample.py's --list (no mutant is run here: a real run takes half an hour). mutmut is not a
project dependency: without it these tests are skipped."""

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

pytest.importorskip("mutmut")


def test_list_works_from_outside_the_repository_root(tmp_path):
    """Run from another folder, --list crashed in mutmut's configuration (FileNotFoundError: "Could not figure out
    where the code to mutate is"), which it reads from the current folder: mutmut now reads it at the root."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "mutation_sample.py"), "--count", "3", "--list"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert (done.returncode, done.stderr) == (0, "")
    first, *listed = done.stdout.splitlines()
    assert re.fullmatch(r"3 of \d+ mutants", first) and len(listed) == 3
    for line in listed:
        ident, change = line.split(" | ")
        assert re.fullmatch(r"(jax_impl\.core|jax_impl\.files|torch_impl\.checks)\.\w+\.x\w+__mutmut_\d+", ident)
        assert " -> " in change
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
