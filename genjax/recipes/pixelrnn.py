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

import argparse
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from genjax import data
from genjax.data import inputs
from genjax.data.inputs import KeyLike
from genjax.devices import data_mesh, replicate
from genjax.evaluation import plots
from genjax.models.pixel_rnn import PixelRNN as PixelRNNModule
from genjax.objectives import losses, pixelrnn
from genjax.presets import PIXELRNN_PRESETS, PixelRNNConfig
from genjax.recipes.base import Recipe
from genjax.runs import cli, run
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
        params = jax.jit(self.model.init)(keys["init"], jnp.zeros((1, self.num_pixels), jnp.float32))["params"]
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

    def log_prob(self, images: ArrayLike) -> np.ndarray:
        """log p(x) per image (nats), exact, of the binarized ``images``."""
        return np.asarray(pixelrnn.log_likelihood(self.model, self._need_state().params, self._rasters(images)))

    def nll(self, images: ArrayLike) -> float:
        """The mean -log p(x) over ``images``, nats per image."""
        return float(-np.mean(self.log_prob(images)))

    def bits_per_dim(self, images: ArrayLike) -> float:
        """The mean NLL in bits per pixel (per sub-pixel for colour)."""
        return float(losses.bits_per_dim(self.nll(images), self.num_pixels))

    def sample(self, n: int, key: KeyLike = 0, temperature: float | None = None, mesh=None) -> np.ndarray:
        """``n`` images (n, H, W, C) in {0, 1}, pixel by pixel in one compiled scan; ``temperature``
        (default: the config's) scales the logits, 0 takes the likelier pixel."""
        n = inputs.as_count(n)
        t = self.config.temperature if temperature is None else float(temperature)
        if not t >= 0:
            raise ValueError(f"temperature must be at least 0, got {temperature}")
        mesh = data_mesh(jax.local_devices()) if mesh is None else mesh
        xs, _ = pixelrnn.sample(self.model, self._need_state().params, inputs.as_key(key, self.config.prng), n,
                                self.num_pixels, t, mesh=mesh)
        return np.asarray(xs).reshape(n, *self.image_shape)

    def complete(self, images: ArrayLike, rows: int, per_image: int = 1, key: KeyLike = 0,
                 temperature: float | None = None, mesh=None) -> np.ndarray:
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


# -- the command line ---------------------------------------------------------------------------

GIVEN_ROWS, COMPLETIONS, COMPLETED_DIGITS = 14, 5, 8  # completions.png: rows given, completions per digit, digits


def add_flags(parser: argparse.ArgumentParser, presets: dict) -> None:
    """The PixelRNN's flags, each overriding the config field of its name."""
    run.preset_flag(parser, "--hidden", presets, type=cli.positive_int("--hidden"), help="LSTM width")
    run.preset_flag(parser, "--layers", presets, type=cli.positive_int("--layers"), help="stacked LSTM layers")
    run.preset_flag(parser, "--num-samples", presets, type=cli.positive_int("--num-samples"),
                    help="images sampled into samples.npy")
    run.preset_flag(parser, "--temperature", presets, type=cli.non_negative_float("--temperature"),
                    help="sampling temperature: p(x_t = 1) = sigmoid(logit / T); 0 takes the likelier pixel")


def draw_pictures(out: Path, rnn: PixelRNN, test: data.ImageSet) -> tuple[np.ndarray, float]:
    """samples.png and completions.png, on this process's devices; returns ``num_samples``
    samples (N, 28, 28) for samples.npy, and the seconds their sampling took."""
    config = rnn.config
    k_samples, k_complete = jax.random.split(rnn.keys()["draw"])
    t0 = time.perf_counter()
    xs = rnn.sample(config.num_samples, k_samples)[..., 0]
    seconds = time.perf_counter() - t0
    plots.save_grid(out / "samples.png", xs[:64], 8, 8, f"PixelRNN samples (temperature {config.temperature:g})")
    originals = test.images[:COMPLETED_DIGITS]
    done = rnn.complete(originals, GIVEN_ROWS, COMPLETIONS, k_complete)[..., 0]
    binary = np.asarray(rnn.binary(originals)).reshape(-1, 28, 28)
    given = binary.copy()
    given[:, GIVEN_ROWS:] = 0.5  # grey: not shown to the model
    rows = [np.concatenate([binary[i : i + 1], given[i : i + 1], done[i]]) for i in range(COMPLETED_DIGITS)]
    plots.save_grid(out / "completions.png", np.concatenate(rows), COMPLETED_DIGITS, 2 + COMPLETIONS,
                    f"test digit, its top {GIVEN_ROWS} rows, {COMPLETIONS} completions")
    return xs, seconds


def cli_run(args: argparse.Namespace, presets: dict) -> dict:
    """The whole run of ``python -m experiments.pixelrnn_mnist``: train, exact test NLL, samples,
    completions, metrics.json last."""
    config = run.config_from_args(args, presets)
    r = run.Run(args, config, resumable=PixelRNN.resumable)
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    rnn = PixelRNN(config).train(train, test, run=r, mesh=mesh, progress=r.progress)
    final = run.last_test_metrics(rnn.history, rnn.make_evaluate(test, mesh), rnn.state)
    metrics = {**r.summary(rnn.history, mesh), "hidden": config.hidden, "layers": config.layers,
               "binarization": data.BINARIZATION[config.pixels],
               "test_nll": final["nll"], "test_bits_per_dim": final["bits_per_dim"]}
    if r.writes_files:
        samples, seconds = draw_pictures(r.out, rnn, test)
        metrics.update(sampling_seconds=round(seconds, 3), num_samples=config.num_samples,
                       temperature=config.temperature)
        np.save(r.out / "samples.npy", samples.astype(np.float32))
        plots.save_curves(r.out / "nll.png", [row["epoch"] for row in rnn.history],
                          {"train": [row["train_nll"] for row in rnn.history],
                           "test": [row["test_nll"] for row in rnn.history]},
                          "NLL (nats/image)", "PixelRNN, binarization: threshold (x/255 > 0.5)")
    return r.finish(metrics, rnn.history)


def cli_script(doc: str, prog: str, default_out: Path, presets: dict, default_preset: str):
    """(parser, experiment) of a PixelRNN script: the shared run flags, its flags and :func:`cli_run`."""
    parser = run.parser(doc, prog, default_out, presets, default_preset)
    add_flags(parser, presets)
    return parser, lambda args: cli_run(args, presets)


__all__ = ["PixelRNN", "add_flags", "cli_run", "cli_script"]
