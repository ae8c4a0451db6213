"""The notebook's training run, in JAX: the main job.

    python scripts/train_jax.py                 # reproduces the notebook: data, weights, Adam lr 0.2, 201 steps
    python scripts/train_jax.py --seed 3 --lr 0.05 --optimizer sgd --out out/sgd
    python scripts/train_jax.py --points 10000 --noise 0.1 --no-plots --json
    python scripts/train_jax.py --torch-seed 7   # data and weights as torch.manual_seed(7) gives them, without torch
    python scripts/train_jax.py --init net.pt    # start from a torch state_dict (or a .safetensors, or a params.npz)

Writes into --out (default out/): data.png, snapshots.png (the eleven snapshots), learning.gif, loss.png,
params.npz (w1 (1,H), b1 (H,), w2 (H,1), b2 (1,)), model.safetensors (the same weights for torch: Net(1, H, 1)'s
state_dict) and losses.json. --record FILE [--record-every K]: the whole trajectory, Adam only (docs/records.md).
Exit codes: 2 bad input, 3 the loss diverged.
"""

import json
import time

from jax_impl.app import cli, out_dir
from jax_impl.app.outputs import RUN_FILES, write_outputs
from jax_impl.core.steps import first_nonfinite_step, log_line, snapshot_steps


def parse_args(argv=None):
    """The run flags (cli.parse_run_args: the same for train_jax.py and train_torch.py)."""
    return cli.parse_run_args(__doc__, argv)


def main(argv=None):
    args = parse_args(argv)
    out = out_dir.check(args.out, RUN_FILES)
    steps, title = snapshot_steps(args.steps, args.log_every), f"JAX, {args.optimizer} lr {args.lr}"
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir())

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jax_impl.core import data, train

    dtype = jnp.float64 if args.x64 else jnp.float32
    params, x, y = cli.run_inputs(args, dtype)
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
    bad = first_nonfinite_step(losses)
    if bad is not None:
        cli.fail(f"the loss became non-finite at step {bad} ({args.optimizer}, lr {args.lr}); "
                 "no outputs written", cli.DIVERGED)
    for t in steps:
        say(log_line(t, losses))
    written = write_outputs(out, x=x, y=y, steps=steps, snapshots=np.asarray(trajectory.snapshots), losses=losses,
                            params=data.as_numpy(trajectory.params), title=title,
                            plots=not args.no_plots)
    if args.record is not None:
        import optax

        from jax_impl.app.recording import write_record
        from jax_impl.core import record

        arrays = record.recorded_run(params, x, y, lr, steps=args.steps, every=args.record_every)
        write_record(args.record, args, data.as_numpy(arrays), np.asarray(x), np.asarray(y), framework="jax",
                     versions={"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__},
                     precision=str(np.dtype(dtype)))
        written.append(args.record)
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
