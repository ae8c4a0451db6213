"""Resume equals never stopping: each row of the parity table (optimizer_parity.ROWS) stopped at step `stop` in one
framework, its state written to a state file (jax_impl/files/state_file.py) and read back, continued in the other
framework or the same one to `steps`; the final parameters compared with an uninterrupted run of the framework that
finished it (the port's train.fit; the twin's fit).

The JAX side is the program --save-state and --resume run (train.jitted_resume, through
core/optimizer_state.py's mapping); the torch side the twin's loop (twin/train.fit_from, twin/optimizer_state.py).
"""

import functools
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jax_impl.core import data, optimizer_state, train
from jax_impl.core.torch_optim import make_optimizer
from jax_impl.files import state_file
from torch_impl.checks.compare import TORCH_DTYPES, to_torch
from torch_impl.twin import convert
from torch_impl.twin import optimizer_state as torch_state
from torch_impl.twin import train as torch_train
from torch_impl.twin.model import net_holding

DIRECTIONS = ("jax->jax", "jax->torch", "torch->jax", "torch->torch")


@functools.cache
def _jitted_step(spec: str, lr: float, dtype: str):
    return jax.jit(train.make_step(make_optimizer(spec, jnp.asarray(lr, dtype))))


def jax_part(spec, lr, params, x, y, *, start, steps, slots=None, stepwise=False):
    """JAX from step `start` (slots: the saved optimizer state; None at 0) to `steps`: (params, slots) as numpy.
    The program --resume runs (train.jitted_resume), or with stepwise the step it scans (train.make_step), jitted once
    per row and called step by step: one compilation per row instead of one per (start, steps)."""
    tx = make_optimizer(spec, jnp.asarray(lr, x.dtype))
    params = {k: jnp.asarray(v, x.dtype) for k, v in params.items()}
    opt_state = tx.init(params) if slots is None else optimizer_state.optax_state(spec, tx.init(params), slots, start)
    if stepwise:
        step = _jitted_step(spec, lr, str(x.dtype))
        for _ in range(start, steps):
            params, opt_state, _, _ = step(params, opt_state, x, y)
    else:
        program = train.jitted_resume(params, x)
        trajectory, opt_state = program(params, opt_state, x, y, lr, optimizer=spec, start=start, steps=steps)
        params = trajectory.params
    slots = {f: data.as_numpy(v) for f, v in optimizer_state.torch_slots(spec, opt_state).items()}
    return data.as_numpy(params), slots


def torch_part(spec, lr, params, x, y, *, start, steps, dtype, slots=None):
    """jax_part in torch (the twin's loop, torch.optim), in `dtype`."""
    tdtype = TORCH_DTYPES[dtype]
    net, x, y = net_holding(params, tdtype), to_torch(x, tdtype), to_torch(y, tdtype)
    opt = torch_train.make_optimizer(spec, net.parameters(), lr)
    if slots is not None:
        torch_state.load_slots(opt, spec, slots, start)
    torch_train.fit_from(net, opt, x, y, start=start, steps=steps)
    return convert.from_state_dict(net.state_dict()), torch_state.torch_slots(opt)[0]


def through_file(spec, params, slots, step, dtype, framework):
    """params and slots written to a state file and read back (what --save-state and --resume do)."""
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "state.safetensors"
        state_file.write(path, state_file.TrainingState(params, slots, step, np.zeros(step, dtype), spec, dtype,
                                                        framework, {}))
        saved = state_file.read(path)
    return saved.params, saved.slots


def worst(ours: dict, reference: dict) -> float:
    """The largest difference over the parameters, each relative to its tensor's largest entry."""
    return max(float(np.max(np.abs(ours[k] - reference[k])) / np.max(np.abs(reference[k]))) for k in reference)


def resume_parity(spec: str, lr: float, *, stop: int, steps: int, dtype: str = "float64",
                  stepwise: bool = False) -> dict:
    """Each direction's worst relative parameter difference after `steps`, stopped at `stop`, against the
    uninterrupted run of the framework that finished: train.fit's program, or with stepwise (jax_part) the same
    jitted step called `steps` times, which makes jax->jax the same computation by construction."""
    jdtype = jnp.float64 if dtype == "float64" else jnp.float32
    params, (x, y) = data.notebook_init_params(jdtype), data.notebook_data(jdtype)
    start_params, xs, ys = data.as_numpy(params), np.asarray(x), np.asarray(y)
    uninterrupted = {"jax": jax_part(spec, lr, start_params, x, y, start=0, steps=steps, stepwise=True)[0] if stepwise
                     else data.as_numpy(train.fit(params, x, y, lr, optimizer=spec, steps=steps).params),
                     "torch": torch_part(spec, lr, start_params, xs, ys, start=0, steps=steps, dtype=dtype)[0]}
    stopped = {"jax": jax_part(spec, lr, start_params, x, y, start=0, steps=stop, stepwise=stepwise),
               "torch": torch_part(spec, lr, start_params, xs, ys, start=0, steps=stop, dtype=dtype)}
    row = {"optimizer": spec, "lr": lr, "dtype": dtype, "stop": stop, "steps": steps, "stepwise": stepwise}
    for direction in DIRECTIONS:
        first, then = direction.split("->")
        saved_params, saved_slots = through_file(spec, *stopped[first], stop, dtype, first)
        if then == "jax":
            final, _ = jax_part(spec, lr, saved_params, x, y, start=stop, steps=steps, slots=saved_slots,
                                stepwise=stepwise)
        else:
            final, _ = torch_part(spec, lr, saved_params, xs, ys, start=stop, steps=steps, dtype=dtype,
                                  slots=saved_slots)
        row[direction] = worst(final, uninterrupted[then])
    return row
