"""The model axis spread over devices (a Mesh and a NamedSharding) and over processes (jax.distributed, joined by
jax_impl/app/processes.py).

Models are independent, so the partitioned program needs no communication: each device trains its slice of the
model axis. Counts that do not divide evenly are padded with copies of the last model, trained and then dropped;
each device gets at least two models, so that its program is the one-device program for its share (with one model
XLA drops the model axis and sums in another order). Results match one device's within float32 bounds
(tests/test_sharding.py), not bit for bit: another model count is another compiled program.
The same code runs in one process or several: inputs are built from host arrays that every process holds in full
(make_array_from_callback hands each device its slice) and results are gathered to every process.
"""

import functools
from functools import partial

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jax_impl.core import ensemble, ready, train, xla_cpu

AXIS = "models"


def model_mesh(devices=None) -> Mesh:
    """A one-axis mesh over `devices` (default: every device of every process)."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), (AXIS,))


MIN_PER_DEVICE = 2  # with one model per device XLA drops the size-1 model axis and sums over H in another order
# (measured: 1 ulp apart in the losses); two or more keep every device's program the one-device program.


def padded_count(models: int, devices: int) -> int:
    """The model count rounded up to a multiple of `devices`, at least MIN_PER_DEVICE per device."""
    return max(MIN_PER_DEVICE, -(-models // devices)) * devices


def pad_models(tree, total: int):
    """Repeat the last entry along axis 0 until there are `total` (host numpy arrays in, numpy out)."""
    def pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[-1:], total - a.shape[0], axis=0)]) if total > a.shape[0] else a
    return jax.tree.map(pad, tree)


def _global(array, sharding):
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


@functools.cache
def sharded_fit(mesh: Mesh, optimizer: str, steps: int, every: int | None):
    """jit(shard_map(the one-device fit)): every device runs ensemble's program on its own slice of the models."""
    by_model, replicated = PartitionSpec(AXIS), PartitionSpec()
    per_device = partial(ensemble.fit_program, optimizer=optimizer, steps=steps, every=every)
    mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(by_model, replicated, replicated, by_model),
                           out_specs=train.Trajectory(by_model, by_model, by_model),
                           check_vma=False)  # no collectives inside: nothing for the varying-axis check to guard
    return jax.jit(mapped, compiler_options=xla_cpu.compiler_options(tree_reductions=False))


def _inputs(params, x, y, lrs, mesh):
    by_model, replicated = NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec())
    total = padded_count(np.shape(lrs)[0], mesh.size)
    params, lrs = pad_models(({k: np.asarray(v) for k, v in params.items()}, np.asarray(lrs)), total)
    return (jax.tree.map(lambda a: _global(a, by_model), params), _global(x, replicated), _global(y, replicated),
            _global(lrs, by_model))


def fit_sharded(params, x, y, lrs, *, optimizer: str = "adam", steps: int = 201, every: int | None = 20,
                mesh: Mesh | None = None):
    """ensemble.fit_ensemble with the model axis sharded over `mesh` (default: all devices, all processes).

    params, lrs: host arrays with the full model axis E, the same in every process; x, y: (N, 1).
    Returns (Trajectory of numpy arrays with E models, the number of devices that took part).
    """
    mesh = model_mesh() if mesh is None else mesh
    models = np.shape(lrs)[0]
    # ready.wait: Ctrl-C and SIGTERM act within ~50 ms while it trains; the gather's own wait let them act only every
    # ~0.2 s (measured with jax 0.10.2, not documented).
    trajectory = ready.wait(sharded_fit(mesh, optimizer, steps, every)(*_inputs(params, x, y, lrs, mesh)))
    trajectory = multihost_utils.process_allgather(trajectory, tiled=True)
    return train.Trajectory(*jax.tree.map(lambda a: np.asarray(a)[:models], tuple(trajectory))), mesh.size


def compiled_text(params, x, y, lrs, *, optimizer: str = "adam", steps: int = 201, every: int | None = 20,
                  mesh: Mesh | None = None) -> str:
    """The optimised HLO of the sharded program, to show that the partitioned step has no cross-device traffic."""
    mesh = model_mesh() if mesh is None else mesh
    lowered = sharded_fit(mesh, optimizer, steps, every).lower(*_inputs(params, x, y, lrs, mesh))
    return lowered.compile().as_text()
