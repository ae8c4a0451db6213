"""Where the benchmark runs: the device JAX and torch use, the library versions and the machine, for every record.
jax and torch are imported inside the functions: the runner sets XLA's flags (cli.setup_jax) first."""

import contextlib
import os
import platform

from jax_impl.files.host import cpu_name


def gpu_missing(device: str) -> str | None:
    """None when both frameworks see a GPU (or device is "cpu"); else why not, in words."""
    if device != "gpu":
        return None
    import jax
    import torch

    reasons = []
    if not any(d.platform == "gpu" for d in jax.devices()):
        reasons.append(f"JAX sees only {sorted({d.platform for d in jax.devices()})}")
    if not torch.cuda.is_available():
        reasons.append("torch.cuda.is_available() is False")
    return "; ".join(reasons) or None


def jax_device(device: str):
    """JAX's first device of the kind ("cpu" or "gpu")."""
    import jax

    return jax.devices("gpu" if device == "gpu" else "cpu")[0]


def torch_device(device: str) -> str:
    """torch's name for the kind: "cuda" or "cpu"."""
    return "cuda" if device == "gpu" else "cpu"


def environment(device: str) -> dict:
    """{"versions": the libraries', "machine": CPU, cores, threads, devices, GPU, the load average now}."""
    import jax
    import jaxlib
    import numpy as np
    import optax
    import torch

    versions = {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "optax": optax.__version__, "torch": torch.__version__, "numpy": np.__version__}
    machine = {"platform": platform.platform(), "cpu": cpu_name(), "cores": os.cpu_count(),
               "cores_used": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
               "jax_device": str(jax_device(device)),
               "jax_devices": jax.local_device_count(), "load_avg_start": load_average()}
    if device == "gpu":
        machine["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"versions": versions, "machine": machine}


def load_average() -> list[float] | None:
    """uptime's 1, 5 and 15 minute load averages: on a shared machine, how busy it was around the timings."""
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def described(base: dict) -> str:
    """One line: the machine, its load around the run, the versions (the table's footnote)."""
    v, m = base["versions"], base["machine"]
    used = m.get("cores_used", m["cores"])
    return (f"{m.get('gpu') or m['cpu']}, {m['cores']} cores ({used} used), load average {m['load_avg_start']} at "
            "the start and "
            f"{m['load_avg_end']} at the end; jax {v['jax']}, jaxlib {v['jaxlib']}, optax {v['optax']}, torch "
            f"{v['torch']} ({m['torch_threads']} threads), python {v['python']}")
