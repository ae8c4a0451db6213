"""xla_cpu: the port's XLA flags joined to a user's own, and set only before jax is imported."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from jax_impl.core import xla_cpu

OURS = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=131072"


@pytest.mark.parametrize("existing,host_devices,expected", [
    ("", None, OURS),
    ("--xla_dump_to=/tmp/d", None, "--xla_dump_to=/tmp/d " + OURS),
    ("--xla_backend_extra_options=a=1", None,  # the user's backend options kept, ours added to their list
     "--xla_backend_extra_options=a=1,xla_cpu_small_while_loop_byte_threshold=131072"),
    ("--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=7", None,  # the user's threshold wins
     "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=7"),
    ("", 2, OURS + " --xla_force_host_platform_device_count=2"),
    ("", 1, OURS),  # one core: one device, no flag
    ("--xla_force_host_platform_device_count=4", 2,  # the user's device count wins
     "--xla_force_host_platform_device_count=4 " + OURS),
])
def test_xla_flags(existing, host_devices, expected):
    assert xla_cpu.xla_flags(existing, host_devices=host_devices) == expected


SET = "from jax_impl.core import xla_cpu; import os; print(xla_cpu.set_xla_flags(host_devices=2), os.environ['XLA_FLAGS'])"


@pytest.mark.parametrize("code,expected", [
    (SET + "; import jax; print(jax.device_count())", f"True {OURS} --xla_force_host_platform_device_count=2\n2"),
    ("import jax; " + SET, "False --xla_dump_to=/tmp/x"),  # jax already imported: nothing changed
])
def test_set_xla_flags_before_jax_only(code, expected):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = "" if code.startswith("from") else "--xla_dump_to=/tmp/x"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
