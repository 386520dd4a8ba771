"""Seed 000's PixelRNN on threshold-binarized MNIST: exact test NLL, samples, completions.

    python -m experiments.pixelrnn_mnist --hidden 128 --epochs 5 --out runs/pixelrnn_h128   # CPU-sized
    python -m experiments.pixelrnn_mnist                    # the seed's run: hidden 512, 10 epochs
    python -m experiments.pixelrnn_mnist --epochs 12 --resume

An LSTM reads the 784 pixels in raster order (START token first) and predicts
each pixel from the ones before it, so log p(x) is exact. Writes into --out:
metrics.json (last; test NLL in nats per image and bits/dim), history.csv,
nll.png, samples.npy (N x 28 x 28 in {0, 1}), samples.png (8x8),
completions.png (the bottom half of test digits sampled from their top half)
and checkpoints/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import cli, data, pixelrnn, plots, run
from genjax.models.pixel_rnn import PixelRNN
from genjax.presets import PIXELRNN_PRESETS as PRESETS, make_optimizer
from genjax.train import (TrainState, data_mesh, fast_compiler_options, make_epoch, make_train_step,
                          num_batches, replicate)

DEFAULT_OUT = Path("runs/pixelrnn_mnist")
RESUMABLE_CHANGES = ("epochs", "num_samples", "temperature")
GIVEN_ROWS, COMPLETIONS, COMPLETED_DIGITS = 14, 5, 8

parser = run.parser(__doc__, "python -m experiments.pixelrnn_mnist", DEFAULT_OUT, PRESETS, "seed000")
run.preset_flag(parser, "--hidden", PRESETS, type=cli.positive_int("--hidden"), help="LSTM width")
run.preset_flag(parser, "--layers", PRESETS, type=cli.positive_int("--layers"), help="stacked LSTM layers")
run.preset_flag(parser, "--num-samples", PRESETS, type=cli.positive_int("--num-samples"),
                help="images sampled into samples.npy")
run.preset_flag(parser, "--temperature", PRESETS, type=cli.non_negative_float("--temperature"),
                help="sampling temperature: p(x_t = 1) = sigmoid(logit / T); 0 takes the likelier pixel")


def draw_pictures(out: Path, model, params, config, x_test: np.ndarray, key) -> tuple[np.ndarray, float]:
    """samples.png and completions.png, on this process's devices; returns ``num_samples``
    samples (N, 28, 28) for samples.npy, and the seconds their sampling took."""
    mesh = data_mesh(jax.local_devices())
    k_samples, k_complete = jax.random.split(key)
    t0 = time.perf_counter()
    xs, _ = pixelrnn.sample(model, params, k_samples, config.num_samples, x_test.shape[1], config.temperature,
                            mesh=mesh)
    xs = np.asarray(jax.device_get(xs)).reshape(-1, 28, 28)
    seconds = time.perf_counter() - t0
    plots.save_grid(out / "samples.png", xs[:64], 8, 8, f"PixelRNN samples (temperature {config.temperature:g})")
    originals = x_test[:COMPLETED_DIGITS]
    done = pixelrnn.complete(model, params, k_complete, originals, GIVEN_ROWS, COMPLETIONS,
                             temperature=config.temperature, mesh=mesh)
    given = originals.reshape(-1, 28, 28).copy()
    given[:, GIVEN_ROWS:] = 0.5  # grey: not shown to the model
    rows = [np.concatenate([originals[i].reshape(1, 28, 28), given[i : i + 1],
                            np.asarray(done[i]).reshape(-1, 28, 28)]) for i in range(COMPLETED_DIGITS)]
    plots.save_grid(out / "completions.png", np.concatenate(rows), COMPLETED_DIGITS, 2 + COMPLETIONS,
                    f"test digit, its top {GIVEN_ROWS} rows, {COMPLETIONS} completions")
    return xs, seconds


def experiment(args) -> dict:
    config = run.config_from_args(args, PRESETS)
    r = run.Run(args, config, resumable=RESUMABLE_CHANGES)
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    train_data = replicate({"image": jnp.asarray(train.images)}, mesh)
    x_test = replicate(pixelrnn.flat_binary(jnp.asarray(test.images)), mesh)  # (N, 784) in {0, 1}

    model = PixelRNN(config.hidden, config.layers)
    run_key = jax.random.key(config.seed, impl=config.prng)
    init_key, state_key, draw_key = jax.random.split(run_key, 3)
    params = model.init(init_key, x_test[:1])["params"]
    tx = make_optimizer(config.optimizer, config.lr)
    steps_per_epoch = num_batches(len(train), config.batch_size)
    epoch_fn = make_epoch(make_train_step(pixelrnn.make_loss(model), tx), config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))
    state = replicate(TrainState.create(params, tx, state_key), mesh)
    num_pixels = x_test.shape[1]

    def evaluate(state):
        nll = -jnp.mean(pixelrnn.log_likelihood(model, state.params, x_test, mesh=mesh))
        return {"loss": nll, "nll": nll, "bits_per_dim": pixelrnn.bits_per_dim(nll, num_pixels)}

    state, history = r.fit(state, epoch_fn, train_data, run_key, evaluate, steps_per_epoch)
    final = run.last_test_metrics(history, evaluate, state)
    metrics = {**r.summary(history, mesh), "hidden": config.hidden, "layers": config.layers,
               "binarization": data.BINARIZATION[config.pixels],
               "test_nll": final["nll"], "test_bits_per_dim": pixelrnn.bits_per_dim(final["nll"], num_pixels)}

    if r.writes_files:
        samples, seconds = draw_pictures(r.out, model, jax.device_get(state.params), config,
                                         np.asarray(pixelrnn.flat_binary(test.images)), draw_key)
        metrics.update(sampling_seconds=round(seconds, 3), num_samples=config.num_samples,
                       temperature=config.temperature)
        np.save(r.out / "samples.npy", samples.astype(np.float32))
        plots.save_curves(r.out / "nll.png", [row["epoch"] for row in history],
                          {"train": [row["train_nll"] for row in history],
                           "test": [row["test_nll"] for row in history]},
                          "NLL (nats/image)", "PixelRNN, binarization: threshold (x/255 > 0.5)")
    return r.finish(metrics, history)


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
