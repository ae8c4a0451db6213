"""A recorded training run as one safetensors file (docs/records.md): one tensor per quantity with the step as its
leading axis, and in the metadata the experiment, the framework and its versions, the precision and the CPU.
numpy and safetensors only: JAX's and torch's recorders (jax_impl/core/record.py, torch_impl/twin/record.py) and the
localizer (torch_impl/checks/diverge.py) all read and write through here."""

import json
import os
import pathlib
from typing import NamedTuple

import numpy as np

from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files.params_io import (
    InputError,
    atomic_path,
    give_umask_mode,
    nonfinite_problem,
    refuse_folder,
    signals_held,
    temporary_beside,
)

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
    with atomic_path(path) as tmp:
        _save(tmp, record)


def _save(path, record: Record) -> None:
    from safetensors.numpy import save_file

    meta = {k: json.dumps(v) if isinstance(v, dict | int) else str(v) for k, v in record.metadata.items()}
    save_file(record.tensors, path, metadata=meta)


def write_together(items) -> None:
    """Each (path, record) of `items` written whole, or none of them, and nothing already there lost: a pair of
    records (compare.py) is never left half written. Every record goes to a temporary beside its path first; then,
    path by path, an older file there is moved aside and the new one moved in. If a move fails, the files this call
    moved in come out again and the older files go back. InputError (one line) when a temporary cannot be made or a
    move fails. Ctrl-C and SIGTERM are held while the files move (they act just after), so the undo runs whole."""
    temporaries, moved = [], []  # every temporary made; (path, where its older file went, or None)
    try:
        staged = []
        for path, record in items:
            temporaries.append(temporary_beside(path))
            staged.append((pathlib.Path(path), temporaries[-1]))
            _save(temporaries[-1], record)
            give_umask_mode(temporaries[-1])
        with signals_held():
            try:
                for path, tmp in staged:
                    aside = None
                    if os.path.lexists(path):
                        aside = temporary_beside(path)
                        temporaries.append(aside)
                        os.replace(path, aside)  # a folder in the way fails here, before anything of it moves
                    moved.append((path, aside))
                    os.replace(tmp, path)
            except BaseException as e:
                # the new files out, the older ones back in (a failed rename changed nothing)
                for done, aside in reversed(moved):
                    if aside is None:
                        done.unlink(missing_ok=True)
                    else:
                        os.replace(aside, done)
                if isinstance(e, OSError):
                    raise InputError(f"cannot write {path}: {e.strerror or e}") from None
                raise
    finally:
        for tmp in temporaries:  # what is left: the older files once every new one is in, else unused names
            pathlib.Path(tmp).unlink(missing_ok=True)


def read(path) -> Record:
    """A record file, checked: InputError (one line naming the file) for a folder, a missing file, not a safetensors
    file, not a record, a missing quantity, and for what no writer of the project writes (record_problem): metadata of
    the wrong type or an unknown precision, no steps, steps that do not go 0, K, 2K, ..., arrays of the wrong dtype or
    shape, non-finite data, a non-finite loss whose residuals are finite."""
    from safetensors import SafetensorError, safe_open

    refuse_folder(path, "a record file")  # before Path(), which makes "" the current folder, "."
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
    problem = record_problem(record)
    if problem:
        raise InputError(f"{path}: {problem}")
    return record


PRECISIONS = ("float32", "float64")
INTEGERS = ("step", "adam.count")  # whole numbers (int64 as written); every other quantity is in the run's precision


def record_problem(record: Record) -> str | None:
    """What in a record no writer of the project writes, as one phrase, or None: checked in the order the later checks
    rely on (metadata types, dtypes, shapes, steps, values), so that each reads only what the one before proved."""
    return (metadata_problem(record.metadata) or dtype_problem(record) or shape_problem(record)
            or step_problem(record) or value_problem(record))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metadata_problem(meta: dict) -> str | None:
    """The metadata the localizer reads, of the types the writer gives them (make): experiment a JSON object with a
    positive lr, versions a JSON object, every a positive whole number, precision float32 or float64."""
    experiment, versions, every = meta["experiment"], meta["versions"], meta["every"]
    if not isinstance(experiment, dict):
        return f"metadata experiment is {json.dumps(experiment)}, expected a JSON object of the run's flags"
    lr = experiment.get("lr")
    if not (_is_number(lr) and np.isfinite(lr) and lr > 0):
        return f"metadata experiment's lr is {json.dumps(lr)}, expected a positive number"
    if not isinstance(versions, dict):
        return f"metadata versions is {json.dumps(versions)}, expected a JSON object of package versions"
    if not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
        return f"metadata every is {json.dumps(every)}, expected a positive whole number (--record-every)"
    if meta["precision"] not in PRECISIONS:
        return f"metadata precision {meta['precision']!r}, expected {' or '.join(PRECISIONS)}"
    return None


