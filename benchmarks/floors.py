"""Matmul-only floors of the MLP VAE: the model's matmuls alone, at the same shapes, as one program.

A floor is what XLA's GEMM kernels on this machine allow for a piece of work: the same
``dot_general``s the real program runs, in the same order and at the same shapes, with no
bias, activation, likelihood, sampling, optimizer or data gathering around them. A real
program's time over its floor is the price of everything that is not a matmul.

* :func:`vae_epoch_floor`: one training epoch (``steps`` steps of batch ``batch``). Per step the
  encoder and decoder forward passes (x W for each layer; the decoder takes the first
  ``latent`` columns of the encoder's heads, as z = mu + sigma eps does), then the backward pass
  layer by layer from the top: the weight gradient h^T g of every layer and the input gradient
  g W^T of every layer but the encoder's first (the data need none). The encoder's top gradient
  is the decoder's input gradient twice over (for mu and log-variance). Each weight moves by a
  tiny step of its gradient (one fused pass over it: the cheapest use that keeps the gradient
  alive), so no product is loop invariant.
* :func:`products_floor`: any step's products, read off its jaxpr (every ``dot_general`` and
  convolution, forward and backward, at its own shapes and parameters), each on random operands,
  as one jitted ``lax.scan``: the floor of a model whose layers are not all dense (the DCGAN).
* :func:`iwae_floor`: the IWAE evaluation (:func:`genjax.objectives.vae.iwae_nll`): per chunk of images,
  the encoder's forward pass on them and the decoder's forward pass on K latents each, chunk by
  chunk in a ``lax.scan``, as the real evaluation's ``lax.map`` runs them.
* :func:`iwae_elementwise`: the other side of the IWAE, its elementwise work alone, no matmul: the
  Bernoulli log-likelihood of K x 784 logits per image (a softplus per logit: an exponential and a
  log1p) and the K x D normal draws of each image from its own key, with the library's own
  functions, chunk by chunk as the evaluation runs them. The evaluation cannot be faster than its
  floor plus what this costs with XLA's elementwise kernels (unless the two overlapped).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from benchmarks.flops import eqn_flops, live_jaxpr, step_flops, subjaxprs
from genjax.devices import data_mesh
from genjax.training.step import fast_compiler_options


def _weights(key: jax.Array, shapes: Sequence[tuple[int, int]]) -> list[jax.Array]:
    keys = jax.random.split(key, len(shapes))
    return [jax.random.uniform(k, s, jnp.float32, -1, 1) / math.sqrt(s[0]) for k, s in zip(keys, shapes)]


def layer_shapes(hidden: Sequence[int], latent: int, pixels: int = 784) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every dense layer, encoder then decoder, in forward order."""
    enc = [pixels, *hidden, 2 * latent]
    dec = [latent, *hidden[::-1], pixels]
    return list(zip(enc[:-1], enc[1:])) + list(zip(dec[:-1], dec[1:]))


def vae_epoch_floor(hidden: Sequence[int], latent: int, steps: int, batch: int = 128, pixels: int = 784):
    """``(fn, args, flops)``: ``fn(*args)`` runs the matmuls of ``steps`` training steps of an MLP VAE
    (module docstring) as one jitted ``lax.scan``; ``flops`` counts them (2 m k n each, from its jaxpr)."""
    shapes = layer_shapes(hidden, latent, pixels)

    def step(weights, x):
        inputs, h = [], x
        for w in weights:
            h = h[:, :w.shape[0]]  # the decoder's first layer takes z (latent columns of the heads)
            inputs.append(h)
            h = h @ w
        g, new = h, list(weights)  # the logits stand in for dL/dlogits
        for i in reversed(range(len(weights))):
            if g.shape[1] != weights[i].shape[1]:
                g = jnp.concatenate([g, g], axis=1)  # dL/d(mu, log_var) from dL/dz
            new[i] = weights[i] - 1e-6 * (inputs[i].T @ g)
            if i > 0:
                g = g @ weights[i].T
        return new, None

    key_w, key_x = jax.random.split(jax.random.key(0))
    weights = _weights(key_w, shapes)
    xs = jax.random.uniform(key_x, (steps, batch, pixels))  # a batch per step, as the epoch gathers
    def program(weights, xs):
        return jax.lax.scan(step, weights, xs)[0]

    fn = jax.jit(program, compiler_options=fast_compiler_options(data_mesh()))
    return fn, (weights, xs), step_flops(program, weights, xs)


