"""Ensembles and sweeps: every model of a sweep equals its single run, divergence is marked per model, the torch twin
equals separate torch runs, and every bad input to scripts/sweep.py is one line and exit 2."""

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import compilations, import_script

from jax_impl.core import data, ensemble, model, train, xla_cpu
from jax_impl.core.steps import first_nonfinite_step, first_nonfinite_steps
from torch_impl.twin import convert
from torch_impl.twin import ensemble as torch_ensemble
from torch_impl.twin import model as torch_model
from torch_impl.twin import train as torch_train

SEEDS = list(range(8))
LRS = [0.01, 0.05, 0.2, 30.0]  # around the notebook's 0.2, and one where SGD overflows (docs/numerics.md: lr 10)
COMPARED = 0.2  # values are compared up to this rate; above it Adam is chaotic and only divergence is compared
# fit_ensemble against train.fit, float32, seeds 0-7 x lr 0.01, 0.05, 0.2 x adam/sgd, measured (jax 0.10.2): on the
# Intel Xeon, before the tree sums went off and the points were padded, loss curves <= 2.0e-6 relative, final
# parameters <= 7.3e-5 relative to max(1, |p|) (Adam, lr 0.2), snapshots <= 5.4e-7 absolute; on the AVX2 EPYC with
# both, 1.8e-6, 4.9e-5 and 6.0e-7. Both take jax.value_and_grad of the mean squared error over model.forward; the
# ensemble's is vmapped over the models, on points padded to whole vectors, so XLA sums over points and hidden units
# in another order, and 201 Adam steps carry that rounding forward. The margin is these seeds': over 256 seeds at
# lr 0.2, two such orders (the ensemble padded and not) part by up to 1.9e-5 (bench/speed-work.json).
LOSS_RTOL = 1e-5
# The same in float64 (sweep.py --x64 against train_jax.py --x64, seed 5, lr 0.2 and seed 7, lr 0.05): <= 1.5e-15.
X64_LOSS_RTOL = 1e-12
PARAM_RTOL = 2e-4
SNAPSHOT_ATOL = 5e-6
# The torch twin against E separate torch runs (float32, lr 0.01-0.2, 30, 60 or 201 steps), measured: losses <= 4.4e-6
# relative and parameters <= 1.5e-5 relative to max(1, |p|) with Adam, 4e-7 and 2.4e-7 with SGD: the batched
# baddbmm and its autograd sum in another order than Linear's addmm, and Adam's normalised step carries it forward.
TORCH_LOSS_RTOL = 2e-5
TORCH_PARAM_RTOL = 5e-5


def relative(a, b, floor=1.0):
    """max |a - b| / max(floor, |b|); floor 0 makes it purely relative."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(floor, np.abs(b))))


@pytest.fixture(scope="module")
def notebook_xy():
    return data.notebook_data()


@pytest.fixture(scope="module", params=["adam", "sgd"])
def sweep(request, notebook_xy):
    """Every seed x lr in one fit_ensemble call, and each model's single train.fit run."""
    x, y = notebook_xy
    optimizer = request.param
    seeds = [s for _ in LRS for s in SEEDS]
    lrs = np.repeat(np.float32(LRS), len(SEEDS))
    trajectory = ensemble.fit_ensemble(ensemble.init_ensemble(seeds), x, y, jnp.asarray(lrs), optimizer=optimizer)
    singles = [train.fit(model.init_params(jax.random.key(seed), 20), x, y, lr, optimizer=optimizer)
               for seed, lr in zip(seeds, lrs)]
    return optimizer, seeds, lrs, trajectory, singles


def test_init_ensemble_is_train_jax_seeding():
    seeds = [0, 3, 2**31 - 1]
    params = ensemble.init_ensemble(seeds)
    for i, seed in enumerate(seeds):
        single = model.init_params(jax.random.key(seed), 20)
        for name in single:
            assert np.array_equal(params[name][i], single[name]), (seed, name)
    with pytest.raises(ValueError, match="non-empty"):
        ensemble.init_ensemble([])


