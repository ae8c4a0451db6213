"""What names a training run's experiment: the flags that change its numbers, by name. State files (--save-state,
--resume) and records (--record) carry it, and are refused where it differs from the flags'."""

import hashlib

import numpy as np

# The flags that choose a run's numbers (add_run_flags's and --optimizer's), besides the precision, which state files
# and records keep apart (records of one experiment in float32 and float64 are compared).
EXPERIMENT_FLAGS = ("optimizer", "lr", "hidden", "seed", "points", "noise", "data_seed", "torch_seed")


def run_experiment(args, *, steps: bool) -> dict:
    """The run's experiment, by flag name: every flag that changes a result (EXPERIMENT_FLAGS), --steps too if
    `steps`, and --init as "init", the SHA-256 of its weights' numbers (the file's name and format are not the
    experiment: the same weights as .pt or .safetensors are one), None without it. What --save-state, --resume and
    --record name a run by."""
    found = {flag: getattr(args, flag, None) for flag in (("steps",) if steps else ()) + EXPERIMENT_FLAGS}
    init = getattr(args, "init_params", None)
    found["init"] = None if init is None else hashlib.sha256(
        b"".join(np.ascontiguousarray(init[k], np.float64).tobytes() for k in sorted(init))).hexdigest()
    return found
