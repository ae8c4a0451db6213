"""The notebook's gradient validation: the loss gradient four ways, each held against jax.grad by the error model
(grad_error.py), and the report (scripts/validate_grads.py).

    manual       the validation cell's hand-derived formulas (jax_grads.manual_grads, in JAX)
    jax          jax.grad of the loss (jax_grads.jax_grads: model.value_and_grad, the reference)
    torch        torch autograd through the twin (torch_grads.torch_grads)
    finite_diff  central differences in NumPy float64 (jax_grads.finite_difference_grads, step FD_EPS)

Layout as model.py: w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,); x, y: (N, 1). Losses: "sse" (the validation cell's)
or "mse" (the training loss).
"""

import numpy as np

from jax_impl.core.layout import PARAM_NAMES, param_shapes
from torch_impl.checks import grad_error
from torch_impl.checks import jax_grads as grads
from torch_impl.checks.precision import full_float32
from torch_impl.checks.torch_grads import torch_grads

METHODS = ("manual", "jax", "torch", "finite_diff")
REFERENCE = "jax"
NOTEBOOK_NAMES = {"w2": "W2", "b2": "b2", "w1": "W1", "b1": "b1"}  # the cell prints W2, b2, W1, b1 in this order


def random_params(key, hidden: int, dtype):
    """N(0, 1) weights in the validation cell's layout and order: randn(1,H), randn(H), randn(H,1), randn(1).

    Drawn in float32 and cast, so that a float64 check starts from the float32 one's numbers (model.DRAW_DTYPE)."""
    import jax

    from jax_impl.core.model import DRAW_DTYPE

    shapes = param_shapes(hidden)
    keys = dict(zip(PARAM_NAMES, jax.random.split(key, 4)))
    return {name: jax.random.normal(keys[name], shapes[name], DRAW_DTYPE).astype(dtype) for name in PARAM_NAMES}


def inputs(*, params=None, params_file=None, torch_seed=None, seed=None, hidden=None, dtype):
    """(params, x, y, where the weights come from, in words) for validate_grads.py's flags, JAX arrays in dtype.
    The data: data.run_data's (the notebook's, or torch's draw after torch.manual_seed(torch_seed)). The weights:
    `params` (numpy, the port's layout, read from params_file); or the validation cell's after
    torch.manual_seed(torch_seed); else random_params from jax.random.key(seed or 0). Width `hidden` (default 20)."""
    import jax
    import jax.numpy as jnp

    from jax_impl.core import data, torch_rng

    x, y = data.run_data(torch_seed=torch_seed, dtype=dtype)
    if params is not None:
        return {k: jnp.asarray(v, dtype) for k, v in params.items()}, x, y, str(params_file)
    if torch_seed is not None:
        drawn = torch_rng.validation_draw(torch_seed, hidden or 20)
        source = f"the validation cell's weights after torch.manual_seed({torch_seed})"
        return {k: jnp.asarray(v, dtype) for k, v in drawn.items()}, x, y, source
    seed = seed or 0
    return random_params(jax.random.key(seed), hidden or 20, dtype), x, y, f"N(0, 1) draw from jax.random.key({seed})"


def nonfinite_problem(params, x, y, loss: str) -> str | None:
    """None if the loss and jax.grad's gradient (the reference, in the weights' dtype) are finite at these weights;
    else what is not, in words. Weights so large that the loss overflows (|w| ~ 1e300 in float64, ~1e18 in float32)
    have no gradient to check: every method would give inf or NaN, the error model's sums would overflow, and the
    report would be a NaN mismatch and numpy warnings instead of a refusal."""
    from jax_impl.core import model

    (value, _), gradient = model.value_and_grad(params, x, y, loss)
    if not np.isfinite(float(value)):
        return (f"the loss at these weights is not finite ({loss} = {float(value)} in {value.dtype}): the check "
                "needs finite gradients")
    for name in PARAM_NAMES:
        if not np.all(np.isfinite(np.asarray(gradient[name]))):
            return (f"the gradient at these weights is not finite ({name} in {gradient[name].dtype}): the check "
                    "needs finite gradients")
    return None


def all_methods(params, x, y, loss: str) -> dict:
    """{method: {tensor: numpy array}} for the four methods, the JAX side at "highest" matmul precision and torch with
    TF32 off (what a GPU would otherwise change)."""
    with full_float32():
        results = {"manual": grads.manual_grads(params, x, y, loss), "jax": grads.jax_grads(params, x, y, loss),
                   "torch": torch_grads(params, x, y, loss),
                   "finite_diff": grads.finite_difference_grads(params, x, y, loss)}
        return {m: {k: np.asarray(v) for k, v in results[m].items()} for m in METHODS}