def test_every_model_equals_its_single_run(sweep):
    optimizer, seeds, lrs, trajectory, singles = sweep
    assert trajectory.losses.shape == (len(seeds), 201) and trajectory.snapshots.shape == (len(seeds), 11, 100, 1)
    worst = {"losses": 0.0, "params": 0.0, "snapshots": 0.0}
    for i, single in enumerate(singles):
        if lrs[i] > COMPARED:
            continue
        worst["losses"] = max(worst["losses"], relative(trajectory.losses[i], single.losses, floor=0.0))
        worst["snapshots"] = max(worst["snapshots"], float(np.max(np.abs(trajectory.snapshots[i] - single.snapshots))))
        for name in single.params:
            worst["params"] = max(worst["params"], relative(trajectory.params[name][i], single.params[name]))
    assert worst["losses"] <= LOSS_RTOL, worst
    assert worst["params"] <= PARAM_RTOL, worst
    assert worst["snapshots"] <= SNAPSHOT_ATOL, worst


def test_divergent_models_are_marked_and_the_others_kept(sweep):
    optimizer, seeds, lrs, trajectory, singles = sweep
    diverged = first_nonfinite_steps(trajectory.losses)
    for i, single in enumerate(singles):
        assert first_nonfinite_step(single.losses) == (None if diverged[i] < 0 else diverged[i]), i
    if optimizer == "sgd":
        assert np.all(((diverged >= 5) & (diverged < 30)) == (lrs == 30.0))  # all lr 30 models, and only they
    else:
        assert np.all(diverged == -1)  # Adam's step is bounded by lr: no overflow even at 30
    finite = diverged == -1
    assert np.all(np.isfinite(trajectory.losses[finite])) and np.all(np.isfinite(trajectory.params["w1"][finite]))


def test_learning_rates_are_data_not_a_recompile(sweep, notebook_xy):
    optimizer, seeds, lrs, trajectory, _ = sweep
    x, y = notebook_xy
    params, new_lrs = ensemble.init_ensemble(seeds), jnp.asarray(lrs[::-1].copy())
    with compilations() as seen:
        again = ensemble.fit_ensemble(params, x, y, new_lrs, optimizer=optimizer)
    assert seen == []
    assert not np.array_equal(again.losses[:, -1], trajectory.losses[:, -1])


# masked_mse_loss against model.mse_loss: both sum the same 100 positive squared residuals, in another order (another
# vector length); a float32 sum of N positive terms is within (N - 1) eps of the exact sum whatever the order, so two
# orders differ by at most 2 N eps relative (eps = 2^-24), and the division by N adds no difference.
PADDED_LOSS_RTOL = 2 * 100 * 2.0**-24


def test_padding_rows_count_for_nothing(notebook_xy):
    x, y = notebook_xy
    xp, yp = ensemble.pad_points(x, y)
    assert xp.shape == yp.shape == (ensemble.padded_points(100), 1) == (104, 1)
    (xs, ys), (xps, yps) = (np.asarray(a) for a in (x, y)), (np.asarray(a) for a in (xp, yp))
    assert np.array_equal(xps[:100], xs) and np.all(xps[100:] == xs[-1]) and np.all(yps[100:] == ys[-1])
    params = model.init_params(jax.random.key(0), 20)
    loss, grads = jax.value_and_grad(ensemble.masked_mse_loss)(params, xp, yp, 100)
    # Whatever the padding rows hold, the select hands them a zero cotangent: the same bits, by construction
    garbage = (xp.at[100:].set(-7.0), yp.at[100:].set(1e30))
    loss_g, grads_g = jax.value_and_grad(ensemble.masked_mse_loss)(params, *garbage, 100)
    assert loss_g == loss and all(np.array_equal(grads[k], grads_g[k]) for k in grads)
    assert abs(float(loss) - float(model.mse_loss(params, x, y))) <= PADDED_LOSS_RTOL * float(loss)
    # A padding row counted (the mask one row too long) is caught: its residual is 100's, not zero
    assert float(ensemble.masked_mse_loss(params, *garbage, 101)) > 1e50
    # An overflowed weight saturates its unit: the gradient stays finite, padded or not (a zero x in a padding row
    # would make inf * 0 = nan there, and its zero cotangent times nan a nan gradient)
    overflowed = dict(params, w1=params["w1"].at[0, 3].set(jnp.inf))
    for grads in (jax.grad(model.mse_loss)(overflowed, x, y),
                  jax.grad(ensemble.masked_mse_loss)(overflowed, xp, yp, 100)):
        assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_padded_sizes_and_bad_padded_input():
    assert [ensemble.padded_points(n) for n in (1, 7, 8, 9, 96, 100)] == [8, 8, 8, 16, 96, 104]
    estimate = partial(ensemble.estimate_bytes, 256, hidden=20, steps=201, snapshots=0, itemsize=4)
    assert estimate(points=100) == estimate(points=104) > estimate(points=96)  # the (N, H) arrays are padded
    params, x = model.init_params(jax.random.key(0), 20), jnp.zeros((8, 1))
    with pytest.raises(ValueError, match="points must be in 1..8"):
        ensemble.masked_mse_loss(params, x, x, 9)
    with pytest.raises(ValueError, match="y has shape"):
        ensemble.masked_mse_loss(params, x, jnp.zeros(8), 8)


