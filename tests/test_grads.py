"""The loss gradient four ways (the notebook's hand formulas, jax.grad, torch autograd, float64 finite differences),
the notebook's printed gradient table, and scripts/validate_grads.py end to end with its bad inputs."""

import functools
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import import_script, run_main
from jax.test_util import check_grads

from jax_impl.core import data, layout, model, train
from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files.params_io import InputError, load_params, save_npz
from torch_impl.checks import grad_check, grad_error, precision
from torch_impl.checks import jax_grads as grads

validate_grads = import_script("validate_grads")

# The weights behind the notebook's printed table, as a file for --params (the directory goes when the run ends).
_PARAMS_DIR = tempfile.TemporaryDirectory(prefix="notebook-params-")
NOTEBOOK_PARAMS = pathlib.Path(_PARAMS_DIR.name) / "notebook_validation_params.npz"
save_npz(NOTEBOOK_PARAMS, data.notebook_validation_params())

# The notebook's printed table (the validation cell's output in the notebook): the oracle. Autograd's row as
# printed; torch prints 4 decimals, and 5 significant digits (%.4e) for W1, whose entries span more than 1000x.
PRINTED = {
    "w2": "-245.7227 -159.0730 -67.4866 -311.3191 -209.0124 -226.7560 -209.4563 -193.9550 -73.4560 -28.2905 "
          "-120.5848 -294.6848 -332.4308 -247.1168 -309.5992 -229.2792 -111.3939 -297.2051 -187.4831 -287.9650",
    "b2": "-406.8893",
    "w1": "5.0282e-01 3.3779e+00 4.5737e+00 3.4407e+00 -6.0948e+00 -3.3793e+00 1.1792e+00 6.1202e-01 1.2760e+00 "
          "1.4031e+00 1.9980e+00 6.8082e+00 2.2873e+00 -4.6378e+00 3.0182e+01 -1.8609e+00 -7.2211e-01 1.0608e+01 "
          "4.1748e-01 -2.0860e-02",
    "b1": "-6.6521 -34.3221 21.0922 -98.0738 105.3418 92.1889 -24.0026 -14.8429 -45.9296 4.9236 56.6093 -104.0045 "
          "-13.6939 -76.0981 136.7074 21.6427 5.2169 96.2356 -5.8019 68.8856",
}
PRINTED = {name: text.split() for name, text in PRINTED.items()}
# Where the notebook's hand-formula row prints a different last digit than its autograd row: both are the notebook's
# float32 output, so either is accepted there and nowhere else.
PRINTED_MANUAL_ROW_DIFFERS = {("w1", 16): "-7.2210e-01", ("w1", 19): "-2.0861e-02"}

# |gradient - printed value| in units of the last printed digit (1e-4, or 1e-4 * 10**exponent for W1). Rounding to
# the printed digits alone leaves up to 0.5. Measured at the validation weights: jax.grad in float32 1.40 (W2[14]), the
# exact float64 gradient 0.82 (W2[14]). The rest is float32 rounding: at |W2| ~ 300 one float32 ulp is 3e-5, and
# the 100-term sums carry a few ulps, so the 4th decimal is set by the summation order, not by the weights (the
# float64 gradient itself rounds differently from the printed float32 one at 6 of the 61 entries).
PRINTED_UNITS_FLOAT64 = 1.0  # 0.5 printing + the notebook's own float32 rounding (measured 0.32 beyond the 0.5)
# A float32 gradient against the printed one: two float32 computations, each within the gradient check's error model
# (grad_error.rounding_allowance) of the exact gradient, plus 0.5 printing. Not a flat 1 unit of rounding: W1[19]
# (-2.0860e-02) is a near-cancelling sum whose terms add up to ~7,000 times it, and its 5th digit is the summation
# order's (the hand formulas gave 0.79 units on AVX2 kernels, 2.43 with XLA forced to SSE4.2: docs/testing.md).
# Allowed: 3-29 units at W2, 34 at B2 (measured there: at most 0.94), 0.8-15 at W1 and B1, 357 at W1[19]; the digits
# themselves are held by the float64 gradient (PRINTED_UNITS_FLOAT64).
PRINTED_FLOAT32_SIDES = 2


