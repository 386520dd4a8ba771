"""Seed 003's deterministic MLP ``Autoencoder``: x (784) -> Linear 400, ReLU -> Linear 20 = z;
z -> Linear 400, ReLU -> Linear 784 -> sigmoid (the logits are returned; ``output``)."""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax

from genjax.models.layers import ACTIVATIONS, dense
from genjax.models.mlp_vae import MLPDecoder


class MLPCodeEncoder(nn.Module):
    """x (B, H, W, C) -> z (B, latent_dim): dense layers with ``activation``, then a linear one."""

    hidden: Sequence[int]
    latent_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden):
            h = ACTIVATIONS[self.activation](dense(width, h.shape[-1], f"hidden_{i}")(h))
        return dense(self.latent_dim, h.shape[-1], "code")(h)


class MLPAutoencoder(nn.Module):
    """``encode`` (..., H, W, C) -> z (..., latent_dim); ``decode`` z -> logits (..., H, W, C);
    the decoder's hidden widths are the encoder's reversed."""

    image_shape: Sequence[int] = (28, 28, 1)
    hidden: Sequence[int] = (400,)
    latent_dim: int = 20
    activation: str = "relu"
    output = "sigmoid"

    def setup(self):
        self.encoder = MLPCodeEncoder(self.hidden, self.latent_dim, self.activation)
        self.decoder = MLPDecoder(tuple(reversed(self.hidden)), math.prod(self.image_shape), self.activation)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.decode(self.encode(x, train), train)

    def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
        lead = x.shape[:-3]
        return self.encoder(x.reshape(-1, *x.shape[-3:])).reshape(*lead, self.latent_dim)

    def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
        return self.decoder(z).reshape(*z.shape[:-1], *self.image_shape)