def test_the_compiled_ensemble_runs_on_padded_rows(notebook_xy):
    x, y = notebook_xy
    params, lrs = ensemble.init_ensemble(range(4)), jnp.full(4, 0.2)
    text = ensemble.jitted_fit().lower(params, x, y, lrs, optimizer="adam", steps=3, every=None).compile().as_text()
    assert "f32[4,20,104]" in text and "f32[4,20,100]" not in text  # the hidden layer (E, H, N'), padded


def test_matches_the_literal_vmap_of_train_fit(notebook_xy):
    x, y = notebook_xy
    params, lrs = ensemble.init_ensemble(range(3)), jnp.array([0.01, 0.05, 0.2])
    fast = ensemble.fit_ensemble(params, x, y, lrs, steps=40, every=None)
    vmapped = ensemble.fit_vmapped(params, x, y, lrs, steps=40, every=20)
    assert fast.snapshots.shape == (3, 0, 100, 1)  # every=None keeps none
    assert relative(fast.losses, vmapped.losses, floor=0.0) <= LOSS_RTOL
    for name in params:
        assert relative(fast.params[name], vmapped.params[name]) <= PARAM_RTOL, name


def test_blocks_of_models_give_the_one_piece_results(sweep, notebook_xy, monkeypatch):
    optimizer, seeds, lrs, whole, _ = sweep  # 32 models: one piece (below BLOCK_FROM)
    x, y = notebook_xy
    monkeypatch.setattr(ensemble, "BLOCK", 6)  # 32 models: five blocks of 6 and one of 2 + 4 copies of the last
    monkeypatch.setattr(ensemble, "BLOCK_FROM", 6)
    # A new function object (partial): jax.jit of fit_program itself finds the one-piece program the fixture traced
    # (jit's trace cache is keyed by the function and the arguments' shapes) and never reads BLOCK again.
    program = partial(ensemble.fit_program)
    with compilations() as seen:
        blocked = jax.jit(program, static_argnames=("optimizer", "steps", "every"),
                          compiler_options=xla_cpu.compiler_options(tree_reductions=False))(
            ensemble.init_ensemble(seeds), x, y, jnp.asarray(lrs), optimizer=optimizer, steps=201, every=20)
    assert seen, "not traced anew: the blocks were never run"
    for name, a, b in [("losses", whole.losses, blocked.losses), ("snapshots", whole.snapshots, blocked.snapshots),
                       *[(k, whole.params[k], blocked.params[k]) for k in whole.params]]:
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), name


def test_memory_estimate_counts_the_activations():
    estimate = partial(ensemble.estimate_bytes, hidden=20, points=100, steps=201, snapshots=0, itemsize=4)
    assert 5 * 100 * 20 * 4 < estimate(1) < 20 * 100 * 20 * 4  # dominated by the (N, H) arrays of the step
    assert estimate(ensemble.BLOCK_FROM) == ensemble.BLOCK_FROM * estimate(1)  # one piece: all models at once
    per_model_kept = (8 * 61 + 2 * 201) * 4
    blocks = estimate(10**6) - estimate(10**6 - 1)  # in blocks: one more model adds only what is kept
    assert blocks == per_model_kept


