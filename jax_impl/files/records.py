"""A recorded training run as one safetensors file (docs/records.md): one tensor per quantity with the step as its
leading axis, and in the metadata the experiment, the framework and its versions, the precision and the CPU.
numpy and safetensors only: JAX's and torch's recorders (jax_impl/core/record.py, torch_impl/twin/record.py) and the
localizer (torch_impl/checks/diverge.py) all read and write through here."""

import json
import pathlib
from typing import NamedTuple

import numpy as np

from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files.params_io import InputError, atomic_path

FORMAT = "jax-notebook-port record 1"
# The quantities of one step in computation order: the order the localizer walks them in (docs/records.md).
PER_PARAM = ("params", "grads", "adam.mu", "adam.nu", "update")
STEP_ORDER = (["data.x", "data.y"] + [f"params.{p}" for p in PARAM_NAMES]
              + ["forward.pre_activation", "forward.hidden", "forward.output", "forward.residual", "loss"]
              + [f"grads.{p}" for p in PARAM_NAMES] + ["adam.count"]
              + [f"adam.{m}.{p}" for m in ("mu", "nu") for p in PARAM_NAMES] + [f"update.{p}" for p in PARAM_NAMES])
TENSORS = ("step", *STEP_ORDER)
# Metadata keys; "experiment" is a JSON object of every flag that changes a result (two records of one experiment
# have equal ones), "every" the --record-every K.
METADATA = ("format", "experiment", "every", "framework", "implementation", "versions", "precision", "cpu")


class Record(NamedTuple):
    tensors: dict  # name -> numpy array, the step as the leading axis except data.x, data.y (N, 1)
    metadata: dict  # METADATA's keys; experiment and versions as dicts, every an int


def make(tensors: dict, *, experiment: dict, every: int, framework: str, implementation: str, versions: dict,
         precision: str, cpu: str) -> Record:
    """A Record from a recorder's arrays (any array type numpy takes); ValueError if a quantity is missing."""
    missing = [k for k in TENSORS if k not in tensors]
    if missing:
        raise ValueError(f"a record needs {', '.join(missing)}")
    arrays = {k: np.ascontiguousarray(np.asarray(tensors[k])) for k in TENSORS}
    arrays["step"] = arrays["step"].astype(np.int64)  # JAX's arange is int32 without x64, torch's int64
    arrays["adam.count"] = arrays["adam.count"].astype(np.int64)
    return Record(arrays, {"format": FORMAT, "experiment": experiment, "every": int(every), "framework": framework,
                           "implementation": implementation, "versions": versions, "precision": precision, "cpu": cpu})


def write(path, record: Record) -> None:
    """The record at `path` (safetensors), written whole or not at all (params_io.atomic_path)."""
    from safetensors.numpy import save_file

    meta = {k: json.dumps(v) if isinstance(v, dict | int) else str(v) for k, v in record.metadata.items()}
    with atomic_path(path) as tmp:
        save_file(record.tensors, tmp, metadata=meta)


def read(path) -> Record:
    """A record file, checked: InputError (one line) for a missing file, not a safetensors file, not a record, a
    missing quantity, or quantities whose steps or shapes do not fit together."""
    from safetensors import SafetensorError, safe_open

    path = pathlib.Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: not a training record (no '{FORMAT}' in its metadata)")
    missing = [k for k in TENSORS if k not in tensors] + [f"metadata {k}" for k in METADATA if k not in meta]
    if missing:
        raise InputError(f"{path}: an incomplete record, without {', '.join(missing)}")
    try:
        metadata = {k: json.loads(v) if k in ("experiment", "versions", "every") else v for k, v in meta.items()}
    except json.JSONDecodeError:
        raise InputError(f"{path}: the record's metadata is not valid JSON") from None
    record = Record(tensors, metadata)
    problem = shape_problem(record)
    if problem:
        raise InputError(f"{path}: {problem}")
    return record


def shape_problem(record: Record) -> str | None:
    """What does not fit in one record (a quantity without the common step axis, parameters of two widths), or None."""
    t = record.tensors
    steps = t["step"].shape[0]
    bad = [k for k in STEP_ORDER if not k.startswith("data.") and (t[k].ndim < 1 or t[k].shape[0] != steps)]
    if bad:
        return f"{', '.join(bad)} do not have the {steps} recorded steps as their leading axis"
    hidden, points = t["params.b1"].shape[1], t["data.x"].shape[0]
    expected = {"params.w1": (1, hidden), "params.w2": (hidden, 1), "params.b2": (1,), "data.y": (points, 1),
                "forward.pre_activation": (points, hidden), "forward.hidden": (points, hidden)}
    for name, shape in expected.items():
        got = t[name].shape if name.startswith("data.") else t[name].shape[1:]
        if tuple(got) != shape:
            return f"{name} has shape {tuple(got)}, expected {shape} (width {hidden}, {points} points)"
    return None


def mismatch(a: Record, b: Record) -> str | None:
    """What makes two records incomparable, as one phrase (different experiments, kept steps or shapes), or None."""
    ea, eb = a.metadata["experiment"], b.metadata["experiment"]
    differ = sorted(k for k in ea.keys() | eb.keys() if ea.get(k) != eb.get(k))
    if differ:
        return "different experiments: " + ", ".join(f"{k} {ea.get(k)!r} vs {eb.get(k)!r}" for k in differ)
    if a.metadata["every"] != b.metadata["every"] or not np.array_equal(a.tensors["step"], b.tensors["step"]):
        return (f"different steps kept: {len(a.tensors['step'])} every {a.metadata['every']} vs "
                f"{len(b.tensors['step'])} every {b.metadata['every']}")
    for k in TENSORS:
        if a.tensors[k].shape != b.tensors[k].shape:
            return f"different shapes: {k} {a.tensors[k].shape} vs {b.tensors[k].shape}"
    return None
