"""Where train.fit's time goes, kernel by kernel, at each size, against the floor (torch_impl/bench/kernels.py and
floor.py).

    python scripts/profile_fit.py                                   # 10^3, 10^4, 10^5 points: the table on stdout
    python scripts/profile_fit.py --points 100000 --json bench/profile-fit-cpu-amd.json
    python scripts/profile_fit.py --points 1000 --models 256 1024  # and ensembles at the notebook's size

For each size: one warm call of train.fit traced with jax.profiler, its kernels summed (milliseconds a step, share),
the floor's parts a step (FLOPs, sigmoids, bytes at this CPU's rates), and the bandwidth of one read-and-write pass
over an array of the run's (N, H) size, with what the step's traversals of such arrays would cost at it. Names of
kernels are those of the optimized HLO (`--hlo DIR` writes it, one file a size).
"""

import json
import pathlib
import sys

from jax_impl.app import cli, out_dir
from jax_impl.files.params_io import InputError, save_text

# The (N, H) arrays a step of XLA's program reads or writes whole (docs/benchmarks.md, "What limits"): the sigmoid
# fusion writes h, the dz fusion reads h and writes dz, the db1 reduction and the dw1 dot read dz, the output and dw2
# dots read h.
TRAVERSALS = 7


def profile_size(points, hidden, steps, rates, hlo_dir=None) -> dict:
    import jax

    from torch_impl.bench import cases, floor, jax_runs, kernels, machine

    device = machine.jax_device("cpu")
    inputs = cases.inputs(points, hidden, steps, "cpu", device)
    if hlo_dir:
        import jax.numpy as jnp

        from jax_impl.core import train

        lr = jnp.asarray(inputs.lr, inputs.x.dtype)
        program = train.jitted_fit(inputs.params, inputs.x).lower(inputs.params, inputs.x, inputs.y, lr, steps=steps,
                                                                  every=inputs.every)
        save_text(pathlib.Path(hlo_dir) / f"fit-{points}x{hidden}.hlo.txt", program.compile().as_text())
    profile = kernels.kernel_profile(jax_runs.fused(inputs), steps)
    array_bytes = 4 * points * hidden  # one float32 (N, H) array
    pass_rate = floor.measure_bandwidth(device, nbytes=array_bytes, seconds=0.1)
    return {"points": points, "hidden": hidden, "steps": steps, "jax": jax.__version__, **profile,
            "floor_ms_per_step": {part: seconds * 1e3
                                  for part, seconds in floor.step_seconds(points, hidden, rates).items()},
            "pass_bandwidth": pass_rate,
            "traversals_ms_per_step": TRAVERSALS * array_bytes / pass_rate * 1e3}


def profile_ensemble(models, steps) -> dict:
    """An ensemble of `models` at the notebook's size, as bench.py times it (jax_runs.ensemble), traced."""
    from torch_impl.bench import cases, jax_runs, kernels, machine, plan

    inputs = cases.inputs(*plan.NOTEBOOK, steps, "cpu", machine.jax_device("cpu"))
    return {"models": models, "points": plan.NOTEBOOK[0], "hidden": plan.NOTEBOOK[1], "steps": steps,
            **kernels.kernel_profile(jax_runs.ensemble(inputs, models), steps)}


def kernel_lines(result) -> list[str]:
    """The kernels over 1 % of a profile's time, one a line."""
    return [f"  {k['ms_per_step']:9.4f} ms {k['share']:6.1%}  {k['kernel']}" for k in result["kernels"]
            if k["share"] >= 0.01]


def lines(result) -> list[str]:
    """The profile of one size as text: the kernels over 1% and the floor's parts."""
    f = result["floor_ms_per_step"]
    out = [f"{result['points']:,} x {result['hidden']}: {result['untraced_s'] / result['steps'] * 1e3:.4f} ms a step "
           f"untraced ({result['kernels_s'] / result['steps'] * 1e3:.4f} in kernels, traced); floor {f['flops']:.4f} "
           f"FLOPs + {f['sigmoids']:.4f} sigmoids, {f['bytes']:.4f} bytes; {TRAVERSALS} traversals of (N, H) arrays at "
           f"{result['pass_bandwidth'] / 1e9:.0f} GB/s: {result['traversals_ms_per_step']:.4f} ms"]
    return out + kernel_lines(result)


def check_outputs(args) -> None:
    """Before the profiling: --json FILE can be written (out_dir.check_file: not a folder, its folder made) and
    --hlo DIR is a folder that takes files (made if missing). An empty path is refused, not read as no flag."""
    out_dir.check_file(args.json, "--json")
    if args.hlo is not None:
        if not args.hlo.strip():
            raise InputError("--hlo: an empty path")
        cli.prepare_out_dir(pathlib.Path(args.hlo))


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--points", type=cli.positive_int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--hidden", type=cli.positive_int, default=20)
    p.add_argument("--steps", type=cli.positive_int, default=201)
    p.add_argument("--models", type=cli.positive_int, nargs="+", default=[],
                   help="also profile ensembles of these many models at the notebook's size")
    p.add_argument("--json", metavar="FILE", help="write the profiles here as JSON, with the machine")
    p.add_argument("--hlo", metavar="DIR", help="write each size's optimized HLO here")
    args = p.parse_args(argv)
    check_outputs(args)
    cli.setup_jax(cache_dir=None)
    from torch_impl.bench import floor, machine

    rates = floor.measure_rates(machine.jax_device("cpu"))
    results = [profile_size(n, args.hidden, args.steps, rates, args.hlo) for n in args.points]
    ensembles = [profile_ensemble(models, args.steps) for models in args.models]
    for result in results:
        print("\n".join(lines(result)))
    for result in ensembles:
        print(f"ensemble of {result['models']:,} ({result['points']} x {result['hidden']}): "
              f"{result['untraced_s'] / result['steps'] * 1e3:.4f} ms a step untraced")
        print("\n".join(kernel_lines(result)))
    if args.json is not None:
        record = {"command": "python scripts/profile_fit.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  "rates": rates, **machine.environment("cpu"), "profiles": results, "ensembles": ensembles}
        save_text(args.json, json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    cli.run_main(main)
