"""The GAN family: its losses, the two updates of its step, BatchNorm in G, resume, and devices."""

from __future__ import annotations

import dataclasses
import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import script_json_on_devices
from genjax.devices import data_mesh, replicate
from genjax.models.dcgan import DCDiscriminator
from genjax.objectives import gan, losses
from genjax.presets import GAN_PRESETS
from genjax.runs.checkpoint import Checkpointer
from genjax.runs.fit import fit
from genjax.training import adversarial
from genjax.training.optim import make_optimizer
from genjax.training.step import make_epoch

RBG = "rbg"  # the presets' key implementation


def host(tree):
    return jax.tree.map(np.array, jax.device_get(tree))


def build(preset: str, leak: bool = False, seed: int = 0, width: int | None = None):
    """(G, D, tx, latent_dim, state) of a preset (``width`` overrides its width, for speed)."""
    config = dataclasses.replace(GAN_PRESETS[preset], hidden=width or GAN_PRESETS[preset].hidden)
    gen, disc = gan.build_models(config)
    tx = make_optimizer(config.optimizer, config.lr, config.b1)
    state = adversarial.init_state(gen, disc, tx, tx, jax.random.key(seed, impl=RBG), config.latent_dim, (28, 28, 1), leak)
    return gen, disc, tx, config.latent_dim, state


def images(n: int, seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1)), jnp.uint8)


def test_losses_against_hand_computed_values():
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    real, fake = jnp.array([0.0, 2.0, -3.0]), jnp.array([0.0, -1.0, 4.0])
    np.testing.assert_allclose(losses.discriminator_loss(real, fake),
                               [2 * math.log(2), sp(-2.0) + sp(-1.0), sp(3.0) + sp(4.0)], rtol=1e-6)
    sigma = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    np.testing.assert_allclose(losses.generator_loss_non_saturating(fake),
                               [-math.log(sigma(x)) for x in (0.0, -1.0, 4.0)], rtol=1e-6)
    np.testing.assert_allclose(losses.generator_loss_saturating(fake),
                               [math.log(1 - sigma(x)) for x in (0.0, -1.0, 4.0)], rtol=1e-6)
    # Stable where the probability form overflows or takes log 0.
    assert np.all(np.isfinite(losses.discriminator_loss(jnp.array([-200.0]), jnp.array([200.0]))))
    np.testing.assert_allclose(losses.generator_loss_non_saturating(jnp.array([-100.0])), [100.0], rtol=1e-6)


def test_dcgan_discriminator_layer_norm_normalizes_each_position_of_each_image_on_its_own():
    disc = DCDiscriminator(8, norm="layer")
    x = jnp.asarray(images(6), jnp.float32) / 255.0
    variables = disc.init(jax.random.key(1, impl=RBG), x)
    logits, inter = disc.apply(variables, x, capture_intermediates=True)
    h = np.asarray(inter["intermediates"]["DownConv_1"]["__call__"][0], np.float64)  # (6, 7, 7, 16)
    normed = np.asarray(inter["intermediates"]["LayerNorm_0"]["__call__"][0])  # scale 1, shift 0 at init
    reference = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(normed, reference, rtol=1e-3, atol=1e-4)
    # No batch statistics: an image's logit does not depend on the rest of its batch.
    np.testing.assert_allclose(disc.apply(variables, x[2:3]), logits[2:3], rtol=1e-5, atol=1e-6)
    plain = DCDiscriminator(8, norm="none").init(jax.random.key(1, impl=RBG), x)["params"]
    assert "LayerNorm_0" not in plain and "BatchStatsNorm_0" not in plain and "bias" in plain["DownConv_1"]
    with pytest.raises(ValueError, match="norm must be one of"):
        DCDiscriminator(8, norm="group").init(jax.random.key(1, impl=RBG), x)


def test_dcgan_discriminator_batch_norm_uses_the_real_rows_statistics_of_the_batch_it_judges():
    disc = DCDiscriminator(8, hidden=32)  # the preset's D: batch norm after the convolution and the hidden layer
    x = jnp.asarray(images(8), jnp.float32) / 255.0
    variables = disc.init(jax.random.key(1, impl=RBG), x)
    assert "bias" not in variables["params"]["DownConv_1"] and "bias" not in variables["params"]["Dense_0"]
    mask = jnp.array([1.0] * 5 + [0.0] * 3)
    logits, inter = disc.apply(variables, x, mask, capture_intermediates=True)
    h = np.asarray(inter["intermediates"]["DownConv_1"]["__call__"][0], np.float64)[:5]  # the real rows
    scale = np.asarray(variables["params"]["BatchStatsNorm_0"]["scale"])  # N(1, 0.02), as the paper's
    assert 0 < np.abs(scale - 1).max() < 0.1
    reference = (h - h.mean((0, 1, 2))) / np.sqrt(h.var((0, 1, 2)) + 1e-5) * scale
    normed = np.asarray(inter["intermediates"]["BatchStatsNorm_0"]["__call__"][0])[:5]
    np.testing.assert_allclose(normed, reference, rtol=1e-3, atol=1e-4)
    # Padded rows stay out of the statistics: the real rows' logits are those of the 5 alone.
    np.testing.assert_allclose(logits[:5], disc.apply(variables, x[:5]), rtol=1e-5, atol=1e-6)
    # Without a mask every row counts, so a logit depends on its batch-mates.
    assert not np.allclose(disc.apply(variables, x)[:5], logits[:5], rtol=1e-3)


