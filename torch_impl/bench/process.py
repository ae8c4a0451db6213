"""Whole-process timings: `python scripts/train_jax.py --no-plots` (JAX's persistent compilation cache warm, cold,
off) and `python scripts/train_torch.py --no-plots`, imports included, wall clock; and each script's default run
(pictures drawn), every run paired with a --no-plots run just before it."""

import contextlib
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from torch_impl.bench.plan import NOTEBOOK
from torch_impl.bench.records import make_record
from torch_impl.bench.timing import paired_summary, progress, script_env

ROOT = pathlib.Path(__file__).resolve().parents[2]
# (framework, variant, script, flags, JAX's compilation cache: warm (one folder, filled untimed first), cold (a new
# folder each run) or plain (the environment as it is))
CASES = (
    ("jax", "process, cache warm", "train_jax.py", ["--no-plots"], "warm"),
    ("jax", "process, cache warm, pictures", "train_jax.py", [], "warm"),
    ("jax", "process, cache cold", "train_jax.py", ["--no-plots"], "cold"),
    ("jax", "process, no cache", "train_jax.py", ["--no-plots", "--no-cache"], "plain"),
    ("torch", "process", "train_torch.py", ["--no-plots"], "plain"),
    ("torch", "process, pictures", "train_torch.py", [], "plain"),
)


def process_records(runs: int, device: str) -> list[dict]:
    """Each case `runs` times, its records (seconds; compile_s: the script's own --json compile_s, median). The
    pictures cases add the paired ratio's median and quartiles (the machine drifts between runs more than within a
    pair) and the --no-plots runs' median (paired_base_median_s)."""
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        warm_cache = pathlib.Path(tmp, "warm")
        env = script_env(JAX_PLATFORMS="cuda" if device == "gpu" else "cpu")
        envs = {"warm": lambda i: {"XDG_CACHE_HOME": str(warm_cache)},
                "cold": lambda i: {"XDG_CACHE_HOME": f"{tmp}/cold{i}"}, "plain": lambda i: {}}
        for framework, variant, script, flags, cache in CASES:
            env_for = envs[cache]
            if not (ROOT / "scripts" / script).exists():
                progress(f"{script} not found: its process timing is skipped")
                continue
            command = [sys.executable, str(ROOT / "scripts" / script), "--json", "--out", f"{tmp}/out", *flags]
            if variant == "process, cache warm":  # fill the cache once, untimed
                subprocess.run(command, env={**env, **env_for(0)}, capture_output=True, check=False)
            walls, compiles, error, bases = [], [], None, []
            for i in range(runs):
                if "pictures" in variant:  # its pair: the same run without pictures, just before
                    start = time.perf_counter()
                    subprocess.run([*command, "--no-plots"], env={**env, **env_for(i)}, capture_output=True)
                    bases.append(time.perf_counter() - start)
                start = time.perf_counter()
                done = subprocess.run(command, env={**env, **env_for(i)}, capture_output=True, text=True)
                walls.append(time.perf_counter() - start)
                if done.returncode != 0:
                    error = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
                    break
                with contextlib.suppress(ValueError, KeyError, IndexError):
                    compiles.append(json.loads(done.stdout.strip().splitlines()[-1])["compile_s"])
            timing = None if error else {
                "compile_s": statistics.median(compiles) if compiles else None, "median_s": statistics.median(walls),
                "min_s": min(walls), "max_s": max(walls), "repeats": len(walls)}
            paired = {}
            if bases and not error:
                paired = {**paired_summary([wall / base for wall, base in zip(walls, bases)]),
                          "paired_base_median_s": statistics.median(bases)}
            records.append(make_record(framework, variant, device, *NOTEBOOK, 201, 1, timing, error, **paired))
            progress(f"{framework} {variant:30s} median {statistics.median(walls):.2f} s over {len(walls)} runs"
                     + (f"; {paired['paired_ratio_median']:.2f}x its --no-plots run (paired)" if paired else ""))
    return records
