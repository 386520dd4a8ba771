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


def torch_conv_init(transposed: bool = False):
    """PyTorch's default for an HWIO conv kernel, kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)):
    fan_in = k_h k_w c_in for ``nn.Conv2d``; k_h k_w c_out for ``nn.ConvTranspose2d`` (PyTorch
    reads fan_in off the weight's dim 1, which for a transposed convolution is c_out).
    The bias is U(+-1/sqrt(fan_in)) with the same fan_in (:func:`torch_uniform`)."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform",
                                            in_axis=-1 if transposed else -2, out_axis=-2 if transposed else -1)


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Spatial size after PyTorch's ``Conv2d``: floor((size + 2 padding - kernel_size) / stride) + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


def transposed_output_padding(size: int, target: int, kernel_size: int, padding: int, stride: int = 2) -> int:
    """The ``output_padding`` with which ``ConvTranspose2d`` maps ``size`` to ``target``, i.e. undoes
    the size change of the ``Conv2d`` with the same kernel, stride and padding that mapped target to
    size: target - [(size - 1) stride - 2 padding + kernel_size], which must be in [0, stride)."""
    extra = target - ((size - 1) * stride - 2 * padding + kernel_size)
    if not 0 <= extra < stride:
        raise ValueError(f"no output_padding maps {size} to {target} (kernel {kernel_size}, stride {stride}, "
                         f"padding {padding}): it would be {extra}")
    return extra


def _pad_or_crop(x: jax.Array, before: tuple[int, int], length: tuple[int, int]) -> jax.Array:
    """x (N, H, W, C) with ``before`` zero rows/columns put in front, then padded with zeros or
    cropped at the end to ``length`` (rows, columns)."""
    (top, left), (rows, cols) = before, length
    x = jnp.pad(x, ((0, 0), (top, max(0, rows - top - x.shape[1])), (left, max(0, cols - left - x.shape[2])), (0, 0)))
    return x[:, :rows, :cols]


class Conv2d(nn.Module):
    r"""PyTorch's ``Conv2d(c_in, features, kernel_size, stride, padding)`` (stride 1 or 2) in NHWC,
    with PyTorch's default initialization and :func:`conv2d`'s loop-friendly gradient. Stride 2
    is :class:`DownConv`'s space-to-depth form for any kernel size: the kernel, zero-padded to an
    even size 2t, is split into 2x2 blocks, and

        y[i, j] = \sum_{k, l < 2t} x_{pad}[2i + k, 2j + l] W[k, l]
                = \sum_{u, v < t} s[i + u, j + v] \cdot W[2u : 2u + 2, 2v : 2v + 2],

    s[m, n] holding the 2x2 block x_pad[2m : 2m + 2, 2n : 2n + 2]. Any input size (odd ones too):
    the output is PyTorch's, floor((H + 2 padding - kernel_size) / stride) + 1 rows.
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    kernel_init: Callable | None = None  # None: PyTorch's default (torch_conv_init())

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        k, p, f = self.kernel_size, self.padding, self.features
        kernel = self.param("kernel", self.kernel_init or torch_conv_init(), (k, k, c, f))
        if self.stride == 1:
            y = conv2d(x, kernel, ((p, p), (p, p)))
        elif self.stride == 2:
            t = (k + 1) // 2
            ho, wo = conv_output_size(h, k, 2, p), conv_output_size(w, k, 2, p)
            xp = _pad_or_crop(x, (p, p), (2 * (ho + t - 1), 2 * (wo + t - 1)))
            blocks = xp.reshape(n, ho + t - 1, 2, wo + t - 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
            k2 = jnp.pad(kernel, ((0, 2 * t - k), (0, 2 * t - k), (0, 0), (0, 0)))
            k2 = k2.reshape(t, 2, t, 2, c, f).transpose(0, 2, 1, 3, 4, 5)  # (u, v, p, q, c, f)
            y = conv2d(blocks.reshape(n, ho + t - 1, wo + t - 1, 4 * c), k2.reshape(t, t, 4 * c, f), ((0, 0), (0, 0)))
        else:
            raise ValueError(f"stride {self.stride}: only 1 and 2")
        if self.use_bias:
            y = y + self.param("bias", torch_uniform(k * k * c), (f,))
        return y


def _phase_taps(kernel_size: int, padding: int) -> tuple[int, list[list[int]]]:
    """For a stride-2 transposed convolution along one axis, y[2i + k - padding] += x[i] w[k]: output
    phase a (y[2m + a]) is \\sum_u x[m + u] w[a + padding - 2u]. Returns the first offset u_0 and,
    per phase, the tap index of w for u = u_0, u_0 + 1, ... (``kernel_size``, a zero tap, where
    a + padding - 2u is outside the kernel)."""
    offsets = [(a + padding - k) // 2 for a in (0, 1) for k in range(kernel_size) if (a + padding - k) % 2 == 0]
    lo, hi = min(offsets), max(offsets)
    taps = [[a + padding - 2 * u if 0 <= a + padding - 2 * u < kernel_size else kernel_size
             for u in range(lo, hi + 1)] for a in (0, 1)]
    return lo, taps


class ConvTranspose2d(nn.Module):
    r"""PyTorch's ``ConvTranspose2d(c_in, features, kernel_size, stride=2, padding, output_padding)``
    in NHWC, H -> 2 (H - 1) - 2 padding + kernel_size + output_padding, with PyTorch's default
    initialization. :class:`UpConv`'s form for any kernel size, padding and output padding: one
    stride-1 :func:`conv2d` to 4 ``features`` channels, one per output phase (a, b), and a
    depth-to-space shuffle,

        y[2m + a, 2n + b] = \sum_{u, v} x[m + u, n + v] W[a + padding - 2u, b + padding - 2v],

    (taps outside the kernel are zero; ``output_padding`` rows at the end are the ones the full
    transposed convolution has there, zero input rows contributing nothing). W is
    (kernel_size, kernel_size, c_in, features): PyTorch's weight (c_in, features, k, k)
    transposed by (2, 3, 0, 1), unflipped.
    """

    features: int
    kernel_size: int = 4
    padding: int = 1
    output_padding: int | tuple[int, int] = 0  # (rows, columns), or one for both
    use_bias: bool = True
    kernel_init: Callable | None = None  # None: PyTorch's default (torch_conv_init(transposed=True))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        k, p, f = self.kernel_size, self.padding, self.features
        extra = (self.output_padding,) * 2 if isinstance(self.output_padding, int) else tuple(self.output_padding)
        if not (0 <= p < k and all(e in (0, 1) for e in extra)):
            raise ValueError(f"padding {p} and output_padding {self.output_padding} need 0 <= padding < "
                             f"kernel_size and output_padding in {{0, 1}}")
        kernel = self.param("kernel", self.kernel_init or torch_conv_init(transposed=True), (k, k, c, f))
        ho, wo = (2 * (s - 1) - 2 * p + k + e for s, e in zip((h, w), extra))
        mh, mw = (ho + 1) // 2, (wo + 1) // 2  # rows and columns per phase
        lo, taps = _phase_taps(k, p)
        t = len(taps[0])
        xp = _pad_or_crop(x, (-lo, -lo), (mh + t - 1, mw + t - 1))
        padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # index k is a zero tap
        taps = jnp.array(taps)  # (2 phases, t offsets)
        kt = padded[taps[:, None, :, None], taps[None, :, None, :]]  # (a, b, u, v, c, f)
        kt = kt.transpose(2, 3, 4, 0, 1, 5).reshape(t, t, c, 4 * f)
        y = conv2d(xp, kt, ((0, 0), (0, 0)))
        y = y.reshape(n, mh, mw, 2, 2, f).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * mh, 2 * mw, f)[:, :ho, :wo]
        if self.use_bias:
            y = y + self.param("bias", torch_uniform(k * k * f), (f,))
        return y


def torch_batch_norm(name: str | None = None) -> nn.BatchNorm:
    """PyTorch's ``BatchNorm2d``/``BatchNorm1d`` defaults (momentum 0.1, i.e. Flax's 0.9; eps 1e-5;
    scale 1, shift 0); statistics in the ``batch_stats`` collection. Call it as
    ``norm(h, use_running_average=not train, mask=batch_norm_mask(mask, h, train))``."""
    return nn.BatchNorm(momentum=0.9, epsilon=1e-5, name=name)


def batch_norm_mask(mask: jax.Array | None, h: jax.Array, train: bool) -> jax.Array | None:
    """The per-example ``mask`` (B,) (1 real, 0 padding) broadcast against h (B, ...) as BatchNorm's
    ``mask``, so padded rows stay out of the batch statistics; None in eval mode or without one."""
    if mask is None or not train:
        return None
    return mask.reshape(-1, *([1] * (h.ndim - 1))) > 0
