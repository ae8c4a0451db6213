"""The fused scan run: equal to a step-by-step run, compiled once, snapshots in the notebook's places."""

import jax
import numpy as np
import pytest
from conftest import NOTEBOOK_LOG, assert_loss_log

from jax_impl import data, train
from jax_impl.model import forward, mse_loss

STEPWISE_LOSS_F32 = 1e-5  # fit against fit_stepwise, float32 (measured 1.9e-6, see test_scan_equals_stepwise)


@pytest.fixture(scope="module")
def notebook():
    x, y = data.notebook_data()
    return data.notebook_init_params(), x, y


@pytest.mark.parametrize("optimizer,lr", [("adam", 0.2), ("sgd", 0.2)])
def test_scan_equals_stepwise(notebook, optimizer, lr):
    params, x, y = notebook
    trajectory = train.fit(params, x, y, lr, optimizer=optimizer, steps=60, every=20)
    stepwise_params, stepwise_losses = train.fit_stepwise(params, x, y, lr, optimizer=optimizer, steps=60)
    # The same step function, compiled twice: fit's scan at this size as one kernel (xla_cpu), the jitted step kernel
    # by kernel, so float32 rounds in another order. Measured: losses 9.6e-7 (Adam) and 1.9e-6 (SGD, whose loss passes
    # 70 at step 5 and comes back) relative; parameters within 6e-6.
    np.testing.assert_allclose(trajectory.losses, stepwise_losses, rtol=STEPWISE_LOSS_F32, atol=0)
    for name in params:
        np.testing.assert_allclose(trajectory.params[name], stepwise_params[name], rtol=1e-5, atol=1e-6)


def test_snapshots_are_the_predictions_before_each_logged_update(notebook):
    params, x, y = notebook
    steps, every = 45, 20
    trajectory = train.fit(params, x, y, 0.2, steps=steps, every=every)
    assert train.snapshot_steps(steps, every) == [0, 20, 40]
    assert trajectory.snapshots.shape == (3, 100, 1) and trajectory.losses.shape == (steps,)
    # Step by step with the same optimiser: the snapshot is the prediction of the params after t updates.
    tx = train.make_optimizer("adam", 0.2)
    step, state = jax.jit(train.make_step(tx)), tx.init(params)
    for t in range(41):
        if t in (0, 20, 40):
            slot = t // every
            np.testing.assert_allclose(trajectory.snapshots[slot], forward(params, x), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(trajectory.losses[t], mse_loss(params, x, y), rtol=1e-5)
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
    program = train.jitted_fit(params, x)
    size = program._cache_size()
    # New values of the learning rate, the data and the weights (same shapes and dtypes): no new compilation.
    other = jax.tree.map(lambda p: p * 0.5, params)
    train.fit(other, x, y + 1.0, 0.05, steps=30, every=10).losses.block_until_ready()
    train.fit(params, x * 0.9, y, 0.3, steps=30, every=10).losses.block_until_ready()
    assert train.jitted_fit(other, x) is program and program._cache_size() == size >= 1


def test_sgd_at_lr_100_diverges_at_step_8(notebook):
    """NUMERICS.md: SGD at lr=100 gives a non-finite loss at step 8; Adam at a huge lr stays finite."""
    params, x, y = notebook
    losses = train.fit(params, x, y, 100.0, optimizer="sgd", steps=30).losses
    assert train.first_nonfinite_step(losses) == 8
    assert train.first_nonfinite_step(train.fit(params, x, y, 1e6, steps=30).losses) is None


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        train.make_optimizer("rmsprop", 0.1)
