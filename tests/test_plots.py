"""The training run's pictures (app.plots, through outputs.write_outputs): what each shows (the fit lines are the
snapshots, the step labels sit above the data, the grid's panels are the GIF's frames and the loss curve, a diverged
curve is cut), the same bytes for the same inputs, every file written whole or not at all, and no pyplot."""

import ast
import subprocess
import sys

import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from conftest import ROOT, read_image
from PIL import Image

from jax_impl.app import outputs, plots
from jax_impl.app.outputs import write_outputs
from jax_impl.core import data, train
from jax_impl.core.layout import param_shapes
from jax_impl.core.steps import log_line, snapshot_steps
from jax_impl.files.params_io import InputError

PICTURES = ["data.png", "learning.gif", "loss.png", "snapshots.png"]
STEPS = snapshot_steps(201, 20)
FRAME = (plots.FIGSIZE[0] * plots.DPI, plots.FIGSIZE[1] * plots.DPI)  # (480, 320): every picture's and panel's size


@pytest.fixture(scope="module")
def notebook_run():
    """The arrays write_outputs gets from the notebook's run: x, y, steps, snapshots (11, 100, 1), losses (201,)."""
    params, x, y = data.run_inputs()
    trajectory = train.fit(params, x, y, jnp.asarray(0.2, jnp.float32))
    return {"x": np.asarray(x), "y": np.asarray(y), "steps": STEPS, "snapshots": np.asarray(trajectory.snapshots),
            "losses": np.asarray(trajectory.losses), "title": "JAX, adam lr 0.2"}


@pytest.fixture(scope="module")
def drawn(notebook_run, tmp_path_factory):
    """The four pictures of the notebook's run, drawn once."""
    out = tmp_path_factory.mktemp("pictures")
    assert plots.draw_pictures(out, **notebook_run) == ["data.png", "snapshots.png", "learning.gif", "loss.png"]
    return out


def rgb(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=int)


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(rgb(gif))
        return frames


def test_each_frame_is_the_snapshot_in_red_under_its_label(notebook_run):
    """The fit figure's line holds the snapshot's prediction, thick and red; the title is the notebook's log line, in
    red, above the axes (so it covers no data); the axes are labelled."""
    x, y, snapshots, losses = (notebook_run[k] for k in ("x", "y", "snapshots", "losses"))
    fit = plots.FitFigure(x, y, snapshots)
    assert fit.data().size == FRAME and fit.title.get_text() == "data: y = x² + noise"
    assert (fit.ax.get_xlabel(), fit.ax.get_ylabel()) == ("x", "y")
    renderer = fit.fig.canvas.get_renderer()
    for prediction, t in zip(snapshots, STEPS):
        assert fit.frame(prediction, t, losses).size == FRAME
        np.testing.assert_array_equal(fit.line.get_ydata(), np.ravel(prediction))
        assert fit.line.get_color() == "red" and fit.line.get_linewidth() == 4
        assert fit.title.get_text() == log_line(t, losses) and fit.title.get_color() == "red"
        assert fit.title.get_window_extent(renderer).y0 >= fit.ax.bbox.y1  # above the axes, not on the data
    low, high = fit.ax.get_ylim()  # every snapshot in view (the first fit lies below the data)
    assert low < snapshots.min() < y.min() and high > max(y.max(), snapshots.max())


# The fast octree's 256 colours move a pixel's channel by at most this (of 255): measured on every frame drawn here.
PALETTE_ERROR = 15


