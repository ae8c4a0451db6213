"""The notebook's training run, in JAX: the main job.

    python scripts/train_jax.py                 # reproduces the notebook: data, weights, Adam lr 0.2, 201 steps
    python scripts/train_jax.py --seed 3 --lr 0.05 --optimizer sgd --out out/sgd
    python scripts/train_jax.py --points 10000 --noise 0.1 --no-plots --json

Writes into --out (default out/): data.png, snapshots.png (the eleven snapshots), learning.gif, loss.png,
params.npz (w1 (1,H), b1 (H,), w2 (H,1), b2 (1,)) and losses.json. Exit codes: 2 bad input, 3 the loss diverged.
"""

import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from jax_impl import cli  # noqa: E402
from jax_impl.outputs import snapshot_lines, start_picture_process, write_outputs  # noqa: E402


def parse_args(argv=None, description=__doc__):
    p = cli.ArgumentParser(description=description, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=cli.positive_int, default=201, help="training steps (notebook: 201)")
    p.add_argument("--lr", type=cli.positive_float, default=0.2, help="learning rate (notebook: 0.2)")
    p.add_argument("--optimizer", choices=cli.OPTIMIZERS, default="adam", help="adam (notebook) or sgd (its comment)")
    p.add_argument("--hidden", type=cli.positive_int, default=20, help="hidden width (notebook: 20)")
    p.add_argument("--seed", type=cli.non_negative_int, default=None,
                   help="draw initial weights from jax.random.key(SEED) instead of the notebook's "
                        "(needed for --hidden other than 20; 0 is used then)")
    p.add_argument("--points", type=cli.positive_int, default=None, help="fresh data with this many points")
    p.add_argument("--noise", type=cli.non_negative_float, default=None, help="fresh data with this noise level")
    p.add_argument("--data-seed", type=cli.non_negative_int, default=0, help="key for fresh data (default 0)")
    p.add_argument("--x64", action="store_true", help="train in float64")
    p.add_argument("--log-every", type=cli.positive_int, default=20, help="snapshot and log every K steps")
    p.add_argument("--out", default="out", help="output folder (default out/)")
    p.add_argument("--no-plots", action="store_true", help="write no pictures")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout instead")
    p.add_argument("--no-cache", action="store_true", help="do not use JAX's persistent compilation cache")
    return p.parse_args(argv)


def main():
    args = parse_args()
    out = cli.prepare_out_dir(args.out)
    pictures = None if args.no_plots else start_picture_process()  # imports matplotlib meanwhile
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir())

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jax_impl import data, train

    dtype = jnp.float64 if args.x64 else jnp.float32
    params, x, y = data.run_inputs(seed=args.seed, hidden=args.hidden, points=args.points, noise=args.noise,
                                   data_seed=args.data_seed, dtype=dtype)
    lr = jnp.asarray(args.lr, dtype)
    say = (lambda *a: None) if args.json else print

    say(f"Net(\n  (linear1): Linear(in_features=1, out_features={args.hidden}, bias=True)\n  (sigmoid): Sigmoid()\n"
        f"  (linear2): Linear(in_features={args.hidden}, out_features=1, bias=True)\n)")
    start = time.perf_counter()
    compiled = train.jitted_fit(params, x).lower(params, x, y, lr, optimizer=args.optimizer, steps=args.steps,
                                                 every=args.log_every).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    trajectory = jax.block_until_ready(compiled(params, x, y, lr))
    run_s = time.perf_counter() - start

    losses = np.asarray(trajectory.losses)
    bad = train.first_nonfinite_step(losses)
    if bad is not None:
        cli.fail(f"the loss became non-finite at step {bad} ({args.optimizer}, lr {args.lr}); "
                 "no outputs written", cli.DIVERGED)
    steps = train.snapshot_steps(args.steps, args.log_every)
    for line in snapshot_lines(steps, losses):
        say(line)
    written = write_outputs(out, x=x, y=y, steps=steps, snapshots=np.asarray(trajectory.snapshots), losses=losses,
                            params=data.as_numpy(trajectory.params), title=f"JAX, {args.optimizer} lr {args.lr}",
                            plots=not args.no_plots, pictures=pictures)
    summary = {"framework": "jax", "device": str(jax.devices()[0].platform), "dtype": str(np.dtype(dtype)),
               "steps": args.steps, "points": int(x.shape[0]), "hidden": args.hidden, "optimizer": args.optimizer,
               "lr": args.lr, "final_loss": float(losses[-1]), "compile_s": compile_s, "run_s": run_s,
               "out": str(out), "files": written, "losses": losses.tolist()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"final loss {summary['final_loss']:.6f} after {args.steps} steps; compile {compile_s:.3f} s "
              f"(persistent cache {'off' if args.no_cache else 'on'}), run {run_s * 1e3:.2f} ms on "
              f"{summary['device']}; wrote {', '.join(written)} to {out}/")


if __name__ == "__main__":
    cli.run_main(main)
