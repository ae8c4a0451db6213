"""Timings: the notebook's training in JAX against PyTorch, at the notebook's size and bigger, and why.

    python scripts/bench.py --quick                 # the notebook's size and 10^4 points: 108 s on 2 cores (AMD)
    python scripts/bench.py --json bench/results-cpu.json --out bench/cpu.png      # the full sweep (the default)
    python scripts/bench.py --device gpu --json bench/results-gpu.json --out bench/gpu.png   # exit 2 with no GPU
    python scripts/bench.py --tiny                  # seconds: what tests/test_bench.py runs
    python scripts/bench.py --quick --cores 1       # on one core: which lead is parallelism, which is fusion

One process runs every case on the same data and the same initial weights. Each case's first call (tracing,
compilation, one run) is timed apart from the steady state: then `--repeats` warm runs (fewer where a run is longer
than --budget-s / repeats, never fewer than 3), reported as median, min and max, with the case's peak memory. The
cases, one row each in torch_impl/bench/cases.py (what each is: docs/usage.md): JAX's train.fit (the port), a jitted
step called from Python, the sharded ensemble and the arithmetic floor; torch eager (the notebook's loop), the whole
step with torch.func, compiled as a whole (default mode in --quick too; max-autotune, the module-level compile and on
a GPU reduce-overhead and a CUDA graph in the full mode), the batched and the torch.func ensembles (--quick runs the
torch.func step and ensemble compiled only: torch's best); and the whole processes (--process), with and without
pictures. At 256 and 1,024 models the JAX ensemble and torch's best then run side by side, alternating, and the
target is judged on the median of those paired ratios (the VM drifts more between cases than within a pair).
Writes a Markdown table (stdout), --json FILE (the records: framework, variant, device, points, hidden, steps, models,
compile_s, median_s, min_s, max_s, repeats, error, versions, machine) and --out FILE.png (log-log, time against points).
Progress goes to stderr. No compilation cache is warm at the start: JAX's persistent cache is off and torch.compile's
gets a fresh folder. Timings on a shared machine are noisy: compare medians from one run, on one machine.
"""

import json
import os
import sys
import tempfile

from jax_impl.app import cli, out_dir
from jax_impl.files.params_io import InputError, save_text
from torch_impl.bench import machine, plan, report
from torch_impl.bench.records import best_torch, find, table_order
from torch_impl.bench.timing import MIN_REPEATS, measure, measure_kept, pair_ensembles, progress


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where JAX and torch run (default cpu)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the notebook's size and one larger size")
    size.add_argument("--tiny", action="store_true", help="64 points, width 8, 21 steps: the test's run")
    p.add_argument("--points", type=cli.positive_int, nargs="+", help="point counts (with --hidden: their grid)")
    p.add_argument("--hidden", type=cli.positive_int, nargs="+", help="hidden widths (default with --points: 20)")
    p.add_argument("--steps", type=cli.positive_int, default=None, help="training steps (default 201; --tiny 21)")
    p.add_argument("--repeats", type=cli.positive_int, default=None, help="warm runs per variant, at most")
    p.add_argument("--budget-s", type=cli.positive_float, default=None, help="seconds of warm runs per variant")
    p.add_argument("--variants", nargs="+", default=None,
                   help="only variants whose name contains one of these words (e.g. train.fit eager; every word "
                        "must be in the name of some variant that this run includes)")
    p.add_argument("--no-ensemble", action="store_true", help="skip the ensemble variants")
    p.add_argument("--cores", type=cli.positive_int, default=None,
                   help="pin the run to the first N cores: JAX's devices and torch's threads follow (default: all)")
    p.add_argument("--torch-threads", type=cli.positive_int, default=None,
                   help="torch.set_num_threads(N) (default: one per core the run may use)")
    p.add_argument("--process", type=cli.non_negative_int, default=None, metavar="RUNS",
                   help="time the whole train_jax.py / train_torch.py processes RUNS times (full: 5, else 0)")
    p.add_argument("--json", metavar="FILE", help="write the records as JSON ('-': to stdout instead of the table)")
    p.add_argument("--out", metavar="FILE.png", help="write the log-log plot of time against points")
    args = p.parse_args(argv)
    check_variants(p, args.variants)
    args = plan.complete(args, MIN_REPEATS)
    check_variants_run(p, args)
    return args


def check_variants(parser, words) -> None:
    """Before any work: each --variants word is in some row's name (cases.unknown). A word that picks nothing ran
    the whole set-up and printed an empty table, exit 0. parser.error: one line naming the variants, exit 2."""
    if words is None:
        return
    from torch_impl.bench import cases  # (torch, not jax: setup_jax is still to come)

    if bad := cases.unknown(words):
        parser.error(f"--variants {bad[0]}: no variant's name contains it; the variants: {', '.join(cases.NAMES)}")


def check_variants_run(parser, args) -> None:
    """Before any work, the mode and device known: each --variants word picks a row this run includes
    (cases.idle_word). `--variants "cuda graph"` on a CPU ran the whole set-up and printed an empty table, exit 0.
    parser.error: one line naming the rows and what each needs, exit 2."""
    from torch_impl.bench import cases

    if idle := cases.idle_word(args):
        parser.error(idle)


def check_outputs(args) -> None:
    """Before any work: --json FILE (unless '-', stdout) and --out FILE.png can be written at the end
    (out_dir.check_file: not empty, not a folder, their folder made). Before, only the folder was made, so a folder
    given as FILE failed after the minutes of the sweep."""
    if args.json != "-":
        out_dir.check_file(args.json, "--json")
    out_dir.check_file(args.out, "--out")


