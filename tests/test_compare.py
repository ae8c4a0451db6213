"""JAX against torch along whole trajectories (float32 here, float64 in its own process), scripts/compare.py end to
end, and the experiment that attributes the float32 gap to optax's float32 bias corrections."""

import contextlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ROOT, import_script, read_image, run_main, run_script

from jax_impl.core import data, layout, model
from torch_impl.checks import compare as C
from torch_impl.checks import compare_report
from torch_impl.checks.adam_torch import accurate_bias_correction, adam_torch_formula

F32, F64 = C.TOLERANCES["float32"], C.TOLERANCES["float64"]
# The float32 gap is real: JAX (optax.adam) against torch on the notebook's run measured 2.83e-5; it stays above
# 1e-5 unless optax changes how it rounds (then revisit the attribution below).
FLOAT32_GAP_FLOOR = 1e-5
# --x64 on the notebook's run: measured up to 2.6e-15 in the loss and 6.7e-14 in the final parameters; 38x and 15x
# headroom (the run-independent TOLERANCES are looser: they cover the widest and largest runs measured).
X64_LOSS_AGREEMENT, X64_PARAM_AGREEMENT = 1e-13, 1e-12
# The attribution on the notebook's run (relative loss difference against torch float64, float32 runs):
# optax.adam 2.92e-5; with accurate bias corrections 1.47e-6 (optax's formula) and 2.16e-6 (torch's): 19.8x, 13.5x.
BIAS_CORRECTION_FIX_FACTOR = 5  # asserted reduction; 2.7x headroom under the weaker (13.5x) of the two
# torch with optax's float32 bias corrections: 2.84e-5, 0.97 of JAX's gap; those values alone in an otherwise float64
# run: 2.87e-5, 0.98. Forward/backward alone: 0.032 (JAX) and
# 0.021 (torch) of it; the rest of the optimizer's float32 arithmetic alone (torch's): 0.018.
BIAS_CORRECTION_SHARE_FLOOR = 0.8
OTHER_CAUSES_SHARE_CEILING = 0.15  # 4.7x headroom over the largest of those three (0.032)
# Runs that amplify any rounding (the notebook's data): (optimizer, lr, steps). Measured horizons (torch against itself
# past HORIZON_UNITS) float32 192, 130, 34 and float64 191, 134, 32; JAX against torch first passes its allowance at
# 199, 131, 35 (float32) and 194, 138, 35 (float64), so the first verdict fails within these steps (fewer are faster).
AMPLIFYING = [("adamw", 3.0, 201), ("rmsprop", 0.01, 145), ("nadam", 0.2, 40)]
# A planted error: torch's learning rate off by 1e-3 relative. Measured before the horizon, in allowances: NAdam 3.2
# (float32) and 2.6e9 (float64); the notebook's Adam run (no horizon) 3.6 and 4.7e9.
PLANTED_LR = 1.001


@contextlib.contextmanager
def torch_lr_planted(factor: float = PLANTED_LR):
    """Every torch run compare makes (the twin's fit: the nudged run too) trains at lr * factor."""
    fit = C.torch_train.fit
    C.torch_train.fit = lambda net, x, y, lr, **kwargs: fit(net, x, y, lr=lr * factor, **kwargs)
    try:
        yield
    finally:
        C.torch_train.fit = fit


@pytest.fixture(scope="module")
def notebook():
    x, y = data.notebook_data()
    return data.notebook_init_params(), x, y


@pytest.fixture(scope="module", autouse=True)
def float64_script():
    """compare.py --x64 in a fresh process (x64 is global to a process; this one is float32), started before the
    in-process tests so that it runs beside them (it imports jax and torch: seconds); its test at the end waits."""
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(run_script, "compare.py", "--x64", "--json", "--no-plots")


@pytest.fixture(scope="module", autouse=True)
def float64_one_point():
    """compare.py --points 1 --x64: a fit through one point, whose loss passes near zero (a second fresh process)."""
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(run_script, "compare.py", "--points", "1", "--x64", "--json", "--no-plots")


