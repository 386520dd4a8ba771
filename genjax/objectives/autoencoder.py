r"""The deterministic autoencoder family: its loss, denoising, reconstruction errors, PSNR, sampling.

Per image, with x the clean pixels in [0, 1], \tilde x the network's input and
\hat x = \sigma(\mathrm{decode}(\mathrm{encode}(\tilde x))) its output:

    bernoulli:  -\sum_i [x_i \log \hat x_i + (1 - x_i) \log(1 - \hat x_i)]   (from logits; seed 004's BCELoss(sum) / B)
    mse:        \sum_i (x_i - \hat x_i)^2                                     (seed 003's criterion, summed over pixels)

averaged over the batch's real images. A plain AE has \tilde x = x; a denoising AE
(``noise`` = \sigma_n > 0) sees \tilde x = clip(x + \sigma_n \epsilon, 0, 1),
\epsilon \sim N(0, I), a fresh draw each step (through :mod:`genjax.prng`, so each of K
vmapped models draws its own), and is still scored against the clean x.

PSNR of one image is 10 \log_{10}(1 / MSE) dB, MSE the mean over its pixels (peak 1);
tables report the mean over images of each image's PSNR.

The functions that read a model (:func:`codes`, :func:`reconstruct`, :func:`reconstruction_mse`)
take an AE or a VAE: a VAE's code is its posterior mean, so its reconstruction is
\sigma(\mathrm{decode}(\mu(x))), the same deterministic error an AE has.
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import prng
from genjax.data import UNIT_PIXEL_MODES, to_pixels
from genjax.devices import map_in_chunks
from genjax.errors import UsageError
from genjax.models.conv_ae import ConvAutoencoder, FullyConvAutoencoder
from genjax.models.mlp_ae import MLPAutoencoder
from genjax.objectives import vae
from genjax.objectives.losses import masked_mean

RECONSTRUCTIONS = ("bernoulli", "mse")  # the reconstruction terms, by the name of the VAE likelihood each is
MODELS = ("mlp", "conv", "fully_conv")
MSE_FLOOR = 1e-10  # PSNR of a perfect reconstruction: 100 dB, not infinity


# -- the pure pieces --------------------------------------------------------------------------

def reconstruction_error(logits: jax.Array, x: jax.Array, likelihood: str) -> jax.Array:
    """Per-image training error over the last axis (flattened pixels): ``bernoulli`` (binary
    cross-entropy) or ``mse`` above, the VAE's :func:`genjax.objectives.vae.reconstruction_loss`."""
    if likelihood not in RECONSTRUCTIONS:
        raise UsageError(f"unknown reconstruction loss {likelihood!r}: choose one of {', '.join(RECONSTRUCTIONS)}")
    return vae.reconstruction_loss(logits, x, likelihood)


