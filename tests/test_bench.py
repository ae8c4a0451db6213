"""scripts/bench.py's own logic (records complete, timings positive, the JSON schema, a --tiny run end to end), and
the fused run it measures: train.closed_form_grads against jax.value_and_grad, train.fit against train.fit_autodiff.
Timings are never asserted: they belong to the benchmark, not to the tests."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, import_script, read_image

from jax_impl import data, model, train

bench = import_script("bench")

# closed_form_grads against autodiff, float32, each tensor's largest difference over its largest entry. Measured over
# seeds 0-4: 2.1e-6 at 100 x 20, 4.8e-6 at 1000 x 20, 2.7e-6 at 100 x 256, 5.2e-6 at 2000 x 20, 1.6e-5 at 10^4 x 20
# (sums over the points of terms of both signs cancel, so rounding is relative to the sum of magnitudes). Loss and
# prediction: <= 6e-7.
GRAD_F32 = 5e-5
OUTPUT_F32 = 2e-6
# float64 (its own process: x64 is global): the same arithmetic, summed in another order. Measured <= 3e-15.
GRAD_F64 = 1e-12
# fit against fit_autodiff over the notebook's 201 steps, float32: the per-step rounding above, carried through
# training. Measured: losses 8.6e-7 (Adam) and 2.2e-6 (SGD) relative; parameters 5.1e-6 of each tensor's largest
# entry; snapshots 4.2e-7 absolute (predictions of size ~1).
FIT_LOSS_F32 = 2e-5
FIT_PARAM_F32 = 5e-5
FIT_SNAPSHOT_F32 = 1e-5


def sizes():
    """The notebook's data and weights, and fresh draws at sizes on both sides of train.MATVEC_UP_TO."""
    yield "notebook", (*data.notebook_data(), data.notebook_init_params())
    for points, hidden in [(37, 5), (1000, 20), (100, 256), (2000, 20)]:
        x, y = data.make_data(jax.random.key(points), points, 0.2)
        yield f"{points}x{hidden}", (x, y, model.init_params(jax.random.key(hidden), hidden))


@pytest.mark.parametrize("name,case", list(sizes()), ids=lambda v: v if isinstance(v, str) else "")
def test_closed_form_grads_equal_autodiff(name, case):
    x, y, params = case
    (loss, prediction), grads = jax.value_and_grad(train.loss_and_prediction, has_aux=True)(params, x, y)
    fused_loss, fused_prediction, packed = jax.jit(train.closed_form_grads)(train.pack(params), x, y)
    np.testing.assert_allclose(fused_loss, loss, rtol=OUTPUT_F32)
    np.testing.assert_allclose(fused_prediction, prediction, rtol=0, atol=OUTPUT_F32)
    fused = train.unpack(packed)
    for k, g in grads.items():
        assert fused[k].shape == g.shape, k
        worst = float(jnp.max(jnp.abs(fused[k] - g)) / jnp.max(jnp.abs(g)))
        assert worst <= GRAD_F32, f"{name} d{k}: {worst:.2e} > {GRAD_F32}"
    assert np.all(np.asarray(packed[3, 1:]) == 0)  # the padding's gradient: Adam and SGD leave it at zero