# The child: scripts/compare.py --x64 on the amplifying runs, and with a planted torch learning rate.
CHILD = """
import contextlib, io, json, sys
from jax_impl.app import cli
cli.setup_jax(x64=True)
sys.path.insert(0, 'tests')
from conftest import import_script
from test_compare import AMPLIFYING, torch_lr_planted
script = import_script("compare")


def main(*args):
    sys.argv, out = ["compare.py", "--x64", "--no-cache", "--json", "--no-plots", *map(str, args)], io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            script.main()
            code = 0
        except SystemExit as e:
            code = e.code
    report = json.loads(out.getvalue())
    return {"code": code, "ok": report["ok"], "loss_units": report["loss_units"], "horizon": report["horizon"]}


amplifying = {opt: main("--optimizer", opt, "--lr", lr, "--steps", steps) for opt, lr, steps in AMPLIFYING}
with torch_lr_planted():
    planted = {"adam": main(), "nadam": main("--optimizer", "nadam", "--lr", 0.2, "--steps", 40)}
print(json.dumps({"amplifying": amplifying, "planted": planted}))
"""


@pytest.fixture(scope="module", autouse=True)
def float64_horizons():
    """CHILD in a fresh process (float64), started before the in-process tests so that it runs beside them."""
    def run():
        return subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(run)


@pytest.fixture(scope="module")
def compare_script():
    """scripts/compare.py as a module, for its argument parsing and its main() in this (float32) process."""
    return import_script("compare")


# ---- in process, float32: the library functions ----------------------------------------------------------------

@pytest.mark.parametrize("init", ["notebook", "seed 1"])
def test_float32_trajectories_agree(notebook, init):
    params, x, y = notebook
    if init != "notebook":
        params = model.init_params(jax.random.key(1), 20)
    result = C.compare(params, x, y, lr=0.2, optimizer="adam", steps=201)
    assert result["ok"] and result["diverged"] is None and result["compared_steps"] == 201
    assert FLOAT32_GAP_FLOOR < result["max_rel_loss_diff"] < F32.rel_loss, result["max_rel_loss_diff"]
    assert 0 < result["max_abs_param_diff"] < F32.abs_param, (result["worst_param"], result["max_abs_param_diff"])
    assert 0 < result["max_rel_grad_diff"] < F32.rel_grad, (result["worst_grad"], result["max_rel_grad_diff"])
    # Both curves are the same training run: from the notebook's 0.5-ish start down by two orders of magnitude.
    losses = result["losses"]
    assert losses["jax"][-1] < losses["jax"][0] / 50 and losses["torch"][-1] < losses["torch"][0] / 50


def test_sgd_trajectories_agree(notebook):
    result = C.compare(*notebook, lr=0.2, optimizer="sgd", steps=201)
    assert result["ok"] and 0 < result["max_rel_loss_diff"] < F32.rel_loss


def test_divergence_compares_the_finite_steps(notebook):
    """SGD at lr 100 turns the loss non-finite at step 8 on both sides (docs/numerics.md)."""
    result = C.compare(*notebook, lr=100.0, optimizer="sgd", steps=201)  # 201: the sgd test's compiled program
    assert result["diverged"] == {"jax": 8, "torch": 8} and result["compared_steps"] == 8
    assert result["ok"] and result["max_abs_param_diff"] is None and result["max_rel_loss_diff"] < F32.rel_loss


def test_differences_name_the_worst_tensor():
    ref = {"w1": np.ones((1, 2)), "b1": np.full(2, 0.1), "w2": np.full((2, 1), 4.0), "b2": np.ones(1)}
    other = {**ref, "w2": np.array([[4.0], [3.0]]), "b1": np.array([0.1, 0.6])}
    assert C.max_abs_param_diff(other, ref) == (1.0, "w2")  # absolute: w2's 1.0 beats b1's 0.5
    assert C.max_rel_grad_diff(other, ref) == (pytest.approx(5.0), "b1")  # relative: 0.5 / 0.1 beats 1.0 / 4.0


def test_zero_against_zero_agrees_and_nan_never_does():
    zero = {"w1": np.zeros((1, 2)), "b1": np.zeros(2), "w2": np.ones((2, 1)), "b2": np.ones(1)}
    assert C.max_rel_grad_diff(zero, zero) == (0.0, "w1")
    assert C.rel_tensor_diff(np.array([1e-30, 0.0]), np.zeros(2)) == np.inf
    nan = {**zero, "b1": np.array([np.nan, 0.0])}
    value, name = C.max_rel_grad_diff(nan, zero)
    assert np.isnan(value) and name == "b1"
    assert C.rel_loss_diff(np.array([0.0, 1.0]), np.array([0.0, 2.0])).tolist() == [0.0, 0.5]


