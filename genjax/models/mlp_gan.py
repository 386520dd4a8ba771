"""Seed 000's GAN: an MLP generator and discriminator (PyTorch's default initialization).

G: z (20) -> 400 GELU -> 784 sigmoid, an image in [0, 1]. D: 784 -> 400 GELU -> 1,
returning the **logit** of D(x): the seed's ``Sigmoid`` + ``BCELoss`` becomes the
stable BCE-from-logits form in :mod:`genjax.objectives.losses`.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from genjax.models.layers import ACTIVATIONS, dense


class MLPGenerator(nn.Module):
    """z (B, latent) -> images (B, H, W, C) in [0, 1]. ``train``/``mask`` are unused (no BatchNorm)."""

    hidden: int = 400
    image_shape: tuple[int, int, int] = (28, 28, 1)
    activation: str = "gelu"

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        h = ACTIVATIONS[self.activation](dense(self.hidden, z.shape[-1], "hidden")(z))
        pixels = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        return nn.sigmoid(dense(pixels, self.hidden, "out")(h)).reshape(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    """images (B, H, W, C) -> logits (B,) of D(x) = p(real | x); ``mask`` is unused (no batch
    statistics), accepted as every discriminator's is."""

    hidden: int = 400
    activation: str = "gelu"

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        h = ACTIVATIONS[self.activation](dense(self.hidden, x.shape[-1], "hidden")(x))
        return dense(1, self.hidden, "out")(h)[:, 0]
