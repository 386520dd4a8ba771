r"""The VAE objective and its evaluation, for any encoder/decoder module pair.

Per image (nats, summed over pixels, averaged over images):

    -ELBO(x) = E_{q(z|x)}[-\log p(x|z)] + KL(q(z|x) \| N(0, I))

estimated with one reparameterized z and the closed-form KL. The training loss
weights the KL by \beta (and by a linear warm-up when asked). The decoder
likelihood is ``bernoulli`` (binary cross-entropy from logits) or ``mse``
(seed 000: \sum_i (x_i - \sigma(l_i))^2, not a likelihood).

The importance-weighted bound (Burda et al., 2016),

    \log p(x) \ge \log \frac1K \sum_{k=1}^K \frac{p(x|z_k) p(z_k)}{q(z_k|x)},  z_k \sim q(z|x),

is what papers report as the test NLL; it is computed over the whole test set
in chunks sized to fit memory, in one compiled program.

A conditional VAE (a model with ``num_classes`` > 0) gets its one-hot label
``cond`` everywhere: q(z|x, y), p(x|z, y); training reads ``batch["label"]``.

Hyperparameters (learning rate, \beta, KL warm-up) may be Python numbers or traced
scalars: :func:`make_vae_step` builds the same step from either, which is how a
vmapped sweep (:mod:`genjax.sweep`) gives each of its K models its own.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import losses, prng
from genjax.data import is_binary, to_pixels
from genjax.presets import make_optimizer
from genjax.train import make_train_step, map_in_chunks, masked_mean

HYPERPARAMETERS = ("lr", "beta", "kl_warmup_epochs")  # what a sweep may vary per model in one program

LIKELIHOODS = ("bernoulli", "mse")


def reports_likelihood(likelihood: str, pixels: str) -> bool:
    """-ELBO and IWAE are likelihood bounds only for a Bernoulli decoder on binary pixels."""
    return likelihood == "bernoulli" and is_binary(pixels)


def reconstruction_loss(logits: jax.Array, x: jax.Array, likelihood: str) -> jax.Array:
    """Per-image reconstruction term: -log p(x|z) for ``bernoulli``, squared error for ``mse``."""
    if likelihood == "bernoulli":
        return -losses.bernoulli_log_likelihood(logits, x)
    if likelihood == "mse":
        return losses.squared_error(jax.nn.sigmoid(logits), x)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def condition(model, labels: jax.Array | None) -> jax.Array | None:
    """The one-hot ``cond`` of a conditional ``model`` (``num_classes`` > 0) for integer
    ``labels``; None for an unconditional one."""
    classes = getattr(model, "num_classes", 0)
    if not classes:
        return None
    if labels is None:
        raise ValueError("a conditional VAE needs labels")
    return jax.nn.one_hot(labels, classes, dtype=jnp.float32)


def _apply(model, params, *args, cond=None, method=None):
    """``model.apply`` with ``cond`` passed only when there is one."""
    extra = () if cond is None else (cond,)
    return model.apply({"params": params}, *args, *extra, method=method)


def make_vae_loss(
    model: nn.Module,
    likelihood: str,
    pixels: str,
    beta: float = 1.0,
    kl_warmup_epochs: int = 0,
    steps_per_epoch: int = 1,
):
    """The training loss of :mod:`genjax.train`'s signature, for a batch ``{"image": uint8}``.

    loss = mean_images[ recon(x) + w(epoch) KL ],  w = :func:`losses.kl_weight`,

    the mean over the batch's real images (its ``"mask"``; see :func:`genjax.train.make_epoch`).
    """

    def loss_fn(params, model_state, batch, key, step):
        pixel_key, z_key = jax.random.split(key)
        images = to_pixels(batch["image"], pixels, pixel_key)
        logits, mean, log_var = _apply(model, params, images, z_key, cond=condition(model, batch.get("label")))
        recon = reconstruction_loss(logits.reshape(images.shape[0], -1), images.reshape(images.shape[0], -1),
                                    likelihood)
        kl = losses.kl_to_standard_normal(mean, log_var)
        weight = losses.kl_weight(step // steps_per_epoch, beta, kl_warmup_epochs)
        loss = masked_mean(recon + weight * kl, batch)
        return loss, (model_state, {"recon": masked_mean(recon, batch), "kl": masked_mean(kl, batch)})

    return loss_fn


def make_vae_step(model: nn.Module, likelihood: str, pixels: str, optimizer: str, steps_per_epoch: int):
    """``step_for(hp)``: the training step (:func:`genjax.train.make_train_step`) of the
    VAE loss with hyperparameters ``hp = {"lr", "beta", "kl_warmup_epochs"}`` (numbers,
    or traced scalars inside a sweep). The optimizer's state does not depend on the
    learning rate, so one ``tx.init`` serves every rate."""

    def step_for(hp: dict):
        loss_fn = make_vae_loss(model, likelihood, pixels, hp["beta"], hp["kl_warmup_epochs"], steps_per_epoch)
        return make_train_step(loss_fn, make_optimizer(optimizer, hp["lr"]))

    return step_for


def seed_keys(seed: int, impl: str) -> dict:
    """A VAE run's keys from its seed: ``run`` (shuffling), ``init``, ``state`` (the steps'
    noise), ``eval`` and ``draw``; a sweep's model k with seed s gets exactly the keys of
    ``python -m experiments.vae_mnist --seed s``."""
    run_key = jax.random.key(seed, impl=impl)
    return dict(zip(("init", "state", "eval", "draw"), jax.random.split(run_key, 4)), run=run_key)


def init_params(model: nn.Module, key: jax.Array, image_shape: tuple[int, ...]):
    """The model's parameters for images of ``image_shape`` (H, W, C)."""
    cond = condition(model, jnp.zeros((1,), jnp.int32))
    return model.init(key, jnp.zeros((1, *image_shape)), key, *(() if cond is None else (cond,)))["params"]