def floor_record(records, inputs, points, args, jax_device) -> dict:
    """The arithmetic floor at this size, paired with train.fit's run at the notebook's size (or --tiny's)."""
    from torch_impl.bench import floor, jax_runs

    paired = None
    if ((points, inputs.hidden) == plan.NOTEBOOK or args.tiny) and find(records, "jax", "train.fit", points,
                                                                         inputs.hidden):
        paired = floor.paired_ratio(jax_runs.fused(inputs), points, inputs.hidden, args.steps, jax_device,
                                    rounds=args.paired_rounds)
        progress(f"fused / floor, {args.paired_rounds} paired rounds: median {paired['paired_ratio_median']:.2f}")
    return floor.floor_record(points, inputs.hidden, args.steps, args.rates, args.device, paired)


def run_cases(args, jax_device) -> list[dict]:
    """Every size's torch cases first, then every size's JAX cases, then the ensembles (at each count torch's first,
    then JAX's, then the two side by side at the target counts: timing.pair_ensembles): measured
    here, torch eager at 10^4 x 20 ran in 0.37 s a run in a fresh process and after JAX's fit (0.39 s), but in 9-11 s
    for several runs after the old fit_autodiff had run at that size in the same process (both torch threads busy;
    the cause was not found). JAX after torch showed no such effect (0.10 s a run)."""
    from torch_impl.bench import cases

    records = []
    for framework in ("torch", "jax"):
        for points, hidden in args.sizes:
            inputs = cases.inputs(points, hidden, args.steps, args.device, jax_device)
            records += [measure(case, inputs, points, 1, repeats=args.repeats, budget_s=args.budget_s)
                        for case in cases.selected(args, framework, "run")]
            if framework == "jax" and args.device == "cpu" and cases.wanted(cases.FLOOR, args.variants):
                records.append(floor_record(records, inputs, points, args, jax_device))
    points, hidden = args.ensemble_size
    inputs = cases.inputs(points, hidden, args.steps, args.device, jax_device)
    for models in args.models:
        paired, runs = models in report.TARGET_MODELS or args.tiny, {}
        for case in [*cases.selected(args, "torch", "ensemble"), *cases.selected(args, "jax", "ensemble")]:
            record, run = measure_kept(case, inputs, points, models, repeats=args.repeats, budget_s=args.budget_s)
            records.append(record)
            # For the pairing, JAX's run and the fastest torch run so far (records.best_torch) stay in memory
            if paired and run and (case.framework == "jax"
                                   or best_torch(records, points, hidden, models, ensemble=True)[0] == case.variant):
                runs[case.framework] = (case.variant, run)
        if paired:
            pair_ensembles(records, runs, models, args.ensemble_rounds)
    return records


def main(argv=None):
    args = parse_args(argv)
    if args.cores:  # before JAX starts: its CPU devices and XLA's threads count the cores this process may use
        allowed = sorted(os.sched_getaffinity(0))
        if args.cores > len(allowed):
            cli.fail(f"--cores {args.cores}: this process may use {len(allowed)} cores")
        os.sched_setaffinity(0, allowed[:args.cores])
    cli.setup_jax(cache_dir=None)  # no persistent cache: the first call's time is a real compilation
    # Nor a warm torch.compile cache (inductor keeps compiled kernels in /tmp/torchinductor_$USER across processes).
    inductor_cache = tempfile.TemporaryDirectory(prefix="bench-inductor-")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", inductor_cache.name)
    missing = machine.gpu_missing(args.device)
    if missing:  # the run asked for cannot be made here: refused as --cores beyond the machine is, and no file written
        raise InputError(f"--device gpu: no GPU here ({missing}); nothing measured, nothing written")
    check_outputs(args)
    import jax
    import torch

    if args.device == "gpu":  # torch keeps float32 matmuls in full float32 on CUDA; ask JAX for the same
        jax.config.update("jax_default_matmul_precision", "highest")
    torch.set_num_threads(args.torch_threads or len(os.sched_getaffinity(0)))
    jax_device, base = machine.jax_device(args.device), machine.environment(args.device)
    if args.device == "cpu":
        from torch_impl.bench import floor

        args.rates = floor.measure_rates(jax_device, seconds=0.05 if args.tiny else 0.2)
        progress(f"this core: {args.rates['flop_rate'] / 1e9:.1f} GFLOP/s (multiply-add chain), "
                 f"{args.rates['sigmoid_rate'] / 1e9:.2f} G sigmoids/s; memory {args.rates['bandwidth'] / 1e9:.1f} "
                 "GB/s")
    records = run_cases(args, jax_device)
    if args.process:
        from torch_impl.bench.process import process_records

        records += process_records(args.process, args.device)
    base["machine"]["load_avg_end"] = machine.load_average()
    records = sorted(({**r, **base} for r in records), key=table_order)
    if args.json is not None:
        text = json.dumps(records, indent=1)
        if args.json == "-":
            print(text)
        else:
            save_text(args.json, text + "\n")
    if args.json != "-":
        targets = report.target_lines(records)
        print(report.markdown_table(records) + ("\n\n" + "\n".join(targets) if targets else ""))
        print(f"\n{machine.described(base)}; `python scripts/bench.py {' '.join(sys.argv[1:])}`")
    if args.out is not None:
        from jax_impl.app import plots
        from torch_impl.bench import chart

        fig = plots.plt.figure(figsize=chart.figure_size(records))
        chart.draw(fig, records)
        plots.save_png(fig, args.out, dpi=110)


if __name__ == "__main__":
    cli.run_main(main)
