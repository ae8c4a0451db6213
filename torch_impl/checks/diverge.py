"""Where two runs part: walk two records of one experiment (jax_impl/files/records.py) in computation order and name
the first quantity whose difference exceeds its bound (docs/records.md gives every bound).

The error model. Each recorded quantity q is a function f of quantities recorded before it (the step before's for
the parameters and the moments, this step's otherwise). For records A and B,

    q_A - q_B = (q_A - f(in_A)) + (f(in_A) - f(in_B)) + (f(in_B) - q_B)

The middle term is the difference carried in: f evaluated in float64 on each record's own inputs, so a difference made
earlier is passed on exactly (through the sigmoid, the square root, the sums) and never blamed on a later quantity. The
outer terms are each record's own rounding of q from its inputs, bounded as a sum's rounding is (Higham, "Accuracy and
Stability of Numerical Algorithms", 2nd ed., sec. 4.2): FACTOR[q] * u * S_q, with S_q the formula evaluated on
magnitudes (SCALES) and u the unit roundoff of each record's precision (u_A + u_B, plus float64's for f itself). So

    bound = |f(in_A) - f(in_B)| + FACTOR[q] * (u_A + u_B + u_64) * S_q + FLUSH_FACTOR * (t_A + t_B + t_64) * Z_q

with the underflow term besides the rounding: t the smallest normal number of each precision (XLA:CPU flushes
subnormals to zero, torch and NumPy keep them: grad_error.SMALLEST_NORMAL) and Z_q how many flushes reach q, each
carried by the factors after it (UNDERFLOW). A quantity crosses where |q_A - q_B| > bound. With --record-every K > 1
the parameters and moments of a kept step are not functions of the kept step before: they are not judged after the
first kept step (a difference then shows in the first forward quantity of that step instead: localized to within K
steps).
"""

from typing import NamedTuple

import numpy as np

from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files.records import STEP_ORDER, Record
from torch_impl.checks import grad_error

U = grad_error.UNIT_ROUNDOFF
TINY = grad_error.SMALLEST_NORMAL
B1, B2, EPS = 0.9, 0.999, 1e-8  # Adam's defaults, torch's and optax's alike (the only optimizer recorded)

# FACTOR[q]: the rounding steps behind each quantity's bound, in units of u * S_q: 2 (grad_error.ROUNDING_FACTOR: a few
# roundings per term) unless the line says otherwise. Measured by scripts/diverge_calibrate.py (bench/
# diverge_calibration.json, docs/records.md; 2-core AMD EPYC): over 20 seeds x 2000 steps of correct runs, 0 crossings
# and at worst 0.495 of a rounding allowance used (update.b1, JAX vs torch float32), 0.331 in float64, 0.499 JAX
# float32 vs float64 (re-run after the underflow term): 2x left for other CPUs' kernels and summation orders (Intel
# Xeon records: not measured).
FACTOR = {
    "data": 1.0,  # the same draw, at most cast: one rounding
    "params": 2.0,  # p + update, and the update read back as p_after - p_before
    # x w1 + b1: a product and a sum, each within u of its value (<= S_q): 2 u S_q reached (torch float32 measured
    # 1.95 u S_q), so 4 leaves 2x.
    "forward.pre_activation": 4.0,
    "forward.hidden": 4.0,  # XLA's and torch's sigmoid kernels: a few ulps (exp, a division, or tanh-based)
    "forward.output": 2.0,
    "forward.residual": 2.0,
    "loss": 2.0,
    "grads": grad_error.ROUNDING_FACTOR,  # the gradient check's lambda on its M[k]
    "adam.count": 0.0,  # whole numbers: equal or not
    "adam.mu": 4.0,  # b g (or g^2), b m, their sum and float32's b itself: four roundings
    "adam.nu": 4.0,
    "update": 2.0,
}
# Roundings of Adam's update formula besides its bias corrections: mu / bc1, nu / bc2, a square root, + eps, a
# division, * lr.
UPDATE_OPS = 6.0

