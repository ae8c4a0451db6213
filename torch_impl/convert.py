"""JAX parameter pytree <-> torch state_dict, by an explicit four-name mapping.

JAX keeps the validation cell's layout (x @ w1 + b1); torch.nn.Linear keeps weight as (out, in) and computes
x @ weight.T + bias, so the weights are transposed and the biases copied.
"""

import numpy as np
import torch

from jax_impl.params_io import infer_hidden

# JAX name -> (torch name, whether the tensor is transposed between the two layouts)
JAX_TO_TORCH = {
    "w1": ("linear1.weight", True),  # (1, H)  <-> (H, 1)
    "b1": ("linear1.bias", False),  # (H,)
    "w2": ("linear2.weight", True),  # (H, 1)  <-> (1, H)
    "b2": ("linear2.bias", False),  # (1,)
}


def _check_shape(name: str, got: tuple, want: tuple) -> None:
    if tuple(got) != tuple(want):
        raise ValueError(f"tensor {name!r} has shape {tuple(got)}, expected {tuple(want)}")


def to_state_dict(params, hidden: int | None = None) -> dict[str, torch.Tensor]:
    """JAX params (arrays of any kind numpy accepts) -> a state_dict for Net(1, H, 1)."""
    if hidden is None:
        hidden = infer_hidden({k: np.shape(params[k]) for k in ("w1", "b1", "w2") if k in params})
    want = {"w1": (1, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
    state = {}
    for jax_name, (torch_name, transpose) in JAX_TO_TORCH.items():
        if jax_name not in params:
            raise KeyError(f"parameter {jax_name!r} is missing")
        value = np.asarray(params[jax_name])
        _check_shape(jax_name, value.shape, want[jax_name])
        state[torch_name] = torch.from_numpy(np.ascontiguousarray(value.T if transpose else value).copy())
    return state


def from_state_dict(state: dict[str, torch.Tensor], hidden: int | None = None) -> dict[str, np.ndarray]:
    """A Net(1, H, 1) state_dict -> JAX params as numpy arrays (jnp.asarray them where needed)."""
    if hidden is None:
        # the transposed tensors' shapes reversed, so that the vote is in the JAX layout (b2 has no say, as above)
        hidden = infer_hidden({k: tuple(reversed(state[t].shape)) if transpose else tuple(state[t].shape)
                               for k, (t, transpose) in JAX_TO_TORCH.items() if k != "b2" and t in state})
    want = {"linear1.weight": (hidden, 1), "linear1.bias": (hidden,),
            "linear2.weight": (1, hidden), "linear2.bias": (1,)}
    params = {}
    for jax_name, (torch_name, transpose) in JAX_TO_TORCH.items():
        if torch_name not in state:
            raise KeyError(f"tensor {torch_name!r} is missing from the state_dict")
        value = state[torch_name].detach().cpu().numpy()
        _check_shape(torch_name, value.shape, want[torch_name])
        params[jax_name] = np.ascontiguousarray(value.T if transpose else value).copy()
    return params
