"""Convolutional encoders and decoders, and the seeds' deterministic convolutional autoencoders.

:class:`ConvEncoder`: stride-2 convolutions, each followed by ReLU (BatchNorm before it
when asked), then flatten, dense ReLU layers and an optional linear head.
:class:`ConvDecoder`: the mirror image, a linear layer to the encoder's last feature map,
stride-2 transposed convolutions back up through the encoder's feature-map sizes (ReLU,
optionally BatchNorm, between them), and an optional stride-1 output convolution.

Each transposed convolution's ``output_padding`` is chosen so that it maps a feature map
back to the size the matching convolution took it from (28 -> 14 -> 7 -> 3 comes back as
3 -> 7 -> 14 -> 28), so every model here fits every image size (28x28, 32x32, 64x64, ...).
Where the seeds give sizes that fit, this is their padding (seed 004's output_padding=1).

Images are NHWC; flattening a feature map reads it in (h, w, c) order, PyTorch's
``view(B, -1)`` in (c, h, w): the same model up to a permutation of the dense weights.
Layers are initialized as PyTorch's (:mod:`genjax.models.layers`). The decoders return
logits: the seeds' ``torch.sigmoid`` is applied by the likelihood, not here (``output``).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from genjax.models.layers import Conv2d, ConvTranspose2d, conv_output_size, dense, transposed_output_padding
from genjax.models.norms import torch_batch_norm


def feature_map_sizes(image_shape: Sequence[int], depth: int, kernel_size: int, padding: int) -> list[tuple[int, int]]:
    """(H, W) of the image and after each of ``depth`` stride-2 convolutions: [(28, 28), (14, 14), (7, 7), (3, 3)]."""
    sizes = [tuple(image_shape[:2])]
    for _ in range(depth):
        sizes.append(tuple(conv_output_size(s, kernel_size, 2, padding) for s in sizes[-1]))
        if min(sizes[-1]) < 1:
            raise ValueError(f"{depth} stride-2 convolutions do not fit an image of {tuple(image_shape[:2])}")
    return sizes


def _norm_relu(h: jax.Array, batch_norm: bool, name: str, train: bool, mask: jax.Array | None) -> jax.Array:
    if batch_norm:
        h = torch_batch_norm(name)(h, use_running_average=not train, mask=mask)
    return nn.relu(h)


class ConvEncoder(nn.Module):
    """x (B, H, W, C) -> (B, outputs), or the flattened last feature map when ``outputs`` is 0."""

    features: Sequence[int]  # channels of each stride-2 convolution's output
    kernel_size: int = 4
    padding: int = 1
    batch_norm: bool = False
    hidden: Sequence[int] = ()  # dense ReLU layers after flattening
    outputs: int = 0  # a linear head's width; 0: none

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        h = x
        for i, f in enumerate(self.features):
            h = Conv2d(f, self.kernel_size, 2, self.padding, name=f"down_{i}")(h)
            h = _norm_relu(h, self.batch_norm, f"down_norm_{i}", train, mask)
        h = h.reshape(h.shape[0], -1)
        for i, width in enumerate(self.hidden):
            h = nn.relu(dense(width, h.shape[-1], f"hidden_{i}")(h))
        return dense(self.outputs, h.shape[-1], "head")(h) if self.outputs else h


class ConvDecoder(nn.Module):
    """z (B, D) -> logits (B, H, W, C) of ``image_shape`` (H, W, C).

    ``features`` are the channels going up: the bottleneck feature map's (the encoder's
    last), then each transposed convolution's output but the last, whose output is C; with
    ``out_conv`` every transposed convolution outputs one of ``features`` and a stride-1
    ``out_conv`` x ``out_conv`` convolution (padding ``out_conv // 2``) maps them to C.
    """

    image_shape: Sequence[int]
    features: Sequence[int]
    kernel_size: int = 4
    padding: int = 1
    batch_norm: bool = False
    dense_input: bool = True  # False: z is the bottleneck map itself, flattened (seed 001's AE)
    dense_relu: bool = False  # ReLU after the input layer (seed 004), or none (seed 003)
    out_conv: int = 0

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        channels = [*self.features[1:], *([] if self.out_conv else [self.image_shape[-1]])]
        sizes = feature_map_sizes(self.image_shape, len(channels), self.kernel_size, self.padding)
        (bh, bw), depth = sizes[-1], self.features[0]
        h = z
        if self.dense_input:
            h = dense(bh * bw * depth, z.shape[-1], "dense")(z)
            h = nn.relu(h) if self.dense_relu else h
        h = h.reshape(z.shape[0], bh, bw, depth)
        for i, f in enumerate(channels):
            extra = tuple(transposed_output_padding(s, t, self.kernel_size, self.padding)
                          for s, t in zip(h.shape[1:3], sizes[-2 - i]))
            h = ConvTranspose2d(f, self.kernel_size, self.padding, extra, name=f"up_{i}")(h)
            if i < len(channels) - 1 or self.out_conv:
                h = _norm_relu(h, self.batch_norm, f"up_norm_{i}", train, mask)
        if self.out_conv:
            h = Conv2d(self.image_shape[-1], self.out_conv, 1, self.out_conv // 2, name="out")(h)
        return h


def flatten_leading(x: jax.Array, ndim: int) -> tuple[jax.Array, tuple[int, ...]]:
    """x (..., *event) with ``ndim`` event axes as (B, *event), and the leading shape to restore."""
    lead = x.shape[:x.ndim - ndim]
    return x.reshape(-1, *x.shape[x.ndim - ndim:]), lead


class _CodeAutoencoder:
    """``encode``/``decode``/``__call__`` over any leading axes, for a module whose ``setup``
    defines ``self.encoder`` (B, H, W, C) -> (B, ...) and ``self.decoder`` (B, latent) -> logits."""

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.decode(self.encode(x, train), train)

    def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
        x, lead = flatten_leading(x, 3)
        return self.encoder(x, train).reshape(*lead, -1)

    def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
        z, lead = flatten_leading(z, 1)
        logits = self.decoder(z, train)
        return logits.reshape(*lead, *logits.shape[1:])


class ConvAutoencoder(_CodeAutoencoder, nn.Module):
    """Seed 004's ``ConvAutoencoder`` with its 2-D latent (the default here):

        x 1x28x28 -> Conv 16 (3x3, stride 2, padding 1), ReLU -> 16x14x14 -> Conv 32, ReLU -> 32x7x7
        -> Linear latent_dim = z;  z -> Linear 32*7*7, ReLU -> ConvTranspose 16 (3x3, stride 2,
        padding 1, output_padding 1), ReLU -> 16x14x14 -> ConvTranspose C -> Cx28x28 -> sigmoid.

    ``encode`` (..., H, W, C) -> z (..., latent_dim); ``decode`` z -> logits (..., H, W, C).
    """

    image_shape: Sequence[int] = (28, 28, 1)
    features: Sequence[int] = (16, 32)
    latent_dim: int = 2
    kernel_size: int = 3
    padding: int = 1
    output = "sigmoid"

    def setup(self):
        self.encoder = ConvEncoder(self.features, self.kernel_size, self.padding, outputs=self.latent_dim)
        self.decoder = ConvDecoder(self.image_shape, tuple(reversed(self.features)), self.kernel_size, self.padding,
                                   dense_relu=True)


class FullyConvAutoencoder(_CodeAutoencoder, nn.Module):
    """Seed 001's CIFAR-10 ``Autoencoder``, no dense layer: the code is the last feature map.

        x 3x32x32 -> Conv 12 (4x4, stride 2, padding 1), ReLU -> 12x16x16 -> Conv 24, ReLU -> 24x8x8
        -> Conv 48, ReLU -> 48x4x4 -> Conv 96, ReLU -> 96x2x2 = z;  z -> ConvTranspose 48 (4x4,
        stride 2, padding 1), ReLU -> 48x4x4 -> 24x8x8 -> 12x16x16 -> ConvTranspose C -> Cx32x32 -> sigmoid.

    ``encode`` returns z flattened, (..., latent_dim) with latent_dim = 2*2*96 = 384 (the map
    (2, 2, 96) is ``code_shape``, read in NHWC order); ``decode`` takes it back.
    """

    image_shape: Sequence[int] = (32, 32, 3)
    features: Sequence[int] = (12, 24, 48, 96)
    kernel_size: int = 4
    padding: int = 1
    output = "sigmoid"

    @property
    def code_shape(self) -> tuple[int, int, int]:
        h, w = feature_map_sizes(self.image_shape, len(self.features), self.kernel_size, self.padding)[-1]
        return h, w, self.features[-1]

    @property
    def latent_dim(self) -> int:
        h, w, c = self.code_shape
        return h * w * c

    def setup(self):
        self.encoder = ConvEncoder(self.features, self.kernel_size, self.padding)
        self.decoder = ConvDecoder(self.image_shape, tuple(reversed(self.features)), self.kernel_size, self.padding,
                                   dense_input=False)
