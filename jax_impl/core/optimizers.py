"""The optimizers a run may name, each once: the port's name -> torch.optim's class and the optax transformation
that computes the same update (optax's defaults equal torch's for both).

Importable without jax: the command line offers the names before JAX starts (its XLA flags are set first); optax is
imported when an optimizer is built.
"""

# name -> torch.optim's class name (the twin builds getattr(torch.optim, ...)(params, lr=lr))
TORCH_CLASSES = {"adam": "Adam", "sgd": "SGD"}
OPTIMIZERS = tuple(TORCH_CLASSES)  # the notebook's Adam, and the SGD of its commented-out line


def make_direction(name: str):
    """The optimizer's update before the learning rate: optax.scale_by_adam() (b1 0.9, b2 0.999, eps 1e-8, torch's
    defaults) or the plain gradient. ValueError for a name not in OPTIMIZERS."""
    import optax

    if name == "adam":
        return optax.scale_by_adam()
    if name == "sgd":
        return optax.identity()
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def make_optimizer(name: str, lr):
    """optax's twin of torch.optim.<TORCH_CLASSES[name]>(params, lr=lr): make_direction(name), then `* -lr`, which is
    how optax.adam(lr) and optax.sgd(lr) are built. `lr` may be a traced array: the learning rate is data, so a sweep
    over it does not recompile. An ensemble with a learning rate per model applies make_direction alone."""
    import optax

    return optax.chain(make_direction(name), optax.scale_by_learning_rate(lr))
