"""Seed 001's convolutional autoencoder on CIFAR-10: 3x32x32 -> 96x2x2 -> 3x32x32.

    python -m experiments.ae_cifar10                         # MSE, Adam 1e-3, 10 epochs, runs/ae_cifar10
    python -m experiments.ae_cifar10 --likelihood bernoulli --out runs/ae_cifar10_bce
    python -m experiments.ae_cifar10 --noise 0.1 --out runs/dae_cifar10   # a denoising AE

Encoder: Conv 12, 24, 48, 96 (4x4, stride 2, padding 1), each with ReLU; the code is the
last feature map (96 x 2 x 2 = 384 numbers, a twelfth of the image's 3,072); the decoder
mirrors it with transposed convolutions and a sigmoid. Pixels are x/255 (ToTensor).
--likelihood mse or bernoulli (BCE), summed over pixels and averaged over images; --noise > 0 trains a
denoising AE (input clip(x + noise * eps, 0, 1), target the clean image).

Writes into --out: metrics.json (last: test loss, per-pixel MSE, PSNR in dB, the mean
over test images; with --noise the noisy input's PSNR too), history.csv,
reconstructions.png (test images, then their reconstructions; with --noise: clean,
noisy, denoised), losses.png and checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

from genjax.evaluation import plots
from genjax.objectives import autoencoder
from genjax.presets import AE_PRESETS
from genjax.recipes.autoencoder import Autoencoder, add_likelihood_flag
from genjax.runs import cli, run

PRESETS_CIFAR = {name: c for name, c in AE_PRESETS.items() if c.dataset == "cifar10"}
DEFAULT_OUT = Path("runs/ae_cifar10")

parser = run.parser(__doc__, "python -m experiments.ae_cifar10", DEFAULT_OUT, PRESETS_CIFAR, "seed001")
add_likelihood_flag(parser, PRESETS_CIFAR)
run.preset_flag(parser, "--noise", PRESETS_CIFAR, type=cli.non_negative_float("--noise"),
                help="denoising: std of the Gaussian noise added to the input (0: a plain AE)")


def experiment(args) -> dict:
    config = run.config_from_args(args, PRESETS_CIFAR)
    r = run.Run(args, config, resumable=("epochs",))
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    ae = Autoencoder(config).train(train, test, run=r, mesh=mesh, progress=r.progress)
    model, history, keys = ae.model, ae.history, ae.keys()
    final = run.last_test_metrics(history, ae.make_evaluate(test, mesh), ae.state)
    metrics = {**r.summary(history, mesh), "model": config.model, "likelihood": config.likelihood, "noise": config.noise,
               "code_shape": list(model.code_shape), **{f"test_{k}": v for k, v in final.items()}}

    if r.writes_files:
        params = jax.device_get(ae.params)
        n = min(10, len(test))
        clean = np.asarray(ae.test_pixels(test)[:n])
        rows = [clean]
        if config.noise:  # the noisy inputs evaluate() scores: image i corrupted by split(eval key, N)[i]
            keys_i = jax.random.split(keys["eval"], len(test))[:n]
            rows.append(np.asarray(jax.vmap(lambda x, k: autoencoder.corrupt(k, x, config.noise))(clean, keys_i)))
        rows.append(np.asarray(autoencoder.reconstruct(model, params, rows[-1])))
        what = "test images, noisy inputs, outputs" if config.noise else "test images (top), reconstructions"
        plots.save_grid(r.out / "reconstructions.png", np.concatenate(rows), len(rows), n,
                        f"{what}; test PSNR {final['psnr']:.2f} dB", scale=3)
        plots.save_curves(r.out / "losses.png", [row["epoch"] for row in history],
                          {"train": [row["train_loss"] for row in history],
                           "test": [row["test_loss"] for row in history]},
                          f"{config.likelihood} per image", f"{config.preset} autoencoder on CIFAR-10")
    return r.finish(metrics, history)


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
