"""The files a training run leaves in its output folder; shared by train_jax.py and train_torch.py (no jax here)."""

import json
import pathlib

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


def write_outputs(out: pathlib.Path, *, x, y, steps, snapshots, losses, params, title: str, plots: bool) -> list[str]:
    """params.npz (validation-cell layout), model.safetensors (the same weights as Net(1, H, 1)'s state_dict, for
    torch), losses.json, and unless plots=False: data.png, snapshots.png, learning.gif, loss.png. Each file is
    written atomically. Returns the names written."""
    weights.write(out / "params.npz", params)
    weights.write(out / "model.safetensors", params)
    save_text(out / "losses.json", json.dumps([float(v) for v in np.asarray(losses)]))
    written = ["params.npz", "model.safetensors", "losses.json"]
    if plots:
        from jax_impl import plots as P  # matplotlib costs ~0.7 s to import: only when plotting

        P.plot_data(x, y, out / "data.png")
        P.plot_snapshot_grid(x, y, snapshots, steps, losses, out / "snapshots.png", title=title)
        P.animate_snapshots(x, y, snapshots, steps, losses, out / "learning.gif")
        P.plot_loss_curve({title: losses}, out / "loss.png")
        written += ["data.png", "snapshots.png", "learning.gif", "loss.png"]
    return written
