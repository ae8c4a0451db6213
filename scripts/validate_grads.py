"""The notebook's gradient validation: the loss gradient four ways, each compared with jax.grad.

    python scripts/validate_grads.py --torch-seed 1 --print-grads   # the notebook's printed table
    python scripts/validate_grads.py --seed 3 --loss mse --x64 --json
    python scripts/validate_grads.py --params net.pt      # a torch state_dict (or .safetensors, or the port's .npz)

At the given weights and the notebook's data, the gradient of f = sum (y - y_pred)^2 (--loss sse, the validation
cell's loss) or of the mean (--loss mse, the training loss) is computed by
    manual       the validation cell's hand-derived formulas (torch_impl/checks/jax_grads.py, in JAX)
    jax          jax.grad of the loss (the reference)
    torch        torch autograd through torch_impl's Net, the weights converted with to_state_dict
    finite_diff  central differences in NumPy float64 (step torch_impl.checks.jax_grads.FD_EPS)
Each method is compared with jax.grad entry by entry against an allowance from an error model
(torch_impl/checks/grad_error.py): rounding scaling with each sum's terms' absolute values, and for finite differences
their truncation plus the losses' rounding over the step. So a near-cancelling entry (the notebook's W1.grad[19] =
-0.0209, or any gradient near a trained minimum) is held to what its precision can resolve there, and a
well-conditioned one much more tightly. The table gives, per tensor, the largest absolute difference and the worst
entry's difference in units of its allowance (<= 1 agrees). The JAX side runs at "highest" matmul precision and torch
with TF32 off (what a GPU would otherwise change). Exit codes: 0 all agree, 1 a method disagrees beyond its
allowance, 2 bad input.
"""

import argparse
import json

from jax_impl.app import cli
from jax_impl.core import layout
from jax_impl.core.layout import PARAM_NAMES
from jax_impl.files import weights

METHODS = ("manual", "jax", "torch", "finite_diff")
REFERENCE = "jax"
NOTEBOOK_NAMES = {"w2": "W2", "b2": "b2", "w1": "W1", "b1": "b1"}  # the cell prints W2, b2, W1, b1 in this order


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--params", metavar="FILE",
                        help="the weights: .npz (w1 (1,H), b1 (H,), w2 (H,1), b2 (1,)), .pt/.pth (a torch state_dict) "
                             "or .safetensors")
    source.add_argument("--torch-seed", type=cli.torch_seed, default=None, metavar="K",
                        help="the validation cell's weights and the data as torch.manual_seed(K) and the notebook's "
                             "cells draw them (K = 1: the weights behind the notebook's printed table)")
    source.add_argument("--seed", type=cli.non_negative_int, default=None,
                        help="without --params: draw every weight N(0, 1) (as the validation cell's torch.randn "
                             "does) with jax.random.normal from key SEED (default 0), in float32 (then cast)")
    p.add_argument("--hidden", type=cli.positive_int, default=None,
                   help="hidden width (default 20; with --params, the file's, checked against this if given)")
    p.add_argument("--loss", choices=("sse", "mse"), default="sse",
                   help="sse: f = sum (y - y_pred)^2, the validation cell's (default); mse: the training loss")
    p.add_argument("--x64", action="store_true", help="compute in float64 (finite_diff is float64 always)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a machine-readable result on stdout instead")
    output.add_argument("--print-grads", action="store_true",
                        help="also print each method's gradients as the notebook prints them (torch's format)")
    return p.parse_args(argv)


def random_params(key, hidden: int, dtype):
    """N(0, 1) weights in the validation cell's layout and order: randn(1,H), randn(H), randn(H,1), randn(1).

    Drawn in float32 and cast, so that a float64 check starts from the float32 one's numbers (data.DRAW_DTYPE)."""
    import jax

    from jax_impl.core import data

    shapes = layout.param_shapes(hidden)
    keys = dict(zip(PARAM_NAMES, jax.random.split(key, 4)))
    return {name: jax.random.normal(keys[name], shapes[name], data.DRAW_DTYPE).astype(dtype) for name in PARAM_NAMES}


def all_methods(params, x, y, loss: str) -> dict:
    """{method: {tensor: numpy array}} for the four methods, the JAX side at "highest" matmul precision and torch with
    TF32 off."""
    import numpy as np

    from torch_impl.checks import jax_grads as grads
    from torch_impl.checks.precision import full_float32
    from torch_impl.checks.torch_grads import torch_grads

    with full_float32():
        results = {"manual": grads.manual_grads(params, x, y, loss), "jax": grads.jax_grads(params, x, y, loss),
                   "torch": torch_grads(params, x, y, loss),
                   "finite_diff": grads.finite_difference_grads(params, x, y, loss)}
        return {m: {k: np.asarray(v) for k, v in results[m].items()} for m in METHODS}


