"""The notebook's training run in PyTorch: the twin of train_jax.py, with its flags and its output files.

    python scripts/train_torch.py               # the notebook: its data and weights, Adam lr 0.2, 201 steps
    python scripts/train_torch.py --seed 3 --lr 0.05 --optimizer sgd --out out/torch-sgd
    python scripts/train_torch.py --no-plots --json
    python scripts/train_torch.py --torch-seed 7 # torch.manual_seed(7), then the notebook's cells
    python scripts/train_torch.py --init out/model.safetensors   # start from these weights (.pt, .safetensors, .npz)

Without --seed the data and the initial weights are torch's own draw after torch.manual_seed(1), as in the notebook
(equal, bit for bit, to what train_jax.py draws without torch, jax_impl/core/torch_rng.py); --torch-seed K: torch's
own draw after torch.manual_seed(K), with --hidden, --points and --noise in the notebook's cells (train_jax.py
--torch-seed K reproduces it without torch). Otherwise --seed K, --hidden other than 20, --points and --noise use
the JAX draws of train_jax.py (jax.random.key(K) through to_state_dict), so both scripts start from the same weights
on the same data; only then is jax imported (--no-cache: without JAX's persistent compilation cache for those draws;
torch compiles nothing). Writes into --out (default out/): data.png, snapshots.png,
learning.gif, loss.png, params.npz (the JAX layout: w1 (1,H), b1 (H,), w2 (H,1), b2 (1,)), model.safetensors (the
net's state_dict) and losses.json. --init FILE: those initial weights, on the data the other flags choose.
--save-state FILE: the run's training state at its end; --resume FILE continues one (this script's or
train_jax.py's) to --steps.
--record FILE [--record-every K]: the whole trajectory, Adam only (docs/records.md).
Exit codes: 2 bad input, 3 the loss diverged.
"""

import json
import time

from jax_impl.app import cli, out_dir, resume
from jax_impl.app.outputs import RUN_FILES, write_outputs
from jax_impl.core.experiment import fresh_data
from jax_impl.core.steps import first_nonfinite_step, log_line, snapshot_steps


def jax_draws(args):
    """(x, y, params) as numpy arrays, drawn as train_jax.py draws them for these flags. Imports jax."""
    cli.setup_jax(x64=args.x64, cache_dir=None if args.no_cache else cli.default_cache_dir())
    import jax.numpy as jnp

    from jax_impl.core import data

    params, x, y = cli.run_inputs(args, jnp.float64 if args.x64 else jnp.float32)
    return data.as_numpy({"x": x, "y": y}).values(), data.as_numpy(params)


def parse_args(argv=None):
    """The run flags (cli.parse_run_args: the same for train_jax.py and train_torch.py)."""
    return cli.parse_run_args(__doc__, argv)