def check(results: dict, params, x, y, loss: str, dtype: str) -> tuple[dict, dict]:
    """Each method against jax.grad: (allowances {method: {tensor: array}}, report {method: grad_error.compare}).

    manual, torch: both sides' rounding; finite_diff: jax.grad's rounding plus the differences' own error (their
    truncation estimated from a second run at twice the step)."""
    # Weights whose loss is finite but near float64's limit (|w2| ~ 1e150) make the model's sums of magnitudes
    # overflow: an infinite allowance, which the report names ("cannot judge"), not a warning on stderr.
    with np.errstate(over="ignore"):
        rounding = grad_error.rounding_allowance(params, x, y, loss, dtype)
        fd_2h = grads.finite_difference_grads(params, x, y, loss, eps=2 * grads.FD_EPS)
        fd = grad_error.finite_difference_allowance(results["finite_diff"], fd_2h, params, x, y, loss, grads.FD_EPS)
    allowances = {"manual": {k: 2 * v for k, v in rounding.items()},
                  "torch": {k: 2 * v for k, v in rounding.items()},
                  "finite_diff": {k: rounding[k] + fd[k] for k in PARAM_NAMES}}
    report = {m: grad_error.compare(results[m], results[REFERENCE], allowances[m]) for m in allowances}
    return allowances, report


def table(report: dict) -> str:
    """Per tensor and method: the largest absolute difference, the worst entry, its allowance, the difference in
    units of it (<= 1 agrees)."""
    lines = [f"{'tensor':<7}{'method':<13}{'max abs diff':>14}{'worst entry':>13}{'its allowance':>15}"
             f"{'units':>10}  ok"]
    for name in PARAM_NAMES:
        for method, by_name in report.items():
            d = by_name[name]
            ok = "yes" if d["units"] <= 1 else "NO"
            worst = f"[{d['worst']}]"
            lines.append(f"{name:<7}{method:<13}{d['max_abs']:>14.2e}{worst:>13}{d['allowance']:>15.2e}"
                         f"{d['units']:>10.3f}  {ok}")
    return "\n".join(lines)


def notebook_style(results: dict) -> str:
    """Each method's gradients printed as the validation cell prints them: torch's tensor format, W2, b2, W1, b1."""
    import torch

    lines = []
    for name, label in NOTEBOOK_NAMES.items():
        for method, values in results.items():
            lines.append(f"{label}.grad [{method}]:{torch.from_numpy(np.array(values[name]))}")
        lines.append("")
    return "\n".join(lines)


def text_report(results, report, allowances, *, loss: str, source: str, dtype: str, points: int) -> list[str]:
    """The check in lines: what was compared, the table, the entries a method cannot judge, the verdict."""
    hidden = results[REFERENCE]["b1"].shape[0]
    bad = grad_error.mismatches(report)
    lines = [f"gradient of {loss} at {source}: hidden {hidden}, {dtype}, {points} points; each method against "
             f"jax.grad, in units of the error model's allowance (checks/grad_error.py; <= 1 agrees)", table(report)]
    lines += [f"note: {method} cannot judge {', '.join(names)} here: its allowance exceeds the gradient itself"
              for method, names in grad_error.unjudged(allowances, results[REFERENCE]).items()]
    return lines + ["all four agree within their allowances" if not bad else "MISMATCH: " + "; ".join(bad)]


def json_report(params, results, report, allowances, *, loss: str, source: str, dtype: str, points: int) -> dict:
    """The check as JSON: the weights, every method's gradients and allowances, the report, the verdict."""
    bad = grad_error.mismatches(report)
    return {"loss": loss, "dtype": dtype, "hidden": int(params["b1"].shape[0]), "points": points, "params": source,
            "weights": {k: np.asarray(v).tolist() for k, v in params.items()},
            "reference": REFERENCE, "fd_eps": grads.FD_EPS, "rounding_factor": grad_error.ROUNDING_FACTOR,
            "grads": {m: {k: v.tolist() for k, v in results[m].items()} for m in METHODS},
            "allowances": {m: {k: v.tolist() for k, v in a.items()} for m, a in allowances.items()},
            "report": report, "mismatches": bad, "unjudged": grad_error.unjudged(allowances, results[REFERENCE]),
            "ok": not bad}