def check(results: dict, params, x, y, loss: str, dtype: str) -> tuple[dict, dict]:
    """Each method against jax.grad: (allowances {method: {tensor: array}}, report {method: grad_error.compare}).

    manual, torch: both sides' rounding; finite_diff: jax.grad's rounding plus the differences' own error (their
    truncation estimated from a second run at twice the step)."""
    from torch_impl.checks import grad_error
    from torch_impl.checks import jax_grads as grads

    rounding = grad_error.rounding_allowance(params, x, y, loss, dtype)
    fd_2h = grads.finite_difference_grads(params, x, y, loss, eps=2 * grads.FD_EPS)
    fd = grad_error.finite_difference_allowance(results["finite_diff"], fd_2h, params, x, y, loss, grads.FD_EPS)
    allowances = {"manual": {k: 2 * v for k, v in rounding.items()},
                  "torch": {k: 2 * v for k, v in rounding.items()},
                  "finite_diff": {k: rounding[k] + fd[k] for k in PARAM_NAMES}}
    report = {m: grad_error.compare(results[m], results[REFERENCE], allowances[m]) for m in allowances}
    return allowances, report


def table(report: dict) -> str:
    lines = [f"{'tensor':<7}{'method':<13}{'max abs diff':>14}{'worst entry':>13}{'its allowance':>15}"
             f"{'units':>10}  ok"]
    for name in PARAM_NAMES:
        for method, by_name in report.items():
            d = by_name[name]
            ok = "yes" if d["units"] <= 1 else "NO"
            worst = f"[{d['worst']}]"
            lines.append(f"{name:<7}{method:<13}{d['max_abs']:>14.2e}{worst:>13}{d['allowance']:>15.2e}"
                         f"{d['units']:>10.3f}  {ok}")
    return "\n".join(lines)


def notebook_style(grads: dict) -> str:
    """Each method's gradients printed as the validation cell prints them: torch's tensor format, W2, b2, W1, b1."""
    import numpy as np
    import torch

    lines = []
    for name, label in NOTEBOOK_NAMES.items():
        for method, values in grads.items():
            lines.append(f"{label}.grad [{method}]:{torch.from_numpy(np.array(values[name]))}")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.params is not None:
        params_np, note = weights.read(args.params, dtype="float64" if args.x64 else "float32", hidden=args.hidden)
        if note:  # what the reader accepted on the way (a checkpoint dict, bfloat16, ...); InputError: exit 2
            cli.note(f"{args.params}: {note}")
        source = str(args.params)
    cli.setup_jax(x64=args.x64)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jax_impl.core import data, torch_rng
    from torch_impl.checks import grad_error
    from torch_impl.checks import jax_grads as grads

    dtype = jnp.float64 if args.x64 else jnp.float32
    x, y = data.notebook_data(dtype)
    if args.params is not None:
        params = {k: jnp.asarray(v, dtype) for k, v in params_np.items()}
    elif args.torch_seed is not None:
        hidden = args.hidden or 20
        draws = torch_rng.notebook_draws(args.torch_seed, hidden)
        x, y = jnp.asarray(draws["x"], dtype), jnp.asarray(draws["y"], dtype)
        params = {k: jnp.asarray(v, dtype) for k, v in torch_rng.validation_draw(args.torch_seed, hidden).items()}
        source = f"the validation cell's weights after torch.manual_seed({args.torch_seed})"
    else:
        seed = 0 if args.seed is None else args.seed
        params = random_params(jax.random.key(seed), args.hidden or 20, dtype)
        source = f"N(0, 1) draw from jax.random.key({seed})"

    results = all_methods(params, x, y, args.loss)
    dtype_name = str(np.dtype(dtype))
    allowances, report = check(results, params, x, y, args.loss, dtype_name)
    bad = grad_error.mismatches(report)
    blind = grad_error.unjudged(allowances, results[REFERENCE])
    hidden = int(params["b1"].shape[0])

    if args.json:
        print(json.dumps({
            "loss": args.loss, "dtype": dtype_name, "hidden": hidden, "points": int(x.shape[0]), "params": source,
            "weights": {k: np.asarray(v).tolist() for k, v in params.items()},
            "reference": REFERENCE, "fd_eps": grads.FD_EPS, "rounding_factor": grad_error.ROUNDING_FACTOR,
            "grads": {m: {k: v.tolist() for k, v in results[m].items()} for m in METHODS},
            "allowances": {m: {k: v.tolist() for k, v in a.items()} for m, a in allowances.items()},
            "report": report, "mismatches": bad, "unjudged": blind, "ok": not bad,
        }))
    else:
        if args.print_grads:
            print(notebook_style(results))
        print(f"gradient of {args.loss} at {source}: hidden {hidden}, {dtype_name}, {x.shape[0]} points; each method "
              f"against jax.grad, in units of the error model's allowance (checks/grad_error.py; <= 1 agrees)")
        print(table(report))
        for method, names in blind.items():
            print(f"note: {method} cannot judge {', '.join(names)} here: its allowance exceeds the gradient itself")
        print("all four agree within their allowances" if not bad else "MISMATCH: " + "; ".join(bad))
    if bad:
        raise SystemExit(cli.MISMATCH)


if __name__ == "__main__":
    cli.run_main(main)
