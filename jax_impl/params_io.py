"""Reading and writing parameter files (.npz), strictly: never unpickle, name what is wrong."""

import contextlib
import os
import pathlib
import tempfile
import zipfile

import numpy as np

PARAM_NAMES = ("w1", "b1", "w2", "b2")  # the validation cell's names and layout; see model.py


class InputError(ValueError):
    """Bad user input (a file or a flag): the scripts print its message as one line and exit 2."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); rename it onto `path` only if the block succeeds.

    A crash or an error mid-write leaves the old file as it was and no half-written one.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the mode a plain open() would
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npz(path, arrays: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def save_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        pathlib.Path(tmp).write_text(text)


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


def infer_hidden(shapes: dict) -> int:
    """The hidden width H that most of w1 (1, H), b1 (H,), w2 (H, 1) agree on, so that a shape check names the one
    tensor that is off rather than the ones that are right. shapes: JAX name -> shape tuple."""
    where_h = {"w1": -1, "b1": 0, "w2": 0}  # the axis of each tensor that holds H
    votes = [shapes[name][axis] for name, axis in where_h.items() if name in shapes and len(shapes[name]) > 0]
    return max(votes, key=votes.count) if votes else -1


def load_params(path, hidden: int | None = None) -> dict[str, np.ndarray]:
    """w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,) from an .npz; H from infer_hidden unless given.

    InputError names the tensor whose shape is off."""
    params = load_npz(path, PARAM_NAMES)
    if hidden is None:
        hidden = infer_hidden({k: v.shape for k, v in params.items()})
    want = {"w1": (1, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
    for name in PARAM_NAMES:
        if params[name].shape != want[name]:
            raise InputError(f"{path}: {name!r} has shape {params[name].shape}, expected {want[name]}")
    return params