@pytest.mark.parametrize("preset", ["seed000", "dcgan"])
def test_d_update_lowers_d_loss_and_leaves_g_alone_and_the_reverse(preset):
    gen, disc, _, latent_dim, state = build(preset, width=16 if preset == "dcgan" else None)
    # A small plain gradient step must descend (Adam's first step is lr * sign(g)). The DCGAN's
    # LayerNorm in D divides by the small spread of its N(0, 0.02)-weighted inputs: steeper, a smaller step.
    tx = optax.sgd(1e-2 if preset == "seed000" else 1e-3)
    state = state.replace(opt_state={"gen": tx.init(state.params["gen"]), "disc": tx.init(state.params["disc"])})
    batch = {"image": images(64), "mask": jnp.ones(64)}
    key = jax.random.key(3, impl=RBG)
    d_update = jax.jit(adversarial.make_d_update(gen, disc, tx, latent_dim))
    g_update = jax.jit(adversarial.make_g_update(gen, disc, tx, latent_dim))

    after_d, m0 = d_update(state, batch, key)
    _, m1 = d_update(after_d, batch, key)  # the same real batch and the same G(z)
    assert float(m1["d_loss"]) < float(m0["d_loss"])
    jax.tree.map(np.testing.assert_array_equal, host(after_d.params["gen"]), host(state.params["gen"]))
    jax.tree.map(np.testing.assert_array_equal, host(after_d.model_state), host(state.model_state))
    assert any(np.any(a != b) for a, b in zip(jax.tree.leaves(host(after_d.params["disc"])),
                                               jax.tree.leaves(host(state.params["disc"]))))

    after_g, g0 = g_update(state, batch, key)
    _, g1 = g_update(after_g, batch, key)  # the same z
    assert float(g1["g_loss"]) < float(g0["g_loss"])
    jax.tree.map(np.testing.assert_array_equal, host(after_g.params["disc"]), host(state.params["disc"]))
    if preset == "dcgan":  # G's BatchNorm statistics move in G's update
        moved = [np.max(np.abs(a - b)) for a, b in zip(jax.tree.leaves(host(after_g.model_state["gen"])),
                                                       jax.tree.leaves(host(state.model_state["gen"])))]
        assert min(moved) > 0


def test_the_step_is_d_then_g_against_the_updated_d():
    gen, disc, tx, latent_dim, state = build("seed000")
    batch = {"image": images(32), "mask": jnp.ones(32)}
    step = jax.jit(adversarial.make_gan_step(gen, disc, tx, tx, latent_dim))
    new, metrics = step(state, batch)
    k_d, k_g = jax.random.split(state.step_key())
    by_hand, d_m = jax.jit(adversarial.make_d_update(gen, disc, tx, latent_dim))(state, batch, k_d)
    by_hand, g_m = jax.jit(adversarial.make_g_update(gen, disc, tx, latent_dim))(by_hand, batch, k_g)
    # (a step moves each parameter by about lr = 1e-3; the tolerance is for float reordering)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), host(new.params),
                 host(by_hand.params))
    assert int(new.step) == 1
    np.testing.assert_allclose(metrics["loss"], d_m["d_loss"] + g_m["g_loss"], rtol=1e-6)


def test_seed_gradient_leak_adds_g_losses_d_gradient_into_the_next_d_update():
    gen, disc, tx, latent_dim, leak_state = build("seed000", leak=True)
    _, _, _, _, clean_state = build("seed000", leak=False)
    batch = {"image": images(32), "mask": jnp.ones(32)}
    leaky = jax.jit(adversarial.make_gan_step(gen, disc, tx, tx, latent_dim, d_grad_leak=True))
    clean = jax.jit(adversarial.make_gan_step(gen, disc, tx, tx, latent_dim))
    s1, _ = leaky(leak_state, batch)
    c1, _ = clean(clean_state, batch)
    # Nothing leaks into the first update: both runs agree after one step.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), host(s1.params), host(c1.params))
    # What is carried is d/dD of G's loss on G's noise, at the updated D.
    k_g = jax.random.split(leak_state.step_key())[1]
    z = jax.random.normal(k_g, (32, latent_dim))
    expected = jax.grad(lambda d: jnp.mean(losses.generator_loss_non_saturating(
        disc.apply({"params": d}, gen.apply({"params": leak_state.params["gen"]}, z)))))(s1.params["disc"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
                 host(s1.model_state["d_grad_leak"]), host(expected))
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(expected)) > 0
    s2, _ = leaky(s1, batch)
    c2, _ = clean(c1, batch)
    assert not np.allclose(host(s2.params["disc"])["out"]["kernel"], host(c2.params["disc"])["out"]["kernel"])