@functools.cache
def printed_units_float32() -> dict[str, np.ndarray]:
    """{name: per-entry allowance in units of the printed digit}, as PRINTED_FLOAT32_SIDES above says."""
    x, y = (np.asarray(a, np.float64) for a in data.notebook_data())
    allowance = grad_error.rounding_allowance(load_params(NOTEBOOK_PARAMS), x, y, "sse", "float32")
    return {name: 0.5 + PRINTED_FLOAT32_SIDES * np.ravel(allowance[name]) / [printed_unit(t) for t in printed]
            for name, printed in PRINTED.items()}


def notebook_weights(dtype=jnp.float32):
    return {k: jnp.asarray(v, dtype) for k, v in load_params(NOTEBOOK_PARAMS).items()}


def printed_unit(text):
    return 1e-4 * 10 ** int(text.split("e")[1]) if "e" in text else 1e-4


# ---- the four methods agree (float32 here; float64 through the script below) ---------------------------------------

@pytest.mark.parametrize("loss", ["sse", "mse"])
@pytest.mark.parametrize("source", ["notebook", 0, 7])
def test_four_methods_agree(source, loss):
    x, y = data.notebook_data()
    params = (notebook_weights() if source == "notebook"
              else grad_check.random_params(jax.random.key(source), 20, jnp.float32))
    results = grad_check.all_methods(params, x, y, loss)
    for name in PARAM_NAMES:
        shapes = {m: results[m][name].shape for m in results}
        assert set(shapes.values()) == {params[name].shape}, (name, shapes)
        assert results["manual"][name].dtype == results["jax"][name].dtype == np.float32
        assert results["finite_diff"][name].dtype == np.float64
    _, report = grad_check.check(results, params, x, y, loss, "float32")
    assert grad_error.mismatches(report) == []
    assert {m: set(by_name) for m, by_name in report.items()} == {m: set(PARAM_NAMES) for m in
                                                                  ("manual", "torch", "finite_diff")}
    assert float(np.max(np.abs(results["jax"]["w2"]))) > (1.0 if loss == "sse" else 0.01)  # not a zero gradient


def test_mse_gradient_is_the_sse_gradient_over_n():
    x, y = data.notebook_data()
    params = notebook_weights()
    sse, mse = grads.jax_grads(params, x, y, "sse"), grads.jax_grads(params, x, y, "mse")
    manual_mse = grads.manual_grads(params, x, y, "mse")
    allowance = grad_error.rounding_allowance(params, x, y, "sse", "float32")
    for name in PARAM_NAMES:  # two float32 computations of the same sum: twice one's rounding allowance
        np.testing.assert_array_less(np.abs(np.asarray(mse[name]) * 100 - sse[name]), 2 * allowance[name] + 1e-30,
                                     err_msg=name)
        np.testing.assert_array_less(np.abs(np.asarray(manual_mse[name]) * 100 - sse[name]),
                                     2 * allowance[name] + 1e-30, err_msg=name)


def test_the_checks_run_at_full_float32_precision(monkeypatch):
    """On a GPU, JAX's default matmul precision and torch's cuDNN may use TF32: the check runs JAX at "highest" and
    torch with TF32 off; here (CPU) that the setting is in force while each method runs, and restored after."""
    seen = []

    def recording(fn):
        return lambda *a, **k: (seen.append(precision.in_force()), fn(*a, **k))[1]

    monkeypatch.setattr(grads, "jax_grads", recording(grads.jax_grads))
    monkeypatch.setattr(grads, "manual_grads", recording(grads.manual_grads))
    x, y = data.notebook_data()
    assert not precision.in_force()
    grad_check.all_methods(notebook_weights(), x, y, "sse")
    assert seen == [True, True] and not precision.in_force()


