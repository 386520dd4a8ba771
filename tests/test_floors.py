"""The benchmarks' matmul-only floors do the real programs' matmul work: the same FLOPs as the
``dot_general``s of the VAE's training step and of the IWAE evaluation, counted from their jaxprs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.floors import iwae_elementwise, iwae_floor, products_floor, step_products, vae_epoch_floor
from benchmarks.flops import jaxpr_flops, step_flops
from conftest import in_fresh_process
from genjax.models.mlp_vae import VAE
from genjax.objectives import vae
from genjax.presets import get_preset
from genjax.training.optim import make_optimizer
from genjax.training.step import TrainState, make_train_step


def _model(preset):
    config = get_preset(preset)
    model = VAE(config.hidden, config.latent_dim, (28, 28, 1), config.activation)
    params = vae.init_params(model, jax.random.key(0, impl=config.prng), (28, 28, 1))
    return config, model, params


@pytest.mark.parametrize("preset", ["seed002", "seed000"])
def test_epoch_floor_does_the_steps_matmul_work(preset):
    config, model, params = _model(preset)
    tx = make_optimizer(config.optimizer, config.lr)
    step = make_train_step(vae.make_vae_loss(model, config.likelihood, config.pixels), tx)
    state = TrainState.create(params, tx, jax.random.key(1, impl=config.prng))
    batch = {"image": jnp.zeros((config.batch_size, 28, 28, 1), jnp.uint8), "mask": jnp.ones((config.batch_size,))}
    _, _, floor_flops = vae_epoch_floor(config.hidden, config.latent_dim, steps=3, batch=config.batch_size)
    assert floor_flops == pytest.approx(3 * step_flops(step, state, batch), rel=1e-12)


def test_iwae_floor_does_the_evaluations_matmul_work():
    config, model, params = _model("seed002")
    images, k, chunk = 7, 10, 3  # the last chunk is padded, in both
    x = jnp.zeros((images, 28, 28, 1))
    jaxpr = jax.make_jaxpr(lambda p, x: vae.iwae_nll(model, p, x, jax.random.key(2), k, chunk))(params, x).jaxpr
    _, _, floor_flops = iwae_floor(config.hidden, config.latent_dim, images, k, chunk)
    assert floor_flops == pytest.approx(jaxpr_flops(jaxpr), rel=1e-12)


def test_iwae_elementwise_work_is_every_logits_likelihood_and_every_images_own_noise():
    """The IWAE's elementwise side: per chunk, the Bernoulli log-likelihood of all chunk x K x pixels
    logits (checked in float64) and each image's K x D normals from its own key (jax.random's draws
    key by key, not the rbg vmap rule's one draw for the batch)."""
    images, k, chunk, latent, pixels = 7, 4, 3, 2, 10
    fn, (xs, keys, scales) = iwae_elementwise(latent, images, k, chunk, pixels, likelihood=True, noise=False)
    got = np.asarray(fn(xs, keys, scales), np.float64)
    logits = np.asarray(3.0 * jax.random.normal(jax.random.split(jax.random.key(0))[0], (chunk, k, pixels)),
                        np.float64)
    assert got.shape == (3,)  # ceil(7 / 3) chunks
    for c in range(3):
        lg, x = float(scales[c]) * logits, np.asarray(xs[c], np.float64)
        want = np.sum(x * lg - np.logaddexp(0.0, lg))
        assert got[c] == pytest.approx(want, rel=1e-5)
    fn, args = iwae_elementwise(latent, images, k, chunk, pixels, likelihood=False, noise=True)
    got = np.asarray(fn(*args), np.float64)
    for c in range(3):
        want = sum(float(jnp.sum(jax.random.normal(key, (k, latent)))) for key in args[1][c])
        assert got[c] == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_conv_floor_finds_every_conv_layer_of_the_step_and_counts_its_work():
    """seed 004's conv VAE: two strided convolutions, two transposed ones and the output convolution,
    in order and named as the model's modules, each doing the multiply-adds its formula counts."""
    import dataclasses

    import numpy as np

    from benchmarks.conv_vae_speed import CONFIGS, conv_calls
    from genjax import data
    from genjax.devices import data_mesh
    from genjax.recipes.vae import VAE

    config = dataclasses.replace(CONFIGS["seed004"], train_on_test=False)
    images = data.ImageSet(np.zeros((256, 28, 28, 1), np.uint8), None)
    calls = conv_calls(VAE(config).prepare(images, data_mesh()))
    assert [(c.name, c.transposed, c.need_dx) for c in calls] == [
        ("encoder/down_0", False, False), ("encoder/down_1", False, True), ("decoder/up_0", True, True),
        ("decoder/up_1", True, True), ("decoder/out", False, True)]
    assert [c.y_shape[1:] for c in calls] == [(14, 14, 32), (7, 7, 64), (14, 14, 64), (28, 28, 32), (28, 28, 1)]
    for c in calls:
        x, k = jnp.zeros(c.x_shape), jnp.zeros(c.k_shape)
        assert step_flops(c, x, k, convs=True) == pytest.approx(c.flops("fwd"), rel=1e-12), c.name
        if c.transposed:  # its hand-written gradient: two matmuls over dy's slices
            grads = lambda x, k, c=c: jax.vjp(c, x, k)[1](jnp.ones(c.y_shape))  # noqa: E731
            assert step_flops(grads, x, k) == pytest.approx(c.flops("dk") + c.flops("dx"), rel=1e-12)  # y is unused