def test_generator_batchnorm_keeps_padding_out_of_its_statistics_and_samples_with_running_averages():
    gen, _, _, latent_dim, state = build("dcgan", width=8)
    variables = gan.generator_variables(state)
    z = jax.random.normal(jax.random.key(0), (8, latent_dim))
    mask = jnp.array([1.0] * 5 + [0.0] * 3)
    _, masked = gen.apply(variables, z, train=True, mask=mask, mutable=["batch_stats"])
    _, first5 = gen.apply(variables, z[:5], train=True, mutable=["batch_stats"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), host(masked), host(first5))
    _, all8 = gen.apply(variables, z, train=True, mutable=["batch_stats"])
    assert not np.allclose(host(all8)["batch_stats"]["BatchNorm_0"]["mean"],
                           host(first5)["batch_stats"]["BatchNorm_0"]["mean"])
    # Evaluation mode uses the running averages: an image does not depend on its batch-mates.
    one = gan.generate(gen, variables, z[:1])
    np.testing.assert_allclose(gan.generate(gen, variables, z)[:1], one, rtol=1e-5, atol=1e-6)
    assert float(jnp.min(one)) >= 0 and float(jnp.max(one)) <= 1


@pytest.mark.parametrize("leak", [False, True], ids=["cleared", "seed leak"])
def test_resume_equals_a_straight_run_with_batchnorm(tmp_path, leak):
    gen, disc, tx, latent_dim, _ = build("dcgan", leak=leak, width=8)
    mesh = data_mesh()
    data = replicate({"image": images(200)}, mesh)  # 4 batches of 64, the last one padded
    epoch_fn = make_epoch(adversarial.make_gan_step(gen, disc, tx, tx, latent_dim, d_grad_leak=leak), 64, mesh)
    run_key = jax.random.key(7, impl=RBG)
    evaluate = lambda s: {}  # noqa: E731
    fresh = lambda: replicate(build("dcgan", leak=leak, width=8)[4], mesh)  # noqa: E731

    straight, _ = fit(fresh(), epoch_fn, data, run_key, 2, evaluate, Checkpointer(tmp_path / "a"), {}, tmp_path,
                      progress=False)
    ckpt = Checkpointer(tmp_path / "b")
    fit(fresh(), epoch_fn, data, run_key, 1, evaluate, ckpt, {}, tmp_path, progress=False)
    restored, meta = ckpt.restore(fresh())
    resumed, _ = fit(restored, epoch_fn, data, run_key, 2, evaluate, ckpt, {}, tmp_path, meta["history"], False)
    jax.tree.map(np.testing.assert_array_equal, host(resumed), host(straight))
    assert int(resumed.step) == 8


@pytest.mark.slow
def test_eight_devices_match_one():
    script = textwrap.dedent("""
        import json, jax, jax.numpy as jnp, numpy as np
        from genjax.training import adversarial
        from genjax.models.dcgan import DCDiscriminator, DCGenerator
        from genjax.training.optim import make_optimizer
        from genjax.devices import data_mesh, replicate
        from genjax.training.step import epoch_key, make_epoch
        gen, disc, latent_dim = DCGenerator(8), DCDiscriminator(8), 100
        tx = make_optimizer("adam", 2e-4, 0.5)
        state = adversarial.init_state(gen, disc, tx, tx, jax.random.key(0, impl="rbg"), latent_dim, (28, 28, 1))
        images = lambda n: jnp.asarray(np.random.default_rng(0).integers(0, 256, (n, 28, 28, 1)), jnp.uint8)
        mesh = data_mesh()
        epoch_fn = make_epoch(adversarial.make_gan_step(gen, disc, tx, tx, latent_dim), 64, mesh)
        state, metrics = epoch_fn(replicate(state, mesh), replicate({"image": images(200)}, mesh),
                                  epoch_key(jax.random.key(1, impl="rbg"), 0))
        out = {"devices": mesh.size, "d_loss": np.asarray(metrics["d_loss"]).tolist(),
               "g_loss": np.asarray(metrics["g_loss"]).tolist(),
               "leaves": [np.asarray(x).ravel()[:50].tolist() for x in jax.tree.leaves(
                   {"p": state.params, "m": state.model_state})]}
        print(json.dumps(out))
    """)
    one, eight = script_json_on_devices(script, 1), script_json_on_devices(script, 8)
    assert (one["devices"], eight["devices"]) == (1, 8)
    np.testing.assert_allclose(eight["d_loss"], one["d_loss"], rtol=1e-4)
    np.testing.assert_allclose(eight["g_loss"], one["g_loss"], rtol=1e-4)
    for a, b in zip(eight["leaves"], one["leaves"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
