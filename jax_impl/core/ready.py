"""Waiting for a jitted computation's results so that Ctrl-C and SIGTERM act while it runs.

Python runs a signal's handler only when the main thread runs bytecode. Reading a result that is not ready with
numpy (np.asarray, what compare.py and a sweep's gather did) waits in C++ to the computation's end: compare.py's
"terminated" came 7.2 s after the SIGTERM. jax.block_until_ready (jax 0.10.2) happened to let handlers run every
~0.2 s (measured, not documented). JAX dispatches a jitted run asynchronously, so the main thread can instead ask
each result `is_ready()` (public jax.Array API) between short sleeps: a handler runs within one sleep.
"""

import time

import jax

FIRST_PAUSE_S = 1e-4  # the notebook's run takes ~1-2 ms: its wait must not add a measurable part of that
LONGEST_PAUSE_S = 0.05  # how late a signal's handler may run, at most (plus one is_ready call)
PAUSE_FRACTION = 1 / 16  # each pause a sixteenth of the time waited so far: a run ends at most ~6% late


def pause(waited_s: float) -> float:
    """Seconds to sleep before asking again, after `waited_s` seconds of waiting: growing with the wait (so a long
    run is asked ~20 times a second, a short one often enough to be seen ready on time), between FIRST_PAUSE_S and
    LONGEST_PAUSE_S."""
    return min(LONGEST_PAUSE_S, max(FIRST_PAUSE_S, waited_s * PAUSE_FRACTION))


def wait(tree):
    """jax.block_until_ready(tree), with Python's signal handlers running meanwhile (a KeyboardInterrupt or the
    scripts' Terminated raised here, within ~LONGEST_PAUSE_S of the signal). Returns tree; a non-array leaf is left
    as it is. A program XLA:CPU runs in the caller's thread instead (seen for a loop over 64 floats; every training
    run tried, 1 to 20,000 points, went asynchronously) is done before this is called: nothing to wait for."""
    start = time.perf_counter()
    for leaf in jax.tree.leaves(tree):
        while isinstance(leaf, jax.Array) and not leaf.is_ready():
            time.sleep(pause(time.perf_counter() - start))
    # Every leaf is ready, so this returns at once; it also raises what the computation raised, as it always has.
    return jax.block_until_ready(tree)
