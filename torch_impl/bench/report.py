"""The benchmark's records as a reader sees them: the Markdown table (speed-up against torch eager at the same size)
and the targets, each a ratio of two medians from one run or, where the run timed the two side by side (the floor,
the pictures, the ensembles), the median of the paired ratios; met or NOT met."""

from torch_impl.bench.plan import NOTEBOOK
from torch_impl.bench.records import best_torch, find

# The issues' targets (issues 9 and 22), each judged on one run.
# pictures: the default run at most 1.6x its --no-plots run (the pictures drawn in the run's own process)
TARGETS = {"notebook": 100.0, "floor": 2.5, "points": 2.0, "ensemble": 3.0, "pictures": 1.6, "size_floor": 2.0}
TARGET_POINTS = (10_000, 20)
FLOOR_POINTS = (1_000, 100_000)  # issue 22: train.fit within TARGETS["size_floor"] of the floor over this range
TARGET_MODELS = (256, 1024)


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.3f}" if seconds < 1 else f"{seconds * 1e3:,.0f}"


def markdown_table(records) -> str:
    """One row per record; speed-up against torch eager at the same size (and the same number of models)."""
    baseline = {(r["variant"], r["points"], r["hidden"], r["models"]): r["median_s"] for r in records
                if r["framework"] == "torch" and r["variant"] in ("eager", "ensemble") and r["median_s"]}
    lines = ["| framework | variant | device | points | hidden | models | first call (s) | median (ms) | min (ms) "
             "| max (ms) | vs torch |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        kind = "ensemble" if "ensemble" in r["variant"] else "eager"
        base = baseline.get((kind, r["points"], r["hidden"], r["models"]))
        measured = r["median_s"] and "process" not in r["variant"] and "floor" not in r["variant"]
        speedup = f"{base / r['median_s']:.1f}x" if base and measured else ""
        first = "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
        median = f"failed: {r['error']}" if r["error"] else _ms(r["median_s"])
        lines.append(f"| {r['framework']} | {r['variant']} | {r['device']} | {r['points']:,} | {r['hidden']} | "
                     f"{r['models']} | {first} | {median} | {_ms(r['min_s'])} | {_ms(r['max_s'])} | {speedup} |")
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _quartiles(r) -> str:
    return f"quartiles {r['paired_ratio_p25']:.2f}-{r['paired_ratio_p75']:.2f}"


def target_lines(records) -> list[str]:
    """The targets, each a ratio of two medians from this run (where both were measured), or the median of ratios
    taken side by side where the run paired them (the floor, the pictures, the ensembles), with met / NOT met."""
    return [*_notebook_lines(records), *_process_lines(records), *_size_lines(records), *_ensemble_lines(records),
            *slope_lines(records)]


SLOPE_FROM = 1_000  # below it a step's fixed costs (dispatch, Python) hide the growth


def slope_lines(records) -> list[str]:
    """Growth: each variant's slope of log(median time) against log(size) (least squares), over points >= SLOPE_FROM
    at one width, or over model counts >= 64 for the ensembles. 1 is linear; below 1, fixed costs still show."""
    import numpy as np

    groups = {}
    for r in records:
        if not r["median_s"] or "process" in r["variant"] or "floor" in r["variant"]:
            continue
        ensemble = "ensemble" in r["variant"]
        size = r["models"] if ensemble else r["points"]
        if size >= (64 if ensemble else SLOPE_FROM):
            key = (r["framework"], r["variant"], "models" if ensemble else f"points at width {r['hidden']}")
            groups.setdefault(key, []).append((size, r["median_s"]))
    lines = []
    for (framework, variant, over), sizes in sorted(groups.items()):
        if len({n for n, _ in sizes}) >= 2:
            slope = np.polyfit(*np.log([[n for n, _ in sizes], [t for _, t in sizes]]), 1)[0]
            lines.append(f"- growth: {framework} {variant}, time ~ {over.split()[0]}^{slope:.2f} "
                         f"({over}, {min(n for n, _ in sizes):,} to {max(n for n, _ in sizes):,})")
    return lines


def _notebook_lines(records) -> list[str]:
    lines = []
    fit, eager = find(records, "jax", "train.fit", *NOTEBOOK), find(records, "torch", "eager", *NOTEBOOK)
    floor = find(records, "jax", "arithmetic floor", *NOTEBOOK)
    if fit and eager:
        lines.append(f"- notebook size: train.fit {eager / fit:.0f}x faster than torch eager (target >= "
                     f"{TARGETS['notebook']:.0f}x: {_verdict(eager / fit >= TARGETS['notebook'])})")
    paired = next((r for r in records if r["variant"] == "arithmetic floor" and "paired_ratio_median" in r
                   and (r["points"], r["hidden"]) == NOTEBOOK), None)
    if paired:
        ratio, aim = paired["paired_ratio_median"], TARGETS["floor"]
        lines.append(f"- notebook size: train.fit at {ratio:.2f}x the arithmetic floor, median of "
                     f"{paired['paired_rounds']} paired rounds ({_quartiles(paired)}; aim <= {aim}x: "
                     f"{_verdict(ratio <= aim)})")
    if fit and floor:
        lines.append(f"- notebook size: train.fit median at {fit / floor:.1f}x the best-of-five floor of "
                     f"{floor * 1e3:.3f} ms (unpaired)")
    return lines


def _process_lines(records) -> list[str]:
    lines = []
    jax_process, torch_process = (find(records, "jax", "process, cache warm", *NOTEBOOK),
                                  find(records, "torch", "process", *NOTEBOOK))
    if jax_process and torch_process:
        lines.append(f"- whole process: train_jax.py at {jax_process / torch_process:.2f} of train_torch.py's wall "
                     "time (cache warm)")
    for r in records:
        if "pictures" in r["variant"] and "paired_ratio_median" in r:
            ratio, aim = r["paired_ratio_median"], TARGETS["pictures"]
            target = f"; target <= {aim:g}x: {_verdict(ratio <= aim)}" if r["framework"] == "jax" else ""
            base = (f" ({r['median_s']:.2f} s against {r['paired_base_median_s']:.2f} s)"
                    if r.get("paired_base_median_s") else "")
            lines.append(f"- whole process: {r['framework']}'s default run (pictures) at {ratio:.2f}x its --no-plots "
                         f"run{base}, median of {r['paired_rounds']} paired runs ({_quartiles(r)}{target})")
    return lines


def _size_lines(records) -> list[str]:
    lines = []
    for points, hidden in sorted({(r["points"], r["hidden"]) for r in records if r["variant"] == "eager"}):
        fit, eager = find(records, "jax", "train.fit", points, hidden), find(records, "torch", "eager", points, hidden)
        if fit and eager and (points, hidden) != NOTEBOOK:
            target = TARGETS["points"] if (points, hidden) == TARGET_POINTS else 1.0
            lines.append(f"- {points:,} points x {hidden}: train.fit {eager / fit:.1f}x faster than torch eager "
                         f"(target >= {target:g}x: {_verdict(eager / fit >= target)})")
    for points, hidden in sorted({(r["points"], r["hidden"]) for r in records if r["variant"] == "train.fit"}):
        fit, best = find(records, "jax", "train.fit", points, hidden), best_torch(records, points, hidden)
        if fit and best:
            lines.append(f"- {points:,} points x {hidden}: train.fit {best[1] / fit:.2f}x faster than the best torch "
                         f"variant ({best[0]}; target > 1x: {_verdict(best[1] > fit)})")
        floor = find(records, "jax", "arithmetic floor", points, hidden)
        if fit and floor and FLOOR_POINTS[0] <= points <= FLOOR_POINTS[1]:
            aim = TARGETS["size_floor"]
            lines.append(f"- {points:,} points x {hidden}: train.fit at {fit / floor:.1f}x the arithmetic floor "
                         f"(target <= {aim:g}x: {_verdict(fit / floor <= aim)})")
    return lines


def _ensemble_lines(records) -> list[str]:
    lines = []
    for models in sorted({r["models"] for r in records if r["variant"] == "ensemble"}):
        jax_e, torch_e = (find(records, framework, "ensemble", *NOTEBOOK, models) for framework in ("jax", "torch"))
        if jax_e and torch_e:
            devices = records[0]["machine"].get("jax_devices", 1)
            lines.append(f"- ensemble of {models:,}: JAX on {devices} device(s) {torch_e / jax_e:.1f}x faster than "
                         f"batched torch eager")
        best = best_torch(records, *NOTEBOOK, models, ensemble=True)
        lead = next((r["lead_over_best_torch"] for r in records if r["variant"] == "ensemble"
                     and r["models"] == models and "lead_over_best_torch" in r), None)
        if jax_e and best:
            aim = TARGETS["ensemble"]
            ratio = lead["paired_ratio_median"] if lead else best[1] / jax_e  # side by side where measured so
            notes = ([f"median of {lead['paired_rounds']} paired rounds, {_quartiles(lead)}",
                      f"{best[1] / jax_e:.1f}x from the medians"] if lead else [])
            if models in TARGET_MODELS:
                notes.append(f"target >= {aim:g}x: {_verdict(ratio >= aim)}")
            lines.append(f"- ensemble of {models:,}: JAX {ratio:.1f}x faster than the best torch ensemble "
                         f"({lead['variant'] if lead else best[0]})" + (f" ({'; '.join(notes)})" if notes else ""))
    return lines
