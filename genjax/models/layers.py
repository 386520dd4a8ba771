"""Pieces every model module shares: the seeds' activations and PyTorch's default initialization.

PyTorch's ``nn.Linear``, ``nn.LSTM`` and ``nn.Embedding`` defaults are kept so
that a genjax model starts where the notebook's model starts: weights and
biases of a linear layer U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "relu": nn.relu,
    "leaky_relu": lambda x: nn.leaky_relu(x, 0.2),  # seed 002: nn.LeakyReLU(0.2)
    "gelu": lambda x: nn.gelu(x, approximate=False),  # seed 000: nn.GELU() (erf form)
    "tanh": jnp.tanh,
}


def torch_uniform(fan_in: int):
    """An initializer drawing U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for any shape (biases, LSTM weights)."""
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_linear_init(fan_in_axis: int = 0):
    """PyTorch's nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for kernels."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform", in_axis=fan_in_axis)


def dense(features: int, fan_in: int, name: str | None = None) -> nn.Dense:
    """nn.Dense initialized as PyTorch's nn.Linear (weights and biases U(+-1/sqrt(fan_in)))."""
    return nn.Dense(features, kernel_init=torch_linear_init(), bias_init=torch_uniform(fan_in), name=name)


# Along one axis, a 4-tap stride-2 transposed convolution with padding 1 (PyTorch's
# ConvTranspose2d(k=4, s=2, p=1)) writes y[2i + k - 1] += x[i] w[k], so output phase 0 (even y)
# is x[i-1] w[3] + x[i] w[1] and phase 1 (odd y) is x[i] w[2] + x[i+1] w[0]: a 3-tap convolution
# over x[i-1], x[i], x[i+1] with taps (w3, w1, 0) and (0, w2, w0).
_PHASE_TAPS = ((3, 1, None), (None, 2, 0))


class UpConv(nn.Module):
    r"""The 4x4, stride-2, padding-1 transposed convolution (x2 upsampling; PyTorch's
    ``ConvTranspose2d(c_in, c_out, 4, 2, 1)``), computed as one 3x3 convolution to 4 c_out
    channels (one per output phase) and a depth-to-space shuffle:

        y[2i + a, 2j + b] = \sum_{u, v \in \{-1, 0, 1\}} x[i + u, j + v] K_{ab}[u, v],

    with K_{ab} the taps of the 4x4 kernel W that phase (a, b) uses (see ``_PHASE_TAPS``).
    Same function and parameters (W: (4, 4, c_in, c_out), N(0, 0.02) by default) as the
    transposed convolution; on XLA's CPU backend the transposed form's kernel gradient
    is some 15x slower than this one's.
    """

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.normal(0.02)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (4, 4, c, self.features))
        padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # index 4 is a zero tap
        taps = jnp.array([[4 if t is None else t for t in phase] for phase in _PHASE_TAPS])  # (2 phases, 3 taps)
        # k3[u, v, :, a, b, :] = W[taps[a, u], taps[b, v]]
        k3 = padded[taps[:, None, :, None], taps[None, :, None, :]]  # (2, 2, 3, 3, c, f): a, b, u, v
        k3 = k3.transpose(2, 3, 4, 0, 1, 5).reshape(3, 3, c, 4 * self.features)
        y = jax.lax.conv_general_dilated(x, k3, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = y.reshape(n, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, -1)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y

