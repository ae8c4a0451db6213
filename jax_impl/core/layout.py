"""The parameter pytree's names and shapes: the notebook's validation-cell layout, so that `x @ w1 + b1` needs no
transpose. No jax here: the weight files and the torch twin use it without starting JAX."""

PARAM_NAMES = ("w1", "b1", "w2", "b2")


def param_shapes(hidden: int) -> dict[str, tuple[int, ...]]:
    """The shapes of Net(1, H, 1)'s parameters in the port's layout: w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,)."""
    return {"w1": (1, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
