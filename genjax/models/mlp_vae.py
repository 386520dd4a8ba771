"""The MLP VAE of seeds 000, 002 and 003, as small Linen modules.

The encoder maps a flattened image to the mean and log-variance of
q(z|x) = N(mu, diag exp(log_var)); the decoder maps z to one logit per pixel.
Likelihoods and losses live in :mod:`genjax.objectives.losses`, not here.

With ``num_classes`` > 0 it is a conditional VAE (Sohn et al. 2015; seed 003's
exercise 3): a one-hot label ``cond`` is concatenated to the encoder's input
(q(z|x, y)) and to the decoder's (p(x|z, y)); the prior stays N(0, I).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models.gaussian import reparameterize
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
    """Encoder and decoder with mirrored hidden widths, for images of ``image_shape`` (H, W, C).

    ``__call__`` is the training forward pass: encode, draw one z by the
    reparameterization trick, decode -> (logits (..., H, W, C), mean, log_var).
    ``encode`` (..., H, W, C) -> (mean, log_var), each (..., latent_dim); ``decode`` z ->
    logits (..., H, W, C), one per pixel and channel. Seed 001's CIFAR-10 VAE is this module
    on (32, 32, 3): its ``view(B, -1)`` flattens in (c, h, w) order, here (h, w, c), the same
    model up to a permutation of the first and last weights. ``train`` and ``mask`` are
    accepted (the interface of the VAEs with BatchNorm) and unused.
    """

    hidden: Sequence[int] = (400,)
    latent_dim: int = 20
    image_shape: Sequence[int] = (28, 28, 1)
    activation: str = "relu"
    num_classes: int = 0  # > 0: conditional on a one-hot label (``cond``, shape (..., num_classes))
    output = "sigmoid"  # the seeds' decoder nonlinearity, here the likelihood's (genjax.objectives.vae.decoder_mean)

    def setup(self):
        self.encoder = MLPEncoder(self.hidden, self.latent_dim, self.activation)
        self.decoder = MLPDecoder(tuple(reversed(self.hidden)), math.prod(self.image_shape), self.activation)

    def __call__(self, x: jax.Array, key: jax.Array, cond: jax.Array | None = None, train: bool = False,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, log_var = self.encoder(x, cond)
        return self.decode(reparameterize(key, mean, log_var), cond), mean, log_var

    def encode(self, x: jax.Array, cond: jax.Array | None = None, train: bool = False,
               mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x, cond)

    def decode(self, z: jax.Array, cond: jax.Array | None = None, train: bool = False,
               mask: jax.Array | None = None) -> jax.Array:
        return self.decoder(z, cond).reshape(*z.shape[:-1], *self.image_shape)


def from_config(config, image_shape: tuple[int, int, int]) -> VAE:
    """The MLP VAE a :class:`genjax.presets.VAEConfig` describes (``hidden``, ``latent_dim``,
    ``activation``, ``num_classes``) for images of ``image_shape``."""
    return VAE(tuple(config.hidden), config.latent_dim, tuple(int(n) for n in image_shape), config.activation,
               config.num_classes)
