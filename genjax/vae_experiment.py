r"""A VAE experiment on images, shared by the convolutional-VAE scripts (``experiments/conv_vae_mnist.py``,
``vae_cifar10.py``, ``vae_celeba.py``): the flags, the model a :class:`~genjax.presets.ConvVAEConfig`
names, its compiled epoch, its evaluation and its outputs. Each script is its docstring, its
presets, ``add_flags`` and :func:`run_experiment`, which runs the lifecycle in this order::

    config = vae_experiment.config_from_args(args, PRESETS)
    r = run.Run(args, config, resumable=vae_experiment.RESUMABLE)
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    v = vae_experiment.prepare(config, train, test, mesh)
    state, history = r.fit(v.state, v.epoch_fn, v.train_data, v.keys["run"], v.evaluate, v.steps_per_epoch)
    metrics = {**r.summary(history, mesh), **v.final_metrics(state, history)}
    if r.writes_files:
        v.write_outputs(r.out, state, history)
    return r.finish(metrics, history)

Metrics, on the test split, per image (nats, summed over sub-pixels):

* ``test_loss`` = recon + \beta KL (the training objective), ``test_recon``, ``test_kl``: one z per image;
* ``test_mse``: \sum_i (x_i - \hat x_i)^2 of the same reconstructions, in [0, 1] units
  (:func:`genjax.vae.squared_error`: the seeds' MSE scale, comparable across likelihoods);
* where the likelihood is one (:func:`genjax.vae.reports_likelihood`): ``test_neg_elbo`` and
  ``test_nll_iwae`` (``iwae_k`` importance samples), and for the discretized logistic both in bits
  per sub-pixel (``test_neg_elbo_bits_per_dim``, ``test_bits_per_dim``: :func:`genjax.losses.bits_per_dim`).

A config with ``train_on_test`` (seed 004) trains on the training and test splits together, as
its seed does: its ``test_*`` numbers are then on training data (``test_split_in_training``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from genjax import cli, data, latent, losses, plots, run, vae
from genjax.errors import UsageError
from genjax.models.conv_vae import SEED_ARCHITECTURES, ConvVAE
from genjax.models.mlp_image_vae import MLPImageVAE
from genjax.presets import ConvVAEConfig, make_optimizer
from genjax.train import TrainState, fast_compiler_options, make_epoch, num_batches, replicate

# Fields a resumed run may change: how long to train, and what to evaluate and draw afterwards.
RESUMABLE = ("epochs", "iwae_k", "num_samples", "interpolation")
FLOAT_BUDGET = 1 << 22  # floats per image chunk in evaluation and sampling (bounded memory, same values)


def add_flags(p: argparse.ArgumentParser, presets: dict) -> None:
    """The VAE's flags, each overriding the config field of its name (help: each preset's value)."""
    run.preset_flag(p, "--latent-dim", presets, type=cli.positive_int("--latent-dim"), help="latent dimensions")
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


def config_from_args(args: argparse.Namespace, presets: dict) -> ConvVAEConfig:
    """:func:`genjax.run.config_from_args`, with pixels that suit the likelihood: a likelihood
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


def make_model(config: ConvVAEConfig, image_shape) -> ConvVAE | MLPImageVAE:
    """The VAE ``config.architecture`` names, for images of ``image_shape`` (H, W, C)."""
    shape = tuple(int(n) for n in image_shape)
    if config.architecture == "mlp":
        return MLPImageVAE(shape, tuple(config.hidden), config.latent_dim)
    return ConvVAE(**{**SEED_ARCHITECTURES[config.architecture], "image_shape": shape,
                      "latent_dim": config.latent_dim})


def training_set(config: ConvVAEConfig, train: data.ImageSet, test: data.ImageSet) -> data.ImageSet:
    """The images the model trains on: the training split, or with ``train_on_test`` both splits
    (seed 004's ``ConcatDataset([mnist_train, mnist_test])``)."""
    if not config.train_on_test:
        return train
    labels = None if train.labels is None else np.concatenate([train.labels, test.labels])
    return data.ImageSet(np.concatenate([train.images, test.images]), labels)


