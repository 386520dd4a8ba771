r"""The autoencoder recipe: seed 003's MLP AE, seed 004's conv AE and seed 001's fully
convolutional one, plain or denoising (``noise`` > 0). The objective is :mod:`genjax.objectives.autoencoder`.

    ae = genjax.Autoencoder.from_preset("seed003").fit(images, epochs=5)
    z = ae.encode(images); x_hat = ae.reconstruct(images)       # codes; (N, H, W, C) in [0, 1]
    ae.sample(16, key=0)                          # decodes of z ~ N(0, I): what an AE samples badly
    ae.sample(16, key=0, fitted_to=images)        # decodes of z ~ N(mean, cov of the images' codes)

Test metrics: ``loss`` (the training error), per-pixel ``mse`` and ``psnr``; with noise,
``psnr_input`` of the corrupted input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from genjax import data
from genjax.data import inputs
from genjax.data.inputs import KeyLike
from genjax.devices import replicate
from genjax.errors import UsageError
from genjax.evaluation import plots
from genjax.objectives import autoencoder
from genjax.presets import AE_PRESETS, AEConfig
from genjax.recipes.base import Recipe
from genjax.runs import cli, run
from genjax.training.optim import make_optimizer
from genjax.training.step import TrainState, make_train_step

HYPERPARAMETERS = ("lr", "noise")  # what a sweep may vary per model in one program


def make_ae_step(model: nn.Module, likelihood: str, pixels: str, optimizer: str):
    """``step_for(hp)``: the training step of :func:`make_ae_loss` with ``hp = {"lr", "noise"}``
    (numbers, or traced scalars inside a :mod:`genjax.training.sweep`)."""

    def step_for(hp: dict):
        loss_fn = autoencoder.make_ae_loss(model, likelihood, pixels, hp["noise"])
        return make_train_step(loss_fn, make_optimizer(optimizer, hp["lr"]))

    return step_for


def hyperparameters(config) -> dict:
    """A config's :data:`HYPERPARAMETERS` as the dict :func:`make_ae_step` takes."""
    return {name: getattr(config, name) for name in HYPERPARAMETERS}


def _old_recon(text: str) -> str:
    """``--recon bce|mse``, the old spelling of ``--likelihood bernoulli|mse``."""
    value = {"bce": "bernoulli"}.get(text, text)
    if value not in autoencoder.RECONSTRUCTIONS:
        raise argparse.ArgumentTypeError(f"--likelihood must be one of {', '.join(autoencoder.RECONSTRUCTIONS)}, "
                                         f"got {text!r}")
    return value


def add_likelihood_flag(p: argparse.ArgumentParser, presets: dict, help: str = "the reconstruction term") -> None:
    """``--likelihood bernoulli|mse`` (the VAE scripts' name for the reconstruction term; ``--recon``
    is its old spelling): binary cross-entropy or squared error, summed over pixels."""
    run.preset_flag(p, "--likelihood", presets, choices=autoencoder.RECONSTRUCTIONS,
                    aliases={"--recon": {"type": _old_recon}},
                    help=f"{help}: bernoulli (binary cross-entropy) or mse (squared error), summed over pixels")


def add_flags(p: argparse.ArgumentParser, presets: dict) -> None:
    """The autoencoder's flags: ``--likelihood`` and ``--noise`` (a denoising AE when > 0)."""
    add_likelihood_flag(p, presets)
    run.preset_flag(p, "--noise", presets, type=cli.non_negative_float("--noise"),
                    help="denoising: std of the Gaussian noise added to the input (0: a plain AE)")


