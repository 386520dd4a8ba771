"""Drawing from the diagonal Gaussians of the VAEs' encoders (the reparameterization trick)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax import prng


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array, num_samples: int | None = None) -> jax.Array:
    r"""z = \mu + \sigma \epsilon, \epsilon \sim N(0, I); with ``num_samples`` a leading axis of K draws."""
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    eps = prng.normal(key, shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_var) * eps
