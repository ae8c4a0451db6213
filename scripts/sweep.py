"""How sensitive is the notebook's fit to the seed and the learning rate? Every combination, trained at once, in JAX.

    python scripts/sweep.py --seeds 16 --lrs 0.001,0.003,0.01,0.03,0.1,0.3,1,3 --optimizer adam,sgd --out out/sweep
    python scripts/sweep.py --seeds 0,1,2 --lrs 0.05,0.2 --hidden 10,20 --optimizer adam,sgd --json --curves
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python scripts/sweep.py --seeds 8 --lrs 0.1,0.2 --no-plots
    python scripts/sweep.py --seeds 8 --lrs 0.1,0.2 --num-processes 2 --process-id 0 --coordinator 127.0.0.1:4000 &
    python scripts/sweep.py --seeds 8 --lrs 0.1,0.2 --num-processes 2 --process-id 1 --coordinator 127.0.0.1:4000

--seeds N means seeds 0..N-1; A:B means A..B-1; a comma list names them. Every (seed, lr, hidden, optimizer) is one
model. Seed S gives the initial weights `train_jax.py --seed S` draws,
so each model's result equals that single run to float32 rounding. With --torch-seed K the data are torch's after
torch.manual_seed(K) (K = 1: the notebook's) and seed S's weights are those of `train_jax.py --torch-seed S`, so the
model with seed K is the single run `train_jax.py --torch-seed K`. Models that share a hidden width and an optimizer
form one group, trained in one compiled call (ensemble.fit_ensemble: the learning rate is data, so new rates do not
recompile); widths differ in shape, so each width is its own call. The model axis is sharded over every device of
every process (jax_impl.core.sharding); process 0 writes the results.

Writes into --out (default out/sweep): sweep.json (one record per model: seed, lr, hidden, optimizer, final_loss,
diverged_at; final_loss is the loss before the last update, as train_jax.py reports it; --curves adds the loss
curve), table.txt, and unless --no-plots heatmap.png (final loss over seed x lr),
curves.png (every loss curve) and best_fit.png (the best configuration's fits). A model whose loss turns non-finite
is marked (diverged_at, final_loss null) and the others kept: exit 0. Bad input, or more models than the free memory
holds (estimated before anything runs), is one line on stderr and exit 2.
"""

import argparse
import contextlib
import json
import os
import pathlib
import sys
import time

import numpy as np

from jax_impl.app import cli
from jax_impl.app.sweep_report import best_row, divergence_lines, model_record, summarise, table_text
from jax_impl.core.optimizers import OPTIMIZERS
from jax_impl.core.steps import first_nonfinite_steps
from jax_impl.files.params_io import InputError, save_text

MAX_SEED = 2**31 - 1  # jax.random.key takes a 32-bit seed without x64
MEMORY_FRACTION = 0.8  # refuse a sweep whose estimate exceeds this share of the free memory


def _items(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what}")
    if len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"{text!r} names a {what[:-1]} twice")
    return items


def seed_list(text: str) -> list[int] | range:
    """'N' -> seeds 0..N-1; 'A:B' -> A..B-1; 'a,b,c' -> those seeds."""
    if "," not in text and ":" not in text:
        return range(cli.positive_int(text))
    if ":" in text and "," not in text:
        start, _, stop = text.partition(":")
        start, stop = cli.non_negative_int(start.strip() or "x"), cli.positive_int(stop.strip() or "x")
        if stop <= start or stop - 1 > cli.TORCH_MAX_SEED:
            raise argparse.ArgumentTypeError(f"{text!r}: need START < STOP <= 2**64")
        return range(start, stop)
    seeds = [cli.non_negative_int(item) for item in _items(text, "seeds")]
    if max(seeds) > cli.TORCH_MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {max(seeds)} is above 2**64 - 1")
    return seeds  # above MAX_SEED only with --torch-seed: parse_args checks


def lr_list(text: str) -> list[float]:
    return [cli.positive_float(item) for item in _items(text, "learning rates")]


def hidden_list(text: str) -> list[int]:
    return [cli.positive_int(item) for item in _items(text, "widths")]


