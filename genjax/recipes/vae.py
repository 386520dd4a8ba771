r"""The VAE recipe: every VAE of the library (MLP, convolutional, conditional, any likelihood),
built, trained, evaluated, sampled and saved in one place. The objective is :mod:`genjax.objectives.vae`.

    vae = genjax.VAE.from_preset("seed002").fit(images, epochs=5)   # uint8 or [0, 1] floats
    x = vae.sample(16, key=0)                                        # (16, H, W, C) in [0, 1]
    vae.neg_elbo(test_images), vae.iwae(test_images, k=1000)         # nats per image

Test metrics, per image (nats, summed over sub-pixels; one z per image):

* ``loss`` = recon + \beta KL (the objective at \beta, without warm-up), ``recon``, ``kl``; with a KL
  warm-up also ``objective`` = recon + w KL, w the weight of the epoch just trained
  (:func:`genjax.objectives.losses.kl_weight`): the loss training optimized at that epoch;
* ``mse``: \sum_i (x_i - \hat x_i)^2 of the same reconstructions, in [0, 1] units
  (:func:`genjax.objectives.vae.squared_error`: the seeds' MSE scale, comparable across likelihoods);
* where the likelihood is one (:func:`genjax.objectives.vae.reports_likelihood`): ``neg_elbo``, and at the
  end ``nll_iwae`` (``iwae_k`` importance samples); for the discretized logistic both also in
  bits per sub-pixel (:func:`genjax.objectives.losses.bits_per_dim`).

A config with ``train_on_test`` (seed 004) trains on the training and test splits together, as
its seed does: its test numbers are then on training data (``test_split_in_training``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from genjax import data
from genjax.data import inputs
from genjax.data.inputs import KeyLike
from genjax.devices import data_mesh, map_in_parts, mesh_chunk, replicate
from genjax.errors import UsageError
from genjax.evaluation import plots
from genjax.models import mlp_vae
from genjax.models.conv_vae import SEED_ARCHITECTURES, ConvVAE
from genjax.objectives import latent, losses, vae
from genjax.presets import (
    CELEBA_VAE_PRESETS,
    CIFAR10_VAE_PRESETS,
    CONV_VAE_MNIST_PRESETS,
    CVAE_PRESETS,
    PRESETS,
    VAEConfig,
)
from genjax.recipes.base import Recipe
from genjax.runs import cli, run
from genjax.training.optim import make_optimizer
from genjax.training.step import TrainState, make_train_step

IWAE_PARTS = 20  # host-level calls of the IWAE evaluation: a progress bar step each
FLOAT_BUDGET = 1 << 22  # floats per image chunk in evaluation and sampling (bounded memory, same values)

# Every VAE preset under one unique name (the CLI scripts' names, the conv ones prefixed).
VAE_PRESETS = {**PRESETS, **CVAE_PRESETS, **{f"conv_{k}": v for k, v in CONV_VAE_MNIST_PRESETS.items()},
               **{f"cifar10_{k}": v for k, v in CIFAR10_VAE_PRESETS.items()}, **CELEBA_VAE_PRESETS}


HYPERPARAMETERS = ("lr", "beta", "kl_warmup_epochs")  # what a sweep may vary per model in one program


def make_vae_step(model: nn.Module, likelihood: str, pixels: str, optimizer: str, steps_per_epoch: int):
    """``step_for(hp)``: the training step (:func:`genjax.training.step.make_train_step`) of the
    VAE loss with hyperparameters ``hp = {"lr", "beta", "kl_warmup_epochs"}`` (numbers,
    or traced scalars inside a sweep). The optimizer's state does not depend on the
    learning rate, so one ``tx.init`` serves every rate."""

    def step_for(hp: dict):
        loss_fn = vae.make_vae_loss(model, likelihood, pixels, hp["beta"], hp["kl_warmup_epochs"], steps_per_epoch)
        return make_train_step(loss_fn, make_optimizer(optimizer, hp["lr"]))

    return step_for


def hyperparameters(config) -> dict:
    """A config's :data:`HYPERPARAMETERS` as the dict :func:`make_vae_step` takes."""
    return {name: getattr(config, name) for name in HYPERPARAMETERS}


