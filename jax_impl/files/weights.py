"""Weight files in and out, strictly: torch checkpoints, safetensors and the port's .npz. No jax and no torch here,
for any format: torch.save's format is read and written by jax_impl/files/torch_file.py.

Formats, by suffix:
    .pt, .pth     torch.save of a state_dict: torch's names and layout, linear1.weight (H, 1), linear1.bias (H,),
                  linear2.weight (1, H), linear2.bias (1,). Read as torch.load(..., weights_only=True) reads it:
                  tensors and plain containers only, anything else refused without running it (torch_file.py);
                  written so that torch.load(..., weights_only=True) reads it back bit for bit.
    .safetensors  torch's names and layout, metadata {"format": "pt"}; through safetensors' numpy API, without torch.
    .npz          the port's names and layout, w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,); no pickle.

read() refuses with one line (InputError) naming the problem: an unknown suffix, unexpected keys (listed), missing
keys (with what was found), a width of 0, a shape that does not fit Net(1, H, 1) (the tensor named, and said to
look transposed where it does), a dtype other than float16, bfloat16, float32 and float64, non-finite values; in a torch
checkpoint also a pickled global other than a tensor's (named), a meta, sparse, quantized or nested tensor (named), a
file of the format before torch 1.6, a damaged file. Where the intent is clear and nothing is lost it reads on and
says what it did in a one-line note: a checkpoint dict holding the state_dict under 'state_dict', 'model_state_dict' or
'model'; the 'module.' prefix of DataParallel/DDP; float16 and bfloat16 (every value is a float32: widened exactly);
float64 asked for as float32 (rounded, and the note says by how much).

Every format ends in the same checks, which are numpy and belong here; each reader only turns its file into arrays.
"""

import pathlib
from collections.abc import Mapping

import numpy as np

from jax_impl.core.layout import PARAM_NAMES, param_shapes
from jax_impl.files import params_io, torch_file
from jax_impl.files.params_io import (
    InputError,
    atomic_path,
    infer_hidden,
    load_npz,
    nonfinite_problem,
    save_npz,
    shape_problem,
)

# JAX name -> (torch name, whether the tensor is transposed between the two layouts). The port keeps the validation
# cell's layout (x @ w1 + b1); torch.nn.Linear keeps weight as (out, in) and computes x @ weight.T + bias.
JAX_TO_TORCH = {
    "w1": ("linear1.weight", True),  # (1, H)  <-> (H, 1)
    "b1": ("linear1.bias", False),  # (H,)
    "w2": ("linear2.weight", True),  # (H, 1)  <-> (1, H)
    "b2": ("linear2.bias", False),  # (1,)
}
# A layout: name in the file -> (the port's name, transposed from the port's layout)
LAYOUTS = {"port": {name: (name, False) for name in PARAM_NAMES},
           "torch": {torch_name: (name, transposed) for name, (torch_name, transposed) in JAX_TO_TORCH.items()}}
FORMATS = {".pt": "torch", ".pth": "torch", ".safetensors": "safetensors", ".npz": "npz"}  # suffix -> format
LAYOUT_OF = {"torch": "torch", "safetensors": "torch", "npz": "port"}  # format -> layout
LAYOUT_WORDS = {"torch": "torch's names and layout", "port": "the port's names and layout"}

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")  # where training scripts keep the state_dict
DDP_PREFIX = "module."  # what torch.nn.DataParallel and DistributedDataParallel put before every name
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")  # the dtypes read() accepts
SAFETENSORS_METADATA = {"format": "pt"}  # what safetensors.torch writes; transformers' loaders look for it


def refuse_folder(path) -> None:
    """InputError when `path` is a folder: where a weights file is read, that names the mistake (a missing file's
    "no such file" or a suffix-less folder's "unknown weight format" would not: params_io.refuse_folder)."""
    params_io.refuse_folder(path, "a weights file")


def format_of(path) -> str:
    """'torch', 'safetensors' or 'npz' from the file's suffix; InputError for any other."""
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{path}: unknown weight format {suffix!r}: give a .pt/.pth (torch), .safetensors or .npz "
                         "file")
    return FORMATS[suffix]


