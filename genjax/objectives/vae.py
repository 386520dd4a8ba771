r"""The VAE objective and its evaluation, for any encoder/decoder module pair.

Per image (nats, summed over pixels, averaged over images):

    -ELBO(x) = E_{q(z|x)}[-\log p(x|z)] + KL(q(z|x) \| N(0, I))

estimated with one reparameterized z and the closed-form KL. The training loss
weights the KL by \beta (and by a linear warm-up when asked). The decoder
likelihood is a choice of pure function of the decoder's logits l (any shape; one per
pixel and channel), :func:`reconstruction_loss`:

* ``bernoulli``: -\log p(x|z) = binary cross-entropy from logits (a likelihood for binary
  pixels; on float pixels, seeds 001, 003 and 004's ``BCELoss(reduction="sum")``);
* ``mse``: seed 000's \sum_i (x_i - \sigma(l_i))^2 (not a likelihood);
* ``discretized_logistic``: for 8-bit images as "signed" pixels in [-1, 1], each sub-pixel a
  logistic of location \mu = \tanh(l) and scale e^{s} integrated over its bin
  (:func:`genjax.objectives.losses.discretized_logistic_log_likelihood`), so -ELBO and the IWAE bound are
  code lengths and become bits/dim. The log-scale s is learned, one per sub-pixel, independent
  of z; it lives in the parameters *outside* the module, as ``params["log_scale"]`` (H, W, C)
  (:func:`init_variables` adds it; the module never sees it), clamped at -7 as PixelCNN++ does.

The importance-weighted bound (Burda et al., 2016),

    \log p(x) \ge \log \frac1K \sum_{k=1}^K \frac{p(x|z_k) p(z_k)}{q(z_k|x)},  z_k \sim q(z|x),

is what papers report as the test NLL; it is computed over the whole test set
in chunks sized to fit memory, in one compiled program.

A conditional VAE (a model with ``num_classes`` > 0) gets its one-hot label
``cond`` everywhere: q(z|x, y), p(x|z, y); training reads ``batch["label"]``.

A model with mutable collections (BatchNorm's ``batch_stats``, e.g. seed 003's CelebA VAE)
keeps them in the train state's ``model_state`` (:func:`init_variables`): the loss runs the
model in train mode (batch statistics over the batch's real rows, running averages updated
and returned), every evaluation and sampler in eval mode on the running averages
(``model_state=``), and the checkpoint carries them with the rest of the state.

Hyperparameters (learning rate, \beta, KL warm-up) may be Python numbers or traced
scalars: :func:`make_vae_step` builds the same step from either, which is how a
vmapped sweep (:mod:`genjax.training.sweep`) gives each of its K models its own.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from genjax import prng
from genjax.data import UNIT_PIXEL_MODES, is_binary, to_pixels
from genjax.devices import map_in_chunks
from genjax.models import gaussian
from genjax.objectives import losses
from genjax.objectives.losses import masked_mean

LIKELIHOODS = ("bernoulli", "mse")  # the sigmoid decoders' likelihoods, for pixels in [0, 1]
DISCRETIZED_LOGISTIC = "discretized_logistic"
IMAGE_LIKELIHOODS = (*LIKELIHOODS, DISCRETIZED_LOGISTIC)
# The pixel modes (genjax.data.to_pixels) each likelihood is defined on.
LIKELIHOOD_PIXELS = {"bernoulli": UNIT_PIXEL_MODES, "mse": UNIT_PIXEL_MODES, DISCRETIZED_LOGISTIC: ("signed",)}
LOG_SCALE = "log_scale"  # the discretized logistic's learned log-scale: params["log_scale"], beside the module's
LOG_SCALE_INIT = -2.0  # s = e^-2 = 0.14 at the start (the data span [-1, 1]); learned from there
LOG_SCALE_MIN = -7.0  # PixelCNN++'s clamp
MUTABLE = ("batch_stats",)  # the mutable collections a VAE may carry in model_state


def reports_likelihood(likelihood: str, pixels: str) -> bool:
    """-ELBO and IWAE are likelihood bounds for a Bernoulli decoder on binary pixels and for the
    discretized logistic on 8-bit (signed) pixels; nowhere else."""
    return (likelihood == "bernoulli" and is_binary(pixels)) or (likelihood == DISCRETIZED_LOGISTIC
                                                                 and pixels == "signed")


def reconstruction_loss(logits: jax.Array, x: jax.Array, likelihood: str,
                        log_scale: jax.Array | None = None) -> jax.Array:
    """Per-image reconstruction term, summed over the last axis: -log p(x|z) for ``bernoulli``
    and ``discretized_logistic`` (location tanh(logits), ``log_scale`` broadcast against x),
    squared error of sigmoid(logits) for ``mse``."""
    if likelihood == "bernoulli":
        return -losses.bernoulli_log_likelihood(logits, x)
    if likelihood == "mse":
        return losses.squared_error(jax.nn.sigmoid(logits), x)
    if likelihood == DISCRETIZED_LOGISTIC:
        if log_scale is None:
            raise ValueError("the discretized logistic needs a log-scale (params['log_scale'])")
        return -losses.discretized_logistic_log_likelihood(jnp.tanh(logits), jnp.maximum(log_scale, LOG_SCALE_MIN), x)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def decoder_mean(logits: jax.Array, likelihood: str = "bernoulli") -> jax.Array:
    """The decoder's image in [0, 1] (for pictures and squared errors): sigmoid(logits), or for the
    discretized logistic its location tanh(logits) mapped from [-1, 1], (tanh(l) + 1) / 2."""
    if likelihood == DISCRETIZED_LOGISTIC:
        return 0.5 * (jnp.tanh(logits) + 1.0)
    return jax.nn.sigmoid(logits)


def unit_pixels(x: jax.Array, likelihood: str) -> jax.Array:
    """Pixels in [0, 1] whatever the likelihood's mode: signed pixels (the discretized logistic's) mapped back."""
    return 0.5 * (x + 1.0) if likelihood == DISCRETIZED_LOGISTIC else x


def squared_error(logits: jax.Array, x: jax.Array, likelihood: str) -> jax.Array:
    r"""Per image, \sum_i (x_i - \hat x_i)^2 in [0, 1] units, \hat x the :func:`decoder_mean`: the
    seeds' MSE scale, the same for every likelihood (for ``mse`` it is its reconstruction term)."""
    return losses.squared_error(decoder_mean(logits, likelihood), unit_pixels(x, likelihood))


