"""The notebook's pictures, drawn headless (Agg): data, the snapshot grid, the animation, the loss curve; and a
sweep's (sweep.py): the final-loss heatmap, every loss curve, the best configuration's fit."""

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


# --- a sweep's pictures (records as in sweep_report) ----------------------------------------------------------------

MAX_CURVES = 2000  # curves.png draws at most this many loss curves (an even subsample beyond)


def plot_heatmap(records, rows, seeds, lrs, path):
    """Final loss (log10) over seed x lr, one panel per (hidden, optimizer); diverged cells crossed out."""
    groups = list(dict.fromkeys((r["hidden"], r["optimizer"]) for r in records))  # in training order
    width, height = max(3.5, 1.6 + 0.55 * len(lrs)), 2.4 + min(0.22 * len(seeds), 9)
    fig, axes = plt.subplots(1, len(groups), figsize=(width * len(groups) + 1.2, height), squeeze=False,
                             layout="constrained")
    per_group = len(seeds) * len(lrs)
    finite = np.log10([r["final_loss"] for r in records if r["final_loss"] is not None] or [1.0])
    # colours span the lowest loss to the 90th percentile, so that a few blown-up models do not wash out the rest
    vmin, vmax = finite.min(), max(np.percentile(finite, 90), finite.min() + 1e-3)
    for ax, (g, (hidden, optimizer)) in zip(axes.flat, enumerate(groups)):
        block = records[g * per_group:(g + 1) * per_group]
        grid = np.array([[np.nan if r["final_loss"] is None else np.log10(r["final_loss"]) for r in
                          block[j * len(seeds):(j + 1) * len(seeds)]] for j in range(len(lrs))]).T  # (seeds, lrs)
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
        for (i, j) in zip(*np.nonzero(np.isnan(grid))):
            ax.text(j, i, "x", ha="center", va="center", color="red", fontsize=9)
        ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], rotation=45)
        step = max(1, len(seeds) // 16)
        ax.set_yticks(range(0, len(seeds), step), [str(s) for s in list(seeds)[::step]])
        ax.set(xlabel="learning rate", ylabel="seed", title=f"hidden {hidden}, {optimizer}")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="log10 final loss (x: diverged)",
                 extend="max" if finite.max() > vmax else "neither")
    save_png(fig, path, dpi=100)


def plot_curves(records, lrs, path):
    """Every model's loss curve on one log-scale plot, coloured by learning rate."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    colours = plt.cm.plasma(np.linspace(0, 0.9, len(lrs)))
    alpha = max(0.08, min(0.8, 8 / max(1, len(records) / len(lrs))))
    styles = {name: style for name, style in zip(dict.fromkeys(r["optimizer"] for r in records), ("-", "--"))}
    shown = records[::-(-len(records) // MAX_CURVES)]  # every k-th model: matplotlib slows to minutes past ~10^4 lines
    for r in shown:
        ax.plot(r["losses"], styles[r["optimizer"]], color=colours[list(lrs).index(r["lr"])], lw=0.8, alpha=alpha)
    for lr, colour in zip(lrs, colours):
        ax.plot([], [], color=colour, label=f"lr {lr:g}")
    if len(styles) > 1:
        for name, style in styles.items():
            ax.plot([], [], style, color="grey", label=name)
    finite = np.concatenate([r["losses"][np.isfinite(r["losses"])] for r in records])
    if finite.size:  # diverging curves leave the top of the plot rather than stretch it to 1e38
        ax.set_ylim(0.5 * finite.min(), 10 * np.percentile(finite, 99))
    ax.set(yscale="log", xlabel="step t", ylabel="loss before update t",
           title=f"{len(records)} models: every seed, learning rate, width and optimizer"
                 + (f" ({len(shown)} drawn)" if len(shown) < len(records) else ""))
    ax.legend(fontsize=8)
    save_png(fig, path, dpi=100)


def plot_best_fit(x, y, best, records, predictions, path):
    """The data and the final fit of every seed of the best configuration (the best seed drawn thick).

    predictions: {model index: its final prediction at x, (N, 1)} for the models of `best`'s block."""
    x, y = np.ravel(np.asarray(x, dtype=float)), np.ravel(np.asarray(y, dtype=float))
    block = range(best["first"], best["first"] + best["seeds"])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(x, y, s=8, label="data")
    best_index = min(block, key=lambda i: records[i]["final_loss"])
    for i in block:
        ax.plot(x, np.ravel(predictions[i]), "r-", lw=3 if i == best_index else 0.8,
                alpha=1 if i == best_index else 0.5)
    ax.set(xlabel="x", ylabel="y", title=f"best: lr {best['lr']:g}, hidden {best['hidden']}, {best['optimizer']} "
                                         f"(mean loss {best['mean']:.4f} over {best['seeds']} seeds)")
    save_png(fig, path, dpi=100)
