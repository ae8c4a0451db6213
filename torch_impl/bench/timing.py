"""Timing one benchmark case: the first call (tracing, compilation, one run) apart, untimed warm-ups until the time
settles, then warm runs within a budget, reported as median, min and max in seconds; and a case measured into its
record."""

import os
import statistics
import sys
import time

from torch_impl.bench import memory
from torch_impl.bench.records import make_record

MIN_REPEATS = 3  # median, min and max need at least three warm runs to mean anything
# torch's first runs at 10^4 points took 11 s, 3.7 s, then 0.56 s here, as the allocator settles: up to this many
# untimed warm-ups, until one is no more than 20% faster than the one before.
MAX_WARMUPS = 4
SETTLED = 0.8  # a warm-up at least this fraction of the previous one's time: the time has settled


def timed(fn) -> float:
    """Seconds fn() takes (fn returns only when its work is done: block_until_ready / synchronize inside)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_runs(run, *, repeats: int, budget_s: float) -> dict:
    """First call timed apart; warm-ups (MAX_WARMUPS at most); then warm runs, as many as fit in budget_s seconds,
    between MIN_REPEATS and `repeats`. Returns {compile_s, median_s, min_s, max_s, repeats} (seconds)."""
    compile_s = previous = timed(run)
    for _ in range(MAX_WARMUPS):
        current = timed(run)
        if current > SETTLED * previous:
            break
        previous = current
    times = []
    while len(times) < repeats:
        times.append(timed(run))
        if len(times) >= MIN_REPEATS and sum(times) > budget_s:
            break
    return {"compile_s": compile_s, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": len(times)}


def script_env(**extra) -> dict:
    """The environment for a timed script process: this one's and `extra`, less PYTHONDONTWRITEBYTECODE, so that a
    script's second run finds its modules compiled (in __pycache__ beside them, git-ignored), as a user's second run
    does. This project's sandboxes set it, which made every timed run compile the project's own modules again: about
    0.04 s of a 1 s run here (all 38 modules compile in 0.08 s)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def first_line(error: Exception) -> str:
    """An exception as one line of at most 300 characters: its type and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def progress(message: str) -> None:
    """One line of the benchmark's progress on stderr, as it happens."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def measure(case, inputs, points: int, models: int, *, repeats: int, budget_s: float) -> dict:
    """measure_kept's record alone."""
    return measure_kept(case, inputs, points, models, repeats=repeats, budget_s=budget_s)[0]


def measure_kept(case, inputs, points: int, models: int, *, repeats: int, budget_s: float) -> tuple[dict, object]:
    """A case (cases.Case) timed on its inputs (cases.Inputs) with `models` models: (its record (with the process's
    peak resident memory during the case, and its growth over the resident size at the start: memory.py), its run()
    for more timings (paired_lead), or None where it failed), and a progress line.
    A case that cannot run here (no compiler, no memory) is recorded with its error's first line instead of timings,
    not fatal."""
    where = f"{points} points x {inputs.hidden}" + (f", {models} models" if case.sizes == "ensemble" else "")
    size = (case.framework, case.variant, inputs.device, points, inputs.hidden, inputs.steps, models)
    start_rss = memory.reset_peak()
    try:
        run = case.build(inputs, models)
        timing = time_runs(run, repeats=repeats, budget_s=budget_s)
    except Exception as e:
        progress(f"{case.name:24s} {where:30s} failed: {first_line(e)}")
        return make_record(*size, error=first_line(e)), None
    high = memory.peak()
    # The resident size may shrink between the reset and the case's peak: no growth then, never a negative one
    grown = None if start_rss is None or high is None else max(0, high - start_rss)
    progress(f"{case.name:24s} {where:30s} first {timing['compile_s']:8.3f} s  median "
             f"{timing['median_s'] * 1e3:10.3f} ms" + ("" if grown is None else f"  peak +{grown / 2**20:,.0f} MiB"))
    return make_record(*size, timing, peak_rss_bytes=high, peak_growth_bytes=grown), run


def paired_lead(run, peer, rounds: int) -> dict:
    """`peer`'s time over `run`'s, the two taken side by side `rounds` times (which goes first alternates):
    paired_summary of those ratios, and each side's median seconds over the rounds (run_median_s, peer_median_s: which
    of the two moved against its own case's median). The VM's speed drifts within a minute by more than the margin to
    a target, and two cases' medians come from different minutes; a ratio per round does not."""
    times = []
    for i in range(rounds):
        if i % 2:
            peer_s, run_s = timed(peer), timed(run)
        else:
            run_s, peer_s = timed(run), timed(peer)
        times.append((run_s, peer_s))
    return {**paired_summary([peer_s / run_s for run_s, peer_s in times]),
            "run_median_s": statistics.median(t[0] for t in times),
            "peer_median_s": statistics.median(t[1] for t in times)}


def pair_ensembles(records, runs, models, rounds) -> None:
    """The JAX ensemble's lead over the fastest torch ensemble at this count, taken side by side (paired_lead), added
    to the JAX ensemble's record as lead_over_best_torch (with the torch variant's name). runs: framework ->
    (variant, run()), the fastest measured of each."""
    if "jax" in runs and "torch" in runs:
        variant = runs["torch"][0]
        lead = {**paired_lead(runs["jax"][1], runs["torch"][1], rounds), "variant": variant}
        record = next(r for r in records if (r["framework"], r["variant"], r["models"]) == ("jax", "ensemble", models))
        record["lead_over_best_torch"] = lead
        progress(f"ensemble of {models}: torch {variant} / JAX, {rounds} paired rounds: median "
                 f"{lead['paired_ratio_median']:.2f}")


def paired_summary(ratios) -> dict:
    """Ratios of times taken side by side, one per round: their median, quartiles and count (bench.py's records)."""
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else list(ratios) * 3
    return {"paired_ratio_median": statistics.median(ratios), "paired_ratio_p25": quartiles[0],
            "paired_ratio_p75": quartiles[2], "paired_rounds": len(ratios)}
