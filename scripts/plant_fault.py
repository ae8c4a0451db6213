"""Plant a fault, to see the localizer (scripts/diverge.py) find it.

    python scripts/plant_fault.py --bug eps_inside_sqrt --x64 --record out/planted.safetensors
    python scripts/plant_fault.py --into a.safetensors --quantity grads.w2 --step 5 --record out/b.safetensors

--bug NAME records the torch twin with a real bug planted (torch_impl/checks/planted.py): eps_inside_sqrt (sqrt(v_hat
+ eps) instead of sqrt(v_hat) + eps), bias_correction_off_by_one (1 - b^(t+1)), lr_one_step_late (each step applies
the update of the step before), sigmoid_float32 (the sigmoid in float32 inside a float64 run); the run flags choose
the experiment as on train_torch.py (Adam only). Compare it with train_jax.py --record of the same flags.
--into FILE copies a record with one element of --quantity at --step moved by --size (default 1e-3) times the
tensor's largest magnitude (a quantity of real numbers: not adam.count, whole numbers). The two modes take their own
flags: --quantity, --step and --size only with --into, which copies a record as it is (no run flags, --x64 or
--record-every); the run flags only with --bug. Exit codes: 0 written, 2 bad input (a flag of the other mode, or a
--record it could not write, refused before any work).
"""

import types

from jax_impl.app import cli, recording
from jax_impl.files.params_io import InputError, refuse_empty, same_file

INTO_FLAGS = ("quantity", "step", "size")  # what --into's copy is changed by
NEW_RUN_FLAGS = ("x64", "record_every")  # besides cli.add_run_flags's: what --bug's new run is chosen by


def parse_args(argv=None):
    from torch_impl.checks.planted import PLANTED

    p = cli.ArgumentParser(description=__doc__)
    cli.add_run_flags(p)
    p.add_argument("--x64", action="store_true", help="run in float64")
    p.add_argument("--bug", choices=sorted(PLANTED), help="record the twin with this bug planted")
    p.add_argument("--into", metavar="FILE", help="plant a difference into a copy of this record instead")
    p.add_argument("--quantity", default="grads.w2", help="with --into: the tensor (docs/records.md's names)")
    p.add_argument("--step", type=cli.non_negative_int, default=0, help="with --into: the step")
    p.add_argument("--size", type=cli.positive_float, default=1e-3, help="with --into: relative to the tensor")
    recording.add_record_flags(p, cli.positive_int)
    args = p.parse_args(argv)
    if args.record is None or (args.bug is None) == (args.into is None):
        p.error("give --record FILE and one of --bug NAME and --into FILE")
    check_mode(p, args, given_flags(p, argv, args))
    args = cli.check_run_flags(p, args)
    recording.check_record_flags(p, args)
    if args.into is not None:
        check_quantity(p, args.quantity)
    check_output(p, args)
    return args


def given_flags(parser, argv, args) -> set:
    """The flags (by dest) the command line gives, at their default value or not: parsed again into a namespace
    that holds a marker for each, so that only a given flag replaces its marker."""
    unset = object()
    found = types.SimpleNamespace(**{dest: unset for dest in vars(args)})
    parser.parse_args(argv, namespace=found)
    return {dest for dest, value in vars(found).items() if value is not unset}


def _flags(dests) -> str:
    return ", ".join("--" + dest.replace("_", "-") for dest in dests)


def check_mode(parser, args, given: set) -> None:
    """Each mode's flags only in that mode, none ignored: --into copies a record as it is (the run flags, --x64 and
    --record-every would choose a new run), --bug records a new run (--quantity, --step, --size change a copy)."""
    if args.into is not None:
        probe = cli.ArgumentParser()
        cli.add_run_flags(probe)
        run_flags = [d for d in (*vars(probe.parse_args([])), *NEW_RUN_FLAGS) if d in given]
        if run_flags:
            parser.error(f"--into copies {args.into} as it is: {_flags(run_flags)} would choose a new run "
                         "(--bug NAME records one)")
    else:
        into_flags = [d for d in INTO_FLAGS if d in given]
        if into_flags:
            one = len(into_flags) == 1
            parser.error(f"--bug records a new run: {_flags(into_flags)} {'is' if one else 'are'} taken only with "
                         f"--into FILE ({'it changes' if one else 'they change'} a copy of a record)")


def check_quantity(parser, quantity: str) -> None:
    """--quantity names a recorded quantity of real numbers with a step axis (planted.PLANTABLE): the data have no
    step, and adam.count is whole numbers, which a relative move cannot perturb."""
    from torch_impl.checks.planted import PLANTABLE

    if quantity not in PLANTABLE:
        from jax_impl.files.records import INTEGERS, STEP_ORDER

        what = ("whole numbers, which a relative move cannot perturb" if quantity in INTEGERS else
                "the data, without a step axis" if quantity in STEP_ORDER else "not a recorded quantity")
        parser.error(f"--quantity {quantity}: {what}; one of {', '.join(PLANTABLE)} (docs/records.md)")


def check_output(parser, args) -> None:
    """Before any work: --record (which recording.check_record_flags saw can be written) is neither --into's record
    nor --init's weights (a copy written over them would lose them)."""
    for flag, source in (("--into", args.into), ("--init", args.init)):
        try:
            if source is not None:
                refuse_empty(source, flag)
        except InputError as e:
            parser.error(str(e))
        if source is not None and same_file(args.record, source):
            parser.error(f"--record {args.record}: is the {flag} file: the planted copy would replace it")


def main(argv=None):
    args = parse_args(argv)
    from jax_impl.files import records

    if args.into is not None:
        record = records.read(args.into)
        if args.step not in set(record.tensors["step"].tolist()):
            cli.fail(f"--step {args.step}: not a step {args.into} holds")
        from torch_impl.checks.planted import with_difference

        records.write(args.record, with_difference(record, args.quantity, args.step, args.size))
        print(f"wrote {args.record}: {args.into} with {args.quantity} at step {args.step} moved by {args.size:g}")
        return
    cli.setup_jax(x64=args.x64, cache_dir=cli.default_cache_dir())
    import jax.numpy as jnp
    import numpy as np
    import torch

    from jax_impl.core import data
    from torch_impl.checks.planted import implementation, record_planted

    params, x, y = cli.run_inputs(args, jnp.float64 if args.x64 else jnp.float32)
    x, y = np.asarray(x), np.asarray(y)
    arrays = record_planted(args.bug, data.as_numpy(params), x, y, args.lr, steps=args.steps, every=args.record_every,
                            dtype=torch.float64 if args.x64 else torch.float32)
    recording.write_record(args.record, args, arrays, x, y, framework="torch", implementation=implementation(args.bug),
                           versions={"torch": torch.__version__, "numpy": np.__version__},
                           precision="float64" if args.x64 else "float32")
    print(f"wrote {args.record}: the twin with {args.bug} planted, {args.steps} steps")


if __name__ == "__main__":
    cli.run_main(main)
