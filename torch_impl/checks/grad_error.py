"""How far two correct computations of the loss gradient may differ: the error model of the gradient check.

Two correct gradients differ only by rounding (and, for finite differences, by truncation). The model, per entry k
of each tensor, for a method computing in a precision of unit roundoff u (2^-24 float32, 2^-53 float64) on N points:

    |g_method[k] - g_exact[k]|  <=  ROUNDING_FACTOR * sqrt(N) * u * M[k]

M[k] (`rounding_scale`) is the gradient's formula evaluated on magnitudes: every term of every sum in absolute value,
every factor replaced by its own rounding-error scale. A sum's rounding scales with the sum of its terms' absolute
values (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., sec. 4.2), a difference a - b with
|a| + |b|, and an error in a factor carries through the product. The sqrt(N) is how the rounding of a sum of N terms
grows when its errors are independent (Higham and Mary, SIAM J. Sci. Comput. 41 (2019) A2815: lambda sqrt(n) u).
So the allowance is large exactly where the gradient is a sum of large terms that cancel (near a minimum: for b2 at
the trained weights the terms' absolute sum is ~1,700 times the result, and each residual r = prediction - y carries
the rounding of a prediction and a y several times larger), and where a saturated sigmoid's derivative s (1 - s) is
computed from an s that rounds to 1.

Finite differences (float64, central, step h) are off by their truncation, h^2 / 6 * f''', estimated from the same
differences at step 2h as |D(2h) - D(h)| / 3, plus the rounding of the two losses over the step, where F is the loss
evaluated on magnitudes in the same way: ROUNDING_FACTOR * u64 * (FD_LOSS_WEIGHT * F / h + FD_STEP_WEIGHT * M[k]).
The M[k] term is the rounding the residuals carry at w +- h: there |r| is up to |r| + h |dr/dw_k|, so the losses'
rounding does not vanish with F where the loss is zero (a trained one- or two-point fit): it is what is left of the
difference then, besides the truncation.

The loss itself (`loss_rounding_allowance`, the trajectory cross-check's floor, checks/compare.py): a computed loss is
within ROUNDING_FACTOR * u * (F + ROUNDING_FACTOR * u * c sum r_err^2) of the exact loss of its weights: the first
order of each residual's rounding (F), and its square, which is all that is left where a residual is exactly zero.

Two methods A and B are compared entry by entry against allowance_A + allowance_B; the report gives |A - B| in units
of that allowance (<= 1 agrees). Besides rounding, an operation may flush a subnormal to zero (XLA:CPU does, torch
does not): an absolute error below the smallest normal number, carried by the factors after it (underflow_scale).
Layout as model.py: w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,); x, y: (N, 1).
"""

import numpy as np

from jax_impl.core.layout import PARAM_NAMES

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
# The smallest normal number of each precision. XLA:CPU flushes a subnormal result or input to zero (jax's 1e-37 *
# 0.01 is 0 in float32, 1e-300 * 1e-10 in float64; torch and NumPy keep it), so besides its relative rounding every
# operation may be off by up to this much, absolutely: the underflow term of the model (underflow_scale).
SMALLEST_NORMAL = {"float32": 2.0**-126, "float64": 2.0**-1022}

# lambda in the model above. Measured over the 54 states of tests/test_grad_error.py (the notebook's validation and
# initial weights; N(0, 1) draws at widths 1-256; weights trained 10, 100, 201 steps by Adam and SGD at widths 1-64;
# saturated units |w1| in [50, 100]; zero output layers), manual, torch and finite differences against jax.grad
# (Intel Xeon, jax 0.10.2, torch 2.13.0): with lambda = 1 the worst difference was 0.27 of the pair's allowance
# (float32; a zero output layer's w2, a sum of 100 same-sign terms), finite differences 0.48 of jax.grad's own. 2 leaves
# 4x to the worst for other CPUs' kernels and summation orders. Re-measured with train.fit by autodiff, lambda = 2:
# worst 0.13 of the allowance in float32, 0.16 in float64 (torch, a zero output layer's w2). Sharpness: at the median
# state the allowance is ~1e-5 of an entry in float32 (~2e-14 in float64), so a planted 1e-3 (1e-9) error is caught;
# at the notebook's fully trained weights (201 Adam steps) the gradient is a near-cancelling sum, and float32 resolves
# it only to ~1e-3.
ROUNDING_FACTOR = 2.0