def test_the_gif_is_the_frames_and_the_grid_tiles_them_with_the_loss_curve(notebook_run, drawn):
    """learning.gif: 11 frames of the fit figure (the 256-colour palette moves a colour by at most 15/255, white not at
    all); the grid: the same 11 frames, in the same palette, and loss.png in a 4 x 3 grid, none of its cells empty."""
    x, y, snapshots, losses = (notebook_run[k] for k in ("x", "y", "snapshots", "losses"))
    with plots.style():  # draw_pictures's settings
        fit = plots.FitFigure(x, y, snapshots)
        expected = [rgb(fit.frame(p, t, losses)) for p, t in zip(snapshots, STEPS)]
    frames = gif_frames(drawn / "learning.gif")
    assert len(frames) == 11 and frames[0].shape == (FRAME[1], FRAME[0], 3)
    for got, want in zip(frames, expected):
        assert np.abs(got - want).max() <= PALETTE_ERROR
        assert (got[0] == 255).all() and (want[0] == 255).all()  # the white margin stays exactly white
    assert not any(np.array_equal(frames[k], frames[k + 1]) for k in range(10))
    grid = rgb(Image.open(drawn / "snapshots.png"))
    gap, (w, h) = plots.GRID_GAP, FRAME
    assert grid.shape == (3 * h + 2 * gap, 4 * w + 3 * gap, 3)
    cells = [grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] for r in range(3) for c in range(4)]
    for cell, frame in zip(cells, frames):  # one palette: the grid's panels are the GIF's frames, pixel for pixel
        np.testing.assert_array_equal(cell, frame)
    assert np.abs(cells[11] - rgb(Image.open(drawn / "loss.png"))).max() <= PALETTE_ERROR
    assert (grid[h:h + gap] == 255).all() and (grid[:, w:w + gap] == 255).all()  # white between the panels


@pytest.mark.parametrize("every,columns,rows", [(50, 4, 2), (40, 4, 2), (17, 4, 4), (100, 4, 1), (10, 4, 6),
                                                (300, 2, 1)])
def test_the_loss_curve_fills_the_last_rows_free_cells(notebook_run, every, columns, rows):
    """5, 6, 12, 3, 21 and 1 snapshots: the loss curve spans what the snapshots leave of the last row (all of it
    after 12), so that no cell of the grid is empty."""
    steps = snapshot_steps(201, every)
    snapshots = np.resize(notebook_run["snapshots"], (len(steps), *notebook_run["snapshots"].shape[1:]))
    fit = plots.FitFigure(notebook_run["x"], notebook_run["y"], snapshots)
    frames = [fit.frame(p, t, notebook_run["losses"]) for p, t in zip(snapshots, steps)]
    loss = plots.loss_figure({"run": notebook_run["losses"]})
    grid = rgb(plots.grid_image(frames, loss))
    (w, h), gap = FRAME, plots.GRID_GAP
    assert grid.shape == (rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3)
    first_free = len(steps) % columns  # the loss curve, drawn as wide as the cells from here to the row's end
    span = columns - first_free
    assert loss.canvas.get_width_height() == (span * w + (span - 1) * gap, h)
    np.testing.assert_array_equal(grid[-h:, first_free * (w + gap):], rgb(plots.canvas_image(loss)))
    for c in range(columns):  # every cell holds a drawing: dark pixels (ticks, labels, frame) in each
        for r in range(rows):
            assert (grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] < 128).any()


def matplotlib_defaults(monkeypatch):
    """plots as it would draw with matplotlib's own placements: titles lifted over the axes' top (axes.titley None),
    spines measured by the layout, the locators' ticks left live."""
    monkeypatch.setattr(plots, "style", lambda: matplotlib.rc_context({"text.hinting": "none"}))
    monkeypatch.setattr(plots, "add_axes", lambda fig, **kwargs: fig.add_subplot(**kwargs))
    monkeypatch.setattr(plots, "ticks_in_view", lambda ax: None)


def drawn_pixels(notebook_run, curves) -> list[np.ndarray]:
    """The fit figure's data picture and one frame (y scaled by 1e7), and each loss figure of `curves`, as pixels."""
    with plots.style():
        fit = plots.FitFigure(notebook_run["x"], notebook_run["y"] * 1e7, notebook_run["snapshots"] * 1e7)
        assert fit.ax.yaxis.offsetText.get_text() == "1e7"  # drawn above the axes, beside the title
        pictures = [rgb(fit.data()), rgb(fit.frame(notebook_run["snapshots"][5] * 1e7, 100, notebook_run["losses"]))]
        for losses in curves:
            loss = plots.loss_figure(losses)
            loss.canvas.draw()
            pictures.append(rgb(plots.canvas_image(loss)))
    return pictures


