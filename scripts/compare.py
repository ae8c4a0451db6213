"""The trajectory cross-check: the JAX port and its torch twin, same data, same initial weights, step by step.

    python scripts/compare.py                   # the notebook's run in float32: JAX (optax) against torch
    python scripts/compare.py --x64             # both in float64: agreement near 1e-15
    python scripts/compare.py --attribute       # also: what causes the float32 gap (a table, one row per cause)
    python scripts/compare.py --seed 3 --hidden 64 --optimizer sgd --lr 0.5 --json
    python scripts/compare.py --torch-seed 7    # data and weights as torch.manual_seed(7) gives them
    python scripts/compare.py --init net.pt     # both sides start from these weights (.pt, .safetensors, .npz)
    python scripts/compare.py --record out/run.safetensors   # also: out/run-jax.safetensors, out/run-torch...

Reports the largest relative difference of the per-step losses, the largest absolute difference of the final
parameters, and the largest relative difference of the gradients at the initial weights, each against a named
tolerance (torch_impl/checks/compare.py); writes --out/compare.png (both loss curves and the per-step relative
difference, log scales). When they disagree (Adam), it also prints where the runs part first
(scripts/diverge.py's first crossing); --record FILE [--record-every K] writes both recorded runs as FILE-jax and
FILE-torch (docs/records.md), both or neither. A run that fails is measured against itself (torch from weights one
rounding apart): where that parts too, only the steps before its horizon are judged (reported with the verdict).
Exit codes: 0 agree (up to the horizon, if any), 1 disagree beyond a tolerance, 2 bad input (a picture or record it
could not write is refused before the runs), 3 the loss turned non-finite (the finite steps before it are compared
and reported, no plot is written).
"""

import json

from jax_impl.app import cli, recording
from jax_impl.files import host
from jax_impl.files.params_io import InputError, check_writable, same_file


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    cli.add_run_flags(p)  # the same run as train_jax.py's and train_torch.py's flags choose
    p.add_argument("--x64", action="store_true", help="both sides in float64")
    p.add_argument("--attribute", action="store_true",
                   help="also run the float32 gap experiment (Adam, float32 only) and print its table")
    p.add_argument("--out", default="out", help="output folder for compare.png (default out/)")
    p.add_argument("--no-plots", action="store_true", help="write no picture (and do not touch --out)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout instead")
    p.add_argument("--no-cache", action="store_true", help="do not use JAX's persistent compilation cache")
    recording.add_record_flags(p, cli.positive_int, "FILE-jax and FILE-torch")
    args = cli.check_run_flags(p, p.parse_args(argv), records=2)  # --record: both runs' records held at once
    recording.check_record_flags(p, args, pair=True)
    if args.attribute and (args.x64 or args.optimizer != "adam"):
        p.error("--attribute studies Adam's float32 gap: it takes neither --x64 nor --optimizer sgd")
    return args


def main(argv=None):
    args = parse_args(argv)
    check_records(args)
    out = None if args.no_plots else cli.prepare_out_dir(args.out)
    if out is not None:
        check_writable(out / "compare.png", "--out")  # written after both runs: a folder in its place fails now
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir())

    import jax.numpy as jnp

    from torch_impl.checks import compare as C
    from torch_impl.checks import compare_report

    params, x, y = cli.run_inputs(args, jnp.float64 if args.x64 else jnp.float32)
    result = C.compare(params, x, y, lr=args.lr, optimizer=args.optimizer, steps=args.steps)
    lines, report = compare_report.summary_lines(result), compare_report.as_json(result)
    if args.attribute:
        reference, variants = C.attribute_float32_gap(params, x, y, lr=args.lr, steps=args.steps)
        gradients = {"initial": C.gradient_gap(params, x, y),
                     "final (torch float64)": C.gradient_gap(reference.params, x, y)}
        more, rows = compare_report.attribution_lines(reference.losses, variants, gradients)
        lines += more
        report["attribution"] = {"variants": rows, "gradients": gradients}
    if args.record is not None or (not result["ok"] and args.optimizer == "adam"):
        lines += localize(args, params, x, y, result, report)
    if result["diverged"] is not None:
        lines.append(compare_report.divergence_line(result["diverged"]))
    elif out is not None:
        from jax_impl.app import plots

        fig = plots.plt.figure(figsize=compare_report.FIGURE_SIZE)
        compare_report.draw(fig, result)
        plots.save_png(fig, out / "compare.png", dpi=90)
        report["plot"] = str(out / "compare.png")
        lines.append(f"  wrote {out / 'compare.png'}")
    print(json.dumps(report) if args.json else "\n".join(lines))
    if result["diverged"] is not None:
        raise SystemExit(cli.DIVERGED)
    if not result["ok"]:
        raise SystemExit(cli.MISMATCH)


def check_records(args) -> None:
    """Before any work: neither of --record's two files (recording.pair_paths; check_record_flags saw that they can
    be written) is --init's file, which a record written over it would lose."""
    if args.record is None:
        return
    for path in recording.pair_paths(args.record).values():
        if args.init is not None and same_file(path, args.init):
            raise InputError(f"--record {args.record}: would write {path} over the --init weights")


def localize(args, params, x, y, result, report) -> list[str]:
    """Both runs recorded (written with --record); when they disagree, the first crossing (diverge.walk)."""
    import numpy as np

    from jax_impl.files import records
    from torch_impl.checks import diverge, diverge_report

    arrays, precision = diverge.recorded_pair(params, x, y, args.lr, steps=args.steps, every=args.record_every), \
        str(np.dtype(x.dtype))
    data = {"x": np.asarray(x), "y": np.asarray(y)}
    made, lines = {}, []
    paths = recording.pair_paths(args.record) if args.record is not None else {}
    for side in ("jax", "torch"):
        made[side] = records.make({**arrays[side], "data.x": data["x"], "data.y": data["y"]},
                                  experiment=recording.experiment(args), every=args.record_every, framework=side,
                                  implementation=side, versions=versions(side), precision=precision,
                                  cpu=host.cpu_name())
    if paths:
        records.write_together([(paths[side], made[side]) for side in ("jax", "torch")])  # both or neither
        lines += [f"  wrote {paths[side]}" for side in ("jax", "torch")]
    if not result["ok"]:
        walk = diverge.walk(made["jax"], made["torch"])
        first = "none: the records agree within rounding" if walk.first is None else \
            diverge_report.crossing_line(walk.first).removeprefix("first crossing: ")
        lines.append(f"  where the runs part, first crossing: {first}")
        report["first_crossing"] = None if walk.first is None else walk.first._asdict()
    return lines


def versions(framework: str) -> dict:
    import numpy as np

    if framework == "torch":
        import torch

        return {"torch": torch.__version__, "numpy": np.__version__}
    import jax
    import optax

    return {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__}


if __name__ == "__main__":
    cli.run_main(main)
