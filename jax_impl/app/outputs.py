"""The files a training run leaves in its output folder; shared by train_jax.py and train_torch.py (no jax here)."""

import contextlib
import functools
import json
import os
import pathlib
import signal
import sys

import numpy as np

from jax_impl.app.cli import INTERRUPTED
from jax_impl.files import weights
from jax_impl.files.params_io import InputError, save_bytes, save_text

PICTURES = ["data.png", "snapshots.png", "learning.gif", "loss.png"]


def draw_pictures(out: pathlib.Path, *, x, y, steps, snapshots, losses, title: str) -> list[str]:
    """data.png, snapshots.png, learning.gif and loss.png in `out`, each written atomically. Returns their names."""
    from jax_impl.app import plots as P  # matplotlib costs ~0.4 s to import: only when drawing

    P.plot_data(x, y, out / "data.png")
    P.plot_snapshot_grid(x, y, snapshots, steps, losses, out / "snapshots.png", title=title)
    P.animate_snapshots(x, y, snapshots, steps, losses, out / "learning.gif")
    P.plot_loss_curve({title: losses}, out / "loss.png")
    return list(PICTURES)


# --- the picture process (PictureProcess) -----------------------------------------------------------------------------
# What the picture process drew before the results came, for _draw_the_rest: from the run's flags (_prepare_run) and
# from its data (_draw_from_data). It lives in that process only: one process, one run.
_PREPARED = {}


def _can_fork() -> bool:
    """Whether this process may fork: on Linux, while it runs neither JAX's nor torch's threads (forking those is
    unsafe). Elsewhere a new process is a fresh interpreter, which imports everything again."""
    return sys.platform.startswith("linux") and not {"jax", "torch"} & sys.modules.keys()


_BUSY = False  # whether this picture process is in one of its tasks (_task): how _on_interrupt treats Ctrl-C


def _on_interrupt(signum, frame) -> None:
    """Ctrl-C reaches every process of the terminal's group, the picture processes too. In a task, stop it as Python
    does (KeyboardInterrupt: a picture half-written is removed, atomic_path) and wait for the run, which ends on the
    same Ctrl-C (cli.run_main) and then ends this process; between tasks, nothing is being written: end now. (Ignoring
    Ctrl-C here instead let a second Ctrl-C, which breaks the run's wait for this process, leave it running forever.)"""
    if _BUSY:
        raise KeyboardInterrupt
    os._exit(INTERRUPTED)


def _start() -> None:
    """Each picture process (and the fork that draws the grid) first: Ctrl-C as _on_interrupt says, between tasks."""
    global _BUSY
    _BUSY = False
    signal.signal(signal.SIGINT, _on_interrupt)


