"""Pieces every model module shares: the seeds' activations, PyTorch's default initialization, and
the convolution and dense kernels, chosen per backend.

PyTorch's ``nn.Linear``, ``nn.LSTM`` and ``nn.Embedding`` defaults are kept so
that a genjax model starts where the notebook's model starts: weights and
biases of a linear layer U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

**Kernels.** One switch, :func:`kernel_path`, decides how :class:`Conv2d`, :class:`ConvTranspose2d`
(and so :class:`DownConv`, :class:`UpConv`), :func:`dense_dot_general` and the functions
:func:`conv2d`, :func:`conv_transpose2d`, :func:`matmul`, :func:`channel_sum` and :func:`add_bias`
(the layers' biases; BatchNorm's sums in :mod:`genjax.models.norms`) compute, from their ``kernels``
argument:

- ``"cpu"``: forms tuned for XLA:CPU. A stride-2 ``Conv2d`` is a stride-1 convolution over 2x2
  space-to-depth blocks; a transposed convolution is one matmul to all k^2 taps and an
  overlap-add; the gradients are written by hand (convolution kernels' as im2col matmuls,
  which stay fast inside ``lax.scan``; a dense layer's input gradient as dy W^T with W^T
  written out first; a sum over batch and positions per channel, such as a bias gradient, as
  a matrix-vector product, not a reduction that XLA:CPU would run as a slow reduce-window).
- ``"native"``: XLA's own operations and autodiff's gradients, what cuDNN and the TPU's
  convolution units are built for: ``lax.conv_general_dilated`` at the layer's stride (a
  transposed convolution as the 2x lhs-dilated convolution with the spatially flipped kernel,
  PyTorch's padding and ``output_padding``), ``lax.dot_general`` for a dense layer.
- ``"auto"`` (every default): the :func:`use_kernels` block's choice inside one, else ``"cpu"``
  where JAX places the computation on the CPU (the platform of ``jax.default_device`` when set,
  otherwise ``jax.default_backend()``) and ``"native"`` on any other platform (GPU, TPU).

Both paths compute the same function of the same parameters (names, shapes, HWIO layouts), so
a checkpoint trained on one backend is the same model on the other, up to float32 summation
order. The choice is made in Python when a function is traced; the default device and the
:func:`use_kernels` setting are part of ``jax.jit``'s cache key, so a jitted function retraces
when either changes. A computation sent to another platform only through its arguments'
placement (arrays committed to a device) gets the default platform's kernels: the same values,
another speed.
"""

from __future__ import annotations

import contextlib
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

KERNELS = ("auto", "cpu", "native")
_kernels_default = jax.make_user_context(default_value="auto")  # use_kernels' setting, in jit's cache key


def _platform() -> str:
    """The platform JAX places a computation on by default: ``jax.default_device``'s, else the default backend."""
    device = jax.config.jax_default_device
    return jax.default_backend() if device is None else getattr(device, "platform", device)


def _check_kernels(kernels: str) -> None:
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, not {kernels!r}")


def kernel_path(kernels: str = "auto") -> str:
    """The switch: ``"cpu"`` or ``"native"`` (see the module docstring). ``kernels`` itself when it
    names one; for ``"auto"``, the enclosing :func:`use_kernels` block's choice, else ``"cpu"`` on
    the CPU platform and ``"native"`` on any other. Called while tracing."""
    _check_kernels(kernels)
    if kernels == "auto":
        kernels = _kernels_default.value
    if kernels == "auto":
        kernels = "cpu" if _platform() == "cpu" else "native"
    return kernels


@contextlib.contextmanager
def use_kernels(kernels: str):
    """Within the block, every layer and kernel function left at ``kernels="auto"`` traces as
    ``kernels`` (``"auto"`` restores the backend's choice): e.g. ``with use_kernels("native"):``
    runs a whole model on XLA's convolutions on the CPU. A JAX user context (thread-local, in
    ``jax.jit``'s cache key), not a global variable."""
    _check_kernels(kernels)
    with _kernels_default(kernels):
        yield


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


