"""Paths through a latent space, shared by every latent-variable model (VAEs, GANs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def slerp(z0: jax.Array, z1: jax.Array, t: jax.Array) -> jax.Array:
    r"""Spherical interpolation: \frac{\sin((1-t)\Omega)}{\sin\Omega} z_0 + \frac{\sin(t\Omega)}{\sin\Omega} z_1,
    \cos\Omega = \hat z_0 \cdot \hat z_1 (linear when the two are nearly parallel)."""
    cos = jnp.sum(z0 * z1) / (jnp.linalg.norm(z0) * jnp.linalg.norm(z1))
    omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    t = t[:, None]
    so = jnp.sin(omega)
    spherical = (jnp.sin((1 - t) * omega) * z0 + jnp.sin(t * omega) * z1) / jnp.where(so == 0, 1.0, so)
    return jnp.where(so < 1e-6, (1 - t) * z0 + t * z1, spherical)


def interpolate(z0: jax.Array, z1: jax.Array, steps: int, method: str = "linear") -> jax.Array:
    """``steps`` latent points from z0 to z1, ``linear`` or ``slerp``: shape (steps, D)."""
    t = jnp.linspace(0.0, 1.0, steps)
    if method == "slerp":
        return slerp(z0, z1, t)
    return (1 - t)[:, None] * z0 + t[:, None] * z1
