"""What the port asks of XLA:CPU (jaxlib 0.10.2) for its small programs: per-program options, and one process flag.

XLA:CPU runs a compiled program as a sequence of kernels ("thunks"), one per fusion, dot or copy, dispatched one by
one, each costing 0.1-0.3 us (measured: a scan whose body is k small dots and adds). The notebook's step was 15-16 of
them on 2,000-float arrays, ~6.7 us in all: the dispatch a quarter of the step or more. XLA has a pass that compiles a
whole while loop into one kernel instead, when the loop accesses fewer bytes than
`xla_cpu_small_while_loop_byte_threshold` (1 kB by default, so no training loop qualifies). It is a backend option,
settable only through the XLA_FLAGS environment variable, read when the backend starts: `enable_small_loop_kernels`
sets it to SMALL_LOOP_BYTES. A hoisted loop runs on one core, so it only pays for small loops: fit's scan at the
notebook's size accesses under 100 kB per step; at N * H = 20,000 (1,000 points) over 512 kB, where the two cores of
the kernel-by-kernel runtime are faster (measured: 1000 x 20 hoisted 25 ms, not hoisted 10 ms).
"""

import functools
import os

# Per-program XLA options for the CPU backend (DebugOptions fields of jaxlib 0.10.2), for ensemble's programs and
# for train.fit's small ones. Measured on the 2-core AVX-512 CPU, 201 steps: without YNNPACK fusions ensemble's
# E = 1024 ran 1.9 s instead of 20 s, E = 256 0.31 s instead of 0.40 s; 512-bit vectors then took one core's CPU time
# at E = 256 from 375 to 303 ms. YNNPACK fusions are also what keeps a loop from becoming one kernel (the pass skips
# loops with custom fusions in them), and 512-bit vectors run the sigmoid at 1.47e9 a second instead of 0.90e9 (the
# floor's sigmoid kernel, fastest of 300 interleaved calls in one process; bench/speed-work.json, v4).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_prefer_vector_width": 512}

# Loops accessing fewer bytes (by XLA's cost analysis, one iteration) become one kernel. 2^17: fit's scan up to about
# N * H = 3,000 (the notebook's 100 x 20 is 64-96 kB, float32) and ensemble's scan for one model, but not for two or
# more, whose compiled code must not depend on how many models a device holds (sharding.py's results are the one
# device's bit for bit; a loop compiled as one kernel rounds differently in the last bit). 2^19 would take fit to
# N * H = 8,000, and ensemble's two- and three-model programs with it.
SMALL_LOOP_BYTES = 2**17
SMALL_LOOP_OPTION = "xla_cpu_small_while_loop_byte_threshold"
EXTRA_OPTIONS = "--xla_backend_extra_options="


def enable_small_loop_kernels() -> bool:
    """Ask XLA:CPU to compile loops under SMALL_LOOP_BYTES into one kernel, for every JAX program of this process. Call
    before JAX's backend starts (before the first array or compilation; importing jax is fine). Backend options the
    user already set in XLA_FLAGS are kept (this one is added to their comma-separated list; a threshold of their own
    wins). Returns whether the flag will take effect: False once the backend is running.
    """
    from jax._src import xla_bridge  # no public "has the backend started" in jax 0.10.2

    if xla_bridge.backends_are_initialized():
        return False
    flags = os.environ.get("XLA_FLAGS", "").split()
    ours = f"{SMALL_LOOP_OPTION}={SMALL_LOOP_BYTES}"
    extra = [i for i, flag in enumerate(flags) if flag.startswith(EXTRA_OPTIONS)]
    if not extra:
        flags.append(EXTRA_OPTIONS + ours)
    elif not any(SMALL_LOOP_OPTION in flags[i] for i in extra):
        flags[extra[-1]] += "," + ours
    os.environ["XLA_FLAGS"] = " ".join(flags)
    return True


@functools.cache
def compiler_options() -> dict:
    """CPU_COMPILER_OPTIONS where the backend is the CPU and this jaxlib knows them, else none.

    Asked on the first compilation, not at import: the backend must not start before jax.distributed.initialize.
    """
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(lambda a: a + 1).lower(jnp.zeros(2)).compile(compiler_options=CPU_COMPILER_OPTIONS)
    except Exception:  # an older or newer jaxlib without these DebugOptions fields: XLA's defaults
        return {}
    return dict(CPU_COMPILER_OPTIONS)
