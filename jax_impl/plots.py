"""The notebook's pictures, drawn headless (Agg): data, the snapshot grid, the animation, the loss curve."""

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402

from jax_impl.params_io import atomic_path  # noqa: E402


def save_png(fig, path, dpi: int) -> None:
    """fig as a PNG at `path`, written whole or not at all (atomic_path), then closed: every picture the project
    draws (here, and in sweep.py, compare.py and bench.py) is saved this way."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def _draw_snapshot(ax, x, y, prediction, t, loss, fontsize):
    """As the notebook draws one step: the data, the fit as a thick red line, red 't = .., Loss=..' text."""
    ax.cla()
    ax.scatter(x, y, s=8)
    ax.plot(x, prediction, "r-", lw=5 * fontsize / 20)
    # The notebook's text at (0.5, 0), centred there so that it stays inside a small panel.
    ax.text(0.5, 0, "t = %d, Loss=%.4f" % (t, loss), fontdict={"size": fontsize, "color": "red"}, ha="center")


def plot_data(x, y, path):
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(np.ravel(x), np.ravel(y))
    ax.set(xlabel="x", ylabel="y", title="y = x² + noise·U[0, 1)")
    save_png(fig, path, dpi=100)


def plot_snapshot_grid(x, y, snapshots, steps, losses, path, title=""):
    """snapshots: (S, N, 1) predictions at `steps` (S,); losses: (T,) all per-step losses."""
    x, y = np.ravel(x), np.ravel(y)
    cols = 4
    rows = -(-len(steps) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, prediction, t in zip(axes.flat, snapshots, steps):
        _draw_snapshot(ax, x, y, np.ravel(prediction), t, float(losses[t]), fontsize=11)
    for ax in axes.flat[len(steps):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi=80)


def animate_snapshots(x, y, snapshots, steps, losses, path, fps=2):
    """An animated GIF of the learning process: one frame per snapshot, as the notebook's plt.pause loop."""
    x, y = np.ravel(x), np.ravel(y)
    fig, ax = plt.subplots(figsize=(6, 4.5))

    def frame(i):
        _draw_snapshot(ax, x, y, np.ravel(snapshots[i]), steps[i], float(losses[steps[i]]), fontsize=16)
        ax.set_ylim(min(y.min(), 0) - 0.1, y.max() + 0.2)

    anim = FuncAnimation(fig, frame, frames=len(steps))
    with atomic_path(path) as tmp:
        anim.save(tmp, writer=PillowWriter(fps=fps), dpi=70)
    plt.close(fig)


def plot_loss_curve(curves: dict, path, title="training loss (MSE)"):
    """curves: label -> per-step losses; a log-scale y axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, losses in curves.items():
        ax.plot(np.arange(len(losses)), np.asarray(losses), label=label)
    ax.set(yscale="log", xlabel="step t", ylabel="loss before update t", title=title)
    ax.legend()
    save_png(fig, path, dpi=100)
