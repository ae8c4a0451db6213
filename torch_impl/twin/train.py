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
    return fit_from(net, make_optimizer(optimizer, net.parameters(), lr), x, y, steps=steps, every=every)


def fit_from(net: Net, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *, start: int = 0,
             steps: int = 201, every: int = 20):
    """Train `net` in place with `opt` (holding net's parameters, at step `start`: fresh at 0, else after
    optimizer_state.load_slots) for steps start ... steps - 1. Returns (losses (steps - start,), snapshots: the
    (N, 1) predictions at the steps t >= start with t % every == 0)."""
    loss_func = torch.nn.MSELoss()
    losses = torch.empty(steps - start, dtype=x.dtype)
    snapshots = []
    for t in range(start, steps):
        prediction = net(x)
        loss = loss_func(prediction, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[t - start] = loss.detach()
        if t % every == 0:
            snapshots.append(prediction.detach().clone())
    return losses, snapshots
