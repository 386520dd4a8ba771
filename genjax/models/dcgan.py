"""A DCGAN (Radford et al. 2016) sized for 28x28 images.

G: z (100) -> Dense 7*7*128 -> BatchNorm, ReLU -> ConvTranspose 64 (4x4, stride 2, padding 1)
-> 14x14 -> BatchNorm, ReLU -> ConvTranspose C (4x4, stride 2, padding 1) -> 28x28 -> sigmoid
(the transposed convolutions as :class:`genjax.models.layers.UpConv`).
D: Conv 64 (4x4, stride 2, padding 1) -> 14x14, LeakyReLU 0.2 -> Conv 128 (4x4, stride 2,
padding 1) -> 7x7, norm, LeakyReLU 0.2 -> Dense 1 (the logit of D(x)) (the convolutions as
:class:`genjax.models.layers.DownConv`).

With ``hidden`` = 1024 in both (the preset), G and D are InfoGAN's MNIST networks (Chen et
al. 2016): G z -> 1024 -> 7x7x128 -> ..., D ... -> 7x7x128 -> 1024 -> 1, each hidden layer
normalized.

D's normalization ``norm``:
- ``"batch"`` (the preset, as the paper): BatchNorm over the batch D judges, with its batch
  statistics always (:class:`~genjax.models.norms.BatchStatsNorm`): D is only ever applied
  to batches (real and generated ones separately, as PyTorch's DCGAN loop does; 1,000-image
  chunks in evaluation), so it keeps no running averages and the train state carries none;
- ``"layer"``: a LayerNorm over each position's channels, (h - mean_c h) / sqrt(var_c h +
  1e-6) * gamma + beta, which judges each image on its own;
- ``"none"``: the plain D, a weaker one (the README's GAN table has all three).

As in the paper: BatchNorm in G (not on its output), none on D's input, weights
N(0, 0.02), BatchNorm scales N(1, 0.02); the layer in front of a BatchNorm has no
bias (BatchNorm's shift replaces it). BatchNorm's momentum is PyTorch's (0.1,
i.e. 0.9 in Flax's convention); ``mask`` keeps padded rows out of its statistics.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models.layers import DownConv, UpConv, dense_dot_general
from genjax.models.norms import BatchNorm, BatchStatsNorm

WEIGHT_INIT = nn.initializers.normal(0.02)
DISCRIMINATOR_NORMS = ("batch", "layer", "none")


def _dense(features: int, use_bias: bool = True) -> nn.Dense:
    """nn.Dense with the paper's N(0, 0.02) weights, its input gradient through
    :func:`~genjax.models.layers.matmul` (4.5x faster for D's 6272 -> 1024 layer on XLA:CPU)."""
    return nn.Dense(features, use_bias=use_bias, kernel_init=WEIGHT_INIT, dot_general=dense_dot_general)


def _scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class DCGenerator(nn.Module):
    """z (B, latent) -> images (B, 28, 28, C) in [0, 1]; ``train`` uses batch statistics.
    ``hidden`` > 0 puts a fully connected layer of that many units (BatchNorm, ReLU) before
    the 7x7 map, as InfoGAN's MNIST generator (z -> 1024 -> 7x7x128 -> ...)."""

    width: int = 64
    channels: int = 1
    hidden: int = 0

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        def norm(h):
            return nn.relu(BatchNorm(momentum=0.9, epsilon=1e-5, scale_init=_scale_init)(h, not train, mask))

        h = z
        if self.hidden:
            h = norm(_dense(self.hidden, use_bias=False)(h))
        h = _dense(7 * 7 * 2 * self.width, use_bias=False)(h)
        h = norm(h.reshape(z.shape[0], 7, 7, 2 * self.width))
        h = norm(UpConv(self.width, use_bias=False, kernel_init=WEIGHT_INIT)(h))
        h = UpConv(self.channels, kernel_init=WEIGHT_INIT)(h)
        return nn.sigmoid(h)


class DCDiscriminator(nn.Module):
    """images (B, 28, 28, C) -> logits (B,) of D(x) = p(real | x); ``norm``: one of
    :data:`DISCRIMINATOR_NORMS`; ``mask`` (B,): the real rows of a padded batch, the only
    ones in ``norm="batch"``'s statistics. ``hidden`` > 0 puts a fully connected layer of
    that many units (with ``norm``, LeakyReLU) before the logit, as InfoGAN's MNIST
    discriminator (... -> 7x7x128 -> 1024 -> 1)."""

    width: int = 64
    norm: str = "batch"
    hidden: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        if self.norm not in DISCRIMINATOR_NORMS:
            raise ValueError(f"norm must be one of {DISCRIMINATOR_NORMS}, not {self.norm!r}")

        def normalize(h):  # its shift replaces the bias of the layer in front
            if self.norm == "batch":
                return BatchStatsNorm(scale_init=_scale_init)(h, mask)
            return nn.LayerNorm()(h) if self.norm == "layer" else h

        h = nn.leaky_relu(DownConv(self.width, kernel_init=WEIGHT_INIT)(x), 0.2)
        h = DownConv(2 * self.width, use_bias=self.norm == "none", kernel_init=WEIGHT_INIT)(h)
        h = nn.leaky_relu(normalize(h), 0.2).reshape(h.shape[0], -1)
        if self.hidden:
            h = _dense(self.hidden, use_bias=self.norm == "none")(h)
            h = nn.leaky_relu(normalize(h), 0.2)
        return _dense(1)(h)[:, 0]
