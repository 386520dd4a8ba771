"""Seed 003's CelebA VAE at 64x64, with BatchNorm: train, evaluate, draw faces, checkpoint.

    python -m experiments.vae_celeba                                     # BCE + KL, 10 epochs
    python -m experiments.vae_celeba --likelihood discretized_logistic   # -ELBO, IWAE and bits/dim

The model is seed 003's CelebAVAE (Conv 32, 64, 128, 256 each with BatchNorm and ReLU -> latent
256 -> the mirror image); the images are TFDS's aligned faces, centre-cropped to 148x148 and
resized to 64x64 (the usual PyTorch CelebA VAE recipe; the seed names none). The seed never
trains it: the preset uses its MNIST loop (BCE + KL on x/255, Adam 1e-3, batch 128, 10 epochs).
BatchNorm's statistics are taken over each batch's real images in training, its running averages
are used in every evaluation and sample, and the checkpoint carries them (--resume is exact).
`--likelihood discretized_logistic` makes -ELBO and the IWAE bound code lengths, also in bits/dim;
every run reports the squared error of its reconstructions (test_mse, in [0, 1] units).

CelebA comes through tensorflow-datasets (--data-dir, $TFDS_DATA_DIR, ../shared/tensorflow_datasets).
Its files sit on Google Drive, whose quota often refuses TFDS: the error names the files to fetch
by hand and where to put them.

Writes into --out: metrics.json (last), history.csv, samples.npy (N x 64 x 64 x 3 in [0, 1]),
samples.png, reconstructions.png, interpolation.png, elbo.png and checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.presets import CELEBA_VAE_PRESETS as PRESETS
from genjax.recipes import vae as vae_recipe
from genjax.runs import run

parser, experiment = vae_recipe.cli_script(__doc__, "python -m experiments.vae_celeba", Path("runs/vae_celeba"),
                                            PRESETS, "seed003_celeba")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
