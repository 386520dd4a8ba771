"""Batch normalization and the per-channel sums under it: :func:`genjax.models.layers.channel_sum` and
:func:`~genjax.models.layers.add_bias` against float64 NumPy on both kernel paths, :class:`BatchNorm`
against Flax's ``nn.BatchNorm`` (values, running averages, gradients, masks, checkpoints), the
hand-written gradient of :func:`batch_norm` against autodiff of its NumPy-checked forward, and the
compiled step free of the reduce-windows that the CPU forms exist to avoid."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.devices import data_mesh
from genjax.models.conv_vae import SEED_ARCHITECTURES, ConvVAE
from genjax.models.layers import add_bias, channel_sum, use_kernels
from genjax.models.norms import BatchNorm, BatchStatsNorm, batch_norm
from genjax.training.step import fast_compiler_options

PATHS = ("cpu", "native")


@pytest.mark.parametrize("kernels", PATHS)
@pytest.mark.parametrize("shape", [(6, 5, 4, 16), (9, 32), (4, 3, 3, 3)])  # C = 3: jnp.sum on the CPU path too
def test_channel_sum_is_the_weighted_sum_over_every_axis_but_the_last(kernels, shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    w = np.arange(shape[0], dtype=np.float32) % 3
    got = channel_sum(jnp.asarray(x), jnp.asarray(w), kernels)
    want = (w.reshape(-1, *([1] * (x.ndim - 1))) * x.astype(np.float64)).sum(tuple(range(x.ndim - 1)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    unweighted = x.astype(np.float64).reshape(-1, shape[-1]).sum(0)
    np.testing.assert_allclose(channel_sum(jnp.asarray(x), kernels=kernels), unweighted, rtol=1e-5, atol=1e-5)
    ct = np.random.default_rng(1).normal(size=shape[-1]).astype(np.float32)
    grad = jax.grad(lambda x: jnp.sum(channel_sum(x, jnp.asarray(w), kernels) * ct))(jnp.asarray(x))
    np.testing.assert_allclose(grad, np.broadcast_to(w.reshape(-1, *([1] * (x.ndim - 1))) * ct, shape), rtol=1e-6)


@pytest.mark.parametrize("kernels", PATHS)
def test_add_bias_adds_over_the_last_axis_and_its_bias_gradient_is_the_sum_of_dy(kernels):
    rng = np.random.default_rng(2)
    y, b, ct = (rng.normal(size=s).astype(np.float32) for s in ((5, 4, 3, 12), (12,), (5, 4, 3, 12)))
    np.testing.assert_allclose(add_bias(jnp.asarray(y), jnp.asarray(b), kernels), y + b, rtol=1e-6)
    loss = lambda y, b: jnp.sum(jnp.sin(add_bias(y, b, kernels)) * ct)  # noqa: E731
    dy, db = jax.grad(loss, (0, 1))(jnp.asarray(y), jnp.asarray(b))
    g = np.cos(y.astype(np.float64) + b) * ct
    np.testing.assert_allclose(dy, g, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(db, g.sum((0, 1, 2)), rtol=1e-4, atol=1e-4)


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = (3.0 * rng.normal(size=shape) + 2.0).astype(np.float32)  # far from N(0, 1), so the statistics matter
    scale = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32)
    bias = rng.normal(size=shape[-1]).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias)


@pytest.mark.parametrize("kernels", PATHS)
@pytest.mark.parametrize("shape", [(6, 5, 4, 10), (7, 9)])
def test_batch_norm_normalizes_by_the_real_rows_statistics(kernels, shape):
    x, scale, bias = _inputs(shape)
    mask = jnp.asarray((np.arange(shape[0]) < shape[0] - 2).astype(np.float32))
    y, mean, var = batch_norm(x, scale, bias, mask, 1e-5, kernels)
    real = np.asarray(x, np.float64)[: shape[0] - 2]
    axes = tuple(range(x.ndim - 1))
    np.testing.assert_allclose(mean, real.mean(axes), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, real.var(axes), rtol=1e-4)
    want = (np.asarray(x, np.float64) - real.mean(axes)) / np.sqrt(real.var(axes) + 1e-5) * scale + bias
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def _autodiff_batch_norm(x, scale, bias, w, epsilon=1e-5):
    """The forward in jax.numpy with autodiff's gradient: what the hand-written one must equal."""
    axes = tuple(range(x.ndim - 1))
    wb = w.reshape(-1, *([1] * (x.ndim - 1)))
    n = jnp.sum(w) * np.prod(x.shape[1:-1])
    mean = jnp.sum(wb * x, axes) / n
    var = jnp.sum(wb * x * x, axes) / n - mean * mean
    return (x - mean) * jax.lax.rsqrt(var + epsilon) * scale + bias, mean, var


