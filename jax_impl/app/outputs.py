"""The files a training run leaves in its output folder; shared by train_jax.py and train_torch.py (no jax here)."""

import contextlib
import gc
import json
import pathlib

import numpy as np

from jax_impl.app import out_dir
from jax_impl.files import weights
from jax_impl.files.params_io import InputError, save_text


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


RUN_FILES = ("params.npz", "model.safetensors", "losses.json", "data.png", "snapshots.png", "learning.gif", "loss.png")


def write_outputs(out: pathlib.Path, *, x, y, steps, snapshots, losses, params, title: str, plots: bool) -> list[str]:
    """params.npz (validation-cell layout), model.safetensors (the same weights as Net(1, H, 1)'s state_dict, for
    torch), losses.json, and unless plots=False data.png, snapshots.png, learning.gif and loss.png
    (plots.draw_pictures): RUN_FILES, all of them new or none (out_dir.replaced; an earlier run's pictures do not
    stay beside a --no-plots run's weights). Returns the names written."""
    with out_dir.replaced(out, RUN_FILES) as staged:
        return _write(staged, x=x, y=y, steps=steps, snapshots=snapshots, losses=losses, params=params, title=title,
                      plots=plots)


def _write(out: pathlib.Path, *, x, y, steps, snapshots, losses, params, title: str, plots: bool) -> list[str]:
    weights.write(out / "params.npz", params)
    weights.write(out / "model.safetensors", params)
    save_text(out / "losses.json", json.dumps([float(v) for v in np.asarray(losses)]))
    written = ["params.npz", "model.safetensors", "losses.json"]
    if plots:
        try:
            with paused_gc():
                from jax_impl.app import plots as P  # matplotlib: ~0.3 s to import, only for a run that draws

                written += P.draw_pictures(out, x=np.asarray(x), y=np.asarray(y), steps=list(steps),
                                           snapshots=np.asarray(snapshots), losses=np.asarray(losses), title=title)
        except OSError as e:  # a full disk, a folder where a picture goes: one line
            where = e.filename2 or e.filename or out  # filename2: the picture that a temporary file was to replace
            raise InputError(f"cannot write {where}: {e.strerror or e}") from None
    return written
