"""The notebook's random draws, in the notebook's order, from torch's CPU generator."""

import torch

from jax_impl.core.torch_rng import VALIDATION_RUNS  # the validation cell ran six times before the printed table
from torch_impl.twin.model import Net


def notebook_draws(hidden: int = 20, *, seed: int = 1, points: int = 100, noise: float = 0.2):
    """Returns (x (points, 1), y (points, 1), net, validation weights) exactly as the notebook's kernel drew them
    (the defaults), or as it would have after torch.manual_seed(seed) with these sizes.

    Order: manual_seed(seed); linspace; rand for the noise; Net(1, H, 1) (linear1 weight, bias, linear2 weight, bias);
    then the validation cell's randn(1,H), randn(H), randn(H,1), randn(1), six times: the sixth is the printed one.
    jax_impl.core.torch_rng reproduces every one of these draws without torch.
    """
    torch.manual_seed(seed)
    x = torch.unsqueeze(torch.linspace(-1, 1, points), dim=1)
    y = x.pow(2) + noise * torch.rand(x.size())
    net = Net(1, hidden, 1)
    for _ in range(VALIDATION_RUNS):
        validation = {"w1": torch.randn(1, hidden), "b1": torch.randn(hidden),
                      "w2": torch.randn(hidden, 1), "b2": torch.randn(1)}
    return x, y, net, {k: v.numpy() for k, v in validation.items()}
