"""core/ready.py: waiting for a jitted computation with Python's signal handlers running meanwhile."""

import functools
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_impl.core import ready


class Alarm(Exception):
    pass


def _raise_alarm(signum, frame):
    raise Alarm


@pytest.fixture
def alarm_in():
    """alarm_in(seconds): SIGALRM after `seconds`, its handler raising Alarm; the old handler back afterwards."""
    old = signal.signal(signal.SIGALRM, _raise_alarm)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


# v -> sin(v) + 1 converges to its fixed point FIXED (sin(FIXED) + 1 == FIXED) from any start.
FIXED = 1.9345632107520243


@functools.partial(jax.jit, static_argnames="steps")
def iterate(v, steps: int):
    return jax.lax.scan(lambda v, _: (jnp.sin(v) + 1.0, None), v, None, length=steps)[0]


def long_computation():
    """~0.5 s of XLA work (4096 sines, 25,000 times; compiled first), dispatched asynchronously: JAX returns at
    once. (XLA:CPU runs some programs on tiny arrays in the caller's thread instead; 4096 floats it did not.)"""
    v = jnp.linspace(-3.0, 3.0, 4096)
    iterate(v, steps=25_000).block_until_ready()  # compiled (and run once) before the timed call
    result = iterate(v, steps=25_000)
    assert not result.is_ready()  # the premise: the work goes on while Python runs
    return result


@pytest.mark.parametrize("waited, pause", [(0.0, 1e-4), (1e-3, 1e-4), (0.016, 1e-3), (0.4, 0.025), (0.8, 0.05),
                                           (600.0, 0.05)])
def test_the_pauses_grow_with_the_wait_between_bounds(waited, pause):
    """A sixteenth of the wait so far (so a run ends at most ~6% late), never under 0.1 ms (the notebook's ~1-2 ms
    run) nor over 50 ms (how late a signal may act)."""
    assert ready.pause(waited) == pytest.approx(pause)


def test_wait_returns_the_tree_with_its_values():
    tree = {"a": jnp.arange(3.0) * 2, "b": (jnp.ones(2), 7)}  # 7: not an array, passed through
    waited = ready.wait(tree)
    assert waited["b"][1] == 7 and all(leaf.is_ready() for leaf in jax.tree.leaves(waited)[:2])
    np.testing.assert_array_equal(waited["a"], [0.0, 2.0, 4.0])


def test_a_signal_acts_while_wait_waits(alarm_in):
    """SIGALRM's handler runs inside ready.wait, within its longest pause, while the result is still not ready;
    waited for again, the result is the computation's."""
    result = long_computation()
    start = time.monotonic()
    alarm_in(0.02)
    with pytest.raises(Alarm):
        ready.wait(result)
    acted = time.monotonic() - start
    # ~0.02 s and one pause (1.3 ms then); under 0.15 s, so sooner than jax.block_until_ready's ~0.2 s checks would
    # have run it, with room for a loaded machine
    assert not result.is_ready() and acted < 0.15, acted
    np.testing.assert_allclose(ready.wait(result), FIXED, rtol=1e-6)

