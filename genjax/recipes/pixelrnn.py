r"""The PixelRNN recipe: seed 000's LSTM over the raster of a threshold-binarized image
(x/255 > 0.5), an exact likelihood \log p(x) = \sum_t \log p(x_t | x_{<t}). The objective,
sampler and completion are :mod:`genjax.objectives.pixelrnn`.

    rnn = genjax.PixelRNN.from_preset("seed000", hidden=128).fit(images, epochs=2)
    rnn.nll(test_images), rnn.bits_per_dim(test_images)     # nats per image, bits per pixel
    x = rnn.sample(16, key=0)                                # (16, H, W, C) in {0, 1}
    done = rnn.complete(test_images[:4], rows=14, per_image=3, key=0)   # (4, 3, H, W, C)

Colour images are modelled sub-pixel by sub-pixel in (h, w, c) raster order.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data
from genjax.data import inputs
from genjax.devices import data_mesh, replicate
from genjax.models.pixel_rnn import PixelRNN as PixelRNNModule
from genjax.objectives import losses, pixelrnn
from genjax.presets import PIXELRNN_PRESETS, PixelRNNConfig
from genjax.recipes.base import Recipe, take
from genjax.training.optim import make_optimizer
from genjax.training.step import TrainState, make_train_step


class PixelRNN(Recipe):
    """An autoregressive LSTM over binary pixels: exact NLL, a compiled ``lax.scan`` sampler."""

    family = "pixelrnn"
    config_class = PixelRNNConfig
    presets = PIXELRNN_PRESETS
    default_preset = "seed000"
    resumable = ("epochs", "num_samples", "temperature")
    key_names = ("init", "state", "draw")

    @property
    def model(self) -> PixelRNNModule:
        return PixelRNNModule(self.config.hidden, self.config.layers)

    @property
    def num_pixels(self) -> int:
        if self.image_shape is None:
            raise ValueError("the image shape is not known yet: fit the PixelRNN on images first")
        return math.prod(self.image_shape)

    def init_state(self) -> TrainState:
        keys = self.keys()
        params = self.model.init(keys["init"], jnp.zeros((1, self.num_pixels), jnp.float32))["params"]
        return TrainState.create(params, make_optimizer(self.config.optimizer, self.config.lr), keys["state"])

    def train_step(self, steps_per_epoch: int):
        return make_train_step(pixelrnn.make_loss(self.model), make_optimizer(self.config.optimizer, self.config.lr))

    def binary(self, images: np.ndarray) -> jax.Array:
        """uint8 images -> their binarized rasters (N, T) in {0, 1}."""
        return pixelrnn.flat_binary(jnp.asarray(images))

    def make_evaluate(self, test: data.ImageSet | None, mesh, steps_per_epoch: int = 1):
        if test is None:
            return lambda state: {}
        model, x_test, dims = self.model, replicate(self.binary(test.images), mesh), self.num_pixels

        def evaluate(state: TrainState) -> dict:
            nll = -jnp.mean(pixelrnn.log_likelihood(model, state.params, x_test, mesh=mesh))
            return {"loss": nll, "nll": nll, "bits_per_dim": losses.bits_per_dim(nll, dims)}

        return evaluate

    def _rasters(self, images) -> jax.Array:
        x = self.image_set(images)
        self.with_image_shape(x.images.shape[1:])
        return self.binary(x.images)

    def log_prob(self, images) -> np.ndarray:
        """log p(x) per image (nats), exact, of the binarized ``images``."""
        return np.asarray(pixelrnn.log_likelihood(self.model, self._need_state().params, self._rasters(images)))

    def nll(self, images) -> float:
        """The mean -log p(x) over ``images``, nats per image."""
        return float(-np.mean(self.log_prob(images)))

    def bits_per_dim(self, images) -> float:
        """The mean NLL in bits per pixel (per sub-pixel for colour)."""
        return float(losses.bits_per_dim(self.nll(images), self.num_pixels))

    def sample(self, n: int, key=0, temperature: float | None = None, mesh=None) -> np.ndarray:
        """``n`` images (n, H, W, C) in {0, 1}, pixel by pixel in one compiled scan; ``temperature``
        (default: the config's) scales the logits, 0 takes the likelier pixel."""
        n = inputs.as_count(n)
        t = self.config.temperature if temperature is None else float(temperature)
        if not t >= 0:
            raise ValueError(f"temperature must be at least 0, got {temperature}")
        mesh = data_mesh(jax.local_devices()) if mesh is None else mesh
        xs, _ = pixelrnn.sample(self.model, self._need_state().params, inputs.as_key(key, self.config.prng), n,
                                self.num_pixels, t, mesh=mesh)
        return take(xs, n).reshape(n, *self.image_shape)

    def complete(self, images, rows: int, per_image: int = 1, key=0, temperature: float | None = None,
                 mesh=None) -> np.ndarray:
        """``per_image`` completions of each image given its top ``rows`` rows (kept exactly):
        (N, per_image, H, W, C) in {0, 1}."""
        x = self._rasters(images)
        height, width, channels = self.image_shape
        if not 0 <= rows <= height:
            raise ValueError(f"rows must lie in [0, {height}], got {rows}")
        t = self.config.temperature if temperature is None else float(temperature)
        mesh = data_mesh(jax.local_devices()) if mesh is None else mesh
        done = pixelrnn.complete(self.model, self._need_state().params, inputs.as_key(key, self.config.prng), x,
                                 rows, inputs.as_count(per_image, "per_image"), width * channels, t, mesh)
        return np.asarray(done).reshape(len(x), per_image, *self.image_shape)


__all__ = ["PixelRNN"]
