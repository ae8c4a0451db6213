"""The notebook's 1-H-1 network as pure functions over a parameter pytree.

Parameters use the notebook's validation-cell layout, so `x @ w1 + b1` needs no transpose:
    w1: (1, H)   b1: (H,)   w2: (H, 1)   b2: (1,)
"""

import jax
import jax.numpy as jnp

from jax_impl.params_io import PARAM_NAMES  # noqa: F401  (re-exported; params_io must not import jax)


def param_shapes(hidden: int) -> dict[str, tuple[int, ...]]:
    return {"w1": (1, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}


def init_params(key: jax.Array, hidden: int = 20, dtype=jnp.float32) -> dict[str, jax.Array]:
    """torch.nn.Linear's init: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    fan_in is 1 for the hidden layer (bound 1) and `hidden` for the output layer (bound 1/sqrt(H)).
    """
    k1, k2, k3, k4 = jax.random.split(key, 4)
    bound1, bound2 = 1.0, 1.0 / hidden**0.5
    uniform = lambda k, shape, bound: jax.random.uniform(k, shape, dtype, -bound, bound)  # noqa: E731
    return {
        "w1": uniform(k1, (1, hidden), bound1),
        "b1": uniform(k2, (hidden,), bound1),
        "w2": uniform(k3, (hidden, 1), bound2),
        "b2": uniform(k4, (1,), bound2),
    }


@jax.jit
def forward(params, x):
    """x: (N, 1) -> prediction (N, 1); linear -> sigmoid -> linear, as the notebook's Net.

    The hidden layer is computed transposed, (H, N): the N points contiguous, so that the sigmoid and the sums over the
    points run along rows on the CPU (the same product as `sigmoid(x @ w1 + b1) @ w2 + b2`; (N, 1) and (1, N) are the
    same memory, so the transposes of x and of the prediction cost nothing).
    """
    # Biases broadcast explicitly ([:, None]) so that the tests' jax_numpy_rank_promotion="raise" can catch the
    # classic (N, 1) - (N,) -> (N, N) bug anywhere else.
    hidden = jax.nn.sigmoid(params["w1"].T @ x.T + params["b1"][:, None])  # (H, 1) @ (1, N) -> (H, N)
    return (params["w2"].T @ hidden + params["b2"][:, None]).T  # (1, H) @ (H, N) -> (1, N) -> (N, 1)


@jax.jit
def mse_loss(params, x, y):
    """torch.nn.MSELoss(): the mean over all N elements (the training loss)."""
    return jnp.mean((forward(params, x) - y) ** 2)


@jax.jit
def sse_loss(params, x, y):
    """The validation cell's f = (y - y_pred).pow(2).sum()."""
    return jnp.sum((y - forward(params, x)) ** 2)


LOSSES = {"mse": mse_loss, "sse": sse_loss}
