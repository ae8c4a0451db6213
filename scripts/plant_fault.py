"""Plant a fault, to see the localizer (scripts/diverge.py) find it.

    python scripts/plant_fault.py --bug eps_inside_sqrt --x64 --record out/planted.safetensors
    python scripts/plant_fault.py --into a.safetensors --quantity grads.w2 --step 5 --record out/b.safetensors

--bug NAME records the torch twin with a real bug planted (torch_impl/checks/planted.py): eps_inside_sqrt (sqrt(v_hat
+ eps) instead of sqrt(v_hat) + eps), bias_correction_off_by_one (1 - b^(t+1)), lr_one_step_late (each step applies
the update of the step before), sigmoid_float32 (the sigmoid in float32 inside a float64 run); the run flags choose
the experiment as on train_torch.py (Adam only). Compare it with train_jax.py --record of the same flags.
--into FILE copies a record with one element of --quantity at --step moved by --size (default 1e-3) times the
tensor's largest magnitude. Exit codes: 0 written, 2 bad input.
"""

from jax_impl.app import cli, recording


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
    args = cli.check_run_flags(p, p.parse_args(argv))
    recording.check_record_flags(p, args)
    if args.record is None or (args.bug is None) == (args.into is None):
        p.error("give --record FILE and one of --bug NAME and --into FILE")
    return args


def main(argv=None):
    args = parse_args(argv)
    from jax_impl.files import records

    if args.into is not None:
        record = records.read(args.into)
        if args.quantity not in records.STEP_ORDER or args.quantity.startswith("data."):
            cli.fail(f"--quantity {args.quantity}: not a recorded quantity with a step axis (docs/records.md)")
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