def make_model(config: VAEConfig, image_shape) -> mlp_vae.VAE | ConvVAE:
    """The VAE module ``config.architecture`` names, for images of ``image_shape`` (H, W, C)."""
    shape = tuple(int(n) for n in image_shape)
    if config.architecture == "mlp":
        return mlp_vae.from_config(config, shape)
    return ConvVAE(**{**SEED_ARCHITECTURES[config.architecture], "image_shape": shape,
                      "latent_dim": config.latent_dim})


class VAE(Recipe):
    """A VAE: encoder q(z|x), decoder p(x|z), prior N(0, I); trained on the (\\beta-weighted) -ELBO."""

    family = "vae"
    config_class = VAEConfig
    presets = VAE_PRESETS
    default_preset = "seed002"
    resumable = ("epochs", "iwae_k", "num_samples", "interpolation")

    # -- building ------------------------------------------------------------------------------

    def _check_config(self) -> None:
        c = self.config
        if c.architecture != "mlp" and c.architecture not in SEED_ARCHITECTURES:
            raise UsageError(f"unknown architecture {c.architecture!r}: choose mlp or one of "
                             f"{', '.join(SEED_ARCHITECTURES)}")
        if c.likelihood not in vae.IMAGE_LIKELIHOODS:
            raise UsageError(f"unknown likelihood {c.likelihood!r}: choose one of {', '.join(vae.IMAGE_LIKELIHOODS)}")
        if c.pixels not in vae.LIKELIHOOD_PIXELS[c.likelihood]:
            raise UsageError(f"pixels {c.pixels!r} do not suit the {c.likelihood} likelihood: choose "
                             f"{' or '.join(vae.LIKELIHOOD_PIXELS[c.likelihood])}")
        if c.num_classes and c.architecture != "mlp":
            raise UsageError("a conditional VAE (num_classes > 0) is an MLP VAE: set architecture='mlp'")

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    @property
    def model(self) -> mlp_vae.VAE | ConvVAE:
        """The Flax module (built for ``image_shape``)."""
        if self.image_shape is None:
            raise ValueError("the image shape is not known yet: fit the VAE on images first")
        return make_model(self.config, self.image_shape)

    def check_image_shape(self, shape) -> None:
        arch = self.config.architecture
        if arch != "mlp" and tuple(SEED_ARCHITECTURES[arch]["image_shape"]) != tuple(shape):
            raise UsageError(f"the {arch} architecture takes images of shape "
                             f"{tuple(SEED_ARCHITECTURES[arch]['image_shape'])}, these are {tuple(shape)}: resize "
                             "them, or use architecture='mlp' (any size)")

    def check_labels(self, images, labels, name: str = "labels"):
        if not self.conditional:
            if labels is not None:
                raise ValueError(f"{name}: this VAE is unconditional (num_classes=0); drop the labels, or "
                                 "build a conditional one with num_classes=...")
            return None
        if labels is None:
            raise ValueError(f"{name}: this VAE is conditional (num_classes={self.config.num_classes}): pass "
                             "the images' class labels, labels=...")
        return inputs.as_labels(labels, len(images), self.config.num_classes, name)

    def init_state(self) -> TrainState:
        keys = self.keys()
        params, model_state = vae.init_variables(self.model, keys["init"], self.image_shape, self.config.likelihood)
        tx = make_optimizer(self.config.optimizer, self.config.lr)
        return TrainState.create(params, tx, keys["state"], model_state=model_state)

    def train_step(self, steps_per_epoch: int):
        return self.step_for(steps_per_epoch)(hyperparameters(self.config))

    def train_data(self, train: data.ImageSet) -> dict:
        return {"image": train.images, **({"label": train.labels} if self.conditional else {})}

    @classmethod
    def fit_many(cls, recipes: list[VAE], images: ArrayLike, labels: ArrayLike | None = None, *,
                 epochs: int | None = None, test_images: ArrayLike | None = None,
                 test_labels: ArrayLike | None = None, progress: bool = True) -> list[VAE]:
        """Train several VAEs at once: recipes that differ only in ``lr``, ``beta``,
        ``kl_warmup_epochs`` or ``seed`` run as one vmapped program on shared batches
        (:mod:`genjax.recipes.sweep`); others as one program per group. Each returned VAE is the one
        ``recipe.fit`` would make, but for the batch order (the first recipe's)."""
        from genjax.recipes.sweep import train_many

        recipes = [r if epochs is None else r._replace(config=dataclasses.replace(r.config, epochs=epochs))
                   for r in recipes]
        if not recipes or not all(isinstance(r, cls) for r in recipes):
            raise ValueError(f"fit_many takes a non-empty list of {cls.__name__} recipes")
        first = recipes[0]
        train = first.image_set(images, labels)
        test = None if test_images is None else first.image_set(test_images, test_labels, "test_images")
        return train_many(recipes, train, test, progress=progress)

    # -- evaluation ----------------------------------------------------------------------------

    @property
    def reports_likelihood(self) -> bool:
        return vae.reports_likelihood(self.config.likelihood, self.config.pixels)

    @property
    def chunk(self) -> int:
        return max(8, min(1000, FLOAT_BUDGET // int(np.prod(self.image_shape))))

    def _cond(self, labels) -> jax.Array | None:
        return None if labels is None else vae.condition(self.model, jnp.asarray(labels))

    def test_pixels(self, test: data.ImageSet) -> jax.Array:
        """A test set's pixels in the config's pixel mode (``stochastic``: one fixed draw)."""
        return data.fixed_eval_pixels(test.images, self.config.pixels)

    def eval_arrays(self, test: data.ImageSet):
        """(pixels, one-hot labels or None) of a test set (:meth:`test_pixels`)."""
        return self.test_pixels(test), self._cond(test.labels)

    def test_metrics(self, x_test: jax.Array, cond: jax.Array | None, mesh, objective: bool | None = None):
        """``metrics(params, model_state, key, beta, weight) -> dict``: the test metrics of the module
        docstring on pixels ``x_test`` (one z per image, image i from ``split(key, N)[i]``); a pure
        function of its arguments, so a sweep vmaps it over K models' parameters, keys, betas and KL
        weights. ``objective`` (default: with a KL warm-up) adds recon + weight KL."""
        c, model, reports = self.config, self.model, self.reports_likelihood
        objective = c.kl_warmup_epochs > 0 if objective is None else objective

        def metrics(params, model_state, key: jax.Array, beta, weight) -> dict:
            m = vae.evaluate(model, params, x_test, key, c.likelihood, self.chunk, mesh, cond=cond,
                             model_state=model_state, mse=True)
            out = {"loss": m["recon"] + beta * m["kl"], "recon": m["recon"], "kl": m["kl"], "mse": m["mse"]}
            if objective:
                out["objective"] = m["recon"] + weight * m["kl"]
            return {**out, "neg_elbo": m["neg_elbo"]} if reports else out

        return metrics

    def make_evaluate(self, test: data.ImageSet | None, mesh, steps_per_epoch: int = 1):
        if test is None:
            return lambda state: {}
        x_test, cond = replicate(self.eval_arrays(test), mesh)
        c, metrics, key = self.config, self.test_metrics(x_test, cond, mesh), self.keys()["eval"]

        def evaluate(state: TrainState) -> dict:
            # The KL weight of the last step taken (its epoch's, losses.kl_weight): what training optimized.
            weight = losses.kl_weight((state.step - 1) // steps_per_epoch, c.beta, c.kl_warmup_epochs)
            return metrics(state.params, state.model_state, key, c.beta, weight)

        return evaluate

    def step_for(self, steps_per_epoch: int):
        """``step_for(hp)``: the train step at hyperparameters ``hp`` (:func:`make_vae_step`)."""
        c = self.config
        return make_vae_step(self.model, c.likelihood, c.pixels, c.optimizer, steps_per_epoch)

    def _eval_set(self, images, labels):
        x = self.image_set(images, labels)
        self.with_image_shape(x.images.shape[1:])
        return self.eval_arrays(x)

    def neg_elbo(self, images: ArrayLike, labels: ArrayLike | None = None, key: KeyLike | None = None) -> float:
        """Mean over ``images`` of -ELBO (nats per image, one z each; the loss at beta 1 where the
        likelihood is not one). ``key``: the z's (default: the config's evaluation key)."""
        x, cond = self._eval_set(images, labels)
        key = self.keys()["eval"] if key is None else inputs.as_key(key, self.config.prng)
        s = self._need_state()
        m = vae.evaluate(self.model, s.params, x, key, self.config.likelihood, self.chunk, cond=cond,
                         model_state=s.model_state)
        return float(m["neg_elbo"])

    def iwae(self, images: ArrayLike, labels: ArrayLike | None = None, k: int | None = None,
             key: KeyLike | None = None) -> float:
        """The K-sample importance-weighted bound on -log p(x), nats per image (K = ``k`` or the config's
        ``iwae_k``): a likelihood only for a Bernoulli decoder on binary pixels or the discretized
        logistic on 8-bit pixels."""
        if not self.reports_likelihood:
            raise ValueError(f"the {self.config.likelihood} decoder on {self.config.pixels} pixels has no likelihood "
                             "to bound: use likelihood='bernoulli' with pixels='threshold', or 'discretized_logistic'")
        x, cond = self._eval_set(images, labels)
        k = self.config.iwae_k if k is None else inputs.as_count(k, "k")
        key = None if key is None else inputs.as_key(key, self.config.prng)
        return float(self.iwae_bound(x, cond, k, key)["nll_iwae"])

    def iwae_bound(self, x: jax.Array, cond: jax.Array | None = None, k: int | None = None, key=None,
                   mesh=None, progress: bool = False) -> dict:
        """:func:`genjax.objectives.vae.iwae_nll` of the trained model on pixels ``x`` (``k``: the
        config's ``iwae_k`` by default; ``key``: ``fold_in(eval key, 1)`` by default): the means over
        images (float64, on the host) of :func:`~genjax.objectives.vae.iwae_per_image`, image i's z's
        drawn from ``split(key, N)[i]``. Computed in :data:`IWAE_PARTS` calls, with a progress bar
        and its ETA when ``progress``; the numbers do not depend on it."""
        c, s = self.config, self._need_state()
        k = c.iwae_k if k is None else k
        key = jax.random.fold_in(self.keys()["eval"], 1) if key is None else key
        n, chunk = x.shape[0], vae.iwae_chunk_size(k, x[0].size)
        rounded = mesh_chunk(chunk, mesh)  # map_in_chunks' chunk
        part = rounded * max(1, -(-n // (rounded * IWAE_PARTS)))

        def per_image(xs, ks, cs):
            return vae.iwae_per_image(self.model, s.params, xs, ks, k, chunk, mesh, cs, c.likelihood, s.model_state)

        nll, neg_elbo = map_in_parts(per_image, (x, jax.random.split(key, n), cond), part, progress,
                                     f"IWAE, k = {k}")
        return {"nll_iwae": float(np.mean(nll, dtype=np.float64)),
                "neg_elbo": float(np.mean(neg_elbo, dtype=np.float64))}

    def final_metrics(self, test: data.ImageSet, mesh=None, train_images: int | None = None,
                      progress: bool = False) -> dict:
        """metrics.json's VAE fields: the final test metrics (the last epoch's), and for a
        likelihood the IWAE bound (and bits/dim for the discretized logistic; ``progress``: its bar)."""
        c, s = self.config, self._need_state()
        final = run.last_test_metrics(self.history, self.make_evaluate(test, mesh or data_mesh()), s)
        metrics = {"dataset": c.dataset, "architecture": c.architecture, "pixels": c.pixels,
                   "binarization": data.BINARIZATION[c.pixels], "likelihood": c.likelihood,
                   **({"train_images": train_images} if train_images is not None else {}),
                   **{f"test_{k}": v for k, v in final.items()}}
        if c.train_on_test:
            metrics.update(test_split_in_training=True,
                           train_loss=self.history[-1]["train_loss"] if self.history else None)  # the seed's print
        if self.reports_likelihood:
            x_test, cond = self.eval_arrays(test)
            t0 = time.perf_counter()
            iw = self.iwae_bound(x_test, cond, mesh=mesh, progress=progress)
            metrics.update(test_nll_iwae=float(iw["nll_iwae"]), test_neg_elbo_k_samples=float(iw["neg_elbo"]),
                           iwae_k=c.iwae_k, iwae_seconds=round(time.perf_counter() - t0, 3))
            if c.likelihood == vae.DISCRETIZED_LOGISTIC:
                dims = int(x_test[0].size)
                metrics.update(test_bits_per_dim=float(losses.bits_per_dim(metrics["test_nll_iwae"], dims)),
                               test_neg_elbo_bits_per_dim=float(losses.bits_per_dim(metrics["test_neg_elbo"], dims)),
                               mean_log_scale=float(jnp.mean(s.params[vae.LOG_SCALE])))
        return metrics

    # -- drawing -------------------------------------------------------------------------------

    def sample_labels(self, n: int) -> np.ndarray:
        """Labels for ``n`` samples of a conditional VAE: the classes in turn, equally often."""
        return np.arange(n, dtype=np.int32) % self.config.num_classes

    @property
    def binary_pixels(self) -> bool:
        """A Bernoulli decoder on binarized pixels (threshold or stochastic): its samples are binary
        images, x ~ Bernoulli(decoder mean), scored against binarized references."""
        return self.config.likelihood == "bernoulli" and data.is_binary(self.config.pixels)

    def sample(self, n: int, key: KeyLike = 0, labels: ArrayLike | None = None, binary: bool = False) -> np.ndarray:
        """``n`` images (n, H, W, C) in [0, 1]: the decoder's mean for z ~ N(0, I) drawn from ``key``
        (an int seed or a JAX key). A conditional VAE draws image i of class ``labels[i]``
        (default: the classes in turn). ``binary`` (a Bernoulli decoder): the binary images
        x ~ Bernoulli(mean) of the same z's instead, their pixels drawn from ``fold_in(key, 1)``."""
        if binary and self.config.likelihood != "bernoulli":
            raise ValueError(f"binary=True: a {self.config.likelihood} decoder has no Bernoulli samples; "
                             "leave binary=False for its means")
        key = inputs.as_key(key, self.config.prng)
        means = self._sample_means(inputs.as_count(n), key, labels)
        return self._bernoulli(key, means) if binary else means

    @staticmethod
    def _bernoulli(key: jax.Array, means: np.ndarray) -> np.ndarray:
        """The binary images of :meth:`sample` ``(binary=True)`` for the means it drew from ``key``."""
        return np.asarray(vae.bernoulli_draws(jax.random.fold_in(key, 1), means))

    def scored_samples(self, n: int, key: KeyLike = 0, labels: ArrayLike | None = None) -> tuple[np.ndarray, str]:
        """(samples, pixel model) to score: a binary-pixel model's Bernoulli draws with its own
        binarization (:attr:`binary_pixels`), any other VAE's means with greyscale references
        (:meth:`scored_from` of ``sample(n, key, labels)``)."""
        return self.scored_from(self.sample(n, key, labels), key)

    def scored_from(self, means: np.ndarray, key: KeyLike = 0) -> tuple[np.ndarray, str]:
        """:meth:`scored_samples` for the ``means`` that ``sample(n, key, ...)`` returned, without
        decoding them again: a binary-pixel model's draws are ``sample(n, key, ..., binary=True)``'s."""
        if self.binary_pixels:
            return self._bernoulli(inputs.as_key(key, self.config.prng), means), self.config.pixels
        return means, "float"

    def run_samples(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The samples a run saves, from the first split of its draw key: (the decoder means of
        max(num_samples, 64) prior draws (N, H, W, C); their Bernoulli draws for a binary-pixel model,
        else None; the classes asked for, conditional, else None). samples.npy, samples_binary.npy and
        sample_labels.npy hold the first ``num_samples``, the evaluator scores them
        (:meth:`scored_run_samples`), samples.png shows the first 64 means."""
        c = self.config
        key = jax.random.split(self.keys()["draw"])[0]
        n = max(c.num_samples, 64)
        labels = self.sample_labels(n) if self.conditional else None
        means = self.sample(n, key, labels)  # decoded once; the draws are sample(binary=True)'s
        return means, (self._bernoulli(key, means) if self.binary_pixels else None), labels

    def scored_run_samples(self, samples: tuple | None = None) -> tuple[np.ndarray, str, np.ndarray | None]:
        """(samples, pixel model, labels) that the evaluator scores of a run (:meth:`run_samples`, the
        first ``num_samples``): a binary-pixel model's Bernoulli draws against binarized references,
        any other VAE's means against greyscale ones. ``samples``: :meth:`run_samples`' result where
        the caller has it already (not decoded again)."""
        means, draws, labels = self.run_samples() if samples is None else samples
        n = self.config.num_samples
        labels = None if labels is None else labels[:n]
        return (draws[:n], self.config.pixels, labels) if draws is not None else (means[:n], "float", labels)

    def _sample_means(self, n: int, key: jax.Array, labels: ArrayLike | None) -> np.ndarray:
        s = self._need_state()
        if self.conditional and labels is None:
            labels = self.sample_labels(n)
        labels = self.check_labels(np.zeros((n,)), labels)
        means = vae.prior_sample_means(self.model, s.params, key, n, self._cond(labels), s.model_state,
                                       self.config.likelihood, self.chunk)
        return np.asarray(means).reshape(n, *self.image_shape)

    def encode(self, images: ArrayLike, labels: ArrayLike | None = None) -> np.ndarray:
        """The posterior means E[z | x] (N, latent_dim) of ``images``."""
        x, cond = self._eval_set(images, labels)
        s = self._need_state()
        return np.asarray(vae.encode_means(self.model, s.params, x, cond, s.model_state))

    def decode(self, z: ArrayLike, labels: ArrayLike | None = None) -> np.ndarray:
        """The decoder's mean image (N, H, W, C) in [0, 1] for latents ``z`` (N, latent_dim)."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z: expected latents shaped (N, {self.config.latent_dim}), got {z.shape}")
        cond = self._cond(self.check_labels(z, labels))
        s = self._need_state()
        out = vae.decode_means(self.model, s.params, jnp.asarray(z), cond, s.model_state, self.config.likelihood)
        return np.asarray(out).reshape(len(z), *self.image_shape)

    def reconstruct(self, images: ArrayLike, labels: ArrayLike | None = None) -> np.ndarray:
        """decode(encode(x)): the decoder's mean at each image's posterior mean, (N, H, W, C) in [0, 1]."""
        return self.decode(self.encode(images, labels), labels)

    def write_outputs(self, out: Path, test: data.ImageSet) -> None:
        """samples.npy (N, H, W) grey or (N, H, W, 3) colour in [0, 1]: the decoder means of N prior
        draws (a binary-pixel model also writes samples_binary.npy, their Bernoulli draws, what the
        evaluator scores), samples.png, reconstructions.png, interpolation.png, elbo.png;
        latent_scatter.png and manifold.png for a 2-D latent. A conditional VAE draws the classes in
        turn (sample_labels.npy)."""
        c, model, s = self.config, self.model, self._need_state()
        params, model_state = jax.device_get((s.params, s.model_state))
        shape = self.image_shape

        def as_images(a) -> np.ndarray:  # (N, H, W) grey, (N, H, W, 3) colour
            a = np.asarray(a).reshape(-1, *shape)
            return a[..., 0] if shape[-1] == 1 else a

        k_recon = jax.random.split(self.keys()["draw"])[1]
        means, draws, labels = self.run_samples()
        means = as_images(means)
        plots.save_grid(out / "samples.png", means[:64], 8, 8, f"{c.preset}: prior samples (decoder means)")
        np.save(out / "samples.npy", means[: c.num_samples].astype(np.float32))
        if draws is not None:
            np.save(out / "samples_binary.npy", as_images(draws)[: c.num_samples])
        if self.conditional:
            np.save(out / "sample_labels.npy", labels[: c.num_samples])
        x_test, cond = self.eval_arrays(test)
        originals, cond12 = x_test[:12], None if cond is None else cond[:12]
        logits, _, _ = model.apply(vae.module_variables(params, model_state), originals, k_recon,
                                   *(() if cond12 is None else (cond12,)))
        plots.save_reconstructions(out / "reconstructions.png", as_images(vae.unit_pixels(originals, c.likelihood)),
                                   as_images(vae.decoder_mean(logits, c.likelihood)),
                                   "test images (top) and reconstructions (bottom)")
        if not self.conditional:
            z = vae.encode_means(model, params, x_test[:20], model_state=model_state)
            rows = [vae.decode_means(model, params, latent.interpolate(z[2 * i], z[2 * i + 1], 10, c.interpolation),
                                     model_state=model_state, likelihood=c.likelihood) for i in range(5)]
            plots.save_grid(out / "interpolation.png", as_images(np.concatenate([np.asarray(r) for r in rows])), 5,
                            10, f"{c.interpolation} interpolation between encoded test images")
        if c.latent_dim == 2 and not self.conditional:
            if test.labels is not None:
                z_all = np.asarray(vae.encode_means(model, params, x_test, model_state=model_state))
                plots.save_latent_scatter(out / "latent_scatter.png", z_all, test.labels,
                                          "test set: latent means by class")
            # Seed 004's plot_latent_space: a 30 x 30 grid over [-2, 2]^2.
            grid = vae.decode_means(model, params, jnp.asarray(plots.manifold_grid(30, 2.0)), model_state=model_state,
                                    likelihood=c.likelihood)
            plots.save_grid(out / "manifold.png", as_images(grid), 30, 30, "decoded latent grid, z in [-2, 2]^2")
        bound, history = self.reports_likelihood, self.history
        train_curve = [row["train_recon"] + row["train_kl"] if bound else row["train_loss"] for row in history]
        test_curve = [row["test_neg_elbo" if bound else "test_loss"] for row in history]
        plots.save_curves(out / "elbo.png", [row["epoch"] for row in history],
                          {"train": train_curve, "test": test_curve},
                          "-ELBO (nats/image)" if bound else "loss per image",
                          f"{c.preset}, {c.likelihood}, pixels: {c.pixels}")


# -- the command line ---------------------------------------------------------------------------

def add_flags(p: argparse.ArgumentParser, presets: dict) -> None:
    """The VAE's flags, each overriding the config field of its name (help: each preset's value)."""
    run.preset_flag(p, "--latent-dim", presets, type=cli.positive_int("--latent-dim"), help="latent dimensions")
    if any(c.architecture == "mlp" for c in presets.values()):
        run.preset_flag(p, "--hidden", presets, type=cli.widths("--hidden"),
                        help="MLP: encoder hidden widths, comma-separated; the decoder mirrors them")
    run.preset_flag(p, "--likelihood", presets, choices=vae.IMAGE_LIKELIHOODS,
                    help="decoder likelihood: bernoulli (the seeds' BCE), mse, or discretized_logistic "
                         "(8-bit bins on signed pixels: -ELBO, IWAE and bits/dim)")
    run.preset_flag(p, "--pixels", presets, choices=data.PIXEL_MODES,
                    help="float (x/255), threshold (x/255 > 0.5), stochastic (a Bernoulli draw each step) or "
                         "signed (x/127.5 - 1; the discretized logistic's, and its default)")
    run.preset_flag(p, "--beta", presets, type=cli.non_negative_float("--beta"), help="KL weight (1 is the VAE)")
    run.preset_flag(p, "--kl-warmup-epochs", presets, type=cli.non_negative_int("--kl-warmup-epochs"),
                    help="epochs of linear KL annealing (0: none)")
    run.preset_flag(p, "--iwae-k", presets, type=cli.positive_int("--iwae-k"),
                    help="importance samples per test image for the IWAE bound (likelihoods only)")
    run.preset_flag(p, "--num-samples", presets, type=cli.positive_int("--num-samples"),
                    help="prior samples saved in samples.npy")
    run.preset_flag(p, "--interpolation", presets, choices=("linear", "slerp"),
                    help="latent interpolation in interpolation.png")


def config_from_args(args: argparse.Namespace, presets: dict) -> VAEConfig:
    """:func:`genjax.runs.run.config_from_args`, with pixels that suit the likelihood: a likelihood
    given without ``--pixels`` brings its own mode when the preset's does not suit it (the
    discretized logistic: signed); a mode given that does not suit it is refused."""
    config = run.config_from_args(args, presets)
    allowed = vae.LIKELIHOOD_PIXELS[config.likelihood]
    if config.pixels not in allowed:
        if getattr(args, "pixels", None) is not None:
            raise UsageError(f"--pixels {config.pixels} does not suit --likelihood {config.likelihood}: "
                             f"choose {' or '.join(allowed)}")
        config = dataclasses.replace(config, pixels=allowed[0])
    return config


def training_set(config: VAEConfig, train: data.ImageSet, test: data.ImageSet) -> data.ImageSet:
    """The images the model trains on: the training split, or with ``train_on_test`` both splits
    (seed 004's ``ConcatDataset([mnist_train, mnist_test])``)."""
    if not config.train_on_test:
        return train
    labels = None if train.labels is None or test.labels is None else np.concatenate([train.labels, test.labels])
    return data.ImageSet(np.concatenate([train.images, test.images]), labels)


def cli_run(args: argparse.Namespace, presets: dict, after=None) -> dict:
    """The whole run of a VAE script, in the lifecycle's order (``genjax.runs.run``): config, run
    directory, data, :meth:`VAE.train` checkpointed after each epoch, the final evaluation and
    IWAE bound, pictures and samples (one process), metrics.json last. ``after(recipe, train, test,
    metrics, run)`` adds a script's own results (before metrics.json)."""
    recipe = VAE(config_from_args(args, presets))
    r = run.Run(args, recipe.config, resumable=VAE.resumable)
    train, test, mesh = run.load_data(recipe.config.dataset, args.data_dir, recipe.config.batch_size)
    train = training_set(recipe.config, train, test)
    trained = recipe.train(train, test, run=r, mesh=mesh, progress=r.progress)
    metrics = {**r.summary(trained.history, mesh), **trained.final_metrics(test, mesh, len(train), r.progress)}
    if r.writes_files:
        trained.write_outputs(r.out, test)
    if after is not None:
        after(trained, train, test, metrics, r)
    return r.finish(metrics, trained.history)


def cli_script(doc: str, prog: str, default_out: Path, presets: dict, default_preset: str):
    """(parser, experiment) of a VAE script: the shared run flags, the VAE's flags and :func:`cli_run`."""
    parser = run.parser(doc, prog, default_out, presets, default_preset)
    add_flags(parser, presets)
    return parser, lambda args: cli_run(args, presets)


__all__ = ["HYPERPARAMETERS", "VAE", "VAE_PRESETS", "add_flags", "cli_run", "cli_script", "config_from_args",
           "hyperparameters", "make_model",
           "make_vae_step", "training_set"]
