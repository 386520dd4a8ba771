"""genjax.objectives.autoencoder and genjax.evaluation.metrics: ROC AUC, PSNR, the denoising loss, a short real run, 8 devices."""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import script_json_on_devices
from genjax import data
from genjax.devices import data_mesh
from genjax.evaluation.metrics import roc_auc
from genjax.models import mlp_vae
from genjax.models.mlp_ae import MLPAutoencoder
from genjax.objectives import autoencoder, vae
from genjax.presets import AE_PRESETS, PRESETS
from genjax.recipes.autoencoder import Autoencoder
from genjax.training.step import epoch_key


def brute_force_auc(scores, positive) -> float:
    """P(s_+ > s_-) + P(s_+ = s_-) / 2 over every (positive, negative) pair."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_a_brute_force_pairwise_count():
    rng = np.random.default_rng(0)
    for n, levels in ((7, 3), (50, 5), (301, 1000), (400, 2)):  # few levels: many ties, each counted 1/2
        scores = rng.integers(0, levels, n).astype(np.float32)
        positive = rng.random(n) < 0.3
        positive[:2] = [True, False]
        assert roc_auc(scores, positive) == pytest.approx(brute_force_auc(scores, positive), abs=1e-12)
    scores = np.arange(10.0)
    assert roc_auc(scores, scores >= 5) == 1.0 and roc_auc(scores, scores < 5) == 0.0
    assert roc_auc(np.ones(10), scores >= 5) == 0.5  # all tied: chance
    assert roc_auc(np.exp(scores), scores >= 3) == roc_auc(scores, scores >= 3)  # ranks only
    for bad in ((np.ones(4), np.ones(4, bool)), (np.ones(4), np.ones(3, bool)), ([np.nan, 1.0], [True, False])):
        with pytest.raises(ValueError):
            roc_auc(*bad)


def test_psnr_against_a_hand_computation():
    target = np.zeros((2, 2, 2, 1), np.float32)
    prediction = np.array([[[0.1], [0.2]], [[0.3], [0.4]]], np.float32)[None].repeat(2, 0)
    prediction[1] = 0.5  # image 1: every pixel off by 0.5
    # image 0: MSE = (0.01 + 0.04 + 0.09 + 0.16) / 4 = 0.075, PSNR = 10 log10(1 / 0.075) = 11.2494 dB;
    # image 1: MSE = 0.25, PSNR = 10 log10(4) = 6.0206 dB.
    np.testing.assert_allclose(autoencoder.mean_squared_error(prediction, target), [0.075, 0.25], rtol=1e-6)
    np.testing.assert_allclose(autoencoder.psnr(prediction, target), [11.249387, 6.0206], rtol=1e-5)
    np.testing.assert_allclose(autoencoder.psnr(255 * prediction, target, peak=255.0), [11.249387, 6.0206], rtol=1e-5)
    assert float(autoencoder.psnr(target, target)[0]) == pytest.approx(100.0)  # perfect: floored, finite


def _tiny_ae():
    model = MLPAutoencoder((4, 4, 1), (8,), 3)
    return model, model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))["params"]


def test_denoising_loss_corrupts_the_input_and_targets_the_clean_image():
    model, params = _tiny_ae()
    images = np.random.default_rng(1).integers(0, 256, (6, 4, 4, 1), dtype=np.uint8)
    batch = {"image": jnp.asarray(images), "mask": jnp.array([1, 1, 1, 1, 0, 0], jnp.float32)}
    key = jax.random.key(3)
    loss, (_, metrics) = autoencoder.make_ae_loss(model, "mse", "float", noise=0.5)(params, {}, batch, key, 0)
    _, noise_key = jax.random.split(key)  # the loss's split: (pixel key, noise key)
    clean = images.astype(np.float32) / 255
    noisy = autoencoder.corrupt(noise_key, jnp.asarray(clean), 0.5)
    out = np.asarray(jax.nn.sigmoid(model.apply({"params": params}, noisy)))
    per_image = lambda target: ((out - target) ** 2).reshape(6, -1).sum(1)[:4].mean()  # the 4 real rows
    assert float(loss) == pytest.approx(per_image(clean), rel=1e-5)
    assert abs(float(loss) - per_image(np.asarray(noisy))) > 1e-2  # not the noisy input
    assert float(metrics["mse"]) == pytest.approx(per_image(clean) / 16, rel=1e-5)
    assert np.abs(np.asarray(noisy) - clean).max() > 0.3  # the network's input was the noisy one
    plain, _ = autoencoder.make_ae_loss(model, "mse", "float")(params, {}, batch, key, 0)
    out_clean = np.asarray(jax.nn.sigmoid(model.apply({"params": params}, clean)))
    assert float(plain) == pytest.approx(((out_clean - clean) ** 2).reshape(6, -1).sum(1)[:4].mean(), rel=1e-5)
    bce, _ = autoencoder.make_ae_loss(model, "bernoulli", "float")(params, {}, batch, key, 0)
    logits = np.asarray(model.apply({"params": params}, clean), np.float64).reshape(6, -1)
    x = clean.reshape(6, -1)
    expected = -(x * np.log(1 / (1 + np.exp(-logits))) + (1 - x) * np.log(1 - 1 / (1 + np.exp(-logits))))
    assert float(bce) == pytest.approx(expected.sum(1)[:4].mean(), rel=1e-5)


def test_corruption_is_clipped_gaussian_and_per_key_under_vmap():
    grey = jnp.full((64, 28, 28, 1), 0.5)
    key = jax.random.key(0, impl="rbg")
    assert autoencoder.corrupt(key, grey, 0.0) is grey
    noisy = np.asarray(autoencoder.corrupt(key, grey, 0.1))
    assert noisy.min() >= 0 and noisy.max() <= 1 and (noisy - 0.5).std() == pytest.approx(0.1, rel=0.02)
    loud = np.asarray(autoencoder.corrupt(key, grey, 100.0))
    assert np.isin(loud, (0.0, 1.0)).mean() > 0.99 and 0.45 < loud.mean() < 0.55  # almost all clipped, both ways
    keys = jax.random.split(key, 4)
    together = jax.vmap(lambda x, k: autoencoder.corrupt(k, x, 0.3))(grey[:4], keys)
    for i in range(4):  # with rbg keys, JAX's own vmap would draw every image from keys[0]
        np.testing.assert_array_equal(together[i], autoencoder.corrupt(keys[i], grey[i], 0.3))


@pytest.mark.slow
def test_models_codes_and_samples_for_every_preset():
    for name, shape in (("seed003", (28, 28, 1)), ("seed004", (28, 28, 1)), ("seed001", (32, 32, 3))):
        config = AE_PRESETS[name]
        model = autoencoder.from_config(config, shape)
        params = Autoencoder(config, shape).init_state().params
        x = jnp.asarray(np.random.default_rng(0).random((5, *shape)), jnp.float32)
        assert autoencoder.codes(model, params, x).shape == (5, config.latent_dim)
        recon = autoencoder.reconstruct(model, params, x)
        assert recon.shape == x.shape and 0 <= float(recon.min()) and float(recon.max()) <= 1
        if config.model == "mlp":  # (one model is enough: each jitted function compiles once per model)
            err = autoencoder.reconstruction_mse(model, params, x, chunk=2)
            np.testing.assert_allclose(err, np.mean((np.asarray(recon) - np.asarray(x)) ** 2, axis=(1, 2, 3)),
                                       rtol=1e-5)
    vae_model = mlp_vae.from_config(PRESETS["seed003"], (28, 28, 1))
    vae_params = vae.init_params(vae_model, jax.random.key(0), (28, 28, 1))
    x = jnp.asarray(np.random.default_rng(1).random((3, 28, 28, 1)), jnp.float32)
    np.testing.assert_array_equal(autoencoder.codes(vae_model, vae_params, x), vae.encode_means(vae_model, vae_params, x))
    with pytest.raises(Exception, match="384"):
        autoencoder.from_config(dataclasses.replace(AE_PRESETS["seed001"], latent_dim=16), (32, 32, 3))
    # The fitted Gaussian: the codes' mean and covariance.
    rng = np.random.default_rng(2)
    a = np.array([[2.0, 0.0], [1.5, 0.5]])
    z = rng.standard_normal((20000, 2)) @ a.T + [3.0, -1.0]
    mean, chol = autoencoder.fit_gaussian(z)
    np.testing.assert_allclose(mean, [3, -1], atol=0.05)
    np.testing.assert_allclose(chol @ chol.T, a @ a.T, rtol=0.05)


def test_ae_loss_lowers_on_a_short_real_run(mnist):
    train, test = mnist
    config = dataclasses.replace(AE_PRESETS["seed003"], noise=0.2)
    mesh = data_mesh()
    p = Autoencoder(config).prepare(data.ImageSet(train.images[:6400], None), mesh)
    evaluate = p.recipe.make_evaluate(data.ImageSet(test.images[:2000], None), mesh)
    before = jax.device_get(evaluate(p.state))
    state, steps = p.epoch_fn(p.state, p.train_data, epoch_key(p.run_key, 0))
    after = jax.device_get(evaluate(state))
    losses = np.asarray(steps["loss"])
    assert losses.shape == (50,) and np.all(np.isfinite(losses)) and losses[-5:].mean() < 0.5 * losses[:5].mean()
    assert after["loss"] < 0.5 * before["loss"] and after["psnr"] > before["psnr"] + 3


EIGHT_DEVICES = """
import dataclasses, json
import jax, jax.numpy as jnp, numpy as np
from genjax.objectives import autoencoder, vae
from genjax.evaluation.metrics import roc_auc
from genjax.presets import AE_PRESETS
from genjax.data import ImageSet
from genjax.devices import data_mesh, replicate
from genjax.recipes.autoencoder import Autoencoder
from genjax.training.step import epoch_key
config = dataclasses.replace(AE_PRESETS["seed003"], hidden=(32,), latent_dim=4, batch_size=16, noise=0.2)
images = np.random.default_rng(0).integers(0, 256, (72, 28, 28, 1), dtype=np.uint8)  # 4 full batches + 8 padded
mesh = data_mesh()
x = replicate(jnp.asarray(images[:40] / 255.0, jnp.float32), mesh)
p = Autoencoder(config).prepare(ImageSet(images, None), mesh)
model, state = p.recipe.model, p.state
for e in range(2):
    state, steps = p.epoch_fn(state, p.train_data, epoch_key(jax.random.key(0, impl="rbg"), e))
err = np.asarray(autoencoder.reconstruction_mse(model, state.params, x, chunk=16, mesh=mesh))
evaluate = lambda s: autoencoder.evaluate(model, s.params, x, jax.random.key(1, impl="rbg"), config.likelihood,
                                          config.noise, mesh=mesh)
print(json.dumps({"devices": mesh.size, "loss": np.asarray(steps["loss"]).tolist(), "err": err.tolist(),
                  "auc": roc_auc(err, np.arange(40) % 3 == 0), **{k: float(v) for k, v in evaluate(state).items()}}))
"""


@pytest.mark.slow
def test_eight_fake_devices_match_one():
    one, eight = (script_json_on_devices(EIGHT_DEVICES, n) for n in (1, 8))
    assert (one["devices"], eight["devices"]) == (1, 8)
    np.testing.assert_allclose(eight["loss"], one["loss"], rtol=1e-5)  # the same noise draws, the same batches
    np.testing.assert_allclose(eight["err"], one["err"], rtol=1e-4)
    for key in ("loss", "mse", "psnr", "psnr_input"):
        assert eight[key] == pytest.approx(one[key], rel=1e-5), key
    assert eight["auc"] == one["auc"] and math.isfinite(one["auc"])
