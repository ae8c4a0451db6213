"""Reading and writing parameter files (.npz), strictly: never unpickle, name what is wrong."""

import os
import pathlib
import tempfile
import zipfile

import numpy as np

from jax_impl.model import PARAM_NAMES


class InputError(ValueError):
    """Bad user input (a file or a flag): the scripts print its message as one line and exit 2."""


def save_npz(path, arrays: dict) -> None:
    """Write atomically: a temporary file in the same folder, then a rename, so no half-written file is left."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_npz(path, names) -> dict[str, np.ndarray]:
    """The named numeric arrays of an .npz file; InputError for a missing file, a non-npz, a missing key."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not an .npz file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise InputError(f"{path}: missing key {missing[0]!r} (has {', '.join(data.files) or 'none'})")
            arrays = {n: data[n] for n in names}
    except InputError:
        raise
    except ValueError as e:  # numpy refuses object arrays when allow_pickle=False
        raise InputError(f"{path}: unreadable array ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path}: not a valid .npz file ({e})") from None
    for name, value in arrays.items():
        if value.dtype.kind not in "fiu":
            raise InputError(f"{path}: {name!r} has dtype {value.dtype}, expected a real number array")
        if not np.all(np.isfinite(value)):
            raise InputError(f"{path}: {name!r} has non-finite values")
    return arrays


def load_params(path, hidden: int | None = None) -> dict[str, np.ndarray]:
    """w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,) from an .npz; H from b1 unless given. InputError names a bad tensor."""
    params = load_npz(path, PARAM_NAMES)
    if hidden is None:
        hidden = params["b1"].shape[0] if params["b1"].ndim == 1 else -1
    want = {"w1": (1, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
    for name in PARAM_NAMES:
        if params[name].shape != want[name]:
            raise InputError(f"{path}: {name!r} has shape {params[name].shape}, expected {want[name]}")
    return params