def main(argv=None):
    args = parse_args(argv)
    out = out_dir.check(args.out, RUN_FILES)
    steps, title = snapshot_steps(args.steps, args.log_every), f"PyTorch, {args.optimizer} lr {args.lr}"

    import numpy as np
    import torch

    from jax_impl.files.state_file import write as write_state
    from torch_impl.twin.convert import from_state_dict, to_state_dict
    from torch_impl.twin.model import Net
    from torch_impl.twin.notebook import notebook_draws
    from torch_impl.twin.optimizer_state import load_slots, torch_slots
    from torch_impl.twin.train import fit_from, make_optimizer

    dtype = torch.float64 if args.x64 else torch.float32
    notebook_run = args.seed is None and args.hidden == 20 and not fresh_data(args.points, args.noise, args.data_seed)
    if notebook_run or args.torch_seed is not None:
        # torch.manual_seed(K), the data, then Net(1, H, 1): the notebook's cells (K = 1 unless --torch-seed)
        x, y, net, _ = notebook_draws(args.hidden, seed=1 if args.torch_seed is None else args.torch_seed,
                                      points=args.points or 100, noise=0.2 if args.noise is None else args.noise)
    else:
        (x, y), params = jax_draws(args)
        net = Net(1, args.hidden, 1).to(dtype)  # before loading: load_state_dict casts to the module's dtype
        net.load_state_dict(to_state_dict(params, args.hidden))
        x, y = torch.tensor(x), torch.tensor(y)  # copies: jax hands out read-only buffers
    net, x, y = net.to(dtype), x.to(dtype), y.to(dtype)
    if args.init_params is not None:  # --init: those weights, on the data above (already in the run's dtype)
        net.load_state_dict(to_state_dict(args.init_params), strict=True)
    saved, first = args.resume_state, 0
    if saved is not None:  # --resume: its weights (the data as above) and optimizer state, from its step on
        net.load_state_dict(to_state_dict({k: v.astype(np.dtype(saved.dtype)) for k, v in saved.params.items()}))
        first = saved.step
    say = (lambda *a: None) if args.json else print

    say(net)
    # The first torch.optim optimizer of a process imports torch._dynamo and its dependencies (sympy, ...): seconds,
    # paid once, like JAX's compilation. Timed apart so that run_s is the training loop itself.
    start = time.perf_counter()
    make_optimizer(args.optimizer, [torch.zeros(1, requires_grad=True)], args.lr)
    setup_s = time.perf_counter() - start
    initial = from_state_dict(net.state_dict())  # copies: fit trains the net in place
    start = time.perf_counter()
    opt = make_optimizer(args.optimizer, net.parameters(), args.lr)
    if saved is not None:
        try:
            load_slots(opt, args.optimizer, saved.slots, saved.step)
        except ValueError as e:
            cli.fail(f"--resume {args.resume}: {e}")
    losses, snapshots = fit_from(net, opt, x, y, start=first, steps=args.steps, every=args.log_every)
    run_s = time.perf_counter() - start

    losses = losses.numpy() if saved is None else np.concatenate([saved.losses, losses.numpy()])
    bad = first_nonfinite_step(losses)
    if bad is not None:
        cli.fail(f"the loss became non-finite at step {bad} ({args.optimizer}, lr {args.lr}); "
                 "no outputs written", cli.DIVERGED)
    for t in steps:
        say(log_line(t, losses))
    beside = []  # files written outside --out: the state file, the record
    written = write_outputs(out, x=x.numpy(), y=y.numpy(), steps=[t for t in steps if t >= first],
                            snapshots=np.stack([s.numpy() for s in snapshots]), losses=losses,
                            params=from_state_dict(net.state_dict()), title=title,
                            plots=not args.no_plots)
    if args.save_state is not None:
        state = resume.saved_state(args, params=from_state_dict(net.state_dict()), slots=torch_slots(opt)[0],
                                   step=args.steps, losses=losses, framework="torch")
        write_state(args.save_state, state)
        beside.append(str(args.save_state))
    if args.record is not None:
        from jax_impl.app.recording import write_record
        from torch_impl.twin.record import recorded_run

        arrays = recorded_run(initial, x.numpy(), y.numpy(), args.lr, steps=args.steps, every=args.record_every,
                              dtype=dtype)
        write_record(args.record, args, arrays, x.numpy(), y.numpy(), framework="torch",
                     versions={"torch": torch.__version__, "numpy": np.__version__}, precision=str(losses.dtype))
        beside.append(str(args.record))
    summary = {"framework": "torch", "device": "cpu", "dtype": str(losses.dtype), "steps": args.steps,
               "points": int(x.shape[0]), "hidden": args.hidden, "optimizer": args.optimizer, "lr": args.lr,
               "final_loss": float(losses[-1]), "compile_s": 0.0, "setup_s": setup_s, "run_s": run_s,
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "out": str(out), "files": written, "also_wrote": beside, "losses": losses.tolist()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"final loss {summary['final_loss']:.6f} after {args.steps} steps; optimizer setup {setup_s:.3f} s "
              f"(torch.optim's first-use imports), run {run_s * 1e3:.2f} ms on cpu (torch {torch.__version__} eager, "
              f"{summary['threads']} threads, nothing compiled); wrote {', '.join(written)} to {out}/"
              + "".join(f" and {path}" for path in beside))


if __name__ == "__main__":
    cli.run_main(main)
