"""The notebook's training loop, with the same before-update logging as the JAX port."""

import numpy as np
import torch

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


def first_nonfinite_step(losses) -> int | None:
    """The first t whose loss is NaN or inf, or None: jax_impl.train's, in numpy (no jax here), for any losses."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(losses)))
    return int(bad[0]) if bad.size else None
