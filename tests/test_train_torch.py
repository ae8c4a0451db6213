"""scripts/train_torch.py end to end: the notebook's log and files, the JSON summary, the shared seeding rule with
train_jax.py, divergence, and bad flags."""

import json
import sys

import jax
import numpy as np
import pytest
from conftest import NOTEBOOK_LOG, ROOT, assert_loss_log, assert_notebook_pictures

from jax_impl.core import data, model, train
from jax_impl.files.params_io import load_params

# torch float32 on another CPU than the notebook's: float32 rounding along the trajectory (torch float32 against
# torch float64 on the notebook's run: 1.3e-6 relative at worst); 1e-5 leaves 7x.
TORCH_CPU_REL = 1e-5
NET_REPR = ["Net(", "  (linear1): Linear(in_features=1, out_features=20, bias=True)", "  (sigmoid): Sigmoid()",
            "  (linear2): Linear(in_features=20, out_features=1, bias=True)", ")"]

# torch float32 against the JAX port in float32, per-step loss of the notebook's 201-step run. docs/numerics.md: JAX
# float32 is up to 2.9e-5 from a float64 run (optax computes Adam's bias corrections in float32), torch 1.3e-6.
TORCH_VS_JAX_FLOAT32_RTOL = 1e-4
# The t = 0 loss (before any update) from the same weights and data, torch vs JAX, both float32: measured equal to
# the last bit for --seed 5; a different init would differ in the first digits.
FIRST_LOSS_RTOL = 1e-6


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    from conftest import run_script

    out = tmp_path_factory.mktemp("torch_run")
    return run_script("train_torch.py", "--out", out), out


def test_default_run_prints_the_notebooks_log(notebook_run):
    result, _ = notebook_run
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:5] == NET_REPR
    assert_loss_log(lines[5:16], NOTEBOOK_LOG, rel=TORCH_CPU_REL, reference_printed=True)
    assert lines[16].startswith("final loss 0.0029") and " after 201 steps; optimizer setup " in lines[16]
    # printed to 6 decimals: half a unit of that, plus the CPU allowance, around the notebook's final loss 0.00297008
    final = float(lines[16].split()[2])
    assert abs(final - 0.00297008) <= 0.5e-6 + TORCH_CPU_REL * 0.00297008 and "ms on cpu" in lines[16]
    assert len(lines) == 17


def test_default_run_writes_its_files(notebook_run):
    _, out = notebook_run
    assert_notebook_pictures(out)
    params = load_params(out / "params.npz", hidden=20)
    assert params["w1"].dtype == np.float32
    losses = np.array(json.loads((out / "losses.json").read_text()), np.float32)
    assert losses.shape == (201,) and "%.4f" % losses[20] == "0.1541"
    # The same run in the JAX port, in this process: the torch twin's curve and final weights agree with it.
    x, y = data.notebook_data()
    trajectory = train.fit(data.notebook_init_params(), x, y, 0.2)
    np.testing.assert_allclose(losses, trajectory.losses, rtol=TORCH_VS_JAX_FLOAT32_RTOL)
    final_loss = float(model.mse_loss({k: np.asarray(v) for k, v in params.items()}, x, y))
    assert final_loss == pytest.approx(float(losses[-1]), rel=0.05)  # one Adam step after the last logged loss


def test_json_summary_imports_neither_jax_nor_matplotlib(tmp_path, script):
    """The notebook's run with --no-plots needs neither jax nor matplotlib: PYTHONPROFILEIMPORTTIME lists every
    module the process imported, on stderr."""
    result = script("train_torch.py", "--json", "--no-plots", "--steps", 21, "--out", tmp_path,
                    env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["framework"] == "torch" and summary["dtype"] == "float32" and summary["compile_s"] == 0.0
    assert summary["steps"] == 21 and len(summary["losses"]) == 21 and summary["run_s"] > 0 < summary["setup_s"]
    assert summary["final_loss"] == summary["losses"][-1] and "%.4f" % summary["losses"][20] == "0.1541"
    assert summary["files"] == ["params.npz", "model.safetensors", "losses.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.json", "model.safetensors", "params.npz"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert {"torch", "jax_impl.app.outputs", "torch_impl.twin.train"} <= imported  # the listing is real
    assert not {m for m in imported if m.split(".")[0] in ("jax", "jaxlib", "matplotlib", "optax")}


def test_seed_and_fresh_data_start_where_train_jax_starts(tmp_path, monkeypatch, capsys):
    """--seed K and --points/--noise draw as train_jax.py does (jax.random keys K and --data-seed), so the loss
    before the first update is the JAX loss at jax's init. Runs the script's main() in this process: a subprocess
    would import both jax and torch again (~10 s on two busy cores)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import train_torch

    monkeypatch.setattr(sys, "argv", ["train_torch.py", "--json", "--no-plots", "--no-cache", "--seed", "3",
                                      "--hidden", "8", "--points", "50", "--noise", "0.1", "--steps", "5",
                                      "--out", str(tmp_path)])
    train_torch.main()
    summary = json.loads(capsys.readouterr().out)
    assert (summary["points"], summary["hidden"], len(summary["losses"])) == (50, 8, 5)
    x, y = data.make_data(jax.random.key(0), 50, 0.1)
    first = float(model.mse_loss(model.init_params(jax.random.key(3), 8), x, y))
    assert summary["losses"][0] == pytest.approx(first, rel=FIRST_LOSS_RTOL)
    assert summary["losses"][-1] < summary["losses"][0]
    assert load_params(tmp_path / "params.npz")["w2"].shape == (8, 1)


def test_divergence_names_the_step_and_keeps_earlier_outputs(tmp_path, script):
    """SGD at lr 100 turns non-finite at step 8, in torch as in JAX: exit 3, no picture, earlier files untouched."""
    (tmp_path / "losses.json").write_text("[1.0]")
    result = script("train_torch.py", "--optimizer", "sgd", "--lr", 100, "--steps", 30, "--out", tmp_path)
    assert result.returncode == 3
    assert "non-finite at step 8 (sgd, lr 100.0)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.json"]
    assert (tmp_path / "losses.json").read_text() == "[1.0]"


@pytest.mark.parametrize("flags,message", [
    (["--steps", "0"], "--steps: 0 must be positive"),
    (["--steps", "-1"], "--steps: -1 must be positive"),
    (["--hidden", "0"], "--hidden: 0 must be positive"),
    (["--lr", "nan"], "must be a finite number above 0"),
    (["--lr", "0"], "must be a finite number above 0"),
    (["--optimizer", "foo"], "unknown optimizer 'foo'"),
])
def test_bad_flags_get_one_line_and_exit_2(tmp_path, script, flags, message):
    result = script("train_torch.py", *flags, "--out", tmp_path / "o")
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()