def _task(function):
    """A picture-process task: _BUSY while it runs (and still after, if it ran inside another: _draw_the_rest draws
    the grid itself where it cannot fork)."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        global _BUSY
        outer, _BUSY = _BUSY, True
        try:
            return function(*args, **kwargs)
        finally:
            _BUSY = outer

    return run


@_task
def _prepare_run(steps, title: str) -> None:
    """In the picture process, first: import matplotlib (~0.4 s) and build the loss curve's figure (warmed up: its
    log axis' labels laid out), which needs only the run's title."""
    from jax_impl.app import plots as P

    loss = P.LossCurves([title])
    loss.warm_up()
    _PREPARED.update(steps=list(steps), title=title, loss=loss)


@_task
def _draw_from_data(x, y) -> None:
    """In the picture process, while the run trains: data.png drawn and encoded (kept in memory: a run that diverges
    writes nothing), learning.gif's axes and the grid's figure."""
    from jax_impl.app import plots as P

    data = P.data_figure(x, y)
    data.canvas.draw()
    data_png, animation = P.canvas_png(data), P.SnapshotAnimation(x, y)
    grid = P.SnapshotGrid(x, y, _PREPARED["steps"], _PREPARED["title"])  # a warm-up draw saved it 0.008 s of 0.14
    # Kept only whole: after an error here _draw_the_rest draws everything itself (and meets the error there).
    _PREPARED.update(x=x, y=y, data_png=data_png, animation=animation, grid=grid)


@_task
def _save_grid(snapshots, losses, path) -> None:
    _PREPARED["grid"].save(snapshots, losses, path)


@_task
def _draw_the_rest(out: pathlib.Path, *, x, y, steps, snapshots, losses, title: str) -> tuple[list[str], str]:
    """In the picture process, with the results: the four pictures in `out`, each written atomically, from what
    _prepare_run and _draw_from_data drew if they had these steps, title, x and y (else drawn whole here). The grid
    is drawn by a fork of this process meanwhile, on the core that the training process no longer needs. Returns
    the names written and how they were drawn (PictureProcess.how)."""
    import concurrent.futures
    import multiprocessing

    prepared = "grid" in _PREPARED and (_PREPARED["steps"], _PREPARED["title"]) == (list(steps), title) and all(
        np.array_equal(_PREPARED[k], v) for k, v in (("x", x), ("y", y)))
    if not prepared:
        return draw_pictures(out, x=x, y=y, steps=steps, snapshots=snapshots, losses=losses, title=title), WHOLE
    forked = _can_fork()
    with contextlib.ExitStack() as stack:
        if forked:  # the fork has the grid's figure as this process built it
            helper = stack.enter_context(concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("fork"), initializer=_start))
            grid = helper.submit(_save_grid, snapshots, losses, out / "snapshots.png")
        else:
            _save_grid(snapshots, losses, out / "snapshots.png")
            grid = None
        save_bytes(out / "data.png", _PREPARED["data_png"])
        _PREPARED["animation"].save(snapshots, steps, losses, out / "learning.gif")
        _PREPARED["loss"].save([losses], out / "loss.png")
        if grid is not None:
            grid.result()  # a drawing error comes back here as the exception it was
    return list(PICTURES), PREPARED_FORKED if forked else PREPARED


# How a PictureProcess drew: from the results alone; with figures built before them (the grid in this process, or in
# a fork of it); or, its process gone, in the run's own process.
WHOLE, PREPARED, PREPARED_FORKED, IN_THIS_PROCESS = "whole", "prepared", "prepared, grid in a fork", "in this process"


class PictureProcess:
    """A process that draws a run's pictures, started before the run imports JAX or torch: snapshot `steps` and the
    run's `title` (the pictures' title and the loss curve's label), as write_outputs will get them.

    Importing matplotlib takes ~0.4 s, as long as drawing the four pictures: started first thing, the process imports
    it on the other core while this one starts JAX or torch; given the data (draw_from_data) it draws what needs no
    results while the run compiles and trains; given the results (write_outputs(pictures=...)) it draws the rest, two
    pictures at a time. On Linux it is a fork of this process (_can_fork), else a fresh interpreter (~0.3 s more CPU).
    A one-process pool, so that a drawing error comes back here as the exception it was."""

    def __init__(self, steps, title: str):
        import concurrent.futures
        import multiprocessing

        self.how = None  # after draw(): WHOLE, PREPARED or PREPARED_FORKED (what the tests check), or IN_THIS_PROCESS
        self.pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(
            "fork" if _can_fork() else "spawn"), initializer=_start)
        self.pool.submit(_prepare_run, list(steps), title)  # the pool starts its process with its first task

    def draw_from_data(self, x, y) -> None:
        """Start on what the data x and y (N, 1) decide (data.png, the animation's axes, the grid's figure);
        nothing is written yet."""
        from concurrent.futures.process import BrokenProcessPool

        with contextlib.suppress(BrokenProcessPool):  # draw() draws here then
            self.pool.submit(_draw_from_data, np.asarray(x), np.asarray(y))

    def draw(self, out: pathlib.Path, **arrays) -> list[str]:
        """The four pictures in `out` (arrays: x, y, steps, snapshots, losses, title); the process ends after. If it
        has ended already (killed, or by a Ctrl-C that the run did not see), they are drawn in this process."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            with self.pool:
                names, self.how = self.pool.submit(_draw_the_rest, out, **arrays).result()
        except BrokenProcessPool:
            names, self.how = draw_pictures(out, **arrays), IN_THIS_PROCESS
        return names


def start_picture_process(steps, title: str) -> PictureProcess:
    """PictureProcess(steps, title): call it before importing JAX or torch."""
    return PictureProcess(steps, title)


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
        try:
            written += (draw_pictures if pictures is None else pictures.draw)(out, **arrays, title=title)
        except OSError as e:  # a full disk, a folder where a picture goes: one line
            where = e.filename2 or e.filename or out  # filename2: the picture that a temporary file was to replace
            raise InputError(f"cannot write {where}: {e.strerror or e}") from None
    return written
