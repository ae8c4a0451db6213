"""Training: one optimiser step from model.value_and_grad (jax.value_and_grad of model.mse_loss), and the whole run
as one compiled scan.

Like the notebook, step t computes the prediction and the loss *before* its update, so losses[t] and the
snapshot at t describe the parameters after t updates.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax_impl.core import model, point_chunks, xla_cpu
from jax_impl.core.torch_optim import make_optimizer


def make_step(optimizer: optax.GradientTransformation, point_chunk: int | None = None):
    """One update: returns (params, opt_state, loss, prediction), the last two from before the update.
    point_chunk: the gradient that many points at a time (point_chunks: a fit large for its cores); None: all at
    once."""

    def step(params, opt_state, x, y):
        # The gradient is autodiff's: jax.value_and_grad of the model's own loss, nothing derived by hand.
        if point_chunk is None:
            (loss, prediction), grads = model.value_and_grad(params, x, y)
        else:
            (loss, prediction), grads = point_chunks.value_and_grad(params, x, y, point_chunk)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, prediction

    return step


class Trajectory(NamedTuple):
    """What a training run returns: the final parameters, the loss before each update, the kept predictions."""

    params: dict  # the parameters after all `steps` updates
    losses: jax.Array  # (steps,), losses[t] before update t
    snapshots: jax.Array  # (S, N, 1), the prediction before update t for t = 0, every, 2*every, ...


def fit(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201, every: int = 20) -> Trajectory:
    """Train for `steps` updates in one compiled program (no host round trip per step); returns the Trajectory.

    params: model.py's dict; x, y: (N, 1) (ValueError otherwise: model.check_data, the one place inputs are checked);
    lr: a float or a traced scalar (a sweep over it reuses one compilation). The jitted entry: it compiles `trajectory`
    with the CPU options for its size (jitted_fit). Inside your own jit, vmap or grad, call `trajectory` instead (a
    nested jit takes no compiler options of its own), with point_chunk=fit_point_chunk(params, x) for fit's program.
    """
    model.check_data(x, y)
    return jitted_fit(params, x)(params, x, y, lr, optimizer=optimizer, steps=steps, every=every)


def trajectory(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201, every: int = 20,
               point_chunk: int | None = None) -> Trajectory:
    """fit's computation as a plain traceable function: make_step(tx, point_chunk) in nested lax.scans.

    The steps run as chunks of `every`, each an inner scan whose first prediction is the chunk's snapshot: an
    (every, N) buffer per chunk, never (steps, N), and at the notebook's size both loops stay under XLA:CPU's
    small-loop threshold (xla_cpu.SMALL_LOOP_BYTES), so the whole run compiles to one kernel.
    """
    tx = make_optimizer(optimizer, jnp.asarray(lr, x.dtype))
    (params, _), losses, snapshots = _chunks(make_step(tx, point_chunk), (params, tx.init(params)), x, y, steps, every)
    return Trajectory(params, losses, snapshots)


def _chunks(update, carry, x, y, steps: int, every: int):
    """`steps` updates from carry = (params, opt_state) as chunks of `every`: (carry, losses (steps,), snapshots
    (ceil(steps / every), N, 1), the prediction before each chunk's first step)."""

    def step(carry, _):
        params, opt_state, loss, prediction = update(*carry, x, y)
        return (params, opt_state), (loss, prediction)

    def chunk(carry, length: int):
        """`length` steps: their losses (length,) and the prediction before the first, the chunk's snapshot."""
        carry, (losses, predictions) = jax.lax.scan(step, carry, None, length=length)  # predictions (length, N, 1)
        return carry, (losses, predictions[0])

    full, rest = divmod(steps, every)
    carry, (losses, snapshots) = jax.lax.scan(lambda c, _: chunk(c, every), carry, None,
                                              length=full)  # losses (full, every), snapshots (full, N, 1)
    losses = losses.reshape(-1)
    if rest:
        carry, (last_losses, last_snapshot) = chunk(carry, rest)
        losses = jnp.concatenate([losses, last_losses])
        snapshots = jnp.concatenate([snapshots, last_snapshot[None]])
    return carry, losses, snapshots


def resumed_trajectory(params, opt_state, x, y, lr, *, optimizer: str = "adam", start: int = 0, steps: int = 201,
                       every: int = 20, point_chunk: int | None = None) -> tuple[Trajectory, optax.OptState]:
    """trajectory's run from step `start` to `steps` (counted from the run's beginning), from `params` and
    `opt_state` (make_optimizer(optimizer, lr)'s state after `start` updates: tx.init(params) at start 0, else
    optimizer_state.optax_state of a saved state). Returns (Trajectory(params, losses (steps - start,) for steps
    start ... steps - 1, snapshots at the steps t >= start with t % every == 0), the optimizer's final state).
    ValueError unless 0 <= start < steps."""
    if not 0 <= start < steps:
        raise ValueError(f"start {start} must lie in [0, steps {steps})")
    update = make_step(make_optimizer(optimizer, jnp.asarray(lr, x.dtype)), point_chunk)
    lead = min(-start % every, steps - start)  # the steps before the first snapshot step: no snapshot kept

    def unkept(carry, _):
        params, opt_state, loss, _ = update(*carry, x, y)
        return (params, opt_state), loss

    carry, losses = (params, opt_state), jnp.zeros([0], x.dtype)
    if lead:
        carry, losses = jax.lax.scan(unkept, carry, None, length=lead)  # losses (lead,)
    carry, rest, snapshots = _chunks(update, carry, x, y, steps - start - lead, every)
    return Trajectory(carry[0], jnp.concatenate([losses, rest]), snapshots), carry[1]


# N * H up to which fit compiles with xla_cpu.compiler_options() (why: see there); above, with YNNPACK's fusions off
# but not the 512-bit hint: the whole set ran slower at 1,000 x 20 on the Intel Xeon (bench/README.md), and YNNPACK's
# part alone was measured on an AMD EPYC only (faster or even at every size: bench/speed-work.json).
SMALL_FIT_UP_TO = 2**13


def small_fit(params, x) -> bool:
    """Whether a run of this size (N = x.shape[0], H = the hidden width) compiles with xla_cpu.compiler_options()
    (the 512-bit hint too)."""
    return x.shape[0] * params["b1"].shape[-1] <= SMALL_FIT_UP_TO


def fit_point_chunk(params, x) -> int | None:
    """Points per gradient chunk for a fit of this size on this process's cores (point_chunks.chunk_points), or None;
    None off the CPU."""
    if jax.default_backend() != "cpu":
        return None
    return point_chunks.chunk_points(x.shape[0], params["b1"].shape[-1], x.dtype.itemsize, xla_cpu.cores())


def jitted_fit(params, x):
    """The jitted program fit runs for this size (N = x.shape[0], H = the hidden width) on this process's cores;
    `.lower(...)` on it gives the compilation apart from the run."""
    return _jitted_fit(small_fit(params, x), fit_point_chunk(params, x))


def jitted_resume(params, x):
    """resumed_trajectory, jitted as fit's program for this size is (compiler options, point chunks)."""
    return _jitted_resume(small_fit(params, x), fit_point_chunk(params, x))


@functools.cache
def _jitted_resume(small: bool, point_chunk: int | None):
    return jax.jit(functools.partial(resumed_trajectory, point_chunk=point_chunk),
                   static_argnames=("optimizer", "start", "steps", "every"),
                   compiler_options=xla_cpu.compiler_options(wide_vectors=small))


@functools.cache
def _jitted_fit(small: bool, point_chunk: int | None):
    return jax.jit(functools.partial(trajectory, point_chunk=point_chunk),
                   static_argnames=("optimizer", "steps", "every"),
                   compiler_options=xla_cpu.compiler_options(wide_vectors=small))


def fit_stepwise(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201):
    """fit's step, jitted, called from a Python loop: one dispatch per step. Returns (params, losses (steps,))."""
    tx = make_optimizer(optimizer, lr)
    step = jax.jit(make_step(tx))
    opt_state = tx.init(params)
    losses = []
    for _ in range(steps):
        params, opt_state, loss, _ = step(params, opt_state, x, y)
        losses.append(loss)
    return params, jnp.stack(losses)