def test_an_output_layer_of_zeros_agrees(notebook):
    """w2 = 0 makes the initial w1 and b1 gradients exactly 0 in both frameworks: agreement, not a 0/0 NaN."""
    params, x, y = notebook
    params = {**params, "w2": jnp.zeros_like(params["w2"])}
    result = C.compare(params, x, y, lr=0.2, optimizer="adam", steps=5)
    assert result["ok"] is True and np.isfinite(result["max_rel_grad_diff"]), result["max_rel_grad_diff"]
    assert result["max_rel_grad_diff"] < F32.rel_grad


def test_the_cross_check_runs_at_full_float32_precision(notebook, monkeypatch):
    """On a GPU JAX's default matmul precision and torch's cuDNN may use TF32; compare() runs both sides at full
    float32 (precision.full_float32): here (CPU), that the setting is in force while the gradients are taken."""
    from torch_impl.checks import precision

    seen = []
    for name in ("jax_grads", "torch_grads"):
        original = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, _f=original, **k: (seen.append(precision.in_force()), _f(*a, **k))[1])
    params, x, y = notebook
    assert not precision.in_force()
    C.compare(params, x, y, lr=0.2, optimizer="adam", steps=3)
    assert seen == [True, True] and not precision.in_force()


# ---- the attribution: its building blocks are faithful, then the measured result -------------------------------

def test_reimplemented_optax_adam_is_optax_adam(notebook):
    """The attribution swaps optax's bias corrections in a copy of its arithmetic: the copy must be exact."""
    params, x, y = notebook
    ours = C.jax_optimizer_run(C.scale_by_adam_optax_formula(C.optax_bias_correction, 0.2), params, x, y, 60)
    theirs = C.jax_optimizer_run(optax.adam(0.2), params, x, y, 60)
    np.testing.assert_array_equal(ours.losses, theirs.losses)
    for name in params:
        np.testing.assert_array_equal(ours.params[name], theirs.params[name], err_msg=name)


def test_manual_torch_adam_is_torch_optim_adam(notebook):
    """And the manual torch Adam (which takes optax's bias corrections in the experiment) is torch.optim.Adam."""
    params, x, y = notebook
    ours = C.torch_adam_run(params, C.torch_loss_and_grads(x, y, "float32"), lr=0.2, steps=60, dtype="float32")
    theirs = C.torch_run(params, x, y, lr=0.2, optimizer="adam", steps=60, dtype="float32")
    np.testing.assert_array_equal(ours.losses, theirs.losses)
    for name in params:
        np.testing.assert_array_equal(ours.params[name], theirs.params[name], err_msg=name)


def test_bias_corrections():
    """optax's float32 1 - 0.999**t is off by 6.6e-6 to 2.0e-5 relative for t <= 201; the accurate one by <= 3e-7."""
    counts = jnp.arange(1, 10_001, dtype=jnp.int32)
    exact = -np.expm1(np.arange(1, 10_001) * np.log(0.999))
    accurate = np.asarray(jax.jit(lambda c: accurate_bias_correction(0.999, c, jnp.float32))(counts))
    optax_way = np.asarray(jax.jit(lambda c: C.optax_bias_correction(0.999, c, jnp.float32))(counts))
    assert np.max(np.abs(accurate / exact - 1)) < 1e-6  # a few float32 ulps
    assert np.min(np.abs(optax_way[:201] / exact[:201] - 1)) > 5e-6


@pytest.fixture(scope="module")
def float32_gap(notebook):
    """Each variant's max relative loss difference against torch float64 on the notebook's run (201 steps)."""
    params, x, y = notebook
    reference, variants = C.attribute_float32_gap(params, x, y, lr=0.2, steps=201)
    return {v.name: float(C.rel_loss_diff(v.run.losses, reference.losses).max()) for v in variants}, variants, reference