def transposed(w: jax.Array) -> jax.Array:
    """w^T (2-D) as an array of its own: an optimization barrier keeps XLA from folding the
    transpose back into the product that reads it (see :func:`matmul`)."""
    return jax.lax.optimization_barrier(w.T)


def matmul(x: jax.Array, w: jax.Array, kernels: str = "auto") -> jax.Array:
    r"""y = x W for x (B, K), W (K, N). The native path (:func:`kernel_path`) is ``x @ w`` with
    autodiff's gradients; the CPU path takes the input gradient dx = dy (W^T) as a plain
    product with W^T written out first, not autodiff's ``dot_general`` that contracts dy with W's
    second axis. XLA:CPU's kernel for that contracted-on-the-right form runs 4.5x slower for the
    DCGAN discriminator's 6272 -> 1024 layer (45 ms against 10 ms per input gradient at batch 128,
    ``benchmarks/gan_speed``) and 5-25% slower at most MLP shapes; the transpose costs one pass over W.
    The weight gradient dW = x^T dy is autodiff's. Same values as ``x @ w`` up to summation order."""
    return x @ w if kernel_path(kernels) == "native" else _matmul_cpu(x, w)


@jax.custom_vjp
def _matmul_cpu(x: jax.Array, w: jax.Array) -> jax.Array:
    """:func:`matmul`'s CPU path: ``x @ w`` with the input gradient dy (W^T)."""
    return x @ w


def _matmul_fwd(x, w):
    return x @ w, (x, w)


def _matmul_bwd(saved, dy):
    x, w = saved
    return dy @ transposed(w), x.T @ dy


_matmul_cpu.defvjp(_matmul_fwd, _matmul_bwd)


def channel_sum(x: jax.Array, weight: jax.Array | None = None, kernels: str = "auto") -> jax.Array:
    r"""s[c] = \sum_{b, ...} w_b x[b, ..., c]: x (B, ..., C) summed over every axis but the last,
    row b weighted by ``weight`` (B,) (all ones without it). The native path (:func:`kernel_path`)
    is ``jnp.sum``; the CPU path the matrix-vector product w (M,) @ x (M, C), M = B x positions,
    which streams x once (``jnp.sum`` for C < 8, where the product is the slower). With the
    epoch's compiler options (no YNNPACK), XLA:CPU rewrites a large reduction that keeps the minor
    axis into a reduce-window over blocks of 32 (its tree-reduction pass) that strides through x
    and runs 4-5x slower: 5.2 against 1.3 ms for a (128, 28, 28, 32) array on 2 cores, up to
    14 ms per BatchNorm statistic inside the CelebA VAE's step. (YNNPACK's own reductions would
    avoid it, but they pull the convolution that feeds them into YNNPACK's convolution kernels,
    4x slower than XLA's here.) The gradient is x's broadcast of ds (times w) on either path. Same
    values up to summation order."""
    if kernel_path(kernels) == "native" or x.shape[-1] < 8:
        w = 1.0 if weight is None else weight.reshape(-1, *([1] * (x.ndim - 1)))
        return jnp.sum(w * x, tuple(range(x.ndim - 1)))
    rows = x.shape[0]
    w = jnp.ones((rows,), x.dtype) if weight is None else weight.astype(x.dtype)
    positions = math.prod(x.shape[1:-1])
    w = jnp.broadcast_to(w[:, None], (rows, positions)).reshape(-1)
    return _weighted_sum_cpu(x.reshape(-1, x.shape[-1]), w)


@jax.custom_vjp
def _weighted_sum_cpu(x: jax.Array, w: jax.Array) -> jax.Array:
    """w (M,) @ x (M, C), with the gradient a broadcast (autodiff's would be an outer-product dot)."""
    return w @ x


def _weighted_sum_fwd(x, w):
    return w @ x, (x, w)


def _weighted_sum_bwd(saved, ds):
    x, w = saved
    return w[:, None] * ds, x @ ds


_weighted_sum_cpu.defvjp(_weighted_sum_fwd, _weighted_sum_bwd)


