"""The floor of a training run on this CPU, for scripts/bench.py: what the step's FLOPs and sigmoids cost at the rates
this core reaches, or the bytes it must move at the memory's bandwidth where that is longer (a roofline), and the
paired ratio of a run to that floor. Kept beside the cross-checks (jax_impl holds the product only); imports jax, not
torch.
"""

from torch_impl.bench.records import make_record
from torch_impl.bench.timing import paired_summary, timed


def step_arithmetic(points: int, hidden: int, optimizer: str = "adam") -> tuple[int, int]:
    """(FLOPs other than the sigmoid, sigmoids) of one model's step, as its autodiff gradient and the update do it.

    Forward: z = w1 x + b1 (2NH), w2 . h plus b2 (2NH + N), r, r^2 and its mean (3N); backward: g (N), db2 (N),
    dw2 (2NH), h (1 - h) (2NH), dz (2NH), db1 (NH), dw1 (2NH); the update per parameter (3H + 1 of them):
    Adam 14 (two moments 7, bias corrections 2, sqrt, + eps, divide, * lr, + p), SGD 2. Sigmoids: N H.
    The floor counts them as scripts/bench.py does: FLOPs at the FMA-chain rate, sigmoids at the sigmoid rate.
    """
    n, h = points, hidden
    per_param = {"adam": 14, "sgd": 2}[optimizer]
    return 13 * n * h + 6 * n + per_param * (3 * h + 1), n * h


def step_bytes(points: int, hidden: int, optimizer: str = "adam", itemsize: int = 4) -> int:
    """The bytes one model's step must move between memory and the core, whatever the program: x and y read (2N
    numbers), and the parameters (3H + 1) with the optimizer's slots (Adam 2, SGD 0) read and written. The (N, H)
    intermediates are not counted: a program that kept each point's 2H hidden values in registers would not move them.
    itemsize: 4 for float32."""
    slots = {"adam": 2, "sgd": 0}[optimizer]
    return itemsize * (2 * points + 2 * (1 + slots) * (3 * hidden + 1))


def flops_per_step(points: int, hidden: int) -> int:
    """The FLOPs of one Adam step other than the sigmoid (step_arithmetic's first count)."""
    return step_arithmetic(points, hidden)[0]


FMA_OPS = 8 + 128 + 8  # FLOPs per element of one fma_pass: 8 chain starts, 8 x 8 multiply-adds, 7 adds + 1 scale


def fma_pass(_, v):
    """One pass of 8 independent chains of 8 multiply-adds (independent, so that the FMA units' latency does not hide
    their throughput)."""
    chains = [v + 0.01 * k for k in range(8)]
    for _ in range(8):
        chains = [c * 0.9999 + 1e-4 for c in chains]
    return sum(chains[1:], chains[0]) * 0.125


def floor_programs(device) -> list:
    """The floor's arithmetic as one jitted program per option set (XLA's defaults, and the port's
    xla_cpu.compiler_options: 512-bit vectors run the sigmoid faster here; the floor takes the faster): called as
    run(sigmoid_passes, fma_passes), it runs that many passes of the sigmoid 1 / (1 + exp(-a)) (the transcendental, as
    the port computes it), then of fma_pass, over a cache-resident vector of 4096 floats. Each is compiled and warm."""
    import jax
    import jax.numpy as jnp

    from jax_impl.core import xla_cpu

    def floor_program(v, sigmoid_passes, fma_passes):
        v = jax.lax.fori_loop(0, sigmoid_passes, lambda _, a: 1 / (1 + jnp.exp(-a)), v)
        return jax.lax.fori_loop(0, fma_passes, fma_pass, v)

    vector = jax.device_put(jnp.linspace(-1.0, 1.0, 4096, dtype=jnp.float32), device)
    programs = []
    for options in ({}, xla_cpu.compiler_options()):
        program = jax.jit(floor_program, compiler_options=options)
        jax.block_until_ready(program(vector, 10, 10))
        programs.append(lambda sigmoid_passes, fma_passes, program=program: jax.block_until_ready(
            program(vector, sigmoid_passes, fma_passes)))
    return programs


STREAM_BYTES = 64 * 2**20  # the bandwidth's array: twice this CPU's 32 MB L3 cache, so that it streams from memory


