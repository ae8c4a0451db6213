"""The model axis spread over devices (a Mesh and a NamedSharding) and over processes (jax.distributed).

Models are independent, so the partitioned program needs no communication: each device trains its slice of the
model axis. Counts that do not divide evenly are padded with copies of the last model, trained and then dropped;
each device gets at least two models, so that its program is the one-device program (identical results).
The same code runs in one process or several: inputs are built from host arrays that every process holds in full
(make_array_from_callback hands each device its slice) and results are gathered to every process.
"""

import functools
from functools import partial

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jax_impl.core import ensemble, train, xla_cpu

AXIS = "models"


def initialize_processes(coordinator: str, num_processes: int, process_id: int, timeout_s: int = 60) -> None:
    """Join `num_processes` processes into one JAX runtime; call before anything touches a device.

    First `rendezvous`: jax 0.10.2's coordination service does not raise when a process never comes, it aborts the
    process from C++ (exit 134, a stack trace) after the timeout, so the processes meet on the coordinator's port
    first, where a missing one is a TimeoutError. jax 0.10.2 on CPU runs cross-process collectives only through gloo
    (docs/numerics.md), hence the config line.
    """
    rendezvous(coordinator, num_processes, process_id, timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=timeout_s, heartbeat_timeout_seconds=timeout_s,
                               shutdown_timeout_seconds=timeout_s)


def rendezvous(coordinator: str, num_processes: int, process_id: int, timeout_s: float) -> None:
    """Wait until all `num_processes` processes are up, meeting on the coordinator's HOST:PORT before JAX's service
    takes it: process 0 listens there, each other process connects (retrying until the deadline) and sends its id;
    once all ids are in, process 0 answers each "go" and every process returns. The peers close first, so that the
    port's leftover connections wait out TCP's TIME_WAIT on their side, not on the port process 0 binds next.
    Raises TimeoutError naming who did not come, or OSError (an address that is not HOST:PORT, a port in use).
    """
    import socket
    import time

    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise OSError(f"coordinator {coordinator!r} is not HOST:PORT")
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    if process_id == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("", int(port)))
            server.listen(num_processes)
            peers = {}
            try:
                while len(peers) < num_processes - 1:
                    server.settimeout(left())
                    connection, _ = server.accept()
                    connection.settimeout(left())
                    peers[int(connection.recv(16).decode().strip() or -1)] = connection
                for connection in peers.values():
                    connection.sendall(b"go\n")
                for connection in peers.values():  # wait for each peer to close first
                    connection.settimeout(left())
                    connection.recv(16)
            except TimeoutError:
                missing = sorted(set(range(1, num_processes)) - set(peers))
                raise TimeoutError(f"process{'es' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                                   f"did not come") from None
            finally:
                for connection in peers.values():
                    connection.close()
        return
    connection = None
    try:
        while connection is None:
            try:
                connection = socket.create_connection((host, int(port)), timeout=min(1.0, left()))
            except (ConnectionRefusedError, TimeoutError):
                time.sleep(min(0.2, left()))
        with connection:
            connection.sendall(f"{process_id}\n".encode())
            connection.settimeout(left())
            if connection.recv(16) != b"go\n":
                raise TimeoutError
    except TimeoutError:
        raise TimeoutError("process 0 never answered" if connection is None else
                           f"process 0 did not gather all {num_processes} processes") from None


def model_mesh(devices=None) -> Mesh:
    """A one-axis mesh over `devices` (default: every device of every process)."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), (AXIS,))


MIN_PER_DEVICE = 2  # with one model per device XLA drops the size-1 model axis and sums over H in another order
# (measured: 1 ulp apart in the losses); two or more keep every device's program the one-device program.


def padded_count(models: int, devices: int) -> int:
    """The model count rounded up to a multiple of `devices`, at least MIN_PER_DEVICE per device."""
    return max(MIN_PER_DEVICE, -(-models // devices)) * devices


def pad_models(tree, total: int):
    """Repeat the last entry along axis 0 until there are `total` (host numpy arrays in, numpy out)."""
    def pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[-1:], total - a.shape[0], axis=0)]) if total > a.shape[0] else a
    return jax.tree.map(pad, tree)


def _global(array, sharding):
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


@functools.cache
def sharded_fit(mesh: Mesh, optimizer: str, steps: int, every: int | None):
    """jit(shard_map(the one-device fit)): every device runs ensemble's program on its own slice of the models."""
    by_model, replicated = PartitionSpec(AXIS), PartitionSpec()
    per_device = partial(ensemble.fit_program, optimizer=optimizer, steps=steps, every=every)
    mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(by_model, replicated, replicated, by_model),
                           out_specs=train.Trajectory(by_model, by_model, by_model),
                           check_vma=False)  # no collectives inside: nothing for the varying-axis check to guard
    return jax.jit(mapped, compiler_options=xla_cpu.compiler_options())


def _inputs(params, x, y, lrs, mesh):
    by_model, replicated = NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec())
    total = padded_count(np.shape(lrs)[0], mesh.size)
    params, lrs = pad_models(({k: np.asarray(v) for k, v in params.items()}, np.asarray(lrs)), total)
    return (jax.tree.map(lambda a: _global(a, by_model), params), _global(x, replicated), _global(y, replicated),
            _global(lrs, by_model))


def fit_sharded(params, x, y, lrs, *, optimizer: str = "adam", steps: int = 201, every: int | None = 20,
                mesh: Mesh | None = None):
    """ensemble.fit_ensemble with the model axis sharded over `mesh` (default: all devices, all processes).

    params, lrs: host arrays with the full model axis E, the same in every process; x, y: (N, 1).
    Returns (Trajectory of numpy arrays with E models, the number of devices that took part).
    """
    mesh = model_mesh() if mesh is None else mesh
    models = np.shape(lrs)[0]
    trajectory = sharded_fit(mesh, optimizer, steps, every)(*_inputs(params, x, y, lrs, mesh))
    trajectory = multihost_utils.process_allgather(trajectory, tiled=True)
    return train.Trajectory(*jax.tree.map(lambda a: np.asarray(a)[:models], tuple(trajectory))), mesh.size


def compiled_text(params, x, y, lrs, *, optimizer: str = "adam", steps: int = 201, every: int | None = 20,
                  mesh: Mesh | None = None) -> str:
    """The optimised HLO of the sharded program, to show that the partitioned step has no cross-device traffic."""
    mesh = model_mesh() if mesh is None else mesh
    lowered = sharded_fit(mesh, optimizer, steps, every).lower(*_inputs(params, x, y, lrs, mesh))
    return lowered.compile().as_text()
