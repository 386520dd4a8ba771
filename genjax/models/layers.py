"""Pieces every model module shares: the seeds' activations and PyTorch's default initialization.

PyTorch's ``nn.Linear``, ``nn.LSTM`` and ``nn.Embedding`` defaults are kept so
that a genjax model starts where the notebook's model starts: weights and
biases of a linear layer U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""

from __future__ import annotations

import functools
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


def _conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, kernel: jax.Array, padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    r"""A stride-1 convolution, NHWC x HWIO, zero ``padding`` ((top, bottom), (left, right)):

        y[n, h, w, f] = \sum_{i, j, c} x_{pad}[n, h + i, w + j, c] K[i, j, c, f],

    with a hand-written gradient that stays fast inside ``lax.scan`` (``make_epoch``): there
    XLA:CPU runs the convolutions autodiff derives 10-100x slower than outside a loop
    (jax-ml/jax#12868). The kernel's gradient is one matmul over the k x k patches of x_pad
    (im2col), dK[i, j, c, f] = \sum_{n,h,w} x_pad[n, h + i, w + j, c] dy[n, h, w, f]; the
    input's is the ordinary convolution of dy with K flipped in space, channels swapped."""
    return _conv(x, kernel, padding)


def _conv2d_fwd(x, kernel, padding):
    return _conv(x, kernel, padding), (x, kernel)


def _conv2d_bwd(padding, saved, dy):
    x, kernel = saved
    kh, kw, c, f = kernel.shape
    (top, bottom), (left, right) = padding
    xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    ho, wo = dy.shape[1:3]
    patches = jnp.concatenate([xp[:, i : i + ho, j : j + wo] for i in range(kh) for j in range(kw)], axis=-1)
    dkernel = jnp.einsum("nhwp,nhwf->pf", patches, dy).reshape(kh, kw, c, f)
    dx = _conv(dy, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2),
               ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right)))
    return dx, dkernel


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


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
    is some 15x slower than this one's (and :func:`conv2d` keeps it fast inside a scan).
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
        y = conv2d(x, k3, ((1, 1), (1, 1)))
        y = y.reshape(n, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, -1)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y



class DownConv(nn.Module):
    r"""The 4x4, stride-2, padding-1 convolution (/2 downsampling; PyTorch's
    ``Conv2d(c_in, c_out, 4, 2, 1)``), computed as a space-to-depth shuffle of the padded
    input and one 2x2 stride-1 :func:`conv2d` over its 4 c_in channels:

        y[i, j] = \sum_{k, l < 4} x_{pad}[2i + k, 2j + l] W[k, l]
                = \sum_{u, v < 2} s[i + u, j + v] \cdot W[2u : 2u + 2, 2v : 2v + 2],

    s[m, n] holding the 2x2 block x_pad[2m : 2m + 2, 2n : 2n + 2]. Same function and
    parameters (W: (4, 4, c_in, c_out), N(0, 0.02) by default) as the strided convolution,
    with :func:`conv2d`'s gradient, fast inside a scan. Even input sizes only.
    """

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.normal(0.02)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (4, 4, c, self.features))
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        blocks = xp.reshape(n, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
        k2 = kernel.reshape(2, 2, 2, 2, c, self.features).transpose(0, 2, 1, 3, 4, 5)  # (u, v, p, q, c, f)
        y = conv2d(blocks.reshape(n, h // 2 + 1, w // 2 + 1, 4 * c), k2.reshape(2, 2, 4 * c, self.features),
                   ((0, 0), (0, 0)))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y
