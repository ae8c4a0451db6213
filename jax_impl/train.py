"""Training: one optimiser step, and the whole run as one compiled `lax.scan`.

Like the notebook, step t computes the prediction and the loss *before* its update, so losses[t] and the
snapshot at t describe the parameters after t updates.
"""

import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax._src import core as jax_core

from jax_impl import model, xla_cpu
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


# --- The fused run: make_step's arithmetic (the MSE's gradient, then the optimizer), arranged for XLA:CPU. There each
# fusion, dot and copy in the scan body is one kernel call, and autodiff through the four-leaf dict plus optax makes 41
# per step, with the hidden layer laid out (N, H) (H = 20 contiguous floats for the vectorised sigmoid). Here: the
# hidden layer laid out (H, N), the N points contiguous; the gradient in closed form, its sums over the points as
# matrix-vector products; the parameters packed into one (4, H) array, so the optimizer updates one leaf. At small
# sizes, with xla_cpu.enable_small_loop_kernels (the scripts set it) and SMALL_FIT_UP_TO's options, each scan compiles
# to one kernel. scripts/bench.py measures it against fit_autodiff (the first version); tests/test_bench.py checks it
# against jax.value_and_grad and fit_autodiff. bench/speed-work.json has each change, its prediction and its result.

# N * H up to which closed_form_grads takes its sums over the points as three matrix-vector products (XLA:CPU emits
# them inline); above, two matrix products over the (H, N) arrays (a library call, each array read once). Measured on
# the 2-core CPU (interleaved runs of fit, jax 0.10.2; bench/speed-work.json, v5): the three matrix-vector products
# 11-16 % faster at 10^3 x 20 and 5-7 % at 100 x 256; the products 1-4 % faster at 10^4 x 20 (within noise).
MATVEC_UP_TO = 2**15


def pack(params) -> jax.Array:
    """The dict of model.py -> one (4, H) array: rows w1, b1, w2, and b2 followed by H - 1 zeros."""
    hidden = params["b1"].shape[0]
    b2_row = jnp.zeros(hidden, params["b2"].dtype).at[0].set(params["b2"][0])
    return jnp.stack([params["w1"][0], params["b1"], params["w2"][:, 0], b2_row])


def unpack(packed: jax.Array) -> dict:
    """pack's inverse."""
    return {"w1": packed[0][None, :], "b1": packed[1], "w2": packed[2][:, None], "b2": packed[3, :1]}


def closed_form_grads(packed, x, y):
    """(loss, prediction (N, 1), gradient (4, H) packed) of the MSE, the chain rule written out, in (H, N) layout:

        s = sigmoid(w1 x + b1)       prediction = w2 . s + b2       r = prediction - y       g = 2 r / N
        dw2 = sum_n g s              db2 = sum_n g
        db1 = w2 sum_n g s (1 - s)   dw1 = w2 sum_n g x s (1 - s)   loss = sum_n (r N / 2) g / N

    The sigmoid as the notebook's validation cell writes it, 1 / (1 + exp(-h)) (XLA:CPU compiles jax.nn.sigmoid to
    the same kernel). The loss is sum(r^2) / N written against g, so that it overflows where r^2 does (a diverging run
    turns non-finite at the same step as jnp.mean(r**2)). Equal to jax.value_and_grad(loss_and_prediction) to float32
    rounding (tests/test_bench.py).
    """
    n, hidden = x.shape[0], packed.shape[1]
    xt, w2 = x.T, packed[2][:, None]  # (1, N), (H, 1)
    s = 1 / (1 + jnp.exp(-(packed[0][:, None] * xt + packed[1][:, None])))  # (H, N)
    prediction = jnp.sum(w2 * s, axis=0, keepdims=True) + packed[3, 0]  # (1, N)
    r = prediction - y.T
    g = r * (2.0 / n)  # (1, N)
    ds = s * (1 - s)  # (H, N), the sigmoid's derivative
    if n * hidden <= MATVEC_UP_TO:
        g_n, gx_n = g[0], (g * xt)[0]  # (N,)
        db1, dw1, dw2 = ds @ g_n, ds @ gx_n, s @ g_n  # (H,) each
    else:
        ds_sums = ds @ jnp.concatenate([g, g * xt]).T  # (H, 2)
        db1, dw1, dw2 = ds_sums[:, 0], ds_sums[:, 1], (s @ g.T)[:, 0]
    db2, loss = jnp.sum(g), jnp.sum(r * (n / 2) * g) / n
    grads = jnp.stack([dw1 * packed[2], db1 * packed[2], dw2, jnp.zeros(hidden, x.dtype).at[0].set(db2)])
    return loss, prediction.T, grads


def make_packed_step(optimizer: optax.GradientTransformation):
    """make_step on packed parameters with closed_form_grads: (packed, opt_state, x, y) -> (packed, opt_state, loss,
    prediction), the last two from before the update. The optimizer acts elementwise, so packing changes no arithmetic,
    and the padding (zero gradient) stays zero under Adam and SGD.
    """

    def step(packed, opt_state, x, y):
        loss, prediction, grads = closed_form_grads(packed, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, packed)
        return optax.apply_updates(packed, updates), opt_state, loss, prediction

    return step