def log_scale_of(params) -> jax.Array | None:
    """The discretized logistic's log-scale, flattened to one per sub-pixel (None without one)."""
    return params[LOG_SCALE].reshape(-1) if LOG_SCALE in params else None


def condition(model, labels: jax.Array | None) -> jax.Array | None:
    """The one-hot ``cond`` of a conditional ``model`` (``num_classes`` > 0) for integer
    ``labels``; None for an unconditional one."""
    classes = getattr(model, "num_classes", 0)
    if not classes:
        return None
    if labels is None:
        raise ValueError("a conditional VAE needs labels")
    return jax.nn.one_hot(labels, classes, dtype=jnp.float32)


def module_variables(params, model_state=None) -> dict:
    """The module's Flax variables: its parameters (without the likelihood's ``log_scale``) and
    the mutable collections of ``model_state`` (:data:`MUTABLE`; other entries, such as a
    sweep's hyperparameters, are not the module's)."""
    if LOG_SCALE in params:
        params = {k: v for k, v in params.items() if k != LOG_SCALE}
    return {"params": params, **{k: v for k, v in (model_state or {}).items() if k in MUTABLE}}


def _apply(model, params, *args, cond=None, method=None, model_state=None):
    """``model.apply`` in eval mode, with ``cond`` passed only when there is one."""
    extra = () if cond is None else (cond,)
    return model.apply(module_variables(params, model_state), *args, *extra, method=method)


def _train_forward(model, params, model_state, x, key, cond, mask):
    """The training forward pass -> ((logits, mean, log_var), model_state). With BatchNorm
    (``batch_stats`` in ``model_state``) in train mode: statistics over the rows ``mask`` marks
    real, the running averages updated and returned; otherwise ``model_state`` passes through."""
    if not any(k in model_state for k in MUTABLE):
        return _apply(model, params, x, key, cond=cond), model_state
    extra = () if cond is None else (cond,)
    mutable = [k for k in MUTABLE if k in model_state]
    out, updated = model.apply(module_variables(params, model_state), x, key, *extra, train=True, mask=mask,
                               mutable=mutable)
    return out, {**model_state, **updated}


