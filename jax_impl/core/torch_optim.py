"""torch.optim's updates as optax computes them: `direction(name, args)`, the update *before* the learning rate, for
each optimizer and argument set of the parity table (docs/optimizers.md has it, with the measured differences).

    optax.chain(direction("sgd", {"momentum": 0.9}), optax.scale_by_learning_rate(lr))
        ==  torch.optim.SGD(params, lr=lr, momentum=0.9)

The learning rate never enters the direction: the caller chains `optax.scale_by_learning_rate(lr)` after it, so `lr`
may be a traced array (a sweep over it compiles once). An argument that would need the learning rate inside the
direction (Adagrad's `lr_decay`) is refused with a ValueError, as is anything torch itself refuses.

optax's own transformations where they compute torch's formula: `add_decayed_weights` before the direction (torch's
L2 weight decay, grad + wd * param); `trace` (SGD's momentum without dampening, Nesterov's too; RMSprop's momentum);
`scale_by_adam`; `scale_by_rms` and `scale_by_stddev` with `eps_in_sqrt=False` (RMSprop: eps outside the root);
`scale_by_adamax` (eps inside the maximum, as torch has it); and `add_decayed_weights` *after* the direction for the
decoupled decay of AdamW and NAdam: torch does p <- p (1 - lr wd), then p <- p - lr d; the chain gives
p - lr (d + wd p), the same. Where optax has no transformation with torch's formula, one is written here in optax's
style (pure `init`/`update`, a NamedTuple state, the step count an int32 array): dampened_momentum, torch_amsgrad,
torch_adagrad, torch_nadam. Each follows torch 2.13's single-tensor implementation (torch/optim/<name>.py,
`_single_tensor_<name>`, the one torch runs on CPU), in its order of operations where that matters in float64.

The names and argument tables (TORCH_CLASSES, TORCH_DEFAULTS, torch_kwargs) are jax_impl.core.optimizers's, the one
definition, re-exported here: the command line and the torch twin read them without importing jax.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax_impl.core.optimizers import TORCH_CLASSES, TORCH_DEFAULTS, parse_spec, torch_kwargs

__all__ = ["TORCH_CLASSES", "TORCH_DEFAULTS", "torch_kwargs", "direction", "make_direction", "make_optimizer",
           "dampened_momentum", "torch_amsgrad", "torch_adagrad", "torch_nadam"]

def direction(name: str, args: dict | None = None) -> optax.GradientTransformation:
    """The update of torch.optim.<TORCH_CLASSES[name]>(params, lr=lr, **args) before the learning rate, sign
    included as optax has it: chained with optax.scale_by_learning_rate(lr) (which multiplies by -lr) it is torch's
    step. `name` as in TORCH_CLASSES (any case); `args` torch's keyword arguments, lr apart (None: torch's defaults).

    ValueError for an unknown name, and for arguments outside the table (torch_kwargs: an unknown key, a wrong type,
    a combination torch refuses, Adagrad's lr_decay)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in TORCH_CLASSES:
        raise ValueError(f"unknown optimizer {name!r} (choose from {', '.join(TORCH_CLASSES)}, in any case)")
    return _BUILDERS[key](**torch_kwargs(key, dict(args or {})))


def make_direction(spec: str) -> optax.GradientTransformation:
    """direction() of an optimizer spec, "adam" or "sgd(momentum=0.9)" (optimizers.parse_spec): what the training
    programs hold. An ensemble with a learning rate per model applies it alone and scales by its own rates."""
    return direction(*parse_spec(spec))


def make_optimizer(spec: str, lr) -> optax.GradientTransformation:
    """optax's twin of the torch.optim optimizer `spec` names, at learning rate `lr`: make_direction(spec), then
    optax.scale_by_learning_rate(lr), which is how optax.adam(lr) and optax.sgd(lr) are built. `lr` may be a traced
    array: the learning rate is data."""
    return optax.chain(make_direction(spec), optax.scale_by_learning_rate(lr))


def _l2(weight_decay: float, core: optax.GradientTransformation) -> optax.GradientTransformation:
    """torch's weight decay as L2, grad + weight_decay * param, before `core` (none at 0: torch skips it too)."""
    return core if weight_decay == 0 else optax.chain(optax.add_decayed_weights(weight_decay), core)


def _decoupled(weight_decay: float, core: optax.GradientTransformation) -> optax.GradientTransformation:
    """torch's decoupled decay, param * (1 - lr * weight_decay) before the step: `core`, then + weight_decay * param,
    which the caller's -lr turns into the same product."""
    return core if weight_decay == 0 else optax.chain(core, optax.add_decayed_weights(weight_decay))


def _zeros(params):
    return jax.tree.map(jnp.zeros_like, params)


def _count_as(count, updates):
    """The step count as the updates' float dtype (torch's bias corrections take the step as a number)."""
    return count.astype(jnp.result_type(*jax.tree.leaves(updates)))


# ---- SGD ----------------------------------------------------------------------------------------------------------

class DampenedMomentumState(NamedTuple):
    count: jax.Array  # int32 (): steps taken
    buffer: optax.Updates  # torch's momentum_buffer


def dampened_momentum(momentum: float, dampening: float) -> optax.GradientTransformation:
    """torch.optim.SGD's momentum with dampening (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html):

        b_1 = g_1 (the first buffer is the gradient, undampened),   b_t = momentum b_{t-1} + (1 - dampening) g_t,

    the update b_t. optax.trace has no dampening; at dampening 0 it is this (direction uses it there). Nesterov needs
    zero dampening in torch, so it is not here."""

    def init(params):
        return DampenedMomentumState(jnp.zeros([], jnp.int32), _zeros(params))

    def update(updates, state, params=None):
        del params
        first = state.count == 0
        buffer = jax.tree.map(lambda g, b: jnp.where(first, g, b * momentum + (1 - dampening) * g), updates,
                              state.buffer)
        return buffer, DampenedMomentumState(optax.safe_increment(state.count), buffer)

    return optax.GradientTransformation(init, update)


def _sgd(momentum, dampening, weight_decay, nesterov):
    if momentum == 0:
        core = optax.identity()
    elif dampening == 0:  # trace's buffer starts at zero: momentum * 0 + g_1 = g_1, torch's first buffer
        core = optax.trace(decay=momentum, nesterov=nesterov)
    else:
        core = dampened_momentum(momentum, dampening)  # nesterov needs zero dampening (torch_kwargs refuses it)
    return _l2(weight_decay, core)


# ---- Adam, AdamW: amsgrad -----------------------------------------------------------------------------------------

class AmsgradState(NamedTuple):
    count: jax.Array  # int32 ()
    mu: optax.Updates  # exp_avg
    nu: optax.Updates  # exp_avg_sq
    nu_max: optax.Updates  # max_exp_avg_sq


def torch_amsgrad(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """torch.optim.Adam(amsgrad=True)'s direction, and AdamW's (https://pytorch.org/docs/stable/generated/torch.optim.Adam.html):

        m_t = b1 m + (1 - b1) g,   v_t = b2 v + (1 - b2) g^2,   v_max = max(v_max, v_t)   (uncorrected),
        update = m_t / (1 - b1^t) / (sqrt(v_max) / sqrt(1 - b2^t) + eps).

    optax.scale_by_amsgrad keeps the maximum of the bias-corrected moment instead: another update."""

    def init(params):
        zeros = _zeros(params)
        return AmsgradState(jnp.zeros([], jnp.int32), zeros, zeros, zeros)

    def update(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        mu = jax.tree.map(lambda m, g: m + (1 - b1) * (g - m), state.mu, updates)  # torch's lerp_
        nu = jax.tree.map(lambda v, g: v * b2 + (1 - b2) * (g * g), state.nu, updates)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        t = _count_as(count, updates)
        correction1, root2 = 1 - b1**t, jnp.sqrt(1 - b2**t)
        out = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) / root2 + eps) / correction1, mu, nu_max)
        return out, AmsgradState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


