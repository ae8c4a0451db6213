"""Real bugs planted in a variant of the torch twin, for proving that the localizer (checks/diverge.py) and the replay
(checks/replay.py) find them: each is a mistake a port of Adam or of the forward pass can make.

The variant is the twin's recorded run (torch_impl/twin/record.TwinRun) with Adam written out in torch's own
single-tensor arithmetic (torch 2.13's torch/optim/adam.py, torch_adam below) and the bug switched on; its records
say "torch+planted:NAME" as their implementation, so that the replay re-runs the same arithmetic.
"""

import math
from typing import NamedTuple

import torch

from jax_impl.files.records import INTEGERS, STEP_ORDER
from torch_impl.checks.diverge import B1, B2, EPS
from torch_impl.twin.record import TwinRun, recorded_run


class Bugs(NamedTuple):
    eps_inside_sqrt: bool = False  # sqrt(v_hat + eps) instead of torch's and optax's sqrt(v_hat) + eps
    bias_offset: int = 0  # bias corrections 1 - b^(t + offset): 1 is off by one step
    late_update: bool = False  # each step applies the update computed the step before (the learning rate's step late)
    sigmoid_float32: bool = False  # the sigmoid computed in float32 inside a float64 run


PLANTED = {
    "eps_inside_sqrt": Bugs(eps_inside_sqrt=True),
    "bias_correction_off_by_one": Bugs(bias_offset=1),
    "lr_one_step_late": Bugs(late_update=True),
    "sigmoid_float32": Bugs(sigmoid_float32=True),
}
# Where each is found: the step and the recorded quantity (its family), and the replay's operation.
EXPECTED = {
    "eps_inside_sqrt": (0, "update", "adam.denominator"),
    "bias_correction_off_by_one": (0, "update", "adam.bias_correction"),
    "lr_one_step_late": (0, "update", "params.after"),
    "sigmoid_float32": (0, "forward.hidden", "forward.hidden"),
}

# The quantities --into can plant a difference in: those with a step axis, of real numbers (records.INTEGERS are not).
PLANTABLE = tuple(q for q in STEP_ORDER if not q.startswith("data.") and q not in INTEGERS)


def implementation(name: str) -> str:
    return f"torch+planted:{name}"


# Every implementation a record may name that bugs_of knows, and so what checks/replay.py re-runs. Here, not in
# replay.py: scripts/diverge.py checks --replay's records against it before the walk, and replay.py imports jax,
# which must wait for cli.setup_jax (the port's XLA flags are read at jax's first import).
KNOWN = ("jax", "torch", *(implementation(name) for name in sorted(PLANTED)))


def knows(implementation_name: str) -> bool:
    """Whether the replay can re-run this implementation (a record's metadata names it)."""
    return implementation_name in KNOWN


def bugs_of(implementation_name: str) -> Bugs:
    """The Bugs an implementation string names ("torch": none); KeyError for an unknown one."""
    if implementation_name in ("torch", "jax"):
        return Bugs()
    return PLANTED[implementation_name.removeprefix("torch+planted:")]


def torch_sigmoid(pre, bugs: Bugs):
    return torch.sigmoid(pre.float()).to(pre.dtype) if bugs.sigmoid_float32 else torch.sigmoid(pre)


def torch_adam(p, g, mu, nu, count: int, lr: float, bugs: Bugs = Bugs(), pending=None) -> dict:
    """One parameter's torch.optim.Adam step (torch 2.13's _single_tensor_adam, default arguments), with `bugs`;
    torch tensors in any layout. pending: the update of the step before (late_update applies it instead)."""
    mu, nu = mu.lerp(g, 1 - B1), nu.mul(B2).addcmul_(g, g, value=1 - B2)
    step = count + 1
    bc1, bc2 = 1 - B1 ** (step + bugs.bias_offset), 1 - B2 ** (step + bugs.bias_offset)
    step_size = lr / bc1
    denom = (nu / bc2 + EPS).sqrt() if bugs.eps_inside_sqrt else (nu.sqrt() / math.sqrt(bc2)).add_(EPS)
    update = -step_size * mu / denom
    params = p + pending if bugs.late_update else p.addcdiv(mu, denom, value=-step_size)
    return {"mu": mu, "nu": nu, "count": step, "bc1": bc1, "bc2": bc2, "denominator": denom, "update": update,
            "params": params}


def planted_run(bugs: Bugs):
    """A TwinRun class with `bugs` (for twin.record.recorded_run's run=)."""
    class PlantedTwin(TwinRun):
        def __init__(self, params, lr, dtype):
            super().__init__(params, lr, dtype)
            self.state = {k: {"mu": torch.zeros_like(t), "nu": torch.zeros_like(t), "count": 0,
                              "pending": torch.zeros_like(t)} for k, t in self.tensors.items()}

        def sigmoid(self, pre):
            return torch_sigmoid(pre, bugs)

        def optimizer_step(self):
            with torch.no_grad():
                for name, p in self.tensors.items():
                    s = self.state[name]
                    out = torch_adam(p.detach(), p.grad, s["mu"], s["nu"], s["count"], self.lr, bugs, s["pending"])
                    s.update(mu=out["mu"], nu=out["nu"], count=out["count"], pending=out["update"])
                    p.copy_(out["params"])

        def moments(self, name):
            s = self.state[name]
            return s["mu"], s["nu"], torch.tensor(float(s["count"]))

    return PlantedTwin


def record_planted(name: str, params, x, y, lr: float, *, steps: int, dtype: torch.dtype, every: int = 1) -> dict:
    """The twin variant with bug `name` recorded (twin.record.recorded_run's arrays); params, x, y: numpy."""
    return recorded_run(params, x, y, lr, steps=steps, every=every, dtype=dtype, run=planted_run(PLANTED[name]))


def with_difference(record, quantity: str, step: int, size: float):
    """A copy of `record` with one element of `quantity` at `step` (its largest in magnitude) moved by `size` times
    the tensor's largest magnitude at that step (at least the smallest normal number): a planted difference."""
    import numpy as np

    from jax_impl.files import records

    tensors = {k: v.copy() for k, v in record.tensors.items()}
    idx = int(np.flatnonzero(tensors["step"] == step)[0])
    value = tensors[quantity][idx:idx + 1]  # a view, also of a scalar quantity (the loss)
    i = np.unravel_index(int(np.argmax(np.abs(value))), value.shape)
    value[i] += max(size * float(np.max(np.abs(value))), float(np.finfo(value.dtype).tiny))
    return records.Record(tensors, dict(record.metadata))
