"""Losses and log-densities as pure functions of arrays.

Every function reduces over the last axis only (the pixels of one image, or the
dimensions of one latent vector), so it applies unchanged to one example, a
batch, or K samples of a batch. Callers average over images. All values are in
nats (:func:`bits_per_dim` turns a negative log-likelihood into bits per sub-pixel).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def _softplus_and_sigmoid(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    e = jnp.exp(-jnp.abs(x))  # in (0, 1]: never overflows
    return jnp.maximum(x, 0.0) + jnp.log1p(e), jnp.where(x >= 0, 1.0, e) / (1.0 + e)


@jax.custom_jvp
def softplus(x: jax.Array) -> jax.Array:
    r"""\log(1 + e^x) = \max(x, 0) + \log(1 + e^{-|x|}): exact and finite for every finite x.

    Same values as ``jax.nn.softplus`` but several times faster on the CPU
    backend. Its derivative \sigma(x) = [x \ge 0 ? 1 : e^{-|x|}] / (1 + e^{-|x|})
    reuses the same exponential (a custom JVP; max and abs alone would also give
    a wrong derivative, 0, at x = 0).
    """
    return _softplus_and_sigmoid(x)[0]


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    value, slope = _softplus_and_sigmoid(x)
    return value, slope * dx


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    r"""log p(x | logits) = \sum_i x_i \log\sigma(l_i) + (1 - x_i) \log(1 - \sigma(l_i))
                         = \sum_i x_i l_i - \mathrm{softplus}(l_i).

    Computed from logits (never sigmoid-then-log), so it is finite for any finite
    logits. For x in [0, 1] that is not binary this is minus the binary
    cross-entropy (seed 003's loss), not a likelihood.
    """
    return jnp.sum(x * logits - softplus(logits), axis=-1)


# 8-bit pixels as x = -1 + 2k/255 (k = 0..255, ``data.to_pixels(images, "signed")``): bins of width 2/255.
BIN_HALF_WIDTH = 1.0 / 255.0
MIDPOINT_BELOW = 1e-2  # bin width in units of the scale under which the midpoint rule is used


def discretized_logistic_log_likelihood(mean: jax.Array, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    r"""log p(x | \mu, s) = \sum_i \log P(x_i): one logistic per sub-pixel, integrated over its 8-bit bin
    (PixelCNN++; Kingma et al.'s IAF), for x_i on the grid -1 + 2k/255 of [-1, 1]:

        P(x) = \sigma((x + w - \mu)/s) - \sigma((x - w - \mu)/s),   w = 1/255,  s = e^{log_scale},
        P(-1) = \sigma((-1 + w - \mu)/s),   P(1) = 1 - \sigma((1 - w - \mu)/s)   (edge bins to \mp\infty),

    so the 256 values of a pixel have probabilities summing to 1 and -log p is a code length.
    ``mean`` and ``log_scale`` broadcast against ``x`` (e.g. one log-scale per sub-pixel, learned
    or fixed); the sum is over the last axis, like the other likelihoods here.

    Stable for any finite inputs with e^{-log_scale} finite (PixelCNN++ clamps log_scale >= -7):
    the edges are -softplus(-a) and -softplus(b); an interior bin is computed in its smaller tail
    (\sigma(a) - \sigma(b) = \sigma(-b) - \sigma(-a)) as
    \log\sigma(h) + \log(-\mathrm{expm1}(\log\sigma(l) - \log\sigma(h))), with l - h = -2w/s taken
    exactly, so far-tail probabilities (e^{-1000}) stay accurate logs where the plain difference
    underflows. Where a bin is narrow against the scale (2w/s < 10^{-2}) and that difference loses
    its digits, the midpoint rule \log P pprox \log f(x) + \log 2w takes over (PixelCNN++'s fallback;
    relative error below (2w/s)^2/24), with \log f(x) = t - \log s - 2\,\mathrm{softplus}(t), t = (x - \mu)/s.
    """
    inv_scale = jnp.exp(-log_scale)
    centred = x - mean
    upper = inv_scale * (centred + BIN_HALF_WIDTH)  # a
    lower = inv_scale * (centred - BIN_HALF_WIDTH)  # b
    width = 2.0 * BIN_HALF_WIDTH * inv_scale  # a - b, not computed as a difference
    log_first = -softplus(-upper)  # log sigma(a): the bin (-inf, -1 + w]
    log_last = -softplus(lower)  # log(1 - sigma(b)): the bin [1 - w, inf)
    # An interior bin in the tail where it is the smaller: sigma(a) - sigma(b) = sigma(h) - sigma(l).
    right = centred > 0
    high = jnp.where(right, -lower, upper)
    low = jnp.where(right, -upper, lower)
    midpoint = width < MIDPOINT_BELOW
    log_gap = -width - (softplus(low) - softplus(high))  # log sigma(l) - log sigma(h) < 0
    log_gap = jnp.where(midpoint, -1.0, jnp.minimum(log_gap, -1e-30))  # finite gradients in both branches
    log_interior = -softplus(-high) + jnp.log(-jnp.expm1(log_gap))
    t = inv_scale * centred
    log_mid = t - log_scale - 2.0 * softplus(t) + math.log(2.0 * BIN_HALF_WIDTH)
    log_p = jnp.where(
        x < -0.999, log_first, jnp.where(x > 0.999, log_last, jnp.where(midpoint, log_mid, log_interior))
    )
    return jnp.sum(log_p, axis=-1)


def bits_per_dim(nll: jax.Array, num_dims: int) -> jax.Array:
    r"""bits/dim = NLL / (D \ln 2): nats per image of a discrete likelihood (e.g.
    :func:`discretized_logistic_log_likelihood` of a 32x32x3 image, D = 3072) as bits per sub-pixel;
    8 is the cost of storing the bytes as they are."""
    return nll / (num_dims * math.log(2.0))


def squared_error(prediction: jax.Array, x: jax.Array) -> jax.Array:
    r"""\sum_i (x_i - \hat{x}_i)^2: seed 000's ``F.mse_loss(..., reduction="sum")`` per image."""
    return jnp.sum(jnp.square(x - prediction), axis=-1)


def gaussian_log_density(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    r"""\log N(z; \mu, diag(\sigma^2)) = -\tfrac12 \sum_k [\log 2\pi + \log\sigma_k^2 + (z_k-\mu_k)^2/\sigma_k^2]."""
    return -0.5 * jnp.sum(LOG_2PI + log_var + jnp.square(z - mean) * jnp.exp(-log_var), axis=-1)


def standard_normal_log_density(z: jax.Array) -> jax.Array:
    r"""\log N(z; 0, I) = -\tfrac12 \sum_k [\log 2\pi + z_k^2]."""
    return -0.5 * jnp.sum(LOG_2PI + jnp.square(z), axis=-1)


def kl_to_standard_normal(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    r"""KL(N(\mu, diag\,\sigma^2) \| N(0, I)) = \tfrac12 \sum_k (\sigma_k^2 + \mu_k^2 - 1 - \log\sigma_k^2)."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)


def kl_weight(epoch: jax.Array | int, beta: float = 1.0, warmup_epochs: int = 0) -> jax.Array:
    r"""KL annealing: w(e) = \beta \min(1, (e + 1) / W) for W = ``warmup_epochs`` > 0, else \beta.

    ``epoch`` counts from 0, so the first epoch already has weight \beta / W.
    """
    if isinstance(warmup_epochs, (int, float)) and warmup_epochs <= 0:
        return jnp.asarray(beta, jnp.float32)
    # W may be traced (a hyperparameter carried in a vmapped sweep's state): W <= 0 means no warm-up.
    w = jnp.asarray(warmup_epochs, jnp.float32)
    ramp = jnp.minimum(1.0, (jnp.asarray(epoch, jnp.float32) + 1.0) / jnp.maximum(w, 1.0))
    return beta * jnp.where(w > 0, ramp, 1.0)


def importance_weighted_bound(log_weights: jax.Array) -> jax.Array:
    r"""IWAE bound over the leading axis of K samples:
    \log \frac1K \sum_k w_k = \mathrm{logsumexp}_k \log w_k - \log K,  with
    \log w_k = \log p(x|z_k) + \log p(z_k) - \log q(z_k|x), z_k \sim q(z|x).

    For K = 1 its expectation is the ELBO; it increases with K towards \log p(x).
    """
    k = log_weights.shape[0]
    return jax.nn.logsumexp(log_weights, axis=0) - math.log(k)


# GAN losses: per example, from D's logit l = logit D(x), where D(x) = \sigma(l) = p(real | x).
# BCE(\sigma(l), 1) = -\log\sigma(l) = softplus(-l);  BCE(\sigma(l), 0) = -\log(1 - \sigma(l)) = softplus(l).


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    r"""BCE(D(x), 1) + BCE(D(G(z)), 0) = softplus(-l_x) + softplus(l_{G(z)}): D's loss for one
    real and one generated example (the seed's ``criterion(y_real, 1) + criterion(y_fake, 0)``)."""
    return softplus(-real_logits) + softplus(fake_logits)


def generator_loss_non_saturating(fake_logits: jax.Array) -> jax.Array:
    r"""BCE(D(G(z)), 1) = -\log D(G(z)) = softplus(-l): the seed's non-saturating generator loss,
    whose gradient stays large when D confidently rejects G(z)."""
    return softplus(-fake_logits)


def generator_loss_saturating(fake_logits: jax.Array) -> jax.Array:
    r"""\log(1 - D(G(z))) = -softplus(l): the minimax game's generator loss, G minimizing it; its
    gradient vanishes as D(G(z)) -> 0 (early in training, when D wins easily)."""
    return -softplus(fake_logits)


def masked_mean(values: jax.Array, batch) -> jax.Array:
    """Mean of per-example ``values`` over the real examples of ``batch`` (all, without a mask)."""
    mask = batch.get("mask") if isinstance(batch, dict) else None
    if mask is None:
        return jnp.mean(values)
    return jnp.sum(mask * values) / jnp.maximum(jnp.sum(mask), 1.0)
