"""The model axis over 4 forced CPU devices (in a subprocess: the device count is fixed when jax starts), and over 2
or 3 of them, gives the results of one device within a sweep's float32 bounds, for counts that divide evenly and
counts that do not, with no cross-device traffic.
"""

import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT

from jax_impl.core import data, ensemble, sharding

# Added to this process's XLA_FLAGS, not in their place: a flag the user set (--xla_cpu_max_isa, docs/testing.md's
# forced kernels) must reach both sides, or one device and four compare two kernel sets, not two device counts.
FOUR_DEVICES = "--xla_force_host_platform_device_count=4"
# Not bit for bit: each device compiles the program for its own model count (3 of 12, not 12), the same arithmetic in
# another program, which may round differently in the last bits (none measured on jax 0.10.2, AMD EPYC; at jax 0.8.1
# a loss differed by 9.5e-7). 201 Adam steps at lr <= 0.2 carry such a difference no further than a vmapped sweep's
# against single runs: tests/test_sweep.py's measured bounds (losses 2.0e-6 relative, parameters 7.3e-5, snapshots
# 6.0e-7), with its tolerances.
LOSS_RTOL, PARAM_RTOL, SNAPSHOT_ATOL = 1e-5, 2e-4, 5e-6
MAX_LR = 0.2  # above it Adam is chaotic and a last-bit difference grows without bound (test_sweep.COMPARED)
# even; uneven (padded to 12); fewer models than devices (padded to 8: two per device); one device runs 300 in blocks
# of ensemble.BLOCK, each of 4 devices 75 in one piece
COUNTS = (12, 10, 3, 1, 300)
# and on fewer of the four devices (a mesh of the first 2 or 3): 10 models padded to 10 and 12, 3 padded to 6
FEWER = ((2, 10), (3, 10), (3, 3))
CHILD = """
import json, sys
import numpy as np
from jax_impl.core import xla_cpu
xla_cpu.set_xla_flags()  # before jax, as this process (conftest) and the scripts do: the same compilation
import jax
from jax_impl.core import data, ensemble, sharding
x, y = data.notebook_data()
out = {"devices": jax.device_count()}
for models in %r:
    lrs = np.linspace(0.01, %r, models).astype(np.float32)
    trajectory, used = sharding.fit_sharded(ensemble.init_ensemble(range(models)), x, y, lrs, optimizer="adam")
    np.savez(sys.argv[1] + f"/sharded{models}.npz", losses=trajectory.losses, snapshots=trajectory.snapshots,
             **trajectory.params)
    out[models] = used
for devices, models in %r:
    lrs = np.linspace(0.01, %r, models).astype(np.float32)
    trajectory, used = sharding.fit_sharded(ensemble.init_ensemble(range(models)), x, y, lrs, optimizer="adam",
                                            mesh=sharding.model_mesh(jax.devices()[:devices]))
    np.savez(sys.argv[1] + f"/sharded{models}on{devices}.npz", losses=trajectory.losses,
             snapshots=trajectory.snapshots, **trajectory.params)
    out[f"{models}on{devices}"] = used
text = sharding.compiled_text(ensemble.init_ensemble(range(10)), x, y, np.full(10, 0.1, np.float32))
out["collectives"] = [op for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")
                      if op in text]
print(json.dumps(out))
""" % (COUNTS, MAX_LR, FEWER, MAX_LR)


@pytest.fixture(scope="module")
def four_device_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FOUR_DEVICES}", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", CHILD, str(out)], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), out


def test_four_devices_took_part_without_communication(four_device_run):
    report, _ = four_device_run
    assert report["devices"] == 4 and all(report[str(m)] == 4 for m in COUNTS)
    assert report["collectives"] == []  # each device trains its own models: nothing to exchange


@functools.cache
def one_device(models: int):
    """The sweep of `models` models (Adam, lr 0.01 ... MAX_LR) by fit_sharded on one device: the unsharded sweep."""
    x, y = data.notebook_data()
    lrs = np.linspace(0.01, MAX_LR, models).astype(np.float32)
    want, used = sharding.fit_sharded(ensemble.init_ensemble(range(models)), x, y, lrs, optimizer="adam",
                                      mesh=sharding.model_mesh(jax.devices()[:1]))
    assert used == 1
    return want


def assert_within_the_sweeps_bounds(path, want):
    with np.load(path) as got:
        assert got["losses"].shape == want.losses.shape and got["snapshots"].shape == want.snapshots.shape
        np.testing.assert_allclose(got["losses"], want.losses, rtol=LOSS_RTOL, err_msg="losses")
        np.testing.assert_allclose(got["snapshots"], want.snapshots, rtol=0, atol=SNAPSHOT_ATOL, err_msg="snapshots")
        for name, value in want.params.items():  # relative to max(1, |p|), as test_sweep
            scale = np.maximum(1.0, np.abs(np.asarray(value)))
            assert np.max(np.abs(got[name] - value) / scale) <= PARAM_RTOL, name


@pytest.mark.parametrize("models", COUNTS)
def test_sharded_equals_one_device(four_device_run, models):
    _, out = four_device_run
    assert_within_the_sweeps_bounds(out / f"sharded{models}.npz", one_device(models))


@pytest.mark.parametrize("devices,models", FEWER)
def test_two_or_three_devices_equal_one_device(four_device_run, devices, models):
    report, out = four_device_run
    assert report[f"{models}on{devices}"] == devices
    assert_within_the_sweeps_bounds(out / f"sharded{models}on{devices}.npz", one_device(models))


def test_padding_repeats_the_last_model():
    lrs = np.array([0.1, 0.2, 0.3])
    assert [sharding.padded_count(m, 4) for m in (1, 3, 8, 9, 12)] == [8, 8, 8, 12, 12]
    assert [sharding.padded_count(m, 1) for m in (1, 2, 5)] == [2, 2, 5]
    padded = sharding.pad_models({"lrs": lrs, "w": np.arange(6.0).reshape(3, 2)}, 5)
    assert padded["lrs"].tolist() == [0.1, 0.2, 0.3, 0.3, 0.3]
    assert padded["w"][3:].tolist() == [[4.0, 5.0], [4.0, 5.0]]
    assert np.array_equal(sharding.pad_models({"lrs": lrs}, 3)["lrs"], lrs)  # already a multiple: unchanged


def test_every_device_of_this_process_takes_part(tmp_path):
    """One host device per core (conftest, as cli.setup_jax): the sweep uses them all, and says so."""
    x, y = data.notebook_data()
    trajectory, used = sharding.fit_sharded(ensemble.init_ensemble(range(3)), x, y, np.float32([0.1, 0.2, 0.3]),
                                            steps=5, every=None)
    assert used == jax.device_count()
    assert trajectory.losses.shape == (3, 5) and isinstance(trajectory.losses, np.ndarray)