class Autoencoder(Recipe):
    """A deterministic autoencoder: code z = encode(x), reconstruction \\sigma(decode(z))."""

    family = "autoencoder"
    config_class = AEConfig
    presets = AE_PRESETS
    default_preset = "seed003"

    def _check_config(self) -> None:
        c = self.config
        if c.model not in autoencoder.MODELS:
            raise UsageError(f"unknown autoencoder {c.model!r}: choose one of {', '.join(autoencoder.MODELS)}")
        if c.likelihood not in autoencoder.RECONSTRUCTIONS:
            raise UsageError(f"unknown reconstruction loss {c.likelihood!r}: choose one of "
                             f"{', '.join(autoencoder.RECONSTRUCTIONS)}")
        if c.pixels not in data.UNIT_PIXEL_MODES:
            raise UsageError(f"an autoencoder's sigmoid output needs pixels in [0, 1]: choose one of "
                             f"{', '.join(data.UNIT_PIXEL_MODES)}")

    @property
    def model(self):
        """The Flax module (built for ``image_shape``)."""
        if self.image_shape is None:
            raise ValueError("the image shape is not known yet: fit the autoencoder on images first")
        return autoencoder.from_config(self.config, self.image_shape)

    def check_image_shape(self, shape) -> None:
        try:
            model = autoencoder.from_config(self.config, shape)
            out = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
            logits = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, *shape))), out)
        except (ValueError, TypeError, UsageError) as e:
            raise UsageError(f"the {self.config.model} autoencoder cannot take images of shape {tuple(shape)} ({e}); "
                             "resize them, or use the mlp model (any size)") from None
        if tuple(logits.shape[1:]) != tuple(shape):
            raise UsageError(f"the {self.config.model} autoencoder turns images of shape {tuple(shape)} into "
                             f"{tuple(logits.shape[1:])}: resize them, or use the mlp model (any size)")

    def init_state(self) -> TrainState:
        keys = self.keys()
        params = jax.jit(self.model.init)(keys["init"], jnp.zeros((1, *self.image_shape)))["params"]
        return TrainState.create(params, make_optimizer(self.config.optimizer, self.config.lr), keys["state"])

    def train_step(self, steps_per_epoch: int):
        c = self.config
        return make_ae_step(self.model, c.likelihood, c.pixels, c.optimizer)(hyperparameters(c))

    def test_pixels(self, test: data.ImageSet):
        return data.fixed_eval_pixels(test.images, self.config.pixels)

    def make_evaluate(self, test: data.ImageSet | None, mesh, steps_per_epoch: int = 1):
        if test is None:
            return lambda state: {}
        c, model, key = self.config, self.model, self.keys()["eval"]
        x_test = replicate(self.test_pixels(test), mesh)
        return lambda s: autoencoder.evaluate(model, s.params, x_test, key, c.likelihood, c.noise, mesh=mesh)

    def _pixels(self, images) -> jax.Array:
        x = self.image_set(images)
        self.with_image_shape(x.images.shape[1:])
        return self.test_pixels(x)

    def encode(self, images: ArrayLike) -> np.ndarray:
        """The codes z (N, latent_dim) of ``images``."""
        return np.asarray(autoencoder.codes(self.model, self._need_state().params, self._pixels(images)))

    def decode(self, z: ArrayLike) -> np.ndarray:
        """\\sigma(decode(z)): images (N, H, W, C) in [0, 1] for codes ``z`` (N, latent_dim)."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.model.latent_dim:
            raise ValueError(f"z: expected codes shaped (N, {self.model.latent_dim}), got {z.shape}")
        logits = self.model.apply({"params": self._need_state().params}, jnp.asarray(z), method="decode")
        return np.asarray(jax.nn.sigmoid(logits)).reshape(len(z), *self.image_shape)

    def reconstruct(self, images: ArrayLike) -> np.ndarray:
        """decode(encode(x)), (N, H, W, C) in [0, 1]."""
        return np.asarray(autoencoder.reconstruct(self.model, self._need_state().params, self._pixels(images)))

    def evaluate(self, images: ArrayLike, key: KeyLike | None = None) -> dict:
        """The test metrics of ``images`` (``loss``, ``mse``, ``psnr``; ``psnr_input`` with noise)."""
        key = self.keys()["eval"] if key is None else inputs.as_key(key, self.config.prng)
        m = autoencoder.evaluate(self.model, self._need_state().params, self._pixels(images), key,
                                 self.config.likelihood, self.config.noise)
        return {k: float(v) for k, v in m.items()}

    def fitted_gaussian(self, images: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(mean, Cholesky factor) of the Gaussian fitted to the codes of ``images``."""
        return autoencoder.fit_gaussian(self.encode(images))

    def sample(self, n: int, key: KeyLike = 0, fitted_to: ArrayLike | tuple | None = None) -> np.ndarray:
        """``n`` decodes (n, H, W, C) in [0, 1] of z ~ N(0, I), or with ``fitted_to`` (images, or a
        (mean, chol) pair from :meth:`fitted_gaussian`) of z ~ the Gaussian of those codes."""
        n, params = inputs.as_count(n), self._need_state().params
        mean = chol = None
        if fitted_to is not None:
            mean, chol = fitted_to if isinstance(fitted_to, tuple) else self.fitted_gaussian(fitted_to)
        return np.asarray(autoencoder.sample_means(self.model, params, inputs.as_key(key, self.config.prng), n,
                                                   self.image_shape, mean, chol))




