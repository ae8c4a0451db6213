"""Reading and writing parameter files (.npz), strictly: never unpickle, name what is wrong."""

import contextlib
import math
import os
import pathlib
import signal
import tempfile
import zipfile

import numpy as np

from jax_impl.core.layout import PARAM_NAMES, param_shapes


class InputError(ValueError):
    """Bad user input (a file or a flag): the scripts print its message as one line and exit 2."""


def refuse_empty(path, name: str) -> None:
    """InputError "NAME: an empty path" (NAME: the flag) for a path that is empty or blank: pathlib reads "" as ".",
    the current folder, so a reader said ".: is a folder" and compare.py --record "" ended in a traceback. The one
    check of every file flag, read or written (check_writable's too), before the path is used."""
    if not str(path).strip():
        raise InputError(f"{name}: an empty path")


def refuse_folder(path, what: str | None = None) -> None:
    """InputError when `path`, a file to read, is a folder: "PATH: is a folder[, not WHAT]". A reader's own words
    would mislead ("no such file", "unknown weight format ''", safetensors' "No such device (os error 19)"). An empty
    path (a folder to pathlib: ".") is "an empty path[, not WHAT]", for a caller that did not name its flag."""
    if not str(path).strip():
        raise InputError("an empty path" + (f", not {what}" if what else ""))
    if pathlib.Path(path).is_dir():
        raise InputError(f"{path}: is a folder" + (f", not {what}" if what else ""))


def check_writable(path, flag: str) -> pathlib.Path:
    """Before any work: a file that a script writes at its end (atomic_path) can be written at `path`: the path is
    not empty, not a folder, its folder exists and takes a new file. InputError (one line, naming `flag`) otherwise;
    returns the path. A run that would fail only when writing its results fails here, with nothing written."""
    refuse_empty(path, flag)
    path = pathlib.Path(path)
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a folder")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {path}: {path.parent} " + ("is not a folder" if path.parent.exists() else
                                                              "does not exist"))
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot write there: {e.strerror or e}") from None
    return path


def same_file(a, b) -> bool:
    """Whether two paths name one file (once resolved: a relative and an absolute path, a link and its target)."""
    return os.path.realpath(a) == os.path.realpath(b)


def temporary_beside(path) -> str:
    """The name of a fresh, empty file beside `path` (same suffix; mkstemp's, closed): where a file is written before
    it is moved onto `path`. InputError (one line) if none can be made."""
    path = pathlib.Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as e:  # no such folder, a file where the folder should be, no permission: one line
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    return tmp


def give_umask_mode(path, mode: int = 0o666) -> None:
    """chmod `path` to `mode` less the user's umask: what a plain open() (0o666) or mkdir (0o777) would have given it.
    mkstemp and mkdtemp make 0600 and 0700, and a writer may make the file anew."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM held inside the block (they act just after it): for a few renames that must all happen,
    or be undone whole."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); rename it onto `path` only if the block succeeds.

    A crash or an error mid-write leaves the old file as it was and no half-written one.
    """
    path = pathlib.Path(path)
    tmp = temporary_beside(path)
    try:
        yield tmp
        give_umask_mode(tmp)
        try:
            os.replace(tmp, path)
        except OSError as e:  # a folder in the file's place: one line
            raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npz(path, arrays: dict) -> None:
    """The named arrays as an .npz at `path`, written whole or not at all (atomic_path); no pickle needed to read."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def save_text(path, text: str) -> None:
    """`text` at `path`, written whole or not at all (atomic_path)."""
    with atomic_path(path) as tmp:
        pathlib.Path(tmp).write_text(text)


def load_npz(path, names=None) -> dict[str, np.ndarray]:
    """The named numeric arrays of an .npz file (every array if names is None); InputError for a missing file, a
    non-npz (a torch.save zip is named as one), a missing key, an object array, a non-numeric or non-finite array."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not an .npz file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if any(name.endswith("data.pkl") for name in data.files):  # torch.save's zip: <archive>/data.pkl
                raise InputError(f"{path}: a torch checkpoint (torch.save's zip), not an .npz: name it .pt")
            names = data.files if names is None else names
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
        if problem := nonfinite_problem(name, value):
            raise InputError(f"{path}: {problem}")
    return arrays


def nonfinite_problem(name: str, value: np.ndarray) -> str | None:
    """None if every entry is finite; else how many are not, and the first one with its index."""
    bad = np.argwhere(~np.isfinite(value))
    if not len(bad):
        return None
    first = tuple(int(i) for i in bad[0])
    return f"{name!r} has non-finite values ({len(bad)} of {value.size}; first {value[first]} at {list(first)})"


def infer_hidden(shapes: dict) -> int:
    """The hidden width H that most of w1, b1, w2 agree on, so that a shape check names the one tensor that is off
    rather than the ones that are right. shapes: JAX name -> shape tuple. Each votes with its size (H for (1, H),
    (H,) and (H, 1) alike), so a weight saved transposed, in torch's (out, in) layout, still votes for the right H
    and is the one named."""
    votes = [math.prod(shapes[name]) for name in ("w1", "b1", "w2") if name in shapes and len(shapes[name]) > 0]
    return max(votes, key=votes.count) if votes else -1


def shape_problem(name: str, got: tuple, want: tuple) -> str | None:
    """None if got == want; else what is wrong, saying so when the tensor looks transposed (a 2-D weight whose
    reversed shape is the expected one: torch's nn.Linear keeps (out, in), the port (in, out))."""
    got, want = tuple(got), tuple(want)
    if got == want:
        return None
    transposed = len(want) == 2 and got == want[::-1]
    return (f"tensor {name!r} has shape {got}, expected {want}"
            + ("; it looks transposed: torch stores Linear weights as (out, in), the port's .npz as (in, out)"
               if transposed else ""))


def load_params(path, hidden: int | None = None) -> dict[str, np.ndarray]:
    """w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,) from an .npz; H from infer_hidden unless given.

    InputError names the tensor whose shape is off."""
    params = load_npz(path, PARAM_NAMES)
    if hidden is None:
        hidden = infer_hidden({k: v.shape for k, v in params.items()})
    want = param_shapes(hidden)
    for name in PARAM_NAMES:
        if problem := shape_problem(name, params[name].shape, want[name]):
            raise InputError(f"{path}: {problem}")
    return params
