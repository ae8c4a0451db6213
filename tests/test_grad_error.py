"""The gradient check's error model (checks/grad_error.py), judged both ways: it flags a planted error, and it never
cries wolf on correct gradients, at 50+ states in float32 (here) and float64 (in its own process: x64 is global).

Run as a script (`python tests/test_grad_error.py [--x64]`) it prints the worst units seen per method over the states,
the measurement behind grad_error.ROUNDING_FACTOR."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_impl.core import data, layout, model, train
from jax_impl.core.layout import PARAM_NAMES
from jax_impl.core.torch_optim import make_optimizer
from torch_impl.checks import grad_check, grad_error

try:
    import conftest  # noqa: F401  (its strict JAX settings, also when this file runs as a script)
except ImportError:  # run as a script
    sys.path.insert(0, os.path.dirname(__file__))
    import conftest  # noqa: F401

# The planted errors the issue names: one entry of one method's gradient off by this much, relative to that entry.
PLANTED = {"float32": 1e-3, "float64": 1e-9}


def dtype_name():
    return "float64" if jax.config.jax_enable_x64 else "float32"


def saturated(seed: int, dtype):
    """N(0, 1) weights with every |w1| in [50, 100]: most hidden units saturate on [-1, 1]."""
    params = grad_check.random_params(jax.random.key(100 + seed), 20, dtype)
    magnitude = jax.random.uniform(jax.random.key(200 + seed), (1, 20), model.DRAW_DTYPE, 50, 100).astype(dtype)
    return {**params, "w1": jnp.where(params["w1"] < 0, -magnitude, magnitude)}


def zero_output_layer(seed: int, dtype):
    """w2 = 0 (and b2 = 0 for even seeds): w1's and b1's gradients are exactly zero in every method."""
    params = model.init_params(jax.random.key(300 + seed), 20, dtype)
    return {**params, "w2": jnp.zeros_like(params["w2"]),
            "b2": jnp.zeros_like(params["b2"]) if seed % 2 == 0 else params["b2"]}


# Where a saturated unit's sigmoid or sigmoid' is a subnormal number (|h| beyond -log of the smallest normal, 87.3 in
# float32, 708.4 in float64, up to where even the subnormals end: 103.3, 744.4); XLA:CPU flushes those to zero, torch
# does not (grad_error.SMALLEST_NORMAL).
SUBNORMAL_H = {"float32": (80.0, 100.0), "float64": (700.0, 740.0)}


def saturated_into_subnormals(seed: int, dtype):
    """w1 = 0 and |b1| spread over SUBNORMAL_H, alternating in sign: every unit is saturated at every point, and its
    gradient terms are subnormal (or flushed): w1's, b1's and w2's entries are sums of them."""
    params = grad_check.random_params(jax.random.key(400 + seed), 20, dtype)
    low, high = SUBNORMAL_H[jnp.dtype(dtype).name]
    b1 = jnp.linspace(low, high, 20, dtype=dtype) * jnp.where(jnp.arange(20) % 2 == seed % 2, -1, 1).astype(dtype)
    return {**params, "w1": jnp.zeros_like(params["w1"]), "b1": b1}


def trained(params, x, y, optimizer: str, at_steps) -> list:
    """The weights after each of at_steps updates of the port's step (train.make_step: jax.value_and_grad of the MSE,
    then optax's `optimizer` at lr 0.2); one compiled step per width and optimizer."""
    tx = make_optimizer(optimizer, 0.2)
    step, state, out = jax.jit(train.make_step(tx)), tx.init(params), []
    for t in range(1, max(at_steps) + 1):
        params, state, _, _ = step(params, state, x, y)
        if t in at_steps:
            out.append(params)
    return out


