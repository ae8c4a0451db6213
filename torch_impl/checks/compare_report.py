"""The cross-check's result as a reader sees it (scripts/compare.py): the summary lines, the float32 gap's table, the
JSON report, and the picture (drawn on a figure the caller makes and saves)."""

import math

import numpy as np

from torch_impl.checks.compare import rel_loss_diff

OPTAX_ADAM = "JAX float32, optax.adam"  # the attribution's row that every share is relative to


def summary_lines(result) -> list[str]:
    """compare.compare's result in five lines: the run, the losses', final parameters' and initial gradients'
    largest differences against their tolerances (losses and gradients also in units of their allowance, the relative
    tolerance plus the rounding floor: <= 1 agrees), and the verdict."""
    tol = result["tolerances"]
    params = ("not compared (diverged)" if result["max_abs_param_diff"] is None else
              f"{result['max_abs_param_diff']:.3e} ({result['worst_param']}; tolerance {tol['abs_param']:.0e}"
              + ("" if result["param_scale"] == 1.0 else f" x largest weight {result['param_scale']:.3g}") + ")")
    floor = (f"; the rounding floor settles {result['loss_floor_steps']} steps where the loss is too near zero for "
             f"a relative difference" if result["loss_floor_steps"] else "")
    return [f"JAX against torch, {result['dtype']}, {result['optimizer']} lr {result['lr']}, {result['steps']} steps, "
            f"{result['points']} points, hidden {result['hidden']}",
            f"  losses: max relative difference {result['max_rel_loss_diff']:.3e} at t = {result['worst_step']}; "
            f"{result['loss_units']:.3g} of the allowance at worst (t = {result['loss_units_step']}; tolerance "
            f"{tol['rel_loss']:.0e} relative + both losses' rounding and {tol['drift']:.0e} drift{floor}; "
            f"{result['compared_steps']} steps compared)",
            f"  final parameters: max absolute difference {params}",
            f"  initial gradients: max relative difference {result['max_rel_grad_diff']:.3e} ({result['worst_grad']}); "
            f"{result['grad_units']:.3g} of the allowance at worst ({result['grad_units_tensor']}; tolerance "
            f"{tol['rel_grad']:.0e} relative + both sides' rounding)",
            f"  {'agree' if result['ok'] else 'DISAGREE'}" + (" (on the steps before the loss turned non-finite)"
                                                               if result["diverged"] and result["ok"] else "")
            + horizon_words(result)]


def horizon_words(result) -> str:
    """The verdict's qualifier where the torch run was measured against itself (result["horizon"], compare.horizon;
    None: not measured, the first verdict agreed or the loss turned non-finite)."""
    horizon = result["horizon"]
    if horizon is None:
        return ""
    if horizon["step"] is None:
        return (f" (torch against itself from weights one rounding apart stays within its allowance: "
                f"{horizon['units']:.3g} at most, at step {horizon['units_step']})")
    return (f" {'up to' if result['ok'] else 'before'} step {horizon['step']}; beyond it the run amplifies rounding "
            f"(torch against itself from weights one rounding apart parts by {horizon['units']:.3g} allowances at "
            f"step {horizon['units_step']}): not judged")


def divergence_line(diverged: dict) -> str:
    """Where each side's loss turned non-finite ({side: first bad step or None})."""
    where = ", ".join(f"{k} at step {v}" if v is not None else f"{k} stays finite" for k, v in diverged.items())
    return f"  the loss became non-finite ({where}); no plot written"


def attribution_lines(reference_losses, variants, gradients) -> tuple[list[str], list[dict]]:
    """compare.attribute_float32_gap's variants against the torch float64 reference's losses, and gradient_gap's
    {where: differences}: (the table's lines, its rows {variant, cause, max_rel_loss_diff, worst_step,
    share_of_optax_adam_gap})."""
    rows = []
    for v in variants:
        rel = rel_loss_diff(v.run.losses, reference_losses)
        rows.append({"variant": v.name, "cause": v.cause, "max_rel_loss_diff": float(rel.max()),
                     "worst_step": int(rel.argmax())})
    gap = next(r["max_rel_loss_diff"] for r in rows if r["variant"] == OPTAX_ADAM)
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


def as_json(result) -> dict:
    """The result for JSON: the loss curves as lists, a non-finite loss as null (JSON has no NaN)."""
    finite = lambda vs: [float(v) if math.isfinite(v) else None for v in vs]  # noqa: E731
    report = {k: v for k, v in result.items() if k not in ("losses", "loss_allowance")}
    report["losses"] = {k: finite(vs) for k, vs in result["losses"].items()}
    report["loss_allowance"] = finite(result["loss_allowance"])
    if result.get("horizon") is not None:  # a nudged torch run that turned non-finite parts by NaN allowances
        report["horizon"] = {k: None if isinstance(v, float) and not math.isfinite(v) else v
                             for k, v in result["horizon"].items()}
    return report


FIGURE_SIZE = (11, 4)  # inches: two panels side by side


def draw(fig, result) -> None:
    """On `fig`: left, both loss curves (log y); right, the per-step relative difference (log y) and its tolerance
    (the allowance relative to the loss: rel_loss, higher where the rounding floor was needed)."""
    jax_losses, torch_losses = result["losses"]["jax"], result["losses"]["torch"]
    steps = np.arange(len(jax_losses))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(jax_losses - torch_losses) / np.abs(torch_losses)
        tolerance = result["loss_allowance"] / np.abs(torch_losses[:len(result["loss_allowance"])])
    tolerance = np.where(np.isfinite(tolerance), tolerance, np.nan)  # a zero loss has no relative tolerance to draw
    left, right = fig.subplots(1, 2)
    left.semilogy(steps, torch_losses, lw=3, alpha=0.5, label="torch")
    left.semilogy(steps, jax_losses, "--", label="JAX")
    left.set(xlabel="step t", ylabel="MSE loss before update t", title=f"loss, {result['dtype']}")
    left.legend()
    shown = rel > 0  # exact agreement has no place on a log scale: such steps are left out and counted
    right.semilogy(steps[shown], rel[shown], ".", ms=3, label="|JAX - torch| / |torch|")
    right.semilogy(steps[:len(tolerance)], tolerance, "r:", label="tolerance (with the rounding floor)")
    if result["horizon"] is not None and result["horizon"]["step"] is not None:
        right.axvline(result["horizon"]["step"], color="grey", ls="--", label="horizon: not judged from here")
    right.set(xlabel="step t", ylabel="relative difference",
              title=f"max {result['max_rel_loss_diff']:.2e} at t = {result['worst_step']}"
                    f" ({int((~shown).sum())} steps equal)")
    right.legend()
    fig.tight_layout()
