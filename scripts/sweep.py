"""How sensitive is the notebook's fit to the seed and the learning rate? Every combination, trained at once, in JAX.

    python scripts/sweep.py --seeds 16 --lrs 0.001,0.003,0.01,0.03,0.1,0.3,1,3 --optimizer adam,sgd --out out/sweep
    python scripts/sweep.py --seeds 0,1,2 --lrs 0.05,0.2 --hidden 10,20 --optimizer adam,sgd --json --curves
    JAX_NUM_CPU_DEVICES=4 python scripts/sweep.py --seeds 8 --lrs 0.1,0.2 --no-plots
    python scripts/sweep.py --seeds 8 --lrs 0.1,0.2 --num-processes 2 --process-id 0 --coordinator 127.0.0.1:4000 &
    python scripts/sweep.py --seeds 8 --lrs 0.1,0.2 --num-processes 2 --process-id 1 --coordinator 127.0.0.1:4000

--seeds N means seeds 0..N-1; A:B means A..B-1; a comma list names them. Every (seed, lr, hidden, optimizer) is one
model. Seed S gives the initial weights `train_jax.py --seed S` draws,
so each model's result is that single run's within float32 rounding (tests/test_sweep.py: losses within 1e-5
relative at learning rates up to 0.2). With --torch-seed K the data are torch's after
torch.manual_seed(K) (K = 1: the notebook's) and seed S's weights are those of `train_jax.py --torch-seed S`, so the
model with seed K is the single run `train_jax.py --torch-seed K`. Models that share a hidden width and an optimizer
form one group, trained in one compiled call (jax_impl/core/grid.py, with ensemble.fit_ensemble's program: the
learning rate is data, so new rates do not recompile); widths differ in shape, so each width is its own call. The
model axis is sharded over every device of every process (jax_impl.core.sharding); process 0 writes the results.

Writes into --out (default out/sweep): sweep.json (one object: the sweep's settings, the best model, and under
"models" a record per model: seed, lr, hidden, optimizer, final_loss, diverged_at; final_loss is the loss before the
last update, as train_jax.py reports it; --curves adds the loss curve), table.txt, and unless --no-plots heatmap.png
(final loss over seed x lr), curves.png (every loss curve) and best_fit.png (the best configuration's fits). A
model whose loss turns non-finite is marked (diverged_at, final_loss null) and the others kept: exit 0. Bad input, or
more models than the free memory holds (estimated before anything runs), is one line on stderr and exit 2.
"""

import json
import sys

import numpy as np

from jax_impl.app import cli, out_dir, processes, sizes
from jax_impl.app.sweep_report import best_row, divergence_lines, summarise, summary, table_text
from jax_impl.files.params_io import InputError, save_text

SWEEP_FILES = ("sweep.json", "table.txt", "heatmap.png", "curves.png", "best_fit.png")  # what a sweep writes


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=cli.seed_list, default=range(8),
                   help="N (seeds 0..N-1), START:STOP, or a list a,b,c (default 8)")
    p.add_argument("--lrs", type=cli.lr_list, default=[0.01, 0.03, 0.1, 0.3],
                   help="learning rates, comma-separated (default 0.01,0.03,0.1,0.3)")
    p.add_argument("--hidden", type=cli.hidden_list, default=[20], help="hidden widths, comma-separated (default 20)")
    p.add_argument("--optimizer", type=cli.optimizer_list, default=["adam"],
                   help="torch.optim's optimizers by name, comma-separated (default adam)")
    cli.add_optimizer_args(p)
    p.add_argument("--steps", type=cli.positive_int, default=201, help="training steps (notebook: 201)")
    cli.add_data_flags(p, torch_seed_help="the data as torch.manual_seed(K) and the notebook's data cell give them, "
                       "and seed S's initial weights as torch.manual_seed(S) gives them (train_jax.py --torch-seed "
                       "S's), without torch")
    p.add_argument("--x64", action="store_true", help="train in float64")
    p.add_argument("--out", default="out/sweep", help="output folder (default out/sweep)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout instead of the table")
    p.add_argument("--curves", action="store_true", help="add each model's loss curve to the JSON")
    p.add_argument("--no-plots", action="store_true", help="write no pictures")
    p.add_argument("--no-cache", action="store_true", help="do not use JAX's persistent compilation cache")
    p.add_argument("--num-processes", type=cli.positive_int, default=1, help="processes sharing this sweep")
    p.add_argument("--process-id", type=cli.non_negative_int, default=0, help="this process's index")
    p.add_argument("--coordinator", type=processes.coordinator_flag, default=None,
                   help="HOST:PORT of process 0 (with --num-processes > 1; PORT 1 ... 65535)")
    p.add_argument("--timeout", type=cli.positive_int, default=60,
                   help="seconds to wait for the other processes (then one line naming who is missing, exit 2)")
    args = p.parse_args(argv)
    cli.check_torch_seed(p, args)
    if args.optimizer_args and len(args.optimizer) > 1:
        p.error("--optimizer-args are one optimizer's arguments: give one --optimizer with them")
    args.optimizer = [cli.optimizer_spec(p, name, args.optimizer_args) for name in args.optimizer]
    if args.num_processes > 1 and args.coordinator is None:
        p.error("--num-processes above 1 needs --coordinator HOST:PORT")
    if args.process_id >= args.num_processes:
        p.error(f"--process-id {args.process_id} is not below --num-processes {args.num_processes}")
    return args