def optimizer_list(text: str) -> list[str]:
    names = _items(text, "optimizers")
    for name in names:
        if name not in OPTIMIZERS:
            raise argparse.ArgumentTypeError(f"unknown optimizer {name!r} (choose from "
                                                           f"{', '.join(OPTIMIZERS)})")
    return names


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=seed_list, default=range(8),
                   help="N (seeds 0..N-1), START:STOP, or a list a,b,c (default 8)")
    p.add_argument("--lrs", type=lr_list, default=[0.01, 0.03, 0.1, 0.3],
                   help="learning rates, comma-separated (default 0.01,0.03,0.1,0.3)")
    p.add_argument("--hidden", type=hidden_list, default=[20], help="hidden widths, comma-separated (default 20)")
    p.add_argument("--optimizer", type=optimizer_list, default=["adam"], help="adam and/or sgd (default adam)")
    p.add_argument("--steps", type=cli.positive_int, default=201, help="training steps (notebook: 201)")
    p.add_argument("--points", type=cli.positive_int, default=None, help="fresh data with this many points")
    p.add_argument("--noise", type=cli.non_negative_float, default=None, help="fresh data with this noise level")
    p.add_argument("--data-seed", type=cli.non_negative_int, default=None, help="key for fresh data (default 0)")
    p.add_argument("--torch-seed", type=cli.torch_seed, default=None, metavar="K",
                   help="the data as torch.manual_seed(K) and the notebook's data cell give them, and seed S's initial "
                        "weights as torch.manual_seed(S) gives them (train_jax.py --torch-seed S's), without torch")
    p.add_argument("--x64", action="store_true", help="train in float64")
    p.add_argument("--out", default="out/sweep", help="output folder (default out/sweep)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout instead of the table")
    p.add_argument("--curves", action="store_true", help="add each model's loss curve to the JSON")
    p.add_argument("--no-plots", action="store_true", help="write no pictures")
    p.add_argument("--no-cache", action="store_true", help="do not use JAX's persistent compilation cache")
    p.add_argument("--num-processes", type=cli.positive_int, default=1, help="processes sharing this sweep")
    p.add_argument("--process-id", type=cli.non_negative_int, default=0, help="this process's index")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (with --num-processes > 1)")
    p.add_argument("--timeout", type=cli.positive_int, default=60,
                   help="seconds to wait for the other processes (then one line naming who is missing, exit 2)")
    args = p.parse_args(argv)
    cli.check_torch_seed(p, args)
    if args.torch_seed is None and max(args.seeds) > MAX_SEED:
        p.error(f"seed {max(args.seeds)} is above {MAX_SEED} (with --torch-seed, seeds go up to 2**64 - 1)")
    if args.num_processes > 1 and args.coordinator is None:
        p.error("--num-processes above 1 needs --coordinator HOST:PORT")
    if args.process_id >= args.num_processes:
        p.error(f"--process-id {args.process_id} is not below --num-processes {args.num_processes}")
    return args


def check_memory(args, points: int) -> None:
    """Refuse (InputError, exit 2) a sweep whose estimated peak memory exceeds the free memory, before any work."""
    from jax_impl.core.ensemble import available_bytes, estimate_bytes, mib

    models = len(args.seeds) * len(args.lrs)  # one group at a time on the devices
    total = models * len(args.hidden) * len(args.optimizer)
    itemsize = 8 if args.x64 else 4
    on_devices = max(estimate_bytes(models, hidden=h, points=points, steps=args.steps, snapshots=0,
                                    itemsize=itemsize) for h in args.hidden)
    # on the host: every loss curve (gathered, and a float64 copy), and with --curves ~64 bytes a value as JSON
    on_host = total * args.steps * (itemsize + 8 + (64 if args.curves else 0))
    need, free = on_devices + on_host, available_bytes()
    if free is not None and need > MEMORY_FRACTION * free:
        raise InputError(f"{total:,} models need about {mib(need)} (estimate: parameters, optimizer state and loss "
                         f"curves per model, {points} x {max(args.hidden)} activations per model stepped at once), "
                         f"but only {mib(free)} is free; use fewer seeds, learning rates or steps")