@functools.cache
def states(dtype) -> dict:
    """57 weight states a user may check: the notebook's, random draws at widths 1-256, weights trained 10, 100 and
    201 steps by Adam and by SGD, saturated units (also into the subnormals) and a zero output layer."""
    x, y = data.notebook_data(dtype)
    out = {"validation weights": {k: jnp.asarray(v, dtype) for k, v in
                                  data.notebook_validation_params().items()},
           "notebook initial": data.notebook_init_params(dtype)}
    for seed, hidden in [(0, 1), (1, 5), (2, 20), (3, 20), (4, 64), (5, 256), (6, 3), (7, 20), (8, 40), (9, 128)]:
        out[f"randn seed {seed} hidden {hidden}"] = grad_check.random_params(jax.random.key(seed), hidden, dtype)
    for optimizer in ("adam", "sgd"):
        for seed, hidden in [(None, 20), (3, 20), (4, 64), (5, 7), (6, 1), (7, 32)]:
            start = (data.notebook_init_params(dtype) if seed is None
                     else model.init_params(jax.random.key(seed), hidden, dtype))
            for steps, params in zip((10, 100, 201), trained(start, x, y, optimizer, (10, 100, 201))):
                out[f"{optimizer} {steps} steps from {seed or 'notebook'} hidden {hidden}"] = params
    for seed in range(3):
        out[f"saturated {seed}"] = saturated(seed, dtype)
    for seed in range(3):
        out[f"zero output layer {seed}"] = zero_output_layer(seed, dtype)
    for seed in range(2):
        out[f"saturated into subnormals {seed}"] = saturated_into_subnormals(seed, dtype)
    # The state the false-alarm hunt found (validate_grads with these weights, float32: manual and torch 2e4
    # allowances off jax.grad at b1[0], mse): two units at h = -80.3 and 86.5, every point.
    out["saturated into subnormals, hidden 2"] = {**grad_check.random_params(jax.random.key(0), 2, dtype),
                                                  "w1": jnp.zeros((1, 2), dtype),
                                                  "b1": jnp.asarray([-80.33178879, 86.47482805], dtype)}
    return out


@functools.cache
def tiny_fits(dtype) -> dict:
    """{name: (params, x, y)}: fits through one or two points, 2000 Adam steps: the loss is at (or near) zero and every
    gradient a difference of rounding (issue 19, kind 3: where a bare relative tolerance has nothing to hold to)."""
    out = {}
    for points, hidden, seed in [(1, 20, 0), (1, 1, 1), (2, 1, 2), (2, 20, 3)]:
        x, y = data.make_data(jax.random.key(seed), points, dtype=dtype)
        (params,) = trained(model.init_params(jax.random.key(10 + seed), hidden, dtype), x, y, "adam", (2000,))
        out[f"{points} points hidden {hidden} trained 2000 steps"] = (params, x, y)
    return out


def check(params, loss, x=None, y=None):
    if x is None:
        x, y = data.notebook_data(params["w1"].dtype)
    results = grad_check.all_methods(params, x, y, loss)
    allowances, report = grad_check.check(results, params, x, y, loss, dtype_name())
    return results, allowances, report


def refused(dtype) -> list[str]:
    """The states (and tiny fits) whose loss or gradient grad_check.nonfinite_problem calls not finite, for either
    loss: validate_grads.py would refuse them. Correct weights must never be among them."""
    cases = [(name, params, *data.notebook_data(dtype)) for name, params in states(dtype).items()]
    cases += [(name, *fit) for name, fit in tiny_fits(dtype).items()]
    return [f"{name} ({loss})" for name, params, x, y in cases for loss in ("sse", "mse")
            if grad_check.nonfinite_problem(params, x, y, loss)]


def worst_units(dtype) -> dict:
    """{method: (units, state, loss, tensor)}: the largest difference in units of its allowance over all states."""
    worst = {}
    cases = [(name, params, None, None) for name, params in states(dtype).items()]
    cases += [(name, *fit) for name, fit in tiny_fits(dtype).items()]
    for i, (name, params, x, y) in enumerate(cases):
        both = i % 3 == 0 or "subnormals" in name  # the flushes differ between the losses' scales c: both
        for loss in ("sse", "mse") if both else (("sse",) if i % 2 else ("mse",)):
            _, _, report = check(params, loss, x, y)
            for method, by_name in report.items():
                for tensor, d in by_name.items():
                    if not d["units"] <= worst.get(method, (0.0,))[0]:
                        worst[method] = (d["units"], name, loss, tensor)
    return worst


def test_there_are_fifty_states_of_each_kind():
    names = list(states(jnp.float32))
    assert len(names) >= 50
    for kind in ("randn", "adam 10", "adam 100", "adam 201", "sgd 10", "sgd 100", "sgd 201", "saturated",
                 "zero output layer", "validation", "saturated into subnormals"):
        assert any(kind in n for n in names), kind


def test_no_false_alarm_float32():
    worst = worst_units(jnp.float32)
    assert set(worst) == {"manual", "torch", "finite_diff"}
    for method, (units, *where) in worst.items():
        assert units <= 1.0, (method, units, where)


def test_no_correct_state_is_refused_as_not_finite_float32():
    assert refused(jnp.float32) == []