def measure_bandwidth(device, nbytes: int = STREAM_BYTES, seconds: float = 0.2) -> float:
    """Bytes a second that one pass `v * a + b` over a float32 array of `nbytes` moves (each element read once and
    written once), in a jitted loop of such passes. A call also copies its input and faults in fresh pages (28 ms of
    a call at 64 MB, measured), so the rate is the slope: the passes that 4P passes add to P, over the time they add
    (each the fastest of five). With the default size, the array lives in main memory: the rate the floor's bytes term
    uses. With the size of a program's (N, H) arrays, it is what one pass over them costs at that size."""
    import jax
    import jax.numpy as jnp

    program = jax.jit(lambda v, passes: jax.lax.fori_loop(0, passes, lambda _, a: a * 0.999 + 1e-3, v))
    vector = jax.device_put(jnp.ones(max(1, nbytes // 4), jnp.float32), device)
    run = lambda passes: jax.block_until_ready(program(vector, passes))  # noqa: E731
    run(1)  # compiled before any timing
    passes = 1
    while timed(lambda: run(passes)) <= seconds / 20:
        passes *= 4
    few, many = (min(timed(lambda: run(n)) for _ in range(5)) for n in (passes, 4 * passes))
    return 2 * 4 * vector.size * 3 * passes / max(many - few, 1e-9)


def measure_rates(device, seconds: float = 0.2) -> dict:
    """This core's rates for the floor (FLOPs and sigmoids a second), from floor_programs running one kind of pass at
    a time: the fastest of five timings of each kind and option set: the floor is what the core can do; and the
    memory's bandwidth (measure_bandwidth, bytes a second)."""
    rates = {"flop_rate": 0.0, "sigmoid_rate": 0.0, "bandwidth": measure_bandwidth(device, seconds=seconds)}
    for run in floor_programs(device):
        for rate, ops, passes in (("flop_rate", FMA_OPS, lambda n: (0, n)), ("sigmoid_rate", 1, lambda n: (n, 0))):
            n = 100
            while timed(lambda: run(*passes(n))) <= seconds / 5:  # grow n until one call takes `seconds` / 5
                n *= 4
            best = min(timed(lambda: run(*passes(n))) for _ in range(5))
            rates[rate] = max(rates[rate], ops * 4096 * n / best)
    return rates


def paired_ratio(run_fused, points, hidden, steps, device, rounds: int) -> dict:
    """The fused run against one call of floor_programs doing the run's arithmetic (its sigmoids, then its other
    FLOPs, in passes over 4096 floats; of the two option sets, the faster counted), alternated `rounds` times; each
    round gives the ratio of the two times. This VM's speed drifts by up to 1.5x within a minute (a fixed numpy loop
    timed 34-65 ms), so the median of a run's repeats over a best-of-five floor mixes moments; a ratio of times taken
    side by side does not."""
    sigmoid_passes = max(1, round(points * hidden * steps / 4096))
    fma_passes = max(1, round(flops_per_step(points, hidden) * steps / (FMA_OPS * 4096)))
    programs = floor_programs(device)
    run_fused()
    ratios = []
    for _ in range(rounds):
        fused = timed(run_fused)
        floor = min(timed(lambda run=run: run(sigmoid_passes, fma_passes)) for run in programs)
        ratios.append(fused / floor)
    return paired_summary(ratios)


def step_seconds(points, hidden, rates) -> dict:
    """One step's parts at measure_rates's `rates`, in seconds: its FLOPs, its sigmoids, and its bytes (step_bytes)."""
    flops, sigmoids = step_arithmetic(points, hidden)
    return {"flops": flops / rates["flop_rate"], "sigmoids": sigmoids / rates["sigmoid_rate"],
            "bytes": step_bytes(points, hidden) / rates["bandwidth"]}


def floor_seconds(points, hidden, steps, rates) -> tuple[float, str]:
    """(seconds, bound) of `steps` steps at measure_rates's `rates`: the larger of the arithmetic's time (FLOPs and
    sigmoids) and the memory's (step_bytes at the bandwidth), a roofline; bound names which is larger ("compute" or
    "memory")."""
    parts = step_seconds(points, hidden, rates)
    compute, memory = parts["flops"] + parts["sigmoids"], parts["bytes"]
    return steps * max(compute, memory), "compute" if compute >= memory else "memory"


def floor_record(points, hidden, steps, rates, device, paired=None) -> dict:
    """The floor as a benchmark record: floor_seconds at measure_rates's `rates` (as median, min and max alike; no
    first call), the counts, the rates and which bound holds, and paired_ratio's fields where measured."""
    flops, sigmoids = step_arithmetic(points, hidden)
    seconds, bound = floor_seconds(points, hidden, steps, rates)
    timing = {"compile_s": None, "median_s": seconds, "min_s": seconds, "max_s": seconds, "repeats": 0}
    return make_record("jax", "arithmetic floor", device, points, hidden, steps, 1, timing, flops_per_step=flops,
                       sigmoids_per_step=sigmoids, bytes_per_step=step_bytes(points, hidden), bound=bound, **rates,
                       **(paired or {}))
