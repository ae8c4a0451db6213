"""The torch cases' timed callables, on the same data and initial weights as JAX's. Each builder takes the case's
inputs (cases.Inputs) and a model count and returns run(), which returns when its work is done (synchronized)."""

import numpy as np
import torch

from torch_impl.bench.machine import torch_device
from torch_impl.twin import train as torch_train
from torch_impl.twin.convert import to_state_dict
from torch_impl.twin.model import Net

# Every size compiled for its own shapes, as a training run of fixed size would be: after a second size torch.compile
# would otherwise switch to shape-generic kernels (measured slower here: 308 against 237 ms eager at 10^4 points)
STATIC = False  # torch.compile's dynamic=


def compiled_fresh(fn, mode=None):
    """torch.compile(fn) for its own shapes, from empty caches (torch.compiler.reset): every compiled case pays its
    own compilation in its first call, and none runs into dynamo's per-function recompile limit (8), past which it
    would fall back to eager without a word (the cases share make_step's code object over sizes and modes)."""
    torch.compiler.reset()
    return torch.compile(fn, mode=mode, dynamic=STATIC)


def tensors(inputs):
    """(x, y, the twin's state_dict): the JAX arrays as torch tensors on the case's device (copies: JAX arrays are
    read-only)."""
    dev = torch_device(inputs.device)
    x, y = (torch.tensor(np.array(a)).to(dev) for a in (inputs.x, inputs.y))
    return x, y, {k: v.to(dev) for k, v in to_state_dict(inputs.params).items()}


def synchronize(inputs) -> None:
    if inputs.device == "gpu":
        torch.cuda.synchronize()


def fresh_net(state, inputs) -> Net:
    """Net(1, hidden, 1) on the case's device holding `state`."""
    net = Net(1, inputs.hidden, 1).to(torch_device(inputs.device))
    net.load_state_dict(state)
    return net


def reset_in_place(net, opt, state) -> None:
    """Back to the initial weights and a fresh Adam, in place (compiled code and captured graphs keep addresses)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(state[name])
        for s in opt.state.values():
            for v in s.values():
                if torch.is_tensor(v):
                    v.zero_()


def eager(inputs, models=1):
    """The notebook's loop (torch_impl.twin.train.fit), from the same weights every run."""
    x, y, state = tensors(inputs)

    def run():
        losses, _ = torch_train.fit(fresh_net(state, inputs), x, y, lr=inputs.lr, optimizer="adam",
                                    steps=inputs.steps, every=inputs.every)
        synchronize(inputs)
        return losses

    return run


def replayed(inputs, x, net, opt, state, step):
    """run(): reset to `state`, then step() `steps` times; step() returns (loss, prediction) before its update."""

    def run():
        reset_in_place(net, opt, state)
        losses, snapshots = torch.empty(inputs.steps, dtype=x.dtype, device=x.device), []
        for t in range(inputs.steps):
            loss, prediction = step()
            losses[t] = loss.detach()
            if t % inputs.every == 0:
                snapshots.append(prediction.detach().clone())
        synchronize(inputs)
        return losses

    return run


def compiled(inputs, models=1):
    """twin.train.fit's loop with torch.compile'd forward + loss and optimizer step (torch's recipe for both)."""
    x, y, state = tensors(inputs)
    net = fresh_net(state, inputs)
    opt = torch_train.make_optimizer("adam", net.parameters(), inputs.lr)
    loss_func = torch.nn.MSELoss()
    torch.compiler.reset()
    forward = torch.compile(lambda x, y: (lambda p: (loss_func(p, y), p))(net(x)), dynamic=STATIC)
    opt_step = torch.compile(opt.step, dynamic=STATIC)

    def step():
        loss, prediction = forward(x, y)
        opt.zero_grad()
        loss.backward()
        opt_step()
        return loss, prediction

    return replayed(inputs, x, net, opt, state, step)


def cuda_graph(inputs, models=1):
    """One training step captured as a CUDA graph (torch's whole-network recipe, capturable Adam), replayed."""
    x, y, state = tensors(inputs)
    net = fresh_net(state, inputs)
    opt = torch.optim.Adam(net.parameters(), lr=inputs.lr, capturable=True)
    loss_func = torch.nn.MSELoss()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as the recipe asks, before capture
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_func(net(x), y).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        prediction = net(x)
        loss = loss_func(prediction, y)
        loss.backward()
        opt.step()

    def step():
        graph.replay()
        return loss, prediction

    return replayed(inputs, x, net, opt, state, step)


def ensemble(inputs, models):
    """torch_impl.twin.ensemble.fit_ensemble_torch: `models` models (keys 0..models-1) batched, CPU only."""
    import jax

    from jax_impl.core import ensemble as jax_ensemble
    from torch_impl.twin.ensemble import fit_ensemble_torch

    if inputs.device == "gpu":
        raise RuntimeError("torch_impl.twin.ensemble.fit_ensemble_torch runs on the CPU only")
    params = jax.tree.map(np.array, jax_ensemble.init_ensemble(list(range(models)), inputs.hidden))  # writable
    lrs = np.full(models, inputs.lr)
    return lambda: fit_ensemble_torch(params, inputs.x, inputs.y, lrs, optimizer="adam", steps=inputs.steps)


def whole_step(inputs, models=1, mode=None):
    """torch_func.make_step, the whole step (forward, backward by torch.func.grad, Adam) as one function; mode None:
    eager, else torch.compile'd as a whole in that mode ("default", "max-autotune-no-cudagraphs", "reduce-overhead")."""
    from torch_impl.bench import torch_func

    x, y, state = tensors(inputs)
    step = torch_func.make_step(fresh_net(state, inputs))
    step = step if mode is None else compiled_fresh(step, mode)

    def run():
        _, losses, _ = torch_func.train_loop(step, dict(state), x, y, inputs.lr, steps=inputs.steps,
                                             every=inputs.every)
        synchronize(inputs)
        return losses

    return run


def func_ensemble(inputs, models, mode=None):
    """`models` models (keys 0..models-1, as the other ensembles) with torch.func: functional_call + grad_and_value
    vmapped over stacked parameters, one learning rate per model; mode as whole_step's."""
    import jax

    from jax_impl.core import ensemble as jax_ensemble
    from torch_impl.bench import torch_func
    from torch_impl.twin.convert import to_state_dict

    dev = torch_device(inputs.device)
    x, y, _ = tensors(inputs)
    stacked = jax.tree.map(np.array, jax_ensemble.init_ensemble(list(range(models)), inputs.hidden))
    # to_state_dict maps one model's JAX layout to Net's names; here each (E, ...) array, model by model, restacked
    per_model = [to_state_dict({k: v[i] for k, v in stacked.items()}) for i in range(models)]
    params = {k: torch.stack([p[k] for p in per_model]).to(dev, x.dtype) for k in per_model[0]}
    lr = torch_func.stacked_lr(torch.full((models,), inputs.lr, dtype=x.dtype, device=dev), params)
    step = torch_func.make_step(Net(1, inputs.hidden, 1).to(dev, x.dtype), stacked=True)
    step = step if mode is None else compiled_fresh(step, mode)

    def run():
        _, losses, _ = torch_func.train_loop(step, dict(params), x, y, lr, steps=inputs.steps, every=None)
        synchronize(inputs)
        return losses

    return run
