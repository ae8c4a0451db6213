"""The notebook's 1-H-1 network as pure functions over a parameter pytree.

Parameters use the notebook's validation-cell layout, so `x @ w1 + b1` needs no transpose:
    w1: (1, H)   b1: (H,)   w2: (H, 1)   b2: (1,)
"""

import jax
import jax.numpy as jnp

# Every random draw (weights, data) is made in float32 and then cast: jax.random draws other numbers in float64, and a
# float32 run must be comparable with the float64 run of the same seed (the same starting numbers).
DRAW_DTYPE = jnp.float32


def check_data(x, y=None) -> None:
    """Raise ValueError unless x is (N, 1) and y, if given, is (N, 1) too: a y of shape (N,) against the (N, 1)
    prediction would broadcast to an (N, N) difference and average the wrong thing without a word."""
    if len(x.shape) != 2 or x.shape[1] != 1:
        raise ValueError(f"x must have shape (N, 1); got {tuple(x.shape)}")
    if y is not None and tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"y has shape {tuple(y.shape)} but the prediction has shape {tuple(x.shape)}: pass y as "
                         f"(N, 1), like x")


def init_params(key: jax.Array, hidden: int = 20, dtype=jnp.float32) -> dict[str, jax.Array]:
    """torch.nn.Linear's init: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in)); drawn in DRAW_DTYPE, then
    cast to dtype (the same numbers in float32 and float64).

    fan_in is 1 for the hidden layer (bound 1) and `hidden` for the output layer (bound 1/sqrt(H)).
    """
    k1, k2, k3, k4 = jax.random.split(key, 4)
    bound1, bound2 = 1.0, 1.0 / hidden**0.5
    uniform = lambda k, shape, bound: jax.random.uniform(k, shape, DRAW_DTYPE, -bound, bound).astype(dtype)  # noqa: E731
    return {
        "w1": uniform(k1, (1, hidden), bound1),
        "b1": uniform(k2, (hidden,), bound1),
        "w2": uniform(k3, (hidden, 1), bound2),
        "b2": uniform(k4, (1,), bound2),
    }


@jax.jit
def forward(params, x):
    """x: (N, 1) -> prediction (N, 1); linear -> sigmoid -> linear, as the notebook's Net. ValueError for another x.

    The hidden layer is computed transposed, (H, N): the N points contiguous, so that the sigmoid and the sums over the
    points run along rows on the CPU (the same product as `sigmoid(x @ w1 + b1) @ w2 + b2`; (N, 1) and (1, N) are the
    same memory, so the transposes of x and of the prediction cost nothing).
    """
    check_data(x)
    # Biases broadcast explicitly ([:, None]) so that the tests' jax_numpy_rank_promotion="raise" can catch the
    # classic (N, 1) - (N,) -> (N, N) bug anywhere else.
    hidden = jax.nn.sigmoid(params["w1"].T @ x.T + params["b1"][:, None])  # (H, 1) @ (1, N) -> (H, N)
    return (params["w2"].T @ hidden + params["b2"][:, None]).T  # (1, H) @ (H, N) -> (1, N) -> (N, 1)


@jax.jit
def mse_loss(params, x, y):
    """torch.nn.MSELoss(): the mean over all N elements (the training loss). x, y: (N, 1); ValueError otherwise."""
    check_data(x, y)
    return jnp.mean((forward(params, x) - y) ** 2)


@jax.jit
def sse_loss(params, x, y):
    """The validation cell's f = (y - y_pred).pow(2).sum(). x, y: (N, 1); ValueError otherwise."""
    check_data(x, y)
    return jnp.sum((y - forward(params, x)) ** 2)


LOSSES = {"mse": mse_loss, "sse": sse_loss}


def loss_and_prediction(params, x, y, loss: str = "mse"):
    """LOSSES[loss] (mse: torch.nn.MSELoss, the training loss; sse: the validation cell's), and as the auxiliary
    output the prediction (N, 1) for the snapshots. Both call forward; XLA computes it once (common subexpressions
    are merged in a compiled step)."""
    return LOSSES[loss](params, x, y), forward(params, x)


def value_and_grad(params, x, y, loss: str = "mse"):
    """((loss, prediction (N, 1)), gradients in params' layout): jax.value_and_grad of LOSSES[loss], the port's one
    gradient. Training steps with it (train.make_step); the gradient checks hold every other method against it.
    KeyError for a loss not in LOSSES; ValueError for x, y not (N, 1)."""
    return jax.value_and_grad(loss_and_prediction, has_aux=True)(params, x, y, loss)
