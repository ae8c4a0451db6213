"""Down to the operation: re-run one recorded step op by op in both frameworks, at both precisions, from the same
state, and name the first operation whose output differs beyond its bound (scripts/diverge.py --replay).

Each implementation (a record's "implementation": jax, torch, or a planted twin variant, checks/planted.py) is a list
of stages, each one operation of its code: the forward layers, the loss, the gradient (each framework's autodiff),
Adam's moments, count, bias corrections, denominator and update, and the parameters after the update. Both sides
start from record A's state before the step (parameters, moments, count), cast to the precision. A stage's bound is
the localizer's (checks/diverge.py): the difference its inputs carry in, |f(in_A) - f(in_B)| in float64 with each
side's own stage outputs as inputs, plus FACTOR * 2 u * S (both sides' rounding, S the stage's magnitudes), plus
its underflow term FLUSH_FACTOR * 2 t * Z (t the smallest normal number, Z the stage's flushes: diverge.UNDERFLOW).
"""

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jax_impl.core import model
from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files.params_io import InputError
from torch_impl.checks import diverge, grad_error
from torch_impl.checks.diverge import B1, B2, EPS, FACTOR, FLUSH_FACTOR, UNDERFLOW, bias_correction_error, sigmoid
from torch_impl.checks.planted import Bugs, bugs_of, torch_adam, torch_sigmoid

TRANSPOSED = {"w1": True, "b1": False, "w2": True, "b2": False}  # torch's layout is the port's transpose
# What each implementation computes at each stage, for the report.
OPS = {
    "jax": {"forward.pre_activation": "x @ w1 + b1", "forward.hidden": "jax.nn.sigmoid",
            "forward.output": "hidden @ w2 + b2", "forward.residual": "output - y", "loss": "jnp.mean(r ** 2)",
            "grads": "jax.value_and_grad of model.mse_loss", "adam.mu": "optax: (1 - b1) g + b1 mu",
            "adam.nu": "optax: (1 - b2) g^2 + b2 nu", "adam.count": "optax: count + 1",
            "adam.bias_correction": "optax: 1 - b^count in the run's precision",
            "adam.denominator": "optax: sqrt(nu / bc2) + eps (eps outside the root)",
            "update": "optax: -lr (mu / bc1) / denominator", "params.after": "optax.apply_updates: p + update"},
    "torch": {"forward.pre_activation": "nn.Linear (addmm)", "forward.hidden": "torch.sigmoid",
              "forward.output": "nn.Linear (addmm)", "forward.residual": "output - y", "loss": "F.mse_loss",
              "grads": "autograd (loss.backward)", "adam.mu": "torch.optim.Adam: m.lerp_(g, 1 - b1)",
              "adam.nu": "torch.optim.Adam: v.mul_(b2).addcmul_(g, g, value=1 - b2)",
              "adam.count": "torch.optim.Adam: step += 1",
              "adam.bias_correction": "torch.optim.Adam: 1 - b ** step in Python floats (float64)",
              "adam.denominator": "torch.optim.Adam: v.sqrt() / sqrt(bc2) + eps (eps outside the root)",
              "update": "torch.optim.Adam: -(lr / bc1) m / denominator",
              "params.after": "torch.optim.Adam: p.addcdiv_(m, denominator, value=-lr / bc1)"},
}
PLANTED_OPS = {
    "eps_inside_sqrt": {"adam.denominator": "planted: sqrt(v / bc2 + eps), eps inside the square root"},
    "bias_correction_off_by_one": {"adam.bias_correction": "planted: 1 - b ** (step + 1), one step ahead"},
    "lr_one_step_late": {"params.after": "planted: p + the update of the step before (lr applied one step late)"},
    "sigmoid_float32": {"forward.hidden": "planted: torch.sigmoid in float32, cast back"},
}


