r"""The autoregressive pixel model family: its loss, exact likelihood, sampler and completion.

For a binary image x of T = H W pixels in raster order the model factorizes

    \log p(x) = \sum_{t=1}^T \log p(x_t | x_{<t}),   p(x_t = 1 | x_{<t}) = \sigma(l_t),

an exact likelihood (no bound): per image it is
:func:`genjax.objectives.losses.bernoulli_log_likelihood` of the teacher-forced logits.
Reported in nats per image and in bits per dimension, NLL / (T ln 2)
(:func:`genjax.objectives.losses.bits_per_dim`).

The sampler and completion run the model's one-step function in a single
``lax.scan`` over the T pixels (one compiled program, B images in parallel).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import prng
from genjax.data import to_pixels
from genjax.devices import map_in_chunks, shard_rows
from genjax.models.pixel_rnn import START
from genjax.objectives import losses
from genjax.objectives.losses import masked_mean


def flat_binary(images: jax.Array) -> jax.Array:
    """uint8 images (B, H, W, 1) -> threshold-binarized pixels (B, H*W) in {0, 1}, float32."""
    return to_pixels(images, "threshold").reshape(images.shape[0], -1)


def make_loss(model: nn.Module):
    """The training loss of :mod:`genjax.training.step`'s signature for a batch ``{"image": uint8}``:
    mean over real images of -log p(x) (nats per image), teacher-forced."""

    def loss_fn(params, model_state, batch, key, step):
        x = flat_binary(batch["image"])
        nll = -losses.bernoulli_log_likelihood(model.apply({"params": params}, x), x)
        loss = masked_mean(nll, batch)
        return loss, (model_state, {"nll": loss})

    return loss_fn


@functools.partial(jax.jit, static_argnames=("model", "chunk", "mesh"))
def log_likelihood(model, params, x: jax.Array, chunk: int = 500, mesh=None) -> jax.Array:
    """log p(x) per image (nats) for binary ``x`` (N, T), in chunks split over the mesh's devices."""
    return map_in_chunks(lambda xc: losses.bernoulli_log_likelihood(model.apply({"params": params}, xc), xc),
                         x, chunk, mesh)


@functools.partial(jax.jit, static_argnames=("model", "n", "length", "temperature", "mesh"))
def sample(model, params, key: jax.Array, n: int, length: int = 784, temperature: float = 1.0,
           given: jax.Array | None = None, known: jax.Array | None = None, mesh=None) -> tuple[jax.Array, jax.Array]:
    r"""Draw ``n`` images of ``length`` pixels, pixel by pixel in one ``lax.scan``:
    (pixels (n, length) in {0, 1}, log p (n,)).

    Pixel t is 1 with probability \sigma(l_t / temperature) (the argmax 1[l_t > 0] at
    temperature 0), from a U[0, 1) draw with key ``fold_in(key, t)``. Where
    ``known[t]`` (bool (T,)) is set, pixel t is ``given[:, t]`` instead (completion;
    ``given`` (n, T) binary). ``log p`` accumulates the model's own \log p(x_t | x_{<t})
    (temperature 1) of the pixels it emits: fed all-known pixels, it is their exact
    log-likelihood.
    """
    table = model.apply({"params": params}, method="input_table")
    if given is None:
        given = jnp.zeros((n, length), jnp.float32)
        known = jnp.zeros((length,), bool)
    carry = model.apply({"params": params}, n, method="initial_carry")
    mesh = mesh if mesh is not None and n % mesh.size == 0 else None  # rows split evenly, or not at all
    carry, given = shard_rows((carry, given), mesh)

    def body(state, inputs):
        carry, prev, log_p = state
        t, known_t, given_t = inputs
        carry, logit = model.apply({"params": params}, carry, prev, table, method="step")
        if temperature > 0:
            drawn = prng.uniform(jax.random.fold_in(key, t), logit.shape) < jax.nn.sigmoid(logit / temperature)
        else:
            drawn = logit > 0
        x = jnp.where(known_t, given_t, drawn.astype(jnp.float32))
        log_p = log_p + x * logit - losses.softplus(logit)
        return (carry, x.astype(jnp.int32), log_p), x

    start = jnp.full((n,), START, jnp.int32)
    (_, _, log_p), xs = jax.lax.scan(body, (carry, start, jnp.zeros((n,), jnp.float32)),
                                     (jnp.arange(length), known, given.T))
    return xs.T, log_p


def complete(model, params, key: jax.Array, images: jax.Array, rows: int, per_image: int, width: int = 28,
             temperature: float = 1.0, mesh=None) -> jax.Array:
    """``per_image`` completions of each binary image (N, T) given its top ``rows`` rows:
    (N, per_image, T); the given pixels are kept exactly."""
    n, length = images.shape
    known = jnp.arange(length) < rows * width
    given = jnp.repeat(images, per_image, axis=0)
    xs, _ = sample(model, params, key, n * per_image, length, temperature, given, known, mesh)
    return xs.reshape(n, per_image, length)
