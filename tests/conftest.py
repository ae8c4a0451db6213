"""Strict JAX for every test (equinox's habit): an (N, 1) - (N,) broadcast to (N, N) raises instead of
silently training on the wrong loss. Float64 runs go to subprocesses (x64 is global): see run_script.
The tests run the programs the scripts run: the port's XLA flags are set before jax is imported, as cli.setup_jax
sets them."""

import contextlib
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

from jax_impl.core import xla_cpu

xla_cpu.set_xla_flags()  # before jax is imported, as cli.setup_jax does

import jax  # noqa: E402

xla_cpu.set_cpu_devices(xla_cpu.cores())  # one CPU device per core, as cli.setup_jax asks

jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = pathlib.Path(__file__).resolve().parents[1]


# JAX's public compile events: one of each per program traced, and per program compiled (jax/_src/dispatch.py names).
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration")


_COMPILE_LOG: list[list[str]] = []  # the open compilations() blocks' event lists


def _on_compile_event(event, duration_secs, **kwargs):
    if event in COMPILE_EVENTS:
        for seen in _COMPILE_LOG:
            seen.append(event)


# Registered once for the whole session: the listener lives as long as the process.
jax.monitoring.register_event_duration_secs_listener(_on_compile_event)


@contextlib.contextmanager
def compilations():
    """Collect the trace and compile events (jax.monitoring) of the calls inside the block: the recompile guard."""
    seen: list[str] = []
    _COMPILE_LOG.append(seen)
    try:
        yield seen
    finally:
        _COMPILE_LOG.remove(seen)


def assert_trees_close(actual, expected, *, rtol: float, atol: float = 0.0) -> None:
    """Two pytrees (parameter dicts, trajectories): the same structure first, then leaf by leaf, each leaf's shape and
    values (numpy's assert_allclose), the failing leaf named by its path (optax's tests' habit)."""
    import numpy as np

    assert jax.tree.structure(actual) == jax.tree.structure(expected), (jax.tree.structure(actual),
                                                                       jax.tree.structure(expected))
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
        name = jax.tree_util.keystr(path)
        assert np.shape(a) == np.shape(b), (name, np.shape(a), np.shape(b))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


def _script_call(name: str, args, env) -> tuple[list[str], dict]:
    """The command line and environment that run scripts/NAME with args (stdout unbuffered: a pipe's lines come as
    they are printed)."""
    return ([sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
            {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def run_script(name: str, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run scripts/NAME with args in a fresh process; returns the completed process (text output)."""
    command, full_env = _script_call(name, args, env)
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout)


def start_script(name: str, *args, env=None) -> subprocess.Popen:
    """Start scripts/NAME with args in a process group of its own, as a terminal runs it (a test can signal the
    group); stdout and stderr are pipes (text)."""
    command, full_env = _script_call(name, args, env)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=full_env, start_new_session=True)


@pytest.fixture
def script():
    return run_script


def import_script(name: str):
    """scripts/NAME.py as a module in this process: its functions, and main() for run_main."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(module, monkeypatch, capsys, *args) -> tuple[int, str]:
    """A script's main() in this process, as `python scripts/NAME.py ARGS` would run it (no subprocess: no seconds of
    imports; float32 only, x64 being global to a process): (exit code, stdout)."""
    monkeypatch.setattr(sys, "argv", [pathlib.Path(module.__file__).name, *map(str, args)])
    try:
        module.main()
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().out


def read_image(path) -> dict:
    """Open an image the way a user's viewer would: its size, frame count and number of grey levels."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return {"size": image.size, "frames": getattr(image, "n_frames", 1),
                "grey_levels": len(np.unique(np.asarray(image.convert("L"))))}


def assert_notebook_pictures(out) -> None:
    """The four pictures a default training run writes (train_jax.py and train_torch.py alike): 480 x 320 pixels
    each, the GIF's 11 frames, and the grid of those frames and the loss curve, 4 x 3 panels 8 pixels apart, in one
    256-colour palette: the GIF's frames are the grid's panels exactly, and the palette moves loss.png's colours by at
    most 15/255 (see test_plots.PALETTE_ERROR)."""
    import numpy as np
    from PIL import Image

    for name in ("data.png", "loss.png"):
        image = read_image(out / name)
        assert image["size"] == (480, 320) and image["grey_levels"] > 10  # something was drawn
    assert read_image(out / "learning.gif")["frames"] == 11
    grid = np.asarray(Image.open(out / "snapshots.png").convert("RGB"), dtype=int)
    assert grid.shape == (3 * 320 + 2 * 8, 4 * 480 + 3 * 8, 3)
    panels = [grid[r * 328:r * 328 + 320, c * 488:c * 488 + 480] for r in range(3) for c in range(4)]
    with Image.open(out / "learning.gif") as gif:
        for k in range(11):
            gif.seek(k)
            np.testing.assert_array_equal(np.asarray(gif.convert("RGB"), dtype=int), panels[k], err_msg=str(k))
    loss = np.asarray(Image.open(out / "loss.png").convert("RGB"), dtype=int)
    assert np.abs(panels[11] - loss).max() <= 15


# ---- printed losses, judged in units of their last digit, never digit for digit ----------------------------------
# A float32 loss printed to 4 decimals ("t = 20, Loss=0.1541") sits at some distance from a rounding boundary; a
# different CPU's summation kernels or the other framework move it by a few 1e-6 relative (JAX vs torch: up to 3e-5),
# which can flip the last digit. So a printed loss is compared with its reference value: half a unit of its own
# printing (plus half of the reference's, if that is printed too), plus the reference's relative allowance.
LOG_UNIT = 1e-4  # the notebook's "%.4f"
NOTEBOOK_LOG = {0: 0.6136, 20: 0.1541, 40: 0.0334, 60: 0.0099, 80: 0.0050, 100: 0.0039, 120: 0.0034, 140: 0.0032,
                160: 0.0031, 180: 0.0030, 200: 0.0030}  # the seed notebook's printed output


def parse_loss_log(lines) -> dict[int, float]:
    """{t: loss} from lines 't = T, Loss=V' (the notebook's format); a malformed log line fails."""
    import re

    out = {}
    for line in lines:
        if line.startswith("t = "):
            match = re.fullmatch(r"t = (\d+), Loss=(\d+\.\d{4})", line)
            assert match, f"not the notebook's log format: {line!r}"
            out[int(match[1])] = float(match[2])
    return out


def assert_loss_log(lines, reference: dict, *, rel: float, reference_printed: bool) -> None:
    """The log lines' losses within 0.5 unit (+ 0.5 if the reference is printed too) + rel * |reference|."""
    got = parse_loss_log(lines)
    assert sorted(got) == sorted(reference), (sorted(got), sorted(reference))
    for t, want in reference.items():
        allowed = LOG_UNIT * (1.0 if reference_printed else 0.5) + rel * abs(want)
        assert abs(got[t] - want) <= allowed, f"t = {t}: printed {got[t]}, reference {want}, allowed {allowed:.2e}"
