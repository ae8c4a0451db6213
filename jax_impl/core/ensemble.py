"""Many networks at once: E models trained in one compiled call, the learning rate as data.

The public layout is the single model's with a leading model axis E, as `jax.vmap(model.init_params)` makes it:
    w1 (E, 1, H)   b1 (E, H)   w2 (E, H, 1)   b2 (E, 1)      lrs (E,)

Inside the scan the parameters and Adam's moments hold the model axis last ("columns", to_columns), so that the
update vectorises across the models, and the loss is the single model's mean squared error over model.forward,
vmapped over that axis: one jax.value_and_grad of the summed loss gives every model's gradient. XLA lays the hidden
layer out as (E, H, N), the points innermost as in a single fit, and the points are padded to a whole number of
vector lanes (pad_points; the padding's residuals are zeroed, masked_mse_loss). `fit_vmapped` is the literal vmap of
train.trajectory, kept as the reference.

XLA:CPU's YNNPACK reduction fusions reduce over an outer axis very slowly, and XLA's tree reductions add a kernel to
each sum over the points, so these programs compile without either (xla_cpu.compiler_options(tree_reductions=False)).
Above BLOCK_FROM models the models go through in blocks that fit the L2 cache (fit_program). The measurements:
bench/README.md.
"""

import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl.core import footprint, model, train, xla_cpu
from jax_impl.core.steps import snapshot_steps
from jax_impl.core.torch_optim import make_direction


def init_ensemble(seeds, hidden: int = 20, dtype=jnp.float32) -> dict[str, jax.Array]:
    """Model i gets `model.init_params(jax.random.key(seeds[i]), hidden, dtype)`: train_jax.py --seed's rule."""
    seeds = jnp.asarray(np.asarray(seeds, dtype=np.int64).astype(jnp.asarray(0).dtype))  # int32 or, with x64, int64
    if seeds.ndim != 1 or seeds.shape[0] == 0:
        raise ValueError("seeds must be a non-empty list of integers")
    return _init(seeds, hidden, dtype)


@partial(jax.jit, static_argnames=("hidden", "dtype"))
def _init(seeds, hidden, dtype):
    return jax.vmap(lambda s: model.init_params(jax.random.key(s), hidden, dtype))(seeds)


def to_columns(params):
    """(E, ...) public layout -> the model axis last: w1 (1, H, E), b1 (H, E), w2 (H, 1, E), b2 (1, E)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), params)


def from_columns(columns):
    """Inverse of to_columns."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), columns)


# XLA:CPU runs a loop over the points in vectors of 8 floats (AVX2's) and a row's remainder one float at a time: at
# the notebook's 100 points, 12 vectors and 4 single sigmoids a row. Padded to 104, the sharded ensemble ran 0.83-0.87x
# as long at 64-4,096 models (AMD EPYC, AVX2; bench/speed-work.json, "points_padded_to_vector_lanes"); padded to 112
# (AVX-512's 16 lanes), 0.90-0.95x. train.fit keeps its points unpadded: at the notebook's size it ran 1.17 ms at
# 100 points and 1.09 ms at 104, not worth a masked loss in the main job (the same record).
LANES = 8