def test_float32_gap_is_optax_bias_corrections(float32_gap):
    gap, _, _ = float32_gap
    jax_gap = gap["JAX float32, optax.adam"]
    assert FLOAT32_GAP_FLOOR < jax_gap < F32.rel_loss
    assert FLOAT32_GAP_FLOOR < gap["JAX float32, optax.adam, train.fit"] < F32.rel_loss  # the port's fused program
    assert gap["torch float32, torch.optim.Adam"] < jax_gap / BIAS_CORRECTION_FIX_FACTOR
    # (a) off: accurate bias corrections close the gap, with optax's formula or torch's (adam_torch_formula).
    assert gap["JAX float32, optax formula, accurate bias corr."] < jax_gap / BIAS_CORRECTION_FIX_FACTOR
    assert gap["JAX float32, torch formula, accurate bias corr."] < jax_gap / BIAS_CORRECTION_FIX_FACTOR
    # (a) on: optax's bias corrections open it again, in JAX with torch's formula and in torch itself.
    assert gap["JAX float32, torch formula, optax's bias corr."] > BIAS_CORRECTION_SHARE_FLOOR * jax_gap
    assert gap["torch float32, manual Adam, optax's bias corr."] > BIAS_CORRECTION_SHARE_FLOOR * jax_gap
    assert gap["fwd/bwd float64, optax.adam float32"] > BIAS_CORRECTION_SHARE_FLOOR * jax_gap  # exact grads: no help
    assert gap["float64 throughout but optax's bias corr."] > BIAS_CORRECTION_SHARE_FLOOR * jax_gap  # (a) alone
    # The other candidates alone: each a small fraction of it.
    for name in ("JAX fwd/bwd float32, Adam float64", "torch fwd/bwd float32, Adam float64",
                 "fwd/bwd float64, torch Adam float32"):
        assert 0 < gap[name] < OTHER_CAUSES_SHARE_CEILING * jax_gap, (name, gap[name])


def test_adam_torch_formula_is_a_drop_in(notebook, float32_gap):
    """adam_torch_formula(lr) is the attribution's "torch formula, accurate bias corr." run; against torch float32
    itself it is as close as two float32 forward/backward passes allow (measured 1.4e-6)."""
    params, x, y = notebook
    _, variants, _ = float32_gap
    ours = next(v.run for v in variants if v.name == "JAX float32, torch formula, accurate bias corr.")
    torch32 = next(v.run for v in variants if v.name == "torch float32, torch.optim.Adam")
    assert C.rel_loss_diff(ours.losses, torch32.losses).max() < FLOAT32_GAP_FLOOR
    tx = adam_torch_formula(0.2)  # the public constructor builds that same transformation
    updates, _ = jax.jit(tx.update)(params, tx.init(params))
    np.testing.assert_allclose(updates["b2"], -0.2 * np.sign(params["b2"]), rtol=1e-6)  # first Adam step: -lr sign(g)


# ---- the script, in fresh processes -----------------------------------------------------------------------------

def test_script_float32(compare_script, tmp_path, monkeypatch, capsys):
    code, out = run_main(compare_script, monkeypatch, capsys, "--no-cache", "--json", "--out", tmp_path)
    assert code == 0
    report = json.loads(out)
    assert {"dtype", "steps", "max_rel_loss_diff", "max_abs_param_diff", "max_rel_grad_diff", "ok", "tolerances",
            "worst_step", "worst_param", "worst_grad", "losses", "plot"} <= report.keys()
    assert report["dtype"] == "float32" and report["steps"] == 201 and report["ok"] is True
    assert report["tolerances"] == F32._asdict()
    assert FLOAT32_GAP_FLOOR < report["max_rel_loss_diff"] < F32.rel_loss
    assert 0 < report["max_abs_param_diff"] < F32.abs_param and report["worst_param"] in layout.PARAM_NAMES
    assert 0 < report["max_rel_grad_diff"] < F32.rel_grad
    assert len(report["losses"]["jax"]) == len(report["losses"]["torch"]) == 201
    image = read_image(tmp_path / "compare.png")
    assert image["size"][0] >= 800 and image["size"][1] >= 300 and image["grey_levels"] > 20, image
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.png"]  # no temporary file left behind


def test_script_text_report(compare_script, monkeypatch, capsys):
    """The notebook's run: the verdict as it was, from one torch run (no run against itself where it agrees)."""
    runs = []
    monkeypatch.setattr(C, "torch_run", lambda *a, _f=C.torch_run, **k: (runs.append(1), _f(*a, **k))[1])
    code, out = run_main(compare_script, monkeypatch, capsys, "--no-cache", "--no-plots")
    assert code == 0 and len(runs) == 1
    assert "losses: max relative difference" in out and "final parameters" in out and out.rstrip().endswith("agree")


