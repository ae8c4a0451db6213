"""The loss gradient by torch autograd through the twin: the torch side of the gradient check
(scripts/validate_grads.py) and of the cross-check (checks/compare.py)."""

import numpy as np
import torch

from torch_impl.twin.convert import from_state_dict
from torch_impl.twin.model import net_holding


def torch_grads(params, x, y, loss: str = "sse") -> dict[str, np.ndarray]:
    """torch_loss_and_grads's gradients alone."""
    return torch_loss_and_grads(params, x, y, loss)[1]


def torch_loss_and_grads(params, x, y, loss: str = "sse") -> tuple[float, dict[str, np.ndarray]]:
    """torch autograd of the loss through the notebook's Net at `params` (JAX layout, float32 or float64), in the
    params' dtype: sse f = sum (y - y_pred)^2 (the validation cell's), mse torch.nn.MSELoss(). x, y: (N, 1).
    Returns (the loss, the gradients in the JAX layout: w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,))."""
    params = {k: np.asarray(v) for k, v in params.items()}
    dtype = torch.float64 if params["w1"].dtype == np.float64 else torch.float32
    net = net_holding(params, dtype)
    x, y = (torch.from_numpy(np.array(a)).to(dtype) for a in (x, y))
    prediction = net(x)
    f = (y - prediction).pow(2).sum() if loss == "sse" else torch.nn.MSELoss()(prediction, y)
    f.backward()
    return float(f.detach()), from_state_dict({name: p.grad for name, p in net.named_parameters()})