def hyperparameters(config) -> dict:
    """A config's :data:`HYPERPARAMETERS` as the dict :func:`make_vae_step` takes."""
    return {name: getattr(config, name) for name in HYPERPARAMETERS}


@functools.partial(jax.jit, static_argnames=("model", "likelihood", "chunk", "mesh"))
def evaluate(model, params, x: jax.Array, key: jax.Array, likelihood: str, chunk: int = 1000, mesh=None,
             cond: jax.Array | None = None) -> dict:
    """Per-image recon and KL on float pixels ``x`` (N, H, W, C), one z each; averaged.

    ``neg_elbo`` = recon + KL is the -ELBO only for a Bernoulli decoder on binary
    pixels; otherwise it is the loss at beta = 1. With a ``mesh``, the images are
    split over its devices. Image i draws its z from ``split(key, N)[i]`` alone, so
    the result does not depend on ``chunk`` or the device count. ``cond``: the
    images' one-hot labels, for a conditional VAE."""

    def one_chunk(args):
        xc, kc, cc = args
        logits, mean, log_var = jax.vmap(lambda xi, ki, ci: _apply(model, params, xi, ki, cond=ci))(xc, kc, cc)
        n = xc.shape[0]
        recon = reconstruction_loss(logits.reshape(n, -1), xc.reshape(n, -1), likelihood)
        return recon, losses.kl_to_standard_normal(mean, log_var)

    recon, kl = map_in_chunks(one_chunk, (x, jax.random.split(key, x.shape[0]), cond), chunk, mesh)
    return {"recon": jnp.mean(recon), "kl": jnp.mean(kl), "neg_elbo": jnp.mean(recon + kl)}


