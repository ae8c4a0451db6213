"""The two sources of training data: the notebook's exact draw (shipped), or a fresh draw from jax.random."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl.model import PARAM_NAMES
from jax_impl.params_io import load_npz

HERE = pathlib.Path(__file__).resolve().parent
NOTEBOOK_DATA = HERE / "notebook_data.npz"  # written by scripts/make_notebook_data.py from torch's draw
NOTEBOOK_VALIDATION_PARAMS = HERE / "notebook_validation_params.npz"  # the weights behind the printed table


def notebook_data(dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """x = linspace(-1, 1, 100) as (100, 1); y = x**2 + 0.2 * torch.rand after torch.manual_seed(1)."""
    arrays = load_npz(NOTEBOOK_DATA, ("x", "y"))
    return jnp.asarray(arrays["x"], dtype), jnp.asarray(arrays["y"], dtype)


def notebook_init_params(dtype=jnp.float32) -> dict[str, jax.Array]:
    """Net(1, 20, 1)'s initial weights as the notebook drew them, in the JAX layout."""
    arrays = load_npz(NOTEBOOK_DATA, PARAM_NAMES)
    return {k: jnp.asarray(v, dtype) for k, v in arrays.items()}


def make_data(key: jax.Array, points: int = 100, noise: float = 0.2, dtype=jnp.float32):
    """Fresh data: x = linspace(-1, 1, points) as (points, 1); y = x**2 + noise * U[0, 1)."""
    x = jnp.linspace(-1.0, 1.0, points, dtype=dtype)[:, None]
    return x, x**2 + noise * jax.random.uniform(key, x.shape, dtype)


def as_numpy(params) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in params.items()}
