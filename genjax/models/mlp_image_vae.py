"""The MLP VAE of :mod:`genjax.models.mlp_vae` with image-shaped logits: seed 001's CIFAR-10 ``VAE``.

Seed 001: x (3*32*32 = 3072) -> Linear 128, ReLU -> Linear 2*16, split into mean and
log-variance (its ``view(-1, 2, 16)``) -> z (16) -> Linear 128, ReLU -> Linear 3072 -> sigmoid
(the logits are returned; ``output``). Pixels are flattened in (h, w, c) order, the seed's
``view(B, -1)`` in (c, h, w): the same model up to a permutation of the first and last weights.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax

from genjax.losses import reparameterize
from genjax.models.mlp_vae import MLPDecoder, MLPEncoder


class MLPImageVAE(nn.Module):
    """``__call__`` (x (B, H, W, C), key) -> (logits (B, H, W, C), mean, log_var); ``encode``
    (..., H, W, C) -> (mean, log_var) (..., latent_dim); ``decode`` z -> logits (..., H, W, C).
    With ``num_classes`` > 0 the one-hot ``cond`` joins the encoder's and decoder's inputs
    (as in :class:`genjax.models.mlp_vae.VAE`); ``train`` and ``mask`` are accepted and unused."""

    image_shape: Sequence[int] = (32, 32, 3)
    hidden: Sequence[int] = (128,)
    latent_dim: int = 16
    activation: str = "relu"
    num_classes: int = 0
    output = "sigmoid"

    def setup(self):
        self.encoder = MLPEncoder(self.hidden, self.latent_dim, self.activation)
        self.decoder = MLPDecoder(tuple(reversed(self.hidden)), math.prod(self.image_shape), self.activation)

    def __call__(self, x: jax.Array, key: jax.Array, cond: jax.Array | None = None, train: bool = False,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, log_var = self.encode(x, cond)
        return self.decode(reparameterize(key, mean, log_var), cond), mean, log_var

    def encode(self, x: jax.Array, cond: jax.Array | None = None, train: bool = False,
               mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x, cond)

    def decode(self, z: jax.Array, cond: jax.Array | None = None, train: bool = False,
               mask: jax.Array | None = None) -> jax.Array:
        return self.decoder(z, cond).reshape(*z.shape[:-1], *self.image_shape)
