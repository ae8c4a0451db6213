"""Where two runs part: the first step, tensor and operation where two recorded runs differ beyond rounding.

    python scripts/train_jax.py --record a.safetensors && python scripts/train_torch.py --record b.safetensors
    python scripts/diverge.py a.safetensors b.safetensors            # the first crossing, or none
    python scripts/diverge.py a.safetensors b.safetensors --json --plot out/diverge.png
    python scripts/diverge.py a.safetensors b.safetensors --replay   # also: down to the operation

Reads two records of one experiment (either framework, either precision, or two machines; docs/records.md) and walks
them step by step, inside a step in computation order (parameters, forward intermediates, loss, gradients, Adam's
moments, update), and reports the first quantity whose difference exceeds its bound: the step, the tensor, the
element, both values, the difference, the bound and the ratio. The bound is the error model's (rounding of each
quantity in each record's precision, plus the difference carried in from the quantities before: docs/records.md).
--replay re-runs the step before the crossing op by op in JAX and torch at both precisions and names the first
operation that differs. Exit codes: 0 no crossing, 1 a crossing, 2 bad input (records of different experiments,
steps or shapes, a damaged record, a --plot that cannot be written, is a record or is not named *.png, a --replay of an
implementation it does not know: one line naming what is wrong, before the walk).
"""

import json

from jax_impl.app import cli, out_dir


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("a", help="a record (train_jax.py / train_torch.py / compare.py --record)")
    p.add_argument("b", help="the record to compare it with")
    p.add_argument("--json", action="store_true", help="print a machine-readable report on stdout instead")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="a picture of difference / bound over the steps, a PNG (the name must end in .png)")
    p.add_argument("--replay", action="store_true", help="re-run the crossing's step op by op in both frameworks")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from jax_impl.files import records

    a, b = records.read(args.a), records.read(args.b)
    problem = records.mismatch(a, b)
    if problem:
        cli.fail(f"{args.a} and {args.b} cannot be compared: {problem}")
    if args.replay:
        check_replayable({args.a: a, args.b: b})
    if args.plot is not None:
        check_plot(args.plot, (args.a, args.b))

    from torch_impl.checks import diverge, diverge_report

    walk = diverge.walk(a, b)
    lines, report = diverge_report.lines(walk, a, b), diverge_report.as_json(walk, a, b)
    if args.replay and walk.first is not None:
        cli.setup_jax(x64=True)  # the replay runs JAX at both precisions
        from torch_impl.checks import replay

        found = replay.replay(a, b, walk.first.step)
        lines += replay.lines(found)
        report["replay"] = replay.as_json(found)
    if args.plot is not None:
        from jax_impl.app import plots

        fig = plots.plt.figure(figsize=(8, 4.5))
        diverge_report.draw(fig, walk)
        plots.save_png(fig, args.plot, dpi=90)
        lines.append(f"wrote {args.plot}")
        report["plot"] = args.plot
    print(json.dumps(report) if args.json else "\n".join(lines))
    if walk.first is not None:
        raise SystemExit(cli.MISMATCH)


def check_plot(plot: str, inputs) -> None:
    """Before the walk: --plot names a PNG (a name ending in .png, any case: a picture written over any other file,
    a record of another pair among them, would lose it), a file that can be written (out_dir.check_file: its folder
    made if missing, only once the name is known good) and neither record."""
    from jax_impl.files.params_io import InputError, same_file

    if plot.strip() and not plot.lower().endswith(".png"):  # (an empty path: check_file's line)
        raise InputError(f"--plot {plot}: the picture is a PNG: give a name ending in .png")
    out_dir.check_file(plot, "--plot")
    for path in inputs:
        if same_file(plot, path):
            raise InputError(f"--plot {plot}: is the record {path}: the picture would replace it")


def check_replayable(named: dict) -> None:
    """Before the walk: --replay re-runs each record's implementation, which must be one it knows (planted.knows:
    not checks/replay.py's import, which would import jax before cli.setup_jax)."""
    from jax_impl.files.params_io import InputError
    from torch_impl.checks import planted

    for path, record in named.items():
        implementation = record.metadata["implementation"]
        if not planted.knows(implementation):
            raise InputError(f"{path}: implementation {implementation!r} is not one --replay can re-run "
                             f"({', '.join(planted.KNOWN)})")


if __name__ == "__main__":
    cli.run_main(main)
