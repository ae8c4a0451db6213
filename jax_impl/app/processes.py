"""Joining the processes of a distributed run from the command line (sweep.py --num-processes): the processes meet
on the coordinator's port (rendezvous), then form one JAX runtime (initialize_processes); a peer that never comes is
one line and exit 2, and what the C++ libraries print while the processes talk stays off stdout. The sharded
training itself (one program whatever the process count) is jax_impl/core/sharding.py."""

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys

from jax_impl.files.params_io import InputError


def address(coordinator: str) -> tuple[str, int]:
    """(HOST, PORT) of a coordinator's HOST:PORT; ValueError (one line) unless HOST is given and PORT is a whole
    number 1 ... 65535 (0 would ask the system for any free port, which the other processes cannot know)."""
    host, _, port = coordinator.rpartition(":")
    if not host.strip() or not re.fullmatch(r"[0-9]+", port):
        raise ValueError(f"{coordinator!r} is not HOST:PORT (process 0's address, e.g. 127.0.0.1:4000)")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{coordinator!r}: the port must be 1 ... 65535, not {int(port)}")
    return host, int(port)


def coordinator_flag(text: str) -> str:
    """An argparse type: --coordinator HOST:PORT (address's rule), kept as given."""
    try:
        address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


@contextlib.contextmanager
def stdout_to_stderr(active: bool):
    """Point file descriptor 1 at stderr inside the block (C++ libraries write to it directly)."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def joined(coordinator: str | None, num_processes: int, process_id: int, timeout_s: int, experiment: dict):
    """Inside the block this process is one of `num_processes` (initialize_processes; nothing to join for
    one), with stdout pointed at stderr (gloo writes its connection log to stdout; keep --json clean). InputError
    naming the coordinator when the processes cannot meet within timeout_s seconds, or naming the flag whose value
    differs when they were given different `experiment`s ({flag: value}, everything that changes a result)."""
    with stdout_to_stderr(num_processes > 1):
        if num_processes > 1:
            try:
                initialize_processes(coordinator, num_processes, process_id, timeout_s, experiment)
            except InputError:
                raise
            except Exception as e:  # a missing peer (rendezvous), a port in use, an unreachable host
                raise InputError(f"could not join {num_processes} processes at {coordinator} within {timeout_s} s: "
                                 f"{(str(e).strip().splitlines() or [type(e).__name__])[0][:300]}") from None
        yield


def initialize_processes(coordinator: str, num_processes: int, process_id: int, timeout_s: int = 60,
                         experiment: dict | None = None) -> None:
    """Join `num_processes` processes into one JAX runtime; call before anything touches a device.

    First `rendezvous`, where the processes also check that they run one `experiment`: jax 0.10.2's coordination
    service does not raise when a process never comes, it aborts the process from C++ (exit 134, a stack trace)
    after the timeout, so the processes meet on the coordinator's port first, where a missing one is a TimeoutError.
    jax 0.10.2 on CPU runs cross-process collectives only through gloo (docs/numerics.md), hence the config line.
    """
    import jax  # after cli.setup_jax

    rendezvous(coordinator, num_processes, process_id, timeout_s, experiment or {})
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=timeout_s, heartbeat_timeout_seconds=timeout_s,
                               shutdown_timeout_seconds=timeout_s)


def digests(experiment: dict) -> dict[str, str]:
    """{flag: a digest of its value}: what the processes exchange (short, whatever the value's size: a million
    seeds). Values are compared as parsed, so equal values spelled differently ('0.2', '2e-1') agree."""
    return {flag: hashlib.sha256(repr(value).encode()).hexdigest()[:16] for flag, value in experiment.items()}


def first_difference(ours: dict, theirs: dict) -> str | None:
    """The first flag (in ours's order, then theirs's) whose digest differs, or None."""
    return next((flag for flag in [*ours, *theirs] if ours.get(flag) != theirs.get(flag)), None)


def rendezvous(coordinator: str, num_processes: int, process_id: int, timeout_s: float, experiment: dict) -> None:
    """Wait until all `num_processes` processes are up, meeting on the coordinator's HOST:PORT before JAX's service
    takes it: process 0 listens there, each other process connects (retrying until the deadline) and sends its id
    and its experiment's digests; once all are in, process 0 answers each "go", or "differ I FLAG" when process I
    was given another FLAG, and every process returns or raises. The peers close first, so that the port's leftover
    connections wait out TCP's TIME_WAIT on their side, not on the port process 0 binds next.
    Raises TimeoutError naming who did not come, ValueError (an address that is not HOST:PORT: address), OSError
    (a port in use), or InputError naming the flag that differs (in every process, before any work).
    """
    import socket
    import time

    host, port = address(coordinator)
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    if process_id == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("", port))
            server.listen(num_processes)
            peers, theirs = {}, {}
            try:
                while len(peers) < num_processes - 1:
                    server.settimeout(left())
                    connection, _ = server.accept()
                    connection.settimeout(left())
                    peer, _, sent = connection.makefile("rb").readline().decode().strip().partition(" ")
                    peers[int(peer or -1)], theirs[int(peer or -1)] = connection, json.loads(sent or "{}")
                differ = next(((peer, flag) for peer in sorted(theirs)
                               if (flag := first_difference(digests(experiment), theirs[peer]))), None)
                answer = "go" if differ is None else f"differ {differ[0]} {differ[1]}"
                for connection in peers.values():
                    connection.sendall(f"{answer}\n".encode())
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
        if differ is not None:
            raise InputError(different(*differ))
        return
    connection = None
    try:
        while connection is None:
            try:
                connection = socket.create_connection((host, port), timeout=min(1.0, left()))
            except (ConnectionRefusedError, TimeoutError):
                time.sleep(min(0.2, left()))
        with connection:
            connection.sendall(f"{process_id} {json.dumps(digests(experiment))}\n".encode())
            connection.settimeout(left())
            answer = connection.makefile("rb").readline().decode().split()
            if answer[:1] == ["differ"] and len(answer) == 3:
                raise InputError(different(int(answer[1]), answer[2]))
            if answer != ["go"]:
                raise TimeoutError
    except TimeoutError:
        raise TimeoutError("process 0 never answered" if connection is None else
                           f"process 0 did not gather all {num_processes} processes") from None


def different(process: int, flag: str) -> str:
    return (f"process {process} was given another {flag} than process 0: every process of a run must be given the "
            "same flags (but --process-id); nothing was trained or written")
