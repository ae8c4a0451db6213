"""The loss gradient three ways on the JAX side: the notebook's hand-derived formulas, jax.grad, and central finite
differences in float64. scripts/validate_grads.py adds torch autograd and compares them all.

Layout as model.py: w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,); x, y: (N, 1). Losses as model.LOSSES:
    sse: f = sum (y - y_pred)^2     (the validation cell's loss)
    mse: f = mean (y - y_pred)^2    (torch.nn.MSELoss, the training loss) = sse / N
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl.core import model
from jax_impl.core.layout import PARAM_NAMES

# Central-difference step, absolute, for every parameter. Measured against jax.grad in float64 at the notebook's
# validation weights and at N(0, 1) draws (keys 0-19 as validate_grads.py draws them, sse and mse): the largest
# difference relative to the tensor's largest gradient is 2e-4 at eps=1e-2, 2e-6 at 1e-3, 2e-8 at 1e-4 (truncation,
# ~eps^2), 1.9e-9 at 3e-5 and 1.9e-9 at 1e-5 (the floor), then 3.9e-9 at 3e-6, 1.5e-8 at 1e-6, 1.5e-7 at 1e-7
# (rounding, ~1e-16 * |f| / eps). 1e-5 is the bottom of that curve.
FD_EPS = 1e-5


def _loss_scale(loss: str, y) -> float:
    """df/dy_pred = scale * (y_pred - y): 2 for the sum of squares, 2/N for the mean."""
    if loss == "sse":
        return 2.0
    if loss == "mse":
        return 2.0 / y.size
    raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(model.LOSSES)}")


@partial(jax.jit, static_argnames="loss")
def manual_grads(params, x, y, loss: str = "sse"):
    """The validation cell's hand-derived gradients, written as it writes them (scaled by 1/N for mse):

        w2_grad = 2 * h_sigmoid.T @ (y_pred - y)
        b2_grad = (2 * (y_pred - y)).sum()
        w1_grad = 2 * x.T @ (((y_pred - y) @ w2.T) * (exp(-h) / (1 + exp(-h))**2))
        b1_grad = 2 * (((y_pred - y) @ w2.T) * (exp(-h) / (1 + exp(-h))**2)).sum(dim=0)

    x, y: (N, 1); returns the gradients in the params' shapes and dtype.
    """
    w1, b1, w2, b2 = (params[k] for k in PARAM_NAMES)
    scale = _loss_scale(loss, y)
    h = x @ w1 + b1[None, :]  # (N, H); explicit broadcasts, as model.forward (rank promotion "raise" in tests)
    h_sigmoid = 1 / (1 + jnp.exp(-h))  # the cell's own sigmoid, not jax.nn.sigmoid
    y_pred = h_sigmoid @ w2 + b2[None, :]  # (N, 1)
    residual = y_pred - y  # (N, 1)
    # The cell's sigmoid'(h) = exp(-h) / (1 + exp(-h))**2, taken at |h| (it is even in h): as written, exp(-h)
    # overflows to inf for h < -88 in float32 and inf / inf is NaN at every saturated unit.
    decay = jnp.exp(-jnp.abs(h))
    dh = (residual @ w2.T) * (decay / (1 + decay) ** 2)  # (N, H): df/dh without the scale
    return {
        "w1": scale * x.T @ dh,  # (1, H)
        "b1": scale * dh.sum(axis=0),  # (H,)
        "w2": scale * h_sigmoid.T @ residual,  # (H, 1)
        "b2": jnp.reshape((scale * residual).sum(), b2.shape),  # the cell's scalar, in b2's shape (1,)
    }


def jax_grads(params, x, y, loss: str = "sse"):
    """jax.grad of model.LOSSES[loss] with respect to params: model.value_and_grad's, the gradient training uses."""
    return model.value_and_grad(params, x, y, loss)[1]


def _numpy_loss(params, x, y, loss: str) -> float:
    """The network's loss in NumPy float64: linear -> sigmoid -> linear, as model.forward."""
    with np.errstate(over="ignore"):  # a saturated unit (h < -709): exp(-h) = inf, and 1 / (1 + inf) = 0 is right
        hidden = 1 / (1 + np.exp(-(x @ params["w1"] + params["b1"])))
    squares = (y - (hidden @ params["w2"] + params["b2"])) ** 2
    return float(squares.sum() if loss == "sse" else squares.mean())


def finite_difference_grads(params, x, y, loss: str = "sse", eps: float = FD_EPS) -> dict[str, np.ndarray]:
    """Central differences (f(p + eps) - f(p - eps)) / (2 eps), one parameter at a time, in NumPy float64.

    NumPy, so that it is float64 even in a process where JAX runs in float32. Costs 2 * (3H + 1) forward passes.
    """
    _loss_scale(loss, y)  # rejects an unknown loss name
    p = {k: np.array(params[k], dtype=np.float64) for k in PARAM_NAMES}
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    grads = {}
    for name in PARAM_NAMES:
        grad = np.empty_like(p[name])
        for i in np.ndindex(p[name].shape):
            saved = p[name][i]
            p[name][i] = saved + eps
            up, above = _numpy_loss(p, x, y, loss), p[name][i]
            p[name][i] = saved - eps
            down, below = _numpy_loss(p, x, y, loss), p[name][i]
            p[name][i] = saved
            # Divide by the step actually taken (saved +- eps rounds to the float64 grid): exact, where 2 * eps is
            # not. A weight so large that both round to it (|w| > ~1e11) has no step: 0, and an infinite error
            # bound (grad_error.finite_difference_allowance).
            grad[i] = (up - down) / (above - below) if above != below else 0.0
        grads[name] = grad
    return grads
