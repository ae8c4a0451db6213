"""xla_cpu: the port's XLA flags joined to a user's own, and set only before jax is imported."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from jax_impl.core import xla_cpu

OURS = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=131072"


@pytest.mark.parametrize("existing,expected", [
    ("", OURS),
    ("--xla_dump_to=/tmp/d", "--xla_dump_to=/tmp/d " + OURS),
    ("--xla_backend_extra_options=a=1",  # the user's backend options kept, ours added to their list
     "--xla_backend_extra_options=a=1,xla_cpu_small_while_loop_byte_threshold=131072"),
    ("--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=7",  # the user's threshold wins
     "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=7"),
])
def test_xla_flags(existing, expected):
    assert xla_cpu.xla_flags(existing) == expected


SET = "from jax_impl.core import xla_cpu; import os; print(xla_cpu.set_xla_flags(), os.environ['XLA_FLAGS'])"
DEVICES = "; import jax; print(xla_cpu.set_cpu_devices(3), jax.device_count())"


@pytest.mark.parametrize("flags,code,expected", [
    ("", SET + DEVICES, f"True {OURS}\nTrue 3"),  # the flag in XLA_FLAGS, the device count through jax.config
    (None, SET, f"True {OURS}"),  # no XLA_FLAGS at all: ours alone
    ("--xla_dump_to=/tmp/x", "import jax; " + SET, "False --xla_dump_to=/tmp/x"),  # jax already imported: unchanged
])
def test_set_xla_flags_before_jax_only(flags, code, expected):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update({} if flags is None else {"XLA_FLAGS": flags})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


@pytest.mark.parametrize("env,expected", [
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, "False 4"),
    ({"JAX_NUM_CPU_DEVICES": "2"}, "False 2"),
])
def test_a_device_count_the_user_chose_wins(env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    code = "from jax_impl.core import xla_cpu" + DEVICES
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**clean, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_large_fits_drop_only_the_wide_vector_hint():
    """train.fit above SMALL_FIT_UP_TO compiles with YNNPACK's fusions off but without the 512-bit hint; both sets come
    from one trial compilation (on a jaxlib that refuses the options, both are empty), and only the ensembles' set
    turns XLA's tree reductions off."""
    full, narrow = xla_cpu.compiler_options(), xla_cpu.compiler_options(wide_vectors=False)
    ensembles = xla_cpu.compiler_options(tree_reductions=False)
    assert narrow == {k: v for k, v in full.items() if k != xla_cpu.WIDE_VECTORS}
    assert not full or (xla_cpu.WIDE_VECTORS in full and narrow["xla_cpu_experimental_ynn_fusion_type"] == "")
    assert xla_cpu.DISABLED_PASSES not in full | narrow
    assert ensembles == ({**full, xla_cpu.DISABLED_PASSES: "tree_reduction_rewriter"} if full else {})


def test_ensembles_compile_without_tree_reductions():
    """The ensemble's sums over the points stay single reductions: its compiled step has no reduce-window, which the
    same program compiled with XLA's tree reductions has (so the check can fail)."""
    import jax
    import numpy as np

    from jax_impl.core import ensemble, sharding

    if not xla_cpu.compiler_options():
        pytest.skip("this jaxlib or backend takes none of the port's compiler options")
    x = np.linspace(-1, 1, 100, dtype=np.float32)[:, None]
    args = (ensemble.init_ensemble([0, 1, 2, 3]), x, x**2, np.full(4, 0.2, np.float32))
    static = {"optimizer": "adam", "steps": 3, "every": None}
    with_trees = jax.jit(ensemble.fit_program, static_argnames=tuple(static),
                         compiler_options=xla_cpu.compiler_options(tree_reductions=True))
    assert "reduce-window" in with_trees.lower(*args, **static).compile().as_text()
    assert "reduce-window" not in ensemble.jitted_fit().lower(*args, **static).compile().as_text()
    assert "reduce-window" not in sharding.compiled_text(*args, **static)  # the sweep's program