# How the losses' rounding enters finite differences with their truncation estimate. D(h) = g + T + e1, D(2h) = g + 4T
# + e2 (T = h^2 f''' / 6; |e1| <= ROUNDING_FACTOR u64 (F / h + M[k]), |e2| <= ROUNDING_FACTOR u64 (F / (2h) + M[k]):
# each loss within its rounding of F at w +- h, which is at most F + h M[k]). Then |D(h) - g| <= |D(2h) - D(h)| / 3
# + (4/3) |e1| + (1/3) |e2|: e1 once in D(h) and a third of it again in the estimate, e2 a third. F / h: 4/3 + 1/6;
# M[k]: 4/3 + 1/3. (The estimate's own h^4 error, relative h^2 ~ 1e-10 of T, is left out.) Before these weights the
# allowance took F / h once and no M: at a zero loss (one or two points, trained) F = 0 and the truncation estimate
# matched the difference to 2e-4 of it, so the verdict hung on rounding (measured 0.9998 units at worst).
FD_LOSS_WEIGHT = 3 / 2
FD_STEP_WEIGHT = 5 / 3


def _sigmoid(h):
    """sigmoid and its complement 1 - sigmoid, each accurate (no overflow for large |h|)."""
    return np.exp(-np.logaddexp(0.0, -h)), np.exp(-np.logaddexp(0.0, h))


def _magnitudes(params, x, y, loss: str):
    """The forward pass in float64 and each quantity's rounding-error scale (in units of u)."""
    w1, b1, w2, b2 = (np.asarray(params[k], np.float64) for k in PARAM_NAMES)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    h_err = np.abs(x) @ np.abs(w1) + np.abs(b1)  # (N, H): h = x w1 + b1
    s, one_minus_s = _sigmoid(x @ w1 + b1)
    ds = s * one_minus_s  # sigmoid'(h)
    s_err = s + ds * h_err  # exp and division (relative to s), plus h's error carried through sigmoid'
    ds_err = s_err + ds * (2 + h_err)  # s (1 - s) from a rounded s; the notebook's exp(-h)/(1+exp(-h))^2 alike
    r = s @ w2 + b2 - y  # (N, 1)
    hidden = w2.shape[0]
    # the H-term sum's own rounding (sqrt(H) growth), its terms' errors, then + b2 - y
    r_err = np.sqrt(hidden) * (s @ np.abs(w2)) + s_err @ np.abs(w2) + np.abs(b2) + np.abs(y) + np.abs(r)
    scale = 2.0 if loss == "sse" else 2.0 / y.size  # df/dprediction = scale * r
    return x, w2, s, s_err, ds, ds_err, np.abs(r), r_err, scale


def rounding_scale(params, x, y, loss: str = "sse") -> dict[str, np.ndarray]:
    """M[k] = sqrt(N) * S[k] + P[k] for each gradient entry (see the module docstring): S is the sum over the N points
    of the terms' magnitudes (the final sum's own rounding grows with sqrt(N)), P the errors its terms carry in from
    the forward pass (bounded by the sum of their magnitudes).

    The exact gradient, for reference: dw2 = c s^T r, db2 = c sum r, db1 = c w2 * (s'^T r), dw1 = c w2 * (s'^T (x r)),
    with c = 2 (sse) or 2/N (mse). Returns float64 arrays in the parameters' shapes.
    """
    x, w2, s, s_err, ds, ds_err, r, r_err, c = _magnitudes(params, x, y, loss)
    aw2, ax, root_n = np.abs(w2[:, 0]), np.abs(x), np.sqrt(x.shape[0])
    return {
        "w1": (c * aw2 * (root_n * (ds.T @ (ax * r))[:, 0] + (ds.T @ (ax * r_err))[:, 0]
                          + (ds_err.T @ (ax * r))[:, 0]))[None, :],
        "b1": c * aw2 * (root_n * (ds.T @ r)[:, 0] + (ds.T @ r_err)[:, 0] + (ds_err.T @ r)[:, 0]),
        "w2": c * (root_n * (s.T @ r) + s.T @ r_err + s_err.T @ r),
        "b2": np.array([c * float(root_n * np.sum(r) + np.sum(r_err))]),
    }


def loss_rounding_scale(params, x, y, loss: str = "sse") -> float:
    """F: the loss on magnitudes, sqrt(N) sum r^2 + sum 2 |r| r_err (over N for mse); its rounding is ~u * F."""
    *_, r, r_err, _ = _magnitudes(params, x, y, loss)
    total = float(np.sqrt(r.size) * np.sum(r**2) + np.sum(2 * r * r_err))
    return total if loss == "sse" else total / r.size