def fit(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201, every: int = 20) -> Trajectory:
    """Train for `steps` updates in one compiled program: no host round trip per step.

    x, y: (N, 1) (ValueError otherwise: model.check_data). `lr` is traced (a sweep over it reuses one compilation).
    The steps run as chunks of `every`, each
    an inner lax.scan whose first prediction is the chunk's snapshot: an (every, N) buffer per chunk, never (steps, N).
    (At the notebook's size this nesting, unlike a first step outside the inner scan, keeps each loop under XLA's
    small-loop threshold: both compile to one kernel.)
    Each step is make_packed_step's; fit_autodiff is the same run through make_step. The program is
    jitted_fit(params, x)'s: `.lower(...)` on that gives the compilation apart from the run.
    """
    model.check_data(x, y)
    # Inside jit, vmap or grad the program is part of the caller's and takes no compiler options of its own (jax
    # refuses them on a nested jit). jax 0.10.2 has no public "am I being traced?"; core.trace_state_clean is it.
    top_level = jax_core.trace_state_clean()
    program = jitted_fit(params, x) if top_level else _jitted_fit(False)
    return program(params, x, y, lr, optimizer=optimizer, steps=steps, every=every)


# N * H up to which fit compiles with xla_cpu.CPU_COMPILER_OPTIONS: no YNNPACK fusions, so that with
# xla_cpu.enable_small_loop_kernels the whole scan becomes one kernel (float32 up to N * H ~ 3,000; float64 at the
# notebook's size is over the threshold), and 512-bit vectors, which pay up to here even kernel by kernel. Above, XLA's
# defaults. Measured, 201 steps, jax 0.10.2, fastest of 5-300 runs (bench/speed-work.json, v4 "sizes"): 100 x 20
# 0.76 ms (one kernel) against 1.20 ms with the defaults; 400 x 20 3.07 (these options, kernel by kernel) against
# 6.08 ms; 1000 x 20 10.8-12.7 against 7.5-10.0 ms.
SMALL_FIT_UP_TO = 2**13


def jitted_fit(params, x):
    """The jitted program fit runs for this size (N = x.shape[0], H = the hidden width)."""
    return _jitted_fit(x.shape[0] * params["b1"].shape[-1] <= SMALL_FIT_UP_TO)


@functools.cache
def _jitted_fit(small: bool):
    return jax.jit(_fit, static_argnames=("optimizer", "steps", "every"),
                   compiler_options=xla_cpu.compiler_options() if small else {})


def _fit(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201, every: int = 20) -> Trajectory:
    tx = make_optimizer(optimizer, jnp.asarray(lr, x.dtype))
    packed_step = make_packed_step(tx)

    def step(carry, _):
        packed, opt_state, loss, prediction = packed_step(*carry, x, y)
        return (packed, opt_state), (loss, prediction)

    def chunk(carry, length: int):
        """`length` steps: their losses (length,) and the prediction before the first, the chunk's snapshot."""
        carry, (losses, predictions) = jax.lax.scan(step, carry, None, length=length)  # predictions (length, N, 1)
        return carry, (losses, predictions[0])

    full, rest = divmod(steps, every)
    packed = pack(params)
    carry, (losses, snapshots) = jax.lax.scan(lambda c, _: chunk(c, every), (packed, tx.init(packed)), None,
                                              length=full)  # losses (full, every), snapshots (full, N, 1)
    losses = losses.reshape(-1)
    if rest:
        carry, (last_losses, last_snapshot) = chunk(carry, rest)
        losses = jnp.concatenate([losses, last_losses])
        snapshots = jnp.concatenate([snapshots, last_snapshot[None]])
    return Trajectory(unpack(carry[0]), losses, snapshots)


@partial(jax.jit, static_argnames=("optimizer", "steps", "every"))
def fit_autodiff(params, x, y, lr, *, optimizer: str = "adam", steps: int = 201, every: int = 20) -> Trajectory:
    """fit as first written: make_step (jax.value_and_grad, optax on the dict) in one lax.scan, the snapshot buffer
    carried and slot t // every overwritten at t % every == 0. The reference that fit is measured and checked against.
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
    """fit's step, jitted, called from a Python loop: one dispatch per step. Returns (params, losses (steps,))."""
    tx = make_optimizer(optimizer, lr)
    step = jax.jit(make_packed_step(tx))
    packed = pack(params)
    opt_state = tx.init(packed)
    losses = []
    for _ in range(steps):
        packed, opt_state, loss, _ = step(packed, opt_state, x, y)
        losses.append(loss)
    return unpack(packed), jnp.stack(losses)


def first_nonfinite_step(losses) -> int | None:
    """The first t whose loss is NaN or inf, or None."""
    bad = jnp.flatnonzero(~jnp.isfinite(losses), size=1, fill_value=-1)[0]
    return None if int(bad) < 0 else int(bad)
