"""Seed 000's PixelRNN on threshold-binarized MNIST: exact test NLL, samples, completions.

    python -m experiments.pixelrnn_mnist --hidden 128 --epochs 4 --out runs/pixelrnn_h128   # CPU-sized
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
import numpy as np

from genjax import data
from genjax.evaluation import plots
from genjax.presets import PIXELRNN_PRESETS as PRESETS
from genjax.recipes.pixelrnn import PixelRNN
from genjax.runs import cli, run

GIVEN_ROWS, COMPLETIONS, COMPLETED_DIGITS = 14, 5, 8

parser = run.parser(__doc__, "python -m experiments.pixelrnn_mnist", Path("runs/pixelrnn_mnist"), PRESETS, "seed000")
run.preset_flag(parser, "--hidden", PRESETS, type=cli.positive_int("--hidden"), help="LSTM width")
run.preset_flag(parser, "--layers", PRESETS, type=cli.positive_int("--layers"), help="stacked LSTM layers")
run.preset_flag(parser, "--num-samples", PRESETS, type=cli.positive_int("--num-samples"),
                help="images sampled into samples.npy")
run.preset_flag(parser, "--temperature", PRESETS, type=cli.non_negative_float("--temperature"),
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


def experiment(args) -> dict:
    config = run.config_from_args(args, PRESETS)
    r = run.Run(args, config, resumable=PixelRNN.resumable)
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    rnn = PixelRNN(config).train(data.ImageSet(train.images, None), test, run=r, mesh=mesh, progress=r.progress)
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


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
