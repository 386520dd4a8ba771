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
threefry). Unbatched, it is the plain ``jax.random`` call, at no extra cost.
Library code draws all of its randomness through this module.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
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


def normal(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """Standard normal draws: ``jax.random.normal(key, shape, dtype)``, vmap-faithful."""
    return per_key(lambda k: jax.random.normal(k, tuple(shape), dtype))(key)


def uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """U[0, 1) draws: ``jax.random.uniform(key, shape, dtype)``, vmap-faithful."""
    return per_key(lambda k: jax.random.uniform(k, tuple(shape), dtype))(key)


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
