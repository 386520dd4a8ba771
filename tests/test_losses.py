"""genjax.objectives.losses: log-densities, KL, Bernoulli likelihood, KL schedule, IWAE bound."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from genjax.models import gaussian
from genjax.objectives import losses


def test_kl_to_standard_normal_matches_monte_carlo():
    mean = jnp.array([[0.0, 0.0, 0.0], [1.5, -0.7, 0.3], [-2.0, 0.4, 1.0]])
    log_var = jnp.array([[0.0, 0.0, 0.0], [-1.0, 0.5, 1.2], [0.8, -2.0, -0.3]])
    n = 400_000
    z = gaussian.reparameterize(jax.random.key(1), mean, log_var, num_samples=n)  # (n, 3, 3)
    assert z.shape == (n, 3, 3)
    log_ratio = np.asarray(
        losses.gaussian_log_density(z, mean, log_var) - losses.standard_normal_log_density(z), np.float64
    )  # (n, 3)
    mc = log_ratio.mean(axis=0)
    se = log_ratio.std(axis=0) / math.sqrt(n)
    kl = np.asarray(losses.kl_to_standard_normal(mean, log_var))
    assert kl.shape == (3,)
    assert kl[0] == pytest.approx(0.0, abs=1e-7)  # q = p
    assert np.all(kl[1:] > 0.1)
    # Row 0 has zero variance of the log ratio (q = p): compare exactly there.
    np.testing.assert_allclose(mc[0], 0.0, atol=1e-5)
    assert np.all(np.abs(mc[1:] - kl[1:]) < 5 * se[1:] + 1e-4), (mc, kl, se)


def test_gaussian_log_densities_match_scipy_and_normalize():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 4)).astype(np.float32)
    mean = rng.normal(size=(5, 4)).astype(np.float32)
    log_var = rng.normal(size=(5, 4)).astype(np.float32)
    expected = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1)
    np.testing.assert_allclose(losses.gaussian_log_density(z, mean, log_var), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(losses.standard_normal_log_density(z), stats.norm.logpdf(z).sum(-1), rtol=1e-5)
    # A density integrates to one (1-D, on a fine grid).
    grid = np.linspace(-20, 20, 200_001, dtype=np.float32)[:, None]
    dens = np.exp(np.asarray(losses.gaussian_log_density(grid, jnp.array([1.0]), jnp.array([0.7])), np.float64))
    assert np.trapezoid(dens, grid[:, 0]) == pytest.approx(1.0, abs=1e-5)


def test_reparameterize_moments_and_shapes():
    mean = jnp.array([2.0, -1.0])
    log_var = jnp.array([math.log(0.25), math.log(4.0)])
    assert gaussian.reparameterize(jax.random.key(0), mean, log_var).shape == (2,)
    z = np.asarray(gaussian.reparameterize(jax.random.key(0), mean, log_var, num_samples=200_000))
    assert z.shape == (200_000, 2)
    np.testing.assert_allclose(z.mean(0), [2.0, -1.0], atol=0.02)
    np.testing.assert_allclose(z.std(0), [0.5, 2.0], rtol=0.01)
    z2 = np.asarray(gaussian.reparameterize(jax.random.key(1), mean, log_var, num_samples=200_000))
    assert not np.array_equal(z, z2)


def _naive_bernoulli(logits, x):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = 1.0 / (1.0 + np.exp(-logits))
        return np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)


def test_bernoulli_log_likelihood_matches_naive_formula():
    rng = np.random.default_rng(0)
    logits = (3 * rng.normal(size=(6, 50))).astype(np.float32)
    x_binary = (rng.random((6, 50)) < 0.4).astype(np.float32)
    x_float = rng.random((6, 50)).astype(np.float32)  # not binary: minus the BCE
    for x in (x_binary, x_float):
        got = np.asarray(losses.bernoulli_log_likelihood(logits, x))
        want = _naive_bernoulli(logits.astype(np.float64), x.astype(np.float64))
        assert got.shape == (6,)
        assert np.all(np.isfinite(want))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # Reduces over the last axis only: (K, B, P) -> (K, B).
    assert losses.bernoulli_log_likelihood(jnp.zeros((3, 4, 5)), jnp.ones((3, 4, 5))).shape == (3, 4)
    np.testing.assert_allclose(losses.bernoulli_log_likelihood(jnp.zeros((5,)), jnp.ones((5,))), 5 * math.log(0.5), rtol=1e-6)


@pytest.mark.parametrize("magnitude", [100.0, 1e4])
def test_bernoulli_log_likelihood_is_finite_and_correct_for_extreme_logits(magnitude):
    logits = np.array([magnitude, -magnitude, magnitude, -magnitude], np.float32)[:, None]
    x = np.array([1.0, 0.0, 0.0, 1.0], np.float32)[:, None]
    naive = _naive_bernoulli(logits, x)  # float32 sigmoid saturates to exactly 0 or 1
    assert not np.all(np.isfinite(naive))
    got = np.asarray(losses.bernoulli_log_likelihood(jnp.asarray(logits), jnp.asarray(x)))
    assert np.all(np.isfinite(got))
    # Right sign: log-likelihood ~ 0; wrong sign: ~ -|l| (log sigma(-|l|) = -|l| - log(1 + e^-|l|)).
    np.testing.assert_allclose(got[:2], 0.0, atol=1e-6)
    np.testing.assert_allclose(got[2:], -magnitude, rtol=1e-6)
    # The gradient (x - sigmoid(l)) stays finite too.
    grad = jax.grad(lambda l: losses.bernoulli_log_likelihood(l, jnp.asarray(x)).sum())(jnp.asarray(logits))
    np.testing.assert_allclose(np.asarray(grad)[:, 0], [0.0, 0.0, -1.0, 1.0], atol=1e-6)


def test_squared_error():
    rng = np.random.default_rng(1)
    pred = rng.random((2, 3, 7)).astype(np.float32)
    x = rng.random((2, 3, 7)).astype(np.float32)
    got = losses.squared_error(jnp.asarray(pred), jnp.asarray(x))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, ((x - pred) ** 2).sum(-1), rtol=1e-6)
    assert float(losses.squared_error(jnp.ones(4), jnp.ones(4))) == 0.0
    assert float(losses.squared_error(jnp.zeros(4), jnp.full(4, 0.5))) == pytest.approx(1.0)


def test_kl_weight_schedule():
    # No warm-up: beta at every epoch.
    for epoch in (0, 1, 10):
        assert float(losses.kl_weight(epoch, beta=0.5)) == pytest.approx(0.5)
        assert float(losses.kl_weight(epoch)) == 1.0
    # Warm-up over 4 epochs: beta * min(1, (e + 1) / 4), already > 0 in epoch 0.
    got = [float(losses.kl_weight(e, beta=2.0, warmup_epochs=4)) for e in range(7)]
    np.testing.assert_allclose(got, [0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0], rtol=1e-6)
    # Works on a traced epoch (as inside the compiled step).
    jitted = jax.jit(lambda e: losses.kl_weight(e, beta=1.0, warmup_epochs=10))
    np.testing.assert_allclose([float(jitted(jnp.int32(e))) for e in (0, 4, 9, 30)], [0.1, 0.5, 1.0, 1.0], rtol=1e-6)


def test_importance_weighted_bound_is_logsumexp_minus_log_k():
    rng = np.random.default_rng(2)
    log_w = (rng.normal(size=(50, 8)) * 5 - 100).astype(np.float32)
    got = np.asarray(losses.importance_weighted_bound(jnp.asarray(log_w)))
    assert got.shape == (8,)
    np.testing.assert_allclose(got, special.logsumexp(log_w.astype(np.float64), axis=0) - math.log(50), rtol=1e-6)
    # Between the mean (the ELBO estimate, by Jensen) and the max.
    assert np.all(got >= log_w.mean(0)) and np.all(got <= log_w.max(0))
    # K = 1: the log weight itself; equal weights: that weight.
    np.testing.assert_allclose(losses.importance_weighted_bound(jnp.asarray(log_w[:1])), log_w[0], rtol=1e-7)
    np.testing.assert_allclose(losses.importance_weighted_bound(jnp.full((1000, 3), -7.25)), -7.25, rtol=1e-6)


def test_importance_weighted_bound_is_stable_for_very_negative_log_weights():
    log_w = jnp.array([[-1e4], [-1e4 - 1.0], [-1e4 - 2.0]], jnp.float32)
    with np.errstate(divide="ignore"):
        naive = np.log(np.mean(np.exp(np.asarray(log_w)), axis=0))  # exp underflows to 0
    assert np.isneginf(naive).all()
    got = float(losses.importance_weighted_bound(log_w)[0])
    want = -1e4 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert got == pytest.approx(want, abs=2e-3)


# --- the discretized logistic (8-bit colour pixels on [-1, 1]) ----------------------------------

PIXELS = -1.0 + 2.0 * np.arange(256) / 255.0  # what data.to_pixels(images, "signed") gives


def _per_value(mean, log_scale, x=PIXELS):
    """log P(x) for each x alone (a trailing axis of one pixel, which the likelihood sums over)."""
    x = jnp.asarray(x, jnp.float32)[..., None]
    return np.asarray(losses.discretized_logistic_log_likelihood(jnp.float32(mean), jnp.float32(log_scale), x))


def _scipy_log_probs(mean, log_scale, x=PIXELS):
    """float64 reference: differences of the logistic CDF (or, right of the mean, of its
    survival function, where 1 - CDF keeps its digits), the edge bins to -inf and +inf."""
    s, w = math.exp(log_scale), 1.0 / 255.0
    a, b = (x + w - mean) / s, (x - w - mean) / s
    with np.errstate(divide="ignore"):
        log_sf_b, log_sf_a, log_cdf_a, log_cdf_b = (stats.logistic.logsf(b), stats.logistic.logsf(a),
                                                    stats.logistic.logcdf(a), stats.logistic.logcdf(b))
        right = log_sf_b + np.log1p(-np.exp(log_sf_a - log_sf_b))
        left = log_cdf_a + np.log1p(-np.exp(log_cdf_b - log_cdf_a))
    out = np.where(x > mean, right, left)
    out[x < -0.999] = log_cdf_a[x < -0.999]
    out[x > 0.999] = log_sf_b[x > 0.999]
    return out


@pytest.mark.parametrize("log_scale", [-9.0, -7.0, -4.0, -2.0, 0.0, 2.0, 5.0, 10.0])
def test_discretized_logistic_sums_to_one_over_the_256_values(log_scale):
    for mean in (-3.0, -1.0, -0.3, 0.0, 0.37, 1.0, 2.5):
        log_p = _per_value(mean, log_scale)
        assert log_p.shape == (256,) and np.all(np.isfinite(log_p)) and np.all(log_p <= 1e-6)
        assert special.logsumexp(log_p.astype(np.float64)) == pytest.approx(0.0, abs=2e-6), mean


def test_discretized_logistic_matches_scipy_cdf_differences():
    x = PIXELS
    for mean, log_scale in [(0.0, -2.0), (0.37, -2.5), (-0.8, -1.0), (0.5, 0.0), (-0.2, 1.5), (1.0, -2.5)]:
        s, w = math.exp(log_scale), 1.0 / 255.0
        cdf = stats.logistic.cdf
        p = cdf((x + w - mean) / s) - cdf((x - w - mean) / s)
        p[0], p[-1] = cdf((x[0] + w - mean) / s), 1.0 - cdf((x[-1] - w - mean) / s)
        assert p.min() > 1e-12  # moderate values: no bin so far right that 1 - CDF loses its digits
        np.testing.assert_allclose(_per_value(mean, log_scale), np.log(p), rtol=1e-5, atol=1e-5)


def test_discretized_logistic_far_tails_stay_accurate():
    # Probabilities far below float32's range (e^-2000) are exact logs, not the midpoint rule.
    for mean, log_scale in [(-1.0, -7.0), (0.9, -6.0), (0.0, -5.0)]:
        want = _scipy_log_probs(mean, log_scale)
        assert want.min() < -100
        np.testing.assert_allclose(_per_value(mean, log_scale), want, rtol=1e-5)


def test_discretized_logistic_reduces_over_the_last_axis_and_broadcasts():
    rng = np.random.default_rng(3)
    x = PIXELS[rng.integers(0, 256, (4, 2, 6))].astype(np.float32)  # (B, K, D) pixels
    mean = np.tanh(rng.normal(size=(4, 2, 6))).astype(np.float32)
    log_scale = np.float32(-2.5)  # one shared (e.g. learned) log-scale
    got = np.asarray(losses.discretized_logistic_log_likelihood(mean, log_scale, x))
    assert got.shape == (4, 2)
    want = np.array([[_scipy_log_probs(mean[b, k, d], -2.5, x[b, k, d:d + 1])[0] for d in range(6)]
                     for b in range(4) for k in range(2)]).sum(-1).reshape(4, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    per_dim = np.full(6, -2.5, np.float32)  # one log-scale per sub-pixel gives the same
    np.testing.assert_allclose(losses.discretized_logistic_log_likelihood(mean, per_dim, x), got, rtol=1e-6)


def test_discretized_logistic_gradients_are_finite():
    means, log_scales = np.meshgrid(np.linspace(-3, 3, 13), [-9.0, -7.0, -4.0, -1.0, 0.0, 3.0, 10.0])
    x = jnp.asarray(PIXELS, jnp.float32)[:, None, None]  # every value, against every (mean, scale)

    def total(mean, log_scale):
        return losses.discretized_logistic_log_likelihood(mean[..., None], log_scale[..., None], x[..., None]).sum()

    g_mean, g_scale = jax.grad(total, argnums=(0, 1))(jnp.asarray(means, jnp.float32), jnp.asarray(log_scales, jnp.float32))
    assert np.all(np.isfinite(np.asarray(g_mean))) and np.all(np.isfinite(np.asarray(g_scale)))
    # One pixel at x = 0.5: the mean is pulled towards it, and a broad scale narrows.
    grad = jax.grad(lambda m, s: losses.discretized_logistic_log_likelihood(m, s, jnp.array([0.5])), argnums=(0, 1))
    gm, gs = grad(jnp.float32(0.0), jnp.float32(0.0))
    assert float(gm) > 0 and float(gs) < 0
    # Against central differences, in the interior (x = 0.2) and at an edge bin (x = 1).
    for pixel in (0.2, 1.0):
        def f(m, s, pixel=pixel):
            return losses.discretized_logistic_log_likelihood(jnp.float32(m), jnp.float32(s), jnp.array([pixel]))

        gm, gs = jax.grad(f, argnums=(0, 1))(0.1, -2.0)
        assert float(gm) == pytest.approx(float(f(0.1 + 1e-3, -2.0) - f(0.1 - 1e-3, -2.0)) / 2e-3, rel=1e-2)
        assert float(gs) == pytest.approx(float(f(0.1, -2.0 + 1e-3) - f(0.1, -2.0 - 1e-3)) / 2e-3, rel=1e-2)


def test_bits_per_dim():
    d = 32 * 32 * 3
    assert float(losses.bits_per_dim(jnp.float32(d * math.log(256.0)), d)) == pytest.approx(8.0, rel=1e-6)
    np.testing.assert_allclose(losses.bits_per_dim(jnp.array([0.0, math.log(2.0) * 10]), 10), [0.0, 1.0], rtol=1e-6)
