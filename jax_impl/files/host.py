"""The machine a run is on, read from /proc/cpuinfo, as records and benchmarks name it."""

import contextlib
import pathlib
import platform


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, as lscpu shows it), or what platform knows: records and timings made on
    two CPU kinds say which is which."""
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