def test_attribution_table(float32_gap, notebook):
    gap, variants, reference = float32_gap
    gradients = {"initial": C.gradient_gap(*notebook)}
    lines, rows = compare_report.attribution_lines(reference.losses, variants, gradients)
    assert [r["variant"] for r in rows] == list(gap) and len(rows) == 12
    by_name = {r["variant"]: r for r in rows}
    assert by_name["JAX float32, optax.adam"]["share_of_optax_adam_gap"] == 1.0
    assert by_name["JAX float32, optax formula, accurate bias corr."]["share_of_optax_adam_gap"] < 0.2
    assert all(any(name in line for line in lines) for name in gap)
    assert lines[:2] == ["", "What the float32 gap is made of: each variant against torch float64 (same weights and "
                             "data)."]
    assert [line for line in lines if line.startswith("  JAX float32, optax.adam ")][0].endswith(" 1.000")
    g = gradients["initial"]  # float32 gradients at fixed weights: both frameworks at float32 rounding (1.1e-6)
    assert 0 < g["jax_vs_torch_float32"] < F32.rel_grad and 0 < g["jax_float32_vs_float64"] < F32.rel_grad


def test_script_mismatch_exits_1(compare_script, monkeypatch, capsys):
    """Tolerances tighter than float32 can meet: the same run must then be reported as a disagreement."""
    monkeypatch.setitem(C.TOLERANCES, "float32", C.Tolerance(rel_loss=1e-9, abs_param=1e-9, rel_grad=1e-9))
    code, out = run_main(compare_script, monkeypatch, capsys, "--no-cache", "--json", "--no-plots")
    assert code == 1 and json.loads(out)["ok"] is False


def test_script_float64_in_its_own_process(float64_script):
    run = float64_script.result()
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["dtype"] == "float64" and report["ok"] is True and report["tolerances"] == F64._asdict()
    assert report["horizon"] is None  # it agreed: no run against itself
    assert report["max_rel_loss_diff"] < X64_LOSS_AGREEMENT
    assert report["max_abs_param_diff"] < X64_PARAM_AGREEMENT
    assert report["max_rel_grad_diff"] < F64.rel_grad


# ---- near a zero loss: the rounding floor (issue 19, kind 3) ----------------------------------------------------

def test_one_point_float64_agrees_where_a_relative_difference_says_nothing(float64_one_point):
    """One point, float64: the losses fall to ~1e-11 and differ there by ~1e-10 of themselves (above rel_loss
    1e-12, so the bare relative verdict said DISAGREE) while the final weights agree to ~2e-15."""
    run = float64_one_point.result()
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] is True and report["points"] == 1
    assert report["max_rel_loss_diff"] > F64.rel_loss  # the old verdict's failure, still measured and reported
    assert report["loss_floor_steps"] > 0 and report["loss_units"] <= 1
    assert report["max_abs_param_diff"] < X64_PARAM_AGREEMENT


@pytest.mark.parametrize("points, hidden, steps", [(1, 20, 201), (2, 1, 201), (1, 1, 2000)])
def test_tiny_fits_agree_in_float32(points, hidden, steps):
    """One or two points, one hidden unit, a long run: the loss goes near zero and stays within the floor."""
    x, y = data.make_data(jax.random.key(0), points)
    params = model.init_params(jax.random.key(1), hidden)
    result = C.compare(params, x, y, lr=0.2, optimizer="adam", steps=steps)
    assert result["ok"] is True and result["loss_units"] <= 1, compare_report.summary_lines(result)


def test_a_planted_difference_near_zero_loss_is_still_caught():
    """The floor is the residuals' rounding and drift, not a blanket: one point, float32, at its lowest loss (5e-7 at
    t = 48: a residual of 7e-4) the floor is 2 |r| e with e = drift * r_err ~ 5e-5, about 2e-7 (measured 2.1e-7); a
    loss off by 1e-5 there is some 50 allowances out, and the other steps stay within theirs."""
    x, y = data.make_data(jax.random.key(0), 1)
    params = model.init_params(jax.random.key(1), 20)
    torch_run = C.torch_run(params, x, y, lr=0.2, optimizer="adam", steps=50, dtype="float32")
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    reference = torch_run.losses
    t = int(np.argmin(reference))
    assert reference[t] < 1e-6  # the run does reach the region the floor is for
    _, units = C.loss_allowance(reference, reference, torch_run.trail, x64, y64, F32, "float32")
    assert np.all(units == 0)  # equal losses are 0 units, even at a zero loss
    planted = reference.copy()
    planted[t] += 1e-5
    _, units = C.loss_allowance(planted, reference, torch_run.trail, x64, y64, F32, "float32")
    assert units[t] > 10 and np.sum(units > 1) == 1


# ---- runs that amplify rounding: judged up to their horizon ---------------------------------------------------------