# The underflow term, Z_q in units of the smallest normal number t (grad_error.SMALLEST_NORMAL), as the gradient
# check counts it (grad_error.underflow_scale): every operation, and every input (XLA also flushes subnormal inputs),
# may flush a subnormal to zero, off by < t absolutely; that error is carried by the factors applied after it. A
# unit saturated into the subnormals at every point (w1 = 0, |b1| ~80-104 in float32, ~700-745 in float64) made
# jax and torch records of one correct run differ there by ~1e-36 (float32) and ~1e-305 (float64): thousands of
# rounding allowances at step 0's grads.w1 (float64 1e12), then in adam.mu (mu = 0.1 g is subnormal where g is
# barely normal) and in the update, which divides mu by the denominator (>= eps). Z_q counts generously (a bound on
# the count, not an estimate): at ~1e-36 / ~1e-305 absolute, times at most lr / (bc1 eps) ~ 2e8 in the update, the
# term is harmless wherever a quantity is not itself that small. Per quantity (FLUSH_FACTOR = 2 for the gradient
# check's lambda, applied to the count as to the rounding):
#   data 1 (a cast); params 3 (p + update and both inputs); pre_activation 3 + |x| + |w1| (w1's flush times x,
#   x's times w1, the product, b1, the sum); hidden grad_error.SIGMOID_FLUSHES (its input's flush carried by
#   s' <= 1/4); output 3H + 2 + sum |w2| (H products, H + 1 additions, each s_j's flush times |w2_j|, each w2_j's
#   times s_j <= 1); residual 3; loss sum_n (2 |r_n| + 3) + 1 (r_n's flush times 2 |r_n| in r^2, the square, the sum,
#   not divided by N whatever the order, the mean); grads grad_error.underflow_scale; adam.mu 5 (both inputs, two
#   products, the sum: factors b1, 1 - b1 <= 1); adam.nu 5 + 2 |g| (g's flush times 2 |g| in g^2); update
#   4 (1 + lr / bc1)(1 + 1 / d), d = sqrt(nu / bc2) + eps (mu's flush carried by lr / (bc1 d), then mu / bc1, the
#   division and * lr). The denominator's own flushes (nu's and nu / bc2's, < 2 t / bc2 under the root) move d by
#   < sqrt(2 t / bc2) <= 4.9e-18 (float32, bc2 >= 1e-3; float64 6.7e-153), under 1% of one rounding of d >= eps:
#   they are inside the update's rounding allowance (UPDATE_OPS times FACTOR 2) and not counted again.
FLUSH_FACTOR = grad_error.ROUNDING_FACTOR
UNDERFLOW = {"data": 1.0, "params": 3.0, "forward.hidden": float(grad_error.SIGMOID_FLUSHES), "forward.residual": 3.0,
             "adam.count": 0.0, "adam.mu": 5.0, "adam.nu": 5.0}


def pre_activation_flushes(x, w1):
    """Z of x @ w1 + b1 (UNDERFLOW's comment), broadcast: x (N, 1), w1 (..., 1, H) -> (..., N, H)."""
    return 3 + np.abs(x) + np.abs(w1)


def output_flushes(w2):
    """Z of hidden @ w2 + b2 (UNDERFLOW's comment): 3H + 2 + sum |w2| over w2's last two axes ((..., H, 1))."""
    h = np.shape(w2)[-2]
    return 3 * h + 2 + np.sum(np.abs(w2), axis=(-2, -1))


def loss_flushes(res):
    """Z of mean(r^2) (UNDERFLOW's comment): sum_n (2 |r_n| + 3) + 1 over res's last two axes ((..., N, 1))."""
    return np.sum(2 * np.abs(res) + 3, axis=(-2, -1)) + 1


def nu_flushes(g):
    """Z of b2 nu + (1 - b2) g^2 (UNDERFLOW's comment), elementwise."""
    return UNDERFLOW["adam.nu"] + 2 * np.abs(g)


def update_flushes(lr: float, bc1, denominator):
    """Z of Adam's update -lr (mu / bc1) / denominator (UNDERFLOW's comment), elementwise."""
    return 4 * (1 + lr / bc1) * (1 + 1 / denominator)


