"""One training run of the twin recorded step by step in torch: the quantities jax_impl/core/record.py records, in
the same names and the port's layout (docs/records.md), from the notebook's loop (Net, MSELoss, torch.optim.Adam).

TwinRun is one step's pieces, each a method, so that a variant (torch_impl/checks/planted.py: the planted bugs)
changes one piece and records the rest as the twin does.
"""

import numpy as np
import torch

from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files.weights import JAX_TO_TORCH as TORCH_NAMES  # port name -> (Net's name, transposed)
from torch_impl.twin.model import net_holding
from torch_impl.twin.train import make_optimizer


class TwinRun:
    """The notebook's training loop on `net` with torch.optim.Adam, one step at a time, keeping every quantity."""

    def __init__(self, params, lr: float, dtype: torch.dtype):
        self.net, self.lr = net_holding(params, dtype), lr
        self.tensors = {name: self.net.get_parameter(torch_name) for name, (torch_name, _) in TORCH_NAMES.items()}
        self.opt = make_optimizer("adam", self.net.parameters(), lr)

    def forward(self, x):
        """(pre_activation, hidden, output): Net.forward, layer by layer."""
        pre = self.net.linear1(x)
        hidden = self.sigmoid(pre)
        return pre, hidden, self.net.linear2(hidden)

    def sigmoid(self, pre):
        return self.net.sigmoid(pre)

    def optimizer_step(self) -> None:
        self.opt.step()

    def moments(self, name: str):
        """(first moment, second moment, step count) of parameter `name` after the step, in torch's layout."""
        state = self.opt.state[self.tensors[name]]
        return state["exp_avg"], state["exp_avg_sq"], state["step"]

    def step(self, x, y) -> dict:
        """One training step; its quantities as numpy arrays in the port's names and layout."""
        pre, hidden, output = self.forward(x)
        loss = torch.nn.functional.mse_loss(output, y)
        self.opt.zero_grad()
        loss.backward()
        before = {k: t.detach().clone() for k, t in self.tensors.items()}
        grads = {k: t.grad.detach().clone() for k, t in self.tensors.items()}
        self.optimizer_step()
        out = {"forward.pre_activation": pre, "forward.hidden": hidden, "forward.output": output,
               "forward.residual": output - y, "loss": loss}
        for name in PARAM_NAMES:
            mu, nu, count = self.moments(name)
            out |= {f"params.{name}": before[name], f"grads.{name}": grads[name], f"adam.mu.{name}": mu,
                    f"adam.nu.{name}": nu, f"update.{name}": self.tensors[name].detach() - before[name]}
        out["adam.count"] = torch.as_tensor(count, dtype=torch.int32)
        return {k: _port_layout(k, v) for k, v in out.items()}


def _port_layout(name: str, tensor) -> np.ndarray:
    value = tensor.detach().clone().numpy()
    param = name.rpartition(".")[2]
    return value.T.copy() if param in TORCH_NAMES and TORCH_NAMES[param][1] else value


def recorded_run(params, x, y, lr: float, *, steps: int, every: int = 1, dtype: torch.dtype = torch.float32,
                 run=TwinRun) -> dict:
    """The twin's Adam run from `params` (the port's layout, numpy) on x, y (N, 1) in `dtype`: {name: array with the
    kept steps 0, every, ... as its leading axis} plus "step"; run: TwinRun or a variant of it."""
    twin = run(params, lr, dtype)
    x, y = (torch.tensor(np.asarray(a), dtype=dtype) for a in (x, y))
    kept = []
    for t in range(steps):
        out = twin.step(x, y)
        if t % every == 0:
            kept.append(out)
    return {"step": np.arange(0, steps, every), **{k: np.stack([o[k] for o in kept]) for k in kept[0]}}
