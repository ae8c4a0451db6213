"""Timings: the notebook's training in JAX against PyTorch, at the notebook's size and bigger, and why.

    python scripts/bench.py --quick                 # the notebook's size and 10^4 points: under two minutes, 2 cores
    python scripts/bench.py --json bench/results-cpu.json --out bench/cpu.png      # the full sweep (the default)
    python scripts/bench.py --device gpu --json bench/results-gpu.json --out bench/gpu.png
    python scripts/bench.py --tiny                  # seconds: what tests/test_bench.py runs

One process runs every variant on the same data and the same initial weights. Each variant's first call (tracing,
compilation, one run) is timed apart from the steady state: then `--repeats` warm runs (fewer where a run is longer
than --budget-s / repeats, never fewer than 3), reported as median, min and max. Variants:
    jax    train.fit           the port's run: one compiled program, jax.value_and_grad of model.mse_loss in a scan
    jax    jit step loop       jax.jit(train.make_step(tx)) called 201 times from Python: what a direct port does
    jax    ensemble            sharding.fit_sharded, as sweep.py runs it: ensemble.fit_ensemble's program on every
                               host device (one per core, cli.setup_jax), E/devices models each
    torch  eager               torch_impl.twin.train.fit: the notebook's loop
    torch  compile             the same loop with torch.compile'd forward + loss and optimizer step (not in --quick:
                               its first call compiles C++ for ~50 s on 2 cores)
    torch  cuda graph          one captured step replayed 201 times (GPU only)
    torch  ensemble            torch_impl.twin.ensemble.fit_ensemble_torch, E models batched (where that module exists)
    jax    arithmetic floor    (CPU) FLOPs and sigmoids per step over this core's rates, measured by jitted kernels
    jax/torch process          the whole `python scripts/train_jax.py --no-plots` (JAX's persistent compilation cache
                               warm, cold, off) and `python scripts/train_torch.py --no-plots`: imports included;
                               "pictures": the default run (pictures drawn), each run paired with a --no-plots run
Writes a Markdown table (stdout), --json FILE (the records: framework, variant, device, points, hidden, steps, models,
compile_s, median_s, min_s, max_s, repeats, error, versions, machine) and --out FILE.png (log-log, time against points).
Progress goes to stderr. No compilation cache is warm at the start: JAX's persistent cache is off and torch.compile's
gets a fresh folder. Timings on a shared machine are noisy: compare medians from one run, on one machine.
"""

import contextlib
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from jax_impl.app import cli
from jax_impl.files.params_io import save_text
from torch_impl.bench import floor

ROOT = pathlib.Path(__file__).resolve().parents[1]

NOTEBOOK = (100, 20)  # (points, hidden): the notebook's size
LR = 0.2  # the notebook's Adam learning rate
EVERY = 20  # the notebook's snapshot interval
RECORD_KEYS = ("framework", "variant", "device", "points", "hidden", "steps", "models", "compile_s", "median_s",
               "min_s", "max_s", "repeats", "error", "versions", "machine")
MIN_REPEATS = 3  # median, min and max need at least three warm runs to mean anything
MAX_WARMUPS = 4

