"""The sources of training data: the notebook's exact draw, a fresh draw from jax.random, or torch's draw for any
torch.manual_seed. The notebook's own numbers are torch's draw after torch.manual_seed(1), reproduced bit for bit
without torch (torch_rng), so nothing here reads a file."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl.core import torch_rng
from jax_impl.core.experiment import fresh_data
from jax_impl.core.layout import PARAM_NAMES
from jax_impl.core.model import DRAW_DTYPE, init_params


@functools.cache
def _notebook_draws() -> dict:
    return torch_rng.notebook_draws(torch_rng.NOTEBOOK_SEED)  # the notebook's seed, width 20, 100 points


def notebook_data(dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """x = linspace(-1, 1, 100) as (100, 1); y = x**2 + 0.2 * torch.rand after torch.manual_seed(1)."""
    draws = _notebook_draws()
    return jnp.asarray(draws["x"], dtype), jnp.asarray(draws["y"], dtype)


def notebook_init_params(dtype=jnp.float32) -> dict[str, jax.Array]:
    """Net(1, 20, 1)'s initial weights as the notebook drew them (after the data), in the JAX layout."""
    return {k: jnp.asarray(v, dtype) for k, v in _notebook_draws()["params"].items()}


def notebook_validation_params() -> dict[str, np.ndarray]:
    """The weights behind the validation cell's printed gradient table (its sixth run's randn draws), float32
    numpy arrays in the JAX layout: w1 (1, 20), b1 (20,), w2 (20, 1), b2 (1,)."""
    return torch_rng.validation_draw(torch_rng.NOTEBOOK_SEED)


def make_data(key: jax.Array, points: int = 100, noise: float = 0.2, dtype=jnp.float32):
    """Fresh data: x = linspace(-1, 1, points) as (points, 1); y = x**2 + noise * U[0, 1). Made in float32 and then
    cast (model.DRAW_DTYPE), so that a float64 run of the same key starts from the float32 run's numbers."""
    x = jnp.linspace(-1.0, 1.0, points, dtype=DRAW_DTYPE)[:, None]
    y = x**2 + jnp.asarray(noise, DRAW_DTYPE) * jax.random.uniform(key, x.shape, DRAW_DTYPE)
    return x.astype(dtype), y.astype(dtype)


def torch_seed_inputs(torch_seed: int, *, hidden: int = 20, points=None, noise=None, dtype=jnp.float32):
    """(params, x, y) as torch.manual_seed(torch_seed) and the notebook's cells give them (torch_rng.notebook_draws),
    drawn in float32 and then cast to dtype, so that float32 and float64 runs start from the same numbers."""
    draws = torch_rng.notebook_draws(torch_seed, hidden, points or 100, 0.2 if noise is None else noise)
    params = {k: jnp.asarray(v, dtype) for k, v in draws["params"].items()}
    return params, jnp.asarray(draws["x"], dtype), jnp.asarray(draws["y"], dtype)


def run_data(*, points=None, noise=None, data_seed=None, torch_seed=None, dtype=jnp.float32):
    """(x, y) for the scripts' flags: torch's draw after torch.manual_seed(torch_seed) if given; else the notebook's
    data unless fresh_data: then make_data with key data_seed (0 if None), `points` (100) and `noise` (0.2)."""
    if torch_seed is not None:
        return torch_seed_inputs(torch_seed, points=points, noise=noise, dtype=dtype)[1:]
    if not fresh_data(points, noise, data_seed):
        return notebook_data(dtype)
    return make_data(jax.random.key(data_seed or 0), points or 100, 0.2 if noise is None else noise, dtype)


def run_inputs(*, seed=None, hidden: int = 20, points=None, noise=None, data_seed=None, torch_seed=None,
               init=None, dtype=jnp.float32):
    """(params, x, y) for the scripts' flags, one rule for all of them (train_jax, train_torch, compare, bench):
    with torch_seed, torch's data and Net(1, hidden, 1) after torch.manual_seed(torch_seed); else run_data's data and
    the initial weights `init` if given (--init's, the port's layout), else the notebook's unless --seed is given or
    the width is not 20 (then init_params with key `seed`, 0 if none)."""
    if torch_seed is not None:
        if seed is not None or init is not None:
            raise ValueError("torch_seed chooses the initial weights, and so does seed or init: give one")
        return torch_seed_inputs(torch_seed, hidden=hidden, points=points, noise=noise, dtype=dtype)
    x, y = run_data(points=points, noise=noise, data_seed=data_seed, dtype=dtype)
    if init is not None:
        if seed is not None:
            raise ValueError("init and seed both choose the initial weights: give one")
        return {k: jnp.asarray(init[k], dtype) for k in PARAM_NAMES}, x, y
    if seed is None and hidden == 20:
        return notebook_init_params(dtype), x, y
    return init_params(jax.random.key(seed or 0), hidden, dtype), x, y


def ensemble_params(seeds, hidden: int = 20, *, torch_seeds: bool = False, points=None, dtype=jnp.float32):
    """run_inputs's initial weights for each seed, stacked on a leading model axis (w1 (E, 1, H), b1 (E, H),
    w2 (E, H, 1), b2 (E, 1)): model i starts as the single run with --seed seeds[i] (jax.random.key, through
    ensemble.init_ensemble), or with torch_seeds as the run with --torch-seed seeds[i] (Net(1, hidden, 1) after
    torch.manual_seed and the data cell's `points` draws), drawn in float32 and then cast to dtype."""
    from jax_impl.core.ensemble import init_ensemble  # ensemble imports the training program; data needs it here only

    if not torch_seeds:
        return init_ensemble(seeds, hidden, dtype)
    drawn = torch_rng.notebook_params_for_seeds(seeds, hidden, points or torch_rng.NOTEBOOK_POINTS)
    return {k: jnp.asarray(v, dtype) for k, v in drawn.items()}


def as_numpy(params) -> dict[str, np.ndarray]:
    """A parameter dict's arrays as numpy arrays (same shapes and dtypes)."""
    return {k: np.asarray(v) for k, v in params.items()}