def describe(implementation: str, stage: str) -> str:
    family = stage if stage in OPS["jax"] else stage.rpartition(".")[0]
    if implementation == "jax":
        return OPS["jax"][family]
    planted = PLANTED_OPS.get(implementation.removeprefix("torch+planted:"), {})
    return planted.get(family, OPS["torch"][family])


# ---- the two frameworks' steps, op by op ------------------------------------------------------------------------

def torch_step(state: dict, x, y, lr: float, dtype: str, bugs: Bugs) -> dict:
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    cast = lambda a: torch.tensor(np.asarray(a), dtype=tdtype)  # noqa: E731
    tl = lambda k, a: cast(a).T.contiguous() if TRANSPOSED[k] else cast(a)  # noqa: E731
    params = {k: tl(k, state[f"params.{k}"]).requires_grad_() for k in PARAM_NAMES}
    x, y = cast(x), cast(y)
    pre = torch.nn.functional.linear(x, params["w1"], params["b1"])
    hidden = torch_sigmoid(pre, bugs)
    output = torch.nn.functional.linear(hidden, params["w2"], params["b2"])
    loss = torch.nn.functional.mse_loss(output, y)
    grads = dict(zip(PARAM_NAMES, torch.autograd.grad(loss, [params[k] for k in PARAM_NAMES])))
    out = {"forward.pre_activation": pre, "forward.hidden": hidden, "forward.output": output,
           "forward.residual": output - y, "loss": loss}
    with torch.no_grad():
        for k in PARAM_NAMES:
            a = torch_adam(params[k].detach(), grads[k], tl(k, state[f"adam.mu.{k}"]), tl(k, state[f"adam.nu.{k}"]),
                           int(state["adam.count"]), lr, bugs, tl(k, state[f"pending.{k}"]))
            out |= {f"grads.{k}": grads[k], f"adam.mu.{k}": a["mu"], f"adam.nu.{k}": a["nu"],
                    f"adam.denominator.{k}": a["denominator"], f"update.{k}": a["update"],
                    f"params.after.{k}": a["params"]}
        # torch keeps the bias corrections as Python floats (float64) whatever the parameters' dtype
        out |= {"adam.count": torch.tensor(a["count"]),
                "adam.bias_correction.1": torch.tensor(a["bc1"], dtype=torch.float64),
                "adam.bias_correction.2": torch.tensor(a["bc2"], dtype=torch.float64)}
    return {k: _f64(v.detach().numpy().T if k.rpartition(".")[2] in TRANSPOSED and TRANSPOSED[k.rpartition(".")[2]]
                    else v.detach().numpy()) for k, v in out.items()}


def jax_step(state: dict, x, y, lr: float, dtype: str) -> dict:
    """The port's step (train.make_step: model.value_and_grad, optax.adam's arithmetic) op by op in `dtype`."""
    jdtype = {"float32": jnp.float32, "float64": jnp.float64}[dtype]
    cast = lambda a: jnp.asarray(np.asarray(a), jdtype)  # noqa: E731
    params = {k: cast(state[f"params.{k}"]) for k in PARAM_NAMES}
    x, y = cast(x), cast(y)
    pre = x @ params["w1"] + params["b1"][None, :]
    hidden = jax.nn.sigmoid(pre)
    output = hidden @ params["w2"] + params["b2"][None, :]
    (loss, _), grads = model.value_and_grad(params, x, y)
    count = jnp.asarray(int(state["adam.count"]) + 1, jnp.int32)
    bc1, bc2 = (1 - jnp.asarray(b, jdtype) ** count for b in (B1, B2))  # optax.tree.bias_correction's arithmetic
    out = {"forward.pre_activation": pre, "forward.hidden": hidden, "forward.output": output,
           "forward.residual": output - y, "loss": loss, "adam.count": count, "adam.bias_correction.1": bc1,
           "adam.bias_correction.2": bc2}
    for k in PARAM_NAMES:
        g = grads[k]
        mu = (1 - B1) * g + B1 * cast(state[f"adam.mu.{k}"])
        nu = (1 - B2) * g**2 + B2 * cast(state[f"adam.nu.{k}"])
        denom = jnp.sqrt(nu / bc2) + EPS
        update = -jnp.asarray(lr, jdtype) * ((mu / bc1) / denom)
        out |= {f"grads.{k}": g, f"adam.mu.{k}": mu, f"adam.nu.{k}": nu, f"adam.denominator.{k}": denom,
                f"update.{k}": update, f"params.after.{k}": params[k] + update}
    return {k: _f64(v) for k, v in out.items()}


