"""The files a training run leaves in its output folder; shared by train_jax.py and train_torch.py (no jax here)."""

import contextlib
import json
import pathlib
import sys

import numpy as np

from jax_impl import weights
from jax_impl.params_io import save_bytes, save_text


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


PICTURES = ["data.png", "snapshots.png", "learning.gif", "loss.png"]


def draw_pictures(out: pathlib.Path, *, x, y, steps, snapshots, losses, title: str) -> list[str]:
    """data.png, snapshots.png, learning.gif and loss.png in `out`, each written atomically. Returns their names."""
    from jax_impl import plots as P  # matplotlib costs ~0.4 s to import: only when drawing

    P.plot_data(x, y, out / "data.png")
    P.plot_snapshot_grid(x, y, snapshots, steps, losses, out / "snapshots.png", title=title)
    P.animate_snapshots(x, y, snapshots, steps, losses, out / "learning.gif")
    P.plot_loss_curve({title: losses}, out / "loss.png")
    return list(PICTURES)


# --- the picture process (PictureProcess) -----------------------------------------------------------------------------
# What the picture process drew from the data before the results came (_draw_from_data), for _draw_the_rest. It lives
# in that process only: one process, one run.
_FROM_DATA = {}


def _import_plots() -> None:
    import jax_impl.plots  # noqa: F401


def _can_fork() -> bool:
    """Whether this process may fork: on Linux, while it runs neither JAX's nor torch's threads (forking those is
    unsafe). Elsewhere a new process is a fresh interpreter, which imports everything again."""
    return sys.platform.startswith("linux") and not {"jax", "torch"} & sys.modules.keys()


def _draw_from_data(x, y, title: str) -> None:
    """In the picture process, while the run trains: data.png drawn and encoded (kept in memory: a run that diverges
    writes nothing), learning.gif's axes and the loss curve's figure (warmed up: LossCurves.warm_up)."""
    from jax_impl import plots as P

    _FROM_DATA.clear()
    data = P.data_figure(x, y)
    data.canvas.draw()
    data_png, animation, loss = P.canvas_png(data), P.SnapshotAnimation(x, y), P.LossCurves([title])
    loss.warm_up()
    # Kept only whole: after an error here _draw_the_rest draws everything itself (and meets the error there).
    _FROM_DATA.update(x=x, y=y, title=title, data_png=data_png, animation=animation, loss=loss)


def _draw_the_rest(out: pathlib.Path, *, x, y, steps, snapshots, losses, title: str) -> list[str]:
    """In the picture process, with the results: the four pictures in `out`, each written atomically, from what
    _draw_from_data drew if it was given these x, y and title (else drawn whole here). The grid is drawn by a fork of
    this process meanwhile, on the core that the training process no longer needs."""
    import concurrent.futures
    import multiprocessing

    from jax_impl import plots as P

    prepared = _FROM_DATA and _FROM_DATA["title"] == title and all(
        np.array_equal(_FROM_DATA[k], v) for k, v in (("x", x), ("y", y)))
    if not prepared:
        return draw_pictures(out, x=x, y=y, steps=steps, snapshots=snapshots, losses=losses, title=title)
    grid_args = (x, y, snapshots, steps, losses, out / "snapshots.png")
    with contextlib.ExitStack() as stack:
        if _can_fork():
            helper = stack.enter_context(concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("fork")))
            grid = helper.submit(P.plot_snapshot_grid, *grid_args, title=title)
        else:
            P.plot_snapshot_grid(*grid_args, title=title)
            grid = None
        save_bytes(out / "data.png", _FROM_DATA["data_png"])
        _FROM_DATA["animation"].save(snapshots, steps, losses, out / "learning.gif")
        _FROM_DATA["loss"].save([losses], out / "loss.png")
        if grid is not None:
            grid.result()  # a drawing error comes back here as the exception it was
    return list(PICTURES)


class PictureProcess:
    """A process that draws the run's pictures, started before the run imports JAX or torch.

    Importing matplotlib takes ~0.4 s, as long as drawing the four pictures: started first thing, the process imports
    it on the other core while this one starts JAX or torch; given the data (draw_from_data) it draws what needs no
    results while the run compiles and trains; given the results (write_outputs(pictures=...)) it draws the rest, two
    pictures at a time. On Linux it is a fork of this process (_can_fork), else a fresh interpreter (~0.3 s more CPU).
    A one-process pool, so that a drawing error comes back here as the exception it was."""

    def __init__(self):
        import concurrent.futures
        import multiprocessing

        self.pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(
            "fork" if _can_fork() else "spawn"))
        self.pool.submit(_import_plots)  # the pool starts its process with its first task

    def draw_from_data(self, x, y, title: str) -> None:
        """Start on what x and y (N, 1) and the run's title decide (data.png, the animation's axes, the loss curve's
        figure); nothing is written yet."""
        self.pool.submit(_draw_from_data, np.asarray(x), np.asarray(y), title)

    def draw(self, out: pathlib.Path, **arrays) -> list[str]:
        """The four pictures in `out` (arrays: x, y, steps, snapshots, losses, title); the process ends after."""
        with self.pool:
            return self.pool.submit(_draw_the_rest, out, **arrays).result()


def start_picture_process() -> PictureProcess:
    """PictureProcess(): call it before importing JAX or torch."""
    return PictureProcess()


def write_outputs(out: pathlib.Path, *, x, y, steps, snapshots, losses, params, title: str, plots: bool,
                  pictures=None) -> list[str]:
    """params.npz (validation-cell layout), model.safetensors (the same weights as Net(1, H, 1)'s state_dict, for
    torch), losses.json, and unless plots=False: data.png, snapshots.png, learning.gif, loss.png, drawn by `pictures`
    (a PictureProcess, which ends after) or else in this process. Each file is written atomically. Returns the
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
            written += pictures.draw(out, **arrays, title=title)
    return written
