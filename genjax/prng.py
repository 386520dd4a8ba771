"""Random draws that mean the same thing under ``jax.vmap`` for every key implementation.

The presets use JAX's ``rbg`` keys (XLA's RngBitGenerator), several times cheaper
per step on the CPU than threefry. But under ``jax.vmap`` over a batch of ``rbg``
keys, JAX draws the whole batch from the *first* key (documented behaviour of
its batching rule), so a vmapped draw for key i is not ``draw(key_i)``: per-image
evaluation keys would make results depend on the chunk size and the device
count, and K vmapped models would not each get their own noise.

Every function here is ``draw(key) -> array`` with a custom batching rule: under
``vmap`` over keys, each key gets exactly what it gets alone (a ``lax.map`` over
the keys for ``rbg``; threefry's own vmap, which already has that property, for
threefry). Unbatched, it gives the plain ``jax.random`` call's values, at no extra cost.
``normal`` and ``uniform`` (float32) are ``jax.random``'s transform of :func:`bits`, so
under vmap over ``rbg`` keys only the words are drawn key by key and the transform
runs once over the batch. Library code draws all of its randomness through this module.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching

# Key implementations whose own vmap rule already gives each key its own stream.
_VMAP_SAFE = ("threefry2x32",)


def per_key(draw: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """``draw(key)`` made vmap-faithful: ``vmap(f)(keys)[i] == f(keys[i])`` for any key impl."""

    @custom_batching.custom_vmap
    def f(key):
        return draw(key)

    @f.def_vmap
    def _rule(axis_size, in_batched, key):
        if not in_batched[0]:
            return f(key), False
        if str(jax.random.key_impl(key)) in _VMAP_SAFE:
            return jax.vmap(draw)(key), True
        return jax.lax.map(f, key), True

    return f


def bits(key: jax.Array, shape: Sequence[int]) -> jax.Array:
    """Random uint32 words: ``jax.random.bits(key, shape, jnp.uint32)``, vmap-faithful."""
    return per_key(lambda k: jax.random.bits(k, tuple(shape), jnp.uint32))(key)


def _unit_floats(words: jax.Array) -> jax.Array:
    """float32 in [0, 1) from uint32 words, as ``jax.random.uniform`` makes them: the top 23 bits as
    the mantissa of a number in [1, 2), minus 1."""
    mantissa = jax.lax.shift_right_logical(words, jnp.uint32(32 - 23)) | jnp.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - jnp.float32(1.0)


def _uniform_from(words: jax.Array, low, high) -> jax.Array:
    low, high = jnp.float32(low), jnp.float32(high)
    return jax.lax.max(low, _unit_floats(words) * (high - low) + low)


_NORMAL_LOW = np.nextafter(np.float32(-1.0), np.float32(0.0))  # jax.random.normal's open interval (-1, 1)


def normal(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    r"""Standard normal draws: ``jax.random.normal(key, shape, dtype)``, vmap-faithful.

    In float32, \sqrt 2 \operatorname{erf}^{-1}(u) of u uniform on (-1, 1) made from :func:`bits`
    exactly as ``jax.random.normal`` makes them (the same values, bit for bit, tested): under vmap
    over ``rbg`` keys only the words are drawn key by key (:func:`per_key`'s ``lax.map``), and the
    transform runs once over the whole batch, vectorized (the IWAE's K = 1000 latents per image
    draw 1.6x faster than with the whole draw inside the loop)."""
    if jnp.dtype(dtype) != jnp.float32:
        return per_key(lambda k: jax.random.normal(k, tuple(shape), dtype))(key)
    u = _uniform_from(bits(key, shape), _NORMAL_LOW, 1.0)
    return jnp.float32(np.sqrt(2.0)) * jax.lax.erf_inv(u)


def uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """U[0, 1) draws: ``jax.random.uniform(key, shape, dtype)``, vmap-faithful (float32: from
    :func:`bits`, the transform outside any per-key loop, as :func:`normal`)."""
    if jnp.dtype(dtype) != jnp.float32:
        return per_key(lambda k: jax.random.uniform(k, tuple(shape), dtype))(key)
    return _uniform_from(bits(key, shape), 0.0, 1.0)


def bernoulli(key: jax.Array, p: jax.Array) -> jax.Array:
    """1[u < p], u ~ U[0, 1) of ``p``'s shape: the same draws as ``jax.random.bernoulli(key, p)``."""
    p = jnp.asarray(p)
    return uniform(key, p.shape, p.dtype if jnp.issubdtype(p.dtype, jnp.floating) else jnp.float32) < p


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A random permutation of ``range(n)``: ``jax.random.permutation(key, n)``, vmap-faithful."""
    return per_key(lambda k: jax.random.permutation(k, n))(key)


def run_keys(seed: int, impl: str, names: Sequence[str]) -> dict:
    """A run's keys from its seed, the one way every family makes them: ``run`` = key(seed) (the
    epochs' shuffles), and ``names`` (e.g. ``init``, ``state``, ``eval``, ``draw``) =
    ``split(run, len(names))`` in that order. A sweep's model with seed s gets exactly the keys of
    the single run with ``--seed s``."""
    run_key = jax.random.key(seed, impl=impl)
    return dict(zip(names, jax.random.split(run_key, len(names))), run=run_key)