def iwae_floor(hidden: Sequence[int], latent: int, images: int, k: int, chunk: int, pixels: int = 784):
    """``(fn, args, flops)`` for the matmuls of the K-sample IWAE bound over ``images`` images in
    chunks of ``chunk`` (module docstring)."""
    shapes = layer_shapes(hidden, latent, pixels)
    n_enc = len(hidden) + 1

    def body(carry, x):
        weights, z, _ = carry
        h = x
        for w in weights[:n_enc]:
            h = h @ w
        # The K latents of each image: the carried ones, nudged by the encoder's output so that
        # the decoder's products depend on the chunk (no work is loop invariant).
        z = z + 1e-7 * jnp.repeat(h[:, :latent], k, axis=0)
        logits = z
        for w in weights[n_enc:]:
            logits = logits @ w
        return (weights, z, logits), None

    key_w, key_x, key_z = jax.random.split(jax.random.key(0), 3)
    weights = _weights(key_w, shapes)
    num_chunks = -(-images // chunk)
    xs = (jax.random.uniform(key_x, (num_chunks, chunk, pixels)) > 0.5).astype(jnp.float32)
    z0 = jax.random.normal(key_z, (chunk * k, latent))
    carry = (weights, z0, jnp.zeros((chunk * k, pixels)))
    def program(carry, xs):
        return jax.lax.scan(body, carry, xs)[0][2]

    fn = jax.jit(program, compiler_options=fast_compiler_options(data_mesh()))
    return fn, (carry, xs), step_flops(program, carry, xs)


def iwae_elementwise(latent: int, images: int, k: int, chunk: int, pixels: int = 784, likelihood: bool = True,
                     noise: bool = True):
    """``(fn, args)``: ``fn(*args)`` runs the IWAE's elementwise work alone (module docstring) over
    ``images`` images in chunks of ``chunk``: per chunk, with ``likelihood``, -``reconstruction_loss``
    (Bernoulli) of ``chunk`` x K x ``pixels`` logits (in a (chunk, K, pixels) array, as the evaluation
    decodes them) against the chunk's binary images, the logits a
    stored random array scaled by a per-chunk factor (so nothing is loop invariant); with ``noise``,
    ``prng.normal(key_i, (K, latent))`` for each image's own ``rbg`` key (the presets' keys), as
    :func:`genjax.objectives.vae.log_importance_weights` draws them. Per chunk the sums are kept."""
    from genjax import prng
    from genjax.objectives.vae import reconstruction_loss

    num_chunks = -(-images // chunk)
    key_l, key_x = jax.random.split(jax.random.key(0))
    logits = 3.0 * jax.random.normal(key_l, (chunk, k, pixels))
    xs = (jax.random.uniform(key_x, (num_chunks, chunk, 1, pixels)) > 0.5).astype(jnp.float32)
    keys = jax.random.split(jax.random.key(1, impl="rbg"), (num_chunks, chunk))
    scales = 1.0 + 1e-3 * jnp.arange(num_chunks, dtype=jnp.float32)

    def body(_, args):
        x, ks, scale = args
        total = jnp.zeros(())
        if likelihood:
            total += jnp.sum(-reconstruction_loss(scale * logits, x, "bernoulli"))
        if noise:
            total += jnp.sum(jax.vmap(lambda ki: prng.normal(ki, (k, latent)))(ks))
        return None, total

    def program(xs, keys, scales):
        return jax.lax.scan(body, None, (xs, keys, scales))[1]

    return jax.jit(program), (xs, keys, scales)  # compiled as the evaluation is (XLA's default options)


PRODUCTS = ("dot_general", "conv_general_dilated")
CALLS = ("jit", "pjit", "closed_call", "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr", "remat",
         "checkpoint")  # equations that run their sub-jaxpr once


def step_products(fn, *args) -> list:
    """Every product of one call of ``fn(*args)``, in program order: the ``dot_general`` and
    ``conv_general_dilated`` equations of its live jaxpr (:func:`~benchmarks.flops.live_jaxpr`),
    inside nested calls too (each call runs once).
    A product inside a loop or a branch is refused: its count would be the loop's, not the jaxpr's."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            name = eqn.primitive.name
            if name in PRODUCTS:
                found.append(eqn)
            subs = [j for v in eqn.params.values() for j in subjaxprs(v)]
            if subs and name not in CALLS:
                if any(e.primitive.name in PRODUCTS for j in subs for e in j.eqns):
                    raise ValueError(f"a product inside {name}: products_floor counts straight-line steps only")
            for j in subs:
                walk(j)

    walk(live_jaxpr(fn, *args))
    return found


def products_floor(products: Sequence, steps: int):
    """``(fn, args, flops)``: ``fn(*args)`` runs ``steps`` times the ``products`` (from
    :func:`step_products`), each on random operands of its own shapes with its own parameters, as
    one jitted ``lax.scan``. Each product's output is materialized (an optimization barrier keeps
    it out of any fused epilogue) and summed; the sum, times a tiny factor, moves the smaller
    operand, so no product is loop invariant. ``flops`` counts the products (2 m k n each; for a
    convolution, per output element 2 x its window's taps)."""
    keys = jax.random.split(jax.random.key(0), 2 * len(products))
    operands = []
    for i, eqn in enumerate(products):
        pair = []
        for j, v in enumerate(eqn.invars):
            fan_in = max(1, math.prod(v.aval.shape[1:]))
            pair.append(jax.random.uniform(keys[2 * i + j], v.aval.shape, v.aval.dtype, -1, 1) / math.sqrt(fan_in))
        operands.append(tuple(pair))

    def body(carry, _):
        new = []
        for eqn, (a, b) in zip(products, carry):
            out = jax.lax.optimization_barrier(eqn.primitive.bind(a, b, **eqn.params))
            nudge = 1e-9 * jnp.sum(out)
            new.append((a + nudge, b) if a.size <= b.size else (a, b + nudge))
        return new, None

    def program(carry):
        return jax.lax.scan(body, carry, None, length=steps)[0]

    fn = jax.jit(program, compiler_options=fast_compiler_options(data_mesh()))
    return fn, (operands,), sum(eqn_flops(eqn, convs=True) for eqn in products) * steps


__all__ = ["iwae_elementwise", "iwae_floor", "layer_shapes", "products_floor", "step_products", "vae_epoch_floor"]