def mean_squared_error(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """Per-image mean over pixels of (x - \\hat x)^2: every axis but the leading one."""
    d = jnp.square(jnp.asarray(target, jnp.float32) - prediction)
    return jnp.mean(d.reshape(d.shape[0], -1), axis=-1)


def psnr(prediction: jax.Array, target: jax.Array, peak: float = 1.0) -> jax.Array:
    r"""Per-image PSNR = 10 \log_{10}(peak^2 / MSE) dB (MSE floored at 1e-10: at most 100 dB for peak 1)."""
    return 10.0 * jnp.log10(peak ** 2 / jnp.maximum(mean_squared_error(prediction, target), MSE_FLOOR))


def corrupt(key: jax.Array, x: jax.Array, noise) -> jax.Array:
    r"""\tilde x = clip(x + noise \cdot \epsilon, 0, 1), \epsilon \sim N(0, I): the denoising AE's input.
    ``noise`` may be traced (a sweep's hyperparameter); a Python 0 returns x untouched."""
    if isinstance(noise, (int, float)) and noise == 0:
        return x
    return jnp.clip(x + noise * prng.normal(key, x.shape, x.dtype), 0.0, 1.0)


def make_ae_loss(model: nn.Module, likelihood: str, pixels: str, noise=0.0):
    """The training loss of :mod:`genjax.training.step`'s signature for a batch ``{"image": uint8}``:
    mean over the batch's real images of :func:`reconstruction_error` of the clean pixels,
    the input corrupted by ``noise`` (:func:`corrupt`). Metric ``mse``: per-pixel squared error."""
    reconstruction_error(jnp.zeros((1, 1)), jnp.zeros((1, 1)), likelihood)  # an unknown name fails here, not traced
    if pixels not in UNIT_PIXEL_MODES:
        raise UsageError(f"an autoencoder's sigmoid output needs pixels in [0, 1]: choose one of "
                         f"{', '.join(UNIT_PIXEL_MODES)}")

    def loss_fn(params, model_state, batch, key, step):
        pixel_key, noise_key = jax.random.split(key)
        clean = to_pixels(batch["image"], pixels, pixel_key)
        logits = model.apply({"params": params}, corrupt(noise_key, clean, noise))
        n = clean.shape[0]
        err = reconstruction_error(logits.reshape(n, -1), clean.reshape(n, -1), likelihood)
        mse = mean_squared_error(jax.nn.sigmoid(logits), clean)
        return masked_mean(err, batch), (model_state, {"mse": masked_mean(mse, batch)})

    return loss_fn


# -- models and their training pieces ---------------------------------------------------------

def from_config(config, image_shape) -> nn.Module:
    """The AE an :class:`~genjax.presets.AEConfig` describes: ``mlp`` (seed 003), ``conv``
    (seed 004) or ``fully_conv`` (seed 001, whose code is its last feature map)."""
    shape = tuple(int(n) for n in image_shape)
    if config.model == "mlp":
        return MLPAutoencoder(shape, tuple(config.hidden), config.latent_dim)
    if config.model == "conv":
        return ConvAutoencoder(shape, tuple(config.hidden), config.latent_dim)
    if config.model == "fully_conv":
        model = FullyConvAutoencoder(shape, tuple(config.hidden))
        if model.latent_dim != config.latent_dim:
            raise UsageError(f"{config.preset}: the code is the last feature map, {model.code_shape} = "
                             f"{model.latent_dim} numbers, not latent_dim {config.latent_dim}")
        return model
    raise UsageError(f"unknown autoencoder {config.model!r}: choose one of {', '.join(MODELS)}")


# -- evaluation -------------------------------------------------------------------------------

@partial(jax.jit, static_argnames=("model", "likelihood", "noise", "chunk", "mesh"))
def evaluate(model, params, x: jax.Array, key: jax.Array, likelihood: str, noise: float = 0.0, chunk: int = 1000,
             mesh=None) -> dict:
    """Means over test pixels ``x`` (N, H, W, C) of the training error (``loss``), the per-pixel
    ``mse`` and ``psnr`` of the output against the clean x; with ``noise`` > 0 the input is
    corrupted, image i by ``split(key, N)[i]`` alone (whatever the chunk or device count),
    and ``psnr_input`` is the noisy input's PSNR."""

    def one_chunk(args):
        xc, kc = args
        inputs = jax.vmap(lambda xi, ki: corrupt(ki, xi, noise))(xc, kc)
        logits = model.apply({"params": params}, inputs)
        n = xc.shape[0]
        out = jax.nn.sigmoid(logits)
        return (reconstruction_error(logits.reshape(n, -1), xc.reshape(n, -1), likelihood), mean_squared_error(out, xc),
                psnr(out, xc), psnr(inputs, xc))

    err, mse, p_out, p_in = map_in_chunks(one_chunk, (x, jax.random.split(key, x.shape[0])), chunk, mesh)
    result = {"loss": jnp.mean(err), "mse": jnp.mean(mse), "psnr": jnp.mean(p_out)}
    return {**result, "psnr_input": jnp.mean(p_in)} if noise else result


def _code(model, params, x, model_state=None):
    z = model.apply(vae.module_variables(params, model_state), x, method="encode")
    return z[0] if isinstance(z, tuple) else z  # a VAE's encoder gives (mean, log_var): its code is the mean


def _decode_mean(model, params, z, image_shape, model_state=None, likelihood="bernoulli"):
    logits = model.apply(vae.module_variables(params, model_state), z, method="decode")
    return vae.decoder_mean(logits, likelihood).reshape(z.shape[0], *image_shape)


@partial(jax.jit, static_argnames=("model", "chunk", "mesh"))
def codes(model, params, x: jax.Array, chunk: int = 1000, mesh=None, model_state=None) -> jax.Array:
    """The codes z (N, D) of images ``x``: an AE's encoder output, a VAE's posterior mean
    (``model_state``: a VAE's BatchNorm running averages; its ``log_scale`` is left out)."""
    return map_in_chunks(lambda xc: _code(model, params, xc, model_state), x, chunk, mesh)


@partial(jax.jit, static_argnames=("model", "chunk", "mesh", "likelihood"))
def reconstruct(model, params, x: jax.Array, chunk: int = 1000, mesh=None, model_state=None,
                likelihood: str = "bernoulli") -> jax.Array:
    """The decoder's mean at the code of x (\\sigma(decode(code(x))), or a VAE's ``likelihood``'s
    :func:`genjax.objectives.vae.decoder_mean`), shaped like ``x``, in [0, 1]."""
    return map_in_chunks(lambda xc: _decode_mean(model, params, _code(model, params, xc, model_state), xc.shape[1:],
                                                 model_state, likelihood), x, chunk, mesh)


@partial(jax.jit, static_argnames=("model", "chunk", "mesh", "likelihood"))
def reconstruction_mse(model, params, x: jax.Array, chunk: int = 1000, mesh=None, model_state=None,
                       likelihood: str = "bernoulli") -> jax.Array:
    """Per-image mean squared error (N,) of :func:`reconstruct` against ``x``: the anomaly score
    (``x`` in [0, 1]; a discretized-logistic VAE's signed pixels are compared in [0, 1] units)."""
    def one_chunk(xc):
        mean = _decode_mean(model, params, _code(model, params, xc, model_state), xc.shape[1:], model_state,
                            likelihood)
        return mean_squared_error(mean, vae.unit_pixels(xc, likelihood))

    return map_in_chunks(one_chunk, x, chunk, mesh)


@partial(jax.jit, static_argnames=("model", "n", "image_shape"))
def sample_means(model, params, key: jax.Array, n: int, image_shape: tuple, mean=None, chol=None) -> jax.Array:
    r"""\sigma(decode(z)) for n draws z = \mu + L \epsilon, \epsilon \sim N(0, I): N(0, I) by default, or the
    Gaussian :func:`fit_gaussian` fitted to the codes; shape (n, *image_shape)."""
    dim = model.latent_dim
    z = prng.normal(key, (n, dim))
    if chol is not None:
        z = z @ jnp.asarray(chol, jnp.float32).T
    if mean is not None:
        z = z + jnp.asarray(mean, jnp.float32)
    return _decode_mean(model, params, z, image_shape)


def fit_gaussian(z, jitter: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    r"""(\hat\mu, L) with L L^T = \hat\Sigma + jitter I: the Gaussian with the codes' mean and covariance (float64)."""
    z = np.asarray(z, np.float64)
    cov = np.atleast_2d(np.cov(z, rowvar=False)) + jitter * np.eye(z.shape[1])
    return z.mean(axis=0), np.linalg.cholesky(cov)


__all__ = ["MODELS", "RECONSTRUCTIONS", "codes", "corrupt", "evaluate", "fit_gaussian",
           "from_config", "make_ae_loss", "mean_squared_error", "psnr", "reconstruct", "reconstruction_error",
           "reconstruction_mse", "sample_means"]