def test_no_false_alarm_float64():
    """The same states in float64, in a fresh process: none refused as not finite, none flagged."""
    result = subprocess.run([sys.executable, __file__, "--x64"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "JAX_ENABLE_X64": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(result.stdout.splitlines()[-1])
    assert worst["refused"] == []
    assert worst["dtype"] == "float64" and set(worst["worst"]) == {"manual", "torch", "finite_diff"}
    for method, (units, *where) in worst["worst"].items():
        assert units <= 1.0, (method, units, where)


SHARPNESS_STATES = {
    # state -> the tensors whose best-resolved entry the precision resolves to the planted error there (allowance /
    # |entry| measured in float32: <= 2.2e-4 for these). Near a minimum a gradient is a small difference of large
    # terms and float32 resolves less: at the notebook's fully trained weights ~1e-3 (left out), and b2 after 100 SGD
    # steps 1e-3; the report's units say how far each entry can be judged.
    "validation weights": PARAM_NAMES,
    "notebook initial": PARAM_NAMES,
    "randn seed 4 hidden 64": PARAM_NAMES,
    "adam 100 steps from 3 hidden 20": PARAM_NAMES,
    "sgd 100 steps from 3 hidden 20": ("w1", "b1", "w2"),
    "saturated 0": PARAM_NAMES,
    "zero output layer 0": ("w2", "b2"),  # w1 and b1 are exactly zero there: nothing relative to plant
}


def planted_error_is_flagged(params, tensors, relative):
    """For each method and tensor: move the tensor's best-resolved entry (smallest allowance / |gradient|) by
    `relative` of its value; the check must name that method and tensor, and nothing else."""
    results, allowances, report = check(params, "sse")
    assert grad_error.mismatches(report) == []  # clean before the plant
    x, y = data.notebook_data(params["w1"].dtype)
    # Finite differences are float64 in both modes and good to ~1e-8 (their truncation at FD_EPS): they take the
    # float32 plant, not the float64 one.
    methods = ("manual", "torch") if dtype_name() == "float64" else tuple(allowances)
    for method in methods:
        for tensor in tensors:
            value = np.array(results[method][tensor], np.float64)
            with np.errstate(divide="ignore"):
                resolution = np.where(value != 0, allowances[method][tensor] / np.abs(value), np.inf).ravel()
            k = int(np.argmin(resolution))
            assert resolution[k] < relative, (method, tensor, resolution[k])
            planted = value.copy().ravel()
            planted[k] *= 1 + relative
            bad = {**results, method: {**results[method], tensor: planted.reshape(value.shape).astype(
                results[method][tensor].dtype)}}
            _, bad_report = grad_check.check(bad, params, x, y, "sse", dtype_name())
            lines = grad_error.mismatches(bad_report)
            assert len(lines) == 1 and lines[0].startswith(f"{method} {tensor}[{k}]"), (method, tensor, lines)


@pytest.mark.parametrize("state", list(SHARPNESS_STATES))
def test_a_planted_error_is_flagged_float32(state):
    planted_error_is_flagged(states(jnp.float32)[state], SHARPNESS_STATES[state], PLANTED["float32"])


def test_a_planted_error_is_flagged_float64():
    result = subprocess.run([sys.executable, __file__, "--x64", "--plant"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "JAX_ENABLE_X64": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == f"planted errors flagged at {len(SHARPNESS_STATES)} states"


def test_zero_against_zero_agrees_and_nan_never_does():
    zeros = {k: np.zeros(s) for k, s in layout.param_shapes(3).items()}
    report = grad_error.compare(zeros, zeros, zeros)
    assert all(d["units"] == 0.0 for d in report.values())
    off = {**zeros, "b1": np.array([0.0, 1e-30, 0.0])}
    assert grad_error.compare(off, zeros, zeros)["b1"]["units"] == np.inf
    nan = {**zeros, "w2": np.full((3, 1), np.nan)}
    report = {"torch": grad_error.compare(nan, zeros, {k: np.ones(s) for k, s in layout.param_shapes(3).items()})}
    assert [line.split(":")[0] for line in grad_error.mismatches(report)] == ["torch w2[0]"]


def test_a_weight_too_large_for_a_step_has_no_finite_difference_check():
    """|w2| = 1e12: w +- 1e-5 rounds back to w in float64, so finite differences measure nothing there; the model
    says so (an infinite allowance) instead of reporting a disagreement it cannot know."""
    params = {k: np.asarray(v) for k, v in data.notebook_validation_params().items()}
    params["w2"] = np.full((20, 1), 1e12, np.float32)
    x, y = data.notebook_data()
    from torch_impl.checks import jax_grads as grads

    fd = grads.finite_difference_grads(params, x, y)
    allowance = grad_error.finite_difference_allowance(fd, fd, params, x, y, "sse", grads.FD_EPS)
    assert np.all(fd["w2"] == 0) and np.all(np.isinf(allowance["w2"]))
    assert np.all(np.isfinite(allowance["w1"]))


if __name__ == "__main__":
    if "--x64" in sys.argv:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    if "--plant" in sys.argv:
        all_states = states(dtype)
        for state, tensors in SHARPNESS_STATES.items():
            planted_error_is_flagged(all_states[state], tensors, PLANTED[dtype_name()])
        print(f"planted errors flagged at {len(SHARPNESS_STATES)} states")
    else:
        print(json.dumps({"dtype": dtype_name(), "worst": worst_units(dtype), "refused": refused(dtype)}))


def test_a_unit_saturated_beyond_exps_range_is_no_warning_and_no_false_alarm():
    """|w1| = 1e5: h reaches -1e5, where the float64 finite differences' exp(-h) overflows to inf and the sigmoid is
    1 / (1 + inf) = 0, the right value: no RuntimeWarning (pytest makes one an error), and the four methods agree."""
    params = {**data.notebook_validation_params(), "w1": np.full((1, 20), 1e5, np.float32)}
    params = {k: jnp.asarray(v) for k, v in params.items()}
    assert grad_check.nonfinite_problem(params, *data.notebook_data(), "sse") is None
    _, _, report = check(params, "sse")
    assert grad_error.mismatches(report) == []


def test_the_rounding_scale_of_one_point_by_hand():
    """rounding_scale and loss_rounding_scale on one point and one unit, each term of the module docstring's model
    worked out (binary fractions, so exact): h = 0, s = 1/2 (its error scale s_err = s), s' = 1/4 (ds_err = s_err +
    2 s' = 1); r = s w2 + b2 - y = 1 + 1/4 + 3 = 17/4, whose error scale is the sum's magnitudes and its own rounding:
    r_err = sqrt(H) s |w2| + s_err |w2| + |b2| + |y| + |r| = 1 + 1 + 1/4 + 3 + 17/4 = 19/2. sse: c = 2."""
    params = {"w1": np.array([[0.0]]), "b1": np.array([0.0]), "w2": np.array([[2.0]]), "b2": np.array([0.25])}
    x, y = np.array([[1.0]]), np.array([[-3.0]])
    r, r_err, s, s_err, ds, ds_err, c = 4.25, 9.5, 0.5, 0.5, 0.25, 1.0, 2.0
    want = {"w1": [[c * 2 * (ds * r + ds * r_err + ds_err * r)]], "b1": [c * 2 * (ds * r + ds * r_err + ds_err * r)],
            "w2": [[c * (s * r + s * r_err + s_err * r)]], "b2": [c * (r + r_err)]}
    assert want == {"w1": [[30.75]], "b1": [30.75], "w2": [[18.0]], "b2": [27.5]}
    got = grad_error.rounding_scale(params, x, y, "sse")
    for name in PARAM_NAMES:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-15, err_msg=name)  # exp and log1p round s
    np.testing.assert_allclose(grad_error.loss_rounding_scale(params, x, y, "sse"), r**2 + 2 * r * r_err, rtol=1e-15)
    np.testing.assert_allclose(grad_error.loss_rounding_scale(params, x, y, "mse"), r**2 + 2 * r * r_err, rtol=1e-15)



def test_a_finite_loss_with_an_overflowing_gradient_is_refused():
    """Two hidden units at h = 0.5 (w1 = b1 = 0) whose output weights +-3e38 cancel exactly in the prediction (0.5 *
    3e38 is exact, and two exact opposites sum to 0 in any order), with b2 = 100: the loss, about 1e4 a point, is
    finite, but d loss / d b1 = sum 2 (100 - y) * 3e38 * 0.25 over 100 points is ~1e4 times float32's largest
    number: inf, and the refusal speaks of the gradient. With b2 = 1e30 the loss overflows too, and the refusal speaks
    of the loss; with +-1e30 nothing is refused. (float64: test_grads.py, through validate_grads.py --x64.)"""
    x, y = data.notebook_data(jnp.float32)
    params = {"w1": jnp.zeros((1, 2)), "b1": jnp.zeros(2), "w2": jnp.asarray([[3e38], [-3e38]]),
              "b2": jnp.asarray([100.0])}
    problem = grad_check.nonfinite_problem(params, x, y, "sse")
    assert problem.startswith("the gradient at these weights is not finite (") and "float32" in problem
    assert grad_check.nonfinite_problem({**params, "b2": jnp.asarray([1e30])}, x, y, "mse").startswith(
        "the loss at these weights is not finite (mse = inf")
    # +-1e30: the gradient, ~1e34, is finite, and nothing is refused
    assert grad_check.nonfinite_problem({**params, "w2": jnp.asarray([[1e30], [-1e30]])}, x, y, "sse") is None