def loss_rounding_allowance(params, x, y, loss: str, dtype: str, *, sides: int = 1, drift: float = 0.0) -> float:
    """How far a correct loss computed in `dtype` may be from the exact loss of its weights: ROUNDING_FACTOR * u *
    (F + ROUNDING_FACTOR * u * c sum r_err^2), c = 1 (sse) or 1/N (mse). A computed residual is r + d with |d| <=
    ROUNDING_FACTOR * u * r_err, so its square is off by 2 |r| |d| (in F) plus d^2: where the loss is zero (a fit
    through one or two points) d^2 is the whole difference, an absolute floor that no relative tolerance gives.

    sides: how many independently rounded losses are compared (2: two frameworks' losses, each rounded on its own);
    drift: how far, per residual and in units of r_err, two runs' residuals may have drifted apart besides (the
    trajectory check's measured Tolerance.drift). Each residual then spreads by e = (sides * ROUNDING_FACTOR * u +
    drift) * r_err, and the loss by c sum (2 |r| e + e^2), plus the sums' own rounding, sides * ROUNDING_FACTOR * u *
    sqrt(N) c sum r^2."""
    factor = ROUNDING_FACTOR * UNIT_ROUNDOFF[dtype]
    *_, r, r_err, _ = _magnitudes(params, x, y, loss)
    c = 1.0 if loss == "sse" else 1.0 / r.size
    spread = (sides * factor + drift) * r_err
    return c * float(sides * factor * np.sqrt(r.size) * np.sum(r**2) + np.sum(2 * r * spread + spread**2))


# How many flushes each gradient term's factor carries in from its own computation (underflow_scale): a sigmoid or
# its derivative, as any method computes it: h = x w1 + b1 (2 operations, carried through sigmoid' <= 1/4), then at
# most 6 more (the manual cell's |h|, negation, exp, 1 +, square, division), and the input's own flush: 9.
SIGMOID_FLUSHES = 9


def underflow_scale(params, x, y, loss: str = "sse") -> dict[str, np.ndarray]:
    """U[k], the gradient's exposure to flushed subnormals, in units of SMALLEST_NORMAL: the allowance adds
    ROUNDING_FACTOR * SMALLEST_NORMAL * U[k] to the rounding (rounding_allowance).

    Each entry is a sum over the N points of a term of m factors f (dw1: c, w2, s', x, r; db1: c, w2, s', r; dw2: c,
    s, r; db2: c, r). Each of its m - 1 products and its addition into the sum may flush (off by < SMALLEST_NORMAL),
    and each factor arrives off by a_f flushes of its own (an input 1, as XLA also flushes subnormal inputs; s or s'
    SIGMOID_FLUSHES; r its forward pass's H products and H + 1 additions, each s_j's flush carried by |w2_j|, and its
    input: 2H + 3 + sum |w2|). A flush's error is carried by the factors applied after it, each at most 1 + |f|, in
    whatever order a method multiplies: U[k] = sum_n (m + sum_f a_f) prod_f (1 + |f_n|). That is generous (a bound on
    the count, not an estimate) and harmless: ~1e-36 in float32, ~1e-305 in float64, it matters only where the entry
    is itself so small that flushing reaches it: a unit saturated into the subnormals at every point (float32 |h| in
    ~[80, 104], float64 ~[700, 745]), where jax.grad dropped terms torch kept: up to 1e-36 apart in float32 (3e4
    allowances without this term; float64 3e12), the states "saturated into subnormals" of tests/test_grad_error.py.
    Returns float64 arrays in the parameters' shapes."""
    x, w2, s, _, ds, _, r, _, c = _magnitudes(params, x, y, loss)
    carried = 2 * w2.shape[0] + 3 + float(np.sum(np.abs(w2)))  # a_r
    sig = SIGMOID_FLUSHES
    x1, r1, w2_1, s1, ds1 = 1 + np.abs(x), 1 + r, 1 + np.abs(w2[:, 0]), 1 + s, 1 + ds
    return {  # per tensor: m + the inputs' single flushes (c, w2, x) + s or s' + r, times the factors' products
        "w1": ((5 + 3 + sig + carried) * (1 + c) * w2_1 * (ds1.T @ (x1 * r1))[:, 0])[None, :],
        "b1": (4 + 2 + sig + carried) * (1 + c) * w2_1 * (ds1.T @ r1)[:, 0],
        "w2": (3 + 1 + sig + carried) * (1 + c) * (s1.T @ r1),
        "b2": np.array([(2 + 1 + carried) * (1 + c) * float(np.sum(r1))]),
    }