def train_groups(args, x, y, dtype):
    """Each (hidden, optimizer) group in one sharded call. Returns (records, final params per group, groups)."""
    import jax.numpy as jnp

    from jax_impl.core import ensemble, sharding, torch_rng

    records, finals, groups = [], [], []
    for hidden in args.hidden:
        for optimizer in args.optimizer:
            seeds = [s for _ in args.lrs for s in args.seeds]  # lr-major: model = (lr index, seed index)
            lrs = np.repeat(np.asarray(args.lrs, dtype), len(args.seeds))
            if args.torch_seed is None:
                params = ensemble.init_ensemble(seeds, hidden, dtype)
            else:  # drawn in float32, then cast
                params = {k: jnp.asarray(v, dtype) for k, v in
                          torch_rng.notebook_params_for_seeds(seeds, hidden, args.points or 100).items()}
            start = time.perf_counter()
            trajectory, devices = sharding.fit_sharded(params, x, y, lrs, optimizer=optimizer, steps=args.steps,
                                                       every=None)
            seconds = time.perf_counter() - start
            losses = np.asarray(trajectory.losses)
            diverged = first_nonfinite_steps(losses)
            for i, seed in enumerate(seeds):
                final = float(losses[i, -1]) if diverged[i] < 0 else None
                records.append({"seed": int(seed), "lr": float(args.lrs[i // len(args.seeds)]), "hidden": hidden,
                                "optimizer": optimizer, "final_loss": final,
                                "diverged_at": None if diverged[i] < 0 else int(diverged[i]), "losses": losses[i]})
            finals.append(trajectory.params)
            groups.append({"hidden": hidden, "optimizer": optimizer, "models": len(seeds), "devices": devices,
                           "seconds": seconds})
    return records, finals, groups


@contextlib.contextmanager
def stdout_to_stderr(active: bool):
    """Point file descriptor 1 at stderr inside the block (C++ libraries write to it directly)."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# --- main ------------------------------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    points = args.points or 100
    # First: the XLA flags must be set before anything imports jax (check_memory does).
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir(),
                  processes=args.num_processes)
    check_memory(args, points)
    if args.process_id == 0:
        cli.prepare_out_dir(args.out)
    with stdout_to_stderr(args.num_processes > 1):  # gloo writes its connection log to stdout; keep --json clean
        if args.num_processes > 1:
            from jax_impl.core import sharding

            try:
                sharding.initialize_processes(args.coordinator, args.num_processes, args.process_id, args.timeout)
            except Exception as e:  # a missing peer (sharding.rendezvous), a port in use, an unreachable host
                raise InputError(f"could not join {args.num_processes} processes at {args.coordinator} within "
                                 f"{args.timeout} s: {str(e).strip().splitlines()[0][:300]}") from None
        results = train(args)
    if results is not None:
        report(args, points, *results)


def train(args):
    """Data, models, training; returns what report() needs on process 0, None on the others."""
    import jax.numpy as jnp

    from jax_impl.core import data

    dtype = jnp.float64 if args.x64 else jnp.float32
    x, y = data.run_data(points=args.points, noise=args.noise, data_seed=args.data_seed, torch_seed=args.torch_seed,
                         dtype=dtype)
    x, y = np.asarray(x), np.asarray(y)
    records, group_params, groups = train_groups(args, x, y, dtype)
    if args.process_id != 0:
        return None
    return x, y, dtype, records, group_params, groups


def report(args, points, x, y, dtype, records, group_params, groups):
    """Table, JSON, pictures: process 0 only."""
    import jax

    out = pathlib.Path(args.out)
    rows = summarise(records, args.seeds)
    best = best_row(rows)
    summary = {"devices": groups[0]["devices"], "processes": args.num_processes,
               "platform": jax.devices()[0].platform, "dtype": str(np.dtype(dtype)), "steps": args.steps,
               "points": points, "groups": groups,
               "best": None if best is None else {k: best[k] for k in ("hidden", "optimizer", "lr", "mean", "std")},
               "configurations": [{k: v for k, v in r.items() if k != "first"} for r in rows],
               "models": [model_record(r, args.curves) for r in records]}
    save_text(out / "sweep.json", json.dumps(summary))
    table = table_text(rows, best)
    save_text(out / "table.txt", table)
    written = ["sweep.json", "table.txt"]
    if not args.no_plots:
        from jax_impl.app.plots import plot_best_fit, plot_curves, plot_heatmap  # matplotlib: only when drawing

        plot_heatmap(records, rows, args.seeds, args.lrs, out / "heatmap.png")
        plot_curves(records, args.lrs, out / "curves.png")
        written += ["heatmap.png", "curves.png"]
        if best is not None:  # each model's final weights, in records' order: only this picture needs them
            from jax_impl.core import model

            finals = [{k: v[i] for k, v in params.items()} for params in group_params for i in range(len(params["b2"]))]
            predictions = {i: model.forward(finals[i], x) for i in range(best["first"], best["first"] + best["seeds"])}
            plot_best_fit(x, y, best, records, predictions, out / "best_fit.png")
            written.append("best_fit.png")
    warn = divergence_lines(rows, records)
    if args.json:
        print(json.dumps(summary))
        for line in warn:
            print(line, file=sys.stderr)
        return
    print(table, end="")
    for line in warn:
        print(line)
    seconds = sum(g["seconds"] for g in groups)
    print(f"{len(records)} models in {len(groups)} compiled call(s) (one per hidden width and optimizer) on "
          f"{summary['devices']} {summary['platform']} device(s) in {args.num_processes} process(es): "
          f"{seconds:.2f} s, compilation included; wrote {', '.join(written)} to {out}/")
    if best is None:
        print("no configuration trained without a diverged seed: no best fit drawn")


if __name__ == "__main__":
    cli.run_main(main)
