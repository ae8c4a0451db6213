"""torch's own part of reading and writing .pt/.pth weight files (jax_impl/files/weights.py does the rest, in numpy):
torch.load with weights_only=True, which unpickles tensors and plain containers only and refuses anything else
without running it, and torch.save."""

import pickle
import re

import numpy as np
import torch

from jax_impl.files.params_io import InputError


def tensor_to_numpy(tensor):
    """A torch tensor's values as a numpy array of its dtype, a copy (bfloat16 as ml_dtypes.bfloat16, which numpy
    lacks: the same bits); the dtype's name (a str) for a tensor numpy cannot hold."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes  # numpy's bfloat16

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    try:
        return tensor.numpy().copy()
    except (TypeError, RuntimeError):  # float8, complex32, quantized: no numpy dtype
        return str(tensor.dtype).removeprefix("torch.")


def load(path, where: str):
    """(what torch.load(weights_only=True) returned, torch.is_tensor, tensor_to_numpy); InputError with one line for
    a file it refuses (naming the pickled global it would not run) or cannot read."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only's refusal: a global it does not allow, or an opcode
        if culprit := re.search(r"GLOBAL ([\w.]+)", str(e)):
            raise InputError(f"{where}refused: it pickles {culprit[1]} as well as tensors, and torch.load("
                             "weights_only=True) runs no such thing; save model.state_dict() instead") from None
        detail = re.search(r"Unsupported [^\n]*|invalid load key[^\n]*", str(e))
        raise InputError(f"{where}not a torch checkpoint torch.load(weights_only=True) can read"
                         + (f" ({detail[0].strip()})" if detail else "")) from None
    except Exception as e:  # torch.load raises RuntimeError, EOFError, KeyError ... for what is not its format
        first = (str(e).strip().splitlines() or [""])[0]
        raise InputError(f"{where}not a torch checkpoint torch.load(weights_only=True) can read ({type(e).__name__}"
                         + (f": {first})" if first else ")")) from None
    return obj, torch.is_tensor, tensor_to_numpy


def save(arrays: dict[str, np.ndarray], file) -> None:
    """torch.save of the arrays as tensors, to an open file (torch.save names the archive's folder after a path: a
    file object keeps the temporary name of an atomic write out of it)."""
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, file)
