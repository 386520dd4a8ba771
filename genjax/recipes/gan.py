r"""The GAN recipe: seed 000's MLP GAN and the DCGAN, G and D trained in one alternating step
(:mod:`genjax.objectives.gan`). Images are x/255 in [0, 1], as the seed's ``ToTensor``.

    gan = genjax.GAN.from_preset("seed000").fit(images, epochs=5)
    x = gan.sample(16, key=0)                       # (16, H, W, C) in [0, 1]
    gan.generate(z)                                 # G(z) for your own noise (N, latent_dim)

Test metrics (against as many samples as test images): ``d_loss``, ``g_loss`` (non-saturating),
``d_real`` = mean D(x) and ``d_fake`` = mean D(G(z)). Sample quality: :class:`genjax.Scorer`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from genjax import data, prng
from genjax.data import inputs
from genjax.data.inputs import KeyLike
from genjax.devices import replicate
from genjax.errors import UsageError
from genjax.evaluation import plots
from genjax.evaluation import scorer as scoring
from genjax.models.dcgan import DISCRIMINATOR_NORMS
from genjax.objectives import gan, latent
from genjax.presets import GAN_PRESETS, GANConfig
from genjax.recipes.base import Recipe
from genjax.runs import cli, run
from genjax.training import adversarial
from genjax.training.step import TrainState

DCGAN_SIZE = (28, 28)  # the DCGAN's G draws 7x7 maps and doubles them twice


class GAN(Recipe):
    """A generator G(z), z ~ N(0, I), and a discriminator D(x) trained against each other."""

    family = "gan"
    config_class = GANConfig
    presets = GAN_PRESETS
    default_preset = "seed000"
    key_names = ("init", "eval", "draw")

    def _check_config(self) -> None:
        c = self.config
        if c.model not in ("mlp", "dcgan"):
            raise UsageError(f"unknown GAN {c.model!r}: choose mlp or dcgan")
        if c.g_loss not in gan.GENERATOR_LOSSES:
            raise UsageError(f"unknown generator loss {c.g_loss!r}: choose one of {', '.join(gan.GENERATOR_LOSSES)}")
        if c.d_norm not in DISCRIMINATOR_NORMS:
            raise UsageError(f"unknown d_norm {c.d_norm!r}: choose one of {', '.join(DISCRIMINATOR_NORMS)}")

    def check_image_shape(self, shape) -> None:
        if self.config.model == "dcgan" and tuple(shape[:2]) != DCGAN_SIZE:
            raise UsageError(f"the DCGAN draws 28 x 28 images, these are {tuple(shape)}: resize them, or use "
                             "model='mlp' (any size)")

    @property
    def models(self):
        """(G, D): the Flax modules."""
        if self.image_shape is None:
            raise ValueError("the image shape is not known yet: fit the GAN on images first")
        return gan.build_models(self.config, self.image_shape)

    def init_state(self) -> TrainState:
        gen, disc = self.models
        tx_g, tx_d = adversarial.build_optimizers(self.config)
        return adversarial.init_state(gen, disc, tx_g, tx_d, self.keys()["init"], self.config.latent_dim,
                                      self.image_shape,
                              self.config.d_grad_leak)

    def train_step(self, steps_per_epoch: int):
        c, (gen, disc) = self.config, self.models
        tx_g, tx_d = adversarial.build_optimizers(c)
        return adversarial.make_gan_step(gen, disc, tx_g, tx_d, c.latent_dim, c.g_loss, c.d_grad_leak)

    def make_evaluate(self, test: data.ImageSet | None, mesh, steps_per_epoch: int = 1):
        if test is None:
            return lambda state: {}
        (gen, disc), key, c = self.models, self.keys()["eval"], self.config
        x_test = replicate(data.fixed_eval_pixels(test.images, c.pixels), mesh)
        return lambda state: gan.evaluate(gen, disc, state, x_test, key, c.latent_dim)

    def generate(self, z: ArrayLike) -> np.ndarray:
        """G(z) (N, H, W, C) in [0, 1] in evaluation mode, for noise ``z`` (N, latent_dim)."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z: expected noise shaped (N, {self.config.latent_dim}), got {z.shape}")
        variables = gan.generator_variables(self._need_state())
        return np.asarray(gan.generate(self.models[0], variables, jnp.asarray(z)))

    def sample(self, n: int, key: KeyLike = 0) -> np.ndarray:
        """``n`` images G(z) (n, H, W, C) in [0, 1], z ~ N(0, I) drawn from ``key``."""
        n = inputs.as_count(n)
        variables = gan.generator_variables(self._need_state())
        z = prng.normal(inputs.as_key(key, self.config.prng), (n, self.config.latent_dim))
        return np.asarray(gan.generate(self.models[0], variables, z))

    def discriminate(self, images: ArrayLike) -> np.ndarray:
        """D(x) = p(real | x) per image (N,) (a BatchNorm D judges the images as one batch)."""
        x = self.image_set(images)
        self.with_image_shape(x.images.shape[1:])
        pixels = data.fixed_eval_pixels(x.images, self.config.pixels)
        logits = self.models[1].apply({"params": self._need_state().params["disc"]}, pixels)
        return np.asarray(jax.nn.sigmoid(logits))