def test_conv_iwae_floor_finds_the_chunks_convolutions_at_the_evaluations_shapes():
    """The seed003 ConvVAE's IWAE floor: one chunk's convolutions, the encoder's on the chunk's images
    and the decoder's on its K latents per image, and together with the dense layers every FLOP of
    the chunk's products (counted from the jaxpr of log_importance_weights)."""
    from benchmarks.conv_vae_speed import CONFIGS, iwae_conv_calls
    from genjax.recipes.vae import VAE as VAERecipe

    recipe = VAERecipe(CONFIGS["seed003"], (28, 28, 1))
    params, chunk, k = recipe.init_state().params, 3, 5
    calls = iwae_conv_calls(recipe, params, chunk, k)
    assert [(c.name, c.transposed, c.x_shape[0]) for c in calls] == [
        ("encoder/down_0", False, chunk), ("encoder/down_1", False, chunk), ("encoder/down_2", False, chunk),
        ("decoder/up_0", True, chunk * k), ("decoder/up_1", True, chunk * k), ("decoder/up_2", True, chunk * k)]
    assert calls[-1].y_shape == (chunk * k, 28, 28, 1)
    x = jnp.zeros((chunk, 28, 28, 1))
    keys = jax.random.split(jax.random.key(0, impl=recipe.config.prng), chunk)
    def one_chunk(p):
        return vae.log_importance_weights(recipe.model, p, x, keys, k)

    every, dense = step_flops(one_chunk, params, convs=True), step_flops(one_chunk, params)  # dense: no convs
    conv_flops = sum(c.flops("fwd") for c in calls)
    # the transposed convolutions are matmuls (counted in both); the strided ones XLA convolutions
    strided = sum(c.flops("fwd") for c in calls if not c.transposed)
    assert every - dense == pytest.approx(strided, rel=1e-12)
    assert conv_flops > 0.9 * every  # the dense layers are the rest


CEILING_SHAPES = {"seed004": (28, 28, 1), "seed003_celeba": (64, 64, 3)}


@pytest.fixture(scope="module")
def torch_conv_counts():
    """PyTorch's side of the ceiling test, both models in one fresh process (the counter imports
    triton: tests/torch_side.py)."""
    return in_fresh_process("torch_side:conv_vae_step_counts", CEILING_SHAPES)


@pytest.mark.torch
@pytest.mark.parametrize("model", CEILING_SHAPES)
def test_conv_ceiling_counts_every_layers_forward_and_backward_arithmetic(model, torch_conv_counts):
    """The conv benchmark's ceiling divides PyTorch's FlopCounterMode count of one seed step by the
    GEMM peak; the count must be the direct arithmetic of every layer: 2 MACs per tap, forward,
    weight gradient and (all but the first layer, whose input is data) input gradient."""
    counts = torch_conv_counts[model]
    expected = 0.0
    for i, layer in enumerate(counts["layers"]):
        if layer["kind"] == "Linear":
            macs = layer["x"][0] * layer["c_in"] * layer["c_out"]
        else:  # a convolution: taps per output pixel; a transposed one: per input pixel
            pixels = layer["x"] if layer["kind"] == "ConvTranspose2d" else layer["y"]
            macs = pixels[0] * pixels[2] * pixels[3] * layer["c_in"] * layer["c_out"] * math.prod(layer["kernel"])
        expected += 2 * macs * (2 if i == 0 else 3)
    assert counts["flops"] == pytest.approx(expected, rel=1e-6)


def test_products_floor_runs_every_product_of_the_step_at_its_shapes_inside_the_loop():
    def loss(w1, w2, x):
        return jnp.sum(jnp.tanh(jnp.tanh(x @ w1) @ w2))

    w1, w2, x = jnp.ones((12, 16)), jnp.ones((16, 8)), jnp.ones((32, 12))
    products = step_products(jax.grad(loss, argnums=(0, 1)), w1, w2, x)
    # Forward x w1, h w2; backward dW2 = h^T g, dh = g w2^T, dW1 = x^T dh (x needs no gradient).
    shapes = sorted(sorted(tuple(v.aval.shape) for v in e.invars) for e in products)
    assert shapes == sorted(sorted(pair) for pair in [((32, 12), (12, 16)), ((32, 16), (16, 8)), ((32, 16), (32, 8)),
                                                     ((32, 8), (16, 8)), ((32, 12), (32, 16))])
    fn, args, flops = products_floor(products, steps=4)
    assert flops == pytest.approx(4 * 2 * (32 * 12 * 16 + 32 * 16 * 8) * 2 + 4 * 2 * 32 * 8 * 16, rel=1e-12)
    hlo = fn.lower(*args).compile().as_text()
    assert hlo.count(" dot(") == len(products)  # none hoisted out of the loop or dropped
    assert all(np.isfinite(a).all() for pair in fn(*args) for a in pair)
    with pytest.raises(ValueError, match="inside scan"):
        step_products(lambda w, x: jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=2)[0], w1.T @ w1, x @ w1)
