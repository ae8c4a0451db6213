"""The notebook's training loop, with the same before-update logging as the JAX port."""

import torch

from jax_impl.outputs import first_nonfinite_step  # noqa: F401  (re-exported: one definition, no jax)
from torch_impl.model import Net

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def fit(net: Net, x: torch.Tensor, y: torch.Tensor, *, lr: float = 0.2, optimizer: str = "adam",
        steps: int = 201, every: int = 20):
    """Train `net` in place. Returns (losses (steps,), snapshots: list of (N, 1) predictions at t % every == 0)."""
    opt = OPTIMIZERS[optimizer](net.parameters(), lr=lr)
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
