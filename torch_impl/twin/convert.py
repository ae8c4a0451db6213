"""JAX parameter pytree <-> torch state_dict, by the explicit four-name mapping of jax_impl/files/weights.py
(JAX_TO_TORCH, re-exported here), which also reads and writes the files.

JAX keeps the validation cell's layout (x @ w1 + b1); torch.nn.Linear keeps weight as (out, in) and computes
x @ weight.T + bias, so the weights are transposed and the biases copied. Both directions are strict as torch's
load_state_dict(strict=True) is: unexpected or missing names and shapes that do not fit raise ValueError
(params_io.InputError) naming them. Values pass as they are, in their dtype (gradients may be NaN: compare.py
reports them); jax_impl.files.weights.read is the reader that also judges the values.
"""

import numpy as np
import torch

from jax_impl.files.weights import JAX_TO_TORCH, from_layout, to_layout  # noqa: F401  (JAX_TO_TORCH)


def tensor_to_numpy(tensor):
    """A torch tensor's values as a numpy array of its dtype, a copy (bfloat16 as ml_dtypes.bfloat16, which numpy
    lacks: the same bits); the dtype's name (a str) for a tensor numpy cannot hold."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes  # numpy's bfloat16

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    try:
        return tensor.numpy().copy()
    except (TypeError, RuntimeError):  # float8, complex32, quantized: no numpy dtype
        return str(tensor.dtype).removeprefix("torch.")


def to_state_dict(params, hidden: int | None = None) -> dict[str, torch.Tensor]:
    """JAX params (arrays of any kind numpy accepts) -> a state_dict for Net(1, H, 1), in the params' dtype."""
    state = to_layout({k: np.asarray(v) for k, v in params.items()}, "torch", hidden)
    return {name: torch.from_numpy(value) for name, value in state.items()}


def from_state_dict(state: dict[str, torch.Tensor], hidden: int | None = None) -> dict[str, np.ndarray]:
    """A Net(1, H, 1) state_dict -> JAX params as numpy arrays in the tensors' dtype (bfloat16 as
    ml_dtypes.bfloat16); jnp.asarray them where needed."""
    return from_layout({k: tensor_to_numpy(v) for k, v in state.items()}, "torch", hidden)