def add_bias(y: jax.Array, bias: jax.Array, kernels: str = "auto") -> jax.Array:
    """y + bias over y's last axis, the bias's gradient :func:`channel_sum` of dy (on the CPU path
    a matrix-vector product, not autodiff's reduce over every other axis; see there)."""
    if kernel_path(kernels) == "native":
        return y + bias
    return _add_bias_cpu(y, bias)


@jax.custom_vjp
def _add_bias_cpu(y: jax.Array, bias: jax.Array) -> jax.Array:
    return y + bias


def _add_bias_fwd(y, bias):
    return y + bias, None


def _add_bias_bwd(_, dy):
    return dy, channel_sum(dy, kernels="cpu")


_add_bias_cpu.defvjp(_add_bias_fwd, _add_bias_bwd)


def dense_dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers, precision=None,
                      preferred_element_type=None, kernels: str = "auto") -> jax.Array:
    """``nn.Dense(..., dot_general=dense_dot_general)``: the layer's product (inputs of any rank,
    contracted on their last axis with the kernel's first), on the CPU path through :func:`matmul`'s
    CPU form, on the native path ``lax.dot_general`` as ``nn.Dense``'s own. A path forced:
    ``dot_general=functools.partial(dense_dot_general, kernels="native")``."""
    if dimension_numbers != (((lhs.ndim - 1,), (0,)), ((), ())) or rhs.ndim != 2:
        raise ValueError(f"dense_dot_general: a Dense layer's contraction, not {dimension_numbers}")
    if precision is not None or preferred_element_type is not None:
        raise ValueError("dense_dot_general: default precision and output type only")
    if kernel_path(kernels) == "native":
        return jax.lax.dot_general(lhs, rhs, dimension_numbers)
    y = _matmul_cpu(lhs.reshape(-1, lhs.shape[-1]), rhs)
    return y.reshape(*lhs.shape[:-1], rhs.shape[-1])


def _conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _native_conv(x: jax.Array, kernel: jax.Array, strides, padding, lhs_dilation=(1, 1)) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv2d(x: jax.Array, kernel: jax.Array, padding: tuple[tuple[int, int], tuple[int, int]],
           kernels: str = "auto") -> jax.Array:
    r"""A stride-1 convolution, NHWC x HWIO, zero ``padding`` ((top, bottom), (left, right)):

        y[n, h, w, f] = \sum_{i, j, c} x_{pad}[n, h + i, w + j, c] K[i, j, c, f].

    The native path (:func:`kernel_path`): ``lax.conv_general_dilated`` and autodiff's gradients.
    The CPU path: the same forward with a hand-written gradient that stays fast inside
    ``lax.scan`` (``make_epoch``): there XLA:CPU runs the convolutions autodiff derives 10-100x
    slower than outside a loop (jax-ml/jax#12868). The kernel's gradient, dK[i, j, c, f] =
    \sum_{n,h,w} x_pad[n, h + i, w + j, c] dy[n, h, w, f], is one matmul over k x k shifted
    copies (im2col) of x_pad or of dy (zero-padded by k - 1),
    dK[i, j] = \sum_{n,h',w'} x_pad[n, h', w']^T dy_pad[n, h' - i + k_h - 1, w' - j + k_w - 1],
    whichever copies are the smaller (H_out W_out c against H_pad W_pad f per image), so the
    larger operand is read once (for a layer to one channel, dy's are 13x faster than x's on 2
    cores; for the CelebA encoder's first layer, 12 -> 32 channels, x's saved 3% of the step).
    The input's gradient is the ordinary convolution of dy with K flipped in space, channels
    swapped."""
    if kernel_path(kernels) == "native":
        return _native_conv(x, kernel, (1, 1), padding)
    return _conv2d_cpu(x, kernel, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv2d_cpu(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
    """:func:`conv2d`'s CPU path: the stride-1 convolution with its hand-written gradient."""
    return _conv(x, kernel, padding)


def _conv2d_fwd(x, kernel, padding):
    return _conv(x, kernel, padding), (x, kernel)


def _conv2d_bwd(padding, saved, dy):
    x, kernel = saved
    kh, kw, c, f = kernel.shape
    (top, bottom), (left, right) = padding
    xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    (hp, wp), (ho, wo) = xp.shape[1:3], dy.shape[1:3]
    if ho * wo * c < hp * wp * f:  # x's patches (n, ho, wo, kh kw c) are the smaller
        patches = jnp.concatenate([xp[:, i : i + ho, j : j + wo] for i in range(kh) for j in range(kw)], axis=-1)
        dkernel = (patches.reshape(-1, kh * kw * c).T @ dy.reshape(-1, f)).reshape(kh, kw, c, f)
    else:  # dy's patches (n, hp, wp, kh kw f)
        dyp = jnp.pad(dy, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
        patches = jnp.concatenate([dyp[:, kh - 1 - i : kh - 1 - i + hp, kw - 1 - j : kw - 1 - j + wp]
                                   for i in range(kh) for j in range(kw)], axis=-1)
        dkernel = (xp.reshape(-1, c).T @ patches.reshape(-1, kh * kw * f)).reshape(c, kh, kw, f).transpose(1, 2, 0, 3)
    dx = _conv(dy, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2),
               ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right)))
    return dx, dkernel


