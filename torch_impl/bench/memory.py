"""Peak memory of one benchmark case: Linux's resident-set high-water mark (VmHWM), reset before the case by writing
5 to /proc/self/clear_refs, so the peak is the case's own (its first call's compilation included). Native memory is
counted (XLA's and torch's buffers), which tracemalloc would miss. None where /proc does not allow it."""

import contextlib
import pathlib

STATUS, CLEAR_REFS = pathlib.Path("/proc/self/status"), pathlib.Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    return None


def reset_peak() -> int | None:
    """Reset the high-water mark to the resident size now; returns that size (bytes), or None if not possible."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def peak() -> int | None:
    """The resident-set high-water mark since the last reset_peak (bytes)."""
    return _status_bytes("VmHWM")
