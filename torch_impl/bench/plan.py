"""What one benchmark run measures: the notebook's training settings, and per mode (--tiny, --quick, the full sweep)
the sizes, ensemble sizes, repeats, per-case budget, whether torch.compile runs and how many whole processes run.
Flags the user gives override the mode's."""

NOTEBOOK = (100, 20)  # (points, hidden): the notebook's size
LR = 0.2  # the notebook's Adam learning rate
EVERY = 20  # the notebook's snapshot interval
STEPS = {"tiny": 21, "quick": 201, "full": 201}

# torch_compile: the compiled rows that are not torch's best (module forward + opt.step; max-autotune, which was no
# faster than the default mode), whose first calls compile for 3-15 s each: full mode only. func_compile: torch's
# best, the whole step and the func ensemble compiled in the default mode (3-6 s each), in --quick too, so that its
# targets name them. func_eager: the whole step and the func ensemble uncompiled, which are not torch's best either:
# not in --quick (they took 21 s of its 134 s on the AVX2 EPYC, over the 2 minutes).
# ensemble_rounds: the JAX ensemble and torch's best side by side at 256 and 1,024 models (timing.pair_ensembles);
# in --quick 5 (a round there is 0.3 s and 0.9 s): with 7, --quick took 112 s and, on a slow stretch of this VM, 121 s.
# The CPU sweep runs width 20 from 10^2 to 10^6 points (issue 22's range) and width 256 to 10^4: it skips 10^5 and
# 10^6 points at width 256 (the hidden layer alone is 100 MB-1 GB a copy; torch eager would take minutes a run).
WIDE_CPU = [(100, 256), (1_000, 256), (10_000, 256)]
MODES = {
    "full": {"cpu": [(100, 20), (1_000, 20), (10_000, 20), (100_000, 20), (1_000_000, 20), *WIDE_CPU],
             "gpu": [(n, h) for h in (20, 256) for n in (100, 1_000, 10_000, 100_000, 1_000_000)],
             "models": {"cpu": [1, 64, 256, 1024, 4096], "gpu": [1, 64, 256, 1024, 4096, 16384]},
             "repeats": 15, "budget_s": 20.0, "torch_compile": True, "func_compile": True, "func_eager": True,
             "process_runs": 5, "paired_rounds": 300, "ensemble_rounds": 15},
    "quick": {"cpu": [(100, 20), (10_000, 20)], "gpu": [(100, 20), (100_000, 20)],
              "models": {"cpu": [256, 1024], "gpu": [1, 1024]}, "repeats": 30, "budget_s": 3.0,
              "torch_compile": False, "func_compile": True, "func_eager": False, "process_runs": 0,
              "paired_rounds": 300, "ensemble_rounds": 5},
    "tiny": {"cpu": [(64, 8)], "gpu": [(64, 8)], "models": {"cpu": [2], "gpu": [2]}, "repeats": 3,
             "budget_s": 0.5, "torch_compile": False, "func_compile": False, "func_eager": True, "process_runs": 0,
             "paired_rounds": 5, "ensemble_rounds": 3},
}


def complete(args, min_repeats: int):
    """bench.py's parsed flags with the mode's values filled in: sizes [(points, hidden)], models (ensemble sizes,
    [] with --no-ensemble), steps, repeats (at least min_repeats), budget_s, torch_compile, func_compile, func_eager,
    process (runs), paired_rounds, ensemble_rounds (JAX's ensemble against torch's best, side by side, at the target
    counts: timing.pair_ensembles) and ensemble_size (the ensembles' (points, hidden)). Returns args."""
    name = "tiny" if args.tiny else "quick" if args.quick else "full"
    mode = MODES[name]
    if args.points or args.hidden:
        args.sizes = [(n, h) for h in args.hidden or [NOTEBOOK[1]] for n in args.points or [NOTEBOOK[0]]]
    else:
        args.sizes = mode[args.device]
    args.ensemble_size = args.sizes[0] if args.tiny else NOTEBOOK
    args.models = [] if args.no_ensemble else mode["models"][args.device]
    args.steps = args.steps or STEPS[name]
    args.repeats = max(min_repeats, args.repeats or mode["repeats"])
    args.budget_s = args.budget_s or mode["budget_s"]
    args.torch_compile = mode["torch_compile"]
    args.func_compile = mode["func_compile"]
    args.func_eager = mode["func_eager"]
    args.process = mode["process_runs"] if args.process is None else args.process
    args.paired_rounds = mode["paired_rounds"]
    args.ensemble_rounds = mode["ensemble_rounds"]
    return args
