"""Convolutional VAEs: seed 003's ``ConvVAE`` and ``CelebAVAE``, seed 004's VAE, and a CIFAR-10 one.

One module, :class:`ConvVAE`: a :class:`~genjax.models.conv_ae.ConvEncoder` whose linear head
gives the mean and log-variance of q(z|x) = N(mu, diag exp(log_var)) (one matmul, split: the
seeds' two ``nn.Linear`` heads, identically initialized), and a
:class:`~genjax.models.conv_ae.ConvDecoder` from z to one logit per pixel and channel (the
seeds' ``torch.sigmoid`` is the likelihood's: ``output``). ``SEED_ARCHITECTURES`` holds the
seeds' settings:

- ``seed003``: ConvVAE, 1x28x28 -> Conv 32, 64, 128 (4x4, stride 2, padding 1), ReLU ->
  128x3x3 -> latent 128 -> Linear 128*3*3 -> ConvTranspose 64, 32, 1 (ReLU between).
  **Fixed**: as written the seed's decoder does not fit 28x28. Its convolutions take
  28 -> 14 -> 7 -> 3 (7 -> 3, not 4: floor((7 + 2 - 4) / 2) + 1), and its three
  ConvTranspose2d(4, 2, 1) double 3 -> 6 -> 12 -> 24, so a faithful PyTorch copy returns
  (B, 1, 24, 24) for a (B, 1, 28, 28) input (its comments claim 3 -> 7 -> 14 -> 28; no
  reconstruction loss against the input can be computed). Here the first transposed convolution has
  ``output_padding=1`` (3 -> 7), then 7 -> 14 -> 28: the sizes the seed's comments state.
- ``seed003_celeba``: CelebAVAE, 3x64x64 -> Conv 32, 64, 128, 256 each with BatchNorm, ReLU ->
  256x4x4 -> latent 256 -> Linear 256*4*4 -> ConvTranspose 128, 64, 32 (BatchNorm, ReLU), 3.
- ``seed004``: 1x28x28 -> Conv 32, 64 (3x3, stride 2, padding 1), ReLU -> 64x7x7 -> Linear 16,
  ReLU -> latent 2;  Linear 7*7*64, ReLU -> ConvTranspose 64, 32 (3x3, stride 2, padding 1,
  output_padding 1), ReLU -> 32x28x28 -> Conv 1 (3x3, padding 1).
- ``seed001_cifar``: seed 001's TODO ("define a convolutional VAE ... CIFAR10"), designed here:
  its ``Autoencoder``'s encoder (3x32x32 -> Conv 12, 24, 48, 96 (4x4, stride 2, padding 1),
  ReLU -> 96x2x2) with seed 003's Gaussian heads, latent 16 as in seed 001's MLP VAE, and the
  mirrored decoder (Linear 96*2*2 -> ConvTranspose 48, 24, 12, 3).

``cond`` (a one-hot label) is accepted for the VAE interface and ignored: these are
unconditional. ``mask`` (B,) keeps padded rows out of BatchNorm's batch statistics.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models.conv_ae import ConvDecoder, ConvEncoder, flatten_leading
from genjax.models.gaussian import reparameterize

SEED_ARCHITECTURES = {
    "seed003": dict(image_shape=(28, 28, 1), features=(32, 64, 128), latent_dim=128),
    "seed003_celeba": dict(image_shape=(64, 64, 3), features=(32, 64, 128, 256), latent_dim=256, batch_norm=True),
    "seed004": dict(image_shape=(28, 28, 1), features=(32, 64), latent_dim=2, kernel_size=3, hidden=(16,),
                    decoder_features=(64, 64, 32), decoder_dense_relu=True, out_conv=3),
    "seed001_cifar": dict(image_shape=(32, 32, 3), features=(12, 24, 48, 96), latent_dim=16),
}


class ConvVAE(nn.Module):
    """Stride-2 convolutional encoder, Gaussian q(z|x), mirrored transposed-convolution decoder.

    ``__call__`` is the training forward pass: encode, draw one z by the reparameterization
    trick, decode -> (logits (B, H, W, C), mean, log_var). ``encode`` (..., H, W, C) ->
    (mean, log_var), each (..., latent_dim); ``decode`` z (..., latent_dim) -> logits.
    ``train`` uses (and, with ``mutable=["batch_stats"]``, updates) BatchNorm's batch statistics.
    Defaults: seed 003's ``ConvVAE`` on 28x28 (fixed: see the module docstring).
    """

    image_shape: Sequence[int] = (28, 28, 1)
    features: Sequence[int] = (32, 64, 128)  # encoder convolutions' channels
    latent_dim: int = 128
    kernel_size: int = 4
    padding: int = 1
    batch_norm: bool = False  # BatchNorm before every ReLU after a convolution (seed 003's CelebA VAE)
    hidden: Sequence[int] = ()  # encoder dense ReLU layers before the heads (seed 004: (16,))
    decoder_features: Sequence[int] | None = None  # see ConvDecoder; None: ``features`` reversed
    decoder_dense_relu: bool = False
    out_conv: int = 0  # a final stride-1 convolution's kernel size (seed 004: 3); 0: none
    output = "sigmoid"

    def setup(self):
        self.encoder = ConvEncoder(self.features, self.kernel_size, self.padding, self.batch_norm, self.hidden,
                                   2 * self.latent_dim)
        features = tuple(reversed(self.features)) if self.decoder_features is None else self.decoder_features
        self.decoder = ConvDecoder(self.image_shape, features, self.kernel_size, self.padding, self.batch_norm,
                                   dense_relu=self.decoder_dense_relu, out_conv=self.out_conv)

    def __call__(self, x: jax.Array, key: jax.Array, cond: jax.Array | None = None, train: bool = False,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, log_var = self.encode(x, cond, train, mask)
        return self.decode(reparameterize(key, mean, log_var), cond, train, mask), mean, log_var

    def encode(self, x: jax.Array, cond: jax.Array | None = None, train: bool = False,
               mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        x, lead = flatten_leading(x, 3)
        mean, log_var = jnp.split(self.encoder(x, train, mask), 2, axis=-1)
        return mean.reshape(*lead, -1), log_var.reshape(*lead, -1)

    def decode(self, z: jax.Array, cond: jax.Array | None = None, train: bool = False,
               mask: jax.Array | None = None) -> jax.Array:
        z, lead = flatten_leading(z, 1)
        logits = self.decoder(z, train, mask)
        return logits.reshape(*lead, *logits.shape[1:])
