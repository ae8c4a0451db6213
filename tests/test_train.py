"""train.fit: jax.value_and_grad of model.mse_loss in nested scans. Equal to a step-by-step run, snapshots in the
notebook's places, compiled once, one kernel at the notebook's size, usable inside a caller's jit."""

import jax
import numpy as np
import pytest
from conftest import NOTEBOOK_LOG, assert_loss_log, assert_trees_close, compilations

from jax_impl.core import data, model, train
from jax_impl.core.model import forward, mse_loss
from jax_impl.core.steps import first_nonfinite_step, snapshot_steps
from jax_impl.core.torch_optim import make_optimizer

# fit against fit_stepwise, float32: the same step function, compiled twice (fit's scan at the notebook's size as one
# kernel, the jitted step kernel by kernel), so float32 rounds in another order, and 60 Adam/SGD steps carry it on.
# Measured (jax 0.10.2, Xeon): Adam at the notebook's size, losses 6.6e-7 relative, parameters 2.2e-6 absolute; SGD
# there and Adam at 2000 x 20 came out equal. Bounded at 15x the worst measured, the margin for the other CPU's kernels.
STEPWISE_LOSS_F32 = 1e-5
STEPWISE_PARAM_F32 = 1e-5
SNAPSHOT_F32 = 1e-5  # snapshots against the stepwise forward: predictions of size ~1, the same rounding as above


@pytest.fixture(scope="module")
def notebook():
    x, y = data.notebook_data()
    return data.notebook_init_params(), x, y


@pytest.mark.parametrize("optimizer,points", [("adam", 100), ("sgd", 100), ("adam", 2000)])  # 2000 x 20: no options
def test_scan_equals_stepwise(notebook, optimizer, points):
    params, x, y = notebook
    if points != 100:
        x, y = data.make_data(jax.random.key(0), points, 0.2)
        params = model.init_params(jax.random.key(1), 20)
    trajectory = train.fit(params, x, y, 0.2, optimizer=optimizer, steps=60, every=20)
    stepwise_params, stepwise_losses = train.fit_stepwise(params, x, y, 0.2, optimizer=optimizer, steps=60)
    np.testing.assert_allclose(trajectory.losses, stepwise_losses, rtol=STEPWISE_LOSS_F32, atol=0)
    assert_trees_close(trajectory.params, stepwise_params, rtol=STEPWISE_PARAM_F32, atol=STEPWISE_PARAM_F32)


@pytest.mark.parametrize("steps,every", [(45, 20), (7, 1), (40, 20)])  # a remainder; no inner scan; none
def test_snapshots_are_the_predictions_before_each_logged_update(notebook, steps, every):
    params, x, y = notebook
    trajectory = train.fit(params, x, y, 0.2, steps=steps, every=every)
    logged = snapshot_steps(steps, every)
    assert trajectory.snapshots.shape == (len(logged), 100, 1) and trajectory.losses.shape == (steps,)
    # Step by step with the same optimiser: the snapshot is the prediction of the params after t updates.
    tx = make_optimizer("adam", 0.2)
    step, state = jax.jit(train.make_step(tx)), tx.init(params)
    for t in range(steps):
        if t in logged:
            np.testing.assert_allclose(trajectory.snapshots[logged.index(t)], forward(params, x), rtol=0,
                                       atol=SNAPSHOT_F32)
        np.testing.assert_allclose(trajectory.losses[t], mse_loss(params, x, y), rtol=STEPWISE_LOSS_F32)
        params, state, _, _ = step(params, state, x, y)


def test_notebook_run_reaches_the_fit(notebook):
    params, x, y = notebook
    losses = train.fit(params, x, y, 0.2).losses
    assert losses.shape == (201,)
    # The notebook's printed t = 0, Loss=0.6136 ... t = 200, Loss=0.0030, in units of the printed digit (conftest);
    # rel 1e-4: JAX float32 against torch float32, measured up to 2.8e-5.
    log = [f"t = {t}, Loss={float(losses[t]):.4f}" for t in NOTEBOOK_LOG]
    assert_loss_log(log, NOTEBOOK_LOG, rel=1e-4, reference_printed=True)


def test_second_call_does_not_recompile(notebook):
    params, x, y = notebook
    train.fit(params, x, y, 0.2, steps=30, every=10).losses.block_until_ready()
    # New values of the learning rate, the data and the weights (same shapes and dtypes): no new compilation.
    other, y1, x1 = jax.tree.map(lambda p: p * 0.5, params), y + 1.0, x * 0.9  # (made outside: they compile too)
    with compilations() as seen:
        train.fit(other, x, y1, 0.05, steps=30, every=10).losses.block_until_ready()
        train.fit(params, x1, y, 0.3, steps=30, every=10).losses.block_until_ready()
    assert seen == []
    with compilations() as seen:  # the guard sees a compilation when there is one: a new step count
        train.fit(params, x, y, 0.2, steps=31, every=10).losses.block_until_ready()
    assert seen


@pytest.mark.parametrize("lr,step", [(10.0, 14), (100.0, 8), (300.0, 6)])
def test_sgd_diverges_where_numerics_md_says(notebook, lr, step):
    """docs/numerics.md: SGD at lr 10 gives a non-finite loss at step 14, at 100 at step 8; Adam at a huge lr stays
    finite."""
    params, x, y = notebook
    assert first_nonfinite_step(train.fit(params, x, y, lr, optimizer="sgd", steps=30).losses) == step
    assert first_nonfinite_step(train.fit(params, x, y, lr * 1e4, steps=30).losses) is None


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        make_optimizer("lbfgs", 0.1)


def test_fit_is_one_kernel_at_the_notebook_size_only(notebook):
    """With the small-loop flag (conftest sets it, as the scripts do), fit's whole scan at the notebook's size
    compiles to one kernel (XLA marks the hoisted loop xla_cpu_small_call); at 1000 x 20 it stays kernel by kernel."""
    params, x, y = notebook
    small = train.jitted_fit(params, x).lower(params, x, y, 0.2).compile().as_text()
    assert "xla_cpu_small_call" in small
    x, y = data.make_data(jax.random.key(0), 1000, 0.2)
    large = train.jitted_fit(params, x).lower(params, x, y, 0.2).compile().as_text()
    assert "xla_cpu_small_call" not in large and "while(" in large


def test_trajectory_inside_an_outer_jit(notebook):
    """train.trajectory is fit's plain entry: inside a caller's jit (arguments closed over, so not tracers) it is part
    of that program. The same run as fit, compiled differently: float32 rounding apart."""
    params, x, y = notebook
    inside = jax.jit(lambda: train.trajectory(params, x, y, 0.2, steps=40).losses)()
    np.testing.assert_allclose(inside, train.fit(params, x, y, 0.2, steps=40).losses, rtol=STEPWISE_LOSS_F32)
