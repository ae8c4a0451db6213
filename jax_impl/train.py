"""Training: one optimiser step, and the whole run as one compiled `lax.scan`.

Like the notebook, step t computes the prediction and the loss *before* its update, so losses[t] and the
snapshot at t describe the parameters after t updates.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax_impl.cli import OPTIMIZERS
from jax_impl.model import forward


def make_optimizer(name: str, lr) -> optax.GradientTransformation:
    """The notebook's torch.optim.Adam(lr) (optax defaults equal torch's), or its commented-out SGD.

    `lr` may be a traced array: the learning rate is data, so a sweep over it does not recompile.
    """
    if name == "adam":
        return optax.adam(lr)
    if name == "sgd":
        return optax.sgd(lr)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def loss_and_prediction(params, x, y):
    """MSE (torch.nn.MSELoss) and the prediction it was computed from, (N, 1)."""
    prediction = forward(params, x)
    return jnp.mean((prediction - y) ** 2), prediction


def make_step(optimizer: optax.GradientTransformation):
    """One update: returns (params, opt_state, loss, prediction), the last two from before the update."""

    def step(params, opt_state, x, y):
        (loss, prediction), grads = jax.value_and_grad(loss_and_prediction, has_aux=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, prediction

    return step


class Trajectory(NamedTuple):
    params: dict  # the parameters after all `steps` updates
    losses: jax.Array  # (steps,), losses[t] before update t
    snapshots: jax.Array  # (S, N, 1), the prediction before update t for t = 0, every, 2*every, ...


def snapshot_steps(steps: int, every: int) -> list[int]:
    return list(range(0, steps, every))


@partial(jax.jit, static_argnames=("optimizer", "steps", "every"))
def fit(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201, every: int = 20) -> Trajectory:
    """Train for `steps` updates in one compiled `lax.scan`: no host round trip per step.

    x, y: (N, 1). `lr` is traced (a sweep over it reuses one compilation). The snapshot buffer (S, N, 1) is carried
    through the scan and slot t // every is overwritten at t % every == 0, so no (steps, N) buffer is ever built.
    """
    tx = make_optimizer(optimizer, jnp.asarray(lr, x.dtype))
    step = make_step(tx)
    num_snapshots = len(snapshot_steps(steps, every))

    def body(carry, t):
        params, opt_state, snapshots = carry
        params, opt_state, loss, prediction = step(params, opt_state, x, y)
        slot = t // every
        snapshots = snapshots.at[slot].set(jnp.where(t % every == 0, prediction, snapshots[slot]))
        return (params, opt_state, snapshots), loss

    snapshots = jnp.zeros((num_snapshots, *x.shape), x.dtype)
    (params, _, snapshots), losses = jax.lax.scan(body, (params, tx.init(params), snapshots), jnp.arange(steps))
    return Trajectory(params, losses, snapshots)


def fit_stepwise(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201):
    """What a direct port does: a jitted step called from a Python loop. Returns (params, losses (steps,))."""
    tx = make_optimizer(optimizer, lr)
    step = jax.jit(make_step(tx))
    opt_state = tx.init(params)
    losses = []
    for _ in range(steps):
        params, opt_state, loss, _ = step(params, opt_state, x, y)
        losses.append(loss)
    return params, jnp.stack(losses)


def first_nonfinite_step(losses) -> int | None:
    """The first t whose loss is NaN or inf, or None."""
    bad = jnp.flatnonzero(~jnp.isfinite(losses), size=1, fill_value=-1)[0]
    return None if int(bad) < 0 else int(bad)
