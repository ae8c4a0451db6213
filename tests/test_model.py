"""The model: torch.nn.Linear's init distribution, the forward pass and the two losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_impl import model


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
    assert {k: v.shape for k, v in single.items()} == model.param_shapes(hidden)


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
