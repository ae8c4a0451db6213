"""Two local processes share one sweep (jax.distributed, coordinator on 127.0.0.1, gloo CPU collectives); process 0
writes the combined result, which equals the single-process sweep's bit for bit on as many devices: each device then
runs the same program on the same models (by construction, not a float32 coincidence)."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, run_script

from jax_impl.core import xla_cpu

SWEEP = ["--seeds", "0,1", "--lrs", "0.05,0.2,30", "--optimizer", "sgd", "--json", "--curves", "--no-plots",
         "--no-cache"]
TIMEOUT_S = 150  # both processes, start to finish; each waits at most --timeout 60 s for the other
# The one reason to skip: a jaxlib without CPU collectives across processes (jax 0.10.2 has gloo; docs/numerics.md).
NO_CPU_COLLECTIVES = re.compile(r"gloo.*(not available|not supported|unsupported|unknown)|"
                                r"(unknown|unsupported).*collectives.*gloo", re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(out) -> list[subprocess.CompletedProcess]:
    coordinator = f"127.0.0.1:{free_port()}"
    # Without this process's XLA_FLAGS: each of the two sets its own device count, its share of the cores (setup_jax).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XLA_FLAGS": ""}
    respelled = ["--lrs", "5e-2,0.20,3e1"]  # process 1: SWEEP's learning rates spelled otherwise, the same experiment
    procs = [subprocess.Popen([sys.executable, str(ROOT / "scripts" / "sweep.py"), *SWEEP, *(respelled if i else []),
                               "--out", str(out), "--num-processes", "2", "--process-id", str(i), "--coordinator",
                               coordinator, "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=env) for i in range(2)]
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    finally:
        for proc in procs:  # only the two processes started here
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


def test_two_processes_share_one_sweep(tmp_path):
    results = run_two_processes(tmp_path / "two")
    for i, result in enumerate(results):
        if result.returncode != 0 and NO_CPU_COLLECTIVES.search(result.stderr):
            pytest.skip(f"this jaxlib has no CPU collectives across processes: {result.stderr.strip()[-300:]}")
        assert result.returncode == 0, f"process {i}: {result.stderr}"
    assert results[1].stdout == ""  # process 1 trains its half and writes nothing
    combined = json.loads(results[0].stdout)
    assert combined == json.loads((tmp_path / "two" / "sweep.json").read_text())
    assert combined["processes"] == 2 and combined["devices"] == 2 * max(1, xla_cpu.cores() // 2)
    # One process on as many devices as the two had: the same models per device, so the same per-device program.
    devices = {"XLA_FLAGS": "", "JAX_NUM_CPU_DEVICES": str(combined["devices"])}
    single = run_script("sweep.py", *SWEEP, "--out", tmp_path / "one", env=devices)
    assert single.returncode == 0, single.stderr
    alone = json.loads(single.stdout)
    assert alone["processes"] == 1 and alone["devices"] == combined["devices"]
    assert combined["models"] == alone["models"]  # every seed, lr, final loss, divergence step and curve
    assert sum(r["diverged_at"] is not None for r in combined["models"]) == 2  # SGD at lr 30: marked, kept


@pytest.mark.parametrize("process_id,why", [(0, "process 1 did not come"), (1, "process 0 never answered")])
def test_a_process_alone_says_who_is_missing_in_one_line(tmp_path, process_id, why):
    """Without the rendezvous, jax's coordination service aborted such a process from C++ (exit 134, a stack trace)."""
    coordinator = f"127.0.0.1:{free_port()}"
    done = run_script("sweep.py", *SWEEP, "--out", tmp_path, "--num-processes", "2", "--process-id", process_id,
                      "--coordinator", coordinator, "--timeout", "3", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"sweep.py: error: could not join 2 processes at {coordinator} within 3 s: {why}")
    assert not (tmp_path / "sweep.json").exists()


@pytest.mark.parametrize("flag, theirs", [("--lrs", "0.05,0.3,30"), ("--seeds", "0,1,2"), ("--x64", None),
                                          ("--optimizer", "adam")])
def test_processes_given_different_experiments_refuse_in_one_line(tmp_path, flag, theirs):
    """Process 1 given another value of a flag that changes the result: both exit 2 with one line naming the flag,
    before any training, and nothing is written (without the check, different --lrs wrote process 0's results under
    its labels, and different --seeds aborted in C++, exit 134). Equal values spelled differently agree."""
    coordinator, out = f"127.0.0.1:{free_port()}", tmp_path / "out"
    common = ["--out", str(out), "--num-processes", "2", "--coordinator", coordinator, "--timeout", "60"]
    own = [*SWEEP, *common]
    other = [*own, flag] if theirs is None else [*own, flag, theirs]  # argparse: the last value given counts
    procs = [subprocess.Popen([sys.executable, str(ROOT / "scripts" / "sweep.py"), *argv, "--process-id", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for i, argv in enumerate([own, other])]
    try:
        done = [proc.communicate(timeout=TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    line = (f"sweep.py: error: process 1 was given another {flag} than process 0: every process of a run must be "
            "given the same flags (but --process-id); nothing was trained or written")
    for proc, (stdout, stderr) in zip(procs, done):
        assert proc.returncode == 2 and stdout == "" and stderr.strip() == line, stderr
    assert not out.exists()
