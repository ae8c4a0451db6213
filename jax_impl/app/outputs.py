"""The files a training run leaves in its output folder; shared by train_jax.py and train_torch.py (no jax here)."""

import concurrent.futures
import contextlib
import gc
import importlib
import json
import pathlib

import numpy as np

from jax_impl.files import weights
from jax_impl.files.params_io import InputError, save_text


def import_plots() -> concurrent.futures.Future:
    """Start importing jax_impl.app.plots (matplotlib and PIL, ~0.3 s of Python) in a thread; the Future gives the
    module (write_outputs waits for it).

    The import holds the GIL, so it gains only where the run leaves Python: JAX starting its CPU client and compiling,
    torch's kernels (each releases the GIL). Called after the run has imported JAX or torch: their imports hold the GIL
    too, and one beside the other would only take turns. Safe beside the run: matplotlib's import touches neither JAX
    nor torch, numpy (which all of them import) is imported before (jax_impl.core.steps), and a standard-library
    module that both threads import is imported once, the other thread waiting (Python's per-module import locks).
    The thread ends after the import; an interrupted run's exit waits for it (< 0.5 s)."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="import-plots")
    future = pool.submit(importlib.import_module, "jax_impl.app.plots")
    pool.shutdown(wait=False)
    return future


@contextlib.contextmanager
def paused_gc():
    """Python's cyclic garbage collector off for the block, as it was after. Drawing allocates tens of thousands of
    objects (matplotlib's artists, ticks, texts), enough to start a collection of the oldest generation, which walks
    every object JAX has made: 0.05-0.08 s of the drawing's 0.3 s, in every run measured. The figures' cycles are
    collected after the block."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_outputs(out: pathlib.Path, *, x, y, steps, snapshots, losses, params, title: str, plots=None) -> list[str]:
    """params.npz (validation-cell layout), model.safetensors (the same weights as Net(1, H, 1)'s state_dict, for
    torch), losses.json, and given `plots` (import_plots()'s Future; None: no pictures) data.png, snapshots.png,
    learning.gif and loss.png (plots.draw_pictures). Each file is written atomically. Returns the names written."""
    weights.write(out / "params.npz", params)
    weights.write(out / "model.safetensors", params)
    save_text(out / "losses.json", json.dumps([float(v) for v in np.asarray(losses)]))
    written = ["params.npz", "model.safetensors", "losses.json"]
    if plots is not None:
        module = plots.result()
        try:
            with paused_gc():
                written += module.draw_pictures(out, x=np.asarray(x), y=np.asarray(y), steps=list(steps),
                                                snapshots=np.asarray(snapshots), losses=np.asarray(losses),
                                                title=title)
        except OSError as e:  # a full disk, a folder where a picture goes: one line
            where = e.filename2 or e.filename or out  # filename2: the picture that a temporary file was to replace
            raise InputError(f"cannot write {where}: {e.strerror or e}") from None
    return written
