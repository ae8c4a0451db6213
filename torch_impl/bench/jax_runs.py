"""The JAX cases' timed callables. Each builder takes the case's inputs (cases.Inputs: x, y (N, 1) and params on the
device, hidden, steps, lr, every) and a model count, and returns run(), which returns when its work is done.
jax is imported inside the builders: the runner sets XLA's flags (cli.setup_jax) first."""


def fused(inputs, models=1):
    """train.fit: the port's run, one compiled program (jax.value_and_grad of model.mse_loss in a scan)."""
    import jax
    import jax.numpy as jnp

    from jax_impl.core import train

    x, y, params = inputs.x, inputs.y, inputs.params
    lr = jnp.asarray(inputs.lr, x.dtype)
    return lambda: jax.block_until_ready(train.fit(params, x, y, lr, steps=inputs.steps, every=inputs.every))


def step_loop(inputs, models=1):
    """A direct port: one jitted step (train.make_step: autodiff + optax), called from Python every step."""
    import jax
    import jax.numpy as jnp

    from jax_impl.core import torch_optim, train

    x, y, params, every = inputs.x, inputs.y, inputs.params, inputs.every
    tx = torch_optim.make_optimizer("adam", jnp.asarray(inputs.lr, x.dtype))
    step = jax.jit(train.make_step(tx))

    def run():
        p, state, losses, snapshots = params, tx.init(params), [], []
        for t in range(inputs.steps):
            p, state, loss, prediction = step(p, state, x, y)
            losses.append(loss)
            if t % every == 0:
                snapshots.append(prediction)
        return jax.block_until_ready((jnp.stack(losses), snapshots))

    return run


def ensemble(inputs, models):
    """sweep.py's call: `models` models (keys 0..models-1) sharded over every local device (sharding.fit_sharded),
    the results gathered to host arrays."""
    import jax
    import numpy as np

    from jax_impl.core import ensemble as jax_ensemble
    from jax_impl.core import sharding

    params = jax.tree.map(np.asarray, jax_ensemble.init_ensemble(list(range(models)), inputs.hidden))
    lrs = np.full(models, inputs.lr, np.asarray(inputs.x).dtype)
    return lambda: sharding.fit_sharded(params, inputs.x, inputs.y, lrs, optimizer="adam", steps=inputs.steps,
                                        every=None)
