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

from genjax.presets import AE_PRESETS
from genjax.recipes import autoencoder
from genjax.runs import run

PRESETS_CIFAR = {name: c for name, c in AE_PRESETS.items() if c.dataset == "cifar10"}

parser, experiment = autoencoder.cli_script(__doc__, "python -m experiments.ae_cifar10", Path("runs/ae_cifar10"),
                                            PRESETS_CIFAR, "seed001")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
