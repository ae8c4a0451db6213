"""The notebook's training loop, with the same before-update logging as the JAX port."""

import torch

from jax_impl.core.optimizers import TORCH_CLASSES
from torch_impl.twin.model import Net


def make_optimizer(name: str, parameters, lr: float) -> torch.optim.Optimizer:
    """torch.optim's optimizer for the port's name (jax_impl.core.optimizers: one table for both frameworks)."""
    return getattr(torch.optim, TORCH_CLASSES[name])(parameters, lr=lr)


def fit(net: Net, x: torch.Tensor, y: torch.Tensor, *, lr: float = 0.2, optimizer: str = "adam",
        steps: int = 201, every: int = 20):
    """Train `net` in place. Returns (losses (steps,), snapshots: list of (N, 1) predictions at t % every == 0)."""
    opt = make_optimizer(optimizer, net.parameters(), lr)
    loss_func = torch.nn.MSELoss()
    losses = torch.empty(steps, dtype=x.dtype)
    snapshots = []
    for t in range(steps):
        prediction = net(x)
        loss = loss_func(prediction, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[t] = loss.detach()
        if t % every == 0:
            snapshots.append(prediction.detach().clone())
    return losses, snapshots
