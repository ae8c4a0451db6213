"""An optimizer's state in torch's vocabulary: the optax state of make_optimizer(spec) <-> torch.optim's per-parameter
state fields ("exp_avg", "exp_avg_sq", "momentum_buffer", ...), so that a run stopped in one framework continues in the
other (jax_impl/files/state_file.py keeps it; torch_impl/twin/optimizer_state.py is torch's side).

    slots = torch_slots("adam", opt_state)        # {"exp_avg": {"w1": (1, H), ...}, "exp_avg_sq": {...}}
    opt_state = optax_state("adam", tx.init(params), slots, step=50)

Slots are keyed by torch's field name, then by the port's parameter name, in the port's layout (w1 (1, H), ...).
Each optax NamedTuple of the parity table's rows maps its fields to torch's (FIELDS); its step count, where it keeps
one, is torch's 'step' (torch counts the updates taken, optax's count the same). NAdam's running product of the
momentum schedule is one float32 scalar here and one float32 scalar per parameter in torch (all equal): its slot
holds it once per parameter, shape (). Pure functions; jax only.
"""

import jax
import jax.numpy as jnp
import optax

from jax_impl.core import torch_optim
from jax_impl.core.optimizers import parse_spec

# optax state type -> {its field: torch's state field}; count fields map to the step, mu_product to torch's per
# parameter scalar. torch 2.13's names: torch/optim/<name>.py, `state[...]` in `_init_group`.
FIELDS = {
    optax.ScaleByAdamState: {"mu": "exp_avg", "nu": "exp_avg_sq"},  # Adam, AdamW; Adamax below
    torch_optim.AmsgradState: {"mu": "exp_avg", "nu": "exp_avg_sq", "nu_max": "max_exp_avg_sq"},
    optax.TraceState: {"trace": "momentum_buffer"},  # SGD's momentum, RMSprop's
    torch_optim.DampenedMomentumState: {"buffer": "momentum_buffer"},
    optax.ScaleByRmsState: {"nu": "square_avg"},
    optax.ScaleByRStdDevState: {"mu": "grad_avg", "nu": "square_avg"},
    torch_optim.AdagradState: {"sum_of_squares": "sum"},
    torch_optim.NadamState: {"mu": "exp_avg", "nu": "exp_avg_sq", "mu_product": "mu_product"},
}
ADAMAX_FIELDS = {"mu": "exp_avg", "nu": "exp_inf"}  # optax.scale_by_adamax keeps a ScaleByAdamState
COUNT = "count"  # the optax field that counts the updates: torch's 'step'
SCALARS = ("mu_product",)  # torch fields that are one scalar per parameter


def _fields(name: str, state) -> dict[str, str] | None:
    kind = type(state)
    if name == "adamax" and kind is optax.ScaleByAdamState:
        return ADAMAX_FIELDS
    return FIELDS.get(kind)


def _parts(name: str, state):
    """The NamedTuples of a (chained) optax state that hold something, with their torch fields. ValueError for a
    state this table does not know."""
    fields = _fields(name, state)
    if fields is not None:
        return [(state, fields)]
    named = hasattr(state, "_fields")
    if isinstance(state, tuple) and named and not state._fields:  # EmptyState, ScaleState, ...: nothing kept
        return []
    if isinstance(state, tuple) and not named:  # a chain
        return [part for sub in state for part in _parts(name, sub)]
    raise ValueError(f"optimizer state {type(state).__name__} is not in the table (jax_impl/core/optimizer_state.py)")


def slot_names(spec: str, opt_state) -> list[str]:
    """torch's state fields that optimizer `spec` keeps, in order (its opt_state from make_optimizer(spec).init)."""
    name = parse_spec(spec)[0]
    return [torch for _, fields in _parts(name, opt_state) for torch in fields.values()]


def torch_slots(spec: str, opt_state) -> dict[str, dict]:
    """optax state of make_optimizer(spec) -> {torch field: {param name: array}} (port layout; mu_product as a ()
    float32 per parameter). The count is not here: it is the step the caller keeps."""
    name = parse_spec(spec)[0]
    slots = {}
    for state, fields in _parts(name, opt_state):
        for field, torch in fields.items():
            value = getattr(state, field)
            if torch in SCALARS:  # one value for the run; torch keeps it per parameter
                value = dict.fromkeys(next(v for v in state if isinstance(v, dict)), value)
            slots[torch] = dict(value)
    return slots


def optax_state(spec: str, init_state, slots: dict, step: int):
    """The optax state of make_optimizer(spec) after `step` updates: `init_state` (its init(params), which gives the
    structure, shapes and dtypes) with torch's fields from `slots` ({field: {param name: array}}, port layout) and
    every count set to `step`. ValueError naming a missing or unexpected field, a shape that does not fit, or a
    mu_product that differs between parameters."""
    name = parse_spec(spec)[0]
    parts = _parts(name, init_state)
    expected = [torch for _, fields in parts for torch in fields.values()]
    if sorted(slots) != sorted(expected):
        raise ValueError(f"{spec} keeps {', '.join(expected) or 'no state'}; the state holds "
                         f"{', '.join(sorted(slots)) or 'none'}")
    replaced = {}
    for state, fields in parts:
        new = {}
        for field, torch in fields.items():
            old, given = getattr(state, field), slots[torch]
            if torch in SCALARS:
                values = {float(v) for v in given.values()}
                if len(values) != 1:
                    raise ValueError(f"{torch} differs between parameters: {sorted(values)}")
                new[field] = jnp.asarray(values.pop(), old.dtype)
                continue
            if sorted(given) != sorted(old):
                raise ValueError(f"{torch} holds {sorted(given)}, expected {sorted(old)}")
            for k in old:
                if tuple(jnp.shape(given[k])) != tuple(old[k].shape):
                    raise ValueError(f"{torch} of {k} has shape {tuple(jnp.shape(given[k]))}, expected "
                                     f"{tuple(old[k].shape)}")
            new[field] = {k: jnp.asarray(given[k], old[k].dtype) for k in old}
        if COUNT in state._fields:
            new[COUNT] = jnp.asarray(step, state.count.dtype)
        replaced[id(state)] = state._replace(**new)
    return _rebuilt(init_state, replaced)


def _rebuilt(state, replaced: dict):
    if id(state) in replaced:
        return replaced[id(state)]
    if isinstance(state, tuple) and not hasattr(state, "_fields"):
        return tuple(_rebuilt(sub, replaced) for sub in state)
    return state


def counts(opt_state) -> list[int]:
    """Every step count in an optax state (the `count` fields): a check that a state is at the step it claims."""
    leaves = jax.tree_util.tree_leaves_with_path(opt_state)
    return [int(v) for path, v in leaves if getattr(path[-1], "name", None) == COUNT]