def make_vae_loss(
    model: nn.Module,
    likelihood: str,
    pixels: str,
    beta: float = 1.0,
    kl_warmup_epochs: int = 0,
    steps_per_epoch: int = 1,
):
    """The training loss of :mod:`genjax.training.step`'s signature, for a batch ``{"image": uint8}``.

    loss = mean_images[ recon(x) + w(epoch) KL ],  w = :func:`losses.kl_weight`,

    the mean over the batch's real images (its ``"mask"``; see :func:`genjax.training.step.make_epoch`).
    A model with BatchNorm runs in train mode and returns its updated statistics as ``model_state``.
    """

    def loss_fn(params, model_state, batch, key, step):
        pixel_key, z_key = jax.random.split(key)
        images = to_pixels(batch["image"], pixels, pixel_key)
        (logits, mean, log_var), model_state = _train_forward(
            model, params, model_state, images, z_key, condition(model, batch.get("label")), batch.get("mask"))
        recon = reconstruction_loss(logits.reshape(images.shape[0], -1), images.reshape(images.shape[0], -1),
                                    likelihood, log_scale_of(params))
        kl = losses.kl_to_standard_normal(mean, log_var)
        weight = losses.kl_weight(step // steps_per_epoch, beta, kl_warmup_epochs)
        loss = masked_mean(recon + weight * kl, batch)
        return loss, (model_state, {"recon": masked_mean(recon, batch), "kl": masked_mean(kl, batch)})

    return loss_fn


KEY_NAMES = ("init", "state", "eval", "draw")  # a VAE run's keys (genjax.prng.run_keys), besides ``run``


def init_variables(model: nn.Module, key: jax.Array, image_shape: tuple[int, ...], likelihood: str = "bernoulli"):
    """(params, model_state) for images of ``image_shape`` (H, W, C): the module's parameters, plus
    ``log_scale`` (H, W, C) for the discretized logistic, and its mutable collections
    (``{"batch_stats": ...}`` with BatchNorm, else ``{}``) for :class:`genjax.training.step.TrainState`."""
    cond = condition(model, jnp.zeros((1,), jnp.int32))
    # Compiled: op by op, Flax's init compiles each small operation on its own (3-4x slower).
    init = jax.jit(model.init)(key, jnp.zeros((1, *image_shape)), key, *(() if cond is None else (cond,)))
    params = init["params"]
    if likelihood == DISCRETIZED_LOGISTIC:
        params = {**params, LOG_SCALE: jnp.full(tuple(image_shape), LOG_SCALE_INIT, jnp.float32)}
    return params, {k: v for k, v in init.items() if k != "params"}


def init_params(model: nn.Module, key: jax.Array, image_shape: tuple[int, ...], likelihood: str = "bernoulli"):
    """The parameters of :func:`init_variables` (all a model without BatchNorm has)."""
    return init_variables(model, key, image_shape, likelihood)[0]


@functools.partial(jax.jit, static_argnames=("model", "likelihood", "chunk", "mesh", "mse"))
def evaluate(model, params, x: jax.Array, key: jax.Array, likelihood: str, chunk: int = 1000, mesh=None,
             cond: jax.Array | None = None, model_state=None, mse: bool = False) -> dict:
    """Per-image recon and KL on float pixels ``x`` (N, H, W, C), one z each; averaged.

    ``neg_elbo`` = recon + KL is the -ELBO only where :func:`reports_likelihood`;
    otherwise it is the loss at beta = 1. With a ``mesh``, the images are
    split over its devices. Image i draws its z from ``split(key, N)[i]`` alone, so
    the result does not depend on ``chunk`` or the device count. ``cond``: the
    images' one-hot labels, for a conditional VAE. ``model_state``: BatchNorm's running
    averages (eval mode). ``mse``: also the :func:`squared_error` of the same reconstructions."""

    log_scale = log_scale_of(params)

    def one_chunk(args):
        xc, kc, cc = args
        logits, mean, log_var = jax.vmap(lambda xi, ki, ci: _apply(model, params, xi, ki, cond=ci,
                                                                    model_state=model_state))(xc, kc, cc)
        n = xc.shape[0]
        recon = reconstruction_loss(logits.reshape(n, -1), xc.reshape(n, -1), likelihood, log_scale)
        out = (recon, losses.kl_to_standard_normal(mean, log_var))
        return (*out, squared_error(logits.reshape(n, -1), xc.reshape(n, -1), likelihood)) if mse else out

    recon, kl, *sq = map_in_chunks(one_chunk, (x, jax.random.split(key, x.shape[0]), cond), chunk, mesh)
    out = {"recon": jnp.mean(recon), "kl": jnp.mean(kl), "neg_elbo": jnp.mean(recon + kl)}
    return {**out, "mse": jnp.mean(sq[0])} if mse else out


def log_importance_weights(model, params, x: jax.Array, key: jax.Array, k: int, cond=None,
                           likelihood: str = "bernoulli", model_state=None) -> jax.Array:
    r"""\log w_k = \log p(x|z_k) + \log p(z_k) - \log q(z_k|x) for a batch ``x`` (B, H, W, C): shape (K, B).
    ``likelihood``: ``bernoulli`` (binary x) or ``discretized_logistic`` (signed 8-bit x).

    ``key``: one key for the batch (the K x B x D noise drawn at once), or one key per image (B,),
    image i's K latents from ``normal(key[i], (K, D))`` alone, so a batch's values do not depend on
    how the images were batched (what :func:`iwae_per_image` uses). Either way the whole batch is
    encoded and its B K latents decoded together."""
    mean, log_var = _apply(model, params, x, cond=cond, method="encode", model_state=model_state)
    n = x.shape[0]
    if key.ndim == 0:  # (K, B, D)
        z = gaussian.reparameterize(key, mean, log_var, num_samples=k)
        x_flat, cond_z = x.reshape(n, -1), cond
    else:  # image-major, (B, K, D)
        eps = jax.vmap(lambda ki: prng.normal(ki, (k, mean.shape[-1]), mean.dtype))(key)
        z = mean[:, None] + jnp.exp(0.5 * log_var)[:, None] * eps
        x_flat, cond_z = x.reshape(n, 1, -1), None if cond is None else cond[:, None]
        mean, log_var = mean[:, None], log_var[:, None]
    logits = _apply(model, params, z, cond=cond_z, method="decode", model_state=model_state)
    log_px_z = -reconstruction_loss(logits.reshape(*z.shape[:-1], -1), x_flat, likelihood, log_scale_of(params))
    log_w = log_px_z + losses.standard_normal_log_density(z) - losses.gaussian_log_density(z, mean, log_var)
    return log_w if key.ndim == 0 else log_w.T


def iwae_chunk_size(k: int, num_pixels: int, budget: int = 1 << 22) -> int:
    """Images per chunk so that the K x chunk x pixels logits stay under ``budget`` floats.

    The default (16 MiB of logits) keeps a chunk's working set near the CPU's cache:
    measured here, twice as fast as chunks of 128 MiB."""
    return max(1, budget // (k * num_pixels))


@functools.partial(jax.jit, static_argnames=("model", "k", "chunk", "mesh", "likelihood"))
def iwae_per_image(model, params, x: jax.Array, keys: jax.Array, k: int, chunk: int, mesh=None,
                   cond: jax.Array | None = None, likelihood: str = "bernoulli", model_state=None):
    """Per image i, ``-log (1/K) sum_k w_k`` and ``-(1/K) sum_k log w_k`` with its K z's drawn from
    ``keys[i]`` alone: (nll (N,), neg_elbo (N,)), in chunks of ``chunk`` images (split over the
    ``mesh``'s devices). Any split of the images into calls gives the same values."""

    def one_chunk(args):
        xc, kc, cc = args
        log_w = log_importance_weights(model, params, xc, kc, k, cc, likelihood, model_state)  # (K, chunk)
        return -losses.importance_weighted_bound(log_w), -jnp.mean(log_w, axis=0)

    out = map_in_chunks(one_chunk, (x, keys, cond), chunk, mesh)
    # Replicated, so every process of a multi-host mesh can read all of it.
    return out if mesh is None else jax.lax.with_sharding_constraint(out, NamedSharding(mesh, P()))


@functools.partial(jax.jit, static_argnames=("model", "k", "chunk", "mesh", "likelihood"))
def iwae_nll(model, params, x: jax.Array, key: jax.Array, k: int, chunk: int, mesh=None,
             cond: jax.Array | None = None, likelihood: str = "bernoulli", model_state=None) -> dict:
    """Test NLL by the K-sample importance-weighted bound, and the K-sample ELBO estimate.

    Returns means over images of ``-log (1/K) sum_k w_k`` (``nll_iwae``) and of
    ``-(1/K) sum_k log w_k`` (``neg_elbo``, the same -ELBO as :func:`evaluate` but
    averaged over K samples instead of one). With a ``mesh``, the images are
    split over its devices. Image i draws its z's from ``split(key, N)[i]`` alone
    (:mod:`genjax.prng`, for every key implementation), so the result does not
    depend on ``chunk`` or on the number of devices (up to float rounding).
    ``likelihood`` and ``model_state`` as in :func:`log_importance_weights`.
    """
    nll, neg_elbo = iwae_per_image(model, params, x, jax.random.split(key, x.shape[0]), k, chunk, mesh, cond,
                                   likelihood, model_state)
    return {"nll_iwae": jnp.mean(nll), "neg_elbo": jnp.mean(neg_elbo)}


@functools.partial(jax.jit, static_argnames=("model", "n", "likelihood", "chunk"))
def prior_sample_means(model, params, key: jax.Array, n: int, cond: jax.Array | None = None, model_state=None,
                       likelihood: str = "bernoulli", chunk: int | None = None) -> jax.Array:
    """The decoder's mean (:func:`decoder_mean`, e.g. sigmoid(decoder(z))) for n draws z ~ N(0, I),
    in [0, 1], shaped as the decoder's output: (n, pixels) or (n, H, W, C) (conditional: sample i of
    class ``cond[i]``). ``chunk``: decode that many at a time (bounded memory, same values)."""
    z = prng.normal(key, (n, model.latent_dim))
    if chunk is None:
        return decoder_mean(_apply(model, params, z, cond=cond, method="decode", model_state=model_state), likelihood)
    return map_in_chunks(lambda a: decoder_mean(_apply(model, params, a[0], cond=a[1], method="decode",
                                                       model_state=model_state), likelihood), (z, cond), chunk)


def bernoulli_draws(key: jax.Array, means: jax.Array) -> jax.Array:
    """Binary images x ~ Bernoulli(means), pixel by pixel: a Bernoulli decoder's samples in its own
    pixel model (0.0 or 1.0, float32)."""
    return prng.bernoulli(key, means).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("model", "likelihood"))
def decode_means(model, params, z: jax.Array, cond: jax.Array | None = None, model_state=None,
                 likelihood: str = "bernoulli") -> jax.Array:
    return decoder_mean(_apply(model, params, z, cond=cond, method="decode", model_state=model_state), likelihood)


@functools.partial(jax.jit, static_argnames=("model",))
def encode_means(model, params, x: jax.Array, cond: jax.Array | None = None, model_state=None) -> jax.Array:
    return _apply(model, params, x, cond=cond, method="encode", model_state=model_state)[0]


def active_units(means: jax.Array, threshold: float = 0.01) -> jax.Array:
    r"""Active latent units (Burda et al. 2016): A_u = Cov_x(E_{q(z|x)}[z_u]) > ``threshold``,
    the variance over the data set of each posterior mean; ``means`` (N, D) -> count."""
    return jnp.sum(jnp.var(means, axis=0) > threshold)


__all__ = [
    "DISCRETIZED_LOGISTIC",
    "KEY_NAMES",
    "IMAGE_LIKELIHOODS",
    "LIKELIHOODS",
    "LIKELIHOOD_PIXELS",
    "LOG_SCALE",
    "active_units",
    "condition",
    "decode_means",
    "decoder_mean",
    "encode_means",
    "evaluate",
    "init_params",
    "init_variables",
    "iwae_chunk_size",
    "iwae_nll",
    "log_importance_weights",
    "log_scale_of",
    "make_vae_loss",
    "module_variables",
    "prior_sample_means",
    "reconstruction_loss",
    "reports_likelihood",
    "squared_error",
    "unit_pixels",
]
