"""The notebook's training run, in JAX: the main job.

    python scripts/train_jax.py                 # reproduces the notebook: data, weights, Adam lr 0.2, 201 steps
    python scripts/train_jax.py --seed 3 --lr 0.05 --optimizer sgd --out out/sgd
    python scripts/train_jax.py --points 10000 --noise 0.1 --no-plots --json
    python scripts/train_jax.py --torch-seed 7   # data and weights as torch.manual_seed(7) gives them, without torch
    python scripts/train_jax.py --init net.pt    # start from a torch state_dict (or a .safetensors, or a params.npz)

Writes into --out (default out/): data.png, snapshots.png (the eleven snapshots), learning.gif, loss.png,
params.npz (w1 (1,H), b1 (H,), w2 (H,1), b2 (1,)), model.safetensors (the same weights for torch: Net(1, H, 1)'s
state_dict) and losses.json; with --save-state FILE also the run's training state, which --resume FILE continues
(in this script or train_torch.py). --record FILE [--record-every K]: the whole trajectory, Adam only
(docs/records.md). Exit codes: 2 bad input, 3 the loss diverged.
"""

import json
import time

from jax_impl.app import cli, out_dir, resume
from jax_impl.app.outputs import RUN_FILES, write_outputs
from jax_impl.core.steps import first_nonfinite_step, log_line, snapshot_steps


def parse_args(argv=None):
    """The run flags (cli.parse_run_args: the same for train_jax.py and train_torch.py)."""
    return cli.parse_run_args(__doc__, argv)


def resume_inputs(args, params, lr):
    """(params, the optimizer's state, its step, the losses before it): --resume's, or the run's start."""
    import jax.numpy as jnp

    from jax_impl.core import optimizer_state
    from jax_impl.core.torch_optim import make_optimizer

    saved = args.resume_state
    if saved is not None:
        params = {k: jnp.asarray(v) for k, v in saved.params.items()}
    opt_state = make_optimizer(args.optimizer, lr).init(params)
    if saved is None:
        return params, opt_state, 0, []
    try:
        opt_state = optimizer_state.optax_state(args.optimizer, opt_state, saved.slots, saved.step)
    except ValueError as e:
        cli.fail(f"--resume {args.resume}: {e}")
    return params, opt_state, saved.step, saved.losses


def main(argv=None):
    args = parse_args(argv)
    out = out_dir.check(args.out, RUN_FILES)
    steps, title = snapshot_steps(args.steps, args.log_every), f"JAX, {args.optimizer} lr {args.lr}"
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir())

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jax_impl.core import data, optimizer_state, ready, train
    from jax_impl.files import state_file

    dtype = jnp.float64 if args.x64 else jnp.float32
    params, x, y = cli.run_inputs(args, dtype)
    lr = jnp.asarray(args.lr, dtype)
    say = (lambda *a: None) if args.json else print

    say(f"Net(\n  (linear1): Linear(in_features=1, out_features={args.hidden}, bias=True)\n  (sigmoid): Sigmoid()\n"
        f"  (linear2): Linear(in_features={args.hidden}, out_features=1, bias=True)\n)")
    begin = time.perf_counter()
    if stateful := args.resume is not None or args.save_state is not None:  # the program that takes and gives state
        params, opt_state, first, earlier = resume_inputs(args, params, lr)
        program, inputs = train.jitted_resume(params, x), (params, opt_state, x, y, lr)
        static = {"start": first}
    else:
        program, inputs, static, first, earlier = train.jitted_fit(params, x), (params, x, y, lr), {}, 0, []
    compiled = program.lower(*inputs, optimizer=args.optimizer, steps=args.steps, every=args.log_every,
                             **static).compile()
    compile_s = time.perf_counter() - begin
    begin = time.perf_counter()
    trajectory = ready.wait(compiled(*inputs))  # Ctrl-C and SIGTERM act within ~50 ms while it trains
    run_s = time.perf_counter() - begin
    if stateful:
        trajectory, opt_state = trajectory

    losses = np.concatenate([np.asarray(earlier, dtype), np.asarray(trajectory.losses)])
    bad = first_nonfinite_step(losses)
    if bad is not None:
        cli.fail(f"the loss became non-finite at step {bad} ({args.optimizer}, lr {args.lr}); "
                 "no outputs written", cli.DIVERGED)
    for t in steps:
        say(log_line(t, losses))
    beside = []  # files written outside --out: the state file, the record
    written = write_outputs(out, x=x, y=y, steps=[t for t in steps if t >= first],
                            snapshots=np.asarray(trajectory.snapshots), losses=losses,
                            params=data.as_numpy(trajectory.params), title=title, plots=not args.no_plots)
    if args.save_state is not None:
        slots = optimizer_state.torch_slots(args.optimizer, opt_state)
        state_file.write(args.save_state, resume.saved_state(args, params=trajectory.params, slots=slots,
                                                             step=args.steps, losses=losses, framework="jax"))
        beside.append(str(args.save_state))
    if args.record is not None:
        import optax

        from jax_impl.app.recording import write_record
        from jax_impl.core import record

        arrays = record.recorded_run(params, x, y, lr, steps=args.steps, every=args.record_every)
        write_record(args.record, args, data.as_numpy(arrays), np.asarray(x), np.asarray(y), framework="jax",
                     versions={"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__},
                     precision=str(np.dtype(dtype)))
        beside.append(str(args.record))
    summary = {"framework": "jax", "device": str(jax.devices()[0].platform), "dtype": str(np.dtype(dtype)),
               "steps": args.steps, "points": int(x.shape[0]), "hidden": args.hidden, "optimizer": args.optimizer,
               "lr": args.lr, "final_loss": float(losses[-1]), "compile_s": compile_s, "run_s": run_s,
               "out": str(out), "files": written, "also_wrote": beside, "losses": losses.tolist()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"final loss {summary['final_loss']:.6f} after {args.steps} steps; compile {compile_s:.3f} s "
              f"(persistent cache {'off' if args.no_cache else 'on'}), run {run_s * 1e3:.2f} ms on "
              f"{summary['device']}; wrote {', '.join(written)} to {out}/"
              + "".join(f" and {path}" for path in beside))


if __name__ == "__main__":
    cli.run_main(main)
