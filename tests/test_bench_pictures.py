"""scripts/bench_pictures.py's arithmetic (torch_impl/bench/pictures.py) on given times, and its bad input; the
timing itself is not run here (no timed tests)."""

import json
import subprocess
import sys

import pytest

from torch_impl.bench import pictures, timing


def test_summary_of_paired_rounds():
    rounds = [{"jax, no pictures": 1.0, "jax, pictures": 1.5, "torch, pictures": 3.0},
              {"jax, no pictures": 2.0, "jax, pictures": 2.4, "torch, pictures": 4.0},
              {"jax, no pictures": 1.0, "jax, pictures": 1.3, "torch, pictures": 2.6}]
    summary = pictures.summarise(rounds)
    assert summary["jax, no pictures"]["median_s"] == 1.0
    assert summary["jax, pictures"]["median_s"] == 1.5
    ratio = summary["jax pictures / jax no pictures"]
    assert ratio["paired_ratio_median"] == pytest.approx(1.3)  # of 1.5, 1.2, 1.3: within each round, not 1.5 / 1.0
    assert ratio["paired_rounds"] == 3 and ratio["paired_ratio_p25"] == pytest.approx(1.2)
    assert summary["jax pictures / torch pictures"]["paired_ratio_median"] == pytest.approx(0.5)


def test_a_root_without_the_scripts_is_one_line(tmp_path, script):
    result = script("bench_pictures.py", "--root", tmp_path, "--rounds", 1)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"bench_pictures.py: error: --root {tmp_path.resolve()}: no scripts/train_jax.py there"]


@pytest.mark.parametrize("where, line", [
    ("folder", "{path}: is a folder"), ("afile/r.json", "{path}: {path.parent} is not a folder"),
    ("", ": an empty path"),
])
def test_a_json_file_that_cannot_be_written_is_refused_before_the_rounds(tmp_path, script, where, line):
    """--json was written only after every round (minutes): a folder, a path under a file or an empty path failed
    then, or (empty) wrote nothing. Now refused before the first round."""
    path = "" if not where else tmp_path / where
    if where == "folder":
        path.mkdir()
    (tmp_path / "afile").write_text("x")
    result = script("bench_pictures.py", "--json", path, "--rounds", 1)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"bench_pictures.py: error: --json{' ' if where else ''}{line.format(path=path)}\n"


def test_timed_scripts_keep_their_bytecode(tmp_path, monkeypatch):
    """timing.script_env: a second run of a script finds its modules compiled, whatever the shell says (a sandbox's
    PYTHONDONTWRITEBYTECODE=1 made every timed run compile the project's modules again)."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    (tmp_path / "probe_module.py").write_text("VALUE = 7\n")
    env = timing.script_env(PYTHONPATH=str(tmp_path))
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["PYTHONPATH"] == str(tmp_path)
    done = subprocess.run([sys.executable, "-c", "import probe_module; print(probe_module.VALUE)"], env=env,
                          capture_output=True, text=True)
    assert done.stdout == "7\n"
    assert [p.name for p in (tmp_path / "__pycache__").iterdir()] == [
        f"probe_module.{sys.implementation.cache_tag}.pyc"]


def test_a_json_file_in_a_missing_folder_is_written_there(tmp_path, monkeypatch, capsys):
    """--json in a folder not made yet was refused ("... does not exist"), unlike bench.py's --json: the folder is
    made (out_dir.check_file) and the results written there (the rounds stood in for: no timed tests)."""
    from conftest import import_script

    rounds = [{"jax, no pictures": 1.0, "jax, pictures": 1.5, "torch, pictures": 3.0}]
    monkeypatch.setattr(pictures, "measure_rounds", lambda root, count: rounds)
    path = tmp_path / "new" / "r.json"
    import_script("bench_pictures").main(["--json", str(path), "--rounds", "1"])
    assert json.loads(path.read_text())["rounds"] == rounds