@pytest.mark.parametrize("shape", [(6, 5, 4, 10), (7, 9)])
def test_the_hand_written_gradient_is_autodiffs_including_the_statistics_cotangents(shape):
    x, scale, bias = _inputs(shape, seed=3)
    mask = jnp.asarray((np.arange(shape[0]) % 4 != 3).astype(np.float32))
    rng = np.random.default_rng(4)
    cts = [jnp.asarray(rng.normal(size=s).astype(np.float32)) for s in (shape, shape[-1:], shape[-1:])]

    def loss(fn):
        return lambda x, s, b: sum(jnp.sum(o * c) for o, c in zip(fn(x, s, b), cts))

    got = jax.grad(loss(lambda x, s, b: batch_norm(x, s, b, mask, 1e-5, "cpu")), (0, 1, 2))(x, scale, bias)
    want = jax.grad(loss(lambda x, s, b: _autodiff_batch_norm(x, s, b, mask)), (0, 1, 2))(x, scale, bias)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5)
    native = jax.grad(loss(lambda x, s, b: batch_norm(x, s, b, mask, 1e-5, "native")), (0, 1, 2))(x, scale, bias)
    for g, w in zip(native, want):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("kernels", PATHS)
@pytest.mark.parametrize("shape", [(6, 5, 4, 10), (7, 9)])
def test_batchnorm_is_flaxs_with_its_variables_running_averages_and_gradients(kernels, shape):
    x, scale, bias = _inputs(shape, seed=5)
    mask = (np.arange(shape[0]) < shape[0] - 1).astype(np.float32)
    ours, flax_bn = BatchNorm(kernels=kernels), nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    variables = flax_bn.init(jax.random.key(0), x, use_running_average=False)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x, False)) == jax.tree.map(jnp.shape, variables)
    variables = {"params": {"scale": scale, "bias": bias},
                 "batch_stats": {"mean": jnp.full(shape[-1:], 0.3), "var": jnp.full(shape[-1:], 2.0)}}
    ct = jnp.asarray(np.random.default_rng(6).normal(size=shape).astype(np.float32))
    flax_mask = jnp.asarray(mask).reshape(-1, *([1] * (x.ndim - 1))) > 0

    def train_loss(apply, **kw):
        def f(params, x):
            state = {"params": params, "batch_stats": variables["batch_stats"]}
            y, new = apply(state, x, mutable=["batch_stats"], **kw)
            return jnp.sum(y * ct), new
        return jax.value_and_grad(f, (0, 1), has_aux=True)(variables["params"], x)

    (_, stats), grads = train_loss(ours.apply, use_running_average=False, mask=jnp.asarray(mask))
    (_, flax_stats), flax_grads = train_loss(flax_bn.apply, use_running_average=False, mask=flax_mask)
    for got, want in zip(jax.tree.leaves((stats, grads)), jax.tree.leaves((flax_stats, flax_grads))):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(ours.apply(variables, x, True), flax_bn.apply(variables, x, use_running_average=True),
                               rtol=1e-6)


def test_batch_stats_norm_normalizes_by_the_batch_it_is_given():
    x, _, _ = _inputs((8, 3, 3, 12), seed=7)
    norm = BatchStatsNorm(scale_init=nn.initializers.constant(2.0))
    variables = norm.init(jax.random.key(0), x)
    assert set(variables) == {"params"}  # no running averages
    mask = jnp.asarray([1.0] * 6 + [0.0] * 2)
    np.testing.assert_allclose(norm.apply(variables, x, mask)[:6], norm.apply(variables, x[:6]), rtol=1e-4, atol=1e-5)
    real = np.asarray(x, np.float64)[:6]
    want = 2.0 * (real - real.mean((0, 1, 2))) / np.sqrt(real.var((0, 1, 2)) + 1e-5)
    np.testing.assert_allclose(norm.apply(variables, x, mask)[:6], want, rtol=1e-4, atol=1e-4)


def test_the_cpu_step_of_a_batchnorm_conv_vae_compiles_without_reduce_windows():
    """Under the epoch's compiler options XLA:CPU turns a reduction over the batch and positions into a
    reduce-window (slow); the CPU forms (convolution bias gradients, BatchNorm statistics and
    gradients) leave none over a feature map in the compiled step, where the native path's autodiff
    leaves some."""
    model = ConvVAE(image_shape=(32, 32, 3), features=(16, 32), latent_dim=8, batch_norm=True)
    x = jnp.zeros((128, 32, 32, 3))  # large enough for XLA to split the reductions
    variables = model.init(jax.random.key(0), x, jax.random.key(1))

    def hlo(kernels):
        def loss(params):
            with use_kernels(kernels):
                out, _ = model.apply({**variables, "params": params}, x, jax.random.key(2), train=True,
                                     mutable=["batch_stats"])
            return sum(jnp.sum(o) for o in out)

        options = fast_compiler_options(data_mesh())  # the epoch's: XLA's own kernels, no YNNPACK
        return jax.jit(jax.grad(loss)).lower(variables["params"]).compile(options).as_text()

    over_feature_maps = re.compile(r"reduce-window\(.*window=\{size=\d+x\d+x\d+x\d+ ")  # 4-D: (B, H, W, C)
    assert over_feature_maps.search(hlo("native"))  # the test can fail: autodiff's reductions become reduce-windows
    assert not over_feature_maps.search(hlo("cpu"))  # (a dense layer's bias, over the batch alone, may keep one)


def test_seed003_celeba_architecture_builds_with_the_checkpoint_names_of_nn_batchnorm():
    model = ConvVAE(**SEED_ARCHITECTURES["seed003_celeba"])
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 64, 64, 3)), jax.random.key(1)))
    assert set(variables["batch_stats"]["encoder"]["down_norm_0"]) == {"mean", "var"}
    assert set(variables["params"]["encoder"]["down_norm_0"]) == {"bias", "scale"}