def log_importance_weights(model, params, x: jax.Array, key: jax.Array, k: int, cond=None) -> jax.Array:
    r"""\log w_k = \log p(x|z_k) + \log p(z_k) - \log q(z_k|x) for a batch of binary ``x``: shape (K, B)."""
    mean, log_var = _apply(model, params, x, cond=cond, method="encode")
    z = losses.reparameterize(key, mean, log_var, num_samples=k)  # (K, B, D)
    logits = _apply(model, params, z, cond=cond, method="decode")  # (K, B, P)
    log_px_z = losses.bernoulli_log_likelihood(logits, x.reshape(x.shape[0], -1))
    return log_px_z + losses.standard_normal_log_density(z) - losses.gaussian_log_density(z, mean, log_var)


def iwae_chunk_size(k: int, num_pixels: int, budget: int = 1 << 22) -> int:
    """Images per chunk so that the K x chunk x pixels logits stay under ``budget`` floats.

    The default (16 MiB of logits) keeps a chunk's working set near the CPU's cache:
    measured here, twice as fast as chunks of 128 MiB."""
    return max(1, budget // (k * num_pixels))


@functools.partial(jax.jit, static_argnames=("model", "k", "chunk", "mesh"))
def iwae_nll(model, params, x: jax.Array, key: jax.Array, k: int, chunk: int, mesh=None,
             cond: jax.Array | None = None) -> dict:
    """Test NLL by the K-sample importance-weighted bound, and the K-sample ELBO estimate.

    Returns means over images of ``-log (1/K) sum_k w_k`` (``nll_iwae``) and of
    ``-(1/K) sum_k log w_k`` (``neg_elbo``, the same -ELBO as :func:`evaluate` but
    averaged over K samples instead of one). With a ``mesh``, the images are
    split over its devices. Image i draws its z's from ``split(key, N)[i]`` alone
    (:mod:`genjax.prng`, for every key implementation), so the result does not
    depend on ``chunk`` or on the number of devices (up to float rounding).
    """
    keys = jax.random.split(key, x.shape[0])

    def one_chunk(args):
        xc, kc, cc = args
        log_w = jax.vmap(lambda xi, ki, ci: log_importance_weights(
            model, params, xi[None], ki, k, None if ci is None else ci[None])[:, 0])(xc, kc, cc)
        return -losses.importance_weighted_bound(log_w.T), -jnp.mean(log_w, axis=1)

    nll, neg_elbo = map_in_chunks(one_chunk, (x, keys, cond), chunk, mesh)
    return {"nll_iwae": jnp.mean(nll), "neg_elbo": jnp.mean(neg_elbo)}


@functools.partial(jax.jit, static_argnames=("model", "n"))
def prior_sample_means(model, params, key: jax.Array, n: int, cond: jax.Array | None = None) -> jax.Array:
    """E[x | z] = sigmoid(decoder(z)) for n draws z ~ N(0, I): shape (n, pixels), in [0, 1]
    (conditional: sample i of class ``cond[i]``)."""
    z = prng.normal(key, (n, model.latent_dim))
    return jax.nn.sigmoid(_apply(model, params, z, cond=cond, method="decode"))


@functools.partial(jax.jit, static_argnames=("model",))
def decode_means(model, params, z: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    return jax.nn.sigmoid(_apply(model, params, z, cond=cond, method="decode"))


@functools.partial(jax.jit, static_argnames=("model",))
def encode_means(model, params, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    return _apply(model, params, x, cond=cond, method="encode")[0]


def active_units(means: jax.Array, threshold: float = 0.01) -> jax.Array:
    r"""Active latent units (Burda et al. 2016): A_u = Cov_x(E_{q(z|x)}[z_u]) > ``threshold``,
    the variance over the data set of each posterior mean; ``means`` (N, D) -> count."""
    return jnp.sum(jnp.var(means, axis=0) > threshold)


__all__ = [
    "HYPERPARAMETERS",
    "LIKELIHOODS",
    "active_units",
    "condition",
    "decode_means",
    "encode_means",
    "evaluate",
    "iwae_chunk_size",
    "iwae_nll",
    "log_importance_weights",
    "hyperparameters",
    "init_params",
    "seed_keys",
    "make_vae_loss",
    "make_vae_step",
    "prior_sample_means",
    "reconstruction_loss",
    "reports_likelihood",
]
