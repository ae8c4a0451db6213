"""What names an experiment, without jax: the rules that the JAX core (data.run_data) and the torch twin's script
(train_torch.py, which imports no jax for the notebook's run) both follow."""


def fresh_data(points=None, noise=None, data_seed=None) -> bool:
    """Whether the data flags ask for a fresh draw (data.make_data) rather than the notebook's data: any of --points,
    --noise or --data-seed given, even at the notebook's value (its 100 points are torch's draw, not jax.random's)."""
    return points is not None or noise is not None or data_seed is not None
