"""A sweep's pictures (scripts/sweep.py), from its records (sweep_report's): the final-loss heatmap, every loss curve,
the best configuration's fit. Drawn with pyplot (plots.plt: the Agg backend), saved with plots.save_png."""

import numpy as np

from jax_impl.app.plots import plt, save_png

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
