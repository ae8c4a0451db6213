"""The benchmark's picture: log-log, steady-state median seconds against points, one panel per hidden width, and
one panel of ensembles against the number of models. Drawn on a figure the caller makes and saves (bench.py:
jax_impl.app.plots, whose pyplot draws headless)."""


def panels(records) -> int:
    """How many panels draw() needs: one per width of single models, one more if there are ensembles."""
    return len(_widths(records)) + bool(_ensembles(records))


def figure_size(records) -> tuple[float, float]:
    """(width, height) in inches for draw()'s panels side by side."""
    return 5.5 * panels(records), 4.2


def _widths(records) -> list[int]:
    return sorted({r["hidden"] for r in records if r["models"] == 1 and "process" not in r["variant"]})


def _ensembles(records) -> list[dict]:
    return [r for r in records if "ensemble" in r["variant"] and r["median_s"]]


def _finish(ax, **labels) -> None:
    ax.set(**labels)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def draw(fig, records) -> None:
    """The panels on `fig`, side by side, with a title naming the device."""
    axes = fig.subplots(1, panels(records), squeeze=False)[0]
    for ax, hidden in zip(axes, _widths(records)):
        rows = [r for r in records if r["hidden"] == hidden and r["models"] == 1 and r["median_s"]
                and "process" not in r["variant"] and "ensemble" not in r["variant"]]
        for name in sorted({(r["framework"], r["variant"]) for r in rows}):
            line = sorted((r["points"], r["median_s"]) for r in rows if (r["framework"], r["variant"]) == name)
            style = ":" if name[1] == "arithmetic floor" else "-" if name[0] == "jax" else "--"
            ax.loglog(*zip(*line), style, marker="o", label=" ".join(name))
        _finish(ax, xlabel="points", ylabel=f"seconds per {records[0]['steps']}-step run (median)",
                title=f"hidden width {hidden}")
    ensembles = _ensembles(records)
    if ensembles:
        for framework in sorted({r["framework"] for r in ensembles}):
            line = sorted((r["models"], r["median_s"]) for r in ensembles if r["framework"] == framework)
            axes[-1].loglog(*zip(*line), marker="o", label=f"{framework} ensemble")
        _finish(axes[-1], xlabel="models trained at once", ylabel="seconds per run (median)",
                title=f"ensembles, {ensembles[0]['points']} points x {ensembles[0]['hidden']}")
    machine = records[0]["machine"]
    fig.suptitle(f"{records[0]['device']}: {machine.get('gpu') or machine['cpu']}", fontsize=9)
    fig.tight_layout()
