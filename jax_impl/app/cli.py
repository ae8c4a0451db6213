"""What every script shares: flag types that reject bad values, one-line errors, JAX set-up, output folders."""

import argparse
import gc
import math
import os
import pathlib
import signal
import sys

from jax_impl.app import out_dir
from jax_impl.core import experiment, optimizers
from jax_impl.core.optimizers import OPTIMIZERS
from jax_impl.files.params_io import InputError, refuse_empty

USAGE_ERROR = 2  # bad flags or files
DIVERGED = 3  # the loss turned non-finite
MISMATCH = 1  # a cross-check disagreed beyond its tolerance
INTERRUPTED = 130  # Ctrl-C: the shell's 128 + SIGINT
TERMINATED = 143  # SIGTERM: the shell's 128 + SIGTERM
# Every seed flag takes 0 ... 2**32 - 1: jax.random.key keeps a seed's low 32 bits without x64 and all 64 with it, and
# torch.manual_seed seeds its mt19937 with the low 32 bits; above 2**32 - 1 two values would name one experiment, or
# (jax) different ones in float32 and float64.
MAX_SEED = 2**32 - 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage block) and exit code 2, and the description (a
    script's docstring) printed as written. The scripts' one parser: they import no argparse of their own."""

    def __init__(self, *args, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def parse_run_args(description: str, argv=None) -> argparse.Namespace:
    """The flags of one training run, shared by train_jax.py and train_torch.py (the same run in either framework),
    parsed from argv (None: sys.argv); a bad value or combination is one line and exit 2."""
    p = ArgumentParser(description=description)
    add_run_flags(p)
    p.add_argument("--x64", action="store_true", help="train in float64")
    p.add_argument("--log-every", type=positive_int, default=20, help="snapshot and log every K steps")
    p.add_argument("--out", default="out", help="output folder (default out/)")
    p.add_argument("--no-plots", action="store_true", help="write no pictures")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout instead")
    p.add_argument("--no-cache", action="store_true", help="do not use JAX's persistent compilation cache")
    from jax_impl.app import recording, resume

    resume.add_flags(p)
    recording.add_record_flags(p, positive_int)
    args = check_run_flags(p, p.parse_args(argv))
    resume.check(p, args)  # --resume's file judged against the checked flags
    recording.check_record_flags(p, args)
    check_run_files(p, args)
    return args


def check_run_files(parser, args) -> None:
    """The files a training run writes beside --out are its own: --save-state and --record not one file, neither of
    them --out itself nor one of the files the run writes into it (outputs.RUN_FILES), since the later write would
    replace the earlier or fail after it. parser.error, one line, before any work."""
    from jax_impl.app.outputs import RUN_FILES
    from jax_impl.files.params_io import same_file

    beside = {flag: path for flag, path in (("--save-state", args.save_state), ("--record", args.record))
              if path is not None}
    if len(beside) == 2 and same_file(args.save_state, args.record):
        parser.error(f"--save-state {args.save_state} and --record {args.record} name one file: give each its own")
    for flag, path in beside.items():
        if same_file(path, args.out):
            parser.error(f"{flag} {path}: is the output folder (--out {args.out}): give a file outside it")
        if name := next((n for n in RUN_FILES if same_file(path, pathlib.Path(args.out) / n)), None):
            parser.error(f"{flag} {path}: the run writes its {name} there (--out {args.out}): give another file")


def add_run_flags(parser) -> None:
    """The flags that choose one training run (train_jax.py, train_torch.py, compare.py): --steps, --lr, --optimizer,
    --hidden, --seed, the data (add_data_flags) and --init. Call check_run_flags after parsing; run_inputs then
    gives the run's (params, x, y)."""
    parser.add_argument("--steps", type=positive_int, default=201, help="training steps (notebook: 201)")
    parser.add_argument("--lr", type=positive_float, default=0.2, help="learning rate (notebook: 0.2)")
    parser.add_argument("--optimizer", type=optimizer_name, default="adam", metavar="NAME",
                        help=f"torch.optim's optimizer, by its name in any case: {', '.join(OPTIMIZERS)} (default "
                             "adam, the notebook's; sgd is its comment's)")
    add_optimizer_args(parser)
    parser.add_argument("--hidden", type=positive_int, default=20, help="hidden width (notebook: 20)")
    parser.add_argument("--seed", type=seed, default=None,
                        help="draw initial weights from jax.random.key(SEED) instead of the notebook's (those are "
                             "20 wide: a --hidden other than 20 uses SEED 0 unless --seed, --torch-seed or --init "
                             "is given)")
    add_data_flags(parser)
    add_init(parser)


def add_data_flags(parser, torch_seed_help: str | None = None) -> None:
    """--points, --noise, --data-seed and --torch-seed: where the data come from (data.run_data's rule). Call
    check_torch_seed after parsing."""
    parser.add_argument("--points", type=positive_int, default=None, help="fresh data with this many points")
    parser.add_argument("--noise", type=non_negative_float, default=None, help="fresh data with this noise level")
    parser.add_argument("--data-seed", type=seed, default=None,
                        help="fresh data from jax.random.key(K) (100 points, noise 0.2 unless given; K = 0 with only "
                             "--points or --noise)")
    parser.add_argument("--torch-seed", type=torch_seed, default=None, metavar="K",
                        help=torch_seed_help or TORCH_SEED_HELP)


def check_run_flags(parser, args, records: int = 1) -> argparse.Namespace:
    """add_run_flags's combinations (check_torch_seed, check_init) and the run's size (sizes.check_run: pictures
    unless --no-plots, one a --log-every; `records` records held at once with --record); returns args."""
    from jax_impl.app import sizes

    check_torch_seed(parser, args)
    check_init(parser, args)
    args.optimizer = optimizer_spec(parser, args.optimizer, args.optimizer_args)
    sizes.check_run(parser, args, pictures=hasattr(args, "log_every") and not getattr(args, "no_plots", False),
                    records=records)
    return args


def run_inputs(args, dtype):
    """(params, x, y) for add_run_flags's flags: data.run_inputs, the one rule that turns flags into a run (JAX
    arrays in dtype)."""
    from jax_impl.core import data  # jax: after setup_jax

    return data.run_inputs(seed=args.seed, hidden=args.hidden, points=args.points, noise=args.noise,
                           data_seed=args.data_seed, torch_seed=args.torch_seed, init=args.init_params, dtype=dtype)


def _whole_number(text: str, smallest: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < smallest:
        raise argparse.ArgumentTypeError(f"{text} {rule}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number > 0, else one line naming the value."""
    return _whole_number(text, 1, "must be positive")


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0, else one line naming the value."""
    return _whole_number(text, 0, "must not be negative")


def seed(text: str) -> int:
    """An argparse type: a seed, 0 ... MAX_SEED (2**32 - 1), the values that name different experiments."""
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is above 2**32 - 1: jax.random.key (without --x64) and "
                                         "torch.manual_seed keep only a seed's low 32 bits")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number > 0 that float32 holds (experiment.float32_problem: no overflow, not 0 or subnormal
    once rounded; every run's float32 arithmetic, JAX's and torch's, takes it), else one line naming the value."""
    return _float_above_0(text, "must be a finite number above 0")


def non_negative_float(text: str) -> float:
    """An argparse type: 0 however spelled (0, 0.0, 0e0, -0), or a finite number > 0 (positive_float's rule)."""
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        pass  # _float_above_0 names the value
    return _float_above_0(text, "must be 0 or a finite number above 0")


def _float_above_0(text: str, rule: str) -> float:
    """positive_float's number; a refusal names the value and `rule`, the flag's own (0 allowed or not)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} {rule}")
    problem = experiment.float32_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(f"{text} {problem}")
    return value


TORCH_SEED_HELP = ("data and initial weights as torch.manual_seed(K) and the notebook's cells give them (K = 1: the "
                   "notebook's run; 0 <= K < 2**32), reproduced without torch (jax_impl/core/torch_rng.py)")
torch_seed = seed  # --torch-seed: torch.manual_seed's distinct seeds are those below 2**32 (MAX_SEED)


def comma_list(item, what: str):
    """An argparse type for a comma-separated list: none empty, no value twice, each checked by `item` (an
    argparse type); `what` names the values in its errors ("learning rates"). Returns the list of item's values."""

    def parse(text: str) -> list:
        items = [entry.strip() for entry in text.split(",")]
        if not text.strip() or any(not entry for entry in items):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what}")
        values = [item(entry) for entry in items]
        if len(set(values)) != len(values):  # by value: '0.2,2e-1' names one learning rate twice
            one = what[:-1]  # "optimizers" -> "an optimizer", "seeds" -> "a seed"
            raise argparse.ArgumentTypeError(f"{text!r} names {'an' if one[0] in 'aeiou' else 'a'} {one} twice")
        return values

    return parse


def optimizer_name(text: str) -> str:
    """An argparse type: a name in optimizers.OPTIMIZERS, in any case (torch's "Adam" is "adam"), lower-cased."""
    try:
        return optimizers.optimizer_spec(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def optimizer_arguments(text: str) -> dict:
    """An argparse type: --optimizer-args 'k=v,...' (optimizers.parse_arguments), each argument named once."""
    try:
        return optimizers.parse_arguments(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_optimizer_args(parser) -> None:
    """--optimizer-args: torch's keyword arguments for --optimizer. Call optimizer_spec after parsing."""
    parser.add_argument("--optimizer-args", type=optimizer_arguments, default={}, metavar="K=V,...",
                        help="torch's keyword arguments for --optimizer, by torch's names: momentum=0.9,nesterov=True "
                             "or betas=(0.9,0.99),amsgrad=True (docs/optimizers.md: the table both frameworks follow)")


def optimizer_spec(parser, name: str, args: dict) -> str:
    """The run's optimizer spec (optimizers.optimizer_spec) from --optimizer and --optimizer-args, the arguments
    checked against torch's (optimizers.torch_kwargs; a bad one is parser.error, one line) and given as parsed, only
    those other than torch's defaults: one experiment, one spec ('momentum=0' is plain "sgd")."""
    try:
        kwargs = optimizers.torch_kwargs(name, args)
    except ValueError as e:
        parser.error(f"--optimizer-args: {e}")
    defaults = optimizers.TORCH_DEFAULTS[name]
    return optimizers.optimizer_spec(name, {k: v for k, v in kwargs.items() if k in args and v != defaults[k]})


lr_list = comma_list(positive_float, "learning rates")
hidden_list = comma_list(positive_int, "widths")
optimizer_list = comma_list(optimizer_name, "optimizers")


def seed_list(text: str) -> list[int] | range:
    """An argparse type: 'N' -> seeds 0..N-1; 'A:B' -> A..B-1; 'a,b,c' -> those seeds. Each a seed (0 ... MAX_SEED)."""
    if "," not in text and ":" not in text:
        count = positive_int(text)
        if count - 1 > MAX_SEED:
            raise argparse.ArgumentTypeError(f"{text} seeds: seeds stop at 2**32 - 1")
        return range(count)
    if "," not in text:
        start, _, stop = text.partition(":")
        if not (start.strip() and stop.strip()):
            raise argparse.ArgumentTypeError(f"{text!r}: START:STOP needs both numbers (0:8 is seeds 0 ... 7)")
        start, stop = non_negative_int(start), positive_int(stop)
        if stop <= start or stop - 1 > MAX_SEED:
            raise argparse.ArgumentTypeError(f"{text!r}: need START < STOP <= 2**32")
        return range(start, stop)
    return comma_list(seed, "seeds")(text)


def check_torch_seed(parser, args) -> None:
    """--torch-seed K takes the data and the initial weights from torch's stream, so --seed (jax.random weights) and
    --data-seed (jax.random data) would choose them a second way: either with it is a usage error."""
    if args.torch_seed is not None:
        for flag in ("seed", "data_seed"):
            if getattr(args, flag, None) is not None:
                parser.error(f"--torch-seed draws the data and the initial weights as torch.manual_seed(K) does; "
                             f"--{flag.replace('_', '-')} would draw them again with jax.random: give one of them")


INIT_HELP = ("start from the weights in FILE (.pt/.pth: a torch state_dict; .safetensors; .npz: the port's params.npz) "
             "instead of drawing them; the width is the file's")


def add_init(parser) -> None:
    """--init FILE on a script that also has --hidden, --seed and --x64 (and maybe --torch-seed). Call check_init
    after parsing: --hidden's default becomes the file's width, or 20 without --init."""
    parser.add_argument("--init", metavar="FILE", default=None, help=INIT_HELP)
    parser.set_defaults(hidden=None)  # so that an explicit --hidden shows, and can be checked against the file


def check_init(parser, args) -> None:
    """Read --init's weights (weights.read: every format, strictly; a note on stderr for what it accepted)
    into args.init_params (numpy, the port's layout, float64 with --x64 else float32), or None without --init; set
    args.hidden to the file's width (20 without --init). --seed and --torch-seed draw initial weights, so either with
    --init is a usage error, as is a --hidden other than the file's width. InputError for a bad file."""
    args.init_params = None
    if args.init is None:
        args.hidden = 20 if args.hidden is None else args.hidden
        return
    for flag in ("seed", "torch_seed"):
        if getattr(args, flag, None) is not None:
            parser.error(f"--init takes the initial weights from {args.init}; --{flag.replace('_', '-')} would draw "
                         "them: give one of them")
    params = read_weights(args.init, "--init", x64=args.x64)
    width = int(params["b1"].shape[0])
    if args.hidden is not None and args.hidden != width:
        parser.error(f"--hidden {args.hidden} contradicts {args.init}, a network of width {width}: leave --hidden out")
    args.hidden, args.init_params = width, params


def read_weights(path, flag: str, *, x64: bool, hidden: int | None = None) -> dict:
    """weights.read of the file that `flag` names (every format, strictly), float64 with --x64 else float32, in the
    port's layout (numpy); what the reader accepted on the way (a checkpoint dict, bfloat16, ...) is one note on
    stderr. InputError for an empty path ("FLAG: an empty path"), a bad file, or one whose width is not `hidden` (if
    given)."""
    from jax_impl.files import weights

    refuse_empty(path, flag)
    params, remark = weights.read(path, dtype="float64" if x64 else "float32", hidden=hidden)
    if remark:
        note(f"{path}: {remark}")
    return params


def fail(message: str, code: int = USAGE_ERROR) -> None:
    """One line on stderr, then exit; the scripts use this for every input error."""
    prog = pathlib.Path(sys.argv[0]).name
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def note(message: str) -> None:
    """One line on stderr for something accepted on the way (a weight file's checkpoint dict, its bfloat16, ...)."""
    print(f"{pathlib.Path(sys.argv[0]).name}: note: {message}", file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM, raised where the process is, as Ctrl-C raises KeyboardInterrupt: the same unwinding (no half-written
    file: out_dir.replaced and params_io.atomic_path clean up on the way out)."""


def _terminated(signum, frame):
    raise Terminated


# What a shell reports for a process that SIGPIPE ended (128 + 13), as `yes | head` ends yes; Python ignores SIGPIPE
# and raises BrokenPipeError instead, and run_main says the same here. Not 1: that is MISMATCH, a
# cross-check that disagreed, and a closed pipe says nothing about the run.
BROKEN_PIPE = 141


def run_main(main) -> None:
    """Call main(); an InputError anywhere becomes one line and exit 2 instead of a traceback, Ctrl-C one line and
    exit 130, SIGTERM one line and exit 143 (a run's outputs appear whole at the end or not at all: out_dir), a
    reader of stdout that went away (`| head`) one line and exit 141. Any of these, a refusal after an output's
    folder was made included, takes out the folders the run made that are still empty (out_dir.undo_on_failure)."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        with out_dir.undo_on_failure():  # a refused or failed run leaves no empty folder it made
            main()
            if sys.stdout is not None:
                sys.stdout.flush()  # here, not at the interpreter's exit, so that a broken pipe is caught below
        # The work is done and the process ends: the interpreter's last collections would walk every object JAX
        # and matplotlib made (0.1-0.3 s) only to free memory the exit frees anyway. Frozen, they are skipped.
        gc.freeze()
    except InputError as e:
        fail(str(e))
    except KeyboardInterrupt:
        _end_now(INTERRUPTED, "interrupted")
    except Terminated:
        _end_now(TERMINATED, "terminated")
    except BrokenPipeError:
        _stdout_to_devnull()
        _say("stdout was closed before the end (broken pipe); stopped there")
        raise SystemExit(BROKEN_PIPE) from None


def _say(line: str) -> None:
    """One line on stderr, named by the script; a stderr that cannot take it (closed, a broken pipe too) is passed
    over: the exit code still tells."""
    if sys.stderr is None:  # no stderr at all (print would write to stdout instead)
        return
    try:
        print(f"{pathlib.Path(sys.argv[0]).name}: {line}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a broken pipe, a closed file
        pass


def _stdout_to_devnull() -> None:
    """Point file descriptor 1 at os.devnull: what is left in sys.stdout's buffer goes there at the interpreter's
    exit, instead of raising BrokenPipeError a second time (Python's "Exception ignored ... BrokenPipeError", exit
    120)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # no file behind sys.stdout (None, or a test's capture): no flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _end_now(code: int, line: str) -> None:
    """One line on stderr, then end the process with `code` at once (os._exit). A normal exit waits for the jitted
    computation still in flight (XLA's threads run it to its end: a SIGTERM 6 s into a ~22 s run printed its line at
    once but exited 17-24 s later, and a longer run kept the cores busy for minutes). Nothing is lost: the exception
    has unwound main() by now, so every `with` of out_dir.replaced and params_io.atomic_path has removed its
    half-made folder or file, and the earlier outputs stand; stdout and stderr are flushed first."""
    _say(line)
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):  # a broken pipe, a closed stdout, none: nothing more to keep
        pass
    os._exit(code)


def prepare_out_dir(path) -> pathlib.Path:
    """Create the output folder and prove it writable before any work starts (an empty path is refused, not taken
    as the current folder; a file in its place or above it is one line: out_dir.refuse_non_folder)."""
    out_dir.refuse_non_folder(path)
    path = pathlib.Path(path)
    try:
        out_dir.make_folders(path)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write to output folder {path}: {e.strerror or e}") from None
    return path


def default_cache_dir() -> pathlib.Path:
    """Where JAX's persistent compilation cache lives: $XDG_CACHE_HOME (or ~/.cache)/jax-notebook-port/xla."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "jax-notebook-port" / "xla"


def setup_jax(*, x64: bool = False, cache_dir=None, processes: int = 1) -> None:
    """Call before importing jax: the port's XLA flag (xla_cpu.set_xla_flags: the small-loop threshold) is read when
    JAX's backend starts, and so is the CPU device count (one per core: xla_cpu.set_cpu_devices); x64 is global to
    the process.

    cache_dir: JAX's persistent compilation cache, so that a second process loads the compiled program instead of
    compiling it again. None turns it off. processes: how many processes of this run share the machine's cores (a
    distributed sweep); each gets cores / processes host devices.
    """
    from jax_impl.core import xla_cpu

    set_now = xla_cpu.set_xla_flags()
    if not set_now and xla_cpu.SMALL_LOOP_OPTION not in os.environ.get("XLA_FLAGS", ""):
        print("warning: jax was imported before cli.setup_jax; XLA runs without the port's flags (slower)",
              file=sys.stderr)
    import jax

    xla_cpu.set_cpu_devices(max(1, xla_cpu.cores() // processes))
    jax.config.update("jax_enable_x64", bool(x64))
    if cache_dir is not None:
        try:
            pathlib.Path(cache_dir).mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # an unwritable cache is only slower, never an error
        jax.config.update("jax_compilation_cache_dir", str(cache_dir))
        # Cache every program: ours compile in well under JAX's default 1 s threshold.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
