"""One training run recorded step by step in JAX: every quantity of every step, for the localizer of where two runs
part (torch_impl/checks/diverge.py; the record's format: jax_impl/files/records.py, docs/records.md).

The forward pass is written out layer by layer only to keep its intermediates; the loss and the gradients are the
product's own (model.value_and_grad: jax.value_and_grad), the update is optax's (torch_optim.make_optimizer), so the
recorded trajectory is train.make_step's.
"""

import jax
import jax.numpy as jnp
import optax

from jax_impl.core import model, ready
from jax_impl.core.torch_optim import make_optimizer

# The recorded quantities that are not per parameter, in computation order (docs/records.md). Per parameter:
# params.<name> (before the step's update), grads.<name>, adam.mu.<name>, adam.nu.<name> (after the step),
# update.<name> (parameters after minus before, in the run's precision).
FORWARD = ("forward.pre_activation", "forward.hidden", "forward.output", "forward.residual")


def layers(params, x, y) -> dict:
    """The forward pass layer by layer, x, y: (N, 1): pre_activation x w1 + b1 (N, H), hidden sigmoid of it (N, H),
    output hidden w2 + b2 (N, 1), residual output - y (N, 1); the notebook's Net, untransposed."""
    pre = x @ params["w1"] + params["b1"][None, :]
    hidden = jax.nn.sigmoid(pre)
    output = hidden @ params["w2"] + params["b2"][None, :]
    return dict(zip(FORWARD, (pre, hidden, output, output - y)))


def adam_state(opt_state) -> optax.ScaleByAdamState:
    """The ScaleByAdamState inside an Adam chain's state (ValueError for another optimizer: only Adam is recorded)."""
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
             if isinstance(s, optax.ScaleByAdamState)]
    if len(found) != 1:
        raise ValueError("only Adam's state can be recorded")
    return found[0]


def make_recorded_step(tx: optax.GradientTransformation):
    """(params, opt_state, x, y) -> (params, opt_state, quantities): train.make_step's step, keeping every quantity
    (names as docs/records.md, the per-parameter ones prefixed)."""

    def step(params, opt_state, x, y):
        (loss, _), grads = model.value_and_grad(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        new = optax.apply_updates(params, updates)
        adam = adam_state(opt_state)
        out = {**layers(params, x, y), "loss": loss, "adam.count": adam.count}
        for name in params:
            out |= {f"params.{name}": params[name], f"grads.{name}": grads[name], f"adam.mu.{name}": adam.mu[name],
                    f"adam.nu.{name}": adam.nu[name], f"update.{name}": new[name] - params[name]}
        return new, opt_state, out

    return step


def recorded_run(params, x, y, lr, *, steps: int, every: int = 1) -> dict:
    """The whole Adam run (optimizer "adam", learning rate lr) in params' dtype as {name: array with the step as its
    leading axis}, the steps 0, every, 2 every, ... < steps kept (plus "step", their indices). One compiled scan;
    memory: steps x (2 N H + ...) numbers before the thinning."""
    tx = make_optimizer("adam", jnp.asarray(lr, x.dtype))
    step = make_recorded_step(tx)

    @jax.jit
    def run(params):
        def body(carry, _):
            params, opt_state, out = step(*carry, x, y)
            return (params, opt_state), out

        return jax.lax.scan(body, (params, tx.init(params)), None, length=steps)[1]

    kept = jnp.arange(0, steps, every)
    # Returned ready (ready.wait), so that Ctrl-C and SIGTERM act during a long scan: every caller reads it at once,
    # and a read (numpy) would wait in C++, where Python's signal handlers cannot run.
    return ready.wait({"step": kept, **{k: v[::every] for k, v in run(params).items()}})
