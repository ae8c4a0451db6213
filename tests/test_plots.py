"""The training run's pictures (app.plots through outputs.draw_pictures): the same bytes for the same inputs, in
this process or a picture process, written whole or not at all, the grid's panels where tight_layout puts subplots
with shared axes, and no pyplot."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, read_image
from PIL import Image

from jax_impl.app import outputs, plots
from jax_impl.app.outputs import draw_pictures, start_picture_process, write_outputs
from jax_impl.core import data, train
from jax_impl.core.layout import param_shapes
from jax_impl.core.steps import snapshot_steps

PICTURES = ["data.png", "learning.gif", "loss.png", "snapshots.png"]
STEPS = snapshot_steps(201, 20)


@pytest.fixture(scope="module")
def notebook_run():
    """The arrays write_outputs gets from the notebook's run: x, y, steps, snapshots (11, 100, 1), losses (201,)."""
    params, x, y = data.run_inputs()
    trajectory = train.fit(params, x, y, jnp.asarray(0.2, jnp.float32))
    return {"x": np.asarray(x), "y": np.asarray(y), "steps": STEPS, "snapshots": np.asarray(trajectory.snapshots),
            "losses": np.asarray(trajectory.losses), "title": "JAX, adam lr 0.2"}


def test_same_inputs_same_bytes(notebook_run, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    assert draw_pictures(first, **notebook_run) == draw_pictures(second, **notebook_run)
    assert sorted(p.name for p in first.iterdir()) == PICTURES  # and no temporary file left behind
    for name in PICTURES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_figures_built_before_the_results_draw_what_fresh_ones_draw(notebook_run, tmp_path):
    """The picture process builds the grid, the animation and the loss curve before the results (and draws the loss
    curve once with stand-in curves): saved, and saved again after another run's results, they match fresh figures."""
    x, y, steps, snapshots, losses, title = (notebook_run[k] for k in ("x", "y", "steps", "snapshots", "losses",
                                                                      "title"))
    grid, animation = plots.SnapshotGrid(x, y, steps, title), plots.SnapshotAnimation(x, y)
    loss = plots.LossCurves([title])
    loss.warm_up()
    other = tmp_path / "other"
    other.mkdir()
    # first a run whose fits leave the data's range (the grid's y limits grow), then the notebook's run
    for run_snapshots, run_losses, folder in ((snapshots * 3 - 1, losses * 10, other), (snapshots, losses, tmp_path)):
        grid.save(run_snapshots, run_losses, folder / "snapshots.png")
        animation.save(run_snapshots, steps, run_losses, folder / "learning.gif")
        loss.save([run_losses], folder / "loss.png")
    for name in ("snapshots.png", "learning.gif", "loss.png"):
        assert (other / name).read_bytes() != (tmp_path / name).read_bytes(), name
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    draw_pictures(fresh, **notebook_run)
    for name in ("snapshots.png", "learning.gif", "loss.png"):
        assert (tmp_path / name).read_bytes() == (fresh / name).read_bytes(), name

def test_a_failed_write_keeps_the_old_picture(notebook_run, tmp_path, monkeypatch):
    """Every picture is encoded by PIL's save (matplotlib's PNGs too), into its file or into memory first; one that
    fails half-way leaves what was there."""
    for name in PICTURES:
        (tmp_path / name).write_bytes(b"the previous run's picture")

    def half_a_save(self, fp, *args, **kwargs):
        if hasattr(fp, "write"):
            fp.write(b"half a picture")
        else:
            with open(fp, "wb") as f:
                f.write(b"half a picture")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_a_save)
    x, y, steps, snapshots, losses = (notebook_run[k] for k in ("x", "y", "steps", "snapshots", "losses"))
    draws = {"data.png": lambda path: plots.plot_data(x, y, path),
             "snapshots.png": lambda path: plots.plot_snapshot_grid(x, y, snapshots, steps, losses, path),
             "learning.gif": lambda path: plots.animate_snapshots(x, y, snapshots, steps, losses, path),
             "loss.png": lambda path: plots.plot_loss_curve({"run": losses}, path)}
    for name, draw in draws.items():
        with pytest.raises(OSError, match="No space left"):
            draw(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == PICTURES
    assert all((tmp_path / name).read_bytes() == b"the previous run's picture" for name in PICTURES)


def longest_runs(dark: np.ndarray) -> np.ndarray:
    """Per column of a boolean image, the most consecutive True pixels."""
    runs = np.zeros(dark.shape[1], int)
    current = np.zeros(dark.shape[1], int)
    for row in dark:
        current = np.where(row, current + 1, 0)
        runs = np.maximum(runs, current)
    return runs


def frame_lines(image: np.ndarray, min_run: int) -> list[list[int]]:
    """Columns and rows of an RGB image where the panels' dark frames run: min_run dark pixels in a row, which the
    tick labels' strokes never have."""
    dark = image.max(axis=-1) < 90
    return [np.flatnonzero(longest_runs(pixels) >= min_run).tolist() for pixels in (dark, dark.T)]


def tight_layout_grid(x, y, snapshots, steps, losses, title, path):
    """The grid as subplots with shared axes under tight_layout draw it: one axes a panel."""
    import matplotlib.pyplot as plt

    rows = -(-len(steps) // plots.GRID_COLUMNS)
    fig, axes = plt.subplots(rows, plots.GRID_COLUMNS, figsize=(4 * plots.GRID_COLUMNS, 3 * rows), dpi=80,
                             sharex=True, sharey=True, squeeze=False)
    for ax, prediction, t in zip(axes.flat, snapshots, steps):
        ax.scatter(np.ravel(x), np.ravel(y), s=8)
        ax.plot(np.ravel(x), np.ravel(prediction), "r-", lw=5 * 11 / 20)
        ax.text(0.5, 0, "t = %d, Loss=%.4f" % (t, losses[t]), fontdict={"size": 11, "color": "red"}, ha="center")
    for ax in axes.flat[len(steps):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    plots.save_png(fig, path, dpi=80)


@pytest.mark.parametrize("every", [20, 50, 10])
def test_grid_panels_sit_where_tight_layout_puts_them(notebook_run, tmp_path, every):
    """11, 5 and 21 panels: every panel's frame within a pixel of tight_layout's (it places them at fractions of a
    pixel; the grid rounds each to whole pixels so that one background serves all)."""
    run = {**notebook_run, "steps": snapshot_steps(201, every)}
    run["snapshots"] = np.stack([notebook_run["snapshots"][0]] * len(run["steps"]))
    run["snapshots"][1:] = notebook_run["snapshots"][-1]  # the first and the last fit: wide and narrow y ranges
    tight_layout_grid(**run, path=tmp_path / "reference.png")
    plots.plot_snapshot_grid(**run, path=tmp_path / "grid.png")
    reference, grid = (np.asarray(Image.open(tmp_path / name).convert("RGB")) for name in ("reference.png", "grid.png"))
    assert grid.shape == reference.shape
    columns, rows = frame_lines(reference, min_run=150)
    assert len(columns) == 2 * plots.GRID_COLUMNS and len(rows) == 2 * -(-len(run["steps"]) // plots.GRID_COLUMNS)
    grid_columns, grid_rows = frame_lines(grid, min_run=150)
    assert len(grid_columns) == len(columns) and len(grid_rows) == len(rows)
    assert np.abs(np.subtract(grid_columns, columns)).max() <= 1 and np.abs(np.subtract(grid_rows, rows)).max() <= 1
    assert read_image(tmp_path / "grid.png")["grey_levels"] > 10


def test_importing_plots_leaves_pyplot_out():
    """Only sweep_plots, compare.py and bench.py draw with pyplot (plots.plt imports it on first use)."""
    code = ("import sys; from jax_impl.app import plots; print('matplotlib.pyplot' in sys.modules); "
            "plots.plt; print('matplotlib.pyplot' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr


@pytest.mark.parametrize("given", ["the run's data", "other data", "no data", "another title", "a process gone"])
def test_the_picture_process_draws_the_same_bytes(notebook_run, tmp_path, given):
    """write_outputs with a picture process (here a fresh interpreter: this process runs JAX) writes what drawing in
    this process writes: given the run's data before the results, as the scripts give it (it draws part of the
    pictures then), or other data, none, or another title (it draws them all from the results), or when its process
    is gone (they are drawn in this one)."""
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    draw_pictures(here, **notebook_run)
    params = {name: np.zeros(shape, np.float32) for name, shape in param_shapes(20).items()}
    x, y, title = notebook_run["x"], notebook_run["y"], notebook_run["title"]
    pictures = start_picture_process(STEPS, title if given != "another title" else "another title")
    if given in ("the run's data", "another title"):
        pictures.draw_from_data(x, y)
    elif given == "other data":
        pictures.draw_from_data(x, y + 1)
    elif given == "a process gone":
        pictures.pool.submit(os._exit, 1)  # as if killed: draw() draws in this process
    written = write_outputs(there, params=params, plots=True, pictures=pictures, **notebook_run)
    assert sorted(written) == sorted(["params.npz", "model.safetensors", "losses.json", *PICTURES])
    assert sorted(p.name for p in there.iterdir()) == sorted(written)  # and no temporary file left behind
    for name in PICTURES:
        assert (there / name).read_bytes() == (here / name).read_bytes(), name
    # The figures built before the results are used only for the run they were built for (and the fresh interpreter,
    # which runs neither JAX nor torch, forks for the grid on Linux)
    prepared = outputs.PREPARED_FORKED if sys.platform.startswith("linux") else outputs.PREPARED
    assert pictures.how == {"the run's data": prepared, "a process gone": outputs.IN_THIS_PROCESS}.get(
        given, outputs.WHOLE)


def test_the_scripts_picture_processes_draw_the_same_bytes(notebook_run, tmp_path):
    """As train_jax.py and train_torch.py draw on Linux: the picture process forked before JAX is imported, given the
    data while the run trains, and the grid drawn by a fork of it. It writes what drawing in this process writes."""
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    draw_pictures(here, **notebook_run)
    np.savez(tmp_path / "run.npz", **{k: np.asarray(v) for k, v in notebook_run.items()})
    code = f"""if True:
        import sys
        import numpy as np
        from jax_impl.app import outputs
        from jax_impl.core.layout import param_shapes
        run = dict(np.load({str(tmp_path / "run.npz")!r}))
        run = {{**run, "steps": run["steps"].tolist(), "title": str(run["title"])}}
        pictures = outputs.start_picture_process(run["steps"], run["title"])
        pictures.draw_from_data(run["x"], run["y"])
        params = {{name: np.zeros(shape, np.float32) for name, shape in param_shapes(20).items()}}
        outputs.write_outputs(__import__("pathlib").Path({str(there)!r}), params=params, plots=True,
                              pictures=pictures, **run)
        print(repr(pictures.how), "jax" in sys.modules)
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    linux = sys.platform.startswith("linux")
    assert done.stdout.splitlines() == [f"{outputs.PREPARED_FORKED if linux else outputs.PREPARED!r} False"]
    for name in PICTURES:
        assert (there / name).read_bytes() == (here / name).read_bytes(), name


def test_ctrl_c_in_a_task_within_a_task_still_stops_the_task():
    """The picture process ends at once on Ctrl-C only between tasks (outputs._on_interrupt): a task run inside
    another (the grid where the process cannot fork) leaves it in a task until the outer one ends."""
    seen = []
    inner = outputs._task(lambda: seen.append(outputs._BUSY))
    outer = outputs._task(lambda: (inner(), seen.append(outputs._BUSY)))
    outer()
    assert seen == [True, True] and outputs._BUSY is False
