"""The importance-weighted bound: on a toy model with a known log p(x), and on a genjax VAE."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.models import gaussian
from genjax.models.mlp_vae import VAE
from genjax.objectives import losses, vae

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
    z = gaussian.reparameterize(key, mean, log_var, num_samples=k * replicates).reshape(k, replicates, len(XS), 1)
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
    model = VAE(hidden=(32,), latent_dim=2, image_shape=(28, 28, 1))
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
    z = gaussian.reparameterize(jax.random.key(4), mean, log_var, num_samples=k)
    logits = model.apply({"params": params}, z, method="decode").reshape(k, 4, -1)
    log_px_z = np.asarray(losses.bernoulli_log_likelihood(logits, x[:4].reshape(4, -1)), np.float64)
    elbo = log_px_z.mean(0) - np.asarray(losses.kl_to_standard_normal(mean, log_var))
    se = np.sqrt(log_w.var(0) / k + log_px_z.var(0) / k)
    assert np.all(np.abs(log_w.mean(0) - elbo) < 5 * se + 1e-3), (log_w.mean(0), elbo, se)


def _log_mean_exp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.mean(np.exp(a - m), axis=axis))


def _exact_log_px_and_elbo(model, params, x, grid: int) -> tuple[np.ndarray, np.ndarray]:
    r"""For a VAE with a 1-D latent, by quadrature on a z grid in float64 NumPy, written without
    genjax.objectives.vae or genjax.objectives.losses: log p(x) = log \int p(x|z) N(z; 0, 1) dz, and the ELBO
    \int q(z|x) [log p(x|z) + log N(z; 0, 1) - log q(z|x)] dz, p(x|z) Bernoulli with the decoder's
    logits at each grid point, q(z|x) = N(mean, exp(log_var)) from the encoder's outputs."""
    z = np.linspace(-10.0, 10.0, grid)
    logits = np.asarray(model.apply({"params": params}, jnp.asarray(z[:, None], jnp.float32), method="decode"),
                        np.float64).reshape(grid, -1)
    xs = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    log_px_z = xs @ -np.logaddexp(0.0, -logits).T + (1.0 - xs) @ -np.logaddexp(0.0, logits).T  # (B, grid)
    log_joint = log_px_z - 0.5 * (np.log(2 * np.pi) + z**2)
    dz = z[1] - z[0]
    log_px = _log_mean_exp(log_joint, 1) + np.log(grid * dz)
    mean, log_var = (np.asarray(a, np.float64) for a in model.apply({"params": params}, x, method="encode"))
    log_q = -0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var))  # (B, grid)
    elbo = np.sum(np.exp(log_q) * (log_joint - log_q), axis=1) * dz
    return log_px, elbo


