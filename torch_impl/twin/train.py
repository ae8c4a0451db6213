"""The notebook's training loop, with the same before-update logging as the JAX port."""

import torch

from jax_impl.core.optimizers import TORCH_CLASSES, parse_spec, torch_kwargs
from torch_impl.twin.model import Net


def make_optimizer(spec: str, parameters, lr: float) -> torch.optim.Optimizer:
    """torch.optim's optimizer for an optimizer spec ("adam", "sgd(momentum=0.9)": jax_impl.core.optimizers, one
    table for both frameworks), its arguments checked and completed by torch_kwargs."""
    name, args = parse_spec(spec)
    return getattr(torch.optim, TORCH_CLASSES[name])(parameters, lr=lr, **torch_kwargs(name, args))


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
