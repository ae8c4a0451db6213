"""The notebook's gradient validation: the loss gradient four ways, each compared with jax.grad.

    python scripts/validate_grads.py --params jax_impl/notebook_validation_params.npz --print-grads
    python scripts/validate_grads.py --seed 3 --loss mse --x64 --json

At the given weights and the notebook's data, the gradient of f = sum (y - y_pred)^2 (--loss sse, the validation
cell's loss) or of the mean (--loss mse, the training loss) is computed by
    manual       the validation cell's hand-derived formulas (jax_impl/grads.py, in JAX)
    jax          jax.grad of the loss (the reference)
    torch        torch autograd through torch_impl's Net, the weights converted with to_state_dict
    finite_diff  central differences in NumPy float64 (step jax_impl.grads.FD_EPS)
and for each tensor the table gives the largest absolute difference against jax.grad and that difference relative to
the tensor's largest |jax.grad| entry (entry-wise ratios are meaningless where a gradient entry is a near-cancelling
sum, like the notebook's W1.grad[19] = -0.0209). Exit codes: 0 all agree, 1 a method disagrees beyond its tolerance,
2 bad input.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from jax_impl import cli  # noqa: E402
from jax_impl.params_io import PARAM_NAMES, load_params  # noqa: E402

METHODS = ("manual", "jax", "torch", "finite_diff")
REFERENCE = "jax"

# Largest |method - jax.grad| over a tensor, relative to the tensor's largest |jax.grad| entry. Measured at the
# notebook's validation weights and at --seed 0..99 (hidden 20) and 0..19 (hidden 256), sse and mse, the worst case
# over all tensors (jax 0.10.2, torch 2.13.0, CPU); each tolerance is about 10x the worst seen:
TOLERANCES = {
    "float32": {
        "manual": 2e-5,  # worst 9.0e-7: float32 rounding; the cell's exp(-h)/(1+exp(-h))**2 vs jax's sigmoid'
        "torch": 2e-5,  # worst 2.1e-6 (b2, mse, H=256): float32 rounding; torch and XLA sum in different orders
        "finite_diff": 2e-5,  # worst 1.8e-6: float32 jax.grad's rounding (the float64 differences are ~2e-9 off)
    },
    "float64": {
        "manual": 3e-14,  # worst 2.4e-15: float64 rounding
        "torch": 3e-14,  # worst 2.3e-15: float64 rounding
        "finite_diff": 3e-8,  # worst 2.7e-9: the step's truncation and rounding error (see grads.FD_EPS)
    },
}

NOTEBOOK_NAMES = {"w2": "W2", "b2": "b2", "w1": "W1", "b1": "b1"}  # the cell prints W2, b2, W1, b1 in this order


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--params", metavar="FILE.npz",
                        help="weights w1 (1,H), b1 (H,), w2 (H,1), b2 (1,); jax_impl/notebook_validation_params.npz "
                             "holds the ones behind the notebook's printed table")
    source.add_argument("--seed", type=cli.non_negative_int, default=None,
                        help="without --params: draw every weight N(0, 1) (as the validation cell's torch.randn "
                             "does) with jax.random.normal from key SEED (default 0)")
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
    """N(0, 1) weights in the validation cell's layout and order: randn(1,H), randn(H), randn(H,1), randn(1)."""
    import jax

    shapes = {"w1": (1, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
    keys = dict(zip(PARAM_NAMES, jax.random.split(key, 4)))
    return {name: jax.random.normal(keys[name], shapes[name], dtype) for name in PARAM_NAMES}


def torch_grads(params, x, y, loss: str = "sse") -> dict:
    """torch autograd of the loss through torch_impl's Net at `params` (JAX layout, any float dtype), in the
    params' dtype. Returns the gradients in the JAX layout as NumPy arrays."""
    import numpy as np
    import torch

    from torch_impl.convert import from_state_dict, to_state_dict
    from torch_impl.model import Net

    params = {k: np.asarray(v) for k, v in params.items()}
    dtype = torch.float64 if params["w1"].dtype == np.float64 else torch.float32
    hidden = params["b1"].shape[0]
    net = Net(1, hidden, 1).to(dtype)
    net.load_state_dict(to_state_dict(params, hidden))
    x, y = (torch.from_numpy(np.array(a)).to(dtype) for a in (x, y))
    prediction = net(x)
    f = (y - prediction).pow(2).sum() if loss == "sse" else torch.nn.MSELoss()(prediction, y)
    f.backward()
    return from_state_dict({name: p.grad for name, p in net.named_parameters()}, hidden)


def differences(grads: dict, reference: str = REFERENCE) -> dict:
    """{method: {tensor: {"max_abs", "max_rel"}}} for every method against the reference; max_rel is max_abs over
    the reference tensor's largest |entry|."""
    import numpy as np

    ref = {k: np.asarray(v, np.float64) for k, v in grads[reference].items()}
    out = {}
    for method, values in grads.items():
        if method == reference:
            continue
        out[method] = {}
        for name in PARAM_NAMES:
            max_abs = float(np.max(np.abs(np.asarray(values[name], np.float64) - ref[name])))
            scale = float(np.max(np.abs(ref[name])))
            max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
            out[method][name] = {"max_abs": max_abs, "max_rel": max_rel}
    return out


def mismatches(diffs: dict, tolerances: dict) -> list[str]:
    return [f"{method} {name}: relative difference {d['max_rel']:.2e} > tolerance {tolerances[method]:.0e}"
            for method, by_name in diffs.items() for name, d in by_name.items()
            if not d["max_rel"] <= tolerances[method]]  # `not <=` so that a NaN is a mismatch too


def table(diffs: dict, tolerances: dict) -> str:
    lines = [f"{'tensor':<7}{'method':<13}{'max abs diff':>14}{'max rel diff':>14}{'tolerance':>11}  ok"]
    for name in PARAM_NAMES:
        for method, by_name in diffs.items():
            d = by_name[name]
            ok = "yes" if d["max_rel"] <= tolerances[method] else "NO"
            lines.append(f"{name:<7}{method:<13}{d['max_abs']:>14.2e}{d['max_rel']:>14.2e}"
                         f"{tolerances[method]:>11.0e}  {ok}")
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


def main():
    args = parse_args()
    if args.params is not None:
        params_np = load_params(args.params, args.hidden)  # InputError (exit 2) names a bad file or tensor
        source = str(args.params)
    cli.setup_jax(x64=args.x64)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jax_impl import data, grads

    dtype = jnp.float64 if args.x64 else jnp.float32
    if args.params is not None:
        params = {k: jnp.asarray(v, dtype) for k, v in params_np.items()}
    else:
        seed = 0 if args.seed is None else args.seed
        params = random_params(jax.random.key(seed), args.hidden or 20, dtype)
        source = f"N(0, 1) draw from jax.random.key({seed})"
    x, y = data.notebook_data(dtype)

    results = {
        "manual": grads.manual_grads(params, x, y, args.loss),
        "jax": grads.jax_grads(params, x, y, args.loss),
        "torch": torch_grads(params, x, y, args.loss),
        "finite_diff": grads.finite_difference_grads(params, x, y, args.loss),
    }
    results = {m: {k: np.asarray(v) for k, v in results[m].items()} for m in METHODS}
    dtype_name = str(np.dtype(dtype))
    tolerances = TOLERANCES[dtype_name]
    diffs = differences(results)
    bad = mismatches(diffs, tolerances)
    hidden = int(params["b1"].shape[0])

    if args.json:
        print(json.dumps({
            "loss": args.loss, "dtype": dtype_name, "hidden": hidden, "points": int(x.shape[0]), "params": source,
            "weights": {k: np.asarray(v).tolist() for k, v in params.items()},
            "reference": REFERENCE, "fd_eps": grads.FD_EPS, "tolerances": tolerances,
            "grads": {m: {k: v.tolist() for k, v in results[m].items()} for m in METHODS},
            "diffs": diffs, "mismatches": bad, "ok": not bad,
        }))
    else:
        if args.print_grads:
            print(notebook_style(results))
        print(f"gradient of {args.loss} at {source}: hidden {hidden}, {dtype_name}, {x.shape[0]} points; "
              f"each method against jax.grad (relative: to the tensor's largest |jax.grad|)")
        print(table(diffs, tolerances))
        print("all four agree within tolerance" if not bad else "MISMATCH: " + "; ".join(bad))
    if bad:
        raise SystemExit(cli.MISMATCH)


if __name__ == "__main__":
    cli.run_main(main)
