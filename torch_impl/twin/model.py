"""The notebook's network, as the notebook writes it."""

import torch


class Net(torch.nn.Module):
    def __init__(self, n_feature: int = 1, n_hidden: int = 20, n_output: int = 1):
        super().__init__()
        self.linear1 = torch.nn.Linear(n_feature, n_hidden, bias=True)
        self.sigmoid = torch.nn.Sigmoid()
        self.linear2 = torch.nn.Linear(n_hidden, n_output, bias=True)

    def forward(self, x):
        return self.linear2(self.sigmoid(self.linear1(x)))