def _f64(a):
    return np.asarray(a, np.float64)


def run_step(implementation: str, state, x, y, lr, dtype) -> dict:
    if implementation == "jax":
        return jax_step(state, x, y, lr, dtype)
    return torch_step(state, x, y, lr, dtype, bugs_of(implementation))


# ---- each stage's f and magnitudes (the localizer's model, one step) ---------------------------------------------

def stages(state, x, y, lr) -> list:
    """[(stage, f(side's outputs) -> float64, S (float64, from the state), Z, FACTOR)] in computation order; S and Z
    arrays, or functions of a side's outputs (the larger of the two sides' is taken)."""
    p = {k: _f64(state[f"params.{k}"]) for k in PARAM_NAMES}
    pre_scale = np.abs(x) * np.abs(p["w1"]) + np.abs(p["b1"])
    s = sigmoid(x @ p["w1"] + p["b1"])
    ds = s * (1 - s)
    s_scale = s + ds * pre_scale + 1.0
    out_scale = np.sqrt(s.shape[1]) * (s @ np.abs(p["w2"])) + s_scale @ np.abs(p["w2"]) + np.abs(p["b2"])
    res = s @ p["w2"] + p["b2"] - y
    res_scale = out_scale + np.abs(y) + np.abs(res)
    g_scale = grad_error.rounding_scale(p, x, y, "mse")
    g_flushes = grad_error.underflow_scale(p, x, y, "mse")
    count = int(state["adam.count"]) + 1
    out = [("forward.pre_activation", lambda o: x @ p["w1"] + p["b1"], pre_scale,
            diverge.pre_activation_flushes(x, p["w1"]), FACTOR["forward.pre_activation"]),
           ("forward.hidden", lambda o: sigmoid(o["forward.pre_activation"]), s_scale, UNDERFLOW["forward.hidden"],
            FACTOR["forward.hidden"]),
           ("forward.output", lambda o: o["forward.hidden"] @ p["w2"] + p["b2"], out_scale,
            diverge.output_flushes(p["w2"]), FACTOR["forward.output"]),
           ("forward.residual", lambda o: o["forward.output"] - y, res_scale, UNDERFLOW["forward.residual"],
            FACTOR["forward.residual"]),
           ("loss", lambda o: np.mean(o["forward.residual"] ** 2),
            np.sqrt(len(y)) * np.mean(res**2) + np.mean(2 * np.abs(res) * res_scale),
            lambda o: diverge.loss_flushes(o["forward.residual"]), FACTOR["loss"])]
    c = 2.0 / len(y)
    formula = {"w2": lambda o: c * o["forward.hidden"].T @ o["forward.residual"],
               "b2": lambda o: c * np.sum(o["forward.residual"], axis=0),
               "b1": lambda o: c * p["w2"][:, 0] * (_ds(o).T @ o["forward.residual"])[:, 0],
               "w1": lambda o: c * p["w2"][:, 0][None, :] * ((x * o["forward.residual"]).T @ _ds(o))}
    out += [(f"grads.{k}", formula[k], g_scale[k], g_flushes[k], FACTOR["grads"]) for k in PARAM_NAMES]
    out.append(("adam.count", lambda o: np.asarray(count, np.float64), np.zeros(()), UNDERFLOW["adam.count"], 0.0))
    for i, b in ((1, B1), (2, B2)):  # b^count may underflow (flushes: its own, 1 - it's; carried by 1)
        out.append((f"adam.bias_correction.{i}", lambda o, b=b: 1 - b ** o["adam.count"],
                    (1 - b**count) * (2 + bias_correction_error(b, count)), 2.0, 2.0))
    for k in PARAM_NAMES:
        m0, v0 = _f64(state[f"adam.mu.{k}"]), _f64(state[f"adam.nu.{k}"])
        out += [(f"adam.mu.{k}", lambda o, k=k, m0=m0: B1 * m0 + (1 - B1) * o[f"grads.{k}"],
                 lambda o, k=k, m0=m0: B1 * np.abs(m0) + (1 - B1) * np.abs(o[f"grads.{k}"]) + np.abs(o[f"adam.mu.{k}"]),
                 UNDERFLOW["adam.mu"], FACTOR["adam.mu"]),
                (f"adam.nu.{k}", lambda o, k=k, v0=v0: B2 * v0 + (1 - B2) * o[f"grads.{k}"] ** 2,
                 lambda o, k=k, v0=v0: B2 * v0 + (1 - B2) * o[f"grads.{k}"] ** 2 + o[f"adam.nu.{k}"],
                 lambda o, k=k: diverge.nu_flushes(o[f"grads.{k}"]), FACTOR["adam.nu"])]
    # square root, division, + eps: 3 roundings; / bc1, / denominator, * lr, lr's own: 4. The denominator's flushes
    # under the root are below 1% of one of its roundings (diverge.UNDERFLOW's comment): the sqrt's and + eps's, 2.
    for k in PARAM_NAMES:
        out += [(f"adam.denominator.{k}", lambda o, k=k: np.sqrt(o[f"adam.nu.{k}"] / o["adam.bias_correction.2"])
                 + EPS, lambda o, k=k: np.abs(o[f"adam.denominator.{k}"]), 2.0, 3.0),
                (f"update.{k}", lambda o, k=k: -lr * (o[f"adam.mu.{k}"] / o["adam.bias_correction.1"])
                 / o[f"adam.denominator.{k}"], lambda o, k=k: np.abs(o[f"update.{k}"]),
                 lambda o, k=k: diverge.update_flushes(lr, o["adam.bias_correction.1"], o[f"adam.denominator.{k}"]),
                 4.0),
                (f"params.after.{k}", lambda o, k=k: p[k] + o[f"update.{k}"],
                 lambda o, k=k: np.abs(p[k]) + np.abs(o[f"update.{k}"]) + np.abs(o[f"params.after.{k}"]),
                 UNDERFLOW["params"], 2.0)]
    return out