def test_the_layout_shortcuts_leave_every_pixel(notebook_run, monkeypatch):
    """style()'s axes.titley, add_axes's spines out of the layout and ticks_in_view save matplotlib work, not pixels:
    the pictures equal matplotlib's own placements pixel for pixel (the same machine and versions: no rounding enters
    between them), for y values with an offset label (1e7, above the axes) and loss curves over a decade, twelve
    decades, under one decade and diverged. Dropping an in-view tick, or a title that moves, fails it."""
    losses = notebook_run["losses"]
    curves = [{"run": losses}, {"run": np.geomspace(1e5, 1e-7, 300)}, {"run": np.geomspace(2, 1.5, 100)},
              {"calm": losses, "diverged": np.r_[losses[:50], np.geomspace(losses[50], 1e22, 30)]}]
    ours = drawn_pixels(notebook_run, curves)
    with monkeypatch.context() as patched:
        matplotlib_defaults(patched)
        theirs = drawn_pixels(notebook_run, curves)
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, reference)
    assert not np.array_equal(ours[0], ours[1])  # the frame draws its line and title over the data picture


def test_divergence_step():
    losses = np.linspace(1.0, 0.5, 10)
    assert plots.divergence_step(losses) is None
    assert plots.divergence_step(np.r_[losses, np.inf, 1.0]) == 10  # the first non-finite loss
    assert plots.divergence_step(np.r_[losses, np.nan]) == 10
    assert plots.divergence_step(np.r_[losses, 999.0, 1001.0, 1e22]) == 11  # from there EXPLODED (1e3) times the first
    assert plots.divergence_step(np.r_[losses, 2000.0, 1e22, 0.5]) is None  # a spike it recovers from
    assert plots.divergence_step([np.nan, 1.0]) == 0


def test_diverged_curves_are_cut_and_marked_and_leave_the_scale_alone(notebook_run):
    """An ensemble's loss curves on one plot: one that turned non-finite and one that blew up to 1e22 end before the
    step they diverged at, with an x on their last point; one with a spike it recovers from is drawn whole; the log
    axis stays within the curves' finite range."""
    losses = notebook_run["losses"].astype(float)
    curves = {"fine": losses, "spike": np.r_[losses[:5], 5e3, losses[6:]], "nan": np.r_[losses[:120], [np.nan] * 81],
              "blown up": np.r_[losses[:50], np.geomspace(1, 1e22, 30), [np.inf] * 121]}
    blown = int(np.argmax(curves["blown up"] > 1e3 * losses[0]))
    assert blown == 54
    fig = plots.loss_figure(curves)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_marker() != "x"]
    marks = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert [len(line.get_ydata()) for line in lines] == [201, 201, 120, blown]
    assert [line.get_label() for line in lines] == ["fine", "spike", "nan: diverged at step 120 (cut)",
                                                    f"blown up: diverged at step {blown} (cut)"]
    assert [(m.get_xdata()[0], m.get_ydata()[0]) for m in marks] == [(119, losses[119]),
                                                                      (blown - 1, curves["blown up"][blown - 1])]
    assert [m.get_color() for m in marks] == [lines[2].get_color(), lines[3].get_color()]
    fig.canvas.draw()
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "log" and low > 1e-3 and 5e3 < high < 1e5  # the spike in view, not the 1e22
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "MSE loss")
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and not any("$" in label for label in labels)  # plain text: no mathtext to set up


