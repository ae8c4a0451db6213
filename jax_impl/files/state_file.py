"""A run's training state in one safetensors file: the parameters, the optimizer's state and the step count, in
torch's vocabulary, so that either framework continues a run the other stopped (--save-state / --resume).

Tensors (torch's names and layout, as a Net(1, H, 1) state_dict and torch.optim's state_dict()['state'] hold them):
    linear1.weight (H, 1), linear1.bias (H,), linear2.weight (1, H), linear2.bias (1,)    the parameters
    state.<param>.<field>   each parameter's optimizer state: exp_avg, exp_avg_sq, max_exp_avg_sq, momentum_buffer,
                            square_avg, grad_avg, sum, exp_inf (the parameter's shape), mu_product (a float32 ())
    step                    int64 (): the updates taken (torch's per-parameter 'step', optax's count)
    losses                  (step,): the loss before each update taken, so that a resumed run's log is whole
Metadata (strings): format and version, framework ('jax' or 'torch': which wrote it), optimizer (the spec), dtype
('float32' or 'float64'), experiment (JSON: every flag that changes a result, jax_impl/app/resume.py).

No jax and no torch: safetensors' numpy API. Written atomically with the user's umask (params_io.atomic_path); read()
raises InputError, one line, for a file that is not such a state file or does not hold what it says.
"""

import json
from typing import NamedTuple

import numpy as np

from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files.params_io import InputError, atomic_path, nonfinite_problem, refuse_folder
from jax_impl.files.weights import JAX_TO_TORCH, from_layout, to_layout

FORMAT = "jax-notebook-port training state"
VERSION = "1"
FRAMEWORKS = ("jax", "torch")
DTYPES = ("float32", "float64")
SCALAR_DTYPE = "float32"  # mu_product: torch keeps it in float32 (its default dtype) in a float64 run too
PREFIX = "state."
# The optimizer state fields that are sums or maxima of squares or magnitudes: never negative in a run (torch's and
# optax's updates divide by their square roots, so a negative entry turns the first step's update into NaN)
NON_NEGATIVE = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "exp_inf")


class TrainingState(NamedTuple):
    """What a state file holds. params and slots in the port's names and layout (numpy)."""

    params: dict  # w1 (1, H), b1 (H,), w2 (H, 1), b2 (1,)
    slots: dict  # {torch field: {param name: array}} (jax_impl/core/optimizer_state.py)
    step: int  # updates taken
    losses: np.ndarray  # (step,)
    optimizer: str  # the spec
    dtype: str  # 'float32' or 'float64'
    framework: str  # which wrote it
    experiment: dict  # every flag that changes a result


def _torch_name(name: str) -> tuple[str, bool]:
    return JAX_TO_TORCH[name]