def padded_points(points: int) -> int:
    """`points` rounded up to a multiple of LANES."""
    return -(-points // LANES) * LANES


def pad_points(x, y):
    """x, y (N, 1) with copies of their last row appended up to padded_points(N) rows. Copies of a real point, not
    zeros: a padding row's forward is row N - 1's, so an overflowed w1 saturates its units there too (a zero x would
    make inf * 0 = nan, and with it a nan gradient where the unpadded one is finite)."""
    rows = ((0, padded_points(x.shape[0]) - x.shape[0]), (0, 0))
    return jnp.pad(x, rows, mode="edge"), jnp.pad(y, rows, mode="edge")


def masked_mse_loss(params, x, y, points: int):
    """model.mse_loss of the first `points` rows of x, y (N', 1); the rows after them (pad_points') count for
    nothing: their residuals are replaced by zeros before squaring, so they add exactly zero to the loss and to the
    gradient (the select passes them a zero cotangent) while their values are finite or saturated, as a real row's
    are (pad_points' copies). Where a weight of the output layer has overflowed, the loss is non-finite already, and
    a gradient that would read inf may read nan. ValueError for x, y not (N', 1) or points not in 1..N'."""
    model.check_data(x, y)
    if not 0 < points <= x.shape[0]:
        raise ValueError(f"points must be in 1..{x.shape[0]}; got {points}")
    residual = model.forward(params, x) - y
    residual = jnp.where(jnp.arange(x.shape[0])[:, None] < points, residual, 0)
    return jnp.sum(residual**2) / points  # jnp.mean's sum / N


def losses_and_predictions(columns, x, y, points: int):
    """Every model's masked_mse_loss and model.forward at once, the model axis last: vmap of the single model's
    functions. x, y (N', 1) padded (pad_points), `points` of them real. Returns (sum of the losses, (losses (E,),
    predictions (points, E))).

    The models are independent, so the gradient of the summed loss with respect to model e's parameters is model e's
    own gradient: one jax.value_and_grad gives every model's.
    """
    losses = jax.vmap(masked_mse_loss, in_axes=(-1, None, None, None))(columns, x, y, points)  # (E,)
    predictions = jax.vmap(model.forward, in_axes=(-1, None), out_axes=-1)(columns, x)[:points, 0]  # (points, E)
    return jnp.sum(losses), (losses, predictions)


def num_snapshots(steps: int, every: int | None) -> int:
    """How many snapshots a run of `steps` keeps when it keeps one every `every` steps (0 for every=None)."""
    return 0 if every is None else len(snapshot_steps(steps, every))


def _fit_columns(params, x, y, lrs, *, optimizer, steps, every):
    direction = make_direction(optimizer)
    columns = to_columns(params)
    neg_lr = -jnp.asarray(lrs, x.dtype)  # (E,): optax's scale(-lr), one per model
    per_leaf = lambda lr, leaf: lr.reshape((1,) * (leaf.ndim - 1) + lr.shape)  # noqa: E731  (E,) -> (1, ..., E)
    s = num_snapshots(steps, every)
    points, (x, y) = x.shape[0], pad_points(x, y)

    def body(carry, t):
        columns, state, snapshots = carry
        (_, (losses, prediction)), grads = jax.value_and_grad(losses_and_predictions, has_aux=True)(columns, x, y,
                                                                                                  points)
        updates, state = direction.update(grads, state)
        columns = jax.tree.map(lambda p, u: p + per_leaf(neg_lr, p) * u, columns, updates)
        if s:
            slot = t // every
            snapshots = snapshots.at[slot].set(jnp.where(t % every == 0, prediction, snapshots[slot]))
        return (columns, state, snapshots), losses

    snapshots = jnp.zeros((s, points, lrs.shape[0]), x.dtype)
    carry = (columns, direction.init(columns), snapshots)
    (columns, _, snapshots), losses = jax.lax.scan(body, carry, jnp.arange(steps))
    return train.Trajectory(from_columns(columns), losses.T, jnp.transpose(snapshots, (2, 0, 1))[..., None])


# Above BLOCK_FROM models, the scan runs on blocks of BLOCK models, one after another (lax.map), so that a block's
# (N, H, E) arrays stay in the L2 cache (1.7x faster at E = 1024: bench/README.md).
BLOCK = 64
BLOCK_FROM = 256


def fit_program(params, x, y, lrs, *, optimizer, steps, every):
    """What one device runs: _fit_columns, on blocks of BLOCK models (the last padded with copies of the last model)
    when E > BLOCK_FROM. fit_ensemble jits it; sharding.fit_sharded runs it on every device's slice."""
    models = lrs.shape[0]
    if models <= BLOCK_FROM:
        return _fit_columns(params, x, y, lrs, optimizer=optimizer, steps=steps, every=every)
    blocks = -(-models // BLOCK)

    def to_blocks(a):
        a = jnp.concatenate([a, jnp.repeat(a[-1:], blocks * BLOCK - models, axis=0)])
        return a.reshape(blocks, BLOCK, *a.shape[1:])

    fit = partial(_fit_columns, x=x, y=y, optimizer=optimizer, steps=steps, every=every)
    trajectory = jax.lax.map(lambda block: fit(block[0], lrs=block[1]), jax.tree.map(to_blocks, (params, lrs)))
    return jax.tree.map(lambda a: a.reshape(blocks * BLOCK, *a.shape[2:])[:models], trajectory)


@functools.cache
def jitted_fit():
    """fit_ensemble's compiled form: jax.jit with the CPU options; .lower(...) works on it for inspection."""
    return jax.jit(fit_program, static_argnames=("optimizer", "steps", "every"),
                   compiler_options=xla_cpu.compiler_options(tree_reductions=False))


def fit_ensemble(params, x, y, lrs, *, optimizer: str = "adam", steps: int = 201,
                 every: int | None = 20) -> train.Trajectory:
    """Train E models for `steps` updates in one jitted program; model i is train.fit(params[i], x, y, lrs[i]).

    params: the (E, ...) layout; x, y: (N, 1) shared; lrs: (E,) traced, so new learning rates reuse the compiled
    program. Returns Trajectory(params (E, ...), losses (E, steps), snapshots (E, S, N, 1)); every=None keeps no
    snapshots (S = 0): no (N, E) select per step, no (S, N, E) buffer.
    The update is optax's arithmetic per model: u = adam_direction(g); p + (-lr) * u. ValueError for x, y of another
    shape (model.check_data).
    """
    model.check_data(x, y)
    return jitted_fit()(params, x, y, lrs, optimizer=optimizer, steps=steps, every=every)


@partial(jax.jit, static_argnames=("optimizer", "steps", "every"))
def fit_vmapped(params, x, y, lrs, *, optimizer: str = "adam", steps: int = 201, every: int = 20):
    """The literal vmap of train.fit over (params, lr): the reference for fit_ensemble, and the slow baseline."""
    fit = partial(train.trajectory, optimizer=optimizer, steps=steps, every=every)
    return jax.vmap(lambda p, lr: fit(p, x, y, lr))(params, lrs)


def estimate_bytes(models: int, *, hidden: int, points: int, steps: int, snapshots: int, itemsize: int) -> int:
    """Peak memory of fit_ensemble for `models` models on one device, an upper estimate (footprint.fit_bytes, with the
    models stepped at once: all of them, or a block of BLOCK above BLOCK_FROM)."""
    stepped = min(models, BLOCK) if models > BLOCK_FROM else models
    return footprint.fit_bytes(models, hidden=hidden, points=padded_points(points), steps=steps, snapshots=snapshots,
                               itemsize=itemsize, stepped=stepped)

