"""genjax.training.sweep: K VAEs in one vmapped program, with the presets' rbg keys and the real VAE step."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import prng
from genjax.devices import data_mesh, replicate
from genjax.models.mlp_vae import VAE
from genjax.objectives import vae
from genjax.presets import PRESETS
from genjax.recipes import vae as vae_recipe
from genjax.runs.checkpoint import Checkpointer
from genjax.runs.fit import fit
from genjax.training import sweep
from genjax.training.optim import make_optimizer
from genjax.training.step import TrainState, epoch_key, make_epoch

MODEL = VAE(hidden=(32,), latent_dim=4, image_shape=(8, 8, 1), activation="leaky_relu")
BATCH, N = 32, 200
PRNG = PRESETS["seed002"].prng  # what users run: rbg
STEPS = -(-N // BATCH)


def host(tree):
    return jax.tree.map(np.array, jax.device_get(tree))


def close(a, b, rtol=1e-4, atol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), host(a), host(b))


def images(seed=1):
    return {"image": jax.random.randint(jax.random.key(seed), (N, 8, 8, 1), 0, 256).astype(jnp.uint8)}


STEP_FOR = vae_recipe.make_vae_step(MODEL, "bernoulli", "stochastic", "adam", STEPS)
HPARAMS = [dict(lr=1e-3, beta=0.5, kl_warmup_epochs=0), dict(lr=3e-3, beta=1.0, kl_warmup_epochs=2),
           dict(lr=1e-2, beta=2.0, kl_warmup_epochs=0)]


def state(seed):
    keys = prng.run_keys(seed, PRNG, vae.KEY_NAMES)
    return TrainState.create(vae.init_params(MODEL, keys["init"], (8, 8, 1)), make_optimizer("adam", 1.0), keys["state"])


def run_alone(seed, hp, epochs, run_key):
    mesh = data_mesh()
    epoch_fn = make_epoch(STEP_FOR(hp), BATCH, mesh)
    s, data = replicate(state(seed), mesh), replicate(images(), mesh)
    for e in range(epochs):
        s, _ = epoch_fn(s, data, epoch_key(run_key, e))
    return host(s)


def sweep_epoch():
    return make_epoch(sweep.make_sweep_step(STEP_FOR), BATCH, data_mesh())


def run_sweep(seeds, hparams, epochs, run_key):
    mesh = data_mesh()
    s = replicate(sweep.stack([state(k) for k in seeds], hparams), mesh)
    data, epoch_fn = replicate(images(), mesh), sweep_epoch()
    for e in range(epochs):
        s, metrics = epoch_fn(s, data, epoch_key(run_key, e))
    return s, host(metrics)


def test_k_vmapped_models_equal_k_separate_runs_with_rbg_keys():
    run_key = jax.random.key(7, impl=PRNG)
    stacked, metrics = run_sweep([0, 1, 2], HPARAMS, 2, run_key)
    for k, hp in enumerate(HPARAMS):
        close(sweep.member(stacked, k), run_alone(k, hp, 2, run_key))
    # Per-model metrics, never averaged: loss = recon + w KL with each model's own beta (epoch 2).
    for k, hp in enumerate(HPARAMS):
        weight = hp["beta"] * (min(1.0, 2 / hp["kl_warmup_epochs"]) if hp["kl_warmup_epochs"] else 1.0)
        np.testing.assert_allclose(metrics[f"loss_{k}"], metrics[f"recon_{k}"] + weight * metrics[f"kl_{k}"], rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], np.mean([metrics[f"loss_{k}"] for k in range(3)], axis=0), rtol=1e-5)


def test_models_of_one_sweep_draw_their_own_noise():
    run_key = jax.random.key(7, impl=PRNG)
    hp = [HPARAMS[0]] * 3
    # Same initial parameters, same hyperparameters: only the state keys differ (models 0 and 1).
    states = [state(0), state(0), state(0)]
    states[1] = states[1].replace(key=jnp.copy(jax.random.key_data(jax.random.key(99, impl=PRNG))))
    s = sweep.stack(states, hp)
    s, m = sweep_epoch()(s, replicate(images(), data_mesh()), epoch_key(run_key, 0))
    p = [sweep.member(s, k).params for k in range(3)]
    jax.tree.map(np.testing.assert_array_equal, p[0], p[2])  # same key: same noise, same result
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p[0]), jax.tree.leaves(p[1])))
    assert diff > 1e-4
    assert not np.allclose(m["recon_0"], m["recon_1"])


def test_a_diverging_model_is_contained_and_reported(tmp_path):
    run_key = jax.random.key(7, impl=PRNG)
    bad = dict(HPARAMS[1], beta=float("nan"))
    three, m3 = run_sweep([0, 1, 2], [HPARAMS[0], bad, HPARAMS[2]], 2, run_key)
    two, m2 = run_sweep([0, 2], [HPARAMS[0], HPARAMS[2]], 2, run_key)
    np.testing.assert_array_equal(np.asarray(three.alive), [True, False, True])
    assert np.isnan(m3["loss_1"]).all() and np.isfinite(m3["loss"]).all()
    close(sweep.member(three, 0), sweep.member(two, 0), rtol=0, atol=0)
    close(sweep.member(three, 2), sweep.member(two, 1), rtol=0, atol=0)
    np.testing.assert_array_equal(m3["loss_2"], m2["loss_1"])
    # fit keeps going while one model lives, and stops (exit 1 in a script) when none does.
    mesh = data_mesh()
    s = replicate(sweep.stack([state(0), state(1)], [HPARAMS[0], bad]), mesh)
    ckpt = Checkpointer(tmp_path / "ckpt")
    s, history = fit(s, sweep_epoch(), replicate(images(), mesh), run_key, 1, lambda s: {}, ckpt, {}, tmp_path,
                     progress=False)
    ckpt.close()
    assert history[0]["train_alive"] == 1.0 and np.isnan(history[0]["train_loss_1"])
    from genjax.runs.fit import NonFiniteLoss
    s = replicate(sweep.stack([state(1)], [bad]), mesh)
    with pytest.raises(NonFiniteLoss):
        ckpt = Checkpointer(tmp_path / "ckpt2")
        try:
            fit(s, sweep_epoch(), replicate(images(), mesh), run_key, 1, lambda s: {}, ckpt, {}, tmp_path,
                progress=False)
        finally:
            ckpt.close()


def test_resumed_sweep_equals_a_straight_one_and_a_member_continues_alone(tmp_path):
    run_key = jax.random.key(7, impl=PRNG)
    mesh = data_mesh()
    data = replicate(images(), mesh)
    fresh = lambda: replicate(sweep.stack([state(k) for k in range(3)], HPARAMS), mesh)  # noqa: E731
    straight, _ = run_sweep([0, 1, 2], HPARAMS, 3, run_key)

    ckpt = Checkpointer(tmp_path / "ckpt")
    _, history = fit(fresh(), sweep_epoch(), data, run_key, 1, lambda s: {}, ckpt, {}, tmp_path, progress=False)
    ckpt.close()
    ckpt = Checkpointer(tmp_path / "ckpt")
    restored, meta = ckpt.restore(fresh())
    after_one = sweep.member(restored, 1)  # a host copy: fit donates the restored state
    resumed, _ = fit(restored, sweep_epoch(), data, run_key, 3, lambda s: {}, ckpt, {}, tmp_path, history,
                     progress=False)
    ckpt.close()
    jax.tree.map(np.testing.assert_array_equal, host(resumed), host(straight))

    # Model 1 taken out of the checkpoint after epoch 1 continues alone to the sweep's result.
    alone = replicate(after_one, mesh)
    epoch_fn = make_epoch(STEP_FOR(sweep.member_hparams(straight, 1)), BATCH, mesh)
    for e in (1, 2):
        alone, _ = epoch_fn(alone, data, epoch_key(run_key, e))
    close(alone, sweep.member(straight, 1))


def test_groups_split_by_static_settings():
    base = PRESETS["seed002"]
    configs = [dataclasses.replace(base, latent_dim=d, beta=b) for d, b in [(2, 1.0), (10, 1.0), (2, 4.0), (10, 0.5)]]
    assert sweep.groups(configs, varying=("beta", "lr", "seed")) == [[0, 2], [1, 3]]
    rows = sweep.model_rows({"epoch": 1, "train_loss_0": 1.0, "train_loss_1": 2.0, "train_loss": 1.5}, 2)
    assert rows == [{"epoch": 1, "train_loss": 1.0}, {"epoch": 1, "train_loss": 2.0}]


def test_active_units_count_the_dimensions_whose_posterior_mean_varies():
    """Burda et al.'s A_u = Var_x(E_q[z_u]) > 0.01 on a constructed set of posterior means."""
    rng = np.random.default_rng(0)
    n = 5000
    means = np.zeros((n, 6), np.float32)
    means[:, 0] = rng.normal(0, 1.0, n)      # var 1: active
    means[:, 1] = rng.normal(3, 0.2, n)      # var 0.04: active (a shifted mean does not matter)
    means[:, 2] = rng.normal(0, 0.05, n)     # var 0.0025: inactive
    means[:, 3] = 7.0                        # constant: inactive
    means[:, 4] = rng.choice([-0.2, 0.2], n) # var 0.04: active
    means[:, 5] = rng.normal(0, 0.08, n)     # var 0.0064: inactive
    assert int(vae.active_units(jnp.asarray(means))) == 3
    assert int(vae.active_units(jnp.asarray(means), threshold=0.001)) == 5