def _ds(o):
    s = o["forward.hidden"]
    return s * (1 - s)


# ---- the replay ---------------------------------------------------------------------------------------------------

def state_before(record, step: int) -> dict:
    """Record A's state before `step`: its parameters there, the moments and count after the step before (zero at
    step 0), and that step's update (what an update applied late would apply). InputError if the record does not
    hold the step before (--record-every K > 1)."""
    t = record.tensors
    idx = int(np.flatnonzero(t["step"] == step)[0])
    if idx == 0 and step != 0 or idx > 0 and int(t["step"][idx - 1]) != step - 1:
        raise InputError(f"--replay needs the step before {step} in the record: record every step (--record-every 1)")
    state = {f"params.{k}": t[f"params.{k}"][idx] for k in PARAM_NAMES}
    for k in PARAM_NAMES:
        for q in ("adam.mu", "adam.nu", "update"):
            state[f"{q if q != 'update' else 'pending'}.{k}"] = (t[f"{q}.{k}"][idx - 1] if idx else
                                                                 np.zeros_like(t[f"{q}.{k}"][0]))
    state["adam.count"] = int(t["adam.count"][idx - 1]) if idx else 0
    return state


def compare_sides(oa: dict, ob: dict, state, x, y, lr, dtype: str):
    """The first stage whose difference exceeds its bound: (stage, index, a, b, diff, bound), or None."""
    u = 2 * grad_error.UNIT_ROUNDOFF[dtype] + grad_error.UNIT_ROUNDOFF["float64"]
    tiny = 2 * grad_error.SMALLEST_NORMAL[dtype] + grad_error.SMALLEST_NORMAL["float64"]
    for stage, f, scale, flushes, factor in stages(state, x, y, lr):
        va, vb = np.asarray(oa[stage]), np.asarray(ob[stage])
        with np.errstate(all="ignore"):
            carried = np.abs(np.asarray(f(oa)) - np.asarray(f(ob)))
            magnitudes = np.maximum(scale(oa), scale(ob)) if callable(scale) else scale
            flushed = np.maximum(flushes(oa), flushes(ob)) if callable(flushes) else flushes
            bound = carried + factor * u * magnitudes + FLUSH_FACTOR * tiny * flushed
            diff = np.abs(va - vb)
            excess = np.where(diff <= bound, 0.0, diff - bound)
        if np.any(excess > 0) or np.isnan(diff).any():
            i = int(np.argmax(np.where(np.isnan(diff), np.inf, excess)))
            index = tuple(int(k) for k in np.unravel_index(i, np.shape(va))) if np.ndim(va) else ()
            pick = lambda v: float(np.broadcast_to(v, np.shape(va)).ravel()[i])  # noqa: E731
            return stage, index, pick(va), pick(vb), pick(diff), pick(bound)
    return None


