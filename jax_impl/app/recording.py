"""--record FILE and --record-every K on the training scripts: what names the experiment, the CPU, and writing the
record (jax_impl/files/records.py; docs/records.md)."""

import contextlib
import hashlib
import pathlib
import platform

from jax_impl.files import records

# The flags that change a run's result (its precision apart: records of one experiment in float32 and float64 are
# compared). Two records are of one experiment when these are equal.
EXPERIMENT_FLAGS = ("steps", "lr", "optimizer", "hidden", "seed", "points", "noise", "data_seed", "torch_seed")


def add_record_flags(parser, positive_int, what: str = "FILE") -> None:
    """--record and --record-every (positive_int: cli's type). Call check_record_flags after parsing (and after
    cli.check_run_flags)."""
    parser.add_argument("--record", metavar="FILE", default=None,
                        help=f"write the whole trajectory of the run to {what} (safetensors; docs/records.md)")
    parser.add_argument("--record-every", metavar="K", type=positive_int, default=1,
                        help="keep every K-th step in the record (default 1: every step)")


def check_record_flags(parser, args) -> None:
    """Only Adam is recorded (its moments are the record's optimizer state): another optimizer with --record is one
    line and exit 2, as are --record-every without --record and --record with --resume (a record starts at step 0);
    the record's folder must exist."""
    if args.record is None:
        if args.record_every != 1:
            parser.error("--record-every needs --record FILE")
        return
    if getattr(args, "resume", None) is not None:  # main's --resume: a record starts at step 0 with fresh moments
        parser.error("--record records a run from its first step, with Adam's moments from zero: not with --resume")
    if args.optimizer != "adam":
        parser.error(f"--record records Adam's moments: it takes only --optimizer adam without --optimizer-args "
                     f"(not {args.optimizer})")
    folder = pathlib.Path(args.record).parent
    if not folder.is_dir():
        parser.error(f"--record {args.record}: no folder {folder}")


def experiment(args) -> dict:
    """The flags that change the result (EXPERIMENT_FLAGS), and --init's file by its content's SHA-256."""
    out = {k: getattr(args, k, None) for k in EXPERIMENT_FLAGS}
    if getattr(args, "init", None) is not None:
        out["init_sha256"] = hashlib.sha256(pathlib.Path(args.init).read_bytes()).hexdigest()
    return out


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or what platform knows: records made on two CPU kinds say so."""
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


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