# -- the command line ---------------------------------------------------------------------------

def add_flags(parser: argparse.ArgumentParser, presets: dict) -> None:
    """The GAN's flags, each overriding the config field of its name, and the scoring flags."""
    run.preset_flag(parser, "--latent-dim", presets, type=cli.positive_int("--latent-dim"), help="noise dimensions")
    run.preset_flag(parser, "--hidden", presets, type=cli.positive_int("--hidden"),
                    aliases={"--width": {"type": cli.positive_int("--width")}},
                    help="MLP: hidden units; DCGAN: channels of G's last and D's first convolution")
    run.preset_flag(parser, "--g-loss", presets, choices=tuple(gan.GENERATOR_LOSSES),
                    help="generator loss: non_saturating (-log D(G(z)), the seed's) or saturating "
                         "(log(1 - D(G(z))))")
    run.preset_flag(parser, "--d-norm", presets, choices=DISCRIMINATOR_NORMS,
                    help="DCGAN: D's normalization after its second convolution and its hidden layer (batch: "
                         "BatchNorm by the statistics of each batch D judges; layer: LayerNorm over each position's "
                         "channels; none)")
    run.preset_flag(parser, "--fc-hidden", presets, type=cli.non_negative_int("--fc-hidden"),
                    help="DCGAN: units of a fully connected hidden layer in G (before its 7x7 map) and in D (before "
                         "its logit), as InfoGAN's MNIST networks (1024); 0: none")
    run.preset_flag(parser, "--g-lr", presets, type=cli.positive_float("--g-lr"),
                    help="G's learning rate (unset: D's, --lr)")
    parser.add_argument("--d-grad-leak", action="store_true", default=None,
                        help="reproduce the seed's loop as written: D's gradients from G's backward pass are never "
                             "cleared and add into D's next update (default: cleared, the intended algorithm)")
    run.preset_flag(parser, "--num-samples", presets, type=cli.positive_int("--num-samples"),
                    help="samples saved in samples.npy and scored")
    scoring.add_flags(parser)


def draw_pictures(out: Path, g: GAN, key) -> None:
    """samples.png (8x8) and interpolation.png (8 rows of 10 steps between two noise draws)."""
    k_grid, k_ends = jax.random.split(key)
    plots.save_grid(out / "samples.png", g.sample(64, k_grid)[..., 0], 8, 8, f"{g.config.preset}: samples G(z)")
    ends = prng.normal(k_ends, (8, 2, g.config.latent_dim))
    z = jnp.concatenate([latent.interpolate(a, b, 10) for a, b in ends])
    plots.save_grid(out / "interpolation.png", g.generate(z)[..., 0], 8, 10,
                    "linear interpolation between noise draws")


def cli_run(args: argparse.Namespace, presets: dict) -> dict:
    """The whole run of ``python -m experiments.gan_mnist``: train, score, pictures, metrics.json last."""
    config = run.config_from_args(args, presets)
    scorer = scoring.from_args(args, args.data_dir)  # before anything is written: it scores the samples
    r = run.Run(args, config, resumable=GAN.resumable)
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    g = GAN(config).train(train, test, run=r, mesh=mesh, progress=r.progress)
    final = run.last_test_metrics(g.history, g.make_evaluate(test, mesh), g.state)
    draw_key = g.keys()["draw"]
    samples = g.sample(config.num_samples, draw_key)[..., 0]
    scores = scorer.with_reference(train.images, test.images).score(samples, config.pixels) if scorer else {}
    metrics = {**scores, **r.summary(g.history, mesh), "model": config.model, "g_loss_kind": config.g_loss,
               "d_grad_leak": config.d_grad_leak, "d_norm": config.d_norm if config.model == "dcgan" else None,
               "fc_hidden": config.fc_hidden, "g_lr": config.g_lr or config.lr,
               "pixels": config.pixels,
               **{f"test_{k}": final[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")}}

    if r.writes_files:
        np.save(r.out / "samples.npy", samples.astype(np.float32))
        draw_pictures(r.out, g, draw_key)
        history, epochs = g.history, [row["epoch"] for row in g.history]
        plots.save_curves(r.out / "losses.png", epochs,
                          {name: [row[f"{split}_{key}"] for row in history]
                           for split in ("train", "test") for key, name in
                           (("d_loss", f"{split} D loss"), ("g_loss", f"{split} G loss"))},
                          "loss per image", f"{config.preset}: D and G losses")
        plots.save_curves(r.out / "d_outputs.png", epochs,
                          {f"{split} {name}": [row[f"{split}_{key}"] for row in history]
                           for split in ("train", "test")
                           for key, name in (("d_real", "D(x)"), ("d_fake", "D(G(z))"))},
                          "mean D output", f"{config.preset}: D on real and generated images")
    return r.finish(metrics, g.history)


def cli_script(doc: str, prog: str, default_out: Path, presets: dict, default_preset: str):
    """(parser, experiment) of a GAN script: the shared run flags, the GAN's flags and :func:`cli_run`."""
    parser = run.parser(doc, prog, default_out, presets, default_preset, aliases=("--model",))
    add_flags(parser, presets)
    return parser, lambda args: cli_run(args, presets)


__all__ = ["GAN", "add_flags", "cli_run", "cli_script"]
