"""The training run's pictures, drawn headless in the run's own process after training (draw_pictures): data.png,
learning.gif, snapshots.png and loss.png; save_png, which saves every figure of the project; and `plt`, pyplot for
the scripts that draw with it (sweep_plots, compare.py, bench.py).

Every picture of a run has one shape, FIGSIZE at DPI, laid out by matplotlib's constrained layout on an Agg canvas
(no pyplot). One figure draws the data and the fits: data.png, then each snapshot's frame (the fit line's data and the
title's text changed, drawn on a copy of the rest); the grid is those frames and the loss curve, tiled and brought to
one palette of 256 colours, and the GIF is the grid's panels: each panel is drawn and quantized once.

The step label ('t = 20, Loss=0.1541', red as in the notebook) is the frame's title: inside the axes no place is sure
to stay free (y = x² fills the top corners, its noise the bottom centre, and a fit at t = 0 may lie anywhere), above
them nothing is drawn.
"""

import sys

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter, LogLocator, MaxNLocator, NullLocator
from PIL import Image

from jax_impl.core.steps import first_nonfinite_step, log_line
from jax_impl.files.params_io import atomic_path

matplotlib.use("Agg")  # pyplot, when imported (sweep, compare, bench), draws headless too
FIGSIZE, DPI = (6, 4), 80  # every picture of a run, and each panel of its grid: 480 x 320 pixels
GRID_COLUMNS, GRID_GAP = 4, 8  # the grid's panels a row, and the white pixels between them
EXPLODED = 1e3  # a run whose loss ends this many times its first has diverged (its curve is cut)


def __getattr__(name):
    """`plots.plt`: pyplot, imported only by the scripts that ask for it (it costs ~0.03 s more)."""
    if name == "plt":
        import matplotlib.pyplot

        return matplotlib.pyplot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def style():
    """The settings a run's pictures are drawn under, for a `with` block (matplotlib.rc_context; nothing global):
    - unhinted glyphs. FreeType's autohinter, matplotlib's default, costs 0.015 s of a run's drawing (0.17 s on the
      Intel Xeon then; about 40 texts, 11 of them the frames' titles) for sharper but no more readable 10-point text
      at 80 dpi;
    - titles at the axes' top edge (axes.titley 1.0), where matplotlib's default (None) lifts a title above whatever
      the axes draw there. These axes draw nothing there (their ticks and labels are below and left) but, for some y
      ranges (1e7, 1e-6, 1000 + 0.1), the y axis' offset label in the left corner, clear of a centred title; and
      finding that out updates every tick again at each layout pass: 0.02 s of a run's pictures, the same pixels."""
    return matplotlib.rc_context({"text.hinting": "none", "axes.titley": 1.0})


