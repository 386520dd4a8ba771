"""Shared layers: the loop-friendly convolution and the DCGAN's up- and down-sampling convolutions."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.models.layers import DownConv, UpConv, conv2d


def _lax_conv(x, kernel, padding):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("k, padding, shape", [(3, ((1, 1), (1, 1)), (2, 6, 7, 3)), (2, ((0, 0), (0, 0)), (2, 5, 6, 4)),
                                               (4, ((1, 2), (0, 1)), (2, 8, 7, 2))])
def test_conv2d_and_its_hand_written_gradient_match_lax_and_autodiff(k, padding, shape):
    rng = np.random.default_rng(k)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, shape[-1], 5)), jnp.float32)
    y, vjp = jax.vjp(lambda a, b: conv2d(a, b, padding), x, kernel)
    y_ref, vjp_ref = jax.vjp(lambda a, b: _lax_conv(a, b, padding), x, kernel)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    for got, want in zip(vjp(dy), vjp_ref(dy)):
        assert float(jnp.max(jnp.abs(want))) > 0
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_upconv_is_pytorchs_transposed_convolution():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    layer = UpConv(4)
    variables = layer.init(jax.random.key(0), x)
    w, b = np.asarray(variables["params"]["kernel"]), np.asarray(variables["params"]["bias"])
    expected = np.zeros((2, 12, 14, 4))  # ConvTranspose2d(k=4, s=2, p=1): y[2i + k - 1] += x[i] w[k]
    for i in range(5):
        for j in range(6):
            for ki in range(4):
                for kj in range(4):
                    expected[:, 2 * i + ki, 2 * j + kj] += x[:, i, j] @ w[ki, kj]
    np.testing.assert_allclose(layer.apply(variables, x), expected[:, 1:11, 1:13] + b, rtol=1e-5, atol=1e-6)


def test_downconv_is_the_strided_convolution_with_the_same_gradients():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 8, 6, 2)), jnp.float32)
    down, strided = DownConv(5), nn.Conv(5, (4, 4), (2, 2), padding=((1, 1), (1, 1)))
    variables = down.init(jax.random.key(0), x)  # the same parameter names and shapes as nn.Conv's
    loss = lambda layer: lambda v, x: jnp.sum(jnp.sin(layer.apply(v, x)))  # noqa: E731
    np.testing.assert_allclose(down.apply(variables, x), strided.apply(variables, x), rtol=1e-5, atol=1e-5)
    assert down.apply(variables, x).shape == (3, 4, 3, 5)
    for got, want in zip(jax.grad(loss(down), (0, 1))(variables, x), jax.grad(loss(strided), (0, 1))(variables, x)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got, want)
