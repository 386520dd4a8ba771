r"""The GAN recipe: seed 000's MLP GAN and the DCGAN, G and D trained in one alternating step
(:mod:`genjax.objectives.gan`). Images are x/255 in [0, 1], as the seed's ``ToTensor``.

    gan = genjax.GAN.from_preset("seed000").fit(images, epochs=5)
    x = gan.sample(16, key=0)                       # (16, H, W, C) in [0, 1]
    gan.generate(z)                                 # G(z) for your own noise (N, latent_dim)

Test metrics (against as many samples as test images): ``d_loss``, ``g_loss`` (non-saturating),
``d_real`` = mean D(x) and ``d_fake`` = mean D(G(z)). Sample quality: :class:`genjax.Scorer`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data, prng
from genjax.data import inputs
from genjax.devices import replicate
from genjax.errors import UsageError
from genjax.models.dcgan import DISCRIMINATOR_NORMS
from genjax.objectives import gan
from genjax.presets import GAN_PRESETS, GANConfig
from genjax.recipes.base import Recipe, take
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

    def generate(self, z) -> np.ndarray:
        """G(z) (N, H, W, C) in [0, 1] in evaluation mode, for noise ``z`` (N, latent_dim)."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z: expected noise shaped (N, {self.config.latent_dim}), got {z.shape}")
        variables = gan.generator_variables(self._need_state())
        return np.asarray(gan.generate(self.models[0], variables, jnp.asarray(z)))

    def sample(self, n: int, key=0) -> np.ndarray:
        """``n`` images G(z) (n, H, W, C) in [0, 1], z ~ N(0, I) drawn from ``key``."""
        n = inputs.as_count(n)
        variables = gan.generator_variables(self._need_state())
        z = prng.normal(inputs.as_key(key, self.config.prng), (n, self.config.latent_dim))
        return take(gan.generate(self.models[0], variables, z), n)

    def discriminate(self, images) -> np.ndarray:
        """D(x) = p(real | x) per image (N,) (a BatchNorm D judges the images as one batch)."""
        x = self.image_set(images)
        self.with_image_shape(x.images.shape[1:])
        pixels = data.fixed_eval_pixels(x.images, self.config.pixels)
        logits = self.models[1].apply({"params": self._need_state().params["disc"]}, pixels)
        return np.asarray(jax.nn.sigmoid(logits))


__all__ = ["GAN"]
