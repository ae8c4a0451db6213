"""--record FILE and --record-every K on the training scripts: what names the experiment, the CPU, and writing the
record (jax_impl/files/records.py; docs/records.md)."""

import pathlib

from jax_impl.app import experiment_id, out_dir
from jax_impl.files import records
from jax_impl.files.host import cpu_name
from jax_impl.files.params_io import InputError, refuse_empty


def add_record_flags(parser, positive_int, what: str = "FILE") -> None:
    """--record and --record-every (positive_int: cli's type). Call check_record_flags after parsing (and after
    cli.check_run_flags)."""
    parser.add_argument("--record", metavar="FILE", default=None,
                        help=f"write the whole trajectory of the run to {what} (safetensors; docs/records.md)")
    parser.add_argument("--record-every", metavar="K", type=positive_int, default=1,
                        help="keep every K-th step in the record (default 1: every step)")


def check_record_flags(parser, args, pair: bool = False) -> None:
    """Only Adam is recorded (its moments are the record's optimizer state): another optimizer with --record is one
    line and exit 2, as are --record-every without --record and --record with --resume (a record starts at step 0)
    and a --record that cannot be written (out_dir.check_file: the record is written at the run's end, after its
    other outputs; its folder is made if missing, as a run makes --out). pair: FILE stands for FILE-jax and
    FILE-torch (compare.py; pair_paths), the files checked."""
    if args.record is None:
        if args.record_every != 1:
            parser.error("--record-every needs --record FILE")
        return
    if getattr(args, "resume", None) is not None:  # main's --resume: a record starts at step 0 with fresh moments
        parser.error("--record records a run from its first step, with Adam's moments from zero: not with --resume")
    if args.optimizer != "adam":
        parser.error(f"--record records Adam's moments: it takes only --optimizer adam without --optimizer-args "
                     f"(not {args.optimizer})")
    try:
        refuse_empty(args.record, "--record")  # before pair_paths, which cannot split "" (a traceback)
        for path in pair_paths(args.record).values() if pair else [args.record]:
            out_dir.check_file(path, "--record")
    except InputError as e:
        parser.error(str(e))


def experiment(args) -> dict:
    """The experiment a record names: experiment_id.run_experiment with --steps (records of one experiment have
    the same steps)."""
    return experiment_id.run_experiment(args, steps=True)


def write_record(path, args, arrays: dict, x, y, *, framework: str, versions: dict, precision: str,
                 implementation: str | None = None) -> None:
    """The record of a run (arrays: a recorder's output; x, y: its data, (N, 1)) at `path`, whole or not at all."""
    record = records.make({**arrays, "data.x": x, "data.y": y}, experiment=experiment(args), every=args.record_every,
                          framework=framework, implementation=implementation or framework, versions=versions,
                          precision=precision, cpu=cpu_name())
    records.write(path, record)


def pair_paths(path) -> dict:
    """compare.py --record FILE: {"jax": FILE-jax.SUFFIX, "torch": FILE-torch.SUFFIX} beside FILE (a.safetensors ->
    a-jax.safetensors, a-torch.safetensors)."""
    path = pathlib.Path(path)
    suffix = path.suffix or ".safetensors"
    return {side: path.with_name(f"{path.stem if path.suffix else path.name}-{side}{suffix}")
            for side in ("jax", "torch")}
