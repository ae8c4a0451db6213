"""Joining the processes of a distributed run from the command line (sweep.py --num-processes): a peer that never
comes is one line and exit 2, and what the C++ libraries print while the processes talk stays off stdout."""

import contextlib
import os
import sys

from jax_impl.files.params_io import InputError


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
def joined(coordinator: str | None, num_processes: int, process_id: int, timeout_s: int):
    """Inside the block this process is one of `num_processes` (sharding.initialize_processes; nothing to join for
    one), with stdout pointed at stderr (gloo writes its connection log to stdout; keep --json clean). InputError
    naming the coordinator when the processes cannot meet within timeout_s seconds."""
    with stdout_to_stderr(num_processes > 1):
        if num_processes > 1:
            from jax_impl.core import sharding  # jax: after setup_jax

            try:
                sharding.initialize_processes(coordinator, num_processes, process_id, timeout_s)
            except Exception as e:  # a missing peer (sharding.rendezvous), a port in use, an unreachable host
                raise InputError(f"could not join {num_processes} processes at {coordinator} within {timeout_s} s: "
                                 f"{(str(e).strip().splitlines() or [type(e).__name__])[0][:300]}") from None
        yield