# --- the torch twin ---------------------------------------------------------------------------------------------------

@pytest.fixture
def one_torch_thread():
    """Small tensors on a shared 2-core machine: torch's second thread only waits (and the result is the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_torch_twin_equals_separate_torch_runs(notebook_xy, optimizer, one_torch_thread):
    x, y = (np.array(a) for a in notebook_xy)
    lrs = [0.2, 0.05, 0.01, 0.1]
    params = jax.tree.map(np.array, ensemble.init_ensemble([0, 1, 2, 3]))
    final, losses = torch_ensemble.fit_ensemble_torch(params, x, y, lrs, optimizer=optimizer, steps=30)
    assert losses.shape == (4, 30)
    for i, lr in enumerate(lrs):
        net = torch_model.Net(1, 20, 1)
        net.load_state_dict(convert.to_state_dict({k: v[i] for k, v in params.items()}))
        single_losses, _ = torch_train.fit(net, torch.from_numpy(x), torch.from_numpy(y), lr=lr, optimizer=optimizer,
                                           steps=30)
        assert relative(losses[i], single_losses, floor=0.0) <= TORCH_LOSS_RTOL, i
        single = convert.from_state_dict(net.state_dict())
        for name in single:
            assert relative(final[name][i], single[name]) <= TORCH_PARAM_RTOL, (i, name)


# --- scripts/sweep.py -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_module():
    return import_script("sweep")


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    from conftest import run_script

    out = tmp_path_factory.mktemp("sweep")
    result = run_script("sweep.py", "--seeds", "0,5", "--lrs", "0.05,0.2,30", "--optimizer", "adam,sgd", "--json",
                        "--curves", "--x64", "--out", out, "--no-cache")
    return result, out


def test_sweep_script_equals_train_jax(sweep_run, script, tmp_path):
    result, out = sweep_run
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "sweep.json").read_text())
    # One CPU device per core (cli.setup_jax's jax_num_cpu_devices), every one used.
    assert summary["devices"] == jax.device_count() and summary["processes"] == 1 and len(summary["models"]) == 12
    assert [g["models"] for g in summary["groups"]] == [6, 6]
    single = script("train_jax.py", "--seed", 5, "--lr", 0.2, "--x64", "--json", "--no-plots", "--no-cache", "--out",
                    tmp_path)
    assert single.returncode == 0, single.stderr
    want = json.loads(single.stdout)
    record = next(r for r in summary["models"] if (r["seed"], r["lr"], r["optimizer"]) == (5, 0.2, "adam"))
    assert set(record) == {"seed", "lr", "hidden", "optimizer", "final_loss", "diverged_at", "losses"}
    assert summary["dtype"] == want["dtype"] == "float64"
    assert relative(record["losses"], want["losses"], floor=0.0) <= X64_LOSS_RTOL
    assert record["final_loss"] == record["losses"][-1] and record["diverged_at"] is None


def test_sweep_script_marks_divergence_and_draws(sweep_run):
    result, out = sweep_run
    summary = json.loads(result.stdout)
    diverged = [r for r in summary["models"] if r["diverged_at"] is not None]
    assert {(r["lr"], r["optimizer"]) for r in diverged} == {(30.0, "sgd")}
    assert all(r["final_loss"] is None and r["losses"][r["diverged_at"]] is None for r in diverged)
    assert "2 of 12 models diverged" in result.stderr and "hidden 20, sgd, lr 30: 2 of 2 seeds" in result.stderr
    rows = {(c["optimizer"], c["lr"]): c for c in summary["configurations"]}
    assert rows[("sgd", 30.0)]["diverged"] == 2 and rows[("sgd", 30.0)]["mean"] is None
    adam = [r["final_loss"] for r in summary["models"] if (r["optimizer"], r["lr"]) == ("adam", 0.05)]
    assert rows[("adam", 0.05)]["mean"] == pytest.approx(np.mean(adam), rel=1e-12)
    assert summary["best"]["optimizer"] == "adam"
    from conftest import read_image

    for name in ("heatmap.png", "curves.png", "best_fit.png"):
        assert read_image(out / name)["grey_levels"] > 10, name
    assert "<- best" in (out / "table.txt").read_text()


BAD_FLAGS = [
    (["--lrs", ""], "not a comma-separated list"),
    (["--lrs", "0.1,,0.2"], "not a comma-separated list"),
    (["--lrs", "0.1,-1"], "must be a finite number above 0"),
    (["--lrs", "0"], "must be a finite number above 0"),
    (["--lrs", "nan"], "must be a finite number above 0"),
    (["--lrs", "fast"], "is not a number"),
    (["--lrs", "0.1,0.1"], "twice"),
    (["--seeds", "0"], "must be positive"),
    (["--seeds", "1,a"], "is not a whole number"),
    (["--seeds=-1,2"], "must not be negative"),
    (["--seeds", "3:3"], "START < STOP"),
    # a side left out: the message quoted cli.seed_list's placeholder ("'x' is not a whole number"), not the value
    (["--seeds", ":"], "argument --seeds: ':': START:STOP needs both numbers (0:8 is seeds 0 ... 7)"),
    (["--seeds", "3:"], "argument --seeds: '3:': START:STOP needs both numbers"),
    (["--seeds", " :8"], "argument --seeds: ' :8': START:STOP needs both numbers"),
    (["--seeds", "0,4294967296"], "above 2**32 - 1"),
    (["--hidden", "0"], "must be positive"),
    (["--optimizer", "adam,lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--optimizer", "adam,Adam"], "argument --optimizer: 'adam,Adam' names an optimizer twice\n"),
    (["--lrs", "0.2,2e-1"], "argument --lrs: '0.2,2e-1' names a learning rate twice\n"),
    (["--num-processes", "2"], "needs --coordinator"),
    # checked when parsed: the address was judged only when the processes met (after --timeout, or bind()'s words)
    (["--num-processes", "2", "--coordinator", "nonsense"], "error: argument --coordinator: 'nonsense' is "
     "not HOST:PORT (process 0's address, e.g. 127.0.0.1:4000)\n"),
    (["--num-processes", "2", "--coordinator", ":4000"], "argument --coordinator: ':4000' is not HOST:PORT"),
    (["--num-processes", "2", "--coordinator", "127.0.0.1:x"], "argument --coordinator: '127.0.0.1:x' is not HOST"),
    (["--num-processes", "2", "--coordinator", "127.0.0.1:99999"], "error: argument --coordinator: "
     "'127.0.0.1:99999': the port must be 1 ... 65535, not 99999\n"),
    (["--num-processes", "2", "--coordinator", "h:0"], "argument --coordinator: 'h:0': the port must be 1 ... 65535"),
    (["--process-id", "1"], "is not below --num-processes 1"),
]


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line_and_exit_2(sweep_module, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        sweep_module.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_a_good_coordinator_is_kept_as_given(sweep_module):
    from jax_impl.app import processes

    args = sweep_module.parse_args(["--num-processes", "2", "--coordinator", "localhost:65535"])
    assert args.coordinator == "localhost:65535" and processes.address("127.0.0.1:1") == ("127.0.0.1", 1)


def test_seed_forms(sweep_module):
    assert list(sweep_module.parse_args(["--seeds", "3"]).seeds) == [0, 1, 2]
    assert list(sweep_module.parse_args(["--seeds", "4:7"]).seeds) == [4, 5, 6]
    assert list(sweep_module.parse_args(["--seeds", "9, 2"]).seeds) == [9, 2]


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "100000000", "--lrs", "0.1,0.2"], "200,000,000 models need about"),
    (["--lrs", "0.1,-2"], "must be a finite number above 0"),
])
def test_script_refuses_before_writing_anything(script, tmp_path, argv, message):
    out = tmp_path / "never"
    result = script("sweep.py", *argv, "--out", out)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not out.exists()