def _adam_core(betas, eps, amsgrad):
    return torch_amsgrad(*betas, eps) if amsgrad else optax.scale_by_adam(b1=betas[0], b2=betas[1], eps=eps)


def _adam(betas, eps, weight_decay, amsgrad):
    return _l2(weight_decay, _adam_core(betas, eps, amsgrad))


def _adamw(betas, eps, weight_decay, amsgrad):
    return _decoupled(weight_decay, _adam_core(betas, eps, amsgrad))


# ---- RMSprop ------------------------------------------------------------------------------------------------------

def _rmsprop(alpha, eps, weight_decay, momentum, centered):
    # torch: v = alpha v + (1 - alpha) g^2 (centered: minus the square of the lerped mean), d = g / (sqrt(.) + eps),
    # eps outside the root; momentum's buffer starts at zero, b = momentum b + d: optax.trace's sum.
    scale = (optax.scale_by_stddev if centered else optax.scale_by_rms)(decay=alpha, eps=eps, eps_in_sqrt=False)
    return _l2(weight_decay, scale if momentum == 0 else optax.chain(scale, optax.trace(decay=momentum)))


# ---- Adagrad ------------------------------------------------------------------------------------------------------

class AdagradState(NamedTuple):
    sum_of_squares: optax.Updates  # torch's state_sum


