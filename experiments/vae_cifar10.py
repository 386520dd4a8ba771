"""VAEs on CIFAR-10: seed 001's MLP VAE (3072-128-16) and the convolutional VAE of its TODO.

    python -m experiments.vae_cifar10                            # seed001: the MLP VAE, the seed's loop
    python -m experiments.vae_cifar10 --preset seed001_conv --epochs 10 --batch-size 128
    python -m experiments.vae_cifar10 --likelihood discretized_logistic   # -ELBO, IWAE and bits/dim

The presets train as seed 001's train() does: BCE(sum) + KL on float pixels x/255 (the seed's
ToTensor), Adam 1e-3, 1 epoch, batch 4 (its loader is "the previous chapters'", PyTorch's CIFAR-10
tutorial). BCE on 8-bit colour is no likelihood; `--likelihood discretized_logistic` models each
sub-pixel's 256 values (signed pixels, a learned log-scale per sub-pixel), so -ELBO and the IWAE
bound are code lengths, also in bits/dim, the number papers report. Every run reports the
squared error of its reconstructions (test_mse, in [0, 1] units) beside its loss.

CIFAR-10 comes through tensorflow-datasets (--data-dir, $TFDS_DATA_DIR, ../shared/tensorflow_datasets);
without it and without network, the error says how to get it.

Writes into --out: metrics.json (last), history.csv, samples.npy (N x 32 x 32 x 3 in [0, 1]),
samples.png, reconstructions.png, interpolation.png, elbo.png and checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.presets import CIFAR10_VAE_PRESETS as PRESETS
from genjax.recipes import vae as vae_recipe
from genjax.runs import run

parser, experiment = vae_recipe.cli_script(__doc__, "python -m experiments.vae_cifar10", Path("runs/vae_cifar10"),
                                            PRESETS, "seed001")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
