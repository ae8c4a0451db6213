"""The notebook's pictures, drawn headless: data, the snapshot grid, the animation, the loss curve (a sweep's are in
sweep_plots).

Figures are matplotlib `Figure`s on the Agg canvas, without pyplot (which only sweep_plots, compare and bench need:
`plt` here imports it on first use). The snapshot grid and the animation draw what every panel or frame shares (axes,
ticks, data) once and, per snapshot, only the fit line, the frame over it and its label.
"""

import io
import math
import sys

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.image import imsave
from PIL import Image

from jax_impl.core.steps import log_line
from jax_impl.files.params_io import atomic_path, save_bytes

matplotlib.use("Agg")  # pyplot, when imported (sweep, compare, bench), draws headless too
GRID_COLUMNS = 4
TIGHT_PAD = 1.08  # tight_layout's default padding, in font sizes: the grid is laid out by its rules


def __getattr__(name):
    """`plots.plt`: pyplot, imported only by the scripts that ask for it (it costs ~0.03 s more)."""
    if name == "plt":
        import matplotlib.pyplot

        return matplotlib.pyplot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_figure(figsize, dpi) -> Figure:
    """A figure on an Agg canvas, drawn at `dpi` (the dpi it is saved at: no re-layout when saved)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path, dpi: int) -> None:
    """fig as a PNG at `path`, written whole or not at all (atomic_path), then closed: every picture the project
    draws (here, and in sweep_plots, compare.py and bench.py) is saved this way."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    if "matplotlib.pyplot" in sys.modules:  # a pyplot figure stays in pyplot's list until closed
        sys.modules["matplotlib.pyplot"].close(fig)


def canvas_png(fig) -> bytes:
    """What fig's canvas holds now (drawn piece by piece, not redrawn) as a PNG file's bytes, as savefig writes it."""
    png = io.BytesIO()
    imsave(png, np.asarray(fig.canvas.buffer_rgba()), format="png", dpi=fig.dpi)
    return png.getvalue()


def save_canvas_png(fig, path) -> None:
    """canvas_png(fig) at `path`, written whole or not at all."""
    save_bytes(path, canvas_png(fig))


def _draw_snapshot(ax, x, y, prediction, t, losses, fontsize):
    """As the notebook draws one step: the data, the fit as a thick red line, red 't = .., Loss=..' text.
    Returns the line and the text. They and the axes' frame (drawn over the line) are marked animated: a full draw
    leaves them out, and _draw_fit draws them."""
    ax.scatter(x, y, s=8)
    (line,) = ax.plot(x, prediction, "r-", lw=5 * fontsize / 20, animated=True)
    # The notebook's text at (0.5, 0), centred there so that it stays inside a small panel.
    label = ax.text(0.5, 0, log_line(t, losses), fontdict={"size": fontsize, "color": "red"}, ha="center",
                    animated=True)
    for spine in ax.spines.values():
        spine.set_animated(True)
    return line, label


def _draw_fit(ax, line, label, prediction, t, losses) -> None:
    """The fit line, the axes' frame and the line's label on what the canvas holds, in a full draw's order."""
    line.set_ydata(prediction)
    label.set_text(log_line(t, losses))
    for artist in (line, *ax.spines.values(), label):
        ax.draw_artist(artist)


def data_figure(x, y) -> Figure:
    """The notebook's first picture, the data x and y (N, 1) as a scatter: a figure at the dpi it is saved at."""
    fig = new_figure((6, 4), dpi=100)
    ax = fig.add_subplot()
    ax.scatter(np.ravel(x), np.ravel(y))
    ax.set(xlabel="x", ylabel="y", title="y = x² + noise·U[0, 1)")
    return fig


def plot_data(x, y, path):
    """data_figure(x, y) saved as a PNG at `path`."""
    save_png(data_figure(x, y), path, dpi=100)


def _overhangs(ax, renderer) -> np.ndarray:
    """How far ax's decorations (ticks, tick labels, the fit's label) reach beyond its frame, in pixels: left,
    bottom, right, top."""
    tight, frame = ax.get_tightbbox(renderer), ax.bbox
    return np.maximum([frame.x0 - tight.x0, frame.y0 - tight.y0, tight.x1 - frame.x1, tight.y1 - frame.y1], 0)


