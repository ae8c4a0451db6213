"""torch.optim's state <-> the slots of jax_impl/core/optimizer_state.py ({torch field: {param name: array}}, the port's
names and layout) and the step count: torch's side of a run that stops in one framework and resumes in the other.

The optimizer holds Net(1, H, 1)'s parameters in Net.parameters()'s order (linear1.weight, linear1.bias,
linear2.weight, linear2.bias: state_dict()['state'] keys 0-3, jax_impl/files/weights.py's JAX_TO_TORCH order).
torch keeps a 'step' per parameter (a float32 tensor) in every optimizer but SGD.
"""

import numpy as np
import torch

from jax_impl.core.optimizers import parse_spec
from jax_impl.files.weights import JAX_TO_TORCH

KEEPS_STEP = {"adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam"}  # SGD keeps no step in its state
SCALARS = ("mu_product",)  # NAdam: kept in torch's default dtype, whatever the parameters' (torch/optim/nadam.py)


def torch_slots(optimizer: torch.optim.Optimizer) -> tuple[dict, int | None]:
    """(slots, step): the optimizer's per-parameter state as numpy in the port's layout, and its step (None for SGD,
    which keeps none). ValueError if the parameters' steps disagree."""
    state = optimizer.state_dict()["state"]
    slots, steps = {}, set()
    for index, (name, (_, transposed)) in enumerate(JAX_TO_TORCH.items()):
        for field, value in state.get(index, {}).items():
            if field == "step":
                steps.add(int(value))
                continue
            array = value.detach().cpu().numpy().copy()
            slots.setdefault(field, {})[name] = array.T.copy() if transposed and array.ndim == 2 else array
    if len(steps) > 1:
        raise ValueError(f"the parameters' steps disagree: {sorted(steps)}")
    return slots, (steps.pop() if steps else None)


def fields_of(spec: str) -> list[str]:
    """The state fields torch.optim's `spec` keeps after a step (step apart), sorted: torch's own answer, from one
    step on a probe parameter."""
    from torch_impl.twin.train import make_optimizer

    probe = torch.zeros(2, requires_grad=True)
    optimizer = make_optimizer(spec, [probe], 0.1)
    probe.grad = torch.ones(2)
    optimizer.step()
    return sorted(k for k in optimizer.state[probe] if k != "step")


def load_slots(optimizer: torch.optim.Optimizer, spec: str, slots: dict, step: int) -> None:
    """Put `slots` and `step` into `optimizer` (torch.optim's `spec`, holding Net(1, H, 1)'s parameters) through
    load_state_dict, as a torch checkpoint would: its state after `step` updates. ValueError when the slots are not
    the fields torch keeps for `spec` (fields_of)."""
    expected = fields_of(spec)
    if sorted(slots) != expected:
        raise ValueError(f"{spec} keeps {', '.join(expected) or 'no state'}; the state holds "
                         f"{', '.join(sorted(slots)) or 'none'}")
    keeps_step = parse_spec(spec)[0] in KEEPS_STEP
    state = {}
    for index, (name, (_, transposed)) in enumerate(JAX_TO_TORCH.items()):
        entry = {"step": torch.tensor(float(step), dtype=torch.float32)} if keeps_step else {}
        for field, values in slots.items():
            value = np.asarray(values[name])
            entry[field] = torch.from_numpy(np.array(value.T if transposed and value.ndim == 2 else value, order="C"))
        state[index] = entry
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    # load_state_dict casts every state tensor but 'step' to its parameter's dtype; torch's NAdam keeps mu_product in
    # its default dtype (float32) even in a float64 run, and an uninterrupted run does too: cast it back.
    for parameter_state in optimizer.state.values():
        for field in SCALARS:
            if field in parameter_state:
                parameter_state[field] = parameter_state[field].to(torch.get_default_dtype())
