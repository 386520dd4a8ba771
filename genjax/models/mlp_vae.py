"""The MLP VAE of seeds 000, 002 and 003, as small Linen modules.

The encoder maps a flattened image to the mean and log-variance of
q(z|x) = N(mu, diag exp(log_var)); the decoder maps z to one logit per pixel.
Likelihoods and losses live in :mod:`genjax.losses`, not here.

With ``num_classes`` > 0 it is a conditional VAE (Sohn et al. 2015; seed 003's
exercise 3): a one-hot label ``cond`` is concatenated to the encoder's input
(q(z|x, y)) and to the decoder's (p(x|z, y)); the prior stays N(0, I).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.losses import reparameterize
from genjax.models.layers import ACTIVATIONS, dense


def _with_condition(h: jax.Array, cond: jax.Array | None) -> jax.Array:
    """[h, cond] on the last axis (``cond`` broadcast over h's leading sample axes); h when None."""
    if cond is None:
        return h
    return jnp.concatenate([h, jnp.broadcast_to(cond, (*h.shape[:-1], cond.shape[-1])).astype(h.dtype)], axis=-1)


class MLPEncoder(nn.Module):
    """x (..., H, W, C) -> (mean, log_var), each (..., latent_dim)."""

    hidden: Sequence[int]
    latent_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        act = ACTIVATIONS[self.activation]
        h = _with_condition(x.reshape(*x.shape[:-3], -1), cond)
        for i, width in enumerate(self.hidden):
            h = act(dense(width, h.shape[-1], f"hidden_{i}")(h))
        # The two heads (mean, log-variance) as one matmul, split afterwards.
        stats = dense(2 * self.latent_dim, h.shape[-1], "heads")(h)
        mean, log_var = jnp.split(stats, 2, axis=-1)
        return mean, log_var


class MLPDecoder(nn.Module):
    """z (..., latent_dim) -> logits (..., H * W * C), one per pixel."""

    hidden: Sequence[int]
    num_pixels: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, z: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        h = _with_condition(z, cond)
        for i, width in enumerate(self.hidden):
            h = act(dense(width, h.shape[-1], f"hidden_{i}")(h))
        return dense(self.num_pixels, h.shape[-1], "logits")(h)


class VAE(nn.Module):
    """Encoder and decoder with mirrored hidden widths.

    ``__call__`` is the training forward pass: encode, draw one z by the
    reparameterization trick, decode. ``encode``/``decode`` are for evaluation.
    """

    hidden: Sequence[int]
    latent_dim: int
    num_pixels: int = 784
    activation: str = "relu"
    num_classes: int = 0  # > 0: conditional on a one-hot label (``cond``, shape (..., num_classes))

    def setup(self):
        self.encoder = MLPEncoder(self.hidden, self.latent_dim, self.activation)
        self.decoder = MLPDecoder(tuple(reversed(self.hidden)), self.num_pixels, self.activation)

    def __call__(self, x: jax.Array, key: jax.Array, cond: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, log_var = self.encoder(x, cond)
        return self.decoder(reparameterize(key, mean, log_var), cond), mean, log_var

    def encode(self, x: jax.Array, cond: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x, cond)

    def decode(self, z: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        return self.decoder(z, cond)


def from_config(config, image_shape: tuple[int, int, int], num_classes: int = 0) -> VAE:
    """The MLP VAE a preset describes (``hidden``, ``latent_dim``, ``activation``) for images of ``image_shape``."""
    num_pixels = 1
    for n in image_shape:
        num_pixels *= int(n)
    return VAE(tuple(config.hidden), config.latent_dim, num_pixels, config.activation, num_classes)
