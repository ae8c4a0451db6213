"""The JAX port against its torch twin on one training run, and the experiment behind the float32 gap.

This is where both frameworks meet, so it imports both. Parameters travel as numpy arrays in the JAX layout
(w1 (1,H), b1 (H,), w2 (H,1), b2 (1,)); torch_impl.twin.convert does every layout change.

Differences reported (all maxima):
- loss:  |loss_jax[t] - loss_torch[t]| / |loss_torch[t]| over the steps t; the verdict takes |loss_jax[t] -
  loss_torch[t]| in units of loss_allowance (the relative tolerance plus both losses' rounding: an absolute floor);
- params: |p_jax - p_torch| over all entries of the final parameters, with the tensor's name;
- grads: per tensor max|g_jax - g_torch| / max|g_torch| (relative to the tensor's largest entry, so that an entry
  near zero does not blow up the ratio), at the initial weights, with the tensor's name; the verdict takes each entry's
  difference in units of grad_allowance (the relative tolerance plus both sides' rounding, grad_error's model).

Why a floor: where the loss is near zero (one or two points fitted exactly, or a long run) a relative difference
means nothing: `--points 1 --x64` ended with losses near 1e-11 differing by 1.8e-10 of themselves, 4e-21 in absolute
terms, while the final weights agreed to 2e-15; float32 showed 0.15 there. What is left of a loss near zero is the
rounding of its residuals, which scales with their terms' magnitudes (|prediction|, |y|), not with the loss.

The float32 gap (attribute_float32_gap, measured on the notebook's run): JAX float32 with optax.adam is 2.9e-5 off
a torch float64 run, torch float32 1.3e-6. The cause is optax's bias corrections 1 - b**t computed in float32
(float32(0.999) = 0.99900001 and float32 pow: 6.6e-6 to 2.0e-5 relative too small for t <= 201, a step size too
small by half that): those values alone, in an otherwise float64 run, give 2.87e-5 (98% of the gap); JAX float32 with
accurate bias corrections gives 1.5e-6 (optax's formula) or 2.2e-6 (torch's). Forward/backward in float32 alone:
0.9e-6 (JAX) and 0.6e-6 (torch); the rest of torch's float32 Adam arithmetic alone 0.5e-6.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from jax_impl.core import model, ready, train
from jax_impl.core.steps import first_nonfinite_step
from torch_impl.checks import grad_error
from torch_impl.checks.adam_torch import accurate_bias_correction, scale_by_adam_torch
from torch_impl.checks.precision import full_float32
from torch_impl.checks.torch_grads import torch_grads as twin_grads
from torch_impl.checks.torch_grads import torch_loss_and_grads as twin_loss_and_grads
from torch_impl.twin import convert
from torch_impl.twin import train as torch_train
from torch_impl.twin.model import net_holding

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def full_precision(fn):
    """Run fn under precision.full_float32: JAX's matmuls in full float32 and torch's TF32 off (on NVIDIA GPUs both
    may default to TF32, docs/numerics.md: a third framework's rounding in a two-framework check). No effect on CPU."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with full_float32():
            return fn(*args, **kwargs)

    return wrapped
B1, B2, EPS = 0.9, 0.999, 1e-8  # Adam's defaults, the same in torch and optax


class Run(NamedTuple):
    losses: np.ndarray  # (steps,) float64, losses[t] before update t
    params: dict  # final parameters, JAX layout, numpy float64
    trail: list | None = None  # torch_run only: the state_dict before each update t (what loss_allowance needs)


def _as_run(losses, params) -> Run:
    return Run(np.asarray(losses, np.float64), {k: np.asarray(v, np.float64) for k, v in params.items()})


def to_torch(array, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(np.asarray(array), dtype=dtype)  # a copy: torch warns about read-only numpy buffers


# ---- the two trajectories -------------------------------------------------------------------------------------

def jax_run(params, x, y, *, lr: float, optimizer: str, steps: int) -> Run:
    """train.fit (the port's own fused lax.scan) in the dtype of params/x/y."""
    trajectory = train.fit(params, x, y, jnp.asarray(lr, x.dtype), optimizer=optimizer, steps=steps, every=steps)
    trajectory = ready.wait(trajectory)  # not in numpy's C++ wait: Ctrl-C and SIGTERM act during a long run
    return _as_run(trajectory.losses, trajectory.params)


def torch_run(params, x, y, *, lr: float, optimizer: str, steps: int, dtype: str) -> Run:
    """torch_impl.twin.train.fit (the notebook's loop, torch.optim) from the same weights and data, in `dtype`.

    A forward pre-hook keeps a copy of the weights each step's forward pass sees (the loop's one forward per step,
    before its update): steps x (3H + 1) numbers, in `dtype`. The hook reads, it changes nothing.
    """
    tdtype = TORCH_DTYPES[dtype]
    net = net_holding(params, tdtype)
    trail = []
    hook = net.register_forward_pre_hook(
        lambda module, _: trail.append({k: v.detach().clone() for k, v in module.state_dict().items()}))
    try:
        losses, _ = torch_train.fit(net, to_torch(x, tdtype), to_torch(y, tdtype), lr=lr, optimizer=optimizer,
                                    steps=steps, every=steps)
    finally:
        hook.remove()
    run = _as_run(losses.numpy(), convert.from_state_dict(net.state_dict()))
    return run._replace(trail=trail)


def nudged(params) -> dict:
    """params (numpy-like arrays) with every entry moved up by one unit in the last place of its dtype (np.nextafter),
    as numpy arrays of that dtype: weights one rounding apart, for a run against itself (how far the run amplifies one
    rounding: compare's horizon, optimizer_parity.sensitivity)."""
    return {k: np.nextafter(np.asarray(v), np.inf) for k, v in params.items()}


def jax_grads(params, x, y) -> dict:
    """The training loss's gradient at `params` (model.value_and_grad, in x's dtype), as float64 numpy arrays."""
    return {k: np.asarray(v, np.float64) for k, v in model.value_and_grad(params, x, y)[1].items()}


def torch_grads(params, x, y, dtype: str) -> dict:
    """torch autograd of MSELoss through the twin at `params`, in `dtype` (params, x and y cast to it first), returned
    in the JAX layout as float64: the gradient check's checks.torch_grads.torch_grads with the training loss."""
    cast = lambda a: np.asarray(a, np.dtype(dtype))  # noqa: E731
    grads = twin_grads({k: cast(v) for k, v in params.items()}, cast(x), cast(y), "mse")
    return {k: v.astype(np.float64) for k, v in grads.items()}


# ---- differences ----------------------------------------------------------------------------------------------

def rel_loss_diff(losses, reference) -> np.ndarray:
    """Per step |a - b| / |b|; (steps,). Equal losses are 0 (zero against zero agrees); NaN stays NaN."""
    diff = np.abs(np.asarray(losses, np.float64) - reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff == 0, 0.0, diff / np.abs(reference))


def max_abs_param_diff(params, reference) -> tuple[float, str]:
    diffs = {k: float(np.max(np.abs(params[k] - reference[k]))) for k in reference}
    name = max(diffs, key=diffs.get)
    return diffs[name], name


def rel_tensor_diff(values, reference) -> float:
    """max|values - reference| / max|reference| over one tensor. Equal tensors are 0 (a gradient that is exactly zero
    on both sides agrees: an output layer of zeros makes w1's and b1's); a difference from an all-zero reference is
    inf; a NaN on either side is NaN, never a number that could pass."""
    values, reference = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    if np.isnan(values).any() or np.isnan(reference).any():
        return float("nan")
    diff = float(np.max(np.abs(values - reference)))
    if diff == 0:
        return 0.0
    scale = float(np.max(np.abs(reference)))
    return diff / scale if scale > 0 else float("inf")


def max_rel_grad_diff(grads, reference) -> tuple[float, str]:
    """The largest rel_tensor_diff over the tensors, and its tensor; a NaN tensor is the worst."""
    diffs = {k: rel_tensor_diff(grads[k], reference[k]) for k in reference}
    name = max(diffs, key=lambda k: math.inf if math.isnan(diffs[k]) else diffs[k])
    return diffs[name], name


# ---- the cross-check ------------------------------------------------------------------------------------------

class Tolerance(NamedTuple):
    rel_loss: float  # |loss_jax - loss_torch| / |loss_torch| per step, before the rounding floor (loss_allowance)
    abs_param: float  # max |p_jax - p_torch| over the final parameters, per unit of param_scale (see compare)
    rel_grad: float  # max|g_jax - g_torch| / max|g_torch| per tensor, before the rounding floor (grad_allowance)
    # How far two correct runs' residuals drift apart, per residual, in units of its magnitudes r_err (|prediction|,
    # |y|; grad_error): what is left of the weights' drift where the loss is near zero and rel_loss says nothing.
    drift: float = 0.0


# Calibrated on a 2-core CPU (jax 0.10.2, optax 0.2.8, torch 2.13.0) over the notebook's run, seeds 0-7, Adam lr
# 0.01-1, SGD lr 0.2-3, hidden 20/64/256, 100-100000 points, 201 and 1000 steps (README lists the runs), with train.fit
# as it was then written two ways (the figures below are the larger of the two); today's autodiff train.fit gives
# 2.83e-5 (loss) and 1.7e-6 (grads) on the notebook's run in float32, 2.1e-15 and 2.7e-15 in float64.
# What float32 can and cannot see (the notebook's run, injected into the JAX side, loss against torch float32): no
# bias correction 1.2e+3, b1 permuted 0.52, b2 0.99 0.18, lr 0.201 2.4e-2, eps_root 1e-8 1.8e-3 are caught; eps 1e-6
# (3.7e-4) and lr off by 1e-4 relative (4.5e-4) are not. float64 (--x64) is the sharp check: its tolerance is 1e-12.
TOLERANCES = {
    # float32 loss: the notebook's run 2.8e-5 (optax's float32 bias corrections, see attribute_float32_gap); worst
    # 2.7e-4 (hidden 256, seed 3); 1e-3 leaves 3.7x over the worst, 35x over the notebook's run.
    # float32 params: notebook 1.9e-4, worst 2.3e-3 (hidden 256, seed 3): 1e-2 leaves 4.3x.
    # float32 grads: notebook 1.1e-6, worst 2.6e-5 (100000 points: float32 sums over N): 1e-4 leaves 3.9x.
    # float32 drift: measured up to 4.2e-6 (70 u) over 144 runs of 2000 steps at 1-5 points, widths 1/2/20, seeds 0-2,
    # Adam and SGD at lr 0.05 and 0.2 (1 point, width 1, seed 1, Adam lr 0.2, t = 15, where the loss passes within
    # 3e-7 of zero: the residuals have drifted 1.4e-5 apart, optax's float32 bias corrections being 1e-5 too small,
    # docs/numerics.md); 2e-5 leaves 4.8x. Left out: one saddle escape (3 points, width 2, seed 2, Adam lr 0.05,
    # t = 1376: 528 u; float64 19 u), whose timing amplifies any difference, and Adam at lr 1 on 1-5 points, whose
    # steps at a zero loss are lr * sign(rounding noise): trajectories no check can hold together.
    "float32": Tolerance(rel_loss=1e-3, abs_param=1e-2, rel_grad=1e-4, drift=2e-5),
    # float64 loss: notebook 2.6e-15, worst 3.9e-14 (hidden 256, seed 1): 1e-12 leaves 26x. params: notebook 6.7e-14,
    # worst 1.3e-12 (100000 points): 1e-11 leaves 7.5x. grads: notebook 9.5e-16, worst 8.2e-14 (100000 points):
    # 1e-12 leaves 12x.
    # float64 drift: over the same runs at most 4.9e-17 (0.44 u) beyond both losses' rounding; 2e-16 leaves 4.1x.
    "float64": Tolerance(rel_loss=1e-12, abs_param=1e-11, rel_grad=1e-12, drift=2e-16),
}


# Each side's loss and gradient is within grad_error's rounding allowance of the exact value at its weights; the two
# sides round independently, so their difference is allowed both (the gradient check's manual and torch pairs alike).
SIDES = 2


def loss_allowance(losses, reference, trail, x, y, tol: Tolerance, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Per step t: (the allowance tol.rel_loss |reference[t]| + grad_error.loss_rounding_allowance(sides=SIDES,
    drift=tol.drift) at the torch weights before update t (trail[t]), |losses[t] - reference[t]| in units of it).

    rel_loss is what two correct runs' losses drift apart by, relative, measured (TOLERANCES); the floor is both
    losses' own rounding and the residuals' drift, which do not shrink with the loss: near a zero loss they are what is
    left (2 |r| e + e^2 per residual, e = (2 ROUNDING_FACTOR u + drift) r_err, with r_err the magnitudes of prediction
    and y; the sum's rounding besides). The floor costs a forward
    pass on magnitudes (5 s at 100000 points and width 256), so it is evaluated step by step from the largest
    difference in units of rel_loss |reference[t]| alone, an upper bound on the step's units, down to the first step
    whose bound is no more than the largest exact units found: the maximum is exact, and every step beyond rel_loss
    alone gets its floor when the run agrees. At the steps left out the allowance is rel_loss |reference[t]| (a lower
    bound). NaN differences stay NaN units (never agree).
    """
    diff = np.abs(np.asarray(losses, np.float64) - reference)
    allowance = tol.rel_loss * np.abs(reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        units = np.where(diff == 0, 0.0, diff / allowance)
    best = 0.0
    for t in np.argsort(-np.where(np.isnan(units), -np.inf, units), kind="stable"):
        if not units[t] > best:  # every later step's bound is lower still (NaN last: no floor makes NaN agree)
            break
        allowance[t] += loss_floor(trail[t], x, y, tol, dtype)
        units[t] = diff[t] / allowance[t]
        best = max(best, units[t])
    return allowance, units


def loss_floor(state, x, y, tol: Tolerance, dtype: str) -> float:
    """loss_allowance's rounding floor at the torch weights `state` (a state_dict): both losses' rounding and drift."""
    return grad_error.loss_rounding_allowance(convert.from_state_dict(state), x, y, "mse", dtype, sides=SIDES,
                                              drift=tol.drift)


# Where torch against itself (compare.nudged: every initial weight one unit in the last place up) ends the judged
# steps, in allowances. Not 1: JAX and torch differ by both sides' rounding at every step, the nudge is one rounding
# once, and the run amplifies both alike. Measured (the notebook's data, 201 steps; AdamW lr 3, RMSprop lr 0.01, NAdam
# lr 0.2, float32 and float64): JAX against torch first passed its allowance when torch against itself had reached
# 0.49 (RMSprop, float32) to 12 allowances, growing 2-3x a step; 0.1 leaves 4.9x under the 0.49, 1-2 steps earlier.
# Runs that do not amplify stay far below it: the notebook's Adam run, torch against itself, 5e-4 at most (both dtypes).
HORIZON_UNITS = 0.1


class Horizon(NamedTuple):
    step: int | None  # the first step whose loss, torch against itself, is beyond HORIZON_UNITS; None: none is
    units: float  # torch against itself: the largest loss difference in units of loss_allowance
    units_step: int  # ... and its step


def horizon(losses, reference, trail, x, y, tol: Tolerance, dtype: str) -> Horizon:
    """The steps a rounding bound can judge: `losses` (torch from weights one rounding apart) against `reference`
    (torch, its weights before each step in `trail`) in loss_allowance's units. From the first step beyond
    HORIZON_UNITS on, two correct runs part by as much as any rounding bound allows. The floor is evaluated only at
    steps beyond the relative term alone, in step order up to the first step beyond it (a NaN is beyond)."""
    diff, base = np.abs(np.asarray(losses, np.float64) - reference), tol.rel_loss * np.abs(reference)
    first = next((t for t in range(len(diff)) if not diff[t] <= HORIZON_UNITS * base[t]
                  and not diff[t] <= HORIZON_UNITS * (base[t] + loss_floor(trail[t], x, y, tol, dtype))), None)
    units = loss_allowance(losses, reference, trail, x, y, tol, dtype)[1]
    worst = int(np.argmax(np.where(np.isnan(units), np.inf, units)))
    return Horizon(first, float(units[worst]), worst)


def grad_allowance(reference: dict, params, x, y, rel_grad: float, dtype: str) -> dict:
    """Per tensor and entry: rel_grad max|reference| + SIDES * grad_error.rounding_allowance (the training loss at
    `params`, the gradient check's model). The relative term is the measured tolerance; the floor is what each side's
    rounding leaves where the gradient is near zero (trained weights, an exact fit: relative to a zero gradient any
    rounding is an infinite difference)."""
    rounding = grad_error.rounding_allowance(params, x, y, "mse", dtype)
    return {k: rel_grad * float(np.max(np.abs(reference[k]))) + SIDES * rounding[k] for k in reference}


def max_grad_units(grads, reference, allowance) -> tuple[float, str]:
    """The largest difference in units of its allowance (grad_error.compare: zero against zero is 0, NaN is NaN),
    and its tensor; a NaN tensor is the worst."""
    report = grad_error.compare(grads, reference, allowance)
    units = {k: d["units"] for k, d in report.items()}
    name = max(units, key=lambda k: math.inf if math.isnan(units[k]) else units[k])
    return units[name], name


@full_precision
def compare(params, x, y, *, lr: float, optimizer: str, steps: int) -> dict:
    """Both trajectories from the same weights and data, in x's dtype; the differences against TOLERANCES, the losses
    and initial gradients with their rounding floors (loss_allowance, grad_allowance).

    A run whose loss turns non-finite is compared up to the first non-finite step of either side; `diverged` then
    holds both sides' first bad step, `ok` asks that the finite part agree and that both sides fail at the same step,
    and the final parameters are not compared (None).

    A finite run that fails is measured against itself (one more torch run from compare.nudged's weights, horizon):
    `horizon` then holds the first step H where torch against itself passes HORIZON_UNITS (None: it never does, the
    verdict stands), its largest difference in allowances with its step, and JAX against torch's largest before H
    (loss_units_before). With an H, `ok` judges the losses before H and the initial gradients only: beyond H no
    rounding bound holds two correct runs together. `horizon` is None where the first verdict agreed or the loss
    turned non-finite.
    """
    dtype = str(np.dtype(x.dtype))
    tol = TOLERANCES[dtype]
    ours = jax_run(params, x, y, lr=lr, optimizer=optimizer, steps=steps)
    theirs = torch_run(params, x, y, lr=lr, optimizer=optimizer, steps=steps, dtype=dtype)
    bad = {"jax": first_nonfinite_step(ours.losses),
           "torch": first_nonfinite_step(theirs.losses)}
    compared = min([steps] + [t for t in bad.values() if t is not None])
    rel = rel_loss_diff(ours.losses[:compared], theirs.losses[:compared])
    worst_step = int(np.argmax(rel)) if compared else None
    max_rel_loss = float(rel[worst_step]) if compared else 0.0
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    allowance, units = loss_allowance(ours.losses[:compared], theirs.losses[:compared], theirs.trail, x64, y64,
                                      tol, dtype)
    units_step = int(np.argmax(np.where(np.isnan(units), np.inf, units))) if compared else None
    loss_units = float(units[units_step]) if compared else 0.0
    diverged = any(t is not None for t in bad.values())
    param_diff, param_name = (None, None) if diverged else max_abs_param_diff(ours.params, theirs.params)
    # A run whose weights grow large (SGD at lr 3 in float64 ends near 1e126 with a finite loss) is held to the
    # tolerance relative to its largest weight; for weights of order 1 the tolerance is absolute.
    param_scale = None if diverged else max(1.0, max(float(np.max(np.abs(v))) for v in theirs.params.values()))
    ours_g, theirs_g = jax_grads(params, x, y), torch_grads(params, x, y, dtype)
    grad_diff, grad_name = max_rel_grad_diff(ours_g, theirs_g)
    grad_units, grad_units_name = max_grad_units(
        ours_g, theirs_g, grad_allowance(theirs_g, {k: np.asarray(v) for k, v in params.items()}, x64, y64,
                                         tol.rel_grad, dtype))
    # `<=` is False for NaN: a NaN difference is a disagreement, and the report shows it as NaN with its tensor.
    ok = (loss_units <= 1 and grad_units <= 1 and bad["jax"] == bad["torch"]
          and (param_diff is None or param_diff <= tol.abs_param * param_scale))
    # A failing run may amplify any rounding (AdamW at lr 3, RMSprop at lr 0.01, NAdam at lr 0.2 on the notebook's
    # data): torch against itself from weights one rounding apart then parts as far as JAX from torch. One more torch
    # run measures it; the steps from its horizon on are left unjudged, and the final parameters with them.
    sensitivity, units_before = None, None
    if not ok and not diverged:
        itself = torch_run(nudged(params), x, y, lr=lr, optimizer=optimizer, steps=steps, dtype=dtype)
        sensitivity = horizon(itself.losses, theirs.losses, theirs.trail, x64, y64, tol, dtype)
        if sensitivity.step is not None:
            before = sensitivity.step
            judged = loss_allowance(ours.losses[:before], theirs.losses[:before], theirs.trail, x64, y64, tol,
                                    dtype)[1]
            units_before = float(np.max(judged)) if before else 0.0
            ok = units_before <= 1 and grad_units <= 1
    return {"dtype": dtype, "steps": steps, "optimizer": optimizer, "lr": lr, "hidden": int(np.shape(params["b1"])[0]),
            "points": int(x.shape[0]), "max_rel_loss_diff": max_rel_loss, "worst_step": worst_step,
            "loss_units": loss_units, "loss_units_step": units_step,
            "loss_floor_steps": int(np.sum((units <= 1) & (np.abs(ours.losses[:compared] - theirs.losses[:compared])
                                                            > tol.rel_loss * np.abs(theirs.losses[:compared])))),
            "max_abs_param_diff": param_diff, "worst_param": param_name,
            "param_scale": param_scale, "max_rel_grad_diff": grad_diff,
            "worst_grad": grad_name, "grad_units": grad_units, "grad_units_tensor": grad_units_name,
            "tolerances": tol._asdict(), "compared_steps": compared,
            "diverged": bad if diverged else None, "ok": bool(ok),
            "horizon": None if sensitivity is None else {**sensitivity._asdict(), "loss_units_before": units_before},
            "losses": {"jax": ours.losses, "torch": theirs.losses}, "loss_allowance": allowance}


# ---- the float32 gap: each candidate cause switched on alone ---------------------------------------------------
# Candidates: (a) optax's float32 bias corrections 1 - b**t; (b) the rest of the optimizer's float32 arithmetic
# (optax's vs torch's arrangement of the same formula); (c) the forward/backward pass (the 20-wide sums, sigmoid).
# Each variant below is run from the same weights and data and compared with torch in float64.

def optax_bias_correction(decay: float, count, dtype) -> jax.Array:
    """What optax.tree.bias_correction computes: 1 - decay**count in the default float dtype (float32 here)."""
    return (1 - decay ** jnp.asarray(count, jnp.int32)).astype(dtype)


def scale_by_adam_optax_formula(bias_correction, lr=1.0) -> optax.GradientTransformation:
    """optax.scale_by_adam's arithmetic (then scale(-lr)), with the bias corrections swappable.

    With optax_bias_correction it is optax.adam bit for bit (tests/test_compare.py checks that).
    """

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return optax.ScaleByAdamState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update(grads, state, params=None):
        # The order of optax's own code (transform.scale_by_adam, then scale(-lr)), down to g**1 and v + 0.0: XLA
        # then compiles the same loop. Each bias correction once per tree, as optax.tree.bias_correction does.
        mu = jax.tree.map(lambda g, m: (1 - B1) * g**1 + B1 * m, grads, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - B2) * g**2 + B2 * v, grads, state.nu)
        count = optax.safe_increment(state.count)
        dtype = jax.tree.leaves(mu)[0].dtype
        bc1, bc2 = bias_correction(B1, count, dtype), bias_correction(B2, count, dtype)
        mu_hat = jax.tree.map(lambda m: m / bc1.astype(m.dtype), mu)
        nu_hat = jax.tree.map(lambda v: v / bc2.astype(v.dtype), nu)
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + 0.0) + EPS), mu_hat, nu_hat)
        return jax.tree.map(lambda u: -lr * u, updates), optax.ScaleByAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def jax_optimizer_run(tx: optax.GradientTransformation, params, x, y, steps: int) -> Run:
    """The port's step (train.make_step) with any optax transformation, in one lax.scan."""
    step = train.make_step(tx)

    @jax.jit
    def run(params):
        def body(carry, _):
            params, opt_state, loss, _ = step(*carry, x, y)
            return (params, opt_state), loss

        (params, _), losses = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
        return params, losses

    params, losses = run(params)
    return _as_run(losses, params)


def exact_bias_corrections(t: int) -> tuple[float, float]:
    """torch's: 1 - b**t in Python floats."""
    return 1 - B1**t, 1 - B2**t


def optax_float32_bias_corrections(steps: int):
    """t -> optax's float32 (1 - b1**t, 1 - b2**t) as Python floats, computed by compiled JAX as optax computes them.

    (Compiled, like optax's: XLA's compiled float32 pow and the eager one differ in the last bits, which 1 - b**t
    magnifies: at t = 3 the eager value is off by 2.7e-5 relative, the compiled one by 6.6e-6.)
    """
    counts = jnp.arange(1, steps + 1, dtype=jnp.int32)
    table = jax.jit(lambda c: [optax_bias_correction(b, c, jnp.float32) for b in (B1, B2)])(counts)
    bc1, bc2 = (np.asarray(v, np.float64) for v in table)
    return lambda t: (float(bc1[t - 1]), float(bc2[t - 1]))


def torch_loss_and_grads(x, y, dtype: str):
    """state_dict -> (loss, grads as a state_dict): checks.torch_grads's autograd of MSELoss through the twin, in
    `dtype` (the weights, x and y cast to it first)."""
    cast = lambda a: np.asarray(a, np.dtype(dtype))  # noqa: E731
    x, y = cast(x), cast(y)

    def loss_and_grads(state):
        params = {k: cast(v) for k, v in convert.from_state_dict(state).items()}
        loss, grads = twin_loss_and_grads(params, x, y, "mse")
        return loss, convert.to_state_dict(grads)

    return loss_and_grads


def jax_loss_and_grads(x, y):
    """state_dict -> (loss, grads as a state_dict), by model.value_and_grad (the training loss) in x's dtype."""
    value_and_grad = jax.jit(model.value_and_grad)

    def loss_and_grads(state):
        params = {k: jnp.asarray(v, x.dtype) for k, v in convert.from_state_dict(state).items()}
        (loss, _), grads = value_and_grad(params, x, y)
        return float(loss), convert.to_state_dict(grads)

    return loss_and_grads


def torch_adam_run(params, loss_and_grads, *, lr: float, steps: int, dtype: str,
                   bias_corrections=exact_bias_corrections) -> Run:
    """torch.optim.Adam's single-tensor update, operation for operation, in `dtype`, on any gradient source.

    With torch_loss_and_grads and exact_bias_corrections it is torch.optim.Adam bit for bit (a test checks that).
    """
    tdtype = TORCH_DTYPES[dtype]
    state = {k: v.to(tdtype) for k, v in convert.to_state_dict({k: np.asarray(v) for k, v in params.items()}).items()}
    m = {k: torch.zeros_like(v) for k, v in state.items()}
    v2 = {k: torch.zeros_like(v) for k, v in state.items()}
    losses = []
    for t in range(1, steps + 1):
        loss, grads = loss_and_grads(state)
        bc1, bc2 = bias_corrections(t)
        for k, p in state.items():
            g = grads[k].to(tdtype)
            m[k].lerp_(g, 1 - B1)
            v2[k].mul_(B2).addcmul_(g, g, value=1 - B2)
            denom = (v2[k].sqrt() / bc2**0.5).add_(EPS)
            p.addcdiv_(m[k], denom, value=-(lr / bc1))
        losses.append(loss)
    return _as_run(losses, convert.from_state_dict(state))


def jax_optimizer_loop(tx: optax.GradientTransformation, params, loss_and_grads, steps: int) -> Run:
    """An optax optimizer in params' dtype, stepped from Python, on any gradient source (a state_dict function)."""
    update = jax.jit(lambda grads, opt_state, params: tx.update(grads, opt_state, params))
    opt_state, losses = tx.init(params), []
    for _ in range(steps):
        loss, grads = loss_and_grads(convert.to_state_dict(params))
        grads = {k: jnp.asarray(v, params[k].dtype) for k, v in convert.from_state_dict(grads).items()}
        updates, opt_state = update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        losses.append(loss)
    return _as_run(losses, params)


class Variant(NamedTuple):
    name: str
    cause: str  # which candidate it switches on or off
    run: Run


@full_precision
def attribute_float32_gap(params, x, y, *, lr: float, steps: int) -> tuple[Run, list[Variant]]:
    """The torch float64 reference and each variant's run (Adam). params, x, y: float32 JAX arrays.

    Every JAX variant runs the port's autodiff step (train.make_step: jax.value_and_grad, then the optimizer) so that
    only the optimizer changes between them; one more row runs train.fit itself, the port's fused program.
    """
    p32 = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    x32, y32 = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    reference = torch_run(p32, x32, y32, lr=lr, optimizer="adam", steps=steps, dtype="float64")
    torch32, torch64 = torch_loss_and_grads(x32, y32, "float32"), torch_loss_and_grads(x32, y32, "float64")
    jax32 = jax_loss_and_grads(x32, y32)
    fb32 = "forward/backward float32"
    variants = [
        ("torch float32, torch.optim.Adam", "all float32", torch_run(p32, x32, y32, lr=lr, optimizer="adam",
                                                                       steps=steps, dtype="float32")),
        ("JAX float32, optax.adam", "all float32", jax_optimizer_run(optax.adam(lr), p32, x32, y32, steps)),
        ("JAX float32, optax.adam, train.fit", "all float32, the port's fit",
         jax_run(p32, x32, y32, lr=lr, optimizer="adam", steps=steps)),
        ("JAX float32, optax formula, accurate bias corr.", "(a) off",
         jax_optimizer_run(scale_by_adam_optax_formula(accurate_bias_correction, lr), p32, x32, y32, steps)),
        ("JAX float32, torch formula, accurate bias corr.", "(a) off, (b) torch's",
         jax_optimizer_run(scale_by_adam_torch(lr=lr), p32, x32, y32, steps)),
        ("JAX float32, torch formula, optax's bias corr.", "(a) on, (b) torch's",
         jax_optimizer_run(scale_by_adam_torch(lr=lr, bias_correction=optax_bias_correction), p32, x32, y32, steps)),
        ("torch float32, manual Adam, optax's bias corr.", "(a) on, in torch",
         torch_adam_run(p32, torch32, lr=lr, steps=steps, dtype="float32",
                        bias_corrections=optax_float32_bias_corrections(steps))),
        ("float64 throughout but optax's bias corr.", "(a) alone",
         torch_adam_run(p32, torch64, lr=lr, steps=steps, dtype="float64",
                        bias_corrections=optax_float32_bias_corrections(steps))),
        ("JAX fwd/bwd float32, Adam float64", f"(c) alone, JAX {fb32}",
         torch_adam_run(p32, jax32, lr=lr, steps=steps, dtype="float64")),
        ("torch fwd/bwd float32, Adam float64", f"(c) alone, torch {fb32}",
         torch_adam_run(p32, torch32, lr=lr, steps=steps, dtype="float64")),
        ("fwd/bwd float64, optax.adam float32", "(a)+(b) alone, optax",
         jax_optimizer_loop(optax.adam(lr), p32, torch64, steps)),
        ("fwd/bwd float64, torch Adam float32", "(b) alone, torch",
         torch_adam_run(p32, torch64, lr=lr, steps=steps, dtype="float32")),
    ]
    return reference, [Variant(*v) for v in variants]


@full_precision
def gradient_gap(params, x, y) -> dict:
    """float32 gradients at fixed weights: each framework against torch float64, and JAX against torch."""
    p32 = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    x32, y32 = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    exact, jax32, torch32 = torch_grads(p32, x32, y32, "float64"), jax_grads(p32, x32, y32), torch_grads(p32, x32, y32,
                                                                                                          "float32")
    return {"jax_float32_vs_float64": max_rel_grad_diff(jax32, exact)[0],
            "torch_float32_vs_float64": max_rel_grad_diff(torch32, exact)[0],
            "jax_vs_torch_float32": max_rel_grad_diff(jax32, torch32)[0]}