def test_iwae_nll_at_k_above_1_against_the_exact_log_px_of_a_1d_latent_vae():
    """vae.iwae_nll on a genjax VAE small enough (1-D latent, 4x4 binary images) for log p(x) and the
    ELBO to be integrated exactly: the K-sample bound starts at the ELBO, rises with K, stays below
    log p(x) and reaches it; its weights are unbiased for p(x); and iwae_nll is the NumPy
    log-mean-exp of its own weights."""
    model = VAE(hidden=(16,), latent_dim=1, image_shape=(4, 4, 1))
    x = jax.random.bernoulli(jax.random.key(2), 0.4, (4, 4, 4, 1)).astype(jnp.float32)
    params = model.init(jax.random.key(0), x[:1], jax.random.key(1))["params"]
    # A decoder twice as sharp as at initialization: p(z|x) moves away from N(0, 1), and q(z|x)
    # (near N(0, 1)) misses it by 1.7 to 6 nats.
    params = {**params, "decoder": jax.tree_util.tree_map(lambda a: 2 * a, params["decoder"])}
    log_px, elbo = _exact_log_px_and_elbo(model, params, x, 8001)
    coarse_px, coarse_elbo = _exact_log_px_and_elbo(model, params, x, 4001)
    np.testing.assert_allclose(log_px, coarse_px, atol=1e-4)  # the quadrature has converged
    np.testing.assert_allclose(elbo, coarse_elbo, atol=1e-4)
    assert np.all(log_px - elbo > 1.0), log_px - elbo  # q is clearly imperfect: a gap to close

    n, means, ses = x.shape[0], [], []
    for i, (k, reps) in enumerate([(1, 1024), (4, 1024), (32, 1024), (1000, 256)]):
        many = jnp.tile(x, (reps, 1, 1, 1))  # independent estimates of each image's bound
        key = jax.random.key(10 + i)
        # The weights exactly as iwae_nll draws them: image j from split(key, N)[j].
        log_w = np.asarray(jax.jit(jax.vmap(lambda xi, ki: vae.log_importance_weights(  # noqa: B023
            model, params, xi[None], ki, k)[:, 0]))(many, jax.random.split(key, many.shape[0])), np.float64)  # (N, K)
        bounds = _log_mean_exp(log_w, 1).reshape(reps, n)
        r = vae.iwae_nll(model, params, many, key, k, many.shape[0])
        assert float(r["nll_iwae"]) == pytest.approx(-bounds.mean(), rel=1e-5), (k, r)
        assert float(r["neg_elbo"]) == pytest.approx(-log_w.mean(), rel=1e-5), (k, r)
        mean, se = bounds.mean(0), bounds.std(0) / math.sqrt(reps)
        assert np.all(mean < log_px + 4 * se), (k, mean, log_px, se)  # a lower bound, at every K
        means.append(mean)
        ses.append(se)
        if k == 1:  # one sample: the ELBO, in expectation
            assert np.all(np.abs(mean - elbo) < 5 * se), (mean, elbo, se)
    # The gap to log p(x), averaged over the images, shrinks at every step of K.
    gaps = [float(np.mean(log_px - m)) for m in means]
    gap_ses = [float(np.sqrt(np.sum(s**2)) / n) for s in ses]
    for i in range(1, len(gaps)):
        assert gaps[i - 1] - gaps[i] > 2 * math.hypot(gap_ses[i - 1], gap_ses[i]), (gaps, gap_ses)
    # At K = 1000 the bound is within 1% of the ELBO's gap of log p(x).
    assert np.all(log_px - means[-1] < 0.01 * (log_px - elbo) + 4 * ses[-1]), (means[-1], log_px)
    # Importance sampling: the mean of all 256 x 1000 weights per image estimates p(x) itself, unbiased.
    w = log_w.reshape(reps, n, -1).transpose(1, 0, 2).reshape(n, -1)
    scaled = np.exp(w - w.max(1, keepdims=True))
    rel_se = scaled.std(1) / scaled.mean(1) / math.sqrt(w.shape[1])  # of the mean weight, ~ se of its log
    assert np.all(np.abs(_log_mean_exp(w, 1) - log_px) < 5 * rel_se), (_log_mean_exp(w, 1), log_px, rel_se)


def test_iwae_neg_elbo_matches_evaluate_in_expectation(small_vae):
    model, params, x = small_vae
    # iwae_nll's -ELBO (the mean of -log w) is, in expectation, evaluate()'s -ELBO (closed-form KL,
    # one z for the reconstruction): two estimators of one number.
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


@pytest.mark.parametrize("conditional", [False, True], ids=["vae", "cvae"])
def test_the_recipes_iwae_in_parts_with_a_progress_bar_is_the_one_program_bound(conditional, mnist, monkeypatch,
                                                                                capsys):
    """VAE.iwae_bound runs vae.iwae_per_image in IWAE_PARTS host calls (a progress bar between them):
    the same per-image values for any number of parts, and the bound of vae.iwae_nll in one program."""
    import genjax
    from genjax import data
    from genjax.recipes import vae as vae_recipe

    train, test = mnist
    labels = (train.labels[:512],) if conditional else ()
    v = genjax.VAE.from_preset("cvae" if conditional else "seed002", batch_size=128, iwae_k=8).fit(
        train.images[:512], *labels, epochs=1, progress=False)
    x, cond = v.eval_arrays(data.ImageSet(test.images[:203], test.labels[:203]))
    key = jax.random.fold_in(v.keys()["eval"], 1)
    whole = vae.iwae_nll(v.model, v.params, x, key, 8, vae.iwae_chunk_size(8, 784), cond=cond)
    monkeypatch.setattr(vae, "iwae_chunk_size", lambda k, pixels: 16)  # 203 images: 1, 7 (padded) or 13 parts
    bounds = []
    for parts in (1, 7, 20):
        monkeypatch.setattr(vae_recipe, "IWAE_PARTS", parts)
        bounds.append(v.iwae_bound(x, cond, progress=parts == 7))
    assert bounds[0] == bounds[1] == bounds[2]
    assert bounds[0]["nll_iwae"] == pytest.approx(float(whole["nll_iwae"]), rel=1e-5)
    assert bounds[0]["neg_elbo"] == pytest.approx(float(whole["neg_elbo"]), rel=1e-5)
    assert bounds[0]["nll_iwae"] < bounds[0]["neg_elbo"]
    assert "IWAE, k = 8" in capsys.readouterr().err