def test_same_inputs_same_bytes(notebook_run, drawn, tmp_path):
    assert plots.draw_pictures(tmp_path, **notebook_run) == ["data.png", "snapshots.png", "learning.gif", "loss.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == PICTURES  # and no temporary file left behind
    for name in PICTURES:
        assert (tmp_path / name).read_bytes() == (drawn / name).read_bytes(), name
    for name in ("data.png", "loss.png"):
        image = read_image(tmp_path / name)
        assert image["size"] == FRAME and image["grey_levels"] > 10


def test_a_failed_write_keeps_the_old_picture(notebook_run, tmp_path, monkeypatch):
    """Every picture is encoded by PIL's save, into a temporary file renamed over the old one only when whole
    (atomic_path); one that fails half-way leaves what was there."""
    for name in PICTURES:
        (tmp_path / name).write_bytes(b"the previous run's picture")

    def half_a_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"half a picture")
        raise OSError("No space left on device")

    fit = plots.FitFigure(notebook_run["x"], notebook_run["y"], notebook_run["snapshots"])
    image = fit.data()
    loss = plots.loss_figure({"run": notebook_run["losses"]})
    grid = plots.grid_image([image] * 3, loss)
    monkeypatch.setattr(Image.Image, "save", half_a_save)
    writes = {"data.png": lambda path: plots.save_image(image, path),
              "snapshots.png": lambda path: plots.save_image(grid, path),
              "learning.gif": lambda path: plots.save_gif([image, image], path),
              "loss.png": lambda path: plots.save_png(loss, path, plots.DPI)}
    for name, write in writes.items():
        with pytest.raises(OSError, match="No space left"):
            write(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == PICTURES
    assert all((tmp_path / name).read_bytes() == b"the previous run's picture" for name in PICTURES)


def params20():
    return {name: np.zeros(shape, np.float32) for name, shape in param_shapes(20).items()}


def test_write_outputs_draws_the_pictures_or_none(notebook_run, drawn, tmp_path):
    """plots=False (--no-plots): no picture; plots=True: the four pictures, as draw_pictures draws them."""
    without, with_plots = tmp_path / "without", tmp_path / "with"
    without.mkdir(), with_plots.mkdir()
    assert write_outputs(without, params=params20(), plots=False, **notebook_run) == [
        "params.npz", "model.safetensors", "losses.json"]
    assert sorted(p.name for p in without.iterdir()) == ["losses.json", "model.safetensors", "params.npz"]
    written = write_outputs(with_plots, params=params20(), plots=True, **notebook_run)
    assert written == ["params.npz", "model.safetensors", "losses.json", "data.png", "snapshots.png",
                       "learning.gif", "loss.png"]
    assert sorted(p.name for p in with_plots.iterdir()) == sorted(written)
    for name in PICTURES:
        assert (with_plots / name).read_bytes() == (drawn / name).read_bytes(), name


def test_paused_gc_leaves_the_collector_as_it_found_it():
    import gc

    assert gc.isenabled()
    with outputs.paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(OSError), outputs.paused_gc():
            raise OSError("a picture that failed")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_picture_that_cannot_be_written_is_one_input_error(notebook_run, tmp_path):
    """A folder where snapshots.png goes: InputError naming it (one line, exit 2 in the scripts), and nothing of the
    new set is written: the earlier run's files keep their bytes (out_dir.replaced), no temporary file is left."""
    (tmp_path / "snapshots.png").mkdir()
    for name in ("learning.gif", "loss.png"):
        (tmp_path / name).write_bytes(b"the previous run's picture")
    with pytest.raises(InputError, match=r"snapshots\.png is not a file"):
        write_outputs(tmp_path, params=params20(), plots=True, **notebook_run)
    assert all((tmp_path / name).read_bytes() == b"the previous run's picture" for name in ("learning.gif", "loss.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learning.gif", "loss.png", "snapshots.png"]
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.")]


def test_no_picture_machinery():
    """The pictures are drawn in the run's process: outputs, plots and cli hold no process pool, fork or signal
    handler (but cli's one for SIGTERM, which makes it act as Ctrl-C) and no `global` statement; outputs and plots,
    at module level, only constants (numbers, strings, tuples of them)."""
    cli_tree = ast.parse((ROOT / "jax_impl" / "app" / "cli.py").read_text())
    assert [ast.unparse(node) for node in ast.walk(cli_tree) if isinstance(node, ast.Call)
            and ast.unparse(node.func).startswith("signal.")] == ["signal.signal(signal.SIGTERM, _terminated)"]
    for name in ("outputs.py", "plots.py", "cli.py"):
        tree = ast.parse((ROOT / "jax_impl" / "app" / name).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"multiprocessing", "signal" if name != "cli.py" else "multiprocessing"}, name
        attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not attributes & {"fork", "ProcessPoolExecutor", "get_context"}, name
        assert not any(isinstance(node, ast.Global) for node in ast.walk(tree)), name
        for node in tree.body if name != "cli.py" else []:
            if isinstance(node, ast.Assign):
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                assert all(isinstance(v, (ast.Constant, ast.Tuple)) for v in values), (name, ast.unparse(node))
    assert not hasattr(outputs, "PictureProcess")


def test_importing_plots_leaves_pyplot_out():
    """Only sweep_plots, compare.py and bench.py draw with pyplot (plots.plt imports it on first use)."""
    code = ("import sys; from jax_impl.app import plots; print('matplotlib.pyplot' in sys.modules); "
            "plots.plt; print('matplotlib.pyplot' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr
