"""genjax.prng: under vmap over keys, each key draws what it draws alone, for every key implementation.

JAX's own batching rule for ``rbg`` keys (the presets' implementation) draws a
whole vmapped batch from the first key; these tests would fail with plain
``jax.random`` calls under ``rbg``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import script_json_on_devices
from genjax import prng

IMPLS = ["rbg", "threefry2x32"]
DRAWS = {
    "normal": lambda k: prng.normal(k, (3, 5)),
    "uniform": lambda k: prng.uniform(k, (7,)),
    "bernoulli": lambda k: prng.bernoulli(k, jnp.full((6,), 0.4)),
    "permutation": lambda k: prng.permutation(k, 20),
    "bits": lambda k: prng.bits(k, (4, 3)),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", DRAWS)
def test_vmapped_draws_equal_draws_one_key_at_a_time(impl, name):
    draw = DRAWS[name]
    keys = jax.random.split(jax.random.key(0, impl=impl), 6)
    alone = np.stack([np.asarray(draw(k)) for k in keys])
    np.testing.assert_array_equal(jax.vmap(draw)(keys), alone)
    np.testing.assert_array_equal(jax.jit(jax.vmap(draw))(keys), alone)
    # Nested vmap (K models x images), and a key shared by the whole batch.
    grid = jax.random.split(jax.random.key(1, impl=impl), (2, 3))
    nested = jax.vmap(jax.vmap(draw))(grid)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(nested[i, j], draw(grid[i, j]))
    shared = jax.vmap(lambda _: draw(keys[0]))(jnp.arange(4))
    np.testing.assert_array_equal(shared, np.broadcast_to(alone[0], shared.shape))
    if name != "permutation":
        assert len({np.asarray(a).tobytes() for a in alone}) == len(keys)  # different keys, different draws


@pytest.mark.parametrize("impl", IMPLS)
def test_draws_pass_through_grad_and_match_jax_random(impl):
    keys = jax.random.split(jax.random.key(2, impl=impl), 4)
    loss = lambda w, k: jnp.sum(w * prng.normal(k, (3,)))  # noqa: E731
    grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(jnp.ones(3), keys)
    np.testing.assert_array_equal(grads, np.stack([np.asarray(jax.random.normal(k, (3,))) for k in keys]))
    k = keys[0]
    np.testing.assert_array_equal(prng.uniform(k, (5,)), jax.random.uniform(k, (5,)))
    np.testing.assert_array_equal(prng.bernoulli(k, jnp.full((5,), 0.3)), jax.random.bernoulli(k, 0.3, (5,)))
    np.testing.assert_array_equal(prng.permutation(k, 9), jax.random.permutation(k, 9))
    # normal and uniform are made from the words here (the transform outside the per-key loop): bit for
    # bit jax.random's, over many draws (the tails of erf^-1 included), and jax.random's in float64.
    for shape in [(200, 20), (7, 3, 5)]:
        np.testing.assert_array_equal(prng.normal(k, shape), jax.random.normal(k, shape))
        np.testing.assert_array_equal(prng.uniform(k, shape), jax.random.uniform(k, shape))
    np.testing.assert_array_equal(prng.bits(k, (6,)), jax.random.bits(k, (6,), jnp.uint32))
    np.testing.assert_array_equal(prng.normal(k, (4,), jnp.bfloat16), jax.random.normal(k, (4,), jnp.bfloat16))


EVAL_SCRIPT = """
import json, jax, jax.numpy as jnp
from genjax.objectives import vae
from genjax.models.mlp_vae import VAE
from genjax.devices import data_mesh
model = VAE(hidden=(32,), latent_dim=4, image_shape=(8, 8, 1))
params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jax.random.key(1))["params"]
x = jax.random.bernoulli(jax.random.key(2), 0.3, (40, 8, 8, 1)).astype(jnp.float32)
key = jax.random.key(3, impl="rbg")
mesh = data_mesh()
out = {"devices": mesh.size}
for name, m in (("mesh", mesh), ("none", None)):
    ev = vae.evaluate(model, params, x, key, "bernoulli", chunk=5, mesh=m)  # 8 devices: chunks of 8
    iw = vae.iwae_nll(model, params, x, key, 20, 5, m)
    out[name] = [float(ev["neg_elbo"]), float(iw["nll_iwae"]), float(iw["neg_elbo"])]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_evaluation_does_not_depend_on_the_device_count():
    results = {devices: script_json_on_devices(EVAL_SCRIPT, devices) for devices in (1, 8)}
    assert results[8]["devices"] == 8
    reference = results[1]["none"]
    for got in (results[1]["mesh"], results[8]["mesh"], results[8]["none"]):
        np.testing.assert_allclose(got, reference, rtol=1e-5)
