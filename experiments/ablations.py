"""Seed 003's exercises as ablation studies: many VAEs trained at once, one vmapped program per shape.

    python -m experiments.ablations beta            # beta-VAE: beta = 0.5, 1, 2, 4
    python -m experiments.ablations latent-dim      # latent size 2, 10, 20, 50, 100
    python -m experiments.ablations recon-loss      # BCE vs MSE reconstruction
    python -m experiments.ablations kl-annealing    # no warm-up vs a linear KL warm-up of 10 epochs
    python -m experiments.ablations seeds --seeds 5 # one config over 5 seeds: mean +- std of every metric

Every model starts from the preset (default seed002: 784-200-200-20, Bernoulli
decoder on threshold-binarized MNIST) with one field changed (--values overrides
the study's list). Models that differ only in learning rate, beta, KL warm-up or
seed are one vmapped program (genjax.training.sweep) on shared batches; others (latent size,
likelihood) run as groups, one after another. Model k with seed s starts from and
draws the noise of `python -m experiments.vae_mnist --seed s`; what the models share is the batch order.

Writes into --out: results.csv and results.md (one row per model: -ELBO and
IWAE NLL in nats per test image where the decoder is a likelihood, recon, KL,
active units, the squared error of the reconstruction means, the evaluator's
scores of 10,000 prior samples), curves.png, reconstructions.png, a sample grid
per model, the study's own plots (beta: latent traversals; latent-dim:
latent_dim.png), per-group history.csv and checkpoints, metrics.json (last).
A model whose loss turns non-finite is reported (diverged_epoch) and stops; the others go on.
"""

from __future__ import annotations

import sys

from genjax.runs import run
from genjax.studies import ablations

parser, experiment = ablations.cli_script(__doc__, "python -m experiments.ablations")
study_config = ablations.study_config


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