def _grid_layout(fig, ax, rows, panels, suptitle, renderer):
    """Where tight_layout would put `panels` subplots with shared axes, GRID_COLUMNS a row, in fig: tick labels
    on the left column and the bottom row only, tight_layout's padding (TIGHT_PAD), room for the suptitle (or None).
    ax, the one axes, is measured where it is (as tight_layout measures the subplots before it moves them: the tick
    locators choose by size, so the ticks may change once it has).

    Returns the frame's size (w, h) and each panel's frame origin (x0, y0), in whole pixels from the bottom left,
    and the overhangs (_overhangs) of each kind of panel, keyed (left tick labels, bottom tick labels)."""
    cols = GRID_COLUMNS  # always: a short last row leaves its cells empty, as subplots(rows, 4) does
    over = {}
    for left in (True, False):
        for bottom in (True, False):
            ax.tick_params(labelleft=left, labelbottom=bottom)
            over[left, bottom] = _overhangs(ax, renderer)
    # Overhangs per cell of the grid (left, bottom, right, top); nothing for the empty cells after the last panel.
    cell = np.zeros((rows, cols, 4))
    for k in range(panels):
        r, c = divmod(k, GRID_COLUMNS)
        cell[r, c] = over[c == 0, r == rows - 1]
    pad = TIGHT_PAD * FontProperties(size=matplotlib.rcParams["font.size"]).get_size_in_points() / 72 * fig.dpi
    left, bottom = pad + cell[:, 0, 0].max(), pad + cell[-1, :, 1].max()
    right, top = pad + cell[:, -1, 2].max(), pad + cell[0, :, 3].max()
    if suptitle is not None:
        top += suptitle.get_window_extent(renderer).height + pad
    wgap = pad + (cell[:, :-1, 2] + cell[:, 1:, 0]).max(initial=0)  # right of one panel + left of the next
    hgap = pad + (cell[1:, :, 3] + cell[:-1, :, 1]).max(initial=0)
    w = (fig.bbox.width - left - right - (cols - 1) * wgap) / cols
    h = (fig.bbox.height - bottom - top - (rows - 1) * hgap) / rows
    origins = [(round(left + c * (w + wgap)), round(fig.bbox.height - top - h - r * (h + hgap)))
               for r, c in (divmod(k, GRID_COLUMNS) for k in range(panels))]
    return (round(w), round(h)), origins, over


def _place(fig, ax, x0, y0, w, h) -> None:
    """ax's frame at (x0, y0), w x h, in pixels from the figure's bottom left."""
    width, height = fig.bbox.width, fig.bbox.height
    ax.set_position((x0 / width, y0 / height, w / width, h / height))


class SnapshotGrid:
    """The snapshot grid: one panel per snapshot, GRID_COLUMNS a row, laid out as subplots with shared axes under
    tight_layout. Built from x, y (N, 1), the snapshot steps (S,) and the title alone, before training has given the
    snapshots (the picture process builds it while the run trains); save() draws the panels.

    One axes serves every panel: the panels differ only in the fit line and its label, so the axes' background
    (frame, ticks, both tick labels, data) is drawn once, and each panel gets the part of it that its kind shows
    (the left column the left tick labels, the bottom row the bottom ones) and its own line and label on it."""

    def __init__(self, x, y, steps, title=""):
        self.x, self.steps = np.ravel(x), list(steps)
        self.rows = -(-len(self.steps) // GRID_COLUMNS)
        self.fig = new_figure((4 * GRID_COLUMNS, 3 * self.rows), dpi=80)
        self.suptitle = self.fig.suptitle(title) if title else None
        self.ax = self.fig.add_subplot(self.rows, GRID_COLUMNS, 1)  # where tight_layout measures: the default size
        # The line and label are animated (out of the background): y stands in for a prediction, t for a step.
        self.line, self.label = _draw_snapshot(self.ax, self.x, np.ravel(y), np.ravel(y), 0, [np.nan], fontsize=11)
        # What save() starts from, each time: the data's limits (it adds every snapshot's) and the default subplot's
        # place (where tight_layout measures; save() moves the axes from panel to panel).
        self.data_limits, self.position = self.ax.dataLim.frozen(), self.ax.get_position().frozen()
        # The white figure and the title, as every panel's canvas starts
        self.ax.set_visible(False)
        self.fig.canvas.draw()
        self.ax.set_visible(True)
        self.blank = self.fig.canvas.copy_from_bbox(self.fig.bbox)

    def save(self, snapshots, losses, path) -> None:
        """snapshots: (S, N, 1) predictions at the steps; losses: (T,) all per-step losses. A PNG at `path`."""
        fig, ax, line, label, rows, steps = self.fig, self.ax, self.line, self.label, self.rows, self.steps
        predictions = [np.ravel(p) for p in snapshots]
        ax.dataLim.set(self.data_limits)
        ax.set_position(self.position)
        for prediction in predictions:  # shared y limits: every panel's line in view
            ax.update_datalim(np.column_stack([self.x, prediction]))
        ax.autoscale_view()
        renderer = fig.canvas.get_renderer()
        label.set_text(max((log_line(t, losses) for t in steps), key=len))  # the widest label (digits equally wide)
        (w, h), origins, over = _grid_layout(fig, ax, rows, len(steps), self.suptitle, renderer)

        fig.canvas.restore_region(self.blank)
        # The background at the bottom row's first panel, which shows both tick labels.
        ref_x0, ref_y0 = origins[(rows - 1) * GRID_COLUMNS]
        _place(fig, ax, ref_x0, ref_y0, w, h)
        ax.tick_params(labelleft=True, labelbottom=True)
        ax.draw(renderer)
        background = fig.canvas.copy_from_bbox(ax.get_tightbbox(renderer).padded(1))
        x_min, y_min, x_max, y_max = background.get_extents()  # Agg's pixel rows count from the top
        height = round(fig.bbox.height)
        for k, (prediction, t, (x0, y0)) in enumerate(zip(predictions, steps, origins)):
            row, column = divmod(k, GRID_COLUMNS)
            left, bottom, right, top = over[column == 0, row == rows - 1] + 1  # + 1: antialiased edges
            part = (max(x_min, math.floor(ref_x0 - left)), max(y_min, math.floor(height - ref_y0 - h - top)),
                    min(x_max, math.ceil(ref_x0 + w + right)), min(y_max, math.ceil(height - ref_y0 + bottom)))
            fig.canvas.restore_region(background, bbox=part, xy=(x_min + x0 - ref_x0, y_min - (y0 - ref_y0)))
            _place(fig, ax, x0, y0, w, h)
            _draw_fit(ax, line, label, prediction, t, losses)
        save_canvas_png(fig, path)


def plot_snapshot_grid(x, y, snapshots, steps, losses, path, title=""):
    """The snapshot grid (SnapshotGrid) as a PNG at `path`: snapshots (S, N, 1) predictions at `steps` (S,),
    losses (T,) all per-step losses."""
    SnapshotGrid(x, y, steps, title).save(snapshots, losses, path)


class SnapshotAnimation:
    """The learning process as an animated GIF, one frame per snapshot, as the notebook's plt.pause loop.

    The data, axes and ticks are the same in every frame (the y limits come from the data), so they are drawn once,
    here, from x and y (N, 1) alone: before training has given the snapshots. save() then restores that picture for
    each frame and draws the fit line, the frame over it and the label on it."""

    def __init__(self, x, y):
        x, y = np.ravel(x), np.ravel(y)
        self.fig = new_figure((6, 4.5), dpi=70)
        self.ax = self.fig.add_subplot()
        # The line and label are animated (left out of the background): y stands in for a prediction, t for a step.
        self.line, self.label = _draw_snapshot(self.ax, x, y, y, 0, [np.nan], fontsize=16)
        self.ax.set_ylim(min(y.min(), 0) - 0.1, y.max() + 0.2)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)

    def save(self, snapshots, steps, losses, path, fps=2) -> None:
        """snapshots: (S, N, 1) predictions at `steps` (S,); losses: (T,) all per-step losses; fps: frames a second.
        The GIF is written at `path` whole or not at all."""
        canvas, frames = self.fig.canvas, []
        for prediction, t in zip(snapshots, steps):
            canvas.restore_region(self.background)
            _draw_fit(self.ax, self.line, self.label, np.ravel(prediction), t, losses)
            # A GIF holds 256 colours a frame; the fast octree picks them in 2 ms where median cut (Pillow's default
            # for RGB) takes 20 ms, and it moves a colour by at most 15/255, white by 1/255.
            frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB").quantize(
                method=Image.Quantize.FASTOCTREE))
        with atomic_path(path) as tmp:
            frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps),
                           loop=0)


