"""The benchmark's records: one dict per measured case (the keys of --json), how to find one, and the table's order.

Times are seconds; `points`, `hidden`, `steps` and `models` give the size; `error` is the first line of what failed
(timings None then). Extra keys (the floor's rates, paired ratios) ride along.
"""

RECORD_KEYS = ("framework", "variant", "device", "points", "hidden", "steps", "models", "compile_s", "median_s",
               "min_s", "max_s", "repeats", "error", "versions", "machine")
NO_TIMING = {"compile_s": None, "median_s": None, "min_s": None, "max_s": None, "repeats": 0}
# Rows by size (ensembles after, by models), then JAX before torch, then this order; processes last.
VARIANT_ORDER = ("train.fit", "jit step loop", "arithmetic floor", "eager", "compile", "cuda graph", "func step",
                 "func step compiled", "func step max-autotune", "func step reduce-overhead", "ensemble",
                 "func ensemble", "func ensemble compiled")


def make_record(framework, variant, device, points, hidden, steps, models=1, timing=None, error=None, **extra) -> dict:
    """One record; timing: time_runs's dict (None: not measured). versions and machine are added by the runner."""
    return {"framework": framework, "variant": variant, "device": device, "points": points, "hidden": hidden,
            "steps": steps, "models": models, **(timing or NO_TIMING), "error": error, **extra}


def find(records, framework, variant, points, hidden, models=1):
    """The median seconds of the record with these fields, or None."""
    for r in records:
        if (r["framework"], r["variant"], r["points"], r["hidden"], r["models"]) == (framework, variant, points,
                                                                                    hidden, models):
            return r["median_s"]
    return None


def best_torch(records, points, hidden, models=1, ensemble=False):
    """(variant, median seconds) of the fastest torch variant measured at this size (the ensembles' or the single
    runs'), or None."""
    timed = [(r["median_s"], r["variant"]) for r in records
             if r["framework"] == "torch" and r["median_s"] and ("ensemble" in r["variant"]) == ensemble
             and "process" not in r["variant"] and (r["points"], r["hidden"], r["models"]) == (points, hidden, models)]
    return None if not timed else min(timed)[::-1]


def table_order(record) -> tuple:
    """The sort key of the table's rows (VARIANT_ORDER's comment)."""
    variant = record["variant"]
    rank = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
    return ("process" in variant, "ensemble" in variant, record["hidden"], record["points"], record["models"],
            record["framework"] != "jax", rank)