def _listed(names) -> str:
    return ", ".join(repr(n) for n in names) or "nothing"


def _plural(word: str, items) -> str:
    return word + ("s" if len(items) > 1 else "")


def key_problem(found, layout: str) -> str | None:
    """None if `found` (names) are exactly the layout's four; else the unexpected keys and/or the missing ones with
    what was found, and a hint where the found names are the other layout's or carry a DataParallel prefix."""
    want = LAYOUTS[layout]
    found = list(found)
    unexpected = [k for k in found if k not in want]
    missing = [k for k in want if k not in found]
    other = "port" if layout == "torch" else "torch"
    hint = ""
    if set(found) == set(LAYOUTS[other]):  # the other layout's names: a file of the other format, renamed
        unexpected = []  # all of them: the missing keys and what was found say it once
        hint = (": the port's names, which an .npz holds" if other == "port" else
                ": torch's names, which a .pt or .safetensors file holds") + "; scripts/convert_weights.py converts"
    elif {str(k).removeprefix(DDP_PREFIX) for k in found} == set(want):  # read() strips it; the in-memory API not
        unexpected = []
        hint = f": DataParallel/DDP's {DDP_PREFIX!r} prefix; take model.module.state_dict()"
    parts = []
    if unexpected:
        parts.append(f"unexpected {_plural('key', unexpected)} {_listed(unexpected)} (the notebook's Net has "
                     f"{_listed(want)})")
    if missing:
        parts.append(f"missing {_plural('key', missing)} {_listed(missing)} (found {_listed(found)}{hint})")
    return "; ".join(parts) or None


def check_layout(arrays: Mapping, layout: str, hidden: int | None = None, where: str = "") -> int:
    """Raise InputError (where + one line) unless `arrays` hold exactly the layout's four names with Net(1, H, 1)'s
    shapes in that layout; H from infer_hidden unless given. Returns H."""
    names = LAYOUTS[layout]
    if problem := key_problem(arrays, layout):
        raise InputError(where + problem)
    if hidden is None:
        hidden = infer_hidden({names[k][0]: np.shape(v) for k, v in arrays.items()})
    if hidden == 0:  # (1, 0), (0,), (0, 1), (1,) fit each other's shapes, but a network with no hidden unit is none
        raise InputError(f"{where}a network of width 0: Net(1, H, 1) needs a hidden width H of at least 1")
    want = param_shapes(hidden)
    for file_name, (name, transposed) in names.items():
        if problem := shape_problem(file_name, np.shape(arrays[file_name]),
                                    want[name][::-1] if transposed else want[name]):
            raise InputError(where + problem)
    return hidden


def _relaid(arrays: Mapping, layout: str) -> dict[str, np.ndarray]:
    """The layout's arrays as the port's params: renamed, transposed where the layouts differ, C-contiguous copies."""
    port = {name: np.array(np.asarray(arrays[f]).T if t else arrays[f], order="C")
            for f, (name, t) in LAYOUTS[layout].items()}
    return {name: port[name] for name in PARAM_NAMES}


def from_layout(arrays: Mapping, layout: str, hidden: int | None = None, where: str = "") -> dict[str, np.ndarray]:
    """Arrays named and laid out as `layout` ('torch' or 'port') -> the port's params w1 (1, H), b1 (H,), w2 (H, 1),
    b2 (1,), copies in the same dtypes. InputError: unexpected or missing keys, a shape that does not fit."""
    check_layout(arrays, layout, hidden, where)
    return _relaid(arrays, layout)


def to_layout(params: Mapping, layout: str, hidden: int | None = None, where: str = "") -> dict[str, np.ndarray]:
    """The port's params -> arrays named and laid out as `layout`, C-contiguous copies in the same dtypes.
    InputError as from_layout's."""
    params = from_layout(params, "port", hidden, where)
    return {f: np.ascontiguousarray(params[name].T if t else params[name]) for f, (name, t) in LAYOUTS[layout].items()}


# ---- reading ---------------------------------------------------------------------------------------------------
# Each reader returns {name: array} as stored; a tensor of a dtype numpy lacks (torch's complex32, a float8 where the
# safetensors installed knows none) comes back as its dtype's name, a str, so that the key check still speaks first
# and the dtype check then names it.