_conv2d_cpu.defvjp(_conv2d_fwd, _conv2d_bwd)


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
    """x (N, H, W, ...) with ``before`` zero rows/columns put in front, then padded with zeros or
    cropped at the end to ``length`` (rows, columns)."""
    (top, left), (rows, cols) = before, length
    pad = ((0, 0), (top, max(0, rows - top - x.shape[1])), (left, max(0, cols - left - x.shape[2])))
    return jnp.pad(x, pad + ((0, 0),) * (x.ndim - 3))[:, :rows, :cols]


class Conv2d(nn.Module):
    r"""PyTorch's ``Conv2d(c_in, features, kernel_size, stride, padding)`` (stride 1 or 2) in NHWC,
    with PyTorch's default initialization. The native path (:func:`kernel_path`, ``kernels``) is
    ``lax.conv_general_dilated`` at the layer's stride. The CPU path is :func:`conv2d`'s with its
    loop-friendly gradient, stride 2 in :class:`DownConv`'s space-to-depth form for any kernel
    size: the kernel, zero-padded to an even size 2t, is split into 2x2 blocks, and

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
    bias_init: Callable | None = None  # None: PyTorch's default (torch_uniform(k * k * c_in))
    kernels: str = "auto"  # "auto", "cpu" or "native": see kernel_path

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        k, p, f = self.kernel_size, self.padding, self.features
        kernel = self.param("kernel", self.kernel_init or torch_conv_init(), (k, k, c, f))
        if self.stride not in (1, 2):
            raise ValueError(f"stride {self.stride}: only 1 and 2")
        if kernel_path(self.kernels) == "native":
            y = _native_conv(x, kernel, (self.stride,) * 2, ((p, p), (p, p)))
        elif self.stride == 1:
            y = _conv2d_cpu(x, kernel, ((p, p), (p, p)))
        else:
            t = (k + 1) // 2
            ho, wo = conv_output_size(h, k, 2, p), conv_output_size(w, k, 2, p)
            xp = _pad_or_crop(x, (p, p), (2 * (ho + t - 1), 2 * (wo + t - 1)))
            blocks = xp.reshape(n, ho + t - 1, 2, wo + t - 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
            k2 = jnp.pad(kernel, ((0, 2 * t - k), (0, 2 * t - k), (0, 0), (0, 0)))
            k2 = k2.reshape(t, 2, t, 2, c, f).transpose(0, 2, 1, 3, 4, 5)  # (u, v, p, q, c, f)
            blocks, k2 = blocks.reshape(n, ho + t - 1, wo + t - 1, 4 * c), k2.reshape(t, t, 4 * c, f)
            y = _conv2d_cpu(blocks, k2, ((0, 0), (0, 0)))
        if self.use_bias:
            y = add_bias(y, self.param("bias", self.bias_init or torch_uniform(k * k * c), (f,)), self.kernels)
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


def conv_transpose2d(x: jax.Array, kernel: jax.Array, padding: int, output_padding: tuple[int, int],
                     kernels: str = "auto") -> jax.Array:
    r"""PyTorch's stride-2 transposed convolution, NHWC x (k, k, c_in, c_out), H -> 2 (H - 1) -
    2 padding + k + output_padding: every input pixel adds its k x k patch of outputs,

        y[2i + k_y - padding, 2j + k_x - padding] += \sum_c x[i, j, c] W[k_y, k_x, c, :].

    The native path (:func:`kernel_path`): the convolution of x dilated by 2 (a zero between
    neighbours) with W flipped in space, padded by k - 1 - padding (+ output_padding at the
    end), ``lax.conv_general_dilated`` with ``lhs_dilation`` (2, 2), and autodiff's gradients.
    The CPU path: one matmul to all k^2 taps at once, cols = x W (c_in -> k^2 c_out; exactly the
    k^2 c_in c_out multiply-adds per input pixel the definition has, none with an inserted zero)
    and an overlap-add of shifted slices of cols, one per tap, phase by phase:
    y[2m + a, 2n + b] = \sum_{u, v} cols[m + u, n + v, a + padding - 2u, b + padding - 2v] (taps inside
    the kernel only).

    The gradient is written by hand (no convolution, so it stays fast inside ``lax.scan``,
    jax-ml/jax#12868): the overlap-add's adjoint reads, for every input pixel and tap, the output
    gradient that tap wrote to, dcols[i, j, k_y, k_x] = dy[2i + k_y - padding, 2j + k_x - padding]
    (zero outside y): k^2 stride-2 slices of dy, one pass; then dx = dcols W^T and dW = x^T dcols,
    two matmuls."""
    if kernel_path(kernels) == "native":
        k = kernel.shape[0]
        pads = tuple((k - 1 - padding, k - 1 - padding + e) for e in output_padding)
        return _native_conv(x, jnp.flip(kernel, (0, 1)), (1, 1), pads, lhs_dilation=(2, 2))
    return _conv_transpose2d_cpu(x, kernel, padding, output_padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_transpose2d_cpu(x: jax.Array, kernel: jax.Array, padding: int, output_padding: tuple[int, int]) -> jax.Array:
    """:func:`conv_transpose2d`'s CPU path: matmul to all taps, overlap-add, hand-written gradient."""
    return _conv_transpose2d_fwd(x, kernel, padding, output_padding)[0]


def _kernel_matrix(kernel: jax.Array) -> jax.Array:
    k, _, c, f = kernel.shape
    return kernel.transpose(2, 0, 1, 3).reshape(c, k * k * f)  # (c_in, taps x c_out)


def _conv_transpose2d_fwd(x, kernel, padding, output_padding):
    n, h, w, c = x.shape
    k, f = kernel.shape[0], kernel.shape[-1]
    ho, wo = (2 * (s - 1) - 2 * padding + k + e for s, e in zip((h, w), output_padding))
    mh, mw = (ho + 1) // 2, (wo + 1) // 2  # rows and columns per phase
    lo, taps = _phase_taps(k, padding)
    t = len(taps[0])
    cols = (x.reshape(n * h * w, c) @ _kernel_matrix(kernel)).reshape(n, h, w, k, k, f)

    # Each tap's slice of cols zero-padded on its own (cols[m + u] holds x[m + lo + u]): XLA fuses it
    # into its phase's sum; one padded copy of all of cols, read by every tap, was written out first
    # (the forward 30-45% slower alone, the conv VAEs' steps 7-11%).
    def tap(u, v, ky, kx):
        return _pad_or_crop(cols[:, :, :, ky, kx], (-lo, -lo), (mh + t - 1, mw + t - 1))[:, u : u + mh, v : v + mw]

    phases = [[sum(tap(u, v, taps[a][u], taps[b][v])
                   for u in range(t) if taps[a][u] < k for v in range(t) if taps[b][v] < k)
               for b in (0, 1)] for a in (0, 1)]
    y = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # (n, mh, a, mw, b, f)
    return y.reshape(n, 2 * mh, 2 * mw, f)[:, :ho, :wo], (x, kernel)


def _conv_transpose2d_bwd(padding, output_padding, saved, dy):
    x, kernel = saved
    n, h, w, c = x.shape
    k, f = kernel.shape[0], kernel.shape[-1]
    ho, wo = dy.shape[1:3]
    # dy on rows/columns -padding .. 2 (h - 1) + k - 1 - padding: every tap's target, zero outside y.
    dyp = jax.lax.pad(dy, jnp.zeros((), dy.dtype), ((0, 0, 0), (padding, 2 * (h - 1) + k - padding - ho, 0),
                                                    (padding, 2 * (w - 1) + k - padding - wo, 0), (0, 0, 0)))
    # k stacks of k slices, stacked again, not one stack of k^2: XLA:CPU fuses a concatenate of at
    # most 8 operands into its consumer; one of k^2 = 16 was written out slice by slice first (the
    # conv VAEs' steps 2-5% slower). The same array, so the same products, bit for bit.
    dcols = jnp.stack([jnp.stack([dyp[:, ky : ky + 2 * h - 1 : 2, kx : kx + 2 * w - 1 : 2] for kx in range(k)], axis=3)
                       for ky in range(k)], axis=3).reshape(n * h * w, k * k * f)
    wmat = _kernel_matrix(kernel)
    dx = (dcols @ wmat.T).reshape(n, h, w, c)
    dkernel = (x.reshape(n * h * w, c).T @ dcols).reshape(c, k, k, f).transpose(1, 2, 0, 3)
    return dx, dkernel


_conv_transpose2d_cpu.defvjp(_conv_transpose2d_fwd, _conv_transpose2d_bwd)


class ConvTranspose2d(nn.Module):
    r"""PyTorch's ``ConvTranspose2d(c_in, features, kernel_size, stride=2, padding, output_padding)``
    in NHWC, H -> 2 (H - 1) - 2 padding + kernel_size + output_padding, with PyTorch's default
    initialization, computed by :func:`conv_transpose2d` on the path ``kernels`` selects
    (:func:`kernel_path`). W is (kernel_size, kernel_size, c_in, features): PyTorch's weight
    (c_in, features, k, k) transposed by (2, 3, 0, 1), unflipped.
    """

    features: int
    kernel_size: int = 4
    padding: int = 1
    output_padding: int | tuple[int, int] = 0  # (rows, columns), or one for both
    use_bias: bool = True
    kernel_init: Callable | None = None  # None: PyTorch's default (torch_conv_init(transposed=True))
    bias_init: Callable | None = None  # None: PyTorch's default (torch_uniform(k * k * features))
    kernels: str = "auto"  # "auto", "cpu" or "native": see kernel_path

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, p, f = self.kernel_size, self.padding, self.features
        extra = (self.output_padding,) * 2 if isinstance(self.output_padding, int) else tuple(self.output_padding)
        if not (0 <= p < k and all(e in (0, 1) for e in extra)):
            raise ValueError(f"padding {p} and output_padding {self.output_padding} need 0 <= padding < "
                             f"kernel_size and output_padding in {{0, 1}}")
        kernel = self.param("kernel", self.kernel_init or torch_conv_init(transposed=True), (k, k, x.shape[-1], f))
        y = conv_transpose2d(x, kernel, p, extra, self.kernels)
        if self.use_bias:
            y = add_bias(y, self.param("bias", self.bias_init or torch_uniform(k * k * f), (f,)), self.kernels)
        return y


class UpConv(ConvTranspose2d):
    """The DCGAN's x2 upsampling: ``ConvTranspose2d(c_in, features, 4, 2, 1)`` with the paper's
    N(0, 0.02) weights and zero biases."""

    kernel_size: int = 4
    padding: int = 1
    kernel_init: Callable | None = nn.initializers.normal(0.02)
    bias_init: Callable | None = nn.initializers.zeros


class DownConv(Conv2d):
    """The DCGAN's /2 downsampling: ``Conv2d(c_in, features, 4, 2, 1)`` (on the CPU path
    :class:`Conv2d`'s space-to-depth form) with the paper's N(0, 0.02) weights and zero biases."""

    kernel_size: int = 4
    stride: int = 2
    padding: int = 1
    kernel_init: Callable | None = nn.initializers.normal(0.02)
    bias_init: Callable | None = nn.initializers.zeros
