"""A sweep's grid trained: every (seed, lr, hidden, optimizer) is one model; the models that share a hidden width and
an optimizer form one group, trained in one sharded call (sharding.fit_sharded: the learning rate is data, so new
rates do not recompile; widths differ in shape, so each width is its own call).

Within a group the models are lr-major: model (i, j) = (lrs[i], seeds[j]) is index i * len(seeds) + j, and the
groups follow each other hidden-major, then by optimizer. Records are dicts (seed, lr, hidden, optimizer, final_loss,
diverged_at, losses (steps,)), in that order: what jax_impl.app.sweep_report reads.
"""

import time

import numpy as np

from jax_impl.core import data, ensemble, model, sharding
from jax_impl.core.steps import first_nonfinite_steps


def fit_group(x, y, *, seeds, lrs, hidden: int, optimizer: str, steps: int, torch_seeds: bool = False, dtype):
    """One group: every (lr, seed) with data.ensemble_params's weights, in one sharded call. x, y: (N, 1) host arrays.
    Returns (records, the final params (E, ...) as numpy arrays, {hidden, optimizer, models, devices, seconds}:
    the call's wall time, compilation included)."""
    seeds_of_models = [s for _ in lrs for s in seeds]
    params = data.ensemble_params(seeds_of_models, hidden, torch_seeds=torch_seeds, points=x.shape[0], dtype=dtype)
    start = time.perf_counter()
    trajectory, devices = sharding.fit_sharded(params, x, y, np.repeat(np.asarray(lrs, dtype), len(seeds)),
                                               optimizer=optimizer, steps=steps, every=None)
    seconds = time.perf_counter() - start
    losses = np.asarray(trajectory.losses)
    diverged = first_nonfinite_steps(losses)
    records = [{"seed": int(seed), "lr": float(lrs[i // len(seeds)]), "hidden": hidden, "optimizer": optimizer,
                "final_loss": float(losses[i, -1]) if diverged[i] < 0 else None,
                "diverged_at": None if diverged[i] < 0 else int(diverged[i]), "losses": losses[i]}
               for i, seed in enumerate(seeds_of_models)]
    group = {"hidden": hidden, "optimizer": optimizer, "models": len(seeds_of_models), "devices": devices,
             "seconds": seconds}
    return records, trajectory.params, group


def fit_grid(x, y, *, seeds, lrs, hiddens, optimizers, steps: int, torch_seeds: bool = False, dtype):
    """Every group of the grid (fit_group), hidden-major. Returns (records, final params per group, groups)."""
    records, finals, groups = [], [], []
    for hidden in hiddens:
        for optimizer in optimizers:
            more, params, group = fit_group(x, y, seeds=seeds, lrs=lrs, hidden=hidden, optimizer=optimizer,
                                            steps=steps, torch_seeds=torch_seeds, dtype=dtype)
            records += more
            finals.append(params)
            groups.append(group)
    return records, finals, groups


def predictions(finals, models, x) -> dict:
    """{model index: model.forward (N, 1) of its final weights} for the given indices into the records' order."""
    flat = [(params, i) for params in finals for i in range(len(params["b2"]))]
    return {m: model.forward({k: v[flat[m][1]] for k, v in flat[m][0].items()}, x) for m in models}


def grid_bytes(*, seeds: int, lrs: int, hiddens, optimizers: int, points: int, steps: int, itemsize: int,
               curves: bool) -> int:
    """The grid's peak memory, an estimate in bytes: one group's models on the devices at a time
    (ensemble.estimate_bytes at the widest width), and on the host every loss curve (gathered, and a float64 copy),
    with `curves` ~64 bytes a value as JSON."""
    models = seeds * lrs
    on_devices = max(ensemble.estimate_bytes(models, hidden=h, points=points, steps=steps, snapshots=0,
                                             itemsize=itemsize) for h in hiddens)
    on_host = models * len(hiddens) * optimizers * steps * (itemsize + 8 + (64 if curves else 0))
    return on_devices + on_host
