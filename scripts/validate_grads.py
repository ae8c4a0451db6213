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
allowance, 2 bad input (weights whose loss is not finite among it). The check itself: torch_impl/checks/grad_check.py.
"""

import json

from jax_impl.app import cli, sizes
from jax_impl.files.params_io import InputError


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--params", metavar="FILE",
                        help="the weights: .npz (w1 (1,H), b1 (H,), w2 (H,1), b2 (1,)), .pt/.pth (a torch state_dict) "
                             "or .safetensors")
    source.add_argument("--torch-seed", type=cli.torch_seed, default=None, metavar="K",
                        help="the validation cell's weights and the data as torch.manual_seed(K) and the notebook's "
                             "cells draw them (K = 1: the weights behind the notebook's printed table)")
    source.add_argument("--seed", type=cli.seed, default=None,
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
    args = p.parse_args(argv)
    sizes.check_run(p, args, pictures=False)  # a width that cannot fit: one line before any work
    return args


def main(argv=None):
    args = parse_args(argv)
    params_np = None
    if args.params is not None:
        params_np = cli.read_weights(args.params, "--params", x64=args.x64, hidden=args.hidden)
    cli.setup_jax(x64=args.x64)

    import jax.numpy as jnp

    from torch_impl.checks import grad_check, grad_error

    dtype = jnp.float64 if args.x64 else jnp.float32
    params, x, y, source = grad_check.inputs(params=params_np, params_file=args.params, torch_seed=args.torch_seed,
                                             seed=args.seed, hidden=args.hidden, dtype=dtype)
    if problem := grad_check.nonfinite_problem(params, x, y, args.loss):  # before the four methods' work
        raise InputError(f"{source}: {problem}")
    results = grad_check.all_methods(params, x, y, args.loss)
    about = {"loss": args.loss, "source": source, "dtype": jnp.dtype(dtype).name, "points": int(x.shape[0])}
    allowances, report = grad_check.check(results, params, x, y, args.loss, about["dtype"])
    if args.json:
        print(json.dumps(grad_check.json_report(params, results, report, allowances, **about)))
    else:
        if args.print_grads:
            print(grad_check.notebook_style(results))
        print("\n".join(grad_check.text_report(results, report, allowances, **about)))
    if grad_error.mismatches(report):
        raise SystemExit(cli.MISMATCH)


if __name__ == "__main__":
    cli.run_main(main)
