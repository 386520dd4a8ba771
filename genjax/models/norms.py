r"""Batch normalization: PyTorch's ``BatchNorm2d``/``BatchNorm1d`` with running averages
(:class:`BatchNorm`, Flax's ``nn.BatchNorm`` with its variable names and the notebooks' defaults) and
a batch-statistics-only variant for a GAN's discriminator (:class:`BatchStatsNorm`), both on one
pure function, :func:`batch_norm`.

Per channel c (the last axis), over the rows b where the row weight w_b is 1 (an epoch's padded
rows have 0) and every position of them, n = \sum_b w_b x positions:

    \mu = \sum w x / n,    \sigma^2 = \max(0, \sum w x^2 / n - \mu^2),    r = (\sigma^2 + \epsilon)^{-1/2},
    y = (x - \mu) r \gamma + \beta,

Flax's "fast variance" (E[x^2] - E[x]^2, clipped at 0) in Flax's order of operations. On the CPU
kernel path (:func:`~genjax.models.layers.kernel_path`) every sum over the batch and positions is
:func:`~genjax.models.layers.channel_sum`'s matrix-vector product, and the gradient is written by
hand so that autodiff adds no reductions of its own (XLA:CPU runs those as slow reduce-windows):
with g = dy \gamma and \hat x = (x - \mu) r,

    d\beta = \sum dy,    d\gamma = \sum dy \hat x,
    dx = r [g - (w / n)(\sum g + \hat x \sum g \hat x)] + (w / n)(d\mu + 2 d\sigma^2 (x - \mu)),

the last term for cotangents of the statistics themselves (zero in training, where they only feed
the running averages). The native path is the same formula in ``jax.numpy`` with autodiff's gradient.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models.layers import channel_sum, kernel_path


def batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, weight: jax.Array | None = None,
               epsilon: float = 1e-5, kernels: str = "auto") -> tuple[jax.Array, jax.Array, jax.Array]:
    """(y, \\mu, \\sigma^2): x (B, ..., C) normalized per channel by the statistics of the rows where
    ``weight`` (B,) is 1 (all rows without it), then scaled and shifted (the module docstring's
    equations). The path (:func:`~genjax.models.layers.kernel_path`) changes the speed, not the values."""
    rows = x.shape[0]
    w = jnp.ones((rows,), x.dtype) if weight is None else weight.astype(x.dtype)
    if kernel_path(kernels) == "native":
        return _batch_norm_native(x, scale, bias, w, epsilon)
    return _batch_norm_cpu(x, scale, bias, w, epsilon)


def _count(x: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.maximum(jnp.sum(w), 1.0) * math.prod(x.shape[1:-1])


def _normalized(x, mean, var, scale, bias, epsilon):
    return (x - mean) * (jax.lax.rsqrt(var + epsilon) * scale) + bias


def _statistics(x, w, kernels):
    """(\mu, \sigma^2, n) of the module docstring, the sums on the ``kernels`` path."""
    n = _count(x, w)
    mean = channel_sum(x, w, kernels) / n
    var = jnp.maximum(0.0, channel_sum(x * x, w, kernels) / n - mean * mean)
    return mean, var, n


def _batch_norm_native(x, scale, bias, w, epsilon):
    mean, var, _ = _statistics(x, w, "native")
    return _normalized(x, mean, var, scale, bias, epsilon), mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _batch_norm_cpu(x, scale, bias, w, epsilon):
    return _batch_norm_cpu_fwd(x, scale, bias, w, epsilon)[0]


def _batch_norm_cpu_fwd(x, scale, bias, w, epsilon):
    mean, var, n = _statistics(x, w, "cpu")
    return (_normalized(x, mean, var, scale, bias, epsilon), mean, var), (x, scale, w, mean, var, n)


def _batch_norm_cpu_bwd(epsilon, saved, cotangents):
    x, scale, w, mean, var, n = saved
    dy, dmean, dvar = cotangents
    r = jax.lax.rsqrt(var + epsilon)
    xhat = (x - mean) * r
    dbias = channel_sum(dy, kernels="cpu")
    dscale = channel_sum(dy * xhat, kernels="cpu")
    wn = (w / n).reshape(-1, *([1] * (x.ndim - 1)))
    dx = (r * scale) * dy - wn * (r * scale) * (dbias + xhat * dscale) + wn * (dmean + 2.0 * dvar * (x - mean))
    return dx, dscale, dbias, jnp.zeros_like(w)


_batch_norm_cpu.defvjp(_batch_norm_cpu_fwd, _batch_norm_cpu_bwd)


class BatchNorm(nn.Module):
    """PyTorch's ``BatchNorm2d``/``BatchNorm1d`` as the notebooks use them: :func:`batch_norm` over
    the batch in training, the running averages otherwise, updated in training as
    m <- momentum m + (1 - momentum) \\mu (PyTorch's momentum 0.1 is Flax's 0.9). Flax's
    ``nn.BatchNorm`` variables under the same names (params ``scale``, ``bias``; ``batch_stats``
    ``mean``, ``var`` starting at 0 and 1), so its checkpoints load. ``mask`` (B,): the real rows
    (1) of a padded batch, the only ones in the statistics; ignored with the running averages."""

    momentum: float = 0.9
    epsilon: float = 1e-5
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros
    kernels: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool, mask: jax.Array | None = None) -> jax.Array:
        features = (x.shape[-1],)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
        scale = self.param("scale", self.scale_init, features)
        bias = self.param("bias", self.bias_init, features)
        if use_running_average:
            return _normalized(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon)
        y, mean, var = batch_norm(x, scale, bias, mask, self.epsilon, self.kernels)
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y


class BatchStatsNorm(nn.Module):
    """Batch normalization that always normalizes by the batch it is given (``BatchNorm2d`` in
    train mode, with no running averages to keep), over the rows where ``mask`` (B,) is 1 (all
    rows without one), so an epoch's padded rows stay out of the statistics: :func:`batch_norm`.
    For a network used only on batches, such as a GAN's discriminator."""

    epsilon: float = 1e-5
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros
    kernels: str = "auto"

    @nn.compact
    def __call__(self, h: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        scale = self.param("scale", self.scale_init, (h.shape[-1],))
        bias = self.param("bias", self.bias_init, (h.shape[-1],))
        return batch_norm(h, scale, bias, mask, self.epsilon, self.kernels)[0]


def torch_batch_norm(name: str | None = None) -> BatchNorm:
    """PyTorch's ``BatchNorm2d``/``BatchNorm1d`` defaults (momentum 0.1, i.e. Flax's 0.9; eps 1e-5;
    scale 1, shift 0); statistics in the ``batch_stats`` collection. Call it as
    ``norm(h, use_running_average=not train, mask=mask)``, ``mask`` (B,) or None."""
    return BatchNorm(momentum=0.9, epsilon=1e-5, name=name)
