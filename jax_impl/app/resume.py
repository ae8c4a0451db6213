"""--save-state FILE and --resume FILE on train_jax.py and train_torch.py: a run's training state kept, and a run
continued from it in either framework (jax_impl/files/state_file.py holds the format).

A state file names its experiment: every flag that changes a result (experiment()). --resume refuses, with one line
and exit 2 before any work, a file that is not a state file or is damaged, and one whose optimizer (spec, arguments
included), precision, experiment or shapes differ from the flags', or whose step is not below --steps (--steps counts
from the run's beginning: a resumed run ends where an uninterrupted one does).
"""

import numpy as np

from jax_impl.app import experiment_id, out_dir
from jax_impl.files import state_file
from jax_impl.files.params_io import InputError, refuse_empty


def add_flags(parser) -> None:
    """--save-state FILE and --resume FILE. Call check() after the run flags are checked (cli.check_run_flags)."""
    parser.add_argument("--save-state", metavar="FILE", default=None,
                        help="write the parameters, the optimizer's state and the step count to FILE (safetensors, "
                             "torch's names) at the end of the run")
    parser.add_argument("--resume", metavar="FILE", default=None,
                        help="continue the run in FILE (either framework's --save-state) to --steps, counted from "
                             "the run's beginning; every other flag as when it was saved")


def experiment(args) -> dict:
    """The experiment a state file names: experiment_id.run_experiment without --steps (a run saved at step k
    continues to any later --steps)."""
    return experiment_id.run_experiment(args, steps=False)


def check(parser, args) -> None:
    """Read and judge --resume's file into args.resume_state (None without --resume); then --save-state must be a
    file that can be written (out_dir.check_file: written at the run's end, after --out's files; its folder is made
    if missing, as the run makes --out). Each refusal is parser.error: one line, exit 2."""
    args.resume_state = None
    if args.resume is not None:
        try:
            refuse_empty(args.resume, "--resume")
        except InputError as e:
            parser.error(str(e))
        args.resume_state = _judged(parser, args)
    if args.save_state is not None:  # last: a refused --resume leaves no folder made for --save-state
        try:
            out_dir.check_file(args.save_state, "--save-state")
        except InputError as e:
            parser.error(str(e))


def _judged(parser, args) -> state_file.TrainingState:
    """--resume's file, read and matched against the flags (check's refusals)."""
    try:
        saved = state_file.read(args.resume)
    except InputError as e:
        parser.error(f"--resume {e}")
    where = f"--resume {args.resume}"
    dtype = "float64" if args.x64 else "float32"
    if saved.optimizer != args.optimizer:
        parser.error(f"{where}: its optimizer is {saved.optimizer}, the flags name {args.optimizer}")
    if saved.dtype != dtype:
        parser.error(f"{where}: a {saved.dtype} run, the flags ask for {dtype} (--x64 " +
                     ("missing)" if saved.dtype == "float64" else "given)"))
    ours = experiment(args)
    for flag, value in ours.items():
        if saved.experiment.get(flag) != value:
            parser.error(f"{where}: saved with --{flag.replace('_', '-')} {saved.experiment.get(flag)!r}, the "
                         f"flags give {value!r}")
    if set(saved.experiment) != set(ours):
        parser.error(f"{where}: its experiment names {sorted(saved.experiment)}, not {sorted(ours)}")
    if saved.params["b1"].shape[0] != args.hidden:
        parser.error(f"{where}: holds a network of width {saved.params['b1'].shape[0]}, its experiment says "
                     f"{args.hidden}")
    if saved.step >= args.steps:
        parser.error(f"{where}: is at step {saved.step}, and --steps {args.steps} (counted from the run's "
                     "beginning) leaves nothing to run")
    return saved


def saved_state(args, *, params, slots, step: int, losses, framework: str) -> state_file.TrainingState:
    """What --save-state writes for this run: numpy params and slots (port layout), the losses of every step."""
    return state_file.TrainingState({k: np.asarray(v) for k, v in params.items()},
                                    {f: {k: np.asarray(v) for k, v in d.items()} for f, d in slots.items()},
                                    step, np.asarray(losses), args.optimizer, "float64" if args.x64 else "float32",
                                    framework, experiment(args))