def test_nudged_weights_are_one_rounding_apart(notebook):
    params = {k: np.asarray(v) for k, v in notebook[0].items()}
    for name, moved in C.nudged(params).items():
        assert moved.dtype == params[name].dtype == np.float32
        assert np.all(moved > params[name]) and np.all(moved == np.nextafter(params[name], np.inf)), name


@pytest.mark.parametrize("optimizer, lr, steps", AMPLIFYING)
def test_runs_that_amplify_rounding_agree_up_to_their_horizon(compare_script, monkeypatch, capsys, optimizer, lr,
                                                              steps):
    """AdamW lr 3, RMSprop lr 0.01, NAdam lr 0.2: JAX against torch passes its allowance (the first verdict fails,
    and is still reported), and so does torch against itself from weights one rounding apart; the steps before its
    horizon agree, and the run exits 0."""
    code, out = run_main(compare_script, monkeypatch, capsys, "--no-cache", "--json", "--no-plots", "--optimizer",
                         optimizer, "--lr", lr, "--steps", steps)
    report = json.loads(out)
    horizon = report["horizon"]
    assert code == 0 and report["ok"] is True and report["loss_units"] > 1, (report["loss_units"], horizon)
    assert 0 < horizon["step"] < steps and horizon["loss_units_before"] <= 1, horizon
    assert horizon["units"] > 1 and horizon["units_step"] >= horizon["step"], horizon


def test_the_horizon_in_the_text_report(compare_script, monkeypatch, capsys):
    code, out = run_main(compare_script, monkeypatch, capsys, "--no-cache", "--no-plots", "--optimizer", "nadam",
                         "--lr", 0.2, "--steps", 40)
    verdict = out.rstrip().splitlines()[-1]
    assert code == 0 and verdict.startswith("  agree up to step ") and verdict.endswith("): not judged"), verdict
    assert "beyond it the run amplifies rounding (torch against itself from weights one rounding apart parts by" \
        in verdict


@pytest.mark.parametrize("args", [[], ["--optimizer", "nadam", "--lr", 0.2, "--steps", 40]], ids=["adam", "nadam"])
def test_a_planted_learning_rate_is_still_caught(compare_script, monkeypatch, capsys, args):
    """torch's lr off by 1e-3: on the notebook's Adam run torch against itself stays within its allowance (no
    horizon); on NAdam lr 0.2 the error shows before the horizon."""
    with torch_lr_planted():
        code, out = run_main(compare_script, monkeypatch, capsys, "--no-cache", "--json", "--no-plots", *args)
    report = json.loads(out)
    horizon = report["horizon"]
    assert code == 1 and report["ok"] is False and report["loss_units"] > 1
    if args:
        assert horizon["step"] is not None and horizon["loss_units_before"] > 1, horizon
    else:
        assert horizon["step"] is None and horizon["units"] < C.HORIZON_UNITS, horizon


def test_float64_horizons_in_their_own_process(float64_horizons):
    """The same in float64: the amplifying runs exit 0 up to their horizon, the planted learning rate exits 1."""
    run = float64_horizons.result()
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for optimizer, _, steps in AMPLIFYING:
        result = results["amplifying"][optimizer]
        assert result["code"] == 0 and result["ok"] is True and result["loss_units"] > 1, (optimizer, result)
        assert 0 < result["horizon"]["step"] < steps and result["horizon"]["loss_units_before"] <= 1, result
    adam, nadam = results["planted"]["adam"], results["planted"]["nadam"]
    assert adam["code"] == nadam["code"] == 1 and adam["horizon"]["step"] is None, adam
    assert nadam["horizon"]["step"] is not None and nadam["horizon"]["loss_units_before"] > 1, nadam


def test_script_divergence_exits_3_without_a_plot(compare_script, tmp_path, monkeypatch, capsys):
    code, out = run_main(compare_script, monkeypatch, capsys, "--no-cache", "--optimizer", "sgd", "--lr", "100",
                         "--json", "--out", tmp_path)
    assert code == 3
    report = json.loads(out)
    assert report["diverged"] == {"jax": 8, "torch": 8} and report["compared_steps"] == 8
    assert report["losses"]["jax"][8] is None and report["max_abs_param_diff"] is None
    assert not (tmp_path / "compare.png").exists()