def _family(name: str) -> str:
    """FACTOR's key for a quantity: params.w1 -> params, adam.mu.b2 -> adam.mu, forward.* and loss themselves."""
    head = name.rpartition(".")[0]
    return head if head in ("data", "params", "grads", "update", "adam.mu", "adam.nu") else name


def _f64(record: Record) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in record.tensors.items()}


def sigmoid(h):
    """The logistic function in float64, without overflow for large |h|."""
    return np.exp(-np.logaddexp(0.0, -h))


def bias_correction_error(decay: float, count) -> np.ndarray:
    """|d(1 - b^t)| / (1 - b^t) in units of u: b rounded (relative u), b^t (t u, plus the power's own few ulps),
    then 1 - b^t, which magnifies b^t's error by b^t / (1 - b^t) (optax computes it in the run's precision: in float32
    6.6e-6 to 2e-5 relative at t <= 201, docs/numerics.md)."""
    power = decay ** np.asarray(count, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(power < 1, power * (count + 2) / (1 - power), 0.0)


def adam_update(mu, nu, count, lr: float):
    """Adam's update -lr (mu / bc1) / (sqrt(nu / bc2) + eps), bc = 1 - b^count (float64; count broadcast on the
    step axis)."""
    t = np.asarray(count, np.float64).reshape((-1,) + (1,) * (np.ndim(mu) - 1))
    return -lr * (mu / (1 - B1**t)) / (np.sqrt(nu / (1 - B2**t)) + EPS)


def _first_only(f):
    """f at the first kept step, NaN (not judged) after it: with --record-every K > 1 the step before is not kept."""
    return np.concatenate([f[:1], np.full_like(f[1:], np.nan)])


def _steps_axis(a, ndim):
    return np.asarray(a).reshape((-1,) + (1,) * (ndim - 1))


def expected(r: dict, name: str, lr: float, every: int):
    """(f(inputs), S_q, Z_q) for quantity `name` from one record's float64 tensors r (data.x, data.y given the step
    axis): f of the recorded inputs (NaN where it is not judged: the bound is then the difference itself), S_q its
    magnitudes, Z_q its flushes (UNDERFLOW). All with the step as the leading axis (Z_q broadcasts to it)."""
    x, y = r["data.x"][0], r["data.y"][0]
    w1, b1, w2, b2 = (r[f"params.{p}"] for p in PARAM_NAMES)
    pre_scale = np.abs(x)[None] * np.abs(w1) + np.abs(b1)[:, None, :]  # (T, N, H)
    if name.startswith("data."):  # the experiment's data, the same in both records: nothing carried in
        return np.zeros_like(r[name]), np.abs(r[name]), UNDERFLOW["data"]
    if name.startswith("params."):
        p = r[name]
        upd = r["update." + name.split(".")[1]]
        # step 0: the experiment's initial weights, the same in both records (f = 0: nothing carried in)
        prev = np.concatenate([np.zeros_like(p[:1]), p[:-1] + upd[:-1]])
        scale = np.abs(p) + np.abs(np.concatenate([np.zeros_like(upd[:1]), upd[:-1]]))
        return (prev if every == 1 else _first_only(prev)), scale, UNDERFLOW["params"]
    if name == "forward.pre_activation":
        return x[None] * w1 + b1[:, None, :], pre_scale, pre_activation_flushes(x[None], w1)
    s = r["forward.hidden"]
    ds = s * (1 - s)
    s_scale = s + ds * pre_scale + 1.0  # an absolute u besides: sigmoid kernels built on tanh round 0.5 + 0.5 tanh
    if name == "forward.hidden":
        return sigmoid(r["forward.pre_activation"]), s_scale, UNDERFLOW["forward.hidden"]
    out_scale = (np.sqrt(s.shape[-1]) * (s @ np.abs(w2)) + s_scale @ np.abs(w2)) + np.abs(b2)[:, None, :]
    if name == "forward.output":
        return s @ w2 + b2[:, None, :], out_scale, output_flushes(w2)[:, None, None]
    res = r["forward.residual"]
    res_scale = out_scale + np.abs(y)[None] + np.abs(res)
    if name == "forward.residual":
        return r["forward.output"] - y[None], res_scale, UNDERFLOW["forward.residual"]
    if name == "loss":
        n = res.shape[1]
        loss_scale = (np.sqrt(n) * np.mean(res**2, axis=(1, 2)) + np.mean(2 * np.abs(res) * res_scale, axis=(1, 2))
                      + U["float32"] * np.mean(res_scale**2, axis=(1, 2)))
        return np.mean(res**2, axis=(1, 2)), loss_scale, loss_flushes(res)
    if name.startswith("grads."):
        c = 2.0 / res.shape[1]
        rr = np.swapaxes(res, 1, 2)  # (T, 1, N)
        formula = {"w2": c * np.swapaxes(rr @ s, 1, 2), "b2": c * np.sum(res, axis=1),
                   "b1": c * w2[..., 0] * (rr @ ds)[:, 0], "w1": c * w2[..., 0][:, None, :] * ((rr * x.T[None]) @ ds)}
        key = name.split(".")[1]
        if "grad_scales" not in r:  # grad_error's rounding and underflow scales at every step, once for the four
            at = [{p: r[f"params.{p}"][t] for p in PARAM_NAMES} for t in range(res.shape[0])]
            for field, scale in (("grad_scales", grad_error.rounding_scale),
                                 ("grad_flushes", grad_error.underflow_scale)):
                scales = [scale(params, x, y, "mse") for params in at]
                r[field] = {p: np.stack([s[p] for s in scales]) for p in PARAM_NAMES}
        return formula[key], r["grad_scales"][key], r["grad_flushes"][key]
    if name == "adam.count":
        return r["step"] + 1, np.zeros_like(r[name]), UNDERFLOW["adam.count"]  # Adam's count after step t is t + 1
    if name.startswith(("adam.mu.", "adam.nu.")):
        moment, key = name.split(".")[1], name.split(".")[2]
        g, m = r[f"grads.{key}"], r[name]
        decay, term = (B1, g) if moment == "mu" else (B2, g * g)
        prev = np.concatenate([np.zeros_like(m[:1]), m[:-1]])
        scale = decay * np.abs(prev) + (1 - decay) * np.abs(term) + np.abs(m)
        f = decay * prev + (1 - decay) * term
        flushes = UNDERFLOW["adam.mu"] if moment == "mu" else nu_flushes(g)
        return (f if every == 1 else _first_only(f)), scale, flushes
    if name.startswith("update."):
        key = name.split(".")[1]
        count, upd, p = r["adam.count"], r[name], r[f"params.{key}"]
        ops = UPDATE_OPS + _steps_axis(bias_correction_error(B1, count) + bias_correction_error(B2, count) / 2,
                                       upd.ndim)
        mu, nu = r[f"adam.mu.{key}"], r[f"adam.nu.{key}"]
        t = _steps_axis(count, upd.ndim).astype(np.float64)
        flushes = update_flushes(lr, 1 - B1**t, np.sqrt(nu / (1 - B2**t)) + EPS)
        return adam_update(mu, nu, count, lr), np.abs(upd) * ops + np.abs(p + upd), flushes
    raise KeyError(name)


class Crossing(NamedTuple):
    step: int  # the run's step (the record's "step" entry)
    quantity: str
    index: tuple  # the element inside the quantity's per-step tensor
    a: float
    b: float
    diff: float
    bound: float
    ratio: float  # diff / bound; > 1 (or NaN: inf) is a crossing
    carried: float  # the part of the bound carried in from the quantities before (|f(in_A) - f(in_B)|)


class Walk(NamedTuple):
    steps: np.ndarray  # (T,) the recorded steps
    # quantity -> (T,) the largest share of the rounding allowance used beyond the carried difference, (diff -
    # carried) / (bound - carried), over its elements at each step (data: at step 0); > 1 exactly where diff > bound
    shares: dict
    first: Crossing | None  # the first crossing in computation order, None when the runs agree


def walk(a: Record, b: Record) -> Walk:
    """Every quantity's difference against its bound (module docstring), and the first crossing. The records must be
    of one experiment (records.mismatch is None): the caller refuses others."""
    lr, every = float(a.metadata["experiment"]["lr"]), int(a.metadata["every"])
    u = U[a.metadata["precision"]] + U[b.metadata["precision"]] + U["float64"]
    tiny = TINY[a.metadata["precision"]] + TINY[b.metadata["precision"]] + TINY["float64"]
    ra, rb = _f64(a), _f64(b)
    steps = len(ra["step"])
    for r in (ra, rb):  # the data as a quantity of the first step (the same at every step)
        r["data.x"], r["data.y"] = (np.broadcast_to(r[k], (steps, *r[k].shape)) for k in ("data.x", "data.y"))
    shares, worst = {}, {}
    for name in STEP_ORDER:
        with np.errstate(all="ignore"):  # a diverged run's inf and NaN go through f as they are, without warnings
            (fa, sa, za), (fb, sb, zb) = expected(ra, name, lr, every), expected(rb, name, lr, every)
        va, vb = ra[name], rb[name]
        # a diverged run's inf and NaN (compare.py records them): equal values, the same inf or NaN on both sides,
        # are no difference, whatever the bound (inf - inf is NaN there)
        same = (va == vb) | (np.isnan(va) & np.isnan(vb))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            diff = np.where(same, 0.0, np.abs(va - vb))
            carried = np.where(np.isnan(fa) | np.isnan(fb), diff, np.abs(fa - fb))  # not judged: the difference
            # the rounding allowance, and the underflow term's (UNDERFLOW), ~1e-36 / ~1e-305 absolute
            rounding = FACTOR[_family(name)] * u * np.maximum(sa, sb) + FLUSH_FACTOR * tiny * np.maximum(za, zb)
            bound = carried + rounding
            # the share of the rounding allowance the difference uses beyond what was carried in: > 1 exactly where
            # diff > bound (a difference carried in whole reads 0, not 1)
            ratio = np.where(diff <= carried, 0.0, (diff - carried) / rounding)
        ratio = np.where(same, 0.0, np.where(np.isnan(diff) | np.isnan(bound), np.inf, ratio))
        if name.startswith("data."):
            ratio = np.concatenate([ratio[:1], np.zeros_like(ratio[1:])])
        flat = ratio.reshape(steps, -1)
        shares[name] = flat.max(axis=1)
        worst[name] = (flat.argmax(axis=1), va, vb, diff, bound, carried)
    first = None
    order = np.array([shares[n] for n in STEP_ORDER])  # (Q, T)
    crossed = np.argwhere((order > 1).T)  # (step, quantity) pairs in step-major, then computation, order
    if len(crossed):
        t, q = crossed[0]
        name = STEP_ORDER[q]
        flat_index, va, vb, diff, bound, carried = worst[name]
        shape = np.shape(va)[1:]
        i = int(flat_index[t])
        pick = lambda v: float(np.asarray(v)[t].ravel()[i])  # noqa: E731
        ratio = pick(diff) / pick(bound) if pick(bound) > 0 else float("inf")
        first = Crossing(int(ra["step"][t]), name, tuple(int(k) for k in np.unravel_index(i, shape)), pick(va),
                         pick(vb), pick(diff), pick(bound), ratio if ratio == ratio else float("inf"), pick(carried))
    return Walk(a.tensors["step"], shares, first)


def recorded_pair(params, x, y, lr: float, *, steps: int, every: int = 1) -> dict:
    """{"jax": ..., "torch": ...}: both frameworks' recorded Adam runs (jax_impl/core/record.py, the twin's
    torch_impl/twin/record.py) from the same weights and data, in x's dtype; the recorders' arrays (numpy)."""
    import jax.numpy as jnp
    import torch

    from jax_impl.core import record
    from torch_impl.twin.record import recorded_run

    ours = record.recorded_run(params, x, y, jnp.asarray(lr, x.dtype), steps=steps, every=every)
    numpy = {k: np.asarray(v) for k, v in params.items()}
    dtype = torch.float64 if x.dtype == jnp.float64 else torch.float32
    theirs = recorded_run(numpy, np.asarray(x), np.asarray(y), lr, steps=steps, every=every, dtype=dtype)
    return {"jax": {k: np.asarray(v) for k, v in ours.items()}, "torch": theirs}