def replay(a, b, step: int) -> dict:
    """Both records' implementations re-run at `step` from A's state, in float64 and in float32: {precision: the
    first stage beyond its bound or None}, with the implementations' names."""
    state = state_before(a, step)
    x, y = _f64(a.tensors["data.x"]), _f64(a.tensors["data.y"])
    lr = float(a.metadata["experiment"]["lr"])
    impl_a, impl_b = a.metadata["implementation"], b.metadata["implementation"]
    found = {"step": step, "a": impl_a, "b": impl_b}
    for dtype in ("float64", "float32"):
        oa, ob = run_step(impl_a, state, x, y, lr, dtype), run_step(impl_b, state, x, y, lr, dtype)
        found[dtype] = compare_sides(oa, ob, state, x, y, lr, dtype)
    return found


def first_operation(found: dict):
    """(precision, stage) of the replay's finding, float64's first (the sharper), or None."""
    for dtype in ("float64", "float32"):
        if found[dtype] is not None:
            return dtype, found[dtype][0]
    return None


def lines(found: dict) -> list[str]:
    out = [f"replay of step {found['step']} from A's state, op by op: A = {found['a']}, B = {found['b']}"]
    for dtype in ("float64", "float32"):
        hit = found[dtype]
        if hit is None:
            out.append(f"  {dtype}: every operation agrees within its bound")
            continue
        stage, index, va, vb, diff, bound = hit
        where = f"[{', '.join(map(str, index))}]" if index else ""
        out.append(f"  {dtype}: first operation beyond its bound: {stage}{where}: {va:.12g} vs {vb:.12g}, difference "
                   f"{diff:.3e} > bound {bound:.3e}")
        out.append(f"    A computes it as {describe(found['a'], stage)}")
        out.append(f"    B computes it as {describe(found['b'], stage)}")
    return out


def as_json(found: dict) -> dict:
    out = {"step": found["step"], "a": found["a"], "b": found["b"]}
    for dtype in ("float64", "float32"):
        hit = found[dtype]
        out[dtype] = None if hit is None else dict(zip(("operation", "index", "a", "b", "diff", "bound"), hit)) | {
            "a_computes": describe(found["a"], hit[0]), "b_computes": describe(found["b"], hit[0])}
    return out
