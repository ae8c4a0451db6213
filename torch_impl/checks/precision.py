"""Full float32 on both sides of a cross-check: no TF32 matmuls (NVIDIA GPUs may use them by default, in JAX and in
torch's cuDNN path: a third framework's rounding in a two-framework check). On the CPU nothing changes."""

import contextlib

import jax
import torch


@contextlib.contextmanager
def full_float32():
    """JAX at "highest" matmul precision and torch with TF32 off, for the block; both restored after."""
    saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with jax.default_matmul_precision("highest"):
            yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1:]


def in_force() -> bool:
    """Whether full_float32 is in force here (for the tests: the checks must run under it)."""
    return (jax.config.jax_default_matmul_precision == "highest" and torch.get_float32_matmul_precision() == "highest"
            and not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32)
