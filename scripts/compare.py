"""The trajectory cross-check: the JAX port and its torch twin, same data, same initial weights, step by step.

    python scripts/compare.py                   # the notebook's run in float32: JAX (optax) against torch
    python scripts/compare.py --x64             # both in float64: agreement near 1e-15
    python scripts/compare.py --attribute       # also: what causes the float32 gap (a table, one row per cause)
    python scripts/compare.py --seed 3 --hidden 64 --optimizer sgd --lr 0.5 --json
    python scripts/compare.py --torch-seed 7    # data and weights as torch.manual_seed(7) gives them
    python scripts/compare.py --init net.pt     # both sides start from these weights (.pt, .safetensors, .npz)

Reports the largest relative difference of the per-step losses, the largest absolute difference of the final
parameters, and the largest relative difference of the gradients at the initial weights, each against a named
tolerance (torch_impl/checks/compare.py); writes --out/compare.png (both loss curves and the per-step relative
difference, log scales). Exit codes: 0 agree, 1 disagree beyond a tolerance, 2 bad input, 3 the loss turned
non-finite (the finite steps before it are compared and reported, no plot is written).
"""

import argparse
import json
import math

from jax_impl.app import cli
from jax_impl.core.optimizers import OPTIMIZERS


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=cli.positive_int, default=201, help="training steps (notebook: 201)")
    p.add_argument("--lr", type=cli.positive_float, default=0.2, help="learning rate (notebook: 0.2)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="adam (notebook) or sgd (its comment)")
    p.add_argument("--hidden", type=cli.positive_int, default=20, help="hidden width (notebook: 20)")
    p.add_argument("--seed", type=cli.non_negative_int, default=None,
                   help="initial weights from jax.random.key(SEED) (as train_jax.py) instead of the notebook's")
    p.add_argument("--points", type=cli.positive_int, default=None, help="fresh data with this many points")
    p.add_argument("--noise", type=cli.non_negative_float, default=None, help="fresh data with this noise level")
    p.add_argument("--data-seed", type=cli.non_negative_int, default=None, help="key for fresh data (default 0)")
    p.add_argument("--torch-seed", type=cli.torch_seed, default=None, metavar="K", help=cli.TORCH_SEED_HELP)
    cli.add_init(p)
    p.add_argument("--x64", action="store_true", help="both sides in float64")
    p.add_argument("--attribute", action="store_true",
                   help="also run the float32 gap experiment (Adam, float32 only) and print its table")
    p.add_argument("--out", default="out", help="output folder for compare.png (default out/)")
    p.add_argument("--no-plots", action="store_true", help="write no picture (and do not touch --out)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout instead")
    p.add_argument("--no-cache", action="store_true", help="do not use JAX's persistent compilation cache")
    args = p.parse_args(argv)
    cli.check_torch_seed(p, args)
    cli.check_init(p, args)
    if args.attribute and (args.x64 or args.optimizer != "adam"):
        p.error("--attribute studies Adam's float32 gap: it takes neither --x64 nor --optimizer sgd")
    return args


def inputs(args, dtype):
    """The same data and initial weights as train_jax.py would use for these flags: (params, x, y)."""
    from jax_impl.core import data

    return data.run_inputs(seed=args.seed, hidden=args.hidden, points=args.points, noise=args.noise,
                           data_seed=args.data_seed, torch_seed=args.torch_seed, init=args.init_params, dtype=dtype)


def plot(result, path):
    """Left: both loss curves (log y). Right: per-step relative difference (log y) and its tolerance."""
    import numpy as np

    from jax_impl.app.plots import plt, save_png  # pyplot on the headless Agg backend

    jax_losses, torch_losses = result["losses"]["jax"], result["losses"]["torch"]
    steps = np.arange(len(jax_losses))
    rel = np.abs(jax_losses - torch_losses) / np.abs(torch_losses)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.semilogy(steps, torch_losses, lw=3, alpha=0.5, label="torch")
    left.semilogy(steps, jax_losses, "--", label="JAX")
    left.set(xlabel="step t", ylabel="MSE loss before update t", title=f"loss, {result['dtype']}")
    left.legend()
    shown = rel > 0  # exact agreement has no place on a log scale: such steps are left out and counted
    right.semilogy(steps[shown], rel[shown], ".", ms=3, label="|JAX - torch| / |torch|")
    right.axhline(result["tolerances"]["rel_loss"], color="r", ls=":", label="tolerance")
    right.set(xlabel="step t", ylabel="relative difference",
              title=f"max {result['max_rel_loss_diff']:.2e} at t = {result['worst_step']}"
                    f" ({int((~shown).sum())} steps equal)")
    right.legend()
    fig.tight_layout()
    save_png(fig, path, dpi=90)


def summary_lines(result) -> list[str]:
    tol = result["tolerances"]
    params = ("not compared (diverged)" if result["max_abs_param_diff"] is None else
              f"{result['max_abs_param_diff']:.3e} ({result['worst_param']}; tolerance {tol['abs_param']:.0e}"
              + ("" if result["param_scale"] == 1.0 else f" x largest weight {result['param_scale']:.3g}") + ")")
    return [f"JAX against torch, {result['dtype']}, {result['optimizer']} lr {result['lr']}, {result['steps']} steps, "
            f"{result['points']} points, hidden {result['hidden']}",
            f"  losses: max relative difference {result['max_rel_loss_diff']:.3e} at t = {result['worst_step']} "
            f"(tolerance {tol['rel_loss']:.0e}; {result['compared_steps']} steps compared)",
            f"  final parameters: max absolute difference {params}",
            f"  initial gradients: max relative difference {result['max_rel_grad_diff']:.3e} ({result['worst_grad']}; "
            f"tolerance {tol['rel_grad']:.0e})",
            f"  {'agree' if result['ok'] else 'DISAGREE'}" + (" (on the steps before the loss turned non-finite)"
                                                               if result["diverged"] and result["ok"] else "")]


def attribution_lines(reference_losses, variants, gradients) -> tuple[list[str], list[dict]]:
    from torch_impl.checks.compare import rel_loss_diff

    rows = []
    for v in variants:
        rel = rel_loss_diff(v.run.losses, reference_losses)
        rows.append({"variant": v.name, "cause": v.cause, "max_rel_loss_diff": float(rel.max()),
                     "worst_step": int(rel.argmax())})
    gap = next(r["max_rel_loss_diff"] for r in rows if r["variant"] == "JAX float32, optax.adam")
    for r in rows:
        r["share_of_optax_adam_gap"] = r["max_rel_loss_diff"] / gap
    lines = ["", "What the float32 gap is made of: each variant against torch float64 (same weights and data).",
             "Candidates: (a) optax's float32 bias corrections 1 - b**t; (b) the rest of the optimizer's float32",
             "arithmetic; (c) the float32 forward/backward pass (the sums over the hidden layer and the points).",
             f"  {'variant':50s} {'switches':40s} {'max rel loss diff':>17s} {'at t':>5s} {'/ optax.adam':>12s}"]
    lines += [f"  {r['variant']:50s} {r['cause']:40s} {r['max_rel_loss_diff']:17.3e} {r['worst_step']:5d} "
              f"{r['share_of_optax_adam_gap']:12.3f}" for r in rows]
    lines += ["  Gradients alone at fixed weights (max over tensors of max|g - g_ref| / max|g_ref|; near the minimum a",
              "  gradient is a small difference of large terms, so float32 loses more of it there):"]
    lines += [f"    at the {where} weights: " + ", ".join(f"{k} {v:.2e}" for k, v in g.items())
              for where, g in gradients.items()]
    return lines, rows


def main(argv=None):
    args = parse_args(argv)
    out = None if args.no_plots else cli.prepare_out_dir(args.out)
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir())

    import jax.numpy as jnp

    from torch_impl.checks import compare as C

    params, x, y = inputs(args, jnp.float64 if args.x64 else jnp.float32)
    result = C.compare(params, x, y, lr=args.lr, optimizer=args.optimizer, steps=args.steps)
    lines = summary_lines(result)
    report = {k: v for k, v in result.items() if k != "losses"}
    report["losses"] = {k: [float(v) if math.isfinite(v) else None for v in vs] for k, vs in result["losses"].items()}
    if args.attribute:
        reference, variants = C.attribute_float32_gap(params, x, y, lr=args.lr, steps=args.steps)
        gradients = {"initial": C.gradient_gap(params, x, y), "final (torch float64)": C.gradient_gap(
            reference.params, x, y)}
        more, rows = attribution_lines(reference.losses, variants, gradients)
        lines += more
        report["attribution"] = {"variants": rows, "gradients": gradients}
    if result["diverged"] is not None:
        where = ", ".join(f"{k} at step {v}" if v is not None else f"{k} stays finite"
                          for k, v in result["diverged"].items())
        lines.append(f"  the loss became non-finite ({where}); no plot written")
    elif out is not None:
        plot(result, out / "compare.png")
        report["plot"] = str(out / "compare.png")
        lines.append(f"  wrote {out / 'compare.png'}")
    print(json.dumps(report) if args.json else "\n".join(lines))
    if result["diverged"] is not None:
        raise SystemExit(cli.DIVERGED)
    if not result["ok"]:
        raise SystemExit(cli.MISMATCH)


if __name__ == "__main__":
    cli.run_main(main)
