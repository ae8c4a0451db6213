"""The files a training run leaves in its output folder; shared by train_jax.py and train_torch.py (no jax here)."""

import json
import pathlib

import numpy as np

from jax_impl.params_io import save_npz, save_text


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


def write_outputs(out: pathlib.Path, *, x, y, steps, snapshots, losses, params, title: str, plots: bool) -> list[str]:
    """params.npz (validation-cell layout), losses.json, and unless plots=False: data.png, snapshots.png,
    learning.gif, loss.png. Each file is written atomically. Returns the names written."""
    save_npz(out / "params.npz", params)
    save_text(out / "losses.json", json.dumps([float(v) for v in np.asarray(losses)]))
    written = ["params.npz", "losses.json"]
    if plots:
        written += draw_pictures(out, x=x, y=y, steps=steps, snapshots=snapshots, losses=losses, title=title)
    return written
