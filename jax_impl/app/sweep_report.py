"""A sweep's results as a reader sees them: one row per configuration (summarise), the best one, the table, the
divergence report, and each model's JSON record. Records are dicts (seed, lr, hidden, optimizer, final_loss,
diverged_at, losses), in training order: configurations of len(seeds) consecutive models. No jax here."""

import math

import numpy as np


def summarise(records, seeds) -> list[dict]:
    """One row per (hidden, optimizer, lr): mean, spread (std), min and max of the final loss over the seeds."""
    rows = []
    per_config = len(seeds)
    for start in range(0, len(records), per_config):
        block = records[start:start + per_config]
        finite = np.array([r["final_loss"] for r in block if r["final_loss"] is not None], dtype=float)
        rows.append({"hidden": block[0]["hidden"], "optimizer": block[0]["optimizer"], "lr": block[0]["lr"],
                     "seeds": len(block), "diverged": len(block) - finite.size,
                     "mean": float(finite.mean()) if finite.size else None,
                     "std": float(finite.std()) if finite.size else None,
                     "min": float(finite.min()) if finite.size else None,
                     "max": float(finite.max()) if finite.size else None, "first": start})
    return rows


def best_row(rows):
    """The configuration with the lowest mean final loss among those where no seed diverged (or None)."""
    complete = [r for r in rows if r["diverged"] == 0]
    return min(complete, key=lambda r: r["mean"]) if complete else None


def table_text(rows, best) -> str:
    """The sweep's summary rows (one per hidden x optimizer x lr: mean, std, min, max of the final losses over the
    seeds, and how many diverged) as a text table, the best configuration marked."""
    fmt = lambda v: "-" if v is None else f"{v:.6f}"  # noqa: E731
    lines = [f"{'hidden':>6} {'optimizer':>9} {'lr':>10} {'seeds':>5} {'mean loss':>10} {'std':>10} {'min':>10} "
             f"{'max':>10} {'diverged':>8}"]
    for r in rows:
        mark = "  <- best" if r is best else ""
        lines.append(f"{r['hidden']:>6} {r['optimizer']:>9} {r['lr']:>10.4g} {r['seeds']:>5} {fmt(r['mean']):>10} "
                     f"{fmt(r['std']):>10} {fmt(r['min']):>10} {fmt(r['max']):>10} {r['diverged']:>8}{mark}")
    return "\n".join(lines) + "\n"


def divergence_lines(rows, records) -> list[str]:
    """One line per configuration with a diverged seed: how many, at which steps, which seeds."""
    bad = [r for r in records if r["diverged_at"] is not None]
    if not bad:
        return []
    lines = [f"{len(bad)} of {len(records)} models diverged (non-finite loss); they are marked in sweep.json "
             "(diverged_at, final_loss null) and the others kept:"]
    for row in rows:
        block = [r for r in records[row["first"]:row["first"] + row["seeds"]] if r["diverged_at"] is not None]
        if block:
            steps = sorted(r["diverged_at"] for r in block)
            seeds = ", ".join(str(r["seed"]) for r in block[:8]) + (", ..." if len(block) > 8 else "")
            lines.append(f"  hidden {row['hidden']}, {row['optimizer']}, lr {row['lr']:g}: {len(block)} of "
                         f"{row['seeds']} seeds, non-finite from step {steps[0]}"
                         + (f" to {steps[-1]}" if steps[-1] != steps[0] else "") + f" (seeds {seeds})")
    return lines


def model_record(record, curves: bool) -> dict:
    """The JSON record of one model; non-finite losses in a curve become null (JSON has no NaN)."""
    out = {k: v for k, v in record.items() if k != "losses"}
    if curves:
        out["losses"] = [float(v) if math.isfinite(v) else None for v in record["losses"]]
    return out


def summary(records, rows, best, groups, *, curves: bool, **about) -> dict:
    """sweep.json: `about` (devices and the like, first), the groups, the best configuration, every configuration
    (summarise's rows) and every model (model_record)."""
    return {**about, "groups": groups,
            "best": None if best is None else {k: best[k] for k in ("hidden", "optimizer", "lr", "mean", "std")},
            "configurations": [{k: v for k, v in r.items() if k != "first"} for r in rows],
            "models": [model_record(r, curves) for r in records]}
