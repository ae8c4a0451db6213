"""The optimizer parity table, measured: every row of jax_impl/core/torch_optim.py's table trained in JAX (optax)
and in torch (torch.optim) from the notebook's weights and data, every step's parameters compared.

    python scripts/optimizer_parity.py --x64          # float64: each row within 1e-12 (exit 1 otherwise)
    python scripts/optimizer_parity.py --json         # float32, as JSON
    python scripts/optimizer_parity.py --x64 --stop 100   # resume: stopped at 100, continued, 4 directions

Prints one line per row: the worst relative parameter difference over the steps (a tensor's largest difference over
its largest entry), where it is, and the loss before the first and last step. docs/optimizers.md holds the table.
"""

import json

from jax_impl.app import cli

FLOAT64_BOUND = 1e-12  # Adam's float64 bound today (torch_impl/checks/compare.py TOLERANCES): each row must meet it
# The optimizers count their steps in an int32 (torch_optim's count, optax's) and jax.lax.scan's length is one: a run
# of 2**31 steps or more cannot be made (JAX raises OverflowError), whatever the memory.
MAX_STEPS = 2**31 - 1
# The parity table keeps every step's parameters in both frameworks (the scan's output and its numpy copy, the twin's
# list of state dicts and its stack) and every step's difference per tensor: measured 1.9-2.7 KB a step (adam, 10**5
# and 3 * 10**5 steps, float32 and float64, peak RSS); this upper estimate leaves 1.5x.
PARITY_STEP_BYTES = 4096


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--x64", action="store_true", help="both frameworks in float64 (the sharp check)")
    p.add_argument("--steps", type=cli.positive_int, default=201, help="training steps (notebook: 201)")
    p.add_argument("--json", action="store_true", help="one JSON list on stdout instead of the table")
    p.add_argument("--stop", type=cli.positive_int, default=None, metavar="K",
                   help="the resume table instead: each row stopped at step K, its state file written and read, "
                        "continued in each framework to --steps, against the uninterrupted run")
    p.add_argument("--stepwise", action="store_true",
                   help="with --stop (refused without it): JAX's step jitted once per row and called step by "
                        "step, instead of the programs --resume runs (one compilation per row instead of three; the "
                        "tests use it)")
    args = p.parse_args(argv)
    if args.stop is not None and args.stop >= args.steps:
        p.error(f"--stop {args.stop} must be below --steps {args.steps}")
    if args.stepwise and args.stop is None:  # it chooses how the resume table's JAX side runs: nothing without one
        p.error("--stepwise changes only the resume table: give --stop K too")
    check_steps(p, args)
    cli.setup_jax(x64=args.x64)
    if args.stop is not None:
        return resume_table(args)

    from torch_impl.checks.optimizer_parity import AMPLIFYING, ROWS, parity, sensitivity

    dtype = "float64" if args.x64 else "float32"
    rows = [parity(spec, lr, steps=args.steps, dtype=dtype) for spec, lr in ROWS]
    if args.x64:  # the runs that amplify a rounding: compared before it, and how far torch parts from itself
        rows += [{**parity(spec, lr, steps=before, dtype=dtype), "amplifying": True,
                  "torch_vs_itself_201_steps": sensitivity(spec, lr)} for spec, lr, before in AMPLIFYING]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['optimizer']:<55} lr {r['lr']:<5} worst {r['worst']:.1e} (step {r['step']}, {r['tensor']}); "
                  f"loss {r['loss_first']:.4f} -> {r['loss_last']:.4f}"
                  + (f"; amplifying: {r['steps']} steps compared, torch against itself nudged by 1e-16 parts "
                     f"{r['torch_vs_itself_201_steps']:.1e} after 201" if r.get("amplifying") else ""))
    if args.x64 and any(not r["worst"] <= FLOAT64_BOUND for r in rows):
        raise SystemExit(cli.MISMATCH)


def check_steps(parser, args) -> None:
    """parser.error (one line, exit 2), before jax is imported, for a --steps that cannot run: above the int32 step
    count (MAX_STEPS), or needing more memory than the machine has free (sizes.refusal's rule). The table keeps
    every step (PARITY_STEP_BYTES); the resume table keeps a training run's losses and snapshots (sizes.run_bytes)."""
    from jax_impl.app import sizes
    from jax_impl.core import footprint

    if args.steps > MAX_STEPS:
        parser.error(f"--steps {args.steps} is above 2**31 - 1: the optimizers count steps in an int32")
    itemsize = 8 if args.x64 else 4
    needs = (args.steps * PARITY_STEP_BYTES if args.stop is None else
             sum(sizes.run_bytes(points=100, hidden=20, steps=args.steps, every=20, itemsize=itemsize,
                                 pictures=False).values()))
    line = sizes.refusal({"--steps": needs}, {"--steps": args.steps}, footprint.available_bytes())
    if line:
        parser.error(line)


def resume_table(args):
    """The resume table: per row, each direction's worst relative difference from never stopping."""
    from torch_impl.checks.optimizer_parity import ROWS
    from torch_impl.checks.resume_parity import DIRECTIONS, resume_parity

    dtype = "float64" if args.x64 else "float32"
    rows = [resume_parity(spec, lr, stop=args.stop, steps=args.steps, dtype=dtype, stepwise=args.stepwise)
            for spec, lr in ROWS]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['optimizer']:<55} lr {r['lr']:<5} stop {r['stop']} of {r['steps']}: "
                  + ", ".join(f"{d} {r[d]:.1e}" for d in DIRECTIONS))
    if args.x64 and any(not r[d] <= FLOAT64_BOUND for r in rows for d in DIRECTIONS):
        raise SystemExit(cli.MISMATCH)


if __name__ == "__main__":
    cli.run_main(main)