def torch_adagrad(initial_accumulator_value: float, eps: float) -> optax.GradientTransformation:
    """torch.optim.Adagrad's direction at lr_decay 0 (https://pytorch.org/docs/stable/generated/torch.optim.Adagrad.html):

        s_t = s_{t-1} + g^2 (s_0 = initial_accumulator_value),   update = g / (sqrt(s_t) + eps),

    eps after the root (optax.scale_by_rss adds it inside)."""

    def init(params):
        return AdagradState(jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(updates, state, params=None):
        del params
        sums = jax.tree.map(lambda s, g: s + g * g, state.sum_of_squares, updates)
        return jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, sums), AdagradState(sums)

    return optax.GradientTransformation(init, update)


def _adagrad(lr_decay, weight_decay, initial_accumulator_value, eps):
    del lr_decay  # 0: torch_kwargs refuses any other (torch's lr / (1 + (t - 1) lr_decay) puts lr in the direction)
    return _l2(weight_decay, torch_adagrad(initial_accumulator_value, eps))


# ---- Adamax -------------------------------------------------------------------------------------------------------

def _adamax(betas, eps, weight_decay):
    # torch: m = b1 m + (1 - b1) g, u = max(b2 u, |g| + eps) (eps inside the maximum), update m / u / (1 - b1^t):
    # optax.scale_by_adamax computes the same (optax.tree.update_infinity_moment: max(|g| + eps, b2 u)).
    return _l2(weight_decay, optax.scale_by_adamax(b1=betas[0], b2=betas[1], eps=eps))


# ---- NAdam --------------------------------------------------------------------------------------------------------

class NadamState(NamedTuple):
    count: jax.Array  # int32 ()
    mu_product: jax.Array  # float32 (): torch keeps it in its default dtype, float32, in a float64 run too
    mu: optax.Updates  # exp_avg
    nu: optax.Updates  # exp_avg_sq


def torch_nadam(b1: float, b2: float, eps: float, momentum_decay: float) -> optax.GradientTransformation:
    """torch.optim.NAdam's direction, Dozat 2016 with torch's momentum schedule (https://pytorch.org/docs/stable/generated/torch.optim.NAdam.html):

        mu_t = b1 (1 - 0.5 * 0.96^(t momentum_decay)),   P_t = mu_1 ... mu_t,
        m_t = b1 m + (1 - b1) g,   v_t = b2 v + (1 - b2) g^2,   d = sqrt(v_t / (1 - b2^t)) + eps,
        update = (1 - mu_t) / (1 - P_t) g / d + mu_{t+1} / (1 - P_t mu_{t+1}) m_t / d.

    optax.nadam has no such schedule. P_t is kept in float32 as torch keeps it (its default dtype, whatever the
    parameters' dtype; a float64 run that did not would part from torch by 1e-9 by step 3). With
    torch.set_default_dtype(torch.float64) torch keeps it in float64 instead: not what this follows."""

    def init(params):
        zeros = _zeros(params)
        return NadamState(jnp.zeros([], jnp.int32), jnp.ones([], jnp.float32), zeros, zeros)

    def update(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        t = _count_as(count, updates)
        mu_t = b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        product = state.mu_product * mu_t.astype(jnp.float32)  # torch's float32 `mu_product *= mu`
        p = product.astype(t.dtype)
        grad_coef, mu_coef = (1.0 - mu_t) / (1.0 - p), mu_next / (1.0 - p * mu_next)
        correction2 = 1 - b2**t
        mu = jax.tree.map(lambda m, g: m + (1 - b1) * (g - m), state.mu, updates)  # torch's lerp_
        nu = jax.tree.map(lambda v, g: v * b2 + (1 - b2) * (g * g), state.nu, updates)
        out = jax.tree.map(lambda g, m, v: (grad_coef * g + mu_coef * m) / (jnp.sqrt(v / correction2) + eps),
                           updates, mu, nu)
        return out, NadamState(count, product, mu, nu)

    return optax.GradientTransformation(init, update)


def _nadam(betas, eps, weight_decay, momentum_decay, decoupled_weight_decay):
    return (_decoupled if decoupled_weight_decay else _l2)(weight_decay, torch_nadam(*betas, eps, momentum_decay))


_BUILDERS = {"sgd": _sgd, "adam": _adam, "adamw": _adamw, "rmsprop": _rmsprop, "adagrad": _adagrad,
             "adamax": _adamax, "nadam": _nadam}
assert _BUILDERS.keys() == TORCH_CLASSES.keys() == TORCH_DEFAULTS.keys()
