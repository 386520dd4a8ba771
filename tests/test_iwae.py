"""The importance-weighted bound: on a toy model with a known log p(x), and on a genjax VAE."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import losses, vae
from genjax.models.mlp_vae import VAE

# Toy linear-Gaussian model: p(z) = N(0, 1), p(x | z) = N(x; z, S2), so p(x) = N(x; 0, 1 + S2)
# and p(z | x) = N(x / (1 + S2), S2 / (1 + S2)). q(z | x) is deliberately wrong in mean and variance.
S2 = 0.25
XS = np.array([-2.0, 0.5, 3.0], np.float32)


def _q(x):
    return 0.6 * x + 0.2, np.full_like(x, 0.4)  # mean, variance


def _true_log_px(x):
    return -0.5 * (math.log(2 * math.pi * (1 + S2)) + x**2 / (1 + S2))


def _true_elbo(x):
    """log p(x) - KL(q(z|x) || p(z|x)), in closed form."""
    qm, qv = _q(x)
    pm, pv = x / (1 + S2), S2 / (1 + S2)
    kl = 0.5 * (np.log(pv / qv) + (qv + (qm - pm) ** 2) / pv - 1)
    return _true_log_px(x) - kl


def _toy_log_weights(key, k: int, replicates: int) -> jax.Array:
    """log w = log p(x|z) + log p(z) - log q(z|x), z ~ q: shape (k, replicates, len(XS))."""
    qm, qv = _q(XS)
    mean, log_var = jnp.asarray(qm)[:, None], jnp.log(jnp.asarray(qv))[:, None]  # (X, 1): 1-D latents
    z = losses.reparameterize(key, mean, log_var, num_samples=k * replicates).reshape(k, replicates, len(XS), 1)
    x = jnp.asarray(XS)[:, None]
    log_px_z = losses.gaussian_log_density(x, z, jnp.full_like(z, math.log(S2)))
    return log_px_z + losses.standard_normal_log_density(z) - losses.gaussian_log_density(z, mean, log_var)


def test_toy_iwae_bound_increases_with_k_towards_log_px():
    ks = [1, 2, 5, 20, 100, 1000]
    replicates = 3000
    log_w = _toy_log_weights(jax.random.key(0), max(ks), replicates)
    # Nested prefixes of the same draws (common random numbers): each bound(K) still has the
    # right expectation, and differences between K's are estimated precisely.
    bounds = np.stack([np.asarray(losses.importance_weighted_bound(log_w[:k]), np.float64) for k in ks])  # (K's, R, X)
    mean = bounds.mean(axis=1)
    log_px = _true_log_px(XS.astype(np.float64))
    elbo = _true_elbo(XS.astype(np.float64))
    assert np.all(log_px - elbo > 0.1)  # q is clearly imperfect, so there is a gap to close

    # K = 1: an unbiased estimate of the ELBO.
    se1 = bounds[0].std(axis=0) / math.sqrt(replicates)
    assert np.all(np.abs(mean[0] - elbo) < 5 * se1), (mean[0], elbo, se1)
    for i in range(1, len(ks)):
        diff = bounds[i] - bounds[i - 1]  # (R, X)
        se = diff.std(axis=0) / math.sqrt(replicates)
        # Non-decreasing in K (statistically), and above the ELBO.
        assert np.all(diff.mean(axis=0) > -4 * se), (ks[i], diff.mean(axis=0), se)
        if ks[i] <= 100:  # where the expected increase is large enough to resolve
            assert np.all(diff.mean(axis=0) > 2 * se), (ks[i], diff.mean(axis=0), se)
        assert np.all(mean[i] > elbo)
    assert np.all(mean[-1] - mean[0] > 0.5 * (log_px - elbo))
    # Never above log p(x) in expectation, and close to it at K = 1000.
    se_last = bounds[-1].std(axis=0) / math.sqrt(replicates)
    assert np.all(mean[-1] < log_px + 4 * se_last + 1e-4)
    assert np.all(np.abs(mean[-1] - log_px) < 0.02 * (log_px - elbo) + 4 * se_last), (mean[-1], log_px)
    # The gap shrinks monotonically.
    gaps = log_px - mean
    assert np.all(gaps[-1] < gaps[0] / 20)


@pytest.fixture(scope="module")
def small_vae():
    model = VAE(hidden=(32,), latent_dim=2, num_pixels=784)
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(1))["params"]
    # A sharper encoder than at initialization, so q(z|x) is far from the prior (KL of a few nats)
    # and the log p(z) - log q(z|x) terms of the weights matter.
    params = {**params, "encoder": jax.tree_util.tree_map(lambda a: 3 * a, params["encoder"])}
    x = jax.random.bernoulli(jax.random.key(2), 0.3, (50, 28, 28, 1)).astype(jnp.float32)
    return model, params, x


def test_log_importance_weights_shape_and_expectation(small_vae):
    model, params, x = small_vae
    k = 2000
    log_w = np.asarray(vae.log_importance_weights(model, params, x[:4], jax.random.key(3), k), np.float64)
    assert log_w.shape == (k, 4)
    assert np.all(np.isfinite(log_w))
    kl = np.asarray(losses.kl_to_standard_normal(*model.apply({"params": params}, x[:4], method="encode")))
    assert np.all(kl > 0.5), kl
    # E_q[log w] = E_q[log p(x|z)] - KL(q || p): compare with an independent estimate built
    # from the closed-form KL and many reparameterized decoder evaluations.
    mean, log_var = model.apply({"params": params}, x[:4], method="encode")
    z = losses.reparameterize(jax.random.key(4), mean, log_var, num_samples=k)
    logits = model.apply({"params": params}, z, method="decode")
    log_px_z = np.asarray(losses.bernoulli_log_likelihood(logits, x[:4].reshape(4, -1)), np.float64)
    elbo = log_px_z.mean(0) - np.asarray(losses.kl_to_standard_normal(mean, log_var))
    se = np.sqrt(log_w.var(0) / k + log_px_z.var(0) / k)
    assert np.all(np.abs(log_w.mean(0) - elbo) < 5 * se + 1e-3), (log_w.mean(0), elbo, se)


def test_iwae_nll_k1_is_the_elbo(small_vae):
    model, params, x = small_vae
    r = vae.iwae_nll(model, params, x, jax.random.key(5), 1, 16)
    # With one sample, -log w is both the IWAE NLL and the -ELBO estimate.
    assert float(r["nll_iwae"]) == pytest.approx(float(r["neg_elbo"]), rel=1e-6)
    # ... and in expectation it is evaluate()'s -ELBO (closed-form KL, one z for the recon).
    many = jnp.tile(x, (40, 1, 1, 1))  # 40 independent draws per image
    iw = vae.iwae_nll(model, params, many, jax.random.key(6), 1, 500)
    ev = vae.evaluate(model, params, many, jax.random.key(7), "bernoulli")
    log_w = vae.log_importance_weights(model, params, many, jax.random.key(8), 1)[0]
    se = float(jnp.std(log_w)) / math.sqrt(many.shape[0])
    assert abs(float(iw["neg_elbo"]) - float(ev["neg_elbo"])) < 5 * se + 1e-3, (iw, ev, se)


def test_iwae_nll_k100_is_below_the_elbo(small_vae):
    model, params, x = small_vae
    r = {k: float(v) for k, v in vae.iwae_nll(model, params, x, jax.random.key(9), 100, 16).items()}
    # Same samples: the bound on log p(x) is at least their mean (Jensen), so the NLL is lower.
    assert r["nll_iwae"] < r["neg_elbo"] - 0.05, r
    assert np.isfinite(r["nll_iwae"]) and r["nll_iwae"] > 0
    # Independent evaluations also order that way.
    ev = vae.evaluate(model, params, x, jax.random.key(10), "bernoulli")
    assert r["nll_iwae"] < float(ev["neg_elbo"])


@pytest.mark.parametrize("impl", ["rbg", "threefry2x32"])  # rbg: the presets' keys
def test_iwae_nll_does_not_depend_on_the_chunk_size(small_vae, impl):
    model, params, x = small_vae  # 50 images: chunks of 7 pad the last chunk
    key = jax.random.key(11, impl=impl)
    results = {c: {k: float(v) for k, v in vae.iwae_nll(model, params, x, key, 20, c).items()} for c in (1, 7, 50, 1000)}
    for c, r in results.items():
        assert r["nll_iwae"] == pytest.approx(results[50]["nll_iwae"], rel=1e-5), (c, results)
        assert r["neg_elbo"] == pytest.approx(results[50]["neg_elbo"], rel=1e-5), (c, results)
    # Per-image keys: image i uses split(key, N)[i], whatever the chunking.
    keys = jax.random.split(key, x.shape[0])
    one = jax.jit(lambda xi, ki: -losses.importance_weighted_bound(vae.log_importance_weights(model, params, xi, ki, 20))[0])
    per_image = [float(one(x[i : i + 1], keys[i])) for i in range(x.shape[0])]
    assert results[7]["nll_iwae"] == pytest.approx(float(np.mean(per_image)), rel=1e-5)
    assert vae.iwae_chunk_size(1000, 784) * 1000 * 784 <= 1 << 25
    assert vae.iwae_chunk_size(10**9, 784) == 1


@pytest.mark.parametrize("impl", ["rbg", "threefry2x32"])
def test_evaluate_does_not_depend_on_the_chunk_size(small_vae, impl):
    model, params, x = small_vae
    key = jax.random.key(12, impl=impl)
    a = vae.evaluate(model, params, x, key, "bernoulli", chunk=7)
    b = vae.evaluate(model, params, x, key, "bernoulli", chunk=1000)
    for k in ("recon", "kl", "neg_elbo"):
        assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-5)
    assert float(a["neg_elbo"]) == pytest.approx(float(a["recon"]) + float(a["kl"]), rel=1e-6)