def test_finite_differences_are_float64_in_a_float32_process():
    x, y = data.notebook_data()
    params = notebook_weights()
    assert not jax.config.jax_enable_x64
    fd = grads.finite_difference_grads(params, x, y)
    assert all(v.dtype == np.float64 for v in fd.values())
    # Against the exact float64 gradient (jax.grad under --x64: W1[14] = 30.18152837751669), the chosen step is
    # ~1e-9 off and a coarser one visibly worse (truncation ~ eps^2): 3e-6 at 1e-3, 3e-4 at 1e-2.
    exact = 30.18152837751669
    assert abs(fd["w1"][0, 14] - exact) < 1e-8
    assert abs(grads.finite_difference_grads(params, x, y, eps=1e-2)["w1"][0, 14] - exact) > 1e-4


def test_unknown_loss_is_refused():
    x, y = data.notebook_data()
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        grads.finite_difference_grads(notebook_weights(), x, y, "l1")


@pytest.mark.parametrize("loss,weights,order", [("sse", "validation", 2), ("mse", "initial", 1)])
def test_jax_check_grads_on_the_losses(loss, weights, order):
    """jax.test_util.check_grads: reverse mode against its own finite differences, with jax's float32 defaults
    (step 1e-4, tolerance 2e-3); at the validation cell's weights with its loss (to second order), and at the
    notebook's initial weights with the training loss."""
    x, y = data.notebook_data()
    params = notebook_weights() if weights == "validation" else data.notebook_init_params()
    check_grads(lambda p: model.LOSSES[loss](p, x, y), (params,), order=order, modes=("rev",))


def test_check_grads_catches_a_wrong_gradient():
    """The check above can fail: a loss whose gradient is deliberately halved is caught."""

    @jax.custom_vjp
    def halved(v):
        return jnp.sum(v**2)

    halved.defvjp(lambda v: (halved(v), v), lambda v, g: (g * v,))  # the true gradient is 2 * g * v
    with pytest.raises(AssertionError):
        check_grads(halved, (jnp.arange(1.0, 4.0),), order=1, modes=("rev",))


# ---- the notebook's printed table ----------------------------------------------------------------------------------

def assert_near_printed(values: dict, units):
    """Each entry within `units` of its printed value, in units of the last printed digit: one number for all, or a
    dict {name: per-entry units} (printed_units_float32)."""
    for name, printed in PRINTED.items():
        got = np.ravel(values[name])
        allowed = np.broadcast_to(units[name] if isinstance(units, dict) else units, got.shape)
        assert got.shape == (len(printed),), name
        for i, text in enumerate(printed):
            off = abs(float(got[i]) - float(text)) / printed_unit(text)
            assert off <= allowed[i], (f"{name}[{i}]: {got[i]!r} is {off:.2f} units of the last digit from {text}"
                                       f" (allowed {allowed[i]:.2f})")


def test_jax_grad_reproduces_the_printed_table_float32():
    x, y = data.notebook_data()
    assert_near_printed(grads.jax_grads(notebook_weights(), x, y, "sse"), printed_units_float32())
    assert_near_printed(grads.manual_grads(notebook_weights(), x, y, "sse"), printed_units_float32())


def test_torch_twin_reproduces_the_printed_table_float32():
    """torch autograd in float32 at the validation weights, judged as jax.grad is: its last printed digit depends on the
    CPU's summation kernels (W2[1] prints -159.0730 on an Intel Xeon and -159.0731 on an AMD EPYC, -159.07306 there),
    so it is held to the same units of the last digit, not to the digits."""
    from torch_impl.checks.torch_grads import torch_grads

    x, y = data.notebook_data()
    assert_near_printed(torch_grads(notebook_weights(), x, y, "sse"), printed_units_float32())


def test_the_printed_table_judgment_holds_on_either_cpu_and_still_bites():
    """The AMD EPYC's torch float32 W2[1] = -159.07306 prints -159.0731 against the notebook's -159.0730: within the
    units, so the judgment holds on both CPU kinds; a gradient scaled by 1 + 1e-4 is caught (at W2[0]: 246 units
    off, 21 allowed), and so is W2[1] alone scaled so (159 units off, 14 allowed)."""
    from torch_impl.checks.torch_grads import torch_grads

    x, y = data.notebook_data()
    got = {k: np.array(v, np.float64) for k, v in torch_grads(notebook_weights(), x, y, "sse").items()}
    units = printed_units_float32()
    assert_near_printed({**got, "w2": np.where(np.arange(20)[:, None] == 1, -159.07306, got["w2"])}, units)
    with pytest.raises(AssertionError, match=r"w2\[0\]"):
        assert_near_printed({k: v * (1 + 1e-4) for k, v in got.items()}, units)
    with pytest.raises(AssertionError, match=r"w2\[1\]"):
        assert_near_printed({**got, "w2": np.where(np.arange(20)[:, None] == 1, got["w2"] * (1 + 1e-4), got["w2"])},
                            units)


