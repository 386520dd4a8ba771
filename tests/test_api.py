"""The public API as users call it: their own arrays in, images out, runs saved and loaded back,
and bad input refused with a ValueError that names the fix."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import genjax

RNG = np.random.default_rng(0)
COLOUR = RNG.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
GREY = RNG.random((256, 28, 28)).astype(np.float32)  # floats in [0, 1], no channel axis
FAMILIES = {"VAE": (genjax.VAE, {"batch_size": 64}), "Autoencoder": (genjax.Autoencoder, {"batch_size": 64}),
            "PixelRNN": (genjax.PixelRNN, {"hidden": 8, "batch_size": 64})}


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("images", [COLOUR, GREY], ids=["colour32", "grey28"])
def test_own_images_train_sample_save_and_load_back(family, images, tmp_path):
    cls, fields = FAMILIES[family]
    model = cls.from_preset(**fields).fit(images, epochs=1, progress=False)
    shape = (*images.shape[1:3], images.shape[3] if images.ndim == 4 else 1)
    assert model.image_shape == shape and len(model.history) == 1
    samples = model.sample(5, key=3)
    assert samples.shape == (5, *shape) and samples.dtype == np.float32
    assert 0.0 <= samples.min() and samples.max() <= 1.0 and samples.std() > 0
    back = genjax.load(model.save(tmp_path / "saved"))
    assert type(back) is cls and back.config == model.config and back.image_shape == shape
    assert leaves_equal(back.params, model.params)
    np.testing.assert_array_equal(back.sample(5, key=3), samples)
    assert not np.array_equal(model.sample(5, key=4), samples)  # the key matters


def test_fit_leaves_the_recipe_usable_and_the_same_seed_gives_the_same_model():
    recipe = genjax.VAE.from_preset("seed002", batch_size=64)
    first = recipe.fit(GREY, epochs=1, progress=False)
    second = recipe.fit(GREY, epochs=1, progress=False)  # the recipe's own state was never donated
    assert recipe.state is None and leaves_equal(first.params, second.params)
    other = genjax.VAE.from_preset("seed002", batch_size=64, seed=1).fit(GREY, epochs=1, progress=False)
    assert not leaves_equal(first.params, other.params)
    assert first.sample(2, key=0).shape == (2, 28, 28, 1)  # still usable after a second fit


def test_training_lowers_the_test_loss_and_reports_the_likelihood(mnist):
    train, test = mnist
    vae = genjax.VAE.from_preset("seed002").fit(train.images[:3000], epochs=2, test_images=test.images[:500],
                                                progress=False)
    first, last = vae.history[0], vae.history[-1]
    assert last["test_neg_elbo"] < first["test_neg_elbo"] and last["train_loss"] < first["train_loss"]
    neg_elbo, iwae = vae.neg_elbo(test.images[:500]), vae.iwae(test.images[:500], k=50)
    assert neg_elbo == pytest.approx(last["test_neg_elbo"], rel=1e-5)  # the same images, the same key
    assert 60 < iwae < neg_elbo  # the importance-weighted bound is tighter
    x = vae.reconstruct(test.images[:8])
    assert x.shape == (8, 28, 28, 1) and vae.encode(test.images[:8]).shape == (8, 20)


def test_a_run_directory_resumes_to_the_uninterrupted_model(tmp_path):
    recipe = genjax.Autoencoder.from_preset("seed003", batch_size=64)
    straight = recipe.fit(GREY, epochs=2, progress=False)
    recipe.fit(GREY, epochs=1, out=tmp_path / "run", progress=False)
    resumed = recipe.fit(GREY, epochs=2, out=tmp_path / "run", resume=True, progress=False)
    assert leaves_equal(resumed.state, straight.state)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert leaves_equal(genjax.load(tmp_path / "run").params, straight.params)


def test_conditional_vae_takes_labels_and_samples_the_class_asked_for(mnist):
    train, _ = mnist
    cvae = genjax.VAE.from_preset("cvae", epochs=1).fit(train.images[:2000], train.labels[:2000], progress=False)
    x = cvae.sample(4, key=0, labels=[7, 7, 1, 1])
    assert x.shape == (4, 28, 28, 1)
    assert not np.allclose(x[0], x[2], atol=1e-3)  # the same z, another label: another image
    with pytest.raises(ValueError, match="conditional"):
        cvae.neg_elbo(train.images[:10])


def test_gan_trains_samples_and_generates_from_given_noise():
    gan = genjax.GAN.from_preset("seed000", batch_size=64).fit(GREY, epochs=1, progress=False)
    z = np.zeros((3, gan.config.latent_dim), np.float32)
    assert gan.generate(z).shape == (3, 28, 28, 1) and gan.sample(3, key=0).shape == (3, 28, 28, 1)
    assert gan.discriminate(GREY[:6]).shape == (6,)


def test_the_sample_strip_loads_runs_of_every_family_and_draws_their_samples(mnist, tmp_path):
    from genjax.studies import sample_strip

    train, _ = mnist
    x, y = train.images[:512], train.labels[:512]
    fitted = {"vae": genjax.VAE.from_preset("seed002", batch_size=128).fit(x, epochs=1, progress=False),
              "cvae": genjax.VAE.from_preset("cvae", batch_size=128).fit(x, y, epochs=1, progress=False),
              "ae": genjax.Autoencoder.from_preset("seed003", batch_size=128).fit(x, epochs=1, progress=False),
              "gan": genjax.GAN.from_preset("seed000", batch_size=128).fit(x, epochs=1, progress=False)}
    dirs = [m.save(tmp_path / name) for name, m in fitted.items()]
    code = sample_strip.cli_script("strip", "sample_strip")[1]([*map(str, dirs), "--out", str(tmp_path / "p/s.png"),
                                                                "--per-row", "4", "--seed", "5"])
    assert code == 0 and (tmp_path / "p/s.png").stat().st_size > 1000
    models = sample_strip.loaded(dirs)
    assert [sample_strip.label(m) for m in models] == ["VAE seed002", "CVAE", "AE, fitted z seed003",
                                                       "GAN seed000"]
    for (name, original), loaded in zip(fitted.items(), models):  # what the strip draws: the trained model's samples
        drawn = sample_strip.draw(loaded, 4, 5)
        fit_to = {"fitted_to": train.images[:sample_strip.FIT_CODES]} if name == "ae" else {}
        want = original.sample(4, 5, **fit_to)
        np.testing.assert_array_equal(drawn, want)
    with pytest.raises(genjax.errors.UsageError, match="model.json"):
        sample_strip.loaded([tmp_path / "p"])


def test_a_binary_pixel_vae_is_scored_by_its_bernoulli_draws(mnist):
    train, _ = mnist
    binary = genjax.VAE.from_preset("seed002", batch_size=128).fit(train.images[:512], epochs=1, progress=False)
    grey = genjax.VAE.from_preset("seed003", batch_size=128).fit(train.images[:512], epochs=1, progress=False)
    means, draws = binary.sample(500, 3), binary.sample(500, 3, binary=True)
    assert set(np.unique(draws)) == {0.0, 1.0} and abs(draws.mean() - means.mean()) < 0.01
    # drawn from these means (independent draws: correlation 0 +- 0.002 over 392,000 pixels; a 1-epoch model is grey)
    assert np.corrcoef(draws.ravel(), means.ravel())[0, 1] > 0.03
    p = np.random.default_rng(0).uniform(size=(200_000,)).astype(np.float32)  # each pixel 1 with probability p
    x = np.asarray(genjax.objectives.vae.bernoulli_draws(jax.random.key(0), p))
    for low in np.arange(0.0, 1.0, 0.1):
        in_bin = (p >= low) & (p < low + 0.1)
        assert x[in_bin].mean() == pytest.approx(p[in_bin].mean(), abs=0.01)
    samples, pixels = binary.scored_samples(500, 3)
    assert pixels == "threshold" and np.array_equal(samples, draws)
    samples, pixels = binary.scored_from(means, 3)  # the means already drawn: the same draws, not decoded again
    assert pixels == "threshold" and np.array_equal(samples, draws)
    samples, pixels = grey.scored_samples(500, 3)
    assert pixels == "float" and np.array_equal(samples, grey.sample(500, 3))
    with pytest.raises(ValueError, match="binary"):
        genjax.VAE.from_preset("seed000", batch_size=128).fit(train.images[:256], epochs=1, progress=False).sample(
            4, binary=True)


BAD = [
    ("float pixels in [0, 255]", lambda: genjax.VAE().fit(GREY * 255, epochs=0), "divide by 255"),
    ("NaN", lambda: genjax.VAE().fit(np.where(GREY > 0.99, np.nan, GREY), epochs=0), "NaN"),
    ("flat vectors", lambda: genjax.VAE().fit(GREY.reshape(256, -1), epochs=0), r"\(N, H, W\)"),
    ("channels first", lambda: genjax.VAE().fit(COLOUR.transpose(0, 3, 1, 2), epochs=0), "transpose"),
    ("labels missing", lambda: genjax.VAE.from_preset("cvae").fit(GREY, epochs=0), "labels="),
    ("labels out of range", lambda: genjax.VAE.from_preset("cvae").fit(GREY, np.full(256, 10), epochs=0), r"\[0, 9\]"),
    ("labels for an unconditional VAE", lambda: genjax.VAE().fit(GREY, np.zeros(256, int), epochs=0), "unconditional"),
    ("a conv VAE on 32x32", lambda: genjax.VAE.from_preset("conv_seed003").fit(COLOUR, epochs=0), "mlp"),
    ("the DCGAN on 32x32", lambda: genjax.GAN.from_preset("dcgan").fit(COLOUR, epochs=0), "28 x 28"),
    ("sampling before training", lambda: genjax.PixelRNN().sample(4), "fit"),
    ("an unknown preset", lambda: genjax.VAE.from_preset("seed999"), "seed002"),
    ("an unknown field", lambda: genjax.VAE(latent_size=3), "latent_dim"),
    ("a batch larger than the data", lambda: genjax.VAE().fit(GREY[:10], epochs=1), "smaller batch"),
    ("resume without a directory", lambda: genjax.VAE().fit(GREY, epochs=1, resume=True), "out="),
    ("loading a directory that is no run", lambda: genjax.load("/"), "model.json"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises_a_value_error_naming_the_fix(case):
    _, call, fix = case
    with pytest.raises(ValueError, match=fix):
        call()


def test_with_a_kl_warm_up_the_test_objective_is_the_one_each_epoch_trained(mnist):
    """Epoch e (from 0) of a W-epoch warm-up trains recon + beta min(1, (e + 1) / W) KL: the test
    metrics name that objective beside the loss at the full beta."""
    train, test = mnist
    vae = genjax.VAE.from_preset("seed002", kl_warmup_epochs=4, beta=2.0).fit(
        train.images[:1024], epochs=2, test_images=test.images[:256], progress=False)
    for epoch, row in enumerate(vae.history):
        weight = 2.0 * (epoch + 1) / 4
        assert row["test_objective"] == pytest.approx(row["test_recon"] + weight * row["test_kl"], rel=1e-5)
        assert row["test_loss"] == pytest.approx(row["test_recon"] + 2.0 * row["test_kl"], rel=1e-5)
    plain = genjax.VAE.from_preset("seed002").fit(train.images[:1024], epochs=1, test_images=test.images[:256],
                                                  progress=False)
    assert "test_objective" not in plain.history[0]  # without a warm-up it is the loss