def draw_reconstructions(out: Path, ae: Autoencoder, test: data.ImageSet, psnr: float, n: int = 10) -> None:
    """reconstructions.png: ``n`` test images and their reconstructions; with noise, the noisy
    inputs the evaluation scores (image i corrupted by split(eval key, N)[i]) between them."""
    n = min(n, len(test))
    clean = np.asarray(ae.test_pixels(test)[:n])
    rows = [clean]
    if ae.config.noise:
        keys_i = jax.random.split(ae.keys()["eval"], len(test))[:n]
        rows.append(np.asarray(jax.vmap(lambda x, k: autoencoder.corrupt(k, x, ae.config.noise))(clean, keys_i)))
    rows.append(np.asarray(autoencoder.reconstruct(ae.model, jax.device_get(ae.params), rows[-1])))
    what = "test images, noisy inputs, outputs" if ae.config.noise else "test images (top), reconstructions"
    plots.save_grid(out / "reconstructions.png", np.concatenate(rows), len(rows), n,
                    f"{what}; test PSNR {psnr:.2f} dB", scale=3)


def save_loss_curves(out: Path, ae: Autoencoder, title: str) -> None:
    """losses.png: the train and test reconstruction error per epoch."""
    plots.save_curves(out / "losses.png", [row["epoch"] for row in ae.history],
                      {split: [row[f"{split}_loss"] for row in ae.history] for split in ("train", "test")},
                      f"{ae.config.likelihood} per image", title)


def cli_run(args: argparse.Namespace, presets: dict) -> dict:
    """The whole run of ``python -m experiments.ae_cifar10``: train, the final test metrics (loss,
    per-pixel MSE, PSNR), reconstructions.png and losses.png, metrics.json last."""
    config = run.config_from_args(args, presets)
    r = run.Run(args, config, resumable=("epochs",))
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    ae = Autoencoder(config).train(train, test, run=r, mesh=mesh, progress=r.progress)
    final = run.last_test_metrics(ae.history, ae.make_evaluate(test, mesh), ae.state)
    metrics = {**r.summary(ae.history, mesh), "model": config.model, "likelihood": config.likelihood,
               "noise": config.noise, "code_shape": list(ae.model.code_shape),
               **{f"test_{k}": v for k, v in final.items()}}
    if r.writes_files:
        draw_reconstructions(r.out, ae, test, final["psnr"])
        save_loss_curves(r.out, ae, f"{config.preset} autoencoder on {config.dataset}")
    return r.finish(metrics, ae.history)


def cli_script(doc: str, prog: str, default_out: Path, presets: dict, default_preset: str):
    """(parser, experiment) of an autoencoder script: the shared run flags, :func:`add_flags`, :func:`cli_run`."""
    parser = run.parser(doc, prog, default_out, presets, default_preset)
    add_flags(parser, presets)
    return parser, lambda args: cli_run(args, presets)


__all__ = ["HYPERPARAMETERS", "Autoencoder", "add_flags", "add_likelihood_flag", "cli_run", "cli_script",
           "draw_reconstructions", "hyperparameters", "make_ae_step", "save_loss_curves"]