def test_the_table_reference_is_the_notebooks():
    """Guards the hard-coded table itself: 61 numbers, and the values the issue quotes."""
    assert [len(v) for v in PRINTED.values()] == [20, 1, 20, 20]
    assert PRINTED["b2"] == ["-406.8893"] and PRINTED["w2"][-1] == "-287.9650" and PRINTED["b1"][0] == "-6.6521"
    assert PRINTED["w1"][0] == "5.0282e-01" and PRINTED["w1"][-1] == "-2.0860e-02"


# ---- scripts/validate_grads.py end to end --------------------------------------------------------------------------

def printed_tensor(out: str, label: str, method: str) -> np.ndarray:
    """The numbers of one `LABEL.grad [METHOD]:tensor(...)` block of --print-grads' output."""
    import re

    start = out.index(f"{label}.grad [{method}]:tensor(")
    block = out[start:out.index(")", start + len(label) + len(method) + 16)]
    return np.array([float(v) for v in re.findall(r"-?\d+\.\d+(?:e[+-]\d+)?", block.split("tensor(", 1)[1])])


def test_script_prints_the_table_and_the_notebook_style_grads(monkeypatch, capsys):
    code, out = run_main(validate_grads, monkeypatch, capsys, "--params", NOTEBOOK_PARAMS, "--print-grads")
    assert code == 0
    # Each method's four tensors printed as the notebook prints them; the numbers judged in units of the last printed
    # digit (its last digit is float32 rounding: jax.grad's W2[0] prints -245.7227 or -245.7228 by summation order).
    for method in ("manual", "jax", "torch", "finite_diff"):
        printed = {name: printed_tensor(out, label, method) for name, label in grad_check.NOTEBOOK_NAMES.items()}
        if method in ("jax", "torch"):
            assert_near_printed(printed, {k: v + 0.5 for k, v in printed_units_float32().items()})  # + our printing
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["w1"], ["b1"], ["w2"], ["b2"])]
    assert len(rows) == 12 and {r[1] for r in rows} == {"manual", "torch", "finite_diff"}
    assert all(r[-1] == "yes" and 0 <= float(r[-2]) <= 1 for r in rows)
    assert out.splitlines()[-1] == "all four agree within their allowances"