def new_figure(figsize=FIGSIZE) -> Figure:
    """A figure on an Agg canvas at DPI, under constrained layout."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def add_axes(fig, **kwargs):
    """fig's one subplot (Figure.add_subplot's kwargs), its spines left out of the constrained layout: a spine is the
    axes' edge widened by half its 0.8-point line, inside the layout's 3-point pad, and measuring one updates its
    axis' ticks again, four spines at each of the layout's two passes (0.015 s of a run's pictures, the same pixels)."""
    ax = fig.add_subplot(**kwargs)
    for spine in ax.spines.values():
        spine.set_in_layout(False)
    return ax


def ticks_in_view(ax) -> None:
    """Fix each of ax's axes to the major ticks its locator puts in view, with matplotlib's own test (within 1e-10 of
    the view's span, in the axis' scale). A locator also returns a tick beyond each end, which matplotlib makes, formats
    and places at every layout pass and draw only to leave it out: 0.03 s of a run's pictures, the same pixels. For a
    figure whose data and limits are final."""
    for axis in (ax.xaxis, ax.yaxis):
        scale = axis.get_transform()
        low, high = scale.transform(sorted(axis.get_view_interval()))
        ticks = axis.get_majorticklocs()
        axis.set_ticks(ticks[np.abs(scale.transform(ticks) - (low + high) / 2) <= (high - low) / 2 * (1 + 2e-10)])


def canvas_image(fig) -> Image.Image:
    """What fig's canvas holds now, as an RGB image (a copy: the canvas may be drawn over next)."""
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")


def save_image(image, path) -> None:
    """A PIL image as a PNG at `path`, written whole or not at all (atomic_path)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="png", dpi=(DPI, DPI), compress_level=3)  # zlib's 6: 20% smaller, 40% slower


def palette_image(image) -> Image.Image:
    """image with at most 256 colours, as a GIF frame holds them: the fast octree (20 ms for the grid, where median cut
    takes 115), without dithering (a plot has few colours and their antialiased blends), and the colour of the
    top-left pixel (a picture's white margin) kept exact: the octree would make it its bucket's mean, 254."""
    paletted = image.quantize(method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    palette, index = paletted.getpalette(), paletted.getpixel((0, 0))
    palette[3 * index:3 * index + 3] = image.getpixel((0, 0))
    paletted.putpalette(palette)
    return paletted


def save_png(fig, path, dpi: int) -> None:
    """fig drawn at `dpi` as a PNG at `path`, written whole or not at all, then closed: how sweep_plots, compare.py and
    bench.py save their figures. One draw, on fig's canvas (savefig draws a figure with a layout engine twice)."""
    fig.set_dpi(dpi)
    fig.canvas.draw()
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).save(tmp, format="png", dpi=(dpi, dpi))
    if "matplotlib.pyplot" in sys.modules:  # a pyplot figure stays in pyplot's list until closed
        sys.modules["matplotlib.pyplot"].close(fig)


def divergence_step(losses) -> int | None:
    """Where a run diverged: its first non-finite loss, or where its exploded tail starts (EXPLODED times the first
    loss or more, to the end); None for a run that ends below that (a spike it recovers from is no divergence)."""
    losses = np.asarray(losses, dtype=float)
    end = first_nonfinite_step(losses)
    end = len(losses) if end is None else end
    calm = np.flatnonzero(losses[:end] < EXPLODED * losses[0])
    step = 0 if calm.size == 0 else int(calm[-1]) + 1
    return None if step == len(losses) else step


def plot_losses(ax, curves: dict) -> None:
    """curves: label -> per-step losses, on ax with a log y axis; a curve that diverged (divergence_step) is cut before
    that step, its last point marked x and its label saying where, so that the axis keeps the other curves' scale (a
    blown-up loss would stretch it to 1e22). One whole curve is named in the axes' title, several in a legend."""
    kept_all = []
    for label, losses in curves.items():
        t = divergence_step(losses)
        kept = np.asarray(losses, dtype=float)[:t]
        kept_all.append(kept)
        (line,) = ax.plot(kept, label=label if t is None else f"{label}: diverged at step {t} (cut)")
        if t:
            ax.plot(t - 1, kept[-1], "x", color=line.get_color(), ms=10, mew=2)
    ax.set(yscale="log", xlabel="step", ylabel="MSE loss")
    ax.xaxis.set_major_locator(MaxNLocator(5))  # 5 ticks an axis (FitFigure)
    # Plain tick labels (0.01, 1000): the default's mathtext (10^-2) costs ~0.1 s to set up, in every run.
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    positive = np.concatenate(kept_all)
    positive = positive[positive > 0]
    if positive.size and positive.max() < 10 * positive.min():  # under a decade: maybe no decade in view
        ax.yaxis.set(minor_locator=LogLocator(subs=(2, 5)),
                     minor_formatter=LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 1)))
    else:  # the decades label the axis; minor ticks would cost 0.015-0.02 s of the figure's 0.06 s
        ax.yaxis.set_minor_locator(NullLocator())
    if len(curves) == 1 and ax.get_lines()[0].get_label() == next(iter(curves)):
        ax.set_title(f"{ax.get_title()}: {next(iter(curves))}" if ax.get_title() else next(iter(curves)))
    else:
        ax.legend()


def loss_figure(curves: dict, title="training loss") -> Figure:
    """The loss curves (plot_losses) on a figure of FIGSIZE."""
    fig = new_figure()
    ax = add_axes(fig, title=title)
    plot_losses(ax, curves)
    ticks_in_view(ax)
    return fig


def fit_limits(y, snapshots) -> tuple[float, float]:
    """The y range of the fit pictures: the data's and every snapshot's, but at most one data span beyond the data
    (a fit far off leaves the picture rather than squash the data)."""
    low, high = float(np.min(y)), float(np.max(y))
    span = high - low or 1.0
    low, high = max(low - span, min(low, np.min(snapshots))), min(high + span, max(high, np.max(snapshots)))
    return low - 0.05 * (high - low), high + 0.05 * (high - low)


