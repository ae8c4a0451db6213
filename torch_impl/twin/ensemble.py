"""The PyTorch twin of jax_impl.core.ensemble: E networks trained at once in eager torch, for the benchmark.

Forward with batched matmuls (baddbmm), backward by autograd, and torch.optim.Adam's / SGD's arithmetic written
out for a whole batch of models, because torch's optimisers take one learning rate per parameter group and here
every model has its own. Per model it is the same sequence of roundings as torch.optim.Adam's single-tensor path
(the default on CPU): lerp_, mul_ + addcmul_, sqrt / bias_correction2_sqrt + eps, then param + (-step_size * m) / denom.
"""

import numpy as np
import torch

from jax_impl.core.layout import PARAM_NAMES  # no jax import there


def _batched(params, dtype) -> dict[str, torch.Tensor]:
    """JAX layout (E, ...) -> shapes that broadcast in bmm: w1 (E,1,H), b1 (E,1,H), w2 (E,H,1), b2 (E,1,1)."""
    t = {k: torch.tensor(np.array(params[k]), dtype=dtype) for k in PARAM_NAMES}  # copies: inputs stay as they were
    e, h = t["b1"].shape
    want = {"w1": (e, 1, h), "b1": (e, h), "w2": (e, h, 1), "b2": (e, 1)}
    for k in PARAM_NAMES:
        if tuple(t[k].shape) != want[k]:
            raise ValueError(f"tensor {k!r} has shape {tuple(t[k].shape)}, expected {want[k]}")
    t["b1"], t["b2"] = t["b1"][:, None, :].contiguous(), t["b2"][:, None, :].contiguous()
    return {k: v.requires_grad_(True) for k, v in t.items()}


def losses_and_predictions(params, x, y):
    """params as _batched makes them; x, y: (N, 1). Returns per-model MSE (E,) and predictions (E, N, 1)."""
    e = params["w1"].shape[0]
    xb = x.expand(e, *x.shape)
    hidden = torch.sigmoid(torch.baddbmm(params["b1"], xb, params["w1"]))  # (E, N, H), as linear1 + sigmoid
    prediction = torch.baddbmm(params["b2"], hidden, params["w2"])  # (E, N, 1), as linear2
    losses = torch.nn.functional.mse_loss(prediction, y.expand_as(prediction), reduction="none").mean(dim=(1, 2))
    return losses, prediction


class BatchedAdam:
    """torch.optim.Adam (betas 0.9, 0.999, eps 1e-8) over a batch of models, learning rate per model."""

    def __init__(self, params, lrs, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.betas, self.eps, self.step_count = params, betas, eps, 0
        self.lrs = np.asarray(lrs, dtype=np.float64)  # Python floats in torch: double until the kernel casts
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.betas
        self.step_count += 1
        bias_correction1 = 1 - beta1**self.step_count
        bias_correction2_sqrt = (1 - beta2**self.step_count) ** 0.5
        for k, p in self.params.items():
            neg_step = torch.as_tensor(-(self.lrs / bias_correction1), dtype=p.dtype).view(-1, *[1] * (p.ndim - 1))
            self.m[k].lerp_(p.grad, 1 - beta1)
            self.v[k].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (self.v[k].sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.add_(neg_step * self.m[k] / denom)  # addcdiv_(m, denom, value=-step_size): self + value * m / denom


class BatchedSGD:
    """torch.optim.SGD (no momentum): p - lr * grad, learning rate per model."""

    def __init__(self, params, lrs):
        self.params, self.lrs = params, np.asarray(lrs, dtype=np.float64)

    @torch.no_grad()
    def step(self):
        for p in self.params.values():
            p.sub_(torch.as_tensor(self.lrs, dtype=p.dtype).view(-1, *[1] * (p.ndim - 1)) * p.grad)


OPTIMIZERS = {"adam": BatchedAdam, "sgd": BatchedSGD}


def fit_ensemble_torch(params, x, y, lrs, *, optimizer: str = "adam", steps: int = 201):
    """Train E models at once. params: the JAX layout with a leading E axis (numpy or torch); x, y: (N, 1).

    Returns (final params dict of torch tensors in the JAX layout, losses (E, steps)); losses[:, t] is from before
    update t, as in torch_impl.twin.train.fit.
    """
    x = torch.tensor(np.array(x))  # a copy: jax arrays are read-only
    y = torch.tensor(np.array(y), dtype=x.dtype)
    batch = _batched(params, x.dtype)
    if len(lrs) != batch["w1"].shape[0]:
        raise ValueError(f"{len(lrs)} learning rates for {batch['w1'].shape[0]} models")
    opt = OPTIMIZERS[optimizer](batch, lrs)
    losses = torch.empty(batch["w1"].shape[0], steps, dtype=x.dtype)
    for t in range(steps):
        for p in batch.values():
            p.grad = None
        step_losses, _ = losses_and_predictions(batch, x, y)
        step_losses.sum().backward()  # models are independent: d(sum)/d(model i) is model i's own gradient
        opt.step()
        losses[:, t] = step_losses.detach()
    final = {k: v.detach() for k, v in batch.items()}
    final["b1"], final["b2"] = final["b1"][:, 0, :], final["b2"][:, 0, :]
    return final, losses

