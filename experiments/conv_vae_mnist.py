"""Convolutional VAEs on MNIST: seed 003's ConvVAE and seed 004's VAE; -ELBO and IWAE, samples, checkpoints.

    python -m experiments.conv_vae_mnist                    # seed003: ConvVAE, latent 128, x > 0.5, 10 epochs
    python -m experiments.conv_vae_mnist --preset seed004   # seed004: latent 2, 30 epochs on train + test
    python -m experiments.conv_vae_mnist --epochs 20 --resume
    python -m experiments.conv_vae_mnist --iwae-k 1000 --out runs/conv_vae_k1000   # the IWAE at k = 1000

seed003 is seed 003's ConvVAE, fixed to fit 28x28 (its first transposed convolution has
output_padding=1; as written it returns 24x24 images), trained by seed 003's loop (BCE + KL,
Adam 1e-3, batch 128) on threshold-binarized pixels, so -ELBO and the IWAE bound are likelihood
bounds on the same scale as `python -m experiments.vae_mnist` (seed002's MLP VAE). seed004 is
seed 004's conv VAE (Conv 32, 64 -> fc 16 -> latent 2) on its float (ToTensor) pixels, trained as
the seed does on the training and test splits together (70,000 images): its `train_loss` is the
number the seed prints, and its test numbers are on images it trained on. seed003's IWAE bound
uses k = 100 importance samples by default (its evaluation then takes less time than its
training; k = 1000 takes about four times the training), with a progress bar and its ETA.

Writes into --out: metrics.json (last), history.csv, samples.npy (decoder means; seed003 also
samples_binary.npy, their Bernoulli draws, to score with --pixels threshold), samples.png, reconstructions.png,
interpolation.png, elbo.png (+ latent_scatter.png and manifold.png for a 2-D latent) and checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.presets import CONV_VAE_MNIST_PRESETS as PRESETS
from genjax.recipes import vae as vae_recipe
from genjax.runs import run

parser, experiment = vae_recipe.cli_script(__doc__, "python -m experiments.conv_vae_mnist", Path("runs/conv_vae_mnist"),
                                            PRESETS, "seed003")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