@dataclasses.dataclass
class ImageVAE:
    """One configured VAE: its model, keys, data on the devices, initial state and compiled epoch."""

    config: ConvVAEConfig
    model: ConvVAE | MLPImageVAE
    keys: dict
    mesh: Mesh
    test: data.ImageSet
    x_test: jax.Array  # the test split's pixels (float, in the config's mode) on every device
    train_data: dict
    state: TrainState
    epoch_fn: object
    steps_per_epoch: int

    @property
    def reports_likelihood(self) -> bool:
        return vae.reports_likelihood(self.config.likelihood, self.config.pixels)

    @property
    def chunk(self) -> int:
        return max(8, min(1000, FLOAT_BUDGET // self.x_test[0].size))

    def evaluate(self, state: TrainState) -> dict:
        """The test split's loss, recon, KL and squared error (+ -ELBO for a likelihood), eval mode."""
        c = self.config
        m = vae.evaluate(self.model, state.params, self.x_test, self.keys["eval"], c.likelihood, self.chunk,
                         self.mesh, model_state=state.model_state, mse=True)
        out = {"loss": m["recon"] + c.beta * m["kl"], "recon": m["recon"], "kl": m["kl"], "mse": m["mse"]}
        return {**out, "neg_elbo": m["neg_elbo"]} if self.reports_likelihood else out

    def final_metrics(self, state: TrainState, history: list[dict]) -> dict:
        """metrics.json's VAE fields: the final test metrics, and for a likelihood the IWAE bound
        (and bits/dim for the discretized logistic)."""
        c = self.config
        final = run.last_test_metrics(history, self.evaluate, state)
        metrics = {"dataset": c.dataset, "architecture": c.architecture, "pixels": c.pixels,
                   "binarization": data.BINARIZATION[c.pixels], "likelihood": c.likelihood,
                   "train_images": len(self.train_data["image"]), **{f"test_{k}": v for k, v in final.items()}}
        if c.train_on_test:
            metrics.update(test_split_in_training=True,
                           train_loss=history[-1]["train_loss"] if history else None)  # the seed's printed loss
        if self.reports_likelihood:
            t0 = time.perf_counter()
            iw = jax.device_get(vae.iwae_nll(
                self.model, state.params, self.x_test, jax.random.fold_in(self.keys["eval"], 1), c.iwae_k,
                vae.iwae_chunk_size(c.iwae_k, self.x_test[0].size), self.mesh, likelihood=c.likelihood,
                model_state=state.model_state))
            metrics.update(test_nll_iwae=float(iw["nll_iwae"]), test_neg_elbo_k_samples=float(iw["neg_elbo"]),
                           iwae_k=c.iwae_k, iwae_seconds=round(time.perf_counter() - t0, 3))
            if c.likelihood == vae.DISCRETIZED_LOGISTIC:
                dims = int(self.x_test[0].size)
                metrics.update(test_bits_per_dim=float(losses.bits_per_dim(metrics["test_nll_iwae"], dims)),
                               test_neg_elbo_bits_per_dim=float(losses.bits_per_dim(metrics["test_neg_elbo"], dims)),
                               mean_log_scale=float(jnp.mean(state.params[vae.LOG_SCALE])))
        return metrics

    def write_outputs(self, out: Path, state: TrainState, history: list[dict]) -> None:
        """samples.npy (N, H, W) grey or (N, H, W, 3) colour in [0, 1], samples.png, reconstructions.png,
        interpolation.png, elbo.png; latent_scatter.png and manifold.png for a 2-D latent."""
        c, model = self.config, self.model
        params, model_state = jax.device_get((state.params, state.model_state))
        shape = self.test.images.shape[1:]

        def as_images(a) -> np.ndarray:  # (N, H, W) grey, (N, H, W, 3) colour
            a = np.asarray(a).reshape(-1, *shape)
            return a[..., 0] if shape[-1] == 1 else a

        k_samples, k_recon = jax.random.split(self.keys["draw"])
        means = as_images(vae.prior_sample_means(model, params, k_samples, max(c.num_samples, 64), None, model_state,
                                                 c.likelihood, self.chunk))
        plots.save_grid(out / "samples.png", means[:64], 8, 8, f"{c.preset}: prior samples (decoder means)")
        np.save(out / "samples.npy", means[: c.num_samples].astype(np.float32))
        originals = self.x_test[:12]
        logits, _, _ = model.apply(vae.module_variables(params, model_state), originals, k_recon)
        plots.save_reconstructions(out / "reconstructions.png", as_images(vae.unit_pixels(originals, c.likelihood)),
                                   as_images(vae.decoder_mean(logits, c.likelihood)),
                                   "test images (top) and reconstructions (bottom)")
        z = vae.encode_means(model, params, self.x_test[:20], model_state=model_state)
        rows = [vae.decode_means(model, params, latent.interpolate(z[2 * i], z[2 * i + 1], 10, c.interpolation),
                                 model_state=model_state, likelihood=c.likelihood) for i in range(5)]
        plots.save_grid(out / "interpolation.png", as_images(np.concatenate([np.asarray(r) for r in rows])), 5, 10,
                        f"{c.interpolation} interpolation between encoded test images")
        if c.latent_dim == 2:
            if self.test.labels is not None:
                z_all = np.asarray(vae.encode_means(model, params, self.x_test, model_state=model_state))
                plots.save_latent_scatter(out / "latent_scatter.png", z_all, self.test.labels,
                                          "test set: latent means by class")
            # Seed 004's plot_latent_space: a 30 x 30 grid over [-2, 2]^2.
            grid = vae.decode_means(model, params, jnp.asarray(plots.manifold_grid(30, 2.0)), model_state=model_state,
                                    likelihood=c.likelihood)
            plots.save_grid(out / "manifold.png", as_images(grid), 30, 30, "decoded latent grid, z in [-2, 2]^2")
        bound = self.reports_likelihood
        train_curve = [row["train_recon"] + row["train_kl"] if bound else row["train_loss"] for row in history]
        test_curve = [row["test_neg_elbo" if bound else "test_loss"] for row in history]
        plots.save_curves(out / "elbo.png", [row["epoch"] for row in history],
                          {"train": train_curve, "test": test_curve},
                          "-ELBO (nats/image)" if bound else "loss per image",
                          f"{c.preset}, {c.likelihood}, pixels: {c.pixels}")


def prepare(config: ConvVAEConfig, train: data.ImageSet, test: data.ImageSet, mesh: Mesh) -> ImageVAE:
    """The model, keys (:func:`genjax.vae.seed_keys`), initial state (BatchNorm's statistics in its
    ``model_state``), compiled epoch and device data of ``config`` on ``train`` (see :func:`training_set`)."""
    train = training_set(config, train, test)
    shape = train.images.shape[1:]
    model = make_model(config, shape)
    keys = vae.seed_keys(config.seed, config.prng)
    params, model_state = vae.init_variables(model, keys["init"], shape, config.likelihood)
    steps_per_epoch = num_batches(len(train), config.batch_size)
    step = vae.make_vae_step(model, config.likelihood, config.pixels, config.optimizer, steps_per_epoch)
    epoch_fn = make_epoch(step(vae.hyperparameters(config)), config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))
    tx = make_optimizer(config.optimizer, config.lr)
    state = replicate(TrainState.create(params, tx, keys["state"], model_state=model_state), mesh)
    x_test = replicate(data.fixed_eval_pixels(test.images, config.pixels), mesh)
    return ImageVAE(config, model, keys, mesh, test, x_test, replicate({"image": jnp.asarray(train.images)}, mesh),
                    state, epoch_fn, steps_per_epoch)


__all__ = ["RESUMABLE", "ImageVAE", "add_flags", "config_from_args", "make_model", "prepare", "training_set"]


def run_experiment(args: argparse.Namespace, presets: dict) -> dict:
    """The whole run of an image-VAE script, in the lifecycle's order (``genjax.run``): config,
    run directory, data (uint8 on every device; pixels are made inside the compiled step), the
    loop checkpointed after each epoch, the final evaluation and IWAE bound, pictures and samples
    (one process), metrics.json last."""
    config = config_from_args(args, presets)
    r = run.Run(args, config, resumable=RESUMABLE)
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    v = prepare(config, train, test, mesh)
    state, history = r.fit(v.state, v.epoch_fn, v.train_data, v.keys["run"], v.evaluate, v.steps_per_epoch)
    metrics = {**r.summary(history, mesh), **v.final_metrics(state, history)}
    if r.writes_files:
        v.write_outputs(r.out, state, history)
    return r.finish(metrics, history)
