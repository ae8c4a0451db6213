"""The model: torch.nn.Linear's init distribution, the forward pass and the two losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_impl.core import layout, model


@pytest.mark.parametrize("hidden", [20, 256])
def test_init_distribution_is_torch_linear(hidden):
    """Weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)): fan_in 1 for layer 1, `hidden` for layer 2."""
    keys = jax.random.split(jax.random.key(0), 400)
    params = jax.vmap(lambda k: model.init_params(k, hidden))(keys)
    for name, bound in [("w1", 1.0), ("b1", 1.0), ("w2", hidden**-0.5), ("b2", hidden**-0.5)]:
        values = np.asarray(params[name]).ravel()
        assert np.abs(values).max() <= bound, name
        assert np.abs(values).max() > 0.97 * bound, name  # the bound is reached, not a narrower range
        # U(-b, b): mean 0, variance b^2/3; >= 400 draws put both within a few percent
        assert abs(values.mean()) < 0.1 * bound, name
        np.testing.assert_allclose(values.var(), bound**2 / 3, rtol=0.15, err_msg=name)
    single = model.init_params(jax.random.key(0), hidden)
    assert {k: v.shape for k, v in single.items()} == layout.param_shapes(hidden)


def test_init_is_deterministic_in_the_key():
    a, b = model.init_params(jax.random.key(7)), model.init_params(jax.random.key(7))
    c = model.init_params(jax.random.key(8))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["w1"], c["w1"])


def test_forward_and_losses_by_hand():
    params = {"w1": jnp.array([[1.0, -2.0]]), "b1": jnp.array([0.0, 1.0]),
              "w2": jnp.array([[0.5], [-1.0]]), "b2": jnp.array([0.25])}
    x = jnp.array([[0.0], [1.0]])
    y = jnp.array([[0.0], [1.0]])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    want = np.array([[0.5 * sig(0) - sig(1) + 0.25], [0.5 * sig(1) - sig(-1) + 0.25]])
    np.testing.assert_allclose(model.forward(params, x), want, rtol=1e-6)
    residual = want - np.asarray(y)
    np.testing.assert_allclose(model.mse_loss(params, x, y), np.mean(residual**2), rtol=1e-6)
    np.testing.assert_allclose(model.sse_loss(params, x, y), np.sum(residual**2), rtol=1e-6)


@pytest.mark.parametrize("bad", ["y flat", "x flat", "y short", "y (1, N)"])
def test_a_target_of_another_shape_is_refused(bad):
    """The classic bug: y of shape (N,) against the (N, 1) prediction broadcasts to (N, N) and averages the wrong
    thing (0.6146531 instead of 0.6135554 on the notebook's data). Every public loss and training entry refuses it,
    naming both shapes."""
    from jax_impl.core import data, ensemble, train

    x, y = data.notebook_data()
    params = data.notebook_init_params()
    x_bad, y_bad, shown = {"y flat": (x, y.ravel(), "(100,)"), "x flat": (x.ravel(), y, "(100,)"),
                           "y short": (x, y[:99], "(99, 1)"), "y (1, N)": (x, y.T, "(1, 100)")}[bad]
    calls = [lambda: model.mse_loss(params, x_bad, y_bad), lambda: model.sse_loss(params, x_bad, y_bad),
             lambda: train.fit(params, x_bad, y_bad, 0.2, steps=2, every=1),
             lambda: ensemble.fit_ensemble(jax.tree.map(lambda a: a[None], params), x_bad, y_bad, jnp.array([0.2]),
                                           steps=2, every=1)]
    for call in calls:
        with pytest.raises(ValueError, match=r"shape") as error:
            call()
        assert shown in str(error.value)
    assert float(model.mse_loss(params, x, y)) == pytest.approx(0.6135554, rel=1e-6)  # the right shapes still work


def test_draws_are_float32_then_cast():
    """One rule for every random draw (model.DRAW_DTYPE): made in float32, then cast, so that a float64 run starts
    from the float32 run's numbers (jax.random draws other numbers when asked for float64)."""
    from jax_impl.core import data

    assert model.DRAW_DTYPE == jnp.float32
    key = jax.random.key(3)
    params = model.init_params(key, 20)
    assert all(v.dtype == jnp.float32 for v in params.values())
    x, y = data.make_data(jax.random.key(0), 50, 0.2)
    assert x.dtype == y.dtype == jnp.float32 and x.shape == y.shape == (50, 1)