def test_script_json_float64_at_the_notebook_weights(script):
    result = script("validate_grads.py", "--params", NOTEBOOK_PARAMS, "--x64", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["mismatches"] == []
    assert (report["dtype"], report["loss"], report["hidden"], report["points"]) == ("float64", "sse", 20, 100)
    assert set(report["grads"]) == {"manual", "jax", "torch", "finite_diff"}
    assert report["rounding_factor"] == grad_error.ROUNDING_FACTOR and report["fd_eps"] == grads.FD_EPS
    g = {m: {k: np.array(v) for k, v in by_name.items()} for m, by_name in report["grads"].items()}
    for method in g:
        assert {k: v.shape for k, v in g[method].items()} == layout.param_shapes(20), method
    for method, by_name in report["report"].items():
        for name, d in by_name.items():
            assert 0 <= d["units"] <= 1 and d["max_abs"] >= 0, (method, name)
    # The weights travel in the report; the float64 gradients are checked here against this process's own float64
    # finite differences, with the allowances the report gives.
    weights = {k: np.array(v) for k, v in report["weights"].items()}
    np.testing.assert_array_equal(weights["w1"], load_params(NOTEBOOK_PARAMS)["w1"])
    x, y = data.notebook_data()
    fd = grads.finite_difference_grads(weights, x, y)
    allowances = {m: {k: np.array(v) for k, v in a.items()} for m, a in report["allowances"].items()}
    for name in PARAM_NAMES:
        assert np.all(np.abs(g["jax"][name] - fd[name]) <= allowances["finite_diff"][name]), name
        assert np.all(np.abs(g["manual"][name] - g["jax"][name]) <= allowances["manual"][name]), name
    # The exact b2 gradient (float64 on the Intel Xeon this was measured on) within the float64 allowance: the last
    # bits are the CPU's summation order.
    assert abs(g["jax"]["b2"][0] - -406.8892705373472) <= allowances["manual"]["b2"][0]
    assert_near_printed(g["jax"], PRINTED_UNITS_FLOAT64)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_script_agrees_at_weights_the_port_trained(tmp_path, script, precision):
    """The issue's case: train_jax.py's own final weights (near a minimum, where the gradient is a small difference of
    large terms) made validate_grads.py cry wolf with fixed relative tolerances. All four methods agree there."""
    trained = train.fit(data.notebook_init_params(), *data.notebook_data(), 0.2).params
    np.savez(tmp_path / "trained.npz", **{k: np.asarray(v) for k, v in trained.items()})
    flags = ["--x64"] if precision == "float64" else []
    for loss in ("sse", "mse"):
        result = script("validate_grads.py", "--params", tmp_path / "trained.npz", "--loss", loss, "--json", *flags)
        assert result.returncode == 0, (loss, result.stdout[-2000:], result.stderr)
        report = json.loads(result.stdout)
        assert report["ok"] is True and report["dtype"] == precision and report["mismatches"] == []


def test_script_exits_1_when_a_method_is_wrong(monkeypatch, capsys):
    """A planted error: the hand formula's b1 gradient off by 1e-3 of itself is named, and only it."""
    manual = grads.manual_grads

    def wrong(params, x, y, loss="sse"):
        g = dict(manual(params, x, y, loss))
        return {**g, "b1": g["b1"] * 1.001}

    monkeypatch.setattr(grads, "manual_grads", wrong)
    code, out = run_main(validate_grads, monkeypatch, capsys, "--params", NOTEBOOK_PARAMS)
    assert code == 1
    last = out.splitlines()[-1]
    assert last.startswith("MISMATCH: manual b1[") and "torch" not in last and "finite_diff" not in last


def test_script_says_what_finite_differences_cannot_judge(tmp_path, monkeypatch, capsys):
    """|w2| = 1e12: the prediction is ~1e13, where float64's spacing swallows the step of 1e-5, so finite differences
    measure nothing for w2 and b2. The allowance says so (it exceeds the gradient) instead of a false disagreement,
    and the report names what could not be judged; the other three agree."""
    params = load_params(NOTEBOOK_PARAMS)
    params["w2"] = np.full((20, 1), 1e12, np.float32)
    np.savez(tmp_path / "huge.npz", **params)
    code, out = run_main(validate_grads, monkeypatch, capsys, "--params", tmp_path / "huge.npz")
    assert code == 0
    assert "finite_diff cannot judge w2, b2 here" in out


def test_weights_whose_loss_overflows_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """|w2| = 1e19 in float32: the loss is inf, so every gradient is inf or NaN. It was a NaN MISMATCH table and
    exit 1; now the weights are refused before the four methods run, and no numpy warning is printed (pytest makes
    one an error)."""
    params = {**load_params(NOTEBOOK_PARAMS), "w2": np.full((20, 1), 1e19, np.float32)}
    np.savez(tmp_path / "huge.npz", **params)
    monkeypatch.setattr(grad_check, "all_methods", lambda *args: pytest.fail("the check ran"))
    with pytest.raises(InputError) as error:
        run_main(validate_grads, monkeypatch, capsys, "--params", tmp_path / "huge.npz")
    assert str(error.value) == (f"{tmp_path / 'huge.npz'}: the loss at these weights is not finite (sse = inf in "
                                "float32): the check needs finite gradients")


def test_weights_around_1e300_in_float64_are_one_line_and_exit_2(tmp_path, script):
    """The reviewer's case: weights ~1e300 with --x64 printed 12 lines of numpy overflow warnings and a NaN MISMATCH
    table (exit 1)."""
    params = {k: v.astype(np.float64) * 1e300 for k, v in load_params(NOTEBOOK_PARAMS).items()}
    np.savez(tmp_path / "huge64.npz", **params)
    result = script("validate_grads.py", "--params", tmp_path / "huge64.npz", "--x64")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"validate_grads.py: error: {tmp_path / 'huge64.npz'}: the loss at these weights is not "
                             "finite (sse = inf in float64): the check needs finite gradients\n")


