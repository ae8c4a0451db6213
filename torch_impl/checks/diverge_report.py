"""The localizer's result as a reader sees it (scripts/diverge.py, compare.py): the text, the JSON report and the
picture (drawn on a figure the caller makes and saves)."""

import numpy as np

from torch_impl.checks.diverge import Crossing, Walk

# The picture's lines: one per family of quantities, the largest share over its tensors.
FAMILIES = ("params", "forward", "loss", "grads", "adam.mu", "adam.nu", "update")


def describe(record) -> str:
    m = record.metadata
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return f"{m['implementation']} {m['precision']} ({versions}; {m['cpu']})"


def crossing_line(c: Crossing) -> str:
    """The first crossing in one line: step, tensor, element, both values, the difference, bound and ratio."""
    index = f"[{', '.join(map(str, c.index))}]" if c.index else ""
    return (f"first crossing: step {c.step}, {c.quantity}{index}: {c.a:.9g} vs {c.b:.9g}, difference {c.diff:.3e} "
            f"> bound {c.bound:.3e} (ratio {c.ratio:.3g}; {c.carried:.3e} of the bound carried in from before)")


def lines(walk: Walk, a, b) -> list[str]:
    """The verdict, the worst shares per family, and the first crossing if any."""
    steps = walk.steps
    head = [f"A: {describe(a)}", f"B: {describe(b)}",
            f"{len(steps)} recorded steps ({int(steps[0])} ... {int(steps[-1])}, every {a.metadata['every']}), "
            f"{len(walk.shares)} quantities a step, walked in computation order"]
    worst = family_shares(walk)
    head.append("  largest share of the rounding allowance used: " + ", ".join(
        f"{k} {float(np.max(v)):.3g}" for k, v in worst.items()))
    if walk.first is None:
        return head + ["no crossing: the runs agree within rounding at every step"]
    return head + [crossing_line(walk.first)]


def family_shares(walk: Walk) -> dict:
    """family -> (T,) the largest share over its quantities."""
    out = {}
    for family in FAMILIES:
        members = [v for k, v in walk.shares.items() if k == family or k.startswith(family + ".")]
        out[family] = np.max(members, axis=0)
    return out


def _plain(value):
    """A float JSON can hold: inf and NaN (a count that differs, a NaN on one side) as the strings "inf", "nan"."""
    return value if not isinstance(value, float) or np.isfinite(value) else str(value)


def as_json(walk: Walk, a, b) -> dict:
    first = {k: _plain(v) for k, v in walk.first._asdict().items()} if walk.first is not None else None
    return {"a": a.metadata, "b": b.metadata, "steps": len(walk.steps), "agree": walk.first is None,
            "first_crossing": first,
            "worst_share": {k: _plain(float(np.max(v))) for k, v in walk.shares.items()}}


def draw(fig, walk: Walk) -> None:
    """On `fig`: each family's largest share of its rounding allowance over the steps (log y), the line 1 above which
    a quantity crosses, and the first crossing marked."""
    ax = fig.subplots()
    steps = np.asarray(walk.steps)
    for family, share in family_shares(walk).items():
        shown = share > 0
        ax.semilogy(steps[shown], np.minimum(share[shown], 1e30), ".-", ms=2, lw=0.6, label=family)
    ax.axhline(1.0, color="r", ls=":", label="bound")
    if walk.first is not None:
        c = walk.first
        ax.axvline(c.step, color="k", lw=0.8)
        ax.set_title(f"first crossing: step {c.step}, {c.quantity} (ratio {c.ratio:.3g})")
    else:
        ax.set_title("no crossing")
    ax.set(xlabel="step", ylabel="(difference - carried) / rounding allowance")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