def experiment(args) -> dict:
    """{flag: value} of every flag that changes a result (the processes of a sweep must agree on each), as parsed."""
    return {f"--{name.replace('_', '-')}": list(value) if name == "seeds" else value
            for name, value in vars(args).items()
            if name not in ("out", "json", "curves", "no_plots", "no_cache", "process_id", "coordinator", "timeout")}


def check_memory(args, points: int) -> None:
    """Refuse (InputError, exit 2) a sweep whose estimated peak memory exceeds the free memory, before any work."""
    from jax_impl.core import grid
    from jax_impl.core.footprint import available_bytes, mib

    total = len(args.seeds) * len(args.lrs) * len(args.hidden) * len(args.optimizer)
    need = grid.grid_bytes(seeds=len(args.seeds), lrs=len(args.lrs), hiddens=args.hidden,
                           optimizers=len(args.optimizer), points=points, steps=args.steps,
                           itemsize=8 if args.x64 else 4, curves=args.curves)
    free = available_bytes()
    if free is not None and need > sizes.MEMORY_FRACTION * free:
        raise InputError(f"{total:,} models need about {mib(need)} (estimate: parameters, optimizer state "
                         f"and loss curves per model, {points} x {max(args.hidden)} activations per model stepped at "
                         f"once), but only {mib(free)} is free; use fewer seeds, learning rates or steps")


def main(argv=None):
    args = parse_args(argv)
    # First: the XLA flags must be set before anything imports jax (check_memory does).
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir(),
                  processes=args.num_processes)
    check_memory(args, args.points or 100)
    if args.process_id == 0:
        out_dir.check(args.out, SWEEP_FILES)
    import jax.numpy as jnp

    from jax_impl.core import data, grid

    dtype = jnp.float64 if args.x64 else jnp.float32
    with processes.joined(args.coordinator, args.num_processes, args.process_id, args.timeout, experiment(args)):
        x, y = (np.asarray(a) for a in data.run_data(points=args.points, noise=args.noise, data_seed=args.data_seed,
                                                     torch_seed=args.torch_seed, dtype=dtype))
        records, finals, groups = grid.fit_grid(x, y, seeds=args.seeds, lrs=args.lrs, hiddens=args.hidden,
                                                optimizers=args.optimizer, steps=args.steps,
                                                torch_seeds=args.torch_seed is not None, dtype=dtype)
    if args.process_id == 0:  # the others trained their share; process 0 holds every result and writes them
        report(args, x, y, dtype, records, finals, groups)


def report(args, x, y, dtype, records, finals, groups):
    """Table, JSON, pictures (process 0 only): every file new, or none (out_dir.replaced)."""
    import jax

    from jax_impl.core import grid

    rows = summarise(records, args.seeds)
    best = best_row(rows)
    about = {"devices": groups[0]["devices"], "processes": args.num_processes, "platform": jax.devices()[0].platform,
             "dtype": str(np.dtype(dtype)), "steps": args.steps, "points": int(x.shape[0])}
    result = summary(records, rows, best, groups, curves=args.curves, **about)
    table = table_text(rows, best)
    written = ["sweep.json", "table.txt"]
    with out_dir.replaced(args.out, SWEEP_FILES) as out:
        save_text(out / "sweep.json", json.dumps(result))
        save_text(out / "table.txt", table)
        if not args.no_plots:
            from jax_impl.app.sweep_plots import plot_best_fit, plot_curves, plot_heatmap  # matplotlib: only to draw

            plot_heatmap(records, rows, args.seeds, args.lrs, out / "heatmap.png")
            plot_curves(records, args.lrs, out / "curves.png")
            written += ["heatmap.png", "curves.png"]
            if best is not None:  # each model's final weights: only this picture needs them
                predictions = grid.predictions(finals, range(best["first"], best["first"] + best["seeds"]), x)
                plot_best_fit(x, y, best, records, predictions, out / "best_fit.png")
                written.append("best_fit.png")
    warn = divergence_lines(rows, records)
    if args.json:
        print(json.dumps(result))
        for line in warn:
            print(line, file=sys.stderr)
        return
    print(table, end="")
    for line in warn:
        print(line)
    print(f"{len(records)} models in {len(groups)} compiled call(s) (one per hidden width and optimizer) on "
          f"{about['devices']} {about['platform']} device(s) in {args.num_processes} process(es): "
          f"{sum(g['seconds'] for g in groups):.2f} s, compilation included; wrote {', '.join(written)} to "
          f"{args.out}/")
    if best is None:
        print("no configuration trained without a diverged seed: no best fit drawn")

if __name__ == "__main__":
    cli.run_main(main)
