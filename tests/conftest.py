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

from jax_impl import xla_cpu

xla_cpu.set_xla_flags(host_devices=xla_cpu.cores())  # before jax is imported, as cli.setup_jax does

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = pathlib.Path(__file__).resolve().parents[1]


# JAX's public compile events: one of each per program traced, and per program compiled (jax/_src/dispatch.py names).
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration")


@contextlib.contextmanager
def compilations():
    """Collect the trace and compile events (jax.monitoring) of the calls inside the block: the recompile guard."""
    seen = []

    def listener(event, duration_secs, **kwargs):
        if event in COMPILE_EVENTS:
            seen.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


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


def run_script(name: str, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run scripts/NAME with args in a fresh process; returns the completed process (text output)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=full_env, timeout=timeout)


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
    """The four pictures a default training run writes (train_jax.py and train_torch.py alike), opened and sized."""
    grid = read_image(out / "snapshots.png")
    assert grid["size"][0] > 800 and grid["size"][1] > 500  # a 4 x 3 grid of panels
    gif = read_image(out / "learning.gif")
    assert gif["frames"] == 11 and gif["size"][0] > 300
    for name in ("data.png", "loss.png"):
        image = read_image(out / name)
        assert image["size"][0] > 300 and image["size"][1] > 200
        assert image["grey_levels"] > 10  # something was drawn
