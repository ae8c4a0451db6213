"""What the main job's pictures cost, as whole processes: train_jax.py's default run (pictures drawn) against the same
run with --no-plots, and against train_torch.py's default run, in rounds. For scripts/bench_pictures.py.

On a shared 2-core machine a process' wall time drifts by more between minutes than between neighbours, so each round
runs the three commands side by side and the ratios are taken within a round; the order reverses from one round to
the next so that neither command always runs first (after the other's file-cache and CPU-frequency effects). The
scripts run as subprocesses: this module imports neither jax nor torch nor matplotlib.
"""

import contextlib
import importlib.metadata
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from torch_impl.bench.machine import cpu_name, load_average
from torch_impl.bench.timing import paired_summary, script_env

# name -> (script, flags): the commands a round runs
COMMANDS = {"jax, no pictures": ("train_jax.py", ["--no-plots"]),
            "jax, pictures": ("train_jax.py", []),
            "torch, pictures": ("train_torch.py", [])}
RATIOS = {"jax pictures / jax no pictures": ("jax, pictures", "jax, no pictures"),
          "jax pictures / torch pictures": ("jax, pictures", "torch, pictures")}
PACKAGES = ("jax", "jaxlib", "numpy", "matplotlib", "pillow", "torch")


def timed_run(command, env) -> float:
    """Wall seconds of one process; a run that fails is an error, not a time."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    return seconds


def measure_rounds(root: pathlib.Path, rounds: int) -> list[dict]:
    """`rounds` rounds of COMMANDS, run from the tree at `root` (PYTHONPATH: its packages, not an installed copy),
    each with its own output folder, a JAX compilation cache and Python's compiled modules (timing.script_env) filled by
    one untimed run of each command first (a user's second run: both caches warm, the files in the OS cache).
    Returns per round the order and the times."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pictures-") as tmp:
        env = script_env(XDG_CACHE_HOME=f"{tmp}/cache", JAX_PLATFORMS="cpu",
                         PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        commands = {name: [sys.executable, str(root / "scripts" / script), "--out", f"{tmp}/{i}", *flags]
                    for i, (name, (script, flags)) in enumerate(COMMANDS.items())}
        for command in commands.values():
            timed_run(command, env)
        for r in range(rounds):
            order = list(commands) if r % 2 == 0 else list(reversed(commands))
            times = {name: timed_run(commands[name], env) for name in order}
            results.append({"order": order, **{name: round(times[name], 4) for name in commands}})
            print(f"bench_pictures: round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n]:.2f} s" for n in commands),
                  file=sys.stderr, flush=True)
    return results


def summarise(rounds: list[dict]) -> dict:
    """Per command its median wall time and quartiles; per ratio (RATIOS) the paired ratios' median and quartiles."""
    out = {}
    for name in COMMANDS:
        times = [r[name] for r in rounds]
        q = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
        out[name] = {"median_s": statistics.median(times), "p25_s": q[0], "p75_s": q[2]}
    for label, (top, bottom) in RATIOS.items():
        out[label] = paired_summary([r[top] / r[bottom] for r in rounds])
    return out


def machine() -> dict:
    """The CPU's model name (what lscpu shows), the cores, the load averages now, and the versions that decide the
    timings, read from the installed packages' metadata (no import of jax or torch here)."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "load_avg": load_average(), "versions": versions}
