"""The MLP VAEs of the seeds on MNIST: train, evaluate (-ELBO, IWAE), draw, checkpoint.

    python -m experiments.vae_mnist                      # seed002, 20 epochs, into runs/vae_mnist
    python -m experiments.vae_mnist --preset seed000 --out runs/seed000
    python -m experiments.vae_mnist --epochs 30 --resume # continue runs/vae_mnist to 30 epochs

Writes into --out: metrics.json (last), history.csv, samples.npy (decoder means of
prior draws; on binarized pixels also samples_binary.npy, their Bernoulli draws: the samples
to score with `score_samples --pixels threshold`, or stochastic), samples.png, reconstructions.png,
interpolation.png, elbo.png (+ latent_scatter.png and manifold.png for a 2-D latent),
model.json and checkpoints/ (`genjax.load(out)` reads the model back). -ELBO and the IWAE
bound are reported (nats per test image) only for a likelihood: a Bernoulli decoder on binary
pixels, or the discretized logistic.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.presets import PRESETS
from genjax.recipes import vae as vae_recipe
from genjax.runs import run

parser, experiment = vae_recipe.cli_script(__doc__, "python -m experiments.vae_mnist", Path("runs/vae_mnist"),
                                            PRESETS, "seed002")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
