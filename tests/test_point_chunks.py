"""The gradient in chunks of points (point_chunks) against the whole batch's model.value_and_grad, within the rounding
of a reordered sum; when fit uses it (a hidden layer large for the cores) and that its run is the whole batch's run."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_impl.core import data, model, point_chunks, train, xla_cpu

POINTS = 1000
CHUNKS = (1, 128, 250, 1000, 4096)  # every point alone; a remainder of 104; exact; one chunk; more than N


def worst_ratio(params, x, y, chunk: int) -> float:
    """The largest difference between the chunked and the whole loss, prediction and gradient, each over its bound.

    Error model, u the unit roundoff:
    - A prediction is a sum of H + 1 terms (w2_j h_j and b2): two programs that round its terms (h_j from other
      sigmoid kernels: a jitted sigmoid is within 1.45e-7, 2.4 u, of the exact one, docs/benchmarks.md) and add them
      differently agree within (2 H + 16) u (sum_j |w2_j h_j| + |b2|).
    - The loss and each gradient entry sum N per-point terms, t_i = r_i^2 / N or d(r_i^2 / N)/d theta. A sum of N
      terms in any order is within (N - 1) u sum|t_i| of the exact one (Higham, Accuracy and Stability of Numerical
      Algorithms, 2nd ed., eq. 4.4), so two orders within 2 N u sum|t_i|; the chunk weights n_c / N round once more a
      term (N u sum|t_i|) and each term's own few roundings add 8 u sum|t_i|: (3 N + 8) u sum|t_i|.
    - A term moves with its prediction: r_i by the prediction's bound p_i, so t_i by 2 p_i |d pred_i / d theta| / N
      (and the loss's by 2 |r_i| p_i / N), added to the bound.
    - The hidden layer's terms (w1, b1) hold sigmoid's slope h (1 - h), and near saturation 1 - h has no correct
      digit when h does not round alike in both programs: a change of 8 u h in h moves the slope by up to 8 u h, so
      such a term by 2 |r_i w2_j| 8 u h_ij / N (times |x_i| for w1), added too."""
    n, hidden_width = x.shape[0], params["b1"].shape[0]
    u = float(jnp.finfo(x.dtype).eps) / 2
    (loss, prediction), grads = model.value_and_grad(params, x, y)
    (c_loss, c_prediction), c_grads = jax.jit(point_chunks.value_and_grad, static_argnums=3)(params, x, y, chunk)

    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    hidden = f64(jax.nn.sigmoid(x @ params["w1"] + params["b1"][None, :]))  # (N, H)
    output_terms = np.abs(hidden) @ np.abs(f64(params["w2"])) + np.abs(f64(params["b2"]))  # (N, 1)
    prediction_bound = (2 * hidden_width + 16) * u * output_terms
    residual = f64(prediction) - f64(y)  # (N, 1)
    d_prediction = jax.vmap(jax.grad(lambda p, xi: model.forward(p, xi[None])[0, 0]), in_axes=(None, 0))(params, x)
    scale = (3 * n + 8) * u

    ratios = []

    def compare(name, got, want, bound):
        diff = np.abs(f64(got) - f64(want))
        assert np.all(diff[bound == 0] == 0), f"{name}: no terms, yet the two differ"
        ratios.append(float(np.max(diff[bound > 0] / bound[bound > 0], initial=0.0)))

    compare("prediction", c_prediction, prediction, prediction_bound)
    loss_bound = scale * np.sum(residual**2) / n + np.sum(2 * np.abs(residual) * prediction_bound) / n
    compare("loss", c_loss, loss, np.asarray(loss_bound))
    slope_moved = 2 * np.abs(residual) * np.abs(f64(params["w2"]).T) * 8 * u * hidden / n  # (N, H)
    slope_moved = {"w1": np.sum(slope_moved * np.abs(f64(x)), axis=0), "b1": np.sum(slope_moved, axis=0)}
    for k in grads:
        per_point = np.abs(f64(d_prediction[k])).reshape(n, -1)  # (N, entries of k)
        terms = np.sum(2 * np.abs(residual) * per_point, axis=0) / n
        moved = np.sum(2 * prediction_bound * per_point, axis=0) / n + slope_moved.get(k, 0)
        compare(k, c_grads[k], grads[k], (scale * terms + moved).reshape(np.shape(grads[k])))
    return max(ratios)


def cases(dtype):
    """(name, params, x, y): the data and weights at the start, trained, saturated, and with every gradient zero."""
    x, y = data.make_data(jax.random.key(0), POINTS, 0.2, dtype)
    start = model.init_params(jax.random.key(1), 20, dtype)
    trained = train.trajectory(start, x, y, 0.2, steps=201).params
    saturated = dict(start, w1=start["w1"] * 1e3)  # most hidden units at sigmoid's 0 or 1
    zero = dict(start, w2=jnp.zeros_like(start["w2"]), b2=jnp.zeros_like(start["b2"]))  # prediction 0, y 0
    return [("start", start, x, y), ("trained", trained, x, y), ("saturated", saturated, x, y),
            ("zero gradients", zero, x, jnp.zeros_like(y))]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunks_give_the_whole_batch_gradient_float32(chunk):
    for name, params, x, y in cases(jnp.float32):
        assert worst_ratio(params, x, y, chunk) <= 1, name


def test_chunks_give_the_whole_batch_gradient_float64():
    """The same cases in float64, in a process of its own (x64 is global to a process)."""
    code = ("import json, sys; sys.path.insert(0, 'tests'); import jax.numpy as jnp; import test_point_chunks as t; "
            "print(json.dumps({f'{name} {c}': t.worst_ratio(p, x, y, c) for name, p, x, y in t.cases(jnp.float64) "
            "for c in t.CHUNKS}))")
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
    ratios = json.loads(done.stdout.splitlines()[-1])
    assert len(ratios) == 4 * len(CHUNKS) and max(ratios.values()) <= 1, ratios


def test_a_chunk_left_out_or_weighed_wrong_is_caught():
    """The check above is not blind: a gradient that drops the remainder's points, weighs the chunks twice over, or
    weighs the remainder as a whole chunk exceeds its bound (the correct one stays under 0.01 of it here)."""
    params, x, y = cases(jnp.float32)[0][1:]
    original = point_chunks.value_and_grad

    def no_remainder(params, x, y, chunk):
        full = x.shape[0] // chunk * chunk
        (loss, prediction), grads = original(params, x[:full], y[:full], chunk)
        return (loss, jnp.concatenate([prediction, prediction[:x.shape[0] - full]])), grads

    def weighed_twice(params, x, y, chunk):  # as if each chunk counted n_c / N twice over
        (loss, prediction), grads = original(params, x, y, chunk)
        return (loss * 2, prediction), jax.tree.map(lambda g: g * 2, grads)

    def remainder_as_a_chunk(params, x, y, chunk):  # the remainder's 104 points weighed as 128
        full = x.shape[0] // chunk * chunk
        (loss, prediction), grads = original(params, x, y, chunk)
        (rest, _), rest_grads = model.value_and_grad(params, x[full:], y[full:])
        extra = (chunk - (x.shape[0] - full)) / x.shape[0]
        return (loss + rest * extra, prediction), jax.tree.map(lambda g, r: g + r * extra, grads, rest_grads)

    for planted in (no_remainder, weighed_twice, remainder_as_a_chunk):
        point_chunks.value_and_grad = planted
        try:
            assert worst_ratio(params, x, y, 128) > 1, planted.__name__
        finally:
            point_chunks.value_and_grad = original


def test_chunk_size_rule():
    """Chunks from CHUNKED_FROM_BYTES of hidden layer a core, each chunk's hidden layer CHUNK_BYTES."""
    assert point_chunks.chunk_points(100, 20, 4, 1) is None  # the notebook
    assert point_chunks.chunk_points(10**5, 20, 4, 2) is None  # 8 MB on two cores: XLA splits the whole batch's fusions
    assert point_chunks.chunk_points(10**6, 20, 4, 2) == point_chunks.CHUNK_BYTES // 80  # 80 MB on two
    assert point_chunks.chunk_points(10**4, 100, 4, 1) is None  # 4 MB: measured no faster in chunks
    assert point_chunks.chunk_points(10**5, 20, 4, 1) == point_chunks.CHUNK_BYTES // 80  # 8 MB
    assert point_chunks.chunk_points(10**4, 256, 8, 1) == point_chunks.CHUNK_BYTES // 2048  # float64: half the points
    assert point_chunks.chunk_points(10**7, point_chunks.CHUNK_BYTES, 4, 1) == 1  # a layer wider than a chunk
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        point_chunks.value_and_grad(*cases(jnp.float32)[0][1:], 0)


# fit in chunks against fit whole, float32, 60 Adam steps at 3000 x 20 in chunks of 256 (a remainder of 184): the
# gradients differ by reordered sums (above) and Adam carries it on. Measured (jax 0.10.2, AMD EPYC AVX2): losses
# 1.3e-6 relative, parameters 8.7e-6 absolute, snapshots 5.4e-7; bounded at 15x the worst measured, as test_train's
# STEPWISE constants are, the margin for the other CPU's kernels.
FIT_LOSS_F32 = 2e-5
FIT_PARAM_F32 = 1.5e-4
SNAPSHOT_F32 = 1e-5


def test_fit_chunks_on_one_core_and_runs_the_same_training(monkeypatch):
    """On one core a 10^5 x 20 fit (8 MB of hidden layer) compiles the chunked step (a loop over the chunks in each
    step); its run is the whole batch's within the rounding above. On two cores the same size compiles whole."""
    x, y = data.make_data(jax.random.key(0), 10**5, 0.2)
    params = model.init_params(jax.random.key(1), 20)
    monkeypatch.setattr(xla_cpu, "cores", lambda: 2)
    assert train.fit_point_chunk(params, x) is None
    monkeypatch.setattr(xla_cpu, "cores", lambda: 1)
    assert train.fit_point_chunk(params, x) == point_chunks.CHUNK_BYTES // 80
    whole = train._jitted_fit(False, None).lower(params, x, y, 0.2).compile().as_text()
    chunked = train.jitted_fit(params, x).lower(params, x, y, 0.2).compile().as_text()
    assert chunked.count("while(") > whole.count("while(")  # each step holds the loop over the chunks

    x, y = data.make_data(jax.random.key(0), 3000, 0.2)
    a = train._jitted_fit(False, None)(params, x, y, 0.2, steps=60)
    b = train._jitted_fit(False, 256)(params, x, y, 0.2, steps=60)
    np.testing.assert_allclose(b.losses, a.losses, rtol=FIT_LOSS_F32, atol=0)
    np.testing.assert_allclose(b.snapshots, a.snapshots, rtol=0, atol=SNAPSHOT_F32)
    for k in params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=0, atol=FIT_PARAM_F32)
