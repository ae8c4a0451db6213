"""The strongest torch peers a PyTorch engineer would write for the benchmark: the whole training step (forward,
backward, Adam) as one function of tensors, compiled as a whole by torch.compile, and ensembles with torch.func
(functional_call + grad + vmap over stacked parameters), eager and compiled.

The step is functional: torch.func.grad_and_value takes the gradient (autograd, as in the twin), and Adam's update
is written out in torch.optim.Adam's single-tensor order (lerp_ for the first moment; mul + addcmul for the second;
sqrt / sqrt(bias_correction2) + eps; p - lr / bias_correction1 * m / denom), so that torch.compile sees one graph with
no optimizer object, no .grad fields and no Python step counter (a tensor: one compilation for all 201 steps).
tests/test_bench.py checks the eager step's trajectory against torch.optim.Adam's.
"""

import torch
from torch.func import functional_call, grad_and_value, vmap

from torch_impl.twin.model import Net

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as the notebook runs it


def adam_update(params, grads, m, v, t, lr):
    """One Adam step over dicts of tensors (torch.optim.Adam's formula, single-tensor order); t: the step number
    after this update, a tensor; lr: a number, or a dict of tensors broadcasting against each parameter (one learning
    rate per model: stacked_lr). Returns (params, m, v), new."""
    beta1, beta2 = BETAS
    bias_correction1, bias_correction2_sqrt = 1 - beta1**t, (1 - beta2**t).sqrt()
    new_p, new_m, new_v = {}, {}, {}
    for k, p in params.items():
        g, rate = grads[k], lr[k] if isinstance(lr, dict) else lr
        new_m[k] = torch.lerp(m[k], g, 1 - beta1)
        new_v[k] = v[k] * beta2 + (1 - beta2) * g * g
        denom = new_v[k].sqrt() / bias_correction2_sqrt + EPS
        new_p[k] = p - (rate / bias_correction1) * new_m[k] / denom
    return new_p, new_m, new_v


def make_loss(net: Net):
    """loss(params, x, y) -> (MSE, (MSE, prediction (N, 1))) of `net`'s architecture at `params` (its state_dict
    names)."""

    def loss(params, x, y):
        prediction = functional_call(net, params, (x,))
        value = torch.nn.functional.mse_loss(prediction, y)
        return value, (value.detach(), prediction.detach())

    return loss


def make_step(net: Net, *, stacked: bool = False):
    """step(params, m, v, t, x, y, lr) -> (params, m, v, t + 1, loss, prediction): one whole training step, a pure
    function of tensors (loss and prediction from before the update, as twin.train.fit logs them). stacked: params,
    m and v carry a leading model axis (E, ...), the gradient is vmapped over it (x, y shared) and lr is
    stacked_lr's dict; loss (E,), prediction (E, N, 1)."""
    gradient = grad_and_value(make_loss(net), has_aux=True)
    if stacked:
        gradient = vmap(gradient, in_dims=(0, None, None))

    def step(params, m, v, t, x, y, lr):
        grads, (loss, prediction) = gradient(params, x, y)
        t = t + 1
        params, m, v = adam_update(params, grads, m, v, t, lr)
        return params, m, v, t, loss, prediction

    return step


def stacked_lr(lrs, params):
    """Per-model learning rates (E,) as one tensor per parameter, shaped to broadcast over its (E, ...) layout."""
    return {k: lrs.view(-1, *[1] * (p.ndim - 1)) for k, p in params.items()}


def train_loop(step, params, x, y, lr, *, steps: int, every: int | None):
    """`steps` calls of step from params and fresh moments. Returns (final params, losses (steps,) or (E, steps) for
    a stacked step, snapshots: the predictions at i % every == 0; none for every=None)."""
    m = {k: torch.zeros_like(p) for k, p in params.items()}
    v = {k: torch.zeros_like(p) for k, p in params.items()}
    t = torch.zeros((), dtype=x.dtype, device=x.device)
    losses, snapshots = [], []
    for i in range(steps):
        params, m, v, t, loss, prediction = step(params, m, v, t, x, y, lr)
        losses.append(loss)
        if every and i % every == 0:
            snapshots.append(prediction)
    return params, torch.stack(losses, dim=-1), snapshots
