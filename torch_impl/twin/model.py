"""The notebook's network, as the notebook writes it."""

import numpy as np
import torch


class Net(torch.nn.Module):
    def __init__(self, n_feature: int = 1, n_hidden: int = 20, n_output: int = 1):
        super().__init__()
        self.linear1 = torch.nn.Linear(n_feature, n_hidden, bias=True)
        self.sigmoid = torch.nn.Sigmoid()
        self.linear2 = torch.nn.Linear(n_hidden, n_output, bias=True)

    def forward(self, x):
        return self.linear2(self.sigmoid(self.linear1(x)))


def net_holding(params, dtype: torch.dtype) -> Net:
    """Net(1, H, 1) in `dtype` holding `params` (the JAX layout, numpy-like arrays) exactly: the net is cast first,
    then loaded, so nothing is rounded on the way. ValueError (convert's) for names or shapes that do not fit."""
    from torch_impl.twin.convert import to_state_dict  # convert reads files; the bare Net needs none of it

    net = Net(1, np.shape(params["b1"])[0], 1).to(dtype)
    net.load_state_dict(to_state_dict({k: np.asarray(v) for k, v in params.items()}))
    return net
