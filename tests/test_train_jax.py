"""scripts/train_jax.py end to end: the notebook's log, its files, the JSON summary, and every bad input."""

import json
import os
import signal
import time

import numpy as np
import pytest
from conftest import NOTEBOOK_LOG, assert_loss_log, assert_notebook_pictures, start_script

from jax_impl.files import weights
from jax_impl.files.params_io import load_params
from torch_impl.twin.notebook import notebook_draws
from torch_impl.twin.train import fit as torch_fit

NOTEBOOK_STEPS = list(range(0, 201, 20))
# JAX float32 against torch float32 along the notebook's run: up to 2.8e-5 relative (optax's float32 bias corrections,
# torch_impl/checks/compare.py); 1e-4 leaves 3.5x.
JAX_TORCH_REL = 1e-4


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    from conftest import run_script

    out = tmp_path_factory.mktemp("run")
    return run_script("train_jax.py", "--out", out, "--no-cache"), out


def test_default_run_prints_the_notebooks_log(notebook_run):
    result, _ = notebook_run
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Net(" and "(linear1): Linear(in_features=1, out_features=20, bias=True)" in lines[1]
    # The torch twin's own run of the notebook, formatted the notebook's way, is the oracle for the log lines.
    x, y, net, _ = notebook_draws()
    torch_losses, _ = torch_fit(net, x, y)
    reference = {t: float(torch_losses[t]) for t in NOTEBOOK_STEPS}
    assert_loss_log(lines, reference, rel=JAX_TORCH_REL, reference_printed=False)
    assert_loss_log(lines, NOTEBOOK_LOG, rel=JAX_TORCH_REL, reference_printed=True)
    assert lines[-1].startswith("final loss 0.0029") and "compile" in lines[-1]


def test_default_run_writes_its_files(notebook_run):
    _, out = notebook_run
    assert_notebook_pictures(out)
    params = load_params(out / "params.npz")
    assert params["w1"].shape == (1, 20) and params["w1"].dtype == np.float32
    # the same weights for torch: Net(1, 20, 1)'s state_dict (tests/test_weights.py loads it into the Net)
    for_torch, _ = weights.read(out / "model.safetensors")
    for name in params:
        np.testing.assert_array_equal(for_torch[name], params[name], strict=True)
    losses = json.loads((out / "losses.json").read_text())
    assert len(losses) == 201 and losses[0] == pytest.approx(0.6136, abs=5e-5)
    assert losses[-1] < 0.0031


def test_json_summary_and_fresh_data(tmp_path, script):
    result = script("train_jax.py", "--json", "--no-plots", "--points", 300, "--noise", 0.1, "--seed", 2,
                    "--hidden", 8, "--steps", 50, "--log-every", 10, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["points"] == 300 and summary["hidden"] == 8 and summary["steps"] == 50
    assert len(summary["losses"]) == 50 and summary["final_loss"] == summary["losses"][-1]
    assert summary["losses"][-1] < summary["losses"][0]
    assert summary["compile_s"] > 0 and summary["run_s"] > 0 and summary["dtype"] == "float32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.json", "model.safetensors", "params.npz"]
    assert summary["files"] == ["params.npz", "model.safetensors", "losses.json"]
    assert load_params(tmp_path / "params.npz")["w2"].shape == (8, 1)


def test_x64_run_is_float64(tmp_path, script):
    result = script("train_jax.py", "--x64", "--json", "--no-plots", "--steps", 21, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dtype"] == "float64"
    assert summary["losses"][0] == pytest.approx(0.6136, abs=5e-5)
    assert load_params(tmp_path / "params.npz")["b1"].dtype == np.float64


@pytest.mark.parametrize("flags,message", [
    (["--steps", "0"], "--steps: 0 must be positive"),
    (["--steps", "-1"], "--steps: -1 must be positive"),
    (["--steps", "ten"], "is not a whole number"),
    (["--hidden", "0"], "--hidden: 0 must be positive"),
    (["--points", "0"], "--points: 0 must be positive"),
    (["--lr", "nan"], "must be a finite number above 0"),
    (["--lr", "inf"], "must be a finite number above 0"),
    (["--lr", "0"], "must be a finite number above 0"),
    (["--lr", "-0.1"], "must be a finite number above 0"),
    (["--noise", "-1"], "--noise: -1 must be 0 or a finite number above 0"),
    (["--optimizer", "foo"], "unknown optimizer 'foo'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_get_one_line_and_exit_2(tmp_path, script, flags, message):
    result = script("train_jax.py", *flags, "--out", tmp_path / "o")
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


def test_unwritable_output_folder_is_refused_before_any_work(tmp_path, script):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = script("train_jax.py", "--out", blocker / "sub")
    assert result.returncode == 2 and "cannot write to output folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Net(" not in result.stdout


def test_divergence_names_the_step_and_keeps_earlier_outputs(tmp_path, script):
    """SGD at lr 100 turns non-finite at step 8: exit 3, no plot, and the earlier run's files stay untouched."""
    (tmp_path / "losses.json").write_text("[1.0]")
    result = script("train_jax.py", "--optimizer", "sgd", "--lr", 100, "--steps", 30, "--out", tmp_path)
    assert result.returncode == 3
    assert "non-finite at step 8" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.json"]
    assert (tmp_path / "losses.json").read_text() == "[1.0]"


@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_and_sigterm_are_one_line_and_leave_no_process(tmp_path, signum, code, line):
    """Ctrl-C (SIGINT to the terminal's process group) or SIGTERM while the run trains: exit 130 or 143, one line,
    the earlier run's files untouched, no half-made folder beside them and no process left. 400,000 steps train for
    ~1 s after "Net(" is printed, so the signal lands in training."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "losses.json").write_text("[1.0]")
    run = start_script("train_jax.py", "--steps", "400000", "--log-every", "100000", "--out", out)
    try:
        assert run.stdout.readline().startswith("Net(")
        os.killpg(run.pid, signum)
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == code and stderr.strip() == f"train_jax.py: {line}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["losses.json"]
    assert (out / "losses.json").read_text() == "[1.0]"
    with pytest.raises(ProcessLookupError):  # the process group is gone: the run made no other process
        os.killpg(run.pid, 0)


@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_a_signal_in_a_long_training_ends_it_at_once(tmp_path, signum, code, line):
    """Ctrl-C or SIGTERM 3 s into a run that trains for minutes (400,000 steps on 20,000 points: ~220 s uninterrupted
    on 2 cores) ends it within seconds (measured: 0.06-0.22 s), not at the training's end: the wait for the jitted
    program lets the handler run (core/ready.py) and the process does not wait for XLA's threads to finish it
    (cli._end_now). One line, the code, the earlier run's files untouched, no process left."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "losses.json").write_text("[1.0]")
    run = start_script("train_jax.py", "--steps", "400000", "--points", "20000", "--log-every", "100000",
                       "--no-plots", "--out", out)
    try:
        assert run.stdout.readline().startswith("Net(")  # printed before compiling: the training starts soon after
        time.sleep(3)
        sent = time.monotonic()
        os.killpg(run.pid, signum)
        _, stderr = run.communicate(timeout=60)
        ended = time.monotonic() - sent
    finally:
        run.kill()
    assert run.returncode == code and stderr.strip() == f"train_jax.py: {line}", stderr
    assert ended < 10, f"ended {ended:.1f} s after the signal"  # generous: a slow, shared machine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["losses.json"]
    assert (out / "losses.json").read_text() == "[1.0]"
    with pytest.raises(ProcessLookupError):
        os.killpg(run.pid, 0)


BROKEN_PIPE_LINE = "train_jax.py: stdout was closed before the end (broken pipe); stopped there\n"


def close_stdout_and_wait(run, first_line=None) -> str:
    """Close a started run's stdout, as a reader that stops does (after one line starting with `first_line`, if
    given), and wait for the run's end: its stderr. Killed if the test fails first (Popen's `with` would wait)."""
    try:
        if first_line is not None:
            assert run.stdout.readline().startswith(first_line)
        run.stdout.close()
        stderr = run.stderr.read()
        run.wait(timeout=120)
    finally:
        run.kill()
    return stderr

def test_a_reader_that_stops_early_gets_one_line_and_exit_141(tmp_path):
    """`train_jax.py | head -1`: the log lines (after ~1 s of training) meet a closed pipe. Exit 141 (a shell's code
    for a process that SIGPIPE ended), one line on stderr, no traceback; the run stops before its outputs, so the
    earlier run's files stay as they were."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "losses.json").write_text("[1.0]")
    with start_script("train_jax.py", "--steps", "200000", "--log-every", "50000", "--no-plots", "--out", out) as run:
        stderr = close_stdout_and_wait(run, first_line="Net(")  # as head does after its line
    assert run.returncode == 141 and stderr == BROKEN_PIPE_LINE, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["losses.json"]
    assert (out / "losses.json").read_text() == "[1.0]"


def test_a_closed_pipe_met_at_the_last_flush_is_one_line_too(tmp_path):
    """--json's short summary waits in stdout's buffer (PYTHONUNBUFFERED unset, as in a shell) until the end, where
    the interpreter's flush met the closed pipe: "Exception ignored ... BrokenPipeError" and exit 120. run_main
    flushes it itself: one line and exit 141. The run had finished, so its files are written, whole."""
    with start_script("train_jax.py", "--json", "--steps", "1", "--no-plots", "--out", tmp_path / "out",
                      env={"PYTHONUNBUFFERED": ""}) as run:
        stderr = close_stdout_and_wait(run)  # no reader at all
    assert run.returncode == 141 and stderr == BROKEN_PIPE_LINE, stderr
    assert json.loads((tmp_path / "out" / "losses.json").read_text()) == [pytest.approx(0.6136, abs=5e-5)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["losses.json", "model.safetensors", "params.npz"]


def test_an_output_that_cannot_be_replaced_is_one_line_before_any_work(tmp_path, script):
    """A folder where snapshots.png goes: one line naming it and exit 2, before training; nothing is written."""
    (tmp_path / "snapshots.png").mkdir()
    result = script("train_jax.py", "--out", tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "snapshots.png is not a file" in result.stderr and "t = " not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshots.png"]


@pytest.mark.parametrize("flags", [["--seed", "3"], ["--points", "40", "--data-seed", "5", "--seed", "2"],
                                   ["--seed", str(2**32 - 1), "--data-seed", str(2**32 - 1)]])  # the largest seeds
def test_a_seed_is_the_same_experiment_in_float64(tmp_path, script, flags):
    """--seed K draws in float32 then casts: the --x64 run starts from the same weights and data, so its first loss is
    the float32 run's up to float32 rounding (~1e-7 relative; jax.random's float64 draws gave 0.35526 against 1.08574
    for --seed 3). The saved weights after 1 step agree to the step's float32 rounding."""
    runs = {}
    for mode in ("float32", "float64"):
        out = tmp_path / mode
        result = script("train_jax.py", *flags, "--steps", 1, "--json", "--no-plots", "--out", out,
                        *(["--x64"] if mode == "float64" else []))
        assert result.returncode == 0, result.stderr
        runs[mode] = json.loads(result.stdout)["losses"][0]
    # float32 loss of 100 squares: rounding ~ sqrt(N) u relative, 1e-6 allows 17x
    assert runs["float64"] == pytest.approx(runs["float32"], rel=1e-6)
