"""The small CNN behind the sample-quality evaluator: MNIST digit -> class logits.

Two 3x3 convolutions (32 and 64 channels), each followed by ReLU and 2x2 max
pooling, then a 128-unit ReLU layer, whose activations are the **features**
that FID, precision/recall and the memorization check compare, and a linear
layer to the 10 class logits.

The convolutions are :class:`Conv3x3`: the same function and parameters as
``nn.Conv(c, (3, 3), padding="SAME")``, with the hand-written gradient of
:func:`genjax.models.layers.conv2d`, which stays fast inside ``make_epoch``'s
``lax.scan`` (jax-ml/jax#12868).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from genjax.models.layers import conv2d

FEATURES = 128


class Conv3x3(nn.Module):
    """``nn.Conv(features, (3, 3), padding="SAME")`` with a loop-friendly gradient
    (:func:`genjax.models.layers.conv2d`)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv2d(x, kernel, ((1, 1), (1, 1))) + bias


class DigitCNN(nn.Module):
    """x (N, 28, 28, 1) in [0, 1] -> (logits (N, 10), features (N, 128))."""

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        for channels in (32, 64):
            x = nn.max_pool(nn.relu(Conv3x3(channels)(x)), (2, 2), strides=(2, 2))
        features = nn.relu(nn.Dense(FEATURES)(x.reshape(x.shape[0], -1)))
        return nn.Dense(10)(features), features