def test_a_finite_loss_with_an_overflowing_gradient_in_float64_is_one_line_and_exit_2(tmp_path, script):
    """float64's case of test_grad_error.py's: two hidden units at h = 0.5 with output weights +-1e308 that cancel
    exactly, b2 = 100. The loss is finite; d loss / d w1 and b1 are ~1e4 times float64's largest number: inf."""
    params = {"w1": np.zeros((1, 2)), "b1": np.zeros(2), "w2": np.array([[1e308], [-1e308]]), "b2": np.array([100.0])}
    np.savez(tmp_path / "steep64.npz", **params)
    result = script("validate_grads.py", "--params", tmp_path / "steep64.npz", "--x64")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"validate_grads.py: error: {tmp_path / 'steep64.npz'}: the gradient at these "
                                    "weights is not finite (") and result.stderr.count("\n") == 1
    assert "in float64): the check needs finite gradients" in result.stderr


def write_bad_file(tmp_path, kind):
    path = tmp_path / "weights.npz"
    good = {k: v for k, v in load_params(NOTEBOOK_PARAMS).items()}
    if kind == "missing":
        return tmp_path / "nowhere.npz", "no such file"
    if kind == "not_npz":
        path.write_text("w1,b1\n1,2\n")
        return path, "not an .npz file"
    if kind == "missing_key":
        np.savez(path, **{k: v for k, v in good.items() if k != "b2"})
        return path, "missing key 'b2'"
    if kind == "wrong_shape":
        np.savez(path, **{**good, "w2": np.zeros((1, 20), np.float32)})
        return path, "'w2' has shape (1, 20), expected (20, 1)"
    if kind == "object_array":
        np.savez(path, **{**good, "b1": np.array([None, "x"], dtype=object)})
        return path, "unreadable array"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "not_npz", "missing_key", "wrong_shape", "object_array"])
def test_bad_params_file_gets_one_line_and_exit_2(tmp_path, script, kind):
    path, message = write_bad_file(tmp_path, kind)
    result = script("validate_grads.py", "--params", path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("flags,message", [
    (["--params", str(NOTEBOOK_PARAMS), "--hidden", "8"], "'w1' has shape (1, 20), expected (1, 8)"),
    (["--params", str(NOTEBOOK_PARAMS), "--seed", "1"], "not allowed with argument"),
    (["--json", "--print-grads"], "not allowed with argument"),
    (["--loss", "l1"], "invalid choice: 'l1'"),
    (["--hidden", "0"], "--hidden: 0 must be positive"),
    (["--seed", "-1"], "--seed: -1 must not be negative"),
])
def test_bad_flags_get_one_line_and_exit_2(script, flags, message):
    result = script("validate_grads.py", *flags)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_validate_grads_inputs_follow_the_seeds():
    """grad_check.inputs: --torch-seed K gives torch's data and the validation cell's weights after manual_seed(K);
    --seed S the N(0, 1) draw from jax.random.key(S) on the notebook's data."""
    params, x, y, source = grad_check.inputs(torch_seed=7, dtype=jnp.float32)
    tx, ty = data.run_data(torch_seed=7)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(tx))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ty))
    assert not np.array_equal(np.asarray(y), np.asarray(data.notebook_data()[1]))  # x is linspace either way
    assert source == "the validation cell's weights after torch.manual_seed(7)"
    params, _, y, source = grad_check.inputs(seed=3, hidden=5, dtype=jnp.float32)
    assert source == "N(0, 1) draw from jax.random.key(3)"
    want = grad_check.random_params(jax.random.key(3), 5, jnp.float32)
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(np.asarray(params[name]), np.asarray(want[name]), err_msg=name)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(data.notebook_data()[1]))
