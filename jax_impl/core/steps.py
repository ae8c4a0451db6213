"""Which steps a run logs, the notebook's log line, and where a run diverged: for either framework (numpy, no jax).

Step t's loss and prediction are taken before update t (as the notebook's loop computes them), so the snapshot at t
shows the parameters after t updates.
"""

import numpy as np


def snapshot_steps(steps: int, every: int) -> list[int]:
    """The steps t whose prediction a run keeps and logs: t = 0, every, 2 every, ... < steps (the notebook's plots)."""
    return list(range(0, steps, every))


def log_line(t: int, losses) -> str:
    """The notebook's log line and picture label for step t: 't = 20, Loss=0.1541'."""
    return "t = %d, Loss=%.4f" % (t, float(losses[t]))


def first_nonfinite_steps(losses) -> np.ndarray:
    """losses (..., steps) -> (...) the first step whose loss is NaN or inf, -1 where every loss is finite."""
    bad = ~np.isfinite(np.asarray(losses))
    return np.where(bad.any(axis=-1), bad.argmax(axis=-1), -1)


def first_nonfinite_step(losses) -> int | None:
    """losses (steps,) -> the first t whose loss is NaN or inf, or None: the step a diverging run is reported at."""
    bad = int(first_nonfinite_steps(losses))
    return None if bad < 0 else bad
