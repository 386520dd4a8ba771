"""The VAE objective for any encoder/decoder (genjax.objectives.vae): BatchNorm's statistics in the step and in
evaluation, the discretized-logistic likelihood with its learned log-scale, image-shaped logits,
and the seeds' own loss as the presets' default."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import data
from genjax.models.conv_vae import ConvVAE
from genjax.models.mlp_vae import VAE as MLPVAE
from genjax.objectives import losses, vae
from genjax.presets import CELEBA_VAE_PRESETS, CIFAR10_VAE_PRESETS, CONV_VAE_MNIST_PRESETS, get_preset
from genjax.recipes import vae as vae_recipe
from genjax.training.step import TrainState, make_train_step

KEY = jax.random.key(0, impl="rbg")
BN_VAE = ConvVAE(image_shape=(16, 16, 3), features=(4, 8), latent_dim=3, batch_norm=True)  # a small CelebA VAE
TX = optax.adam(1e-2)


def images(n, shape=(16, 16, 3), seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8))


def first_norm_stats(model_state):
    return model_state["batch_stats"]["encoder"]["down_norm_0"]


def test_batchnorm_statistics_move_in_training_and_stay_frozen_in_evaluation():
    params, model_state = vae.init_variables(BN_VAE, KEY, (16, 16, 3))
    assert set(model_state) == {"batch_stats"} and "batch_stats" not in params
    state = TrainState.create(params, TX, KEY, model_state=model_state)
    step = jax.jit(make_train_step(vae.make_vae_loss(BN_VAE, "bernoulli", "float"), TX))
    x = images(8)

    # One step on a padded batch (rows 5-7 are padding, and white): running mean = 0.9 * 0 + 0.1 *
    # (the mean of the first convolution's output over the 5 real rows); padding stays out of it.
    batch = {"image": x.at[5:].set(255), "mask": (jnp.arange(8) < 5).astype(jnp.float32)}
    new, metrics = step(state, batch)
    h = conv_features(params, data.to_pixels(x[:5], "float"))
    np.testing.assert_allclose(first_norm_stats(new.model_state)["mean"], 0.1 * h.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    assert np.isfinite(float(metrics["loss"]))
    for _ in range(3):
        new, _ = step(new, batch)
    assert np.abs(first_norm_stats(new.model_state)["mean"] - first_norm_stats(model_state)["mean"]).max() > 1e-2

    # Evaluation runs on the running averages: an image's code does not depend on the others in
    # its batch (batch statistics would make it), it does depend on the averages, and it changes nothing.
    xf = data.to_pixels(images(6, seed=1), "float")
    others = xf.at[2:].set(1.0)
    before = jax.device_get(new.model_state)
    z_all = vae.encode_means(BN_VAE, new.params, xf, model_state=new.model_state)
    z_others = vae.encode_means(BN_VAE, new.params, others, model_state=new.model_state)
    np.testing.assert_allclose(z_others[:2], z_all[:2], rtol=1e-5, atol=1e-6)
    with_init = vae.encode_means(BN_VAE, new.params, xf, model_state=model_state)
    assert float(jnp.abs(with_init - z_all).max()) > 1e-3
    m = vae.evaluate(BN_VAE, new.params, xf, KEY, "bernoulli", model_state=new.model_state, mse=True)
    assert np.isfinite(float(m["neg_elbo"])) and float(m["mse"]) > 0
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(new.model_state), before)


def conv_features(params, x):
    """The first stride-2 convolution's output on float images, from its own parameters."""
    from genjax.models.layers import Conv2d

    return Conv2d(4, 4, 2, 1, use_bias=True).apply({"params": params["encoder"]["down_0"]}, x)


def test_discretized_logistic_likelihood_learns_its_log_scale_outside_the_module():
    model = ConvVAE(image_shape=(8, 8, 3), features=(4, 8), latent_dim=2)
    params, model_state = vae.init_variables(model, KEY, (8, 8, 3), vae.DISCRETIZED_LOGISTIC)
    assert params[vae.LOG_SCALE].shape == (8, 8, 3) and model_state == {}
    assert vae.LOG_SCALE not in vae.module_variables(params)["params"]
    assert vae.init_params(model, KEY, (8, 8, 3)).keys() == vae.module_variables(params)["params"].keys()
    x = images(4, (8, 8, 3))
    xs = data.to_pixels(x, "signed")
    # The likelihood is PixelCNN++'s discretized logistic at location tanh(logits).
    logits = jax.random.normal(KEY, (4, 192))
    log_scale = jnp.full((192,), -1.5)
    expected = -losses.discretized_logistic_log_likelihood(jnp.tanh(logits), log_scale, xs.reshape(4, -1))
    np.testing.assert_allclose(vae.reconstruction_loss(logits, xs.reshape(4, -1), vae.DISCRETIZED_LOGISTIC, log_scale),
                               expected, rtol=1e-6)
    # Its log-scale gets a gradient and the pixels' scale back in [0, 1] for the squared error.
    loss = vae.make_vae_loss(model, vae.DISCRETIZED_LOGISTIC, "signed")
    grads = jax.grad(lambda p: loss(p, {}, {"image": x}, KEY, 0)[0])(params)
    assert float(jnp.abs(grads[vae.LOG_SCALE]).max()) > 0
    np.testing.assert_allclose(vae.unit_pixels(xs, vae.DISCRETIZED_LOGISTIC), x / 255.0, atol=1e-6)
    assert vae.reports_likelihood(vae.DISCRETIZED_LOGISTIC, "signed")
    assert not vae.reports_likelihood("bernoulli", "float") and not vae.reports_likelihood("mse", "threshold")
    # IWAE on image-shaped logits: a bound at least as tight as the K-sample ELBO, in nats and bits/dim.
    iw = vae.iwae_nll(model, params, xs, KEY, 16, 2, likelihood=vae.DISCRETIZED_LOGISTIC)
    ev = vae.evaluate(model, params, xs, KEY, vae.DISCRETIZED_LOGISTIC, mse=True)
    assert float(iw["nll_iwae"]) <= float(iw["neg_elbo"]) and np.isfinite(float(ev["neg_elbo"]))
    assert 0 < float(losses.bits_per_dim(iw["nll_iwae"], 192)) < 16
    samples = vae.prior_sample_means(model, params, KEY, 5, likelihood=vae.DISCRETIZED_LOGISTIC, chunk=2)
    assert samples.shape == (5, 8, 8, 3) and 0 <= float(samples.min()) and float(samples.max()) <= 1