def _state_dict_of(obj, is_tensor, notes: list, where: str) -> Mapping:
    """The state_dict in what torch_file.load read: the dict of tensors itself, or a checkpoint dict's one under a
    CHECKPOINT_KEYS key (noted, with what else it held)."""
    if not isinstance(obj, Mapping):
        what = "one tensor" if is_tensor(obj) else f"a {type(obj).__name__}"  # not the reader's own type name
        raise InputError(f"{where}holds {what}, not a state_dict (a dict of tensors): save model.state_dict()")
    if all(is_tensor(v) for v in obj.values()):
        return obj
    holders = [k for k in CHECKPOINT_KEYS if isinstance(obj.get(k), Mapping)]
    if len(holders) > 1:
        raise InputError(f"{where}a checkpoint dict with more than one state_dict ({_listed(holders)}): save the one "
                         "to use on its own")
    if not holders:
        bad = next(k for k, v in obj.items() if not is_tensor(v))
        raise InputError(f"{where}{bad!r} holds a {type(obj[bad]).__name__}, not a tensor: neither a state_dict nor "
                         f"a checkpoint dict with one under {_listed(CHECKPOINT_KEYS)}")
    key = holders[0]
    rest = [str(k) for k in obj if k != key]
    notes.append(f"read the state_dict under {key!r} of a checkpoint dict"
                 + (f" (left aside: {', '.join(rest)})" if rest else ""))
    inner = obj[key]
    if bad := next((k for k, v in inner.items() if not is_tensor(v)), None):
        raise InputError(f"{where}{key}[{bad!r}] holds a {type(inner[bad]).__name__}, not a tensor")
    return inner


def _read_torch(path, notes: list, where: str) -> dict:
    """The state_dict's tensors, each named where it is no dense tensor (meta, sparse, quantized)."""
    state = _state_dict_of(torch_file.load(path, where), torch_file.is_tensor, notes, where)
    for name, value in state.items():
        if isinstance(value, torch_file.Unreadable) and value.what:
            raise InputError(f"{where}{name!r} is {value.what}")
    return {name: value.dtype if isinstance(value, torch_file.Unreadable) else value for name, value in state.items()}


def _read_safetensors(path, notes: list, where: str) -> dict:
    import ml_dtypes  # noqa: F401  registers numpy's 'bfloat16', which safetensors' numpy API looks up by name
    import safetensors
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            arrays = {}
            for name in f.keys():
                try:
                    arrays[name] = f.get_tensor(name)
                except (TypeError, AttributeError, ValueError):  # a dtype numpy cannot hold (F8_E4M3, ...)
                    arrays[name] = f.get_slice(name).get_dtype()
            return arrays
    except Exception as e:  # safetensors' own SafetensorError, or an OSError: not its header and layout
        raise InputError(f"{where}not a safetensors file that safetensors {safetensors.__version__} reads "
                         f"({str(e).strip().splitlines()[0]})") from None


def _read_npz(path, notes: list, where: str) -> dict:
    return load_npz(path)


READERS = {"torch": _read_torch, "safetensors": _read_safetensors, "npz": _read_npz}


def _strip_ddp_prefix(arrays: dict, notes: list) -> dict:
    if arrays and all(isinstance(k, str) and k.startswith(DDP_PREFIX) for k in arrays):
        notes.append(f"stripped the {DDP_PREFIX!r} prefix of DataParallel/DDP from every name")
        return {k.removeprefix(DDP_PREFIX): v for k, v in arrays.items()}
    return arrays


def _dtype_name(value) -> str:
    return value if isinstance(value, str) else np.asarray(value).dtype.name