def write(path, state: TrainingState) -> None:
    """`state` as a safetensors file at `path`, whole or not at all. InputError for a folder that cannot be written."""
    from safetensors.numpy import save_file

    tensors = dict(to_layout({k: np.asarray(v) for k, v in state.params.items()}, "torch"))
    for field, values in state.slots.items():
        for name in PARAM_NAMES:
            torch_name, transposed = _torch_name(name)
            value = np.asarray(values[name])
            tensors[f"{PREFIX}{torch_name}.{field}"] = np.array(value.T if transposed else value, order="C")
    tensors["step"] = np.asarray(state.step, np.int64)
    tensors["losses"] = np.ascontiguousarray(state.losses)
    metadata = {"format": FORMAT, "version": VERSION, "framework": state.framework, "optimizer": state.optimizer,
                "dtype": state.dtype, "experiment": json.dumps(state.experiment, sort_keys=True)}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def read(path) -> TrainingState:
    """The TrainingState in a file write() wrote. InputError, one line naming the problem: no such file, a folder,
    not a safetensors file, not a state file (its format tag), another version, damaged metadata (a value of the
    wrong kind), a missing or unexpected tensor, a shape or dtype that does not fit, a non-finite value, a negative
    entry in a second moment (NON_NEGATIVE), a step that disagrees with its losses."""
    import ml_dtypes  # noqa: F401  registers bfloat16, which safetensors' numpy API looks up by name
    from safetensors import safe_open

    where = f"{path}: "
    refuse_folder(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise InputError(f"{where}no such file") from None
    except Exception as e:  # safetensors' SafetensorError, an OSError: not a safetensors file, or a damaged one
        raise InputError(f"{where}not a state file (safetensors cannot read it: {str(e).splitlines()[0]})") from None
    if metadata.get("format") != FORMAT:
        raise InputError(f"{where}not a state file (--save-state writes one; weights go to --init)")
    if metadata.get("version") != VERSION:
        raise InputError(f"{where}state file version {metadata.get('version')!r}, this program reads {VERSION!r}")
    framework, dtype, optimizer = metadata.get("framework"), metadata.get("dtype"), metadata.get("optimizer")
    if framework not in FRAMEWORKS or dtype not in DTYPES or not optimizer:
        raise InputError(f"{where}damaged metadata (framework {framework!r}, dtype {dtype!r}, optimizer "
                         f"{optimizer!r})")
    try:
        experiment = json.loads(metadata.get("experiment", ""))
    except ValueError:
        raise InputError(f"{where}damaged metadata (experiment is not JSON)") from None
    if not isinstance(experiment, dict):  # write() writes the flags as a JSON object; resume.check looks them up
        raise InputError(f"{where}damaged metadata (experiment is {_json_kind(experiment)}, not a JSON object of "
                         "flags)")
    for key in ("step", "losses"):
        if key not in tensors:
            raise InputError(f"{where}missing tensor {key!r}")
    step_array, losses = tensors.pop("step"), tensors.pop("losses")
    if step_array.shape != () or step_array.dtype != np.int64 or int(step_array) < 1:
        raise InputError(f"{where}'step' must be an int64 () of at least 1, not {step_array.dtype} "
                         f"{step_array.shape} {step_array}")
    step = int(step_array)
    if losses.shape != (step,) or losses.dtype.name != dtype:
        raise InputError(f"{where}'losses' is {losses.dtype} {losses.shape}, expected {dtype} ({step},)")
    params = from_layout({k: v for k, v in tensors.items() if not k.startswith(PREFIX)}, "torch", where=where)
    slots: dict = {}
    for key, value in tensors.items():
        if not key.startswith(PREFIX):
            continue
        parts = key[len(PREFIX):].rsplit(".", 1)
        names = {_torch_name(n)[0]: n for n in PARAM_NAMES}
        if len(parts) != 2 or parts[0] not in names:
            raise InputError(f"{where}unexpected tensor {key!r}")
        name, field = names[parts[0]], parts[1]
        transposed = _torch_name(name)[1]
        want_shape = () if field == "mu_product" else params[name].shape[::-1] if transposed else params[name].shape
        want_dtype = SCALAR_DTYPE if field == "mu_product" else dtype
        if value.shape != want_shape or value.dtype.name != want_dtype:
            raise InputError(f"{where}{key!r} is {value.dtype} {value.shape}, expected {want_dtype} {want_shape}")
        slots.setdefault(field, {})[name] = value.T if transposed else value
    for field, values in slots.items():
        if len(values) != len(PARAM_NAMES):
            raise InputError(f"{where}{field!r} is kept for {sorted(values)} only, not every parameter")
    for name, value in [*params.items(), *((f"{f}.{n}", v) for f, d in slots.items() for n, v in d.items()),
                        ("losses", losses)]:
        if value.dtype.name != (SCALAR_DTYPE if name.startswith("mu_product") else dtype):
            raise InputError(f"{where}{name!r} is {value.dtype}, the file says {dtype}")
        if problem := nonfinite_problem(name, value):
            raise InputError(f"{where}{problem}")
    for field in NON_NEGATIVE:
        for name, value in slots.get(field, {}).items():
            if problem := negative_problem(f"{field}.{name}", value):
                raise InputError(f"{where}damaged: {problem}")
    return TrainingState(params, slots, step, losses, optimizer, dtype, framework, experiment)


def negative_problem(name: str, value: np.ndarray) -> str | None:
    """None if no entry is negative; else how many are, and the first one with its index (nonfinite_problem's
    words)."""
    bad = np.argwhere(value < 0)
    if not len(bad):
        return None
    first = tuple(int(i) for i in bad[0])
    return (f"{name!r} has negative values ({len(bad)} of {value.size}; first {value[first]} at {list(first)}), "
            "where the optimizer keeps squares")


def _json_kind(value) -> str:
    """What a parsed JSON value is, in JSON's words (an array, null, ...)."""
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