class FitFigure:
    """The data x, y (N, 1) as a scatter, and a fit as the notebook's thick red line under the step's label; the y
    range holds the snapshots (S, N, 1) too, so that every frame has the same axes.

    One figure, drawn once without the line and the title (animated: left out of a full draw); each picture restores
    that drawing and draws the line and the title, with their new data and text, on it."""

    def __init__(self, x, y, snapshots):
        self.fig = new_figure()
        self.ax = add_axes(self.fig)
        self.ax.scatter(np.ravel(x), np.ravel(y), s=12)
        (self.line,) = self.ax.plot(np.ravel(x), np.ravel(snapshots[0]), color="red", lw=4, animated=True)
        self.title = self.ax.set_title("data: y = x² + noise", animated=True)  # laid out, not drawn
        self.ax.set(xlabel="x", ylabel="y", ylim=fit_limits(y, snapshots))
        # At most 5 ticks an axis: matplotlib's default 8 or 9 at this size read no better and cost 0.02 s of the
        # figure's 0.07 s to lay out and draw
        self.ax.xaxis.set_major_locator(MaxNLocator(5))
        self.ax.yaxis.set_major_locator(MaxNLocator(5))
        ticks_in_view(self.ax)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)

    def _draw(self, *artists) -> Image.Image:
        self.fig.canvas.restore_region(self.background)
        for artist in artists:
            self.ax.draw_artist(artist)
        return canvas_image(self.fig)

    def data(self) -> Image.Image:
        """data.png: the data alone, titled."""
        return self._draw(self.title)

    def frame(self, prediction, t, losses) -> Image.Image:
        """The fit `prediction` (N, 1) at step t, titled with t and losses[t] in red."""
        self.line.set_ydata(np.ravel(prediction))
        self.title.set(text=log_line(t, losses), color="red")
        return self._draw(self.line, self.title)


def save_gif(frames, path, fps=2) -> None:
    """Frames of one palette (palette_image; a frame of its own colours is given one) as an animated GIF at `path`,
    `fps` frames a second, written whole or not at all."""
    frames = [frame if frame.mode == "P" else palette_image(frame) for frame in frames]
    with atomic_path(path) as tmp:  # Pillow's optimize pass: 12 % smaller, slower than the rest together (38 -> 20 ms)
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0,
                       optimize=False)


def grid_cell(k: int, columns: int, size) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) of the grid's k-th cell, cells of `size` (w, h) `columns` a row."""
    (w, h), (row, column) = size, divmod(k, columns)
    return column * (w + GRID_GAP), row * (h + GRID_GAP), column * (w + GRID_GAP) + w, row * (h + GRID_GAP) + h


def grid_columns(count: int) -> int:
    """Columns of the grid of `count` frames and the loss curve."""
    return min(GRID_COLUMNS, count + 1)


def grid_image(frames, loss) -> Image.Image:
    """The grid: the frames (equal sizes) GRID_COLUMNS a row, GRID_GAP apart, then the loss curve's figure `loss`
    drawn as wide as the last row's free cells (resized if it has to be), so that no cell is empty."""
    (w, h), count = frames[0].size, len(frames)
    columns = grid_columns(count)
    rows, span = count // columns + 1, columns - count % columns
    if loss.canvas.get_width_height() != (span * w + (span - 1) * GRID_GAP, h):
        loss.set_size_inches((span * w + (span - 1) * GRID_GAP) / DPI, h / DPI)
    if loss.stale:  # drawn already only if loss.png has its size
        loss.canvas.draw()
    grid = Image.new("RGB", (columns * w + (columns - 1) * GRID_GAP, rows * h + (rows - 1) * GRID_GAP), "white")
    for k, tile in enumerate([*frames, canvas_image(loss)]):
        grid.paste(tile, grid_cell(k, columns, (w, h))[:2])
    return grid


def draw_pictures(out, *, x, y, steps, snapshots, losses, title: str) -> list[str]:
    """data.png, snapshots.png, learning.gif and loss.png in the folder `out`, each written whole or not at all: x, y
    (N, 1), snapshots (S, N, 1) predictions at `steps` (S,), losses (T,), title (the loss curve's label). Returns
    their names."""
    with style():
        fit = FitFigure(x, y, snapshots)
        data = fit.data()
        frames = [fit.frame(prediction, t, losses) for prediction, t in zip(snapshots, steps)]
        loss = loss_figure({title: losses})
        loss.canvas.draw()
        loss_png = canvas_image(loss)  # before the grid, which draws the figure again if its last row is wider
        grid = grid_image(frames, loss)
    save_image(data, out / "data.png")
    # The grid and the GIF in one palette: one quantization, and the GIF's frames are the grid's panels, the same pixels
    grid = palette_image(grid)
    save_image(grid, out / "snapshots.png")
    save_gif([grid.crop(grid_cell(k, grid_columns(len(frames)), frames[0].size)) for k in range(len(frames))],
             out / "learning.gif")
    save_image(loss_png, out / "loss.png")
    return ["data.png", "snapshots.png", "learning.gif", "loss.png"]
