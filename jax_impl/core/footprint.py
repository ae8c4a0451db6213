"""How much memory a training run takes, without jax (the scripts refuse a run that cannot fit before importing it):
the compiled fit's arrays per model, what the machine has free, and both in words."""

import os


def fit_bytes(models: int, *, hidden: int, points: int, steps: int, snapshots: int, itemsize: int,
              stepped: int) -> int:
    """Peak memory of a compiled fit of `models` models on one device, `stepped` of them stepped at once (all of them,
    or ensemble's block), an upper estimate in bytes.

    Kept for every model: parameters, gradients, two Adam moments, updates and in/out copies (8 x (3H + 1)), the
    snapshot buffer and its transposed copy (2 x S x N), the losses and their copy (2 x steps). Live only for the
    models being stepped: the (N, H) arrays of the step (the step materialises the sigmoid and a few backward products:
    counted as 5) and the (N,) prediction and residual (4). Measured for one model, 10**7 points: 2.2 GB peak, this
    estimate 4.6 GB.
    """
    kept = 8 * (3 * hidden + 1) + 2 * snapshots * points + 2 * steps
    return (models * kept + stepped * (5 * points * hidden + 4 * points)) * itemsize


def available_bytes() -> int | None:
    """Free physical memory now (os.sysconf), or None where the platform does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def mib(nbytes: float) -> str:
    """A byte count in words: "123 MiB" below 1 GiB, else "1.5 GiB"."""
    return f"{nbytes / 2**20:,.0f} MiB" if nbytes < 2**30 else f"{nbytes / 2**30:,.1f} GiB"
