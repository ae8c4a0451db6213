"""Correct runs raise no alarm: the localizer (torch_impl/checks/diverge.py) over many seeds and long runs.

    python scripts/diverge_calibrate.py                     # 20 seeds x 2000 steps (about 10 minutes on 2 cores)
    python scripts/diverge_calibrate.py --seeds 3 --steps 300 --out /tmp/cal.json

For each seed (--seed K's initial weights on the notebook's data, Adam lr 0.2) it records JAX in float32 and float64
(each in a child process: JAX's float64 switch is global) and the torch twin in float32 and float64 from the same
weights, and walks three pairs: JAX against torch in float32 and in float64, JAX float32 against JAX float64. It
reports the crossings (there must be none) and the largest share of the rounding allowance each quantity used, and
writes them as JSON (default bench/diverge_calibration.json). Exit 1 if any pair crosses.
"""

import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

from jax_impl.app import cli, out_dir
from jax_impl.files.params_io import save_text

PAIRS = (("jax-float32", "torch-float32"), ("jax-float64", "torch-float64"), ("jax-float32", "jax-float64"))


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=cli.positive_int, default=20, help="seeds 0 ... N-1 (default 20)")
    p.add_argument("--steps", type=cli.positive_int, default=2000, help="steps a run (default 2000)")
    p.add_argument("--lr", type=cli.positive_float, default=0.2, help="Adam's learning rate (default 0.2)")
    p.add_argument("--out", default="bench/diverge_calibration.json", help="the JSON result")
    p.add_argument("--jax-child", nargs=2, metavar=("PRECISION", "DIR"),
                   help="(internal) record the JAX runs in PRECISION into DIR")
    return p.parse_args(argv)


def jax_child(args, precision: str, folder: str) -> None:
    """Record every seed's JAX run in `precision` into `folder` (a child process: one precision a process)."""
    cli.setup_jax(x64=precision == "float64")
    import jax.numpy as jnp
    import numpy as np

    from jax_impl.core import data, record
    from jax_impl.files import records

    dtype = jnp.float64 if precision == "float64" else jnp.float32
    for seed in range(args.seeds):
        params, x, y = data.run_inputs(seed=seed, hidden=20, points=None, noise=None, data_seed=None, torch_seed=None,
                                       init=None, dtype=dtype)
        arrays = data.as_numpy(record.recorded_run(params, x, y, jnp.asarray(args.lr, dtype), steps=args.steps))
        records.write(pathlib.Path(folder) / f"{seed}-jax-{precision}.safetensors", records.make(
            {**arrays, "data.x": np.asarray(x), "data.y": np.asarray(y)}, **meta(args, seed, "jax", precision)))


def meta(args, seed, framework, precision) -> dict:
    return {"experiment": {"seed": seed, "lr": args.lr, "steps": args.steps}, "every": 1, "framework": framework,
            "implementation": framework, "versions": {}, "precision": precision, "cpu": platform.machine()}


def main(argv=None):
    args = parse_args(argv)
    if args.jax_child:
        return jax_child(args, *args.jax_child)
    out_dir.check_file(args.out, "--out")  # written after minutes of runs: refused now if it cannot be
    import numpy as np
    import torch

    from jax_impl.files import records
    from torch_impl.checks import diverge
    from torch_impl.twin.record import recorded_run

    start, worst, crossings = time.perf_counter(), {f"{a} vs {b}": {} for a, b in PAIRS}, []
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("float32", "float64"):
            subprocess.run([sys.executable, __file__, "--seeds", str(args.seeds), "--steps", str(args.steps),
                            "--lr", str(args.lr), "--jax-child", precision, folder], check=True)
        for seed in range(args.seeds):
            runs = {f"jax-{p}": records.read(pathlib.Path(folder) / f"{seed}-jax-{p}.safetensors")
                    for p in ("float32", "float64")}
            t = runs["jax-float32"].tensors
            init = {k: t[f"params.{k}"][0] for k in ("w1", "b1", "w2", "b2")}
            for precision, dtype in (("float32", torch.float32), ("float64", torch.float64)):
                arrays = recorded_run(init, t["data.x"], t["data.y"], args.lr, steps=args.steps, dtype=dtype)
                runs[f"torch-{precision}"] = records.make({**arrays, "data.x": t["data.x"], "data.y": t["data.y"]},
                                                          **meta(args, seed, "torch", precision))
            for a, b in PAIRS:
                walk = diverge.walk(runs[a], runs[b])
                pair = worst[f"{a} vs {b}"]
                for name, share in walk.shares.items():
                    pair[name] = max(pair.get(name, 0.0), float(np.max(share)))
                if walk.first is not None:
                    crossings.append({"seed": seed, "pair": f"{a} vs {b}", **walk.first._asdict()})
            print(f"seed {seed}: {len(crossings)} crossings so far, worst share "
                  f"{max(max(p.values()) for p in worst.values()):.3g} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    result = {"seeds": args.seeds, "steps": args.steps, "lr": args.lr, "cpu": records_cpu(),
              "versions": {"torch": torch.__version__, "numpy": np.__version__}, "crossings": crossings,
              "worst_share": {pair: max(shares.values()) for pair, shares in worst.items()},
              "worst_share_by_quantity": worst, "seconds": round(time.perf_counter() - start, 1)}
    save_text(args.out, json.dumps(result, indent=1) + "\n")  # whole or not at all (atomic_path)
    print(f"{len(crossings)} crossings over {args.seeds} seeds x {args.steps} steps x {len(PAIRS)} pairs; worst share "
          + ", ".join(f"{k} {v:.3g}" for k, v in result["worst_share"].items()) + f"; wrote {args.out}")
    if crossings:
        raise SystemExit(cli.MISMATCH)


def records_cpu() -> str:
    from jax_impl.files.host import cpu_name

    return cpu_name()


if __name__ == "__main__":
    cli.run_main(main)