def _as_dtype(arrays: dict, dtype, where: str) -> tuple[dict, list[str]]:
    """Each array in `dtype` (None: float32 and float64 kept, float16 and bfloat16 widened to float32), with notes on
    what changed. InputError: a non-finite value, or one beyond float32's range when rounding to it."""
    out, changed = {}, {}
    for name, value in arrays.items():
        source = value.dtype.name
        wide = value.astype(np.float64 if source == "float64" else np.float32)  # float16/bfloat16: exact in float32
        if problem := nonfinite_problem(name, wide):
            raise InputError(where + problem)
        target = wide.dtype if dtype is None else np.dtype(dtype)
        with np.errstate(over="ignore"):
            out[name] = wide.astype(target)
        if not np.all(np.isfinite(out[name])):
            raise InputError(f"{where}{name!r} has values beyond {target.name}'s range (largest magnitude "
                             f"{np.abs(wide).max():.3g}): read it as float64 (--x64)")
        if source != target.name and not (source == "float32" and target.name == "float64"):
            changed.setdefault((source, target.name), []).append(np.abs(out[name].astype(wide.dtype) - wide).max())
    notes = []
    for (source, target), changes in changed.items():
        if source != "float64":
            notes.append(f"{source} read as {target} (exact: every {source} value is a {target})")
        elif max(changes) == 0:
            notes.append(f"float64 read as {target} (exact: every value is a {target}; --x64 keeps float64)")
        else:
            notes.append(f"float64 rounded to {target} (largest change {max(changes):.2g}; --x64 keeps float64)")
    return out, notes


def read(path, *, dtype=None, hidden: int | None = None) -> tuple[dict[str, np.ndarray], str | None]:
    """The port's params w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,) from a weight file in any of the three formats, and
    a one-line note of what was accepted on the way (None if nothing was).

    dtype: np.float32 or np.float64 for every tensor; None keeps float32 and float64 as stored (float16 and bfloat16
    become float32, exactly). hidden: the width H to check the shapes against; None takes the file's.
    InputError: one line, the file named first, then the problem (see the module's docstring)."""
    refuse_folder(path)  # before the suffix: a folder "dir.pt" or "bad" is neither missing nor of unknown format
    fmt = format_of(path)
    path = pathlib.Path(path)
    where = f"{path}: "
    if not path.is_file():
        raise InputError(f"{where}no such file")
    notes = []
    arrays = _strip_ddp_prefix(READERS[fmt](path, notes, where), notes)
    layout = LAYOUT_OF[fmt]
    if problem := key_problem(arrays, layout):
        raise InputError(where + problem)
    for name, value in arrays.items():  # before the shapes: a tensor numpy cannot hold has none to check
        if _dtype_name(value) not in FLOAT_DTYPES:
            raise InputError(f"{where}{name!r} has dtype {_dtype_name(value)}: weights must be "
                             f"{', '.join(FLOAT_DTYPES[:-1])} or {FLOAT_DTYPES[-1]}")
    check_layout(arrays, layout, hidden, where)
    arrays, dtype_notes = _as_dtype(arrays, dtype, where)
    return _relaid(arrays, layout), "; ".join(notes + dtype_notes) or None


# ---- writing ---------------------------------------------------------------------------------------------------

def write(path, params: Mapping) -> str:
    """The port's params (w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,); float arrays of any kind numpy accepts) -> a file
    in the format its suffix names, dtypes kept. Atomic: on any error no file is left at `path`, and an old one is as
    it was. Returns what was written, in words. InputError: an unknown suffix, bad params, an unwritable folder, a
    dtype a .pt/.pth cannot hold."""
    fmt = format_of(path)
    layout = LAYOUT_OF[fmt]
    arrays = to_layout({k: np.asarray(v) for k, v in params.items()}, layout)
    try:
        if fmt == "npz":
            save_npz(path, arrays)
        elif fmt == "safetensors":
            from safetensors.numpy import save_file

            with atomic_path(path) as tmp:
                save_file(arrays, tmp, metadata=SAFETENSORS_METADATA)
        else:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                torch_file.save(arrays, f, f"{path}: ")
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    dtypes = sorted({a.dtype.name for a in arrays.values()})
    return (f"{LAYOUT_WORDS[layout]}: " + ", ".join(f"{k} {a.shape}" for k, a in arrays.items())
            + f"; {'/'.join(dtypes)}" + (f"; metadata {SAFETENSORS_METADATA}" if fmt == "safetensors" else ""))
