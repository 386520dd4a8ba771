"""Deterministic autoencoders on MNIST, beside a VAE: why an AE's latent space samples badly.

    python -m experiments.ae_mnist                          # seed004: conv AE, 2-D latent, BCE, 10 epochs
    python -m experiments.ae_mnist --preset seed003 --out runs/ae_seed003   # MLP 784-400-20, MSE
    python -m experiments.ae_mnist --noise 0.3 --out runs/dae_mnist         # a denoising AE

The evaluator's digit classifier scores the samples (trained and cached on first use; --no-score skips it).
Trains the AE (seed 003's MLP 784-400-20 or seed 004's conv AE; --likelihood bernoulli (BCE) or mse, summed
over pixels; --noise > 0: a denoising AE, input clip(x + noise * eps, 0, 1), target the clean
x) into --out/ae, then a VAE into --out/vae: --vae-preset (default seed003, 784-400-Z with a
Bernoulli decoder, its own learning rate) with the AE's latent size Z, epochs, batch size
and seed: the run `python -m experiments.vae_mnist` makes with those settings. It then decodes
--num-samples draws from three latent distributions: z ~ N(0, I) for the AE, z ~ a Gaussian
with the mean and covariance of the AE's codes of 10,000 training images, and z ~ N(0, I)
for the VAE, and scores each sample set with the evaluator (FID, class entropy, ...).

Writes into --out: metrics.json (last; the scores under "samples"), samples.md/.csv,
samples_{ae_prior,ae_fitted,vae_prior}.npy (N x 28 x 28 in [0, 1]) and .png,
reconstructions.png (test digits, the AE's, the VAE's), losses.png; for a 2-D latent
latent_scatter.png (the AE's test codes by digit, with N(0, I)'s 1- and 2-sigma circles),
vae_latent_scatter.png, manifold.png and vae_manifold.png (decodes of a grid over [-3, 3]^2);
ae/ and vae/ hold each model's history.csv and checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.runs import run
from genjax.studies import ae_vs_vae

parser, experiment = ae_vs_vae.cli_script(__doc__, "python -m experiments.ae_mnist", Path("runs/ae_mnist"))


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