def dtype_problem(record: Record) -> str | None:
    """step and adam.count whole numbers; every other array in the record's precision, as both recorders write them
    (an int32 loss or a float64 tensor in a float32 record is not a run's)."""
    precision = record.metadata["precision"]
    for name in TENSORS:
        dtype = record.tensors[name].dtype
        if name in INTEGERS:
            if dtype.kind not in "iu":
                return f"{name} has dtype {dtype}, expected whole numbers (int64)"
        elif dtype != np.dtype(precision):
            return f"{name} has dtype {dtype}, expected {precision} (the record's precision)"
    return None


def _per_step_shapes(hidden: int, points: int) -> dict:
    """Each quantity's shape at one step (docs/records.md), the data's as a whole."""
    params = {"w1": (1, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
    shapes = {"data.x": (points, 1), "data.y": (points, 1), "forward.pre_activation": (points, hidden),
              "forward.hidden": (points, hidden), "forward.output": (points, 1), "forward.residual": (points, 1),
              "loss": (), "adam.count": ()}
    for family in PER_PARAM:
        shapes |= {f"{family}.{p}": shape for p, shape in params.items()}
    return shapes


def shape_problem(record: Record) -> str | None:
    """What does not fit in one record (no steps, a quantity without the common step axis, parameters of two widths,
    no points or no hidden units), or None."""
    t = record.tensors
    if t["step"].ndim != 1:
        return f"step has shape {t['step'].shape}, expected (steps,)"
    steps = t["step"].shape[0]
    if steps == 0:
        return "it holds no steps"
    bad = [k for k in STEP_ORDER if not k.startswith("data.") and (t[k].ndim < 1 or t[k].shape[0] != steps)]
    if bad:
        return f"{', '.join(bad)} do not have the {steps} recorded steps as their leading axis"
    for name, rank in (("data.x", 2), ("params.b1", 2)):  # where the points and the width are read
        if t[name].ndim != rank:
            return f"{name} has shape {t[name].shape}, expected {rank} axes"
    hidden, points = t["params.b1"].shape[1], t["data.x"].shape[0]
    if hidden == 0 or points == 0:
        return f"it holds {points} points and width {hidden}: a run has at least one of each"
    for name, shape in _per_step_shapes(hidden, points).items():
        got = t[name].shape if name.startswith("data.") else t[name].shape[1:]
        if tuple(got) != shape:
            return f"{name} has shape {tuple(got)}, expected {shape} (width {hidden}, {points} points)"
    return None


def step_problem(record: Record) -> str | None:
    """The kept steps are 0, K, 2K, ... for the record's every K (recorded_run's arange(0, steps, K))."""
    steps, every = record.tensors["step"], record.metadata["every"]
    if np.array_equal(steps, every * np.arange(len(steps))):
        return None
    shown = ", ".join(map(str, steps[:4].tolist())) + (", ..." if len(steps) > 4 else "")
    return f"its steps {shown} do not go 0, {every}, {2 * every}, ... (every {every}, as its metadata says)"


def value_problem(record: Record) -> str | None:
    """Non-finite values where no run writes them. The data are always finite. Elsewhere a run that diverged writes
    inf and NaN (compare.py records both runs whatever happens), so they are refused only where the record itself
    proves them damaged: a loss is the mean square of its step's residuals, so a NaN or inf loss needs a non-finite
    residual, or magnitudes whose squares' sum can overflow the precision (|hidden| |w2| + |b2| + |y| over the points:
    any order of the sums stays below that)."""
    t = record.tensors
    for name in ("data.x", "data.y"):
        if problem := nonfinite_problem(name, t[name]):
            return problem
    residual = np.asarray(t["forward.residual"], np.float64)
    suspect = ~np.isfinite(t["loss"]) & np.isfinite(residual).all(axis=(1, 2))
    for i in np.flatnonzero(suspect):
        w2, b2 = (np.asarray(t[f"params.{p}"][i], np.float64) for p in ("w2", "b2"))
        with np.errstate(over="ignore", invalid="ignore"):
            size = np.abs(np.asarray(t["forward.hidden"][i], np.float64)) @ np.abs(w2) + np.abs(b2) \
                + np.abs(np.asarray(t["data.y"], np.float64))
            room = np.sum(size**2) < np.finfo(t["loss"].dtype).max / 4
        if room:  # False for a NaN or inf size: nothing then proves the loss wrong
            return (f"loss at step {int(t['step'][i])} is {t['loss'][i]}, but its residuals are finite and far from "
                    f"overflowing (largest {np.max(np.abs(residual[i])):.3g}): not what a run writes")
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
