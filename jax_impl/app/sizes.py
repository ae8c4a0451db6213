"""A run that cannot fit in memory, refused before any work or output: one line naming the flag that asks for the
memory, the memory it needs and what the machine has free (never RESOURCE_EXHAUSTED, MemoryError or a native abort
after some outputs are written). No jax here: the check runs before it is imported."""

from jax_impl.core import footprint

MEMORY_FRACTION = 0.8  # refuse above this share of the free memory: the rest is the interpreter's, the libraries'
# (~0.3 GB for jax and matplotlib) and the machine's; the estimates below are upper ones
STEP_BYTES = 450  # per training step on the host: the losses as numpy, as a Python list and as JSON text (measured
# with --json: 4.1 GB peak for 10**7 steps, 0.24 GB for 400)
FRAME_BYTES = 3 * 2**20  # per picture frame (snapshot): its RGB image, its cell of the grid, the grid's palette copy
# and the GIF's crop (measured: 401 frames +0.99 GB, 1601 frames +4.0 GB, i.e. 2.5 MB a frame)

RECORD_COPIES = 2  # a record's kept steps are held twice while it is written: as arrays and as safetensors' bytes
# (measured, 200 steps of 5,000 points, a 160 MB record: JAX +195 MB peak, torch +330 MB; this estimate 481 MB. 400
# steps kept every 10th, JAX: +400 MB, this estimate 400 MB: the scan's every step dominates)


def record_bytes(*, points: int, hidden: int, steps: int, every: int, itemsize: int) -> int:
    """--record's peak memory in bytes, an upper estimate: each step's quantities (docs/records.md: the (N, H)
    pre-activation and hidden layer, the (N,) output and residual, the loss, Adam's count, and five per parameter:
    itself, its gradient, both moments, its update) for all `steps` (JAX's recording scan keeps every step before it
    thins to every `every`-th), then the kept steps RECORD_COPIES times, and the data."""
    per_step = 2 * points * hidden + 2 * points + 2 + 5 * (3 * hidden + 1)
    kept = -(-steps // every)
    return (per_step * (steps + RECORD_COPIES * kept) + 2 * points) * itemsize


def run_bytes(*, points: int, hidden: int, steps: int, every: int, itemsize: int, pictures: bool) -> dict[str, int]:
    """One training run's peak memory in bytes, by the flag that asks for it: --points or --hidden (the compiled
    fit's arrays, footprint.fit_bytes), --steps (the losses, on the device and the host), --log-every (the snapshots:
    their arrays, and their pictures' frames if `pictures`)."""
    snapshots = -(-steps // every)  # steps.snapshot_steps's count, without making the list
    fit = footprint.fit_bytes(1, hidden=hidden, points=points, steps=steps, snapshots=snapshots, itemsize=itemsize,
                              stepped=1)
    kept = 2 * snapshots * points * itemsize  # fit_bytes's snapshot buffer and its copy
    by_width = points * hidden / 100 / 20 >= 1 and hidden / 20 > points / 100  # which flag made the (N, H) arrays big
    return {"--hidden" if by_width else "--points": fit - 2 * steps * itemsize - kept,
            "--steps": steps * (STEP_BYTES + 2 * itemsize),
            "--log-every": kept + (snapshots * FRAME_BYTES if pictures else 0)}


def refusal(needs: dict[str, int], values: dict, free: int | None) -> str | None:
    """The line that refuses a run needing `needs` ({flag: bytes}, the flags' `values` to name them) when it exceeds
    MEMORY_FRACTION of `free` bytes, or None when it fits (or the platform does not say what is free)."""
    total = sum(needs.values())
    if free is None or total <= MEMORY_FRACTION * free:
        return None
    flag = max(needs, key=needs.get)
    advice = {"--log-every": "snapshot less often (a larger --log-every), or draw no pictures (--no-plots)",
              "--record": "record fewer --steps or --points"}
    return (f"{flag} {values[flag]}: the run needs about {footprint.mib(total)} ({footprint.mib(needs[flag])} of it "
            f"for {flag}), but this machine has {footprint.mib(free)} free; " + advice.get(flag, "ask for less"))


def check_run(parser, args, *, pictures: bool, records: int = 1) -> None:
    """parser.error (one line, exit 2) for a run of `args` (--points, --hidden, --steps, --log-every, --x64, --record
    and --record-every, each optional: 100 points, width 20, one step, one snapshot, no record) that cannot fit;
    `pictures`: one frame per snapshot; `records`: how many records --record holds at once (compare.py: both
    frameworks' runs)."""
    points, hidden = getattr(args, "points", None) or 100, getattr(args, "hidden", None) or 20
    steps = getattr(args, "steps", 1)
    every = getattr(args, "log_every", None) or steps
    itemsize = 8 if args.x64 else 4
    needs = run_bytes(points=points, hidden=hidden, steps=steps, every=every, itemsize=itemsize, pictures=pictures)
    values = {"--points": points, "--hidden": hidden, "--steps": steps, "--log-every": every}
    if (record := getattr(args, "record", None)) is not None:  # recorded besides the run: its memory adds up
        needs["--record"] = records * record_bytes(points=points, hidden=hidden, steps=steps,
                                                   every=getattr(args, "record_every", 1), itemsize=itemsize)
        values["--record"] = record
    line = refusal(needs, values, footprint.available_bytes())
    if line:
        parser.error(line)