def animate_snapshots(x, y, snapshots, steps, losses, path, fps=2):
    """An animated GIF of the learning process at `path` (SnapshotAnimation): x, y (N, 1), snapshots (S, N, 1)
    predictions at `steps` (S,), losses (T,) all per-step losses, fps frames a second."""
    SnapshotAnimation(x, y).save(snapshots, steps, losses, path, fps)


class LossCurves:
    """The loss-curve figure: one line per label, a log-scale y axis. Built before the losses exist (the picture
    process builds it while the run trains), so that save() only sets the lines' data and draws."""

    def __init__(self, labels, title="training loss (MSE)"):
        self.fig = new_figure((6, 4), dpi=100)
        self.ax = self.fig.add_subplot()
        self.lines = [self.ax.plot([], [], label=label)[0] for label in labels]
        self.ax.set(yscale="log", xlabel="step t", ylabel="loss before update t", title=title)
        self.ax.legend()

    def warm_up(self) -> None:
        """Draw once with stand-in curves over the span a run's loss usually has (1 to 1e-3): matplotlib parses and
        lays out the log axis' tick labels (mathtext) and makes its ticks once, before save() needs them."""
        self._set([np.geomspace(1, 1e-3, 201)] * len(self.lines))
        self.fig.canvas.draw()

    def _set(self, curves) -> None:
        for line, losses in zip(self.lines, curves):
            line.set_data(np.arange(len(losses)), np.asarray(losses))
        self.ax.relim()
        self.ax.autoscale_view()

    def save(self, curves, path) -> None:
        """curves: per-step losses, one array per label (in the labels' order); a PNG at `path`."""
        self._set(curves)
        save_png(self.fig, path, dpi=100)


def plot_loss_curve(curves: dict, path, title="training loss (MSE)"):
    """curves: label -> per-step losses; a log-scale y axis (LossCurves), saved as a PNG at `path`."""
    LossCurves(list(curves), title).save(list(curves.values()), path)
