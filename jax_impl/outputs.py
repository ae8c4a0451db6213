"""The files a training run leaves in its output folder; shared by train_jax.py and train_torch.py (no jax here)."""

import json
import pathlib
import sys

import numpy as np

from jax_impl import weights
from jax_impl.params_io import save_text


def snapshot_steps(steps: int, every: int) -> list[int]:
    """The steps t whose prediction a run keeps (t = 0, every, 2 every, ... < steps): the notebook's plots."""
    return list(range(0, steps, every))


def first_nonfinite_steps(losses) -> np.ndarray:
    """losses (..., steps) -> (...) the first step whose loss is NaN or inf, -1 where every loss is finite."""
    bad = ~np.isfinite(np.asarray(losses))
    return np.where(bad.any(axis=-1), bad.argmax(axis=-1), -1)


def first_nonfinite_step(losses) -> int | None:
    """losses (steps,) -> the first t whose loss is NaN or inf, or None: the step a diverging run is reported at."""
    bad = int(first_nonfinite_steps(losses))
    return None if bad < 0 else bad


def snapshot_lines(steps, losses) -> list[str]:
    """The notebook's log format, one line per snapshot: 't = 20, Loss=0.1541'."""
    return ["t = %d, Loss=%.4f" % (t, float(losses[t])) for t in steps]


def draw_pictures(out: pathlib.Path, *, x, y, steps, snapshots, losses, title: str) -> list[str]:
    """data.png, snapshots.png, learning.gif and loss.png in `out`, each written atomically. Returns their names."""
    from jax_impl import plots as P  # matplotlib costs ~0.4 s to import: only when drawing

    P.plot_data(x, y, out / "data.png")
    P.plot_snapshot_grid(x, y, snapshots, steps, losses, out / "snapshots.png", title=title)
    P.animate_snapshots(x, y, snapshots, steps, losses, out / "learning.gif")
    P.plot_loss_curve({title: losses}, out / "loss.png")
    return ["data.png", "snapshots.png", "learning.gif", "loss.png"]


def _import_plots() -> None:
    import jax_impl.plots  # noqa: F401


def start_picture_process():
    """A process that imports matplotlib now, to draw the pictures later: write_outputs(pictures=...).

    Importing matplotlib takes ~0.4 s, about as long as drawing the four pictures; started before JAX or torch is
    imported, it runs on another core while this process starts them and trains. On Linux the process is a fork of
    this one while it runs neither JAX's nor torch's threads (forking those is unsafe), else a fresh interpreter
    (~0.3 s more CPU). A one-process pool, so that a drawing error comes back here as the exception it was."""
    import concurrent.futures
    import multiprocessing

    small = sys.platform.startswith("linux") and not {"jax", "torch"} & sys.modules.keys()
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(
        "fork" if small else "spawn"))
    pool.submit(_import_plots)  # the pool starts its process with its first task
    return pool


def write_outputs(out: pathlib.Path, *, x, y, steps, snapshots, losses, params, title: str, plots: bool,
                  pictures=None) -> list[str]:
    """params.npz (validation-cell layout), model.safetensors (the same weights as Net(1, H, 1)'s state_dict, for
    torch), losses.json, and unless plots=False: data.png, snapshots.png, learning.gif, loss.png, drawn by `pictures`
    (start_picture_process(), shut down here) or else in this process. Each file is written atomically. Returns the
    names written."""
    weights.write(out / "params.npz", params)
    weights.write(out / "model.safetensors", params)
    save_text(out / "losses.json", json.dumps([float(v) for v in np.asarray(losses)]))
    written = ["params.npz", "model.safetensors", "losses.json"]
    if plots:
        arrays = {"x": np.asarray(x), "y": np.asarray(y), "steps": list(steps), "snapshots": np.asarray(snapshots),
                  "losses": np.asarray(losses)}
        if pictures is None:
            written += draw_pictures(out, **arrays, title=title)
        else:
            with pictures:  # shut down when done
                written += pictures.submit(draw_pictures, out, **arrays, title=title).result()
    return written