def test_closed_form_grads_equal_autodiff_in_float64():
    code = """
import jax; jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from jax_impl import data, model, train
worst = 0.0
for points, hidden in [(100, 20), (2000, 20)]:  # each side of train.MATVEC_UP_TO
    x, y = data.make_data(jax.random.key(0), points, 0.2, jnp.float64)
    params = model.init_params(jax.random.key(1), hidden, jnp.float64)
    (loss, _), grads = jax.jit(jax.value_and_grad(train.loss_and_prediction, has_aux=True))(params, x, y)
    fused_loss, _, packed = jax.jit(train.closed_form_grads)(train.pack(params), x, y)
    assert packed.dtype == jnp.float64
    fused = train.unpack(packed)
    worst = max([worst, abs(float(fused_loss - loss)) / float(loss)]
                + [float(jnp.max(jnp.abs(fused[k] - g)) / jnp.max(jnp.abs(g))) for k, g in grads.items()])
print(worst)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) <= GRAD_F64


def test_pack_unpack_round_trip():
    params = model.init_params(jax.random.key(3), 7)
    packed = train.pack(params)
    assert packed.shape == (4, 7)
    back = train.unpack(packed)
    for k, v in params.items():
        assert back[k].shape == v.shape and np.array_equal(back[k], v), k


@pytest.mark.parametrize("optimizer,points", [("adam", 100), ("sgd", 100), ("adam", 2000)])  # 2000 x 20: products
def test_fit_equals_fit_autodiff(optimizer, points):
    if points == 100:
        (x, y), params = data.notebook_data(), data.notebook_init_params()
    else:
        x, y = data.make_data(jax.random.key(0), points, 0.2)
        params = model.init_params(jax.random.key(1), 20)
    fused = train.fit(params, x, y, 0.2, optimizer=optimizer)
    reference = train.fit_autodiff(params, x, y, 0.2, optimizer=optimizer)
    assert fused.losses.shape == reference.losses.shape == (201,)
    assert fused.snapshots.shape == reference.snapshots.shape == (11, points, 1)
    np.testing.assert_allclose(fused.losses, reference.losses, rtol=FIT_LOSS_F32)
    np.testing.assert_allclose(fused.snapshots, reference.snapshots, rtol=0, atol=FIT_SNAPSHOT_F32)
    for k, p in reference.params.items():
        worst = float(jnp.max(jnp.abs(fused.params[k] - p)) / jnp.max(jnp.abs(p)))
        assert fused.params[k].shape == p.shape and worst <= FIT_PARAM_F32, (k, worst)


@pytest.mark.parametrize("steps,every", [(7, 1), (45, 20), (40, 20)])  # no inner scan; a remainder; none
def test_fit_snapshot_chunks(steps, every):
    """Chunks of `every` steps plus a remainder: the same losses and snapshot slots as the per-step select."""
    (x, y), params = data.notebook_data(), data.notebook_init_params()
    fused = train.fit(params, x, y, 0.2, steps=steps, every=every)
    reference = train.fit_autodiff(params, x, y, 0.2, steps=steps, every=every)
    assert fused.losses.shape == (steps,) and fused.snapshots.shape == reference.snapshots.shape
    np.testing.assert_allclose(fused.losses, reference.losses, rtol=FIT_LOSS_F32)
    np.testing.assert_allclose(fused.snapshots, reference.snapshots, rtol=0, atol=FIT_SNAPSHOT_F32)


def test_fit_diverges_where_autodiff_does():
    """The closed-form loss overflows where jnp.mean(r**2) does (NUMERICS.md: SGD lr 10 -> step 14, 100 -> 8)."""
    (x, y), params = data.notebook_data(), data.notebook_init_params()
    for lr, step in [(10.0, 14), (100.0, 8), (300.0, 6)]:
        for fit in (train.fit, train.fit_autodiff):
            assert train.first_nonfinite_step(fit(params, x, y, lr, optimizer="sgd", steps=30).losses) == step


def test_fit_is_one_kernel_at_the_notebook_size_only():
    """With the small-loop flag (conftest sets it, as cli.setup_jax does), fit's whole scan at the notebook's size
    compiles to one kernel (XLA marks the hoisted loop xla_cpu_small_call); at 1000 x 20 it stays kernel by kernel."""
    (x, y), params = data.notebook_data(), data.notebook_init_params()
    small = train.jitted_fit(params, x).lower(params, x, y, 0.2).compile().as_text()
    assert "xla_cpu_small_call" in small
    x, y = data.make_data(jax.random.key(0), 1000, 0.2)
    large = train.jitted_fit(params, x).lower(params, x, y, 0.2).compile().as_text()
    assert "xla_cpu_small_call" not in large and "while(" in large


def test_fit_inside_an_outer_jit_with_concrete_arguments():
    """fit called inside a caller's jit (its arguments closed over, so not tracers) runs as part of that program: no
    compiler options of its own, which jax refuses on a nested jit. Same run as at top level, to float32 rounding."""
    (x, y), params = data.notebook_data(), data.notebook_init_params()
    inside = jax.jit(lambda: train.fit(params, x, y, 0.2, steps=40).losses)()
    np.testing.assert_allclose(inside, train.fit(params, x, y, 0.2, steps=40).losses, rtol=FIT_LOSS_F32)


ENABLE = "from jax_impl import xla_cpu; import os; print(xla_cpu.enable_small_loop_kernels(), os.environ['XLA_FLAGS'])"


@pytest.mark.parametrize("before,code,expected", [
    ("", ENABLE, "True --xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=131072"),
    ("--xla_force_host_platform_device_count=2", ENABLE, "True --xla_force_host_platform_device_count=2 "
     "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=131072"),
    ("--xla_backend_extra_options=a=1", ENABLE,  # the user's backend options kept, ours added to their list
     "True --xla_backend_extra_options=a=1,xla_cpu_small_while_loop_byte_threshold=131072"),
    ("--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=7", ENABLE,  # the user's threshold wins
     "True --xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=7"),
    ("", "import jax; jax.numpy.zeros(1); " + ENABLE, "False "),  # the backend already started: too late
])
def test_enable_small_loop_kernels(before, code, expected):
    env = {k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"} | {"XLA_FLAGS": before}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected.strip()


# --- the benchmark's logic --------------------------------------------------------------------------------------------

def test_time_runs_first_call_apart_and_repeats_within_bounds(monkeypatch):
    """Scripted durations instead of a clock, so that the count of warm-ups does not hang on sleep's jitter."""
    # first call (a compilation); a warm-up 30x faster; a warm-up not 20% faster (warm-ups stop); six timed runs
    durations = iter([3.0, 0.1, 0.095] + [0.1, 0.12, 0.08, 0.1, 0.11, 0.09])
    monkeypatch.setattr(bench, "_timed", lambda run: next(durations))
    timing = bench.time_runs(lambda: None, repeats=6, budget_s=10.0)
    assert timing == {"compile_s": 3.0, "median_s": pytest.approx(0.1), "min_s": 0.08, "max_s": 0.12, "repeats": 6}
    assert next(durations, None) is None  # every scripted call was made, no more
    monkeypatch.setattr(bench, "_timed", lambda run: 0.01)
    slow = bench.time_runs(lambda: None, repeats=50, budget_s=0.01)
    assert slow["repeats"] == bench.MIN_REPEATS  # over budget: stop at the minimum, never below