# Per mode: the (points, hidden) sizes per device, the ensemble sizes, repeats, per-variant budget (s), whether
# torch.compile runs, and how many times each whole process runs. The CPU sweep skips 10^5 points at width 256 (the
# hidden layer alone is 100 MB a copy; torch eager would take minutes a run).
WIDE_CPU = [(100, 256), (1_000, 256), (10_000, 256)]
MODES = {
    "full": {"cpu": [(100, 20), (1_000, 20), (10_000, 20), (100_000, 20), *WIDE_CPU],
             "gpu": [(n, h) for h in (20, 256) for n in (100, 1_000, 10_000, 100_000, 1_000_000)],
             "models": {"cpu": [1, 64, 256, 1024], "gpu": [1, 64, 256, 1024, 4096, 16384]},
             "repeats": 15, "budget_s": 20.0, "torch_compile": True, "process_runs": 5, "paired_rounds": 300},
    "quick": {"cpu": [(100, 20), (10_000, 20)], "gpu": [(100, 20), (100_000, 20)],
              "models": {"cpu": [256, 1024], "gpu": [1, 1024]}, "repeats": 30, "budget_s": 3.0,
              "torch_compile": False, "process_runs": 0, "paired_rounds": 300},
    "tiny": {"cpu": [(64, 8)], "gpu": [(64, 8)], "models": {"cpu": [2], "gpu": [2]}, "repeats": 3,
             "budget_s": 0.5, "torch_compile": False, "process_runs": 0, "paired_rounds": 5},
}


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where JAX and torch run (default cpu)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the notebook's size and one larger size")
    size.add_argument("--tiny", action="store_true", help="64 points, width 8, 21 steps: the test's run")
    p.add_argument("--points", type=cli.positive_int, nargs="+", help="point counts (with --hidden: their grid)")
    p.add_argument("--hidden", type=cli.positive_int, nargs="+", help="hidden widths (default with --points: 20)")
    p.add_argument("--steps", type=cli.positive_int, default=None, help="training steps (default 201; --tiny 21)")
    p.add_argument("--repeats", type=cli.positive_int, default=None, help="warm runs per variant, at most")
    p.add_argument("--budget-s", type=cli.positive_float, default=None, help="seconds of warm runs per variant")
    p.add_argument("--variants", nargs="+", default=None,
                   help="only variants whose name contains one of these words (e.g. fused eager)")
    p.add_argument("--no-ensemble", action="store_true", help="skip the ensemble variants")
    p.add_argument("--torch-threads", type=cli.positive_int, default=None,
                   help="torch.set_num_threads(N) (default: torch's own choice, one per core)")
    p.add_argument("--process", type=cli.non_negative_int, default=None, metavar="RUNS",
                   help="time the whole train_jax.py / train_torch.py processes RUNS times (full: 5, else 0)")
    p.add_argument("--json", metavar="FILE", help="write the records as JSON ('-': to stdout instead of the table)")
    p.add_argument("--out", metavar="FILE.png", help="write the log-log plot of time against points")
    args = p.parse_args(argv)
    mode = MODES["tiny" if args.tiny else "quick" if args.quick else "full"]
    if args.points or args.hidden:
        args.sizes = [(n, h) for h in args.hidden or [20] for n in args.points or [NOTEBOOK[0]]]
    else:
        args.sizes = mode[args.device]
    args.models = [] if args.no_ensemble else mode["models"][args.device]
    args.steps = args.steps or (21 if args.tiny else 201)
    args.repeats = max(MIN_REPEATS, args.repeats or mode["repeats"])
    args.budget_s = args.budget_s or mode["budget_s"]
    args.torch_compile = mode["torch_compile"]
    args.process = mode["process_runs"] if args.process is None else args.process
    args.paired_rounds = mode["paired_rounds"]
    return args


# --- Timing -----------------------------------------------------------------------------------------------------------

