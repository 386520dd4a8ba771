"""Library-level training (no CLI): the VAE loss, the pure step, the compiled epoch, on real MNIST."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import data
from genjax.devices import data_mesh, replicate
from genjax.models.mlp_vae import VAE
from genjax.objectives import vae
from genjax.objectives.losses import masked_mean
from genjax.training.step import TrainState, epoch_key, make_epoch, make_train_step, num_batches

BATCH = 128
NUM_TRAIN = 12800  # 100 batches of 128
MODEL = VAE(hidden=(128,), latent_dim=10, image_shape=(28, 28, 1), activation="leaky_relu")


@pytest.fixture(scope="module")
def mnist_subset():
    train, _ = data.load_dataset("mnist")
    return train.images[:NUM_TRAIN]


def _loss_fn(steps_per_epoch=100, beta=1.0, warmup=0, pixels="threshold"):
    return vae.make_vae_loss(MODEL, "bernoulli", pixels, beta, warmup, steps_per_epoch)


def _init(seed: int, tx):
    init_key, state_key = jax.random.split(jax.random.key(seed))
    params = MODEL.init(init_key, jnp.zeros((1, 28, 28, 1)), init_key)["params"]
    return TrainState.create(params, tx, state_key)


def _train(images, seed: int, epochs: int = 2):
    tx = optax.adam(1e-3)
    mesh = data_mesh()
    epoch_fn = make_epoch(make_train_step(_loss_fn(), tx), BATCH, mesh)
    state = replicate(_init(seed, tx), mesh)
    train_data = replicate({"image": jnp.asarray(images)}, mesh)
    run_key = jax.random.key(seed)
    per_epoch = []
    for epoch in range(epochs):
        state, metrics = epoch_fn(state, train_data, epoch_key(run_key, epoch))
        per_epoch.append(jax.device_get(metrics))
    metrics = {k: np.concatenate([m[k] for m in per_epoch]) for k in per_epoch[0]}
    return jax.device_get(state), metrics


@pytest.fixture(scope="module")
def two_runs_seed0(mnist_subset):
    return _train(mnist_subset, 0), _train(mnist_subset, 0)


def test_two_epochs_reduce_the_loss(two_runs_seed0):
    (state, metrics), _ = two_runs_seed0
    loss = metrics["loss"]
    assert loss.shape == (200,)  # 2 epochs x 100 full batches
    assert int(state.step) == 200
    assert np.all(np.isfinite(loss))
    first, last = loss[:20].mean(), loss[-20:].mean()
    print(f"first 20 steps {first:.1f}, last 20 steps {last:.1f}")
    assert last < 0.8 * first, (first, last)
    assert last < 200  # nats per image: well below the ~544 of an untrained decoder
    # The recon and KL metrics add up to the loss (beta = 1, no warm-up).
    np.testing.assert_allclose(metrics["recon"] + metrics["kl"], loss, rtol=1e-5)


def test_same_seed_is_bitwise_reproducible(two_runs_seed0):
    (s1, m1), (s2, m2) = two_runs_seed0
    leaves1, leaves2 = jax.tree_util.tree_leaves(s1), jax.tree_util.tree_leaves(s2)
    assert len(leaves1) == len(leaves2)
    for a, b in zip(leaves1, leaves2):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for k in m1:
        np.testing.assert_array_equal(m1[k], m2[k])


def test_different_seed_gives_different_params_and_metrics(mnist_subset, two_runs_seed0):
    (s0, m0), _ = two_runs_seed0
    s1, m1 = _train(mnist_subset, 1, epochs=1)
    assert not np.array_equal(m0["loss"][:100], m1["loss"])
    kernel0 = np.asarray(s0.params["encoder"]["hidden_0"]["kernel"])
    kernel1 = np.asarray(s1.params["encoder"]["hidden_0"]["kernel"])
    assert not np.allclose(kernel0, kernel1)


def test_gradients_are_finite_and_reach_every_parameter(mnist_subset):
    tx = optax.adam(1e-3)
    state = _init(0, tx)
    batch = {"image": jnp.asarray(mnist_subset[:BATCH])}
    loss_fn = _loss_fn()
    (loss, (_, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, {}, batch, jax.random.key(3), jnp.int32(0)
    )
    assert np.isfinite(float(loss)) and float(loss) > 0
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), f"zero gradient for {jax.tree_util.keystr(path)}"
    # The gradient is the derivative: check it along a random direction by central differences.
    leaves, treedef = jax.tree_util.tree_flatten(state.params)
    keys = jax.random.split(jax.random.key(4), len(leaves))
    direction = treedef.unflatten([jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])
    eps = 1e-3

    @jax.jit
    def shifted_loss(t):
        p = jax.tree_util.tree_map(lambda a, d: a + t * d, state.params, direction)
        return loss_fn(p, {}, batch, jax.random.key(3), jnp.int32(0))[0]

    def at(t):
        return float(shifted_loss(jnp.float32(t)))

    numeric = (at(eps) - at(-eps)) / (2 * eps)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction)))
    assert analytic == pytest.approx(numeric, rel=0.03), (analytic, numeric)


def test_vae_loss_applies_the_kl_warmup_by_epoch(mnist_subset):
    state = _init(0, optax.adam(1e-3))
    batch = {"image": jnp.asarray(mnist_subset[:64])}
    loss_fn = jax.jit(_loss_fn(steps_per_epoch=10, beta=2.0, warmup=4))
    for step, weight in ((0, 0.5), (9, 0.5), (10, 1.0), (25, 1.5), (39, 2.0), (1000, 2.0)):
        loss, (_, m) = loss_fn(state.params, {}, batch, jax.random.key(0), jnp.int32(step))
        expected = float(m["recon"]) + weight * float(m["kl"])
        assert float(loss) == pytest.approx(expected, rel=1e-5), (step, weight)
    assert float(m["kl"]) > 0


def test_make_epoch_equals_a_python_loop_over_the_same_batches(mnist_subset):
    images = jnp.asarray(mnist_subset[:1000])  # 10 batches of 100
    tx = optax.adam(1e-3)
    step = make_train_step(_loss_fn(pixels="stochastic"), tx)
    key = jax.random.key(7)
    epoch_fn = make_epoch(step, 100, data_mesh())
    state_a, metrics = epoch_fn(_init(0, tx), {"image": images}, key)
    assert metrics["loss"].shape == (num_batches(1000, 100),) == (10,)

    state_b = _init(0, tx)
    order = jax.random.permutation(key, 1000).reshape(10, 100)
    jstep = jax.jit(step)
    losses_b = []
    for idx in order:
        state_b, m = jstep(state_b, {"image": images[idx]})
        losses_b.append(float(m["loss"]))
    assert int(state_a.step) == int(state_b.step) == 10
    np.testing.assert_allclose(np.asarray(metrics["loss"]), losses_b, rtol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(state_a.params), jax.tree_util.tree_leaves(state_b.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)


def test_step_keys_depend_on_the_step_only():
    state = TrainState.create({"w": jnp.zeros(3)}, optax.sgd(0.1), jax.random.key(5))
    k0 = jax.random.key_data(state.step_key())
    k1 = jax.random.key_data(state.replace(step=state.step + 1).step_key())
    assert not np.array_equal(k0, k1)
    np.testing.assert_array_equal(k0, jax.random.key_data(TrainState.create({"w": jnp.ones(3)}, optax.sgd(0.1), jax.random.key(5)).step_key()))
    e = [jax.random.key_data(epoch_key(jax.random.key(5), i)) for i in (0, 1, 0)]
    assert not np.array_equal(e[0], e[1])
    np.testing.assert_array_equal(e[0], e[2])


def test_an_epoch_sees_every_example_once_with_the_last_batch_padded_and_masked():
    n, batch_size = 1030, 100

    def recording_step(state, batch):
        mask = batch.get("mask", jnp.ones(batch_size))
        return state.replace(step=state.step + 1), {"idx": batch["idx"], "mask": mask}

    state = TrainState.create({"w": jnp.zeros(())}, optax.sgd(0.1), jax.random.key(0))
    epoch_fn = make_epoch(recording_step, batch_size, data_mesh())
    state, m = epoch_fn(state, {"idx": jnp.arange(n)}, jax.random.key(1))
    nb = num_batches(n, batch_size)
    assert nb == 11 and int(state.step) == nb and m["idx"].shape == (nb, batch_size)
    idx, mask = np.asarray(m["idx"]).ravel(), np.asarray(m["mask"]).ravel()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    real = idx[mask == 1]
    np.testing.assert_array_equal(np.sort(real), np.arange(n))  # each example exactly once
    assert np.all(mask[: n] == 1) and np.all(mask[n:] == 0)  # only the last batch is padded
    assert not np.array_equal(real, np.arange(n))  # shuffled
    # Another epoch key, another order.
    _, m2 = epoch_fn(TrainState.create({"w": jnp.zeros(())}, optax.sgd(0.1), jax.random.key(0)),
                     {"idx": jnp.arange(n)}, jax.random.key(2))
    assert not np.array_equal(np.asarray(m2["idx"]).ravel()[:n], real)


def test_masked_mean_ignores_padding():
    values = jnp.array([1.0, 2.0, 3.0, 100.0])
    assert float(masked_mean(values, {"mask": jnp.array([1.0, 1.0, 1.0, 0.0])})) == pytest.approx(2.0)
    assert float(masked_mean(values, {"image": values})) == pytest.approx(26.5)  # no mask: plain mean
    assert float(masked_mean(values, {"mask": jnp.zeros(4)})) == 0.0  # an all-padding batch is finite


def test_vae_loss_ignores_padded_examples(mnist_subset):
    state = _init(0, optax.adam(1e-3))
    loss_fn = _loss_fn(pixels="threshold")
    images = jnp.asarray(mnist_subset[:64])
    mask = jnp.concatenate([jnp.ones(40), jnp.zeros(24)])
    padded = {"image": images.at[40:].set(255), "mask": mask}  # garbage in the padded rows
    full, _ = loss_fn(state.params, {}, padded, jax.random.key(0), jnp.int32(0))
    clean, _ = loss_fn(state.params, {}, {"image": images.at[40:].set(0), "mask": mask}, jax.random.key(0), jnp.int32(0))
    assert float(full) == pytest.approx(float(clean), rel=1e-5)
    grads = jax.grad(lambda p: loss_fn(p, {}, padded, jax.random.key(0), jnp.int32(0))[0])(state.params)
    grads_clean = jax.grad(lambda p: loss_fn(p, {}, {"image": images.at[40:].set(0), "mask": mask}, jax.random.key(0), jnp.int32(0))[0])(state.params)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(grads_clean)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_the_run_key_survives_the_donated_state():
    # make_epoch donates its state; the key the state was made from must stay usable
    # (the epoch keys are derived from it after every epoch).
    for impl in ("threefry2x32", "rbg"):
        key = jax.random.key(0, impl=impl)
        tx = optax.sgd(0.1)
        state = TrainState.create({"w": jnp.zeros(3)}, tx, key)

        def loss_fn(params, model_state, batch, k, step):
            return masked_mean(jnp.sum((batch["x"] - params["w"]) ** 2, -1), batch), (model_state, {})

        epoch = make_epoch(make_train_step(loss_fn, tx), 4, data_mesh())
        batch = {"x": jnp.ones((8, 3))}
        for e in range(2):
            state, _ = epoch(state, batch, epoch_key(key, e))
        assert int(state.step) == 4 and float(state.params["w"][0]) > 0