@pytest.mark.parametrize("args", [["--steps", "0"], ["--steps", "-3"], ["--steps", "x"], ["--lr", "nan"],
                                  ["--lr", "0"], ["--lr", "inf"], ["--optimizer", "lbfgs"], ["--hidden", "0"],
                                  ["--points", "0"], ["--noise", "-1"], ["--attribute", "--x64"],
                                  ["--attribute", "--optimizer", "sgd"], ["--bogus"]])
def test_bad_flags(compare_script, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        compare_script.parse_args(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


@pytest.mark.parametrize("args", [["--lr", "-1"], ["--attribute", "--x64"]])
def test_script_bad_flags_one_line(args):
    run = run_script("compare.py", *args)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "error" in run.stderr and "Traceback" not in run.stderr


def test_script_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = run_script("compare.py", "--out", blocker / "out")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "cannot write" in run.stderr
    assert blocker.read_text() == "not a folder"


def test_summary_lines_in_full():
    """compare_report.summary_lines on a made-up result: every number where the reader looks for it, the weight scale
    only where the tolerance was scaled (a largest weight above 1), the rounding floor only where it settled steps."""
    result = {"dtype": "float32", "optimizer": "adam", "lr": 0.2, "steps": 201, "points": 100, "hidden": 20,
              "tolerances": {"rel_loss": 1e-4, "abs_param": 1e-3, "rel_grad": 1e-4, "drift": 1e-6},
              "max_rel_loss_diff": 2.5e-6, "worst_step": 17, "loss_units": 0.25, "loss_units_step": 18,
              "loss_floor_steps": 2, "compared_steps": 201, "max_abs_param_diff": 4e-5, "worst_param": "w2",
              "param_scale": 3.25, "max_rel_grad_diff": 1e-7, "worst_grad": "b1", "grad_units": 0.125,
              "grad_units_tensor": "w1", "ok": True, "diverged": False, "horizon": None}
    assert compare_report.summary_lines(result) == [
        "JAX against torch, float32, adam lr 0.2, 201 steps, 100 points, hidden 20",
        "  losses: max relative difference 2.500e-06 at t = 17; 0.25 of the allowance at worst (t = 18; tolerance "
        "1e-04 relative + both losses' rounding and 1e-06 drift; the rounding floor settles 2 steps where the loss is "
        "too near zero for a relative difference; 201 steps compared)",
        "  final parameters: max absolute difference 4.000e-05 (w2; tolerance 1e-03 x largest weight 3.25)",
        "  initial gradients: max relative difference 1.000e-07 (b1); 0.125 of the allowance at worst (w1; tolerance "
        "1e-04 relative + both sides' rounding)",
        "  agree"]
    plain = compare_report.summary_lines({**result, "param_scale": 1.0, "loss_floor_steps": 0, "diverged": True})
    assert plain[2] == "  final parameters: max absolute difference 4.000e-05 (w2; tolerance 1e-03)"
    assert "rounding floor" not in plain[1] and plain[4] == "  agree (on the steps before the loss turned non-finite)"
    failed = compare_report.summary_lines({**result, "ok": False, "diverged": True, "max_abs_param_diff": None})
    assert failed[2] == "  final parameters: max absolute difference not compared (diverged)"
    assert failed[4] == "  DISAGREE"
    horizon = {"step": 34, "units": 6.25, "units_step": 40, "loss_units_before": 0.5}
    assert compare_report.summary_lines({**result, "horizon": horizon})[4] == (
        "  agree up to step 34; beyond it the run amplifies rounding (torch against itself from weights one rounding "
        "apart parts by 6.25 allowances at step 40): not judged")
    assert compare_report.summary_lines({**result, "ok": False, "horizon": horizon})[4].startswith(
        "  DISAGREE before step 34; beyond it")
    within = {**horizon, "step": None, "units": 0.0005, "units_step": 46}
    assert compare_report.summary_lines({**result, "ok": False, "horizon": within})[4] == (
        "  DISAGREE (torch against itself from weights one rounding apart stays within its allowance: 0.0005 at most, "
        "at step 46)")


def test_the_json_report_has_no_nan_and_keeps_its_keys():
    """compare_report.as_json: the loss curves and the per-step allowance as lists under their own keys, a
    non-finite value as null (JSON has no NaN); every other entry as it was."""
    result = {"ok": False, "dtype": "float32", "loss_allowance": np.array([0.5, np.inf]),
              "losses": {"jax": np.array([1.0, np.nan]), "torch": np.array([1.0, 2.0])}}
    report = compare_report.as_json(result)
    assert report == {"ok": False, "dtype": "float32", "losses": {"jax": [1.0, None], "torch": [1.0, 2.0]},
                      "loss_allowance": [0.5, None]}
    assert json.loads(json.dumps(report, allow_nan=False)) == report


# ---- files it writes at its end: checked before the runs, a pair of records whole or not at all --------------------

def run_cli(module, monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python scripts/compare.py ARGS` in this process: main() under cli.run_main,
    which turns an InputError into its one line and exit 2."""
    import sys

    from jax_impl.app import cli

    monkeypatch.setattr(sys, "argv", ["compare.py", *map(str, args)])
    try:
        cli.run_main(module.main)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _no_runs(monkeypatch):
    monkeypatch.setattr(C, "compare", lambda *a, **k: pytest.fail("ran before refusing"))


def test_script_refuses_a_record_pair_it_cannot_write_before_the_runs(compare_script, tmp_path, monkeypatch, capsys):
    _no_runs(monkeypatch)
    (tmp_path / "r-torch.safetensors").mkdir()
    code, out, err = run_cli(compare_script, monkeypatch, capsys, "--steps", "3", "--no-plots", "--record",
                             tmp_path / "r.safetensors")
    assert (code, out) == (2, "")
    assert err == f"compare.py: error: --record {tmp_path}/r-torch.safetensors: is a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r-torch.safetensors"]  # no r-jax: no half pair
    code, _, err = run_cli(compare_script, monkeypatch, capsys, "--steps", "3", "--no-plots", "--record",
                           "/proc/r.safetensors")
    assert code == 2 and err.startswith("compare.py: error: --record /proc/r-jax.safetensors: cannot write there: ")
    assert err.count("\n") == 1


def test_script_refuses_a_picture_it_cannot_write_before_the_runs(compare_script, tmp_path, monkeypatch, capsys):
    _no_runs(monkeypatch)
    (tmp_path / "compare.png").mkdir()
    code, out, err = run_cli(compare_script, monkeypatch, capsys, "--steps", "3", "--out", tmp_path)
    assert (code, out) == (2, "")
    assert err == f"compare.py: error: --out {tmp_path}/compare.png: is a folder\n"


def test_script_refuses_a_record_over_its_init_weights(compare_script, notebook, tmp_path, monkeypatch, capsys):
    from jax_impl.files import weights

    _no_runs(monkeypatch)
    init = tmp_path / "w-jax.safetensors"
    weights.write(init, data.as_numpy(notebook[0]))
    before = init.read_bytes()
    code, out, err = run_cli(compare_script, monkeypatch, capsys, "--steps", "3", "--no-plots", "--init", init,
                             "--record", tmp_path / "w.safetensors")
    assert (code, out) == (2, "")
    assert err == (f"compare.py: error: --record {tmp_path}/w.safetensors: would write {init} over the --init "
                   "weights\n")
    assert init.read_bytes() == before and not (tmp_path / "w-torch.safetensors").exists()


@pytest.mark.parametrize("side", ["jax", "torch"])
def test_a_record_pair_whose_move_fails_leaves_neither(compare_script, tmp_path, monkeypatch, capsys, side):
    """The pair goes to temporaries, then into place torch first, jax last: a failure of either move leaves no file
    (the torch one already moved is taken out again), no temporaries."""
    import os

    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(f"r-{side}.safetensors"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    code, out, err = run_cli(compare_script, monkeypatch, capsys, "--steps", "3", "--no-plots", "--record",
                             tmp_path / "r.safetensors")
    assert code == 2 and out == ""
    assert err == f"compare.py: error: cannot write {tmp_path}/r-{side}.safetensors: No space left on device\n"
    assert list(tmp_path.iterdir()) == []


def test_a_record_pair_is_checked_as_the_two_files_it_writes(compare_script, tmp_path):
    """--record FILE writes FILE-jax and FILE-torch, not FILE: a folder named FILE is no obstacle, a folder at
    FILE-jax is (recording.check_record_flags(pair=True))."""
    (tmp_path / "r").mkdir()
    args = compare_script.parse_args(["--steps", "3", "--no-plots", "--record", str(tmp_path / "r")])
    assert args.record == str(tmp_path / "r")
    (tmp_path / "r-jax.safetensors").mkdir()
    with pytest.raises(SystemExit) as e:
        compare_script.parse_args(["--steps", "3", "--no-plots", "--record", str(tmp_path / "r")])
    assert e.value.code == 2
