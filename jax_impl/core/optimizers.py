"""The optimizers a run may name, each once: torch.optim's names and arguments, for both frameworks.

A run's optimizer is a spec, a string that names it and its torch arguments as a call, "adam" or
"sgd(momentum=0.9, nesterov=True)": hashable, so it is a static argument of the compiled programs, and printable, so
outputs and logs say exactly what ran. torch_optim.make_optimizer turns a spec into optax's twin of the torch.optim
optimizer; torch_impl/twin/train.py turns it into the torch.optim optimizer itself.

No jax here: the command line checks names and arguments before JAX starts (its XLA flags are set first), and the
torch twin's script names its optimizer without importing jax.
"""

import ast

from jax_impl.core import experiment

# name -> torch.optim's class name (the twin builds getattr(torch.optim, ...)(params, lr=lr, **arguments))
TORCH_CLASSES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                 "adamax": "Adamax", "nadam": "NAdam"}
OPTIMIZERS = tuple(TORCH_CLASSES)
# name -> the torch keyword arguments (torch 2.13's defaults; lr apart) that both frameworks follow: the parity table
# (docs/optimizers.md). Left out: torch's implementation switches (foreach, fused, capturable, differentiable) and
# maximize, which change no update here.
TORCH_DEFAULTS = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "amsgrad": False},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False},
    "adagrad": {"lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
    "adamax": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "nadam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "momentum_decay": 0.004,
              "decoupled_weight_decay": False},
}


def optimizer_spec(name: str, args: dict | None = None) -> str:
    """The spec of torch optimizer `name` (any case: "Adam" is "adam") with torch keyword arguments `args`: the name
    alone, or name(k=v, ...) in the order given. ValueError for an unknown name."""
    key = name.lower()
    if key not in TORCH_CLASSES:
        raise ValueError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)}, in any case)")
    return key if not args else f"{key}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


class RepeatedArgument(ValueError):
    """A keyword argument given twice in a spec: a dict would keep the last value silently (Python refuses such a
    call too). `name` is the argument's."""

    def __init__(self, spec: str, name: str):
        super().__init__(f"{spec!r} gives {name} twice: give it once")
        self.name = name


def parse_spec(spec: str) -> tuple[str, dict]:
    """A spec -> (name, torch keyword arguments). ValueError for text that is not a name or a call of a name with
    keyword arguments whose values are Python literals; RepeatedArgument for an argument given twice."""
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
        if isinstance(tree, ast.Name):
            name, args = tree.id, {}
        elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and not tree.args:
            name, args = tree.func.id, {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
        else:
            raise ValueError
        if None in args:  # **kwargs
            raise ValueError
    except (SyntaxError, ValueError):
        raise ValueError(f"{spec!r} is not an optimizer: a name, or name(keyword=value, ...)") from None
    names = [keyword.arg for keyword in tree.keywords] if isinstance(tree, ast.Call) else []
    if twice := next((name for name in names if names.count(name) > 1), None):
        raise RepeatedArgument(spec, twice)
    optimizer_spec(name)  # an unknown name: its own ValueError
    return name.lower(), args


def parse_arguments(text: str) -> dict:
    """--optimizer-args 'k=v,k=v' (torch's argument names, Python literals: 0.9, True, (0.9, 0.99)) -> dict, each
    argument named once. ValueError for anything else."""
    try:
        return parse_spec(f"sgd({text})")[1]
    except RepeatedArgument as e:
        raise ValueError(f"{text!r} gives {e.name} twice: give it once") from None
    except ValueError:
        raise ValueError(f"{text!r} is not k=v,... with Python values (0.9, True, (0.9, 0.99))") from None


def _checked(key: str, value, default):
    """value as the type of its default (a bool for a bool, a float for a number, a pair of floats for betas)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} takes True or False, not {value!r}")
        return value
    if isinstance(default, tuple):
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ValueError(f"{key} takes two numbers, (b1, b2), not {value!r}")
        if not all(0 <= v < 1 for v in value):
            raise ValueError(f"{key} must lie in [0, 1), as torch requires: {value!r}")
        for v in value:
            if experiment.float32_problem(v):
                raise ValueError(f"{key} {value!r}: {v!r} {experiment.float32_problem(v)}")
        return tuple(float(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise ValueError(f"{key} takes a finite number, not {value!r}")
    if value < 0:
        raise ValueError(f"{key} must not be negative ({value!r}), as torch requires")
    if experiment.float32_problem(value):
        raise ValueError(f"{key} {value!r} {experiment.float32_problem(value)}")
    return float(value)


def torch_kwargs(name: str, args: dict) -> dict:
    """torch's keyword arguments for optimizer `name`: `args` checked (names from TORCH_DEFAULTS[name], types and
    ranges as torch.optim checks them) and completed with torch's defaults. ValueError naming what is wrong."""
    defaults = TORCH_DEFAULTS[name]
    unknown = [k for k in args if k not in defaults]
    if unknown:
        raise ValueError(f"{TORCH_CLASSES[name]} takes no argument {unknown[0]!r} here (it takes: "
                         f"{', '.join(defaults)})")
    kwargs = {**defaults, **{k: _checked(k, v, defaults[k]) for k, v in args.items()}}
    if name == "sgd" and kwargs["nesterov"] and (kwargs["momentum"] <= 0 or kwargs["dampening"] != 0):
        raise ValueError("nesterov needs a momentum and zero dampening, as torch requires")
    if name == "adagrad" and kwargs["lr_decay"] != 0:
        raise ValueError("lr_decay scales the learning rate step by step, and here the learning rate is data "
                         "applied after the update's direction: not in the table")
    return kwargs