def rounding_allowance(params, x, y, loss: str, dtype: str) -> dict[str, np.ndarray]:
    """ROUNDING_FACTOR * (u * M + SMALLEST_NORMAL * U): how far a correct gradient computed in `dtype` may be from the
    exact one (rounding_scale, underflow_scale)."""
    factor = ROUNDING_FACTOR * UNIT_ROUNDOFF[dtype]
    flush = ROUNDING_FACTOR * SMALLEST_NORMAL[dtype]
    underflow = underflow_scale(params, x, y, loss)
    return {k: factor * v + flush * underflow[k] for k, v in rounding_scale(params, x, y, loss).items()}


def finite_difference_allowance(fd_h: dict, fd_2h: dict, params, x, y, loss: str, step: float) -> dict:
    """How far float64 central differences at step h may be from the exact gradient: the truncation, estimated from
    the same differences at 2h as |D(2h) - D(h)| / 3 (both are off by ~c h^2, so D(h) by a third of their gap), plus
    the two differences' loss rounding, ROUNDING_FACTOR * u64 * (FD_LOSS_WEIGHT * F / h + FD_STEP_WEIGHT * M[k]) (see
    FD_LOSS_WEIGHT). fd_h, fd_2h: grads.finite_difference_grads at h and 2h.

    An entry so large that w +- h rounds back to w has no step: its allowance is infinite (nothing to check there).
    """
    factor = ROUNDING_FACTOR * UNIT_ROUNDOFF["float64"]
    losses = FD_LOSS_WEIGHT * loss_rounding_scale(params, x, y, loss)
    carried = rounding_scale(params, x, y, loss)
    out = {}
    for k in PARAM_NAMES:
        w = np.asarray(params[k], np.float64)
        half_step = ((w + step) - (w - step)) / 2  # the step actually taken on the float64 grid
        with np.errstate(divide="ignore"):
            out[k] = (np.abs(np.asarray(fd_2h[k]) - np.asarray(fd_h[k])) / 3
                      + factor * (losses / half_step + FD_STEP_WEIGHT * carried[k]))
    return out


def compare(values: dict, reference: dict, allowance: dict) -> dict:
    """One method against the reference, entry by entry: {tensor: {"max_abs", "units", "worst", "diff", "allowance"}}.

    units = the largest |value - reference| / allowance over the tensor's entries, at flat index `worst` (where diff and
    allowance are that entry's). Equal entries are 0 units whatever the allowance (zero against zero agrees); a
    difference against a zero allowance is inf; NaN anywhere gives NaN units, which `mismatches` reports.
    """
    out = {}
    for name in PARAM_NAMES:
        diff = np.abs(np.asarray(values[name], np.float64) - np.asarray(reference[name], np.float64)).ravel()
        allowed = np.asarray(allowance[name], np.float64).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            units = np.where(diff == 0, 0.0, diff / allowed)
        units = np.where(np.isnan(diff), np.nan, units)
        worst = int(np.argmax(np.where(np.isnan(units), np.inf, units)))
        out[name] = {"max_abs": float(np.max(diff)), "units": float(units[worst]), "worst": worst,
                     "diff": float(diff[worst]), "allowance": float(allowed[worst])}
    return out


def mismatches(report: dict) -> list[str]:
    """One line per tensor over its allowance (units > 1) or NaN; report: {method: compare(...)}."""
    return [f"{method} {name}[{d['worst']}]: difference {d['diff']:.2e} is {d['units']:.3g} x its allowance "
            f"{d['allowance']:.2e}"
            for method, by_name in report.items() for name, d in by_name.items()
            if not d["units"] <= 1.0]  # `not <=`: NaN is a mismatch


def unjudged(allowances: dict, reference: dict) -> dict[str, list[str]]:
    """{method: [tensor, ...]} where the method's allowance is at least the reference tensor's largest |entry| at
    every entry: a comparison that could not tell a right gradient from a wrong one (not a disagreement)."""
    out = {}
    for method, by_name in allowances.items():
        names = [name for name in PARAM_NAMES
                 if 0 < np.max(np.abs(reference[name])) <= np.min(np.asarray(by_name[name]))]
        if names:
            out[method] = names
    return out
