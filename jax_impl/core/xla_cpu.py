"""The XLA:CPU options the port uses, each with one line of why; the measurements are in bench/README.md.

Three kinds. Per-program compiler options go to jax.jit(..., compiler_options=compiler_options()). The small-loop
threshold is a process flag in the XLA_FLAGS environment variable, which XLA reads once, when JAX's backend starts:
call set_xla_flags() before importing jax (the scripts do, through cli.setup_jax; tests/conftest.py does). The number
of CPU devices is JAX's own option, jax_num_cpu_devices (set_cpu_devices), set before the backend starts.
"""

import functools
import os
import sys

CPU_COMPILER_OPTIONS = {
    # YNNPACK's reduction fusions sum over an outer axis slowly (ensembles ran 10x slower) and keep a loop from
    # compiling to one kernel; a single fit's sum over the points (its db1) ran 0.68x as long without them at
    # 1,000 x 20 and 0.75x at 10^4 x 256, 1.03x at 10^5 x 20 (AMD EPYC, AVX2).
    "xla_cpu_experimental_ynn_fusion_type": "",
    # 512-bit vectors: the sigmoid 1.6x faster on this AVX-512 Xeon (a hint: CPUs without them keep their width).
    "xla_cpu_prefer_vector_width": 512,
    # For ensembles only (compiler_options(tree_reductions=False)): XLA's tree_reduction_rewriter splits every sum over
    # more than 32 elements into a reduce-window of 32-wide partial sums and a second reduce, an extra kernel and pass
    # for each sum over the points. Without it an ensemble ran 0.86-0.89x as long at 64-4,096 models (AMD EPYC,
    # AVX2; bench/speed-work.json). Other last bits, about as close: summing 64 rows of U[0, 1) in float32, the worst
    # relative error against float64 was 1.6e-7 against 1.4e-7 with the trees at 100 points, 1.1e-6 against 2.5e-7
    # at 10^6 (the same record, "sum_accuracy"). train.fit keeps the trees: its sums run to 10^6 points.
    "xla_disable_hlo_passes": "tree_reduction_rewriter",
}

# A while loop accessing fewer bytes per iteration compiles to one kernel instead of one dispatch per operation: fit's
# scan at the notebook's size (64-96 kB), 1.8x faster. No higher: a loop compiled as one kernel rounds differently,
# and ensemble's programs for 2+ models must stay as they are (sharding's per-device results equal one device's).
SMALL_LOOP_BYTES = 2**17
SMALL_LOOP_OPTION = "xla_cpu_small_while_loop_byte_threshold"
EXTRA_OPTIONS = "--xla_backend_extra_options="
# One CPU device per core: a sweep shards its models over them (sharding.py), which uses both cores of a two-core
# machine (1.2-1.25x faster at E = 256); a single fit runs on the first device. A count the user set in XLA_FLAGS
# with this flag, or in JAX_NUM_CPU_DEVICES, wins.
HOST_DEVICES = "--xla_force_host_platform_device_count="


def xla_flags(existing: str = "") -> str:
    """`existing` XLA_FLAGS with the port's small-loop threshold added (joined to the user's own backend-options list
    if there is one; a threshold of their own wins)."""
    flags = existing.split()
    ours = f"{SMALL_LOOP_OPTION}={SMALL_LOOP_BYTES}"
    extra = [i for i, flag in enumerate(flags) if flag.startswith(EXTRA_OPTIONS)]
    if not extra:
        flags.append(EXTRA_OPTIONS + ours)
    elif not any(SMALL_LOOP_OPTION in flags[i] for i in extra):
        flags[extra[-1]] += "," + ours
    return " ".join(flags)


def set_xla_flags() -> bool:
    """Set XLA_FLAGS to xla_flags(its current value) for this process. Call before importing jax:
    XLA reads the flags when JAX's backend starts, and JAX has no public way to ask whether it has. Returns False,
    and changes nothing, when jax is already imported."""
    if "jax" in sys.modules:
        return False
    os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""))
    return True


def set_cpu_devices(count: int) -> bool:
    """Ask JAX for `count` CPU devices (jax.config's jax_num_cpu_devices) unless the user chose a count (XLA_FLAGS'
    HOST_DEVICES flag or JAX_NUM_CPU_DEVICES). Call before the backend starts (before the first array or device
    query). Returns whether it set the option."""
    import jax

    if count <= 1 or HOST_DEVICES in os.environ.get("XLA_FLAGS", "") or "JAX_NUM_CPU_DEVICES" in os.environ:
        return False
    jax.config.update("jax_num_cpu_devices", count)
    return True


def cores() -> int:
    """The cores this process may run on (os.sched_getaffinity where the platform has it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


WIDE_VECTORS = "xla_cpu_prefer_vector_width"
DISABLED_PASSES = "xla_disable_hlo_passes"  # XLA passes skipped (the ensembles': the tree sums)


def compiler_options(wide_vectors: bool = True, tree_reductions: bool = True) -> dict:
    """CPU_COMPILER_OPTIONS where the backend is the CPU and this jaxlib knows them, else none; without the 512-bit
    vector hint if wide_vectors is False (train.fit above SMALL_FIT_UP_TO: YNNPACK's fusions off only); with XLA's
    tree reductions turned off only if tree_reductions is False (the ensembles' programs: train.fit keeps its sums).

    Asked on the first compilation, not at import: the backend must not start before jax.distributed.initialize.
    """
    dropped = {WIDE_VECTORS} if not wide_vectors else set()
    if tree_reductions:
        dropped.add(DISABLED_PASSES)
    return {k: v for k, v in _known_options().items() if k not in dropped}


@functools.cache
def _known_options() -> dict:
    """CPU_COMPILER_OPTIONS if this backend is the CPU and a trial compilation takes them, else {}: asked once."""
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(lambda a: a + 1).lower(jnp.zeros(2)).compile(compiler_options=CPU_COMPILER_OPTIONS)
    except Exception:  # an older or newer jaxlib without these DebugOptions fields: XLA's defaults
        return {}
    return dict(CPU_COMPILER_OPTIONS)