def test_flops_per_step_at_the_notebook_size():
    # 12 N H + 6 N + 2 H + 14 (3 H + 1) = 24000 + 600 + 40 + 854
    assert bench.flops_per_step(100, 20) == 25494


def record(framework, variant, median, points=100, hidden=20, models=1):
    timing = {"compile_s": 0.5, "median_s": median, "min_s": median, "max_s": median, "repeats": 3}
    return bench.make_record(framework, variant, "cpu", points, hidden, 201, models, timing)


def test_table_and_targets_from_records():
    floor = record("jax", "arithmetic floor", 0.001) | {"paired_ratio_median": 1.8, "paired_ratio_p25": 1.7,
                                                         "paired_ratio_p75": 1.95, "paired_rounds": 300}
    records = [record("jax", "scan (fused)", 0.002), record("torch", "eager", 0.2), floor,
               record("jax", "scan (fused)", 0.1, points=10_000), record("torch", "eager", 0.4, points=10_000)]
    failed = bench.make_record("torch", "compile", "cpu", 100, 20, 201, error="RuntimeError: no compiler")
    table = bench.markdown_table([*records, failed]).splitlines()
    assert table[0].startswith("| framework | variant |") and table[1].startswith("|---")
    assert "| 100.0x |" in table[2] and "| 1.0x |" in table[3] and table[4].endswith("|  |")  # floor: no ratio
    assert "failed: RuntimeError: no compiler" in table[-1]
    targets = "\n".join(bench.target_lines(records))
    assert "fused JAX 100x faster than torch eager" in targets
    assert "1.80x the arithmetic floor, median of 300 paired rounds (quartiles 1.70-1.95; target <= 2x)" in targets
    assert "median at 2.0x the best-of-five floor of 1.000 ms (unpaired)" in targets
    assert "10,000 points x 20: fused JAX 4.0x faster" in targets


def test_tiny_run_end_to_end(script, tmp_path):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    done = script("bench.py", "--tiny", "--json", out_json, "--out", out_png)
    assert done.returncode == 0, done.stderr
    records = json.loads(out_json.read_text())
    by_name = {(r["framework"], r["variant"], r["models"]): r for r in records}
    want = {("jax", "scan (fused)", 1), ("jax", "scan (autodiff)", 1), ("jax", "jit step loop", 1),
            ("torch", "eager", 1), ("jax", "arithmetic floor", 1)}
    try:
        import jax_impl.ensemble  # noqa: F401
        import torch_impl.ensemble  # noqa: F401

        want |= {("jax", "ensemble", 2), ("torch", "ensemble", 2)}
    except ImportError:
        pass
    assert want <= set(by_name), set(by_name)
    for r in records:
        assert set(bench.RECORD_KEYS) <= set(r), r
        assert r["error"] is None, r["error"]
        assert (r["device"], r["points"], r["hidden"], r["steps"]) == ("cpu", 64, 8, 21)
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"], r
        if r["variant"] == "arithmetic floor":
            assert r["compile_s"] is None and r["flops_per_step"] == bench.flops_per_step(64, 8)
            assert r["flop_rate"] > 0 and r["sigmoid_rate"] > 0
            assert r["paired_rounds"] == 5 and 0 < r["paired_ratio_p25"] <= r["paired_ratio_median"]
            assert r["paired_ratio_median"] <= r["paired_ratio_p75"]
        else:
            assert r["compile_s"] > 0 and bench.MIN_REPEATS <= r["repeats"] <= 3, r
        assert r["versions"]["jax"] == jax.__version__ and r["machine"]["cores"] >= 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| framework | variant | device |")
    assert sum(line.startswith("| jax |") or line.startswith("| torch |") for line in lines) == len(records)
    image = read_image(out_png)
    assert image["size"][0] > 400 and image["grey_levels"] > 10


def test_gpu_requested_without_gpu_skips_cleanly(script, tmp_path):
    import torch

    if torch.cuda.is_available() or any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("a GPU is present: the skip path does not apply")
    out_json = tmp_path / "r.json"
    done = script("bench.py", "--device", "gpu", "--tiny", "--json", out_json)
    assert done.returncode == 0, done.stderr
    assert "no GPU here" in done.stderr and "nothing measured" in done.stderr
    assert done.stdout == "" and not out_json.exists()


@pytest.mark.parametrize("flags", [["--points", "0"], ["--device", "tpu"], ["--quick", "--tiny"],
                                   ["--budget-s", "nan"]])
def test_bad_flags_are_one_line_and_exit_2(script, flags):
    done = script("bench.py", *flags)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "error" in done.stderr
