"""The notebook's random draws, in the notebook's order, from torch's CPU generator."""

import torch

from torch_impl.model import Net

VALIDATION_RUNS = 6  # the validation cell ran six times before the printed table (NUMERICS.md)


def notebook_draws(hidden: int = 20):
    """Returns (x (100, 1), y (100, 1), net, validation weights) exactly as the notebook's kernel drew them.

    Order: manual_seed(1); linspace; rand for the noise; Net(1, H, 1) (linear1 weight, bias, linear2 weight, bias);
    then the validation cell's randn(1,H), randn(H), randn(H,1), randn(1), six times: the sixth is the printed one.
    """
    torch.manual_seed(1)
    x = torch.unsqueeze(torch.linspace(-1, 1, 100), dim=1)
    y = x.pow(2) + 0.2 * torch.rand(x.size())
    net = Net(1, hidden, 1)
    for _ in range(VALIDATION_RUNS):
        validation = {"w1": torch.randn(1, hidden), "b1": torch.randn(hidden),
                      "w2": torch.randn(hidden, 1), "b2": torch.randn(1)}
    return x, y, net, {k: v.numpy() for k, v in validation.items()}
