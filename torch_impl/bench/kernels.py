"""Where a compiled run spends its time, kernel by kernel: one call traced with jax.profiler (public API), the trace's
events summed by name. XLA:CPU runs a program as a sequence of kernels (fusions, dots, loops); each is one event per
execution, named as in the optimized HLO (`jax.jit(...).lower(...).compile().as_text()`), so that a slow kernel can be
read there. Kept beside the benchmarks; imports jax, not torch.
"""

import re
import tempfile
import time

# A kernel's event is named as its HLO instruction ("add_divide_fusion", "dot.27"). The trace's other events are not
# one kernel's work, and their names are no HLO instruction's: the executor's and thread pool's spans
# ("ThunkExecutor::Execute"), Python frames ("$train.py:12 fit"), the call's dispatch and host transfers
# ("PjitFunction(fit)", "np.asarray(jax.Array)"). Loops ("while.N") hold their body's kernels: reported apart, not
# counted in shares.
HLO_NAME = re.compile(r"[A-Za-z_][\w.\-]*")


def trace_events(run, folder) -> list[tuple[str, int]]:
    """(name, duration in ns) of every event on the host's trace of one call of `run`, traced into `folder`."""
    import pathlib

    import jax

    with jax.profiler.trace(str(folder)):
        run()
    traces = sorted(pathlib.Path(folder).rglob("*.xplane.pb"))
    if not traces:
        raise RuntimeError(f"jax.profiler wrote no trace under {folder}")
    data = jax.profiler.ProfileData.from_file(str(traces[-1]))
    return [(event.name, event.duration_ns) for plane in data.planes if plane.name.startswith("/host")
            for line in plane.lines for event in line.events]


def kernel_profile(run, steps: int) -> dict:
    """One call of the warm `run` (a function that blocks until its result is ready) traced: its kernels, slowest
    first, each with calls, milliseconds per step (the run's `steps`) and share of the kernels' sum; loops apart;
    the call's wall time traced and untraced (tracing costs ~1 us an event, more than a kernel at small sizes)."""
    run()
    begin = time.perf_counter()
    run()
    untraced = time.perf_counter() - begin
    with tempfile.TemporaryDirectory(prefix="kernels-") as folder:
        begin = time.perf_counter()
        events = trace_events(run, folder)
        traced = time.perf_counter() - begin
    totals = {}
    for name, ns in events:
        if HLO_NAME.fullmatch(name):
            calls, total = totals.get(name, (0, 0))
            totals[name] = (calls + 1, total + ns)
    loops = {n: v for n, v in totals.items() if n.startswith("while")}
    kernels = {n: v for n, v in totals.items() if n not in loops}
    kernel_ns = sum(ns for _, ns in kernels.values()) or 1
    row = lambda name, calls, ns: {"kernel": name, "calls": calls, "ms_per_step": ns / 1e6 / steps,  # noqa: E731
                                   "share": ns / kernel_ns}
    return {"untraced_s": untraced, "traced_s": traced, "kernels_s": kernel_ns / 1e9,
            "kernels": [row(n, *v) for n, v in sorted(kernels.items(), key=lambda kv: -kv[1][1])],
            "loops": [row(n, *v) | {"share": None} for n, v in sorted(loops.items(), key=lambda kv: -kv[1][1])]}
