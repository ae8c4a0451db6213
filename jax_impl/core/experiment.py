"""What names an experiment, without jax: the rules that the JAX core (data.run_data) and the torch twin's script
(train_torch.py, which imports no jax for the notebook's run) both follow."""

import math
import struct

# float32's smallest normal number, 2**-126. XLA on CPU flushes smaller (subnormal) values to 0 in arithmetic, torch
# does not: a learning rate of 1e-45 (float32's 1.4e-45) is a zero step in JAX and a tiny one in torch.
FLOAT32_TINY = 2.0**-126


def float32_problem(value: float) -> str | None:
    """Why a finite number cannot stand for itself in a float32 run (every run's float32 arithmetic, JAX's and
    torch's), or None: it overflows float32, or it is not 0 but rounds to 0 or to a subnormal (flushed to 0 by XLA)."""
    single = struct.unpack("f", struct.pack("f", value))[0] if abs(value) < 2.0**128 else math.inf
    if math.isinf(single):
        return "overflows float32 (largest about 3.4028235e38)"
    if value != 0 and abs(single) < FLOAT32_TINY:
        return "is 0 or subnormal in float32 (smallest normal about 1.2e-38; XLA on CPU flushes smaller to 0)"
    return None


def fresh_data(points=None, noise=None, data_seed=None) -> bool:
    """Whether the data flags ask for a fresh draw (data.make_data) rather than the notebook's data: any of --points,
    --noise or --data-seed given, even at the notebook's value (its 100 points are torch's draw, not jax.random's)."""
    return points is not None or noise is not None or data_seed is not None
