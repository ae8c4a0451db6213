"""The training gradient over the points in chunks, for a large fit.

Once the hidden layer (H, N) outgrows the caches, each of a step's passes over it (the sigmoid, dz, the
matrix-vector products) goes out to the L3 or to memory. One chunk of the points at a time, each chunk's (H, chunk)
arrays stay in the L2: a lax.scan over the chunks sums each chunk's model.value_and_grad (autodiff, as always),
weighted by its share of the points. Where the whole layer still fits the cores' caches, XLA splitting each large
fusion over the cores does better than small chunks, so the threshold grows with the cores.
"""

import jax
import jax.numpy as jnp

from jax_impl.core import model

# Measured on an AMD EPYC (AVX2, 512 KB L2 a core, 32 MB L3), fit's 201 Adam steps chunked against whole, float32
# hidden layers (bench/speed-work.json, "points_in_chunks"). One core: 0.94-1.05x at 4 MB (10^4 x 100,
# 5 x 10^4 x 20), 0.80-0.84x at 7.6-9.8 MB (10^5 x 20, 10^4 x 256), 0.69x at 76 MB (10^6 x 20). Two cores: 1.03-1.05x
# at 7.6-9.8 MB, 0.86x at 11 MB, 0.95x at 15 MB, 0.76-0.84x at 29-31 MB, 0.72x at 76 MB. Chunks of 0.25-1 MB did
# about equally well. So: chunks of the L2's size, from 6 MB of hidden layer a core (between the last loss or tie and
# the first gain, on one core and on two); more cores are unmeasured.
CHUNK_BYTES = 2**19
CHUNKED_FROM_BYTES = 6 * 2**20  # a core


def chunk_points(points: int, hidden: int, itemsize: int, cores: int) -> int | None:
    """Points per chunk for a fit of `points` x `hidden` in `itemsize`-byte floats on `cores` cores, or None: the
    whole batch at once (a hidden layer under CHUNKED_FROM_BYTES a core)."""
    if points * hidden * itemsize < CHUNKED_FROM_BYTES * cores:
        return None
    return max(1, CHUNK_BYTES // (hidden * itemsize))


def value_and_grad(params, x, y, chunk: int):
    """model.value_and_grad(params, x, y) (the MSE, the training loss) computed `chunk` points at a time: ((loss,
    prediction (N, 1)), gradients in params' layout). The mean over N is the sum over chunks of (n_c / N) times the
    chunk's own mean, so the value is the whole batch's up to float rounding (the sums run in another order).
    The last chunk holds the N % chunk points left over, if any. ValueError for x, y not (N, 1) or chunk < 1."""
    model.check_data(x, y)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 point; got {chunk}")
    points = x.shape[0]
    full = points // chunk

    def weighted(xc, yc):
        (loss, prediction), grads = model.value_and_grad(params, xc, yc)
        share = xc.shape[0] / points
        return (loss * share, jax.tree.map(lambda g: g * share, grads)), prediction

    def body(total, chunk_xy):
        part, prediction = weighted(*chunk_xy)
        return jax.tree.map(jnp.add, total, part), prediction

    if not full:  # fewer points than a chunk: the whole batch is the one chunk (its weight would be 1)
        return model.value_and_grad(params, x, y)
    zeros = (jnp.zeros((), jnp.result_type(x, y, *jax.tree.leaves(params))), jax.tree.map(jnp.zeros_like, params))
    split = lambda a: a[:full * chunk].reshape(full, chunk, 1)  # noqa: E731
    (loss, grads), predictions = jax.lax.scan(body, zeros, (split(x), split(y)))
    prediction = predictions.reshape(full * chunk, 1)
    if points % chunk:
        (rest_loss, rest_grads), rest_prediction = weighted(x[full * chunk:], y[full * chunk:])
        loss, grads = loss + rest_loss, jax.tree.map(jnp.add, grads, rest_grads)
        prediction = jnp.concatenate([prediction, rest_prediction])
    return (loss, prediction), grads