@pytest.mark.parametrize("model, shape", [(MLPVAE(hidden=(128,), latent_dim=16, image_shape=(32, 32, 3)), (32, 32, 3)),
                                          (ConvVAE(), (28, 28, 1))], ids=["seed001_mlp", "seed003_conv"])
def test_the_default_likelihood_is_the_seeds_bce_plus_kl(model, shape):
    """Seeds 001 and 003 train on BCELoss(reduction="sum")(sigmoid(logits), x) + KL on ToTensor pixels;
    the presets' default likelihood (bernoulli, float pixels) is that loss, per image."""
    x = images(3, shape)
    params = vae.init_params(model, KEY, shape)
    loss, _ = vae.make_vae_loss(model, "bernoulli", "float")(params, {}, {"image": x}, KEY, 0)
    _, z_key = jax.random.split(KEY)
    xf = np.asarray(x, np.float64) / 255.0
    logits, mean, log_var = (np.asarray(a, np.float64)
                             for a in model.apply({"params": params}, jnp.asarray(xf, jnp.float32), z_key))
    p = 1.0 / (1.0 + np.exp(-logits))
    bce = -np.sum(xf * np.log(p) + (1 - xf) * np.log(1 - p), axis=(1, 2, 3))
    kld = -0.5 * np.sum(1 + log_var - mean**2 - np.exp(log_var), axis=1)
    np.testing.assert_allclose(float(loss), np.mean(bce + kld), rtol=1e-4)
    for presets in (CONV_VAE_MNIST_PRESETS, CIFAR10_VAE_PRESETS, CELEBA_VAE_PRESETS):
        for name, c in presets.items():
            expected = ("bernoulli", "threshold" if name == "seed003" else "float")
            assert (c.likelihood, c.pixels, c.optimizer, c.lr) == (*expected, "adam", 1e-3), name


def test_the_likelihood_brings_its_pixels_and_a_mismatch_is_refused():
    from experiments import vae_cifar10
    from genjax.errors import UsageError

    def parse(*a):
        return vae_recipe.config_from_args(vae_cifar10.parser.parse_args(list(a)), CIFAR10_VAE_PRESETS)

    assert parse().pixels == "float" and parse("--likelihood", "mse").pixels == "float"
    assert parse("--likelihood", "discretized_logistic").pixels == "signed"
    with pytest.raises(UsageError, match="--pixels float does not suit"):
        parse("--likelihood", "discretized_logistic", "--pixels", "float")
    with pytest.raises(UsageError, match="signed does not suit"):
        parse("--pixels", "signed")
    seed004 = CONV_VAE_MNIST_PRESETS["seed004"]
    assert seed004.train_on_test and seed004.epochs == 30 and seed004.latent_dim == 2
    train = data.ImageSet(np.zeros((5, 2, 2, 1), np.uint8), np.arange(5))
    test = data.ImageSet(np.ones((3, 2, 2, 1), np.uint8), np.arange(3))
    both = vae_recipe.training_set(seed004, train, test)
    assert len(both) == 8 and both.images[5:].min() == 1  # ConcatDataset([train, test])
    assert vae_recipe.training_set(CONV_VAE_MNIST_PRESETS["seed003"], train, test) is train


@pytest.mark.parametrize("preset", ["seed002", "seed003"])
def test_compiled_init_gives_flax_eager_init_bit_for_bit(preset):
    """init_variables compiles Flax's init (3-4x faster than op by op); the documented results were
    trained from the eager values, so the compiled ones must be the same bits."""
    recipe = vae_recipe.VAE(get_preset(preset), (28, 28, 1))
    key = recipe.keys()["init"]
    params, _ = vae.init_variables(recipe.model, key, (28, 28, 1))
    eager = recipe.model.init(key, jnp.zeros((1, 28, 28, 1)), key)["params"]
    assert jax.tree.structure(params) == jax.tree.structure(eager)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(eager)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