def time_runs(run, *, repeats: int, budget_s: float) -> dict:
    """First call timed apart; untimed warm-up runs until one is no more than 20% faster than the one before (at most
    MAX_WARMUPS: torch's first runs at 10^4 points took 11 s, 3.7 s, then 0.56 s here, as the allocator settles);
    then warm runs, as many as fit in budget_s, between MIN_REPEATS and `repeats`.

    `run()` must return only when its work is done (block_until_ready / synchronize inside).
    """
    compile_s = previous = _timed(run)
    for _ in range(MAX_WARMUPS):
        current = _timed(run)
        if current > 0.8 * previous:
            break
        previous = current
    times = []
    while len(times) < repeats:
        times.append(_timed(run))
        if len(times) >= MIN_REPEATS and sum(times) > budget_s:
            break
    return {"compile_s": compile_s, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": len(times)}


def make_record(framework, variant, device, points, hidden, steps, models=1, timing=None, error=None, **extra):
    timing = timing or {"compile_s": None, "median_s": None, "min_s": None, "max_s": None, "repeats": 0}
    return {"framework": framework, "variant": variant, "device": device, "points": points, "hidden": hidden,
            "steps": steps, "models": models, **timing, "error": error, **extra}


def measure(records, wanted, framework, variant, device, points, hidden, steps, models=1, *, build, args):
    """build() -> run; time it; one record, with the error's first line instead of timings if anything fails."""
    name = f"{framework} {variant}"
    if wanted is not None and not any(word in name for word in wanted):
        return
    where = f"{points} points x {hidden}" + (f", {models} models" if models > 1 or "ensemble" in variant else "")
    try:
        timing = time_runs(build(), repeats=args.repeats, budget_s=args.budget_s)
        record = make_record(framework, variant, device, points, hidden, steps, models, timing)
        print(f"bench: {name:24s} {where:30s} first {timing['compile_s']:8.3f} s  median "
              f"{timing['median_s'] * 1e3:10.3f} ms", file=sys.stderr, flush=True)
    except Exception as e:  # a variant that cannot run here (no compiler, no memory) is recorded, not fatal
        message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
        record = make_record(framework, variant, device, points, hidden, steps, models, error=message)
        print(f"bench: {name:24s} {where:30s} failed: {message}", file=sys.stderr, flush=True)
    records.append(record)


# --- JAX variants -----------------------------------------------------------------------------------------------------

def jax_inputs(points: int, hidden: int, device):
    """The same data and weights every framework gets: the notebook's at its size, else fresh draws (data key 0,
    weights key 1), by the scripts' own rule (data.run_inputs)."""
    import jax

    from jax_impl.core import data

    flags = {} if (points, hidden) == NOTEBOOK else {"seed": 1, "points": points}
    params, x, y = data.run_inputs(hidden=hidden, **flags)
    return jax.device_put((x, y, params), device)


def jax_fused(x, y, params, steps):
    import jax
    import jax.numpy as jnp

    from jax_impl.core import train

    lr = jnp.asarray(LR, x.dtype)
    return lambda: jax.block_until_ready(train.fit(params, x, y, lr, steps=steps, every=EVERY))


def jax_step_loop(x, y, params, steps):
    """A direct port: one jitted step (autodiff + optax), called from Python every step."""
    import jax
    import jax.numpy as jnp

    from jax_impl.core import optimizers, train

    tx = optimizers.make_optimizer("adam", jnp.asarray(LR, x.dtype))
    step = jax.jit(train.make_step(tx))

    def run():
        p, state, losses, snapshots = params, tx.init(params), [], []
        for t in range(steps):
            p, state, loss, prediction = step(p, state, x, y)
            losses.append(loss)
            if t % EVERY == 0:
                snapshots.append(prediction)
        return jax.block_until_ready((jnp.stack(losses), snapshots))

    return run


def jax_ensemble(x, y, models, hidden, steps):
    """sweep.py's call: the models sharded over every local device; results gathered to host arrays."""
    import jax
    import numpy as np

    from jax_impl.core import ensemble, sharding

    params = jax.tree.map(np.asarray, ensemble.init_ensemble(list(range(models)), hidden))
    lrs = np.full(models, LR, np.asarray(x).dtype)
    return lambda: sharding.fit_sharded(params, x, y, lrs, optimizer="adam", steps=steps, every=None)


# --- torch variants ---------------------------------------------------------------------------------------------------

def torch_inputs(x, y, params, device: str):
    """The JAX arrays as torch tensors (copies: JAX arrays are read-only) and Net's state_dict, on `device`."""
    import numpy as np
    import torch

    from torch_impl.twin.convert import to_state_dict

    dev = "cuda" if device == "gpu" else "cpu"
    xt, yt = (torch.tensor(np.array(a)).to(dev) for a in (x, y))
    state = {k: v.to(dev) for k, v in to_state_dict(params).items()}
    return xt, yt, state


def torch_sync(device: str):
    import torch

    if device == "gpu":
        torch.cuda.synchronize()


def fresh_net(state, hidden, device):
    from torch_impl.twin.model import Net

    net = Net(1, hidden, 1).to("cuda" if device == "gpu" else "cpu")
    net.load_state_dict(state)
    return net


def torch_eager(xt, yt, state, hidden, steps, device):
    """The notebook's loop (torch_impl.twin.train.fit), from the same weights every run (load_state_dict)."""
    from torch_impl.twin import train as torch_train

    def run():
        losses, _ = torch_train.fit(fresh_net(state, hidden, device), xt, yt, lr=LR, optimizer="adam", steps=steps,
                                    every=EVERY)
        torch_sync(device)
        return losses

    return run


def reset_in_place(net, opt, state):
    """Back to the initial weights and a fresh Adam, in place (compiled code and captured graphs keep addresses)."""
    import torch

    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(state[name])
        for s in opt.state.values():
            for v in s.values():
                if torch.is_tensor(v):
                    v.zero_()


def torch_compiled(xt, yt, state, hidden, steps, device):
    """twin.train.fit's loop with torch.compile'd forward + loss and optimizer step (torch's recipe for both)."""
    import torch

    net = fresh_net(state, hidden, device)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_func = torch.nn.MSELoss()
    forward = torch.compile(lambda x, y: (lambda p: (loss_func(p, y), p))(net(x)))
    opt_step = torch.compile(opt.step)

    def run():
        reset_in_place(net, opt, state)
        losses, snapshots = torch.empty(steps, dtype=xt.dtype, device=xt.device), []
        for t in range(steps):
            loss, prediction = forward(xt, yt)
            opt.zero_grad()
            loss.backward()
            opt_step()
            losses[t] = loss.detach()
            if t % EVERY == 0:
                snapshots.append(prediction.detach().clone())
        torch_sync(device)
        return losses

    return run


def torch_cuda_graph(xt, yt, state, hidden, steps, device):
    """One training step captured as a CUDA graph (torch's whole-network recipe, capturable Adam), replayed."""
    import torch

    net = fresh_net(state, hidden, device)
    opt = torch.optim.Adam(net.parameters(), lr=LR, capturable=True)
    loss_func = torch.nn.MSELoss()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as the recipe asks, before capture
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_func(net(xt), yt).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        prediction = net(xt)
        loss = loss_func(prediction, yt)
        loss.backward()
        opt.step()

    def run():
        reset_in_place(net, opt, state)
        losses, snapshots = torch.empty(steps, dtype=xt.dtype, device=xt.device), []
        for t in range(steps):
            graph.replay()
            losses[t].copy_(loss)
            if t % EVERY == 0:
                snapshots.append(prediction.clone())
        torch_sync(device)
        return losses

    return run


def torch_ensemble(x, y, models, hidden, steps, device):
    import jax
    import numpy as np

    from jax_impl.core import ensemble
    from torch_impl.twin import ensemble as torch_ens

    if device == "gpu":
        raise RuntimeError("torch_impl.twin.ensemble.fit_ensemble_torch runs on the CPU only")
    params = jax.tree.map(np.array, ensemble.init_ensemble(list(range(models)), hidden))  # writable copies
    lrs = np.full(models, LR)
    return lambda: torch_ens.fit_ensemble_torch(params, x, y, lrs, optimizer="adam", steps=steps)


# --- The arithmetic floor ---------------------------------------------------------------------------------------------

def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor_record(points, hidden, steps, rates, device, paired=None) -> dict:
    flops, sigmoids = floor.flops_per_step(points, hidden), points * hidden
    seconds = steps * (flops / rates["flop_rate"] + sigmoids / rates["sigmoid_rate"])
    timing = {"compile_s": None, "median_s": seconds, "min_s": seconds, "max_s": seconds, "repeats": 0}
    return make_record("jax", "arithmetic floor", device, points, hidden, steps, 1, timing, flops_per_step=flops,
                       sigmoids_per_step=sigmoids, **rates, **(paired or {}))


# --- Whole processes --------------------------------------------------------------------------------------------------

def process_records(runs: int, device: str) -> list[dict]:
    """train_jax.py --no-plots (cache warm, cold, off) and train_torch.py --no-plots, each `runs` times, wall clock;
    and each script's default run (pictures drawn), every run paired with a --no-plots run just before it: the
    paired ratio's median and quartiles (the machine drifts between runs more than within a pair)."""
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        warm_cache = pathlib.Path(tmp, "warm")
        script_env = {**os.environ, "JAX_PLATFORMS": "cuda" if device == "gpu" else "cpu"}
        warm, cold, plain = (lambda i: {"XDG_CACHE_HOME": str(warm_cache)},
                             lambda i: {"XDG_CACHE_HOME": f"{tmp}/cold{i}"}, lambda i: {})
        cases = [
            ("jax", "process, cache warm", "train_jax.py", ["--no-plots"], warm),
            ("jax", "process, cache warm, pictures", "train_jax.py", [], warm),
            ("jax", "process, cache cold", "train_jax.py", ["--no-plots"], cold),
            ("jax", "process, no cache", "train_jax.py", ["--no-plots", "--no-cache"], plain),
            ("torch", "process", "train_torch.py", ["--no-plots"], plain),
            ("torch", "process, pictures", "train_torch.py", [], plain),
        ]
        for framework, variant, script, flags, env_for in cases:
            if not (ROOT / "scripts" / script).exists():
                print(f"bench: {script} not found: its process timing is skipped", file=sys.stderr)
                continue
            command = [sys.executable, str(ROOT / "scripts" / script), "--json", "--out", f"{tmp}/out", *flags]
            if variant == "process, cache warm":  # fill the cache once, untimed
                subprocess.run(command, env={**script_env, **env_for(0)}, capture_output=True, check=False)
            walls, compiles, error, bases = [], [], None, []
            for i in range(runs):
                if "pictures" in variant:  # its pair: the same run without pictures, just before
                    start = time.perf_counter()
                    subprocess.run([*command, "--no-plots"], env={**script_env, **env_for(i)}, capture_output=True)
                    bases.append(time.perf_counter() - start)
                start = time.perf_counter()
                done = subprocess.run(command, env={**script_env, **env_for(i)}, capture_output=True, text=True)
                walls.append(time.perf_counter() - start)
                if done.returncode != 0:
                    error = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
                    break
                with contextlib.suppress(ValueError, KeyError, IndexError):
                    compiles.append(json.loads(done.stdout.strip().splitlines()[-1])["compile_s"])
            timing = None if error else {
                "compile_s": statistics.median(compiles) if compiles else None, "median_s": statistics.median(walls),
                "min_s": min(walls), "max_s": max(walls), "repeats": len(walls)}
            paired = {}
            if bases and not error:
                paired = {**floor.paired_summary([wall / base for wall, base in zip(walls, bases)]),
                          "paired_base_median_s": statistics.median(bases)}
            records.append(make_record(framework, variant, device, *NOTEBOOK, 201, 1, timing, error, **paired))
            print(f"bench: {framework} {variant:30s} median {statistics.median(walls):.2f} s over {len(walls)} runs"
                  + (f"; {paired['paired_ratio_median']:.2f}x its --no-plots run (paired)" if paired else ""),
                  file=sys.stderr, flush=True)
    return records


# --- Environment ------------------------------------------------------------------------------------------------------

def gpu_missing(device: str):
    """None when both frameworks see a GPU (or --device cpu); else why not, in words."""
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


def environment(device: str) -> dict:
    import jax
    import jaxlib
    import numpy as np
    import optax
    import torch

    versions = {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "optax": optax.__version__, "torch": torch.__version__, "numpy": np.__version__}
    machine = {"platform": platform.platform(), "cpu": cpu_name(), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "jax_device": str(jax_device(device)),
               "jax_devices": jax.local_device_count(), "load_avg_start": load_average()}
    if device == "gpu":
        machine["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"versions": versions, "machine": machine}


def load_average() -> list[float] | None:
    """uptime's 1, 5 and 15 minute load averages: on a shared machine, how busy it was around the timings."""
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def jax_device(device: str):
    import jax

    return jax.devices("gpu" if device == "gpu" else "cpu")[0]


# --- Report -----------------------------------------------------------------------------------------------------------

def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.3f}" if seconds < 1 else f"{seconds * 1e3:,.0f}"


def markdown_table(records) -> str:
    """One row per record; speed-up against torch eager at the same size (and the same number of models)."""
    baseline = {(r["variant"], r["points"], r["hidden"], r["models"]): r["median_s"] for r in records
                if r["framework"] == "torch" and r["variant"] in ("eager", "ensemble") and r["median_s"]}
    lines = ["| framework | variant | device | points | hidden | models | first call (s) | median (ms) | min (ms) "
             "| max (ms) | vs torch |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        kind = "ensemble" if "ensemble" in r["variant"] else "eager"
        base = baseline.get((kind, r["points"], r["hidden"], r["models"]))
        measured = r["median_s"] and "process" not in r["variant"] and "floor" not in r["variant"]
        speedup = f"{base / r['median_s']:.1f}x" if base and measured else ""
        first = "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
        median = f"failed: {r['error']}" if r["error"] else _ms(r["median_s"])
        lines.append(f"| {r['framework']} | {r['variant']} | {r['device']} | {r['points']:,} | {r['hidden']} | "
                     f"{r['models']} | {first} | {median} | {_ms(r['min_s'])} | {_ms(r['max_s'])} | {speedup} |")
    return "\n".join(lines)


def find(records, framework, variant, points, hidden, models=1):
    for r in records:
        if (r["framework"], r["variant"], r["points"], r["hidden"], r["models"]) == (framework, variant, points,
                                                                                    hidden, models):
            return r["median_s"]
    return None


# The targets (issue 9): ratios of two medians from one run.
TARGETS = {"notebook": 100.0, "floor": 2.5, "points": 2.0, "ensemble": 3.0, "pictures": 1.4}
TARGET_POINTS = (10_000, 20)
TARGET_MODELS = (256, 1024)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def target_lines(records) -> list[str]:
    """The targets, each a ratio of two medians from this run (where both were measured), with met / NOT met."""
    lines = []
    fit, eager = find(records, "jax", "train.fit", *NOTEBOOK), find(records, "torch", "eager", *NOTEBOOK)
    floor = find(records, "jax", "arithmetic floor", *NOTEBOOK)
    if fit and eager:
        lines.append(f"- notebook size: train.fit {eager / fit:.0f}x faster than torch eager (target >= "
                     f"{TARGETS['notebook']:.0f}x: {_verdict(eager / fit >= TARGETS['notebook'])})")
    paired = next((r for r in records if r["variant"] == "arithmetic floor" and "paired_ratio_median" in r
                   and (r["points"], r["hidden"]) == NOTEBOOK), None)
    if paired:
        ratio, aim = paired["paired_ratio_median"], TARGETS["floor"]
        lines.append(f"- notebook size: train.fit at {ratio:.2f}x the arithmetic floor, median of "
                     f"{paired['paired_rounds']} paired rounds (quartiles {paired['paired_ratio_p25']:.2f}-"
                     f"{paired['paired_ratio_p75']:.2f}; aim <= {aim}x: {_verdict(ratio <= aim)})")
    if fit and floor:
        lines.append(f"- notebook size: train.fit median at {fit / floor:.1f}x the best-of-five floor of "
                     f"{floor * 1e3:.3f} ms (unpaired)")
    jax_process, torch_process = (find(records, "jax", "process, cache warm", *NOTEBOOK),
                                  find(records, "torch", "process", *NOTEBOOK))
    if jax_process and torch_process:
        lines.append(f"- whole process: train_jax.py at {jax_process / torch_process:.2f} of train_torch.py's wall "
                     "time (cache warm)")
    for r in records:
        if "pictures" in r["variant"] and "paired_ratio_median" in r:
            ratio = r["paired_ratio_median"]
            target = (f"; target <= {TARGETS['pictures']:g}x: {_verdict(ratio <= TARGETS['pictures'])}"
                      if r["framework"] == "jax" else "")
            base = f" ({r['median_s']:.2f} s against {r['paired_base_median_s']:.2f} s)" \
                if r.get("paired_base_median_s") else ""
            lines.append(f"- whole process: {r['framework']}'s default run (pictures) at {ratio:.2f}x its --no-plots "
                         f"run{base}, median of {r['paired_rounds']} paired runs (quartiles "
                         f"{r['paired_ratio_p25']:.2f}-{r['paired_ratio_p75']:.2f}{target})")
    sizes = sorted({(r["points"], r["hidden"]) for r in records if r["variant"] == "eager"})
    for points, hidden in sizes:
        fit, eager = find(records, "jax", "train.fit", points, hidden), find(records, "torch", "eager", points, hidden)
        if fit and eager and (points, hidden) != NOTEBOOK:
            target = TARGETS["points"] if (points, hidden) == TARGET_POINTS else 1.0
            lines.append(f"- {points:,} points x {hidden}: train.fit {eager / fit:.1f}x faster than torch eager "
                         f"(target >= {target:g}x: {_verdict(eager / fit >= target)})")
    for models in sorted({r["models"] for r in records if r["variant"] == "ensemble"}):
        jax_e, torch_e = (find(records, framework, "ensemble", *NOTEBOOK, models) for framework in ("jax", "torch"))
        if jax_e and torch_e:
            devices = records[0]["machine"].get("jax_devices", 1)
            target = f" (target >= {TARGETS['ensemble']:g}x: {_verdict(torch_e / jax_e >= TARGETS['ensemble'])})" \
                if models in TARGET_MODELS else ""
            lines.append(f"- ensemble of {models:,}: JAX on {devices} device(s) {torch_e / jax_e:.1f}x faster than "
                         f"batched torch eager{target}")
    return lines


def plot(records, path) -> None:
    """Log-log: steady-state median against points, one panel per width; ensembles against models."""
    from jax_impl.app.plots import plt, save_png  # pyplot on the headless Agg backend

    widths = sorted({r["hidden"] for r in records if r["models"] == 1 and "process" not in r["variant"]})
    ensembles = [r for r in records if "ensemble" in r["variant"] and r["median_s"]]
    panels = len(widths) + bool(ensembles)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    for ax, hidden in zip(axes[0], widths):
        rows = [r for r in records if r["hidden"] == hidden and r["models"] == 1 and r["median_s"]
                and "process" not in r["variant"] and "ensemble" not in r["variant"]]
        for name in sorted({(r["framework"], r["variant"]) for r in rows}):
            line = sorted((r["points"], r["median_s"]) for r in rows if (r["framework"], r["variant"]) == name)
            style = ":" if name[1] == "arithmetic floor" else "-" if name[0] == "jax" else "--"
            ax.loglog(*zip(*line), style, marker="o", label=" ".join(name))
        ax.set(xlabel="points", ylabel=f"seconds per {records[0]['steps']}-step run (median)",
               title=f"hidden width {hidden}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if ensembles:
        ax = axes[0][-1]
        for framework in sorted({r["framework"] for r in ensembles}):
            line = sorted((r["models"], r["median_s"]) for r in ensembles if r["framework"] == framework)
            ax.loglog(*zip(*line), marker="o", label=f"{framework} ensemble")
        ax.set(xlabel="models trained at once", ylabel="seconds per run (median)",
               title=f"ensembles, {ensembles[0]['points']} points x {ensembles[0]['hidden']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    device = records[0]["device"]
    fig.suptitle(f"{device}: {records[0]['machine'].get('gpu') or records[0]['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=110)


# --- Main -------------------------------------------------------------------------------------------------------------

def run_sizes(records, args, device_obj):
    """Every size's torch variants first, then every size's JAX variants: measured here, torch eager at 10^4 x 20 ran
    in 0.37 s a run in a fresh process and after JAX's fit (0.39 s), but in 9-11 s for several runs after
    the old fit_autodiff had run at that size in the same process (both torch threads busy: its own arithmetic ran ~20x
    slower; the cause was not found). JAX after torch showed no such effect (0.10 s a run)."""
    wanted = args.variants
    for points, hidden in args.sizes:
        x, y, params = jax_inputs(points, hidden, device_obj)
        xt, yt, state = torch_inputs(x, y, params, args.device)
        size, torch_size = (args.device, points, hidden, args.steps), (xt, yt, state, hidden, args.steps, args.device)
        measure(records, wanted, "torch", "eager", *size, build=lambda: torch_eager(*torch_size), args=args)
        if args.torch_compile:
            measure(records, wanted, "torch", "compile", *size, build=lambda: torch_compiled(*torch_size), args=args)
        if args.device == "gpu":
            measure(records, wanted, "torch", "cuda graph", *size, build=lambda: torch_cuda_graph(*torch_size),
                    args=args)
    for points, hidden in args.sizes:
        x, y, params = jax_inputs(points, hidden, device_obj)
        size = (args.device, points, hidden, args.steps)
        for variant, builder in (("train.fit", jax_fused), ("jit step loop", jax_step_loop)):
            measure(records, wanted, "jax", variant, *size, build=lambda b=builder: b(x, y, params, args.steps),
                    args=args)
        if args.device == "cpu" and (wanted is None or any(w in "jax arithmetic floor" for w in wanted)):
            paired = None
            if ((points, hidden) == NOTEBOOK or args.tiny) and find(records, "jax", "train.fit", points, hidden):
                paired = floor.paired_ratio(jax_fused(x, y, params, args.steps), points, hidden, args.steps,
                                            device_obj, rounds=args.paired_rounds)
                print(f"bench: fused / floor, {args.paired_rounds} paired rounds: median "
                      f"{paired['paired_ratio_median']:.2f}", file=sys.stderr, flush=True)
            records.append(floor_record(points, hidden, args.steps, args.rates, args.device, paired))


def run_ensembles(records, args, device_obj):
    """torch's first, as in run_sizes."""
    try:
        import jax_impl.core.ensemble  # noqa: F401
        import torch_impl.twin.ensemble  # noqa: F401
    except ImportError as e:
        print(f"bench: no ensemble variants ({e})", file=sys.stderr)
        return
    points, hidden = args.sizes[0] if args.tiny else NOTEBOOK
    x, y, _ = jax_inputs(points, hidden, device_obj)
    for framework, builder in (("torch", torch_ensemble), ("jax", None)):
        for models in args.models:
            size = (args.device, points, hidden, args.steps, models)
            if builder:
                build = lambda m=models: torch_ensemble(x, y, m, hidden, args.steps, args.device)  # noqa: E731
            else:
                build = lambda m=models: jax_ensemble(x, y, m, hidden, args.steps)  # noqa: E731
            measure(records, args.variants, framework, "ensemble", *size, build=build, args=args)


VARIANT_ORDER = ("train.fit", "jit step loop", "arithmetic floor", "eager", "compile",
                 "cuda graph", "ensemble")


def table_order(record) -> tuple:
    """Rows by size (ensembles after, by models), then JAX before torch, then VARIANT_ORDER; processes last."""
    variant = record["variant"]
    rank = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
    return ("process" in variant, "ensemble" in variant, record["hidden"], record["points"], record["models"],
            record["framework"] != "jax", rank)


def main(argv=None):
    args = parse_args(argv)
    for path in (args.json, args.out):
        if path and path != "-":
            cli.prepare_out_dir(pathlib.Path(path).resolve().parent)
    cli.setup_jax(cache_dir=None)  # no persistent cache: the first call's time is a real compilation
    # Nor a warm torch.compile cache (inductor keeps compiled kernels in /tmp/torchinductor_$USER across processes).
    inductor_cache = tempfile.TemporaryDirectory(prefix="bench-inductor-")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", inductor_cache.name)
    missing = gpu_missing(args.device)
    if missing:
        print(f"bench.py: --device gpu, but no GPU here ({missing}); nothing measured", file=sys.stderr)
        return
    import jax

    if args.device == "gpu":  # torch keeps float32 matmuls in full float32 on CUDA; ask JAX for the same
        jax.config.update("jax_default_matmul_precision", "highest")
    device_obj = jax_device(args.device)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    base = environment(args.device)
    if args.device == "cpu":
        args.rates = floor.measure_rates(device_obj, seconds=0.05 if args.tiny else 0.2)
        print(f"bench: this core: {args.rates['flop_rate'] / 1e9:.1f} GFLOP/s (multiply-add chain), "
              f"{args.rates['sigmoid_rate'] / 1e9:.2f} G sigmoids/s", file=sys.stderr)
    records = []
    run_sizes(records, args, device_obj)
    if args.models:
        run_ensembles(records, args, device_obj)
    if args.process:
        records += process_records(args.process, args.device)
    base["machine"]["load_avg_end"] = load_average()
    records = sorted(({**r, **base} for r in records), key=table_order)
    if args.json:
        text = json.dumps(records, indent=1)
        if args.json == "-":
            print(text)
        else:
            save_text(args.json, text + "\n")
    if args.json != "-":
        print(markdown_table(records))
        targets = target_lines(records)
        if targets:
            print("\n" + "\n".join(targets))
        v, m = base["versions"], base["machine"]
        print(f"\n{m.get('gpu') or m['cpu']}, {m['cores']} cores, load average {m['load_avg_start']} at the start and "
              f"{m['load_avg_end']} at the end; jax {v['jax']}, jaxlib {v['jaxlib']}, optax "
              f"{v['optax']}, torch {v['torch']} ({m['torch_threads']} threads), python {v['python']}; "
              f"`python scripts/bench.py {' '.join(sys.argv[1:])}`")
    if args.out:
        plot(records, args.out)


if __name__ == "__main__":
    cli.run_main(main)
